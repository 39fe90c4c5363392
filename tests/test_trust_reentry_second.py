"""User code running inside the library's calls, second pass: a metric
that replaces the model it is measuring (``__setstate__``) or rewrites its
training record (``epochs_trained``, ``history``), another thread that
replaces a model ``fit`` is training, and a row that holds no modality,
which ``fit`` took from arrays and lists of graphs but refused from events.
Each is refused with a clear error and the model left as it was, or works
as it does elsewhere."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping

import numpy as np
import pytest

import grapheme_multimodal as gm

from test_trust_model import small_model, snapshot, synthetic


def _trained(seed: int = 3) -> gm.LearnableMultiModal:
    model = small_model()
    model.fit(synthetic(64, seed=seed), epochs=1, progress=False)
    return model


# ------------------------------------------- a metric that replaces the model
def test_a_metric_that_replaces_the_model_by_setstate_is_refused() -> None:
    """``model.__setstate__(other.__getstate__())`` in a metric swapped the
    other model's weights in between two epochs, and fit trained on from
    them under its own epoch count: a silent mix of two models."""
    data, other = synthetic(64), _trained()
    state = other.__getstate__()
    model = small_model()
    before = snapshot(model)
    with pytest.raises(RuntimeError, match=r"^__setstate__: this model is being trained by fit, which is calling "
                                           r"metrics\['swap'\] in this thread"):
        model.fit(data, epochs=2, progress=False, metrics={"swap": lambda m: m.__setstate__(state) or 0.0})
    assert snapshot(model) == before
    model.fit(data, epochs=1, progress=False)  # and trains on as ever


def test_setstate_from_another_thread_waits_for_fit() -> None:
    """Another thread's ``__setstate__`` took no lock: it replaced the model
    (its lock too) in the middle of fit, whose next steps trained the
    replacement. It waits for fit now, as load_state_dict does, and the
    model is then the state's, whole."""
    data, other = synthetic(64), _trained()
    state, expected = other.__getstate__(), snapshot(other)
    model = small_model()
    replacer = threading.Thread(target=model.__setstate__, args=(state,))
    lock = model._lock

    def metric(m: gm.LearnableMultiModal) -> float:
        if not replacer.is_alive() and m.epochs_trained == 1:
            replacer.start()
        # until the replacer waits for fit's lock (or, as before, is done without waiting)
        for _ in range(20_000):
            if lock._gate.waiting or not replacer.is_alive():
                break
            time.sleep(0.001)
        return 0.0

    history = model.fit(data, epochs=2, progress=False, metrics={"m": metric})
    replacer.join()
    assert [e["epoch"] for e in history.epochs] == [1, 2]
    assert snapshot(model) == expected  # the state's model, not trained on by fit after it landed
    assert model._lock is lock  # one lock, for the threads that held or waited for it


def test_setstate_on_a_model_in_use_makes_it_the_state_model() -> None:
    """The attributes of the old model that the state lacks (a user's own,
    the cached record of untrained modalities) stayed beside the state's;
    a bad state leaves the model as it was."""
    model, other = small_model(), _trained()
    model.note = "old"
    other.tag = "new"
    model.encode(synthetic(4))
    model.__setstate__(other.__getstate__())
    assert snapshot(model) == snapshot(other) and model.tag == "new" and not hasattr(model, "note")
    model.fit(synthetic(64), epochs=1, progress=False)
    before = snapshot(model)
    with pytest.raises(gm.CheckpointError):
        model.__setstate__({"tensors": {}, "meta": {}})
    assert snapshot(model) == before


# ------------------------------------ a metric that rewrites the training record
def _set(name, value):
    return lambda m: setattr(m, name, value)


_REWRITES = {
    "epochs_trained=7": (_set("epochs_trained", 7), r"model\.epochs_trained \(from 1, to 7\)"),
    "epochs_trained=2.5": (_set("epochs_trained", 2.5), r"model\.epochs_trained \(from 1, to 2\.5\)"),
    "del epochs_trained": (lambda m: delattr(m, "epochs_trained"), r"model\.epochs_trained \(from 1, deleted\)"),
    "history=[]": (_set("history", []), r"model\.history \(replaced it\)"),
    "history=None": (_set("history", None), r"model\.history \(replaced it\)"),
    "del history": (lambda m: delattr(m, "history"), r"model\.history \(deleted it\)"),
    "history.clear()": (lambda m: m.history.clear(), r"model\.history \(in place\)"),
    "history.insert()": (lambda m: m.history.insert(0, {}), r"model\.history \(in place\)"),
}


@pytest.mark.parametrize("rewrite", list(_REWRITES), ids=list(_REWRITES))
def test_a_metric_that_rewrites_the_training_record_is_refused(rewrite) -> None:
    """No lock sees an assignment: the next epoch trained under epoch 8's
    shuffle and was recorded as epoch 8, or failed with numpy's bare "seed
    must be integer"; its record went to a list the metric had replaced;
    ``history = None`` failed the restore of the failed fit half way (a
    TypeError, the epoch count and history left as the metric set them)."""
    change, said = _REWRITES[rewrite]
    model = small_model()
    kept = model.history  # a caller may hold the list
    before = snapshot(model)
    with pytest.raises(RuntimeError, match=rf"^metrics\['m'\]: changed {said} in the middle of fit"):
        model.fit(synthetic(64), epochs=3, progress=False, metrics={"m": lambda m: change(m) or 0.0})
    assert snapshot(model) == before and model.history is kept


