"""A second hostile audit of session 53: call orders and lifecycles, what a
researcher does to one model over a day (fit, fail, get interrupted, save,
copy, change threads, fit on), rather than single calls
(tests/test_trust_audit_s53.py). No defect turned up. Each test here pins
a promise that no other test pins; each fails if that promise breaks."""

from __future__ import annotations

import copy
import json
import pickle
import threading
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import grapheme_multimodal as gm
from grapheme_multimodal import training
from grapheme_multimodal.checkpoint import checkpoint_state
from grapheme_multimodal.sklearn import MultimodalEmbedder
from grapheme_multimodal.stopping import fit_with_stopping

DIMS = {"visual": 5, "auditory": 4, "linguistic": 3}
OBJECTIVES = {"contrastive": 1.0, "fused_contrastive": 1.0, "binding": 2.0, "cross_modal": 0.1, "reconstruction": 1.0}


def views(n: int, seed: int) -> dict:
    """Three float32 views of one latent, ``n`` rows."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 3))
    return {m: (z @ rng.normal(size=(3, d)) + 0.1 * rng.normal(size=(n, d))).astype(np.float32) for m, d in DIMS.items()}


def model(**overrides) -> gm.LearnableMultiModal:
    options = dict(embed_dim=8, hidden_dim=8, num_heads=2, seed=1, input_dims=DIMS, encoder_hidden=(6,), shared_head=(8,),
                   learnable_temperature=True, encoder_input_dropout=0.2, encoder_hidden_dropout=0.3,
                   reconstruction_decoders=True, binder_kind="bilinear")
    return gm.LearnableMultiModal(**{**options, **overrides})


def full_state(m: gm.LearnableMultiModal, metric: str = "") -> tuple:
    """Everything a checkpoint holds, comparable: times left out, and the
    values of the metric ``metric`` (a probe's own column)."""
    tensors, meta = checkpoint_state(m)
    meta.pop("library_version")
    meta["history"] = [{k: v for k, v in r.items() if k not in ("seconds", f"val_{metric}")} for r in meta["history"]]
    return {k: v.tobytes() for k, v in tensors.items()}, json.dumps(meta, sort_keys=True)


class Failure(Exception):
    """A metric's own error."""


# ----------------------------------------------------------------- a day of calls
OPS = ["fit", "interrupted", "failed", "bad validation", "no epochs", "save", "deepcopy", "pickle", "threads"]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    total=st.integers(2, 5),
    ema_decay=st.sampled_from([None, 0.5, 0.9]),
    modality_dropout=st.sampled_from([0.0, 0.3]),
    validation=st.booleans(),
    shared_head=st.sampled_from([(), (8,)]),
    data=st.data(),
)
def test_any_order_of_fits_failures_interrupts_copies_and_files_trains_what_the_epochs_alone_train(
        tmp_path, total, ema_decay, modality_dropout, validation, shared_head, data) -> None:
    """The README's lifecycle promises, together and in any order: a fit
    that fails (a metric's error, bad validation rows) leaves the model as
    it was; one interrupted keeps its completed epochs; ``fit(epochs=0)``
    changes nothing; checkpoints, pickles and copies train on as the
    original; the thread count changes no bit. Whatever the order, the
    model ends as one ``fit(total)`` of a fresh model."""
    x, held = views(24, 0), views(8, 5)
    options = dict(batch_size=8, objectives=OBJECTIVES, ema_decay=ema_decay, modality_dropout=modality_dropout, progress=False)
    if validation:
        options["validation"] = held
    threads = gm.get_num_threads()
    m = model(shared_head=shared_head)
    try:
        for _ in range(12):  # then the epochs left, if any, in one fit: the calls drawn need not make progress
            left = total - m.epochs_trained
            if not left:
                break
            op = data.draw(st.sampled_from(OPS), label="call")
            if op == "fit":
                m.fit(x, epochs=data.draw(st.integers(1, left), label="epochs"), **options)
            elif op in ("interrupted", "failed"):
                at = m.epochs_trained + data.draw(st.integers(1, left), label="at epoch")
                error = KeyboardInterrupt if op == "interrupted" else Failure
                before = full_state(m)

                def stop_at(fitted, at=at, error=error):
                    if fitted.epochs_trained == at:
                        raise error
                    return 0.0

                with pytest.raises(error):
                    m.fit(x, epochs=left, metrics={"stop": stop_at}, **options)
                if op == "failed":
                    assert full_state(m) == before, "a failed fit leaves the model as it was"
                else:
                    assert m.epochs_trained == at - 1, "an interrupted fit keeps its completed epochs"
            elif op == "bad validation":
                spoilt = {k: v.copy() for k, v in held.items()}
                spoilt["auditory"][1, 1] = np.inf
                before = full_state(m)
                with pytest.raises(gm.NonFiniteError):
                    m.fit(x, epochs=left, **{**options, "validation": spoilt})
                assert full_state(m) == before
            elif op == "no epochs":
                before = full_state(m)
                m.fit(x, epochs=0, **options)
                assert full_state(m) == before
            elif op == "save":
                m.save(tmp_path / "day.safetensors")
                m = gm.LearnableMultiModal.load(tmp_path / "day.safetensors")
            elif op == "deepcopy":
                m = copy.deepcopy(m)
            elif op == "pickle":
                m = pickle.loads(pickle.dumps(m))
            else:
                gm.set_num_threads(data.draw(st.sampled_from([1, 2, 3]), label="threads"))
        if m.epochs_trained < total:
            m.fit(x, epochs=total - m.epochs_trained, **options)
    finally:
        gm.set_num_threads(threads)
    straight = model(shared_head=shared_head)
    straight.fit(x, epochs=total, **options)
    assert full_state(m, "stop") == full_state(straight)


