"""Defects found by a hostile review of the newest code (6593a45..e76e329):
each test fails before its fix."""

from __future__ import annotations

import signal
import warnings

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal.buffer import FILE_FORMAT as BUFFER_FORMAT
from grapheme_multimodal.checkpoint import FILE_FORMAT as CHECKPOINT_FORMAT
from grapheme_multimodal.io import read_tagged_safetensors, write_tagged_safetensors


def _forged(path, fmt: str, change) -> None:
    tensors, meta = read_tagged_safetensors(path, fmt)
    change(meta)
    write_tagged_safetensors(path, tensors, fmt, meta)


# ------------------------------------------------------------------ a forged buffer capacity
@pytest.mark.parametrize("capacity, said", [
    ("10", "a positive int, got '10' (str)"),
    (None, "a positive int, got None"),
    (-1, "a positive int, got -1"),
    (True, "a positive int, got True (bool)"),
])
def test_a_forged_buffer_capacity_is_refused_as_the_capacity(tmp_path, capacity, said) -> None:
    """Before: a file whose buffer capacity was "10" or None was refused as
    "'<=' not supported between instances of 'int' and 'str'" (naming
    nothing), and one of -1 or True blamed the size: "experience.size:
    expected ... an int in [0, -1] (its experience.capacity), got 4"."""
    model = gm.LearnableMultiModal(input_dims={"visual": 5}, embed_dim=8, hidden_dim=8, num_heads=2, seed=0, buffer_size=10)
    model.record_batch({"visual": np.random.default_rng(0).normal(size=(4, 5))})
    path = tmp_path / "m.safetensors"
    model.save(path)
    _forged(path, CHECKPOINT_FORMAT, lambda meta: meta["experience"].update(capacity=capacity))
    with pytest.raises(gm.CheckpointError) as err:
        gm.LearnableMultiModal.load(path)
    assert str(err.value).endswith(f"experience.capacity: expected {said}"), str(err.value)
    path = tmp_path / "b.safetensors"
    model.experience.save(path)
    _forged(path, BUFFER_FORMAT, lambda meta: meta.update(capacity=capacity))
    for load in (gm.ExperienceBuffer.from_file, model.experience.load):
        with pytest.raises(gm.CheckpointError) as err:
            load(path)
        assert str(err.value).endswith(f" capacity: expected {said}"), str(err.value)
    assert len(model.experience) == 4 and model.experience.capacity == 10  # the failed load left it as it was


# ------------------------------------------------------------------ "expected 2-D input 2 dimensions"
def test_an_array_of_the_wrong_rank_is_refused_in_plain_words() -> None:
    """Before: a component's x given as a scalar was refused as
    "components['visual'].x: expected 2-D input 2 dimensions, got shape ()"."""
    model = gm.LearnableMultiModal(seed=0, input_dims={"visual": 5}, embed_dim=8, hidden_dim=8)
    before = model.state_dict()
    parts = [(np.float64(1.0), np.array([0]), None), None, (np.ones((2, 18)), np.arange(2), None)] + [None] * 4
    with pytest.raises(gm.ShapeError, match=r"^components\['visual'\]\.x: expected 2-D input, got shape \(\)$"):
        model.train_step(gm.Batch(components=(2, parts)))
    assert all(np.array_equal(v, model.state_dict()[k]) for k, v in before.items())


# ------------------------------------------------------------------ warnings through scikit-learn's joblib
def test_warnings_of_a_fit_called_through_joblib_point_at_the_users_line() -> None:
    """Before: caller_level() stopped at joblib's frames, through which
    scikit-learn's cross_validate and GridSearchCV call fit: the warnings
    (here early stopping's skip) pointed at a line of joblib/parallel.py."""
    joblib = pytest.importorskip("joblib")
    from grapheme_multimodal.stopping import fit_with_stopping

    model = gm.LearnableMultiModal(seed=0, input_dims={"visual": 3}, embed_dim=8, hidden_dim=8)
    x = np.random.default_rng(0).normal(size=(6, 3))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        joblib.Parallel(n_jobs=1)(joblib.delayed(fit_with_stopping)(
            model, {"visual": x}, validation_fraction=0.1, patience=2, monitor="val_total", epochs=1) for _ in range(1))
    ours = [w for w in caught if issubclass(w.category, gm.EarlyStoppingSkippedWarning)]
    assert ours and all(w.filename == __file__ for w in ours), [(w.filename, w.lineno) for w in ours]


