"""`LearnableMultiModal`: the model's Python face.

Everything is computed by the Rust core on whole batches, with the GIL
released. The per-event methods (`encode_event`, `fuse_event`, ...) build a
batch of one and call the same path as the batched numpy methods.
"""

from __future__ import annotations

__all__ = ["LearnableMultiModal", "IncompatibleKeys", "NUM_MODALITIES"]

import contextlib
import contextvars
import functools
import math
import types
import weakref
from collections import OrderedDict
from collections.abc import Mapping, Sequence  # not typing's aliases: isinstance of them takes 3x as long
from typing import TYPE_CHECKING, AbstractSet, Any, Dict, Iterable, List, NamedTuple, Optional, Tuple, Union, overload

import numpy as np

from . import _core
from ._locking import ModelLock, reads, uninterrupted, writes, writes_leaving_weights
from ._portable import PortablePickle, set_attributes, slot_names, slot_values
from ._validation import (
    IntLike,
    MASK_TAKEN,
    SPREAD_BELOW_FLOAT32,
    as_float32,
    as_mask,
    as_real_array,
    check_flag,
    describe,
    described_entries,
    exact_int,
    is_int,
    is_masked_array,
    masked_inputs_remedy,
    memory_budget,
    one_modality_rows_hint,
    refuse_beyond_budget,
    refuse_bools,
    refuse_float32_underflow_columns,
    shown_number,
    sorted_names,
    unmasked,
    warn_precision_loss,
    wrong_type,
)
from ._caller_warnings import warn_at_caller
from ._frames import (
    frame_columns,
    is_reordering,
    missing_input_refusal,
    named_inputs,
    plain_names,
    refuse_duplicate_columns,
    refuse_reordered_fitted_columns,
    misplaced_names,
    shown_misplaced,
    refuse_unpaired_frames,
    series_str_labels,
)
from .buffer import ExperienceBatch, ExperienceBuffer, buffer_row_bytes, check_fits_memory
from .experience import ExperienceMixin
from .learning import LearningMixin
from .config import TEMPERATURE_RANGE, GraphFeatures, InputDims, LearnableMultiModalConfig, resolve_config
from .graph import absent_graph_rows, featurized, is_graph_list, refuse_stray_graphs
from .exceptions import CheckpointError, InvalidValueError, NonFiniteError, ShapeError, UntrainedModalityWarning
from .types import NORMALIZATION_KEYS, NORMALIZATION_NAMES, CrossModalBinding, BindingType, ModalGraph, Modality, MultiModalEvent, checked_components, refuse_reordered_labels
from .batch import Inputs, overflow_in_events, refuse_events_as_inputs, refuse_non_finite_event

if TYPE_CHECKING:
    from .averaging import WeightAverage
    from .components import CrossModalBinder, FusionNetwork, ModalityAttention, ModalityEncoder, ProjectionHead
    from .training import History, Metric

NUM_MODALITIES = _core.NUM_MODALITIES
ModalityKey = Union[Modality, str, int]


def _near_key(name: str, keys: Iterable[Any], known: AbstractSet[str]) -> Optional[str]:
    """The str key among ``keys`` closest to ``name`` that is none of the
    ``known`` names (a model's own, which are no misspelling): the
    same less case and surrounding spaces, or one difflib finds close
    (``normalization.visual.means``); ``None`` when none is. Only on an
    error's path: it reads every key."""
    import difflib

    others = [k for k in keys if isinstance(k, str) and k != name and k not in known]
    folded = name.strip().casefold()
    same = next((k for k in others if k.strip().casefold() == folded), None)
    if same is not None:
        return same
    close = difflib.get_close_matches(name, others, n=1, cutoff=0.9)
    return close[0] if close else None


class IncompatibleKeys(NamedTuple):
    """What :meth:`LearnableMultiModal.load_state_dict` did not match, as
    PyTorch's ``load_state_dict`` returns it: the model's parameters the
    dict had no tensor for, and the dict's names the model has no parameter
    of (both empty after a ``strict`` load)."""

    missing_keys: List[str]
    unexpected_keys: List[Any]


class _ClassOnly:
    """A classmethod that refuses to be called on an instance: ``m.load(path)``
    returned a new model and left ``m`` untrained, without a word, to a user
    who (as with ``ExperienceBuffer.load``, or Keras' ``load_weights``)
    expected ``m`` loaded."""

    def __init__(self, func: Any) -> None:
        self.func = func
        functools.update_wrapper(self, func)

    def __get__(self, instance: Any, owner: type) -> Any:
        if instance is None:
            return types.MethodType(self.func, owner)
        name, cls = self.func.__name__, owner.__name__

        def refused(*args: Any, **kwargs: Any) -> Any:
            raise TypeError(
                f"{name}: called on a model, which it would leave as it was; it returns a new model: "
                f"model = {cls}.{name}(path) (or model.load_state_dict(...) for weights into this one)"
            )

        return functools.update_wrapper(refused, self.func)


if TYPE_CHECKING:
    # Type checkers see `load` as the classmethod it is on the class: its
    # parameters and its return type (the descriptor's `__get__ -> Any` made
    # `LearnableMultiModal.load(path)` an `Any` under mypy and pyright).
    _class_only = classmethod
else:
    _class_only = _ClassOnly


class _EventCache(weakref.WeakKeyDictionary):
    """The per-event cache: a ``WeakKeyDictionary`` whose :meth:`clear` is
    one C call. The inherited one (``MutableMapping.clear``) pops entry by
    entry and ends by catching a ``KeyError``: 0.6 us for one entry, a
    tenth of an uncached ``fuse_event`` after ``clear_cache()``, and paid
    by every training step of a model that fused an event."""

    def clear(self) -> None:
        if self._iterating:  # an iteration in progress defers removals: the inherited clear keeps its bookkeeping
            super().clear()
        else:
            self.data.clear()


