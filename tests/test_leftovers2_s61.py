"""Defects left by the auditors of s61, second round: each test says what a
user saw before the fix."""

from __future__ import annotations

import numpy as np
import pytest

from grapheme_multimodal.cli import main

from test_trust_cli import one_line_error


@pytest.fixture
def train_argv(tmp_path) -> list:
    """``train`` on a small file, writing into ``tmp_path`` (never reached by the refusals below)."""
    np.save(tmp_path / "a.npy", np.random.default_rng(0).normal(size=(24, 5)).astype(np.float32))
    return ["train", "-m", f"visual={tmp_path / 'a.npy'}", "-o", str(tmp_path / "m.safetensors"), "--epochs", "1",
            "--no-progress"]


# ------------------------------------------------------------------ 1. range errors show what was typed
@pytest.mark.parametrize("flags, shown", [
    (["--ema-decay", "0.99999999999999999"], "--ema-decay: expected a decay in [0, 1) (0: off), got 0.99999999999999999, "
                                             "which is 1.0 as a float"),
    (["--modality-dropout=0.99999999999999999"], "--modality-dropout: expected a number in [0, 1), got "
                                                 "0.99999999999999999, which is 1.0 as a float"),
    (["--validation-split", "1.00000000000000001"], "got 1.00000000000000001, which is 1.0 as a float"),
    (["--encoder-input-dropout", "0.99999999999999999"], "got 0.99999999999999999, which is 1.0 as a float"),
    # a message that goes on with its own "which is": the float read in brackets
    (["--lr", "1000000000000000000000000000000000000000000001"],
     "got 1000000000000000000000000000000000000000000001 (1e+45 as a float), which is too large for float32"),
    # the last of a flag given twice, as argparse takes it
    (["--ema-decay", "2", "--ema-decay", "1.00000000000000000001"], "got 1.00000000000000000001, which is 1.0 as a float"),
])
def test_a_range_error_shows_the_number_typed_beside_the_float_read(train_argv, capsys, flags, shown) -> None:
    """`--ema-decay 0.99999999999999999` (in [0, 1) as typed) was refused as
    "got 1.0", a value never typed; now as the Python API says it."""
    one_line_error(capsys, train_argv + flags, shown)


@pytest.mark.parametrize("flags, shown", [
    (["--ema-decay", "2"], "got 2.0"),  # the same number: as before
    (["--lr", "-0.000001"], "got -1e-06"),
    (["--ema-decay", "0.99999999999999999", "--ema-decay", "2"], "got 2.0"),
])
def test_a_range_error_of_a_number_the_float_holds_is_unchanged(train_argv, capsys, flags, shown) -> None:
    line = one_line_error(capsys, train_argv + flags, shown)
    assert "as a float" not in line


@pytest.mark.parametrize("value, shown", [
    ("1e-46", "got 1e-46, which is 0 in float32"),
    ("1e39", "got 1e+39, which is too large for float32"),
])
def test_neighborhood_temperature_out_of_float32_offers_the_flag_s_0_not_none(train_argv, capsys, value, shown) -> None:
    """`--neighborhood-temperature 1e-46` passed the flag's own check and was
    refused by the settings' as "expected ..., or None for the contrastive
    objective's": None is no value the flag takes (0 is)."""
    line = one_line_error(capsys, train_argv + ["--neighborhood-temperature", value],
                          "--neighborhood-temperature: expected a finite positive number, or 0 for the contrastive "
                          "objective's", shown)
    assert "None" not in line
