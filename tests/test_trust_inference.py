"""The read API under hostile use: what a user reads from a trained or fresh
model (embeddings, fused rows, attention, hidden features, the evaluation
adapter) and the metrics that score it either give the right answer or a
clear error naming the argument, and never change the model."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse

import grapheme_multimodal as gm
from grapheme_multimodal import metrics
from grapheme_multimodal.evaluation import ModelEmbedder


def small_model(**kw) -> gm.LearnableMultiModal:
    return gm.LearnableMultiModal(embed_dim=8, hidden_dim=16, num_heads=2, seed=0,
                                  input_dims={"visual": 5, "auditory": 4}, **kw)


def state_bytes(model: gm.LearnableMultiModal) -> dict:
    return {k: v.tobytes() for k, v in model.state_dict().items()}


# ------------------------------------------------ integers beyond float64's 2**53
#: Nanosecond Unix timestamps (about 2**60.6): int64 features float64 cannot hold exactly.
_NANOSECONDS = np.int64(1_733_400_000_000_000_000)


def _timestamp_features(dtype=np.int64):
    """Three classes whose timestamps lie 40 ns apart, with a few ns of noise:
    in float64 (spacing 256 there) every row rounds to one of a few values."""
    rng = np.random.default_rng(0)
    y = np.arange(90) % 3
    offsets = (y[:, None] * 40 + rng.integers(0, 5, size=(90, 2))).astype(np.int64)
    x = (_NANOSECONDS + offsets).astype(dtype) if dtype == np.int64 else offsets.astype(np.uint64) + np.uint64(2**63)
    return x, offsets, y


@pytest.mark.parametrize("dtype", [np.int64, np.uint64])
def test_knn_and_probe_on_integers_beyond_2_53_score_the_integers(dtype) -> None:
    """Before: integer features near 2**62 were rounded to float64, rows collapsed, and the accuracy was chance (0.33)."""
    x, exact, y = _timestamp_features(dtype)
    for measure in (metrics.knn_accuracy, metrics.linear_probe_accuracy):
        assert measure(x[:60], y[:60], x[60:], y[60:]) == measure(exact[:60], y[:60], exact[60:], y[60:])
    assert metrics.knn_accuracy(x[:60], y[:60], x[60:], y[60:], k=1) == 1.0


def test_euclidean_retrieval_on_integers_beyond_2_53_finds_each_rows_own_event() -> None:
    """Before: instance recall was 0.05 for int64 rows that are each their own nearest neighbour."""
    exact = np.arange(90)[:, None] * np.array([1, 2])  # distinct rows 1 ns apart
    x, y = _NANOSECONDS + exact, np.arange(90) % 3
    got = metrics.cross_view_retrieval(x, x, y, metric="euclidean")
    assert got == metrics.cross_view_retrieval(exact, exact, y, metric="euclidean")
    assert got["instance_recall_at_1"] == 1.0


def test_small_integer_features_score_as_before() -> None:
    """Integers float64 holds exactly are passed on as they were (the same scores, bit for bit)."""
    _, exact, y = _timestamp_features()
    as_float = exact.astype(np.float64)
    assert metrics.knn_accuracy(exact[:60], y[:60], exact[60:], y[60:]) == metrics.knn_accuracy(
        as_float[:60], y[:60], as_float[60:], y[60:])
    assert metrics.cross_view_retrieval(exact, exact, y, metric="euclidean") == metrics.cross_view_retrieval(
        as_float, as_float, y, metric="euclidean")


# ---------------------------------------------------------------- scipy.sparse
def _sparse_calls(model, x, e, q):
    s = scipy.sparse.csr_matrix
    return {
        "inputs['visual']": lambda: model.encode({"visual": s(x)}),
        "x": lambda: model.encoder.encode("visual", s(x)),
        "embeddings": lambda: model.fuse(s(e[:, 0])),
        "a": lambda: model.bind(s(q), q),
        "query": lambda: model.attention_weights(s(q), e),
        "mask": lambda: model.encode({"visual": x}, mask=s(np.ones((len(x), 7)))),
        "train_x": lambda: metrics.knn_accuracy(s(q), np.arange(len(q)) % 2, q, np.arange(len(q)) % 2),
        "gallery": lambda: metrics.cross_view_retrieval(q, s(q), np.arange(len(q))),
        "positive_scores": lambda: metrics.roc_auc(s(q[:, :1]), q[:, 0]),
        "features": lambda: gm.ModalFeatures(s(x[:1]), "visual"),
    }


@pytest.mark.parametrize("arg", list(_sparse_calls(None, None, None, None)))
def test_a_sparse_matrix_is_refused_by_its_argument_with_how_to_densify(arg) -> None:
    """Before: "expected a real-valued numeric array, got array of shape () and dtype object" for a scipy.sparse matrix."""
    model = small_model()
    x = np.random.default_rng(0).normal(size=(6, 5)).astype(np.float32)
    e = model.encode({"visual": x})
    q = np.ascontiguousarray(e[:, 0])
    before = state_bytes(model)
    with pytest.raises(TypeError) as info:
        _sparse_calls(model, x, e, q)[arg]()
    message = str(info.value)
    assert message.startswith(arg + ":"), message
    assert "sparse" in message and ".toarray()" in message and "shape ()" not in message, message
    assert state_bytes(model) == before


# -------------------------------------------------------- returned arrays
def test_model_embedder_returns_each_views_rows_contiguous_and_its_own() -> None:
    """Before: embed_views and hidden_features gave strided views of one [N, 7, E] array (not C-contiguous, sharing memory)."""
    model = small_model(encoder_hidden=(6,))
    rng = np.random.default_rng(0)
    views = {"a": rng.normal(size=(6, 5)), "b": rng.normal(size=(6, 4))}
    embedder = ModelEmbedder(model, {"a": "visual", "b": "auditory"})
    for read in (embedder.embed_views, embedder.hidden_features):
        out = read(views)
        assert all(v.flags.c_contiguous and v.flags.writeable and v.flags.owndata for v in out.values())
        kept = out["b"].copy()
        out["a"][:] = 7.0
        assert np.array_equal(out["b"], kept)
    emb = model.encode({"visual": views["a"], "auditory": views["b"]})
    assert np.array_equal(embedder.embed_views(views)["b"], emb[:, 1])


# ------------------------------------------------------ per-event attention
def test_a_non_finite_per_event_query_is_named_by_its_own_index() -> None:
    """Before: a NaN at index 3 of the 1-D query was reported "at index (0, 0)", a place the query does not have."""
    model = small_model()
    event = gm.MultiModalEvent(id=1, components=[gm.ModalFeatures(np.ones(5), "visual")])
    query = np.zeros(8, np.float32)
    query[3] = np.nan
    for read in (model.get_modality_attention, model.attend_to_event):
        with pytest.raises(gm.NonFiniteError, match=r"^query: .* at index 3;"):
            read(query, event)


# ------------------------------------------------ data frames paired by position
def _frames():
    import pandas as pd

    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 4))
    y = np.arange(30) % 3
    return pd.DataFrame(x), pd.DataFrame(x + 0.01 * rng.normal(size=x.shape)), pd.Series(y), rng.permutation(30)


def test_metrics_refuse_frames_of_the_same_rows_in_another_order() -> None:
    """Before: a gallery (or labels) frame in another row order was paired by position: recall 0.0, accuracy 0.17, without a word."""
    query, gallery, labels, order = _frames()
    calls = {
        "gallery": lambda: metrics.cross_view_retrieval(query, gallery.iloc[order], labels),
        "labels": lambda: metrics.cross_view_retrieval(query, gallery, labels.iloc[order]),
        "train_y": lambda: metrics.knn_accuracy(query, labels.iloc[order], gallery, labels, k=1),
        "test_y": lambda: metrics.linear_probe_accuracy(query, labels, gallery, labels.iloc[order]),
        "views['b']": lambda: metrics.unit_side_by_side({"a": query, "b": gallery.iloc[order]}, ["a", "b"]),
    }
    for arg, call in calls.items():
        with pytest.raises(gm.InvalidValueError, match=r"^" + arg.replace("[", r"\[") + r": its index is not that of") as info:
            call()
        assert info.value.arg == arg


def test_metrics_take_frames_whose_rows_are_paired() -> None:
    """Frames with one index (or plain arrays beside a frame) are scored as their arrays are."""
    query, gallery, labels, _ = _frames()
    assert metrics.cross_view_retrieval(query, gallery, labels) == metrics.cross_view_retrieval(
        query.to_numpy(), gallery.to_numpy(), labels.to_numpy())
    assert metrics.knn_accuracy(query, labels, gallery.to_numpy(), labels.to_numpy(), k=1) == 1.0


# --------------------------------------------------- the estimator's transform
@pytest.fixture(scope="module")
def fitted_embedder():
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    rng = np.random.default_rng(0)
    z = rng.normal(size=(60, 3))
    views = [z @ rng.normal(size=(3, 6)), z @ rng.normal(size=(3, 5))]
    return MultimodalEmbedder(embed_dim=8, hidden_dim=16, num_heads=2, epochs=1, random_state=0).fit(views), views


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("several", [True, False])
def test_transform_names_the_row_of_a_nan_or_inf_that_is_no_missing_view(fitted_embedder, value, several) -> None:
    """Before: "Input contains NaN inside a row" or "Input Xs[0] contains infinity ...": which row, not said."""
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    est, views = fitted_embedder
    if not several:  # one view: scikit-learn's own contract (n_features_in_) applies
        est = MultimodalEmbedder(embed_dim=8, hidden_dim=16, num_heads=2, epochs=1, random_state=0).fit(views[0])
    bad = views[0].copy()
    bad[17, 2] = value
    before = state_bytes(est.model_)
    with pytest.raises(gm.NonFiniteError, match=r"^Xs\[0\]: row 17 ") as info:
        est.transform([bad, views[1]] if several else bad)
    assert ("NaN" if np.isnan(value) else "inf") in str(info.value)
    assert state_bytes(est.model_) == before


def test_transform_still_reads_an_all_nan_row_as_a_missing_view(fitted_embedder) -> None:
    """A row NaN in every column of one view is that view missing, as before."""
    est, views = fitted_embedder
    missing = views[0].copy()
    missing[5] = np.nan
    out = est.transform([missing, views[1]])
    assert np.isfinite(out).all() and not np.array_equal(out[5], est.transform(views)[5])


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_roc_auc_names_the_index_of_a_non_finite_score(value) -> None:
    """Before: "negative_scores contains NaN or infinite values", of which of maybe millions of scores, not said."""
    negative = np.linspace(0, 1, 50)
    negative[31] = value
    with pytest.raises(gm.NonFiniteError, match=r"^negative_scores contains NaN or inf: index 31 holds (nan|inf);") as info:
        metrics.roc_auc(np.ones(3), negative)
    assert info.value.arg == "negative_scores"


def test_text_given_for_a_modality_says_how_text_is_given() -> None:
    """Before: "expected a real-valued numeric array, got array of shape (2,) and dtype <U3", not how text goes in."""
    model = gm.LearnableMultiModal(embed_dim=8, hidden_dim=16, num_heads=2, seed=0)
    for texts in (["a cat", "a dog"], ("a cat",), np.array(["a cat", "a dog"])):
        with pytest.raises(TypeError, match=r"^inputs\['linguistic'\]: got text \(\d+ str\);.*Graph\.from_text"):
            model.encode({"linguistic": texts})
    graphs = [gm.Graph.from_text(s) for s in ("a cat", "a dog")]
    assert np.isfinite(model.encode({"linguistic": graphs})).all()
