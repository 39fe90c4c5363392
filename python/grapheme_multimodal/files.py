"""Reading a user's per-modality files: ``.npy``, ``.npz``, ``.csv``,
``.parquet`` (numeric feature rows) and ``.txt`` (one text per line, turned
into graphs).

Rows are events: row ``i`` of every file belongs to the same event.
"""

from __future__ import annotations

__all__ = [
    "ModalityFile",
    "read_modality_file",
    "read_numeric_csv",
    "read_texts",
    "parse_modality_spec",
    "ARRAY_SUFFIXES",
    "TEXT_SUFFIXES",
]

import codecs
import csv
import json
import math
import os
from array import array
import struct
import tokenize
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable, ContextManager, Iterator, List, NoReturn, Optional, Sequence, Tuple, Union

import numpy as np

from ._validation import as_real_array, counted, float32_of_wide, precision_lost, renamed
from ._exact_ints import beyond_float64
from ._frames import repeated_names, repeats_said
from .exceptions import GraphemeError, InvalidValueError, NonFiniteError, ShapeError, TooLargeError
from .io import (
    MISSING, as_path, binary_format, file_kind, kind_of_mode, missing_hint, opened_for_reading, shown_name, unencodable,
)
from .types import Modality

ARRAY_SUFFIXES = (".npy", ".npz", ".csv", ".parquet")
TEXT_SUFFIXES = (".txt",)


@dataclass
class ModalityFile:
    """One modality's data: ``values`` is a float32 ``[N, d]`` array, or a list
    of ``N`` texts for a ``.txt`` file."""

    modality: Modality
    path: Path
    values: Union[np.ndarray, List[str]]
    #: What reading it assumed that the user should know (a CSV header holding numbers): said as warnings, and in
    #: the refusal of files whose rows are not aligned (a first event read as a header is a row short).
    notes: Tuple[str, ...] = ()
    #: The column names of a CSV file's header (one per column), else None: a model
    #: trained on it keeps them (``train``), and ``embed`` refuses them in another order.
    columns: Optional[Tuple[str, ...]] = None
    #: The shape of each row as an array file holds it when it is no vector (``(2, 2)`` of a ``[N, 2, 2]``
    #: ``.npy``), flattened into ``values``; else None. A message of the width says so: "4 columns" of a
    #: file of 2 x 2 rows named columns it has not.
    row_shape: Optional[Tuple[int, ...]] = None
    #: What else the user should know of the file, which explains no row count (a CSV header naming two columns
    #: alike): said as warnings, as ``notes`` are, but not in the refusal of files whose rows are not aligned.
    warnings: Tuple[str, ...] = ()
    #: Which rows hold the modality (bool ``[N]``), when some row is missing whole (every cell empty, NA, ...,
    #: or every value NaN: the event lacks the modality, as an all-NaN row of a ``MultimodalEmbedder`` view);
    #: None when every row holds it. A missing row's ``values`` are NaN.
    present: Optional[np.ndarray] = None

    @property
    def is_text(self) -> bool:
        """Whether ``values`` are texts (a ``.txt`` file) rather than numbers."""
        return isinstance(self.values, list)

    def __len__(self) -> int:
        return len(self.values)


def parse_modality_spec(spec: str) -> Tuple[Modality, Path, Optional[str]]:
    """``"visual=images.npz:train"`` → ``(Modality.VISUAL, Path("images.npz"), "train")``."""
    if not isinstance(spec, str):  # a Path("visual=x.npy") or None: "object has no attribute 'partition'"
        raise TypeError(f"--modality: expected a str NAME=PATH (e.g. visual=images.npy), got {type(spec).__name__}")
    name, sep, rest = spec.partition("=")
    if not sep or not name or not rest:
        raise InvalidValueError(f"--modality: expected NAME=PATH (e.g. visual=images.npy), got {spec!r}", "--modality")
    try:
        modality = Modality.parse(name.strip())
    except (GraphemeError, TypeError) as err:  # "modality: unknown ...": the flag the user typed is --modality
        raise renamed(err, {"modality": "--modality"}) from None
    key = None
    path_text = rest
    if ".npz:" in rest.lower():  # as the reader, whatever the suffix's case (its own advice says DATA.NPZ:KEY)
        path_text, key = rest.rsplit(":", 1)
    why = unencodable(path_text)
    if why is not None:  # every read of it raised a bare UnicodeEncodeError
        raise InvalidValueError(f"--modality: {name}={why}", "--modality")
    if path_text == "-" and not os.path.lexists(path_text):  # was "file not found: -"
        raise InvalidValueError(
            f"--modality: {name}=-: standard input is not read (each file's suffix says how to read it); expected a file "
            "path (./- for a file named -)", "--modality",
        )
    if key is None:
        _refuse_key_off_npz(spec, name, Path(path_text))
    return modality, Path(path_text), key


def _refuse_key_off_npz(spec: str, name: str, path: Path) -> None:
    """``visual=a.npy:x``, where no file is named ``a.npy:x``: a ``:KEY``
    suffix picks an array of an ``.npz`` file only, and was read as part of
    the file's name ("file not found: a.npy:x", of a.npy that was there).
    Said so when ``a.npy`` exists, and which file is missing when it does
    not. A file whose name holds the colon is read as it is."""
    stem, colon, member = path.name.rpartition(":")
    if not colon or file_kind(path, "--modality") is not MISSING:
        return
    base = path.with_name(stem) if stem else None
    if base is None or base.suffix.lower() not in ARRAY_SUFFIXES + TEXT_SUFFIXES:  # not a data file's name and a key
        return
    if file_kind(base, "--modality") is MISSING:
        raise FileNotFoundError(
            f"--modality: {shown_name(spec)}: file not found: {shown_name(base)} (nor a file named {shown_name(path.name)}; a :KEY suffix is only for .npz files)"
            f"{missing_hint(base)}"
        )
    raise InvalidValueError(
        f"--modality: {shown_name(spec)}: a :KEY suffix ({':' + member!r}) picks an array of an .npz file only, and {shown_name(base)} is a "
        f"{base.suffix} file; expected {name}={shown_name(base)}",
        "--modality",
    )


