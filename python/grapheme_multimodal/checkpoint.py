"""Model checkpoints: weights, config, input standardisation, Adam state,
training progress (with which modalities trained their encoders:
``trained_rows``) and (optionally) the experience buffer in one safetensors
file, written atomically with checksums. Loading and training on continues
bit for bit.

A checkpoint is the safe way to share a model: loading one parses a header
and numbers and runs no code. A model *pickle* is Python pickle, which can run
arbitrary code when unpickled: never unpickle a file you do not trust.
"""

from __future__ import annotations

__all__ = ["FILE_FORMAT", "save_checkpoint", "load_checkpoint"]

import json
import os
import sys
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ._core import __version__, memory_budget
from ._validation import check_flag, check_model, describe, exact_int, is_int, wrong_type
from .averaging import WeightAverage
from .buffer import ExperienceBuffer
from .config import LearnableMultiModalConfig
from .exceptions import CheckpointError, InvalidValueError, TooLargeError
from .io import (
    FOREIGN_FILE_HINTS, FORMAT_NAMES, PathLike, TensorSpec, as_path, check_write_target, declared_bytes_being_read, not_enough_memory_to_write,
    read_tagged_safetensors, call_saving, write_tagged_safetensors,
)
from .io import _MAX_HEADER_BYTES, HeaderTooLargeError
from .types import Modality

if TYPE_CHECKING:
    from .model import LearnableMultiModal

FILE_FORMAT = "grapheme-multimodal/checkpoint/v1"
FORMAT_NAMES[FILE_FORMAT] = ": a model checkpoint, which LearnableMultiModal.load reads"
#: The first component of every name in a model's ``state_dict()``.
_STATE_DICT_PARTS = frozenset(("encoder", "fusion", "binder", "attention", "head", "reconstruction", "contrastive",
                               "fused_contrastive", "normalization"))


def _state_dict_hint(names: Sequence[str]) -> str:
    """What :func:`~grapheme_multimodal.io.read_tagged_safetensors` adds when
    a file of another program given to ``LearnableMultiModal.load`` holds
    tensors named as a model's ``state_dict()`` names them: it is a state
    dict (``safetensors.numpy.save_file(model.state_dict(), path)``), which
    was refused as "written by another program" with nothing said of how to
    read it. It stays refused: without the config, no model can be built."""
    if not names or not all(isinstance(n, str) and n.partition(".")[0] in _STATE_DICT_PARTS and "." in n for n in names):
        return ""
    shown = ", ".join(repr(n) for n in list(names)[:2]) + (", ..." if len(names) > 2 else "")
    return (f"; its tensors ({shown}) are named as a model's state_dict() names them: it holds a state dict, "
            "parameters (and the inputs' standardisation) without the config a checkpoint keeps, from which load cannot build a model; a model of "
            "the config it was saved from reads it: model.load_state_dict(safetensors.numpy.load_file(path))")


FOREIGN_FILE_HINTS[FILE_FORMAT] = _state_dict_hint
_PARAM, _M, _V, _NORM, _EXP = "param/", "adam/exp_avg/", "adam/exp_avg_sq/", "normalization/", "experience/"
_AVG_MEAN, _AVG_TRAINED = "weight_average/mean/", "weight_average/trained/"
#: The metadata keys of a checkpoint, all required.
METADATA_KEYS = ("library_version", "config", "optimizer", "epochs_trained", "history", "experience")
#: Written only when there is something to say (files without them load as before):
#: ``trained_rows`` (per modality name, the rows that trained its encoder) when it is
#: known, unless nothing trained (a file without it loads with none trained when its
#: model had not trained at all, else with the record unknown, None), and ``null``
#: when it is not known of a model that has not trained itself (weights loaded into it);
#: ``trained_without_encoders`` (``true``) beside rows that are all 0 when the model
#: took training steps that reached no encoder (recorded embeddings): it warns of
#: its untrained encoders as it did before saving (a file without it, with all 0,
#: loads as a model that never trained, which does not warn);
#: ``input_columns`` (per modality name, the str column names of the data frame it was
#: first learned from: ``LearnableMultiModal.input_columns``) when any are known (a file
#: without it loads with none known, and frames are not checked, as before).
OPTIONAL_METADATA_KEYS = ("weight_average", "trained_rows", "trained_without_encoders", "input_columns")


