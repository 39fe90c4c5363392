"""Learning on real data (UCI Multiple Features, split 0) with a small
budget: the package's recipe (:func:`uci.fit_views`) at 16 epochs instead
of its default (at most 300, early stopping; the best epoch is about 80),
measured by the evaluation harness.

Chance: class precision@1 and 5-NN ~0.10 (10 balanced classes), instance
recall@1 1/400, binder ROC-AUC 0.5. MCCA: 0.709 / 0.194; exact CCA per
pair: 0.790 / 0.377. The full recipe (benchmarks/uci_multifeature.py,
seeds 0-2, split 0): class precision@1 0.855, instance recall@1 0.434,
fused 5-NN 0.977, linear probe 0.987, binder AUC 0.974; the thresholds
below leave a wide margin under what 16 epochs reach.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from grapheme_multimodal import evaluation, uci
from grapheme_multimodal.metrics import knn_accuracy
from conftest import load_script

# learning quality on the real data: the numbers come from the Rust core, the same on every Python
# (.ci/python-versions.sh leaves main_only out on 3.9 and 3.13).
pytestmark = pytest.mark.main_only

#: The small budget: the recipe's defaults but for these fields.
BUDGET = {"epochs": 16}
PAIRWISE_ONLY = {"contrastive": 1.0, "binding": 1.0}


def recipe(train, **changes):
    settings = dataclasses.replace(uci.TrainingSettings(), **{**BUDGET, **changes})
    return uci.fit_views(train.views, settings=settings)


@pytest.fixture(scope="module")
def model(splits):
    return recipe(splits[0])


@pytest.fixture(scope="module")
def scores(splits, model):
    return evaluation.evaluate_model(model, *splits, two_views=False)


def test_retrieval_across_every_view_pair_is_far_above_chance(scores):
    precision = scores.mean_retrieval("class_precision_at_1")
    recall = scores.mean_retrieval("instance_recall_at_1")
    assert precision > 0.6, precision  # chance 0.1
    assert recall > 0.15, recall  # chance 0.0025
    assert min(r["class_precision_at_1"] for r in scores.retrieval.values()) > 0.4
    assert scores.fused_knn > 0.9 and scores.fused_probe > 0.9
    assert scores.hidden_knn > 0.9 and scores.hidden_probe > 0.9  # the encoders' hidden layers, side by side
    assert scores.binder_auc > 0.85


def test_one_model_beats_one_space_multiview_cca_by_a_wide_margin(splits, scores):
    """MCCA and GCCA also put every view into one space (cca-zoo, 6 comp.)."""
    pytest.importorskip("cca_zoo")
    anchors = evaluation.compute_anchors(*splits, multiview=evaluation.MULTIVIEW_METHODS)
    summary = evaluation.compare([scores], anchors)["anchors"]["multiview_mean_retrieval"]
    for method, figures in summary.items():
        assert scores.mean_retrieval("class_precision_at_1") > figures["class_precision_at_1"] + 0.05, method
        assert scores.mean_retrieval("instance_recall_at_1") > figures["instance_recall_at_1"] + 0.03, method


def test_only_the_bilinear_binder_learns_which_pairs_belong(splits):
    # The additive binder scores a pair as f(a) + g(b): with the second side
    # drawn from the same modality of another event, positives and negatives
    # have the same marginals, so it cannot rank them.
    additive = recipe(splits[0], binder_kind="additive", epochs=4)
    auc = evaluation.binder_auc(additive.bind, additive.embed_views(splits[1].views))
    assert abs(auc - 0.5) < 0.05


def test_the_recipe_keeps_the_fused_embedding_when_views_are_missing(splits, model):
    """Queries with only two of six views among complete training events.
    Two parts of the recipe keep them close, each on its own: fused_contrastive
    (trained on random subsets of the views) and the residual fusion (the
    fused embedding starts from the mean of the views present). At this
    budget, mean 5-NN over the 15 pairs of views is 0.95 with both, 0.94
    with either alone and 0.56 with neither."""
    train, test = splits

    def two_view_queries(embedder):
        gallery = embedder.embed_fused(train.views)
        return np.mean([
            knn_accuracy(gallery, train.labels, embedder.embed_fused({a: test.views[a], b: test.views[b]}), test.labels)
            for a, b in evaluation.unordered_pairs(test.views)
        ])

    with_both = two_view_queries(model)
    without_both = two_view_queries(recipe(train, weights=PAIRWISE_ONLY, fusion_residual=0.0))
    residual_only = two_view_queries(recipe(train, weights=PAIRWISE_ONLY))
    fused_contrastive_only = two_view_queries(recipe(train, fusion_residual=0.0))
    assert with_both > 0.88
    assert with_both > without_both + 0.03
    assert residual_only > without_both + 0.03
    assert fused_contrastive_only > without_both + 0.03


def test_the_recipe_chooses_the_epochs_by_cross_validation_on_few_rows_so_a_larger_budget_changes_nothing():
    """32 Nutrimouse mice: a 10 % slice would be 3 mice, too few to stop on,
    so 5 folds (no labels) choose when the mean held-out contrastive loss
    has not improved for ``patience`` epochs, and the model trains on all 32
    for the best epoch's count — a user who raises ``epochs`` gets the same model."""
    from grapheme_multimodal.datasets import load_nutrimouse

    views = {v: x[:32] for v, x in load_nutrimouse().views.items()}
    short = uci.fit_views(views, seed=0)
    chosen = len(short.model.history)
    assert 1 <= chosen < uci.TrainingSettings().epochs
    assert "val_contrastive" not in short.model.history[0]  # no row was held out of the final fit
    longer = uci.fit_views(views, settings=uci.TrainingSettings(epochs=4 * uci.TrainingSettings().epochs))
    assert len(longer.model.history) == chosen
    for view, emb in short.embed_views(views).items():
        np.testing.assert_array_equal(longer.embed_views(views)[view], emb)
    # with cross-validation off, the 3-mouse slice is watched as before
    sliced = uci.fit_views(views, settings=uci.TrainingSettings(cv_folds=0))
    assert "val_contrastive" in sliced.model.history[0] and len(sliced.model.history) < uci.TrainingSettings().epochs


