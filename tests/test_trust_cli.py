"""Issue 11 for the command line: every user mistake is one line
``grapheme-mm: error: ...`` and exit status 2 — bad files, bad flags, a full
disk — nothing non-finite is written, and the progress bar redraws at tqdm's
interval. Cases that could hang or crash run in a subprocess."""

from __future__ import annotations

import os
import resource
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import grapheme_multimodal as gm
from grapheme_multimodal.cli import main


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    np.save(d / "a.npy", rng.normal(size=(24, 6)).astype(np.float32))
    np.save(d / "b.npy", rng.normal(size=(24, 4)))
    (d / "empty.npy").write_bytes(b"")
    (d / "empty.npz").write_bytes(b"")
    (d / "garbage.npz").write_bytes(b"PK\x03\x04" + bytes(range(256)) * 4)
    np.save(d / "complex.npy", np.ones((24, 4), complex))
    np.save(d / "zero_rows.npy", np.zeros((0, 4), np.float32))
    np.save(d / "object.npy", np.array([[1]], dtype=object), allow_pickle=True)
    (d / "header_only.csv").write_text("f0,f1,f2\n")
    (d / "latin1.csv").write_bytes("x,y\n1,2\ncafé,3\n".encode("latin-1"))
    (d / "huge.csv").write_text("a,b\n" + "".join("1e300,2\n" if i == 5 else "1,2\n" for i in range(24)))
    (d / "nan.csv").write_text("".join("nan,2\n" if i == 3 else "1,2\n" for i in range(24)))
    # pandas' defaults: DataFrame.to_csv() heads a row index with an empty cell (read as a feature), and
    # to_csv(index=False) writes the default column names 0, 1, 2 (read as an event)
    (d / "pandas_index.csv").write_text(",0,1,2\n" + "".join(f"{i},0.5,1.5,2.5\n" for i in range(24)))
    (d / "pandas_columns.csv").write_text("0,1,2\n" + "0.5,1.5,2.5\n" * 24)
    (d / "named.csv").write_text("x,y,z\n" + "0.5,1.5,2.5\n" * 24)
    (d / "data_0_1.csv").write_text("0,1\n" + "1,0\n" * 23)  # two columns: 0, 1 is data (a one-hot row)
    (d / "empty.txt").write_text("")
    with (d / "forged.npy").open("wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (10**12, 4)})
        f.write(b"\0" * 64)
    (d / "folder.npy").mkdir()
    os.mkfifo(d / "pipe.npy")
    assert main(["train", "-m", f"visual={d / 'a.npy'}", "-m", f"auditory={d / 'b.npy'}", "--epochs", "1",
                 "--embed-dim", "8", "--hidden-dim", "8", "--heads", "2", "-o", str(d / "m.safetensors"), "--no-progress"]) == 0
    from grapheme_multimodal.checkpoint import FILE_FORMAT, checkpoint_state
    from grapheme_multimodal.io import write_tagged_safetensors
    from safetensors.numpy import save

    tensors, meta = checkpoint_state(gm.LearnableMultiModal.load(d / "m.safetensors"))
    tensors["normalization/visual/mean"] = np.zeros(6, np.float32)
    tensors["normalization/visual/std"] = np.full(6, 1e-44, np.float32)  # written as a file: set_normalization may refuse it
    write_tagged_safetensors(d / "tiny_std.safetensors", tensors, FILE_FORMAT, meta)

    (d / "nested.safetensors").write_bytes(
        save({"x": np.zeros(1, np.float32)}, metadata={"format": "grapheme-multimodal/checkpoint/v1", "config": "[" * 100000 + "]" * 100000})
    )
    return d


def one_line_error(capsys, argv, *words) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, (argv, err)
    assert len(lines) == 1 and lines[0].startswith("grapheme-mm: error: "), (argv, err)
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


@pytest.mark.parametrize(
    "spec, words",
    [
        ("empty.npy", ["empty.npy", "not a numeric .npy file"]),
        ("empty.npz", ["empty.npz", "not a readable .npz file"]),
        ("garbage.npz", ["garbage.npz", "not a readable .npz file"]),
        ("complex.npy", ["complex", "expected real numbers"]),
        ("zero_rows.npy", ["no rows"]),
        ("object.npy", ["object", "expected real numbers"]),
        ("header_only.csv", ["header but no data rows"]),
        ("latin1.csv", ["latin1.csv", "not UTF-8"]),
        ("huge.csv", ["row 5", "too large for float32"]),
        ("nan.csv", ["nan.csv: row 3 (line 4) has the value 'nan' (column 0 of 2)", "not a number (NaN)"]),
        ("pandas_index.csv", ["pandas_index.csv", "first cell is empty", "to_csv(index=False)"]),
        ("pandas_columns.csv", ["pandas_columns.csv", "first row is 0, 1, ..., 2", "to_csv(header=False)"]),
        ("empty.txt", ["has no lines"]),
        ("forged.npy", ["forged.npy", "truncated or corrupt"]),
        ("folder.npy", ["is a directory"]),
    ],
)
def test_bad_modality_files_are_one_line(files, capsys, spec, words) -> None:
    one_line_error(capsys, ["train", "-m", f"visual={files / 'a.npy'}", "-m", f"auditory={files / spec}", "--no-progress"], *words)


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--lr", "1e300"], ["--lr: ", "too large for float32"]),
        (["--lr", "nan"], ["--lr: "]),
        (["--lr", "-1"], ["--lr: "]),
        # argparse took these for flags ("--lr: expected one argument"): values given, called missing
        (["--lr", "-1e-3"], ["--lr: ", "-0.001"]),
        (["--lr", "-inf"], ["--lr: ", "-inf"]),
        (["--fusion-residual", "-1e308"], ["--fusion-residual: ", "-1e+308"]),
        (["--epochs", "-5"], ["--epochs: ", "-5"]),
        (["--modality-dropout", "nan"], ["--modality-dropout: "]),
        # the model's and fit's errors named their Python arguments (learning_rate), not the flags
        (["--heads", "3"], ["--heads: "]),
        (["--encoder-input-dropout", "1.5"], ["--encoder-input-dropout: "]),
        (["--temperature", "0"], ["--temperature: "]),
        (["--validation-split", "inf"], ["--validation-split"]),
        (["--objectives", "contrastive=nan"], ["contrastive"]),
        (["--objectives", "contrastive=1e400"], ["contrastive"]),
        # took the last of the two weights without a word
        (["--objectives", "contrastive=1,contrastive=2"],
         ["--objectives: 'contrastive' is given more than once in 'contrastive=1,contrastive=2'", "expected each objective once"]),
        (["--objectives", "contrastive, binding=0.5,contrastive=0"], ["--objectives: 'contrastive' is given more than once"]),
        (["--batch-size", "0"], ["--batch-size"]),
        (["--wl-dim", "-3"], ["--wl-dim"]),
    ],
)
def test_bad_flags_are_one_line(files, capsys, flags, words) -> None:
    one_line_error(capsys, ["train", "-m", f"visual={files / 'a.npy'}", "--no-progress", "--epochs", "1", *flags], *words)