def checkpoint_state(
    model: "LearnableMultiModal", include_experience: bool = True, include_history: bool = True
) -> Tuple[Dict[str, np.ndarray], Dict[str, Any]]:
    """``(tensors, metadata)`` of everything a checkpoint holds, read in one
    consistent state (no training step lands halfway). ``epochs_trained``
    and ``history`` (public attributes) are checked as loading checks them,
    an :class:`InvalidValueError` naming them otherwise: a save wrote, over
    the previous checkpoint, a file that load refused. Without
    ``include_history`` the history is left out (and unchecked): a replica
    that only trains needs none of it."""
    with model._lock.reading():
        opt = model.optimizer_state()
        tensors: Dict[str, np.ndarray] = {}
        tensors.update({_PARAM + k: v for k, v in model._parameters().items()})
        tensors.update({_M + k: v for k, v in opt["exp_avg"].items()})
        tensors.update({_V + k: v for k, v in opt["exp_avg_sq"].items()})
        for m in Modality:
            stats = model.normalization(m)
            if stats is not None:
                tensors[f"{_NORM}{m}/mean"], tensors[f"{_NORM}{m}/std"] = stats
        columns = model._input_columns
        # Read once (a public attribute, which another thread may assign meanwhile): read again below, the
        # record of trained modalities was written for another count than the file's epochs_trained.
        epochs = _checked_epochs(model.epochs_trained, "model.epochs_trained")
        meta: Dict[str, Any] = {
            "library_version": __version__,
            "config": model.config.to_dict(),
            "optimizer": {"step": opt["step"], "rng_counter": opt["rng_counter"]},
            "epochs_trained": epochs,
            "history": [dict(record) for record in _checked_history(model.history, "model.history")] if include_history else [],
            "experience": None,
        }
        trained, stepped = model._core.trained_rows(), model._core.has_trained()
        progressed = _has_trained(opt["step"], opt["rng_counter"], epochs)
        if trained is not None and (stepped or progressed):
            meta["trained_rows"] = {str(m): int(n) for m, n in zip(Modality, trained)}
            if stepped and not any(trained):
                meta["trained_without_encoders"] = True
        elif trained is None and not progressed:
            # Not known (encoder weights loaded from elsewhere, or Adam's state reset to none) with no
            # progress to show for it: said so, as null. Left out, the file loaded as a model that never
            # trained, whose next steps' modalities made the others warn as untrained encoders.
            meta["trained_rows"] = None
        if any(names is not None for names in columns):
            meta["input_columns"] = {str(m): list(names) for m, names in zip(Modality, columns) if names is not None}
        average = model._weight_average
        if average is not None and average.trained is None:
            # fit is running, its average not applied (a metrics function saves): written as
            # fit leaves the model stopped after this epoch, so it loads and trains on as that
            average = average.applied_to(_strip(tensors, _PARAM))
            tensors.update({_PARAM + k: v for k, v in average.averaged_weights().items()})
        if average is not None and average.holds(_strip(tensors, _PARAM)):
            # The weights are fit's average; the trained ones go on training (averaging.py).
            tensors.update({_AVG_MEAN + k: v for k, v in average.mean.items()})
            tensors.update({_AVG_TRAINED + k: v for k, v in average.trained.items()})
            meta["weight_average"] = average.metadata()
        if include_experience:  # empty too: its generator, capacity and seed are the user's
            exp_tensors, exp_meta = model.experience.state()
            tensors.update({_EXP + k: v for k, v in exp_tensors.items()})
            meta["experience"] = exp_meta
    return tensors, meta


