"""Leftovers of s64: binder_auc refuses views of no columns as the metrics do,
Graph.from_edges reads an object array of ints, ExactCCA reads a 1-D Y as
scikit-learn's CCA does, the estimator names X's column in the model's
float32 refusals, and nutrimouse_cv's anchors name their all-zero scores."""

from __future__ import annotations

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal.evaluation import ExactCCA, binder_auc

pytest.importorskip("sklearn")

from grapheme_multimodal import evaluation  # noqa: E402
from grapheme_multimodal.evaluation import _nutrimouse  # noqa: E402
from grapheme_multimodal.sklearn import MultimodalEmbedder  # noqa: E402


# ------------------------------------------------ 1. binder_auc of views with no columns
def test_binder_auc_refuses_a_view_of_no_columns_naming_it() -> None:
    """It scored every pair alike (AUC 0.5) where cross_view_retrieval refuses such views."""
    views = {"a": np.ones((5, 3)), "b": np.zeros((5, 0))}
    with pytest.raises(gm.ShapeError, match=r"^view_embeddings\['b'\]: expected an \[N, E\] array of embeddings, "
                                            r"E at least 1, got shape \(5, 0\)") as err:
        binder_auc(lambda a, b: np.ones(len(a)), views)
    assert err.value.arg == "view_embeddings['b']"
    with pytest.raises(gm.ShapeError, match=r"^query: expected a non-empty 2-D array"):  # the metric's refusal alike
        gm.metrics.cross_view_retrieval(np.zeros((5, 0)), np.zeros((5, 0)), np.arange(5))
