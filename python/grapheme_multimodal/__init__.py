"""grapheme-multimodal: learnable multimodal fusion and cross-modal binding,
with its math in Rust.

>>> import grapheme_multimodal as gm
>>> model = gm.LearnableMultiModal(seed=0)
>>> event = gm.MultiModalEvent(1)
>>> event.add_component(gm.ModalGraph(gm.Graph.from_text("a cat"), gm.Modality.LINGUISTIC))
>>> model.fuse_event(event).shape
(64,)
"""

from ._core import __version__
from .batch import Batch
from .buffer import Experience, ExperienceBatch, ExperienceBuffer
from .config import LearnableMultiModalConfig
from .exceptions import (
    CheckpointError,
    EarlyStoppingSkippedWarning,
    GraphemeError,
    InvalidTypeError,
    InvalidValueError,
    NonFiniteError,
    NotFittedError,
    PrecisionLossWarning,
    ShapeError,
    TooLargeError,
    UntrainedModalityWarning,
    ConstantModalityWarning,
)
from .graph import Graph, fingerprints
from .graph import GraphFeaturizer, featurize
from .objectives import DEFAULT_WEIGHTS, OBJECTIVES
from . import _environment  # noqa: F401  (warns at import of settings the core cannot read)
from .threads import get_num_threads, set_num_threads
from .components import CrossModalBinder, FusionNetwork, ModalityAttention, ModalityEncoder, ProjectionHead
from .model import LearnableMultiModal
from .ensemble import load_ensemble, load_models, save_ensemble
from .training import History
from .types import (
    BindingType,
    CrossModalBinding,
    ModalFeatures,
    ModalGraph,
    Modality,
    MultiModalEvent,
    SpatialRegion,
)

__all__ = [
    "__version__",
    "Batch",
    "DEFAULT_WEIGHTS",
    "Experience",
    "ExperienceBatch",
    "ExperienceBuffer",
    "History",
    "OBJECTIVES",
    "BindingType",
    "CheckpointError",
    "GraphemeError",
    "InvalidTypeError",
    "InvalidValueError",
    "NonFiniteError",
    "NotFittedError",
    "PrecisionLossWarning",
    "ShapeError",
    "TooLargeError",
    "UntrainedModalityWarning",
    "ConstantModalityWarning",
    "EarlyStoppingSkippedWarning",
    "CrossModalBinder",
    "CrossModalBinding",
    "FusionNetwork",
    "Graph",
    "GraphFeaturizer",
    "LearnableMultiModal",
    "LearnableMultiModalConfig",
    "ModalFeatures",
    "ModalGraph",
    "Modality",
    "ModalityAttention",
    "ModalityEncoder",
    "MultiModalEvent",
    "ProjectionHead",
    "SpatialRegion",
    "featurize",
    "load_ensemble",
    "load_models",
    "save_ensemble",
    "fingerprints",
    "get_num_threads",
    "set_num_threads",
]


#: Names a newcomer reaches for on the package that live in a module of their own, kept out of the
#: package's import because that module needs an optional extra: ``gm.MultimodalEmbedder`` and
#: ``from grapheme_multimodal import MultimodalEmbedder`` said "has no attribute" / "cannot import
#: name", nothing of where it is. Each is imported when first asked for.
_ELSEWHERE = {"MultimodalEmbedder": "sklearn"}


def __getattr__(name: str) -> object:
    module = _ELSEWHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'grapheme_multimodal' has no attribute {name!r}")
    import importlib

    try:
        found = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    except ImportError as exc:  # its extra is not installed: an AttributeError still, as hasattr() expects
        raise AttributeError(f"module 'grapheme_multimodal' has no attribute {name!r}: {exc}") from exc
    globals()[name] = found  # asked once
    return found
