"""Peak resident memory of one batched forward (encode + fuse) or of one
training step (default objectives, backward, Adam), measured in a fresh
process per framework so that peaks do not mix. Run by `bench.py`; prints
one JSON object.

Method: import the framework, build the model, run a tiny warm-up forward
(lazy initialisation), then reset the kernel's high-water mark
(`/proc/self/clear_refs` ← 5; falls back to `ru_maxrss` where that is not
possible) and read the resident set as the *baseline*. Then create the
inputs and run the forward three times. The *rise* is the peak minus the
baseline; it is compared with the bytes of the arrays that must exist:
forward: inputs + embeddings + fused; training: inputs + embeddings + their
gradient + the model's weights, gradients and two Adam moments."""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import sys


def _status_kib(field: str) -> int:
    """A `/proc/self/status` field in KiB (Linux), else the peak RSS so far."""
    try:
        with open("/proc/self/status") as fh:
            match = re.search(rf"^{field}:\s+(\d+) kB", fh.read(), re.MULTILINE)
    except OSError:
        match = None
    return int(match.group(1)) if match else _maxrss_kib()


def _maxrss_kib() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak  # bytes on macOS, KiB on Linux


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--framework", choices=("ours", "numpy", "torch"), required=True)
    ap.add_argument("--workload", choices=("forward", "train"), default="forward")
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--modalities", type=int, default=7)
    ap.add_argument("--weights", required=True, help=".npz of the state_dict")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from threads import configure_library_threads, configure_torch_threads, pin_threads

    pin_threads(args.threads)
    import numpy as np

    from workloads import modality_inputs

    state = dict(np.load(args.weights))
    present = list(range(args.modalities))
    feature_dim = state["encoder.visual.weight"].shape[1]
    embed_dim = state["fusion.0.bias"].shape[0]

    num_params = sum(int(np.prod(v.shape)) for v in state.values())
    if args.workload == "train":
        run = _trainer(args.framework, state, args.threads, present)
    elif args.framework == "ours":
        import grapheme_multimodal as gm

        configure_library_threads(gm, args.threads)
        model = gm.LearnableMultiModal(seed=0)
        model.load_state_dict(state)
        run = model.encode_and_fuse
    elif args.framework == "numpy":
        from ref_numpy import NumpyModel

        run = NumpyModel(state).encode_and_fuse
    else:
        import torch

        configure_torch_threads(torch, args.threads)
        from ref_torch import TorchModel, as_tensors

        torch_model = TorchModel(state)

        def run(xs: list) -> tuple:
            return torch_model.encode_and_fuse(as_tensors(xs))

    run(modality_inputs(8, present, feature_dim))
    exact = _reset_peak()
    baseline_kib = _status_kib("VmRSS")
    maxrss_before_kib = _maxrss_kib()
    xs = modality_inputs(args.batch, present, feature_dim)
    out = None
    for _ in range(3):
        out = None  # drop the previous outputs first, as a loop over batches would
        out = run(xs)
    peak_kib = _status_kib("VmHWM") if exact else _maxrss_kib()
    del out
    inputs_bytes = 4 * args.batch * len(present) * feature_dim
    if args.workload == "train":
        must_exist = inputs_bytes + 4 * 2 * args.batch * 7 * embed_dim + 4 * 4 * num_params
    else:
        must_exist = inputs_bytes + 4 * args.batch * (7 * embed_dim + embed_dim)
    print(
        json.dumps(
            {
                "framework": args.framework,
                "workload": args.workload,
                "batch": args.batch,
                "modalities": len(present),
                "method": "VmHWM after clear_refs" if exact else "ru_maxrss (peak may predate the forward)",
                "baseline_rss_bytes": baseline_kib * 1024,
                "peak_rss_bytes": peak_kib * 1024,
                "rise_bytes": (peak_kib - (baseline_kib if exact else maxrss_before_kib)) * 1024,
                "must_exist_bytes": must_exist,
            }
        )
    )


def _trainer(framework: str, state: dict, threads: int, present: list):
    """`run(xs)`: one training step of `framework` with the default objectives."""
    from threads import configure_library_threads, configure_torch_threads
    from workloads import objective_draws

    import grapheme_multimodal as gm

    configure_library_threads(gm, threads)
    model = gm.LearnableMultiModal(seed=0)
    model.load_state_dict(state)
    config = model.config
    settings = (config.num_heads, config.temperature, config.learning_rate)
    if framework == "ours":
        return model.train_step

    if framework == "numpy":
        from ref_numpy_train import NumpyTrainer

        trainer = NumpyTrainer(state, *settings)
        return lambda xs: trainer.train_step(xs, present, objective_draws(model, xs))
    import torch

    configure_torch_threads(torch, threads)
    from ref_torch import as_tensors
    from ref_torch_train import TorchTrainer

    torch_trainer = TorchTrainer(state, *settings)
    return lambda xs: torch_trainer.train_step(as_tensors(xs), present, torch_trainer.prepare_draws(objective_draws(model, xs)))


if __name__ == "__main__":
    main()
