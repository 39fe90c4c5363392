"""The experience buffer: a ring of numpy arrays.

Appending is O(1) per experience (the original removed the oldest entry
with ``Vec::remove(0)``, O(n)); past ``capacity`` the oldest entries are
overwritten. The arrays grow (doubling) up to ``capacity`` as experiences
arrive, so a large capacity costs memory only once it is used: a forged
file's capacity cannot make loading it allocate gigabytes. Sampling is uniform or reward-prioritised, from a seeded
generator whose state is saved with the buffer.

A buffer may be shared between threads: every method holds the buffer's
lock while it reads or writes, so concurrent appends lose nothing and a
sample never mixes the fields of two experiences.
"""

from __future__ import annotations

__all__ = ["Experience", "ExperienceBatch", "ExperienceBuffer", "FILE_FORMAT"]

import copy
import functools
import math
import os
import threading
import weakref
from dataclasses import dataclass, fields
from collections.abc import Mapping, Sequence  # not typing's aliases: isinstance of them takes 3x as long
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np

from ._core import MODALITY_NAMES, NUM_MODALITIES
from ._equality import equal_fields
from ._locking import ForkedMidChange, uninterrupted
from ._portable import PortablePickle, set_attributes, slot_names, slot_values
from ._validation import (
    IntLike,
    as_finite_float, as_mask, as_positive_int, as_real_array, as_seed, check_flag, describe, described_entries, exact_int, is_int,
    memory_budget, is_masked_array, non_finite_message, refuse_beyond_memory, refuse_bools, refuse_float32_underflow,
    refuse_non_unit_embeddings, shown_floats, shown_number, sorted_names, unmasked, wrong_type,
)
from ._frames import refuse_missing_values, refuse_unpaired_frames
from .exceptions import CheckpointError, InvalidTypeError, InvalidValueError, NonFiniteError, ShapeError, TooLargeError
from .io import (FORMAT_NAMES, PathLike, TensorSpec, as_path, check_write_target, read_tagged_safetensors, call_saving,
                 write_tagged_safetensors)

FILE_FORMAT = "grapheme-multimodal/experience-buffer/v1"
FORMAT_NAMES[FILE_FORMAT] = ": an experience buffer file, which ExperienceBuffer.load reads"
PRIORITY_EPS = 1e-3  # keeps zero-reward experiences sampleable
_FIRST_ROWS = 1024  # rows allocated at first; doubled as needed, up to capacity
#: The metadata keys of a buffer's state (``state()[1]``), all required.
STATE_KEYS = ("capacity", "embed_dim", "input_dims", "seed", "size", "rng_state")
#: The attributes a pickled buffer's state (``__getstate__()``) holds, at least.
_PICKLED_KEYS = frozenset({"capacity", "embed_dim", "input_dims", "seed", "_rng", "_size", "_next", "_arrays"})


@dataclass
class Experience(PortablePickle):
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

    def __eq__(self, other: object) -> bool:
        """Equal by value, NaN equal to NaN (the dataclass's own ``==``
        compared the arrays element-wise and raised "truth value of an
        array ... is ambiguous": ``e in list(buffer)`` failed too)."""
        return equal_fields(self, other)

    __hash__ = None  # type: ignore[assignment]  # mutable and equal by value, as the dataclass made it

    # arrays as bytes, dtype and shape: a pickle of numpy 2 loads under numpy 1, and back (_portable.py)
    _PORTABLE_KEYS = ("embeddings", "mask", "fused", "pair_strengths", "inputs")

    def __repr__(self) -> str:
        return _short_repr(self)


@dataclass
class ExperienceBatch(PortablePickle):
    """Experiences as arrays, one row each (oldest first when taken in order).

    ``inputs[m]`` is ``[n, d_m]`` (NaN rows where that entry has no input) or
    ``None`` when the buffer does not store inputs. ``weights`` are the
    importance weights of a prioritised sample (ones otherwise) and
    ``indices`` the rows' positions in the buffer (0 = oldest) when sampled
    (:meth:`ExperienceBuffer.update_priorities` and
    :meth:`ExperienceBuffer.batch` given this array, or a slice of it, find
    its experiences wherever later records moved them, also in a copy or
    pickle of the buffer made after the sample; any other buffer, or this
    one after a clear or load, refuses it). A copy or pickle of the whole
    batch keeps that, in any process; a copy of the array alone
    (``np.array(indices)``, ``indices.tolist()``, ``indices[mask]``, the
    array pickled by itself) is plain positions, read as the buffer holds
    them at the call: after records, other experiences."""

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

    # arrays as bytes, dtype and shape: a pickle of numpy 2 loads under numpy 1, and back (_portable.py)
    _PORTABLE_KEYS = ("embeddings", "mask", "fused", "pair_strengths", "rewards", "event_ids", "has_inputs", "inputs",
                      "indices", "weights")

    def __repr__(self) -> str:
        return _short_repr(self)

    def __len__(self) -> int:
        return len(self.rewards)

    def __eq__(self, other: object) -> bool:
        """Equal by value, as :class:`Experience`; the NaN rows of absent inputs equal themselves."""
        return equal_fields(self, other)

    __hash__ = None  # type: ignore[assignment]  # mutable and equal by value, as the dataclass made it

    def __getstate__(self) -> Dict[str, Any]:
        """Pickling and copying: the fields, and the buffer history its
        ``indices`` were sampled from. Unpickled (in this process or
        another, a Ray worker) or deep-copied, a batch's indices were a
        plain array, taken as positions now: after records moved them,
        ``update_priorities(batch.indices, ...)`` set other experiences'
        priorities without a word. Now they reach the batch's experiences in
        the buffer it was sampled from (or a copy of it), and any other
        buffer refuses them, as the original batch's."""
        state = {**self.__dict__, **slot_values(self)}  # a subclass's __slots__ too (lost, without a word)
        note = _noted(self.indices)
        if note is not None:
            state[_SAMPLED_FROM] = note
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        state = dict(self._portable_state(state))
        note = state.pop(_SAMPLED_FROM, None)
        set_attributes(self, state)
        if note is not None and isinstance(self.indices, np.ndarray):
            _note(self.indices, tuple(note))  # type: ignore[arg-type]


def _fixed(name: str, doc: str) -> property:
    """A buffer attribute set once, when the buffer is made (its value in
    ``__dict__``, so pickles of every version keep it as before): assigned
    later, the ring's arrays and positions no longer matched it. A larger
    ``capacity`` on a full buffer returned experiences never recorded and
    saved a file that ``load`` refused; ``capacity = 0`` made every call a
    ZeroDivisionError."""

    def read(self: "ExperienceBuffer") -> Any:
        return self.__dict__[name]

    def set_once(self: "ExperienceBuffer", value: Any) -> None:
        if name in self.__dict__:
            raise AttributeError(
                f"{name}: a buffer's {name} is fixed when it is made (its arrays, positions and files follow it); "
                f"expected a new ExperienceBuffer with that {name}, filled from this one with extend(...) of its batch()")
        self.__dict__[name] = value

    read.__doc__ = doc  # help() and the docs read the getter's
    return property(read, set_once, doc=doc)


