"""The per-call paths made cheaper in Rust (one buffer per event for the
component rows, borrowed row indices, the degree count of a small graph on
the stack, one chunk run without a task list, the encoder rescue behind one
test of the norms) against the general paths they stand in for: the same
bits, on both sides of every size where the cheap form stops (64
components of one modality, 256 rows of a batch, 512 nodes of a graph)."""

from __future__ import annotations

import numpy as np
import pytest

import grapheme_multimodal as gm


@pytest.fixture(scope="module")
def model() -> gm.LearnableMultiModal:
    return gm.LearnableMultiModal(seed=0)


def _components_call(model, items):
    """What ``_core.encode_event`` computes, through the general component
    path: each modality's rows stacked in the order given, all in row 0,
    pooled by confidence."""
    spec = model._featurizer_spec()
    rows = {}
    for m, item, confidence in items:
        if isinstance(item, gm.Graph):
            kind, dim, iterations = spec[m]
            x = item.features(kind, dim, iterations)
        else:
            x = np.asarray(item, dtype=np.float32)
        rows.setdefault(m, ([], []))
        rows[m][0].append(x)
        rows[m][1].append(confidence)
    parts = [None] * 7
    for m, (xs, ws) in rows.items():
        parts[m] = (np.stack(xs).astype(np.float32), [0] * len(xs), np.asarray(ws, dtype=np.float32))
    emb = model._core.encode_components(1, parts)
    mask = np.array([[m in rows for m in range(7)]])
    return emb, mask


def _assert_event_is_components(model, items):
    core_items = [(m, item._g if isinstance(item, gm.Graph) else item, c) for m, item, c in items]
    emb, mask, fused = model._core.encode_event(0, core_items, model._featurizer_spec())
    want_emb, want_mask = _components_call(model, items)
    np.testing.assert_array_equal(mask, want_mask)
    assert emb.tobytes() == want_emb.tobytes()
    assert not emb.flags.writeable and not mask.flags.writeable
    if mask.any():
        assert fused.tobytes() == model._core.fuse(want_emb, want_mask)[0].tobytes()
        assert not fused.flags.writeable
    else:
        assert fused is None


def test_event_rows_in_one_buffer_are_the_component_paths(model):
    rng = np.random.default_rng(0)
    items = [
        (5, gm.Graph.from_text("the last modality first"), 0.5),
        (1, rng.standard_normal(18).astype(np.float32), 1.0),
        (5, rng.standard_normal(18), 2.0),  # float64, converted
        (0, gm.Graph.from_text("a"), 0.25),
        (1, gm.Graph.from_text("two components of one modality"), 3.0),
        (5, rng.standard_normal(36).astype(np.float32)[::2], 1.0),  # strided
        (3, rng.standard_normal(18).astype(np.float32), 0.0),
    ]
    _assert_event_is_components(model, items)
    _assert_event_is_components(model, [])
    _assert_event_is_components(model, items[:1])


@pytest.mark.parametrize("k", [63, 64, 65, 130])
def test_many_components_of_one_modality(model, k):
    rng = np.random.default_rng(k)
    items = [(2, rng.standard_normal(18).astype(np.float32), float(i % 5)) for i in range(k)]
    items.append((6, gm.Graph.from_text("another"), 1.0))
    _assert_event_is_components(model, items)


def test_wrong_length_component_after_good_ones_is_refused_by_name(model):
    items = [(0, np.ones(18, np.float32), 1.0), (0, np.ones(17, np.float32), 1.0)]
    with pytest.raises(gm.ShapeError, match=r"event 0: modality \w+ takes 18-long feature vectors, got ModalFeatures of shape \(17,\)"):
        model._core.encode_event(0, items, model._featurizer_spec())


