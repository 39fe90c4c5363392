"""Hostile review of the code added in sessions 60-61 (folder locks, settings
read at import, held warnings, the training record's checks, the buffer's
rows on demand, the command line's typed numbers, train_test_split's int
test_size). Each test says what a user saw before the fix."""

from __future__ import annotations

import pickle
import tracemalloc

import numpy as np
import pytest

import grapheme_multimodal as gm


# ------------------------------------------------------------------ 1. a model's buffer takes no rows until it records
def _wide_model() -> gm.LearnableMultiModal:
    """A model of a WL modality of 2**16 buckets: 1,024 buffer rows of its inputs are 256 MiB."""
    return gm.LearnableMultiModal(embed_dim=8, hidden_dim=8, num_heads=1,
                                  graph_features={"linguistic": {"kind": "wl", "dim": 2**16}})


def _peak_bytes(action) -> int:
    tracemalloc.start()  # numpy's arrays are traced too
    try:
        action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _empty_buffer_file(tmp_path, input_dims) -> str:
    path = str(tmp_path / "empty.buffer")
    gm.ExperienceBuffer(5000, input_dims=input_dims).save(path)
    return path


@pytest.mark.parametrize("how", ["assigned", "loaded", "unpickled into"])
def test_a_models_buffer_of_no_experiences_takes_no_rows_until_it_records(tmp_path, how) -> None:
    """A buffer that never recorded, put in as the model's (``model.experience
    = ExperienceBuffer(n, input_dims=...)``, ``model.experience.load(file)`` of
    one, ``model.experience.__setstate__`` of one's state), allocated the
    first 1,024 rows of every input width, NaN-filled, at once: 256 MiB for
    a WL modality of 2**16 buckets, of a buffer holding nothing, as a new
    model's buffer no longer does. Rows now come with its first experience."""
    model = _wide_model()
    dims = model.config.input_dims
    path = _empty_buffer_file(tmp_path, dims)
    state = pickle.loads(pickle.dumps(gm.ExperienceBuffer(5000, input_dims=dims))).__getstate__()
    actions = {
        "assigned": lambda: setattr(model, "experience", gm.ExperienceBuffer(5000, input_dims=dims)),
        "loaded": lambda: model.experience.load(path),
        "unpickled into": lambda: model.experience.__setstate__(state),
    }
    peak = _peak_bytes(actions[how])
    assert peak < 32 * 2**20, f"{how}: took {peak:,} bytes for a buffer of no experiences"
    buffer = model.experience
    assert (len(buffer), buffer.capacity, buffer.embed_dim) == (0, 5000, 8)
    graphs = [gm.Graph.from_text("cat"), gm.Graph.from_text("dog")]
    model.record_batch({"linguistic": graphs}, rewards=[0.5, 1.0])  # the rows come with the first experience
    batch = buffer.batch()
    np.testing.assert_array_equal(batch.rewards, np.float32([0.5, 1.0]))
    np.testing.assert_array_equal(batch.inputs[2], gm.featurize(graphs, kind="wl", dim=2**16))
    assert buffer.sample(4, replace=True).rewards.shape == (4,)


# ------------------------------------------------------------------ 2. train_test_split: a test_size the classes cannot split
TWO_CLASSES_OF_TEN = np.array([0, 1] * 10)


@pytest.mark.parametrize("test_size, rows", [(1, "1 test and 19 training"), (19, "19 test and 1 training"),
                                             (np.int64(1), "1 test and 19 training"),
                                             (1e-9, "1 test and 19 training"), (0.99, "20 test and 0 training")])
def test_a_test_size_too_small_or_large_for_the_classes_is_refused_naming_test_size(test_size, rows) -> None:
    """``train_test_indices(labels, test_size=1)`` of two classes, in the range
    [1, 19] that its own refusal of ``test_size=0`` offers, was refused naming
    ``labels`` ("expected class labels of one kind, each class with at least 2
    rows ..."), labels that were fine. scikit-learn refuses these too; now the
    argument to change is named, with the range the classes allow."""
    from grapheme_multimodal.datasets import train_test_indices
    from sklearn.model_selection import train_test_split as sk_split

    with pytest.raises(ValueError):  # scikit-learn cannot split these either
        sk_split(np.arange(20), test_size=test_size, stratify=TWO_CLASSES_OF_TEN, random_state=0)
    with pytest.raises(gm.InvalidValueError, match=r"^test_size: got ") as info:
        train_test_indices(TWO_CLASSES_OF_TEN, test_size=test_size)
    assert info.value.arg == "test_size"
    assert f"leaves {rows} rows of the 20" in str(info.value)
    assert "labels' 2 classes" in str(info.value) and "test rows in [2, 18]" in str(info.value)


