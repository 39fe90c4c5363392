"""An independent NumPy implementation of the forward model (SPEC §1 plus
multi-head attention), written from the formulas, for cross-checking the Rust
core. It reads weights from a `state_dict`."""

from __future__ import annotations

import numpy as np

ALPHA = 0.01
EPS = 1e-8


def leaky(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x, ALPHA * x)


def l2norm(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), EPS)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class NumpyModel:
    """Forward pass in float64 from a state_dict."""

    names = ["visual", "auditory", "linguistic", "tactile", "proprioceptive", "action", "abstract"]

    def __init__(self, state_dict: dict, num_heads: int) -> None:
        self.p = {k: np.asarray(v, dtype=np.float64) for k, v in state_dict.items()}
        self.heads = num_heads
        self.e = self.p["fusion.0.bias"].shape[0]

    def encode(self, xs: dict, mask: np.ndarray) -> np.ndarray:
        b = mask.shape[0]
        out = np.zeros((b, 7, self.e))
        for m, name in enumerate(self.names):
            if name not in xs:
                continue
            x = np.asarray(xs[name], dtype=np.float64)
            z = l2norm(leaky(x @ self.p[f"encoder.{name}.weight"].T + self.p[f"encoder.{name}.bias"]))
            out[:, m] = np.where(mask[:, m : m + 1], z, 0.0)
        return out

    def fuse(self, emb: np.ndarray, mask: "np.ndarray | None" = None, residual: float = 0.0) -> np.ndarray:
        """``emb [B, 7, E]`` with absent slots zero; ``residual`` adds
        ``residual`` × the mean of the present slots (``mask``, default all)."""
        h = emb.reshape(emb.shape[0], -1)
        for i in range(3):
            h = leaky(h @ self.p[f"fusion.{i}.weight"].T + self.p[f"fusion.{i}.bias"])
        if residual:
            mask = np.ones(emb.shape[:2], dtype=bool) if mask is None else mask
            count = mask.sum(axis=1, keepdims=True)
            h = h + residual * (emb * mask[:, :, None]).sum(axis=1) / np.maximum(count, 1)
        return l2norm(h)

    def bind(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        w = self.p["binder.weight"][0]
        return sigmoid(a @ w[: self.e] + b @ w[self.e :] + self.p["binder.bias"][0])

    def attend(self, query: np.ndarray, emb: np.ndarray, mask: np.ndarray):
        p, h, e = self.p, self.heads, self.e
        d = e // h
        q = query @ p["attention.q.weight"].T  # [B, E]
        k = emb @ p["attention.k.weight"].T  # [B, 7, E]
        v = emb @ p["attention.v.weight"].T
        qh = q.reshape(-1, h, d)
        kh = k.reshape(-1, 7, h, d)
        vh = v.reshape(-1, 7, h, d)
        scores = np.einsum("bhd,bmhd->bhm", qh, kh) / np.sqrt(d)
        scores = np.where(mask[:, None, :], scores, -np.inf)
        top = np.max(scores, axis=2, keepdims=True)
        top = np.where(np.isfinite(top), top, 0.0)
        ex = np.where(mask[:, None, :], np.exp(scores - top), 0.0)
        total = ex.sum(axis=2, keepdims=True)
        a = np.divide(ex, total, out=np.zeros_like(ex), where=total > 0)
        ctx = np.einsum("bhm,bmhd->bhd", a, vh).reshape(-1, e)
        return a.mean(axis=1), ctx @ p["attention.o.weight"].T