def argparse_error(capsys, argv) -> str:
    """What argparse's refusal of ``argv`` prints: exit status 2 (argparse's), one line."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert exit_.value.code == 2, (argv, err)
    assert len(lines) == 1 and lines[0].startswith("grapheme-mm: error: "), (argv, err)
    return lines[0]


@pytest.mark.parametrize(
    "argv, words",
    [
        (["train", "-m", "visual=a.npy", "--epochs", "abc"], ["--epochs: expected an int, got 'abc'", "grapheme-mm train --help"]),
        (["train", "-m", "visual=a.npy", "--epochs", "2.5"], ["--epochs: expected an int, got '2.5'"]),
        (["train", "-m", "visual=a.npy", "--lr", "fast"], ["--lr: expected a number, got 'fast'"]),
        (["train", "-m", "visual=a.npy", "--lr"], ["--lr: expected one argument"]),
        (["train", "-m", "visual=a.npy", "--binder", "foo"], ["--binder: invalid choice: 'foo'", "additive"]),
        (["train", "-m", "visual=a.npy", "--bogus"], ["unrecognized arguments: --bogus"]),
        (["train"], ["required: --modality/-m"]),
        (["embed", "-m", "visual=a.npy", "--batch-size", "1e3"], ["--batch-size: expected an int, got '1e3'"]),
        (["embed", "-m", "visual=a.npy"], ["required: checkpoint", "grapheme-mm embed --help"]),
        (["info"], ["required: checkpoint"]),
        (["demo", "--seed", "x"], ["--seed: expected an int, got 'x'", "grapheme-mm demo --help"]),
        (["frobnicate"], ["invalid choice: 'frobnicate'", "grapheme-mm --help"]),
        ([], ["required: COMMAND"]),
    ],
)
def test_flags_argparse_refuses_are_one_line(capsys, argv, words) -> None:
    """argparse printed its usage block (some 30 lines for train) before the
    error, where every other mistake is one line; now its errors are one line
    too, naming the flag, the value and what was expected (exit status 2)."""
    line = argparse_error(capsys, argv)
    for w in words:
        assert w in line, (w, line)


def test_help_is_still_argparse_s(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0 and out.startswith("usage: grapheme-mm train") and "--epochs EPOCHS" in out


def test_checkpoint_problems_are_one_line(files, capsys) -> None:
    one_line_error(capsys, ["info", str(files / "nested.safetensors")], "nested too deeply")
    one_line_error(capsys, ["info", str(files / "folder.npy")], "is a directory")
    one_line_error(capsys, ["info", str(files / "a.npy")], "not a readable")


def test_embed_never_writes_nan(files, capsys) -> None:
    """A checkpoint whose standardisation divides by 1e-44: refused when it is
    loaded (once the core checks std) or, at the latest, before writing NaN."""
    out = files / "tiny.npy"
    line = one_line_error(capsys, ["embed", str(files / "tiny_std.safetensors"), "-m", f"visual={files / 'a.npy'}", "-o", str(out)])
    assert "non-finite" in line or "std" in line, line
    assert not out.exists()


def _cli(*args, timeout=120, preexec=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "grapheme_multimodal", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, preexec_fn=preexec, env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))


def assert_one_line(done: subprocess.CompletedProcess, *words) -> None:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith("grapheme-mm: error: "), done.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])


def test_fifos_and_8_gib_files_are_refused_without_hanging(files, tmp_path) -> None:
    assert_one_line(_cli("train", "-m", f"visual={files / 'pipe.npy'}", timeout=60), "FIFO")
    assert_one_line(_cli("info", files / "pipe.npy", timeout=60), "FIFO")
    sparse = tmp_path / "sparse.safetensors"
    with sparse.open("wb") as f:
        f.truncate(8 << 30)
    assert_one_line(_cli("info", sparse, timeout=60), "not a readable")


def test_a_full_disk_is_one_line_and_keeps_the_old_output(files, tmp_path) -> None:
    out = tmp_path / "fused.npy"
    out.write_bytes(b"previous result")

    def small_files():  # writes beyond 512 bytes fail with EFBIG, as a full disk fails with ENOSPC
        resource.setrlimit(resource.RLIMIT_FSIZE, (512, 512))

    done = _cli("embed", files / "m.safetensors", "-m", f"visual={files / 'a.npy'}", "-o", out, "--overwrite",
               preexec=small_files)
    assert_one_line(done, str(out), "File too large")
    assert out.read_bytes() == b"previous result"
    assert [p.name for p in tmp_path.iterdir()] == ["fused.npy"]


def test_without_ray_the_ray_options_name_the_extra_to_install(files, capsys, monkeypatch) -> None:
    """embed --ray imported ray.exceptions before the package's Ray module:
    without Ray it said only "No module named 'ray'"; now, as train
    --workers, it names the extra to install."""
    import grapheme_multimodal

    for name in ("ray", "ray.exceptions", "ray.data"):
        monkeypatch.setitem(sys.modules, name, None)  # None: "import halted", as if not installed
    monkeypatch.delitem(sys.modules, "grapheme_multimodal.distributed", raising=False)  # imported again, without Ray
    monkeypatch.delattr(grapheme_multimodal, "distributed", raising=False)
    data = ["-m", f"visual={files / 'a.npy'}", "-m", f"auditory={files / 'b.npy'}"]
    for argv in (["embed", str(files / "m.safetensors"), *data, "--ray", "-o", str(files / "never.npy")],
                 ["train", *data, "--workers", "2", "--no-progress", "-o", str(files / "never.safetensors")]):
        one_line_error(capsys, argv, 'pip install "grapheme-multimodal[ray]"')
    assert not (files / "never.npy").exists() and not (files / "never.safetensors").exists()


@pytest.mark.ray
@pytest.mark.timeout(180)
def test_errors_after_a_local_ray_starts_are_still_one_line(files, tmp_path) -> None:
    """The local cluster train --workers starts wrote Ray's INFO lines
    ("Started a local Ray instance", ...) to stderr before the error line:
    an error found once Ray runs (more workers than its CPUs) was three
    lines. Now the error is the only line."""
    pytest.importorskip("ray")
    done = subprocess.run(
        [sys.executable, "-m", "grapheme_multimodal", "train", "-m", f"visual={files / 'a.npy'}", "--workers", "4096",
         "--no-progress", "--epochs", "1", "-o", str(tmp_path / "m.safetensors")],
        capture_output=True, text=True, timeout=150,
        env=dict(os.environ, RAY_DEFAULT_OBJECT_STORE_MAX_MEMORY_BYTES=str(256 * 2**20), PYTHONDONTWRITEBYTECODE="1"),
    )
    assert_one_line(done, "--workers: 4096 workers of 1 CPU each do not fit")  # the flag typed, not fit's num_workers
    assert not (tmp_path / "m.safetensors").exists()


def test_the_progress_bar_redraws_at_its_interval_not_every_step(capsys) -> None:
    rng = np.random.default_rng(0)
    data = {"visual": rng.normal(size=(400, 18)), "linguistic": rng.normal(size=(400, 18))}
    model = gm.LearnableMultiModal(embed_dim=8, hidden_dim=8, num_heads=2, seed=0)
    history = model.fit(data, epochs=2, batch_size=4, progress=True)
    err = capsys.readouterr().err
    steps = 2 * 100
    assert len(history.epochs) == 2 and "loss=" in err
    assert err.count("\r") < steps / 4, f"{err.count(chr(13))} redraws for {steps} steps"


# ------------------------------------------------------------------ fuzzing
_values = st.one_of(
    st.integers(-3, 40).map(str),
    st.sampled_from(["nan", "inf", "-inf", "1e300", "-1e300", "0", "1e-320", "3.5e38", "x", "", "1,2", "="]),
    st.floats(allow_nan=False, width=32).map(repr),
)
_flags = ["--epochs", "--batch-size", "--embed-dim", "--hidden-dim", "--heads", "--lr", "--modality-dropout",
          "--validation-split", "--early-stopping", "--wl-dim", "--seed", "--objectives", "--binder", "--text-features"]
_specs = ["a.npy"] * 6 + ["b.npy"] * 4 + ["empty.npy", "garbage.npz", "complex.npy", "zero_rows.npy", "latin1.csv",
                                          "huge.csv", "folder.npy", "missing.npy", "header_only.csv"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    command=st.sampled_from(["train"] * 4 + ["embed"] * 2 + ["info"]),
    modalities=st.lists(st.tuples(st.sampled_from(["visual"] * 3 + ["auditory"] * 3 + ["smell", "6", ""]), st.sampled_from(_specs)),
                        min_size=1, max_size=3),
    flags=st.lists(st.tuples(st.sampled_from(_flags), _values), max_size=4),
)
def test_fuzz_cli_arguments_give_exit_0_or_one_line_and_2(files, capsys, tmp_path_factory, command, modalities, flags) -> None:
    out = tmp_path_factory.mktemp("fuzz") / "out"
    argv = [command]
    if command != "train":
        argv.append(str(files / "m.safetensors"))
    if command != "info":
        for name, spec in modalities:
            argv += ["-m", f"{name}={files / spec}"]
        argv += ["-o", str(out)]
    if command == "train":
        argv += ["--epochs", "1", "--no-progress"]
        for flag, value in flags:
            if flag == "--epochs" and value.lstrip("-").isdigit() and int(value) > 2:
                value = "2"  # keep the run short
            argv += [flag, value]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's refusal: one line too, status 2
        assert exc.code == 2, argv
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("grapheme-mm: error: "), (argv, lines)
        event("argparse usage error")
        return
    err = capsys.readouterr().err
    assert code in (0, 2), (argv, err)
    event(f"{command}: exit {code}")
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("grapheme-mm: error: "), (argv, err)
    elif command == "embed":
        assert np.isfinite(np.load(out)).all()
    elif command == "train":
        assert np.isfinite(gm.LearnableMultiModal.load(out).state_dict()["fusion.0.weight"]).all()


def test_an_output_created_while_the_command_runs_is_kept_not_replaced(files, tmp_path, capsys, monkeypatch) -> None:
    """The check that an output does not exist ran before the work: a file
    created there during the run (another program, a second run with the
    same output) was replaced without a word. Now it is kept and the command
    says so, and of several outputs none is written; with --overwrite it is
    replaced, as before."""
    import grapheme_multimodal.cli as cli

    real_fit = cli.fit_with_stopping
    out = tmp_path / "m.safetensors"

    def fit_while_another_run_saves(*args, **kwargs):
        history = real_fit(*args, **kwargs)
        out.write_bytes(b"another run's checkpoint")
        return history

    monkeypatch.setattr(cli, "fit_with_stopping", fit_while_another_run_saves)
    train = ["train", "-m", f"visual={files / 'a.npy'}", "--epochs", "1", "--embed-dim", "8", "--hidden-dim", "8",
             "--heads", "2", "--no-progress", "-o", str(out)]
    one_line_error(capsys, train, f"--output: '{out}' was created by something else while this ran; it was kept",
                   "pass --overwrite")
    assert out.read_bytes() == b"another run's checkpoint"
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"], "no temporary file left"

    real_embed = cli._embed_in_process
    fused, bindings = tmp_path / "fused.npy", tmp_path / "bindings.npy"

    def embed_while_another_program_writes(*args, **kwargs):
        result = real_embed(*args, **kwargs)
        bindings.write_bytes(b"the user's own file")
        return result

    monkeypatch.setattr(cli, "_embed_in_process", embed_while_another_program_writes)
    embed = ["embed", str(files / "m.safetensors"), "-m", f"visual={files / 'a.npy'}", "-o", str(fused), "--bindings", str(bindings)]
    one_line_error(capsys, embed, f"--bindings: '{bindings}' was created by something else while this ran")
    assert bindings.read_bytes() == b"the user's own file"
    # all or none: the embeddings alone, linked before the clash, looked like a finished run's
    assert not fused.exists(), "the output written before the clash was removed again"

    monkeypatch.setattr(cli, "fit_with_stopping", real_fit)
    assert main([*train, "--overwrite"]) == 0 and gm.LearnableMultiModal.load(out).epochs_trained == 1


@pytest.mark.parametrize("argv, flag", [
    (["train", "-m", "visual={a}", "--epochs", "1", "--no-progress", "-o", "-"], "--output/-o"),
    (["train", "-m", "visual={a}", "--epochs", "1", "--no-progress", "--output", "-"], "--output/-o"),
    (["embed", "{ckpt}", "-m", "visual={a}", "-o", "-"], "--output/-o"),
    (["embed", "{ckpt}", "-m", "visual={a}", "-o", "{tmp}/fused.npy", "--bindings", "-"], "--bindings"),
    (["embed", "{ckpt}", "-m", "visual={a}", "-o", "{tmp}/fused.npy", "--hidden-features", "-"], "--hidden-features"),
    (["demo", "--json", "-"], "--json"),
])
def test_an_output_of_dash_is_refused_not_written_as_a_file_named_dash(files, tmp_path, capsys, monkeypatch, argv, flag) -> None:
    # "-o -" wrote a binary file named "-" where the user meant standard output.
    monkeypatch.chdir(tmp_path)
    argv = [a.format(a=files / "a.npy", ckpt=files / "m.safetensors", tmp=tmp_path) for a in argv]
    line = argparse_error(capsys, argv)
    assert f"{flag}: expected a file path, got '-' (standard output)" in line, line
    assert "give a file path" in line, line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("names, repeated", [("contrastive,contrastive", "contrastive"), ("binding, contrastive,binding", "binding")])
def test_an_encoder_objective_given_twice_is_refused_as_in_objectives(files, tmp_path, capsys, monkeypatch, names, repeated) -> None:
    # kept one of the two without a word (a typo for another name?), where --objectives refuses a repeated name
    monkeypatch.chdir(tmp_path)
    one_line_error(capsys, ["train", "-m", f"visual={files / 'a.npy'}", "--no-progress", "--epochs", "1",
                            "--encoder-objectives", names],
                   f"--encoder-objectives: {repeated!r} is given more than once in {names!r}", "expected each objective once")
    assert list(tmp_path.iterdir()) == [], "refused before anything trained or was written"


def test_a_demo_out_of_dash_is_refused_not_made_a_folder_named_dash(tmp_path, capsys, monkeypatch) -> None:
    # "--out -" made a folder named "-", where "-o -" for a file is refused.
    monkeypatch.chdir(tmp_path)
    line = argparse_error(capsys, ["demo", "--out", "-"])
    assert "--out: expected a folder path, got '-' (standard output)" in line and "give a folder path" in line, line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("flag", ["-o", "--bindings", "--hidden-features"])
def test_an_output_ending_in_a_separator_is_refused_as_a_folder(files, tmp_path, capsys, flag) -> None:
    # argparse's Path dropped the "/": "-o runs/" wrote a file named "runs".
    out = f"{tmp_path}/runs/"
    argv = ["embed", str(files / "m.safetensors"), "-m", f"visual={files / 'a.npy'}", flag, out]
    if flag != "-o":
        argv += ["-o", str(tmp_path / "fused.npy")]
    line = argparse_error(capsys, argv)
    assert f"{'--output/-o' if flag == '-o' else flag}: expected a file name, got '{out}' (a folder)" in line, line
    assert list(tmp_path.iterdir()) == []


def test_info_on_a_history_number_a_float_cannot_hold_is_one_line(files, tmp_path, capsys) -> None:
    # It loaded, and info's "loss: first ..." line raised OverflowError with a traceback.
    from grapheme_multimodal.checkpoint import FILE_FORMAT, checkpoint_state
    from grapheme_multimodal.io import write_tagged_safetensors

    tensors, meta = checkpoint_state(gm.LearnableMultiModal.load(files / "m.safetensors"))
    meta["history"][-1]["loss"] = 10**400
    write_tagged_safetensors(tmp_path / "forged.safetensors", tensors, FILE_FORMAT, meta)
    one_line_error(capsys, ["info", str(tmp_path / "forged.safetensors")], "history[0]: expected a record of numbers")


def test_texts_are_split_at_line_ends_only(tmp_path) -> None:
    """str.splitlines also splits at form feeds, U+2028 and the like, which
    texts hold: a 5-line file read as 7 texts, every text after one paired
    with the wrong event, and with 7 rows of numbers nothing said so."""
    from grapheme_multimodal.files import check_aligned, read_modality_file

    texts = tmp_path / "texts.txt"
    texts.write_bytes("one\ntwo\u2028half\nthree\x0cfour\x1dmore\nfive\r\nsix\n".encode())
    np.save(tmp_path / "five.npy", np.ones((5, 2)))
    np.save(tmp_path / "seven.npy", np.ones((7, 2)))
    read = read_modality_file(gm.Modality.LINGUISTIC, texts)
    assert read.values == ["one", "two\u2028half", "three\x0cfour\x1dmore", "five", "six"]
    assert check_aligned([read, read_modality_file(gm.Modality.VISUAL, tmp_path / "five.npy")]) == 5
    with pytest.raises(gm.ShapeError, match="rows are not aligned"):
        check_aligned([read, read_modality_file(gm.Modality.VISUAL, tmp_path / "seven.npy")])
    for content, lines in (("a\r\nb\r\n", ["a", "b"]), ("a\rb", ["a", "b"]), ("a\n\nb\n", ["a", "", "b"]), ("\n", [""])):
        texts.write_bytes(content.encode())
        assert read_modality_file(gm.Modality.LINGUISTIC, texts).values == lines, content


def test_an_npz_key_is_read_whatever_the_case_of_the_suffix(tmp_path, capsys) -> None:
    # "DATA.NPZ: holds arrays ['train', 'test']; pick one with DATA.NPZ:KEY", and then
    # DATA.NPZ:train was "file not found: DATA.NPZ:train": the key was split off .npz only.
    with (tmp_path / "DATA.NPZ").open("wb") as f:
        # rows that differ: standardised, rows all the same are 0 everywhere, and training on them is refused
        np.savez(f, train=np.random.default_rng(0).normal(size=(24, 6)), test=np.zeros((3, 6)))
    line = one_line_error(capsys, ["train", "-m", f"visual={tmp_path / 'DATA.NPZ'}", "--no-progress"])
    assert line.endswith(f"pick one with {tmp_path / 'DATA.NPZ'}:KEY"), line
    out = tmp_path / "m.safetensors"
    assert main(["train", "-m", f"visual={tmp_path / 'DATA.NPZ'}:train", "--epochs", "1", "--embed-dim", "8",
                 "--hidden-dim", "8", "--heads", "2", "--no-progress", "-o", str(out)]) == 0, capsys.readouterr().err


def test_a_byte_order_mark_is_not_part_of_the_first_row(tmp_path) -> None:
    # Excel's "CSV UTF-8" starts with one: the first row "\ufeff0.5,1.0" was not numeric,
    # so it was taken as a header and an event dropped without a word; a text file's
    # first text began with it.
    from grapheme_multimodal.files import read_modality_file

    (tmp_path / "rows.csv").write_bytes(b"\xef\xbb\xbf0.5,1.0\n2.0,3.0\n")
    (tmp_path / "header.csv").write_bytes(b"\xef\xbb\xbfa,b\n2.0,3.0\n")
    (tmp_path / "texts.txt").write_bytes(b"\xef\xbb\xbfhello\nworld\n")
    assert read_modality_file(gm.Modality.VISUAL, tmp_path / "rows.csv").values.tolist() == [[0.5, 1.0], [2.0, 3.0]]
    assert read_modality_file(gm.Modality.VISUAL, tmp_path / "header.csv").values.tolist() == [[2.0, 3.0]]
    assert read_modality_file(gm.Modality.LINGUISTIC, tmp_path / "texts.txt").values == ["hello", "world"]


def test_a_reader_that_stops_reading_ends_the_command_quietly(files) -> None:
    """`grapheme-mm info m.safetensors | head -1`: the closed pipe was
    reported as "grapheme-mm: error: [Errno 32] Broken pipe" with exit
    status 2, a failure of the user's making. Now it ends quietly with 141
    (128 + SIGPIPE), as a command a closed pipe ends in a shell."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has gone before the first line
    try:
        done = subprocess.run([sys.executable, "-m", "grapheme_multimodal", "info", str(files / "m.safetensors")],
                              stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert done.returncode == 141 and done.stderr == "", (done.returncode, done.stderr)
    closed = subprocess.run([sys.executable, "-c", "import os, sys; os.close(1); from grapheme_multimodal.cli import main; "
                             f"sys.stdout = None; sys.exit(main(['info', {str(files / 'm.safetensors')!r}]))"],
                            capture_output=True, text=True, timeout=120)
    # started with stdout closed: refused in one line (test_trust_cli_unix), not a run whose lines are all lost
    assert closed.returncode == 2 and closed.stderr == "grapheme-mm: error: standard output is closed; expected somewhere " \
        "to print (>/dev/null to discard it)\n", closed.stderr


def test_an_output_folder_no_file_can_be_created_in_is_refused_before_the_work(files, capsys, monkeypatch) -> None:
    """A read-only folder (or filesystem) passed the check of the outputs:
    train ran to the end and then failed to save, the work lost. /sys is
    such a folder even for root, whom a folder's permissions do not stop."""
    import tempfile

    import grapheme_multimodal.cli as cli

    try:
        with tempfile.TemporaryFile(dir="/sys"):
            pytest.skip("/sys takes new files here")
    except OSError:
        pass

    def no_training(*args, **kwargs):
        raise AssertionError("trained before the output was checked")

    monkeypatch.setattr(cli, "fit_with_stopping", no_training)
    one_line_error(capsys, ["train", "-m", f"visual={files / 'a.npy'}", "--no-progress", "-o", "/sys/m.safetensors"],
                   "--output: no file can be created in the folder '/sys'")
    one_line_error(capsys, ["embed", str(files / "m.safetensors"), "-m", f"visual={files / 'a.npy'}", "-o",
                            str(files / "fused_never.npy"), "--bindings", "/sys/b.npy"], "--bindings: no file can be created")
    assert not (files / "fused_never.npy").exists()


def test_embed_refuses_ray_options_without_ray_before_any_work(files, capsys, monkeypatch) -> None:
    # --workers or --ray-address without --ray was refused only after the checkpoint
    # was loaded and every input file read (minutes for large files).
    def no_loading(*args, **kwargs):
        raise AssertionError("loaded the checkpoint before refusing the flags")

    monkeypatch.setattr(gm.LearnableMultiModal, "load", no_loading)
    for flags in (["--workers", "2"], ["--ray-address", "127.0.0.1:6379"]):
        one_line_error(capsys, ["embed", str(files / "m.safetensors"), "-m", f"visual={files / 'a.npy'}",
                                "-o", str(files / "never.npy"), *flags], "--workers/--ray-address: only used with --ray")


def test_file_names_that_are_not_utf8_are_printed_not_fatal(files, tmp_path) -> None:
    """A file name of bytes that are not UTF-8 (``-o $'\\xff.npy'``; Python
    reads it as surrogate escapes) with stdout strict UTF-8 (any UTF-8
    locale but C's, or PYTHONIOENCODING=utf-8): ``embed`` wrote the
    embeddings, then failed printing their name with exit status 2 and
    "can't encode character '\\udcff'", and never wrote ``--bindings``;
    ``info`` refused such a checkpoint. Now the names are printed as the
    bytes they are, every file is written, and the status is 0."""
    out, bindings, checkpoint = (os.fsdecode(bytes(tmp_path) + b"/" + name) for name in (b"\xff.npy", b"b\xfe.npy", b"m\xfd.st"))
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PYTHONIOENCODING="utf-8")
    embed = subprocess.run([sys.executable, "-m", "grapheme_multimodal", "embed", str(files / "m.safetensors"), "-m",
                            f"visual={files / 'a.npy'}", "-m", f"auditory={files / 'b.npy'}", "-o", out, "--bindings", bindings],
                           capture_output=True, timeout=120, env=env)
    assert embed.returncode == 0 and not embed.stderr, embed.stderr
    assert os.fsencode(out) in embed.stdout and os.fsencode(bindings) in embed.stdout
    assert np.load(out).shape == (24, 8) and np.load(bindings).shape == (24, 7, 7)
    os.link(files / "m.safetensors", checkpoint)
    info = subprocess.run([sys.executable, "-m", "grapheme_multimodal", "info", checkpoint], capture_output=True, timeout=120, env=env)
    assert info.returncode == 0 and os.fsencode(checkpoint) in info.stdout, info.stderr


