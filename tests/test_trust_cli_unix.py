"""The command line as Unix users push it, run as a subprocess: standard
output closed, full (/dev/full) or a pipe no one reads, standard error
closed, SIGTERM in the middle of a save or of demo, and the exit statuses
``--help`` lists."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(not os.path.exists("/dev/full") or os.name != "posix", reason="Unix only")

SMALL = ["--epochs", "1", "--embed-dim", "8", "--hidden-dim", "8", "--heads", "2", "--no-progress"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from grapheme_multimodal.cli import main

    d = tmp_path_factory.mktemp("unix")
    rng = np.random.default_rng(0)
    np.save(d / "a.npy", rng.normal(size=(24, 6)).astype(np.float32))
    np.save(d / "b.npy", rng.normal(size=(24, 4)).astype(np.float32))
    assert main(["train", "-m", f"visual={d / 'a.npy'}", "-m", f"auditory={d / 'b.npy'}", "-o", str(d / "m.safetensors"), *SMALL]) == 0
    return d


def cli(*argv: str, stdout=subprocess.PIPE, close=(), ignore_sigint=False, **kwargs) -> subprocess.CompletedProcess:
    """``python -m grapheme_multimodal ARGV``, with the descriptors in ``close`` closed as ``>&-`` closes them."""

    def before_exec() -> None:
        for fd in close:
            os.close(fd)
        if ignore_sigint:  # a background job's (`grapheme-mm ... &` in a script)
            signal.signal(signal.SIGINT, signal.SIG_IGN)

    return subprocess.run([sys.executable, "-m", "grapheme_multimodal", *argv], stdout=stdout, stderr=subprocess.PIPE,
                          text=True, timeout=120, preexec_fn=before_exec, **kwargs)


def one_line(done: subprocess.CompletedProcess, code: int, *words: str) -> str:
    lines = done.stderr.splitlines()
    assert done.returncode == code and len(lines) == 1, (done.returncode, done.stderr)
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["train", "--help"], ["info", "M"]])
def test_what_could_not_be_printed_is_an_error_and_a_reader_gone_is_141(files, argv) -> None:
    """`grapheme-mm --help > /dev/full` exited 0 without a word (argparse
    drops a failed write), as did `--help` into a pipe whose reader had
    gone; `info m > /dev/full` said "[Errno 28] No space left on device",
    which after train's "saved" line read as the checkpoint's disk being
    full. Now: one line naming standard output and status 2, and 141
    (128 + SIGPIPE, as `info | head` already gave) for a reader gone."""
    argv = [str(files / "m.safetensors") if a == "M" else a for a in argv]
    with open("/dev/full", "w") as full:
        done = cli(*argv, stdout=full)
    one_line(done, 2, "grapheme-mm: error: standard output: No space left on device")
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = cli(*argv, stdout=write_end)
    finally:
        os.close(write_end)
    assert done.returncode == 141 and done.stderr == "", (done.returncode, done.stderr)


def test_train_into_a_full_stdout_keeps_its_checkpoint_and_names_stdout(files, tmp_path) -> None:
    out = tmp_path / "m.safetensors"
    with open("/dev/full", "w") as full:
        done = cli("train", "-m", f"visual={files / 'a.npy'}", "-o", str(out), *SMALL, stdout=full)
    one_line(done, 2, "standard output: No space left on device")
    assert out.exists()


@pytest.mark.parametrize("argv", [["--help"], ["info", "M"], ["train", "-m", "visual=A", "-o", "OUT", *SMALL]])
def test_a_closed_standard_output_is_refused_before_any_work(files, tmp_path, argv) -> None:
    """`grapheme-mm ... >&-`: --help went to stderr and info printed
    nothing, both with exit status 0; train trained with the first file it
    opened on descriptor 1, where Ray's processes write. Now one line and
    status 2 before anything is read or written."""
    out = tmp_path / "out.safetensors"
    argv = [{"M": str(files / "m.safetensors"), "visual=A": f"visual={files / 'a.npy'}", "OUT": str(out)}.get(a, a) for a in argv]
    done = cli(*argv, stdout=None, close=(1,))
    one_line(done, 2, "grapheme-mm: error: standard output is closed")
    assert not out.exists()


def test_train_with_standard_error_closed_trains_and_saves(files, tmp_path) -> None:
    """`grapheme-mm train ... 2>&-`: the progress bar's first write raised
    AttributeError ('NoneType' object has no attribute 'write'), its
    traceback had nowhere to go: exit status 1, nothing said, nothing saved."""
    out = tmp_path / "m.safetensors"
    argv = ["train", "-m", f"visual={files / 'a.npy'}", "-o", str(out), *[a for a in SMALL if a != "--no-progress"]]
    done = subprocess.run([sys.executable, "-m", "grapheme_multimodal", *argv], stdout=subprocess.PIPE, text=True,
                          timeout=120, preexec_fn=functools.partial(os.close, 2))
    assert done.returncode == 0 and "saved" in done.stdout, (done.returncode, done.stdout)
    assert out.exists()


def test_fit_draws_no_progress_bar_without_stderr(monkeypatch) -> None:
    """The library's own: ``fit(progress=True)`` with ``sys.stderr`` None
    (started with it closed, pythonw) raised AttributeError at its first step."""
    import grapheme_multimodal as gm

    model = gm.LearnableMultiModal(input_dims={"visual": 3}, embed_dim=8, hidden_dim=8, num_heads=2)
    x = {"visual": np.random.default_rng(0).normal(size=(16, 3)).astype(np.float32)}
    monkeypatch.setattr(sys, "stderr", None)
    history = model.fit(x, epochs=1, batch_size=8, progress=True)
    assert len(history.epochs) == 1


#: Runs the CLI on ARGV with the save's sync slowed: "ready" is written when the first
#: output's temporary file is written and synced, then the command waits for the signal.
_SLOW_SAVE = """
import os, sys, time
import grapheme_multimodal.io as io
real = io.os.fsync
def fsync(fd, real=real):
    real(fd)
    open(sys.argv[1], "w").close()
    time.sleep(20)
