"""A hostile-use audit of the ensemble file: save_ensemble, load_ensemble,
load_models, io.format_tag, and grapheme-mm train/embed/info on an
ensemble file. A forged file is refused before it costs memory, a reader
never raises a bare Python error, and the command line speaks of every
member, naming the one it means."""

from __future__ import annotations

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import _validation
from grapheme_multimodal.cli import main
from grapheme_multimodal.ensemble import ENSEMBLE_FORMAT, load_ensemble, load_models, save_ensemble
from grapheme_multimodal.io import format_tag, read_tagged_safetensors, write_tagged_safetensors
from grapheme_multimodal.stopping import folds_bytes

DIMS = {"visual": 5, "auditory": 3}
TINY = ["--embed-dim", "16", "--hidden-dim", "16", "--heads", "2", "--epochs", "2", "--no-progress"]


def _model(seed: int = 0, **kw) -> gm.LearnableMultiModal:
    return gm.LearnableMultiModal(**{"input_dims": DIMS, "embed_dim": 8, "hidden_dim": 8, "num_heads": 2, "seed": seed, **kw})


def _data(n: int = 24) -> dict:
    rng = np.random.default_rng(0)
    return {m: rng.normal(size=(n, d)).astype(np.float32) for m, d in DIMS.items()}


def _files(folder) -> dict:
    data = _data()
    paths = {m: folder / f"{m}.npy" for m in data}
    for m, x in data.items():
        np.save(paths[m], x)
    return paths


# ------------------------------------------------------------------ the file's header
def test_format_tag_and_load_models_refuse_a_header_nested_too_deeply(tmp_path) -> None:
    """A header of deeply nested JSON made format_tag (which "must never raise") and so load_models raise a bare RecursionError."""
    header = b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    path = tmp_path / "deep.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header)
    assert format_tag(path) is None
    with pytest.raises(gm.CheckpointError, match="not JSON"):
        load_models(path)


def test_a_forged_list_of_many_members_is_refused_before_building_them(tmp_path, model_builds) -> None:
    """2,000 copies of a member's metadata in a 3.5 MB file built 2,000 models (1.5 GB) before the header was found to
    hold the tensors of two; a 100 MB header would have asked for tens of GB. Now the first member whose tensors the
    file lacks is refused before it is built (test_trust_leftovers2: a file padded with a large tensor too)."""
    path = tmp_path / "ens.safetensors"
    save_ensemble([_model(0), _model(1)], path)
    tensors, meta = read_tagged_safetensors(path, ENSEMBLE_FORMAT)
    forged = tmp_path / "forged.safetensors"
    write_tagged_safetensors(forged, tensors, ENSEMBLE_FORMAT, {**meta, "members": [meta["members"][0]] * 2000})
    model_builds.clear()  # only what loading builds
    with pytest.raises(gm.CheckpointError, match=r"members\[2\]: config: makes a model of [\d,]+ parameters, whose weights "
                                                 r"and Adam moments take [\d,]+ bytes, but the file holds 0 bytes of its tensors"):
        load_ensemble(forged)
    assert len(model_builds) == 2
    model_builds.clear()
    assert len(load_ensemble(path)) == 2 and len(model_builds) == 2  # a true file loads as before


def test_a_member_config_too_large_for_memory_names_the_file_and_the_member(tmp_path) -> None:
    """An absurd config in members[1] was TooLargeError "embed_dim: ... more than any address space holds" (the first of its equally wide fields): no file, no member."""
    path = tmp_path / "ens.safetensors"
    save_ensemble([_model(0), _model(1)], path)
    tensors, meta = read_tagged_safetensors(path, ENSEMBLE_FORMAT)
    huge = {**meta["members"][1], "config": {**meta["members"][1]["config"], "embed_dim": 10**9, "hidden_dim": 10**9}}
    write_tagged_safetensors(path, tensors, ENSEMBLE_FORMAT, {**meta, "members": [meta["members"][0], huge]})
    with pytest.raises(gm.TooLargeError, match=rf"^path: {str(path)!r}: members\[1\]: embed_dim: ") as info:
        load_ensemble(path)
    assert info.value.arg == "path"


# ------------------------------------------------------------------ the command line
def test_embed_warns_of_an_untrained_encoder_of_any_member(tmp_path, capsys) -> None:
    """Only members[0]'s untrained encoders were said: a member that never trained on auditory gave half of every
    fused row from random weights without a word."""
    paths = _files(tmp_path)
    both, visual_only = _model(0), _model(1)
    both.fit(_data(), epochs=1, progress=False)
    visual_only.fit({"visual": _data()["visual"]}, epochs=1, progress=False)
    path = tmp_path / "ens.safetensors"
    save_ensemble([both, visual_only], path)
    argv = ["embed", str(path), "-m", f"visual={paths['visual']}", "-m", f"auditory={paths['auditory']}",
            "-o", str(tmp_path / "out.npy")]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert err.count("warning:") == 1, err
    assert "grapheme-mm: warning: member 1 of the ensemble of 2: modality 'auditory' was never present" in err, err
    save_ensemble([visual_only, visual_only], path)  # every member untrained on it: said once, as of one model
    assert main(argv[:-1] + [str(tmp_path / "out2.npy")]) == 0
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and "grapheme-mm: warning: modality 'auditory' was never present" in err, err


