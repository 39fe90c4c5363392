"""The benchmark's inputs, generated from a fixed seed so every run (and
every framework) sees the same data, and the random draws of our training
step, so that every framework takes the same step."""

from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np

THREE_MODALITIES = (0, 2, 6)  # visual, linguistic, abstract: the "3 of 7" cases
WORDS = (
    "the a red blue small large ball cat dog runs jumps over under near kitchen floor table window light sound "
    "soft loud quick slow green child reaches for and then while because bright dark warm cold heavy"
).split()


def texts(count: int, min_chars: int = 16, max_chars: int = 256, seed: int = 0) -> List[str]:
    """`count` sentences of random words, each cut to a length drawn
    uniformly from [min_chars, max_chars]."""
    rng = np.random.default_rng(seed)
    out = []
    for length in rng.integers(min_chars, max_chars + 1, size=count):
        words: List[str] = []
        while sum(len(w) + 1 for w in words) < length:
            words.append(WORDS[rng.integers(len(WORDS))])
        out.append(" ".join(words)[:length])
    return out


def event_texts() -> Dict[int, str]:
    """The 3-modality event of the per-event benchmark: ``{modality index: text}``
    (visual 0, linguistic 2, abstract 6), 40 / 80 / 120 characters."""
    return {m: texts(1, n, n, seed=m)[0] for m, n in zip(THREE_MODALITIES, (40, 80, 120))}


def modality_inputs(batch: int, present: List[int], feature_dim: int = 18, seed: int = 0) -> List[Optional[np.ndarray]]:
    """Per-modality float32 inputs ``[B, d]`` (None for the modalities not in `present`)."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((batch, feature_dim), dtype=np.float32) if m in present else None for m in range(7)]


def objective_draws(model: object, xs: List[Optional[np.ndarray]]) -> tuple:
    """The random draws `model`'s next training step makes on inputs `xs`
    (what the NumPy and torch references take as `draws`)."""
    core_batch, _ = model._learning_args(xs, None, None)  # type: ignore[attr-defined]
    return model._core.objective_draws(core_batch)  # type: ignore[attr-defined]
