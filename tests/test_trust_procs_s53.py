"""Threads and processes on session 53's new code (remembered column names,
the exact tie rule, signal-handler swaps): what test_thread_matrix,
test_trust_threads*, test_trust_pools, test_trust_reentry* and
test_parallel_members leave out. Threads meet at events or joins, never at
sleeps; every wait is bounded, so a regression fails instead of hanging CI."""

from __future__ import annotations

import os
import signal
import threading
import warnings
from typing import Any, List

import numpy as np
import pytest

import grapheme_multimodal as gm

#: A thread still running after this many seconds is taken as hung.
JOIN_TIMEOUT_S = 20.0


def _joined(thread: threading.Thread) -> None:
    thread.join(JOIN_TIMEOUT_S)
    assert not thread.is_alive(), f"{thread.name}: still running after {JOIN_TIMEOUT_S} s (deadlock)"


def _model() -> gm.LearnableMultiModal:
    return gm.LearnableMultiModal(embed_dim=8, hidden_dim=16, num_heads=2, seed=0, encoder_hidden=(8,),
                                  input_dims={"visual": 4, "auditory": 3})


def _frames() -> Any:
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    z = rng.normal(size=(40, 3))
    visual = pd.DataFrame((z @ rng.normal(size=(3, 4))).astype(np.float32), columns=list("abcd"))
    return visual, (z @ rng.normal(size=(3, 3))).astype(np.float32)


def test_a_fit_that_learns_the_names_while_another_waits_has_the_other_refuse_them_reordered() -> None:
    # fit checked a frame's column order against the model's names before taking the model's lock: a fit
    # of another thread that learned them in between (while this one waited for the lock) had this one
    # train, without a word, on the columns reordered, as other features
    visual, auditory = _frames()
    model = _model()
    lock = model._lock
    first = {"B": True}

    def updating() -> Any:  # thread B's fit, checked, reaches the lock: thread A's fit lands first
        if first["B"] and threading.current_thread().name == "B":
            first["B"] = False
            a = threading.Thread(target=model.fit, args=({"visual": visual, "auditory": auditory},),
                                 kwargs={"epochs": 1, "progress": False}, name="A")
            a.start()
            _joined(a)
        return type(lock).updating(lock)

    lock.updating = updating  # type: ignore[method-assign]
    errors: List[BaseException] = []

    def reordered() -> None:
        try:
            model.fit({"visual": visual[list("dcba")], "auditory": auditory}, epochs=1, progress=False)
        except BaseException as err:  # noqa: B902 - reported below
            errors.append(err)

    b = threading.Thread(target=reordered, name="B")
    b.start()
    _joined(b)
    assert model.input_columns("visual") == ("a", "b", "c", "d")
    assert model.epochs_trained == 1, "the reordered frames trained the model"
    assert len(errors) == 1 and isinstance(errors[0], gm.InvalidValueError), errors
    assert errors[0].arg == "data['visual']" and "another order" in str(errors[0])


def _landing_first(model: gm.LearnableMultiModal, other: Any) -> None:
    """Has ``other()`` run to its end in thread A the first time thread B
    waits for ``model``'s update lock: a call of another thread that lands
    between B's checks and B's lock."""
    lock = model._lock
    first = {"B": True}

    def updating() -> Any:
        if first["B"] and threading.current_thread().name == "B":
            first["B"] = False
            a = threading.Thread(target=other, name="A")
            a.start()
            _joined(a)
        return type(lock).updating(lock)

    lock.updating = updating  # type: ignore[method-assign]


def _in_thread_b(call: Any) -> List[BaseException]:
    errors: List[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as err:  # noqa: B902 - reported to the caller
            errors.append(err)

    b = threading.Thread(target=run, name="B")
    b.start()
    _joined(b)
    return errors


def test_fit_with_stopping_on_a_slice_refuses_names_another_thread_learned_reordered_meanwhile() -> None:
    # with a slice held out, fit_with_stopping checked the frames' order, then fit the slice's arrays (no
    # names to check) and kept the names after: a fit of another thread between the two trained the model
    # on the columns reordered, and the names it kept were the other thread's
    from grapheme_multimodal.stopping import fit_with_stopping

    visual, auditory = _frames()
    model = _model()
    _landing_first(model, lambda: model.fit({"visual": visual, "auditory": auditory}, epochs=1, progress=False))
    errors = _in_thread_b(lambda: fit_with_stopping(
        model, {"visual": visual[list("dcba")], "auditory": auditory}, validation_fraction=0.25, patience=1,
        monitor="val_total", epochs=1, cv_folds=0, min_validation_rows=1000, progress=False, seed=0))
    assert model.input_columns("visual") == ("a", "b", "c", "d")
    assert model.epochs_trained == 1, "the reordered frames trained the model"
    assert len(errors) == 1 and isinstance(errors[0], gm.InvalidValueError), errors
    assert errors[0].arg == "inputs['visual']" and "another order" in str(errors[0])


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork")
def test_a_child_forked_from_a_thread_while_the_main_thread_holds_signals_back_gets_its_ctrl_c(default_sigint) -> None:
    # uninterrupted() swaps the program's handlers for stand-ins that hold the signals back until the
    # block ends. A fork from another thread mid-block (a multiprocessing 'fork' pool started by a worker
    # thread while the main thread loads, saves or ends an epoch) left the child the stand-ins for good,
    # the block's thread not being in the child to put them back: its Ctrl-C was swallowed for ever, and
    # uninterrupted() there held nothing back (the forking thread is not the parent's main thread)
    from grapheme_multimodal._locking import uninterrupted

    inside, forked = threading.Event(), threading.Event()
    statuses: List[int] = []

    def fork() -> None:
        assert inside.wait(JOIN_TIMEOUT_S)
        with warnings.catch_warnings():  # Python 3.12+: "this process is multi-threaded, use of fork()..."
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # the child: its exit status is the first check that failed
            code = 0
            try:
                signal.alarm(int(JOIN_TIMEOUT_S))  # a child that hangs ends
                if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
                    code = 2
                else:
                    try:
                        with uninterrupted():
                            os.kill(os.getpid(), signal.SIGINT)
                            code = 3  # held back to the block's end, where it raises
                        code = 4
                    except KeyboardInterrupt:
                        code = 0 if code == 3 else 5
            finally:
                os._exit(code)
        statuses.append(os.waitpid(pid, 0)[1])
        forked.set()

    thread = threading.Thread(target=fork, name="forker")
    thread.start()
    with uninterrupted():
        inside.set()
        forked.wait(JOIN_TIMEOUT_S)
    _joined(thread)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert statuses and os.WIFEXITED(statuses[0]), statuses
    assert os.WEXITSTATUS(statuses[0]) == 0, {2: "the stand-in stayed the child's SIGINT handler",
                                              4: "uninterrupted held nothing back in the child",
                                              5: "Ctrl-C raised inside the block"}.get(os.WEXITSTATUS(statuses[0]))
