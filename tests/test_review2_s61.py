"""Round s61's second review of the day's changes (a hostile reader): each
test failed before its fix."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import cli

from ctrl_c_sweep import interrupted_at


# ----------------------------------------------------- the command line's shared streams under a Ctrl-C
@pytest.mark.usefixtures("default_sigint")  # CI runs pytest with SIGINT ignored: no Ctrl-C would land
@pytest.mark.skipif(sys.platform == "win32", reason="a real SIGINT sent to the process itself")
def test_a_ctrl_c_as_the_command_line_replaces_or_puts_back_its_streams_leaves_the_programs_own(tmp_path: Path) -> None:
    """Before: ``cli.main`` (a program's own call of it, a notebook's) made
    its shared changes (``sys.stdout`` and ``sys.stderr`` replaced by its
    wrappers, stdout's error handler set) and then counted itself among
    their users in a second step, outside the try that undoes them: a
    Ctrl-C between the two (15 points of ``info``) left the program's
    streams the command line's wrappers for good, and a count that no
    later call brought back to 0, so none put them back. Now the change
    and its count are one step, and so are the count out and the undo."""
    gm.LearnableMultiModal(input_dims={"visual": 3}, embed_dim=4, hidden_dim=4, num_heads=1, seed=0).save(tmp_path / "m.st")
    shared = {"_shared_change", "_replacing_stream", "replace", "put_back", "_standard_error_open",
              "_standard_output_errors", "_names_printable", "make", "undo", "open_stderr"}
    stdout, stderr = sys.stdout, sys.stderr
    errors = getattr(stdout, "errors", None)
    wrong, n = [], 0
    while True:
        n += 1
        hit = interrupted_at(n, lambda: cli.main(["info", str(tmp_path / "m.st")]),
                             lambda code: code.co_filename == cli.__file__ and code.co_name in shared)
        left = [what for what, kept in (("sys.stdout", sys.stdout is stdout), ("sys.stderr", sys.stderr is stderr),
                                        ("stdout's errors", getattr(sys.stdout, "errors", None) == errors),
                                        ("a call counted", not any(cli._shared_users.values()))) if not kept]
        if left:
            wrong.append((n, left))
            sys.stdout, sys.stderr = stdout, stderr  # the next points start from the program's own streams
            cli._shared_users.clear()
            cli._shared_tokens.clear()
        if not hit:
            break
    assert n > 20, f"the sweep reached {n} points only"
    assert wrong == [], f"a Ctrl-C at these points left the command line's changes in place: {wrong}"
