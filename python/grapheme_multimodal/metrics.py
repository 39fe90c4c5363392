"""Evaluation metrics for cross-modal binding and fused embeddings.

numpy only at import time; :func:`knn_accuracy` and
:func:`linear_probe_accuracy` import scikit-learn lazily (its neighbour
search and vote tie-breaking are what the SPEC §3 anchors used).
"""

from __future__ import annotations

import decimal
import fractions
import math
import numbers
from collections.abc import Hashable, Iterable
from typing import Any, Mapping, Sequence

import numpy as np

from . import _core
from ._validation import (
    IntLike, as_finite_float, as_real_array, as_positive_int, describe, is_int, is_iterable, is_masked_array, refuse_beyond_memory,
    refuse_over_float64, refuse_sparse, refuse_unordered, unmasked, wrong_type,
)
from ._frames import refuse_unpaired_columns, refuse_unpaired_frames
from ._exact_ints import beyond_float64, column_minimum, is_long_double, minus
from ._exact_ties import ExactTies
from .exceptions import InvalidValueError, NonFiniteError, ShapeError

__all__ = ["cross_view_retrieval", "knn_accuracy", "linear_probe_accuracy", "roc_auc", "unit_side_by_side"]

_METRICS = ("cosine", "euclidean")
# Query rows per block of the [block, n_gallery] distance matrix (float64):
# 2048 x 2k gallery items is 32 MB.
_DEFAULT_CHUNK = 2048
# At most this many bytes per block: 2048 rows x 1M gallery items were 16 GiB a
# block (three of them for euclidean), which the OOM killer ended. 16 MB, not
# more: the block is read again after the matrix product (argmax/argmin, then
# the runner-up of _settle_near_ties), and a block that stays in cache made the
# search of 20,000 rows faster than with 64 MB blocks and no runner-up pass
# (which rows are found does not depend on the block's size).
_BLOCK_BYTES = 16 << 20
# Rows per block are fewer still where a block of _MIN_BLOCK_ROWS or more rows
# fits in _CACHE_BYTES: the product, the argmax and the runner-up then read a
# block that stays in cache (2,000 rows: 262 a block, 5-15 % faster than
# 1,048), and the product still has rows enough that repacking the gallery for
# each block costs little.
_CACHE_BYTES = 4 << 20
_MIN_BLOCK_ROWS = 256


def _finite_2d(name: str, x: object) -> np.ndarray:
    arr = as_real_array(x, name)  # refuses masked entries and non-numbers (timedelta64 included)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ShapeError(f"{name}: expected a non-empty 2-D array [n, d], got shape {arr.shape}", name)
    refuse_beyond_memory(arr, name, np.float64)  # the metrics compute in float64
    if arr.dtype == np.bool_:
        # 0/1 features (binary fingerprints, one-hot columns) as the floats 0.0 and 1.0, as scikit-learn's
        # check_array and MultimodalEmbedder take them: refused here, a view that trained a model could
        # not be measured, standardised, or given to ExactCCA or the anchors
        arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        row = int(np.flatnonzero(~np.isfinite(arr).all(axis=1))[0])
        raise NonFiniteError(f"{name}: row {row} holds NaN or inf; expected finite numbers", name)
    _refuse_beyond_float64(name, arr)
    # C order: a Fortran-ordered array (a data frame's or polars' values, np.asfortranarray) summed its
    # products in another order in the matrix products, and ExactCCA's results differed in the last bits
    return np.ascontiguousarray(arr)


_FLOAT64_MAX = float(np.finfo(np.float64).max)


def _refuse_beyond_float64(name: str, arr: np.ndarray) -> None:
    """NonFiniteError for a finite long double beyond float64 in the 2-D
    ``arr``: the metrics compute in float64, where it became inf and the
    scores NaN (or every distance a tie)."""
    refuse_over_float64(arr, name, ", in which the metrics compute")


# Magnitudes whose squares float64 holds with room for sums of them.
_SAFE_MAX, _SAFE_MIN = 2.0**500, 2.0**-500
#: The binary exponent a scaled array's largest magnitude is
#: brought just below: its squares (below 2**980) leave 2**44 of room for
#: sums of them, and values down to 2**-1000 of it still square to normal
#: numbers. Scaled to below 1 instead, rows of moderate values beside one
#: of 1e300 became ~1e-300, their squares 0: every distance between them
#: tied, and the column's training variance was 0.
_SCALED_EXPONENT = 490


def _in_safe_range(*arrays: np.ndarray, copy: bool = True) -> tuple:
    """``arrays`` as float64, all scaled by one power of two when their
    largest magnitude is beyond ``2**±500`` (to just below
    ``2**_SCALED_EXPONENT``): squared there, values overflow to inf (or
    underflow to 0) and every distance ties, so the neighbours found were
    arbitrary. A power of two scales exactly, so no distance order changes;
    values in range are returned unscaled, as before (copies, unless
    ``copy=False``: then float64 arrays in range come back as they are,
    for a caller that only reads them)."""
    out = tuple(a.astype(np.float64, copy=copy) for a in arrays)
    if not _out_of_range(*out):
        return out
    shift = _SCALED_EXPONENT - int(np.frexp(max(float(np.abs(a).max()) for a in out))[1])
    return tuple(np.ldexp(a, shift) for a in out)


#: How many times the rows' spread their shared offset may be before
#: Euclidean distances are computed on the rows less it (:func:`_without_shared_offset`).
_OFFSET_OVER_SPREAD = 2.0**10
#: At most how many rows (spread over the data) judge that.
_OFFSET_SAMPLE = 1024