def read_modality_file(
    modality: Union[Modality, str], path: Union[str, "os.PathLike[str]"], key: Optional[str] = None,
    notes: Optional[List[str]] = None, csv_header: Optional[bool] = None,
) -> ModalityFile:
    """Reads one file; every problem is a ``ValueError``/``FileNotFoundError``
    naming the file (a file too large for memory a ``TooLargeError``; a
    ``.parquet`` file without pyarrow installed a ``ModuleNotFoundError``).
    ``notes``: the file is training data, and what a
    :class:`~grapheme_multimodal.PrecisionLossWarning` would say of columns
    float32 loses is appended to it (see :func:`as_feature_rows`).
    ``csv_header``: whether a ``.csv`` file's first row is a header (see
    :func:`read_numeric_csv`); other files ignore it. ``modality`` is a
    :class:`Modality` or its name, ``path`` a str or ``os.PathLike`` (a str
    raised "'str' object has no attribute 'suffix'", and an unknown
    modality's name was read as if it were one)."""
    modality, path = Modality.parse(modality), as_path(path)
    kind = file_kind(path, str(modality))
    if kind is MISSING:
        raise FileNotFoundError(f"{modality}: file not found: {shown_name(path)}{missing_hint(path)}")
    if kind is not None:
        raise InvalidValueError(f"{modality}: {shown_name(path)} is {kind}; expected a data file", str(modality))
    suffix = path.suffix.lower()
    try:
        if suffix in TEXT_SUFFIXES:
            texts = read_texts(path)
            if not texts:
                raise InvalidValueError(f"{shown_name(path)}: has no lines; expected one text per event", str(modality))
            return ModalityFile(modality, path, texts)
        if suffix == ".npy":
            values = _load_npy(path)
        elif suffix == ".npz":
            values = _load_npz(path, key)
        elif suffix == ".parquet":
            what = f"{modality} ({shown_name(path)})"
            values, columns = _load_parquet(path, what, notes)
            rows, present = _feature_rows_and_presence(values, what, notes)
            return ModalityFile(modality, path, rows, (), columns, present=present,
                                warnings=_repeated_names_notes(what, columns, "schema")
                                + _row_number_notes(what, rows, columns, present))
        elif suffix == ".csv":
            values, lines, header, columns = _read_numeric_csv_lines(path, csv_header, finite=True)
            what = f"{modality} ({shown_name(path)})"
            rows, present = _feature_rows_and_presence(values, what, notes, _row_and_line(lines))
            return ModalityFile(modality, path, rows, _numeric_header_notes(what, header), columns,
                                warnings=_repeated_names_notes(what, columns) + _row_number_notes(what, rows, columns, present),
                                present=present)
        else:
            known = ", ".join(ARRAY_SUFFIXES + TEXT_SUFFIXES)
            raise InvalidValueError(
                f"{modality}: {shown_name(path)} has an unsupported type {suffix or '(none)'!r}; expected one of {known}", str(modality)
            )
        row_shape = tuple(values.shape[1:]) if getattr(values, "ndim", 0) > 2 else None
        what = f"{modality} ({shown_name(path)})"
        rows, present = _feature_rows_and_presence(values, what, notes)
        return ModalityFile(modality, path, rows, row_shape=row_shape, warnings=_row_number_notes(what, rows, None, present),
                            present=present)
    except MemoryError:
        raise TooLargeError(f"{modality}: {shown_name(path)} ({path.stat().st_size:,} bytes) does not fit in memory", str(modality)) from None


def read_texts(path: Union[str, "os.PathLike[str]"]) -> List[str]:
    r"""One text per line (trailing newline stripped; UTF-8, a byte-order
    mark skipped; UTF-16 or a NUL character is refused). Lines end at
    ``\n``, ``\r\n`` or ``\r`` only: ``str.splitlines`` also splits at form
    feeds, ``\x1c``-``\x1e``, ``\x85`` and U+2028/U+2029, which texts hold,
    and every text after one would have been paired with the wrong event."""
    path = as_path(path)  # a name: an int was taken for a file descriptor, None said "open: path should be ..."
    try:
        # utf-8-sig: without the byte-order mark Excel and Notepad write, read as part of the first text;
        # newline=None (read_text's) reads \r\n and \r as \n
        with _open_regular(path, encoding="utf-8-sig", newline=None) as f:
            text = f.read()
        if "\x00" in text:  # UTF-16 without a byte-order mark decodes as UTF-8: a NUL beside every character
            line = text.count("\n", 0, text.index("\x00")) + 1
            raise InvalidValueError(
                f"{shown_name(path)}: line {line} holds a NUL character; expected UTF-8 text (is the file UTF-16, or not text at "
                "all? save it as UTF-8)", str(path))
        lines = text.split("\n")
        return lines[:-1] if lines[-1] == "" else lines
    except UnicodeDecodeError as exc:  # of the whole file (less a byte-order mark): its start is in the file
        raise _not_utf8(path, exc.object[:8], exc.reason, 1 + _line_ends(exc.object[: exc.start])) from None


def read_numeric_csv(path: Union[str, "os.PathLike[str]"], header: Optional[bool] = None) -> np.ndarray:
    """A numeric CSV as float64. ``header``: ``True``, the first row is a
    header (column names, numbers or not) and is skipped; ``False``, it is an
    event; ``None`` (the default), a first row holding a cell that is
    neither a number nor a missing value is taken as a header — a guess a header of numbers (``2019,2020``) or an
    event with a typo (``1,2,3x``) defeats, which the two others settle. A
    header names each column; a comment line, ``# ...``, names them, the
    ``#`` aside, when it holds a name for each (``np.savetxt(...,
    header="a,b,c")`` writes ``# a,b,c``), and is dropped otherwise
    (``# written by ...``; the names may then be on a comment line below
    it: comment lines between a header and the first data row, as
    ``np.savetxt`` writes a header of several lines, are skipped, and one
    among the data rows is refused, saying so; with ``header=False``,
    comment lines above the first row are skipped, their names unread: a
    comment is no event); a cell is a number as ``float`` reads it, less digits grouped by ``_``; a missing
    value (one of pandas' ``read_csv`` default NA strings, regardless of case: an empty cell, ``NA``, ``N/A``,
    ``#N/A``, ``NULL``, ``None``, ``NaN``, ...) beside numbers is refused, and
    makes no header; quotes are read as the csv module's ``strict`` dialect
    reads them. The file is UTF-8 text (a byte-order mark skipped); UTF-16
    is refused, saying so.
    The marks of a pandas frame written with its defaults are refused, not
    read as data: a header with an empty first cell (a row index column)
    or a first column named ``Unnamed: 0`` (that index read back by
    ``pd.read_csv`` and written again), and, unless ``header=False`` says it is an event, a first row
    ``0, 1, ..., d-1`` (default column names; d >= 3). A problem in a row
    is named by the row (0-based among the data rows: the event, as every
    message of the package counts rows) and its line in the file (which a
    header and blank lines set apart from it). Blank lines are skipped; a
    row of empty cells (``,,``, a row of NaN as pandas writes it; ``""``, a
    NaN of a one-column frame), or of missing values and NaN only, is an
    event that lacks the modality: a row of NaN, as ``pd.read_csv`` reads it."""
    return _read_numeric_csv_lines(as_path(path), header)[0]


def _columns(n: int) -> str:
    return counted(n, "column")


def _why_no_number(cell: str) -> str:
    """What a CSV cell that is no number looks like, when it looks like
    something: numbers in another separator's columns, or UTF-16 text."""
    if "\x00" in cell:
        return " (it holds NUL characters: is the file UTF-16 text, or not text at all? expected UTF-8 text)"
    if "_" in cell and _is_float(cell.replace("_", "")):
        return " (digits grouped by '_' are not read as one number)"
    for sep, name in (("\t", "tab"), (";", "semicolon"), (" ", "space")):
        if sep in cell and all(_is_float(part) for part in cell.split(sep) if part.strip()):
            decimal = ", as where commas are decimal points" if sep == ";" else ""
            return f" (the file looks {name}-separated{decimal}; expected commas between values, and points in them)"
    return ""


