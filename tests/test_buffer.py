"""The experience buffer: ring semantics, sampling distributions, files."""

import numpy as np
import pytest
from scipy import stats

from grapheme_multimodal.buffer import Experience, ExperienceBuffer
from grapheme_multimodal.io import write_tagged_safetensors

E = 4


def experiences(n, start=0, inputs=False):
    out = []
    for i in range(start, start + n):
        mask = np.zeros(7, bool)
        mask[[0, 2]] = True
        emb = np.zeros((7, E), np.float32)
        emb[mask, :2] = np.cos(i), np.sin(i)  # a unit vector of its own per experience, as encoders give
        out.append(
            Experience(
                embeddings=emb,
                mask=mask,
                fused=np.full(E, i, np.float32),
                pair_strengths=np.full((7, 7), 0.5, np.float32),
                reward=(i % 5) / 4,
                event_id=i,
                inputs=[np.full(3, i, np.float32), None, np.full(2, -i, np.float32), None, None, None, None]
                if inputs
                else None,
            )
        )
    return out


def filled(n, capacity=5, **kw):
    buf = ExperienceBuffer(capacity, embed_dim=E, **kw)
    for x in experiences(n, inputs="input_dims" in kw):
        buf.append(x)
    return buf


def test_ring_keeps_newest_in_order():
    buf = filled(3)
    assert len(buf) == 3 and buf.num_experiences == 3
    assert [x.event_id for x in buf] == [0, 1, 2]
    for x in experiences(4, start=3):
        buf.append(x)
    assert len(buf) == 5, "capacity caps the size"
    assert [x.event_id for x in buf] == [2, 3, 4, 5, 6], "oldest dropped first"
    assert buf[0].event_id == 2 and buf[-1].event_id == 6
    np.testing.assert_array_equal(buf.batch().fused[:, 0], [2, 3, 4, 5, 6])


def test_exactly_at_capacity_and_bulk_overflow():
    buf = filled(5)
    assert [x.event_id for x in buf] == [0, 1, 2, 3, 4]
    big = experiences(12, start=100)
    b = ExperienceBuffer(5, embed_dim=E)
    b.extend(
        np.stack([x.embeddings for x in big]),
        np.stack([x.mask for x in big]),
        np.stack([x.fused for x in big]),
        np.stack([x.pair_strengths for x in big]),
        [x.reward for x in big],
        [x.event_id for x in big],
    )
    assert [x.event_id for x in b] == [107, 108, 109, 110, 111]


def test_clear_and_lazy_dims():
    buf = ExperienceBuffer(3)
    assert buf.embed_dim is None
    buf.append(experiences(1)[0])
    assert buf.embed_dim == E
    buf.clear()
    assert len(buf) == 0 and list(buf) == []
    buf.append(experiences(1, start=9)[0])
    assert buf[0].event_id == 9


def test_inputs_round_trip():
    buf = filled(2, input_dims=(3, 5, 2, 1, 1, 1, 1))
    x = buf[1]
    np.testing.assert_array_equal(x.inputs[0], [1, 1, 1])
    assert x.inputs[1] is None
    b = buf.batch()
    assert np.isnan(b.inputs[1]).all() and b.has_inputs.all()
    with pytest.raises(ValueError, match="inputs\\['auditory'\\]"):
        bad = experiences(1, inputs=True)[0]
        bad.mask[1] = True
        buf.append(bad)


def test_bad_appends_write_nothing():
    buf = filled(2)
    x = experiences(1)[0]
    x.fused = np.full(E, np.nan, np.float32)
    with pytest.raises(ValueError, match="fused"):
        buf.append(x)
    x = experiences(1)[0]
    x.embeddings = np.zeros((7, E + 1), np.float32)
    with pytest.raises(ValueError, match="embed_dim"):
        buf.append(x)
    with pytest.raises(TypeError):
        buf.append("nope")
    assert [x.event_id for x in buf] == [0, 1]
    with pytest.raises(ValueError, match="capacity"):
        ExperienceBuffer(0)


def test_uniform_sampling_is_uniform_and_seeded():
    buf = filled(5, seed=3)
    counts = np.zeros(5)
    for _ in range(2000):
        counts[buf.sample(2).event_ids - 0] += 1
    assert stats.chisquare(counts).pvalue > 0.001
    a, b = filled(5, seed=11), filled(5, seed=11)
    np.testing.assert_array_equal(a.sample(3).indices, b.sample(3).indices)
    s = a.sample(5)
    assert sorted(s.indices.tolist()) == [0, 1, 2, 3, 4], "without replacement by default"
    assert (s.weights == 1).all()
    with pytest.raises(ValueError, match="replace=True"):
        a.sample(6)
    assert len(a.sample(6, replace=True)) == 6


def test_prioritised_sampling_follows_priorities():
    buf = filled(5, seed=0)  # rewards 0, .25, .5, .75, 1
    alpha = 0.8
    pri = np.abs(np.array([0, 0.25, 0.5, 0.75, 1.0])) + 1e-3
    expected = pri**alpha / (pri**alpha).sum()
    draws = 20000
    counts = np.bincount(buf.sample(draws, prioritized=True, alpha=alpha, replace=True).indices, minlength=5)
    assert stats.chisquare(counts, expected * draws).pvalue > 0.001
    s = buf.sample(5, prioritized=True, alpha=alpha, beta=0.5)
    want = (5 * expected[s.indices]) ** -0.5 / (5 * expected.min()) ** -0.5
    np.testing.assert_allclose(s.weights, want, rtol=1e-6)
    buf.update_priorities([0], [100.0])
    counts = np.bincount(buf.sample(2000, prioritized=True, alpha=1.0, replace=True).indices, minlength=5)
    assert counts[0] > 1500
    with pytest.raises(ValueError, match="priorities"):
        buf.update_priorities([0], [0.0])


