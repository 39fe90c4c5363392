"""User-facing objects of the original: modalities, spatial regions,
cross-modal bindings, modal components and multimodal events."""

from __future__ import annotations

__all__ = [
    "Modality",
    "BindingType",
    "SpatialRegion",
    "CrossModalBinding",
    "ModalGraph",
    "ModalFeatures",
    "MultiModalEvent",
]

import enum
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Optional, Tuple, Union

import numpy as np
import numpy.typing as npt

from ._validation import (
    IntLike, as_real_array, describe, float32_of_wide, exact_int, is_int, is_iterable, is_real_number,
    non_finite_message, shown_number,
)
from ._frames import is_reordering, misplaced_names, series_str_labels, shown_columns, shown_misplaced
from ._portable import PortablePickle, set_state, split_state
from .exceptions import InvalidTypeError, InvalidValueError, NonFiniteError, ShapeError
from .graph import Graph


def _clamp01(value: Any, name: str) -> float:
    if not is_real_number(value):
        raise InvalidTypeError(f"{name}: expected a number, got {type(value).__name__}", name)
    try:
        value = float(value)
    except OverflowError:  # an int past float64: beyond 1 (or below 0) as inf is
        value = float("inf") if value > 0 else float("-inf")
    if np.isnan(value):
        raise InvalidValueError(f"{name}: expected a number in [0, 1], got NaN", name)
    return min(max(value, 0.0), 1.0)


class Modality(enum.Enum):
    """The seven modalities; their order is the slot index everywhere."""

    VISUAL = 0
    AUDITORY = 1
    LINGUISTIC = 2
    TACTILE = 3
    PROPRIOCEPTIVE = 4
    ACTION = 5
    ABSTRACT = 6

    @property
    def index(self) -> int:
        """Slot index, 0..6."""
        return self._value_  # what .value returns, without its descriptor: read per component on fit's event path

    @property
    def is_input(self) -> bool:
        """True for every modality but ``ACTION``."""
        return self is not Modality.ACTION

    @property
    def is_output(self) -> bool:
        """True only for ``ACTION``."""
        return self is Modality.ACTION

    @classmethod
    def all(cls) -> List["Modality"]:
        """All modalities in slot order."""
        return list(cls)

    @classmethod
    def parse(cls, value: Union["Modality", str, int], arg: str = "modality") -> "Modality":
        """A modality from itself, its name (any case) or its slot index;
        errors name ``arg``, the caller's argument that held ``value``."""
        if isinstance(value, Modality):
            return value
        if isinstance(value, enum.Enum):
            # a member of another enum: an IntEnum's value was read as a slot index (View.TEXT = 0
            # became visual) and a str enum's as a name, whatever that enum meant by it
            raise TypeError(
                f"{arg}: got {value!r}, a member of {type(value).__name__}, not of Modality; "
                f"expected a Modality, a name or an index (pass its .name or .value if that is one)"
            )
        if isinstance(value, str):
            try:
                if not value.isascii():  # str.upper() maps "ı" and "ſ" to "I" and "S": "vısual" was visual
                    raise KeyError(value)
                return cls[value.upper()]
            except KeyError:
                names = ", ".join(m.name.lower() for m in cls)
                # str(): numpy's str (names read into an array) has the repr np.str_('text')
                raise InvalidValueError(
                    f"{arg}: unknown modality {str(value)!r}; expected one of {names}{_modality_for(value)}", arg
                ) from None
        if is_int(value):
            value = exact_int(value)  # a 0-d array too: the int it holds
            if 0 <= value < len(cls):
                return cls(value)
            raise InvalidValueError(f"{arg}: index {shown_number(value, str)} is out of range; expected 0..6", arg)
        raise TypeError(f"{arg}: expected a Modality, a name or an index, got {type(value).__name__}")

    def __str__(self) -> str:
        return self.name.lower()


