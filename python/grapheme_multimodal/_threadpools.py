"""One BLAS thread for a block of scikit-learn work, safe on several threads at once.

threadpoolctl's ``threadpool_limits`` sets a BLAS library's thread count for
the whole process and, on leaving, puts back the count it found on
entering. Two threads whose blocks overlap (one in, the other in, the first
out, the second out) therefore ended with the second putting back the 1 it
found: OpenBLAS stayed on one thread for the rest of the process. A count
per call site did not cure it either: the blocks of ``cca_anchor``,
``compute_anchors``, ``nutrimouse_cv`` and scikit-learn's own k-NN search
(which limits BLAS around its distances, inside ``knn_accuracy``) overlap
one another.

Here every block of every thread counts as one limit: the first to enter
records each BLAS library's thread count, a later one records only the
libraries loaded since, and the last to leave puts every count back.
scikit-learn's own limits inside such a block find 1 and put back 1.

Two more of threadpoolctl's ways are worked around. Its limit puts back
every library it found, not only those it limited: a limit of OpenMP put
BLAS back too. And from 3.7 on, only one thread at a time may set
OpenBLAS's count (the first to set it, until its ``threadpool_limits``
block ends or the thread dies): other threads' sets do nothing, so a count
set here from one thread and put back from another stayed at 1. The count
here is the process's, kept under one lock, so each set here takes that
control and gives it up again.

OpenMP is another matter: its thread count (``omp_set_num_threads``) is a
setting of the calling thread, not of the process, so threadpoolctl's own
limit, which puts back what this thread found, is the right one for it.
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Any, Dict, Iterator, Tuple

from ._locking import uninterrupted

__all__ = ["one_blas_thread"]

_lock = threading.Lock()
#: The threads inside a block, and how deeply (blocks nest).
_holders: Dict[int, int] = {}
#: A BLAS library's path -> its controller and its thread count before the first block.
_before: Dict[str, Tuple[Any, int]] = {}


@contextlib.contextmanager
def one_blas_thread(*, openmp: bool = False) -> Iterator[None]:
    """``with one_blas_thread():`` runs the block with every loaded BLAS
    library on one thread (and with ``openmp``, OpenMP on one thread in
    this thread); the thread counts found before the first of the blocks
    running at once are put back when the last one ends. Without
    threadpoolctl (a dependency of scikit-learn) the block runs on the
    threads as they are set: there is no way to set them."""
    try:
        from threadpoolctl import ThreadpoolController  # imported before anything is counted
    except ModuleNotFoundError:
        yield
        return

    me = threading.get_ident()
    entered = False
    try:
        # the bookkeeping held back from Ctrl-C: a block counted but never left kept BLAS on one thread for good
        with _lock, uninterrupted():
            _limit_blas()
            _holders[me] = _holders.get(me, 0) + 1
            entered = True
        if openmp:
            # a controller of OpenMP alone: threadpoolctl's limit puts back every library its controller holds
            with ThreadpoolController().select(user_api="openmp").limit(limits=1):
                yield
        else:
            yield
    finally:
        if entered:
            with _lock, uninterrupted():
                _leave(me)


def _limit_blas() -> None:
    from threadpoolctl import ThreadpoolController

    # Looked up on every entry, not only the first: a library loaded since (scipy's OpenBLAS, on the
    # first import of scikit-learn's estimators) is limited too, and its count recorded.
    for library in ThreadpoolController().select(user_api="blas").lib_controllers:
        if library.filepath not in _before:
            threads = library.num_threads
            if threads is None:  # a library that cannot say: threadpoolctl leaves it alone too
                continue
            _before[library.filepath] = (library, threads)
        _set(library, 1)


def _set(library: Any, threads: int) -> None:
    """Sets ``library``'s thread count from this thread, whichever thread
    threadpoolctl lets set it (OpenBLAS, threadpoolctl >= 3.7: only one)."""
    release = getattr(type(library), "clear_controlling_thread", None)
    if release is not None:
        release(force=True)
    library.set_num_threads(threads)
    if release is not None:
        release()  # not kept: the next set here may come from another thread


def _leave(me: int) -> None:
    depth = _holders.pop(me) - 1
    if depth:
        _holders[me] = depth
    elif not _holders:
        _restore()


def _restore() -> None:
    for library, threads in _before.values():
        _set(library, threads)
    _before.clear()


def _after_fork_in_child() -> None:
    """A child forked while other threads were inside a block has only the
    forking thread: their blocks never end there, so they are dropped (else
    BLAS stayed on one thread in the child for good), and the lock is made
    anew (another thread may have held it)."""
    global _lock
    _lock = threading.Lock()
    me = threading.get_ident()
    for thread in [t for t in _holders if t != me]:
        del _holders[thread]
    if not _holders and _before:
        _restore()


if hasattr(os, "register_at_fork"):  # POSIX; Windows has no fork
    os.register_at_fork(after_in_child=_after_fork_in_child)
