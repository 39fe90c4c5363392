"""Ctrl-C in the middle of a multi-step call: the model is left as it was
before the call, or as of a completed epoch of ``fit`` — never with weights,
Adam state, standardisation and weight average from different moments."""

from __future__ import annotations

import _thread
import os
import signal

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal.averaging import WeightAverage

from test_trust_model import small_model, snapshot, synthetic
from conftest import ids_of_embeddings, unit_embeddings

pytestmark = pytest.mark.usefixtures("default_sigint")  # Ctrl-C raises, even in a background job


def test_an_interrupt_while_standardising_leaves_no_modality_standardised() -> None:
    """Ctrl-C between two modalities' standardisation: none is kept (a later
    fit would otherwise see one set, skip standardising, and train on half
    standardised inputs)."""
    model = small_model()
    before = snapshot(model)
    calls = []
    set_normalization = model.set_normalization

    def interrupted_on_the_second(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return set_normalization(*args, **kwargs)

    model.set_normalization = interrupted_on_the_second
    with pytest.raises(KeyboardInterrupt):
        model.fit(synthetic(), epochs=2, progress=False)
    del model.set_normalization
    assert snapshot(model) == before, "as before the call: no epoch completed"


def test_an_interrupt_in_the_first_epoch_drops_what_the_call_learned() -> None:
    model = small_model()
    before = snapshot(model)

    def interrupt(m):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        model.fit(synthetic(), epochs=2, metrics={"x": interrupt}, progress=False)
    assert snapshot(model) == before, "the standardisation of the interrupted call is dropped too"


def test_an_interrupt_while_averaging_an_epoch_goes_back_to_the_epoch_before(monkeypatch) -> None:
    """Ctrl-C while the weight average takes in epoch 2: the model is at the
    end of epoch 1 (as ``fit(epochs=1)`` leaves it), not at epoch 2 with an
    average that misses epoch 2."""
    data = synthetic()
    kw = dict(batch_size=16, ema_decay=0.5, progress=False)
    reference = small_model()
    reference.fit(data, epochs=1, **kw)

    updated = WeightAverage.updated
    calls = []

    def interrupted_on_the_second(self, weights):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return updated(self, weights)

    monkeypatch.setattr(WeightAverage, "updated", interrupted_on_the_second)
    model = small_model()
    with pytest.raises(KeyboardInterrupt):
        model.fit(data, epochs=3, **kw)
    assert model.epochs_trained == 1
    assert snapshot(model)[:4] == snapshot(reference)[:4]
    assert model.weight_average is not None and model.weight_average.count == 1


class _InterruptingCore:
    """The model's core, but the ``nth`` call of ``method`` (from the main
    thread) is followed by a Ctrl-C, as if the user pressed it right then
    (or by ``then()``, another event of that moment)."""

    def __init__(self, core, method: str, nth: int, then=_thread.interrupt_main) -> None:
        self._core, self._method, self._nth, self._then, self.calls = core, method, nth, then, 0

    def __getattr__(self, name: str):
        attr = getattr(self._core, name)
        if name != self._method:
            return attr

        def counted(*args, **kwargs):
            result = attr(*args, **kwargs)
            self.calls += 1
            if self.calls == self._nth:
                self._then()
            return result

        return counted


def test_load_state_dict_interrupted_as_its_tensors_are_written_loads_all_of_them() -> None:
    """The tensors go in one core call; Ctrl-C right after it must not cut
    the load off from what follows (the record of trained modalities)."""
    model = small_model()
    other = small_model()
    other.train_step(synthetic(32))
    target = other.state_dict()
    model._core = _InterruptingCore(model._core, "set_params", 1)
    with pytest.raises(KeyboardInterrupt):
        model.load_state_dict(target)
    model._core = model._core._core
    assert all(np.array_equal(v, target[k]) for k, v in model.state_dict().items()), "every tensor loaded, then the interrupt"
    assert model.trained_modalities is None, "the foreign encoders' record too"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler, "Ctrl-C works as before afterwards"


def test_a_second_interrupt_during_the_restore_of_a_partial_epoch_still_restores_it_whole() -> None:
    """The first Ctrl-C makes fit restore the epoch's start; a second one
    while it does (here: right after the weights are back) must not leave
    the weights of the epoch start beside the Adam state of the partial epoch."""
    data = synthetic()
    kw = dict(batch_size=16, standardize=False, progress=False)
    reference = small_model()
    reference.fit(data, epochs=1, **kw)
    model = small_model()

    def interrupt_in_epoch_2(m):
        if m.epochs_trained == 2:
            m._core = _InterruptingCore(m._core, "set_params", 1)  # as the weights are back
            raise KeyboardInterrupt
        return 0.0

    with pytest.raises(KeyboardInterrupt):
        model.fit(data, epochs=3, metrics={"x": interrupt_in_epoch_2}, **kw)
    model._core = getattr(model._core, "_core", model._core)
    assert snapshot(model)[:4] == snapshot(reference)[:4], "weights, Adam state and epoch count of epoch 1"


class _InterruptedAfterWrite(np.ndarray):
    """A buffer array that is followed by a Ctrl-C once written to."""

    def __setitem__(self, key, value) -> None:
        super().__setitem__(key, value)
        _thread.interrupt_main()


def test_an_interrupted_write_into_a_full_buffer_leaves_no_torn_experience() -> None:
    """Ctrl-C between two fields of a write into a full buffer (likely when
    recording a large batch): every experience read back has all its fields
    from one write; the oldest ones, being overwritten, are dropped."""
    buf = gm.ExperienceBuffer(4, embed_dim=2)

    def rows(first: int, n: int) -> dict:
        ids = np.arange(first, first + n)
        return dict(embeddings=unit_embeddings(ids), mask=np.ones((n, 7), bool),
                    fused=np.broadcast_to(ids[:, None], (n, 2)).astype(np.float32), pair_strengths=np.zeros((n, 7, 7)),
                    rewards=ids.astype(np.float32), event_ids=ids)

    buf.extend(**rows(0, 4))
    buf._arrays["embeddings"] = buf._arrays["embeddings"].view(_InterruptedAfterWrite)
    with pytest.raises(KeyboardInterrupt):
        buf.extend(**rows(10, 2))
    buf._arrays["embeddings"] = buf._arrays["embeddings"].view(np.ndarray)
    got = buf.batch()
    assert list(got.event_ids) == [2, 3], "the two experiences being overwritten are dropped, the others kept"
    for field in (ids_of_embeddings(got.embeddings[:, 0]), got.fused[:, 0], got.rewards):
        assert list(field) == list(got.event_ids), "each experience's fields come from one write"
    buf.extend(**rows(20, 3))  # the ring goes on from there
    assert list(buf.batch().event_ids) == [3, 20, 21, 22]


def test_an_interrupt_as_a_step_ends_never_leaves_stale_cached_results_looking_current(monkeypatch) -> None:
    """Ctrl-C may be raised on entering any Python function, so also on
    entering the one that marks cached per-event results stale after a
    training step: the step is taken, and fuse_event must still see it."""
    model = small_model()
    event = gm.MultiModalEvent(1, [gm.ModalFeatures(np.ones(10), "visual"), gm.ModalFeatures(np.ones(6), "auditory")])
    model.fuse_event(event)  # cached
    reference = small_model()
    reference.train_step(synthetic(32))

    def interrupted(self, weights: bool = True) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(gm.LearnableMultiModal, "_parameters_changed", interrupted)
    with pytest.raises(KeyboardInterrupt):
        model.train_step(synthetic(32))
    monkeypatch.undo()
    assert snapshot(model)[:2] == snapshot(reference)[:2], "the step was taken"
    assert np.array_equal(model.fuse_event(event), reference.fuse_event(event)), "not the result cached before the step"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1])
