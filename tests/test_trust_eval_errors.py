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
3. every refusal reads "<arg>: expected ..., got ..." (it read "X must be
   ..."), naming the argument, what was expected and what was given, in
   the same exception class as before.

Each test failed before its fix."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import anchors, datasets, evaluation, metrics
from grapheme_multimodal.averaging import WeightAverage

from conftest import as_unit

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
             r"^others\[0\]: has views \[1, 'b'\]; expected the training views \[1, 'a'\]$")
    # names of one type: sorted as sorted() sorts them, today's messages unchanged (not 10 before 2 as text)
    _refused(lambda: evaluation.compute_anchors(_split(["b", "a"]), _split(["c", "a"], seed=1), multiview=()),
             gm.InvalidValueError, r"^test: has views \['a', 'c'\]; expected those of train, \['a', 'b'\]$")
    _refused(lambda: evaluation.compute_anchors(_split([10, 2]), _split([10, 3], seed=1), multiview=()),
             gm.InvalidValueError, r"^test: has views \[3, 10\]; expected those of train, \[2, 10\]$")


def test_cca_anchor_lists_mixed_type_view_names_of_an_unknown_view() -> None:
    train, test = _split([1, "a"]), _split([1, "a"], seed=1)
    err = _refused(lambda: anchors.cca_anchor(train, test, "zzz", "a"), gm.InvalidValueError,
                   r"^query_view: expected one of train's views \[1, 'a'\], got 'zzz'$")
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
    buf.extend(as_unit(rng.normal(size=(2, 7, 8))), np.ones((2, 7), bool), rng.normal(size=(2, 8)), np.zeros((2, 7, 7)),
               np.zeros(2))
    tensors, meta = buf.state()
    _refused(lambda: gm.ExperienceBuffer.from_state(tensors, {**meta, 1: 0, "zz": 0}), gm.InvalidValueError,
             r"metadata: missing keys \[\], unexpected keys \[1, 'zz'\]")
    extra = {**tensors, 1: tensors["embeddings"], "zz": tensors["embeddings"]}
    _refused(lambda: gm.ExperienceBuffer.from_state(extra, meta), gm.InvalidValueError,
             r"tensors: missing \[\], unexpected \[1, 'zz'\]")


def test_history_and_trained_rows_of_mixed_type_keys_are_refused_naming_them() -> None:
    from grapheme_multimodal.training import History

    with pytest.raises(KeyError) as info:
        History(epochs=[{"loss": 1.0, 1: 0.5}])["val_total"]
    assert _UNORDERABLE not in str(info.value) and "recorded: [1, 'loss']" in str(info.value), str(info.value)
    # a model state whose trained_rows has keys of mixed types: the check itself sorted them
    model = gm.LearnableMultiModal(input_dims={"visual": 3}, embed_dim=8, num_heads=1, seed=0)
    state = model.__getstate__()
    state["meta"]["trained_rows"] = {1: 0, "a": 0}
    _refused(lambda: gm.LearnableMultiModal.__new__(gm.LearnableMultiModal).__setstate__(state), gm.CheckpointError,
             r"trained_rows: expected an int >= 0 for each of \['visual', .*, got \{1: 0, 'a': 0\}")


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
    shown = "None" if value is None else f"{value!r} ({type(value).__name__})"  # the same words everywhere
    for where, (arg, call) in calls.items():
        with pytest.raises(TypeError, match=rf"^{arg}: expected (a positive int|an int in \[1, 3\] .*), got "
                                            rf"{re.escape(shown)}$") as err:
            call()
        # one class for one kind of mistake: InvalidTypeError (a TypeError, and a ValueError as before)
        assert type(err.value) is gm.InvalidTypeError and err.value.arg == arg, where



