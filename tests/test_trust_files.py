"""Issue 11 for files: checksums catch corruption, crafted headers and
oversized files are refused before their data is read, nothing that is not a
regular file is opened, killed saves never damage the target and their temp
files are cleaned up, new files follow the umask, and forged pickles are
clean errors."""

from __future__ import annotations

import copy
import json
import math
import os
import pickle
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import grapheme_multimodal as gm
from grapheme_multimodal import io as gio
from grapheme_multimodal.checkpoint import FILE_FORMAT, checkpoint_state
from grapheme_multimodal.io import write_tagged_safetensors

from conftest import run_concurrently, unit_embeddings

HERE = Path(__file__).resolve().parent


def small_trained() -> gm.LearnableMultiModal:
    model = gm.LearnableMultiModal(embed_dim=8, hidden_dim=8, num_heads=2, seed=0, buffer_size=4,
                                   input_dims={"visual": 5, "auditory": 3})
    rng = np.random.default_rng(0)
    data = {"visual": rng.normal(size=(12, 5)), "auditory": rng.normal(size=(12, 3))}
    model.fit(data, epochs=1, batch_size=6, progress=False)
    model.record_batch(data, rewards=0.25)
    return model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """``(model, bytes of its checkpoint)``."""
    path = tmp_path_factory.mktemp("ckpt") / "model.safetensors"
    model = small_trained()
    model.save(path)
    return model, path.read_bytes()


def same_model(a: gm.LearnableMultiModal, b: gm.LearnableMultiModal) -> bool:
    ta, ma = checkpoint_state(a)
    tb, mb = checkpoint_state(b)
    ma.pop("library_version"), mb.pop("library_version")
    return ma == mb and ta.keys() == tb.keys() and all(ta[k].tobytes() == tb[k].tobytes() for k in ta)


# -------------------------------------------------------------- corruption
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_bit_flip_is_caught_or_harmless(saved, tmp_path, data) -> None:
    model, raw = saved
    position = data.draw(st.integers(0, len(raw) - 1), label="byte")
    bit = data.draw(st.integers(0, 7), label="bit")
    flipped = bytearray(raw)
    flipped[position] ^= 1 << bit
    path = tmp_path / "flipped.safetensors"
    path.write_bytes(bytes(flipped))
    try:
        back = gm.LearnableMultiModal.load(path)
    except gm.CheckpointError:
        return
    assert same_model(model, back), f"a flip of bit {bit} at byte {position} loaded as a different model"


def test_flips_in_tensor_data_name_the_tensor(saved, tmp_path) -> None:
    _, raw = saved
    header_end = 8 + int.from_bytes(raw[:8], "little")
    rng = np.random.default_rng(0)
    for position in rng.integers(header_end, len(raw), size=30):
        flipped = bytearray(raw)
        flipped[position] ^= 1 << int(rng.integers(8))
        path = tmp_path / "flipped.safetensors"
        path.write_bytes(bytes(flipped))
        with pytest.raises(gm.CheckpointError, match="does not match its checksum"):
            gm.LearnableMultiModal.load(path)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, 10**9))
def test_any_truncation_is_a_checkpoint_error(saved, tmp_path, cut) -> None:
    _, raw = saved
    path = tmp_path / "cut.safetensors"
    path.write_bytes(raw[: cut % len(raw)])
    with pytest.raises(gm.CheckpointError):
        gm.LearnableMultiModal.load(path)


def _raw_file(path: Path, header: dict, data: bytes = b"") -> Path:
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(len(text).to_bytes(8, "little") + text + data)
    return path


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(meta=st.dictionaries(st.sampled_from(["config", "optimizer", "epochs_trained", "history", "experience",
                                             "library_version", "checksum", "other"]), _json, max_size=7),
       tensors=st.dictionaries(st.text(max_size=12), st.tuples(
           st.sampled_from(["F32", "F16", "BF16", "I32", "I64", "BOOL", "U8", "F64", "XX"]),
           st.lists(st.integers(0, 2**40), max_size=3)), max_size=3))
def test_crafted_headers_are_clean_errors(tmp_path, meta, tensors) -> None:
    header = {"__metadata__": {"format": FILE_FORMAT, **{k: json.dumps(v) for k, v in meta.items()}}}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        size = math.prod(shape) * 4
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    path = _raw_file(tmp_path / "crafted.safetensors", header, b"\0" * min(offset, 4096))
    with pytest.raises((gm.CheckpointError, gm.TooLargeError)):
        gm.LearnableMultiModal.load(path)


