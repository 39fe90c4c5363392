"""benchmarks/digits_views.py: scikit-learn's digits cut into views, scored
by the UCI benchmark's own harness."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from conftest import REPO, load_script
from grapheme_multimodal import uci

pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def script():
    sys.path.insert(0, str(REPO / "benchmarks"))  # the script imports its sibling harness
    try:
        yield load_script("benchmarks/digits_views.py")
    finally:
        sys.path.remove(str(REPO / "benchmarks"))


@pytest.mark.parametrize("layout, shape", [("halves", (2, 4, 8)), ("quadrants", (2, 2, 4, 4))])
def test_the_views_are_the_images_cut_into_parts(script, layout, shape):
    from sklearn.datasets import load_digits

    digits = load_digits()
    data = script.digit_views(layout)
    np.testing.assert_array_equal(data.labels, digits.target)
    views = list(data.views.values())
    assert all(v.dtype == np.float32 and v.shape == (1797, 64 // len(views)) for v in views)
    if layout == "halves":
        images = np.concatenate([v.reshape(-1, 4, 8) for v in views], axis=1)
    else:
        rows = [np.concatenate([views[2 * r].reshape(-1, 4, 4), views[2 * r + 1].reshape(-1, 4, 4)], axis=2) for r in (0, 1)]
        images = np.concatenate(rows, axis=1)
    np.testing.assert_array_equal(images, digits.images)


def test_an_unknown_layout_is_refused(script):
    with pytest.raises(ValueError, match="layout: expected one of .*got 'thirds'"):
        script.digit_views("thirds")


def test_the_script_runs_end_to_end_and_writes_its_figures(script, tmp_path, monkeypatch, capsys):
    # the recipe with a 2-epoch budget (--set): the harness, not the learning, is under test here
    harness = sys.modules["uci_multifeature"]
    monkeypatch.setattr(harness, "RECIPE", harness.RECIPE)  # restored after the test
    out = tmp_path / "digits.json"
    assert script.main(["--layouts", "halves", "--splits", "0", "--seeds", "0", "--set", "epochs=2",
                        "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "recipe uci_multifeature.fit_views with epochs=2" in printed
    assert "scikit-learn digits, halves (2 views), split random_state=0: 1437 train / 360 held-out events" in printed
    result = json.loads(out.read_text())
    (split,) = result["digits"]["halves"]
    assert (split["n_train"], split["n_test"], split["seeds"]) == (1437, 360, [0])
    summary = split["summary"]
    assert set(summary["retrieval"]) == {"top->bottom", "bottom->top"}
    for stats in summary["retrieval"].values():
        assert 0.0 <= stats["class_precision_at_1"]["mean"] <= 1.0
    assert 0.1 < summary["fused_knn"]["mean"] <= 1.0  # two epochs are already far above chance


def test_set_changes_training_settings_and_refuses_unknown_fields(script):
    harness = sys.modules["uci_multifeature"]
    assert harness.parse_settings(["encoder_skip=true", "encoder_hidden=[64]", "fused_neighbor_space=inputs"]) == {
        "encoder_skip": True, "encoder_hidden": [64], "fused_neighbor_space": "inputs"}
    assert harness.recipe_with({}) is uci.fit_views
    assert harness.recipe_with({"epochs": 2}).__qualname__ == "fit_views with epochs=2"
    with pytest.raises(SystemExit, match=r"--set: unknown TrainingSettings fields \['epoch'\]"):
        harness.recipe_with({"epoch": 2})
    with pytest.raises(SystemExit, match="--set: expected KEY=VALUE, got 'encoder_skip'"):
        harness.parse_settings(["encoder_skip"])


def test_members_measures_an_ensemble_of_recipe_models(script, tmp_path, monkeypatch, capsys):
    harness = sys.modules["uci_multifeature"]
    assert harness.recipe_with({}, 3).__qualname__ == "fit_ensemble of 3"
    assert harness.recipe_with({"epochs": 2}, 2).__qualname__ == "fit_ensemble of 2 with epochs=2"
    with pytest.raises(SystemExit, match="--members: expected a positive number of models, got 0"):
        harness.recipe_with({}, 0)
    monkeypatch.setattr(harness, "RECIPE", harness.RECIPE)  # restored after the test
    out = tmp_path / "digits.json"
    assert script.main(["--layouts", "halves", "--splits", "0", "--seeds", "1", "--set", "epochs=1", "--members", "2",
                        "--json", str(out)]) == 0
    assert "recipe uci_multifeature.fit_ensemble of 2 with epochs=1" in capsys.readouterr().out
    (split,) = json.loads(out.read_text())["digits"]["halves"]
    # the two members' embeddings side by side: the binder and the hidden read-out are measured too
    (run,) = split["runs"]
    assert run["binder_auc"] is not None and run["hidden_knn"] is not None
