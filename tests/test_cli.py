"""grapheme-mm end to end: every subcommand on small data, every user error
ends with one clear line and a non-zero exit."""

import gc
import os
import subprocess
import sys

import numpy as np
import pytest

from grapheme_multimodal.cli import main
from grapheme_multimodal.datasets import INSTALL_HINT


@pytest.fixture
def user_files(tmp_path):
    """Three aligned modality files: .npy, .csv (with header), .txt."""
    rng = np.random.default_rng(0)
    n = 60
    z = rng.normal(size=(n, 4))
    np.save(tmp_path / "images.npy", (z @ rng.normal(size=(4, 10))).astype(np.float32))
    sound = z @ rng.normal(size=(4, 5))
    header = ",".join(f"f{i}" for i in range(5))
    np.savetxt(tmp_path / "sound.csv", sound, delimiter=",", header=header, comments="")
    words = ["cat", "dog", "bird", "fish", "horse", "mouse"]
    texts = [f"{words[i % 6]} number {i}" for i in range(n)]
    (tmp_path / "text.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    return tmp_path


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_train_embed_info(user_files, capsys):
    ckpt = user_files / "model.safetensors"
    code, out, err = run(
        capsys,
        "train",
        "--modality", f"visual={user_files / 'images.npy'}",
        "--modality", f"auditory={user_files / 'sound.csv'}",
        "-m", f"linguistic={user_files / 'text.txt'}",
        "--epochs", "3", "--batch-size", "16", "--embed-dim", "16", "--hidden-dim", "16", "--heads", "2",
        "--validation-split", "0.2", "--early-stopping", "5", "--wl-dim", "32", "--min-validation-rows", "12",
        "--output", str(ckpt), "--no-progress",
    )
    assert code == 0, err
    assert "trained on 48 rows x 3 modalities for 3 epochs" in out and ckpt.exists()  # 12 held out
    # The model options not given are the recipe's.
    from grapheme_multimodal import LearnableMultiModal, uci

    recipe, config = uci.TrainingSettings(), LearnableMultiModal.load(ckpt).config
    for name in ("fused_neighbors", "fused_neighbor_space", "input_distance", "contrastive_neighbors", "encoder_hidden", "learnable_temperature",
                 "fusion_residual", "contrastive_pair_power", "encoder_skip", "neighborhood_neighbors", "neighborhood_temperature"):
        assert getattr(config, name) == recipe.model_options()[name], name  # encoder_skip: the recipe's None resolved
    assert LearnableMultiModal.load(ckpt).weight_average.decay == recipe.ema_decay  # the recipe's training too

    code, out, err = run(capsys, "info", str(ckpt))
    assert code == 0, err
    assert "parameters:" in out and "3 epochs" in out and "vectors of 32 or graphs/text via wl, standardised" in out
    assert "weights: exponential moving average over 3 epochs (decay 0.9)" in out

    emb_path, bind_path, hidden_path = user_files / "fused.npy", user_files / "bind.npy", user_files / "hidden.npy"
    code, out, err = run(
        capsys, "embed", str(ckpt),
        "-m", f"visual={user_files / 'images.npy'}", "-m", f"linguistic={user_files / 'text.txt'}",
        "-o", str(emb_path), "--bindings", str(bind_path), "--hidden-features", str(hidden_path),
    )
    assert code == 0, err
    fused = np.load(emb_path)
    assert fused.shape == (60, 16) and np.allclose(np.linalg.norm(fused, axis=1), 1, atol=1e-5)
    bindings = np.load(bind_path)
    assert bindings.shape == (60, 7, 7) and (bindings[:, 0, 2] > 0).all() and (bindings[:, 1] == 0).all()
    hidden = np.load(hidden_path)
    assert f"wrote hidden features (60, 7, {recipe.encoder_hidden[-1]})" in out
    assert hidden.shape == (60, 7, recipe.encoder_hidden[-1]) and np.isfinite(hidden).all()
    assert hidden[:, [0, 2]].any(axis=2).all() and not hidden[:, [1, 3, 4, 5, 6]].any()  # visual, linguistic given
    images = np.load(user_files / "images.npy")
    np.testing.assert_array_equal(hidden[:, 0], LearnableMultiModal.load(ckpt).hidden_features({"visual": images})[:, 0])


def test_embed_hidden_features_needs_hidden_layers(user_files, capsys):
    from grapheme_multimodal import LearnableMultiModal

    ckpt, out_path = user_files / "original.safetensors", user_files / "h.npy"
    LearnableMultiModal(input_dims={"visual": 10}).save(ckpt)
    code, _, err = run(capsys, "embed", str(ckpt), "-m", f"visual={user_files / 'images.npy'}",
                       "--hidden-features", str(out_path), "-o", str(user_files / "f.npy"))
    assert code == 2 and "--hidden-features" in err and "no hidden layers" in err
    assert not out_path.exists() and not (user_files / "f.npy").exists()


@pytest.fixture
def trained_ckpt(user_files, capsys):
    ckpt = user_files / "m.safetensors"
    code, _, err = run(
        capsys, "train", "-m", f"visual={user_files / 'images.npy'}", "-m", f"auditory={user_files / 'sound.csv'}",
        "--epochs", "1", "--embed-dim", "8", "--hidden-dim", "8", "--heads", "2", "-o", str(ckpt), "--no-progress",
        "--encoder-hidden", "8", "--encoder-output-dim", "8",  # narrow: the tests read the file, not the model's widths
    )
    assert code == 0, err
    return ckpt


def user_error_cases(d, ckpt):
    (d / "short.npy").write_bytes(b"")
    np.save(d / "ten_rows.npy", np.zeros((10, 10), np.float32))
    (d / "words.csv").write_text("a,b\n1,x\n2,3\n")
    (d / "ragged.csv").write_text("1,2\n3\n")
    np.save(d / "wide.npy", np.zeros((60, 11), np.float32))
    np.savez(d / "two.npz", a=np.zeros((60, 10)), b=np.ones((60, 10)))
    (d / "notes.docx").write_text("x")
    v = f"visual={d / 'images.npy'}"
    return [
        (["train", "-m", f"visual={d / 'missing.npy'}"], "file not found"),
        (["train", "-m", v, "-m", f"auditory={d / 'ten_rows.npy'}"], "not aligned"),
        (["train", "-m", f"smell={d / 'images.npy'}"], "unknown modality 'smell'"),
        (["train", "-m", v, "-m", f"auditory={d / 'words.csv'}"], "non-numeric value 'x'"),
        (["train", "-m", v, "-m", f"auditory={d / 'ragged.csv'}"], "row 1 (line 2) has 1 column, expected 2"),
        (["train", "-m", v, "-m", f"auditory={d / 'two.npz'}"], "pick one with"),
        (["train", "-m", v, "-m", f"auditory={d / 'two.npz'}:c"], "has no array 'c'"),
        (["train", "-m", v, "-m", f"auditory={d / 'notes.docx'}"], "unsupported type '.docx'"),
        (["train", "-m", "visual"], "expected NAME=PATH"),
        (["train", "-m", v, "-m", v], "given twice"),
        (["train", "-m", v, "--objectives", "speed=1"], "unknown objective 'speed'"),
        (["train", "-m", v, "--validation-split", "0", "--early-stopping", "2"], "needs --validation-split"),
        (["train", "-m", v, "--heads", "3"], "not divisible"),
        (["train", "-m", v, "--epochs", "-2"], "epochs"),
        (["train", "-m", v, "--cv-folds", "-3"], "--cv-folds: expected an int >= 0, got -3"),
        (["train", "-m", v, "--min-validation-rows", "-1"], "--min-validation-rows"),
        (["embed", str(ckpt), "-m", f"visual={d / 'wide.npy'}"], "different config"),
        (["embed", str(ckpt), "-m", f"auditory={d / 'text.txt'}"], "not text"),
        (["embed", str(d / "images.npy"), "-m", v], "not a readable grapheme-multimodal/checkpoint/v1 file"),
        (["info", str(d / "nope.safetensors")], "no file at"),
    ]


def test_user_errors_are_one_line(user_files, trained_ckpt, capsys):
    for argv, words in user_error_cases(user_files, trained_ckpt):
        code, out, err = run(capsys, *argv)
        assert code == 2, (argv, out, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("grapheme-mm: error: "), (argv, err)
        assert words in lines[0], (argv, lines[0])
        assert "Traceback" not in err


def test_missing_demo_data_is_one_line(monkeypatch, tmp_path, capsys):
    import importlib.metadata

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "files", not_installed)
    code, _, err = run(capsys, "demo", "--out", str(tmp_path), "--no-progress")
    assert code == 2 and err.count("\n") == 1 and INSTALL_HINT in err


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--seed", "-1"], "--seed: expected an int in [0, 2**64), got -1"),
        (["--members", "0"], "--members: expected a positive int, got 0"),
        (["--members", "3", "--seed", str(2**63)], "--seed: expected an int in [0, 2**62) (member j trains with --seed * 3 + j)"),
        (["--out", "{d}/afile"], "--out: '{d}/afile' is not a folder"),
        (["--json", "{d}/missing/t.json"], "--json: directory '{d}/missing' does not exist"),
        (["--json", "{d}/runs/model.safetensors"], "--json: {d}/runs/model.safetensors is also the file of --out's checkpoint"),
        (["--json", "{d}/runs"], "--json: '{d}/runs' is a directory"),
        (["--out", "{d}/fifo_in"], "--out: '{d}/fifo_in/training_curves.png' is a FIFO"),
        # an earlier run's outputs were replaced without a word
        (["--out", "{d}/earlier"], "--out's checkpoint: {d}/earlier/model.safetensors already exists; pass --overwrite"),
        (["--json", "{d}/afile"], "--json: {d}/afile already exists; pass --overwrite to replace it"),
        (["--out", "{d}/new/deeper", "--json", "{d}/afile"], "--json: {d}/afile already exists"),
    ],
)
def test_demo_refuses_what_would_fail_after_training_before_it(argv, words, tmp_path, capsys, monkeypatch):
    """A bad --json failed only after the whole run (the table lost), a file
    as --out read 'File exists', a bad --seed came after the data was read."""
    import grapheme_multimodal.demo as demo

    def no_training(*args, **kwargs):
        raise AssertionError("the demo started before its arguments were checked")

    monkeypatch.setattr(demo, "load_multiple_features", no_training)
    (tmp_path / "afile").write_text("x")
    (tmp_path / "fifo_in").mkdir()
    os.mkfifo(tmp_path / "fifo_in" / "training_curves.png")
    (tmp_path / "earlier").mkdir()
    (tmp_path / "earlier" / "model.safetensors").write_bytes(b"an earlier run")
    argv = [a.format(d=tmp_path) for a in argv]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "runs")]
    code, _, err = run(capsys, "demo", "--no-progress", *argv)
    assert code == 2 and err.count("\n") == 1 and words.format(d=tmp_path) in err, err
    for made in ("runs", "new"):
        assert not (tmp_path / made).exists(), f"the refused run left the folder {made} it had made"


