"""Threads and files under hostile use, round 58: what one thread does to the
process (its working folder) while another saves. Threads are lined up with
events, every wait bounded."""

from __future__ import annotations

import errno
import os
import threading
from typing import Any, Callable, Dict

import numpy as np
import pytest

import grapheme_multimodal as gm

from conftest import ids_of_embeddings, unit_embeddings

#: A thread still waiting after this many seconds fails the test (a deadlock).
WAIT_S = 20.0

_RNG = np.random.default_rng(58)
DATA = {"visual": _RNG.normal(size=(12, 10)).astype(np.float32), "auditory": _RNG.normal(size=(12, 6)).astype(np.float32)}


def small(seed: int) -> gm.LearnableMultiModal:
    model = gm.LearnableMultiModal(embed_dim=8, hidden_dim=16, num_heads=2, seed=seed, buffer_size=4,
                                   input_dims={"visual": 10, "auditory": 6})
    model.record_batch({k: v[:2] for k, v in DATA.items()}, rewards=0.5 + seed)
    return model


def _weights(model: gm.LearnableMultiModal) -> Dict[str, bytes]:
    return {k: v.tobytes() for k, v in model.state_dict().items()}


#: name -> (save(model, path), what the file read back holds, comparable)
SAVES: Dict[str, Any] = {
    "model.save": (lambda m, p: m.save(p), lambda p: _weights(gm.LearnableMultiModal.load(p))),
    "experience.save": (lambda m, p: m.experience.save(p),
                        lambda p: gm.ExperienceBuffer.from_file(p).batch().rewards.tobytes()),
    "save_ensemble": (lambda m, p: gm.save_ensemble([m, m], p), lambda p: _weights(gm.load_ensemble(p)[1])),
}
SAVED_BY = {"model.save": lambda m: _weights(m), "experience.save": lambda m: m.experience.batch().rewards.tobytes(),
            "save_ensemble": lambda m: _weights(m)}


def _chdir_at_first_fsync(monkeypatch, there: Any, then: Callable[[], None] = lambda: None) -> threading.Thread:
    """Another thread changes the working folder to ``there`` while a save
    writes (at its first ``os.fsync``, the temporary file made and written),
    then the save goes on (``then`` runs first: a failure to inject)."""
    return _at_first_fsync(monkeypatch, lambda: os.chdir(there), then)


