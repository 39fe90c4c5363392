"""Recording fusions into the model's experience buffer, and the original's
``compute_loss`` over it (mixed into ``LearnableMultiModal``)."""

from __future__ import annotations

__all__ = ["ExperienceMixin"]

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from .batch import Batch, Inputs
from .buffer import Experience
from .learning import refuse_non_unit_experiences
from ._validation import (
    FLOAT32_MAX, as_real_array, is_int, non_finite_message, refuse_bools,
)
from ._frames import missing_input_refusal, named_inputs, refuse_unpaired_frames
from .exceptions import InvalidTypeError, InvalidValueError, NonFiniteError, ShapeError
from .types import MultiModalEvent

if TYPE_CHECKING:
    from typing import Dict, List, Mapping, Optional, Tuple, Union

    from ._core import Model as _CoreModel
    from ._locking import ModelLock
    from .buffer import ExperienceBuffer


class ExperienceMixin:
    """The experience methods of the model."""

    # What LearnableMultiModal (and LearningMixin) give the methods below, declared for
    # type checkers (annotations only: nothing here exists at run time). test_typing keeps them its own.
    _core: _CoreModel
    _lock: ModelLock
    experience: ExperienceBuffer

    if TYPE_CHECKING:
        def prepare_inputs(
            self, inputs: Inputs, mask: Any = ..., *, arg: str = ..., mask_arg: str = ..., for_training: bool = ...
        ) -> Tuple[List[Optional[np.ndarray]], np.ndarray]: ...

        def losses(
            self, batch: Union[Batch, Inputs], mask: Any = ..., *, weights: Optional[Mapping[str, float]] = ...,
            training: bool = ...,
        ) -> Dict[str, float]: ...

        def _warn_untrained(self, mask: np.ndarray) -> None: ...

        def _refuse_peak(self, call: str, rows: int, arg: str = ..., pairs: int = ..., caller: str = ...) -> None: ...

        def _event_entry(self, event: MultiModalEvent) -> tuple: ...

        def _event_parts(self, event: MultiModalEvent) -> list: ...

    def record_experience(self, experience: Experience) -> None:
        """Appends ``experience`` to :attr:`experience` (the oldest entry is
        dropped past ``config.buffer_size``)."""
        self.experience.append(experience)

    def record_fusion(self, event: MultiModalEvent, reward: float = 0.0) -> Experience:
        """Fuses ``event`` and records its embeddings, fused embedding, pair
        strengths and ``reward`` (and its raw inputs when every modality has
        one component and the buffer keeps inputs, so the encoders can train
        from the buffer)."""
        if isinstance(reward, np.ndarray) and reward.ndim == 0:  # np.array(0.5), a loss's .sum(): one number
            reward = reward[()]
        if (isinstance(reward, (bool, np.timedelta64)) or not isinstance(reward, (int, float, np.number))
                or type(reward) is not float and np.iscomplexobj(reward)):  # a float is not: the call's 1 us spared
            # float("1") would pass, and True would be a reward of 1.0 (numpy's bools are no np.number)
            raise InvalidTypeError(f"reward: expected a real number, got {type(reward).__name__}", "reward")
        if isinstance(event, MultiModalEvent) and not is_int(event.id):
            # int() would truncate 1.5 and fail on NaN or "a" with a message that names nothing
            raise InvalidTypeError(f"event.id: expected an int to record as the event id, got {event.id!r}", "event.id")
        if isinstance(event, MultiModalEvent) and not -(2**63) <= event.id < 2**63:
            raise InvalidValueError(f"event.id: got {event.id}; expected an int64 to record as the event id", "event.id")
        # Checked here, so that the error names this argument (the buffer's is rewards).
        try:
            as_float = float(reward)
            # the reward as given: a long double 1e4000 is inf as a float, a value never given
            held = None if math.isfinite(as_float) and abs(as_float) <= FLOAT32_MAX else non_finite_message(reward)
        except OverflowError:  # an int past float64
            held = f"is an int of {int(reward).bit_length()} bits, too large for float32; expected finite float32 numbers"
        if held is not None:
            raise NonFiniteError(f"reward: {held}", "reward")
        with self._lock.reading():  # embeddings, fused and strengths of one state
            _, _, (emb, mask), fused = self._event_entry(event)  # cached, as fuse_event's
            if fused is None:
                raise InvalidValueError(f"event: event {event.id} has no components; expected at least one to record", "event")
            strengths = self._core.pair_strengths(emb, mask)[0]
        inputs = None
        buffer = self.experience  # once: the buffer whose input_dims are checked is the one recorded into
        modalities = [c.modality for c in event.components]
        if buffer.input_dims is not None and len(set(modalities)) == len(modalities):  # one component each: its row is the input
            inputs = [None if p is None else p[0][0] for p in self._event_parts(event)]
        experience = Experience(  # the caller's to edit: copies, not views of the event's cached entry
            embeddings=emb[0].copy(),
            mask=mask[0].copy(),
            fused=fused.copy(),
            pair_strengths=strengths,
            reward=float(reward),
            event_id=int(event.id),
            inputs=inputs,
        )
        buffer.append(experience)
        return experience

    def record_batch(self, inputs: Inputs, mask: Any = None, rewards: Any = 0.0, event_ids: Any = None) -> None:
        """Fuses a batch (as :meth:`encode`) and records every row with its
        reward (a scalar or ``[B]``) and event id (default -1), and its
        inputs when the buffer keeps them. ``None`` in a list of graphs is a
        row absent from that modality (see :meth:`prepare_inputs`); the
        buffer keeps NaN for its inputs there (as for every row the mask
        marks absent), which nothing reads."""
        # Embeddings, fused and strengths of one state, and the inputs checked against it: the data frames' names
        # checked before the lock, another thread's fit_normalization could learn them (and their standardisation)
        # in between, and a frame of them reordered was recorded.
        with self._lock.reading():
            arrays, mask_arr = self.prepare_inputs(inputs, mask)
            if not all(type(v) is np.ndarray or np.isscalar(v) or v is None for v in (rewards, event_ids)):
                # their rows pair with the inputs' by position: a Series of them in another order was
                # recorded against the wrong rows, without a word
                refuse_unpaired_frames(named_inputs(inputs) + [("rewards", rewards), ("event_ids", event_ids)])
            # the rewards' shape before the batch is encoded (and its untrained modalities warned of): a bad
            # one was refused only after the encoding's work and the warning
            batch = len(mask_arr)
            rewards = as_real_array(rewards, "rewards")
            refuse_bools(rewards, "rewards")
            # Not numpy's broadcasting: one reward in an array of shape (1,) spread over every row without a word.
            if rewards.shape not in ((), (batch,)):
                raise ShapeError(f"rewards: expected a number or shape ({batch},), got shape {rewards.shape}", "rewards")
            rewards = np.broadcast_to(rewards, (batch,))
            self._warn_untrained(mask_arr)
            try:
                emb, fused = self._core.encode_and_fuse(arrays, mask_arr)  # its outputs are allocated fallibly
            except NonFiniteError as err:  # a NaN a frame never held is named as the pd.NA it was
                raise missing_input_refusal(inputs, mask_arr) or err from None
            # the pair strengths beside them (their copy of the embeddings aborted under ulimit -v)
            self._refuse_peak("pair_strengths", len(mask_arr), "inputs", caller="record_batch's pair_strengths")
            strengths = self._core.pair_strengths(emb, mask_arr)
        # A buffer without input_dims (one the model's experience setter takes) keeps embeddings only:
        # given inputs, it refused the whole batch, naming an argument the caller never passed.
        buffer = self.experience
        buffer.extend(
            embeddings=emb,
            mask=mask_arr,
            fused=fused,
            pair_strengths=strengths,
            rewards=rewards,
            event_ids=event_ids,
            inputs=None if buffer.input_dims is None else
            [None if a is None else np.where(mask_arr[:, [m]], a, np.nan) for m, a in enumerate(arrays)],
        )

    def num_experiences(self) -> int:
        """Experiences held (at most ``config.buffer_size``)."""
        return len(self.experience)

    def clear_experience(self) -> None:
        """Empties the experience buffer."""
        self.experience.clear()

    def compute_loss(self) -> float:
        """The original's loss over the buffer: mean over experiences of
        ``MSE(fuse(stored embeddings), stored fused) * (1 - reward)``, those
        holding no modality passed over (nothing to fuse, as in
        ``seed_consistency``); 0 when empty or when no experience holds a
        modality. No gradients (``backward(Batch.from_experiences(...))`` trains it)."""
        # The model held for reading from the buffer's snapshot to the loss: both of one moment, even while
        # other threads record and train (the model first, then the buffer, as record_* take them).
        with self._lock.reading():
            buffer = self.experience  # once: the buffer whose lock is held (another thread may assign another)
            with buffer._lock:
                experiences = buffer.batch() if len(buffer) else None
            # rows of no modality are passed over; with only those, losses() refused the whole as
            # "batch: no row holds a modality", an argument compute_loss() has not
            if experiences is None or not experiences.mask.any():
                return 0.0
            refuse_non_unit_experiences(experiences.embeddings, experiences.mask, "experience")
            batch = Batch.from_experiences(experiences)
            return float(self.losses(batch, weights={"seed_consistency": 1.0})["seed_consistency"])
