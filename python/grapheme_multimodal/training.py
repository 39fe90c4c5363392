"""``fit()``: epochs of shuffled mini-batches with a progress bar, modality
dropout, input standardisation, validation and early stopping.

Every random choice (each epoch's shuffle and dropout) is drawn from a
generator seeded by ``(seed, epoch number)``, and the objectives' own draws
from the model's counter, so ``fit(epochs=2)`` twice — even across a
save/load — gives the same model as ``fit(epochs=4)``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np

from ._core import NUM_MODALITIES
from .batch import Batch, event_components
from .buffer import ExperienceBuffer
from .objectives import OBJECTIVES
from .types import MultiModalEvent

if TYPE_CHECKING:
    from .model import LearnableMultiModal

Metric = Callable[["LearnableMultiModal"], float]


@dataclass
class History:
    """What :func:`fit` did: one record per epoch (``epoch``, ``loss`` — the
    mean weighted total — each objective's mean, ``val_*`` losses and
    metrics, ``seconds``), the best epoch and whether it stopped early."""

    epochs: List[Dict[str, Any]] = field(default_factory=list)
    monitor: Optional[str] = None
    best_epoch: Optional[int] = None
    stopped_early: bool = False

    def __getitem__(self, key: str) -> List[float]:
        """``history["loss"]`` → that value per epoch."""
        return [e[key] for e in self.epochs if key in e]

    def plot(self, path: Any, title: str = "training") -> None:
        """Draws the loss curves (and validation curves) to a PNG (needs
        matplotlib: ``pip install grapheme-multimodal[plot]``)."""
        from .plotting import plot_history

        plot_history(self.epochs, path, title=title, best_epoch=self.best_epoch)


def fit(
    model: "LearnableMultiModal",
    data: Any,
    *,
    mask: Any = None,
    epochs: int = 10,
    batch_size: int = 64,
    objectives: Optional[Mapping[str, float]] = None,
    lr: Optional[float] = None,
    validation: Any = None,
    validation_mask: Any = None,
    metrics: Optional[Mapping[str, Metric]] = None,
    early_stopping: Optional[int] = None,
    monitor: Optional[str] = None,
    mode: Optional[str] = None,
    modality_dropout: float = 0.0,
    standardize: bool = True,
    progress: bool = True,
    seed: Optional[int] = None,
    _steps: Optional[Callable[..., "Steps"]] = None,
) -> History:
    """Trains ``model`` on ``data``.

    Args:
        data: per-modality arrays ``{modality: [N, d_m]}`` (with ``mask``
            ``[N, 7]``), a list of :class:`MultiModalEvent`, or an
            :class:`ExperienceBuffer` (its raw inputs when every experience
            has them — the encoders then learn too — else its recorded
            embeddings, fused embeddings and rewards).
        epochs, batch_size: passes over ``data`` and rows per step (the last
            batch of an epoch may be smaller; batches of one row are skipped
            when the epoch has more).
        objectives: objective weights (default: the default mix; see
            :mod:`grapheme_multimodal.objectives`).
        lr: Adam step size (default ``config.learning_rate``).
        validation: data of the same kind, evaluated after every epoch:
            ``val_total`` and ``val_<objective>`` losses.
        metrics: extra validation metrics, ``{name: fn(model) -> float}``,
            recorded as ``val_<name>``.
        early_stopping: stop after this many epochs without improvement of
            ``monitor`` (default ``val_total`` with validation, else
            ``loss``) and restore the best epoch's weights and optimizer
            state. ``mode`` is ``"min"`` or ``"max"`` (default: ``"max"`` for
            custom metrics, ``"min"`` for losses).
        modality_dropout: probability of hiding each present modality of a
            row during training (never the row's last one), so fused
            embeddings stay good when modalities are missing.
        standardize: learn each modality's input mean and std from ``data``
            before the first epoch, unless the model already has them
            (stored in the model, applied at encode time, saved with it).
        progress: show a tqdm progress bar with the running loss.
        seed: seeds shuffling and dropout (default ``config.seed``).
        _steps: internal: makes the :class:`Steps` that take each step
            (default :class:`LocalSteps`, in this process);
            :func:`grapheme_multimodal.distributed.fit` passes Ray workers.

    Returns:
        The :class:`History` of this call (also appended to ``model.history``).
    """
    _check_int(epochs, "epochs", 0)
    _check_int(batch_size, "batch_size", 1)
    if not (isinstance(modality_dropout, (int, float)) and 0 <= modality_dropout < 1):
        raise ValueError(f"modality_dropout: expected a number in [0, 1), got {modality_dropout!r}")
    if early_stopping is not None:
        _check_int(early_stopping, "early_stopping", 1)
    seed = model.config.seed if seed is None else seed
    _check_int(seed, "seed", 0)

    train = as_dataset(model, data, mask, "data")
    val = as_dataset(model, validation, validation_mask, "validation") if validation is not None else None
    if standardize and train.has_inputs and all(model.normalization(m) is None for m in range(NUM_MODALITIES)):
        train.fit_normalization(model)

    monitor = monitor or ("val_total" if val is not None else "loss")
    if mode is None:
        losses = {"loss", "total", *OBJECTIVES}
        mode = "min" if monitor in losses or (monitor.startswith("val_") and monitor[4:] in losses) else "max"
    if mode not in ("min", "max"):
        raise ValueError(f"mode: expected 'min' or 'max', got {mode!r}")
    history = History(monitor=monitor)
    best_value, best_state, waited = None, None, 0

    stepper = (_steps or LocalSteps)(model, train, objectives, lr)
    bar = _progress_bar(progress, epochs * train.num_batches(batch_size))
    try:
        for _ in range(epochs):
            epoch = model.epochs_trained
            rng = np.random.Generator(np.random.PCG64([seed, epoch]))
            start = time.perf_counter()
            sums: Dict[str, float] = {}
            steps = 0
            for rows in train.batches(batch_size, rng):
                keep = _dropout_mask(train.mask_of(rows), modality_dropout, rng)
                losses = stepper.step(rows, keep)
                for k, v in losses.items():
                    sums[k] = sums.get(k, 0.0) + v
                steps += 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(epoch=epoch + 1, loss=f"{losses['total']:.4f}")
            stepper.end_epoch()
            model.epochs_trained += 1
            record: Dict[str, Any] = {"epoch": model.epochs_trained}
            record.update({("loss" if k == "total" else k): v / max(steps, 1) for k, v in sums.items()})
            if val is not None:
                record.update({f"val_{k}": v for k, v in val.losses(model, objectives).items()})
            for name, metric in (metrics or {}).items():
                record[f"val_{name}"] = float(metric(model))
            if model.config.learnable_temperature:
                record.update({f"temperature_{k}": v for k, v in model.temperatures().items()})
            record["seconds"] = time.perf_counter() - start
            history.epochs.append(record)
            model.history.append(record)

            value = record.get(monitor)
            if value is None:
                raise ValueError(f"monitor: {monitor!r} is not recorded; recorded: {sorted(record)}")
            if best_value is None or (value < best_value if mode == "min" else value > best_value):
                best_value, waited, history.best_epoch = value, 0, record["epoch"]
                if early_stopping is not None:
                    best_state = (model.state_dict(), model.optimizer_state())
            else:
                waited += 1
                if early_stopping is not None and waited >= early_stopping:
                    history.stopped_early = True
                    break
    finally:
        stepper.close()
        if bar is not None:
            bar.close()
    if best_state is not None and history.best_epoch != model.epochs_trained:
        model.load_state_dict(best_state[0])
        model.load_optimizer_state(best_state[1])
    return history


# --------------------------------------------------------------------- steps
class Steps:
    """How :func:`fit` takes its training steps: made once per call (after
    standardisation, before the first step) from ``(model, train,
    objectives, lr)``; ``model`` must hold the new weights, optimizer state
    and ``rng_counter`` after each :meth:`end_epoch`."""

    def step(self, rows: np.ndarray, keep: Optional[np.ndarray]) -> Dict[str, float]:
        """One step on the rows ``rows`` of the training data (``keep``: the
        modality dropout mask); returns the losses and their ``"total"``."""
        raise NotImplementedError

    def end_epoch(self) -> None:
        """Called after each epoch's last step, before validation."""

    def close(self) -> None:
        """Called once when :func:`fit` ends, whatever the outcome."""


class LocalSteps(Steps):
    """Each step is ``model.train_step`` in this process."""

    def __init__(
        self, model: "LearnableMultiModal", train: "_Dataset", objectives: Optional[Mapping[str, float]], lr: Optional[float]
    ) -> None:
        self.model, self.train, self.objectives, self.lr = model, train, objectives, lr

    def step(self, rows: np.ndarray, keep: Optional[np.ndarray]) -> Dict[str, float]:
        return self.model.train_step(self.train.batch(rows, keep), weights=self.objectives, lr=self.lr)


# ------------------------------------------------------------------ datasets
class _Dataset:
    """Rows of training data, batched by index. Holds arrays only (no
    model), so it pickles cheaply: Ray workers share one copy."""

    has_inputs = True

    def __len__(self) -> int:
        raise NotImplementedError

    def num_batches(self, batch_size: int) -> int:
        return math.ceil(len(self) / batch_size)

    def batches(self, batch_size: int, rng: Optional[np.random.Generator]) -> List[np.ndarray]:
        """Row indices per batch, shuffled by ``rng`` (in order without). A
        trailing batch of one row joins the previous one: the contrastive
        objectives need at least two rows."""
        order = rng.permutation(len(self)) if rng is not None else np.arange(len(self))
        chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        if len(chunks) > 1 and len(chunks[-1]) == 1:
            chunks[-2] = np.concatenate(chunks[-2:])
            chunks.pop()
        return chunks

    def mask_of(self, rows: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def batch(self, rows: np.ndarray, keep: Optional[np.ndarray]) -> Batch:
        raise NotImplementedError

    def fit_normalization(self, model: "LearnableMultiModal") -> None:
        raise NotImplementedError

    def losses(self, model: "LearnableMultiModal", objectives: Optional[Mapping[str, float]]) -> Dict[str, float]:
        """Validation losses over the whole set, in batches (weighted by size)."""
        totals: Dict[str, float] = {}
        for rows in self.batches(1024, None):
            for k, v in model.losses(self.batch(rows, None), weights=objectives).items():
                totals[k] = totals.get(k, 0.0) + v * len(rows)
        return {k: v / len(self) for k, v in totals.items()}


class _ArrayDataset(_Dataset):
    def __init__(self, model: "LearnableMultiModal", inputs: Any, mask: Any) -> None:
        self.arrays, self.mask = model.prepare_inputs(inputs, mask)

    def __len__(self) -> int:
        return len(self.mask)

    def mask_of(self, rows: np.ndarray) -> np.ndarray:
        return self.mask[rows]

    def batch(self, rows: np.ndarray, keep: Optional[np.ndarray]) -> Batch:
        mask = self.mask[rows] if keep is None else self.mask[rows] & keep
        return Batch(inputs=[None if a is None else a[rows] for a in self.arrays], mask=mask)

    def fit_normalization(self, model: "LearnableMultiModal") -> None:
        model.fit_normalization(self.arrays, self.mask)


class _EventDataset(_Dataset):
    """Events featurised once into per-modality component tables, so a batch
    is a few numpy gathers (no per-event Python work per step)."""

    def __init__(self, model: "LearnableMultiModal", events: Sequence[MultiModalEvent]) -> None:
        self.n = len(events)
        self.tables = []
        for table in event_components(model.config, events, "data"):
            if table is not None:
                # Event i's components are rows starts[i]:starts[i + 1] of the table.
                starts = np.concatenate(([0], np.cumsum(np.bincount(table[1], minlength=self.n))))
                table = table + (starts,)
            self.tables.append(table)
        self.mask = np.zeros((self.n, NUM_MODALITIES), bool)
        for m, t in enumerate(self.tables):
            if t is not None:
                self.mask[t[1], m] = True

    def __len__(self) -> int:
        return self.n

    def mask_of(self, rows: np.ndarray) -> np.ndarray:
        return self.mask[rows]

    def batch(self, rows: np.ndarray, keep: Optional[np.ndarray]) -> Batch:
        # Work in the batch's size, not the dataset's: each table is indexed
        # through `starts`, never scanned whole.
        by_event = np.argsort(rows)
        sorted_rows = rows[by_event]
        parts: List[Any] = [None] * NUM_MODALITIES
        for m, table in enumerate(self.tables):
            if table is None:
                continue
            x, owner, conf, starts = table
            first, count = starts[rows], starts[rows + 1] - starts[rows]
            total = int(count.sum())
            if not total:
                continue
            # The rows' components in table order: ranges first..first+count, merged.
            chosen = np.sort(np.repeat(first - np.cumsum(count) + count, count) + np.arange(total))
            pos = by_event[np.searchsorted(sorted_rows, owner[chosen])]
            if keep is not None:
                kept = keep[pos, m]
                chosen, pos = chosen[kept], pos[kept]
            if len(chosen):
                parts[m] = (x[chosen], pos, conf[chosen])
        return Batch(components=(len(rows), parts))

    def fit_normalization(self, model: "LearnableMultiModal") -> None:
        for m, table in enumerate(self.tables):
            if table is not None:  # every component of the table is present
                model.fit_normalization({m: table[0]})


class _BufferDataset(_Dataset):
    def __init__(self, buffer: ExperienceBuffer) -> None:
        if not len(buffer):
            raise ValueError("data: the experience buffer is empty")
        self.experiences = buffer.batch()
        self.has_inputs = bool(self.experiences.has_inputs.all())

    def __len__(self) -> int:
        return len(self.experiences)

    def mask_of(self, rows: np.ndarray) -> np.ndarray:
        return self.experiences.mask[rows]

    def batch(self, rows: np.ndarray, keep: Optional[np.ndarray]) -> Batch:
        e = self.experiences
        mask = e.mask[rows] if keep is None else e.mask[rows] & keep
        if self.has_inputs:
            inputs = [None if x is None or not mask[:, m].any() else x[rows] for m, x in enumerate(e.inputs)]
            return Batch(inputs=inputs, mask=mask, fused=e.fused[rows], rewards=e.rewards[rows])
        return Batch(embeddings=e.embeddings[rows], mask=mask, fused=e.fused[rows], rewards=e.rewards[rows])

    def fit_normalization(self, model: "LearnableMultiModal") -> None:
        e = self.experiences
        model.fit_normalization([None if x is None else np.nan_to_num(x) for x in e.inputs], e.mask)


def as_dataset(model: "LearnableMultiModal", data: Any, mask: Any, name: str) -> _Dataset:
    """Wraps the accepted data forms."""
    if isinstance(data, ExperienceBuffer):
        if mask is not None:
            raise ValueError(f"{name}: a mask is not used with an experience buffer (it has its own)")
        return _BufferDataset(data)
    if isinstance(data, (list, tuple)) and data and all(isinstance(e, MultiModalEvent) for e in data):
        if mask is not None:
            raise ValueError(f"{name}: a mask is not used with events (their components say what is present)")
        return _EventDataset(model, data)
    if isinstance(data, Mapping) or isinstance(data, (list, tuple)):
        ds = _ArrayDataset(model, data, mask)
        if len(ds) == 0:
            raise ValueError(f"{name}: no rows")
        return ds
    raise TypeError(
        f"{name}: expected per-modality arrays, a list of MultiModalEvent or an ExperienceBuffer, got {type(data).__name__}"
    )


# ------------------------------------------------------------------- helpers
def _dropout_mask(mask: np.ndarray, rate: float, rng: np.random.Generator) -> Optional[np.ndarray]:
    """Which present modalities to keep: each dropped with probability
    ``rate``, but a row always keeps at least one (a random present one)."""
    if rate <= 0:
        return None
    keep = mask & (rng.random(mask.shape) >= rate)
    emptied = mask.any(axis=1) & ~keep.any(axis=1)
    if emptied.any():
        scores = np.where(mask[emptied], rng.random((int(emptied.sum()), NUM_MODALITIES)), -1.0)
        keep[np.flatnonzero(emptied), scores.argmax(axis=1)] = True
    return keep


def _check_int(value: Any, name: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value!r}")


def _progress_bar(enabled: bool, total: int) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="step", desc="fit", leave=True, dynamic_ncols=True, mininterval=0.5)


def holdout_rows(n: int, fraction: float, seed: int) -> "tuple[np.ndarray, Optional[np.ndarray]]":
    """``(fit rows, validation rows)`` of ``n`` rows: ``round(n * fraction)``
    rows drawn from ``seed`` are held out (both sorted). Nothing is held out
    (``(all rows, None)``) when that would be fewer than 2 rows or leave
    fewer than 2 to fit on: contrastive losses need two rows."""
    if not (isinstance(fraction, (int, float)) and 0 <= fraction < 1):
        raise ValueError(f"validation fraction: expected a number in [0, 1), got {fraction!r}")
    n_val = int(round(n * fraction))
    if n_val < 2 or n - n_val < 2:
        return np.arange(n), None
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_val:]), np.sort(order[:n_val])
