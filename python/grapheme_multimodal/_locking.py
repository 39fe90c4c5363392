"""Sharing one model between threads.

A model's methods read its state (``encode``, ``state_dict``, ``save``...),
write it (``train_step``, ``load_state_dict``, ``set_normalization``...), or
run a multi-step update (``fit``). :class:`ModelLock` serialises them:

- readers share: any number of threads read at once (the Rust core computes
  with the GIL released, so they run in parallel);
- a writer waits until the readers in progress finish and keeps new readers
  out until it is done (writers go first, so a stream of readers cannot starve
  training);
- an update (``fit``) excludes other writers and updates for its whole
  duration but lets readers in between its steps, so a monitoring thread can
  call ``encode`` during ``fit`` and sees the model as it is after some step.

All modes are re-entrant within a thread (a writer may read; an update may
write). A thread that holds only a read lock may not start to write (that
would deadlock against another reader doing the same): it gets a
``RuntimeError`` instead.
"""

from __future__ import annotations

import contextlib
import functools
import signal
import threading
from threading import get_ident
from typing import Any, Callable, Dict, Iterator, List, Optional, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_MAIN_THREAD = threading.main_thread().ident
_holding_back: Optional[List[int]] = None  # the Ctrl-Cs noted by the `uninterrupted` block in progress


@contextlib.contextmanager
def uninterrupted() -> Iterator[None]:
    """``with uninterrupted():`` holds Ctrl-C back until the block ends,
    then raises it: for a change of the model made of several calls
    (loading each weight tensor, restoring weights then Adam state), which
    an interrupt between two calls would leave half made. Only in the main
    thread (the one ``KeyboardInterrupt`` is raised in) and only under
    Python's own SIGINT handler (a program's own handler is left alone);
    re-entrant. It swaps the handler (some microseconds): not for per-event
    calls. Enter it after any wait for a lock, which must stay interruptible."""
    global _holding_back
    if _holding_back is not None or get_ident() != _MAIN_THREAD or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    noted: List[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: noted.append(signum))
    _holding_back = noted
    try:
        yield
    finally:
        _holding_back = None
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if noted:
            raise KeyboardInterrupt


class ModelLock:
    """Readers share, a writer excludes everyone, an update excludes writers.

    ``reading()``, ``writing()`` and ``updating()`` return context managers
    (reusable objects, not generators: the per-event methods take the lock
    on every call, so it has to cost little)."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()  # guards the fields below; taken directly on the readers' fast path
        self._cond = threading.Condition(self._mutex)
        self._update = threading.RLock()
        self._readers: Dict[int, int] = {}  # thread id -> depth
        self._writer: Optional[int] = None  # thread id
        self._writer_depth = 0
        self._writers_waiting = 0
        self._reading = _ReadGuard(self)
        self._writing = _Guard(self._acquire_write, self._release_write)

    def reading(self) -> "_ReadGuard":
        """Shared access: waits while a writer holds or waits for the lock."""
        return self._reading

    def writing(self) -> "_Guard":
        """Exclusive access: waits for the readers and writers in progress."""
        return self._writing

    def updating(self) -> "threading.RLock":
        """Excludes other updates and writers (not readers)."""
        return self._update

    def _acquire_write(self) -> None:
        me = get_ident()
        self._update.acquire()
        try:
            with self._cond:
                if self._writer != me:
                    if me in self._readers:
                        raise RuntimeError("a thread that is reading the model cannot start to change it")
                    self._writers_waiting += 1
                    try:
                        while self._readers:
                            self._cond.wait()
                    except BaseException:
                        # Interrupted (Ctrl-C) while waiting: readers that queued behind this
                        # writer wait for a notify, and no reader that leaves would send one.
                        self._writers_waiting -= 1
                        self._cond.notify_all()
                        raise
                    self._writers_waiting -= 1
                    self._writer = me
                self._writer_depth += 1
        except BaseException:
            self._update.release()
            raise

    def _release_write(self) -> None:
        with self._cond:
            self._writer_depth -= 1
            if not self._writer_depth:
                self._writer = None
                self._cond.notify_all()
        self._update.release()


class _ReadGuard:
    """``with lock.reading():`` — the readers' side, inlined: every
    per-event call goes through it."""

    __slots__ = ("_lock",)

    def __init__(self, lock: ModelLock) -> None:
        self._lock = lock

    def __enter__(self) -> None:
        lock, me = self._lock, get_ident()
        readers = lock._readers
        with lock._mutex:
            if lock._writer != me and me not in readers:
                while lock._writer is not None or lock._writers_waiting:
                    lock._cond.wait()
            readers[me] = readers.get(me, 0) + 1

    def __exit__(self, *exc: Any) -> None:
        lock, me = self._lock, get_ident()
        readers = lock._readers
        with lock._mutex:
            depth = readers[me] - 1
            if depth:
                readers[me] = depth
            else:
                del readers[me]
                if lock._writers_waiting:
                    lock._cond.notify_all()


class _Guard:
    """``with guard:`` runs ``acquire`` and, on the way out, ``release``."""

    __slots__ = ("_acquire", "_release")

    def __init__(self, acquire: Callable[[], None], release: Callable[[], None]) -> None:
        self._acquire, self._release = acquire, release

    def __enter__(self) -> None:
        self._acquire()

    def __exit__(self, *exc: Any) -> None:
        self._release()


def reads(method: F) -> F:
    """Runs ``method`` holding the model's lock for reading."""

    @functools.wraps(method)
    def locked(self: Any, *args: Any, **kwargs: Any) -> Any:
        with self._lock.reading():
            return method(self, *args, **kwargs)

    return locked  # type: ignore[return-value]


def writes(method: F) -> F:
    """Runs ``method`` holding the model's lock for writing; cached results
    computed before it are stale from its start (even when it fails halfway
    or is interrupted)."""

    @functools.wraps(method)
    def locked(self: Any, *args: Any, **kwargs: Any) -> Any:
        with self._lock.writing():
            # Stale before anything changes, not only after: a Ctrl-C at the entry of
            # _parameters_changed (any Python call may raise it there) would otherwise
            # leave results cached before the change looking current.
            self._version += 1
            try:
                return method(self, *args, **kwargs)
            finally:
                self._parameters_changed()

    return locked  # type: ignore[return-value]
