"""Second hostile-use pass over the file readers, checkpoints and the
command line: what a user's file holds is named where it is in that file."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal.files import read_modality_file
from grapheme_multimodal.types import Modality


# ------------------------------------------------------------- CSV positions
# A CSV with a header and a blank line: data row i (the event, 0-based as every
# other message of the package counts rows) is not line i + 1 of the file.
_CSV_LINES = ["a,b,c", "1,2,3", "", "4,5,6", "7,8,9", "10,11,12"]
_BAD_DATA_ROW, _BAD_LINE = 2, 5  # "7,8,9": the third event, on the fifth line


@pytest.mark.parametrize(
    "bad, error",
    [
        ("x", gm.InvalidValueError),  # not a number
        ("nan", gm.NonFiniteError),  # a number, not a finite one
        ("-inf", gm.NonFiniteError),
        ("1e400", gm.NonFiniteError),  # inf as float64
        ("1e39", gm.NonFiniteError),  # finite, too large for float32
    ],
)
def test_a_bad_csv_value_is_named_by_its_event_row_and_its_line(tmp_path, bad, error) -> None:
    # Was "row 3 has a non-numeric value 'x'" (1-based, among data rows) beside
    # "row 2 holds NaN or inf" (0-based) for a value in the same place, on line 5.
    lines = list(_CSV_LINES)
    lines[_BAD_LINE - 1] = f"7,{bad},9"
    path = tmp_path / "feats.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(error) as err:
        read_modality_file(Modality.VISUAL, path)
    text = str(err.value)
    assert "feats.csv" in text, text
    assert re.search(rf"\brow {_BAD_DATA_ROW} \(line {_BAD_LINE}\)", text), text
    assert not re.search(rf"\brow {_BAD_DATA_ROW + 1}\b", text), text


def test_a_short_csv_row_is_named_by_its_event_row_and_its_line(tmp_path) -> None:
    lines = list(_CSV_LINES)
    lines[_BAD_LINE - 1] = "7,8"
    path = tmp_path / "feats.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(gm.ShapeError, match=rf"feats\.csv: row {_BAD_DATA_ROW} \(line {_BAD_LINE}\) has 2 columns, expected 3"):
        read_modality_file(Modality.VISUAL, path)


def test_a_quoted_field_over_two_lines_counts_both(tmp_path) -> None:
    # csv.reader reads one record over several lines: the line named is where the record starts
    path = tmp_path / "feats.csv"
    path.write_text('a,b\n1,2\n"3\n",4\n5,x\n')
    with pytest.raises(gm.InvalidValueError, match=r"row 2 \(line 5\) has a non-numeric value 'x'"):
        read_modality_file(Modality.VISUAL, path)


def test_valid_csv_and_npy_files_read_as_before(tmp_path) -> None:
    path = tmp_path / "feats.csv"
    path.write_text("\n".join(_CSV_LINES) + "\n")
    got = read_modality_file(Modality.VISUAL, path).values
    assert got.dtype == np.float32 and got.tolist() == [[1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 12]]
    arr = np.arange(12.0).reshape(4, 3)
    arr[2, 1] = np.nan
    np.save(tmp_path / "f.npy", arr)
    with pytest.raises(gm.NonFiniteError, match=r"row 2 holds nan \(column 1 of 3\)"):  # an array has no lines
        read_modality_file(Modality.VISUAL, tmp_path / "f.npy")


# ----------------------------------------------------------------- npz files
@pytest.mark.parametrize("members", [{}, {"notes.txt": b"hi"}])
def test_an_npz_without_arrays_says_so_not_pick_one(tmp_path, members) -> None:
    # Was "holds arrays []; pick one with empty.npz:KEY": there is none to pick
    path = tmp_path / "empty.npz"
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    for key in (None, "x"):
        with pytest.raises(gm.InvalidValueError) as err:
            read_modality_file(Modality.VISUAL, path, key)
        text = str(err.value)
        assert "empty.npz" in text and "holds no arrays" in text and "pick one" not in text, text


# ------------------------------------------------------------ demo's folder
def test_a_demo_folder_under_a_file_names_out_and_the_file(tmp_path, capsys) -> None:
    # Was "grapheme-mm: error: notes.txt/run: Not a directory": neither --out nor which part is the file
    from grapheme_multimodal.cli import main

    pytest.importorskip("matplotlib")
    pytest.importorskip("sklearn")
    blocker = tmp_path / "notes.txt"
    blocker.write_text("the user's notes\n")
    out = blocker / "run" / "deeper"
    code = main(["demo", "--out", str(out), "--epochs", "1", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("grapheme-mm: error: --out: "), err
    assert f"{str(blocker)!r} is a file, not a folder" in err, err
    assert blocker.read_text() == "the user's notes\n"


# ------------------------------------------- a file of another format as a checkpoint
def _npz(path):
    np.savez(path, a=np.zeros(3))


def _pickle(path):
    import pickle

    path.write_bytes(pickle.dumps({"weights": [1.0, 2.0]}, protocol=4))


@pytest.mark.parametrize(
    "name, write, what",
    [
        ("images.npy", lambda p: np.save(p, np.zeros((4, 3))), "a NumPy array file (.npy)"),
        ("images.npz", _npz, "a zip archive"),
        ("model.pt", _pickle, "a Python pickle"),
        ("model.h5", lambda p: p.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64), "an HDF5 file"),
    ],
)
def test_a_file_of_another_format_is_named_as_such_not_truncated(tmp_path, capsys, name, write, what) -> None:
    # Was "... is not a readable grapheme-multimodal/checkpoint/v1 file (truncated or corrupt?): its header
    # would be 379,676,406,402,707 bytes": the user gave their data (embed's arguments swapped), not a damaged file
    from grapheme_multimodal.cli import main

    path = tmp_path / name
    write(path)
    before = path.read_bytes()
    for load in (gm.LearnableMultiModal.load, gm.ExperienceBuffer(2).load):
        with pytest.raises(gm.CheckpointError) as err:
            load(path)
        text = str(err.value)
        assert text.startswith(f"path: {str(path)!r} is not a readable ") and what in text, text
        assert "truncated or corrupt" not in text, text
    assert main(["info", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and what in err and "truncated" not in err, err
    assert path.read_bytes() == before


# -------------------------------------------- a folder that is a broken symbolic link
def test_saving_into_a_loop_of_symbolic_links_says_so_not_missing(tmp_path) -> None:
    # Was "path: directory '.../loop' does not exist": it is there, a link that names itself
    (tmp_path / "loop").symlink_to("loop")
    (tmp_path / "dangling").symlink_to("nowhere")
    (tmp_path / "nowhere_either").mkdir()
    model = gm.LearnableMultiModal(embed_dim=8, hidden_dim=8, num_heads=2, seed=0)
    with pytest.raises(OSError) as err:
        model.save(tmp_path / "loop" / "m.safetensors")
    assert "loop of symbolic links" in str(err.value) and "does not exist" not in str(err.value), str(err.value)
    with pytest.raises(FileNotFoundError) as err:
        model.save(tmp_path / "dangling" / "m.safetensors")
    text = str(err.value)
    assert "symbolic link" in text and "nowhere" in text, text  # what is missing is the folder it names
    with pytest.raises(FileNotFoundError, match=r"^path: directory '.*missing' does not exist$"):
        model.save(tmp_path / "missing" / "m.safetensors")  # as before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dangling", "loop", "nowhere_either"]


def _trained(model):
    """``model`` after one epoch on random rows: embed says nothing of a
    checkpoint's training then (it warns of one that never trained)."""
    model.fit({"visual": np.random.default_rng(0).normal(size=(8, 3))}, epochs=1, progress=False)
    return model


