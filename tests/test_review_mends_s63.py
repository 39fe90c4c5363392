"""The s63 review's mends: a data frame's missing value named as such by
every call that reads rows, numbers as text in an object array refused
with the conversion that keeps them (as both TypeError and ValueError),
a pasteable remedy for extra columns beside many learned ones, and an
edited pickle's odd array shape refused as a CheckpointError."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import training
from grapheme_multimodal.stopping import fit_with_stopping

pd = pytest.importorskip("pandas")

ROWS = 16


def _model(dim: int = 3) -> gm.LearnableMultiModal:
    return gm.LearnableMultiModal(input_dims={"visual": dim}, embed_dim=8, hidden_dim=8, num_heads=2, seed=0)


def _with_na() -> "pd.DataFrame":
    frame = pd.DataFrame(np.random.default_rng(0).normal(size=(ROWS, 3)), columns=list("abc")).astype("Float64")
    frame.iloc[5, 1] = pd.NA
    return frame


# ------------------------------------------------------------- pd.NA named alike
@pytest.mark.parametrize("call, arg", [
    (lambda m, v: training.fit(m, {"visual": v}, epochs=1, progress=False), "data"),
    (lambda m, v: m.fit({"visual": v}, epochs=1, progress=False), "data"),
    (lambda m, v: m.fit({"visual": v.fillna(0)}, validation={"visual": v}, epochs=1, progress=False), "validation"),
    (lambda m, v: fit_with_stopping(m, {"visual": v}, epochs=1, progress=False, validation_fraction=0.25,
                                    patience=1, monitor="val_total"), "inputs"),
    # record_batch learns no standardisation: its refusal came from the encoding, of "a non-finite value"
    (lambda m, v: m.record_batch({"visual": v}, None, np.ones(ROWS, np.float32)), "inputs"),
])
def test_missing_value_named_by_every_call_that_reads_rows(call, arg):
    model = _model()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(gm.NonFiniteError, match=rf"^{arg}\['visual'\]: holds <NA> \(a missing value\) at row 5, "
                                                    r"column 'b'") as info:
            call(model, _with_na())
    assert info.value.arg == f"{arg}['visual']"


def test_missing_value_in_rows_marked_absent_is_not_refused():
    frame = _with_na()
    mask = np.ones((ROWS, 7), bool)
    mask[5] = False
    mask[:, 1:] = False
    training.fit(_model(), {"visual": frame}, mask=mask, epochs=1, progress=False)
