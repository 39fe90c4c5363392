"""The Python layer around the core, at user scale: microseconds per call of
the workloads whose time is Python's own (validation, bookkeeping), not the
kernels' (``bench.py`` times those). Prints the median of ``--repeats`` timed
runs, each of many calls:

    python benchmarks/python_layer.py append           # ExperienceBuffer.append, E=32
    python benchmarks/python_layer.py psample          # sample(64, prioritized=True) of 200,000 held
    python benchmarks/python_layer.py psample-wrapped  # the same, the ring wrapped
    python benchmarks/python_layer.py transform        # MultimodalEmbedder.transform of 1M float64 rows, 2 views

To compare two installs, alternate them (a noisy machine): run each command
with one interpreter, then the other, several times.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from threads import pin_threads  # noqa: E402

E = 32


def _rows(rng, n):
    import numpy as np

    embeddings = rng.normal(size=(n, 7, E)).astype(np.float32)
    return dict(
        embeddings=embeddings / np.linalg.norm(embeddings, axis=-1, keepdims=True), mask=np.ones((n, 7), bool),  # as recorded
        fused=rng.normal(size=(n, E)).astype(np.float32), pair_strengths=np.zeros((n, 7, 7), np.float32),
        rewards=rng.normal(size=n).astype(np.float32),
    )


def append(rng):
    from grapheme_multimodal.buffer import Experience, ExperienceBuffer

    rows = _rows(rng, 20_000)
    experiences = [Experience(rows["embeddings"][i], rows["mask"][i], rows["fused"][i], rows["pair_strengths"][i],
                              float(rows["rewards"][i]), i) for i in range(20_000)]

    def run():
        buf = ExperienceBuffer(capacity=100_000, seed=0)
        start = time.perf_counter()
        for x in experiences:
            buf.append(x)
        return (time.perf_counter() - start) / len(experiences)

    return run


def psample(rng, wrapped=False):
    from grapheme_multimodal.buffer import ExperienceBuffer

    held = 200_000
    buf = ExperienceBuffer(capacity=held if wrapped else 1_000_000, seed=0)
    buf.extend(**_rows(rng, held))
    if wrapped:
        buf.extend(**_rows(rng, 1000))

    def run():
        start = time.perf_counter()
        for _ in range(200):
            buf.sample(64, prioritized=True)
        return (time.perf_counter() - start) / 200

    return run


def transform(rng):
    import numpy as np

    from grapheme_multimodal.sklearn import MultimodalEmbedder

    views = [rng.normal(size=(1_000_000, 16)), rng.normal(size=(1_000_000, 8))]  # float64, as most users' data
    estimator = MultimodalEmbedder(epochs=1, random_state=0, verbose=False).fit([v[:2000] for v in views])

    def run():
        start = time.perf_counter()
        estimator.transform(views)
        return time.perf_counter() - start

    assert views[0].dtype == np.float64
    return run


WORKLOADS = {
    "append": append, "psample": psample, "psample-wrapped": lambda rng: psample(rng, wrapped=True), "transform": transform,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("workload", choices=sorted(WORKLOADS))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    pin_threads(args.threads)
    import numpy as np

    run = WORKLOADS[args.workload](np.random.default_rng(0))
    times = [run() for _ in range(args.repeats)]
    print(f"{args.workload}: {statistics.median(times) * 1e6:.1f} us per call (median of {args.repeats})")


if __name__ == "__main__":
    main()
