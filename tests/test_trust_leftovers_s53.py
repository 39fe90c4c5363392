"""Leftovers of earlier sessions (session 53), each closed the way a user
would expect; each test failed before its fix:

1. a read of a saved file (a model, an ensemble, ``load_models``' look at
   its format tag) or of a data file never leaves a file descriptor open:
   a Ctrl-C landing between ``os.open`` and the file object that closes it
   left the descriptor open for the life of the process, and so did
   ``load_models`` of a folder at every call (Linux opens a directory for
   reading; ``os.fdopen`` refused it, and nothing closed it);
2. a signal whose handler raises (Ctrl-C; a SIGTERM handler's
   ``sys.exit``), landing as ``_locking.uninterrupted`` (every save, every
   ``load_state_dict``) swaps the program's signal handlers for its
   stand-ins or puts them back, never leaves a stand-in in place: one left
   swallowed that signal for the rest of the process (Ctrl-C did nothing, or
   the program's SIGTERM handler never ran again);
3. a save into a folder that takes no files (``/proc``) names ``path``
   and why, not the OS's bare "No such file or directory" of a folder that
   is there;
4. ``Graph.from_edges`` given an edge index of shape ``(2, m)`` (PyTorch
   Geometric's ``edge_index``) says to pass ``edges.T``;
5. (found as a hostile user) a save by a relative name after the current
   folder was removed names ``path`` and says so, not the OS's bare
   "[Errno 2] No such file or directory";
6. (found as a hostile user) ``load_models`` of a file saved over twice as
   it read it (a model, then an ensemble, then a model again) reads the file
   its loader found, not refuses it: it read the tag by name again, found
   the first kind's, and raised the first loader's "is not a ... file";
7. (found as a hostile user) a name that begins with ``~`` (only a shell
   takes it for the home folder) missing on a save or a load says what
   ``os.path.expanduser`` would make of it.

A Ctrl-C lands where the interpreter next checks for signals: as a call of
a C function returns, or as a Python function begins. The sweeps deliver a
real SIGINT at each such point (from a profile function, as
test_trust_fresh_eyes_s52.py does)."""

from __future__ import annotations

import inspect
import os
import signal
import sys
from typing import Any, Callable

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import _locking, files, io
from ctrl_c_sweep import interrupted_at

_POSIX = pytest.mark.skipif(not hasattr(signal, "SIGINT") or os.name != "posix" or not os.path.isdir("/proc/self/fd"),
                            reason="needs POSIX signals and /proc/self/fd")


def _descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


#: The functions that open files for reading, whose every point (and those of what they call) the sweeps try.
_OPENING = {(io.__file__, name) for name in ("read_tagged_safetensors", "format_tag", "opened_for_reading")} | {
    (files.__file__, name) for name in ("read_texts", "_read_numeric_csv_lines", "_load_npy", "_load_npz", "_open_regular")}


def _interrupted_at(n: int, call: Callable[[], Any]) -> bool:
    """Runs ``call`` with a real SIGINT sent at the ``n``-th point (a call, or
    a C function's return) in the functions of :data:`_OPENING` or in what
    they call; whether it was interrupted (the folder's own error, for the
    load of a folder, is not)."""
    return interrupted_at(n, call, lambda code: (code.co_filename, code.co_name) in _OPENING, (OSError, ValueError))


def _leaks_at_some_point(call: Callable[[], Any]) -> list:
    """The points of ``call`` where a Ctrl-C left a descriptor open."""
    leaks, n = [], 0
    while True:
        n += 1
        before = _descriptors()
        interrupted = _interrupted_at(n, call)
        if _descriptors() != before:
            leaks.append(n)
        if not interrupted:
            assert n > 10, f"a Ctrl-C landed at {n - 1} points only"
            return leaks


