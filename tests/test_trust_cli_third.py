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
def test_a_csv_header_flag_without_a_csv_file_is_said_to_do_nothing(files, capsys, flag) -> None:
    """`--csv-header` with only .npz/.txt files was ignored without a word (a .txt's header line was read as an event)."""
    out = files / "m.safetensors"
    code = main(["train", "-m", f"visual={files / 'a.npy'}", "-m", f"linguistic={files / 't.txt'}",
                 "-m", f"auditory={files / 'z.npz'}:x", flag, "-o", str(out), *TINY])
    captured = capsys.readouterr()
    assert code == 0 and out.exists()
    assert f"grapheme-mm: warning: {flag}: no modality file is .csv, so it has no effect" in captured.err
    assert "warning" not in captured.out
    # embed says it too; and with a .csv among the files, nothing is said
    code = main(["embed", str(out), "-m", f"visual={files / 'a.npy'}", flag, "-o", str(files / "e.npy")])
    assert code == 0 and f"{flag}: no modality file is .csv" in capsys.readouterr().err
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
