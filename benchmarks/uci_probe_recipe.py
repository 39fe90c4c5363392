"""The probe recipe of issue 13, trained in the package through its config
options, measured by the same harness as ``uci_multifeature.py``.

Usage:
    python benchmarks/uci_probe_recipe.py [--splits 0 1] [--seeds 0 1 2] [--epochs 300]
        [--patience 30] [--embed-dim 128] [--batch-size N] [--json PATH]

Recipe (``LearnableMultiModalConfig`` options; nothing else differs from the
package): per view an encoder with a hidden layer of 256 (LeakyReLU, dropout
0.3 after it, input dropout 0.1) and a 128-wide output, one projection head
shared by all views (128 → 128 → E, LeakyReLU between), L2 norm; only the
``contrastive`` objective (symmetric InfoNCE over the 15 view pairs) with a
learned temperature starting at 0.07; Adam 2e-3; full-batch steps (unless
``--batch-size``) on 90 % of the training split, at most ``--epochs``
epochs, stopping after ``--patience`` epochs without a better mean instance
R@1 over the 30 view pairs on the other 10 % (drawn from the seed; no
labels), whose best weights are kept. The model learns the views'
standardisation from its training rows.

Measured by :func:`grapheme_multimodal.evaluation.evaluate_model` beside
:func:`grapheme_multimodal.evaluation.compute_anchors` (exact pairwise CCA,
raw-view k-NN and probe), printed by ``uci_multifeature.print_split``. The
fused embedding is the fusion network's, which this recipe does not train.
Also printed per seed: the fit's wall and CPU time, the epochs run and the
learned temperature.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Dict, List, Mapping

import numpy as np

import grapheme_multimodal as gm
import uci_multifeature as harness
from grapheme_multimodal import evaluation
from grapheme_multimodal.metrics import cross_view_retrieval
from jsonfile import refuse_unwritable, write_json

#: What the recipe's fits took, one record per call (read by ``main``).
FITS: List[Dict[str, float]] = []


def probe_recipe(views: Mapping[str, np.ndarray], seed: int, *, embed_dim: int = 128, epochs: int = 300,
                 patience: int = 30, batch_size: int = 0) -> evaluation.ModelEmbedder:
    """The probe recipe on raw ``views`` (see the module docstring)."""
    modalities = evaluation.view_modalities(views)
    n = len(next(iter(views.values())))
    order = np.random.default_rng(seed).permutation(n)
    val_rows, fit_rows = np.sort(order[: n // 10]), np.sort(order[n // 10 :])
    pick = lambda rows: {modalities[v]: x[rows] for v, x in views.items()}  # noqa: E731
    fit_inputs, val_inputs = pick(fit_rows), pick(val_rows)
    model = gm.LearnableMultiModal(
        embed_dim=embed_dim, hidden_dim=128, num_heads=4, seed=seed, learning_rate=2e-3,
        input_dims={modalities[v]: x.shape[1] for v, x in views.items()},
        encoder_hidden=(256,), encoder_output_dim=128, shared_head=(128, embed_dim),
        encoder_input_dropout=0.1, encoder_hidden_dropout=0.3, learnable_temperature=True, temperature=0.07,
    )
    slots = [m.index for m in modalities.values()]

    def val_recall(m: gm.LearnableMultiModal) -> float:
        emb = m.encode(val_inputs)
        ids = np.arange(len(val_rows))  # labels: each event its own class, so P@1 is instance R@1
        scores = [cross_view_retrieval(emb[:, q], emb[:, g], ids)["instance_recall_at_1"] for q in slots for g in slots if q != g]
        return float(np.mean(scores))

    wall, cpu = time.perf_counter(), time.process_time()
    history = model.fit(
        fit_inputs, epochs=epochs, batch_size=batch_size or len(fit_rows), objectives={"contrastive": 1.0},
        metrics={"recall": val_recall}, monitor="val_recall", mode="max", early_stopping=patience,
        progress=False, seed=seed,
    )
    FITS.append({
        "seed": seed, "wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu,
        "epochs_run": len(history.epochs), "best_epoch": history.best_epoch,
        "temperature": model.temperatures()["contrastive"], "threads": gm.get_num_threads(),
    })
    f = FITS[-1]
    print(f"  seed {seed}: fit {f['wall_s']:.1f} s wall, {f['cpu_s']:.1f} s CPU on {f['threads']} threads; "
          f"{f['epochs_run']} epochs (best {f['best_epoch']}), temperature {f['temperature']:.3f}", flush=True)
    return evaluation.ModelEmbedder(model, modalities)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--splits", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--patience", type=int, default=30)
    ap.add_argument("--embed-dim", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=0, help="rows per step (default: the whole training slice)")
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args(argv)
    refuse_unwritable(ap, args.json)  # before the run, not a traceback after it
    harness.RECIPE = lambda views, seed: probe_recipe(
        views, seed, embed_dim=args.embed_dim, epochs=args.epochs, patience=args.patience, batch_size=args.batch_size
    )
    print(f"probe recipe, E={args.embed_dim}, batch {args.batch_size or 'full'}, <= {args.epochs} epochs, "
          f"patience {args.patience}; threads {gm.get_num_threads()}", flush=True)
    splits = []
    for split in args.splits:
        start = len(FITS)
        result = harness.run_split(split, args.seeds)
        result["fits"] = FITS[start:]
        splits.append(result)
        for key in ("wall_s", "cpu_s", "epochs_run", "temperature"):
            values = [f[key] for f in result["fits"]]
            print(f"{key}: {np.mean(values):.3f} ± {np.std(values):.3f}")
    if args.json:
        write_json(args.json, {"args": vars(args), "uci_multiple_features": splits})
    return 0


if __name__ == "__main__":
    sys.exit(main())
