#!/usr/bin/env python
"""Before/after: how each case of ours changed between two `bench.py --json` runs.

    python benchmarks/compare.py before.json after.json

For every case present in both, prints ours before and after (in the case's
unit), the change (after / before as a speed factor: > 1 is faster) and the
speed-ups against the other frameworks in each run.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Dict, Tuple


def _rows(doc: dict) -> Dict[Tuple[str, str], dict]:
    return {(r["section"], r["case"]): r for r in doc["rows"]}


def _faster(before: dict, after: dict) -> float:
    """after / before as a speed factor (> 1: the after run is faster)."""
    b, a = before["seconds_per_call"]["ours"]["median"], after["seconds_per_call"]["ours"]["median"]
    return b / a


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("before")
    ap.add_argument("after")
    args = ap.parse_args(argv)
    with open(args.before) as fh:
        before = _rows(json.load(fh))
    with open(args.after) as fh:
        after = _rows(json.load(fh))
    print(f"{'case':70}  {'ours before':>12}  {'ours after':>12}  {'faster':>7}  speed-ups before -> after")
    for key, new in after.items():
        old = before.get(key)
        if old is None or "ours" not in old["value"] or "ours" not in new["value"]:
            continue
        ups = ", ".join(
            f"vs {fw} {old['speedup_vs'].get(fw, float('nan')):.2f}x -> {x:.2f}x"
            for fw, x in new["speedup_vs"].items()
            if x is not None
        )
        unit = f"us/{new['unit']}" if new["kind"] == "latency" else f"{new['unit']}s/s"
        name = f"{key[0][:2]} {key[1]}"[:70]
        print(f"{name:70}  {old['value']['ours']:12.4g}  {new['value']['ours']:12.4g}  {_faster(old, new):6.2f}x  {ups}  [{unit}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