class LearnableMultiModal(LearningMixin, ExperienceMixin, PortablePickle):
    """Encoders, fusion network, cross-modal binder and modality attention.

    Shapes: ``B`` events, ``M = 7`` modalities, ``E = embed_dim``. Batched
    inputs are per-modality arrays ``[B, d_m]`` plus a presence mask
    ``[B, 7]``; rows marked absent are never read (they may hold NaN).

    A model may be shared between threads: readers (``encode``, ``fuse``,
    ``state_dict``, ``save``...) run in parallel, a writer (``train_step``,
    ``load_state_dict``...) waits for them and runs alone, and :meth:`fit`
    keeps other writers out for its whole run while readers still get in
    between its steps (see :mod:`grapheme_multimodal._locking`).

    >>> model = LearnableMultiModal(seed=0)
    >>> model.num_parameters()
    70337
    """

    # the arrays of its pickled state (__getstate__) as bytes, dtype and shape: a pickle of numpy 2
    # loads under numpy 1, and back (_portable.py)
    _PORTABLE_KEYS = ("tensors", "gradients")
    # read into the core (copied) as the model is rebuilt: read-only over the pickled bytes, not copied twice
    _PORTABLE_READ_ONLY = ("tensors", "gradients")

    # For type checkers: the keywords are LearnableMultiModalConfig's (tests/test_typing.py
    # checks they stay so), where `**overrides: Any` took any name of any type.
    @overload
    def __init__(self, config: Optional[LearnableMultiModalConfig] = None) -> None: ...

    @overload
    def __init__(
        self,
        config: Optional[LearnableMultiModalConfig] = None,
        *,
        embed_dim: IntLike = ...,
        hidden_dim: IntLike = ...,
        learning_rate: float = ...,
        num_heads: IntLike = ...,
        buffer_size: IntLike = ...,
        seed: IntLike = ...,
        input_dims: InputDims = ...,
        graph_features: GraphFeatures = ...,
        binder_kind: str = ...,
        temperature: float = ...,
        weight_decay: float = ...,
        grad_clip: Optional[float] = ...,
        fused_neighbors: IntLike = ...,
        fused_neighbor_space: str = ...,
        input_distance: str = ...,
        contrastive_neighbors: IntLike = ...,
        contrastive_neighbor_weight: float = ...,
        neighborhood_neighbors: IntLike = ...,
        neighborhood_temperature: Optional[float] = ...,
        contrastive_pair_power: float = ...,
        encoder_objectives: Optional[Union[Sequence[str], AbstractSet[str]]] = ...,
        fusion_residual: float = ...,
        encoder_hidden: Sequence[IntLike] = ...,
        encoder_output_dim: Optional[IntLike] = ...,
        shared_head: Sequence[IntLike] = ...,
        encoder_input_dropout: float = ...,
        encoder_hidden_dropout: float = ...,
        encoder_skip: bool = ...,
        learnable_temperature: bool = ...,
        reconstruction_decoders: bool = ...,
        reconstruction_subsets: bool = ...,
    ) -> None: ...

    def __init__(self, config: Optional[LearnableMultiModalConfig] = None, **overrides: Any) -> None:
        self.config = resolve_config(config, overrides)
        c = self.config
        self._core = _core.Model(
            c.embed_dim, c.hidden_dim, c.learning_rate, c.num_heads, c.buffer_size, c.seed, list(c.input_dims),
            binder_kind=c.binder_kind, temperature=c.temperature, weight_decay=c.weight_decay, grad_clip=c.grad_clip,
            fused_neighbors=c.fused_neighbors, fused_neighbor_space=c.fused_neighbor_space, input_distance=c.input_distance,
            contrastive_neighbors=c.contrastive_neighbors, contrastive_neighbor_weight=c.contrastive_neighbor_weight,
            neighborhood_neighbors=c.neighborhood_neighbors, neighborhood_temperature=c.neighborhood_temperature,
            contrastive_pair_power=c.contrastive_pair_power,
            encoder_objectives=None if c.encoder_objectives is None else [n in c.encoder_objectives for n in _core.OBJECTIVE_NAMES],
            encoder_hidden=list(c.encoder_hidden), encoder_output_dim=c.encoder_output_dim,
            shared_head=list(c.shared_head), encoder_input_dropout=c.encoder_input_dropout,
            encoder_hidden_dropout=c.encoder_hidden_dropout, learnable_temperature=c.learnable_temperature,
            fusion_residual=c.fusion_residual, encoder_skip=c.encoder_skip,
            reconstruction_decoders=c.reconstruction_decoders, reconstruction_subsets=c.reconstruction_subsets,
        )
        self._lock = ModelLock()
        #: (sum, max) of the input widths and the encoders' widths summed: the preflight of
        #: encode's peak (_refuse_encoding_peak) without a sum over the config per call.
        self._encoding_sizes = (
            sum(c.input_dims), max(c.input_dims),
            sum(c.encoder_hidden) + (c.encoder_output_dim or c.embed_dim) + sum(c.shared_head),
        )
        #: The components an event may have with no preflight of its encoding's peak (_refuse_event_peak):
        #: a bound of its values (twice the widest input and the encoders' widths each) below a few MB.
        self._event_components_unchecked = _EVENT_VALUES_UNCHECKED // (2 * self._encoding_sizes[1] + self._encoding_sizes[2])
        #: Bumped by every change of the state; cached per-event results carry the version they were computed at.
        self._version = 0
        self._cache: "_EventCache" = _EventCache()
        #: Recorded fusions (``record_fusion``, ``record_batch``), a ring of ``config.buffer_size``.
        if _rebuilding.get():  # saved state: the capacity is checked as the buffer grows (ExperienceBuffer._rebuilt)
            self.experience = ExperienceBuffer._rebuilt(c.buffer_size, c.embed_dim, c.input_dims, c.seed)
        else:
            # checked here, so the error names the user's argument (the buffer's is capacity)
            check_fits_memory(c.buffer_size, buffer_row_bytes(c.embed_dim, c.input_dims), "buffer_size")
            self.experience = ExperienceBuffer(c.buffer_size, embed_dim=c.embed_dim, input_dims=c.input_dims, seed=c.seed)
        #: Epochs :meth:`fit` has run so far, those early stopping rolled back included (the model then
        #: holds the weights of the fit's ``History.best_epoch``, fewer epochs' worth): it seeds each
        #: epoch's shuffle, so training resumes exactly, and a fit after a roll-back draws new shuffles,
        #: not those of the epochs rolled back. ``model.history`` holds a record of each.
        self.epochs_trained = 0
        #: One record per epoch of :meth:`fit` (losses, validation metrics, time).
        self.history: List[Dict[str, Any]] = []
        #: The weight average :meth:`fit` applied last (``ema_decay``), with the
        #: trained weights it continues from; see :mod:`grapheme_multimodal.averaging`.
        self._weight_average: Optional["WeightAverage"] = None
        #: Per slot, the str column names of the data frame the modality was first learned from
        #: (fit, fit_normalization), or None: a frame of the same names in another order is refused.
        self._input_columns: Tuple[Optional[Tuple[str, ...]], ...] = _NO_COLUMNS

    @property
    def config(self) -> LearnableMultiModalConfig:
        """The model's configuration (frozen). Fixed once the model is made:
        its weights, optimizer and objectives were built from it."""
        return self.__dict__["config"]

    @config.setter
    def config(self, value: LearnableMultiModalConfig) -> None:
        if "config" in self.__dict__:
            # A config assigned afterwards was believed but not used: replace(model.config,
            # learning_rate=...) trained at the old rate, and save() wrote the new config
            # beside the old weights (an unloadable file when a size changed).
            raise AttributeError(
                "config: a model's config is fixed when it is made (its weights, optimizer and objectives were built "
                "from it); expected a new model instead, LearnableMultiModal(dataclasses.replace(model.config, ...)), "
                "with model.state_dict() loaded into it when the sizes are the same (or pass lr= to fit/train_step)"
            )
        self.__dict__["config"] = value

    # ------------------------------------------------------------------ batched
    def prepare_inputs(
        self, inputs: Inputs, mask: Any = None, *, arg: str = "inputs", mask_arg: str = "mask", for_training: bool = False
    ) -> Tuple[List[Optional[np.ndarray]], np.ndarray]:
        """Per-modality float32 arrays (``None`` where not given) and a bool mask ``[B, 7]``.

        ``inputs`` maps modalities (``Modality``, name or index) to arrays
        ``[B, d_m]`` or to lists of :class:`Graph` (featurised in Rust), or is
        a sequence of 7 such entries (``None`` for absent). Without ``mask``,
        every given modality is present in every row. In a list of graphs,
        ``None`` is a row absent from that modality, as if it held any graph
        and ``mask`` said False there (the results of the other rows are the
        same, bit for bit): without ``mask`` that row's slot is False in the
        returned mask; with ``mask``, a ``None`` row it marks present (True)
        is an :class:`InvalidValueError` naming the row. An empty list (no
        graphs, no rows) is zero rows of the modality, as a ``[0, d_m]`` array
        is. Errors name ``arg`` and
        ``mask_arg``, the caller's names for the two (``fit``'s ``validation``).
        ``for_training``: the data is learned from (``fit``, ``fit_normalization``),
        and a float64 column whose variation float32 loses in the cast gets a
        :class:`PrecisionLossWarning` (one more pass over such data; float32
        input, and every other caller, pays nothing).
        """
        if type(inputs) in _PLAIN_CONTAINERS:
            ready = self._ready_inputs(inputs, mask)
            if ready is not None:
                if for_training:
                    _refuse_subnormal_columns(*ready, arg)
                return ready
        if mask is not None and type(mask) is not np.ndarray:
            # its rows pair with the inputs' by position: a mask frame of the same rows in another
            # order marked other rows present, without a word
            refuse_unpaired_frames(named_inputs(inputs, arg) + [(mask_arg, mask)])
        given_mask = None if mask is None else as_mask(mask, None, mask_arg)
        arrays, absent = self._as_modality_list(inputs, arg, given_mask, for_training, mask_arg)
        sizes = {len(a) for a in arrays if a is not None}
        if given_mask is None:
            if not sizes:
                raise InvalidValueError(f"{arg}: no modality was given; expected at least one array when {mask_arg} is None", arg)
            if len(sizes) > 1:
                empty = [_name(m) for m, a in enumerate(arrays) if a is not None and not len(a)]
                hint = f" ({', '.join(map(repr, empty))} {'has' if len(empty) == 1 else 'have'} none: a modality absent from every row is left out)" if empty else ""
                raise ShapeError(
                    f"{arg}: arrays have different numbers of rows {sorted(sizes)}; expected one batch size{hint}", arg)
            batch = sizes.pop()
            present = [m for m, a in enumerate(arrays) if a is not None]
            if len(present) == NUM_MODALITIES:
                mask_arr = np.ones((batch, NUM_MODALITIES), dtype=bool)
            else:
                mask_arr = np.zeros((batch, NUM_MODALITIES), dtype=bool)
                mask_arr[:, present] = True
            for m, rows in absent.items():  # None in a graph list: that row lacks the modality
                mask_arr[rows, m] = False
        else:
            mask_arr = given_mask
            batch = mask_arr.shape[0]
        for m, a in enumerate(arrays):
            if a is not None and a.shape[0] != batch:
                # with a mask, the batch size is its rows: "(the batch size)" did not say where it came from, nor
                # how a modality no row holds is given (an empty array there was taken for one)
                source = "" if given_mask is None else f", the rows of {mask_arg}"
                absent_hint = "" if given_mask is None or a.shape[0] else (
                    f"; a modality absent from every row is left out of {arg} (its column of {mask_arg} False)")
                raise ShapeError(
                    f"{arg}[{_name(m)!r}]: expected {batch} rows (the batch size{source}), got shape {a.shape}{absent_hint}",
                    f"{arg}[{_name(m)!r}]")
        if for_training:
            _refuse_subnormal_columns(arrays, mask_arr, arg)
        return arrays, mask_arr

    @reads
    def encode(self, inputs: Inputs, mask: Any = None) -> np.ndarray:
        """Modality embeddings ``[B, 7, E]``: unit rows where present, zeros where absent.

        ``inputs`` and ``mask`` as :meth:`prepare_inputs` takes them: in a list
        of graphs, ``None`` is a row absent from that modality (False in
        ``mask``, which must not mark it True).

        A row is divided by its norm floored at ``1e-8`` (the original's
        ``l2norm``): one whose encoder output is shorter than that — an
        all-zero or vanishingly small input to an encoder whose biases are
        still 0, as in a model that has not trained — comes out shorter
        than 1, not blown up to a direction of rounding noise."""
        arrays, mask_arr = self.prepare_inputs(inputs, mask)
        self._warn_untrained(mask_arr)
        self._refuse_encoding_peak("encode", arrays, mask_arr, NUM_MODALITIES * self.config.embed_dim)
        try:
            return self._core.encode(arrays, mask_arr, MASK_TAKEN.get())
        except NonFiniteError as err:  # a NaN a frame never held is named as the pd.NA it was
            raise missing_input_refusal(inputs, mask_arr) or err from None

    @reads
    def encode_and_fuse(self, inputs: Inputs, mask: Any = None) -> Tuple[np.ndarray, np.ndarray]:
        """``(embeddings [B, 7, E], fused [B, E])`` in one pass (inputs as
        :meth:`encode` takes them: ``None`` in a list of graphs is an absent row)."""
        arrays, mask_arr = self.prepare_inputs(inputs, mask)
        self._warn_untrained(mask_arr)
        self._refuse_encoding_peak("encode_and_fuse", arrays, mask_arr, (NUM_MODALITIES + 1) * self.config.embed_dim)
        try:
            return self._core.encode_and_fuse(arrays, mask_arr, MASK_TAKEN.get())
        except NonFiniteError as err:  # a NaN a frame never held is named as the pd.NA it was
            raise missing_input_refusal(inputs, mask_arr) or err from None

    @reads
    def hidden_features(self, inputs: Inputs, mask: Any = None, layer: IntLike = -1) -> np.ndarray:
        """The encoders' own hidden features ``[B, 7, H]``: each modality's
        hidden layer ``layer`` (an index into ``config.encoder_hidden``, whose
        width is ``H``; ``-1``, the default, is the last) after its
        LeakyReLU, without dropout; zeros where a modality is absent.

        They come before the layers that map every modality into the one
        aligned space (the encoder's output layer and the shared head), as
        SimCLR reads its representation out before the projection head:
        cross-modal alignment keeps what the modalities share, these keep
        more of what each says alone. Side by side they are often the
        better input for a downstream classifier than the fused embedding
        (docs/objectives.md, "Read-outs before the aligned space").
        Needs a model with ``encoder_hidden``; one row per event and
        modality, as :meth:`encode` takes them (``None`` in a list of graphs:
        a row absent from that modality).
        """
        self.hidden_width(layer)
        arrays, mask_arr = self.prepare_inputs(inputs, mask)
        self._warn_untrained(mask_arr)
        layer = int(layer) % len(self.config.encoder_hidden)
        widths = self.config.encoder_hidden
        # unlike encode's, the hidden layers run over a modality's whole batch: two layers' activations at once
        widest = max([widths[0]] + [widths[i - 1] + widths[i] for i in range(1, layer + 1)])
        self._refuse_encoding_peak("hidden_features", arrays, mask_arr, NUM_MODALITIES * widths[layer], widest)
        try:
            return self._core.hidden_features(arrays, mask_arr, layer, MASK_TAKEN.get())
        except NonFiniteError as err:  # a NaN a frame never held is named as the pd.NA it was
            raise missing_input_refusal(inputs, mask_arr) or err from None

    def hidden_width(self, layer: IntLike = -1, arg: str = "layer") -> int:
        """The width ``H`` of :meth:`hidden_features` for hidden layer
        ``layer``. An :class:`InvalidValueError` naming ``arg`` when the
        encoders have no hidden layers or ``layer`` is not an index into
        ``config.encoder_hidden``: the one check of every caller that asks
        for hidden features (the CLI, Ray, the estimator) before it works.
        A ``layer`` that is no int (1.0, "0", None) is a ``TypeError``."""
        widths = tuple(self.config.encoder_hidden)
        if not is_int(layer):  # a wrong type: a TypeError, as the package's other int arguments
            raise wrong_type("layer", "an integer index into config.encoder_hidden", layer)
        layer = exact_int(layer)  # a 0-d array too: the int it holds
        if not widths:
            raise InvalidValueError(
                f"{arg}: this model's encoders have no hidden layers (config.encoder_hidden is empty); "
                "expected a model built with encoder_hidden, e.g. (256,)", arg)
        if not -len(widths) <= layer < len(widths):
            raise InvalidValueError(
                f"layer: expected an index into config.encoder_hidden = {widths} "
                f"({-len(widths)} to {len(widths) - 1}), got {shown_number(layer, str)}", "layer")
        return widths[layer]

    @reads
    def fuse(self, embeddings: Any, mask: Any = None) -> np.ndarray:
        """Fused unit embeddings ``[B, E]`` of ``embeddings [B, 7, E]``.

        Absent modalities count as zeros. ``mask`` defaults to the slots that
        are not all zero.
        """
        emb, mask_arr = self._embeddings_and_mask(embeddings, mask)
        self._refuse_peak("fuse", emb.shape[0])
        return self._core.fuse(emb, mask_arr)

    @reads
    def bind(self, a: Any, b: Any) -> np.ndarray:
        """Binding strength in [0, 1] of each row pair: ``a [B, E]``, ``b [B, E]`` → ``[B]``."""
        e = self.config.embed_dim
        refuse_unpaired_frames((("a", a), ("b", b)))  # rows pair by position
        a = as_float32(a, "a", 2, (None, e))
        b = as_float32(b, "b", 2, (a.shape[0], e))
        self._refuse_peak("bind", a.shape[0], "a", pairs=1 if b is a else 2)
        return self._core.bind(a, b)

    @reads
    def pair_strengths(self, embeddings: Any, mask: Any = None) -> np.ndarray:
        """``S [B, 7, 7]``: ``S[b, i, j] = strength(e_i, e_j)`` where both are present, else 0."""
        emb, mask_arr = self._embeddings_and_mask(embeddings, mask)
        self._refuse_peak("pair_strengths", emb.shape[0])
        return self._core.pair_strengths(emb, mask_arr)

    def attention_weights(self, query: Any, embeddings: Any, mask: Any = None, per_head: bool = False) -> np.ndarray:
        """Attention of ``query [B, E]`` over the present modalities: ``[B, 7]``
        (mean over heads; sums to 1 over present modalities, 0 elsewhere and
        in rows with none present), or ``[B, heads, 7]`` with ``per_head=True``."""
        per_head = check_flag(per_head, "per_head")  # "False" would be true: the other shape, without a word
        weights, _, heads = self._attend(query, embeddings, mask)
        return heads if per_head else weights

    def attend(self, query: Any, embeddings: Any, mask: Any = None) -> np.ndarray:
        """Attended vector ``[B, E]`` (zeros in rows with no modality present)."""
        return self._attend(query, embeddings, mask)[1]

    # ---------------------------------------------------------------- per event
    def encode_event(self, event: MultiModalEvent) -> Dict[Modality, np.ndarray]:
        """``{modality: embedding [E]}`` for each modality present in ``event``."""
        emb, mask = self._encoded(event)
        rows, present = emb[0], mask[0].tolist()  # one conversion, not a numpy scalar per modality
        return {m: rows[i].copy() for i, m in enumerate(_MODALITIES) if present[i]}

    def fuse_event(self, event: MultiModalEvent) -> np.ndarray:
        """The fused unit embedding ``[E]`` of ``event``."""
        fused = self._event_entry(event)[3]  # computed with its embeddings, cached: a copy is handed out
        if fused is None:
            raise InvalidValueError(f"event: event {event.id} has no components; expected at least one to fuse", "event")
        return fused.copy()

    @reads
    def compute_bindings(self, event: MultiModalEvent) -> List[CrossModalBinding]:
        """One binding per unordered pair of present modalities (slot order),
        with the binder's strength, from node 0 to node 0."""
        emb, mask = self._encoded(event)
        strengths = self._core.pair_strengths(emb, mask)[0]
        present = [m for m in Modality if mask[0, m.index]]
        return [
            CrossModalBinding((a, 0), (b, 0), float(strengths[a.index, b.index]), BindingType.REFERENCE)
            for i, a in enumerate(present)
            for b in present[i + 1 :]
        ]

    @reads
    def get_modality_attention(self, query: Any, event: MultiModalEvent) -> List[Tuple[Modality, float]]:
        """``[(modality, weight)]`` for all 7 modalities (0 for absent ones)."""
        weights = self._attend_event(query, event)[0][0]
        return [(m, float(weights[m.index])) for m in Modality]

    @reads
    def attend_to_event(self, query: Any, event: MultiModalEvent) -> np.ndarray:
        """Attended vector ``[E]`` of ``query [E]`` over ``event``'s modalities."""
        return self._attend_event(query, event)[1][0]

    # ------------------------------------------------------------ parameters
    def num_parameters(self) -> int:
        """Number of trainable scalars (70,337 with the defaults)."""
        return self._core.num_parameters

    def parameter_shapes(self) -> Dict[str, Tuple[int, ...]]:
        """``{name: shape}`` in a stable order."""
        return {name: tuple(shape) for name, shape in self._core.param_specs()}

    @reads
    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """Copies of every parameter tensor, float32, under stable readable
        names (``encoder.visual.weight``, ``fusion.0.bias``, ``attention.q.weight``...)
        — read in one call: each is a view of one fresh copy of them all —
        then, for each modality whose inputs the model standardises (learned
        by ``fit``, whose ``standardize=True`` is the default, or set by
        :meth:`set_normalization`), its ``normalization.<modality>.mean``
        and ``normalization.<modality>.std`` ``[d]``: buffers, not
        parameters, as PyTorch's state dict holds a BatchNorm's running
        statistics. Without them a model of the same config loaded from the
        dict embedded the raw inputs: other embeddings, said nowhere."""
        state = self._parameters()
        for m in _MODALITIES:
            stats = self._core.get_normalization(m.index)
            if stats is not None:
                state[NORMALIZATION_KEYS[m][0]], state[NORMALIZATION_KEYS[m][1]] = stats
        return state

    def _parameters(self) -> "OrderedDict[str, np.ndarray]":
        """:meth:`state_dict`'s parameters alone (what the package's own
        restores, the weight average and a checkpoint's ``param/`` tensors hold)."""
        return self._unflatten(self._core.get_params())  # one read: a call per tensor took twice the time

    @writes
    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> IncompatibleKeys:
        """Loads parameters by name, and the input standardisation
        :meth:`state_dict` holds (``normalization.<modality>.mean`` and
        ``.std``). With ``strict`` the parameters' names must match exactly,
        and a dict that holds no standardisation for a modality the model
        standardises is refused (a dict of the parameters alone cannot be
        told from one of a model that standardised nothing; PyTorch's strict
        load refuses a dict without a BatchNorm's statistics alike): pass
        ``strict=False`` to keep the model's, or remove it first with
        :meth:`set_normalization` to load the dict as the whole state. A
        standardisation the dict holds is set, in a model that had none
        too. Without ``strict`` one the dict does not hold is left as it was
        (and listed as missing). Shapes must
        always match and values be finite (and each ``std`` at least
        ``MIN_STD``). Nothing is changed unless every tensor is valid. A
        learned ``<objective>.log_temperature`` beyond its range (temperature
        in ``TEMPERATURE_RANGE``, where training keeps it) is loaded as its
        bound, with a warning: the value the model computes with.
        Returns, as PyTorch does, the :class:`IncompatibleKeys`
        ``(missing_keys, unexpected_keys)``: with ``strict=False`` what was
        left as it was and what was ignored (a dict of other names,
        ``module.encoder...``, loads nothing; a strict load's refusal of
        one whose names are all the model's behind one prefix names it).

        Weights loaded into an encoder (an ``encoder.<modality>.*`` tensor
        whose values change) were trained elsewhere, on data this model
        never saw: the record of :attr:`trained_modalities` becomes ``None``
        (not known, so no :class:`UntrainedModalityWarning`; it stays
        unknown as the model trains on, as for a checkpoint from before the
        record). A load that leaves every encoder's own tensors as they
        were (other components only, with ``strict=False``, or the same
        values) keeps the record.

        Adam's state (:meth:`optimizer_state`: moments, step count, draw
        counter) and the accumulated gradients are left as they are, as
        PyTorch's ``module.load_state_dict`` leaves the optimizer and each
        ``.grad``: restore them with :meth:`load_optimizer_state` (training
        then resumes bit for bit), or start afresh with
        :meth:`reset_optimizer` and :meth:`zero_grad`."""
        strict = check_flag(strict, "strict")  # "False" would be true: the strict check, not what was asked
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict: expected a mapping name -> array, got {type(state_dict).__name__}")
        params = {k: v for k, v in state_dict.items() if k not in NORMALIZATION_NAMES}
        staged = self._checked_tensors(params, "state_dict", strict, note=" (strict=True)")
        stats = self._checked_normalization(state_dict, "state_dict")
        # The standardisations the model applies that the dict holds none for: a dict of the parameters
        # alone ({k: ... for k in model.gradients()}, one saved before state_dict held them) looks the same
        # as one of a model that standardised nothing. A strict load took it for the latter and removed
        # them, said nowhere (and returned "all keys matched"): the model then embedded the raw inputs.
        # Refused instead, as PyTorch's strict load refuses a dict without a BatchNorm's statistics.
        unheld = [m for m in _MODALITIES if m not in stats and self._core.get_normalization(m.index) is not None]
        if strict and unheld:
            keys = [key for m in unheld for key in NORMALIZATION_KEYS[m]]
            names = ", ".join(repr(str(m)) for m in unheld)
            # a dict holding some standardisation is a whole state dict, of a model that standardised no such
            # inputs (fitted without them, or standardize=False): "a dict of the parameters alone" told its owner
            # the dict was incomplete
            why = ("a state dict of a model that standardised no such inputs" if stats else "a dict of the parameters "
                   "alone, one saved before state_dict held the standardisation, or one of a model that standardised "
                   "no inputs")
            raise InvalidValueError(
                f"state_dict: unexpected keys [], missing keys {keys} (strict=True): the model standardises the inputs "
                f"of {names} and the dict holds no standardisation for them ({why}); expected them, as state_dict() "
                "gives them: pass strict=False to keep the model's standardisation, or remove it first "
                # each call spelt out: "(model.set_normalization('visual'), and of each other)" named one of them
                f"({'; '.join(f'model.set_normalization({str(m)!r})' for m in unheld)}) to load the dict as the whole "
                "state", "state_dict")
        staged = _temperatures_in_range(staged, "state_dict")  # warned of once the load is sure to go ahead
        foreign = any(
            name.startswith("encoder.") and not np.array_equal(arr, self._core.get_param(name)) for name, arr in staged.items()
        )
        with uninterrupted():  # with the record of trained modalities: Ctrl-C between the two would load half
            self._set_params(staged)
            for m, (mean, std) in stats.items():
                self._core.set_normalization(m.index, mean, std)
            if foreign:
                self._core.set_trained_rows(None)
        shapes = self.parameter_shapes()
        kept = [key for m in unheld for key in NORMALIZATION_KEYS[m]]  # left as they were (strict=False)
        return IncompatibleKeys([n for n in shapes if n not in staged] + kept,
                                sorted((k for k in params if k not in shapes), key=str))

    def _checked_normalization(self, state_dict: Mapping[str, Any], arg: str) -> Dict[Modality, Tuple[np.ndarray, np.ndarray]]:
        """The standardisations ``state_dict`` holds (both of a modality's
        keys, or neither), each checked as :meth:`set_normalization` and a
        checkpoint's load check it, before anything is set."""
        stats = {}
        for m, (mean_key, std_key) in NORMALIZATION_KEYS.items():
            has_mean, has_std = mean_key in state_dict, std_key in state_dict
            if not (has_mean or has_std):
                continue
            if has_mean != has_std:
                given, missing = (mean_key, std_key) if has_mean else (std_key, mean_key)
                # a key that misses the name by its case, a space or a letter (Normalization.visual.mean) was
                # ignored without a word, and the refusal did not say where the missing tensor was
                near = _near_key(missing, state_dict, NORMALIZATION_NAMES | set(self.parameter_shapes()))
                beside = "" if near is None else f" (it holds {near!r}: a misspelling of {missing!r}?)"
                raise InvalidValueError(f"{arg}: holds {given!r} but not {missing!r}{beside}; expected both (a "
                                        "modality's standardisation) or neither", arg)
            d = self.config.input_dims[m.index]
            pair = [_checked_tensor(state_dict[key], f"{arg}[{key!r}]", (d,)) for key in (mean_key, std_key)]
            _refuse_std_lost_in_float32(state_dict[std_key], pair[1], f"{arg}[{std_key!r}]")
            small = np.flatnonzero(~(pair[1] >= _core.MIN_STD))
            if small.size:
                name = f"{arg}[{std_key!r}]"
                raise InvalidValueError(f"{name}: column {int(small[0])} is {float(pair[1][small[0]])!r}; expected "
                                        f"every std >= MIN_STD ({_core.MIN_STD:.3g})", name)
            stats[m] = (pair[0], pair[1])
        return stats

    @writes
    def _load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """:meth:`load_state_dict` (strict) for the package's own restores
        of this model's weights (fit's best epoch and its undo, the weight
        average, a checkpoint): the record of :attr:`trained_modalities` is
        theirs to keep or set, and is left as it is."""
        staged = _temperatures_in_range(self._checked_tensors(state_dict, "state_dict", True, note=" (strict=True)"),
                                        "state_dict")
        with uninterrupted():
            self._set_params(staged)

    @writes
    def _restore_weights(self, weights: Union[Mapping[str, np.ndarray], np.ndarray]) -> None:
        """Puts back weights this package read from this model itself (a
        ``state_dict()`` or a flat ``_core.get_params()``, kept by ``fit`` to
        undo or roll back) or made from them (the weight average): float32
        arrays of this model's names and shapes, finite. They are not checked
        again in Python (:meth:`_checked_tensors` cost a fifth of a small
        ``fit``'s time); the core's write still checks every tensor's shape
        and values before it writes any. A user's tensors, or a file's, go
        through :meth:`_load_state_dict`."""
        tensors = self._unflatten(weights) if isinstance(weights, np.ndarray) else weights
        with uninterrupted():
            self._set_params(tensors)

    def _set_params(self, staged: Mapping[str, np.ndarray]) -> None:
        """Sets checked tensors (:meth:`_checked_tensors`) in one core call,
        which checks them all again before it writes any; under the write
        lock and :func:`uninterrupted`."""
        self._core.set_params(list(staged.items()))

    def clear_cache(self) -> None:
        """Forgets cached per-event embeddings (they are never used once the
        model or the event has changed: the cache checks both on every call)."""
        self._cache.clear()

    @property
    def experience(self) -> ExperienceBuffer:
        """The recorded fusions (``record_fusion``, ``record_batch``): an
        :class:`~grapheme_multimodal.ExperienceBuffer` of ``config.buffer_size``
        experiences. Another :class:`~grapheme_multimodal.ExperienceBuffer`
        may be put in its place when its ``embed_dim`` and ``input_dims``
        are each this model's or ``None`` (not set: it then records this
        model's; ``input_dims=None`` keeps no inputs). Assigning ``None``
        itself is refused (``TypeError``): ``model.experience.clear()``
        empties the buffer."""
        return self.__dict__["experience"]

    @experience.setter
    def experience(self, buffer: ExperienceBuffer) -> None:
        # Checked here: anything else was kept, and failed later in save
        # ("'str' object has no attribute 'state'") or in the next record.
        if not isinstance(buffer, ExperienceBuffer):
            raise TypeError(f"experience: expected an ExperienceBuffer, got {describe(buffer)}")
        c = self.config
        with buffer._lock:  # checked and claimed in one step: another thread may be recording into it
            for name, own in (("embed_dim", c.embed_dim), ("input_dims", c.input_dims)):
                given = getattr(buffer, name)
                if given is not None and given != own:
                    raise InvalidValueError(
                        f"experience: a buffer of {name}={given} cannot record this model's fusions; "
                        f"expected {name}={own} or None", "experience",
                    )
            if buffer.embed_dim is None:
                # Else it took rows of any E given to its extend (or another model's record, sharing it),
                # and this model's record_batch failed naming `embeddings`, which it has not. No rows until
                # it records, as a new buffer: 1,024 NaN rows of a wide WL modality's inputs took 256 MiB and more.
                buffer._allocate(c.embed_dim, check_capacity=False, rows=0)
            buffer._model_dims = (c.embed_dim, c.input_dims)  # its load keeps to them too
        self.__dict__["experience"] = buffer  # the attribute pickling and copies carry (_REBUILT_ATTRIBUTES)

    @property
    def encoder(self) -> "ModalityEncoder":
        """This model's encoders, as a :class:`ModalityEncoder` view."""
        from .components import ModalityEncoder

        return ModalityEncoder._view(self)

    @property
    def head(self) -> "ProjectionHead":
        """The projection head shared by the encoders (``config.shared_head``), as a view."""
        from .components import ProjectionHead

        return ProjectionHead._view(self)

    @property
    def fusion(self) -> "FusionNetwork":
        """This model's fusion network, as a :class:`FusionNetwork` view."""
        from .components import FusionNetwork

        return FusionNetwork._view(self)

    @property
    def binder(self) -> "CrossModalBinder":
        """This model's binder, as a :class:`CrossModalBinder` view."""
        from .components import CrossModalBinder

        return CrossModalBinder._view(self)

    @property
    def attention(self) -> "ModalityAttention":
        """This model's attention, as a :class:`ModalityAttention` view."""
        from .components import ModalityAttention

        return ModalityAttention._view(self)

    @property
    def trained_modalities(self) -> Optional[Dict[Modality, int]]:
        """``{modality: rows}`` of the modalities whose encoder has been
        trained, read-only: for each, the rows of training batches it was
        present in, summed over every accepted step (:meth:`fit`,
        :meth:`train_step`, :meth:`step` after :meth:`backward`, Ray's
        ``distributed.fit``) whose weighted objectives reach the encoders
        (those of epochs that early stopping rolled back included, as in
        ``epochs_trained``). Batches of recorded embeddings train no
        encoder and count nothing; nor does a refused step.
        :meth:`apply_gradients`, which does not see the batch its gradients
        came from, adds one row (a lower bound) to each modality whose
        encoder's own tensors (``encoder.<modality>.*``) get a nonzero
        gradient. ``{}`` when no encoder trained: a fresh model, or one
        whose steps reached no encoder (recorded embeddings, or
        ``encoder_objectives`` leaving the weighted objectives out).
        ``None`` when it is not known: a model loaded from a checkpoint
        written before the record existed, by a model that had trained, or
        one whose encoders got weights from elsewhere through
        :meth:`load_state_dict` (it stays unknown as the model trains on).
        Saved in checkpoints and copies.

        A model that has taken a training step warns
        (:class:`UntrainedModalityWarning`) when asked to encode a modality
        missing here: its encoder has its random initial weights. That
        includes a model trained only on recorded embeddings, all of whose
        encoders are as initialised; a fresh model, or one whose record is
        ``None``, does not warn."""
        rows = self._core.trained_rows()
        if rows is None:
            return None
        return {m: int(n) for m, n in zip(Modality, rows) if n}

    @property
    def weight_average(self) -> Optional["WeightAverage"]:
        """The weight average the last :meth:`fit` with ``ema_decay`` left
        in the model (its weights): ``decay``, ``count`` (epochs averaged),
        ``mean`` (float64) and the ``trained`` weights the next such ``fit``
        continues from, read-only — or ``None`` when there is none or the
        weights have changed since."""
        with self._lock.reading():
            average = self._weight_average
            return average if average is not None and average.held_by(self) else None

    # ---------------------------------------------------- input standardisation
    @reads
    def normalization(self, modality: ModalityKey) -> Optional[Tuple[np.ndarray, np.ndarray]]:
        """``(mean [d], std [d])`` applied to ``modality``'s inputs before its
        encoder, or None."""
        return self._core.get_normalization(Modality.parse(modality).index)

    @reads
    def input_columns(self, modality: ModalityKey) -> Optional[Tuple[str, ...]]:
        """The column names of the data frame (pandas, polars; every name a
        str) ``modality``'s inputs were first learned from by :meth:`fit` or
        :meth:`fit_normalization`, or None (numpy arrays, or not learned yet).
        The model reads a modality's columns by position: from then on, a
        frame of the same names in another order is refused
        (:class:`InvalidValueError` naming the input and the expected order),
        as scikit-learn refuses it; so is an event's :class:`ModalFeatures`
        built from a pandas Series (a row of such a frame) whose str labels
        are those names in another order, by every event path
        (``encode_event``, ``fuse_event``, ``record_fusion``, ``fit`` and
        ``train_step`` of events). Arrays are not checked, nor frames of
        other names (renamed columns), nor frames whose names are not all
        str (``0, 1, 2`` or a mix: no names are learned from them, as
        scikit-learn keeps ``feature_names_in_`` only for str names; such a
        frame with its columns reordered is read by position). Names of a
        pyarrow-backed string index are str. Kept by :meth:`save`, pickling
        and copies."""
        return self._input_columns[Modality.parse(modality).index]

    @writes_leaving_weights
    def set_normalization(self, modality: ModalityKey, mean: Any = None, std: Any = None) -> None:
        """Sets ``modality``'s input standardisation ``(x - mean) / std``
        (finite, ``std >= MIN_STD`` = 1.18e-38, the smallest normal float32;
        inputs the division takes beyond float32 are refused when encoded),
        or removes it when both are None. The same check applies when a
        checkpoint is loaded. A refused ``mean`` or ``std`` is named by the
        modality's standardisation, ``normalization['visual'].mean``."""
        m = Modality.parse(modality)
        if mean is None and std is None:
            self._core.set_normalization(m.index)
        elif mean is None or std is None:  # else as_float32's "got array of shape () and dtype object"
            given, missing = ("mean", "std") if std is None else ("std", "mean")
            raise InvalidValueError(
                f"{missing}: got None beside a {given}; expected both (arrays of {self.config.input_dims[m.index]}), "
                "or both None to remove the standardisation", missing,
            )
        else:
            d = self.config.input_dims[m.index]
            # named as the core names a NaN or a too-small std (and a checkpoint's): a mean of 1e39 was
            # "mean: ...", a NaN one "normalization['visual'].mean: ...", in one call
            where = f"normalization[{str(m)!r}]"
            for part, value in (("mean", mean), ("std", std)):
                _refuse_reordered_labels(f"{where}.{part}", self._input_columns[m.index], value)
            mean32, std32 = as_float32(mean, f"{where}.mean", 1, (d,)), as_float32(std, f"{where}.std", 1, (d,))
            _refuse_std_lost_in_float32(std, std32, f"{where}.std")
            self._core.set_normalization(m.index, mean32, std32)

    @writes_leaving_weights
    def fit_normalization(self, inputs: Inputs, mask: Any = None) -> None:
        """Learns each given modality's mean and std from the rows marked
        present (like scikit-learn's ``StandardScaler``; a constant column
        gets std 1; a column of tiny but varying values, say 1e-30, is
        standardised like any other, and one whose values vary by a std below
        ``MIN_STD`` = 1.18e-38, which float32 cannot divide by, is refused
        with an :class:`InvalidValueError` naming it) and
        applies them from now on. The statistics are those of the float32
        rows the model reads: a float64 column whose variation float32
        cannot hold (``1e6 + 1e-3 * x``, Unix timestamps seconds apart) gets a
        :class:`~grapheme_multimodal.PrecisionLossWarning` naming it; subtract
        its mean (or rescale it) before passing it. Inputs of no rows, or a
        ``mask`` that is False everywhere, are refused
        (:class:`InvalidValueError`): there is nothing to learn from.
        ``None`` in a list of graphs is a row absent from that modality, left
        out of its statistics (see :meth:`prepare_inputs`). A ``mask`` that
        marks a modality present in some row while ``inputs`` holds no array
        for it is refused (:class:`InvalidValueError` naming ``mask``), as
        :meth:`encode` and :meth:`fit` refuse it. A modality given as a data
        frame of str column names, learned for the first time, keeps them
        (:meth:`input_columns`): a frame of them in another order is refused
        from then on."""
        self._learn_normalization(inputs, mask, refuse_unfed=True)

    @writes_leaving_weights
    def _fit_normalization_of_given(self, inputs: Inputs, mask: Any, arg: str = "inputs") -> None:
        """:meth:`fit_normalization` for training's own data: ``mask`` is the
        whole data's, ``inputs`` hold only the modalities still to learn (the
        others ``None``, though ``mask`` marks them present), so a present
        modality without an array is passed over, where the public method
        refuses it as the caller's mistake. Errors name ``arg`` (``fit``'s ``data``)."""
        self._learn_normalization(inputs, mask, refuse_unfed=False, arg=arg)

    def _learn_normalization(self, inputs: Inputs, mask: Any, refuse_unfed: bool, arg: str = "inputs") -> None:
        """The two methods' work; ``refuse_unfed``: refuse a modality ``mask``
        marks present without an array in ``inputs``."""
        arrays, mask_arr = self.prepare_inputs(inputs, mask, arg=arg, for_training=True)
        if refuse_unfed:  # else that modality stayed unstandardised without a word, and only encode refused the mask
            for m, a in enumerate(arrays):
                if a is None and mask_arr[:, m].any():  # encode's words (rust/core/src/batch.rs)
                    raise InvalidValueError(
                        f"mask: marks modality {_name(m)!r} present in row {int(np.argmax(mask_arr[:, m]))} "
                        "but no input array was given for it", "mask")
        if len(mask_arr) == 0:  # it learned nothing and said nothing: the inputs went on unstandardised
            raise InvalidValueError("inputs: no rows; expected at least one row to learn the standardisation from", "inputs")
        learned = []
        for m, a in enumerate(arrays):
            present = mask_arr[:, m]
            if a is None or not present.any():
                continue
            rows = a if present.all() else a[present]
            with np.errstate(invalid="ignore", over="ignore"):  # NaN/inf in the rows: named below
                std = rows.std(axis=0, dtype=np.float64)  # float64 sums without a float64 copy
                mean = rows.mean(axis=0, dtype=np.float64)
            if not (np.isfinite(mean).all() and np.isfinite(std).all()):  # float32 rows square finitely in float64
                row = int(np.flatnonzero(present)[np.flatnonzero(~np.isfinite(rows).all(axis=1))[0]])
                missing = missing_input_refusal(inputs, mask_arr, arg)  # a frame's pd.NA named as such
                if missing is not None:
                    raise missing
                raise NonFiniteError(
                    f"{arg}[{_name(m)!r}]: contains a non-finite value (NaN or inf) at row {row} (a row marked present); "
                    "expected finite numbers", f"{arg}[{_name(m)!r}]",
                )
            _refuse_spread_below_float32(rows, std, f"{arg}[{_name(m)!r}]")
            learned.append((m, mean, np.where(std >= _core.MIN_STD, std, 1.0)))
        if not learned and not mask_arr.any():  # as rows of none: it learned nothing and said nothing
            if mask is None:  # no mask given: only None rows of graph lists leave every row absent
                raise InvalidValueError(
                    f"inputs: {_ALL_NONE} (no row holds a modality); expected at least one present row to learn "
                    "the standardisation from", "inputs")
            raise InvalidValueError(
                "mask: is False everywhere (no row holds a modality); expected at least one present row to learn "
                "the standardisation from", "mask")
        columns = frame_columns(inputs) if refuse_unfed else {}  # fit keeps its own data's (training.fit)
        with uninterrupted():  # all modalities or none: Ctrl-C between two would standardise some
            for m, mean, std in learned:
                self.set_normalization(m, mean, std)
            self._remember_columns({m: columns[m] for m, _, _ in learned if m in columns})

    @writes_leaving_weights
    def _remember_columns(self, columns: Mapping[int, Tuple[str, ...]]) -> None:
        """Keeps ``columns`` (slot -> a data frame's str column names, of the
        width of the slot's inputs) as the slots' :meth:`input_columns`
        where none are known yet."""
        if not columns:
            return
        known = list(self._input_columns)
        for m, names in columns.items():
            if known[m] is None and len(names) == self.config.input_dims[m]:
                known[m] = tuple(plain_names(names))  # numpy's str too (a view's feature_names_in_)
        self._input_columns = tuple(known)

    # ----------------------------------------------------- training, persistence
    if TYPE_CHECKING:  # what training.fit takes (tests/test_typing.py checks they stay the same); `**kwargs: Any`
        # let a misspelt or mistyped option pass a type checker. At runtime, fit's __signature__ shows them too.
        def fit(
            self,
            data: Any,
            *,
            mask: Any = None,
            epochs: IntLike = 10,
            batch_size: IntLike = 64,
            objectives: Optional[Mapping[str, float]] = None,
            lr: Optional[float] = None,
            validation: Any = None,
            validation_mask: Any = None,
            metrics: Optional[Mapping[str, Metric]] = None,
            early_stopping: Optional[IntLike] = None,
            monitor: Optional[str] = None,
            mode: Optional[str] = None,
            modality_dropout: float = 0.0,
            ema_decay: Optional[float] = None,
            standardize: bool = True,
            progress: bool = True,
            seed: Optional[IntLike] = None,
        ) -> History: ...

    else:

        def fit(self, data: Any, *more: Any, **kwargs: Any) -> "History":
            """Trains on ``data`` for some epochs; see :func:`grapheme_multimodal.training.fit`."""
            from .training import fit, refuse_other_libraries_fit_options

            refuse_other_libraries_fit_options(more, kwargs)
            return fit(self, data, **kwargs)

    def save(self, path: Any, include_experience: bool = True) -> None:
        """Writes weights, config, input standardisation, Adam state, training
        progress and (by default) the experience buffer to ``path``
        (safetensors with checksums; atomic: a failed or killed save leaves
        the previous file intact). :meth:`load` gives the model back, ready
        to train on exactly as if it had never stopped. Gradients
        accumulated by :meth:`backward` and not yet applied are not saved
        (as in a PyTorch state dict): :meth:`step` before saving mid-way
        through an accumulation."""
        from .checkpoint import save_checkpoint

        save_checkpoint(self, path, check_flag(include_experience, "include_experience"))

    @_class_only
    def load(cls, path: Any) -> "LearnableMultiModal":
        """The model saved at ``path`` by :meth:`save`, after verifying the
        file's checksums and checking every tensor against its config
        (:class:`~grapheme_multimodal.CheckpointError` otherwise). Loading a
        checkpoint runs no code, unlike unpickling: share checkpoints, not pickles.
        The model is a :class:`LearnableMultiModal` whatever class ``load`` is
        called on: a checkpoint holds no class and no attributes of a
        subclass (a pickle keeps both). Called on the class: ``model.load(path)``
        on a model is refused (it would leave that model as it was, where
        ``ExperienceBuffer.load`` loads in place)."""
        from .checkpoint import load_checkpoint

        return load_checkpoint(path)

    def __getstate__(self) -> Dict[str, Any]:
        """Pickling: the checkpoint's tensors and metadata. A pickle is Python
        pickle, which runs code when loaded: unpickle only files you trust
        (:meth:`save`/:meth:`load` checkpoints are safe to share)."""
        from .checkpoint import checkpoint_state

        with self._lock.reading():  # the gradients of the same moment
            tensors, meta = checkpoint_state(self)
            state: Dict[str, Any] = {"tensors": tensors, "meta": meta}
            if self._core.has_gradients():  # a copy steps as its original does (a checkpoint holds none)
                state["gradients"] = self._core.get_flat_grad()
                pending = self._core.pending_rows()
                if any(pending):  # and records the rows of its backward()s, as the original's step would
                    state["pending_rows"] = pending
        # A subclass's attributes, and those a user set, go as they are (they were dropped).
        # From a copy of __dict__ (one C call: no other thread runs during it): another thread's read
        # caches an entry there (_untrained_for on its first encode), and the scan of the live dict
        # raised "dictionary changed size during iteration" from pickle.dumps or copy.deepcopy.
        attributes = {k: v for k, v in dict(self.__dict__).items() if k not in _REBUILT_ATTRIBUTES}
        attributes.update(slot_values(self))  # a subclass's __slots__ (lost, without a word)
        if attributes:
            state["attributes"] = attributes
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        """Unpickling (and ``copy``): the model of ``state`` (a
        :meth:`__getstate__`). Called on a model in use, it replaces that
        model's whole state as :meth:`load_state_dict` replaces its weights:
        under its lock (after a ``fit`` in progress in another thread), all
        of it or nothing (a bad ``state`` leaves the model as it was), and
        refused (``RuntimeError``) from a ``metrics`` function of the same
        model's ``fit``."""
        state = self._portable_state(state)
        if "_lock" in self.__dict__:  # a model in use, not one that pickle or copy is making
            self._replace_state(state)
        else:
            set_attributes(self, self._rebuilt_state(state))

    def _replace_state(self, state: Dict[str, Any]) -> None:
        # The model of `state`, in this one. Once, under the write lock: swapped in without it, a fit in
        # another thread (or the fit calling a metric that did it) trained on, from its next step, the
        # weights of `state` under the epoch count, history and standardisation of its own, and the
        # threads waiting for the old lock ran beside those taking the new one.
        rebuilt = self._rebuilt_state(state)  # checked whole before anything changes
        rebuilt["_lock"] = self._lock  # the threads holding or waiting for it keep to one lock
        rebuilt["_version"] = self._version  # cached results stay stale: the count only goes up
        slots = slot_names(type(self))
        stale = [k for k in self.__dict__ if k not in rebuilt or k in slots]  # cached per version (_untrained_for), and
        with uninterrupted():  # attributes the state lacks: the model is the state's, as unpickled
            set_attributes(self, rebuilt, replace=True)
            for k in stale:
                del self.__dict__[k]

    _replace_state.__name__ = "__setstate__"  # the name a refusal from a metric gives: the caller's
    _replace_state = writes(_replace_state)

    @staticmethod
    def _rebuilt_state(state: Dict[str, Any]) -> Dict[str, Any]:
        """The attributes of the model of ``state``, checked
        (:class:`CheckpointError` otherwise)."""
        from .checkpoint import model_from_state

        keys = {"tensors", "meta", "gradients", "pending_rows", "attributes"}
        if not isinstance(state, dict) or not {"tensors", "meta"} <= set(state) <= keys:
            got = sorted_names(state) if isinstance(state, dict) else type(state).__name__
            raise CheckpointError(
                f"state: expected a pickled model's {{'tensors', 'meta'}} (and 'gradients', 'pending_rows', 'attributes'), "
                f"got {got}", "state"
            )
        attributes = state.get("attributes", {})
        if not isinstance(attributes, dict) or not all(isinstance(k, str) and k not in _REBUILT_ATTRIBUTES for k in attributes):
            raise CheckpointError(
                f"state: expected 'attributes' by name, none of the model's own, got {describe(attributes)}", "state"
            )
        rebuilt = model_from_state(state["tensors"], state["meta"], state.get("gradients"), state.get("pending_rows"))
        return {**rebuilt.__dict__, **attributes}

    def __repr__(self) -> str:
        c = self.config
        return (
            f"LearnableMultiModal(embed_dim={c.embed_dim}, hidden_dim={c.hidden_dim}, num_heads={c.num_heads}, "
            f"parameters={self.num_parameters():,})"
        )

    # --------------------------------------------------------------- internals
    @writes_leaving_weights
    def _set_trained_rows(self, rows: Optional[Sequence[int]], trained: bool = False) -> None:
        """Restores the record of :attr:`trained_modalities` (per slot; None:
        not known) and whether it holds a step (``trained``, which counts only
        beside rows that are all 0: a step that reached no encoder)."""
        self._core.set_trained_rows(None if rows is None else [int(n) for n in rows], bool(trained))

    def _untrained(self) -> Tuple[Tuple[int, ...], Sequence[int]]:
        """``(slots, record)``: the slots whose encoders no training step
        trained, of a model that has taken a step (``()`` otherwise, or when
        nothing is known), and the record per slot; cached per state version
        (read before the record: a writer that changes it after makes the
        entry stale, never wrong)."""
        cached = self.__dict__.get("_untrained_for")
        version = self._version
        if cached is None or cached[0] != version:
            rows = self._core.trained_rows()
            trained = rows is not None and (any(rows) or self._core.has_trained())
            untrained = tuple(m for m, n in enumerate(rows) if not n) if trained else ()
            cached = (version, untrained, rows or ())
            self.__dict__["_untrained_for"] = cached
        return cached[1], cached[2]

    def _untrained_messages(self, mask: np.ndarray) -> List[str]:
        """What :class:`UntrainedModalityWarning` says of each modality present
        in ``mask [B, 7]`` whose encoder no training step trained (one look
        at the mask's columns of those; nothing when every encoder trained)."""
        untrained, rows = self._untrained()
        if not untrained:
            return []
        return [untrained_message(m, rows) for m in untrained if mask[:, m].any()]

    def _warn_untrained(self, mask: np.ndarray) -> None:
        """An :class:`UntrainedModalityWarning` for each of :meth:`_untrained_messages`,
        at the user's call."""
        if not self._untrained()[0]:  # every encoder trained, or nothing known: the per-event case ends here
            return
        for message in self._untrained_messages(mask):
            warn_at_caller(message, UntrainedModalityWarning)

    def _parameters_changed(self, weights: bool = True) -> None:
        """Called after any change of the state: cached results are stale;
        when the change may have reached the ``weights``, an applied weight
        average they have left is dropped."""
        self._version += 1  # under the write lock: writers never bump it at once
        self._cache.clear()
        average = self.__dict__.get("_weight_average")
        if weights and average is not None and average.trained is not None and not average.held_by(self):
            # Inert from the first change of the weights (averaging.py), and gone: kept, it came
            # back to life when the weights were set to the average again (load_state_dict of a
            # state_dict taken earlier), so the next fit resumed the old trained weights, where
            # the same model saved or pickled in between (which writes no inert average) started
            # a new average: a resume that was not exact, against the documented "anything that
            # changes the weights in between makes that next fit start a new average".
            self._weight_average = None

    def _checked_tensors(
        self, tensors: Mapping[str, Any], arg: str, strict: bool = True, note: str = ""
    ) -> Dict[str, np.ndarray]:
        """``{name: array}`` keyed by parameter names, checked (shapes, finite
        values) into float32 arrays in layout order, so the first bad tensor
        is always the same one. With ``strict`` the names must match exactly;
        otherwise unknown names are ignored and missing ones left out."""
        if not isinstance(tensors, Mapping):
            raise TypeError(f"{arg}: expected a mapping name -> array, got {type(tensors).__name__}")
        shapes = self.parameter_shapes()
        unknown = sorted(set(tensors) - set(shapes), key=str)  # by str: a key that is not one (1) beside names
        missing = sorted(set(shapes) - set(tensors))
        if strict and (unknown or missing):
            if any(k in NORMALIZATION_NAMES for k in unknown):  # a dict made from state_dict()'s keys (grads, moments)
                note += ("; normalization.* entries are the inputs' standardisation in a state dict, no parameter "
                         "(no gradient, no Adam moment): leave them out")
            prefixes = _common_prefixes(unknown, missing)
            if len(prefixes) == 1:  # a wrapped model's dict (torch's DataParallel): a list of every name, twice, said no more
                prefix = prefixes[0]
                note += (f"; the unexpected keys are the model's names behind the prefix {prefix!r} (as PyTorch's "
                         "DataParallel and DistributedDataParallel name a wrapped model's): strip it, "
                         f"{{k[{len(prefix)}:] if k.startswith({prefix!r}) else k: v for k, v in {arg}.items()}}")
            elif prefixes:  # two wrapped copies ('module.', 'ema.module.'): stripping one left the other's keys unexpected
                prefix = prefixes[0]
                note += (f"; the unexpected keys hold the model's names behind each of the prefixes "
                         f"{', '.join(map(repr, prefixes))} (as PyTorch's DataParallel and DistributedDataParallel name "
                         "a wrapped model's): keep one copy's keys, stripped, e.g. "
                         f"{{k[{len(prefix)}:]: v for k, v in {arg}.items() if k.startswith({prefix!r})}}")
            raise InvalidValueError(f"{arg}: unexpected keys {unknown}, missing keys {missing}{note}", arg)
        return {name: _checked_tensor(tensors[name], f"{arg}[{name!r}]", shape) for name, shape in shapes.items()
                if name in tensors}

    def _as_modality_list(
        self, inputs: Inputs, arg: str = "inputs", mask: Optional[np.ndarray] = None, for_training: bool = False,
        mask_arg: str = "mask",
    ) -> Tuple[List[Optional[np.ndarray]], Dict[int, List[int]]]:
        """Each modality's float32 array (``None`` where not given), and the
        rows of each graph list that hold ``None`` (absent from its modality:
        zeros in its array, never read); ``mask``, when given, says which rows
        are present (absent rows may hold values float32 cannot, as they may
        hold anything), and a ``None`` row it marks present is refused.
        ``for_training``: see :meth:`prepare_inputs`."""
        arrays: List[Optional[np.ndarray]] = [None] * NUM_MODALITIES
        absent: Dict[int, List[int]] = {}
        if isinstance(inputs, Mapping):
            items = [(Modality.parse(k, arg), v) for k, v in inputs.items()]
            if len({m for m, _ in items}) < len(items):  # {"visual": a, 0: b}: one would be dropped unseen
                keys = [k for k, (m, _) in zip(inputs, items) if sum(n is m for n, _ in items) > 1]
                raise InvalidValueError(f"{arg}: keys {keys!r} name the same modality; expected one array per modality", arg)
        elif isinstance(inputs, (list, tuple)) and len(inputs) == NUM_MODALITIES:
            refuse_events_as_inputs(inputs, arg)  # seven events read as the seven modalities' arrays
            items = list(zip(_MODALITIES, inputs))  # the common case first: no ABC check
        elif isinstance(inputs, Sequence) and not isinstance(inputs, (str, bytes)) and len(inputs) == NUM_MODALITIES:
            items = list(zip(_MODALITIES, inputs))
        else:
            refuse_events_as_inputs(inputs, arg)
            got = described_entries(inputs)
            if arg == "validation" and isinstance(inputs, tuple) and len(inputs) == 2 and isinstance(inputs[0], Mapping):
                # Keras' validation_data=(x, y) habit, as (inputs, mask): read as two modalities' arrays
                got += "; its mask goes in beside it: fit(..., validation=inputs, validation_mask=mask)"
            elif isinstance(inputs, Sequence) and not isinstance(inputs, (str, bytes)):
                # "got list" of [visual, auditory], the views as a list scikit-learn's habit passes: the kind
                # taken, its length not
                got += " (a sequence is read by slot, one entry per modality; name the modalities given in a dict, e.g. {'visual': x})"
            elif isinstance(inputs, ExperienceBatch):  # buffer.sample(n), handed to train_step as a batch
                got += "; a sample of the experience buffer trains as Batch.from_experiences(sample)"
            else:
                got += one_modality_rows_hint(inputs)
            raise TypeError(f"{arg}: expected a mapping modality -> array or a sequence of 7 arrays/None, got {got}")
        input_dims = self.config.input_dims
        columns = self._input_columns  # per slot: None unless a frame's names were learned
        names = _INPUT_NAMES if arg == "inputs" else tuple(f"{arg}[{str(m)!r}]" for m in Modality)
        refuse_unpaired_frames((names[m.value], value) for m, value in items)  # rows are paired by position
        for m, value in items:
            if value is None:
                continue
            i = m.value
            name = names[i]
            dim = input_dims[i]
            present = None if mask is None else mask[:, i]
            if isinstance(value, (list, tuple)) and not value:
                # zero rows (no graphs, no feature rows), as a (0, dim) array and GraphFeaturizer()([]) are: it
                # was refused as "expected 2-D input (any, 18), got shape (0,)", the shape numpy gives []
                arrays[i] = np.zeros((0, dim), dtype=np.float32)
                continue
            if type(value) is not np.ndarray and is_graph_list(value):
                featurizer = self.config.graph_features[i]
                # None marks a row absent from the modality (as False in mask= does); a list of None
                # only holds no graph, so it says nothing of the modality's features and takes any width
                rows = absent_graph_rows(value)
                if dim != featurizer.dim and len(rows) < len(value):
                    raise ShapeError(
                        f"{name}: got graphs ({featurizer.dim} {featurizer.kind} features each) "
                        f"but modality {m} takes {dim}-long feature vectors", name,
                    )
                if not rows:
                    arrays[i] = featurized(featurizer, value, name)
                    continue
                if present is not None and len(present) == len(value):  # else the row counts' ShapeError follows
                    clash = present[rows]
                    if clash.any():
                        k = rows[int(np.argmax(clash))]
                        raise InvalidValueError(
                            f"{name}[{k}]: None marks row {k} absent from modality {m}, but {mask_arg}[{k}, {i}] is "
                            f"True (present); expected a Graph for a present row, or False in {mask_arg} there", name,
                        )
                given = [k for k, g in enumerate(value) if g is not None]
                # the rows and the present graphs' features, before either is allocated: numpy's MemoryError
                # for the rows named nothing, and featurize's own check named its "items"
                refuse_beyond_budget(4 * dim * (len(value) + len(given)), name,
                                     "the features of its {rows:,} rows × {dim:,} take {bytes} bytes", rows=len(value), dim=dim)
                # zeros where absent: never read, as a placeholder graph's features under False in mask= are not
                x = np.zeros((len(value), dim), dtype=np.float32)
                if given:
                    x[given] = featurized(featurizer, [value[k] for k in given], name, lambda j: f"{name}[{given[j]}]")
                arrays[i] = x
                absent[i] = rows
            else:
                if type(value) is not np.ndarray and hasattr(value, "columns"):
                    # ('a', 'a', 'b') learned: its two a columns swapped later would pass the check below. Names
                    # not learned (not all str, a pyarrow table's) are positions, read as such: 0, 1, 0, 1 of
                    # pd.concat(axis=1) is taken
                    refuse_duplicate_columns(value, name, _UNIQUE_COLUMNS, learned_only=True)
                    if columns[i] is not None:  # read by position: in the learned order
                        refuse_reordered_fitted_columns(name, columns[i], value, i)
                try:
                    if for_training:  # the user's numbers themselves, to compare with their cast
                        value = as_real_array(value, name, masked_inputs_remedy())
                    arrays[i] = as_float32(value, name, 2, (None, dim), present, features=True)
                except ShapeError as exc:
                    hint = self._input_dims_hint(items)
                    if not hint:
                        raise
                    raise ShapeError(f"{exc}{hint}", name) from None
                except (TypeError, ValueError):  # numpy's "dtype object" named neither a stray item nor the graphs
                    refuse_events_as_inputs(value, name)  # {"visual": events}: how events are taken, not their repr
                    refuse_stray_graphs(value, name)
                    raise
                if for_training and value is not arrays[i]:
                    warn_precision_loss(value, arrays[i], present, name)
        return arrays, absent

    def _input_dims_hint(self, items: List[Tuple[Modality, Any]]) -> str:
        """What a refusal of an input's width adds when ``items`` (the given
        ``(modality, value)`` pairs) hold feature rows of another width for
        modalities the model has not trained and that take their graph
        features (input_dims not set for them): the input_dims to make the
        model with, the widths it sets already kept. "expected shape (any,
        18)" left a newcomer with feature vectors guessing where the 18 came from."""
        trained = self.trained_modalities
        if trained is None:
            return ""
        featurizers, dims = self.config.graph_features, self.config.input_dims
        wanted = {}
        for m, value in items:
            if m in trained or dims[m.value] != featurizers[m.value].dim or not hasattr(value, "shape"):
                continue
            shape = value.shape  # arrays and frames: a list's rows are not read again for a hint
            if len(shape) == 2 and shape[1] != dims[m.value]:
                wanted[m] = int(shape[1])
        if not wanted:
            return ""
        kept = {m: dims[m.value] for m in Modality if dims[m.value] != featurizers[m.value].dim}
        widths = ", ".join(f"{str(m)!r}: {d}" for m, d in sorted({**kept, **wanted}.items(), key=lambda kv: kv[0].value))
        return ("; a modality takes its graph features unless input_dims gives it another width: for these feature "
                f"rows, make the model with input_dims={{{widths}}}")

    def _ready_inputs(
        self, inputs: Union[Sequence[Any], Dict[Any, Any]], mask: Any = None
    ) -> Optional[Tuple[List[Optional[np.ndarray]], np.ndarray]]:
        """What :meth:`prepare_inputs` returns, when ``inputs`` and ``mask``
        need neither conversion nor a check in Python: 7 entries (or a dict
        keyed by :class:`Modality`, lower-case name or slot index, one key a
        slot), each ``None`` or an aligned C-contiguous float32 ``np.ndarray``
        ``[B, d_m]`` (the arrays the general path passes on as they are), at
        least one given, all of the same ``B``, and ``mask`` None or a
        C-contiguous bool ``np.ndarray`` ``[B, 7]`` (passed on as it is too;
        fit's batches). ``None`` for anything else, which the general path
        then converts or refuses with its messages. (The per-call path of
        one-row steps; the values are checked by the core on every call, so
        nothing here is remembered between calls.)"""
        if type(inputs) is dict:
            inputs = _slots_of(inputs)
            if inputs is None:
                return None
        elif len(inputs) != NUM_MODALITIES:
            return None
        rows = -1
        present = 0  # bit m: modality m given
        for m, (value, dim) in enumerate(zip(inputs, self.config.input_dims)):
            if value is None:
                continue
            if type(value) is not np.ndarray or value.dtype is not _FLOAT32:
                return None
            shape = value.shape  # read once: each read builds the tuple
            if len(shape) != 2 or shape[1] != dim or (rows >= 0 and shape[0] != rows):
                return None
            flags = value.flags
            if not (flags.c_contiguous and flags.aligned):
                return None
            rows = shape[0]
            present |= 1 << m
        if rows < 0:
            return None
        if mask is None:
            return list(inputs), _presence_mask(present, rows)
        if type(mask) is np.ndarray and mask.dtype is _BOOL and mask.shape == (rows, NUM_MODALITIES) and mask.flags.c_contiguous:
            return list(inputs), mask
        return None

    def _refuse_encoding_peak(
        self, call: str, arrays: List[Optional[np.ndarray]], mask: np.ndarray, out_per_row: int, hidden: Optional[int] = None
    ) -> None:
        """TooLargeError naming ``inputs`` when the core's ``call`` on
        ``arrays`` and ``mask`` would take more than the memory budget (or
        the address space ``ulimit -v`` leaves) at its peak: the inputs held;
        ``out_per_row`` output values per row (allocated fallibly, but what
        follows them was not: past the limit the process aborted); each
        modality's present rows (a usize per row); for a modality absent in
        some rows, the copy of its present rows, which the core then encodes
        whole, one modality at a time: a standardised copy and the encoder's
        activations (``hidden``: the widest two consecutive hidden layers,
        which :meth:`hidden_features` runs over every modality whole). A
        modality present in every row is encoded in chunks of at most 96
        rows. The arrays and the mask are read only for a call that the
        bound with every modality given and partly absent does not pass
        (with room to spare: an eighth of the budget)."""
        rows = mask.shape[0]
        total_d, max_d, widths = self._encoding_sizes
        # one modality's whole forward per row it holds: its standardised copy, then (hidden) two
        # layers' activations, or every layer's, the norms and the pooling's weights
        extra = hidden if hidden is not None else widths + 2
        base = rows * (out_per_row + 2 * NUM_MODALITIES + 2)  # outputs; present rows and the pooling's counts (usize)
        # every modality given and partly absent, the inputs held included: most calls stop here
        if 32 * (base + rows * (3 * total_d + max_d + extra + 2)) <= memory_budget():
            return
        held = sum(a.nbytes for a in arrays if a is not None) + mask.nbytes
        present = {m: (int(np.count_nonzero(mask[:, m])), a.shape[1]) for m, a in enumerate(arrays) if a is not None}
        partial = {m: (n, d) for m, (n, d) in present.items() if n < rows}
        values = base + sum(n * d for n, d in partial.values())  # the copies of the present rows
        whole = partial if hidden is None else present  # encode takes modalities present in every row in chunks
        values += max([n * (d + extra) for n, d in whole.values()], default=0)
        refuse_beyond_budget(4 * int(values), "inputs", "{call} on {rows:,} rows takes {bytes} bytes at its peak", held, call=call, rows=rows)

    def _refuse_event_peak(self, event: MultiModalEvent, items: list) -> None:
        """TooLargeError naming ``event`` when the core's encoding of its
        components ``items`` (``(slot, features or graph, confidence)``)
        would take more than the memory budget (or the address space
        ``ulimit -v`` leaves) at its peak: every component's row copied
        (a graph's features computed into it), then each modality's rows
        encoded whole: a standardised copy and the encoder's activations.
        Past the limit these allocations aborted the process."""
        dims, widths = self.config.input_dims, self._encoding_sizes[2]
        counts = [0] * NUM_MODALITIES
        for m, _, _ in items:
            counts[m] += 1
        held = sum(item.nbytes for _, item, _ in items if isinstance(item, np.ndarray))
        values = sum(k * d for k, d in zip(counts, dims))  # the rows, copied
        values += max(k * (d + widths + 2) for k, d in zip(counts, dims))  # the widest modality's forward
        refuse_beyond_budget(4 * values, "event", "encoding event {id}'s {k:,} components takes {bytes} bytes at its peak",
                             held, id=event.id, k=len(items))

    def _refuse_peak(self, call: str, rows: int, arg: str = "embeddings", pairs: int = 2, caller: str = "") -> None:
        """TooLargeError naming ``arg`` when the core's ``call`` on ``rows``
        rows would take more than the memory budget at its peak: the inputs
        (``[B, 7, E]`` embeddings, a query or the pairs ``[B, E]``), the
        copy the core makes of the embeddings (when a slot is absent; counted
        always), the intermediates (attention: ``K``, ``V`` ``[B*7, E]`` and
        ``Q``, context ``[B, E]``; bilinear binder: ``[B*7, E]``; none
        chunked) and the outputs; ``pairs``: the distinct arrays among
        bind's ``a`` and ``b``; ``caller``: the public call named in the
        message, when not ``call``. Past ``ulimit -v`` these allocations
        aborted the process."""
        c = self.config
        n = rows * NUM_MODALITIES * c.embed_dim  # values of [B, 7, E]
        be = rows * c.embed_dim
        bilinear = c.binder_kind == "bilinear"
        if call == "fuse":  # in: embeddings; the copy, fused [B, E]
            held, values = n, n + be
        elif call == "pair_strengths":  # in: embeddings; the copy, per-row factors, S [B, 7, 7]
            held, values = n, n + (n if bilinear else 2 * rows * NUM_MODALITIES) + rows * NUM_MODALITIES**2
        elif call == "attend":  # in: embeddings, query; the copy, K, V, Q, context, attended, weights per head and mean
            held, values = n + be, 3 * n + 3 * be + rows * NUM_MODALITIES * (c.num_heads + 1)
        else:  # bind: in: a, b [B, E]; (bilinear: a·W) and four [B] vectors
            held, values = pairs * be, (be if bilinear else 0) + 4 * rows
        nbytes, held = 4 * values, 4 * held + rows * NUM_MODALITIES  # float32, and the bool mask
        refuse_beyond_budget(nbytes, arg, "{call} on {rows:,} rows takes {bytes} bytes at its peak", held, call=caller or call, rows=rows)

    def _embeddings_and_mask(self, embeddings: Any, mask: Any) -> Tuple[np.ndarray, np.ndarray]:
        shape = (None, NUM_MODALITIES, self.config.embed_dim)
        if mask is None:
            emb = as_float32(embeddings, "embeddings", 3, shape)
            # a float is true where it is not 0 (NaN included), as emb != 0: without that [B, 7, E] temporary
            return emb, np.ascontiguousarray(np.logical_or.reduce(emb, axis=2))
        given = as_mask(mask, None)
        emb = as_float32(embeddings, "embeddings", 3, shape, given)  # absent slots may hold anything
        return emb, as_mask(given, emb.shape[0])

    @reads
    def _attend(self, query: Any, embeddings: Any, mask: Any) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        emb, mask_arr = self._embeddings_and_mask(embeddings, mask)
        q = as_float32(query, "query", 2, (emb.shape[0], self.config.embed_dim))
        self._refuse_peak("attend", emb.shape[0])
        return self._core.attend(q, emb, mask_arr)

    def _attend_event(self, query: Any, event: MultiModalEvent) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The core's attention of the per-event ``query [E]`` over ``event``."""
        emb, mask = self._encoded(event)
        q = as_float32(query, "query", 1, (self.config.embed_dim,))
        try:
            return self._core.attend(q[None, :], emb, mask)
        except NonFiniteError:
            # the core named the place in the row [1, E] it reads, "at index (0, 3)", which the vector has not
            if np.isfinite(q).all():
                raise
            at = int(np.flatnonzero(~np.isfinite(q))[0])
        raise NonFiniteError(f"query: contains a non-finite value (NaN or inf) at index {at}; expected finite numbers", "query")

    def _encoded(self, event: MultiModalEvent) -> Tuple[np.ndarray, np.ndarray]:
        """``(embeddings [1, 7, E], mask [1, 7])`` of ``event``, cached."""
        return self._event_entry(event)[2]

    def _event_entry(self, event: MultiModalEvent) -> tuple:
        """The cache entry ``(version, key, (embeddings, mask), fused or None)``
        of ``event``: one Rust call featurises, encodes, pools and fuses it.

        The key is the event's content (each component's modality, confidence
        and feature bytes or graph), so editing a component in place is seen;
        the version is the model's state version read under the same lock as
        the computation, so a training step that lands between computing and
        storing an entry makes it stale rather than wrong."""
        if not isinstance(event, MultiModalEvent):
            raise TypeError(f"event: expected MultiModalEvent, got {type(event).__name__}")
        components = event.components  # read once: what is checked is the list read (another thread may set another)
        # checked_components checks every component (ModalFeatures' arrays still 1-D float32: their bytes are
        # the values) and passes a list of exact ModalGraphs as it is: it is called on the first component that
        # is anything else (or for a components that is no list), before any of that one's fields is read, so
        # it refuses what it refused, with the same message; an event of graphs alone (on every call: a cache
        # hit too) makes no call.
        checked = type(components) is not list
        if checked:
            components = checked_components(components)
        parts = []
        items = []  # what the core reads, on a miss: built in the same pass
        item: Union[_core.Graph, np.ndarray]  # a graph, or a component's features
        for c in components:  # the Modality itself, not its .value (a property: 3x the cost of the rest on a hit)
            if type(c) is ModalGraph:  # the graph is immutable; held by the key, so its id cannot be reused
                item = content = c.graph._g
            else:
                if not checked:  # the list iterated, not event.components again: it may be another list by now
                    checked_components(components)
                    checked = True
                if isinstance(c, ModalGraph):
                    item = content = c.graph._g
                else:  # float32 and contiguous: ModalFeatures converts whatever is assigned
                    item = c.features
                    content = item.tobytes()
            modality, confidence = c.modality, c.confidence
            parts.append((modality, confidence, content))
            items.append((modality._value_, item, confidence))  # _value_: the slot index, without .value's descriptor
        key = (event.id, tuple(parts))
        hit = self._cache.get(event)
        if hit is not None and hit[0] == self._version and hit[1] == key:
            untrained = self.__dict__.get("_untrained_for")  # _warn_untrained's own first look, without its calls
            if untrained is None or untrained[0] != hit[0] or untrained[1]:
                self._warn_untrained(hit[2][1])
            return hit  # without the lock: a writer bumps the version before it changes anything
        if len(items) > self._event_components_unchecked:  # an event of many or wide components
            self._refuse_event_peak(event, items)
        with self._lock.reading():
            # under the lock that encodes: checked before it, another thread's fit_normalization of a frame could
            # learn the names (and their standardisation) in between, and a Series of them reordered was encoded
            if self._input_columns is not _NO_COLUMNS:  # on a miss only, as the peak's check: the hit path stays as fast
                refuse_reordered_labels(components, self._input_columns, "event", event.id)
            version = self._version
            try:
                emb, mask, fused = self._core.encode_event(event.id, items, self._featurizer_spec())
            except NonFiniteError as err:  # it named inputs['visual'] and its row 0, not the event
                refuse_non_finite_event(event)
                raise overflow_in_events(err, [event], "event", indexed=False) from None
        # emb, mask and fused come back read-only (the core makes them so: setting the flag here took 0.4 us):
        # shared by every later call on this event, a view handed out must not edit them
        entry = (version, key, (emb, mask), fused)
        if version == self._version:  # a writer that bumps it right after makes the entry stale, never wrong
            self._cache[event] = entry
        untrained = self.__dict__.get("_untrained_for")  # as on a hit: nothing to warn of, told without a call
        if untrained is None or untrained[0] != self._version or untrained[1]:
            self._warn_untrained(mask)
        return entry

    def _featurizer_spec(self) -> list:
        """Each modality's graph featuriser as ``(kind, dim, iterations)`` for the core."""
        spec = self.__dict__.get("_featurizers_for")
        if spec is None or spec[0] is not self.config:
            features = [(f.kind, f.dim, f.iterations) for f in self.config.graph_features]
            spec = (self.config, features)
            self.__dict__["_featurizers_for"] = spec
        return spec[1]

    def _event_parts(self, event: MultiModalEvent) -> list:
        """The component form of one event: per modality ``(x [k, d], rows, confidences)``."""
        return self._events_parts([event])


