"""Runs the hypothesis fuzzing of ``tests/fuzz_core.py`` in a subprocess (an
abort must not take this run down) and checks its counts: no panic, no
abort, no non-finite output from finite inputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def test_fuzzing_finds_no_panic_abort_or_nan_leak(tmp_path):
    summary = tmp_path / "fuzz.json"
    env = {**os.environ, "FUZZ_SUMMARY": str(summary), "FUZZ_EXAMPLES": os.environ.get("FUZZ_EXAMPLES", "40")}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(HERE / "fuzz_core.py"), "-q", "-p", "no:cacheprovider", "-x"],
        capture_output=True, text=True, env=env, timeout=900,
    )
    assert proc.returncode >= 0, f"the fuzzed interpreter was killed by signal {-proc.returncode}: {proc.stdout[-3000:]}"
    assert proc.returncode == 0, proc.stdout[-5000:]
    total = json.loads(summary.read_text())["total"]
    assert total["cases"] > 0
    assert total.get("panics", 0) == 0 and total.get("nan_leaks", 0) == 0, total
