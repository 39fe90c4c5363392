"""Hostile use of one model from several threads, second audit: what the
first (test_threads, test_thread_matrix, test_trust_interrupts,
test_trust_fork) left out. Every thread is joined with a timeout, so a
regression fails instead of hanging CI."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

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


def test_an_interrupt_inside_the_first_import_of_numpy_ma_never_hangs_other_threads() -> None:
    """Before: the first record_batch/load_state_dict imported numpy.ma (lazy in numpy 2), some under the
    model's lock; a KeyboardInterrupt landing in that import left its import lock held and every thread hung."""
    assert _run_script(_INTERRUPTED_IMPORT).strip() == "['encode', 'load_state_dict']"
