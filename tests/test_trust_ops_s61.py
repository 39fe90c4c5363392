"""Files and the command line under production use, round s61 (an MLOps
reviewer): two programs writing one set of outputs at once, a child forked
or a signal handler run while such a write holds its folder, the command
line run from several threads of a service at once, and an output that is
a file mounted into a container."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import subprocess
import sys
import threading
import types
from pathlib import Path
from typing import Iterator, Tuple

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import io as gio


# ------------------------------------------------------------------ two writers of one set of files at once
def test_two_writers_of_one_set_of_files_leave_one_writers_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two programs (here threads: the same calls) write one set of files
    at once, as two ``grapheme-mm embed --overwrite -o fused.npy --bindings
    b.npy`` runs, a retried batch job beside the one still running. The
    files left are one writer's set, never one's embeddings beside the
    other's binding strengths (of other rows, or as many rows of other
    events), which nothing would tell apart. A's commit is held between its
    two renames until B has either finished its own commit (the mix) or is
    waiting for A's to end."""
    x, y = tmp_path / "fused.npy", tmp_path / "bindings.npy"
    real_replace, real_flock = os.replace, gio.fcntl.flock
    a_between, b_done_or_waiting = threading.Event(), threading.Event()
    writer_b = threading.Thread(target=lambda: _write_pair(x, y, b"B", b_done_or_waiting))

    def replace(src, dst):  # A's first rename, then B's whole write while A's second waits
        real_replace(src, dst)
        if threading.current_thread() is threading.main_thread() and not a_between.is_set():
            a_between.set()
            writer_b.start()
            assert b_done_or_waiting.wait(timeout=30)

    def flock(fd, op):  # B waiting for a lock on a folder is B waiting for A's renames to end
        if threading.current_thread() is writer_b and os.path.isdir(f"/proc/self/fd/{fd}"):
            b_done_or_waiting.set()
        return real_flock(fd, op)

    shim = types.SimpleNamespace(**{k: getattr(gio.fcntl, k) for k in dir(gio.fcntl) if not k.startswith("_")})
    shim.flock = flock
    monkeypatch.setattr(gio, "fcntl", shim)
    monkeypatch.setattr(os, "replace", replace)
    _write_pair(x, y, b"A", threading.Event())
    writer_b.join(timeout=30)
    assert not writer_b.is_alive()
    assert (x.read_bytes(), y.read_bytes()) in ((b"A", b"A"), (b"B", b"B"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bindings.npy", "fused.npy"]


def _write_pair(x: Path, y: Path, content: bytes, done: threading.Event) -> None:
    try:
        gio.atomic_write_all([(x, lambda f: f.write(content)), (y, lambda f: f.write(content))])
    finally:
        done.set()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_child_forked_while_a_commit_holds_its_folder_does_not_keep_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A process forked (a 'fork' worker pool started) while another thread
    commits several files shares that commit's open folder, and with it the
    lock: were the child to keep it, every later commit of several files
    into that folder waited until the child exited (a pool's worker: for
    ever). The child closes what it cannot release."""
    x, y = tmp_path / "fused.npy", tmp_path / "bindings.npy"
    real_replace = os.replace
    a_between, a_may_go = threading.Event(), threading.Event()

    def replace(src, dst):
        real_replace(src, dst)
        if threading.current_thread() is writer_a and not a_between.is_set():
            a_between.set()
            assert a_may_go.wait(timeout=30)

    monkeypatch.setattr(os, "replace", replace)
    writer_a = threading.Thread(target=lambda: _write_pair(x, y, b"A", threading.Event()))
    writer_a.start()
    assert a_between.wait(timeout=30)
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # the child: alive, doing nothing, until the parent closes the pipe
        os.close(write_end)
        os.read(read_end, 1)
        os._exit(0)
    try:
        os.close(read_end)
        a_may_go.set()
        writer_a.join(timeout=30)
        done = threading.Event()
        writer_b = threading.Thread(target=lambda: _write_pair(x, y, b"B", done), daemon=True)
        writer_b.start()
        assert done.wait(timeout=10), "a commit waited for the lock a forked child kept"
        assert (x.read_bytes(), y.read_bytes()) == (b"B", b"B")
    finally:
        os.close(write_end)
        os.waitpid(child, 0)


# ------------------------------------------------------------------ the command line run from threads
def _overlapping_commands(monkeypatch: pytest.MonkeyPatch, first: list, second: list) -> list:
    """The exit statuses of ``cli.main(first)`` and ``cli.main(second)``
    run in two threads at once: the second begins while the first runs,
    and does its work once the first has returned."""
    from grapheme_multimodal import cli

    second_in, first_out = threading.Event(), threading.Event()
    real_run = cli._run

    def run(*args):  # _run's arguments, whatever they are: passed on as given
        if threading.current_thread() is threads[0]:  # the second begins once the first runs
            threads[1].start()
            assert second_in.wait(timeout=30)
        else:
            second_in.set()
            assert first_out.wait(timeout=30)
        return real_run(*args)

    def command(argv: list) -> None:
        codes[argv is second] = cli.main(argv)
        first_out.set()

    monkeypatch.setattr(cli, "_run", run)
    codes = [None, None]
    threads = [threading.Thread(target=command, args=(argv,)) for argv in (first, second)]
    threads[0].start()
    for t in threads:
        t.join(timeout=60)
    return codes


def test_commands_run_at_once_in_threads_put_standard_streams_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``cli.main`` called from threads of a service at once (a pool that
    embeds files on request): each call replaced ``sys.stdout`` and
    ``sys.stderr`` by its wrappers and put back what it had found, so a
    call that began while another ran put that other's wrappers back, and
    the program's streams stayed the command line's for good (its writes'
    failures then no OSError the program could catch). Here the first call
    ends while the second runs; both streams are the program's own after."""
    path = tmp_path / "m.safetensors"
    gm.LearnableMultiModal(embed_dim=4, hidden_dim=4, num_heads=1, seed=0).save(path)
    streams = (sys.stdout, sys.stderr)
    assert _overlapping_commands(monkeypatch, ["info", str(path)], ["info", str(path)]) == [0, 0]
    assert (sys.stdout, sys.stderr) == streams


def test_a_command_run_beside_another_that_ends_first_still_prints_any_file_name(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The command line prints a file name of bytes that are not UTF-8 as
    those bytes on a strict UTF-8 standard output, by an error handler it
    sets on the stream while it runs. Two calls in threads at once: the
    second found the handler set, and the first, ending, set the stream
    strict again under it: the second's "wrote ... to" of such a name
    failed after its file was written ("'utf-8' codec can't encode",
    exit status 2). Now the handler stays until the last call ends."""
    model = tmp_path / "m.safetensors"
    gm.LearnableMultiModal(embed_dim=4, hidden_dim=4, num_heads=1, seed=0, input_dims={"visual": 3}).save(model)
    np.save(tmp_path / "v.npy", np.ones((2, 3), np.float32))
    out = tmp_path / os.fsdecode(b"fused-\xff.npy")
    stdout = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict")
    monkeypatch.setattr(sys, "stdout", stdout)
    codes = _overlapping_commands(monkeypatch, ["info", str(model)],
                                  ["embed", str(model), "-m", f"visual={tmp_path / 'v.npy'}", "-o", str(out)])
    assert codes == [0, 0]
    assert out.exists()
    stdout.flush()
    assert b"fused-\xff.npy" in stdout.buffer.getvalue()
    assert stdout.errors == "strict"


# ------------------------------------------------------------------ an output the rename cannot replace
def _tiny_model_and_rows(folder: Path) -> Tuple[Path, Path]:
    model = folder / "m.safetensors"
    gm.LearnableMultiModal(embed_dim=4, hidden_dim=4, num_heads=1, seed=0, input_dims={"visual": 3}).save(model)
    np.save(folder / "v.npy", np.ones((2, 3), np.float32))
    return model, folder / "v.npy"


def test_an_output_whose_rename_fails_is_named_by_its_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture) -> None:
    """The command line names a file it cannot write by its flag
    (``--output: ...``), as the README says: a rename onto the output that
    failed ("Device or resource busy", of a file mounted there) named
    ``path``, an argument of the library's no command has."""
    from grapheme_multimodal import cli

    model, rows = _tiny_model_and_rows(tmp_path)
    out = tmp_path / "fused.npy"
    out.write_bytes(b"an earlier run's")
    real_replace = os.replace

    def replace(src, dst):
        if os.fspath(dst).endswith("fused.npy"):
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), src, dst)
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    assert cli.main(["embed", str(model), "-m", f"visual={rows}", "-o", str(out), "--overwrite"]) == 2
    err = capsys.readouterr().err.splitlines()[-1]  # after a warning that the checkpoint never trained
    assert err.startswith("grapheme-mm: error: --output: "), err
    assert out.read_bytes() == b"an earlier run's"
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


@contextlib.contextmanager
def _mounted_on(target: Path, source: Path) -> Iterator[None]:
    """``source`` bind-mounted on the file ``target`` (as a container's volume of one file), or a skip."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or not sys.platform.startswith("linux"):
        pytest.skip("mounting needs root on Linux")
    done = subprocess.run(["mount", "--bind", str(source), str(target)], capture_output=True)
    if done.returncode:
        pytest.skip(f"this machine does not let mount bind a file: {done.stderr[-200:]!r}")
    try:
        yield
    finally:
        subprocess.run(["umount", str(target)], check=True)


def test_a_file_mounted_at_the_output_is_refused_before_any_work(tmp_path: Path) -> None:
    """A checkpoint path that is a file mounted into a container (``docker
    run -v $PWD/model.safetensors:/app/model.safetensors``) cannot be
    replaced by a rename (EBUSY): ``grapheme-mm train --overwrite`` trained
    to its end and then failed, the training lost, with "path: ...: could
    not be given the written file (Device or resource busy)". Now a save
    refuses a mount point before it writes, saying what it is and what to
    do, and the command line before it trains."""
    model, rows = _tiny_model_and_rows(tmp_path)
    target, source = tmp_path / "mounted.safetensors", tmp_path / "source.safetensors"
    source.write_bytes(b"the host's file")
    target.write_bytes(b"")
    with _mounted_on(target, source):
        with pytest.raises(OSError, match="mount point") as caught:
            gm.LearnableMultiModal(embed_dim=4, hidden_dim=4, num_heads=1).save(target)
        assert caught.value.errno == errno.EBUSY
        done = subprocess.run([sys.executable, "-m", "grapheme_multimodal", "train", "-m", f"visual={rows}",
                               "-m", f"auditory={rows}", "-o", str(target), "--overwrite", "--epochs", "1", "--no-progress"],
                              capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(Path(gm.__file__).parent.parent)})
        assert done.returncode == 2 and done.stdout == "", (done.stdout, done.stderr)
        assert done.stderr.startswith("grapheme-mm: error: --output: ") and "mount point" in done.stderr, done.stderr
        assert target.read_bytes() == b"the host's file"


def test_a_signal_handler_that_commits_into_the_folder_of_the_commit_it_interrupts_does_not_wait_for_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A program's own signal handler (a "save on SIGTERM" writing a set of
    files) can run in the thread of a commit of several files once that
    commit holds its folder locked and before its renames begin (Python
    runs a handler between two instructions). Its own commit into that
    folder waited for the lock the interrupted commit held, which could
    not go on until the handler returned: the program hung. The handler's
    commit, in the thread that holds the folder, goes on."""
    real_flock = gio.fcntl.flock
    handler_done, outer_done = threading.Event(), threading.Event()

    def flock(fd, op):  # the handler, run as the outer commit's lock on its folder is taken
        real_flock(fd, op)
        if os.path.isdir(f"/proc/self/fd/{fd}") and not handler_done.is_set():
            _write_pair(tmp_path / "c.npy", tmp_path / "d.npy", b"handler", handler_done)

    shim = types.SimpleNamespace(**{k: getattr(gio.fcntl, k) for k in dir(gio.fcntl) if not k.startswith("_")})
    shim.flock = flock
    monkeypatch.setattr(gio, "fcntl", shim)
    outer = threading.Thread(target=_write_pair, args=(tmp_path / "a.npy", tmp_path / "b.npy", b"outer", outer_done),
                             daemon=True)  # before: waits for ever
    outer.start()
    assert outer_done.wait(timeout=10), "the handler's commit waited for the lock of the commit it interrupted"
    assert handler_done.is_set()
    assert [p.read_bytes() for p in sorted(tmp_path.iterdir())] == [b"outer", b"outer", b"handler", b"handler"]


# ------------------------------------------------------------------ a symbolic link to nothing
@pytest.mark.parametrize("link_at", ["file", "folder"])
def test_a_file_reached_through_a_link_to_nothing_is_said_to_be_one(tmp_path: Path, link_at: str,
                                                                     capsys: pytest.CaptureFixture) -> None:
    """A deployment's ``models/latest`` (or ``latest.safetensors``) left
    pointing at a checkpoint that was removed: "no file at
    'models/latest/m.safetensors'" sent the operator to look for a file
    that ``ls`` shows there. The load and the command line say which link
    names what does not exist."""
    from grapheme_multimodal import cli

    if link_at == "file":
        path, link = tmp_path / "latest.safetensors", tmp_path / "latest.safetensors"
        os.symlink(tmp_path / "run-7.safetensors", link)
    else:
        link, path = tmp_path / "latest", tmp_path / "latest" / "m.safetensors"
        os.symlink(tmp_path / "run-7", link)
    said = f"{str(link)!r} is a symbolic link to {str(tmp_path / ('run-7.safetensors' if link_at == 'file' else 'run-7'))!r}"
    with pytest.raises(FileNotFoundError) as caught:
        gm.LearnableMultiModal.load(path)
    assert said in str(caught.value)
    _, rows = _tiny_model_and_rows(tmp_path)
    assert cli.main(["embed", str(tmp_path / "m.safetensors"), "-m", f"visual={path}", "-o", str(tmp_path / "o.npy")]) == 2
    assert said in capsys.readouterr().err
