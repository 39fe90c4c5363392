"""Ensembles of models in one checkpoint file.

An ensemble (``grapheme-mm train --members K``, :func:`grapheme_multimodal.uci.fit_ensemble`,
``MultimodalEmbedder(n_members=K)``) is K models trained on the same data
from different seeds, measured as one: their embeddings side by side, their
binding strengths averaged (docs/objectives.md, "Measured: an ensemble of
recipe models"). :func:`save_ensemble` writes the K models into one
safetensors file, each member's tensors under ``member/{j}/`` and its
checkpoint metadata in a list, with the checksums and the atomic write of a
model checkpoint; :func:`load_ensemble` gives the K models back, each as
:meth:`LearnableMultiModal.load` would, so every member trains on bit for
bit. :func:`load_models` reads either kind of file.
"""

from __future__ import annotations

__all__ = ["ENSEMBLE_FORMAT", "save_ensemble", "load_ensemble", "load_models"]

import math
import sys
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Mapping, Optional, Sequence

import numpy as np

from ._core import __version__
from ._validation import as_list_of, check_flag
from ._frames import refuse_reordered_members
from .checkpoint import _FILE_BYTES_PER_PARAMETER, _MODEL_BYTES_PER_PARAMETER, _ONE_MODEL_SLACK
from .checkpoint import _new_model, _restore, _text, _version_note, checkpoint_specs, checkpoint_state, too_large_in_file
from .exceptions import CheckpointError, InvalidTypeError, InvalidValueError, TooLargeError
from .io import FORMAT_NAMES, PathLike, TensorSpec, as_path, check_write_target, declared_bytes_being_read, format_tag
from .io import _MAX_HEADER_BYTES, HeaderTooLargeError, not_enough_memory_to_write
from .io import call_saving, read_tagged_safetensors, write_tagged_safetensors
from .types import Modality

if TYPE_CHECKING:
    from .model import LearnableMultiModal

ENSEMBLE_FORMAT = "grapheme-multimodal/ensemble/v1"
FORMAT_NAMES[ENSEMBLE_FORMAT] = ": an ensemble of models, which grapheme_multimodal.load_ensemble reads"
#: The metadata keys of an ensemble file, all required.
ENSEMBLE_METADATA_KEYS = ("library_version", "members")


def _member_prefix(j: int) -> str:
    return f"member/{j}/"


def _embedders_hint(models: Any) -> str:
    """Where to find the models of the embedders given as ``models`` (an
    :class:`EnsembleEmbedder`, its ``members`` or one member); "" for anything else."""
    from .evaluation import EnsembleEmbedder, ModelEmbedder  # on the error's path only: evaluation is heavy
    from .model import LearnableMultiModal

    # not imported here: it needs scikit-learn, and an estimator exists only where its module was imported
    estimators = sys.modules.get(f"{__package__}.sklearn")
    if estimators is not None and isinstance(models, estimators.MultimodalEmbedder):
        return "; a MultimodalEmbedder's fitted models are estimator.models_: save_ensemble(estimator.models_, path)"
    if isinstance(models, LearnableMultiModal):
        return "; one model is saved with model.save(path), or as an ensemble of one: save_ensemble([model], path)"
    if isinstance(models, EnsembleEmbedder):
        return "; an EnsembleEmbedder's models are ensemble.models: save_ensemble(ensemble.models, path)"
    if isinstance(models, ModelEmbedder):
        return "; a ModelEmbedder's model is embedder.model: save_ensemble([embedder.model], path)"
    if isinstance(models, (tuple, list)) and any(isinstance(m, ModelEmbedder) for m in models):
        return ("; an EnsembleEmbedder's members are ModelEmbedders, their models are ensemble.models: "
                "save_ensemble(ensemble.models, path)")
    return ""


