"""The environment variables the core reads, and what it cannot read of them.

The core reads ``GRAPHEME_MM_NUM_THREADS`` as a positive int and passes
over anything else to ``RAYON_NUM_THREADS`` (an int; 0, as for Rayon, the
number of CPUs), then the CPUs; and ``GRAPHEME_MM_PORTABLE`` and
``GRAPHEME_MM_NO_AVX512`` as on when they are ``1``, ``true``, ``yes`` or
``on``, off for anything else. A typo (``GRAPHEME_MM_NUM_THREADS=4x``,
``GRAPHEME_MM_PORTABLE=y``) would change how the library computes without a
word: each is named in a ``RuntimeWarning`` at import, or, for
``grapheme-mm``, in its one-line warning. Read here, not through the core,
so that asking does not fix the thread count before the first computation.
"""

from __future__ import annotations

import os
import re
import sys
import warnings
from typing import Callable, Dict, List, Optional

from ._validation import int_of_digits

#: The on/off settings of the kernels (rust/core/src/kernels/mod.rs) -> what applies when one is ignored.
_KERNEL_FLAGS = {
    "GRAPHEME_MM_PORTABLE": "the fastest kernels the CPU has run",
    "GRAPHEME_MM_NO_AVX512": "the matrix tiles run on AVX-512F where the CPU has it",
}
#: What the core reads as on (env_flag in the core), and as off (anything else, but these are meant so).
_ON, _OFF = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")
#: What Rust's ``str::trim`` takes off (Unicode's White_Space): ``str.strip()`` also takes \x1c-\x1f, which
#: the core keeps, so a count with one of them was said to be read while the core passed over it.
_RUST_WHITESPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000"


def unreadable_settings() -> List[str]:
    """What the core cannot read of the environment's settings, one
    message each. ``RAYON_NUM_THREADS`` is named only where the library
    reads it (no readable ``GRAPHEME_MM_NUM_THREADS``)."""
    return list(_unreadable().values())


def blanked_unreadable_settings() -> Dict[str, str]:
    """Each of :func:`unreadable_settings`' variables -> ``""``: what the core
    reads as it reads the unreadable value (passed over; a flag off), and
    which is said at no import (the shell's way to unset a variable)."""
    return dict.fromkeys(_unreadable(), "")


def _unreadable() -> Dict[str, str]:
    """The name of each setting the core cannot read -> its message."""
    said = _unreadable_thread_settings()
    for name, otherwise in _KERNEL_FLAGS.items():
        value = os.environ.get(name)
        if value is not None and value.strip(_RUST_WHITESPACE).lower() not in _ON + _OFF:
            said[name] = (f"{name}={value!r} is neither on ({', '.join(_ON)}) nor off ({', '.join(_OFF[:-1])}) and is "
                          f"ignored as off: {otherwise}; expected e.g. {name}=1")
    return said


def _unreadable_thread_settings() -> Dict[str, str]:
    said = {}
    value = os.environ.get("GRAPHEME_MM_NUM_THREADS")
    if _readable(value, lambda n: n > 0):
        return said
    if value is not None and value.strip(_RUST_WHITESPACE):  # blank: `GRAPHEME_MM_NUM_THREADS= cmd`, the shell's way to unset it
        # a count of 2**64 or more is a positive int (and a larger one below it is clamped): "not a positive int" was false
        # (no int() of the digits: past 4,300 of them Python raised ValueError, and the import failed)
        what = ("is a count beyond 2**64 - 1 (the largest the core reads; a larger count below it is clamped to 4 "
                "threads per CPU)" if _digits(value).lstrip("+0") else "is not a positive int")
        said["GRAPHEME_MM_NUM_THREADS"] = (
            f"GRAPHEME_MM_NUM_THREADS={value!r} {what} and is ignored; expected e.g. "
            "GRAPHEME_MM_NUM_THREADS=4 (RAYON_NUM_THREADS, else the number of CPUs, applies instead)")
    rayon = os.environ.get("RAYON_NUM_THREADS")
    if rayon is not None and rayon.strip(_RUST_WHITESPACE) and not _readable(rayon, lambda n: n >= 0):
        what = "is a count beyond 2**64 - 1 (the largest the library reads)" if _digits(rayon) else "is not an int >= 0"
        said["RAYON_NUM_THREADS"] = (f"RAYON_NUM_THREADS={rayon!r} {what} and is ignored; expected e.g. "
                                     "RAYON_NUM_THREADS=4 (0: the number of CPUs, which applies instead)")
    return said


