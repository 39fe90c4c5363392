"""Fresh-eyes hostile audit of the graph side (session 52): each test is a
reproducer of a defect it found, asserting the clean behaviour."""

from __future__ import annotations

import re

import numpy as np
import pytest

import grapheme_multimodal as gm


def test_tiny_activations_are_taken_as_the_featurisers_read_them_not_refused() -> None:
    """Activations below float32's normal range were refused by the check
    made for images and sequences (whose min..max scaling a constant cast
    would undo), though from_edges takes activations as they are and every
    featuriser reads them in buckets of width 1/7, where 1e-50 and 0 are
    alike. from_networkx's refusal named "activations", an argument its
    caller never passed, and on numpy < 1.24 a graph's own float32
    activations (1e-40) were refused when given back as Python floats."""
    tiny = gm.Graph.from_edges(3, [(0, 1), (1, 2)], activations=[1e-50, 0.0, -1e-46], labels=["a", "b", "c"])
    zero = gm.Graph.from_edges(3, [(0, 1), (1, 2)], activations=[0.0, 0.0, 0.0], labels=["a", "b", "c"])
    np.testing.assert_array_equal(tiny.activations, np.zeros(3, np.float32))
    for kind in ("fingerprint", "wl"):
        np.testing.assert_array_equal(tiny.features(kind), zero.features(kind))

    own = gm.Graph.from_edges(2, [(0, 1)], activations=np.array([1e-40, 0.5], np.float32))  # a float32 subnormal
    again = gm.Graph.from_edges(2, [(0, 1)], activations=own.activations.tolist())
    assert again == own
    # values beyond float32 are still refused, naming where
    with pytest.raises(gm.NonFiniteError, match=r"^activations: index 1 holds 1e\+300, too large for float32"):
        gm.Graph.from_edges(2, [], activations=[0.0, 1e300])
    # images and sequences, which the core scales, still refuse values float32 would make constant
    with pytest.raises(gm.InvalidValueError, match="^values: its values are at most"):
        gm.Graph.from_sequence(np.array([1e-50, 2e-50, 3e-50]))


def test_from_networkx_takes_tiny_activations_and_gives_a_graph_back_as_it_was() -> None:
    nx = pytest.importorskip("networkx")
    g = nx.DiGraph()
    g.add_node("x", activation=1e-50, label="x")
    g.add_node("y", activation=0.0, label="y")
    g.add_edge("x", "y")
    built = gm.Graph.from_networkx(g)
    np.testing.assert_array_equal(built.activations, np.zeros(2, np.float32))

    own = gm.Graph.from_edges(2, [(0, 1)], activations=np.array([1e-40, 0.0], np.float32), labels=["a", "b"])
    assert gm.Graph.from_networkx(own.to_networkx()) == own


def test_an_undirected_self_loop_is_one_edge_whatever_the_node() -> None:
    """Undirected edges were doubled unless ``u != v`` said they were a
    self-loop: a NaN node (unequal to itself) got its self-loop twice, and
    a node whose ``!=`` gives an array raised numpy's "truth value ...
    ambiguous"."""
    nx = pytest.importorskip("networkx")
    nan = float("nan")
    g = nx.Graph()
    g.add_edge(nan, nan)
    g.add_edge(nan, "b")
    assert gm.Graph.from_networkx(g).edges.tolist() == [[0, 0], [0, 1], [1, 0]]

    class Node:
        def __hash__(self) -> int:
            return 1

        def __eq__(self, other: object) -> bool:
            return self is other

        def __ne__(self, other: object) -> "np.ndarray":  # type: ignore[override]
            return np.array([True, False])

    g = nx.Graph()
    node = Node()
    g.add_edge(node, node)
    g.add_edge(node, 2)
    assert gm.Graph.from_networkx(g).edges.tolist() == [[0, 0], [0, 1], [1, 0]]


FEATURISE = re.escape('featurise graphs first, e.g. grapheme_multimodal.featurize(graphs, kind="wl")')


