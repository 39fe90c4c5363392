"""Directed graphs whose nodes carry an activation and a label; built and
featurised in Rust.

Two featurisers turn a graph into a vector: ``"fingerprint"``, the
original's 18 numbers (sizes and histograms, blind to what the nodes hold),
and ``"wl"``, hashed Weisfeiler–Leman subtree features over node labels,
activation buckets and edges (content-aware, e.g. "cat" ≠ "dog").
"""

from __future__ import annotations

__all__ = [
    "Graph",
    "GraphFeaturizer",
    "featurize",
    "fingerprints",
    "FINGERPRINT_DIM",
    "WL_DEFAULT_DIM",
    "WL_DEFAULT_ITERATIONS",
    "TEXT_UNITS",
    "FEATURE_KINDS",
]

import math
import numbers
import operator
import re
from collections.abc import Hashable, Iterator, Mapping, Sequence, Set, ValuesView  # not typing's: isinstance of those is 3x slower
from dataclasses import dataclass
from itertools import compress, repeat
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, List, NoReturn, Optional, Tuple, Union

import numpy as np

from . import _core
from ._portable import portable, restored
from ._validation import (
    FLOAT32_MAX, IntLike, as_real_array, describe, float32_of_wide, exact_int, is_int, is_iterable, is_masked_array, is_networkx_graph,
    is_real_number, is_utf8, refuse_beyond_budget, renamed, shown_number, unmasked, wrong_type,
)
from .exceptions import GraphemeError, InvalidValueError, NonFiniteError, ShapeError, TooLargeError

EdgeList = Union[np.ndarray, Sequence[Sequence[int]]]
TextOrGraph = Union[str, "Graph"]
ValueRangeLike = Optional[Tuple[float, float]]

FINGERPRINT_DIM: int = _core.FINGERPRINT_DIM
WL_DEFAULT_DIM: int = _core.WL_DEFAULT_DIM
WL_DEFAULT_ITERATIONS: int = _core.WL_DEFAULT_ITERATIONS
TEXT_UNITS = ("char", "grapheme")
FEATURE_KINDS = ("fingerprint", "wl")
#: What :meth:`Graph.to_networkx` takes at least per node and per edge, in
#: Python objects (networkx's dicts; measured about 590 and 115-215 bytes on
#: CPython 3.11): a lower bound, so only graphs that cannot fit are refused.
_NETWORKX_NODE_BYTES = 500
_NETWORKX_EDGE_BYTES = 100



def _networkx(what: str) -> Any:
    """The networkx module; else a ModuleNotFoundError saying what needs it
    and how to install it (networkx is in none of the package's extras)."""
    try:
        import networkx
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(f"{what} needs networkx: pip install networkx", name="networkx") from err
    return networkx