#: What the data a newcomer names by its kind goes in as: "image" was refused with the seven names
#: and no word of which one an image's features take.
_MODALITY_OF_KIND = {
    **dict.fromkeys(("image", "images", "img", "vision", "video", "picture", "pixels"), "visual"),
    **dict.fromkeys(("audio", "sound", "sounds", "speech", "voice"), "auditory"),
    **dict.fromkeys(("text", "texts", "txt", "caption", "captions", "language", "word", "words"), "linguistic"),
    **dict.fromkeys(("touch", "haptic", "haptics"), "tactile"),
}


def _modality_for(name: str) -> str:
    """The hint that follows the refusal of ``name``: the modality its kind of data takes, if it names one."""
    modality = _MODALITY_OF_KIND.get(str(name).strip().lower())
    return f"; for {str(name).strip().lower()} data, use {modality!r}" if modality else ""


#: Each modality's input standardisation as a state dict holds it (buffers, no parameters):
#: ``normalization.visual.mean``, ``normalization.visual.std`` (``LearnableMultiModal.state_dict``).
NORMALIZATION_KEYS = {m: (f"normalization.{m}.mean", f"normalization.{m}.std") for m in Modality}
NORMALIZATION_NAMES = frozenset(key for pair in NORMALIZATION_KEYS.values() for key in pair)


class BindingType(enum.Enum):
    """What kind of link a cross-modal binding is."""

    REFERENCE = "reference"
    SYNCHRONY = "synchrony"
    CAUSATION = "causation"
    IDENTITY = "identity"


@dataclass(frozen=True)
class SpatialRegion:
    """A rectangle in normalised coordinates; every field is clamped to [0, 1]."""

    x: float = 0.0
    y: float = 0.0
    width: float = 1.0
    height: float = 1.0

    def __post_init__(self) -> None:
        for name in ("x", "y", "width", "height"):
            object.__setattr__(self, name, _clamp01(getattr(self, name), name))

    @classmethod
    def full(cls) -> "SpatialRegion":
        """The whole field: ``(0, 0, 1, 1)``."""
        return cls(0.0, 0.0, 1.0, 1.0)

    def overlaps(self, other: "SpatialRegion") -> bool:
        """Strict overlap: rectangles that only touch do not overlap."""
        if not isinstance(other, SpatialRegion):
            raise TypeError(f"other: expected SpatialRegion, got {type(other).__name__}")
        return (
            self.x < other.x + other.width
            and other.x < self.x + self.width
            and self.y < other.y + other.height
            and other.y < self.y + self.height
        )


@dataclass(frozen=True)
class CrossModalBinding:
    """A link from a node of one modality to a node of another.

    ``source`` and ``target`` are ``(modality, node_index)``; ``strength`` is
    clamped to [0, 1].
    """

    source: Tuple[Modality, int]
    target: Tuple[Modality, int]
    strength: float
    binding_type: BindingType = BindingType.REFERENCE

    if TYPE_CHECKING:  # what __post_init__ takes; the fields hold it parsed
        def __init__(
            self,
            source: Tuple[Union[Modality, str, int], int],
            target: Tuple[Union[Modality, str, int], int],
            strength: float,
            binding_type: Union[BindingType, str] = BindingType.REFERENCE,
        ) -> None: ...

    def __post_init__(self) -> None:
        for name in ("source", "target"):
            object.__setattr__(self, name, _endpoint(getattr(self, name), name))
        object.__setattr__(self, "strength", _clamp01(self.strength, "strength"))
        if not isinstance(self.binding_type, BindingType):
            value = self.binding_type
            if isinstance(value, str):  # any case, as a modality's name: the spec writes them "Reference", ...
                value = value.lower()
            try:
                object.__setattr__(self, "binding_type", BindingType(value))
            except ValueError:
                names = ", ".join(repr(b.value) for b in BindingType)
                raise InvalidValueError(
                    f"binding_type: expected a BindingType or one of {names}, got {self.binding_type!r}", "binding_type"
                ) from None


