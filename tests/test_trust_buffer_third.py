"""Third hostile-use audit of the experience API: what the first two
(test_trust_buffer.py, test_trust_buffer_second.py) did not try."""

from __future__ import annotations

import copy
import pickle
import re

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal.buffer import Experience, ExperienceBuffer


def rows(n: int, e: int = 4, first_id: int = 0) -> dict:
    return dict(
        embeddings=np.full((n, 7, e), 1 / np.sqrt(e), np.float32),  # unit vectors, as encoders give
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


# ------------------------------------------------- a batch's indices, derived
def priorities_by_event(buf: ExperienceBuffer) -> dict:
    tensors, _ = buf.state()
    return dict(zip(tensors["event_ids"].tolist(), tensors["priorities"].tolist()))


def updated_events(buf: ExperienceBuffer, at_least: float = 500.0) -> dict:
    return {event: p for event, p in priorities_by_event(buf).items() if p >= at_least}


def sampled_then_recorded(recorded: int = 2):
    """A full buffer of events 0..5, a batch of 3 sampled from it, then
    ``recorded`` more experiences (events 100...) that evicted the oldest and
    moved every position down."""
    buf = ExperienceBuffer(6, seed=4)
    buf.extend(**rows(6))
    batch = buf.sample(3, prioritized=True)
    buf.extend(**rows(recorded, first_id=100))
    return buf, batch


@pytest.mark.parametrize("part", [pytest.param(lambda i: i[:2], id="head"), pytest.param(lambda i: i[1:], id="tail"),
                                  pytest.param(lambda i: i[::-1], id="reversed"),
                                  pytest.param(lambda i: i[:, None][:, 0], id="view-of-view")])
def test_a_slice_of_a_batchs_indices_reaches_the_batchs_experiences(part) -> None:
    """A slice of a batch's indices (a view: the same positions, as sampled)
    was taken as positions now: after records, update_priorities(indices[:2],
    ...) set the priorities of other experiences (the newest, even) without
    a word, and batch(indices[:2]) returned them."""
    buf, batch = sampled_then_recorded()
    chosen = part(batch.indices)
    events = part(batch.event_ids).tolist()
    priorities = [500.0 + 100 * i for i in range(len(events))]
    buf.update_priorities(chosen, priorities)
    assert updated_events(buf) == {e: p for e, p in zip(events, priorities) if e >= 2}
    held = [e for e in events if e >= 2]
    if len(held) == len(events):
        assert buf.batch(chosen).event_ids.tolist() == events
    else:  # some evicted: they cannot be returned
        with pytest.raises(IndexError, match=r"^positions: these are a batch's indices, and records since"):
            buf.batch(chosen)


def test_batch_given_a_batchs_indices_returns_its_experiences() -> None:
    """``buffer.batch(sample.indices)`` after records returned the
    experiences now at those positions, other ones, without a word; and
    another buffer's batch's indices were read as its own positions."""
    buf = ExperienceBuffer(6, seed=4)
    buf.extend(**rows(6))
    batch = buf.batch([3, 5, 4])
    buf.extend(**rows(2, first_id=100))
    again = buf.batch(batch.indices)
    assert again.event_ids.tolist() == [3, 5, 4] and again.indices.tolist() == [1, 3, 2]
    buf.extend(**rows(2, first_id=200))  # now event 3 is gone
    with pytest.raises(IndexError, match=r"evicted 1 of its 3 experiences \(at \[0\]\)"):
        buf.batch(batch.indices)
    assert buf.batch(batch.indices[1:]).event_ids.tolist() == [5, 4]
    assert buf.batch(np.array(batch.indices)).event_ids.tolist() == [101, 201, 200], "a copy: positions now"
    other = ExperienceBuffer(6)
    other.extend(**rows(6))
    with pytest.raises(gm.InvalidValueError, match=r"^positions: these are the indices of a batch sampled from another"):
        other.batch(batch.indices)


@pytest.mark.parametrize("copied", [pytest.param(lambda b: pickle.loads(pickle.dumps(b)), id="pickle"),
                                    pytest.param(copy.deepcopy, id="deepcopy"), pytest.param(copy.copy, id="copy")])
def test_a_copied_or_pickled_batch_reaches_its_experiences(copied) -> None:
    """A pickled (a Ray worker's) or deep-copied batch's indices were a new
    array, taken as positions now: after records, its priorities went to
    other experiences without a word. The whole batch keeps where it was
    sampled from; its indices alone, pickled, are positions now."""
    buf, batch = sampled_then_recorded()
    twin = copied(batch)
    assert twin == batch
    buf.update_priorities(twin.indices, [500.0, 600.0, 700.0])
    assert updated_events(buf) == {e: p for e, p in zip(batch.event_ids.tolist(), [500.0, 600.0, 700.0]) if e >= 2}
    other = ExperienceBuffer(6)
    other.extend(**rows(6))
    with pytest.raises(gm.InvalidValueError, match=r"^positions: these are the indices of a batch sampled from another"):
        other.update_priorities(copied(batch).indices, [1.0, 2.0, 3.0])
    alone = pickle.loads(pickle.dumps(batch.indices))
    buf.update_priorities(alone, [800.0, 900.0, 950.0])  # plain positions, as documented
    assert updated_events(buf, 800.0) == dict(zip(buf.batch(alone.tolist()).event_ids.tolist(), [800.0, 900.0, 950.0]))


def test_a_batch_pickled_to_another_process_reaches_its_experiences_in_the_buffers_copy(tmp_path) -> None:
    """The Ray pattern: a buffer and a batch sampled from it pickled to
    another process (separately), where records are made and the batch's
    priorities set: they reach its experiences there."""
    import json
    import os
    import subprocess
    import sys

    buf = ExperienceBuffer(6, seed=4)
    buf.extend(**rows(6))
    batch = buf.sample(3, prioritized=True)
    (tmp_path / "buffer.pkl").write_bytes(pickle.dumps(buf))
    (tmp_path / "batch.pkl").write_bytes(pickle.dumps(batch))
    script = (
        "import json, pickle, sys, numpy as np\n"
        "buf = pickle.loads(open(sys.argv[1] + '/buffer.pkl', 'rb').read())\n"
        "batch = pickle.loads(open(sys.argv[1] + '/batch.pkl', 'rb').read())\n"
        "n = 2\n"
        "buf.extend(embeddings=np.full((n, 7, 4), 0.5, np.float32), mask=np.ones((n, 7), bool), fused=np.zeros((n, 4), np.float32),"
        " pair_strengths=np.zeros((n, 7, 7), np.float32), rewards=np.zeros(n), event_ids=[100, 101])\n"
        "buf.update_priorities(batch.indices, [500.0, 600.0, 700.0])\n"
        "t, _ = buf.state()\n"
        "print(json.dumps(dict(zip(t['event_ids'].tolist(), t['priorities'].tolist()))))\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, env=env, check=True)
    after = {int(k): v for k, v in json.loads(out.stdout).items()}
    expected = {e: p for e, p in zip(batch.event_ids.tolist(), [500.0, 600.0, 700.0]) if e >= 2}
    assert {e: p for e, p in after.items() if p >= 500} == expected


def test_a_copy_of_a_copy_at_any_depth_recognises_the_first_buffers_batches() -> None:
    """A copy remembered the last 8 buffers it descends from: the batch of
    the 9th ancestor back was refused as "another buffer's", though the copy
    holds its experiences. Now at any depth."""
    buf = ExperienceBuffer(20, seed=4)
    buf.extend(**rows(20))
    batch = buf.sample(3)
    twin = buf
    for depth in range(12):
        twin = pickle.loads(pickle.dumps(twin)) if depth % 2 else copy.deepcopy(twin)
        twin.extend(**rows(1, first_id=100 + depth))
    twin.update_priorities(batch.indices, [500.0, 600.0, 700.0])
    assert updated_events(twin) == {e: p for e, p in zip(batch.event_ids.tolist(), [500.0, 600.0, 700.0]) if e >= 12}


# ------------------------------------------------------ frames in another order
def _frames_case(which: str):
    pandas = pytest.importorskip("pandas")
    r = rows(4)
    order = [3, 1, 0, 2]
    given = dict(r)
    if which == "rewards":
        given.update(fused=pandas.DataFrame(r["fused"]), rewards=pandas.Series(r["rewards"]).loc[order])
    elif which == "event_ids":
        given.update(rewards=pandas.Series(r["rewards"]), event_ids=pandas.Series(r["event_ids"]).loc[order])
    elif which == "mask":
        given.update(mask=pandas.DataFrame(r["mask"]).loc[order], event_ids=pandas.Series(r["event_ids"]))
    else:  # an input
        given["inputs"] = [pandas.DataFrame(np.arange(12.0).reshape(4, 3) + i) for i in range(7)]
        given["inputs"][2] = given["inputs"][2].loc[order]
    return given


@pytest.mark.parametrize("which, arg", [("rewards", "rewards"), ("event_ids", "event_ids"), ("mask", "event_ids"),
                                        ("inputs", "inputs['linguistic']")])
def test_extend_refuses_frames_whose_rows_are_in_another_order(which, arg) -> None:
    """Frames or Series of the same experiences in another row order (read
    or joined separately) were paired by position without a word: each
    experience recorded with another's reward or event id. model.fit and
    record_batch refuse them; so does extend now, and nothing is recorded."""
    pandas = pytest.importorskip("pandas")
    buf = ExperienceBuffer(8, input_dims=[3] * 7)
    buf.extend(**rows(2, first_id=50))
    before = buf.state()
    given = _frames_case(which)
    with pytest.raises(gm.InvalidValueError, match=r"^" + re.escape(arg) + r": its index is not that of ") as err:
        buf.extend(**given)
    assert err.value.arg == arg
    after = buf.state()
    assert before[1] == after[1] and all(np.array_equal(before[0][k], after[0][k], equal_nan=True) for k in before[0])
    # the same frames in one order are taken, paired by position as arrays
    r = rows(4, first_id=10)
    index = pandas.Index([7, 5, 6, 4])
    buf.extend(embeddings=r["embeddings"], mask=pandas.DataFrame(r["mask"], index=index),
               fused=pandas.DataFrame(r["fused"], index=index), pair_strengths=r["pair_strengths"],
               rewards=pandas.Series(r["rewards"], index=index), event_ids=pandas.Series(r["event_ids"], index=index))
    assert buf.batch().event_ids.tolist()[-4:] == [10, 11, 12, 13]
    np.testing.assert_array_equal(buf.batch().rewards[-4:], r["rewards"])


def test_update_priorities_of_no_positions_on_a_buffer_that_never_recorded() -> None:
    """``update_priorities([], [])`` on a buffer with no experiences yet (no
    dims, no arrays) raised KeyError: 'priorities'. Nothing to set: done."""
    buf = ExperienceBuffer(5)
    buf.update_priorities([], [])
    buf.update_priorities(np.array([], np.int64), np.array([]))
    with pytest.raises(IndexError, match=r"^positions: expected values in \[0, 0\)"):
        buf.update_priorities([0], [1.0])
    buf.extend(**rows(2))
    buf.update_priorities([], [])
    assert priorities_by_event(buf) == {0: pytest.approx(1e-3), 1: pytest.approx(0.1 + 1e-3)}


def test_the_batch_itself_is_positions_that_survive_being_sent_alone() -> None:
    """Sending ``batch.indices`` alone to a Ray actor holding the buffer
    (``actor.update_priorities.remote(batch.indices, td)``) pickles the array
    without its batch: positions now, other experiences after records. The
    batch itself is accepted for ``positions`` and pickles its origin, so
    ``update_priorities(batch, td)`` sent anywhere reaches its experiences,
    and ``batch(batch)`` returns them."""
    buf, batch = sampled_then_recorded()
    sent = pickle.loads(pickle.dumps(batch))  # what an actor call receives
    buf.update_priorities(sent, [500.0, 600.0, 700.0])
    assert updated_events(buf) == {e: p for e, p in zip(batch.event_ids.tolist(), [500.0, 600.0, 700.0]) if e >= 2}
    held = [e for e in batch.event_ids.tolist() if e >= 2]
    if len(held) == len(batch.event_ids):
        assert buf.batch(sent).event_ids.tolist() == batch.event_ids.tolist()
    else:
        with pytest.raises(IndexError, match="^positions: these are a batch's indices"):
            buf.batch(sent)
    other = ExperienceBuffer(6)
    other.extend(**rows(6))
    with pytest.raises(gm.InvalidValueError, match="^positions: these are the indices of a batch sampled from another"):
        other.update_priorities(sent, [1.0, 2.0, 3.0])
    broken = copy.copy(batch)
    broken.indices = None
    with pytest.raises(TypeError, match="^positions: a batch whose indices are None"):
        buf.update_priorities(broken, [1.0, 2.0, 3.0])
