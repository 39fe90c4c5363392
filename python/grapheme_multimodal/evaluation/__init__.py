"""Measuring a multi-view model honestly: the figures, the anchors they are
set beside (computed in the same run, on the same split), and the protocols.

>>> from grapheme_multimodal import datasets, evaluation, uci      # doctest: +SKIP
>>> train, test = datasets.train_test_split(datasets.load_multiple_features())  # doctest: +SKIP
>>> model = uci.fit_views(train.views, seed=0)                    # doctest: +SKIP
>>> ours = evaluation.evaluate_model(model, train, test)           # doctest: +SKIP
>>> anchors = evaluation.compute_anchors(train, test)              # doctest: +SKIP
>>> evaluation.compare([ours], anchors)["pairs_within_tolerance_of_cca"]   # doctest: +SKIP

Any model with ``embed_views`` and ``embed_fused`` (:class:`ViewEmbedder`)
can be measured; :class:`ModelEmbedder` wraps a
:class:`~grapheme_multimodal.LearnableMultiModal`, :class:`EnsembleEmbedder`
several of them trained from different seeds. Needs scikit-learn; the
MCCA / GCCA anchors need cca-zoo (``pip install 'grapheme-multimodal[bench]'``,
Python >= 3.11) and are left out without it.
"""

from ._anchors import MULTIVIEW_METHODS, Anchors, cca_zoo_available, compute_anchors
from ._anchors import multiview_cca_retrieval, pairwise_cca_retrieval
from ._cca import ExactCCA
from ._embedders import ModelEmbedder, Recipe, ViewEmbedder, view_modalities
from ._ensemble import EnsembleEmbedder
from ..metrics import unit_side_by_side
from ._multiview import RETRIEVAL_METRICS, ModelScores, binder_auc, compare, evaluate_model
from ._nutrimouse import NUTRIMOUSE_ANCHORS, nutrimouse_cv
from ._pairs import ordered_pairs, pair_key, two_view_key, unordered_pairs

__all__ = [
    "Anchors",
    "EnsembleEmbedder",
    "ExactCCA",
    "ModelEmbedder",
    "ModelScores",
    "MULTIVIEW_METHODS",
    "NUTRIMOUSE_ANCHORS",
    "RETRIEVAL_METRICS",
    "Recipe",
    "ViewEmbedder",
    "binder_auc",
    "cca_zoo_available",
    "compare",
    "compute_anchors",
    "evaluate_model",
    "multiview_cca_retrieval",
    "nutrimouse_cv",
    "ordered_pairs",
    "pair_key",
    "pairwise_cca_retrieval",
    "two_view_key",
    "unordered_pairs",
    "view_modalities",
    "unit_side_by_side",
]
