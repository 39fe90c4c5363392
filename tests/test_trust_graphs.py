"""Hostile use of graphs, graph features and graph modalities: each test is
a reproducer of a defect found by the graph audit, asserting the clean
behaviour (a typed error naming the argument and what was given, or the
right answer where a wrong one came silently)."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import grapheme_multimodal as gm


# -- builders: values far from zero ------------------------------------------------------------


def min_max(values: np.ndarray) -> np.ndarray:
    """The activations the builders document: ``values`` mapped onto [0, 1] by their own min..max."""
    wide = np.asarray(values, dtype=np.float64)
    low, high = wide.min(), wide.max()
    return (wide - low) / (high - low)


def test_values_far_from_zero_keep_their_spread_in_sequences_and_images() -> None:
    """Scaled after the float32 cast, values whose spread is below float32's
    resolution at their magnitude collapsed onto a few levels: timestamps in
    milliseconds (1.7e12, 1000 apart) all became activation 0, and so did an
    int64 image around 2**40, without a word."""
    stamps = 1.7e12 + np.array([0.0, 1000.0, 2000.0, 3000.0])
    np.testing.assert_allclose(gm.Graph.from_sequence(stamps).activations, min_max(stamps), atol=1e-6)
    image = 2**40 + np.arange(6, dtype=np.int64).reshape(2, 3)
    np.testing.assert_allclose(gm.Graph.from_image(image).activations, min_max(image.ravel()), atol=1e-6)
    signed = np.int32(-(2**30)) + np.array([0, 3, 7], np.int32)  # int32 past float32's 24 bits
    np.testing.assert_allclose(gm.Graph.from_sequence(signed).activations, min_max(signed), atol=1e-6)
    # what the spread carries reaches the features: a ramp of stamps is no constant signal
    ramp = gm.Graph.from_sequence(stamps).features("wl", dim=32)
    assert not np.array_equal(ramp, gm.Graph.from_sequence(np.zeros(4)).features("wl", dim=32))


@pytest.mark.parametrize("span", [3000.0, 1e6])
def test_a_value_range_far_from_zero_keeps_its_levels(span) -> None:
    """A value_range float32 cannot resolve where it lies was refused as
    "expected ... low < high in float32" (1.7e12 and 1.7e12 + 3000 are one
    float32), or, a little wider, mapped the values onto a few levels."""
    low = 1.7e12
    stamps = low + np.array([-500.0, 0.0, 0.25, 0.5, 0.75, 1.0, 2.0]) * span
    expected = np.clip((stamps - low) / span, 0.0, 1.0)
    np.testing.assert_allclose(gm.Graph.from_sequence(stamps, value_range=(low, low + span)).activations, expected, atol=1e-6)
    image = stamps.reshape(1, -1)
    np.testing.assert_allclose(gm.Graph.from_image(image, value_range=(low, low + span)).activations, expected, atol=1e-6)


@pytest.mark.parametrize(
    "values",
    [
        np.linspace(-1.0, 1.0, 9),  # audio
        np.array([0.1, 0.7, 0.3, 0.2]),
        np.array([290.15, 301.3, 295.0]),  # kelvins: near zero enough for float32
        np.arange(17, dtype=np.float64),  # digits' pixels
        np.array([-5, 3, 12], np.int64),
    ],
)
def test_values_near_zero_scale_as_they_always_did(values: np.ndarray) -> None:
    """Inputs float32 resolves keep their activations bit for bit (those of their float32 copy)."""
    as_float32 = values.astype(np.float32)
    np.testing.assert_array_equal(gm.Graph.from_sequence(values).activations, gm.Graph.from_sequence(as_float32).activations)
    image = values.reshape(1, -1)
    np.testing.assert_array_equal(gm.Graph.from_image(image).activations, gm.Graph.from_image(image.astype(np.float32)).activations)
    given = (float(values.min()) + 0.5, float(values.max()) + 2.0)
    np.testing.assert_array_equal(gm.Graph.from_sequence(values, value_range=given).activations,
                                  gm.Graph.from_sequence(as_float32, value_range=given).activations)


# -- builders: edge arrays ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "edges, shape",
    [
        (np.zeros((0, 3), np.int64), "(0, 3)"),  # (source, target, weight) triples, none this time
        (np.zeros((3, 0), np.int64), "(3, 0)"),  # three edges without their ends
        (np.zeros((0, 2, 2), np.int64), "(0, 2, 2)"),
        ([[]], "(1, 0)"),
    ],
)
def test_an_empty_edge_array_of_the_wrong_shape_is_refused_as_a_full_one_is(edges, shape) -> None:
    """Any array without elements was taken as "no edges": a (0, 3) array
    of triples was accepted where one with a triple in it was refused, and
    (3, 0), three edges that name no nodes, built a graph of no edges."""
    with pytest.raises(gm.ShapeError, match=r"^edges: expected shape \(m, 2\).*" + re.escape(shape)) as err:
        gm.Graph.from_edges(3, edges)
    assert err.value.arg == "edges"


@pytest.mark.parametrize("edges", [[], (), np.zeros((0, 2), np.int64), np.empty((0, 2)), np.array([])])
def test_no_edges_can_still_be_said_as_before(edges) -> None:
    graph = gm.Graph.from_edges(3, edges)
    assert (graph.node_count, graph.edge_count) == (3, 0)


@pytest.mark.parametrize("edges, given", [(None, "None"), ("01", "str"), (5, "int"), (np.int64(5), "int64")])
def test_edges_that_are_no_list_or_array_of_pairs_are_named_as_given(edges, given) -> None:
    """edges=None (or a str, or one number) said "expected integer node
    indices, got dtype object" (or "<U2", or a ShapeError of shape ()),
    naming a numpy dtype the user never wrote instead of what was given."""
    with pytest.raises(TypeError, match=r"^edges: expected an \(m, 2\) integer array or a sequence of \(source, target\) pairs, got .*" + given):
        gm.Graph.from_edges(3, edges)


# -- graphs as a modality's input --------------------------------------------------------------


def stray_graph_inputs():
    cat, dog = gm.Graph.from_text("cat"), gm.Graph.from_text("dog")
    return [
        ([cat, None, "dog"], r"\[2\]: expected Graph or None .*got str"),  # None: a row absent (test_trust_graph_none.py)
        ([cat, "dog"], r"\[1\]: expected Graph .*got str"),
        ((cat, np.zeros(18)), r"\[1\]: expected Graph .*got array of shape \(18,\)"),
        (["cat", dog], r"\[0\]: expected Graph .*got str"),
        (np.array([cat, dog], dtype=object), r": a numpy array of Graph; expected a list of Graph"),
    ]


@pytest.mark.parametrize("value, message", stray_graph_inputs())
def test_a_list_of_graphs_with_a_stray_item_names_the_item(value, message) -> None:
    """A list of graphs for a modality with one item that is no Graph was
    read as numbers: "expected a real-valued numeric array, got array of
    shape (2,) and dtype object" (or numpy's "inhomogeneous shape"), not
    saying that item 1 was the stray one, nor that graphs were seen at all."""
    model = gm.LearnableMultiModal(embed_dim=8, num_heads=2, seed=0)
    with pytest.raises(TypeError, match=r"^inputs\['linguistic'\]" + message):
        model.encode({"linguistic": value})
    with pytest.raises(TypeError, match=r"^inputs\['linguistic'\]" + message):
        model.losses(gm.Batch(inputs={"linguistic": value}))
    from grapheme_multimodal.stopping import fit_with_stopping

    before = model.state_dict()
    with pytest.raises(TypeError, match=r"^inputs\['linguistic'\]" + message):
        fit_with_stopping(model, {"linguistic": value}, epochs=1, validation_fraction=0.5, patience=1, monitor="val_total")
    assert all(np.array_equal(before[k], v) for k, v in model.state_dict().items())
    assert model.encode({"linguistic": [gm.Graph.from_text("cat")]}).shape == (1, 7, 8)  # an all-graph list as before


# -- featuriser settings -----------------------------------------------------------------------


@pytest.mark.parametrize("kind, given", [(np.array("wl"), "ndarray"), (np.array(["wl", "fingerprint"]), "ndarray"),
                                         (None, "NoneType"), (b"wl", "bytes"), (3, "int")])
def test_a_featurizer_kind_that_is_no_str_is_a_type_error_naming_kind(kind, given) -> None:
    """kind=np.array("wl") said "'ndarray' object is not an instance of
    'str'" and an array of two names numpy's "truth value of an array ...
    is ambiguous", neither naming kind."""
    with pytest.raises(TypeError, match=rf"^kind: expected one of \('fingerprint', 'wl'\) \(a str\), got {given}"):
        gm.GraphFeaturizer(kind)
    with pytest.raises(TypeError, match=r"^kind: "):
        gm.featurize(["ab"], kind=kind)
    with pytest.raises(TypeError, match=r"^kind: "):
        gm.Graph.from_text("ab").features(kind)


