"""Graph activations reach the core as a float32 array; lists (as in pickles
from earlier versions) and other float dtypes still build the same graph."""

import pickle

import numpy as np

import grapheme_multimodal as gm
from grapheme_multimodal import _core
from grapheme_multimodal.graph import _rebuild


def test_activation_forms_build_the_same_graph():
    edges = np.array([[0, 1], [1, 2], [2, 0]])
    acts = np.array([0.25, 0.5, 2.0])
    g = gm.Graph.from_edges(3, edges, activations=acts, labels=["a", "b", "c"])
    assert g.activations.dtype == np.float32 and np.array_equal(g.activations, acts.astype(np.float32))
    as_list = _rebuild(3, g.edges, [0.25, 0.5, 2.0], ["a", "b", "c"])  # an earlier version's pickle
    assert as_list == g
    assert gm.Graph(_core.Graph.from_edges(3, g.edges, acts, ["a", "b", "c"])) == g  # float64 array: converted
    restored = pickle.loads(pickle.dumps(g))
    assert restored == g and restored.activations.dtype == np.float32