# ------------------------------------------------------------------ SIGALRM after a SIGTERM under Ray
_TIMER = getattr(signal, "ITIMER_REAL", None)


@pytest.fixture
def alarm_kept():
    """The process's SIGALRM handler and real timer, put back after the test."""
    handler, timer = signal.getsignal(signal.SIGALRM), signal.getitimer(_TIMER)
    yield
    signal.setitimer(_TIMER, 0)
    signal.signal(signal.SIGALRM, handler)
    if timer[0] > 0:
        signal.setitimer(_TIMER, *timer)


def _sigterm_met_while_ray_started() -> None:
    """What ray.init does on a SIGTERM, as far as the CLI sees it: its
    SIGTERM handler (sys.exit(15)) in place of the CLI's, abseil's failure
    handler arming alarm(3) (which replaces the process's one timer), then
    SystemExit(15)."""
    from grapheme_multimodal.cli import _keeping_sigterm_handler

    handed_on = []
    before = signal.signal(signal.SIGTERM, lambda *args: handed_on.append(args[0]))
    try:
        with pytest.raises(SystemExit):
            with _keeping_sigterm_handler():
                signal.signal(signal.SIGTERM, lambda *args: None)  # Ray's
                signal.alarm(3)  # abseil's
                raise SystemExit(signal.SIGTERM)
    finally:
        signal.signal(signal.SIGTERM, before)
    assert handed_on == [signal.SIGTERM]


@pytest.mark.skipif(_TIMER is None, reason="no interval timers here")
@pytest.mark.parametrize("own_handler", [True, False])
def test_a_programs_own_alarm_survives_a_sigterm_met_while_ray_started(alarm_kept, own_handler) -> None:
    """Before: the CLI cancelled abseil's alarm and, where the program had a
    SIGALRM handler of its own, re-armed what was left of abseil's 3 s: a
    program calling main() with a watchdog of a minute had it ring 3 s
    after main returned; with SIGALRM's default handler, its alarm was lost."""
    rang = []
    if own_handler:
        signal.signal(signal.SIGALRM, lambda *args: rang.append(args[0]))
    else:
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.setitimer(_TIMER, 60)
    _sigterm_met_while_ray_started()
    left, interval = signal.getitimer(_TIMER)
    assert 50 < left <= 60 and interval == 0, left
    assert not rang


@pytest.mark.skipif(_TIMER is None, reason="no interval timers here")
def test_a_handler_without_an_alarm_is_not_rung_after_a_sigterm_met_while_ray_started(alarm_kept) -> None:
    """Before: a program with a SIGALRM handler and no alarm had abseil's
    3 s alarm re-armed under its handler, which then ran for nothing."""
    def own(*args) -> None:
        pass

    signal.setitimer(_TIMER, 0)
    signal.signal(signal.SIGALRM, own)
    _sigterm_met_while_ray_started()
    assert signal.getitimer(_TIMER) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGALRM) is own  # the program's own, still in place