def test_an_npz_array_is_read_from_the_member_that_was_checked(tmp_path) -> None:
    """An .npz holding a member ``x.npy`` (the array ``x``, whose header is
    checked) and a member ``x`` (no suffix: not an array of the archive)
    gave the data of ``x``, which numpy's NpzFile prefers for the key "x":
    values no check had seen. Two members named ``x.npy`` were "holds
    arrays ['x', 'x']; pick one with PATH:KEY", where no key picks either.
    Now the array is read from the member checked, and twin names are refused."""
    import io
    import zipfile

    from grapheme_multimodal.files import read_modality_file

    def npy(a) -> bytes:
        buf = io.BytesIO()
        np.save(buf, a)
        return buf.getvalue()

    shadowed = tmp_path / "shadowed.npz"
    with zipfile.ZipFile(shadowed, "w") as z:
        z.writestr("x.npy", npy(np.ones((3, 2), np.float32)))
        z.writestr("x", npy(np.full((3, 2), 7, np.float32)))
    for key in (None, "x"):
        np.testing.assert_array_equal(read_modality_file(gm.Modality.VISUAL, shadowed, key).values, np.ones((3, 2)))
    twins = tmp_path / "twins.npz"
    with pytest.warns(UserWarning, match="Duplicate name"), zipfile.ZipFile(twins, "w") as z:
        z.writestr("x.npy", npy(np.ones((3, 2), np.float32)))
        z.writestr("x.npy", npy(np.full((3, 2), 7, np.float32)))
    for key in (None, "x"):
        with pytest.raises(gm.InvalidValueError, match="holds two arrays named 'x'"):
            read_modality_file(gm.Modality.VISUAL, twins, key)