def _numeric_header_notes(what: str, header: Optional[Tuple[int, List[str]]]) -> Tuple[str, ...]:
    """A note when the first row, taken as a header because a cell of it is
    no number, holds numbers too: a header of names (``id,2019``) or an
    event with a typo (``1,2,3x``), which would be dropped without a word and
    shift every row after it by one against the other files."""
    if header is None:
        return ()
    line, cells = header
    numbers = [c.strip() for c in cells if _is_float(c)]
    if not numbers:
        return ()
    names = [c.strip() for c in cells if not _is_float(c)]
    return (
        f"{what}: line {line} was read as a header (column names), though {len(numbers)} of its {len(cells)} cells "
        f"{'is a number' if len(numbers) == 1 else 'are numbers'}; if it is an event, {', '.join(repr(n) for n in names[:3])} {'is' if len(names) == 1 else 'are'} no "
        "number and the file's rows are one short (--no-csv-header reads it as an event, --csv-header says it is a "
        "header)",
    )


def _repeated_names_notes(what: str, columns: Optional[Tuple[str, ...]], source: str = "header") -> Tuple[str, ...]:
    """A note when a CSV header (``source``: or a ``.parquet`` file's
    ``"schema"``) names a column as another (``x,x``): the columns are read
    (pandas reads them too, as ``x``, ``x.1``), but ``embed``, which checks
    the names against the order the model was trained on, cannot tell
    those columns apart, so a swap between them went unnoticed without a
    word. Said by ``train`` and ``embed`` alike."""
    if columns is None or len(set(columns)) == len(columns):
        return ()
    repeated = repeated_names(columns)
    return (
        f"{what}: the {source} repeats {'a name' if len(repeated) == 1 else 'names'} ({repeats_said(repeated, 'for columns')}), "
        "so those columns are told apart by position only: embed, which checks a header's names against the order the "
        "checkpoint was trained on, cannot see them swapped; give each column a name of its own",
    )


def _row_number_notes(
    what: str, rows: np.ndarray, columns: Optional[Tuple[str, ...]], present: Optional[np.ndarray] = None
) -> Tuple[str, ...]:
    """A note when columns of ``rows`` hold consecutive integers row by row
    (``1001, 1002, ...``), as an id or a row index does: a CSV exported with
    its id column, or an array with its index, trained a model on the
    event numbers as a feature without a word. ``present``: the rows that
    hold the modality (:func:`_feature_rows_and_presence`); a row missing
    whole is passed over, its number still counted (a NaN among the first
    rows kept the note from ever being said). Only the columns that step
    from the first present row to the second as their row numbers do are
    read in full."""
    numbers = range(len(rows)) if present is None else np.flatnonzero(present)
    if len(numbers) < 3:
        return ()
    first, second = rows[numbers[0]], rows[numbers[1]]
    candidates = np.flatnonzero((second - first == numbers[1] - numbers[0]) & (first == np.floor(first)))
    if present is None:  # no index array nor copy of a column: a file of every row pays as before
        counting = [int(j) for j in candidates if np.all(np.diff(rows[:, j]) == 1)]
    else:
        steps = np.diff(numbers)
        counting = [int(j) for j in candidates if np.array_equal(np.diff(rows[numbers, j]), steps)]
    if not counting:
        return ()
    shown = ", ".join(f"{j} ({columns[j]!r})" if columns else str(j) for j in counting[:3]) + (", ..." if len(counting) > 3 else "")
    many = len(counting) > 1
    j = counting[0]
    span = "" if many else f" ({rows[numbers[0], j]:g} to {rows[numbers[-1], j]:g})"
    return (
        f"{what}: column{'s' * many} {shown} of {rows.shape[1]} {'hold' if many else 'holds'} consecutive integers row "
        f"by row{span}, as an id or a row index does, and {'are' if many else 'is'} read as a feature; if "
        f"{'they are ids' if many else 'it is an id'}, leave {'them' if many else 'it'} out of the file (row i of every "
        "file is event i already)",
    )


def _row_and_line(lines: Sequence[int]) -> Callable[[int], str]:
    """How a message names data row ``i`` of a CSV whose rows start at ``lines``."""
    return lambda i: f"row {i} (line {lines[i]})"


def _not_utf8(path: Path, first: bytes, reason: str, line: int) -> InvalidValueError:
    """The refusal of a file that is not UTF-8 text (``first``: its first 8
    bytes), whose first byte that is not is on ``line``, for ``reason``."""
    if first[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):  # what Notepad's and PowerShell's "Unicode" write
        return InvalidValueError(
            f"{shown_name(path)}: is UTF-16 text (it starts with UTF-16's byte-order mark), not UTF-8; save it as UTF-8", str(path))
    binary = binary_format(first)
    if binary is not None:  # gzip'd, an .npy or a workbook under a text name: "save it as UTF-8" advised re-encoding it
        return InvalidValueError(
            f"{shown_name(path)}: is {binary} (it begins {first!r}), not text; expected UTF-8 text, as its name "
            f"({path.suffix}) says", str(path))
    return InvalidValueError(f"{shown_name(path)}: is not UTF-8 text ({reason} on line {line}); save it as UTF-8", str(path))


def _line_ends(data: bytes, after_cr: bool = False) -> int:
    r"""How many line ends (``\n``, ``\r\n`` or ``\r``, as text files are
    read) ``data`` holds; ``after_cr``: the byte before it is ``\r``."""
    return data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n") - (after_cr and data.startswith(b"\n"))


def _first_not_utf8(path: Path, raw: IO[bytes]) -> InvalidValueError:
    """:func:`_not_utf8` of the file ``raw`` (binary, seekable) reads, found
    again from its start: the error of a text stream counts its position
    from the block it was decoding."""
    raw.seek(0)
    first = raw.read(8)
    raw.seek(0)
    decoder = codecs.getincrementaldecoder("utf-8")()
    line, after_cr = 1, False
    while True:
        block = raw.read(1 << 20)
        pending = len(decoder.getstate()[0])  # the bytes of a character the last block cut: no line end among them
        try:
            decoder.decode(block, final=not block)
        except UnicodeDecodeError as exc:
            return _not_utf8(path, first, exc.reason, line + _line_ends(block[: max(exc.start - pending, 0)], after_cr))
        if not block:  # all of it is UTF-8 now (changed since?): said without a place
            return InvalidValueError(f"{shown_name(path)}: is not UTF-8 text; save it as UTF-8", str(path))
        line += _line_ends(block, after_cr)
        after_cr = block.endswith(b"\r")