class Graph:
    """A directed graph; every node has an ``activation`` (float) and a ``label`` (str).

    Build one with :meth:`from_text`, :meth:`from_image`,
    :meth:`from_sequence`, :meth:`from_edges` or :meth:`from_networkx`.
    Graphs are immutable and picklable.
    """

    __slots__ = ("_g",)

    def __init__(self, _inner: "Optional[_core.Graph]" = None) -> None:
        # a default, so that gm.Graph() gets this message, not Python's "missing 1 required positional argument:
        # '_inner'", a name the user never typed
        if not isinstance(_inner, _core.Graph):
            raise TypeError(
                "Graph is built with Graph.from_text/from_image/from_sequence/from_edges/from_networkx(...) "
                "(an empty graph: Graph.from_text(''))"
            )
        self._g = _inner

    @classmethod
    def from_text(cls, text: str, unit: str = "char") -> "Graph":
        """One node per text unit (whitespace included), activation 1.0,
        labelled with the unit's text, chained ``i -> i+1``. Empty text gives an
        empty graph.

        ``unit="char"`` (the original) makes a node per Unicode code point;
        ``unit="grapheme"`` one per extended grapheme cluster (what a reader
        sees as one character: "e" + a combining accent, a ZWJ emoji family,
        CRLF). ``to_text()`` gives ``text`` back either way.
        """
        if not isinstance(text, str):
            raise TypeError(f"text: expected str, got {type(text).__name__}")
        unit = _unit(unit)
        try:
            return cls(_core.Graph.from_text(text, unit))
        except UnicodeEncodeError as exc:  # a lone surrogate: numpy-free, but still a user's text
            raise InvalidValueError(f"text: {exc}; expected text that UTF-8 can encode", "text") from None

    @classmethod
    def from_image(cls, image: Any, value_range: ValueRangeLike = None) -> "Graph":
        """A pixel-grid graph of a 2-D (grayscale) ``image [H, W]``: node
        ``r * W + c`` per pixel, an edge each way between 4-neighbours, empty
        labels, activation = intensity scaled to [0, 1].

        Scaling maps ``value_range=(low, high)`` onto [0, 1] (values outside
        are clamped). Without it, ``bool`` and unsigned-integer images use
        their dtype's full range (``uint8``: 0..255) and other images their
        own min..max; a constant image then maps to 0 everywhere.
        """
        arr = as_real_array(image, "image")
        if arr.ndim != 2:
            raise ShapeError(
                f"image: expected a 2-D array [H, W] (one grayscale channel), got shape {arr.shape}" + _image_hint(arr.shape),
                "image",
            )
        rng, shift = _value_range(value_range, arr.dtype)
        # before the float32 copy: of a huge image it alone took minutes, or failed as numpy's unnamed MemoryError
        _core.Graph.check_image_size(*arr.shape)
        arr = _shifted_to_zero(arr) if rng is None else _minus(arr, shift, rng[1])
        return cls(_from_float32(arr, "image", lambda a: _core.Graph.from_image(a, rng)))

    @classmethod
    def from_sequence(cls, values: Any, value_range: ValueRangeLike = None) -> "Graph":
        """A chain ``i -> i+1`` whose activations are ``values [n]`` scaled to
        [0, 1] (audio frames, joint angles, any 1-D signal), with empty labels.

        Scaling is as in :meth:`from_image`: ``value_range`` if given, else
        the dtype's range for ``bool``/unsigned ints, else the values' own
        min..max (constant values map to 0).
        """
        arr = as_real_array(values, "values")
        if arr.ndim != 1:
            raise ShapeError(f"values: expected a 1-D array [n], got shape {arr.shape}", "values")
        rng, shift = _value_range(value_range, arr.dtype)
        _core.Graph.check_sequence_size(len(arr))  # before the float32 copy, as in from_image
        arr = _shifted_to_zero(arr) if rng is None else _minus(arr, shift, rng[1])
        return cls(_from_float32(arr, "values", lambda a: _core.Graph.from_sequence(a, rng)))

    @classmethod
    def from_edges(
        cls,
        num_nodes: IntLike,
        edges: EdgeList,
        activations: Optional[Iterable[float]] = None,
        labels: Optional[Sequence[str]] = None,
    ) -> "Graph":
        """A graph of ``num_nodes`` nodes and the directed ``edges`` (an ``(m, 2)``
        integer array or a list of ``(source, target)`` pairs). A PyTorch
        Geometric ``edge_index``, of shape ``(2, m)``, is passed as
        ``edge_index.T``.

        ``activations`` (one finite float per node) default to 1.0, ``labels``
        to empty strings.
        """
        if not is_int(num_nodes):  # a number of the wrong type, as every int argument of the package refuses one
            raise wrong_type("num_nodes", "an int", num_nodes)
        num_nodes = exact_int(num_nodes)  # a 0-d array too: the int it holds
        if num_nodes < 0:
            raise InvalidValueError(f"num_nodes: expected a non-negative int, got {shown_number(num_nodes, str)}", "num_nodes")
        if num_nodes >= 2**63:  # no memory holds it; smaller counts are checked against memory below
            raise TooLargeError(f"num_nodes: got {shown_number(num_nodes, str)}; a graph that large cannot fit in memory",
                                "num_nodes")
        # before any copy (the edges', the activations' float32 one): of broadcast arrays they failed as numpy's unnamed MemoryError
        _core.Graph.check_edges_size(int(num_nodes), 0)
        edge_array = _edge_array(edges, int(num_nodes))
        a = None
        if activations is not None:
            if isinstance(activations, (str, bytes, Set, Mapping)):
                # as labels: a set's or a mapping's order is not the nodes' order (numpy read them as one object)
                raise TypeError(f"activations: expected a sequence of numbers, one per node, got {describe(activations)}")
            if isinstance(activations, (Iterator, ValuesView)):  # a generator, a dict's values: numpy would make them one object
                activations = list(activations)
            a = as_real_array(activations, "activations")
            if a.ndim != 1:
                raise ShapeError(f"activations: expected shape ({num_nodes},), got {a.shape}", "activations")
        if labels is not None:
            # a set's or a mapping's order is not the nodes' order: each label would land on some node
            if isinstance(labels, (str, bytes, Set, Mapping)) or not is_iterable(labels):
                raise TypeError(f"labels: expected a sequence of str, one per node, got {describe(labels)}")
            labels = list(labels)  # once: a generator checked first would then be empty
            bad = next((i for i, s in enumerate(labels) if not isinstance(s, str)), None)
            if bad is not None:
                raise TypeError(f"labels[{bad}]: expected a str (a sequence of str, one per node), got {describe(labels[bad])}")

        def build(acts: Optional[np.ndarray]) -> "_core.Graph":
            return _core.Graph.from_edges(int(num_nodes), edge_array, acts, labels)

        try:
            # not scaled: a tiny activation was refused as if the core were to scale it (from_networkx named
            # "activations", an argument its caller never passed; numpy < 1.24 refused a graph's own float32 ones)
            return cls(build(None) if a is None else _from_float32(a, "activations", build, scaled=False))
        except UnicodeEncodeError:
            bad = next(i for i, s in enumerate(labels) if not is_utf8(s))
            raise InvalidValueError(
                f"labels[{bad}]: {labels[bad]!r} holds a lone surrogate; expected text that UTF-8 can encode", f"labels[{bad}]"
            ) from None

    @classmethod
    def from_networkx(cls, g: Any, activation: str = "activation", label: str = "label") -> "Graph":
        """A graph from a networkx graph, nodes in ``g.nodes`` order.

        Each node's ``activation`` attribute (default 1.0; a finite real, or a
        bool: ``True`` is 1.0, as in :meth:`from_edges`) and
        ``label`` attribute (default ``""``; a str) are read under the given
        attribute names. Undirected edges become one edge each way (a
        self-loop, one edge); parallel edges of multigraphs are kept.
        Requires networkx.
        """
        nx = _networkx("Graph.from_networkx")
        if not isinstance(g, nx.Graph):
            raise TypeError(f"g: expected a networkx graph, got {type(g).__name__}")
        _check_attribute_names(activation, label)
        index = {node: i for i, node in enumerate(g.nodes)}
        acts, labels = [], []
        for node, data in g.nodes(data=True):
            a = data.get(activation, 1.0)
            if isinstance(a, (bool, np.bool_)):
                # a bool is a number here, as in from_edges' activations and any array of data: True is 1.0
                a = float(a)
            if not is_real_number(a):
                # "expected a real number" of a Fraction, which is one: what is taken is what numpy reads as a number
                raise TypeError(f"g: node {node!r} has {activation}={a!r}; expected a real number as an int or a float "
                                "(Python's or numpy's; convert others with float())")
            try:
                as_float: Optional[float] = float(a)
            except OverflowError:  # an int beyond float64: Python's "int too large to convert to float"
                as_float = None
            # Checked here, not by from_edges: its errors named "activations" and "labels[i]",
            # arguments the caller never passed, and the node's place in g.nodes, not the node.
            if not (isinstance(a, int) or np.isfinite(a)):  # a Python int is finite (np.isfinite refuses one past int64)
                raise NonFiniteError(f"g: node {node!r} has {activation}={a!s}; expected finite numbers", "g")
            with np.errstate(over="ignore"):
                if as_float is None or np.isinf(np.float32(as_float)):  # a long double beyond float64 became inf too
                    raise NonFiniteError(
                        f"g: node {node!r} has {activation}={a!s}, too large for float32 (largest {FLOAT32_MAX:.3g}); "
                        "expected finite float32 numbers", "g")
            lab = data.get(label, "")
            if not isinstance(lab, str):
                raise TypeError(f"g: node {node!r} has {label}={lab!r}; expected a str")
            if not is_utf8(lab):
                raise InvalidValueError(
                    f"g: node {node!r} has {label}={lab!r}, which holds a lone surrogate; expected text that UTF-8 can encode", "g"
                )
            acts.append(as_float)
            labels.append(lab)
        edges = []
        both_ways = not g.is_directed()
        for u, v in g.edges():
            s, t = index[u], index[v]
            edges.append((s, t))
            # by index, not by node: a NaN node's self-loop is unequal to itself (u != v), and became two edges
            if both_ways and s != t:
                edges.append((t, s))
        return cls.from_edges(len(index), np.array(edges, dtype=np.int64).reshape(-1, 2), acts, labels)

    def to_networkx(self, activation: str = "activation", label: str = "label") -> Any:
        """A networkx ``DiGraph`` (a ``MultiDiGraph`` when edges repeat) with
        nodes ``0..n-1`` carrying ``activation`` and ``label`` attributes.
        Requires networkx; refused (``TooLargeError``) before anything is
        built when its Python objects would not fit in memory."""
        nx = _networkx("Graph.to_networkx")
        _check_attribute_names(activation, label)
        nodes, edge_count = self.node_count, self.edge_count
        # else a graph of 100M nodes (Graph.from_sequence) built dicts until the OOM killer came
        refuse_beyond_budget(
            _NETWORKX_NODE_BYTES * nodes + _NETWORKX_EDGE_BYTES * edge_count, "graph",
            "to_networkx of its {nodes:,} nodes and {edges:,} edges takes at least {bytes} bytes of Python objects",
            remedy="a smaller graph", nodes=nodes, edges=edge_count,
        )
        edges = self.edges
        repeated = len({(int(s), int(t)) for s, t in edges}) < len(edges)
        out = nx.MultiDiGraph() if repeated else nx.DiGraph()
        out.add_nodes_from(
            (i, {activation: float(a), label: lab}) for i, (a, lab) in enumerate(zip(self.activations, self.labels))
        )
        out.add_edges_from((int(s), int(t)) for s, t in edges)
        return out

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
    def labels(self) -> List[str]:
        """Node labels, one str per node."""
        return self._g.labels()

    @property
    def edges(self) -> np.ndarray:
        """Edges as an ``(m, 2)`` int64 array of ``(source, target)``."""
        return self._g.edges()

    def to_text(self) -> str:
        """The node labels in order, joined: for a text graph, its text."""
        return self._g.to_text()

    def features(
        self, kind: str = "fingerprint", dim: Optional[IntLike] = None, iterations: Optional[IntLike] = None
    ) -> np.ndarray:
        """This graph's feature vector, float32 ``[dim]``.

        ``kind="fingerprint"``: the 18 features of the SPEC (sizes, activation
        and out-degree histograms). ``kind="wl"``: hashed Weisfeiler–Leman
        subtree features, ``dim`` buckets (default 256), ``iterations``
        refinement rounds (default 3); see :class:`GraphFeaturizer`.
        """
        f = GraphFeaturizer(kind, dim, iterations)
        return self._g.features(f.kind, f.dim, f.iterations)

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
            and np.array_equal(_sorted_edges(self.edges), _sorted_edges(other.edges))
        )

    __hash__ = None  # type: ignore[assignment]  # equality is by value; graphs are not dict keys

    def __reduce__(self):
        # arrays as bytes, dtype and shape: a pickle of numpy 2 loads under numpy 1, and back (_portable.py)
        # read-only over the pickled bytes: the core copies them as the graph is rebuilt (no copy of its own first)
        return (_rebuild, (self.node_count, portable(self.edges, writable=False), portable(self.activations, writable=False),
                           self.labels))


