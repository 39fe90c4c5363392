"""Mends of session 63: error messages whose advice did not fit the case
that reached them, and a weight of -0 shown as -0.0."""
import math
import os
import struct
import threading
from pathlib import Path

import numpy as np
import pytest

from grapheme_multimodal import io


def _staged_in(folder: Path) -> list:
    """Two files' worth of staging in ``folder``, as much of it as the folder lock reads."""
    return [io._Staged(folder / n, folder / n, n, folder, None, -1, "", folder / n) for n in ("x.bin", "y.bin")]


@pytest.mark.skipif(io.fcntl is None, reason="no folder locks (Windows)")
@pytest.mark.parametrize("proc_locks", [True, False], ids=["/proc/locks names it", "no /proc/locks (macOS)"])
def test_a_folder_held_by_another_thread_of_this_process_is_not_called_a_stopped_process(monkeypatch, tmp_path,
                                                                                       proc_locks):
    """A save whose folder another thread of this process held locked (a
    flock is the open file's: a second open here waits for it too) timed
    out saying "(this process) ... its process is stopped (Ctrl-Z, SIGSTOP)
    ... kill -CONT", advice that cannot help a process that runs (and,
    where /proc/locks names no holder, the same without "(this process)").
    Now it says the other save is this process's own, stuck in the middle,
    and what a signal handler must not do; nothing written."""
    if proc_locks and not os.path.exists("/proc/locks"):
        pytest.skip("the lock's holder is read from Linux's /proc/locks")
    if not proc_locks:
        monkeypatch.setattr(io, "_folder_lock_holder", lambda folder: None)
    locked, done, held = threading.Event(), threading.Event(), []

    def hold_the_folder() -> None:
        try:
            io._lock_folders(_staged_in(tmp_path), held)
            locked.set()
            done.wait(10)
        finally:
            io._close_all(held)

    holder = threading.Thread(target=hold_the_folder)
    holder.start()
    try:
        assert locked.wait(10)
        monkeypatch.setattr(io, "FOLDER_LOCK_WAIT_S", 0.1)
        with pytest.raises(TimeoutError) as raised:
            io.atomic_write_all([(tmp_path / "a.bin", lambda f: f.write(b"a")),
                                 (tmp_path / "b.bin", lambda f: f.write(b"b"))])
    finally:
        done.set()
        holder.join(10)
    said = str(raised.value)
    assert said.startswith(f"path: {str(tmp_path / 'a.bin')!r} cannot be saved: its folder {str(tmp_path)!r} has been "
                           "locked for 0.1 s by another save of several files into it in this process (another "
                           "thread's, or the one a signal handler interrupted)"), said
    assert "kill -CONT" not in said and "Ctrl-Z" not in said, said
    assert "nothing was written" in said and "signal handler while a save is under way" in said, said
    assert list(tmp_path.iterdir()) == []
    io.atomic_write_all([(tmp_path / "a.bin", lambda f: f.write(b"a")), (tmp_path / "b.bin", lambda f: f.write(b"b"))])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "b.bin"]


_REMOVED = ("names a file in the current folder, which has been removed; expected a file name in a folder that "
            "exists (an absolute one, or change to such a folder first)")


@pytest.fixture
def in_removed_folder(monkeypatch, tmp_path):
    """The working folder, removed (restored after the test)."""
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()


@pytest.mark.parametrize("read", [
    lambda: __import__("grapheme_multimodal").LearnableMultiModal.load("rel.gm"),
    lambda: __import__("grapheme_multimodal").ExperienceBuffer(4, embed_dim=8).load("rel.buf"),
    lambda: __import__("grapheme_multimodal").load_models("rel.gm"),
    lambda: __import__("grapheme_multimodal").load_ensemble("rel.gm"),
], ids=["LearnableMultiModal.load", "ExperienceBuffer.load", "load_models", "load_ensemble"])
def test_a_load_in_a_removed_working_folder_says_the_folder_was_removed(in_removed_folder, read):
    """A save by a relative name in a removed working folder said so; a
    load said only "no file at 'rel.gm'", which reads as a typo. Now the
    load says what the save says."""
    with pytest.raises(FileNotFoundError) as raised:
        read()
    assert str(raised.value).startswith("path: no file at "), raised.value
    assert str(raised.value).endswith(f": it {_REMOVED}"), raised.value


def test_the_command_lines_readers_in_a_removed_working_folder_say_the_folder_was_removed(in_removed_folder, capsys):
    """``grapheme-mm info rel.gm``, a data file, and a .npz key off a missing
    file, in a removed working folder: each said only that the file was not
    there. Now each says the folder was removed; an absolute name is not
    told so."""
    from grapheme_multimodal import cli, files

    assert cli.main(["info", "rel.gm"]) == 2
    assert capsys.readouterr().err.strip().endswith(f"checkpoint: no file at 'rel.gm': it {_REMOVED}")
    with pytest.raises(FileNotFoundError) as raised:
        files.read_modality_file("visual", "rel.npy")
    assert str(raised.value) == f"visual: file not found: rel.npy: it {_REMOVED}"
    with pytest.raises(FileNotFoundError) as raised:
        files.parse_modality_spec("visual=a.npy:x")
    assert str(raised.value).endswith(f"a :KEY suffix is only for .npz files): it {_REMOVED}"), raised.value
    with pytest.raises(FileNotFoundError) as raised:
        files.read_modality_file("visual", "/no/such/folder/abs.npy")
    assert "removed" not in str(raised.value), raised.value


