"""Content-aware WL features and the batched featuriser."""

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import grapheme_multimodal as gm
from wl_reference import wl_features as reference_wl


def test_fingerprint_cannot_tell_equal_length_texts_apart_and_wl_can():
    pairs = [("cat", "dog"), ("cat", "act"), ("listen", "silent"), ("abab", "aabb")]
    for a, b in pairs:
        ga, gb = gm.Graph.from_text(a), gm.Graph.from_text(b)
        np.testing.assert_array_equal(ga.features(), gb.features())
        fa, fb = ga.features("wl"), gb.features("wl")
        assert np.linalg.norm(fa - fb) > 0.1, (a, b)


def test_wl_is_a_unit_vector_of_the_requested_length():
    f = gm.Graph.from_text("hello world").features("wl", dim=64, iterations=2)
    assert f.shape == (64,) and f.dtype == np.float32
    assert np.linalg.norm(f) == pytest.approx(1.0, abs=1e-6)
    assert (f >= 0).all()
    np.testing.assert_array_equal(gm.Graph.from_text("").features("wl", dim=8), np.zeros(8, np.float32))


def test_graph_size_does_not_dominate():
    short = gm.Graph.from_text("the cat sat. " * 20).features("wl")
    long = gm.Graph.from_text("the cat sat. " * 400).features("wl")
    other = gm.Graph.from_text("a dog ran! " * 400).features("wl")
    assert float(short @ long) > 0.99
    assert float(other @ long) < 0.5


def test_defaults():
    f = gm.GraphFeaturizer("wl")
    assert (f.dim, f.iterations) == (256, 3)
    g = gm.Graph.from_text("abc")
    np.testing.assert_array_equal(g.features("wl"), g.features("wl", dim=256, iterations=3))
    assert gm.GraphFeaturizer().to_dict() == {"kind": "fingerprint", "dim": 18, "iterations": None}


def _random_graph(rng, n, m, alphabet="xyz"):
    labels = [alphabet[i] for i in rng.integers(0, len(alphabet), n)]
    acts = rng.uniform(-0.2, 1.2, n).astype(np.float32)
    edges = rng.integers(0, n, (m, 2)) if n else np.zeros((0, 2), np.int64)
    return labels, acts, edges


@pytest.mark.parametrize("seed", range(12))
def test_wl_matches_an_independent_python_statement(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 12))
    labels, acts, edges = _random_graph(rng, n, int(rng.integers(0, 3 * n + 1)), alphabet="ab\u00e9\U0001F600")
    dim, iterations = int(rng.integers(1, 40)), int(rng.integers(0, 4))
    g = gm.Graph.from_edges(n, edges, acts, labels)
    want = reference_wl(labels, acts.tolist(), [tuple(e) for e in edges.tolist()], dim, iterations)
    np.testing.assert_allclose(g.features("wl", dim=dim, iterations=iterations), want, atol=1e-6)


def test_wl_is_identical_across_processes():
    """A fixed hash, not Python's or Rust's randomly seeded one."""
    code = (
        "import grapheme_multimodal as gm, sys;"
        "sys.stdout.write(gm.featurize(['hello', 'w\u00f6rld', ''], kind='wl', dim=16).tobytes().hex())"
    )
    here = gm.featurize(["hello", "w\u00f6rld", ""], kind="wl", dim=16).tobytes().hex()
    for hash_seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert out.stdout == here


@st.composite
def graph_and_permutation(draw):
    n = draw(st.integers(0, 10))
    labels = draw(st.lists(st.sampled_from(["", "a", "b", "\u00e9"]), min_size=n, max_size=n))
    acts = draw(st.lists(st.floats(-1, 2, width=32), min_size=n, max_size=n))
    edges = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=3 * n)) if n else []
    perm = draw(st.permutations(range(n)))
    edge_order = draw(st.permutations(range(len(edges))))
    return labels, acts, edges, list(perm), list(edge_order)


@settings(max_examples=150, deadline=None)
@given(graph_and_permutation(), st.integers(1, 64), st.integers(0, 4))
def test_isomorphic_graphs_get_identical_wl_features(case, dim, iterations):
    labels, acts, edges, perm, edge_order = case
    n = len(labels)
    g = gm.Graph.from_edges(n, np.array(edges, dtype=np.int64).reshape(-1, 2), acts, labels)
    # node i of g is node perm[i] of h; h also lists its edges in another order
    h_labels, h_acts = [""] * n, [0.0] * n
    for i in range(n):
        h_labels[perm[i]], h_acts[perm[i]] = labels[i], acts[i]
    h_edges = [(perm[edges[k][0]], perm[edges[k][1]]) for k in edge_order]
    h = gm.Graph.from_edges(n, np.array(h_edges, dtype=np.int64).reshape(-1, 2), h_acts, h_labels)
    np.testing.assert_array_equal(
        g.features("wl", dim=dim, iterations=iterations), h.features("wl", dim=dim, iterations=iterations)
    )
    np.testing.assert_array_equal(g.features(), h.features())


def test_featurize_texts_and_graphs_in_one_batch():
    texts = ["", "a", "hello", "cafe\u0301", "x" * 500]
    graphs = [gm.Graph.from_text(t) for t in texts]
    for kind, dim in [("fingerprint", None), ("wl", 48)]:
        by_text = gm.featurize(texts, kind=kind, dim=dim)
        mixed = gm.featurize([t if i % 2 else g for i, (t, g) in enumerate(zip(texts, graphs))], kind=kind, dim=dim)
        assert by_text.dtype == np.float32 and by_text.shape == (5, dim or 18)
        np.testing.assert_array_equal(by_text, mixed)
        for row, g in zip(by_text, graphs):
            np.testing.assert_array_equal(row, g.features(kind, dim=dim))
    np.testing.assert_array_equal(gm.featurize(graphs), gm.fingerprints(graphs))
    assert gm.featurize([], kind="wl", dim=7).shape == (0, 7)
    assert gm.featurize(iter(["ab", "cd"]), kind="wl").shape == (2, 256)


