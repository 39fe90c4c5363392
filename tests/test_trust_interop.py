"""Arrays from everywhere: the same values in another layout or container
(byte order, Fortran order, strides, read-only or memory-mapped buffers,
data frames, lists) give the same bits as a plain C-contiguous array, or a
refusal naming the argument; no call writes into the caller's array."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import metrics
from grapheme_multimodal.buffer import ExperienceBuffer
from grapheme_multimodal.evaluation import ExactCCA

N, D = 12, 6
RNG = np.random.default_rng(0)
X = RNG.normal(size=(N, D))
A = RNG.normal(size=(N, D))
Y = np.arange(N) % 3
SCORES = RNG.normal(size=N)


def layouts(a: np.ndarray, tmp_path) -> dict:
    """``a``'s values (float64) in other layouts and containers."""
    wide = np.zeros(a.shape[:-1] + (2 * a.shape[-1],))
    wide[..., ::2] = a
    readonly = a.copy()
    readonly.flags.writeable = False
    mapped = np.memmap(tmp_path / "a.bin", dtype=a.dtype, mode="w+", shape=a.shape)
    mapped[:] = a
    out = {
        "big-endian": a.astype(">f8"),
        "fortran": np.asfortranarray(a),
        "negative strides": np.ascontiguousarray(a[::-1])[::-1],
        "column slice": wide[..., ::2],
        "read-only": readonly,
        "memmap": mapped,
        "frombuffer": np.frombuffer(a.tobytes(), dtype=a.dtype).reshape(a.shape),
        "list": a.tolist(),
    }
    if a.ndim <= 2:
        out["matrix"] = np.matrix(a) if a.ndim == 2 else None
        out["pandas"] = pd.DataFrame(a) if a.ndim == 2 else pd.Series(a)
        out["pandas Float64"] = out["pandas"].astype("Float64")
    return {k: v for k, v in out.items() if v is not None}


def assert_same(got, want) -> None:
    if isinstance(want, dict):
        assert got.keys() == want.keys()
        for k in want:
            assert_same(got[k], want[k])
    elif isinstance(want, (tuple, list)):
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert_same(g, w)
    elif isinstance(want, np.ndarray):
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
    else:
        assert got == want


def small_model() -> gm.LearnableMultiModal:
    return gm.LearnableMultiModal(embed_dim=8, hidden_dim=16, num_heads=2, seed=0, input_dims={"visual": D, "auditory": D})


def _cca(x):
    cca = ExactCCA(2).fit(x, A)
    return cca.correlations_, cca.x_weights_, cca.transform(x, A)


def _train(x):
    model = small_model()
    model.train_step({"visual": x, "auditory": A})
    return model.state_dict()


MODEL = small_model()
EMB = MODEL.encode({"visual": X, "auditory": A}).astype(np.float64)
MASK = np.zeros((N, 7), bool)
MASK[:, :2] = True

ENTRY_POINTS = {  # name: (call, the plain array it is given)
    "ExactCCA.fit X": (_cca, X),
    "ExactCCA.fit Y": (lambda y: ExactCCA(2).fit(A, y).correlations_, X),
    "encode": (lambda x: MODEL.encode({"visual": x, "auditory": A}), X),
    "encoder.encode": (lambda x: MODEL.encoder.encode("visual", x), X),
    "losses": (lambda x: small_model().losses({"visual": x, "auditory": A}), X),
    "train_step": (_train, X),
    "fuse": (lambda e: MODEL.fusion.fuse(e, MASK), EMB),
    "pair_strengths": (lambda e: MODEL.binder.pair_strengths(e, MASK), EMB),
    "attention": (lambda q: MODEL.attention.weights(q, EMB, MASK), EMB[:, 0]),
    "knn_accuracy": (lambda x: metrics.knn_accuracy(x, Y, A, Y, k=3), X),
    "linear_probe_accuracy": (lambda x: metrics.linear_probe_accuracy(A, Y, x, Y), X),
    "cross_view_retrieval": (lambda x: metrics.cross_view_retrieval(x, A, Y), X),
    "roc_auc": (lambda s: metrics.roc_auc(s, -SCORES), SCORES),
    "Graph.from_sequence": (lambda s: gm.Graph.from_sequence(s).features(), SCORES),
    "ExperienceBuffer.extend": (
        lambda e: ExperienceBuffer(capacity=20, seed=0).extend(e, MASK, EMB[:, 0], np.zeros((N, 7, 7)), SCORES) or None,
        EMB,
    ),
}


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # np.matrix's own
@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_other_layouts_give_the_same_bits_and_leave_the_input_as_it_was(entry, tmp_path) -> None:
    call, plain = ENTRY_POINTS[entry]
    want = call(plain)
    for layout, given in layouts(plain, tmp_path).items():
        before = np.array(given, dtype=np.float64, copy=True)
        try:
            got = call(given)
        except (gm.GraphemeError, TypeError) as err:  # a refusal must name what it refuses
            assert layout == "matrix" and "shape" in str(err), (entry, layout, err)
            continue
        assert_same(got, want), (entry, layout)
        np.testing.assert_array_equal(np.asarray(given, dtype=np.float64), before, err_msg=f"{entry} wrote into {layout}")


