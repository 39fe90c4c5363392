"""Why content-aware graph features matter: pairing words with their "sound".

Each event has two modalities of the same word:

- linguistic: the word's text graph (one node per character);
- auditory: a signal with one frame per character, the frame's level set by
  the character (plus jitter), as a sequence graph.

We train the model itself — a bilinear binder (``binder_kind="bilinear"``)
with the binding objective, no labels — on pairs of the two, then ask its
binder, for held-out words, which of all held-out signals belongs to each
word. The auditory modality always takes its graphs through WL features; the
linguistic one through WL (``graph_features``) or through the 18 original
fingerprint features. All words have the same length, so their fingerprints
are identical: the model cannot tell the words apart, and its binder pairs
them at chance. WL features see the characters and their order, and the
trained binder pairs each word with its own signal far above chance.

Measured with the defaults (4,000 training words, 200 held-out, seed 0):
WL top-1 0.47 (chance 0.005), ROC-AUC 0.99; fingerprint top-1 0.005, AUC
0.50; untrained (``--epochs 0``), WL top-1 0.01, AUC 0.53. With the default
objective mix (``--default-mix``) WL reaches top-1 0.31, AUC 0.96: the
contrastive objective fits the training words far better than new ones
(cosine retrieval of a word's signal from its text among 200 words, with
2,000 training words: 0.98 on training words, 0.25 on held-out ones), and
the binder follows.

Run: ``python examples/wl_binding.py [--default-mix]``
"""

from __future__ import annotations

import argparse
import json
from typing import Dict, List, Mapping, Optional, Tuple

import numpy as np

import grapheme_multimodal as gm
from grapheme_multimodal.metrics import roc_auc

ALPHABET = "abcdefg"  # 7 letters: one activation bucket each (bucket width 1/7)
TEXT, SIGNAL = "linguistic", "auditory"
#: What the example trains: the objective that trains the binder.
BINDING_ONLY = {"binding": 1.0}


def make_pairs(n: int, length: int, rng: np.random.Generator) -> Tuple[List[str], List[gm.Graph]]:
    """``n`` random distinct words of ``length`` letters and their signal graphs."""
    if n > len(ALPHABET) ** length:  # else drawn forever: 7 letters make only 7 ** length words
        raise ValueError(f"length: words of {length} letters from {len(ALPHABET)} make {len(ALPHABET) ** length} "
                         f"distinct words; expected at least the {n} asked for")
    words: Dict[str, None] = {}
    while len(words) < n:
        words["".join(rng.choice(list(ALPHABET), size=length))] = None
    texts = list(words)
    signals = []
    for word in texts:
        levels = np.array([(ALPHABET.index(c) + 0.5) / len(ALPHABET) for c in word])
        jitter = rng.uniform(-0.04, 0.04, size=len(word))
        signals.append(gm.Graph.from_sequence(levels + jitter, value_range=(0.0, 1.0)))
    return texts, signals


def train_model(
    text_graphs: List[gm.Graph],
    signal_graphs: List[gm.Graph],
    text_features: gm.GraphFeaturizer,
    signal_features: gm.GraphFeaturizer,
    epochs: int,
    weights: Optional[Mapping[str, float]] = BINDING_ONLY,
    batch_size: int = 128,
    seed: int = 0,
) -> gm.LearnableMultiModal:
    """Our model with a bilinear binder, trained on the (text, signal) pairs
    with ``weights`` (``None``: the default objective mix); each modality
    featurises its graphs as its ``graph_features`` entry says."""
    model = gm.LearnableMultiModal(
        embed_dim=32,
        hidden_dim=64,
        num_heads=2,
        binder_kind="bilinear",
        graph_features={TEXT: text_features, SIGNAL: signal_features},
        seed=seed,
    )
    # Featurise once (the model would do it per batch given the graphs).
    x = {TEXT: text_features(text_graphs), SIGNAL: signal_features(signal_graphs)}
    # The features as they are: WL rows are unit vectors, and every fingerprint
    # column is constant here (equal-length words), so there is nothing to standardise.
    model.fit(x, epochs=epochs, batch_size=batch_size, objectives=weights, lr=0.003, standardize=False,
              progress=False, seed=seed)
    return model


