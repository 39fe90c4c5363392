"""A black-box hostile audit of the library's files: model checkpoints,
ensemble files and experience-buffer files, forged (with valid checksums)
or named in unusual ways. A refusal names the file it refuses, and a file
costs no memory beyond what it holds."""

from __future__ import annotations

import os

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal.buffer import FILE_FORMAT as BUFFER_FORMAT, buffer_row_bytes
from grapheme_multimodal.checkpoint import FILE_FORMAT as CHECKPOINT_FORMAT
from grapheme_multimodal.ensemble import ENSEMBLE_FORMAT, load_ensemble, save_ensemble
from grapheme_multimodal.io import read_tagged_safetensors, write_tagged_safetensors

from conftest import as_unit

DIMS = {"visual": 5, "auditory": 3}


def _model(seed: int = 0, **kw) -> gm.LearnableMultiModal:
    return gm.LearnableMultiModal(**{"input_dims": DIMS, "embed_dim": 8, "hidden_dim": 8, "num_heads": 2, "seed": seed,
                                     "buffer_size": 10, **kw})


def _forged(path, fmt: str, change) -> None:
    """The file at ``path`` rewritten with ``change(metadata)`` applied, its checksums valid."""
    tensors, meta = read_tagged_safetensors(path, fmt)
    change(meta)
    write_tagged_safetensors(path, tensors, fmt, meta)


def _entry(path) -> os.DirEntry:
    """``path`` as the os.DirEntry that ``os.scandir`` gives (an os.PathLike, not a Path)."""
    return next(e for e in os.scandir(path.parent) if e.name == path.name)


# ------------------------------------------------------------------ sizes too large name the file
def _huge_model(meta) -> None:
    meta["config"].update(embed_dim=10**6, hidden_dim=10**6)


def _huge_buffer_size(meta) -> None:
    meta["config"]["buffer_size"] = 10**30


def _huge_capacity(meta) -> None:
    meta["experience"]["capacity"] = 10**30


@pytest.mark.parametrize("change, field", [(_huge_model, "embed_dim"), (_huge_buffer_size, "buffer_size"),
                                           (_huge_capacity, "capacity")])
def test_a_checkpoint_too_large_for_memory_names_the_file(tmp_path, change, field) -> None:
    """LearnableMultiModal.load of a checkpoint whose config (or buffer) is
    too large for memory raised TooLargeError "hidden_dim: ... would need
    425.6 TiB", naming no file (load_ensemble and ExperienceBuffer.from_file
    name theirs; grapheme-mm embed said nothing of its checkpoint)."""
    path = tmp_path / "model.safetensors"
    _model().save(path)
    _forged(path, CHECKPOINT_FORMAT, change)
    with pytest.raises(gm.TooLargeError, match=rf"^path: {str(path)!r}: {field}: ") as info:
        gm.LearnableMultiModal.load(path)
    assert info.value.arg == "path"


def test_an_ensemble_members_buffer_too_large_names_the_file_and_the_member(tmp_path) -> None:
    """A member's buffer capacity too large for memory was TooLargeError
    "capacity: ...", naming neither the file nor the member."""
    path = tmp_path / "ens.safetensors"
    save_ensemble([_model(0), _model(1)], path, include_experience=True)
    _forged(path, ENSEMBLE_FORMAT, lambda meta: meta["members"][1]["experience"].update(capacity=10**30))
    with pytest.raises(gm.TooLargeError, match=rf"^path: {str(path)!r}: members\[1\]: capacity: ") as info:
        load_ensemble(path)
    assert info.value.arg == "path"


# ------------------------------------------------------------------ a file named by an os.PathLike
def _bad_step(meta) -> None:
    meta["optimizer"]["step"] = -1


def _bad_checkpoint(folder):
    path = folder / "model.safetensors"
    _model().save(path)
    _forged(path, CHECKPOINT_FORMAT, _bad_step)
    return gm.LearnableMultiModal.load, path, gm.CheckpointError


def _bad_ensemble(folder, load=load_ensemble):
    path = folder / "ens.safetensors"
    save_ensemble([_model(0), _model(1)], path)
    _forged(path, ENSEMBLE_FORMAT, lambda meta: _bad_step(meta["members"][0]))
    return load, path, gm.CheckpointError


def _buffer_of_other_dims(folder):  # of embed_dim 3, which the model's buffer cannot take
    path = folder / "buf.safetensors"
    gm.ExperienceBuffer(4, embed_dim=3).save(path)
    return _model().experience.load, path, gm.CheckpointError


def _huge_buffer(folder):
    path = folder / "buf.safetensors"
    gm.ExperienceBuffer(4).save(path)
    _forged(path, BUFFER_FORMAT, lambda meta: meta.update(capacity=10**30))
    return gm.ExperienceBuffer.from_file, path, gm.TooLargeError


@pytest.mark.parametrize("case", [_bad_checkpoint, _bad_ensemble, lambda folder: _bad_ensemble(folder, gm.load_models),
                                  _buffer_of_other_dims, _huge_buffer])
def test_errors_name_a_file_given_as_a_dir_entry_by_its_path(tmp_path, case) -> None:
    """A file given as an os.PathLike that is not a Path (the os.DirEntry of
    os.scandir) was named in errors raised after its header was read by
    the object's repr, "path: '<DirEntry 'model.safetensors'>'", not its path."""
    load, path, error = case(tmp_path)
    with pytest.raises(error, match=rf"^path: {str(path)!r}"):
        load(_entry(path))