def _endpoint(value: Any, name: str) -> Tuple[Modality, int]:
    """``(modality, node_index)`` checked: a node index is an int >= 0 (int()
    would make 1.7 node 1 without a word)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"{name}: expected a pair (modality, node_index), got {value!r}")
    mod, node = value
    if not is_int(node):
        raise InvalidTypeError(f"{name}: expected an int node index, got {node!r}", name)
    node = exact_int(node)  # a 0-d array too: the int it holds
    if node < 0:
        raise InvalidValueError(f"{name}: expected a node index >= 0, got {shown_number(node, str)}", name)
    return (Modality.parse(mod, name), node)


def _component_setter(own: str, checked_own: Callable[[Any, Any], Any]) -> Callable[[Any, str, Any], None]:
    """The ``__setattr__`` of :class:`ModalGraph` and :class:`ModalFeatures`:
    every field is checked whenever it is set, the class's ``own`` one (its
    graph, its features) by ``checked_own(component, value)``, the fields they share
    (modality, confidence, timestamp, region) alike. One function for both,
    with the names in its closure: a base class's setter reading the own
    field's name from the class cost 8 % of building an event."""

    def __setattr__(self: Any, name: str, value: Any) -> None:
        # Every field of every component built passes here (five per component): what each already holds
        # in its checked form (a Modality, a float in [0, 1], None) is kept without _component_field's call,
        # whose answer it would be; the rest goes through it
        if name == own:
            value = checked_own(self, value)
        elif name == "modality":
            if type(value) is not Modality:
                value = Modality.parse(value)
        elif name == "confidence":
            if not (type(value) is float and 0.0 <= value <= 1.0):
                value = _clamp01(value, "confidence")
        elif value is not None:
            value = _component_field(name, value)
        _set_field(self, name, value)

    return __setattr__


def _checked_graph(component: Any, value: Any) -> "Graph":
    if not isinstance(value, Graph):
        raise TypeError(f"graph: expected Graph, got {describe(value)}{_graph_remedy(value)}")
    return value


def _graph_remedy(value: Any) -> str:
    """How what a newcomer puts where a Graph goes becomes a component:
    ``ModalGraph("a red ball", ...)`` and ``ModalGraph(vector, ...)`` were
    refused as "expected Graph, got str" with no word of either way in."""
    if isinstance(value, str):
        return "; make one of a text with gm.Graph.from_text(text)"
    if hasattr(value, "shape") or hasattr(value, "__array__") or isinstance(value, (list, tuple)):
        return "; a feature vector is a component as gm.ModalFeatures(features, modality)"
    return ""


#: The labels of each features array made of a pandas Series of str labels, by the array's id:
#: (a weak reference to it, its labels). They follow the array: a component made of another's
#: features (``dataclasses.replace``) keeps them, where it read a reordered row by position.
_LABELS_OF_ARRAY: Dict[int, Tuple["weakref.ReferenceType[np.ndarray]", Tuple[str, ...]]] = {}


def _remember_labels(features: np.ndarray, labels: Tuple[str, ...]) -> None:
    key = id(features)  # dropped as the array goes, before its id can be another's
    _LABELS_OF_ARRAY[key] = (weakref.ref(features, lambda _: _LABELS_OF_ARRAY.pop(key, None)), labels)


def _labels_of_array(value: np.ndarray) -> Optional[Tuple[str, ...]]:
    entry = _LABELS_OF_ARRAY.get(id(value))
    return entry[1] if entry is not None and entry[0]() is value else None


def _labelled_features(component: Any, value: Any) -> np.ndarray:
    """``value`` as :func:`_feature_vector`; a pandas Series' labels (all
    str), or those of a labelled component's features array, are kept as
    the component's ``_labels``, ``(features, labels)``: they name those
    features only while ``component.features`` is that array (an array
    assigned later leaves them naming nothing, without a step here: a
    component built of an array costs a type check and, while labelled
    arrays live, a lookup more)."""
    features = _feature_vector(value)
    if type(value) is not np.ndarray:
        labels = series_str_labels(value)
    elif _LABELS_OF_ARRAY:
        labels = _labels_of_array(value)
    else:
        return features
    if labels is not None:
        _set_field(component, "_labels", (features, labels))
        _remember_labels(features, labels)
    return features


