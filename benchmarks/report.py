"""Readable tables and the JSON document of a benchmark run."""

from __future__ import annotations

from typing import List, Optional

from suite import Results, Row

FRAMEWORK_ORDER = ("ours", "numpy", "torch", "networkx")


def _fmt(value: float) -> str:
    if value >= 1e6:
        return f"{value / 1e6:.3g}M"
    if value >= 1e3:
        return f"{value / 1e3:.3g}k"
    if value < 0.01:
        return "0" if value == 0 else f"{value:.1g}"
    return f"{value:.3g}"


def _fmt_x(x: Optional[float]) -> str:
    return "" if x is None else f"{x:.2f}x"


def _table(header: List[str], lines: List[List[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *lines)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths)), "  ".join("-" * w for w in widths)]
    out += ["  ".join(str(c).ljust(w) for c, w in zip(line, widths)) for line in lines]
    return "\n".join(out)


NOISY = 0.3  # IQR / median above which a value is flagged


def _cell(r: Row, fw: str) -> str:
    t = r.timings[fw]
    flag = " !" if t.iqr > NOISY * t.median else ""
    return f"{_fmt(r.value(fw))} ±{_fmt(r.spread(fw))}{flag}"


def rows_table(rows: List[Row]) -> str:
    frameworks = [fw for fw in FRAMEWORK_ORDER if any(fw in r.timings for r in rows)]
    others = [fw for fw in frameworks if fw != "ours"]
    header = ["case", "unit"] + frameworks + [f"vs {fw}" for fw in others] + ["target"]
    lines = []
    for r in rows:
        unit = f"us/{r.unit}" if r.kind == "latency" else f"{r.unit}s/s"
        cells = [_cell(r, fw) if fw in r.timings else "" for fw in frameworks]
        lines.append([r.case, unit] + cells + [_fmt_x(r.speedup(fw)) for fw in others] + [r.target])
    return _table(header, lines)


def render(results: Results) -> str:
    m = results.machine
    parts = [
        f"machine: {m.get('cpu')}, {m.get('logical_cpus')} logical CPUs; {m.get('platform')}",
        f"python {m.get('python')}, numpy {m.get('numpy')}, torch {m.get('torch')}, grapheme_multimodal {m.get('grapheme_multimodal')}",
        f"threads: {m.get('threads')} (BLAS: {m.get('blas_threads')}; ours: {m.get('library_threads')})",
        f"load average (1, 5, 15 min): start {m.get('load_average_start')}, end {m.get('load_average_end')}",
        "values: median ± IQR over samples ('!' = IQR above 30% of the median: noisy); "
        "'vs X' = how many times faster ours is than X (time_X / time_ours)",
    ]
    load, cpus = m.get("load_average_start"), m.get("logical_cpus") or 1
    if load and max(load[0], (m.get("load_average_end") or [0])[0]) > 0.5 * cpus:
        parts.append(
            f"WARNING: the machine was busy (1-min load {load[0]} at the start on {cpus} CPUs): multi-threaded "
            "timings (numpy's OpenBLAS, torch's OpenMP) suffer most, since a thread that is descheduled stalls "
            "the others at the next barrier. Compare with a --threads 1 run, or rerun when the machine is quiet."
        )
    sections: dict = {}
    for r in results.rows:
        sections.setdefault(r.section, []).append(r)
    for name, rows in sections.items():
        parts += ["", f"== {name}", rows_table(rows)]
    if results.flops:
        peak = max((s["gflops"] for s in results.sgemm), default=None)
        parts += ["", "== achieved GFLOP/s of 3 and 4 (matmul FLOPs only; see flops_per_event, training_flops)"]
        frameworks = [fw for fw in FRAMEWORK_ORDER if any(fw in f["gflops"] for f in results.flops)]
        header = ["case", "FLOP/event"] + frameworks + (["ours % of sgemm peak"] if peak else [])
        lines = [
            [f["case"], str(f["flops_per_event"])]
            + [f"{f['gflops'][fw]:.2f}" if fw in f["gflops"] else "" for fw in frameworks]
            + ([f"{100 * f['gflops']['ours'] / peak:.1f}%"] if peak else [])
            for f in results.flops
        ]
        parts.append(_table(header, lines))
    if results.sgemm:
        parts += ["", "== machine sgemm (numpy float32 matmul, 2mnk FLOPs)"]
        parts.append(_table(["shape", "GFLOP/s"], [[s["shape"], f"{s['gflops']:.1f}"] for s in results.sgemm]))
    if results.memory:
        mib = 1024 * 1024
        for workload, title in (("forward", "forward (3)"), ("train", "training step (4)")):
            records = [x for x in results.memory if x.get("workload", "forward") == workload]
            if not records:
                continue
            parts += ["", f"== 5. peak RSS of the {title} at B={records[0]['batch']}, 7 modalities (fresh process each)"]
            lines = [
                [x["framework"], f"{x['baseline_rss_bytes'] / mib:.1f}", f"{x['peak_rss_bytes'] / mib:.1f}",
                 f"{x['rise_bytes'] / mib:.1f}", f"{x['must_exist_bytes'] / mib:.1f}",
                 f"{x['rise_bytes'] / x['must_exist_bytes']:.2f}"]
                for x in records
            ]
            parts.append(_table(["framework", "baseline MiB", "peak MiB", "rise MiB", "must-exist MiB", "rise / must-exist"], lines))
        must = ("forward: inputs + embeddings + fused; training: inputs + embeddings + their gradient "
                "+ weights, gradients, Adam moments")
        parts.append(f"target: rise <= 2x must-exist ({must}); " + results.memory[0]["method"])
    if results.targets:
        parts += ["", "== issue 6 targets ('now' from medians; 'best' from the fastest samples, less hurt by load)"]
        parts.append(_table(["target", "now", "best", "goal", "met"], [
            [t["what"], f"{t['value']:.2f}", "" if t["best"] is None else f"{t['best']:.2f}", f"{t['op']} {t['target']:g}",
             "yes" if t["met"] else "NO"] for t in results.targets
        ]))
    if results.notes:
        parts += ["", "notes:"] + [f"- {n}" for n in results.notes]
    failed = [c for c in results.checks if not c["ok"]]
    parts += ["", f"agreement checks: {len(results.checks) - len(failed)}/{len(results.checks)} passed "
                  f"(largest difference {max((c['max_abs_diff'] for c in results.checks), default=0):.2g})"]
    return "\n".join(parts)


def to_json(results: Results, settings: dict) -> dict:
    return {
        "machine": results.machine,
        "settings": settings,
        "rows": [r.to_dict() for r in results.rows],
        "flops": results.flops,
        "sgemm": results.sgemm,
        "memory": results.memory,
        "targets": results.targets,
        "checks": results.checks,
        "notes": results.notes,
    }
