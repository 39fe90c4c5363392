"""Files under hostile use: forged metadata (keys given twice), one output
named two ways inside one block of writes, and ``info`` of a history that
holds NaN."""

from __future__ import annotations

import json
import math
import os
import pathlib

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import io as gio
from grapheme_multimodal.cli import main


def _small_model() -> gm.LearnableMultiModal:
    return gm.LearnableMultiModal(embed_dim=8, hidden_dim=8, num_heads=2, input_dims={"visual": 6}, seed=0)


def _with_header(path, header: dict, out) -> None:
    """``out``: the file at ``path`` with ``header`` (JSON text or a dict) in place of its own."""
    raw = path.read_bytes()
    data = raw[8 + int.from_bytes(raw[:8], "little"):]
    text = (header if isinstance(header, str) else json.dumps(header)).encode()
    text += b" " * (-len(text) % 8)
    out.write_bytes(len(text).to_bytes(8, "little") + text + data)


# ------------------------------------------------------------------ keys given twice
def _forgeries(header: dict):
    """``{what: header text}``, each giving one key twice, with checksums
    that match what json reads (the last of each key), as a forger writes."""
    meta = header["__metadata__"]
    sums = json.loads(meta["checksum"])["crc32"]

    def with_meta(new_meta: dict) -> dict:
        new_meta = dict(new_meta)
        new_meta["checksum"] = json.dumps({"crc32": {**sums, "__metadata__": gio._metadata_crc(new_meta)}})
        return {**header, "__metadata__": new_meta}

    config = json.loads(meta["config"])
    second_seed = with_meta({**meta, "config": json.dumps(config)[:-1] + ', "seed": 5}'})
    text = json.dumps(header)
    return {
        "a key of the config": (json.dumps(second_seed), "'config'", "'seed'"),
        # the first "epochs_trained" is the forged one; json kept the true one, checksummed
        "a metadata key": (text.replace('"__metadata__": {', '"__metadata__": {"epochs_trained": "7", ', 1),
                           "header", "'epochs_trained'"),
        "the metadata entry": (text[:-1] + ', "__metadata__": ' + json.dumps(meta) + "}", "header", "'__metadata__'"),
    }


@pytest.mark.parametrize("what", ["a key of the config", "a metadata key", "the metadata entry"])
def test_a_file_that_gives_a_json_key_twice_is_refused_naming_the_key(tmp_path, what) -> None:
    """A header or metadata value that gives one key twice: json kept the
    last without a word (a forged config's second ``seed`` loaded as the
    model's, the checksum matching it). This library never writes one; now
    it is a CheckpointError naming the file and the key."""
    good = tmp_path / "m.safetensors"
    _small_model().save(good)
    raw = good.read_bytes()
    header = json.loads(raw[8:8 + int.from_bytes(raw[:8], "little")])
    text, where, key = _forgeries(header)[what]
    forged = tmp_path / "forged.safetensors"
    _with_header(good, text, forged)
    with pytest.raises(gm.CheckpointError, match="given twice") as info:
        gm.LearnableMultiModal.load(forged)
    assert str(forged) in str(info.value) and where in str(info.value) and key in str(info.value)
    assert info.value.arg == "path"
    assert gm.LearnableMultiModal.load(good).config.seed == 0  # the file it was made from loads


def test_a_buffer_and_an_ensemble_file_that_give_a_key_twice_are_refused(tmp_path) -> None:
    """The same holds for the other formats: one reader reads them all."""
    buffer = gm.ExperienceBuffer(8, seed=0)
    buffer.save(tmp_path / "b.safetensors")
    raw = (tmp_path / "b.safetensors").read_bytes()
    text = raw[8:8 + int.from_bytes(raw[:8], "little")].decode()
    forged = text.replace('"__metadata__":{', '"__metadata__":{"format":"x",', 1)
    assert forged != text
    _with_header(tmp_path / "b.safetensors", forged, tmp_path / "forged.safetensors")
    with pytest.raises(gm.CheckpointError, match="'format' is given twice"):
        gm.ExperienceBuffer.from_file(tmp_path / "forged.safetensors")

    gm.save_ensemble([_small_model(), _small_model()], tmp_path / "e.safetensors")
    raw = (tmp_path / "e.safetensors").read_bytes()
    header = json.loads(raw[8:8 + int.from_bytes(raw[:8], "little")])
    key = next(k for k in header["__metadata__"] if k not in ("format", "checksum"))
    text = json.dumps(header).replace('"__metadata__": {', f'"__metadata__": {{{json.dumps(key)}: "0", ', 1)
    _with_header(tmp_path / "e.safetensors", text, tmp_path / "forged_e.safetensors")
    with pytest.raises(gm.CheckpointError, match="given twice"):
        gm.load_models(tmp_path / "forged_e.safetensors")
    assert len(gm.load_models(tmp_path / "e.safetensors")) == 2


