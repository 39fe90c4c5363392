"""The recipe on data it was never tuned on: scikit-learn's handwritten
digits cut into views, beside the same anchors as the UCI benchmark.

Usage:
    python benchmarks/digits_views.py [--layouts halves quadrants]
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

LAYOUTS = ("halves", "quadrants")


def digit_views(layout: str) -> MultipleFeatures:
    """scikit-learn's digits with each 8 × 8 image cut into ``layout``'s
    views (float32 pixel intensities 0–16), and the digit classes."""
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


def main(argv: "list[str] | None" = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layouts", nargs="+", choices=LAYOUTS, default=list(LAYOUTS))
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
    results = {}
    for layout in args.layouts:
        data = digit_views(layout)
        title = f"scikit-learn digits, {layout} ({len(data.views)} views)"
        try:
            results[layout] = [harness.run_split(split, args.seeds, data=data, title=title) for split in args.splits]
        except harness.SettingsError as err:
            parser.error(str(err))
    seconds = time.perf_counter() - start
    print(f"\ntotal time {seconds:.1f} s")
    if args.json is not None:
        harness.write_results(args.json, __doc__, seconds, digits=results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