@pytest.fixture(scope="module")
def rich_state():
    """``(tensors, metadata)`` of a checkpoint holding every optional part:
    hidden layers, learned temperatures, standardisation, a weight average
    and an experience buffer with raw inputs whose generator has moved."""
    model = gm.LearnableMultiModal(embed_dim=8, hidden_dim=8, num_heads=2, seed=0, buffer_size=6, encoder_hidden=(4,),
                                   learnable_temperature=True, input_dims={"visual": 5, "auditory": 3})
    rng = np.random.default_rng(0)
    data = {"visual": rng.normal(size=(12, 5)), "auditory": rng.normal(size=(12, 3))}
    model.fit(data, epochs=2, batch_size=6, ema_decay=0.5, progress=False)
    model.record_batch(data, rewards=0.25)
    model.experience.sample(2, prioritized=True)
    return checkpoint_state(model)


def _tree_paths(node, path=()):
    """Every place in a JSON tree, as the keys and indices that lead to it."""
    yield path
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in children:
        yield from _tree_paths(child, path + (key,))


# Copied per draw: sampled_from hands out the same list each time, so a mutation that put [8] in one
# example's metadata and then appended to it (or put it inside itself) changed it for every later
# example -- a list holding itself (RecursionError in _tree_paths), and Hypothesis' FlakyStrategyDefinition.
_EDGE_VALUES = st.sampled_from([None, True, False, 0, 1, -1, 2, 8, 8.0, 0.5, -0.0, 1e-45, 2**31, 2**63, 2**64, 2**128,
                                10**400, float("nan"), float("inf"), "", "8", "PCG64", [], {}, [8], [3, 1, 2, 1, 1, 1, 1]]
                               ).map(copy.deepcopy)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_metadata_of_a_real_checkpoint_is_refused_or_loads_a_model_that_saves_again(rich_state, tmp_path, data) -> None:
    """The metadata of a real checkpoint with one or two of its values
    replaced, removed or added (checksums valid): every such file is a
    CheckpointError (or TooLargeError), never another exception; a file
    that loads gives a model that saves and loads back the same, and works."""
    tensors, original = rich_state
    meta = json.loads(json.dumps(original))
    for _ in range(data.draw(st.integers(1, 2), label="mutations")):
        path = data.draw(st.sampled_from(list(_tree_paths(meta))[1:]), label="where")
        parent = meta
        for key in path[:-1]:
            parent = parent[key]
        value = data.draw(_EDGE_VALUES | _json, label="value")
        action = data.draw(st.sampled_from(["replace", "replace", "remove", "add"]), label="action")
        if action == "replace":
            parent[path[-1]] = value
        elif action == "remove":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[data.draw(st.sampled_from(["extra", "seed", "step"]) | st.text(max_size=4), label="key")] = value
        else:
            parent.append(value)
    target = tmp_path / "mutated.safetensors"
    write_tagged_safetensors(target, tensors, FILE_FORMAT, meta)
    try:
        loaded = gm.LearnableMultiModal.load(target)
    except (gm.CheckpointError, gm.TooLargeError):
        event("refused")
        return
    event("loaded")
    loaded.save(tmp_path / "again.safetensors")
    again = gm.LearnableMultiModal.load(tmp_path / "again.safetensors")
    (ta, ma), (tb, mb) = checkpoint_state(loaded), checkpoint_state(again)
    assert json.dumps(ma, sort_keys=True) == json.dumps(mb, sort_keys=True)  # as text: a NaN in the history equals itself
    assert ta.keys() == tb.keys() and all(ta[k].tobytes() == tb[k].tobytes() for k in ta)
    loaded.encode({"visual": np.ones((2, loaded.config.input_dims[0]))})


@pytest.mark.parametrize("where", ["metadata value", "metadata name", "tensor name"])
def test_a_lone_surrogate_in_the_header_is_a_checkpoint_error(tmp_path, where) -> None:
    """JSON's "\\ud800" decodes to a lone surrogate, which UTF-8 cannot
    encode: the metadata's checksum raised UnicodeEncodeError (hypothesis'
    text() never draws surrogates). A tensor's name is refused the same way."""
    lone = "\ud800"
    for fmt, load in [(FILE_FORMAT, gm.LearnableMultiModal.load),
                      ("grapheme-multimodal/experience-buffer/v1", gm.ExperienceBuffer.from_file)]:
        meta = {"format": fmt, "checksum": json.dumps({"crc32": {"__metadata__": "0"}})}
        tensors = {}
        if where == "metadata value":
            meta["config"] = lone
        elif where == "metadata name":
            meta[lone] = "1"
        else:
            tensors[lone] = {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}
            meta["checksum"] = json.dumps({"crc32": {"__metadata__": gio._metadata_crc(meta), lone: "0"}})
        path = _raw_file(tmp_path / "lone.safetensors", {"__metadata__": meta, **tensors}, b"\0" * 4 * len(tensors))
        with pytest.raises(gm.CheckpointError, match="lone surrogate"):
            load(path)


