"""An ensemble's members trained at once on threads (_parallel.py):
the same bits as one at a time, errors and Ctrl-C stop every member."""

import contextvars
import signal
import threading
import time

import numpy as np
import pytest

from grapheme_multimodal import InvalidValueError, LearnableMultiModal, uci
from grapheme_multimodal._parallel import check_cancelled, resolve_n_jobs, run_tasks

VIEWS_DIMS = {"fou": 6, "kar": 4}


def _views(n=64, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 3))
    return {v: (z @ rng.normal(size=(3, d)) + 0.1 * rng.normal(size=(n, d))).astype(np.float32) for v, d in VIEWS_DIMS.items()}


SMALL = uci.TrainingSettings(epochs=3, embed_dim=16, hidden_dim=16, num_heads=2, encoder_hidden=(16,), batch_size=32)


def test_members_at_once_are_the_members_in_turn_bit_for_bit():
    views = _views()
    in_turn = uci.fit_ensemble(views, 1, members=3, settings=SMALL)
    at_once = uci.fit_ensemble(views, 1, members=3, settings=SMALL, n_jobs=-1)
    two_at_a_time = uci.fit_ensemble(views, 1, members=3, settings=SMALL, n_jobs=2)
    test = _views(seed=5)
    for other in (at_once, two_at_a_time):
        np.testing.assert_array_equal(other.embed_fused(test), in_turn.embed_fused(test))
        for a, b in zip(in_turn.models, other.models):
            sa, sb = a.state_dict(), b.state_dict()
            assert all(np.array_equal(sa[k], sb[k]) for k in sa)
            assert [r["loss"] for r in a.history] == [r["loss"] for r in b.history]


