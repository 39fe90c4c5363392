"""Graph builders beyond the SPEC: grapheme-cluster text, images, sequences,
networkx; their errors; pickling and equality."""

import pickle
import re

import numpy as np
import pytest

import grapheme_multimodal as gm

FAMILY = "\U0001F468\u200D\U0001F469\u200D\U0001F467\u200D\U0001F466"  # 7 code points, one cluster


@pytest.mark.parametrize(
    "text, chars, graphemes",
    [
        ("cafe\u0301", 5, ["c", "a", "f", "e\u0301"]),
        (f"a{FAMILY}b", 9, ["a", FAMILY, "b"]),
        ("a\r\nb", 4, ["a", "\r\n", "b"]),
        ("\U0001F1EB\U0001F1F7!", 3, ["\U0001F1EB\U0001F1F7", "!"]),  # a flag: two regional indicators
        ("", 0, []),
    ],
)
def test_grapheme_units(text, chars, graphemes):
    assert gm.Graph.from_text(text).node_count == chars
    assert gm.Graph.from_text(text, unit="char").node_count == chars
    g = gm.Graph.from_text(text, unit="grapheme")
    assert g.labels == graphemes
    assert g.edge_count == max(len(graphemes) - 1, 0)
    np.testing.assert_array_equal(g.edges, [[i, i + 1] for i in range(len(graphemes) - 1)] or np.zeros((0, 2)))
    assert g.to_text() == text


def test_unknown_unit_is_rejected():
    with pytest.raises(ValueError, match="unit.*'word'"):
        gm.Graph.from_text("abc", unit="word")


def test_image_grid_structure_and_scaling():
    img = np.array([[0.0, 5.0, 10.0], [10.0, 5.0, 0.0]])
    g = gm.Graph.from_image(img)
    assert (g.node_count, g.edge_count) == (6, 14)
    np.testing.assert_allclose(g.activations, [0, 0.5, 1, 1, 0.5, 0])
    edges = {tuple(e) for e in g.edges.tolist()}
    for a, b in [(0, 1), (1, 2), (3, 4), (4, 5), (0, 3), (1, 4), (2, 5)]:
        assert (a, b) in edges and (b, a) in edges
    assert (2, 3) not in edges, "rows do not wrap around"
    assert g.labels == [""] * 6
    # out-degree 2 at the four corners, 3 at the two border pixels
    assert g.features()[12] == np.float32(0.4) and g.features()[13] == np.float32(0.2)


def test_image_default_ranges_follow_the_dtype():
    u8 = gm.Graph.from_image(np.array([[0, 51], [255, 102]], dtype=np.uint8))
    np.testing.assert_allclose(u8.activations, [0, 0.2, 1, 0.4], rtol=1e-6)
    dim_u8 = gm.Graph.from_image(np.full((2, 2), 51, dtype=np.uint8))
    np.testing.assert_allclose(dim_u8.activations, 0.2, rtol=1e-6)
    mask = gm.Graph.from_image(np.array([[True, False]]))
    np.testing.assert_array_equal(mask.activations, [1, 0])
    # signed ints and floats: min..max of the image itself
    np.testing.assert_allclose(gm.Graph.from_image(np.array([[-2, 2]])).activations, [0, 1])


def test_explicit_value_range_clamps():
    g = gm.Graph.from_image(np.array([[-10.0, 0.5], [1.0, 99.0]]), value_range=(0, 1))
    np.testing.assert_allclose(g.activations, [0, 0.5, 1, 1])
    s = gm.Graph.from_sequence([2.0, 4.0], value_range=(0.0, 8.0))
    np.testing.assert_allclose(s.activations, [0.25, 0.5])


def test_constant_inputs_map_to_zero():
    np.testing.assert_array_equal(gm.Graph.from_image(np.full((3, 2), 7.5)).activations, np.zeros(6))
    np.testing.assert_array_equal(gm.Graph.from_sequence([3, 3, 3]).activations, np.zeros(3))