class ExperienceBuffer(PortablePickle):
    """A fixed-capacity ring buffer of fusion experiences (thread-safe).

    Args:
        capacity: the most experiences kept; older ones are dropped.
        embed_dim: ``E``; taken from the first experience when ``None``.
        input_dims: per-modality input lengths (7 ints) to also keep the raw
            inputs, or ``None`` to keep embeddings only.
        seed: seeds the sampling generator (an int >= 0).

    Each is fixed once the buffer is made (assigning one is an
    ``AttributeError``), as a model's ``config`` is.
    """

    capacity = _fixed("capacity", "The most experiences kept.")
    embed_dim = _fixed("embed_dim", "``E``, or ``None`` until the first experience gives it.")
    input_dims = _fixed("input_dims", "The 7 input lengths kept with each experience, or ``None``.")
    seed = _fixed("seed", "The seed of the sampling generator.")

    # pickled (its __getstate__) with its arrays as bytes, dtype and shape and its generator as its state:
    # a pickle of numpy 2 loads under numpy 1, and back (_portable.py)
    _PORTABLE_KEYS = ("_arrays", "_rng")

    #: ``(embed_dim, input_dims)`` of the model whose fusions this buffer
    #: records (set by its ``experience`` setter), else None: :meth:`load`
    #: refuses a file of other dims, as that setter refuses such a buffer.
    _model_dims: Optional[Tuple[int, Tuple[int, ...]]] = None
    #: Experiences recorded and evicted so far, and the history those counts are of (:meth:`_stamp`);
    #: class defaults for a buffer pickled before them.
    _recorded = 0
    _evicted = 0
    _token = 0
    _lineage: Tuple[Tuple[int, int, int], ...] = ()

    def __init__(
        self,
        capacity: IntLike = 1000,
        *,
        embed_dim: Optional[IntLike] = None,
        input_dims: Optional[Sequence[IntLike]] = None,
        seed: IntLike = 0,
    ) -> None:
        self.capacity = as_positive_int(capacity, "capacity")
        if self.capacity >= 2**63:
            # Positions are int64: a file's capacity (checked against memory only as the buffer
            # grows) loaded, and saving or reading the buffer then failed in numpy's arithmetic.
            # shown_number: an int past 4,300 digits raised Python's own ValueError in the message's place
            raise TooLargeError(f"capacity: got {shown_number(self.capacity, str)}; a buffer that large cannot fit in "
                                "memory", "capacity")
        self.embed_dim = None if embed_dim is None else as_positive_int(embed_dim, "embed_dim")
        if input_dims is not None:
            # a 1-D array of ints as the model's config takes it (its entries are checked below as any ints)
            if isinstance(input_dims, np.ndarray) and input_dims.ndim == 1:
                input_dims = list(input_dims)
            if isinstance(input_dims, (str, bytes)) or not isinstance(input_dims, Sequence):
                raise TypeError(f"input_dims: expected 7 ints (one per modality) or None, got {describe(input_dims)}")
            if len(input_dims) != NUM_MODALITIES:
                raise ShapeError(f"input_dims: expected 7 entries (one per modality), got {len(input_dims)}", "input_dims")
            input_dims = tuple(as_positive_int(d, f"input_dims[{i}]") for i, d in enumerate(input_dims))
        self.input_dims = input_dims
        self.seed = as_seed(seed, "seed", below=None)
        self._lock = threading.RLock()
        _LIVE_BUFFERS.add(self)
        self._rng = np.random.Generator(np.random.PCG64(self.seed))
        self._size = 0
        self._next = 0
        self._arrays: Dict[str, np.ndarray] = {}
        self._recorded = 0  # experiences recorded so far
        self._evicted = 0  # experiences dropped from the front so far (positions moved down by as many)
        self._new_history()
        if self.embed_dim is not None:
            # no rows until the first experience (_reserve then allocates the first rows), as a rebuilt buffer:
            # a model makes its buffer up front, and 1,024 NaN-filled rows of a 2**18-wide WL modality took
            # 1 GiB of a model that never recorded (the first rows' size is still checked here)
            self._allocate(self.embed_dim, rows=0)

    # ---------------------------------------------------------------- storage
    def _allocate(self, embed_dim: int, check_capacity: bool = True, rows: Optional[int] = None) -> None:
        """Arrays of ``embed_dim`` for ``rows`` experiences (default: the
        first rows a buffer holds, ``min(capacity, _FIRST_ROWS)``); more are
        added as the buffer grows."""
        specs = _row_specs(int(embed_dim), self.input_dims)
        first = min(self.capacity, _FIRST_ROWS)
        _check_first_rows_fit(int(embed_dim), self.input_dims, first)
        if check_capacity:  # refused now, naming capacity, rather than when a growth fails after many appends
            check_fits_memory(self.capacity, _bytes_per_row(specs), "capacity")
        self._arrays = self._blank_arrays(specs, first if rows is None else rows)
        self.__dict__["embed_dim"] = int(embed_dim)  # the one change of it: None until the first experience

    @classmethod
    def _rebuilt(cls, capacity: int, embed_dim: Optional[int], input_dims: Optional[Sequence[int]], seed: int) -> "ExperienceBuffer":
        """An empty buffer for saved state (a checkpoint, a pickle, a Ray
        replica): its capacity was set where the state was saved, maybe on
        a machine with more memory, so it is checked against this one's only
        as the buffer grows. Checked up front, a state saved there could not
        be loaded here at all, whatever the buffer held. No rows are
        allocated: the state's experiences get theirs (:meth:`_fill`), and
        the first one recorded after them the rows a new buffer starts with
        (:meth:`_reserve`). The first 1,024 rows, allocated (and their
        inputs filled with NaN) up front, let a forged file of 2 KB, an empty
        buffer of wide ``input_dims``, take gigabytes (up to this machine's
        memory) when it was loaded."""
        buf = cls(capacity, input_dims=input_dims, seed=seed)
        if embed_dim is not None:
            buf._allocate(as_positive_int(embed_dim, "embed_dim"), check_capacity=False, rows=0)
        return buf

    def _blank_arrays(self, specs: Mapping[str, TensorSpec], rows: int) -> Dict[str, np.ndarray]:
        """Empty rows: zeros, event id -1, NaN inputs. Rows beyond this
        machine's memory are refused before numpy maps them lazily (the
        process would be killed when they are touched)."""
        check_fits_memory(rows, _bytes_per_row(specs), "capacity")
        try:
            arrays = {name: np.zeros((rows,) + s.shape, s.dtype) for name, s in specs.items()}
        except (MemoryError, ValueError):  # ValueError: numpy's "array is too big"
            row_bytes = _bytes_per_row(specs)
            raise TooLargeError(
                f"capacity: {rows:,} experiences of {row_bytes:,} bytes each "
                f"({rows * row_bytes:,} bytes) cannot be allocated; expected a smaller capacity",
                "capacity",
            ) from None
        arrays["event_ids"][:] = -1
        for name in arrays:
            if name.startswith("inputs."):
                arrays[name][:] = np.nan
        return arrays

    def _reserve(self, rows: int, exact: bool = False) -> None:
        """Room for ``rows`` rows (at most ``capacity``), doubling the arrays
        as needed (lock held). Rows are only ever added at the end until the
        ring is first full, so the held ones keep their places. ``exact``:
        no more than ``rows`` (a saved state's, which costs no more memory
        than its file holds). Arrays smaller than a new buffer's first rows
        (a saved state's) grow as a new buffer's would: to those first rows,
        then to twice as many."""
        held = len(self._arrays["rewards"])
        if rows <= held:
            return
        first = min(self.capacity, _FIRST_ROWS)
        size = rows if exact else first if rows <= first else min(self.capacity, max(rows, 2 * max(held, first)))
        grown = self._blank_arrays(_row_specs(self.embed_dim, self.input_dims), size)
        for name, arr in self._arrays.items():
            grown[name][:held] = arr
        self._arrays = grown  # one assignment: an interrupted growth changes nothing

    def _slots(self, positions: Optional[np.ndarray] = None) -> np.ndarray:
        """Physical slots of logical positions (0 = oldest)."""
        oldest = (self._next - self._size) % self.capacity
        if positions is None:
            positions = np.arange(self._size)
        return (oldest + positions) % self.capacity

    def _held(self, name: str) -> np.ndarray:
        """The array ``name``'s rows of the experiences held, oldest first:
        ``self._arrays[name][self._slots()]``, from one or two slices (a view
        when the ring has not wrapped), not a gather by an index array of
        every row (lock held; not to be written to)."""
        arr = self._arrays[name]
        oldest = (self._next - self._size) % self.capacity
        if oldest + self._size <= len(arr):
            return arr[oldest : oldest + self._size]
        if len(arr) == self.capacity:  # wrapped: the oldest rows at the end, the newest from slot 0
            return np.concatenate((arr[oldest:], arr[: oldest + self._size - self.capacity]))
        return arr[self._slots()]

    def __len__(self) -> int:
        return self._size

    @property
    def num_experiences(self) -> int:
        """Number of experiences held (at most ``capacity``)."""
        return self._size

    def clear(self) -> None:
        """Drops every experience (capacity and dims are kept)."""
        with self._lock:
            self._size = 0
            self._next = 0
            self._new_history()  # positions sampled before name nothing held
            for name, arr in self._arrays.items():
                arr[...] = np.nan if name.startswith("inputs.") else (-1 if name == "event_ids" else 0)

    # ----------------------------------------------------------------- append
    def append(self, experience: Experience) -> None:
        """Records one experience (O(1))."""
        if not isinstance(experience, Experience):
            raise TypeError(f"experience: expected Experience, got {type(experience).__name__}")
        x = experience
        if isinstance(x.reward, (bool, np.bool_)):  # named here: extend would name rewards
            raise InvalidTypeError(f"experience.reward: expected a real number, got {type(x.reward).__name__}", "experience.reward")
        if isinstance(x.event_id, (bool, np.bool_)):  # and event_ids
            raise InvalidTypeError(f"experience.event_id: expected an int, got {type(x.event_id).__name__}", "experience.event_id")
        inputs = None
        if x.inputs is not None:
            if isinstance(x.inputs, (str, bytes)) or not isinstance(x.inputs, Sequence) or len(x.inputs) != NUM_MODALITIES:
                raise ShapeError(
                    f"experience.inputs: expected 7 entries (None where absent), got {described_entries(x.inputs)}",
                    "experience.inputs",
                )
            inputs = [None if v is None else _one_row(v, f"experience.inputs[{m}]") for m, v in enumerate(x.inputs)]
        dims = (self.embed_dim, self.input_dims)
        try:
            self.extend(
                embeddings=_one_row(x.embeddings, "experience.embeddings"),
                mask=_one_row(x.mask, "experience.mask"),
                fused=_one_row(x.fused, "experience.fused"),
                pair_strengths=_one_row(x.pair_strengths, "experience.pair_strengths"),
                rewards=[x.reward],
                event_ids=[x.event_id],
                inputs=inputs,
            )
        except (ValueError, TypeError):
            # extend refused it (and wrote nothing), naming its own arguments and a batch the user
            # never made ("rewards: row 0 holds NaN", "embeddings: expected shape (n, 7, E), got
            # (1, 2, 7, 4)"): the experience's fields checked by themselves name the one at fault.
            # Only once refused, so that a valid append costs no second check; and only when the
            # buffer's dims are still those extend checked against (else another thread loaded it,
            # and extend's error says so). An embed_dim that was None is the first record's, maybe
            # another thread's that won the race to it: checked against it, the loser's error names
            # experience.embeddings (it named extend's `embeddings`).
            embed_dim, input_dims = self.embed_dim, self.input_dims
            if input_dims == dims[1] and dims[0] in (None, embed_dim):
                self._check_experience(x)
            raise

    def _check_experience(self, x: Experience) -> None:
        """The error naming ``x``'s field (``experience.reward``, ``experience.fused[2]``)
        that makes :meth:`append` refuse it, if any of them does by itself."""
        reward = _one_value(x.reward, "experience.reward", "one number")
        refuse_bools(reward, "experience.reward")
        _field(reward, "experience.reward", (), "()")
        _event_ids(_one_value(x.event_id, "experience.event_id", "one integer")[None], 1, "experience.event_id")
        embeddings = _field(x.embeddings, "experience.embeddings", None, "(7, E)", finite=False)  # present slots, below
        e = embeddings.shape[1] if embeddings.ndim == 2 else 0
        if embeddings.ndim != 2 or embeddings.shape[0] != NUM_MODALITIES or e == 0:
            raise ShapeError(
                f"experience.embeddings: expected shape (7, E) with E >= 1, got {embeddings.shape}", "experience.embeddings"
            )
        embed_dim = self.embed_dim
        if embed_dim is not None and e != embed_dim:
            raise ShapeError(
                f"experience.embeddings: expected shape (7, {embed_dim}) (the buffer's embed_dim), got {embeddings.shape}",
                "experience.embeddings",
            )
        try:
            mask = _one_row(x.mask, "experience.mask")[0]  # a masked array refused, naming experience.mask
        except ValueError as exc:  # ragged rows: numpy's error named no argument
            if isinstance(exc, InvalidValueError):
                raise
            raise InvalidValueError(f"experience.mask: could not be read as 7 booleans ({exc})", "experience.mask") from None
        if mask.shape != (NUM_MODALITIES,):
            raise ShapeError(f"experience.mask: expected shape (7,), got {mask.shape}", "experience.mask")
        mask = as_mask(mask[None], 1, "experience.mask")[0]
        present = _field(np.where(mask[:, None], embeddings, 0), "experience.embeddings", None, "(7, E)")  # anything where absent
        refuse_non_unit_embeddings(present.astype(np.float32)[None], mask[None], "experience.embeddings", "experience.mask",
                                   one_row=True)
        _field(x.fused, "experience.fused", (e,), f"({e},)")
        pairs = _field(x.pair_strengths, "experience.pair_strengths", (NUM_MODALITIES,) * 2, "(7, 7)", finite=False)
        present_pairs = _field(np.where(mask[:, None] & mask[None, :], pairs, 0), "experience.pair_strengths", None, "(7, 7)")
        _refuse_strengths_beyond_unit(present_pairs.astype(np.float32), "experience.pair_strengths", present_pairs, one_row=True)
        if x.inputs is not None:
            input_dims = self.input_dims
            if input_dims is None:
                raise InvalidValueError(
                    "experience.inputs: this buffer keeps embeddings only (created without input_dims); expected None",
                    "experience.inputs",
                )
            for m, (v, d) in enumerate(zip(x.inputs, input_dims)):
                name = f"experience.inputs[{m}]"
                if v is None:
                    if mask[m]:
                        modality = MODALITY_NAMES[m]
                        raise InvalidValueError(
                            f"{name}: None, but experience.mask marks {modality} present; expected an array of "
                            f"its {d} input values (inputs[{modality!r}])", name,
                        )
                else:
                    arr = _field(v, name, (d,), f"({d},)", finite=bool(mask[m]))
                    if mask[m] and arr.dtype.kind == "f":
                        with np.errstate(under="ignore"):
                            refuse_float32_underflow(arr, arr.astype(np.float32), name, None, per_column=False)

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
        """Records ``n`` experiences at once: ``embeddings [n, 7, E]``
        (of norm at most 1 where the mask marks the modality present: the unit
        vectors the model's encoders give and its objectives assume, shorter
        only for input near zero; an absent slot
        may hold anything, NaN included, and is recorded as zeros, as the
        model records it), ``mask [n, 7]``, ``fused [n, E]``, ``pair_strengths [n, 7, 7]``
        (likewise: a pair with an absent modality may hold anything, recorded as 0;
        a present pair lies in [0, 1], as the model's binder gives them),
        ``rewards [n]``, ``event_ids [n]`` (integers, or whole floats where
        the float holds every integer: below 2**53 in magnitude for float64,
        2**24 for float32; default -1), ``inputs``
        (7 entries of ``[n, d_m]`` or ``None``; finite where the mask marks the
        modality present). Validates everything before writing anything.
        Rows are paired by position: data frames (or Series) among the
        arguments must share one index, as ``model.fit`` requires of its
        inputs (frames of the same samples in another order are refused,
        not paired wrongly)."""
        refuse_unpaired_frames(_extend_args(mask, fused, rewards, event_ids, inputs))
        if not isinstance(embeddings, np.ndarray):
            embeddings = as_real_array(embeddings, "embeddings")  # once: its shape, then the float32 view below
        shape = embeddings.shape
        if len(shape) != 3 or shape[1] != NUM_MODALITIES:
            raise ShapeError(f"embeddings: expected shape (n, 7, E), got {shape}", "embeddings")
        n, e = shape[0], shape[2]
        if e == 0:  # recorded, the buffer took embed_dim=0, and the file its save wrote never loaded
            raise ShapeError(f"embeddings: expected shape (n, 7, E) with E >= 1, got {shape}: E is 0", "embeddings")
        staged_bytes = n * _row_bytes_of(e, self.input_dims if inputs is not None else None)
        if staged_bytes > memory_budget():
            # a broadcast view (or a memory map) can stand for more rows than memory holds: the float32
            # copies below raised numpy's MemoryError naming no argument, or the OS killed the process
            raise TooLargeError(
                f"embeddings: {n:,} experiences take {staged_bytes:,} bytes to check and record, more than this "
                f"machine's memory ({memory_budget():,} bytes); expected fewer rows (a buffer keeps its newest "
                f"{self.capacity:,})", "embeddings",
            )
        mask_arr = as_mask(mask, n)
        emb = _embeddings32(embeddings, shape, mask_arr)
        if self.embed_dim is not None and e != self.embed_dim:
            raise ShapeError(f"embeddings: expected E={self.embed_dim} (the buffer's embed_dim), got {e}", "embeddings")
        # where they are recorded: refused only when trained on, the buffer already held them
        refuse_non_unit_embeddings(emb, mask_arr, "embeddings", "mask")
        staged = {
            "embeddings": emb,
            "mask": mask_arr,
            "fused": _float32(fused, "fused", (n, e)),
            "pair_strengths": _pair_strengths32(pair_strengths, n, mask_arr),
            "rewards": _float32(rewards, "rewards", (n,), numbers_only=True),
            "event_ids": _event_ids(np.full(n, -1) if event_ids is None else event_ids, n),
        }
        staged["priorities"] = np.abs(staged["rewards"]).astype(np.float64) + PRIORITY_EPS
        staged["has_inputs"] = np.full(n, inputs is not None)
        input_dims = self.input_dims  # the dims checked against, checked again under the lock
        if inputs is not None:
            if input_dims is None:
                raise InvalidValueError("inputs: this buffer keeps embeddings only (created without input_dims)", "inputs")
            if isinstance(inputs, (str, bytes)) or not isinstance(inputs, Sequence) or len(inputs) != NUM_MODALITIES:
                raise ShapeError(f"inputs: expected 7 entries (None where absent), got {described_entries(inputs)}", "inputs")
            for m, (name, d) in enumerate(zip(MODALITY_NAMES, input_dims)):
                if inputs[m] is None:  # not staged: _write writes NaN in the inputs it is given none of
                    if mask_arr[:, m].any():
                        raise InvalidValueError(f"inputs[{name!r}]: missing, but the mask marks {name} present", f"inputs[{name!r}]")
                else:
                    # features the model standardises, read as encode and fit read them: a column (the
                    # one row: the vector, as ModalFeatures reads one) whose every value float32 cannot
                    # hold is refused; it was recorded as zeros without a word
                    staged[f"inputs.{name}"] = _float32(inputs[m], f"inputs[{name!r}]", (n, d), rows=mask_arr[:, m],
                                                        features=n > 1)
        if n == 0:
            return
        with self._lock:
            if not self._arrays:
                self._allocate(e)
            elif e != self.embed_dim:  # another thread allocated for another E since the check above
                raise ShapeError(f"embeddings: expected E={self.embed_dim} (the buffer's embed_dim), got {e}", "embeddings")
            if inputs is not None and self.input_dims != input_dims:
                # Another thread's load() replaced the buffer since the check above: written, the rows
                # claimed inputs a buffer without them drops, or tore on arrays of other widths.
                raise ShapeError(
                    f"inputs: expected arrays of the buffer's input_dims {self.input_dims} (another thread loaded it "
                    f"while these were checked against {input_dims}); nothing was recorded", "inputs",
                )
            self._write(staged, n)

    def _write(self, staged: Dict[str, np.ndarray], n: int) -> None:
        """Writes ``n`` validated rows after the newest (lock held)."""
        overflow = max(0, n - self.capacity)  # the first rows, as if written and then evicted
        if overflow:  # only the newest `capacity` survive
            staged = {k: v[-self.capacity :] for k, v in staged.items()}
            n = self.capacity
        start = self._next
        if start + n > len(self._arrays["rewards"]):  # only until the arrays reach capacity
            self._reserve(start + n)
        slots = slice(start, start + n) if start + n <= self.capacity else (start + np.arange(n)) % self.capacity
        # The counts after the write, worked out before any slot is written: worked out after (calls of max and
        # min, where a Ctrl-C may land), an interrupt there left the slots holding the new rows under the old
        # counts, so the buffer held the newest of the new rows as if they were the old experiences (their
        # places, lineage and number), the others lost, without a word.
        evicted = self._evicted + max(0, self._size + n - self.capacity) + overflow
        after = (int((start + n) % self.capacity), min(self._size + n, self.capacity), evicted, self._recorded + n + overflow)
        written = 0  # fields whose write has begun: none, and an interrupt has changed nothing
        try:
            for name, arr in self._arrays.items():
                if name in staged:
                    written += 1  # counted before: a write may end by raising, the field written (or half)
                    arr[slots] = staged[name]
                elif name.startswith("inputs."):
                    written += 1
                    arr[slots] = np.nan
        except BaseException:
            if written:
                # Interrupted (Ctrl-C between two fields): the slots written may hold some fields of
                # the new rows and some of the old ones. Drop the old experiences they held (the
                # oldest, which this write was evicting) so that no torn row is ever read.
                kept = min(self._size, self.capacity - n)
                self._evicted += self._size - kept  # not recorded: _recorded stays
                self._size = kept
            raise
        # counted once written, in one assignment (no call between the last field written and it)
        self._next, self._size, self._evicted, self._recorded = after

    # ------------------------------------------------------------------ reading
    def batch(self, positions: Optional[Any] = None) -> ExperienceBatch:
        """The experiences at ``positions`` (0 = oldest; default all) as
        arrays. Given a batch's own ``indices`` (or a slice of them), its
        experiences wherever records since moved them, as
        :meth:`update_priorities` finds them (an ``IndexError`` when records
        have evicted some of them; refused when they are another buffer's);
        other positions (a list, a copy) are positions now. ``positions``
        may be the batch itself."""
        positions = _batch_indices(positions)
        with self._lock:
            if positions is None:
                pos = np.arange(self._size)
            else:
                pos = _integer_positions(positions).reshape(-1)
                # a batch's indices were taken as positions now: after records, other experiences without a word
                pos, held = self._todays_positions(pos, positions)
                if held is not None:
                    gone = np.flatnonzero(~held)
                    raise IndexError(
                        f"positions: these are a batch's indices, and records since it was sampled have evicted "
                        f"{len(gone)} of its {len(pos)} experiences (at {gone[:5].tolist()}"
                        f"{', ...' if len(gone) > 5 else ''}); expected those still held"
                    )
            _check_positions(pos, self._size)
            return self._gather(pos.astype(np.int64), np.ones(len(pos), np.float32))

    def _gather(self, pos: np.ndarray, weights: np.ndarray) -> ExperienceBatch:
        if not self._arrays:
            raise InvalidValueError("buffer: it is empty and has no dimensions yet; record an experience first", "buffer")
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
            indices=self._stamp(pos),
            weights=weights,
        )

    def _new_history(self, lineage: Tuple[Tuple[int, int, int], ...] = ()) -> None:
        """A new history of positions (a new buffer, a clear, a load, a
        copy): the indices of batches sampled before are another history's.
        ``lineage``: the ``(token, recorded, evicted)`` of the histories
        this one continues (a copy's: its original's, as it was copied), all
        of them: a copy of a copy of ... at any depth recognises the batches
        of every buffer it descends from (the last 8 were kept, and a batch
        of the 9th ancestor back was refused as "another buffer's")."""
        self._token = int.from_bytes(os.urandom(8), "little")  # random: unique also among unpickled buffers
        self._lineage = tuple(lineage)

    def _stamp(self, pos: np.ndarray) -> np.ndarray:
        """``pos`` (a batch's ``indices``), noted with this buffer's history
        and its records and evictions so far (lock held):
        :meth:`update_priorities` given this very array moves its positions
        to where its experiences are then (records made meanwhile evicted
        the oldest, and every position moved down), also in a copy of the
        buffer made after the sample, and refuses it in any other buffer (or
        after a clear or load), whose rows it does not name. Noted by the
        array's id, for as long as the array lives (a weak reference), in one
        registry of the process: a buffer must recognise the indices of
        another buffer's batches too, to refuse them."""
        return _note(pos, (self._token, self._recorded, self._evicted))

    def _todays_positions(self, pos: np.ndarray, given: Any) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        """``pos`` as positions now, when ``given`` is a batch's ``indices``
        (:meth:`_stamp`), with the mask of those still held (``None``: all);
        lock held. The indices of a batch of another history are refused:
        taken as positions now, their priorities went to other experiences
        than the batch's without a word."""
        note = _noted(given)
        if note is None:
            return pos, None
        token, recorded, evicted = note
        if token != self._token:
            fork = next((f for f in reversed(self._lineage) if f[0] == token), None)
            if fork is None:
                raise InvalidValueError(
                    "positions: these are the indices of a batch sampled from another buffer, or from this one "
                    "before a clear() or load() (a buffer read from a file counts as another: files keep no "
                    "record of samples); they name that buffer's experiences, not this one's; expected the "
                    "indices of a batch sampled from this buffer, or positions as it holds them now (a copy: "
                    "np.array(indices))", "positions",
                )
            if recorded > fork[1] or evicted > fork[2]:
                raise InvalidValueError(
                    "positions: these are the indices of a batch sampled from the buffer this one was copied from, "
                    "after the copy was made, when it held experiences this one does not; expected the indices of "
                    "a batch sampled from this buffer, or positions as it holds them now (a copy: "
                    "np.array(indices))", "positions",
                )
        moved = pos - (self._evicted - evicted)
        held = moved >= 0
        return moved, (None if held.all() else held)

    def __getitem__(self, position: int) -> Experience:
        if not is_int(position):
            raise InvalidTypeError(f"position: expected an int, got {type(position).__name__}", "position")
        position = exact_int(position)  # a 0-d array too: the int it holds
        with self._lock:
            if not -self._size <= position < self._size:  # else the error named `positions`, shifted by the size
                held = f"an int in [-{self._size}, {self._size})" if self._size else "none: the buffer is empty"
                raise IndexError(f"position: expected {held}, got {position}")
            if position < 0:
                position += self._size
            return _experience(self.batch([position]), 0)

    def __iter__(self) -> Iterator[Experience]:
        """Oldest first: the experiences held when iteration starts."""
        with self._lock:
            snapshot = self.batch() if self._size else None
        for i in range(0 if snapshot is None else len(snapshot)):
            yield _experience(snapshot, i)

    # ----------------------------------------------------------------- sampling
    def sample(
        self,
        batch_size: IntLike,
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
        ``w_i = (N P(i))^-beta / max_j (N P(j))^-beta`` in (0, 1] (1 for the
        least likely experience), float32. Both are computed in float64 from
        ``log p``, so any finite ``alpha, beta >= 0`` gives finite
        probabilities and weights; a weight below float32's smallest normal
        number (about 1.2e-38: priorities spanning many orders of magnitude,
        or a huge ``alpha * beta``) is raised to it rather than rounded to 0,
        so no drawn experience weighs nothing. ``alpha`` and ``beta`` are checked also when uniform
        (they are then unused). Without ``replace=True`` no experience is
        drawn twice, so ``batch_size`` may not exceed what the buffer holds.
        """
        if not is_int(batch_size):  # a wrong type: a TypeError, as the constructor's capacity
            raise wrong_type("batch_size", "a positive int", batch_size)
        # a numpy uint64 would wrap in the size check below; a 0-d array is the int it holds
        batch_size = exact_int(batch_size)
        if batch_size <= 0:
            raise InvalidValueError(f"batch_size: expected a positive int, got {shown_number(batch_size)}", "batch_size")
        # "False" would be true: drawn with replacement, or by priority, without a word
        prioritized, replace = check_flag(prioritized, "prioritized"), check_flag(replace, "replace")
        # Checked even when uniform: sample(n, alpha=-1) or alpha="0.6" (prioritized=True forgotten) was a
        # uniform batch without a word.
        alpha = as_finite_float(alpha, "alpha", lambda v: v >= 0, "a finite number >= 0")
        beta = as_finite_float(beta, "beta", lambda v: v >= 0, "a finite number >= 0")
        with self._lock:
            n = self._size
            if n == 0:
                raise InvalidValueError("buffer: cannot sample from an empty buffer", "buffer")
            if not replace and batch_size > n:
                raise InvalidValueError(
                    f"batch_size: {batch_size} is more than the {n} experiences held; pass replace=True", "batch_size"
                )
            # With replacement nothing else bounds it: refuse before the generator
            # draws (its state stays) what numpy would fail on or the OS kill for.
            row_bytes = 16 + sum(a[0].nbytes for a in self._arrays.values())  # + position, weight
            check_fits_memory(batch_size, row_bytes, "batch_size")
            if not prioritized:
                pos = self._rng.choice(n, size=batch_size, replace=replace)
                return self._gather(np.asarray(pos, np.int64), np.ones(batch_size, np.float32))
            probs, log_p = _prioritised(self._held("priorities"), alpha)
            possible = int(np.count_nonzero(probs))
            if not replace and batch_size > possible:
                raise InvalidValueError(
                    f"alpha: {alpha!r} leaves {possible} experiences a probability above 0, fewer than "
                    f"batch_size={batch_size}; lower alpha or pass replace=True", "alpha",
                )
            pos = np.asarray(self._rng.choice(n, size=batch_size, replace=replace, p=probs), np.int64)
            return self._gather(pos, _importance_weights(log_p, pos, alpha, beta))

    def update_priorities(self, positions: Any, priorities: Any) -> None:
        """Sets the sampling priority (> 0) of the experiences at ``positions``
        (0 = oldest, as in ``ExperienceBatch.indices``). A position given more
        than once (a batch drawn with ``replace=True``) takes the last of its
        priorities, as a loop over the pairs would.

        Given a batch's own ``indices`` (that array or a slice of it, also
        of a copy or pickle of the batch), the priorities reach that batch's
        experiences even when experiences recorded since have evicted the
        oldest and moved every position down; those of its experiences
        evicted meanwhile are skipped. So they do in a copy or pickle of the
        buffer made after the sample, or of a copy of it, at any depth (it
        holds the same experiences). The indices of a batch sampled from
        another buffer, from this one before a :meth:`clear` or :meth:`load`
        (a buffer read from a file, ``from_file`` or a model's ``load``, is
        another buffer), or from this one's original after it was copied
        and recorded more, are refused (``InvalidValueError`` naming
        ``positions``): they name other experiences. Other positions (a
        list, a copy of the array such as ``np.array(batch.indices)``,
        ``batch.indices.tolist()`` or ``batch.indices[mask]``, the array
        pickled without its batch) are positions as the buffer is now: once
        records have moved the batch's experiences, they name others, so
        pass the batch's own array (and all its priorities) when records
        may have been made since the sample. ``positions`` may be the
        batch itself (``update_priorities(batch, td)``): the form to send
        to another process, such as a Ray actor holding the buffer, where
        the array alone arrives as positions now.
        """
        # paired by position: Series of the same experiences in other orders gave each another's priority unsaid
        refuse_unpaired_frames((("positions", positions), ("priorities", priorities)))
        positions = _batch_indices(positions)
        pos = _integer_positions(positions)
        pri = as_real_array(priorities, "priorities")
        refuse_bools(pri, "priorities")
        refuse_beyond_memory(pri, "priorities", np.float64)
        if pos.shape != pri.shape or pos.ndim != 1:
            raise ShapeError(
                f"positions, priorities: expected equal 1-D shapes, got {pos.shape} and {pri.shape}", "priorities"
            )
        with np.errstate(over="ignore"):  # a long double beyond float64: refused below, without numpy's warning
            given, pri = pri, pri.astype(np.float64)
        bad = ~(np.isfinite(pri) & (pri > 0))  # in float64, as kept: a long double 1e-4000 is 0 there, 1e4000 inf
        if bad.any():
            # the values as given: float64's copy showed a long double beyond it as inf
            with np.errstate(invalid="ignore"):
                made = (np.isfinite(given[bad]) & (given[bad] > 0)).any()  # good as given, 0 or inf in float64
            said = ", which float64, the precision priorities are kept in, makes 0 or inf" if made else ""
            raise InvalidValueError(
                f"priorities: expected finite numbers > 0, got {shown_floats(given[bad])}{said}", "priorities")
        with self._lock:
            # A batch's own indices (as sampled) reach its experiences, wherever records since moved them.
            pos, held = self._todays_positions(pos, positions)
            if held is not None:  # evicted since: gone, and their priorities with them
                pos, pri = pos[held], pri[held]
            _check_positions(pos, self._size)
            if not pos.size:  # nothing to set (a buffer that never recorded has no priorities array: a KeyError)
                return
            pos = pos.astype(np.int64)
            # numpy leaves the order of a fancy assignment to repeated indices
            # unspecified; keep each position's last priority explicitly.
            if pos.size > 1:
                _, first_from_end = np.unique(pos[::-1], return_index=True)
                last = pos.size - 1 - first_from_end
                pos, pri = pos[last], pri[last]
            self._arrays["priorities"][self._slots(pos)] = pri

    # ------------------------------------------------------------- persistence
    def save(self, path: PathLike) -> None:
        """Writes the buffer (experiences oldest first, priorities, generator
        state) to a safetensors file, atomically, with a checksum of its
        contents that :meth:`load` verifies."""
        check_write_target(path)  # before copying the experiences: a bad path fails at once

        def write() -> None:
            tensors, meta = self.state()
            write_tagged_safetensors(path, tensors, FILE_FORMAT, meta)

        call_saving(path, write)  # from here: the interpreter's exit waits for it

    def load(self, path: PathLike) -> None:
        """Replaces this buffer's contents with the file's, its capacity
        included (records past the file's capacity then drop the oldest, as
        in the buffer saved; a model's ``config.buffer_size`` is the
        capacity of the buffer it makes, not of one it loads). A missing,
        truncated, corrupt (checksum mismatch), foreign or invalid file
        raises (:class:`~grapheme_multimodal.CheckpointError`; a missing one
        ``FileNotFoundError``) and leaves the buffer as it was. So does, for
        a model's buffer (``model.experience``), a file of an ``embed_dim``
        or ``input_dims`` that model cannot record into, as assigning such
        a buffer to ``model.experience`` does."""
        path = as_path(path)  # an os.PathLike that is not a Path (os.DirEntry) was named in errors by its repr
        other = ExperienceBuffer.from_file(path)
        # The model's dims checked under the lock: a model given this buffer meanwhile
        # (its experience setter) got the file's rows of another embed_dim.
        with self._lock:
            self._check_model_dims(
                other, f"path: {str(path)!r} holds", "path", "ExperienceBuffer.from_file(path) reads it as a buffer of its own"
            )
            if self._model_dims is not None and other.embed_dim is None:  # a file of a buffer that never recorded:
                # the model's buffer keeps its embed_dim, and (as a new buffer) no rows until it records
                other._allocate(self._model_dims[0], check_capacity=False, rows=0)
            kept = ("_lock", "_model_dims")
            # other's history too (a new one): batches sampled before the load are refused
            self.__dict__.update({k: v for k, v in other.__dict__.items() if k not in kept})

    def _check_model_dims(self, other: "ExperienceBuffer", source: str, arg: str, remedy: str) -> None:
        """Refuses ``other`` (read from ``arg``, which ``source`` names)
        when this buffer records a model's fusions and ``other``'s dims are
        not that model's (or None): put in its place, the model's next
        record and ``compute_loss`` failed on shapes the user never gave."""
        if self._model_dims is None:
            return
        for name, own in zip(("embed_dim", "input_dims"), self._model_dims):
            given = getattr(other, name)
            if given is not None and given != own:
                raise CheckpointError(
                    f"{source} a buffer of {name}={given}, which this model's buffer cannot take "
                    f"(it records the model's fusions); expected {name}={own} or None ({remedy})", arg,
                )

    @classmethod
    def from_file(cls, path: PathLike) -> "ExperienceBuffer":
        """A new buffer read from a file written by :meth:`save`, checked
        exactly as :meth:`append` checks new experiences."""
        path = as_path(path)  # an os.PathLike that is not a Path (os.DirEntry) was named in errors by its repr
        tensors, meta = read_tagged_safetensors(path, FILE_FORMAT, cls.expected_tensors)
        try:
            return cls.from_state(tensors, meta)
        except TooLargeError as exc:
            raise TooLargeError(f"path: {str(path)!r}: {exc}", exc.arg) from None
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"path: {str(path)!r} is not a valid experience buffer file: {exc}", "path") from None

    def state(self) -> Tuple[Dict[str, np.ndarray], Dict[str, Any]]:
        """``(tensors, metadata)``: everything :meth:`from_state` rebuilds the
        buffer from (experiences oldest first; JSON-able metadata)."""
        with self._lock:
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

    @staticmethod
    def expected_tensors(meta: Mapping[str, Any], field: str = "") -> Dict[str, TensorSpec]:
        """``{name: (dtype, shape)}`` of the tensors :meth:`state` writes for
        this metadata (checked against a file before its data is read).
        ``field`` prefixes the names of bad metadata fields in errors (a
        checkpoint's ``"experience."``: its config has an ``embed_dim`` too)."""
        _check_state_keys(meta)
        e = meta["embed_dim"]
        if e is None:
            return {}
        dims = meta["input_dims"]
        size = meta["size"]
        if isinstance(size, bool) or not isinstance(size, int):
            raise InvalidValueError(f"{field}size: expected an int, got {size!r}", f"{field}size")
        if isinstance(e, bool) or not isinstance(e, int) or e <= 0:
            raise InvalidValueError(f"{field}embed_dim: expected a positive int, got {e!r}", f"{field}embed_dim")
        # > 0: a file's input_dims of -1 or 0 was refused as "tensor 'inputs.visual': expected float32 of
        # shape (3, -1)", blaming a tensor for its metadata and naming a shape no tensor can have
        if dims is not None and (not isinstance(dims, (list, tuple)) or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in dims)):
            raise InvalidValueError(
                f"{field}input_dims: expected a list of positive ints or None, got {dims!r:.200}", f"{field}input_dims"
            )
        capacity = meta["capacity"]
        # before size is compared with it: a capacity of "10" or None was "'<=' not supported between instances of
        # 'int' and 'str'", and one of -1 or True blamed the size ("an int in [0, -1]")
        capacity = as_positive_int(capacity, f"{field}capacity")
        if not 0 <= size <= capacity:
            # "size: expected an int in [0, capacity], got 20" named neither the buffer nor its capacity
            raise InvalidValueError(
                f"{field}size: expected the number of experiences the buffer holds, an int in [0, {capacity!r}] "
                f"(its {field}capacity), got {size!r}", f"{field}size",
            )
        return {name: TensorSpec(s.dtype, (size,) + s.shape) for name, s in _row_specs(e, dims).items()}

    @classmethod
    def from_state(cls, tensors: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> "ExperienceBuffer":
        """Inverse of :meth:`state`. The experiences are checked as
        :meth:`append` checks them (finite values, 0/1 masks, integer event
        ids, inputs where marked present) and the priorities are finite and
        > 0; anything else is an :class:`~grapheme_multimodal.InvalidValueError`
        (or another ``ValueError``) naming the field."""
        try:
            _check_state_keys(meta)
            buf = cls._rebuilt(meta["capacity"], meta["embed_dim"], meta["input_dims"], meta["seed"])
            size = meta["size"]
            if not is_int(size) or not 0 <= size <= buf.capacity:
                raise InvalidValueError(
                    f"size: expected the number of experiences the buffer holds, an int in [0, {buf.capacity}] "
                    f"(its capacity), got {size!r}", "size",
                )
            size = int(size)
            if size and buf.embed_dim is None:
                raise InvalidValueError(f"embed_dim: None, but the buffer holds {size} experiences", "embed_dim")
            if size:
                buf._fill(tensors, size)
            elif tensors and buf.embed_dim is None:
                raise InvalidValueError(f"tensors: expected none for an empty buffer without dims, got {sorted_names(tensors)[:5]}", "tensors")
            buf._rng.bit_generator.state = _checked_rng_state(meta["rng_state"])
        except KeyError as exc:
            raise InvalidValueError(f"inconsistent experience buffer state (missing {exc})", "state") from None
        except (TypeError, ValueError, OverflowError) as exc:  # OverflowError: numpy's, for a generator state beyond 64/128 bits
            if isinstance(exc, TooLargeError):
                raise
            raise InvalidValueError(f"inconsistent experience buffer state ({exc})", "state") from None
        return buf

    def _fill(self, tensors: Mapping[str, Any], size: int) -> None:
        """Checks ``tensors`` (``size`` experiences, oldest first) as
        :meth:`extend` checks its arguments and copies them in."""
        expected = set(self._arrays)
        if set(tensors) != expected:
            raise InvalidValueError(
                f"tensors: missing {sorted(expected - set(tensors))}, unexpected {sorted_names(set(tensors) - expected)}", "tensors"
            )
        for name, arr in self._arrays.items():
            t = tensors[name]
            if not isinstance(t, np.ndarray) or t.dtype != arr.dtype or t.shape != (size,) + arr.shape[1:]:
                raise InvalidValueError(
                    f"tensor {name!r}: expected {arr.dtype} of shape {(size,) + arr.shape[1:]}, got {describe(t)}", name
                )
            if t.dtype == np.bool_ and (t.view(np.uint8) > 1).any():
                raise InvalidValueError(f"tensor {name!r}: expected booleans stored as 0/1 bytes", name)
        mask = tensors["mask"]
        for name in ("embeddings", "fused", "pair_strengths", "rewards"):
            _check_finite(tensors[name], name)
        pri = tensors["priorities"]
        if not (np.isfinite(pri) & (pri > 0)).all():
            row = int(np.flatnonzero(~(np.isfinite(pri) & (pri > 0)))[0])
            raise InvalidValueError(f"priorities: row {row} is {pri[row]}; expected finite numbers > 0", "priorities")
        if self.input_dims is None and tensors["has_inputs"].any():  # as extend refuses inputs here
            row = int(np.flatnonzero(tensors["has_inputs"])[0])
            raise InvalidValueError(
                f"has_inputs: row {row} claims inputs, but the buffer keeps none (input_dims None); expected False", "has_inputs"
            )
        if self.input_dims is not None:
            for m, name in enumerate(MODALITY_NAMES):
                present = mask[:, m] & tensors["has_inputs"]
                _check_finite(tensors[f"inputs.{name}"][present], f"inputs[{name!r}]", np.flatnonzero(present))
        self._reserve(size, exact=True)
        for name, arr in self._arrays.items():
            arr[:size] = tensors[name]
        self._size = size
        self._next = size % self.capacity

    def __getstate__(self) -> Dict[str, Any]:
        """Pickling and copying: everything but the lock, copied under it.
        The arrays and the generator are copies, not the buffer's own: a
        ``copy.copy`` shared them (recording into the copy overwrote the
        original's experiences, sampling from it moved the original's
        generator), and a pickle or deep copy, made from them after the lock
        was released, could take in a write another thread made meanwhile."""
        with self._lock:
            state = {k: v for k, v in self.__dict__.items() if k not in ("_lock", "_arrays", "_rng")}
            state.update(slot_values(self))  # a subclass's __slots__ (lost, without a word)
            state["_arrays"] = {name: arr.copy() for name, arr in self._arrays.items()}
            state["_rng"] = np.random.Generator(np.random.PCG64())
            state["_rng"].bit_generator.state = self._rng.bit_generator.state
            return state

    def __deepcopy__(self, memo: Dict[int, Any]) -> "ExperienceBuffer":
        """The state's arrays and generator are copies already: copied once,
        not twice (the rest, a subclass's attributes, deeply)."""
        state = self.__getstate__()
        twin = self.__class__.__new__(self.__class__)
        memo[id(self)] = twin
        owned = ("_arrays", "_rng")
        twin.__setstate__({k: v if k in owned else copy.deepcopy(v, memo) for k, v in state.items()})
        return twin

    def __setstate__(self, state: Dict[str, Any]) -> None:
        """Unpickling (and ``copy``): the buffer of ``state`` (a
        :meth:`__getstate__`). Called on a buffer in use, it replaces that
        buffer's contents as :meth:`load` replaces them with a file's: under
        the buffer's lock (after a record or sample in progress in another
        thread), which it keeps, checked as :meth:`from_state` checks a
        saved state, and all of it or nothing (a bad ``state`` raises
        :class:`~grapheme_multimodal.CheckpointError` and leaves the buffer
        as it was). For a model's buffer (``model.experience``), a state of
        an ``embed_dim`` or ``input_dims`` that model cannot record into is
        refused, as assigning such a buffer to ``model.experience`` is."""
        state = self._portable_state(state)
        if "_lock" in self.__dict__:  # a buffer in use, not one that pickle or copy is making
            self._replace_state(state)
        else:
            self._restore(state)

    def _replace_state(self, state: Dict[str, Any]) -> None:
        # Was the unpickling below on the buffer itself: no lock taken (a record in another thread wrote half
        # its rows into the old arrays and half into the state's), a new lock put in (the threads waiting for
        # the old one ran beside those taking the new), no dims checked (a model's buffer took another
        # embed_dim, and the model's next record_batch failed naming `embeddings`, which its caller never
        # passed), and a bad state applied half way.
        if not isinstance(state, dict) or not _PICKLED_KEYS <= set(state):
            got = f"the keys {sorted_names(state)}" if isinstance(state, dict) else describe(state)
            raise CheckpointError(
                f"state: expected a pickled ExperienceBuffer's state (its __getstate__()), holding "
                f"{sorted(_PICKLED_KEYS)}; got {got}", "state",
            )
        twin = self.__class__.__new__(self.__class__)
        try:
            twin._restore(copy.deepcopy(state))  # the caller's arrays stay the caller's (and this buffer's its own)
            ExperienceBuffer.from_state(*twin.state())  # checked whole, as a saved buffer, before anything changes
        except (TypeError, ValueError, KeyError, AttributeError, IndexError) as exc:
            raise CheckpointError(f"state: not a valid experience buffer state ({exc})", "state") from None
        with self._lock:  # the dims checked, and the state put in, in one step (as load does)
            self._check_model_dims(twin, "state: is the state of", "state",
                                   "a buffer unpickled from it is a buffer of its own")
            if self._model_dims is not None and twin.embed_dim is None:  # a buffer that never recorded:
                # the model's buffer keeps its embed_dim, and (as a new buffer) no rows until it records
                twin._allocate(self._model_dims[0], check_capacity=False, rows=0)
            rebuilt = {**twin.__dict__, **slot_values(twin)}
            rebuilt["_lock"] = self._lock  # the threads holding or waiting for it keep to one lock
            rebuilt.pop("_model_dims", None)
            if "_model_dims" in self.__dict__:
                rebuilt["_model_dims"] = self._model_dims  # still the model's buffer (load keeps it too)
            slots = slot_names(type(self))
            stale = [k for k in self.__dict__ if k not in rebuilt or k in slots]  # attributes the state lacks: the
            with uninterrupted():  # buffer is the state's, as unpickled
                set_attributes(self, rebuilt, replace=True)
                for k in stale:
                    del self.__dict__[k]

    def _restore(self, state: Dict[str, Any]) -> None:
        """The unpickling of ``state`` into this new buffer (no lock yet)."""
        set_attributes(self, state)
        arrays = state.get("_arrays")
        if isinstance(arrays, dict):
            # Unpickled from out-of-band buffers (pickle protocol 5, as Ray passes a buffer to a task, or
            # ray.get returns one), the arrays are read-only views of memory that is not the buffer's: every
            # extend, append, clear and update_priorities then raised "assignment destination is read-only".
            # Copied to arrays of its own; a pickle's usual arrays, its own already, are kept as they are.
            self._arrays = {name: arr.copy() if isinstance(arr, np.ndarray) and not arr.flags.writeable else arr
                            for name, arr in arrays.items()}
        self.__dict__.pop("_drawn", None)  # a buffer pickled by an older version: its per-buffer registry
        self.__dict__.pop("_epoch", None)
        # A history of its own that continues the original's as it was copied: a batch sampled from the
        # original before the copy reaches its experiences here, one sampled after (or from the twin
        # of another copy) is refused. A buffer pickled before tokens (token 0) continues none.
        parent = (state["_token"], self._recorded, self._evicted) if state.get("_token") else None
        self._new_history(self._lineage + ((parent,) if parent else ()))
        self._lock = threading.RLock()
        _LIVE_BUFFERS.add(self)

    def __repr__(self) -> str:
        return f"ExperienceBuffer(size={self._size}, capacity={self.capacity}, embed_dim={self.embed_dim})"


# ------------------------------------------------------------------- helpers
def _short_repr(x: Any) -> str:
    """The repr of an :class:`Experience` or :class:`ExperienceBatch`:
    arrays by shape and dtype, as :class:`~grapheme_multimodal.Batch` shows
    them (the dataclass's repr printed every value: some 15 kB for each
    ``record_fusion`` of the default model, which returns one, and 45 kB for
    a sample of 32 rows of a small one)."""
    from .batch import _summary  # batch imports this module

    return f"{type(x).__name__}(" + ", ".join(f"{f.name}={_summary(getattr(x, f.name))}" for f in fields(x)) + ")"


def check_fits_memory(count: int, row_bytes: int, arg: str) -> None:
    """TooLargeError about ``arg`` when ``count`` experiences of ``row_bytes``
    each exceed the memory budget (the core's: physical memory, or a cgroup
    or ulimit limit)."""
    if count * row_bytes > memory_budget():
        raise TooLargeError(
            f"{arg}: {count:,} experiences of {row_bytes:,} bytes each ({count * row_bytes:,} bytes) do not fit "
            f"in this machine's memory ({memory_budget():,} bytes); expected a smaller {arg}",
            arg,
        )


def _check_first_rows_fit(embed_dim: int, input_dims: Optional[Sequence[int]], rows: int) -> None:
    """TooLargeError about the dims when the ``rows`` a buffer allocates
    first do not fit in memory: a smaller capacity would not help (a forged
    file's ``embed_dim`` was blamed on its ``capacity``)."""
    row_bytes = buffer_row_bytes(embed_dim, input_dims)
    if rows * row_bytes <= memory_budget():
        return
    embed_bytes = _bytes_per_row(_row_specs(embed_dim, None))
    arg, value = ("embed_dim", embed_dim) if embed_bytes >= row_bytes - embed_bytes else ("input_dims", list(input_dims or ()))
    raise TooLargeError(
        f"{arg}: got {value}; one experience takes {row_bytes:,} bytes, and the {rows:,} a buffer holds at first "
        f"({rows * row_bytes:,} bytes) do not fit in this machine's memory ({memory_budget():,} bytes); "
        f"expected a smaller {arg}",
        arg,
    )


def buffer_row_bytes(embed_dim: int, input_dims: Optional[Sequence[int]]) -> int:
    """Bytes one experience takes in a buffer of this shape."""
    return _bytes_per_row(_row_specs(int(embed_dim), input_dims))


@functools.lru_cache(maxsize=64)
def _row_bytes_of(embed_dim: int, input_dims: Optional[Tuple[int, ...]]) -> int:
    """:func:`buffer_row_bytes` of a buffer's own dims (``embed_dim`` an int,
    ``input_dims`` its tuple of ints or None), remembered: :meth:`ExperienceBuffer.extend`
    asks it on every call, and building the row's specs and their ``np.prod``
    took a third of an ``append`` (38 of 122 us)."""
    return buffer_row_bytes(embed_dim, input_dims)


def _bytes_per_row(specs: Mapping[str, TensorSpec]) -> int:
    # math.prod, in Python's ints: np.prod wraps in int64, and embed_dim=2**62 made a row of 224 bytes
    # (7 * 2**62 * 4 is 0 mod 2**64), refused as a capacity of 1,000 that "cannot be allocated"
    return sum(np.dtype(s.dtype).itemsize * math.prod(s.shape) for s in specs.values())


def _row_specs(embed_dim: int, input_dims: Optional[Sequence[int]]) -> Dict[str, TensorSpec]:
    """``{name: (dtype, shape of one row)}`` of the buffer's arrays."""
    m = NUM_MODALITIES
    specs = {
        "embeddings": TensorSpec("float32", (m, embed_dim)),
        "mask": TensorSpec("bool", (m,)),
        "fused": TensorSpec("float32", (embed_dim,)),
        "pair_strengths": TensorSpec("float32", (m, m)),
        "rewards": TensorSpec("float32", ()),
        "event_ids": TensorSpec("int64", ()),
        "priorities": TensorSpec("float64", ()),
        "has_inputs": TensorSpec("bool", ()),
    }
    if input_dims is not None:
        if len(input_dims) != NUM_MODALITIES:
            raise ShapeError(f"input_dims: expected 7 entries (one per modality), got {len(input_dims)}", "input_dims")
        for name, d in zip(MODALITY_NAMES, input_dims):
            specs[f"inputs.{name}"] = TensorSpec("float32", (int(d),))
    return specs


def _check_state_keys(meta: Mapping[str, Any]) -> None:
    if not isinstance(meta, Mapping):
        raise TypeError(f"metadata: expected a mapping, got {type(meta).__name__}")
    missing = [k for k in STATE_KEYS if k not in meta]
    unknown = sorted_names(set(meta) - set(STATE_KEYS))
    if missing or unknown:
        raise InvalidValueError(f"metadata: missing keys {missing}, unexpected keys {unknown}", "metadata")


def _batch_indices(positions: Any) -> Any:
    """A batch given for ``positions``: its ``indices`` (which pickle with
    the batch the buffer history they were sampled from, so a batch sent to
    another process still reaches its experiences); anything else as given."""
    if not isinstance(positions, ExperienceBatch):
        return positions
    if not isinstance(positions.indices, np.ndarray):
        raise TypeError(f"positions: a batch whose indices are {describe(positions.indices)}; expected one from sample() or batch()")
    return positions.indices


def _integer_positions(positions: Any) -> np.ndarray:
    """``positions`` as an integer array of the dtype given, to be checked by
    :func:`_check_positions` before its cast to int64 (a uint64 past int64
    would wrap to a negative position, and the error would show that).
    An empty list (float64 to numpy) is no positions, as an empty int array is."""
    pos = as_real_array(positions, "positions")
    if pos.size and pos.dtype.kind not in "iu":
        raise TypeError(f"positions: expected integers, got {describe(pos)}")
    refuse_beyond_memory(pos, "positions", np.int64)  # a broadcast view: its checks and int64 copy
    return pos


def _check_positions(pos: np.ndarray, size: int) -> None:
    """IndexError unless every position is in ``[0, size)``."""
    if pos.size and (pos.min() < 0 or pos.max() >= size):
        raise IndexError(f"positions: expected values in [0, {size}), got {pos.min()}..{pos.max()}")


def _float32(
    value: Any, name: str, shape: Optional[tuple] = None, rows: Optional[np.ndarray] = None, numbers_only: bool = False,
    features: Optional[bool] = None, unit: bool = False,
) -> np.ndarray:
    """``value`` as float32 of ``shape``, finite (in ``rows`` only, when
    given); with ``numbers_only``, booleans refused (rewards). ``features``
    (input features, not None): a wider float whose every value in a column
    (``True``; ``False``: in the whole array) of the ``rows`` lies below
    float32's normal range is refused, as ``encode`` refuses it."""
    arr = as_real_array(value, name)
    refuse_missing_values(value, arr, name, rows)  # a frame's pd.NA, read as NaN: named as what it is
    if numbers_only:
        refuse_bools(arr, name)
    if shape is not None and arr.shape != shape:
        raise ShapeError(f"{name}: expected shape {shape}, got {arr.shape}", name)
    if arr.dtype == np.float32:
        out = arr  # written into the buffer's own arrays: no copy needed
    else:
        with np.errstate(over="ignore"):  # values beyond float32 are reported below, by name and row
            out = arr.astype(np.float32)
    if rows is None:
        _check_finite_within(out, name, arr, unit)
    elif not _all_finite(out):  # finite throughout, the rows are: no copy of them, nor their indices
        _check_finite(out[rows], name, np.flatnonzero(rows), source=arr[rows])
    if features is not None and out is not arr:
        refuse_float32_underflow(arr, out, name, rows, per_column=features)
    return out


def _embeddings32(value: Any, shape: tuple, mask: np.ndarray) -> np.ndarray:
    """:meth:`ExperienceBuffer.extend`'s ``embeddings`` ``[n, 7, E]`` as
    float32, finite where ``mask [n, 7]`` marks the modality present, zeros
    where it marks it absent: an absent slot is never read (the model's own
    calls on embeddings and a mask take anything there), and NaN in one was
    refused ("row 0 holds NaN", of a slot the mask marks absent), where
    ``inputs`` ignore their absent rows. Zeros kept, not the values given:
    a buffer's file is checked finite throughout when loaded."""
    return _present_only32(value, "embeddings", shape, mask, pairs=False)


def _pair_strengths32(value: Any, n: int, mask: np.ndarray) -> np.ndarray:
    """:meth:`ExperienceBuffer.extend`'s ``pair_strengths`` ``[n, 7, 7]`` as
    float32, finite where ``mask [n, 7]`` marks both modalities of the pair
    present, zeros elsewhere, as :func:`_embeddings32` takes the embeddings
    (and as the model records a pair with an absent modality: 0). NaN in a
    pair of an absent slot was refused ("pair_strengths: row 0 holds NaN")
    after its embeddings there were taken. Each in [0, 1], as the model's
    binder gives them (sigmoid outputs): 5.0 was stored as given."""
    shape = (n, NUM_MODALITIES, NUM_MODALITIES)
    return _present_only32(value, "pair_strengths", shape, mask, pairs=True, unit=True)


def _refuse_strengths_beyond_unit(strengths: np.ndarray, name: str, given: Any, one_row: bool = False) -> None:
    """InvalidValueError naming ``name``, the row (unless ``one_row``: one
    experience's ``[7, 7]``) and the pair of the first of ``strengths``
    (finite: checked before) outside [0, 1]; ``given``: the values before
    float32, to show the one given."""
    bad = (strengths < 0) | (strengths > 1)
    if not bad.any():
        return
    at = tuple(int(i) for i in np.argwhere(bad)[0])
    i, j = at[-2:]
    where = f"[{i}, {j}]" if one_row else f": row {at[0]}, pair ({i}, {j})"
    raise InvalidValueError(
        f"{name}{where} ({MODALITY_NAMES[i]}, {MODALITY_NAMES[j]}) is {float(np.asarray(given)[at])!r}; expected a strength "
        "in [0, 1], as the model's binder gives them (sigmoid outputs; model.pair_strengths)", name,
    )


def _present_only32(value: Any, name: str, shape: tuple, mask: np.ndarray, pairs: bool, unit: bool = False) -> np.ndarray:
    """``value`` of ``shape`` as float32, finite (``unit``: in [0, 1]) where
    ``mask [n, 7]`` marks the modality present (``pairs``: both modalities
    of the pair), zeros elsewhere."""
    if mask.all():  # the common case: nothing absent, no copy of a float32 array (nor a mask made)
        return _float32(value, name, shape, unit=unit)
    kept = mask[:, :, None] & mask[:, None, :] if pairs else mask[:, :, None]
    arr = as_real_array(value, name)
    if arr.shape != shape:
        raise ShapeError(f"{name}: expected shape {shape}, got {arr.shape}", name)
    with np.errstate(over="ignore", invalid="ignore"):  # beyond float32 where present: reported below
        out = np.where(kept, arr, 0).astype(np.float32, copy=False)
    _check_finite_within(out, name, arr, unit)  # present slots only: the absent ones are 0
    return out


def _check_finite_within(out: np.ndarray, name: str, source: Any, unit: bool) -> None:
    """:func:`_check_finite` of ``out``, and with ``unit`` every value in
    [0, 1] (:func:`_refuse_strengths_beyond_unit`): one pass for both where
    all are (NaN is in no range: the reductions carry it), which keeps a
    one-row append about as fast as the finite check alone."""
    if unit and np.minimum.reduce(out, axis=None, initial=1.0) >= 0 and np.maximum.reduce(out, axis=None, initial=0.0) <= 1:
        return
    _check_finite(out, name, source=source)
    if unit:
        _refuse_strengths_beyond_unit(out, name, source)


def _check_finite(arr: np.ndarray, name: str, row_ids: Optional[np.ndarray] = None, source: Any = None) -> None:
    """NonFiniteError naming the first row of ``arr`` that is not finite
    (``row_ids`` maps its rows to the caller's; ``source`` is the value
    before a float32 cast, to tell overflow from NaN/inf)."""
    if _all_finite(arr):
        return
    bad = ~np.isfinite(arr)
    at = tuple(int(i) for i in np.argwhere(bad)[0]) if arr.ndim else ()
    given = (arr if source is None else source)[at]
    row = (int(row_ids[at[0]]) if row_ids is not None else at[0]) if at else 0
    raise NonFiniteError(f"{name}: row {row} {non_finite_message(given)}", name)


def _all_finite(arr: np.ndarray) -> bool:
    """Whether every value of ``arr`` is finite: one ufunc and one reduction
    (``~np.isfinite(arr).any()`` took three, and a Python wrapper)."""
    return bool(np.logical_and.reduce(np.isfinite(arr), axis=None))


def _one_row(value: Any, name: str) -> np.ndarray:
    """One experience's field as a batch of one row for :meth:`ExperienceBuffer.extend`
    (a masked array's hidden values refused: np.asarray would record them)."""
    if type(value) is np.ndarray:  # an experience's own arrays (record_fusion's): no masked array, no conversion
        return value[None]
    if is_masked_array(value):
        value = unmasked(value, name, "plain values", "fill them")
    return np.asarray(value)[None]


def _extend_args(mask: Any, fused: Any, rewards: Any, event_ids: Any, inputs: Any) -> List[Tuple[str, Any]]:
    """``(name, value)`` of :meth:`ExperienceBuffer.extend`'s arguments that
    may be a data frame or a Series (one row per experience), named as its
    errors name them: the embeddings and pair strengths are 3-D, no frame.
    Frames of the same rows in another order, or another index, were paired
    by position without a word (each experience given another's reward)."""
    named = [("mask", mask), ("fused", fused), ("rewards", rewards), ("event_ids", event_ids)]
    if isinstance(inputs, (list, tuple)) and len(inputs) == NUM_MODALITIES:
        named += zip(_INPUT_ARGS, inputs)
    return named


#: ``inputs['visual']``, ...: each modality's entry of ``inputs`` as :meth:`ExperienceBuffer.extend` names it.
_INPUT_ARGS = tuple(f"inputs[{name!r}]" for name in MODALITY_NAMES)


def _event_ids(value: Any, n: int, name: str = "event_ids") -> np.ndarray:
    arr = as_real_array(value, name)
    if arr.shape != (n,):
        raise ShapeError(f"{name}: expected shape {(n,)}, got {arr.shape}", name)
    if arr.dtype.kind == "b":  # True would be recorded as event 1: MultiModalEvent refuses a bool id too
        raise TypeError(f"{name}: expected integers, got {describe(arr)}; a bool is no event id")
    skips = None
    if arr.dtype.kind == "f":
        # from 2**53 on (float32: 2**24, float16: 2**11) the float skips integers: 2**53 + 1 is stored as 2**53
        skips = 2 ** (np.finfo(arr.dtype).nmant + 1)
        width = arr.dtype.name
        if arr.dtype.itemsize < 8:  # exactly; else 2.0**63 became inf in float16, with numpy's overflow warning
            arr = arr.astype(np.float64)
        integral = np.isfinite(arr) & (arr == np.round(arr))
        if not integral.all():
            raise _not_an_id(name, arr, int(np.argmin(integral)), width)
        # [2**63, 1] reads as float64: "expected integers" of integers misled. Not np.abs(arr) >= 2**63,
        # which refused -2.0**63, int64's smallest value, as outside [-2**63, 2**63)
        beyond = (arr >= 2.0**63) | (arr < -(2.0**63))
    else:
        beyond = arr >= 2**63 if arr.dtype.kind == "u" else None
    if beyond is not None and beyond.any():
        raise InvalidValueError(f"{name}: holds {int(arr[beyond][0])}; expected integers that fit in int64, "
                                "in [-2**63, 2**63)", name)
    if skips is not None:
        # ids 2**53 + 1 and 2**53 given as float64 are one value: two events were recorded as one id (which
        # update_priorities and the records pair by) without a word, where ids as int64 stay apart
        skipped = np.abs(arr) >= skips
        if skipped.any():
            power = {2**53: "2**53", 2**24: "2**24", 2**11: "2**11"}.get(skips, str(skips))
            raise InvalidValueError(
                f"{name}: holds {int(arr[skipped][0])} as {width}, at or past {power} in magnitude, where {width} skips "
                f"integers ({power} + 1 is stored as {power}: distinct ids may already be one); expected event ids as "
                f"integers (int64), or {width} values below {power} in magnitude", name)
    return arr.astype(np.int64)


def _not_an_id(name: str, ids: np.ndarray, row: int, width: str) -> InvalidValueError:
    """The refusal of ``ids[row]``, a float that is no integer, naming the
    row and its value: it showed the first five ids, which need not hold it
    (``got [0. 1. 2. 3. 4.]``), and a missing id (pandas' NA, read as NaN:
    an ``Int64`` column) as a float64 ``nan`` among them."""
    value = float(ids[row])
    if math.isnan(value):
        return InvalidValueError(
            f"{name}: row {row} holds NaN (a missing id: pandas' NA reads as NaN); expected an integer id in every "
            "row: fill missing ones with -1, the id of an experience without one", name)
    return InvalidValueError(f"{name}: expected integers, got {value!r} at row {row} ({width})", name)


def _one_value(value: Any, name: str, expected: str) -> np.ndarray:
    """One experience's number (its reward or event id) as a 0-d array."""
    if is_masked_array(value):
        value = unmasked(value, name, "plain values", "fill them")
    arr = as_real_array(value, name)
    if arr.shape != ():
        raise ShapeError(f"{name}: expected {expected}, got shape {arr.shape}", name)
    return arr


def _field(value: Any, name: str, shape: Optional[tuple], expected: str, finite: bool = True) -> np.ndarray:
    """One experience's array field, real, of ``shape`` (None: any), finite
    in float32 unless ``finite`` is False; errors name ``name`` and the
    index in it (``experience.fused[2]: holds inf``)."""
    if is_masked_array(value):
        value = unmasked(value, name, "plain values", "fill them")
    arr = as_real_array(value, name)
    if shape is not None and arr.shape != shape:
        raise ShapeError(f"{name}: expected shape {expected}, got {arr.shape}", name)
    if finite and arr.dtype.kind == "f":  # bools and ints are finite, also in float32 (at most 2**64 < 3.4e38)
        with np.errstate(over="ignore"):
            bad = ~np.isfinite(arr.astype(np.float32, copy=False))
        if bad.any():
            at = tuple(int(i) for i in np.argwhere(bad)[0]) if arr.ndim else ()
            where = f"[{', '.join(map(str, at))}]" if at else ""
            raise NonFiniteError(f"{name}{where}: {non_finite_message(arr[at])}", name)
    return arr


def _prioritised(priorities: np.ndarray, alpha: float) -> Tuple[np.ndarray, np.ndarray]:
    """``(P, log p)``: sampling probabilities ``p^alpha / sum p^alpha``,
    from ``log p`` so that no power overflows, and ``log p`` itself (for
    :func:`_importance_weights`)."""
    log_p = np.log(priorities)
    with np.errstate(over="ignore", invalid="ignore"):
        logits = alpha * (log_p - log_p.max())  # <= 0, 0 at the largest priority
        scaled = np.exp(logits)
        probs = scaled / scaled.sum()  # the sum is >= 1: no division by 0
    return probs, log_p


#: The least importance weight a sample carries: float32's smallest normal number.
_SMALLEST_WEIGHT = float(np.finfo(np.float32).tiny)


def _importance_weights(log_p: np.ndarray, pos: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """The importance weights ``(N P)^-beta / max (N P)^-beta = (p / p_min)^-(alpha beta)``
    of the experiences at ``pos``, as float32, from ``log p`` (of every
    experience held) so that no power overflows. Computed for the drawn rows
    only (each value as it was of the whole array: the same operations on
    it), not for every experience held, a pass over the buffer per sample."""
    if beta == 0 or alpha == 0:
        return np.ones(len(pos), np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        diff = log_p[pos] - log_p.min()  # float64, in [0, ~1454]
        exponent = beta * (alpha * diff)  # in [0, inf]
        over = np.isinf(exponent)
        if over.any():  # alpha * diff overflowed, though alpha * beta * diff may not (alpha=1e308, beta=1e-308)
            exponent[over] = (alpha * beta) * diff[over]
        weights = np.exp(-exponent)
    # A weight below float32's smallest normal (p_i / p_min past ~1e38 ** (1 / (alpha beta))) rounded to 0:
    # a drawn experience weighing nothing, and a batch of them a weighted mean of 0 / 0. Raised to that
    # smallest normal, every weight is in (0, 1] (and survives a flush of subnormals to 0).
    return np.maximum(weights, _SMALLEST_WEIGHT).astype(np.float32)


def _experience(b: ExperienceBatch, i: int) -> Experience:
    inputs = None
    if b.has_inputs[i]:
        inputs = [None if x is None or not b.mask[i, m] else x[i] for m, x in enumerate(b.inputs)]
    return Experience(
        embeddings=b.embeddings[i],
        mask=b.mask[i],
        fused=b.fused[i],
        pair_strengths=b.pair_strengths[i],
        reward=float(b.rewards[i]),
        event_id=int(b.event_ids[i]),
        inputs=inputs,
    )



def _checked_rng_state(state: Any) -> Any:
    """``state`` if it is a PCG64 state numpy would set exactly: the 128-bit
    ``state`` and ``inc`` and the 32-bit ``uinteger`` in range. Older numpy
    (1.23) wraps a negative value into range instead of refusing it, and the
    generator would then draw another sequence than the saved one. An even
    ``inc`` (numpy's are odd) is refused too: numpy takes it as given."""
    if not isinstance(state, Mapping) or state.get("bit_generator") != "PCG64":
        got = describe(state)
        if isinstance(state, Mapping):  # "got dict" for an MT19937 state: the mapping was the right kind
            # shown_number: repr() of an int past 4,300 digits raised Python's ValueError in the message's place;
            # a key holding None is no key missing; a repr cut at 40 characters says so
            kind = shown_number(state["bit_generator"]) if "bit_generator" in state else None
            if kind is not None and len(kind) > 40:
                kind = kind[:40] + "..."
            got = "a mapping without 'bit_generator'" if kind is None else f"the state of bit_generator {kind}"
        raise InvalidValueError(f"rng_state: expected a PCG64 generator state, got {got}", "rng_state")
    inner = state.get("state")
    if not isinstance(inner, Mapping):
        raise InvalidValueError(f"rng_state['state']: expected a mapping of 'state' and 'inc', got {describe(inner)}", "rng_state")
    fields = {"state": (inner.get("state"), 128), "inc": (inner.get("inc"), 128), "uinteger": (state.get("uinteger"), 32),
              "has_uint32": (state.get("has_uint32"), 1)}
    for name, (value, bits) in fields.items():
        # as numpy gives them, Python ints (numpy's set them): not a 0-d array, which is_int takes for its int
        if isinstance(value, np.ndarray) or not is_int(value) or not 0 <= value < 2**bits:
            raise InvalidValueError(f"rng_state: {name} is {value!r}; expected an int in [0, 2**{bits})", "rng_state")
    inc = inner["inc"]
    if inc % 2 == 0:
        # numpy keeps it as given: a stream no PCG64 makes (inc is 2 * k + 1 in every state numpy gives), so not
        # the saved generator's; from state 0 and inc 0 every draw is 0, and sample() looped for ever
        raise InvalidValueError(
            f"rng_state: inc is {inc!r}, an even number; a PCG64 generator's increment is always odd (numpy makes it "
            f"2 * k + 1), so this is no state numpy saved, and the buffer would draw another sequence than any "
            f"generator's (from state 0 and inc 0, the same number for ever); expected the rng_state a buffer's "
            f"state() or save() wrote, e.g. inc {inc + 1!r}", "rng_state")
    return state

#: The type of the lock a buffer is made with (``threading.RLock`` is a factory).
_RLOCK_TYPE = type(threading.RLock())

#: ``id(indices) -> (weak reference to them, token, recorded, evicted)`` of every batch's
#: ``indices`` alive in this process (:meth:`ExperienceBuffer._stamp`).
_SAMPLED: Dict[int, Tuple[Any, int, int, int]] = {}
#: The key of that note in a pickled :class:`ExperienceBatch`'s state.
_SAMPLED_FROM = "_indices_sampled_from"


def _note(pos: np.ndarray, note: Tuple[int, int, int]) -> np.ndarray:
    """Notes ``pos`` (a batch's ``indices``) with ``note``, the ``(token,
    recorded, evicted)`` of the buffer's history when it was sampled, for as
    long as the array lives (a weak reference)."""
    key = id(pos)

    def forget(dead: Any, key: int = key) -> None:  # its entry only: the id may name a newer array by then
        if _SAMPLED.get(key, (None,))[0] is dead:
            _SAMPLED.pop(key, None)

    _SAMPLED[key] = (weakref.ref(pos, forget),) + tuple(note)  # type: ignore[assignment]
    return pos


def _noted(given: Any) -> Optional[Tuple[int, int, int]]:
    """The note of ``given`` when it is a batch's ``indices`` or a view of
    them (a slice, a reshape: the same positions, as sampled), else None.
    Slices were taken as positions now: ``update_priorities(batch.indices[:k],
    ...)`` after records set the priorities of other experiences (of the
    newest, even) without a word. A copy (``np.array``, ``.copy()``,
    ``.tolist()``, ``indices[mask]``) is no batch's: positions now."""
    for candidate in (given, getattr(given, "base", None)) if isinstance(given, np.ndarray) else ():
        note = _SAMPLED.get(id(candidate))
        if note is not None and note[0]() is candidate:
            return note[1:]  # type: ignore[return-value]
    return None

#: The buffers of this process, for :func:`_after_fork_in_child`.
_LIVE_BUFFERS: "weakref.WeakSet[ExperienceBuffer]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    """A buffer whose lock another thread held at the fork (that thread is
    not in the child, and was changing the buffer) refuses to be used.

    Only the lock a buffer was made with is probed: a lock put in its place
    (a subclass's, a test double; or ``ForkedMidChange``, refused already in
    a fork of a fork) may have no non-blocking ``acquire``, and the
    AttributeError it raised ended this loop early, so buffers after it in
    the set were left locked by a thread the child does not have: using one
    waited forever."""
    for buffer in list(_LIVE_BUFFERS):
        if not isinstance(buffer._lock, _RLOCK_TYPE):
            continue
        if buffer._lock.acquire(blocking=False):  # free, or held by the thread that forked
            buffer._lock.release()
        else:
            buffer._lock = ForkedMidChange("experience buffer")


if hasattr(os, "register_at_fork"):  # POSIX; Windows has no fork
    os.register_at_fork(after_in_child=_after_fork_in_child)