def _rebuild(num_nodes: int, edges: np.ndarray, activations: Any, labels: list) -> Graph:
    # activations: a float32 array (a list in pickles from earlier versions); wrapped still from copy.copy
    return Graph(_core.Graph.from_edges(num_nodes, restored(edges), restored(activations), labels))


def _check_attribute_names(activation: Any, label: Any) -> None:
    """Node attribute names are dict keys: an unhashable one said "unhashable type: 'list'", naming nothing."""
    for arg, name in (("activation", activation), ("label", label)):
        if not isinstance(name, Hashable):
            raise TypeError(f"{arg}: expected a node attribute name (a str or other hashable key), got {type(name).__name__}")
    # one attribute cannot hold both: to_networkx wrote the labels over the activations (by identity too: one NaN
    # object for both is unequal to itself, yet one dict key)
    if activation is label or activation == label:
        raise InvalidValueError(f"label: names the attribute {label!r}, as activation does; expected two names", "label")


def _image_hint(shape: Tuple[int, ...]) -> str:
    """What to do with an image of ``shape`` that is not 2-D: a grayscale
    image with a channel axis of one was told to convert colour to grayscale."""
    if len(shape) != 3:
        return ""
    if shape[-1] == 1:
        return "; drop its channel axis first: image[..., 0]"
    if shape[0] == 1:
        return "; drop its channel axis first: image[0]"
    return "; convert colour images to grayscale first"