def test_sequence_is_a_scaled_chain():
    g = gm.Graph.from_sequence(np.array([-1.0, 0.0, 3.0], dtype=np.float64))
    np.testing.assert_allclose(g.activations, [0, 0.25, 1])
    np.testing.assert_array_equal(g.edges, [[0, 1], [1, 2]])
    empty = gm.Graph.from_sequence([])
    assert (empty.node_count, empty.edge_count) == (0, 0)


@pytest.mark.parametrize(
    "call, exc, words",
    [
        (lambda: gm.Graph.from_image(np.zeros((2, 2, 3))), ValueError, ["image", "2-D", "(2, 2, 3)", "grayscale"]),
        (lambda: gm.Graph.from_image(np.zeros(4)), ValueError, ["image", "(4,)"]),
        (lambda: gm.Graph.from_image([[0.0, np.nan]]), ValueError, ["image", "pixel (0, 1)"]),
        (lambda: gm.Graph.from_image([[0.0, np.inf]]), ValueError, ["image", "non-finite"]),
        (lambda: gm.Graph.from_image(np.zeros((2, 2), complex)), TypeError, ["image", "complex"]),
        (lambda: gm.Graph.from_image([["a", "b"]]), TypeError, ["image"]),
        (lambda: gm.Graph.from_image(np.zeros((2, 2)), value_range=(1, 1)), ValueError, ["value_range", "low < high"]),
        (lambda: gm.Graph.from_image(np.zeros((2, 2)), value_range=5), TypeError, ["value_range"]),
        (lambda: gm.Graph.from_sequence(np.zeros((2, 3))), ValueError, ["values", "1-D", "(2, 3)"]),
        (lambda: gm.Graph.from_sequence([1.0, np.nan]), ValueError, ["values", "index 1"]),
        (lambda: gm.Graph.from_sequence([0.0], value_range=(0, np.nan)), ValueError, ["value_range"]),
        (lambda: gm.Graph.from_text(b"bytes"), TypeError, ["text", "bytes"]),
        (lambda: gm.Graph.from_edges(3, [(0, 1), (1, 3)]), ValueError, ["edge 1", "must be 0 to 2"]),
    ],
)
def test_bad_input_raises_clear_errors(call, exc, words):
    with pytest.raises(exc) as info:
        call()
    for w in words:
        assert w in str(info.value), f"{w!r} not in {info.value}"


def test_new_graphs_pickle_and_compare_by_value():
    graphs = [
        gm.Graph.from_text(f"x{FAMILY}y\r\n", unit="grapheme"),
        gm.Graph.from_image(np.arange(12, dtype=np.uint8).reshape(3, 4)),
        gm.Graph.from_sequence([0.1, 0.7, 0.3]),
    ]
    for g in graphs:
        back = pickle.loads(pickle.dumps(g))
        assert back == g
        assert back.labels == g.labels
        np.testing.assert_array_equal(back.features("wl", dim=32), g.features("wl", dim=32))


def test_equality_ignores_edge_order_but_not_edges():
    a = gm.Graph.from_edges(3, [(0, 1), (1, 2), (0, 1)])
    assert a == gm.Graph.from_edges(3, [(1, 2), (0, 1), (0, 1)])
    assert a != gm.Graph.from_edges(3, [(1, 2), (0, 1)])
    assert a != gm.Graph.from_edges(3, [(1, 2), (0, 1), (1, 0)])


@pytest.fixture
def nx():
    """networkx is an optional extra: only these tests need it."""
    return pytest.importorskip("networkx")


def test_networkx_round_trip(nx):
    g = gm.Graph.from_edges(4, [(0, 1), (1, 2), (2, 0), (3, 3)], activations=[0.1, 0.5, 1.0, 0.0], labels=list("abca"))
    h = g.to_networkx()
    assert isinstance(h, nx.DiGraph) and not h.is_multigraph()
    assert h.nodes[2] == {"activation": 1.0, "label": "c"}
    assert set(h.edges()) == {(0, 1), (1, 2), (2, 0), (3, 3)}
    assert gm.Graph.from_networkx(h) == g
    text = gm.Graph.from_text("héllo", unit="grapheme")
    assert gm.Graph.from_networkx(text.to_networkx()).to_text() == "héllo"


