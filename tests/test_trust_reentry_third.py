"""User code running inside the library's calls, third pass: a buffer's
``__setstate__`` on a buffer in use (a model's, or one another thread
records into), the metrics of ``fit_with_stopping``'s cross-validation
folds, which could train the model the folds are copies of, and other
threads writing that model while its folds train. Each is refused with a
clear error and the model (or buffer) left as it was, or waits its turn."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import grapheme_multimodal as gm

from test_trust_model import small_model, synthetic


def _buffer_bytes(buffer: gm.ExperienceBuffer) -> tuple:
    tensors, meta = buffer.state()
    return {k: v.tobytes() for k, v in tensors.items()}, {k: v for k, v in meta.items() if k != "rng_state"}


# ------------------------------------------------- a buffer's __setstate__ in use
def test_setstate_of_a_models_buffer_refuses_a_buffer_of_another_embed_dim() -> None:
    """Took the state of a buffer of embed_dim 16 into the model's buffer
    (embed_dim 8) without the check ``model.experience = ...`` makes; the
    model's next ``record_batch`` then failed naming ``embeddings``, an
    argument its caller never passed."""
    model = small_model()
    model.record_batch(synthetic(4))
    before = _buffer_bytes(model.experience)
    state = gm.ExperienceBuffer(10, embed_dim=16).__getstate__()
    with pytest.raises(gm.CheckpointError, match=r"^state: is the state of a buffer of embed_dim=16, which this "
                                                  r"model's buffer cannot take .*expected embed_dim=8 or None") as info:
        model.experience.__setstate__(state)
    assert info.value.arg == "state"
    assert _buffer_bytes(model.experience) == before
    model.record_batch(synthetic(3))  # records on as ever
    assert len(model.experience) == 7


def test_setstate_of_a_models_buffer_takes_a_buffer_it_can_record_into() -> None:
    """Of the model's dims, or of none (a buffer that never recorded, which
    keeps the model's embed_dim, as ``load`` keeps it); the buffer keeps
    its lock and stays the model's."""
    model, other = small_model(), small_model()
    other.record_batch(synthetic(6, seed=2))
    buffer = model.experience
    lock = buffer._lock
    buffer.__setstate__(other.experience.__getstate__())
    assert _buffer_bytes(buffer) == _buffer_bytes(other.experience) and buffer._lock is lock
    model.record_batch(synthetic(3))
    assert len(buffer) == 9 and len(other.experience) == 6  # the state's arrays were copied, not shared
    buffer.__setstate__(gm.ExperienceBuffer(5).__getstate__())
    assert len(buffer) == 0 and buffer.embed_dim == 8
    model.record_batch(synthetic(3))
    with pytest.raises(gm.CheckpointError, match=r"embed_dim=16"):  # still the model's buffer
        buffer.__setstate__(gm.ExperienceBuffer(5, embed_dim=16).__getstate__())


@pytest.mark.parametrize("forge", [
    lambda s: None,
    lambda s: {},
    lambda s: {k: v for k, v in s.items() if k != "_arrays"},
    lambda s: {**s, "_rng": 3},
    lambda s: {**s, "_arrays": {**s["_arrays"], "rewards": np.full(len(s["_arrays"]["rewards"]), np.nan, np.float32)}},
], ids=["None", "empty", "no arrays", "no generator", "NaN rewards"])
def test_a_bad_state_leaves_a_buffer_in_use_as_it_was(forge) -> None:
    """Applied as far as it went: a state without arrays left the buffer's
    dims changed, its arrays the old ones (a bare KeyError or
    AttributeError, and the next record failed)."""
    buffer = gm.ExperienceBuffer(10, embed_dim=4)
    buffer.extend(np.full((3, 7, 4), 0.5), np.ones((3, 7), bool), np.ones((3, 4)), np.ones((3, 7, 7)), np.ones(3))
    before = _buffer_bytes(buffer)
    good = gm.ExperienceBuffer(20, embed_dim=6)
    good.extend(np.full((2, 7, 6), 6 ** -0.5), np.ones((2, 7), bool), np.ones((2, 6)), np.ones((2, 7, 7)), np.ones(2))
    with pytest.raises(gm.CheckpointError, match=r"^state: ") as info:
        buffer.__setstate__(forge(good.__getstate__()))
    assert info.value.arg == "state" and _buffer_bytes(buffer) == before
    buffer.extend(np.full((1, 7, 4), 0.5), np.ones((1, 7), bool), np.ones((1, 4)), np.ones((1, 7, 7)), np.ones(1))
    assert len(buffer) == 4


