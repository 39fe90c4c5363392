"""Issue 11 for the experience buffer: finite inputs give finite samples,
concurrent writers and samplers lose and tear nothing, loading a file checks
it exactly as appending checks an experience, and hostile input is always a
clean error (hypothesis)."""

from __future__ import annotations

import pickle
import threading
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import grapheme_multimodal as gm
from grapheme_multimodal.exceptions import ShapeError
from grapheme_multimodal.buffer import FILE_FORMAT, Experience, ExperienceBuffer
from grapheme_multimodal.io import write_tagged_safetensors

from conftest import run_concurrently

E = 4


def experience(i: int, inputs: bool = False) -> Experience:
    """Every field of experience ``i`` derives from ``i`` (a torn row shows)."""
    mask = np.zeros(7, bool)
    mask[[0, 2]] = True
    emb = np.zeros((7, E), np.float32)
    emb[mask] = _unit(i)
    return Experience(
        embeddings=emb,
        mask=mask,
        fused=np.full(E, i, np.float32),
        pair_strengths=np.where(mask[:, None] & mask[None, :], _strength(i), 0).astype(np.float32),  # 0 where absent, as recorded
        reward=float(i % 7) / 7,
        event_id=i,
        inputs=[np.full(3, i, np.float32), None, np.full(2, i, np.float32), None, None, None, None] if inputs else None,
    )


def _unit(i: int) -> np.ndarray:
    """A unit vector (as the encoders give) that tells experience ``i`` from the others."""
    return np.array([np.cos(i), np.sin(i), 0.0, 0.0][:E], np.float32)


def _strength(i):
    """A pair strength in [0, 1] (as the binder gives them) that tells experience ``i`` from the others."""
    return (1.0 / (np.asarray(i, np.float64) + 1)).astype(np.float32)


def assert_rows_whole(batch) -> None:
    """Every row's fields come from one experience."""
    ids = batch.event_ids.astype(np.float32)
    np.testing.assert_array_equal(batch.fused, np.repeat(ids[:, None], E, 1))
    present = np.zeros(7, bool)
    present[[0, 2]] = True  # the pairs of experience()'s two present modalities: the others are recorded as 0
    pairs = np.where(present[:, None] & present[None, :], _strength(batch.event_ids)[:, None, None], 0)
    np.testing.assert_array_equal(batch.pair_strengths, pairs)
    np.testing.assert_array_equal(batch.embeddings[:, 0], np.array([_unit(i) for i in batch.event_ids]).reshape(-1, E))
    np.testing.assert_allclose(batch.rewards, (batch.event_ids % 7) / 7, rtol=1e-6)


# ------------------------------------------------------------------ rewards
def test_a_bool_is_no_reward_or_priority() -> None:
    """reward=True (a bool, numpy's, or an array of them) was recorded as a
    reward of 1.0, where every float argument refuses a bool (learning
    rates, config floats, objective weights): now a TypeError naming the
    argument, and nothing is recorded."""
    model = gm.LearnableMultiModal(embed_dim=8, hidden_dim=8, num_heads=2, seed=0)
    event = gm.MultiModalEvent(1, [gm.ModalFeatures(np.ones(18), "visual")])
    inputs = {"visual": np.ones((3, 18))}
    for reward in (True, np.True_, False):
        with pytest.raises(TypeError, match="^reward: expected a real number, got bool"):
            model.record_fusion(event, reward=reward)
    for rewards in (True, np.False_, np.array([True, False, True]), [True, False, True]):
        with pytest.raises(TypeError, match="^rewards: expected real numbers, got .*bool"):
            model.record_batch(inputs, rewards=rewards)
    assert model.num_experiences() == 0
    recorded = model.record_fusion(event, reward=1)  # ints are numbers
    model.record_batch(inputs, rewards=np.array([1, 0, 1]))
    assert model.num_experiences() == 4 and recorded.reward == 1.0

    buf = ExperienceBuffer(8, embed_dim=E)
    with pytest.raises(TypeError, match="^experience.reward: expected a real number, got bool"):
        buf.append(Experience(**{**experience(0).__dict__, "reward": True}))
    one = experience(0)
    with pytest.raises(TypeError, match="^rewards: expected real numbers, got .*bool"):
        buf.extend(one.embeddings[None], one.mask[None], one.fused[None], one.pair_strengths[None], np.array([True]))
    assert len(buf) == 0
    buf.append(one)
    with pytest.raises(TypeError, match="^priorities: expected real numbers, got .*bool"):
        buf.update_priorities([0], [True])
    before = model.state_dict()
    batch = gm.Batch(embeddings=np.ones((4, 7, 8)), fused=np.ones((4, 8)), rewards=np.ones(4, bool))
    with pytest.raises(TypeError, match="^rewards: expected real numbers, got .*bool"):
        model.train_step(batch)
    for name, value in model.state_dict().items():
        assert value.tobytes() == before[name].tobytes(), name


