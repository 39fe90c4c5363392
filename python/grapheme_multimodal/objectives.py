"""The training objectives' names and how their weights are chosen.

The formulas are in ``docs/objectives.md`` (and in the Rust core's
``objectives.rs``). In short:

- ``seed_consistency``: the original ``compute_loss``, mean over rows of
  ``(1 - reward) * MSE(fuse(embeddings), recorded fused)``; needs
  ``Batch.fused``.
- ``contrastive``: symmetric InfoNCE between the embeddings of every pair of
  modalities of the same event, against the other events of the batch.
- ``binding``: binary cross-entropy on binder strengths, same-event pairs
  against pairs whose second side comes from another event.
- ``cross_modal``: drop one present modality, attend from the fused
  remainder, predict the dropped embedding (cosine loss).
- ``fused_contrastive``: InfoNCE between the fused embeddings of two random
  modality subsets of the same event, against the other events of the
  batch; the event's ``config.fused_neighbors`` nearest events (by their
  modality embeddings, or by their inputs when
  ``config.fused_neighbor_space="inputs"``) count as positives too.
- ``neighborhood``: InfoNCE among one modality's embeddings of the batch
  (the event itself left out), each event's positives its
  ``config.neighborhood_neighbors`` nearest events by all their inputs: the
  modality embeddings keep the events' input-space neighbourhood, which
  aligning the views wears down. 0 on recorded embeddings (no inputs to
  find neighbours by, no encoders to train). Not in the default mix.
- ``reconstruction``: from each event's fused embedding, a linear decoder
  per modality (``config.reconstruction_decoders``, which it needs)
  predicts the modality's standardised input; the mean squared error per
  input column over the present (event, modality) pairs. Trains the
  decoders, the fusion network and the encoders; 0 on recorded embeddings
  (no inputs to reconstruct). Not in the default mix.
"""

from __future__ import annotations

__all__ = ["OBJECTIVES", "DEFAULT_WEIGHTS", "ROW_COMPARING_OBJECTIVES"]

import math
from collections.abc import Mapping, Sequence  # not typing's aliases: isinstance of them takes 3x as long
from typing import Any, Dict, Iterable, List, Optional, Tuple

import numpy as np

from . import _core
from ._readonly import ReadOnlyMapping
from ._validation import describe, over_float64, shown_float, unsigned_zero
from .exceptions import InvalidTypeError, InvalidValueError

#: Objective names, in the order the core takes their weights. A tuple: every
#: call maps weights to the core by this order, and a list sorted or edited in
#: place by a user holding it (``names = gm.OBJECTIVES; names.sort()``) gave
#: every later fit in the process its weights on the wrong objectives.
OBJECTIVES: Tuple[str, ...] = tuple(_core.OBJECTIVE_NAMES)

#: The default mix: trains every parameter tensor (contrastive → encoders,
#: binding → binder, cross_modal → attention and fusion, fused_contrastive →
#: fusion and encoders). seed_consistency joins with weight 1 when the batch
#: carries recorded fused embeddings. Read-only, as uci.RECIPE_OBJECTIVES:
#: it is every fit's default, and a user's ``weights = gm.DEFAULT_WEIGHTS;
#: weights["binding"] = 0`` changed the default of every later fit.
DEFAULT_WEIGHTS: Mapping[str, float] = ReadOnlyMapping({
    "seed_consistency": 1.0,
    "contrastive": 1.0,
    "binding": 1.0,
    "cross_modal": 1.0,
    "fused_contrastive": 1.0,
})
#: resolve_weights(None, has_fused) without fused targets and with them, in OBJECTIVES order: made once
#: (DEFAULT_WEIGHTS is read-only), where every step of the default mix built them again (1.5 us).
_DEFAULT_LISTS = tuple(
    tuple(0.0 if key == "seed_consistency" and not has_fused else DEFAULT_WEIGHTS.get(key, 0.0) for key in OBJECTIVES)
    for has_fused in (False, True)
)


#: The objectives that tell the rows of a batch apart (a row's other views,
#: or its neighbours, against the other rows): 0 on a batch of one row.
ROW_COMPARING_OBJECTIVES = ("contrastive", "binding", "fused_contrastive", "neighborhood")

#: What to do instead when every weighted objective compares rows and there is one row.
ONE_ROW_REMEDY = ("expected at least 2 rows, or an objective that learns from one row (cross_modal, seed_consistency, "
                  "reconstruction with reconstruction_decoders=True)")

