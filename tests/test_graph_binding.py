"""Content matters: a binder on WL text features pairs words with their own
signal far above chance; on the 18 fingerprint features it cannot."""

import importlib.util
from pathlib import Path

import numpy as np

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "wl_binding.py"


def _example():
    spec = importlib.util.spec_from_file_location("wl_binding", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_wl_binder_pairs_texts_with_their_signal_far_above_chance():
    results = _example().run(n_train=1200, n_test=100, length=6, dim=128, iterations=2, seed=0)
    wl, fp = results["wl"], results["fingerprint"]
    assert wl["chance_top1"] == 0.01
    assert wl["top1"] > 0.5, wl  # 50x chance
    assert wl["auc"] > 0.95, wl
    # Every text has the same fingerprint, so nothing ranks its own signal first.
    assert fp["top1"] <= 0.05 and abs(fp["auc"] - 0.5) < 0.1, fp


def test_pairing_metrics_on_known_scores():
    ex = _example()
    w = np.eye(2)
    perfect = ex.pairing_metrics(np.eye(2), np.eye(2), w)
    assert perfect["top1"] == 1.0 and perfect["auc"] == 1.0
    swapped = ex.pairing_metrics(np.eye(2), np.eye(2)[::-1], w)
    assert swapped["top1"] == 0.0 and swapped["auc"] == 0.0
    tied = ex.pairing_metrics(np.ones((3, 2)), np.ones((3, 2)), w)
    assert tied["top1"] == 0.0, "ties never count as a correct pairing"
