"""Defects earlier sessions noticed and left (s62). Each test says what a
user saw before the fix."""

import os
import re
import signal
import subprocess
import sys
import warnings

import numpy as np
import pytest

import grapheme_multimodal as gm
from conftest import model_state, two_view_data, two_view_model


class _AssignedOnFirstReadUnderFitsLock(gm.LearnableMultiModal):
    """A model whose attribute ``changed`` is assigned ``to`` right after
    its first read once fit holds the model's lock: what another thread's
    assignment between two of fit's reads of it does, without a thread."""

    changed: str = ""
    to: object = None

    def __getattribute__(self, name):
        value = super().__getattribute__(name)
        state = object.__getattribute__(self, "__dict__")
        if name == type(self).changed and state.get("_armed_now") and not state.get("_fired"):
            state["_fired"] = True
            state[name] = type(self).to  # the other thread's assignment, just after this read
        return value


def _model_assigning(changed, to):
    """A :func:`two_view_model` whose ``changed`` becomes ``to`` just after
    fit, holding the model's lock, first reads it."""
    model = two_view_model()
    model.__class__ = type("Assigning", (_AssignedOnFirstReadUnderFitsLock,), {"changed": changed, "to": to})
    lock, updating = model._lock, model._lock.updating

    class _Arming:
        def __enter__(self):
            entered = updating().__enter__()
            model.__dict__["_armed_now"] = True
            return entered

        def __exit__(self, *exc):
            model.__dict__["_armed_now"] = False
            return updating().__exit__(*exc)

    lock.updating = _Arming  # fit's `with model._lock.updating()` arms the change
    return model


@pytest.mark.parametrize("changed, to, said", [
    ("epochs_trained", 5, r"model\.epochs_trained \(from 0, to 5\)"),
    ("history", [], r"model\.history \(replaced it\)"),
], ids=["epochs_trained", "history"])
def test_a_record_assigned_between_fits_reads_of_it_is_refused(changed, to, said):
    """Fit read ``model.epochs_trained`` (and ``model.history``) three times
    under its lock: to check it, for its undo copy, for its own count. Another
    thread's ``model.epochs_trained = 5`` between two of those reads was not
    refused: fit counted epochs 6.. from a value its undo copy did not hold
    (or recorded into a list the copy did not hold). Now each is read once:
    the assignment is found at the epoch's end, refused, and the model put
    back as it was."""
    model = _model_assigning(changed, to)
    before = model_state(model)
    with pytest.raises(RuntimeError) as raised:
        model.fit(two_view_data(), epochs=1, batch_size=10, progress=False)
    assert re.match(rf"^fit: changed {said} in the middle of fit, from another thread", str(raised.value)), raised.value
    assert model.__dict__["_fired"]  # the assignment did happen under fit's lock
    assert model_state(model) == before and model.history == []


def _train_argv(tmp_path):
    """``grapheme-mm train`` of two small views with ``--batch-size 1``,
    which fit warns of (contrastive objectives need two rows)."""
    rng = np.random.default_rng(0)
    np.save(tmp_path / "v.npy", rng.normal(size=(40, 6)).astype(np.float32))
    np.save(tmp_path / "a.npy", rng.normal(size=(40, 4)).astype(np.float32))
    return ["train", "-m", f"visual={tmp_path / 'v.npy'}", "-m", f"auditory={tmp_path / 'a.npy'}", "--epochs", "1",
            "--embed-dim", "8", "--hidden-dim", "8", "--heads", "2", "--encoder-hidden", "8", "--encoder-output-dim", "8",
            "--batch-size", "1", "--no-progress", "-o", str(tmp_path / "m.safetensors")]


@pytest.mark.parametrize("action, said", [("ignore", 0), ("error", 1), ("default", 1)])
def test_cli_train_says_the_librarys_warnings_as_the_warning_filters_say(tmp_path, capsys, action, said):
    """``PYTHONWARNINGS=ignore grapheme-mm train --batch-size 1 ...`` (or
    ``python -W ignore -m grapheme_multimodal``) still printed "grapheme-mm:
    warning: --batch-size: 1; contrastive ...": the library's warnings are
    held for the command line outside Python's filters. Now an ignored one
    is not said; under ``error`` it is still the one-line warning, as the
    command line's other warnings are, and the command runs on."""
    from grapheme_multimodal import cli

    with warnings.catch_warnings():  # this test's thread alone: the filters as -W would set them
        warnings.simplefilter(action)
        code = cli.main(_train_argv(tmp_path))
    err = capsys.readouterr().err
    assert code == 0, err
    assert err.count("warning:") == said, err
    assert not said or err.startswith("grapheme-mm: warning: --batch-size: 1; contrastive"), err


