"""The 18 graph features (SPEC §1) of a text graph, the way a Python user
would compute them with networkx: build a `DiGraph` with one node per
character (activation 1.0, the character as its label) and the chain edges,
then count. The baseline of the featurising benchmark; also networkx's
Weisfeiler–Leman hashes as the baseline of the content-aware features."""

from __future__ import annotations

import math
import warnings
from hashlib import blake2b
from typing import List, Sequence

import networkx as nx
import numpy as np

FEATURE_DIM = 18


def text_digraph(text: str) -> nx.DiGraph:
    """One node per character, ``activation=1.0``, ``label=char``; edges ``i -> i+1``."""
    g = nx.DiGraph()
    g.add_nodes_from((i, {"activation": 1.0, "label": ch}) for i, ch in enumerate(text))
    g.add_edges_from((i, i + 1) for i in range(len(text) - 1))
    return g


def fingerprint(g: nx.DiGraph) -> List[float]:
    """The 18 features of `g` (node attribute ``activation``)."""
    counts = [0] * FEATURE_DIM
    for _, activation in g.nodes(data="activation"):
        counts[2 + math.floor(min(max(activation * 7.0, 0.0), 7.0))] += 1
    for _, degree in g.out_degree():
        counts[10 + min(degree, 7)] += 1
    f = [c / 10.0 for c in counts]
    f[0] = g.number_of_nodes() / 100.0
    f[1] = g.number_of_edges() / 100.0
    return f


def featurise_texts(texts: Sequence[str]) -> np.ndarray:
    """``[N, 18]`` float32 features of the text graphs of `texts`."""
    return np.array([fingerprint(text_digraph(t)) for t in texts], dtype=np.float32).reshape(-1, FEATURE_DIM)


def wl_features(texts: Sequence[str], dim: int = 256, iterations: int = 3) -> np.ndarray:
    """Hashed Weisfeiler–Leman subtree features with networkx, the way a
    Python user would get content-aware features: networkx's WL subtree
    hashes of each node at depths 0..iterations (node label = character),
    counted into `dim` buckets per depth, each depth L2-normalised, summed,
    L2-normalised. The same work as our `featurize(kind="wl")` but not the
    same numbers (networkx hashes differently and follows out-edges only)."""
    out = np.zeros((len(texts), dim), dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "hashes for directed graphs changed in v3.5"
        for i, text in enumerate(texts):
            if not text:
                continue
            g = text_digraph(text)
            # Depth 0 (the node's own label) hashed as networkx >= 3.3 does with
            # include_initial_labels=True, which older networkx (3.2 is the last
            # for Python 3.9) lacks; depths 1..iterations from networkx.
            deeper = nx.weisfeiler_lehman_subgraph_hashes(g, node_attr="label", iterations=iterations)
            hashes = {
                node: [blake2b(str(g.nodes[node]["label"]).encode("ascii"), digest_size=16).hexdigest(), *deeper[node]]
                for node in deeper
            }
            total = np.zeros(dim)
            for depth in range(iterations + 1):
                hist = np.zeros(dim)
                for per_depth in hashes.values():
                    hist[int(per_depth[depth], 16) % dim] += 1.0
                total += hist / np.linalg.norm(hist)
            out[i] = total / np.linalg.norm(total)
    return out