@dataclass
class ModalGraph:
    """One modality of an event given as a graph (featurised by the model).

    Fields are checked whenever they are set, not only at construction."""

    graph: Graph
    modality: Modality
    timestamp: Optional[float] = None
    region: Optional[SpatialRegion] = None
    confidence: float = 1.0

    if TYPE_CHECKING:  # what __setattr__ takes (a modality's name or index too); the fields hold it parsed
        def __init__(
            self,
            graph: Graph,
            modality: Union[Modality, str, int],
            timestamp: Optional[float] = None,
            region: Optional[SpatialRegion] = None,
            confidence: float = 1.0,
        ) -> None: ...

    __setattr__ = _component_setter("graph", _checked_graph)


@dataclass
class ModalFeatures(PortablePickle):
    """One modality of an event given as a feature vector of that modality's
    input dimension (e.g. a precomputed image or text embedding).

    Fields are checked whenever they are set, not only at construction;
    ``features`` is kept as a float32 copy. Features given as a pandas
    Series (``df.iloc[0]``) of str labels keep those labels beside the
    values: a model that learned the modality's columns from a data frame
    (:meth:`~grapheme_multimodal.LearnableMultiModal.input_columns`) refuses
    such a component whose labels are those columns in another order, as it
    refuses the frame. The labels follow that features array: a component
    made of it (``dataclasses.replace(c, confidence=0.5)``, a copy) keeps
    them. Equality compares the values, not the labels."""

    features: np.ndarray
    modality: Modality
    timestamp: Optional[float] = None
    region: Optional[SpatialRegion] = None
    confidence: float = 1.0

    # arrays as bytes, dtype and shape: a pickle of numpy 2 loads under numpy 1, and back (_portable.py)
    _PORTABLE_KEYS = ("features", "_labels")

    if TYPE_CHECKING:  # what __setattr__ takes (any real 1-D array-like; a name or index); the fields hold it parsed
        def __init__(
            self,
            features: npt.ArrayLike,
            modality: Union[Modality, str, int],
            timestamp: Optional[float] = None,
            region: Optional[SpatialRegion] = None,
            confidence: float = 1.0,
        ) -> None: ...

    __setattr__ = _component_setter("features", _labelled_features)  # a float32 1-D copy

    def __eq__(self, other: object) -> bool:
        """Equal by value, as :class:`ModalGraph` (the dataclass's own ``==``
        compared the feature arrays element-wise and raised "truth value of
        an array ... is ambiguous" for any vector of two or more features)."""
        if other.__class__ is not self.__class__:
            return NotImplemented
        return (self.modality, self.timestamp, self.region, self.confidence) == (
            other.modality, other.timestamp, other.region, other.confidence
        ) and np.array_equal(self.features, other.features)  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment]  # mutable and equal by value, as the dataclass made it

    def __setstate__(self, state: Dict[str, Any]) -> None:
        """Unpickled or copied: its labels, if any, follow its features array
        as a built component's do (``dataclasses.replace`` of it keeps them)."""
        state = self._portable_state(state)
        set_state(self, state)  # (a subclass's __slots__ too)
        attributes = split_state(state)[0] or {}
        kept = attributes.get("_labels")
        if kept is not None and kept[0] is attributes.get("features"):
            _remember_labels(*kept)


def _component_field(name: str, value: Any) -> Any:
    """A component's ``modality`` parsed, ``confidence`` clamped to [0, 1],
    ``timestamp`` and ``region`` checked."""
    if name == "modality":
        return Modality.parse(value)
    if name == "confidence":
        return _clamp01(value, "confidence")
    if name == "timestamp":
        return _timestamp(value)
    if name == "region" and value is not None and not isinstance(value, SpatialRegion):
        raise TypeError(f"region: expected a SpatialRegion or None, got {type(value).__name__}")
    return value


def _timestamp(value: Any) -> Optional[float]:
    """A timestamp checked: None or a finite real number, kept as a float.
    Unchecked, "noon", NaN or a bool were stored as given and compared
    without a word (a NaN timestamp made a component unequal to its copy)."""
    if value is None:
        return None
    if not is_real_number(value):
        raise InvalidTypeError(f"timestamp: expected a real number or None, got {value!r} ({type(value).__name__})", "timestamp")
    try:
        out = float(value)
    except OverflowError:  # an int past float64
        out = float("inf")
    if not np.isfinite(out):
        raise InvalidValueError(f"timestamp: expected a finite number or None, got {shown_number(value)}", "timestamp")
    return out


