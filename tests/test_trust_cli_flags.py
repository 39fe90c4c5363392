"""``grapheme-mm``'s flags as they are typed: numbers in plain ASCII digits
only (Python's ``int()`` and ``float()`` read ``4_0``, ``+5``, `` 5 `` and
other scripts' digits) and flags in full only (argparse took ``--epoch``
for ``--epochs``)."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from grapheme_multimodal import cli
from grapheme_multimodal.cli import main

from test_trust_cli import argparse_error


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("flags")
    np.save(d / "a.npy", np.random.default_rng(0).normal(size=(24, 6)).astype(np.float32))
    return d



def _subparsers() -> dict:
    return cli._parser()._subparsers._group_actions[0].choices


def flags_of_type(kind) -> list:
    """``(command, flag)`` of every flag whose values ``kind`` (cli._int, cli._float) reads."""
    return [(command, a.option_strings[-1]) for command, p in _subparsers().items() for a in p._actions
            if a.option_strings and a.type is kind]


# ------------------------------------------------------------------ numbers in plain digits
def argv_with(command: str, flag: str, value: str, data) -> list:
    # outputs in data: a value taken (as before the fix) would run the command, not write into the working folder
    before = {"train": ["train", "-m", f"visual={data / 'a.npy'}", "-o", str(data / "never.safetensors")],
              "embed": ["embed", "m", "-m", "visual=a.npy", "-o", str(data / "never.npy")],
              "demo": ["demo", "--out", str(data / "never")]}[command]
    return [*before, flag, value]


@pytest.mark.parametrize("value", ["4_0", "\u0663", "\uff15", " 5 ", "+5", "5\n", "0x10"])
def test_an_int_flag_takes_plain_ascii_digits_only(data, capsys, monkeypatch, value) -> None:
    """`--epochs 4_0` trained 40 epochs, `--epochs ٣` 3 (an Arabic-Indic
    digit), and ' 5 ', '+5' were taken as 5: every int flag took what
    Python's int() reads. Now each is refused by argparse naming the flag
    and the value as typed, exit status 2."""
    monkeypatch.chdir(data)
    int_flags = flags_of_type(cli._int)
    assert {("train", "--epochs"), ("demo", "--seed"), ("embed", "--batch-size")} <= set(int_flags)
    for command, flag in int_flags:
        line = argparse_error(capsys, argv_with(command, flag, value, data))
        assert f"{flag}: expected an int" in line and repr(value) in line, line
        if value != "0x10":  # one int() reads: how an int is written
            assert "in plain digits 0-9" in line, line


@pytest.mark.parametrize("value", ["1_0.5", "+0.5", " 0.5", "0.5 ", "\u0660.\u0665", "１e-3", "1e_3"])
def test_a_float_flag_takes_plain_ascii_decimal_only(data, capsys, monkeypatch, value) -> None:
    """`--lr 1_0.5` trained at 10.5 and `--fusion-residual ٠.٥` at 0.5
    (float() reads both); `--contrastive-neighbor-weight 1_0.5` was refused
    as 'got 10.5', a number the user never typed. Now refused as typed."""
    monkeypatch.chdir(data)
    float_flags = flags_of_type(cli._float)
    assert len(float_flags) >= 11 and ("train", "--lr") in float_flags
    for command, flag in float_flags:
        line = argparse_error(capsys, argv_with(command, flag, value, data))
        assert f"{flag}: expected a number" in line and repr(value) in line, line


@pytest.mark.parametrize("argv, dest, value", [
    (["--epochs", "007"], "epochs", 7),
    (["--seed", "-3"], "seed", -3),  # its range check names what is wrong with it
    (["--lr", "1e-3"], "lr", 1e-3),
    (["--lr", "1E+2"], "lr", 100.0),
    (["--lr", ".5"], "lr", 0.5),
    (["--lr", "5."], "lr", 5.0),
    (["--lr", "-1e-3"], "lr", -1e-3),
    (["--fusion-residual", "0"], "fusion_residual", 0.0),
])
def test_plain_numbers_are_read_as_before(argv, dest, value) -> None:
    args = cli._parser().parse_args(["train", "-m", "visual=a.npy", *argv])
    assert getattr(args, dest) == value and type(getattr(args, dest)) is type(value)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "Infinity"])
def test_nan_and_inf_are_refused_by_every_float_flag(data, tmp_path, capsys, value) -> None:
    """No float flag has a use for NaN or infinity; each reaches its flag's
    range check (which says what the range is) and is refused there, before
    any training: a float flag added without one fails here."""
    for command, flag in flags_of_type(cli._float):
        assert command == "train"
        code = main(["train", "-m", f"visual={data / 'a.npy'}", "--epochs", "1", "--embed-dim", "8", "--hidden-dim", "8",
                     "--heads", "2", "--no-progress", "-o", str(tmp_path / "m.safetensors"), flag, value])
        err = capsys.readouterr().err
        assert code == 2 and err.startswith(f"grapheme-mm: error: {flag}: ") and err.count("\n") == 1, (flag, err)
        assert not (tmp_path / "m.safetensors").exists()


@pytest.mark.parametrize("flags, words", [
    (["--encoder-hidden", "2_56"], ["--encoder-hidden: expected comma-separated layer widths", "'2_56'"]),
    (["--shared-head", "\u0661\u0662\u0668,8"], ["--shared-head: expected comma-separated layer widths"]),
    (["--shared-head", "+16,8"], ["--shared-head: expected comma-separated layer widths"]),
    (["--objectives", "contrastive=1_0"], ["--objectives: 'contrastive=1_0' is not NAME=NUMBER"]),
    (["--objectives", "contrastive=+1"], ["--objectives: 'contrastive=+1' is not NAME=NUMBER"]),
])
def test_numbers_inside_list_flags_are_plain_too(data, tmp_path, capsys, flags, words) -> None:
    """The widths of --encoder-hidden and --shared-head and the weights of
    --objectives were read by int() and float() as the flags' own values
    were: `--encoder-hidden 2_56` built a layer of 256."""
    code = main(["train", "-m", f"visual={data / 'a.npy'}", "--epochs", "1", "--no-progress",
                 "-o", str(tmp_path / "m.safetensors"), *flags])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert all(w in err for w in words), err


def test_spaces_after_the_commas_of_list_flags_are_still_read() -> None:
    assert cli._widths("256, 128", "--encoder-hidden") == (256, 128)
    assert cli._objective_weights("contrastive = 1, binding=0.5", ("contrastive", "binding")) == {"contrastive": 1.0, "binding": 0.5}


# ------------------------------------------------------------------ flags in full
@pytest.mark.parametrize("argv, words", [
    (["train", "-m", "visual=a.npy", "--epoch", "5"], ["unrecognized arguments: --epoch 5", "did you mean --epochs?"]),
    (["train", "-m", "visual=a.npy", "--epoch=5"], ["unrecognized arguments: --epoch=5", "did you mean --epochs?"]),
    (["train", "-m", "visual=a.npy", "--over"], ["unrecognized arguments: --over", "did you mean --overwrite?"]),
    (["train", "-m", "visual=a.npy", "--enc", "0"], ["unrecognized arguments: --enc 0", "did you mean one of --encoder-"]),
    (["embed", "m", "-m", "visual=a.npy", "--ray", "--work", "2"], ["--work 2", "did you mean --workers?"]),
    (["demo", "--mem", "2"], ["unrecognized arguments: --mem 2", "did you mean --members?"]),
    (["info", "m", "--hel"], ["unrecognized arguments: --hel", "did you mean --help?"]),
])
def test_an_abbreviated_flag_is_refused_naming_the_flag_it_would_have_been(tmp_path, capsys, monkeypatch, argv, words) -> None:
    """argparse took `--epoch 5` for `--epochs 5`: a script that abbreviated
    a flag would break, or change meaning, the day a flag of the same start
    was added (`--epoch-size`). Flags are taken in full only, every
    subcommand's too, and the refusal names the flag meant."""
    monkeypatch.chdir(tmp_path)  # taken, as before, the command would run here
    line = argparse_error(capsys, argv)
    assert all(w in line for w in words), line


def test_no_parser_takes_abbreviations() -> None:
    parser = cli._parser()
    assert parser.allow_abbrev is False
    assert all(p.allow_abbrev is False for p in _subparsers().values())
    args = parser.parse_args(["train", "-mvisual=a.npy", "--lr=0.5", "--epochs", "3"])  # full flags, joined values: as before
    assert args.modality == ["visual=a.npy"] and args.lr == 0.5 and args.epochs == 3
    with pytest.raises(argparse.ArgumentTypeError):
        cli._int("4_0")
