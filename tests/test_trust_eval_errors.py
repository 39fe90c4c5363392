"""The evaluation surface's error paths (anchors, metrics, evaluation,
datasets) say what was wrong in every case:

1. a message listing a mapping's keys (view names, tensor names, metadata
   keys) lists them when they are of mixed types (``1`` beside ``"a"``,
   both valid keys): ``sorted`` of them raised "'<' not supported between
   instances of 'str' and 'int'" from inside the error path;
2. ``n_components`` of another type than an int (2.5, "2", None, True) is a
   ``TypeError`` wherever it is taken, as the package's other int
   arguments refuse a wrong type (``as_positive_int``, the config's ints),
   and a value out of range an ``InvalidValueError``: ``cca_anchor`` and
   ``ExactCCA`` said InvalidValueError where the retrievals said TypeError;

Each test failed before its fix."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import anchors, datasets, evaluation
from grapheme_multimodal.averaging import WeightAverage

pytest.importorskip("sklearn")

#: The error sorted() of 1 beside "a" raised, in place of the one meant.
_UNORDERABLE = "not supported between instances"


def _views(names, n: int = 12, seed: int = 0, width: int = 3) -> dict:
    rng = np.random.default_rng(seed)
    return {v: rng.normal(size=(n, width)) for v in names}


def _split(names, n: int = 12, seed: int = 0) -> datasets.MultipleFeatures:
    return datasets.MultipleFeatures(views=_views(names, n, seed), labels=np.arange(n) % 3)


def _refused(call, error, message: str):
    """``call()`` raises ``error`` whose message matches ``message`` (the
    names listed in their sorted-by-text order), not sorted()'s TypeError."""
    with pytest.raises(error) as info:
        call()
    assert _UNORDERABLE not in str(info.value), str(info.value)
    assert re.search(message, str(info.value)), str(info.value)
    return info.value


# ------------------------------------------------ 1. mixed-type names listed, not sorted() failing
def test_view_mismatch_of_mixed_type_view_names_is_refused_in_its_own_words() -> None:
    train, test = _split([1, "a"]), _split([1, "b"], seed=1)
    message = r"^test: has views \[1, 'b'\]; expected those of train, \[1, 'a'\]$"
    err = _refused(lambda: evaluation.compute_anchors(train, test, multiview=()), gm.InvalidValueError, message)
    assert err.arg == "test"
    _refused(lambda: anchors.knn_anchors(train, test), gm.InvalidValueError, message)
    # the retrievals' own check of their view dicts
    err = _refused(lambda: evaluation.pairwise_cca_retrieval(train.views, test.views, test.labels, 2), gm.InvalidValueError,
                   r"^test_std: has views \[1, 'b'\], expected the training views \[1, 'a'\]$")
    assert err.arg == "test_std"
    _refused(lambda: evaluation.multiview_cca_retrieval("MCCA", train.views, test.views, test.labels, 2),
             gm.InvalidValueError, r"^test_std: has views \[1, 'b'\]")
    # and standardize's, beneath them
    _refused(lambda: datasets.standardize(train.views, test.views), gm.InvalidValueError,
             r"^others\[0\] has views \[1, 'b'\], expected the training views \[1, 'a'\]")
    # names of one type: sorted as sorted() sorts them, today's messages unchanged (not 10 before 2 as text)
    _refused(lambda: evaluation.compute_anchors(_split(["b", "a"]), _split(["c", "a"], seed=1), multiview=()),
             gm.InvalidValueError, r"^test: has views \['a', 'c'\]; expected those of train, \['a', 'b'\]$")
    _refused(lambda: evaluation.compute_anchors(_split([10, 2]), _split([10, 3], seed=1), multiview=()),
             gm.InvalidValueError, r"^test: has views \[3, 10\]; expected those of train, \[2, 10\]$")


def test_cca_anchor_lists_mixed_type_view_names_of_an_unknown_view() -> None:
    train, test = _split([1, "a"]), _split([1, "a"], seed=1)
    err = _refused(lambda: anchors.cca_anchor(train, test, "zzz", "a"), gm.InvalidValueError,
                   r"^query_view must be one of \[1, 'a'\], got 'zzz'$")
    assert err.arg == "query_view"


def test_nutrimouse_cv_lists_mixed_type_view_names_of_data_without_gene_and_lipid(nutrimouse) -> None:
    data = dataclasses.replace(nutrimouse, views={1: nutrimouse.views["gene"], "a": nutrimouse.views["lipid"]})
    _refused(lambda: evaluation.nutrimouse_cv(None, data, n_repeats=1), gm.InvalidValueError,
             r"^data: has views \[1, 'a'\]; expected 'gene' and 'lipid'$")