def refuse_reordered_labels(
    components: Iterable[Any], columns: Tuple[Optional[Tuple[str, ...]], ...], name: str, event_id: Any
) -> None:
    """InvalidValueError naming ``{name}.components[k].features`` for the
    first :class:`ModalFeatures` built from a pandas Series whose labels are
    ``columns[slot]`` (the column names a model learned the modality from)
    in another order: its values are read by position, and such a row of
    the frame reordered (``df[['c', 'a', 'b']].iloc[0]``) was embedded as
    other features without a word, while the frame itself is refused."""
    for k, c in enumerate(components):
        kept = c.__dict__.get("_labels") if isinstance(c, ModalFeatures) else None
        if kept is None or kept[0] is not c.features:  # none, or of features replaced since
            continue
        labels = kept[1]
        fitted = columns[c.modality.index]
        misplaced = misplaced_names(fitted, labels)
        if not misplaced:
            continue
        where = f"{name}.components[{k}].features"
        if not is_reordering(fitted, labels):  # some renamed, others moved: read by position as wrongly
            raise InvalidValueError(
                f"{where}: event {event_id}'s {c.modality} component was given as a pandas Series whose labels "
                f"{shown_columns(labels)} name columns the model learned this modality from ({shown_columns(fitted)}) at "
                f"other positions: {shown_misplaced(labels, misplaced, 'learned')}; its values are read by position; "
                "expected them in the order learned", where,
            )
        raise InvalidValueError(
            f"{where}: event {event_id}'s {c.modality} component was given as a pandas Series whose labels "
            f"{shown_columns(labels)} are the columns the model learned this modality from ({shown_columns(fitted)}) "
            f"in another order, and its values are read by position; expected them in that order: "
            f"ModalFeatures(row[{shown_columns(fitted)}], {str(c.modality)!r})", where,
        )


def _feature_vector(value: Any) -> np.ndarray:
    # as every other array input: np.asarray read the values under a mask as features, ragged
    # lists raised numpy's error naming nothing, and timedelta64 passed for numbers
    try:
        arr = as_real_array(value, "features")
    except TypeError:
        if isinstance(value, Graph):  # numpy read it as one object: "array of shape () and dtype object"
            raise TypeError("features: got a Graph; a graph is given as ModalGraph(graph, modality)") from None
        raise
    if arr.ndim != 1:
        raise ShapeError(f"features: expected a 1-D vector, got shape {arr.shape}", "features")
    if arr.dtype.kind == "f" and arr.dtype.itemsize > 4:
        # one scale for the vector, as Graph.from_sequence reads its values: a vector whose every value is below
        # float32's normal range became zeros without a word, where the batched encode refuses such a row
        out = float32_of_wide(arr, "features", place_of=lambda at: f"entry {at[0]}", per_column=False)
    else:
        out = arr.astype(np.float32)
    if not np.isfinite(out).all():
        bad = int(np.flatnonzero(~np.isfinite(out))[0])
        raise NonFiniteError(f"features: entry {bad} {non_finite_message(arr[bad])}", "features")
    return out


Component = Union[ModalGraph, ModalFeatures]


