#!/usr/bin/env python
"""Benchmark suite: our library against NumPy and PyTorch eager (CPU), same
model, same weights (loaded from our `state_dict`), same data, same threads.

    python benchmarks/bench.py                 # full run (a few minutes)
    python benchmarks/bench.py --quick         # smoke run (seconds)
    python benchmarks/bench.py --json out.json # also write every number

Cases (issue 6): 1 featurising text, 2 per-event forward latency, 3 batched
forward throughput (+ GFLOP/s against the machine's sgemm rate), 4 training
step (once the library can train), 5 peak RSS of 3 at B=4096. Outputs are
checked to agree (1e-4) before anything is timed; a disagreement aborts
the run with exit status 2.

Needs: numpy, networkx, the installed library; torch optional (skipped with
a note when `import torch` fails); psutil not needed (RSS is read from /proc).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from threads import pin_threads  # noqa: E402  (no numpy inside)

SECTIONS = ("featurise", "event", "batched", "training", "sgemm", "memory")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny repeats and sizes: a smoke run, numbers not meaningful")
    ap.add_argument("--json", metavar="PATH", help="write all results as JSON to PATH")
    ap.add_argument("--threads", type=int, default=2, help="threads for every framework (default 2)")
    ap.add_argument("--repeats", type=int, help="samples per case (default 15; more on a noisy machine)")
    ap.add_argument("--no-torch", action="store_true", help="skip PyTorch even when it is installed")
    ap.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="run only these sections")
    return ap


def parse_args(argv=None) -> argparse.Namespace:
    ap = parser()
    args = ap.parse_args(argv)
    # else pin_threads' traceback; --repeats 0 ran the default's samples unsaid, -1 an IndexError after the run
    if args.threads < 1:
        ap.error(f"--threads: expected a positive number of threads, got {args.threads}")
    if args.repeats is not None and args.repeats < 1:
        ap.error(f"--repeats: expected a positive number of samples, got {args.repeats}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    pin_threads(args.threads)  # before NumPy loads: BLAS reads its thread count once

    import report
    from jsonfile import writable_output, write_json
    from suite import AgreementError, Suite
    from timing import Settings

    reason = writable_output(args.json)  # before the run, not a traceback after it (jsonfile loads NumPy: after pin_threads)
    if reason:
        parser().error(f"--json: {reason}")
    settings = Settings.quick() if args.quick else Settings()
    if args.repeats is not None:
        settings = dataclasses.replace(settings, repeats=args.repeats)
    suite = Suite(settings, quick=args.quick, threads=args.threads, with_torch=not args.no_torch)
    suite.machine()
    steps = {
        "featurise": suite.featurise,
        "event": suite.per_event,
        "batched": suite.batched,
        "training": suite.training,
        "sgemm": suite.sgemm,
        "memory": suite.memory,
    }
    try:
        for name in SECTIONS:
            if name in args.only:
                print(f"... {name}", file=sys.stderr, flush=True)
                steps[name]()
    except AgreementError as exc:
        print(f"agreement check failed, nothing more timed: {exc}", file=sys.stderr)
        return 2
    suite.finish()
    print(report.render(suite.results))
    if args.json:
        doc = report.to_json(suite.results, {"quick": args.quick, "threads": args.threads, "timing": vars(settings)})
        write_json(args.json, doc, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
