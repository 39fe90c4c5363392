"""Leftovers of a hostile pass over the lower-level model API (the binder's
strengths, train_step's batches of events).

Each test failed before its fix."""

from __future__ import annotations

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import InvalidValueError, NonFiniteError


def _model_with_binder_weights(positions) -> gm.LearnableMultiModal:
    model = gm.LearnableMultiModal(seed=0)
    state = model.state_dict()
    w = np.zeros_like(state["binder.weight"])
    w[0, positions] = 1.0
    state["binder.weight"], state["binder.bias"] = w, np.zeros(1, np.float32)
    model.load_state_dict(state)
    return model


def test_a_binder_logit_that_overflows_float32_is_refused_not_saturated_to_the_wrong_strength() -> None:
    # Additive binder weights 1 on four entries of `a` holding 2e38, 2e38, -3e38, -3e38: the
    # logit is -2e38, strength 0. A partial sum of the two positives overflowed to +inf, and
    # bind and pair_strengths answered 1.0 without a word (the bilinear binder's overflow, a
    # NaN, was refused). Several strides: some placement shares an accumulator on any kernel.
    for stride in (1, 2, 4, 8, 16):
        positions = [k * stride for k in range(4)]
        model = _model_with_binder_weights(positions)
        a = np.zeros((1, 64), np.float32)
        a[0, positions] = [2e38, 2e38, -3e38, -3e38]
        b = np.zeros((1, 64), np.float32)
        try:
            strength = model.bind(a, b)
        except NonFiniteError as err:
            assert err.arg == "a" and "overflows float32" in str(err)
        else:
            assert strength[0] == 0.0, f"stride {stride}: the strength of a logit of -2e38, got {strength[0]}"
        emb = np.zeros((1, 7, 64), np.float32)
        emb[0, 0], emb[0, 1, 0] = a[0], 1e-3
        mask = np.zeros((1, 7), bool)
        mask[0, :2] = True
        try:
            pairs = model.pair_strengths(emb, mask)
        except NonFiniteError as err:
            assert err.arg == "embeddings" and "overflows float32" in str(err)
        else:
            assert pairs[0, 0, 1] == 0.0, f"stride {stride}: the strength of a logit of -2e38, got {pairs[0, 0, 1]}"


def _trained_model() -> gm.LearnableMultiModal:
    model = gm.LearnableMultiModal(seed=0, embed_dim=16, hidden_dim=16, num_heads=2, input_dims={"visual": 4, "auditory": 3})
    rng = np.random.default_rng(0)
    model.train_step({"visual": rng.normal(size=(6, 4)), "auditory": rng.normal(size=(6, 3))})  # Adam's moments: not 0
    return model


def _state(model: gm.LearnableMultiModal):
    return model.state_dict(), model.optimizer_state()


def _assert_same_state(before, after) -> None:
    for name, value in before[0].items():
        np.testing.assert_array_equal(after[0][name], value, err_msg=name)
    assert after[1]["step"] == before[1]["step"]


@pytest.mark.parametrize(
    "batch",
    [
        gm.Batch(events=[gm.MultiModalEvent(1)]),
        gm.Batch(events=[gm.MultiModalEvent(1), gm.MultiModalEvent(2)]),
        gm.Batch(components=(3, [None] * 7)),
        gm.Batch(components=(3, [(np.zeros((0, 4)), np.zeros(0, np.int64), None)] + [None] * 6)),
    ],
    ids=["one-empty-event", "two-empty-events", "no-parts", "a-part-of-no-rows"],
)
def test_train_step_on_events_without_a_component_is_refused_and_leaves_the_model(batch: gm.Batch) -> None:
    # As a mask that is False everywhere is refused: every loss was 0 and the Adam step on zero
    # gradients still moved every weight by its momentum (and counted a step).
    model = _trained_model()
    before = _state(model)
    with pytest.raises(InvalidValueError, match="no row holds a modality"):
        model.train_step(batch)
    _assert_same_state(before, _state(model))


def test_train_step_with_only_row_comparing_objectives_counts_the_events_that_hold_a_component() -> None:
    # Two events, one without a component: one row holds a modality, so contrastive (which compares
    # rows) is 0; the step was taken on zero gradients, where two rows of a mask with one present are refused.
    model = _trained_model()
    before = _state(model)
    one = gm.MultiModalEvent(2, [gm.ModalFeatures(np.ones(4), "visual"), gm.ModalFeatures(np.ones(3), "auditory")])
    with pytest.raises(InvalidValueError, match="only 1 row holds a modality"):
        model.train_step(gm.Batch(events=[gm.MultiModalEvent(1), one]), weights={"contrastive": 1.0})
    _assert_same_state(before, _state(model))
    two = gm.MultiModalEvent(3, [gm.ModalFeatures(-np.ones(4), "visual"), gm.ModalFeatures(np.zeros(3), "auditory")])
    losses = model.train_step(gm.Batch(events=[gm.MultiModalEvent(1), one, two]), weights={"contrastive": 1.0})
    assert losses["contrastive"] > 0


