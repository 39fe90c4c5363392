"""Second pass over resume: what a checkpoint says of a file from another
version of its format, and what it holds of training mid-way."""

from __future__ import annotations

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal.io import write_tagged_safetensors

DIMS = {"visual": 5, "auditory": 4, "linguistic": 3}


def small_model(**kw) -> gm.LearnableMultiModal:
    return gm.LearnableMultiModal(embed_dim=8, hidden_dim=8, num_heads=2, seed=1, input_dims=DIMS, **kw)


def views(n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 3))
    return {m: (z @ rng.normal(size=(3, d)) + 0.1 * rng.normal(size=(n, d))).astype(np.float32) for m, d in DIMS.items()}


@pytest.mark.parametrize("kind", ["checkpoint", "ensemble", "experience-buffer"])
@pytest.mark.parametrize("written_by", ["0.9.0", None])
def test_a_file_of_a_format_version_this_one_does_not_read_says_so(tmp_path, kind, written_by) -> None:
    """A checkpoint a newer version writes in a format v2 was refused as "not a .../v1 file (its format
    tag is '.../v2')": nothing said the file is this library's, from a newer version, nor what to do."""
    model = small_model()
    path = tmp_path / "new.safetensors"
    meta = {"config": model.config.to_dict()} if written_by is None else {"library_version": written_by}
    write_tagged_safetensors(path, {}, f"grapheme-multimodal/{kind}/v2", meta)
    load = {"checkpoint": gm.LearnableMultiModal.load, "ensemble": gm.load_ensemble,
            "experience-buffer": gm.ExperienceBuffer.from_file}[kind]
    for read in (load, gm.load_models) if kind != "experience-buffer" else (load,):
        with pytest.raises(gm.CheckpointError) as err:
            read(path)
        text = str(err.value)
        assert f"'grapheme-multimodal/{kind}/v2': a version of the format this grapheme-multimodal" in text, text
        assert f"it reads 'grapheme-multimodal/{kind}/v1'" in text and "install that version" in text, text
        assert (f"written by grapheme-multimodal {written_by};" if written_by else "written by another version") in text, text
    write_tagged_safetensors(path, {}, "someone-else/checkpoint/v2", {})
    with pytest.raises(gm.CheckpointError, match=r"its format tag is 'someone-else/checkpoint/v2'\)$"):
        gm.LearnableMultiModal.load(path)


def test_a_checkpoint_holds_no_accumulated_gradients_as_documented(tmp_path) -> None:
    """As a PyTorch state dict, a checkpoint holds weights and optimiser state, not the gradients that
    backward() accumulated (README, save's docstring); a step after saving trains on exactly."""
    model = small_model()
    model.backward(views(16, 0))
    model.save(tmp_path / "mid.safetensors")
    assert not gm.LearnableMultiModal.load(tmp_path / "mid.safetensors").has_gradients()
    model.step()
    model.save(tmp_path / "after.safetensors")
    loaded = gm.LearnableMultiModal.load(tmp_path / "after.safetensors")
    batch = views(16, 1)
    assert loaded.train_step(batch) == model.train_step(batch)
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=name)