def _csv_error(exc: csv.Error, start: int, line: int) -> str:
    """What the csv module's ``exc`` says, with where: ``line`` (the line
    read last) of the record that starts on line ``start``."""
    text = str(exc)
    if "NUL" in text:  # Python < 3.11's csv refuses NUL itself: said as the cell's check says it from 3.11 on
        return f"line {line}: it holds NUL characters: is the file UTF-16 text, or not text at all? expected UTF-8 text"
    if text == "unexpected end of data":  # the file ended inside a quoted field
        return f"a quote in the row that starts on line {start} is never closed; expected a closing quote (\")"
    if text.startswith("field larger than field limit"):
        return f"line {line} holds a cell of more than {csv.field_size_limit():,} characters; expected numbers"
    return f"line {line}: {text}"


def _read_numeric_csv_lines(
    path: Path, header_given: Optional[bool] = None, finite: bool = False,
) -> Tuple[np.ndarray, Sequence[int], Optional[Tuple[int, List[str]]], Optional[Tuple[str, ...]]]:
    """:func:`read_numeric_csv`, the line (1-based) each data row starts on,
    the header guessed (its line and cells; ``None`` without one, or
    when ``header_given`` said whether there is one), and the header's
    column names (stripped; ``None`` without a header, or a comment line
    that names no columns). ``finite``: a cell read as NaN or infinity is
    refused too, in its place among the problems."""
    # Data rows are parsed as they are read, into packed float64 values and their lengths: kept
    # as lists of cell strings until the end, they took 10-30x the file's size (a CSV of a few GB
    # was ended by the OOM killer). Problems are still raised in the order they were.
    first: Optional[List[str]] = None
    is_header = False
    values, lengths, lines = array("d"), array("q"), array("q")
    bad: Optional[Tuple[int, int, str]] = None  # the first data row with a cell that is no number, its column, the cell
    comments: List[List[str]] = []  # the comment lines between a header and the first data row (read as comments)
    commented = False  # whether bad's row is a comment line (among the data rows: refused, saying so)
    skipped_comments = 0  # the comment lines above the first row, with header_given False (no header: skipped)
    try:
        # utf-8-sig: a byte-order mark (Excel's "CSV UTF-8") made the first row non-numeric,
        # and it was dropped as a header
        with _open_regular(path, newline="", encoding="utf-8-sig") as f:
            start = 1
            # strict: a quote never closed read the rest of the file into one cell (a one-row file was "a header
            # but no data rows", a longer one a message holding the rest of the file), and '"1"2' was 12
            underscored = [False]  # whether a line of the record just read holds "_" (float() reads "0_1" as 1)
            reader = csv.reader(_noting_underscores(f, underscored), strict=True)
            try:
                for r in reader:
                    if first is None and header_given is False and _is_comment(r):
                        # a comment line above the numbers ("# a,b,c", as np.savetxt(header=...) writes), said to
                        # head no header: no event either ("row 0 has a non-numeric value '# a'"). Skipped, as
                        # np.loadtxt skips it and as the guess drops it; its names are not read (no header, said)
                        skipped_comments += 1
                        start = reader.line_num + 1
                        underscored[0] = False
                        continue
                    if not _is_blank_line(r):
                        if first is None:
                            first = r
                            is_header = _is_header_guess(r) if header_given is None else header_given
                        if r is not first and is_header and not lengths and _is_comment(r):
                            # np.savetxt writes a header of several lines as as many "# ..." lines: the second
                            # was refused as a row of 1 column. Only here, above the numbers: a "# ..." line
                            # among them is refused (dropped, it shifted every event after it against the other
                            # files', as a commented-out event would have).
                            comments.append(r)
                            start = reader.line_num + 1
                            underscored[0] = False
                            continue
                        if r is not first or not is_header:
                            lengths.append(len(r))
                            if bad is None:
                                try:
                                    row = [float(cell) for cell in r]
                                    if underscored[0] and "_" in "".join(r):  # see _is_float
                                        raise ValueError
                                    values.extend(row)
                                except ValueError:
                                    if _is_missing_row(r):  # the event lacks the modality: NaN, as pandas reads it
                                        values.extend([math.nan] * len(r))
                                    elif r is not first and _is_comment(r):  # checked here: good rows pay nothing
                                        bad, commented = (len(lengths) - 1, 0, ",".join(r)), True
                                    else:
                                        bad = (len(lengths) - 1, *next((j, c) for j, c in enumerate(r) if not _is_float(c)))
                        lines.append(start)
                    start = reader.line_num + 1  # a quoted field may hold line breaks: the next record starts here
                    underscored[0] = False  # the reader reads no line ahead of the record it hands out
            except UnicodeDecodeError:
                # its start counts from the block being decoded, not from the file's start ("at byte 7227" of a
                # byte 457,787 on line 40,001): found again in the file
                raise _first_not_utf8(path, f.buffer) from None
    except csv.Error as exc:
        why = _csv_error(exc, start, reader.line_num)
        raise InvalidValueError(f"{shown_name(path)}: is not a readable CSV file ({why})", str(path)) from None
    if first is None:
        what = f"holds only {counted(skipped_comments, 'comment line')}" if skipped_comments else "is empty"
        raise InvalidValueError(f"{shown_name(path)}: the CSV file {what}; expected one row of numbers per event", str(path))
    header = None
    columns: Optional[Tuple[str, ...]] = None
    if is_header:
        if len(first) > 1 and not first[0].strip():
            # pandas' DataFrame.to_csv() and R's write.csv() head their row index so: the index was read as a feature
            raise InvalidValueError(
                f"{shown_name(path)}: the header's first cell is empty, as pandas (DataFrame.to_csv) and R (write.csv) head a row "
                "index, which would be read as a feature; expected the file without it (to_csv(index=False)), or a "
                "name in that cell if the column is data", str(path))
        if len(first) > 1 and first[0].strip() == _PANDAS_UNNAMED_INDEX:
            # that index read back by pd.read_csv and written again with to_csv(index=False): a column so named
            raise InvalidValueError(
                f"{shown_name(path)}: the header's first column is named {_PANDAS_UNNAMED_INDEX!r}, pandas' name for the "
                "row index an earlier to_csv wrote without a name, which would be read as a feature; expected the file "
                f"without it (pd.read_csv(..., index_col=0), or df.drop(columns={_PANDAS_UNNAMED_INDEX!r}), before "
                "to_csv(index=False)), or a name of its own if the column is data", str(path))
        header = (lines[0], first) if header_given is None else None  # a guess is said; a given header is not
        header_line, lines = lines[0], lines[1:]
        if not lines:
            # a one-line file of tab-separated numbers was a header of one name: said what it looks like
            looks = next((_why_no_number(cell) for cell in first if not _is_float(cell)), "")
            raise InvalidValueError(
                f"{shown_name(path)}: the CSV file has a header but no data rows; expected one row per event{looks}", str(path))
        names = _comment_names(first)
        if names == ():  # a comment naming no column ("# written by ..."): the names may be on a line below it
            names = next((n for n in map(_comment_names, comments) if n and len(n) == lengths[0]), ())
        if names is None and len(first) != lengths[0]:
            # R's write.table(sep=",") names every column but its row names: they were read as a feature.
            index = " (a column of row names without a name, as R's write.table writes, is no feature)"
            raise ShapeError(
                f"{shown_name(path)}: the header (line {header_line}) names {_columns(len(first))}, but {_row_and_line(lines)(0)} "
                f"has {lengths[0]}; expected a name for each column{index if len(first) == lengths[0] - 1 else ''}",
                str(path))
        if names is None:
            columns = tuple(cell.strip() for cell in first)
        elif names and len(names) == lengths[0] > 1:
            columns = names
    elif header_given is None and len(first) >= 3 and [cell.strip() for cell in first] == [str(i) for i in range(len(first))]:
        # pandas writes a frame's default column names so: the header was read as an event
        raise InvalidValueError(
            f"{shown_name(path)}: the first row is 0, 1, ..., {len(first) - 1}, as pandas writes the default column names of a "
            "DataFrame, which would be read as an event; expected the file without them (to_csv(header=False)), or, "
            "if that row is data, a header line of names above it", str(path))
    width = lengths[0]
    where = _row_and_line(lines)
    packed = np.frombuffer(values, np.float64)
    # a cell float() reads as NaN or infinity (nan, inf, 1e400), with finite: the rows read before any bad one
    infinite = _first_non_finite(packed, lengths, len(lengths) if bad is None else bad[0]) if finite else None
    last = min(r for r in (len(lengths) - 1, bad and bad[0], infinite and infinite[0]) if r is not None)
    for i in range(last + 1):  # row by row, a row's width before its cells
        if commented and i == bad[0]:
            cell = bad[2].strip()
            shown = repr(cell) if len(cell) <= 40 else repr(cell[:40]) + "..."
            raise InvalidValueError(
                f"{shown_name(path)}: {where(i)} is a comment line ({shown}), which is read as one only above the "
                f"first row of numbers{' (below the header)' if is_header else ''}; expected numbers in every row "
                "below it: remove the line (a commented-out event? then leave that event out of every file), or move "
                f"it {'up, between the header and the first row' if is_header else 'to the top'}", str(path))
        if lengths[i] != width:
            raise ShapeError(f"{shown_name(path)}: {where(i)} has {_columns(lengths[i])}, expected {width}", str(path))
    if infinite is not None and (bad is None or infinite[0] < bad[0]):
        _refuse_non_finite_cell(path, where, lines, width, *infinite)
    if bad is not None:
        row, column, cell = bad
        if _is_missing(cell):  # '' is no number either, but "a non-numeric value ''" did not say it is a missing one
            what = "an empty cell" if not cell.strip() else f"the cell {cell.strip()!r}"
            raise InvalidValueError(
                f"{shown_name(path)}: {where(row)} has {what} (column {column} of {lengths[row]}), a missing value (pandas' "
                f"to_csv writes NaN so, R's write.csv NA), beside numbers; {_WHOLE_ROWS_MISSING}", str(path))
        raise InvalidValueError(
            f"{shown_name(path)}: {where(row)} has a non-numeric value {cell!r} (column {column} of {lengths[row]}); expected "
            f"numbers only{_why_no_number(cell)}", str(path))
    return packed.reshape(len(lengths), width), lines, header, columns


