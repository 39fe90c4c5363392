"""The benchmark cases. Import only after `threads.pin_threads` has run
(`bench.py` does this): the BLAS thread counts are read when NumPy loads.

Every case first checks that the frameworks agree (to `TOLERANCE`), then
times each of them on the same data. Results are `Row`s: one measured case,
one `Timing` per framework, the work done per call (events or characters).
"""

from __future__ import annotations

import copy
import json
import os
import platform
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import numpy as np

import grapheme_multimodal as gm
import ref_networkx
import ref_numpy
import workloads
from jsonfile import cpu_description
from threads import blas_threads, configure_library_threads, configure_torch_threads
from timing import Settings, Timing, measure, measure_many

TOLERANCE = 1e-4  # max |difference| of model outputs between frameworks
FEATURE_TOLERANCE = 1e-6  # features are counts / 10 or / 100: they must agree exactly up to rounding
HERE = os.path.dirname(os.path.abspath(__file__))


class AgreementError(AssertionError):
    """Two frameworks computed different outputs: timing them would be meaningless."""


@dataclass
class Row:
    """One measured case: seconds per call of each framework, `work` units
    (events, characters) per call. ``kind`` is ``"latency"`` (shown as µs per
    unit) or ``"throughput"`` (shown as units per second)."""

    section: str
    case: str
    unit: str
    work: float
    kind: str
    timings: Dict[str, Timing]
    target: str = ""
    note: str = ""

    def value(self, framework: str) -> float:
        t = self.timings[framework].median
        return t * 1e6 / self.work if self.kind == "latency" else self.work / t

    def spread(self, framework: str) -> float:
        """The IQR in the unit of `value`."""
        t = self.timings[framework]
        if self.kind == "latency":
            return t.iqr * 1e6 / self.work
        return self.work / t.q25 - self.work / t.q75

    def speedup(self, other: str, best: bool = False) -> Optional[float]:
        """How many times faster ours is than `other` (time_other / time_ours),
        from the medians, or from the fastest samples with `best`."""
        if "ours" not in self.timings or other not in self.timings:
            return None
        if best:
            return self.timings[other].best / self.timings["ours"].best
        return self.timings[other].median / self.timings["ours"].median

    def to_dict(self) -> dict:
        return {
            "section": self.section,
            "case": self.case,
            "unit": self.unit,
            "kind": self.kind,
            "work_per_call": self.work,
            "target": self.target,
            "note": self.note,
            "value": {fw: self.value(fw) for fw in self.timings},
            "iqr": {fw: self.spread(fw) for fw in self.timings},
            "speedup_vs": {fw: self.speedup(fw) for fw in self.timings if fw != "ours"},
            "speedup_vs_best_samples": {fw: self.speedup(fw, best=True) for fw in self.timings if fw != "ours"},
            "seconds_per_call": {fw: t.to_dict() for fw, t in self.timings.items()},
        }


@dataclass
class Results:
    rows: List[Row] = field(default_factory=list)
    checks: List[dict] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    sgemm: List[dict] = field(default_factory=list)
    flops: List[dict] = field(default_factory=list)
    memory: List[dict] = field(default_factory=list)
    targets: List[dict] = field(default_factory=list)
    machine: dict = field(default_factory=dict)