# ------------------------------------------------------------------ sampling
@pytest.mark.parametrize("alpha, beta", [(0.6, 1e6), (1e6, 0.4), (1e300, 1e300), (0.0, 1e300), (1e-300, 5.0), (2.0, 0.0)])
def test_prioritised_sampling_is_finite_for_any_finite_settings(alpha, beta) -> None:
    buf = ExperienceBuffer(8, embed_dim=E, seed=1)
    for i in range(8):
        buf.append(experience(i))
    buf.update_priorities([3], [1e300])
    buf.update_priorities([4], [5e-324])
    s = buf.sample(8, prioritized=True, alpha=alpha, beta=beta, replace=True)
    assert np.isfinite(s.weights).all() and (s.weights >= 0).all() and (s.weights <= 1).all()
    assert_rows_whole(s)


def test_extreme_alpha_without_replacement_is_a_clear_error() -> None:
    buf = ExperienceBuffer(5, embed_dim=E)
    for i in range(5):
        buf.append(experience(i))
    with pytest.raises(gm.InvalidValueError, match="replace=True") as info:
        buf.sample(3, prioritized=True, alpha=1e300)
    assert info.value.arg == "alpha"


@pytest.mark.parametrize("bad, error", [(np.nan, gm.InvalidValueError), (np.inf, gm.InvalidValueError),
                                        (-1.0, gm.InvalidValueError), ("0.5", TypeError), (True, TypeError), (1 + 2j, TypeError)])
def test_bad_alpha_and_beta_are_refused(bad, error) -> None:
    buf = ExperienceBuffer(3, embed_dim=E)
    buf.append(experience(0))
    for name in ("alpha", "beta"):  # a wrong type (no real number) is a TypeError
        with pytest.raises(error, match=f"^{name}: "):
            buf.sample(1, prioritized=True, **{name: bad})


# --------------------------------------------------------------- concurrency
def test_concurrent_writers_lose_and_tear_nothing() -> None:
    threads, per_thread = 4, 1000
    buf = ExperienceBuffer(threads * per_thread, embed_dim=E, input_dims=(3, 1, 2, 1, 1, 1, 1))
    start = threading.Barrier(threads)

    def write(t: int) -> None:
        start.wait()
        for k in range(per_thread):
            buf.append(experience(t * per_thread + k, inputs=True))

    run_concurrently(*[lambda t=t: write(t) for t in range(threads)])
    assert len(buf) == threads * per_thread
    everything = buf.batch()
    assert sorted(everything.event_ids.tolist()) == list(range(threads * per_thread)), "no experience lost"
    assert_rows_whole(everything)
    np.testing.assert_array_equal(everything.inputs[0][:, 0], everything.event_ids)


