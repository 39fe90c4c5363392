"""Reading tables: pandas DataFrames and Series, pyarrow Tables and
RecordBatches, by their column names and dtypes: nullable columns (``pd.NA``,
Arrow's null) read as missing values, decimal, dictionary and object columns
read as pandas reads them, and the refusals of what is no number (text,
dates, durations, vectors in a cell) or of columns repeated, reordered or
unpaired, each naming the column. Neither pandas nor pyarrow is imported
here: a frame or table of them means it is loaded.

The arrays' own checks are :mod:`._validation`'s, which reads a table
through this module; the few message helpers taken from it here are
imported on the error's path only, so neither module imports the other
while it loads."""

from __future__ import annotations

import datetime
import decimal
import math
import numbers
import sys
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

import numpy as np

from . import _core
from ._core import NUM_MODALITIES
from .exceptions import GraphemeError, InvalidTypeError, InvalidValueError, NonFiniteError


def refuse_vector_columns(x: Any, name: str) -> None:
    """TypeError for one vector per row kept in a single cell: a pandas
    data frame column of vectors (embeddings stored in a frame, a parquet
    list column), such a Series, or a 1-D numpy array of them, saying how
    it becomes an ``[n, d]`` array. The refusals named no vector: "setting
    an array element with a sequence" (scikit-learn's check_array), "rows
    of different lengths", or "pass its numeric columns only", which drops
    the column. Other values are not looked at; per frame, a look at the
    first value of each column of objects."""
    if isinstance(x, np.ndarray) or (getattr(x, "ndim", None) == 1 and hasattr(x, "iloc")):  # an array, a Series
        values = x if isinstance(x, np.ndarray) else None
        # kind "O": numpy's objects, and pandas' pyarrow lists (list<double>[pyarrow]) too
        if getattr(getattr(x, "dtype", None), "kind", None) != "O" or getattr(x, "ndim", None) != 1 or not len(x):
            return
        first = values[0] if values is not None else _first_value(x)
        if _is_vector(first):
            raise TypeError(
                f"{name}: holds one vector per row ({len(x)} rows, the first of {len(first)} values), as a data "
                f"frame column of vectors does; expected an [n, d] array: pass np.stack({name})")
        return
    dtypes = getattr(x, "dtypes", None)
    if not hasattr(x, "iloc") or not hasattr(dtypes, "items") or hasattr(dtypes, "kind"):
        return
    for j, (label, dtype) in enumerate(dtypes.items()):
        first = _first_value(x.iloc[:, j]) if getattr(dtype, "kind", None) == "O" else None
        if _is_vector(first):
            raise TypeError(
                f"{name}: its column {label!r} holds one vector per row (the first of {len(first)} values); expected "
                f"numbers, one column per feature: pass np.stack({name}[{label!r}]) (columns of vectors side by side: "
                f"np.hstack([np.stack({name}[c]) for c in columns]))")


def series_str_labels(value: Any) -> Optional[Tuple[str, ...]]:
    """The labels of a pandas Series (``df.iloc[0]``, ``df.mean()``) when
    every one is a str, as plain str (a frame's column names are learned
    only then), else None (arrays, lists, Series of other labels)."""
    index = getattr(value, "index", None)
    if getattr(value, "ndim", None) != 1 or not hasattr(index, "equals"):  # a list's .index is a method
        return None
    labels = list(index)
    return tuple(plain_names(labels)) if all(isinstance(label, str) for label in labels) else None


def _first_value(column: Any) -> Any:
    """A pandas Series' first value that is not missing (None where all are)."""
    at = column.first_valid_index()
    return None if at is None else column.loc[at]


def _is_vector(value: Any) -> bool:
    """Whether a cell holds a vector: a list, tuple or 1-D array of at least one value."""
    return isinstance(value, (list, tuple, np.ndarray)) and np.ndim(value) == 1 and len(value) > 0


def holds_decimals(frame: Any, j: int, dtype: Any) -> bool:
    """Whether column ``j`` of a pandas data frame holds decimals: of
    pyarrow's ``decimal128``/``decimal256`` (``pd.read_parquet(...,
    dtype_backend="pyarrow")``), or Python ``Decimal`` objects (by its first
    value that is not missing)."""
    if "decimal" in str(dtype):
        return True
    if getattr(dtype, "kind", None) != "O" or not hasattr(frame, "iloc"):
        return False
    return isinstance(_first_value(frame.iloc[:, j]), decimal.Decimal)


def holds_object_numbers(frame: Any, j: int, dtype: Any) -> bool:
    """Whether column ``j`` of a pandas data frame is of dtype object and
    holds ints and floats (no bools) besides missing values (``None``,
    ``pd.NA``): numbers ``pd.to_numeric`` reads. A pass over the column's
    values, on the error's path only."""
    if dtype != np.dtype(object):
        return False
    values = frame.iloc[:, j].to_numpy()
    numbers = [v for v in values if v is not None and type(v).__name__ != "NAType"]
    return bool(numbers) and all(
        isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_)) for v in numbers)


def is_text_dtype(dtype: Any) -> bool:
    """Whether a pandas column's ``dtype`` holds text: numpy's str or bytes,
    pandas' ``str``/``string`` (Python or pyarrow), pyarrow's strings, or a
    categorical or pyarrow dictionary of them. (A column of objects is told
    by its values: :func:`is_text_column`.)"""
    if isinstance(dtype, np.dtype):
        return dtype.kind in "SU"
    if type(dtype).__name__ == "StringDtype":
        return True
    categories = getattr(dtype, "categories", None)
    if categories is not None:
        kind = categories.dtype
        return is_text_dtype(kind) or (kind == np.dtype(object) and any(isinstance(c, (str, bytes)) for c in categories))
    arrow = getattr(dtype, "pyarrow_dtype", None)
    return arrow is not None and is_arrow_text(arrow)


