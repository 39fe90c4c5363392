"""Directed graphs whose nodes carry an activation and a label; built and
featurised in Rust."""

from __future__ import annotations

from typing import Iterable, Optional, Sequence, Union

import numpy as np

from . import _core

EdgeList = Union[np.ndarray, Sequence[Sequence[int]]]


class Graph:
    """A directed graph; every node has an ``activation`` (float) and a ``label`` (str).

    Build one with :meth:`from_text` or :meth:`from_edges`. Graphs are
    immutable and picklable.
    """

    __slots__ = ("_g",)

    def __init__(self, _inner: "_core.Graph") -> None:
        if not isinstance(_inner, _core.Graph):
            raise TypeError("Graph is built with Graph.from_text(...) or Graph.from_edges(...)")
        self._g = _inner

    @classmethod
    def from_text(cls, text: str) -> "Graph":
        """One node per Unicode character (whitespace included), activation 1.0,
        labelled with the character, chained ``i -> i+1``. Empty text gives an
        empty graph."""
        if not isinstance(text, str):
            raise TypeError(f"text: expected str, got {type(text).__name__}")
        return cls(_core.Graph.from_text(text))

    @classmethod
    def from_edges(
        cls,
        num_nodes: int,
        edges: EdgeList,
        activations: Optional[Iterable[float]] = None,
        labels: Optional[Sequence[str]] = None,
    ) -> "Graph":
        """A graph of ``num_nodes`` nodes and the directed ``edges`` (an ``(m, 2)``
        integer array or a list of ``(source, target)`` pairs).

        ``activations`` (one finite float per node) default to 1.0, ``labels``
        to empty strings.
        """
        if isinstance(num_nodes, bool) or not isinstance(num_nodes, (int, np.integer)):
            raise TypeError(f"num_nodes: expected an int, got {type(num_nodes).__name__}")
        if num_nodes < 0:
            raise ValueError(f"num_nodes: expected a non-negative int, got {num_nodes}")
        edge_array = _edge_array(edges)
        acts = None
        if activations is not None:
            a = np.asarray(activations)
            if not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_) or np.iscomplexobj(a):
                raise TypeError(f"activations: expected real numbers, got dtype {a.dtype}")
            if a.ndim != 1:
                raise ValueError(f"activations: expected shape ({num_nodes},), got {a.shape}")
            acts = a.astype(np.float32).tolist()
        if labels is not None:
            if isinstance(labels, str) or not all(isinstance(s, str) for s in labels):
                raise TypeError("labels: expected a sequence of str, one per node")
            labels = list(labels)
        return cls(_core.Graph.from_edges(int(num_nodes), edge_array, acts, labels))

    @property
    def node_count(self) -> int:
        """Number of nodes."""
        return self._g.node_count

    @property
    def edge_count(self) -> int:
        """Number of edges."""
        return self._g.edge_count

    @property
    def activations(self) -> np.ndarray:
        """Node activations, ``[n]`` float32 (a copy)."""
        return self._g.activations()

    @property
    def labels(self) -> list:
        """Node labels, one str per node."""
        return self._g.labels()

    @property
    def edges(self) -> np.ndarray:
        """Edges as an ``(m, 2)`` int64 array of ``(source, target)``."""
        return self._g.edges()

    def to_text(self) -> str:
        """The node labels in order, joined: for a text graph, its text."""
        return self._g.to_text()

    def features(self) -> np.ndarray:
        """The 18 graph features of the SPEC (sizes, activation and out-degree
        histograms), float32 ``[18]``."""
        return self._g.fingerprint()

    def __len__(self) -> int:
        return self.node_count

    def __repr__(self) -> str:
        return f"Graph(node_count={self.node_count}, edge_count={self.edge_count})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Graph):
            return NotImplemented
        return (
            self.labels == other.labels
            and np.array_equal(self.activations, other.activations)
            and np.array_equal(self.edges, other.edges)
        )

    __hash__ = None  # type: ignore[assignment]  # equality is by value; graphs are not dict keys

    def __reduce__(self):
        return (_rebuild, (self.node_count, self.edges, self.activations.tolist(), self.labels))


def _rebuild(num_nodes: int, edges: np.ndarray, activations: list, labels: list) -> Graph:
    return Graph(_core.Graph.from_edges(num_nodes, edges, activations, labels))


def _edge_array(edges: EdgeList) -> np.ndarray:
    arr = np.asarray(edges)
    if arr.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"edges: expected integer node indices, got dtype {arr.dtype}")
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"edges: expected shape (m, 2) of (source, target) pairs, got {arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.int64)


def fingerprints(graphs: Sequence[Graph]) -> np.ndarray:
    """The 18 features of every graph, ``[N, 18]`` float32, computed in Rust
    with the GIL released."""
    inner = []
    for i, g in enumerate(graphs):
        if not isinstance(g, Graph):
            raise TypeError(f"graphs[{i}]: expected Graph, got {type(g).__name__}")
        inner.append(g._g)
    return _core.fingerprints(inner)
