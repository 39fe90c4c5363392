"""The learning API of :class:`~grapheme_multimodal.model.LearnableMultiModal`:
losses and gradients of the objectives, Adam steps, gradient access and the
optimizer state. All compute is in the Rust core, with the GIL released."""

from __future__ import annotations

__all__ = ["LearningMixin"]

from collections import OrderedDict
from collections.abc import Mapping, Sequence  # not typing's aliases: isinstance of them takes 3x as long
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple, Union

import numpy as np

from ._locking import reads, uninterrupted, writes, writes_leaving_weights
from ._validation import (
    NON_UNIT_EXPECTED, as_finite_float, as_float32, as_real_array, as_seed, check_flag, memory_budget,
    non_unit_embeddings, refuse_beyond_budget, refuse_bools, refuse_non_unit_embeddings, renamed, sorted_names,
)
from ._frames import missing_input_refusal
from ._core import ADAM_BETA1, ADAM_BETA2, NUM_MODALITIES, get_num_threads
from .averaging import split_flat
from .exceptions import GraphemeError, InvalidValueError, NonFiniteError
from .batch import Batch, Inputs, component_parts, event_components, overflow_in_events, refuse_non_finite_components
from .objectives import (
    OBJECTIVES, _zero_because, all_zero_error, check_something_trains, neighborhood_without_neighbors_error,
    resolve_weights, unmeasured_objectives,
)
from .types import Modality, MultiModalEvent

if TYPE_CHECKING:
    from ._core import Model as _CoreModel
    from .config import LearnableMultiModalConfig


#: The objectives whose [B, B] logits the core checks against the budget (check_batch_memory), their positions.
_LOGITS_OBJECTIVES = tuple(OBJECTIVES.index(o) for o in ("contrastive", "fused_contrastive", "neighborhood"))
_MODALITY_PAIRS = NUM_MODALITIES * (NUM_MODALITIES - 1) // 2
#: The most [B, B] matrices the core holds at once (three per thread, one thread per modality pair).
_LOGITS_MAX_MATRICES = 3 * _MODALITY_PAIRS
#: The positions in OBJECTIVES of the objectives _check_rows_to_learn_from reads first.
_SEED_CONSISTENCY, _RECONSTRUCTION, _CROSS_MODAL = (OBJECTIVES.index(o) for o in ("seed_consistency", "reconstruction",
                                                                                  "cross_modal"))
_NEIGHBORHOOD = OBJECTIVES.index("neighborhood")


#: How the core's refusal of a batch's own gradients (not of their sum with those accumulated) says it.
_ILL_CONDITIONED = "the loss is ill-conditioned for this batch"


def _rows(batch: "_CoreBatch") -> int:
    """The rows (events) of a core batch."""
    return batch.components[0] if batch.components is not None else len(batch.mask)


def _refusal_as_given(err: NonFiniteError, batch: Any, mask: Any = None) -> NonFiniteError:
    """``err`` about a row of a :meth:`Batch.from_events` batch named as its
    event (``events[2]: event 7's visual input overflows ...``), not as the
    core's ``inputs['visual']: row 2``; a NaN that a data frame among the
    inputs never held named as the missing value (``pd.NA``, ``None``) it
    was, as ``encode`` names it; else ``err``."""
    if not isinstance(batch, Batch):
        return missing_input_refusal(batch, mask) or err
    if batch.inputs is not None:
        return missing_input_refusal(batch.inputs, batch.mask) or err
    return err if batch.events is None else overflow_in_events(err, batch.events, "events")


def _refuse_no_rows(batch: "_CoreBatch", what: str) -> None:
    """Refuses a batch of no rows: every loss is a mean over nothing, and 0.0 read as a perfect fit."""
    if _rows(batch) == 0:
        raise InvalidValueError(f"batch: no rows; expected at least one row to {what}", "batch")


def _refuse_no_modality(batch: "_CoreBatch", what: str) -> Optional[int]:
    """Refuses a batch in which no row holds a modality (a mask False
    everywhere, recorded embeddings all zero, events without components):
    every loss is a mean over nothing, 0.0. Returns the present entries of
    its mask (``None`` for components, which have none)."""
    mask = batch.mask
    held = None if mask is None else np.count_nonzero(mask)  # count_nonzero: a fraction of any()'s cost
    if held == 0:
        raise InvalidValueError("batch: no row holds a modality (the mask is False everywhere); expected at least one "
                                f"present modality to {what}", "batch")
    if mask is None and not any(part is not None and len(part[1]) for part in batch.components[1]):
        # events with no components (MultiModalEvent(1)), or parts of no rows
        raise InvalidValueError("batch: no row holds a modality (no event or row has a component); expected at least one "
                                f"component to {what}", "batch")
    return held