def test_a_failing_metric_that_broke_the_history_leaves_the_model_as_it_was() -> None:
    """Its own error is the one raised, and the restore completes."""
    model = small_model()
    before = snapshot(model)

    def metric(m: gm.LearnableMultiModal) -> float:
        m.history = None
        raise ValueError("the metric's own")

    with pytest.raises(ValueError, match="^the metric's own$"):
        model.fit(synthetic(64), epochs=2, progress=False, metrics={"m": metric})
    assert snapshot(model) == before


# ------------------------------------------- a row that holds no modality
def test_an_event_with_no_components_trains_as_a_row_false_throughout_the_mask() -> None:
    """fit refused an event with no components (``data[3]: event 3 has no
    components``) while a row False throughout ``mask``, or ``None`` in
    every list of graphs, trained: one rule now, both taken, every
    objective passing over the row."""
    data, empty = synthetic(40), [3, 17]
    mask = np.zeros((40, 7), bool)
    mask[:, :2] = True
    mask[empty] = False
    events = [gm.MultiModalEvent(i, [] if i in empty else [gm.ModalFeatures(data["visual"][i], "visual"),
                                                           gm.ModalFeatures(data["auditory"][i], "auditory")])
              for i in range(40)]
    by_events, by_mask = small_model(), small_model()
    from_events = by_events.fit(events, epochs=3, batch_size=8, validation=events, progress=False)
    from_mask = by_mask.fit(data, mask=mask, epochs=3, batch_size=8, validation=data, validation_mask=mask, progress=False)
    # the same training up to float32 rounding (components and dense rows sum in other orders)
    assert from_events.epochs[0]["loss"] == pytest.approx(from_mask.epochs[0]["loss"], rel=1e-6)
    events_state, mask_state = by_events.state_dict(), by_mask.state_dict()
    for name, weights in mask_state.items():
        np.testing.assert_allclose(events_state[name], weights, atol=1e-6, err_msg=name)
    # events with none at all are refused, as a mask False everywhere is
    model = small_model()
    with pytest.raises(gm.InvalidValueError, match=r"^data: no event has a component"):
        model.fit([gm.MultiModalEvent(i) for i in range(4)], epochs=1, progress=False)


# ------------------------------------------------ a mapping read more than once
class _NamesOtherwise(Mapping):
    """A mapping whose names are ``first`` when read the first time and
    ``later`` after."""

    def __init__(self, first, later, values) -> None:
        self.first, self.later, self.values, self.reads = first, later, values, 0

    def __getitem__(self, key):
        return self.values[key]

    def __iter__(self):
        self.reads += 1
        return iter(self.first if self.reads == 1 else self.later)

    def __len__(self) -> int:
        return len(self.first)


def test_metrics_whose_names_change_between_reads_are_checked_as_called() -> None:
    """Checked by one read and copied by another: a metric named ``total``
    (refused: it is recorded as ``val_total``, the validation loss) passed
    as ``a`` and overwrote the validation loss early stopping watched."""
    metrics = _NamesOtherwise(["a"], ["total"], {"a": lambda m: 1.0, "total": lambda m: -1.0})
    model = small_model()
    history = model.fit(synthetic(64), epochs=1, validation=synthetic(20, seed=1), progress=False, metrics=metrics)
    assert history.epochs[0]["val_a"] == 1.0 and history.epochs[0]["val_total"] != -1.0


# ------------------------------------------- the estimator's parameters mid-fit
class _Calls:
    """An array-like view whose first read calls ``call()``."""

    def __init__(self, x: np.ndarray, call) -> None:
        self.x, self.call, self.called = x, call, False

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        if not self.called:
            self.called = True
            self.call()
        return self.x if dtype is None else self.x.astype(dtype)

    def __len__(self) -> int:
        return len(self.x)

    @property
    def shape(self) -> tuple:
        return self.x.shape


@pytest.mark.parametrize("method", ["fit", "fit_transform"])
def test_set_params_from_the_estimators_own_fit_is_refused(method) -> None:
    """The thread's lock let it in: the model was made of the new
    ``embed_dim`` and the seeds of the old ``random_state``, while
    ``get_params`` said ``random_state=5``, a model no fit of those
    parameters makes."""
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    rng = np.random.default_rng(0)
    z = rng.normal(size=(60, 3))
    views = [z @ rng.normal(size=(3, 8)), z @ rng.normal(size=(3, 5))]
    est = MultimodalEmbedder(embed_dim=8, hidden_dim=16, num_heads=2, epochs=1).fit(views)
    model, params = est.model_, est.get_params()
    hostile = [_Calls(views[0], lambda: est.set_params(random_state=5, embed_dim=16)), views[1]]
    with pytest.raises(RuntimeError, match=r"^set_params: called in the middle of this estimator's own fit"):
        getattr(est, method)(hostile)
    assert est.get_params() == params and est.model_ is model
    est.set_params(embed_dim=16)  # after the fit, as ever
    assert est.fit(views).model_.config.embed_dim == 16
