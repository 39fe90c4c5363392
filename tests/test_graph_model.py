"""A modality of the model takes graphs through its configured featuriser."""

import json
import pickle

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import GraphFeaturizer, LearnableMultiModalConfig

WL64 = GraphFeaturizer("wl", dim=64, iterations=2)


def test_input_dim_follows_the_featurizer():
    c = LearnableMultiModalConfig(graph_features={"linguistic": WL64, gm.Modality.VISUAL: "wl"})
    assert c.input_dim("linguistic") == 64 and c.input_dim("visual") == 256
    assert c.input_dim("auditory") == 18
    assert c.graph_featurizer("linguistic") == WL64 and c.graph_featurizer("tactile") == GraphFeaturizer()
    # parameter count follows: encoder weights [E, d_m] + bias
    base = gm.LearnableMultiModal(seed=0).num_parameters()
    assert gm.LearnableMultiModal(c).num_parameters() == base + 64 * (64 - 18) + 64 * (256 - 18)


def test_explicit_input_dims_must_agree_with_a_wl_featurizer():
    ok = LearnableMultiModalConfig(input_dims={"linguistic": 64, "visual": 240}, graph_features={"linguistic": WL64})
    assert ok.input_dims[:3] == (240, 18, 64)
    with pytest.raises(ValueError, match=r"input_dims\['linguistic'\].*wl.*64.*got 18"):
        LearnableMultiModalConfig(input_dims={"linguistic": 18}, graph_features={"linguistic": WL64})
    with pytest.raises(ValueError, match=r"input_dims\[2\]"):
        LearnableMultiModalConfig(input_dims=[18] * 7, graph_features={"linguistic": WL64})


def test_bad_graph_features():
    with pytest.raises(ValueError, match=r"graph_features\['linguistic'\]: expected one of \('fingerprint', 'wl'\), got 'bag'"):
        LearnableMultiModalConfig(graph_features={"linguistic": "bag"})
    with pytest.raises(ValueError, match="smell"):
        LearnableMultiModalConfig(graph_features={"smell": "wl"})
    with pytest.raises(ValueError, match="7 entries"):
        LearnableMultiModalConfig(graph_features=["wl"] * 3)
    with pytest.raises(TypeError, match="graph_features"):
        LearnableMultiModalConfig(graph_features="wl")


def test_config_round_trips_through_json():
    c = LearnableMultiModalConfig(
        embed_dim=32, num_heads=2, input_dims={"visual": 240}, graph_features={"linguistic": WL64}
    )
    d = json.loads(json.dumps(c.to_dict()))
    assert d["graph_features"]["linguistic"] == {"kind": "wl", "dim": 64, "iterations": 2}
    assert d["graph_features"]["visual"] == {"kind": "fingerprint", "dim": 18, "iterations": None}
    assert LearnableMultiModalConfig.from_dict(d) == c
    # a dict written before graph_features existed still loads (all fingerprint)
    old = dict(LearnableMultiModalConfig().to_dict())
    del old["graph_features"]
    assert LearnableMultiModalConfig.from_dict(old) == LearnableMultiModalConfig()


def test_replace_lets_dims_follow_a_new_featurizer():
    c = LearnableMultiModalConfig(input_dims={"visual": 240}, graph_features={"linguistic": WL64})
    assert c.replace(embed_dim=32, num_heads=2).input_dims == c.input_dims
    moved = c.replace(graph_features={"auditory": "wl"})
    assert moved.input_dims[:3] == (240, 256, 18), "visual keeps 240; linguistic back to 18; auditory WL"


def test_model_featurises_graphs_through_the_modality_featurizer():
    model = gm.LearnableMultiModal(graph_features={"linguistic": WL64}, seed=3)
    texts = [gm.Graph.from_text(t) for t in ["cat", "dog"]]
    images = [gm.Graph.from_image(np.eye(3)), gm.Graph.from_image(np.ones((2, 2)))]
    emb = model.encode({"linguistic": texts, "visual": images})
    direct = model.encode({"linguistic": WL64(texts), "visual": gm.fingerprints(images)})
    np.testing.assert_array_equal(emb, direct)
    assert not np.allclose(emb[0, 2], emb[1, 2]), "WL sees that cat != dog"
    fingerprint_model = gm.LearnableMultiModal(seed=3)
    fp = fingerprint_model.encode({"linguistic": texts})
    np.testing.assert_array_equal(fp[0, 2], fp[1, 2])  # the 18 features cannot


def test_per_event_path_equals_the_batched_path():
    model = gm.LearnableMultiModal(graph_features={"linguistic": WL64, "auditory": "wl"}, seed=1)
    event = gm.MultiModalEvent(7)
    text = gm.Graph.from_text("a cat")
    signal = gm.Graph.from_sequence([0.1, 0.5, 0.2, 0.9])
    event.add_component(gm.ModalGraph(text, "linguistic"))
    event.add_component(gm.ModalGraph(signal, "auditory"))
    event.add_component(gm.ModalGraph(gm.Graph.from_text("xy"), "visual"))
    per_event = model.encode_event(event)
    batched = model.encode({"linguistic": [text], "auditory": [signal], "visual": [gm.Graph.from_text("xy")]})
    for m, e in per_event.items():
        np.testing.assert_allclose(e, batched[0, m.index], atol=1e-6)
    assert model.fuse_event(event).shape == (64,)
    assert len(model.compute_bindings(event)) == 3


def test_graphs_for_a_vector_modality_are_rejected():
    model = gm.LearnableMultiModal(input_dims={"visual": 240})
    with pytest.raises(ValueError, match="18 fingerprint features.*240"):
        model.encode({"visual": [gm.Graph.from_text("x")]})
    event = gm.MultiModalEvent(1)
    event.add_component(gm.ModalGraph(gm.Graph.from_text("x"), "visual"))
    with pytest.raises(ValueError, match="240"):
        model.encode_event(event)


def test_model_with_wl_modality_pickles():
    model = gm.LearnableMultiModal(graph_features={"linguistic": WL64}, seed=2)
    back = pickle.loads(pickle.dumps(model))
    assert back.config == model.config
    texts = [gm.Graph.from_text("hello")]
    np.testing.assert_array_equal(back.encode({"linguistic": texts}), model.encode({"linguistic": texts}))