@pytest.mark.parametrize("test_size", [2, 18, np.int64(2), 0.1, 0.9])
def test_the_bounds_that_refusal_offers_split_as_scikit_learn_does(test_size) -> None:
    from grapheme_multimodal.datasets import train_test_indices
    from sklearn.model_selection import train_test_split as sk_split

    train, test = train_test_indices(TWO_CLASSES_OF_TEN, test_size=test_size, seed=4)
    sk_train, sk_test = sk_split(np.arange(20), test_size=test_size, stratify=TWO_CLASSES_OF_TEN, random_state=4)
    np.testing.assert_array_equal(train, sk_train)
    np.testing.assert_array_equal(test, sk_test)


@pytest.mark.parametrize("test_size", [1, 2, 0.5])
def test_labels_with_a_class_of_one_row_are_still_named_as_labels(test_size) -> None:
    from grapheme_multimodal.datasets import train_test_indices

    with pytest.raises(gm.InvalidValueError, match=r"^labels: cannot split 4 rows") as info:
        train_test_indices(np.array([0, 1, 1, 1]), test_size=test_size)
    assert info.value.arg == "labels"


# ------------------------------------------------------------------ 3. ignoring_warning keeps the program's own filter
TIP = "Tip: In future versions of Ray, Ray will no longer override accelerator"


def _said(message: str) -> list:
    import warnings

    with warnings.catch_warnings(record=True) as caught:  # records what the filters let through
        warnings.warn(message, FutureWarning)
    return [str(w.message) for w in caught]


def test_ignoring_a_warning_keeps_the_programs_own_filter_of_it() -> None:
    """A program that ignored Ray's accelerator tip itself (the same filter)
    lost its filter for good once the library's ``ray.init`` had ignored the
    tip for its own call: ``filterwarnings`` took the program's out before
    adding the library's, which the block's end took out."""
    import warnings

    from grapheme_multimodal._caller_warnings import ignoring_warning

    before = list(warnings.filters)
    try:
        warnings.filterwarnings("ignore", message=TIP, category=FutureWarning)
        own = list(warnings.filters)
        with ignoring_warning(TIP, FutureWarning):
            assert _said(TIP + " env var") == []
        assert warnings.filters == own
        assert _said(TIP + " env var") == []
    finally:
        warnings.filters[:] = before


def test_an_inner_block_ignoring_a_warning_leaves_the_outer_ones_filter() -> None:
    """Nested (or in two threads at once), the inner block's end took out the
    one filter both had put in, and the outer block said the warning."""
    import warnings

    from grapheme_multimodal._caller_warnings import ignoring_warning

    before = list(warnings.filters)
    with ignoring_warning(TIP, FutureWarning):
        with ignoring_warning(TIP, FutureWarning):
            assert _said(TIP + " env var") == []
        assert _said(TIP + " env var") == []
    assert warnings.filters == before  # taken out by the last block to end


# ------------------------------------------------------------------ 4. main in a thread leaves the program's streams its own
class _FirstWriteWaits:
    """A stream whose first write waits for ``go`` (after setting ``entered``); it
    then keeps what is written, and fails every write once ``failing`` is set."""

    def __init__(self) -> None:
        import io
        import threading

        self.entered, self.go, self.failing = threading.Event(), threading.Event(), False
        self.text, self._first = io.StringIO(), True

    def write(self, text: str) -> int:
        if self._first:
            self._first = False
            self.entered.set()
            assert self.go.wait(30)
        if self.failing:
            raise OSError(28, "No space left on device")
        return self.text.write(text)

    def flush(self) -> None:
        pass