def test_setstate_from_another_thread_waits_for_a_record_in_progress() -> None:
    """Took no lock (a record in progress in another thread wrote into the
    old arrays after the swap, or half into each) and put a new lock in
    (the threads waiting for the old one ran beside those taking it)."""
    buffer = gm.ExperienceBuffer(10, embed_dim=4)
    other = gm.ExperienceBuffer(10, embed_dim=4)
    other.extend(np.full((2, 7, 4), 0.5), np.ones((2, 7), bool), np.ones((2, 4)), np.ones((2, 7, 7)), np.ones(2))
    lock = buffer._lock
    replacer = threading.Thread(target=buffer.__setstate__, args=(other.__getstate__(),))
    with lock:  # a record or sample in progress
        replacer.start()
        replacer.join(0.3)
        assert replacer.is_alive() and len(buffer) == 0  # waiting: the buffer is the record's until it ends
    replacer.join()
    assert buffer._lock is lock and _buffer_bytes(buffer) == _buffer_bytes(other)


# ------------------------------------- fit_with_stopping's cross-validation folds
from grapheme_multimodal.stopping import fit_with_stopping  # noqa: E402

from test_trust_model import snapshot  # noqa: E402


def _cv(model: gm.LearnableMultiModal, **kw) -> gm.training.History:
    # 40 rows: a tenth held out is 4, under min_validation_rows, so 5 folds train copies of the model
    options = dict(validation_fraction=0.1, patience=2, monitor="loss", epochs=3, progress=False)
    return fit_with_stopping(model, synthetic(40), **{**options, **kw})


def _training(model: gm.LearnableMultiModal):
    return lambda fold: model.train_step(synthetic(40)) and 0.0


_CHANGES = {
    "train_step": (_training, r"^train_step: this model is being trained by fit, which is calling metrics\['m'\]"),
    "load_state_dict": (lambda model: lambda fold: model.load_state_dict(fold.state_dict()) and 0.0,
                        r"^load_state_dict: this model is being trained by fit"),
    "fit": (lambda model: lambda fold: model.fit(synthetic(40), epochs=1, progress=False) and 0.0,
            r"^fit: this model is being trained by fit"),
    "epochs_trained=5": (lambda model: lambda fold: setattr(model, "epochs_trained", 5),
                         r"^metrics\['m'\]: changed model\.epochs_trained of the model whose cross-validation folds"),
    "history.append": (lambda model: lambda fold: model.history.append({}),
                       r"^metrics\['m'\]: changed model\.history of the model whose cross-validation folds"),
}


@pytest.mark.parametrize("change", list(_CHANGES), ids=list(_CHANGES))
def test_a_fold_metric_that_changes_the_model_the_folds_copy_is_refused(change) -> None:
    """Fit marked the fold it calls a metric for, not the model the folds
    are copies of: a metric that held that model trained it between the
    folds' epochs (five steps an epoch here), and the final fit trained on
    from it for a count of epochs chosen on copies of another model."""
    make, said = _CHANGES[change]
    model = small_model()
    model.fit(synthetic(40, seed=1), epochs=1, progress=False)  # a history to change
    before = snapshot(model)
    with pytest.raises(RuntimeError, match=said):
        _cv(model, metrics={"m": make(model)})
    assert snapshot(model) == before


def test_fold_metrics_that_read_the_model_and_the_fold_are_fine() -> None:
    model = small_model()
    seen = []
    history = _cv(model, metrics={"m": lambda fold: seen.append(model.encode(synthetic(4)).shape) or float(fold.epochs_trained)})
    assert len(history.cv_curve) >= 1 and seen and model.epochs_trained == len(history.epochs)