def test_networkx_multigraph_keeps_parallel_edges(nx):
    g = gm.Graph.from_edges(2, [(0, 1), (0, 1), (1, 0)])
    h = g.to_networkx()
    assert isinstance(h, nx.MultiDiGraph) and h.number_of_edges() == 3
    assert gm.Graph.from_networkx(h) == g


def test_networkx_undirected_and_custom_attributes(nx):
    u = nx.Graph()
    u.add_node("x", weight=0.25, kind="C")
    u.add_node("y", kind="O")  # no weight: activation 1.0
    u.add_node("z")  # no kind: empty label
    u.add_edges_from([("x", "y"), ("y", "z"), ("z", "z")])
    g = gm.Graph.from_networkx(u, activation="weight", label="kind")
    assert g.labels == ["C", "O", ""]
    np.testing.assert_allclose(g.activations, [0.25, 1.0, 1.0])
    # each undirected edge both ways; the self-loop once
    assert sorted(map(tuple, g.edges.tolist())) == [(0, 1), (1, 0), (1, 2), (2, 1), (2, 2)]
    back = g.to_networkx(activation="weight", label="kind")
    assert back.nodes[0] == {"weight": 0.25, "kind": "C"}


def test_networkx_bad_input(nx):
    with pytest.raises(TypeError, match="networkx graph"):
        gm.Graph.from_networkx({"a": 1})
    bad = nx.DiGraph()
    bad.add_node(0, label=3)
    with pytest.raises(TypeError, match="node 0 has label=3"):
        gm.Graph.from_networkx(bad)
    bad = nx.DiGraph()
    bad.add_node("n", activation="high")
    with pytest.raises(TypeError, match="activation='high'"):
        gm.Graph.from_networkx(bad)
    bad = nx.DiGraph()
    bad.add_node("n", activation=float("nan"))
    with pytest.raises(ValueError, match="node 'n' has activation=nan"):
        gm.Graph.from_networkx(bad)


@pytest.mark.parametrize(
    "attrs, error, words",
    [
        ({"activation": float("nan")}, gm.NonFiniteError, "node 'x' has activation=nan"),
        ({"activation": -float("inf")}, gm.NonFiniteError, "node 'x' has activation=-inf"),
        ({"activation": np.float64(1e39)}, gm.NonFiniteError, "node 'x' has activation=1e+39, too large for float32"),
        ({"weight": 1e300}, gm.NonFiniteError, "node 'x' has weight=1e+300, too large for float32"),
        ({"activation": 10**39}, gm.NonFiniteError, f"node 'x' has activation={10**39}, too large for float32"),
        ({"label": "a\ud800"}, gm.InvalidValueError, "node 'x' has label='a\\ud800', which holds a lone surrogate"),
    ],
)
def test_networkx_errors_name_g_and_the_node_not_an_index(nx, attrs, error, words):
    """A NaN, an infinite or a too-large activation, or a label with a lone
    surrogate, on node 'x' of ``g`` was "activations: ... at index 1" or
    "labels[1]: ...": arguments the caller never passed, and the node's
    place in ``g.nodes`` rather than the node. Now the error names ``g``
    and the node, as the type errors of its attributes do."""
    g = nx.DiGraph()
    g.add_node("first")
    g.add_node("x", **attrs)
    g.add_edge("first", "x")
    with pytest.raises(error, match=re.escape(words)) as err:
        gm.Graph.from_networkx(g, activation="weight" if "weight" in attrs else "activation")
    assert err.value.arg == "g"