def is_arrow_text(arrow: Any) -> bool:
    """Whether a pyarrow type is text (strings or bytes, or a dictionary of them)."""
    pa = sys.modules["pyarrow"]  # an Arrow type exists: pyarrow is loaded
    if pa.types.is_dictionary(arrow):
        arrow = arrow.value_type
    return any(getattr(pa.types, f"is_{kind}", lambda _: False)(arrow)
               for kind in ("string", "large_string", "string_view", "binary", "large_binary"))


def _column(x: Any, j: int) -> Any:
    """Column ``j`` of a pandas data frame; a Series itself."""
    return x if getattr(x, "ndim", 2) == 1 else x.iloc[:, j]


def is_text_column(x: Any, j: int, dtype: Any) -> bool:
    """Whether column ``j`` (of ``dtype``) of a pandas Series or DataFrame
    holds text: a dtype of text, or objects among which a str or bytes (a
    pass over the values of a column of objects)."""
    if is_text_dtype(dtype):
        return True
    return isinstance(dtype, np.dtype) and dtype == object and any(
        isinstance(v, (str, bytes)) for v in _column(x, j).to_numpy())


def text_column(x: Any, dtypes: list) -> Optional[int]:
    """The position of the first column of a pandas Series or DataFrame (of
    ``dtypes``) that holds text (:func:`is_text_column`), else None."""
    return next((j for j, dtype in enumerate(dtypes) if is_text_column(x, j, dtype)), None)


def holds_number_text(frame: Any, j: int) -> bool:
    """Whether column ``j`` of a pandas Series or DataFrame holds text that
    is numbers, every value (missing ones aside) one ``float`` reads: what
    ``pd.to_numeric`` converts. On the error's path only."""
    values = [v for v in _column(frame, j).to_numpy(dtype=object)
              if v is not None and type(v).__name__ != "NAType" and not (isinstance(v, float) and v != v)]
    try:
        for v in values:
            float(v)
    except (ValueError, TypeError):
        return False
    return any(isinstance(v, (str, bytes)) for v in values)


#: How a frame of numbers as text (or as objects) becomes numbers, every column kept.
NUMBER_TEXT_REMEDY = "convert them first, e.g. {name}.apply(pd.to_numeric)"


#: How a numpy array of numbers as text becomes numbers.
NUMBER_ARRAY_TEXT_REMEDY = "convert them first, e.g. np.asarray({name}, dtype=float)"


def is_number_text(arr: np.ndarray) -> bool:
    """Whether a numpy array of text (str or bytes), or of objects holding
    text beside numbers, holds numbers only, as ``float`` reads them (as
    scikit-learn's ``check_array`` reads them). A pass over an object
    array's item types; nothing for an array of numbers."""
    if arr.dtype == object:  # None would read as NaN, a bool as 1.0: those stay the caller's refusal
        kinds = set(map(type, arr.flat))
        if not any(issubclass(k, (str, bytes)) for k in kinds) or not all(
                issubclass(k, (str, bytes, numbers.Real)) and not issubclass(k, (bool, np.bool_)) for k in kinds):
            return False
    elif arr.dtype.kind not in "SU":
        return False
    try:
        arr.astype(np.float64)
    except (ValueError, TypeError, OverflowError):
        return False
    return bool(arr.size)


def refuse_number_text(x: Any, name: str, converted: Optional[str] = None) -> None:
    """InvalidTypeError (a TypeError, and a ValueError as ``check_array``
    raises for text) for a pandas data frame (or Series) with a column of
    numbers as text, naming it and the conversion that keeps it, as the
    model's calls refuse it (:func:`~._validation.as_real_array`): scikit-learn's
    ``check_array`` read such a column as its numbers, where the model
    refused the same frame. A numpy array of numbers as text (or of
    objects among which text) likewise, in the model's words for it. Text that is no number is left to the
    caller's refusal, which names it. ``converted``: what the remedy
    converts, where not ``name`` (a pyarrow table's frame)."""
    if isinstance(x, np.ndarray) and is_number_text(x):
        from ._validation import describe  # here: _validation imports this module

        raise InvalidTypeError(f"{name}: expected a real-valued numeric array, got {describe(x)} (numbers as text): "
                               f"{NUMBER_ARRAY_TEXT_REMEDY.format(name=name)}", name)
    if is_arrow_table(x):  # its text columns, as a frame of them: converted by pandas, the table's remedy
        frame = arrow_frame(x) if any(is_arrow_text(field.type) for field in x.schema) else None
        if frame is not None:
            refuse_number_text(frame, name, f"{name}.to_pandas()")
        return
    if isinstance(x, np.ndarray) or not hasattr(x, "to_numpy"):
        return
    dtypes = pandas_dtypes(x)
    texts = [j for j, dtype in enumerate(dtypes) if is_text_column(x, j, dtype)]
    if not texts or not all(holds_number_text(x, j) for j in texts):
        return
    j = texts[0]
    label = x.columns[j] if hasattr(x, "columns") else x.name
    raise InvalidTypeError(f"{name}: column {label!r} has dtype {dtypes[j]} holding numbers as text; expected numbers: "
                           f"{NUMBER_TEXT_REMEDY.format(name=converted or name)}", name)