def test_sampling_while_writing_returns_whole_rows() -> None:
    buf = ExperienceBuffer(64, embed_dim=E, seed=0)
    for i in range(64):
        buf.append(experience(i))
    stop = threading.Event()

    def write() -> None:
        i = 64
        while not stop.is_set():
            buf.append(experience(i))
            i += 1
            # the GIL given up between appends: two writers re-taking the (unfair) lock at once starved the
            # sampler for up to a minute, though the appends still interleave with every sample
            time.sleep(0)

    def sample() -> None:
        try:
            for _ in range(150):
                assert_rows_whole(buf.sample(16, prioritized=True, alpha=0.7, beta=0.5))
                assert_rows_whole(buf.sample(16))
        finally:
            stop.set()

    run_concurrently(write, write, sample)


def test_buffers_pickle_and_load_keeps_its_own_lock(tmp_path) -> None:
    buf = ExperienceBuffer(4, embed_dim=E, seed=3)
    for i in range(6):
        buf.append(experience(i))
    back = pickle.loads(pickle.dumps(buf))
    np.testing.assert_array_equal(back.batch().event_ids, [2, 3, 4, 5])
    np.testing.assert_array_equal(back.sample(2).indices, buf.sample(2).indices)
    lock = back._lock
    buf.save(tmp_path / "b.safetensors")
    back.load(tmp_path / "b.safetensors")
    assert back._lock is lock, "a thread waiting on the old lock must still exclude the loader"


@pytest.mark.parametrize("how", ["copy", "deepcopy", "pickle"])
def test_a_copy_of_a_buffer_is_independent_and_samples_as_the_original(how) -> None:
    """copy.copy shared the buffer's arrays and generator: recording into
    the copy overwrote the original's oldest experience and sampling from
    it moved the original's generator."""
    import copy

    make = {"copy": copy.copy, "deepcopy": copy.deepcopy, "pickle": lambda b: pickle.loads(pickle.dumps(b))}[how]
    buf = ExperienceBuffer(4, embed_dim=E, seed=3)
    for i in range(4):
        buf.append(experience(i))
    buf.sample(2)  # the generator has moved on from its seed
    twin = make(buf)
    twin.append(experience(99))
    twin.update_priorities([0], [5.0])
    twin.sample(3)
    assert buf.batch().event_ids.tolist() == [0, 1, 2, 3] and twin.batch().event_ids.tolist() == [1, 2, 3, 99]
    np.testing.assert_array_equal(buf._arrays["priorities"][buf._slots()], np.abs(buf.batch().rewards).astype(np.float64) + 1e-3)
    fresh = make(buf)
    np.testing.assert_array_equal(buf.sample(3, prioritized=True).indices, fresh.sample(3, prioritized=True).indices)
    np.testing.assert_array_equal(buf.sample(3).indices, fresh.sample(3).indices)


def test_a_buffers_pickled_state_is_a_snapshot_of_the_moment_it_was_taken() -> None:
    """The state was the buffer's own arrays, read by the pickler after the
    lock was released: a write another thread made meanwhile went into the
    pickle, beside the size and write position of before it (a full ring's
    oldest experience replaced by the newest, out of order)."""
    buf = ExperienceBuffer(4, embed_dim=E, seed=0)
    for i in range(4):
        buf.append(experience(i))
    state = buf.__getstate__()
    buf.append(experience(50))  # another thread, right after the lock is released
    taken = ExperienceBuffer.__new__(ExperienceBuffer)
    taken.__setstate__(state)
    assert taken.batch().event_ids.tolist() == [0, 1, 2, 3]
    assert_rows_whole(taken.batch())


def experience_with_dims(i: int, dims) -> Experience:
    """:func:`experience` ``i`` with inputs of widths ``dims``."""
    x = experience(i)
    x.inputs = [np.full(d, i, np.float32) if x.mask[m] else None for m, d in enumerate(dims)]
    return x


class _LoadsBeforeLocking:
    """A buffer's lock that, the first time it is entered, lets ``load`` run
    first: another thread's load landing between an append's checks and
    its write."""

    def __init__(self, buffer: ExperienceBuffer, path) -> None:
        self._lock, self._buffer, self._path, self._loaded = buffer._lock, buffer, path, False

    def __enter__(self):
        if not self._loaded:
            self._loaded = True
            self._buffer.load(self._path)
        return self._lock.__enter__()

    def __exit__(self, *exc):
        return self._lock.__exit__(*exc)