def _check_rows_to_learn_from(batch: "_CoreBatch", weights: List[float], would: str = "this step would train nothing") -> None:
    """Refuses a step with nothing to learn from, as :func:`fit` refuses
    such data (:func:`check_something_trains`): no rows, no row holding a
    modality, or rows on which every weighted objective is 0 (one row, or
    one holding a modality, with only objectives that compare rows; one row
    of one modality, where cross_modal has nothing to predict from too...).
    Every loss would be 0, and an Adam step on zero gradients still moves
    every weight by its momentum, counts a step and records the rows'
    modalities as trained."""
    rows, mask = _rows(batch), batch.mask
    _refuse_no_rows(batch, "train on")
    held = _refuse_no_modality(batch, "train on")  # every loss 0: an Adam step on zero gradients, as fit refuses such data
    if weights[_CROSS_MODAL] > 0 and held is not None and held > rows:
        return  # the common case (the default mix): more present entries than rows, so a row of two for cross_modal
    if weights[_SEED_CONSISTENCY] > 0:
        rewards = batch.rewards
        if rewards is None or np.count_nonzero(rewards != 1):
            return  # it learns from any row holding a modality whose reward is not 1
    if weights[_RECONSTRUCTION] > 0 and batch.embeddings is None:
        return  # it learns from any row's inputs
    if mask is not None:
        present = mask
    else:  # the rows each modality's components are in; rows out of range are the core's to refuse
        present = np.zeros((rows, NUM_MODALITIES), bool)
        for m, part in enumerate(batch.components[1]):
            if part is not None:
                owners = np.asarray(part[1])
                present[owners[(owners >= 0) & (owners < rows)], m] = True
    if weights[_CROSS_MODAL] > 0 and np.count_nonzero(present.sum(axis=1) >= 2):
        return  # a row of two modalities for cross_modal, without the 7 x 7 counts below
    check_something_trains(dict(zip(OBJECTIVES, weights)), present, "batch", batch.embeddings is None, would, batch.rewards)


def refuse_non_unit_experiences(embeddings: np.ndarray, mask: np.ndarray, name: str) -> None:
    """:func:`refuse_non_unit_embeddings` for the recorded embeddings of an
    experience buffer (``name``: the argument that gave it), naming the
    experience in the buffer's order. A buffer loaded from an older file
    may hold any finite vectors (its files all load; ``extend`` refuses them
    now); training on them is refused, and the core's
    message named ``embeddings``, an argument ``fit`` and ``compute_loss``
    have not, and the row of a shuffled batch, not the experience."""
    found = non_unit_embeddings(embeddings, mask)
    if found is None:
        return
    row, slot, norm, count = found
    raise InvalidValueError(
        f"{name}: experience {row}'s {Modality(slot)} embedding has norm {norm:.6g} ({count:,} present embeddings "
        f"are longer than 1); {NON_UNIT_EXPECTED}: record the model's own fusions, or divide each by its norm "
        "before extend()", name,
    )


def _objective_weights(weights: Optional[Mapping[str, float]], has_fused: bool, training: bool) -> List[float]:
    """:func:`resolve_weights` of ``weights``; for a call that trains
    (``training``), at least one must be > 0."""
    w = resolve_weights(weights, has_fused)
    if training and max(w) <= 0:  # not any() of a generator: one frame more for a Ctrl-C to land in
        # an Adam step on zero gradients moves every weight by its momentum, learning nothing
        # ({} read as "the defaults" did that without a word); fit refuses the same
        raise all_zero_error(weights, "weights", "None: the default mix")
    return w


def _refuse_logits_peak(core: "_CoreBatch", weights: List[float], arg: str) -> None:
    """TooLargeError naming ``arg`` when the ``[B, B]`` logits of the
    weighted contrastive objectives would not fit in the address space
    ``ulimit -v`` leaves: the core checks them against the memory budget
    only (its check_batch_memory, whose count of matrices this takes: three
    per thread, up to one per modality pair), and past the limit their
    allocation aborted the process. Batches whose logits take more than the
    budget are left to the core, which refuses them with its remedy."""
    rows = _rows(core)
    budget = memory_budget()
    if 8 * _LOGITS_MAX_MATRICES * 4 * rows * rows <= budget:  # the most matrices: most batches stop here
        return
    if not any(weights[i] > 0 for i in _LOGITS_OBJECTIVES):
        return
    matrices = 3 * min(max(get_num_threads(), 1), _MODALITY_PAIRS)
    nbytes = matrices * 4 * rows * rows
    if nbytes <= budget:
        refuse_beyond_budget(nbytes, arg, "a batch of {rows:,} rows: the contrastive objectives' [B, B] logits (up to "
                             "{matrices} such matrices at once) take {bytes} bytes", rows=rows, matrices=matrices)


