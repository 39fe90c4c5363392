"""A second blind review (session 60), each defect closed the way a user
would expect:

1. The README said encoder inputs as large as ``3e38`` "still encode
   exactly, standardised or not"; a modality standardised with a std below
   1 refuses them (``(x - mean) / std`` leaves float32), with an error that
   blamed "the encoder (after the model's normalization, if any)". The
   README now says what happens, and the error says the standardisation
   overflowed.
2. ``model.history = [1, 2]`` was accepted by ``fit``, which trained; only
   ``save`` then refused the record, and the training could not be kept.
   ``fit`` checks every record as ``save`` does, before it trains.
3. ``view_modalities`` given eight views said "expected at most 6 distinct
   view names" without saying why six.
4. A pandas Series (or a one-column data frame) of graphs was told to
   "featurise graphs first"; the model takes a list of Graph itself.
5. ``compute_anchors(..., k=0)`` refused ``k`` only after every pairwise
   CCA fit (2 s on the digits, more with cca-zoo's methods), and
   ``evaluate_model`` only after embedding every split: ``k`` is checked
   with the other arguments, before any work.
6. Labels holding pandas' ``NA`` (a nullable ``"string"`` or ``"boolean"``
   column's missing value) were "labels that cannot be compared (boolean
   value of NA is ambiguous)", naming no row; complex labels were
   scikit-learn's "Complex data not supported" with the whole array on
   lines of its own. Both are named, with the row of the missing label.

Each test failed before its fix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import evaluation, uci

README = Path(__file__).resolve().parents[1] / "README.md"


def small_model() -> gm.LearnableMultiModal:
    return gm.LearnableMultiModal(seed=0, input_dims={"visual": 4}, embed_dim=8, hidden_dim=8, num_heads=2)


def small_scale_rows(n: int = 32) -> dict:
    """Rows whose std (about 0.1) is below 1: standardising scales them up."""
    return {"visual": np.random.default_rng(0).normal(scale=0.1, size=(n, 4)).astype(np.float32)}


def test_huge_inputs_to_a_standardised_modality_say_the_standardisation_overflowed():
    model = small_model()
    model.fit(small_scale_rows(), epochs=1, progress=False)
    huge = {"visual": np.full((2, 4), 3e38, np.float32)}
    with pytest.raises(gm.NonFiniteError, match=r"^inputs\['visual'\]: row 0 overflows float32 in the encoder: "
                       r"its values are finite, but not once standardised by the model's normalization .*std below 1") as err:
        model.encode(huge)
    assert err.value.arg == "inputs['visual']"
    # the docs say so (docs/guarantees.md, where the README's fine print moved in s63), where the README
    # said such inputs encode "standardised or not"
    text = " ".join(README.read_text(encoding="utf-8").split())
    guarantees = " ".join((README.parent / "docs" / "guarantees.md").read_text(encoding="utf-8").split())
    assert "standardised or not" not in text and "standardised or not" not in guarantees
    assert "a standardised modality whose `(x − mean) / std` leaves float32" in guarantees
    # the raw model (no standardisation) encodes them, finite, as the README says
    assert np.isfinite(small_model().encode(huge)).all()


def test_fit_on_huge_standardised_inputs_says_the_standardisation_overflowed_and_keeps_the_model():
    model = small_model()
    data = small_scale_rows()
    model.fit(data, epochs=1, progress=False)
    before = model.state_dict()
    data["visual"][5] = 3e38
    with pytest.raises(gm.NonFiniteError, match=r"^data\['visual'\]: row 5 overflows float32 in the encoder: its values "
                       r"are finite, but not once standardised by the model's normalization"):
        model.fit(data, epochs=1, progress=False, standardize=False)  # the first fit's standardisation
    after = model.state_dict()
    assert model.epochs_trained == 1 and all(np.array_equal(before[k], after[k]) for k in before)


def test_hidden_features_of_huge_standardised_inputs_say_the_standardisation_overflowed():
    model = gm.LearnableMultiModal(seed=0, input_dims={"visual": 4}, embed_dim=8, hidden_dim=8, num_heads=2,
                                   encoder_hidden=(8,))
    model.set_normalization("visual", np.zeros(4), np.full(4, 0.5))  # 3e38 / 0.5 leaves float32
    with pytest.raises(gm.NonFiniteError, match=r"^inputs\['visual'\]: row 1 overflows float32 in the encoder's hidden "
                       r"layer 0: its values are finite, but not once standardised"):
        model.hidden_features({"visual": np.array([[1, 2, 3, 4], [3e38, 0, 0, 0]], np.float32)})


@pytest.mark.parametrize("history", [[1, 2], [{"total": "low"}], [{1: 0.5}]])
def test_fit_refuses_a_history_that_save_would_refuse_before_it_trains(history, tmp_path):
    model = small_model()
    model.history = history
    before = model.state_dict()
    with pytest.raises(gm.InvalidValueError, match=r"^model\.history\[0\]: expected a record of numbers by name"):
        model.fit(small_scale_rows(), epochs=1, progress=False)
    assert model.epochs_trained == 0 and model.history is history
    after = model.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)
    with pytest.raises(gm.InvalidValueError) as saved:  # the same words as save's
        model.save(tmp_path / "m.safetensors")
    assert str(saved.value).startswith("model.history[0]: expected a record of numbers by name")


def test_fit_refuses_a_bad_record_put_into_the_history_of_a_model_it_trained():
    """fit checks only the records it has not found sound before (a loop of
    fit(epochs=1) need not check its whole history each call): a record
    appended, or put in place of one, is still refused, by its own index."""
    model = small_model()
    data = small_scale_rows()
    model.fit(data, epochs=2, progress=False)
    model.history.append({"loss": "low"})
    with pytest.raises(gm.InvalidValueError, match=r"^model\.history\[2\]: expected a record of numbers by name"):
        model.fit(data, epochs=1, progress=False)
    model.history.pop()
    model.history[0] = 1
    with pytest.raises(gm.InvalidValueError, match=r"^model\.history\[0\]: expected a record of numbers by name"):
        model.fit(data, epochs=1, progress=False)
    model.history[0] = {"loss": 0.5}
    model.fit(data, epochs=1, progress=False)
    assert model.epochs_trained == 3 and len(model.history) == 3


def test_too_many_views_say_why_six():
    with pytest.raises(gm.InvalidValueError, match=r"^views: expected at most 6 distinct view names \(one per input "
                       r"modality slot of the model; the seventh, action, is its output and takes no view\), got"):
        evaluation.view_modalities([f"v{i}" for i in range(8)])
    eight = {f"v{i}": np.zeros((4, 2)) for i in range(8)}
    with pytest.raises(gm.InvalidValueError, match=r"^views: expected at most 6 distinct view names \(one per input"):
        uci.fit_views(eight)  # the recipe says the same, before any training


def test_a_pandas_series_of_graphs_is_told_to_be_a_list():
    pd = pytest.importorskip("pandas")
    graph = gm.Graph.from_edges(3, [(0, 1), (1, 2)])
    model = small_model()
    expected = model.encode({"linguistic": [graph, None]})
    with pytest.raises(TypeError, match=r"^inputs\['linguistic'\]: a pandas Series of Graph; expected a list of Graph "
                       r"\(one per row, None for a row absent from the modality\), e\.g\. list\(series\)$"):
        model.encode({"linguistic": pd.Series([graph, None])})
    with pytest.raises(TypeError, match=r"^inputs\['linguistic'\]: a data frame column of Graph; .*list\(frame\[column\]\)$"):
        model.encode({"linguistic": pd.DataFrame({"g": [graph, graph]})})
    # what the message advises works
    series = pd.Series([graph, None])
    assert np.array_equal(model.encode({"linguistic": list(series)}), expected) and expected[0, 2].any()


def _tiny_splits():
    rng = np.random.default_rng(0)

    def split(n: int) -> gm.datasets.MultipleFeatures:
        return gm.datasets.MultipleFeatures(views={"fou": rng.normal(size=(n, 4)).astype(np.float32),
                                                   "mor": rng.normal(size=(n, 3)).astype(np.float32)},
                                            labels=np.arange(n) % 2)

    return split(20), split(6)


@pytest.mark.parametrize("k", [0, 21, 2.5])
def test_compute_anchors_refuses_k_before_fitting_anything(k, monkeypatch):
    pytest.importorskip("sklearn")
    from grapheme_multimodal.evaluation import _anchors

    def fitted(*args, **kwargs):
        raise AssertionError("the CCA anchors were fitted before k was checked")

    monkeypatch.setattr(_anchors, "_pairwise_cca_retrieval", fitted)
    train, test = _tiny_splits()
    with pytest.raises((gm.InvalidValueError, TypeError), match=r"^k: expected an int in \[1, 20\] \(the number of train rows\)"):
        evaluation.compute_anchors(train, test, multiview=[], k=k)


@pytest.mark.parametrize("k", [0, 21])
def test_evaluate_model_refuses_k_before_embedding_anything(k):
    pytest.importorskip("sklearn")
    calls = []

    class Embedder:
        def embed_views(self, views):
            calls.append("embed_views")
            return {v: np.asarray(x, np.float32)[:, :3] + 1 for v, x in views.items()}

        def embed_fused(self, views):
            calls.append("embed_fused")
            return np.hstack([np.asarray(x, np.float32) for x in views.values()]) + 1

    train, test = _tiny_splits()
    with pytest.raises(gm.InvalidValueError, match=r"^k: expected an int in \[1, 20\]"):
        evaluation.evaluate_model(Embedder(), train, test, k=k)
    assert calls == []
    assert evaluation.evaluate_model(Embedder(), train, test, k=20, two_views=False).fused_knn >= 0  # the bound is taken


@pytest.mark.parametrize("dtype", ["string", "boolean"])
def test_labels_with_pandas_na_name_the_missing_label_and_its_row(dtype):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("sklearn")
    from grapheme_multimodal import metrics

    rng = np.random.default_rng(0)
    values = ["a", "b", None, "b"] if dtype == "string" else [True, False, None, False]
    labels = pd.Series(values * 2, dtype=dtype)
    with pytest.raises(gm.InvalidValueError, match=r"^train_y holds <NA> at row 2; expected a class label in every row "
                       r"\(<NA> marks a missing label, as NaN and None do, and is no class: leave those rows out\)$"):
        metrics.knn_accuracy(rng.normal(size=(8, 3)), labels, rng.normal(size=(4, 3)), labels[:2].tolist() * 2, k=3)
    with pytest.raises(gm.InvalidValueError, match=r"^labels holds <NA> at row 2; expected a class label"):
        metrics.cross_view_retrieval(rng.normal(size=(4, 3)), rng.normal(size=(4, 3)), labels[:4])


def test_complex_labels_are_refused_in_one_line():
    pytest.importorskip("sklearn")
    from grapheme_multimodal import metrics

    rng = np.random.default_rng(0)
    labels = np.array([1 + 0j, 2] * 4)
    with pytest.raises(gm.InvalidValueError, match=r"^train_y: expected class labels \(ints, strings, bools or whole "
                       r"floats\), got complex numbers \(dtype complex128\); take their real part, or number the classes$"):
        metrics.knn_accuracy(rng.normal(size=(8, 3)), labels, rng.normal(size=(4, 3)), labels[:4], k=3)