@pytest.mark.parametrize("unit", [np.array("char"), np.array(["char", "grapheme"]), None, 1])
def test_a_text_unit_that_is_no_str_is_a_type_error_naming_unit(unit) -> None:
    with pytest.raises(TypeError, match=r"^unit: expected one of \('char', 'grapheme'\) \(a str\), got "):
        gm.Graph.from_text("ab", unit)
    with pytest.raises(TypeError, match=r"^unit: "):
        gm.featurize(["ab"], unit=unit)


def test_a_numpy_str_kind_is_kept_as_a_plain_str() -> None:
    """GraphFeaturizer(np.str_("wl")) kept the numpy scalar: its repr and
    to_dict() showed np.str_('wl') where GraphFeaturizer("wl")'s show 'wl'."""
    made = gm.GraphFeaturizer(np.str_("wl"), dim=16)
    assert type(made.kind) is str and repr(made) == repr(gm.GraphFeaturizer("wl", dim=16))
    assert type(made.to_dict()["kind"]) is str


def test_a_featurizer_dict_with_keys_of_mixed_types_names_them() -> None:
    """{1: 2, "x": 3} raised "'<' not supported between instances of 'str'
    and 'int'" from sorting the unknown keys, naming neither the argument
    nor the keys."""
    with pytest.raises(gm.InvalidValueError, match=r"^featurizer: unknown keys \[1, 'x'\]; expected kind, dim, iterations"):
        gm.GraphFeaturizer.parse({1: 2, "x": 3})
    with pytest.raises(gm.InvalidValueError, match=r"^graph_features\['linguistic'\]: unknown keys \[None, 'size'\]"):
        gm.LearnableMultiModalConfig(graph_features={"linguistic": {"kind": "wl", None: 1, "size": 2}})


