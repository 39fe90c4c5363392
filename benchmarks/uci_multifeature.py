"""Train on UCI Multiple Features and compare with the SPEC §3 anchors.

Usage:
    python benchmarks/uci_multifeature.py [--seeds 5] [--epochs 40] [--objectives NAMES]
                                          [--fused-neighbors K] [--json PATH]

Protocol: the six views of each digit are six modalities of one event
(fou→visual, fac→auditory, kar→linguistic, pix→tactile, zer→proprioceptive,
mor→abstract); scikit-learn's stratified 80/20 split (random_state=0);
standardisation fitted on the 1,600 training events; the default objective
mix (contrastive + binding + cross_modal + fused_contrastive) with Adam, each
view hidden with probability 0.5 per row and step; no labels are used in
training. Reported on the 400 held-out events (see
:func:`grapheme_multimodal.uci.evaluate` for the exact definitions), as mean ±
standard deviation over ``--seeds`` training seeds, for each binder kind:

* cross-view class precision@1 fou→pix and zer→kar (cosine retrieval among
  the test events, gallery includes the query's own event — the CCA anchors'
  protocol, see ``benchmarks/anchors.py``);
* binder ROC-AUC, same-event pairs against other-event pairs;
* 5-NN accuracy on the fused embedding, every view present (anchor: the six
  raw standardised views concatenated) and only two of the six views of each
  test event present (anchor: the same with the four missing views filled
  with the training mean).

``--objectives contrastive,binding,cross_modal`` trains that mix instead
(each with weight 1), e.g. the mix before fused_contrastive existed.

Runs in about 30 s on 2 cores with the defaults.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

import grapheme_multimodal as gm
from grapheme_multimodal import uci
from grapheme_multimodal.anchors import SPEC_CCA_PRECISION, SPEC_KNN_ACCURACY
from grapheme_multimodal.data import load_multiple_features, train_test_split
from grapheme_multimodal.objectives import OBJECTIVES
from jsonfile import write_json

BINDERS = ("additive", "bilinear")
ROWS = [
    ("fou->pix class P@1", "fou->pix class_precision_at_1", SPEC_CCA_PRECISION[("fou", "pix")], "CCA(10)"),
    ("zer->kar class P@1", "zer->kar class_precision_at_1", SPEC_CCA_PRECISION[("zer", "kar")], "CCA(10)"),
    ("fou->pix instance R@1", "fou->pix instance_recall_at_1", None, "chance 1/400"),
    ("zer->kar instance R@1", "zer->kar instance_recall_at_1", None, "chance 1/400"),
    ("binder ROC-AUC", "binder_auc", None, "chance 0.5"),
    ("5-NN on fused", "fused_knn_5", SPEC_KNN_ACCURACY["concat"], "raw concat"),
    ("5-NN on mean embedding", "mean_embedding_knn_5", SPEC_KNN_ACCURACY["concat"], "raw concat"),
    ("5-NN fused, 2 of 6 views", "fused_knn_5_two_views", None, "raw, mean-fill"),  # anchor measured below
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="training seeds to average over (default 5)")
    parser.add_argument("--epochs", type=int, default=uci.TrainingSettings.epochs)
    parser.add_argument(
        "--objectives", metavar="NAMES", help="comma-separated objectives to train, weight 1 each (default: the default mix)"
    )
    parser.add_argument(
        "--fused-neighbors", type=int, default=uci.TrainingSettings.fused_neighbors, metavar="K",
        help="fused_contrastive's neighbour positives (0 = plain instance InfoNCE)",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results here")
    args = parser.parse_args(argv)
    weights = None
    if args.objectives:
        weights = {name.strip(): 1.0 for name in args.objectives.split(",") if name.strip()}
        unknown = sorted(set(weights) - set(OBJECTIVES))
        if unknown:
            parser.error(f"--objectives: unknown {unknown}; expected some of {OBJECTIVES}")

    start = time.perf_counter()
    train, test = train_test_split(load_multiple_features(), test_size=0.2, seed=0)
    train_inputs, test_inputs = uci.prepare_inputs(train, test)
    results: dict[str, list[dict[str, float]]] = {b: [] for b in BINDERS}
    for binder in BINDERS:
        for seed in range(args.seeds):
            settings = uci.TrainingSettings(
                binder_kind=binder, epochs=args.epochs, weights=weights, fused_neighbors=args.fused_neighbors, seed=seed
            )
            model = uci.train(train_inputs, settings)
            results[binder].append(uci.evaluate(model, train_inputs, train.labels, test_inputs, test.labels, seed=seed))
    seconds = time.perf_counter() - start
    two_views = uci.views_present_mask(test.n_events, list(test_inputs), present=2)
    two_view_anchor = uci.raw_concat_knn(train_inputs, train.labels, test_inputs, test.labels, test_mask=two_views)

    s = uci.TrainingSettings()
    mix = ", ".join(weights) if weights else "default mix"
    print(f"UCI Multiple Features: {train.n_events} train / {test.n_events} test events; "
          f"grapheme-multimodal {gm.__version__}; {mix}; E={s.embed_dim}, H={s.hidden_dim}, heads={s.num_heads}, "
          f"{args.epochs} epochs of batch {s.batch_size}, lr {s.learning_rate}, tau {s.temperature}, "
          f"modality dropout {s.modality_dropout}, fused_neighbors {args.fused_neighbors}; "
          f"mean ± std over {args.seeds} seeds")
    print(f"{'measure':<26}{'anchor':>8}  {'(anchor is)':<15}" + "".join(f"{b:>18}" for b in BINDERS))
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for label, key, anchor, what in ROWS:
        if key == "fused_knn_5_two_views":
            anchor = two_view_anchor
        cells = []
        for b in BINDERS:
            values = np.array([r[key] for r in results[b]])
            summary.setdefault(key, {})[b] = {"mean": float(values.mean()), "std": float(values.std())}
            cells.append(f"{values.mean():.3f} ± {values.std():.3f}")
        anchor_text = f"{anchor:.3f}" if anchor is not None else "-"
        print(f"{label:<26}{anchor_text:>8}  {what:<15}" + "".join(f"{c:>18}" for c in cells))
    print(f"total time {seconds:.1f} s ({2 * args.seeds} trainings)")

    if args.json is not None:
        write_json(args.json, {
            "protocol": __doc__.split("Protocol: ", 1)[1].split("\n\n", 1)[0],
            "settings": {
                **uci.TrainingSettings().__dict__,
                "epochs": args.epochs,
                "seeds": args.seeds,
                "weights": weights,
                "fused_neighbors": args.fused_neighbors,
            },
            "results": results,
            "summary": summary,
            "anchors": {
                "cca_class_precision_at_1": {f"{q}->{g}": v for (q, g), v in SPEC_CCA_PRECISION.items()},
                "knn_accuracy_concat": SPEC_KNN_ACCURACY["concat"],
                "knn_accuracy_concat_two_views_mean_filled": two_view_anchor,
            },
            "seconds": seconds,
            "versions": {"python": platform.python_version(), "numpy": np.__version__, "grapheme-multimodal": gm.__version__},
        })
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
