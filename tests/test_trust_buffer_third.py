"""Third hostile-use audit of the experience API: what the first two
(test_trust_buffer.py, test_trust_buffer_second.py) did not try."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal.buffer import Experience, ExperienceBuffer


def rows(n: int, e: int = 4, first_id: int = 0) -> dict:
    return dict(
        embeddings=np.ones((n, 7, e), np.float32),
        mask=np.ones((n, 7), bool),
        fused=np.arange(first_id, first_id + n, dtype=np.float32)[:, None].repeat(e, 1),
        pair_strengths=np.zeros((n, 7, 7), np.float32),
        rewards=np.arange(n, dtype=np.float32) / 10,
        event_ids=np.arange(first_id, first_id + n),
    )


def buffer_with_inputs(n: int) -> ExperienceBuffer:
    """A buffer keeping inputs, its experiences' mask leaving modality 1 absent
    (NaN inputs there)."""
    buf = ExperienceBuffer(8, input_dims=[3] * 7)
    r = rows(n)
    r["mask"][:, 1] = False
    inputs = [np.full((n, 3), i, np.float32) for i in range(7)]
    inputs[1] = None
    buf.extend(**r, inputs=inputs)
    return buf


# ------------------------------------------------------------------ equality
def test_experiences_compare_by_value() -> None:
    """``==`` of two experiences (the dataclass's own) compared their arrays
    element-wise and raised "The truth value of an array with more than one
    element is ambiguous": ``b[0] == b[1]``, ``e in list(buffer)`` and
    ``list(buffer).index(e)`` all failed, naming nothing."""
    buf = ExperienceBuffer(5)
    buf.extend(**rows(3))
    held = list(buf)
    assert buf[0] == buf[0] and buf[0] == held[0]
    assert buf[0] != buf[1]
    assert buf[2] in held and held.index(buf[2]) == 2
    assert held[1] == pickle.loads(pickle.dumps(held[1])) == copy.deepcopy(held[1])
    other = copy.deepcopy(held[1])
    other.reward = 0.5
    assert other != held[1]
    other = copy.deepcopy(held[1])
    other.event_id = 99
    assert other != held[1]
    other = copy.deepcopy(held[1])
    other.fused = other.fused + 1
    assert other != held[1]
    assert (held[0] == "an experience") is False and held[0] != None  # noqa: E711 - the operator is under test
    with pytest.raises(TypeError, match="unhashable"):  # mutable: no hash, as the dataclass made it
        hash(held[0])


def test_experiences_with_inputs_compare_by_value_absent_ones_included() -> None:
    buf = buffer_with_inputs(2)
    a, b = buf[0], buf[0]
    assert a.inputs is not None and a.inputs[1] is None and a == b
    b.inputs = list(b.inputs)
    b.inputs[0] = b.inputs[0] + 1
    assert a != b
    given = Experience(a.embeddings, a.mask, a.fused, a.pair_strengths, a.reward, a.event_id,
                       [np.full(3, np.nan) if v is None else v for v in a.inputs])
    assert given != a, "an array of NaN where the other has None is another experience"
    assert given == copy.deepcopy(given), "NaN inputs (an absent modality's) equal themselves"
    assert Experience(a.embeddings, a.mask, a.fused, a.pair_strengths, a.reward, a.event_id) != a


def test_batches_compare_by_value() -> None:
    """Same for ExperienceBatch; the NaN rows of absent inputs equal themselves."""
    buf = buffer_with_inputs(4)
    assert buf.batch() == buf.batch()
    assert buf.batch() != buf.batch([0, 1])
    assert buf.batch([0, 1]) != buf.batch([1, 0])
    assert buf.batch() == pickle.loads(pickle.dumps(buf.batch()))
    assert (buf.batch() == 3) is False
    with pytest.raises(TypeError, match="unhashable"):
        hash(buf.batch())


# ------------------------------------------------------------------ sampling
@pytest.mark.parametrize("arg, value, error", [
    ("alpha", -1.0, gm.InvalidValueError), ("alpha", "0.6", TypeError), ("alpha", float("nan"), gm.InvalidValueError),
    ("beta", -0.5, gm.InvalidValueError), ("beta", None, TypeError), ("beta", float("inf"), gm.InvalidValueError)])
def test_bad_alpha_or_beta_is_refused_also_for_a_uniform_sample(arg, value, error) -> None:
    """Checked only with prioritized=True: sample(n, alpha=-1), or alpha
    given as a string by a caller who forgot prioritized=True, was a uniform
    batch without a word. Refused, the generator is where it was."""
    buf, twin = ExperienceBuffer(8, seed=4), ExperienceBuffer(8, seed=4)
    buf.extend(**rows(6))
    twin.extend(**rows(6))
    with pytest.raises(error, match=f"^{arg}: ") as err:  # a wrong type (a str, None) is a TypeError
        buf.sample(3, **{arg: value})
    assert getattr(err.value, "arg", arg) == arg
    np.testing.assert_array_equal(buf.sample(3).indices, twin.sample(3).indices)
    np.testing.assert_array_equal(buf.sample(3, alpha=0.0, beta=0.0).indices, twin.sample(3).indices)


def test_input_dims_as_a_numpy_array_are_taken_as_the_model_takes_them():
    """The model's config takes ``input_dims`` as a 1-D array of ints; the
    buffer refused one ("expected 7 ints ..., got array of shape (7,)")."""
    dims = np.array([3, 4, 5, 6, 7, 8, 9])
    buffer = gm.ExperienceBuffer(8, input_dims=dims)
    assert buffer.input_dims == tuple(int(d) for d in dims) == gm.ExperienceBuffer(8, input_dims=dims.tolist()).input_dims
    assert all(type(d) is int for d in buffer.input_dims)
    for bad, error in ((dims.reshape(7, 1), TypeError), (dims[:6], gm.ShapeError), (np.array([3.5] * 7), TypeError)):
        with pytest.raises(error, match=r"^input_dims"):
            gm.ExperienceBuffer(8, input_dims=bad)


def test_record_batch_refuses_bad_rewards_before_encoding_or_warning():
    """A reward array of the wrong shape (or bools) was refused only after
    the whole batch was encoded and its untrained modalities warned of."""
    import warnings

    rng = np.random.default_rng(0)
    model = gm.LearnableMultiModal(embed_dim=8, hidden_dim=8, num_heads=1, input_dims={"visual": 4, "auditory": 3})
    model.fit({"visual": rng.normal(size=(12, 4)).astype(np.float32)}, epochs=1, progress=False)
    inputs = {m: rng.normal(size=(5, d)).astype(np.float32) for m, d in (("visual", 4), ("auditory", 3))}
    for rewards, error in ((np.zeros(4), gm.ShapeError), (np.zeros((5, 1)), gm.ShapeError), (np.ones(5, bool), TypeError)):
        with warnings.catch_warnings():
            warnings.simplefilter("error", gm.UntrainedModalityWarning)  # warned first, this would be raised instead
            with pytest.raises(error, match=r"^rewards"):
                model.record_batch(inputs, rewards=rewards)
    assert model.num_experiences() == 0
    with pytest.warns(gm.UntrainedModalityWarning):  # a valid call warns as before
        model.record_batch(inputs, rewards=np.zeros(5))
    assert model.num_experiences() == 5
