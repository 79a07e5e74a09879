"""The shell's event loop: one `selectors` loop that owns the sockets and one timer heap (DESIGN.md).

The sans-I/O engines never see this module: the session feeds them bytes and `now`, then asks for
their next deadline and schedules it here. Other threads (the audio thread) hand work over only through
`call_soon_threadsafe`, which appends to a deque and wakes the selector through a socket pair.
"""

import collections
import heapq
import itertools
import logging
import selectors
import signal
import socket
import time

log = logging.getLogger("sotto.loop")


class TimerHandle:
    __slots__ = ("when", "callback", "cancelled")

    def __init__(self, when, callback):
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self):
        self.cancelled = True


class Loop:
    """A small, boring event loop: readers, absolute-deadline timers, thread-safe wake-ups, signals."""

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._selector = selectors.DefaultSelector()
        self._timers = []  # heap of (when, sequence, handle)
        self._sequence = itertools.count()
        self._ready = collections.deque()
        self._waker_r, self._waker_w = socket.socketpair()
        self._waker_r.setblocking(False)
        self._waker_w.setblocking(False)
        self._selector.register(self._waker_r, selectors.EVENT_READ, (self._drain_waker, None))
        self._stopping = False
        self._previous_signal_handlers = {}
        self._previous_wakeup_fd = None

    def now(self):
        return self._clock()

    # -- readers and writers -----------------------------------------------------------------------
    # One selector registration per file object; its data is the pair (reader, writer), either None.
    def _callbacks(self, fileobj):
        try:
            return self._selector.get_key(fileobj).data
        except (KeyError, ValueError):
            return None

    def _set_callbacks(self, fileobj, reader, writer):
        events = (selectors.EVENT_READ if reader is not None else 0) | (
            selectors.EVENT_WRITE if writer is not None else 0
        )
        registered = self._callbacks(fileobj) is not None
        if not events:
            if registered:
                self._selector.unregister(fileobj)
        elif registered:
            self._selector.modify(fileobj, events, (reader, writer))
        else:
            self._selector.register(fileobj, events, (reader, writer))

    def add_reader(self, fileobj, callback):
        """Run `callback()` whenever `fileobj` is readable. KeyError if it already has a reader."""
        callbacks = self._callbacks(fileobj)
        if callbacks is not None and callbacks[0] is not None:
            raise KeyError("{!r} already has a reader".format(fileobj))
        self._set_callbacks(fileobj, callback, callbacks[1] if callbacks else None)

    def remove_reader(self, fileobj):
        callbacks = self._callbacks(fileobj)
        if callbacks is not None:
            self._set_callbacks(fileobj, None, callbacks[1])

    def add_writer(self, fileobj, callback):
        """Run `callback()` whenever `fileobj` is writable (a connect finished, room in the send buffer).

        Replaces the writer already registered for `fileobj`, if any; its reader is kept."""
        callbacks = self._callbacks(fileobj)
        self._set_callbacks(fileobj, callbacks[0] if callbacks else None, callback)

    def remove_writer(self, fileobj):
        callbacks = self._callbacks(fileobj)
        if callbacks is not None:
            self._set_callbacks(fileobj, callbacks[0], None)

    # -- timers -----------------------------------------------------------------------------------
    def call_at(self, when, callback):
        """Run `callback()` at the absolute monotonic time `when`."""
        handle = TimerHandle(when, callback)
        heapq.heappush(self._timers, (when, next(self._sequence), handle))
        return handle

    def call_later(self, delay, callback):
        return self.call_at(self.now() + delay, callback)

    def call_soon_threadsafe(self, callback):
        """Schedule `callback()` on the loop's thread; safe to call from any thread."""
        self._ready.append(callback)
        try:
            self._waker_w.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # the pipe is full, so the loop is awake anyway

    def _drain_waker(self):
        try:
            while self._waker_r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass

    # -- signals ----------------------------------------------------------------------------------
    def add_signal_handler(self, signum, callback):
        """Run `callback()` on the loop when `signum` arrives (SIGTERM/SIGINT: hang up politely)."""
        if self._previous_wakeup_fd is None:
            self._previous_wakeup_fd = signal.set_wakeup_fd(self._waker_w.fileno(), warn_on_full_buffer=False)

        def handler(_signum, _frame):
            self._ready.append(callback)

        self._previous_signal_handlers[signum] = signal.signal(signum, handler)

    def restore_signals(self):
        for signum, previous in self._previous_signal_handlers.items():
            signal.signal(signum, previous)
        self._previous_signal_handlers = {}
        if self._previous_wakeup_fd is not None:
            signal.set_wakeup_fd(self._previous_wakeup_fd)
            self._previous_wakeup_fd = None

    # -- running ----------------------------------------------------------------------------------
    def stop(self):
        self._stopping = True

    def run(self, until=None, timeout=None):
        """Run until `stop()`, until `until()` is true, or until `timeout` seconds have passed.

        Returns True when it ended because of `stop()` or `until()`, False on timeout.
        """
        deadline = None if timeout is None else self.now() + timeout
        self._stopping = False
        while True:
            self._run_ready()
            if self._stopping or (until is not None and until()):
                return True
            now = self.now()
            if deadline is not None and now >= deadline:
                return False
            self._turn(self._next_wait(now, deadline))

    def run_once(self, timeout=0.0):
        """One turn of run(): callbacks handed over, then wait up to `timeout` (less when a timer is due
        sooner) for the files, dispatch them, and run the due timers. For drivers that interleave the
        loop with work of their own (the interop tests' Driver pumps a UserAgent between turns)."""
        self._run_ready()
        self._turn(self._next_wait(self.now(), self.now() + max(0.0, timeout)))

    def _turn(self, wait):
        for key, events in self._selector.select(wait):
            self._dispatch(key, events)
        self._run_due_timers()

    def _dispatch(self, key, events):
        """Writer first (a connect completing), then reader; each looked up afresh, since the first
        callback may have removed the other or closed the file object."""
        if events & selectors.EVENT_WRITE:
            callbacks = self._callbacks(key.fileobj)
            if callbacks is not None and callbacks[1] is not None:
                callbacks[1]()
        if events & selectors.EVENT_READ:
            callbacks = self._callbacks(key.fileobj)
            if callbacks is not None and callbacks[0] is not None:
                callbacks[0]()

    def _next_wait(self, now, deadline):
        while self._timers and self._timers[0][2].cancelled:
            heapq.heappop(self._timers)
        wait = None
        if self._ready:
            return 0
        if self._timers:
            wait = max(0.0, self._timers[0][0] - now)
        if deadline is not None:
            wait = max(0.0, deadline - now) if wait is None else min(wait, max(0.0, deadline - now))
        return wait

    def _run_due_timers(self):
        now = self.now()
        while self._timers and self._timers[0][0] <= now:
            _when, _seq, handle = heapq.heappop(self._timers)
            if not handle.cancelled:
                handle.callback()

    def _run_ready(self):
        for _ in range(len(self._ready)):
            self._ready.popleft()()

    def close(self):
        self.restore_signals()
        self._selector.close()
        self._waker_r.close()
        self._waker_w.close()