# Hostile graphs: each error is the library's typed error naming the argument
# and what was given. Before, these were plain ValueErrors without `arg`,
# numpy's or the codec's own messages, or the wrong value (an index wrapped
# round by int64, a bound shown as the inf float32 made of it).
@pytest.mark.parametrize(
    "call, exc, arg, words",
    [
        (lambda: gm.Graph.from_image(np.zeros((2, 2, 3))), gm.ShapeError, "image", ["(2, 2, 3)"]),
        (lambda: gm.Graph.from_sequence(np.zeros((2, 3))), gm.ShapeError, "values", ["(2, 3)"]),
        (lambda: gm.Graph.from_edges(-1, []), gm.InvalidValueError, "num_nodes", ["-1"]),
        (lambda: gm.Graph.from_edges(3, [0, 1]), gm.ShapeError, "edges", ["(m, 2)", "(2,)"]),
        (lambda: gm.Graph.from_edges(3, [(0, 1, 2)]), gm.ShapeError, "edges", ["(1, 3)"]),
        (lambda: gm.Graph.from_edges(3, [(0, 1), (2,)]), gm.ShapeError, "edges", ["(m, 2)"]),
        (lambda: gm.Graph.from_edges(2, [], activations=[[1.0, 1.0]]), gm.ShapeError, "activations", ["(1, 2)"]),
        (lambda: gm.Graph.from_text("a", unit="word"), gm.InvalidValueError, "unit", ["'word'"]),
        (lambda: gm.Graph.from_text("a\ud800"), gm.InvalidValueError, "text", ["UTF-8"]),
        (lambda: gm.Graph.from_edges(2, [], labels=["ok", "\ud800"]), gm.InvalidValueError, "labels[1]", ["UTF-8"]),
        (lambda: gm.Graph.from_edges(3, [(0, 1), (0, 2**63)]), gm.InvalidValueError, "edges", ["edge 1", "9223372036854775808", "must be 0 to 2"]),
        (lambda: gm.Graph.from_edges(3, [(2**64, 0)]), gm.InvalidValueError, "edges", ["18446744073709551616"]),
        (lambda: gm.Graph.from_edges(3, np.array([[0, 2**64 - 1]], np.uint64)), gm.InvalidValueError, "edges",
         ["(0, 18446744073709551615)"]),
        (lambda: gm.Graph.from_sequence([0.0, 1e300]), gm.NonFiniteError, "values", ["index 1", "1e+300", "float32"]),
        (lambda: gm.Graph.from_image([[0.0, 1e300]]), gm.NonFiniteError, "image", ["pixel (0, 1)", "1e+300"]),
        (lambda: gm.Graph.from_edges(2, [], activations=[0.0, -1e300]), gm.NonFiniteError, "activations", ["index 1", "-1e+300"]),
        (lambda: gm.Graph.from_sequence([0, 1], value_range=(0, 1e300)), gm.InvalidValueError, "value_range", ["1e+300"]),
        (lambda: gm.Graph.from_sequence([0, 1], value_range=(0, 1e-50)), gm.InvalidValueError, "value_range", ["1e-50"]),
    ],
)
def test_hostile_graph_input_is_a_typed_error_naming_the_argument(call, exc, arg, words):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's "overflow encountered in cast" is not the message
        warnings.filterwarnings("ignore", "Creating an ndarray from ragged")  # numpy < 1.24's own, before the error
        with pytest.raises(exc) as info:
            call()
    assert info.value.arg == arg, info.value
    for w in words:
        assert w in str(info.value), f"{w!r} not in {info.value}"


def test_labels_are_taken_in_node_order_or_refused():
    # A set has no order: its labels landed on arbitrary nodes without a word.
    with pytest.raises(TypeError, match="labels.*set"):
        gm.Graph.from_edges(2, [], labels={"a", "b"})
    with pytest.raises(TypeError, match="labels.*dict"):
        gm.Graph.from_edges(2, [], labels={0: "a", 1: "b"})
    with pytest.raises(TypeError, match=r"labels\[1\].*int"):
        gm.Graph.from_edges(2, [], labels=["a", 3])
    # A generator was used up by the type check, then read as no labels at all.
    g = gm.Graph.from_edges(2, [(0, 1)], activations=(a for a in (0.25, 0.5)), labels=(s for s in ("a", "b")))
    assert g.labels == ["a", "b"]
    np.testing.assert_array_equal(g.activations, [0.25, 0.5])
