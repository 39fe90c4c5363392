"""What the evaluation needs from a trained model, and the adapter that gives
it for :class:`~grapheme_multimodal.LearnableMultiModal`.

Any model can be measured — a PyTorch one too — if it has the two methods of
:class:`ViewEmbedder`; :class:`ModelEmbedder` provides them for ours.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, Mapping, Optional, Protocol, runtime_checkable

import numpy as np

from .._readonly import ReadOnlyMapping
from .._validation import IntLike, describe, renamed, sorted_names, call_taking_no_mask, unmasked
from ..exceptions import GraphemeError, InvalidValueError
from ..types import Modality
from ._pairs import view_name_list

if TYPE_CHECKING:
    from ..model import LearnableMultiModal

__all__ = ["ViewEmbedder", "ModelEmbedder", "Recipe", "view_modalities"]


@runtime_checkable
class ViewEmbedder(Protocol):
    """A trained multi-view model, as the evaluation sees it.

    ``views`` maps view names to raw ``[N, d_v]`` arrays (the model does its
    own scaling); only the views given are present, in every row.
    """

    def embed_views(self, views: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """Each given view's own embedding ``[N, E]``, in the space where
        views are compared with each other (cross-view retrieval)."""
        ...

    def embed_fused(self, views: Mapping[str, np.ndarray]) -> np.ndarray:
        """One fused embedding ``[N, E]`` per row from the given views."""
        ...


#: How the evaluation trains: ``recipe(train_views, seed) -> ViewEmbedder``,
#: raw training views by name in, a trained model out.
Recipe = Callable[[Mapping[str, np.ndarray], int], ViewEmbedder]


def view_modalities(names: Iterable[str]) -> Dict[str, Modality]:
    """Assigns views to the input modality slots: a view named as an input
    modality (a :class:`Modality`, or its name in any case) takes that slot,
    and the others the slots left, in order (visual, auditory, linguistic,
    tactile, proprioceptive, abstract; action is the output modality and
    stays empty): at most six views, in an order (a set is refused: its
    order moves from one process to the next)."""
    if isinstance(names, (set, frozenset)):
        # the views not named as modalities took the free slots in the set's hash order, which moves from one
        # process to the next: the same seed trained each view in another slot (other initial weights and draws)
        raise TypeError(f"views: got a {type(names).__name__}; expected view names in order, e.g. a list, a tuple or "
                        "a mapping's keys (a set has no order)")
    names = view_name_list(names, "views")
    slots = [m for m in Modality if m.is_input]
    if len(names) > len(slots) or len(set(names)) != len(names):
        raise InvalidValueError(
            f"views: expected at most {len(slots)} distinct view names (one per input modality slot of the model; "
            f"the seventh, action, is its output and takes no view), got {names}", "views")
    # by name first: in order alone, {"linguistic": text, "visual": image} put the text in the visual
    # slot, and the model's own calls by modality (model.encode("visual", ...)) read the wrong view
    named: Dict[str, Modality] = {}
    for name in names:
        slot = _slot_named(name)
        if slot is None:
            continue
        taken = [other for other, m in named.items() if m is slot]
        if taken:
            raise InvalidValueError(f"views: {taken[0]!r} and {name!r} both name the {slot} slot; expected one view a slot", "views")
        named[name] = slot
    free = iter(m for m in slots if m not in named.values())
    return {name: named[name] if name in named else next(free) for name in names}


def _slot_named(name: Any) -> Optional[Modality]:
    """The input modality ``name`` names (a :class:`Modality` or its name in
    any case), or None for any other view name."""
    if isinstance(name, Modality):
        if not name.is_input:
            raise InvalidValueError(f"views: {name} is the output modality; no view can take its slot", "views")
        return name
    if isinstance(name, str) and name.isascii() and name.upper() in Modality.__members__:  # "vısual".upper() is VISUAL
        slot = Modality[name.upper()]
        return slot if slot.is_input else None  # a view called "action" is a name like any other
    return None


def check_views(views: Any, arg: str = "views") -> None:
    """``views`` must be a non-empty mapping view name -> array: a list of
    arrays failed as "unhashable type: 'numpy.ndarray'", one array was read
    as its rows' names, and no views at all was named as the model's
    ``data`` or ``inputs`` "when mask is None", arguments the caller never gave."""
    if not isinstance(views, Mapping):
        raise TypeError(f"{arg}: expected a mapping view name -> [N, d] array, got {describe(views)}")
    if not views:
        raise InvalidValueError(f"{arg}: expected at least one view (view name -> [N, d] array), got an empty mapping", arg)


class ModelEmbedder:
    """:class:`ViewEmbedder` over a :class:`~grapheme_multimodal.LearnableMultiModal`:
    view ``v`` is modality ``modalities[v]``; a view's embedding is its
    modality embedding (``model.encode``), the fused embedding is
    ``model.encode_and_fuse``'s, and :meth:`bind` is the model's binder.
    ``model`` and ``modalities`` are checked whenever they are set, not
    only when it is built; a refused value leaves the embedder as it was.
    """

    def __init__(self, model: "LearnableMultiModal", modalities: Mapping[str, Modality]) -> None:
        self.model = model
        self.modalities = modalities

    # Checked on assignment too: set after the constructor's checks, any object (``embedder.model = None``)
    # was kept and failed at the first embedding with "'NoneType' object has no attribute 'encode'", and
    # other modalities went unparsed and unchecked for shared slots.
    @property
    def model(self) -> "LearnableMultiModal":
        """The model embedded with (a LearnableMultiModal, checked when set)."""
        return self._model

    @model.setter
    def model(self, value: "LearnableMultiModal") -> None:
        from ..model import LearnableMultiModal  # here: the model's module is not this one's to import at load

        # else an AttributeError at the first embedding ("'NoneType' object has no attribute 'encode'")
        if not isinstance(value, LearnableMultiModal):
            raise TypeError(f"model: expected a LearnableMultiModal, got {describe(value)}")
        self._model = value

    @property
    def modalities(self) -> Mapping[str, Modality]:
        """View name -> modality, read-only; given as any mapping of names
        or indices, checked (one modality per view) when set."""
        return self._modalities

    @modalities.setter
    def modalities(self, value: Mapping[str, Any]) -> None:
        if not isinstance(value, Mapping):  # else "'list' object has no attribute 'items'"
            raise TypeError(f"modalities: expected a mapping view name -> modality, got {describe(value)}")
        # read-only: an edit (``embedder.modalities["a"] = "tactile"``) put an unparsed str where every reader
        # takes a Modality, and an EnsembleEmbedder of it failed with "tuple indices must be integers ..."
        parsed = ReadOnlyMapping({v: Modality.parse(m, f"modalities[{v!r}]") for v, m in value.items()})
        taken = list(parsed.values())
        if len(set(taken)) < len(taken):  # else one view's rows replaced the other's in every input dict
            shared = [v for v, m in parsed.items() if taken.count(m) > 1]
            raise InvalidValueError(f"modalities: views {shared} share a modality; expected one modality per view", "modalities")
        self._modalities = parsed

    def __setstate__(self, state: Dict[str, Any]) -> None:
        """A state pickled before ``model`` and ``modalities`` were checked on assignment kept them by those names."""
        state = dict(state)  # a shallow copy's state is the original's own __dict__
        for name in ("model", "modalities"):
            if name in state:
                state[f"_{name}"] = state.pop(name)
        self.__dict__.update(state)

    def __repr__(self) -> str:
        return f"ModelEmbedder({self.model!r}, views={list(self.modalities)})"

    @property
    def has_hidden_features(self) -> bool:
        """Whether the model's encoders have hidden layers (``encoder_hidden``)."""
        return bool(self.model.config.encoder_hidden)

    def _inputs(self, views: Mapping[str, np.ndarray], modalities: Mapping[str, Modality]) -> Dict[Modality, np.ndarray]:
        check_views(views)
        unknown = sorted_names(set(views) - set(modalities))
        if unknown:
            raise InvalidValueError(f"views: unknown view names {unknown}; this model knows {list(modalities)}", "views")
        # a masked entry is refused here, not by the model, whose remedy ("leave the rows out with mask=")
        # is no argument of the embedder: every view given here is present in every row
        return {modalities[v]: unmasked(x, f"views[{v!r}]", remedy="fill them, or embed only the rows that have them")
                if isinstance(x, np.ma.MaskedArray) else x for v, x in views.items()}

    def embed_views(self, views: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """Each given view's modality embedding ``[N, E]`` (``model.encode``)."""
        modalities = self.modalities  # once: the slots read out are those the views went in
        return _per_view(self._on_views(self.model.encode, views, modalities), modalities, views)

    def embed_fused(self, views: Mapping[str, np.ndarray]) -> np.ndarray:
        """The fused embedding ``[N, E]`` of the given views (the others absent)."""
        return self._on_views(self.model.encode_and_fuse, views, self.modalities)[1]

    def hidden_features(self, views: Mapping[str, np.ndarray], layer: IntLike = -1) -> Dict[str, np.ndarray]:
        """Each view's encoder hidden features (:meth:`LearnableMultiModal.hidden_features`)."""
        model, modalities = self.model, self.modalities  # once each, as embed_views reads them
        features = self._on_views(lambda inputs: model.hidden_features(inputs, layer=layer), views, modalities)
        return _per_view(features, modalities, views)

    def _on_views(self, method: Callable[[Dict[Modality, np.ndarray]], Any], views: Mapping[str, np.ndarray],
                  modalities: Mapping[str, Modality]) -> Any:
        """``method`` of the model on the views as its inputs (placed by
        ``modalities``, read once by the caller: set by another thread in
        between, the rows read out of the output were those of slots the
        views never went in); an error about the model's ``inputs['m']``
        (or all ``inputs``) named as the caller's ``views['v']`` (or
        ``views``): the model's names are not the caller's."""
        try:
            # the embedder takes no mask (every view given is present in every row): the model's refusal of NaN
            # says nothing of "(a row marked present)", marks the caller cannot make
            return call_taking_no_mask(method, self._inputs(views, modalities))
        except (GraphemeError, TypeError) as err:
            raise renamed(err, {**view_names(modalities, "inputs", "views"), "inputs": "views"}) from None

    def bind(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """The binder's strength ``[N]`` for rows of view embeddings ``a`` and ``b``."""
        return self.model.bind(a, b)


def _per_view(per_slot: np.ndarray, modalities: Mapping[str, Modality], views: Iterable[str]) -> Dict[str, np.ndarray]:
    """Each view's rows ``[N, F]`` of ``per_slot [N, 7, F]``, as a C-contiguous
    array of its own (as ``model.encoder.encode`` gives them): slices of the
    one array were strided, which C-contiguous consumers (faiss, buffers)
    refuse, and writing into one view's rows wrote into the others' array."""
    return {v: per_slot[:, modalities[v].index].copy() for v in views}


def view_names(modalities: Mapping[str, Modality], inner: str, outer: str) -> Dict[str, str]:
    """``{"inner['visual']": "outer['fou']", ...}``: each view's modality
    argument as a model call names it, and as the caller names the view."""
    return {f"{inner}[{str(m)!r}]": f"{outer}[{v!r}]" for v, m in modalities.items()}


def optional_hidden_features(embedder: ViewEmbedder) -> Optional[Callable[[Mapping[str, np.ndarray]], Dict[str, np.ndarray]]]:
    """The embedder's ``hidden_features(views)`` when it has one (a
    :class:`ModelEmbedder` or an ensemble of them only when their models have
    hidden layers: ``has_hidden_features``)."""
    features = getattr(embedder, "hidden_features", None)
    # ModelEmbedder and EnsembleEmbedder always have the method; it works when their models have hidden layers
    if not callable(features) or getattr(embedder, "has_hidden_features", True) is False:
        return None
    return features


def optional_bind(embedder: ViewEmbedder) -> Optional[Callable[[np.ndarray, np.ndarray], np.ndarray]]:
    """The embedder's ``bind(a, b)`` when it has one."""
    bind = getattr(embedder, "bind", None)
    return bind if callable(bind) else None
