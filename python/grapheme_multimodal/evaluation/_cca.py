"""Closed-form CCA of two views in float64 — the anchor a researcher compares with.

scikit-learn's ``CCA`` is iterative (NIPALS with capped iterations) and its
scores are not canonical variates of unit variance; this is the textbook
solution, in a few lines of numpy, so the package needs no CCA library at
run time (cca-zoo, which agrees with it, needs Python >= 3.11).
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple, Union

import numpy as np

from .._validation import (
    FloatLike, IntLike, as_finite_float, as_real_array, exact_int, is_int, refuse_beyond_budget, wrong_type,
)
from .._frames import named_columns, refuse_reordered_columns, refuse_unpaired_frames
from .._exact_ints import Offset, beyond_float64, column_minimum, is_long_double, minus, plus
from .._portable import PortablePickle
from .._threadpools import one_blas_thread
from ..exceptions import InvalidValueError, NonFiniteError, ShapeError, not_fitted_error
from ..metrics import _column_means, _finite_2d

__all__ = ["ExactCCA"]


def _power_of_two_scale(centred: np.ndarray) -> float:
    """A power of two that brings the view's largest magnitude near 1.

    CCA does not depend on a view's scale, but its covariances do: values
    near 1e200 overflow ``XᵀX`` and values near 1e-200 underflow it to 0,
    which gave a LinAlgError or correlations of 1e-143. Dividing by a power
    of two is exact, so ordinary views give the same bits as unscaled."""
    largest = float(np.abs(centred).max()) if centred.size else 0.0
    # at most 2**1023: values near float64's largest rounded up to 2**1024, which is inf
    return float(2.0 ** min(np.round(np.log2(largest)), 1023.0)) if largest > 0 else 1.0


def _view_scales(centred: np.ndarray) -> np.ndarray:
    """Per column, the power of two to divide the centred view by: the
    view's own (:func:`_power_of_two_scale`, which brings its largest
    magnitude near 1), times a power of two near the column's root mean
    square relative to the largest column's.

    CCA does not depend on a column's scale, but the ridge does: it is one
    number for the whole view (``reg`` times the mean variance), so a column
    1e30 times the others made it 1e60 times their variances, and their
    correlations came out near 0 (true CCA: 1). Columns brought to one scale
    are shrunk alike, as by a ridge on each column's own variance, whatever
    unit each was given in; relative to the largest column's, the scales
    do not depend on the view's own scale either. Powers of two divide
    exactly, and the columns of a standardised view (root mean squares all
    near 1) are all divided by the view's scale alone: the same bits as
    before columns were scaled."""
    largest = float(np.abs(centred).max()) if centred.size else 0.0
    if largest == 0:
        return np.ones(centred.shape[1])
    overall = min(float(np.round(np.log2(largest))), 1023.0)
    peaks = np.abs(centred).max(axis=0)
    safe = np.where(peaks > 0, peaks, 1.0)
    # each column's root mean square from its values divided by its largest: no square overflows or underflows
    rms = safe * np.sqrt(np.mean(np.square(centred / safe), axis=0))
    # in logarithms: the ratio of a column of 1e-300 to one of 1e300 is 0 in float64
    relative = np.where(rms > 0, np.round(np.log2(np.where(rms > 0, rms, 1.0)) - np.log2(rms.max())), 0.0)
    # one power of two per column (ldexp: exact), not the product of two, which could round below the smallest
    return np.ldexp(1.0, np.clip(overall + relative, -1074, 1023).astype(np.int64))


def _offset_scale(view: np.ndarray) -> float:
    """1, or a power of two to divide a view of huge values by before it is
    centred: the column sums behind its mean, and values minus the mean, of
    rows near float64's largest overflowed to inf (numpy's "Eigenvalues did
    not converge"). Views whose sums cannot overflow are not divided, so
    their bits are as before."""
    largest = float(np.abs(view).max())
    if largest * 2 * view.shape[0] < np.finfo(np.float64).max:
        return 1.0
    return _power_of_two_scale(view)


def _exact_offset(view: np.ndarray) -> Optional[Offset]:
    """Each column's smallest value, exactly, for an integer view holding a
    value beyond ``2**53``, or for a long double view (cast to float64 as
    it was, its variation below float64's spacing was lost, and columns
    near 1 that differ by 2**-60 were refused as "every column is constant
    (all rows alike)", or weighed 0 beside others, where
    :func:`~grapheme_multimodal.datasets.standardize` keeps them); else None
    (the view is cast to float64 as it is, bit for bit as before)."""
    return column_minimum(view) if is_long_double(view) or beyond_float64(view) else None


def _as_float64(view: np.ndarray, offset: Optional[Offset]) -> np.ndarray:
    # a float view (of a fit on integers) is shifted in float64: its values are rounded already
    return view.astype(np.float64) if offset is None else minus(view, offset)


def _inverse_sqrt(cov: np.ndarray, reg: float, n_rows: int) -> np.ndarray:
    """``(C + r I)^(-1/2)`` with the ridge ``r = reg * trace(C) / d`` (scale-free),
    0 in the directions the ``n_rows`` rows behind ``C`` do not vary in.

    Those directions (eigenvalues within rounding of 0: a column constant
    in the rows, columns that combine others, fewer rows than columns) were
    whitened by ``1 / sqrt(r)`` alone, about 1000 times the others: the
    components past the view's rank, of correlation 0, scored other rows by
    that much times their parts outside the rows' span (a test row with a
    flag never set in training: 1153 beside about 3), which took over a
    cosine retrieval. A view of full rank gets the same bits as before."""
    values, vectors = np.linalg.eigh(cov)
    ridge = reg * max(float(np.trace(cov)) / cov.shape[0], np.finfo(np.float64).tiny)
    # rounding of XᵀX: about n eps of the largest eigenvalue (matrix_rank's tolerance, for n rows of d columns)
    null = values <= float(values[-1]) * max(n_rows, cov.shape[0]) * np.finfo(np.float64).eps
    values = np.maximum(values, 0.0) + ridge
    # a null direction whose ridge underflowed (reg 5e-324): 1/0, or 0/0 where its eigenvector has an exact 0 (a
    # constant column's), zeroed below; numpy's "invalid value encountered in divide" said nothing was wrong
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = vectors / np.sqrt(values)
    if null.any():
        scaled[:, null] = 0.0
    return scaled @ vectors.T


def _unshifted(mean: np.ndarray, offset: Optional[Offset]) -> np.ndarray:
    """A shifted view's column means as the view's own (rounded to float64)."""
    return mean if offset is None else plus(offset, mean)


def _one_column_if_1d(view: Any, name: str) -> np.ndarray:
    """``view`` as an array, one column ``[n, 1]`` when it is 1-D, as
    scikit-learn's ``CCA`` reads its ``Y`` (a target ``y``); a 1-D ``X`` is
    not passed here and stays refused, as there. It refused a 1-D ``Y`` as "expected a 2-D array"."""
    arr = as_real_array(view, name)  # read once: a data frame is not converted again by _finite_2d
    return arr.reshape(-1, 1) if arr.ndim == 1 else arr


#: What fit sets (arrays, and tuples of them), pickled by :mod:`.._portable`.
_FITTED_STATE = ("x_mean_", "y_mean_", "x_weights_", "y_weights_", "correlations_", "_x_offset", "_y_offset",
                 "_x_int_offset", "_y_int_offset", "_x_scaled_weights", "_y_scaled_weights", "_x_scale", "_y_scale",
                 "_x_columns", "_y_columns")


class ExactCCA(PortablePickle):
    """Canonical correlation analysis of two views, solved in closed form.

    With centred views ``X [n, p]`` and ``Y [n, q]``, each column first
    divided by a power of two near its root mean square (so the ridge
    shrinks every column alike, whatever its unit: CCA does not depend on a
    column's scale), covariances ``Cxx = XᵀX/(n-1) + r_x I`` (ridge
    ``r_x = reg · trace/p``, likewise ``Cyy``) and ``Cxy = XᵀY/(n-1)``:

        U S Vᵀ = svd(Cxx^(-1/2) Cxy Cyy^(-1/2))
        x_weights_ = Cxx^(-1/2) U[:, :k],   y_weights_ = Cyy^(-1/2) V[:, :k]

    so the scores ``(X - mean) x_weights_`` have unit variance per component
    on the training data and ``correlations_ = S[:k]`` (at most 1, where
    rounding carried a singular value past it). Everything is float64.
    ``C^(-1/2)`` is taken as 0 in the directions in which fit's rows do not
    vary (a view of rank below its columns: a column constant over them,
    columns that combine others, fewer rows than columns), so no weight
    falls there: other rows' parts outside the span of fit's rows score
    nothing (whitened by ``1 / sqrt(r)`` alone, they scored about a thousand
    times the rest). Components past either view's rank have correlation 0.
    An integer view holding values beyond ``2**53`` (which float64 cannot
    all hold: timestamps in nanoseconds, ids) is first shifted by each
    column's smallest value, exactly, as the :mod:`~grapheme_multimodal.metrics`
    shift such integers: CCA does not depend on a column's offset, and
    :meth:`transform` shifts its rows alike. So is a long double view, in
    long double (its variation below float64's spacing is kept).

    The interface is scikit-learn's ``CCA``: ``fit(X, Y)``, ``transform(X, Y)``
    → ``(x_scores, y_scores)``, ``fit_transform``, ``get_params`` and
    ``set_params`` (so ``sklearn.base.clone`` copies it). As there, a 1-D
    ``Y`` (a target ``y``) is read as one column, and a 1-D ``X`` is refused.

    >>> rng = np.random.default_rng(0)
    >>> z = rng.normal(size=(500, 2))
    >>> X = z @ rng.normal(size=(2, 6)) + 0.1 * rng.normal(size=(500, 6))
    >>> Y = z @ rng.normal(size=(2, 4)) + 0.1 * rng.normal(size=(500, 4))
    >>> cca = ExactCCA(n_components=3).fit(X, Y)
    >>> np.round(cca.correlations_, 2)
    array([1.  , 0.99, 0.12])
    """

    # the fitted arrays as bytes, dtype and shape: a pickle of numpy 2 loads under numpy 1, and back (_portable.py)
    _PORTABLE_KEYS = _FITTED_STATE

    def __init__(self, n_components: IntLike = 2, *, reg: FloatLike = 1e-6) -> None:
        self.n_components = n_components
        self.reg = reg

    def get_params(self, deep: bool = True) -> Dict[str, Any]:
        """The constructor's arguments, as scikit-learn's estimators give
        them (``sklearn.base.clone`` and grid searches read them)."""
        return {"n_components": self.n_components, "reg": self.reg}

    def set_params(self, **params: Any) -> "ExactCCA":
        """Sets constructor arguments (checked by the next :meth:`fit`), as
        scikit-learn's ``set_params``; an unknown name is refused."""
        unknown = sorted(set(params) - set(self.get_params()))
        if unknown:  # else set as an attribute that nothing reads
            raise InvalidValueError(f"set_params: unknown parameters {unknown}; expected {sorted(self.get_params())}", "params")
        for name, value in params.items():
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        return f"ExactCCA(n_components={self.n_components!r}, reg={self.reg!r})"

    def __sklearn_tags__(self) -> Any:
        """scikit-learn's tags (read by ``Pipeline`` and the like from
        scikit-learn 1.6 on; from 1.7 an estimator without them is refused):
        those of its ``CCA``, a transformer that needs ``Y`` to fit (one
        column or several, a 1-D ``Y`` read as one), whose inputs are finite
        float64 numbers. scikit-learn is imported here
        only: nothing else of the class needs it."""
        from sklearn.utils import InputTags, Tags, TargetTags, TransformerTags

        return Tags(estimator_type=None, target_tags=TargetTags(required=True, multi_output=True, single_output=True),
                    transformer_tags=TransformerTags(preserves_dtype=["float64"]), input_tags=InputTags())

    def fit(self, X: np.ndarray, Y: np.ndarray) -> "ExactCCA":  # noqa: N803 - scikit-learn's names
        """Fits the canonical weights on the paired rows of ``X`` and ``Y``."""
        if Y is None:  # a pipeline's fit(X) passes y=None: "got array of shape () and dtype object (one NoneType)"
            raise TypeError("Y: got None; expected the second view, an [n, q] array of the rows of X (CCA correlates "
                            "two views: fit(X, Y), or pipeline.fit(X, Y))")
        # rows pair by position: data frames of the same samples in another order fitted wrongly, without a word
        refuse_unpaired_frames((("X", X), ("Y", Y)))
        x, y = _finite_2d("X", X), _finite_2d("Y", _one_column_if_1d(Y, "Y"))
        # integers beyond 2**53 (and long doubles) shifted exactly, not rounded: rows a few units apart were one
        # value in float64
        x_int_offset, y_int_offset = _exact_offset(x), _exact_offset(y)
        x, y = _as_float64(x, x_int_offset), _as_float64(y, y_int_offset)
        # "X: ..." as every other refusal here: the retrievals that fit it rename X and Y to their own arguments
        if x.shape[0] < 2:
            raise ShapeError(f"X: has {x.shape[0]} row; expected at least 2 to estimate covariances", "X")
        if x.shape[0] != y.shape[0]:
            raise ShapeError(f"Y: has {y.shape[0]} rows but X has {x.shape[0]}; expected the same rows (paired samples)", "Y")
        k, n_rows = self.n_components, x.shape[0]
        most = min(x.shape[1], y.shape[1])
        expected = f"an int in [1, {most}] (the smaller view's columns)"
        if not is_int(k):  # a wrong type: a TypeError, as the retrievals' as_positive_int and cca_anchor say it
            raise wrong_type("n_components", expected, k)
        k = exact_int(k)  # a 0-d array too: the int it holds
        if not 1 <= k <= most:
            from ..types import bounded_repr  # on the error's path only, as the metrics do

            # "n_components: expected ..., got ..." as cca_anchor and the package's other argument checks
            raise InvalidValueError(f"n_components: expected {expected}, got {bounded_repr(k)}", "n_components")
        reg = as_finite_float(self.reg, "reg", lambda r: r > 0, "a positive number")  # numpy numbers too
        for name, view in (("X", x), ("Y", y)):
            # a view's [d, d] covariance, its eigenvectors and the whitening made of them are held at once:
            # 40,000 columns needed 4 x 12 GiB, and numpy's bare MemoryError or the OOM killer ended the fit
            d = view.shape[1]
            refuse_beyond_budget(4 * d * d * 8, name, "{d:,} columns need {d:,} x {d:,} covariance and whitening matrices "
                                 "({bytes} bytes in all)", remedy="fewer columns (reduce the view first, e.g. with PCA)", d=d)
        for name, view in (("X", x), ("Y", y)):
            # nothing to correlate: the centred rounding of its mean was whitened into weights of ~1e157, and
            # transform's scores of other rows were that large and meaningless (a retrieval figure of noise)
            if not (view != view[0]).any():  # compared, not subtracted: nothing to overflow
                raise InvalidValueError(f"{name}: every column is constant (all {n_rows} rows alike), which leaves CCA "
                                        "nothing to correlate; expected a view whose values vary", name)
        x_offset_scale, y_offset_scale = _offset_scale(x), _offset_scale(y)
        x, y = x / x_offset_scale, y / y_offset_scale  # exact: powers of two
        # a constant column's mean rounded off its value (by 7.5e26 for 500 rows of 7e40): that
        # residue, left in every row, outweighed the other columns and every correlation was 0
        x_mean, y_mean = _column_means(x), _column_means(y)
        x = x - x_mean
        y = y - y_mean
        # the view near 1 and its columns on one scale (powers of two): XᵀX neither overflows (1e200) nor
        # underflows (1e-200), and the ridge shrinks every column alike whatever its unit
        x_scale, y_scale = _view_scales(x), _view_scales(y)
        x, y = x / x_scale, y / y_scale
        n = x.shape[0]
        # one BLAS thread: on OpenBLAS's default threads the weights, correlations and scores of the same views
        # differed in their last bits from one thread count to another (what compute_anchors ran them on already)
        with one_blas_thread():
            whiten_x = _inverse_sqrt(x.T @ x / (n - 1), reg, n)
            whiten_y = _inverse_sqrt(y.T @ y / (n - 1), reg, n)
            u, s, vt = np.linalg.svd(whiten_x @ (x.T @ y / (n - 1)) @ whiten_y, full_matrices=False)
            x_weights, y_weights = whiten_x @ u[:, :k], whiten_y @ vt[:k].T
        # Set together once all is computed, in one dict update (atomic under the GIL): a refit that failed
        # halfway (a MemoryError, or LinAlgError "SVD did not converge") kept the old weights beside the new
        # means, and a transform in another thread read some attributes of each fit; either way it scored
        # with a mix of the two fits without a word.
        with np.errstate(over="ignore", under="ignore"):  # the views' own weights; transform scales instead (subnormal views)
            x_weights_ = x_weights / x_scale[:, None] / x_offset_scale
            y_weights_ = y_weights / y_scale[:, None] / y_offset_scale
        self.__dict__.update({
            "x_mean_": _unshifted(x_mean * x_offset_scale, x_int_offset),
            "y_mean_": _unshifted(y_mean * y_offset_scale, y_int_offset),
            "_x_offset": (x_offset_scale, x_mean), "_y_offset": (y_offset_scale, y_mean),
            # named for integers, the first views shifted: a long double view's offset too (pickles keep the name)
            "_x_int_offset": x_int_offset, "_y_int_offset": y_int_offset,
            "_x_scaled_weights": x_weights, "_y_scaled_weights": y_weights,
            "_x_scale": x_scale, "_y_scale": y_scale,
            "x_weights_": x_weights_, "y_weights_": y_weights_,
            # at most 1, as every correlation: the singular values of the whitened cross-covariance round past
            # it (1.0000000000058 of views with more columns than rows and a tiny reg), a correlation above 1
            "correlations_": np.minimum(s[:k], 1.0),
            # column names of data frames: transform refuses the same names in another order, as scikit-learn's CCA does
            "_x_columns": named_columns(X), "_y_columns": named_columns(Y),
        })
        return self

    def transform(
        self, X: np.ndarray, Y: Optional[np.ndarray] = None  # noqa: N803
    ) -> Union[np.ndarray, Tuple[np.ndarray, np.ndarray]]:
        """Canonical scores ``[n, k]`` of ``X``, and of ``Y`` when given
        (float64). Before :meth:`fit`, a
        :class:`~grapheme_multimodal.exceptions.NotFittedError` (scikit-learn's
        ``NotFittedError`` too, where scikit-learn is installed)."""
        # one snapshot of the fitted state (a dict copy is atomic under the GIL): read attribute by attribute, a
        # refit in another thread (or by X's own reading) between them gave X's scores of one fit and Y's of the other
        state = dict(self.__dict__)
        if "x_weights_" not in state:  # a RuntimeError was what no scikit-learn caller catches
            raise not_fitted_error("ExactCCA: not fitted yet; call fit(X, Y) before transform")
        # a fit pickled before the offset scale existed centred the view as it was given
        x_offset = state.get("_x_offset", (1.0, state["x_mean_"]))
        x_int_offset = state.get("_x_int_offset")  # a fit pickled before it existed cast integers as they were
        # columns pair with fit's by position: a frame's columns in another order scored as if in fit's (a fit
        # pickled before the names were kept checks none)
        refuse_reordered_columns("fit's X", state.get("_x_columns"), "X", named_columns(X))
        if Y is not None:
            refuse_reordered_columns("fit's Y", state.get("_y_columns"), "Y", named_columns(Y))
            # the two scores pair row by row, as fit's rows do: frames of the same samples in another order were
            # scored as pairs (a retrieval of each other) without a word, where fit refuses them
            refuse_unpaired_frames((("X", X), ("Y", Y)))
        x_scores = self._scores("X", X, x_offset, state["_x_scale"], state["_x_scaled_weights"], x_int_offset)
        if Y is None:
            return x_scores
        y_offset = state.get("_y_offset", (1.0, state["y_mean_"]))
        y_int_offset = state.get("_y_int_offset")
        return x_scores, self._scores("Y", _one_column_if_1d(Y, "Y"), y_offset, state["_y_scale"], state["_y_scaled_weights"], y_int_offset)

    def fit_transform(self, X: np.ndarray, Y: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:  # noqa: N803
        """``fit(X, Y).transform(X, Y)``."""
        return self.fit(X, Y).transform(X, Y)  # type: ignore[return-value]

    @staticmethod
    def _scores(
        name: str, data: np.ndarray, offset: Tuple[float, np.ndarray], scale: Union[float, np.ndarray], weights: np.ndarray,
        int_offset: Optional[Offset] = None,
    ) -> np.ndarray:
        offset_scale, mean = offset
        arr = _finite_2d(name, data)
        if arr.shape[1] != mean.shape[0]:
            raise ShapeError(f"{name}: expected shape [n, {mean.shape[0]}] (the columns fit saw), got {arr.shape}", name)
        arr = _as_float64(arr, int_offset)  # shifted as fit shifted its integers
        # powers of two: (X - mean) @ x_weights_ where that is finite
        with np.errstate(over="ignore", invalid="ignore"), one_blas_thread():
            scores = ((arr / offset_scale - mean) / scale) @ weights
        finite = np.isfinite(scores).all(axis=1)
        if not finite.all():  # else NaN and inf were returned with numpy's warnings only
            row = int(np.flatnonzero(~finite)[0])
            raise NonFiniteError(
                f"{name}: the canonical scores of row {row} overflow float64 (its values are too far from those "
                "fit saw); expected values on the scale of the training data", name)
        return scores