@pytest.mark.parametrize("loaded_dims", [None, (5, 1, 2, 1, 1, 1, 1)], ids=["no inputs", "other widths"])
def test_an_append_checked_before_another_thread_loads_the_buffer_records_nothing(tmp_path, loaded_dims) -> None:
    """The inputs were checked against the input_dims of before the load:
    into a buffer without inputs the row was written claiming inputs it did
    not hold (seven Nones beside a mask marking modalities present: no
    other buffer took it back); into one of other widths the write tore
    and dropped the experience it was replacing."""
    loaded = ExperienceBuffer(2, embed_dim=E, input_dims=loaded_dims, seed=1)
    for i in (7, 8):
        loaded.append(experience(i, inputs=False) if loaded_dims is None else experience_with_dims(i, loaded_dims))
    loaded.save(tmp_path / "loaded.safetensors")
    buf = ExperienceBuffer(2, embed_dim=E, input_dims=(3, 1, 2, 1, 1, 1, 1), seed=0)
    buf.append(experience(1, inputs=True))
    buf._lock = _LoadsBeforeLocking(buf, tmp_path / "loaded.safetensors")
    with pytest.raises(ShapeError, match="another thread loaded it") as info:
        buf.append(experience(2, inputs=True))
    assert info.value.arg == "inputs"
    assert buf.batch().event_ids.tolist() == [7, 8], "the loaded experiences, nothing else"


# -------------------------------------------------------- loading = appending
def _saved(tmp_path, edit, name="buf.safetensors"):
    """A valid buffer's state, edited, written with fresh checksums."""
    buf = ExperienceBuffer(5, embed_dim=E, input_dims=(3, 1, 2, 1, 1, 1, 1), seed=0)
    for i in range(4):
        buf.append(experience(i, inputs=True))
    tensors, meta = buf.state()
    edit(tensors, meta)
    path = tmp_path / name
    write_tagged_safetensors(path, tensors, FILE_FORMAT, meta)
    return path


def _set(name, row, value):
    def edit(tensors, meta):
        tensors[name] = tensors[name].copy()
        tensors[name][row] = value

    return edit


def _retype(name, dtype):
    def edit(tensors, meta):
        tensors[name] = tensors[name].astype(dtype)

    return edit


def _without_input_dims(tensors, meta):
    meta["input_dims"] = None
    for name in [n for n in tensors if n.startswith("inputs.")]:
        del tensors[name]


@pytest.mark.parametrize(
    "edit, words",
    [
        (_set("fused", 1, np.nan), "fused: row 1 holds NaN"),
        (_set("embeddings", 2, np.inf), "embeddings: row 2 holds inf"),
        (_set("rewards", 0, np.inf), "rewards: row 0"),
        (_set("pair_strengths", 3, np.nan), "pair_strengths: row 3"),
        (_set("priorities", 1, -1.0), "priorities: row 1 is -1.0"),
        (_set("priorities", 2, np.nan), "priorities: row 2 is nan"),
        (_set("priorities", 2, 0.0), "priorities"),
        (_set("inputs.visual", 1, np.nan), "inputs['visual']: row 1"),
        (_retype("event_ids", np.float64), "event_ids"),
        (_retype("mask", np.float32), "mask"),
        (_retype("rewards", np.float16), "rewards"),
        (_retype("priorities", np.float32), "priorities"),
        # rows that claim inputs in a buffer that keeps none (append refuses them): iterated, each was an
        # Experience with inputs [None] * 7 for modalities its mask marks present, which append then refused
        (_without_input_dims, "has_inputs: row 0 claims inputs"),
    ],
)
def test_loading_checks_what_append_checks(tmp_path, edit, words) -> None:
    path = _saved(tmp_path, edit)
    target = ExperienceBuffer(3, embed_dim=E)
    target.append(experience(9))
    with pytest.raises(gm.CheckpointError, match=words.replace("[", r"\[").replace("(", r"\(")):
        target.load(path)
    assert target.batch().event_ids.tolist() == [9], "a failed load changes nothing"


