"""Scale-out on Ray: what it costs on one machine (issue 12's targets).

- ``embed_dataset`` rows/s with 1 and 2 actors on 10⁶ rows, against
  in-process ``encode_and_fuse`` over the same rows in batches of the same
  size (2 threads: the whole machine). Target: 2 actors ≥ 50 % of in-process.
- distributed ``fit`` step time with 1 and 2 workers at a global batch of
  1024, against ``model.fit`` (2 threads), round-robin. Target: 2 workers
  ≤ 1.3× in-process. The per-step overhead is distributed ``fit`` with 1
  worker minus ``model.fit`` (1 thread) on steps of 8 rows, where compute
  is negligible.

On a 2-core machine the point is overhead, not speed-up. A local Ray with
2 CPUs, every socket on loopback; the inputs are the benchmark's seeded
3-of-7-modality arrays (18 features each). Step times are an epoch's own
``seconds`` (actor start-up excluded; the end-of-epoch replica check
included).

    python benchmarks/ray_scaling.py                      # full run, a few minutes
    python benchmarks/ray_scaling.py --quick              # smoke run, numbers meaningless
    python benchmarks/ray_scaling.py --json benchmarks/results/ray-scaling.json
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

# Before Ray is imported (it reads these at import): a local cluster on
# loopback only, no usage stats, and the dashboard's cloud-metadata probe
# sent to a closed loopback port.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ["http_proxy"] = os.environ["HTTP_PROXY"] = "http://127.0.0.1:9"
os.environ["no_proxy"] = os.environ["NO_PROXY"] = "127.0.0.1,localhost,::1"

import numpy as np  # noqa: E402
import ray  # noqa: E402
import ray.data  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import grapheme_multimodal as gm  # noqa: E402
from grapheme_multimodal import distributed  # noqa: E402
from jsonfile import refuse_unwritable, write_json  # noqa: E402
from workloads import THREE_MODALITIES, modality_inputs  # noqa: E402

NAMES = [str(gm.Modality(m)) for m in THREE_MODALITIES]


def round_robin(repeats: int, runs: Dict[str, Callable[[], float]]) -> Dict[str, Dict[str, Any]]:
    """Each run once per round, in turn, so a burst of load from other
    processes hits all of them alike; median and samples of each."""
    samples: Dict[str, List[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            samples[name].append(run())
    return {name: {"median": statistics.median(v), "samples": v} for name, v in samples.items()}


def embed_case(rows: int, batch: int, repeats: int, ckpt: Path, model: gm.LearnableMultiModal) -> Dict[str, Any]:
    """rows/s of in-process ``encode_and_fuse`` and of ``embed_dataset``
    (end to end: pool start-up included, outputs materialised in the object
    store), and the start-up alone (the same call on one row), so the
    steady rate is ``rows / (seconds - start-up)``."""
    xs = modality_inputs(rows, list(THREE_MODALITIES))
    inputs = {name: xs[m] for name, m in zip(NAMES, THREE_MODALITIES)}
    columns = {n: n for n in NAMES}

    def in_process(threads: int) -> Callable[[], float]:
        def run() -> float:
            gm.set_num_threads(threads)
            start = time.perf_counter()
            for i in range(0, rows, batch):
                model.encode_and_fuse({k: v[i : i + batch] for k, v in inputs.items()})
            seconds = time.perf_counter() - start
            gm.set_num_threads(2)
            return seconds

        return run

    def on_ray(data: "ray.data.Dataset", actors: int) -> Callable[[], float]:
        def run() -> float:
            start = time.perf_counter()
            done = distributed.embed_dataset(data, ckpt, columns, batch_size=batch, num_actors=actors).materialize()
            seconds = time.perf_counter() - start
            assert done.count() == data.count()
            del done
            return seconds

        return run

    ds = distributed._arrays_dataset(inputs, rows_per_block=4 * batch).materialize()
    one_row = distributed._arrays_dataset({k: v[:1] for k, v in inputs.items()}).materialize()
    check = distributed.embed_dataset(ds.limit(2 * batch), ckpt, columns, batch_size=batch, num_actors=1).materialize()
    got = check.take_batch(2 * batch, batch_format="numpy")
    ours = model.encode_and_fuse({k: np.stack(got[k]) for k in NAMES})[1]
    if not np.array_equal(np.stack(got["fused"]), ours):
        raise SystemExit("embed_dataset disagrees with encode_and_fuse")
    del check
    seconds = round_robin(
        repeats,
        {
            "in_process_2_threads": in_process(2),
            "in_process_1_thread": in_process(1),
            "ray_1_actor": on_ray(ds, 1),
            "ray_2_actors": on_ray(ds, 2),
            "ray_1_actor_startup": on_ray(one_row, 1),
            "ray_2_actors_startup": on_ray(one_row, 2),
        },
    )
    out: Dict[str, Any] = {"rows": rows, "batch_size": batch, "seconds": seconds}
    rate = {name: rows / seconds[name]["median"] for name in ("in_process_2_threads", "in_process_1_thread", "ray_1_actor", "ray_2_actors")}
    for actors, name in ((1, "ray_1_actor"), (2, "ray_2_actors")):
        rate[f"{name}_steady"] = rows / (seconds[name]["median"] - seconds[f"{name}_startup"]["median"])
    out["rows_per_s"] = rate
    out["ratio_2_actors_vs_in_process"] = rate["ray_2_actors"] / rate["in_process_2_threads"]
    out["ratio_2_actors_steady_vs_in_process"] = rate["ray_2_actors_steady"] / rate["in_process_2_threads"]
    return out


def fit_case(steps: int, batch: int, rounds: int) -> Dict[str, Any]:
    """Seconds per step of ``model.fit`` (2 and 1 threads) and of
    distributed ``fit`` (1 and 2 workers), round-robin: each round trains a
    fresh model for 2 epochs with each, and the second epoch is the sample
    (the first warms up; actor start-up is outside the epochs)."""
    xs = modality_inputs(steps * batch, list(THREE_MODALITIES), seed=1)
    data = {name: xs[m] for name, m in zip(NAMES, THREE_MODALITIES)}

    def run(fit: Callable[..., gm.History], threads: int, rows: Dict[str, np.ndarray], size: int) -> Callable[[], float]:
        def sample() -> float:
            gm.set_num_threads(threads)
            history = fit(gm.LearnableMultiModal(seed=0), rows, epochs=2, batch_size=size, progress=False)
            gm.set_num_threads(2)
            return history.epochs[1]["seconds"] / (len(next(iter(rows.values()))) // size)

        return sample

    def local(model: gm.LearnableMultiModal, rows: Any, **options: Any) -> gm.History:
        return model.fit(rows, **options)

    def on_ray(workers: int) -> Callable[..., gm.History]:
        return lambda model, rows, **options: distributed.fit(model, rows, num_workers=workers, **options)

    # The overhead alone: steps of 8 rows, whose compute is about a millisecond.
    tiny = {name: x[: 8 * 24] for name, x in data.items()}
    seconds = round_robin(
        rounds,
        {
            "model_fit_2_threads_s_per_step": run(local, 2, data, batch),
            "model_fit_1_thread_s_per_step": run(local, 1, data, batch),
            "ray_1_worker_s_per_step": run(on_ray(1), 2, data, batch),
            "ray_2_workers_s_per_step": run(on_ray(2), 2, data, batch),
            "tiny_model_fit_1_thread_s_per_step": run(local, 1, tiny, 8),
            "tiny_ray_1_worker_s_per_step": run(on_ray(1), 2, tiny, 8),
        },
    )
    out: Dict[str, Any] = {"global_batch": batch, "steps_per_epoch": steps, "rounds": rounds, **seconds}
    out["ratio_2_workers_vs_in_process"] = seconds["ray_2_workers_s_per_step"]["median"] / seconds["model_fit_2_threads_s_per_step"]["median"]
    out["overhead_s_per_step"] = seconds["tiny_ray_1_worker_s_per_step"]["median"] - seconds["tiny_model_fit_1_thread_s_per_step"]["median"]
    return out


def gather_cost(batch: int, repeats: int) -> Dict[str, Any]:
    """What gathering the embeddings would leave unparallelised: the
    objectives on a whole batch's given embeddings (every in-batch coupling
    lives there) against the whole training step, 1 thread."""
    xs = modality_inputs(batch, list(THREE_MODALITIES), seed=2)
    model = gm.LearnableMultiModal(seed=0)
    emb, _ = model.encode_and_fuse(xs)
    mask = np.zeros((batch, 7), bool)
    mask[:, list(THREE_MODALITIES)] = True
    given = gm.Batch(embeddings=emb, mask=mask)
    gm.set_num_threads(1)

    def timed(call: Callable[[], Any]) -> float:
        call()
        start = time.perf_counter()
        call()
        return time.perf_counter() - start

    def objectives() -> None:
        model.zero_grad()
        model.backward(given)

    seconds = round_robin(
        repeats,
        {"train_step_s": lambda: timed(lambda: model.train_step(xs)), "objectives_on_embeddings_s": lambda: timed(objectives)},
    )
    gm.set_num_threads(2)
    return {"batch": batch, **seconds, "coupled_share": seconds["objectives_on_embeddings_s"]["median"] / seconds["train_step_s"]["median"]}


def main(argv: List[str] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows embedded (default 10⁶)")
    parser.add_argument("--embed-batch", type=int, default=16384, help="rows per encode_and_fuse call")
    parser.add_argument("--fit-batch", type=int, default=1024, help="global batch of the training steps")
    parser.add_argument("--fit-steps", type=int, default=12, help="steps per epoch")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    refuse_unwritable(parser, args.json)  # before the run, not a traceback after it
    if args.quick:
        args.rows, args.embed_batch, args.fit_batch, args.fit_steps, args.repeats = 20_000, 4096, 256, 3, 1

    temp = tempfile.mkdtemp(prefix="gmraybench", dir="/tmp" if os.path.isdir("/tmp") else None)
    ray.init(num_cpus=2, object_store_memory=1536 * 2**20, include_dashboard=False, _temp_dir=temp, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    ray.data.DataContext.get_current().print_on_execution_start = False
    try:
        model = gm.LearnableMultiModal(seed=0)
        ckpt = Path(temp) / "model.safetensors"
        model.save(ckpt)
        result = {
            "ray_version": ray.__version__,
            "library_version": gm.__version__,
            "cpus": os.cpu_count(),
            "load_average_at_start": os.getloadavg(),
            "embed": embed_case(args.rows, args.embed_batch, args.repeats, ckpt, model),
            "fit": fit_case(args.fit_steps, args.fit_batch, args.repeats),
            "gather": gather_cost(args.fit_batch, max(3, args.repeats)),
        }
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)

    e, f = result["embed"], result["fit"]
    r = e["rows_per_s"]
    print(f"embed_dataset, {e['rows']:,} rows, batch {e['batch_size']}: rows/s (median of {args.repeats}, round-robin)")
    print(f"  in-process encode_and_fuse, 2 threads  {r['in_process_2_threads']:>12,.0f}")
    print(f"  in-process encode_and_fuse, 1 thread   {r['in_process_1_thread']:>12,.0f}")
    for name, label in (("ray_1_actor", "1 actor "), ("ray_2_actors", "2 actors")):
        startup = e["seconds"][f"{name}_startup"]["median"]
        print(f"  embed_dataset, {label}               {r[name]:>12,.0f}   steady {r[name + '_steady']:>10,.0f} (start-up {startup:.1f} s)")
    print(f"  2 actors / in-process: {e['ratio_2_actors_vs_in_process']:.2f} end to end, "
          f"{e['ratio_2_actors_steady_vs_in_process']:.2f} steady (target >= 0.50)")
    print(f"fit, global batch {f['global_batch']}, {f['steps_per_epoch']} steps an epoch: ms per step (median of {f['rounds']}, round-robin)")
    for key, label in (
        ("model_fit_2_threads_s_per_step", "model.fit, 2 threads"),
        ("model_fit_1_thread_s_per_step", "model.fit, 1 thread"),
        ("ray_1_worker_s_per_step", "distributed.fit, 1 worker"),
        ("ray_2_workers_s_per_step", "distributed.fit, 2 workers"),
    ):
        print(f"  {label:<28} {1e3 * f[key]['median']:8.1f}")
    print(f"  2 workers / in-process: {f['ratio_2_workers_vs_in_process']:.2f} (target <= 1.30)")
    print(f"  per-step overhead (1 worker - model.fit, steps of 8 rows): {1e3 * f['overhead_s_per_step']:.1f} ms")
    g = result["gather"]
    print(f"objectives on given embeddings / whole step, batch {g['batch']}, 1 thread: "
          f"{1e3 * g['objectives_on_embeddings_s']['median']:.0f} / {1e3 * g['train_step_s']['median']:.0f} ms "
          f"= {g['coupled_share']:.0%} (what gathering embeddings would not parallelise)")
    if args.json is not None:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