def test_a_programs_own_signal_handler_sees_the_model_whole_not_half_loaded(signum) -> None:
    """A "save on SIGTERM" handler runs in the main thread between two of its calls; the model's lock
    lets that thread read, so it saved weights of which half were loaded. It is held back to the end
    of the change, then run; the program's handler is back in place afterwards."""
    model = small_model()
    other = small_model()
    other.train_step(synthetic(32))
    target = other.state_dict()
    seen: list = []

    def save_on_signal(signum, frame) -> None:
        seen.append(model.state_dict())

    previous = signal.signal(signum, save_on_signal)
    try:
        # its Python handler runs as os.kill returns
        model._core = _InterruptingCore(model._core, "set_params", 1, then=lambda: os.kill(os.getpid(), signum))
        model.load_state_dict(target)
        model._core = model._core._core
        assert signal.getsignal(signum) is save_on_signal
    finally:
        signal.signal(signum, previous)
    assert len(seen) == 1, "the handler ran once, after the load"
    assert all(np.array_equal(v, target[k]) for k, v in seen[0].items()), "the handler saw every tensor loaded"


def test_an_uninterrupted_block_leaves_every_signals_handler_as_it_found_it() -> None:
    """The block reads and swaps the handlers through signal's C functions (for speed): ignored and
    default handlers are left alone, and each Python handler is put back as the very object it was."""
    from grapheme_multimodal._locking import uninterrupted

    def own(signum, frame) -> None:
        pass

    previous = {signum: signal.signal(signum, handler) for signum, handler in
                ((signal.SIGUSR1, own), (signal.SIGUSR2, signal.SIG_IGN), (signal.SIGHUP, signal.SIG_DFL))}
    try:
        before = {s: signal.getsignal(s) for s in signal.valid_signals() if s not in (signal.SIGKILL, signal.SIGSTOP)}
        with uninterrupted():
            assert signal.getsignal(signal.SIGUSR1) is not own, "the program's handler is held back in the block"
            assert signal.getsignal(signal.SIGUSR2) is signal.SIG_IGN and signal.getsignal(signal.SIGHUP) is signal.SIG_DFL
        after = {s: signal.getsignal(s) for s in before}
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    assert all(after[s] is before[s] for s in before), [s for s in before if after[s] is not before[s]]