def _at_first_fsync(monkeypatch, action: Callable[[], None], then: Callable[[], None] = lambda: None) -> threading.Thread:
    """Another thread runs ``action`` while a save writes (at its first
    ``os.fsync``, the temporary file made and written), then the save goes
    on (``then`` runs first: a failure to inject)."""
    real_fsync = os.fsync
    writing, done = threading.Event(), threading.Event()

    def fsync(fd: int) -> None:
        if not writing.is_set():
            writing.set()
            assert done.wait(WAIT_S), "the other thread never ran"
            then()
        real_fsync(fd)

    def other() -> None:
        if writing.wait(WAIT_S):
            action()
            done.set()

    monkeypatch.setattr(os, "fsync", fsync)
    thread = threading.Thread(target=other, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("save", list(SAVES))
def test_a_save_by_a_relative_name_lands_where_it_began_when_another_thread_changes_folder(
        tmp_path, monkeypatch, save) -> None:
    """``save("m.gm")`` while another thread called ``os.chdir``: the
    temporary file was made in the folder current when the save began and
    renamed by its relative name in the one current at the rename, so the
    save failed ("its folder '.' was removed or moved while the file was
    written", of a folder that was there all along), the model unsaved and
    its ``.m.gm.<hex>.tmp`` left in the first folder. Now the save lands
    where it began, whole, and nothing else is left anywhere."""
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    monkeypatch.chdir(first)
    write, read = SAVES[save]
    write(small(0), "m.gm")
    new = small(1)
    thread = _chdir_at_first_fsync(monkeypatch, second)
    write(new, "m.gm")
    thread.join(WAIT_S)
    assert not thread.is_alive()
    assert sorted(os.listdir(first)) == ["m.gm"] and os.listdir(second) == []
    assert read(first / "m.gm") == SAVED_BY[save](new)


def test_a_save_failing_after_another_thread_changed_folder_leaves_no_temporary_file(tmp_path, monkeypatch) -> None:
    """The same change of folder, then the disk full as the file is synced:
    the failure removed the temporary file by its relative name in the new
    folder, where it was not, and left it beside the checkpoint. Now it is
    removed, and the old checkpoint is as it was."""
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    monkeypatch.chdir(first)
    old = small(0)
    old.save("m.gm")
    before = (first / "m.gm").read_bytes()

    def disk_full() -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    thread = _chdir_at_first_fsync(monkeypatch, second, disk_full)
    with pytest.raises(OSError, match="No space left on device"):
        small(1).save("m.gm")
    thread.join(WAIT_S)
    assert not thread.is_alive()
    assert sorted(os.listdir(first)) == ["m.gm"] and os.listdir(second) == []
    assert (first / "m.gm").read_bytes() == before


@pytest.mark.parametrize("save", list(SAVES))
def test_a_save_through_a_link_to_a_missing_folder_names_the_link(tmp_path, save) -> None:
    """``m.gm`` a symbolic link to ``gone/m.gm``: the save said only
    "path: directory '.../gone' does not exist", of a folder the user never
    named (the one they named, holding ``m.gm``, is there). Now it says
    that ``m.gm`` is a link, to what, and that a save writes the file a
    link names; nothing is created, the link is left as it was."""
    link = tmp_path / "m.gm"
    link.symlink_to(os.path.join("gone", "m.gm"))
    with pytest.raises(FileNotFoundError) as error:
        SAVES[save][0](small(0), link)
    assert str(error.value) == (
        f"path: {str(link)!r} is a symbolic link to {os.path.join('gone', 'm.gm')!r}, whose folder "
        f"{str(tmp_path / 'gone')!r} does not exist; expected a link to a file in a folder that exists (a save "
        "writes the file a link names)")
    assert os.listdir(tmp_path) == ["m.gm"] and os.readlink(link) == os.path.join("gone", "m.gm")



def test_a_save_by_a_relative_name_in_a_folder_it_may_not_write_names_the_file_as_given(tmp_path, monkeypatch) -> None:
    """The working folder read once for the write (above) does not change
    what errors say: the file as the caller named it, not by its full name."""
    monkeypatch.chdir(tmp_path)
    real_open = os.open

    def not_permitted(path: Any, flags: int, *args: Any) -> int:  # a folder this user may not write (as root too)
        if flags & os.O_CREAT:
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", not_permitted)
    with pytest.raises(PermissionError) as error:
        small(0).save("m.gm")
    assert str(error.value).startswith("path: 'm.gm' cannot be saved") and os.listdir(tmp_path) == []


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="found where it went by /proc/self/fd (Linux)")
@pytest.mark.parametrize("save", list(SAVES))
def test_a_save_whose_folder_another_thread_moves_leaves_no_copy_in_the_moved_folder(tmp_path, monkeypatch, save) -> None:
    """The folder renamed (and another made in its place) while the save
    wrote into it: the save fails, saying so, as before, but its temporary
    file, a whole copy of the model, stayed in the moved folder for good
    (removed by its old name, which no longer held it; no later save to the
    target looks there). Now it is removed wherever the folder went."""
    folder = tmp_path / "out"
    folder.mkdir()
    write = SAVES[save][0]

    def move() -> None:
        folder.rename(tmp_path / "elsewhere")
        folder.mkdir()

    thread = _at_first_fsync(monkeypatch, move)
    with pytest.raises(FileNotFoundError, match="was removed or moved while the file was written; nothing was written"):
        write(small(1), folder / "m.gm")
    thread.join(WAIT_S)
    assert not thread.is_alive()
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == ["elsewhere", "out"]


