"""Exact resume under any combination of options: ``fit(n epochs)`` equals
``fit(k)``, save, load, ``fit(n - k)`` bit for bit — weights, Adam state,
draw counter, standardisation, weight average, experience buffer, epoch
count and history — for arrays (with or without a mask), events and the
experience buffer as data (hypothesis)."""

from __future__ import annotations

import json
import warnings

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import grapheme_multimodal as gm
from grapheme_multimodal.checkpoint import checkpoint_state

DIMS = {"visual": 5, "auditory": 4, "linguistic": 3}


def views(n: int, seed: int) -> dict:
    """Three float32 views of one latent, ``n`` rows."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 3))
    return {m: (z @ rng.normal(size=(3, d)) + 0.1 * rng.normal(size=(n, d))).astype(np.float32) for m, d in DIMS.items()}


def full_state(model: gm.LearnableMultiModal) -> tuple:
    """Everything a checkpoint holds, comparable (times left out)."""
    tensors, meta = checkpoint_state(model)
    meta.pop("library_version")
    for record in meta["history"]:
        record.pop("seconds")
    return {k: v.tobytes() for k, v in tensors.items()}, json.dumps(meta, sort_keys=True)


@st.composite
def configs(draw) -> dict:
    hidden = draw(st.sampled_from([(), (6,), (6, 5)]))
    head = draw(st.sampled_from([(), (8,), (7, 8)]))
    decoders = draw(st.booleans())
    return dict(
        embed_dim=8, hidden_dim=8, num_heads=draw(st.sampled_from([1, 2])), seed=draw(st.integers(0, 4)), input_dims=DIMS,
        binder_kind=draw(st.sampled_from(["additive", "bilinear"])), encoder_hidden=hidden, shared_head=head,
        encoder_output_dim=draw(st.sampled_from([None, 6])) if head else None,
        encoder_skip=bool(hidden and head) and draw(st.booleans()),
        encoder_input_dropout=draw(st.sampled_from([0.0, 0.2])),
        encoder_hidden_dropout=draw(st.sampled_from([0.0, 0.3])) if hidden else 0.0,
        learnable_temperature=draw(st.booleans()), fusion_residual=draw(st.sampled_from([0.0, 0.5])),
        contrastive_pair_power=draw(st.sampled_from([1.0, 0.5, 0.0])),
        fused_neighbor_space=draw(st.sampled_from(["embeddings", "inputs"])),
        input_distance=draw(st.sampled_from(["columns", "modalities"])),
        encoder_objectives=draw(st.sampled_from([None, ("contrastive",), ("contrastive", "binding")])),
        contrastive_neighbors=draw(st.sampled_from([0, 2])), fused_neighbors=draw(st.sampled_from([0, 2])),
        weight_decay=draw(st.sampled_from([0.0, 0.01])), grad_clip=draw(st.sampled_from([None, 1.0])),
        reconstruction_decoders=decoders, reconstruction_subsets=decoders and draw(st.booleans()),  # subsets need them
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    config=configs(),
    source=st.sampled_from(["arrays", "masked arrays", "events", "buffer"]),
    rows=st.sampled_from([17, 30]),
    epochs=st.integers(2, 4),
    data=st.data(),
)
def test_fit_resumes_exactly_across_a_checkpoint_under_any_options(tmp_path, config, source, rows, epochs, data) -> None:
    first = data.draw(st.integers(1, epochs - 1), label="epochs before the checkpoint")
    weights = data.draw(st.sampled_from([None, {"contrastive": 1, "fused_contrastive": 1, "binding": 2, "cross_modal": 0.1},
                                         {"contrastive": 1, "binding": 1, "seed_consistency": 0.5},
                                         {"contrastive": 1, "fused_contrastive": 1, "reconstruction": 0.5}]), label="objectives")
    if weights and "reconstruction" in weights:
        config = {**config, "reconstruction_decoders": True}  # the objective needs them
    fit_kw = dict(
        batch_size=data.draw(st.sampled_from([1, 4, 7, 64]), label="batch_size"),
        modality_dropout=data.draw(st.sampled_from([0.0, 0.3]), label="modality_dropout"),
        ema_decay=data.draw(st.sampled_from([None, 0.5, 0.9]), label="ema_decay"),
        standardize=data.draw(st.booleans(), label="standardize"),
        seed=data.draw(st.sampled_from([None, 3]), label="seed"),
        progress=False,
    )
    x = views(rows, config["seed"])
    mask = None
    if source != "arrays":
        rng = np.random.default_rng(rows)
        mask = np.zeros((rows, 7), bool)
        mask[:, :3] = rng.random((rows, 3)) < 0.7
        mask[np.arange(rows), rng.integers(0, 3, rows)] = True  # every row keeps a modality
    if source == "buffer":
        recorder = gm.LearnableMultiModal(**config)
        recorder.record_batch(x, mask, rewards=np.linspace(0, 1, rows))
        train, train_kw = recorder.experience, {}
    elif source == "events":
        train = [gm.MultiModalEvent(i, [gm.ModalFeatures(x[m][i], m) for j, m in enumerate(DIMS) if mask[i, j]])
                 for i in range(rows)]
        train_kw = {}
    else:
        train, train_kw = x, {"mask": mask}
        if data.draw(st.booleans(), label="validation"):
            train_kw["validation"] = views(6, 100)
    if weights is not None and "seed_consistency" in weights and source != "buffer":
        weights = {k: v for k, v in weights.items() if k != "seed_consistency"}  # it needs recorded fused embeddings
    fit_kw["objectives"] = weights

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # batch_size=1: the objectives that compare rows are 0
        straight = gm.LearnableMultiModal(**config)
        straight.fit(train, epochs=epochs, **train_kw, **fit_kw)
        model = gm.LearnableMultiModal(**config)
        model.fit(train, epochs=first, **train_kw, **fit_kw)
        model.save(tmp_path / "resume.safetensors")
        resumed = gm.LearnableMultiModal.load(tmp_path / "resume.safetensors")
        resumed.fit(train, epochs=epochs - first, **train_kw, **fit_kw)
        model.fit(train, epochs=epochs - first, **train_kw, **fit_kw)
    assert full_state(resumed) == full_state(straight), "resumed from the checkpoint = trained straight"
    assert full_state(model) == full_state(straight), "trained on in memory = trained straight"