@pytest.mark.parametrize("held", [3, 17, 64, 70])  # grown arrays, a full ring, a wrapped ring
@pytest.mark.parametrize("alpha, beta, replace", [(0.6, 0.4, False), (1.0, 0.0, True), (0.0, 2.0, True)])
def test_prioritised_sample_is_the_gather_of_every_priority(held, alpha, beta, replace):
    """sample(prioritized=True) reads the priorities by slices and weighs the
    drawn rows only: the same draws and weights, bit for bit, as the
    probabilities and weights of every held priority gathered by slot."""
    buf = filled(held, capacity=64, seed=3)
    buf.update_priorities(np.arange(0, len(buf), 3), np.linspace(0.01, 9.0, len(range(0, len(buf), 3))))
    n = len(buf)
    log_p = np.log(buf._arrays["priorities"][buf._slots()])
    logits = alpha * (log_p - log_p.max())
    probs = np.exp(logits) / np.exp(logits).sum()
    weights = np.exp(-(beta * (alpha * (log_p - log_p.min()))))
    rng = np.random.Generator(np.random.PCG64())
    rng.bit_generator.state = buf._rng.bit_generator.state
    size = min(n, 5)
    pos = np.asarray(rng.choice(n, size=size, replace=replace, p=probs), np.int64)
    s = buf.sample(size, prioritized=True, alpha=alpha, beta=beta, replace=replace)
    np.testing.assert_array_equal(s.indices, pos)
    assert s.weights.dtype == np.float32 and s.weights.tobytes() == weights[pos].astype(np.float32).tobytes()
    np.testing.assert_array_equal(s.fused, buf.batch(pos).fused)


def test_save_load_exact_round_trip(tmp_path):
    buf = filled(7, capacity=5, input_dims=(3, 5, 2, 1, 1, 1, 1), seed=5)
    buf.sample(2)  # advance the generator
    buf.update_priorities([1], [7.5])
    path = tmp_path / "buf.safetensors"
    buf.save(path)
    back = ExperienceBuffer.from_file(path)
    assert (back.capacity, back.embed_dim, back.input_dims, len(back)) == (5, E, (3, 5, 2, 1, 1, 1, 1), 5)
    a, b = buf.batch(), back.batch()
    for field in ("embeddings", "mask", "fused", "pair_strengths", "rewards", "event_ids", "has_inputs"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    for x, y in zip(a.inputs, b.inputs):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(buf.sample(3, prioritized=True).indices, back.sample(3, prioritized=True).indices)
    back.append(experiences(1, start=50, inputs=True)[0])
    assert [x.event_id for x in back][-2:] == [6, 50]


def test_corrupt_truncated_and_foreign_files(tmp_path):
    buf = filled(3)
    good = tmp_path / "good.safetensors"
    buf.save(good)
    data = good.read_bytes()
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(data[: len(data) // 2])
    foreign = tmp_path / "foreign.safetensors"
    write_tagged_safetensors(foreign, {"x": np.zeros(2)}, "someone-else", {})
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00" * 100)
    target = filled(2)
    before = [x.event_id for x in target]
    for path, words in [
        (truncated, "truncated or corrupt"),
        (foreign, "format tag is 'someone-else'"),
        (junk, "truncated or corrupt"),
    ]:
        with pytest.raises(ValueError, match=words):
            target.load(path)
        assert [x.event_id for x in target] == before, "a failed load leaves the buffer as it was"
    with pytest.raises(FileNotFoundError):
        target.load(tmp_path / "missing.safetensors")
    target.load(good)
    assert [x.event_id for x in target] == [0, 1, 2]


def test_save_is_atomic(tmp_path, monkeypatch):
    buf = filled(3)
    path = tmp_path / "buf.safetensors"
    buf.save(path)
    original = path.read_bytes()
    import grapheme_multimodal.io as io_mod

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(io_mod.os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        filled(5).save(path)
    assert path.read_bytes() == original, "a failed save leaves the old file intact"
    assert [p.name for p in tmp_path.iterdir()] == ["buf.safetensors"], "no temp file left behind"


def test_no_positions_give_an_empty_batch_whatever_their_dtype():
    buf = filled(3)
    for none in ([], (), np.array([], np.int64), np.array([], np.uint8)):  # [] was "expected integers, got float64"
        got = buf.batch(none)
        assert got.embeddings.shape == (0, 7, E) and got.indices.shape == (0,) and got.rewards.shape == (0,)


def test_a_position_given_twice_takes_its_last_priority():
    buf = filled(7, capacity=5)  # wrapped: position 0 is not slot 0
    many = 4096  # long enough that numpy's own order of a repeated assignment would show
    positions = np.tile([3, 0, 3], many)
    priorities = np.tile([9.0, 2.0, 4.0], many)
    priorities[-3:] = [9.0, 6.0, 5.0]
    buf.update_priorities(positions, priorities)
    np.testing.assert_array_equal(buf.state()[0]["priorities"][[0, 3]], [6.0, 5.0])
