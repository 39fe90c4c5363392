"""The package's training recipe for several views of the same events, as
used on the UCI Multiple Features digits (SPEC §3) by the demo, the
benchmark and the tests.

:func:`fit_views` is the one place that says how a model is trained from
raw views: the demo (``grapheme-mm demo``), ``benchmarks/uci_multifeature.py``
and the tests all train through it, and
:mod:`grapheme_multimodal.evaluation` measures what it returns. Each of the
six feature sets of a digit image is one modality of the same event
(:data:`VIEW_MODALITIES`); no labels are used in training. The same
defaults are those of ``grapheme-mm train`` and of
:class:`~grapheme_multimodal.sklearn.MultimodalEmbedder`; the model's own
config defaults stay the original's (docs/objectives.md, "The recipe").
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from functools import partial
from typing import TYPE_CHECKING, AbstractSet, Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ._parallel import jobs_within_memory, resolve_n_jobs, run_tasks, shared_snapshot
from ._readonly import FrozenDict, ReadOnlyMapping
from ._validation import (
    IntLike, as_positive_int, as_real_array, as_seed, describe, exact_int, is_int, is_masked_array, call_in_precision_scope, call_taking_no_mask, refuse_beyond_budget, renamed,
    shown_number, unsigned_zero,
)
from .averaging import check_decay
from .config import LearnableMultiModalConfig, _objective_names, _positive_int, _widths
from .evaluation import EnsembleEmbedder, ModelEmbedder, view_modalities
from .evaluation._embedders import check_views, view_names
from .exceptions import GraphemeError, InvalidValueError, ShapeError
from .model import LearnableMultiModal
from .objectives import all_zero_error, resolve_weights
from .stopping import fit_with_stopping, folds_bytes, planned_folds
from .training import _check_fraction, _check_int, call_with_constant_rows_refused_as, grown_by_learning_rate, untrainable_objectives
from .types import Modality

__all__ = [
    "VIEW_MODALITIES", "RECIPE_OBJECTIVES", "TrainingSettings", "check_weights", "recipe_head", "recipe_skip",
    "RECIPE_HIDDEN_DROPOUT", "recipe_hidden_dropout", "train", "fit_views", "fit_ensemble", "member_seeds",
]

#: Which modality slot each view occupies (Action, the output modality, stays
#: empty); what :func:`~grapheme_multimodal.evaluation.view_modalities` gives
#: for the six views in order. Read-only, as RECIPE_OBJECTIVES: the demo
#: encodes each view in its slot by it, and a user's edit of the shared dict
#: (``slots = uci.VIEW_MODALITIES; slots["pix"] = Modality.VISUAL``) put two
#: views in one slot for every later demo in the process (one of them then
#: dropped without a word); ``dict(...)`` gives a copy to edit.
VIEW_MODALITIES: Mapping[str, Modality] = ReadOnlyMapping(view_modalities(("fou", "fac", "kar", "pix", "zer", "mor")))

#: The recipe's objectives: contrastive aligns the views, fused_contrastive
#: shapes the fused embedding, binding trains the binder (at twice the
#: others' weight: with the encoders' linear skip path the binder's ROC-AUC
#: fell under 0.97 at 1), cross_modal (at a small weight: at 1 it cost
#: retrieval) trains the modality attention, which nothing else trains
#: (docs/objectives.md, "The recipe"); reconstruction (each view predicted
#: from the fused embedding by a linear decoder, which TrainingSettings then
#: makes) keeps more of every view in the fused embedding: its 5-NN reached
#: the raw views on 5 of 10 UCI splits instead of 1, losing no target.
RECIPE_OBJECTIVES: Mapping[str, float] = ReadOnlyMapping(
    {"contrastive": 1.0, "fused_contrastive": 1.0, "binding": 2.0, "cross_modal": 0.1, "reconstruction": 1.0}
)


def recipe_head(embed_dim: int) -> Tuple[int, ...]:
    """The recipe's shared head for embeddings of ``embed_dim``: 128 → ``embed_dim``.
    ``embed_dim`` is checked as the model's config checks it (an int >= 1),
    its errors naming ``embed_dim``: a head of ``(128, "64")`` was returned,
    refused only later by the config, as ``shared_head[1]``."""
    return (128, _positive_int(embed_dim, "embed_dim"))


def _has_layers(widths: Any, name: str) -> bool:
    """Whether layer ``widths`` hold a layer, after checking them as the
    model's config does (one int is one layer), errors naming ``name``:
    anything else (a string, None, a negative width) was answered, and
    refused only later by the config, or not at all where the answer was used alone."""
    return len(_widths(widths, name)) > 0


def recipe_skip(encoder_hidden: Sequence[int], shared_head: Sequence[int]) -> bool:
    """Whether the recipe gives the encoders their linear skip path when the
    user did not say (``encoder_skip=None``): where it can be built, i.e. the
    encoders have hidden layers and a shared head follows. The model refuses
    ``encoder_skip`` otherwise, and an encoder without hidden layers asked
    for with the other defaults must not fail on an option nobody set."""
    hidden = _has_layers(encoder_hidden, "encoder_hidden")
    head = _has_layers(shared_head, "shared_head")  # checked whatever encoder_hidden holds
    return hidden and head


#: The recipe's dropout after each hidden encoder layer (:func:`recipe_hidden_dropout`).
RECIPE_HIDDEN_DROPOUT = 0.3


def recipe_hidden_dropout(encoder_hidden: Sequence[int]) -> float:
    """The recipe's ``encoder_hidden_dropout`` when the user did not say
    (``None``): :data:`RECIPE_HIDDEN_DROPOUT` after the hidden layers, where
    there are some; 0 without (``encoder_hidden=()``): the model refuses a
    dropout there is no hidden layer for, and an encoder without hidden
    layers asked for with the other defaults must not fail on an option
    nobody set (as :func:`recipe_skip`). A dropout given is used as given."""
    return RECIPE_HIDDEN_DROPOUT if _has_layers(encoder_hidden, "encoder_hidden") else 0.0


@dataclass(frozen=True)
class TrainingSettings:
    """How :func:`train` trains: the package's default recipe.

    The model: per view an encoder with a hidden layer (``encoder_hidden``,
    dropout ``encoder_input_dropout`` on its input and
    ``encoder_hidden_dropout`` after the hidden layer; ``None``, the
    recipe's: 0.3 where there are hidden layers, none with
    ``encoder_hidden=()``, :func:`recipe_hidden_dropout`) into
    ``encoder_output_dim`` plus, with ``encoder_skip`` (``None``, the
    recipe's: wherever the encoders have hidden layers and a shared head,
    :func:`recipe_skip`), a linear path from the input (views that are near-linear functions of each
    other, such as UCI's pixels and their Karhunen–Loève coefficients, are
    then retrieved from each other as well as a CCA fitted for the pair
    retrieves them), one projection head shared by all views
    (``shared_head``, default :func:`recipe_head`), a bilinear binder, learned temperatures starting at
    ``temperature``. Training: Adam on batches of ``batch_size``, at most
    ``epochs`` epochs; ``validation_fraction`` of the rows (drawn from
    ``seed``) are held out when no validation data is given, and training
    stops after ``patience`` epochs (0: never) without a lower validation
    contrastive loss, keeping the best epoch's weights — so a larger epoch budget never
    makes a small data set worse. When that slice would hold fewer than
    ``min_validation_rows`` rows (but at least 2: a slice of fewer holds
    nothing out, and all epochs run with an
    :class:`~grapheme_multimodal.EarlyStoppingSkippedWarning`),
    ``cv_folds``-fold cross-validation chooses
    the number of epochs instead and the model trains on all rows
    (:func:`~grapheme_multimodal.stopping.fit_with_stopping`; ``cv_folds``
    below 2: always the slice). ``modality_dropout`` hides each view of
    each training row with this probability. ``weights`` chooses the
    objectives (``None``: :data:`RECIPE_OBJECTIVES`); ``fused_neighbors``
    (fused_contrastive's positives besides the event itself: its 10
    nearest events of the batch by their standardised inputs, with
    ``fused_neighbor_space="inputs"``), ``input_distance`` (every view
    weighs the same in that distance, ``"modalities"``, whatever its number
    of columns), ``contrastive_neighbors``, ``contrastive_neighbor_weight``,
    ``neighborhood_neighbors`` (the ``neighborhood`` objective's positives,
    when ``weights`` gives it a weight; not the recipe's, see
    docs/objectives.md), ``neighborhood_temperature`` (its temperature;
    ``None``: the contrastive objective's), ``encoder_objectives``, ``fusion_residual`` (the fused embedding is
    the fusion network's output plus 10 × the mean of the present view
    embeddings, normalised), ``reconstruction_decoders`` (a linear decoder
    per view from the fused embedding to its standardised input, which the
    ``reconstruction`` objective trains; ``None``: when the objectives give
    it a weight, as the recipe's do; ``False`` with such objectives is
    refused, naming ``reconstruction_decoders``),
    ``reconstruction_subsets`` (that objective reads the fused embedding of
    a random subset of the views) and
    ``contrastive_pair_power`` (the contrastive
    loss is the power mean of order 0.5 of its view pairs' losses, so pairs
    of views that determine each other keep learning) are the model's
    config fields of those names. ``ema_decay`` keeps an exponential
    moving average of the weights, one update per epoch, warmed up
    (:func:`~grapheme_multimodal.training.fit`'s option; ``None``: off):
    the model ends holding the average at the best epoch.
    ``weight_decay`` is Adam's decoupled weight decay (AdamW-style: every
    step multiplies each weight by ``1 − learning_rate × weight_decay``;
    the model's config field; the recipe's 0: off, docs/objectives.md,
    "Measured with the reconstruction term at weight 1 (none adopted)").
    Everything random is drawn from ``seed``.

    Every field is checked when the settings are made, its errors naming
    the field: ``weights`` by :func:`check_weights`, the others as
    :func:`train` checks them (they are the model's config fields or
    :func:`~grapheme_multimodal.training.fit`'s and
    :func:`~grapheme_multimodal.stopping.fit_with_stopping`'s options, and
    the messages are theirs), so ``TrainingSettings(batch_size=0)`` is
    refused where it is written; :func:`train` checks them again. One pair
    is checked only then: ``learning_rate × weight_decay`` below 1, which
    the model's core checks when train builds the model.
    """

    binder_kind: str = "bilinear"
    embed_dim: int = 128
    hidden_dim: int = 128
    num_heads: int = 4
    temperature: float = 0.07
    learnable_temperature: bool = True
    encoder_hidden: Tuple[int, ...] = (256,)
    encoder_output_dim: Optional[int] = 128
    shared_head: Optional[Tuple[int, ...]] = None
    encoder_input_dropout: float = 0.1
    encoder_hidden_dropout: Optional[float] = None
    encoder_skip: Optional[bool] = None
    epochs: int = 300
    batch_size: int = 512
    learning_rate: float = 0.002
    modality_dropout: float = 0.0
    fused_neighbors: int = 10
    fused_neighbor_space: str = "inputs"
    input_distance: str = "modalities"
    contrastive_neighbors: int = 0
    contrastive_neighbor_weight: float = 0.2
    neighborhood_neighbors: int = 10
    neighborhood_temperature: Optional[float] = None
    contrastive_pair_power: float = 0.5
    encoder_objectives: Optional[Tuple[str, ...]] = None
    fusion_residual: float = 10.0
    reconstruction_decoders: Optional[bool] = None
    reconstruction_subsets: bool = False
    ema_decay: Optional[float] = 0.9
    weights: Optional[Mapping[str, float]] = None
    validation_fraction: float = 0.1
    patience: int = 20
    min_validation_rows: int = 32
    cv_folds: int = 5
    seed: int = 0
    weight_decay: float = 0.0

    if TYPE_CHECKING:  # what __post_init__ takes (lists for the widths and objectives; the fields hold
        # tuples). tests/test_stub.py checks that these parameters are the fields, in order.
        def __init__(
            self,
            binder_kind: str = 'bilinear',
            embed_dim: IntLike = 128,
            hidden_dim: IntLike = 128,
            num_heads: IntLike = 4,
            temperature: float = 0.07,
            learnable_temperature: bool = True,
            encoder_hidden: Sequence[IntLike] = (256,),
            encoder_output_dim: Optional[IntLike] = 128,
            shared_head: Optional[Sequence[IntLike]] = None,
            encoder_input_dropout: float = 0.1,
            encoder_hidden_dropout: Optional[float] = None,
            encoder_skip: Optional[bool] = None,
            epochs: IntLike = 300,
            batch_size: IntLike = 512,
            learning_rate: float = 0.002,
            modality_dropout: float = 0.0,
            fused_neighbors: IntLike = 10,
            fused_neighbor_space: str = 'inputs',
            input_distance: str = 'modalities',
            contrastive_neighbors: IntLike = 0,
            contrastive_neighbor_weight: float = 0.2,
            neighborhood_neighbors: IntLike = 10,
            neighborhood_temperature: Optional[float] = None,
            contrastive_pair_power: float = 0.5,
            encoder_objectives: Optional[Union[Sequence[str], AbstractSet[str]]] = None,
            fusion_residual: float = 10.0,
            reconstruction_decoders: Optional[bool] = None,
            reconstruction_subsets: bool = False,
            ema_decay: Optional[float] = 0.9,
            weights: Optional[Mapping[str, float]] = None,
            validation_fraction: float = 0.1,
            patience: IntLike = 20,
            min_validation_rows: IntLike = 32,
            cv_folds: IntLike = 5,
            seed: IntLike = 0,
            weight_decay: float = 0.0,
        ) -> None: ...

    def __post_init__(self) -> None:
        # Copies, not the caller's dict and lists: changing those afterwards changed these frozen
        # settings (and every other made from them), past the check below. The weights a FrozenDict:
        # a plain dict was still edited in place (settings.weights["neighborhood"] = 1.0), past the
        # checks, and made the settings unhashable.
        if isinstance(self.weights, Mapping):
            object.__setattr__(self, "weights", FrozenDict(self.weights))
        for name in ("encoder_hidden", "shared_head", "encoder_objectives"):
            value = getattr(self, name)
            # lists, ranges and 1-D arrays as the tuples they stand for: settings holding an array
            # (shared_head=np.array([128, 64])) raised numpy's "truth value of an array ... is ambiguous"
            # when compared, and were unhashable. Anything else is the config's to read or refuse.
            if isinstance(value, np.ndarray) and value.ndim == 1:
                object.__setattr__(self, name, tuple(value.tolist()))
            elif isinstance(value, (list, range)):
                object.__setattr__(self, name, tuple(value))
        self._plain_numbers()
        # Here, not when train runs: fit named the mistake "objectives", its own
        # argument, which these settings do not have.
        check_weights(self.weights, "weights")
        if self.weights is not None:
            # plain floats (checked finite and >= 0 above): a 0-d array or a Decimal was kept as given, so
            # settings of equal weights compared unequal, would not hash (an array) or json.dump; names as
            # plain str (numpy's str showed as np.str_('contrastive'))
            object.__setattr__(self, "weights", FrozenDict({str.__str__(k): unsigned_zero(float(w))
                                                           for k, w in self.weights.items()}))
        weight = self.objectives.get("reconstruction", 0.0)
        if self.reconstruction_decoders is False and weight > 0:
            # else train refused it naming fit's `objectives`, an argument these settings do not have
            raise InvalidValueError(
                f"reconstruction_decoders: got False, but {self._weights_source()} reconstruction weight {weight}, which trains "
                "the decoders; expected None or True, or weights with reconstruction 0",
                "reconstruction_decoders",
            )
        if self.reconstruction_subsets is True and not self.decoders():
            # else the config refused it naming reconstruction_decoders=True, an option the
            # estimator and grapheme-mm train do not have (their decoders follow the weights)
            off = self.reconstruction_decoders is False
            why = "reconstruction_decoders is False" if off else f"{self._weights_source()} no reconstruction weight"
            remedy = "reconstruction_decoders None or True and " if off else ""
            raise InvalidValueError(
                f"reconstruction_subsets: got True, but {why}, so there are no decoders and no reconstruction objective "
                f"for it to shape; expected False, or {remedy}weights with reconstruction > 0",
                "reconstruction_subsets",
            )
        self._check_neighborhood_and_encoder_objectives()
        self._check_as_train_would()

    def _check_as_train_would(self) -> None:
        """Every field checked as :func:`train` checks it, in its order, with
        its messages: the model's config (the fields it takes), then
        :func:`~grapheme_multimodal.stopping.fit_with_stopping`'s and
        :func:`~grapheme_multimodal.training.fit`'s options. Here, not only
        when train runs: ``batch_size=0`` or ``learning_rate=nan`` made
        settings that failed later, away from the line that made them (in a
        worker, after other runs of a sweep had trained)."""
        LearnableMultiModalConfig(**self.model_options())
        for name in ("epochs", "patience", "min_validation_rows", "cv_folds"):
            _check_int(getattr(self, name), name, 0)
        _check_fraction(self.validation_fraction, "validation_fraction")
        _check_int(self.batch_size, "batch_size", 1)
        _check_fraction(self.modality_dropout, "modality_dropout")
        check_decay(self.ema_decay)

    def __repr__(self) -> str:
        # the dataclass's repr, but an int past 4,300 digits (epochs=10**5000, refused only when train runs) shown
        # as shown_number shows it: repr() of it raised Python's ValueError in the repr's place
        shown = ", ".join(f"{f.name}={_shown_field(getattr(self, f.name))}" for f in fields(self))
        return f"{type(self).__name__}({shown})"

    def _plain_numbers(self) -> None:
        """The integer fields (and widths) given as numpy integers or 0-d
        integer arrays, as the Python ints they hold, the bool fields given
        as numpy bools as Python bools, and the float fields
        given as numpy floats or 0-d float arrays as Python floats (float64
        holds a float32 or float64 exactly; a long double is left as it is,
        for the checks that read it whole): settings holding ``np.array(300)``
        or ``np.array(0.002)`` would not hash, and neither those nor numpy's
        scalars json.dumps. Anything else is left for the model's config or
        fit to refuse by name."""
        for name in _INT_FIELDS:
            value = getattr(self, name)
            if is_int(value):
                object.__setattr__(self, name, exact_int(value))
        for name in ("encoder_hidden", "shared_head"):
            widths = getattr(self, name)
            if isinstance(widths, tuple):
                object.__setattr__(self, name, tuple(exact_int(w) if is_int(w) else w for w in widths))
            elif is_int(widths):  # one layer's width, as the config takes it: held as 64 is (np.array(64) would not hash)
                object.__setattr__(self, name, exact_int(widths))
        for name in _BOOL_FIELDS:
            # numpy's bool as the bool it is (the model's config takes both): the checks here test `is True` /
            # `is False`, so np.True_ made learnable_temperature read as off (a valid encoder_objectives refused),
            # np.False_ let reconstruction_decoders pass beside a reconstruction weight (train then named fit's
            # `objectives`), and neither json.dumps
            value = getattr(self, name)
            if isinstance(value, np.bool_):
                object.__setattr__(self, name, bool(value))
        for name in _FLOAT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind == "f" and not is_masked_array(value):
                value = value[()]
            if isinstance(value, np.floating) and value.dtype.itemsize <= 8:
                value = float(value)
            if isinstance(value, float):
                object.__setattr__(self, name, unsigned_zero(value))  # -0 typed: 0.0, as the model's config keeps it

    def _check_neighborhood_and_encoder_objectives(self) -> None:
        """Refuses, by these settings' own names, objectives that would train
        nothing: fit refused them naming its ``objectives``, an argument
        these settings do not have (``weights`` is theirs)."""
        given = self._weights_source()
        weight = self.objectives.get("neighborhood", 0.0)
        k = self.neighborhood_neighbors
        if weight > 0 and is_int(k) and k == 0:
            raise InvalidValueError(
                f"neighborhood_neighbors: got 0, but {given} neighborhood weight {weight}, which needs neighbours "
                "(with none it is 0 on every batch); expected neighborhood_neighbors >= 1, or weights with neighborhood 0",
                "neighborhood_neighbors",
            )
        kept = _objective_names(self.encoder_objectives, "encoder_objectives")
        # held as the config holds them, a tuple in canonical order: a set (which the config takes) made the
        # settings unhashable, and ("binding", "contrastive") unequal to the same objectives in the other order
        object.__setattr__(self, "encoder_objectives", kept)
        weighted = [o for o, w in self.objectives.items() if w > 0]
        idle = untrainable_objectives(kept, self.learnable_temperature is True, self.objectives)
        if weighted and all(o in idle for o in weighted):
            raise InvalidValueError(
                f"encoder_objectives: got {kept}, but {given} only {', '.join(weighted)}, which train only the encoders "
                f"(contrastive also its temperature, when learnable_temperature=True), so nothing would train; "
                "expected those objectives in encoder_objectives, or weights that train beyond the encoders",
                "encoder_objectives",
            )

    def _weights_source(self) -> str:
        """Where the objectives' weights come from, as an error's subject."""
        return "weights gives" if self.weights is not None else "the recipe's objectives (weights=None) give"

    def model_options(self) -> Dict[str, Any]:
        """The :class:`LearnableMultiModal` keywords these settings choose."""
        return dict(
            embed_dim=self.embed_dim, hidden_dim=self.hidden_dim, num_heads=self.num_heads,
            binder_kind=self.binder_kind, temperature=self.temperature,
            learnable_temperature=self.learnable_temperature, encoder_hidden=self.encoder_hidden,
            encoder_output_dim=self.encoder_output_dim, shared_head=self.head(),
            encoder_input_dropout=self.encoder_input_dropout, encoder_hidden_dropout=self.hidden_dropout(),
            encoder_skip=self.skip(), fused_neighbors=self.fused_neighbors, fused_neighbor_space=self.fused_neighbor_space,
            input_distance=self.input_distance,
            contrastive_neighbors=self.contrastive_neighbors,
            contrastive_neighbor_weight=self.contrastive_neighbor_weight,
            neighborhood_neighbors=self.neighborhood_neighbors, neighborhood_temperature=self.neighborhood_temperature,
            contrastive_pair_power=self.contrastive_pair_power, encoder_objectives=self.encoder_objectives,
            fusion_residual=self.fusion_residual, reconstruction_decoders=self.decoders(),
            reconstruction_subsets=self.reconstruction_subsets,
            learning_rate=self.learning_rate, weight_decay=self.weight_decay, seed=self.seed,
        )

    def decoders(self) -> bool:
        """The reconstruction decoders: ``reconstruction_decoders`` as given
        (the model's config checks it), else (``None``) whether the
        objectives weigh ``reconstruction``."""
        if self.reconstruction_decoders is not None:
            return self.reconstruction_decoders
        return self.objectives.get("reconstruction", 0.0) > 0

    def head(self) -> Sequence[int]:
        """The shared head's widths: ``shared_head`` as given (the model's
        config checks it), else (``None``) one hidden layer of 128 then
        ``embed_dim``."""
        return recipe_head(self.embed_dim) if self.shared_head is None else self.shared_head

    def hidden_dropout(self) -> Any:
        """The dropout after the encoders' hidden layers:
        ``encoder_hidden_dropout`` as given (the model's config checks it),
        else (``None``) :func:`recipe_hidden_dropout` of the encoders' widths."""
        if self.encoder_hidden_dropout is None:
            return recipe_hidden_dropout(self.encoder_hidden)
        return self.encoder_hidden_dropout

    def skip(self) -> Any:
        """The encoders' skip path: ``encoder_skip`` as given (the model's
        config checks it), else (``None``) :func:`recipe_skip` of the
        encoders' and the head's widths."""
        return recipe_skip(self.encoder_hidden, self.head()) if self.encoder_skip is None else self.encoder_skip

    @property
    def objectives(self) -> Dict[str, float]:
        """The objective weights (``weights``, else :data:`RECIPE_OBJECTIVES`)."""
        return dict(RECIPE_OBJECTIVES if self.weights is None else self.weights)

    def stopping_options(self, n_views: int) -> Dict[str, Any]:
        """The keywords of :func:`~grapheme_multimodal.stopping.fit_with_stopping`
        these settings choose for ``n_views`` views."""
        return dict(
            validation_fraction=self.validation_fraction, patience=self.patience, monitor=self.monitor(n_views),
            min_validation_rows=self.min_validation_rows, cv_folds=self.cv_folds, seed=self.seed,
        )

    def monitor(self, n_views: int) -> str:
        """What early stopping watches for ``n_views`` views: the validation
        contrastive loss, or the total when there is no view pair or the
        objectives leave contrastive out."""
        # checked: "2" raised Python's "'>=' not supported", and True, -1 or 2.5 were answered
        n_views = _check_int(n_views, "n_views", 1)
        return "val_contrastive" if n_views >= 2 and self.objectives.get("contrastive", 0) > 0 else "val_total"


#: The fields of :class:`TrainingSettings` that hold one int (``encoder_output_dim`` may be None): read
#: off the annotations (strings: ``from __future__ import annotations``), so a new int field is among them.
_INT_FIELDS = tuple(f.name for f in fields(TrainingSettings) if f.type in ("int", "Optional[int]"))
#: Those that hold one float, likewise.
_FLOAT_FIELDS = tuple(f.name for f in fields(TrainingSettings) if f.type in ("float", "Optional[float]"))
#: Those that hold one bool, likewise.
_BOOL_FIELDS = tuple(f.name for f in fields(TrainingSettings) if f.type in ("bool", "Optional[bool]"))


def _shown_field(value: Any) -> str:
    """A field of :class:`TrainingSettings` as its repr shows it: ``repr``,
    with the ints of it, a tuple's too, as :func:`shown_number` shows them."""
    if type(value) is tuple:
        return "(" + ", ".join(map(shown_number, value)) + ("," if len(value) == 1 else "") + ")"
    return shown_number(value)


def check_weights(weights: Any, name: str = "weights", default: str = "None: the recipe's, RECIPE_OBJECTIVES") -> None:
    """Refuses objective weights the recipe cannot train with, by the
    caller's argument ``name`` (``TrainingSettings(weights=...)``; the
    estimator's ``objectives``; ``grapheme-mm train --objectives``): not
    ``None`` or a mapping (``TypeError``); an unknown objective, a weight
    that is not a finite number >= 0, seed_consistency weighted (the views
    have no recorded fused embeddings), or every weight 0 (``InvalidValueError``,
    saying ``default``: how the caller gets the recipe's weights instead)."""
    if weights is None:
        return
    if not isinstance(weights, Mapping):
        raise TypeError(f"{name}: expected None or a mapping objective name -> float, got {describe(weights)}")
    if max(resolve_weights(weights, False, name)) <= 0:
        raise all_zero_error(weights, name, default)


#: ``train``'s views: keyed by modality name or :class:`Modality` (one
#: ``Mapping`` each: ``Mapping`` is invariant in its key, and ``fit_views``
#: passes Modality keys).
_Views = Union[Mapping[str, np.ndarray], Mapping[Modality, np.ndarray]]


def train(
    inputs: _Views,
    settings: TrainingSettings = TrainingSettings(),
    progress: bool = False,
    *,
    validation: Optional[_Views] = None,
    standardize: bool = False,
) -> LearnableMultiModal:
    """A model trained with :meth:`~LearnableMultiModal.fit` on ``inputs``
    (modality name → ``[N, d]``), every view present in every row before
    dropout. Early stopping watches ``validation`` when given (views of
    ``inputs``' modalities; another is refused, naming ``validation``), else
    ``settings.validation_fraction`` of ``inputs`` held out (none when too
    few rows: then all ``epochs`` run); the best epoch's weights are kept.
    When the held-out slice would be smaller than
    ``settings.min_validation_rows`` (but hold 2 rows or more),
    cross-validation chooses the number of epochs instead (:func:`~grapheme_multimodal.stopping.fit_with_stopping`).
    ``standardize=True`` has the model learn and keep the views' statistics
    (for raw inputs), else ``inputs`` must already be standardised."""
    if not isinstance(settings, TrainingSettings):  # else "'dict' object has no attribute 'model_options'"
        raise TypeError(f"settings: expected a TrainingSettings, got {describe(settings)}")
    s = settings
    if validation is not None and not isinstance(validation, Mapping):  # else dict()'s "cannot convert dictionary
        # update sequence element #0 to a sequence", naming nothing (and a list of pairs taken as views)
        raise TypeError(f"validation: expected None or a mapping modality -> [N, d] array, got {describe(validation)}")
    try:
        model = LearnableMultiModal(input_dims=_input_dims(inputs), **s.model_options())
    except GraphemeError as err:  # the dims are those of inputs: "input_dims" is no argument of train's
        raise renamed(err, {"input_dims": "inputs"}) from None
    if validation is not None:
        _refuse_views_not_trained(validation, inputs)
    # train (and fit_views) take no mask: every view is present in every row, so a NaN is no missing value,
    # and fit's refusal of one says nothing of rows a mask marks absent
    try:
        call_taking_no_mask(
            fit_with_stopping,
            model,
            dict(inputs),
            validation=None if validation is None else dict(validation),
            **s.stopping_options(len(inputs)),
            epochs=s.epochs,
            batch_size=s.batch_size,
            objectives=s.objectives,  # no lr=: the model's learning_rate is the settings', and a refused step
            # names it so; as fit's lr it named `lr`, no argument here nor field of the settings
            modality_dropout=s.modality_dropout,
            ema_decay=s.ema_decay,
            standardize=standardize,
            progress=progress,
        )
    except (GraphemeError, TypeError) as err:  # fit's names for what train takes in its settings: parameters grown
        # past float32 (named `parameters`) by the settings' learning_rate, and fit's `objectives`, the settings' weights
        raise renamed(grown_by_learning_rate(err, s.learning_rate, "settings.learning_rate",
                                             "settings with a smaller learning_rate"),
                      {"objectives": "settings.weights"}) from None
    return model


def _refuse_views_not_trained(validation: Mapping[Any, Any], inputs: Mapping[Any, Any]) -> None:
    """Refuses ``validation`` without views (fit named it "when
    validation_mask is None", an argument :func:`train` does not take), and
    a view whose modality ``inputs`` lacks: the model has no encoder trained
    for it (fit refused one of the wrong width by the model's
    ``input_dims``, no argument of :func:`train`, and took one of the
    default width, measuring an encoder no row trained)."""
    if not validation:
        raise InvalidValueError("validation: expected None or at least one modality -> [N, d] array, got an empty "
                                "mapping", "validation")
    trained = {Modality.parse(m, "inputs") for m in inputs}
    for key in validation:
        m = Modality.parse(key, "validation")
        if m not in trained:
            raise InvalidValueError(
                f"validation: view {key!r} is no modality of inputs ({', '.join(str(t) for t in sorted(trained, key=lambda t: t.index))}); "
                "expected validation rows of the views trained on", "validation")


def _input_dims(inputs: Any) -> Dict[Any, int]:
    """Each view's width, from ``inputs`` checked to be views of ``[N, d]``
    (a list has no ``.shape``, a 1-D array no width: "tuple index out of range")."""
    if not isinstance(inputs, Mapping):
        raise TypeError(f"inputs: expected a mapping modality -> [N, d] array, got {describe(inputs)}")
    if not inputs:  # else fit's "expected at least one array when mask is None", an argument train has not
        raise InvalidValueError("inputs: expected at least one modality -> [N, d] array, got an empty mapping", "inputs")
    dims = {}
    for m, x in inputs.items():
        name = f"inputs[{str(m) if isinstance(m, Modality) else m!r}]"  # inputs['visual'], as the model names it
        shape = as_real_array(x, name).shape
        if len(shape) != 2:
            raise ShapeError(f"{name}: expected a 2-D array [N, d], got shape {shape}", name)
        if not shape[1]:  # else the model's "input_dims['visual']: expected a positive int", an argument not given
            raise ShapeError(f"{name}: has no columns (shape {shape}); expected at least one column", name)
        dims[m] = shape[1]
    return dims


def fit_views(
    views: Mapping[str, np.ndarray],
    seed: Optional[int] = None,
    *,
    settings: Optional[TrainingSettings] = None,
    validation: Optional[Mapping[str, np.ndarray]] = None,
    progress: bool = False,
) -> ModelEmbedder:
    """The recipe: a model trained on raw ``views`` (view name → ``[N, d_v]``,
    rows aligned; the model learns and keeps the standardisation), views in
    modality slots by :func:`~grapheme_multimodal.evaluation.view_modalities`.

    ``settings`` defaults to ``TrainingSettings(seed=seed)`` (seed 0 when
    ``seed`` is ``None``); a ``seed`` given beside ``settings`` replaces
    ``settings.seed`` (so that ``partial(fit_views, settings=s)`` is a recipe
    whose seeds are the caller's); ``validation``
    (raw views) replaces the held-out slice for early stopping (see
    :func:`train`). Returns a
    :class:`~grapheme_multimodal.evaluation.ModelEmbedder` (``.model`` is
    the :class:`LearnableMultiModal`), so ``fit_views`` is a
    :data:`~grapheme_multimodal.evaluation.Recipe`.
    """
    check_views(views)
    modalities = view_modalities(views)
    settings = TrainingSettings() if settings is None else settings
    if not isinstance(settings, TrainingSettings):  # else "'dict' object has no attribute 'seed'"
        raise TypeError(f"settings: expected a TrainingSettings or None, got {type(settings).__name__}")
    if seed is not None:  # was ignored beside settings: every seed trained settings.seed's model
        settings = replace(settings, seed=seed)
    as_inputs = lambda vs: {modalities[v]: x for v, x in vs.items()}  # noqa: E731
    if validation is not None:  # else a raw KeyError naming only the view
        if not isinstance(validation, Mapping):
            raise TypeError(f"validation: expected None or a mapping view name -> [N, d] array, got {describe(validation)}")
        check_views(validation, "validation")  # {}: named by fit "when validation_mask is None", no argument here
        unknown = [v for v in validation if v not in modalities]
        if unknown:
            raise InvalidValueError(
                f"validation: unknown view names {unknown}; expected some of the training views {list(modalities)}", "validation"
            )
        for v, x in validation.items():
            if x is None:  # else fit's "no modality was given ... when validation_mask is None", no argument here
                raise TypeError(f"validation[{v!r}]: got None; expected a real-valued [N, d] array of the view's validation "
                                "rows (or the view left out of validation)")
    # errors and PrecisionLossWarning are named by the model's modalities: inputs['visual'], data['visual']
    names = {**view_names(modalities, "inputs", "views"), **view_names(modalities, "data", "views"),
             **view_names(modalities, "validation", "validation"), "inputs": "views",
             "objectives": "settings.weights"}  # fit's name for them (weights overflowing the loss's float32)
    # fit's refusal of rows that all standardise to 0 said where it is raised, by the views' names: it named fit's
    # `data`, its option standardize=False (fit_views has neither) and the views by their modality slots
    views_of = {str(m): repr(v) for v, m in modalities.items()}
    def trained() -> LearnableMultiModal:
        return train(as_inputs(views), settings, progress,
                     validation=None if validation is None else as_inputs(validation), standardize=True)

    try:
        model = call_in_precision_scope(names, call_with_constant_rows_refused_as, views_of, _constant_views_error,
                                        trained)
    except (GraphemeError, TypeError) as err:
        raise renamed(grown_by_learning_rate(err, settings.learning_rate, "settings.learning_rate",
                                             "settings with a smaller learning_rate"), names) from None
    return ModelEmbedder(model, modalities)


def _constant_views_error(rows: str, why: str) -> InvalidValueError:
    """fit's refusal of training ``rows`` that all standardise to 0, in
    :func:`fit_views`' words (``rows`` names the views: "all 36 rows hold
    the same 'fou', 'pix' values"): the rows training fits are those left
    after a validation slice or a fold. fit's ``why`` names its option
    standardize, which the recipe sets."""
    return InvalidValueError(
        f"views: of the rows training fits (less a validation slice or fold), {rows}; the recipe standardises each "
        "view by those rows' mean, so every input would be 0 and nothing could be learned; expected rows that differ",
        "views")


def member_seeds(seed: IntLike, members: IntLike, *, seed_arg: str = "seed", members_arg: str = "members") -> Tuple[int, ...]:
    """The training seeds of :func:`fit_ensemble`'s members: ``seed * members + j``
    for member ``j``. An ensemble of one is :func:`fit_views`'s model of
    ``seed``, and ensembles of different seeds share no member. Errors name
    the arguments ``seed_arg`` and ``members_arg`` (the caller's names)."""
    members = as_positive_int(members, members_arg)
    if members > 2**64:  # member j's seed is at least j: past 2**64 members none is a u64 (the bound below was a float)
        raise InvalidValueError(f"{members_arg}: expected at most 2**64 members (member j trains with {seed_arg} * "
                                f"{members_arg} + j, which the core takes as a u64), got {shown_number(members, str)}", members_arg)
    # each seed a Python int and its slot in the tuple: a larger count filled memory without a word
    refuse_beyond_budget(40 * members, members_arg, "the seeds of {members:,} members take {bytes} bytes",
                         remedy="fewer members", members=members)
    # every member's seed must be one the core takes (a u64): seed * members + j < 2**64
    below = 2 ** (64 - (members - 1).bit_length())
    seed = as_seed(seed, seed_arg, below=below, why=f" (member j trains with {seed_arg} * {members} + j)")
    return tuple(seed * members + j for j in range(members))


#: What a trained model holds per parameter: its float32 weights, Adam's two
#: moments, and the weight average's float64 mean and the trained weights
#: (measured: about 42 bytes a parameter on a trained recipe model).
TRAINED_BYTES_PER_PARAMETER = 36


def refuse_members_beyond_memory(params: int, members: int, arg: str, folds: int = 0) -> None:
    """A :class:`~grapheme_multimodal.TooLargeError` naming ``arg`` when
    ``members`` trained models of ``params`` parameters each, all held at
    once until the ensemble is made, would not fit in memory beside the
    copies that the ``folds`` cross-validation folds of the one training
    make (:func:`~grapheme_multimodal.stopping.folds_bytes`): past it, the
    members trained until an allocation aborted the process."""
    trained, copies = TRAINED_BYTES_PER_PARAMETER * params * members, folds_bytes(params, folds)
    what = "{members:,} models of {params:,} parameters, each with its training state, take {trained:,} bytes"
    if copies:
        what += ", and the {folds} cross-validation folds of a member training {copies:,} more"
    refuse_beyond_budget(trained + copies, arg, what, remedy="fewer members", members=members, params=params,
                         trained=trained, folds=folds, copies=copies)


def members_within_memory(params: int, members: int, arg: str, folds: int, jobs: int) -> int:
    """How many of ``members`` models of ``params`` parameters train at once,
    ``jobs`` at most, after :func:`refuse_members_beyond_memory` (naming
    ``arg``) has checked that they all fit once trained: fewer when that
    many, each copying its model for its ``folds`` cross-validation folds
    (:func:`~grapheme_multimodal.stopping.planned_folds`), would not fit
    beside the trained members (all were copied at once: past memory, an
    allocation aborted the process). Each member trains bit for bit the
    same however many train at once."""
    refuse_members_beyond_memory(params, members, arg, folds)
    return jobs_within_memory(jobs, folds_bytes(params, folds), TRAINED_BYTES_PER_PARAMETER * params * members)


def fit_ensemble(
    views: Mapping[str, np.ndarray],
    seed: Optional[int] = None,
    *,
    members: IntLike = 3,
    settings: Optional[TrainingSettings] = None,
    validation: Optional[Mapping[str, np.ndarray]] = None,
    progress: bool = False,
    n_jobs: Optional[IntLike] = None,
) -> EnsembleEmbedder:
    """``members`` models trained by :func:`fit_views` on the same ``views``,
    each from its own seed (:func:`member_seeds`; ``seed`` defaults to
    ``settings.seed``, else 0), measured as one
    (:class:`~grapheme_multimodal.evaluation.EnsembleEmbedder`: their
    embeddings side by side, so similarities are the mean of the members').
    ``members`` times the training and the embedding's width. A
    :data:`~grapheme_multimodal.evaluation.Recipe`, as :func:`fit_views`.

    ``n_jobs`` members train at once, on threads (scikit-learn's meaning:
    None or 1 one at a time, -1 one per CPU): each member is bit for bit
    the same either way. On 2 cores, three recipe members on UCI took 57 s
    all at once (``n_jobs=3``), 69 s two at a time (``-1``) and 84 s in
    turn (``benchmarks/ensemble_training_time.py``). Ctrl-C stops them all,
    each at its next step.

    On UCI Multiple Features (ten splits) and the digits cut into views,
    three members lifted class precision, instance recall and the binder's
    ROC-AUC on every split, not the fused embedding's 5-NN
    (docs/objectives.md, "Measured: an ensemble of recipe models")."""
    members = as_positive_int(members, "members")
    if settings is not None and not isinstance(settings, TrainingSettings):  # checked before any member trains
        raise TypeError(f"settings: expected a TrainingSettings or None, got {type(settings).__name__}")
    seed_arg = "seed"
    if seed is None:  # a seed from the settings is named as theirs: the caller gave no `seed`
        seed, seed_arg = (0, seed_arg) if settings is None else (settings.seed, "settings.seed")
    seeds = member_seeds(seed, members, seed_arg=seed_arg)
    jobs = resolve_n_jobs(n_jobs, members)
    if members > 1:
        check_views(views)
        modalities = view_modalities(views)
        names = {**view_names(modalities, "inputs", "views"), "inputs": "views"}
        try:  # each view's width, by fit_views' names: np.shape(x)[1] of a 1-D view, a str or None was an IndexError
            input_dims = _input_dims({modalities[v]: x for v, x in views.items()})
        except (GraphemeError, TypeError) as err:
            raise renamed(err, names) from None
        # every member is held until the ensemble is made: counted before any trains (by an untrained model of the
        # settings); past memory, the members trained until an allocation aborted the process
        recipe = settings or TrainingSettings()
        try:
            probe = LearnableMultiModal(input_dims=input_dims, **recipe.model_options())
        except GraphemeError as err:  # the widths are the views': named as train and fit_views name them (one member's
            # ensemble did), not by the model's input_dims, no argument of fit_ensemble's
            raise renamed(renamed(err, {"input_dims": "inputs"}), names) from None
        rows = np.shape(next(iter(views.values())))[0]
        folds = 0 if validation is not None else planned_folds(
            rows, recipe.validation_fraction, recipe.min_validation_rows, recipe.cv_folds, recipe.patience, recipe.epochs)
        jobs = members_within_memory(probe.num_parameters(), members, "members", folds, jobs)
        del probe
    if jobs > 1:  # one read-only copy for all the members, not one each (fit copies a writable array for itself)
        views = {v: shared_snapshot(x) for v, x in views.items()}
        if isinstance(validation, Mapping):
            validation = {v: shared_snapshot(x) for v, x in validation.items()}
    tasks = [partial(fit_views, views, s, settings=settings, validation=validation, progress=progress) for s in seeds]
    return EnsembleEmbedder(run_tasks(tasks, jobs))