def refuse_temporal_columns(x: Any, name: str) -> None:
    """TypeError for a polars data frame with a column of dates, times or
    durations: numpy reads the frame as floats (days since 1970 for a
    ``Date``), so its dates became numbers without a word, where pandas'
    and numpy's dates are refused. Known by the frame's ``schema`` (a
    mapping of column to dtype, each with ``is_temporal()``); polars is not
    imported. A pyarrow table's likewise (:func:`_refuse_arrow_temporal_columns`)."""
    schema = getattr(x, "schema", None)
    if isinstance(x, np.ndarray) or not hasattr(x, "columns"):
        return
    if not hasattr(schema, "items"):
        _refuse_arrow_temporal_columns(x, name)
        return
    for column, dtype in schema.items():
        is_temporal = getattr(dtype, "is_temporal", None)
        if callable(is_temporal) and is_temporal() is True:
            raise TypeError(
                f"{name}: column {column!r} has dtype {dtype} (dates, times or durations); expected numbers: "
                "convert it to numbers of a unit you choose first, or pass the numeric columns only")


def _refuse_arrow_temporal_columns(x: Any, name: str) -> None:
    """:func:`refuse_temporal_columns` for a pyarrow ``Table`` or
    ``RecordBatch`` (its schema a sequence of fields, not a mapping): a
    column of dates, times, timestamps or durations (or a dictionary of
    them). scikit-learn's ``check_array`` made such a table's dates days
    since 1970, its timestamps and durations counts of their unit, without
    a word (numpy's reading of it, ``datetime64``, was refused here, naming
    no column). pyarrow is not imported: a table of it means it is loaded."""
    pa = sys.modules.get("pyarrow")
    if pa is None or not isinstance(x, (pa.Table, pa.RecordBatch)):
        return
    for field in x.schema:
        kind = field.type.value_type if pa.types.is_dictionary(field.type) else field.type
        if pa.types.is_temporal(kind):
            raise TypeError(
                f"{name}: column {field.name!r} has dtype {field.type} (dates, times or durations); expected numbers: "
                "convert it to numbers of a unit you choose first, or pass the numeric columns only")


def refuse_duplicate_columns(x: Any, name: str, why: str, learned_only: bool = False) -> None:
    """InvalidValueError naming ``name`` for a data frame (pandas, polars) or
    pyarrow table with a column name given more than once, saying which
    names repeat, at which columns, and ``why`` names must be unique (the
    model learns a frame's names and checks later frames against them,
    scikit-learn keeps them as feature names). Before, the model's calls took
    such a frame and learned ``('a', 'a', 'b')``: the same frame with its two
    ``a`` columns swapped later was read as other features without a word;
    scikit-learn's check_array raised narwhals' ``DuplicateError``, naming no
    view. O(1) for a pandas frame without repeats (its index knows).
    ``learned_only``: only for the names a model learns (:func:`column_names`:
    a pandas or polars frame's, every name a str); others are positions,
    read as such (``pd.concat([a, b], axis=1)`` of two unnamed frames:
    ``0, 1, 0, 1``; a pyarrow table's names)."""
    if isinstance(x, np.ndarray):
        return
    names = getattr(x, "column_names", None)  # a pyarrow table's (its .columns are the columns' arrays)
    if names is None:
        names = getattr(x, "columns", None)
    if names is None or getattr(names, "has_duplicates", True) is False:
        return  # pandas says it has none without counting them here
    try:
        names = list(names)
        repeated = repeated_names(names)
    except TypeError:  # names that do not hash (or no names): not refused here
        return
    if not repeated or (learned_only and (not hasattr(x, "to_numpy") or not all(isinstance(c, str) for c in names))):
        return
    repeated = [(str.__str__(column) if isinstance(column, str) else column, js) for column, js in repeated]  # np.str_
    raise InvalidValueError(
        f"{name}: column names {[column for column, _ in repeated][:8]!r} appear more than once "
        f"({repeats_said(repeated, 'at columns')}); expected unique column names ({why}): rename them, or pass the "
        "values, e.g. np.asarray(...)", name)


def repeated_names(names: Sequence[Any]) -> List[Tuple[Any, List[int]]]:
    """Each name that ``names`` holds more than once, with the positions it
    is at, in the order first met; TypeError for a name that does not hash."""
    at: Dict[Any, List[int]] = {}
    for j, name in enumerate(names):
        at.setdefault(name, []).append(j)
    return [(name, js) for name, js in at.items() if len(js) > 1]


def repeats_said(repeated: Sequence[Tuple[Any, List[int]]], where: str, most: int = 3) -> str:
    """:func:`repeated_names`' names and positions for a message, the first
    ``most`` of them: ``'x' at columns 0, 2, 4, 10 and 1 more; 'y' at
    columns 1 and 3; and 2 more names`` (``where``: ``at columns``)."""
    from ._validation import counted  # here: _validation imports this module

    def positions(js: List[int]) -> str:
        if len(js) > 4:
            return ", ".join(map(str, js[:4])) + f" and {len(js) - 4} more"
        return ", ".join(map(str, js[:-1])) + " and " + str(js[-1])

    listed = "; ".join(f"{name!r} {where} {positions(js)}" for name, js in repeated[:most])
    return listed + (f"; and {counted(len(repeated) - most, 'more name')}" if len(repeated) > most else "")


def refuse_unpaired_frames(named: Iterable[Tuple[str, Any]]) -> None:
    """InvalidValueError naming the first data frame (or Series) among the
    ``(name, value)`` pairs whose index is not that of the first frame of as
    many rows: arrays given side by side are paired row by row by position,
    and frames of the same samples in another order (read or joined
    separately) were paired wrongly without a word. Other values are not
    looked at."""
    first: Optional[Tuple[str, Any]] = None
    for name, value in named:
        if value is None or type(value) is np.ndarray:  # the common entries, which have no index
            continue
        index = getattr(value, "index", None)
        if not hasattr(index, "equals"):  # no frame (a list's .index is a method)
            continue
        if first is None:
            first = (name, index)
        elif len(index) == len(first[1]) and not first[1].equals(index):
            raise InvalidValueError(
                f"{name}: its index is not that of {first[0]}, and rows are paired by position; expected the same "
                f"samples in the same order in each: align them (e.g. {name}.loc[{first[0]}.index]), or "
                "reset_index(drop=True) each if their rows are already paired by position", name,
            )


