"""The SPEC §3 scikit-learn anchors are reproduced (about 2 s: CCA runs single-threaded)."""

from __future__ import annotations

import numpy as np
import pytest

from grapheme_multimodal import anchors
from grapheme_multimodal import datasets as gd

TOLERANCE = 0.005


def test_knn_anchors_reproduce_the_spec(splits):
    ours = anchors.knn_anchors(*splits, k=5)
    assert set(ours) == set(anchors.SPEC_KNN_ACCURACY)
    for name, spec in anchors.SPEC_KNN_ACCURACY.items():
        assert ours[name] == pytest.approx(spec, abs=TOLERANCE), name


@pytest.mark.parametrize("pair", anchors.CCA_PAIRS, ids=lambda p: "->".join(p))
def test_cca_anchors_reproduce_the_spec(splits, pair):
    result = anchors.cca_anchor(*splits, *pair, n_components=10)
    spec = anchors.SPEC_CCA_PRECISION[pair]
    assert result["class_precision_at_1"] == pytest.approx(spec, abs=TOLERANCE)
    # CCA does bind events: far above the 1/400 chance of finding the same digit.
    assert result["instance_recall_at_1"] > 10 / splits[1].n_events


def test_anchor_functions_reject_bad_arguments():
    rng = np.random.default_rng(0)
    split = gd.MultipleFeatures(
        views={"a": rng.normal(size=(8, 3)), "b": rng.normal(size=(8, 2))},
        labels=np.arange(8) % 2,
    )
    with pytest.raises(ValueError, match=r"^query_view: expected one of train's views \['a', 'b'\], got 'zzz'$"):
        anchors.cca_anchor(split, split, "zzz", "b")
    with pytest.raises(ValueError, match=r"^gallery_view: expected a view other than query_view, got 'a' for both$"):
        anchors.cca_anchor(split, split, "a", "a")
    with pytest.raises(ValueError, match=r"^n_components: expected an int in \[1, 2\]"):
        anchors.cca_anchor(split, split, "a", "b", n_components=3)
    with pytest.raises(TypeError, match=r"^train: expected a MultipleFeatures"):
        anchors.knn_anchors(split.views, split)