def test_every_flag_errors_are_renamed_to_is_a_train_option() -> None:
    from grapheme_multimodal.cli import _parser, train_flags

    train = next(a for a in _parser()._subparsers._group_actions[0].choices.values() if a.prog.endswith("train"))
    options = {o for action in train._actions for o in action.option_strings}
    assert set(train_flags().values()) <= options, set(train_flags().values()) - options
    assert train_flags()["learning_rate"] == "--lr" and train_flags()["fusion_residual"] == "--fusion-residual"


@pytest.mark.parametrize("spec, width", [("named.csv", 3), ("data_0_1.csv", 2)])
def test_a_named_header_and_a_two_column_first_row_0_1_are_read_as_before(files, spec, width) -> None:
    from grapheme_multimodal.files import read_modality_file

    values = read_modality_file(gm.Modality.AUDITORY, files / spec).values
    assert values.shape == (24, width)


@pytest.mark.parametrize(
    "argv, flag, name, words",
    [
        # wrote NumPy's binary format into out.csv, and said "wrote fused embeddings (24, 8) to out.csv"
        (["embed", "{ckpt}", "-m", "visual={a}", "-o", "{out}"], "--output", "out.csv",
         "is named as comma-separated text (.csv), but this option writes a NumPy array (.npy); expected a name ending in .npy"),
        (["embed", "{ckpt}", "-m", "visual={a}", "-o", "{tmp}/fused.npy", "--bindings", "{out}"], "--bindings", "s.JSON",
         "is named as JSON (.json), but this option writes a NumPy array (.npy)"),
        # a checkpoint named as an array: np.load(model.npy) then failed
        (["train", "-m", "visual={a}", "--epochs", "1", "--no-progress", "-o", "{out}"], "--output", "model.npy",
         "is named as a NumPy array (.npy), but this option writes a checkpoint (.safetensors)"),
    ],
)
def test_an_output_named_as_another_format_than_the_one_written_is_refused(files, tmp_path, capsys, argv, flag, name, words) -> None:
    argv = [a.format(ckpt=files / "m.safetensors", a=files / "a.npy", out=tmp_path / name, tmp=tmp_path) for a in argv]
    one_line_error(capsys, argv, f"{flag}: {tmp_path / name} {words}")
    assert list(tmp_path.iterdir()) == []


def test_outputs_named_as_what_they_hold_or_without_a_suffix_are_written(files, tmp_path, capsys) -> None:
    for name in ("fused.npy", "FUSED.NPY", "fused", "fused.v2"):
        assert main(["embed", str(files / "m.safetensors"), "-m", f"visual={files / 'a.npy'}", "-o", str(tmp_path / name)]) == 0
        assert np.load(tmp_path / name).shape == (24, 8)
    capsys.readouterr()
