"""Second hostile audit of graph inputs: each test is a reproducer of a
defect it found, asserting the clean behaviour (a typed error naming the
argument and what was given, or the right answer where a wrong one came
silently)."""

from __future__ import annotations

import re

import numpy as np
import pytest

import grapheme_multimodal as gm

nx = pytest.importorskip("networkx")

#: What every refusal of a networkx graph given where numbers are expected says after the name.
READ_AS_NODES = re.escape(
    ": got a networkx.Graph, which numpy would read as the list of its nodes; expected numbers "
    "(a networkx graph goes in as grapheme_multimodal.Graph.from_networkx(g))"
)


def test_networkx_graphs_given_as_a_modalitys_rows_are_refused_not_read_as_node_ids() -> None:
    """numpy reads a networkx graph as the list of its nodes: a list of
    graphs of nodes 0..d-1 given for a modality of width d was encoded, and
    trained on, as rows [0, 1, ..., d-1] of features, without a word."""
    model = gm.LearnableMultiModal(input_dims={"visual": 4}, embed_dim=8, hidden_dim=8, num_heads=2, seed=0)
    before = model.state_dict()
    rows = [nx.path_graph(4), nx.cycle_graph(4)]
    with pytest.raises(TypeError, match=r"^inputs\['visual'\]\[0\]" + READ_AS_NODES + "$"):
        model.encode({"visual": rows})
    with pytest.raises(TypeError, match=r"^inputs\['visual'\]" + READ_AS_NODES):
        model.encode({"visual": nx.path_graph(4)})
    # a graph modality (fingerprints, 18 wide): a graph of 18 nodes was 18 features
    with pytest.raises(TypeError, match=r"^inputs\['linguistic'\]\[0\]" + READ_AS_NODES):
        model.encode({"linguistic": [nx.path_graph(18)]})
    with pytest.raises(TypeError, match=r"^inputs\['linguistic'\]\[1\]: expected Graph or None .*, got networkx\.Graph "
                       r"\(convert it with grapheme_multimodal\.Graph\.from_networkx\(g\)\)$"):
        model.encode({"linguistic": [gm.Graph.from_text("a"), nx.path_graph(18)]})
    data = {"visual": rows * 4, "auditory": np.random.default_rng(0).normal(size=(8, 18)).astype(np.float32)}
    with pytest.raises(TypeError, match=r"^data\['visual'\]\[0\]" + READ_AS_NODES):
        model.fit(data, epochs=1, batch_size=4, progress=False)
    after = model.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before) and model.epochs_trained == 0


def test_networkx_graphs_given_as_numbers_elsewhere_are_refused_naming_the_argument() -> None:
    """The same reading made a sequence's values, a feature vector and a
    scikit-learn view of node ids."""
    with pytest.raises(TypeError, match=r"^values" + READ_AS_NODES):
        gm.Graph.from_sequence(nx.path_graph(5))
    with pytest.raises(TypeError, match=r"^features" + READ_AS_NODES):
        gm.ModalFeatures(nx.path_graph(4), "visual")


def test_the_estimator_refuses_a_view_of_networkx_graphs() -> None:
    """check_array read each graph as the row of its node ids and the
    estimator fitted on them."""
    pytest.importorskip("sklearn")
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    graphs = [nx.relabel_nodes(nx.path_graph(5), {j: (j * 3 + i) % 5 for j in range(5)}) for i in range(20)]
    other = np.random.default_rng(0).normal(size=(20, 3))
    with pytest.raises(TypeError, match=r"^Xs\[0\]\[0\]" + READ_AS_NODES):
        MultimodalEmbedder(epochs=1, embed_dim=8, hidden_dim=8, num_heads=2).fit([graphs, other])


def test_fit_views_names_the_view_holding_a_networkx_graph() -> None:
    """Named by the model's name for it (inputs['visual'][0]), which the
    caller of fit_views never passed."""
    from grapheme_multimodal import uci

    views = {"g": [nx.path_graph(3)] * 8, "a": np.random.default_rng(0).normal(size=(8, 3))}
    with pytest.raises(TypeError, match=r"^views\['g'\]\[0\]" + READ_AS_NODES):
        uci.fit_views(views, 0, settings=uci.TrainingSettings(epochs=1, batch_size=4))


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda g: gm.fingerprints([g]), "graphs[0]: expected Graph"),
        (lambda g: gm.featurize(["cat", g]), "items[1]: expected str or Graph"),
        (lambda g: gm.ModalGraph(g, "visual"), "graph: expected Graph"),
        (lambda g: gm.MultiModalEvent(1, [g]), "component: expected ModalGraph or ModalFeatures"),
        (lambda g: gm.Graph.from_edges(3, g), "edges: expected an (m, 2) integer array or a sequence of (source, target) pairs"),
    ],
)
def test_a_networkx_graph_where_a_graph_is_expected_is_named_as_one(call, name) -> None:
    """Its class is named Graph too: "expected Graph, got Graph" said
    neither what was wrong nor how to convert it."""
    with pytest.raises(TypeError, match="^" + re.escape(f"{name}, got networkx.Graph (convert it with "
                                                        "grapheme_multimodal.Graph.from_networkx(g))") + "$"):
        call(nx.path_graph(3))


def test_graphs_and_numbers_without_networkx_are_read_as_before() -> None:
    """The check reads the items' types only once networkx is imported; the
    rows of a list are read as they always were."""
    model = gm.LearnableMultiModal(input_dims={"visual": 2}, embed_dim=8, hidden_dim=8, num_heads=2, seed=0)
    rows = [[0.5, 1.0], (2.0, -1.0)]
    np.testing.assert_array_equal(model.encode({"visual": rows}), model.encode({"visual": np.array(rows, np.float32)}))
    assert gm.Graph.from_sequence((1, 2, 3)) == gm.Graph.from_sequence(np.array([1, 2, 3]))



@pytest.mark.parametrize(
    "shape, hint",
    [
        ((3, 4, 1), "; drop its channel axis first: image[..., 0]"),
        ((1, 3, 4), "; drop its channel axis first: image[0]"),
        ((3, 4, 3), "; convert colour images to grayscale first"),
        ((3, 4, 4), "; convert colour images to grayscale first"),
        ((2, 3, 4, 1), ""),
    ],
)
def test_an_image_with_a_channel_axis_is_told_what_to_do_with_it(shape, hint) -> None:
    """A grayscale image with a channel axis of one, (H, W, 1) as image
    loaders give it, was told to "convert colour images to grayscale
    first": it is grayscale already."""
    with pytest.raises(gm.ShapeError, match="^" + re.escape(
            f"image: expected a 2-D array [H, W] (one grayscale channel), got shape {shape}{hint}") + "$") as info:
        gm.Graph.from_image(np.zeros(shape, np.uint8))
    assert info.value.arg == "image"

