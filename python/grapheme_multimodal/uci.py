"""The package's training recipe for several views of the same events, as
used on the UCI Multiple Features digits (SPEC §3) by the demo, the
benchmark and the tests.

:func:`fit_views` is the one place that says how a model is trained from
raw views: the demo (``grapheme-mm demo``), ``benchmarks/uci_multifeature.py``
and the tests all train through it, and
:mod:`grapheme_multimodal.evaluation` measures what it returns. Each of the
six feature sets of a digit image is one modality of the same event
(:data:`VIEW_MODALITIES`); no labels are used in training.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Mapping, Optional

import numpy as np

from .evaluation import ModelEmbedder, view_modalities
from .model import LearnableMultiModal
from .types import Modality

__all__ = ["VIEW_MODALITIES", "TrainingSettings", "train", "fit_views"]

#: Which modality slot each view occupies (Action, the output modality, stays
#: empty); what :func:`~grapheme_multimodal.evaluation.view_modalities` gives
#: for the six views in order.
VIEW_MODALITIES: Dict[str, Modality] = view_modalities(("fou", "fac", "kar", "pix", "zer", "mor"))


@dataclass(frozen=True)
class TrainingSettings:
    """How :func:`train` trains.

    ``modality_dropout`` hides each view of each training row with this
    probability (fresh every step), so the model also learns from partial
    events — the fused embedding and cross-modal prediction get more varied
    remainders. ``weights`` chooses the objectives (``None``: the default
    mix, see :data:`grapheme_multimodal.objectives.DEFAULT_WEIGHTS`);
    ``fused_neighbors`` is the model's config field of that name. Everything
    random is drawn from ``seed``.
    """

    binder_kind: str = "bilinear"
    embed_dim: int = 64
    hidden_dim: int = 128
    num_heads: int = 4
    temperature: float = 0.07
    epochs: int = 40
    batch_size: int = 128
    learning_rate: float = 0.002
    modality_dropout: float = 0.5
    fused_neighbors: int = 2
    weights: Optional[Mapping[str, float]] = None
    seed: int = 0


def train(
    inputs: Mapping[str, np.ndarray],
    settings: TrainingSettings = TrainingSettings(),
    progress: bool = False,
    *,
    validation: Optional[Mapping[str, np.ndarray]] = None,
    standardize: bool = False,
) -> LearnableMultiModal:
    """A model trained with :meth:`~LearnableMultiModal.fit` on ``inputs``
    (modality name → ``[N, d]``), every view present in every row before
    dropout. ``validation`` is monitored only (``model.history``);
    ``standardize=True`` has the model learn and keep the views' statistics
    (for raw inputs), else ``inputs`` must already be standardised."""
    s = settings
    model = LearnableMultiModal(
        embed_dim=s.embed_dim,
        hidden_dim=s.hidden_dim,
        num_heads=s.num_heads,
        input_dims={m: x.shape[1] for m, x in inputs.items()},
        binder_kind=s.binder_kind,
        temperature=s.temperature,
        fused_neighbors=s.fused_neighbors,
        seed=s.seed,
    )
    model.fit(
        dict(inputs),
        validation=None if validation is None else dict(validation),
        epochs=s.epochs,
        batch_size=s.batch_size,
        objectives=s.weights,
        lr=s.learning_rate,
        modality_dropout=s.modality_dropout,
        standardize=standardize,
        progress=progress,
        seed=s.seed,
    )
    return model


def fit_views(
    views: Mapping[str, np.ndarray],
    seed: int = 0,
    *,
    settings: Optional[TrainingSettings] = None,
    validation: Optional[Mapping[str, np.ndarray]] = None,
    progress: bool = False,
) -> ModelEmbedder:
    """The recipe: a model trained on raw ``views`` (view name → ``[N, d_v]``,
    rows aligned; the model learns and keeps the standardisation), views in
    modality slots by :func:`~grapheme_multimodal.evaluation.view_modalities`.

    ``settings`` defaults to ``TrainingSettings(seed=seed)``; ``validation``
    (raw views) is monitored only. Returns a
    :class:`~grapheme_multimodal.evaluation.ModelEmbedder` (``.model`` is
    the :class:`LearnableMultiModal`), so ``fit_views`` is a
    :data:`~grapheme_multimodal.evaluation.Recipe`.
    """
    modalities = view_modalities(views)
    settings = TrainingSettings(seed=seed) if settings is None else settings
    as_inputs = lambda vs: {modalities[v]: x for v, x in vs.items()}  # noqa: E731
    model = train(
        as_inputs(views),
        settings,
        progress,
        validation=None if validation is None else as_inputs(validation),
        standardize=True,
    )
    return ModelEmbedder(model, modalities)