#: The largest float32: the core refuses weights beyond it.
_FLOAT32_MAX = float(np.finfo(np.float32).max)
#: The smallest normal float32: a weight below it is refused (see resolve_weights).
_FLOAT32_TINY = float(np.finfo(np.float32).tiny)


def split_by_rows(weights: Mapping[str, float]) -> Tuple[List[str], List[str]]:
    """The weighted objectives (weight > 0, in the order given) in two:
    those that compare the rows of a batch, which are 0 on one row, and
    those that learn from one row."""
    weighted = [o for o, w in weights.items() if w > 0]
    return [o for o in weighted if o in ROW_COMPARING_OBJECTIVES], [o for o in weighted if o not in ROW_COMPARING_OBJECTIVES]


def zero_on_one_row(what: str, comparing: Sequence[str]) -> str:
    """How a message about ``what`` (an argument of one row) begins: the
    objectives that are 0 on it."""
    return f"{what}: {one_row_clause(comparing)}"


def one_row_clause(comparing: Sequence[str], rows: str = "1 row") -> str:
    """Why ``comparing`` (objectives that compare rows) are 0 on data of one
    row (``rows``: what the data has, e.g. ``"only 1 row holds a modality"``)."""
    return f"{rows}; {', '.join(comparing)} tell the rows of a batch apart and are 0 on a single row"


def check_objective_names(names: "Iterable[str]", name: str) -> None:
    """InvalidValueError (about argument ``name``) unless every one of
    ``names`` is in :data:`OBJECTIVES`."""
    # not set(names): an unhashable name (a list, an array) failed there as "unhashable type", naming nothing
    unknown = [n for n in names if not (isinstance(n, str) and n in OBJECTIVES)]
    unknown = sorted((n for i, n in enumerate(unknown) if n not in unknown[:i]), key=str)
    if unknown:
        raise InvalidValueError(f"{name}: unknown objectives {unknown}; expected some of {list(OBJECTIVES)}", name)


def resolve_weights(weights: Optional[Mapping[str, float]], has_fused: bool, name: str = "weights") -> List[float]:
    """The weight of each objective, in :data:`OBJECTIVES` order.

    ``None`` gives :data:`DEFAULT_WEIGHTS` (seed_consistency only when the
    batch has ``fused`` targets). A mapping names the objectives to train;
    those it leaves out get weight 0. Each weight is 0 or a finite number
    from float32's smallest normal (1.18e-38) to its largest. ``name`` is
    the argument's name in error messages.
    """
    if weights is None:
        return list(_DEFAULT_LISTS[1 if has_fused else 0])  # a new list: the caller's own
    if not isinstance(weights, Mapping):
        raise TypeError(f"{name}: expected a mapping objective name -> float, got {type(weights).__name__}")
    check_objective_names(weights, name)
    chosen = {key: _checked_weight(name, key, value) for key, value in weights.items()}
    if chosen.get("seed_consistency", 0.0) > 0 and not has_fused:
        raise InvalidValueError(
            f"{name}: seed_consistency needs the batch's recorded fused embeddings (Batch.fused [B, E]); "
            "pass them or leave seed_consistency out", name,
        )
    return [chosen.get(key, 0.0) for key in OBJECTIVES]


