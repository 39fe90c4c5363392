"""Second hostile-use pass over persistence: checkpoints, state dicts,
optimizer state, pickles and the command lines that read checkpoints."""

from __future__ import annotations

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal.cli import main


def small_model(**kw) -> gm.LearnableMultiModal:
    return gm.LearnableMultiModal(embed_dim=8, hidden_dim=8, num_heads=2, **kw)


# ------------------------------------------------ the command line's checkpoint
def _not_checkpoints(folder) -> dict:
    """Files a user may give as the checkpoint by mistake, by what they are."""
    text = folder / "notes.txt"
    text.write_text("not a checkpoint\n")
    empty = folder / "empty.safetensors"
    empty.write_bytes(b"")
    npz = folder / "arrays.npz"
    np.savez(npz, x=np.zeros(3))
    cut = folder / "cut.safetensors"
    small_model().save(cut)
    cut.write_bytes(cut.read_bytes()[:-9])
    return {"text": text, "empty": empty, "npz": npz, "cut": cut, "folder": folder, "missing": folder / "nope.safetensors"}


@pytest.mark.parametrize("command", ["embed", "info"])
@pytest.mark.parametrize("what", ["text", "empty", "npz", "cut", "folder", "missing"])
def test_cli_errors_about_the_checkpoint_name_it_not_path(tmp_path, capsys, command, what) -> None:
    """`grapheme-mm info notes.txt` said "path: 'notes.txt' is not ...": a `path` the command line has no argument of."""
    given = _not_checkpoints(tmp_path)[what]
    vectors = tmp_path / "v.npy"
    np.save(vectors, np.zeros((2, 18), np.float32))
    argv = [command, str(given)] + (["-m", f"visual={vectors}", "-o", str(tmp_path / "out.npy")] if command == "embed" else [])
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("grapheme-mm: error: checkpoint: ") and repr(str(given)) in err, err
    assert "path" not in err.replace(str(tmp_path), ""), err


# ------------------------------------------------------------------ state dicts
def test_a_non_strict_load_says_what_it_left_and_ignored() -> None:
    """`missing, unexpected = model.load_state_dict(sd, strict=False)` (PyTorch's idiom) was "cannot unpack non-iterable NoneType", and a dict of other names loaded nothing without a word."""
    model = small_model()
    before = model.state_dict()
    prefixed = {"module." + k: v + 1 for k, v in before.items()}
    missing, unexpected = model.load_state_dict(prefixed, strict=False)
    assert missing == list(before) and unexpected == sorted(prefixed)
    assert all(np.array_equal(v, before[k]) for k, v in model.state_dict().items())
    partial = {"binder.bias": np.array([0.5], np.float32), "extra": np.zeros(2)}
    result = model.load_state_dict(partial, strict=False)
    assert result.missing_keys == [k for k in before if k != "binder.bias"] and result.unexpected_keys == ["extra"]
    assert model.load_state_dict(model.state_dict()) == ([], [])


@pytest.mark.parametrize("strict", [True, False])
def test_a_state_dict_with_keys_that_are_not_names_is_a_named_error(strict) -> None:
    """A dict with an int key beside names, `{1: w, "x": w}`, was a bare TypeError "'<' not supported between instances of 'str' and 'int'"."""
    model = small_model()
    before = model.state_dict()
    weights = {1: np.zeros(3, np.float32), "x": np.zeros(2, np.float32)}
    if strict:
        with pytest.raises(gm.InvalidValueError, match=r"state_dict: unexpected keys \[1, 'x'\]"):
            model.load_state_dict(weights)
    else:
        assert model.load_state_dict(weights, strict=False).unexpected_keys == [1, "x"]
    assert all(np.array_equal(v, before[k]) for k, v in model.state_dict().items())