#: The input containers :meth:`LearnableMultiModal._ready_inputs` reads (exact types: a subclass may index differently).
_PLAIN_CONTAINERS = (list, tuple, dict)
#: The slot of each modality's name as Modality.parse reads it most often (other cases take the general path).
_SLOT_OF_NAME = {str(m): m.value for m in Modality}
_FLOAT32 = np.dtype(np.float32)
#: A bound of an event's values (components times twice the widest input and the encoders' widths) below
#: which its encoding takes at most a few MB, so the per-event path skips the peak's preflight.
_EVENT_VALUES_UNCHECKED = 1 << 20
_BOOL = np.dtype(np.bool_)
#: One row of each presence pattern (bit m: modality m present), made on first use.
_PRESENCE_ROWS: Dict[int, np.ndarray] = {}


def _slots_of(inputs: Dict[Any, Any]) -> Optional[List[Any]]:
    """The values of ``inputs``, keyed by :class:`Modality`, lower-case name
    or slot index (an ``int``), in slot order (``None`` where absent); ``None``
    when a key is anything else or two keys name one slot (the general path
    parses those, or refuses them with its messages)."""
    slots: List[Any] = [None] * NUM_MODALITIES
    seen = 0  # bit m: a key named slot m
    for key, value in inputs.items():
        kind = type(key)
        if kind is str:
            m = _SLOT_OF_NAME.get(key, -1)
        elif kind is Modality:
            m = key._value_  # Modality.value without the enum property's call
        elif kind is int:
            m = key if 0 <= key < NUM_MODALITIES else -1
        else:
            return None
        if m < 0 or seen >> m & 1:
            return None
        seen |= 1 << m
        slots[m] = value
    return slots


