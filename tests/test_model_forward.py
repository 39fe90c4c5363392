"""SPEC §1 model behaviour through the public API: shapes, norms, ranges,
masking, parity with an independent NumPy implementation, one code path."""

import pickle

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import Modality

from conftest import text_event
from numpy_reference import NumpyModel

NAMES = [m.name.lower() for m in Modality]


def random_batch(rng, batch, dims=(18,) * 7, p_present=0.6):
    xs = {NAMES[m]: rng.normal(size=(batch, dims[m])).astype(np.float32) for m in range(7)}
    mask = rng.random((batch, 7)) < p_present
    mask[0] = True
    mask[-1] = False  # a row with nothing present
    return xs, mask


def test_default_parameter_count(model):
    assert model.num_parameters() == 70_337
    shapes = model.parameter_shapes()
    assert shapes["encoder.visual.weight"] == (64, 18)
    assert shapes["fusion.0.weight"] == (64, 448)
    assert shapes["binder.weight"] == (1, 128)
    assert shapes["attention.o.weight"] == (64, 64)
    assert model.encoder.num_parameters() == 8512
    assert model.fusion.num_parameters() == 45312
    assert model.binder.num_parameters() == 129
    assert model.attention.num_parameters() == 16384


def test_config_defaults_and_validation():
    c = gm.LearnableMultiModalConfig()
    assert (c.embed_dim, c.hidden_dim, c.learning_rate, c.num_heads, c.buffer_size) == (64, 128, 0.001, 4, 1000)
    assert c.input_dims == (18,) * 7
    assert gm.LearnableMultiModalConfig(input_dims={"visual": 240}).input_dim("visual") == 240
    assert gm.LearnableMultiModalConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="not divisible"):
        gm.LearnableMultiModalConfig(embed_dim=64, num_heads=5)
    with pytest.raises(ValueError, match="embed_dim"):
        gm.LearnableMultiModal(embed_dim=0)
    with pytest.raises(TypeError, match="hidden_dim"):
        gm.LearnableMultiModal(hidden_dim=2.5)
    with pytest.raises(ValueError, match="learning_rate"):
        gm.LearnableMultiModalConfig(learning_rate=float("nan"))
    with pytest.raises(ValueError, match="smell"):
        gm.LearnableMultiModalConfig(input_dims={"smell": 3})
    with pytest.raises(ValueError, match="7 entries"):
        gm.LearnableMultiModalConfig(input_dims=[18, 18])


def test_seed_determinism(rng):
    xs, mask = random_batch(rng, 8)
    a, b, c = (gm.LearnableMultiModal(seed=s) for s in (5, 5, 6))
    for name, value in a.state_dict().items():
        np.testing.assert_array_equal(value, b.state_dict()[name])
    emb_a, fused_a = a.encode_and_fuse(xs, mask)
    emb_b, fused_b = b.encode_and_fuse(xs, mask)
    assert emb_a.tobytes() == emb_b.tobytes() and fused_a.tobytes() == fused_b.tobytes()
    assert not np.array_equal(a.state_dict()["fusion.0.weight"], c.state_dict()["fusion.0.weight"])


def test_init_scales_follow_dynamic_xavier(model):
    sd = model.state_dict()
    for name, (fan_in, fan_out) in {
        "encoder.visual.weight": (18, 64),
        "fusion.0.weight": (448, 64),
        "fusion.1.weight": (64, 128),
        "fusion.2.weight": (128, 64),
        "binder.weight": (128, 1),
        "attention.q.weight": (64, 64),
    }.items():
        s = np.sqrt(2.0 / (fan_in + fan_out))
        w = sd[name]
        assert np.abs(w).max() < s and np.abs(w).max() > 0.9 * s, name
        assert abs(w.std() - s / np.sqrt(3)) < 0.15 * s, name  # uniform(-s, s) has std s/sqrt(3)
    for name in ("encoder.visual.bias", "fusion.0.bias", "binder.bias"):
        assert not sd[name].any()


def test_embeddings_and_fusion_are_unit_norm(model, rng):
    xs, mask = random_batch(rng, 16)
    emb, fused = model.encode_and_fuse(xs, mask)
    assert emb.shape == (16, 7, 64) and emb.dtype == np.float32
    norms = np.linalg.norm(emb, axis=2)
    np.testing.assert_allclose(norms[mask], 1.0, atol=1e-5)
    assert (norms[~mask] == 0).all()
    fused_norms = np.linalg.norm(fused, axis=1)
    np.testing.assert_allclose(fused_norms[mask.any(axis=1)], 1.0, atol=1e-5)
    assert np.isfinite(fused).all()