# ------------------------------------------------------ files that are not checkpoints
@pytest.mark.parametrize(
    "name, content",
    [
        ("features.csv", "0.5,1.25,3\n4,5,6\n"),
        ("config.json", '{"embed_dim": 8}\n'),
        ("notes.txt", "\ufeffcaéé au lait\n"),  # a BOM, and a character cut by the first 8 bytes
    ],
)
def test_a_text_file_given_as_a_checkpoint_is_named_text_not_truncated(tmp_path, capsys, name, content) -> None:
    """`grapheme-mm embed features.csv -m visual=model.safetensors` (arguments swapped) said "(truncated or corrupt?): its header would be 3,544,386,477,659,204,656 bytes"."""
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    for load in (gm.LearnableMultiModal.load, gm.ExperienceBuffer(2).load):
        with pytest.raises(gm.CheckpointError) as err:
            load(path)
        text = str(err.value)
        assert "a text file" in text and "truncated or corrupt" not in text and "would be" not in text, text
    assert main(["info", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("grapheme-mm: error: checkpoint: ") and "a text file" in err, err


def test_a_safetensors_file_of_another_program_is_named_so(tmp_path) -> None:
    """A Hugging Face or PyTorch safetensors file given to load said "(its format tag is None)", Python's word for a tag it never had."""
    from safetensors.numpy import save_file

    path = tmp_path / "model.safetensors"
    save_file({"encoder.visual.weight": np.zeros((8, 18), np.float32)}, str(path))
    with pytest.raises(gm.CheckpointError) as err:
        gm.LearnableMultiModal.load(path)
    text = str(err.value)
    assert "None" not in text and "without this library's format tag" in text, text


STATE_DICT_CONFIGS = [
    pytest.param({}, id="default"),
    pytest.param(dict(encoder_hidden=(6,), shared_head=(5, 8), encoder_skip=True, learnable_temperature=True,
                      reconstruction_decoders=True, binder_kind="bilinear"), id="every component"),
]


@pytest.mark.parametrize("metadata", [None, {"format": "pt"}], ids=["save_file", "torch save_model's tag"])
@pytest.mark.parametrize("config", STATE_DICT_CONFIGS)
def test_a_saved_state_dict_given_to_load_is_named_and_its_reader_said(tmp_path, config, metadata) -> None:
    """safetensors.numpy.save_file(model.state_dict(), path), given to
    LearnableMultiModal.load, was refused as "written by another program"
    with no hint. It stays refused (a state dict has no config), and now
    says that it is a state dict and how a model of its config reads it;
    that recipe works."""
    import safetensors.numpy

    model = small_model(**config)
    path = tmp_path / "state.safetensors"
    safetensors.numpy.save_file(model.state_dict(), str(path), metadata=metadata)
    with pytest.raises(gm.CheckpointError) as err:
        gm.LearnableMultiModal.load(path)
    text = str(err.value)
    assert err.value.arg == "path" and text.startswith(f"path: {str(path)!r} is not a grapheme-multimodal/checkpoint/v1 file")
    assert "it holds a state dict" in text and "without the config" in text, text
    assert text.endswith("model.load_state_dict(safetensors.numpy.load_file(path))"), text
    fresh = small_model(**config, seed=5)
    fresh.load_state_dict(safetensors.numpy.load_file(str(path)))
    assert all(np.array_equal(fresh.state_dict()[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("names", [["weight"], ["model.encoder.visual.weight"], ["encoder.visual.weight", "lm_head.weight"],
                                   ["encoder"]])
def test_a_foreign_file_of_other_names_is_not_called_a_state_dict(tmp_path, names) -> None:
    from safetensors.numpy import save_file

    path = tmp_path / "other.safetensors"
    save_file({n: np.zeros(2, np.float32) for n in names}, str(path))
    with pytest.raises(gm.CheckpointError) as err:
        gm.LearnableMultiModal.load(path)
    assert "state dict" not in str(err.value) and str(err.value).endswith("save_file?))"), str(err.value)


def test_other_formats_give_no_state_dict_hint(tmp_path) -> None:
    """A state dict given to ExperienceBuffer.load, or one of the package's
    own files given to LearnableMultiModal.load, is named as before."""
    import safetensors.numpy

    model = small_model()
    safetensors.numpy.save_file(model.state_dict(), str(tmp_path / "state.safetensors"))
    with pytest.raises(gm.CheckpointError) as err:
        gm.ExperienceBuffer(2).load(tmp_path / "state.safetensors")
    assert "state dict" not in str(err.value)
    model.experience.save(tmp_path / "buffer.safetensors")
    with pytest.raises(gm.CheckpointError) as err:
        gm.LearnableMultiModal.load(tmp_path / "buffer.safetensors")
    assert "state dict" not in str(err.value) and "an experience buffer file" in str(err.value)


# ------------------------------------------------------------------- saving
@pytest.mark.parametrize("where", ["copying the state", "serialising"])
def test_a_save_out_of_memory_names_the_file_and_keeps_the_old_one(tmp_path, monkeypatch, where) -> None:
    """A save that ran out of memory (a large experience buffer) raised a bare `MemoryError()`, naming no file and saying nothing of the one there."""
    import safetensors.numpy

    from grapheme_multimodal import checkpoint

    path = tmp_path / "model.safetensors"
    model = small_model()
    model.save(path)
    before = path.read_bytes()

    def out_of_memory(*args, **kwargs):
        raise MemoryError

    if where == "serialising":
        monkeypatch.setattr(safetensors.numpy, "save", out_of_memory)
    else:
        monkeypatch.setattr(checkpoint, "checkpoint_state", out_of_memory)
    with pytest.raises(gm.TooLargeError, match=r"^path: not enough memory to write '.*model\.safetensors'") as err:
        small_model(seed=3).save(path)
    assert isinstance(err.value, MemoryError) and err.value.arg == "path"
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]


@pytest.mark.parametrize("load", ["load_state_dict", "load_optimizer_state"])
def test_a_masked_weight_tensor_is_not_told_to_leave_rows_out(load) -> None:
    """A masked array in a state dict was refused "(fill them, or leave the rows out with mask= where a modality is absent)", the remedy of inputs, not of weights."""
    model = small_model()
    weights = model.state_dict()
    masked = np.ma.masked_array(weights["binder.bias"], mask=[True])
    if load == "load_state_dict":
        given, call, where = {**weights, "binder.bias": masked}, model.load_state_dict, r"state_dict\['binder.bias'\]"
    else:
        state = model.optimizer_state()
        given = {**state, "exp_avg": {**state["exp_avg"], "binder.bias": masked}}
        call, where = model.load_optimizer_state, r"state\['exp_avg'\]\['binder.bias'\]"
    with pytest.raises(gm.InvalidValueError, match=rf"^{where}: a masked array with 1 masked entries; .*x\.filled") as err:
        call(given)
    assert "mask=" not in str(err.value) and "rows" not in str(err.value)