@_POSIX
@pytest.mark.usefixtures("default_sigint")  # CI runs pytest with SIGINT ignored: no Ctrl-C would land
def test_a_ctrl_c_at_any_point_of_a_load_leaves_no_descriptor_open(tmp_path) -> None:
    """Before: a Ctrl-C as ``os.open`` returned in ``read_tagged_safetensors``
    (every loader's read: a model, an ensemble, a buffer) or ``format_tag``
    (``load_models``' first look) left the file's descriptor open."""
    # a file of one tensor: the sweep tries each point of the read (a model's tensors are thousands of points)
    io.write_tagged_safetensors(tmp_path / "x.st", {"x": np.ones(3, np.float32)}, "test-format", {"a": 1})
    calls = {
        "read_tagged_safetensors": lambda: io.read_tagged_safetensors(tmp_path / "x.st", "test-format"),
        "format_tag": lambda: io.format_tag(tmp_path / "x.st"),
        "load_models(folder)": lambda: gm.load_models(tmp_path),
    }
    leaks = {name: _leaks_at_some_point(call) for name, call in calls.items()}
    assert leaks == {name: [] for name in calls}


@_POSIX
@pytest.mark.usefixtures("default_sigint")
def test_a_ctrl_c_at_any_point_of_a_data_file_s_read_leaves_no_descriptor_open(tmp_path) -> None:
    np.save(tmp_path / "v.npy", np.ones((3, 2), np.float32))
    (tmp_path / "t.txt").write_text("a\nb\nc\n")
    (tmp_path / "c.csv").write_text("1,2\n3,4\n")
    calls = {
        "npy": lambda: files.read_modality_file(gm.Modality.VISUAL, tmp_path / "v.npy"),
        "txt": lambda: files.read_modality_file(gm.Modality.LINGUISTIC, tmp_path / "t.txt"),
        "csv": lambda: files.read_modality_file(gm.Modality.VISUAL, tmp_path / "c.csv"),
    }
    leaks = {name: _leaks_at_some_point(call) for name, call in calls.items()}
    assert leaks == {name: [] for name in calls}


@_POSIX
def test_loading_a_folder_leaves_no_descriptor_open(tmp_path) -> None:
    """Before: each ``load_models`` (or ``format_tag``) of a folder left one
    descriptor open: a loop over the entries of a folder of checkpoints
    that meets a sub-folder ran out of descriptors in time."""
    before = _descriptors()
    for _ in range(3):
        with pytest.raises(gm.CheckpointError, match="is a directory"):
            gm.load_models(tmp_path)
        assert io.format_tag(tmp_path) is None
    assert _descriptors() == before


class _Terminated(Exception):
    """What the program's SIGTERM handler raises (``sys.exit`` in many programs)."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise _Terminated


def _on_sigusr1(signum: int, frame: Any) -> None:
    pass


@_POSIX
@pytest.mark.usefixtures("default_sigint")
@pytest.mark.parametrize("signum, raises", [(signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, _Terminated)])
def test_a_signal_at_any_point_of_an_uninterrupted_block_leaves_the_program_s_handlers_in_place(signum, raises) -> None:
    """Before: a Ctrl-C as the block put SIGINT's handler back left the
    program's SIGTERM handler's stand-in in place (and SIGTERM did nothing
    from then on); a SIGTERM whose handler raised as the block swapped the
    handlers left SIGINT's stand-in in place (Ctrl-C did nothing)."""
    ours = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: _on_sigterm, signal.SIGUSR1: _on_sigusr1}
    before = {s: signal.getsignal(s) for s in ours}
    locking = {_locking.__file__}
    wrong, n = [], 0
    try:
        while True:
            n += 1
            for s, handler in ours.items():
                signal.signal(s, handler)
            count, sent = [0], [False]

            def profile(frame: Any, event: str, arg: Any) -> None:
                resumed = event == "call" and frame.f_code.co_flags & inspect.CO_GENERATOR  # see ctrl_c_sweep.interrupted_at
                if event in ("call", "c_return") and not resumed and (frame.f_code.co_filename in locking or (
                        frame.f_back is not None and frame.f_back.f_code.co_filename in locking)):
                    count[0] += 1
                    if count[0] == n:
                        sys.setprofile(None)
                        sent[0] = True
                        os.kill(os.getpid(), signum)

            sys.setprofile(profile)
            try:
                with _locking.uninterrupted():
                    pass
                came = False
            except raises:
                came = True
            finally:
                sys.setprofile(None)
            now = {s: signal.getsignal(s) for s in ours}
            if now != ours:
                wrong.append((n, {signal.Signals(s).name: getattr(h, "__qualname__", h) for s, h in now.items() if h is not ours[s]}))
            if sent[0] and not came:
                wrong.append((n, "the signal was lost"))
            if not sent[0]:
                break
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)
    assert n > 10, f"the signal landed at {n - 1} points only"
    assert wrong == []


