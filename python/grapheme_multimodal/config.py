"""Model configuration, with the original's defaults."""

from __future__ import annotations

__all__ = ["LearnableMultiModalConfig", "BINDER_KINDS", "NEIGHBOR_SPACES", "INPUT_DISTANCES"]

import dataclasses
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, AbstractSet, Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ._core import DROPOUT_BOUND_WHY, MAX_DIM, MAX_DROPOUT, MAX_FUSION_RESIDUAL, MAX_LAYERS, NUM_MODALITIES, OBJECTIVE_NAMES
from ._validation import IntLike, as_finite_float, as_seed, check_flag, exact_int, is_int, shown_number, wrong_type
from .exceptions import InvalidValueError, ShapeError, TooLargeError
from .graph import GraphFeaturizer
from .objectives import check_objective_names
from .types import Modality

# Keyed by a modality, its name or its slot index: one Mapping per key type, as
# Mapping is invariant in its key (a Dict[str, int] is no Mapping[Union[Modality, str], int]).
InputDims = Union[
    Mapping[str, int], Mapping[Modality, int], Mapping[int, int], Mapping[Union[Modality, str, int], int], Sequence[int], None
]
FeaturizerSpec = Union[GraphFeaturizer, str, Mapping[str, Any]]
GraphFeatures = Union[
    Mapping[str, FeaturizerSpec],
    Mapping[Modality, FeaturizerSpec],
    Mapping[int, FeaturizerSpec],
    Mapping[Union[Modality, str, int], FeaturizerSpec],
    Sequence[FeaturizerSpec],
    None,
]

#: ``binder_kind`` values: the original additive binder ``sigmoid(w·[a; b] + c)``
#: and a bilinear one ``sigmoid(aᵀ W b + c)`` that can learn which pairs belong.
BINDER_KINDS = ("additive", "bilinear")

#: ``fused_neighbor_space`` values: where ``fused_contrastive`` finds each
#: event's nearest events — by the modality embeddings, or by the encoder
#: inputs (the standardised raw views; docs/objectives.md).
NEIGHBOR_SPACES = ("embeddings", "inputs")

#: ``input_distance`` values: how the inputs' distance that finds those
#: neighbours weighs the modalities — every input column the same (the
#: concatenated views' Euclidean distance, where a modality of many columns
#: outweighs one of few), or every modality the same (docs/objectives.md).
INPUT_DISTANCES = ("columns", "modalities")

#: The range a learned temperature starts in and is kept in (as CLIP's logit scale 1..100).
TEMPERATURE_RANGE = (0.01, 1.0)


def _positive(value: float) -> bool:
    return value > 0


def _positive_int(value: Any, name: str) -> int:
    if not is_int(value):
        raise wrong_type(name, "an int", value)
    number = exact_int(value)  # the number checked is the number returned
    if number <= 0:
        raise InvalidValueError(f"{name}: expected a positive int, got {shown_number(value, str)}", name)
    if number > MAX_DIM:  # the model's memory is checked when it is built
        raise TooLargeError(f"{name}: got {shown_number(value, str)}; expected at most {MAX_DIM}", name)
    return number


#: The smallest normal float32 (1.18e-38), the least clipping threshold taken.
MIN_GRAD_CLIP = float(np.finfo(np.float32).tiny)


def _refuse_subnormal_clip(clip: Optional[float]) -> None:
    """Refuses a ``grad_clip`` (checked finite and positive) below the
    smallest normal float32: 1e-45 (a typo for 1e-4?) was taken, and the
    gradients clipped to it were 0 in float32, the precision the model
    computes in, so every step left every weight as it was, without a word
    (1e-40: changes of 1e-35). As a std below it is refused."""
    if clip is not None and clip < MIN_GRAD_CLIP:
        raise InvalidValueError(
            f"grad_clip: got {clip!r}, a subnormal float32 (below {MIN_GRAD_CLIP:.3g}, the smallest normal one): "
            "the gradients clipped to it are 0 or subnormal in float32, the precision the model computes in, so "
            f"training leaves the weights as they were, or all but; expected a finite positive number >= {MIN_GRAD_CLIP:.3g} "
            "or None (no clipping)", "grad_clip",
        )