def refuse_unpaired_columns(first: Tuple[str, Any], second: Tuple[str, Any]) -> None:
    """InvalidValueError naming ``second`` when it and ``first`` are data
    frames (pandas, polars) whose columns are the same names in another
    order: arrays of one feature space are paired column by column by
    position, and a frame whose columns were reordered (selected by a list
    of names, joined) was read against the other's columns without a word,
    where scikit-learn refuses it ("The feature names should match those
    that were passed during fit"). Frames of other names, and other values,
    are not looked at."""
    (name_a, a), (name_b, b) = first, second
    if type(a) is np.ndarray or type(b) is np.ndarray:  # the common case: no columns
        return
    refuse_reordered_columns(name_a, named_columns(a), name_b, named_columns(b))


def named_columns(x: Any) -> Optional[List[str]]:
    """The str column names of a data frame (:func:`column_names`) or of a
    pyarrow table (:func:`arrow_column_names`), to check an order by, else
    ``None``: a table's columns reordered were paired by position with
    another's, or with a fit's, without a word, where a frame's are refused."""
    return column_names(x) or arrow_column_names(x)


def column_names(x: Any) -> Optional[List[str]]:
    """A data frame's (pandas, polars) column names when every one is a str,
    as plain str, else ``None``: unnamed columns (0, 1, ...) are positions,
    as scikit-learn reads them."""
    if type(x) is np.ndarray or not hasattr(x, "to_numpy"):
        return None
    columns = getattr(x, "columns", None)
    if columns is None:
        return None
    names = list(columns)
    return plain_names(names) if all(isinstance(c, str) for c in names) else None


def plain_names(names: Iterable[str]) -> List[str]:
    """``names`` (str, or str subclasses) as plain str: pandas 2 keeps numpy's
    str as column names (``df.columns = list(np.array(names))``), whose repr
    under numpy 2 is ``np.str_('a')``: messages showed the columns so, and a
    model's ``input_columns`` gave them back so."""
    return [str.__str__(c) for c in names]


def refuse_reordered_columns(name_a: str, cols_a: Optional[List[str]], name_b: str, cols_b: Optional[List[str]]) -> None:
    """:func:`refuse_unpaired_columns` of two lists of column names (``None``: not named)."""
    if cols_a is None or cols_b is None:
        return
    if cols_a != cols_b and sorted(cols_a) == sorted(cols_b):
        shown = shown_columns
        raise InvalidValueError(
            f"{name_b}: its columns {shown(cols_b)} are those of {name_a} ({shown(cols_a)}) in another order, and columns "
            f"are paired by position; expected them in {name_a}'s order: {name_b}[{shown(cols_a)}]", name_b,
        )


def shown_columns(cols: Sequence[str]) -> str:
    """Column names as a list's repr, the first 8 of more."""
    cols = list(cols)
    return repr(cols) if len(cols) <= 8 else repr(cols[:8])[:-1] + ", ...]"


def refuse_reordered_fitted_columns(name: str, fitted: Optional[Sequence[str]], value: Any, slot: int) -> None:
    """InvalidValueError naming ``name`` when ``value`` is a data frame
    (pandas, polars) whose str column names are ``fitted`` — those of the
    frame a model learned this input from (``None``: not known) — in another
    order: the model reads a modality's columns by position, and the same
    frame with its columns reordered (selected by a list of names, joined,
    read from a CSV file written by another tool) was embedded as other
    features, without a word, where scikit-learn refuses it ("The feature
    names should match those that were passed during fit"). Other names
    (renamed columns) and values without names (numpy arrays) are not
    looked at. ``slot``: the modality ``value`` is the input of."""
    if fitted is None or type(value) is np.ndarray:
        return
    # a pyarrow table's names are not learned (they may repeat), but those learned from a frame are checked
    # against them: the same columns read from Parquet in another order were embedded as other features
    refuse_reordered_fitted_names(name, fitted, named_columns(value), slot)


def arrow_column_names(x: Any) -> Optional[List[str]]:
    """A pyarrow ``Table``'s (or ``RecordBatch``'s) column names when every
    one is a str, else ``None`` (anything else too): its ``columns`` are
    its arrays, not their names, which :func:`column_names` reads."""
    if not type(x).__module__.startswith("pyarrow"):
        return None
    names = getattr(x, "column_names", None)
    if not isinstance(names, list) or not all(isinstance(c, str) for c in names):
        return None
    return plain_names(names)