def _sorted_edges(edges: np.ndarray) -> np.ndarray:
    """Edges in (source, target) order: the edge list is a multiset, its order carries no meaning."""
    return edges[np.lexsort((edges[:, 1], edges[:, 0]))] if len(edges) else edges


def _unit(unit: Any) -> str:
    if type(unit) is str and unit in TEXT_UNITS:  # the default's path: a plain str, already one of them
        return unit
    if not isinstance(unit, str):  # `in` compared an array element-wise: numpy's "truth value ... is ambiguous"
        raise TypeError(f"unit: expected one of {TEXT_UNITS} (a str), got {type(unit).__name__}")
    unit = str(unit)  # np.str_ too: the core and the messages take plain str
    if unit not in TEXT_UNITS:
        raise InvalidValueError(f"unit: expected one of {TEXT_UNITS}, got {unit!r}", "unit")
    return unit


def _from_float32(arr: np.ndarray, name: str, build: Any, scaled: bool = True) -> "_core.Graph":
    """``build(arr as float32)``. A value too large for float32 (it would
    become inf in the cast) is refused naming the value the user gave, by
    the cast shared with the model's inputs (:func:`float32_of_wide`); so
    are values the core is to scale to [0, 1] (``scaled``: an image's, a
    sequence's) whose every one is below float32's normal range (the cast
    would make them constant, all 0). Activations taken as they are
    (``scaled=False``) are only rounded: every featuriser reads them in
    buckets of width 1/7, where 1e-50 and 0 are alike."""
    if arr.dtype.kind == "f" and arr.dtype.itemsize > 4:
        # one scale for the whole image or sequence: a dark column of pixels is not lost data
        a32 = float32_of_wide(
            arr, name, place_of=lambda at: f"pixel {at}" if arr.ndim == 2 else f"index {at[0]}", per_column=False if scaled else None
        )
    else:
        a32 = np.ascontiguousarray(arr, dtype=np.float32)
    return build(a32)


#: Values whose magnitude passes their spread by more than this are shifted to start at 0 before the
#: float32 cast: float32's resolution there (magnitude × 2**-24) would cost them more than ~1e-4 of [0, 1].
_SHIFT_ABOVE_MAGNITUDE_PER_SPREAD = 2**10


def _shifted_to_zero(arr: np.ndarray) -> np.ndarray:
    """``arr - arr.min()`` where the float32 copy the core scales would lose
    the values' spread (e.g. millisecond timestamps near 1.7e12, 1000 apart,
    all became activation 0); else ``arr`` itself. Min-max scaling ignores
    the shift; where float32 resolves the values, nothing changes (so their
    activations stay bit for bit what they were)."""
    if arr.size == 0 or arr.dtype.kind not in "fi" or arr.dtype.itemsize <= {"f": 4, "i": 2}[arr.dtype.kind]:
        return arr  # float32 or smaller, int16 or smaller: already exact in float32
    low, high = arr.min(), arr.max()
    magnitude = max(abs(float(low)), abs(float(high)))
    if not np.isfinite(magnitude):
        return arr  # NaN or inf: refused as given, naming the value the user gave (as one too large for float32)
    if arr.dtype.kind == "i":
        spread = int(high) - int(low)
    else:  # in the values' own precision: a long double's spread below float64's spacing was 0 as two floats
        with np.errstate(over="ignore"):  # beyond float64: inf, never shifted (refused as too large for float32)
            spread = float(high - low)
    if not _unresolved_in_float32(magnitude, spread):
        return arr
    # Exact: an int's spread fits its dtype here, and floats within a factor 2 of each other subtract exactly.
    return arr - low


def _unresolved_in_float32(magnitude: float, spread: float) -> bool:
    """Whether values ``spread`` apart at about ``magnitude`` lose their
    levels in float32 (and are to be shifted to start at 0); never for
    values too large for float32, which are refused as given."""
    return magnitude <= FLOAT32_MAX and 0 < spread * _SHIFT_ABOVE_MAGNITUDE_PER_SPREAD < magnitude


def _minus(arr: np.ndarray, shift: Union[int, float], span: float) -> np.ndarray:
    """``arr - shift`` (``arr`` itself for no shift), for a range ``span``
    wide from ``shift``: exact for integer values and a whole ``shift`` their
    dtype holds (nanosecond timestamps, where float64's spacing is 256,
    came out in quarters of a 1000 ns range), clamped to the range first
    (the core clamps them anyway; unclamped, the int subtraction could
    wrap); else in float64 at least."""
    if not shift:
        return arr
    if arr.dtype.kind in "iu" and float(shift).is_integer():  # a float bound's own value, subtracted exactly
        shift = int(shift)
    if isinstance(shift, int) and arr.dtype.kind in "iu":
        info = np.iinfo(arr.dtype)
        if info.min <= shift <= info.max:
            low, high = arr.dtype.type(shift), arr.dtype.type(min(shift + math.ceil(span), int(info.max)))
            return np.clip(arr, low, high) - low  # in [0, span]: no wrap
    return np.subtract(arr, float(shift), dtype=np.result_type(arr.dtype, np.float64))