def _as_models(models: Any) -> List["LearnableMultiModal"]:
    """``models`` as a list of at least one model, else refused naming
    ``models``; an ensemble of embedders, or its members, with where their
    models are ("got EnsembleEmbedder" left the user to find them)."""
    from .model import LearnableMultiModal

    try:
        return as_list_of(models, LearnableMultiModal, "models")
    except InvalidTypeError as err:
        hint = _embedders_hint(models)
        if not hint:
            raise
        raise InvalidTypeError(f"{err}{hint}", err.arg) from None


def save_ensemble(models: Iterable["LearnableMultiModal"], path: PathLike, include_experience: bool = False) -> None:
    """Writes the ensemble ``models`` (at least one; models that take the
    same modalities with the same input widths, and were fitted on a
    modality's named columns, where known, in the same order) to ``path`` as one
    safetensors file with checksums, atomically: a failed or killed save
    leaves the previous file intact. Each member is saved as
    :meth:`LearnableMultiModal.save` saves it (weights, config,
    standardisation, Adam state, training progress, weight average; its
    experience buffer only with ``include_experience``).
    :func:`load_ensemble` gives them back. An ensemble built by
    :func:`~grapheme_multimodal.uci.fit_ensemble` is saved with
    ``save_ensemble(ensemble.models, path)``."""
    include_experience = check_flag(include_experience, "include_experience")
    models = _as_models(models)
    _check_members_agree(models, "models", InvalidValueError)
    _check_columns_agree(models)
    check_write_target(path)  # before copying the members' states: a bad path fails at once

    def write() -> None:
        tensors: Dict[str, np.ndarray] = {}
        metas: List[Dict[str, Any]] = []
        try:
            for j, model in enumerate(models):
                member_tensors, member_meta = checkpoint_state(model, include_experience)
                tensors.update({_member_prefix(j) + name: value for name, value in member_tensors.items()})
                metas.append(member_meta)
        except MemoryError as exc:
            if isinstance(exc, TooLargeError):
                raise
            raise not_enough_memory_to_write(path) from None
        except InvalidValueError as exc:  # a member's history or epoch count that loading would refuse
            raise type(exc)(f"models[{j}]: {exc}", f"models[{j}]") from None
        except TypeError as exc:
            if not str(exc).startswith("model."):  # not the check of a member's public attribute: not ours to rename
                raise
            raise TypeError(f"models[{j}]: {exc}") from None  # an epoch count of 2.0: which member's
        # and again on the states read: a member's fit_normalization of a frame in another thread since the check
        # above could learn its names in another order, and the file held members reading one frame in two orders
        _refuse_columns_reordered({m: [meta.get("input_columns", {}).get(str(m)) for meta in metas] for m in Modality})
        try:
            write_tagged_safetensors(path, tensors, ENSEMBLE_FORMAT, {"library_version": __version__, "members": metas})
        except HeaderTooLargeError:  # the names and checksums of every member's tensors, their configs and histories
            raise InvalidValueError(
                f"models: {len(models):,} members make a header of more than the {_MAX_HEADER_BYTES:,} bytes a safetensors "
                "file may hold (their tensors' names and checksums, their configs and histories); nothing was written to "
                f"{str(path)!r}; expected fewer members in one file (save them in parts: save_ensemble(models[:k], ...))",
                "models",
            ) from None

    call_saving(path, write)  # from here: the interpreter's exit waits for it