def test_compare_lists_mixed_type_pair_keys_of_runs_that_differ() -> None:
    scores = {"class_precision_at_1": 0.5, "instance_recall_at_1": 0.5}

    def run(keys):
        return evaluation.ModelScores(retrieval={k: scores for k in keys}, fused_knn=0.5, fused_probe=0.5,
                                      two_view_knn={}, binder_auc=None)

    anchors_ = evaluation.Anchors(cca={"a->b": scores}, raw_knn=0.5, raw_probe=0.5, raw_two_view_knn={})
    _refused(lambda: evaluation.compare([run(["a->b"]), run([1, "b->a"])], anchors_), gm.InvalidValueError,
             r"^runs\[1\]: scores view pairs \[1, 'b->a'\]")
    _refused(lambda: evaluation.compare([run([1, "z"])], anchors_), gm.InvalidValueError,
             r"^anchors: no figures for the runs' view pairs \[1, 'z'\]")


def test_model_embedder_lists_mixed_type_unknown_view_names() -> None:
    model = gm.LearnableMultiModal(input_dims={"visual": 3}, embed_dim=8, num_heads=1, seed=0)
    embedder = evaluation.ModelEmbedder(model, {"a": "visual"})
    err = _refused(lambda: embedder.embed_fused({1: np.zeros((2, 3)), "zz": np.zeros((2, 3))}), gm.InvalidValueError,
                   r"^views: unknown view names \[1, 'zz'\]")
    assert err.arg == "views"


def test_model_state_and_optimizer_state_of_mixed_type_keys_are_refused_naming_them() -> None:
    model = gm.LearnableMultiModal(input_dims={"visual": 3}, embed_dim=8, num_heads=1, seed=0)
    _refused(lambda: model.__setstate__({1: 0, "a": 0}), gm.CheckpointError, r"got \[1, 'a'\]$")
    _refused(lambda: model.load_optimizer_state({1: 0, "a": 0}), gm.InvalidValueError, r"got \[1, 'a'\]$")


def test_buffer_state_of_mixed_type_keys_is_refused_naming_them() -> None:
    buf = gm.ExperienceBuffer(capacity=4, seed=0)
    rng = np.random.default_rng(0)
    buf.extend(rng.normal(size=(2, 7, 8)), np.ones((2, 7), bool), rng.normal(size=(2, 8)), np.zeros((2, 7, 7)),
               np.zeros(2))
    tensors, meta = buf.state()
    _refused(lambda: gm.ExperienceBuffer.from_state(tensors, {**meta, 1: 0, "zz": 0}), gm.InvalidValueError,
             r"metadata: missing keys \[\], unexpected keys \[1, 'zz'\]")
    extra = {**tensors, 1: tensors["embeddings"], "zz": tensors["embeddings"]}
    _refused(lambda: gm.ExperienceBuffer.from_state(extra, meta), gm.InvalidValueError,
             r"tensors: missing \[\], unexpected \[1, 'zz'\]")


def test_weight_average_lists_mixed_type_tensor_names() -> None:
    average = WeightAverage.start(0.5).updated({"w": np.zeros(2)})
    _refused(lambda: average.updated({1: np.zeros(2), "v": np.zeros(2)}), gm.InvalidValueError,
             r"^weights: holds tensors \[1, 'v'\] not in the average and lacks \['w'\]")


# ------------------------------------------------ 2. n_components of another type: a TypeError everywhere
@pytest.mark.parametrize("value", [2.5, "2", None, True, np.float64(2.0)], ids=repr)
def test_n_components_of_another_type_is_a_type_error_wherever_it_is_taken(value) -> None:
    train, test = _split(["a", "b"], n=20), _split(["a", "b"], n=20, seed=1)
    std_train, std_test = datasets.standardize(train.views, test.views)
    calls = {
        "pairwise_cca_retrieval": ("n_components", lambda: evaluation.pairwise_cca_retrieval(
            std_train, std_test, test.labels, value)),
        "multiview_cca_retrieval": ("n_components", lambda: evaluation.multiview_cca_retrieval(
            "MCCA", std_train, std_test, test.labels, value)),
        "compute_anchors": ("cca_components", lambda: evaluation.compute_anchors(
            train, test, cca_components=value, multiview=())),
        "cca_anchor": ("n_components", lambda: anchors.cca_anchor(train, test, "a", "b", n_components=value)),
        "ExactCCA": ("n_components", lambda: evaluation.ExactCCA(value).fit(train.views["a"], train.views["b"])),
    }
    for where, (arg, call) in calls.items():
        with pytest.raises(TypeError, match=rf"^{arg}: expected (a positive int|an int in \[1, 3\] .*), got "
                                            rf"{type(value).__name__}$") as err:
            call()
        assert not isinstance(err.value, ValueError), where  # one class for one kind of mistake