# ------------------------------------------------------------------ Ctrl-C as a record ends
def _rows(ids: np.ndarray) -> Dict[str, Any]:
    n = len(ids)
    return dict(embeddings=unit_embeddings(ids), mask=np.ones((n, 7), bool), fused=np.broadcast_to(ids[:, None], (n, 2)).astype(np.float32),
                pair_strengths=np.zeros((n, 7, 7), np.float32), rewards=ids.astype(np.float64), event_ids=ids)


@pytest.mark.parametrize("held, given", [(3, 9), (5, 2)], ids=["more-than-capacity", "evicting-one"])
def test_ctrl_c_anywhere_in_a_record_leaves_the_buffer_before_or_after_it(default_sigint, held, given) -> None:
    """A Ctrl-C at every point of a buffer's ``extend`` (which ``record_*``
    call) that fills a ring of 6: the buffer holds what it held before, or
    after, or (torn between two fields: the documented fallback) what it
    held less the experiences the write was evicting, each experience's
    fields its own. One landing as the write ended (in the sums of its new
    counts) left the slots holding the new rows under the old counts: the
    buffer held new rows as if they were the old experiences, the rest of
    the write lost, without a word."""
    from ctrl_c_sweep import interrupted_at

    import grapheme_multimodal.buffer as buffer_module

    old, new = np.arange(1, held + 1), np.arange(10, 10 + given)
    after = [int(i) for i in np.concatenate([old, new])[-6:]]
    kept = min(held, 6 - min(given, 6))  # the old experiences a torn write keeps: those it was not evicting
    dropped = [int(i) for i in old[held - kept:]] if kept else []
    old_ids = [int(i) for i in old]
    allowed = {tuple(old_ids), tuple(after), tuple(dropped)}
    n, interrupted = 0, True
    while interrupted:
        n += 1
        buf = gm.ExperienceBuffer(6, embed_dim=2, seed=0)
        buf.extend(**_rows(old))
        interrupted = interrupted_at(n, lambda: buf.extend(**_rows(new)),
                                     lambda code: code.co_filename == buffer_module.__file__)
        got = buf.batch()
        ids = tuple(int(i) for i in got.event_ids)
        assert ids in allowed, f"Ctrl-C at point {n}: holds {ids}; expected one of {sorted(allowed)}"
        for field in (got.rewards, got.fused[:, 0], ids_of_embeddings(got.embeddings[:, 0])):
            assert [float(v) for v in field] == [float(i) for i in ids], f"point {n}: a torn experience"
        assert len(buf) == len(ids)
    assert n > 20  # the sweep reached the write


def test_a_temporary_file_already_renamed_is_never_removed_by_where_it_went(tmp_path, monkeypatch) -> None:
    """The removal above looks for a temporary file where its descriptor
    says it is: one a commit had already renamed to its target (the first
    of two, the second's rename failing) is there by the target's name, and
    must stay (its target holds the new content, as before)."""
    from grapheme_multimodal import io as gio

    first, second = tmp_path / "first.bin", tmp_path / "second.bin"
    real_replace = os.replace

    def second_fails(src: Any, dst: Any) -> None:
        if os.fspath(dst) == str(second):
            raise OSError(errno.EIO, "Input/output error")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", second_fails)
    with pytest.raises(OSError, match="Input/output error"):
        gio.atomic_write_all([(first, lambda f: f.write(b"1")), (second, lambda f: f.write(b"2"))])
    assert first.read_bytes() == b"1" and sorted(os.listdir(tmp_path)) == ["first.bin"]


