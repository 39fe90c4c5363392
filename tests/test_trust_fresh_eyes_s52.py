"""Session 52's fresh-eyes audit of saved work under Ctrl-C: each test
failed before its fix.

A Ctrl-C lands where the interpreter next checks for signals: as a call of
a C function returns, or as a Python function begins. The tests deliver a
real SIGINT at such a point (from a profile function, ``sys.setprofile``'s
``c_return`` and ``call`` events), so that :func:`_locking.uninterrupted`
holds it back where the library asks it to, as it would a Ctrl-C typed
then."""

from __future__ import annotations

import contextlib
import copy
import pathlib
import os
import signal
import subprocess
import sys
import textwrap
import warnings
from typing import Any, Iterator

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import io, stopping
from grapheme_multimodal.sklearn import MultimodalEmbedder

pytestmark = [
    pytest.mark.skipif(not hasattr(signal, "SIGINT") or os.name != "posix", reason="needs POSIX signals"),
    # CI starts pytest as a background job, with SIGINT ignored: no Ctrl-C would land (conftest.py)
    pytest.mark.usefixtures("default_sigint"),
]

# A sweep over every point of a save where a Ctrl-C can land, in a fresh interpreter: before the fixes
# one of them left the saves' lock held, and every later save (and the interpreter's exit) waited for ever.
_SWEEP = """
    import contextvars, faulthandler, inspect, os, pathlib, signal, sys, tempfile
    import numpy as np
    import grapheme_multimodal as gm
    from grapheme_multimodal import io

    sys.path.insert(0, sys.argv[1])  # the tests' folder: their Ctrl-C harness
    import ctrl_c_sweep

    signal.signal(signal.SIGINT, signal.default_int_handler)  # what a terminal gives, whatever started this
    os.fsync = lambda fd: None  # the disk's sync is not what is checked: the sweep stays quick
    points = 0  # where a Ctrl-C landed: none would make the sweep pass without checking anything
    folder = pathlib.Path(tempfile.mkdtemp())
    old, new = gm.ExperienceBuffer(4, seed=0), gm.ExperienceBuffer(4, seed=0)
    new.append(gm.Experience(np.zeros((7, 4), np.float32), np.zeros(7, bool), np.zeros(4, np.float32),
                             np.zeros((7, 7), np.float32), 1.0))

    def descriptors():
        return len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0

    def interrupted_at(n, call):  # in the file writers, or in what they call (os.path, pathlib, threading)
        return ctrl_c_sweep.interrupted_at(n, call, lambda code: code.co_filename == io.__file__)

    def together():
        with io.writing_together():
            new.save(folder / "b.st")
            new.save(folder / "c.st")

    calls = {"save": (lambda: new.save(folder / "a.st"), ["a.st"]), "writing_together": (together, ["b.st", "c.st"])}
    problems = set()
    for name, (call, targets) in calls.items():
        for target in targets:
            old.save(folder / target)
        n = 0
        while True:
            n += 1
            before = descriptors()
            interrupted = interrupted_at(n, call)
            faulthandler.dump_traceback_later(60, exit=True)  # a later save that waits for ever: said, where
            if any(f.endswith(".tmp") for f in os.listdir(folder)):
                problems.add(f"{name}: a temporary file left")
                for f in os.listdir(folder):
                    if f.endswith(".tmp"):
                        os.unlink(folder / f)
            if descriptors() != before:
                problems.add(f"{name}: a file descriptor left open")
            sizes = {len(gm.ExperienceBuffer.from_file(folder / t)) for t in targets}
            if len(sizes) != 1:
                problems.add(f"{name}: its files half old, half new")
            for target in targets:  # as they were, for the next point; and a later save must write its file
                os.unlink(folder / target)
                old.save(folder / target)
                if not os.path.exists(folder / target):
                    problems.add(f"{name}: a later save wrote nothing")
                    contextvars.Context().run(old.save, folder / target)  # out of any writing_together block
            faulthandler.cancel_dump_traceback_later()
            if not interrupted:
                break
            points += 1
    print(sorted(problems), file=sys.stderr)
    print(sorted(problems))
    print(points)
"""


