"""A workload of ours in a loop, for a profiler to watch:

    py-spy record --native -o event.svg -- python benchmarks/profile_loop.py event
    perf record -g -o batched.data -- python benchmarks/profile_loop.py batched --batch 4096
    perf report -i batched.data --no-children --sort symbol

Workloads: ``event`` (uncached `fuse_event` on the 3-modality text event of
the benchmark), ``batched`` (`encode_and_fuse` on 7 modalities, or
`--modalities 3`), ``train`` (`train_step` with the default objectives,
`--batch` rows), ``featurise`` (`fingerprints` of text graphs).

    valgrind --tool=callgrind python benchmarks/profile_loop.py train --batch 1 --seconds 0 --calls 300
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from threads import pin_threads  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("workload", choices=("event", "batched", "train", "featurise"))
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--modalities", type=int, choices=(3, 7), default=7)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--calls", type=int, default=0, help="at least this many calls (for instruction counts)")
    args = ap.parse_args()
    pin_threads(args.threads)

    import grapheme_multimodal as gm
    import workloads
    from suite import _text_event

    model = gm.LearnableMultiModal(seed=0)
    if args.workload == "event":
        event = _text_event(workloads.event_texts())

        def step() -> None:
            model.clear_cache()
            model.fuse_event(event)

    elif args.workload == "batched":
        present = list(range(7)) if args.modalities == 7 else list(workloads.THREE_MODALITIES)
        xs = workloads.modality_inputs(args.batch, present)

        def step() -> None:
            model.encode_and_fuse(xs)

    elif args.workload == "train":
        present = list(range(7)) if args.modalities == 7 else list(workloads.THREE_MODALITIES)
        xs = workloads.modality_inputs(args.batch, present)

        def step() -> None:
            model.train_step(xs)

    else:
        texts = workloads.texts(500)

        def step() -> None:
            gm.fingerprints([gm.Graph.from_text(t) for t in texts])

    calls, end = 0, time.perf_counter() + args.seconds
    while time.perf_counter() < end or calls < args.calls:
        step()
        calls += 1
    elapsed = max(time.perf_counter() - end + args.seconds, 1e-9)
    print(f"{args.workload}: {calls} calls in {elapsed:.3g} s ({elapsed / max(calls, 1) * 1e6:.1f} us per call)")


if __name__ == "__main__":
    main()