io.os.fsync = fsync
from grapheme_multimodal.cli import main
sys.exit(main(sys.argv[2:]))
"""

#: As _SLOW_SAVE, but slowed at the first rename that gives an output its name: it waits there
#: (20 s at most) for "ready.sent", which the test writes once it has sent the signal. The signal
#: is held back there, so a fixed sleep ran its whole length (3 s) every time.
_SLOW_RENAME = """
import os, sys, time
import grapheme_multimodal.io as io
real = io.os.replace
def replace(a, b, real=real):
    real(a, b)
    if not os.path.exists(sys.argv[1]):
        open(sys.argv[1], "w").close()
        deadline = time.monotonic() + 20
        while not os.path.exists(sys.argv[1] + ".sent") and time.monotonic() < deadline:
            time.sleep(0.01)
io.os.replace = replace
from grapheme_multimodal.cli import main
sys.exit(main(sys.argv[2:]))
"""

#: demo with its run slowed (no data needed): "ready" once demo has made its output folder's path.
_SLOW_DEMO = """
import sys, time
import grapheme_multimodal.demo as demo
def run_demo(*args, **kwargs):
    open(sys.argv[1], "w").close()
    time.sleep(20)
demo.run_demo = run_demo
from grapheme_multimodal.cli import main
sys.exit(main(sys.argv[2:]))
"""


def signalled(script: str, ready, argv, sig=signal.SIGTERM, ignore_sigint=False, say_sent=False) -> subprocess.CompletedProcess:
    """Runs ``script`` with ARGV, sends ``sig`` once it is ready (then,
    with ``say_sent``, writes "<ready>.sent" for a script that waits for it)."""

    def before_exec() -> None:
        # what a user's terminal gives (a shell starts background jobs, CI's `setsid python -m pytest &`
        # among them, with SIGINT ignored, which the child would inherit), or a background job's own
        signal.signal(signal.SIGINT, signal.SIG_IGN if ignore_sigint else signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)  # pytest run under nohup would hand on SIGHUP ignored

    p = subprocess.Popen([sys.executable, "-c", script, str(ready), *map(str, argv)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, preexec_fn=before_exec)
    deadline = time.monotonic() + 60
    while not ready.exists() and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    p.send_signal(sig)
    if say_sent:
        open(f"{ready}.sent", "w").close()
    out, err = p.communicate(timeout=60)
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


@pytest.mark.parametrize("sig, code, word", [
    (signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted"), (signal.SIGHUP, 129, "hung up"),
])
def test_a_signal_during_the_save_leaves_no_temporary_file_and_the_old_output(files, tmp_path, sig, code, word) -> None:
    """SIGTERM (`kill`, a scheduler's stop) killed train where it stood: a
    temporary .m.safetensors.*.tmp of the checkpoint's size stayed beside
    it, exit status -15 and not a word. Now it ends as Ctrl-C does; and so
    does SIGHUP (the terminal closed, an SSH session dropped), which still
    did (exit status -1), with exit status 129."""
    out = tmp_path / "m.safetensors"
    out.write_bytes(b"the earlier run's")
    done = signalled(_SLOW_SAVE, tmp_path / "ready", ["train", "-m", f"visual={files / 'a.npy'}", "-o", out, "--overwrite", *SMALL], sig)
    assert one_line(done, code) == f"grapheme-mm: {word}"
    assert sorted(os.listdir(tmp_path)) == ["m.safetensors", "ready"]
    assert out.read_bytes() == b"the earlier run's"


@pytest.mark.parametrize("sig, code, word", [(signal.SIGTERM, 143, "terminated"), (signal.SIGHUP, 129, "hung up")])
def test_sigterm_during_demo_removes_the_folder_it_made(tmp_path, sig, code, word) -> None:
    """SIGTERM during demo left its new output folders behind (Ctrl-C removed them); SIGHUP too."""
    done = signalled(_SLOW_DEMO, tmp_path / "ready", ["demo", "--out", tmp_path / "runs" / "demo", "--no-progress"], sig)
    assert one_line(done, code) == f"grapheme-mm: {word}"
    assert sorted(os.listdir(tmp_path)) == ["ready"]


def test_sigterm_between_two_renames_of_a_background_job_keeps_the_outputs_one_run_s(files, tmp_path) -> None:
    """A background job (`grapheme-mm embed ... &` in a script: SIGINT
    ignored) has Ctrl-C's holding back off; SIGTERM between the renames of
    embed's two outputs left the new embeddings beside the old binding
    strengths. Held back as Ctrl-C is, both are the new run's."""
    out, bindings = tmp_path / "e.npy", tmp_path / "s.npy"
    np.save(out, np.zeros(1))
    np.save(bindings, np.zeros(1))
    argv = ["embed", files / "m.safetensors", "-m", f"visual={files / 'a.npy'}", "-o", out, "--bindings", bindings, "--overwrite"]
    done = signalled(_SLOW_RENAME, tmp_path / "ready", argv, ignore_sigint=True, say_sent=True)
    assert one_line(done, 143) == "grapheme-mm: terminated"
    assert np.load(out).shape == (24, 8) and np.load(bindings).shape == (24, 7, 7)


def test_a_closed_terminal_ends_train_as_sighup_does_without_a_traceback(files, tmp_path) -> None:
    """`grapheme-mm train ...` in a terminal that is closed (a window shut,
    an SSH session dropped): the kernel sends SIGHUP, which killed the run
    where it stood, a temporary file of the checkpoint's size left beside
    it. Now it ends as Ctrl-C does, exit status 129; the line it says has
    nowhere to go (the terminal's writes fail with EIO), which must not
    turn the stop into a traceback and exit status 1. The run's terminal
    here is a pseudo-terminal whose other side the test closes."""
    import fcntl
    import pty
    import termios

    out = tmp_path / "m.safetensors"
    out.write_bytes(b"the earlier run's")
    ready = tmp_path / "ready"
    try:
        master, slave = pty.openpty()
    except OSError as exc:  # a container without /dev/ptmx
        pytest.skip(f"no pseudo-terminal: {exc}")

    def on_the_terminal() -> None:
        os.setsid()  # a session of its own, whose controlling terminal the pty becomes: the closing hangs it up
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)  # standard input is the pty's terminal side
        for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)

    argv = ["train", "-m", f"visual={files / 'a.npy'}", "-o", out, "--overwrite", *SMALL]
    p = subprocess.Popen([sys.executable, "-c", _SLOW_SAVE, str(ready), *map(str, argv)], stdin=slave, stdout=slave,
                         stderr=slave, preexec_fn=on_the_terminal)
    os.close(slave)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists() and p.poll() is None and time.monotonic() < deadline:
            if _readable(master):  # what it prints, read so that it never waits on a full terminal
                with contextlib.suppress(OSError):
                    os.read(master, 65536)
            time.sleep(0.02)
        assert ready.exists(), "the run did not reach its save"
    finally:
        os.close(master)  # the terminal closes: SIGHUP to the session
    assert p.wait(timeout=60) == 129
    assert sorted(os.listdir(tmp_path)) == ["m.safetensors", "ready"]
    assert out.read_bytes() == b"the earlier run's"


