"""Defects earlier sessions noticed and left (s62). Each test says what a
user saw before the fix."""

import re

import pytest

import grapheme_multimodal as gm
from conftest import model_state, two_view_data, two_view_model


class _AssignedOnFirstReadUnderFitsLock(gm.LearnableMultiModal):
    """A model whose attribute ``changed`` is assigned ``to`` right after
    its first read once fit holds the model's lock: what another thread's
    assignment between two of fit's reads of it does, without a thread."""

    changed: str = ""
    to: object = None
    armed = False

    def __getattribute__(self, name):
        value = super().__getattribute__(name)
        state = object.__getattribute__(self, "__dict__")
        if name == type(self).changed and state.get("_armed_now") and not state.get("_fired"):
            state["_fired"] = True
            state[name] = type(self).to  # the other thread's assignment, just after this read
        return value


def _model_assigning(changed, to):
    """A :func:`two_view_model` whose ``changed`` becomes ``to`` just after
    fit, holding the model's lock, first reads it."""
    model = two_view_model()
    model.__class__ = type("Assigning", (_AssignedOnFirstReadUnderFitsLock,), {"changed": changed, "to": to})
    lock, updating = model._lock, model._lock.updating

    class _Arming:
        def __enter__(self):
            entered = updating().__enter__()
            model.__dict__["_armed_now"] = True
            return entered

        def __exit__(self, *exc):
            model.__dict__["_armed_now"] = False
            return updating().__exit__(*exc)

    lock.updating = _Arming  # fit's `with model._lock.updating()` arms the change
    return model


@pytest.mark.parametrize("changed, to, said", [
    ("epochs_trained", 5, r"model\.epochs_trained \(from 0, to 5\)"),
    ("history", [], r"model\.history \(replaced it\)"),
], ids=["epochs_trained", "history"])
def test_a_record_assigned_between_fits_reads_of_it_is_refused(changed, to, said):
    """Fit read ``model.epochs_trained`` (and ``model.history``) three times
    under its lock: to check it, for its undo copy, for its own count. Another
    thread's ``model.epochs_trained = 5`` between two of those reads was not
    refused: fit counted epochs 6.. from a value its undo copy did not hold
    (or recorded into a list the copy did not hold). Now each is read once:
    the assignment is found at the epoch's end, refused, and the model put
    back as it was."""
    model = _model_assigning(changed, to)
    before = model_state(model)
    with pytest.raises(RuntimeError) as raised:
        model.fit(two_view_data(), epochs=1, batch_size=10, progress=False)
    assert re.match(rf"^fit: changed {said} in the middle of fit, from another thread", str(raised.value)), raised.value
    assert model.__dict__["_fired"]  # the assignment did happen under fit's lock
    assert model_state(model) == before and model.history == []