class LearningMixin:
    """Training methods of the model (mixed into ``LearnableMultiModal``)."""

    # What LearnableMultiModal gives the methods below, declared for type checkers
    # (annotations only: nothing here exists at run time). test_typing keeps them its own.
    _core: _CoreModel
    config: LearnableMultiModalConfig
    _encoding_sizes: Tuple[int, int, int]

    if TYPE_CHECKING:
        def prepare_inputs(
            self, inputs: Inputs, mask: Any = ..., *, arg: str = ..., mask_arg: str = ..., for_training: bool = ...
        ) -> Tuple[List[Optional[np.ndarray]], np.ndarray]: ...

        def parameter_shapes(self) -> Dict[str, Tuple[int, ...]]: ...

        def _checked_tensors(
            self, tensors: Mapping[str, Any], arg: str, strict: bool = ..., note: str = ...
        ) -> Dict[str, np.ndarray]: ...

        def _embeddings_and_mask(self, embeddings: Any, mask: Any) -> Tuple[np.ndarray, np.ndarray]: ...

    @reads
    def losses(
        self,
        batch: Union[Batch, Inputs],
        mask: Any = None,
        *,
        weights: Optional[Mapping[str, float]] = None,
        training: bool = False,
    ) -> Dict[str, float]:
        """Per-objective losses of ``batch`` and their weighted ``"total"``,
        without gradients. Uses the random draws the next :meth:`backward`
        or :meth:`train_step` will use, so the values match.

        ``batch`` is a :class:`Batch` or, as a shorthand, its ``inputs``
        (with ``mask``; ``None`` in a list of graphs is a row absent from that
        modality, see :meth:`prepare_inputs`). ``weights`` maps objective names
        to weights (see
        :func:`grapheme_multimodal.objectives.resolve_weights`; default: the
        default mix). Objectives with weight 0 are not computed. A batch of
        no rows is refused (:class:`InvalidValueError`): its losses are
        means over nothing; so is one in which no row holds a modality
        (a mask False everywhere, recorded embeddings all zero, events
        without components), whose every loss was 0.0.

        With encoder dropout in the config (``encoder_input_dropout``,
        ``encoder_hidden_dropout``) the encoders do not drop here, as in
        PyTorch's ``eval()`` mode (validation losses); ``training=True``
        applies the dropout masks of the next :meth:`backward`, giving the
        loss it computes.
        """
        core_batch, w = self._learning_args(batch, mask, weights)
        training = check_flag(training, "training")  # "False" would be true: the dropout masks applied
        _refuse_no_rows(core_batch, "compute losses of")
        _refuse_no_modality(core_batch, "compute losses of")  # else 0.0 for every objective: a perfect score
        try:
            return dict(self._core.losses(core_batch, w, training))
        except NonFiniteError as err:
            raise _refusal_as_given(err, batch, mask) from None

    @reads
    def _fit_losses(self, batch: Batch, weights: Optional[Mapping[str, float]]) -> Dict[str, float]:
        """:meth:`losses` as a distributed fit checks its data's first rows
        before any worker starts: rows holding no modality pass (fit
        checked the data whole; a worker's step passes over such rows)."""
        core_batch, w = self._learning_args(batch, None, weights)
        _refuse_no_rows(core_batch, "compute losses of")
        return dict(self._core.losses(core_batch, w, False))

    @reads
    def temperatures(self) -> Dict[str, float]:
        """The temperature of each contrastive objective: learned (with
        ``learnable_temperature``, kept in [0.01, 1]) or ``config.temperature``."""
        return dict(self._core.temperatures())

    @writes_leaving_weights
    def backward(self, batch: Union[Batch, Inputs], mask: Any = None, *, weights: Optional[Mapping[str, float]] = None) -> Dict[str, float]:
        """Like :meth:`losses`, and adds the gradients of the weighted total
        to the accumulated ones (``has_gradients()`` becomes True). No step
        is taken: call :meth:`step`, or read :meth:`gradients`. A batch of
        no rows is refused, as :meth:`losses` refuses it
        (:class:`InvalidValueError`; nothing changes), and so, when no
        gradients are accumulated, is one that :meth:`train_step` refuses
        as having nothing to learn from (its gradients would be 0, and the
        next :meth:`step` an Adam step on them; weights that reach no
        parameter likewise, and a ``neighborhood`` weight with
        ``neighborhood_neighbors=0`` always); so is one whose
        gradients, added to those accumulated since :meth:`zero_grad`,
        would leave float32 (:class:`NonFiniteError` naming ``gradients``;
        the accumulated gradients are kept as they were)."""
        return self._backward(batch, mask, weights, refuse_nothing_to_learn=True)

    @writes_leaving_weights
    def _fit_backward(self, batch: Batch, weights: Optional[Mapping[str, float]]) -> Dict[str, float]:
        """:meth:`backward` as a distributed fit's workers take it: a
        worker's share of one row passes (fit checked its data, and the
        driver averages the shares)."""
        return self._backward(batch, None, weights, refuse_nothing_to_learn=False)

    def _backward(
        self, batch: Any, mask: Any, weights: Optional[Mapping[str, float]], refuse_nothing_to_learn: bool
    ) -> Dict[str, float]:
        core_batch, w = self._learning_args(batch, mask, weights, training=True)
        # else zero gradients, which the next step() took as a training step: Adam's count, the
        # draw counter and weight decay moved, and every modality was recorded untrained
        _refuse_no_rows(core_batch, "compute gradients of")
        whole = refuse_nothing_to_learn and not self._core.has_gradients()  # zeros added to others: an accumulation as any
        would = "its gradients would be 0 and the next step() an Adam step on them"
        if whole:  # the same for a batch on which every weighted objective is 0 (one row of one modality)
            _check_rows_to_learn_from(core_batch, w, would)
        self._refuse_weights_training_nothing(core_batch, w, whole, would)
        try:
            return dict(self._core.backward(core_batch, w))
        except NonFiniteError as err:
            raise _refusal_as_given(self._blamed_on_rewards(err, core_batch, w, lambda b: self._core.backward(b, w)),
                                   batch, mask) from None

    @writes
    def train_step(
        self,
        batch: Union[Batch, Inputs],
        mask: Any = None,
        *,
        weights: Optional[Mapping[str, float]] = None,
        lr: Optional[float] = None,
    ) -> Dict[str, float]:
        """One training step: ``zero_grad()``, ``backward(batch)``,
        ``step(lr)``. Returns the per-objective losses before the step and
        their weighted ``"total"``; the gradients stay readable.

        All or nothing: a step that would make any weight or optimizer
        moment NaN or infinite (or whose losses or gradients are not finite)
        is refused with a :class:`NonFiniteError` or
        :class:`InvalidValueError` naming the cause (``lr``,
        ``learning_rate``, ``weight_decay``, the gradients, the inputs or
        the batch's ``rewards``), and the model, its gradients and its draw
        counter stay as they were.
        A batch with nothing to learn from, on which every weighted
        objective is 0 (no rows; no row holding a modality; one row, or one
        holding a modality, with only contrastive, binding, fused_contrastive
        or neighborhood weighted, which compare rows; one row of one
        modality, where cross_modal has no other modality to predict it
        from either; rows of one modality each with only cross_modal
        weighted...), or with weights that reach no parameter
        (``contrastive`` with a fixed temperature on recorded embeddings, or
        left out of the config's ``encoder_objectives``), is refused with an
        :class:`InvalidValueError`, as :func:`fit` refuses such data, and the
        model is left as it was (its Adam step count and record of trained
        modalities too); so is a ``neighborhood`` weight in a model made
        with ``neighborhood_neighbors=0``, where it is 0 on every batch.

        >>> import numpy as np
        >>> import grapheme_multimodal as gm
        >>> model = gm.LearnableMultiModal(embed_dim=16, hidden_dim=32, seed=0)
        >>> rng = np.random.default_rng(0)
        >>> x = {"visual": rng.normal(size=(8, 18)), "linguistic": rng.normal(size=(8, 18))}
        >>> sorted(model.train_step(x))
        ['binding', 'contrastive', 'cross_modal', 'fused_contrastive', 'total']
        """
        return self._train_step(batch, mask, weights, lr, refuse_nothing_to_learn=True)

    @writes
    def _fit_step(self, batch: Batch, weights: Optional[Mapping[str, float]], lr: Optional[float]) -> Dict[str, float]:
        """:meth:`train_step` as :func:`fit` takes it: the batches of one row
        of ``batch_size=1`` pass (fit warned of them, and its last batch has two)."""
        # fit checked its data's recorded embeddings as a whole (its dataset's check): not again per step
        return self._train_step(batch, None, weights, lr, refuse_nothing_to_learn=False, embeddings_checked=True)

    def _train_step(
        self, batch: Any, mask: Any, weights: Optional[Mapping[str, float]], lr: Optional[float], refuse_nothing_to_learn: bool,
        embeddings_checked: bool = False,
    ) -> Dict[str, float]:
        core_batch, w = self._learning_args(batch, mask, weights, training=True, embeddings_checked=embeddings_checked)
        lr = self._learning_rate(lr)
        if refuse_nothing_to_learn:
            _check_rows_to_learn_from(core_batch, w)
        self._refuse_weights_training_nothing(core_batch, w, refuse_nothing_to_learn, "this step would train nothing")
        try:
            losses, _ = self._core.train_step(core_batch, w, lr)
        except NonFiniteError as err:
            raise _refusal_as_given(self._blamed_on_rewards(err, core_batch, w, lambda b: self._core.train_step(b, w, lr)),
                                   batch, mask) from None
        return dict(losses)

    def _blamed_on_rewards(
        self, err: NonFiniteError, core_batch: "_CoreBatch", weights: List[float], run: Callable[["_CoreBatch"], Any]
    ) -> NonFiniteError:
        """``err``, the core's refusal of a batch whose gradients are not
        finite (named ``gradients``, an argument no caller passed), remade to
        name the batch's ``rewards`` when they are the cause: seed_consistency
        scales each row's term by ``1 - reward``, and the same batch with its
        rewards clipped to [0, 1] (``run`` on it, its changes undone) has
        finite gradients. Else ``err``. Only on this error's path."""
        rewards = core_batch.rewards
        if (err.arg != "gradients" or _ILL_CONDITIONED not in str(err) or rewards is None
                or not weights[_SEED_CONSISTENCY] or ((rewards >= 0) & (rewards <= 1)).all()):
            return err
        from .training import _TrainingState  # training imports this module

        before = _TrainingState.of(self)
        core_batch.rewards = np.clip(rewards, 0, 1)
        with uninterrupted():  # the trial's changes undone whole
            try:
                run(core_batch)
            except GraphemeError:
                return err  # not the rewards alone; nothing was changed by the refused call
            finally:
                core_batch.rewards = rewards
            before.restore(self)
        largest = float(np.abs(rewards).max())
        return NonFiniteError(
            f"rewards: the gradients of this batch are not finite: seed_consistency scales each row's term by "
            f"(1 - reward), and rewards up to {largest:.3g} in magnitude overflow float32 in its gradients (with the "
            "rewards clipped to [0, 1] they are finite); expected rewards of moderate size", "rewards")

    def _refuse_weights_training_nothing(self, core: "_CoreBatch", w: List[float], whole: bool, would: str) -> None:
        """Refuses, as :func:`fit` refuses its objectives, weights that train
        nothing in this model: a ``neighborhood`` weight with
        ``neighborhood_neighbors=0`` (0 on every batch, alone or beside
        others); and, for a step of this batch alone (``whole``), weights
        whose every objective is 0 on it or reaches no parameter
        (``contrastive`` with a fixed temperature on recorded embeddings, or
        one ``encoder_objectives`` leaves out). Either way every gradient
        was 0 and the step an Adam step on them, counted, without a word."""
        c = self.config
        if w[_NEIGHBORHOOD] > 0 and c.neighborhood_neighbors == 0:
            raise neighborhood_without_neighbors_error(w[_NEIGHBORHOOD], "weights")
        has_inputs = core.embeddings is None
        if not whole or has_inputs and c.encoder_objectives is None:  # the common case: every objective reaches one
            return
        from .training import untrainable_objectives  # training imports this module

        by_name = dict(zip(OBJECTIVES, w))
        idle = untrainable_objectives(c.encoder_objectives, c.learnable_temperature, by_name, has_inputs)
        zero = {} if not idle or core.mask is None else unmeasured_objectives(by_name, core.mask, has_inputs, core.rewards)
        weighted = [o for o, v in by_name.items() if v > 0]
        if not idle or any(o not in idle and o not in zero for o in weighted):
            return
        said = [o for o in weighted if o in zero and o not in idle]
        arg, remedy = (("batch", "expected a batch with inputs, or an objective that trains what follows the embeddings "
                        "(binding, cross_modal, fused_contrastive, seed_consistency)") if not has_inputs
                       else ("weights", "expected those objectives in the model's encoder_objectives, or an objective "
                             "it keeps"))
        clauses = "; ".join(x for x in (_zero_because(zero, said) if said else "", *idle.values()) if x)
        raise InvalidValueError(f"{arg}: {clauses}, so {would}; {remedy}", arg)

    @writes_leaving_weights
    def zero_grad(self) -> None:
        """Clears the accumulated gradients (``has_gradients()`` is then False)."""
        self._core.zero_grad()

    @reads
    def has_gradients(self) -> bool:
        """Whether gradients were accumulated since the last :meth:`zero_grad`."""
        return self._core.has_gradients()

    @writes
    def step(self, lr: Optional[float] = None) -> None:
        """One Adam update from the accumulated gradients (which are kept, as
        in PyTorch). ``lr`` defaults to ``config.learning_rate``. A no-op
        when there are no gradients; refused whole, as :meth:`train_step`,
        when it would make a weight or moment non-finite."""
        self._core.step(self._learning_rate(lr))

    @reads
    def gradients(self) -> "OrderedDict[str, np.ndarray]":
        """The accumulated gradients, float32, under the parameters' names
        (:meth:`parameter_shapes`: the :meth:`state_dict` names less its
        ``normalization.*`` buffers, which have no gradient; zeros when
        there are none): a copy, so unlike PyTorch's
        ``.grad`` an edit in place (``g /= n`` over an accumulation) changes
        nothing :meth:`step` reads; step on edited gradients with
        :meth:`apply_gradients`."""
        flat = self._core.get_flat_grad()
        return self._unflatten(flat)

    @writes
    def apply_gradients(self, grads: Mapping[str, Any], lr: Optional[float] = None) -> None:
        """One Adam update from ``grads`` (``{name: array}`` with the
        :meth:`parameter_shapes` names and shapes, every tensor given: not
        the ``normalization.*`` buffers of :meth:`state_dict`), e.g.
        gradients averaged over data-parallel workers. The accumulated
        gradients are left as they are. An update that would make a weight
        or moment non-finite is refused whole (nothing changes); inside Adam
        each gradient is bounded at ``±9.2e18``, so its moments never
        overflow.

        Gradients that reach an encoder train it: the record of
        :attr:`trained_modalities` adds one row to each modality whose
        encoder's own tensors (``encoder.<modality>.*``) get a nonzero
        gradient. The rows of the batch the gradients came from are not
        known here; one is the least that made a nonzero gradient, so the
        count is a lower bound (``train_step`` and :func:`fit` count the
        batches' rows). The update counts as a training step either way
        (see :class:`UntrainedModalityWarning`).

        All-zero gradients are taken, as PyTorch's ``optimizer.step()``
        takes them: Adam's step count advances, its moments decay (by
        beta1 and beta2), the weights move by the moments already held (and
        shrink by ``weight_decay``), and no modality's record grows. The
        draw counter is kept (no objective is computed here).
        :meth:`train_step` and :meth:`backward` refuse a batch with nothing
        to learn from: zeros there are the batch's, not given on purpose."""
        _refuse_losses(grads, "grads", "gradients keyed by parameter name ({name: array} of parameter_shapes()), as "
                       "gradients() gives them after backward(batch)")
        flat = self._flatten(grads, "grads")
        lr = self._learning_rate(lr)
        self._core.apply_gradients(flat, lr)

    @reads
    def optimizer_state(self) -> Dict[str, Any]:
        """Everything besides the weights that training continues from:

        ``{"step": int, "rng_counter": int, "exp_avg": {name: array},
        "exp_avg_sq": {name: array}}`` — Adam's update count and moments (the
        PyTorch names), by parameter name (:meth:`parameter_shapes`, no
        ``normalization.*`` buffer) and the number of gradient computations so far, which
        with ``config.seed`` fixes the objectives' random draws. Restoring it
        with :meth:`load_optimizer_state` (and the weights) continues
        training by :meth:`train_step` and :meth:`backward` bit for bit;
        ``fit`` draws each epoch's shuffle and dropout from ``(seed,
        epochs_trained)`` and averages from :attr:`weight_average`, which
        neither holds: set ``epochs_trained`` too (a fit without
        ``ema_decay``), or ``save``/``load`` a checkpoint, which keeps it all."""
        m, v, step, counter = self._core.optimizer_state()
        return {"step": step, "rng_counter": counter, "exp_avg": self._unflatten(m), "exp_avg_sq": self._unflatten(v)}

    @writes_leaving_weights
    def load_optimizer_state(self, state: Mapping[str, Any]) -> None:
        """Restores a state from :meth:`optimizer_state` (checked first;
        nothing changes on error)."""
        if not isinstance(state, Mapping):
            raise TypeError(f"state: expected a mapping, got {type(state).__name__}")
        expected = {"step", "rng_counter", "exp_avg", "exp_avg_sq"}
        if set(state) != expected:
            raise InvalidValueError(f"state: expected keys {sorted(expected)}, got {sorted_names(state)}", "state")
        counts = {}
        for key in ("step", "rng_counter"):
            # the core counts both in an i64 (at most 2**63 - 1): "expected an int in [0, 2**64)" refused 2**64 while
            # 2**64 - 1 fell to the core's "optimizer state rng_counter: got ...", a name the caller never gave
            # a 0-d integer array (what np.savez gives back for the int saved) is the int it holds (is_int)
            counts[key] = as_seed(state[key], f"state[{key!r}]", below=2**63)
        m = self._flatten(state["exp_avg"], "state['exp_avg']")
        v = self._flatten(state["exp_avg_sq"], "state['exp_avg_sq']")
        negative = np.flatnonzero(v < 0)
        if negative.size:  # the core checks it too, but names a flat index of its own layout
            name, index = self._parameter_at(int(negative[0]))
            raise InvalidValueError(
                f"state['exp_avg_sq'][{name!r}]: is negative ({v[negative[0]]}) at index {index}; expected second moments >= 0",
                "state['exp_avg_sq']",
            )
        if counts["step"]:  # at step 0 the core refuses any moment that is not 0, in its own words
            _refuse_unreachable_first_moments(m, v, self._parameter_at)
        try:
            self._core.set_optimizer_state(m, v, counts["step"], counts["rng_counter"])
        except InvalidValueError as err:
            raise renamed(err, {"optimizer state step": "state['step']"}) from None

    @writes_leaving_weights
    def _restore_optimizer_state(self, state: Tuple[np.ndarray, np.ndarray, int, int]) -> None:
        """Puts back a ``_core.optimizer_state()`` this package read from this
        model itself (``fit``'s undo and roll back), as it is: not checked again
        in Python as :meth:`load_optimizer_state` checks a user's (the core
        checks it before it changes anything)."""
        self._core.set_optimizer_state(*state)

    @writes_leaving_weights
    def reset_optimizer(self) -> None:
        """Forgets Adam's moments and update count (e.g. before fine-tuning),
        as a new PyTorch optimizer over the same parameters would. Kept: the
        draw counter (``optimizer_state()["rng_counter"]``: the objectives'
        next random draws go on from it, not from the first), the
        accumulated gradients (a :meth:`step` after it takes them; call
        :meth:`zero_grad` to clear them) and the record of
        :attr:`trained_modalities`."""
        self._core.reset_optimizer()

    def _learning_rate(self, lr: Optional[float]) -> Optional[float]:
        if lr is None:
            return None
        return as_finite_float(lr, "lr", lambda v: v > 0, "a finite positive number or None", float32=True)

    def _learning_args(
        self, batch: Any, mask: Any, weights: Optional[Mapping[str, float]], training: bool = False,
        embeddings_checked: bool = False,
    ) -> Tuple["_CoreBatch", List[float]]:
        """The core's batch and the objectives' weights; for a call that
        trains (``training``), at least one weight must be > 0.
        ``embeddings_checked``: recorded embeddings already found no longer
        than unit vectors (fit's steps: its dataset's check)."""
        if isinstance(batch, Batch):
            if mask is not None:
                raise InvalidValueError("mask: give it inside the Batch (Batch(inputs=..., mask=...)), not beside it", "mask")
        elif batch is not None:  # plain inputs (the per-step case): what Batch(inputs=batch, mask=mask) holds, unmade
            _refuse_losses(batch, "batch", "the batch itself ({modality: array}, or a Batch), whose losses (and, in "
                           "backward and train_step, gradients) are computed from it")
            core = _CoreBatch()
            core.inputs, core.mask = self.prepare_inputs(batch, mask)
            self._refuse_training_peak(core, "inputs")
            w = _objective_weights(weights, False, training)
            _refuse_logits_peak(core, w, "inputs")
            return core, w
        else:
            batch = Batch(inputs=batch, mask=mask)  # refuses it: no source given
        core = _CoreBatch()
        e = self.config.embed_dim
        if batch.inputs is not None:
            core.inputs, core.mask = self.prepare_inputs(batch.inputs, batch.mask)
        elif batch.events is not None:
            tables = self._events_parts(batch.events)
            refuse_non_finite_components(tables, batch.events, "events")
            core.components = (len(batch.events), tables)
        elif batch.components is not None:
            core.components = component_parts(batch.components, dims=self.config.input_dims)
        else:
            core.embeddings, core.mask = self._embeddings_and_mask(batch.embeddings, batch.mask)
        b = core.components[0] if core.components is not None else len(core.mask)
        if batch.fused is not None:
            fused = as_real_array(batch.fused, "fused")
            refuse_bools(fused, "fused")  # seed_consistency's targets, numbers as the rewards are
            core.fused = as_float32(fused, "fused", 2, (b, e))
        if batch.rewards is not None:
            if batch.fused is None:  # else ignored without a word: weighing the rows of no objective
                raise InvalidValueError(
                    "rewards: given without fused; only seed_consistency reads them (it weighs row r by "
                    "1 - rewards[r]), and it needs the batch's recorded fused embeddings; expected Batch.fused [B, E] "
                    "beside them, or no rewards", "rewards")
            rewards = as_real_array(batch.rewards, "rewards")
            refuse_bools(rewards, "rewards")
            core.rewards = as_float32(rewards, "rewards", 1, (b,))
        if core.embeddings is not None and not embeddings_checked:  # after the fused and rewards checks: each field's own fault first
            refuse_non_unit_embeddings(core.embeddings, core.mask, "embeddings", "Batch.mask")
        arg = "inputs" if core.inputs is not None else "embeddings" if core.embeddings is not None else "batch"
        self._refuse_training_peak(core, arg)
        w = _objective_weights(weights, batch.fused is not None, training)
        _refuse_logits_peak(core, w, arg)
        return core, w

    def _refuse_training_peak(self, core: "_CoreBatch", arg: str) -> None:
        """TooLargeError naming ``arg`` when the core's losses, backward or
        train_step of ``core`` could take more than the memory budget: the
        core computes a batch whole (the encoders' tapes, every objective's
        activations and their gradients), without a failure path, and past
        ``ulimit -v`` such a batch aborted the process. An upper bound, as
        the allocations depend on the objectives and the mask: per row ten
        ``[7, E]`` (the embeddings or their copy and gradient, the
        attention's K and V and theirs, the fusion's input and its
        gradient...) and four ``[H]``; per row of each encoder input four
        times its width plus the encoder's widths (the tape before and
        after each activation, and the gradients back through it). The
        ``[B, B]`` logits of the contrastive objectives the core checks
        itself. Measured peaks across configs were at most 0.8 of it."""
        c = self.config
        rows = _rows(core)
        widths = self._encoding_sizes[2] + c.embed_dim  # every layer's, and the embeddings' gradient
        per_row = 10 * NUM_MODALITIES * c.embed_dim + 4 * c.hidden_dim
        if core.inputs is not None:
            # a bound, in float32 values, of the peak and the inputs held with every modality given at its
            # config width (plus fused, rewards and mask): the steps of fit stop here, without the sums
            # below (3 us a step, 5 % of a one-row train_step)
            total_d = self._encoding_sizes[0]
            if 32 * rows * (per_row + 4 * (total_d + NUM_MODALITIES * widths) + total_d + c.embed_dim + 3) <= memory_budget():
                return
            parts = [(len(a), a.shape[1], a.nbytes) for a in core.inputs if a is not None]
        elif core.components is not None:
            parts = [(len(p[0]), p[0].shape[1], p[0].nbytes) for p in core.components[1] if p is not None]
        else:
            parts = []
        values = rows * per_row + sum(4 * n * (d + widths) for n, d, _ in parts)
        held = sum(b for _, _, b in parts) + sum(a.nbytes for a in (core.embeddings, core.mask, core.fused, core.rewards) if a is not None)
        refuse_beyond_budget(4 * values, arg, "a training batch of {rows:,} rows may take {bytes} bytes at its peak", held, rows=rows)

    def _events_parts(self, events: Sequence[MultiModalEvent]) -> list:
        """The component form of several events: row ``i`` is ``events[i]``."""
        return event_components(self.config, events, columns=self._input_columns)

    def _unflatten(self, flat: np.ndarray) -> "OrderedDict[str, np.ndarray]":
        """``flat`` (layout order) as ``{name: view of flat}``, the parameters' names and shapes (:meth:`parameter_shapes`)."""
        return split_flat(flat, self._core.param_specs())

    def _parameter_at(self, flat: int) -> Tuple[str, Tuple[int, ...]]:
        """The parameter name and index of position ``flat`` of the flat layout."""
        for name, shape in self.parameter_shapes().items():
            size = int(np.prod(shape))
            if flat < size:
                return name, tuple(int(i) for i in np.unravel_index(flat, shape))
            flat -= size
        raise IndexError(flat)

    def _flatten(self, tensors: Mapping[str, Any], arg: str) -> np.ndarray:
        """``{name: array}`` with every parameter's name and shape → one flat float32 array."""
        checked = self._checked_tensors(tensors, arg, strict=True)
        return np.concatenate([arr.ravel() for arr in checked.values()])



