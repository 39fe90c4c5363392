"""An audit of ``uci``'s public API and ``grapheme-mm demo``: defects found,
one test each (each failed before its fix)."""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle
from pathlib import Path

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import uci
from grapheme_multimodal.cli import main

SMALL = uci.TrainingSettings(epochs=1, embed_dim=8, hidden_dim=8, encoder_hidden=(8,), encoder_output_dim=8,
                             batch_size=16)


def _views(rows: int = 24) -> dict:
    rng = np.random.default_rng(0)
    return {"fou": rng.normal(size=(rows, 5)), "pix": rng.normal(size=(rows, 3))}


# ------------------------------------------------------------------ TrainingSettings.weights
def test_settings_weights_cannot_be_edited_in_place_past_their_checks() -> None:
    """``settings.weights["neighborhood"] = 1.0`` changed frozen settings, checked when made, in place: the
    check that neighborhood has neighbours (and every other check of the weights) was passed by."""
    s = uci.TrainingSettings(weights={"contrastive": 1.0}, neighborhood_neighbors=0)
    for edit in (lambda w: w.__setitem__("neighborhood", 1.0), lambda w: w.update(neighborhood=1.0),
                 lambda w: w.pop("contrastive"), lambda w: w.clear(), lambda w: w.setdefault("binding", 1.0),
                 lambda w: w.popitem(), lambda w: w.__delitem__("contrastive")):
        with pytest.raises(TypeError, match="cannot be changed"):
            edit(s.weights)
    assert s.weights == {"contrastive": 1.0} and s.objectives == {"contrastive": 1.0}
    with pytest.raises(gm.InvalidValueError, match="neighborhood_neighbors: got 0"):  # the way to change them
        dataclasses.replace(s, weights={**s.weights, "neighborhood": 1.0})
    editable = dict(s.weights)
    editable["binding"] = 2.0
    assert s.weights == {"contrastive": 1.0}


def test_settings_with_weights_hash_pickle_copy_and_serialise_as_plain_ones() -> None:
    """``hash(TrainingSettings(weights={...}))`` raised "unhashable type: 'dict'" (the defaults hashed): frozen
    settings could not be a dict key or a cache's argument once weights were given."""
    s = uci.TrainingSettings(weights={"contrastive": 1.0, "binding": 2.0})
    same = uci.TrainingSettings(weights={"binding": 2, "contrastive": 1})
    assert s == same and hash(s) == hash(same)
    assert {s: 1}[same] == 1
    assert hash(s) != hash(uci.TrainingSettings()) or s != uci.TrainingSettings()
    for twin in (pickle.loads(pickle.dumps(s)), copy.deepcopy(s), copy.copy(s), dataclasses.replace(s, seed=0)):
        assert twin == s and hash(twin) == hash(s)
        with pytest.raises(TypeError):
            twin.weights["contrastive"] = 3.0
    # still a dict to whatever reads one
    assert isinstance(s.weights, dict) and repr(s.weights) == "{'contrastive': 1.0, 'binding': 2.0}"
    assert json.loads(json.dumps(dataclasses.asdict(s)))["weights"] == {"contrastive": 1.0, "binding": 2.0}
    assert "weights={'contrastive': 1.0, 'binding': 2.0}" in repr(s)
    assert type(s.weights.copy()) is dict


# ------------------------------------------------------------------ train
@pytest.mark.parametrize("validation", [[1, 2], "visual", np.zeros((4, 5))])
def test_train_refuses_validation_that_is_no_mapping_by_name(validation) -> None:
    """``uci.train(inputs, validation=[...])`` said "cannot convert dictionary update sequence element #0 to a
    sequence", naming no argument (fit_views named it)."""
    with pytest.raises(TypeError, match=r"^validation: expected None or a mapping modality -> \[N, d\] array, got "):
        uci.train({"visual": _views()["fou"]}, SMALL, validation=validation)


# ------------------------------------------------------------------ grapheme-mm demo
def test_demo_epochs_past_adams_step_counter_is_named_by_its_flag(tmp_path, capsys, monkeypatch) -> None:
    """``demo --epochs 99999999999999999999999`` was refused as "epochs: ...", a name the user never typed (train
    names it --epochs). On small random views: the refusal is fit's, before any step."""
    _small_demo_data(monkeypatch)
    out = tmp_path / "run"
    code = main(["demo", "--no-progress", "--out", str(out), "--epochs", "99999999999999999999999"])
    err = capsys.readouterr().err
    assert code == 2, err
    line = err.strip().splitlines()[-1]
    assert line.startswith("grapheme-mm: error: --epochs: 99999999999999999999999 epochs of "), line
    assert "expected at most" in line and "Traceback" not in err
    assert not out.exists()  # the folder it made is removed again


@pytest.mark.parametrize("field, widths", [("encoder_hidden", [16, 8]), ("shared_head", [16, 8]),
                                           ("encoder_objectives", ["contrastive", "binding"])])