def _small() -> "gm.LearnableMultiModal":
    return gm.LearnableMultiModal(seed=0, embed_dim=4, hidden_dim=4, num_heads=1, buffer_size=2)


_SAVES = {
    "model.save": lambda path: _small().save(path),
    "buffer.save": lambda path: gm.ExperienceBuffer(4, seed=0).save(path),
    "save_ensemble": lambda path: gm.save_ensemble([_small(), _small()], path),
}


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc")
@pytest.mark.parametrize("save", list(_SAVES.values()), ids=list(_SAVES))
def test_a_save_into_a_folder_that_takes_no_files_names_path_and_why(save) -> None:
    """Before: ``model.save('/proc/x.st')`` raised the OS's bare
    "[Errno 2] No such file or directory: '/proc/x.st'", of a folder that is
    there: neither the argument nor why."""
    target = "/proc/self/no-such-file.safetensors"
    with pytest.raises(FileNotFoundError) as error:
        save(target)
    assert str(error.value) == (
        f"path: {target!r} cannot be saved: its folder '/proc/self' takes no new files (the system answers \"No such "
        "file or directory\": a virtual file system, such as /proc?); expected a folder on a disk")
    assert isinstance(error.value, OSError)


def test_a_save_whose_folder_goes_away_before_its_file_is_made_names_path_and_the_folder(tmp_path, monkeypatch) -> None:
    """The folder removed between the save's check and its file's creation:
    said as a folder not there is said before the save begins."""
    folder = tmp_path / "gone"
    folder.mkdir()
    real_open = os.open

    def removing_the_folder(path, flags, *args):
        if flags & os.O_CREAT:
            folder.rmdir()
        return real_open(path, flags, *args)

    monkeypatch.setattr(io.os, "open", removing_the_folder)
    with pytest.raises(FileNotFoundError) as error:
        _small().save(folder / "m.st")
    assert str(error.value) == f"path: directory {str(folder)!r} does not exist"


_HINT = "; an edge index of shape (2, m), as PyTorch Geometric keeps it, is passed as edges.T"


@pytest.mark.parametrize("edges, shape", [
    (np.array([[0, 1, 2], [1, 2, 0]]), "(2, 3)"),
    ([[0, 1, 2], [1, 2, 0]], "(2, 3)"),
    (np.zeros((2, 0), np.int64), "(2, 0)"),  # PyG's edge_index of a graph without edges
    (np.array([[0, 1, 2, 0, 1], [1, 2, 0, 0, 1]], np.uint8), "(2, 5)"),
])
def test_an_edge_index_of_shape_2_by_m_is_refused_saying_to_pass_its_transpose(edges, shape) -> None:
    """Before: "edges: expected shape (m, 2) of (source, target) pairs, got
    (2, 3)", without saying that PyG's edge index is passed transposed."""
    with pytest.raises(gm.ShapeError) as error:
        gm.Graph.from_edges(3, edges)
    assert str(error.value) == f"edges: expected shape (m, 2) of (source, target) pairs, got {shape}{_HINT}"
    assert error.value.arg == "edges"
    assert gm.Graph.from_edges(3, np.asarray(edges).T).edge_count == np.asarray(edges).shape[1]


@pytest.mark.parametrize("edges, shape", [(np.zeros((3, 3), np.int64), "(3, 3)"), (np.zeros((2, 5, 1), np.int64), "(2, 5, 1)"),
                                          (np.zeros((0, 3), np.int64), "(0, 3)")])
def test_other_shapes_of_edges_get_no_edge_index_hint(edges, shape) -> None:
    with pytest.raises(gm.ShapeError) as error:
        gm.Graph.from_edges(3, edges)
    assert str(error.value) == f"edges: expected shape (m, 2) of (source, target) pairs, got {shape}"


def test_a_2_by_2_edge_array_is_two_pairs_as_before() -> None:
    """``[[0, 1], [1, 2]]`` is two (source, target) pairs or a (2, 2) edge
    index: it cannot be told, and is read as pairs, as it always was."""
    assert gm.Graph.from_edges(3, [[0, 1], [1, 2]]).edges.tolist() == [[0, 1], [1, 2]]


_GONE = ("path: 'm.st' names a file in the current folder, which has been removed; expected a file name in a folder "
         "that exists (an absolute one, or change to such a folder first)")