def test_the_fusion_diagnostic_reads_out_one_trained_model(splits, model):
    """The benchmark that compares the fusion network with a random
    projection of the view embeddings scores what it says it scores."""
    diagnostic = load_script("benchmarks/uci_fusion_diagnostic.py")
    train, test = splits
    outs = diagnostic.read_outs(model, train, test, seed=0)
    views = list(train.views)
    assert set(outs) == {"fused", "views side by side", "random projection", "hidden features side by side",
                         "raw (standardised)"} | {
        f"{kind} {v}" for kind in ("view", "raw") for v in views
    }
    for name, (fit_rows, held_out) in outs.items():
        assert (len(fit_rows), len(held_out)) == (train.n_events, test.n_events), name
    width = model.embed_fused(test.views).shape[1]
    np.testing.assert_array_equal(outs["fused"][1], model.embed_fused(test.views))
    assert outs["views side by side"][1].shape[1] == len(views) * width
    projected = outs["random projection"][1]
    assert projected.shape[1] == width
    np.testing.assert_allclose(np.linalg.norm(projected, axis=1), 1.0, rtol=1e-5)
    # same seed, same projection; the read-out keeps the class structure
    np.testing.assert_array_equal(diagnostic.read_outs(model, train, test, seed=0)["random projection"][1], projected)
    knn, probe = diagnostic.scores(outs["random projection"], train, test)
    assert knn > 0.9 and probe > 0.9  # chance 0.1
    # the encoders' hidden features: one unit-norm block per view
    hidden_width = model.model.config.encoder_hidden[-1]
    hidden = outs["hidden features side by side"][1]
    assert hidden.shape == (test.n_events, len(views) * hidden_width)
    blocks = hidden.reshape(test.n_events, len(views), hidden_width)
    np.testing.assert_allclose(np.linalg.norm(blocks, axis=2), 1.0, rtol=1e-5)


def test_the_hidden_sketch_probe_adds_a_unit_sketch_of_the_present_views(splits, model):
    """The probe of a hidden-feature sketch in the fused embedding reads out
    what its docstring says: α = 0 is the fused embedding, the sketch sums
    the present views' unit hidden features through fixed Gaussian matrices."""
    probe = load_script("benchmarks/uci_hidden_sketch_probe.py")
    _, test = splits
    hidden_width = model.model.config.encoder_hidden[-1]
    width = model.embed_fused(test.views).shape[1]
    readout = probe.SketchReadOut(model, {v: hidden_width for v in test.views}, width, seed=0)
    outs = readout.read_outs(test.views)
    assert set(outs) == set(probe.ALPHAS)
    np.testing.assert_allclose(outs[0.0], model.embed_fused(test.views), atol=1e-6)
    for a in probe.ALPHAS:
        np.testing.assert_allclose(np.linalg.norm(outs[a], axis=1), 1.0, rtol=1e-5)
    two = dict(list(test.views.items())[:2])
    hidden = model.hidden_features(two)
    by_hand = sum((h / np.linalg.norm(h, axis=1, keepdims=True)) @ readout.projections[v] for v, h in hidden.items())
    by_hand /= np.linalg.norm(by_hand, axis=1, keepdims=True)
    np.testing.assert_allclose(readout.sketch(two), by_hand, rtol=1e-5, atol=1e-6)
    fused = model.embed_fused(two)
    expected = fused + 1.0 * by_hand
    np.testing.assert_allclose(readout.read_outs(two)[1.0], expected / np.linalg.norm(expected, axis=1, keepdims=True),
                               rtol=1e-5, atol=1e-6)
