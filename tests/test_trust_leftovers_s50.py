"""Leftovers of earlier audits, each closed the way a user would expect:

1. ``Graph.from_networkx`` takes bool node activations, as ``from_edges``
   (and every array of data) does: ``True`` is 1.0;
2. an edge's out-of-range node index is refused naming the valid indices in
   words ("0 to 2"), not Rust's ``0..3``, which read as if 3 were one;
3. ``Batch.from_experiences`` refuses a prioritised sample whose importance
   weights it would drop (a batch weighs every row alike);
4. one label rule for every measure: a fractional float label (1.5) is no
   class for the retrieval either, as it was none for the k-NN and probe;
5. ``nutrimouse_cv`` refuses, once and naming the view, a view whose rank
   in some fold is below the anchors' components (scikit-learn warned
   "y residual is constant" in every fold, naming no view).

Each test failed before its fix."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import evaluation, metrics
from grapheme_multimodal.buffer import ExperienceBuffer
from grapheme_multimodal.graph import Graph

from conftest import as_unit


def test_from_networkx_takes_bool_activations_as_from_edges_does() -> None:
    nx = pytest.importorskip("networkx")
    g = nx.DiGraph()
    g.add_node("a", activation=True)
    g.add_node("b", activation=np.bool_(False))
    g.add_node("c", activation=np.True_)
    g.add_edge("a", "b")
    got = Graph.from_networkx(g)  # was "TypeError: g: node 'a' has activation=True; expected a real number"
    assert got == Graph.from_edges(3, [(0, 1)], activations=[True, False, True])
    assert got.activations.tolist() == [1.0, 0.0, 1.0]
    # other non-numbers are refused as before
    g.nodes["b"]["activation"] = "1"
    with pytest.raises(TypeError, match=r"^g: node 'b' has activation='1'; expected a real number"):
        Graph.from_networkx(g)


@pytest.mark.parametrize("edges", [
    [(0, 3)],  # the core's check
    np.array([(0, 2**64 - 1)], dtype=np.uint64),  # refused before the int64 copy, in Python
    [(0, 2**70)],  # a Python int past int64, in Python
])
def test_an_edge_out_of_range_names_the_valid_node_indices_in_words(edges) -> None:
    # "node indices must be in 0..3" read as if node 3 of a 3-node graph were valid
    with pytest.raises(gm.InvalidValueError, match=r"^edges: edge 0 is \(0, \d+\) but node indices must be 0 to 2 "
                       r"\(num_nodes=3\)$") as err:
        Graph.from_edges(3, edges)
    assert err.value.arg == "edges" and "0..3" not in str(err.value)


@pytest.mark.parametrize("edges", [[(0, 0)], np.array([(0, 2**64 - 1)], dtype=np.uint64), [(0, 2**70)]])
def test_an_edge_of_a_graph_without_nodes_is_refused_as_such(edges) -> None:
    # "in 0..0": an empty range written as one
    with pytest.raises(gm.InvalidValueError, match=r"^edges: edge 0 is \(0, \d+\) but the graph has no nodes "
                       r"\(num_nodes=0\), so no edges$"):
        Graph.from_edges(0, edges)


def _buffer_with_rewards() -> ExperienceBuffer:
    rng = np.random.default_rng(3)
    n, e = 12, 8
    buffer = ExperienceBuffer(20, seed=0)
    mask = np.ones((n, 7), bool)
    buffer.extend(as_unit(rng.normal(size=(n, 7, e))), mask, rng.normal(size=(n, e)), rng.uniform(size=(n, 7, 7)),
                  np.linspace(-1, 1, n))  # rewards of every size: priorities that differ
    return buffer


def test_from_experiences_refuses_a_prioritised_sample_whose_importance_weights_it_would_drop() -> None:
    buffer = _buffer_with_rewards()
    sample = buffer.sample(6, prioritized=True, beta=0.4)
    assert (sample.weights < 1).any()  # importance weights that matter
    # was a batch training every row alike, the correction the weights exist for dropped without a word
    with pytest.raises(gm.InvalidValueError, match=r"^experiences: holds importance weights \(\d+ of 6 not 1: a "
                       r"prioritised sample\), which a Batch cannot apply .*sample with beta=0") as err:
        gm.Batch.from_experiences(sample)
    assert err.value.arg == "experiences"
    with pytest.raises(gm.InvalidValueError, match=r"^experiences: holds importance weights"):
        gm.Batch.from_experiences(sample, use_inputs=True)  # refused before the inputs are looked at
    # what the refusal offers, and what has no weights, are taken as before
    unweighted = buffer.sample(6, prioritized=True, beta=0.0)
    assert (unweighted.weights == 1).all()
    assert gm.Batch.from_experiences(unweighted).batch_size == 6
    assert gm.Batch.from_experiences(buffer.sample(6)).batch_size == 6
    assert gm.Batch.from_experiences(buffer.batch()).batch_size == 12
    assert gm.Batch.from_experiences(buffer).batch_size == 12


def _labelled_rows():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 3))
    return x, np.array([0, 1, 2, 3] * 2, dtype=float)


@pytest.mark.parametrize("measure, name", [
    (lambda x, y: metrics.cross_view_retrieval(x, x, y), "labels"),
    (lambda x, y: evaluation.pairwise_cca_retrieval({"a": x, "b": x[:, ::-1]}, {"a": x, "b": x[:, ::-1]}, y, 1), "labels"),
    (lambda x, y: metrics.knn_accuracy(x, y, x, y), "train_y"),
    (lambda x, y: metrics.linear_probe_accuracy(x, y, x, y), "train_y"),
])
@pytest.mark.parametrize("dtype", [float, np.float32, object])
def test_a_fractional_label_is_no_class_for_any_measure(measure, name, dtype) -> None:
    # the retrieval scored each distinct 1.5 as a class of its own, where the k-NN and probe refused it
    x, whole = _labelled_rows()
    fractional = whole.copy()
    fractional[5] = 1.5
    with pytest.raises(gm.InvalidValueError, match=rf"^{name}: expected class labels \(ints, strings, bools or whole "
                       r"floats\), got continuous values \(1\.5 at row 5, dtype \w+\); round or bin them") as err:
        measure(x, fractional.astype(dtype))
    assert err.value.arg == name
    # whole floats are classes, scored as the ints they equal
    assert measure(x, whole.astype(dtype)) == measure(x, whole.astype(int))


def test_nutrimouse_cv_refuses_once_and_by_name_a_view_below_the_anchors_rank(nutrimouse) -> None:
    rng = np.random.default_rng(0)
    for view in ("lipid", "gene"):
        width = nutrimouse.views[view].shape[1]
        rank_one = rng.normal(size=(nutrimouse.views[view].shape[0], 1)) * rng.normal(size=(1, width))
        data = dataclasses.replace(nutrimouse, views={**nutrimouse.views, view: rank_one})
        with warnings.catch_warnings(record=True) as caught:  # in the test only: what a user sees
            warnings.simplefilter("always")
            # were scikit-learn's "y residual is constant at iteration 1" twice per fold (lipid), or figures
            # past the rank without a word (gene), naming no view
            with pytest.raises(gm.InvalidValueError, match=rf"^data\.views\['{view}'\]: standardised over the "
                               r"training mice of fold 0 of repeat 0, its columns span only 1 direction; the anchors "
                               r"fit 2 canonical components.*or anchors=False$") as err:
                evaluation.nutrimouse_cv(None, data, n_repeats=2)
        assert err.value.arg == f"data.views[{view!r}]"
        assert not caught, [str(w.message) for w in caught]
