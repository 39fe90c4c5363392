"""The thread setting, and what the speed work promises: results do not
depend on the number of threads, and the per-event cache hands out copies."""

from __future__ import annotations

import signal
import threading
import time

import numpy as np
import pytest

import grapheme_multimodal as gm

pytestmark = pytest.mark.usefixtures("default_sigint")  # Ctrl-C raises, even in a background job


@pytest.fixture
def restore_threads():
    before = gm.get_num_threads()
    yield
    gm.set_num_threads(before)


def test_set_and_get(restore_threads) -> None:
    assert gm.get_num_threads() >= 1
    gm.set_num_threads(1)
    assert gm.get_num_threads() == 1
    gm.set_num_threads(np.int64(3))
    assert gm.get_num_threads() == 3


@pytest.mark.parametrize("bad", [0, -2])
def test_rejects_non_positive_counts(bad: int, restore_threads) -> None:
    with pytest.raises(ValueError, match="positive"):
        gm.set_num_threads(bad)


@pytest.mark.parametrize("bad", [2.0, True, "2", None])
def test_rejects_non_integers(bad: object, restore_threads) -> None:
    with pytest.raises(TypeError, match="int"):
        gm.set_num_threads(bad)  # type: ignore[arg-type]


def _run(threads: int, inputs: list, mask: np.ndarray) -> list:
    gm.set_num_threads(threads)
    model = gm.LearnableMultiModal(seed=4)
    emb, fused = model.encode_and_fuse(inputs, mask)
    losses = [model.train_step(gm.Batch(inputs=inputs, mask=mask)) for _ in range(2)]
    return [emb, fused, *[np.array(sorted(l.items()), dtype=object) for l in losses], *model.state_dict().values(),
            *model.gradients().values()]


def test_results_are_bit_identical_on_any_number_of_threads(restore_threads) -> None:
    rng = np.random.default_rng(0)
    batch = 300  # large enough for every parallel path (row chunks, split products, contrastive rounds)
    inputs = [rng.standard_normal((batch, 18), dtype=np.float32) for _ in range(7)]
    mask = rng.random((batch, 7)) > 0.2
    one = _run(1, inputs, mask)
    for threads in (2, 4):
        many = _run(threads, inputs, mask)
        for a, b in zip(one, many):
            assert np.array_equal(a, b), f"{threads} threads differ from 1"


def test_fuse_event_returns_a_copy_of_the_cached_result() -> None:
    model = gm.LearnableMultiModal(seed=1)
    event = gm.MultiModalEvent(1)
    event.add_component(gm.ModalGraph(gm.Graph.from_text("a red ball"), "visual"))
    event.add_component(gm.ModalFeatures(np.linspace(-1, 1, 18), "linguistic", confidence=0.5))
    first = model.fuse_event(event)
    expected = first.copy()
    first[:] = 0.0  # the caller's array is theirs
    np.testing.assert_array_equal(model.fuse_event(event), expected)
    np.testing.assert_array_equal(model.fuse_event(event), expected)
    model.clear_cache()
    np.testing.assert_array_equal(model.fuse_event(event), expected)


def _wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the threads to line up"
        time.sleep(0.005)


