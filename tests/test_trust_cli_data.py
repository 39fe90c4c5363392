"""What the data files ``grapheme-mm`` reads hold: a CSV's cells, quotes,
header and encoding, an ``.npy`` header's shape against its bytes, a text
file's characters. Each is read as numpy's ``loadtxt``/``load`` reads a
plain file of numbers, or refused in one line naming the file and where in
it, with exit status 2: never a traceback, never numbers the file does not
hold."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal.cli import main
from grapheme_multimodal.files import check_aligned, read_modality_file
from grapheme_multimodal.types import Modality


def _read(path: Path, header=None) -> np.ndarray:
    return read_modality_file(Modality.VISUAL, path, csv_header=header).values


def _one_line_error(capsys, argv, *words: str) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("grapheme-mm: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, (w, err)
    return err


def _train(path: Path, tmp_path: Path):
    return ["train", "-m", f"visual={path}", "--epochs", "1", "--no-progress", "-o", str(tmp_path / "m.safetensors")]


# ------------------------------------------------------------------ CSV cells
def test_valid_csv_files_read_as_numpy_loadtxt_reads_them(tmp_path) -> None:
    """What the changes below leave alone: byte-order mark, CRLF and lone CR
    line ends, quoted numbers, signs, exponents, spaces, blank lines, a header
    of names and np.savetxt's commented header."""
    expected = np.array([[1.5, -2.0, 1e5], [0.25, 3.0, -1e-3]])
    for content in (
        b"\xef\xbb\xbf1.5,-2,1E5\r\n0.25,+3,-1e-3\r\n",
        b"1.5,-2,1e5\r0.25,3,-0.001\r",
        b'"1.5", -2 ,"100000"\n\n0.25,3.0,-1e-3\n\n\n',
        b"a,b,c\n1.5,-2,1e5\n0.25,3,-1e-3\n",
        b"# a b c\n1.5,-2,1e5\n0.25,3,-1e-3\n",  # np.savetxt(header="a b c")
    ):
        (tmp_path / "f.csv").write_bytes(content)
        np.testing.assert_array_equal(_read(tmp_path / "f.csv"), expected.astype(np.float32), err_msg=repr(content))


def test_a_header_of_names_joined_by_underscores_is_a_header_not_an_event(tmp_path) -> None:
    """float() reads "0_1" as 1, as Python source does (numpy's loadtxt and
    pandas do not): a header of pixel names by row and column, 0_0,0_1,0_2,
    was read as an event of the numbers 0, 1, 2, one row too many and every
    row after it paired with the wrong event of the other files."""
    path = tmp_path / "pixels.csv"
    path.write_text("0_0,0_1,0_2\n5,6,7\n8,9,10\n")
    np.testing.assert_array_equal(_read(path), [[5, 6, 7], [8, 9, 10]])
    path.write_text("a,b\n1,2\n1_000,3\n")  # was 1000: a typo or an id, not a number numpy reads
    with pytest.raises(gm.InvalidValueError, match=r"row 1 \(line 3\) has a non-numeric value '1_000' \(column 0 of 2\); "
                                                   r"expected numbers only \(digits grouped by '_'"):
        _read(path)


@pytest.mark.parametrize("content, row, line, cell", [
    ("0_0,0_1\n1,2\n3,4\n5,6_7\n", 2, 4, "6_7"),  # after a header of underscores and clean rows
    ('a,b\n1,2\n"3\n",4\n"1_0",5\n', 2, 5, "1_0"),  # quoted, after a record of two lines
    ("1_5,2\n3,4\n", 0, 1, "1_5"),  # the first line, read as an event (header=False)
])
def test_digits_grouped_by_underscores_are_refused_in_any_data_row(tmp_path, content, row, line, cell) -> None:
    """Each line is checked for "_" as it is read, and a row's cells only
    when one of its lines held one: no row of them passes as a number,
    wherever it is, whatever the lines before it held."""
    from grapheme_multimodal.files import read_numeric_csv

    path = tmp_path / "f.csv"
    path.write_text(content)
    with pytest.raises(gm.InvalidValueError, match=rf"row {row} \(line {line}\) has a non-numeric value '{cell}'"):
        read_numeric_csv(path, header=False if row == 0 and line == 1 else None)