def test_fit_normalization_with_a_mask_false_everywhere_is_refused_as_inputs_of_no_rows_are() -> None:
    # It learned nothing and said nothing: the inputs went on standardised as before (or not at all).
    model = gm.LearnableMultiModal(seed=0, embed_dim=16, hidden_dim=16, num_heads=2, input_dims={"visual": 4})
    model.set_normalization("visual", np.full(4, 5.0), np.full(4, 2.0))
    x = np.random.default_rng(0).normal(size=(5, 4))
    with pytest.raises(InvalidValueError, match="mask: is False everywhere") as err:
        model.fit_normalization({"visual": x}, mask=np.zeros((5, 7), bool))
    assert err.value.arg == "mask"
    mean, std = model.normalization("visual")
    np.testing.assert_array_equal(mean, 5.0)
    np.testing.assert_array_equal(std, 2.0)


def test_a_0d_tensor_written_by_write_tagged_safetensors_reads_back_0d(tmp_path) -> None:
    # np.ascontiguousarray made it shape (1,): read back as another shape without a word.
    from grapheme_multimodal.io import read_tagged_safetensors, write_tagged_safetensors

    path = tmp_path / "t.safetensors"
    tensors = {"scalar": np.float32(3.5), "zero_d": np.array(7, np.int64), "row": np.arange(3, dtype=np.float32)}
    write_tagged_safetensors(path, tensors, "test/v1", {})
    got, _ = read_tagged_safetensors(path, "test/v1")
    for name, value in tensors.items():
        assert got[name].shape == np.shape(value), name
        np.testing.assert_array_equal(got[name], value)


@pytest.mark.parametrize("ids, shown", [([2**63, 1], 2**63), (np.array([1, -(2.0**64)]), -(2**64)),
                                        (np.array([2**63, 1], np.uint64), 2**63)])
def test_event_ids_beyond_int64_are_named_as_such_not_as_non_integers(ids, shown) -> None:
    # [2**63, 1] reads as float64, and the refusal said "expected integers, got [9.22e+18 1.0]" of integers
    model = gm.LearnableMultiModal(seed=0, embed_dim=16, hidden_dim=16, num_heads=2, input_dims={"visual": 4})
    x = {"visual": np.ones((2, 4), np.float32)}
    with pytest.raises(InvalidValueError, match=rf"^event_ids: holds {shown}; expected integers that fit in int64") as err:
        model.record_batch(x, event_ids=ids)
    assert err.value.arg == "event_ids" and len(model.experience) == 0
    with pytest.raises(InvalidValueError, match=r"^event_ids: expected integers, got 1\.5 at row 0 "):
        model.record_batch(x, event_ids=[1.5, 2])
    model.record_batch(x, event_ids=[2**63 - 1024, -(2**63)])  # the ends of int64, as float64 holds them
    assert len(model.experience) == 2


def test_none_for_an_absent_graph_row_is_taken_as_the_row_absent() -> None:
    # "expected Graph ..., got NoneType" said nothing of how a row without the modality is given; None is
    # now that row absent (more in test_trust_graph_none.py)
    model = gm.LearnableMultiModal(seed=0)
    graph = gm.Graph.from_text("hello")
    mask = np.zeros((2, 7), bool)
    mask[0, 2] = True
    emb = model.encode({"linguistic": [graph, None]}, mask=mask)
    np.testing.assert_array_equal(emb, model.encode({"linguistic": [graph, gm.Graph.from_text("")]}, mask=mask))
    np.testing.assert_array_equal(emb[1], 0.0)
    np.testing.assert_array_equal(emb[0], model.encode({"linguistic": [graph]})[0])


def test_a_masked_array_is_told_of_mask_only_where_the_call_takes_one() -> None:
    # as_real_array's one remedy, "leave the rows out with mask= where a modality is absent", was told
    # of an image, a feature vector and rewards, whose calls take no mask
    x = np.ma.masked_array(np.ones((4, 4)), mask=np.eye(4, dtype=bool))
    model = gm.LearnableMultiModal(seed=0, embed_dim=16, hidden_dim=16, num_heads=2, input_dims={"visual": 4})
    for name, call in (("image", lambda: gm.Graph.from_image(x)),
                       ("features", lambda: gm.ModalFeatures(x[0], "visual")),
                       ("rewards", lambda: model.record_batch({"visual": np.ones((4, 4), np.float32)}, rewards=x[0]))):
        with pytest.raises(InvalidValueError, match=rf"^{name}: a masked array with [14] masked entries") as err:
            call()
        assert "mask=" not in str(err.value) and "x.filled(...)" in str(err.value), name
    for training in (False, True):  # a model's inputs: rows left out with mask= is the remedy there
        call = model.fit_normalization if training else model.encode
        with pytest.raises(InvalidValueError, match=r"^inputs\['visual'\]: a masked array .*mask= where a modality is absent"):
            call({"visual": x})
