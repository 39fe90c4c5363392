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

import functools
import threading
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


class ModelLock:
    """Readers share, a writer excludes everyone, an update excludes writers."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._update = threading.RLock()
        self._readers: Dict[int, int] = {}  # thread id -> depth
        self._writer = None  # thread id
        self._writer_depth = 0
        self._writers_waiting = 0

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Shared access: waits while a writer holds or waits for the lock."""
        me = threading.get_ident()
        with self._cond:
            if self._writer != me and me not in self._readers:
                while self._writer is not None or self._writers_waiting:
                    self._cond.wait()
            self._readers[me] = self._readers.get(me, 0) + 1
        try:
            yield
        finally:
            with self._cond:
                depth = self._readers[me] - 1
                if depth:
                    self._readers[me] = depth
                else:
                    del self._readers[me]
                    self._cond.notify_all()

    @contextmanager
    def updating(self) -> Iterator[None]:
        """Excludes other updates and writers (not readers)."""
        with self._update:
            yield

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Exclusive access: waits for the readers and writers in progress."""
        me = threading.get_ident()
        with self._update:
            with self._cond:
                if self._writer != me:
                    if me in self._readers:
                        raise RuntimeError("a thread that is reading the model cannot start to change it")
                    self._writers_waiting += 1
                    try:
                        while self._readers:
                            self._cond.wait()
                    finally:
                        self._writers_waiting -= 1
                    self._writer = me
                self._writer_depth += 1
            try:
                yield
            finally:
                with self._cond:
                    self._writer_depth -= 1
                    if not self._writer_depth:
                        self._writer = None
                        self._cond.notify_all()


def reads(method: F) -> F:
    """Runs ``method`` holding the model's lock for reading."""

    @functools.wraps(method)
    def locked(self: Any, *args: Any, **kwargs: Any) -> Any:
        with self._lock.reading():
            return method(self, *args, **kwargs)

    return locked  # type: ignore[return-value]


def writes(method: F) -> F:
    """Runs ``method`` holding the model's lock for writing; cached results
    computed before it are stale afterwards (even when it fails halfway)."""

    @functools.wraps(method)
    def locked(self: Any, *args: Any, **kwargs: Any) -> Any:
        with self._lock.writing():
            try:
                return method(self, *args, **kwargs)
            finally:
                self._parameters_changed()

    return locked  # type: ignore[return-value]