@pytest.mark.parametrize("dtype", ["m8[s]", "m8[ns]"])
def test_durations_are_no_node_indices(dtype) -> None:
    """numpy counts timedelta64 among its signed integers: an edge array of
    durations was taken as node indices (1 second = node 1), where
    activations, images and sequences refuse them."""
    with pytest.raises(TypeError, match=rf"^edges: expected integer node indices, got dtype timedelta64"):
        gm.Graph.from_edges(2, np.array([[0, 1]], dtype))


@pytest.mark.parametrize("names", [{"activation": ["weight"]}, {"label": {"name"}}])
def test_networkx_attribute_names_that_cannot_be_keys_are_named(names) -> None:
    """from_networkx(g, activation=["weight"]) and to_networkx alike said
    "unhashable type: 'list'", naming neither the argument nor the name."""
    pytest.importorskip("networkx")
    import networkx as nx

    (arg, value), = names.items()
    message = rf"^{arg}: expected a node attribute name \(a str or other hashable key\), got {type(value).__name__}"
    with pytest.raises(TypeError, match=message):
        gm.Graph.from_networkx(nx.path_graph(2), **names)
    with pytest.raises(TypeError, match=message):
        gm.Graph.from_text("ab").to_networkx(**names)


@pytest.mark.parametrize("activations, given", [({0.1, 0.2}, "set"), ({0: 0.1, 1: 0.2}, "dict"), ("12", "str")])
def test_activations_without_a_node_order_are_refused_as_labels_are(activations, given) -> None:
    """activations={0.1, 0.2} (or a dict, or "12") said "expected a
    real-valued numeric array, got array of shape () and dtype object",
    where labels of the same kinds are refused saying why: a set's or a
    mapping's order is not the nodes' order."""
    with pytest.raises(TypeError, match=rf"^activations: expected a sequence of numbers, one per node, got {given}"):
        gm.Graph.from_edges(2, [], activations=activations)


def test_activations_given_as_the_values_of_a_dict_are_taken_in_order() -> None:
    """The annotation says any iterable of floats: a dict's values (its
    insertion order) were refused as "array of shape () and dtype object"."""
    by_node = {"a": 0.1, "b": 0.9}
    graph = gm.Graph.from_edges(2, [[0, 1]], activations=by_node.values())
    np.testing.assert_array_equal(graph.activations, np.float32([0.1, 0.9]))


# -- memory ------------------------------------------------------------------------------------