@pytest.mark.parametrize("n_jobs, error, words", [
    (0, InvalidValueError, "n_jobs: expected None or a non-zero int (1: one at a time, -1: one per CPU), got 0"),
    ("2", TypeError, "n_jobs: expected None or an int"),
    (True, TypeError, "n_jobs: expected None or an int"),
    (1.5, TypeError, "n_jobs: expected None or an int"),
])
def test_n_jobs_refused_by_name_before_any_training(n_jobs, error, words, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("a member trained before n_jobs was checked")

    monkeypatch.setattr(uci, "fit_views", no_training)
    with pytest.raises(error) as info:
        uci.fit_ensemble(_views(), 0, members=2, settings=SMALL, n_jobs=n_jobs)
    assert words in str(info.value)


def test_n_jobs_reads_as_scikit_learn_reads_it():
    assert resolve_n_jobs(None, 5) == 1 and resolve_n_jobs(1, 5) == 1
    assert resolve_n_jobs(3, 2) == 2 and resolve_n_jobs(np.int64(2), 5) == 2  # never more than the tasks
    assert 1 <= resolve_n_jobs(-1, 64) <= 64 and resolve_n_jobs(-1000, 3) == 1


def _slow_fit(model, data, epochs=400):
    return lambda: model.fit(data, epochs=epochs, batch_size=8, progress=False)


def test_a_failing_member_stops_the_others_and_its_error_is_raised():
    data = {"visual": _views(n=256)["fou"]}
    slow = LearnableMultiModal(input_dims={"visual": 6}, embed_dim=16, hidden_dim=16, num_heads=2)

    def fails():
        time.sleep(0.2)
        raise InvalidValueError("views: a member's own error", "views")

    start = time.perf_counter()
    with pytest.raises(InvalidValueError, match="a member's own error"):
        run_tasks([_slow_fit(slow, data), fails], n_jobs=2)
    assert slow.epochs_trained < 400  # stopped at a step, not run to the end
    assert time.perf_counter() - start < 60
    assert not [t for t in threading.enumerate() if t.name.startswith("grapheme-mm-member")]


def test_ctrl_c_in_the_caller_stops_every_member(default_sigint):
    data = {"visual": _views(n=256)["fou"]}
    models = [LearnableMultiModal(input_dims={"visual": 6}, embed_dim=16, hidden_dim=16, num_heads=2, seed=s) for s in (0, 1)]
    main = threading.get_ident()
    timer = threading.Timer(0.5, lambda: signal.pthread_kill(main, signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            run_tasks([_slow_fit(m, data) for m in models], n_jobs=2)
    finally:
        timer.cancel()
    for model in models:  # each rolled back to its last completed epoch, as fit does on Ctrl-C
        assert model.epochs_trained < 400 and len(model.history) == model.epochs_trained
    assert not [t for t in threading.enumerate() if t.name.startswith("grapheme-mm-member")]


def test_tasks_see_the_callers_context_and_are_not_cancelled_outside_a_run():
    var = contextvars.ContextVar("var", default="unset")
    var.set("the caller's")
    assert run_tasks([var.get, var.get], n_jobs=2) == ["the caller's", "the caller's"]
    check_cancelled()  # nothing to cancel outside run_tasks
    assert run_tasks([lambda: 1, lambda: 2, lambda: 3], n_jobs=2) == [1, 2, 3]  # in order


def test_the_estimator_trains_its_members_at_once_to_the_same_bits():
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    views = list(_views(n=80).values())
    options = dict(n_members=2, epochs=2, embed_dim=16, hidden_dim=16, num_heads=2, encoder_hidden=(16,), random_state=3)
    in_turn = MultimodalEmbedder(**options).fit(views)
    at_once = MultimodalEmbedder(**options, n_jobs=-1).fit(views)
    np.testing.assert_array_equal(at_once.transform(views), in_turn.transform(views))
    assert at_once.get_params()["n_jobs"] == -1 and in_turn.get_params()["n_jobs"] is None
    with pytest.raises(InvalidValueError, match="n_jobs: expected None or a non-zero int"):
        MultimodalEmbedder(**options, n_jobs=0).fit(views)
    state = at_once.__getstate__()
    del state["n_jobs"]  # as pickled before n_jobs existed
    old = MultimodalEmbedder.__new__(MultimodalEmbedder)
    old.__setstate__(state)
    assert old.n_jobs is None and "n_jobs" not in repr(old)


def test_members_at_once_are_counted_against_memory_before_any_trains(monkeypatch):
    from grapheme_multimodal import TooLargeError, _validation

    trained = []
    monkeypatch.setattr(uci, "fit_views", lambda *a, **k: trained.append(1))
    monkeypatch.setattr(_validation, "memory_budget", lambda: 1000)
    with pytest.raises(TooLargeError, match=r"^members: 3 models of [\d,]+ parameters, each with its training state, take"):
        uci.fit_ensemble(_views(), 0, members=3, settings=SMALL, n_jobs=3)
    assert not trained


def test_members_at_once_share_one_copy_of_the_callers_data(monkeypatch):
    """fit copies a writable float32 array for itself (the caller may write it
    mid-fit); members at once train on one read-only copy instead of one each,
    and the caller's array is left writable."""
    from grapheme_multimodal import training

    copies, own_copy = [], training._own_copy
    monkeypatch.setattr(training, "_own_copy", lambda a, *r: (lambda out: copies.append(out is not a) or out)(own_copy(a, *r)))
    views = _views()
    uci.fit_ensemble(views, 0, members=3, settings=SMALL, n_jobs=3)
    assert not any(copies)
    assert all(x.flags.writeable for x in views.values())
    copies.clear()
    uci.fit_ensemble(views, 0, members=3, settings=SMALL)  # in turn: each member's fit copies for itself, as ever
    assert sum(copies) == 3 * len(views)


@pytest.mark.parametrize("members", ["1", "2"])
def test_train_hands_fit_its_own_arrays_read_only_so_no_copy_is_made(members, tmp_path, monkeypatch, capsys):
    """The files' arrays are grapheme-mm's own: fit reads them in place for one
    model or K at once, not a copy per model of data no other thread holds."""
    from grapheme_multimodal import training
    from grapheme_multimodal.cli import main

    copies, own_copy = [], training._own_copy
    monkeypatch.setattr(training, "_own_copy", lambda a, *r: (lambda out: copies.append(out is not a) or out)(own_copy(a, *r)))
    for name, x in _views().items():
        np.save(tmp_path / f"{name}.npy", x)
    argv = ["train", "-m", f"visual={tmp_path / 'fou.npy'}", "-m", f"auditory={tmp_path / 'kar.npy'}", "--epochs", "2",
            "--embed-dim", "16", "--hidden-dim", "16", "--heads", "2", "--no-progress", "--members", members,
            "-o", str(tmp_path / "m.safetensors")]
    assert main(argv) == 0, capsys.readouterr().err
    assert copies and not any(copies)
