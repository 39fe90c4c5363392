"""Defects a generated (hypothesis) search over the public API found that the
hand-written audits had not: numpy's timedelta64 taken for an integer, a
buffer's row size computed in int64, and numbers given as 0-d arrays that
float() cannot read."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import metrics
from grapheme_multimodal.evaluation import ExactCCA

from conftest import holding_embeddings

N = 12
DIMS = {"visual": 3, "linguistic": 4}

#: numpy counts np.timedelta64 among its integers (isinstance(..., np.integer)); the package's int checks let
#: it through: a unitless one passed for its count (3), one with a unit failed in int()/float() naming nothing,
#: and comparing one with 2**64 (a seed's bound) raised OverflowError.
DURATIONS = [np.timedelta64(3), np.timedelta64(3, "s")]


def _data() -> dict:
    rng = np.random.default_rng(0)
    return {k: rng.normal(size=(N, d)) for k, d in DIMS.items()}


def _trained() -> gm.LearnableMultiModal:
    model = gm.LearnableMultiModal(seed=0, embed_dim=8, hidden_dim=8, num_heads=2, input_dims=DIMS)
    model.fit(_data(), epochs=1, batch_size=6, progress=False)
    return model


def _state(model: gm.LearnableMultiModal) -> tuple:
    return (
        {k: v.copy() for k, v in model.state_dict().items()},
        copy.deepcopy(model.optimizer_state()),
        [model.normalization(m) for m in gm.Modality],
        model.epochs_trained,
        copy.deepcopy(model.history),
    )


def _assert_same_state(a: tuple, b: tuple) -> None:
    for name, value in a[0].items():
        np.testing.assert_array_equal(b[0][name], value, err_msg=name)
    assert repr(a[1:]) == repr(b[1:])


def _buffer() -> gm.ExperienceBuffer:
    buf = gm.ExperienceBuffer(capacity=8, embed_dim=4)
    buf.extend(np.zeros((5, 7, 4)), np.ones((5, 7), bool), np.zeros((5, 4)), np.zeros((5, 7, 7)), np.zeros(5))
    return buf


_X = np.random.default_rng(1).normal(size=(20, 3))
_Y = np.arange(20) % 2

# (argument named in the error, call taking the duration)
CALLS = {
    "config.embed_dim": ("embed_dim", lambda v: gm.LearnableMultiModalConfig(embed_dim=v, num_heads=1)),
    "config.seed": ("seed", lambda v: gm.LearnableMultiModalConfig(seed=v)),
    "config.fused_neighbors": ("fused_neighbors", lambda v: gm.LearnableMultiModalConfig(fused_neighbors=v)),
    "config.encoder_hidden": ("encoder_hidden", lambda v: gm.LearnableMultiModalConfig(encoder_hidden=(v,))),
    "config.input_dims": ("input_dims", lambda v: gm.LearnableMultiModalConfig(input_dims={"visual": v})),
    "config.learning_rate": ("learning_rate", lambda v: gm.LearnableMultiModalConfig(learning_rate=v)),
    "model.hidden_width": ("layer", lambda v: gm.LearnableMultiModal(encoder_hidden=(4,)).hidden_width(v)),
    "buffer.capacity": ("capacity", lambda v: gm.ExperienceBuffer(capacity=v)),
    "buffer.seed": ("seed", lambda v: gm.ExperienceBuffer(seed=v)),
    "buffer.sample": ("batch_size", lambda v: _buffer().sample(v)),
    "buffer[position]": ("position", lambda v: _buffer()[v]),
    "Graph.from_edges": ("num_nodes", lambda v: gm.Graph.from_edges(v, np.zeros((0, 2), int))),
    "Graph.from_sequence": ("value_range", lambda v: gm.Graph.from_sequence([0.0, 1.0], value_range=(0, v))),
    "GraphFeaturizer": ("iterations", lambda v: gm.GraphFeaturizer("wl", iterations=v)),
    "SpatialRegion": ("x", lambda v: gm.SpatialRegion(v, 0, 1, 1)),
    "knn_accuracy": ("k", lambda v: metrics.knn_accuracy(_X, _Y, _X, _Y, v)),
    "cross_view_retrieval": ("chunk_size", lambda v: metrics.cross_view_retrieval(_X, _X, _Y, chunk_size=v)),
    "linear_probe_accuracy": ("C", lambda v: metrics.linear_probe_accuracy(_X, _Y, _X, _Y, v)),
    "ExactCCA": ("n_components", lambda v: ExactCCA(n_components=v).fit(_X, _X)),
    "set_num_threads": ("n", lambda v: gm.set_num_threads(v)),
}


@pytest.mark.parametrize("duration", DURATIONS, ids=str)
@pytest.mark.parametrize("call", sorted(CALLS))
def test_a_timedelta64_is_no_int_nor_number(call, duration) -> None:
    """Refused as what it is, naming the argument, whatever its unit."""
    arg, fn = CALLS[call]
    with pytest.raises((TypeError, ValueError), match=rf"^{arg}\b.*timedelta64") as info:
        fn(duration)
    assert not isinstance(info.value, OverflowError)


FIT_OPTIONS = {
    "epochs": lambda v: {"epochs": v},
    "batch_size": lambda v: {"batch_size": v},
    "seed": lambda v: {"seed": v},
    "early_stopping": lambda v: {"early_stopping": v, "validation": _data()},
    "lr": lambda v: {"lr": v},
    "objectives['contrastive']": lambda v: {"objectives": {"contrastive": v}},
}


@pytest.mark.parametrize("duration", DURATIONS, ids=str)
@pytest.mark.parametrize("option", sorted(FIT_OPTIONS))
def test_fit_refuses_a_timedelta64_option_and_leaves_the_model_as_it_was(option, duration) -> None:
    """epochs=np.timedelta64(3) trained 3 epochs; np.timedelta64(3, "s") was a
    TypeError from int() naming no argument."""
    model = _trained()
    before = _state(model)
    with pytest.raises((TypeError, ValueError), match=rf"^{option.replace('[', '.').replace(']', '.')}"):
        model.fit(_data(), progress=False, **FIT_OPTIONS[option](duration))
    _assert_same_state(before, _state(model))


def test_a_metric_or_objective_weight_float_cannot_read_is_named() -> None:
    """A 0-d array of text or of durations has __float__, and float() of it
    raised numpy's error, which named neither the objective nor the metric."""
    model = _trained()
    before = _state(model)
    for weight in (np.array("x"), np.array(np.timedelta64(3, "s"))):
        with pytest.raises(TypeError, match=r"^objectives\['contrastive'\]: expected a number"):
            model.fit(_data(), epochs=1, progress=False, objectives={"contrastive": weight})
        with pytest.raises(TypeError, match=r"^metrics\['m'\]: returned .*; expected a real number"):
            model.fit(_data(), epochs=1, progress=False, validation=_data(), metrics={"m": lambda _m, w=weight: w})
    with pytest.raises(TypeError, match=r"^metrics\['m'\]: returned timedelta64; expected a real number"):
        model.fit(_data(), epochs=1, progress=False, validation=_data(), metrics={"m": lambda _m: np.timedelta64(3, "s")})
    _assert_same_state(before, _state(model))