def save_checkpoint(model: "LearnableMultiModal", path: PathLike, include_experience: bool = True) -> None:
    """Writes ``model`` to ``path`` (safetensors with checksums; atomic)."""
    # as model.save checks them: "no" wrote the buffer it meant to leave out, a str model "no attribute '_lock'"
    check_model(model)
    include_experience = check_flag(include_experience, "include_experience")
    check_write_target(path)  # before copying the state: a bad path fails at once

    def write() -> None:
        try:
            tensors, meta = checkpoint_state(model, include_experience)
        except MemoryError as exc:  # the copy of a large experience buffer
            if isinstance(exc, TooLargeError):
                raise
            raise not_enough_memory_to_write(path) from None
        try:
            write_tagged_safetensors(path, tensors, FILE_FORMAT, meta)
        except HeaderTooLargeError as exc:
            if exc.arg != "history":  # the header safetensors cannot hold: said of the model's history
                raise
            raise InvalidValueError(
                f"model.history: {len(meta['history']):,} epoch records, {len(json.dumps(meta['history'])):,} bytes of the "
                f"file's header, would take it past the {_MAX_HEADER_BYTES:,} bytes a safetensors file may hold; nothing "
                f"was written to {os.fspath(path)!r}; expected fewer records (model.history = model.history[-100_000:] "
                "keeps the last)", "model.history",
            ) from None

    call_saving(path, write)  # from here: the interpreter's exit waits for it


def load_checkpoint(path: PathLike) -> "LearnableMultiModal":
    """A model rebuilt from a file written by :func:`save_checkpoint`.

    A missing file is ``FileNotFoundError``; a file that is not a regular
    file, truncated, corrupt (checksum mismatch), foreign, or inconsistent
    (tensors that do not fit its config, float16/int/bool weights,
    non-finite values, invalid metadata) a :class:`CheckpointError` naming
    the file; a config too large for memory a :class:`TooLargeError` naming
    the file too. The header is checked before any tensor is read."""
    # as a Path: an os.PathLike that is not one (os.DirEntry) was named in errors by its repr, not its file
    path = as_path(path)
    built: Dict[str, "LearnableMultiModal"] = {}

    def expected(meta: Dict[str, Any]) -> Dict[str, TensorSpec]:
        try:
            built["model"] = _new_model(meta, slack=_ONE_MODEL_SLACK)
            return checkpoint_specs(built["model"], meta)
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, TooLargeError):
                raise too_large_in_file(exc, path) from None
            if not _version_note(meta):
                raise
            raise InvalidValueError(f"{_text(exc)}{_version_note(meta)}", getattr(exc, "arg", None) or "path") from None

    tensors, meta = read_tagged_safetensors(path, FILE_FORMAT, expected)
    try:
        return _restore(built["model"], tensors, meta)
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, TooLargeError):
            raise too_large_in_file(exc, path) from None
        raise CheckpointError(f"path: {str(path)!r} is not a valid checkpoint: {_text(exc)}{_version_note(meta)}", "path") from None


def too_large_in_file(exc: TooLargeError, path: PathLike, where: str = "") -> TooLargeError:
    """``exc`` (a size in a file's metadata too large for memory, "hidden_dim:
    ... would need 425.6 TiB") as a :class:`TooLargeError` that names the
    file (and ``where`` in it, ``"members[1]: "``): it named only the
    field, and not which file the user loaded (the command line said
    nothing of its checkpoint)."""
    return TooLargeError(f"path: {os.fspath(path)!r}: {where}{exc}", "path")