def _first_non_finite(packed: np.ndarray, lengths: Sequence[int], rows: int) -> Optional[Tuple[int, int, float]]:
    """``(row, column, value)`` of the first value of ``packed`` (the first
    ``rows`` rows' values, of ``lengths`` each, one after the other) that is
    NaN or infinite, in a row not NaN throughout (a missing row: the event
    lacks the modality); None when there is none. One pass over the values
    of a file of finite numbers."""
    finite = np.isfinite(packed)
    if finite.all():
        return None
    widths = np.frombuffer(lengths, np.int64)[:rows]
    finite |= _in_missing_rows(packed, widths)
    if finite.all():
        return None
    k = int(np.argmin(finite))
    ends = np.cumsum(widths)
    row = int(np.searchsorted(ends, k, side="right"))
    return row, k - (int(ends[row - 1]) if row else 0), float(packed[k])


def _in_missing_rows(packed: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """Whether each value of ``packed`` (rows of ``widths`` values, one after
    the other) is in a row NaN throughout. Rows of one width (any file that
    gets past the width check) as a 2-D view: no index per value, which
    took 16 bytes a value."""
    if len(widths) and (widths == widths[0]).all():
        rows = packed.reshape(len(widths), int(widths[0]))
        return np.broadcast_to(np.isnan(rows).all(axis=1)[:, None], rows.shape).reshape(-1)
    row_of = np.repeat(np.arange(len(widths)), widths)  # the row of each value
    return (np.bincount(row_of, weights=np.isnan(packed), minlength=len(widths)) == widths)[row_of]


def _refuse_non_finite_cell(
    path: Path, where: Callable[[int], str], lines: Sequence[int], width: int, row: int, column: int, value: float
) -> NoReturn:
    """Refuses a CSV cell that ``float`` read as ``value``, NaN or infinity
    (``nan``, ``inf``, or ``1e400``, which overflows float64), naming its
    row, line, column and the cell as written, as a cell that is no number
    is named: it was "row 5 (line 6) holds NaN or inf", of a file that held
    neither word where the cell said ``1e400``."""
    cell = _cell_at(path, lines[row], column)
    if cell is None or not _is_float(cell) or not (float(cell) == value or math.isnan(float(cell)) and math.isnan(value)):
        cell = repr(value)  # the file changed since it was read: the value as it was read
    if math.isnan(value):
        why = f"not a number (NaN), as numpy's savetxt writes a missing value, beside numbers; {_WHOLE_ROWS_MISSING}"
    elif cell.strip().lower().lstrip("+-").startswith("inf"):
        why = "infinite; expected finite numbers"
    else:  # 1e400: a finite number in the file, beyond float64 (and float32, which the model computes in)
        why = f"too large for float32 (largest {float(np.finfo(np.float32).max):.1e}); expected finite float32 numbers"
    raise NonFiniteError(
        f"{shown_name(path)}: {where(row)} has the value {cell.strip()!r} (column {column} of {width}), {why}", str(path))


def _cell_at(path: Path, line: int, column: int) -> Optional[str]:
    """The cell ``column`` of the CSV record that starts on ``line`` of
    ``path``, read again (the reader keeps no cell's text), or None when the
    file no longer holds it."""
    try:
        with _open_regular(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, strict=True)
            start = 1
            for record in reader:
                if start == line:
                    return record[column] if column < len(record) else None
                if start > line:
                    return None
                start = reader.line_num + 1
    except (OSError, ValueError, csv.Error):
        return None
    return None


#: What the refusal of NaN in a row that holds numbers too adds: NaN is how numpy and pandas write a missing
#: value, and "expected finite numbers" left the user without a way on.
_MISSING_VALUES = ("; NaN is a missing value, taken only as a whole row: fill the row's missing values, or make "
                   "every value of the row NaN (a row of NaN marks the event as lacking this modality, as an all-NaN "
                   "row of a MultimodalEmbedder view does)")


def as_feature_rows(
    values: np.ndarray, what: str, notes: Optional[List[str]] = None, row_name: Optional[Callable[[int], str]] = None
) -> np.ndarray:
    """``[N, d]`` float32 from ``[N]``, ``[N, d]`` or ``[N, ...]`` (flattened per
    row), refusing complex numbers, empty arrays and values float32 cannot hold.
    With ``notes`` (training data), columns whose variation float32 loses
    are described there, as ``"{what}: ..."`` (:func:`precision_lost`).
    ``row_name(i)`` names row ``i`` in a refusal (default ``"row i"``).
    A row of NaN throughout is an event lacking the modality, kept as NaN
    (see :func:`_feature_rows_and_presence`, which says which rows they are);
    NaN in a row that holds numbers too is refused."""
    return _feature_rows_and_presence(values, what, notes, row_name)[0]


def _feature_rows_and_presence(
    values: np.ndarray, what: str, notes: Optional[List[str]] = None, row_name: Optional[Callable[[int], str]] = None
) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """:func:`as_feature_rows` and which rows hold the modality (bool ``[N]``;
    None when every row does): a row NaN throughout does not, as
    ``MultimodalEmbedder`` reads an all-NaN row of a view. A file whose every
    row is NaN is refused: there is nothing to learn or embed of it."""
    row_name = row_name or (lambda i: f"row {i}")
    arr = as_real_array(values, what)
    if arr.ndim == 0:
        raise ShapeError(f"{what}: expected one row per event, got a scalar", what)
    if arr.shape[0] == 0:
        raise ShapeError(f"{what}: has no rows (shape {arr.shape}); expected one row per event", what)
    arr = arr.reshape(arr.shape[0], -1) if arr.ndim != 1 else arr[:, None]
    if arr.shape[1] == 0:
        raise ShapeError(f"{what}: rows have no values (shape {arr.shape}); expected at least one feature", what)
    real = arr
    if arr.dtype.kind == "f" and arr.dtype.itemsize > 4:
        # names a value too large for float32 by its row
        arr = float32_of_wide(arr, what, per_column=True, place_of=lambda at: row_name(at[0]))
    else:
        arr = arr.astype(np.float32, copy=False)  # freshly read: float32 files need no second copy
    present = None
    finite = np.isfinite(arr)
    if not finite.all():  # a file of finite numbers pays no second pass
        missing = np.isnan(arr).all(axis=1)
        if missing.all():
            raise InvalidValueError(
                f"{what}: every row is missing (NaN or empty throughout), so the modality is missing from every event; "
                "expected at least one row of numbers (leave the file out: a modality with no data cannot be trained "
                "or embedded)", what)
        finite[missing] = True
        if not finite.all():
            # which value, and where: "holds NaN or inf" named neither (a .npy of NaN for missing values, or an inf)
            row, column = (int(i) for i in np.argwhere(~finite)[0])
            raise NonFiniteError(
                f"{what}: {row_name(row)} holds {float(arr[row, column])} (column {column} of {arr.shape[1]}); expected "
                f"finite numbers{_MISSING_VALUES if np.isnan(arr[row, column]) else ''}", what)
        present = ~missing  # some row is missing: the values refused above were all in such rows
    lost = None if notes is None else precision_lost(real, arr, present)
    if lost is not None:
        notes.append(f"{what}: {lost}")
    return arr, present


def check_aligned(files: Sequence[ModalityFile]) -> int:
    """The common number of rows, or a ValueError listing each file's count."""
    counts = {f"{f.modality}={shown_name(f.path)}": len(f) for f in files}
    if len(set(counts.values())) > 1:
        detail = ", ".join(f"{k}: {v}" for k, v in counts.items())
        # a first line read as a header (a first event with a typo) is a row short, and its warning came only after
        # this error, never: said here, where it is the likely cause
        assumed = "".join(f"; {note}" for f in files for note in f.notes)
        raise ShapeError(
            f"rows are not aligned across modalities ({detail}); every file needs one row per event{assumed}", "files")
    return next(iter(counts.values()))


def _open_regular(path: Path, **text: Any) -> ContextManager[IO[Any]]:
    """``path`` opened for reading, refused unless it is a regular file: in
    binary, or as text with ``text`` (``open``'s encoding and newline).
    Whatever is at the name when it is opened is what is checked and read:
    the CLI's check of the name (:func:`~grapheme_multimodal.io.file_kind`)
    came before a second open by name, and a FIFO put there meanwhile (or
    passed to :func:`read_texts` directly) made the read wait for a writer
    forever; a symbolic link swapped in to one, or to a device, the same."""

    def check(fd: int) -> None:  # opened without waiting: a FIFO does not wait for a writer; fstat says what it is
        kind = kind_of_mode(os.fstat(fd).st_mode)
        if kind is not None:
            raise InvalidValueError(f"{shown_name(path)}: is {kind}, not a regular file; expected a data file", str(path))
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)  # a regular file's reads never wait; the flag is not left on for them

    # closed whatever interrupts: a Ctrl-C as the file object was made (or the caller's with began) left it open
    return opened_for_reading(path, check, **text)