def test_a_mask_of_one_half_or_a_bool_byte_of_two_is_refused(tmp_path) -> None:
    def half(tensors, meta):
        tensors["mask"] = np.where(tensors["mask"], 0.5, 0.0)

    with pytest.raises(gm.CheckpointError, match="mask"):
        ExperienceBuffer.from_file(_saved(tmp_path, half))

    def two(tensors, meta):
        tensors["mask"] = (tensors["mask"].view(np.uint8) * 2).view(bool)

    with pytest.raises(gm.CheckpointError, match="0/1"):
        ExperienceBuffer.from_file(_saved(tmp_path, two, "two.safetensors"))


def test_absent_inputs_may_hold_nan_and_present_ones_may_not(tmp_path) -> None:
    def absent_nan(tensors, meta):  # auditory is absent in every row: NaN is what the buffer itself writes
        assert np.isnan(tensors["inputs.auditory"]).all()

    assert len(ExperienceBuffer.from_file(_saved(tmp_path, absent_nan))) == 4


@pytest.mark.parametrize(
    "key, value",
    [("capacity", -1), ("capacity", "5"), ("size", 9), ("size", -1), ("embed_dim", 0), ("seed", -3),
     ("input_dims", [3, 1]), ("rng_state", {"bit_generator": "MT19937"}), ("rng_state", None)],
)
def test_bad_metadata_is_a_checkpoint_error(tmp_path, key, value) -> None:
    def edit(tensors, meta):
        meta[key] = value

    with pytest.raises(gm.CheckpointError):
        ExperienceBuffer.from_file(_saved(tmp_path, edit))


@pytest.mark.parametrize("field, value", [("state", -1), ("state", 2**200), ("inc", -5), ("uinteger", -1),
                                          ("uinteger", 2**32), ("has_uint32", 2), ("bit_generator", "MT19937")])
def test_a_generator_state_out_of_range_is_a_checkpoint_error(tmp_path, field, value) -> None:
    # numpy's OverflowError (an ArithmeticError, not a ValueError) escaped the load as it
    # was, and `grapheme-mm info` or `embed` of a model holding the buffer printed a traceback;
    # numpy 1.23 took a negative state or inc, wrapped: the generator drew another sequence.
    def edit(tensors, meta):
        state = meta["rng_state"]
        (state["state"] if field in ("state", "inc") else state)[field] = value

    with pytest.raises(gm.CheckpointError, match="inconsistent experience buffer state"):
        ExperienceBuffer.from_file(_saved(tmp_path, edit))


def test_a_huge_capacity_is_too_large_not_a_crash(tmp_path, monkeypatch) -> None:
    """A new buffer's capacity is refused up front. A saved one's was set
    where it was saved, maybe with more memory: it loads (it was refused, so
    a file from a larger machine could not be read here at all), and only a
    growth beyond this machine's memory is refused, changing nothing."""
    import grapheme_multimodal.buffer as buffer_module

    with pytest.raises(gm.TooLargeError, match="capacity"):
        ExperienceBuffer(10**15, embed_dim=64)

    def edit(tensors, meta):
        meta["capacity"] = 10**15

    buf = ExperienceBuffer.from_file(_saved(tmp_path, edit))
    assert buf.capacity == 10**15 and buf.batch().event_ids.tolist() == [0, 1, 2, 3]
    row = buffer_module.buffer_row_bytes(E, buf.input_dims)
    monkeypatch.setattr(buffer_module, "memory_budget", lambda: 1536 * row)  # room for its first 1024 rows, not 2048
    before = _whole_state(buf)
    n = 1100
    with pytest.raises(MemoryError, match="capacity"):  # TooLargeError is also a MemoryError (and a ValueError)
        buf.extend(np.zeros((n, 7, E)), np.ones((n, 7), bool), np.zeros((n, E)), np.zeros((n, 7, 7)), np.zeros(n))
    assert _whole_state(buf) == before