def _value_range(value_range: Any, dtype: np.dtype) -> Tuple[Optional[Tuple[float, float]], Union[int, float]]:
    """The range mapped onto [0, 1] — the given one, else the dtype's for
    bool / unsigned ints, else None (the core uses the data's min..max) —
    and what to subtract from the values first: a given range float32 cannot
    resolve where it lies (1.7e12 to 1.7e12 + 3000) is moved to start at 0,
    and the values with it (else 0.0)."""
    if value_range is None:
        if dtype == np.bool_:
            return (0.0, 1.0), 0.0
        if np.issubdtype(dtype, np.unsignedinteger):
            return (0.0, float(np.iinfo(dtype).max)), 0.0
        return None, 0.0
    try:
        low, high = value_range
    except (TypeError, ValueError):
        raise TypeError(f"value_range: expected a pair (low, high) of numbers, got {value_range!r}") from None
    if any(isinstance(v, (bool, np.bool_, np.timedelta64)) or not isinstance(v, numbers.Real) for v in (low, high)):
        # float() read "0" and "255" as numbers and True as 1.0, where every other number argument refuses them
        raise wrong_type("value_range", "a pair (low, high) of real numbers", value_range)
    exact = _integer_range_shift(low, high)
    if exact is not None:
        return exact
    try:
        low, high = float(low), float(high)
    except OverflowError:  # an int beyond float64
        raise InvalidValueError(f"value_range: expected finite (low, high), got ({shown_number(low)}, {shown_number(high)})",
                                "value_range") from None
    if not all(np.isfinite((low, high))):
        return (low, high), 0.0  # the core refuses them, as it does when called directly
    magnitude = max(abs(low), abs(high))
    shift = low if _unresolved_in_float32(magnitude, high - low) else 0.0
    # The core maps in float32: a bound beyond it would show as inf, a span below it as (low, low).
    # Exact: both bounds are of one sign and within a factor 2 when shifted.
    if magnitude > FLOAT32_MAX or not np.float32(low - shift) < np.float32(high - shift):
        raise InvalidValueError(
            f"value_range: expected finite (low, high) with low < high in float32 (largest {FLOAT32_MAX:.3g}), "
            f"got ({low!r}, {high!r})",
            "value_range",
        )
    return (low - shift, high - shift), shift


def _integer_range_shift(low: Any, high: Any) -> Optional[Tuple[Tuple[float, float], int]]:
    """For integer bounds that float32 cannot resolve where they lie, the
    range moved to start at 0 and the exact int to subtract (``_minus``);
    else None (the float path decides). In float64 first, bounds 100 apart
    near 1.7e18 (nanosecond timestamps) became equal and were refused, and
    1000 apart kept only a quarter's resolution."""
    if not (isinstance(low, numbers.Integral) and isinstance(high, numbers.Integral)):
        return None
    low, high = int(low), int(high)
    magnitude = max(abs(low), abs(high))
    if not low < high or magnitude > int(FLOAT32_MAX) or not _unresolved_in_float32(float(magnitude), float(high - low)):
        return None
    return (0.0, float(high - low)), low


def _optional_int(value: Any, name: str) -> Optional[int]:
    if value is None:
        return None
    if not is_int(value):  # a number of the wrong type (2.5, True, "3"): no .arg, and `except ValueError` missed it
        raise wrong_type(name, "an int or None", value)
    value = exact_int(value)  # a 0-d array too: the int it holds
    if not -(2**63) <= value < 2**63:
        raise InvalidValueError(f"{name}: got {shown_number(value, str)}, far outside the accepted range", name)
    return value


def _edge_array(edges: EdgeList, num_nodes: int) -> np.ndarray:
    if isinstance(edges, Iterator):  # a generator: numpy would make it one object ("got dtype object")
        edges = list(edges)
    if is_masked_array(edges):  # np.asarray would make the indices under the mask edges
        edges = unmasked(edges, "edges", "integer node indices", "leave the masked edges out")
    try:
        arr = np.asarray(edges)
    except (ValueError, TypeError) as exc:  # ragged pairs
        raise ShapeError(f"edges: could not be read as an (m, 2) array of (source, target) pairs ({exc})", "edges") from None
    if arr.dtype == object and arr.ndim == 1 and arr.size and isinstance(arr[0], (list, tuple, np.ndarray)):
        # numpy < 1.24 reads ragged pairs as a 1-D array of objects (with a warning) instead of refusing them
        raise ShapeError("edges: could not be read as an (m, 2) array of (source, target) pairs (pairs of different lengths)", "edges")
    if arr.ndim == 0 or is_networkx_graph(edges):  # None, a str, one number: numpy's dtype ("object", "<U2") named nothing the user wrote
        raise TypeError(f"edges: expected an (m, 2) integer array or a sequence of (source, target) pairs, got {describe(edges)}")
    if arr.size == 0:
        if arr.ndim == 1 or arr.shape[1:] == (2,):  # [] or (0, 2): no edges (np.empty((0, 2)) is float)
            return np.zeros((0, 2), dtype=np.int64)
        # refused as the same shape with elements would be: (0, 3) triples, (3, 0) edges with no ends
        _refuse_edge_shape(arr.shape)
    if arr.dtype.kind not in "iu":  # not issubdtype(integer): numpy counts timedelta64 among them
        if arr.ndim == 2 and arr.shape[1] == 2 and (arr.dtype == object or (arr.dtype.kind == "f" and not isinstance(edges, np.ndarray))):
            # Python ints past int64 make numpy choose float64 or object: name the index, not the dtype. An object
            # array of ints is read as the same ints in a list are (it was refused as "got dtype object")
            rows = arr if arr.dtype == object else np.asarray(edges, dtype=object)
            if all(is_int(v) for v in rows.flat):
                return _in_range_edges(rows, num_nodes)
        remedy = ("; an object array (or a list) is read when every entry is an int, Python's or numpy's: convert "
                  "the others, e.g. whole floats with edges.astype(np.int64)") if arr.dtype == object else ""
        raise TypeError(f"edges: expected integer node indices, got dtype {arr.dtype}{remedy}")
    if arr.ndim != 2 or arr.shape[1] != 2:
        _refuse_edge_shape(arr.shape)
    if arr.dtype.kind == "u" and arr.dtype.itemsize == 8 and int(arr.max()) >= 2**63:
        _refuse_edge(arr, num_nodes)  # int64 would wrap it round to a negative index
    # before the int64 copy: of a broadcast view it alone failed as numpy's unnamed MemoryError
    _core.Graph.check_edges_size(num_nodes, len(arr))
    return np.ascontiguousarray(arr, dtype=np.int64)