def test_graphs_where_only_numbers_are_taken_are_told_how_to_featurise_them() -> None:
    """The estimator's refusal of a view of graphs was scikit-learn's
    "float() argument must be a string or a real number, not 'Graph'", as if
    text would do; fit_views' and from_sequence's named the Graph but not
    what to do with it."""
    pytest.importorskip("sklearn")
    from grapheme_multimodal import uci
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    graphs = [gm.Graph.from_text(w) for w in ["ab", "cd", "ef", "gh", "ij", "kl", "mn", "op"]]
    other = np.random.default_rng(0).normal(size=(8, 3))
    with pytest.raises(TypeError, match=r"^Xs\[0\]\[0\]: got a Graph, where numbers are expected; " + FEATURISE):
        MultimodalEmbedder(epochs=1).fit([graphs, other])
    with pytest.raises(TypeError, match=r"^Xs\[0\]\[4\]: got a Graph, where numbers are expected; " + FEATURISE):
        MultimodalEmbedder(epochs=1).fit([[None] * 4 + graphs[:4], other])
    as_objects = np.empty((8, 1), dtype=object)
    as_objects[:, 0] = graphs
    with pytest.raises(TypeError, match=r"^Xs\[0\]\[0\]: got a Graph, where numbers are expected; " + FEATURISE):
        MultimodalEmbedder(epochs=1).fit([as_objects[:, 0], other])
    with pytest.raises(TypeError, match=r"^Xs\[0\]\[2, 0\]: got a Graph, where numbers are expected; " + FEATURISE):
        MultimodalEmbedder(epochs=1).fit([np.where(np.arange(8)[:, None] < 2, 0.5, as_objects), other])
    with pytest.raises(TypeError, match=r"^Xs: got a Graph, where numbers are expected; " + FEATURISE):
        MultimodalEmbedder(epochs=1).fit(graphs[0])
    with pytest.raises(TypeError, match=r"^views\['g'\]: .*\(at index 0: Graph Graph\(node_count=2, edge_count=1\)\); " + FEATURISE):
        uci.fit_views({"g": graphs, "a": other}, 0, settings=uci.TrainingSettings(epochs=1, batch_size=4))
    with pytest.raises(TypeError, match=r"^values: .*; " + FEATURISE):
        gm.Graph.from_sequence(graphs)


@pytest.mark.parametrize(
    "call, arg, shown",
    [
        (lambda: gm.Graph.from_edges(2.0, []), "num_nodes", "2.0 (float)"),
        (lambda: gm.Graph.from_edges(None, []), "num_nodes", "None"),
        (lambda: gm.featurize(["a"], kind="wl", dim=2.5), "dim", "2.5 (float)"),
        (lambda: gm.featurize(["a"], kind="wl", dim=True), "dim", "True (bool)"),
        (lambda: gm.GraphFeaturizer("wl", iterations="3"), "iterations", "'3' (str)"),
        (lambda: gm.Graph.from_text("a").features("wl", iterations=np.float32(1)), "iterations",
         repr(np.float32(1)) + " (float32)"),  # numpy < 2 shows 1.0
        (lambda: gm.GraphFeaturizer.parse({"kind": "wl", "dim": 2.5}), "featurizer['dim']", "2.5 (float)"),
        (lambda: gm.LearnableMultiModal(graph_features={"visual": {"kind": "wl", "dim": 2.5}}),
         "graph_features['visual']['dim']", "2.5 (float)"),
        (lambda: gm.Graph.from_sequence([1, 2], value_range=(0, "1")), "value_range", "(0, '1') (tuple)"),
    ],
)
def test_a_number_of_the_wrong_type_for_a_graph_setting_is_an_invalid_type_error_naming_it(call, arg, shown) -> None:
    """The README's contract (2.5 or None for an int, a str for a number:
    InvalidTypeError, a TypeError and an InvalidValueError both, with
    ``.arg``), kept by every other int argument: the graph side raised a
    plain TypeError without ``.arg``, which ``except ValueError`` (or
    ``except gm.InvalidValueError``) around a settings sweep missed."""
    with pytest.raises(gm.InvalidTypeError) as info:
        call()
    assert info.value.arg == arg
    assert re.search("^" + re.escape(arg) + ": expected .*, got " + re.escape(shown) + "$", str(info.value)), str(info.value)