def refuse_reordered_fitted_names(
    name: str, fitted: Optional[Sequence[str]], given: Optional[Sequence[str]], slot: int
) -> None:
    """:func:`refuse_reordered_fitted_columns` given the frame's column
    names ``given`` (``None``: not known); also a frame that names some of
    the fitted columns at other positions beside renamed ones (``b, a, x``
    of ``a, b, c``), read by position as wrongly; and a frame holding the
    fitted columns and more (an id, a label, a new feature), which was
    refused by its width alone ("expected shape (any, 4), got (n, 5)")
    where its names say which columns to keep. ``slot``: the modality
    ``name`` is the input of."""
    extra = extra_names(fitted, given)
    if extra is not None:
        assert fitted is not None and given is not None  # extra_names: both known
        raise InvalidValueError(
            f"{name}: its columns {shown_columns(given)} hold those the model was fitted on ({shown_columns(fitted)}) "
            f"and {shown_columns(extra)} beside them; expected only the fitted columns, in their order: "
            f"{_fitted_selection(name, fitted, slot)}", name,
        )
    if not is_reordering(fitted, given):
        misplaced = misplaced_names(fitted, given)
        if misplaced:
            assert fitted is not None and given is not None  # misplaced_names: both known
            raise InvalidValueError(
                f"{name}: its columns {shown_columns(given)} name columns the model was fitted on "
                f"({shown_columns(fitted)}) at other positions: {shown_misplaced(given, misplaced, 'fitted')}; columns "
                f"are read by position, so each would be read as another; expected them in the order the model was "
                f"fitted on (columns renamed in place are read as the column they replace)", name,
            )
        return
    assert fitted is not None and given is not None  # is_reordering: both known
    # names that differ by a CSV comment mark only: selecting the fitted names would be a KeyError
    remedy = _fitted_selection(name, fitted, slot) if sorted(given) == sorted(fitted) else shown_columns(fitted)
    raise InvalidValueError(
        f"{name}: its columns {shown_columns(given)} are those the model was fitted on ({shown_columns(fitted)}) in "
        f"another order, and columns are read by position; expected them in the order the model was fitted on: "
        f"{remedy}", name,
    )


def extra_names(fitted: Optional[Sequence[str]], given: Optional[Sequence[str]]) -> Optional[List[str]]:
    """The names in ``given`` beside ``fitted`` when ``given`` holds every
    one of ``fitted`` and more (an id, a label, a new feature), in order;
    else None (``None``: not known)."""
    if fitted is None or given is None or len(given) <= len(fitted) or not set(fitted) <= set(given):
        return None
    learned = set(fitted)  # a set: a frame of thousands of columns is looked at on every call
    return [c for c in given if c not in learned]


def _fitted_selection(name: str, fitted: Sequence[str], slot: int) -> str:
    """Code that selects the ``fitted`` columns of the frame ``name``, in
    their order: the names, or past the 8 that :func:`shown_columns` shows
    (its ``...`` would not run) the model's own list of them."""
    if len(fitted) <= 8:
        return f"{name}[{shown_columns(fitted)}]"
    return f"{name}[list(model.input_columns({_core.MODALITY_NAMES[slot]!r}))]"


def is_reordering(fitted: Optional[Sequence[str]], given: Optional[Sequence[str]]) -> bool:
    """Whether the column names ``given`` are ``fitted`` in another order
    (``None``: not known, never). The first names are compared without a
    comment mark (``#``) before them: a CSV header ``np.savetxt`` writes,
    ``# a,b,c``, names ``a`` as ``grapheme-mm`` reads it and ``# a`` as
    pandas reads it (and ``#a,b,c`` named ``#a`` in a checkpoint
    ``train`` wrote before it read comment headers)."""
    if fitted is None or given is None or len(given) != len(fitted) or tuple(given) == tuple(fitted):
        return False
    if sorted(given) == sorted(fitted):
        return True
    # a model fitted on pandas' '# a,b,c' (or trained on '#a,b,c' before), given the CLI's ('b', 'a', 'c') of
    # '# b,a,c', or the other way round: the names differed, and the columns were read in the other order unsaid
    unmarked_given, unmarked_fitted = _unmarked(given), _unmarked(fitted)
    return unmarked_given != unmarked_fitted and sorted(unmarked_given) == sorted(unmarked_fitted)


def misplaced_names(fitted: Optional[Sequence[str]], given: Optional[Sequence[str]]) -> List[Tuple[int, int]]:
    """``(i, j)`` for each column ``i`` of ``given`` whose name is ``fitted[j]``,
    a name the model learned at another position (``j`` its first), though
    other columns are renamed: a header ``b,a,x`` of a model trained on
    ``a,b,c`` (``[(0, 1), (1, 0)]``), read by position, reads ``b`` as ``a``.
    ``[]`` where the names are not known, of another count, the same
    (the first compared without a comment mark, as :func:`is_reordering`
    does), or only renamed (no learned name at another position)."""
    if fitted is None or given is None or len(given) != len(fitted):
        return []
    unmarked_given, unmarked_fitted = _unmarked(given), _unmarked(fitted)
    if tuple(given) == tuple(fitted) or unmarked_given == unmarked_fitted:
        return []
    misplaced: Dict[int, int] = {}
    for names, learned in ((given, fitted), (unmarked_given, unmarked_fitted)):
        first = {}
        for j, name in enumerate(learned):
            first.setdefault(name, j)
        for i, name in enumerate(names):
            if name in first and learned[i] != name:
                misplaced.setdefault(i, first[name])
    return sorted(misplaced.items())


def shown_misplaced(
    given: Sequence[str], misplaced: Sequence[Tuple[int, int]], learned: str, first: int = 0, show: Callable[[str], str] = repr
) -> str:
    """:func:`misplaced_names`' answer in words, the first 8: ``'b' (column 0, {learned} as column 1), ...``;
    columns counted from ``first`` (the command line's from 1), names as ``show`` gives them."""
    shown = ", ".join(f"{show(given[i])} (column {i + first}, {learned} as column {j + first})" for i, j in misplaced[:8])
    return shown + (", ..." if len(misplaced) > 8 else "")


