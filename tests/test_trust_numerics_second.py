"""Numerical extremes, second pass: finite numbers a user could hand the
model that still left non-finite values in it, or were refused for an
overflow of the library's own making. Each test failed before its fix."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

import grapheme_multimodal as gm
from test_trust_core import all_finite_state, same_state, state  # a model's weights and Adam state, compared
from test_trust_numerics import inputs, small_model  # the first pass's small model and data



# ------------------------------------------------- gradients accumulated by backward
def test_gradients_accumulated_past_float32_are_refused_and_the_accumulated_ones_kept():
    # Each backward's own gradients were checked, their sum since zero_grad() was not: at a
    # binding weight of 2e38 (a finite loss) some 200 calls added up past float32, and the
    # model's gradients became inf without a word. gradients() returned inf, step() refused
    # them, and a pickle of the model could not be loaded ("gradients: contains NaN or inf").
    m = small_model()
    x = inputs()
    for calls in range(1, 400):
        before, grads = state(m), m.gradients()
        try:
            m.backward(x, weights={"binding": 2e38})
        except gm.NonFiniteError as refused:
            err = refused
            break
        assert all(np.isfinite(g).all() for g in m.gradients().values()), f"non-finite gradients after {calls} calls"
    else:
        pytest.fail("400 calls of backward never reached float32's largest gradient")
    assert err.arg == "gradients"
    assert str(err).startswith("gradients: adding this batch's gradients to those accumulated since zero_grad() "
                               "overflows float32 at parameter "), err
    assert "call step() or zero_grad()" in str(err)
    # the refused call changed nothing: gradients, draw counter, weights, Adam
    assert same_state(state(m), before)
    assert all(np.array_equal(g, grads[k]) for k, g in m.gradients().items())
    copied = pickle.loads(pickle.dumps(m))
    assert all(np.array_equal(g, grads[k]) for k, g in copied.gradients().items())
    m.step()
    assert all_finite_state(m)


def test_gradients_accumulated_within_float32_add_up_as_before():
    # the sums kept are the sums: each call's gradients (its own draws) added in float32
    m, separate = small_model(), small_model()
    a, b = inputs(seed=1), inputs(seed=2)
    m.backward(a)
    m.backward(b)
    separate.backward(a)
    first = separate.gradients()
    separate.zero_grad()  # keeps the draw counter: the next call draws as m's second did
    separate.backward(b)
    second = separate.gradients()
    for k, g in m.gradients().items():
        assert np.array_equal(g, first[k] + second[k]), k


# ------------------------------------------------- standardisation of wide columns
@pytest.mark.parametrize("hidden", [(), (8,)])
def test_standardising_a_column_that_spans_float32_gives_its_moderate_z_scores(hidden):
    # (x - mean) was computed in float32: a column of -2e38 with one row of 2e38 (mean
    # -1.75e38, std 9.7e37: z-scores -0.26 and 3.87) overflowed there, and fit refused the
    # user's data: "data['visual']: row 0 overflows float32 in the encoder (after the model's
    # normalization, if any); expected values of moderate size" — values float32 holds,
    # which the same fit with standardize=False trained on.
    x = inputs()
    v = x["visual"].astype(np.float32)
    v[:, 0] = -2e38
    v[0, 0] = 2e38
    x["visual"] = v
    m = small_model(encoder_hidden=hidden)
    history = m.fit(x, epochs=2, progress=False, seed=0)
    assert np.isfinite(history.epochs[-1]["loss"]) and all_finite_state(m)
    mean, std = m.normalization("visual")
    with np.errstate(over="ignore"):
        z = (v - mean) / std  # as the model computes it, in float32 ...
    wide = ((v.astype(np.float64) - mean) / std).astype(np.float32)
    z = np.where(np.isfinite(z), z, wide)  # ... but where only x - mean overflowed there
    assert np.isfinite(z).all() and 3.8 < z[0, 0] < 3.9
    # the embeddings are those of these z-scores given to the model without its normalisation
    plain = copy.deepcopy(m)
    plain.set_normalization("visual")
    np.testing.assert_array_equal(m.encode(x), plain.encode({"visual": z, "auditory": x["auditory"]}))
    # a z-score beyond float32 itself is still refused, naming the row
    m.set_normalization("visual", np.zeros(5), np.full(5, 1e-30))
    with pytest.raises(gm.NonFiniteError, match=r"^inputs\['visual'\]: row 0 overflows float32 in the encoder") as err:
        m.encode({"visual": np.full((2, 5), 1e10), "auditory": x["auditory"][:2]})
    assert err.value.arg == "inputs['visual']"