# ----------------------------------------------------------------- stopping
@pytest.mark.parametrize("error", [Failure, KeyboardInterrupt])
@pytest.mark.parametrize("held_out", ["folds", "slice"])
def test_fit_with_stopping_failing_or_interrupted_while_it_trains_leaves_the_model_as_it_was(error, held_out) -> None:
    """Stopped in the cross-validation folds (copies of the model) or in the
    first epoch of the final fit, no epoch of the model completed: it is as
    it was (its average, history and Adam state too), and the next call
    trains it as it trains a model that never saw the failed one."""
    x = views(40, 0)
    options = dict(batch_size=8, objectives=OBJECTIVES, ema_decay=0.9, progress=False, epochs=6, patience=2,
                   monitor="val_contrastive", validation_fraction=0.1 if held_out == "folds" else 0.25,
                   min_validation_rows=32 if held_out == "folds" else 5, cv_folds=3)
    m, untouched = model(), model()
    for each in (m, untouched):
        each.fit(x, epochs=1, batch_size=8, objectives=OBJECTIVES, ema_decay=0.9, progress=False)
    before = full_state(m)
    calls = []

    def stop(fitted):
        calls.append(fitted is m)
        # the folds' copies measured four times; the model itself the first time it is
        if (held_out == "folds" and len(calls) == 4) or (held_out == "slice" and fitted is m):
            raise error
        return 0.0

    with pytest.raises(error):
        fit_with_stopping(m, x, metrics={"stop": stop}, mode="max", **options)
    assert (held_out == "folds") == (not any(calls)), "stopped where the test means to stop it"
    assert full_state(m) == before
    fit_with_stopping(m, x, **options)
    fit_with_stopping(untouched, x, **options)
    assert full_state(m) == full_state(untouched)


# ----------------------------------------------------------------- experience
def test_a_model_and_its_buffer_saved_apart_train_on_from_the_buffer_as_never_stopped(tmp_path) -> None:
    """Record, train from the buffer, save the model without its experience
    and the buffer on its own, load both into a new model: training from
    the buffer goes on bit for bit (the buffer's sampling generator too)."""
    x = views(30, 0)
    mask = np.zeros((30, 7), bool)
    mask[:, :3] = True
    mask[::4, 2] = False
    options = dict(batch_size=8, objectives={"contrastive": 1.0, "binding": 1.0, "seed_consistency": 0.5}, ema_decay=0.9,
                   progress=False)
    recorder = model()
    recorder.record_batch(x, mask, rewards=np.linspace(0, 1, 30))
    recorder.experience.sample(4)  # a look at some experiences: the generator moves on
    straight, stopped = copy.deepcopy(recorder), copy.deepcopy(recorder)
    straight.fit(straight.experience, epochs=4, **options)
    stopped.fit(stopped.experience, epochs=2, **options)
    stopped.save(tmp_path / "model.safetensors", include_experience=False)
    stopped.experience.save(tmp_path / "buffer.safetensors")
    resumed = gm.LearnableMultiModal.load(tmp_path / "model.safetensors")
    assert len(resumed.experience) == 0
    resumed.experience.load(tmp_path / "buffer.safetensors")
    resumed.fit(resumed.experience, epochs=2, **options)
    assert full_state(resumed) == full_state(straight)
    assert np.array_equal(resumed.experience.sample(5).indices, straight.experience.sample(5).indices)