def test_featurize_grapheme_unit():
    texts = ["e\u0301a", "\U0001F468\u200D\U0001F469"]
    by_grapheme = gm.featurize(texts, kind="wl", dim=32, unit="grapheme")
    for row, t in zip(by_grapheme, texts):
        np.testing.assert_array_equal(row, gm.Graph.from_text(t, unit="grapheme").features("wl", dim=32))
    assert not np.array_equal(by_grapheme, gm.featurize(texts, kind="wl", dim=32, unit="char"))
    # the fingerprint counts nodes: two clusters vs three code points
    assert gm.featurize(texts[:1], unit="grapheme")[0, 0] == np.float32(0.02)
    assert gm.featurize(texts[:1], unit="char")[0, 0] == np.float32(0.03)


def test_featurizer_object_is_callable():
    f = gm.GraphFeaturizer("wl", dim=20, iterations=1)
    np.testing.assert_array_equal(f(["ab", "ba"]), gm.featurize(["ab", "ba"], kind="wl", dim=20, iterations=1))
    assert gm.GraphFeaturizer.parse({"kind": "wl", "dim": 20, "iterations": 1}) == f
    assert gm.GraphFeaturizer.parse("wl") == gm.GraphFeaturizer("wl")


@pytest.mark.parametrize(
    "call, exc, words",
    [
        (lambda: gm.featurize(["a"], kind="wl", dim=-1), ValueError, ["dim", "got -1"]),
        (lambda: gm.featurize(["a"], kind="wl", dim=0), ValueError, ["dim", "got 0"]),
        (lambda: gm.featurize(["a"], kind="wl", iterations=-2), ValueError, ["iterations", "got -2"]),
        (lambda: gm.featurize(["a"], kind="wl", dim=10**15), ValueError, ["dim"]),
        (lambda: gm.featurize(["a"], kind="wl", dim=2.5), TypeError, ["dim", "float"]),
        (lambda: gm.featurize(["a"], kind="wl", dim=True), TypeError, ["dim", "bool"]),
        (lambda: gm.featurize(["a"], kind="bag"), ValueError, ["kind", "'bag'"]),
        (lambda: gm.featurize(["a"], dim=32), ValueError, ["dim", "18", "32"]),
        (lambda: gm.featurize(["a"], iterations=2), ValueError, ["iterations", "wl"]),
        (lambda: gm.featurize(["a"], unit="word"), ValueError, ["unit", "'word'"]),
        (lambda: gm.featurize("abc"), TypeError, ["items", "single str"]),
        (lambda: gm.featurize(["a", 3]), TypeError, ["items[1]", "str or Graph", "int"]),
        (lambda: gm.featurize(5), TypeError, ["items"]),
        # A lone surrogate cannot be UTF-8: an error naming the item, never a silently replaced text.
        (lambda: gm.featurize(["ok", "a\ud800"]), ValueError, ["items[1]", "UTF-8"]),
        (lambda: gm.Graph.from_text("a").features("wl", dim=-3), ValueError, ["dim"]),
        (lambda: gm.GraphFeaturizer.parse({"kind": "wl", "size": 3}), ValueError, ["unknown keys", "size"]),
        (lambda: gm.GraphFeaturizer.parse(3), TypeError, ["featurizer", "int"]),
    ],
)
def test_bad_featurizer_settings(call, exc, words):
    with pytest.raises(exc) as info:
        call()
    for w in words:
        assert w in str(info.value), f"{w!r} not in {info.value}"


def test_featurizer_setting_errors_are_typed():
    for call, arg in [
        (lambda: gm.GraphFeaturizer("bag"), "kind"),
        (lambda: gm.featurize(["a"], unit="word"), "unit"),
        (lambda: gm.featurize(["a"], kind="wl", iterations=2**70), "iterations"),
        (lambda: gm.GraphFeaturizer.parse({"kind": "wl", "size": 3}), "featurizer"),
        (lambda: gm.featurize(["ok", "a\ud800"]), "items[1]"),
    ]:
        with pytest.raises(gm.InvalidValueError) as info:
            call()
        assert info.value.arg == arg, info.value


@pytest.mark.parametrize("what", ["text", "graph"])
def test_wl_working_memory_that_cannot_be_had_is_too_large_not_an_abort(what):
    """WL's colours and neighbour lists were allocated infallibly: a text or
    graph whose features need more memory than the process may have killed
    the interpreter (Rust's allocation-failure abort). Run with an address-
    space limit that holds the input but not WL's working memory."""
    code = f"""
        import resource, numpy as np, grapheme_multimodal as gm
        text = "a" * 40_000_000 if {what!r} == "text" else None  # WL: 2 x 320 MB of colours
        graph = gm.Graph.from_sequence(np.zeros(10_000_000, np.float32)) if {what!r} == "graph" else None  # 480 MB of lists
        used = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmSize:"))
        resource.setrlimit(resource.RLIMIT_AS, (used + 200_000_000, used + 200_000_000))
        try:
            gm.featurize([text] if text is not None else [graph], kind="wl", dim=8)
        except gm.TooLargeError as e:
            print("TooLargeError", e.arg)
        """
    import textwrap

    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"the interpreter died ({proc.returncode}): {proc.stderr[-1500:]}"
    assert proc.stdout.split() == ["TooLargeError", "items[0]"], proc.stdout