@pytest.mark.parametrize("dtype", [np.float16, np.int32, np.bool_, np.float64])
def test_weights_of_another_dtype_are_refused_not_converted(tmp_path, dtype) -> None:
    model = small_trained()
    tensors, meta = checkpoint_state(model)
    tensors["param/fusion.0.weight"] = tensors["param/fusion.0.weight"].astype(dtype)
    path = tmp_path / "typed.safetensors"
    write_tagged_safetensors(path, tensors, FILE_FORMAT, meta)
    with pytest.raises(gm.CheckpointError, match=r"fusion\.0\.weight.*expected float32"):
        gm.LearnableMultiModal.load(path)
    with pytest.raises(gm.CheckpointError, match=r"fusion\.0\.weight.*expected float32"):
        pickle.loads(pickle.dumps(model)).__setstate__({"tensors": tensors, "meta": meta})


def test_non_finite_weights_and_bad_metadata_are_refused(tmp_path) -> None:
    model = small_trained()
    for edit, words in [
        (lambda t, m: t["param/binder.bias"].__setitem__(0, np.nan), "binder.bias"),
        (lambda t, m: m.__setitem__("epochs_trained", -1), "epochs_trained"),
        (lambda t, m: m.__setitem__("history", [{"loss": [1]}]), "history"),
        (lambda t, m: m.__setitem__("optimizer", {"step": 1}), "optimizer"),
        (lambda t, m: m.__setitem__("extra", 1), "unexpected keys"),
        (lambda t, m: m.pop("history"), "missing keys"),
        (lambda t, m: m["config"].__setitem__("embed_dim", "8"), "embed_dim"),
    ]:
        tensors, meta = checkpoint_state(model)
        tensors = {k: v.copy() for k, v in tensors.items()}
        edit(tensors, meta)
        path = tmp_path / "bad.safetensors"
        write_tagged_safetensors(path, tensors, FILE_FORMAT, meta)
        with pytest.raises(gm.CheckpointError, match=words):
            gm.LearnableMultiModal.load(path)


def test_deeply_nested_metadata_is_not_a_recursion_error(tmp_path) -> None:
    from safetensors.numpy import save

    nested = "[" * 100000 + "]" * 100000
    for fmt, load in [(FILE_FORMAT, gm.LearnableMultiModal.load),
                      ("grapheme-multimodal/experience-buffer/v1", gm.ExperienceBuffer.from_file)]:
        path = tmp_path / "nested.safetensors"
        path.write_bytes(save({"x": np.zeros(1, np.float32)}, metadata={"format": fmt, "config": nested, "size": nested}))
        with pytest.raises(gm.CheckpointError, match="nested too deeply"):
            load(path)


def test_files_without_a_checksum_still_load(saved, tmp_path) -> None:
    """Files from before checksums (no ``checksum`` entry) load, unverified."""
    from safetensors.numpy import save

    model, _ = saved
    tensors, meta = checkpoint_state(model)
    old = {"format": FILE_FORMAT, **{k: json.dumps(v) for k, v in meta.items()}}
    path = tmp_path / "old.safetensors"
    path.write_bytes(save({k: np.ascontiguousarray(v) for k, v in tensors.items()}, metadata=old))
    assert same_model(model, gm.LearnableMultiModal.load(path))
    model.save(path)  # saving again adds the checksum
    assert "checksum" in json.loads(path.read_bytes()[8 : 8 + int.from_bytes(path.read_bytes()[:8], "little")])["__metadata__"]


def test_directories_and_fifos_are_named_as_what_they_are(tmp_path) -> None:
    (tmp_path / "folder").mkdir()
    with pytest.raises(gm.CheckpointError, match="is a directory"):
        gm.LearnableMultiModal.load(tmp_path / "folder")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(gm.CheckpointError, match="FIFO"):  # and it does not block waiting for a writer
        gm.ExperienceBuffer.from_file(fifo)
    with pytest.raises(FileNotFoundError, match="no file at"):
        gm.LearnableMultiModal.load(tmp_path / "missing.safetensors")