# ----------------------------------------------------------------- fuzzing
_floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.sampled_from([0.0, 1e300, -1e300, 3.5e38, 1e-320, np.nan]),
)
_shapes = st.sampled_from([(1, 7, E), (2, 7, E), (1, 7, E + 1), (1, 6, E), (0, 7, E), (3,), ()])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    emb=hnp.arrays(np.float64, _shapes, elements=_floats),
    mask=st.one_of(hnp.arrays(np.float64, (1, 7), elements=st.sampled_from([0.0, 1.0, 0.5, np.nan])), st.just(np.ones((1, 7), bool))),
    fused=hnp.arrays(np.float64, st.sampled_from([(1, E), (2, E), (1, E + 1)]), elements=_floats),
    reward=_floats,
    event_id=st.one_of(st.integers(-(2**70), 2**70), st.floats(allow_nan=True), st.just("x")),
    alpha=_floats,
    beta=_floats,
)
def test_fuzz_extend_and_sample_never_crash_or_leak_nan(emb, mask, fused, reward, event_id, alpha, beta) -> None:
    buf = ExperienceBuffer(4, embed_dim=E, seed=0)
    buf.append(experience(1))
    before = buf.batch()
    try:
        buf.extend(emb, mask, fused, np.zeros((len(fused), 7, 7)), [reward] * len(fused), [event_id] * len(fused))
    except (TypeError, gm.GraphemeError):
        after = buf.batch()
        np.testing.assert_array_equal(after.event_ids, before.event_ids)  # nothing written
    batch = buf.batch()
    for field in ("embeddings", "fused", "pair_strengths", "rewards"):
        assert np.isfinite(getattr(batch, field)).all(), field
    try:
        s = buf.sample(len(buf), prioritized=True, alpha=alpha, beta=beta, replace=True)
    except gm.InvalidValueError as exc:
        assert exc.arg in ("alpha", "beta")
        assert not (np.isfinite(alpha) and np.isfinite(beta) and alpha >= 0 and beta >= 0)
    else:
        assert np.isfinite(s.weights).all() and ((0 <= s.weights) & (s.weights <= 1)).all()


def _whole_state(buf: ExperienceBuffer) -> tuple:
    """Everything a buffer holds that a later call can see: experiences in
    order, priorities, and the generator's state."""
    tensors, meta = buf.state()
    return {k: v.tobytes() for k, v in tensors.items()}, repr(meta)


_ARGS = st.sampled_from([0, 1, 2, 3, 6, -1, 2**64, 1.5, np.nan, "2", None, True, [], [0], [0, 0], [-1], [9], [1e300],
                         [0.0], [np.nan], [[1]], np.array([2**63], np.uint64)])
