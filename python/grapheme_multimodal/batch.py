"""`Batch`: what one training step learns from."""

from __future__ import annotations

import re

__all__ = ["Batch"]

from dataclasses import dataclass, fields
from collections.abc import Mapping, Sequence  # not typing's aliases: isinstance of them takes 3x as long
from typing import TYPE_CHECKING, Any, List, Optional, Tuple, Union

import numpy as np

from ._core import NUM_MODALITIES
from ._portable import PortablePickle
from ._validation import (
    as_float32, as_real_array, check_flag, describe, exact_int, is_int, is_iterable, refuse_beyond_budget, shown_number,
)
from ._frames import named_inputs, refuse_unpaired_frames
from .buffer import ExperienceBatch, ExperienceBuffer
from .exceptions import InvalidValueError, NonFiniteError, ShapeError
from .graph import GraphFeaturizer, featurized
from .types import ModalFeatures, ModalGraph, Modality, MultiModalEvent, bounded_repr, refuse_reordered_labels, sequence_repr

if TYPE_CHECKING:
    from .config import LearnableMultiModalConfig

#: What the batched methods take: ``{modality: [B, d] array}`` keyed by
#: :class:`Modality`, name or slot index, or a sequence of seven (``None``
#: where absent). A ``Mapping`` per key type, as ``Mapping`` is invariant in
#: its key: ``Dict[str, np.ndarray]`` is no ``Mapping[Union[Modality, str, int], Any]``,
#: so a checker flagged ``model.encode(inputs)`` for a dict of names.
Inputs = Union[
    Mapping[Modality, Any], Mapping[str, Any], Mapping[int, Any], Mapping[Union[Modality, str, int], Any], Sequence[Any]
]


