"""Issue 13's targets on UCI Multiple Features, scored from a results file.

Usage:
    python benchmarks/uci_targets.py RESULTS.json [MORE.json ...] [--seeds 0 1 2] [--baseline BASE.json ...] [--shortfalls]

``RESULTS.json`` is what ``benchmarks/uci_multifeature.py --json`` writes;
several files (e.g. seed 0 in one, seeds 1 and 2 in another) are read as
one, each split's runs side by side.
For each split in it, the eight targets of issue 13 that one split can
meet, each on the mean over the training seeds (``--seeds`` keeps only
those runs; the counts are then recomputed from the runs and the stored
anchors by :func:`grapheme_multimodal.evaluation.compare`, as the benchmark
computes them):

1. mean class precision@1 over the 30 ordered view pairs >= 0.85;
2. class precision@1 within 0.02 of exact CCA (or above) on all 30 pairs;
3. mean instance recall@1 >= 0.40;
4. instance recall@1 within 0.02 of exact CCA on at least 27 pairs;
5. fused 5-NN >= 5-NN on the six raw views side by side (and >= 0.985 on
   split 0);
6. linear probe on the fused embedding >= the raw views' (and >= 0.985 on
   split 0);
7. fused 5-NN of two views alone >= 5-NN on those two raw views, on all 15
   pairs of views;
8. binder ROC-AUC >= 0.97 (missed by a recipe whose model has no binder: the
   benchmark writes its ``binder_auc`` as null).

It prints each split's figures, the targets it misses, and the total
missed; with ``--baseline`` each figure beside the baseline file's on the
same split. docs/objectives.md quotes these totals ("targets missed 21 of
80"); ``tests/test_docs_figures.py`` holds the stored files to them.

``--shortfalls`` also lists, under each split, every comparison with the raw
views that falls short (targets 5, 6 and 7, one line per two-view pair):
by how many held-out rows the mean over the seeds is under the raw views,
and the best and worst seed's — how far a miss is from the seeds' spread.
"""

import argparse
import json
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from grapheme_multimodal import evaluation
from grapheme_multimodal.evaluation._multiview import reaches

#: Issue 13's thresholds.
MIN_MEAN_PRECISION = 0.85
MIN_MEAN_RECALL = 0.40
MIN_RECALL_PAIRS = 27
MIN_SPLIT0_FUSED = 0.985  # split 0's 5-NN and probe, besides the raw views'
MIN_BINDER_AUC = 0.97


@dataclass(frozen=True)
class SplitFigures:
    """One split's figures that the targets read (means over the runs)."""

    split: int
    seeds: List[int]
    precision: float
    precision_pairs: int
    recall: float
    recall_pairs: int
    n_pairs: int
    fused_knn: float
    raw_knn: float
    fused_probe: float
    raw_probe: float
    two_view_pairs: int
    n_two_view: int
    binder_auc: Optional[float]  # None: some run's model has no binder (the benchmark wrote null)


@dataclass(frozen=True)
class Target:
    name: str
    met: bool


def split_figures(split: Dict[str, Any], seeds: Optional[Sequence[int]] = None) -> SplitFigures:
    """The figures of one split of a results file, over the runs of ``seeds``
    (all when None), counted by :func:`~grapheme_multimodal.evaluation.compare`."""
    known = {f.name for f in fields(evaluation.ModelScores)}
    chosen = [i for i, s in enumerate(split["seeds"]) if seeds is None or s in seeds]
    if not chosen:
        raise SystemExit(f"--seeds: split {split['split_random_state']} of {', '.join(split.get('files', ['the results']))} "
                         f"has runs of seeds {split['seeds']}, none of {list(seeds)}")
    runs = [evaluation.ModelScores(**{k: v for k, v in split["runs"][i].items() if k in known}) for i in chosen]
    anchors = evaluation.Anchors(**split["anchors"])
    summary = evaluation.compare(runs, anchors)
    within = summary["pairs_within_tolerance_of_cca"]
    return SplitFigures(
        split=split["split_random_state"],
        seeds=[split["seeds"][i] for i in chosen],
        precision=summary["mean_retrieval"]["class_precision_at_1"]["mean"],
        precision_pairs=within["class_precision_at_1"],
        recall=summary["mean_retrieval"]["instance_recall_at_1"]["mean"],
        recall_pairs=within["instance_recall_at_1"],
        n_pairs=summary["n_pairs"],
        fused_knn=summary["fused_knn"]["mean"],
        raw_knn=anchors.raw_knn,
        fused_probe=summary["fused_probe"]["mean"],
        raw_probe=anchors.raw_probe,
        two_view_pairs=summary["two_view_pairs_at_least_raw"],
        n_two_view=len(summary["two_view_knn"]),
        # None when a run has no binder (a recipe whose model has none): was "'NoneType' object is not subscriptable",
        # the file refused as "not the figures benchmarks/uci_multifeature.py writes", which it is
        binder_auc=None if summary["binder_auc"] is None else summary["binder_auc"]["mean"],
    )