def _checked_weight(name: str, key: str, value: Any) -> float:
    """The weight ``value`` of objective ``key`` (in the argument ``name``) as
    a float: 0 or a finite number float32 holds as a normal number, else
    the error naming ``name[key]``, what was given and what is expected."""
    if (isinstance(value, (bool, np.bool_, complex, np.complexfloating))  # float() dropped numpy's imaginary part
            or isinstance(value, np.timedelta64)  # a duration: 3 seconds weighed 3, or float() failed naming nothing
            or not isinstance(value, (int, float)) and not hasattr(value, "__float__")):
        raise InvalidTypeError(f"{name}[{key!r}]: expected a number, got {type(value).__name__}", name)
    if isinstance(value, np.ndarray) and value.ndim != 0:  # float() of it: numpy's "only 0-dimensional arrays", naming nothing
        raise TypeError(f"{name}[{key!r}]: expected a number, got an array of shape {value.shape}")
    given = value
    try:
        value = float(value)
    except OverflowError:  # else "int too large to convert to float", naming nothing
        raise InvalidValueError(f"{name}[{key!r}]: expected a finite number >= 0, got an int too large for a float", name) from None
    except (TypeError, ValueError):  # a 0-d array of text or of durations: numpy's error named nothing
        raise InvalidTypeError(f"{name}[{key!r}]: expected a number, got {describe(value)}", name) from None
    if not (math.isfinite(value) or over_float64(given)) or value < 0:  # 1e4000: too large for float32, below
        # shown as given: float() made a long double beyond float64 inf, a value the caller never gave
        raise InvalidValueError(f"{name}[{key!r}]: expected a finite number >= 0, got {shown_float(given)}", name)
    if value > _FLOAT32_MAX:  # else the core refused it by its own name, weights
        raise InvalidValueError(
            f"{name}[{key!r}]: expected a finite number >= 0 that float32 holds, got {shown_float(given)}", name)
    # a long double 1e-4000 is 0 already as a float: refused as 1e-50 is, not taken as a weight of 0
    if (value > 0 or value == 0 and isinstance(given, np.floating) and given > 0) and np.float32(value) == 0:
        # the core weighs in float32: 1e-50 became 0, and the "every weight is 0" refusal passed it,
        # so fit trained on zero gradients while its history showed a loss of 0
        raise InvalidValueError(
            f"{name}[{key!r}]: got {shown_float(given)}, which is 0 in float32 (smallest positive "
            f"{float(np.finfo(np.float32).smallest_subnormal):.3g}), the precision the model computes in; "
            "expected 0 to leave the objective out, or a weight float32 holds", name)
    if 0 < value < _FLOAT32_TINY:
        # as grad_clip below it: 1e-45 (a typo for 1e-4?) was taken, and the objective's loss and gradients
        # weighed by it are 0 or subnormal in float32, which Adam's step turns into no change at all
        raise InvalidValueError(
            f"{name}[{key!r}]: got {shown_float(given)}, a subnormal float32 (below {_FLOAT32_TINY:.3g}, the "
            "smallest normal one): the objective's loss and gradients weighed by it are 0 or subnormal in "
            "float32, the precision the model computes in, so it trains nothing; expected 0 to leave the "
            f"objective out, or a weight >= {_FLOAT32_TINY:.3g}", name)
    return unsigned_zero(value)


def all_zero_error(given: Optional[Mapping[str, float]], name: str, default: str = "") -> InvalidValueError:
    """The refusal of weights ``given`` (argument ``name``) that leave every
    objective at 0: every step would be an Adam step on zero gradients,
    moving the weights by their momentum and learning nothing. ``default``
    says what ``None`` would have chosen. Raised by the callers (after their
    own ``max(w) <= 0``), so the check itself costs no call."""
    said = f" ({default})" if default else ""
    # as plain floats: numpy's showed as np.float64(0.0), and -0 as -0.0 (the callers checked each is a number)
    zeros = {key: unsigned_zero(float(value)) for key, value in (given or {}).items()}
    return InvalidValueError(
        f"{name}: every weight is 0 ({zeros}); expected at least one objective with a weight > 0{said}", name
    )


def neighborhood_without_neighbors_error(weight: float, name: str) -> InvalidValueError:
    """The refusal (naming the weights' argument ``name``) of a ``neighborhood``
    weight of ``weight`` > 0 in a model with ``neighborhood_neighbors=0``: no
    positives, so the objective is 0 on every batch and its weight trains
    nothing, alone or beside others."""
    return InvalidValueError(
        f"{name}: neighborhood has weight {weight}, but the model's neighborhood_neighbors is 0 (no neighbours to "
        "keep: the objective is 0 on every batch); expected weight 0, or a model made with neighborhood_neighbors >= 1",
        name,
    )


