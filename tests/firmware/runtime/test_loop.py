import os
import signal
import socket
import threading
import time

from firmware.runtime.loop import Loop


def test_timers_fire_in_deadline_order_and_cancel_works():
    loop = Loop()
    fired = []
    start = loop.now()
    loop.call_at(start + 0.03, lambda: fired.append("b"))
    loop.call_at(start + 0.01, lambda: fired.append("a"))
    cancelled = loop.call_at(start + 0.02, lambda: fired.append("never"))
    cancelled.cancel()
    assert loop.run(until=lambda: len(fired) == 2, timeout=2)
    assert fired == ["a", "b"]
    loop.close()


def test_reader_callback_and_timeout():
    loop = Loop()
    a, b = socket.socketpair()
    got = []
    loop.add_reader(a, lambda: got.append(a.recv(100)))
    b.send(b"hello")
    assert loop.run(until=lambda: got, timeout=2)
    assert got == [b"hello"]
    loop.remove_reader(a)
    started = time.monotonic()
    assert loop.run(until=lambda: False, timeout=0.05) is False
    assert time.monotonic() - started < 1
    loop.close()
    a.close()
    b.close()


def test_call_soon_threadsafe_wakes_the_loop():
    loop = Loop()
    got = []
    threading.Timer(0.02, lambda: loop.call_soon_threadsafe(lambda: got.append(1))).start()
    assert loop.run(until=lambda: got, timeout=2)
    loop.close()


def test_signal_handler_runs_on_the_loop():
    loop = Loop()
    got = []
    loop.add_signal_handler(signal.SIGUSR1, lambda: got.append("usr1"))
    threading.Timer(0.02, lambda: os.kill(os.getpid(), signal.SIGUSR1)).start()
    try:
        assert loop.run(until=lambda: got, timeout=2)
    finally:
        loop.close()
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
