"""Training an ensemble's members at once, on threads.

A model's training step parallelises poorly on a few cores (its matrices
are small: two threads made one UCI fit about 1.3 times as fast as one),
while the members of an ensemble are independent. The core releases the
GIL around its compute, so members trained on threads of one process run
side by side; and its results do not depend on the thread count
(:mod:`~grapheme_multimodal.threads`), so every member is bit for bit what
it is when trained alone. Threads, not processes: the members share the
caller's data without copying it, and no model is pickled back.

Ctrl-C reaches only the calling thread. It cancels the members still
training: each stops at its next training step as if it had been
interrupted itself (:func:`check_cancelled` raises ``KeyboardInterrupt``
there, and ``fit`` rolls back as on Ctrl-C), and the caller's
``KeyboardInterrupt`` is raised once they have stopped.
"""

from __future__ import annotations

import contextvars
import os
import threading
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import Callable, List, Optional, Sequence, TypeVar

import numpy as np

from . import _validation
from ._caller_warnings import TASKS_CALLER, tasks_caller
from ._validation import exact_int, is_int, wrong_type
from .exceptions import InvalidValueError

T = TypeVar("T")

_worker = threading.local()


def check_cancelled() -> None:
    """Raises ``KeyboardInterrupt`` in a task of :func:`run_tasks` whose run
    was cancelled (Ctrl-C in the calling thread, or another task failed);
    nothing anywhere else. ``fit`` calls it before every step."""
    cancel = getattr(_worker, "cancel", None)
    if cancel is not None and cancel.is_set():
        raise KeyboardInterrupt


def bar_position() -> Optional[int]:
    """The line of this task's progress bar (its index in :func:`run_tasks`),
    so that bars of members trained at once do not overwrite each other;
    None outside a task."""
    return getattr(_worker, "position", None)


def resolve_n_jobs(n_jobs: object, tasks: int, arg: str = "n_jobs") -> int:
    """How many tasks run at once for ``n_jobs`` as scikit-learn reads it:
    None or 1 one at a time, ``n > 1`` up to ``n``, ``-1`` one per CPU this
    process may use (``-2`` all but one, ...); never more than ``tasks``."""
    if n_jobs is None:
        return 1
    if not is_int(n_jobs):  # an int as the package's other int arguments read one (a np.timedelta64 is none)
        # the package's wrong-type error, as n_members beside it raises: a plain TypeError carried no argument name,
        # and `except InvalidValueError` caught a bad n_members but not a bad n_jobs
        raise wrong_type(arg, "None or an int (1: one at a time, -1: one per CPU)", n_jobs)
    n = exact_int(n_jobs)
    if n == 0:
        raise InvalidValueError(f"{arg}: expected None or a non-zero int (1: one at a time, -1: one per CPU), got 0", arg)
    if n < 0:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        n = max(1, cpus + 1 + n)
    return max(1, min(n, tasks))


#: The address space a thread of its own takes besides its task's data: the
#: heap glibc gives each thread that allocates (64 MiB) and its stack (8 MiB).
THREAD_BYTES = 2**26 + 2**23


def jobs_within_memory(jobs: int, task_bytes: int, held_bytes: int = 0) -> int:
    """``jobs``, fewer (at least 1) when that many tasks at once, each taking
    ``task_bytes`` for a while (and a thread), would not fit beside the
    ``held_bytes`` that all of them hold at the end, in memory or in the
    address space a ``ulimit -v``/``-d`` leaves this process. The members
    of an ensemble trained at once each copy their model for every
    cross-validation fold: all of them at once went past memory where the
    held models fitted, and a Rust allocation that fails aborts the
    process. A member's results do not depend on how many train at once."""
    if jobs <= 1:
        return jobs
    room = _validation.memory_budget() - held_bytes
    left = _validation.address_space_left()
    if left is not None:
        room = min(room, left - held_bytes)
    return max(1, min(jobs, room // (task_bytes + THREAD_BYTES)))


def shared_snapshot(value: T) -> T:
    """One read-only copy of a writable float32 array that several members
    train on at once, which ``fit`` then reads in place (it copies a
    writable array for itself, lest the caller write it mid-fit: K members
    at once would hold K copies); anything else as it is (``fit`` casts
    other dtypes to arrays of its own)."""
    if isinstance(value, np.ndarray) and value.dtype == np.float32 and value.flags.writeable:
        value = value.copy()
        value.flags.writeable = False
    return value  # type: ignore[return-value]


def run_tasks(tasks: Sequence[Callable[[], T]], n_jobs: int) -> List[T]:
    """Each task's result, in order, ``n_jobs`` tasks at a time on threads
    (one at a time, in this thread, for 1). Each task runs in a copy of the
    caller's context (its context variables: error naming, precision
    scopes), its warnings said at the user's line that started them
    (:func:`~._caller_warnings.warn_at_caller`). When a task fails, the others are cancelled and the failure of
    the first task (in order) that failed by itself is raised."""
    if n_jobs <= 1 or len(tasks) <= 1:
        return [task() for task in tasks]
    cancel = threading.Event()

    def run(position: int, task: Callable[[], T], context: contextvars.Context) -> T:
        _worker.cancel, _worker.position = cancel, position
        try:
            return context.run(task)
        finally:
            _worker.cancel = _worker.position = None

    caller = tasks_caller()  # where the threads' warnings are said: they have no frame of the user's

    def context() -> contextvars.Context:
        copied = contextvars.copy_context()
        copied.run(TASKS_CALLER.set, caller)
        return copied

    with ThreadPoolExecutor(max_workers=n_jobs, thread_name_prefix="grapheme-mm-member") as pool:
        futures = [pool.submit(run, j, task, context()) for j, task in enumerate(tasks)]
        try:
            pending = set(futures)
            while pending:  # waited in slices: Ctrl-C is delivered to this thread between them
                done, pending = wait(pending, timeout=0.25, return_when=FIRST_EXCEPTION)
                if any(f.exception() is not None for f in done):
                    break
        except BaseException:  # Ctrl-C (or any signal's exception) while waiting
            _stop(futures, cancel)
            raise
        if pending:  # a task failed: the others stop
            _stop(futures, cancel)
    failures = [f.exception() for f in futures if not f.cancelled() and f.exception() is not None]
    own = [e for e in failures if not isinstance(e, KeyboardInterrupt)] or failures
    if own:
        raise own[0]
    return [f.result() for f in futures]


def _stop(futures: List[Future], cancel: threading.Event) -> None:
    """Cancels the tasks not started and stops the running ones at their
    next step, then waits for them (their models roll back as on Ctrl-C)."""
    cancel.set()
    for future in futures:
        future.cancel()
    wait(futures)
