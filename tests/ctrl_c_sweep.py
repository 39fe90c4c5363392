"""A real Ctrl-C at the ``n``-th point of a call: the harness of the tests
that sweep every point of a save or a load where a Ctrl-C can land
(tests/test_trust_fresh_eyes_s52.py, in a fresh interpreter, and
tests/test_trust_leftovers_s53.py). The caller's SIGINT handler must be
Python's own (conftest.py's ``default_sigint``; CI runs pytest with SIGINT
ignored)."""

from __future__ import annotations

import inspect
import os
import signal
import sys
from types import CodeType
from typing import Any, Callable, Optional, Tuple, Type


def interrupted_at(n: int, call: Callable[[], Any], watched: Callable[[CodeType], bool],
                   passes: Tuple[Type[BaseException], ...] = (), handler: Optional[Callable[[], Any]] = None) -> bool:
    """Runs ``call`` with a SIGINT sent at the ``n``-th point (a call, or a C
    function's return) in code ``watched`` says yes to, or in what that code
    calls; whether it was interrupted (an exception of ``passes`` counts as
    not). ``handler`` runs in the ``except KeyboardInterrupt`` clause, as a
    program's own handler of the interrupt (its traceback, and every frame
    it holds, still alive)."""
    count = [0]

    def profile(frame: Any, event: str, arg: Any) -> None:
        # not a generator's resumption (a context manager's exit): on Python 3.9 a profile function raising
        # there ended the frame without its finally blocks, which no real Ctrl-C can do (the interpreter checks
        # for signals inside the resumed frame, its try blocks in place)
        resumed = event == "call" and frame.f_code.co_flags & inspect.CO_GENERATOR
        if event in ("call", "c_return") and not resumed and (
                watched(frame.f_code) or (frame.f_back is not None and watched(frame.f_back.f_code))):
            count[0] += 1
            if count[0] == n:
                sys.setprofile(None)
                os.kill(os.getpid(), signal.SIGINT)  # a Ctrl-C, raised where the interpreter checks next

    sys.setprofile(profile)
    try:
        call()
        return False
    except KeyboardInterrupt:
        sys.setprofile(None)
        if handler is not None:
            handler()
        return True
    except passes:
        return False
    finally:
        sys.setprofile(None)
