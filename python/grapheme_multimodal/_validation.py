"""Converting user input to the arrays the Rust core reads, with errors that
say which argument was wrong, what it was and what was expected."""

from __future__ import annotations

import contextlib
import contextvars
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
from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional, Tuple, TypeVar, Union

import numpy as np

from . import _core
from ._exact_ints import is_long_double
from ._core import NUM_MODALITIES
from ._frames import (
    NUMBER_ARRAY_TEXT_REMEDY, NUMBER_TEXT_REMEDY, arrow_frame, holds_decimals, holds_number_text, holds_object_numbers,
    is_arrow_table, is_number_text, pandas_dtypes, pandas_floats, pandas_integers, pandas_numeric, refuse_temporal_columns,
    refuse_time_columns, refuse_vector_columns, shown_missing,
)
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
    (:func:`~._frames.pandas_floats`): the numbers scikit-learn's ``check_array``
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
    dtypes = pandas_dtypes(x) if arr.dtype == object and hasattr(x, "to_numpy") else []
    if dtypes and all(getattr(d, "kind", "O") in "biuf" for d in dtypes):
        # pandas' nullable columns (Float64, Int64, boolean) read as objects; pd.NA
        # becomes NaN, which the callers refuse (or read as absent) by row
        arr = pandas_integers(x, dtypes)
        if arr is None:
            arr = x.to_numpy(dtype=np.float64, na_value=np.nan)
    elif dtypes:
        refuse_time_columns(x, name)
        arr = pandas_floats(x, dtypes, arr, name)
    elif arr.dtype == object and is_arrow_table(x):  # decimals, dictionaries, text: as a frame of them reads
        frame = arrow_frame(x)
        if frame is not None:
            arr = pandas_floats(frame, pandas_dtypes(frame), arr, name)
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
    and whether they are numbers as text (:func:`~._frames.refuse_number_text`)."""
    dtypes = getattr(x, "dtypes", None)
    if hasattr(dtypes, "items") and not hasattr(dtypes, "kind"):  # a data frame (a Series' dtypes is its dtype)
        columns = [(j, c, d) for j, (c, d) in enumerate(dtypes.items()) if getattr(d, "kind", "O") not in "biuf"]
        if columns:
            j, label, dtype = columns[0]
            if holds_decimals(x, j, dtype):
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
    if is_number_text(arr):  # as a text column is told: the conversion, not a drop
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
    if not is_long_double(arr):
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
    features: bool = False, columns_of: Optional[Tuple[str, int]] = None,
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
    the cast would make it constant without a word. ``columns_of``: ``x`` is
    columns of a larger array, named in that message (see :func:`precision_lost`).
    """
    if type(x) is np.ndarray and x.dtype == np.float32 and x.flags.c_contiguous and x.flags.aligned:
        arr = x
    else:
        real = as_real_array(x, name, masked_inputs_remedy() if features else MASKED_REMEDY)
        refuse_beyond_memory(real, name, np.float32)
        if real.dtype.kind == "f" and real.dtype.itemsize > 4:  # only wider floats can overflow float32
            arr = float32_of_wide(real, name, present, per_column=True if features else None, columns_of=columns_of)
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
    columns_of: Optional[Tuple[str, int]] = None,
) -> np.ndarray:
    """``real`` (float64 or wider) as C-contiguous float32; a finite value
    that overflows refused by :func:`_refuse_too_large` (``place_of`` names
    its index, e.g. a pixel), and, for data the model reads as features
    (``per_column`` not None), a column (``True``: of a 2-D array of rows,
    each column standardised on its own; ``False``: the whole array) whose
    every value underflows refused by :func:`_refuse_underflow` (weights and
    embeddings are not checked: a tiny one only rounds to 0). numpy's own
    report of the overflow or underflow costs no extra pass; older numpy
    needs one. ``columns_of``: see :func:`precision_lost`."""
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
            _refuse_underflow(real, name, present, per_column, columns_of)
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


