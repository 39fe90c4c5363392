"""A third hostile-use audit of ``grapheme-mm``: combinations of flags and
files the first two passes did not try."""

from __future__ import annotations

import numpy as np
import pytest

from grapheme_multimodal.cli import main

TINY = ["--epochs", "1", "--embed-dim", "8", "--hidden-dim", "8", "--no-progress"]


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "a.npy", rng.normal(size=(24, 5)).astype(np.float32))
    np.savez(tmp_path / "z.npz", x=rng.normal(size=(24, 3)).astype(np.float32))
    (tmp_path / "t.txt").write_text("".join(f"word{i} thing {i % 3}\n" for i in range(24)))
    return tmp_path


def test_an_unknown_modality_name_is_named_by_the_flag(files, capsys) -> None:
    """`-m audio=a.npy` said "modality: unknown modality", naming no flag the user typed."""
    code = main(["train", "-m", f"audio={files / 'a.npy'}", "-o", str(files / "m.safetensors"), *TINY])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("grapheme-mm: error: --modality: unknown modality 'audio'") and err.count("\n") == 1
    assert not (files / "m.safetensors").exists()


def test_objectives_all_zero_say_the_cli_s_way_to_the_recipe(files, capsys) -> None:
    """`--objectives contrastive=0` advised "None: the recipe's, RECIPE_OBJECTIVES", Python words the CLI has no way to give."""
    code = main(["train", "-m", f"visual={files / 'a.npy'}", "-m", f"auditory={files / 'z.npz'}:x",
                 "--objectives", "contrastive=0", "-o", str(files / "m.safetensors"), *TINY])
    err = capsys.readouterr().err
    assert code == 2
    assert "leave out --objectives for the recipe's" in err
    assert "None" not in err and "RECIPE_OBJECTIVES" not in err


@pytest.mark.parametrize("flag", ["--csv-header", "--no-csv-header"])
def test_a_csv_header_flag_without_a_csv_file_is_refused(files, capsys, flag) -> None:
    """`--csv-header` with only .npz/.txt files was ignored without a word (a .txt's header line was read as an event),
    then only warned of; now refused as `--wl-dim` without a .txt file is (test_trust_small_s54.py)."""
    out = files / "m.safetensors"
    code = main(["train", "-m", f"visual={files / 'a.npy'}", "-m", f"linguistic={files / 't.txt'}",
                 "-m", f"auditory={files / 'z.npz'}:x", flag, "-o", str(out), *TINY])
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert err == f"grapheme-mm: error: {flag}: no modality file is .csv, so it has no effect (it applies to .csv files only)\n"
    # embed refuses it too; and with a .csv among the files, nothing is said
    assert main(["train", "-m", f"visual={files / 'a.npy'}", "-o", str(out), *TINY]) == 0
    capsys.readouterr()
    code = main(["embed", str(out), "-m", f"visual={files / 'a.npy'}", flag, "-o", str(files / "e.npy")])
    err = capsys.readouterr().err
    assert code == 2 and f"{flag}: no modality file is .csv" in err and err.count("\n") == 1
    assert not (files / "e.npy").exists()
    np.savetxt(files / "c.csv", np.random.default_rng(1).normal(size=(24, 4)), delimiter=",")
    code = main(["train", "-m", f"visual={files / 'a.npy'}", "-m", f"tactile={files / 'c.csv'}", "--no-csv-header",
                 "-o", str(files / "m2.safetensors"), *TINY])
    assert code == 0 and "no modality file is .csv" not in capsys.readouterr().err


def test_a_warning_in_training_is_one_line_not_an_endless_loop(files) -> None:
    """`train --batch-size 1` (any warning in training) re-recorded the warning it showed forever: 23 GB, then killed."""
    import resource
    import subprocess
    import sys

    def limit_memory() -> None:  # before the fix the loop grew until memory ran out: fail fast instead
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))

    out = files / "m.safetensors"
    proc = subprocess.run(
        [sys.executable, "-m", "grapheme_multimodal", "train", "-m", f"visual={files / 'a.npy'}",
         "-m", f"auditory={files / 'z.npz'}:x", "--batch-size", "1", "-o", str(out), *TINY],
        capture_output=True, text=True, timeout=120, preexec_fn=limit_memory,
    )
    assert proc.returncode == 0, proc.stderr[-500:]
    assert out.exists()
    lines = proc.stderr.splitlines()
    assert lines == [line for line in lines if line.startswith("grapheme-mm: warning: ")]  # no source lines
    warned = [line for line in lines if "--batch-size: 1;" in line]
    assert len(warned) == 1 and "batch_size:" not in proc.stderr  # once, by the flag, not once per fold


