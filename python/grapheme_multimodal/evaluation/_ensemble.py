"""Several trained models measured as one: an ensemble of the package's models.

Every member embeds a row as a unit vector (zeros for a view that is not
there). Side by side, each member's block divided by ``sqrt(K)``, they make
one unit vector whose cosine with another is the *mean of the members'
cosines*: the ensemble's similarity is the average of its members'
similarities, and cross-view retrieval, k-NN and a linear probe read that.
Members trained from different seeds err differently, so the average keeps
what they agree on (docs/objectives.md, "Measured: an ensemble of recipe
models").
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Dict, Iterable, List, Mapping, Optional, Tuple

import numpy as np

from .._validation import IntLike, as_float32, as_list_of, as_real_array, describe
from .._frames import refuse_reordered_members
from ..exceptions import InvalidTypeError, InvalidValueError, NonFiniteError, ShapeError
from ..metrics import _unit_or_zero
from ._embedders import ModelEmbedder, check_views

if TYPE_CHECKING:
    from ..model import LearnableMultiModal

__all__ = ["EnsembleEmbedder", "side_by_side"]


def side_by_side(blocks: List[np.ndarray]) -> np.ndarray:
    """The members' outputs ``[..., E_k]`` as one ``[..., sum E_k]`` (side
    by side on the last axis), each block divided by ``sqrt(K)``: unit rows
    stay unit rows, and the cosine of two rows is the mean of the members'
    cosines. Float blocks keep their dtype; integer (or bool) ones give
    float64 (divided in their own dtype, every value below ``sqrt(K)``
    became 0); others (complex, text, objects) are refused, a ``TypeError``
    naming ``blocks``. One member's output is returned as it is (so an
    ensemble of one gives its member's bits)."""
    if len(blocks) == 1:
        return blocks[0]
    out = np.concatenate(blocks, axis=-1)
    if out.dtype == np.bool_ or np.issubdtype(out.dtype, np.integer):
        out = out.astype(np.float64)
    elif not np.issubdtype(out.dtype, np.floating):
        raise TypeError(f"blocks: expected real numbers (float, int or bool arrays), got dtype {out.dtype}")
    out *= np.asarray(1.0 / np.sqrt(len(blocks)), dtype=out.dtype)
    return out


def unit_side_by_side_blocks(blocks: List[np.ndarray]) -> np.ndarray:
    """The members' hidden features ``[..., H_k]`` side by side (as
    :func:`side_by_side`), each member's block first L2-normalised along
    its last axis (all-zero rows, an absent view's, stay zero), so that
    every member weighs the same: how :meth:`EnsembleEmbedder.hidden_features`
    and ``grapheme-mm embed --hidden-features`` of an ensemble file combine
    them (``[N, H_k]`` per view there, ``[N, 7, H_k]`` per slot here).
    One member's features are returned as they are, as :func:`side_by_side`
    returns one member's output: an ensemble of one is its model (the
    command line wrote an ensemble file of one member's raw features, and
    this gave them L2-normalised: the two said to be the same differed)."""
    if len(blocks) == 1:
        return blocks[0]
    return side_by_side([_unit_or_zero(b.reshape(-1, b.shape[-1]))[0].reshape(b.shape) for b in blocks])


def _members(k: int) -> str:
    """``"1 member"``, ``"3 members"``: "1 members" was printed."""
    return f"{k} member{'s' * (k != 1)}"


def _fitted_columns(member: ModelEmbedder, view: str) -> Optional[Tuple[str, ...]]:
    """The column names ``member``'s model was fitted on for ``view`` (None: not known)."""
    return member.model.input_columns(member.modalities[view])


def _refuse_reordered_columns(members: Tuple[ModelEmbedder, ...], views: List[str]) -> None:
    """No member was fitted on a view's columns in another order than the
    first member whose columns for it are known: else every data frame of
    that view was refused by one member or the other, each order in turn."""
    for v in views:
        refuse_reordered_members([_fitted_columns(member, v) for member in members], "members",
                                 f"view {v!r}'s columns", "a view's columns are read by position, once for all the members")


