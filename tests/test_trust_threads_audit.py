"""Hostile use from several threads, third audit: what test_threads,
test_thread_matrix, test_trust_concurrency, test_trust_fork and
test_trust_interrupts left out. Threads meet at events, never at sleeps;
every wait is bounded, so a regression fails instead of hanging CI."""

from __future__ import annotations

import threading
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List

import numpy as np
import pytest

from conftest import Overlap
from sklearn.base import clone

from grapheme_multimodal import datasets as gd
from grapheme_multimodal.sklearn import MultimodalEmbedder

#: A thread still running after this many seconds is taken as hung.
JOIN_TIMEOUT_S = 5.0
#: How long a call paused halfway waits for another thread to read (the
#: reader is blocked meanwhile when the call is atomic, as it must be).
PAUSE_S = 0.3


def _joined(thread: threading.Thread) -> None:
    thread.join(JOIN_TIMEOUT_S)
    assert not thread.is_alive(), f"{thread.name}: still running after {JOIN_TIMEOUT_S} s (deadlock)"


@pytest.mark.parametrize("read", ["get_params", "clone", "repr"])
def test_parameters_read_during_set_params_are_those_of_one_set_params(read: str) -> None:
    """get_params (and clone and repr, which read through it) took no lock:
    read while another thread's ``set_params(embed_dim=16, hidden_dim=16)``
    had set the first and not the second, they were half old and half new,
    and clone made an estimator of settings nobody set."""
    midway, have_read = threading.Event(), threading.Event()
    setter = threading.current_thread()

    class PausingMidSet(MultimodalEmbedder):
        """Pauses ``set_params`` after it has set ``embed_dim``, until another thread has read."""

        def __setattr__(self, name: str, value: Any) -> None:
            super().__setattr__(name, value)
            if name == "embed_dim" and value == 16 and threading.current_thread() is setter:
                midway.set()
                have_read.wait(PAUSE_S)  # an atomic set_params keeps the reader out: bounded

    estimator = PausingMidSet(embed_dim=8, hidden_dim=8)
    readers: Dict[str, Any] = {
        "get_params": lambda: estimator.get_params(),
        "clone": lambda: clone(estimator).get_params(),
        "repr": lambda: repr(estimator),
    }
    got: List[Any] = []

    def read_midway() -> None:
        try:
            if midway.wait(JOIN_TIMEOUT_S):
                got.append(readers[read]())
        finally:
            have_read.set()

    reader = threading.Thread(target=read_midway, name="reader", daemon=True)
    reader.start()
    estimator.set_params(embed_dim=16, hidden_dim=16)
    _joined(reader)
    assert len(got) == 1
    if read == "repr":  # the changed parameters: both, or (read before) neither
        assert ("embed_dim=16" in got[0]) == ("hidden_dim=16" in got[0]), got[0]
    else:
        assert (got[0]["embed_dim"], got[0]["hidden_dim"]) in [(8, 8), (16, 16)], got[0]