def run_with_headroom(code: str, headroom: int) -> subprocess.CompletedProcess:
    """Runs ``code`` in a fresh interpreter whose address space is limited to
    what it uses once imported plus ``headroom`` bytes."""
    prelude = f"""
        import resource, numpy as np, grapheme_multimodal as gm
        used = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmSize:"))
        resource.setrlimit(resource.RLIMIT_AS, (used + {headroom}, used + {headroom}))
        """
    return subprocess.run([sys.executable, "-c", textwrap.dedent(prelude) + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
@pytest.mark.parametrize("rows, headroom", [(2**34, 2**30), (2**26, 1536 * 2**20)])
def test_an_edge_list_too_large_for_memory_is_refused_naming_edges_not_an_abort(rows, headroom) -> None:
    """A broadcast edge array costs nothing to pass, but its int64 copy and
    the core's list of pairs were allocated before any size check: 2**34
    rows raised numpy's "Unable to allocate 256 GiB" (a MemoryError naming
    no argument), and 2**26 rows, whose int64 copy fit the process, aborted
    the interpreter when the core's copy of the pairs did not."""
    code = f"""
        edges = np.broadcast_to(np.array([0, 1], np.int64), ({rows}, 2))
        try:
            gm.Graph.from_edges(2, edges)
        except gm.TooLargeError as e:
            print("TooLargeError", e.arg)
        """
    proc = run_with_headroom(code, headroom)
    assert proc.returncode == 0, f"the interpreter died ({proc.returncode}): {proc.stderr[-1500:]}"
    assert proc.stdout.split() == ["TooLargeError", "edges"], proc.stdout + proc.stderr[-1500:]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
@pytest.mark.parametrize("dtype", ["float64", "float32", "int64"])
def test_a_node_count_too_large_for_memory_is_refused_before_its_activations_are_copied(dtype) -> None:
    """num_nodes was checked against memory by the core, after the Python
    layer had copied the activations into float32: one activation per node
    of a broadcast array raised numpy's unnamed "Unable to allocate"."""
    code = f"""
        activations = np.broadcast_to(np.{dtype}(1), (2**36,))
        try:
            gm.Graph.from_edges(2**36, [], activations=activations)
        except gm.TooLargeError as e:
            print("TooLargeError", e.arg)
        """
    proc = run_with_headroom(code, 2**30)
    assert proc.returncode == 0, f"the interpreter died ({proc.returncode}): {proc.stderr[-1500:]}"
    assert proc.stdout.split() == ["TooLargeError", "num_nodes"], proc.stdout + proc.stderr[-1500:]


def test_a_graph_where_a_vector_or_a_component_is_expected_says_how_to_give_it() -> None:
    """One Graph given as a modality's input, as ModalFeatures' features, or
    as an event's component was refused as "expected a real-valued numeric
    array, got array of shape () and dtype object" (or "expected ModalGraph
    or ModalFeatures, got Graph"), not saying how a graph is given."""
    graph = gm.Graph.from_text("cat")
    model = gm.LearnableMultiModal(embed_dim=8, num_heads=2, seed=0)
    with pytest.raises(TypeError, match=r"^inputs\['linguistic'\]: got one Graph; expected a list of Graph \(one per row\)"):
        model.encode({"linguistic": graph})
    with pytest.raises(TypeError, match=r"^features: got a Graph; a graph is given as ModalGraph\(graph, modality\)"):
        gm.ModalFeatures(graph, "visual")
    with pytest.raises(TypeError, match=r"^component: expected ModalGraph or ModalFeatures, got Graph; .*ModalGraph\(graph, modality\)"):
        gm.MultiModalEvent(1, [graph])
    event = gm.MultiModalEvent(1, [])
    event.components.append(graph)
    with pytest.raises(TypeError, match=r"^event\.components\[0\]: expected ModalGraph or ModalFeatures, got Graph; .*ModalGraph"):
        model.fuse_event(event)


def test_activation_and_label_under_one_attribute_name_are_refused() -> None:
    """to_networkx(activation="x", label="x") wrote both into one attribute:
    the labels overwrote the activations without a word."""
    pytest.importorskip("networkx")
    import networkx as nx

    graph = gm.Graph.from_edges(2, [[0, 1]], activations=[0.25, 0.75], labels=["a", "b"])
    with pytest.raises(gm.InvalidValueError, match=r"^label: names the attribute 'x', as activation does; expected two names"):
        graph.to_networkx(activation="x", label="x")
    with pytest.raises(gm.InvalidValueError, match=r"^label: names the attribute 'x', as activation does"):
        gm.Graph.from_networkx(nx.path_graph(2), activation="x", label="x")
    assert gm.Graph.from_networkx(graph.to_networkx(activation="x", label="y"), activation="x", label="y") == graph