def _input_width(member: ModelEmbedder, view: str) -> int:
    """The columns ``member``'s model takes for ``view``."""
    return int(member.model.config.input_dims[member.modalities[view].index])


def _checked_members(members: Iterable[ModelEmbedder], pinned: bool = False) -> Tuple[ModelEmbedder, ...]:
    """``members`` as a tuple, refused unless each is a :class:`ModelEmbedder`
    over the views of the first, taking them at the same widths, fitted on
    no view's columns in another order. ``pinned``: each a copy of the
    member, whose ``model`` and ``modalities`` are those checked whatever
    is set on the member meanwhile."""
    members = tuple(as_list_of(members, ModelEmbedder, "members", " (uci.fit_views gives one)"))
    if pinned:
        members = tuple(copy.copy(m) for m in members)
    views = list(members[0].modalities)
    widths = {v: _input_width(members[0], v) for v in views}
    for i, member in enumerate(members[1:], start=1):
        # else a view only some members know failed halfway; sets, as views {0, "b"} do not sort
        if set(member.modalities) != set(views):
            raise InvalidValueError(
                f"members[{i}]: embeds views {list(member.modalities)}; expected the views of members[0], {views}",
                f"members[{i}]")
        # else every embedding of such a view failed in one member or another, as the caller's data's fault
        takes = {v: _input_width(member, v) for v in views}
        if takes != widths:
            raise InvalidValueError(
                f"members[{i}]: takes views of {takes} columns; expected those of members[0], {widths}", f"members[{i}]")
    _refuse_reordered_columns(members, views)
    return members