def test_forward_matches_numpy_reference(rng):
    model = gm.LearnableMultiModal(seed=3, num_heads=4, input_dims={"visual": 30, "abstract": 5})
    dims = model.config.input_dims
    xs, mask = random_batch(rng, 12, dims)
    ref = NumpyModel(model.state_dict(), num_heads=4)
    emb, fused = model.encode_and_fuse(xs, mask)
    want = ref.encode(xs, mask)
    np.testing.assert_allclose(emb, want, atol=1e-5)
    np.testing.assert_allclose(fused, ref.fuse(want), atol=1e-5)
    np.testing.assert_allclose(model.bind(emb[:, 0], emb[:, 2]), ref.bind(want[:, 0], want[:, 2]), atol=1e-6)
    query = fused
    w, att = ref.attend(query.astype(np.float64), want, mask)
    np.testing.assert_allclose(model.attention_weights(query, emb, mask), w, atol=1e-5)
    np.testing.assert_allclose(model.attend(query, emb, mask), att, atol=1e-5)


def test_binding_strengths_in_unit_interval(model, rng):
    xs, mask = random_batch(rng, 10, p_present=1.0)
    emb = model.encode(xs)
    s = model.bind(emb[:, 0], emb[:, 1])
    assert s.shape == (10,) and ((s >= 0) & (s <= 1)).all()
    pairs = model.pair_strengths(emb, mask)
    assert pairs.shape == (10, 7, 7) and ((pairs >= 0) & (pairs <= 1)).all()
    both = mask[:, :, None] & mask[:, None, :]
    assert (pairs[~both] == 0).all()
    np.testing.assert_allclose(pairs[:, 0, 1], np.where(both[:, 0, 1], s, 0), atol=1e-7)


def test_attention_sums_to_one_over_present(model, rng):
    xs, mask = random_batch(rng, 20)
    emb, fused = model.encode_and_fuse(xs, mask)
    w = model.attention_weights(fused, emb, mask)
    assert w.shape == (20, 7)
    present_rows = mask.any(axis=1)
    np.testing.assert_allclose(w.sum(axis=1)[present_rows], 1.0, atol=1e-5)
    assert (w[~mask] == 0).all()
    heads = model.attention_weights(fused, emb, mask, per_head=True)
    assert heads.shape == (20, 4, 7)
    np.testing.assert_allclose(heads.sum(axis=2)[present_rows], 1.0, atol=1e-5)
    # A row with nothing present: zero weights and a zero attended vector, never NaN.
    assert not present_rows[-1]
    assert (w[-1] == 0).all()
    att = model.attend(fused, emb, mask)
    assert (att[-1] == 0).all() and np.isfinite(att).all()


def test_one_head_is_the_original_formula(rng):
    model = gm.LearnableMultiModal(num_heads=1, seed=2)
    xs, mask = random_batch(rng, 6)
    emb, fused = model.encode_and_fuse(xs, mask)
    sd = model.state_dict()
    for r in range(6):
        q = sd["attention.q.weight"] @ fused[r]
        keys = emb[r] @ sd["attention.k.weight"].T
        scores = keys @ q / np.sqrt(64)
        present = mask[r]
        w = np.zeros(7)
        if present.any():
            ex = np.exp(scores[present] - scores[present].max())
            w[present] = ex / ex.sum()
        np.testing.assert_allclose(model.attention_weights(fused[r : r + 1], emb[r : r + 1], mask[r : r + 1])[0], w, atol=1e-5)


def test_absent_rows_may_hold_nan(model, rng):
    xs, mask = random_batch(rng, 8)
    clean = model.encode(xs, mask)
    dirty = {k: v.copy() for k, v in xs.items()}
    for m, name in enumerate(NAMES):
        dirty[name][~mask[:, m]] = np.nan
    np.testing.assert_array_equal(model.encode(dirty, mask), clean)


def test_mask_defaults(model, rng):
    xs, _ = random_batch(rng, 5)
    only_two = {"visual": xs["visual"], "linguistic": xs["linguistic"]}
    emb = model.encode(only_two)
    assert (np.linalg.norm(emb, axis=2) > 0).sum(axis=0).tolist() == [5, 0, 5, 0, 0, 0, 0]
    as_list = [xs["visual"], None, xs["linguistic"], None, None, None, None]
    np.testing.assert_array_equal(model.encode(as_list), emb)
    mask = np.zeros((5, 7), bool)
    mask[:, [0, 2]] = True
    np.testing.assert_array_equal(model.fuse(emb), model.fuse(emb, mask))


