"""What the fusion network's input and objective do to the fused embedding,
probed in PyTorch on the recipe's frozen encoders.

Usage (needs torch, a benchmark-only dependency):
    python benchmarks/uci_fusion_probe.py [--splits 0 1 2] [--seeds 0 1] [--json PATH]
        [--variants refit hidden-input soft hidden-neighbours reconstruct hidden-reconstruct head reconstruct-head
         hidden-reconstruct-head]
        [--epochs 100] [--reconstruction-weight 1]

For each split of UCI Multiple Features (stratified 80/20, as
``uci_multifeature.py``) and each training seed, the package's recipe
(``uci.fit_views``) is trained once and then frozen. A fresh fusion network
of the recipe's shape (three LeakyReLU layers ``[6·d → 128 → 128 → 128]``,
plus 10 × the mean of the present view embeddings, L2-normalised: the
recipe's ``fusion_residual=10``) is trained alone, in PyTorch, with the
recipe's ``fused_contrastive`` (two random view subsets of each row, each
view kept with probability ½; the row's 10 nearest rows of the batch by the
standardised inputs as positives; learned temperature from 0.07; Adam 2e-3,
batches of 512, ``--epochs`` epochs). The variants change one thing:

- ``refit``: as above, reading the frozen view embeddings (what the package
  trains jointly, refitted on the final encoders without their dropout);
- ``hidden-input``: the network reads each view's unit-norm encoder hidden
  features (``LearnableMultiModal.hidden_features``, 256 per view) instead
  of the aligned view embeddings (the residual still adds their mean);
- ``soft``: soft positives, ``exp(−D / D₁₀)`` over the 30 nearest rows
  (``D₁₀``: the distance to the 10th), instead of 10 equal ones;
- ``hidden-neighbours``: positives by the hidden features' mean cosine
  instead of the inputs' distance;
- ``reconstruct``: as ``refit``, plus a linear decoder per view (``128 →
  d_v``) that predicts every view's standardised input from each of the two
  fused views, its mean squared error (mean over the views) weighted by
  ``--reconstruction-weight`` (a multimodal autoencoder's term: the fused
  embedding keeps what each view says, not only what the views share);
- ``hidden-reconstruct``: both ``hidden-input`` and ``reconstruct``;
- ``head``, ``reconstruct-head``, ``hidden-reconstruct-head``: as ``refit``,
  ``reconstruct`` and ``hidden-reconstruct``, with fused_contrastive scoring
  a projection head's output (``128 → 128 → 128``, LeakyReLU, L2-normalised)
  of each fused view, the fused embedding read before it (SimCLR's head,
  Chen et al., 2020).

Scored on the 400 held-out digits: 5-NN and linear-probe accuracy of the
full events' fused embeddings, and the two-view pairs (of 15) whose fused
5-NN is at least the 5-NN on those two standardised raw views — beside the
package's own fused embedding (``package``) and the raw views. Mean over
the seeds per split. docs/objectives.md, "Read-outs before the aligned
space", has the figures.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from grapheme_multimodal import uci
from grapheme_multimodal.datasets import load_multiple_features, standardize, train_test_split
from grapheme_multimodal.metrics import knn_accuracy, linear_probe_accuracy

sys.path.insert(0, str(Path(__file__).resolve().parent))
from jsonfile import refuse_unwritable, write_json  # noqa: E402

try:
    import torch
except ImportError:  # pragma: no cover - the message is the behaviour
    sys.exit("uci_fusion_probe.py needs PyTorch (pip install torch): it trains the probe's fusion networks")

VARIANTS = {
    "refit": dict(),
    "hidden-input": dict(read_hidden=True),
    "soft": dict(soft=True),
    "hidden-neighbours": dict(neighbours_by_hidden=True),
    "reconstruct": dict(reconstruct=True),
    "hidden-reconstruct": dict(read_hidden=True, reconstruct=True),
    "head": dict(head=True),
    "reconstruct-head": dict(reconstruct=True, head=True),
    "hidden-reconstruct-head": dict(read_hidden=True, reconstruct=True, head=True),
}
#: The variants run by default: those of the first probe (docs/objectives.md,
#: "A fusion network that reads the hidden layers"); the reconstruction pair
#: came later ("A reconstruction term for the fused embedding").
FIRST_VARIANTS = ("refit", "hidden-input", "soft", "hidden-neighbours")
NEIGHBOURS = 10
RESIDUAL = 10.0

#: (train, test) arrays of one view.
Pair = Tuple[np.ndarray, np.ndarray]


def frozen_views(model, train, test) -> Dict[str, Dict[str, Pair]]:
    """Per view: the aligned embedding, the unit-norm hidden features and the
    input as the model standardises it, for the training and held-out rows."""
    out: Dict[str, Dict[str, Pair]] = {"embedding": {}, "hidden": {}, "input": {}}
    embedded = [model.embed_views(v) for v in (train.views, test.views)]
    hidden = [model.hidden_features(v) for v in (train.views, test.views)]
    for v in train.views:
        out["embedding"][v] = (embedded[0][v], embedded[1][v])
        out["hidden"][v] = tuple(h[v] / np.linalg.norm(h[v], axis=1, keepdims=True) for h in hidden)
        mean, std = model.model.normalization(model.modalities[v])
        out["input"][v] = tuple(((x[v] - mean) / std).astype(np.float32) for x in (train.views, test.views))
    return out


def _positives(distance: "torch.Tensor", soft: bool) -> "torch.Tensor":
    """Row-normalised targets: the row itself and its nearest rows."""
    n = len(distance)
    d = distance.clone()
    d.fill_diagonal_(float("inf"))
    rows = torch.arange(n)[:, None]
    t = torch.zeros(n, n)
    if soft:
        near, idx = d.topk(min(3 * NEIGHBOURS, n - 1), largest=False)
        scale = near[:, NEIGHBOURS - 1:NEIGHBOURS].clamp_min(1e-6)
        t[rows, idx] = torch.exp(-near / scale)
    else:
        t[rows, d.topk(min(NEIGHBOURS, n - 1), largest=False).indices] = 1.0
    t.fill_diagonal_(1.0)
    return t / t.sum(1, keepdim=True)


def train_fusion(frozen: Dict[str, Dict[str, Pair]], seed: int, epochs: int, read_hidden: bool = False,
                 soft: bool = False, neighbours_by_hidden: bool = False,
                 reconstruct: bool = False, reconstruction_weight: float = 1.0, head: bool = False) -> Callable[[str, Sequence[int]], np.ndarray]:
    """Trains one probe fusion network; returns ``fuse(split, views) → [N, 128]``
    (``split``: ``"train"`` or ``"test"``; ``views``: indices of the views present)."""
    names = list(frozen["embedding"])
    side = {"train": 0, "test": 1}

    def stack(kind: str, split: str) -> "torch.Tensor":
        return torch.tensor(np.stack([frozen[kind][v][side[split]] for v in names], 1))

    emb, inputs = stack("embedding", "train"), stack("hidden" if read_hidden else "embedding", "train")
    by_input = [torch.tensor(frozen["input"][v][0]) for v in names]
    by_hidden = stack("hidden", "train")
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    n_views, width = inputs.shape[1], inputs.shape[2]
    leaky = lambda: torch.nn.LeakyReLU(0.01)  # noqa: E731
    net = torch.nn.Sequential(torch.nn.Linear(n_views * width, 128), leaky(), torch.nn.Linear(128, 128), leaky(),
                              torch.nn.Linear(128, 128), leaky())
    log_tau = torch.nn.Parameter(torch.tensor(float(np.log(0.07))))
    decoders = torch.nn.ModuleList(torch.nn.Linear(128, z.shape[1]) for z in by_input)
    # SimCLR's projection head (Chen et al., 2020): fused_contrastive scores g(fused), the fused embedding is read
    # before g, so that g, not the fused embedding, takes the shape the objective asks for
    projection = torch.nn.Sequential(torch.nn.Linear(128, 128), leaky(), torch.nn.Linear(128, 128))
    adam = torch.optim.Adam([*net.parameters(), log_tau, *decoders.parameters(), *projection.parameters()], lr=2e-3)

    def scored(f: "torch.Tensor") -> "torch.Tensor":
        return torch.nn.functional.normalize(projection(f), dim=1) if head else f

    def fuse(e: "torch.Tensor", x: "torch.Tensor", keep: "torch.Tensor") -> "torch.Tensor":
        out = net((x * keep[..., None]).reshape(len(x), -1))
        out = out + RESIDUAL * (e * keep[..., None]).sum(1) / keep.sum(1, keepdim=True)
        return torch.nn.functional.normalize(out, dim=1)

    def subset(n: int) -> "torch.Tensor":
        keep = (torch.rand(n, n_views, generator=generator) < 0.5).float()
        empty = keep.sum(1) == 0
        keep[empty, torch.randint(0, n_views, (n,), generator=generator)[empty]] = 1.0
        return keep

    for _ in range(epochs):
        order = torch.randperm(len(emb), generator=generator)
        for start in range(0, len(emb), 512):
            rows = order[start:start + 512]
            if len(rows) < 2:
                continue
            e, x = emb[rows], inputs[rows]
            with torch.no_grad():
                if neighbours_by_hidden:
                    h = by_hidden[rows]
                    distance = 1 - torch.einsum("amd,bmd->ab", h, h) / n_views
                else:
                    distance = sum(torch.cdist(z[rows], z[rows]) ** 2 / z.shape[1] for z in by_input) / n_views
                target = _positives(distance, soft)
            first, second = fuse(e, x, subset(len(rows))), fuse(e, x, subset(len(rows)))
            logits = scored(first) @ scored(second).T / log_tau.exp()
            loss = -0.5 * ((target * logits.log_softmax(1)).sum(1).mean() + (target * logits.log_softmax(0).T).sum(1).mean())
            if reconstruct:
                # every view's standardised input from each subset's fused embedding
                # (a multimodal autoencoder's term: the fused embedding keeps what
                # each view says, not only what the views share)
                loss = loss + reconstruction_weight * sum(
                    ((dec(f) - z[rows]) ** 2).mean() for f in (first, second) for dec, z in zip(decoders, by_input)
                ) / (2 * n_views)
            adam.zero_grad()
            loss.backward()
            adam.step()

    def apply(split: str, present: Sequence[int]) -> np.ndarray:
        with torch.no_grad():
            e, x = stack("embedding", split), stack("hidden" if read_hidden else "embedding", split)
            keep = torch.zeros(len(e), n_views)
            keep[:, list(present)] = 1.0
            return fuse(e, x, keep).numpy()

    return apply


def score(fuse: Callable[[str, Sequence[int]], np.ndarray], train, test, raw_two_view: Dict[Tuple[int, int], float]) -> Tuple[float, float, int]:
    """5-NN and probe on the full events, and the two-view pairs at or above the raw views."""
    every = range(len(train.views))
    full = fuse("train", every), fuse("test", every)
    pairs = sum(
        knn_accuracy(fuse("train", p), train.labels, fuse("test", p), test.labels) >= raw - 1e-12
        for p, raw in raw_two_view.items()
    )
    return (knn_accuracy(full[0], train.labels, full[1], test.labels),
            linear_probe_accuracy(full[0], train.labels, full[1], test.labels), int(pairs))


def run_split(split: int, seeds: Sequence[int], variants: Sequence[str], epochs: int,
              reconstruction_weight: float = 1.0) -> Dict[str, object]:
    """Scores the package and each variant over the seeds; returns the figures
    per seed (``--json``'s entry for the split)."""
    train, test = train_test_split(load_multiple_features(), test_size=0.2, seed=split)
    names = list(train.views)
    raw_train, raw_test = standardize(train.views, test.views)
    raw = knn_accuracy(side_by_side(raw_train, names), train.labels, side_by_side(raw_test, names), test.labels)
    raw_two_view = {
        (a, b): knn_accuracy(side_by_side(raw_train, [names[a], names[b]]), train.labels,
                             side_by_side(raw_test, [names[a], names[b]]), test.labels)
        for a in range(len(names)) for b in range(a + 1, len(names))
    }
    results: Dict[str, List[Tuple[float, float, int]]] = {name: [] for name in ["package", *variants]}
    for seed in seeds:
        model = uci.fit_views(train.views, seed, settings=uci.TrainingSettings(seed=seed))
        frozen = frozen_views(model, train, test)

        def package(split_name: str, present: Sequence[int]) -> np.ndarray:
            views = train.views if split_name == "train" else test.views
            return model.embed_fused({names[i]: views[names[i]] for i in present})

        results["package"].append(score(package, train, test, raw_two_view))
        for name in variants:
            fuse = train_fusion(frozen, seed, epochs, reconstruction_weight=reconstruction_weight, **VARIANTS[name])
            results[name].append(score(fuse, train, test, raw_two_view))
        print(f"split {split} seed {seed}: " + " | ".join(
            f"{k} {v[-1][0]:.4f} / {v[-1][1]:.4f} / {v[-1][2]}" for k, v in results.items()), flush=True)
    print(f"split {split} (mean over seeds {list(seeds)}; raw views 5-NN {raw:.4f}): 5-NN / probe / two-view pairs")
    for k, v in results.items():
        a = np.asarray(v, float)
        print(f"  {k:18s} {a[:, 0].mean():.4f} ± {a[:, 0].std():.4f} / {a[:, 1].mean():.4f} ± {a[:, 1].std():.4f} / "
              f"{a[:, 2].sum():.0f} of {15 * len(a)}")
    figures: Dict[str, object] = {"raw_knn": raw, "raw_two_view_knn": {f"{names[a]}+{names[b]}": acc for (a, b), acc in raw_two_view.items()}}
    for k, v in results.items():
        figures[k] = {"knn": [r[0] for r in v], "probe": [r[1] for r in v], "two_view_pairs": [r[2] for r in v]}
    return figures


def side_by_side(views: Dict[str, np.ndarray], names: List[str]) -> np.ndarray:
    """The named standardised raw views side by side (the anchors' raw read-out)."""
    return np.concatenate([views[v] for v in names], axis=1)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--variants", nargs="+", default=list(FIRST_VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--reconstruction-weight", type=float, default=1.0,
                        help="the reconstruction term's weight in the reconstruct variants")
    parser.add_argument("--json", help="also write the figures (per seed) here")
    args = parser.parse_args(argv)
    refuse_unwritable(parser, args.json)  # before the run, not a traceback after it
    torch.set_num_threads(1)
    results = {str(split): run_split(split, args.seeds, args.variants, args.epochs, args.reconstruction_weight)
               for split in args.splits}
    if args.json:
        write_json(args.json, {"seeds": args.seeds, "epochs": args.epochs, "variants": args.variants,
                               "reconstruction_weight": args.reconstruction_weight, "splits": results})


if __name__ == "__main__":
    main()