def _load_npy(path: Path) -> np.ndarray:
    """The array of the ``.npy`` file at ``path``, read from the one open file
    whose header was checked: opened again by name (``np.load(path)``), a file
    put in its place since (another program's save, a forged header) was
    read unchecked, and a FIFO there waited for a writer forever."""
    with _open_regular(path) as f:
        st = os.fstat(f.fileno())
        _check_npy_header(f, path, st.st_size, shown_name(path))
        f.seek(0)
        try:
            return np.lib.format.read_array(f, allow_pickle=False)  # what np.load(path) reads of an .npy file
        except (ValueError, OSError, EOFError) as exc:
            raise InvalidValueError(f"{shown_name(path)}: not a numeric .npy file ({exc})", str(path)) from None


def _load_npz(path: Path, key: Optional[str]) -> np.ndarray:
    try:
        with _open_regular(path) as f, zipfile.ZipFile(f) as z:  # not by name: see _open_regular
            names = z.namelist()
            keys = [n[: -len(".npy")] for n in names if n.endswith(".npy")]
            twin = next((k for k in keys if keys.count(k) > 1), None)
            if twin is not None:  # no key picks one of them
                raise InvalidValueError(f"{shown_name(path)}: holds two arrays named {twin!r}; expected one array per name", str(path))
            if not keys:
                no_key = "" if key is None else f" (no {key!r})"
                raise InvalidValueError(f"{shown_name(path)}: holds no arrays{no_key}; expected a .npz file of the modality's array", str(path))
            if key is None:
                if len(keys) != 1:
                    raise InvalidValueError(f"{shown_name(path)}: holds arrays {keys}; pick one with {shown_name(path)}:KEY", str(path))
                key = keys[0]
            if key not in keys:
                raise InvalidValueError(f"{shown_name(path)}: has no array {key!r}; it holds {keys}", str(path))
            info = z.getinfo(f"{key}.npy")
            if info.flag_bits & 0x1:  # zipfile's refusal was a bare RuntimeError ("password required"), a traceback
                raise InvalidValueError(
                    f"{shown_name(path)}: its array {key!r} is encrypted (a password-protected zip archive); "
                    "expected a .npz file as numpy writes it (unencrypted)", str(path))
            with z.open(info) as member:
                _check_npy_header(member, path, info.file_size, f"{shown_name(path)}:{key}")
            # From the member just checked: np.load(path)[key] reads a member named plain
            # `key`, when the archive has one, in place of `key`.npy.
            with z.open(info) as member:
                return np.lib.format.read_array(member, allow_pickle=False)
    except InvalidValueError:
        raise
    except (zipfile.BadZipFile, zlib.error, struct.error, ValueError, OSError, EOFError, KeyError, NotImplementedError) as exc:
        # what a corrupt archive raises from the zip directory, the decompressor or the member's .npy
        raise InvalidValueError(f"{shown_name(path)}: not a readable .npz file ({type(exc).__name__}: {exc})", str(path)) from None