# ------------------------------------------------ 3. "<arg>: expected ..., got ..."
def _mfeat_folder(tmp_path, fou_labels=None, zer_labels=None):
    """The six Multiple Features CSVs of 4 rows, with the label column of mfeat-fou.csv or mfeat-zer.csv as given."""
    for name, dim in zip(datasets.VIEW_NAMES, datasets.VIEW_DIMS):
        labels = {"fou": fou_labels, "zer": zer_labels}.get(name) or ["0", "1", "0", "1"]
        lines = [",".join(str(j) for j in range(dim + 1))]
        lines += [",".join([f"{0.5 * r + 0.01 * j}" for j in range(dim)] + [labels[r]]) for r in range(4)]
        (tmp_path / f"mfeat-{name}.csv").write_text("\n".join(lines) + "\n")
    return tmp_path


def _cases():
    rng = np.random.default_rng(0)
    split = _split(["a", "b"])
    x, y = rng.normal(size=(3, 2)), np.zeros(3)
    std_train, std_test = datasets.standardize(split.views, split.views)
    fitted = evaluation.ExactCCA(2).fit(rng.normal(size=(10, 3)), rng.normal(size=(10, 3)))
    toy = datasets.MultipleFeatures(views={"a": np.zeros((6, 2))}, labels=np.zeros(6, np.int64))
    return {  # (call, class, arg or None for a TypeError, whole message)
        "cca_anchor query_view": (lambda: anchors.cca_anchor(split, split, "zzz", "b"), gm.InvalidValueError, "query_view",
                                  r"query_view: expected one of train's views \['a', 'b'\], got 'zzz'"),
        "cca_anchor gallery_view": (lambda: anchors.cca_anchor(split, split, "a", "a"), gm.InvalidValueError, "gallery_view",
                                    r"gallery_view: expected a view other than query_view, got 'a' for both"),
        "knn_anchors train": (lambda: anchors.knn_anchors(split.views, split), TypeError, None,
                              r"train: expected a MultipleFeatures \(datasets\.train_test_split\), got dict"),
        "multiview method": (lambda: evaluation.multiview_cca_retrieval("PCA", std_train, std_test, split.labels),
                             gm.InvalidValueError, "method", r"method: expected one of \('MCCA', 'GCCA'\), got 'PCA'"),
        # an array of names was numpy's "The truth value of an array with more than one element is ambiguous"
        "multiview method array": (lambda: evaluation.multiview_cca_retrieval(
            np.array(["MCCA", "GCCA"]), std_train, std_test, split.labels), gm.InvalidValueError, "method",
            r"method: expected one of \('MCCA', 'GCCA'\), got array\(\['MCCA', 'GCCA'\], dtype='<U4'\)"),
        "ExactCCA transform": (lambda: fitted.transform(rng.normal(size=(5, 2))), gm.ShapeError, "X",
                               r"X: expected shape \[n, 3\] \(the columns fit saw\), got \(5, 2\)"),
        "retrieval metric": (lambda: metrics.cross_view_retrieval(x, x, y, metric="dot"), gm.InvalidValueError, "metric",
                             r"metric: expected one of \('cosine', 'euclidean'\), got 'dot'"),
        "retrieval chunk_size": (lambda: metrics.cross_view_retrieval(x, x, y, chunk_size=0), gm.InvalidValueError,
                                 "chunk_size", r"chunk_size: expected a positive int, got 0"),
        "retrieval gallery": (lambda: metrics.cross_view_retrieval(x, x[:2], y), gm.ShapeError, "gallery",
                              r"gallery: expected the shape of query, \(3, 2\) \(row-aligned events\), got \(2, 2\)"),
        "retrieval query": (lambda: metrics.cross_view_retrieval(y, y, y), gm.ShapeError, "query",
                            r"query: expected a non-empty 2-D array \[n, d\], got shape \(3,\)"),
        "retrieval labels": (lambda: metrics.cross_view_retrieval(x, x, y[:2]), gm.ShapeError, "labels",
                             r"labels: expected shape \(3,\) to match query rows, got \(2,\)"),
        "roc_auc shape": (lambda: metrics.roc_auc(np.array([]), np.array([1.0])), gm.ShapeError, "positive_scores",
                          r"positive_scores: expected a non-empty 1-D array, got shape \(0,\)"),
        # bools are scores (True above False), as roc_auc_score takes them: test_trust_small_s54.py
        "roc_auc complex": (lambda: metrics.roc_auc(np.array([1j]), np.array([1.0])), TypeError, None,
                            r"positive_scores: expected real numbers, got complex dtype complex128"),
        "MultipleFeatures views": (lambda: datasets.MultipleFeatures([np.zeros((2, 1))], np.zeros(2)), TypeError, None,
                                   r"views: expected a mapping view name -> \[n_events, dim\] array, got list"),
        "MultipleFeatures labels": (lambda: datasets.MultipleFeatures({"a": np.zeros((2, 1))}, np.zeros((2, 1))),
                                    gm.ShapeError, "labels", r"labels: expected a 1-D array, got shape \(2, 1\)"),
        "MultipleFeatures view": (lambda: datasets.MultipleFeatures({"a": np.zeros(2)}, np.zeros(2)), gm.ShapeError,
                                  "views['a']", r"views\['a'\]: expected a 2-D numpy array, got ndarray with shape \(2,\)"),
        "MultipleFeatures rows": (lambda: datasets.MultipleFeatures({"a": np.zeros((2, 1))}, np.zeros(3)), gm.ShapeError,
                                  "views['a']", r"views\['a'\]: has 2 rows; expected 3, as labels \(row i of every view and "
                                  r"of labels is the same event\)"),
        "subset mask": (lambda: toy.subset(np.array([True, False])), gm.ShapeError, "indices",
                        r"indices: expected a boolean mask of shape \(6,\), got shape \(2,\)"),
        "subset dtype": (lambda: toy.subset(np.array([0.0, 1.0])), TypeError, None,
                         r"indices: expected a 1-D integer array or boolean mask, got dtype float64 with shape \(2,\)"),
        "subset range": (lambda: toy.subset(np.array([0, 6])), gm.InvalidValueError, "indices",
                         r"indices: expected indices in \[-6, 6\), got range \[0, 6\]"),
        "train_test_indices labels": (lambda: datasets.train_test_indices(np.zeros((4, 1))), gm.ShapeError, "labels",
                                      r"labels: expected a 1-D array, got shape \(4, 1\)"),
        "train_test_split data": (lambda: datasets.train_test_split(split.views), TypeError, None,
                                  r"data: expected a MultipleFeatures, got dict"),
        "standardize width": (lambda: datasets.standardize(split.views, {"a": np.zeros((4, 2)), "b": split.views["b"]}),
                              gm.ShapeError, "others[0]",
                              r"others\[0\]\['a'\]: expected shape \[n, 3\] \(the columns of train_views\['a'\]\), "
                              r"got \(4, 2\)"),
    }