def pair_scores(model: gm.LearnableMultiModal, text_graphs: List[gm.Graph], signal_graphs: List[gm.Graph]) -> np.ndarray:
    """``S[i, j]``: the binder's strength for text ``i`` with signal ``j``."""
    emb = model.encode({TEXT: text_graphs, SIGNAL: signal_graphs})
    a, b = emb[:, gm.Modality.parse(TEXT).index], emb[:, gm.Modality.parse(SIGNAL).index]
    n = len(a)
    return model.bind(np.repeat(a, n, axis=0), np.tile(b, (n, 1))).reshape(n, n)


def pairing_metrics(scores: np.ndarray) -> Dict[str, float]:
    """From ``scores [text, signal]`` (matching pairs on the diagonal): top-1
    accuracy of each text's own signal among all signals, and ROC-AUC of
    matched against mismatched pairs. Ties are broken against the true pair
    (top-1) or count one half (AUC), so indistinguishable inputs cannot look
    better than chance."""
    n = len(scores)
    diag = np.diag(scores)
    top1 = float(np.mean((scores < diag[:, None]).sum(axis=1) == n - 1))
    auc = roc_auc(diag, scores[~np.eye(n, dtype=bool)])
    return {"top1": top1, "auc": auc, "chance_top1": 1.0 / n}


def run(
    n_train: int = 4000,
    n_test: int = 200,
    length: int = 6,
    dim: int = 256,
    iterations: int = 2,
    epochs: int = 40,
    seed: int = 0,
    weights: Optional[Mapping[str, float]] = BINDING_ONLY,
) -> Dict[str, Dict[str, float]]:
    """Pairing quality of the trained binder on held-out words, with the
    text modality on WL and on fingerprint features."""
    rng = np.random.default_rng(seed)
    texts, signals = make_pairs(n_train + n_test, length, rng)
    text_graphs = [gm.Graph.from_text(t) for t in texts]
    wl = gm.GraphFeaturizer("wl", dim=dim, iterations=iterations)
    results = {}
    for name, text_features in {"wl": wl, "fingerprint": gm.GraphFeaturizer("fingerprint")}.items():
        model = train_model(text_graphs[:n_train], signals[:n_train], text_features, wl, epochs, weights, seed=seed)
        results[name] = pairing_metrics(pair_scores(model, text_graphs[n_train:], signals[n_train:]))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-train", type=int, default=4000)
    parser.add_argument("--n-test", type=int, default=200)
    parser.add_argument("--length", type=int, default=6)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--default-mix", action="store_true", help="train with the default objective mix instead")
    args = parser.parse_args()
    # a usage error is one line before anything trains (--length 4 drew words forever, the rest were tracebacks;
    # one held-out word has no other signal to score against)
    for flag, value, least in (("--n-train", args.n_train, 1), ("--n-test", args.n_test, 2), ("--length", args.length, 1),
                               ("--epochs", args.epochs, 0), ("--seed", args.seed, 0)):
        if value < least:
            parser.error(f"{flag}: expected an int >= {least}, got {value}")
    if args.n_train + args.n_test > len(ALPHABET) ** args.length:
        parser.error(f"--length: words of {args.length} letters from {len(ALPHABET)} make {len(ALPHABET) ** args.length} "
                     f"distinct words; expected at least --n-train + --n-test = {args.n_train + args.n_test}")
    try:
        gm.GraphFeaturizer("wl", dim=args.dim, iterations=args.iterations)
    except gm.InvalidValueError as err:
        parser.error(f"--{err}")
    weights = None if args.default_mix else BINDING_ONLY
    results = run(args.n_train, args.n_test, args.length, args.dim, args.iterations, args.epochs, args.seed, weights)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