def test_embed_of_a_modality_the_checkpoint_never_trained_says_so(files, capsys) -> None:
    """A file for a modality the checkpoint never trained on was refused as
    "(a checkpoint from a different config?)": its encoder has the config's
    default width, whatever the file."""
    model = files / "m.safetensors"
    assert main(["train", "-m", f"visual={files / 'a.npy'}", "-m", f"auditory={files / 'z.npz'}:x", "-o", str(model), *TINY]) == 0
    capsys.readouterr()
    np.savetxt(files / "c.csv", np.ones((4, 4)), delimiter=",")
    assert main(["embed", str(model), "-m", f"tactile={files / 'c.csv'}", "-o", str(files / "o.npy")]) == 2
    err = capsys.readouterr().err
    assert "the checkpoint was never trained on tactile: it was trained on visual, auditory" in err, err
    assert main(["embed", str(model), "-m", f"visual={files / 'c.csv'}", "-o", str(files / "o.npy")]) == 2
    assert "(a checkpoint from a different config?)" in capsys.readouterr().err  # a trained modality: as before


def test_info_of_a_buffer_file_says_it_is_one(files, capsys) -> None:
    """`grapheme-mm info buffer.safetensors` said only that its format tag was
    'grapheme-multimodal/experience-buffer/v1', not what the file is and what reads it."""
    import grapheme_multimodal as gm

    gm.ExperienceBuffer(10, embed_dim=8).save(files / "b.safetensors")
    assert main(["info", str(files / "b.safetensors")]) == 2
    err = capsys.readouterr().err
    assert "an experience buffer file, which ExperienceBuffer.load reads" in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("flags, words", [
    (["--shared-head", "128,32"], ["expected the last width to be --embed-dim 8,"]),
    (["--encoder-output-dim", "32", "--shared-head", ""], ["without a --shared-head", "of --embed-dim 8;"]),
    (["--encoder-hidden-dropout", "0.5", "--encoder-hidden", ""], ["but --encoder-hidden is empty", "some --encoder-hidden widths"]),
])
def test_the_settings_a_refusal_cites_are_named_by_their_flags(files, capsys, flags, words) -> None:
    """The refusal began with the flag but cited the other settings in Python's
    words ("expected the last width to be embed_dim=8", "without a shared_head"),
    names the user of the command line never typed."""
    code = main(["train", "-m", f"visual={files / 'a.npy'}", "-m", f"auditory={files / 'z.npz'}:x",
                 "-o", str(files / "m.safetensors"), *TINY, *flags])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"grapheme-mm: error: {flags[0]}: ")
    assert all(w in err for w in words), err
    assert not any(name in err for name in ("embed_dim", "shared_head", "encoder_hidden")), err


# ----------------------------------------------------- a CSV cell float() reads as NaN or infinity
def _csv(path, bad_row: int, cell: str, rows: int = 24) -> None:
    path.write_text("".join(f"1,{cell},3\n" if i == bad_row else f"{i},{i % 5},{i % 3}\n" for i in range(rows)))


@pytest.mark.parametrize("cell, why", [
    ("1e400", "too large for float32"),  # overflows float64 to inf: was "holds NaN or inf", of neither word
    ("-1E400", "too large for float32"),
    ("inf", "infinite; expected finite numbers"),
    ("-Infinity", "infinite; expected finite numbers"),
    ("nan", "not a number (NaN)"),
])
def test_a_csv_cell_read_as_nan_or_infinity_is_named_by_its_line_column_and_text(files, capsys, cell, why) -> None:
    """``1e400`` in a CSV was "tactile (c.csv): row 5 (line 6) holds NaN or inf; expected finite numbers":
    no column, and a value the file does not hold; other bad cells are named by line, column and text."""
    _csv(files / "c.csv", 5, cell)
    code = main(["train", "-m", f"visual={files / 'a.npy'}", "-m", f"tactile={files / 'c.csv'}",
                 "-o", str(files / "m.safetensors"), *TINY])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"grapheme-mm: error: {files / 'c.csv'}: row 5 (line 6) has the value {cell!r} (column 1 of 3), {why}"), err
    assert not (files / "m.safetensors").exists()


