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


def _run(script, monkeypatch, tmp_path, capsys, *args):
    """``digits_views.py ARGS --json FILE``: what it printed and the JSON it wrote."""
    harness = sys.modules["uci_multifeature"]
    monkeypatch.setattr(harness, "RECIPE", harness.RECIPE)  # restored after the test
    out = tmp_path / "result.json"
    assert script.main([*args, "--json", str(out)]) == 0
    return capsys.readouterr().out, json.loads(out.read_text())


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
    printed, result = _run(script, monkeypatch, tmp_path, capsys,
                           "--layouts", "halves", "--splits", "0", "--seeds", "0", "--set", "epochs=2")
    assert "recipe uci_multifeature.fit_views with epochs=2" in printed
    assert "scikit-learn digits, halves (2 views), split random_state=0: 1437 train / 360 held-out events" in printed
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
    printed, result = _run(script, monkeypatch, tmp_path, capsys,
                           "--layouts", "halves", "--splits", "0", "--seeds", "1", "--set", "epochs=1", "--members", "2")
    assert "recipe uci_multifeature.fit_ensemble of 2 with epochs=1" in printed
    (split,) = result["digits"]["halves"]
    # the two members' embeddings side by side: the binder and the hidden read-out are measured too
    (run,) = split["runs"]
    assert run["binder_auc"] is not None and run["hidden_knn"] is not None


# ------------------------------------------------ --layouts breast_cancer: natural views, not cut
# scikit-learn's breast-cancer data as three views (mean / standard error / worst of ten measurements)

def test_the_views_are_the_three_statistics_of_the_ten_measurements(script):
    from sklearn.datasets import load_breast_cancer

    raw = load_breast_cancer()
    data = script.digit_views("breast_cancer")
    assert list(data.views) == ["mean", "se", "worst"]
    assert all(v.shape == (569, 10) and v.dtype == np.float64 for v in data.views.values())
    np.testing.assert_array_equal(np.concatenate(list(data.views.values()), axis=1), raw.data)
    np.testing.assert_array_equal(data.labels, raw.target)
    # the same measurement in each view: column i of every view names one quantity
    names = list(raw.feature_names)
    assert [names[i] for i in (0, 10, 20)] == ["mean radius", "radius error", "worst radius"]


def test_the_chance_level_of_class_precision_is_given(script):
    data = script.digit_views("breast_cancer")
    benign = 357 / 569
    assert script.chance_precision(data) == pytest.approx(benign ** 2 + (1 - benign) ** 2)
    assert 0.5 < script.chance_precision(data) < benign


def test_the_default_run_is_still_the_digits_alone(script):
    assert script.DEFAULT_LAYOUTS == ("halves", "quadrants")
    assert set(script.LAYOUTS) == {"halves", "quadrants", "breast_cancer"}


def test_breast_cancer_runs_end_to_end_with_ten_wide_views(script, tmp_path, monkeypatch, capsys):
    # one epoch of the recipe: the harness (exact CCA per pair on 10-column views), not the learning, is under test
    printed, result = _run(script, monkeypatch, tmp_path, capsys,
                           "--layouts", "breast_cancer", "--splits", "0", "--seeds", "0", "--set", "epochs=1")
    assert "class P@1 by chance 0.532, majority share 0.627" in printed
    assert "455 train / 114 held-out events" in printed
    assert "digits" not in result
    bc = result["breast_cancer"]
    assert bc["chance_class_precision_at_1"] == pytest.approx(0.532, abs=5e-4)
    (split,) = bc["splits"]
    assert (split["n_train"], split["n_test"]) == (455, 114)
    assert len(split["summary"]["retrieval"]) == 6  # every ordered pair of the three views
    for pair, scores in split["anchors"]["cca"].items():
        assert all(np.isfinite(v) and 0.0 <= v <= 1.0 for v in scores.values()), pair


def test_docs_objectives_breast_cancer_table_is_the_stored_run():
    """docs/objectives.md quotes benchmarks/results/breast-cancer-views.json
    to the decimals it prints."""
    doc = (REPO / "docs" / "objectives.md").read_text(encoding="utf-8")
    start = doc.index("### On data the recipe was never tuned on: scikit-learn's breast-cancer views")
    rows = [line for line in doc[start:doc.index("\n### ", start + 1)].splitlines() if line.startswith("| ") and line[2].isdigit()]
    result = json.loads((REPO / "benchmarks" / "results" / "breast-cancer-views.json").read_text())
    assert result["recipe"] == "grapheme_multimodal.uci.fit_views"  # the defaults, nothing --set
    splits = result["breast_cancer"]["splits"]
    assert len(rows) == len(splits) == 3

    def pm(stats):
        return f"{stats['mean']:.3f} ± {stats['std']:.3f}"

    for row, split in zip(rows, splits):
        summary, anchors = split["summary"], split["anchors"]
        assert split["seeds"] == [0, 1, 2]
        cells = [str(split["split_random_state"])]
        for metric in ("class_precision_at_1", "instance_recall_at_1"):
            mv = summary["anchors"]["multiview_mean_retrieval"]
            cells.append(f"{pm(summary['mean_retrieval'][metric])} ({summary['anchors']['cca_mean_retrieval'][metric]:.3f} "
                         f"/ {mv['MCCA'][metric]:.3f} / {mv['GCCA'][metric]:.3f})")
        within = summary["pairs_within_tolerance_of_cca"]
        cells.append(f"{within['class_precision_at_1']} / {within['instance_recall_at_1']} of 6")
        cells.append(f"{pm(summary['fused_knn'])} ({anchors['raw_knn']:.3f})")
        cells.append(f"{pm(summary['fused_probe'])} ({anchors['raw_probe']:.3f})")
        cells.append(f"{summary['two_view_pairs_at_least_raw']} of 3")
        cells.append(pm(summary["binder_auc"]))
        assert row == "| " + " | ".join(cells) + " |"
