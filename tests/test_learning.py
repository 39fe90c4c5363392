"""Learning: gradients, Adam, objectives and the training API (float32).

The exact gradient checks (every objective × every tensor, f64, relative
error < 1e-5) are the Rust tests in ``rust/core/tests/core/gradients.rs``; here the
same checks run through the public Python API in float32.
"""

from __future__ import annotations

import collections

import numpy as np
import pytest

import grapheme_multimodal as gm

DIMS = {"visual": 3, "auditory": 5, "linguistic": 4, "tactile": 18, "proprioceptive": 2, "action": 6, "abstract": 7}
# Rows with 2–7 modalities present (no row is degenerate for any objective).
MASK = np.array(
    [
        [1, 1, 1, 1, 1, 1, 1],
        [1, 1, 1, 0, 0, 0, 0],
        [0, 0, 1, 1, 1, 0, 0],
        [1, 0, 1, 1, 0, 1, 0],
        [0, 1, 1, 1, 1, 0, 1],
        [1, 1, 1, 0, 1, 1, 1],
        [1, 1, 0, 1, 0, 1, 1],
        [0, 1, 1, 0, 1, 1, 0],
    ],
    dtype=bool,
)


def small_model(seed: int = 0, **overrides) -> gm.LearnableMultiModal:
    config = dict(embed_dim=8, hidden_dim=12, num_heads=2, input_dims=DIMS, temperature=0.5, seed=seed)
    config.update(overrides)
    return gm.LearnableMultiModal(**config)


def random_inputs(rng: np.random.Generator, batch: int, dims=DIMS) -> dict:
    return {name: rng.normal(size=(batch, d)).astype(np.float32) for name, d in dims.items()}


def rewind_counter(model: gm.LearnableMultiModal) -> None:
    """Undo the counter advance of one backward(), so losses() sees its draws."""
    state = model.optimizer_state()
    state["rng_counter"] -= 1
    model.load_optimizer_state(state)


# ------------------------------------------------------------ gradient checks


# main_only (.ci/python-versions.sh): the core's gradients, the same on every Python
@pytest.mark.main_only
def test_gradients_match_finite_differences_in_float32():
    """Directional finite differences of ``losses()`` against ``gradients()``.

    Tolerance, and why it is a median: the loss is float32 (relative
    precision ~1e-7), so the step must be large enough for round-off to stay
    small — ``h = clip(1e-4 · max(|L|, 1) / ‖g‖, 1e-5, 1e-3)`` keeps it below
    ~4% of ‖g‖ — but at such steps a LeakyReLU pre-activation is sometimes
    crossed (at initialisation the fusion's last layer has pre-activations
    near 1e-5), which spoils that one finite difference. A wrong gradient
    fails in every problem; a kink only in a few. So for each binder ×
    objective × tensor × direction the median relative error over six
    independent random problems must be below 5% (measured: at most 3%),
    and the median over everything below 1% (measured: 0.04%).
    cross_modal runs on given embeddings: its target is a stop-gradient, so
    only there does its analytic gradient equal the derivative of its loss.
    fused_contrastive's neighbour sets are constants too; a step that changes
    one is as rare as a kink crossing, and the median absorbs it likewise.
    """
    errors = collections.defaultdict(list)
    for seed in range(6):
        rng = np.random.default_rng(seed)
        for binder, heads in (("additive", 1), ("bilinear", 2)):
            model = small_model(seed, binder_kind=binder, num_heads=heads)
            x = random_inputs(rng, 8)
            fused = rng.normal(size=(8, 8))
            fused /= np.linalg.norm(fused, axis=1, keepdims=True)
            cases = {
                "seed_consistency": gm.Batch(inputs=x, mask=MASK, fused=fused, rewards=rng.uniform(0, 1, 8)),
                "contrastive": gm.Batch(inputs=x, mask=MASK),
                "binding": gm.Batch(inputs=x, mask=MASK),
                "cross_modal": gm.Batch(embeddings=model.encode(x, MASK), mask=MASK),
                "fused_contrastive": gm.Batch(inputs=x, mask=MASK),
            }
            state = model.state_dict()
            for objective, batch in cases.items():
                weights = {objective: 1.0}
                loss = model.losses(batch, weights=weights)["total"]
                model.zero_grad()
                model.backward(batch, weights=weights)
                rewind_counter(model)
                for name, grad in model.gradients().items():
                    norm = float(np.linalg.norm(grad))
                    if norm == 0.0:
                        continue
                    h = min(1e-3, max(1e-5, 1e-4 * max(abs(loss), 1.0) / norm))
                    r = rng.normal(size=grad.shape)
                    directions = {"gradient": grad / norm, "mixed": (grad / norm + r / np.linalg.norm(r)) / np.sqrt(2)}
                    for kind, u in directions.items():
                        values = []
                        for sign in (1, -1):
                            model.load_state_dict({**state, name: state[name] + sign * h * u})
                            values.append(model.losses(batch, weights=weights)["total"])
                        numeric = (values[0] - values[1]) / (2 * h)
                        errors[(binder, objective, name, kind)].append(abs(numeric - float((grad * u).sum())) / norm)
                    model.load_state_dict(state)
    medians = {key: float(np.median(v)) for key, v in errors.items()}
    worst = max(medians, key=medians.get)
    assert medians[worst] < 0.05, (worst, medians[worst])
    assert np.median(list(medians.values())) < 0.01
    # Every objective reached the tensors it trains.
    trained = {(b, o) for (b, o, _, _) in errors}
    assert len(trained) == 10
    names = {n for (_, o, n, _) in errors if o == "cross_modal"}
    assert {"attention.q.weight", "attention.k.weight", "attention.v.weight", "attention.o.weight"} <= names
    assert {n for (_, o, n, _) in errors if o == "binding"} >= {"binder.weight", "binder.bias"}
    fused_trained = {n for (_, o, n, _) in errors if o == "fused_contrastive"}
    assert {"fusion.0.weight", "fusion.2.bias", "encoder.visual.weight"} <= fused_trained
    assert not any(n.startswith(("binder.", "attention.")) for n in fused_trained)