def test_exact_cca_of_a_fortran_array_or_data_frame_is_that_of_the_c_array() -> None:
    # A data frame's values (and np.asfortranarray) are Fortran-ordered: XᵀX summed in another order,
    # and the correlations, weights and scores differed in their last bits from the same numbers in C order.
    want = _cca(X)
    for given in (np.asfortranarray(X), pd.DataFrame(X)):
        assert_same(_cca(given), want)
    fitted = ExactCCA(2).fit(X, A)
    assert_same(fitted.transform(np.asfortranarray(X), np.asfortranarray(A)), fitted.transform(X, A))


def test_a_generator_set_or_dict_view_is_refused_by_name_not_read_as_one_object() -> None:
    # numpy makes each one object: "positive_scores: ... got array of shape () and dtype object", or
    # "train_y must have shape (12,) ..., got ()", naming neither the generator nor the remedy.
    calls = {
        "positive_scores": lambda v: metrics.roc_auc(v, -SCORES),
        "train_y": lambda v: metrics.knn_accuracy(X, v, A, Y, k=3),
        "labels": lambda v: metrics.cross_view_retrieval(X, A, v),
        "values": lambda v: gm.Graph.from_sequence(v),
        "rewards": lambda v: small_model().record_batch({"visual": X}, rewards=v),
        "inputs['visual']": lambda v: MODEL.encode({"visual": v}),
        "mask": lambda v: MODEL.fuse(EMB, v),
    }
    for name, call in calls.items():
        plain = MASK if name == "mask" else X if name.startswith("inputs") else Y if name in ("train_y", "labels") else SCORES
        for given, what in (((v for v in plain.tolist()), "generator"), (iter(plain.tolist()), "list_iterator"),
                            (dict(enumerate(plain.tolist())).values(), "dict_values")):
            with pytest.raises(TypeError, match=rf"^{re.escape(name)}: got a {what}; expected an array or a list"):
                call(given)
    with pytest.raises(TypeError, match=r"^positive_scores: got a set; .* row order"):
        metrics.roc_auc(set(SCORES.tolist()), -SCORES)


def test_a_non_numeric_column_or_item_is_named_not_only_dtype_object() -> None:
    # Each was "inputs['visual']: expected a real-valued numeric array, got array of shape (12, 7) and dtype
    # object": neither the data frame's string column, nor the item that is no number, nor a remedy.
    mixed = pd.DataFrame(X).assign(city="Oslo")
    with pytest.raises(TypeError, match=r"^inputs\['visual'\]: .* data frame whose column 'city' has dtype .*"
                                        r"select_dtypes\('number'\)"):
        MODEL.encode({"visual": mixed})
    with pytest.raises(TypeError, match=r"^train_x: .* dtype object of numbers stored as Python objects: "
                                        r"pass np.asarray\(train_x, dtype=float\)"):
        metrics.knn_accuracy(X.astype(object), Y, A, Y, k=3)
    with pytest.raises(TypeError, match=r"^positive_scores: .* dtype object \(at index 1: str 'x'\)"):
        metrics.roc_auc(pd.Series([1.0, "x"]), -SCORES)
    with pytest.raises(TypeError, match=r"^X: .* \(at index \(0, 1\): NoneType None\)"):
        ExactCCA(1).fit(np.array([[1.0, None]] * N, dtype=object), A)