def test_a_recorded_reward_and_event_id_refuse_a_timedelta64() -> None:
    model = _trained()
    event = gm.MultiModalEvent(1)
    event.add_component(gm.ModalFeatures(np.zeros(3), gm.Modality.VISUAL))
    with pytest.raises(TypeError, match=r"^reward: expected a real number, got timedelta64"):
        model.record_fusion(event, reward=np.timedelta64(3, "s"))
    assert model.num_experiences() == 0


@pytest.mark.parametrize("dims", [
    {"embed_dim": 2**62},
    {"embed_dim": 2**61},
    {"embed_dim": 4, "input_dims": [1] * 6 + [2**62]},
], ids=str)
def test_a_buffers_row_size_does_not_wrap_in_int64(dims) -> None:
    """A row's bytes were np.prod of its shapes, in int64: embed_dim=2**62
    made a row of 224 bytes, and the buffer was refused as a capacity of
    1,000 experiences of 224 bytes that "cannot be allocated", blaming the
    capacity, not the size given."""
    arg = "embed_dim" if "input_dims" not in dims else "input_dims"
    with pytest.raises(gm.TooLargeError, match=rf"^{arg}: got .*do not fit in this machine's memory") as info:
        gm.ExperienceBuffer(**dims)
    assert info.value.arg == arg


