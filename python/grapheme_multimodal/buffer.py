"""The experience buffer: a ring of preallocated numpy arrays.

Appending is O(1) per experience (the original removed the oldest entry
with ``Vec::remove(0)``, O(n)); past ``capacity`` the oldest entries are
overwritten. Sampling is uniform or reward-prioritised, from a seeded
generator whose state is saved with the buffer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ._core import MODALITY_NAMES, NUM_MODALITIES
from .io import PathLike, read_tagged_safetensors, write_tagged_safetensors

FILE_FORMAT = "grapheme-multimodal/experience-buffer/v1"
PRIORITY_EPS = 1e-3  # keeps zero-reward experiences sampleable


@dataclass
class Experience:
    """One recorded fusion. ``embeddings [7, E]`` (zeros where absent),
    ``mask [7]``, ``fused [E]``, ``pair_strengths [7, 7]``, and optionally the
    raw per-modality ``inputs`` (7 entries, ``None`` where absent) so that the
    encoders can be trained from the buffer."""

    embeddings: np.ndarray
    mask: np.ndarray
    fused: np.ndarray
    pair_strengths: np.ndarray
    reward: float
    event_id: int = -1
    inputs: Optional[List[Optional[np.ndarray]]] = None


@dataclass
class ExperienceBatch:
    """Experiences as arrays, one row each (oldest first when taken in order).

    ``inputs[m]`` is ``[n, d_m]`` (NaN rows where that entry has no input) or
    ``None`` when the buffer does not store inputs. ``weights`` are the
    importance weights of a prioritised sample (ones otherwise) and
    ``indices`` the rows' positions in the buffer (0 = oldest) when sampled."""

    embeddings: np.ndarray
    mask: np.ndarray
    fused: np.ndarray
    pair_strengths: np.ndarray
    rewards: np.ndarray
    event_ids: np.ndarray
    has_inputs: np.ndarray
    inputs: List[Optional[np.ndarray]]
    indices: np.ndarray
    weights: np.ndarray

    def __len__(self) -> int:
        return len(self.rewards)


