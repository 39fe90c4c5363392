"""Writes the golden files of one version of grapheme-multimodal.

Run it with the version to record on the path (its own ``_core`` built):

    PYTHONPATH=/path/to/that/checkout/python python make_golden.py OUT_DIR

It uses only the API of the oldest recorded version (29 November 2026) and
feature-detects what came later (the capacity options, the weight average,
``save_ensemble``), so the same script records every version. Everything is tiny and seeded; the
expected outputs are that version's own, stored beside its files in
``expected.npz``; the files are gzipped (``model.safetensors.gz``, ...).
"""

import gzip
import inspect
import json
import pickle
import shutil
import sys
from pathlib import Path

import numpy as np

import grapheme_multimodal as gm

ROWS = 8
DIMS = {"visual": 4, "auditory": 3, "linguistic": 5}


def views(seed: int = 60) -> dict:
    """Three correlated views of the same latent rows (float32)."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(ROWS, 3))
    return {
        name: (latent @ rng.normal(size=(3, d)) + 0.1 * rng.normal(size=(ROWS, d))).astype(np.float32)
        for name, d in DIMS.items()
    }


def mask() -> np.ndarray:
    """Every row has visual; two rows lack auditory, one lacks linguistic."""
    m = np.zeros((ROWS, 7), dtype=bool)
    m[:, :3] = True
    m[[2, 7], 1] = False
    m[5, 2] = False
    return m


def config(seed: int, capacity: bool) -> "gm.LearnableMultiModalConfig":
    """Tiny; with ``capacity``, a hidden layer, a shared head and learned temperatures."""
    options = dict(encoder_hidden=(3,), encoder_output_dim=3, shared_head=(5, 4), learnable_temperature=True)
    return gm.LearnableMultiModalConfig(
        embed_dim=4, hidden_dim=4, num_heads=2, buffer_size=6, seed=seed, input_dims=dict(DIMS),
        **(supported(options, gm.LearnableMultiModalConfig) if capacity else {}),
    )


def supported(options: dict, api) -> dict:
    """The ``options`` that ``api`` takes in the version running (the first had no capacity options)."""
    names = inspect.signature(api).parameters
    return {k: v for k, v in options.items() if k in names}


def weight_average_decay() -> "float | None":
    """The ``ema_decay`` of every ``fit`` here: 0.5 where the version has it."""
    return 0.5 if "ema_decay" in inspect.signature(gm.training.fit).parameters else None


def fit_options(m: np.ndarray, epochs: int, seed: int, ema_decay: "float | None") -> dict:
    options = dict(mask=m, epochs=epochs, batch_size=4, standardize=True, progress=False, seed=seed)
    if ema_decay is not None:
        options["ema_decay"] = ema_decay
    return options


def resume_options(m: np.ndarray, ema_decay: "float | None") -> dict:
    """One more epoch of the checkpoint's training (``fit`` after a load)."""
    return fit_options(m, epochs=1, seed=0, ema_decay=ema_decay)


def trained_model(seed: int, x: dict, m: np.ndarray, capacity: bool = True) -> "gm.LearnableMultiModal":
    model = gm.LearnableMultiModal(config(seed, capacity))
    model.fit(x, **fit_options(m, epochs=2, seed=seed, ema_decay=weight_average_decay()))
    model.record_batch(x, m, rewards=np.linspace(0, 1, ROWS, dtype=np.float32))
    return model


def outputs(model: "gm.LearnableMultiModal", x: dict, m: np.ndarray, prefix: str) -> dict:
    """The model's forward on (x, m): encode, fuse, bind, attention."""
    emb, fused = model.encode_and_fuse(x, m)
    return {
        prefix + "embeddings": emb,
        prefix + "fused": fused,
        prefix + "fuse": model.fuse(emb, m),
        prefix + "bind": model.bind(emb[:, 0], emb[:, 2]),
        prefix + "pair_strengths": model.pair_strengths(emb, m),
        prefix + "attention_weights": model.attention_weights(fused, emb, m),
        prefix + "attend": model.attend(fused, emb, m),
    }