@dataclass(frozen=True, eq=False)
class Batch(PortablePickle):
    """A training batch: one source of modality embeddings, plus optional
    targets for ``seed_consistency``.

    Give exactly one of:

    - ``inputs``: per-modality arrays ``[B, d_m]`` (a mapping modality →
      array, or a sequence of 7 arrays/``None``), with ``mask [B, 7]``
      (default: every given modality present in every row; rows marked
      absent are never read). Gradients reach the encoders.
    - ``events``: a sequence of :class:`MultiModalEvent` (several components
      of one modality are pooled by confidence, as in ``encode_event``).
    - ``components``: pre-featurised components ``(B, parts)``, where
      ``parts[m]`` is ``None`` or ``(x [k, d_m], rows [k], confidences [k])``
      — row ``rows[i]`` of the batch has component ``x[i]``; several
      components of one modality in a row are pooled like ``events``
      (what :func:`~grapheme_multimodal.training.fit` builds from events).
    - ``embeddings``: recorded modality embeddings ``[B, 7, E]`` with
      ``mask`` (default: the slots that are not all zero). They are data:
      the encoders get no gradient. Unit vectors, as the encoders give them
      (norm 1 within 1e-3 where present; shorter only as they give them for
      input near zero, all zeros for all-zero input): the model's training
      calls refuse longer ones, which the objectives do not expect.

    Optional:

    - ``fused [B, E]``: recorded fused embeddings, the targets of
      ``seed_consistency`` (the original's experience form is
      ``Batch(embeddings=..., fused=..., rewards=...)``).
    - ``rewards [B]``: ``seed_consistency`` weighs row ``r`` by
      ``1 - rewards[r]`` (default 0, i.e. weight 1). Only it reads them,
      so they need ``fused`` (the model refuses rewards without it).

    >>> import numpy as np
    >>> b = Batch(inputs={"visual": np.zeros((4, 18)), "linguistic": np.ones((4, 18))})
    >>> b.batch_size
    4

    Batches compare (and hash) by identity, as arrays give no one truth
    value to compare by (the dataclass's ``==`` raised numpy's "truth value
    of an array ... is ambiguous", and ``hash`` "unhashable type").
    """

    inputs: Optional[Inputs] = None
    mask: Any = None
    events: Optional[Sequence[MultiModalEvent]] = None
    components: Optional[Tuple[int, Sequence[Any]]] = None
    embeddings: Any = None
    fused: Any = None
    rewards: Any = None

    # arrays as bytes, dtype and shape: a pickle of numpy 2 loads under numpy 1, and back (_portable.py); those of
    # from_experiences and from_events (the package's own) were numpy-2-only pickles
    _PORTABLE_KEYS = ("inputs", "mask", "components", "embeddings", "fused", "rewards")

    def __post_init__(self) -> None:
        given = [name for name in ("inputs", "events", "components", "embeddings") if getattr(self, name) is not None]
        if len(given) != 1:
            raise InvalidValueError(
                f"Batch: expected exactly one of inputs, events, components or embeddings, got {given or 'none'}", "Batch"
            )
        if self.inputs is not None:
            refuse_events_as_inputs(self.inputs, "inputs")
        if self.inputs is not None and (
            isinstance(self.inputs, (str, bytes)) or not isinstance(self.inputs, (Mapping, Sequence))
        ):  # else batch_size read "abc" as a batch of 1, and 5 failed with "'int' object is not iterable"
            raise TypeError(
                f"inputs: expected a mapping modality -> array or a sequence of 7 arrays/None, got {describe(self.inputs)}"
            )
        if self.components is not None and (
            not isinstance(self.components, tuple)
            or len(self.components) != 2
            or isinstance(self.components[1], (str, bytes))
            or not hasattr(self.components[1], "__len__")
            or len(self.components[1]) != 7
        ):
            raise ShapeError("components: expected (batch_size, parts) with 7 parts (None where absent)", "components")
        if self.components is not None:  # else batch_size was -1, or int("a")'s ValueError
            _components_size(self.components[0], "components")
        if self.events is not None:
            if isinstance(self.events, (str, bytes)) or not isinstance(self.events, Sequence):
                raise TypeError(f"events: expected a sequence of MultiModalEvent, got {type(self.events).__name__}")
            bad = next((e for e in self.events if not isinstance(e, MultiModalEvent)), None)
            if bad is not None:
                raise TypeError(f"events: expected MultiModalEvent items, got {type(bad).__name__}")
            if self.mask is not None:
                raise InvalidValueError("mask: not used with events (an event's components say which modalities it has)", "mask")
        # rows pair by position: a rewards Series or fused frame of the same samples in another order than the
        # inputs' frames trained seed_consistency on other rows' targets, without a word
        # (the inputs' frames among themselves and beside the mask are checked where the model reads them; a
        # batch without frames, the usual one, costs no more than these three looks)
        if any(_is_frame(v) for v in (self.mask, self.fused, self.rewards)):
            inputs = named_inputs(self.inputs) if self.inputs is not None else []
            refuse_unpaired_frames(inputs + [("mask", self.mask), ("fused", self.fused), ("rewards", self.rewards)])

    @classmethod
    def from_events(cls, events: Sequence[MultiModalEvent], fused: Any = None, rewards: Any = None) -> "Batch":
        """A batch of events (each becomes one row)."""
        if isinstance(events, (str, bytes)) or not is_iterable(events):  # list(None): "not iterable"
            raise TypeError(f"events: expected a sequence of MultiModalEvent, got {describe(events)}")
        return cls(events=list(events), fused=fused, rewards=rewards)

    @classmethod
    def from_experiences(cls, experiences: Any, use_inputs: bool = False) -> "Batch":
        """A batch of recorded experiences (an :class:`~grapheme_multimodal.buffer.ExperienceBatch`,
        e.g. ``buffer.batch()`` or ``buffer.sample(...)``), with their fused
        embeddings and rewards as ``seed_consistency`` targets.

        By default the recorded embeddings are the source (the original's
        ``compute_loss``; only fusion, binder and attention are trained).
        With ``use_inputs=True`` the recorded raw inputs are encoded again, so
        the encoders learn too; every experience must then have inputs. An
        :class:`~grapheme_multimodal.buffer.ExperienceBuffer` stands for all
        its experiences (``buffer.batch()``).

        A batch weighs no row by importance: a prioritised sample whose
        importance weights (``experiences.weights``) are not all 1 is refused
        (``InvalidValueError``) rather than trained on as if they were; draw
        it with ``beta=0`` to train on the prioritised rows unweighted.
        """
        if isinstance(experiences, ExperienceBuffer):
            experiences = experiences.batch()
        elif not isinstance(experiences, ExperienceBatch):  # else an AttributeError ("no attribute 'embeddings'")
            raise TypeError(
                f"experiences: expected an ExperienceBatch (buffer.batch() or buffer.sample(n)) or an ExperienceBuffer, "
                f"got {describe(experiences)}"
            )
        _refuse_importance_weights(experiences.weights)
        if not check_flag(use_inputs, "use_inputs"):  # "False" would be true: every experience then needs inputs
            return cls(
                embeddings=experiences.embeddings,
                mask=experiences.mask,
                fused=experiences.fused,
                rewards=experiences.rewards,
            )
        has = np.asarray(experiences.has_inputs, dtype=bool)
        if not has.all():
            raise InvalidValueError(
                f"experiences: use_inputs=True but {int((~has).sum())} of {len(has)} experiences have no recorded inputs",
                "experiences",
            )
        return cls(
            inputs=list(experiences.inputs),
            mask=experiences.mask,
            fused=experiences.fused,
            rewards=experiences.rewards,
        )

    @property
    def batch_size(self) -> int:
        """Number of rows ``B``. A batch whose arrays disagree on it (inputs
        of 4 and 3 rows, a mask of 7 entries beside inputs of 4 rows, fused
        embeddings of another number of rows) is a :class:`ShapeError`
        naming them, as the model refuses it: the first array's rows were
        its size, without a word."""
        counted = self._row_counts()
        if not counted:
            return 0
        rows = [n for _, n in counted]
        usual = max(rows, key=rows.count)  # the odd one out is blamed (the first array's count on a tie)
        odd = next(((name, n) for name, n in counted if n != usual), None)
        if odd is not None:
            agreed = next(name for name, n in counted if n == usual)
            shown = ", ".join(f"{name} {n}" for name, n in counted)
            raise ShapeError(f"{odd[0]}: has {odd[1]} rows, but {agreed} has {usual} (rows: {shown}); expected one row "
                             "per batch entry in each of the batch's arrays", odd[0])
        return usual

    def _row_counts(self) -> List[Tuple[str, int]]:
        """Each given array of the batch by name, with its number of rows."""
        if self.events is not None:
            counted = [("events", len(self.events))]
        elif self.components is not None:
            counted = [("components", int(self.components[0]))]
        else:
            given: List[Tuple[str, Any]] = [("mask", self.mask), ("embeddings", self.embeddings)]
            if isinstance(self.inputs, Mapping):
                given += [(f"inputs[{str(k)!r}]", a) for k, a in self.inputs.items()]
            elif self.inputs is not None:
                given += [(f"inputs[{k}]", a) for k, a in enumerate(self.inputs)]
            counted = [(name, _rows(a, name)) for name, a in given if a is not None]
        return counted + [(name, _rows(a, name)) for name, a in (("fused", self.fused), ("rewards", self.rewards))
                          if a is not None]

    def __repr__(self) -> str:
        # the dataclass's repr printed every event (megabytes for a batch of thousands) and
        # every input list in full; arrays are shown by shape and dtype
        given = [f.name for f in fields(self) if getattr(self, f.name) is not None]
        return "Batch(" + ", ".join(f"{name}={_summary(getattr(self, name))}" for name in given) + ")"


