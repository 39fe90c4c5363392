"""Converting user input to the arrays the Rust core reads, with errors that
say which argument was wrong, what it was and what was expected."""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import decimal
import functools
import math
import numbers
import operator
import os
import re
import sys
import threading
import warnings
from collections.abc import Iterable as _Iterable, Iterator, Mapping, MappingView, Sequence, Set  # not typing's: 3x slower in isinstance
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Optional, Tuple, TypeVar, Union

import numpy as np

from . import _core
from ._core import NUM_MODALITIES
from .exceptions import GraphemeError, InvalidTypeError, InvalidValueError, NonFiniteError, PrecisionLossWarning, ShapeError, TooLargeError


def is_iterable(value: Any) -> bool:
    """Whether ``value`` can be iterated: an ``Iterable`` but a 0-d numpy array
    (``np.array(2.0)``, ``np.ma.masked``), which ``isinstance`` counts as one
    and whose iteration raised numpy's "iteration over a 0-d array", naming
    no argument, where a sequence was expected."""
    # collections.abc's class, not typing's alias of it: the same answer, without the alias's
    # __instancecheck__ (a microsecond of every event built)
    return isinstance(value, _Iterable) and not (isinstance(value, np.ndarray) and value.ndim == 0)


def as_list_of(value: Any, cls: type, arg: str, item_hint: str = "") -> list:
    """``value``, an iterable of at least one ``cls`` (not a str, bytes or
    mapping, whose iteration gives something else), as a list; otherwise an
    :class:`InvalidTypeError` or :class:`InvalidValueError` naming ``arg``
    or the item (``arg[i]``), with ``item_hint`` after what an item should be."""
    name = cls.__name__
    # InvalidTypeError, as wrong_type's: a plain TypeError carried no .arg, and `except InvalidValueError`
    # caught an empty list of members but not a list holding something else
    if isinstance(value, (str, bytes, Mapping)) or not is_iterable(value):
        raise InvalidTypeError(f"{arg}: expected a sequence of {name}, got {describe(value)}", arg)
    items = list(value)
    if not items:
        raise InvalidValueError(f"{arg}: expected at least one {name}, got none", arg)
    for i, item in enumerate(items):
        if not isinstance(item, cls):
            raise InvalidTypeError(f"{arg}[{i}]: expected a {name}{item_hint}, got {describe(item)}", f"{arg}[{i}]")
    return items


def counted(n: int, one: str, many: Optional[str] = None, *, grouped: bool = False) -> str:
    """``"1 row"``, ``"3 rows"`` (``many``: the plural when it is not ``one``
    + ``s``; ``grouped``: thousands separated, ``"1,024 bytes"``): messages
    said "1 columns", "1 rows" and "1 bytes"."""
    return (f"{n:,} " if grouped else f"{n} ") + (one if n == 1 else many or one + "s")


def describe(x: Any) -> str:
    """A short description of a value for error messages."""
    if isinstance(x, np.ndarray):
        return f"array of shape {x.shape} and dtype {x.dtype}"
    if is_networkx_graph(x):  # its class is "Graph" too: "expected Graph, got Graph" said nothing
        return f"networkx.{type(x).__name__} ({FROM_NETWORKX})"
    return f"{type(x).__name__}"


def one_modality_rows_hint(x: Any) -> str:
    """What the refusal of an array or a frame given where per-modality
    inputs go adds: a modality's rows go in named, in a dict ("got array of
    shape (5, 3)" said what was wrong, not how to name it)."""
    if not hasattr(x, "shape") or len(getattr(x, "shape", ())) != 2:
        return ""
    return "; one modality's rows go in named by it, e.g. {'visual': x}, several in one dict"


def described_entries(x: Any) -> str:
    """:func:`describe` of ``x`` given where a number of entries is expected
    (7, one per modality): a sequence by its kind and length, "a list of 6"
    ("got list" said nothing of its length, the kind expected)."""
    if isinstance(x, Sequence) and not isinstance(x, (str, bytes)):
        return f"a {type(x).__name__} of {len(x)}"
    return describe(x)


def wrong_type(name: str, expected: str, value: Any, why: str = "") -> InvalidTypeError:
    """The :class:`InvalidTypeError` (a ``TypeError`` and an
    :class:`InvalidValueError`) for ``value`` of a type argument ``name``
    does not take (2.5, "3", True or None for an int), where a value of the
    right type but out of range is an :class:`InvalidValueError`. Names the
    argument, what was expected (then ``why``) and what was given, with its
    type: ``got 2.5 (float)``."""
    if value is None or isinstance(value, np.ndarray) or is_networkx_graph(value):
        shown = "None" if value is None else describe(value)
    else:
        from .types import bounded_repr  # on the error's path only: types imports this module

        shown = f"{bounded_repr(value)} ({type(value).__name__})"
    return InvalidTypeError(f"{name}: expected {expected}{why}, got {shown}", name)


#: How a networkx graph is given, for the messages that refuse one.
FROM_NETWORKX = "convert it with grapheme_multimodal.Graph.from_networkx(g)"


def _networkx_graph_class() -> Any:
    """networkx's ``Graph`` if networkx is imported, else None (no graph of
    it exists before; None too while networkx is mid-import)."""
    return getattr(sys.modules.get("networkx"), "Graph", None)


def is_networkx_graph(x: Any) -> bool:
    """Whether ``x`` is a networkx graph, without importing networkx."""
    graph = _networkx_graph_class()
    return graph is not None and isinstance(x, graph)


def refuse_networkx_graphs(x: Any, name: str) -> None:
    """TypeError for a networkx graph, or a list or tuple holding one, where
    numbers are expected: numpy reads a graph as the list of its nodes, so
    graphs of nodes ``0..d-1`` became rows ``[0, 1, ..., d-1]`` of features
    (or a sequence's values) without a word."""
    graph = _networkx_graph_class()
    if graph is None:
        return
    if isinstance(x, (list, tuple)):
        # by the items' types, few in a list of thousands of rows
        if not any(issubclass(kind, graph) for kind in set(map(type, x))):
            return
        k = next(k for k, item in enumerate(x) if isinstance(item, graph))
        name, x = f"{name}[{k}]", x[k]
    elif not isinstance(x, graph):
        return
    raise TypeError(
        f"{name}: got a networkx.{type(x).__name__}, which numpy would read as the list of its nodes; expected numbers "
        "(a networkx graph goes in as grapheme_multimodal.Graph.from_networkx(g))"
    )


def sorted_names(names: Iterable[Any]) -> list:
    """``names`` (a mapping's keys: view names, tensor names, metadata keys)
    sorted, for an error message: as ``sorted`` orders them when they
    compare (the message of ordinary names), else by their text. Names of
    mixed types (``1`` beside ``"a"``, both valid keys) made ``sorted``
    raise "'<' not supported between instances of 'str' and 'int'" from
    inside the error path, in place of the error meant."""
    items = list(names)
    try:
        return sorted(items)
    except TypeError:
        return sorted(items, key=lambda name: (str(name), type(name).__name__))


def is_masked_array(x: Any) -> bool:
    """Whether ``x`` is a numpy masked array, without importing ``numpy.ma``
    (numpy 2 imports it on the first use of ``np.ma``; none can exist
    before). That first use came inside a model's calls, some under the
    model's lock: an exception delivered to that thread mid-import (Ctrl-C,
    ``PyThreadState_SetAsyncExc``) could leave Python's import lock of
    ``numpy.ma`` held, and a thread waiting on it, holding the model's lock,
    then hung every thread using the model. Also ~4x cheaper than ``np.ma``."""
    ma = sys.modules.get("numpy.ma")
    masked = getattr(ma, "MaskedArray", None)  # None while numpy.ma is mid-import: no masked array yet
    return masked is not None and isinstance(x, masked)


#: ``_core.plain_items``: a list or tuple of Python floats (or of ints within int64), or of rows of them (lists or
#: tuples of one length), as numpy reads it, in one pass at C speed (the Python pass over the items' types that
#: finds masked arrays among them doubled the time of such a list; numpy read rows at ~28 ns a value); None for
#: any other list, which takes the checks' path.
_plain_items = _core.plain_items
#: Whether numpy reads Python ints as int64 (numpy < 2 on Windows: int32), as plain_items reads them.
_INTS_AS_INT64 = np.asarray([0]).dtype == np.int64

#: What a masked array with masked entries is told: of a model's inputs (rows of features), and of anything else.
INPUTS_MASKED_REMEDY = "fill them, or leave the rows out with mask= where a modality is absent"
MASKED_REMEDY = "pass its values: x.filled(...) or x.data"


def as_real_array(x: Any, name: str, masked_remedy: str = MASKED_REMEDY) -> np.ndarray:
    """`x` as a numpy array of real numbers (bool and integer dtypes
    included), as it is: no copy, no cast. Input numpy cannot read as an
    array raises ValueError, non-numeric or complex input TypeError; a
    masked array with masked entries InvalidValueError, ending with
    ``masked_remedy``. A pandas frame (or a pyarrow table) that numpy reads
    as objects is read as pandas' ``to_numpy(dtype=float)`` reads it
    (:func:`pandas_floats`): the numbers scikit-learn's ``check_array``
    reads, so every entry point reads one table alike."""
    if type(x) is np.ndarray and x.dtype.kind in "biuf":  # the common case, without dtype lookups
        return x
    if type(x) is float:  # a reward, a priority: none of the checks below refuses a Python float
        return np.asarray(x)
    if type(x) is int:  # an event id: refused below only beyond 64 bits, where numpy reads it as an object
        arr = np.asarray(x)
        if arr.dtype.kind in "iu":
            return arr
    if type(x) is list or type(x) is tuple:
        arr = _plain_items(x)  # None unless every item (or every row's) is a Python float, or an int within int64
        if arr is not None and (arr.dtype.kind == "f" or _INTS_AS_INT64):  # none of the checks below refuses them
            return arr
    refuse_sparse(x, name)
    refuse_unordered(x, name)
    refuse_temporal_columns(x, name)
    refuse_networkx_graphs(x, name)
    if is_masked_array(x):
        # the remedy is the caller's: mask= was told of an image, a feature vector or rewards, which take none
        x = unmasked(x, name, remedy=masked_remedy)
    refuse_masked_items(x, name, masked_remedy)
    try:
        arr = np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise InvalidValueError(f"{name}: could not be read as a numeric array ({exc})", name) from None
    if arr.dtype == object and hasattr(x, "columns"):
        refuse_vector_columns(x, name)  # else "rows of different lengths", or "pass its numeric columns only"
    if _ragged(arr):
        raise InvalidValueError(f"{name}: could not be read as a numeric array (rows of different lengths)", name)
    dtypes = _pandas_dtypes(x) if arr.dtype == object and hasattr(x, "to_numpy") else []
    if dtypes and all(getattr(d, "kind", "O") in "biuf" for d in dtypes):
        # pandas' nullable columns (Float64, Int64, boolean) read as objects; pd.NA
        # becomes NaN, which the callers refuse (or read as absent) by row
        arr = _pandas_integers(x, dtypes)
        if arr is None:
            arr = x.to_numpy(dtype=np.float64, na_value=np.nan)
    elif dtypes:
        refuse_time_columns(x, name)
        arr = pandas_floats(x, dtypes, arr, name)
    elif arr.dtype == object and is_arrow_table(x):  # decimals, dictionaries, text: as a frame of them reads
        frame = arrow_frame(x)
        if frame is not None:
            arr = pandas_floats(frame, _pandas_dtypes(frame), arr, name)
    if np.iscomplexobj(arr):
        raise TypeError(f"{name}: expected real numbers, got complex dtype {arr.dtype}")
    big = _int_beyond_64_bits(arr)
    if big is not None:  # numpy keeps such numbers as objects: "dtype object" named no number
        raise InvalidValueError(f"{name}: holds {shown_int(big)}, an int beyond 64 bits; expected numbers that fit in int64 "
                                "(or float64, given as floats)", name)
    refuse_structured(arr, name)
    if arr.dtype.kind not in "biuf":  # timedelta64 is a numpy integer too, but no number to compute with
        hint, number_text = _non_numeric_hint(x, arr, name)
        message = f"{name}: expected a real-valued numeric array, got {describe(arr)}{hint}"
        # numbers as text: a ValueError too, as scikit-learn's check_array raises for text
        raise InvalidTypeError(message, name) if number_text else TypeError(message)
    return arr


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