@pytest.mark.parametrize("name, argv", [("stdout", ["--version"]), ("stderr", ["info", "/nonexistent/m.safetensors"])])
def test_a_redirect_entered_while_main_runs_in_a_thread_leaves_the_programs_stream_its_own(name, argv) -> None:
    """``cli.main`` run in a thread replaces ``sys.stdout`` (``sys.stderr``)
    while it runs; a ``contextlib.redirect_stdout`` entered meanwhile in
    another thread put the command line's stand-in back as ``sys.stdout``
    when it ended, after main had returned, and there it stayed for good:
    the program's writes that failed raised no ``OSError`` the program
    could catch (stderr's sent the process's descriptor 2 to /dev/null).
    Now the stand-in, once main is done with it, writes straight to the
    program's stream and puts it back in its place."""
    import contextlib
    import io
    import sys
    import threading

    from grapheme_multimodal import cli

    stream = _FirstWriteWaits()
    redirect = contextlib.redirect_stdout if name == "stdout" else contextlib.redirect_stderr
    before = getattr(sys, name)
    setattr(sys, name, stream)
    try:
        codes = []

        def run() -> None:
            try:
                codes.append(cli.main(argv))
            except SystemExit as exit:  # --version: argparse's exit, status 0
                codes.append(exit.code)

        thread = threading.Thread(target=run)
        thread.start()
        assert stream.entered.wait(30)  # main is writing its line, its stand-in in place
        with redirect(io.StringIO()):
            stream.go.set()
            thread.join(30)
            assert not thread.is_alive()
        assert codes == [0 if name == "stdout" else 2]
        print("after main", file=getattr(sys, name))  # the program's own line, through what the redirect put back
        assert getattr(sys, name) is stream
        stream.failing = True
        with pytest.raises(OSError, match="No space left on device"):  # the program's to catch, as its stream's
            print("disk full", file=getattr(sys, name))
    finally:
        setattr(sys, name, before)
    assert stream.text.getvalue().endswith("after main\n")


# ------------------------------------------------------------------ 5. a save by a relative name, chdir before its file is made
def _small_model() -> gm.LearnableMultiModal:
    return gm.LearnableMultiModal(embed_dim=8, hidden_dim=8, num_heads=1, input_dims={"visual": 3})