def test_dtype_and_layout_conversion(model, rng):
    x64 = rng.normal(size=(4, 18))
    f32 = model.encode({"visual": x64.astype(np.float32)})
    np.testing.assert_array_equal(model.encode({"visual": x64}), f32)
    fortran = np.asfortranarray(x64.astype(np.float32))
    np.testing.assert_array_equal(model.encode({"visual": fortran}), f32)
    np.testing.assert_array_equal(model.encode({"visual": x64.tolist()}), f32)
    ints = np.arange(4 * 18).reshape(4, 18) % 3
    assert model.encode({"visual": ints}).dtype == np.float32


def test_graph_lists_are_featurised(model):
    texts = ["cat", "a dog", "hello world"]
    graphs = [gm.Graph.from_text(t) for t in texts]
    feats = np.stack([g.features() for g in graphs])
    np.testing.assert_array_equal(model.encode({"linguistic": graphs}), model.encode({"linguistic": feats}))


def test_batched_equals_per_event(model):
    events = [
        text_event(0, linguistic="the cat", visual="meow meow"),
        text_event(1, auditory="ssss"),
        text_event(2, linguistic="a much longer sentence here", tactile="rough", action="grab it!"),
    ]
    feats = {m: np.zeros((3, 18), np.float32) for m in NAMES}
    mask = np.zeros((3, 7), bool)
    for r, ev in enumerate(events):
        for c in ev.components:
            feats[str(c.modality)][r] = c.graph.features()
            mask[r, c.modality.index] = True
    emb, fused = model.encode_and_fuse(feats, mask)
    pairs = model.pair_strengths(emb, mask)
    query = np.tile(fused[0], (3, 1))
    weights = model.attention_weights(query, emb, mask)
    attended = model.attend(query, emb, mask)
    for r, ev in enumerate(events):
        per_event = model.encode_event(ev)
        assert sorted(m.index for m in per_event) == np.flatnonzero(mask[r]).tolist()
        for m, vec in per_event.items():
            np.testing.assert_array_equal(vec, emb[r, m.index])
        np.testing.assert_array_equal(model.fuse_event(ev), fused[r])
        for binding in model.compute_bindings(ev):
            i, j = binding.source[0].index, binding.target[0].index
            assert i < j and binding.strength == pytest.approx(float(pairs[r, i, j]), abs=0)
        assert len(model.compute_bindings(ev)) == mask[r].sum() * (mask[r].sum() - 1) // 2
        got = model.get_modality_attention(fused[0], ev)
        assert [m for m, _ in got] == Modality.all()
        np.testing.assert_array_equal([w for _, w in got], weights[r])
        np.testing.assert_array_equal(model.attend_to_event(fused[0], ev), attended[r])


def test_several_components_pool_by_confidence(model):
    a, b = gm.Graph.from_text("ab"), gm.Graph.from_text("a longer text")
    ev = gm.MultiModalEvent(1)
    ev.add_component(gm.ModalGraph(a, "visual", confidence=0.75))
    ev.add_component(gm.ModalGraph(b, "visual", confidence=0.25))
    ea = model.encode_event(text_event(2, visual="ab"))[Modality.VISUAL]
    eb = model.encode_event(text_event(3, visual="a longer text"))[Modality.VISUAL]
    mean = 0.75 * ea + 0.25 * eb
    np.testing.assert_allclose(model.encode_event(ev)[Modality.VISUAL], mean / np.linalg.norm(mean), atol=1e-6)
    # Only the first component of a modality is the event's "component", but all are pooled.
    assert ev.get_component("visual").graph is a


def test_feature_vector_components(rng):
    model = gm.LearnableMultiModal(input_dims={"visual": 10})
    x = rng.normal(size=10).astype(np.float32)
    ev = gm.MultiModalEvent(0)
    ev.add_component(gm.ModalFeatures(x, "visual"))
    ev.add_component(gm.ModalGraph(gm.Graph.from_text("hi"), "linguistic"))
    np.testing.assert_array_equal(model.encode_event(ev)[Modality.VISUAL], model.encode({"visual": x[None]})[0, 0])
    wrong = gm.MultiModalEvent(1)
    wrong.add_component(gm.ModalGraph(gm.Graph.from_text("hi"), "visual"))
    with pytest.raises(ValueError, match="10-long"):
        model.fuse_event(wrong)
    short = gm.MultiModalEvent(2)
    short.add_component(gm.ModalFeatures(x[:4], "visual"))
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        model.encode_event(short)