def model_from_state(
    tensors: Mapping[str, Any], meta: Mapping[str, Any], gradients: Any = None, pending_rows: Any = None
) -> "LearnableMultiModal":
    """Inverse of :func:`checkpoint_state` (also what unpickling runs), with
    ``gradients`` (flat float32, layout order) as the accumulated gradients
    when given, of batches whose encoder rows (per slot) were
    ``pending_rows`` (which the next ``step`` records; None: none). Bad
    input is a :class:`CheckpointError` (or :class:`TooLargeError`)."""
    try:
        if not isinstance(tensors, Mapping):
            raise InvalidValueError(f"tensors: expected a mapping name -> array, got {type(tensors).__name__}", "tensors")
        model = _new_model(meta)
        specs = checkpoint_specs(model, meta)
        unknown = sorted(set(tensors) - set(specs))
        missing = sorted(n for n, s in specs.items() if s.required and n not in tensors)
        if unknown or missing:
            raise InvalidValueError(f"tensors: missing {missing[:5]}, unexpected {unknown[:5]}", "tensors")
        for name, value in tensors.items():
            spec = specs[name]
            if not isinstance(value, np.ndarray) or value.dtype != np.dtype(spec.dtype) or value.shape != spec.shape:
                got = f"{value.dtype} of shape {value.shape}" if isinstance(value, np.ndarray) else type(value).__name__
                raise InvalidValueError(f"tensor {name!r}: expected {spec.dtype} of shape {spec.shape}, got {got}", name)
        model = _restore(model, dict(tensors), meta)
        if gradients is not None:
            if not isinstance(gradients, np.ndarray) or gradients.dtype != np.float32 or gradients.shape != (model.num_parameters(),):
                raise InvalidValueError(
                    f"gradients: expected float32 of shape ({model.num_parameters()},), got {describe(gradients)}", "gradients"
                )
            if pending_rows is not None and not (
                isinstance(pending_rows, (list, tuple)) and len(pending_rows) == len(Modality)
                and all(not isinstance(n, bool) and isinstance(n, int) and 0 <= n < 2**64 for n in pending_rows)
            ):
                raise InvalidValueError(
                    f"pending_rows: expected an int >= 0 for each of the {len(Modality)} modalities, got {describe(pending_rows)}",
                    "pending_rows",
                )
            model._core.set_flat_grad(gradients, pending_rows)
        elif pending_rows is not None:
            raise InvalidValueError("pending_rows: given without gradients; expected them only beside gradients", "pending_rows")
        return model
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, TooLargeError):
            raise
        raise CheckpointError(f"state: not a valid model state: {_text(exc)}", "state") from None


def checkpoint_specs(model: "LearnableMultiModal", meta: Mapping[str, Any]) -> Dict[str, TensorSpec]:
    """``{name: TensorSpec}`` of the tensors a checkpoint of ``model`` (built
    from ``meta``'s config) holds: every parameter and both Adam moments,
    float32 of the parameter's shape; optional standardisation vectors; the
    experience buffer's tensors when ``meta`` records one; the weight
    average (float64) and the trained weights when ``meta`` records one."""
    specs: Dict[str, TensorSpec] = {}
    averaged = meta.get("weight_average") is not None
    for name, shape in model.parameter_shapes().items():
        for prefix in (_PARAM, _M, _V):
            specs[prefix + name] = TensorSpec("float32", shape)
        if averaged:
            specs[_AVG_MEAN + name] = TensorSpec("float64", shape)
            specs[_AVG_TRAINED + name] = TensorSpec("float32", shape)
    for m in Modality:
        for stat in ("mean", "std"):
            specs[f"{_NORM}{m}/{stat}"] = TensorSpec("float32", (model.config.input_dim(m),), required=False)
    if meta["experience"] is not None:
        specs.update({_EXP + k: v for k, v in ExperienceBuffer.expected_tensors(meta["experience"], "experience.").items()})
    return specs


def parameter_count(config: LearnableMultiModalConfig) -> int:
    """The parameters of a model of ``config``, counted from the config
    alone (nothing is built): the core's layout (``LearnableMultiModal::new``
    in rust/core/src/model.rs) of each modality's encoder (its layers,
    its skip path), the shared head, the fusion network, the binder, the
    attention's four matrices, the learned temperatures and the
    reconstruction decoders. ``tests`` hold it to ``num_parameters()``."""
    e, h = config.embed_dim, config.hidden_dim
    out = config.encoder_output_dim or e
    n = 0
    for d in config.input_dims:
        fan_in = d
        for width in (*config.encoder_hidden, out):
            n += fan_in * width + width
            fan_in = width
        if config.encoder_skip:
            n += out * d
    fan_in = out
    for width in config.shared_head:
        n += fan_in * width + width
        fan_in = width
    n += len(config.input_dims) * e * e + e + e * h + h + h * e + e  # fusion: [7E -> E -> H -> E]
    n += (2 * e if config.binder_kind == "additive" else e * e) + 1
    n += 4 * e * e  # attention q, k, v, o
    n += 2 if config.learnable_temperature else 0
    if config.reconstruction_decoders:
        n += sum(d * e + d for d in config.input_dims)
    return n


