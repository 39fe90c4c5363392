"""SPEC §1 text graphs and the 18 graph features."""

import pickle

import numpy as np
import pytest

import grapheme_multimodal as gm


def test_hello_features_match_the_spec():
    f = gm.Graph.from_text("hello").features()
    expected = np.zeros(18, dtype=np.float32)
    expected[[0, 1, 9, 10, 11]] = [0.05, 0.04, 0.5, 0.1, 0.4]
    assert f.dtype == np.float32 and f.shape == (18,)
    np.testing.assert_array_equal(f, expected)


def test_text_graph_structure():
    g = gm.Graph.from_text("a b\n")
    assert (g.node_count, g.edge_count) == (4, 3)
    assert g.to_text() == "a b\n"
    np.testing.assert_array_equal(g.edges, [[0, 1], [1, 2], [2, 3]])
    np.testing.assert_array_equal(g.activations, np.ones(4, np.float32))
    empty = gm.Graph.from_text("")
    assert (empty.node_count, empty.edge_count, empty.to_text()) == (0, 0, "")
    np.testing.assert_array_equal(empty.features(), np.zeros(18, np.float32))


def test_one_node_per_unicode_scalar():
    # "é" written as e + combining accent is two scalars, the family emoji several.
    assert gm.Graph.from_text("e\u0301").node_count == 2
    assert gm.Graph.from_text("\U0001F468\u200D\U0001F469\u200D\U0001F467").node_count == 5


def test_from_edges_and_features():
    g = gm.Graph.from_edges(4, [(0, 1), (0, 2), (0, 3)], activations=[0.0, 0.2, 0.5, 1.0])
    f = g.features()
    assert f[0] == np.float32(0.04) and f[1] == np.float32(0.03)
    # activation buckets floor(clamp(a*7, 0, 7)): 0, 1, 3, 7
    np.testing.assert_allclose(f[2:10], [0.1, 0.1, 0, 0.1, 0, 0, 0, 0.1], atol=1e-7)
    # out-degrees 3, 0, 0, 0
    np.testing.assert_allclose(f[10:18], [0.3, 0, 0, 0.1, 0, 0, 0, 0], atol=1e-7)
    arr = gm.Graph.from_edges(2, np.array([[0, 1]], dtype=np.int32))
    assert arr.edge_count == 1 and arr.to_text() == ""


def test_batched_fingerprints_equal_single():
    graphs = [gm.Graph.from_text(t) for t in ["", "a", "hello world", "x" * 300]]
    batch = gm.fingerprints(graphs)
    assert batch.shape == (4, 18) and batch.dtype == np.float32
    for row, g in zip(batch, graphs):
        np.testing.assert_array_equal(row, g.features())


@pytest.mark.parametrize(
    "call, exc, words",
    [
        (lambda: gm.Graph.from_edges(2, [(0, 2)]), ValueError, ["edge 0", "must be 0 to 1"]),
        (lambda: gm.Graph.from_edges(2, [(-1, 0)]), ValueError, ["edge 0"]),
        (lambda: gm.Graph.from_edges(2, [(0, 1, 1)]), ValueError, ["(m, 2)"]),
        (lambda: gm.Graph.from_edges(2, [(0.5, 1)]), TypeError, ["integer"]),
        (lambda: gm.Graph.from_edges(-1, []), ValueError, ["num_nodes"]),
        (lambda: gm.Graph.from_edges(2, [], activations=[1.0]), ValueError, ["activations", "(2,)"]),
        (lambda: gm.Graph.from_edges(2, [], activations=[1.0, np.nan]), ValueError, ["activations"]),
        (lambda: gm.Graph.from_text(b"bytes"), TypeError, ["str"]),
        (lambda: gm.fingerprints(["text"]), TypeError, ["graphs[0]"]),
    ],
)
def test_bad_graph_input(call, exc, words):
    with pytest.raises(exc) as info:
        call()
    for w in words:
        assert w in str(info.value)


def test_graphs_pickle_and_compare():
    g = gm.Graph.from_edges(3, [(0, 1), (2, 0)], activations=[0.1, 0.2, 0.3], labels=["a", "b", "c"])
    back = pickle.loads(pickle.dumps(g))
    assert back == g and back.labels == ["a", "b", "c"]
    assert gm.Graph.from_text("ab") != gm.Graph.from_text("ba")