#: The keys of what losses(), backward() and train_step() return.
_LOSS_KEYS = frozenset(OBJECTIVES) | {"total"}


def _refuse_losses(given: Any, arg: str, expected: str) -> None:
    """InvalidValueError naming ``arg`` when ``given`` is a dict of losses
    (its keys objectives' names and ``"total"``), as ``backward``,
    ``train_step`` and ``losses`` return: given back to ``backward`` (as
    PyTorch's ``loss.backward()``) or to ``apply_gradients`` it was refused
    as "unknown modality 'contrastive'", or by the parameter names it lacks,
    neither saying these are losses. ``expected``: what ``arg`` is."""
    if not isinstance(given, Mapping) or not given:
        return
    keys = list(given)
    if all(isinstance(k, str) and k in _LOSS_KEYS for k in keys):
        raise InvalidValueError(
            f"{arg}: got losses (keys {sorted_names(keys)}, as losses(), backward() and train_step() return them), "
            f"not {'a batch' if arg == 'batch' else 'gradients'}; expected {expected}", arg)


class _CoreBatch:
    """The arrays a :class:`Batch` becomes for the core (read by attribute)."""

    def __init__(self) -> None:
        self.inputs: Optional[List[Optional[np.ndarray]]] = None
        self.components: Optional[Tuple[int, list]] = None
        self.embeddings: Optional[np.ndarray] = None
        self.mask: Optional[np.ndarray] = None
        self.fused: Optional[np.ndarray] = None
        self.rewards: Optional[np.ndarray] = None