def _widths(value: Any, name: str) -> Tuple[int, ...]:
    """Layer widths as a tuple of positive ints (one int is one layer)."""
    if is_int(value):
        value = (value,)
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)):
        raise TypeError(f"{name}: expected a sequence of layer widths (ints), got {type(value).__name__}")
    if isinstance(value, np.ndarray) and value.ndim != 1:  # a 0-d array was a bare "len() of unsized object"
        raise TypeError(f"{name}: expected a sequence of layer widths (ints), got a {value.ndim}-d array of shape {value.shape}")
    if len(value) > MAX_LAYERS:
        raise TooLargeError(f"{name}: got {len(value)} layers; expected at most {MAX_LAYERS}", name)
    return tuple(_positive_int(w, f"{name}[{i}]") for i, w in enumerate(value))


def _refuse_keys_of_one_modality(by_modality: Mapping[Any, Any], name: str) -> None:
    """InvalidValueError when two keys of ``by_modality`` name one modality
    ({"visual": 18, "VISUAL": 5}): else the last one won without a word."""
    modalities = [Modality.parse(k, name) for k in by_modality]  # "input_dims: unknown modality 'x'", not "modality:"
    if len(set(modalities)) < len(modalities):
        keys = [k for k, m in zip(by_modality, modalities) if modalities.count(m) > 1]
        raise InvalidValueError(f"{name}: keys {keys!r} name the same modality; expected one entry per modality", name)


def _normalise_graph_features(features: GraphFeatures) -> Tuple[GraphFeaturizer, ...]:
    """One featuriser per modality; the fingerprint where not set."""
    out = [GraphFeaturizer()] * NUM_MODALITIES
    if features is None:
        return tuple(out)
    if isinstance(features, Mapping):
        _refuse_keys_of_one_modality(features, "graph_features")
        for key, value in features.items():
            out[Modality.parse(key).index] = GraphFeaturizer.parse(value, f"graph_features[{str(key)!r}]")
        return tuple(out)
    if isinstance(features, (str, bytes)) or not isinstance(features, Sequence):
        raise TypeError(
            f"graph_features: expected a mapping modality -> featuriser or a sequence of 7, got {type(features).__name__}"
        )
    if len(features) != NUM_MODALITIES:
        raise ShapeError(f"graph_features: expected 7 entries (one per modality), got {len(features)}", "graph_features")
    return tuple(GraphFeaturizer.parse(v, f"graph_features[{i}]") for i, v in enumerate(features))


def _normalise_input_dims(dims: InputDims, features: Tuple[GraphFeaturizer, ...]) -> Tuple[int, ...]:
    """Each modality's input length: as given, else its featuriser's length.
    A modality that featurises graphs with WL takes WL-length vectors, so a
    different explicit length is an error."""
    out = [f.dim for f in features]
    if dims is None:
        return tuple(out)
    if isinstance(dims, Mapping):
        _refuse_keys_of_one_modality(dims, "input_dims")
        given = {Modality.parse(k).index: (v, f"input_dims[{str(k)!r}]") for k, v in dims.items()}
    elif isinstance(dims, np.ndarray) and dims.ndim != 1:
        raise TypeError(f"input_dims: expected a mapping modality -> int or a sequence of 7 ints, got an array of shape {dims.shape}")
    elif isinstance(dims, (str, bytes)) or not isinstance(dims, (Sequence, np.ndarray)):
        raise TypeError(f"input_dims: expected a mapping modality -> int or a sequence of 7 ints, got {type(dims).__name__}")
    elif len(dims) != NUM_MODALITIES:
        raise ShapeError(f"input_dims: expected 7 entries (one per modality), got {len(dims)}", "input_dims")
    else:
        given = {i: (v, f"input_dims[{i}]") for i, v in enumerate(dims)}
    for m, (value, name) in given.items():
        dim = _positive_int(value, name)
        f = features[m]
        if f.kind != "fingerprint" and dim != f.dim:
            raise InvalidValueError(
                f"{name}: modality {Modality(m).name.lower()} featurises graphs with kind={f.kind!r} into "
                f"{f.dim} features, so its input dim is {f.dim}; got {dim}. Drop the entry or make them agree", name,
            )
        out[m] = dim
    return tuple(out)


