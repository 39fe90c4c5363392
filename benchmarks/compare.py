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


def _load(ap: argparse.ArgumentParser, path: str) -> Dict[Tuple[str, str], dict]:
    """The cases of one ``bench.py --json`` file; a missing, truncated or
    other file is one ``error:`` line naming it (exit 2), not a traceback."""
    try:
        with open(path) as fh:
            doc = json.load(fh)
    except OSError as err:
        ap.error(f"{path}: cannot read it: {err.strerror or err}")
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        ap.error(f"{path}: not JSON (truncated?): {err}")
    try:
        rows = _rows(doc)
        for r in rows.values():
            r["value"], r["speedup_vs"], r["unit"], r["kind"], r["seconds_per_call"]["ours"]  # what main reads
    except (KeyError, TypeError) as err:
        ap.error(f"{path}: expected the JSON of benchmarks/bench.py --json (rows of cases), got another file "
                 f"({type(err).__name__}: {err})")
    return rows


def _settings(path: str) -> dict:
    with open(path) as fh:
        settings = json.load(fh).get("settings")
    return settings if isinstance(settings, dict) else {}


def _faster(before: dict, after: dict) -> float:
    """after / before as a speed factor (> 1: the after run is faster), per
    unit of work: a --quick run's call does less work than a full run's (a
    call on 1,453 characters against 13,802 read as 4.7 times slower)."""
    b = before["seconds_per_call"]["ours"]["median"] / before.get("work_per_call", 1)
    a = after["seconds_per_call"]["ours"]["median"] / after.get("work_per_call", 1)
    return b / a


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("before")
    ap.add_argument("after")
    args = ap.parse_args(argv)
    before, after = _load(ap, args.before), _load(ap, args.after)
    if not set(before) & set(after):  # else the header alone, as if nothing had changed
        ap.error(f"{args.before} and {args.after} have no case in common (runs of other --only sections?)")
    quick = [_settings(args.before).get("quick"), _settings(args.after).get("quick")]
    if quick[0] != quick[1]:
        print(f"note: one run is --quick and the other not (quick: before {quick[0]}, after {quick[1]}): "
              "their sizes differ, so the speeds are not like for like", file=sys.stderr)
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
