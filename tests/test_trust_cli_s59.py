"""An audit of the ``grapheme-mm`` command line as a hostile user drives it:
defects found, one test each (each failed before its fix)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from grapheme_multimodal.cli import main

SMALL = ["--epochs", "1", "--embed-dim", "8", "--hidden-dim", "8", "--heads", "2", "--no-progress"]
unix_only = pytest.mark.skipif(not os.path.exists("/dev/full") or os.name != "posix", reason="Unix only")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("s59")
    rng = np.random.default_rng(0)
    np.save(d / "a.npy", rng.normal(size=(24, 6)).astype(np.float32))
    np.save(d / "b.npy", rng.normal(size=(24, 4)).astype(np.float32))
    np.save(d / "p.npy", rng.normal(size=(24, 1)))  # one feature per event (a pressure sensor's)
    # a first line with numbers in it, read as a header: train warns of it on stderr
    rows = "\n".join(",".join(f"{v:.6f}" for v in row) for row in rng.normal(size=(24, 3)))
    (d / "warned.csv").write_text("x,2019,3\n" + rows + "\n")
    assert main(["train", "-m", f"visual={d / 'a.npy'}", "-m", f"auditory={d / 'b.npy'}", "-m", f"tactile={d / 'p.npy'}",
                 "-o", str(d / "m.safetensors"), *SMALL]) == 0
    return d


def _cli(*argv: str, stderr) -> subprocess.CompletedProcess:
    """``python -m grapheme_multimodal ARGV`` with its standard error on ``stderr`` (a file or descriptor)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    return subprocess.run([sys.executable, "-m", "grapheme_multimodal", *argv], stdout=subprocess.PIPE,
                          stderr=stderr, text=True, env=env, timeout=120)