#: Bytes a checkpoint holds at least per parameter: the float32 weight and
#: Adam's two float32 moments (each required).
_FILE_BYTES_PER_PARAMETER = 12
#: Bytes a built model takes per parameter: the core's weights, gradients,
#: Adam's moments and staging buffers (``STATE_BUFFERS`` float32s each).
_MODEL_BYTES_PER_PARAMETER = 36


#: What one model's check leaves to the tensor-by-tensor check that follows
#: (bytes of model built beyond three times the file's tensors): a checkpoint
#: of a slightly other config is told which tensor differs, and building it
#: costs little. An ensemble's members get none (a list of them would add it up).
_ONE_MODEL_SLACK = 64 * 2**20


def _new_model(meta: Mapping[str, Any], prefix: str = "", slack: int = 0) -> "LearnableMultiModal":
    """A fresh model of ``meta``'s config, after checking the metadata keys
    (its buffer's capacity not refused up front: see :func:`~grapheme_multimodal.model._built_for_saved_state`)
    and, while a file is read, that the file holds the tensors (names
    beginning with ``prefix``) such a model needs (its weights and Adam
    moments, 12 bytes a parameter; a model past that by more than ``slack``
    bytes built is refused): else a forged config built a model (weights
    and training state, 36 bytes a parameter) far larger than the file
    before its tensors were found not to fit it."""
    from .model import _built_for_saved_state

    if not isinstance(meta, Mapping):
        raise InvalidValueError(f"metadata: expected a mapping, got {type(meta).__name__}", "metadata")
    missing = [k for k in METADATA_KEYS if k not in meta]
    unknown = sorted(set(meta) - set(METADATA_KEYS) - set(OPTIONAL_METADATA_KEYS))
    if missing or unknown:
        raise InvalidValueError(f"metadata: missing keys {missing}, unexpected keys {unknown}", "metadata")
    config = meta["config"]
    if not isinstance(config, Mapping):
        raise InvalidValueError(f"config: expected a mapping, got {type(config).__name__}", "config")
    config = LearnableMultiModalConfig.from_dict(config)
    held = declared_bytes_being_read(prefix)
    if held is not None:
        params = parameter_count(config)
        # a model past memory is left to the core, which refuses it before allocating (TooLargeError naming the field)
        built = _MODEL_BYTES_PER_PARAMETER * params
        cover = _MODEL_BYTES_PER_PARAMETER // _FILE_BYTES_PER_PARAMETER * held  # what a true file's tensors build
        if _FILE_BYTES_PER_PARAMETER * params > held and built > cover + slack and built <= memory_budget():
            raise InvalidValueError(
                f"config: makes a model of {params:,} parameters, whose weights and Adam moments take "
                f"{_FILE_BYTES_PER_PARAMETER * params:,} bytes, but the file holds {held:,} bytes of its tensors", "config",
            )
    return _built_for_saved_state(config)