def test_a_dir_entry_loads_and_saves(tmp_path) -> None:
    path = tmp_path / "model.safetensors"
    model = _model()
    model.save(path)
    back = gm.LearnableMultiModal.load(_entry(path))
    back.save(_entry(path))
    assert path.read_bytes() == (model.save(tmp_path / "again.safetensors"), (tmp_path / "again.safetensors").read_bytes())[1]


# ------------------------------------------------------------------ a buffer file's metadata
@pytest.mark.parametrize("dims", [[-1] * 7, [0] * 7, [3, 3, 3, 0, 3, 3, 3]])
def test_a_buffer_file_of_input_dims_not_positive_names_input_dims(tmp_path, dims) -> None:
    """Refused as "tensor 'inputs.visual': expected float32 of shape (3, -1)":
    a tensor blamed for the metadata, and a shape no tensor can have."""
    path = tmp_path / "buf.safetensors"
    buffer = gm.ExperienceBuffer(5, embed_dim=4, input_dims=[3] * 7)
    buffer.extend(embeddings=np.full((3, 7, 4), 0.5), mask=np.ones((3, 7), bool), fused=np.ones((3, 4)),
                  pair_strengths=np.full((3, 7, 7), 0.5), rewards=np.ones(3), event_ids=np.arange(3),
                  inputs=[np.ones((3, 3))] * 7)
    buffer.save(path)
    _forged(path, BUFFER_FORMAT, lambda meta: meta.update(input_dims=dims))
    with pytest.raises(gm.CheckpointError, match=rf"^path: {str(path)!r} is not a valid .*: input_dims: expected a list of "
                                                 r"positive ints or None, got \["):
        gm.ExperienceBuffer.from_file(path)


# ------------------------------------------------------------------ memory a file costs
def _held_bytes(buffer: gm.ExperienceBuffer) -> int:
    return sum(a.nbytes for a in buffer._arrays.values())


def test_an_empty_buffer_file_of_wide_inputs_costs_no_memory(tmp_path) -> None:
    """An empty buffer's file of input_dims 4,000 each (2 KB) took 110 MB
    when loaded (its first 1,024 rows allocated and filled with NaN), and
    wider ones up to this machine's memory: loaded, a buffer holds the rows
    its file holds; it grows as experiences come."""
    path = tmp_path / "buf.safetensors"
    gm.ExperienceBuffer(1024, embed_dim=4, input_dims=[4000] * 7).save(path)
    assert path.stat().st_size < 4096
    loaded = gm.ExperienceBuffer.from_file(path)
    assert _held_bytes(loaded) == 0
    loaded.extend(embeddings=np.full((2, 7, 4), 0.5), mask=np.ones((2, 7), bool), fused=np.ones((2, 4)),
                  pair_strengths=np.full((2, 7, 7), 0.5), rewards=np.ones(2), event_ids=np.arange(2),
                  inputs=[np.ones((2, 4000))] * 7)
    assert len(loaded) == 2 and loaded.batch().inputs[0].shape == (2, 4000)
    one = gm.ExperienceBuffer(1024, embed_dim=4, input_dims=[4000] * 7)
    one.extend(embeddings=np.full((1, 7, 4), 0.5), mask=np.ones((1, 7), bool), fused=np.ones((1, 4)),
               pair_strengths=np.full((1, 7, 7), 0.5), rewards=np.ones(1), event_ids=np.arange(1),
               inputs=[np.ones((1, 4000))] * 7)
    one.save(path)  # one experience's 112 KB: loaded, the buffer holds its one row, not 1,024 (110 MB)
    assert _held_bytes(gm.ExperienceBuffer.from_file(path)) == buffer_row_bytes(4, [4000] * 7) < path.stat().st_size
    model_path = tmp_path / "model.safetensors"
    _model(input_dims={"visual": 4000}).save(model_path)
    assert _held_bytes(gm.LearnableMultiModal.load(model_path).experience) == 0


def test_a_loaded_buffer_records_and_samples_as_the_one_saved(tmp_path) -> None:
    """Holding only its file's rows, a loaded buffer goes on as the saved
    one does: the same experiences kept past its capacity, the same draws."""
    rng = np.random.default_rng(0)

    def rows(n: int) -> dict:
        return dict(embeddings=as_unit(rng.normal(size=(n, 7, 4))), mask=np.ones((n, 7), bool), fused=rng.normal(size=(n, 4)),
                    pair_strengths=rng.uniform(size=(n, 7, 7)), rewards=rng.normal(size=n), event_ids=np.arange(n))

    buffer = gm.ExperienceBuffer(9, embed_dim=4, seed=3)
    buffer.extend(**rows(5))
    buffer.save(tmp_path / "buf.safetensors")
    loaded = gm.ExperienceBuffer.from_file(tmp_path / "buf.safetensors")
    for n in (1, 2, 4, 3):  # past the capacity: the ring wraps
        more = rows(n)
        buffer.extend(**more)
        loaded.extend(**more)
    draws = [(buffer.batch(), loaded.batch()), (buffer.sample(6), loaded.sample(6)),
             (buffer.sample(6, prioritized=True), loaded.sample(6, prioritized=True))]
    for a, b in draws:
        for name in ("embeddings", "fused", "rewards", "event_ids", "indices", "weights"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