_OPERATION = st.one_of(
    st.tuples(st.just("append"), st.integers(0, 50), st.booleans()),
    st.tuples(st.just("sample"), _ARGS, st.fixed_dictionaries({}, optional={
        "prioritized": st.booleans() | _ARGS, "alpha": _ARGS, "beta": _ARGS, "replace": st.booleans() | _ARGS})),
    st.tuples(st.just("update_priorities"), _ARGS, _ARGS),
    st.tuples(st.just("extend"), st.sampled_from(["embeddings", "mask", "fused", "pair_strengths", "rewards", "event_ids"]), _ARGS),
    st.tuples(st.just("reload"), st.sampled_from(["save", "pickle", "deepcopy", "copy"])),
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=st.lists(_OPERATION, max_size=12))
def test_failed_calls_change_nothing_and_a_reloaded_buffer_goes_on_as_its_original(tmp_path, operations) -> None:
    """Random calls, many of them refused, on a buffer and on its twin,
    which from time to time is replaced by the original saved and loaded,
    pickled or copied: a refused call leaves the whole state as it was
    (generator included), and the twin answers every call as the original."""
    import copy

    buf = ExperienceBuffer(5, embed_dim=E, seed=1)
    twin = ExperienceBuffer(5, embed_dim=E, seed=1)
    for b in (buf, twin):
        for i in range(3):
            b.append(experience(i))
    for operation in operations:
        name = operation[0]
        if name == "reload":
            how = operation[1]
            if how == "save":
                buf.save(tmp_path / "b.safetensors")
                twin = ExperienceBuffer.from_file(tmp_path / "b.safetensors")
            else:
                twin = {"pickle": lambda b: pickle.loads(pickle.dumps(b)), "deepcopy": copy.deepcopy, "copy": copy.copy}[how](buf)
            continue
        outcomes = []
        for b in (buf, twin):
            before = _whole_state(b)
            try:
                if name == "append":
                    b.append(experience(operation[1], inputs=operation[2]))  # inputs: refused, kept by neither
                    result = None
                elif name == "sample":
                    result = b.sample(operation[1], **operation[2])
                    result = (result.indices.tolist(), result.weights.tobytes(), result.event_ids.tolist())
                elif name == "update_priorities":
                    result = b.update_priorities(operation[1], operation[2])
                else:
                    one = experience(7)
                    args = dict(embeddings=one.embeddings[None], mask=one.mask[None], fused=one.fused[None],
                                pair_strengths=one.pair_strengths[None], rewards=[0.5], event_ids=[7])
                    args[operation[1]] = operation[2]
                    result = b.extend(**args)
            except (TypeError, IndexError, gm.GraphemeError) as exc:
                assert _whole_state(b) == before, f"a refused {name} changed the buffer"
                result = (type(exc), str(exc))
            outcomes.append(result)
        assert outcomes[0] == outcomes[1], f"{name}: the twin answered otherwise"
        assert _whole_state(buf) == _whole_state(twin)


# ------------------------------------------------- a model's buffer, loaded
def test_a_model_s_buffer_loads_no_file_of_other_dims(tmp_path) -> None:
    """``model.experience.load(path)`` of a buffer saved by a model of
    another ``embed_dim`` (or other input dims) loaded it, where assigning
    the same buffer to ``model.experience`` is refused: the model's next
    ``record_batch`` and ``compute_loss`` then failed on shapes the user
    never gave. Now the load is a ``CheckpointError`` naming the dims, and
    the buffer is left as it was; a file of this model's dims still loads,
    and a buffer of its own keeps loading any file."""
    rng = np.random.default_rng(0)
    small = gm.LearnableMultiModal(seed=0, embed_dim=8, hidden_dim=8, num_heads=2, input_dims={"visual": 4})
    small.record_batch({"visual": rng.normal(size=(3, 4)).astype(np.float32)})
    small.experience.save(tmp_path / "small.safetensors")
    other_inputs = gm.LearnableMultiModal(seed=0, embed_dim=16, hidden_dim=8, num_heads=2, input_dims={"visual": 5})
    other_inputs.record_batch({"visual": rng.normal(size=(2, 5)).astype(np.float32)})
    other_inputs.experience.save(tmp_path / "other_inputs.safetensors")

    model = gm.LearnableMultiModal(seed=1, embed_dim=16, hidden_dim=8, num_heads=2, input_dims={"visual": 4})
    model.record_batch({"visual": rng.normal(size=(2, 4)).astype(np.float32)})
    before = model.experience.batch().fused.copy()
    for name, words in (("small", "embed_dim=8"), ("other_inputs", "input_dims=(5,")):
        with pytest.raises(gm.CheckpointError, match=r"expected embed_dim=16|expected input_dims=\(4,") as err:
            model.experience.load(tmp_path / f"{name}.safetensors")
        assert words in str(err.value) and err.value.arg == "path"
        np.testing.assert_array_equal(model.experience.batch().fused, before)
    model.record_batch({"visual": rng.normal(size=(1, 4)).astype(np.float32)})
    assert np.isfinite(model.compute_loss())

    model.experience.save(tmp_path / "own.safetensors")
    twin = gm.LearnableMultiModal(seed=2, embed_dim=16, hidden_dim=8, num_heads=2, input_dims={"visual": 4})
    twin.experience.load(tmp_path / "own.safetensors")
    np.testing.assert_array_equal(twin.experience.batch().fused, model.experience.batch().fused)
    for owner in (pickle.loads(pickle.dumps(model)), gm.LearnableMultiModal.load(_saved_model(model, tmp_path))):
        with pytest.raises(gm.CheckpointError, match="embed_dim=8"):
            owner.experience.load(tmp_path / "small.safetensors")

    standalone = ExperienceBuffer(4, embed_dim=16)
    standalone.load(tmp_path / "small.safetensors")
    assert standalone.embed_dim == 8 and len(standalone) == 3


