"""Files and the command line under production use, round s61 (an MLOps
reviewer): several programs writing one set of outputs at once, ..."""

from __future__ import annotations

import os
import threading
import types
from pathlib import Path

import pytest

from grapheme_multimodal import io as gio


# ------------------------------------------------------------------ two writers of one set of files at once
def test_two_writers_of_one_set_of_files_leave_one_writers_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two programs (here threads: the same calls) write one set of files
    at once, as two ``grapheme-mm embed --overwrite -o fused.npy --bindings
    b.npy`` runs, a retried batch job beside the one still running. The
    files left are one writer's set, never one's embeddings beside the
    other's binding strengths (of other rows, or as many rows of other
    events), which nothing would tell apart. A's commit is held between its
    two renames until B has either finished its own commit (the mix) or is
    waiting for A's to end."""
    x, y = tmp_path / "fused.npy", tmp_path / "bindings.npy"
    real_replace, real_flock = os.replace, gio.fcntl.flock
    a_between, b_done_or_waiting = threading.Event(), threading.Event()
    writer_b = threading.Thread(target=lambda: _write_pair(x, y, b"B", b_done_or_waiting))

    def replace(src, dst):  # A's first rename, then B's whole write while A's second waits
        real_replace(src, dst)
        if threading.current_thread() is threading.main_thread() and not a_between.is_set():
            a_between.set()
            writer_b.start()
            assert b_done_or_waiting.wait(timeout=30)

    def flock(fd, op):  # B waiting for a lock on a folder is B waiting for A's renames to end
        if threading.current_thread() is writer_b and os.path.isdir(f"/proc/self/fd/{fd}"):
            b_done_or_waiting.set()
        return real_flock(fd, op)

    shim = types.SimpleNamespace(**{k: getattr(gio.fcntl, k) for k in dir(gio.fcntl) if not k.startswith("_")})
    shim.flock = flock
    monkeypatch.setattr(gio, "fcntl", shim)
    monkeypatch.setattr(os, "replace", replace)
    _write_pair(x, y, b"A", threading.Event())
    writer_b.join(timeout=30)
    assert not writer_b.is_alive()
    assert (x.read_bytes(), y.read_bytes()) in ((b"A", b"A"), (b"B", b"B"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bindings.npy", "fused.npy"]


def _write_pair(x: Path, y: Path, content: bytes, done: threading.Event) -> None:
    try:
        gio.atomic_write_all([(x, lambda f: f.write(content)), (y, lambda f: f.write(content))])
    finally:
        done.set()