@pytest.mark.parametrize("case", sorted(_cases()))
def test_refusals_name_the_argument_what_was_expected_and_what_was_given(case) -> None:
    call, error, arg, message = _cases()[case]
    with pytest.raises(error) as err:
        call()
    assert re.fullmatch(message, str(err.value)), str(err.value)
    if arg is not None:
        assert err.value.arg == arg


def test_multiple_features_files_are_refused_in_the_same_words(tmp_path) -> None:
    with pytest.raises(gm.InvalidValueError) as err:  # "the last column must hold integer class labels"
        datasets.load_multiple_features(_mfeat_folder(tmp_path, fou_labels=["0", "1", "0.5", "1"]))
    assert re.fullmatch(r".*mfeat-fou\.csv: expected integer class labels in the last column, got 0\.5 in row 2 "
                        r"\(below the header\)", str(err.value)), str(err.value)
    assert err.value.arg == "directory"
    with pytest.raises(gm.InvalidValueError) as err:  # "...; the six views must be row-aligned"
        datasets.load_multiple_features(_mfeat_folder(tmp_path, zer_labels=["1", "0", "0", "1"]))
    assert re.fullmatch(r".*mfeat-zer\.csv: disagrees with mfeat-fou\.csv on the labels \(4 vs 4 rows\); expected the "
                        r"six views row-aligned \(the same labels in the same rows\)", str(err.value)), str(err.value)
    assert err.value.arg == "directory"