# ------------------------------------------------------------------ a metric's own fit, inside fit_with_stopping
def test_a_metric_that_fits_another_model_has_its_data_checked_and_named_as_its_own() -> None:
    """Before: a metric that fitted another model on other data (fit's
    docstring allows it) ran inside fit_with_stopping's precision scope:
    that scope's data was checked whole, so the metric's fit skipped its
    check of float32 precision (no warning at all), and what it said was
    named as the scope's, inputs['visual'], and said once with its warnings."""
    from grapheme_multimodal.stopping import fit_with_stopping
    from grapheme_multimodal.training import fit

    rng = np.random.default_rng(0)
    lossy = rng.normal(size=(12, 3))
    lossy[:, 1] = 1e6 + rng.normal(size=12) * 1e-3  # varies more finely than float32 resolves around 1e6
    other = gm.LearnableMultiModal(seed=1, input_dims={"visual": 3}, embed_dim=8, hidden_dim=8)

    def probe(model) -> float:
        fit(other, {"visual": lossy}, epochs=1, progress=False)
        return 0.0

    model = gm.LearnableMultiModal(seed=0, input_dims={"visual": 3}, embed_dim=8, hidden_dim=8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit_with_stopping(model, {"visual": rng.normal(size=(12, 3))}, validation_fraction=0.25, patience=2,
                          monitor="val_total", epochs=1, metrics={"probe": probe}, cv_folds=0, progress=False)
    lost = [w for w in caught if issubclass(w.category, gm.PrecisionLossWarning)]
    assert len(lost) == 1 and str(lost[0].message).startswith("data['visual']: column 1 "), [str(w.message) for w in lost]
    assert lost[0].filename == __file__


# ------------------------------------------------------------------ main's argv
def test_main_takes_paths_among_its_arguments_and_refuses_other_types_by_name(tmp_path, capsys) -> None:
    """Before: ``main(["info", Path(...)])`` raised "'PosixPath' object is not
    subscriptable" from inside argparse, naming nothing; ``main("info")``
    was read one character per argument ("invalid choice: 'i'"), and
    ``main(["train", "--epochs", 5])`` failed in argparse alike."""
    from pathlib import Path

    from grapheme_multimodal.cli import main

    assert main(["info", Path(tmp_path / "none.gmm")]) == 2
    assert "none.gmm" in capsys.readouterr().err
    with pytest.raises(TypeError, match=r"^argv: expected a list of command-line arguments \(str\), e\.g\. "
                                        r"\['info', 'model\.gmm'\], got 'info' \(str\)$"):
        main("info")
    with pytest.raises(TypeError, match=r"^argv\[2\]: expected a str \(or a path\), got 5 \(int\)$"):
        main(["train", "--epochs", 5])


# ------------------------------------------------------------------ warnings of members trained on threads
def test_warnings_of_members_trained_at_once_point_at_the_users_line() -> None:
    """Before: members trained on threads (n_jobs > 1: fit_ensemble, the
    estimator, grapheme-mm train) warned with stacklevel=caller_level(),
    which in a pool's thread reaches no frame of the user's: the warnings
    pointed at a line of concurrent/futures/thread.py."""
    from grapheme_multimodal import uci

    rng = np.random.default_rng(0)
    views = {"fou": rng.normal(size=(6, 3)), "pix": np.ones((6, 2))}  # pix: the same in every row
    settings = uci.TrainingSettings(epochs=1, embed_dim=8, hidden_dim=8, encoder_hidden=(8,), batch_size=8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        uci.fit_ensemble(views, settings=settings, members=2, n_jobs=2)
    ours = [w for w in caught if issubclass(w.category, gm.ConstantModalityWarning)]
    assert ours and all(w.filename == __file__ for w in ours), [(w.filename, w.lineno) for w in ours]


# ------------------------------------------------------------------ a warning said once across threads
def test_threads_sharing_a_scope_say_a_warning_once() -> None:
    """The members of an ensemble fitted with n_jobs > 1 share one
    precision scope from their threads: its "said already" check and its
    note were two steps, so two threads could both pass the check and both
    warn. The set below is slow to answer, as a busy machine may be."""
    import threading
    import time

    from grapheme_multimodal import _validation

    class SlowToAnswer(set):
        def __contains__(self, item: object) -> bool:
            found = set.__contains__(self, item)
            time.sleep(0.05)
            return found

    said = []
    with _validation.precision_scope({"data['visual']": "Xs[0]"}) as scope:
        scope.warned = SlowToAnswer()

        def member() -> None:
            said.append(_validation.first_in_scope("precision", "data['visual']"))

        threads = [threading.Thread(target=_validation.contextvars.copy_context().run, args=(member,)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(said, key=str) == [None, None, None, "Xs[0]"]