def test_a_ctrl_c_at_any_point_of_a_save_leaves_no_trace_and_later_saves_work() -> None:
    """Before: a Ctrl-C at some points of a save (``model.save``, a buffer's,
    ``save_ensemble``, the command line's outputs) left:
    - the save's temporary file on disk and its descriptor open and locked,
      so that no later save of the process removed it as an orphan (landing
      while the target's path was resolved, after the temporary file was
      made, or between the last write and the commit);
    - the lock that counts the saves in flight held (landing as
      ``threading.Condition.__enter__``'s acquire returned): every later
      save of the process, and the interpreter's exit, waited for ever;
    - in ``writing_together``, the block in place for good (landing as
      ``ContextVar.set`` returned): every later save of the thread was
      staged into that dead block and never written, without a word.
    Now none: at every point no temporary file, no descriptor, the targets
    all old or all new, and a later save writes its file."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(_SWEEP), str(pathlib.Path(__file__).parent)],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONFAULTHANDLER": "0"})
    assert done.returncode == 0, done.stdout + done.stderr
    problems, points = done.stdout.split("\n")[:2]
    assert problems == "[]", done.stdout
    assert int(points) > 100, f"a Ctrl-C landed at {points} points only"


@contextlib.contextmanager
def _ctrl_c_as(c_function: str, returns_in: str) -> Iterator[None]:
    """A Ctrl-C that lands as the C function named ``c_function``, called
    from the Python function ``returns_in``, returns (the first such call)."""

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "c_return" and getattr(arg, "__name__", None) == c_function and frame.f_code.co_name == returns_in:
            sys.setprofile(None)
            os.kill(os.getpid(), signal.SIGINT)

    sys.setprofile(profile)
    try:
        with pytest.raises(KeyboardInterrupt):
            yield
    finally:
        sys.setprofile(None)


def test_a_ctrl_c_during_a_load_never_refuses_a_later_copy(tmp_path) -> None:
    """Before: a Ctrl-C as a load noted the file's tensor sizes (for its
    check of a forged config) left them noted for good in the thread, and a
    later ``copy.deepcopy`` or unpickling of a larger model was refused as a
    forged file: "config: makes a model of 70,337 parameters ... but the
    file holds 1,... bytes of its tensors"."""
    small = gm.LearnableMultiModal(seed=0, embed_dim=4, hidden_dim=4, num_heads=1, buffer_size=2)
    small.save(tmp_path / "small.st")
    with _ctrl_c_as("set", "read_tagged_safetensors"):
        gm.LearnableMultiModal.load(tmp_path / "small.st")
    large = gm.LearnableMultiModal(seed=0)
    twin = copy.deepcopy(large)
    assert all(np.array_equal(twin.state_dict()[k], v) for k, v in large.state_dict().items())
    assert gm.LearnableMultiModal.load(tmp_path / "small.st").num_parameters() == small.num_parameters()


def test_a_ctrl_c_during_a_load_leaves_later_models_buffer_checked_up_front(tmp_path) -> None:
    """Before: a Ctrl-C as a load marked its models as built from saved
    state left the mark in place, and a later ``LearnableMultiModal`` of a
    ``buffer_size`` past the machine's memory was made without a word (its
    buffer refused only as it grew), not refused naming ``buffer_size``."""
    with pytest.raises(gm.TooLargeError, match="buffer_size"):
        gm.LearnableMultiModal(buffer_size=2**32)
    gm.LearnableMultiModal(seed=0, embed_dim=4, hidden_dim=4, num_heads=1).save(tmp_path / "m.st")
    with _ctrl_c_as("set", "_built_for_saved_state"):
        gm.LearnableMultiModal.load(tmp_path / "m.st")
    with pytest.raises(gm.TooLargeError, match="buffer_size"):
        gm.LearnableMultiModal(buffer_size=2**32)


def _lossy_views(n: int = 40) -> dict:
    """Two views, the first of which float32 cannot hold (1e6 + tiny changes)."""
    rng = np.random.default_rng(0)
    return {"visual": 1e6 + 1e-3 * rng.normal(size=(n, 4)), "auditory": rng.normal(size=(n, 3))}


def _precision_warnings(call) -> int:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        call()
    return sum(issubclass(w.category, gm.PrecisionLossWarning) for w in seen)


def test_a_ctrl_c_as_a_training_call_begins_never_silences_later_precision_warnings() -> None:
    """Before: a Ctrl-C as ``fit_with_stopping`` (or the estimator's fit,
    ``uci.train``) opened its scope of warnings left the scope in place for
    good in the thread: each ``PrecisionLossWarning`` was given once, by
    the next fit, and never again by any later one."""
    def fit() -> None:
        model = gm.LearnableMultiModal(seed=0, input_dims={"visual": 4, "auditory": 3}, embed_dim=8, hidden_dim=8,
                                       num_heads=2)
        model.fit(_lossy_views(), epochs=1, batch_size=16, progress=False)

    with _ctrl_c_as("set", "call_with_set"):  # precision_scoped sets its scope there
        stopping.fit_with_stopping(gm.LearnableMultiModal(seed=0, input_dims={"visual": 4, "auditory": 3}),
                                   _lossy_views(), validation_fraction=0.1, patience=1, monitor="val_contrastive",
                                   epochs=1, progress=False)
    assert [_precision_warnings(fit), _precision_warnings(fit)] == [1, 1], "each fit warns, as before the Ctrl-C"


def test_a_ctrl_c_as_the_estimator_begins_to_fit_leaves_set_params_working() -> None:
    """Before: a Ctrl-C as ``MultimodalEmbedder.fit`` marked itself as
    running in the thread left the mark for good: every later
    ``set_params`` of that estimator (``GridSearchCV`` sets them, or a
    notebook's next cell) was refused as "called in the middle of this
    estimator's own fit"."""
    rng = np.random.default_rng(0)
    estimator = MultimodalEmbedder(epochs=1, embed_dim=8, hidden_dim=8, encoder_hidden=(8,), num_heads=2, verbose=False)
    with _ctrl_c_as("append", "_call_fitting"):
        estimator.fit([rng.normal(size=(20, 4)), rng.normal(size=(20, 3))])
    assert estimator.set_params(epochs=2) is estimator
    assert estimator.get_params()["epochs"] == 2


def test_a_ctrl_c_as_outputs_are_kept_never_keeps_them_later(tmp_path) -> None:
    """Before: a Ctrl-C as ``keeping_existing`` (the command line's outputs
    without ``--overwrite``) noted its targets left them noted for good,
    and a later write there, by a program calling the command line's
    ``main``, was refused as "created by something else while this ran"."""
    target = tmp_path / "out.bin"
    with _ctrl_c_as("set", "keeping_existing"):
        with io.keeping_existing({"--output": target}):
            pass
    io.atomic_write_bytes(target, b"first")
    io.atomic_write_bytes(target, b"second")
    assert target.read_bytes() == b"second"
