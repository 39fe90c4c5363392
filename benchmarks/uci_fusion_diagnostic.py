"""Where the fused embedding loses to the raw views: the fusion network's
output beside read-outs of the same model's view embeddings that involve no
training at all.

Usage:
    python benchmarks/uci_fusion_diagnostic.py [--splits 0 1] [--seeds 0 1 2]

For each split of UCI Multiple Features (stratified 80/20, as
``uci_multifeature.py``) and each training seed, the package's recipe
(``uci.fit_views``) is trained once, and 5-NN and linear-probe accuracy on
the 400 held-out digits are measured (``metrics.knn_accuracy``,
``metrics.linear_probe_accuracy``) for:

- ``fused``: the fusion network's output (what ``uci_multifeature.py`` scores);
- ``views side by side``: the six unit-norm view embeddings concatenated
  (cosine on it is the mean of the six per-view cosines);
- ``random projection``: that concatenation times a Gaussian matrix drawn
  from the seed, ``[6·E, E]``, then L2-normalised: an untrained linear fusion
  of the fused embedding's width;
- ``hidden features side by side``: each view's encoder hidden features
  (``LearnableMultiModal.hidden_features``: the layer before the aligned
  space), each view's rows L2-normalised, concatenated;
- ``raw``: the six standardised raw views side by side (the target's anchor);
- per view: the view's embedding beside its standardised raw view.

Mean ± std over the seeds. The gap between ``fused`` and ``random
projection`` is what the fusion network's training costs; the gap between
each view's embedding and its raw view is what the views' alignment costs
(docs/objectives.md, "The fusion network against a random projection").
"""

from __future__ import annotations

import argparse
from typing import Callable, Dict, List, Mapping, Tuple

import numpy as np
from sklearn.preprocessing import normalize

from grapheme_multimodal import uci
from grapheme_multimodal.evaluation import unit_side_by_side
from grapheme_multimodal.datasets import load_multiple_features, standardize, train_test_split
from grapheme_multimodal.metrics import knn_accuracy, linear_probe_accuracy

Pair = Tuple[np.ndarray, np.ndarray]


def _side_by_side(views: Mapping[str, np.ndarray], names: List[str]) -> np.ndarray:
    return np.concatenate([views[v] for v in names], axis=1)


def read_outs(model, train, test, seed: int) -> Dict[str, Pair]:
    """Train and held-out representations of one trained model, by name."""
    names = list(train.views)
    emb_train, emb_test = model.embed_views(train.views), model.embed_views(test.views)
    both = _side_by_side(emb_train, names), _side_by_side(emb_test, names)
    fused = model.embed_fused(train.views), model.embed_fused(test.views)
    projection = np.random.default_rng(seed).standard_normal((both[0].shape[1], fused[1].shape[1]))
    raw_train, raw_test = standardize(train.views, test.views)
    hidden = [model.hidden_features(views) for views in (train.views, test.views)]
    out = {
        "fused": fused,
        "views side by side": both,
        "random projection": (normalize(both[0] @ projection), normalize(both[1] @ projection)),
        "hidden features side by side": tuple(unit_side_by_side(h, names) for h in hidden),
        "raw (standardised)": (_side_by_side(raw_train, names), _side_by_side(raw_test, names)),
    }
    for v in names:
        out[f"view {v}"] = (emb_train[v], emb_test[v])
        out[f"raw {v}"] = (raw_train[v], raw_test[v])
    return out


def scores(pair: Pair, train, test) -> Tuple[float, float]:
    """(5-NN, linear probe) accuracy on the held-out rows."""
    (a, b), (ya, yb) = pair, (train.labels, test.labels)
    return knn_accuracy(a, ya, b, yb, k=5), linear_probe_accuracy(a, ya, b, yb)


def run_split(split: int, seeds: List[int], log: Callable[[str], None] = print) -> Dict[str, np.ndarray]:
    """``{read-out: [seeds, 2]}`` (5-NN, probe) for one split, printed as a table."""
    train, test = train_test_split(load_multiple_features(), test_size=0.2, seed=split)
    table: Dict[str, List[Tuple[float, float]]] = {}
    for seed in seeds:
        model = uci.fit_views(train.views, seed)
        for name, pair in read_outs(model, train, test, seed).items():
            table.setdefault(name, []).append(scores(pair, train, test))
    log(f"\n== split random_state={split}, seeds {seeds}: held-out 5-NN and linear probe, mean ± std")
    log(f"{'read-out':<30}{'5-NN':>16}{'probe':>16}")
    result = {name: np.array(rows) for name, rows in table.items()}
    for name, rows in result.items():
        cells = "".join(f"{rows[:, i].mean():>9.4f} ± {rows[:, i].std():.3f}" for i in range(2))
        log(f"{name:<30}{cells}")
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args(argv)
    for split in args.splits:
        run_split(split, args.seeds)


if __name__ == "__main__":
    main()
