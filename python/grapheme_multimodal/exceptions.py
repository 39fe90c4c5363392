"""The library's own errors, one class per kind of mistake, so that callers can
catch exactly what they mean to.

Every class derives from :class:`GraphemeError`, itself a :class:`ValueError`,
so code written against plain ``ValueError`` keeps working. Each error carries
the name of the argument it is about (``err.arg``, ``None`` when the error is
not about one argument) beside its message, which names the argument, what was
given and what was expected.

A value of the wrong type (2.5, ``"3"``, ``True`` or ``None`` for an int, a
str for a number) is an :class:`InvalidTypeError`, naming the argument, what
was expected and what was given (``epochs: expected an int >= 0, got 2.5
(float)``): a ``TypeError``, as Python's own, and an
:class:`InvalidValueError` too (as scikit-learn's ``InvalidParameterError``
is both), so code that catches either keeps working; a value of the right
type out of range is an :class:`InvalidValueError` only. An object of the
wrong kind where an array, a mapping or a model is expected is a plain
``TypeError`` naming the argument.

Beside them, :class:`UntrainedModalityWarning` (a ``UserWarning``) says
that a result came from an encoder no training step trained,
:class:`EarlyStoppingSkippedWarning` (a ``UserWarning``) that a fit asked to
stop early on held-out rows had too few rows to hold out, and
:class:`PrecisionLossWarning` (one too) that float64 training data varies
more finely than float32, in which the model computes, can hold.

>>> import numpy as np, grapheme_multimodal as gm
>>> try:
...     gm.LearnableMultiModal(seed=0).fuse(np.zeros((2, 3, 64), np.float32))
... except gm.ShapeError as err:
...     print(type(err).__name__, err.arg)
ShapeError embeddings
"""

from __future__ import annotations

from typing import Optional

__all__ = [
    "GraphemeError",
    "ShapeError",
    "NonFiniteError",
    "InvalidValueError",
    "InvalidTypeError",
    "TooLargeError",
    "CheckpointError",
    "NotFittedError",
    "UntrainedModalityWarning",
    "EarlyStoppingSkippedWarning",
    "PrecisionLossWarning",
    "not_fitted_error",
]


class GraphemeError(ValueError):
    """Base class of every error this library raises on purpose.

    ``arg`` names the argument (or file, or setting) the error is about.
    """

    def __init__(self, message: str, arg: Optional[str] = None) -> None:
        super().__init__(message)
        self.arg = arg

    def __reduce__(self):  # keep `arg` and any other attribute across pickling (multiprocessing, Ray)
        return (type(self), (str(self), self.arg), self.__dict__)


class ShapeError(GraphemeError):
    """An array has the wrong number of dimensions or the wrong size."""


class NonFiniteError(GraphemeError):
    """NaN or infinity where finite numbers are required — in an input, or in
    the weights or optimizer state a training step would produce (the step is
    then refused whole and the model is left as it was)."""


class InvalidValueError(GraphemeError):
    """A value outside what the argument accepts (a negative count, an unknown
    name, a probability above 1, ...)."""


class InvalidTypeError(InvalidValueError, TypeError):
    """A value of a type the argument does not take (2.5 or ``None`` for an
    int, a str for a number). Both a ``TypeError`` and an
    :class:`InvalidValueError` (so a ``ValueError``), as scikit-learn's
    ``InvalidParameterError``: ``except TypeError`` and ``except
    ValueError`` both catch it."""


class TooLargeError(GraphemeError, MemoryError):
    """A size so large that its memory cannot be had (or its byte count
    overflows); raised before anything is allocated. Also a ``MemoryError``."""


class CheckpointError(GraphemeError):
    """A checkpoint or buffer file that cannot be loaded: missing, truncated,
    corrupt (checksum mismatch), foreign, or made for another configuration."""


class NotFittedError(GraphemeError, AttributeError):
    """A method that needs a fitted estimator called before ``fit``. Like
    scikit-learn's ``NotFittedError``, also an ``AttributeError``; raised
    through :func:`not_fitted_error`, it is scikit-learn's as well."""


class UntrainedModalityWarning(UserWarning):
    """A trained model was asked to encode a modality that no training
    batch held: its encoder still has its random initial weights, so its
    embeddings (and whatever is fused or bound from them) carry no learned
    meaning. ``model.trained_modalities`` says which modalities trained.
    A model trained only on recorded embeddings (its steps reached no
    encoder) raises it for every modality. Not raised by a model that never
    trained, nor by one whose record is not known: loaded from a checkpoint
    that predates the record, or given other encoder weights with
    ``load_state_dict``.
    Silence it, where intended, with ``warnings.filterwarnings("ignore",
    category=gm.UntrainedModalityWarning)``."""


class ConstantModalityWarning(UserWarning):
    """``fit`` (with ``standardize=True``) was given a modality whose rows
    all hold the same values (a text file of empty lines, a column filled
    with one value, a modality present in one row only) while other
    modalities vary: its standardisation, learned from these rows, makes
    each of its inputs 0, so its encoder learns nothing of the data and its
    embedding is one constant vector for every event. Said once per
    modality and fit. Silence it, where intended, with
    ``warnings.filterwarnings("ignore", category=gm.ConstantModalityWarning)``."""


class EarlyStoppingSkippedWarning(UserWarning):
    """:func:`~grapheme_multimodal.stopping.fit_with_stopping` (and so
    ``MultimodalEmbedder``, ``uci.train`` and ``grapheme-mm train``) was
    asked to stop early (``patience`` > 0) on ``validation_fraction`` of the
    rows, but that fraction holds out fewer than 2 rows or leaves fewer than
    2 to train on: every epoch ran on all rows, without early stopping.
    Said once per fit. Silence it, where intended, with
    ``warnings.filterwarnings("ignore", category=gm.EarlyStoppingSkippedWarning)``,
    or say so with ``patience=0``."""


class PrecisionLossWarning(UserWarning):
    """Training data given in float64 (or as integers beyond 2**24) has a
    column whose variation float32, in which the model computes, cannot
    hold: its values lie so far from zero, beside their spread, that the
    cast makes the column constant or moves its values by more than 1 % of
    their standard deviation (root mean square of the rounding; float32's
    spacing at 1e6 is 0.0625, at 1.7e9, Unix seconds of today, 128). The
    standardisation then learns the rounding, not the data. Raised once
    per modality by each training call (``fit``, ``fit_normalization``,
    the scikit-learn estimator's ``fit``, ``uci.fit_views``/``uci.train``,
    ``fit_with_stopping``; ``grapheme-mm train`` prints it as one
    ``warning:`` line), naming the argument, the columns, their magnitude
    and spread and what float32 keeps of it. Subtract each such column's
    mean (or rescale it) before passing it: a float64 ``StandardScaler``
    does, or ``x - x.mean(axis=0)``. A warning, not an error: the rest of
    the data trains as given."""


def not_fitted_error(message: str, arg: Optional[str] = None) -> NotFittedError:
    """A :class:`NotFittedError` that is also scikit-learn's
    ``sklearn.exceptions.NotFittedError`` where scikit-learn is installed:
    code written for scikit-learn's estimators catches that one. Imported
    here, on the error's path only: scikit-learn takes a second to import."""
    try:
        from ._sklearn_errors import SklearnNotFittedError
    except ModuleNotFoundError as err:
        if (err.name or "").partition(".")[0] != "sklearn":
            raise
        return NotFittedError(message, arg)
    return SklearnNotFittedError(message, arg)