def refuse_reordered_members(columns: Sequence[Optional[Sequence[str]]], arg: str, what: str, why: str) -> None:
    """Refuses the first member (``{arg}[j]``) whose column names (``None``:
    not known) are those of the first member whose names are known, in
    another order, or name some of them at other positions (:func:`misplaced_names`): the ensemble's save (``models``) and
    :class:`~grapheme_multimodal.evaluation.EnsembleEmbedder` (``members``),
    whose members read one file or frame by position. ``what`` names the
    columns (``"the visual columns"``), ``why`` says why one order."""
    first = None
    for j, own in enumerate(columns):
        if first is None:
            first = None if own is None else j
        elif is_reordering(columns[first], own):
            raise InvalidValueError(
                f"{arg}[{j}]: was fitted on {what} {list(own)!r:.200}, those of {arg}[{first}] "
                f"({list(columns[first])!r:.200}) in another order; expected the same order ({why})", f"{arg}[{j}]")
        else:
            misplaced = misplaced_names(columns[first], own)
            if misplaced:  # some renamed, others moved (b, a, x of a, b, c): read by position as wrongly
                raise InvalidValueError(
                    f"{arg}[{j}]: was fitted on {what} {list(own)!r:.200}, which name columns of {arg}[{first}] "  # type: ignore[arg-type]
                    f"({list(columns[first])!r:.200}) at other positions: "  # type: ignore[arg-type]
                    f"{shown_misplaced(own, misplaced, f'{arg}[{first}] has it')}; expected the same order ({why})",  # type: ignore[arg-type]
                    f"{arg}[{j}]")


def _unmarked(names: Sequence[str]) -> Tuple[str, ...]:
    """``names`` with the comment mark (``#``, and the spaces about it) before the first name left out.
    A first name that is the mark alone (``#``, a column so named: a row counter) is kept: read as ``''``,
    ``('#', 'a', '')`` and ``('', '', 'a')`` were the same names reordered."""
    first = names[0].strip() if names and isinstance(names[0], str) else None
    if first is None or not first.startswith("#") or not first.lstrip("#").strip():
        return tuple(names)
    return (first.lstrip("#").strip(), *names[1:])


def frame_columns(inputs: Any) -> Dict[int, Tuple[str, ...]]:
    """``{slot: column names}`` of each data frame whose columns are all
    named by str among per-modality ``inputs`` (a mapping, or a sequence of
    7); ``{}`` for anything else, and at once for numpy arrays."""
    from .types import Modality  # here: types imports this module

    if isinstance(inputs, Mapping):
        try:
            items = [(Modality.parse(key).index, value) for key, value in inputs.items()]
        except (GraphemeError, TypeError):
            return {}
    elif isinstance(inputs, (list, tuple)) and len(inputs) == NUM_MODALITIES:
        items = list(enumerate(inputs))
    else:
        return {}
    found = {}
    for m, value in items:
        if value is None or type(value) is np.ndarray:
            continue
        names = column_names(value)
        if names is not None:
            found[m] = tuple(names)
    return found


def named_inputs(inputs: Any, arg: str = "inputs") -> list:
    """``(name, value)`` of each modality ``inputs`` gives (a mapping, or a
    sequence of 7), named as the model's calls name it (``inputs['visual']``),
    for :func:`refuse_unpaired_frames` beside other arguments; ``[]`` for
    inputs those calls refuse (they say why)."""
    from .types import Modality  # here: types imports this module

    if isinstance(inputs, Mapping):
        try:
            return [(f"{arg}[{str(Modality.parse(key, arg))!r}]", value) for key, value in inputs.items()]
        except (GraphemeError, TypeError):
            return []
    if isinstance(inputs, (list, tuple)) and len(inputs) == NUM_MODALITIES:
        return [(f"{arg}[{str(m)!r}]", value) for m, value in zip(Modality, inputs)]
    return []


def pandas_integers(x: Any, dtypes: list) -> Optional[np.ndarray]:
    """The values of a pandas Series or DataFrame of nullable integer
    columns (``Int64``, ``UInt64``, ``int64[pyarrow]``, ...; ``dtypes``,
    :func:`pandas_dtypes`) without a missing value, as integers of their
    common numpy dtype; else None. Read as float64, integers beyond 2**53
    rounded (to 256 apart near 2**61), where the same numbers as a plain
    int64 array are kept exact (the metrics, ExactCCA and standardize
    subtract their offset first) or cast once to float32: z-scores,
    correlations and embeddings differed from those of the plain array,
    without a word."""
    if not all(getattr(d, "kind", "O") in "iu" for d in dtypes):
        return None
    common = np.result_type(*(np.dtype(getattr(d, "numpy_dtype", d)) for d in dtypes))
    if common.kind not in "iu":  # int64 beside uint64: floats, as numpy makes them
        return None
    try:
        # pandas refuses a missing value as an integer (masked columns: ValueError, pyarrow's:
        # TypeError): one conversion, where x.isna() first built a frame of flags (+50 us a call)
        return x.to_numpy(dtype=common)
    except (ValueError, TypeError):  # missing values: NaN, as floats
        return None


def is_arrow_table(x: Any) -> bool:
    """Whether ``x`` is a pyarrow ``Table`` or ``RecordBatch`` (pyarrow not imported: none can exist before)."""
    pa = sys.modules.get("pyarrow")
    return pa is not None and isinstance(x, (pa.Table, pa.RecordBatch))


def arrow_frame(table: Any) -> Any:
    """A pyarrow table as a pandas data frame of its own Arrow types (nulls
    kept as ``pd.NA``), for the one reading of a table's columns that
    pandas' frames get; None without pandas."""
    try:
        import pandas as pd
    except ImportError:
        return None
    return table.to_pandas(types_mapper=pd.ArrowDtype)