def _refuse_importance_weights(weights: Any) -> None:
    """An InvalidValueError unless ``weights`` (an ExperienceBatch's) are
    all 1: the batch built from it trains every row alike, so a prioritised
    sample's importance weights were dropped without a word, biasing
    training towards the likelier experiences they exist to correct."""
    w = np.asarray(weights)
    if w.dtype.kind in "biuf" and bool(np.all(w == 1)):
        return
    below = f"{int(np.count_nonzero(w != 1))} of {w.size} not 1" if w.dtype.kind in "biuf" else describe(weights)
    raise InvalidValueError(
        f"experiences: holds importance weights ({below}: a prioritised sample), which a Batch cannot apply (it "
        "weighs every row alike); expected weights all 1: sample with beta=0 to train on the prioritised rows "
        "unweighted, or use buffer.sample(n) or buffer.batch()",
        "experiences",
    )


def _summary(value: Any) -> str:
    """A short repr of a batch's field: arrays by shape and dtype, lists and
    tuples by their first 7 items and how many more there are."""
    if isinstance(value, np.ndarray):
        return f"array(shape={value.shape}, dtype={value.dtype})"
    if isinstance(value, Mapping):
        items = list(value.items())
        shown = [f"{k!r}: {_summary(v)}" for k, v in items[:NUM_MODALITIES]]
        if len(items) > NUM_MODALITIES:
            shown.append(f"... {len(items) - NUM_MODALITIES:,} more")
        return "{" + ", ".join(shown) + "}"
    if type(value) in (list, tuple):  # up to 7 items: a sequence of inputs, or the parts of components, in full
        return sequence_repr(value, NUM_MODALITIES, _summary)
    return bounded_repr(value)