def load_ensemble(path: PathLike) -> List["LearnableMultiModal"]:
    """The models saved at ``path`` by :func:`save_ensemble`, in order,
    after verifying the file's checksums and checking every member's
    tensors against its config, as :meth:`LearnableMultiModal.load` does
    (:class:`~grapheme_multimodal.CheckpointError` naming the file and the
    member otherwise; ``FileNotFoundError`` when nothing is there). A model
    checkpoint (one model) is refused with a message that says so:
    :func:`load_models` reads either."""
    path = as_path(path)  # an os.PathLike that is not a Path (os.DirEntry) was named in errors by its repr
    built: List["LearnableMultiModal"] = []

    def expected(meta: Dict[str, Any]) -> Dict[str, TensorSpec]:
        missing = [k for k in ENSEMBLE_METADATA_KEYS if k not in meta]
        unknown = sorted(set(meta) - set(ENSEMBLE_METADATA_KEYS))
        if missing or unknown:
            raise InvalidValueError(f"metadata: missing keys {missing}, unexpected keys {unknown}", "metadata")
        members = meta["members"]
        if not isinstance(members, list) or not members:
            raise InvalidValueError(f"members: expected a non-empty list of member metadata, got {members!r:.80}", "members")
        specs: Dict[str, TensorSpec] = {}
        held, needed = declared_bytes_being_read(), 0  # all the file's tensor data
        # What the members' checks leave, all together, to the tensor check that names a missing tensor (a model's
        # file has as much): a member some of whose tensors the file holds is built when it needs little more, so
        # that one tensor left out is named, not read as a forged member ("makes a model of 1,895 parameters ...,
        # but the file holds 22,732 bytes"); a member of none gets none, as a forged list's.
        spare = _ONE_MODEL_SLACK
        for j, member_meta in enumerate(members):
            try:
                own = declared_bytes_being_read(_member_prefix(j))
                # refused unless the file holds its tensors
                model = _new_model(member_meta, _member_prefix(j), slack=spare if own else 0)
                if own:
                    spare -= max(0, _MODEL_BYTES_PER_PARAMETER * model.num_parameters() - _MODEL_BYTES_PER_PARAMETER
                                 // _FILE_BYTES_PER_PARAMETER * own)
                member_specs = checkpoint_specs(model, member_meta)
            except (KeyError, TypeError, ValueError) as exc:
                if isinstance(exc, TooLargeError):  # "hidden_dim: ... more than any address space holds": which file, member?
                    raise TooLargeError(f"path: {str(path)!r}: members[{j}]: {exc}", "path") from None
                raise InvalidValueError(f"members[{j}]: {_text(exc)}{_version_note(meta)}", f"members[{j}]") from None
            built.append(model)
            specs.update({_member_prefix(j) + name: spec for name, spec in member_specs.items()})
            # a forged list of many members built a model for each (a 3.5 MB file, 2,000 members: 1.5 GB)
            # before the header was found to hold none of their tensors: stop once they cannot fit
            needed += sum(math.prod(s.shape) * np.dtype(s.dtype).itemsize for s in member_specs.values() if s.required)
            # not after the last member, every one built by then: the tensor check names what is missing (one
            # member's tensor left out read "2 members listed, but the tensors of members[0] to members[1] alone
            # take ... bytes", nothing said of which tensor)
            if held is not None and needed > held and j < len(members) - 1:
                which = "members[0]" if j == 0 else f"members[0] to members[{j}]"
                raise InvalidValueError(
                    f"members: {len(members):,} members listed, but the tensors of {which} alone "
                    f"take {needed:,} bytes, more than the {held:,} bytes of tensors the file holds", "members",
                )
        return specs

    tensors, meta = read_tagged_safetensors(path, ENSEMBLE_FORMAT, expected)
    # each member's tensors (every name is "member/{j}/...", as expected said), parted in one pass: a _strip of all
    # the file's tensors per member took O(K²) (400 small members: 3.3 s; 1,000, by the square, about 20 s)
    own: Dict[str, Dict[str, np.ndarray]] = {}
    for name, value in tensors.items():
        prefix = name[: name.index("/", len("member/")) + 1]
        own.setdefault(prefix, {})[name[len(prefix):]] = value
    del tensors
    models = []
    for j, (model, member_meta) in enumerate(zip(built, meta["members"])):
        try:
            models.append(_restore(model, own.pop(_member_prefix(j), {}), member_meta))
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, TooLargeError):  # a member's buffer capacity: which file, which member?
                raise too_large_in_file(exc, path, f"members[{j}]: ") from None
            raise CheckpointError(
                f"path: {str(path)!r} is not a valid ensemble: members[{j}]: {_text(exc)}{_version_note(meta)}", "path"
            ) from None
    try:
        _check_members_agree(models, "members", CheckpointError)
    except CheckpointError as exc:
        raise CheckpointError(f"path: {str(path)!r} is not a valid ensemble: {exc}", "path") from None
    return models