@pytest.mark.parametrize("filters", [
    [("ignore", "s62 held", UserWarning, "", 0)],
    [("ignore", "s62 other", UserWarning, "", 0)],  # a message filter that matches another text
    [("ignore", "", RuntimeWarning, "", 0)],  # another category
    [("ignore", "", Warning, "test_leftovers_s62", 0)],  # by the module the warning is said from
    [("ignore", "", Warning, "elsewhere", 0)],
    [("default", "s62", UserWarning, "", 0), ("ignore", "", Warning, "", 0)],  # the first filter that matches decides
    [("ignore", "", Warning, "", 10**6)],  # by another line
], ids=["message", "other message", "other category", "module", "other module", "first match", "other line"])
def test_a_held_warning_is_dropped_where_warnings_would_ignore_it(filters):
    """A held warning (the command line's) is kept exactly where
    ``warnings.warn`` from the same line would have said it."""
    from grapheme_multimodal._caller_warnings import holding_warnings, warn_at_caller

    with warnings.catch_warnings(record=True) as said:
        warnings.resetwarnings()
        warnings.simplefilter("always")
        for action, message, category, module, line in reversed(filters):  # each put first: the list's order
            warnings.filterwarnings(action, message, category, module, line)
        with holding_warnings() as holding:
            warn_at_caller("s62 held", UserWarning)
        warnings.warn("s62 held", UserWarning)
    assert len(holding.held) == len(said), (holding.held, said)


_UNREADABLE = {"GRAPHEME_MM_NUM_THREADS": "abc", "RAYON_NUM_THREADS": "x1", "GRAPHEME_MM_PORTABLE": "y"}


@pytest.mark.ray
@pytest.mark.timeout(180)
def test_train_on_workers_says_an_unreadable_setting_once_in_the_driver(tmp_path):
    """``PYTHONWARNINGS=error GRAPHEME_MM_NUM_THREADS=abc grapheme-mm train
    --workers 2`` failed with a traceback of the workers' import (they
    inherit the environment, and said the setting at import, where the
    filter made it an error), after the command's own one-line warning. Now
    the workers of the local cluster get the unreadable settings blank (read
    the same: passed over) and the command says each once, and trains."""
    pytest.importorskip("ray")
    argv = _train_argv(tmp_path)
    argv[argv.index("--batch-size") + 1] = "20"  # no warning of fit's: the settings' alone are said
    env = {k: v for k, v in os.environ.items() if k not in (*_UNREADABLE, "GRAPHEME_MM_NO_AVX512")}
    # RuntimeWarning, the settings' at import: Ray 2.51 itself leaves files unclosed (ResourceWarning) under "error"
    env.update(_UNREADABLE, PYTHONWARNINGS="error::RuntimeWarning", RAY_DEFAULT_OBJECT_STORE_MAX_MEMORY_BYTES=str(256 * 2**20))
    env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)  # which the tests' conftest sets
    # the console script's way (named grapheme-mm, it imports the cli module, then runs main), and what main
    # leaves in the environment
    program = ("import os, sys; sys.argv[0] = 'bin/grapheme-mm'; from grapheme_multimodal.cli import main; "
               "code = main(sys.argv[1:]); "
               "print('left:', os.environ.get('RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER')); sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", program, *argv, "--workers", "2"], env=env,
                          capture_output=True, text=True, timeout=150)
    lines = done.stderr.splitlines()
    assert done.returncode == 0 and len(lines) == 3, done.stderr[-3000:]
    assert [line.split("=")[0] for line in lines] == [f"grapheme-mm: warning: {name}" for name in _UNREADABLE], lines
    assert (tmp_path / "m.safetensors").exists()
    # the setting that keeps the local cluster on loopback is not left in a program's environment that never set it
    assert done.stdout.splitlines()[-1] == "left: None", done.stdout


def test_the_blanked_settings_are_read_as_the_unreadable_ones_and_said_by_none(monkeypatch):
    """What the local cluster's workers get in place of an unreadable
    setting: blank, which nothing says (a warning at their import) and the
    core passes over as it passes over the unreadable value."""
    from grapheme_multimodal import _environment

    for name, value in _UNREADABLE.items():
        monkeypatch.setenv(name, value)
    blanked = _environment.blanked_unreadable_settings()
    assert blanked == dict.fromkeys(_UNREADABLE, "")
    for name, value in blanked.items():
        monkeypatch.setenv(name, value)
    assert _environment.unreadable_settings() == []