def test_a_metric_of_a_fit_inside_a_metric_cannot_train_the_outer_model() -> None:
    """Only the innermost fit's model was marked: a metric of model A that
    fitted model B, whose metric trained A, trained A in the middle of A's
    fit."""
    outer, inner = small_model(), small_model()
    before = snapshot(outer)

    def outer_metric(m: gm.LearnableMultiModal) -> float:
        inner.fit(synthetic(40), epochs=1, progress=False, metrics={"inner": _training(outer)})
        return 0.0

    with pytest.raises(RuntimeError, match=r"^train_step: this model is being trained by fit, which is calling "
                                           r"metrics\['outer'\]"):
        outer.fit(synthetic(40), epochs=2, progress=False, metrics={"outer": outer_metric})
    assert snapshot(outer) == before


def test_another_threads_write_waits_for_the_folds_and_the_final_fit() -> None:
    """The model's lock was not held while the folds trained: another
    thread's load_state_dict landed between the folds' copies and the final
    fit, which trained on from those weights for the folds' count of
    epochs. It waits now, as for fit, and lands after it."""
    model, other = small_model(), small_model()
    other.fit(synthetic(40, seed=3), epochs=1, progress=False)
    weights = other.state_dict()
    writer = threading.Thread(target=model.load_state_dict, args=(weights,))
    lock = model._lock

    def metric(fold: gm.LearnableMultiModal) -> float:
        if writer.ident is None:
            writer.start()
        for _ in range(20_000):  # until the writer waits for the model's lock (or, as before, is done)
            if lock._gate.waiting or not writer.is_alive():
                break
            threading.Event().wait(0.001)
        return 0.0

    history = _cv(model, metrics={"m": metric})
    writer.join()
    assert history.cv_curve and all(np.array_equal(v, weights[k]) for k, v in model.state_dict().items())


# ------------------------------- code fit's own thread runs outside its metrics
import signal  # noqa: E402

import grapheme_multimodal.training as training  # noqa: E402

_POSIX_SIGNALS = pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="SIGUSR1 is POSIX")


@pytest.fixture
def handler_mid_fit(monkeypatch):
    """``install(action)``: a SIGUSR1 handler running ``action()`` once,
    with the signal sent before the third step of whichever fit runs next
    in this thread (where a signal may land: between two steps)."""
    previous = signal.getsignal(signal.SIGUSR1)
    outcome = []

    def install(action):
        steps = []

        def handler(signum, frame):
            try:
                outcome.append(action())
            except RuntimeError as err:
                outcome.append(err)
                raise

        def before_step():
            steps.append(1)
            if len(steps) == 3:
                signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)

        signal.signal(signal.SIGUSR1, handler)
        monkeypatch.setattr(training, "check_cancelled", before_step)
        return outcome

    yield install
    signal.signal(signal.SIGUSR1, previous)


@_POSIX_SIGNALS
def test_a_fit_from_a_signal_handler_in_the_middle_of_fit_is_refused(handler_mid_fit) -> None:
    """The lock let the handler's fit in as the outer fit's own: it trained
    an epoch between two of the outer fit's steps, and the outer fit went
    on under epoch 0's shuffle recording its epochs as 2, 3, 4 (its
    History too) for the 3 it was asked."""
    model = small_model()
    model.fit(synthetic(40, seed=1), epochs=1, progress=False)
    before = snapshot(model)
    outcome = handler_mid_fit(lambda: model.fit(synthetic(40, seed=9), epochs=1, progress=False))
    with pytest.raises(RuntimeError, match=r"^fit: this model's fit is running in this thread, which called this fit "
                                           r"from code of its own \(a signal handler"):
        model.fit(synthetic(64), epochs=3, batch_size=16, progress=False)
    assert isinstance(outcome[0], RuntimeError) and snapshot(model) == before
    handler_mid_fit(lambda: small_model().fit(synthetic(40), epochs=1, progress=False))  # another model: fine
    history = model.fit(synthetic(64), epochs=3, batch_size=16, progress=False)
    assert [r["epoch"] for r in history.epochs] == [2, 3, 4]


@_POSIX_SIGNALS
def test_a_fit_from_a_signal_handler_while_the_folds_train_is_refused(handler_mid_fit) -> None:
    """With the model's lock now held for the folds, a handler's fit of
    the model would get in as the folds' own: refused as in fit."""
    model = small_model()
    before = snapshot(model)
    handler_mid_fit(lambda: model.fit(synthetic(40, seed=9), epochs=1, progress=False))
    with pytest.raises(RuntimeError, match=r"^fit: this model's fit is running in this thread"):
        _cv(model)
    assert snapshot(model) == before
