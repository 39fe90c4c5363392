"""Learning quality on real multi-view data, beside the anchors a researcher
compares with, computed in the same run.

Usage:
    python benchmarks/uci_multifeature.py [--splits 0 1] [--seeds 0 1 2]
        [--nutrimouse-seeds 0 1 2] [--no-nutrimouse] [--set KEY=VALUE ...] [--members K] [--json PATH]

UCI Multiple Features (2,000 digits, six feature sets = six views): for each
stratified 80/20 split (``random_state`` from ``--splits``), the model is
trained without labels by the package's recipe (:data:`RECIPE`) once per
training seed, and measured on the 400 held-out digits by
:func:`grapheme_multimodal.evaluation.evaluate_model`: class precision@1 and
instance recall@1 for all 30 ordered view pairs (cosine, the gallery includes
the query's own event), 5-NN and linear-probe accuracy on the fused
embedding, 5-NN on the fused embedding of each of the 15 pairs of views
alone, and the binder's ROC-AUC. Anchors
(:func:`grapheme_multimodal.evaluation.compute_anchors`): exact CCA fitted
per view pair (10 components, float64), MCCA and GCCA from cca-zoo (6
components, one space for all views; left out when cca-zoo is not
installed), 5-NN and a linear probe on the standardised raw views (all six
side by side, or the two present). Ours: mean ± std over the training seeds.
``--set encoder_skip=true`` (any :class:`grapheme_multimodal.uci.TrainingSettings`
field, the value read as JSON) measures the recipe with that change;
``--members 3`` an ensemble of three recipe models per training seed
(:func:`grapheme_multimodal.uci.fit_ensemble`).

Nutrimouse (40 mice, gene and lipid views): gene → lipid class precision@1
with genotype and with diet as the class, 10 repeats of stratified 5-fold
CV (:func:`grapheme_multimodal.evaluation.nutrimouse_cv`), beside
scikit-learn's CCA(2) and PLSCanonical(2) and exact CCA(2).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import scipy
import sklearn

import grapheme_multimodal as gm
from grapheme_multimodal import evaluation, uci
from grapheme_multimodal.datasets import load_multiple_features, load_nutrimouse, train_test_split
from grapheme_multimodal.evaluation._multiview import reaches
from jsonfile import cpu_description, refuse_unwritable, write_json

#: How our model is trained: the package's public recipe. A new recipe is
#: plugged in here, and only here: ``RECIPE(train_views, seed) -> ViewEmbedder``.
RECIPE: evaluation.Recipe = uci.fit_views

METRICS = {"class_precision_at_1": "P@1", "instance_recall_at_1": "R@1"}


def recipe_with(overrides: Dict[str, Any], members: int = 1) -> evaluation.Recipe:
    """The recipe with some :class:`~grapheme_multimodal.uci.TrainingSettings`
    fields changed (``--set``), as an ensemble of ``members`` models
    (``--members``, :func:`~grapheme_multimodal.uci.fit_ensemble`) when
    more than one; the recipe itself when neither."""
    if not overrides and members == 1:
        return uci.fit_views
    fields = {f.name for f in dataclasses.fields(uci.TrainingSettings)} - {"seed"}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise SystemExit(f"--set: unknown TrainingSettings fields {unknown}; expected some of {sorted(fields)}")
    if members < 1:
        raise SystemExit(f"--members: expected a positive number of models, got {members}")

    trained = []

    def fit(views: Dict[str, np.ndarray], seed: int) -> evaluation.ViewEmbedder:
        settings = uci.TrainingSettings(seed=seed, **overrides)
        try:
            if members == 1:
                model = uci.fit_views(views, seed, settings=settings)
            else:
                model = uci.fit_ensemble(views, seed, members=members, settings=settings, n_jobs=members)  # the same bits, sooner
        except (gm.GraphemeError, TypeError) as err:
            if trained or not overrides:
                raise
            # the first training refuses a value of --set (its checks run before any epoch)
            raise SettingsError(f"--set: {err}") from err
        trained.append(seed)
        return model

    changes = ", ".join(f"{k}={v!r}" for k, v in overrides.items())
    name = "fit_views" if members == 1 else f"fit_ensemble of {members}"
    fit.__qualname__ = name + (" with " + changes if changes else "")
    return fit


def parse_settings(pairs: List[str]) -> Dict[str, Any]:
    """``["KEY=VALUE", ...]`` → ``{KEY: VALUE}``, each value read as JSON
    (``true``, ``0.5``, ``[256]``), else taken as a string; a KEY given
    twice is refused (``SystemExit``)."""
    out: Dict[str, Any] = {}
    given: Dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set: expected KEY=VALUE, got {pair!r}")
        if key in given:  # the later value replaced the earlier without a word
            raise SystemExit(f"--set: {key} given more than once ({given[key]!r} and {pair!r}); expected each field once")
        given[key] = pair
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


class SettingsError(ValueError):
    """A ``--set`` value the recipe refuses (raised by its first training)."""


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuses, before anything trains, the flags that would otherwise fail
    minutes into a run (a traceback, the results lost) or give figures that
    are not what they claim: each as ``parser.error`` (one line, exit 2)."""
    for flag, values, end in (("--splits", args.splits, 2**32), ("--seeds", args.seeds, 2**64),
                              ("--nutrimouse-seeds", getattr(args, "nutrimouse_seeds", None), 2**64)):
        if values is None:
            continue
        bad = [v for v in values if not 0 <= v < end]
        if bad:
            parser.error(f"{flag}: expected ints in [0, 2**{end.bit_length() - 1}), got {bad}")
        repeated = sorted({v for v in values if values.count(v) > 1})
        if repeated:  # a seed twice is one run counted twice in the mean ± std; a split twice, a file uci_targets refuses
            parser.error(f"{flag}: {repeated} given more than once; expected each once")
    if args.members < 1:
        parser.error(f"--members: expected a positive number of models, got {args.members}")
    try:
        overrides = parse_settings(args.set)
        recipe_with(overrides, args.members)
    except SystemExit as err:
        parser.error(str(err))
    if overrides:  # the values the model's constructor checks, now; the others at the first training
        try:
            settings = uci.TrainingSettings(seed=0, **overrides)
            gm.LearnableMultiModal(input_dims={"visual": 2, "auditory": 2}, **settings.model_options())
        except (gm.GraphemeError, TypeError, ValueError) as err:
            parser.error(f"--set: {err}")
    refuse_unwritable(parser, args.json)