def console_script() -> str:
    """The installed ``grapheme-mm`` of this interpreter (found in its own
    scripts folder, so the test does not depend on an activated venv/PATH)."""
    import os
    import shutil
    import sysconfig

    folders = [sysconfig.get_path("scripts"), os.path.dirname(sys.executable)]
    found = next((shutil.which("grapheme-mm", path=f) for f in folders if shutil.which("grapheme-mm", path=f)), None)
    assert found, f"grapheme-mm is not installed in {folders}"
    return found


def test_console_script_and_module_entry_points(tmp_path):
    for cmd in ([console_script(), "--version"], [sys.executable, "-m", "grapheme_multimodal", "--version"]):
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and "grapheme-mm" in done.stdout
    done = subprocess.run([sys.executable, "-m", "grapheme_multimodal", "info"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.splitlines() == [
        "grapheme-mm: error: the following arguments are required: checkpoint; see grapheme-mm info --help"]


@pytest.mark.ray
@pytest.mark.timeout(120)
def test_train_on_ray_workers_and_embed_with_ray(user_files, ray_session, capsys):
    """--workers N trains on the session's Ray (as distributed.fit); embed
    --ray writes the same fused embeddings, in row order, as embed."""
    ckpt = user_files / "model.safetensors"
    files = ["-m", f"visual={user_files / 'images.npy'}", "-m", f"linguistic={user_files / 'text.txt'}"]
    code, out, err = run(
        capsys, "train", *files, "--epochs", "2", "--batch-size", "16", "--embed-dim", "16", "--hidden-dim", "16",
        "--heads", "2", "--wl-dim", "32", "--workers", "2", "--output", str(ckpt), "--no-progress",
    )
    assert code == 0, err
    # 6 of 60 would be held out, too few to stop on: 5 folds (in this process)
    # choose the epochs, then the workers train on all 60 rows
    assert "trained on 60 rows x 2 modalities for" in out and "chosen by 5-fold cross-validation" in out
    local, remote = user_files / "local.npy", user_files / "ray.npy"
    assert run(capsys, "embed", str(ckpt), *files, "-o", str(local), "--bindings", str(user_files / "b1.npy"),
               "--hidden-features", str(user_files / "h1.npy"))[0] == 0
    code, out, err = run(
        capsys, "embed", str(ckpt), *files, "-o", str(remote), "--ray", "--batch-size", "7",  # a pool Ray Data scales to the CPUs
        "--bindings", str(user_files / "b2.npy"), "--hidden-features", str(user_files / "h2.npy"),
    )
    assert code == 0, err
    np.testing.assert_array_equal(np.load(remote), np.load(local))
    np.testing.assert_array_equal(np.load(user_files / "b2.npy"), np.load(user_files / "b1.npy"))
    np.testing.assert_array_equal(np.load(user_files / "h2.npy"), np.load(user_files / "h1.npy"))
    code, _, err = run(capsys, "embed", str(ckpt), *files, "--workers", "2")
    assert code == 2 and "only used with --ray" in err


@pytest.mark.parametrize(
    "command, words",
    [
        (["train", "-o", "{d}/images.npy"], "--output: {d}/images.npy is the visual input file"),
        (["train", "-o", "{d}/sound.csv"], "--output: {d}/sound.csv is the auditory input file"),
        (["embed", "{ckpt}", "-o", "{ckpt}"], "--output: {ckpt} is the checkpoint"),
        (["embed", "{ckpt}", "-o", "{d}/f.npy", "--bindings", "{up}/f.npy"], "--bindings: {up}/f.npy is also the file of --output"),
        (["embed", "{ckpt}", "-o", "{d}/f.npy", "--hidden-features", "{d}/sound.csv"], "--hidden-features: {d}/sound.csv is the auditory"),
        (["train", "-o", "{d}/no/such/dir/m.safetensors"], "--output: directory"),
        (["train", "-o", "{d}"], "is a directory"),
        (["embed", "{ckpt}", "-o", "{d}/missing/f.npy"], "--output: directory"),
        # an earlier run's outputs were replaced without a word
        (["train", "-o", "{ckpt}"], "--output: {ckpt} already exists; pass --overwrite to replace it, or choose another name"),
        (["embed", "{ckpt}", "-o", "{d}/f.npy", "--bindings", "{d}/text.txt"], "--bindings: {d}/text.txt already exists"),
    ],
)
def test_outputs_that_would_lose_work_or_data_are_refused_first(user_files, trained_ckpt, capsys, monkeypatch, command, words):
    """An output naming an input (a modality file, the checkpoint) or another
    output, or that cannot be written, was found only when written: after
    training (the run lost), or by overwriting the user's data or the first
    output. Now refused before any work, every file as it was."""
    import grapheme_multimodal.cli as cli

    def no_training(*args, **kwargs):
        raise AssertionError("trained before the output was checked")

    monkeypatch.setattr(cli, "fit_with_stopping", no_training)
    before = {p: p.read_bytes() for p in user_files.iterdir() if p.is_file()}
    fill = {"d": str(user_files), "up": f"{user_files}/../{user_files.name}", "ckpt": str(trained_ckpt)}
    argv = [a.format(**fill) for a in command]
    at = 1 if argv[0] == "train" else 2  # after embed's checkpoint
    argv[at:at] = ["-m", f"visual={user_files / 'images.npy'}", "-m", f"auditory={user_files / 'sound.csv'}"]
    code, out, err = run(capsys, *argv, *(["--no-progress"] if argv[0] == "train" else []))
    assert code == 2 and err.count("\n") == 1 and err.startswith("grapheme-mm: error: "), err
    assert words.format(**fill) in err, err
    assert {p: p.read_bytes() for p in user_files.iterdir() if p.is_file()} == before


def test_an_existing_output_is_replaced_only_with_overwrite(user_files, capsys, monkeypatch):
    """train's default output (model.safetensors in the working folder) and
    embed's (embeddings.npy) replaced an earlier run's files without a word;
    now refused before any work unless --overwrite, which replaces them."""
    monkeypatch.chdir(user_files)
    files = ["-m", f"visual={user_files / 'images.npy'}", "-m", f"auditory={user_files / 'sound.csv'}"]
    train = ["train", *files, "--epochs", "1", "--embed-dim", "8", "--hidden-dim", "8", "--heads", "2", "--no-progress"]
    for argv, name in ((train, "model.safetensors"), (["embed", str(user_files / "images.npy"), *files], "embeddings.npy")):
        (user_files / name).write_bytes(b"an earlier run")
        code, out, err = run(capsys, *argv)
        assert code == 2 and err == f"grapheme-mm: error: --output: {name} already exists; pass --overwrite to replace it, or choose another name\n"
        assert (user_files / name).read_bytes() == b"an earlier run"
    code, out, err = run(capsys, *train, "--overwrite")
    assert code == 0 and "saved model.safetensors" in out, err
    code, out, err = run(capsys, "embed", "model.safetensors", *files, "--overwrite")
    assert code == 0 and np.load(user_files / "embeddings.npy").shape == (60, 8), err


def test_embed_batch_size_splits_the_rows_in_process(user_files, trained_ckpt, capsys):
    """--batch-size was read only with --ray and silently ignored without it;
    in process it now bounds the rows per model call, with the same bits."""
    files = ["-m", f"visual={user_files / 'images.npy'}", "-m", f"auditory={user_files / 'sound.csv'}"]
    written = {}
    for name, extra in (("whole", []), ("chunked", ["--batch-size", "7"])):
        paths = {flag: user_files / f"{name}{flag}.npy" for flag in ("-o", "--bindings", "--hidden-features")}
        args = [arg for flag, path in paths.items() for arg in (flag, str(path))]
        code, out, err = run(capsys, "embed", str(trained_ckpt), *files, *args, *extra)
        assert code == 0, err
        written[name] = {flag: np.load(path) for flag, path in paths.items()}
    for flag, whole in written["whole"].items():
        assert whole.shape[0] == 60
        np.testing.assert_array_equal(written["chunked"][flag], whole, err_msg=flag)
    code, _, err = run(capsys, "embed", str(trained_ckpt), *files, "--batch-size", "0", "-o", str(user_files / "f.npy"))
    assert code == 2 and "--batch-size: expected a positive int, got 0" in err
    assert not (user_files / "f.npy").exists()


def test_embed_on_ray_refuses_a_bad_batch_size_before_starting_ray(user_files, trained_ckpt, capsys, monkeypatch):
    pytest.importorskip("ray")
    import grapheme_multimodal.cli as cli

    def no_ray(address):
        raise AssertionError("Ray started before --batch-size was checked")

    monkeypatch.setattr(cli, "_ray_cluster", no_ray)
    code, _, err = run(capsys, "embed", str(trained_ckpt), "-m", f"visual={user_files / 'images.npy'}", "--ray",
                       "--batch-size", "-1", "-o", str(user_files / "f.npy"))
    assert code == 2 and "--batch-size: expected a positive int, got -1" in err


@pytest.mark.ray
@pytest.mark.timeout(120)
def test_embed_on_ray_reports_what_the_model_refuses_in_one_line(user_files, ray_session, capsys):
    """Inputs the model refuses in an actor (values that overflow float32 in
    the encoder) were a Ray traceback and exit status 1; now the model's own
    error, one line and 2, as without --ray."""
    import ray.data

    from grapheme_multimodal import LearnableMultiModal

    ckpt = user_files / "unscaled.safetensors"
    model = LearnableMultiModal(input_dims={"visual": 10}, seed=0)
    model.set_normalization("visual", np.zeros(10), np.full(10, 0.5))  # 3e38 / 0.5 overflows float32
    model.save(ckpt)
    np.save(user_files / "huge.npy", np.full((60, 10), 3e38, np.float32))
    argv = ["embed", str(ckpt), "-m", f"visual={user_files / 'huge.npy'}", "-o", str(user_files / "f.npy")]
    local = run(capsys, *argv)
    code, _, err = run(capsys, *argv, "--ray", "--workers", "1")
    assert local[0] == code == 2 and "overflows float32" in err
    assert err.strip() == local[2].strip(), (err, local[2])
    assert not (user_files / "f.npy").exists()
    assert ray.data.DataContext.get_current().raise_original_map_exception is False  # the CLI's setting is undone
    gc.collect()  # a failed Ray Data run frees its actor pool when its reference cycles are collected


@pytest.mark.ray
@pytest.mark.timeout(300)
def test_embed_on_ray_prints_its_result_without_ray_data_s_info_lines(user_files):
    """Ray Data logs its execution plan and, where stdout is not a terminal,
    its progress line by line at INFO: a dozen lines around the one the
    command prints. They are off for the command; Ray's warnings and errors
    still show. In a subprocess: the CLI starts its own local Ray there, as
    a user's shell does (this session's Ray logs elsewhere)."""
    import os
    import subprocess
    import sys

    from grapheme_multimodal import LearnableMultiModal

    ckpt = user_files / "small.safetensors"
    LearnableMultiModal(embed_dim=8, hidden_dim=8, num_heads=2, input_dims={"visual": 10}, seed=0).save(ckpt)
    env = dict(os.environ, RAY_DEFAULT_OBJECT_STORE_MEMORY_PROPORTION="0.02")  # a small object store, as the other tests'
    env.pop("RAY_ADDRESS", None)
    argv = ["embed", str(ckpt), "-m", f"visual={user_files / 'images.npy'}", "-o", str(user_files / "f.npy"),
            "--ray", "--workers", "1"]
    done = subprocess.run([sys.executable, "-m", "grapheme_multimodal", *argv], capture_output=True, text=True,
                          timeout=240, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines() == [f"wrote fused embeddings (60, 8) to {user_files / 'f.npy'}"]
    info = [line for line in (done.stdout + done.stderr).splitlines() if "INFO" in line.split()]
    assert not info, info
    assert np.load(user_files / "f.npy").shape == (60, 8)


def test_train_without_hidden_layers_leaves_out_the_recipes_skip_path(capsys, user_files):
    """The recipe's encoders have a skip path, which needs hidden layers and a
    shared head: the original model's flags (no hidden layers, no head) get
    encoders without it rather than an error about a flag nobody gave, and
    --encoder-skip given with them is still refused, naming it."""
    from grapheme_multimodal import LearnableMultiModal

    ckpt = user_files / "plain.safetensors"
    flags = ["train", "-m", f"visual={user_files / 'images.npy'}", "-m", f"auditory={user_files / 'sound.csv'}",
             "--epochs", "1", "--embed-dim", "16", "--hidden-dim", "16", "--heads", "2", "--no-progress",
             "--encoder-hidden", "", "--encoder-hidden-dropout", "0", "--shared-head", "", "-o", str(ckpt)]
    code, out, err = run(capsys, *flags)
    assert code == 0, err
    assert LearnableMultiModal.load(ckpt).config.encoder_skip is False
    code, out, err = run(capsys, *flags, "--encoder-skip", "--overwrite")
    assert code == 2 and "--encoder-skip: got True" in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("files, options, words", [
    (["images.npy"], ["--wl-dim", "32"], "--wl-dim: no modality file is .txt"),
    (["images.npy", "text.txt"], ["--text-features", "fingerprint", "--wl-dim", "32"], "--wl-dim: WL features only"),
])
def test_a_wl_dim_that_would_do_nothing_is_refused(user_files, capsys, files, options, words):
    # was ignored: a user asking for 32-long text features trained on something else
    slots = dict(zip(["visual", "linguistic"], files))
    argv = ["train", *[a for m, f in slots.items() for a in ("-m", f"{m}={user_files / f}")], "--epochs", "1",
            "--output", str(user_files / "m.safetensors"), "--no-progress", *options]
    code, _, err = run(capsys, *argv)
    assert code == 2 and words in err and not (user_files / "m.safetensors").exists()


@pytest.mark.parametrize("order", ["C", "F", "strided"])
def test_embed_writes_the_bytes_np_save_gives(tmp_path, order):
    """embed's .npy files are written by np.save into the file itself (no
    bytes copy of the array first): the same bytes as np.save to memory."""
    import io

    from grapheme_multimodal.cli import _save_npy

    array = np.random.default_rng(0).normal(size=(300, 7, 5)).astype(np.float32)
    array = {"C": array, "F": np.asfortranarray(array), "strided": array[::2, :, 1:]}[order]
    expected = io.BytesIO()
    np.save(expected, array)
    _save_npy(tmp_path / "out.npy", array)
    assert (tmp_path / "out.npy").read_bytes() == expected.getvalue()


def test_train_counts_one_modality_and_one_epoch_in_the_singular(user_files, capsys):
    """The summary printed "1 modalities" and "1 epochs"."""
    code, out, err = run(
        capsys, "train", "-m", f"visual={user_files / 'images.npy'}", "--epochs", "1", "--validation-split", "0",
        "--embed-dim", "8", "--hidden-dim", "8", "--heads", "1", "--output", str(user_files / "one.safetensors"),
        "--no-progress",
    )
    assert code == 0, err
    assert "trained on 60 rows x 1 modality for 1 epoch: loss " in out, out
    # and info of that model: "training: 1 epochs" was printed
    code, out, err = run(capsys, "info", str(user_files / "one.safetensors"))
    assert code == 0, err
    assert "training: 1 epoch run, " in out and "1 epochs" not in out, out