def test_saving_onto_a_fifo_or_device_refuses_instead_of_replacing_it(tmp_path) -> None:
    # The atomic rename used to replace whatever was there: a save to /dev/null
    # (as root) turned the device into a regular file.
    model = gm.LearnableMultiModal(seed=0, embed_dim=8, hidden_dim=8, num_heads=2)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    device = tmp_path / "null"  # a link, so that the test never touches /dev/null itself
    device.symlink_to(os.devnull)
    for path, kind in [(fifo, "a FIFO (named pipe)"), (device, "a character device")]:
        with pytest.raises(FileExistsError, match=re.escape(f"is {kind}, not a regular file")):
            model.save(path)
        with pytest.raises(FileExistsError, match=re.escape(kind)):
            model.experience.save(path)
    assert fifo.is_fifo() and device.is_symlink() and device.is_char_device()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_saving_through_a_symlink_writes_the_file_it_names(tmp_path) -> None:
    # The atomic rename used to replace the link with a new file and leave the
    # file the link names as it was: stale, where `open(link, "wb")` writes it.
    model = small_trained()
    (tmp_path / "store").mkdir()
    real = tmp_path / "store" / "model.safetensors"
    gm.LearnableMultiModal(seed=1, embed_dim=8, hidden_dim=8, num_heads=2).save(real)
    link = tmp_path / "latest.safetensors"
    link.symlink_to(real)
    model.save(link)
    assert link.is_symlink() and link.resolve() == real.resolve()
    assert same_model(gm.LearnableMultiModal.load(real), model)
    dangling = tmp_path / "next.safetensors"
    dangling.symlink_to(tmp_path / "store" / "next.safetensors")
    model.experience.save(dangling)
    assert dangling.is_symlink() and (tmp_path / "store" / "next.safetensors").is_file()
    assert [p.name for p in tmp_path.rglob("*.tmp")] == []


def _run_capped(code: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=timeout)


def test_an_8_gib_sparse_file_is_refused_after_reading_its_header(tmp_path) -> None:
    """Three 8 GiB sparse files (zeros; a valid header then zeros; a header
    declaring one 8 GiB tensor): each refused in well under a second, with
    little memory, in a subprocess (a crash or a bare MemoryError would show)."""
    zeros = tmp_path / "zeros.safetensors"
    with zeros.open("wb") as f:
        f.truncate(8 << 30)
    model = small_trained()
    padded = tmp_path / "padded.safetensors"
    model.save(padded)
    with padded.open("r+b") as f:
        f.truncate(8 << 30)
    header = {"__metadata__": {"format": FILE_FORMAT}, "param/x": {"dtype": "F32", "shape": [2**31], "data_offsets": [0, 2**33]}}
    giant = _raw_file(tmp_path / "giant.safetensors", header)
    with giant.open("r+b") as f:
        f.truncate(giant.stat().st_size + 2**33)
    done = _run_capped(f"""
        import time, grapheme_multimodal as gm
        for path in {[str(zeros), str(padded), str(giant)]!r}:
            start = time.perf_counter()
            try:
                gm.LearnableMultiModal.load(path)
            except gm.CheckpointError as exc:
                print("refused", round(time.perf_counter() - start, 3), str(exc)[:60])
        # VmHWM, not ru_maxrss: Linux carries the forking parent's (pytest's) peak into the child's ru_maxrss
        print("maxrss_mb", [int(l.split()[1]) // 1024 for l in open("/proc/self/status") if l.startswith("VmHWM")][0])
    """)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len([l for l in lines if l.startswith("refused")]) == 3, done.stdout
    assert all(float(l.split()[1]) < 2 for l in lines if l.startswith("refused")), done.stdout
    assert int(lines[-1].split()[1]) < 1024, done.stdout


# ------------------------------------------------------------------ saving
def test_a_file_cut_short_while_it_is_loaded_is_a_checkpoint_error_not_a_crash(tmp_path) -> None:
    """safetensors' reader memory-maps the file: one cut short while it was
    read (``cp new.safetensors model.safetensors`` over a checkpoint another
    process is loading) killed the loading process with SIGBUS. Run in a
    subprocess, where a crash shows as its exit status."""
    path = tmp_path / "model.safetensors"
    small_trained().save(path)
    done = _run_capped(f"""
        import os, grapheme_multimodal as gm
        from grapheme_multimodal import io
        real = io._metadata_crc
        def cut_while_loading(raw_meta):  # runs once the header is read, before any tensor is
            os.truncate({str(path)!r}, 64)
            return real(raw_meta)
        io._metadata_crc = cut_while_loading
        try:
            gm.LearnableMultiModal.load({str(path)!r})
        except gm.CheckpointError as exc:
            print("refused:", exc)
    """)
    assert done.returncode == 0 and done.stdout.startswith("refused:"), (done.returncode, done.stderr[-2000:])
    assert "truncated or corrupt?): it ends inside tensor" in done.stdout, done.stdout