def pandas_floats(x: Any, dtypes: list, objects: np.ndarray, name: str) -> np.ndarray:
    """A pandas Series or DataFrame (of ``dtypes``, :func:`pandas_dtypes`)
    that numpy reads as ``objects`` as the floats pandas reads it as,
    ``x.to_numpy(dtype=float64)``: Decimal, Fraction and other numbers
    kept as objects, pyarrow dictionaries and decimals, ``None`` as NaN. The same
    numbers scikit-learn's ``check_array`` reads, so the estimator and the
    model's calls read one table alike (the model refused what the
    estimator took). ``objects`` where pandas cannot (``pd.NA`` among
    objects, complex numbers), and for text (:func:`text_column`: numbers
    as text too, refused by every call, as a numpy array of them is), for
    the refusal that names the column; a number past float64 refused,
    naming it (:func:`refuse_objects_beyond_float64`)."""
    if any(getattr(d, "kind", "O") in "cmM" for d in dtypes):  # complex numbers lose their imaginary parts
        return objects
    if text_column(x, dtypes) is not None:  # text is no number, as in a numpy array: refused, with the conversion
        return objects
    try:
        floats = x.to_numpy(dtype=np.float64)
    except OverflowError:  # an int or Fraction past float64
        refuse_objects_beyond_float64(x, name)
        return objects
    except (ValueError, TypeError, ArithmeticError):  # decimal's own errors too
        return objects
    if floats.dtype.kind == "f" and np.isinf(floats).any():  # a Decimal past float64 became inf: named as given
        refuse_objects_beyond_float64(x, name)
    return floats


def refuse_objects_beyond_float64(x: Any, name: str) -> None:
    """NonFiniteError naming the first finite number of a pandas frame's (or
    Series') columns of objects that float64 cannot hold (a Decimal past
    1.8e308 becomes inf, an int or Fraction raises OverflowError), by its
    row and column, as given: it was refused as "NaN or inf", "inf", or
    "a number too large for float64" of no row. A pass over the columns of
    objects only."""
    if isinstance(x, np.ndarray) or not hasattr(x, "to_numpy"):
        return
    for j, dtype in enumerate(pandas_dtypes(x)):
        if not (isinstance(dtype, np.dtype) and dtype == object):
            continue
        for row, value in enumerate(_column(x, j).to_numpy()):
            if beyond_float64(value):
                from ._validation import FLOAT64_MAX  # here: _validation imports this module

                label = x.columns[j] if hasattr(x, "columns") else x.name
                raise NonFiniteError(
                    f"{name}: row {row} holds {_shown_big(value)} (column {label!r}), too large for float64 (largest "
                    f"{FLOAT64_MAX:.3g}); expected finite float32 numbers", name)


def beyond_float64(value: Any) -> bool:
    """Whether ``value`` is a finite Decimal, Fraction or int (no bool) that float64 cannot hold."""
    if isinstance(value, bool) or not isinstance(value, (decimal.Decimal, numbers.Rational)):
        return False
    if isinstance(value, decimal.Decimal) and not value.is_finite():
        return False
    try:
        return math.isinf(float(value))
    except OverflowError:
        return True


def _shown_big(value: Any) -> str:
    """A number past float64 as a message shows it: a Decimal's own digits, an int's (or a Fraction's parts) by
    :func:`~._validation.shown_int`, which shortens them past about 100 digits."""
    from ._validation import shown_int  # here: _validation imports this module

    if isinstance(value, decimal.Decimal):
        return f"Decimal('{value}')"
    if isinstance(value, numbers.Integral):
        return shown_int(value)
    return f"Fraction({shown_int(value.numerator)}, {shown_int(value.denominator)})"


#: Dates and durations kept as objects (pandas' Timestamp and Timedelta are datetime's): numpy's cast of a column
#: of them to floats made numpy's counts of their unit, without a word.
_TIME_ITEMS = (np.datetime64, np.timedelta64, datetime.date, datetime.timedelta)


def holds_times(values: Any) -> bool:
    """Whether ``values`` (an object array's or column's items) hold a date or
    duration: a pass over them, on object data only."""
    return any(isinstance(v, _TIME_ITEMS) for v in values)


def is_data_frame(x: Any) -> bool:
    """Whether ``x`` is a pandas data frame (a Series' ``dtypes`` is its dtype;
    not ``not hasattr(dtypes, "kind")``: a column named "kind" is an
    attribute of the frame's dtypes)."""
    return hasattr(x, "columns") and hasattr(getattr(x, "dtypes", None), "items")


def numbers_only_frame(x: Any) -> bool:
    """Whether every column of the data frame ``x`` has a numpy dtype of
    numbers (bools, ints, floats): none holds dates, text or objects."""
    return all(isinstance(dtype, np.dtype) and dtype.kind in "biuf" for dtype in x.dtypes)


def time_column(x: Any) -> Optional[Tuple[Any, Any]]:
    """The first column of a pandas data frame of dates or durations, as
    ``(label, dtype)``: its own kind, a categorical's categories' (which a
    cast to floats made numbers of their unit), or objects among which a
    date or duration (a pass over columns of objects); None where there is none."""
    if not is_data_frame(x):
        return None
    for j, dtype in enumerate(x.dtypes):
        if isinstance(dtype, np.dtype) and dtype.kind in "biuf":  # most columns: one look
            continue
        if is_time_dtype(dtype) or (dtype == np.dtype(object) and holds_times(x.iloc[:, j].to_numpy())):
            return x.columns[j], dtype
    return None


def is_time_dtype(dtype: Any) -> bool:
    """Whether a data frame column's ``dtype`` holds dates or durations: its
    own kind, or a categorical's categories'."""
    categories = getattr(dtype, "categories", None)
    return getattr(dtype, "kind", "O") in "mM" or getattr(getattr(categories, "dtype", None), "kind", "O") in "mM"


