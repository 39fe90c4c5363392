"""Model checkpoints: weights, config, input standardisation, Adam state,
training progress and (optionally) the experience buffer in one safetensors
file, written atomically. Loading and training on continues bit for bit."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Tuple

import numpy as np

from ._core import __version__
from .buffer import ExperienceBuffer
from .config import LearnableMultiModalConfig
from .io import PathLike, read_tagged_safetensors, write_tagged_safetensors
from .types import Modality

if TYPE_CHECKING:
    from .model import LearnableMultiModal

FILE_FORMAT = "grapheme-multimodal/checkpoint/v1"
_PARAM, _M, _V, _NORM, _EXP = "param/", "adam/exp_avg/", "adam/exp_avg_sq/", "normalization/", "experience/"


def checkpoint_state(model: "LearnableMultiModal", include_experience: bool = True) -> Tuple[Dict[str, np.ndarray], Dict[str, Any]]:
    """``(tensors, metadata)`` of everything a checkpoint holds."""
    opt = model.optimizer_state()
    tensors: Dict[str, np.ndarray] = {}
    tensors.update({_PARAM + k: v for k, v in model.state_dict().items()})
    tensors.update({_M + k: v for k, v in opt["exp_avg"].items()})
    tensors.update({_V + k: v for k, v in opt["exp_avg_sq"].items()})
    for m in Modality:
        stats = model.normalization(m)
        if stats is not None:
            tensors[f"{_NORM}{m}/mean"], tensors[f"{_NORM}{m}/std"] = stats
    meta: Dict[str, Any] = {
        "library_version": __version__,
        "config": model.config.to_dict(),
        "optimizer": {"step": opt["step"], "rng_counter": opt["rng_counter"]},
        "epochs_trained": model.epochs_trained,
        "history": model.history,
        "experience": None,
    }
    if include_experience and len(model.experience):
        exp_tensors, exp_meta = model.experience.state()
        tensors.update({_EXP + k: v for k, v in exp_tensors.items()})
        meta["experience"] = exp_meta
    return tensors, meta


def save_checkpoint(model: "LearnableMultiModal", path: PathLike, include_experience: bool = True) -> None:
    """Writes ``model`` to ``path`` (safetensors; atomic)."""
    tensors, meta = checkpoint_state(model, include_experience)
    write_tagged_safetensors(path, tensors, FILE_FORMAT, meta)


def load_checkpoint(path: PathLike) -> "LearnableMultiModal":
    """A model rebuilt from a file written by :func:`save_checkpoint`.

    A missing file is ``FileNotFoundError``; a truncated, corrupt, foreign or
    inconsistent one a ``ValueError`` that names the file."""
    tensors, meta = read_tagged_safetensors(path, FILE_FORMAT)
    try:
        return model_from_state(tensors, meta)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"path: {str(path)!r} is not a valid checkpoint: {exc}") from None


def model_from_state(tensors: Dict[str, np.ndarray], meta: Dict[str, Any]) -> "LearnableMultiModal":
    """Inverse of :func:`checkpoint_state`."""
    from .model import LearnableMultiModal

    model = LearnableMultiModal(LearnableMultiModalConfig.from_dict(meta["config"]))
    known = (_PARAM, _M, _V, _NORM, _EXP)
    stray = sorted(k for k in tensors if not k.startswith(known))
    if stray:
        raise ValueError(f"unexpected tensors {stray[:5]}")
    model.load_state_dict(_strip(tensors, _PARAM))
    opt = meta["optimizer"]
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
            raise ValueError(f"normalization of {m} has only one of mean and std")
        if mean is not None:
            model.set_normalization(m, mean, std)
    if norms:
        raise ValueError(f"unexpected normalization tensors {sorted(norms)}")
    epochs = meta["epochs_trained"]
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"epochs_trained is {epochs!r}")
    model.epochs_trained = epochs
    history = meta["history"]
    if not isinstance(history, list):
        raise ValueError("history is not a list")
    model.history = history
    if meta.get("experience") is not None:
        model.experience = ExperienceBuffer.from_state(_strip(tensors, _EXP), meta["experience"])
    return model


def _strip(tensors: Dict[str, np.ndarray], prefix: str) -> Dict[str, np.ndarray]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