def test_new_files_follow_the_umask_and_replaced_ones_keep_their_mode(tmp_path) -> None:
    old = os.umask(0o027)
    try:
        path = gio.atomic_write_bytes(tmp_path / "a.bin", b"x")
        assert path.stat().st_mode & 0o777 == 0o640
        path.chmod(0o604)
        gio.atomic_write_bytes(path, b"y")
        assert path.stat().st_mode & 0o777 == 0o604 and path.read_bytes() == b"y"
    finally:
        os.umask(old)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="only root may give a file to another user")
def test_a_file_replaced_by_root_keeps_its_owner(tmp_path) -> None:
    """Root saving over a user's checkpoint (a container writing into a
    mounted folder) made it root's: its user's next save was refused as
    read-only. The replacement keeps the owner and the mode."""
    path = tmp_path / "users.safetensors"
    small_trained().save(path)
    os.chown(path, 1234, 2345)
    path.chmod(0o640)
    small_trained().save(path)
    st = path.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (1234, 2345, 0o640)
    assert [p.name for p in tmp_path.iterdir()] == ["users.safetensors"]


def test_a_read_only_file_is_not_replaced(tmp_path) -> None:
    # The rename replaced it (renames need the directory's permission, not the file's),
    # so a checkpoint its owner had made read-only to keep it was lost to the next save.
    path = gio.atomic_write_bytes(tmp_path / "kept.bin", b"kept")
    path.chmod(0o444)
    with pytest.raises(PermissionError, match=r"path: '.*kept\.bin' is read-only"):
        gio.atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"kept" and sorted(p.name for p in tmp_path.iterdir()) == ["kept.bin"]
    path.chmod(0o644)
    gio.atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"new"


def test_the_directory_is_synced_after_the_rename(tmp_path, monkeypatch) -> None:
    synced = []
    real = gio.os.fsync

    def record(fd):
        synced.append(os.path.isdir(f"/proc/self/fd/{fd}") if os.path.exists("/proc/self/fd") else True)
        real(fd)

    monkeypatch.setattr(gio.os, "fsync", record)
    gio.atomic_write_bytes(tmp_path / "a.bin", b"x")
    assert synced == [False, True], "the file, then its directory"


def test_the_next_save_removes_orphans_but_not_a_save_in_progress(tmp_path) -> None:
    import fcntl

    target = tmp_path / "model.safetensors"
    orphans = [tmp_path / f".model.safetensors.{i:012x}.tmp" for i in range(3)]  # as a save names them
    for p in orphans:
        p.write_bytes(b"half a checkpoint")
    busy = tmp_path / ".model.safetensors.busy.tmp"
    other = tmp_path / ".other.safetensors.abc.tmp"
    busy.write_bytes(b"being written")
    other.write_bytes(b"another target's")
    with busy.open("rb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)  # what a running save holds
        small_trained().save(target)
    assert not any(p.exists() for p in orphans)
    assert busy.exists() and other.exists()
    assert gm.LearnableMultiModal.load(target).epochs_trained == 1


def test_the_cleanup_of_orphans_keeps_the_users_files_that_look_like_them(tmp_path) -> None:
    """Every unlocked ``.NAME.*.tmp`` was taken for a killed save's temporary
    file: saving to model.st deleted the user's own .model.st.old.tmp."""
    model = small_trained()
    kept = [".model.st.old.tmp", ".model.st.0123456789abc.tmp", ".model.st.0123456789AB.tmp", ".model.st..tmp"]
    for name in kept:
        (tmp_path / name).write_bytes(b"the user's")
    model.save(tmp_path / name)  # even a checkpoint saved under such a name
    orphan = tmp_path / ".model.st.0123456789ab.tmp"  # what a killed save leaves
    orphan.write_bytes(b"half a checkpoint")
    model.save(tmp_path / "model.st")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*kept, "model.st"])
    assert same_model(gm.LearnableMultiModal.load(tmp_path / name), model)


def test_concurrent_saves_to_one_target_all_succeed(tmp_path) -> None:
    model = small_trained()
    target = tmp_path / "model.safetensors"

    def save() -> None:
        for _ in range(10):
            model.save(target)

    run_concurrently(save, save, save, save)
    assert same_model(model, gm.LearnableMultiModal.load(target))
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]


