"""Ensembles in one file: save_ensemble / load_ensemble / load_models, and
grapheme-mm train --members K, embed and info on the file it writes."""

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import CheckpointError, InvalidValueError, LearnableMultiModal
from grapheme_multimodal.cli import main
from grapheme_multimodal.ensemble import ENSEMBLE_FORMAT, load_ensemble, load_models, save_ensemble
from grapheme_multimodal.io import format_tag, read_tagged_safetensors, write_tagged_safetensors

DIMS = {"visual": 5, "auditory": 3}


def _data(n=48, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 3))
    return {m: (z @ rng.normal(size=(3, d)) + 0.1 * rng.normal(size=(n, d))).astype(np.float32) for m, d in DIMS.items()}


def _trained(seed, epochs=2):
    model = LearnableMultiModal(input_dims=DIMS, embed_dim=16, hidden_dim=16, num_heads=2, seed=seed)
    model.fit(_data(), epochs=epochs, batch_size=16, progress=False, ema_decay=0.9)
    return model


@pytest.fixture(scope="module")
def members():
    return [_trained(0), _trained(1)]


def _same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        np.testing.assert_array_equal(sa[k], sb[k], err_msg=k)
    oa, ob = a.optimizer_state(), b.optimizer_state()
    assert (oa["step"], oa["rng_counter"]) == (ob["step"], ob["rng_counter"])
    untimed = [[{k: v for k, v in r.items() if k != "seconds"} for r in m.history] for m in (a, b)]
    assert untimed[0] == untimed[1] and a.epochs_trained == b.epochs_trained


def test_round_trip_gives_every_member_back(members, tmp_path):
    path = tmp_path / "ens.safetensors"
    save_ensemble(members, path)
    assert format_tag(path) == ENSEMBLE_FORMAT
    back = load_ensemble(path)
    assert len(back) == 2
    for a, b in zip(members, back):
        _same_state(a, b)
        assert b.weight_average is not None and b.weight_average.count == a.weight_average.count
    data = _data(seed=1)
    for a, b in zip(members, back):
        np.testing.assert_array_equal(a.encode_and_fuse(data)[1], b.encode_and_fuse(data)[1])
    assert [len(m) for m in (load_models(path),)] == [2]


def test_members_train_on_bit_for_bit_after_loading(tmp_path):
    """Each member resumes as LearnableMultiModal.load resumes a model."""
    ours, theirs = [_trained(3, epochs=1), _trained(4, epochs=1)], [_trained(3, epochs=1), _trained(4, epochs=1)]
    save_ensemble(ours, tmp_path / "e.safetensors")
    loaded = load_ensemble(tmp_path / "e.safetensors")
    for a, b in zip(theirs, loaded):
        a.fit(_data(), epochs=1, batch_size=16, progress=False, ema_decay=0.9)
        b.fit(_data(), epochs=1, batch_size=16, progress=False, ema_decay=0.9)
        _same_state(a, b)


def test_load_models_reads_either_kind_of_file(members, tmp_path):
    members[0].save(tmp_path / "one.safetensors")
    (one,) = load_models(tmp_path / "one.safetensors")
    _same_state(one, members[0])
    save_ensemble(members[:1], tmp_path / "e1.safetensors")  # an ensemble of one is still an ensemble file
    assert len(load_models(tmp_path / "e1.safetensors")) == 1
    with pytest.raises(FileNotFoundError, match="no file"):
        load_models(tmp_path / "missing.safetensors")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(CheckpointError, match="notes.txt"):
        load_models(tmp_path / "notes.txt")


def test_each_loader_names_the_other_for_the_other_file(members, tmp_path):
    save_ensemble(members, tmp_path / "e.safetensors")
    members[0].save(tmp_path / "one.safetensors")
    with pytest.raises(CheckpointError, match="an ensemble of models, which grapheme_multimodal.load_ensemble reads"):
        LearnableMultiModal.load(tmp_path / "e.safetensors")
    with pytest.raises(CheckpointError, match="a model checkpoint, which LearnableMultiModal.load reads"):
        load_ensemble(tmp_path / "one.safetensors")