@pytest.mark.parametrize("n", [1, 511, 512, 513, 1500])
def test_graph_fingerprint_either_side_of_the_stack_buffer(n):
    text = "ab" * (n // 2) + "c" * (n % 2)
    graph = gm.Graph.from_text(text)
    assert graph.node_count == n
    # The graph's own fingerprint (degrees counted) and the text's (from its length alone).
    assert graph.features().tobytes() == gm.featurize([text])[0].tobytes()


@pytest.mark.parametrize("rows", [1, 5, 255, 256, 257, 300])
def test_dense_batches_either_side_of_the_borrowed_row_indices(model, rows):
    rng = np.random.default_rng(rows)
    xs = [rng.standard_normal((rows, 18)).astype(np.float32) for _ in range(7)]
    full = np.ones((rows, 7), dtype=bool)
    emb, fused = model._core.encode_and_fuse(xs, full)
    assert emb.tobytes() == model._core.encode(xs, full).tobytes()
    partial = full.copy()
    partial[::2, 3] = False
    emb_p, fused_p = model._core.encode_and_fuse(xs, partial)
    for r in sorted({0, rows // 2, rows - 1}):
        one_emb, one_fused = model._core.encode_and_fuse([x[r : r + 1] for x in xs], full[r : r + 1])
        assert emb[r].tobytes() == one_emb[0].tobytes() and fused[r].tobytes() == one_fused[0].tobytes()
        one_emb, one_fused = model._core.encode_and_fuse([x[r : r + 1] for x in xs], partial[r : r + 1])
        assert emb_p[r].tobytes() == one_emb[0].tobytes() and fused_p[r].tobytes() == one_fused[0].tobytes()
    assert not emb_p[::2, 3].any()


def test_overflowing_encoder_rows_are_still_rescued(model):
    x = np.full(18, 1e38, dtype=np.float32)  # its products overflow float32; the rescue scales it down
    emb, mask, fused = model._core.encode_event(0, [(0, x, 1.0)], model._featurizer_spec())
    small, _, small_fused = model._core.encode_event(0, [(0, np.ones(18, np.float32), 1.0)], model._featurizer_spec())
    assert np.isfinite(emb).all() and np.isfinite(fused).all()
    np.testing.assert_allclose(emb, small, atol=1e-6)  # the same direction: a positive multiple of the input
    np.testing.assert_allclose(fused, small_fused, atol=1e-6)
    batch = np.stack([np.ones(18, np.float32), x, -x])
    emb_b = model._core.encode([batch] + [None] * 6, np.array([[True] + [False] * 6] * 3))
    assert np.isfinite(emb_b).all()
    np.testing.assert_allclose(emb_b[1, 0], small[0, 0], atol=1e-6)


def _state(model):
    return {k: v.tobytes() for k, v in model.state_dict().items()}


def test_non_finite_gradients_of_a_step_are_refused_as_before():
    """train_step checks its gradients through their norm (one pass, the
    norm Adam needs): the same refusal as backward's check, nothing changed."""
    rng = np.random.default_rng(0)
    x = {"visual": rng.normal(size=(8, 18)), "linguistic": rng.normal(size=(8, 18))}
    weights = {"contrastive": 3e37}  # the loss is finite, its gradient at the encoder overflows float32
    want = (
        "gradients: contains a non-finite value (NaN or inf) at parameter encoder.visual.weight "
        "(the loss is ill-conditioned for this batch); expected finite numbers"
    )
    for call in ("train_step", "backward"):
        model = gm.LearnableMultiModal(embed_dim=16, hidden_dim=32, seed=0)
        model.train_step(x)  # some state: moments, a step, gradients
        before = _state(model)
        grads = {k: v.copy() for k, v in model.gradients().items()}
        with pytest.raises(gm.NonFiniteError) as info:
            getattr(model, call)(x, weights=weights)
        assert str(info.value) == want
        assert _state(model) == before
        assert all(np.array_equal(v, grads[k]) for k, v in model.gradients().items())
    model = gm.LearnableMultiModal(embed_dim=16, hidden_dim=32, seed=0)
    losses = model.train_step(x, weights={"contrastive": 1e37})  # large but finite gradients: a step
    assert np.isfinite(losses["total"]) and all(np.isfinite(v).all() for v in model.state_dict().values())