#: Why no row is present when no mask was given.
_ALL_NONE = "every row of every list of graphs is None"


def _presence_mask(present: int, rows: int) -> np.ndarray:
    """A new bool mask ``[rows, 7]`` whose row is the bits of ``present`` (bit
    ``m``: modality ``m``), for each row; copied from a kept row (``np.ones``
    and ``np.zeros`` take several times as long as the copy of a row)."""
    row = _PRESENCE_ROWS.get(present)
    if row is None:
        row = np.array([[bool(present >> m & 1) for m in range(NUM_MODALITIES)]])
        _PRESENCE_ROWS[present] = row
    return row.copy() if rows == 1 else row.repeat(rows, axis=0)


def _refuse_subnormal_columns(arrays: Sequence[Optional[np.ndarray]], mask: np.ndarray, arg: str) -> None:
    """Training data (float32 by now) with a column of subnormal values only,
    refused as the cast from float64 refuses it
    (:func:`~._validation.refuse_float32_underflow_columns`)."""
    for m, a in enumerate(arrays):
        if a is not None:
            refuse_float32_underflow_columns(a, f"{arg}[{_name(m)!r}]", mask[:, m])


def _refuse_spread_below_float32(rows: np.ndarray, std: np.ndarray, name: str) -> None:
    """Refuses a column of ``rows`` whose values differ but whose std is
    below ``MIN_STD`` (values of about 1e-38): standardised, it would get the
    constant column's std 1 and reach the model as a constant, so the view
    trained without it, without a word. Read only for such columns (rare)."""
    for c in np.flatnonzero((std > 0) & (std < _core.MIN_STD)):
        column = rows[:, c]
        if column.max() > column.min():  # else a constant column, its std only the float64 mean's rounding
            raise InvalidValueError(
                f"{name}: column {int(c)}'s {SPREAD_BELOW_FLOAT32} ({_core.MIN_STD:.3g}): standardised, the column "
                "would be taken for a constant one (std 1) and ignored; expected the data rescaled (e.g. multiplied "
                "by a power of ten) before it is given", name)