def pm(stats: Dict[str, float]) -> str:
    return f"{stats['mean']:.3f} ± {stats['std']:.3f}"


def run_split(split: int, seeds: List[int], log=print, data: Any = None,
              title: str = "UCI Multiple Features") -> Dict[str, Any]:
    """Trains one model per seed on one split of ``data`` (default: UCI
    Multiple Features; any :class:`~grapheme_multimodal.datasets.MultipleFeatures`)
    and compares with the anchors."""
    data = load_multiple_features() if data is None else data
    train, test = train_test_split(data, test_size=0.2, seed=split)
    start = time.perf_counter()
    anchors = evaluation.compute_anchors(train, test)
    anchor_s = time.perf_counter() - start
    runs, train_s, eval_s = [], [], []
    for seed in seeds:
        start = time.perf_counter()
        model = RECIPE(train.views, seed)
        train_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        runs.append(evaluation.evaluate_model(model, train, test, seed=seed))
        eval_s.append(time.perf_counter() - start)
    summary = evaluation.compare(runs, anchors)
    print_split(split, train, test, seeds, anchors, summary, log, title)
    log(f"time: anchors {anchor_s:.1f} s, training {np.mean(train_s):.1f} s and measuring {np.mean(eval_s):.1f} s "
        "per seed")
    return {
        "split_random_state": split,
        "n_train": train.n_events,
        "n_test": test.n_events,
        "seeds": seeds,
        "runs": [r.to_dict() for r in runs],
        "anchors": anchors.__dict__,
        "summary": summary,
        "seconds": {"anchors": anchor_s, "train": train_s, "evaluate": eval_s},
    }


def print_split(split, train, test, seeds, anchors, summary, log=print, title="UCI Multiple Features") -> None:
    multiview = list(anchors.multiview)
    log(f"\n== {title}, split random_state={split}: {train.n_events} train / {test.n_events} "
        f"held-out events; ours: mean ± std over training seeds {seeds}")
    if not multiview:
        log("(cca-zoo not installed: no MCCA / GCCA columns; pip install 'grapheme-multimodal[bench]')")
    head = "".join(f"{'ours ' + short:>16}{'CCA':>7}" + "".join(f"{m:>7}" for m in multiview) for short in METRICS.values())
    log(f"{'pair':<10}{head}")
    rows = list(summary["retrieval"]) + ["mean"]
    for pair in rows:
        cells = []
        for metric in METRICS:
            if pair == "mean":
                ours = summary["mean_retrieval"][metric]
                cca = summary["anchors"]["cca_mean_retrieval"][metric]
                mv = [summary["anchors"]["multiview_mean_retrieval"][m][metric] for m in multiview]
            else:
                ours = summary["retrieval"][pair][metric]
                cca = anchors.cca[pair][metric]
                mv = [anchors.multiview[m][pair][metric] for m in multiview]
            flag = " " if reaches(ours["mean"], cca - summary["tolerance"]) else "*"  # as compare counts them
            cells.append(f"{pm(ours):>15}{flag}{cca:>7.3f}" + "".join(f"{v:>7.3f}" for v in mv))
        log(f"{pair:<10}" + "".join(cells))
    within = summary["pairs_within_tolerance_of_cca"]
    log(f"(* = more than {summary['tolerance']} below exact CCA) pairs within {summary['tolerance']} of exact CCA "
        f"or above: P@1 {within['class_precision_at_1']} of {summary['n_pairs']}, "
        f"R@1 {within['instance_recall_at_1']} of {summary['n_pairs']}")
    log(f"fused embedding, all {len(train.views)} views: 5-NN {pm(summary['fused_knn'])} (raw concat. {anchors.raw_knn:.3f}), "
        f"linear probe {pm(summary['fused_probe'])} (raw concat. {anchors.raw_probe:.3f})")
    if summary["hidden_knn"] is not None:
        log(f"the views' encoder hidden features side by side (hidden_features, before the aligned space): "
            f"5-NN {pm(summary['hidden_knn'])}, linear probe {pm(summary['hidden_probe'])}")
    log("5-NN on the fused embedding of two views alone (raw: 5-NN on those two standardised views):")
    for pair, stats in summary["two_view_knn"].items():
        raw = anchors.raw_two_view_knn[pair]
        # reaches, as compare counts the pairs: a mean at the raw figure up to rounding is not "below raw"
        log(f"  {pair:<9}{pm(stats):>15}  raw {raw:.3f}  {'' if reaches(stats['mean'], raw) else 'below raw'}")
    log(f"  fused >= raw on {summary['two_view_pairs_at_least_raw']} of {len(summary['two_view_knn'])} pairs of views")
    if summary["binder_auc"] is not None:
        log(f"binder ROC-AUC, same vs other event: {pm(summary['binder_auc'])} (chance 0.5)")