SAVER = """
import os, sys
import numpy as np
from grapheme_multimodal.io import write_tagged_safetensors
path = sys.argv[1]
base = np.random.default_rng(0).normal(size=(256, 1024)).astype(np.float32)
versions = [{"w": base + i} for i in range(2)]
for _ in sys.stdin:  # one saver per line: forked, so the imports are paid once
    pid = os.fork()
    if pid == 0:
        i = 0
        while True:
            write_tagged_safetensors(path, versions[i % 2], "kill-test", {"version": i % 2})
            if i == 0:
                print(os.getpid(), flush=True)
            i += 1
    os.waitpid(pid, 0)
    print("reaped", flush=True)
"""


def test_killing_a_save_never_damages_the_target(tmp_path) -> None:
    """kill -9 a process in the middle of saving, again and again: the target
    always loads (as one of the saved versions), and after the next good save
    no temp file is left."""
    target = tmp_path / "target.safetensors"
    base = np.random.default_rng(0).normal(size=(256, 1024)).astype(np.float32)
    rng = np.random.default_rng(1)
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")  # a single-threaded process forks safely
    saver = subprocess.Popen([sys.executable, "-c", SAVER, str(target)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True, env=env)
    try:
        for _ in range(12):
            saver.stdin.write("go\n")
            saver.stdin.flush()
            pid = int(saver.stdout.readline())
            time.sleep(float(rng.uniform(0.0, 0.05)))
            os.kill(pid, signal.SIGKILL)
            assert saver.stdout.readline().strip() == "reaped"
            tensors, meta = gio.read_tagged_safetensors(target, "kill-test")
            assert meta["version"] in (0, 1)
            np.testing.assert_array_equal(tensors["w"], base + meta["version"])
    finally:
        saver.kill()
        saver.wait()
    print("orphans left by the kills:", len(list(tmp_path.glob(".*.tmp"))))
    write_tagged_safetensors(target, {"w": np.zeros(2, np.float32)}, "kill-test", {"version": 9})
    assert [p.name for p in tmp_path.iterdir()] == ["target.safetensors"], "orphaned temp files were removed"


# ----------------------------------------------------------------- pickles
@pytest.mark.parametrize(
    "state",
    [{}, {"tensors": {}}, {"meta": {}}, [], None, {"tensors": {}, "meta": {}},
     {"tensors": {}, "meta": {"config": {}}}, {"tensors": "x", "meta": {"config": {}}}],
)
def test_forged_pickles_are_checkpoint_errors(state) -> None:
    """A pickle whose state lacks keys or holds the wrong things: a clean
    CheckpointError, never a bare KeyError (unpickling runs __setstate__)."""
    model = pickle.loads(pickle.dumps(gm.LearnableMultiModal(seed=0, embed_dim=8, hidden_dim=8, num_heads=2)))
    with pytest.raises(gm.CheckpointError):
        model.__setstate__(state)
    forged = pickle.dumps(model).replace(b"epochs_trained", b"epochs_trainex")
    with pytest.raises(gm.CheckpointError, match="missing keys"):
        pickle.loads(forged)


@pytest.mark.parametrize(
    "path, error, words",
    [
        (123, TypeError, "path: expected a file name (str or os.PathLike), got int"),
        (None, TypeError, "path: expected a file name (str or os.PathLike), got NoneType"),
        (b"model.safetensors", TypeError, "path: expected a file name (str or os.PathLike), got bytes"),
        ("", gm.InvalidValueError, "path: the file name is empty"),
        ("model\0.safetensors", gm.InvalidValueError, "contains a NUL character"),
    ],
)
def test_paths_that_are_not_file_names_are_named_errors(path, error, words) -> None:
    # os said "expected str, bytes or os.PathLike object, not int" or "embedded null byte",
    # naming no argument; "" was taken as the current directory.
    model = gm.LearnableMultiModal(seed=0, embed_dim=8, hidden_dim=8, num_heads=2)
    for call in (model.save, gm.LearnableMultiModal.load, model.experience.save, gm.ExperienceBuffer.from_file):
        with pytest.raises(error, match=re.escape(words)):
            call(path)


def test_a_loop_of_symbolic_links_is_named_as_such(tmp_path) -> None:
    # os.stat's OSError "Too many levels of symbolic links" used to escape load as it was.
    loop = tmp_path / "loop.safetensors"
    loop.symlink_to(loop.name)
    model = gm.LearnableMultiModal(seed=0, embed_dim=8, hidden_dim=8, num_heads=2)
    with pytest.raises(gm.CheckpointError, match="is a loop of symbolic links; expected a file"):
        gm.LearnableMultiModal.load(loop)
    with pytest.raises(gm.CheckpointError, match="is a loop of symbolic links"):
        model.experience.load(loop)
    with pytest.raises(FileExistsError, match="is a loop of symbolic links, not a regular file"):
        model.save(loop)
    assert loop.is_symlink() and [p.name for p in tmp_path.iterdir()] == [loop.name]


def test_a_forged_buffer_size_does_not_make_loading_allocate_it(tmp_path) -> None:
    # The buffer used to allocate all of its capacity up front: a 36 kB checkpoint
    # whose config said buffer_size=10**7 took 27 s and 5.4 GB to load.
    import tracemalloc

    from conftest import _save_with_config

    model = gm.LearnableMultiModal(seed=0, embed_dim=8, hidden_dim=8, num_heads=2)
    path = tmp_path / "forged.safetensors"
    _save_with_config(model, path, lambda config: config.__setitem__("buffer_size", 10**6))
    tracemalloc.start()
    try:
        back = gm.LearnableMultiModal.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert back.config.buffer_size == 10**6 and len(back.experience) == 0
    assert peak < 50 * 2**20, f"loading allocated {peak:,} bytes"


def test_a_buffer_that_grows_to_its_capacity_keeps_its_experiences_in_order(tmp_path) -> None:
    buf = gm.ExperienceBuffer(3000, embed_dim=2, seed=1)
    for first, n in [(0, 1000), (1000, 1500), (2500, 900), (3400, 5)]:  # grows twice, then wraps
        ids = np.arange(first, first + n)
        buf.extend(unit_embeddings(ids), np.ones((n, 7), bool),
                   np.repeat(ids[:, None], 2, axis=1), np.zeros((n, 7, 7)), ids % 7, event_ids=ids)
    got = buf.batch()
    assert list(got.event_ids) == list(range(405, 3405))
    assert np.array_equal(got.fused[:, 0], got.event_ids) and np.array_equal(got.rewards, got.event_ids % 7)
    buf.save(tmp_path / "b.safetensors")
    back = gm.ExperienceBuffer.from_file(tmp_path / "b.safetensors")
    assert np.array_equal(back.batch().event_ids, got.event_ids)
    assert np.array_equal(back.sample(50).event_ids, buf.sample(50).event_ids), "the generator's state goes with it"


# ---------------------------------------------------------- names and folders
def test_a_file_name_near_the_longest_a_filesystem_takes_can_be_saved(tmp_path) -> None:
    # The temporary file's name (.NAME.<12 hex>.tmp) is 18 bytes longer than the target's:
    # a legal 250-byte name failed with "File name too long" naming the temporary file.
    model = small_trained()
    for name in ("m" * 251 + ".st", "é" * 125 + ".st"):  # 254 and 253 bytes; é is 2 bytes in UTF-8
        path = tmp_path / name
        model.save(path)
        model.save(path)  # replacing it too, with the orphan cleanup that matches the temporary name
        assert same_model(model, gm.LearnableMultiModal.load(path))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["m" * 251 + ".st", "é" * 125 + ".st"])
    orphan = tmp_path / gio._temp_prefix("m" * 251 + ".st")
    orphan = orphan.with_name(orphan.name + "0123456789ab.tmp")
    orphan.write_bytes(b"left by a killed save")
    model.save(tmp_path / ("m" * 251 + ".st"))
    assert not orphan.exists()


