"""Defects found by a hostile review of the code added in 55d2907..main (s57):
each test fails before its fix."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import training


def _small() -> gm.LearnableMultiModal:
    return gm.LearnableMultiModal(input_dims={"visual": 5}, embed_dim=8, hidden_dim=8, num_heads=2, seed=0)


def _rows(n: int = 16) -> dict:
    return {"visual": np.random.default_rng(0).normal(size=(n, 5))}


class _ClosingFails(training.LocalSteps):
    def close(self):
        super().close()
        raise RuntimeError("cannot reach the workers")


@pytest.mark.parametrize("how", ["training.fit", "model.fit"])
def test_a_failure_to_end_the_steps_is_said_at_the_callers_line(how) -> None:
    """Before: the RuntimeWarning said of a failed ``stepper.close()`` was
    raised with ``stacklevel=3`` counted from ``fit``, which the new
    ``_scopes_bound`` wrapper put one frame further from the caller: it
    pointed at a line of grapheme_multimodal/training.py (and under the
    "default" filter was said once per that line, for every caller)."""
    model = _small()
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        if how == "training.fit":
            training.fit(model, _rows(), epochs=1, progress=False, _steps=_ClosingFails)
        else:
            model.fit(_rows(), epochs=1, progress=False, _steps=_ClosingFails)
    closing = [w for w in said if "ending its training steps" in str(w.message)]
    assert len(closing) == 1 and closing[0].filename == __file__, [(w.filename, str(w.message)[:80]) for w in said]
    assert model.epochs_trained == 1