def _weights_of(model: gm.LearnableMultiModal) -> dict:
    return {k: v.tobytes() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("links", [False, True], ids=["a folder only the first has", "links of one name in both"])
def test_a_save_by_a_relative_name_keeps_to_its_folder_when_another_thread_changes_folder_as_the_state_is_copied(
        tmp_path, monkeypatch, links) -> None:
    """``model.save("out/m.gm")`` while another thread called ``os.chdir`` as
    the model's state was copied (before the file was made): the name was
    checked and followed in the new folder. Refused there ("path: directory
    'out' does not exist", of a folder that was there when save was
    called); or, where the new folder had an ``out/m.gm`` of its own, a
    symbolic link, the checkpoint was written over the file that link names,
    in the other folder, without a word. Now the save keeps to the folder
    current when it was called, as it already did once its file was made."""
    import os
    import threading

    from grapheme_multimodal import checkpoint

    first, second = tmp_path / "first", tmp_path / "second"
    (first / "out").mkdir(parents=True)
    second.mkdir()
    if links:
        (second / "out").mkdir()
        os.symlink("real.gm", first / "out" / "m.gm")
        os.symlink("other.gm", second / "out" / "m.gm")
    monkeypatch.chdir(first)
    copy_state = checkpoint.checkpoint_state

    def copied_as_another_thread_changes_folder(*args, **kwargs):
        state = copy_state(*args, **kwargs)
        thread = threading.Thread(target=os.chdir, args=(second,))
        thread.start()
        thread.join()
        return state

    monkeypatch.setattr(checkpoint, "checkpoint_state", copied_as_another_thread_changes_folder)
    model = _small_model()
    model.save("out/m.gm")
    saved = first / "out" / ("real.gm" if links else "m.gm")
    assert _weights_of(gm.LearnableMultiModal.load(saved)) == _weights_of(model)
    assert sorted(os.listdir(first / "out")) == (["m.gm", "real.gm"] if links else ["m.gm"])
    assert sorted(os.listdir(second / "out")) == ["m.gm"] if links else not (second / "out").exists()


# ------------------------------------------------------------------ 6. a commit whose kept output is taken replaces nothing
def test_a_commit_refused_for_a_kept_output_taken_meanwhile_leaves_the_files_it_would_replace(tmp_path) -> None:
    """``atomic_write_all`` of two files in a ``keeping_existing`` block that
    keeps one of them: the other was replaced first (in the order given),
    and when the kept one's name was found taken, the commit failed with the
    first file overwritten, which cannot be put back. Links are now made
    before any file is replaced: the failure changes nothing."""
    from grapheme_multimodal import io

    replaced, kept = tmp_path / "replaced.npy", tmp_path / "kept.npy"
    replaced.write_bytes(b"old")
    kept.write_bytes(b"someone else's")  # taken since the caller checked it
    with io.keeping_existing({"--kept": kept}):
        with pytest.raises(FileExistsError, match=r"^--kept: .* was created by something else while this ran"):
            io.atomic_write_all([(replaced, lambda f: f.write(b"new")), (kept, lambda f: f.write(b"new"))])
    assert replaced.read_bytes() == b"old"
    assert kept.read_bytes() == b"someone else's"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.npy", "replaced.npy"]  # no temporary file left


# ------------------------------------------------------------------ 7. one file by two names through a bind mount
_ONE_FILE_BY_TWO_NAMES = r"""
import os, sys
from pathlib import Path
from grapheme_multimodal import cli, io
folder, alias = sys.argv[1:3]  # alias: folder bind-mounted there (a name that no link resolves)
try:
    io.atomic_write_all([(os.path.join(folder, "x.npy"), lambda f: f.write(b"fused")),
                         (os.path.join(alias, "x.npy"), lambda f: f.write(b"bindings"))])
    print("written:", open(os.path.join(folder, "x.npy")).read())
except ValueError as exc:
    print(type(exc).__name__, exc)
try:
    cli._check_outputs({"--output": Path(folder, "f.npy"), "--bindings": Path(alias, "f.npy")}, {}, False)
    print("outputs taken")
except ValueError as exc:
    print(type(exc).__name__, exc)
"""


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="a bind mount in a mount namespace of its own")
def test_two_writes_to_one_file_by_a_folder_bind_mounted_elsewhere_are_refused(tmp_path) -> None:
    """``atomic_write_all`` refuses two writes to one file (by one name, or
    through a link), else the later replaces the earlier without a word; but
    it told them apart by the resolved path, which does not see through a
    bind mount (a container given one folder as two volumes): both were
    written, the first lost. So did the command line's check of its outputs
    before the work (``embed -o /out/f.npy --bindings /work/out/f.npy``).
    Now a file is known by its folder's device and inode and its name. Run
    in a mount namespace of its own (``unshare``): the mount is gone with
    the process."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    unshare, mount = shutil.which("unshare"), shutil.which("mount")
    if unshare is None or mount is None:
        pytest.skip("no unshare or mount here")
    folder, alias = tmp_path / "out", tmp_path / "alias"
    folder.mkdir()
    alias.mkdir()
    as_root = [] if os.geteuid() == 0 else ["--map-root-user"]  # a user namespace where it may mount
    shell = f'{mount} --bind "$1" "$2" || exit 77; shift 2; exec "$@"'
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(gm.__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([unshare, "--mount", *as_root, "sh", "-c", shell, "sh", str(folder), str(alias),
                          sys.executable, "-c", _ONE_FILE_BY_TWO_NAMES, str(folder), str(alias)],
                         capture_output=True, text=True, env=env, timeout=120)
    if run.returncode == 77 or "unshare failed" in run.stderr or "unshare:" in run.stderr:
        pytest.skip(f"no mount namespace of its own here: {run.stderr.strip()[:200]}")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith(f"InvalidValueError writes: {str(alias / 'x.npy')!r} and {str(folder / 'x.npy')!r} are "
                               "one file"), run.stdout
    assert lines[1].startswith(f"InvalidValueError --bindings: {alias / 'f.npy'} is also the file of --output"), run.stdout
    assert os.listdir(folder) == []  # outside the namespace: nothing written


# ------------------------------------------------------------------ 8. a filesystem whose flock answers EINVAL
def test_saves_on_a_filesystem_whose_flock_answers_einval_are_written(tmp_path, monkeypatch) -> None:
    """``flock`` answers EINVAL on a filesystem that does not support it (as
    others answer ENOLCK, ENOSYS or EOPNOTSUPP, which a save already passes
    over): every save there failed ("path: '.../m.st' cannot be saved:
    Invalid argument; nothing was written there"), over a lock that only
    tells other saves' cleanups a temporary file is in use. Now written
    unlocked, one file or several at once, and nothing is left open."""
    import errno
    import os

    from grapheme_multimodal import io

    if io.fcntl is None:
        pytest.skip("no flock on this platform")

    def invalid(fd, operation) -> None:
        raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))

    open_before = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    monkeypatch.setattr(io.fcntl, "flock", invalid)
    model = _small_model()
    model.save(tmp_path / "m.st")
    (tmp_path / "out").mkdir()
    io.atomic_write_all([(tmp_path / "a.bin", lambda f: f.write(b"a")), (tmp_path / "out" / "b.bin", lambda f: f.write(b"b"))])
    monkeypatch.undo()
    assert _weights_of(gm.LearnableMultiModal.load(tmp_path / "m.st")) == _weights_of(model)
    assert (tmp_path / "a.bin").read_bytes() == b"a" and (tmp_path / "out" / "b.bin").read_bytes() == b"b"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "m.st", "out"]
    if open_before is not None:
        assert len(os.listdir("/proc/self/fd")) == open_before


# ------------------------------------------------------------------ 9. a thread count of more digits than int() reads
@pytest.mark.parametrize("name", ["GRAPHEME_MM_NUM_THREADS", "RAYON_NUM_THREADS"])
def test_a_thread_setting_of_thousands_of_digits_is_read_as_the_core_reads_it(monkeypatch, name) -> None:
    """``GRAPHEME_MM_NUM_THREADS`` of more than 4,300 digits (Python's limit of
    ``int()`` on a str): ``import grapheme_multimodal`` failed with "ValueError:
    Exceeds the limit (4300 digits) for integer string conversion", the
    library unusable, where the core reads ``000...03`` as 3 and passes over
    ``111...1`` (beyond its usize). Now read as the core reads them: the
    first without a word, the second named as ignored."""
    from grapheme_multimodal import _environment

    for other in ("GRAPHEME_MM_NUM_THREADS", "RAYON_NUM_THREADS", "GRAPHEME_MM_PORTABLE", "GRAPHEME_MM_NO_AVX512"):
        monkeypatch.delenv(other, raising=False)
    monkeypatch.setenv(name, "0" * 5000 + "3")
    assert _environment.unreadable_settings() == []
    monkeypatch.setenv(name, "+" + "0" * 5000 + "3")
    assert _environment.unreadable_settings() == []
    monkeypatch.setenv(name, "1" * 5000)
    said = _environment.unreadable_settings()
    assert len(said) == 1 and said[0].startswith(f"{name}='111") and "is ignored" in said[0], said


# ------------------------------------------------------------------ 10. an int flag of more digits than int() reads
@pytest.fixture
def train_argv(tmp_path) -> list:
    """``train`` on a small file, writing into ``tmp_path``."""
    np.save(tmp_path / "a.npy", np.random.default_rng(0).normal(size=(24, 5)).astype(np.float32))
    return ["train", "-m", f"visual={tmp_path / 'a.npy'}", "-o", str(tmp_path / "m.safetensors"), "--no-progress"]


@pytest.mark.parametrize("flag", ["--epochs", "--seed", "--batch-size"])
def test_an_int_flag_of_thousands_of_digits_is_refused_by_its_flag_in_words_of_its_own(train_argv, capsys, flag) -> None:
    """``--epochs 111...1`` (5,000 digits): ``int()``'s limit of 4,300 digits
    raised inside the flag's parser, and argparse said "--epochs: invalid
    _int value: '111...'", naming a function of the package's source and
    not what was expected. Now the flag says how long a number it got."""
    from grapheme_multimodal.cli import main

    with pytest.raises(SystemExit) as exit:  # a usage error, as argparse's
        main(train_argv + [flag, "1" * 5000])
    assert exit.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"grapheme-mm: error: {flag}: expected an int, got '11111111111111111111'... (a number of 5,000 digits"), lines
    assert "_int" not in lines[0]


def test_an_int_flag_with_thousands_of_leading_zeros_is_the_int_it_writes(train_argv, capsys, tmp_path) -> None:
    from grapheme_multimodal.cli import main

    assert main(train_argv + ["--epochs", "0" * 5000 + "1"]) == 0, capsys.readouterr().err
    assert gm.LearnableMultiModal.load(tmp_path / "m.safetensors").epochs_trained == 1


# ------------------------------------------------------------------ 11. a capacity of thousands of digits
def test_a_buffer_capacity_of_thousands_of_digits_is_refused_naming_capacity() -> None:
    """``ExperienceBuffer(10**5000)`` raised Python's own "ValueError: Exceeds
    the limit (4300 digits) for integer string conversion" (the refusal's
    message printed the int) instead of the refusal naming capacity, as the
    package's other int arguments refuse such a number."""
    with pytest.raises(gm.TooLargeError, match=r"^capacity: got 1\.000e\+5000 \(an int of 5001 digits\); a buffer that "
                                               r"large cannot fit in memory") as info:
        gm.ExperienceBuffer(10**5000)
    assert info.value.arg == "capacity"
    with pytest.raises(gm.TooLargeError, match=rf"^capacity: got {2**63}; a buffer that large"):
        gm.ExperienceBuffer(2**63)


