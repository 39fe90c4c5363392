"""Hostile audit of graphs as modalities (session 61, a graph-ML user's
eyes): each test is a reproducer of a defect it found, asserting the clean
behaviour."""

from __future__ import annotations

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import cli
from grapheme_multimodal._validation import memory_budget

#: Features of this width take 256 KiB a row; the model's weights stay small (embed_dim 8: 2 MiB).
_WIDE = 2**16
#: Twice the rows this machine's memory holds: refused before anything is allocated (and, were it not, too
#: large for numpy's lazily mapped zeros, which the kernel refuses beyond its memory).
_ROWS = 2 * memory_budget() // (4 * _WIDE) + 1


@pytest.fixture(scope="module")
def wide_model() -> gm.LearnableMultiModal:
    return gm.LearnableMultiModal(
        embed_dim=8, hidden_dim=8, num_heads=1, graph_features={"linguistic": gm.GraphFeaturizer("wl", dim=_WIDE)}
    )


@pytest.mark.parametrize("absent_row", [False, True], ids=["every-row-a-graph", "a-None-row"])
def test_graph_features_beyond_memory_are_refused_naming_the_models_argument(wide_model, absent_row) -> None:
    """The model featurises a modality's graphs itself: features beyond
    memory were refused as featurize's "items: the features of ...", an
    argument the caller of encode never passed, and with a None row among
    the graphs the zeros they go into came first, numpy's MemoryError
    naming nothing ("Unable to allocate 4.00 TiB")."""
    graph = gm.Graph.from_text("cat")
    graphs = [graph] * _ROWS + ([None] if absent_row else [])
    before = {k: v.copy() for k, v in wide_model.state_dict().items()}
    for call in (lambda: wide_model.encode({"linguistic": graphs}), lambda: wide_model.record_batch({"linguistic": graphs})):
        with pytest.raises(gm.TooLargeError, match=r"^inputs\['linguistic'\]: ") as info:
            call()
        assert info.value.arg == "inputs['linguistic']"
    assert len(wide_model.experience) == 0
    assert all(np.array_equal(v, before[k]) for k, v in wide_model.state_dict().items())
    # the component view names its own argument, as for any other error of its x
    with pytest.raises(gm.TooLargeError, match=r"^x: ") as info:
        wide_model.encoder.encode("linguistic", graphs)
    assert info.value.arg == "x"


def test_graph_errors_of_an_item_name_its_row_not_its_place_among_the_graphs() -> None:
    """An item's error from the featuriser names the model's row: with None
    rows left out of what is featurised, ``items[k]`` was the k-th graph,
    not row k (here an error injected where featurize would raise one: a
    graph whose WL working memory cannot be had)."""
    featurizer = gm.GraphFeaturizer("wl", dim=8)
    graphs = [None, gm.Graph.from_text("a"), None, gm.Graph.from_text("b")]
    present = [k for k, g in enumerate(graphs) if g is not None]

    class Failing:
        def __call__(self, items):
            raise gm.TooLargeError("items[1]: WL on this graph needs 1 TiB of working memory", "items[1]")

    from grapheme_multimodal.graph import featurized

    with pytest.raises(gm.TooLargeError, match=r"^inputs\['linguistic'\]\[3\]: WL on this graph") as info:
        featurized(Failing(), [graphs[k] for k in present], "inputs['linguistic']", lambda j: f"inputs['linguistic'][{present[j]}]")
    assert info.value.arg == "inputs['linguistic'][3]"
    # any error featurize names by an item names the caller's item
    with pytest.raises(TypeError, match=r"^texts\[1\]: expected str or Graph"):
        featurized(featurizer, ["a", 3], "texts")