class EnsembleEmbedder:
    """:class:`ViewEmbedder` over several :class:`ModelEmbedder` members
    trained on the same views: each embedding is the members' embeddings
    side by side, each block divided by ``sqrt(K)`` (width ``K · E`` for
    members of width ``E``; unit rows stay unit rows, so cosine similarity
    is the mean of the members' cosines); :meth:`bind` is the mean of the
    members' binder strengths; :meth:`hidden_features` puts the members'
    hidden features side by side, each member's block L2-normalised per row
    and divided by ``sqrt(K)`` (so every member weighs the same; an
    ensemble of one gives its member's features as they are).

    :func:`grapheme_multimodal.uci.fit_ensemble` trains one.

    Args:
        members: the trained members (at least one), each a
            :class:`ModelEmbedder` over the same view names.
    """

    def __init__(self, members: Iterable[ModelEmbedder]) -> None:
        self.members: Tuple[ModelEmbedder, ...] = _checked_members(members)

    def _current_members(self) -> Tuple[ModelEmbedder, ...]:
        """The members as they are now, checked again: ``members`` and a
        member's ``model`` are plain attributes, and one replaced since
        (``ensemble.members = ()``, ``ensemble.members[1].model = other``)
        failed as numpy's "need at least one array to concatenate", or
        blamed the caller's views for a member's other widths. Read once per
        call: a tuple set from another thread meanwhile is not mixed with this
        one; nor is a member's ``model`` or ``modalities`` set meanwhile, each
        member taken as a copy pinned to what was checked (a model of other
        widths set on one after the check was refused as the caller's views'
        fault)."""
        return _checked_members(self.members, pinned=True)

    @property
    def models(self) -> Tuple["LearnableMultiModal", ...]:
        """The members' models."""
        return tuple(m.model for m in self._current_members())

    @property
    def has_hidden_features(self) -> bool:
        """Whether every member's encoders have hidden layers."""
        return all(m.has_hidden_features for m in self._current_members())  # of no members: refused, not True

    def __len__(self) -> int:
        return len(self.members)

    def __repr__(self) -> str:
        # never raises: ``members`` is a plain attribute, and one set to () since raised IndexError here,
        # which hid the ensemble in a traceback or a notebook's output; its next call refuses it
        members = self.members
        if not isinstance(members, (tuple, list)) or not all(isinstance(m, ModelEmbedder) for m in members):
            return f"EnsembleEmbedder(members={describe(members)})"
        views = f", views={list(members[0].modalities)}" if members else ""
        return f"EnsembleEmbedder({_members(len(members))}{views})"

    def embed_views(self, views: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """Each given view's embedding ``[N, K · E]``: the members' side by side."""
        check_views(views)
        per_member = [m.embed_views(views) for m in self._current_members()]
        return {v: side_by_side([emb[v] for emb in per_member]) for v in views}

    def embed_fused(self, views: Mapping[str, np.ndarray]) -> np.ndarray:
        """The fused embedding ``[N, K · E]`` of the given views: the members' side by side."""
        check_views(views)
        return side_by_side([m.embed_fused(views) for m in self._current_members()])

    def hidden_features(self, views: Mapping[str, np.ndarray], layer: IntLike = -1) -> Dict[str, np.ndarray]:
        """Each view's members' hidden features side by side, each member's
        block L2-normalised per row (zero rows stay zero) and divided by
        ``sqrt(K)``: ``[N, K · H]`` (one member: its features as they are,
        as its :class:`ModelEmbedder` gives them). ``layer`` indexes each member's
        ``config.encoder_hidden`` (-1: each member's last hidden layer); one
        that some member lacks is refused naming that member."""
        check_views(views)
        members = self._current_members()
        if not all(m.has_hidden_features for m in members):
            bare = [i for i, m in enumerate(members) if not m.has_hidden_features]
            raise InvalidValueError(f"hidden_features: members {bare} have no hidden layers (encoder_hidden=()); "
                                    "expected members whose encoders have them", "members")
        for i, member in enumerate(members):  # before any member works: members of other depths take other layers
            try:
                member.model.hidden_width(layer)
            except InvalidTypeError:  # a layer that is no int: every member's refusal, as a model's
                raise
            except InvalidValueError as err:  # "config.encoder_hidden = (16,)": which member's, of K?
                raise InvalidValueError(f"layer: members[{i}]: {str(err).split(': ', 1)[-1]}", "layer") from None
        per_member = [m.hidden_features(views, layer=layer) for m in members]
        return {v: unit_side_by_side_blocks([features[v] for features in per_member]) for v in views}

    def bind(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """The mean of the members' binder strengths ``[N]`` for rows of
        this ensemble's view embeddings ``a`` and ``b`` (``[N, K · E]``, as
        :meth:`embed_views` gives them)."""
        members = self._current_members()
        widths = [m.model.config.embed_dim for m in members]
        scale = np.float32(np.sqrt(len(members)))
        blocks: Dict[str, List[np.ndarray]] = {}
        rows = None
        for name, x in (("a", a), ("b", b)):
            # the members' own checks, made here on the whole rows: a cast to float32 first dropped an imaginary
            # part and read "1.0" strings, and errors after the split named a member's block, not these columns
            arr = as_real_array(x, name)
            if arr.ndim != 2 or arr.shape[1] != sum(widths):
                side = "" if len(widths) == 1 else " side by side"
                raise ShapeError(f"{name}: expected the ensemble's embeddings [N, {sum(widths)}] ({_members(len(widths))}"
                                 f"{side}), got shape {arr.shape}", name)
            arr = as_float32(arr, name, 2, (rows, sum(widths)))
            rows = arr.shape[0]
            # back to each member's unit rows: the member's binder was trained on those
            with np.errstate(over="ignore"):  # found below: a finite value past float32's largest / sqrt(K)
                scaled = arr * scale
            finite = np.isfinite(scaled)
            if not finite.all():
                at = tuple(int(i) for i in np.argwhere(~finite)[0])
                if np.isfinite(arr[at]):
                    raise NonFiniteError(
                        f"{name}: index {at} holds {float(arr[at]):g}, which times sqrt({len(widths)}) (back to a member's "
                        "rows) passes float32's largest 3.4e+38; expected the ensemble's embeddings (unit rows)", name)
                raise NonFiniteError(f"{name}: contains a non-finite value (NaN or inf) at index {at}; expected finite "
                                     "numbers", name)
            blocks[name] = np.split(scaled, np.cumsum(widths)[:-1], axis=1)
        strengths = [m.bind(x, y) for m, x, y in zip(members, blocks["a"], blocks["b"])]
        return np.mean(strengths, axis=0, dtype=np.float64).astype(strengths[0].dtype)
