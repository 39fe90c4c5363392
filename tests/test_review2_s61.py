"""Round s61's second review of the day's changes (a hostile reader): each
test failed before its fix."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import cli, uci

from ctrl_c_sweep import interrupted_at


# ----------------------------------------------------- the command line's shared streams under a Ctrl-C
@pytest.mark.usefixtures("default_sigint")  # CI runs pytest with SIGINT ignored: no Ctrl-C would land
@pytest.mark.skipif(sys.platform == "win32", reason="a real SIGINT sent to the process itself")
def test_a_ctrl_c_as_the_command_line_replaces_or_puts_back_its_streams_leaves_the_programs_own(tmp_path: Path) -> None:
    """Before: ``cli.main`` (a program's own call of it, a notebook's) made
    its shared changes (``sys.stdout`` and ``sys.stderr`` replaced by its
    wrappers, stdout's error handler set) and then counted itself among
    their users in a second step, outside the try that undoes them: a
    Ctrl-C between the two (15 points of ``info``) left the program's
    streams the command line's wrappers for good, and a count that no
    later call brought back to 0, so none put them back. Now the change
    and its count are one step, and so are the count out and the undo."""
    gm.LearnableMultiModal(input_dims={"visual": 3}, embed_dim=4, hidden_dim=4, num_heads=1, seed=0).save(tmp_path / "m.st")
    shared = {"_shared_change", "_replacing_stream", "replace", "put_back", "_standard_error_open",
              "_standard_output_errors", "_names_printable", "make", "undo", "open_stderr"}
    stdout, stderr = sys.stdout, sys.stderr
    errors = getattr(stdout, "errors", None)
    wrong, n = [], 0
    while True:
        n += 1
        hit = interrupted_at(n, lambda: cli.main(["info", str(tmp_path / "m.st")]),
                             lambda code: code.co_filename == cli.__file__ and code.co_name in shared)
        left = [what for what, kept in (("sys.stdout", sys.stdout is stdout), ("sys.stderr", sys.stderr is stderr),
                                        ("stdout's errors", getattr(sys.stdout, "errors", None) == errors),
                                        ("a call counted", not any(cli._shared_users.values()))) if not kept]
        if left:
            wrong.append((n, left))
            sys.stdout, sys.stderr = stdout, stderr  # the next points start from the program's own streams
            cli._shared_users.clear()
            cli._shared_tokens.clear()
        if not hit:
            break
    assert n > 20, f"the sweep reached {n} points only"
    assert wrong == [], f"a Ctrl-C at these points left the command line's changes in place: {wrong}"


# ------------------------------------------------------ one folder by two names (a bind mount) in a commit
_BOUND_FOLDER_COMMITS = r"""
import os, stat, sys, threading
from grapheme_multimodal import io
folder, alias, other = sys.argv[1:4]  # alias: folder bind-mounted there (a name that no link resolves)
done = threading.Event()
def commit():
    io.atomic_write_all([(os.path.join(folder, "fused.npy"), lambda f: f.write(b"1")),
                         (os.path.join(alias, "bindings.npy"), lambda f: f.write(b"2"))])
    done.set()
threading.Thread(target=commit, daemon=True).start()
if not done.wait(30):  # the bug's sign, not a synchronisation: the commit waited for its own lock for ever
    print("waited for its own lock", flush=True); os._exit(1)  # not the exit's wait for saves in flight
order, real_flock = [], io.fcntl.flock
def flock(fd, op):  # which folders each commit locks, in what order (the temporary files are locked too)
    info = os.fstat(fd)
    if stat.S_ISDIR(info.st_mode):
        order[-1].append((info.st_dev, info.st_ino))
    return real_flock(fd, op)
io.fcntl.flock = flock
for a, b in ((folder, other), (other, alias)):  # one pair of folders, by other names
    order.append([])
    io.atomic_write_all([(os.path.join(a, "x.npy"), lambda f: f.write(b"1")), (os.path.join(b, "y.npy"), lambda f: f.write(b"2"))])
print("written" if order[0] == order[1] else f"locked in two orders: {order}")
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a bind mount in a mount namespace of its own")
def test_a_commit_into_one_folder_by_two_names_neither_waits_for_itself_nor_orders_by_name(tmp_path: Path) -> None:
    """Before: a commit of several files locked each folder by its
    ``realpath``, which does not see through a bind mount (a container
    given one folder as two volumes, ``-v $PWD:/work -v $PWD/out:/out``):
    ``grapheme-mm embed -o /out/fused.npy --bindings /work/out/b.npy``
    locked the folder twice, and the second lock waited for the first for
    ever, without a word (it wrote before the locks came). And two
    processes reaching two folders by such names ordered them by their
    names, differently, each able to hold one lock and wait for the other.
    Now a folder is locked once, in the order of what it is (device and
    inode). Run in a mount namespace of its own (``unshare``): the mount is
    gone with the process."""
    unshare, mount = shutil.which("unshare"), shutil.which("mount")
    if unshare is None or mount is None:
        pytest.skip("no unshare or mount here")
    folder, alias, other = tmp_path / "out", tmp_path / "alias", tmp_path / "other"  # by name: alias, other, out
    for f in (folder, alias, other):
        f.mkdir()
    as_root = [] if os.geteuid() == 0 else ["--map-root-user"]  # a user namespace where it may mount
    shell = f'{mount} --bind "$1" "$2" || exit 77; shift 2; exec "$@"'
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(gm.__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([unshare, "--mount", *as_root, "sh", "-c", shell, "sh", str(folder), str(alias),
                          sys.executable, "-c", _BOUND_FOLDER_COMMITS, str(folder), str(alias), str(other)],
                         capture_output=True, text=True, env=env, timeout=120)
    if run.returncode == 77 or "unshare failed" in run.stderr or "unshare:" in run.stderr:
        pytest.skip(f"no mount namespace of its own here: {run.stderr.strip()[:200]}")
    assert run.returncode == 0 and run.stdout.strip() == "written", run.stdout + run.stderr


# ---------------------------------------------------------- TrainingSettings: one layer's width as numpy's
@pytest.mark.parametrize("field", ["encoder_hidden", "shared_head"])
@pytest.mark.parametrize("width", [np.array(16), np.int64(16)], ids=["0-d array", "np.int64"])
def test_training_settings_hold_one_layers_width_given_as_numpys_as_the_int_it_is(field: str, width) -> None:
    """Before: settings turned numpy integers into Python ints in their int
    fields and in widths given as a sequence, but not a width given as one
    int (one layer, which the config takes): ``encoder_hidden=np.array(16)``
    made settings that would not hash, and ``np.int64(16)`` ones that would
    not json.dump, where ``encoder_hidden=16`` does both. Now held as 16."""
    head_fits = {"embed_dim": 16} if field == "shared_head" else {}  # the head outputs the embeddings (checked when made)
    settings = uci.TrainingSettings(**{field: width}, **head_fits)
    assert type(getattr(settings, field)) is int
    same = uci.TrainingSettings(**{field: 16}, **head_fits)
    assert settings == same and hash(settings) == hash(same)
    assert json.loads(json.dumps(dataclasses.asdict(settings)))[field] == 16