@pytest.mark.parametrize(
    "first, what, column",
    [
        ("1,,3", "an empty cell", 1),  # pandas' to_csv(header=False, index=False) of a first event holding NaN
        ("1,2,", "an empty cell", 2),  # a delimiter at the end of each line
        ("1, ,3", "an empty cell", 1),
        ("NA,2,3", "the cell 'NA'", 0),  # R's write.csv(row.names=FALSE)
        ("1,#N/A,3", "the cell '#N/A'", 1),  # a spreadsheet's
    ],
)
def test_a_first_event_with_missing_values_is_refused_not_dropped_as_a_header(tmp_path, capsys, first, what, column) -> None:
    """A first row of numbers and missing values was taken as a header:
    the event was dropped (with a warning that called '' a name), where
    the same row anywhere else is refused as a missing value."""
    path = tmp_path / "f.csv"
    rest = "4,5,6,\n7,8,9,\n" if first.endswith(",") else "4,5,6\n7,8,9\n"
    path.write_text(f"{first}\n{rest}")
    missing = f"{path}: row 0 (line 1) has {what} (column {column} of 3), a missing value"
    err = _one_line_error(capsys, _train(path, tmp_path), missing)
    assert "warning" not in err


def test_a_missing_value_written_as_na_is_named_as_missing(tmp_path) -> None:
    path = tmp_path / "f.csv"
    path.write_text("a,b\n1,2\n3,N/A\n")  # was "a non-numeric value 'N/A'"
    with pytest.raises(gm.InvalidValueError, match=r"row 1 \(line 3\) has the cell 'N/A' \(column 1 of 2\), a missing value"):
        _read(path)


def test_a_header_of_names_with_an_empty_first_cell_is_still_pandas_index(tmp_path) -> None:
    path = tmp_path / "f.csv"
    path.write_text(",0,1\n0,5,6\n1,7,8\n")  # DataFrame.to_csv() of default column names
    with pytest.raises(gm.InvalidValueError, match="header's first cell is empty"):
        _read(path)


# --------------------------------------------------------------- CSV quoting
@pytest.mark.parametrize(
    "content, words",
    [
        # one row: the quote read the rest of the file into one cell, and the file was "a header but no data rows"
        ('1,"2\n', "a quote in the row that starts on line 1 is never closed"),
        # longer: "row 1 (line 2) has a non-numeric value '4\n5,6\n7,8\n'", the rest of the file in the message
        ('1,2\n3,"4\n5,6\n7,8\n', "a quote in the row that starts on line 2 is never closed"),
        ('1,2\n"3"4,5\n', "line 2: ',' expected after '\"'"),  # was read as 34, as pandas reads it
    ],
)
def test_a_quote_that_is_not_closed_or_not_alone_is_named_by_its_line(tmp_path, capsys, content, words) -> None:
    path = tmp_path / "f.csv"
    path.write_text(content)
    err = _one_line_error(capsys, _train(path, tmp_path), f"{path}: is not a readable CSV file ({words}")
    assert "5,6" not in err


def test_a_quoted_field_over_two_lines_still_reads(tmp_path) -> None:
    path = tmp_path / "f.csv"
    path.write_text('a,b\n"1\n",2\n3,"4"\n')
    np.testing.assert_array_equal(_read(path), [[1, 2], [3, 4]])


# ---------------------------------------------------------------- CSV header
@pytest.mark.parametrize(
    "content, words",
    [
        # R's write.table(sep=","): the row names (1, 2, 3) were read as the first feature
        ('"a","b"\n"1",0.5,1.5\n"2",2.5,3.5\n', "the header (line 1) names 2 columns, but row 0 (line 2) has 3; expected "
                                              "a name for each column (a column of row names without a name"),
        ("a,b,c\n1,2\n3,4\n",
         "the header (line 1) names 3 columns, but row 0 (line 2) has 2; expected a name for each column"),
        ("my export\n1,2\n3,4\n", "the header (line 1) names 1 column, but row 0 (line 2) has 2"),
    ],
)
def test_a_header_that_does_not_name_each_column_is_refused(tmp_path, capsys, content, words) -> None:
    path = tmp_path / "f.csv"
    path.write_text(content)
    _one_line_error(capsys, _train(path, tmp_path), f"{path}: {words}")
    with pytest.raises(gm.ShapeError, match="names"):
        _read(path, header=True)  # said to be a header: still one name per column