@pytest.mark.parametrize("names, match", [
    (None, r"^names: expected a sequence of view names, got NoneType$"),
    (3, r"^names: expected a sequence of view names, got int$"),
    ("ab", r"^names: expected a sequence of view names, got str \(pass \['ab'\] for one view\)$"),
    ({"a": 1}, r"^names: expected a sequence of view names, got dict$"),
    ([["a"]], r"^names: expected view names \(keys of views\), got list$"),
])
def test_unit_side_by_side_names_its_names_argument(names, match) -> None:
    """list(None) raised "'NoneType' object is not iterable" and an
    unhashable name "unhashable type: 'list'", naming nothing; a str was read
    as its letters: names="ab" put views "a" and "b" side by side."""
    x = np.ones((3, 2))
    with pytest.raises(TypeError, match=match):
        metrics.unit_side_by_side({"a": x, "b": x, "ab": x}, names)
    assert metrics.unit_side_by_side({"a": x, "b": x}, ("a", "b")).shape == (3, 4)


def test_the_estimator_names_xs_given_as_none() -> None:
    """fit(None) was scikit-learn's "Expected 2D array, got scalar array
    instead: array=nan", naming no argument and a NaN never given (one of
    several views given as None was already refused by name)."""
    pytest.importorskip("sklearn")
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    estimator = MultimodalEmbedder(embed_dim=8, hidden_dim=8, num_heads=2, epochs=1)
    with pytest.raises(TypeError, match=r"^Xs: got None; expected a list of \[n, d\] arrays"):
        estimator.fit(None)
    assert not hasattr(estimator, "model_")


def _grown(prefix: str) -> gm.LearnableMultiModal:
    """A model whose `prefix` parameters a huge learning rate grew to 1e30
    (finite: fit takes such a step), as fit(lr=1e30) leaves them."""
    model = gm.LearnableMultiModal(seed=0, embed_dim=8, hidden_dim=8, num_heads=2, input_dims=DIMS)
    state = {k: (np.sign(v) + (v == 0)) * np.float32(1e30) if k.startswith(prefix) else v
             for k, v in model.state_dict().items()}
    model.load_state_dict(state)
    return model


def _recorded(embeddings: np.ndarray, rows: int = 4) -> gm.ExperienceBuffer:
    buf = gm.ExperienceBuffer(capacity=8, embed_dim=8)
    buf.extend(embeddings, np.ones((rows, 7), bool), np.zeros((rows, 8)), np.zeros((rows, 7, 7)), np.zeros(rows))
    return buf


def _unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)  # recorded embeddings are unit vectors, as the model's


@pytest.mark.parametrize("embeddings", [np.zeros((4, 7, 8)), _unit_rows(np.random.default_rng(2).normal(size=(4, 7, 8)))],
                         ids=["zeros", "moderate"])
def test_a_loss_that_grown_parameters_overflow_blames_the_parameters(embeddings) -> None:
    """On recorded embeddings, a loss that overflowed blamed the batch's
    largest value, whatever it was: zeros were "embeddings: ... overflows
    float32 on the batch's embeddings (largest magnitude 0.000e0); expected
    values of moderate size", where the parameters a huge learning rate had
    grown to 1e30 overflowed (err.arg "embeddings"), as fuse() of the same
    model says."""
    model = _grown("fusion.")
    before = _state(model)
    with pytest.raises(gm.NonFiniteError, match=r"^parameters: the fusion network's parameters have grown to 1\.000e\+?30") as info:
        model.fit(_recorded(embeddings), epochs=1, progress=False, objectives={"seed_consistency": 1.0})
    assert info.value.arg == "parameters"
    _assert_same_state(before, _state(model))
    with pytest.raises(gm.NonFiniteError, match=r"^parameters: the fusion network's parameters have grown"):
        model.fuse(embeddings[:1])


def test_a_loss_that_huge_recorded_embeddings_overflow_still_blames_them() -> None:
    """Recorded embeddings of 3e38 (far from the unit vectors the model
    records) are blamed, named as fit's argument (the buffer, ``data``) and
    the experience, before any loss is taken."""
    model = gm.LearnableMultiModal(seed=0, embed_dim=8, hidden_dim=8, num_heads=2, input_dims=DIMS)
    with pytest.raises(gm.InvalidValueError, match=r"^data: experience 0's visual embedding has norm 8\.48528e\+38") as info:
        model.fit(holding_embeddings(_recorded(np.zeros((4, 7, 8))), np.full((4, 7, 8), 3e38)), epochs=1, progress=False, objectives={"seed_consistency": 1.0})
    assert info.value.arg == "data"
