"""Type stubs of the Rust extension `grapheme_multimodal._core` (private;
use the public API in `grapheme_multimodal`)."""

from typing import List, Literal, Optional, Protocol, Sequence, Tuple, Union, final

import numpy as np
import numpy.typing as npt

__all__ = [
    "__version__",
    "NUM_MODALITIES",
    "FINGERPRINT_DIM",
    "MODALITY_NAMES",
    "OBJECTIVE_NAMES",
    "Graph",
    "Model",
    "Gate",
    "GateGuard",
    "fingerprints",
    "featurize",
    "set_num_threads",
    "get_num_threads",
    "max_threads",
    "kernel_path",
    "memory_budget",
    "plain_items",
    "best_two",
    "exact_nearest",
    "exact_nearest_rows",
    "MIN_STD",
    "ADAM_BETA1",
    "ADAM_BETA2",
    "MAX_DIM",
    "MAX_LAYERS",
    "MAX_FUSION_RESIDUAL",
    "MAX_DROPOUT",
    "DROPOUT_BOUND_WHY",
    "WL_DEFAULT_DIM",
    "WL_DEFAULT_ITERATIONS",
]

__version__: str
NUM_MODALITIES: int
FINGERPRINT_DIM: int
WL_DEFAULT_DIM: int
WL_DEFAULT_ITERATIONS: int
MIN_STD: float
ADAM_BETA1: float
ADAM_BETA2: float
MAX_DIM: int
MAX_LAYERS: int
MAX_FUSION_RESIDUAL: float
MAX_DROPOUT: float
DROPOUT_BOUND_WHY: str
MODALITY_NAMES: List[str]
OBJECTIVE_NAMES: List[str]

_F32 = npt.NDArray[np.float32]
_Bool = npt.NDArray[np.bool_]

@final
class Graph:
    @staticmethod
    def from_text(text: str, unit: str = "char") -> Graph: ...
    @staticmethod
    def from_image(image: _F32, value_range: Optional[Tuple[float, float]] = None) -> Graph: ...
    @staticmethod
    def check_image_size(height: int, width: int) -> None: ...
    @staticmethod
    def check_sequence_size(n: int) -> None: ...
    @staticmethod
    def check_edges_size(num_nodes: int, num_edges: int) -> None: ...
    @staticmethod
    def from_sequence(values: _F32, value_range: Optional[Tuple[float, float]] = None) -> Graph: ...
    @staticmethod
    def from_edges(
        num_nodes: int,
        edges: npt.NDArray[np.int64],
        activations: Optional[Union[_F32, Sequence[float]]] = None,
        labels: Optional[Sequence[str]] = None,
    ) -> Graph: ...
    @property
    def node_count(self) -> int: ...
    @property
    def edge_count(self) -> int: ...
    def to_text(self) -> str: ...
    def activations(self) -> _F32: ...
    def labels(self) -> List[str]: ...
    def edges(self) -> npt.NDArray[np.int64]: ...
    def features(self, kind: str = "fingerprint", dim: Optional[int] = None, iterations: Optional[int] = None) -> _F32: ...

def fingerprints(graphs: Sequence[Graph]) -> _F32: ...
def set_num_threads(n: int) -> int: ...
def get_num_threads() -> int: ...
def max_threads() -> int: ...
def kernel_path() -> str: ...
def memory_budget() -> int: ...
def plain_items(x: object) -> Optional[npt.NDArray[Union[np.float64, np.int64]]]:
    """A list or tuple of exact Python floats (float64) or ints within int64 (int64), or of rows of them (lists or
    tuples of one length: 2-D), as numpy.asarray reads it; else None."""