def load_models(path: PathLike) -> List["LearnableMultiModal"]:
    """The models saved at ``path``: one, from a model checkpoint
    (:meth:`LearnableMultiModal.save`), or an ensemble's members
    (:func:`save_ensemble`). Errors are those of the file's loader."""
    from .checkpoint import load_checkpoint

    def load(tag: "str | None") -> List["LearnableMultiModal"]:
        if tag == ENSEMBLE_FORMAT:
            return load_ensemble(path)
        return [load_checkpoint(path)]  # any other file: the model loader says what is wrong with it

    tag, tries = format_tag(path), _TRIES
    while True:
        try:
            return load(tag)
        except CheckpointError as exc:
            # replaced by a file of the other kind since its tag was read (train --members saving over it): read that,
            # not "is not an ensemble file (its format tag is ... a model checkpoint)" of a file load_models reads. The
            # tag is the one the loader found in the file it read: read again by name, it could be the first kind's
            # again (a file saved over twice meanwhile), and that file was refused.
            found, tries = getattr(exc, "_format_found", None), tries - 1
            if found is None or found == tag or not tries:
                raise
            tag = found


#: How many times :func:`load_models` reads a file that is replaced by a file of the other kind as it reads.
_TRIES = 8


def _check_members_agree(models: Sequence["LearnableMultiModal"], arg: str, error: type) -> None:
    """Every member takes what the first does: each modality's input width
    and how it turns graphs into features (the files one embeds with an
    ensemble are read once for all its members)."""
    first = models[0].config
    for j, model in enumerate(models[1:], start=1):
        config = model.config
        if config.input_dims == first.input_dims and config.graph_features != first.graph_features:
            # the widths alone read "takes widths [5, 18, ...]; expected widths [5, 18, ...]": not what differs
            m = next(m for m, (a, b) in zip(Modality, zip(config.graph_features, first.graph_features)) if a != b)
            raise error(
                f"{arg}[{j}]: turns {m} graphs into features by {config.graph_features[m.index]!r}; expected the "
                f"same inputs as {arg}[0], which uses {first.graph_features[m.index]!r}", f"{arg}[{j}]",
            )
        if config.input_dims != first.input_dims:
            raise error(
                f"{arg}[{j}]: takes input widths {list(config.input_dims)}; expected the same inputs as {arg}[0] "
                f"(widths {list(first.input_dims)}, the same graph features)", f"{arg}[{j}]",
            )


def _check_columns_agree(models: Sequence["LearnableMultiModal"]) -> None:
    """No member was fitted on a modality's columns in another order than
    the first member whose columns are known
    (:attr:`LearnableMultiModal.input_columns`): the files one embeds with an ensemble are read once, by
    position, for all its members, and such a file was written, then every
    header refused by one member or the other ("expected them in the order
    it was trained on: w,y,x", and given that, "...: x,y,w"). Checked when
    saving only: a file saved so still loads (and embeds files without a
    header)."""
    _refuse_columns_reordered({m: [model.input_columns(m) for model in models] for m in Modality})


def _refuse_columns_reordered(columns: Mapping[Modality, Sequence[Optional[Sequence[str]]]]) -> None:
    """:func:`_check_columns_agree` of the members' column names per modality (None: not known)."""
    for m, names in columns.items():
        refuse_reordered_members(names, "models", f"the {m} columns",
                                 "the files one embeds with an ensemble are read once, by position, for all its members")
