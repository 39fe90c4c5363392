"""The former home of the UCI Multiple Features loader: kept so that
``grapheme_multimodal.data`` imports keep working. Use
:mod:`grapheme_multimodal.datasets`."""

from .datasets import _multiple_features
from .datasets._multiple_features import *  # noqa: F401,F403

__all__ = list(_multiple_features.__all__)