def test_embed_hidden_features_names_the_member_without_hidden_layers(tmp_path, capsys) -> None:
    """`embed --hidden-features` on an ensemble whose members[1] has no hidden layers said "this model's encoders have
    no hidden layers" of an ensemble whose first member has them."""
    paths = _files(tmp_path)
    path = tmp_path / "ens.safetensors"
    save_ensemble([_model(0, encoder_hidden=(12,)), _model(1)], path)
    out = tmp_path / "out.npy"
    assert main(["embed", str(path), "-m", f"visual={paths['visual']}", "-o", str(out),
                 "--hidden-features", str(tmp_path / "h.npy")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("grapheme-mm: error: --hidden-features: member 1 of the ensemble of 2 in ") and "\n" not in err, err
    assert "no hidden layers in its encoders (as train --encoder-hidden '' makes them)" in err, err
    assert "encoder_hidden" not in err.replace("--encoder-hidden", ""), err  # the flag, not Python's name (cli_third)
    assert not out.exists()


def test_train_refuses_more_members_than_memory_holds_before_training(tmp_path, capsys, monkeypatch) -> None:
    """`train --members K` built all K models before a check, then trained them one by one: past memory the process
    was killed (--members 100000) after hours of training, with nothing saved."""
    paths = _files(tmp_path)
    out = tmp_path / "ens.safetensors"
    argv = ["train", "-m", f"visual={paths['visual']}", "-m", f"auditory={paths['auditory']}", "-o", str(out), *TINY]
    assert main(argv + ["--members", "1"]) == 0
    params = gm.LearnableMultiModal.load(out).num_parameters()
    capsys.readouterr()
    # room for three trained members, not four, and for the copies of the one training for its 5 cross-validation
    # folds (counted since: past memory they aborted the process)
    monkeypatch.setattr(_validation, "memory_budget", lambda: 36 * params * 3 + folds_bytes(params, 5))
    built = []
    real_fit = gm.LearnableMultiModal.fit
    monkeypatch.setattr(gm.LearnableMultiModal, "fit", lambda self, *a, **k: built.append(1) or real_fit(self, *a, **k))
    assert main(argv + ["--members", "4", "--overwrite"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"grapheme-mm: error: --members: 4 models of {params:,} parameters, each with its training "
                          "state, take ") and err.endswith("expected fewer members"), err
    assert not built and gm.LearnableMultiModal.load(out).num_parameters() == params  # nothing trained, the file kept
    assert main(argv + ["--members", "3", "--overwrite"]) == 0
    assert len(load_models(out)) == 3


@pytest.mark.parametrize("first", ["ensemble", "model"])
def test_load_models_reads_a_file_replaced_by_the_other_kind_while_it_looked(tmp_path, monkeypatch, first) -> None:
    """A model checkpoint saved over an ensemble file (or the reverse) between load_models reading its tag and its
    loader opening it was "is not a grapheme-multimodal/ensemble/v1 file (... a model checkpoint ...)": the file a
    user's load_models reads, refused."""
    from grapheme_multimodal import ensemble

    path = tmp_path / "models.safetensors"
    other = tmp_path / "other.safetensors"
    ens, one = [_model(0), _model(1)], _model(2)
    save_ensemble(ens, path) if first == "ensemble" else one.save(path)
    one.save(other) if first == "ensemble" else save_ensemble(ens, other)
    real_tag = ensemble.format_tag
    calls = []

    def tag_then_replace(p):
        tag = real_tag(p)
        if not calls:
            other.replace(path)  # another process's atomic save
        calls.append(tag)
        return tag

    monkeypatch.setattr(ensemble, "format_tag", tag_then_replace)
    loaded = load_models(path)
    assert len(loaded) == (1 if first == "ensemble" else 2)
    now = one if first == "ensemble" else ens[1]
    np.testing.assert_array_equal(loaded[-1].state_dict()["binder.bias"], now.state_dict()["binder.bias"])


def test_members_of_other_graph_features_are_told_what_differs(tmp_path) -> None:
    """Members of the same widths that turn graphs into features differently were refused with "takes input widths
    [5, 18, ...]; expected ... (widths [5, 18, ...], the same graph features)": given and expected read the same."""
    from grapheme_multimodal.graph import GraphFeaturizer

    wl = _model(1, graph_features={"linguistic": GraphFeaturizer("wl", dim=18)})
    with pytest.raises(gm.InvalidValueError, match=r"^models\[1\]: turns linguistic graphs into features by "
                                                   r"GraphFeaturizer\(kind='wl'.*; expected .* models\[0\], which uses "
                                                   r"GraphFeaturizer\(kind='fingerprint'"):
        save_ensemble([_model(0), wl], tmp_path / "ens.safetensors")
    assert not (tmp_path / "ens.safetensors").exists()