def test_settings_given_arrays_or_ranges_compare_and_hash_as_tuples(field, widths) -> None:
    """``TrainingSettings(shared_head=np.array([16, 8])) == ...`` raised numpy's "truth value of an array with more
    than one element is ambiguous", and such settings were unhashable; a list was already held as a tuple."""
    head_fits = {"embed_dim": 8} if field == "shared_head" else {}  # the head outputs the embeddings (checked when made)
    as_array = uci.TrainingSettings(**{field: np.array(widths)}, **head_fits)
    as_tuple = uci.TrainingSettings(**{field: tuple(widths)}, **head_fits)
    assert as_array == as_tuple and hash(as_array) == hash(as_tuple)
    assert getattr(as_array, field) == tuple(widths) and repr(as_array) == repr(as_tuple)
    if field != "encoder_objectives":
        assert uci.TrainingSettings(**{field: range(16, 7, -8)}, **head_fits) == as_tuple
        with pytest.raises(gm.InvalidTypeError, match=rf"^{field}\[0\]: expected an int, got 16.0"):  # still refused
            uci.train({"visual": _views()["fou"]}, dataclasses.replace(SMALL, **{field: np.array([16.0, 8.0])}))


# ------------------------------------------------------------------ run_demo
def _small_demo_data(monkeypatch, rows: int = 400):
    """The demo on small random views: no data download, and the check of the extras (imports of seconds) left out."""
    import grapheme_multimodal.demo as demo
    from grapheme_multimodal.datasets import MultipleFeatures

    views = {k: v.astype(np.float32) for k, v in _views(rows).items()}
    data = MultipleFeatures(views=views, labels=np.arange(rows) % 10)
    monkeypatch.setattr(demo, "load_multiple_features", lambda: data)
    monkeypatch.setattr(demo, "train_test_split", lambda d: (d, d))
    monkeypatch.setattr(demo, "demo_files", lambda out, arg="out_dir": (Path(out).mkdir(parents=True, exist_ok=True), {
        what: Path(out) / name for what, name in demo.DEMO_FILES.items()})[1])
    return demo


def test_run_demo_refuses_a_progress_that_is_no_bool_before_any_work(tmp_path, monkeypatch) -> None:
    """``run_demo(out, progress="no")`` made the folder and loaded the data before fit_views refused it, and left
    the folder."""
    demo = _small_demo_data(monkeypatch)
    monkeypatch.setattr(demo, "load_multiple_features", lambda: pytest.fail("the data were loaded"))
    out = tmp_path / "a" / "run"
    with pytest.raises(TypeError, match="^progress: expected a bool, got str"):
        demo.run_demo(out, SMALL, progress="no", log=lambda line: None)
    assert list(tmp_path.iterdir()) == []


def test_a_refused_run_demo_leaves_no_folder_it_made(tmp_path, monkeypatch) -> None:
    """``run_demo(out, settings)`` with settings the model refuses (found once the data are loaded) left the empty
    folders it had made; grapheme-mm demo removed them, the library did not. A folder that was there stays."""
    demo = _small_demo_data(monkeypatch)
    out = tmp_path / "a" / "run"
    with pytest.raises(gm.InvalidValueError, match="^epochs: expected an int >= 0, got -1"):
        demo.run_demo(out, dataclasses.replace(SMALL, epochs=-1), progress=False, log=lambda line: None)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "there").mkdir()
    with pytest.raises(gm.InvalidValueError, match="^epochs"):
        demo.run_demo(tmp_path / "there", dataclasses.replace(SMALL, epochs=-1), progress=False, log=lambda line: None)
    assert [p.name for p in tmp_path.iterdir()] == ["there"]


# ------------------------------------------------------------------ plotting
def test_plot_history_draws_the_curves_of_later_records_too(tmp_path, monkeypatch) -> None:
    """The panels and curves were read off the first record only: a model's history of a fit without validation
    then one with (or with another objective) was drawn without the validation curves, without a word."""
    pytest.importorskip("matplotlib")
    from grapheme_multimodal import plotting

    drawn = {}
    monkeypatch.setattr(plotting, "_save", lambda fig, path: drawn.update(fig=fig))
    history = [{"epoch": 1, "loss": 1.0, "contrastive": 0.9, "seconds": 0.1},
               {"epoch": 2, "loss": 0.8, "contrastive": 0.7, "reconstruction": 0.5, "val_total": 0.9,
                "val_contrastive": 0.8, "val_reconstruction": 0.6, "seconds": 0.1}]
    plotting.plot_history(history, tmp_path / "curves.png")
    axes = drawn["fig"].axes
    curves = {ax.get_title(): [line.get_label() for line in ax.get_lines()] for ax in axes}
    assert curves == {"loss": ["train", "validation"], "contrastive": ["train", "validation"],
                      "reconstruction": ["train", "validation"]}
    loss = dict(zip((ax.get_title() for ax in axes), axes))["loss"].get_lines()[1].get_ydata()
    assert np.isnan(loss[0]) and loss[1] == 0.9  # no value where the record has none