def targets(f: SplitFigures) -> List[Target]:
    """The eight targets of one split, met or not."""
    floor = MIN_SPLIT0_FUSED if f.split == 0 else 0.0
    return [
        Target("mean P@1", f.precision >= MIN_MEAN_PRECISION),
        Target("P@1 pairs", f.precision_pairs == f.n_pairs),
        Target("mean R@1", f.recall >= MIN_MEAN_RECALL),
        Target("R@1 pairs", f.recall_pairs >= MIN_RECALL_PAIRS),
        # reaches: a mean of the runs exactly at the raw views' figure counts, as compare counts the pairs
        Target("fused 5-NN", reaches(f.fused_knn, max(f.raw_knn, floor))),
        Target("probe", reaches(f.fused_probe, max(f.raw_probe, floor))),
        Target("two-view pairs", f.two_view_pairs == f.n_two_view),
        Target("binder AUC", f.binder_auc is not None and f.binder_auc >= MIN_BINDER_AUC),
    ]


def missed(f: SplitFigures) -> List[str]:
    return [t.name for t in targets(f) if not t.met]


def describe(f: SplitFigures) -> str:
    return (f"P@1 {f.precision:.4f} ({f.precision_pairs}/{f.n_pairs})  R@1 {f.recall:.4f} ({f.recall_pairs}/{f.n_pairs})  "
            f"5-NN {f.fused_knn:.4f} (raw {f.raw_knn:.4f})  probe {f.fused_probe:.4f} (raw {f.raw_probe:.4f})  "
            f"2-view {f.two_view_pairs}/{f.n_two_view}  AUC {'- (no binder)' if f.binder_auc is None else format(f.binder_auc, '.4f')}")


@dataclass(frozen=True)
class Shortfall:
    """A figure under the raw views' on one split, in held-out rows (the
    accuracy's difference times the test rows: negative is short)."""

    name: str
    mean: float
    worst: float
    best: float


def shortfalls(split: Dict[str, Any], seeds: Optional[Sequence[int]] = None) -> List[Shortfall]:
    """The fused 5-NN, probe and two-view 5-NN figures of ``split`` whose
    mean over the runs of ``seeds`` is under the raw views' (a split-0 floor
    of 0.985 is not a raw figure and is left to :func:`targets`)."""
    chosen = [i for i, s in enumerate(split["seeds"]) if seeds is None or s in seeds]
    runs, anchors, rows = [split["runs"][i] for i in chosen], split["anchors"], split["n_test"]
    compared = [("fused 5-NN", [r["fused_knn"] for r in runs], anchors["raw_knn"]),
                ("probe", [r["fused_probe"] for r in runs], anchors["raw_probe"])]
    compared += [(pair, [r["two_view_knn"][pair] for r in runs], raw) for pair, raw in anchors["raw_two_view_knn"].items()]
    out = []
    for name, ours, raw in compared:
        gaps = [round((v - raw) * rows) for v in ours]  # accuracies are counts of rows
        if not reaches(sum(ours) / len(ours), raw):  # as targets counts it: a mean at raw up to rounding is no shortfall
            out.append(Shortfall(name, sum(gaps) / len(gaps), min(gaps), max(gaps)))
    return out


def describe_shortfall(s: Shortfall) -> str:
    return f"{s.name} {s.mean:+.1f} rows (seeds {s.worst:+.0f} to {s.best:+.0f})"


