"""The training step in PyTorch eager on the CPU: the default objectives
(contrastive, binding, cross_modal, fused_contrastive; docs/objectives.md),
autograd, and
`torch.optim.Adam` — written as a PyTorch user would (the pairs of modalities
batched with `bmm`, one `cross_entropy` / `binary_cross_entropy_with_logits`
call each), from our `state_dict`, with the random draws taken from our
library so the step is the same step.

Scope: the additive binder (the default) and batches where a fixed set of
modalities is present in every row (7 of 7, or 3 of 7); that is what the
benchmark times. Import only after `import torch` has been checked to work.
"""

from __future__ import annotations

import math
from typing import Dict, List, Mapping, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from ref_numpy import MODALITY_NAMES, NUM_MODALITIES, parameters_only
from ref_numpy_train import Draws

ALPHA = 0.01
NORM_EPS = 1e-8


def _l2norm(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(NORM_EPS)


class TorchTrainer:
    """The model's 26 tensors as leaf tensors, the three default objectives,
    and `torch.optim.Adam` with our settings (β = (0.9, 0.999), ε = 1e-8)."""

    def __init__(self, state_dict: Mapping[str, np.ndarray], num_heads: int, temperature: float, lr: float) -> None:
        self.names = list(parameters_only(state_dict, "torch"))
        self.p: Dict[str, torch.Tensor] = {
            k: torch.tensor(np.asarray(v, dtype=np.float32), requires_grad=True) for k, v in state_dict.items()
        }
        self.embed_dim = self.p["fusion.0.bias"].shape[0]
        if self.p["binder.weight"].shape != (1, 2 * self.embed_dim):
            raise ValueError("the torch reference implements the additive binder only")
        self.heads = num_heads
        self.tau = temperature
        self.optimizer = torch.optim.Adam(list(self.p.values()), lr=lr, betas=(0.9, 0.999), eps=1e-8)

    # ------------------------------------------------------------- forward
    def encode(self, xs: Sequence[torch.Tensor], present: Sequence[int]) -> torch.Tensor:
        """Embeddings ``[B, 7, E]`` (zeros for the modalities not present)."""
        batch = xs[present[0]].shape[0]
        parts = []
        for m in range(NUM_MODALITIES):
            if m in present:
                w, b = self.p[f"encoder.{MODALITY_NAMES[m]}.weight"], self.p[f"encoder.{MODALITY_NAMES[m]}.bias"]
                parts.append(_l2norm(F.leaky_relu(F.linear(xs[m], w, b), ALPHA)))
            else:
                parts.append(torch.zeros(batch, self.embed_dim))
        return torch.stack(parts, dim=1)

    def fuse(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for i in range(3):
            h = F.leaky_relu(F.linear(h, self.p[f"fusion.{i}.weight"], self.p[f"fusion.{i}.bias"]), ALPHA)
        return _l2norm(h)

    def attend(self, query: torch.Tensor, emb: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        n, e, h = query.shape[0], self.embed_dim, self.heads
        d = e // h
        q = F.linear(query, self.p["attention.q.weight"]).view(n, h, d)
        k = F.linear(emb, self.p["attention.k.weight"]).view(n, NUM_MODALITIES, h, d)
        v = F.linear(emb, self.p["attention.v.weight"]).view(n, NUM_MODALITIES, h, d)
        scores = torch.einsum("nhd,nmhd->nhm", q, k) / math.sqrt(d)
        weights = torch.softmax(scores.masked_fill(~mask[:, None, :], float("-inf")), dim=-1)
        context = torch.einsum("nhm,nmhd->nhd", weights, v).reshape(n, e)
        return F.linear(context, self.p["attention.o.weight"])

    # ---------------------------------------------------------- objectives
    def contrastive(self, emb: torch.Tensor, present: Sequence[int]) -> torch.Tensor:
        pairs = [(i, j) for a, i in enumerate(present) for j in present[a + 1 :]]
        n = emb.shape[0]
        if not pairs or n < 2:
            return emb.sum() * 0
        left = emb[:, [i for i, _ in pairs]].transpose(0, 1)  # [P, n, E]
        right = emb[:, [j for _, j in pairs]].transpose(0, 1)
        logits = torch.bmm(left, right.transpose(1, 2)) / self.tau  # [P, n, n]
        target = torch.arange(n).repeat(len(pairs))
        rows = F.cross_entropy(logits.reshape(-1, n), target)
        cols = F.cross_entropy(logits.transpose(1, 2).reshape(-1, n), target)
        return 0.5 * (rows + cols)

    def binding(self, emb: torch.Tensor, shifts: Sequence[Tuple[int, int, int]]) -> torch.Tensor:
        n, e = emb.shape[0], self.embed_dim
        if not shifts:
            return emb.sum() * 0
        w, c = self.p["binder.weight"][0], self.p["binder.bias"]
        left = emb @ w[:e]  # [n, 7]: e_m(r) · wa
        right = emb @ w[e:]  # [n, 7]: e_m(r) · wb
        rows = torch.arange(n)
        i = torch.tensor([s[0] for s in shifts])
        j = torch.tensor([s[1] for s in shifts])
        shift = torch.tensor([s[2] for s in shifts])
        positive = left[:, i] + right[:, j] + c  # [n, pairs]
        negative = left[:, i] + right[(rows[:, None] + shift[None, :]) % n, j[None, :]] + c
        z = torch.cat([positive.reshape(-1), negative.reshape(-1)])
        labels = torch.cat([torch.ones(positive.numel()), torch.zeros(negative.numel())])
        return F.binary_cross_entropy_with_logits(z, labels)

    def cross_modal(self, emb: torch.Tensor, present: Sequence[int], rows: List[int], dropped: List[int]) -> torch.Tensor:
        if not rows:
            return emb.sum() * 0
        n = len(rows)
        r = torch.tensor(rows)
        d = torch.tensor(dropped)
        keep = torch.zeros(NUM_MODALITIES, dtype=torch.bool)
        keep[list(present)] = True
        mask = keep.repeat(n, 1)
        mask[torch.arange(n), d] = False
        rest = emb[r] * mask[:, :, None]
        query = self.fuse(rest.reshape(n, -1))
        prediction = query + self.attend(query, rest, mask)
        target = emb[r, d].detach()
        cos = (prediction * target).sum(1) / (
            prediction.norm(dim=1).clamp_min(NORM_EPS) * target.norm(dim=1).clamp_min(NORM_EPS)
        )
        return (1 - cos).mean()

    def fused_contrastive(self, emb: torch.Tensor, rows: List[int], views: Tuple[torch.Tensor, torch.Tensor],
                          target: torch.Tensor) -> torch.Tensor:
        n = len(rows)
        if n < 2:
            return emb.sum() * 0
        x = emb[torch.tensor(rows)]
        both = torch.cat([x * views[0][:, :, None], x * views[1][:, :, None]]).reshape(2 * n, -1)
        fused = self.fuse(both)
        logits = fused[:n] @ fused[n:].T / self.tau
        rows_term = -(target * torch.log_softmax(logits, dim=1)).sum()
        cols_term = -(target * torch.log_softmax(logits, dim=0).T).sum()
        return 0.5 * (rows_term + cols_term) / n

    def prepare_draws(self, draws: Draws) -> tuple:
        """The draws as tensors (once, outside the timed step): the views as
        float masks and the positives as the target matrix ``T[k, p] = 1/|P_k|``."""
        shifts, rows, dropped, fused_rows, view_a, view_b, positives = draws
        n = len(fused_rows)
        target = torch.zeros(n, n)
        for k, pos in enumerate(positives):
            target[k, pos] += 1.0 / len(pos)
        views = (torch.from_numpy(np.asarray(view_a, dtype=np.float32)), torch.from_numpy(np.asarray(view_b, dtype=np.float32)))
        return shifts, rows, dropped, fused_rows, views, target

    def losses(self, xs: Sequence[torch.Tensor], present: Sequence[int], draws: tuple) -> Dict[str, torch.Tensor]:
        """``draws`` as made by :meth:`prepare_draws`."""
        shifts, rows, dropped, fused_rows, views, target = draws
        emb = self.encode(xs, present)
        out = {
            "contrastive": self.contrastive(emb, present),
            "binding": self.binding(emb, shifts),
            "cross_modal": self.cross_modal(emb, present, rows, dropped),
            "fused_contrastive": self.fused_contrastive(emb, fused_rows, views, target),
        }
        out["total"] = out["contrastive"] + out["binding"] + out["cross_modal"] + out["fused_contrastive"]
        return out

    def backward(self, xs: Sequence[torch.Tensor], present: Sequence[int], draws: tuple) -> Dict[str, float]:
        """Fresh gradients of the total (no step); the losses as floats."""
        self.optimizer.zero_grad(set_to_none=True)
        losses = self.losses(xs, present, draws)
        losses["total"].backward()
        return {k: float(v.detach()) for k, v in losses.items()}

    def train_step(self, xs: Sequence[torch.Tensor], present: Sequence[int], draws: tuple) -> torch.Tensor:
        """zero_grad → losses → backward → Adam; returns the total (a tensor:
        no `.item()` sync in the timed loop beyond what the step needs)."""
        self.optimizer.zero_grad(set_to_none=True)
        total = self.losses(xs, present, draws)["total"]
        total.backward()
        self.optimizer.step()
        return total.detach()

    def gradients(self) -> Dict[str, np.ndarray]:
        return {k: v.grad.numpy().copy() for k, v in self.p.items() if v.grad is not None}

    def state_dict(self) -> Dict[str, np.ndarray]:
        return {k: v.detach().numpy().copy() for k, v in self.p.items()}
