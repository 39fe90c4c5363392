"""Where and whether the library's warnings are said: at the user's line
(the first frame outside the package, scikit-learn and joblib; in a thread of
:func:`~._parallel.run_tasks`, the line that started the threads), held or
dropped inside a :func:`holding_warnings` block (the command line's one-line
warnings), and a third party's warning ignored for a block, the process's
other warning filters left as they are."""

from __future__ import annotations

import contextlib
import contextvars
import re
import sys
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

from ._validation import context_set

if TYPE_CHECKING:
    from types import FrameType


#: The packages whose frames a warning steps over to reach the user's line (see :func:`warn_at_caller`).
_INNER_PACKAGES = frozenset({"grapheme_multimodal", "sklearn", "joblib"})


#: The packages whose frames begin a thread's stack (a pool's worker): no user's line.
_THREAD_MACHINERY = frozenset({"threading", "concurrent"})


#: Where the user's call that started the threads of :func:`~._parallel.run_tasks` stands: its file, line and module
#: globals, or None. Set in the threads' contexts: a warning in one of them is said there (see :func:`warn_at_caller`).
TASKS_CALLER: "contextvars.ContextVar[Optional[Tuple[str, int, Dict[str, Any]]]]" = contextvars.ContextVar(
    "TASKS_CALLER", default=None)


def _outside(frame: "Optional[FrameType]") -> "Tuple[Optional[FrameType], int]":
    """The first frame from ``frame`` outwards outside :data:`_INNER_PACKAGES`
    (None past the outermost), and its stack level counted from ``frame`` (1)."""
    level = 1
    while frame is not None and _package(frame) in _INNER_PACKAGES:
        frame, level = frame.f_back, level + 1
    return frame, level


def _package(frame: "FrameType") -> str:
    return str(frame.f_globals.get("__name__", "")).partition(".")[0]


def _at_tasks_caller(frame: "Optional[FrameType]") -> "Optional[Tuple[str, int, Dict[str, Any]]]":
    """:data:`TASKS_CALLER` where ``frame``, the first outside the package, is
    no user's (the bottom of a thread of :func:`~._parallel.run_tasks`), else None."""
    if frame is None or _package(frame) in _THREAD_MACHINERY:
        return TASKS_CALLER.get()
    return None


def tasks_caller() -> "Optional[Tuple[str, int, Dict[str, Any]]]":
    """For :data:`TASKS_CALLER`: where the user's call that leads to the
    caller stands (file, line, module globals); in a thread of
    :func:`~._parallel.run_tasks`, where the call that started it stands."""
    frame, _ = _outside(sys._getframe(1))
    if frame is None or _package(frame) in _THREAD_MACHINERY:
        return TASKS_CALLER.get()
    return frame.f_code.co_filename, frame.f_lineno, frame.f_globals


class HeldWarnings:
    """The library's warnings :func:`holding_warnings` keeps from being said:
    those of a category in ``dropped`` are dropped; the others, when
    ``held`` is a list, are appended to it as ``(message, category)``, else
    said as ever. Inside an ``outer`` block, what that block drops is
    dropped too, and a block that holds nothing itself holds in the
    outer's list: a block that only drops, opened inside one that holds
    (the command line's), had the others said as Python warnings, past the
    outer block's holding."""

    def __init__(self, dropped: Tuple["type[Warning]", ...], hold: bool, outer: "Optional[HeldWarnings]" = None) -> None:
        self.dropped = dropped + (outer.dropped if outer is not None else ())
        self.held: Optional[List[Tuple[str, "type[Warning]"]]] = [] if hold else (outer.held if outer is not None else None)


_HELD_WARNINGS: "contextvars.ContextVar[Optional[HeldWarnings]]" = contextvars.ContextVar("_HELD_WARNINGS", default=None)


@contextlib.contextmanager
def holding_warnings(dropped: Tuple["type[Warning]", ...] = (), hold: bool = True) -> Iterator[HeldWarnings]:
    """In the block, the library's warnings (:func:`warn_at_caller`) of this
    context (this thread, and the tasks it runs: :func:`~._parallel.run_tasks`)
    are not said but dropped (a category in ``dropped``) or, with ``hold``,
    held for the caller to say its own way (the command line's one-line
    warnings). Not ``warnings.catch_warnings()``: it swaps the whole
    process's filters and ``showwarning`` and puts back what it found, so a
    filter another thread set meanwhile was undone, and that thread's
    warnings were said the block's way (it is not thread-safe)."""
    with context_set(_HELD_WARNINGS, HeldWarnings(dropped, hold, _HELD_WARNINGS.get())) as held:
        yield held