# ------------------------------------------------------------------ one file by two names
@pytest.mark.parametrize("second", ["sub/../out.bin", "link.bin"])
def test_writing_together_tells_one_file_by_any_of_its_names(tmp_path, monkeypatch, second) -> None:
    """A file written twice in one writing_together block, kept from other
    programs, under two of its names (``out.bin``, ``sub/../out.bin``, a
    link to it): the block told writes to one file apart by the followed
    path, not by where it lives as atomic_write_all does, so the second
    link found the first's file in its place: "created by something else
    while this ran", and nothing was written. Now the later write replaces
    the earlier one, as under one name."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    os.symlink("out.bin", tmp_path / "link.bin")  # dangling until out.bin is written
    with gio.keeping_existing({"--output": "out.bin"}), gio.writing_together():
        gio.atomic_write_bytes("out.bin", b"first")
        gio.atomic_write_bytes(second, b"second")
    assert (tmp_path / "out.bin").read_bytes() == b"second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.bin", "out.bin", "sub"]  # no temporary file left
    with pytest.raises(gm.InvalidValueError, match="are one file"):  # atomic_write_all refuses the pair, as before
        gio.atomic_write_all([("out.bin", lambda f: f.write(b"1")), (second, lambda f: f.write(b"2"))])
    assert (tmp_path / "out.bin").read_bytes() == b"second"


# ------------------------------------------------------------------ NaN in a history
def test_info_of_a_history_holding_nan_names_the_best_number(tmp_path, capsys) -> None:
    """A history may hold NaN (a metric's value; a model's history set by
    hand) and loads with it. ``info`` took the best loss by ``min``, which
    NaN defeats: "best nan (epoch 1)" of losses nan, 1.5, 0.5. Now the best
    is of the losses that are numbers, and left out when none is."""
    model = _small_model()
    model.history = [{"epoch": 1, "loss": math.nan}, {"epoch": 2, "loss": 1.5}, {"epoch": 3, "loss": 0.5}]
    model.save(tmp_path / "nan_first.safetensors")
    assert math.isnan(gm.LearnableMultiModal.load(tmp_path / "nan_first.safetensors").history[0]["loss"])
    assert main(["info", str(tmp_path / "nan_first.safetensors")]) == 0
    assert "loss: first nan, last 0.5000, best 0.5000 (epoch 3)\n" in capsys.readouterr().out

    model.history = [{"epoch": 1, "loss": math.nan}, {"epoch": 2, "loss": math.nan}]
    model.save(tmp_path / "all_nan.safetensors")
    assert main(["info", str(tmp_path / "all_nan.safetensors")]) == 0
    assert "loss: first nan, last nan\n" in capsys.readouterr().out

    model.history = [{"epoch": 1, "loss": 2.0}, {"epoch": 2, "loss": 0.25}, {"epoch": 3, "loss": np.float64(1.0)}]
    model.save(tmp_path / "numbers.safetensors")
    assert main(["info", str(tmp_path / "numbers.safetensors")]) == 0
    assert "loss: first 2.0000, last 1.0000, best 0.2500 (epoch 2)\n" in capsys.readouterr().out


# ------------------------------------------------------------------ names too long for the file system
_LONG = "x" * 300  # one name of 300 bytes: more than the 255 every common file system takes


@pytest.mark.parametrize("call", [
    lambda p: _small_model().save(p),
    gm.LearnableMultiModal.load,
    lambda p: gm.ExperienceBuffer(4, seed=0).save(p),
    gm.ExperienceBuffer.from_file,
    lambda p: gm.save_ensemble([_small_model(), _small_model()], p),
    gm.load_models,
    lambda p: gio.atomic_write_bytes(p, b"x"),
], ids=["save", "load", "buffer save", "buffer from_file", "save_ensemble", "load_models", "atomic_write_bytes"])
@pytest.mark.parametrize("where", ["file", "folder", "whole path"])
def test_a_name_too_long_for_the_file_system_is_refused_naming_path(tmp_path, call, where) -> None:
    """A name the file system refuses as too long raised the OS's bare
    ``OSError(36, 'File name too long')``, naming no argument, its message
    hundreds of characters of the name. Now an InvalidValueError naming
    ``path``, which part is too long and the file system's limits; nothing
    is written."""
    path = {"file": tmp_path / _LONG, "folder": tmp_path / _LONG / "m.st",
            "whole path": tmp_path / "/".join(["d" * 200] * 25) / "m.st"}[where]
    with pytest.raises(gm.InvalidValueError, match="is too long a file name") as info:
        call(path)
    message = str(info.value)
    assert message.startswith("path: ") and info.value.arg == "path"
    assert ("is 300 bytes" if where != "whole path" else f"it is {len(str(path)):,} bytes") in message
    assert "expected at most 255 bytes in each folder's or file's name" in message and len(message) < 400
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def cli_files(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "a.npy", rng.normal(size=(24, 6)).astype(np.float32))
    _small_model().save(tmp_path / "m.safetensors")
    return tmp_path


@pytest.mark.parametrize("argv, flag", [
    (["info", "{d}/LONG"], "checkpoint"),
    (["embed", "{d}/LONG.safetensors", "-m", "visual={d}/a.npy", "-o", "{d}/e.npy"], "checkpoint"),
    (["embed", "{d}/m.safetensors", "-m", "visual={d}/a.npy", "-o", "{d}/LONG.npy"], "--output"),
    (["embed", "{d}/m.safetensors", "-m", "visual={d}/a.npy", "-o", "{d}/e.npy", "--bindings", "{d}/LONG/b.npy"], "--bindings"),
    (["embed", "{d}/m.safetensors", "-m", "visual={d}/LONG.npy", "-o", "{d}/e.npy"], "visual"),
    (["embed", "{d}/m.safetensors", "-m", "visual={d}/LONG.npy:key", "-o", "{d}/e.npy"], "--modality"),
    (["train", "-m", "visual={d}/a.npy", "--epochs", "1", "-o", "{d}/LONG.safetensors"], "--output"),
    (["demo", "--out", "{d}/LONG"], "--out"),
    (["demo", "--out", "{d}/new/LONG/run"], "--out"),
    (["demo", "--out", "{d}/run", "--json", "{d}/LONG.json"], "--json"),
], ids=lambda v: v if isinstance(v, str) else " ".join(v[:1]))
def test_the_cli_refuses_a_name_too_long_in_one_line_naming_the_flag(cli_files, capsys, argv, flag) -> None:
    """``grapheme-mm`` printed the OS's "xxx...x: File name too long",
    naming no flag, most of the line the name; ``demo --out new/LONG/run``
    also left the folder ``new`` it had made. Now one line names the flag,
    and no file or folder is left."""
    from test_trust_cli import one_line_error

    if argv[0] == "demo":
        pytest.importorskip("matplotlib")
        pytest.importorskip("sklearn")
    before = sorted(p.name for p in cli_files.iterdir())
    argv = [a.replace("{d}", str(cli_files)).replace("LONG", _LONG) for a in argv]
    line = one_line_error(capsys, argv + (["--no-progress"] if argv[0] in ("train", "demo") else []),
                          f"error: {flag}: ", "is too long a file name", " bytes); expected at most 255 bytes")
    assert len(line) < 400, line
    assert sorted(p.name for p in cli_files.iterdir()) == before


def test_a_demo_folder_it_could_only_partly_make_is_removed(tmp_path, capsys, monkeypatch) -> None:
    """``demo --out new/a/b/run`` on a disk that runs out of room (or
    inodes) after ``new/a``: the run failed, but the folders it had made
    stayed, as the removal of new folders stopped at the first it could not
    remove, the one never made. Now every folder the run made is removed."""
    from grapheme_multimodal.cli import main

    pytest.importorskip("matplotlib")
    pytest.importorskip("sklearn")
    real_mkdir = os.mkdir

    def full_after_two(path, *args, **kwargs):
        if os.path.isdir(os.path.dirname(path)) and len(os.fspath(path)) > len(str(tmp_path / "new" / "a")):
            raise OSError(28, "No space left on device", os.fspath(path))
        real_mkdir(path, *args, **kwargs)  # FileNotFoundError while its parent is missing: Path.mkdir makes that first

    monkeypatch.setattr(os, "mkdir", full_after_two)
    accessor = getattr(pathlib, "_normal_accessor", None)  # Python < 3.11: Path.mkdir calls the os.mkdir it imported
    if accessor is not None:
        monkeypatch.setattr(accessor, "mkdir", full_after_two, raising=False)
    code = main(["demo", "--out", str(tmp_path / "new" / "a" / "b" / "run"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "--out: " in err and "No space left on device" in err, err
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ a folder gone while a file is written
@pytest.mark.parametrize("how", ["removed", "moved, another made in its place"])
def test_a_folder_removed_while_a_file_is_written_is_said_so(tmp_path, how) -> None:
    """The folder removed (or renamed) while a save wrote into it: the
    error was the OS's "No such file or directory: '.m.st.<hex>.tmp' ->
    'm.st'", of a temporary file the user never named. Now it names the
    file given and says what happened to its folder."""
    import shutil

    folder = tmp_path / "out"
    folder.mkdir()

    def pulled_away(f) -> None:
        f.write(b"the new file")
        if how == "removed":
            shutil.rmtree(folder)
        else:
            folder.rename(tmp_path / "elsewhere")
            folder.mkdir()

    with pytest.raises(FileNotFoundError) as info:
        gio.atomic_write(folder / "m.st", pulled_away)
    assert info.value.errno == 2 and info.value.filename == str(folder / "m.st")
    assert f"its folder {str(folder)!r} was removed or moved while the file was written; nothing was written" in str(info.value)
    assert ".tmp" not in str(info.value)
    assert not (folder / "m.st").exists()


# ------------------------------------------------------------------ a data file replaced after its check
def test_an_npy_file_replaced_after_its_header_was_checked_is_read_as_checked(tmp_path, monkeypatch) -> None:
    """The command line checked an ``.npy`` header on one open of the file
    and read the array with ``np.load(path)``, a second open: a file put in
    its place between the two (another program's save) was read unchecked,
    here one whose header declares 10**12 rows (refused as "does not fit in
    memory" of a file that fits). Now the array is read from the open file
    whose header was checked, and the values are those of that file."""
    from grapheme_multimodal import files as gfiles

    path = tmp_path / "a.npy"
    values = np.random.default_rng(0).normal(size=(24, 6)).astype(np.float32)
    np.save(path, values)
    forged = tmp_path / "forged.npy"
    with forged.open("wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (10**12, 6)})
        f.write(b"\0" * 64)
    real_check = gfiles._check_npy_header

    def check_then_replace(f, *args):
        real_check(f, *args)
        os.replace(forged, path)  # the name now holds another file; the open one is the one checked

    monkeypatch.setattr(gfiles, "_check_npy_header", check_then_replace)
    read = gfiles.read_modality_file(gm.Modality.VISUAL, path)
    np.testing.assert_array_equal(read.values, values)


# ------------------------------------------------------------------ an empty name on the command line
@pytest.mark.parametrize("argv, words", [
    (["info", ""], "checkpoint: expected a file name, got ''"),
    (["embed", "", "-m", "visual=a.npy", "-o", "e.npy"], "checkpoint: expected a file name, got ''"),
    (["demo", "--out", "", "--no-progress"], "--out: expected a folder name, got '' (give . for the working folder)"),
])
def test_an_empty_name_is_refused_not_read_as_the_working_folder(cli_files, capsys, monkeypatch, argv, words) -> None:
    """``Path("")`` is ``.``: ``info ''`` said "'.' is a directory", a name
    the user never gave, and ``demo --out ''`` (an unset shell variable)
    trained and wrote its checkpoint and figures into the working folder.
    Now an empty name is refused where it is parsed, as ``-o ''`` is."""
    from grapheme_multimodal import demo
    from test_trust_cli import argparse_error

    def no_run(*args, **kwargs):
        raise AssertionError(f"the demo ran in {args[0]!r}")

    monkeypatch.setattr(demo, "run_demo", no_run)
    monkeypatch.chdir(cli_files)
    before = sorted(p.name for p in cli_files.iterdir())
    assert words in argparse_error(capsys, argv)
    assert sorted(p.name for p in cli_files.iterdir()) == before


def _data_files(tmp_path) -> dict:
    """``{name: (modality, what reading it gives)}`` of a .csv, .txt and .npz file
    written in ``tmp_path``, with what trips a reader: a byte-order mark, \\r\\n and
    \\r line ends, a quoted cell across lines, a header, U+2028 inside a text."""
    (tmp_path / "c.csv").write_bytes(b"\xef\xbb\xbfx,y\r\n0.5,1e-3\r\n\"2\",-3\n\n4.25,5\r")
    (tmp_path / "t.txt").write_bytes("\ufeffone\r\ntwo\u2028half\rthree\n\nfour".encode())
    values = np.random.default_rng(1).normal(size=(4, 3)).astype(np.float32)
    np.savez(tmp_path / "z.npz", x=values)
    return {"c.csv": (gm.Modality.TACTILE, np.array([[0.5, 1e-3], [2, -3], [4.25, 5]], np.float32)),
            "t.txt": (gm.Modality.LINGUISTIC, ["one", "two\u2028half", "three", "", "four"]),
            "z.npz": (gm.Modality.VISUAL, values)}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", ["c.csv", "t.txt", "z.npz"])
@pytest.mark.parametrize("swap", ["a FIFO", "a link to a FIFO"])
def test_a_fifo_swapped_in_after_the_check_is_refused_not_waited_on(tmp_path, monkeypatch, name, swap) -> None:
    """read_modality_file checked that a .csv, .txt or .npz was a regular
    file, then opened it again by name: a FIFO (or a symbolic link to one)
    put in its place between the two made the read wait for a writer
    forever, as the .npy read did before it was read from the one open
    file. Now each is opened once, without waiting, and refused unless
    what was opened is a regular file."""
    from grapheme_multimodal import files as gfiles

    modality, _ = _data_files(tmp_path)[name]
    path = tmp_path / name
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    real_kind = gfiles.file_kind

    def kind_then_swap(p, *args):
        kind = real_kind(p, *args)
        if swap == "a FIFO":
            os.replace(fifo, path)
        else:
            path.unlink()
            os.symlink(fifo, path)
        return kind

    monkeypatch.setattr(gfiles, "file_kind", kind_then_swap)
    with pytest.raises(gm.InvalidValueError, match=r"is a FIFO \(named pipe\), not a regular file; expected a data file"):
        gfiles.read_modality_file(modality, path)


@pytest.mark.parametrize("name", ["c.csv", "t.txt", "z.npz"])
def test_data_files_read_from_their_open_file_give_what_they_gave(tmp_path, name) -> None:
    """Read from the one open file, a .csv, .txt or .npz gives the values its
    read by name gave (the byte-order mark dropped, line ends read alike)."""
    from grapheme_multimodal import files as gfiles

    modality, expected = _data_files(tmp_path)[name]
    read = gfiles.read_modality_file(modality, tmp_path / name).values
    if name == "t.txt":
        assert read == expected == gfiles.read_texts(tmp_path / name)
        assert read == (tmp_path / name).read_text(encoding="utf-8-sig").split("\n")  # the read by name it replaced
    else:
        np.testing.assert_array_equal(read, expected)
        assert read.dtype == np.float32


@pytest.mark.timeout(60)
def test_read_texts_and_read_numeric_csv_refuse_a_fifo_given_them(tmp_path) -> None:
    """The public readers, called on a FIFO (no check before them), waited for a writer forever."""
    from grapheme_multimodal.files import read_numeric_csv, read_texts

    for name, read in (("p.txt", read_texts), ("p.csv", read_numeric_csv)):
        os.mkfifo(tmp_path / name)
        with pytest.raises(gm.InvalidValueError, match=r"is a FIFO \(named pipe\), not a regular file"):
            read(tmp_path / name)
