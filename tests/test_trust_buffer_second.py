"""Second hostile-use audit of the experience buffer and the model's record
paths: what a user could do that the first audit (test_trust_buffer.py)
did not try, each a clear error naming what was given, and nothing saved
that cannot be loaded."""

from __future__ import annotations

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal._core import MODALITY_NAMES
from grapheme_multimodal.buffer import Experience, ExperienceBuffer


def rows(n: int, e: int = 4, first_id: int = 0) -> dict:
    return dict(
        embeddings=np.full((n, 7, e), 1 / np.sqrt(e), np.float32),  # unit vectors, as encoders give
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
    fields = dict(embeddings=np.full((7, 4), 0.5, np.float32), mask=np.array([1, 0, 0, 0, 0, 0, 0], bool), fused=np.zeros(4, np.float32),
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
        (dict(event_id=np.uint64(2**63)), gm.InvalidValueError, r"^experience\.event_id: holds 9223372036854775808; expected integers that fit in int64"),
        (dict(event_id=[1, 2]), gm.ShapeError, r"^experience\.event_id: expected one integer, got shape \(2,\)"),
        (dict(embeddings=np.ones((2, 7, 4))), gm.ShapeError, r"^experience\.embeddings: expected shape \(7, E\).*got \(2, 7, 4\)"),
        (dict(embeddings=np.full((7, 5), 0.2 ** 0.5), fused=np.zeros(5)), gm.ShapeError,
         r"^experience\.embeddings: expected shape \(7, 4\) \(the buffer's embed_dim\), got \(7, 5\)"),
        (dict(embeddings=np.where(np.eye(7, 4, k=2) > 0, np.nan, 1.0)), gm.NonFiniteError,
         r"^experience\.embeddings\[0, 2\]: holds NaN"),
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
    x = one(mask=ONLY_VISUAL.astype(int), embeddings=np.vstack([[0.0, 0.6, 0.8, 0.0], np.arange(4.0, 28.0).reshape(6, 4)]), reward=np.float16(0.25), event_id=np.int8(-4),
            inputs=[np.arange(3)] + [None] * 6)
    buf.append(x)
    buf.append(one(event_id=7.0, reward=1))
    bulk.extend(np.stack([x.embeddings, np.full((7, 4), 0.5)]), np.stack([ONLY_VISUAL, ONLY_VISUAL]), np.zeros((2, 4)),
                np.zeros((2, 7, 7)), [0.25, 1.0], [-4, 7],
                inputs=[np.array([[0, 1, 2], [1, 1, 1]])] + [None] * 6)
    a, b = buf.batch(), bulk.batch()
    for field in ("embeddings", "mask", "fused", "rewards", "event_ids", "has_inputs"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    np.testing.assert_array_equal(a.inputs[0], b.inputs[0])


def test_append_of_a_ragged_mask_names_experience_mask() -> None:
    buf = ExperienceBuffer(4)
    # numpy >= 1.24 refuses the ragged rows ("could not be read as 7 booleans"); older numpy (Python
    # 3.9's) reads them as an object array of shape (2,), refused by its shape: either names the field
    with pytest.raises((gm.InvalidValueError, gm.ShapeError), match=r"^experience\.mask: (could not be read|expected shape \(7,\))") as err:
        buf.append(one(mask=[[1], [0, 1]], inputs=None))
    assert err.value.arg == "experience.mask" and len(buf) == 0


# ------------------------------------- priorities of a batch sampled earlier
def priorities_by_event(buf: ExperienceBuffer) -> dict:
    tensors, _ = buf.state()
    return dict(zip(tensors["event_ids"].tolist(), tensors["priorities"].tolist()))


def full_buffer() -> ExperienceBuffer:
    buf = ExperienceBuffer(6, seed=4)
    buf.extend(**rows(6))
    return buf


@pytest.mark.parametrize("recorded", [1, 3, 6, 9])
def test_priorities_of_a_sampled_batch_reach_its_experiences_after_more_are_recorded(recorded) -> None:
    """The loop of prioritised replay: sample a batch, record new
    experiences (the ring full: the oldest evicted, every position moves),
    then update_priorities(batch.indices, ...). The priorities landed on
    the experiences now at those positions, others than the batch's,
    without a word. Now they reach the batch's own experiences (those
    evicted meanwhile are gone, and so are their priorities)."""
    buf = full_buffer()
    batch = buf.sample(4, prioritized=True)
    sampled = batch.event_ids.tolist()
    buf.extend(**rows(recorded, first_id=100))
    before = priorities_by_event(buf)
    new = [1000.0 + i for i in range(4)]
    buf.update_priorities(batch.indices, new)
    after = priorities_by_event(buf)
    expected = dict(before)
    for event, priority in zip(sampled, new):
        if event in expected:
            expected[event] = priority
    assert after == expected
    assert any(event in after for event in sampled) == (recorded < 6)


def test_a_batchs_positions_after_a_clear_or_load_are_refused(tmp_path) -> None:
    """After clear() or load(), a batch drawn before names experiences the
    buffer no longer holds: its priorities went to whatever now sat at its
    positions. Now refused, naming positions, and nothing changes."""
    other = full_buffer()
    other.save(tmp_path / "other.safetensors")
    for change in (lambda b: b.clear(), lambda b: b.load(tmp_path / "other.safetensors")):
        buf = full_buffer()
        batch = buf.sample(3)
        change(buf)
        buf.extend(**rows(6, first_id=50))
        before = priorities_by_event(buf)
        with pytest.raises(gm.InvalidValueError, match=r"^positions: .*from this one before a clear\(\) or load\(\)") as err:
            buf.update_priorities(batch.indices, [5.0, 6.0, 7.0])
        assert err.value.arg == "positions" and priorities_by_event(buf) == before


def test_positions_given_as_a_copy_or_a_list_are_todays_positions() -> None:
    """Positions the user made (a list, a copy of a batch's indices) are the
    positions now, as ever."""
    buf = full_buffer()
    batch = buf.sample(2)
    buf.extend(**rows(1, first_id=100))
    for positions in (batch.indices.tolist(), batch.indices.copy(), np.array(batch.indices)):
        buf.update_priorities(positions, [7.0, 8.0])
        now = buf.batch(positions)
        assert dict(zip(now.event_ids.tolist(), [7.0, 8.0])).items() <= priorities_by_event(buf).items()


def updated_events(buf: ExperienceBuffer, at_least: float = 500.0) -> dict:
    return {event: p for event, p in priorities_by_event(buf).items() if p >= at_least}


def pickled(buf: ExperienceBuffer) -> ExperienceBuffer:
    import pickle

    return pickle.loads(pickle.dumps(buf))


@pytest.mark.parametrize("twin_of", [pytest.param(lambda b: __import__("copy").copy(b), id="copy"),
                                     pytest.param(lambda b: __import__("copy").deepcopy(b), id="deepcopy"),
                                     pytest.param(pickled, id="pickle")])
def test_a_batchs_indices_reach_its_experiences_in_a_copy_of_the_buffer(twin_of) -> None:
    """A copy or pickle of the buffer (a Ray replica) did not know the
    batches sampled from its original: after records evicted the oldest,
    update_priorities(batch.indices, ...) took them as positions now and
    set the priorities of other experiences (of ones recorded since, even)
    without a word, where the original shifted them. The copy holds the
    same experiences: now they reach the batch's own there too."""
    buf = full_buffer()
    batch = buf.sample(3, prioritized=True)
    twin = twin_of(buf)
    twin.extend(**rows(2, first_id=100))
    twin.update_priorities(batch.indices, [500.0, 600.0, 700.0])
    expected = {e: p for e, p in zip(batch.event_ids.tolist(), [500.0, 600.0, 700.0]) if e >= 2}
    assert updated_events(twin) == expected and updated_events(buf) == {}
    # the copy of a copy too
    grand = twin_of(twin)
    grand.extend(**rows(1, first_id=200))
    grand.update_priorities(batch.indices, [800.0, 900.0, 950.0])
    assert updated_events(grand, 800.0) == {e: p for e, p in zip(batch.event_ids.tolist(), [800.0, 900.0, 950.0]) if e >= 3}


def test_a_copy_refuses_a_batch_its_original_sampled_after_recording_more() -> None:
    """A batch the original sampled after the copy names the original's
    experiences since, which the copy does not hold: refused, naming
    positions. One sampled after the copy with nothing recorded since names
    the same experiences, and is taken."""
    import copy

    buf = full_buffer()
    twin = copy.deepcopy(buf)
    same = buf.sample(2)
    buf.extend(**rows(2, first_id=100))
    later = buf.sample(2)
    twin.extend(**rows(1, first_id=300))
    before = priorities_by_event(twin)
    with pytest.raises(gm.InvalidValueError, match=r"^positions: .*sampled from the buffer this one was copied from, "
                       r"after the copy was made.*np\.array\(indices\)") as err:
        twin.update_priorities(later.indices, [500.0, 600.0])
    assert err.value.arg == "positions" and priorities_by_event(twin) == before
    twin.update_priorities(same.indices, [500.0, 600.0])
    assert updated_events(twin) == {e: p for e, p in zip(same.event_ids.tolist(), [500.0, 600.0]) if e >= 1}


def model_with_experiences(capacity: int = 6) -> gm.LearnableMultiModal:
    model = gm.LearnableMultiModal(seed=0, embed_dim=8, hidden_dim=8, num_heads=2, input_dims={"visual": 4},
                                   buffer_size=capacity)
    model.experience.extend(**rows(capacity, e=8))
    return model


def read_back(buf: ExperienceBuffer, tmp_path) -> ExperienceBuffer:
    buf.save(tmp_path / "buffer.safetensors")
    return ExperienceBuffer.from_file(tmp_path / "buffer.safetensors")


def another_buffer(buf: ExperienceBuffer, tmp_path) -> ExperienceBuffer:
    other = ExperienceBuffer(buf.capacity, seed=9)
    other.extend(**rows(buf.capacity, e=buf.embed_dim, first_id=50))
    return other


def model_read_back(model: gm.LearnableMultiModal, tmp_path) -> ExperienceBuffer:
    model.save(tmp_path / "model.safetensors")
    return gm.LearnableMultiModal.load(tmp_path / "model.safetensors").experience


def model_pickled(model: gm.LearnableMultiModal, tmp_path) -> ExperienceBuffer:
    import pickle

    return pickle.loads(pickle.dumps(model)).experience


# (what samples, what it samples from, the buffer given the batch's indices)
ELSEWHERE = [
    pytest.param(full_buffer, lambda owner: owner, read_back, id="ExperienceBuffer.from_file"),
    pytest.param(full_buffer, lambda owner: owner, another_buffer, id="another buffer"),
    pytest.param(model_with_experiences, lambda owner: owner.experience,
                 lambda owner, tmp_path: read_back(owner.experience, tmp_path), id="model buffer from_file"),
    pytest.param(model_with_experiences, lambda owner: owner.experience, model_read_back, id="LearnableMultiModal.load"),
    pytest.param(model_with_experiences, lambda owner: owner.experience, model_pickled, id="model pickle"),
    pytest.param(model_with_experiences, lambda owner: owner.experience,
                 lambda owner, _: __import__("copy").deepcopy(owner).experience, id="model deepcopy"),
]


@pytest.mark.parametrize("make, buffer_of, elsewhere", ELSEWHERE)
def test_a_batchs_indices_are_refused_by_a_buffer_read_back_or_another_one(tmp_path, make, buffer_of, elsewhere) -> None:
    """A buffer read from a file (ExperienceBuffer.from_file,
    LearnableMultiModal.load, a model's pickle or copy, rebuilt from its
    state) or another buffer took a batch's indices as positions now:
    after records evicted the oldest, the priorities went to other
    experiences than the batch's without a word. A file keeps no record of
    samples: refused, naming positions, and nothing changes; a copy of them
    (np.array) is taken as positions now, as the message says."""
    owner = make()
    batch = buffer_of(owner).sample(3, prioritized=True)
    target = elsewhere(owner, tmp_path)
    target.extend(**rows(2, e=target.embed_dim, first_id=100))
    before = priorities_by_event(target)
    with pytest.raises(gm.InvalidValueError, match=r"^positions: these are the indices of a batch sampled from another "
                       r"buffer.*a buffer read from a file counts as another.*np\.array\(indices\)") as err:
        target.update_priorities(batch.indices, [500.0, 600.0, 700.0])
    assert err.value.arg == "positions" and priorities_by_event(target) == before
    target.update_priorities(np.array(batch.indices), [500.0, 600.0, 700.0])
    now = target.batch(batch.indices.tolist()).event_ids.tolist()
    assert updated_events(target) == dict(zip(now, [500.0, 600.0, 700.0]))


def test_a_buffer_pickled_before_histories_unpickles_and_refuses_other_batches() -> None:
    """A buffer pickled by an older version (its per-buffer registry and
    clear count, no history): unpickled, it samples and shifts its own
    batches' indices, and refuses those of the buffer it was pickled from."""
    buf = full_buffer()
    state = buf.__getstate__()
    for name in ("_token", "_lineage", "_recorded"):
        del state[name]
    state.update(_epoch=1, _drawn={})
    old = ExperienceBuffer.__new__(ExperienceBuffer)
    old.__setstate__(state)
    assert not hasattr(old, "_epoch") and "_drawn" not in vars(old)
    with pytest.raises(gm.InvalidValueError, match="^positions: "):
        old.update_priorities(buf.sample(1).indices, [5.0])
    batch = old.sample(3)
    old.extend(**rows(1, first_id=100))
    old.update_priorities(batch.indices, [500.0, 600.0, 700.0])
    assert updated_events(old) == {e: p for e, p in zip(batch.event_ids.tolist(), [500.0, 600.0, 700.0]) if e >= 1}


def test_a_batch_sampled_while_another_thread_records_updates_its_own_experiences() -> None:
    import threading

    buf = full_buffer()
    sampled, recorded = threading.Event(), threading.Event()
    out = {}

    def learner() -> None:
        out["batch"] = buf.sample(3, prioritized=True)
        sampled.set()
        assert recorded.wait(10)
        buf.update_priorities(out["batch"].indices, [500.0, 600.0, 700.0])

    def actor() -> None:
        assert sampled.wait(10)
        buf.extend(**rows(2, first_id=200))
        recorded.set()

    from conftest import run_concurrently

    run_concurrently(learner, actor)
    after = priorities_by_event(buf)
    for event, priority in zip(out["batch"].event_ids.tolist(), [500.0, 600.0, 700.0]):
        if event in after:
            assert after[event] == priority
    assert sum(p >= 500 for p in after.values()) == sum(e in after for e in out["batch"].event_ids.tolist())


class _InterruptOnWrite(np.ndarray):
    """A buffer array whose next write raises KeyboardInterrupt (Ctrl-C between two fields)."""

    def __setitem__(self, key, value):
        raise KeyboardInterrupt


def test_a_batchs_positions_still_reach_its_experiences_after_an_interrupted_record() -> None:
    """An interrupted write drops the oldest experiences (no torn row is
    read): they count as evicted, and a batch drawn before reaches its own."""
    buf = full_buffer()
    batch = buf.sample(6)
    buf._arrays["rewards"] = buf._arrays["rewards"].view(_InterruptOnWrite)
    with pytest.raises(KeyboardInterrupt):
        buf.extend(**rows(2, first_id=100))
    buf._arrays["rewards"] = buf._arrays["rewards"].view(np.ndarray)
    assert len(buf) == 4
    before = priorities_by_event(buf)
    buf.update_priorities(batch.indices, 100.0 + batch.event_ids)
    after = priorities_by_event(buf)
    assert after == {event: 100.0 + event for event in before}


# -------------------------------------- fitting from a buffer of other dims
def test_fit_from_a_buffer_of_another_embed_dim_names_data() -> None:
    """model.fit(buffer) of a buffer recorded by a model of another
    embed_dim failed with "embeddings: expected shape (any, 7, 8), got
    (3, 7, 4)": an argument fit has not. Now the error names data, the
    buffer's embed_dim and the model's; the model is left as it was."""
    model = small_model()
    before = model.state_dict()
    foreign = ExperienceBuffer(10)
    foreign.extend(**rows(3, e=4))
    for call, name in ((lambda: model.fit(foreign, epochs=1, progress=False), "data"),
                       (lambda: model.fit(visual(8), validation=foreign, epochs=1, progress=False), "validation")):
        with pytest.raises(gm.ShapeError, match=rf"^{name}: an experience buffer of embed_dim=4; expected embed_dim=8") as err:
            call()
        assert err.value.arg == name
    after = model.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_fit_from_a_buffer_of_other_input_dims_names_data_and_the_modality() -> None:
    model = small_model()
    foreign = ExperienceBuffer(10, input_dims=(5,) * 7)
    visual_only = np.zeros((3, 7), bool)
    visual_only[:, 0] = True
    foreign.extend(**{**rows(3, e=8), "mask": visual_only}, inputs=[np.ones((3, 5))] + [None] * 6)
    with pytest.raises(gm.ShapeError, match=r"^data: an experience buffer whose visual inputs are 5 long; expected 4") as err:
        model.fit(foreign, epochs=1, progress=False)
    assert err.value.arg == "data"


def test_fit_from_a_buffer_of_other_input_dims_for_absent_modalities_names_them_too() -> None:
    """Input dims of a modality no experience holds are read too (the
    standardisation takes every modality's array): refused as before, the
    error now naming data and that modality, not inputs['auditory']."""
    model = small_model()
    buf = ExperienceBuffer(10, input_dims=(4,) + (5,) * 6)
    visual_only = np.zeros((6, 7), bool)
    visual_only[:, 0] = True
    buf.extend(**{**rows(6, e=8), "mask": visual_only}, inputs=[visual(6)["visual"]] + [None] * 6)
    with pytest.raises(gm.ShapeError, match=r"^data: an experience buffer whose auditory inputs are 5 long; expected 18"):
        model.fit(buf, epochs=1, batch_size=3, progress=False)
    model.fit(ExperienceBuffer.from_state(*_with_dims(buf, (4,) + (18,) * 6)), epochs=1, progress=False)


def _with_dims(buf: ExperienceBuffer, dims: tuple):
    """buf's state as a buffer of input_dims ``dims`` (the absent modalities' NaN inputs resized)."""
    tensors, meta = buf.state()
    meta = {**meta, "input_dims": list(dims)}
    for name, d in zip(MODALITY_NAMES, dims):
        t = tensors[f"inputs.{name}"]
        if t.shape[1] != d:
            tensors[f"inputs.{name}"] = np.full((len(t), d), np.nan, np.float32)
    return tensors, meta


@pytest.mark.parametrize(
    "embed_dim, input_dims, arg",
    [(10**11, None, "embed_dim"), (10**9, None, "embed_dim"), (4, [10**11] + [1] * 6, "input_dims")],
)
def test_a_file_whose_dims_cannot_fit_blames_the_dims_not_the_capacity(tmp_path, embed_dim, input_dims, arg) -> None:
    """A forged buffer file of an empty buffer with a huge embed_dim was
    refused as 'capacity: ... expected a smaller capacity', though no
    capacity could hold one of its experiences."""
    from grapheme_multimodal.io import write_tagged_safetensors
    from grapheme_multimodal.buffer import FILE_FORMAT

    tensors, meta = ExperienceBuffer(10, embed_dim=4, input_dims=input_dims and [1] * 7, seed=0).state()
    meta.update(embed_dim=embed_dim, input_dims=input_dims)
    tensors = {n: np.zeros(spec.shape, spec.dtype) for n, spec in ExperienceBuffer.expected_tensors(meta).items()}
    write_tagged_safetensors(tmp_path / "b.safetensors", tensors, FILE_FORMAT, meta)
    target = ExperienceBuffer(3, embed_dim=4)
    with pytest.raises((gm.TooLargeError, gm.CheckpointError), match=rf"{arg}: got .*expected a smaller {arg}$"):
        target.load(tmp_path / "b.safetensors")
    assert target.embed_dim == 4 and len(target) == 0
    with pytest.raises(gm.TooLargeError, match=rf"^{arg}: got "):
        ExperienceBuffer(10, embed_dim=embed_dim, input_dims=input_dims)