def test_a_non_finite_csv_cell_is_said_in_its_order_among_the_problems(files) -> None:
    """The first problem in the file is the one named, whichever kind it is."""
    from grapheme_multimodal.files import read_modality_file
    from grapheme_multimodal.types import Modality

    path = files / "c.csv"
    path.write_text("1,2\n3,inf\n5,x\n7,8,9\n")
    with pytest.raises(ValueError, match=r"row 1 \(line 2\) has the value 'inf' \(column 1 of 2\)"):
        read_modality_file(Modality.TACTILE, path)
    path.write_text("1,2\n3,x\n5,inf\n")
    with pytest.raises(ValueError, match=r"row 1 \(line 2\) has a non-numeric value 'x'"):
        read_modality_file(Modality.TACTILE, path)
    path.write_text("1,2\n3,4,5\n5,inf\n")
    with pytest.raises(ValueError, match=r"row 1 \(line 2\) has 3 columns, expected 2"):
        read_modality_file(Modality.TACTILE, path)
    # the reader of numbers itself still reads them (a missing value as NaN is the caller's to refuse)
    from grapheme_multimodal.files import read_numeric_csv

    path.write_text("1,nan\n3,1e400\n")
    assert np.isnan(read_numeric_csv(path)[0, 1]) and np.isinf(read_numeric_csv(path)[1, 1])


@pytest.mark.parametrize("value, shown", [(np.nan, "nan"), (-np.inf, "-inf")])
def test_a_non_finite_value_of_a_npy_file_is_named_with_its_column(files, capsys, value, shown) -> None:
    """Was "visual (x.npy): row 4 holds NaN or inf": which of the two, and where in the row, unsaid."""
    x = np.ones((24, 3))
    x[4, 2] = value
    np.save(files / "x.npy", x)
    assert main(["train", "-m", f"visual={files / 'x.npy'}", "-o", str(files / "m.safetensors"), *TINY]) == 2
    err = capsys.readouterr().err
    assert f"visual ({files / 'x.npy'}): row 4 holds {shown} (column 2 of 3); expected finite numbers" in err, err


# ----------------------------------------------------- counts of one in the singular
def test_counts_of_one_are_said_in_the_singular(files, capsys) -> None:
    """"has 1 columns", "1 rows leave 1", "1 bytes", "1 of its 2 cells are numbers"."""
    (files / "r.csv").write_text("1,2\n3\n")
    assert main(["train", "-m", f"tactile={files / 'r.csv'}", *TINY]) == 2
    assert "row 1 (line 2) has 1 column, expected 2" in capsys.readouterr().err

    np.save(files / "one.npy", np.ones((1, 3), np.float32))
    assert main(["train", "-m", f"visual={files / 'one.npy'}", "-o", str(files / "m1.safetensors"), *TINY]) == 2
    assert "error: files: 1 row leaves 1 for training; expected at least 2" in capsys.readouterr().err

    model = files / "m.safetensors"
    assert main(["train", "-m", f"visual={files / 'a.npy'}", "-m", f"auditory={files / 'z.npz'}:x", "-o", str(model), *TINY]) == 0
    capsys.readouterr()
    np.save(files / "col.npy", np.ones((24, 1), np.float32))
    assert main(["embed", str(model), "-m", f"visual={files / 'col.npy'}", "-o", str(files / "e.npy")]) == 2
    assert "col.npy has 1 column but the checkpoint's visual encoder takes 5" in capsys.readouterr().err

    (files / "b.safetensors").write_bytes(b"\x01")
    assert main(["info", str(files / "b.safetensors")]) == 2
    assert "1 byte, too few for a header" in capsys.readouterr().err

    (files / "h.csv").write_text("id,2019\n1,2\n3,4\n")
    assert main(["train", "-m", f"visual={files / 'a.npy'}", "-m", f"tactile={files / 'h.csv'}", *TINY]) == 2
    assert "though 1 of its 2 cells is a number;" in capsys.readouterr().err