def _in_range_edges(rows: np.ndarray, num_nodes: int) -> np.ndarray:
    """The ``(m, 2)`` object array of ints ``rows`` as int64 node indices, or
    the core's error for the first edge out of range (checked on the ints
    as given: a value past int64 cannot wrap round into range)."""
    if any(not 0 <= exact_int(v) < num_nodes for v in rows.flat):
        _refuse_edge(rows, num_nodes)
    _core.Graph.check_edges_size(num_nodes, len(rows))
    return np.array([exact_int(v) for v in rows.flat], dtype=np.int64).reshape(rows.shape)


def _refuse_edge_shape(shape: Tuple[int, ...]) -> NoReturn:
    """The error of edges of ``shape``, not ``(m, 2)``; of ``(2, m)``, what
    PyTorch Geometric's ``edge_index`` is, with how to pass one (a ``(2, 2)``
    is read as two pairs: it cannot be told from one)."""
    hint = ("; an edge index of shape (2, m), as PyTorch Geometric keeps it, is passed as edges.T"
            if len(shape) == 2 and shape[0] == 2 else "")
    raise ShapeError(f"edges: expected shape (m, 2) of (source, target) pairs, got {shape}{hint}", "edges")


def _refuse_edge(rows: np.ndarray, num_nodes: int) -> None:
    """The core's error for the first ``(m, 2)`` row with a node index out of
    range (``rows`` unsigned, or Python ints; some row is out of range)."""
    if rows.dtype == object:
        k = next(k for k, (s, t) in enumerate(rows) if not (0 <= s < num_nodes and 0 <= t < num_nodes))
    else:
        k = int(np.flatnonzero((rows >= num_nodes).any(axis=1))[0])
    s, t = (int(v) for v in rows[k])
    # the core's words (rust/core/src/graph.rs, node_index_range): "in 0..3" read as if 3 were an index
    allowed = ("the graph has no nodes (num_nodes=0), so no edges" if num_nodes == 0
               else f"node indices must be 0 to {num_nodes - 1} (num_nodes={num_nodes})")
    raise InvalidValueError(f"edges: edge {k} is ({shown_number(s, str)}, {shown_number(t, str)}) but {allowed}", "edges")


def is_graph_list(value: Any) -> bool:
    """Whether ``value`` is one modality's input given as graphs, as the
    model takes them (a non-empty list or tuple whose items are
    :class:`Graph`, which it featurises, or ``None``: a row absent from the
    modality), rather than an array of features. A list of ``None`` only is
    one too: no row holds the modality."""
    if not isinstance(value, (list, tuple)) or not value:
        return False
    # by the items' types, few in a list of thousands: a generator testing every item made
    # prepare_inputs on 2,000 graphs half as slow again
    return all(kind is _NONE_TYPE or issubclass(kind, Graph) for kind in set(map(type, value)))


_NONE_TYPE = type(None)


def absent_graph_rows(graphs: Sequence[Optional[Graph]]) -> List[int]:
    """The rows of a graph list (:func:`is_graph_list`) that hold ``None``:
    absent from the modality, as ``False`` in ``mask=`` says. (By identity:
    ``None in graphs`` would call :meth:`Graph.__eq__` on every graph.)"""
    return list(compress(range(len(graphs)), map(operator.is_, graphs, repeat(None))))


def refuse_none_graph(item: Any, name: str, call: str, expected: str = "Graph") -> None:
    """A TypeError naming ``name`` when ``item`` is ``None``, for a ``call``
    that needs a graph in every row: it has no absent rows, as the model's
    calls have with ``mask=``."""
    if item is None:
        raise TypeError(
            f"{name}: expected {expected}, got None; {call} takes one in every row (it has no absent rows): leave "
            "the row out, or pass the graphs to the model (encode, fit, ...), where None marks a row absent from "
            "the modality"
        )


