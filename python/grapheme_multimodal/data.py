"""The former home of the UCI Multiple Features loader: kept so that
``grapheme_multimodal.data`` imports keep working. Use
:mod:`grapheme_multimodal.datasets`."""

from .datasets import (
    INSTALL_HINT,
    N_CLASSES,
    N_EVENTS,
    VIEW_DIMS,
    VIEW_NAMES,
    MultipleFeatures,
    load_multiple_features,
    standardize,
    train_test_indices,
    train_test_split,
)

__all__ = [
    "INSTALL_HINT",
    "MultipleFeatures",
    "N_CLASSES",
    "N_EVENTS",
    "VIEW_DIMS",
    "VIEW_NAMES",
    "load_multiple_features",
    "standardize",
    "train_test_indices",
    "train_test_split",
]
