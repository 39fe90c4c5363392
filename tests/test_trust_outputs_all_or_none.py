"""Outputs written together are all or none: a command that writes several
files (``embed`` with --bindings/--hidden-features, ``demo``'s run folder and
--json) either writes every one or leaves every target as it was, whether an
output's name is taken while it runs (without --overwrite), a write fails, or
the run is interrupted. And the refusal of a folder no file can be created in
is tested for root as well (root writes through a folder's permissions)."""

from __future__ import annotations

import errno
import os
import tempfile

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import io as gio
from grapheme_multimodal.cli import main
from test_trust_cli import one_line_error


def _write(data: bytes):
    return lambda f: f.write(data)


def _no_space(f) -> None:
    f.write(b"part of it")
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("all_or_none")
    rng = np.random.default_rng(0)
    np.save(d / "a.npy", rng.normal(size=(24, 6)).astype(np.float32))
    model = gm.LearnableMultiModal(embed_dim=8, hidden_dim=8, num_heads=2, input_dims={"visual": 6}, encoder_hidden=(8,), seed=0)
    model.fit({"visual": rng.normal(size=(8, 6))}, epochs=1, progress=False)  # embed warns of a checkpoint never trained
    model.save(d / "m.safetensors")
    return d


def _no_hard_links(monkeypatch) -> None:
    def no_links(src, dst):
        raise PermissionError(1, "Operation not permitted", src)  # vfat, some FUSE and network filesystems

    monkeypatch.setattr(gio.os, "link", no_links)


