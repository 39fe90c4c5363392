"""The benchmark suite runs end to end and its agreement checks pass. Asserts
nothing about speed (timings belong to benchmarks/, not to tests)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

# the benchmark scripts end to end: run once, on the main Python
# (.ci/python-versions.sh leaves main_only out on 3.9 and 3.13).
pytestmark = pytest.mark.main_only

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench.py"

pytest.importorskip("networkx")


def _quick_bench(tmp_path: Path, *args: str) -> tuple:
    """Runs ``bench.py --quick *args``; its stdout and its JSON document."""
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", *args, "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, json.loads(out.read_text())


def test_quick_run_agrees_across_frameworks_and_writes_json(tmp_path: Path) -> None:
    # torch is left out: importing it alone takes seconds, and it is never a test dependency.
    stdout, doc = _quick_bench(tmp_path, "--no-torch")
    assert doc["checks"] and all(c["ok"] for c in doc["checks"])
    checked = {c["what"].split(":")[0] for c in doc["checks"]}
    assert {"featurise", "per event"} <= checked and any(w.startswith("batched") for w in checked)
    sections = {row["section"][:2] for row in doc["rows"]}
    assert {"1.", "2.", "3."} <= sections
    for row in doc["rows"]:
        assert all(v > 0 for v in row["value"].values()), row["case"]
    assert {m["framework"] for m in doc["memory"]} == {"ours", "numpy"}
    assert all(m["peak_rss_bytes"] >= m["baseline_rss_bytes"] > 0 for m in doc["memory"])
    assert "agreement checks" in stdout


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed (benchmarks only)")
def test_torch_reference_agrees_with_ours(tmp_path: Path) -> None:
    _, doc = _quick_bench(tmp_path, "--only", "event", "batched")
    torch_checks = [c for c in doc["checks"] if "torch" in c["what"]]
    assert len(torch_checks) == 9 and all(c["ok"] for c in torch_checks)


def _suite_module():
    sys.path.insert(0, str(BENCH.parent))
    import suite

    return suite


def test_agreement_check_rejects_differences_nan_and_shape_mismatch() -> None:
    import numpy as np

    suite = _suite_module()
    a = np.zeros((2, 3), dtype=np.float32)
    assert suite.compare("same", a, a + 5e-5, 1e-4)["ok"]
    with pytest.raises(suite.AgreementError, match="exceeds"):
        suite.compare("far", a, a + 1e-3, 1e-4)
    with pytest.raises(suite.AgreementError):
        suite.compare("nan", a, np.full_like(a, np.nan), 1e-4)
    with pytest.raises(suite.AgreementError, match="shapes"):
        suite.compare("shape", a, a[:1], 1e-4)


def test_flop_count_is_twice_the_weight_sizes_of_the_matmuls_used() -> None:
    import grapheme_multimodal as gm

    suite = _suite_module()
    model = gm.LearnableMultiModal(seed=0, embed_dim=32, hidden_dim=48, num_heads=2, input_dims={"visual": 5})
    shapes = model.parameter_shapes()
    present = [0, 2]  # visual (5 inputs), linguistic (18)
    names = [f"encoder.{gm.Modality(m)}.weight" for m in present] + [f"fusion.{i}.weight" for i in range(3)]
    expected = sum(2 * shapes[n][0] * shapes[n][1] for n in names)
    assert suite.flops_per_event(32, 48, [5, 18]) == expected


def test_every_interleaved_sample_follows_its_own_settling_calls() -> None:
    """Another framework's BLAS threads spin for ~0.1 s after its call; a
    sample taken right after it measured half the speed (benchmarks/README)."""
    spec = importlib.util.spec_from_file_location("bench_timing", BENCH.parent / "timing.py")
    timing = importlib.util.module_from_spec(spec)
    sys.modules["bench_timing"] = timing  # dataclasses look their module up while the class is made
    spec.loader.exec_module(timing)
    log: list = []

    def call(name: str):
        return lambda: log.append(name)

    settings = timing.Settings(warmup_s=0.0, settle_s=0.02, min_sample_s=0.0, repeats=3, max_total_s=5.0)
    timing.measure_many({"a": call("a"), "b": call("b")}, settings)
    assert log[:2] == ["a", "b"]  # the first calls, outside every clock (no warm-up, no calibration here)
    runs, start = [], 2  # then runs of one framework's calls: its settling, then its sample
    for i in range(3, len(log) + 1):
        if i == len(log) or log[i] != log[i - 1]:
            runs.append(i - start)
            start = i
    # 6 samples in rounds a b, b a, a b (the rotation joins b b and a a): 4 runs, each of at least
    # one untimed call before its timed one, and settling for settle_s, not one call, makes them
    # long. Not every run: a call the OS stalls past settle_s (a loaded CI machine) ends its
    # settling at one call, as it should (CI saw runs of 137260, 192587, 135232 and 2 calls)
    assert len(runs) == 4 and min(runs) >= 2 and max(runs) > 20, runs
