"""A probe, not a feature: would the fused embedding reach the raw views'
5-NN if it also carried a random sketch of the encoders' hidden features?

Usage:
    python benchmarks/uci_hidden_sketch_probe.py [--splits 0 1] [--seeds 0 1 2] [--json PATH]

The recipe's fused embedding keeps what the views share (its objectives
align them), while the encoders' hidden features side by side keep what each
view says on its own and reach the raw views' 5-NN (docs/objectives.md,
"Read-outs before the aligned space"). A fusion network trained to read the
hidden features ends where its objective puts it ("A fusion network that
reads the hidden layers"), so this probe adds an *untrained* path: each
present view's hidden features, L2-normalised, times a Gaussian matrix
``[width, E]`` drawn from the seed (a Johnson–Lindenstrauss sketch), summed
over the present views and L2-normalised, then

    ``fused + α · sketch``, L2-normalised  (α = 0.5, 1; α = 0 is the fused embedding).

Everything is read out of a model trained by the recipe (``uci.fit_views``);
nothing is retrained, so this measures the read-out, not a model trained
with the sketch inside its fused embedding. For each split of UCI Multiple
Features (stratified 80/20, as ``uci_multifeature.py``) and training seed,
on the 400 held-out digits:

- all six views: 5-NN and linear-probe accuracy (``metrics``), beside the
  standardised raw views side by side (the target's anchor);
- two views of six (15 pairs): 5-NN with only those two views embedded, and
  how many pairs reach 5-NN on the two raw views;
- partial → full: instance recall@1 of a held-out digit's two-view
  embedding among the full six-view embeddings of the 400 (mean of the 15
  pairs): does the read-out still find the same event when views are
  missing, what ``fused_contrastive`` trains for.

Mean ± std over the seeds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Sequence

import numpy as np
from sklearn.preprocessing import normalize

sys.path.insert(0, str(Path(__file__).resolve().parent))
from jsonfile import refuse_unwritable, write_json  # noqa: E402

from grapheme_multimodal import uci  # noqa: E402
from grapheme_multimodal.datasets import load_multiple_features, standardize, train_test_split  # noqa: E402
from grapheme_multimodal.evaluation import unordered_pairs  # noqa: E402
from grapheme_multimodal.metrics import knn_accuracy, linear_probe_accuracy  # noqa: E402

#: The sketch's weights α in ``fused + α · sketch`` (0: the fused embedding).
ALPHAS = (0.0, 0.5, 1.0)


class SketchReadOut:
    """``fused + α · sketch`` of a trained model (a ``ModelEmbedder``)."""

    def __init__(self, model, widths: Mapping[str, int], embed_dim: int, seed: int) -> None:
        self.model = model
        rng = np.random.default_rng(seed)
        self.projections = {v: rng.standard_normal((width, embed_dim)) for v, width in widths.items()}

    def sketch(self, views: Mapping[str, np.ndarray]) -> np.ndarray:
        hidden = self.model.hidden_features(views)
        return normalize(sum(normalize(hidden[v]) @ self.projections[v] for v in views))

    def read_outs(self, views: Mapping[str, np.ndarray]) -> Dict[float, np.ndarray]:
        fused, sketch = self.model.embed_fused(views), self.sketch(views)
        return {alpha: normalize(fused + alpha * sketch) for alpha in ALPHAS}


def _raw(train, test, names: Sequence[str]):
    raw_train, raw_test = standardize({v: train.views[v] for v in names}, {v: test.views[v] for v in names})
    return (np.concatenate([raw_train[v] for v in names], axis=1), np.concatenate([raw_test[v] for v in names], axis=1))


def run_seed(train, test, seed: int) -> Dict[str, Dict[float, float]]:
    """Every figure of one trained model, by figure and α."""
    names = list(train.views)
    model = uci.fit_views(train.views, seed)
    widths = {v: h.shape[1] for v, h in model.hidden_features({v: x[:1] for v, x in train.views.items()}).items()}
    readout = SketchReadOut(model, widths, model.embed_fused({v: x[:1] for v, x in train.views.items()}).shape[1], seed)
    knn = lambda a, b: knn_accuracy(a, train.labels, b, test.labels, k=5)  # noqa: E731
    full_train, full_test = readout.read_outs(train.views), readout.read_outs(test.views)
    out: Dict[str, Dict[float, float]] = {
        "5-NN": {a: knn(full_train[a], full_test[a]) for a in ALPHAS},
        "probe": {a: linear_probe_accuracy(full_train[a], train.labels, full_test[a], test.labels) for a in ALPHAS},
        "two-view pairs >= raw": {a: 0.0 for a in ALPHAS},
        "two-view 5-NN (mean)": {a: 0.0 for a in ALPHAS},
        "partial->full R@1": {a: 0.0 for a in ALPHAS},
    }
    raw_train, raw_test = _raw(train, test, names)
    out["raw 5-NN"] = {a: knn(raw_train, raw_test) for a in ALPHAS}
    out["raw probe"] = {a: linear_probe_accuracy(raw_train, train.labels, raw_test, test.labels) for a in ALPHAS}
    pairs = unordered_pairs(names)
    for a_view, b_view in pairs:
        pick = lambda split: {a_view: split.views[a_view], b_view: split.views[b_view]}  # noqa: E731
        part_train, part_test = readout.read_outs(pick(train)), readout.read_outs(pick(test))
        raw_pair = knn(*_raw(train, test, [a_view, b_view]))
        for a in ALPHAS:
            accuracy = knn(part_train[a], part_test[a])
            out["two-view pairs >= raw"][a] += accuracy >= raw_pair
            out["two-view 5-NN (mean)"][a] += accuracy / len(pairs)
            similarity = part_test[a] @ full_test[a].T
            out["partial->full R@1"][a] += float(np.mean(similarity.argmax(1) == np.arange(len(similarity)))) / len(pairs)
    return out


def run_split(split: int, seeds: List[int], log: Callable[[str], None] = print) -> Dict[str, Dict[str, List[float]]]:
    """``{figure: {α: [one value per seed]}}`` for one split, printed as a table."""
    train, test = train_test_split(load_multiple_features(), test_size=0.2, seed=split)
    result: Dict[str, Dict[str, List[float]]] = {}
    for seed in seeds:
        for figure, by_alpha in run_seed(train, test, seed).items():
            for a, value in by_alpha.items():
                result.setdefault(figure, {}).setdefault(str(a), []).append(float(value))
    log(f"\n== split random_state={split}, seeds {seeds}: fused + α · sketch of the hidden features, mean ± std")
    log(f"{'figure':<24}" + "".join(f"{'α = ' + str(a):>18}" for a in ALPHAS))
    for figure, by_alpha in result.items():
        log(f"{figure:<24}" + "".join(f"{np.mean(v):>10.4f} ± {np.std(v):.3f}" for v in by_alpha.values()))
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)
    refuse_unwritable(parser, args.json)  # before the run, not a traceback after it
    results = {str(split): run_split(split, args.seeds) for split in args.splits}
    if args.json:
        write_json(args.json, {"seeds": args.seeds, "alphas": list(ALPHAS), "splits": results})


if __name__ == "__main__":
    main()
