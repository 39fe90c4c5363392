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
silently; a ``GRAPHEME_MM_NUM_THREADS`` that is not a positive int is
ignored, with a ``RuntimeWarning`` at import (``grapheme-mm`` says it as its
one-line warning), and so is a ``RAYON_NUM_THREADS`` that is not an int
where the library reads it. A process started with ``fork()`` after the pool ran builds its
own pool (the parent's threads do not exist in it).
"""

from __future__ import annotations

import os
import re
import sys
import warnings
from typing import Callable, List, Optional

from . import _core
from ._validation import IntLike, exact_int, is_int, shown_number
from .exceptions import InvalidTypeError, InvalidValueError

__all__ = ["get_num_threads", "set_num_threads", "unreadable_thread_settings"]


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
        raise InvalidValueError(f"n: expected a positive number of threads, got {n}", "n")
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


def unreadable_thread_settings() -> List[str]:
    """What the library cannot read of the environment's thread settings,
    one message each: the core reads ``GRAPHEME_MM_NUM_THREADS`` as a
    positive int and passes over anything else to ``RAYON_NUM_THREADS``
    (an int; 0, as for Rayon, the number of CPUs), then the CPUs, so a typo
    would change the thread count without a word. ``RAYON_NUM_THREADS`` is
    named only where the library reads it (no readable
    ``GRAPHEME_MM_NUM_THREADS``). Read here, not through the core, so that
    asking does not fix the count before the first computation."""
    said = []
    value = os.environ.get("GRAPHEME_MM_NUM_THREADS")
    if _readable(value, lambda n: n > 0):
        return said
    if value is not None and value.strip():  # blank: `GRAPHEME_MM_NUM_THREADS= cmd`, the shell's way to unset it
        said.append(f"GRAPHEME_MM_NUM_THREADS={value!r} is not a positive int and is ignored; expected e.g. "
                    "GRAPHEME_MM_NUM_THREADS=4 (RAYON_NUM_THREADS, else the number of CPUs, applies instead)")
    rayon = os.environ.get("RAYON_NUM_THREADS")
    if rayon is not None and rayon.strip() and not _readable(rayon, lambda n: n >= 0):
        said.append(f"RAYON_NUM_THREADS={rayon!r} is not an int >= 0 and is ignored; expected e.g. RAYON_NUM_THREADS=4 "
                    "(0: the number of CPUs, which applies instead)")
    return said


def _readable(value: Optional[str], ok: Callable[[int], bool]) -> bool:
    """Whether the core reads the setting ``value`` as a count ``ok`` takes:
    as Rust's usize parse takes it (spaces around it, a leading +)."""
    digits = (value or "").strip()
    return bool(re.fullmatch(r"\+?[0-9]+", digits)) and int(digits) < 2**64 and ok(int(digits))


#: The modules whose import is ``grapheme-mm``'s: its console script imports
#: the first; ``python -m`` runs any of them.
_COMMAND_LINE_MODULES = ("grapheme_multimodal.cli", "grapheme_multimodal", "grapheme_multimodal.__main__")


def _imported_for_the_command_line() -> bool:
    """Whether this import of the package is ``grapheme-mm``'s (the console
    script's import of the cli module, or ``python -m``), whose ``main``
    says each of :func:`unreadable_thread_settings` as its one-line warning:
    Python's, at import, showed a line of this file, and under
    ``PYTHONWARNINGS=error`` was a traceback before the command began."""
    frame = sys._getframe()
    while frame is not None:
        function, module = frame.f_code.co_name, frame.f_globals.get("__name__")
        if (function, module) == ("_find_and_load", "importlib._bootstrap"):  # the import of a module (its package first)
            if frame.f_locals.get("name") == _COMMAND_LINE_MODULES[0]:
                return True
        if (function, module) == ("_run_module_as_main", "runpy"):
            return frame.f_locals.get("mod_name") in _COMMAND_LINE_MODULES
        frame = frame.f_back
    return False


if not _imported_for_the_command_line():
    for _message in unreadable_thread_settings():
        warnings.warn(_message, RuntimeWarning)