def _restore(model: "LearnableMultiModal", tensors: Dict[str, np.ndarray], meta: Mapping[str, Any]) -> "LearnableMultiModal":
    """Fills the fresh ``model`` (of ``meta``'s config) from checked tensors."""
    model._load_state_dict(_strip(tensors, _PARAM))
    opt = meta["optimizer"]
    if not isinstance(opt, Mapping) or set(opt) != {"step", "rng_counter"}:
        raise InvalidValueError(f"optimizer: expected {{'step': int, 'rng_counter': int}}, got {opt!r}", "optimizer")
    model.load_optimizer_state(
        {
            "step": opt["step"],
            "rng_counter": opt["rng_counter"],
            "exp_avg": _strip(tensors, _M),
            "exp_avg_sq": _strip(tensors, _V),
        }
    )
    norms = _strip(tensors, _NORM)
    for m in Modality:
        mean, std = norms.pop(f"{m}/mean", None), norms.pop(f"{m}/std", None)
        if (mean is None) != (std is None):
            raise InvalidValueError(f"normalization of {m} has only one of mean and std", "normalization")
        if mean is not None:
            model.set_normalization(m, mean, std)
    model.epochs_trained = _checked_epochs(meta["epochs_trained"])
    model.history = _checked_history(meta["history"])
    model._set_trained_rows(*_checked_trained_rows(meta, opt))
    model._input_columns = _checked_input_columns(meta.get("input_columns"), model.config)
    if meta["experience"] is not None:
        buffer = ExperienceBuffer.from_state(_strip(tensors, _EXP), meta["experience"])
        try:
            model.experience = buffer
        except InvalidValueError:
            # Past the setter's check of its dims: a file saved before that check
            # may hold a buffer of other dims, and it loads as it was saved.
            vars(model)["experience"] = buffer
    if meta.get("weight_average") is not None:
        model._weight_average = WeightAverage.from_checkpoint(
            meta["weight_average"], _strip(tensors, _AVG_MEAN), _strip(tensors, _AVG_TRAINED), _strip(tensors, _PARAM)
        )
    return model


def _checked_epochs(epochs: Any, name: str = "epochs_trained") -> int:
    """``epochs`` when it is an int >= 0 (a numpy int as a Python int); else
    a ``TypeError`` for another type, an :class:`InvalidValueError` for a
    negative int (a file's, when loading: either is a :class:`CheckpointError` then)."""
    if not is_int(epochs):
        raise wrong_type(name, "an int >= 0", epochs)
    epochs = exact_int(epochs)  # a 0-d array too: the int it holds
    if epochs < 0:
        raise InvalidValueError(f"{name}: expected an int >= 0, got {epochs!r}", name)
    return epochs


def _checked_trained_rows(meta: Mapping[str, Any], opt: Mapping[str, Any]) -> Tuple[Optional[List[int]], bool]:
    """The record of trained modalities of ``meta``: ``(rows per slot, whether
    steps that reached no encoder were taken)``, from its ``trained_rows``
    (every modality name to an int >= 0, or null: not known) and
    ``trained_without_encoders`` (``true``, only beside rows that are all 0);
    without ``trained_rows`` (a file from before the record), none trained
    when nothing had (no step, no gradient, no epoch), else None (not known)."""
    rows = meta.get("trained_rows")
    without = meta.get("trained_without_encoders")
    if rows is None:
        if without is not None:
            raise InvalidValueError(
                "trained_without_encoders: given without trained_rows; expected it only beside them", "trained_without_encoders"
            )
        if "trained_rows" in meta:  # null: written as not known
            return None, False
        known = not _has_trained(opt["step"], opt["rng_counter"], meta["epochs_trained"])
        return ([0] * len(Modality) if known else None), False
    names = [str(m) for m in Modality]
    # compared as sets: sorted() of keys 1 beside "a" raised "'<' not supported" in place of this error
    if not isinstance(rows, Mapping) or set(rows) != set(names) or not all(
        not isinstance(n, bool) and isinstance(n, int) and 0 <= n < 2**64 for n in rows.values()
    ):
        raise InvalidValueError(f"trained_rows: expected an int >= 0 for each of {names}, got {rows!r:.200}", "trained_rows")
    if without is not None and (without is not True or any(rows.values())):
        raise InvalidValueError(
            f"trained_without_encoders: expected true, and only beside trained_rows that are all 0; got {without!r:.40} "
            f"beside {rows!r:.200}", "trained_without_encoders",
        )
    return [rows[name] for name in names], without is True


