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


def test_writer_runs_when_writable_and_stops_when_removed():
    loop = Loop()
    a, b = socket.socketpair()
    calls = []
    loop.add_writer(a, lambda: calls.append("w"))
    assert loop.run(until=lambda: calls, timeout=2)
    loop.remove_writer(a)
    count = len(calls)
    assert loop.run(until=lambda: False, timeout=0.05) is False
    assert len(calls) == count
    loop.remove_writer(a)  # removing twice, or what was never added, is harmless
    loop.remove_reader(a)
    loop.close()
    a.close()
    b.close()


def test_reader_and_writer_on_the_same_socket():
    loop = Loop()
    a, b = socket.socketpair()
    got, writes = [], []

    def on_writable():
        writes.append(1)
        a.send(b"ping")
        loop.remove_writer(a)  # the reader must survive this

    loop.add_reader(a, lambda: got.append(a.recv(100)))
    loop.add_writer(a, on_writable)
    loop.add_writer(a, on_writable)  # replaces, does not register twice
    assert loop.run(until=lambda: writes, timeout=2)
    b.settimeout(2)
    assert b.recv(100) == b"ping"
    b.send(b"pong")
    assert loop.run(until=lambda: got, timeout=2)
    assert got == [b"pong"] and writes == [1]
    # Removing the reader keeps a writer registered on the same socket.
    loop.add_writer(a, lambda: writes.append(2))
    loop.remove_reader(a)
    assert loop.run(until=lambda: 2 in writes, timeout=2)
    b.send(b"unseen")
    loop.remove_writer(a)
    loop.run(until=lambda: False, timeout=0.05)
    assert got == [b"pong"]
    loop.close()
    a.close()
    b.close()


def test_a_second_reader_on_one_socket_is_refused():
    loop = Loop()
    a, b = socket.socketpair()
    loop.add_reader(a, lambda: None)
    try:
        loop.add_reader(a, lambda: None)
    except KeyError:
        pass
    else:
        raise AssertionError("a second reader must be refused")
    loop.close()
    a.close()
    b.close()


def test_a_writer_that_closes_its_socket_does_not_run_the_reader():
    loop = Loop()
    a, b = socket.socketpair()
    got = []
    b.send(b"data")  # readable and writable in the same select() round

    def close_it():
        loop.remove_writer(a)
        loop.remove_reader(a)
        a.close()
        got.append("closed")

    loop.add_reader(a, lambda: got.append(a.recv(10)))
    loop.add_writer(a, close_it)
    assert loop.run(until=lambda: got, timeout=2)
    loop.run(until=lambda: False, timeout=0.05)
    assert got == ["closed"]
    loop.close()
    b.close()
