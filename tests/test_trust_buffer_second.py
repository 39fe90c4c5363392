"""Second hostile-use audit of the experience buffer and the model's record
paths: what a user could do that the first audit (test_trust_buffer.py)
did not try, each a clear error naming what was given, and nothing saved
that cannot be loaded."""

from __future__ import annotations

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal.buffer import Experience, ExperienceBuffer


def rows(n: int, e: int = 4, first_id: int = 0) -> dict:
    return dict(
        embeddings=np.ones((n, 7, e), np.float32),
        mask=np.ones((n, 7), bool),
        fused=np.zeros((n, e), np.float32),
        pair_strengths=np.zeros((n, 7, 7), np.float32),
        rewards=np.arange(n, dtype=np.float32) / 10,
        event_ids=np.arange(first_id, first_id + n),
    )


def small_model(embed_dim: int = 8) -> gm.LearnableMultiModal:
    return gm.LearnableMultiModal(seed=0, embed_dim=embed_dim, hidden_dim=8, num_heads=2, input_dims={"visual": 4})


def visual(n: int) -> dict:
    return {"visual": np.random.default_rng(n).normal(size=(n, 4)).astype(np.float32)}


# ------------------------------------------------------------ embed_dim 0
@pytest.mark.parametrize("how", ["extend", "append"])
def test_embeddings_of_no_columns_are_refused_not_saved_unloadable(tmp_path, how) -> None:
    """Embeddings of shape (n, 7, 0) were recorded: the buffer took
    embed_dim=0, and the file its save wrote was refused by from_file
    ("embed_dim: expected a positive int, got 0"): saved, never loadable."""
    buf = ExperienceBuffer(3)
    with pytest.raises(gm.ShapeError, match=r"embeddings: .*E >= 1") as err:
        if how == "extend":
            buf.extend(**rows(2, e=0))
        else:
            buf.append(Experience(np.ones((7, 0)), np.ones(7, bool), np.zeros(0), np.zeros((7, 7)), 0.0))
    assert "embeddings" in err.value.arg
    assert buf.embed_dim is None and len(buf) == 0
    buf.extend(**rows(2))
    buf.save(tmp_path / "b.safetensors")
    assert len(ExperienceBuffer.from_file(tmp_path / "b.safetensors")) == 2


def test_zero_rows_of_no_columns_leave_the_buffer_without_dims() -> None:
    buf = ExperienceBuffer(3)
    with pytest.raises(gm.ShapeError, match="embeddings"):
        buf.extend(**rows(0, e=0))
    assert buf.embed_dim is None


# ------------------------------------------- a model's buffer without dims
def test_a_models_buffer_without_dims_takes_no_rows_of_another_embed_dim(tmp_path) -> None:
    """A buffer made without embed_dim was accepted as model.experience (its
    dims None), and then took rows of any E given to its extend: the model's
    next record_batch failed with "embeddings: expected E=3 (the buffer's
    embed_dim), got 8", an argument record_batch has not, and compute_loss
    and fit from it on shapes the user never gave. Now the buffer takes the
    model's embed_dim when it is assigned, and its extend names the E."""
    model = small_model()
    buf = ExperienceBuffer(10)
    model.experience = buf
    assert buf.embed_dim == 8 and len(buf) == 0
    with pytest.raises(gm.ShapeError, match=r"embeddings: expected E=8 .*got 3") as err:
        buf.extend(**rows(1, e=3))
    assert err.value.arg == "embeddings" and len(buf) == 0
    model.record_batch(visual(3))
    assert len(buf) == 3 and np.isfinite(model.compute_loss())
    model.save(tmp_path / "m.safetensors")
    assert len(gm.LearnableMultiModal.load(tmp_path / "m.safetensors").experience) == 3


def test_a_buffer_without_dims_is_not_shared_by_models_of_two_embed_dims() -> None:
    """Two models of other embed_dims both accepted one buffer without dims;
    the first to record set its E, and the other's record_batch then failed
    naming embeddings. Now the second assignment is refused, naming
    experience and both dims, and the first model records as before."""
    first, second = small_model(8), small_model(16)
    shared = ExperienceBuffer(10)
    first.experience = shared
    own = second.experience
    with pytest.raises(gm.InvalidValueError, match=r"experience: a buffer of embed_dim=8 .*expected embed_dim=16") as err:
        second.experience = shared
    assert err.value.arg == "experience" and second.experience is own
    first.record_batch(visual(2))
    assert len(shared) == 2


def test_a_models_buffer_loading_an_empty_file_without_dims_keeps_the_models_embed_dim(tmp_path) -> None:
    """model.experience.load of a file saved by a buffer that never recorded
    (embed_dim None) left the model's buffer without dims again: rows of any
    E were then taken, as above."""
    ExperienceBuffer(5, seed=3).save(tmp_path / "empty.safetensors")
    model = small_model()
    model.experience.load(tmp_path / "empty.safetensors")
    assert (model.experience.embed_dim, model.experience.seed, model.experience.capacity) == (8, 3, 5)
    with pytest.raises(gm.ShapeError, match=r"embeddings: expected E=8"):
        model.experience.extend(**rows(1, e=3))
    model.record_batch(visual(2))
    assert len(model.experience) == 2


# ------------------------------------------------- append names its fields
def one(**change) -> Experience:
    fields = dict(embeddings=np.ones((7, 4), np.float32), mask=np.array([1, 0, 0, 0, 0, 0, 0], bool), fused=np.zeros(4, np.float32),
                  pair_strengths=np.zeros((7, 7), np.float32), reward=0.5, event_id=3,
                  inputs=[np.ones(3, np.float32), None, None, None, None, None, None])
    fields.update(change)
    return Experience(**fields)