def refuse_stray_graphs(value: Any, name: str) -> None:
    """Raises a TypeError naming the first item that is no :class:`Graph`
    when ``value`` (a modality's input that could not be read as numbers) is
    a list or tuple holding graphs among other things, or saying how graphs
    are given when it is one graph or a numpy array of graphs; returns
    otherwise. Called once the reading failed: numpy's
    "dtype object" named neither the stray item nor the graphs."""
    if isinstance(value, Graph):
        raise TypeError(f"{name}: got one Graph; expected a list of Graph (one per row), e.g. [graph]")
    if isinstance(value, np.ndarray) and value.dtype.kind == "U" and value.ndim == 1 or (
        isinstance(value, (list, tuple)) and value and all(isinstance(s, str) for s in value)
    ):  # one text per row: numpy's "dtype <U5" said nothing of how text goes in
        raise TypeError(
            f"{name}: got text ({len(value)} str); expected an array [B, d] of numbers, or one Graph per row, "
            "which the model featurises: [Graph.from_text(s) for s in texts]"
        )
    _refuse_frame_of_graphs(value, name)
    if not (isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.dtype == object)):
        return
    items = list(value.flat) if isinstance(value, np.ndarray) else value
    if not any(isinstance(g, Graph) for g in items):
        return
    if isinstance(value, np.ndarray):
        raise TypeError(f"{name}: a numpy array of Graph; expected a list of Graph (one per row), e.g. list(...)")
    # None is a row absent from the modality (is_graph_list): the stray item is the first other one
    k = next((k for k, g in enumerate(items) if g is not None and not isinstance(g, Graph)), None)
    if k is None:  # graphs only: the error was about them, not about a stray item
        return
    raise TypeError(
        f"{name}[{k}]: expected Graph or None (the list holds graphs, one per row; None for a row absent from "
        f"the modality), got {describe(items[k])}"
    )


def _refuse_frame_of_graphs(value: Any, name: str) -> None:
    """TypeError saying how graphs go in when ``value`` is a pandas Series,
    or a data frame of one column, holding graphs: the generic error told
    the user to featurise them, which the model does itself from a list.
    Duck-typed (``to_numpy``, ``ndim``, ``dtype``): pandas is optional."""
    if not hasattr(value, "to_numpy") or isinstance(value, np.ndarray):
        return
    series = getattr(value, "ndim", 0) == 1 and getattr(value, "dtype", None) == object
    one_column = hasattr(value, "columns") and tuple(getattr(value, "shape", ()))[1:] == (1,)
    if not (series or one_column):
        return
    try:
        items = list(np.asarray(value.to_numpy(), dtype=object).ravel())
    except Exception:  # whatever it is, its own reading error stands
        return
    if not any(isinstance(g, Graph) for g in items):
        return
    kind, source = ("pandas Series", "series") if series else ("data frame column", "frame[column]")
    raise TypeError(f"{name}: a {kind} of Graph; expected a list of Graph (one per row, None for a row absent from "
                    f"the modality), e.g. list({source})")


def fingerprints(graphs: Sequence[Graph]) -> np.ndarray:
    """The 18 features of every graph, ``[N, 18]`` float32, computed in Rust
    with the GIL released."""
    if isinstance(graphs, (str, bytes, Graph, Mapping, Set)) or not is_iterable(graphs):
        # a dict would give its keys, a set its items in no fixed order; None or a Graph: "not iterable", naming nothing
        raise TypeError(f"graphs: expected a sequence of Graph (one row each, in order), got {type(graphs).__name__}")
    inner = []
    for i, g in enumerate(graphs):
        if not isinstance(g, Graph):
            refuse_none_graph(g, f"graphs[{i}]", "fingerprints")
            raise TypeError(f"graphs[{i}]: expected Graph, got {describe(g)}")
        inner.append(g._g)
    return _core.fingerprints(inner)


@dataclass(frozen=True)
class GraphFeaturizer:
    """How graphs become feature vectors: ``kind`` is ``"fingerprint"`` (the
    18 SPEC features; ``dim`` is 18, ``iterations`` None) or ``"wl"``
    (hashed Weisfeiler–Leman subtree features).

    WL features: each node starts with a colour hashed from its label and
    activation bucket; each of ``iterations`` rounds (default 3) rehashes it
    with the sorted colours of its in- and of its out-neighbours; every
    colour of every round is counted into one of ``dim`` buckets (default
    256) by a fixed hash (FNV-1a 64 + SplitMix64; identical across runs,
    processes and platforms). Each round's histogram is L2-normalised, and so
    is their sum: unit vectors, whatever the graph's size (zeros for an
    empty graph, which has no colour to count). Isomorphic graphs
    with equal labels and activations get identical features.

    >>> GraphFeaturizer("wl", dim=64).dim
    64
    """

    kind: str = "fingerprint"
    dim: Optional[int] = None
    iterations: Optional[int] = None

    if TYPE_CHECKING:  # what __post_init__ takes (numpy integers too); the fields hold Python ints.
        # tests/test_stub.py checks that these parameters are the fields, in order.
        def __init__(self, kind: str = "fingerprint", dim: Optional[IntLike] = None, iterations: Optional[IntLike] = None) -> None: ...

    def __post_init__(self) -> None:
        if not isinstance(self.kind, str):  # `in` compared an array element-wise: numpy's "truth value ... is ambiguous"
            raise TypeError(f"kind: expected one of {FEATURE_KINDS} (a str), got {type(self.kind).__name__}")
        object.__setattr__(self, "kind", str(self.kind))  # np.str_('wl') showed in repr and to_dict
        if self.kind not in FEATURE_KINDS:
            raise InvalidValueError(f"kind: expected one of {FEATURE_KINDS}, got {self.kind!r}", "kind")
        dim = _optional_int(self.dim, "dim")
        iterations = _optional_int(self.iterations, "iterations")
        if self.kind == "wl":
            dim = WL_DEFAULT_DIM if dim is None else dim
            iterations = WL_DEFAULT_ITERATIONS if iterations is None else iterations
        # The core is the one judge of valid settings (same messages everywhere).
        _core.featurize([], self.kind, dim, iterations)
        object.__setattr__(self, "dim", FINGERPRINT_DIM if self.kind == "fingerprint" else dim)
        object.__setattr__(self, "iterations", iterations)

    @classmethod
    def parse(cls, value: Any, name: str = "featurizer") -> "GraphFeaturizer":
        """A featuriser from itself, a kind name (``"wl"`` with defaults), or
        a dict as written by :meth:`to_dict`."""
        if isinstance(value, GraphFeaturizer):
            return value
        if isinstance(value, str):
            try:
                return cls(value)
            except (GraphemeError, TypeError) as err:  # it said "kind: ...", which the caller did not name
                raise renamed(err, {"kind": name}) from None
        if isinstance(value, Mapping):
            unknown = set(value) - {"kind", "dim", "iterations"}
            if unknown:
                # by str: keys of mixed types ({1: 2, "x": 3}) do not compare
                raise InvalidValueError(f"{name}: unknown keys {sorted(unknown, key=str)}; expected kind, dim, iterations", name)
            try:
                return cls(**value)
            except (GraphemeError, TypeError) as err:  # "dim: ..." named no entry of the caller's
                raise renamed(err, {key: f"{name}[{key!r}]" for key in ("kind", "dim", "iterations")}) from None
        raise TypeError(
            f"{name}: expected GraphFeaturizer, \"fingerprint\", \"wl\" or a dict, got {type(value).__name__}"
        )

    def to_dict(self) -> Dict[str, Any]:
        """``{"kind", "dim", "iterations"}``, JSON-friendly."""
        return {"kind": self.kind, "dim": self.dim, "iterations": self.iterations}

    def __call__(self, items: Iterable[TextOrGraph], unit: str = "char") -> np.ndarray:
        """Features of ``items``, ``[N, dim]`` float32 (see :func:`featurize`)."""
        if type(self) is not GraphFeaturizer:  # a subclass's fields are judged again, as featurize judges any
            return featurize(items, self.kind, self.dim, self.iterations, unit)
        _refuse_non_sequence(items)
        return _featurize_with(self, items, unit)  # its fields were judged when it was made (frozen since)


