"""Wall-clock timing with warm-up, calibrated inner loops, median and IQR.

Frameworks compared in one case are sampled round-robin (`measure_many`):
on a shared, noisy machine a burst of load then hits all of them alike
instead of whichever happened to be running. Each sample is preceded by
`settle_s` of untimed calls (at least one), so that it does not pay for the
switch from the framework sampled before it: cold caches, a heap shaped by
another allocator, its own worker threads asleep, and above all the other
framework's worker threads still spinning on the CPUs (numpy's OpenBLAS
threads busy-wait for about 0.1 s after a call; with one untimed call, our
batched forward at B = 4096 measured 1.5 M events/s right after numpy's and
2.8 M alone on 2 CPUs, and PyTorch's 0.6 M against 1.5 M alone).

A *sample* times `number` back-to-back calls with `time.perf_counter`;
`number` is calibrated so that one sample lasts at least `min_sample_s`
(short calls are otherwise dominated by the timer's own cost). The reported
figures are per call: the median of the samples and their inter-quartile
range (q75 - q25), which is robust to the load spikes of a shared machine.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable, Dict, List

import numpy as np


@dataclass(frozen=True)
class Settings:
    """How hard to time: `--quick` uses tiny values for a smoke run."""

    warmup_s: float = 0.2
    settle_s: float = 0.15  # untimed calls before each sample of measure_many: longer than a BLAS pool's spin
    min_sample_s: float = 0.02
    repeats: int = 15
    max_total_s: float = 6.0  # per measured case, a cap for slow cases

    @classmethod
    def quick(cls) -> "Settings":
        return cls(warmup_s=0.0, settle_s=0.0, min_sample_s=0.0, repeats=2, max_total_s=0.5)


@dataclass(frozen=True)
class Timing:
    """Seconds per call."""

    median: float
    q25: float
    q75: float
    best: float
    samples: int
    calls_per_sample: int

    @property
    def iqr(self) -> float:
        return self.q75 - self.q25

    def to_dict(self) -> dict:
        d = asdict(self)
        d["iqr"] = self.iqr
        return d


def measure(fn: Callable[[], object], settings: Settings) -> Timing:
    """Times `fn()` (called with no arguments; its result is discarded)."""
    return measure_many({"fn": fn}, settings)["fn"]


def measure_many(fns: Dict[str, Callable[[], object]], settings: Settings) -> Dict[str, Timing]:
    """Times each function, taking their samples in turn (round-robin, the
    starting one rotating), until `repeats` rounds or the time cap."""
    for fn in fns.values():
        fn()  # first call outside every clock: lazy initialisation, page faults
        deadline = time.perf_counter() + settings.warmup_s
        while time.perf_counter() < deadline:
            fn()
    numbers = {name: _calibrate(fn, settings.min_sample_s) for name, fn in fns.items()}
    per_call: Dict[str, List[float]] = {name: [] for name in fns}
    names = list(fns)
    budget_end = time.perf_counter() + (settings.max_total_s + settings.repeats * settings.settle_s) * len(fns)  # settling is not the case's cost
    for i in range(settings.repeats):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            fn, number = fns[name], numbers[name]
            # Untimed calls first, for settle_s (at least one): the framework sampled
            # before this one left the caches, the heap and its threads in its own
            # state, its BLAS workers still spinning (see the module's docstring).
            settled = time.perf_counter() + settings.settle_s
            fn()
            while time.perf_counter() < settled:
                fn()
            start = time.perf_counter()
            for _ in range(number):
                fn()
            per_call[name].append((time.perf_counter() - start) / number)
        if i >= 2 and time.perf_counter() > budget_end:
            break
    out = {}
    for name, samples in per_call.items():
        q25, med, q75 = np.percentile(samples, [25, 50, 75])
        out[name] = Timing(float(med), float(q25), float(q75), float(min(samples)), len(samples), numbers[name])
    return out


def _calibrate(fn: Callable[[], object], min_sample_s: float) -> int:
    """The smallest power of two of calls that lasts `min_sample_s`."""
    number = 1
    while min_sample_s > 0 and number < 1 << 20:
        start = time.perf_counter()
        for _ in range(number):
            fn()
        if time.perf_counter() - start >= min_sample_s:
            break
        number *= 2
    return number