def best_two(
    scores: npt.NDArray[np.float64], largest: bool
) -> Tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Per row of ``scores [n, m]`` (m >= 1): the column of its largest score (``largest=False``: smallest; the first
    of equal ones, as argmax), that score, and the best of the other columns; one pass."""
def exact_nearest(
    query: npt.NDArray[np.float64],
    row: int,
    gallery: npt.NDArray[np.float64],
    candidates: npt.NDArray[np.int64],
    cosine: bool,
) -> int:
    """The candidate (ascending gallery rows, at least one) nearest query row ``row``: the largest cosine
    (``cosine=True``) or the smallest Euclidean distance, decided in exact arithmetic on the finite float64 values,
    the lowest index on a tie; GIL released."""
def exact_nearest_rows(
    query: npt.NDArray[np.float64],
    gallery: npt.NDArray[np.float64],
    top: float,
    scores: npt.NDArray[np.float64],
    start: int,
    rows: npt.NDArray[np.int64],
    thresholds: npt.NDArray[np.float64],
    cosine: bool,
    left: Optional[npt.NDArray[np.float64]] = None,
) -> npt.NDArray[np.int64]:
    """For each near row ``rows[i]`` of a search block ``scores [b, m]`` (query rows from ``start``): the gallery row
    nearest query row ``start + rows[i]`` among those scoring at least ``thresholds[i]`` (cosine; at most it for
    Euclidean), decided exactly, the lowest index on a tie; -1 where none does. ``top``: the largest magnitude of
    the values (which must be finite). ``left``: for integers beyond 2**53 split into float64 parts ``h + l``
    (query ``[h, h, l, l]``, gallery ``[h, l, h, l]`` per value), the gallery as ``[h, h, l, l]``, the left
    operands of ``g.g``. GIL released."""
def featurize(
    items: Sequence[Union[str, Graph]],
    kind: str = "fingerprint",
    dim: Optional[int] = None,
    iterations: Optional[int] = None,
    unit: str = "char",
) -> _F32: ...

# (x [k, d] float32, rows [k], confidences [k] | None); int64 / float32
# arrays are read without Python objects, other sequences are accepted too.
_Component = Tuple[_F32, Union[npt.NDArray[np.int64], Sequence[int]], Optional[Union[_F32, Sequence[float]]]]

@final
class Gate:
    """The bookkeeping of ``_locking.ModelLock`` (entered and left through :class:`GateGuard`)."""

    def __init__(self) -> None: ...
    def after_fork_in_child(self) -> None: ...
    @property
    def writers_waiting(self) -> int: ...
    @property
    def waiting(self) -> int: ...
    @property
    def busy(self) -> bool: ...

@final
class GateGuard:
    """``with guard:`` enters one side of a :class:`Gate` (reading, writing, updating)."""

    @staticmethod
    def sides(gate: Gate) -> Tuple[GateGuard, GateGuard, GateGuard]: ...
    def __enter__(self) -> None: ...
    def __exit__(self, _kind: object, _value: object, _traceback: object) -> Literal[False]: ...

class _CoreBatch(Protocol):
    """Read by attribute; exactly one of inputs / components / embeddings is set.
    Read-only members: the core only reads them, so an object whose attributes
    are declared more broadly (a list of arrays of any dtype) still matches."""

    @property
    def inputs(self) -> Optional[Sequence[Optional[_F32]]]: ...
    @property
    def components(self) -> Optional[Tuple[int, Sequence[Optional[_Component]]]]: ...
    @property
    def embeddings(self) -> Optional[_F32]: ...
    @property
    def mask(self) -> Optional[_Bool]: ...
    @property
    def fused(self) -> Optional[_F32]: ...
    @property
    def rewards(self) -> Optional[_F32]: ...

@final
class Model:
    # `#[new]` in rust/python/src/model.rs: the runtime defines `__new__`
    # (its `__init__` is object's), so the signature is declared there.
    def __new__(
        cls,
        embed_dim: int,
        hidden_dim: int,
        learning_rate: float,
        num_heads: int,
        buffer_size: int,
        seed: int,
        input_dims: Sequence[int],
        *,
        binder_kind: str = "additive",
        temperature: float = 0.1,
        weight_decay: float = 0.0,
        grad_clip: Optional[float] = None,
        fused_neighbors: int = 2,
        fused_neighbor_space: str = "embeddings",
        input_distance: str = "columns",
        contrastive_neighbors: int = 0,
        contrastive_neighbor_weight: float = 0.2,
        neighborhood_neighbors: int = 10,
        neighborhood_temperature: Optional[float] = None,
        contrastive_pair_power: float = 1.0,
        encoder_objectives: Optional[Sequence[bool]] = None,
        # `Vec::new()` defaults: no layers; the runtime signature shows them as `...`.
        encoder_hidden: Sequence[int] = ...,
        encoder_output_dim: Optional[int] = None,
        shared_head: Sequence[int] = ...,
        encoder_input_dropout: float = 0.0,
        encoder_hidden_dropout: float = 0.0,
        learnable_temperature: bool = False,
        fusion_residual: float = 0.0,
        encoder_skip: bool = False,
        reconstruction_decoders: bool = False,
        reconstruction_subsets: bool = False,
    ) -> Model: ...
    @property
    def num_parameters(self) -> int: ...
    def param_specs(self) -> List[Tuple[str, List[int]]]: ...
    def get_param(self, name: str) -> _F32: ...
    def get_params(self) -> _F32: ...
    def set_param(self, name: str, values: _F32) -> None: ...
    def set_params(self, tensors: Sequence[Tuple[str, _F32]]) -> None: ...
    def get_normalization(self, index: int) -> Optional[Tuple[_F32, _F32]]: ...
    def set_normalization(self, index: int, mean: Optional[_F32] = None, std: Optional[_F32] = None) -> None: ...
    # masked=False: the caller takes no mask (every row it gives is present); NaN refusals then say nothing of marks
    def encode(self, inputs: Sequence[Optional[_F32]], mask: _Bool, masked: bool = True) -> _F32: ...
    def encode_components(self, batch_size: int, parts: Sequence[Optional[_Component]]) -> _F32: ...
    def encode_and_fuse(self, inputs: Sequence[Optional[_F32]], mask: _Bool, masked: bool = True) -> Tuple[_F32, _F32]: ...
    def hidden_features(self, inputs: Sequence[Optional[_F32]], mask: _Bool, layer: int, masked: bool = True) -> _F32: ...
    # (embeddings [1, 7, E], mask [1, 7], fused [E] or None), every array read-only (the model caches them)
    def encode_event(
        self,
        event_id: object,
        components: Sequence[Tuple[int, Union[Graph, _F32], float]],
        featurizers: Sequence[Tuple[str, Optional[int], Optional[int]]],
    ) -> Tuple[_F32, _Bool, Optional[_F32]]: ...
    def fuse(self, embeddings: _F32, mask: _Bool) -> _F32: ...
    def bind(self, a: _F32, b: _F32) -> _F32: ...
    def pair_strengths(self, embeddings: _F32, mask: _Bool) -> _F32: ...
    def attend(self, query: _F32, embeddings: _F32, mask: _Bool) -> Tuple[_F32, _F32, _F32]: ...
    # learning: weights are in OBJECTIVE_NAMES order; losses come back as
    # [(objective, loss), ..., ("total", weighted sum)]
    def losses(self, batch: _CoreBatch, weights: Sequence[float], training: bool = False) -> List[Tuple[str, float]]: ...
    def temperatures(self) -> List[Tuple[str, float]]: ...
    def backward(self, batch: _CoreBatch, weights: Sequence[float]) -> List[Tuple[str, float]]: ...
    def train_step(
        self, batch: _CoreBatch, weights: Sequence[float], lr: Optional[float] = None
    ) -> Tuple[List[Tuple[str, float]], float]: ...
    def zero_grad(self) -> None: ...
    def has_gradients(self) -> bool: ...
    def step(self, lr: Optional[float] = None) -> bool: ...
    def apply_gradients(
        self, grads: _F32, lr: Optional[float] = None, mask: Optional[_Bool] = None, weights: Optional[Sequence[float]] = None
    ) -> float: ...
    def get_flat_grad(self) -> _F32: ...
    def set_flat_grad(self, grads: _F32, pending_rows: Optional[Sequence[int]] = None) -> None: ...
    def pending_rows(self) -> List[int]: ...
    def optimizer_state(self) -> Tuple[_F32, _F32, int, int]: ...
    def set_optimizer_state(self, m: _F32, v: _F32, step: int, rng_counter: int) -> None: ...
    def trained_rows(self) -> Optional[List[int]]: ...
    def has_trained(self) -> Optional[bool]: ...
    def set_trained_rows(self, rows: Optional[Sequence[int]], trained: bool = False) -> None: ...
    def reset_optimizer(self) -> None: ...
    def objective_draws(
        self, batch: _CoreBatch
    ) -> Tuple[List[Tuple[int, int, int]], List[int], List[int], List[int], _Bool, _Bool, List[List[int]]]: ...