def _without_shared_offset(reference: np.ndarray, *arrays: np.ndarray) -> tuple:
    """``arrays`` less ``reference``'s mean row, as float64 in
    :func:`_in_safe_range`, when that mean lies more than
    ``_OFFSET_OVER_SPREAD`` times farther from 0 than ``reference``'s rows
    lie from it; else ``arrays`` as they are (bit for bit as before).

    No Euclidean distance changes, but distances computed as
    ``||a||² - 2 a·b + ||b||²`` (the retrieval here, scikit-learn's
    brute-force neighbours) lost every difference to rounding when the rows
    share a large offset: rows near 1e6 that differ by 0.01 got arbitrary
    neighbours. ``reference`` and ``arrays`` are float64 in
    :func:`_in_safe_range` (or in its range). Judged on at most
    ``_OFFSET_SAMPLE`` rows spread over ``reference``: data that need no
    centring (the usual case) are not copied."""
    sample = reference[:: max(1, len(reference) // _OFFSET_SAMPLE)].astype(np.float64, copy=False)  # only read
    centre = sample.mean(axis=0)
    spread = float(np.sqrt(sample.var(axis=0).sum()))  # the rows' root-mean-square distance from their mean
    if not float(np.linalg.norm(centre)) > _OFFSET_OVER_SPREAD * spread:
        return arrays
    centre = _column_means(reference)
    return _in_safe_range(*(a.astype(np.float64, copy=False) - centre for a in arrays))  # rows near 1 apart by 1e-200


def _constant_columns(reference: np.ndarray) -> np.ndarray:
    """Which columns of ``reference`` hold one value in every row. Their
    mean, of n copies of ``c``, is ``c`` give or take a rounding: less it,
    the column kept that rounding (about 1e-16 of ``c``) as every row's
    value, which outweighed the other columns' distances or standardised
    values when ``c`` is large (a column of 1e100 took a linear probe and
    Euclidean retrieval to chance)."""
    return (reference == reference[:1]).all(axis=0)


def _column_means(x: np.ndarray, dtype: Any = np.float64) -> np.ndarray:
    """``x``'s column means in float64 (or ``dtype``), exactly the value of each constant
    column (see :func:`_constant_columns`); the others as ``x.mean(axis=0)``."""
    return np.where(_constant_columns(x), x[0], x.mean(axis=0, dtype=dtype))


def _exact_integer_columns(*arrays: np.ndarray) -> tuple:
    """``arrays`` (integer, with the same columns) as float64 less each
    column's smallest value, subtracted exactly (:mod:`._exact_ints`), when
    one holds an integer beyond ``2**53``; else ``arrays`` as they are (bit
    for bit as before). Cast first, such integers (nanosecond timestamps
    near 2**61, ids) round to float64's spacing there (256 and more): rows a
    few units apart became one, and every neighbour or class was a tie. A
    shift common to all arrays changes no Euclidean distance and no
    standardised column. Arrays that mix in floats are left as they are,
    unless one is a long double: then all are shifted in long double."""
    # long doubles are shifted in long double (column_minimum, minus): cast first, their variation below float64's
    # spacing (columns near 1 that differ by 2**-60, as standardize keeps them) was lost, and the k-NN, the probe
    # and Euclidean retrieval scored ties (1.0 became 0.33), without a word
    if not any(is_long_double(a) for a in arrays) and not beyond_float64(*arrays):
        return arrays
    offset = column_minimum(*arrays)
    return tuple(minus(a, offset) for a in arrays)


def _out_of_range(*arrays: np.ndarray) -> bool:
    # the largest magnitude from the largest and smallest values: np.abs(a) was a temporary of a's size
    top = max(max(abs(float(a.max())), abs(float(a.min()))) for a in arrays)
    return top != 0 and not _SAFE_MIN <= top <= _SAFE_MAX


def _labels_1d(name: str, y: object, n: int, n_name: str) -> np.ndarray:
    refuse_unordered(y, name)  # else "expected shape (n,) ..., got ()"
    if is_masked_array(y):  # np.asarray would score the labels under the mask
        y = unmasked(y, name, "labels", "fill them, or leave those rows out")
    arr = _read_labels(name, y)
    if arr.shape != (n,):
        raise ShapeError(f"{name}: expected shape ({n},) to match {n_name}, got {arr.shape}", name)
    if arr.dtype.kind in "fc" and not np.isfinite(arr).all():  # NaN equals no label: its rows would score 0 unseen
        row = int(np.flatnonzero(~np.isfinite(arr))[0])
        _refuse_nullable_missing(name, y, row)
        raise NonFiniteError(f"{name} holds {arr[row]} at row {row}; expected finite labels", name)
    if arr.dtype.kind == "c":  # else scikit-learn's "Complex data not supported", the whole array printed on lines of its own
        raise InvalidValueError(f"{name}: expected class labels (ints, strings, bools or whole floats), got complex "
                                f"numbers (dtype {arr.dtype}); take their real part, or number the classes", name)
    if arr.dtype == object:
        # first: pd.NA has no truth value (numpy 2 raises comparing it below, older numpy warns and says nothing)
        _refuse_missing_without_truth(name, arr)
    if arr.dtype.kind in "mMO":  # NaT, or NaN among objects: equal to no label either, not even itself
        try:
            odd = np.flatnonzero(arr != arr)
        except (TypeError, ValueError) as exc:  # objects of other kinds without a truth value
            raise InvalidValueError(f"{name}: labels that cannot be compared ({exc}); expected class labels", name) from None
        if odd.size:
            raise NonFiniteError(f"{name} holds {arr[odd[0]]} at row {odd[0]}; expected labels (NaN and NaT equal no label)", name)
    if arr.dtype == object and arr.size:
        # None (a missing value of an object column or a list) equals None: two events without a label
        # counted as one class, and retrieving each other scored as a hit
        missing = next((i for i, v in enumerate(arr) if v is None), None)
        if missing is not None:
            raise InvalidValueError(
                f"{name} holds None at row {missing}; expected a class label in every row (None marks a missing "
                "label, as NaN does, and is no class: leave those rows out)", name)
    if arr.dtype == object and arr.size:
        _refuse_infinite_objects(name, arr)
    _refuse_mixed_kinds(name, y, arr)  # after None, NaN and NaT: those are named as such
    _refuse_fractional(name, arr)
    if arr.dtype == object and arr.size:
        # ints or bools as objects (a pandas object column's .values): scikit-learn calls them "unknown" labels
        if all(isinstance(v, (bool, np.bool_)) for v in arr):
            arr = arr.astype(bool)
        elif all(is_int(v) for v in arr):
            try:
                arr = arr.astype(np.int64)
            except OverflowError:  # past int64: compared as the Python ints they are
                pass
        elif all(isinstance(v, (float, np.floating)) or (is_int(v) and abs(int(v)) <= 2**53) for v in arr):
            # whole floats as objects (fractional ones are refused above), ints among them exact in float64:
            # the retrieval scored them, scikit-learn's classifiers refused them as "unknown" labels
            arr = arr.astype(np.float64)
        elif all(_real_number(v) for v in arr):
            # whole Decimals or Fractions (fractional ones are refused above), beside ints or floats or not: the
            # ints they are, exactly; scikit-learn's classifiers refused them as of "no one label type (None,
            # or numbers mixed with strings?)", where the retrieval scored them
            arr = np.array([int(v) for v in arr], dtype=object)
            try:
                arr = arr.astype(np.int64)
            except OverflowError:  # past int64: compared as the Python ints they are
                pass
    return arr


def _real_number(value: Any) -> bool:
    """Whether a label is a real number that is no bool: an int, a float,
    a ``Fraction`` or a ``Decimal`` (which is no ``numbers.Real``)."""
    return isinstance(value, (numbers.Real, decimal.Decimal)) and not isinstance(value, (bool, np.bool_))


def _refuse_infinite_objects(name: str, arr: np.ndarray) -> None:
    """NonFiniteError naming the first infinite number among the object
    labels ``arr`` (a float, a numpy float, a ``Decimal``), as float labels'
    inf is refused: among objects (a pandas object column) inf was scored
    as a class by the retrieval, and scikit-learn's classifiers refused it
    in their own words ("Input train_y contains infinity"), with numpy's
    "invalid value encountered in cast". (NaN is refused before.)"""
    # by the labels' types first, at C speed: labels of no float or Decimal type (strings, ints: the common case)
    # hold no infinity, and need no pass in Python
    if not any(issubclass(kind, (float, np.floating, decimal.Decimal)) for kind in set(map(type, arr))):
        return
    for row, value in enumerate(arr):
        if not _real_number(value) or is_int(value):  # a Python int is finite, and past float64 math.isfinite fails
            continue
        try:  # numpy's floats by numpy (a long double past float64 is finite), others as Python reads them
            finite = np.isfinite(value) if isinstance(value, (float, np.floating)) else math.isfinite(value)
        except (OverflowError, ValueError):  # a number float() cannot read: not an infinity
            continue
        if not finite:
            raise NonFiniteError(f"{name} holds {value} at row {row}; expected finite labels", name)


#: Label types whose ``v != v`` is a bool: :func:`_refuse_missing_without_truth` need not try them.
_COMPARABLE_LABEL_TYPES = frozenset((str, bytes, int, float, bool, type(None), np.str_, np.int64, np.float64, np.bool_))


def _refuse_missing_without_truth(name: str, arr: np.ndarray) -> None:
    """InvalidValueError naming the first label of ``arr`` (objects) that
    is a missing value of no truth value, as pandas' ``NA`` (that of a
    nullable column, ``dtype="string"`` or ``"boolean"``), whose ``v != v``
    is ``NA`` itself: it was "labels that cannot be compared (boolean value
    of NA is ambiguous)" (numpy 2; older numpy warned and went on), naming
    no row and not saying a label was missing."""
    for kind in set(map(type, arr)) - _COMPARABLE_LABEL_TYPES:  # a look at one value of each other type
        row, value = next((i, v) for i, v in enumerate(arr) if type(v) is kind)
        try:
            compared = value != value
        except Exception:  # no comparison at all: the checks after this one name it
            continue
        if compared is value:  # pd.NA: a comparison with it is NA itself, of no truth value (an array's is an array)
            raise _missing_label(name, value, row)


def _refuse_nullable_missing(name: str, y: object, row: int) -> None:
    """InvalidValueError saying that row ``row`` of ``y`` is a missing label
    when ``y`` is a pandas nullable column (``Int64``, ``Float64``,
    ``boolean``) whose missing value (``pd.NA``) numpy read as NaN: it said
    "holds nan at row 2; expected finite labels", as if a number were wrong,
    where the same ``pd.NA`` among objects is named a missing label."""
    missing = getattr(getattr(y, "dtype", None), "na_value", None)
    if type(missing).__name__ != "NAType":  # numpy dtypes have no na_value; pandas' own NaN-valued ones keep NaN
        return
    raise _missing_label(name, missing, row)


def _missing_label(name: str, missing: Any, row: int) -> InvalidValueError:
    """The refusal of labels ``name`` whose row ``row`` holds pandas' ``NA``
    (``missing``): a missing label, whether among objects or in a nullable column."""
    return InvalidValueError(
        f"{name} holds {missing!r} at row {row}; expected a class label in every row ({missing!r} marks a missing "
        "label, as NaN and None do, and is no class: leave those rows out)", name)


def _refuse_fractional(name: str, arr: np.ndarray) -> None:
    """InvalidValueError for labels ``arr`` holding a float that is not a
    whole number (1.5): a measurement, not a class. scikit-learn's
    classifiers (the k-NN, the linear probe) refused them as "continuous",
    where the retrieval scored each distinct value as a class of its own;
    one rule now for every measure. Whole floats (1.0) stay classes."""
    if arr.dtype.kind == "f":
        rows = np.flatnonzero(arr != np.floor(arr))  # finite here: NaN and inf are refused before
        row = int(rows[0]) if rows.size else None
    elif arr.dtype == object:  # Fractions and Decimals too: the retrieval scored Fraction(1, 2) as a class
        if not any(issubclass(kind, _MAYBE_FRACTIONAL) for kind in set(map(type, arr))):  # ints, strings: no pass
            return
        row = next((i for i, v in enumerate(arr) if isinstance(v, _MAYBE_FRACTIONAL) and v != _floor(v)), None)
    else:
        return
    if row is not None:
        raise InvalidValueError(
            f"{name}: expected class labels (ints, strings, bools or whole floats), got continuous values "
            f"({arr[row]} at row {row}, dtype {arr.dtype}); round or bin them into classes first", name)


#: The label types that may hold a number that is not whole.
_MAYBE_FRACTIONAL = (float, np.floating, fractions.Fraction, decimal.Decimal)


def _floor(value: Any) -> Any:
    """The floor of a finite real label: numpy's floats by numpy (a long
    double past float64 stays one), a ``Fraction`` or ``Decimal`` by Python."""
    return np.floor(value) if isinstance(value, (float, np.floating)) else math.floor(value)


def _read_labels(name: str, y: object, read: Any = np.asarray) -> Any:
    """``read(y)`` (numpy's reading of labels, or their shape), or
    InvalidValueError naming ``name`` when numpy cannot read them (ragged
    lists, an ``__array__`` that fails or gives no array), as the features'
    :func:`as_real_array` says it: numpy's own ValueError named nothing. A
    scipy.sparse matrix is refused as the features' is (numpy read it as one
    object: "expected shape (6,) ..., got ()")."""
    try:
        refuse_sparse(y, name)
    except TypeError:  # its remedy, .toarray(), gives a row of labels [1, n]: refused in turn as no 1-D array
        raise TypeError(f"{name}: got a scipy.sparse {type(y).__name__} of shape {y.shape}; expected a 1-D array of "
                        f"labels: pass {name}.toarray().ravel()") from None
    try:
        arr = read(y)
    except Exception as exc:
        raise InvalidValueError(f"{name}: could not be read as an array of labels ({exc})", name) from None
    if isinstance(arr, np.ndarray) and arr.dtype == object and arr.ndim == 1 and isinstance(y, (list, tuple)) and any(
        isinstance(v, (list, tuple, np.ndarray)) for v in arr
    ):  # numpy < 1.24 reads a ragged list as objects (with a warning) where later ones refuse it
        raise InvalidValueError(f"{name}: could not be read as an array of labels (rows of different lengths: an "
                                "inhomogeneous shape)", name)
    return arr


def _label_kind(value: Any) -> str:
    """``"str"``, ``"bytes"`` or ``"other"`` (a number, a bool, any object):
    the kinds of label that :func:`_refuse_mixed_kinds` keeps apart."""
    return "str" if isinstance(value, str) else "bytes" if isinstance(value, bytes) else "other"


def _refuse_mixed_kinds(name: str, y: object, arr: np.ndarray) -> None:
    """InvalidValueError for labels ``y`` (read as ``arr``) that mix strings
    with numbers or other values (or str with bytes). numpy reads a list of
    them as strings: ``1`` and ``"1"`` became one class without a word,
    where the same labels as objects are two (the retrieval scored the two
    forms differently), and scikit-learn's classifiers refused the objects
    with "'<' not supported between instances of 'int' and 'str'", naming
    no argument. Only lists or tuples read as strings, and object arrays,
    are looked at (numpy's own string arrays hold strings only)."""
    if arr.dtype.kind in "US" and isinstance(y, (list, tuple)):
        items: Iterable[Any] = y
    elif arr.dtype == object:
        items = arr
    else:
        return
    # the labels' types, at C speed: one kind of label (the common case) needs no pass in Python
    kinds = {"str" if issubclass(k, str) else "bytes" if issubclass(k, bytes) else "other" for k in set(map(type, items))}
    if len(kinds) < 2:
        return
    first: Any = None  # (row, value, kind) of the first label
    for row, value in enumerate(items):
        kind = _label_kind(value)
        if first is None:
            first = (row, value, kind)
        elif kind != first[2]:
            from .types import bounded_repr  # on the error's path only, as _validation imports it

            def shown(at: int, v: Any) -> str:
                return f"{type(v).__name__} {bounded_repr(v)} at row {at}"

            other = value if first[2] != "other" else first[1]  # the label that is no text, if one is
            if {kind, first[2]} == {"str", "bytes"}:
                what = "str mixed with bytes"
            elif isinstance(other, (numbers.Number, np.number, np.bool_)):
                what = "numbers mixed with strings"
            else:
                what = "strings mixed with other objects"
            raise InvalidValueError(
                f"{name}: expected class labels of one kind, got {what} ({shown(first[0], first[1])}, "
                f"{shown(row, value)}): read as strings, 1 and '1' are one class, as objects two; convert them to "
                "one kind first, e.g. [str(v) for v in labels]", name)


def _unit_rows(name: str, x: np.ndarray) -> np.ndarray:
    unit, zero = _unit_or_zero(x)
    if zero.any():
        zero = np.flatnonzero(zero)
        raise InvalidValueError(
            f"{name} has {zero.size} all-zero rows (first: row {zero[0]}); cosine "
            "similarity is undefined for them, use metric='euclidean'",
            name,
        )
    return unit


def _unit_or_zero(x: np.ndarray) -> "tuple[np.ndarray, np.ndarray]":
    """The rows of the float array ``x`` divided by their L2 norms (all-zero
    rows left zero), and which rows are all zero. A row whose squares
    overflow or underflow ``x``'s dtype (its norm inf, or below the square
    root of the smallest normal number) is first scaled by a power of two,
    which changes no direction: else it became zeros, or its direction was
    lost to rounding."""
    with np.errstate(over="ignore", under="ignore"):  # found and redone below
        # np.linalg.norm(x, axis=1)'s own computation (the same values), without its checks and conj() copy
        norms = np.sqrt(np.add.reduce(x * x, axis=1, keepdims=True))
    in_range = (norms[:, 0] >= np.sqrt(np.finfo(x.dtype).tiny)) & (norms[:, 0] < np.inf)
    if not in_range.all():  # the pass over x that tells zero rows from tiny ones, only then
        redo = ~in_range & np.any(x != 0, axis=1)
        if redo.any():
            rows = x[redo]
            rows = np.ldexp(rows, -np.frexp(np.abs(rows).max(axis=1, keepdims=True))[1]).astype(x.dtype, copy=False)
            x, norms = x.copy(), norms.copy()
            x[redo], norms[redo] = rows, np.linalg.norm(rows, axis=1, keepdims=True)
    zero = norms[:, 0] == 0
    return (x / np.where(zero[:, None], 1, norms) if zero.any() else x / norms), zero


def cross_view_retrieval(
    query: np.ndarray,
    gallery: np.ndarray,
    labels: np.ndarray,
    metric: str = "cosine",
    *,
    chunk_size: IntLike = _DEFAULT_CHUNK,
) -> dict[str, float]:
    """Top-1 retrieval of each event's other view among all ``N`` events.

    ``query[i]`` and ``gallery[i]`` are two views (e.g. embeddings of two
    modalities) of the same event ``i``, with class ``labels[i]``. For every
    query ``i`` the nearest gallery row is

        nn(i) = argmin_j d(query[i], gallery[j]),   j over all N gallery rows,

    with ``d = 1 - cos(q, g)`` for ``metric="cosine"`` and ``d = ||q - g||``
    for ``metric="euclidean"``. The gallery *includes* the query's own event
    (that is what makes instance recall measurable). Exact distance ties go to
    the lowest gallery index: distances within rounding of the nearest are
    decided again in exact arithmetic on the rows as given, so duplicated
    gallery rows, rows of one direction (cosine: ``[1, 1]`` and ``[3, 3]``)
    and rows exactly as far (on a grid of 0.1 too) tie whatever the query's
    row, the other queries, ``chunk_size`` and the rows' lengths (cosine),
    on int64 and uint64 values beyond 2**53 too (timestamps, ids), beside
    floats or not.

        class_precision_at_1 = mean_i [labels[nn(i)] == labels[i]]
        instance_recall_at_1 = mean_i [nn(i) == i]

    Chance levels are ``sum_c (n_c / N)^2`` (0.1 for balanced 10 classes) and
    ``1 / N``.

    Protocol of the SPEC §3 CCA anchors (reproduced by
    :func:`grapheme_multimodal.anchors.cca_anchor`): scikit-learn
    ``CCA(n_components=10)`` fitted on the standardised 1,600 training events;
    query = CCA scores of the query view and gallery = CCA scores of the gallery
    view of the 400 held-out test events; ``metric="cosine"``; gallery includes
    the query's own event. Euclidean distance does not reproduce them:
    scikit-learn's x- and y-scores are on different scales, so zer->kar falls to
    ~0.12 with it.

    Args:
        query: ``[N, d]`` real array.
        gallery: ``[N, d]`` real array, row-aligned with ``query``.
        labels: ``[N]`` class labels of the events, of one kind (numbers
            mixed with strings, which numpy would read as strings, are refused);
            floats only when whole (1.5 is no class, as for the k-NN and probe).
        metric: ``"cosine"`` or ``"euclidean"``.
        chunk_size: at most this many query rows per block of the distance
            matrix (memory bound only; the rows found do not depend on it);
            fewer where a block of that many rows would take more than
            16 MiB, and fewer still, down to 256, where 4 MiB hold more
            (a gallery of more than 256 rows at the default 2048).

    Returns:
        ``{"class_precision_at_1": float, "instance_recall_at_1": float}``.
    """
    refuse_unpaired_frames((("query", query), ("gallery", gallery), ("labels", labels)))  # rows pair by position
    refuse_unpaired_columns(("query", query), ("gallery", gallery))  # one space: so do columns
    q = _finite_2d("query", query)
    g = _finite_2d("gallery", gallery)
    if g.shape != q.shape:
        raise ShapeError(
            f"gallery: expected the shape of query, {q.shape} (row-aligned events), got {g.shape}",
            "gallery",
        )
    y = _labels_1d("labels", labels, q.shape[0], "query rows")
    if not isinstance(metric, str) or metric not in _METRICS:  # an array would be "ambiguous truth value"
        raise InvalidValueError(f"metric: expected one of {_METRICS}, got {metric!r}", "metric")
    chunk_size = as_positive_int(chunk_size, "chunk_size")  # a wrong type a TypeError, as the package's other int arguments

    exact = ExactTies(metric, q, g)  # near ties decided on the rows as given (C order), exactly
    if metric == "cosine":
        # row by row: one scale for both made the rows of the smaller one zeros
        q = _unit_rows("query", q.astype(np.float64))
        g = _unit_rows("gallery", g.astype(np.float64))
        g_sq = rounded = None  # _rounding_bound's cosine bound covers integers rounded into float64
    else:
        # not copied: only read here, into the product's operands (each copy was one more temporary of the
        # data's size, whose pages were faulted in again at each call once the heap's top was handed back)
        # integers beyond 2**53, and long doubles: rounded into float64 below
        wide = [beyond_float64(a) or is_long_double(a) for a in (q, g)]
        q, g = _in_safe_range(*_exact_integer_columns(q, g), copy=False)
        rounded = _conversion_error(q, g, wide)
        q, g = _without_shared_offset(g, q, g)
        g_sq = np.einsum("ij,ij->i", g, g)

    n = q.shape[0]
    nearest = np.empty(n, dtype=np.int64)
    tolerance = _rounding_bound(metric, q, g_sq, rounded)
    if metric == "cosine":
        # argmax of cosine similarity == argmin of 1 - cos.
        left, right = q, g
    else:
        # ||q||^2 is constant within a row, so it does not change the argmin of g_sq - 2 q.g, which one product
        # gives: [-2 q, 1] @ [g, g_sq].T (the product, then *= -2 and += g_sq, were three passes over each block).
        # -2 q is exact, and the sum of d + 1 terms rounds within _rounding_bound; _settle_near_ties decides near
        # ties on values computed alike, so no row found changes. q and g are dropped once copied in.
        left = np.empty((n, q.shape[1] + 1))
        np.multiply(q, -2.0, out=left[:, :-1])
        left[:, -1] = 1.0
        right = np.empty((n, g.shape[1] + 1))
        right[:, :-1] = g
        right[:, -1] = g_sq
        q, g = None, right[:, :-1]
    row_bytes = 8 * max(n, 1)
    chunk_size = max(1, min(int(chunk_size), _BLOCK_BYTES // row_bytes, max(_MIN_BLOCK_ROWS, _CACHE_BYTES // row_bytes)))
    # one buffer for every block's scores: a block allocated anew each time was handed back to the system
    # and its pages faulted in again (2.5 times the time of the search at 1,000 rows of 64 columns)
    scores_buffer = np.empty((min(chunk_size, n), n))
    for start in range(0, n, chunk_size):
        rows = slice(start, min(start + chunk_size, n))
        scores = np.matmul(left[rows], right.T, out=scores_buffer[: rows.stop - start])
        nearest[rows] = _settle_near_ties(metric, scores, tolerance[rows], left[rows], g, exact=exact, start=start)

    # counts over n: np.mean's value (an exact count divided once), without its overhead
    return {
        "class_precision_at_1": int(np.count_nonzero(y[nearest] == y)) / n,
        "instance_recall_at_1": int(np.count_nonzero(nearest == np.arange(n))) / n,
    }


def _conversion_error(q: np.ndarray, g: np.ndarray, wide: "list[bool]") -> "tuple | None":
    """How far the Euclidean search's float64 rows ``q`` and ``g`` (as
    :func:`_in_safe_range` gave them, before any centring) may lie from the
    rows as given where ``wide`` says an array was of integers beyond
    2**53, which float64 rounds (by up to 256 near 2**61): ``(e_q, e_g)``,
    each query row's bound and one for every gallery row (``u |x|`` of a
    rounded row ``x``, 0 for an array held exactly), or ``None`` where
    neither was (floats, small integers: nothing computed). Of two such
    arrays, each column is shifted exactly first (:func:`_exact_integer_columns`)
    and the bound is that of the difference, rounded once."""
    if not any(wide):
        return None
    u = np.finfo(np.float64).eps / 2
    e_q = u * np.sqrt(np.einsum("ij,ij->i", q, q)) if wide[0] else np.zeros(q.shape[0])
    e_g = u * float(np.sqrt(np.einsum("ij,ij->i", g, g).max())) if wide[1] else 0.0
    return e_q, e_g


def _rounding_bound(
    metric: str, q: np.ndarray, g_sq: "np.ndarray | None", rounded: "tuple | None" = None,
) -> np.ndarray:
    """Per query row, how far apart two of its scores (``q @ g.T``, or
    ``||g||^2 - 2 q @ g.T`` for ``"euclidean"``) may lie when their exact
    values, or their values computed alike (:func:`_settle_near_ties`), are
    equal: four times the rounding error of either computation over ``d``
    columns (``d u`` of the sum of the products' magnitudes, ``(d + 1) u``
    for the Euclidean product, which adds ``||g||^2``; at most 1 for
    unit rows, at most ``(||q|| + max ||g||)^2`` else; ``g_sq``: the
    gallery rows' squared norms, ``None`` for cosine).

    ``rounded`` (Euclidean; :func:`_conversion_error`): where integers
    beyond 2**53 were rounded into float64 (``e`` = ``e_q + e_g`` of a query
    row), a squared distance on the rounded rows lies within
    ``2 reach e + e^2`` of that on the rows as given, so twice that is
    added, times two: a float query beside an int64 gallery of timestamps
    (or the reverse), centred, left the exact nearest row outside the
    candidates, and the core decided among the wrong ones. Cosine needs
    nothing more: a row rounded within ``u`` of its length moves its unit
    row by at most ``2 u``, which the bound's ``4 (d + 3) eps`` covers."""
    d = q.shape[1]
    eps = 4 * (d + 3) * np.finfo(np.float64).eps
    if metric == "cosine":
        return np.full(q.shape[0], eps)
    with np.errstate(over="ignore"):  # inf: every score a candidate, decided by _settle_near_ties alone
        reach = np.sqrt(np.einsum("ij,ij->i", q, q)) + np.sqrt(float(g_sq.max()))
        if rounded is None:
            return eps * reach * reach
        e = rounded[0] + rounded[1]
        return eps * reach * reach + 4 * e * (2 * reach + e)


def _settle_near_ties(
    metric: str, scores: np.ndarray, tolerance: np.ndarray, block: np.ndarray, g: np.ndarray,
    exact: "ExactTies | None" = None, start: int = 0,
) -> np.ndarray:
    """Each row's best of ``scores`` (a block of queries against the
    gallery ``g``: the largest for cosine, the smallest for Euclidean), with
    each row whose other scores lie within its ``tolerance`` of the best
    decided again among those candidates: on the similarity
    ``sum(q * g_j)`` (cosine) or the squared distance ``sum((g_j - q)^2)``,
    each pair's products summed alone in one order, the lowest index
    winning a tie.

    The matrix product rounds each query row's scores according to where
    the row lies in the block and the gallery row in the gallery (BLAS
    kernels for full tiles and for edges), so two identical gallery rows
    got scores a rounding apart, and which one a query found depended on
    its row, the other queries and ``chunk_size``, not on the documented
    lowest index. Rows with one candidate (almost all on real-valued data)
    keep the best found: the candidates hold every row the exact decision
    could pick. The best, its column (the first of equal ones, as argmax)
    and the runner-up come from one pass over the block (``_core.best_two``),
    where numpy's argmax and a max with the best masked took two, and made
    a search of a small gallery 13-50 % slower than one without the rule.

    ``block``: the product's left operand of the block's rows, the unit
    query rows (cosine) or ``[-2 q, 1]`` (Euclidean, whose query row is
    taken back exactly, times -0.5, for a row with near ties alone).

    ``exact``: the rows as the caller gave them (``start``: the block's
    first query row), on which the near rows are decided in exact
    arithmetic. Where the core can (:meth:`ExactTies.settle`: the values
    float64s) every near row's candidates go to it at once and it decides
    among them all: rows a timestamp dominates (every gallery row a
    candidate of every query) took a minute for 5,000 rows in per-row
    Python. The values computed alike below only narrow the candidates to
    those the exact decision could pick (its lowest index among the exactly
    nearest included), so the rows found are the same. Else (and with no
    ``exact``) each near row as follows. Values computed alike
    still round: unit rows by their length, so gallery rows of one
    direction and different lengths ([1, 1] and [3, 3]), or at one angle
    to a query ([1, 0] from [3, 3] and [2, -2]), tie in ``1 - cos`` but not
    in the similarities of their unit rows; and the differences and squares
    of rows on a grid of 0.1 (or centred) do not keep their exact ties
    either. The query found whichever rounded nearer, not the lower index,
    and scaling the gallery by 3 changed the cosine figures. Candidates
    within the tolerance of the nearest value computed alike are decided by
    ``exact`` (:class:`~grapheme_multimodal._exact_ties.ExactTies`)."""
    cosine = metric == "cosine"
    found, best, runner_up = _core.best_two(scores, cosine)
    with np.errstate(over="ignore", invalid="ignore"):
        threshold = best - tolerance if cosine else best + tolerance
        near = np.flatnonzero(runner_up >= threshold if cosine else runner_up <= threshold)
    if near.size and exact is not None:
        decided = exact.settle(start, scores, near, threshold[near])
        if decided is not None:
            found[near] = np.where(decided >= 0, decided, found[near])
            return found
    for i in near:
        candidates = np.flatnonzero(scores[i] >= threshold[i] if cosine else scores[i] <= threshold[i])
        if cosine:  # the largest similarity, as the smallest of its negatives
            alike = -(g[candidates] * block[i]).sum(axis=1)
        else:
            # the query row, exactly (-0.5 undoes the product's -2), made for a near tie's row alone: a
            # copy of every query row of the block, for the few near ties (none, mostly), was one more
            # temporary of the block's size at each search
            alike = np.square(g[candidates] - block[i, :-1] * -0.5).sum(axis=1)
        first = np.argmin(alike)
        tied = alike <= alike[first] + tolerance[i]
        found[i] = exact.nearest(start + i, candidates[tied]) if exact is not None and np.count_nonzero(tied) > 1 \
            else candidates[first]
    return found


def _classification_inputs(train_x, train_y, test_x, test_y):
    # rows pair with their labels by position: a data frame and a Series of them in another order scored wrongly
    refuse_unpaired_frames((("train_x", train_x), ("train_y", train_y)))
    refuse_unpaired_frames((("test_x", test_x), ("test_y", test_y)))
    refuse_unpaired_columns(("train_x", train_x), ("test_x", test_x))  # one feature space: columns pair by position
    tx = _finite_2d("train_x", train_x)
    ty = _labels_1d("train_y", train_y, tx.shape[0], "train_x rows")
    vx = _finite_2d("test_x", test_x)
    vy = _labels_1d("test_y", test_y, vx.shape[0], "test_x rows")
    if vx.shape[1] != tx.shape[1]:
        raise ShapeError(f"test_x has {vx.shape[1]} columns but train_x has {tx.shape[1]}", "test_x")
    return tx, ty, vx, vy


def _class_labels(
    train_y: np.ndarray, test_y: np.ndarray, at_least: int, names: "tuple[str, str]" = ("train_y", "test_y")
) -> "tuple[np.ndarray, np.ndarray]":
    """``train_y`` and ``test_y`` checked to be what scikit-learn's
    classifiers read: class labels (ints, strings, bools, whole floats),
    ``train_y`` with at least ``at_least`` classes; else scikit-learn's
    errors, which name neither ("Unknown label type: unknown"). ``names``:
    the two as the caller knows them (``train.labels`` for a split's).

    Returns the two as the classifiers are given them: as they are, or
    integers beyond int64 as their ranks (:func:`_int_label_codes`)."""
    from sklearn.utils.multiclass import type_of_target

    train_name, test_name = names
    try:
        classes = np.unique(train_y)  # of the labels as given, for the message below
    except TypeError as exc:  # objects that do not order (1 beside a tuple): numpy's error named no argument
        raise InvalidValueError(f"{train_name}: labels that cannot be ordered ({exc}); expected class labels of one "
                                "kind (ints, strings or bools)", train_name) from None
    train_y, test_y = _int_label_codes(train_y, test_y)
    for name, y in ((train_name, train_y), (test_name, test_y)):
        try:
            kind = type_of_target(y, input_name=name)
        except (TypeError, ValueError) as exc:
            raise InvalidValueError(f"{name}: expected class labels, got {describe(y)} ({exc})", name) from None
        if kind not in ("binary", "multiclass"):
            what = "values of no one label type (None, or numbers mixed with strings?)" if kind == "unknown" else f"{kind} values"
            raise InvalidValueError(f"{name}: expected class labels (ints, strings or bools), got {what} of dtype {y.dtype}", name)
    kinds = {name: "strings" if _holds_strings(y) else "numbers" for name, y in ((train_name, train_y), (test_name, test_y))}
    if kinds[train_name] != kinds[test_name]:  # scikit-learn's "Mix of label input types (string and number)" named neither
        raise InvalidValueError(
            f"{test_name}: labels are {kinds[test_name]} but {train_name}'{'' if train_name.endswith('s') else 's'} are "
            f"{kinds[train_name]}; expected labels of the same kind", test_name)
    if classes.size < at_least:
        raise InvalidValueError(
            f"{train_name}: expected at least {at_least} classes, got only {classes.tolist()}", train_name
        )
    return train_y, test_y


def _int_label_codes(train_y: np.ndarray, test_y: np.ndarray) -> "tuple[np.ndarray, np.ndarray]":
    """``train_y`` and ``test_y`` as int64 ranks among the labels of both
    when one holds integers beyond int64 (Python ints as objects, which
    :func:`_labels_1d` keeps as they are) and the other integers too; else
    as they are. scikit-learn calls such labels of "unknown" type (they
    were refused as "None, or numbers mixed with strings?", where the
    retrieval scores them); their ranks keep their order, so the k-NN's
    vote ties still go to the smallest label, and equal labels equal codes."""
    def ints(y: np.ndarray) -> bool:
        return y.dtype.kind in "iu" or (y.dtype == object and all(is_int(v) for v in y))

    if not any(y.dtype == object for y in (train_y, test_y)) or not (ints(train_y) and ints(test_y)):
        return train_y, test_y
    # Python ints, compared exactly (numpy's integers beside ints past int64 need not be)
    both = np.array([int(v) for v in train_y] + [int(v) for v in test_y], dtype=object)
    codes = np.unique(both, return_inverse=True)[1].astype(np.int64).reshape(-1)
    return codes[: train_y.size], codes[train_y.size :]


def _holds_strings(y: np.ndarray) -> bool:
    """Whether the labels ``y`` are strings (a str dtype, or objects that are
    str; :func:`_class_labels` has refused objects of mixed kinds)."""
    return y.dtype.kind in "US" or (y.dtype.kind == "O" and any(isinstance(v, str) for v in y))


def _columns_in_safe_range(train: np.ndarray, test: np.ndarray) -> tuple:
    """``train`` and ``test`` (with the same columns) as float64, each column
    scaled by one power of two when its largest magnitude in ``train`` is
    beyond ``2**±500``: squared there, a column's variance overflows (the
    probe saw NaN) or underflows to 0 (the probe saw a constant). Judged on
    ``train``, whose variance the probe standardises by: judged with
    ``test`` too, one test row of 1e300 scaled training values near 1 to
    1e-300, their variance to 0, and the probe predicted one class.
    ``test`` is scaled alike, by at most what keeps it below ``2**1000``.
    Standardised, a column scaled by a power of two is the same; values in
    range are unscaled."""
    tx, vx = train.astype(np.float64), test.astype(np.float64)
    shift = _column_shift(tx)
    if shift is None:
        return tx, vx
    shift = np.minimum(shift, 1000 - np.frexp(np.abs(vx).max(axis=0))[1])
    return np.ldexp(tx, shift), np.ldexp(vx, shift)


def _column_shift(*arrays: np.ndarray) -> "np.ndarray | None":
    """Per column of ``arrays`` (float64, the same columns), the power of two
    that brings its largest magnitude below 1 where that is beyond
    ``2**±500`` (0 elsewhere); ``None`` when every column is in range."""
    top = np.max([np.abs(a).max(axis=0) for a in arrays], axis=0)
    far = (top != 0) & ((top > _SAFE_MAX) | (top < _SAFE_MIN))
    return np.where(far, -np.frexp(top)[1], 0) if far.any() else None


def _sklearn(what: str):
    try:
        import sklearn  # noqa: F401
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(
            f"{what} needs scikit-learn: pip install 'grapheme-multimodal[sklearn]'",
            name="sklearn",
        ) from err


def _check_neighbours(k: Any, train_rows: int) -> None:
    """Refuses a ``k`` that :func:`knn_accuracy` cannot vote with over
    ``train_rows`` training rows: a TypeError for a wrong type (2.5, "3",
    True, None), as the package's other int arguments, else an
    InvalidValueError. Callers that do other work first check it up front."""
    expected = f"an int in [1, {train_rows}] (the number of train rows)"
    if not is_int(k):
        raise wrong_type("k", expected, k)
    if not 1 <= k <= train_rows:
        from .types import bounded_repr  # on the error's path only, as _validation imports it

        # "k: expected ..., got ..." as the package's other argument checks (was "k must be an integer in ...")
        raise InvalidValueError(f"k: expected {expected}, got {bounded_repr(k)}", "k")


def knn_accuracy(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    k: IntLike = 5,
) -> float:
    """Accuracy of a k-nearest-neighbour majority vote (Euclidean distance).

        pred(x) = argmax_c #{j in kNN_train(x) : train_y[j] == c}
        accuracy = mean_i [pred(test_x[i]) == test_y[i]]

    Uniform weights; vote ties go to the smallest class label. This is
    scikit-learn's ``KNeighborsClassifier(n_neighbors=k).fit(train_x,
    train_y).score(test_x, test_y)``, which is used as-is so the SPEC §3 anchors
    are reproduced exactly (scikit-learn is imported lazily).
    """
    tx, ty, vx, vy = _classification_inputs(train_x, train_y, test_x, test_y)
    _check_neighbours(k, tx.shape[0])
    _sklearn("knn_accuracy")
    ty, vy = _class_labels(ty, vy, at_least=1)
    from sklearn.neighbors import KNeighborsClassifier

    from ._threadpools import one_blas_thread

    tx, vx = _exact_integer_columns(tx, vx)
    if _out_of_range(tx, vx):
        tx, vx = _in_safe_range(tx, vx)  # else sklearn's distances overflow and every neighbour ties
    tx, vx = _without_shared_offset(tx, tx, vx)  # else its brute-force distances lose the rows' differences
    classifier = KNeighborsClassifier(n_neighbors=int(k)).fit(tx, ty)
    # scikit-learn's search limits BLAS to one thread around its distances with threadpoolctl, whose
    # limits on several threads at once left BLAS on one thread for the rest of the process; inside
    # one limit shared by every thread, its own finds 1 and puts back 1. (BLAS is on one thread for
    # the distances either way: the same figures.)
    with one_blas_thread():
        return float(classifier.score(vx, vy))


def linear_probe_accuracy(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    C: float = 1.0,  # noqa: N803 - scikit-learn's name
) -> float:
    """Test accuracy of a linear probe: multinomial logistic regression fitted
    on ``train_x`` (standardised with the training statistics).

    This is scikit-learn's ``make_pipeline(StandardScaler(),
    LogisticRegression(C=C, max_iter=5000)).fit(train_x, train_y).score(test_x,
    test_y)`` (L-BFGS, deterministic); how linearly the classes separate in a
    representation, the usual read-out of a self-supervised embedding.
    """
    tx, ty, vx, vy = _classification_inputs(train_x, train_y, test_x, test_y)
    # the penalty scikit-learn weighs by is 1 / C: of a C below 1 / float64's largest it is inf, and
    # L-BFGS stopped at once on NaN ("lbfgs failed to converge after 0 iterations") with an accuracy
    C = as_finite_float(  # noqa: N806 - numpy numbers too
        C, "C", lambda c: c > 0 and float(c) >= 1 / _FLOAT64_MAX, f"a positive number >= {1 / _FLOAT64_MAX:.3g}"
    )
    _sklearn("linear_probe_accuracy")
    ty, vy = _class_labels(ty, vy, at_least=2)
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    tx, vx = _columns_in_safe_range(*_exact_integer_columns(tx, vx))
    constant = _constant_columns(tx)
    if constant.any():  # standardised by scikit-learn, their mean's rounding was left as their value
        offset = np.where(constant, tx[0], 0.0)
        tx, vx = tx - offset, vx - offset
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=5000))
    return float(probe.fit(tx, ty).score(vx, vy))


def roc_auc(positive_scores: np.ndarray, negative_scores: np.ndarray) -> float:
    """Area under the ROC curve: the probability that a positive outscores a negative.

        AUC = (1 / (P * N)) * sum_{p, n} ( [s_p > s_n] + 0.5 * [s_p == s_n] )

    (the Mann-Whitney U statistic over P positive and N negative scores; equal to
    scikit-learn's ``roc_auc_score``). Scores are real numbers: integers,
    floats, or bools (True scores above False, as ``roc_auc_score`` ranks
    them). Computed in O((P + N) log N) by sorting the negatives, with no
    P x N matrix.
    """
    pos = as_real_array(positive_scores, "positive_scores")  # masked entries refused, not read as scores
    neg = as_real_array(negative_scores, "negative_scores")
    scores = []
    for name, arr in (("positive_scores", pos), ("negative_scores", neg)):
        if arr.ndim != 1 or arr.size == 0:
            raise ShapeError(f"{name}: expected a non-empty 1-D array, got shape {arr.shape}", name)
        if arr.dtype == np.bool_:  # was refused, "expected real numbers, got dtype bool"; roc_auc_score ranks them
            arr = arr.view(np.uint8)
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise TypeError(f"{name}: expected real numbers, got dtype {arr.dtype}")
        refuse_beyond_memory(arr, name, np.float64)  # compared in float64
        if not np.isfinite(arr).all():
            at = int(np.flatnonzero(~np.isfinite(arr))[0])
            raise NonFiniteError(f"{name} contains NaN or inf: index {at} holds {arr[at]}; expected finite scores", name)
        scores.append(arr)
    pos, neg = _comparable(*scores)
    neg_sorted = np.sort(neg)
    below = np.searchsorted(neg_sorted, pos, side="left")  # negatives strictly lower
    below_or_tied = np.searchsorted(neg_sorted, pos, side="right")
    wins = below.sum(dtype=np.float64) + 0.5 * (below_or_tied - below).sum(dtype=np.float64)
    return float(wins / (pos.size * neg.size))


def _comparable(*arrays: np.ndarray) -> tuple:
    """``arrays`` in one dtype that keeps their order: float64 (long double
    when one is a long double), unless an integer beyond 2**53 would round
    there (2**63 - 1 and 2**63 - 2 became one float, a tie: an AUC of 0.5 for
    scores that never tie); then Python numbers, which compare ints and
    floats exactly."""
    if any(beyond_float64(a) for a in arrays):
        return tuple(np.array(a.tolist(), dtype=object) for a in arrays)
    # long doubles compare as such: in float64 scores 2**-60 apart, or beyond float64 (inf), tied
    wide = any(is_long_double(a) for a in arrays)
    return tuple(a.astype(np.longdouble if wide else np.float64) for a in arrays)


def unit_side_by_side(views: Mapping[Any, np.ndarray], names: Sequence[Any]) -> np.ndarray:
    """Each view's rows L2-normalised (zero rows stay zero), the views
    ``names`` side by side: every view weighs the same in a distance.

    Args:
        views: view name -> finite real ``[n, d_v]`` array, the same ``n`` for all.
        names: the views to put side by side, in order (at least one; a list or
            tuple, not a set, whose order is none).

    Returns:
        ``[n, sum d_v]``, in the views' float dtype (float32 at least: a
        float16 norm lost the rows' length), float64 for integers and bools.
    """
    if not isinstance(views, Mapping):
        raise TypeError(f"views: expected a mapping view name -> [n, d] array, got {describe(views)}")
    if isinstance(names, (str, bytes, Mapping)) or not is_iterable(names):
        # list(None) raised "'NoneType' object is not iterable", naming nothing, and a str was read as its letters
        raise TypeError(f"names: expected a sequence of view names, got {describe(names)}"
                        + (f" (pass [{names!r}] for one view)" if isinstance(names, str) else ""))
    if isinstance(names, (set, frozenset)):  # its columns came in hash order, which moves from one process to the next
        raise TypeError(f"names: got a {type(names).__name__}; expected view names in the order of the columns, "
                        "e.g. a list or tuple (a set has no order)")
    names = list(names)
    if not names:
        raise InvalidValueError("names: expected at least one view name, got none", "names")
    unhashable = next((v for v in names if not isinstance(v, Hashable)), None)
    if unhashable is not None:  # else `v not in views` raised "unhashable type", naming nothing
        raise TypeError(f"names: expected view names (keys of views), got {describe(unhashable)}")
    missing = [v for v in names if v not in views]
    if missing:
        raise InvalidValueError(f"names: {missing} not in views (which has {list(views)})", "names")
    repeated = next((v for i, v in enumerate(names) if v in names[:i]), None)
    if repeated is not None:  # its columns went in twice: that view weighed twice the others in every distance
        raise InvalidValueError(f"names: {repeated!r} is given twice; expected distinct view names (each view weighs "
                                "the same)", "names")
    refuse_unpaired_frames((f"views[{v!r}]", views[v]) for v in names)  # side by side, row by row
    arrays = [_finite_2d(f"views[{v!r}]", views[v]) for v in names]
    if len({a.shape[0] for a in arrays}) > 1:
        raise ShapeError(f"views: expected the same rows in every view, got {[a.shape[0] for a in arrays]}", "views")
    # integers in float64, as the docstring says: promote_types(int8, float32) is float32, and uint8 pixels or
    # int16 counts were normalised in float32 (float64 from int32 up), the side by side float32 or float64 by width
    dtypes = [np.dtype(np.float64) if a.dtype.kind in "iub" else np.promote_types(a.dtype, np.float32) for a in arrays]
    return np.hstack([_unit_or_zero(a.astype(dtype, copy=False))[0] for a, dtype in zip(arrays, dtypes)])