def read_splits(path: Path) -> List[Dict[str, Any]]:
    """The UCI splits of one results file, each checked to hold what the
    targets read (a one-line SystemExit naming the file, not a traceback,
    for a missing, truncated, hand-edited or other file)."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError) as err:
        raise SystemExit(f"{path}: cannot read it: {getattr(err, 'strerror', None) or err}") from None
    except json.JSONDecodeError as err:
        raise SystemExit(f"{path}: not JSON (truncated?): {err}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("uci_multiple_features"), list):
        raise SystemExit(f"{path}: expected the JSON of benchmarks/uci_multifeature.py --json "
                         "(an object with a list 'uci_multiple_features'), got another file")
    splits = doc["uci_multiple_features"]
    for i, s in enumerate(splits):
        where = f"{path}: uci_multiple_features[{i}]"
        if not isinstance(s, dict):
            raise SystemExit(f"{where}: expected a split's object, got {type(s).__name__}")
        missing = [k for k in ("split_random_state", "n_test", "seeds", "runs", "anchors") if k not in s]
        if missing:
            raise SystemExit(f"{where}: missing {missing}")
        for key in ("split_random_state", "n_test"):  # a split keys a dict and sorts; n_test counts rows
            if isinstance(s[key], bool) or not isinstance(s[key], int) or (key == "n_test" and s[key] < 1):
                raise SystemExit(f"{where}: {key} is {s[key]!r}; expected {'a positive' if key == 'n_test' else 'an'} int")
        seeds, runs = s["seeds"], s["runs"]
        if not isinstance(seeds, list) or not isinstance(runs, list) or len(seeds) != len(runs) or not seeds:
            raise SystemExit(f"{where}: expected as many runs as seeds (at least one), got seeds {seeds!r} "
                             f"and {len(runs) if isinstance(runs, list) else type(runs).__name__} runs")
        if len(set(map(repr, seeds))) != len(seeds):
            raise SystemExit(f"{where}: seeds {seeds} repeat a seed; each run must be of its own seed")
        if any(x.get("split_random_state") == s["split_random_state"] for x in splits[:i] if isinstance(x, dict)):
            raise SystemExit(f"{path}: split {s['split_random_state']} appears more than once")
    return splits


def merged_splits(paths: Sequence[Path]) -> Dict[int, Dict[str, Any]]:
    """The splits of one or more results files, by split; a split in several
    files has their runs side by side (its anchors are the first file's: the
    same split gives the same anchors)."""
    merged: Dict[int, Dict[str, Any]] = {}
    for path in paths:
        for s in read_splits(path):
            key = s["split_random_state"]
            if key not in merged:
                merged[key] = {**s, "seeds": list(s["seeds"]), "runs": list(s["runs"]), "files": [str(path)]}
                continue
            repeated = sorted(set(merged[key]["seeds"]) & set(s["seeds"]))
            if repeated:
                raise SystemExit(f"{path}: split {key} has runs of seeds {repeated} already read from "
                                 f"{', '.join(merged[key]['files'])}")
            merged[key]["files"].append(str(path))
            merged[key]["seeds"] += s["seeds"]
            merged[key]["runs"] += s["runs"]
    return merged


def load_splits(paths: Sequence[Path], seeds: Optional[Sequence[int]] = None) -> Dict[int, SplitFigures]:
    """Each split's figures, from one or more results files (see :func:`merged_splits`)."""
    out = {}
    for key, s in merged_splits(paths).items():
        try:
            out[key] = split_figures(s, seeds)
            targets(out[key]), describe(out[key])  # a figure that is no number fails here, not mid-print
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as err:  # a hand-edited run or anchor
            raise SystemExit(f"{', '.join(s['files'])}: split {key}: not the figures benchmarks/uci_multifeature.py "
                             f"writes ({type(err).__name__}: {err})") from None
    if not out:  # else "targets missed: 0 of 0", as if every target were met
        raise SystemExit(f"{', '.join(map(str, paths))}: no UCI Multiple Features splits (a Nutrimouse-only run?)")
    return out


def total_missed(paths: Sequence[Path], seeds: Optional[Sequence[int]] = None) -> int:
    """The targets missed over every split of the files."""
    return sum(len(missed(f)) for f in load_splits(paths, seeds).values())


def main(argv: "list[str] | None" = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, nargs="+", help="JSON files of benchmarks/uci_multifeature.py --json")
    parser.add_argument("--seeds", type=int, nargs="+", help="score only these training seeds' runs (default: all)")
    parser.add_argument("--baseline", type=Path, nargs="+", help="other results files, shown beside on the same splits")
    parser.add_argument("--shortfalls", action="store_true",
                        help="list each comparison with the raw views that falls short, in held-out rows, with the seeds' range")
    args = parser.parse_args(argv)
    try:
        ours = load_splits(args.results, args.seeds)
        raw_splits = merged_splits(args.results) if args.shortfalls else {}
        base = load_splits(args.baseline, args.seeds) if args.baseline else {}
    except SystemExit as err:  # a file that is not a results file, or --seeds none of its runs: a usage error
        if isinstance(err.code, str):
            parser.error(err.code)
        raise
    total = base_total = 0
    for split, f in sorted(ours.items()):
        gone = missed(f)
        total += len(gone)
        print(f"split {split} (seeds {f.seeds}): {describe(f)}")
        print(f"  missed {len(gone)}: {', '.join(gone) or '-'}")
        if args.shortfalls:
            try:
                short = shortfalls(raw_splits[split], args.seeds)
            except (KeyError, TypeError, ValueError, AttributeError) as err:
                parser.error(f"{', '.join(raw_splits[split]['files'])}: split {split}: --shortfalls cannot read its "
                             f"runs or anchors ({type(err).__name__}: {err})")
            print(f"  short of the raw views: {'; '.join(map(describe_shortfall, short)) or '-'}")
        if split in base:
            b = base[split]
            base_total += len(missed(b))
            print(f"  baseline: {describe(b)}; missed {len(missed(b))}: {', '.join(missed(b)) or '-'}")
    n = 8 * len(ours)
    line = f"targets missed: {total} of {n}"
    if base:
        line += f" (baseline on the same splits: {base_total} of {8 * len(set(ours) & set(base))})"
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