@pytest.mark.parametrize("ending", ["/", "/."])
def test_a_name_ending_in_a_separator_is_a_folder_not_a_file_to_create(tmp_path, ending) -> None:
    # pathlib drops a trailing "/": save("runs/") wrote a file named "runs".
    model = small_trained()
    for call in (model.save, model.experience.save, lambda p: gio.atomic_write_bytes(p, b"x")):
        with pytest.raises(IsADirectoryError, match=re.escape(f"path: '{tmp_path}/runs{ending}' names a folder")):
            call(f"{tmp_path}/runs{ending}")
    assert list(tmp_path.iterdir()) == []


def test_a_folder_that_is_a_file_is_named_as_such(tmp_path) -> None:
    # It was "directory '.../model.st' does not exist", of a file that does.
    (tmp_path / "model.st").write_bytes(b"x")
    with pytest.raises(NotADirectoryError, match=r"path: '.*model\.st' is not a directory"):
        small_trained().save(tmp_path / "model.st" / "inner.st")


def test_a_folder_that_refuses_new_files_names_the_target_not_the_temporary_file(tmp_path, monkeypatch) -> None:
    # The error named ".m.st.3c8a8bff3b22.tmp", a file the user never gave. (Made by
    # refusing os.open: these tests may run as root, whom a read-only folder does not stop.)
    real_open = os.open

    def read_only_folder(path, flags, *args):
        if flags & os.O_CREAT:
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, flags, *args)

    monkeypatch.setattr(gio.os, "open", read_only_folder)
    target = tmp_path / "m.st"
    with pytest.raises(PermissionError) as error:
        small_trained().save(target)
    assert error.value.errno == 13 and str(error.value).startswith(f"path: {str(target)!r} cannot be saved")