def refuse_structured(x: Any, name: str) -> None:
    """TypeError for a numpy structured (record) array, one record per row
    as ``np.genfromtxt(..., names=True)`` and ``DataFrame.to_records()`` give
    them, saying how it becomes columns: it was refused as "dtype [('a',
    '<f8'), ...]" with no remedy, and scikit-learn's check_array as "Cannot
    cast array data from dtype(...) to dtype('float64') according to the
    rule 'unsafe'", saying nothing of what was expected."""
    names = getattr(getattr(x, "dtype", None), "names", None) if isinstance(x, np.ndarray) else None
    if not names:
        return
    fields = ", ".join(map(repr, names[:8])) + (", ..." if len(names) > 8 else "")
    raise TypeError(
        f"{name}: got a structured array of shape {x.shape} (fields {fields}); expected an array of numbers, one "
        f"column per feature: pass numpy.lib.recfunctions.structured_to_unstructured({name})")


#: Item types :func:`refuse_masked_items` knows to be no masked array.
_PLAIN_KINDS = frozenset((float, int, bool, list, tuple, np.ndarray, np.float64, np.float32, np.int64, np.int32, np.bool_))


#: What a call that takes numbers only says of graphs given to it.
FEATURISE_GRAPHS_HINT = (
    "featurise graphs first, e.g. grapheme_multimodal.featurize(graphs, kind=\"wl\") (the model's own calls take a "
    "list of Graph per modality)"
)


def refuse_graph_rows(x: Any, name: str) -> None:
    """TypeError for a :class:`~grapheme_multimodal.Graph`, or a list,
    tuple or numpy array of objects holding one, given where only numbers
    are taken (scikit-learn's check_array said "float() argument must be a
    string or a real number, not 'Graph'", as if text would do). A pass
    over the items' types only."""
    from .graph import Graph  # here: graph imports this module

    if isinstance(x, (list, tuple)) or (isinstance(x, np.ndarray) and x.dtype == object and x.ndim):
        items = x.ravel() if isinstance(x, np.ndarray) else x
        if not any(issubclass(kind, Graph) for kind in set(map(type, items))):
            return
        k = next(k for k, item in enumerate(items) if isinstance(item, Graph))
        at = np.unravel_index(k, x.shape) if isinstance(x, np.ndarray) else (k,)
        name = f"{name}[{', '.join(str(int(i)) for i in at)}]"
    elif not isinstance(x, Graph):
        return
    raise TypeError(f"{name}: got a Graph, where numbers are expected; {FEATURISE_GRAPHS_HINT}")


def refuse_masked_items(x: Any, name: str, remedy: str = MASKED_REMEDY) -> None:
    """InvalidValueError naming the first item of the list or tuple ``x``
    that is a masked array with masked entries (``list(masked)``, the rows
    of a masked array, is one): numpy reads such a list as the values under
    the masks, as if they were data, where the masked array itself is
    refused (:func:`unmasked`). A pass over the items' types only, as
    :func:`refuse_networkx_graphs` makes."""
    if not isinstance(x, (list, tuple)):  # first: the check of every array and number read
        return
    kinds = set(map(type, x))
    if kinds <= _PLAIN_KINDS:  # the common items, told apart without a call per kind (append's [reward])
        return
    masked = getattr(sys.modules.get("numpy.ma"), "MaskedArray", None)  # none exists before numpy.ma is imported
    if masked is None or not any(issubclass(k, masked) for k in kinds):
        return
    for k, item in enumerate(x):
        hidden = int(np.ma.getmaskarray(item).sum()) if isinstance(item, masked) else 0
        if hidden:
            raise InvalidValueError(
                f"{name}[{k}]: a masked array with {hidden} masked entries; expected plain numbers ({remedy})", name)


def _non_numeric_hint(x: Any, arr: np.ndarray, name: str) -> Tuple[str, bool]:
    """What :func:`as_real_array` adds to "got array of ... dtype object":
    the data frame's first column that is not numeric (the array's dtype
    named none of them), items that are rows, or numbers stored as Python
    objects (not converted here: a Decimal or Fraction would round unseen);
    and whether they are numbers as text (:func:`refuse_number_text`)."""
    dtypes = getattr(x, "dtypes", None)
    if hasattr(dtypes, "items") and not hasattr(dtypes, "kind"):  # a data frame (a Series' dtypes is its dtype)
        columns = [(j, c, d) for j, (c, d) in enumerate(dtypes.items()) if getattr(d, "kind", "O") not in "biuf"]
        if columns:
            j, label, dtype = columns[0]
            if _holds_decimals(x, j, dtype):
                # select_dtypes('number') leaves decimal columns out: the advice below left no column at all
                # read as floats where pandas converts them all (pandas_floats): here one did not (pd.NA among them)
                return (f" (from a data frame whose column {label!r} has dtype {dtype} holding decimals, one of which "
                        f"pandas cannot read as a float as it is): {NUMBER_TEXT_REMEDY.format(name=name)}", False)
            # numbers kept as objects (df.astype(object), floats with None or pd.NA among them): select_dtypes
            # dropped those columns with their data; named only when no column of text stands beside them,
            # which would fail the conversion
            texts = [holds_number_text(x, k) for k, _, _ in columns]
            as_objects = [text or holds_object_numbers(x, k, d) for text, (k, _, d) in zip(texts, columns)]
            if all(as_objects):
                what = "numbers as text" if texts[0] else "numbers stored as Python objects"
                return (f" (from a data frame whose column {label!r} has dtype {dtype} holding {what}, which "
                        f"select_dtypes('number') leaves out): {NUMBER_TEXT_REMEDY.format(name=name)}", any(texts))
            j, label, dtype = columns[as_objects.index(False)]
            return (f" (from a data frame whose column {label!r} has dtype {dtype}): pass its numeric columns "
                    f"only, e.g. {name}.select_dtypes('number')", False)
    if is_arrow_table(x) and arr.dtype == object:  # its columns named as a frame's of them are (pandas converts)
        frame = arrow_frame(x)
        if frame is not None:
            return _non_numeric_hint(frame, arr, f"{name}.to_pandas()")
    if _is_number_text(arr):  # as a text column is told: the conversion, not a drop
        return f" (numbers as text): {NUMBER_ARRAY_TEXT_REMEDY.format(name=name)}", True
    if arr.dtype != object or not arr.size:
        return "", False
    if arr.ndim == 0:  # one object: "array of shape () and dtype object" said nothing of it (a Decimal reward)
        from .types import bounded_repr  # here: types imports this module

        item = arr.item()
        return f" (one {type(item).__name__}: {bounded_repr(item)})", False
    if isinstance(arr.flat[0], (list, tuple, np.ndarray)):
        return " whose items are rows (a data frame column of vectors?): pass np.stack(...) of them", False
    at = next((i for i, v in enumerate(arr.flat)
               if not isinstance(v, (numbers.Real, decimal.Decimal)) or isinstance(v, (bool, np.bool_))), None)
    if at is None:
        if all(isinstance(v, numbers.Integral) and -(2**63) <= v < 2**63 for v in arr.flat):
            # not dtype=float: ids past 2**53 (event ids, timestamps) would round to one another there
            return f" of integers stored as Python objects: pass np.asarray({name}, dtype=np.int64)", False
        return f" of numbers stored as Python objects: pass np.asarray({name}, dtype=float)", False
    from .graph import Graph  # here: graph imports this module

    hint = f"; {FEATURISE_GRAPHS_HINT}" if isinstance(arr.flat[at], Graph) else ""
    return _item_at(arr, at) + hint, False


def _item_at(arr: np.ndarray, at: int) -> str:
    """`` (at index I: TYPE REPR)``: the item at flat position ``at`` of an
    object array, by its index in ``arr`` (a number for a 1-D array)."""
    from .types import bounded_repr  # here: types imports this module

    index = tuple(int(i) for i in np.unravel_index(at, arr.shape))
    item = arr.flat[at]
    return f" (at index {index if arr.ndim > 1 else index[0]}: {type(item).__name__} {bounded_repr(item)})"


def _holds_decimals(frame: Any, j: int, dtype: Any) -> bool:
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


