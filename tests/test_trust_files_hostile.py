"""Files under hostile use: forged metadata (keys given twice), one output
named two ways inside one block of writes, and ``info`` of a history that
holds NaN."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import io as gio
from grapheme_multimodal.cli import main


def _small_model() -> gm.LearnableMultiModal:
    return gm.LearnableMultiModal(embed_dim=8, hidden_dim=8, num_heads=2, input_dims={"visual": 6}, seed=0)


def _with_header(path, header: dict, out) -> None:
    """``out``: the file at ``path`` with ``header`` (JSON text or a dict) in place of its own."""
    raw = path.read_bytes()
    data = raw[8 + int.from_bytes(raw[:8], "little"):]
    text = (header if isinstance(header, str) else json.dumps(header)).encode()
    text += b" " * (-len(text) % 8)
    out.write_bytes(len(text).to_bytes(8, "little") + text + data)


# ------------------------------------------------------------------ one file by two names
@pytest.mark.parametrize("second", ["sub/../out.bin", "link.bin"])
def test_writing_together_tells_one_file_by_any_of_its_names(tmp_path, monkeypatch, second) -> None:
    """A file written twice in one writing_together block, kept from other
    programs, under two of its names (``out.bin``, ``sub/../out.bin``, a
    link to it): the block told writes to one file apart by the followed
    path, not by where it lives as atomic_write_all does, so the second
    link found the first's file in its place: "created by something else
    while this ran", and nothing was written. Now the later write replaces
    the earlier one, as under one name."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    os.symlink("out.bin", tmp_path / "link.bin")  # dangling until out.bin is written
    with gio.keeping_existing({"--output": "out.bin"}), gio.writing_together():
        gio.atomic_write_bytes("out.bin", b"first")
        gio.atomic_write_bytes(second, b"second")
    assert (tmp_path / "out.bin").read_bytes() == b"second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.bin", "out.bin", "sub"]  # no temporary file left
    with pytest.raises(gm.InvalidValueError, match="are one file"):  # atomic_write_all refuses the pair, as before
        gio.atomic_write_all([("out.bin", lambda f: f.write(b"1")), (second, lambda f: f.write(b"2"))])
    assert (tmp_path / "out.bin").read_bytes() == b"second"


# ------------------------------------------------------------------ NaN in a history
def test_info_of_a_history_holding_nan_names_the_best_number(tmp_path, capsys) -> None:
    """A history may hold NaN (a metric's value; a model's history set by
    hand) and loads with it. ``info`` took the best loss by ``min``, which
    NaN defeats: "best nan (epoch 1)" of losses nan, 1.5, 0.5. Now the best
    is of the losses that are numbers, and left out when none is."""
    model = _small_model()
    model.history = [{"epoch": 1, "loss": math.nan}, {"epoch": 2, "loss": 1.5}, {"epoch": 3, "loss": 0.5}]
    model.save(tmp_path / "nan_first.safetensors")
    assert math.isnan(gm.LearnableMultiModal.load(tmp_path / "nan_first.safetensors").history[0]["loss"])
    assert main(["info", str(tmp_path / "nan_first.safetensors")]) == 0
    assert "loss: first nan, last 0.5000, best 0.5000 (epoch 3)\n" in capsys.readouterr().out

    model.history = [{"epoch": 1, "loss": math.nan}, {"epoch": 2, "loss": math.nan}]
    model.save(tmp_path / "all_nan.safetensors")
    assert main(["info", str(tmp_path / "all_nan.safetensors")]) == 0
    assert "loss: first nan, last nan\n" in capsys.readouterr().out

    model.history = [{"epoch": 1, "loss": 2.0}, {"epoch": 2, "loss": 0.25}, {"epoch": 3, "loss": np.float64(1.0)}]
    model.save(tmp_path / "numbers.safetensors")
    assert main(["info", str(tmp_path / "numbers.safetensors")]) == 0
    assert "loss: first 2.0000, last 1.0000, best 0.2500 (epoch 2)\n" in capsys.readouterr().out
