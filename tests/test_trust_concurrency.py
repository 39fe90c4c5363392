"""Hostile use of one model from several threads, second audit: what the
first (test_threads, test_thread_matrix, test_trust_interrupts,
test_trust_fork) left out. Every thread is joined with a timeout, so a
regression fails instead of hanging CI."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any, Dict

import numpy as np
import pytest

import grapheme_multimodal as gm

#: A thread still running after this many seconds is taken as hung.
JOIN_TIMEOUT_S = 5.0


def _run_script(script: str, timeout: float = 60.0) -> str:
    """Runs ``script`` in a fresh interpreter (numpy's lazily imported
    submodules not yet imported, as in a user's program) and returns its output."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "PYTHONFAULTHANDLER": "0"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


_INTERRUPTED_IMPORT = """
    import sys, threading, time
    import numpy as np
    import grapheme_multimodal as gm

    model = gm.LearnableMultiModal(embed_dim=8, hidden_dim=16, num_heads=2, seed=0, encoder_hidden=(8,),
                                   input_dims={"visual": 10, "auditory": 6})
    weights = model.state_dict()
    inputs = {"visual": np.ones((4, 10), np.float32), "auditory": np.ones((4, 6), np.float32)}
    assert "numpy.ma" not in sys.modules, "numpy.ma already imported: this check would prove nothing"
    importing = threading.Event()

    def waiters(lock):
        w = getattr(lock, "waiters", 0)
        return len(w) if isinstance(w, (list, tuple)) else int(w)

    def tracer(frame, event, arg):
        # A KeyboardInterrupt delivered inside Python's import machinery, as Ctrl-C or
        # PyThreadState_SetAsyncExc may: as the lock of numpy.ma is released, once another
        # thread waits for it.
        code = frame.f_code
        if not code.co_filename.startswith("<frozen importlib"):
            return tracer
        lock = frame.f_locals.get("self")
        if getattr(lock, "name", None) != "numpy.ma":
            return tracer
        if code.co_name == "acquire":
            importing.set()
        if code.co_name != "release":
            return tracer

        def at_release(frame, event, arg):
            deadline = time.monotonic() + {timeout}
            while waiters(lock) < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            sys.settrace(None)
            raise KeyboardInterrupt
        return at_release

    def first_call():
        sys.settrace(tracer)
        try:
            model.record_batch(inputs, rewards=0.5)
        except KeyboardInterrupt:
            pass
        finally:
            sys.settrace(None)

    finished = []
    first = threading.Thread(target=first_call, daemon=True)
    first.start()
    while first.is_alive() and not importing.wait(0.01):
        pass
    loading = threading.Thread(target=lambda: (model.load_state_dict(weights), finished.append("load_state_dict")), daemon=True)
    loading.start()
    first.join({timeout})
    encoding = threading.Thread(target=lambda: (model.encode(inputs), finished.append("encode")), daemon=True)
    encoding.start()
    loading.join({timeout})
    encoding.join({timeout})
    print(sorted(finished))
""".replace("{timeout}", str(JOIN_TIMEOUT_S))


@pytest.mark.skipif(int(np.__version__.split(".")[0]) < 2, reason="numpy < 2 imports numpy.ma with numpy: no lazy import to interrupt")
def test_an_interrupt_inside_the_first_import_of_numpy_ma_never_hangs_other_threads() -> None:
    """Before: the first record_batch/load_state_dict imported numpy.ma (lazy in numpy 2), some under the
    model's lock; a KeyboardInterrupt landing in that import left its import lock held and every thread hung."""
    assert _run_script(_INTERRUPTED_IMPORT).strip() == "['encode', 'load_state_dict']"


def _tiny_model(**overrides: Any) -> gm.LearnableMultiModal:
    return gm.LearnableMultiModal(embed_dim=8, hidden_dim=16, num_heads=2, seed=0, encoder_hidden=(8,),
                                  input_dims={"visual": 10, "auditory": 6}, **overrides)


def _views(n: int, seed: int) -> Dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 3))
    return {"visual": (z @ rng.normal(size=(3, 10))).astype(np.float32),
            "auditory": (z @ rng.normal(size=(3, 6))).astype(np.float32)}


