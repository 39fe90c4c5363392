"""The library's errors that are scikit-learn's too; importing this module
imports scikit-learn (see :func:`~grapheme_multimodal.exceptions.not_fitted_error`)."""

from __future__ import annotations

from sklearn.exceptions import NotFittedError as _ScikitLearnNotFittedError

from .exceptions import NotFittedError


class SklearnNotFittedError(NotFittedError, _ScikitLearnNotFittedError):
    """:class:`~grapheme_multimodal.exceptions.NotFittedError` and
    ``sklearn.exceptions.NotFittedError`` at once."""
