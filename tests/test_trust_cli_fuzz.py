"""Defects a generated (hypothesis) fuzz of ``grapheme-mm``'s argv and of
``distributed``'s arguments found; one deterministic test each."""

from __future__ import annotations

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal.cli import main


def one_line_error(capsys, argv, words) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("grapheme-mm: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert words in err, err
    return err


def test_demo_json_named_as_another_format_is_refused_before_training(tmp_path, capsys, monkeypatch) -> None:
    """`demo --json out.npy` trained for minutes, then wrote JSON text into a file named as a NumPy array (embed and
    train refuse an output named as another format than the one they write)."""
    pytest.importorskip("matplotlib")
    pytest.importorskip("sklearn")
    import grapheme_multimodal.demo as demo

    def no_training(*args, **kwargs):
        raise AssertionError("the demo trained: the --json name was not checked first")

    monkeypatch.setattr(demo, "run_demo", no_training)
    out = tmp_path / "run"
    one_line_error(capsys, ["demo", "--no-progress", "--out", str(out), "--json", str(tmp_path / "table.npy")],
                   f"--json: {tmp_path / 'table.npy'} is named as a NumPy array (.npy), but this option writes JSON (.json); "
                   "expected a name ending in .json")
    assert not out.exists()  # the folder it made for the run is removed again
    assert list(tmp_path.iterdir()) == []


#: An .npy header whose dict is cut off inside its shape tuple: numpy re-tokenizes such a header before
#: literal_eval, and tokenize's TokenError is no ValueError.
CUT_HEADER = b"\x93NUMPY\x01\x00\x40\x00{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999, 5), }     \n"


@pytest.mark.parametrize("name", ["cut.npy", "cut.npz"])
def test_an_npy_header_cut_inside_its_dict_is_one_line(tmp_path, capsys, name) -> None:
    """`train -m visual=cut.npy` (a header cut inside its dict) ended in a tokenize.TokenError traceback."""
    import zipfile

    path = tmp_path / name
    if name.endswith(".npz"):
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("x.npy", CUT_HEADER)
    else:
        path.write_bytes(CUT_HEADER)
    out = tmp_path / "m.safetensors"
    one_line_error(capsys, ["train", "-m", f"visual={path}", "-o", str(out), "--epochs", "1", "--no-progress"],
                   f"{path}{':x' if name.endswith('.npz') else ''}: not a numeric .npy file")
    assert not out.exists()


@pytest.mark.ray
@pytest.mark.timeout(120)
@pytest.mark.parametrize("call", ["fit", "embed_dataset"])
def test_cpus_each_no_node_holds_name_a_bound_on_them(ray_session, call) -> None:
    """`distributed.fit(..., cpus_per_worker=3)` on nodes of 2 CPUs said "cpus_per_worker: ... expected at most 0":
    a count of workers, under the name of the CPUs each, and no bound the user could meet."""
    import grapheme_multimodal as gm
    from grapheme_multimodal import distributed

    model = gm.LearnableMultiModal(input_dims={"visual": 5}, embed_dim=8, hidden_dim=8, num_heads=2)
    x = np.random.default_rng(0).normal(size=(8, 5)).astype(np.float32)
    arg = "cpus_per_worker" if call == "fit" else "cpus_per_actor"
    with pytest.raises(gm.InvalidValueError) as info:
        if call == "fit":
            distributed.fit(model, {"visual": x}, num_workers=1, cpus_per_worker=3, epochs=1, progress=False)
        else:
            ds = ray_session.data.from_items([{"v": row} for row in x])
            distributed.embed_dataset(ds, model, {"visual": "v"}, num_actors=1, cpus_per_actor=3)
    text = str(info.value)
    assert text.startswith(f"{arg}: 1 "), text
    assert f"expected {arg} at most 2 (the most CPUs a node has)" in text, text
    assert "expected at most 0" not in text


def test_training_rows_that_are_all_the_same_are_named_by_the_file_not_data_and_standardize(tmp_path, capsys) -> None:
    """`train -m tactile=const.npy` (every row the same) said "data: all 19 rows hold the same tactile values;
    standardize=True learns ... expected rows that differ, or standardize=False": a Python argument and an option
    train has no flag for."""
    path = tmp_path / "const.npy"
    np.save(path, np.ones((24, 5)))
    out = tmp_path / "m.safetensors"
    err = one_line_error(capsys, ["train", "-m", f"tactile={path}", "-o", str(out), "--epochs", "1", "--no-progress",
                                  "--embed-dim", "8", "--hidden-dim", "8"],
                         f"--modality: of the training rows of tactile={path}, all 19 rows hold the same tactile values;")
    assert "standardize" not in err and "data:" not in err
    assert "expected rows that differ" in err
    assert not out.exists()


def test_fits_refusal_of_rows_alike_carries_them_as_data_and_pickles() -> None:
    """The command line words that refusal from ``constant_rows``, not by taking fit's message apart; the
    attribute survives pickling (a Ray worker's error crosses processes so)."""
    import pickle

    model = gm.LearnableMultiModal(input_dims={"visual": 5}, embed_dim=8, hidden_dim=8, num_heads=2)
    with pytest.raises(gm.InvalidValueError, match=r"^data: all 6 rows hold the same visual values; ") as info:
        model.fit({"visual": np.ones((6, 5), np.float32)}, epochs=1, progress=False, standardize=True)
    assert info.value.constant_rows == "all 6 rows hold the same visual values"
    again = pickle.loads(pickle.dumps(info.value))
    assert again.constant_rows == info.value.constant_rows and str(again) == str(info.value)


@pytest.mark.parametrize("value", ["inf", "nan", "-1"])
def test_a_bad_neighborhood_temperature_offers_the_flag_s_0_not_python_s_none(tmp_path, capsys, value) -> None:
    """`train --neighborhood-temperature inf` said "expected a finite positive number, or None for the contrastive
    objective's": None is no value the flag takes (0 is)."""
    np.save(tmp_path / "a.npy", np.random.default_rng(0).normal(size=(24, 5)))
    out = tmp_path / "m.safetensors"
    err = one_line_error(capsys, ["train", "-m", f"visual={tmp_path / 'a.npy'}", "-o", str(out), "--epochs", "1",
                                  "--no-progress", "--neighborhood-temperature", value],
                         "--neighborhood-temperature: expected a finite positive number, or 0 for the contrastive "
                         f"objective's, got {float(value)}")
    assert "None" not in err
    assert not out.exists()