def test_cli_text_features_beyond_memory_name_the_file_not_featurize_items(tmp_path, capsys) -> None:
    """grapheme-mm train of a .txt file whose WL features pass memory
    (--wl-dim) said "error: items: the features of ...": an argument the
    user never typed. It names the modality and the file now."""
    texts = tmp_path / "captions.txt"
    texts.write_text("cat\n" * 2**17, encoding="utf-8")  # 2**17 rows x 4194304 x 4 bytes: 2 TiB
    out = tmp_path / "model.safetensors"
    assert cli.main(["train", "-m", f"linguistic={texts}", "--wl-dim", "4194304", "--no-progress", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"error: linguistic ({texts}): the features of" in err, err
    assert not out.exists()


def test_events_of_graphs_beyond_memory_are_refused_naming_the_events(wide_model) -> None:
    """fit of events featurises their graphs into one table per modality:
    past memory that table was numpy's MemoryError naming nothing ("Unable
    to allocate 23.5 GiB"), and the model was left as it was only by luck."""
    event = gm.MultiModalEvent(0)
    event.add_component(gm.ModalGraph(gm.Graph.from_text("cat"), "linguistic"))
    events = [event] * _ROWS  # one event, many rows: as many components to featurise
    before = {k: v.copy() for k, v in wide_model.state_dict().items()}
    with pytest.raises(gm.TooLargeError, match=r"^data: the linguistic inputs of its [\d,]+ components.*expected fewer events") as info:
        wide_model.fit(events, epochs=1)
    assert info.value.arg == "data"  # fit's name of its events
    assert wide_model.epochs_trained == 0
    assert all(np.array_equal(v, before[k]) for k, v in wide_model.state_dict().items())


def test_embed_dataset_texts_beyond_memory_are_refused_naming_the_column(wide_model) -> None:
    """embed_dataset featurises a text column per batch: past memory the
    batch's zeros came first, numpy's MemoryError naming nothing, in an
    actor (Ray itself is not needed to read a batch's column)."""
    pytest.importorskip("ray")
    from grapheme_multimodal import distributed

    plan = distributed._ColumnPlan(wide_model, {"linguistic": "caption"})
    texts = np.array(["cat"] * _ROWS + [None], dtype=object)
    with pytest.raises(gm.TooLargeError, match=r"^column 'caption' \(linguistic\): the features of its [\d,]+ rows.*"
                                               r"expected a smaller batch_size"):
        plan._column("linguistic", "caption", texts)
    # a batch that fits is featurised as the model featurises the texts
    x, present = plan._column("linguistic", "caption", np.array(["cat", None, "dog"], dtype=object))
    np.testing.assert_array_equal(present, [True, False, True])
    np.testing.assert_array_equal(x[[0, 2]], wide_model.config.graph_featurizer("linguistic")(["cat", "dog"]))
    np.testing.assert_array_equal(x[1], np.zeros(_WIDE, np.float32))


def test_wl_features_are_unit_vectors_but_an_empty_graphs_are_zeros_as_the_docs_say() -> None:
    """GraphFeaturizer's docstring said "unit vectors, whatever the graph's
    size": an empty graph (an empty text, from_edges(0, [])) has no colour
    to count, and its features are zeros, which the model embeds as any
    all-zero input."""
    graphs = [gm.Graph.from_edges(0, []), gm.Graph.from_text(""), gm.Graph.from_text("a"),
              gm.Graph.from_edges(1, [(0, 0)]), gm.Graph.from_text("x" * 500)]
    for iterations in (0, 1, 3):
        norms = np.linalg.norm(gm.featurize(graphs, kind="wl", dim=64, iterations=iterations), axis=1)
        np.testing.assert_array_equal(norms[:2], [0.0, 0.0])
        np.testing.assert_allclose(norms[2:], 1.0, rtol=1e-6)
    doc = " ".join(gm.GraphFeaturizer.__doc__.split())
    assert "unit vectors, whatever the graph's size (zeros for an empty graph" in doc
    readme = " ".join((__import__("pathlib").Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8").split())
    assert "graph size does not dominate (an empty graph's features are zeros)" in readme


def test_from_networkx_says_which_numbers_it_takes_of_a_fraction() -> None:
    """A Fraction activation was refused as "expected a real number", which
    a Fraction is (numbers.Real): the refusal now says which numbers are
    taken and how to convert others."""
    nx = pytest.importorskip("networkx")
    from decimal import Decimal
    from fractions import Fraction

    for value in (Fraction(1, 3), Decimal("0.5")):
        g = nx.DiGraph()
        g.add_node("a", activation=value)
        with pytest.raises(TypeError, match=r"^g: node 'a' has activation=.*; expected a real number as an int or a float "
                                            r"\(Python's or numpy's; convert others with float\(\)\)$"):
            gm.Graph.from_networkx(g)
        g.nodes["a"]["activation"] = float(value)
        np.testing.assert_array_equal(gm.Graph.from_networkx(g).activations, np.float32([float(value)]))


def test_a_graph_whose_wl_memory_cannot_be_had_is_named_by_its_row_in_the_models_calls() -> None:
    """Under an address-space limit that holds a 10M-node graph but not WL's
    working memory, encode and fit named featurize's ``items[0]``: now the
    model's row, ``inputs['auditory'][2]`` (its place among the rows, None
    rows counted), and fit's event, ``data[1]``."""
    import subprocess
    import sys
    import textwrap

    code = """
        import resource, numpy as np, grapheme_multimodal as gm
        graph = gm.Graph.from_sequence(np.zeros(10_000_000, np.float32))  # WL: 480 MB of neighbour lists
        model = gm.LearnableMultiModal(embed_dim=8, hidden_dim=8, num_heads=1, graph_features={"auditory": "wl"})
        small, big = gm.MultiModalEvent(0), gm.MultiModalEvent(1)
        small.add_component(gm.ModalGraph(gm.Graph.from_text("a"), "auditory"))
        big.add_component(gm.ModalGraph(graph, "auditory"))
        used = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmSize:"))
        resource.setrlimit(resource.RLIMIT_AS, (used + 200_000_000, used + 200_000_000))
        for call in (lambda: model.encode({"auditory": [gm.Graph.from_text("a"), None, graph]}),
                     lambda: model.fit([small, big], epochs=1, progress=False)):
            try:
                call()
            except gm.TooLargeError as e:
                print(e.arg, str(e).startswith(e.arg + ": "))
        print(model.epochs_trained)
        """
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"the interpreter died ({proc.returncode}): {proc.stderr[-1500:]}"
    assert proc.stdout.split() == ["inputs['auditory'][2]", "True", "data[1]", "True", "0"], proc.stdout + proc.stderr[-1500:]


def test_a_model_of_a_wide_wl_modality_takes_no_buffer_rows_until_it_records() -> None:
    """The model's experience buffer allocated its first 1,024 rows of every
    input width, filled with NaN, when the model was made: a WL modality of
    2**16 buckets took 256 MiB (2**18: 1 GiB; the largest dim, 4194304: 16
    GiB) of a model that never recorded. Rows now come with the first
    experience, and the buffer works as before."""
    import pickle
    import tracemalloc

    tracemalloc.start()  # numpy's arrays are traced too
    try:
        model = gm.LearnableMultiModal(embed_dim=8, hidden_dim=8, num_heads=1,
                                       graph_features={"linguistic": {"kind": "wl", "dim": 2**16}})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 * 2**20, f"making the model took {peak:,} bytes"  # its weights and Adam's moments: 6 MiB
    graphs = [gm.Graph.from_text("cat"), gm.Graph.from_text("dog")]
    model.record_batch({"linguistic": graphs}, rewards=[0.5, 1.0])
    copy = pickle.loads(pickle.dumps(model))
    for m in (model, copy):
        assert len(m.experience) == 2
        batch = m.experience.batch()
        np.testing.assert_array_equal(batch.rewards, np.float32([0.5, 1.0]))
        np.testing.assert_array_equal(batch.inputs[2], gm.featurize(graphs, kind="wl", dim=2**16))
    np.testing.assert_array_equal(copy.experience.sample(4, replace=True).rewards.shape, (4,))