def test_a_npy_file_of_one_byte_too_many_says_it_in_the_singular(files) -> None:
    from grapheme_multimodal.files import read_modality_file
    from grapheme_multimodal.types import Modality

    path = files / "x.npy"
    np.save(path, np.zeros(4, np.int8))
    with path.open("ab") as f:
        f.write(b"\0")
    with pytest.raises(ValueError, match=r"\(4 bytes\) but 5 bytes follow"):
        read_modality_file(Modality.VISUAL, path)
    np.save(path, np.zeros(1, np.int8))
    with path.open("ab") as f:
        f.write(b"\0")
    with pytest.raises(ValueError, match=r"\(1 byte\) but 2 bytes follow"):
        read_modality_file(Modality.VISUAL, path)
    np.save(path, np.zeros(2, np.int8))
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(ValueError, match=r"\(2 bytes\) but only 1 byte follows"):
        read_modality_file(Modality.VISUAL, path)


# ----------------------------------------------------- argparse's errors
def _argparse_error(capsys, argv) -> str:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and err.startswith("grapheme-mm: error: "), err
    return err.strip()


@pytest.mark.parametrize("argv, line", [
    # were "the following arguments are required: COMMAND": the user meant --version and typed no command
    (["--vers"], "unrecognized arguments: --vers (flags are taken in full only: did you mean --version?); "
                 "see grapheme-mm --help"),
    (["-V"], "unrecognized arguments: -V; see grapheme-mm --help"),
    (["--he"], "unrecognized arguments: --he (flags are taken in full only: did you mean --help?); see grapheme-mm --help"),
    # a flag before the command is the top level's: its abbreviation is found among the top level's flags
    (["--vers", "info", "m"], "unrecognized arguments: --vers (flags are taken in full only: did you mean --version?); "
                              "see grapheme-mm --help"),
    ([], "the following arguments are required: COMMAND; see grapheme-mm --help"),  # as before
])
def test_an_abbreviated_top_level_flag_is_said_unrecognized_with_the_flag_meant(capsys, argv, line) -> None:
    assert _argparse_error(capsys, argv) == f"grapheme-mm: error: {line}"


@pytest.mark.parametrize("argv, line", [
    (["train", "-m", "visual=a.npy", "--bogus"], "unrecognized arguments: --bogus; see grapheme-mm train --help"),
    (["embed", "m", "-m", "visual=a.npy", "--ove"],
     "unrecognized arguments: --ove (flags are taken in full only: did you mean --overwrite?); see grapheme-mm embed --help"),
    (["info", "m", "extra"], "unrecognized arguments: extra; see grapheme-mm info --help"),
    (["demo", "--mem", "2"], "unrecognized arguments: --mem 2 (flags are taken in full only: did you mean --members?); "
                             "see grapheme-mm demo --help"),
])
def test_a_subcommand_s_unrecognized_argument_points_at_the_subcommand_s_help(capsys, argv, line) -> None:
    """`grapheme-mm train --bogus` said "see grapheme-mm --help", whose text lists no flag of train's."""
    assert _argparse_error(capsys, argv) == f"grapheme-mm: error: {line}"


# ----------------------------------------------------- the estimator's input, as scikit-learn's check_array takes it
sklearn = pytest.importorskip("sklearn")


def _embedder():
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    return MultimodalEmbedder(epochs=1, embed_dim=8, hidden_dim=8, num_heads=2, random_state=0)


def test_the_estimator_takes_what_check_array_converts_as_the_array_itself() -> None:
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(30, 4)), rng.normal(size=(30, 3))
    want = _embedder().fit_transform(a)
    np.testing.assert_array_equal(_embedder().fit_transform(a.tolist()), want)
    np.testing.assert_array_equal(_embedder().fit_transform(pd.DataFrame(a)), want)
    want = _embedder().fit_transform([a, b])
    np.testing.assert_array_equal(_embedder().fit_transform([pd.DataFrame(a), b.tolist()]), want)


def _refusal(Xs):
    with pytest.raises((ValueError, TypeError)) as info:
        _embedder().fit(Xs)
    return info