def _is_number_text(arr: np.ndarray) -> bool:
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
    model's calls refuse it (:func:`as_real_array`): scikit-learn's
    ``check_array`` read such a column as its numbers, where the model
    refused the same frame. A numpy array of numbers as text (or of
    objects among which text) likewise, in the model's words for it. Text that is no number is left to the
    caller's refusal, which names it. ``converted``: what the remedy
    converts, where not ``name`` (a pyarrow table's frame)."""
    if isinstance(x, np.ndarray) and _is_number_text(x):
        raise InvalidTypeError(f"{name}: expected a real-valued numeric array, got {describe(x)} (numbers as text): "
                               f"{NUMBER_ARRAY_TEXT_REMEDY.format(name=name)}", name)
    if is_arrow_table(x):  # its text columns, as a frame of them: converted by pandas, the table's remedy
        frame = arrow_frame(x) if any(is_arrow_text(field.type) for field in x.schema) else None
        if frame is not None:
            refuse_number_text(frame, name, f"{name}.to_pandas()")
        return
    if isinstance(x, np.ndarray) or not hasattr(x, "to_numpy"):
        return
    dtypes = _pandas_dtypes(x)
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

    def positions(js: List[int]) -> str:
        if len(js) > 4:
            return ", ".join(map(str, js[:4])) + f" and {len(js) - 4} more"
        return ", ".join(map(str, js[:-1])) + " and " + str(js[-1])

    listed = "; ".join(f"{name!r} {where} {positions(js)}" for name, js in repeated[:most])
    return listed + (f"; and {counted(len(repeated) - most, 'more name')}" if len(repeated) > most else "")


def refuse_sparse(x: Any, name: str) -> None:
    """TypeError for a scipy.sparse matrix or array: numpy reads one as a
    single object ("array of shape () and dtype object", naming neither the
    matrix nor the remedy), and the model computes on dense rows."""
    sparse = sys.modules.get("scipy.sparse")  # no import: a matrix of it means it is loaded
    if sparse is not None and sparse.issparse(x):
        raise TypeError(
            f"{name}: got a scipy.sparse {type(x).__name__} of shape {x.shape}; expected a dense array: "
            f"pass {name}.toarray()"
        )


def refuse_unordered(x: Any, name: str) -> None:
    """TypeError for a generator (any iterator), a set, a mapping or a dict's
    keys or values where an array is expected: numpy made each one object
    ("got array of shape () and dtype object", or a shape ``()`` named
    where rows were expected), naming neither what was given nor the remedy.
    An iterator is not read into a list here: it is read once, and a second
    reading of it (a check, then the conversion) would find no rows."""
    if isinstance(x, np.ndarray):  # the common case: it has a shape (and typing's isinstance checks are slow)
        return
    if isinstance(x, (Iterator, Set, Mapping, MappingView)) and not hasattr(x, "shape"):
        remedy = (f"pass list({name})" if isinstance(x, Iterator)
                  else "pass a list or array in row order (a set's or a mapping's order is not the rows' order)")
        raise TypeError(f"{name}: got a {type(x).__name__}; expected an array or a list: {remedy}")


if TYPE_CHECKING:
    from types import FrameType

    #: An exception class kept through renamed: it remakes the error as type(err).
    _E = TypeVar("_E", bound=Exception)


def renamed(err: _E, names: Mapping[str, str]) -> _E:
    """``err`` (one of ours, or a TypeError) whose message begins with one of
    the argument names ``names`` maps (``"inputs['visual']: ..."``) remade to
    begin with the name it maps to (``"views['fou']: ..."``), the caller's
    name for what a wrapped call named by its own; else ``err`` itself.
    Other names of ``names`` with a subscript that the rest of the message
    holds (``"... not that of inputs['visual']"``) are remade too, all at
    once: the caller never passed the wrapped call's ``inputs['visual']``.
    So is an item of a subscripted name (``"inputs['visual'][3]: ..."``
    becomes ``"views['fou'][3]: ..."``)."""
    message = str(err)
    for inner, outer in names.items():
        if message.startswith(inner + ":"):
            text = outer + _renamed_within(message[len(inner):], names)
            return type(err)(text, outer) if isinstance(err, GraphemeError) else type(err)(text)
    # subscripted names only: "inputs[0]" is no item of "inputs" renamed "views", a mapping
    items_of = [inner for inner in names if inner.endswith("]") and message.startswith(inner + "[")]
    if items_of:
        inner = max(items_of, key=len)
        outer = names[inner]
        text = outer + _renamed_within(message[len(inner):], names)
        return type(err)(text, outer) if isinstance(err, GraphemeError) else type(err)(text)
    return err


def _renamed_within(text: str, names: Mapping[str, str]) -> str:
    """``text`` with each subscripted name of ``names`` (``inputs['visual']``)
    replaced by the name it maps to, in one pass (a view named as another's
    modality must not be renamed twice); bare names (``data``) are words of
    the prose too, and stay."""
    subscripted = sorted((k for k in names if "[" in k), key=len, reverse=True)
    if not subscripted:
        return text
    pattern = r"(?<![\w\]])(?:" + "|".join(re.escape(k) for k in subscripted) + ")"
    return re.sub(pattern, lambda m: names[m.group(0)], text)


def unmasked(
    x: np.ma.MaskedArray,
    name: str,
    expected: str = "plain numbers",
    remedy: str = MASKED_REMEDY,
) -> np.ndarray:
    """The data of a masked array with nothing masked; else InvalidValueError:
    numpy would hand over the values under the mask as if they were data."""
    hidden = int(np.ma.getmaskarray(x).sum())
    if hidden:
        raise InvalidValueError(f"{name}: a masked array with {hidden} masked entries; expected {expected} ({remedy})", name)
    return x.data


def _ragged(arr: np.ndarray) -> bool:
    """Whether ``arr`` is what numpy < 1.24 made of ragged nested lists (a
    warning and an array of objects that are sequences); numpy >= 1.24
    refuses them, and the error must not depend on the version."""
    if not (arr.dtype == object and arr.ndim >= 1 and arr.size > 0 and isinstance(arr.flat[0], (list, tuple, np.ndarray))):
        return False
    try:
        return len({len(v) for v in arr.flat}) > 1
    except TypeError:  # sequences beside numbers
        return True


def _int_beyond_64_bits(arr: np.ndarray) -> Optional[int]:
    """The first int beyond 64 bits in an object array of Python numbers, else None."""
    if arr.dtype != object or not arr.size or not all(type(v) in (int, float) for v in arr.flat):
        return None
    return next((v for v in arr.flat if type(v) is int and not -(2**63) <= v < 2**64), None)


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


#: How far from 1 the norm of a present recorded embedding may be: float32 round-off of the
#: model's own (l2-normalised) embeddings stays within about 1e-6.
UNIT_NORM_TOLERANCE = 1e-3


#: The squared norm a present recorded embedding may have at most.
_LONGEST_SQUARED_NORM = (1.0 + UNIT_NORM_TOLERANCE) ** 2


def non_unit_embeddings(embeddings: np.ndarray, mask: np.ndarray) -> Optional[Tuple[int, int, float, int]]:
    """``(row, slot, norm, count)`` of the first present ``embeddings[row,
    slot]`` whose norm is above 1 (beyond :data:`UNIT_NORM_TOLERANCE`), with
    the number of such slots; ``None`` when there is none. Shorter ones are
    what the encoders give for input near zero (a row of norm below 1e-8 is
    divided by 1e-8, not by its norm; all zeros for all-zero input): refusing
    them refused the model's own embeddings of such inputs, recorded by
    ``record_batch``."""
    # float32 sums (a quarter of float64's time: 35 against 140 us at 256 rows of 7 x 128), far within the
    # tolerance for unit vectors; no [B, 7, E] temporary. Huge rows overflow to inf there: refused either way
    squares = np.einsum("bme,bme->bm", embeddings, embeddings)
    longest = squares.max(initial=0.0)
    if longest <= _LONGEST_SQUARED_NORM:  # the common case, an append's included: no mask, no sqrt (NaN falls through)
        return None
    bad = mask & ~(squares <= _LONGEST_SQUARED_NORM)
    if not bad.any():
        return None
    row, slot = (int(i) for i in np.argwhere(bad)[0])
    norm = float(np.sqrt(np.einsum("e,e->", embeddings[row, slot], embeddings[row, slot], dtype=np.float64)))  # exact
    return row, slot, norm, int(bad.sum())


#: What a non-unit embedding is refused with, after what names it.
NON_UNIT_EXPECTED = (
    f"expected unit vectors, as the model's encoders give them (norm 1 within {UNIT_NORM_TOLERANCE:g}; shorter "
    "only for input near zero), which the objectives assume"
)


def refuse_non_unit_embeddings(
    embeddings: np.ndarray, mask: np.ndarray, name: str, mask_name: str, one_row: bool = False
) -> None:
    """InvalidValueError naming the first present ``embeddings[r, m]``
    (``[B, 7, E]`` float32, present where ``mask [B, 7]``) that
    :func:`non_unit_embeddings` finds. The objectives assume the unit
    vectors the encoders give (their temperatures scale cosine
    similarities): other vectors trained on other losses without a word.
    ``name`` and ``mask_name``: the arguments as the caller knows them
    (``embeddings``, ``Batch.mask``); ``one_row``: they are one ``[7, E]``
    row given as ``[1, 7, E]`` (an experience's), named by slot alone."""
    found = non_unit_embeddings(embeddings, mask)
    if found is None:
        return
    row, slot, norm, count = found
    modality = _core.MODALITY_NAMES[slot]
    which = f"its {modality} embedding ({name}[{slot}]" if one_row else f"row {row}'s {modality} embedding ({name}[{row}, {slot}]"
    raise InvalidValueError(
        f"{name}: {which}, present) has norm {norm:.6g} ({count:,} present embeddings are longer than 1); "
        f"{NON_UNIT_EXPECTED}: divide each by its norm (e / np.linalg.norm(e, axis=-1, keepdims=True)), or mark "
        f"absent slots False in {mask_name}", name)


def refuse_bools(values: np.ndarray, name: str) -> None:
    """TypeError for an array of booleans (``as_real_array`` of ``True`` or
    of a bool array) where numbers such as rewards are meant: ``True`` would
    count as 1.0 without a word, where every float argument refuses a bool
    (:func:`as_finite_float`)."""
    if values.dtype == np.bool_:
        raise TypeError(
            f"{name}: expected real numbers, got {'a bool' if values.ndim == 0 else describe(values)}; "
            "a bool is not taken as a number here (it would count as 1.0 or 0.0): pass floats"
        )


def _pandas_integers(x: Any, dtypes: list) -> Optional[np.ndarray]:
    """The values of a pandas Series or DataFrame of nullable integer
    columns (``Int64``, ``UInt64``, ``int64[pyarrow]``, ...; ``dtypes``,
    :func:`_pandas_dtypes`) without a missing value, as integers of their
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
    """A pandas Series or DataFrame (of ``dtypes``, :func:`_pandas_dtypes`)
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
    for j, dtype in enumerate(_pandas_dtypes(x)):
        if not (isinstance(dtype, np.dtype) and dtype == object):
            continue
        for row, value in enumerate(_column(x, j).to_numpy()):
            if beyond_float64(value):
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
    :func:`shown_int`, which shortens them past about 100 digits."""
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
    columns = [j for j, d in enumerate(_pandas_dtypes(x)) if not isinstance(d, np.dtype) or d == object]
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


def _pandas_dtypes(x: Any) -> list:
    """The dtype of each column of a pandas Series (one) or DataFrame; ``[]``
    for what has no ``dtypes``."""
    dtypes = getattr(x, "dtypes", None)
    return [dtypes] if hasattr(dtypes, "kind") else list(dtypes) if dtypes is not None else []


def _pandas_numeric(x: Any) -> bool:
    """Whether every column of a pandas Series or DataFrame has a numeric
    dtype (numpy's or pandas' nullable ones; strings and objects do not)."""
    dtypes = _pandas_dtypes(x)
    return bool(dtypes) and all(getattr(d, "kind", "O") in "biuf" for d in dtypes)


FLOAT32_MAX = float(np.finfo(np.float32).max)
#: float32's smallest normal number: below it a value loses precision or becomes 0.
FLOAT32_TINY = float(np.finfo(np.float32).tiny)
#: The words of the model's refusal of a column whose values vary by a std below FLOAT32_TINY: a slice's or
#: fold's fit names its rows ``data``, which fit_with_stopping renames as its own argument by them.
SPREAD_BELOW_FLOAT32 = "values vary, but by a standard deviation below float32's smallest normal number"


def memory_budget() -> int:
    """The bytes this process may use at most (the physical memory, or the
    cgroup's or the process's ``ulimit -v``/``-d`` limit when lower; the
    core's own budget, read once): what a size from the user is checked
    against before numpy allocates it (lazily mapped zeros would pass numpy
    and be killed when touched)."""
    return _core.memory_budget()


def refuse_beyond_memory(arr: np.ndarray, name: str, dtype: Any) -> None:
    """TooLargeError naming ``name`` when ``arr`` as ``dtype`` takes more
    than :func:`memory_budget`: a broadcast view or a memory map can be
    larger than memory, and the copy or cast of it raised numpy's own
    MemoryError naming no argument, or (lazily mapped) the OS killed the
    process filling it."""
    dtype = np.dtype(dtype)
    nbytes = arr.size * dtype.itemsize
    if nbytes > memory_budget():
        refuse_beyond_budget(nbytes, name, "an array of shape {shape} takes {bytes} bytes as {dtype}", shape=arr.shape, dtype=dtype)


def refuse_beyond_budget(
    nbytes: int, name: str, what: str, held: int = 0, remedy: str = "fewer rows", **fields: Any
) -> None:
    """TooLargeError naming ``name`` when a call that allocates ``nbytes``
    (its copies, intermediates and outputs) beside the ``held`` bytes of
    its inputs would exceed :func:`memory_budget`, or, for a large call,
    the address space a ``ulimit -v``/``-d`` still leaves this process
    (the interpreter, the libraries and the inputs take their share of
    it). ``what`` says what needs the bytes (``"... takes {bytes} bytes"``),
    a template formatted with their count and ``fields`` only when refused;
    ``remedy`` ends the message (``"expected fewer rows"``).
    Called before the core: past such a limit a Rust allocation that fails
    aborts the whole process, where no Python ``try`` catches it. A small
    call costs a few integer comparisons; nothing is read."""
    budget = memory_budget()
    if nbytes + held > budget:
        text = what.format(bytes=f"{nbytes + held:,}", **fields)
        raise TooLargeError(f"{name}: {text}, more than this machine's memory ({budget:,} bytes); expected {remedy}", name)
    if 8 * nbytes > budget:  # a large call: worth reading what the process holds already
        left = address_space_left()
        if left is not None and nbytes > left:
            text = what.format(bytes=f"{nbytes:,}", **fields) + (" beyond its inputs" if held else "")
            raise TooLargeError(
                f"{name}: {text}, more than the {max(left, 0):,} bytes of address space that this process's "
                f"ulimit -v/-d leaves it now; expected {remedy}", name)


def address_space_left() -> Optional[int]:
    """The bytes the soft address-space and data-size limits (``ulimit -v``,
    ``-d``) leave this process now (negative when it is past one), less
    what the core's threads may still reserve in a call (glibc gives each
    thread that allocates its own heap, 64 MiB of address space); None
    when neither limit is set (or they cannot be read: not Linux)."""
    try:
        import resource
        limits = [resource.getrlimit(r)[0] for r in (resource.RLIMIT_AS, resource.RLIMIT_DATA)]
        if all(limit == resource.RLIM_INFINITY for limit in limits):
            return None
        with open("/proc/self/statm", encoding="ascii") as f:  # named: the locale's raised EncodingWarning (-X warn_default_encoding)
            fields = f.read().split()
        used = (int(fields[0]), int(fields[5]))  # pages: the address space, the data and stack
    except (ImportError, OSError, IndexError, ValueError):
        return None
    page = os.sysconf("SC_PAGE_SIZE")
    threads = _core.get_num_threads() * 2**26
    return min(limit - pages * page for limit, pages in zip(limits, used) if limit != resource.RLIM_INFINITY) - threads


def int_of_digits(text: str, most_digits: Optional[int] = None) -> int:
    """The int of ``text``, an optional sign (``+`` or ``-``) then ASCII
    digits (the caller checks it is), leading zeros dropped; ``ValueError``
    "a number of N digits" when it has more (past its leading zeros) than
    ``most_digits``, by default than ``int()`` reads from a str
    (``sys.get_int_max_str_digits()``, Python 3.11 on; earlier ones have no
    limit): ``int()``'s own "Exceeds the limit (4300 digits) for integer
    string conversion" named nothing the caller was given, and counted the
    leading zeros."""
    sign, digits = (text[0], text[1:]) if text[:1] in ("+", "-") else ("", text)
    digits = digits.lstrip("0") or "0"
    if most_digits is None:
        most_digits = getattr(sys, "get_int_max_str_digits", lambda: 0)() or None  # 0: no limit
    if most_digits is not None and len(digits) > most_digits:
        raise ValueError(f"a number of {len(digits):,} digits")
    return int(sign + digits)


def is_int(value: Any) -> bool:
    """Whether ``value`` is an integer, Python's or numpy's, and neither a
    bool (an int to Python: ``True`` is no count) nor a ``np.timedelta64``,
    which numpy counts among its integers (``isinstance(np.timedelta64(3,
    "s"), np.integer)``) but is a duration: it passed for a count (3
    seconds as 3), ``int()`` of it raised a TypeError naming no argument,
    and comparing one with 2**64 an OverflowError. A 0-d integer array
    (``np.array(3)``: a reduction's result, a count read back from
    ``np.savez``) is the integer it holds, as ``operator.index`` reads it and
    as a 0-d float array is taken for a float: it was refused where ints
    are expected ("got array of shape ()"). Callers read the int with
    :func:`exact_int`, never the value as given: it may be an array. A
    masked one is none: ``operator.index`` reads the value under its mask."""
    if isinstance(value, np.ndarray):
        return value.ndim == 0 and value.dtype.kind in "iu" and not is_masked_array(value)
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.timedelta64))


def exact_int(value: Any) -> int:
    """``value``, an integer (:func:`is_int`), as the Python int it holds,
    read once and without its own code: an ``int`` subclass's ``__int__``,
    ``__index__`` or ``__lt__`` may answer otherwise than its value (a
    check passed by one answer, and ``int(value)`` used the other: epochs
    of 3 that trained 0, a batch_size that divided by 0)."""
    number = operator.index(value)  # numpy's integers: an exact int
    # an int subclass: Python < 3.10's operator.index hands it back as it is; int's own __index__ copies its value
    return number if type(number) is int else int.__index__(number)


def is_real_number(value: Any) -> bool:
    """Whether ``value`` is a real number, Python's or numpy's (an int or a
    float), and neither a bool nor a ``np.timedelta64`` (see :func:`is_int`)."""
    return (isinstance(value, (int, float, np.integer, np.floating))
            and not isinstance(value, (bool, np.bool_, np.timedelta64)))


def as_positive_int(value: Any, name: str) -> int:
    """``value`` as an int when it is an integer > 0 (not a bool)."""
    if not is_int(value):
        raise wrong_type(name, "a positive int", value)
    number = exact_int(value)  # the number checked is the number returned
    if number <= 0:
        raise InvalidValueError(f"{name}: expected a positive int, got {shown_number(value)}", name)
    return number


def is_utf8(text: str) -> bool:
    """Whether ``text`` encodes as UTF-8: a lone surrogate ("\\ud800", which
    JSON escapes and Python strings may hold) does not."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def as_seed(value: Any, name: str, below: Optional[int] = 2**64, why: str = "") -> int:
    """``value`` as an int when it is an integer (numpy's too, not a bool) in
    ``[0, below)`` (``below=None``: no upper bound): a seed, or a counter
    restored from a state. ``below`` is what the consumer takes (2**64 for
    the Rust core's u64, 2**32 for scikit-learn's random_state); ``why`` is
    added to the message after what was expected. Another type (2.5, "3",
    True, None) is a ``TypeError``, an int out of range an :class:`InvalidValueError`."""
    expected = "an int >= 0" if below is None else f"an int in [0, 2**{below.bit_length() - 1})"
    if not is_int(value):  # 2.5, "3", True, None: a wrong type, as the config's and the buffer's other checks say it
        raise wrong_type(name, expected, value, why)
    number = exact_int(value)  # the number checked is the number returned
    if number < 0 or (below is not None and number >= below):
        raise InvalidValueError(f"{name}: expected {expected}{why}, got {shown_number(value)}", name)
    return number


def check_model(model: Any, name: str = "model") -> None:
    """TypeError naming ``name`` unless ``model`` is a
    :class:`~grapheme_multimodal.LearnableMultiModal`: a module function
    given another object (a checkpoint's path, an estimator) failed on the
    first attribute it read ("'str' object has no attribute '_lock'")."""
    from .model import LearnableMultiModal  # here: the model's module imports this one

    if not isinstance(model, LearnableMultiModal):
        raise TypeError(f"{name}: expected a LearnableMultiModal, got {describe(model)}")


def check_flag(value: Any, name: str) -> bool:
    """``value`` as a bool when it is one (numpy's too); else TypeError: a
    str such as "no" or "false" would count as true."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected a bool, got {type(value).__name__}")
    return bool(value)


def as_finite_float(
    value: Any, name: str, ok: Callable[[float], bool], expected: str, float32: bool = False
) -> float:
    """``value`` as a float when it is a finite real number (not a bool) for
    which ``ok`` holds (and, with ``float32``, that float32 can hold: the core
    computes with it in float32); else ValueError ``"{name}: expected {expected}, ..."``,
    or ``TypeError`` for what is no real number (a str, None, a bool, a
    complex number). ``ok`` must hold for the float returned too. A 0-d
    array is the number it holds (``np.array(1e-3)``, a reduction's result),
    as objective weights, rewards and metrics take it: ``lr=np.array(1e-3)``
    was refused while ``weights={"contrastive": np.array(1.0)}`` was taken."""
    given = value
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if (isinstance(value, (bool, np.timedelta64)) or not isinstance(value, (int, float, np.number))
            or np.iscomplexobj(value)):
        raise wrong_type(name, expected, given)  # np.array(None) as the array given: "got None" misled
    try:  # an int beyond int64 is no numpy scalar: np.isfinite would raise numpy's TypeError
        as_float = float(value)
    except OverflowError:  # beyond float64 altogether
        as_float = float("inf")
    if not np.isfinite(as_float) or not ok(value):
        raise InvalidValueError(f"{name}: expected {expected}, got {shown_number(value)}", name)
    if not ok(as_float):  # a long double just below 1 is 1.0 as the float returned
        raise InvalidValueError(f"{name}: expected {expected}, got {value!r}, which is {as_float!r} as a float", name)
    if float32 and abs(as_float) > FLOAT32_MAX:
        raise InvalidValueError(
            f"{name}: expected {expected}, got {shown_number(value)}, which is too large for float32 (largest {FLOAT32_MAX:.3g})", name
        )
    if float32 and as_float != 0 and np.float32(as_float) == 0 and not ok(0.0):
        # the core would compute with 0, a value refused when given as such: lr=1e-50
        # trained with a step of 0, leaving every weight as it was, without a word
        raise InvalidValueError(
            f"{name}: expected {expected}, got {value!r}, which is 0 in float32 (smallest positive "
            f"{float(np.finfo(np.float32).smallest_subnormal):.3g}), the precision the model computes in", name
        )
    return unsigned_zero(as_float)


def unsigned_zero(value: float) -> float:
    """``value``, with -0.0 as 0.0: a number written -0 (``--weight-decay -0``,
    ``--objectives contrastive=-0``) is the 0 it weighs as, and was shown,
    kept in settings and saved in checkpoints as -0.0."""
    return value or 0.0


FLOAT64_MAX = float(np.finfo(np.float64).max)


def over_float64(values: Any) -> Any:
    """Where ``values`` (a number or an array) holds a finite long double
    beyond float64, which float() and a cast to float64 make inf (False
    everywhere for any other dtype: nothing is beyond float64 there but
    ints, which callers read exactly)."""
    arr = np.asarray(values)
    if not (arr.dtype.kind == "f" and arr.dtype.itemsize > 8):
        return np.zeros(arr.shape, bool)
    with np.errstate(invalid="ignore"):  # NaN: not beyond
        return np.abs(arr) > FLOAT64_MAX


def refuse_over_float64(arr: np.ndarray, name: str, why: str = "") -> None:
    """NonFiniteError naming ``name`` and the first row of ``arr`` (1-D or
    2-D) that holds a finite long double beyond float64, shown as given:
    the float64 copy the caller computes in (``why`` says so) made it inf,
    and it was refused as "NaN or inf", a value never given, or computed
    with as inf."""
    beyond = over_float64(arr)
    if beyond.any():
        at = tuple(int(i) for i in np.argwhere(beyond)[0])
        raise NonFiniteError(f"{name}: row {at[0]} holds {shown_float(arr[at])}, too large for float64 (largest "
                             f"{FLOAT64_MAX:.3g}){why}; expected smaller numbers", name)


def shown_float(value: Any) -> str:
    """A real number as a message shows it: Python's repr of the float, or a
    long double beyond float64 by its own digits (``1e+4000``, ``1e-4000``):
    float() of it is inf or 0, a value the caller never gave. Every message
    that shows a float read from the caller shows it through this, not
    float() or a float64 copy."""
    if isinstance(value, np.ndarray) and value.ndim == 0:  # np.array(np.longdouble("1e4000")): its scalar
        value = value[()]
    if isinstance(value, np.floating) and value.dtype.itemsize > 8 and np.isfinite(value):
        as_float = float(value)
        if not np.isfinite(as_float) or as_float == 0 and value != 0:  # 1e4000 or 1e-4000: inf or 0 as a float
            return str(value)
        return repr(as_float)
    return repr(float(value))


#: The widest int a message shows digit by digit (2**332 is about 1e100).
_SHOWN_INT_BITS = 332


def shown_int(value: int) -> str:
    """An int as a message shows it: its digits, or past about 100 digits
    (332 bits) its leading digits and its size, ``1.000e+400 (an int of 401
    digits)``: str() of an int past 4,300 digits raises Python's own
    ValueError ("Exceeds the limit (4300 digits) for integer string
    conversion"), which took the place of the message that showed it."""
    value = int(value)
    if value.bit_length() <= _SHOWN_INT_BITS:
        return str(value)
    magnitude = abs(value)
    exponent = int(math.log10(magnitude))  # within one of the exact one: corrected below
    lead = magnitude // 10 ** (exponent - 3)
    while lead >= 10_000:
        exponent += 1
        lead = magnitude // 10 ** (exponent - 3)
    while lead < 1_000:
        exponent -= 1
        lead = magnitude // 10 ** (exponent - 3)
    sign = "-" if value < 0 else ""
    return f"{sign}{lead // 1000}.{lead % 1000:03d}e+{exponent} (an int of {exponent + 1} digits)"


def shown_number(value: Any, show: Callable[[Any], str] = repr) -> str:
    """``show(value)`` (repr, or str) of a number a message shows, but an int
    past about 100 digits as :func:`shown_int` shows it: repr() of one past
    4,300 digits raised Python's own ValueError in place of the message."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()  # a 0-d array taken for its number (is_int): "got 0", not "got array(0)"
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > _SHOWN_INT_BITS:
        return shown_int(value)
    return show(value)


def shown_floats(values: Any, most: int = 3) -> str:
    """The first ``most`` of ``values`` (1-D) as :func:`shown_float` shows each, then how many more there
    are: ``[1e+4000, nan]``, ``[0.0, 0.0, 0.0, ... 5 more]`` (four zeros read as ``[0.0, 0.0, 0.0]``)."""
    flat = np.asarray(values).ravel()
    more = f", ... {flat.size - most:,} more" if flat.size > most else ""
    return "[" + ", ".join(shown_float(v) for v in flat[:most]) + more + "]"


def non_finite_message(value: Any) -> str:
    """Why a value was refused as not finite: NaN/inf, or a finite number too
    large for float32 (it became inf when converted)."""
    if not isinstance(value, np.floating):  # Python numbers, numpy ints
        value = float(value)
    if np.isfinite(value):  # a long double beyond float64 too: float() of it is inf, a value never given
        return f"holds {shown_float(value)}, too large for float32 (largest {FLOAT32_MAX:.3g}); expected finite float32 numbers"
    return f"holds {'NaN' if np.isnan(value) else float(value)}; expected finite numbers"


def as_float32(
    x: Any, name: str, ndim: int, shape: Optional[tuple] = None, present: Optional[np.ndarray] = None,
    features: bool = False,
) -> np.ndarray:
    """`x` as an aligned, C-contiguous float32 array of `ndim` dimensions.

    Already-conforming arrays are returned as they are (no copy); other real
    dtypes and layouts (and arrays at a misaligned address) are converted. `shape` may hold ``None`` for free axes.
    Non-numeric input raises TypeError, a wrong shape ValueError. A finite
    value too large for float32 (it would become inf) raises NonFiniteError
    saying so, unless it is not ``present`` (a bool mask over the first axes,
    per row or per row and modality: what a mask marks absent may hold
    anything; ``None``: everything is present). With ``features`` (rows of
    input features, each column standardised by the model), a column whose
    every value is below float32's normal range raises InvalidValueError:
    the cast would make it constant without a word.
    """
    if type(x) is np.ndarray and x.dtype == np.float32 and x.flags.c_contiguous and x.flags.aligned:
        arr = x
    else:
        real = as_real_array(x, name, INPUTS_MASKED_REMEDY if features else MASKED_REMEDY)
        refuse_beyond_memory(real, name, np.float32)
        if real.dtype.kind == "f" and real.dtype.itemsize > 4:  # only wider floats can overflow float32
            arr = float32_of_wide(real, name, present, per_column=True if features else None)
        else:
            # asarray, not ascontiguousarray: that makes a 0-d scalar 1-d, and the error then names the wrong shape
            arr = np.asarray(real, dtype=np.float32, order="C")
        if not arr.flags.aligned:  # ascontiguousarray keeps a misaligned C-contiguous array as it is
            arr = arr.copy()
    if arr.ndim != ndim:
        # without a shape: "expected 2-D input, got shape ()" (it said "expected 2-D input 2 dimensions")
        want = f" {_fmt(shape)}" if shape is not None else ""
        raise ShapeError(f"{name}: expected {ndim}-D input{want}, got shape {arr.shape}{_one_row_hint(arr, ndim, shape)}",
                         name)
    if shape is not None:
        for got, want in zip(arr.shape, shape):
            if want is not None and got != want:
                raise ShapeError(f"{name}: expected shape {_fmt(shape)}, got {arr.shape}", name)
    return arr


def _one_row_hint(arr: np.ndarray, ndim: int, shape: Optional[tuple]) -> str:
    """How a 1-D array goes in where rows ``[n, d]`` are expected: as one
    row when it is ``d`` long, ``x[None, :]`` (a single sample, as PyTorch's
    and scikit-learn's calls take it too), or as a column when ``d`` is 1."""
    if arr.ndim != 1 or ndim != 2 or shape is None or len(shape) != 2 or shape[1] is None:
        return ""
    if arr.shape[0] == shape[1] and shape[0] in (None, 1):
        return "; one row goes in as x[None, :] (x.reshape(1, -1))"
    if shape[1] == 1 and shape[0] in (None, arr.shape[0]):
        return "; one value per row goes in as x[:, None] (x.reshape(-1, 1))"
    return ""


#: numpy reports a finite value that overflows a cast from 1.24 on; before, it became inf silently.
_CAST_REPORTS_OVERFLOW = np.lib.NumpyVersion(np.__version__) >= "1.24.0"


def float32_of_wide(
    real: np.ndarray,
    name: str,
    present: Optional[np.ndarray] = None,
    place_of: Optional[Callable[[tuple], str]] = None,
    per_column: Optional[bool] = None,
) -> np.ndarray:
    """``real`` (float64 or wider) as C-contiguous float32; a finite value
    that overflows refused by :func:`_refuse_too_large` (``place_of`` names
    its index, e.g. a pixel), and, for data the model reads as features
    (``per_column`` not None), a column (``True``: of a 2-D array of rows,
    each column standardised on its own; ``False``: the whole array) whose
    every value underflows refused by :func:`_refuse_underflow` (weights and
    embeddings are not checked: a tiny one only rounds to 0). numpy's own
    report of the overflow or underflow costs no extra pass; older numpy
    needs one."""
    with np.errstate(over="raise", under="raise"):  # inf and NaN pass through the cast without a report
        try:
            arr = np.asarray(real, dtype=np.float32, order="C")
            lost = not _CAST_REPORTS_OVERFLOW and (
                bool(np.isinf(arr).any()) or (per_column is not None and _underflowed(real, arr)))
        except FloatingPointError:
            arr, lost = None, True
    if lost:
        _refuse_too_large(real, name, present, place_of)
        if per_column is not None:
            _refuse_underflow(real, name, present, per_column)
        if arr is None:
            # only absent rows overflowed (they become inf, unread), or some values are tiny beside their column's
            with np.errstate(over="ignore", under="ignore"):
                arr = np.asarray(real, dtype=np.float32, order="C")
    return arr


def refuse_float32_underflow(
    real: np.ndarray, arr: np.ndarray, name: str, present: Optional[np.ndarray], per_column: bool
) -> None:
    """InvalidValueError (:func:`_refuse_underflow`) when ``arr``, the
    float32 cast of the wider ``real``, lost a column (``per_column``; else
    the whole array) of the ``present`` rows below float32's normal range:
    for a cast already made, as :func:`float32_of_wide` checks its own."""
    if real.dtype.kind == "f" and real.dtype.itemsize > 4 and _underflowed(real, arr):
        _refuse_underflow(real, name, present, per_column)


def _underflowed(real: np.ndarray, arr: np.ndarray) -> bool:
    """Whether a nonzero value of ``real`` is below float32's normal range in
    ``arr``, its cast (what numpy from 1.24 reports by itself)."""
    return bool(np.any((np.abs(arr) < FLOAT32_TINY) & (real != 0)))


def refuse_float32_underflow_columns(arr: np.ndarray, name: str, present: Optional[np.ndarray] = None) -> None:
    """:func:`_refuse_underflow` for training data already float32 ``[N, d]``
    (of the ``present`` rows): a column whose every value is a subnormal
    float32 (1e-40) standardised to 0 everywhere (its standard deviation
    below the smallest normal float32 reads as a constant column's), and
    every embedding of the view came out the same, without a word, where
    the same values in float64 are refused at the cast. Two reductions over
    the rows, of the present ones in place (a copy of them was the data's
    size again, at every fit)."""
    if arr.ndim != 2 or not arr.size:
        return
    where = None if present is None or present.all() else present[:, None]
    with np.errstate(invalid="ignore"):  # NaN in a present row: refused as such by the caller's own checks
        if where is None:
            high, low = arr.max(axis=0), arr.min(axis=0)
        else:
            high = np.max(arr, axis=0, where=where, initial=-np.inf)  # no present row: -inf, never refused
            low = np.min(arr, axis=0, where=where, initial=np.inf)
        largest = np.maximum(np.abs(high), np.abs(low))
    if ((largest > 0) & (largest < FLOAT32_TINY)).any():
        _refuse_underflow(arr, name, None if where is None else present, True)


def _refuse_underflow(real: np.ndarray, name: str, present: Optional[np.ndarray], per_column: bool) -> None:
    """InvalidValueError for a column of ``real`` (of the ``present`` rows;
    ``per_column`` False: the whole array) whose nonzero values all lie below
    float32's smallest normal number: as float32 they lose their precision
    or become 0, and a column the model standardises then reads as constant,
    without a word (a value tiny beside the rest of its column is only
    rounded, as any float32 value is)."""
    if real.size == 0:
        return
    magnitude = np.where(np.isfinite(real), np.abs(real), 0.0)
    if real.ndim >= 1 and present is not None and len(present) == len(real):
        magnitude[~present] = 0.0
    columns = per_column and real.ndim == 2
    largest = magnitude.max(axis=0) if columns else magnitude.reshape(1, -1).max(axis=1)
    lost = np.flatnonzero((largest > 0) & (largest < FLOAT32_TINY))
    if len(lost):
        where = f"column {int(lost[0])}'s values are" if columns else "its values are"
        most = largest[lost[0]]
        shown = f"{float(most):.3g}" if float(most) else shown_float(most)  # a long double's 1e-4000 was "0"
        raise InvalidValueError(
            f"{name}: {where} at most {shown} in magnitude, below float32's smallest normal "
            f"number ({FLOAT32_TINY:.3g}): the model computes in float32, where they lose their precision or become 0; "
            "expected the data rescaled (e.g. multiplied by a power of ten) before it is given", name)


def _refuse_too_large(
    real: np.ndarray, name: str, present: Optional[np.ndarray], place_of: Optional[Callable[[tuple], str]] = None
) -> None:
    """NonFiniteError naming the first finite entry of ``real`` beyond
    float32's range (among the ``present`` ones, when given; ``place_of(index)``
    says where it is, by default its row or index)."""
    too_large = np.isfinite(real) & (np.abs(real) > FLOAT32_MAX)
    if real.ndim >= 1 and present is not None and len(present) == len(real):
        too_large[~present] = False
    where = np.argwhere(too_large)
    if len(where):
        at = tuple(int(i) for i in where[0])
        if place_of is not None:
            place = place_of(at)
        else:
            place = f"row {at[0]}" if real.ndim == 2 else f"index {at if len(at) > 1 else at[0]}" if at else "the value"
        raise NonFiniteError(f"{name}: {place} {non_finite_message(real[at])}", name)


#: A training column is reported (:class:`PrecisionLossWarning`) when the
#: cast to float32 moves its present values by more than this fraction of
#: their float64 standard deviation (root mean square of the rounding). At
#: 1 % float32 keeps about 30 of its steps per standard deviation of the
#: column (rounding to a step ``s`` has an rms of ``s / sqrt(12)``), where
#: data far from that keeps millions; the standardised column then carries
#: noise of 1 % of its unit spread, from data float64 held exactly. Below
#: it the loss is too small to matter to a model (1e6 + 10 * x: 0.2 %),
#: above it a column loses visibly more, up to all of it (constant in float32).
PRECISION_TOLERANCE = 0.01
#: A column whose float64 standard deviation is below this fraction of its
#: mean's magnitude varies only in the last 8 of float64's 53 significant
#: bits (256 units of roundoff, the noise of a few hundred float64
#: operations: 0.1 + 0.2 beside 0.3): constant as float64 itself resolves
#: it, and not reported (a scaler would standardise that noise too).
_FLOAT64_NOISE = 2.0**8 * float(np.finfo(np.float64).eps)
#: Columns a :class:`PrecisionLossWarning` lists by index before "...".
_LISTED_COLUMNS = 5
#: Elements per chunk of rows the check reads at a time (its float64 temporaries: 8 MiB each).
_CHECK_CHUNK = 1 << 20


class _PrecisionScope:
    """What :func:`precision_scope` holds: the names its callers give the
    data (innermost first), the names already warned about, and whether the
    data was already checked whole (the fits inside then skip the check)."""

    def __init__(self, names: Tuple[Mapping[str, str], ...], warned: Set[Tuple[str, str]]) -> None:
        self.names, self.warned, self.checked = names, warned, False

    def name(self, inner: str) -> str:
        for names in self.names:
            inner = names.get(inner, inner)
        return inner


_F = TypeVar("_F", bound=Callable[..., Any])

# An integer argument as the checks in this package take it: a Python int or
# a numpy integer (an np.int64 from np.arange, a shape, an argmax). numpy's
# stubs make np.int64 no int, so an `int` annotation made mypy and pyright
# refuse calls that run. A 0-d integer array is taken too (is_int), as a 0-d
# float array where a float is expected; the annotations leave it out.
IntLike = Union[int, "np.integer[Any]"]

# A real-number argument likewise: np.float32 (a reduction, a config read
# back) is no float to numpy's stubs, yet as_finite_float takes it.
FloatLike = Union[float, "np.floating[Any]"]

_precision: "contextvars.ContextVar[Optional[_PrecisionScope]]" = contextvars.ContextVar("_precision", default=None)


@contextlib.contextmanager
def precision_scope(names: Optional[Mapping[str, str]] = None) -> Iterator[_PrecisionScope]:
    """``with precision_scope(names) as scope:`` a call that trains several
    times on the user's data (folds, a final fit) warns once per modality:
    a :class:`PrecisionLossWarning` inside the block names the data by
    ``names`` (as :func:`renamed` renames errors: ``{"data['visual']":
    "inputs['visual']"}``, applied after those of inner blocks), and is given
    once per name within the outermost block. Setting ``scope.checked``
    after checking the data whole skips the check in the fits that follow
    (in this block only). Per thread and task, as a context variable."""
    with context_set(_precision, _inner_scope(names)) as scope:
        yield scope


def call_in_precision_scope(names: Optional[Mapping[str, str]], function: Callable[..., _R], /, *args: Any,
                            **kwargs: Any) -> _R:
    """``function(*args, **kwargs)`` in a :func:`precision_scope` of ``names``,
    opened by :func:`call_with_set` (a Ctrl-C cannot leave it behind)."""
    return call_with_set(_precision, _inner_scope(names), function, *args, **kwargs)


def _inner_scope(names: Optional[Mapping[str, str]]) -> _PrecisionScope:
    """A :func:`precision_scope` of ``names`` inside the current one."""
    outer = _precision.get()
    return _PrecisionScope(((names or {}),) + (outer.names if outer else ()), outer.warned if outer else set())


_V = TypeVar("_V")
_R = TypeVar("_R")

#: False inside a :func:`taking_no_mask` block: the caller takes no mask, and its refusals say nothing of one.
MASK_TAKEN: "contextvars.ContextVar[bool]" = contextvars.ContextVar("_MASK_TAKEN", default=True)


@contextlib.contextmanager
def taking_no_mask() -> Iterator[None]:
    """Inside the block, a refusal of NaN or inf in rows says nothing of a
    mask: fit's (of training and validation rows) leaves out its
    ``MASK_NOTE``, and the core's in ``encode``, ``encode_and_fuse`` and
    ``hidden_features`` its "(a row marked present)" (the model's methods
    pass the scope down as ``masked=False``). For a caller that takes no
    mask (:func:`~grapheme_multimodal.uci.train`, ``fit_views``,
    ``evaluation.ModelEmbedder``: every view present in every row), which
    so hears of no marks it cannot make. Callers removed the words from the
    message afterwards, which missed them once a wrapper between had
    reworded the message, and edited the core's text by its wording. Per
    thread and task, as a context variable (the tasks of
    :func:`~._parallel.run_tasks` copy it)."""
    with context_set(MASK_TAKEN, False):
        yield


def call_taking_no_mask(function: Callable[..., _R], /, *args: Any, **kwargs: Any) -> _R:
    """``function(*args, **kwargs)`` in a :func:`taking_no_mask` scope,
    opened by :func:`call_with_set` (a Ctrl-C cannot leave it behind)."""
    return call_with_set(MASK_TAKEN, False, function, *args, **kwargs)


@contextlib.contextmanager
def context_set(var: "contextvars.ContextVar[_V]", value: _V) -> Iterator[_V]:
    """``var`` set to ``value`` inside the block and put back as it was
    after it. Set in the try and put back by value: reset by set's token, a
    Ctrl-C landing as set returned left it in place for good (a scope of
    :func:`precision_scope`, and later fits in the thread never warned again
    of what it had warned).

    Closed rather than left (``GeneratorExit``: a Ctrl-C as contextlib's
    ``__enter__`` returned or its ``__exit__`` began kept the generator
    suspended, and the garbage collector closes it later, anywhere), it puts
    ``var`` back only while ``var`` still holds this block's ``value``: an
    enclosing block has put its own back since, and putting this one's
    back then left a scope of a fit long over in place for good (a
    :func:`precision_scope` of ``fit_views``, whose later fits' precision
    warnings were then said once, by the views' names)."""
    outer = var.get()
    closed = False
    try:
        var.set(value)
        yield value
    except GeneratorExit:
        closed = True
        if var.get() is value:
            var.set(outer)
        raise
    finally:
        if not closed:
            var.set(outer)


def call_with_set(var: "contextvars.ContextVar[_V]", value: _V, function: Callable[..., _R], /,
                  *args: Any, **kwargs: Any) -> _R:
    """``function(*args, **kwargs)`` with ``var`` set to ``value``, put back
    as it was after it: :func:`context_set` as a function, for the scopes
    this library opens around its own calls. A Ctrl-C as contextlib's
    ``__enter__`` returned or its ``__exit__`` began kept that block's
    generator suspended, ``var`` set, while the interrupt was alive, and
    for good when a cycle kept the generator from its close (a frame that
    held the interrupt: ``fit_with_stopping``'s ``training_on_split``
    left every later fit of the thread taking itself for a slice's). Here
    ``var`` is set in the try whose finally puts it back."""
    outer = var.get()
    try:
        var.set(value)
        return function(*args, **kwargs)
    finally:
        var.set(outer)


def leave_precision_scopes() -> None:
    """Leaves every :func:`precision_scope` in the current context: for the
    copy of the context the user's own code called inside one runs in (a
    ``metrics`` function of ``fit``), whose calls are the user's, not the
    scope's: a metric that fitted another model on other data inside
    ``fit_with_stopping`` had that fit's check skipped (the scope's data
    was checked whole) and its warnings named and said once as the
    scope's (``inputs['visual']``)."""
    _precision.set(None)


def precision_scoped(names: Callable[[], Mapping[str, str]]) -> Callable[[_F], _F]:
    """A decorator: the function runs in a :func:`precision_scope` of
    ``names()`` (a callable, so that a module may name a table it defines
    below), opened by :func:`call_with_set`: a Ctrl-C as a ``with`` block
    of it was entered or left kept the scope while the interrupt was alive,
    and a fit in the handler had its PrecisionLossWarning named by the
    decorated function's arguments, or not said at all."""

    def decorate(function: _F) -> _F:
        @functools.wraps(function)
        def scoped(*args: Any, **kwargs: Any) -> Any:
            return call_in_precision_scope(names(), function, *args, **kwargs)

        return scoped  # type: ignore[return-value]

    return decorate


def first_in_scope(kind: str, key: str) -> Optional[str]:
    """``key`` (fit's name for part of the data, ``data['visual']``) under
    the innermost :func:`precision_scope`'s name for it (``inputs['visual']``,
    ``views['fou']``), when a warning of ``kind`` about it is new to the
    outermost scope (noted there): a call that trains several times on the
    user's data (folds, a final fit) says it once. None when already said;
    ``key`` itself outside any scope."""
    scope = _precision.get()
    if scope is None:
        return key
    shown = scope.name(key)
    with _WARNED_LOCK:  # the members of an ensemble share the scope from their threads: one of them says it
        if (kind, shown) in scope.warned:
            return None
        scope.warned.add((kind, shown))
    return shown


_WARNED_LOCK = threading.Lock()


def precision_checked() -> None:
    """Marks the data of the innermost :func:`precision_scope` checked whole:
    the fits that follow in it skip the check (their rows are among those)."""
    scope = _precision.get()
    if scope is not None:
        scope.checked = True


def precision_lost(real: np.ndarray, arr: np.ndarray, present: Optional[np.ndarray] = None) -> Optional[str]:
    """What a :class:`PrecisionLossWarning` says after the data's name, or
    None: the columns of ``real`` ``[N, d]`` (a float wider than float32, or
    an integer of 32 bits or more; other dtypes are exact in float32) whose
    ``present`` rows (a bool ``[N]``; None: all) ``arr``, their float32
    cast, moves by more than :data:`PRECISION_TOLERANCE` of their standard
    deviation (root mean square), unless float64 itself resolves no
    variation in them (:data:`_FLOAT64_NOISE`; not for integers, read exactly
    past 2**53 too, nor float64 whole numbers, each the integer it holds:
    any spread is the data's). One pass over the rows, in
    chunks (mean and spread merged per chunk, stable far from zero: the
    point of the check); non-finite values (refused elsewhere) count as no loss."""
    kind, size = real.dtype.kind, real.dtype.itemsize
    if real.ndim != 2 or arr.shape != real.shape or not (kind == "f" and size > 4 or kind in "iu" and size >= 4):
        return None
    d = real.shape[1]
    count, mean, m2, err2 = 0, np.zeros(d), np.zeros(d), np.zeros(d)
    step = max(1, _CHECK_CHUNK // max(d, 1))
    # Integers past 2**53 are not all float64 numbers: ids 2**60 + i, exact as int64, were one float64 value
    # before the check read them, their spread 0, and trained on as a constant column without a word. A
    # column whose range fits in 2**53 is read less its least value (exact in its own dtype, and in float64).
    offset, shift = _integer_offsets(real, present) if kind in "iu" and size > 4 else (None, None)
    with np.errstate(all="ignore"):
        for start in range(0, real.shape[0], step):
            x, y = real[start : start + step], arr[start : start + step]
            if present is not None:
                keep = present[start : start + step]
                if not keep.all():
                    x, y = x[keep], y[keep]
            k = len(x)
            if not k:
                continue
            if offset is None:
                x = x.astype(np.float64, copy=False)
                rounding = y - x  # float32 - float64: computed in float64, exactly the cast's change
            else:  # the same, both less the offset: y - offset (within a factor 2 of each other) is exact
                x = (x - offset).astype(np.float64)
                rounding = (y - shift[0]) - x + shift[1]
            chunk_mean = x.mean(axis=0)
            dev = x - chunk_mean
            delta = chunk_mean - mean
            total = count + k
            mean += delta * (k / total)
            m2 += np.einsum("ij,ij->j", dev, dev) + delta * delta * (count * k / total)
            err2 += np.einsum("ij,ij->j", rounding, rounding)
            count = total
        if count < 2:
            return None
        if offset is not None:
            mean += shift[0]  # about the values themselves, as the message says them
        std, rms = np.sqrt(m2 / count), np.sqrt(err2 / count)
        lossy = rms > PRECISION_TOLERANCE * std
        # Integers carry no roundoff: any spread is the data's. Ids 10**15 + i spread 1e-14 of their mean, below
        # float64's noise, and were cast to one float32 value without a word, as int64 and as the float64 a
        # CSV file or scikit-learn's check_array makes of them: a float64 column of whole numbers (roundoff
        # seldom lands on one below 2**52) is taken as integers. At any magnitude: from 2**52 on every float64
        # is whole, and the rule stopped at 2**53, so ids 2**53 - 100 + i were said and ids 2**53 + 2 * i
        # (distinct float64 values, as int64 ids past 2**53 are said) trained on as one constant column unsaid;
        # a column there of float64 roundoff alone is said too (float32 makes it constant: nothing is lost).
        noise = std <= (_FLOAT64_NOISE if kind == "f" else 0.0) * np.abs(mean)
        maybe = np.flatnonzero(lossy & noise & (std > 0)) if kind == "f" else np.zeros(0, np.intp)
        within_roundoff = noise.copy()  # whole or not: said in the message, which can be a false alarm there
        if len(maybe):  # seldom: columns far from zero that float64 barely resolves; one more pass over them only
            column = real[:, maybe] if present is None else real[:, maybe][present]  # those columns only: no copy of the rest
            whole = (column == np.round(column)).all(axis=0)
            noise[maybe[whole]] = False
        lost = np.flatnonzero(lossy & ~noise)
    if not len(lost):
        return None
    first = int(lost[0])
    listed = ", ".join(str(int(j)) for j in lost[:_LISTED_COLUMNS]) + (", ..." if len(lost) > _LISTED_COLUMNS else "")
    columns = f"column {listed} varies" if len(lost) == 1 else f"columns {listed} ({len(lost)} of {d}) vary"
    column = real[:, first] if present is None else real[present, first]
    cast = arr[:, first] if present is None else arr[present, first]
    spacing = float(np.spacing(np.float32(abs(mean[first]))))
    if cast.min() == cast.max():
        kept = "the column is constant"
    else:
        kept = f"rounding moves its values by {rms[first] / std[first]:.0%} of that spread (root mean square)"
    who = "its" if len(lost) == 1 else f"column {first}'s"
    said = (
        f"{columns} more finely than float32 resolves: {who} values are around {float(mean[first]):.1e} varying by "
        f"{float(std[first]):.1e} (standard deviation of {len(column)} rows), and float32's spacing there is {spacing:.1e}, "
        f"so in float32 {kept}; "
    )
    remedy = "subtract the column's mean (or rescale) before passing it, e.g. x - x.mean(axis=0)"
    if within_roundoff[first]:
        # From 2**52 on every float64 is whole: ids 2**53 + 2 * i and one quantity's float64 roundoff look alike,
        # and "would learn the rounding, not the data" was a false alarm of the roundoff (constant in float32 too)
        return (
            f"{said}that spread is within float64's own roundoff at that size (its last 8 of 53 bits), where every "
            "float64 is a whole number: if it is roundoff, nothing is lost and this can be ignored; if the values are "
            f"distinct integers (ids), the model computes in float32 and would see them as one: {remedy}"
        )
    return f"{said}the model computes in float32 and would learn the rounding, not the data: {remedy}"


def _integer_offsets(
    real: np.ndarray, present: Optional[np.ndarray]
) -> Tuple[Optional[np.ndarray], Optional[Tuple[np.ndarray, np.ndarray]]]:
    """For :func:`precision_lost` of integer columns ``real [N, d]`` (their
    ``present`` rows): ``(offset, (offset as float64, its rounding))``, the
    offset each column's least value where its range is below 2**53 (0
    elsewhere: spread that wide, float64 resolves it), or ``(None, None)``
    when no value lies beyond 2**53 (float64 holds them all): one reduction
    over the array, and one more over the present rows only past 2**53."""
    if not real.size or max(abs(int(real.min())), abs(int(real.max()))) < 2**53:  # the common case: no copy
        return None, None
    rows = real if present is None or present.all() else real[present]
    if not rows.size:
        return None, None
    low, high = rows.min(axis=0), rows.max(axis=0)
    ranges = [int(h) - int(lo) for lo, h in zip(low.tolist(), high.tolist())]
    offset = np.where(np.array([r < 2**53 for r in ranges]), low, np.zeros_like(low))  # low.dtype: numpy 1.x too
    as_float = offset.astype(np.float64)
    # float64(offset) - offset, exact as Python ints: what y - float64(offset) leaves out of y - offset
    error = np.array([float(int(f) - int(o)) for f, o in zip(as_float.tolist(), offset.tolist())])
    return offset, (as_float, error)


def warn_precision_loss(real: np.ndarray, arr: np.ndarray, present: Optional[np.ndarray], name: str) -> None:
    """A :class:`PrecisionLossWarning` at the user's line when
    :func:`precision_lost` finds columns of training data ``name`` that
    float32 loses; within :func:`precision_scope`, under the scope's name
    for the data, once per name (and not at all once the scope's data was
    checked whole). Only training paths call it: it reads the data once
    more, which embedding must not pay."""
    scope = _precision.get()
    if scope is not None and scope.checked:
        return
    message = precision_lost(real, arr, present)
    if message is None:
        return
    shown = first_in_scope("precision", name)
    if shown is not None:
        warn_at_caller(f"{shown}: {message}", PrecisionLossWarning)


#: The packages whose frames a warning steps over to reach the user's line (see :func:`warn_at_caller`).
_INNER_PACKAGES = frozenset({"grapheme_multimodal", "sklearn", "joblib"})

#: The packages whose frames begin a thread's stack (a pool's worker): no user's line.
_THREAD_MACHINERY = frozenset({"threading", "concurrent"})

#: Where the user's call that started the threads of :func:`~._parallel.run_tasks` stands: its file, line and module
#: globals, or None. Set in the threads' contexts: a warning in one of them is said there (see :func:`warn_at_caller`).
TASKS_CALLER: "contextvars.ContextVar[Optional[Tuple[str, int, Dict[str, Any]]]]" = contextvars.ContextVar(
    "TASKS_CALLER", default=None)


def _outside(frame: "Optional[FrameType]") -> "Tuple[Optional[FrameType], int]":
    """The first frame from ``frame`` outwards outside :data:`_INNER_PACKAGES`
    (None past the outermost), and its stack level counted from ``frame`` (1)."""
    level = 1
    while frame is not None and _package(frame) in _INNER_PACKAGES:
        frame, level = frame.f_back, level + 1
    return frame, level


def _package(frame: "FrameType") -> str:
    return str(frame.f_globals.get("__name__", "")).partition(".")[0]


def _at_tasks_caller(frame: "Optional[FrameType]") -> "Optional[Tuple[str, int, Dict[str, Any]]]":
    """:data:`TASKS_CALLER` where ``frame``, the first outside the package, is
    no user's (the bottom of a thread of :func:`~._parallel.run_tasks`), else None."""
    if frame is None or _package(frame) in _THREAD_MACHINERY:
        return TASKS_CALLER.get()
    return None


def tasks_caller() -> "Optional[Tuple[str, int, Dict[str, Any]]]":
    """For :data:`TASKS_CALLER`: where the user's call that leads to the
    caller stands (file, line, module globals); in a thread of
    :func:`~._parallel.run_tasks`, where the call that started it stands."""
    frame, _ = _outside(sys._getframe(1))
    if frame is None or _package(frame) in _THREAD_MACHINERY:
        return TASKS_CALLER.get()
    return frame.f_code.co_filename, frame.f_lineno, frame.f_globals


class HeldWarnings:
    """The library's warnings :func:`holding_warnings` keeps from being said:
    those of a category in ``dropped`` are dropped; the others, when
    ``held`` is a list, are appended to it as ``(message, category)``, else
    said as ever. Inside an ``outer`` block, what that block drops is
    dropped too, and a block that holds nothing itself holds in the
    outer's list: a block that only drops, opened inside one that holds
    (the command line's), had the others said as Python warnings, past the
    outer block's holding."""

    def __init__(self, dropped: Tuple["type[Warning]", ...], hold: bool, outer: "Optional[HeldWarnings]" = None) -> None:
        self.dropped = dropped + (outer.dropped if outer is not None else ())
        self.held: Optional[List[Tuple[str, "type[Warning]"]]] = [] if hold else (outer.held if outer is not None else None)


_HELD_WARNINGS: "contextvars.ContextVar[Optional[HeldWarnings]]" = contextvars.ContextVar("_HELD_WARNINGS", default=None)


@contextlib.contextmanager
def holding_warnings(dropped: Tuple["type[Warning]", ...] = (), hold: bool = True) -> Iterator[HeldWarnings]:
    """In the block, the library's warnings (:func:`warn_at_caller`) of this
    context (this thread, and the tasks it runs: :func:`~._parallel.run_tasks`)
    are not said but dropped (a category in ``dropped``) or, with ``hold``,
    held for the caller to say its own way (the command line's one-line
    warnings). Not ``warnings.catch_warnings()``: it swaps the whole
    process's filters and ``showwarning`` and puts back what it found, so a
    filter another thread set meanwhile was undone, and that thread's
    warnings were said the block's way (it is not thread-safe)."""
    with context_set(_HELD_WARNINGS, HeldWarnings(dropped, hold, _HELD_WARNINGS.get())) as held:
        yield held


@contextlib.contextmanager
def ignoring_warning(message: str, category: "type[Warning]") -> Iterator[None]:
    """The warnings of ``category`` whose text starts with ``message``
    ignored in the block (a third party's: Ray's at ``ray.init``), by a
    filter of the block's own, first in the list, taken out again after it
    (that very filter: found by identity), the process's other filters left
    as they are. Not ``warnings.catch_warnings()``, which puts back the whole
    list as it found it (a filter another thread set meanwhile was undone),
    nor ``filterwarnings``, which takes out an equal filter before it adds
    its own (the program's own one was lost for good at the block's end, and
    an inner block's end took out an outer's); nor one shared with an equal
    filter already there, which may stand behind the program's ``error``
    filter (the tip raised in the block)."""
    mine = ("ignore", re.compile(message, re.I), category, None, 0)  # as filterwarnings compiles it
    warnings.filters.insert(0, mine)
    _filters_changed()
    try:
        yield
    finally:
        # that very tuple (remove() would take the first equal one: maybe the program's own); none when
        # another thread reset the filters meanwhile
        at = next((i for i, f in enumerate(warnings.filters) if f is mine), None)
        if at is not None:
            with contextlib.suppress(IndexError):  # the list shortened by another thread in the meantime
                del warnings.filters[at]
        _filters_changed()


def _filters_changed() -> None:
    """Tells ``warnings`` its filters changed, as ``filterwarnings`` does:
    else a module's registry kept what it decided under the old ones (a
    warning ignored in the block, ignored after it too)."""
    changed = getattr(warnings, "_filters_mutated", None)
    if changed is not None:
        changed()


def filters_action(message: str, category: "type[Warning]", module: str, lineno: int) -> str:
    """The action (``"ignore"``, ``"error"``, ``"default"``...) the process's
    warning filters give the warning ``message`` of ``category`` said from
    line ``lineno`` of ``module``: that of the first filter that matches it,
    by the rules of ``warnings.warn_explicit``, else ``warnings.defaultaction``.
    For the warnings the command line says its own way (held ones too),
    which never reach ``warnings``: under ``PYTHONWARNINGS=ignore`` it
    printed them all the same. Read, not tried: ``warnings.catch_warnings(record=True)``
    would swap the whole process's filters, undoing a filter another thread set meanwhile."""
    for action, text, kind, where, line in list(warnings.filters):  # a copy: another thread may change the list
        if ((text is None or text.match(message)) and issubclass(category, kind)
                and (where is None or where.match(module)) and line in (0, lineno)):
            return str(action)
    return str(warnings.defaultaction)


def warn_at_caller(message: str, category: "type[Warning]") -> None:
    """``warnings.warn(message, category)`` at the user's line: the first
    frame outside the package (and scikit-learn, whose wrappers call the
    estimator's ``transform``, and joblib, through which ``cross_validate``
    and ``GridSearchCV`` call ``fit``), at whatever depth the public method
    that warns sits; but in a thread of :func:`~._parallel.run_tasks` (the
    members of an estimator fitted with ``n_jobs`` > 1), whose stack holds
    no frame of the user's, at the line of the call that started the
    threads: ``stacklevel`` reached the pool's own frames, and the warning
    pointed at a line of concurrent/futures/thread.py. In a
    :func:`holding_warnings` block, held or dropped instead of said; held
    unless the process's warning filters ignore it there (an ``"error"``
    filter holds it too: the command line says its warnings as its own
    one-line warnings under ``-W error``)."""
    holding = _HELD_WARNINGS.get()
    if holding is not None and issubclass(category, holding.dropped):
        return
    frame, level = _outside(sys._getframe(1))
    at = _at_tasks_caller(frame)
    if holding is not None and holding.held is not None:
        if at is not None:
            module, lineno = str(at[2].get("__name__", "<string>")), at[1]
        elif frame is not None:
            module, lineno = str(frame.f_globals.get("__name__", "<string>")), frame.f_lineno
        else:  # past the outermost frame: where warnings.warn says it then
            module, lineno = "sys", 1
        if filters_action(message, category, module, lineno) != "ignore":
            holding.held.append((message, category))
        return
    if at is None:
        warnings.warn(message, category, stacklevel=level + 1)
        return
    filename, lineno, module_globals = at
    # as warnings.warn says it from a frame: the module's name and registry (once per line under "default"). Not
    # module_globals, which warn_explicit gives the module's loader to read the source line: the loader of __main__
    # in the REPL or `python -c` (BuiltinImporter) raises ImportError ("'__main__' is not a built-in module"), and
    # so did every fit with n_jobs > 1 that warned there; warnings.warn passes none either (the line is read by name)
    warnings.warn_explicit(message, category, filename, lineno, str(module_globals.get("__name__", "<string>")),
                           module_globals.setdefault("__warningregistry__", {}))


def as_mask(mask: Any, batch_size: Optional[int], name: str = "mask") -> np.ndarray:
    """A `[B, 7]` presence mask as C-contiguous bool (0/1 real numbers accepted)."""
    if (type(mask) is np.ndarray and mask.dtype == np.bool_ and mask.ndim == 2 and mask.shape[1] == NUM_MODALITIES
            and (batch_size is None or mask.shape[0] == batch_size) and mask.flags.c_contiguous
            and mask.size <= memory_budget()):
        # already what is returned (no frame, masked array, sparse matrix or object to read; one a file maps
        # beyond memory goes on, refused below): the checks below, a microsecond of a one-row fuse, each pass it
        return mask
    refuse_sparse(mask, name)
    _refuse_mask_by_modality(mask, name)
    refuse_unordered(mask, name)
    _refuse_columns_out_of_slot_order(mask, name)
    if is_masked_array(mask):  # its masked entries would count as whatever lies under them
        mask = unmasked(mask, name, "booleans or 0/1 numbers", "fill them with True or False")
    try:
        arr = np.asarray(mask)
    except Exception as exc:  # ragged rows: numpy's error named no argument
        raise InvalidValueError(f"{name}: could not be read as a [B, 7] array of booleans ({exc})", name) from None
    if _ragged(arr):
        raise InvalidValueError(f"{name}: could not be read as a [B, 7] array of booleans (rows of different lengths)", name)
    nullable = arr.dtype == object and hasattr(mask, "to_numpy") and _pandas_numeric(mask)
    if nullable:
        # pandas' nullable columns ("boolean", "Int64") read as objects; pd.NA becomes NaN, refused below
        arr = mask.to_numpy(dtype=np.float64, na_value=np.nan)
    refuse_beyond_memory(arr, name, np.bool_)  # before its copy; its rows are the batch's, checked against the inputs after
    if arr.dtype != np.bool_:
        if arr.dtype.kind not in "iuf":  # complex and timedelta64 are numpy numbers, but no presence flags
            raise TypeError(f"{name}: expected booleans or 0/1 numbers, got {describe(arr)}{_object_flags_hint(arr, name)}")
        flags = np.isin(arr, (0, 1))
        if not flags.all():
            at = tuple(int(i) for i in np.argwhere(~flags)[0])
            # a nullable frame's NaN is its pd.NA: "got nan" named a value the caller never gave
            missing = nullable and np.isnan(arr[at])
            raise InvalidValueError(
                f"{name}: expected booleans or 0/1 numbers, got {shown_missing() if missing else repr(arr[at].item())}"
                + (f" at index {at if len(at) > 1 else at[0]}" if at else "")
                + (f"; fill it, e.g. {name}.fillna({_absent_flag(mask)})" if missing else ""), name
            )
        arr = arr.astype(np.bool_)
    if arr.ndim != 2 or arr.shape[1] != NUM_MODALITIES or (batch_size is not None and arr.shape[0] != batch_size):
        # [B, 3] for three views given was refused without a word of what the 7 columns are
        columns = "" if arr.ndim == 2 and arr.shape[1] == NUM_MODALITIES else _MASK_COLUMNS
        raise ShapeError(
            f"{name}: expected shape ({batch_size if batch_size is not None else 'B'}, {NUM_MODALITIES}), got {arr.shape}"
            f"{columns}", name)
    return np.ascontiguousarray(arr)


def _refuse_mask_by_modality(mask: Any, name: str) -> None:
    """TypeError for a mask given as a dict keyed by modality, as the inputs
    are (``{"auditory": rows_present}``): it was refused as a mapping whose
    order "is not the rows' order", which it never claimed to be, with no
    word of how a mask is laid out."""
    if not isinstance(mask, Mapping) or not mask:
        return
    from .types import Modality  # here: types imports this module

    if not all(isinstance(key, (str, Modality)) for key in mask):
        return  # int keys may be rows as well as slots: refused as any mapping is
    try:
        slots = [f"{Modality.parse(key, name)}: {Modality.parse(key, name).index}" for key in mask]
    except (TypeError, ValueError):
        return
    raise TypeError(
        f"{name}: got a dict keyed by modality; expected one [B, {NUM_MODALITIES}] array{_MASK_COLUMNS} (from this "
        f"dict: m = np.zeros((B, 7), bool), then m[:, k] = its rows for each modality's slot k ({', '.join(slots)}), "
        "and True throughout the column of any other modality given)")


#: What a mask's shape refusal says of its columns when their number is wrong.
_MASK_COLUMNS = ("; one column per modality, all 7 in slot order (visual, auditory, linguistic, tactile, "
                 "proprioceptive, action, abstract), whichever are given: True where the row holds that modality")


def _absent_flag(mask: Any) -> str:
    """What fills a missing value of a pandas mask frame as absent: ``False``
    where every column holds flags, else ``0`` (an ``Int64`` column takes no bool)."""
    return "False" if all(getattr(d, "kind", "O") == "b" for d in _pandas_dtypes(mask)) else "0"


def _object_flags_hint(arr: np.ndarray, name: str) -> str:
    """What the refusal of a mask of Python objects adds: the cast to make
    when every item is a bool (a pandas object column's ``.to_numpy()``),
    else the first item that is none (None, a str); "got array of ... dtype
    object" said neither."""
    if arr.dtype != object or not arr.size:
        return ""
    at = next((i for i, v in enumerate(arr.flat) if not isinstance(v, (bool, np.bool_))), None)
    if at is None:
        return f" of booleans stored as Python objects: pass np.asarray({name}, dtype=bool)"
    return _item_at(arr, at)


def _refuse_columns_out_of_slot_order(mask: Any, name: str) -> None:
    """InvalidValueError for a data frame mask (pandas, polars) whose column
    names name modalities in another order than the slots: its columns are
    read by position, so ``mask[["auditory", "visual", ...]]`` marked the
    visual slot present where the auditory column said so, and the other
    way round, without a word; so too columns labelled by the slots'
    numbers 0..6 (``pd.DataFrame(mask)``'s) in another order. Columns named
    otherwise ("a", or other numbers) are read by position, as the rows are."""
    columns = getattr(mask, "columns", None)
    if columns is None or isinstance(mask, np.ndarray) or not hasattr(mask, "to_numpy"):
        return
    from .types import Modality  # here: types imports this module

    labels = list(columns)
    # the slots' own numbers 0..6 as labels (pd.DataFrame(mask)'s), reordered: mask[[1, 0, 2, ...]] was read by position;
    # as text too ('0'..'6'), as such a frame comes back from CSV or Parquet (whose column names are str)
    slots = list(range(NUM_MODALITIES))
    numbered = len(labels) == NUM_MODALITIES and all(is_int(c) for c in labels) and sorted(labels) == slots
    as_text = not numbered and len(labels) == NUM_MODALITIES and sorted(labels, key=str) == [str(k) for k in slots]
    for position, label in enumerate(labels):
        if isinstance(label, Modality):
            slot = label.index
        elif as_text:
            slot = int(label)
        elif isinstance(label, str) and label.upper() in Modality.__members__:
            slot = Modality[label.upper()].index
        elif numbered:
            slot = int(label)
            label = slot  # np.int64(6) as 6 in the message
        else:
            continue
        if slot != position:
            order = [m.name.lower() for m in Modality]
            by_number = numbered or as_text
            wanted = ([str(k) for k in slots] if as_text else slots) if by_number else order
            called, kind = ("labelled", "number") if by_number else ("named", "name")
            raise InvalidValueError(
                f"{name}: its column {position} is {called} {label!r}, the {order[slot]} slot's {kind}, but a mask's "
                f"columns are read by position, in slot order ({', '.join(order)}); expected the columns in that order, "
                f"e.g. {name}[{wanted!r}]", name,
            )


def _fmt(shape: Any) -> str:
    if isinstance(shape, tuple):
        return "(" + ", ".join("any" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
    return str(shape)
