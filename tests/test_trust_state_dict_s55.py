"""state_dict() holds the inputs' standardisation (normalization.* buffers)
besides the parameters: the APIs around it that took it for the parameters
alone."""

from __future__ import annotations

import numpy as np
import pytest

import grapheme_multimodal as gm
from conftest import load_script

from test_trust_torch_habits_s55 import fitted_model


def test_a_weight_average_holds_the_state_dict_of_the_model_that_holds_it() -> None:
    """``model.weight_average.holds(model.state_dict())`` was False for a
    model holding the average (``held_by`` True): the state dict's
    standardisation buffers were taken for weights the average lacked."""
    model, _ = fitted_model(epochs=2, ema_decay=0.9)
    average = model.weight_average
    assert average.held_by(model)
    assert average.holds(model.state_dict())
    assert average.holds(average.averaged_weights())
    moved = model.state_dict()
    moved["fusion.0.bias"] = moved["fusion.0.bias"] + np.float32(1)
    assert not average.holds(moved)


def test_the_benchmarks_numpy_reference_refuses_a_state_dict_with_a_standardisation() -> None:
    """benchmarks/ref_numpy.py's model, "built from our state_dict so the
    outputs can be compared element by element", embeds the raw inputs: from
    a fitted model's state dict (now holding its standardisation) it
    computed other embeddings than the model, said nowhere."""
    ref_numpy = load_script("benchmarks/ref_numpy.py")
    model = gm.LearnableMultiModal(seed=0)
    x = np.random.default_rng(0).normal(3, 2, (32, 18)).astype(np.float32)
    unfitted = ref_numpy.NumpyModel(model.state_dict())
    assert unfitted.embed_dim == model.config.embed_dim
    model.fit({"visual": x}, epochs=1, progress=False)
    with pytest.raises(ValueError, match=r"^state_dict: holds the inputs' standardisation \(normalization\.visual\.mean, "
                                         r"normalization\.visual\.std, \.\.\.\), which the NumPy reference does not apply"):
        ref_numpy.NumpyModel(model.state_dict())
