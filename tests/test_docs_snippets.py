"""Every ```python block of the docs runs as written.

ML engineers copy code from ``docs/*.md``, ``README.md`` and
``benchmarks/README.md``; a snippet that calls a renamed function or
passes a removed argument must fail here, not in their session. Each block
runs on its own, as a user would paste it: in a fresh namespace, in a
temporary working directory (what it writes stays there). A block that a
``text`` block follows directly (at most one line of prose between them,
e.g. "prints") shows its output, and must print it.

A block that cannot run here is marked in the markdown, on the line just
before its fence, with the reason::

    <!-- no-test: needs Ray (4 workers) -->

Such blocks are only compiled (their syntax checked). Keep them few: a
block that needs Ray, torch or the network, that takes long, or that
another test already runs (``tests/test_readme.py`` runs the README's quick
start, its learning snippet and its Ray example and compares their output).
"""

from __future__ import annotations

import contextlib
import io
import re
import textwrap
from pathlib import Path
from typing import List, NamedTuple, Optional

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md", ROOT / "benchmarks" / "README.md"]

_FENCE = re.compile(r"^([ \t]*)```([\w-]*)[^\n]*\n(.*?)^\1```[ \t]*$", re.S | re.M)  # also fences indented in a list
_MARK = re.compile(r"<!--\s*no-test\b(.*?)-->", re.S)


class Block(NamedTuple):
    path: Path
    line: int
    code: str
    no_test: Optional[str]  # the reason given in the markdown, or None
    shown_output: Optional[str]  # the text block that follows it, if any

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path.name}:{self.line}"


def python_blocks(path: Path) -> List[Block]:
    """The ```python blocks of a markdown file, with their no-test reasons."""
    text = path.read_text(encoding="utf-8")
    fences = list(_FENCE.finditer(text))
    marks = {m.end(): m for m in _MARK.finditer(text)}
    blocks, used = [], set()
    for i, fence in enumerate(fences):
        if fence.group(2) != "python":
            continue
        before = text[: fence.start()].rstrip()
        mark = marks.get(len(before))
        reason = None
        if mark is not None:
            used.add(mark.end())
            reason = mark.group(1).strip().lstrip(":").strip()
            if not reason:
                raise ValueError(f"{path}:{text.count(chr(10), 0, fence.start()) + 1}: <!-- no-test --> without a reason")
        shown = None
        if i + 1 < len(fences) and fences[i + 1].group(2) == "text":
            between = text[fence.end() : fences[i + 1].start()].strip()
            if "\n" not in between:
                shown = textwrap.dedent(fences[i + 1].group(3))
        line = text.count("\n", 0, fence.start()) + 1
        blocks.append(Block(path, line, textwrap.dedent(fence.group(3)), reason, shown))
    stray = [text.count("\n", 0, end) + 1 for end in marks if end not in used]
    if stray:
        raise ValueError(f"{path}: <!-- no-test --> not just before a ```python block, at lines {stray}")
    return blocks


def compiled(block: Block):
    """The block's code object; a traceback names the markdown file and the
    line in it (as ``<README.md>:270``, so that pytest does not print the
    whole file as the frame's source)."""
    return compile("\n" * block.line + block.code, f"<{block.name.rsplit(':', 1)[0]}>", "exec")


def run_block(block: Block) -> str:
    """Runs the block in a fresh namespace; returns what it printed."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compiled(block), {"__name__": "__docs__"})
    return out.getvalue()


def output_mismatch(block: Block, printed: str) -> Optional[str]:
    """Why ``printed`` is not the output the docs show after the block (None
    if it is, or if they show none). Numbers within test_readme's tolerance
    pass where the README's AVX2+FMA kernels do not run."""
    from test_readme import close_enough, same_kernels_as_readme

    shown = block.shown_output
    if shown is None or printed == shown or (not same_kernels_as_readme() and close_enough(printed, shown)):
        return None
    return f"{block.name} shows:\n{shown}\nbut prints:\n{printed}"


ALL = [block for path in DOCS for block in python_blocks(path)]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("block", [b for b in ALL if b.no_test is None], ids=lambda b: b.name)
def test_snippet_runs_as_written(block, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    try:
        printed = run_block(block)
    except ModuleNotFoundError as err:  # an optional dependency (matplotlib, networkx); never ours
        if (err.name or "").split(".")[0] == "grapheme_multimodal":
            raise
        pytest.skip(f"{block.name} needs {err.name}")
    mismatch = output_mismatch(block, printed)
    if mismatch:
        pytest.fail(mismatch, pytrace=False)


@pytest.mark.parametrize("block", [b for b in ALL if b.no_test is not None], ids=lambda b: b.name)
def test_exempt_snippet_compiles(block):
    compiled(block)


def test_the_docs_have_snippets_to_run():
    """The extraction finds the blocks (a broken pattern would skip them all)
    and the exemptions stay few."""
    assert len([b for b in ALL if b.no_test is None]) >= 3
    assert len([b for b in ALL if b.no_test is not None]) <= 6, [(b.name, b.no_test) for b in ALL if b.no_test]


def test_a_stale_snippet_fails(tmp_path):
    """A snippet calling a name the package no longer has fails the test;
    a marked one is exempt, and a mark with no reason or no block is refused."""
    doc = tmp_path / "doc.md"
    doc.write_text(
        "Text.\n\n```python\nimport grapheme_multimodal as gm\n\ngm.LearnableMultiModal(seed=0).fuse_evnt(None)\n```\n\n"
        "<!-- no-test: needs a cluster -->\n```python\nimport grapheme_multimodal as gm\ngm.not_there()\n```\n"
        "```python\nprint(1 + 1)\n```\nprints\n\n```text\n2\n```\n",
        encoding="utf-8",
    )
    stale, exempt, printing = python_blocks(doc)
    assert (stale.line, stale.no_test, exempt.no_test) == (3, None, "needs a cluster")
    with pytest.raises(AttributeError, match="fuse_evnt"):
        run_block(stale)
    assert run_block(printing) == printing.shown_output == "2\n"
    assert output_mismatch(printing, "2\n") is None and "but prints:\n3" in output_mismatch(printing, "3\n")
    doc.write_text("- a list item:\n\n  ```python\n  x = 1\n  print(x)\n  ```\n", encoding="utf-8")
    (indented,) = python_blocks(doc)
    assert run_block(indented) == "1\n"
    doc.write_text("<!-- no-test -->\n```python\npass\n```\n", encoding="utf-8")
    with pytest.raises(ValueError, match="without a reason"):
        python_blocks(doc)
    doc.write_text("<!-- no-test: why -->\n\nSome prose.\n\n```python\npass\n```\n", encoding="utf-8")
    with pytest.raises(ValueError, match="not just before"):
        python_blocks(doc)