def unmeasured_objectives(weights: Mapping[str, float], mask: np.ndarray, has_inputs: bool = True,
                          rewards: Optional[np.ndarray] = None) -> Dict[str, str]:
    """The weighted objectives that are 0 on every batch of rows whose
    presence is ``mask [N, 7]``, each with why: on a single row every
    objective that compares rows (:data:`ROW_COMPARING_OBJECTIVES`), else
    ``cross_modal`` predicts a modality from the others of its row (no row
    holds two modalities), ``contrastive`` and ``binding`` tell a row's pair
    of modalities from other rows' (no two rows hold the same pair),
    ``neighborhood`` ranks a row's neighbours among the other rows holding
    its modality, a softmax that is 1 over a single one (no three rows hold
    the same modality), and it finds a row's neighbours by its inputs and
    ``reconstruction`` predicts them (recorded embeddings have none);
    ``seed_consistency`` weighs each row by ``1 - reward`` (every one of
    ``rewards``, when given, 1). The one answer to "what do these rows leave
    at 0" for fit's data, its validation, fit_with_stopping's held-out rows
    and train_step's batch."""
    present = np.asarray(mask, dtype=bool)
    if not present.size:
        return {}
    together = present.T.astype(np.int64) @ present.astype(np.int64)  # [7, 7]: rows holding both i and j
    np.fill_diagonal(together, 0)
    multi = bool((present.sum(axis=1) >= 2).any())
    why = {
        "cross_modal": None if multi else "no row holds two modalities",
        "contrastive": None if together.max() >= 2 else "no two rows hold the same pair of modalities",
    }
    why["binding"] = why["contrastive"]
    why["neighborhood"] = ("recorded embeddings hold no inputs to find neighbours by" if not has_inputs
                           # a row's softmax runs over the other rows holding its modality: over one, it is 1
                           else None if present.sum(axis=0).max() >= 3 else "no three rows hold the same modality")
    why["reconstruction"] = None if has_inputs else "recorded embeddings hold no inputs to reconstruct"
    if rewards is not None and len(rewards) and not np.count_nonzero(rewards != 1):  # the rows' rewards, where known
        why["seed_consistency"] = "every row's reward is 1, and seed_consistency weighs each row by 1 - reward"
    if len(present) < 2:
        why.update(dict.fromkeys(ROW_COMPARING_OBJECTIVES, _ONE_ROW))
    elif np.count_nonzero(present.any(axis=1)) < 2:  # rows holding nothing are skipped: one row is compared with none
        why.update(dict.fromkeys(ROW_COMPARING_OBJECTIVES, _ONE_HELD_ROW))
    return {o: why[o] for o, w in weights.items() if w > 0 and why.get(o) is not None}


#: The reason :func:`unmeasured_objectives` gives for the objectives that compare rows, on one row.
_ONE_ROW = "1 row"
#: ... and on rows of which one holds a modality (the others hold none, and are skipped).
_ONE_HELD_ROW = "only 1 row holds a modality"
_ONE_ROW_REASONS = frozenset({_ONE_ROW, _ONE_HELD_ROW})


def _zero_because(zero: Mapping[str, str], objectives: Sequence[str]) -> str:
    """``"no row holds two modalities (cross_modal is 0 on them); ..."``: why ``objectives`` are 0, one clause per reason."""
    by_reason: Dict[str, List[str]] = {}
    for o in objectives:
        by_reason.setdefault(zero[o], []).append(o)
    return "; ".join(one_row_clause(names, why) if why in _ONE_ROW_REASONS else
                     f"{why} ({', '.join(names)} {'is' if len(names) == 1 else 'are'} 0 on them)"
                     for why, names in sorted(by_reason.items()))


def check_something_trains(weights: Mapping[str, float], mask: np.ndarray, arg: str, has_inputs: bool = True,
                           would: str = "nothing would train", rewards: Optional[np.ndarray] = None) -> None:
    """Refuses training data (``arg``, presence ``mask``) on which every
    weighted objective is 0 (:func:`unmeasured_objectives`): every step would
    be Adam on zero gradients, as with every weight 0. ``would`` says what
    follows (fit's data: "nothing would train"; one step's batch: "this step
    would train nothing")."""
    nothing = nothing_trains(weights, mask, has_inputs, rewards)
    if nothing is not None:
        because, remedy = nothing
        raise InvalidValueError(f"{arg}: {because}, so {would}; {remedy}", arg)


def nothing_trains(weights: Mapping[str, float], mask: np.ndarray, has_inputs: bool = True,
                   rewards: Optional[np.ndarray] = None) -> Optional[Tuple[str, str]]:
    """``(why, remedy)`` when every weighted objective is 0 on rows of
    presence ``mask`` (what :func:`check_something_trains` refuses, for a
    caller that says it of other rows: fit_with_stopping's folds), else None."""
    zero = unmeasured_objectives(weights, mask, has_inputs, rewards)
    weighted = [o for o, w in weights.items() if w > 0]
    if not weighted or not all(o in zero for o in weighted):
        return None
    reasons = {zero[o] for o in weighted}
    remedy = (ONE_ROW_REMEDY if reasons == {_ONE_ROW}
              else ONE_ROW_REMEDY.replace("2 rows", "2 rows holding a modality") if reasons == {_ONE_HELD_ROW}
              # one row of one modality: cross_modal is the one objective left that learns from one row
              else "expected at least 2 rows, or a row holding two modalities for cross_modal" if reasons & _ONE_ROW_REASONS
              else "expected data they learn from, or another objective (fused_contrastive learns from rows of one "
                   "modality, neighborhood and reconstruction from inputs)")
    return _zero_because(zero, weighted), remedy