@pytest.mark.parametrize("case, kind, words", [
    ("strings", ValueError, ["could not convert string to float: 'a'"]),
    ("complex", ValueError, ["Complex data not supported"]),
    ("1-d", ValueError, ["Expected 2D array, got 1D array"]),
    ("no rows", ValueError, ["0 sample(s)"]),
    ("no columns", ValueError, ["0 feature(s)"]),
    ("matrix", TypeError, ["np.matrix is not supported"]),
])
@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # np.asmatrix
def test_check_array_s_refusal_of_one_view_names_xs(case, kind, words) -> None:
    """These named no argument (scikit-learn's text for its X): "could not convert string to float: 'a'"."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 4))
    Xs = {
        "strings": np.array([[1.0, "a"]] * 30, dtype=object), "complex": x + 1j, "1-d": x[:, 0], "no rows": x[:0],
        "no columns": x[:, :0], "matrix": np.asmatrix(x),
    }[case]
    info = _refusal(Xs)
    assert type(info.value) is kind and str(info.value).startswith("Xs: "), str(info.value)
    assert all(w in str(info.value) for w in words), str(info.value)


def test_sparse_views_are_refused_naming_the_view() -> None:
    """"Sparse data was passed for X": the estimator's argument is Xs (of several, Xs[i] was named already)."""
    sp = pytest.importorskip("scipy.sparse")
    x = np.random.default_rng(0).normal(size=(30, 4))
    info = _refusal(sp.csr_matrix(x))
    assert type(info.value) is TypeError and "Xs" in str(info.value) and "for X," not in str(info.value), str(info.value)
    assert "dense" in str(info.value)  # scikit-learn's advice, kept
    info = _refusal([x, sp.csr_matrix(x)])
    assert type(info.value) is TypeError and "Xs[1]" in str(info.value) and "dense" in str(info.value), str(info.value)


def test_the_estimator_names_views_whose_training_rows_are_all_the_same() -> None:
    """Was "Xs: all 24 rows hold the same visual values" of 30 rows given, naming a modality the user never chose."""
    x = np.random.default_rng(0).normal(size=(30, 4))
    with pytest.raises(ValueError) as info:
        _embedder().fit([np.ones((30, 3)), np.ones((30, 2))])
    text = str(info.value)
    assert text.startswith("Xs: of the rows fit trains on, all 24 rows hold the same Xs[0], Xs[1] values; "), text
    with pytest.raises(ValueError, match=r"^Xs: 1 sample;"):  # scikit-learn's word, as before
        _embedder().fit(x[:1])


def test_hidden_features_of_a_checkpoint_without_hidden_layers_say_the_flag(files, capsys) -> None:
    """Was "(config.encoder_hidden is empty); expected a model built with encoder_hidden, e.g. (256,)": Python
    words and a tuple, where the command line's way to it is train's --encoder-hidden."""
    model = files / "m.safetensors"
    assert main(["train", "-m", f"visual={files / 'a.npy'}", "-o", str(model), "--encoder-hidden", "", *TINY]) == 0
    capsys.readouterr()
    out = files / "e.npy"
    assert main(["embed", str(model), "-m", f"visual={files / 'a.npy'}", "-o", str(out),
                 "--hidden-features", str(files / "h.npy")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("grapheme-mm: error: --hidden-features: the checkpoint has no hidden layers in its encoders "
                          "(as train --encoder-hidden '' makes them)") and err.count("\n") == 1, err
    assert "config." not in err and "(256,)" not in err and "encoder_hidden" not in err, err
    assert not out.exists()


def test_the_summary_says_the_folds_that_ran(files, capsys) -> None:
    """`--cv-folds 30` on 24 rows ran 12 folds (none may hold out fewer than 2 rows) and said "30-fold"."""
    out = files / "m.safetensors"
    assert main(["train", "-m", f"visual={files / 'a.npy'}", "--cv-folds", "30", "-o", str(out), *TINY]) == 0
    printed = capsys.readouterr().out
    assert "1 epoch chosen by 12-fold cross-validation" in printed and "30-fold" not in printed, printed
    assert main(["train", "-m", f"visual={files / 'a.npy'}", "-o", str(out), "--overwrite", *TINY]) == 0
    assert "1 epoch chosen by 5-fold cross-validation" in capsys.readouterr().out  # the default, as before