def _load_parquet(path: Path, what: str, notes: Optional[List[str]] = None) -> Tuple[np.ndarray, Tuple[str, ...]]:
    """The rows of the ``.parquet`` file at ``path`` (its numeric columns, as
    float64 where a null is, else in their own dtype) and the columns' names,
    kept as a CSV header's are. A null is a missing value, NaN, read by the
    whole-row rule (:func:`_feature_rows_and_presence`): a row null (or NaN)
    in every column is an event lacking the modality, a null beside numbers
    is refused naming its row and column. The row index pandas writes as a
    column (``df.to_parquet()`` of a frame whose index is not a range) is
    not read, as ``pd.read_parquet`` reads it back as the index. With
    ``notes`` (training data), an integer column the float64 rows round is
    checked as its integers (:func:`_integers_float64_hides`)."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ModuleNotFoundError(f"{what}: reading a .parquet file needs pyarrow: pip install pyarrow", name="pyarrow") from None
    with _open_regular(path) as f:  # not by name: see _open_regular
        try:
            # not pq.read_table: its dataset scan refused columns named alike ("Multiple matches for FieldRef"),
            # said as a file not readable; they are read, as a CSV header's, and warned of
            table = pq.ParquetFile(f).read()
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise InvalidValueError(f"{shown_name(path)}: not a readable .parquet file ({exc})", str(path)) from None
    index = _pandas_index_columns(table.schema)
    keep = [i for i, name in enumerate(table.column_names) if name not in index]
    if not keep:
        raise ShapeError(f"{shown_name(path)}: holds no columns; expected one numeric column per feature", str(path))
    names = tuple(table.column_names[i] for i in keep)
    columns = [table.column(i) for i in keep]
    for name, column in zip(names, columns):
        kind = column.type
        if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
            raise InvalidValueError(
                f"{shown_name(path)}: column {name!r} holds {kind} values; expected numeric columns only (integers or "
                "floats): leave it out, or cast it to numbers", str(path))
    if not any(column.null_count for column in columns):
        values = np.column_stack([column.to_numpy() for column in columns])
    else:
        values = np.column_stack([np.asarray(column.fill_null(0).to_numpy(), np.float64) for column in columns])
    if notes is not None and values.dtype.kind == "f":  # integer columns stacked beside floats (or nulls): rounded
        notes.extend(f"{what}: {said}" for said in _integers_float64_hides(columns, values))
    if not any(column.null_count for column in columns):
        return values, names
    nulls = np.column_stack([np.asarray(column.is_null()) for column in columns])
    values[nulls] = np.nan
    partly = nulls.any(axis=1) & ~np.isnan(values).all(axis=1)
    if partly.any():
        row = int(np.argmax(partly))
        column = int(np.argmax(nulls[row]))
        raise InvalidValueError(
            f"{shown_name(path)}: row {row} has a null (a missing value) in column {names[column]!r} ({column} of "
            f"{len(names)}), beside numbers; expected numbers only, or a row missing whole: fill the row's missing "
            "values, or make every value of it null (a row null throughout marks the event as lacking this modality)",
            str(path))
    return values, names


def _integers_float64_hides(columns: Sequence[Any], values: np.ndarray) -> List[str]:
    """What :func:`precision_lost` says of each 64-bit integer column of
    ``columns`` (pyarrow arrays) beyond 2**53, read as its integers (as of
    an ``.npy`` of int64), where it says nothing of the column in
    ``values``, the rows stacked as float64 (which round such integers):
    ids ``2**60 + i`` beside a float column became one float64 value, a
    constant column trained on without the warning the ``.npy`` of them
    gets. A pass over those columns only (rare)."""
    import pyarrow as pa  # here: only a .parquet file read with it gets here

    said = []
    for j, column in enumerate(columns):
        if not (pa.types.is_integer(column.type) and column.type.bit_width == 64):
            continue
        valid = np.asarray(column.is_valid())
        ints = column.drop_null().to_numpy()[:, None]
        if not beyond_float64(ints):
            continue
        rounded = values[valid, j : j + 1]
        exact = precision_lost(ints, ints.astype(np.float32), columns_of=("", j))
        if exact is not None and precision_lost(rounded, rounded.astype(np.float32)) is None:
            said.append(exact)
    return said


def _pandas_index_columns(schema: Any) -> Tuple[str, ...]:
    """The columns of a Parquet ``schema`` that pandas wrote its row index
    to (named in its ``pandas`` metadata; a range index is written as no
    column): read as a feature, the index became one without a word."""
    metadata = (schema.metadata or {}).get(b"pandas")
    if not metadata:
        return ()
    try:
        index = json.loads(metadata).get("index_columns", [])
    except (ValueError, AttributeError):  # metadata another writer put there: no index known
        return ()
    return tuple(name for name in index if isinstance(name, str))


def _check_npy_header(f: IO[bytes], path: Path, size: int, what: str) -> None:
    """Reads an .npy header from ``f`` and checks, before any data is read,
    that it holds real numbers and that ``size`` bytes can hold them."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, _, dtype = read_header(f)
    except (ValueError, OSError, EOFError, SyntaxError, tokenize.TokenError) as exc:
        # TokenError: a header cut inside its dict ("{'descr': '<f8', 'shape': (" ...), which numpy
        # re-tokenizes before literal_eval; it is no ValueError and left the CLI as a traceback
        why = str(exc)
        if "max_header_size" in why:  # numpy's advice, allow_pickle=True, is not one to follow for a file of numbers
            why = "its header is larger than numpy reads without trusting the file"
        raise InvalidValueError(f"{what}: not a numeric .npy file ({why})", str(path)) from None
    if dtype.kind == "c":
        raise InvalidValueError(f"{what}: holds complex numbers ({dtype}); expected real numbers", str(path))
    if dtype.kind not in "biuf" or dtype.fields is not None or dtype.subdtype is not None:
        raise InvalidValueError(f"{what}: holds {dtype} values; expected real numbers", str(path))
    if any(not 0 <= int(n) <= np.iinfo(np.intp).max for n in shape):
        # numpy's read counts the values in int64: a dimension beyond it (beside a 0) raised OverflowError, a traceback
        raise InvalidValueError(f"{what}: its header declares shape {shape}, the shape of no array; expected a numeric "
                                ".npy file (corrupt?)", str(path))
    count = 1
    for n in shape:
        count *= int(n)
    needed = count * dtype.itemsize
    available = size - f.tell()
    if needed > available:
        raise InvalidValueError(
            f"{what}: its header declares shape {shape} ({counted(needed, 'byte', grouped=True)}) but only "
            f"{counted(max(available, 0), 'byte', grouped=True)} {'follows' if available == 1 else 'follow'} "
            "(truncated or corrupt?)", str(path),
        )
    if needed < available:
        # np.save writes the array's bytes and no more: a header whose shape was cut down (3 rows to 2) read the first
        # rows and dropped the rest without a word, as did a second array saved into the same file
        raise InvalidValueError(
            f"{what}: its header declares shape {shape} ({counted(needed, 'byte', grouped=True)}) but "
            f"{counted(available, 'byte', grouped=True)} {'follows' if available == 1 else 'follow'}; expected "
            "the array's bytes only (a header that does not match its data, or more than one array in the file?)",
            str(path),
        )