NO_INPUTS = [None] * 7
ONLY_VISUAL = np.array([1, 0, 0, 0, 0, 0, 0], bool)


@pytest.mark.parametrize(
    "change, error, words",
    [
        (dict(reward=float("nan")), gm.NonFiniteError, r"^experience\.reward: holds NaN"),
        (dict(reward=np.float64(1e39)), gm.NonFiniteError, r"^experience\.reward: holds 1e\+39, too large for float32"),
        (dict(reward="1"), TypeError, r"^experience\.reward: "),
        (dict(reward=np.array([0.5, 1.0])), gm.ShapeError, r"^experience\.reward: expected one number, got shape \(2,\)"),
        (dict(event_id=2.5), gm.InvalidValueError, r"^experience\.event_id: expected integers"),
        (dict(event_id=np.uint64(2**63)), gm.InvalidValueError, r"^experience\.event_id: expected integers that fit in int64"),
        (dict(event_id=[1, 2]), gm.ShapeError, r"^experience\.event_id: expected one integer, got shape \(2,\)"),
        (dict(embeddings=np.ones((2, 7, 4))), gm.ShapeError, r"^experience\.embeddings: expected shape \(7, E\).*got \(2, 7, 4\)"),
        (dict(embeddings=np.ones((7, 5)), fused=np.zeros(5)), gm.ShapeError,
         r"^experience\.embeddings: expected shape \(7, 4\) \(the buffer's embed_dim\), got \(7, 5\)"),
        (dict(embeddings=np.where(np.eye(7, 4, k=-2) > 0, np.nan, 1.0)), gm.NonFiniteError,
         r"^experience\.embeddings\[2, 0\]: holds NaN"),
        (dict(fused=np.zeros(3)), gm.ShapeError, r"^experience\.fused: expected shape \(4,\), got \(3,\)"),
        (dict(fused=np.array([0, 0, np.inf, 0])), gm.NonFiniteError, r"^experience\.fused\[2\]: holds inf"),
        (dict(pair_strengths=np.zeros((7, 6))), gm.ShapeError, r"^experience\.pair_strengths: expected shape \(7, 7\)"),
        (dict(mask=np.ones(6, bool)), gm.ShapeError, r"^experience\.mask: expected shape \(7,\), got \(6,\)"),
        (dict(mask=ONLY_VISUAL, inputs=[np.array([1.0, np.nan, 0.0])] + [None] * 6), gm.NonFiniteError,
         r"^experience\.inputs\[0\]\[1\]: holds NaN"),
        (dict(mask=ONLY_VISUAL, inputs=[np.ones(2)] + [None] * 6), gm.ShapeError,
         r"^experience\.inputs\[0\]: expected shape \(3,\)"),
        (dict(mask=ONLY_VISUAL, inputs=NO_INPUTS), gm.InvalidValueError,
         r"^experience\.inputs\[0\]: None, but experience\.mask marks visual present"),
    ],
)
def test_append_names_the_experiences_field_not_extends_arguments(change, error, words) -> None:
    """append(experience) checked the experience through extend, whose
    errors named extend's arguments and a batch the user never made:
    "rewards: row 0 holds NaN" for experience.reward=NaN, "embeddings:
    expected shape (n, 7, E), got (1, 2, 7, 4)". Now each names the field
    of the experience, its own shape and where in it the value lies."""
    buf = ExperienceBuffer(4, input_dims=(3, 2, 2, 2, 2, 2, 2))
    buf.append(one())
    before = buf.batch()
    with pytest.raises(error, match=words):
        buf.append(one(**change))
    after = buf.batch()
    assert len(buf) == 1 and after.event_ids.tolist() == before.event_ids.tolist()


def test_append_to_a_buffer_that_keeps_no_inputs_names_experience_inputs() -> None:
    buf = ExperienceBuffer(4)
    with pytest.raises(gm.InvalidValueError, match=r"^experience\.inputs: .*keeps embeddings only") as err:
        buf.append(one())
    assert err.value.arg == "experience.inputs"
    assert buf.embed_dim is None and len(buf) == 0
    buf.append(one(inputs=None))
    assert buf.batch().event_ids.tolist() == [3]


def test_append_still_takes_what_it_took() -> None:
    """Valid experiences of any real dtype are recorded exactly as extend records them."""
    buf, bulk = ExperienceBuffer(4, input_dims=(3, 2, 2, 2, 2, 2, 2)), ExperienceBuffer(4, input_dims=(3, 2, 2, 2, 2, 2, 2))
    x = one(mask=ONLY_VISUAL.astype(int), embeddings=np.arange(28.0).reshape(7, 4), reward=np.float16(0.25), event_id=np.int8(-4),
            inputs=[np.arange(3)] + [None] * 6)
    buf.append(x)
    buf.append(one(event_id=7.0, reward=1))
    bulk.extend(np.stack([x.embeddings, np.ones((7, 4))]), np.stack([ONLY_VISUAL, ONLY_VISUAL]), np.zeros((2, 4)),
                np.zeros((2, 7, 7)), [0.25, 1.0], [-4, 7],
                inputs=[np.array([[0, 1, 2], [1, 1, 1]])] + [None] * 6)
    a, b = buf.batch(), bulk.batch()
    for field in ("embeddings", "mask", "fused", "rewards", "event_ids", "has_inputs"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    np.testing.assert_array_equal(a.inputs[0], b.inputs[0])


def test_append_of_a_ragged_mask_names_experience_mask() -> None:
    buf = ExperienceBuffer(4)
    with pytest.raises(gm.InvalidValueError, match=r"^experience\.mask: could not be read") as err:
        buf.append(one(mask=[[1], [0, 1]], inputs=None))
    assert err.value.arg == "experience.mask" and len(buf) == 0
