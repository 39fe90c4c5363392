"""How many threads the library computes with.

The model's kernels (batched forward, training step) and the batched
featurisers run on ``n`` threads: the calling thread and ``n - 1`` helpers
of one pool. The default ``n`` is ``GRAPHEME_MM_NUM_THREADS``, else
``RAYON_NUM_THREADS``, else the number of CPUs the process may use; small
work (one event, a step on a few rows) stays on the calling thread. Results
do not depend on the thread count: work is split at boundaries fixed by the
problem size and partial sums are combined in a fixed order, so the same
inputs give the same bits on 1 thread or 16.

At most ``4 ×`` the CPUs the process may use are used (more only adds
waiting: thousands of threads made one batched forward take seconds); a
larger ``n`` is clamped with a warning, a larger environment setting
silently; a ``GRAPHEME_MM_NUM_THREADS`` that is not a positive int, or is
one of 2**64 or more, is ignored, with a ``RuntimeWarning`` at import (``grapheme-mm`` says it as its
one-line warning), and so is a ``RAYON_NUM_THREADS`` that is not an int
where the library reads it (see :mod:`._environment`). A process started with ``fork()`` after the pool ran builds its
own pool (the parent's threads do not exist in it).
"""

from __future__ import annotations

import warnings

from . import _core
from ._validation import IntLike, exact_int, is_int, shown_number
from .exceptions import InvalidTypeError, InvalidValueError

__all__ = ["get_num_threads", "set_num_threads"]


def set_num_threads(n: IntLike) -> None:
    """Compute with ``n`` threads (``n >= 1``, the calling thread included)
    in the calls that start afterwards; more than ``4 ×`` the CPUs is
    clamped to that, with a ``RuntimeWarning``.

    >>> import grapheme_multimodal as gm
    >>> before = gm.get_num_threads()
    >>> gm.set_num_threads(1); gm.get_num_threads()
    1
    >>> gm.set_num_threads(before)
    """
    if not is_int(n):  # numpy's integers and a 0-d integer array too, as the package's other int arguments
        raise InvalidTypeError(f"n: expected a positive int, got {type(n).__name__}", "n")
    n = exact_int(n)
    if n < 1:
        raise InvalidValueError(f"n: expected a positive number of threads, got {shown_number(n, str)}", "n")
    # the core takes an int64 (beyond it: OverflowError naming nothing) and clamps what it is given
    used = _core.set_num_threads(min(int(n), 2**63 - 1))
    if used != n:
        warnings.warn(
            f"set_num_threads: {shown_number(n, str)} threads requested; using {used} (at most 4 per CPU this process may use)",
            RuntimeWarning,
            stacklevel=2,
        )


def get_num_threads() -> int:
    """The number of threads the library computes with."""
    return _core.get_num_threads()