def _noting_underscores(lines: Iterator[str], underscored: List[bool]) -> Iterator[str]:
    """``lines``, with ``underscored[0]`` set on reading one that holds
    ``_``: a check of each line as it is read, where one of each row's
    cells joined (``"_" in "".join(row)``) made reading a 20,000 x 64 CSV
    file 5 % slower."""
    for line in lines:
        if "_" in line:
            underscored[0] = True
        yield line


def _is_blank_line(record: Sequence[str]) -> bool:
    """Whether a CSV record is a blank line, skipped: no cells, or one of
    whitespace only. A record of several cells that are all empty is an
    event whose every value is missing (pandas' ``to_csv`` writes a row of
    NaN as ``,,``): skipped as blank, every event after it was paired with
    the previous row of the other files, and ``embed`` wrote one embedding
    fewer without a word. So is one cell that is empty: the csv module reads
    a blank line as no cells, and ``""`` as one empty cell, as pandas writes
    a one-column frame's NaN (and reads it back)."""
    return len(record) == 0 or (len(record) == 1 and record[0] != "" and not record[0].strip())


def _comment_names(record: Sequence[str]) -> Optional[Tuple[str, ...]]:
    """``None`` unless ``record`` (a header) is a comment line, ``# ...``;
    then the names it gives, the ``#`` aside: ``np.savetxt(...,
    header="a,b,c")`` writes ``# a,b,c``, whose names are ``a``, ``b``,
    ``c`` (kept as ``# a``, the first name changed with the comment mark:
    ``embed`` compared ``# a,b,c`` with ``# b,a,c`` as other names, and read
    the columns in the other order without a word). ``()`` for a comment
    that names no column (one cell, ``# written by ...``, or an empty name):
    it is dropped. ``#N/A``, a missing value, is no comment mark."""
    head = record[0].lstrip() if record else ""
    if not head.startswith("#") or _is_missing(head):
        return None
    names = tuple(cell.strip() for cell in (head.lstrip("#"), *record[1:]))
    return names if len(names) > 1 and all(names) else ()


def _is_comment(record: Sequence[str]) -> bool:
    """Whether a CSV record is a comment line: its first cell starts with
    ``#`` (spaces aside), as ``np.savetxt`` writes a header and
    ``np.loadtxt`` reads one. ``#N/A``, a missing value, is none."""
    head = record[0].lstrip() if record else ""
    return head.startswith("#") and not _is_missing(head)


def _is_header_guess(record: Sequence[str]) -> bool:
    """Whether the first record, with no ``header`` given, is taken as a
    header: a cell of it is neither a number nor a missing value (see
    :func:`_is_missing`), or it heads a row index as pandas and R do (an
    empty first cell, refused after). A record of numbers and missing values
    is an event whose values are missing (see :func:`_is_blank_line`), not
    column names: ``1,,3`` (pandas' ``to_csv`` of a first event holding NaN)
    and ``1,2,`` were dropped as a header, with a warning calling '' a name,
    where the same row further down is refused as a missing value."""
    if len(record) > 1 and not record[0].strip() and any(cell.strip() for cell in record[1:]):
        return True
    return any(not _is_float(cell) and not _is_missing(cell) for cell in record)


#: The remedy of a CSV row holding missing values beside numbers: only a row missing whole says the event lacks
#: the modality (a row partly missing is no event the model can read, nor an absence).
_WHOLE_ROWS_MISSING = ("expected numbers only, or a row missing whole: fill the row's missing values, or empty every "
                       "cell of it (a row whose every cell is missing marks the event as lacking this modality)")


#: What writers put in a cell of a missing value: pandas' ``read_csv`` default NA strings (its
#: ``STR_NA_VALUES``: pandas' ``to_csv`` writes an empty cell, R's ``write.csv`` NA, spreadsheets #N/A, Python
#: None), each read by pandas as NaN; a cell ``None`` or ``#NA`` was refused as "a non-numeric value" though
#: ``MultimodalEmbedder`` takes the frame ``pd.read_csv`` reads. Lower case: compared regardless of case (``Null``
#: too), where pandas compares them as written.
_MISSING = frozenset({"", "#n/a", "#n/a n/a", "#na", "-1.#ind", "-1.#qnan", "-nan", "1.#ind", "1.#qnan", "<na>",
                      "n/a", "na", "null", "nan", "none"})


#: What ``pd.read_csv`` names a first column whose header cell is empty: the row index ``to_csv`` wrote.
_PANDAS_UNNAMED_INDEX = "Unnamed: 0"


def _is_missing(cell: str) -> bool:
    """Whether a CSV cell says its value is missing (:data:`_MISSING`)."""
    return cell.strip().lower() in _MISSING


def _is_missing_row(record: Sequence[str]) -> bool:
    """Whether every cell of a CSV record is a missing value or NaN (as
    pandas' ``read_csv`` reads each of them): the event lacks the modality,
    as an all-NaN row of a ``MultimodalEmbedder`` view does."""
    return all(_is_missing(cell) or _is_nan(cell) for cell in record)


def _is_nan(cell: str) -> bool:
    """Whether ``float`` reads a CSV cell as NaN (``nan``, as ``np.savetxt`` writes NaN)."""
    return _is_float(cell) and math.isnan(float(cell))


def _is_float(cell: str) -> bool:
    """Whether a CSV cell is a number: what ``float`` reads, less digits
    grouped by underscores, as Python source groups them (numpy's
    ``loadtxt`` and pandas read no such number): a header of names such as
    ``0_0,0_1,0_2`` (pixels by row and column) was read as an event of the
    numbers 0, 1, 2."""
    if "_" in cell:
        return False
    try:
        float(cell)
        return True
    except ValueError:
        return False
