"""The README's examples run as written."""

import importlib.util
import os
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
#: Ray is in the test extra: CI must run the Ray example, not skip it.
HAS_RAY = bool(os.environ.get("CI")) or importlib.util.find_spec("ray") is not None


def python_blocks(section: str) -> list:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"## {section}")
    end = text.find("\n## ", start + 1)
    return re.findall(r"```python\n(.*?)```", text[start : end if end > 0 else None], re.S)


def test_quick_start_runs(capsys):
    blocks = python_blocks("Quick start")
    assert blocks, "the README has a python quick start"
    code = blocks[0]
    assert len(code.strip().splitlines()) <= 12
    exec(compile(code, "README quick start", "exec"), {})
    out = capsys.readouterr().out
    assert "(1000, 7, 64) (1000, 64)" in out


@pytest.mark.ray
@pytest.mark.timeout(120)
@pytest.mark.skipif(not HAS_RAY, reason='needs Ray: pip install -e ".[test]"')
def test_scaling_out_with_ray_runs(ray_session, tmp_path, monkeypatch, capsys):
    """The Ray example, on the session's local cluster (the snippet itself
    relies on Ray starting one when none is running)."""
    blocks = python_blocks("Scaling out with Ray")
    assert len(blocks) == 1
    monkeypatch.chdir(tmp_path)
    exec(compile(blocks[0], "README scaling out", "exec"), {})
    assert "2000 (64,)" in capsys.readouterr().out
    assert (tmp_path / "model.safetensors").exists()