def _name(m: int) -> str:
    return _core.MODALITY_NAMES[m]


def untrained_message(m: int, rows: Sequence[int]) -> str:
    """What :class:`UntrainedModalityWarning` says of slot ``m``, given the
    record ``rows`` (per slot) of a model that has trained."""
    trained = ", ".join(_name(i) for i, n in enumerate(rows) if n)
    if not trained:  # steps that reached no encoder: recorded embeddings, or encoder_objectives
        return (
            f"modality {_name(m)!r}: no training step of this model reached an encoder (it trained on recorded "
            "embeddings, or on objectives encoder_objectives keeps from the encoders); its encoder has its initial "
            "random weights, so its embeddings (and what is fused from them) are not learned"
        )
    return (
        f"modality {_name(m)!r} was never present in a training batch (trained: {trained}); "
        "its encoder has its initial random weights, so its embeddings (and what is fused from them) are not learned"
    )


#: True while a model is rebuilt from saved state (:func:`_built_for_saved_state`).
_rebuilding: "contextvars.ContextVar[bool]" = contextvars.ContextVar("_rebuilding", default=False)


def _built_for_saved_state(config: LearnableMultiModalConfig) -> "LearnableMultiModal":
    """A model of ``config`` for saved state (a checkpoint, a pickle, a Ray
    replica): its buffer's capacity, set where the state was saved, is
    checked against this machine's memory only as the buffer grows, not
    refused up front.

    A function, not a context manager: a Ctrl-C as contextlib's
    ``__enter__`` returned or its ``__exit__`` began left the mark set
    while the interrupt was alive (in its handler; a notebook keeps the
    last one), and a model made there of a ``buffer_size`` past memory was
    not refused naming it. Set in the try whose finally puts it back."""
    previous = _rebuilding.get()
    try:
        _rebuilding.set(True)
        return LearnableMultiModal(config)
    finally:
        _rebuilding.set(previous)


