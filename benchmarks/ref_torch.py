"""The forward model in PyTorch eager on the CPU (float32, inference mode),
built from our `state_dict`. Import this module only after `import torch`
has been checked to work. Single events are featurised with the NumPy
featuriser (what a PyTorch user would do) and handed over with
`torch.from_numpy` (no copy)."""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ref_numpy import MODALITY_NAMES, NUM_MODALITIES, fingerprint, parameters_only, text_graph_arrays

ALPHA = 0.01
NORM_EPS = 1e-8


class TorchModel:
    """Encoders + fusion network as `torch` tensors from a `state_dict`."""

    def __init__(self, state_dict: Mapping[str, np.ndarray]) -> None:
        p = {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in parameters_only(state_dict, "torch").items()}
        self.embed_dim = p["fusion.0.bias"].shape[0]
        self.enc = [(p[f"encoder.{n}.weight"], p[f"encoder.{n}.bias"]) for n in MODALITY_NAMES]
        self.fus = [(p[f"fusion.{i}.weight"], p[f"fusion.{i}.bias"]) for i in range(3)]

    @torch.inference_mode()
    def encode(self, xs: Sequence[Optional[torch.Tensor]], mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``xs[m] [B, d_m]`` or None → embeddings ``[B, 7, E]`` (zeros where absent)."""
        batch = next(x.shape[0] for x in xs if x is not None)
        emb = torch.zeros(batch, NUM_MODALITIES, self.embed_dim)
        for m, x in enumerate(xs):
            if x is None:
                continue
            w, b = self.enc[m]
            z = F.normalize(F.leaky_relu(F.linear(x, w, b), ALPHA), dim=1, eps=NORM_EPS)
            if mask is not None:
                z = z * mask[:, m : m + 1]
            emb[:, m] = z
        return emb

    @torch.inference_mode()
    def fuse(self, emb: torch.Tensor) -> torch.Tensor:
        """``[B, 7, E]`` → unit ``[B, E]``."""
        h = emb.reshape(emb.shape[0], -1)
        for w, b in self.fus:
            h = F.leaky_relu(F.linear(h, w, b), ALPHA)
        return F.normalize(h, dim=1, eps=NORM_EPS)

    @torch.inference_mode()
    def encode_and_fuse(self, xs: Sequence[Optional[torch.Tensor]], mask: Optional[torch.Tensor] = None) -> tuple:
        emb = self.encode(xs, mask)
        return emb, self.fuse(emb)

    @torch.inference_mode()
    def fuse_texts(self, texts: Mapping[int, str]) -> torch.Tensor:
        """One event given as ``{modality index: text}``: featurise, encode, fuse → ``[E]``."""
        xs: list = [None] * NUM_MODALITIES
        for m, text in texts.items():
            xs[m] = torch.from_numpy(fingerprint(*text_graph_arrays(text))[None, :])
        return self.fuse(self.encode(xs))[0]


def as_tensors(xs: Sequence[Optional[np.ndarray]]) -> list:
    """Zero-copy tensors of the per-modality arrays (None kept)."""
    return [None if x is None else torch.from_numpy(x) for x in xs]
