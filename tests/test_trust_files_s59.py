"""Files under hostile use, round s59: forged and damaged headers, names
taken while a file is written, filesystems without locks, the open-files
limit, processes saving and loading one file at once, an encrypted .npz, and
a buffer unpickled from read-only memory (Ray, joblib's mmap_mode)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import grapheme_multimodal as gm
from grapheme_multimodal.buffer import ExperienceBuffer
from grapheme_multimodal.exceptions import CheckpointError

_LOADERS = {
    "model": gm.LearnableMultiModal.load,
    "ensemble": gm.load_ensemble,
    "models": gm.load_models,
    "experience": ExperienceBuffer.from_file,
}


def _small_model(seed: int = 0) -> gm.LearnableMultiModal:
    return gm.LearnableMultiModal(embed_dim=4, hidden_dim=4, num_heads=1, input_dims={"visual": 2}, seed=seed)


def _split(raw: bytes):
    """``(header as a dict, tensor bytes)`` of a safetensors file's bytes."""
    size = int.from_bytes(raw[:8], "little")
    return json.loads(raw[8:8 + size]), raw[8 + size:]


def _joined(header: dict, body: bytes) -> bytes:
    text = json.dumps(header).encode()
    return len(text).to_bytes(8, "little") + text + body


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 2**70) | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=6,
)


@pytest.fixture(scope="module")
def saved_model_bytes(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("s59") / "model.safetensors"
    _small_model().save(path)
    return path.read_bytes()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(["dtype", "shape", "data_offsets"]), value=_JSON, loader=st.sampled_from(sorted(_LOADERS)))
def test_a_tensor_declared_with_any_json_value_is_refused_naming_the_file(
    tmp_path: Path, saved_model_bytes: bytes, field: str, value, loader: str
) -> None:
    """A checkpoint whose header declares a tensor's dtype, shape or data
    offsets as any JSON value (a list, an object, a huge number). Before, a
    dtype that was a list or an object (``"dtype": ["F32"]``) escaped every
    loader as a bare ``TypeError: unhashable type: 'list'``, naming no file;
    now each loader raises :class:`CheckpointError` naming the path, as for
    every other corrupt header."""
    header, body = _split(saved_model_bytes)
    name = next(k for k in header if k != "__metadata__")
    if header[name][field] == value:
        return
    header[name][field] = value
    path = tmp_path / "forged.safetensors"
    path.write_bytes(_joined(header, body))
    with pytest.raises(CheckpointError, match="forged.safetensors"):
        _LOADERS[loader](path)


@pytest.mark.parametrize("dtype", [["F32"], {"F32": 1}])
def test_a_dtype_that_is_a_list_or_an_object_is_refused(tmp_path: Path, saved_model_bytes: bytes, dtype) -> None:
    """The two forged dtypes the search above stumbles on, pinned: before, a
    bare ``TypeError: unhashable type``; now a CheckpointError saying which
    tensor is declared how."""
    header, body = _split(saved_model_bytes)
    name = next(k for k in header if k != "__metadata__")
    header[name]["dtype"] = dtype
    path = tmp_path / "forged.safetensors"
    path.write_bytes(_joined(header, body))
    for load in _LOADERS.values():
        with pytest.raises(CheckpointError, match=f"forged.safetensors.*tensor '{name}' is declared as"):
            load(path)


# ------------------------------------------------------------------ the name taken while the file is written
@pytest.mark.parametrize("how", ["a folder made at the name", "a file put in the folder's place"])
def test_a_name_taken_by_something_else_while_a_file_is_written_is_said_so(tmp_path: Path, how: str) -> None:
    """Another program makes a folder at the target's name (or a file where
    the target's folder was) while a save writes. Before, the error was the
    OS's "[Errno 21] Is a directory: '.m.st.<hex>.tmp' -> 'm.st'", naming a
    temporary file the user never gave; now it names the file given, says
    what is in its place, and that nothing was written. No temporary file
    is left either way."""
    import shutil

    from grapheme_multimodal import io as gio

    folder = tmp_path / "out"
    folder.mkdir()
    target = folder / "m.st"

    def taken_meanwhile(f) -> None:
        f.write(b"the new file")
        if how == "a folder made at the name":
            target.mkdir()
        else:
            shutil.rmtree(folder)
            folder.write_bytes(b"not a folder")

    with pytest.raises(OSError) as info:
        gio.atomic_write(target, taken_meanwhile)
    message = str(info.value)
    assert message.startswith(f"path: {str(target)!r}: ") and ".tmp" not in message, message
    assert "nothing was written" in message, message
    if how == "a folder made at the name":
        assert isinstance(info.value, IsADirectoryError) and "is now a directory" in message, message
        assert list(folder.iterdir()) == [target] and list(target.iterdir()) == []
    else:
        assert isinstance(info.value, NotADirectoryError) and f"its folder {str(folder)!r} is now a file" in message
        assert folder.read_bytes() == b"not a folder" and list(tmp_path.iterdir()) == [folder]


