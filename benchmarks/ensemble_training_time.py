"""How long an ensemble of recipe models takes to train, its members in
turn or at once (``uci.fit_ensemble(n_jobs=...)``), beside one model.

Usage:
    python benchmarks/ensemble_training_time.py [--split 0] [--members 2 3] [--repeats 2] [--json PATH]

On one stratified 80/20 split of UCI Multiple Features (the demo's data),
the recipe with its own early stopping, seed 0: one model, then for each
``--members K`` the K members in turn (``n_jobs=None``), one per CPU at a
time (``n_jobs=-1``, where K exceeds the CPUs) and all at once
(``n_jobs=K``, as ``grapheme-mm train --members K`` trains them). Every member is bit for bit the same either way
(``tests/test_parallel_members.py``), so only the wall time differs; the
ratio of process CPU time to wall time shows how many cores were busy.
Medians of ``--repeats`` runs, each printed; these machines are noisy.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import grapheme_multimodal as gm
from grapheme_multimodal import uci
from grapheme_multimodal.datasets import load_multiple_features, train_test_split

from jsonfile import cpu_description, refuse_unwritable, write_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", type=int, default=0, help="the split's random_state (default 0)")
    parser.add_argument("--members", type=int, nargs="+", default=[2, 3], help="ensemble sizes (default 2 3)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each (default 2)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results here")
    args = parser.parse_args()
    refuse_unwritable(parser, args.json)  # before the run, not a traceback after it
    if args.repeats < 1:  # else "no median for empty data", a traceback
        parser.error(f"--repeats: expected a positive number of runs, got {args.repeats}")
    if min(args.members) < 1:  # else fit_ensemble's traceback after the first case trained
        parser.error(f"--members: expected positive ensemble sizes, got {args.members}")

    train, _ = train_test_split(load_multiple_features(), seed=args.split)
    cases = [("one model", 1, None)]
    for k in args.members:
        cases += [(f"{k} members in turn", k, None), (f"{k} members all at once", k, k)]
        if k > os.cpu_count():
            cases.append((f"{k} members, one per CPU", k, -1))
    print(f"grapheme-multimodal {gm.__version__}, {gm.get_num_threads()} threads; UCI split {args.split}, "
          f"{train.n_events} training digits")
    runs = {label: [] for label, _, _ in cases}
    for repeat in range(args.repeats):
        for label, k, jobs in cases:  # interleaved: a slow spell of the machine falls on every case alike
            wall, cpu = time.perf_counter(), time.process_time()
            uci.fit_ensemble(train.views, 0, members=k, n_jobs=jobs)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            runs[label].append({"seconds": wall, "cpu_per_wall": cpu / wall})
            print(f"  run {repeat}: {label}: {wall:.1f} s (CPU time / wall time {cpu / wall:.2f})", flush=True)
    summary = {label: statistics.median(r["seconds"] for r in rs) for label, rs in runs.items()}
    print("\nmedian wall time")
    for label, seconds in summary.items():
        print(f"  {label:<26} {seconds:6.1f} s  ({seconds / summary['one model']:.2f} x one model)")
    if args.json is not None:
        write_json(args.json, {"doc": __doc__, "split": args.split, "threads": gm.get_num_threads(),
                               "versions": {"grapheme-multimodal": gm.__version__, "cpu": cpu_description()},
                               "runs": runs, "median_seconds": summary})


if __name__ == "__main__":
    main()