#: What a pickled model's state rebuilds (from its checkpoint state): every
#: other attribute in a model's ``__dict__`` (a subclass's, or one a user set)
#: is pickled as it is.
_REBUILT_ATTRIBUTES = frozenset(
    {"config", "_core", "_lock", "_version", "_cache", "experience", "epochs_trained", "history", "_weight_average",
     "_featurizers_for", "_untrained_for", "_encoding_sizes", "_event_components_unchecked", "_input_columns"}
)
#: Why a data frame's column names must be unique (:func:`refuse_duplicate_columns`).
_UNIQUE_COLUMNS = "the model learns a frame's column names and checks later frames against them"


def _refuse_reordered_labels(name: str, columns: Optional[Tuple[str, ...]], value: Any) -> None:
    """InvalidValueError naming ``name`` for a pandas Series (``df.mean()``,
    ``df.std()``) whose str labels are ``columns``, the names a modality's
    frame was learned from, in another order: its values are read by
    position, so statistics of a frame of the same columns in another order
    standardised each column by another's, without a word. Other values
    (arrays, Series of other or unnamed labels) are not looked at."""
    labels = None if columns is None else series_str_labels(value)
    misplaced = misplaced_names(columns, labels) if labels is not None else []
    if misplaced and not is_reordering(columns, labels):  # some renamed, others moved: read by position as wrongly
        raise InvalidValueError(
            f"{name}: its labels {list(labels)[:8]!r} name columns the model learned this modality from "  # type: ignore[arg-type]
            f"({list(columns)[:8]!r}) at other positions: {shown_misplaced(labels, misplaced, 'learned')}; its values "  # type: ignore[arg-type]
            f"are read by position; expected them in the order learned", name)
    if misplaced:
        raise InvalidValueError(
            f"{name}: its labels {list(labels)[:8]!r} are the columns the model learned this modality from "
            f"({list(columns)[:8]!r}) in another order, and its values are read by position; expected them in that "
            f"order: {name.rpartition('.')[2]}[{list(columns)!r}]", name)