@pytest.mark.timeout(120)  # a wait that never ends fails the test instead of the whole run
@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs signal.pthread_kill")
def test_a_writer_interrupted_while_waiting_does_not_strand_the_readers_queued_behind_it() -> None:
    """Ctrl-C while ``train_step`` waits for a reader: a reader that queued
    behind the waiting writer must get in once the first reader leaves (it
    used to wait forever: nobody notified it when the writer gave up)."""
    model = gm.LearnableMultiModal(embed_dim=8, hidden_dim=8, num_heads=2, seed=0)
    x = {"visual": np.ones((4, model.config.input_dims[0]), np.float32)}
    lock = model._lock
    holding, release, late_done = threading.Event(), threading.Event(), threading.Event()

    def long_reader() -> None:
        with lock.reading():
            holding.set()
            release.wait()

    def late_reader() -> None:
        model.encode(x)
        late_done.set()

    lining_up: list = []

    def interrupt_when_both_wait() -> None:
        try:
            _wait_until(lambda: lock._writers_waiting == 1)
            threading.Thread(target=late_reader, daemon=True).start()
            _wait_until(lambda: lock._gate.waiting == 2)  # the writer and the late reader
        except AssertionError as exc:
            lining_up.append(exc)
        finally:  # always: the main thread waits for a reader that waits for the main thread
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    first = threading.Thread(target=long_reader)
    first.start()
    holding.wait()
    interrupter = threading.Thread(target=interrupt_when_both_wait)
    interrupter.start()
    before = model.state_dict()
    try:
        with pytest.raises(KeyboardInterrupt):
            model.train_step(x)
    finally:
        release.set()
        first.join()
        interrupter.join()
    assert not lining_up, lining_up
    finished = late_done.wait(5)
    if not finished:
        with lock.writing():  # wakes the stranded reader, so the thread ends
            pass
    assert finished, "the reader queued behind the interrupted writer never got in"
    assert all(np.array_equal(before[k], v) for k, v in model.state_dict().items()), "the interrupted step changed nothing"


@pytest.mark.timeout(300)
def test_an_interrupt_on_entering_any_python_function_of_a_step_never_leaves_the_lock_held() -> None:
    """Python raises a pending Ctrl-C on entering a Python function. Sweep it
    over every function a ``train_step`` enters: whatever one it lands on,
    the step is taken whole or not at all, and another thread can still use
    the model (the lock was Python code: an interrupt on entering its
    ``__exit__`` left it held, and other threads waited forever)."""
    import _thread
    import copy
    import sys

    model = gm.LearnableMultiModal(embed_dim=8, hidden_dim=8, num_heads=2, seed=0)
    x = {"visual": np.ones((4, model.config.input_dims[0]), np.float32)}

    def other_thread_can_read() -> bool:
        done = threading.Event()
        threading.Thread(target=lambda: (model.encode(x), done.set()), daemon=True).start()
        return done.wait(5)

    interrupted_at = 0
    while True:
        interrupted_at += 1
        before = model.state_dict()
        stepped = copy.deepcopy(model)
        stepped.train_step(x)
        calls = 0

        def interrupt_on_the_nth_call(frame, event, arg) -> None:
            nonlocal calls
            if event == "call":
                calls += 1
                if calls == interrupted_at:
                    _thread.interrupt_main()

        try:
            sys.setprofile(interrupt_on_the_nth_call)
            model.train_step(x)
            sys.setprofile(None)
            break  # past the last function the step enters
        except KeyboardInterrupt:
            sys.setprofile(None)
        assert other_thread_can_read(), f"the lock was left held (interrupt on entering call {interrupted_at})"
        after = model.state_dict()
        whole = [all(np.array_equal(state[k], after[k]) for k in after) for state in (before, stepped.state_dict())]
        assert any(whole), f"half a step (interrupt on entering call {interrupted_at})"
    assert interrupted_at > 5


@pytest.mark.parametrize("value, warns", [("abc", True), ("0", True), ("-2", True), ("1_0", True), ("2.5", True),
                                          ("3", False), (" +2 ", False), ("", False)])
def test_a_thread_setting_the_core_cannot_read_is_named_in_a_warning(value: str, warns: bool) -> None:
    """The core passes over a GRAPHEME_MM_NUM_THREADS it cannot read; the
    user who set it hears so at import instead of getting another count."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "GRAPHEME_MM_NUM_THREADS": value}
    env.pop("RAYON_NUM_THREADS", None)
    done = subprocess.run([sys.executable, "-c", "import grapheme_multimodal as gm; print(gm.get_num_threads())"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    said = f"GRAPHEME_MM_NUM_THREADS={value!r} is not a positive int and is ignored"
    assert (said in done.stderr) == warns, done.stderr
    if not warns and value.strip():
        assert int(done.stdout) == int(value.strip())