@dataclass(eq=False)
class MultiModalEvent:
    """One event seen through several modalities.

    ``components`` may hold several entries of one modality; the model then
    pools their embeddings (a confidence-weighted mean, re-normalised).
    ``id`` is an int that fits in int64 (negative ones included; a numpy
    integer is kept as a Python int), checked whenever it is set: it is what
    an experience buffer records as the event id. ``timestamp`` is None or a
    finite number (kept as a float), also checked whenever it is set.
    """

    id: int
    components: List[Component] = field(default_factory=list)
    bindings: List[CrossModalBinding] = field(default_factory=list)
    timestamp: Optional[float] = None

    if TYPE_CHECKING:  # what __post_init__ takes (a numpy integer id; any iterable of components or
        # bindings, copied into lists); the fields hold it parsed
        def __init__(
            self,
            id: IntLike,  # noqa: A002 - the field's name
            components: Iterable[Component] = ...,
            bindings: Iterable[CrossModalBinding] = ...,
            timestamp: Optional[float] = None,
        ) -> None: ...

    def __repr__(self) -> str:
        # the dataclass's repr printed every component: megabytes for an event of thousands
        return (
            f"{type(self).__name__}(id={self.id!r}, components={bounded_repr(self.components)}, "
            f"bindings={bounded_repr(self.bindings)}, timestamp={self.timestamp!r})"
        )

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "id":
            if type(value) is not int or not _INT64_MIN <= value <= _INT64_MAX:  # what _event_id keeps as it is
                value = _event_id(value)
        elif name == "timestamp":
            if value is not None:
                value = _timestamp(value)
        _set_field(self, name, value)

    def __post_init__(self) -> None:
        components, self.components = _as_list(self.components, "components", "ModalGraph or ModalFeatures"), []
        for c in components:
            self.add_component(c)
        bindings, self.bindings = _as_list(self.bindings, "bindings", "CrossModalBinding"), []
        for b in bindings:
            self.add_binding(b)

    def add_component(self, component: Component) -> None:
        """Adds a :class:`ModalGraph` or :class:`ModalFeatures`."""
        if not isinstance(component, (ModalGraph, ModalFeatures)):
            raise TypeError(_not_a_component("component", component))
        self.components.append(component)

    def add_binding(self, binding: CrossModalBinding) -> None:
        """Adds a :class:`CrossModalBinding`."""
        if not isinstance(binding, CrossModalBinding):
            raise TypeError(f"binding: expected CrossModalBinding, got {type(binding).__name__}")
        self.bindings.append(binding)

    def get_component(self, modality: Union[Modality, str, int]) -> Optional[Component]:
        """The first component of ``modality``, or None."""
        modality = Modality.parse(modality)
        return next((c for c in self.components if c.modality is modality), None)

    def has_modality(self, modality: Union[Modality, str, int]) -> bool:
        """Whether some component has ``modality``."""
        return self.get_component(modality) is not None

    def modalities(self) -> List[Modality]:
        """The distinct modalities present, in slot order."""
        present = {c.modality for c in self.components}
        return [m for m in Modality if m in present]

    def _checked_components(self, name: str = "event") -> List[Component]:
        """``components``, each checked to be a :class:`ModalGraph` or
        :class:`ModalFeatures`: the list is public, so anything may have been
        put in it without :meth:`add_component`. What the model reads."""
        return checked_components(self.components, name)


def checked_components(components: Any, name: str = "event") -> List[Component]:
    """:meth:`MultiModalEvent._checked_components` of ``components``, a value
    read from an event's ``components`` once: a caller that goes on to read
    the list it has checks that list, not whatever the event holds by then
    (another thread may have set ``event.components`` to another list)."""
    if not isinstance(components, list):
        raise TypeError(f"{name}.components: expected a list of ModalGraph or ModalFeatures, got {type(components).__name__}")
    for k, c in enumerate(components):
        kind = type(c)
        if kind is ModalGraph:  # exact types first: the batched event path (batch.py) passes here per event
            continue
        if kind is ModalFeatures or isinstance(c, ModalFeatures):
            # The array itself can be reshaped or retyped in place (mf.features.shape = (2, 9)),
            # which the setter never sees: checked here, where every path reads a component, so
            # that encoding an event (whose cache answered for the old shape) and training on
            # it refuse the same thing; the message is built only on failure.
            features = c.features
            if features.ndim != 1 or features.dtype is not _FLOAT32:
                _refuse_changed_features(features, f"{name}.components[{k}].features", name)
        elif not isinstance(c, ModalGraph):
            raise TypeError(_not_a_component(f"{name}.components[{k}]", c))
    return components