def _rows(value: Any, name: str) -> int:
    """The number of rows of a batch's array ``value`` (named ``name``)."""
    try:
        if isinstance(value, (str, bytes)):  # its characters are no rows
            raise TypeError(name)
        return len(value)
    except TypeError:  # a scalar: "object of type 'int' has no len()", naming nothing
        raise ShapeError(f"{name}: expected an array with one row per batch entry, got {describe(value)}", name) from None


def _is_frame(x: Any) -> bool:
    """Whether ``x`` has an index (a pandas frame or Series), which
    :func:`refuse_unpaired_frames` compares."""
    return x is not None and type(x) is not np.ndarray and hasattr(getattr(x, "index", None), "equals")


def _components_size(size: Any, name: str) -> int:
    """The batch size of a components form, checked: an int >= 0 within int64."""
    if not is_int(size):
        raise TypeError(f"{name}: expected the batch size first, an int, got {describe(size)}")
    size = exact_int(size)  # a 0-d array too: the int it holds
    if not 0 <= size < 2**63:
        raise InvalidValueError(f"{name}: expected a batch size >= 0 (an int64), got {shown_number(size, str)}", name)
    return int(size)


def component_parts(
    components: Tuple[int, Sequence[Any]], name: str = "components", dims: Optional[Sequence[int]] = None
) -> Tuple[int, list]:
    """The components form ``(batch_size, parts)`` of a :class:`Batch` as the
    core reads it: the batch size an int >= 0, each part ``None`` or
    ``(x [k, d] float32, rows [k] int64, confidences [k] float32 or None)``
    (converted when given as other real dtypes or lists). Row ranges,
    lengths, weights and (given the model's input widths ``dims``) widths are
    checked here, naming ``components[...]``: the core's own checks named
    ``inputs['visual']``, an argument the caller never gave."""
    size, parts = components
    size = _components_size(size, name)
    out: list = []
    for m, part in enumerate(parts):
        if part is None:
            out.append(None)
            continue
        arg = f"{name}[{str(Modality(m))!r}]"
        if isinstance(part, (str, bytes)) or not isinstance(part, (tuple, list)) or len(part) != 3:
            raise TypeError(f"{arg}: expected None or (x [k, d], rows [k], confidences [k] or None), got {describe(part)}")
        x, rows, confidences = part
        rows = as_real_array(rows, f"{arg}.rows")
        if rows.dtype.kind not in "iu":
            raise TypeError(f"{arg}.rows: expected integer row indices, got dtype {rows.dtype}")
        if rows.ndim != 1:
            raise ShapeError(f"{arg}.rows: expected a 1-D array [k], got shape {rows.shape}", f"{arg}.rows")
        if rows.dtype.kind == "u" and rows.size and int(rows.max()) >= 2**63:
            raise InvalidValueError(f"{arg}.rows: row index {int(rows.max())} is out of range for a batch of {size}", f"{arg}.rows")
        x = as_float32(x, f"{arg}.x", 2, features=True)
        finite = np.isfinite(x).all(axis=1)
        if not finite.all():  # a component is present where it is given: none may hold NaN or inf
            row = int(np.argmin(finite))
            raise NonFiniteError(f"{arg}.x: row {row} holds NaN or inf; expected finite numbers", f"{arg}.x")
        if dims is not None and x.shape[1] != dims[m]:
            raise ShapeError(f"{arg}.x: expected shape (k, {dims[m]}) (the modality's input width), got {x.shape}", f"{arg}.x")
        if rows.shape[0] != x.shape[0]:
            raise ShapeError(f"{arg}.rows: expected one row index per row of x, {x.shape[0]}, got {rows.shape[0]}",
                             f"{arg}.rows")
        if rows.size and (int(rows.min()) < 0 or int(rows.max()) >= size):
            low = int(rows.min())
            what = f"row index {low} is negative" if low < 0 else f"row index {int(rows.max())} is out of range"
            raise InvalidValueError(f"{arg}.rows: {what}; expected indices in [0, {size}) (the batch size)", f"{arg}.rows")
        if confidences is not None:
            confidences = as_float32(confidences, f"{arg}.confidences", 1, (x.shape[0],))
            bad_weights = ~(np.isfinite(confidences) & (confidences >= 0))
            if bad_weights.any():
                at = int(np.argmax(bad_weights))
                raise InvalidValueError(f"{arg}.confidences: entry {at} is {float(confidences[at])}; expected finite "
                                        "weights >= 0", f"{arg}.confidences")
        out.append((x, np.ascontiguousarray(rows, dtype=np.int64), confidences))
    return int(size), out