def test_cache_follows_events_and_weights(model):
    ev = text_event(0, linguistic="hello")
    first = model.fuse_event(ev)
    ev.add_component(gm.ModalGraph(gm.Graph.from_text("img"), "visual"))
    second = model.fuse_event(ev)
    assert not np.array_equal(first, second), "adding a component must invalidate the cache"
    sd = model.state_dict()
    sd["fusion.2.bias"] += 0.5
    model.load_state_dict(sd)
    assert not np.array_equal(model.fuse_event(ev), second), "new weights must invalidate the cache"
    model.clear_cache()
    np.testing.assert_array_equal(model.fuse_event(ev), model.fuse_event(ev))


def test_state_dict_round_trip(rng):
    a, b = gm.LearnableMultiModal(seed=1), gm.LearnableMultiModal(seed=2)
    b.load_state_dict(a.state_dict())
    xs, mask = random_batch(rng, 4)
    np.testing.assert_array_equal(a.encode_and_fuse(xs, mask)[1], b.encode_and_fuse(xs, mask)[1])
    sd = a.state_dict()
    assert list(sd)[:2] == ["encoder.visual.weight", "encoder.visual.bias"]
    sd["fusion.0.weight"][0, 0] = 99.0
    assert a.state_dict()["fusion.0.weight"][0, 0] != 99.0, "state_dict returns copies"


def test_load_state_dict_rejects_bad_dicts(model):
    sd = model.state_dict()
    before = model.state_dict()
    with pytest.raises(ValueError, match="missing keys.*binder.bias"):
        model.load_state_dict({k: v for k, v in sd.items() if k != "binder.bias"})
    with pytest.raises(ValueError, match="unexpected keys.*extra"):
        model.load_state_dict({**sd, "extra": np.zeros(1)})
    bad_shape = dict(sd, **{"binder.bias": np.zeros(2)})
    with pytest.raises(ValueError, match=r"binder.bias.*\(1,\)"):
        model.load_state_dict(bad_shape)
    nan = {k: v.copy() for k, v in sd.items()}
    nan["fusion.0.bias"][3] = np.nan
    nan["encoder.visual.bias"][:] = 7.0  # staged before the bad tensor: must not be applied
    with pytest.raises(ValueError, match="NaN"):
        model.load_state_dict(nan)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    partial = {"binder.bias": np.array([0.5], np.float32)}
    model.load_state_dict(partial, strict=False)
    assert model.state_dict()["binder.bias"][0] == 0.5
    with pytest.raises(TypeError):
        model.load_state_dict([1, 2])


def test_models_pickle(rng):
    model = gm.LearnableMultiModal(seed=4, input_dims={"visual": 12})
    back = pickle.loads(pickle.dumps(model))
    assert back.config == model.config
    xs, mask = random_batch(rng, 3, model.config.input_dims)
    np.testing.assert_array_equal(back.encode_and_fuse(xs, mask)[1], model.encode_and_fuse(xs, mask)[1])


def test_component_classes(rng):
    enc = gm.ModalityEncoder(seed=0)
    x = rng.normal(size=(3, 18))
    out = enc.encode("visual", x)
    assert out.shape == (3, 64)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1, atol=1e-5)
    model = gm.LearnableMultiModal(seed=0)
    np.testing.assert_array_equal(model.encoder.encode("visual", x), out)
    emb = model.encode({"visual": x, "auditory": x})
    np.testing.assert_array_equal(gm.FusionNetwork(seed=0).fuse(emb), model.fuse(emb))
    np.testing.assert_array_equal(gm.CrossModalBinder(seed=0).strength(emb[:, 0], emb[:, 1]), model.bind(emb[:, 0], emb[:, 1]))
    q = emb[:, 0]
    np.testing.assert_array_equal(gm.ModalityAttention(seed=0).weights(q, emb), model.attention_weights(q, emb))
    assert "encoder.visual.weight" in model.encoder.parameters()
    with pytest.raises(ValueError, match="not divisible"):
        gm.ModalityAttention(embed_dim=10, num_heads=3)


def test_float32_c_contiguous_inputs_are_not_copied(rng):
    from grapheme_multimodal._validation import as_float32

    x = np.ascontiguousarray(rng.normal(size=(5, 18)).astype(np.float32))
    assert as_float32(x, "x", 2, (None, 18)) is x
    model = gm.LearnableMultiModal()
    arrays, _ = model.prepare_inputs({"visual": x})
    assert arrays[0] is x, "the array handed to Rust is the caller's own buffer"
    converted = as_float32(x.astype(np.float64), "x", 2, (None, 18))
    assert converted.dtype == np.float32 and converted.flags.c_contiguous
