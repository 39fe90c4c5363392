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
from typing import Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from . import _core
from ._readonly import ReadOnlyMapping
from ._validation import describe
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


#: The objectives that tell the rows of a batch apart (a row's other views,
#: or its neighbours, against the other rows): 0 on a batch of one row.
ROW_COMPARING_OBJECTIVES = ("contrastive", "binding", "fused_contrastive", "neighborhood")

#: What to do instead when every weighted objective compares rows and there is one row.
ONE_ROW_REMEDY = ("expected at least 2 rows, or an objective that learns from one row (cross_modal, seed_consistency, "
                  "reconstruction with reconstruction_decoders=True)")

#: The largest float32: the core refuses weights beyond it.
_FLOAT32_MAX = float(np.finfo(np.float32).max)


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
    those it leaves out get weight 0. ``name`` is the argument's name in
    error messages.
    """
    if weights is None:
        chosen = dict(DEFAULT_WEIGHTS)
        if not has_fused:
            chosen["seed_consistency"] = 0.0
    else:
        if not isinstance(weights, Mapping):
            raise TypeError(f"{name}: expected a mapping objective name -> float, got {type(weights).__name__}")
        check_objective_names(weights, name)
        chosen = {}
        for key, value in weights.items():
            if (isinstance(value, (bool, np.bool_, complex, np.complexfloating))  # float() dropped numpy's imaginary part
                    or isinstance(value, np.timedelta64)  # a duration: 3 seconds weighed 3, or float() failed naming nothing
                    or not isinstance(value, (int, float)) and not hasattr(value, "__float__")):
                raise InvalidTypeError(f"{name}[{key!r}]: expected a number, got {type(value).__name__}", name)
            if isinstance(value, np.ndarray) and value.ndim != 0:  # float() of it: numpy's "only 0-dimensional arrays", naming nothing
                raise TypeError(f"{name}[{key!r}]: expected a number, got an array of shape {value.shape}")
            try:
                value = float(value)
            except OverflowError:  # else "int too large to convert to float", naming nothing
                raise InvalidValueError(f"{name}[{key!r}]: expected a finite number >= 0, got an int too large for a float", name) from None
            except (TypeError, ValueError):  # a 0-d array of text or of durations: numpy's error named nothing
                raise InvalidTypeError(f"{name}[{key!r}]: expected a number, got {describe(value)}", name) from None
            if not math.isfinite(value) or value < 0:
                raise InvalidValueError(f"{name}[{key!r}]: expected a finite number >= 0, got {value}", name)
            if value > _FLOAT32_MAX:  # else the core refused it by its own name, weights
                raise InvalidValueError(f"{name}[{key!r}]: expected a finite number >= 0 that float32 holds, got {value}", name)
            if value > 0 and np.float32(value) == 0:
                # the core weighs in float32: 1e-50 became 0, and the "every weight is 0" refusal passed it,
                # so fit trained on zero gradients while its history showed a loss of 0
                raise InvalidValueError(
                    f"{name}[{key!r}]: got {value}, which is 0 in float32 (smallest positive "
                    f"{float(np.finfo(np.float32).smallest_subnormal):.3g}), the precision the model computes in; "
                    "expected 0 to leave the objective out, or a weight float32 holds", name)
            chosen[key] = value
        if chosen.get("seed_consistency", 0.0) > 0 and not has_fused:
            raise InvalidValueError(
                f"{name}: seed_consistency needs the batch's recorded fused embeddings (Batch.fused [B, E]); "
                "pass them or leave seed_consistency out", name,
            )
    return [chosen.get(key, 0.0) for key in OBJECTIVES]


def all_zero_error(given: Optional[Mapping[str, float]], name: str, default: str = "") -> InvalidValueError:
    """The refusal of weights ``given`` (argument ``name``) that leave every
    objective at 0: every step would be an Adam step on zero gradients,
    moving the weights by their momentum and learning nothing. ``default``
    says what ``None`` would have chosen. Raised by the callers (after their
    own ``max(w) <= 0``), so the check itself costs no call."""
    said = f" ({default})" if default else ""
    return InvalidValueError(
        f"{name}: every weight is 0 ({dict(given or {})}); expected at least one objective with a weight > 0{said}", name
    )