@pytest.mark.parametrize("value", [10**400, -(10**309)], ids=["1e400", "-1e309"])
def test_history_numbers_a_float_cannot_hold_are_refused_on_load(tmp_path, value) -> None:
    # JSON ints are unbounded: a history holding 10**400 loaded, and `grapheme-mm info`
    # then died with a traceback (OverflowError formatting it as a float).
    model = small_trained()
    tensors, meta = checkpoint_state(model)
    meta["history"][0]["loss"] = value
    path = tmp_path / "forged.st"
    write_tagged_safetensors(path, tensors, FILE_FORMAT, meta)
    with pytest.raises(gm.CheckpointError, match=r"history\[0\]: expected a record of numbers by name"):
        gm.LearnableMultiModal.load(path)
    meta["history"][0]["loss"] = 10**300  # an int a float holds: loads as before
    write_tagged_safetensors(path, tensors, FILE_FORMAT, meta)
    assert gm.LearnableMultiModal.load(path).history[0]["loss"] == 10**300


def test_keeping_existing_never_replaces_a_file_with_or_without_hard_links(tmp_path, monkeypatch) -> None:
    """What the command line writes its outputs with (without --overwrite):
    a file at the target is kept, whether the write is a hard link (one
    step) or, on a filesystem without them, a check and a rename."""
    target = tmp_path / "out.bin"
    for hard_links in (True, False):
        if not hard_links:
            def no_links(src, dst):
                raise PermissionError(1, "Operation not permitted", src)  # vfat, some FUSE and network filesystems

            monkeypatch.setattr(gio.os, "link", no_links)
        target.unlink(missing_ok=True)
        with gio.keeping_existing({"--output": target}):
            gio.atomic_write_bytes(target, b"first")
            with pytest.raises(FileExistsError, match=r"--output: '.*out\.bin' was created by something else"):
                gio.atomic_write_bytes(target, b"second")
        assert target.read_bytes() == b"first" and [p.name for p in tmp_path.iterdir()] == ["out.bin"]
        gio.atomic_write_bytes(target, b"third")  # outside the block: replaced as before
        assert target.read_bytes() == b"third"


_DTYPES = ["float32", "float64", "float16", "int64", "int32", "int16", "int8", "uint8", "bool"]


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(st.tuples(st.sampled_from(_DTYPES), st.lists(st.integers(0, 4), max_size=3)), min_size=1, max_size=5),
    st.dictionaries(st.text(max_size=8), st.text(max_size=16), max_size=3),
    st.integers(0, 2**32 - 1),
    st.integers(0, 64),
)
def test_the_checkpoint_reader_reads_what_safetensors_reads(tmp_path, specs, metadata, seed, cut) -> None:
    """The reader parses the safetensors header itself (safetensors' own
    reader memory-maps the file, and a file cut short while mapped is
    SIGBUS): on files safetensors writes it gives safetensors' own tensors
    and metadata, and a file cut short is refused by both."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file, save_file

    rng = np.random.default_rng(seed)
    tensors = {f"t{i}": np.asarray(rng.standard_normal(shape) * 50).astype(dtype) for i, (dtype, shape) in enumerate(specs)}
    path = tmp_path / "any.safetensors"
    save_file(tensors, str(path), metadata=metadata or None)
    theirs = load_file(str(path))
    with open(path, "rb") as f:
        meta, entries, start = gio._read_header(f, path.stat().st_size, "path", "test")
        ours = {name: gio._read_tensor(f, name, e, start, "path", "test") for name, e in entries.items()}
    assert meta == metadata and set(ours) == set(theirs)
    for name, arr in theirs.items():
        assert ours[name].dtype == arr.dtype and ours[name].shape == arr.shape
        np.testing.assert_array_equal(ours[name], arr)
    data = path.read_bytes()
    if cut and cut <= len(data) - 8:  # the same file cut short (a header alone is a valid empty file to neither)
        path.write_bytes(data[: len(data) - cut])
        with pytest.raises(SafetensorError):
            load_file(str(path))
        with pytest.raises(gm.CheckpointError), open(path, "rb") as f:
            gio._read_header(f, path.stat().st_size, "path", "test")