def test_save_refuses_what_is_not_an_ensemble(members, tmp_path):
    path = tmp_path / "e.safetensors"
    with pytest.raises(InvalidValueError, match="models: expected at least one LearnableMultiModal, got none"):
        save_ensemble([], path)
    with pytest.raises(TypeError, match=r"models\[1\]: expected a LearnableMultiModal"):
        save_ensemble([members[0], "model.safetensors"], path)
    with pytest.raises(TypeError, match="models: expected a sequence of LearnableMultiModal"):
        save_ensemble(members[0], path)
    other = LearnableMultiModal(input_dims={"visual": 6, "auditory": 3}, embed_dim=16, hidden_dim=16, num_heads=2)
    with pytest.raises(InvalidValueError, match=r"models\[1\]: takes input widths \[6, 3,"):
        save_ensemble([members[0], other], path)
    with pytest.raises(TypeError, match="include_experience"):
        save_ensemble(members, path, include_experience="yes")
    assert not path.exists()  # nothing was written by a refused save


def test_a_refused_save_leaves_the_file_there_as_it_was(members, tmp_path):
    path = tmp_path / "e.safetensors"
    save_ensemble(members, path)
    before = path.read_bytes()
    with pytest.raises(InvalidValueError):
        save_ensemble([members[0], LearnableMultiModal(input_dims={"visual": 9})], path)
    assert path.read_bytes() == before


def test_corrupt_or_inconsistent_files_are_refused_by_name(members, tmp_path):
    path = tmp_path / "e.safetensors"
    save_ensemble(members, path)
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0xFF  # a tensor byte
    (tmp_path / "flipped.safetensors").write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="flipped.safetensors.*corrupt"):
        load_ensemble(tmp_path / "flipped.safetensors")
    tensors, meta = read_tagged_safetensors(path, ENSEMBLE_FORMAT)
    write_tagged_safetensors(tmp_path / "none.safetensors", {}, ENSEMBLE_FORMAT, {**meta, "members": []})
    with pytest.raises(CheckpointError, match="members: expected a non-empty list"):
        load_ensemble(tmp_path / "none.safetensors")
    # a member whose tensors are missing from the file
    kept = {k: v for k, v in tensors.items() if not k.startswith("member/1/")}
    write_tagged_safetensors(tmp_path / "short.safetensors", kept, ENSEMBLE_FORMAT, meta)
    with pytest.raises(CheckpointError, match="short.safetensors"):
        load_ensemble(tmp_path / "short.safetensors")
    # members that take different inputs, written past save_ensemble's check
    other = LearnableMultiModal(input_dims={"visual": 6, "auditory": 3}, embed_dim=16, hidden_dim=16, num_heads=2)
    from grapheme_multimodal.checkpoint import checkpoint_state

    t0, m0 = checkpoint_state(members[0], include_experience=False)
    t1, m1 = checkpoint_state(other, include_experience=False)
    mixed = {**{"member/0/" + k: v for k, v in t0.items()}, **{"member/1/" + k: v for k, v in t1.items()}}
    write_tagged_safetensors(tmp_path / "mixed.safetensors", mixed, ENSEMBLE_FORMAT,
                             {"library_version": gm.__version__, "members": [m0, m1]})
    with pytest.raises(CheckpointError, match=r"mixed.safetensors' is not a valid ensemble: members\[1\]: takes input widths"):
        load_ensemble(tmp_path / "mixed.safetensors")


def test_format_tag_never_raises(tmp_path):
    assert format_tag(tmp_path / "missing") is None
    assert format_tag(tmp_path) is None  # a folder
    (tmp_path / "short").write_bytes(b"\x05\x00")
    assert format_tag(tmp_path / "short") is None
    (tmp_path / "huge").write_bytes((2**62).to_bytes(8, "little") + b"{}")
    assert format_tag(tmp_path / "huge") is None
    (tmp_path / "list").write_bytes((2).to_bytes(8, "little") + b"[]")
    assert format_tag(tmp_path / "list") is None
    assert format_tag(12) is None