def graph_event() -> "gm.MultiModalEvent":
    """An event of a text graph in a modality that reads graphs (the 18 fingerprint features)."""
    event = gm.MultiModalEvent(7)
    event.add_component(gm.ModalGraph(gm.Graph.from_text("a cat sat"), gm.Modality.TACTILE, confidence=0.5))
    return event


def buffer_contents(batch: "gm.ExperienceBatch", prefix: str) -> dict:
    out = {prefix + k: getattr(batch, k) for k in ("embeddings", "mask", "fused", "pair_strengths", "rewards", "event_ids")}
    for name, d in DIMS.items():
        out[prefix + "inputs_" + name] = batch.inputs[gm.Modality[name.upper()].index]
    return out


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    x, m = views(), mask()
    expected = {"x_" + k: v for k, v in x.items()}
    expected["mask"] = m

    model = trained_model(0, x, m)
    model.save(out / "model.safetensors")
    expected.update(outputs(model, x, m, "model_"))

    model.experience.save(out / "buffer.safetensors")
    with open(out / "buffer.pkl", "wb") as f:  # before the sample below moves its generator
        pickle.dump(model.experience, f, protocol=4)
    expected.update(buffer_contents(model.experience.batch(), "buffer_"))
    sample = model.experience.sample(4)  # the first draw of the saved generator state
    expected["buffer_sample_indices"] = sample.indices
    expected["buffer_sample_rewards"] = sample.rewards

    # Training on from the file: one more epoch, as `fit(epochs=1)` after a load.
    resumed = gm.LearnableMultiModal.load(out / "model.safetensors")
    resumed.fit(x, **resume_options(m, weight_average_decay()))
    expected.update(outputs(resumed, x, m, "resumed_"))

    written = ["model.safetensors", "buffer.safetensors", "buffer.pkl", "event.pkl"]
    event = graph_event()
    with open(out / "event.pkl", "wb") as f:
        pickle.dump(event, f, protocol=4)
    expected["event_fingerprint"] = gm.fingerprints([event.get_component(gm.Modality.TACTILE).graph])
    expected["event_fused"] = model.fuse_event(event)
    try:
        from grapheme_multimodal.ensemble import save_ensemble
    except ImportError:
        save_ensemble = None
    if save_ensemble is not None:
        members = [trained_model(1, x, m, capacity=False), trained_model(2, x, m, capacity=False)]
        save_ensemble(members, out / "ensemble.safetensors")
        for j, member in enumerate(members):
            expected.update(outputs(member, x, m, f"ensemble{j}_"))
        written.append("ensemble.safetensors")

    from grapheme_multimodal.sklearn import MultimodalEmbedder

    Xs = [x[name] for name in DIMS]
    capacity = supported(dict(encoder_hidden=(3,), encoder_output_dim=4, shared_head=(4,)), MultimodalEmbedder)
    embedder = MultimodalEmbedder(embed_dim=4, hidden_dim=4, num_heads=1, epochs=2, batch_size=4, random_state=0, **capacity)
    expected["embedder_transform"] = embedder.fit(Xs).transform(Xs)
    with open(out / "embedder.pkl", "wb") as f:
        pickle.dump(embedder, f, protocol=4)
    written.append("embedder.pkl")

    np.savez_compressed(out / "expected.npz", **expected)
    for name in written:  # gzipped: safetensors headers are mostly JSON text
        with open(out / name, "rb") as f, open(out / (name + ".gz"), "wb") as packed:
            with gzip.GzipFile(name, "wb", 9, packed, mtime=0) as z:
                shutil.copyfileobj(f, z)
        (out / name).unlink()
    (out / "manifest.json").write_text(json.dumps({"version": gm.__version__, "files": written, "ema_decay": weight_average_decay()}, indent=1) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