@pytest.mark.skipif(os.name != "posix", reason="a folder in use cannot be removed on Windows")
@pytest.mark.parametrize("save", list(_SAVES.values()), ids=list(_SAVES))
def test_a_save_by_a_relative_name_after_the_current_folder_was_removed_says_so(save, tmp_path, monkeypatch) -> None:
    """Before: the OS's bare "[Errno 2] No such file or directory", naming
    neither ``path`` nor any file (``os.getcwd`` failing as the name was
    resolved)."""
    folder = tmp_path / "work"
    folder.mkdir()
    monkeypatch.chdir(folder)
    folder.rmdir()
    with pytest.raises(FileNotFoundError) as error:
        save("m.st")
    assert str(error.value) == _GONE


@pytest.mark.skipif(os.name != "posix", reason="a folder in use cannot be removed on Windows")
def test_a_save_whose_current_folder_is_removed_as_its_file_is_made_says_the_folder_does_not_exist(tmp_path, monkeypatch) -> None:
    folder = tmp_path / "work"
    folder.mkdir()
    monkeypatch.chdir(folder)
    real_open = os.open

    def removing_the_folder(path, flags, *args):
        if flags & os.O_CREAT and folder.exists():
            folder.rmdir()
        return real_open(path, flags, *args)

    monkeypatch.setattr(io.os, "open", removing_the_folder)
    with pytest.raises(FileNotFoundError) as error:
        _small().save("m.st")
    # the folder by its full name (it was '.': the name it had in the working folder, which is gone)
    assert str(error.value) == f"path: directory {str(folder)!r} does not exist"


def test_load_models_reads_a_file_saved_over_twice_as_it_looked(tmp_path, monkeypatch) -> None:
    """Before: the model loader, given a file whose tag said model, found an
    ensemble (saved over it meanwhile); load_models read the tag by name
    again, found a model's (saved over it once more), and raised "is not a
    grapheme-multimodal/checkpoint/v1 file (its format tag is ... an
    ensemble)". 3 of 700 loads failed so, with two threads saving models and
    ensembles over one file. Now it reads the kind its loader found."""
    from grapheme_multimodal import ensemble

    path, model_file, ensemble_file = tmp_path / "models.st", tmp_path / "one.st", tmp_path / "two.st"
    one, two = _small(), [_small(), _small()]
    one.save(path)
    real_tag = ensemble.format_tag
    calls = []

    def tag_then_replace(p):
        if calls:  # a second look: the model is back (another save), and the ensemble there is gone
            one.save(model_file)
            model_file.replace(path)
        tag = real_tag(p)
        if not calls:  # an ensemble saved over the model, before the loader reads it
            gm.save_ensemble(two, ensemble_file)
            ensemble_file.replace(path)
        calls.append(tag)
        return tag

    monkeypatch.setattr(ensemble, "format_tag", tag_then_replace)
    assert len(gm.load_models(path)) == 2


_LOADS = {
    "LearnableMultiModal.load": gm.LearnableMultiModal.load,
    "load_models": gm.load_models,
    "load_ensemble": gm.load_ensemble,
    "ExperienceBuffer.from_file": gm.ExperienceBuffer.from_file,
}


@pytest.mark.parametrize("call", list(_SAVES.values()) + list(_LOADS.values()), ids=list(_SAVES) + list(_LOADS))
def test_a_missing_name_beginning_with_a_tilde_says_what_expanduser_makes_of_it(call, tmp_path, monkeypatch) -> None:
    """Before: "path: directory '~/models' does not exist" (or "no file at
    '~/models/m.st'") of a folder that the user's home holds."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)  # where no folder is named '~'
    (tmp_path / "models").mkdir()
    _small().save(tmp_path / "models" / "m.st")
    hint = f" ('~' is a folder's name here, not the home folder: os.path.expanduser gives {str(tmp_path / 'models' / 'm.st')!r})"
    with pytest.raises(FileNotFoundError) as error:
        call("~/models/m.st")
    assert str(error.value) in (f"path: directory '~/models' does not exist{hint}", f"path: no file at '~/models/m.st'{hint}")
    with pytest.raises(FileNotFoundError) as error:  # no hint where ~ is not at the start
        call("models/~/m.st")
    assert str(error.value) in ("path: directory 'models/~' does not exist", "path: no file at 'models/~/m.st'")