def _saved_model(model, tmp_path):
    path = tmp_path / "model.safetensors"
    model.save(path)
    return path


def test_a_model_records_into_a_buffer_that_keeps_embeddings_only(tmp_path) -> None:
    """``model.experience`` takes a buffer without ``input_dims`` (its
    docstring: "its embed_dim and input_dims are this model's, or None"),
    assigned or loaded from a file, but ``record_batch`` and ``record_fusion``
    then failed with "inputs: this buffer keeps embeddings only", an
    argument the caller never passed: a model with such a buffer could not
    record at all. Now they record the embeddings, without inputs."""
    rng = np.random.default_rng(0)
    embeddings_only = ExperienceBuffer(10, embed_dim=8)
    embeddings_only.save(tmp_path / "embeddings_only.safetensors")
    for put in ("assigned", "loaded"):
        model = gm.LearnableMultiModal(seed=0, embed_dim=8, hidden_dim=8, num_heads=2, input_dims={"visual": 4})
        if put == "assigned":
            model.experience = ExperienceBuffer(10, embed_dim=8)
        else:
            model.experience.load(tmp_path / "embeddings_only.safetensors")
        model.record_batch({"visual": rng.normal(size=(3, 4)).astype(np.float32)}, rewards=0.5)
        recorded = model.record_fusion(gm.MultiModalEvent(7, [gm.ModalFeatures(np.ones(4), "visual")]), reward=0.25)
        assert recorded.inputs is None
        batch = model.experience.batch()
        assert len(batch) == 4 and not batch.has_inputs.any() and batch.event_ids.tolist() == [-1, -1, -1, 7]
        assert model.experience.input_dims is None and np.isfinite(model.compute_loss())


@pytest.mark.parametrize("capacity", [2**63, 2**64, 2**128])
def test_a_capacity_past_int64_is_refused_not_loaded_unsaveable(tmp_path, capacity) -> None:
    """A buffer file (or checkpoint) whose capacity is 2**63 or more loaded
    (a saved capacity is checked against memory only as the buffer grows),
    but saving it again, or taking a batch, raised numpy's "Python int too
    large to convert to C long" from the slot arithmetic: a file that loaded
    and could not be saved. Now such a capacity is a TooLargeError, at
    construction and on load (a checkpoint's too)."""
    with pytest.raises(gm.TooLargeError, match="capacity") as err:
        ExperienceBuffer(capacity)
    assert err.value.arg == "capacity"

    def huge(tensors, meta):
        meta["capacity"] = capacity

    path = _saved(tmp_path, huge)
    with pytest.raises(gm.TooLargeError, match="capacity"):
        ExperienceBuffer.from_file(path)
    model = gm.LearnableMultiModal(seed=0, embed_dim=8, hidden_dim=8, num_heads=2, input_dims={"visual": 4})
    model.record_batch({"visual": np.ones((2, 4), np.float32)})
    from grapheme_multimodal.checkpoint import FILE_FORMAT as CHECKPOINT_FORMAT, checkpoint_state

    tensors, meta = checkpoint_state(model)
    meta["experience"]["capacity"] = capacity
    write_tagged_safetensors(tmp_path / "model.safetensors", tensors, CHECKPOINT_FORMAT, meta)
    with pytest.raises(gm.TooLargeError, match="capacity"):
        gm.LearnableMultiModal.load(tmp_path / "model.safetensors")
