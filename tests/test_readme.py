"""Every output the README shows is what the command prints today.

The README's shown runs are executed and their output compared with the
block below them: the quick start and the learning snippet (their ``text``
block), the toy-file commands (a ``console`` block: ``$ `` lines are
commands, the lines under them their standard output) and the demo's table
(``grapheme-mm demo``, the longest: marked ``slow``, deselect with
``-m "not slow"``).

The numbers are deterministic for a seed: training draws every random
choice from it, the thread pool never changes a result, and the anchors run
BLAS on one thread. They do depend on the CPU's kernel path (float rounding
of the AVX2+FMA kernels, on which the README's numbers were made, differs
from the portable ones): where those kernels do not run, numbers are
compared with a tolerance (5 % relative or 0.03 absolute) and every other
character exactly.

After a change that moves the numbers, ``GRAPHEME_MM_UPDATE_README=1
python -m pytest tests/test_readme.py`` writes what the commands print into
the README (review the diff: prose that quotes numbers is not updated).
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import platform
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

# the README's commands as written: run once, on the main Python
# (.ci/python-versions.sh leaves main_only out on 3.9 and 3.13).
pytestmark = pytest.mark.main_only

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
UPDATE = os.environ.get("GRAPHEME_MM_UPDATE_README") == "1"
_FENCE = re.compile(r"^```([\w-]*)\n(.*?)^```\n", re.S | re.M)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def section_blocks(heading: str) -> list:
    """The fenced blocks ``(language, body)`` of the README section ``## heading``."""
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {heading}")
    end = text.find("\n## ", start + 1)
    return [(m.group(1), m.group(2)) for m in _FENCE.finditer(text[start : end if end > 0 else None])]


def code_and_output(heading: str, language: str) -> tuple:
    """The section's first ``language`` block and the ``text`` block right after it."""
    blocks = section_blocks(heading)
    index = next(i for i, (lang, _) in enumerate(blocks) if lang == language)
    assert index + 1 < len(blocks) and blocks[index + 1][0] == "text", f"{heading}: no text block after the code"
    return blocks[index][1], blocks[index + 1][1]


def same_kernels_as_readme() -> bool:
    """Whether the AVX2+FMA kernels (the README's) run here."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: cannot tell, so compare with a tolerance
        return False
    return all(re.search(rf"\b{flag}\b", flags) for flag in ("avx2", "fma"))


def close_enough(actual: str, expected: str) -> bool:
    if _NUMBER.split(actual) != _NUMBER.split(expected):
        return False
    pairs = zip(_NUMBER.findall(actual), _NUMBER.findall(expected))
    return all(math.isclose(float(a), float(e), rel_tol=0.05, abs_tol=0.03) for a, e in pairs)


def check_output(actual: str, shown: str) -> None:
    """``actual`` must be what the README shows; in update mode it is written there."""
    if actual == shown:
        return
    if UPDATE:
        text = README.read_text(encoding="utf-8")
        assert text.count(shown) == 1, "the shown block is not unique in the README"
        README.write_text(text.replace(shown, actual), encoding="utf-8")
        return
    if not same_kernels_as_readme() and close_enough(actual, shown):
        return
    pytest.fail(f"the README shows:\n{shown}\nbut the command prints:\n{actual}", pytrace=False)


def run_python(code: str, name: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, name, "exec"), {"__name__": "__readme__"})
    return out.getvalue()


def test_quick_start_prints_what_the_readme_shows():
    code, shown = code_and_output("Quick start", "python")
    assert len(code.strip().splitlines()) <= 12, "the quick start stays short"
    check_output(run_python(code, "README quick start"), shown)


def test_learning_snippet_prints_what_the_readme_shows():
    code, shown = code_and_output("Learning", "python")
    check_output(run_python(code, "README learning"), shown)


def console_session(heading: str) -> list:
    """``[(command, shown output)]`` of the section's ``console`` block."""
    (body,) = [b for lang, b in section_blocks(heading) if lang == "console"]
    session, command, output = [], None, []
    for line in body.splitlines(keepends=True):
        if line.startswith("$ "):
            if command is not None:
                session.append((command, "".join(output)))
            command, output = line[2:], []
        elif command is not None and command.rstrip().endswith("\\"):
            command += line
        else:
            output.append(line)
    session.append((command, "".join(output)))
    return session


def test_toy_example_prints_what_the_readme_shows(tmp_path):
    """The worked example on toy files, run as written (in a scratch folder)."""
    session = console_session("Your own files: `grapheme-mm train` / `embed` / `info`")
    assert [shlex.split(c)[:2] for c, _ in session] == [
        ["python", "examples/make_toy_files.py"], ["grapheme-mm", "train"], ["grapheme-mm", "embed"], ["grapheme-mm", "info"]
    ]
    programs = {"python": [sys.executable], "grapheme-mm": [sys.executable, "-m", "grapheme_multimodal"]}
    for command, shown in session:
        argv = shlex.split(command.replace("\\\n", " "))
        argv = programs[argv[0]] + [str(ROOT / a) if a.startswith("examples/") else a for a in argv[1:]]
        done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, (command, done.stderr)
        check_output(done.stdout, shown)  # progress bars go to stderr

    # The prose beside it: the binder ranks a caption's own image first (ROC-AUC 0.99).
    from grapheme_multimodal import LearnableMultiModal
    from grapheme_multimodal.evaluation import binder_auc

    model = LearnableMultiModal.load(tmp_path / "toy" / "model.safetensors")
    captions = (tmp_path / "toy" / "captions.txt").read_text(encoding="utf-8").splitlines()
    text = model.config.graph_featurizer("linguistic")(captions)
    emb = model.encode({"visual": np.load(tmp_path / "toy" / "images.npy"), "linguistic": text})
    assert round(binder_auc(model.bind, {"visual": emb[:, 0], "linguistic": emb[:, 2]}), 2) >= 0.99


@pytest.mark.slow
def test_demo_prints_the_readme_table(tmp_path):
    """``grapheme-mm demo`` (about 20 s on 2 cores): its table is the README's,
    and it writes what it says."""
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    from grapheme_multimodal.cli import main
    from grapheme_multimodal.datasets import load_multiple_features

    try:
        load_multiple_features()
    except (FileNotFoundError, ModuleNotFoundError) as err:
        pytest.skip(str(err))
    (shown,) = [b for lang, b in section_blocks("The demo: real data, beside exact CCA") if lang == "text"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["demo", "--out", str(tmp_path / "demo"), "--no-progress", "--json", str(tmp_path / "demo.json")])
    assert code == 0
    printed = out.getvalue()
    table = printed[printed.index("measure (held-out") : printed.index("\ncheckpoint:")].rstrip("\n") + "\n"
    check_output(table, shown)
    for name in ("model.safetensors", "training_curves.png", "attention_by_digit.png"):
        assert (tmp_path / "demo" / name).stat().st_size > 0
    import json

    report = json.loads((tmp_path / "demo.json").read_text())
    assert len(report["rows"]) == len(table.split("\n\n")[0].splitlines()) - 2 and report["notes"]


@pytest.mark.ray
@pytest.mark.timeout(120)
def test_scaling_out_with_ray_prints_what_the_readme_shows(ray_session, tmp_path, monkeypatch):
    """The Ray example, run as written in a scratch folder, on the session's
    local cluster (the snippet itself relies on Ray starting one when none
    is running)."""
    code, shown = code_and_output("Scaling out with Ray", "python")
    monkeypatch.chdir(tmp_path)
    check_output(run_python(code, "README scaling out"), shown)
    assert (tmp_path / "model.safetensors").exists()