def _digits(value: str) -> str:
    """The decimal digits ``value`` is, as the core's usize parse reads a
    count (spaces around them, a leading +), or ``""`` when it is no count."""
    digits = value.strip(_RUST_WHITESPACE)
    return digits if re.fullmatch(r"\+?[0-9]+", digits) else ""


def _readable(value: Optional[str], ok: Callable[[int], bool]) -> bool:
    """Whether the core reads the setting ``value`` as a count ``ok`` takes:
    as Rust's usize parse takes it (spaces around it, a leading +, leading
    zeros). Its digits are read only when there are no more of them than
    2**64 has: ``int()`` of more than 4,300 raised ValueError (Python's
    limit), and ``import grapheme_multimodal`` failed with it."""
    digits = (value or "").strip(_RUST_WHITESPACE)
    if not re.fullmatch(r"\+?[0-9]+", digits):
        return False
    try:
        count = int_of_digits(digits, most_digits=len(str(2**64)))
    except ValueError:  # more digits than 2**64 has
        return False
    return count < 2**64 and ok(count)


#: The modules whose import is ``grapheme-mm``'s: its console script imports
#: the first; ``python -m`` runs any of them.
_COMMAND_LINE_MODULES = ("grapheme_multimodal.cli", "grapheme_multimodal", "grapheme_multimodal.__main__")
#: The console script's name (``sys.argv[0]``'s), as installers write it: ``-script.py`` and ``.exe`` on Windows.
_CONSOLE_SCRIPT = re.compile(r"grapheme-mm(-script\.pyw?|\.exe)?", re.IGNORECASE)


def _imported_for_the_command_line() -> bool:
    """Whether this import of the package is ``grapheme-mm``'s (the console
    script's import of the cli module, or ``python -m``), whose ``main``
    says each of :func:`unreadable_settings` as its one-line warning:
    Python's, at import, showed a line of this package, and under
    ``PYTHONWARNINGS=error`` was a traceback before the command began.
    A program's own ``import grapheme_multimodal.cli`` (for ``train_flags``,
    say) is no command line: deferred to a ``main`` it never called, the
    warning was never said."""
    frame = sys._getframe()
    while frame is not None:
        function, module = frame.f_code.co_name, frame.f_globals.get("__name__")
        if (function, module) == ("_find_and_load", "importlib._bootstrap"):
            # importlib's import of a module, which imports its package first
            if frame.f_locals.get("name") == _COMMAND_LINE_MODULES[0] and _is_console_script():
                return True
        if (function, module) == ("_run_module_as_main", "runpy"):
            return frame.f_locals.get("mod_name") in _COMMAND_LINE_MODULES
        frame = frame.f_back
    return False


def _is_console_script() -> bool:
    """Whether this process is the installed ``grapheme-mm`` script."""
    argv = getattr(sys, "argv", None) or [""]
    return _CONSOLE_SCRIPT.fullmatch(os.path.basename(str(argv[0]))) is not None


def settings_unsaid() -> List[str]:
    """The :func:`unreadable_settings` that the package's import did not
    warn of: what the command line's ``main`` says. All of them after the
    command line's import, none that a program's import said already (said
    twice, the one warning was two)."""
    return [message for message in unreadable_settings() if message not in _SAID_AT_IMPORT]


_SAID_AT_IMPORT: List[str] = [] if _imported_for_the_command_line() else unreadable_settings()
for _message in _SAID_AT_IMPORT:
    warnings.warn(_message, RuntimeWarning)