def _checked_input_columns(columns: Any, config: LearnableMultiModalConfig) -> Tuple[Optional[Tuple[str, ...]], ...]:
    """The per-slot column names of a file's ``input_columns`` (absent or
    null: none known): modality names to lists of str, one per input of
    that modality."""
    known: List[Optional[Tuple[str, ...]]] = [None] * len(Modality)
    if columns is None:
        return tuple(known)
    names = [str(m) for m in Modality]
    if not isinstance(columns, Mapping) or not set(columns) <= set(names):
        raise InvalidValueError(
            f"input_columns: expected a mapping of modality names ({names}) to lists of column names, got {columns!r:.200}",
            "input_columns",
        )
    for m in Modality:
        given = columns.get(str(m))
        if given is None:
            continue
        width = config.input_dim(m)
        if not isinstance(given, list) or len(given) != width or not all(isinstance(c, str) for c in given):
            raise InvalidValueError(
                f"input_columns[{str(m)!r}]: expected a list of {width} column names (str), got {given!r:.200}",
                "input_columns",
            )
        known[m.index] = tuple(given)
    return tuple(known)


def _has_trained(step: int, rng_counter: int, epochs_trained: int) -> bool:
    """Whether a model with this progress has trained: an Adam step, a
    gradient computed, or an epoch of fit (a file of a model without any
    says nothing of trained modalities: none were)."""
    return bool(step or rng_counter or epochs_trained)


def _checked_history(history: Any, name: str = "history") -> list:
    """``history`` when it is a list of epoch records (str keys, number values)."""
    if not isinstance(history, list):
        raise InvalidValueError(f"{name}: expected a list of epoch records, got {type(history).__name__}", name)
    if _plain_records(history):  # what fit writes: every fit checks the whole history, so this is kept cheap
        return history
    for i, record in enumerate(history):
        if not isinstance(record, dict):
            got = f"{record!r:.80}"
        else:
            bad = next(((k, v) for k, v in record.items() if not (isinstance(k, str) and _is_number(v))), None)
            if bad is None:
                continue
            key, value = bad
            if isinstance(key, str):
                got = f"{value!r:.40} ({type(value).__name__}) under {key!r:.40} in {record!r:.80}"
            else:  # the value may be a number: said "got 2.0 (float) under 1", the key's fault put on the value
                got = f"the name {key!r:.40} ({type(key).__name__}), not a str, in {record!r:.80}"
        raise InvalidValueError(f"{name}[{i}]: expected a record of numbers by name (floats, or ints a float holds), got {got}", name)
    return history


def _plain_records(history: list) -> bool:
    """Whether every record of ``history`` is a dict of str names to floats
    and ints a float holds, by exact types (no call per value; about 4x
    faster than :func:`_is_number` on each). False leaves the verdict, and
    the error, to the full check."""
    if not set(map(type, history)) <= {dict}:
        return False
    if not {type(k) for record in history for k in record} <= {str}:
        return False
    if not {type(v) for record in history for v in record.values()} <= {float, int}:
        return False
    return max((abs(v) for record in history for v in record.values() if type(v) is int), default=0) <= sys.float_info.max


def _is_number(value: Any) -> bool:
    """A float, or an int a float can hold (JSON's ints are unbounded: a
    10**400 made every reader that formats or averages it overflow)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return isinstance(value, float) or abs(value) <= sys.float_info.max


def _strip(tensors: Mapping[str, np.ndarray], prefix: str) -> Dict[str, np.ndarray]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def _version_note(meta: Any) -> str:
    """Which version wrote a refused file, when it is not this one: a config
    field or metadata key a newer version added is otherwise just "unknown"."""
    version = meta.get("library_version") if isinstance(meta, Mapping) else None
    if not isinstance(version, str) or version == __version__:
        return ""
    return f" (the file was written by grapheme-multimodal {version:.40}; this is {__version__})"


def _text(exc: BaseException) -> str:
    """An exception's message (a KeyError's names the missing key)."""
    return f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