@dataclass(frozen=True)
class LearnableMultiModalConfig:
    """Hyper-parameters of :class:`LearnableMultiModal`.

    ``embed_dim`` is ``E``, the length of every modality embedding and of
    the fused one; ``hidden_dim`` the fusion network's middle width;
    ``num_heads`` the attention's heads (a divisor of ``embed_dim``);
    ``buffer_size`` the experience buffer's capacity. ``input_dims`` gives each modality's input length: its graph
    featuriser's length unless set, e.g. ``{"visual": 240}`` for 240-long
    vectors. ``graph_features`` says how each modality turns graphs into
    vectors: the 18-feature fingerprint unless set, e.g.
    ``{"linguistic": GraphFeaturizer("wl", dim=256)}`` (or ``"wl"`` for the
    defaults); such a modality's input length is the WL ``dim``.
    The same ``seed`` gives bit-identical weights and outputs.

    Learning: ``binder_kind`` (``"additive"``, the original, or
    ``"bilinear"``), ``temperature`` of the contrastive objectives,
    ``fused_neighbors`` (how many nearest events of the batch the
    ``fused_contrastive`` objective counts as positives besides the event
    itself; 0 = plain instance discrimination), ``fused_neighbor_space``
    (where those are found: ``"embeddings"``, by the modality embeddings,
    or ``"inputs"``, by the encoder inputs — batches of recorded embeddings
    have none, and there the embeddings decide), ``input_distance`` (how
    the inputs' distance weighs the modalities: ``"columns"``, every input
    column the same, or ``"modalities"``, every modality the same whatever
    its number of columns), ``contrastive_neighbors``
    (how many rows of the batch nearest to each row by its inputs the
    ``contrastive`` objective counts as extra positives; 0 = none) and
    ``contrastive_neighbor_weight`` (the target mass they share, in
    [0, 1); the row itself keeps the rest), ``neighborhood_neighbors``
    (how many rows of the batch nearest to each row by its inputs are the
    ``neighborhood`` objective's positives among each modality's own
    embeddings; 0 = none), ``neighborhood_temperature`` (its temperature,
    fixed; ``None`` = the ``contrastive`` objective's, learned or not),
    ``contrastive_pair_power``
    (``p``, in [0, 1]: the ``contrastive`` loss is the power mean of order
    ``p`` of its view pairs' losses, 1 = their arithmetic mean, the
    original, 0 = their geometric mean; below 1 each pair's gradient is
    weighted by ``(L_pair / L)^(p - 1)``, so pairs of views that determine
    each other keep learning), ``encoder_objectives`` (the
    objectives whose gradients reach the encoders and the shared head, e.g.
    ``("contrastive", "binding")``; the others then train only what lies
    downstream of the embeddings, as a stop-gradient would; ``None`` = all),
    ``weight_decay`` (decoupled,
    AdamW-style) and ``grad_clip`` (global-norm clipping threshold, ``None``
    = off; at least 1.18e-38, the smallest normal float32). ``learning_rate``
    is Adam's default step size.
    ``fusion_residual`` (``c``, in [0, 1e6]; 0 = the original fusion) adds a
    residual path to the fusion network: the fused embedding is the
    network's output plus ``c`` × the mean of the present modality
    embeddings, L2-normalised, so the network learns a correction to the
    views' average (no extra parameters; see ``docs/objectives.md``).

    Optional capacity (the defaults give the original model, 70,337
    parameters; see ``docs/objectives.md``): ``encoder_hidden`` — widths of
    hidden layers in each modality's encoder (LeakyReLU after each), e.g.
    ``(256,)``; ``encoder_output_dim`` — the encoders' output width
    (default ``embed_dim``; may differ only when a head follows);
    ``shared_head`` — widths of a projection head shared by all modalities,
    applied to every encoder's output before the L2 normalisation
    (LeakyReLU between its layers, none after the last, whose width must be
    ``embed_dim``), e.g. ``(128, 128)`` with ``embed_dim=128``;
    ``encoder_input_dropout`` / ``encoder_hidden_dropout`` — inverted
    dropout on each encoder's input / after each hidden layer, in training
    only (the masks are fixed by the seed and the step, so training stays
    reproducible), a probability in ``[0, 1 − 2⁻⁹]`` (``MAX_DROPOUT``:
    closer to 1 the 32-bit draws no longer realise the keep probability
    that kept entries are scaled by); ``encoder_skip`` — a linear path from each encoder's
    input (after its dropout) to its output layer,
    ``encoder.<modality>.skip.weight [encoder_output_dim, d]``, zeros at
    first, so views that are near-linear functions of each other keep
    their exact correspondence (needs ``encoder_hidden`` and a
    ``shared_head``); ``learnable_temperature`` — learn the contrastive
    objectives' temperatures (``contrastive.log_temperature``,
    ``fused_contrastive.log_temperature``), starting at ``temperature`` and
    kept in [0.01, 1]; ``reconstruction_decoders`` — a linear decoder per
    modality from the fused embedding to the modality's standardised input
    (``reconstruction.<modality>.weight [d, embed_dim]`` and ``.bias [d]``,
    after every other tensor), which the ``reconstruction`` objective
    trains (it needs them); ``reconstruction_subsets`` — that objective
    predicts every present modality from the fused embedding of a random
    subset of them (each kept with probability ½), not of the whole event
    (it needs the decoders).
    """

    embed_dim: int = 64
    hidden_dim: int = 128
    learning_rate: float = 0.001
    num_heads: int = 4
    buffer_size: int = 1000
    seed: int = 0
    input_dims: Tuple[int, ...] = field(default=None)  # type: ignore[arg-type]  # filled per modality
    graph_features: Tuple[GraphFeaturizer, ...] = field(default=None)  # type: ignore[arg-type]
    # Learning (see docs/objectives.md).
    binder_kind: str = "additive"
    temperature: float = 0.1
    weight_decay: float = 0.0
    grad_clip: Optional[float] = None
    fused_neighbors: int = 2
    fused_neighbor_space: str = "embeddings"
    input_distance: str = "columns"
    contrastive_neighbors: int = 0
    contrastive_neighbor_weight: float = 0.2
    neighborhood_neighbors: int = 10
    neighborhood_temperature: Optional[float] = None
    contrastive_pair_power: float = 1.0
    encoder_objectives: Optional[Tuple[str, ...]] = None
    fusion_residual: float = 0.0
    # Optional capacity (see above); the defaults are the original model.
    encoder_hidden: Tuple[int, ...] = ()
    encoder_output_dim: Optional[int] = None
    shared_head: Tuple[int, ...] = ()
    encoder_input_dropout: float = 0.0
    encoder_hidden_dropout: float = 0.0
    encoder_skip: bool = False
    learnable_temperature: bool = False
    reconstruction_decoders: bool = False
    reconstruction_subsets: bool = False

    if TYPE_CHECKING:  # what __post_init__ takes (input_dims and graph_features by modality, lists); the fields
        # hold it normalised. tests/test_stub.py checks that these parameters are the fields, in order.
        def __init__(
            self,
            embed_dim: IntLike = 64,
            hidden_dim: IntLike = 128,
            learning_rate: float = 0.001,
            num_heads: IntLike = 4,
            buffer_size: IntLike = 1000,
            seed: IntLike = 0,
            input_dims: InputDims = None,
            graph_features: GraphFeatures = None,
            binder_kind: str = "additive",
            temperature: float = 0.1,
            weight_decay: float = 0.0,
            grad_clip: Optional[float] = None,
            fused_neighbors: IntLike = 2,
            fused_neighbor_space: str = "embeddings",
            input_distance: str = "columns",
            contrastive_neighbors: IntLike = 0,
            contrastive_neighbor_weight: float = 0.2,
            neighborhood_neighbors: IntLike = 10,
            neighborhood_temperature: Optional[float] = None,
            contrastive_pair_power: float = 1.0,
            encoder_objectives: Optional[Union[Sequence[str], AbstractSet[str]]] = None,
            fusion_residual: float = 0.0,
            encoder_hidden: Sequence[IntLike] = (),
            encoder_output_dim: Optional[IntLike] = None,
            shared_head: Sequence[IntLike] = (),
            encoder_input_dropout: float = 0.0,
            encoder_hidden_dropout: float = 0.0,
            encoder_skip: bool = False,
            learnable_temperature: bool = False,
            reconstruction_decoders: bool = False,
            reconstruction_subsets: bool = False,
        ) -> None: ...

    def __post_init__(self) -> None:
        for name in ("embed_dim", "hidden_dim", "num_heads", "buffer_size"):
            object.__setattr__(self, name, _positive_int(getattr(self, name), name))
        if self.embed_dim % self.num_heads:
            raise InvalidValueError(
                f"num_heads: embed_dim={self.embed_dim} is not divisible by num_heads={self.num_heads}; "
                "expected a divisor of embed_dim", "num_heads",
            )
        lr = as_finite_float(self.learning_rate, "learning_rate", _positive, "a finite positive number", float32=True)
        object.__setattr__(self, "learning_rate", lr)
        object.__setattr__(self, "seed", as_seed(self.seed, "seed"))
        object.__setattr__(self, "graph_features", _normalise_graph_features(self.graph_features))
        object.__setattr__(self, "input_dims", _normalise_input_dims(self.input_dims, self.graph_features))
        self._validate_learning_fields()
        self._validate_capacity_fields()

    def _validate_learning_fields(self) -> None:
        for name, choices in (("binder_kind", BINDER_KINDS), ("fused_neighbor_space", NEIGHBOR_SPACES),
                              ("input_distance", INPUT_DISTANCES)):
            value = getattr(self, name)
            if not isinstance(value, str) or value not in choices:
                shown = repr(str(value)) if isinstance(value, str) else shown_number(value)  # np.str_('x') as 'x'
                raise InvalidValueError(f"{name}: expected one of {list(choices)}, got {shown}", name)
            object.__setattr__(self, name, str(value))  # numpy's str (read from an array) showed as np.str_('...')
        for name in ("fused_neighbors", "contrastive_neighbors", "neighborhood_neighbors"):
            k = getattr(self, name)
            if not is_int(k):
                raise wrong_type(name, "an int", k)
            k = exact_int(k)  # a 0-d array too: the int it holds
            if not 0 <= k < 2**32:
                raise InvalidValueError(f"{name}: expected an int in [0, 2**32), got {shown_number(k, str)}", name)
            object.__setattr__(self, name, int(k))
        share = as_finite_float(self.contrastive_neighbor_weight, "contrastive_neighbor_weight", lambda v: 0 <= v < 1,
                                "a fraction in [0, 1) (the target mass of the neighbours)")
        object.__setattr__(self, "contrastive_neighbor_weight", share)
        object.__setattr__(self, "encoder_objectives", _objective_names(self.encoder_objectives, "encoder_objectives"))
        checks = (
            ("temperature", self.temperature, False, _positive, "a finite positive number"),
            ("weight_decay", self.weight_decay, False, lambda v: v >= 0, "a finite number >= 0"),
            ("grad_clip", self.grad_clip, True, _positive, "a finite positive number or None"),
            ("neighborhood_temperature", self.neighborhood_temperature, True, _positive,
             "a finite positive number, or None for the contrastive objective's"),
            ("contrastive_pair_power", self.contrastive_pair_power, False, lambda v: 0 <= v <= 1,
             "a finite number in [0, 1] (1 = the arithmetic mean of the view pairs' losses, 0 = their geometric mean)"),
            ("fusion_residual", self.fusion_residual, False, lambda v: 0 <= v <= MAX_FUSION_RESIDUAL,
             f"a finite number in [0, {MAX_FUSION_RESIDUAL:g}] (0 = no residual path)"),
        )
        for name, value, optional, ok, expected in checks:
            if value is None and optional:
                continue
            object.__setattr__(self, name, as_finite_float(value, name, ok, expected, float32=True))
        _refuse_subnormal_clip(self.grad_clip)

    def _validate_capacity_fields(self) -> None:
        for name in ("encoder_hidden", "shared_head"):
            object.__setattr__(self, name, _widths(getattr(self, name), name))
        out = self.encoder_output_dim
        if out is not None:
            out = _positive_int(out, "encoder_output_dim")
            object.__setattr__(self, "encoder_output_dim", out)
        if self.shared_head:
            if self.shared_head[-1] != self.embed_dim:
                raise InvalidValueError(
                    f"shared_head: its last layer has width {self.shared_head[-1]}, but it outputs the embeddings; "
                    f"expected the last width to be embed_dim={self.embed_dim}, got {self.shared_head}",
                    "shared_head",
                )
        elif out is not None and out != self.embed_dim:
            raise InvalidValueError(
                f"encoder_output_dim: got {out}, but without a shared_head the encoders output the embeddings, "
                f"of embed_dim={self.embed_dim}; expected None, {self.embed_dim} or a shared_head",
                "encoder_output_dim",
            )
        for name in ("encoder_input_dropout", "encoder_hidden_dropout"):
            p = as_finite_float(getattr(self, name), name, lambda v: 0 <= v <= MAX_DROPOUT,
                                f"a probability in [0, {MAX_DROPOUT}] (1 − 2⁻⁹: {DROPOUT_BOUND_WHY})")
            object.__setattr__(self, name, p)
        if self.encoder_hidden_dropout > 0 and not self.encoder_hidden:
            raise InvalidValueError(
                f"encoder_hidden_dropout: got {self.encoder_hidden_dropout}, but encoder_hidden is empty (no hidden "
                "layer to drop from); expected 0 or some encoder_hidden widths",
                "encoder_hidden_dropout",
            )
        skip = check_flag(self.encoder_skip, "encoder_skip")
        object.__setattr__(self, "encoder_skip", skip)
        if skip and not (self.encoder_hidden and self.shared_head):
            missing = ("encoder_hidden is empty (the encoder is one linear map already)" if not self.encoder_hidden
                       else "shared_head is empty (the skip joins the encoder's output layer, which only a head makes linear)")
            raise InvalidValueError(
                f"encoder_skip: got True, but {missing}; expected False, or encoder_hidden and shared_head", "encoder_skip")
        for name in ("reconstruction_decoders", "reconstruction_subsets"):
            object.__setattr__(self, name, check_flag(getattr(self, name), name))
        if self.reconstruction_subsets and not self.reconstruction_decoders:
            # it changed nothing: the reconstruction objective is refused on a model without decoders
            raise InvalidValueError(
                "reconstruction_subsets: got True, but reconstruction_decoders is False (no decoders: the "
                "reconstruction objective it shapes cannot train); expected False, or reconstruction_decoders=True",
                "reconstruction_subsets",
            )
        learn = check_flag(self.learnable_temperature, "learnable_temperature")
        object.__setattr__(self, "learnable_temperature", learn)
        lo, hi = TEMPERATURE_RANGE
        if learn and not lo <= self.temperature <= hi:
            raise InvalidValueError(
                f"temperature: got {self.temperature}; a learnable temperature starts in [{lo}, {hi}] and stays there",
                "temperature",
            )

    def input_dim(self, modality: Union[Modality, str]) -> int:
        """Input length of ``modality``'s encoder."""
        return self.input_dims[Modality.parse(modality).index]

    def graph_featurizer(self, modality: Union[Modality, str]) -> GraphFeaturizer:
        """How ``modality`` turns graphs into its input vectors."""
        return self.graph_features[Modality.parse(modality).index]

    def replace(self, **changes: Any) -> "LearnableMultiModalConfig":
        """A copy with some fields changed. Changing ``graph_features`` alone
        lets the input dims of the modalities it touches follow it."""
        if "graph_features" in changes and "input_dims" not in changes:
            new = _normalise_graph_features(changes["graph_features"])
            changes["input_dims"] = {
                m.name.lower(): dim
                for m, dim, old_f, new_f in zip(Modality, self.input_dims, self.graph_features, new)
                if old_f.kind == "fingerprint" and new_f.kind == "fingerprint"
            }
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> Dict[str, Any]:
        """A JSON-friendly dict (``input_dims`` and ``graph_features`` keyed by modality name)."""
        d = dataclasses.asdict(self)
        d["input_dims"] = {m.name.lower(): dim for m, dim in zip(Modality, self.input_dims)}
        d["graph_features"] = {m.name.lower(): f.to_dict() for m, f in zip(Modality, self.graph_features)}
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "LearnableMultiModalConfig":
        """Inverse of :meth:`to_dict`; unknown keys are an error. A config
        saved with ``reconstruction_subsets`` but no decoders (before the pair
        was refused: the flag changed nothing without them) reads with the
        flag off, the same model. A dropout rate saved in ``(MAX_DROPOUT, 1)``
        (before such rates were refused) reads as ``MAX_DROPOUT``, with a
        ``UserWarning``: the file stays loadable and predicts as saved
        (dropout is training's only); training on draws at the bound."""
        if not isinstance(d, Mapping):  # a list, a str or None: "not iterable", or each letter an unknown field
            raise TypeError(f"config: expected a mapping field name -> value (what to_dict gives), got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:  # sorted by str: keys of mixed types raised "'<' not supported" instead
            raise InvalidValueError(
                f"config: unknown fields {sorted(unknown, key=str)}; expected some of {sorted(known)}", "config"
            )
        if d.get("reconstruction_subsets") is True and d.get("reconstruction_decoders", False) is False:
            d = {**d, "reconstruction_subsets": False}
        for name in ("encoder_input_dropout", "encoder_hidden_dropout"):
            p = d.get(name)
            if isinstance(p, float) and MAX_DROPOUT < p < 1:
                warnings.warn(
                    f"{name}: the saved rate {p!r} is above {MAX_DROPOUT} (1 − 2⁻⁹: {DROPOUT_BOUND_WHY}); "
                    f"read as {MAX_DROPOUT}, which training on uses", UserWarning, stacklevel=2,
                )
                d = {**d, name: MAX_DROPOUT}
        return cls(**d)


def _objective_names(names: Any, arg: str) -> Optional[Tuple[str, ...]]:
    """``None``, or ``names`` as a tuple of known objective names in their
    canonical order (each once)."""
    if names is None:
        return None
    if isinstance(names, (str, bytes)) or not isinstance(names, (Sequence, set, frozenset)):
        raise TypeError(f"{arg}: expected None or a sequence of objective names, got {type(names).__name__}")
    check_objective_names(names, arg)
    return tuple(n for n in OBJECTIVE_NAMES if n in set(names))


def resolve_config(config: Optional[LearnableMultiModalConfig], overrides: Dict[str, Any]) -> LearnableMultiModalConfig:
    """``config`` (or the defaults) with keyword ``overrides`` applied."""
    if config is None:
        return LearnableMultiModalConfig(**overrides)
    if not isinstance(config, LearnableMultiModalConfig):
        raise TypeError(f"config: expected LearnableMultiModalConfig, got {type(config).__name__}")
    return config.replace(**overrides) if overrides else config