@pytest.mark.parametrize("code", ["EMFILE", "ENFILE"])
def test_a_save_past_the_open_files_limit_says_so_not_that_the_folder_is_at_fault(
    tmp_path: Path, monkeypatch, code: str
) -> None:
    """A save when this process has as many files open as ``ulimit -n``
    lets it (a loop that leaks open files), or the system has. Before, the
    error said "no file can be created in its folder '/data/run' (Too many
    open files)": the folder blamed, where any folder fails alike. Now it
    says the open files' limit is reached and what to do; the file already
    there is as it was."""
    import errno

    from grapheme_multimodal import io as gio

    target = tmp_path / "m.st"
    _small_model(seed=1).save(target)
    before = target.read_bytes()
    real_open = os.open
    number = getattr(errno, code)

    def limit_reached(path, flags, *args, **kwargs):
        if str(path).endswith(".tmp"):  # the save's temporary file: the first file it creates
            raise OSError(number, os.strerror(number), path)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(gio.os, "open", limit_reached)
    with pytest.raises(OSError) as info:
        _small_model(seed=2).save(target)
    monkeypatch.undo()
    message = str(info.value)
    assert info.value.errno == number and message.startswith(f"path: {str(target)!r} cannot be saved: "), message
    assert "as many files open as it may" in message and "folder" not in message, message
    assert target.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["m.st"]


@pytest.mark.parametrize("load", [gm.LearnableMultiModal.load, gm.load_models, gm.load_ensemble,
                                  ExperienceBuffer.from_file])
def test_a_load_past_the_open_files_limit_names_its_argument_and_the_limit(tmp_path: Path, monkeypatch, load) -> None:
    """Loading when this process has as many files open as ``ulimit -n``
    lets it. Before, the OS's bare "[Errno 24] Too many open files:
    '.../m.st'", naming no argument, nor the limit; now "path: '.../m.st'
    cannot be read: this process has as many files open as it may ...",
    as a save past the limit says."""
    import errno

    from grapheme_multimodal import io as gio

    target = tmp_path / "m.st"
    target.write_bytes(b"never read")
    real_open = os.open

    def limit_reached(path, flags, *args, **kwargs):
        if os.fspath(path) == str(target):
            raise OSError(errno.EMFILE, os.strerror(errno.EMFILE), path)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(gio.os, "open", limit_reached)
    with pytest.raises(OSError) as info:
        load(target)
    message = str(info.value)
    assert info.value.errno == errno.EMFILE and message.startswith(f"path: {str(target)!r} cannot be read: "), message
    assert "as many files open as it may" in message, message


# ------------------------------------------------------------------ a filesystem that takes no locks
@pytest.mark.parametrize("errno_name", ["ENOSYS", "ENOLCK", "EOPNOTSUPP"])
def test_a_save_on_a_filesystem_that_takes_no_locks_is_written(tmp_path: Path, monkeypatch, errno_name: str) -> None:
    """A folder on a filesystem whose ``flock`` fails (Lustre mounted without
    ``-o flock`` answers ENOSYS; NFS without its lock daemon, ENOLCK).
    Before, every save there failed ("[Errno 38] Function not implemented:
    'm.st'") after all the training, over a lock that only tells other
    saves' cleanups a temporary file is in use; now the file is saved
    (unlocked), loads back, and no temporary file is left. A temporary file
    left there by a killed save is kept, not removed: no cleanup can tell
    it from a save in progress."""
    import errno

    from grapheme_multimodal import io as gio

    if gio.fcntl is None:
        pytest.skip("no flock on this platform")
    model = _small_model(seed=3)
    orphan = tmp_path / ".m.st.0123456789ab.tmp"
    orphan.write_bytes(b"left by a save that was killed")
    code = getattr(errno, errno_name)

    def no_locks(fd, operation) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(gio.fcntl, "flock", no_locks)
    model.save(tmp_path / "m.st")
    model.save(tmp_path / "m.st")  # over a file saved unlocked
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == [orphan.name, "m.st"]
    loaded = gm.LearnableMultiModal.load(tmp_path / "m.st")
    assert loaded.config.seed == 3 and loaded.state_dict().keys() == model.state_dict().keys()
    assert all(np.array_equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())


