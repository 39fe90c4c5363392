"""Session 63, the lead's own fixes."""

import numpy as np
import pytest

import grapheme_multimodal as gm

pd = pytest.importorskip("pandas")


def _frames():
    with_na = pd.DataFrame({"a": pd.array([1.0, pd.NA, 2.0], dtype="Float64"), "b": [1.0, 2.0, 3.0]})
    plain = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [3.0, 1.0, 2.0]})
    return {"visual": with_na, "auditory": plain}


@pytest.mark.parametrize("call", ["losses", "backward", "train_step", "train_step_of_a_batch"])
def test_the_learning_calls_name_a_frames_missing_value_as_encode_does(call):
    # encode and fit named pd.NA as a missing value; losses, backward and train_step (the core's words) said
    # "contains a non-finite value (NaN or inf)", a value the user never gave
    model = gm.LearnableMultiModal(input_dims={"visual": 2, "auditory": 2}, seed=0)
    before = model.state_dict()
    inputs = _frames()
    run = {
        "losses": lambda: model.losses(inputs),
        "backward": lambda: model.backward(inputs),
        "train_step": lambda: model.train_step(inputs),
        "train_step_of_a_batch": lambda: model.train_step(gm.Batch(inputs=inputs)),
    }[call]
    with pytest.raises(gm.NonFiniteError, match=r"inputs\['visual'\]: holds <NA> \(a missing value\) at row 1, column 'a'"):
        run()
    assert not model.has_gradients()
    assert all(np.array_equal(v, model.state_dict()[k]) for k, v in before.items())


def test_a_nan_given_as_such_is_still_called_nan_by_the_learning_calls():
    model = gm.LearnableMultiModal(input_dims={"visual": 2, "auditory": 2}, seed=0)
    inputs = {"visual": pd.DataFrame({"a": [1.0, np.nan, 2.0], "b": [1.0, 2.0, 3.0]}), "auditory": _frames()["auditory"]}
    with pytest.raises(gm.NonFiniteError, match="NaN or inf"):
        model.train_step(inputs)