def _refuse_underflow(real: np.ndarray, name: str, present: Optional[np.ndarray], per_column: bool,
                      columns_of: Optional[Tuple[str, int]] = None) -> None:
    """InvalidValueError for a column of ``real`` (of the ``present`` rows;
    ``per_column`` False: the whole array) whose nonzero values all lie below
    float32's smallest normal number: as float32 they lose their precision
    or become 0, and a column the model standardises then reads as constant,
    without a word (a value tiny beside the rest of its column is only
    rounded, as any float32 value is). ``columns_of``: see :func:`precision_lost`."""
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
        if columns and columns_of is not None:
            where = f"the values of column {int(lost[0]) + columns_of[1]} of {columns_of[0]} are"
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


def masked_inputs_remedy() -> str:
    """The remedy for a masked array of input rows: :data:`INPUTS_MASKED_REMEDY`,
    or, in a :func:`taking_no_mask` scope, :data:`MASKED_REMEDY` (``uci.train``'s
    validation views were told to "leave the rows out with mask=", an
    argument train does not take)."""
    return INPUTS_MASKED_REMEDY if MASK_TAKEN.get() else MASKED_REMEDY


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


def precision_lost(real: np.ndarray, arr: np.ndarray, present: Optional[np.ndarray] = None,
                   columns_of: Optional[Tuple[str, int]] = None) -> Optional[str]:
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
    point of the check); non-finite values (refused elsewhere) count as no loss. ``columns_of``: ``real``
    is columns of a larger array, ``(its name, the first column's index there)``, whose columns are named
    as its own: ``column 5 of Xs``, not the view's column 1 (``Xs[:, 4:10]: column 1 varies`` read as X's);
    an empty name, ``column 5`` (a column of a file read one at a time)."""
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
    offset, whole = (0, "") if columns_of is None else (columns_of[1], f" of {columns_of[0]}" if columns_of[0] else "")
    listed = ", ".join(str(int(j) + offset) for j in lost[:_LISTED_COLUMNS]) + (", ..." if len(lost) > _LISTED_COLUMNS else "")
    columns = f"column {listed}{whole} varies" if len(lost) == 1 else f"columns {listed}{whole} ({len(lost)} of {d}) vary"
    column = real[:, first] if present is None else real[present, first]
    cast = arr[:, first] if present is None else arr[present, first]
    spacing = float(np.spacing(np.float32(abs(mean[first]))))
    if cast.min() == cast.max():
        kept = "the column is constant"
    else:
        kept = f"rounding moves its values by {rms[first] / std[first]:.0%} of that spread (root mean square)"
    who = "its" if len(lost) == 1 else f"column {first + offset}'s"
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


def warn_precision_loss(real: np.ndarray, arr: np.ndarray, present: Optional[np.ndarray], name: str,
                        columns_of: Optional[Tuple[str, int]] = None) -> None:
    """A :class:`PrecisionLossWarning` at the user's line when
    :func:`precision_lost` finds columns of training data ``name`` that
    float32 loses; within :func:`precision_scope`, under the scope's name
    for the data, once per name (and not at all once the scope's data was
    checked whole). Only training paths call it: it reads the data once
    more, which embedding must not pay. ``columns_of``: see :func:`precision_lost`."""
    scope = _precision.get()
    if scope is not None and scope.checked:
        return
    message = precision_lost(real, arr, present, columns_of)
    if message is None:
        return
    shown = first_in_scope("precision", name)
    if shown is not None:
        from ._caller_warnings import warn_at_caller  # here: _caller_warnings imports this module

        warn_at_caller(f"{shown}: {message}", PrecisionLossWarning)


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
    nullable = arr.dtype == object and hasattr(mask, "to_numpy") and pandas_numeric(mask)
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
    return "False" if all(getattr(d, "kind", "O") == "b" for d in pandas_dtypes(mask)) else "0"


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
        elif isinstance(label, str) and label.isascii() and label.upper() in Modality.__members__:
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