def test_a_thread_reading_the_history_while_a_metric_lands_sees_no_dict_change_size() -> None:
    """Before: json.dumps(model.history) or pandas.DataFrame(model.history) in a monitoring thread raised
    "dictionary changed size during iteration" when fit added a metric's value to the epoch's record in place."""
    model, data = _tiny_model(), _views(24, 0)
    paused: Dict[str, Any] = {}

    def first(m: gm.LearnableMultiModal) -> float:
        # a reader in another thread, paused halfway through the epoch's record (the switch lands here)
        paused["reading"] = iter(m.history[-1].items())
        paused["seen"] = [next(paused["reading"])]
        return 0.25

    def second(m: gm.LearnableMultiModal) -> float:
        paused["seen"].extend(paused["reading"])  # the reader resumes after the first metric's value landed
        return 0.5

    history = model.fit(data, epochs=1, batch_size=12, progress=False, metrics={"first": first, "second": second})
    assert paused["seen"][0][0] == "epoch" and "loss" in dict(paused["seen"])
    assert "val_first" not in dict(paused["seen"])  # what the reader held stayed as it was when it started
    record = model.history[-1]
    assert (record["val_first"], record["val_second"]) == (0.25, 0.5) and "seconds" in record
    assert history.epochs[-1] is record


def _waiting_at(thread: threading.Thread, function: Any, line_text: str) -> None:
    """Returns once ``thread`` has sat at the line of ``function`` holding
    ``line_text`` (waiting for a lock there) for 50 ms; fails after the timeout."""
    lines, first = inspect.getsourcelines(function)
    line = first + next(i for i, text in enumerate(lines) if line_text in text)
    deadline, steady = time.monotonic() + JOIN_TIMEOUT_S, 0
    while steady < 10:
        frame = sys._current_frames().get(thread.ident)
        steady = steady + 1 if frame is not None and frame.f_code is function.__code__ and frame.f_lineno == line else 0
        assert time.monotonic() < deadline, f"the thread never waited at {function.__qualname__}: {line_text}"
        time.sleep(0.005)


def test_a_buffer_given_to_a_model_while_it_loads_a_file_of_other_dims_refuses_the_file(tmp_path) -> None:
    """Before: ExperienceBuffer.load checked a model's dims before taking the buffer's lock; a model given the
    buffer meanwhile got experiences of another embed_dim, and its next record_batch failed on shapes."""
    path = tmp_path / "other.buf"
    other = gm.ExperienceBuffer(4, embed_dim=5, seed=0)
    other.extend(embeddings=np.full((1, 7, 5), 5 ** -0.5, np.float32), mask=np.ones((1, 7), bool), fused=np.ones((1, 5), np.float32),
                 pair_strengths=np.zeros((1, 7, 7), np.float32), rewards=[0.5])
    other.save(path)
    buffer, model = gm.ExperienceBuffer(4, seed=0), _tiny_model()
    outcome: Dict[str, Any] = {}

    def load() -> None:
        try:
            buffer.load(path)
            outcome["load"] = "loaded"
        except Exception as exc:
            outcome["load"] = exc

    loading = threading.Thread(target=load, daemon=True)
    with buffer._lock:  # another thread is recording into the buffer: the load waits for it
        loading.start()
        _waiting_at(loading, gm.ExperienceBuffer.load, "with self._lock")
        model.experience = buffer  # the model takes the buffer meanwhile
    loading.join(JOIN_TIMEOUT_S)
    assert not loading.is_alive()
    assert isinstance(outcome["load"], gm.CheckpointError) and "embed_dim=5" in str(outcome["load"])
    assert model.experience.embed_dim == 8 and len(model.experience) == 0
    model.record_batch(_views(3, 1), rewards=0.5)
    assert len(model.experience) == 3