def run_nutrimouse(seeds: List[int], log=print) -> Dict[str, Any]:
    start = time.perf_counter()
    results = evaluation.nutrimouse_cv(RECIPE, load_nutrimouse(), seeds=seeds)
    seconds = time.perf_counter() - start
    log(f"\n== Nutrimouse: gene -> lipid class precision@1 among the 8 held-out mice, 10 x stratified 5-fold CV; "
        f"ours over training seeds {seeds} (± over seeds), anchors ± over repeats")
    log(f"{'':<34}{'genotype':>16}{'diet':>16}")
    summary: Dict[str, Dict[str, Dict[str, float]]] = {}
    for method, by_target in results.items():
        cells = []
        for target, values in by_target.items():
            spread = values.mean(axis=1) if values.ndim == 2 else values  # ours: per seed
            stats = {"mean": float(values.mean()), "std": float(spread.std())}
            summary.setdefault(method, {})[target] = stats
            cells.append(f"{pm(stats):>16}")
        log(f"{method:<34}" + "".join(cells))
    log(f"time: {seconds:.1f} s")
    return {
        "per_repeat": {m: {t: v.tolist() for t, v in r.items()} for m, r in results.items()},
        "summary": summary,
        "seconds": seconds,
    }


def main(argv: "list[str] | None" = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", type=int, nargs="+", default=[0, 1], help="split random_states (default 0 1)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (default 0 1 2)")
    parser.add_argument("--nutrimouse-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--no-nutrimouse", action="store_true", help="skip the Nutrimouse protocol")
    # extend: with argparse's store, a second --set replaced the first's changes without a word
    parser.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="train with these TrainingSettings fields changed, e.g. encoder_skip=true")
    parser.add_argument("--members", type=int, default=1, metavar="K",
                        help="measure an ensemble of K recipe models per seed (uci.fit_ensemble; default 1: one model)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results here")
    args = parser.parse_args(argv)
    check_args(parser, args)
    if args.set or args.members != 1:
        global RECIPE
        RECIPE = recipe_with(parse_settings(args.set), args.members)

    start = time.perf_counter()
    defaults = " with its defaults" if not args.set and args.members == 1 else ""
    print(f"grapheme-multimodal {gm.__version__}; recipe {RECIPE.__module__}.{RECIPE.__qualname__}{defaults}; cca-zoo {'installed' if evaluation.cca_zoo_available() else 'not installed'}")
    try:
        splits = [run_split(split, args.seeds) for split in args.splits]
    except SettingsError as err:
        parser.error(str(err))
    nutrimouse = None if args.no_nutrimouse else run_nutrimouse(args.nutrimouse_seeds)
    seconds = time.perf_counter() - start
    print(f"\ntotal time {seconds:.1f} s")
    if args.json is not None:
        write_results(args.json, __doc__, seconds, uci_multiple_features=splits, nutrimouse=nutrimouse)
    return 0


def write_results(path: Path, doc: str, seconds: float, **results: Any) -> None:
    """``results`` as JSON at ``path``, with the protocol (``doc`` after its
    title and usage), the recipe, the run's time and the versions."""
    write_json(path, {
        "protocol": doc.split("\n\n", 2)[2],
        "recipe": f"{RECIPE.__module__}.{RECIPE.__qualname__}",
        **results,
        "seconds": seconds,
        "versions": {"python": platform.python_version(), "numpy": np.__version__, "grapheme-multimodal": gm.__version__,
                     # the iterative scikit-learn CCA anchor depends on these and on the CPU's BLAS kernels
                     "scikit-learn": sklearn.__version__, "scipy": scipy.__version__, "cpu": cpu_description()},
    })
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
