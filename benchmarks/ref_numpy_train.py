"""The training step in NumPy float32, forward and backward by hand: the
default objectives (contrastive, binding, cross_modal, fused_contrastive;
the formulas of docs/objectives.md), their analytic gradients, and Adam — as a careful NumPy
user would write it (pairs of modalities batched into 3-D matmuls, no
per-row Python loops), from our `state_dict`, with the random draws taken
from our library so that the step is the same step.

Scope: the additive binder (the default) and batches where a fixed set of
modalities is present in every row (7 of 7, or 3 of 7).
"""

from __future__ import annotations

from typing import Dict, List, Mapping, Sequence, Tuple

import numpy as np

from ref_numpy import ALPHA, MODALITY_NAMES, NORM_EPS, NUM_MODALITIES, parameters_only

F32 = np.float32
BETA1, BETA2, ADAM_EPS = 0.9, 0.999, 1e-8

#: binding's shifts [(i, j, shift)], cross_modal's rows and dropped modalities,
#: fused_contrastive's rows, two views [n, 7] and positives (as from
#: ``_core.Model.objective_draws``).
Draws = Tuple[List[Tuple[int, int, int]], List[int], List[int], List[int], np.ndarray, np.ndarray, List[List[int]]]


def _leaky_grad(y: np.ndarray) -> np.ndarray:
    """d leaky / d input from the output (same sign as the input)."""
    return np.where(y > 0, F32(1), ALPHA)


def _norms(x: np.ndarray) -> np.ndarray:
    return np.sqrt(np.einsum("...i,...i->...", x, x))


def _l2norm_backward(y: np.ndarray, norms: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """``dv`` of ``y = v / ||v||`` (rows above the eps floor)."""
    proj = np.einsum("...i,...i->...", y, dy)
    return (dy - y * proj[..., None]) / np.maximum(norms, NORM_EPS)[..., None]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(F32(0), -x)).astype(F32)


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(F32(0), x)


def _row_and_column_softmax(logits: np.ndarray) -> tuple:
    """Softmax of ``logits [..., n, n]`` along its rows and along its columns,
    and the log-sum-exps they came from: ``(p_rows, row_lse, q_cols, col_lse)``,
    the two halves of a symmetric InfoNCE."""
    row_max = logits.max(axis=-1, keepdims=True)
    p_rows = np.exp(logits - row_max)
    row_sum = p_rows.sum(axis=-1, keepdims=True)
    col_max = logits.max(axis=-2, keepdims=True)
    q_cols = np.exp(logits - col_max)
    col_sum = q_cols.sum(axis=-2, keepdims=True)
    p_rows /= row_sum
    q_cols /= col_sum
    row_lse = (row_max + np.log(row_sum))[..., 0]
    col_lse = (col_max + np.log(col_sum))[..., 0, :]
    return p_rows, row_lse, q_cols, col_lse


