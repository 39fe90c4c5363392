"""The forward model in NumPy float32, as a careful NumPy user would write it
(weights transposed and made contiguous once, in-place activations), built
from our `state_dict` so the outputs can be compared element by element.

Also the NumPy featuriser: the 18 graph features (SPEC §1) of a graph given
as arrays, and the arrays of a text graph.
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np

MODALITY_NAMES = ("visual", "auditory", "linguistic", "tactile", "proprioceptive", "action", "abstract")
NUM_MODALITIES = len(MODALITY_NAMES)
FEATURE_DIM = 18
ALPHA = np.float32(0.01)
NORM_EPS = np.float32(1e-8)


def parameters_only(state_dict: Mapping[str, np.ndarray], reference: str) -> Mapping[str, np.ndarray]:
    """``state_dict``, refused when it holds the inputs' standardisation
    (``normalization.<modality>.mean`` / ``.std``, which a fitted model's
    state dict holds): the references embed the raw inputs, so from such a
    dict they would compute other embeddings than the model, said nowhere."""
    held = sorted(k for k in state_dict if isinstance(k, str) and k.startswith("normalization."))
    if held:
        raise ValueError(f"state_dict: holds the inputs' standardisation ({', '.join(held[:2])}, ...), which the "
                         f"{reference} reference does not apply; expected the state dict of a model that standardises "
                         "nothing (unfitted, or fitted with standardize=False)")
    return state_dict


# ---------------------------------------------------------------- featurise
def text_graph_arrays(text: str) -> tuple:
    """``(num_nodes, activations [n], edge_sources [n-1])`` of the text graph:
    one node per character, activation 1, chain edges ``i -> i+1``."""
    n = len(text)
    return n, np.ones(n, dtype=np.float32), np.arange(max(n - 1, 0))


def fingerprint(num_nodes: int, activations: np.ndarray, edge_sources: np.ndarray) -> np.ndarray:
    """The 18 features ``[18]`` float32 of a graph given as arrays."""
    f = np.zeros(FEATURE_DIM, dtype=np.float32)
    f[0] = np.float32(num_nodes) / np.float32(100)
    f[1] = np.float32(len(edge_sources)) / np.float32(100)
    if num_nodes:
        buckets = np.floor(np.clip(activations * np.float32(7), 0, 7)).astype(np.intp)
        f[2:10] = np.bincount(buckets, minlength=8).astype(np.float32) / np.float32(10)
        out_degree = np.bincount(edge_sources, minlength=num_nodes)
        f[10:18] = np.bincount(np.minimum(out_degree, 7), minlength=8).astype(np.float32) / np.float32(10)
    return f


def featurise_texts(texts: Sequence[str]) -> np.ndarray:
    """``[N, 18]`` features of the text graphs of `texts`."""
    return np.stack([fingerprint(*text_graph_arrays(t)) for t in texts]) if texts else np.zeros((0, FEATURE_DIM), np.float32)


# ------------------------------------------------------------------- model
def _leaky_(z: np.ndarray) -> np.ndarray:
    return np.maximum(z, z * ALPHA, out=z)


def _l2norm_(z: np.ndarray) -> np.ndarray:
    norms = np.sqrt(np.einsum("ij,ij->i", z, z))
    z /= np.maximum(norms, NORM_EPS)[:, None]
    return z


class NumpyModel:
    """Encoders + fusion network in float32 from a `state_dict`."""

    def __init__(self, state_dict: Mapping[str, np.ndarray]) -> None:
        p = {k: np.asarray(v, dtype=np.float32) for k, v in parameters_only(state_dict, "NumPy").items()}
        self.embed_dim = p["fusion.0.bias"].shape[0]
        self.enc_wt = [np.ascontiguousarray(p[f"encoder.{n}.weight"].T) for n in MODALITY_NAMES]
        self.enc_b = [p[f"encoder.{n}.bias"] for n in MODALITY_NAMES]
        self.fus_wt = [np.ascontiguousarray(p[f"fusion.{i}.weight"].T) for i in range(3)]
        self.fus_b = [p[f"fusion.{i}.bias"] for i in range(3)]

    def encode(self, xs: Sequence[Optional[np.ndarray]], mask: Optional[np.ndarray] = None) -> np.ndarray:
        """``xs[m] [B, d_m]`` or None → embeddings ``[B, 7, E]`` (zeros where absent)."""
        batch = next(len(x) for x in xs if x is not None)
        emb = np.zeros((batch, NUM_MODALITIES, self.embed_dim), dtype=np.float32)
        for m, x in enumerate(xs):
            if x is None:
                continue
            z = x @ self.enc_wt[m]
            z += self.enc_b[m]
            emb[:, m] = _l2norm_(_leaky_(z))
            if mask is not None and not mask[:, m].all():
                emb[~mask[:, m], m] = 0
        return emb

    def fuse(self, emb: np.ndarray) -> np.ndarray:
        """``[B, 7, E]`` → unit ``[B, E]``."""
        h = emb.reshape(emb.shape[0], -1)
        for w, b in zip(self.fus_wt, self.fus_b):
            h = h @ w
            h += b
            _leaky_(h)
        return _l2norm_(h)

    def encode_and_fuse(self, xs: Sequence[Optional[np.ndarray]], mask: Optional[np.ndarray] = None) -> tuple:
        emb = self.encode(xs, mask)
        return emb, self.fuse(emb)

    def fuse_texts(self, texts: Mapping[int, str]) -> np.ndarray:
        """One event given as ``{modality index: text}``: featurise, encode, fuse → ``[E]``."""
        xs: list = [None] * NUM_MODALITIES
        for m, text in texts.items():
            xs[m] = fingerprint(*text_graph_arrays(text))[None, :]
        return self.fuse(self.encode(xs))[0]