def refuse_time_columns(x: Any, name: str) -> None:
    """TypeError naming a pandas data frame's column of dates or durations
    (:func:`time_column`), in the same words from every call: not numbers
    of whatever unit they were stored in."""
    column = time_column(x)
    if column is not None:
        raise TypeError(
            f"{name}: column {column[0]!r} has dtype {column[1]} (dates or durations); expected numbers: "
            f"convert it to numbers of a unit you choose first, or pass the numeric columns only, "
            f"e.g. {name}.select_dtypes('number')")


def shown_missing(marker: str = "<NA>") -> str:
    """How a message names a missing value read as NaN, by its ``marker``
    (pandas' ``<NA>``, ``None`` among objects, Arrow's ``null``): what the
    caller gave, where "NaN" named a value never given."""
    return f"{marker} (a missing value)"


def missing_cell(x: Any, arr: np.ndarray, rows: Optional[np.ndarray] = None) -> Optional[Tuple[int, Any, str]]:
    """Where the first row of ``arr`` (a pandas Series or DataFrame, or a
    pyarrow Table, ``x`` read as floats) that holds NaN or inf among
    ``rows`` (bools; None: all) holds a missing value of ``x`` (``pd.NA``,
    ``None``, Arrow's null: read as NaN), as ``(row, column label, how it
    is shown)``; None when that row holds none (a NaN or inf given as
    such), or ``x`` is none of these. On the error's path only: a look at
    the dtypes, then at one row."""
    table = is_arrow_table(x)
    if isinstance(x, np.ndarray) or not (table or hasattr(x, "isna")) or arr.dtype.kind != "f" or arr.ndim not in (1, 2):
        return None
    if np.isfinite(arr).all():  # the usual case, before the frame's dtypes (a Series built per call: 30 us)
        return None
    bad = ~np.isfinite(arr) if arr.ndim == 1 else ~np.isfinite(arr).all(axis=1)
    if rows is not None and rows.shape == bad.shape:
        bad &= rows
    if not bad.any() or len(arr) != len(x):
        return None
    row = int(np.argmax(bad))
    if table:
        return next(((row, label, shown_missing("null")) for label, column in zip(x.column_names, x.columns)
                     if not column[row].is_valid), None)
    # a numpy float column's NaN is a NaN; only pandas' own dtypes and objects hold missing values
    columns = [j for j, d in enumerate(pandas_dtypes(x)) if not isinstance(d, np.dtype) or d == object]
    for j in columns:
        value = x.iloc[row] if getattr(x, "ndim", 2) == 1 else x.iloc[row, j]
        if value is None or type(value).__name__ == "NAType":
            label = None if getattr(x, "ndim", 2) == 1 else x.columns[j]
            return row, label, shown_missing("None" if value is None else "<NA>")
    return None


def refuse_missing_values(x: Any, arr: np.ndarray, name: str, rows: Optional[np.ndarray] = None) -> None:
    """NonFiniteError naming the missing value (:func:`missing_cell`) in the
    first row of ``arr`` (``x`` read as floats) among ``rows`` that is not
    finite: it was refused as "NaN or inf", which a frame of pandas' nullable
    columns never held. Nothing when that row holds a NaN or inf itself."""
    cell = missing_cell(x, arr, rows)
    if cell is not None:
        raise _missing_value_error(name, *cell)


def _missing_value_error(name: str, row: int, label: Any, shown: str) -> NonFiniteError:
    """The refusal of a missing value (``shown``) at ``row`` (column ``label``, None for a Series) of ``name``."""
    column = "" if label is None else f", column {label!r}"
    fill = "pyarrow.compute.fill_null(column, 0)" if shown.startswith("null") else f"{name}.fillna(0)"  # a table's
    return NonFiniteError(f"{name}: holds {shown} at row {row}{column}; expected numbers in "
                          f"every row read: fill it first, e.g. {fill}, or leave the row out", name)


def missing_input_refusal(inputs: Any, mask: Any, arg: str = "inputs") -> Optional[NonFiniteError]:
    """For a call that refused NaN in a row of its ``inputs`` (a mapping of
    modality to rows, or 7 entries) that ``mask`` marks present: the refusal
    naming the pandas missing value (``pd.NA``, ``None``) that NaN was, in
    the first such row of a frame among them; None when there is none (the
    call's own refusal stands). On the error's path only: it reads the
    frames again, so the calls that succeed pay nothing for it."""
    from ._validation import as_mask, as_real_array  # here: _validation imports this module
    from .types import Modality  # here: types imports this module

    if isinstance(inputs, Mapping):
        items = list(inputs.items())
    elif isinstance(inputs, (list, tuple)) and len(inputs) == NUM_MODALITIES:
        items = list(enumerate(inputs))
    else:
        return None
    for key, value in items:
        if isinstance(value, np.ndarray) or not (hasattr(value, "isna") or is_arrow_table(value)):
            continue
        try:
            slot = Modality.parse(key, arg)
            arr = as_real_array(value, arg)
            flags = None if mask is None else as_mask(mask, len(arr))[:, slot.value]
        except Exception:  # what the call refused otherwise: its refusal stands
            continue
        cell = missing_cell(value, arr, flags)
        if cell is not None:
            return _missing_value_error(f"{arg}[{str(slot)!r}]", *cell)
    return None


def pandas_dtypes(x: Any) -> list:
    """The dtype of each column of a pandas Series (one) or DataFrame; ``[]``
    for what has no ``dtypes``."""
    dtypes = getattr(x, "dtypes", None)
    return [dtypes] if hasattr(dtypes, "kind") else list(dtypes) if dtypes is not None else []


def pandas_numeric(x: Any) -> bool:
    """Whether every column of a pandas Series or DataFrame has a numeric
    dtype (numpy's or pandas' nullable ones; strings and objects do not)."""
    dtypes = pandas_dtypes(x)
    return bool(dtypes) and all(getattr(d, "kind", "O") in "biuf" for d in dtypes)