# ------------------------------------------------------------------ 12. nested holding_warnings blocks
def test_a_block_that_only_drops_warnings_inside_one_that_holds_them_leaves_the_others_held() -> None:
    """``holding_warnings(dropped=..., hold=False)`` (embed's: the untrained
    encoder's warning said once) inside a block that holds the library's
    warnings (the command line's, which says each as one line): the others
    were said as Python warnings, past the outer block; and what the outer
    block drops was held or said inside the inner one. Now the inner block
    drops what either drops and holds the rest in the outer's list."""
    import warnings

    from grapheme_multimodal._caller_warnings import holding_warnings, warn_at_caller

    class Dropped(UserWarning):
        pass

    class DroppedOutside(UserWarning):
        pass

    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        with holding_warnings(dropped=(DroppedOutside,)) as outer:
            with holding_warnings(dropped=(Dropped,), hold=False):
                warn_at_caller("dropped inside", Dropped)
                warn_at_caller("dropped outside", DroppedOutside)
                warn_at_caller("held", RuntimeWarning)
            with holding_warnings() as inner:  # a block that holds: its own list, the outer's drops kept
                warn_at_caller("dropped outside, again", DroppedOutside)
                warn_at_caller("held inside", RuntimeWarning)
            warn_at_caller("held outside", RuntimeWarning)
    assert [str(w.message) for w in said] == []
    assert outer.held == [("held", RuntimeWarning), ("held outside", RuntimeWarning)]
    assert inner.held == [("held inside", RuntimeWarning)]