@pytest.mark.parametrize(
    "first, warned",
    [("1,2,3x", "'3x' is no number"), ("id,2019,2020", "'id' is no number"), ("a,b,c", None), ("x1, x2, x3", None)],
)
def test_a_csv_header_holding_numbers_is_said_to_be_read_as_one(tmp_path, capsys, first, warned):
    """A first row with a typo (1,2,3x) was taken as a header and dropped
    without a word: embed wrote one row fewer, every row shifted by one
    against the user's events. A header of names alone stays quiet."""
    from grapheme_multimodal.cli import main

    (tmp_path / "f.csv").write_text(f"{first}\n4,5,6\n7,8,9\n")
    _trained(gm.LearnableMultiModal(embed_dim=8, hidden_dim=8, num_heads=2, input_dims={"visual": 3}, seed=0)).save(tmp_path / "m.safetensors")
    assert main(["embed", str(tmp_path / "m.safetensors"), "-m", f"visual={tmp_path / 'f.csv'}", "-o", str(tmp_path / "o.npy")]) == 0
    err = capsys.readouterr().err
    assert np.load(tmp_path / "o.npy").shape == (2, 8)  # read as before: the first line is a header
    if warned is None:
        assert err == ""
    else:
        assert err.startswith(f"grapheme-mm: warning: visual ({tmp_path / 'f.csv'}): line 1 was read as a header"), err
        assert warned in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "flag, lines, rows, error",
    [
        # a header of years: guessed as the first event; --csv-header skips it
        ("--csv-header", ["2019,2020,2021", "4,5,6", "7,8,9"], [[4, 5, 6], [7, 8, 9]], None),
        ("--csv-header", ["a,b,c", "4,5,6"], [[4, 5, 6]], None),  # a header of names, as guessed
        ("--csv-header", [",b,c", "4,5,6"], None, "header's first cell is empty"),  # still pandas' index column
        # a first event with a typo: guessed as a header; --no-csv-header names it
        ("--no-csv-header", ["1,2,3x", "4,5,6"], None, r"row 0 \(line 1\) has a non-numeric value '3x'"),
        ("--no-csv-header", ["0,1,2", "4,5,6"], [[0, 1, 2], [4, 5, 6]], None),  # an event, not pandas' column names
        ("--no-csv-header", ["1,2,3", "4,5,6"], [[1, 2, 3], [4, 5, 6]], None),
    ],
)
def test_the_cli_reads_a_csv_header_as_the_user_says(tmp_path, capsys, flag, lines, rows, error):
    """Whether a CSV's first row was a header was only guessed: a header of
    years was read as an event, a first event with a typo was dropped as a
    header with a warning and no way to say which it was."""
    from grapheme_multimodal.cli import main

    (tmp_path / "f.csv").write_text("\n".join(lines) + "\n")
    model = _trained(gm.LearnableMultiModal(embed_dim=8, hidden_dim=8, num_heads=2, input_dims={"visual": 3}, seed=0))
    model.save(tmp_path / "m.safetensors")
    argv = ["embed", str(tmp_path / "m.safetensors"), "-m", f"visual={tmp_path / 'f.csv'}", "-o", str(tmp_path / "o.npy"), flag]
    if error is not None:
        assert main(argv) != 0
        err = capsys.readouterr().err
        assert re.search(error, err) and str(tmp_path / "f.csv") in err, err
        assert not (tmp_path / "o.npy").exists()
        return
    assert main(argv) == 0
    assert capsys.readouterr().err == ""  # said, not guessed: no warning
    np.save(tmp_path / "rows.npy", np.asarray(rows, np.float32))  # the events meant, as an array
    assert main(argv[:3] + [f"visual={tmp_path / 'rows.npy'}", "-o", str(tmp_path / "expected.npy")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "o.npy"), np.load(tmp_path / "expected.npy"))


def test_read_numeric_csv_takes_the_header_as_given(tmp_path) -> None:
    """The library's CSV reader guessed only, as the command line did."""
    from grapheme_multimodal.files import read_numeric_csv

    path = tmp_path / "f.csv"
    path.write_text("2019,2020\n1,2\n")
    np.testing.assert_array_equal(read_numeric_csv(path), [[2019, 2020], [1, 2]])  # the guess: an event
    np.testing.assert_array_equal(read_numeric_csv(path, header=True), [[1, 2]])
    path.write_text("1,2x\n1,2\n")
    np.testing.assert_array_equal(read_numeric_csv(path), [[1, 2]])  # the guess: a header
    with pytest.raises(gm.InvalidValueError, match=r"row 0 \(line 1\) has a non-numeric value '2x'"):
        read_numeric_csv(path, header=False)
    path.write_text("1,2\n")
    with pytest.raises(gm.InvalidValueError, match="has a header but no data rows"):
        read_numeric_csv(path, header=True)