def _positive_zero(value: float) -> bool:
    return value == 0 and math.copysign(1.0, value) == 1.0


def test_a_weight_of_minus_zero_is_shown_and_kept_as_zero():
    """``{'contrastive': -0.0}`` was shown in the all-zero refusal and kept
    as -0.0 by the settings, the weights fit resolves and the model's
    config (whose checkpoint saved it as -0.0). Now each is 0.0."""
    from grapheme_multimodal import InvalidValueError, LearnableMultiModalConfig
    from grapheme_multimodal.objectives import resolve_weights
    from grapheme_multimodal.uci import TrainingSettings, check_weights

    with pytest.raises(InvalidValueError) as raised:
        check_weights({"contrastive": -0.0, "binding": np.float64(0)})
    assert "every weight is 0 ({'contrastive': 0.0, 'binding': 0.0})" in str(raised.value), raised.value
    assert all(_positive_zero(w) for w in resolve_weights({"contrastive": -0.0, "binding": 1.0}, False) if w == 0)
    settings = TrainingSettings(weights={"contrastive": -0.0, "binding": 1}, weight_decay=-0.0,
                                modality_dropout=np.float32(-0.0))
    assert repr(dict(settings.weights)) == "{'contrastive': 0.0, 'binding': 1.0}"
    assert _positive_zero(settings.weight_decay) and _positive_zero(settings.modality_dropout)
    config = LearnableMultiModalConfig(weight_decay=-0.0, encoder_input_dropout=-0.0, fusion_residual=-0.0)
    assert all(_positive_zero(v) for v in (config.weight_decay, config.encoder_input_dropout, config.fusion_residual))


def test_the_command_line_shows_and_saves_minus_zero_as_zero(tmp_path, capsys):
    """``grapheme-mm train --objectives contrastive=-0`` said "every weight is
    0 ({'contrastive': -0.0})", and ``--weight-decay -0`` was saved in the
    checkpoint's config as -0.0."""
    from grapheme_multimodal import cli

    rows = np.random.default_rng(0).random((12, 3), dtype=np.float32)
    np.save(tmp_path / "v.npy", rows)
    np.save(tmp_path / "a.npy", rows[:, :2])
    views = ["-m", f"visual={tmp_path / 'v.npy'}", "-m", f"auditory={tmp_path / 'a.npy'}"]
    assert cli.main(["train", *views, "--objectives", "contrastive=-0", "-o", str(tmp_path / "m.gm")]) == 2
    said = capsys.readouterr().err
    assert "every weight is 0 ({'contrastive': 0.0})" in said and "-0.0" not in said, said
    out = tmp_path / "m.gm"
    assert cli.main(["train", *views, "--objectives", "contrastive=-0,binding=1", "--weight-decay", "-0",
                     "--epochs", "1", "-o", str(out)]) == 0
    header = out.read_bytes()[8:8 + struct.unpack("<Q", out.read_bytes()[:8])[0]].decode()
    assert '\\"weight_decay\\": 0.0' in header and "-0.0" not in header, header


def test_a_temporary_file_removed_from_a_folder_still_there_is_not_called_a_folder_removed(tmp_path):
    """A save whose temporary file another program removed (a cleanup of
    hidden .tmp files) said "its folder ... was removed or moved", of a
    folder that was still there. Now it says the temporary file went."""
    def write_then_lose_the_temporary_file(f) -> None:
        f.write(b"new")
        for temporary in tmp_path.glob(".a.bin.*.tmp"):
            temporary.unlink()

    with pytest.raises(FileNotFoundError) as raised:
        io.atomic_write_all([(tmp_path / "a.bin", write_then_lose_the_temporary_file)])
    said = str(raised.value)
    assert f"was removed from its folder {str(tmp_path)!r} while the file was written" in said, said
    assert "removed or moved" not in said and said.endswith(f"; nothing was written: {str(tmp_path / 'a.bin')!r}"), said
    assert list(tmp_path.iterdir()) == []


def test_a_folder_removed_midway_through_a_save_of_several_files_names_those_already_saved(tmp_path):
    """A save of a.bin into folder A and b.bin into folder B, whose B was
    removed while b.bin was written, replaced a.bin and then said "nothing
    was written". Now it names a.bin as saved (it stays)."""
    import shutil

    (tmp_path / "A").mkdir()
    (tmp_path / "B").mkdir()

    def write_then_remove_the_folder(f) -> None:
        f.write(b"b")
        shutil.rmtree(tmp_path / "B")

    with pytest.raises(FileNotFoundError) as raised:
        io.atomic_write_all([(tmp_path / "A" / "a.bin", lambda f: f.write(b"a")),
                             (tmp_path / "B" / "b.bin", write_then_remove_the_folder)])
    said = str(raised.value)
    assert f"its folder {str(tmp_path / 'B')!r} was removed or moved while the file was written; " \
           f"{str(tmp_path / 'A' / 'a.bin')!r} was saved before it and stays; nothing else was written" in said, said
    assert (tmp_path / "A" / "a.bin").read_bytes() == b"a"