def test_gradient_names_and_shapes_are_the_state_dict_ones():
    model = small_model()
    grads = model.gradients()
    assert list(grads) == list(model.state_dict())
    assert all(g.shape == p.shape and g.dtype == np.float32 for g, p in zip(grads.values(), model.state_dict().values()))
    assert all((g == 0).all() for g in grads.values()), "no gradients yet: zeros"


# ------------------------------------------------------------- API semantics


def test_zero_grad_has_gradients_and_step_semantics():
    rng = np.random.default_rng(1)
    model = small_model(1)
    batch = gm.Batch(inputs=random_inputs(rng, 8), mask=MASK)
    before = model.state_dict()

    assert not model.has_gradients()
    model.step()  # no gradients: a no-op
    assert all(np.array_equal(before[k], v) for k, v in model.state_dict().items())

    once = model.backward(batch, weights={"contrastive": 1.0})
    assert set(once) == {"contrastive", "total"}
    assert model.has_gradients()
    g1 = model.gradients()
    model.backward(batch, weights={"contrastive": 1.0})  # contrastive draws nothing: same gradient again
    g2 = model.gradients()
    for name in g1:
        np.testing.assert_allclose(g2[name], 2 * g1[name], rtol=1e-5, atol=1e-7)
    assert all(np.array_equal(before[k], v) for k, v in model.state_dict().items()), "backward does not step"

    model.step(lr=0.01)
    after = model.state_dict()
    assert any(not np.array_equal(before[k], after[k]) for k in before)
    assert all(np.array_equal(g2[k], v) for k, v in model.gradients().items()), "step keeps the gradients"

    model.zero_grad()
    assert not model.has_gradients()
    assert all((g == 0).all() for g in model.gradients().values())
    model.step()
    assert all(np.array_equal(after[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("binder", ["additive", "bilinear"])
def test_one_default_step_changes_every_parameter_tensor(binder):
    rng = np.random.default_rng(2)
    model = gm.LearnableMultiModal(embed_dim=16, hidden_dim=24, num_heads=4, binder_kind=binder, seed=2)
    x = {m: rng.normal(size=(12, 18)) for m in gm.Modality}  # every modality present
    before = model.state_dict()
    losses = model.train_step(x)
    assert set(losses) == {"contrastive", "binding", "cross_modal", "fused_contrastive", "total"}
    after = model.state_dict()
    unchanged = [name for name in before if np.array_equal(before[name], after[name])]
    assert unchanged == []


def test_losses_preview_the_next_step_and_draws_follow_the_counter():
    rng = np.random.default_rng(3)
    model = small_model(3)
    batch = gm.Batch(inputs=random_inputs(rng, 8), mask=MASK)
    preview = model.losses(batch)
    assert model.train_step(batch) == preview
    assert model.optimizer_state()["rng_counter"] == 1
    twin = small_model(3)
    assert twin.losses(batch) == preview, "same seed and counter, same draws and losses"


def test_train_step_shorthand_and_per_event_batches():
    rng = np.random.default_rng(4)
    dims = {"visual": 5, "linguistic": 18}
    x = random_inputs(rng, 6, dims)
    events = []
    for i in range(6):
        e = gm.MultiModalEvent(i)
        e.add_component(gm.ModalFeatures(x["visual"][i], gm.Modality.VISUAL))
        e.add_component(gm.ModalFeatures(x["linguistic"][i], gm.Modality.LINGUISTIC))
        events.append(e)
    a = gm.LearnableMultiModal(embed_dim=8, hidden_dim=8, num_heads=1, input_dims=dims, seed=4)
    b = gm.LearnableMultiModal(embed_dim=8, hidden_dim=8, num_heads=1, input_dims=dims, seed=4)
    la = a.losses(x)
    lb = b.losses(gm.Batch.from_events(events))
    assert la.keys() == lb.keys()
    for k in la:
        assert la[k] == pytest.approx(lb[k], rel=1e-6)
    # A second component of one modality is pooled, and trains too.
    events[0].add_component(gm.ModalFeatures(rng.normal(size=5), gm.Modality.VISUAL, confidence=0.5))
    b.train_step(gm.Batch.from_events(events))
    assert b.has_gradients()


def test_seed_consistency_is_the_original_compute_loss():
    rng = np.random.default_rng(5)
    model = gm.LearnableMultiModal(seed=5)
    x = {m: rng.normal(size=(4, 18)) for m in ("visual", "auditory", "tactile")}
    emb, fused = model.encode_and_fuse(x)
    recorded = fused * 0.8 + 0.05
    rewards = np.array([0.0, 0.5, 1.0, 0.2], dtype=np.float32)
    batch = gm.Batch(embeddings=emb, fused=recorded, rewards=rewards)
    losses = model.losses(batch, weights={"seed_consistency": 1.0})
    expected = np.mean(((fused - recorded) ** 2).mean(axis=1) * (1 - rewards))
    assert losses["seed_consistency"] == pytest.approx(expected, rel=1e-5)
    # With recorded fused embeddings, the default mix includes it.
    assert "seed_consistency" in model.losses(batch)
    # Embeddings given as data train only what lies downstream of them.
    model.backward(batch, weights={"seed_consistency": 1.0})
    grads = model.gradients()
    assert all((g == 0).all() for n, g in grads.items() if not n.startswith("fusion."))
    assert all((g != 0).any() for n, g in grads.items() if n.startswith("fusion."))


def test_apply_gradients_is_a_step_from_the_given_gradients():
    rng = np.random.default_rng(6)
    a, b = small_model(6), small_model(6)
    batch = gm.Batch(inputs=random_inputs(rng, 8), mask=MASK)
    a.backward(batch)
    grads = a.gradients()
    a.step(lr=0.02)
    b.apply_gradients(grads, lr=0.02)
    for name, value in a.state_dict().items():
        np.testing.assert_array_equal(value, b.state_dict()[name])
    assert not b.has_gradients()
    with pytest.raises(ValueError, match="missing keys"):
        b.apply_gradients({k: v for k, v in grads.items() if k != "binder.bias"})
    with pytest.raises(ValueError, match="binder.bias"):
        b.apply_gradients({**grads, "binder.bias": np.zeros(2)})
    with pytest.raises(ValueError, match="NaN"):
        b.apply_gradients({**grads, "binder.bias": np.array([np.nan])})


def test_optimizer_state_round_trip_resumes_bit_for_bit():
    rng = np.random.default_rng(7)
    batches = [gm.Batch(inputs=random_inputs(rng, 8), mask=MASK) for _ in range(6)]
    config = dict(weight_decay=0.01, grad_clip=1.0, binder_kind="bilinear")
    straight = small_model(7, **config)
    for batch in batches[:3]:
        straight.train_step(batch, lr=0.01)
    weights, state = straight.state_dict(), straight.optimizer_state()
    assert state["step"] == 3 and state["rng_counter"] == 3
    assert list(state["exp_avg"]) == list(weights)
    for batch in batches[3:]:
        straight.train_step(batch, lr=0.01)

    resumed = small_model(7, **config)
    resumed.load_state_dict(weights)
    resumed.load_optimizer_state(state)
    for batch in batches[3:]:
        resumed.train_step(batch, lr=0.01)
    for name, value in straight.state_dict().items():
        np.testing.assert_array_equal(value, resumed.state_dict()[name])
    s, r = straight.optimizer_state(), resumed.optimizer_state()
    assert (s["step"], s["rng_counter"]) == (r["step"], r["rng_counter"])
    for name in s["exp_avg"]:
        np.testing.assert_array_equal(s["exp_avg"][name], r["exp_avg"][name])
        np.testing.assert_array_equal(s["exp_avg_sq"][name], r["exp_avg_sq"][name])


def test_bad_optimizer_state_is_rejected_and_changes_nothing():
    model = small_model()
    state = model.optimizer_state()
    with pytest.raises(ValueError, match="keys"):
        model.load_optimizer_state({"step": 1})
    bad = dict(state, step=-1)
    with pytest.raises(ValueError, match="step"):
        model.load_optimizer_state(bad)
    negative = {k: v.copy() for k, v in state["exp_avg_sq"].items()}
    negative["binder.bias"][0] = -1.0
    with pytest.raises(ValueError, match="negative"):
        model.load_optimizer_state(dict(state, step=1, exp_avg_sq=negative))
    assert model.optimizer_state()["step"] == 0


# -------------------------------------------------------------- it learns


# main_only: 300 steps of the core's training, the same on every Python
@pytest.mark.main_only
def test_synthetic_task_loss_falls_by_a_factor_of_three():
    """Four modalities are noisy nonlinear views of one 6-d latent; 20% of
    modality slots are missing. 300 Adam steps of the default mix on batches
    of 64 cut the held-out loss of the pairwise objectives (contrastive +
    binding + cross_modal) by at least 3× (measured: 3.9×: 6.99 → 1.81) and
    fused_contrastive by at least 1.8× (measured: 2.2×: 5.42 → 2.43; with
    two neighbours as positives its floor is about log 3, not 0)."""
    rng = np.random.default_rng(0)
    n, latent = 256, 6
    dims = {"visual": 20, "auditory": 12, "linguistic": 16, "tactile": 8}
    z = rng.normal(size=(n, latent))
    xs = {k: np.tanh(z @ rng.normal(size=(latent, d))) + 0.1 * rng.normal(size=(n, d)) for k, d in dims.items()}
    mask = np.zeros((n, 7), dtype=bool)
    for k in dims:
        mask[:, gm.Modality.parse(k).index] = True
    mask[rng.random((n, 7)) < 0.2] = False
    model = gm.LearnableMultiModal(embed_dim=32, hidden_dim=64, input_dims=dims, seed=0, binder_kind="bilinear")
    held = gm.Batch(inputs=xs, mask=mask)
    before = model.losses(held)
    for _ in range(300):
        idx = rng.choice(n, 64, replace=False)
        model.train_step(gm.Batch(inputs={k: v[idx] for k, v in xs.items()}, mask=mask[idx]), lr=0.003)
    after = model.losses(held)
    pairwise = ("contrastive", "binding", "cross_modal")
    assert sum(after[k] for k in pairwise) * 3 <= sum(before[k] for k in pairwise), (before, after)
    assert after["fused_contrastive"] * 1.8 <= before["fused_contrastive"], (before, after)
    for name in pairwise:
        assert after[name] < before[name]


# ------------------------------------------------------------- bad inputs


def test_bad_training_input_raises_clear_errors():
    rng = np.random.default_rng(8)
    model = small_model()
    x = random_inputs(rng, 8)
    with pytest.raises(ValueError, match="unknown objectives"):
        model.train_step(x, MASK, weights={"contrastiv": 1.0})
    with pytest.raises(ValueError, match=r"weights\['binding'\].*>= 0"):
        model.train_step(x, MASK, weights={"binding": -1.0})
    with pytest.raises(ValueError, match="seed_consistency needs"):
        model.train_step(x, MASK, weights={"seed_consistency": 1.0})
    with pytest.raises(ValueError, match="exactly one of inputs, events, components or embeddings"):
        gm.Batch(inputs=x, embeddings=np.zeros((8, 7, 8)))
    with pytest.raises(ValueError, match="exactly one"):
        gm.Batch()
    with pytest.raises(ValueError, match="fused"):
        model.train_step(gm.Batch(inputs=x, mask=MASK, fused=np.zeros((7, 8))))
    with pytest.raises(ValueError, match="rewards"):
        model.train_step(gm.Batch(inputs=x, mask=MASK, fused=np.zeros((8, 8)), rewards=np.zeros(3)))
    with pytest.raises(ValueError, match="lr"):
        model.train_step(x, MASK, lr=0.0)
    with pytest.raises(ValueError, match="lr"):
        model.step(lr=float("nan"))
    bad = dict(x)
    bad["visual"] = bad["visual"].copy()
    bad["visual"][0, 0] = np.nan
    with pytest.raises(ValueError, match="visual"):
        model.train_step(bad, MASK)
    with pytest.raises(ValueError, match="mask"):
        model.train_step(gm.Batch(inputs=x, mask=MASK), MASK)
    with pytest.raises(TypeError, match="MultiModalEvent"):
        gm.Batch(events=[1, 2])
    assert not model.has_gradients(), "failed calls leave no gradients"
    assert model.optimizer_state()["rng_counter"] == 0
    # NaN in a row marked absent is never read.
    bad["visual"][0, 0] = np.nan
    mask = MASK.copy()
    mask[0, 0] = False
    assert np.isfinite(model.train_step(bad, mask)["total"])


def test_config_learning_fields_round_trip_and_validate():
    config = gm.LearnableMultiModalConfig(
        binder_kind="bilinear", temperature=0.2, weight_decay=0.01, grad_clip=5, fused_neighbors=np.int64(4)
    )
    assert gm.LearnableMultiModalConfig.from_dict(config.to_dict()) == config
    assert config.to_dict()["grad_clip"] == 5.0
    assert type(config.to_dict()["fused_neighbors"]) is int and config.fused_neighbors == 4
    legacy = {k: v for k, v in config.to_dict().items() if k != "fused_neighbors"}  # saved before it existed
    assert gm.LearnableMultiModalConfig.from_dict(legacy).fused_neighbors == 2
    assert gm.LearnableMultiModal(config).num_parameters() == 70_337 - 129 + 64 * 64 + 1
    assert gm.LearnableMultiModal().num_parameters() == 70_337
    for bad in (
        dict(binder_kind="linear"),
        dict(temperature=0),
        dict(temperature=float("inf")),
        dict(weight_decay=-0.1),
        dict(grad_clip=0),
        dict(fused_neighbors=-1),
    ):
        with pytest.raises(ValueError, match=next(iter(bad))):
            gm.LearnableMultiModalConfig(**bad)
    for bad in (dict(fused_neighbors=1.5), dict(fused_neighbors=True), dict(grad_clip=True)):  # wrong types
        with pytest.raises(TypeError, match=f"^{next(iter(bad))}: "):
            gm.LearnableMultiModalConfig(**bad)


def test_fused_neighbors_reaches_the_core():
    """The neighbour count changes fused_contrastive (more positives per
    row) and nothing else."""
    x = random_inputs(np.random.default_rng(4), 8)
    losses = {k: small_model(fused_neighbors=k).losses(x, MASK) for k in (0, 3)}
    assert losses[0]["fused_contrastive"] != losses[3]["fused_contrastive"]
    for name in ("contrastive", "binding", "cross_modal"):
        assert losses[0][name] == losses[3][name]


def test_readme_learning_example_runs(capsys):
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    start = text.index("## Learning")
    section = text[start : text.index("\n## ", start + 1)]
    code = re.findall(r"```python\n(.*?)```", section, re.S)[0]
    exec(compile(code, "README learning example", "exec"), {})
    assert capsys.readouterr().out.strip().endswith("5")


def test_recorded_experiences_train_and_give_the_original_compute_loss():
    from grapheme_multimodal.buffer import ExperienceBuffer

    rng = np.random.default_rng(9)
    dims = [5, 18, 18, 18, 18, 18, 4]
    model = gm.LearnableMultiModal(embed_dim=16, hidden_dim=16, num_heads=2, input_dims=dims, seed=9)
    x = [rng.normal(size=(6, dims[0])), None, None, None, None, None, rng.normal(size=(6, dims[6]))]
    mask = np.zeros((6, 7), dtype=bool)
    mask[:, [0, 6]] = True
    emb, fused = model.encode_and_fuse(x, mask)
    buffer = ExperienceBuffer(10, input_dims=dims)
    rewards = rng.uniform(0, 1, 6)
    buffer.extend(emb, mask, fused * 0.9, model.pair_strengths(emb, mask), rewards, inputs=x)
    recorded = gm.Batch.from_experiences(buffer.batch())
    value = model.losses(recorded, weights={"seed_consistency": 1.0})["seed_consistency"]
    expected = np.mean(((fused - 0.9 * fused) ** 2).mean(axis=1) * (1 - rewards))
    assert value == pytest.approx(expected, rel=1e-4)
    # From the recorded inputs the encoders learn too, and the value is the same.
    again = gm.Batch.from_experiences(buffer.batch(), use_inputs=True)
    assert model.backward(again, weights={"seed_consistency": 1.0})["seed_consistency"] == pytest.approx(value, rel=1e-5)
    assert (model.gradients()["encoder.visual.weight"] != 0).any()
    plain = ExperienceBuffer(10)
    plain.extend(emb, mask, fused, model.pair_strengths(emb, mask), rewards)
    with pytest.raises(ValueError, match="no recorded inputs"):
        gm.Batch.from_experiences(plain.batch(), use_inputs=True)
