"""An independent pure-Python statement of the WL features (the algorithm and
hash documented in rust/core/src/features/wl.rs), used to check the Rust
implementation bit for bit on random graphs."""

from __future__ import annotations

import math
from typing import List, Sequence, Tuple

import numpy as np

MASK = (1 << 64) - 1
FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3


def mix(z: int) -> int:
    """The SplitMix64 finaliser."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


class Hasher:
    def __init__(self, tag: int) -> None:
        self.state = mix(FNV_OFFSET ^ tag)

    def bytes(self, data: bytes) -> None:
        for b in data:  # FNV-1a 64
            self.state = ((self.state ^ b) * FNV_PRIME) & MASK

    def u64(self, v: int) -> None:
        self.state = mix(self.state ^ v)

    def finish(self) -> int:
        return mix(self.state)


def activation_bucket(a: float) -> int:
    return int(math.floor(min(max(np.float32(a) * np.float32(7.0), 0.0), 7.0)))


def wl_features(
    labels: Sequence[str], activations: Sequence[float], edges: Sequence[Tuple[int, int]], dim: int, iterations: int
) -> np.ndarray:
    n = len(labels)
    if n == 0:
        return np.zeros(dim, dtype=np.float32)
    incoming: List[List[int]] = [[] for _ in range(n)]
    outgoing: List[List[int]] = [[] for _ in range(n)]
    for s, t in edges:
        outgoing[s].append(t)
        incoming[t].append(s)
    colours = []
    for label, a in zip(labels, activations):
        h = Hasher(1)
        raw = label.encode("utf-8")
        h.u64(len(raw))
        h.bytes(raw)
        h.u64(activation_bucket(a))
        colours.append(h.finish())
    total = np.zeros(dim, dtype=np.float64)
    for depth in range(iterations + 1):
        if depth > 0:
            new = []
            for v in range(n):
                h = Hasher(2)
                h.u64(colours[v])
                for side in (incoming[v], outgoing[v]):
                    cs = sorted(colours[u] for u in side)
                    h.u64(len(cs))
                    for c in cs:
                        h.u64(c)
                new.append(h.finish())
            colours = new
        hist = np.zeros(dim, dtype=np.float64)
        for c in colours:
            h = Hasher(3)
            h.u64(depth)
            h.u64(c)
            hist[h.finish() % dim] += 1.0
        total += hist / np.sqrt((hist * hist).sum())
    return (total / np.sqrt((total * total).sum())).astype(np.float32)
