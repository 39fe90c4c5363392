"""The recipe on data it was never tuned on: scikit-learn's handwritten
digits cut into views, and its breast-cancer data's three natural views,
beside the same anchors as the UCI benchmark.

Usage:
    python benchmarks/digits_views.py [--layouts halves quadrants breast_cancer]
        [--splits 0 1 2] [--seeds 0 1 2] [--set KEY=VALUE ...] [--members K] [--json PATH]

``sklearn.datasets.load_digits`` (1,797 images of 8 × 8 pixels, 10
classes; bundled with scikit-learn, no download) becomes a multi-view data
set by cutting each image: ``halves`` gives two views (the top and bottom
4 × 8 pixels), ``quadrants`` four (4 × 4 pixels each). Every recipe choice
in docs/objectives.md was made on UCI Multiple Features and Nutrimouse;
this asks whether it carries to views that are parts of one image rather
than feature sets of one digit. Per stratified 80/20 split
(``random_state`` from ``--splits``; 360 held-out images) the model is
trained without labels by the package's recipe once per training seed
and measured exactly as ``uci_multifeature.py`` does (its ``run_split``
and ``print_split``): class precision@1 and instance recall@1 for every
ordered view pair against exact CCA fitted per pair (10 components) and,
when cca-zoo is installed, MCCA / GCCA; 5-NN and a linear probe on the
fused embedding against the standardised raw views side by side; 5-NN
with two views present; the binder's ROC-AUC.

``--layouts breast_cancer`` (not run by default) measures the same on
``sklearn.datasets.load_breast_cancer`` (569 tumours, 2 classes, also
bundled): its 30 features are three views of the same ten measurements of
a tumour's nuclei — their ``mean`` (columns 0–9), standard error (``se``,
10–19) and ``worst`` (largest, 20–29) — scored on 114 held-out tumours.
With two classes, class precision@1 has a chance level of about the
majority share (0.63): the printout and the JSON give it. Exact CCA per
pair has at most 10 components here (each view is 10 columns wide).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Dict

import numpy as np

import grapheme_multimodal as gm
import uci_multifeature as harness
from grapheme_multimodal.datasets import MultipleFeatures

#: Each layout, and the data set it cuts: the JSON groups the layouts by it.
DATASETS = {"halves": "digits", "quadrants": "digits", "breast_cancer": "breast_cancer"}
LAYOUTS = tuple(DATASETS)
DEFAULT_LAYOUTS = ("halves", "quadrants")  # the digits-views.json run, as before breast_cancer was added


def digit_views(layout: str) -> MultipleFeatures:
    """scikit-learn's digits with each 8 × 8 image cut into ``layout``'s
    views (float32 pixel intensities 0–16), and the digit classes."""
    if layout == "breast_cancer":
        return breast_cancer_views()
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images.astype(np.float32)
    n = len(images)
    if layout == "halves":
        parts: Dict[str, np.ndarray] = {"top": images[:, :4], "bottom": images[:, 4:]}
    elif layout == "quadrants":
        parts = {"top_left": images[:, :4, :4], "top_right": images[:, :4, 4:],
                 "bottom_left": images[:, 4:, :4], "bottom_right": images[:, 4:, 4:]}
    else:
        raise ValueError(f"layout: expected one of {LAYOUTS}, got {layout!r}")
    return MultipleFeatures(views={v: p.reshape(n, -1) for v, p in parts.items()},
                            labels=digits.target.astype(np.int64))


def breast_cancer_views() -> MultipleFeatures:
    """scikit-learn's breast-cancer data as three views of ten measurements
    each (as the user gets them: float64, the columns on their own scales —
    the recipe standardises): ``mean`` (columns 0–9), ``se`` (their standard
    error, 10–19) and ``worst`` (20–29); the labels are malignant 0 / benign 1."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    x = np.asarray(data.data, dtype=np.float64)
    names = [str(n) for n in data.feature_names]
    # the layout this rests on, checked rather than assumed: "mean radius", "radius error", "worst radius", ...
    for prefix, start in (("mean ", 0), ("", 10), ("worst ", 20)):
        if not all(names[start + i].startswith(prefix) for i in range(10)):
            raise ValueError(f"load_breast_cancer's columns {start}-{start + 9} are not the {prefix.strip() or 'error'} "
                             f"view: {names[start:start + 10]}")
    return MultipleFeatures(views={"mean": x[:, :10], "se": x[:, 10:20], "worst": x[:, 20:]},
                            labels=data.target.astype(np.int64))


def chance_precision(data: MultipleFeatures) -> float:
    """Class precision@1 of a retrieval that ignores the query: the chance
    that a random held-out event shares the query's class, about the sum of
    the squared class shares (the majority share bounds what always
    answering that class would get)."""
    shares = np.bincount(data.labels) / len(data.labels)
    return float(np.sum(shares ** 2))


def main(argv: "list[str] | None" = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layouts", nargs="+", choices=LAYOUTS, default=list(DEFAULT_LAYOUTS),
                        help="default: halves quadrants (the digits); breast_cancer runs scikit-learn's breast-cancer views")
    parser.add_argument("--splits", type=int, nargs="+", default=[0, 1, 2], help="split random_states (default 0 1 2)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (default 0 1 2)")
    # extend: with argparse's store, a second --set replaced the first's changes without a word
    parser.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="train with these TrainingSettings fields changed, e.g. encoder_skip=true")
    parser.add_argument("--members", type=int, default=1, metavar="K",
                        help="measure an ensemble of K recipe models per seed (uci.fit_ensemble; default 1: one model)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results here")
    args = parser.parse_args(argv)
    harness.check_args(parser, args)
    if args.set or args.members != 1:
        harness.RECIPE = harness.recipe_with(harness.parse_settings(args.set), args.members)

    start = time.perf_counter()
    print(f"grapheme-multimodal {gm.__version__}; recipe {harness.RECIPE.__module__}.{harness.RECIPE.__qualname__}"
          f"{' with its defaults' if not args.set and args.members == 1 else ''}")
    results: Dict[str, Dict[str, object]] = {}
    for layout in args.layouts:
        data = digit_views(layout)
        dataset = DATASETS[layout]
        if dataset == "digits":
            title = f"scikit-learn digits, {layout} ({len(data.views)} views)"
        else:
            shares = np.bincount(data.labels) / len(data.labels)
            title = (f"scikit-learn breast cancer, views {' / '.join(data.views)} ({len(np.unique(data.labels))} classes; "
                     f"class P@1 by chance {chance_precision(data):.3f}, majority share {shares.max():.3f})")
        try:
            splits = [harness.run_split(split, args.seeds, data=data, title=title) for split in args.splits]
        except harness.SettingsError as err:
            parser.error(str(err))
        if dataset == "digits":
            results.setdefault("digits", {})[layout] = splits
        else:
            results[dataset] = {"chance_class_precision_at_1": chance_precision(data),
                                "majority_share": float(np.bincount(data.labels).max() / len(data.labels)),
                                "splits": splits}
    seconds = time.perf_counter() - start
    print(f"\ntotal time {seconds:.1f} s")
    if args.json is not None:
        harness.write_results(args.json, __doc__, seconds, **results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