# ------------------------------------------------------------------ processes saving and loading one file at once
#: A process of its own (a fresh interpreter, as multiprocessing's spawn starts): says "ready", waits for "go"
#: on standard input (a barrier: all start at once), then saves its model over the path (argv: path, "save",
#: seed, times) or loads it (argv: path, "load", times), printing the seed of each model loaded or the error.
_PROCESS = """
import sys
import grapheme_multimodal as gm
path, what, *numbers = sys.argv[1:]
if what == "save":
    model = gm.LearnableMultiModal(embed_dim=4, hidden_dim=4, num_heads=1, input_dims={"visual": 2},
                                   seed=int(numbers[0]))
print("ready", flush=True)
sys.stdin.readline()
for _ in range(int(numbers[-1])):
    if what == "save":
        model.save(path)
    else:
        try:
            print(gm.LearnableMultiModal.load(path).config.seed, flush=True)
        except Exception as exc:
            print(repr(exc), flush=True)
"""


def test_processes_saving_one_file_while_another_loads_it_see_whole_files_only(tmp_path: Path) -> None:
    """Two processes save their own model over one path while a third loads
    it. The reader always gets one writer's whole model (never a torn file,
    a half-written one, or an error), the last save's file is what stays,
    and no temporary file is left behind."""
    import subprocess
    import sys

    path = tmp_path / "shared.safetensors"
    _small_model(seed=7).save(path)
    env = {**os.environ, "PYTHONPATH": str(Path(gm.__file__).parent.parent)}  # this package, wherever it is
    runs = [["save", "1", "8"], ["save", "2", "8"], ["load", "16"]]
    processes = [subprocess.Popen([sys.executable, "-c", _PROCESS, str(path), *run], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True, env=env) for run in runs]
    try:
        assert [p.stdout.readline() for p in processes] == ["ready\n"] * 3
        for p in processes:
            p.stdin.write("go\n")
            p.stdin.close()
        found = [line.strip() for line in processes[2].stdout]
        assert [p.wait(timeout=60) for p in processes] == [0, 0, 0]
    finally:
        for p in processes:
            if p.poll() is None:  # a failed assertion above: not left running
                p.kill()
                p.wait()
            p.stdout.close()
    assert len(found) == 16 and set(found) <= {"1", "2", "7"}, [f for f in found if f not in ("1", "2", "7")][:3]
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    assert gm.LearnableMultiModal.load(path).config.seed in (1, 2)


# ------------------------------------------------------------------ a password-protected .npz
def _encrypted_npz(path: Path) -> None:
    """An .npz whose member is marked encrypted (``zip -e``'s flag, or one flipped bit of a damaged archive)."""
    np.savez(path, x=np.arange(12, dtype=np.float64).reshape(4, 3))
    data = bytearray(path.read_bytes())
    data[data.find(b"PK\x03\x04") + 6] |= 1  # the local header's general-purpose flags
    data[data.find(b"PK\x01\x02") + 8] |= 1  # the central directory's
    path.write_bytes(bytes(data))