class ExperienceBuffer:
    """A fixed-capacity ring buffer of fusion experiences.

    Args:
        capacity: the most experiences kept; older ones are dropped.
        embed_dim: ``E``; taken from the first experience when ``None``.
        input_dims: per-modality input lengths (7 ints) to also keep the raw
            inputs, or ``None`` to keep embeddings only.
        seed: seeds the sampling generator.
    """

    def __init__(
        self,
        capacity: int = 1000,
        *,
        embed_dim: Optional[int] = None,
        input_dims: Optional[Sequence[int]] = None,
        seed: int = 0,
    ) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, (int, np.integer)) or capacity <= 0:
            raise ValueError(f"capacity: expected a positive int, got {capacity!r}")
        if input_dims is not None and len(input_dims) != NUM_MODALITIES:
            raise ValueError(f"input_dims: expected 7 entries (one per modality), got {len(input_dims)}")
        self.capacity = int(capacity)
        self.embed_dim = embed_dim
        self.input_dims = tuple(int(d) for d in input_dims) if input_dims is not None else None
        self.seed = seed
        self._rng = np.random.Generator(np.random.PCG64(seed))
        self._size = 0
        self._next = 0
        self._arrays: Dict[str, np.ndarray] = {}
        if embed_dim is not None:
            self._allocate(embed_dim)

    # ---------------------------------------------------------------- storage
    def _allocate(self, embed_dim: int) -> None:
        c, e, m = self.capacity, int(embed_dim), NUM_MODALITIES
        self.embed_dim = e
        self._arrays = {
            "embeddings": np.zeros((c, m, e), np.float32),
            "mask": np.zeros((c, m), bool),
            "fused": np.zeros((c, e), np.float32),
            "pair_strengths": np.zeros((c, m, m), np.float32),
            "rewards": np.zeros(c, np.float32),
            "event_ids": np.full(c, -1, np.int64),
            "priorities": np.zeros(c, np.float64),
            "has_inputs": np.zeros(c, bool),
        }
        if self.input_dims is not None:
            for name, d in zip(MODALITY_NAMES, self.input_dims):
                self._arrays[f"inputs.{name}"] = np.full((c, d), np.nan, np.float32)

    def _slots(self, positions: Optional[np.ndarray] = None) -> np.ndarray:
        """Physical slots of logical positions (0 = oldest)."""
        oldest = (self._next - self._size) % self.capacity
        if positions is None:
            positions = np.arange(self._size)
        return (oldest + positions) % self.capacity

    def __len__(self) -> int:
        return self._size

    @property
    def num_experiences(self) -> int:
        """Number of experiences held (at most ``capacity``)."""
        return self._size

    def clear(self) -> None:
        """Drops every experience (capacity and dims are kept)."""
        self._size = 0
        self._next = 0
        for name, arr in self._arrays.items():
            arr[...] = np.nan if name.startswith("inputs.") else (-1 if name == "event_ids" else 0)

    # ----------------------------------------------------------------- append
    def append(self, experience: Experience) -> None:
        """Records one experience (O(1))."""
        if not isinstance(experience, Experience):
            raise TypeError(f"experience: expected Experience, got {type(experience).__name__}")
        x = experience
        inputs = None
        if x.inputs is not None:
            if len(x.inputs) != NUM_MODALITIES:
                raise ValueError(f"experience.inputs: expected 7 entries (None where absent), got {len(x.inputs)}")
            inputs = [None if v is None else np.asarray(v, np.float32)[None] for v in x.inputs]
        self.extend(
            embeddings=np.asarray(x.embeddings)[None],
            mask=np.asarray(x.mask)[None],
            fused=np.asarray(x.fused)[None],
            pair_strengths=np.asarray(x.pair_strengths)[None],
            rewards=[x.reward],
            event_ids=[x.event_id],
            inputs=inputs,
        )

    def extend(
        self,
        embeddings: Any,
        mask: Any,
        fused: Any,
        pair_strengths: Any,
        rewards: Any,
        event_ids: Any = None,
        inputs: Optional[Sequence[Optional[Any]]] = None,
    ) -> None:
        """Records ``n`` experiences at once: ``embeddings [n, 7, E]``,
        ``mask [n, 7]``, ``fused [n, E]``, ``pair_strengths [n, 7, 7]``,
        ``rewards [n]``, ``event_ids [n]`` (default -1), ``inputs`` (7
        entries of ``[n, d_m]`` or ``None``). Validates everything before
        writing anything."""
        emb = np.asarray(embeddings, np.float32)
        if emb.ndim != 3 or emb.shape[1] != NUM_MODALITIES:
            raise ValueError(f"embeddings: expected shape (n, 7, E), got {emb.shape}")
        n, e = emb.shape[0], emb.shape[2]
        if self.embed_dim is not None and e != self.embed_dim:
            raise ValueError(f"embeddings: expected E={self.embed_dim} (the buffer's embed_dim), got {e}")
        staged = {
            "embeddings": emb,
            "mask": _checked(mask, "mask", (n, NUM_MODALITIES), bool),
            "fused": _checked(fused, "fused", (n, e), np.float32),
            "pair_strengths": _checked(pair_strengths, "pair_strengths", (n, NUM_MODALITIES, NUM_MODALITIES), np.float32),
            "rewards": _checked(rewards, "rewards", (n,), np.float32),
            "event_ids": _checked(np.full(n, -1) if event_ids is None else event_ids, "event_ids", (n,), np.int64),
        }
        for name in ("embeddings", "fused", "pair_strengths", "rewards"):
            if not np.isfinite(staged[name]).all():
                raise ValueError(f"{name}: contains NaN or inf; expected finite numbers")
        staged["priorities"] = np.abs(staged["rewards"]).astype(np.float64) + PRIORITY_EPS
        staged["has_inputs"] = np.full(n, inputs is not None)
        if inputs is not None:
            if self.input_dims is None:
                raise ValueError("inputs: this buffer keeps embeddings only (created without input_dims)")
            if len(inputs) != NUM_MODALITIES:
                raise ValueError(f"inputs: expected 7 entries (None where absent), got {len(inputs)}")
            for m, (name, d) in enumerate(zip(MODALITY_NAMES, self.input_dims)):
                if inputs[m] is None:
                    if staged["mask"][:, m].any():
                        raise ValueError(f"inputs[{name!r}]: missing, but the mask marks {name} present")
                    staged[f"inputs.{name}"] = np.full((n, d), np.nan, np.float32)
                else:
                    staged[f"inputs.{name}"] = _checked(inputs[m], f"inputs[{name!r}]", (n, d), np.float32)
        if n == 0:
            return
        if not self._arrays:
            self._allocate(e)
        if n > self.capacity:  # only the newest `capacity` survive
            staged = {k: v[-self.capacity :] for k, v in staged.items()}
            n = self.capacity
        slots = (self._next + np.arange(n)) % self.capacity
        for name, arr in self._arrays.items():
            if name in staged:
                arr[slots] = staged[name]
            elif name.startswith("inputs."):
                arr[slots] = np.nan
        self._next = int((self._next + n) % self.capacity)
        self._size = min(self._size + n, self.capacity)

    # ------------------------------------------------------------------ reading
    def batch(self, positions: Optional[Any] = None) -> ExperienceBatch:
        """The experiences at ``positions`` (0 = oldest; default all) as arrays."""
        pos = np.arange(self._size) if positions is None else np.asarray(positions, np.int64)
        if pos.size and (pos.min() < 0 or pos.max() >= self._size):
            raise IndexError(f"positions: expected values in [0, {self._size}), got {pos.min()}..{pos.max()}")
        return self._gather(pos, np.ones(len(pos), np.float32))

    def _gather(self, pos: np.ndarray, weights: np.ndarray) -> ExperienceBatch:
        if not self._arrays:
            raise ValueError("buffer: it is empty and has no dimensions yet; record an experience first")
        slots = self._slots(pos)
        a = self._arrays
        inputs: List[Optional[np.ndarray]] = [None] * NUM_MODALITIES
        if self.input_dims is not None:
            inputs = [a[f"inputs.{name}"][slots] for name in MODALITY_NAMES]
        return ExperienceBatch(
            embeddings=a["embeddings"][slots],
            mask=a["mask"][slots],
            fused=a["fused"][slots],
            pair_strengths=a["pair_strengths"][slots],
            rewards=a["rewards"][slots],
            event_ids=a["event_ids"][slots],
            has_inputs=a["has_inputs"][slots],
            inputs=inputs,
            indices=pos,
            weights=weights,
        )

    def __getitem__(self, position: int) -> Experience:
        if not isinstance(position, (int, np.integer)):
            raise TypeError(f"position: expected an int, got {type(position).__name__}")
        if position < 0:
            position += self._size
        b = self.batch([position])
        inputs = None
        if b.has_inputs[0]:
            inputs = [None if x is None or not b.mask[0, m] else x[0] for m, x in enumerate(b.inputs)]
        return Experience(
            embeddings=b.embeddings[0],
            mask=b.mask[0],
            fused=b.fused[0],
            pair_strengths=b.pair_strengths[0],
            reward=float(b.rewards[0]),
            event_id=int(b.event_ids[0]),
            inputs=inputs,
        )

    def __iter__(self) -> Iterator[Experience]:
        """Oldest first."""
        for i in range(self._size):
            yield self[i]

    # ----------------------------------------------------------------- sampling
    def sample(
        self,
        batch_size: int,
        *,
        prioritized: bool = False,
        alpha: float = 0.6,
        beta: float = 0.4,
        replace: bool = False,
    ) -> ExperienceBatch:
        """A random batch from the buffer's seeded generator.

        Uniform by default. With ``prioritized=True`` experience ``i`` is drawn
        with probability ``P(i) = p_i^alpha / sum_j p_j^alpha``, where the
        priority ``p_i = |reward_i| + 1e-3`` unless set by
        :meth:`update_priorities`, and carries the importance weight
        ``w_i = (N P(i))^-beta / max_j (N P(j))^-beta`` (in (0, 1]).
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
            raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
        if self._size == 0:
            raise ValueError("buffer: cannot sample from an empty buffer")
        if not replace and batch_size > self._size:
            raise ValueError(
                f"batch_size: {batch_size} is more than the {self._size} experiences held; pass replace=True"
            )
        n = self._size
        if not prioritized:
            pos = self._rng.choice(n, size=batch_size, replace=replace)
            return self._gather(np.asarray(pos, np.int64), np.ones(batch_size, np.float32))
        if not (np.isfinite(alpha) and alpha >= 0 and np.isfinite(beta) and beta >= 0):
            raise ValueError(f"alpha, beta: expected finite numbers >= 0, got {alpha}, {beta}")
        scaled = self._arrays["priorities"][self._slots()] ** alpha
        probs = scaled / scaled.sum()
        pos = self._rng.choice(n, size=batch_size, replace=replace, p=probs)
        weights = (n * probs[pos]) ** -beta / (n * probs.min()) ** -beta
        return self._gather(np.asarray(pos, np.int64), weights.astype(np.float32))

    def update_priorities(self, positions: Any, priorities: Any) -> None:
        """Sets the sampling priority (> 0) of the experiences at ``positions``
        (0 = oldest, as in ``ExperienceBatch.indices``)."""
        pos = np.asarray(positions, np.int64)
        pri = np.asarray(priorities, np.float64)
        if pos.shape != pri.shape or pos.ndim != 1:
            raise ValueError(f"positions, priorities: expected equal 1-D shapes, got {pos.shape} and {pri.shape}")
        if pos.size and (pos.min() < 0 or pos.max() >= self._size):
            raise IndexError(f"positions: expected values in [0, {self._size})")
        if not (np.isfinite(pri).all() and (pri > 0).all()):
            raise ValueError("priorities: expected finite numbers > 0")
        self._arrays["priorities"][self._slots(pos)] = pri

    # ------------------------------------------------------------- persistence
    def save(self, path: PathLike) -> None:
        """Writes the buffer (experiences oldest first, priorities, generator
        state) to a safetensors file, atomically."""
        tensors, meta = self.state()
        write_tagged_safetensors(path, tensors, FILE_FORMAT, meta)

    def load(self, path: PathLike) -> None:
        """Replaces this buffer's contents with the file's. A missing,
        truncated, corrupt or foreign file raises and leaves the buffer as it was."""
        other = ExperienceBuffer.from_file(path)
        self.__dict__.update(other.__dict__)

    @classmethod
    def from_file(cls, path: PathLike) -> "ExperienceBuffer":
        """A new buffer read from a file written by :meth:`save`."""
        tensors, meta = read_tagged_safetensors(path, FILE_FORMAT)
        try:
            return cls.from_state(tensors, meta)
        except ValueError as exc:
            raise ValueError(f"path: {str(path)!r} is not a valid experience buffer file: {exc}") from None

    def state(self) -> Tuple[Dict[str, np.ndarray], Dict[str, Any]]:
        """``(tensors, metadata)``: everything :meth:`from_state` rebuilds the
        buffer from (experiences oldest first; JSON-able metadata)."""
        tensors = {}
        if self._arrays:
            slots = self._slots()
            tensors = {k: v[slots] for k, v in self._arrays.items()}
        meta = {
            "capacity": self.capacity,
            "embed_dim": self.embed_dim,
            "input_dims": self.input_dims,
            "seed": self.seed,
            "size": self._size,
            "rng_state": self._rng.bit_generator.state,
        }
        return tensors, meta

    @classmethod
    def from_state(cls, tensors: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> "ExperienceBuffer":
        """Inverse of :meth:`state`; inconsistent input is a ValueError."""
        try:
            buf = cls(meta["capacity"], embed_dim=meta["embed_dim"], input_dims=meta["input_dims"], seed=meta["seed"])
            size = int(meta["size"])
            if not 0 <= size <= buf.capacity:
                raise ValueError(f"size {size} is outside [0, capacity={buf.capacity}]")
            if size:
                expected = set(buf._arrays)
                if set(tensors) != expected:
                    raise ValueError(f"tensors {sorted(tensors)} do not match {sorted(expected)}")
                for name, arr in buf._arrays.items():
                    if tensors[name].shape != (size,) + arr.shape[1:]:
                        raise ValueError(f"tensor {name!r} has shape {tensors[name].shape}")
                    arr[:size] = tensors[name]
            buf._size = size
            buf._next = size % buf.capacity
            buf._rng.bit_generator.state = meta["rng_state"]
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"inconsistent experience buffer state ({exc})") from None
        return buf

    def __repr__(self) -> str:
        return f"ExperienceBuffer(size={self._size}, capacity={self.capacity}, embed_dim={self.embed_dim})"


def _checked(value: Any, name: str, shape: tuple, dtype: Any) -> np.ndarray:
    arr = np.asarray(value)
    if arr.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {arr.shape}")
    return arr.astype(dtype, copy=False)