def _readable(fd: int) -> bool:
    import select

    return bool(select.select([fd], [], [], 0)[0])


#: Runs the CLI on ARGV with SIGHUP ignored (`nohup grapheme-mm ...`), sending itself SIGHUP during the save.
_HANGUP_WHILE_SAVING = """
import os, signal, sys
import grapheme_multimodal.io as io
signal.signal(signal.SIGHUP, signal.SIG_IGN)
real = io.os.fsync
def fsync(fd, real=real):
    os.kill(os.getpid(), signal.SIGHUP)
    real(fd)
io.os.fsync = fsync
from grapheme_multimodal.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_under_nohup_a_hangup_is_still_ignored(files, tmp_path) -> None:
    """`nohup grapheme-mm train ...` runs on after its terminal closes: the
    CLI handles SIGHUP only where nothing has set it, as SIGTERM."""
    out = tmp_path / "m.safetensors"
    argv = ["train", "-m", f"visual={files / 'a.npy'}", "-o", str(out), *SMALL]
    done = subprocess.run([sys.executable, "-c", _HANGUP_WHILE_SAVING, *argv], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "saved" in done.stdout, (done.returncode, done.stderr)
    assert out.exists()


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["embed", "--help"]])
def test_help_lists_the_exit_statuses(argv) -> None:
    done = cli(*argv)
    text = " ".join(done.stdout.split())
    assert done.returncode == 0
    for words in ("0 done", "2 an error", "129 hung up", "130 interrupted", "141", "143 terminated"):
        assert words in text, (words, text[-400:])


@pytest.mark.parametrize("argv, words", [
    (["info", "-"], ["checkpoint: expected a file path, got '-' (standard input", "./- for a file named -"]),
    (["embed", "M", "-m", "visual=-"], ["--modality: visual=-: standard input is not read", "./- for a file named -"]),
    (["train", "-m", "visual=-"], ["--modality: visual=-: standard input is not read"]),
])
def test_standard_input_as_dash_is_said_not_to_be_read(files, tmp_path, capsys, monkeypatch, argv, words) -> None:
    """`grapheme-mm info - < m.safetensors` said "no file at '-'", and
    `-m visual=-` "file not found: -", as if a file had gone missing; `-o -`
    already said that outputs go to files. A file named - is still read."""
    from grapheme_multimodal.cli import main

    monkeypatch.chdir(tmp_path)
    argv = [str(files / "m.safetensors") if a == "M" else a for a in argv]
    with pytest.raises(SystemExit) if argv[0] == "info" else contextlib.nullcontext():
        assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and all(w in err for w in words), err
    (tmp_path / "-").write_bytes((files / "m.safetensors").read_bytes())
    assert main(["info", "-"]) == 0 and "parameters:" in capsys.readouterr().out


#: Runs the CLI on ARGV (after WHERE) and sends itself SIGTERM where WHERE says: "init", as ray.init ends
#: (Ray's own handler, set as it starts, still in place), "fit" or "embed", once Ray runs the work.
_SIGTERM_UNDER_RAY = """
import os, signal, sys, time
import ray
import grapheme_multimodal.distributed as distributed
where = sys.argv[1]
def terminated(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(60)
if where == "init":
    real_init = ray.init
    def init(*args, real_init=real_init, **kwargs):
        started = real_init(*args, **kwargs)
        terminated()
        return started
    ray.init = init
else:
    setattr(distributed, {"fit": "fit", "embed": "embed_dataset"}[where], terminated)
from grapheme_multimodal.cli import main
code = main(sys.argv[2:])
if where == "init":  # an exit slower than 3 s, as on a busy machine: Ray's C++ handler armed an alarm that aborts
    time.sleep(3.5)
sys.exit(code)
"""


@pytest.mark.ray
@pytest.mark.timeout(180)
@pytest.mark.parametrize("where", ["init", "fit", "embed"])
def test_sigterm_under_ray_ends_the_command_as_without_it(files, tmp_path, where) -> None:
    """`train --workers` and `embed --ray`: ray.init put its own SIGTERM
    handler (sys.exit(15)) in place of the CLI's, so a SIGTERM once Ray had
    started ended the command with exit status 15 and no line (and Ray's
    C++ side printed a stack dump of the signal). The CLI's handler is put
    back once Ray has started, and a SIGTERM that Ray's met while it started
    is handed on to it: exit status 143, "grapheme-mm: terminated", nothing
    written, Ray shut down at exit as before. Ray's C++ handler, meeting
    the SIGTERM while Ray started, armed a 3 s alarm that aborts (abseil's
    guard against a hung handler): an exit slower than that, on a busy
    machine, ended with SIGABRT (-6) after "terminated"; now disarmed."""
    pytest.importorskip("ray")
    if where == "embed":
        out = tmp_path / "e.npy"
        argv = ["embed", files / "m.safetensors", "-m", f"visual={files / 'a.npy'}", "--ray", "-o", out]
    else:
        out = tmp_path / "m.safetensors"
        argv = ["train", "-m", f"visual={files / 'a.npy'}", "--workers", "1", "-o", out, *SMALL]

    def before_exec() -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)

    done = subprocess.run([sys.executable, "-c", _SIGTERM_UNDER_RAY, where, *map(str, argv)], capture_output=True,
                          text=True, timeout=150, preexec_fn=before_exec,
                          env=dict(os.environ, RAY_DEFAULT_OBJECT_STORE_MAX_MEMORY_BYTES=str(256 * 2**20)))
    lines = done.stderr.splitlines()
    assert done.returncode == 143 and lines and lines[-1] == "grapheme-mm: terminated", (done.returncode, done.stderr[-2000:])
    if where != "init":  # Ray's C++ handler, in place while Ray starts, prints its stack dump first
        assert len(lines) == 1, done.stderr[-2000:]
    assert not out.exists()