@contextlib.contextmanager
def ignoring_warning(message: str, category: "type[Warning]") -> Iterator[None]:
    """The warnings of ``category`` whose text starts with ``message``
    ignored in the block (a third party's: Ray's at ``ray.init``), by a
    filter of the block's own, first in the list, taken out again after it
    (that very filter: found by identity), the process's other filters left
    as they are. Not ``warnings.catch_warnings()``, which puts back the whole
    list as it found it (a filter another thread set meanwhile was undone),
    nor ``filterwarnings``, which takes out an equal filter before it adds
    its own (the program's own one was lost for good at the block's end, and
    an inner block's end took out an outer's); nor one shared with an equal
    filter already there, which may stand behind the program's ``error``
    filter (the tip raised in the block)."""
    mine = ("ignore", re.compile(message, re.I), category, None, 0)  # as filterwarnings compiles it
    warnings.filters.insert(0, mine)
    _filters_changed()
    try:
        yield
    finally:
        # that very tuple (remove() would take the first equal one: maybe the program's own); none when
        # another thread reset the filters meanwhile
        at = next((i for i, f in enumerate(warnings.filters) if f is mine), None)
        if at is not None:
            with contextlib.suppress(IndexError):  # the list shortened by another thread in the meantime
                del warnings.filters[at]
        _filters_changed()


def _filters_changed() -> None:
    """Tells ``warnings`` its filters changed, as ``filterwarnings`` does:
    else a module's registry kept what it decided under the old ones (a
    warning ignored in the block, ignored after it too)."""
    changed = getattr(warnings, "_filters_mutated", None)
    if changed is not None:
        changed()


def filters_action(message: str, category: "type[Warning]", module: str, lineno: int) -> str:
    """The action (``"ignore"``, ``"error"``, ``"default"``...) the process's
    warning filters give the warning ``message`` of ``category`` said from
    line ``lineno`` of ``module``: that of the first filter that matches it,
    by the rules of ``warnings.warn_explicit``, else ``warnings.defaultaction``.
    For the warnings the command line says its own way (held ones too),
    which never reach ``warnings``: under ``PYTHONWARNINGS=ignore`` it
    printed them all the same. Read, not tried: ``warnings.catch_warnings(record=True)``
    would swap the whole process's filters, undoing a filter another thread set meanwhile."""
    for action, text, kind, where, line in list(warnings.filters):  # a copy: another thread may change the list
        if ((text is None or text.match(message)) and issubclass(category, kind)
                and (where is None or where.match(module)) and line in (0, lineno)):
            return str(action)
    return str(warnings.defaultaction)


def warn_at_caller(message: str, category: "type[Warning]") -> None:
    """``warnings.warn(message, category)`` at the user's line: the first
    frame outside the package (and scikit-learn, whose wrappers call the
    estimator's ``transform``, and joblib, through which ``cross_validate``
    and ``GridSearchCV`` call ``fit``), at whatever depth the public method
    that warns sits; but in a thread of :func:`~._parallel.run_tasks` (the
    members of an estimator fitted with ``n_jobs`` > 1), whose stack holds
    no frame of the user's, at the line of the call that started the
    threads: ``stacklevel`` reached the pool's own frames, and the warning
    pointed at a line of concurrent/futures/thread.py. In a
    :func:`holding_warnings` block, held or dropped instead of said; held
    unless the process's warning filters ignore it there (an ``"error"``
    filter holds it too: the command line says its warnings as its own
    one-line warnings under ``-W error``)."""
    holding = _HELD_WARNINGS.get()
    if holding is not None and issubclass(category, holding.dropped):
        return
    frame, level = _outside(sys._getframe(1))
    at = _at_tasks_caller(frame)
    if holding is not None and holding.held is not None:
        if at is not None:
            module, lineno = str(at[2].get("__name__", "<string>")), at[1]
        elif frame is not None:
            module, lineno = str(frame.f_globals.get("__name__", "<string>")), frame.f_lineno
        else:  # past the outermost frame: where warnings.warn says it then
            module, lineno = "sys", 1
        if filters_action(message, category, module, lineno) != "ignore":
            holding.held.append((message, category))
        return
    if at is None:
        warnings.warn(message, category, stacklevel=level + 1)
        return
    filename, lineno, module_globals = at
    # as warnings.warn says it from a frame: the module's name and registry (once per line under "default"). Not
    # module_globals, which warn_explicit gives the module's loader to read the source line: the loader of __main__
    # in the REPL or `python -c` (BuiltinImporter) raises ImportError ("'__main__' is not a built-in module"), and
    # so did every fit with n_jobs > 1 that warned there; warnings.warn passes none either (the line is read by name)
    warnings.warn_explicit(message, category, filename, lineno, str(module_globals.get("__name__", "<string>")),
                           module_globals.setdefault("__warningregistry__", {}))