# ------------------------------------------------------------------ 13. an objective's weight of an exponent decimal cannot hold
def test_an_objective_weight_of_a_huge_negative_exponent_is_a_one_line_error(train_argv, capsys) -> None:
    """``train --objectives contrastive=1e-99999999999999999999``: the check of
    whether the float read is the number typed built a ``decimal.Decimal``
    of it, whose exponent is beyond what decimal holds, and the command
    ended with a ``decimal.InvalidOperation`` traceback. Now refused as any
    weight beyond float64's range."""
    from grapheme_multimodal.cli import main

    for exponent in ("99999999999999999999", "9" * 5000):
        assert main(train_argv + ["--epochs", "1", "--objectives", f"contrastive=1e-{exponent}"]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(
            f"grapheme-mm: error: --objectives: 'contrastive=1e-{exponent[:20]}"), lines
        assert "holds a number beyond float64's range (below float64's smallest" in lines[0], lines


def test_a_block_ignoring_a_warning_ignores_it_before_the_programs_error_filter() -> None:
    """A program that ignored the tip itself and then turned every warning
    into an error: the block shared the program's ignore, which stands
    behind its error filter, and the tip raised inside the block (at
    ``ray.init``) instead of being ignored."""
    import warnings

    from grapheme_multimodal._caller_warnings import ignoring_warning

    before = list(warnings.filters)
    try:
        warnings.filterwarnings("ignore", message=TIP, category=FutureWarning)
        warnings.filterwarnings("error")
        own = list(warnings.filters)
        with ignoring_warning(TIP, FutureWarning):
            warnings.warn(TIP + " env var", FutureWarning)  # raised before
        assert warnings.filters == own
    finally:
        warnings.filters[:] = before