class Suite:
    """Holds the model in every framework and runs the cases."""

    def __init__(self, settings: Settings, quick: bool, threads: int, with_torch: bool = True) -> None:
        self.settings = settings
        self.quick = quick
        self.threads = threads
        self.results = Results()
        if quick:
            self.results.notes.append("--quick: a smoke run; its timings and ratios are not meaningful")
        self.library_threads = configure_library_threads(gm, threads)
        self.model = gm.LearnableMultiModal(seed=0)
        self.state = self.model.state_dict()
        self.numpy_model = ref_numpy.NumpyModel(self.state)
        self.torch = None
        self.torch_model = None
        if with_torch:
            try:
                import torch
            except Exception as exc:  # not installed, or broken
                self.results.notes.append(f"torch skipped: `import torch` failed ({type(exc).__name__}: {exc})")
            else:
                configure_torch_threads(torch, threads)
                import ref_torch

                self.torch, self.ref_torch = torch, ref_torch
                self.torch_model = ref_torch.TorchModel(self.state)
        else:
            self.results.notes.append("torch skipped: --no-torch")

    # ------------------------------------------------------------ helpers
    def time(self, fn: Callable[[], object]) -> Timing:
        return measure(fn, self.settings)

    def time_many(self, fns: Dict[str, Callable[[], object]]) -> Dict[str, Timing]:
        """Times the functions with their samples interleaved (see `timing.measure_many`)."""
        return measure_many(fns, self.settings)

    def check(self, what: str, a: np.ndarray, b: np.ndarray, tolerance: float = TOLERANCE) -> None:
        self.results.checks.append(compare(what, a, b, tolerance))

    def add(self, row: Row) -> None:
        self.results.rows.append(row)

    # ---------------------------------------------------------------- cases
    def machine(self) -> None:
        self.results.machine = {
            "cpu": cpu_description(),
            "logical_cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "torch": getattr(self.torch, "__version__", None),
            "grapheme_multimodal": gm.__version__,
            "threads": self.threads,
            "blas_threads": blas_threads(),
            "library_threads": self.library_threads,
            "load_average_start": _loadavg(),
        }

    def featurise(self) -> None:
        texts = workloads.texts(60 if self.quick else 500)
        chars = sum(len(t) for t in texts)
        ours = gm.fingerprints([gm.Graph.from_text(t) for t in texts])
        self.check("featurise: ours vs networkx", ours, ref_networkx.featurise_texts(texts), FEATURE_TOLERANCE)
        self.check("featurise: ours vs numpy", ours, ref_numpy.featurise_texts(texts), FEATURE_TOLERANCE)
        per_text = np.stack([gm.Graph.from_text(t).features() for t in texts])
        self.check("featurise: ours per text vs ours batch", per_text, ours, 0.0)

        featurize = getattr(gm, "featurize", None)  # from strings, no Python Graph objects
        fns = {
            "ours batch": lambda: gm.fingerprints([gm.Graph.from_text(t) for t in texts]),
            "ours per text": lambda: [gm.Graph.from_text(t).features() for t in texts],
            "numpy": lambda: ref_numpy.featurise_texts(texts),
            "networkx": lambda: ref_networkx.featurise_texts(texts),
        }
        if featurize is not None:
            self.check("featurise: gm.featurize(texts) vs fingerprints", featurize(texts), ours, 0.0)
            fns["ours featurize"] = lambda: featurize(texts)
        else:
            self.results.notes.append("gm.featurize skipped: not in this build of the library")
        t = self.time_many(fns)
        theirs = {"numpy": t["numpy"], "networkx": t["networkx"]}
        target = ">= 50x networkx"
        section = "1. featurise text -> graph -> 18 features"
        self.add(Row(section, "batch: fingerprints([Graph.from_text(t) ...])", "char", chars, "throughput",
                     {"ours": t["ours batch"], **theirs}, target))
        self.add(Row(section, "per text: Graph.from_text(t).features()", "char", chars, "throughput",
                     {"ours": t["ours per text"], **theirs}, target))
        if featurize is None:
            return
        self.add(Row(section, "from str: gm.featurize(texts)", "char", chars, "throughput",
                     {"ours": t["ours featurize"], **theirs}, target, "library threads as pinned"))
        wl_texts = texts[: max(len(texts) // 5, 1)]  # networkx WL is slow: a fifth of the corpus
        wl_chars = sum(len(x) for x in wl_texts)
        ours_wl = featurize(wl_texts, kind="wl")
        nx_wl = ref_networkx.wl_features(wl_texts, dim=ours_wl.shape[1])
        # Different hashes: only the shape and the unit norm can agree.
        self.check("featurise WL: row norms ours vs networkx", np.linalg.norm(ours_wl, axis=1), np.linalg.norm(nx_wl, axis=1))
        t = self.time_many({
            "ours": lambda: featurize(wl_texts, kind="wl"),
            "networkx": lambda: ref_networkx.wl_features(wl_texts, dim=ours_wl.shape[1]),
        })
        self.add(Row(section, f"content-aware: featurize(kind='wl', dim={ours_wl.shape[1]}) vs networkx WL hashes",
                     "char", wl_chars, "throughput", t, "",
                     "same algorithm, not the same numbers: networkx hashes differently"))

    def per_event(self) -> None:
        texts = workloads.event_texts()
        model = self.model
        event = _text_event(texts)
        ours = model.fuse_event(event)
        self.check("per event: ours vs numpy", ours, self.numpy_model.fuse_texts(texts))
        fns = {"numpy": lambda: self.numpy_model.fuse_texts(texts)}
        if self.torch_model is not None:
            self.check("per event: ours vs torch", ours, self.torch_model.fuse_texts(texts).numpy())
            fns["torch"] = lambda: self.torch_model.fuse_texts(texts)

        def uncached() -> object:
            model.clear_cache()
            return model.fuse_event(event)

        t = self.time_many({
            "uncached": uncached,
            "from text": lambda: model.fuse_event(_text_event(texts)),
            "cached": lambda: model.fuse_event(event),
            **fns,
        })
        theirs = {fw: t[fw] for fw in fns}
        section = "2. forward, one 3-modality text event (featurise + encode + fuse)"
        target = ">= 20x torch"
        note = "numpy/torch start from the 3 texts"
        self.add(Row(section, "fuse_event(event), uncached (clear_cache() each call)", "event", 1, "latency",
                     {"ours": t["uncached"], **theirs}, target, note))
        self.add(Row(section, "event built from the texts + fuse_event", "event", 1, "latency",
                     {"ours": t["from text"], **theirs}, target, note))
        self.add(Row(section, "fuse_event(event), cached embeddings", "event", 1, "latency",
                     {"ours": t["cached"], **theirs}, "", "cache hit: only fusion runs"))

        # Where the time goes: the pieces of one uncached fuse_event, ours only.
        section = "2b. breakdown of ours, per event"
        pieces = {
            "model.clear_cache()": model.clear_cache,
            "build event: 3x Graph.from_text + ModalGraph + MultiModalEvent": lambda: _text_event(texts),
        }
        encode_event = getattr(model._core, "encode_event", None)
        if encode_event is not None:  # one Rust call per event (phase 2)
            from grapheme_multimodal.types import ModalGraph

            items = [(c.modality.value, c.graph._g if isinstance(c, ModalGraph) else c.features, c.confidence)
                     for c in event.components]
            spec = model._featurizer_spec()
            pieces["_core.encode_event (Rust: featurise 3 graphs, encode, pool, fuse)"] = lambda: encode_event(event.id, items, spec)
        else:  # the phase-1 path: Python groups and featurises, two Rust calls
            parts = model._event_parts(event)
            emb = model._core.encode_components(1, parts)
            mask = np.array([[p is not None for p in parts]])
            pieces["model._event_parts(event) (Python: group, featurise, stack)"] = lambda: model._event_parts(event)
            pieces["_core.encode_components(1, parts) (Rust call)"] = lambda: model._core.encode_components(1, parts)
            pieces["_core.fuse(emb, mask) (Rust call)"] = lambda: model._core.fuse(emb, mask)
        for case, fn in pieces.items():
            self.add(Row(section, case, "call", 1, "latency", {"ours": self.time(fn)}))

    def batched(self) -> None:
        e, h = self.model.config.embed_dim, self.model.config.hidden_dim
        dims = self.model.config.input_dims
        sizes = (64, 4096)
        variants = (("7 of 7 modalities", list(range(7))), ("3 of 7 modalities", list(workloads.THREE_MODALITIES)))
        for label, present in variants:
            for batch in sizes:
                xs = workloads.modality_inputs(batch, present, seed=batch)
                emb, fused = self.model.encode_and_fuse(xs)
                np_emb, np_fused = self.numpy_model.encode_and_fuse(xs)
                self.check(f"batched B={batch} {label}: embeddings ours vs numpy", emb, np_emb)
                self.check(f"batched B={batch} {label}: fused ours vs numpy", fused, np_fused)
                fns = {
                    "ours": lambda: self.model.encode_and_fuse(xs),
                    "numpy": lambda: self.numpy_model.encode_and_fuse(xs),
                }
                if self.torch_model is not None:
                    txs = self.ref_torch.as_tensors(xs)
                    t_emb, t_fused = self.torch_model.encode_and_fuse(txs)
                    self.check(f"batched B={batch} {label}: embeddings ours vs torch", emb, t_emb.numpy())
                    self.check(f"batched B={batch} {label}: fused ours vs torch", fused, t_fused.numpy())
                    fns["torch"] = lambda: self.torch_model.encode_and_fuse(txs)
                timings = self.time_many(fns)
                target = ">= 3x torch, >= 40% of sgemm" if batch == 4096 and len(present) == 7 else ""
                row = Row("3. forward, batched: encode_and_fuse", f"B={batch}, {label}", "event", batch, "throughput",
                          timings, target)
                self.add(row)
                flops = flops_per_event(e, h, [dims[m] for m in present])
                self.results.flops.append({
                    "case": row.case,
                    "flops_per_event": flops,
                    "gflops": {fw: flops * row.value(fw) / 1e9 for fw in timings},
                })
                self._batched_breakdown(xs, batch, label)

    def _batched_breakdown(self, xs: list, batch: int, label: str) -> None:
        model, core = self.model, self.model._core
        arrays, mask = model.prepare_inputs(xs)
        emb = core.encode(arrays, mask)
        pieces = {
            "model.prepare_inputs (Python validation)": lambda: model.prepare_inputs(xs),
            "_core.encode_and_fuse (Rust call, no Python checks)": lambda: core.encode_and_fuse(arrays, mask),
            "_core.encode (encoders only)": lambda: core.encode(arrays, mask),
            "_core.fuse (fusion only)": lambda: core.fuse(emb, mask),
        }
        for case, fn in pieces.items():
            self.add(Row("3b. breakdown of ours, batched", f"B={batch}, {label}: {case}", "event", batch, "throughput",
                         {"ours": self.time(fn)}))

    def training(self) -> None:
        """4. One training step (all default objectives, backward, Adam) at
        B = 1, 64, 1024 on 7 of 7 modalities: ours (`train_step`), NumPy
        (`ref_numpy_train`) and torch eager (`ref_torch_train`: autograd +
        `torch.optim.Adam`), all with the random draws of our step."""
        if not hasattr(gm.LearnableMultiModal, "train_step"):
            self.results.notes.append("4. training step: skipped: training not available in this build")
            return
        import ref_numpy_train

        config = self.model.config
        present = list(range(7))
        e, h = config.embed_dim, config.hidden_dim
        dims = config.input_dims
        settings = (config.num_heads, config.temperature, config.learning_rate)
        for batch in TRAIN_SIZES_QUICK if self.quick else TRAIN_SIZES:
            xs = workloads.modality_inputs(batch, present, seed=batch)
            fresh = gm.LearnableMultiModal(seed=0)
            draws = workloads.objective_draws(fresh, xs)  # the draws of a fresh model's first step
            numpy_trainer = ref_numpy_train.NumpyTrainer(self.state, *settings)
            torch_trainer, txs = None, None
            if self.torch is not None:
                import ref_torch_train

                torch_trainer = ref_torch_train.TorchTrainer(self.state, *settings)
                txs = self.ref_torch.as_tensors(xs)
                torch_draws = torch_trainer.prepare_draws(draws)
            self._check_training_step(batch, xs, present, draws, fresh, numpy_trainer, torch_trainer, txs)

            ours = gm.LearnableMultiModal(seed=0)
            fns = {
                "ours": lambda: ours.train_step(xs),
                "numpy": lambda: numpy_trainer.train_step(xs, present, draws),
            }
            if torch_trainer is not None:
                fns["torch"] = lambda: torch_trainer.train_step(txs, present, torch_draws)
            timings = self.time_many(fns)
            target = {1: ">= 20x torch", 1024: ">= 3x torch"}.get(batch, "")
            row = Row("4. training step: default objectives + backward + Adam", f"B={batch}, 7 of 7 modalities",
                      "sample", batch, "throughput", timings, target, "same draws in every framework")
            self.add(row)
            flops = training_flops(batch, e, h, config.num_heads, [dims[m] for m in present])
            self.results.flops.append({
                "case": f"training {row.case}",
                "flops_per_event": round(flops / batch),
                "gflops": {fw: flops * row.value(fw) / batch / 1e9 for fw in timings},
            })

    def _check_training_step(self, batch, xs, present, draws, fresh, numpy_trainer, torch_trainer, txs) -> None:
        """Losses, gradients and the weights after one step agree across frameworks
        (tolerances in `check_training`)."""
        ours_losses = fresh.backward(xs)
        ours_grads = fresh.gradients()
        fresh.step()
        ours_after = fresh.state_dict()
        ref_losses, ref_grads = numpy_trainer.losses_and_gradients(xs, present, draws)
        probe = copy.deepcopy(numpy_trainer)
        probe.adam(ref_grads)
        what = f"training B={batch}"
        self.results.checks += check_training(f"{what}: ours vs numpy", ours_losses, ours_grads, ours_after,
                                              ref_losses, ref_grads, probe.p, self.model.config.learning_rate)
        if torch_trainer is not None:
            twin = copy.deepcopy(torch_trainer)
            t_losses = twin.backward(txs, present, twin.prepare_draws(draws))
            t_grads = twin.gradients()
            twin.optimizer.step()
            self.results.checks += check_training(f"{what}: ours vs torch", ours_losses, ours_grads, ours_after,
                                                  t_losses, t_grads, twin.state_dict(), self.model.config.learning_rate)

    def sgemm(self) -> None:
        """The machine's own float32 GEMM rate, with NumPy's matmul (2 m n k FLOPs)."""
        square = 512 if self.quick else 2048
        shapes = {
            f"square {square}^3": (square, square, square),
            "[4096, 448] x [448, 64] (fusion layer 0 at B=4096)": (4096, 448, 64),
            "[4096, 64] x [64, 128] (fusion layer 1 at B=4096)": (4096, 64, 128),
        }
        rng = np.random.default_rng(0)
        for name, (m, k, n) in shapes.items():
            a = rng.standard_normal((m, k), dtype=np.float32)
            b = rng.standard_normal((k, n), dtype=np.float32)
            out = np.empty((m, n), dtype=np.float32)
            t = self.time(lambda: np.matmul(a, b, out=out))
            self.results.sgemm.append({"shape": name, "m": m, "k": k, "n": n, "gflops": 2 * m * n * k / t.median / 1e9,
                                       "seconds": t.to_dict()})

    def memory(self) -> None:
        """5. Peak RSS of the batched forward at B=4096 and of a training step at
        B=1024 (the largest batches of 3 and 4), one fresh process each."""
        frameworks = ["ours", "numpy"] + (["torch"] if self.torch_model is not None else [])
        workloads_ = (("forward", 512 if self.quick else 4096), ("train", 64 if self.quick else 1024))
        with tempfile.TemporaryDirectory() as tmp:
            weights = os.path.join(tmp, "state.npz")
            np.savez(weights, **self.state)
            for workload, batch in workloads_:
                for fw in frameworks:
                    cmd = [sys.executable, os.path.join(HERE, "memory_probe.py"), "--framework", fw, "--batch", str(batch),
                           "--weights", weights, "--threads", str(self.threads), "--workload", workload]
                    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
                    if proc.returncode != 0:
                        raise RuntimeError(f"memory probe for {fw} ({workload}) failed:\n{proc.stderr}")
                    self.results.memory.append(json.loads(proc.stdout.strip().splitlines()[-1]))

    def finish(self) -> None:
        self.results.machine["load_average_end"] = _loadavg()
        self.results.targets = self.targets()

    def targets(self) -> List[dict]:
        """Issue 6's targets against what this run measured (those it measured)."""
        r = self.results
        rows = {(row.section[:2], row.case): row for row in r.rows}
        out = []

        def add(what: str, value: Optional[float], goal: float, unit: str, best: Optional[float] = None,
                at_most: bool = False) -> None:
            if value is not None:
                met = value <= goal if at_most else value >= goal
                out.append({"what": what, "value": value, "best": best, "target": goal, "op": "<=" if at_most else ">=",
                            "unit": unit, "met": met})

        def speedup(section: str, case: str, other: str) -> tuple:
            row = rows.get((section, case))
            return (row.speedup(other), row.speedup(other, best=True)) if row and other in row.timings else (None, None)

        value, best = speedup("1.", "batch: fingerprints([Graph.from_text(t) ...])", "networkx")
        add("featurise text, batch: speed-up vs networkx", value, 50, "x", best)
        value, best = speedup("1.", "from str: gm.featurize(texts)", "networkx")
        add("featurise text, gm.featurize(texts): speed-up vs networkx", value, 50, "x", best)
        value, best = speedup("2.", "fuse_event(event), uncached (clear_cache() each call)", "torch")
        add("single-event forward (uncached fuse_event): speed-up vs torch", value, 20, "x", best)
        value, best = speedup("3.", "B=4096, 7 of 7 modalities", "torch")
        add("batched forward B=4096: speed-up vs torch", value, 3, "x", best)
        peak = max((g["gflops"] for g in r.sgemm), default=None)
        flops = next((f for f in r.flops if f["case"] == "B=4096, 7 of 7 modalities"), None)
        if peak and flops:
            add("batched forward B=4096: share of the sgemm peak", flops["gflops"]["ours"] / peak, 0.4, "fraction")
        for batch, goal in ((1, 20), (1024, 3)):
            value, best = speedup("4.", f"B={batch}, 7 of 7 modalities", "torch")
            add(f"training step B={batch}: speed-up vs torch", value, goal, "x", best)
        for workload, label in (("forward", "forward"), ("train", "training step")):
            ours_mem = next((m for m in r.memory if m["framework"] == "ours" and m.get("workload", "forward") == workload), None)
            if ours_mem:
                add(f"memory, {label} at B={ours_mem['batch']}: RSS rise / bytes that must exist",
                    ours_mem["rise_bytes"] / ours_mem["must_exist_bytes"], 2, "ratio", at_most=True)
        return out


def compare(what: str, a: np.ndarray, b: np.ndarray, tolerance: float) -> dict:
    """The largest |a - b| as a check record; raises `AgreementError` past `tolerance`
    (or on different shapes, or NaN)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise AgreementError(f"{what}: shapes differ {a.shape} vs {b.shape}")
    diff = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.size else 0.0
    if not diff <= tolerance:  # also catches NaN
        raise AgreementError(f"{what}: max |difference| {diff:.3g} exceeds {tolerance:g}")
    return {"what": what, "max_abs_diff": diff, "tolerance": tolerance, "ok": True}


def flops_per_event(embed_dim: int, hidden_dim: int, present_input_dims: List[int]) -> int:
    """Multiply-adds x 2 of the model's matmuls for one event: the encoders of
    the present modalities (2 E d_m each) and the dense fusion network
    (2 (7E·E + E·H + H·E)); biases, activations and norms are not counted."""
    encoders = sum(2 * embed_dim * d for d in present_input_dims)
    fusion = 2 * (7 * embed_dim * embed_dim + embed_dim * hidden_dim + hidden_dim * embed_dim)
    return encoders + fusion


TRAIN_SIZES = (1, 64, 1024)
TRAIN_SIZES_QUICK = (1, 16)
LOSS_TOLERANCE = 1e-5  # relative; f32 sums of at most ~1e5 terms
# Relative per tensor, ||g_ours - g_ref|| / ||g_ref||. f32 round-off stays below
# 1e-4 for every tensor but binder.bias, whose gradient is a sum of 2*42*B terms
# of size ~3/B that cancel to ~1e-4 of their absolute sum: up to ~2e-3 at
# B=1024. A missing or wrong term is off by O(1).
GRADIENT_TOLERANCE = 1e-2
# Weights after one Adam step: its first update is lr * g / (|g| + eps), i.e.
# +-lr whatever |g| is, so where g is within round-off of 0 the sign is a coin
# toss; elsewhere the update agrees to ~lr * (relative error of g).
STEP_TOLERANCE = 1e-5
RESOLVED_GRADIENT = 1e-6


def check_training(what: str, losses: dict, grads: dict, after: dict, ref_losses: dict, ref_grads: dict,
                   ref_after: dict, lr: float) -> List[dict]:
    """Check records for one training step of ours against a reference;
    raises `AgreementError` past the tolerances above."""
    out = []
    for name, value in ref_losses.items():
        diff = abs(losses[name] - value)
        if not diff <= LOSS_TOLERANCE * max(1.0, abs(value)):
            raise AgreementError(f"{what}: loss {name}: {losses[name]} vs {value}")
    out.append({"what": f"{what}: losses", "max_abs_diff": max(abs(losses[k] - v) for k, v in ref_losses.items()),
                "tolerance": LOSS_TOLERANCE, "ok": True})
    worst, worst_name = 0.0, ""
    for name, g in grads.items():
        ref = ref_grads.get(name, np.zeros_like(g))
        scale = max(float(np.linalg.norm(g)), float(np.linalg.norm(ref)))
        err = float(np.linalg.norm(g.astype(np.float64) - ref)) / scale if scale else 0.0
        if not err <= GRADIENT_TOLERANCE:
            raise AgreementError(f"{what}: gradient of {name}: relative difference {err:.3g}")
        if err >= worst:
            worst, worst_name = err, name
    out.append({"what": f"{what}: gradients (worst: {worst_name}, relative)", "max_abs_diff": worst,
                "tolerance": GRADIENT_TOLERANCE, "ok": True})
    step_diff = 0.0
    for name, p in after.items():
        diff = np.abs(p.astype(np.float64) - ref_after[name])
        resolved = np.abs(ref_grads.get(name, np.zeros_like(p))) > RESOLVED_GRADIENT
        if not np.all(diff <= 2 * lr * (1 + 1e-3)):
            raise AgreementError(f"{what}: {name} moved more than one Adam step apart")
        step_diff = max(step_diff, float(diff[resolved].max()) if resolved.any() else 0.0)
    if not step_diff <= STEP_TOLERANCE:
        raise AgreementError(f"{what}: weights after one step differ by {step_diff:.3g}")
    out.append({"what": f"{what}: weights after one Adam step (where |g| > {RESOLVED_GRADIENT:g})",
                "max_abs_diff": step_diff, "tolerance": STEP_TOLERANCE, "ok": True})
    return out


def training_flops(batch: int, embed_dim: int, hidden_dim: int, heads: int, present_input_dims: List[int]) -> int:
    """Matmul FLOPs (2 per multiply-add) of one training step with the default
    objectives on `batch` rows with these modalities present in every row:
    encoders forward and weight gradients; contrastive's three [B, B] products
    per pair of modalities; binding's two projections per embedding and their
    gradients; cross_modal's fusion + attention forward, and twice that for
    their backward; fused_contrastive's fusion of two views per row (forward
    and twice that backward), its three [B, B] products and the Gram matrix
    of each modality for the neighbours. Element-wise work (exp, norms,
    softmax, sorting) is not counted."""
    e, h, m = embed_dim, hidden_dim, len(present_input_dims)
    encoders = 2 * 2 * batch * e * sum(present_input_dims)
    pairs = m * (m - 1) // 2 if batch >= 2 else 0
    contrastive = pairs * 3 * 2 * batch * batch * e
    binding = 3 * 2 * batch * 7 * 2 * e if batch >= 2 else 0
    rows = batch if m >= 2 else 0
    fusion = 2 * rows * (7 * e * e + e * h + h * e)
    attention = 2 * rows * (e * e + 2 * 7 * e * e + 2 * 7 * e + e * e)
    cross = 3 * (fusion + attention)
    fused = (3 * 2 * fusion + 3 * 2 * batch * batch * e + m * 2 * batch * batch * e) if batch >= 2 else 0
    return encoders + contrastive + binding + cross + fused


def _text_event(texts: Dict[int, str]) -> gm.MultiModalEvent:
    event = gm.MultiModalEvent(0)
    for m, text in texts.items():
        event.add_component(gm.ModalGraph(gm.Graph.from_text(text), gm.Modality(m)))
    return event


def _loadavg() -> Optional[List[float]]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None