# ------------------------------------------------------------- CSV separators
@pytest.mark.parametrize(
    "content, words",
    [
        ("1\t2\n3\t4\n", "'3\\t4' (column 0 of 1); expected numbers only (the file looks tab-separated"),
        ("1,5;2,5\n3,5;4,5\n", "the file looks semicolon-separated, as where commas are decimal points"),
        ("1\t2\t3\n", "has a header but no data rows; expected one row per event (the file looks tab-separated"),
    ],
)
def test_another_separator_is_said_to_be_one(tmp_path, capsys, content, words) -> None:
    path = tmp_path / "f.csv"
    path.write_text(content)
    _one_line_error(capsys, _train(path, tmp_path), words)


# ------------------------------------------------------------- CSV encodings
def test_a_csv_that_is_not_utf8_is_named_by_the_line_of_its_first_bad_byte(tmp_path, capsys) -> None:
    """The decoder's position counts from the block it decodes: a Latin-1
    byte on line 40,001 (byte 457,788) was said to be "at byte 7227"."""
    lines = [f"{i},{i + 1}" for i in range(50_000)]
    lines[40_000] = "3,caf\xe9"
    path = tmp_path / "f.csv"
    path.write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    _one_line_error(capsys, _train(path, tmp_path),
                    f"{path}: is not UTF-8 text (invalid continuation byte on line 40001); save it as UTF-8")
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("latin-1"))
    with pytest.raises(gm.InvalidValueError, match=r"on line 40001\)"):
        _read(path)


@pytest.mark.parametrize("suffix", [".csv", ".txt"])
def test_utf16_with_its_byte_order_mark_is_named_as_utf16(tmp_path, suffix) -> None:
    path = tmp_path / f"f{suffix}"
    path.write_bytes("1,2\n3,4\n".encode("utf-16"))  # was "invalid start byte at byte 0"
    with pytest.raises(gm.InvalidValueError, match=r"is UTF-16 text \(it starts with UTF-16's byte-order mark\), not UTF-8"):
        read_modality_file(Modality.LINGUISTIC if suffix == ".txt" else Modality.VISUAL, path)


def test_a_text_file_not_utf8_is_named_by_its_line(tmp_path) -> None:
    path = tmp_path / "f.txt"
    path.write_bytes("\ufeffone\r\ntwo\r\ncaf\xe9\r\n".encode("utf-8")[:-7] + "caf\xe9\r\n".encode("latin-1"))
    with pytest.raises(gm.InvalidValueError, match=r"f\.txt: is not UTF-8 text \(invalid continuation byte on line 3\)"):
        read_modality_file(Modality.LINGUISTIC, path)


def test_utf16_text_without_a_byte_order_mark_is_refused_not_read_as_texts(tmp_path, capsys) -> None:
    """UTF-16 without a byte-order mark is valid UTF-8: every text was read
    with a NUL beside each character and turned into graphs of them."""
    path = tmp_path / "captions.txt"
    path.write_bytes("a red square\na blue circle\n".encode("utf-16-le"))
    argv = ["train", "-m", f"linguistic={path}", "--epochs", "1", "--no-progress", "-o", str(tmp_path / "m.safetensors")]
    _one_line_error(capsys, argv, f"{path}: line 1 holds a NUL character; expected UTF-8 text (is the file UTF-16")
    path.write_bytes(b"fine\nfi\x00ne\n")
    with pytest.raises(gm.InvalidValueError, match=r"line 2 holds a NUL character"):
        read_modality_file(Modality.LINGUISTIC, path)
    csv = tmp_path / "f.csv"
    csv.write_bytes("a,b\n1,2\n".encode("utf-16-le"))
    with pytest.raises(gm.InvalidValueError, match=r"(\(|: )it holds NUL characters: is the file UTF-16 text"):
        _read(csv)


# ------------------------------------------------------------ rows of files
def test_rows_not_aligned_say_which_first_line_was_read_as_a_header(tmp_path, capsys) -> None:
    """The warning that a first line holding numbers was read as a header
    came after the refusal of the files' row counts, so never: the likely
    cause of a count one short was not said."""
    np.save(tmp_path / "a.npy", np.random.default_rng(0).normal(size=(3, 2)))
    (tmp_path / "b.csv").write_text("1,2x\n3,4\n5,6\n")
    argv = ["train", "-m", f"visual={tmp_path / 'a.npy'}", "-m", f"auditory={tmp_path / 'b.csv'}", "--epochs", "1",
            "--no-progress", "-o", str(tmp_path / "m.safetensors")]
    err = _one_line_error(capsys, argv, "rows are not aligned across modalities", f"auditory={tmp_path / 'b.csv'}: 2",
                          f"auditory ({tmp_path / 'b.csv'}): line 1 was read as a header", "--no-csv-header")
    assert "warning" not in err


