"""Throughput of the batched graph featurisers, in characters per second.

Usage:
    python benchmarks/featurize_speed.py [--megabytes 4] [--chunk 512] [--repeats 5]

The text is the installed Python standard library's source (real, varied
text: code, prose, Unicode), cut to ``--megabytes`` million characters and
split into ``--chunk``-character documents. Each setting featurises every
document with ``grapheme_multimodal.featurize`` (graphs built and featurised
in Rust, rows in parallel, the GIL released); the median of ``--repeats``
runs is reported.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sysconfig
import time
from pathlib import Path

import grapheme_multimodal as gm


def corpus(megabytes: float) -> str:
    want = int(megabytes * 1_000_000)
    parts, size = [], 0
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).rglob("*.py")):
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        parts.append(text)
        size += len(text)
        if size >= want:
            break
    return "".join(parts)[:want]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--megabytes", type=float, default=4.0)
    parser.add_argument("--chunk", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    text = corpus(args.megabytes)
    docs = [text[i : i + args.chunk] for i in range(0, len(text), args.chunk)]
    print(f"{len(text):,} chars in {len(docs):,} documents of {args.chunk}; {os.cpu_count()} CPUs")
    settings = [
        ("fingerprint", dict(kind="fingerprint"), "char"),
        ("wl dim=256 it=3", dict(kind="wl", dim=256, iterations=3), "char"),
        ("wl dim=256 it=3", dict(kind="wl", dim=256, iterations=3), "grapheme"),
        ("wl dim=1024 it=1", dict(kind="wl", dim=1024, iterations=1), "char"),
    ]
    for name, kwargs, unit in settings:
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            gm.featurize(docs, unit=unit, **kwargs)
            times.append(time.perf_counter() - start)
        t = statistics.median(times)
        print(f"{name:18s} unit={unit:8s} median {t * 1e3:8.1f} ms  {len(text) / t / 1e6:7.2f} M chars/s")


if __name__ == "__main__":
    main()