@pytest.mark.parametrize("users", [None, "1"])
def test_the_local_cluster_setting_is_put_back_as_found(monkeypatch, users):
    """``cli.main([..., "--workers", "2"])`` in a program left
    ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` in its environment for good (and
    its subprocesses'). Now it is set while the cluster starts and runs,
    and taken out after (kept when the program set its own); two commands
    at once share it: the first to end leaves it to the other."""
    ray = pytest.importorskip("ray")
    from grapheme_multimodal import cli

    seen = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)  # no cluster started: what ray.init is given is the point
    monkeypatch.setattr(ray, "init", lambda **_: seen.append(os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")))
    monkeypatch.setattr(ray, "shutdown", lambda: None)
    if users is None:
        monkeypatch.delenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", raising=False)
    else:
        monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", users)
    first, second = cli._ray_cluster(None), cli._ray_cluster(None)
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER") == (users or "0")  # the second's cluster still runs
    second.__exit__(None, None, None)
    assert seen == [users or "0"] * 2
    assert os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER") == users


_HOLD_THE_FOLDER = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
fcntl.flock(fd, fcntl.LOCK_EX)  # as a commit of several files holds the folder while it renames them
print("locked", flush=True)
sys.stdin.read()  # until the test ends it
"""


@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="POSIX: a process stopped by SIGSTOP")
@pytest.mark.timeout(30)  # before: the save waited for ever
def test_a_save_of_several_files_into_a_folder_a_stopped_process_holds_fails_after_a_bounded_wait(tmp_path, monkeypatch):
    """A process stopped (Ctrl-Z, SIGSTOP) in the middle of a commit of
    several files holds their folder's lock: every other process's save of
    several files into that folder (``grapheme-mm embed`` with
    ``--bindings``, ``demo``) waited for ever, without a word. Now it waits
    :data:`io.FOLDER_LOCK_WAIT_S`, then fails naming the folder and the
    process that holds it; nothing written, the earlier files intact, no
    temporary file left."""
    from grapheme_multimodal import io

    (tmp_path / "a.bin").write_bytes(b"earlier a")
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_THE_FOLDER, str(tmp_path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        os.kill(holder.pid, signal.SIGSTOP)
        monkeypatch.setattr(io, "FOLDER_LOCK_WAIT_S", 0.2, raising=False)  # raising: before, the wait had no bound
        with pytest.raises(TimeoutError) as raised:
            io.atomic_write_all([(tmp_path / "a.bin", lambda f: f.write(b"new a")),
                                 (tmp_path / "b.bin", lambda f: f.write(b"new b"))])
    finally:
        os.kill(holder.pid, signal.SIGCONT)
        holder.kill()
        holder.wait()
    said = str(raised.value)
    assert said.startswith(f"path: {str(tmp_path / 'a.bin')!r} cannot be saved: its folder {str(tmp_path)!r} has been "
                           "locked for 0.2 s by another save of several files into it"), said
    if os.path.exists("/proc/locks"):  # Linux says who holds it
        assert f"(process {holder.pid})" in said, said
    assert "stopped (Ctrl-Z, SIGSTOP)" in said and "nothing was written" in said, said
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]
    assert (tmp_path / "a.bin").read_bytes() == b"earlier a"
    # the lock free again: the same save goes through at once
    io.atomic_write_all([(tmp_path / "a.bin", lambda f: f.write(b"new a")), (tmp_path / "b.bin", lambda f: f.write(b"new b"))])
    assert (tmp_path / "b.bin").read_bytes() == b"new b"


@pytest.mark.parametrize("ignored, said", [
    (Warning, False), (RuntimeWarning, False), (UserWarning, True), (None, True)])
def test_the_command_lines_own_warnings_are_silenced_as_python_warnings_are(monkeypatch, capsys, ignored, said):
    """``PYTHONWARNINGS=ignore GRAPHEME_MM_NUM_THREADS=abc grapheme-mm ...``
    still printed "grapheme-mm: warning: GRAPHEME_MM_NUM_THREADS='abc' ...",
    which is the library's RuntimeWarning at import (as the command line's
    other warnings are the library's warnings said its way). Now a
    filter that ignores the category silences it; other categories' do not."""
    from grapheme_multimodal import cli

    for name in ("GRAPHEME_MM_NUM_THREADS", "RAYON_NUM_THREADS", "GRAPHEME_MM_PORTABLE", "GRAPHEME_MM_NO_AVX512"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GRAPHEME_MM_NUM_THREADS", "abc")
    with warnings.catch_warnings():  # this test's thread alone: the filters as -W would set them
        if ignored is not None:
            warnings.simplefilter("ignore", ignored)
        code = cli.main(["info", "no-such.safetensors"])
    lines = capsys.readouterr().err.splitlines()
    assert code == 2 and lines[-1] == "grapheme-mm: error: checkpoint: no file at 'no-such.safetensors'", lines
    assert len(lines) == 1 + said and (not said or lines[0].startswith("grapheme-mm: warning: GRAPHEME_MM_NUM_THREADS='abc'"))


_CLEANUP_STOPPED_HOLDING = """
import fcntl, os, signal, sys
signal.alarm(60)  # never outlives a test that hangs
path = sys.stdin.readline().rstrip("\\n")
fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as another save's cleanup of orphans locks a temporary file
print("locked", flush=True)
sys.stdin.read()  # holds it, as a cleanup stopped (Ctrl-Z) right after its lock would
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX: flock")
@pytest.mark.timeout(30)  # before: the save waited for ever
def test_a_save_whose_new_temporary_file_another_saves_cleanup_holds_makes_another(tmp_path, monkeypatch):
    """Another process's cleanup of orphaned temporary files that locked a
    save's new temporary file in the moment between its creation and its
    lock, and stopped there (Ctrl-Z), made the save wait for ever on that
    lock, Ctrl-C held back (the wait was inside the step that records the
    file for removal). Now the save gives that file up and makes another."""
    from grapheme_multimodal import io

    (tmp_path / "a.bin").write_bytes(b"earlier")  # an existing target: its mode is copied to the new file (a chmod)
    cleanup = subprocess.Popen([sys.executable, "-c", _CLEANUP_STOPPED_HOLDING], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    chmod, held = os.chmod, []

    def chmod_once_the_cleanup_holds_it(path, mode, *args, **kwargs):
        if not held and str(path).endswith(".tmp"):  # the save's first temporary file, made and not yet locked
            held.append(path)
            cleanup.stdin.write(f"{path}\n")
            cleanup.stdin.flush()
            assert cleanup.stdout.readline() == "locked\n"
        return chmod(path, mode, *args, **kwargs)

    try:
        monkeypatch.setattr(os, "chmod", chmod_once_the_cleanup_holds_it)
        io.atomic_write_bytes(tmp_path / "a.bin", b"new")
        monkeypatch.undo()
    finally:
        cleanup.kill()
        cleanup.wait()
    assert held and (tmp_path / "a.bin").read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]  # the file given up removed, not left behind


def test_an_interrupt_in_the_first_epochs_metric_leaves_the_averaged_model_as_it_was():
    """A Ctrl-C in a metric of a fit's first epoch, with a weight average:
    fit's count of its epochs had moved on when the metric ran, so fit took
    that epoch, undone, for completed and left the interrupted epoch's
    average applied to the model (caught by test_trust_audit2_s53's property
    after fit read its record once)."""
    from test_trust_resume import full_state

    model = two_view_model()
    x = two_view_data()
    model.fit(x, epochs=2, batch_size=8, ema_decay=0.5, progress=False)
    before = full_state(model)

    def interrupt(fitted):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        model.fit(x, epochs=1, batch_size=8, ema_decay=0.5, progress=False, metrics={"stop": interrupt})
    assert full_state(model) == before


@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="POSIX: a process stopped by SIGSTOP")
@pytest.mark.timeout(30)
def test_a_folder_lock_that_changed_hands_meanwhile_is_waited_for_again(tmp_path, monkeypatch):
    """The bounded wait took any holder at its end for a stopped one: saves
    into a folder that follow one another (each holding it moments) could
    fail a save that waited behind them all. Where another process holds it
    at the end than at the start, the wait starts again; the same holder
    twice fails it."""
    from grapheme_multimodal import io

    holder = subprocess.Popen([sys.executable, "-c", _HOLD_THE_FOLDER, str(tmp_path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    readings = iter([101, 102, 102])  # the holder as each end of a wait reads it: changed once, then the same
    asked = []

    def holder_now(folder):
        asked.append(folder)
        return next(readings)

    try:
        assert holder.stdout.readline() == "locked\n"
        monkeypatch.setattr(io, "FOLDER_LOCK_WAIT_S", 0.05)
        monkeypatch.setattr(io, "_folder_lock_holder", holder_now)
        with pytest.raises(TimeoutError, match=r"\(process 102\)"):
            io.atomic_write_all([(tmp_path / "a.bin", lambda f: f.write(b"a")), (tmp_path / "b.bin", lambda f: f.write(b"b"))])
    finally:
        holder.kill()
        holder.wait()
    assert len(asked) == 3  # at the start, after a wait (changed hands: waited again), after the second (the same)
