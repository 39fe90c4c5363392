"""Model configuration, with the original's defaults."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ._core import FINGERPRINT_DIM, NUM_MODALITIES
from .types import Modality

InputDims = Union[Mapping[Union[Modality, str], int], Sequence[int], None]


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name}: expected a positive int, got {value}")
    return int(value)


def _normalise_input_dims(dims: InputDims) -> Tuple[int, ...]:
    if dims is None:
        return (FINGERPRINT_DIM,) * NUM_MODALITIES
    if isinstance(dims, Mapping):
        out = [FINGERPRINT_DIM] * NUM_MODALITIES
        for key, value in dims.items():
            out[Modality.parse(key).index] = _positive_int(value, f"input_dims[{str(key)!r}]")
        return tuple(out)
    if isinstance(dims, (str, bytes)) or not isinstance(dims, Sequence):
        raise TypeError(f"input_dims: expected a mapping modality -> int or a sequence of 7 ints, got {type(dims).__name__}")
    if len(dims) != NUM_MODALITIES:
        raise ValueError(f"input_dims: expected 7 entries (one per modality), got {len(dims)}")
    return tuple(_positive_int(v, f"input_dims[{i}]") for i, v in enumerate(dims))


@dataclass(frozen=True)
class LearnableMultiModalConfig:
    """Hyper-parameters of :class:`LearnableMultiModal`.

    ``input_dims`` gives each modality's input length: 18 (the graph
    features) unless set, e.g. ``{"visual": 240}`` for 240-long vectors.
    The same ``seed`` gives bit-identical weights and outputs.
    """

    embed_dim: int = 64
    hidden_dim: int = 128
    learning_rate: float = 0.001
    num_heads: int = 4
    buffer_size: int = 1000
    seed: int = 0
    input_dims: Tuple[int, ...] = field(default=(FINGERPRINT_DIM,) * NUM_MODALITIES)

    def __post_init__(self) -> None:
        for name in ("embed_dim", "hidden_dim", "num_heads", "buffer_size"):
            object.__setattr__(self, name, _positive_int(getattr(self, name), name))
        if self.embed_dim % self.num_heads:
            raise ValueError(
                f"num_heads: embed_dim={self.embed_dim} is not divisible by num_heads={self.num_heads}; "
                "expected a divisor of embed_dim"
            )
        lr = self.learning_rate
        if isinstance(lr, bool) or not isinstance(lr, (int, float, np.number)) or not np.isfinite(lr) or lr <= 0:
            raise ValueError(f"learning_rate: expected a finite positive number, got {lr!r}")
        object.__setattr__(self, "learning_rate", float(lr))
        seed = self.seed
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**64:
            raise ValueError(f"seed: expected an int in [0, 2**64), got {seed!r}")
        object.__setattr__(self, "seed", int(seed))
        object.__setattr__(self, "input_dims", _normalise_input_dims(self.input_dims))

    def input_dim(self, modality: Union[Modality, str]) -> int:
        """Input length of ``modality``'s encoder."""
        return self.input_dims[Modality.parse(modality).index]

    def replace(self, **changes: Any) -> "LearnableMultiModalConfig":
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> Dict[str, Any]:
        """A JSON-friendly dict (``input_dims`` keyed by modality name)."""
        d = dataclasses.asdict(self)
        d["input_dims"] = {m.name.lower(): dim for m, dim in zip(Modality, self.input_dims)}
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "LearnableMultiModalConfig":
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"config: unknown fields {sorted(unknown)}; expected some of {sorted(known)}")
        return cls(**d)


def resolve_config(config: Optional[LearnableMultiModalConfig], overrides: Dict[str, Any]) -> LearnableMultiModalConfig:
    """``config`` (or the defaults) with keyword ``overrides`` applied."""
    if config is None:
        return LearnableMultiModalConfig(**overrides)
    if not isinstance(config, LearnableMultiModalConfig):
        raise TypeError(f"config: expected LearnableMultiModalConfig, got {type(config).__name__}")
    return config.replace(**overrides) if overrides else config