def test_an_encrypted_npz_is_refused_naming_the_file(tmp_path: Path, capsys) -> None:
    """A password-protected .npz given to ``grapheme-mm train`` (or to
    ``read_modality_file``). Before, zipfile's bare ``RuntimeError: File
    <ZipInfo filename='x.npy' ...> is encrypted, password required for
    extraction`` left the command line as a traceback; now it exits 2 with
    one line naming the file and what is expected."""
    from grapheme_multimodal.cli import main
    from grapheme_multimodal.exceptions import InvalidValueError
    from grapheme_multimodal.files import read_modality_file
    from grapheme_multimodal.types import Modality

    npz = tmp_path / "views.npz"
    _encrypted_npz(npz)
    with pytest.raises(InvalidValueError, match=r"views\.npz: its array 'x' is encrypted"):
        read_modality_file(Modality.VISUAL, npz)
    np.save(tmp_path / "b.npy", np.ones((4, 2), np.float32))
    code = main(["train", "-m", f"visual={npz}", "-m", f"auditory={tmp_path / 'b.npy'}",
                 "-o", str(tmp_path / "m.st"), "--epochs", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "views.npz: its array 'x' is encrypted" in err[0], err
    assert not (tmp_path / "m.st").exists()


@pytest.fixture(scope="module")
def saved_files(tmp_path_factory) -> dict:
    """The bytes of a model checkpoint, an ensemble and an experience file, with a loader each."""
    folder = tmp_path_factory.mktemp("s59-kinds")
    model = _small_model()
    model.record_batch({"visual": np.ones((3, 2), np.float32)})
    model.save(folder / "model.st")
    gm.save_ensemble([model, model], folder / "ensemble.st", include_experience=True)
    model.experience.save(folder / "experience.st")
    return {kind: (folder / f"{kind}.st").read_bytes() for kind in ("model", "ensemble", "experience")}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(["model", "ensemble", "experience"]), where=st.floats(0, 1, exclude_max=True),
       flip=st.integers(1, 255), cut=st.booleans())
def test_a_damaged_file_of_each_kind_is_refused_naming_the_file(
    tmp_path: Path, saved_files: dict, kind: str, where: float, flip: int, cut: bool
) -> None:
    """Any file of the package's three kinds cut short at any length, or with
    any byte changed (header or tensor data), is refused by its own loader
    and by ``load_models`` with a :class:`CheckpointError` naming the path:
    never a bare JSON/safetensors/Key error, a crash, or a model loaded
    from the damaged bytes."""
    data = bytearray(saved_files[kind])
    at = int(where * len(data))
    damaged = bytes(data[:at]) if cut else bytes(data[:at]) + bytes([data[at] ^ flip]) + bytes(data[at + 1:])
    path = tmp_path / f"damaged-{kind}.st"
    path.write_bytes(damaged)
    own = {"model": gm.LearnableMultiModal.load, "ensemble": gm.load_ensemble, "experience": ExperienceBuffer.from_file}
    for load in (own[kind], gm.load_models):
        with pytest.raises(CheckpointError, match=f"damaged-{kind}.st"):
            load(path)


# ------------------------------------------------------------------ a buffer unpickled from read-only memory
def test_a_buffer_unpickled_from_read_only_buffers_can_be_recorded_into(tmp_path: Path) -> None:
    """An ExperienceBuffer pickled with protocol 5's out-of-band buffers and
    unpickled from read-only memory, as Ray passes a buffer to a task (or
    ``ray.get`` returns one: its arrays are views of the object store).
    Before, every ``extend``, ``clear`` and ``update_priorities`` on it
    raised a bare ``ValueError: assignment destination is read-only``; now
    the buffer records, clears and reprioritises as the original does, and
    the memory it was unpickled from is left as it was."""
    import pickle

    model = _small_model()
    rows = np.random.default_rng(0).normal(size=(5, 2)).astype(np.float32)
    model.record_batch({"visual": rows})
    original = model.experience
    buffers = []
    data = pickle.dumps(original, protocol=5, buffer_callback=buffers.append)
    assert buffers  # the arrays went out of band, as Ray sends them
    memory = [bytes(b.raw()) for b in buffers]  # bytes: read-only, as the object store's
    copy = pickle.loads(data, buffers=[pickle.PickleBuffer(m) for m in memory])
    batch = original.sample(3)
    copy.extend(batch.embeddings, batch.mask, batch.fused, batch.pair_strengths, batch.rewards, inputs=batch.inputs)
    assert len(copy) == 8 and len(original) == 5
    assert copy.sample(8).rewards.shape == (8,)
    copy.update_priorities(np.array([0, 1]), np.array([2.0, 3.0]))
    copy.clear()
    assert len(copy) == 0 and len(original) == 5
    assert [bytes(b.raw()) for b in buffers] == memory


# ------------------------------------------------------------------ a file on a read-only file system
def test_saving_over_a_file_on_a_read_only_file_system_blames_the_file_system(tmp_path: Path, monkeypatch) -> None:
    """Saving over a checkpoint whose folder is on a file system mounted
    read-only (a dataset volume, a container's read-only layer). Before:
    "path: '.../m.st' is read-only; expected a file that may be replaced
    (make it writable, or save under another name)", sending the user to
    chmod a file whose mode was never the cause, and to another name in
    the same read-only folder. Now the error says the folder's file system
    is read-only (errno EROFS), and the file is as it was."""
    import errno
    import types

    target = tmp_path / "m.st"
    _small_model(seed=1).save(target)
    before = target.read_bytes()
    real_statvfs = os.statvfs

    def read_only_mount(path):  # what statvfs says of a folder on a read-only mount
        st = real_statvfs(path)
        return types.SimpleNamespace(f_flag=st.f_flag | os.ST_RDONLY)

    monkeypatch.setattr(os, "statvfs", read_only_mount)
    monkeypatch.setattr(os, "access", lambda path, mode, **kwargs: not mode & os.W_OK)  # as access(2) says there
    with pytest.raises(OSError) as info:
        _small_model(seed=2).save(target)
    monkeypatch.undo()
    message = str(info.value)
    assert info.value.errno == errno.EROFS, message
    assert message.startswith(f"path: {str(target)!r} cannot be replaced: its folder {str(tmp_path)!r} is on a "
                              "read-only file system"), message
    assert "make it writable" not in message
    assert target.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["m.st"]
