"""The library from other execution models: what a process pool, an asyncio
program or a strict test suite (warnings as errors, ``-X
warn_default_encoding``) meets that test_trust_fork, the thread audits,
test_parallel_members and test_sklearn leave out. Every wait is bounded, so
a regression fails instead of hanging CI."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import multiprocessing
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import pytest

import grapheme_multimodal as gm

#: A worker, a child process or a thread still running after this is stuck (each needs well under it).
WAIT_S = 120


def _model(seed: int = 0) -> gm.LearnableMultiModal:
    return gm.LearnableMultiModal(input_dims={"visual": 12, "auditory": 8}, embed_dim=16, hidden_dim=16, num_heads=2,
                                  seed=seed)


def _data(rows: int = 64) -> Dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {"visual": rng.standard_normal((rows, 12)).astype(np.float32),
            "auditory": rng.standard_normal((rows, 8)).astype(np.float32)}


def _fit_and_encode(model: gm.LearnableMultiModal) -> Tuple[gm.LearnableMultiModal, np.ndarray]:
    """A pool's task: the model comes in pickled, is trained, and goes back pickled."""
    model.fit(_data(), epochs=3, batch_size=16, progress=False)
    return model, model.encode(_data())


def _running_threads() -> List[threading.Thread]:
    return [t for t in threading.enumerate() if t.is_alive()]


# ------------------------------------------------ a progress bar leaves no thread behind
def test_fit_with_its_progress_bar_leaves_no_thread_running(capsys, monkeypatch) -> None:
    """Before: ``fit(progress=True)``, the default, started tqdm's monitor
    thread, which runs (waking every 10 s, taking tqdm's lock) until the
    process exits: a thread the caller never asked for, flagged by a thread
    leak check, and one a ``fork()`` could catch holding tqdm's lock, so
    that the child's first progress bar waited forever. The bar refreshes
    itself instead (``miniters=1``: at most every ``mininterval``)."""
    from tqdm import tqdm

    from grapheme_multimodal.sklearn import MultimodalEmbedder

    monkeypatch.setattr(tqdm, "monitor", None)  # as in a fresh process: no monitor yet
    before = set(_running_threads())
    model = _model()
    model.fit(_data(), epochs=2, batch_size=16, progress=True)
    MultimodalEmbedder(embed_dim=8, epochs=1, verbose=True, n_members=2, n_jobs=2).fit(
        [_data()["visual"], _data()["auditory"]])
    started = [t.name for t in set(_running_threads()) - before]
    assert started == [] and tqdm.monitor is None, started
    assert "fit: 100%" in capsys.readouterr().err  # the bar itself is still drawn