#: Per modality ``None`` or ``(x [k, d_m] float32, owners [k] int64, confidences [k] float32)``.
ComponentTables = List[Optional[Tuple[np.ndarray, np.ndarray, np.ndarray]]]


def event_components(
    config: "LearnableMultiModalConfig", events: Sequence[MultiModalEvent], name: str = "events",
    columns: Optional[Tuple[Optional[Tuple[str, ...]], ...]] = None,
) -> ComponentTables:
    """Every component of ``events`` as one table per modality: row ``j``
    holds component ``x[j]`` of event ``owners[j]`` (non-decreasing: events
    and their components in order), graphs featurised with the modality's
    featuriser in one call. The components form of :class:`Batch` is
    ``(len(events), tables)``. ``columns``: the model's learned column names
    per slot (``input_columns``), against which components given as pandas
    Series are checked (:func:`refuse_reordered_labels`)."""
    owners: List[List[int]] = [[] for _ in range(NUM_MODALITIES)]
    comps: List[list] = [[] for _ in range(NUM_MODALITIES)]
    check_labels = columns is not None and any(names is not None for names in columns)
    for i, event in enumerate(events):
        if not isinstance(event, MultiModalEvent):
            raise TypeError(f"{name}[{i}]: expected MultiModalEvent, got {type(event).__name__}")
        components = event._checked_components(f"{name}[{i}]")
        if check_labels:
            refuse_reordered_labels(components, columns, f"{name}[{i}]", event.id)  # type: ignore[arg-type]
        for c in components:
            m = c.modality.index
            owners[m].append(i)
            comps[m].append(c)
    tables: ComponentTables = []
    for m in range(NUM_MODALITIES):
        if not comps[m]:
            tables.append(None)
            continue
        dim = config.input_dims[m]
        modality = Modality(m)
        with_graph = [k for k, c in enumerate(comps[m]) if isinstance(c, ModalGraph)]
        # the table and its graphs' features, before either is allocated: numpy's MemoryError named nothing
        refuse_beyond_budget(4 * dim * (len(comps[m]) + len(with_graph)), name,
                             "the {modality} inputs of its {k:,} components × {dim:,} take {bytes} bytes",
                             remedy="fewer events", modality=modality, k=len(comps[m]), dim=dim)
        if with_graph:
            featurizer = config.graph_features[m]
            if featurizer.dim != dim:
                raise ShapeError(
                    f"event {events[owners[m][with_graph[0]]].id}: modality {modality} takes {dim}-long feature "
                    f"vectors, but a ModalGraph ({featurizer.dim} graph features) was given", name,
                )
            graph_rows = featurized(featurizer, [comps[m][k].graph for k in with_graph], name,
                                    lambda j: f"{name}[{owners[m][with_graph[j]]}]")  # item j: that event's
        if with_graph and len(with_graph) == len(comps[m]) and type(featurizer) is GraphFeaturizer:
            # graphs only: the package's featuriser's fresh [k, dim] float32 rows are the table (a subclass's rows,
            # maybe float64 or shared, are copied in below: cast to float32 there, a value past it made inf, refused)
            x = graph_rows
        else:
            x = np.empty((len(comps[m]), dim), np.float32)
            if with_graph:
                x[with_graph] = graph_rows
        for k, c in enumerate(comps[m]):
            if not isinstance(c, ModalGraph):
                # Read once: the array whose shape is checked is the one copied. Read again, another thread's
                # `c.features = [7.0]` between the two was broadcast into the row ([7, 7, 7]) without a word.
                # ndim too: the array event._checked_components saw may be another by now, or reshaped in place
                features = c.features
                if features.ndim != 1 or len(features) != dim:
                    raise ShapeError(
                        f"event {events[owners[m][k]].id}: modality {modality} takes {dim}-long feature vectors, "
                        f"got ModalFeatures of shape {features.shape}", name,
                    )
                x[k] = features
        confidences = np.array([c.confidence for c in comps[m]], np.float32)
        tables.append((x, np.array(owners[m], np.int64), confidences))
    return tables