#: How featurize's own errors begin: "items: ..." (all of them: their memory) or "items[k]: ..." (one item).
_ITEMS_ERROR = re.compile(r"items(?:\[(\d+)\])?: ")


def featurized(
    featurizer: GraphFeaturizer, items: Sequence[TextOrGraph], name: str, place: Optional[Callable[[int], str]] = None
) -> np.ndarray:
    """``featurizer(items)`` for a caller that took ``items`` as its own
    argument ``name`` (``inputs['linguistic']``, a file): an error that
    featurize names by its ``items`` or ``items[k]``, names the user never
    passed, names ``name`` instead, and item ``k`` as ``place(k)`` (default
    ``name[k]``; e.g. the row of a list whose ``None`` rows were left out)."""
    try:
        return featurizer(items)
    except (GraphemeError, TypeError) as err:
        found = _ITEMS_ERROR.match(str(err))
        if found is None:
            raise
        k = found.group(1)
        outer = name if k is None else (place(int(k)) if place is not None else f"{name}[{k}]")
        text = f"{outer}: {str(err)[found.end():]}"
        raise (type(err)(text, outer) if isinstance(err, GraphemeError) else type(err)(text)) from None


def featurize(
    items: Iterable[TextOrGraph],
    kind: str = "fingerprint",
    dim: Optional[IntLike] = None,
    iterations: Optional[IntLike] = None,
    unit: str = "char",
) -> np.ndarray:
    """Feature vectors of many texts and/or graphs, ``[N, dim]`` float32.

    ``items`` are ``str`` (turned into text graphs of ``unit`` ``"char"`` or
    ``"grapheme"``, without building Python objects) or :class:`Graph`.
    ``kind``, ``dim``, ``iterations`` as in :class:`GraphFeaturizer`. Rows are
    computed in parallel in Rust with the GIL released.

    >>> featurize(["cat", "dog"], kind="wl", dim=32).shape
    (2, 32)
    """
    _refuse_non_sequence(items)
    return _featurize_with(GraphFeaturizer(kind, dim, iterations), items, unit)


def _refuse_non_sequence(items: Any) -> None:
    """TypeError for ``items`` that :func:`featurize` takes for no sequence of rows."""
    if isinstance(items, (str, bytes, Graph)):
        raise TypeError(f"items: expected a sequence of str or Graph, got a single {type(items).__name__}")
    if isinstance(items, (Mapping, Set)):
        # a dict would give its keys' features ({doc_id: text}: the ids'), a set its items in no fixed order
        hint = "; pass list(items.values())" if isinstance(items, Mapping) else ""
        raise TypeError(f"items: expected a sequence of str or Graph (one row each, in order), got {type(items).__name__}{hint}")


def _featurize_with(f: GraphFeaturizer, items: Iterable[TextOrGraph], unit: str) -> np.ndarray:
    """:func:`featurize` of ``items`` (checked by :func:`_refuse_non_sequence`)
    with the valid featuriser ``f``. A featuriser calling itself (every
    graph input of encode and of the events' batches) is not rebuilt: its
    ``__post_init__`` and the core's check of its settings took about 3 us."""
    unit = _unit(unit)
    try:
        inner = [x._g if isinstance(x, Graph) else x for x in items]
    except TypeError:
        raise TypeError(f"items: expected a sequence of str or Graph, got {describe(items)}") from None
    try:
        return _core.featurize(inner, f.kind, f.dim, f.iterations, unit)
    except TypeError:
        # the core's "items[k]: expected str or Graph, got NoneType": say where None is taken instead
        k = next((k for k, x in enumerate(inner) if not isinstance(x, (str, _core.Graph))), None)
        if k is not None:
            refuse_none_graph(inner[k], f"items[{k}]", "featurize", "str or Graph")
            if is_networkx_graph(inner[k]):  # the core's "got Graph" named its class as ours
                raise TypeError(f"items[{k}]: expected str or Graph, got {describe(inner[k])}") from None
        raise