class NumpyTrainer:
    """Weights, gradients and Adam state as float32 arrays under our names."""

    def __init__(self, state_dict: Mapping[str, np.ndarray], num_heads: int, temperature: float, lr: float) -> None:
        self.p: Dict[str, np.ndarray] = {k: np.array(v, dtype=F32) for k, v in parameters_only(state_dict, "NumPy").items()}
        self.embed_dim = self.p["fusion.0.bias"].shape[0]
        if self.p["binder.weight"].shape != (1, 2 * self.embed_dim):
            raise ValueError("the NumPy reference implements the additive binder only")
        self.heads = num_heads
        self.tau = F32(temperature)
        self.lr = lr
        self.m = {k: np.zeros_like(v) for k, v in self.p.items()}
        self.v = {k: np.zeros_like(v) for k, v in self.p.items()}
        self.t = 0

    # ------------------------------------------------------------ encoders
    def _encode(self, xs: Sequence[np.ndarray], present: Sequence[int]) -> Tuple[np.ndarray, Dict[int, np.ndarray]]:
        batch = xs[present[0]].shape[0]
        emb = np.zeros((batch, NUM_MODALITIES, self.embed_dim), dtype=F32)
        norms = {}
        for m in present:
            name = MODALITY_NAMES[m]
            z = xs[m] @ self.p[f"encoder.{name}.weight"].T
            z += self.p[f"encoder.{name}.bias"]
            np.maximum(z, z * ALPHA, out=z)
            norms[m] = _norms(z)
            emb[:, m] = z / np.maximum(norms[m], NORM_EPS)[:, None]
        return emb, norms

    def _encode_backward(self, xs, present, emb, norms, d_emb, g) -> None:
        for m in present:
            name = MODALITY_NAMES[m]
            e = emb[:, m]
            dz = _l2norm_backward(e, norms[m], d_emb[:, m]) * _leaky_grad(e)
            g[f"encoder.{name}.weight"] += dz.T @ xs[m]
            g[f"encoder.{name}.bias"] += dz.sum(0)

    # --------------------------------------------------------- contrastive
    def _contrastive(self, emb, present, d_emb) -> F32:
        pairs = [(i, j) for a, i in enumerate(present) for j in present[a + 1 :]]
        n = emb.shape[0]
        if not pairs or n < 2:
            return F32(0)
        left = np.ascontiguousarray(emb[:, [i for i, _ in pairs]].transpose(1, 0, 2))  # [P, n, E]
        right = np.ascontiguousarray(emb[:, [j for _, j in pairs]].transpose(1, 0, 2))
        logits = left @ right.transpose(0, 2, 1)
        logits /= self.tau  # [P, n, n]
        diag = np.einsum("pii->pi", logits)
        p_rows, row_lse, q_cols, col_lse = _row_and_column_softmax(logits)
        loss = F32(0.5) * ((row_lse - diag).mean(axis=1) + (col_lse - diag).mean(axis=1)).mean()
        # d/dS of the pair's mean over pairs: c (P + Q - 2I), c = 1 / (2 |pairs| n).
        c = F32(0.5 / (len(pairs) * n))
        d_logits = p_rows
        d_logits += q_cols
        d_logits *= c
        idx = np.arange(n)
        d_logits[:, idx, idx] -= 2 * c
        d_left = (d_logits @ right) / self.tau
        d_right = (d_logits.transpose(0, 2, 1) @ left) / self.tau
        for k, (i, j) in enumerate(pairs):
            d_emb[:, i] += d_left[k]
            d_emb[:, j] += d_right[k]
        return loss

    # ------------------------------------------------------------- binding
    def _binding(self, emb, shifts, d_emb, g) -> F32:
        n, e = emb.shape[0], self.embed_dim
        if not shifts:
            return F32(0)
        w, c = self.p["binder.weight"][0], self.p["binder.bias"][0]
        left = emb @ w[:e]  # [n, 7]
        right = emb @ w[e:]
        rows = np.arange(n)
        i = np.array([s[0] for s in shifts])
        j = np.array([s[1] for s in shifts])
        shift = np.array([s[2] for s in shifts])
        other = (rows[:, None] + shift[None, :]) % n  # [n, pairs]: the negative's row
        positive = left[:, i] + right[:, j] + c
        negative = left[:, i] + right[other, j[None, :]] + c
        count = F32(2 * positive.size)
        loss = (_softplus(-positive).sum() + _softplus(negative).sum()) / count
        d_pos = (_sigmoid(positive) - F32(1)) / count
        d_neg = _sigmoid(negative) / count
        d_left = np.zeros_like(left)
        d_right = np.zeros_like(right)
        np.add.at(d_left, (slice(None), i), d_pos + d_neg)
        np.add.at(d_right, (slice(None), j), d_pos)
        np.add.at(d_right, (other, j[None, :]), d_neg)
        g["binder.weight"][0, :e] += np.einsum("rm,rme->e", d_left, emb)
        g["binder.weight"][0, e:] += np.einsum("rm,rme->e", d_right, emb)
        g["binder.bias"][0] += d_pos.sum() + d_neg.sum()
        d_emb += d_left[..., None] * w[:e] + d_right[..., None] * w[e:]
        return F32(loss)

    # ---------------------------------------------------------------- fusion
    def _fuse(self, x: np.ndarray) -> tuple:
        """``x [N, 7E]`` → ``(activations, norms, unit output [N, E])``."""
        acts = [x]
        for k in range(3):
            h = acts[-1] @ self.p[f"fusion.{k}.weight"].T
            h += self.p[f"fusion.{k}.bias"]
            np.maximum(h, h * ALPHA, out=h)
            acts.append(h)
        norms = _norms(acts[3])
        return acts, norms, acts[3] / np.maximum(norms, NORM_EPS)[:, None]

    def _fuse_backward(self, acts, norms, out, d_out, g) -> np.ndarray:
        """Adds the fusion gradients to ``g``; returns the gradient on ``x``."""
        dh = _l2norm_backward(out, norms, d_out)
        for k in (2, 1, 0):
            dh *= _leaky_grad(acts[k + 1])
            g[f"fusion.{k}.weight"] += dh.T @ acts[k]
            g[f"fusion.{k}.bias"] += dh.sum(0)
            dh = dh @ self.p[f"fusion.{k}.weight"]
        return dh

    # ---------------------------------------------------- fused contrastive
    def _fused_contrastive(self, emb, rows, views, positives, d_emb, g) -> F32:
        n, e = len(rows), self.embed_dim
        if n < 2:
            return F32(0)
        r = np.asarray(rows)
        x = np.concatenate([emb[r] * views[0][:, :, None], emb[r] * views[1][:, :, None]]).reshape(2 * n, -1)
        acts, norms, out = self._fuse(x)
        u, v = out[:n], out[n:]
        logits = (u @ v.T) / self.tau
        p_rows, row_lse, q_cols, col_lse = _row_and_column_softmax(logits)
        target = np.zeros((n, n), dtype=F32)  # T[k, p] = 1 / |P_k|
        for k, pos in enumerate(positives):
            target[k, pos] += F32(1 / len(pos))
        # Σ_k Σ_p T_kp [(lse_row_k − S_kp) + (lse_col_k − S_pk)]
        loss = F32(0.5) * ((row_lse - (target * logits).sum(1)).sum() + (col_lse - (target * logits.T).sum(1)).sum()) / F32(n)
        c = F32(0.5 / n)
        d_logits = (p_rows + q_cols - target - target.T) * c
        d_out = np.concatenate([d_logits @ v, d_logits.T @ u]) / self.tau
        dx = self._fuse_backward(acts, norms, out, d_out, g).reshape(2, n, NUM_MODALITIES, e)
        d_emb[r] += dx[0] * views[0][:, :, None] + dx[1] * views[1][:, :, None]
        return F32(loss)

    # --------------------------------------------------------- cross-modal
    def _cross_modal(self, emb, present, rows, dropped, d_emb, g) -> F32:
        if not rows:
            return F32(0)
        p = self.p
        n, e, heads = len(rows), self.embed_dim, self.heads
        hd = e // heads
        r, d = np.asarray(rows), np.asarray(dropped)
        mask = np.zeros((n, NUM_MODALITIES), dtype=bool)
        mask[:, list(present)] = True
        mask[np.arange(n), d] = False
        rest = emb[r] * mask[:, :, None]
        acts, fused_norm, query = self._fuse(rest.reshape(n, -1))
        # attention
        q = (query @ p["attention.q.weight"].T).reshape(n, heads, hd)
        k_ = (rest @ p["attention.k.weight"].T).reshape(n, NUM_MODALITIES, heads, hd)
        v = (rest @ p["attention.v.weight"].T).reshape(n, NUM_MODALITIES, heads, hd)
        scale = F32(1 / np.sqrt(hd))
        scores = np.einsum("nhd,nmhd->nhm", q, k_) * scale
        scores = np.where(mask[:, None, :], scores, F32(-np.inf))
        a = np.exp(scores - scores.max(axis=2, keepdims=True))
        a /= a.sum(axis=2, keepdims=True)
        context = np.einsum("nhm,nmhd->nhd", a, v).reshape(n, e)
        prediction = query + context @ p["attention.o.weight"].T
        target = emb[r, d]
        pn, tn = _norms(prediction), _norms(target)
        denom = np.maximum(pn, NORM_EPS) * np.maximum(tn, NORM_EPS)
        cos = np.einsum("ni,ni->n", prediction, target) / denom
        loss = (F32(1) - cos).mean()
        # backward: d(1 - cos)/dp, mean over rows
        d_pred = -(target / denom[:, None] - prediction * (cos / pn**2)[:, None]) / F32(n)
        g["attention.o.weight"] += d_pred.T @ context
        d_context = (d_pred @ p["attention.o.weight"]).reshape(n, heads, hd)
        d_a = np.einsum("nhd,nmhd->nhm", d_context, v)
        d_v = np.einsum("nhm,nhd->nmhd", a, d_context).reshape(n * NUM_MODALITIES, e)
        d_scores = a * (d_a - (a * d_a).sum(axis=2, keepdims=True)) * scale
        d_q = np.einsum("nhm,nmhd->nhd", d_scores, k_).reshape(n, e)
        d_k = np.einsum("nhm,nhd->nmhd", d_scores, q).reshape(n * NUM_MODALITIES, e)
        rest_flat = rest.reshape(n * NUM_MODALITIES, e)
        g["attention.q.weight"] += d_q.T @ query
        g["attention.k.weight"] += d_k.T @ rest_flat
        g["attention.v.weight"] += d_v.T @ rest_flat
        d_query = d_pred + d_q @ p["attention.q.weight"]
        d_rest = (d_k @ p["attention.k.weight"] + d_v @ p["attention.v.weight"]).reshape(n, NUM_MODALITIES, e)
        dh = self._fuse_backward(acts, fused_norm, query, d_query, g)
        d_rest += dh.reshape(n, NUM_MODALITIES, e)
        d_rest *= mask[:, :, None]
        np.add.at(d_emb, r, d_rest)
        return F32(loss)

    # ---------------------------------------------------------------- step
    def losses_and_gradients(self, xs: Sequence[np.ndarray], present: Sequence[int], draws: Draws) -> Tuple[Dict[str, float], Dict[str, np.ndarray]]:
        shifts, rows, dropped, fused_rows, view_a, view_b, positives = draws
        present = list(present)
        g = {k: np.zeros_like(v) for k, v in self.p.items()}
        emb, norms = self._encode(xs, present)
        d_emb = np.zeros_like(emb)
        losses = {
            "contrastive": self._contrastive(emb, present, d_emb),
            "binding": self._binding(emb, shifts, d_emb, g),
            "cross_modal": self._cross_modal(emb, present, rows, dropped, d_emb, g),
            "fused_contrastive": self._fused_contrastive(emb, fused_rows, (view_a, view_b), positives, d_emb, g),
        }
        self._encode_backward(xs, present, emb, norms, d_emb, g)
        out = {k: float(v) for k, v in losses.items()}
        out["total"] = float(sum(losses.values()))
        return out, g

    def adam(self, grads: Mapping[str, np.ndarray]) -> None:
        """One Adam update (PyTorch's formula and order)."""
        self.t += 1
        step_size = F32(self.lr / (1 - BETA1**self.t))
        bias2_sqrt = F32(np.sqrt(1 - BETA2**self.t))
        for k, p in self.p.items():
            g, m, v = grads[k], self.m[k], self.v[k]
            m *= F32(BETA1)
            m += F32(1 - BETA1) * g
            v *= F32(BETA2)
            v += F32(1 - BETA2) * g * g
            p -= step_size * m / (np.sqrt(v) / bias2_sqrt + F32(ADAM_EPS))

    def train_step(self, xs: Sequence[np.ndarray], present: Sequence[int], draws: Draws) -> float:
        losses, grads = self.losses_and_gradients(xs, present, draws)
        self.adam(grads)
        return losses["total"]
