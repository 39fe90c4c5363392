"""Numerical extremes through the public API: finite inputs a user could
have (1e20, 3e38, float64 beyond float32, float32 subnormals, all-zero rows
and modalities, constant columns, one huge outlier row, columns on wildly
different scales) and extreme settings (learning rates, weight decay,
gradient clipping, temperatures). Every call gives a finite answer or a
:class:`~grapheme_multimodal.GraphemeError` naming the argument at fault,
and a refused step leaves the model and Adam's state as they were."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import grapheme_multimodal as gm
from grapheme_multimodal import datasets, metrics
from test_trust_core import all_finite_state, same_state, state  # a model's weights and Adam state, compared

E = 16
DIMS = {"visual": 5, "auditory": 4}


def small_model(**kw) -> gm.LearnableMultiModal:
    return gm.LearnableMultiModal(**{"embed_dim": E, "hidden_dim": 24, "num_heads": 2, "seed": 0, "input_dims": DIMS, **kw})


def inputs(rows: int = 16, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {m: rng.normal(size=(rows, d)) for m, d in DIMS.items()}


# ------------------------------------- parameters grown by a huge learning rate
GROWN = r"^parameters: the {}'s parameters have grown to .* in magnitude, and a row of moderate values .*\(too large a learning rate grows them\)$"


def blames_parameters(component: str):
    return pytest.raises(gm.NonFiniteError, match=GROWN.format(re.escape(component)))


def grown(**kw) -> gm.LearnableMultiModal:
    """A model one accepted step of lr=1e30 grew (its first Adam step, 1e31, is within float32)."""
    m = small_model(**kw)
    m.train_step(inputs(), lr=1e30)
    assert all_finite_state(m)
    return m


def test_the_fusion_networks_grown_parameters_are_blamed_not_the_callers_inputs():
    # Was "inputs: row 0 overflows float32 in the fusion network; modality embeddings
    # are unit vectors (from encode), expected values of moderate size" for rows of
    # N(0, 1) values, in every call that fuses: the user was sent to look for a bad row.
    m = grown()
    x = inputs()
    emb = m.encode(x)  # the encoders still encode (huge rows are rescaled)
    assert np.allclose(np.linalg.norm(emb[:, :2], axis=2), 1, atol=1e-5)
    event = gm.MultiModalEvent(1)
    event.add_component(gm.ModalFeatures(x["visual"][0], "visual"))
    event.add_component(gm.ModalFeatures(x["auditory"][0], "auditory"))
    for call in (lambda: m.encode_and_fuse(x), lambda: m.fuse(emb), lambda: m.fuse_event(event),
                 lambda: m.encode_event(event), lambda: m.compute_bindings(event)):
        with blames_parameters("fusion network") as err:
            call()
        assert err.value.arg == "parameters" and not re.search(r"row \d", str(err.value))


def test_the_attentions_grown_parameters_are_blamed_not_the_query():
    m = grown()
    emb = m.encode(inputs())
    for call in (lambda: m.attention_weights(emb[:, 0], emb), lambda: m.attend(emb[:, 0], emb)):
        with blames_parameters("attention") as err:
            call()
        assert err.value.arg == "parameters"


def test_a_grown_encoder_with_a_shared_head_is_blamed_not_the_row():
    # Was "inputs['visual']: row 0 overflows float32 in the encoder ...; expected
    # values of moderate size" from encode: fit said "parameters", encode did not.
    m = grown(encoder_hidden=(8,), shared_head=(16, E))
    x = inputs()
    for call in (lambda: m.encode(x), lambda: m.encode_and_fuse(x)):
        with blames_parameters("visual encoder") as err:
            call()
        assert err.value.arg == "parameters"


def test_rows_larger_than_the_parameters_are_still_blamed():
    # The rule only moves the blame when the parameters are the larger.
    m = small_model()
    huge = np.full((2, 7, E), 3e38, np.float32)
    with pytest.raises(gm.NonFiniteError, match=r"^embeddings: row 0 overflows float32 in the fusion network") as err:
        m.fuse(huge)
    assert err.value.arg == "embeddings"
    m = small_model(encoder_hidden=(8,), shared_head=(16, E))
    m.set_normalization("visual", np.full(5, -3e38), np.ones(5))  # (x - mean) leaves float32
    with pytest.raises(gm.NonFiniteError, match=r"^inputs\['visual'\]: row 0 overflows float32 in the encoder") as err:
        m.encode({"visual": np.full((2, 5), 3e38)})
    assert err.value.arg == "inputs['visual']"


# ------------------------------------------------------- metrics of wide data
def classes(n: int = 60, seed: int = 0) -> "tuple[np.ndarray, np.ndarray]":
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), n // 3)
    return rng.normal(size=(n, 4)) + 3.0 * y[:, None], y


@pytest.mark.parametrize("outlier", [1e250, 1e300, -1e300])
def test_one_huge_row_does_not_make_the_other_rows_neighbours_ties(outlier):
    # Every value was scaled below 1 when one row was beyond 2**500: the other rows
    # became ~1e-300, their squared distances 0, and every neighbour a tie (5-NN
    # accuracy 0.33, retrieval at chance). In exact arithmetic one far row changes
    # no other row's neighbours.
    pytest.importorskip("sklearn")
    x, y = classes()
    far = x.copy()
    far[-1] = outlier  # a test row (odd rows are the test split)
    train, test = slice(0, None, 2), slice(1, None, 2)
    n_test = len(y[test])
    ordinary = metrics.knn_accuracy(x[train], y[train], x[test][:-1], y[test][:-1])
    with_far = metrics.knn_accuracy(far[train], y[train], far[test], y[test])
    assert round(with_far * n_test - ordinary * (n_test - 1)) in (0, 1)  # the far row scores as it may
    gallery = x + 0.1 * np.random.default_rng(1).normal(size=x.shape)
    want = metrics.cross_view_retrieval(x[:-1], gallery[:-1], y[:-1], metric="euclidean")
    far_gallery = gallery.copy()
    far_gallery[-1] = outlier
    got = metrics.cross_view_retrieval(far, far_gallery, y, metric="euclidean")
    for key in got:  # the far query finds the far gallery row, the others what they found without it
        assert got[key] * len(y) == pytest.approx(want[key] * (len(y) - 1) + 1)


@pytest.mark.parametrize("value", [1e100, 7e40])
def test_a_constant_column_changes_no_metric(value):
    # A column holding one large value (a dataset's one timestamp, a unit's offset)
    # adds nothing to a distance or a standardised probe, but the rounding of its
    # mean was left as its value: the probe and Euclidean retrieval were at chance.
    pytest.importorskip("sklearn")
    x, y = classes()
    with_constant = np.c_[x, np.full(len(x), value)]
    train, test = slice(0, None, 2), slice(1, None, 2)
    for metric in (metrics.knn_accuracy, metrics.linear_probe_accuracy):
        assert metric(with_constant[train], y[train], with_constant[test], y[test]) == metric(x[train], y[train], x[test], y[test])
    gallery = x + 0.1 * np.random.default_rng(1).normal(size=x.shape)
    assert metrics.cross_view_retrieval(with_constant, np.c_[gallery, np.full(len(x), value)], y, metric="euclidean") == \
        metrics.cross_view_retrieval(x, gallery, y, metric="euclidean")


@pytest.mark.parametrize("outlier", [1e250, 1e300, -1e300])
def test_one_huge_test_row_leaves_the_probe_fitted_on_the_training_rows(outlier):
    # The probe's columns were scaled by the largest value of train and test alike:
    # one test row of 1e300 made the training values ~1e-300, their variance 0, and
    # the probe predicted one class for every row (accuracy 0.33).
    pytest.importorskip("sklearn")
    x, y = classes()
    train, test = slice(0, None, 2), slice(1, None, 2)
    far = x[test].copy()
    far[-1] = outlier
    ordinary = metrics.linear_probe_accuracy(x[train], y[train], x[test][:-1], y[test][:-1])
    with_far = metrics.linear_probe_accuracy(x[train], y[train], far, y[test])
    assert round(with_far * len(far) - ordinary * (len(far) - 1)) in (0, 1)


# ------------------------------------------------------------ properties
PROPERTY = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))
HOSTILE = ["none", "zero_row", "zero_modality", "constant_column", "outlier_row", "column_scales", "subnormal_float32"]


def hostile_inputs(kind: str, scale: float, seed: int, rows: int = 12) -> dict:
    x = inputs(rows, seed)
    v = x["visual"] * scale
    if kind == "zero_row":
        v[seed % rows] = 0.0
    elif kind == "zero_modality":
        v[:] = 0.0
    elif kind == "constant_column":
        v[:, 0] = scale
    elif kind == "outlier_row":
        v[seed % rows] = 3e38
    elif kind == "column_scales":
        v *= np.array([1e-30, 1.0, 1e10, 1e20, 1e30])
    elif kind == "subnormal_float32":
        return {"visual": (x["visual"] * 1e-40).astype(np.float32), "auditory": x["auditory"]}
    return {"visual": v, "auditory": x["auditory"]}


@PROPERTY
@given(kind=st.sampled_from(HOSTILE), scale=st.sampled_from([1e-30, 1e-3, 1.0, 1e20, 1e38]), seed=st.integers(0, 2**16),
       standardize=st.booleans(), lr=st.sampled_from([None, 1e-8, 1.0, 1e10]))
def test_a_step_on_hostile_finite_data_is_finite_or_refused_and_changes_nothing(kind, scale, seed, standardize, lr):
    m = small_model(encoder_hidden=(8,)) if seed % 2 else small_model()
    x = hostile_inputs(kind, scale, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # precision warnings are the subject of another file
        before = state(m)
        try:
            if standardize:
                m.fit_normalization(x)
                before = state(m)
            losses = m.train_step(x, lr=lr)
        except gm.GraphemeError as err:
            assert err.arg, err  # named
            assert same_state(state(m), before), "a refused step changes nothing"
            return
    assert all(np.isfinite(v) for v in losses.values()), losses
    assert all_finite_state(m), "an accepted step leaves finite weights and moments"
    try:
        emb, fused = m.encode_and_fuse(x)
    except gm.NonFiniteError as err:  # after lr=1e10 the weights may be huge: named, not NaN
        assert err.arg in ("parameters", "inputs['visual']"), err
    else:
        assert np.isfinite(emb).all() and np.isfinite(fused).all()


@settings(max_examples=40, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
@given(exponent=st.integers(160, 307), sign=st.sampled_from([1.0, -1.0]), row=st.integers(0, 29))
def test_one_far_test_row_changes_no_other_rows_neighbours(exponent, sign, row):
    pytest.importorskip("sklearn")
    x, y = classes()
    train, test = x[::2], x[1::2]
    ty, vy = y[::2], y[1::2]
    far = test.copy()
    far[row] = sign * 10.0**exponent
    rest = np.arange(len(test)) != row
    ordinary = metrics.knn_accuracy(train, ty, test[rest], vy[rest])
    got = metrics.knn_accuracy(train, ty, far, vy)
    assert round(got * len(test) - ordinary * (len(test) - 1)) in (0, 1)


@pytest.mark.parametrize("value", [1e100, 7e40, 1.6000000000000123e18])
def test_standardize_maps_a_constant_training_column_to_0_with_std_1(value):
    # The mean of n copies of a large c rounds off c: the column's std was that
    # rounding instead of 0 (so not replaced by the documented 1), and its z-scores
    # were all ±1 instead of 0, in the training and the test views alike.
    x = np.random.default_rng(0).normal(size=(30, 3))
    train_z, test_z = datasets.standardize({"v": np.c_[x, np.full(30, value)]}, {"v": np.c_[x[:2], np.full(2, value)]})
    assert np.array_equal(train_z["v"][:, 3], np.zeros(30, np.float32))
    assert np.array_equal(test_z["v"][:, 3], np.zeros(2, np.float32))
    want = datasets.standardize({"v": x}, {"v": x[:2]})
    assert np.array_equal(train_z["v"][:, :3], want[0]["v"]) and np.array_equal(test_z["v"][:, :3], want[1]["v"])


@pytest.mark.parametrize("value", [7e40, 1e100, 1.6000000000000123e18])
def test_exact_cca_of_a_view_with_a_constant_column_is_the_cca_without_it(value):
    # The column's mean rounded off its value and the residue, the same in every row,
    # outweighed the other columns: all canonical correlations came out 0.
    from grapheme_multimodal.evaluation import ExactCCA

    rng = np.random.default_rng(0)
    z = rng.normal(size=(500, 2))
    x = z @ rng.normal(size=(2, 6)) + 0.1 * rng.normal(size=(500, 6))
    y = z @ rng.normal(size=(2, 4)) + 0.1 * rng.normal(size=(500, 4))
    want = ExactCCA(3).fit(x, y)
    got = ExactCCA(3).fit(np.c_[x, np.full(500, value)], y)
    # equal but for the ridge, reg * trace / columns, which one more column changes
    np.testing.assert_allclose(got.correlations_, want.correlations_, rtol=1e-4)
    scores, want_scores = got.transform(np.c_[x, np.full(500, value)]), want.transform(x)
    signs = np.sign((scores * want_scores).sum(axis=0))  # a component's sign is arbitrary
    np.testing.assert_allclose(scores * signs, want_scores, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("options", [dict(contrastive_neighbors=3), dict(fused_neighbor_space="inputs"),
                                     dict(neighborhood_neighbors=3)])
def test_neighbours_by_the_inputs_ignore_a_column_all_rows_share(options):
    # The nearest rows by the inputs (contrastive's partial positives,
    # fused_contrastive's by the inputs, neighborhood's) were found from
    # |a|^2 + |b|^2 - 2 a.b in float32: a raw column holding 1000 (a year, a price)
    # beside ordinary ones already changed them, and from 1e5 on they were rounding
    # noise. The column adds nothing to a distance: with its encoder weights 0, the
    # losses must be those of the column at 0.
    rng = np.random.default_rng(0)
    visual, auditory = rng.normal(size=(32, 5)).astype(np.float32), rng.normal(size=(32, 4)).astype(np.float32)
    weights = {"neighborhood": 1.0} if "neighborhood_neighbors" in options else None

    def losses(value: float) -> dict:
        m = gm.LearnableMultiModal(embed_dim=E, hidden_dim=24, num_heads=2, seed=0, input_dims={"visual": 6, "auditory": 4}, **options)
        w = m.state_dict()["encoder.visual.weight"].copy()
        w[:, 5] = 0.0  # the column reaches no embedding
        m.load_state_dict({**m.state_dict(), "encoder.visual.weight": w})
        return m.losses({"visual": np.c_[visual, np.full(32, value, np.float32)], "auditory": auditory}, weights=weights)

    want = losses(0.0)
    for value in (1e3, 1e5, 1e20, -3e38):
        assert losses(value) == want, value