def _unread_pipe() -> "tuple[int, int]":
    """A pipe whose reader has gone: a write to its other end fails (EPIPE)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    return read_end, write_end


# ------------------------------------------------------------------ standard error that cannot be written
@unix_only
@pytest.mark.parametrize("where", ["full", "pipe"])
def test_a_warning_that_cannot_be_written_does_not_stop_train(files, tmp_path, where) -> None:
    """`grapheme-mm train ... 2>log` with the log's disk full (or stderr a pipe
    whose reader had gone), on a file train warns of: the warning's failed
    write stopped train before it trained, with exit status 1 and nothing
    said or saved (the progress bar on the same stderr already stopped
    drawing quietly instead). Now the line is dropped, train trains and
    saves, status 0."""
    out = tmp_path / "m.safetensors"
    argv = ["train", "-m", f"visual={files / 'warned.csv'}", "-m", f"auditory={files / 'b.npy'}", "-o", str(out), *SMALL]
    if where == "full":
        with open("/dev/full", "w") as full:
            done = _cli(*argv, stderr=full)
    else:
        _, write_end = _unread_pipe()
        try:
            done = _cli(*argv, stderr=write_end)
        finally:
            os.close(write_end)
    assert done.returncode == 0, (done.returncode, done.stdout)
    assert out.exists() and f"saved {out}" in done.stdout


@unix_only
@pytest.mark.parametrize("argv", [["info", "NOPE"], ["train", "--bogus"]])
def test_an_error_that_cannot_be_said_still_exits_2(files, argv) -> None:
    """`grapheme-mm info missing.safetensors 2>/dev/full`: the error line's
    failed write became a traceback that could not be written either, and
    exit status 1, which --help lists for nothing (scripts test for 2). Now
    status 2, as --help promises for every error."""
    argv = [str(files / "missing.safetensors") if a == "NOPE" else a for a in argv]
    with open("/dev/full", "w") as full:
        done = _cli(*argv, stderr=full)
    assert done.returncode == 2, (done.returncode, done.stdout)


# ------------------------------------------------------------------ a one-column CSV's missing value
@pytest.mark.parametrize("text", ['p\n1.5\n""\n2.5\n', '1.5\n""\n2.5\n', '1.5\n2.5\n""\n'])
def test_a_quoted_empty_cell_of_a_one_column_csv_is_a_missing_value(files, tmp_path, capsys, text) -> None:
    """pandas' ``to_csv`` writes a one-column frame's NaN as ``""`` (quoted,
    as a row of no value, where a frame of more columns gets ``,,``; pandas
    reads it back as NaN). It was skipped as a blank line: ``embed`` of such
    a file wrote one embedding fewer than its rows without a word, every
    event after it paired with the previous row's embedding. Now it is the
    row missing whole, NaN in its place (s64: the event lacks the modality),
    and an event of that file alone has nothing to embed: refused by its row."""
    from grapheme_multimodal.files import read_numeric_csv

    path = tmp_path / "pressure.csv"
    path.write_text(text)
    read = read_numeric_csv(path)
    row = 2 if text.endswith('""\n') else 1  # the events' row, the header aside
    assert read.shape == (3, 1) and np.flatnonzero(np.isnan(read[:, 0])).tolist() == [row]
    capsys.readouterr()
    out = tmp_path / "e.npy"
    assert main(["embed", str(files / "m.safetensors"), "-m", f"tactile={path}", "-o", str(out)]) == 2
    assert f"files: row {row} is missing in every modality file" in capsys.readouterr().err and not out.exists()


# ------------------------------------------------------------------ pandas' name for a row index read back
@pytest.mark.parametrize("header_flag", [[], ["--csv-header"]])
def test_a_row_index_pandas_named_unnamed_0_is_not_read_as_a_feature(files, tmp_path, capsys, header_flag) -> None:
    """A file written by ``df.to_csv(path)`` heads its row index with an empty
    cell, which is refused; read back by ``pd.read_csv(path)`` and written
    again with ``to_csv(index=False)``, that index is a column named
    ``Unnamed: 0`` (pandas' name for a column of no name), and train read
    the row numbers as a feature without a word. Now refused as the empty
    cell is, saying how to drop it."""
    rng = np.random.default_rng(2)
    rows = "\n".join(f"{i}," + ",".join(f"{v:.6f}" for v in row) for i, row in enumerate(rng.normal(size=(24, 3))))
    path = tmp_path / "sound.csv"
    path.write_text("Unnamed: 0,mfcc0,mfcc1,mfcc2\n" + rows + "\n")
    out = tmp_path / "m.safetensors"
    argv = ["train", "-m", f"visual={files / 'a.npy'}", "-m", f"auditory={path}", "-o", str(out), *SMALL, *header_flag]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "'Unnamed: 0'" in err and "row index" in err and "index_col=0" in err and err.count("\n") == 1, err
    assert not out.exists()
    # a column of that name further right is no row index pandas wrote: read as the data it is
    path.write_text("mfcc0,Unnamed: 0,mfcc1,mfcc2\n" + rows + "\n")
    assert main(argv) == 0 and out.exists()


# ------------------------------------------------------------------ one file given for two modalities
def test_two_modalities_of_the_same_values_are_warned_of(files, tmp_path, capsys) -> None:
    """`train -m visual=a.npy -m auditory=a.npy` (a name pasted twice, or a
    copy of one file under two names) trained a model to match two views
    that were one, which learns nothing of either, without a word. Now a
    warning names the two modalities and their files; it still trains."""
    copy = tmp_path / "copy.npy"
    copy.write_bytes((files / "a.npy").read_bytes())
    for second in (files / "a.npy", copy):
        out = tmp_path / f"m_{second.stem}.safetensors"
        assert main(["train", "-m", f"visual={files / 'a.npy'}", "-m", f"auditory={second}", "-o", str(out), *SMALL]) == 0
        warned = [line for line in capsys.readouterr().err.splitlines() if line.startswith("grapheme-mm: warning:")]
        assert len(warned) == 1 and "visual" in warned[0] and "auditory" in warned[0], warned
        assert f"auditory ({second})" in warned[0] and "the same values" in warned[0], warned
    assert main(["train", "-m", f"visual={files / 'a.npy'}", "-m", f"auditory={files / 'b.npy'}",
                 "-o", str(tmp_path / "apart.safetensors"), *SMALL]) == 0
    assert "warning" not in capsys.readouterr().err


# ------------------------------------------------------------------ a binary file named as text
@pytest.mark.parametrize("kind", ["gzip", "npy", "xlsx"])
@pytest.mark.parametrize("suffix", [".csv", ".txt"])
def test_a_binary_file_named_as_text_is_said_to_be_what_it_is(files, tmp_path, capsys, kind, suffix) -> None:
    """``sound.csv`` that is gzip-compressed (a download kept its name), a
    NumPy array or an Excel workbook saved under a .csv name was refused as
    "is not UTF-8 text (invalid start byte on line 1); save it as UTF-8":
    advice to re-encode text that is no text. Now the refusal says what the
    file is, by its first bytes, and that a text file was expected."""
    import gzip
    import io
    import zipfile

    raw = (files / "a.npy").read_bytes()
    if kind == "gzip":
        content, said = gzip.compress(b"1,2,3\n4,5,6\n"), "gzip-compressed"
    elif kind == "npy":
        content, said = raw, "NumPy array file (.npy)"
    else:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as z:
            z.writestr("[Content_Types].xml", "<Types/>")
        content, said = buffer.getvalue(), "zip archive"
    path = tmp_path / f"data{suffix}"
    path.write_bytes(content)
    assert main(["embed", str(files / "m.safetensors"), "-m", f"visual={path}", "-o", str(tmp_path / "e.npy")]) == 2
    err = capsys.readouterr().err
    assert said in err and "save it as UTF-8" not in err and "expected UTF-8 text" in err and err.count("\n") == 1, err


# ------------------------------------------------------------------ an id column read as a feature
def test_a_column_of_the_row_numbers_is_warned_of_as_an_id(files, tmp_path, capsys) -> None:
    """A CSV exported with its ``id`` column first (1001, 1002, ...), or an
    array whose first column is the row index, trained a model on the
    event numbers as a feature, without a word. Now a warning names the
    column (and its header name) as holding consecutive integers, as an id
    or row index does; train still trains on it, the user's to drop."""
    rng = np.random.default_rng(3)
    rows = "\n".join(f"{1001 + i}," + ",".join(f"{v:.6f}" for v in row) for i, row in enumerate(rng.normal(size=(24, 3))))
    path = tmp_path / "sound.csv"
    path.write_text("event_id,mfcc0,mfcc1,mfcc2\n" + rows + "\n")
    indexed = tmp_path / "indexed.npy"
    np.save(indexed, np.column_stack([rng.normal(size=24), np.arange(24.0), rng.normal(size=(24, 2))]))
    for visual, said in ((path, "column 0 ('event_id')"), (indexed, "column 1 of")):
        out = tmp_path / f"m_{visual.stem}.safetensors"
        assert main(["train", "-m", f"visual={visual}", "-m", f"auditory={files / 'b.npy'}", "-o", str(out), *SMALL]) == 0
        warned = [line for line in capsys.readouterr().err.splitlines() if line.startswith("grapheme-mm: warning:")]
        assert len(warned) == 1 and said in warned[0] and "consecutive integers" in warned[0], warned
        assert out.exists()


# ------------------------------------------------------------------ ~ in a modality's path
def test_a_modality_path_of_a_tilde_says_what_the_home_folder_would_give(files, tmp_path, capsys) -> None:
    """``-m visual=~/data/a.npy`` from a script, a Makefile or Python's
    subprocess (no shell to expand ``~``) was "visual: file not found:
    ~/data/a.npy", where ``info ~/m.safetensors`` and ``-o ~/x.npy`` said
    that ``~`` is a folder's name there and what the home folder gives.
    Now the modality's file is said so too."""
    assert main(["embed", str(files / "m.safetensors"), "-m", "visual=~/no-such-folder-s59/a.npy",
                 "-o", str(tmp_path / "e.npy")]) == 2
    err = capsys.readouterr().err
    assert "file not found: ~/no-such-folder-s59/a.npy ('~' is a folder's name here" in err, err
    assert "os.path.expanduser gives" in err and err.count("\n") == 1, err