#: No modality's column names known (LearnableMultiModal._input_columns).
_NO_COLUMNS: Tuple[Optional[Tuple[str, ...]], ...] = (None,) * len(Modality)
_MODALITIES = tuple(Modality)


#: The range a learned ``<objective>.log_temperature`` is kept in, in float32 as the core bounds it.
_LOG_TEMPERATURE_RANGE = tuple(np.float32(math.log(t)) for t in TEMPERATURE_RANGE)


def _temperatures_in_range(staged: Dict[str, np.ndarray], arg: str) -> Dict[str, np.ndarray]:
    """``staged`` (checked tensors) with each ``*.log_temperature`` beyond its
    range set to its bound, with a warning naming it: the model computes with
    the bound (as training keeps it there), but stored the value given, so
    ``state_dict()`` showed a temperature the model does not use (100 for
    ``exp(0)``). Set, not refused: a file holding such a value stays loadable,
    and computes as it did. Values in range (every trained one) are untouched."""
    lo, hi = _LOG_TEMPERATURE_RANGE
    for name, values in staged.items():
        if not name.endswith(".log_temperature") or lo <= values.min() and values.max() <= hi:
            continue
        kept = np.clip(values, lo, hi)
        warn_at_caller(
            f"{arg}[{name!r}]: {float(values.ravel()[0])!r} is beyond a learned log-temperature's range "
            f"[{float(lo):.6g}, {float(hi):.6g}] (temperature in [{TEMPERATURE_RANGE[0]}, {TEMPERATURE_RANGE[1]}]), "
            f"where the model keeps it; loaded as its bound {float(kept.ravel()[0]):.6g} (temperature "
            f"{math.exp(float(kept.ravel()[0])):.6g}), the value the model computes with", UserWarning)
        staged[name] = kept
    return staged


