"""Hostile use from several threads, fifth audit: what test_threads,
test_thread_matrix, test_trust_concurrency, test_trust_threads_audit and
test_trust_threads_fourth left out. Threads meet at events, never at
sleeps; every wait is bounded, so a regression fails instead of hanging CI."""

from __future__ import annotations

import copy
import inspect
import pickle
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Dict, List

import numpy as np
import pytest

import grapheme_multimodal as gm

#: A thread still running after this many seconds is taken as hung.
JOIN_TIMEOUT_S = 5.0


def _tiny_model() -> gm.LearnableMultiModal:
    return gm.LearnableMultiModal(embed_dim=8, hidden_dim=16, num_heads=2, seed=0, encoder_hidden=(8,),
                                  input_dims={"visual": 10, "auditory": 6})


def _views(n: int, seed: int) -> Dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 3))
    return {"visual": (z @ rng.normal(size=(3, 10))).astype(np.float32),
            "auditory": (z @ rng.normal(size=(3, 6))).astype(np.float32)}


def _joined(thread: threading.Thread) -> None:
    thread.join(JOIN_TIMEOUT_S)
    assert not thread.is_alive(), f"{thread.name}: still running after {JOIN_TIMEOUT_S} s (deadlock)"


# --------------------------------------------- pickling a model another thread reads
@pytest.mark.parametrize("copying", ["pickle.dumps", "copy.deepcopy"])
def test_a_copy_taken_while_another_thread_encodes_for_the_first_time_is_whole(copying: str) -> None:
    """Before: a model's __getstate__ scanned its live ``__dict__`` for the
    attributes a user set; another thread's first ``encode`` caches an entry
    there (whether its encoders trained), and the copy raised "dictionary
    changed size during iteration"."""
    model = _tiny_model()
    model.note = "set by the user"  # pickled as it is: the scan is what this pauses in
    probe = _views(3, 1)
    expected = model.encode(probe)
    model.__dict__.pop("_untrained_for", None)  # as before any read: the next encode caches it
    lines, first = inspect.getsourcelines(gm.LearnableMultiModal.__getstate__)
    scan = first + next(i for i, text in enumerate(lines) if "attributes = {" in text)
    scanning, encoded = threading.Event(), threading.Event()
    hits: List[str] = []

    def pause_inside_the_scan(frame: Any, event: str, arg: Any) -> Any:
        # the scan's line the second time: inside its loop (a comprehension's own frame before
        # Python 3.12, the method's frame after), once it iterates the attributes
        if event == "line" and frame.f_lineno == scan and frame.f_code.co_filename == inspect.getfile(gm.LearnableMultiModal):
            hits.append(frame.f_code.co_name)
            if len(hits) == 2:
                scanning.set()
                encoded.wait(JOIN_TIMEOUT_S)  # bounded: a scan that never gets here is caught below
        return pause_inside_the_scan

    copies: Dict[str, Callable[[gm.LearnableMultiModal], gm.LearnableMultiModal]] = {
        "pickle.dumps": lambda m: pickle.loads(pickle.dumps(m)),
        "copy.deepcopy": copy.deepcopy,
    }
    got: List[Any] = []

    def take_copy() -> None:
        sys.settrace(pause_inside_the_scan)  # this thread only
        try:
            got.append(copies[copying](model))
        except Exception as exc:  # compared below: the copy must not fail
            got.append(exc)
        finally:
            sys.settrace(None)

    copier = threading.Thread(target=take_copy, name="copier", daemon=True)
    copier.start()
    try:
        assert scanning.wait(JOIN_TIMEOUT_S), "the copy never reached the scan of the model's attributes"
        np.testing.assert_array_equal(model.encode(probe), expected)  # the first read since: caches its entry
        assert "_untrained_for" in model.__dict__
    finally:
        encoded.set()
    _joined(copier)
    assert not isinstance(got[0], Exception), f"the copy failed: {got[0]!r}"
    assert got[0].note == "set by the user"
    np.testing.assert_array_equal(got[0].encode(probe), expected)


# ------------------------------------------------ plotting model.history during fit
def test_plotting_the_history_while_fit_appends_an_epoch_draws_the_records_it_started_with(
        tmp_path: Path, monkeypatch) -> None:
    """Before: plot_history(model.history, ...) on a monitoring thread read
    the epoch numbers, then each loss, from the live list; fit appending an
    epoch in between made matplotlib refuse the curves ("x and y must have
    same first dimension, but have shapes (1,) and (2,)")."""
    pytest.importorskip("matplotlib")
    from grapheme_multimodal import plotting

    model, data = _tiny_model(), _views(24, 0)
    model.fit(data, epochs=1, batch_size=12, progress=False)  # one epoch to plot
    checking, appended, plotted = threading.Event(), threading.Event(), threading.Event()
    real = plotting._check_plottable

    def check_plottable(epochs: Any, keys: Any) -> None:
        """The plot, paused after it read the epoch numbers until fit has appended its next epoch."""
        if threading.current_thread().name == "plot" and not checking.is_set():
            checking.set()
            appended.wait(JOIN_TIMEOUT_S)
        real(epochs, keys)

    monkeypatch.setattr(plotting, "_check_plottable", check_plottable)

    def metric(m: gm.LearnableMultiModal) -> float:
        appended.set()  # the epoch's record is in model.history when its metrics run
        plotted.wait(JOIN_TIMEOUT_S)
        return 0.5

    outcome: List[Any] = []

    def plot() -> None:
        try:
            plotting.plot_history(model.history, tmp_path / "curves.png")
            outcome.append("plotted")
        except Exception as exc:
            outcome.append(exc)
        finally:
            plotted.set()

    plotter = threading.Thread(target=plot, name="plot", daemon=True)
    fitter = threading.Thread(target=lambda: model.fit(data, epochs=1, batch_size=12, progress=False,
                                                       metrics={"probe": metric}), name="fit", daemon=True)
    plotter.start()
    try:
        assert checking.wait(JOIN_TIMEOUT_S)
        fitter.start()
    finally:
        _joined(plotter)
        appended.set()
    _joined(fitter)
    assert outcome == ["plotted"], outcome
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [r["epoch"] for r in model.history] == [1, 2]