_FLOAT32 = np.dtype(np.float32)
#: A component's or event's checked field set without its class's __setattr__ (which checked it).
_set_field = object.__setattr__
#: The event ids :func:`_event_id` takes: int64's range.
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

#: The items a repr shows of a long list (then how many more there are), and the
#: characters it shows of anything else.
_REPR_ITEMS = 5
_REPR_CHARS = 1000


def bounded_repr(value: Any) -> str:
    """``repr(value)`` that stays short: a list or tuple shows its first
    ``_REPR_ITEMS`` items (then how many more there are), and the repr of
    anything else is cut at ``_REPR_CHARS`` characters."""
    if type(value) in (list, tuple) and value:
        return sequence_repr(value, _REPR_ITEMS, bounded_repr)
    text = shown_number(value)  # an int past 4,300 digits: repr() raised Python's ValueError in the message's place
    return text if len(text) <= _REPR_CHARS else text[:_REPR_CHARS] + f"... ({len(text) - _REPR_CHARS:,} more characters)"


def sequence_repr(value: Union[list, tuple], items: int, item_repr: Callable[[Any], str]) -> str:
    """The repr of a list or tuple showing its first ``items`` items (each by
    ``item_repr``), then how many more there are."""
    shown = [item_repr(v) for v in value[:items]]
    if len(value) > items:
        shown.append(f"... {len(value) - items:,} more")
    if type(value) is list:
        return "[" + ", ".join(shown) + "]"
    return "(" + ", ".join(shown) + ("," if len(value) == 1 else "") + ")"


def _not_a_component(name: str, value: Any) -> str:
    """The message for ``value``, given as a component, that is none; to
    ``add_component`` (``name`` "component"), how a text or a feature
    vector becomes one ("got str" said not how)."""
    added = name == "component"
    if isinstance(value, Graph):
        hint = "; give a graph as ModalGraph(graph, modality)"
    elif added and isinstance(value, str):
        hint = "; give a text as ModalGraph(gm.Graph.from_text(text), modality)"
    elif added and (hasattr(value, "shape") or hasattr(value, "__array__")):
        hint = "; give a feature vector as ModalFeatures(features, modality)"
    else:
        hint = ""
    return f"{name}: expected ModalGraph or ModalFeatures, got {describe(value)}{hint}"


def _refuse_changed_features(features: np.ndarray, what: str, arg: str) -> None:
    """The error for ``features`` (named ``what``, of argument ``arg``) no
    longer the 1-D float32 vector :class:`ModalFeatures` made of it; nothing
    for a 1-D float32 one whose dtype is an equal object of its own (a
    component unpickled), which was refused as "a float32
    array (retyped in place); expected float32"."""
    if features.ndim == 1 and features.dtype == _FLOAT32:
        return
    fix = "assign the new values to features (mf.features = ...) instead of changing the array in place"
    if features.ndim != 1:
        raise ShapeError(f"{what}: has shape {features.shape} (reshaped in place); expected a 1-D vector; {fix}", arg)
    raise InvalidValueError(f"{what}: is a {features.dtype} array (retyped in place); expected float32; {fix}", arg)


def _event_id(value: Any) -> int:
    """An event id checked: an int (numpy's too, not a bool) within int64.
    Unchecked, 1.5, "a" or None fused and trained without a word and were only
    refused once recorded, and 1.5 would have been recorded as 1."""
    if not is_int(value):
        raise InvalidTypeError(f"id: expected an int event id, got {value!r} ({type(value).__name__})", "id")
    value = exact_int(value)  # a 0-d array too: the int it holds
    if not -(2**63) <= value < 2**63:
        raise InvalidValueError(f"id: got {shown_number(value, str)}; expected an event id that fits in int64 (-2**63 to 2**63 - 1)", "id")
    return value


def _as_list(items: Any, name: str, expected: str) -> list:
    if type(items) is list:  # the default (a new event's lists) and the common case: a copy, no checks to make
        return list(items)
    if isinstance(items, (str, bytes, ModalGraph, ModalFeatures, CrossModalBinding)) or not is_iterable(items):
        raise TypeError(f"{name}: expected a list of {expected}, got {type(items).__name__}")
    return list(items)