#: The largest ``|m| / sqrt(v)`` Adam's moments reach, for any gradients:
#: ``m = (1-β1) Σ β1^k g_k`` and ``v = (1-β2) Σ β2^k g_k²`` give, by
#: Cauchy-Schwarz, ``|m| <= (1-β1) / sqrt((1-β2)(1-β1²/β2)) · sqrt(v)``
#: (7.27 for β1 = 0.9, β2 = 0.999), whatever clipping or weight decay did.
_FIRST_MOMENT_BOUND = (1 - ADAM_BETA1) / np.sqrt((1 - ADAM_BETA2) * (1 - ADAM_BETA1**2 / ADAM_BETA2))
#: Slack over the bound: float32 rounding of long sums (relative), and
#: second moments that underflow float32 (``(1-β2) g²`` is 0 below
#: ``|g|`` ~1e-21, where ``m`` is not: absolute).
_FIRST_MOMENT_SLACK = (1.01, 1e-18)


def _refuse_unreachable_first_moments(m: np.ndarray, v: np.ndarray, parameter_at: Any) -> None:
    """Refuses (``InvalidValueError`` naming ``state['exp_avg']``) a first
    moment no sequence of gradients gives beside its second moment: an
    ``exp_avg`` of 1e30 beside ordinary ``exp_avg_sq`` was loaded, and the
    next step moved that weight to 1.6e32 at any learning rate, without a
    word (or was refused blaming the learning rate). One pass, in float64."""
    limit = _FIRST_MOMENT_SLACK[0] * _FIRST_MOMENT_BOUND * np.sqrt(v.astype(np.float64)) + _FIRST_MOMENT_SLACK[1]
    beyond = np.flatnonzero(np.abs(m.astype(np.float64)) > limit)
    if beyond.size:
        i = int(beyond[0])
        name, index = parameter_at(i)
        raise InvalidValueError(
            f"state['exp_avg'][{name!r}]: is {m[i]:g} at index {index}, beside a second moment of {v[i]:g}; Adam's first "
            f"moment is at most {_FIRST_MOMENT_BOUND:.3g} * sqrt(exp_avg_sq) for any gradients (beta1 {ADAM_BETA1}, "
            f"beta2 {ADAM_BETA2}), and {beyond.size} entries exceed it; expected the exp_avg and exp_avg_sq of one "
            "optimizer state (optimizer_state())",
            "state['exp_avg']",
        )
