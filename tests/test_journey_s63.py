"""A newcomer's first hour from the README: what confused, misled or went
unexplained, each pinned.

- Feature rows of their own width given to a model made without
  ``input_dims`` were refused as "expected shape (any, 18), got (n, 4)",
  naming neither where the 18 came from nor the ``input_dims`` that fixes it.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import grapheme_multimodal as gm


def _rows(n: int, d: int) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(n, d))


def test_feature_rows_without_input_dims_name_the_input_dims_to_give() -> None:
    model = gm.LearnableMultiModal(seed=0, input_dims={"tactile": 5})
    before = model.state_dict()
    data = {"visual": _rows(12, 40), "auditory": _rows(12, 18), "linguistic": _rows(12, 7)}
    with pytest.raises(gm.ShapeError, match=re.escape(
            "data['visual']: expected shape (any, 18), got (12, 40); a modality takes its graph features unless "
            "input_dims gives it another width: for these feature rows, make the model with "
            "input_dims={'visual': 40, 'linguistic': 7, 'tactile': 5}")) as info:
        model.fit(data, epochs=1, progress=False)
    assert info.value.arg == "data['visual']"
    assert all(np.array_equal(before[k], v) for k, v in model.state_dict().items())
    # the input_dims it names is one that fits
    gm.LearnableMultiModal(seed=0, input_dims={"visual": 40, "linguistic": 7, "tactile": 5}).fit(
        data, epochs=1, progress=False)


def test_a_width_refused_after_training_adds_no_input_dims_advice() -> None:
    """A trained modality's width is the model's: the rows are what is wrong, not the model."""
    model = gm.LearnableMultiModal(seed=0)
    model.fit({"visual": _rows(12, 18), "auditory": _rows(12, 18)}, epochs=1, progress=False)
    with pytest.raises(gm.ShapeError) as info:
        model.encode({"visual": _rows(3, 4)})
    assert str(info.value) == "inputs['visual']: expected shape (any, 18), got (3, 4)"