def _paused(real: Callable[..., Any], entered: threading.Event, release: threading.Event) -> Callable[..., Any]:
    """``real``, which says it was entered and waits to be released first."""

    def paused(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        assert release.wait(JOIN_TIMEOUT_S), "never released"
        return real(*args, **kwargs)

    return paused


def test_clone_and_repr_during_a_fit_do_not_wait_for_it(monkeypatch) -> None:
    """A fit changes no parameter: reading them (clone, repr) while another
    thread fits answers at once, with the parameters, rather than waiting
    for the fit (which keeps transform out for its whole run)."""
    import grapheme_multimodal.sklearn as sk

    fitting, release = threading.Event(), threading.Event()
    monkeypatch.setattr(sk, "fit_with_stopping", _paused(sk.fit_with_stopping, fitting, release))
    estimator = MultimodalEmbedder(embed_dim=8, hidden_dim=8, num_heads=1, encoder_hidden=(8,), shared_head=(),
                                   encoder_output_dim=None, epochs=1, batch_size=16, random_state=0,
                                   validation_fraction=0.0, patience=0)
    rng = np.random.default_rng(0)
    z = rng.normal(size=(40, 3))
    views = [z @ rng.normal(size=(3, 5)), z @ rng.normal(size=(3, 4))]
    fit = threading.Thread(target=estimator.fit, args=(views,), name="fit", daemon=True)
    fit.start()
    try:
        assert fitting.wait(JOIN_TIMEOUT_S)
        got: List[Any] = []
        reader = threading.Thread(target=lambda: got.extend([clone(estimator).get_params(), repr(estimator)]),
                                  name="reader", daemon=True)
        reader.start()
        reader.join(JOIN_TIMEOUT_S)
        assert not reader.is_alive(), "clone and repr waited for the fit"
        assert got[0] == estimator.get_params() and "embed_dim=8" in got[1]
    finally:
        release.set()
        _joined(fit)
    assert hasattr(estimator, "model_")


def test_loading_a_data_set_on_two_threads_at_once_leaves_the_warning_filters_alone(tmp_path: Path, monkeypatch) -> None:
    """load_multiple_features silenced numpy's "input contained no data"
    with warnings.catch_warnings, which sets the filters of the whole
    process: two loads whose blocks overlapped (one in, the other in, the
    first out, the second out) left UserWarning ignored for good, and with
    it UntrainedModalityWarning and PrecisionLossWarning; and while one
    thread loaded, every other thread's UserWarnings were dropped."""
    rng = np.random.default_rng(0)
    for name, dim in zip(gd.VIEW_NAMES, gd.VIEW_DIMS):
        table = np.column_stack([rng.normal(size=(2, dim)), [0, 1]])
        np.savetxt(tmp_path / f"mfeat-{name}.csv", table, delimiter=",", header="h", comments="")
    before = list(warnings.filters)
    overlap = Overlap(JOIN_TIMEOUT_S)
    in_first, first_out = overlap.in_first, overlap.first_out
    during: List[Any] = []
    real = np.loadtxt

    def loadtxt(*args: Any, **kwargs: Any) -> Any:
        """The first view's file: the first load waits inside for the second
        to come in, the second waits for the first to leave."""
        if Path(args[0]).name == f"mfeat-{gd.VIEW_NAMES[0]}.csv":
            during.append(list(warnings.filters))
            overlap.meet()
        return real(*args, **kwargs)

    monkeypatch.setattr(np, "loadtxt", loadtxt)

    def load_first() -> None:
        try:
            gd.load_multiple_features(tmp_path)
        finally:
            first_out.set()

    first = threading.Thread(target=load_first, name="first", daemon=True)
    second = threading.Thread(target=lambda: gd.load_multiple_features(tmp_path), name="second", daemon=True)
    first.start()
    assert in_first.wait(JOIN_TIMEOUT_S)
    second.start()
    _joined(first)
    _joined(second)
    assert len(during) == 2
    assert all(filters == before for filters in during), "a load changed the process's warning filters"
    assert warnings.filters == before, "the loads left the process's warning filters changed"


def test_a_failed_fit_keeps_the_lock_another_threads_get_params_holds(monkeypatch) -> None:
    """A failed fit deletes the attributes made while it ran. The parameters'
    lock, made by another thread's get_params during the fit and held by it,
    was one of them: a set_params after the fit took a new lock, did not
    wait for that get_params, and it read half old, half new parameters."""
    import grapheme_multimodal.sklearn as sk

    in_fit, fit_go = threading.Event(), threading.Event()
    reading, set_done = threading.Event(), threading.Event()
    monkeypatch.setattr(sk, "_as_views", _paused(sk._as_views, in_fit, fit_go))

    class Pausing:
        """A parameter value get_params(deep=True) looks into: read between
        embed_dim and hidden_dim (the parameters are read by name, sorted).
        Not a setting the model takes: the fit fails on it."""

        def get_params(self, deep: bool = True) -> Dict[str, Any]:
            if threading.current_thread().name == "reader":
                reading.set()
                set_done.wait(PAUSE_S)  # bounded: a set_params that waits for this reader never comes
            return {}

    estimator = MultimodalEmbedder(embed_dim=8, hidden_dim=8, encoder_output_dim=Pausing())
    rng = np.random.default_rng(0)
    views = [rng.normal(size=(20, 3)), rng.normal(size=(20, 2))]
    fit = threading.Thread(target=lambda: pytest.raises(TypeError, estimator.fit, views), name="fit", daemon=True)
    fit.start()
    got: List[Any] = []
    reader = threading.Thread(target=lambda: got.append(estimator.get_params(deep=True)), name="reader", daemon=True)
    try:
        assert in_fit.wait(JOIN_TIMEOUT_S)
        reader.start()  # during the fit: its get_params makes the parameters' lock
        assert reading.wait(JOIN_TIMEOUT_S)
    finally:
        fit_go.set()
    _joined(fit)
    assert not hasattr(estimator, "model_")  # the fit failed, and put the estimator back
    estimator.set_params(embed_dim=16, hidden_dim=16)
    set_done.set()
    _joined(reader)
    assert (got[0]["embed_dim"], got[0]["hidden_dim"]) in [(8, 8), (16, 16)], got[0]