@pytest.mark.parametrize("change", ["clear", "record", "load"])
def test_fit_from_the_buffer_trains_on_its_rows_as_they_were_when_fit_began(change, tmp_path) -> None:
    """A metric that clears, records into or reloads the buffer the model
    trains from (an RL loop recording as it goes) changes the buffer, not
    the rows this fit trains on: the weights are those of a fit whose
    buffer nobody touched."""
    x, other = views(30, 0), views(30, 9)
    options = dict(batch_size=8, objectives={"contrastive": 1.0, "binding": 1.0}, progress=False)
    reference = model()
    reference.record_batch(x, None, rewards=np.linspace(0, 1, 30))
    elsewhere = copy.deepcopy(reference)
    elsewhere.clear_experience()
    elsewhere.record_batch(other, None, rewards=np.zeros(30))
    elsewhere.experience.save(tmp_path / "other.safetensors")
    m = copy.deepcopy(reference)
    reference.fit(reference.experience, epochs=3, **options)

    def meddle(fitted):
        if fitted.epochs_trained == 1:
            if change == "clear":
                fitted.clear_experience()
            elif change == "record":
                fitted.record_batch(other, None, rewards=np.zeros(30))
            else:
                fitted.experience.load(tmp_path / "other.safetensors")
        return 0.0

    m.fit(m.experience, epochs=3, metrics={"meddle": meddle}, **options)
    weights = {k: v for k, v in full_state(m, "meddle")[0].items() if not k.startswith("experience/")}
    expected = {k: v for k, v in full_state(reference)[0].items() if not k.startswith("experience/")}
    assert weights == expected


# ----------------------------------------------------------------- threads
def test_the_thread_count_changed_by_another_thread_while_fit_trains_changes_no_bit() -> None:
    """``set_num_threads`` applies to the calls that start afterwards and
    results do not depend on the count: a thread that keeps changing it
    while another fits (steps large enough to be split) changes nothing."""
    rng = np.random.default_rng(0)
    x = {"visual": rng.normal(size=(600, 40)).astype(np.float32), "auditory": rng.normal(size=(600, 30)).astype(np.float32)}
    options = dict(embed_dim=16, hidden_dim=16, seed=0, input_dims={"visual": 40, "auditory": 30}, encoder_hidden=(32,),
                   encoder_input_dropout=0.2)
    fit_options = dict(batch_size=300, epochs=2, progress=False, ema_decay=0.9)
    threads = gm.get_num_threads()
    reference = gm.LearnableMultiModal(**options)
    reference.fit(x, **fit_options)
    stop = threading.Event()

    def keep_changing() -> None:
        counts = [1, 2, 8, 3]
        i = 0
        while not stop.is_set():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # more than 4 per CPU: clamped, with a warning
                gm.set_num_threads(counts[i % len(counts)])
            i += 1

    changer = threading.Thread(target=keep_changing)
    changer.start()
    try:
        m = gm.LearnableMultiModal(**options)
        m.fit(x, **fit_options)
        encoded = m.encode(x)
    finally:
        stop.set()
        changer.join()
        gm.set_num_threads(threads)
    assert full_state(m) == full_state(reference)
    assert np.array_equal(encoded, reference.encode(x))


# ----------------------------------------------------------------- the estimator
@pytest.mark.parametrize("error", [KeyboardInterrupt, MemoryError, Failure])
def test_an_estimator_refit_stopped_in_a_member_thread_keeps_its_fit_and_refits_as_a_fresh_one(error, monkeypatch) -> None:
    """``MultimodalEmbedder(n_members=2, n_jobs=2)`` fitted, then refitted
    with a step that raises in one member's thread: the error reaches the
    caller, the estimator transforms as before, no member thread is left,
    and its next fit is a fresh estimator's (set_params refits from
    scratch, not on from the old models). The refit is of three views:
    what it sets before training (the views' count and widths) is put
    back too."""
    rng = np.random.default_rng(0)
    z = rng.normal(size=(60, 3))
    xs = [(z @ rng.normal(size=(3, d)) + 0.1 * rng.normal(size=(60, d))).astype(np.float32) for d in (5, 4)]
    params = dict(embed_dim=8, hidden_dim=8, encoder_hidden=(6,), epochs=3, batch_size=16, patience=0, n_members=2, n_jobs=2)
    estimator = MultimodalEmbedder(**params).fit(xs)
    before = estimator.transform(xs)
    step, taken, lock = training.LocalSteps.step, [], threading.Lock()

    def failing_step(self, rows, keep):
        with lock:
            taken.append(1)
            count = len(taken)
        if count == 5:
            raise error("a member's step")
        return step(self, rows, keep)

    monkeypatch.setattr(training.LocalSteps, "step", failing_step)
    third = (z @ rng.normal(size=(3, 3))).astype(np.float32)  # a refit of other views: its settings change first
    with pytest.raises(error):
        estimator.set_params(random_state=3).fit([2 * x for x in xs] + [third])
    monkeypatch.setattr(training.LocalSteps, "step", step)
    assert np.array_equal(estimator.transform(xs), before) and estimator.n_views_ == 2
    assert not [t for t in threading.enumerate() if t.name.startswith("grapheme-mm-member")]
    fresh = MultimodalEmbedder(**{**params, "random_state": 3}).fit(xs)
    assert np.array_equal(estimator.fit(xs).transform(xs), fresh.transform(xs))