# ------------------------------------------------------------------ Ctrl-C twice in the estimator's fit
@pytest.mark.parametrize("fitted", [False, True], ids=["first-fit", "refit"])
def test_a_second_ctrl_c_while_a_failed_fit_puts_the_estimator_back_leaves_it_whole(default_sigint, monkeypatch,
                                                                                     fitted) -> None:
    """A fit that fails late (or that a first Ctrl-C stops) puts the
    estimator's attributes back one by one; a second Ctrl-C landing between
    two of them left it half put back: a new estimator holding the failed
    fit's ``model_`` and ``history_`` (so ``transform`` ran on it), or a
    fitted one holding some of the failed fit's attributes, without a word.
    Now the Ctrl-C is raised once all are back, at every line of the
    restore it may land on."""
    import signal
    import sys

    from grapheme_multimodal.sklearn import MultimodalEmbedder

    import inspect

    views = [DATA["visual"], DATA["auditory"]]
    real_fit = MultimodalEmbedder._fit
    source, start = inspect.getsourcelines(inspect.unwrap(MultimodalEmbedder._unchanged_on_failure))
    # the restore's first line, its loop (a Ctrl-C before it, as the failure is caught, skips the restore
    # whole: the one window left, as in the model's own restores)
    first_line = start + next(i for i, line in enumerate(source) if "for name in set(self.__dict__)" in line)

    def fails_late(self, Xs, every_row_embedded=False):
        real_fit(self, Xs, every_row_embedded)
        self.extra_ = 1
        raise ValueError("a late failure")

    def run(k: int):
        est = MultimodalEmbedder(embed_dim=8, hidden_dim=16, num_heads=2, epochs=1, encoder_hidden=(8,), validation_fraction=0.0)
        if fitted:
            est.fit(views)
        est._threads_lock()  # the lock fit makes on its first call: there before, as a first fit finds it
        before = dict(est.__dict__)
        lines = [0]

        def in_the_frame(frame, event, arg):
            if event == "line" and (lines[0] or frame.f_lineno == first_line):
                lines[0] += 1  # the restore's lines, from its loop on
                if lines[0] == k:
                    os.kill(os.getpid(), signal.SIGINT)  # a second Ctrl-C, raised where the interpreter checks next
            return in_the_frame

        def calls(frame, event, arg):
            return in_the_frame if frame.f_code.co_name == "_unchanged_on_failure" else None

        monkeypatch.setattr(MultimodalEmbedder, "_fit", fails_late)
        sys.settrace(calls)
        try:
            with pytest.raises((ValueError, KeyboardInterrupt)):
                est.fit(views)
        finally:
            sys.settrace(None)
            monkeypatch.setattr(MultimodalEmbedder, "_fit", real_fit)
        now = est.__dict__
        assert set(now) == set(before) and all(now[name] is before[name] for name in before), (
            f"Ctrl-C at line {k} of the restore: {sorted(set(now) ^ set(before))} differ, "
            f"{[n for n in before if n in now and now[n] is not before[n]]} replaced")
        return lines[0]

    k = 0
    while True:
        k += 1
        if run(k) < k:  # the restore had fewer lines: the Ctrl-C came after it
            break
    assert k > 3


@pytest.mark.parametrize("save", list(SAVES))
def test_a_save_by_a_relative_name_lands_in_the_folder_current_when_it_was_called(tmp_path, monkeypatch, save) -> None:
    """The working folder changed while the save copied the model's state,
    before any file was made: the file went to the new folder, where the
    caller, who saved "m.gm" in the first, never looks. Now it is the
    folder current when the save was called."""
    import grapheme_multimodal.io as gio

    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    monkeypatch.chdir(first)
    real_write_all = gio._atomic_write_all

    def after_the_copy(writes):  # the state copied, the file not yet made: another thread's chdir lands here
        os.chdir(second)
        return real_write_all(writes)

    monkeypatch.setattr(gio, "_atomic_write_all", after_the_copy)
    write, read = SAVES[save]
    new = small(1)
    write(new, "m.gm")
    assert sorted(os.listdir(first)) == ["m.gm"] and os.listdir(second) == []
    assert read(first / "m.gm") == SAVED_BY[save](new)
