"""A/B timing of two builds of the package on the per-event and small-batch
paths, interleaved: on a noisy shared machine two separate runs cannot be
compared, so one worker process per build stays up and the two take turns,
a short timed batch each, for many rounds; what is reported is the median
(and quartiles) of the per-round ratios new / old.

    python benchmarks/ab_event_path.py --old /path/to/old/python --new python \
        [--cases uncached,build,cached,encode1,encode64,train1] [--rounds 41] [--batch-s 0.02] [--cpu 0]

Each ``--old`` / ``--new`` is a directory put first on the worker's
PYTHONPATH (one that holds ``grapheme_multimodal`` with its own built
``_core``). The workloads are bench.py's (``workloads.py``, ``suite._text_event``):

- ``uncached``: ``model.clear_cache(); model.fuse_event(event)`` (3 text graphs, 40/80/120 chars)
- ``build``: 3x ``Graph.from_text`` + ``ModalGraph`` + ``MultiModalEvent``
- ``cached``: ``model.fuse_event(event)`` on a cache hit
- ``core``: ``model._core.encode_event(...)`` alone, the Rust call of an uncached ``fuse_event``
- ``encode1`` / ``encode64``: ``model.encode(xs)``, 7 of 7 modalities, B = 1 / 64
- ``train1``: ``model.train_step(xs)``, B = 1, 7 of 7 modalities
- ``fuse1`` / ``bind1``: ``model.fuse(embeddings)`` of one row (default mask), ``model.bind(a, b)`` of one pair
- ``record1``: ``model.record_fusion(event)`` (a cache hit: the recording's own cost)
- ``eaf4096``: ``model.encode_and_fuse(xs)``, B = 4096; ``train1024``: ``train_step`` at B = 1024
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_CASES = "uncached,build,cached,encode1,encode64,train1"


def _worker() -> None:  # pragma: no cover - runs in the child processes
    sys.path.insert(0, HERE)
    import warnings

    warnings.simplefilter("ignore")  # an untrained model's warnings: the same in both builds, not what is timed
    import numpy as np  # noqa: F401

    import grapheme_multimodal as gm
    import workloads

    setter = getattr(gm, "set_num_threads", None)
    if callable(setter):
        setter(int(os.environ.get("AB_THREADS", "2")))
    texts = workloads.event_texts()

    def text_event():
        event = gm.MultiModalEvent(0)
        for m, text in texts.items():
            event.add_component(gm.ModalGraph(gm.Graph.from_text(text), gm.Modality(m)))
        return event

    model = gm.LearnableMultiModal(seed=0)
    event = text_event()
    model.fuse_event(event)

    def uncached():
        model.clear_cache()
        return model.fuse_event(event)

    def core_call():  # the one Rust call of a miss, as bench.py's breakdown times it
        items = [(c.modality.value, c.graph._g, c.confidence) for c in event.components]
        spec = model._featurizer_spec()
        return lambda: model._core.encode_event(event.id, items, spec)

    def encoder(batch):
        xs = workloads.modality_inputs(batch, list(range(7)), seed=batch)
        return lambda: model.encode(xs)

    def trainer(batch):
        xs = workloads.modality_inputs(batch, list(range(7)), seed=batch)
        m = gm.LearnableMultiModal(seed=0)
        return lambda: m.train_step(xs)

    def eaf(batch):
        xs = workloads.modality_inputs(batch, list(range(7)), seed=batch)
        return lambda: model.encode_and_fuse(xs)

    def one_row():
        return model.encode(workloads.modality_inputs(1, list(range(7)), seed=1))

    def binder():
        emb = one_row()
        a, b = emb[:, 0].copy(), emb[:, 1].copy()
        return lambda: model.bind(a, b)

    makers = {
        "uncached": lambda: uncached,
        "build": lambda: text_event,
        "cached": lambda: (lambda: model.fuse_event(event)),
        "core": core_call,
        "encode1": lambda: encoder(1),
        "encode64": lambda: encoder(64),
        "train1": lambda: trainer(1),
        "fuse1": lambda: (lambda emb: lambda: model.fuse(emb))(one_row()),
        "bind1": binder,
        "record1": lambda: (lambda: model.record_fusion(event)),
        "eaf4096": lambda: eaf(4096),
        "train1024": lambda: trainer(1024),
    }
    fns = {}
    perf = time.perf_counter
    print("ready", gm.__file__, flush=True)
    for line in sys.stdin:
        case, number = line.split()
        number = int(number)
        fn = fns.get(case)
        if fn is None:
            fn = fns[case] = makers[case]()
            for _ in range(3):
                fn()
        for _ in range(max(1, number // 10)):  # settle: warm caches after the other worker ran
            fn()
        t0 = perf()
        for _ in range(number):
            fn()
        print(repr((perf() - t0) / number), flush=True)


class Worker:
    def __init__(self, path: str) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.path.abspath(path)
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env.setdefault(var, env.get("AB_THREADS", "2"))
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
        )
        self.where = self.proc.stdout.readline().strip()

    def run(self, case: str, number: int) -> float:
        self.proc.stdin.write(f"{case} {number}\n")
        self.proc.stdin.flush()
        return float(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def _quartiles(xs):
    q = statistics.quantiles(xs, n=4) if len(xs) >= 2 else [xs[0]] * 3
    return q[0], statistics.median(xs), q[2]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--old", required=True)
    p.add_argument("--new", required=True)
    p.add_argument("--cases", default=DEFAULT_CASES)
    p.add_argument("--rounds", type=int, default=41)
    p.add_argument("--batch-s", type=float, default=0.02, help="seconds per timed batch (calibrated on the old build)")
    p.add_argument("--cpu", type=int, default=None,
                   help="pin both workers to this CPU: on a shared machine, workers left to the scheduler may sit on "
                        "CPUs loaded unequally for the whole run (an A/A run differed by 10%%)")
    args = p.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})  # the workers inherit it
    old, new = Worker(args.old), Worker(args.new)
    print(f"old: {old.where}\nnew: {new.where}", flush=True)
    print(f"{'case':<10} {'old µs':>9} {'new µs':>9} {'ratio new/old: median [q25, q75]':>34}  rounds", flush=True)
    try:
        for case in args.cases.split(","):
            old.run(case, 1)
            new.run(case, 1)
            t = old.run(case, 3)
            number = max(1, int(args.batch_s / max(t, 1e-9)))
            ratios, ta, tb = [], [], []
            for r in range(args.rounds):
                if r % 2:
                    b = new.run(case, number)
                    a = old.run(case, number)
                else:
                    a = old.run(case, number)
                    b = new.run(case, number)
                ta.append(a)
                tb.append(b)
                ratios.append(b / a)
            q25, med, q75 = _quartiles(ratios)
            print(f"{case:<10} {statistics.median(ta) * 1e6:9.2f} {statistics.median(tb) * 1e6:9.2f} "
                  f"{med:18.3f} [{q25:.3f}, {q75:.3f}]  {args.rounds}x{number}", flush=True)
    finally:
        old.close()
        new.close()


if __name__ == "__main__":
    if sys.argv[1:] == ["--worker"]:
        _worker()
    else:
        main()
