"""Files, third round: outputs written together are replaced together."""

from __future__ import annotations

import errno
import os
import resource
import subprocess
import sys

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import io as gio


def _no_space(f) -> None:
    f.write(b"part of it")
    raise OSError(errno.ENOSPC, "No space left on device")


def test_atomic_write_all_replaces_no_target_when_a_later_write_fails(tmp_path) -> None:
    """The first file written, the second failing: the first target is as it
    was, the error names the second, and no temporary file is left."""
    first, second = tmp_path / "first.bin", tmp_path / "second.bin"
    first.write_bytes(b"old first")
    second.write_bytes(b"old second")
    with pytest.raises(OSError, match="second.bin") as info:
        gio.atomic_write_all([(first, lambda f: f.write(b"new first")), (second, _no_space)])
    assert info.value.errno == errno.ENOSPC
    assert first.read_bytes() == b"old first" and second.read_bytes() == b"old second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["first.bin", "second.bin"]
    assert gio.atomic_write_all([(first, lambda f: f.write(b"1")), (second, lambda f: f.write(b"2"))]) == [first, second]
    assert first.read_bytes() == b"1" and second.read_bytes() == b"2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["first.bin", "second.bin"]


def test_embed_that_fails_to_write_its_bindings_keeps_the_previous_embeddings(tmp_path) -> None:
    """``embed -o fused.npy --bindings bind.npy --overwrite`` on a disk that
    takes the embeddings but not the binding strengths (a file size limit, as
    a full disk): the command failed, yet fused.npy had been replaced, the
    previous embeddings lost beside the previous run's binding strengths. Now
    both files are as they were."""
    model = gm.LearnableMultiModal(embed_dim=8, hidden_dim=8, num_heads=2, input_dims={"visual": 6, "auditory": 4}, seed=0)
    model.save(tmp_path / "model.safetensors")
    rng = np.random.default_rng(0)
    np.save(tmp_path / "a.npy", rng.normal(size=(24, 6)).astype(np.float32))
    np.save(tmp_path / "b.npy", rng.normal(size=(24, 4)).astype(np.float32))
    fused, bind = tmp_path / "fused.npy", tmp_path / "bind.npy"
    fused.write_bytes(b"previous embeddings")
    bind.write_bytes(b"previous binding strengths")

    def small_files():  # the embeddings (24 x 8 float32, under 1 KB) fit, the strengths (24 x 7 x 7, 4.7 KB) do not
        resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))

    done = subprocess.run(
        [sys.executable, "-m", "grapheme_multimodal", "embed", str(tmp_path / "model.safetensors"),
         "-m", f"visual={tmp_path / 'a.npy'}", "-m", f"auditory={tmp_path / 'b.npy'}",
         "-o", str(fused), "--bindings", str(bind), "--overwrite"],
        capture_output=True, text=True, timeout=120, preexec_fn=small_files,
        env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"),
    )
    assert done.returncode == 2 and "bind.npy" in done.stderr and "File too large" in done.stderr, done.stderr
    assert fused.read_bytes() == b"previous embeddings"
    assert bind.read_bytes() == b"previous binding strengths"
    assert not list(tmp_path.glob(".*.tmp"))


def test_the_same_model_saved_twice_is_the_same_bytes(tmp_path) -> None:
    """safetensors wrote the header's metadata in a hash map's order, another
    at every save: one model saved twice gave two files of different bytes,
    two checkpoints to a content hash (DVC, a cache, a reproducible build)."""
    model = gm.LearnableMultiModal(seed=0, embed_dim=16, hidden_dim=16, num_heads=2, input_dims={"visual": 4, "auditory": 3})
    rng = np.random.default_rng(0)
    model.fit({"visual": rng.normal(size=(20, 4)), "auditory": rng.normal(size=(20, 3))}, epochs=1, progress=False)
    model.record_batch({"visual": rng.normal(size=(3, 4)).astype(np.float32)}, rewards=[0.5, 1.0, 0.0])
    saves = {
        "model": lambda p: model.save(p),
        "ensemble": lambda p: gm.save_ensemble([model, model], p),
        "buffer": lambda p: model.experience.save(p),
    }
    for kind, save in saves.items():
        written = []
        for i in range(4):
            save(tmp_path / f"{kind}{i}.safetensors")
            written.append((tmp_path / f"{kind}{i}.safetensors").read_bytes())
        assert all(w == written[0] for w in written), kind
        header = written[0][8:8 + int.from_bytes(written[0][:8], "little")].decode()
        keys = list(__import__("json").loads(header)["__metadata__"])
        assert keys == sorted(keys) and len(header) % 8 == 0, kind
    loaded = gm.LearnableMultiModal.load(tmp_path / "model0.safetensors")  # and the file reads back as the model
    assert all(np.array_equal(v, loaded.state_dict()[k]) for k, v in model.state_dict().items())
