"""Every bad input is a ValueError/TypeError that says what was given and what
was expected; nothing panics the Rust side."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import grapheme_multimodal as gm

from conftest import text_event


def _raises(exc, *words):
    class Check:
        def __enter__(self):
            self.ctx = pytest.raises(exc)
            self.info = self.ctx.__enter__()
            return self

        def __exit__(self, *args):
            handled = self.ctx.__exit__(*args)
            for w in words:
                assert w in str(self.info.value), f"{w!r} not in {self.info.value}"
            return handled

    return Check()


def test_wrong_feature_dim(model):
    with _raises(ValueError, "inputs['visual']", "(any, 18)", "(3, 5)"):
        model.encode({"visual": np.zeros((3, 5))})


def test_wrong_ndim(model):
    with _raises(ValueError, "inputs['visual']", "2-D", "(18,)"):
        model.encode({"visual": np.zeros(18)})


def test_rows_disagree(model):
    with _raises(ValueError, "different numbers of rows"):
        model.encode({"visual": np.zeros((3, 18)), "auditory": np.zeros((4, 18))})
    mask = np.ones((2, 7), bool)
    with _raises(ValueError, "inputs['visual']", "expected 2 rows"):
        model.encode({"visual": np.zeros((3, 18))}, mask)


def test_nan_and_inf_in_present_rows(model):
    x = np.zeros((3, 18))
    x[1, 4] = np.nan
    with _raises(ValueError, "inputs['visual']", "row 1", "non-finite"):
        model.encode({"visual": x})
    x[1, 4] = np.inf
    with _raises(ValueError, "non-finite"):
        model.encode({"visual": x})
    emb = model.encode({"visual": np.zeros((2, 18))})
    emb[0, 0, 0] = np.nan
    with _raises(ValueError, "embeddings", "non-finite"):
        model.fuse(emb)
    with _raises(ValueError, "a", "non-finite"):
        model.bind(emb[:, 0], emb[:, 0])
    q = np.full((2, 64), np.nan, np.float32)
    with _raises(ValueError, "query", "non-finite"):
        model.attend(q, model.encode({"visual": np.zeros((2, 18))}))


def test_unknown_modality(model):
    with _raises(ValueError, "unknown modality 'smell'"):
        model.encode({"smell": np.zeros((2, 18))})
    with _raises(ValueError, "smell"):
        gm.ModalGraph(gm.Graph.from_text("x"), "smell")


def test_not_an_array(model):
    with _raises(TypeError, "inputs['visual']", "numeric"):
        model.encode({"visual": [["a"] * 18]})
    with _raises(TypeError, "inputs"):
        model.encode(np.zeros((2, 18)))
    with _raises(TypeError, "complex"):
        model.encode({"visual": np.zeros((2, 18), complex)})


def test_mask_problems(model):
    x = {"visual": np.zeros((2, 18))}
    with _raises(ValueError, "mask", "(B, 7)", "(2, 6)"):
        model.encode(x, np.ones((2, 6), bool))
    with _raises(ValueError, "mask", "0/1"):
        model.encode(x, np.full((2, 7), 2))
    mask = np.zeros((2, 7), bool)
    mask[1, 3] = True
    with _raises(ValueError, "mask", "'tactile'", "row 1", "no input array"):
        model.encode(x, mask)


def test_heads_not_dividing_embed_dim():
    with _raises(ValueError, "num_heads", "embed_dim=64", "num_heads=3"):
        gm.LearnableMultiModal(num_heads=3)


def test_fuse_event_without_components(model):
    with _raises(ValueError, "event 9", "no components"):
        model.fuse_event(gm.MultiModalEvent(9))
    # The other per-event methods are defined on an empty event.
    empty = gm.MultiModalEvent(10)
    assert model.encode_event(empty) == {}
    assert model.compute_bindings(empty) == []
    assert all(w == 0 for _, w in model.get_modality_attention(np.ones(64), empty))
    assert not model.attend_to_event(np.ones(64), empty).any()


def test_wrong_query_and_embedding_shapes(model):
    ev = text_event(0, visual="abc")
    with _raises(ValueError, "query", "(64,)", "(3,)"):
        model.attend_to_event(np.ones(3), ev)
    with _raises(ValueError, "embeddings", "(any, 7, 64)"):
        model.fuse(np.zeros((2, 6, 64)))
    with _raises(ValueError, "b", "(3, 64)"):
        model.bind(np.zeros((3, 64)), np.zeros((2, 64)))
    with _raises(TypeError, "event"):
        model.fuse_event("not an event")


finite = st.floats(-1e6, 1e6, allow_nan=False, width=32)
anything = st.floats(allow_nan=True, allow_infinity=True, width=32)


@settings(max_examples=60, deadline=None)
@given(
    x=hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=3, max_side=20), elements=anything),
    mask=hnp.arrays(np.bool_, st.tuples(st.integers(0, 6), st.integers(0, 8))),
)
def test_arbitrary_arrays_never_panic(x, mask):
    model = gm.LearnableMultiModal(embed_dim=8, hidden_dim=8, num_heads=2)
    calls = [
        lambda: model.encode({"visual": x}),
        lambda: model.encode({"visual": x}, mask),
        lambda: model.fuse(x, mask),
        lambda: model.bind(x, x),
        lambda: model.attend(x, x, mask),
        lambda: model.pair_strengths(x),
    ]
    for call in calls:
        try:
            out = call()
        except (ValueError, TypeError):
            continue
        assert np.isfinite(out).all()


@settings(max_examples=40, deadline=None)
@given(
    batch=st.integers(1, 6),
    present=st.lists(st.booleans(), min_size=7, max_size=7),
    data=st.data(),
)
def test_valid_inputs_give_finite_normalised_outputs(batch, present, data):
    model = gm.LearnableMultiModal(embed_dim=8, hidden_dim=8, num_heads=4, seed=1)
    xs = {
        m: data.draw(hnp.arrays(np.float32, (batch, 18), elements=finite))
        for m, keep in zip(range(7), present)
        if keep
    }
    mask = data.draw(hnp.arrays(np.bool_, (batch, 7)))
    mask[:, [m for m in range(7) if m not in xs]] = False
    if not xs:
        return
    emb, fused = model.encode_and_fuse(xs, mask)
    assert np.isfinite(emb).all() and np.isfinite(fused).all()
    # l2norm(v) = v / max(|v|, 1e-8): unit length, or shorter when |v| < 1e-8.
    assert (np.linalg.norm(emb, axis=2) <= 1 + 1e-4).all()
    w = model.attention_weights(fused, emb, mask)
    assert np.isfinite(w).all() and (w >= 0).all()


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(-3, 30),
    edges=st.lists(st.tuples(st.integers(-5, 40), st.integers(-5, 40)), max_size=30),
    text=st.text(max_size=50),
)
def test_graph_builders_never_panic(n, edges, text):
    try:
        g = gm.Graph.from_edges(n, edges)
    except (ValueError, TypeError):
        pass
    else:
        assert g.features().shape == (18,)
    assert gm.Graph.from_text(text).to_text() == text


def test_core_graph_from_edges_checks_the_edge_shape():
    """The private builder checks ``(m, 2)`` itself: a ``(m, 1)`` array once
    reached ``row[1]`` and panicked when ``_core`` was called directly."""
    from grapheme_multimodal import _core

    with _raises(ValueError, "edges", "(2, 1)"):
        _core.Graph.from_edges(3, np.zeros((2, 1), np.int64), None)