# ---------------------------------------------------------------- the CLI
def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def user_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("ens_cli")
    for m, x in _data(n=60).items():
        np.save(d / f"{m}.npy", x)
    return d


SMALL = ["--epochs", "2", "--batch-size", "16", "--embed-dim", "16", "--hidden-dim", "16", "--heads", "2", "--no-progress"]


def _files(d):
    return ["-m", f"visual={d / 'visual.npy'}", "-m", f"auditory={d / 'auditory.npy'}"]


def test_cli_members_are_the_models_of_their_seeds(user_files, capsys):
    """train --members 2 --seed 3 trains the models of seeds 6 and 7 (seed·K+j),
    each as train --seed 6 / --seed 7 would; embed puts their fused
    embeddings side by side (each / sqrt 2), averages their bindings and
    puts their hidden features side by side (each member's unit per row and
    modality, / sqrt 2, as EnsembleEmbedder); info describes both."""
    d = user_files
    ens = d / "ens.safetensors"
    code, out, err = run(capsys, "train", *_files(d), *SMALL, "--members", "2", "--seed", "3", "-o", ens)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("member 0 (seed 6): trained on 60 rows x 2 modalities for")
    assert lines[1].startswith("member 1 (seed 7): trained on 60 rows x 2 modalities for")
    assert lines[2] == f"saved {ens} (an ensemble of 2 models)"
    singles = []
    for seed in (6, 7):
        path = d / f"seed{seed}.safetensors"
        code, out, err = run(capsys, "train", *_files(d), *SMALL, "--seed", seed, "-o", path)
        assert code == 0, err
        singles.append(path)
    loaded = load_ensemble(ens)
    for member, single in zip(loaded, singles):
        _same_state(member, LearnableMultiModal.load(single))

    outs, printed = {}, {}
    for name, ckpt in (("ens", ens), ("a", singles[0]), ("b", singles[1])):
        code, out, err = run(capsys, "embed", ckpt, *_files(d), "-o", d / f"{name}.npy", "--bindings", d / f"{name}_s.npy",
                             "--hidden-features", d / f"{name}_h.npy", "--overwrite")
        assert code == 0, err
        printed[name] = out
        outs[name] = [np.load(d / f"{name}{suffix}.npy") for suffix in ("", "_s", "_h")]
    fused, strengths, hidden = outs["ens"]
    assert fused.shape == (60, 32) and "wrote fused embeddings (60, 32)" in printed["ens"]
    assert "wrote hidden features (60, 7, 512)" in printed["ens"]
    scale = np.float32(1 / np.sqrt(2))
    np.testing.assert_array_equal(fused, np.hstack([outs["a"][0], outs["b"][0]]) * scale)
    np.testing.assert_allclose(np.linalg.norm(fused, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(strengths, (outs["a"][1].astype(np.float64) + outs["b"][1]) / 2, rtol=1e-6)
    # each member's hidden features unit per row and modality (zeros where absent), then / sqrt 2: EnsembleEmbedder's
    units = []
    for single in (outs["a"][2], outs["b"][2]):
        norms = np.linalg.norm(single, axis=-1, keepdims=True)
        units.append(np.divide(single, norms, out=np.zeros_like(single), where=norms > 0))
    np.testing.assert_allclose(hidden, np.concatenate(units, axis=-1) * scale, rtol=1e-6, atol=1e-7)

    code, out, err = run(capsys, "info", ens)
    assert code == 0, err
    assert "ensemble of 2 models: embed puts their fused embeddings side by side (32 wide)" in out
    assert "member 0:\n  parameters:" in out and "member 1:\n  parameters:" in out
    assert "seed=6" in out and "seed=7" in out


def test_cli_one_member_is_the_plain_checkpoint(user_files, capsys):
    """--members 1 (the default) writes the model checkpoint it always did."""
    d = user_files
    code, out, err = run(capsys, "train", *_files(d), *SMALL, "--members", "1", "-o", d / "m1.safetensors")
    assert code == 0, err
    assert out.splitlines()[-1] == f"saved {d / 'm1.safetensors'}" and not out.startswith("member")
    LearnableMultiModal.load(d / "m1.safetensors")
    code, out, err = run(capsys, "info", d / "m1.safetensors")
    assert code == 0 and "ensemble" not in out and out.splitlines()[1].startswith("parameters:")


@pytest.mark.parametrize("argv, message", [
    (["--members", "0"], "grapheme-mm: error: --members: expected a positive int, got 0"),
    (["--members", "-2"], "grapheme-mm: error: --members: expected a positive int, got -2"),
    (["--members", "2", "--seed", str(2**63)], "--seed: expected an int in [0, 2**63) (member j trains with --seed * 2 + j)"),
])
def test_cli_members_refused_by_name(user_files, capsys, argv, message):
    out = user_files / "never.safetensors"
    code, _, err = run(capsys, "train", *_files(user_files), *SMALL, *argv, "-o", out)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_cli_embed_refuses_files_the_members_do_not_take(user_files, capsys):
    d = user_files
    ens = d / "ens2.safetensors"
    assert run(capsys, "train", *_files(d), *SMALL, "--members", "2", "-o", ens)[0] == 0
    np.save(d / "wide.npy", np.zeros((60, 9), np.float32))
    code, _, err = run(capsys, "embed", ens, "-m", f"visual={d / 'wide.npy'}", "-o", d / "never.npy")
    assert code == 2 and "visual" in err and "9 columns" in err and not (d / "never.npy").exists()


@pytest.mark.ray
@pytest.mark.timeout(180)
def test_cli_embed_with_ray_gives_the_ensemble_bits(user_files, ray_session, capsys):
    d = user_files
    ens = d / "ens_ray.safetensors"
    assert run(capsys, "train", *_files(d), *SMALL, "--members", "2", "-o", ens)[0] == 0
    local, remote = d / "ray_local.npy", d / "ray_remote.npy"
    assert run(capsys, "embed", ens, *_files(d), "-o", local, "--bindings", d / "rl_s.npy")[0] == 0
    code, _, err = run(capsys, "embed", ens, *_files(d), "-o", remote, "--ray", "--batch-size", "7", "--bindings", d / "rr_s.npy")
    assert code == 0, err
    np.testing.assert_array_equal(np.load(remote), np.load(local))
    np.testing.assert_array_equal(np.load(d / "rr_s.npy"), np.load(d / "rl_s.npy"))


# main_only (.ci/python-versions.sh): two models trained on the real data, as the `slow` demo; the
# command line, the ensemble file and the demo's folder are tested on every Python by the tests around
@pytest.mark.main_only
def test_demo_members_trains_measures_and_saves_an_ensemble(tmp_path, capsys):
    """demo --members 2 (two epochs here, to be quick): the table is the
    ensemble's, the checkpoint holds both members, of seeds 2·seed + j."""
    from grapheme_multimodal.datasets import load_multiple_features

    try:
        load_multiple_features()
    except (FileNotFoundError, ModuleNotFoundError) as err:
        pytest.skip(str(err))
    code, out, err = run(capsys, "demo", "--out", tmp_path / "demo", "--no-progress", "--epochs", "2", "--members", "2",
                         "--seed", "1")
    assert code == 0, err
    assert "trained 2 models of" in out and "(seeds 2, 3;" in out and "measure (held-out 400 digits)" in out
    members = load_ensemble(tmp_path / "demo" / "model.safetensors")
    assert [m.config.seed for m in members] == [2, 3] and all(m.epochs_trained == 2 for m in members)
    for name in ("training_curves.png", "attention_by_digit.png"):
        assert (tmp_path / "demo" / name).stat().st_size > 0
