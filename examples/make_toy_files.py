"""Writes three aligned toy modality files for trying `grapheme-mm train`:

    images.npy    [N, 64]  float32 "image features"
    sound.csv     [N, 12]  numeric CSV with a header row
    captions.txt  N lines  one caption per event

Every event is a coloured shape; each file sees it through its own noisy
channel, so the modalities of one row belong together.

Run: python examples/make_toy_files.py toy/
"""

import sys
from pathlib import Path

import numpy as np

COLOURS = ["red", "green", "blue", "yellow"]
SHAPES = ["ball", "cube", "ring", "star", "cone"]


def main(out: Path, n: int = 600, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    colour = rng.integers(0, len(COLOURS), n)
    shape = rng.integers(0, len(SHAPES), n)
    size = rng.uniform(0.5, 2.0, n)
    latent = np.column_stack([np.eye(len(COLOURS))[colour], np.eye(len(SHAPES))[shape], size])
    images = latent @ rng.normal(size=(latent.shape[1], 64)) + 0.3 * rng.normal(size=(n, 64))
    sound = latent @ rng.normal(size=(latent.shape[1], 12)) + 0.3 * rng.normal(size=(n, 12))
    np.save(out / "images.npy", images.astype(np.float32))
    np.savetxt(out / "sound.csv", sound, delimiter=",", header=",".join(f"mfcc{i}" for i in range(12)), comments="")
    words = ["small" if s < 1.0 else "big" if s > 1.5 else "medium" for s in size]
    captions = [f"a {w} {COLOURS[c]} {SHAPES[s]}" for w, c, s in zip(words, colour, shape)]
    (out / "captions.txt").write_text("\n".join(captions) + "\n", encoding="utf-8")
    print(f"wrote {n} events to {out}/images.npy, sound.csv, captions.txt")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "toy"))