def refuse_non_finite_components(tables: ComponentTables, events: Sequence[MultiModalEvent], name: str) -> None:
    """NonFiniteError (about ``name``) naming the event and component of the
    first NaN or inf in ``tables`` (what :func:`event_components` made of
    ``events``). A :class:`ModalFeatures` refuses such values when they are
    set, so they were written into its array in place; unchecked, the core
    named ``inputs['visual']`` and a row of a table the caller never saw."""
    for m, table in enumerate(tables):
        if table is None or np.isfinite(table[0]).all():
            continue
        k = int(np.flatnonzero(~np.isfinite(table[0]).all(axis=1))[0])
        i = int(table[1][k])
        raise NonFiniteError(
            f"{name}[{i}]: event {events[i].id}'s {Modality(m)} component holds NaN or inf; expected finite numbers "
            "(its features were changed in place after they were set)", name,
        )


#: How the core names a batch row whose encoding, or reconstruction, overflowed float32:
#: ``inputs['visual']: row 3 overflows float32 in the encoder ...``.
_CORE_ROW_OVERFLOW = re.compile(
    r"^inputs\['([a-z]+)'\]: row (\d+)((?: overflows float32 in the encoder|: the reconstruction loss overflows float32).*)$",
    re.DOTALL,
)


def overflow_in_events(err: NonFiniteError, events: Sequence[MultiModalEvent], name: str, indexed: bool = True) -> NonFiniteError:
    """``err``, the core's overflow of a batch row whose rows are ``events``
    (``inputs['visual']: row r ...``: an argument and a row the caller of
    the per-event methods or of a ``Batch.from_events`` never saw), remade
    to name ``name[r]`` (or ``name`` alone, not ``indexed``) and that
    event's id, as :func:`refuse_non_finite_components` names them; else ``err``."""
    found = _CORE_ROW_OVERFLOW.match(str(err))
    if found is None or err.arg != f"inputs[{found[1]!r}]":
        return err
    row = int(found[2])
    where = f"{name}[{row}]" if indexed else name
    return NonFiniteError(f"{where}: event {events[row].id}'s {found[1]} input{found[3]}", name)


def refuse_events_as_inputs(inputs: Any, arg: str) -> None:
    """``TypeError`` for a list of events given where per-modality arrays go
    (``train_step(events)``, as ``fit(events)`` takes them): four were "a
    sequence is read by slot", seven were read as the 7 modalities' arrays,
    and neither message said how events are passed. The first item alone
    is looked at: the check stands in the way of every list of 7 arrays."""
    if not isinstance(inputs, (list, tuple)) or not inputs or not isinstance(inputs[0], MultiModalEvent):
        return
    raise TypeError(
        f"{arg}: got a {type(inputs).__name__} of {len(inputs)} MultiModalEvent; expected per-modality arrays; "
        "events are taken as Batch.from_events(events) (train_step, losses, backward) or by fit(events), "
        "and embedded one by one with encode_event or fuse_event"
    )


def refuse_non_finite_event(event: MultiModalEvent, name: str = "event") -> None:
    """NonFiniteError (about ``name``) naming the component of ``event``
    whose features hold NaN or inf (written into its array in place, after
    :class:`ModalFeatures` checked them); nothing when none does."""
    for k, c in enumerate(event.components):
        features = c.features if isinstance(c, ModalFeatures) else None  # read once: the array checked is the one named
        if features is not None and not np.isfinite(features).all():
            j = int(np.flatnonzero(~np.isfinite(features).ravel())[0])
            raise NonFiniteError(
                f"{name}.components[{k}].features: entry {j} of event {event.id}'s {c.modality} component holds "
                f"{features.ravel()[j]}; expected finite numbers (the array was changed in place after it was set)", name,
            )