def _common_prefixes(unknown: Sequence[Any], missing: Sequence[str]) -> List[str]:
    """The prefixes (``module.``) behind each of which ``unknown`` keys hold
    every one of the ``missing`` names, shortest first (then in text order):
    one was picked in the order of a set of str, which changes from run to
    run (``module.`` or ``ema.module.``), and stripping it left the other's
    keys unexpected."""
    if not missing or not unknown:
        return []
    given = {k for k in unknown if isinstance(k, str)}
    first = missing[0]
    prefixes = {key[: len(key) - len(first)] for key in given if key.endswith(first) and len(key) > len(first)}
    return sorted((p for p in prefixes if all(p + name in given for name in missing)), key=lambda p: (len(p), p))


def _checked_tensor(value: Any, name: str, shape: Tuple[int, ...]) -> np.ndarray:
    """A tensor of a state dict (a parameter, or a standardisation's mean or
    std), a gradient or an Adam moment, as float32 of ``shape``, finite;
    errors name it ``name``. Booleans are refused: a mask given for a
    gradient (``g > 0``) or a weight was applied as 1.0 and 0.0 without a word."""
    if is_masked_array(value):  # as_float32's remedy (rows left out with mask=) is for inputs
        value = unmasked(value, name, "plain numbers", "pass its values: x.filled(...) or x.data")
    value = as_real_array(value, name)
    refuse_bools(value, name)
    arr = as_float32(value, name, len(shape), shape)
    if not np.isfinite(arr).all():
        raise NonFiniteError(f"{name}: contains NaN or inf; expected finite numbers", name)
    return arr


#: The argument name of each modality's input, as error messages show it.
_INPUT_NAMES = tuple(f"inputs[{str(m)!r}]" for m in Modality)


def _refuse_std_lost_in_float32(given: Any, std32: np.ndarray, name: str) -> None:
    """Refuses a ``std`` whose float32 form falls below ``MIN_STD`` though
    the value given does not read so (1e-300, a float64, is 0 as float32):
    the core's refusal named the float32 value, "got 0 at index 0", a value
    the caller never gave. Other values are left to the core's check."""
    small = np.flatnonzero(~(std32 >= _core.MIN_STD))
    if not small.size:
        return
    i = int(small[0])
    try:
        value = float(np.asarray(given, dtype=np.float64).reshape(-1)[i])
    except (TypeError, ValueError):  # not numbers a float64 holds: the core's message
        return
    if math.isfinite(value) and value != float(std32[i]):
        raise InvalidValueError(
            f"{name}: got {value!r} at index {i}, which is {float(std32[i])!r} as float32; expected finite numbers "
            f">= {_core.MIN_STD:.4g} (the smallest normal float32; a constant column's std is taken as 1, as "
            "fit_normalization and scikit-learn's StandardScaler do)", name)