def test_aligned_files_are_still_aligned(tmp_path) -> None:
    np.save(tmp_path / "a.npy", np.ones((2, 2)))
    (tmp_path / "b.csv").write_text("1,2x\n3,4\n5,6\n")
    files = [read_modality_file(Modality.VISUAL, tmp_path / "a.npy"),
             read_modality_file(Modality.AUDITORY, tmp_path / "b.csv")]
    assert check_aligned(files) == 2


# ------------------------------------------------------------------ .npy files
def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _npy_file(path: Path, data: bytes) -> Path:
    """``data`` (an .npy file's bytes) at ``path``: as it is, or as member ``x`` of an .npz."""
    if path.suffix == ".npz":
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("x.npy", data)
    else:
        path.write_bytes(data)
    return path


@pytest.mark.parametrize("shape", [(0, 10**20), (10**20, 0), (-3, -2)])
@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_an_npy_header_declaring_no_array_s_shape_is_one_line(tmp_path, capsys, shape, suffix) -> None:
    """numpy counts the values of the declared shape in int64: a dimension
    beyond it beside a 0 (nothing to read, so the size check passed) was an
    OverflowError, a traceback."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f8", "fortran_order": False, "shape": shape})
    data = buffer.getvalue() + b"\0" * 48
    path = _npy_file(tmp_path / f"f{suffix}", data)
    where = f"{path}:x" if suffix == ".npz" else str(path)
    _one_line_error(capsys, _train(path, tmp_path), f"{where}: its header declares shape {shape}, the shape of no array")


@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_an_npy_file_holding_more_than_its_array_is_refused_not_cut(tmp_path, capsys, suffix) -> None:
    """A header whose shape says fewer rows than its bytes hold (3 rows to
    2) was read as its first rows, the rest dropped without a word; so was a
    second array np.save'd into the same file."""
    rows = np.arange(6.0).reshape(3, 2)
    for data in (_npy(rows).replace(b"(3, 2)", b"(2, 2)"), _npy(rows) + _npy(rows)):
        path = _npy_file(tmp_path / f"f{suffix}", data)
        one = data.count(b"NUMPY") == 1
        shape = "(2, 2) (32 bytes) but 48" if one else f"(3, 2) (48 bytes) but {len(data) // 2 + 48}"
        err = _one_line_error(capsys, _train(path, tmp_path),
                              f"its header declares shape {shape} bytes follow; expected the array's bytes only")
        assert str(path) in err


def test_npy_files_np_save_writes_read_as_np_load_reads_them(tmp_path) -> None:
    rng = np.random.default_rng(0)
    for array in (rng.normal(size=(4, 3)), rng.normal(size=(4, 3)).astype(">f4"),
                  np.asfortranarray(rng.normal(size=(4, 3))), rng.normal(size=(2, 3, 2)).astype(np.float16),
                  np.arange(5, dtype=">i8"), rng.random((3, 2)) > 0.5):
        np.save(tmp_path / "f.npy", array)
        np.savez(tmp_path / "f.npz", x=array)
        expected = np.load(tmp_path / "f.npy").reshape(len(array), -1).astype(np.float32)
        np.testing.assert_array_equal(_read(tmp_path / "f.npy"), expected)
        np.testing.assert_array_equal(_read(tmp_path / "f.npz"), expected)


def test_an_npy_header_too_large_to_read_safely_does_not_advise_allow_pickle(tmp_path, capsys) -> None:
    header = b"{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }"
    path = tmp_path / "f.npy"
    padded = header + b" " * (20_000 - len(header) - 1) + b"\n"
    path.write_bytes(b"\x93NUMPY\x02\x00" + (len(padded)).to_bytes(4, "little") + padded + b"\0" * 8)
    err = _one_line_error(capsys, _train(path, tmp_path),
                          f"{path}: not a numeric .npy file (its header is larger than numpy reads without trusting the file)")
    assert "allow_pickle" not in err
    assert not re.search(r"\n.", err)