# ------------------------------------------------------------------ io: atomic_write_all
@pytest.mark.parametrize("hard_links", [True, False], ids=["hard links", "no hard links"])
def test_a_later_name_taken_meanwhile_removes_the_files_already_linked(tmp_path, monkeypatch, hard_links) -> None:
    """Three outputs, the third's name taken by another program while the
    first two were written: the first two were linked and stayed, a result
    set without its last file that looked complete. Now none is written, the
    other program's file is kept, the error names the third's argument."""
    if not hard_links:
        _no_hard_links(monkeypatch)
    first, second, third = tmp_path / "fused.npy", tmp_path / "bindings.npy", tmp_path / "hidden.npy"

    def taken_meanwhile(f) -> None:
        f.write(b"third")
        third.write_bytes(b"another program's file")

    with gio.keeping_existing({"--output": first, "--bindings": second, "--hidden-features": third}):
        with pytest.raises(FileExistsError, match=r"^--hidden-features: '.*hidden\.npy' was created by something else"):
            gio.atomic_write_all([(first, _write(b"first")), (second, _write(b"second")), (third, taken_meanwhile)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hidden.npy"], "no output and no temporary file left"
    assert third.read_bytes() == b"another program's file"


def test_a_file_another_program_put_at_an_already_linked_name_is_kept(tmp_path, monkeypatch) -> None:
    """The removal after a clash removes only the file this write linked: a
    file another program put at that name since (a replace) is not ours."""
    first, second = tmp_path / "first.bin", tmp_path / "second.bin"
    real_link = gio._link_as_new

    def racing(tmp, path, given, arg):
        if path.name == "second.bin":  # the first is linked: another program replaces it, and takes the second
            theirs = tmp_path / "theirs.tmp"
            theirs.write_bytes(b"their first")
            os.replace(theirs, first)
            second.write_bytes(b"their second")
        return real_link(tmp, path, given, arg)

    monkeypatch.setattr(gio, "_link_as_new", racing)
    with gio.keeping_existing({"--a": first, "--b": second}):
        with pytest.raises(FileExistsError, match="--b: "):
            gio.atomic_write_all([(first, _write(b"ours")), (second, _write(b"ours"))])
    assert first.read_bytes() == b"their first" and second.read_bytes() == b"their second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["first.bin", "second.bin"]


def test_an_interrupt_between_the_links_removes_the_files_already_linked(tmp_path, monkeypatch) -> None:
    # Ctrl-C after the first output had its name: it stayed, alone.
    first, second = tmp_path / "first.bin", tmp_path / "second.bin"
    real_link = gio._link_as_new

    def interrupted(tmp, path, given, arg):
        if path.name == "second.bin":
            raise KeyboardInterrupt
        return real_link(tmp, path, given, arg)

    monkeypatch.setattr(gio, "_link_as_new", interrupted)
    with gio.keeping_existing({"--a": first, "--b": second}), pytest.raises(KeyboardInterrupt):
        gio.atomic_write_all([(first, _write(b"1")), (second, _write(b"2"))])
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ io: writing_together
def test_writing_together_replaces_every_target_at_its_end_or_none(tmp_path) -> None:
    """Separate saves (a checkpoint, then figures) in one block are one
    result: the targets are replaced when the block ends, and a block that
    fails (a full disk at the last file, an interrupt) leaves each as it was."""
    a, b, c = tmp_path / "model.safetensors", tmp_path / "curves.png", tmp_path / "table.json"
    for path in (a, b):
        path.write_bytes(b"previous run")
    for failure in (OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()):
        with pytest.raises(type(failure)), gio.writing_together():
            gio.atomic_write_bytes(a, b"new model")
            gio.atomic_write_bytes(b, b"new curves")
            assert a.read_bytes() == b"previous run", "replaced before the block ended"
            raise failure
        assert a.read_bytes() == b"previous run" and b.read_bytes() == b"previous run"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.png", "model.safetensors"]
    with pytest.raises(OSError, match="table.json"), gio.writing_together():
        gio.atomic_write_bytes(a, b"new model")
        gio.atomic_write(c, _no_space)
    assert a.read_bytes() == b"previous run" and not c.exists()
    with gio.writing_together():
        gio.atomic_write_bytes(a, b"new model")
        with gio.writing_together():  # joins the outer block
            gio.atomic_write_bytes(b, b"new curves")
        assert b.read_bytes() == b"previous run"
        gio.atomic_write_bytes(c, b"first table")
        gio.atomic_write_bytes(c, b"table")  # written again in the block: the later write
    assert (a.read_bytes(), b.read_bytes(), c.read_bytes()) == (b"new model", b"new curves", b"table")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.png", "model.safetensors", "table.json"]


def test_writing_together_with_kept_names_removes_its_files_when_one_is_taken(tmp_path) -> None:
    a, b = tmp_path / "model.safetensors", tmp_path / "table.json"
    with gio.keeping_existing({"--out": a, "--json": b}):
        with pytest.raises(FileExistsError, match=r"^--json: "), gio.writing_together():
            gio.atomic_write_bytes(a, b"model")
            gio.atomic_write_bytes(b, b"table")
            b.write_bytes(b"another run's table")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.json"] and b.read_bytes() == b"another run's table"


# ------------------------------------------------------------------ embed
def test_embed_whose_last_output_is_taken_meanwhile_writes_none(files, tmp_path, capsys, monkeypatch) -> None:
    """``embed -o fused.npy --bindings b.npy --hidden-features h.npy`` with
    h.npy created by another program during the run: fused.npy and b.npy
    stayed, a run's outputs without their last. Now none is written."""
    import grapheme_multimodal.cli as cli

    real_embed = cli._embed_in_process
    fused, bindings, hidden = tmp_path / "fused.npy", tmp_path / "b.npy", tmp_path / "h.npy"

    def embed_while_another_program_writes(*args, **kwargs):
        result = real_embed(*args, **kwargs)
        hidden.write_bytes(b"the user's own file")
        return result

    monkeypatch.setattr(cli, "_embed_in_process", embed_while_another_program_writes)
    argv = ["embed", str(files / "m.safetensors"), "-m", f"visual={files / 'a.npy'}", "-o", str(fused),
            "--bindings", str(bindings), "--hidden-features", str(hidden)]
    one_line_error(capsys, argv, f"--hidden-features: '{hidden}' was created by something else while this ran")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.npy"] and hidden.read_bytes() == b"the user's own file"
    # --overwrite: the file taken meanwhile is replaced, every output written
    assert main([*argv, "--overwrite"]) == 0
    assert np.load(fused).shape == (24, 8) and np.load(bindings).shape == (24, 7, 7) and np.load(hidden).shape == (24, 7, 8)


# ------------------------------------------------------------------ demo
def _quick_run_demo(out_dir, settings=None, progress=True, log=print, members=1):
    """run_demo's writes (a checkpoint, the two figures) without its training."""
    from grapheme_multimodal.demo import DemoResult, demo_files

    result = DemoResult(rows=[("measure", 0.5, 0.25, "anchor")], notes=["a note"])
    result.files = demo_files(out_dir)
    gm.LearnableMultiModal(embed_dim=8, hidden_dim=8, num_heads=2, input_dims={"visual": 6}, seed=0).save(
        result.files["checkpoint"], include_experience=False)
    for what in ("curves", "attention"):
        gio.atomic_write_bytes(result.files[what], b"\x89PNG " + what.encode())
    return result


def test_demo_whose_json_is_taken_meanwhile_leaves_no_run_folder(tmp_path, capsys, monkeypatch) -> None:
    """``demo --json t.json`` with t.json created during the run: the run
    folder (checkpoint, figures) had been written, the table refused, a
    run folder that looked complete. Now nothing of the run is left."""
    pytest.importorskip("matplotlib")
    pytest.importorskip("sklearn")
    import grapheme_multimodal.demo as demo

    table = tmp_path / "t.json"

    def run_while_another_run_writes_the_table(*args, **kwargs):
        result = _quick_run_demo(*args, **kwargs)
        table.write_text("another run's table")
        return result

    monkeypatch.setattr(demo, "run_demo", run_while_another_run_writes_the_table)
    out = tmp_path / "run"
    one_line_error(capsys, ["demo", "--no-progress", "--out", str(out), "--json", str(table)],
                   f"--json: '{table}' was created by something else while this ran")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.json"], "the run folder (made by this run) is removed"
    assert table.read_text() == "another run's table"
    # --overwrite: all of it written
    monkeypatch.setattr(demo, "run_demo", _quick_run_demo)
    assert main(["demo", "--no-progress", "--out", str(out), "--json", str(table), "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(demo.DEMO_FILES.values())
    assert '"measure": "measure"' in table.read_text()


def test_demo_that_fails_at_its_last_figure_keeps_the_previous_run_folder(tmp_path, monkeypatch) -> None:
    """The demo's run folder was written file by file: a run that failed (a
    full disk) or was interrupted at the attention figure had replaced the
    checkpoint and the curves, beside the previous run's attention figure.
    Now the folder is as it was. (A real, one-epoch run: what the demo writes.)"""
    pytest.importorskip("matplotlib")
    pytest.importorskip("sklearn")
    import grapheme_multimodal.demo as demo
    from grapheme_multimodal.uci import TrainingSettings

    try:
        demo.load_multiple_features()
    except (FileNotFoundError, ModuleNotFoundError) as err:
        pytest.skip(str(err))
    out = tmp_path / "run"
    out.mkdir()
    for name in demo.DEMO_FILES.values():
        (out / name).write_bytes(b"previous run")
    real_plot = demo.plot_attention

    def disk_full_at_the_attention(*args, **kwargs):
        real_plot(*args, **kwargs)  # written to its temporary file
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(demo, "plot_attention", disk_full_at_the_attention)
    with pytest.raises(OSError, match="No space left"):
        demo.run_demo(out, TrainingSettings(epochs=1), progress=False, log=lambda line: None)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == {name: b"previous run" for name in demo.DEMO_FILES.values()}


# ------------------------------------------------------------------ a folder root cannot write either
def _refuses_new_files(folder: str) -> bool:
    try:
        with tempfile.TemporaryFile(dir=folder):
            return False
    except OSError:
        return True


@pytest.mark.skipif(not _refuses_new_files("/proc"), reason="needs Linux's /proc, where no one creates files")
@pytest.mark.parametrize("command", ["train", "embed", "demo"])
def test_a_folder_no_file_can_be_created_in_is_refused_before_the_work_even_as_root(files, tmp_path, capsys,
                                                                                   monkeypatch, command) -> None:
    """A read-only folder made with chmod stops no one as root (this suite
    may run so: in a container, in CI), so a test of it tested nothing there.
    /proc refuses new files to root and every other user alike: the refusal
    of an output folder no file can be created in is tested either way."""
    import grapheme_multimodal.cli as cli
    import grapheme_multimodal.demo as demo

    def no_work(*args, **kwargs):
        raise AssertionError("the work ran before the output folder was checked")

    monkeypatch.setattr(cli, "fit_with_stopping", no_work)
    monkeypatch.setattr(cli, "_load_checkpoint", no_work)
    monkeypatch.setattr(demo, "run_demo", no_work)
    argv, flag = {
        "train": (["train", "-m", f"visual={files / 'a.npy'}", "--no-progress", "-o", "/proc/m.safetensors"], "--output"),
        "embed": (["embed", str(files / "m.safetensors"), "-m", f"visual={files / 'a.npy'}", "-o",
                   str(tmp_path / "fused.npy"), "--bindings", "/proc/b.npy"], "--bindings"),
        "demo": (["demo", "--no-progress", "--out", str(tmp_path / "run"), "--json", "/proc/t.json"], "--json"),
    }[command]
    if command == "demo":
        pytest.importorskip("matplotlib")
        pytest.importorskip("sklearn")
    one_line_error(capsys, argv, f"{flag}: no file can be created in the folder '/proc'")
    assert list(tmp_path.iterdir()) == []
