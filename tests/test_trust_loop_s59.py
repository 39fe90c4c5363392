"""A PyTorch researcher's own training loop (losses / backward / step) and
fit's validation: losses of rows that hold no modality."""

import copy

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import distributed
from grapheme_multimodal.training import _ArrayDataset

E = 8
BOTH = np.isin(np.arange(7), [gm.Modality.VISUAL.index, gm.Modality.LINGUISTIC.index])


def small() -> gm.LearnableMultiModal:
    return gm.LearnableMultiModal(embed_dim=E, hidden_dim=16, seed=0, input_dims={"visual": 6, "linguistic": 5})


def views(rows: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {"visual": rng.normal(size=(rows, 6)), "linguistic": rng.normal(size=(rows, 5))}


def snapshot(model: gm.LearnableMultiModal) -> tuple:
    state = model.optimizer_state()
    return ([v.tobytes() for v in model.state_dict().values()], state["step"], state["rng_counter"],
            model.has_gradients(), [g.tobytes() for g in model.gradients().values()])


@pytest.mark.parametrize("batch, kind", [
    (lambda: gm.Batch(inputs=views(4), mask=np.zeros((4, 7), bool)), "the mask is False everywhere"),
    (lambda: gm.Batch(embeddings=np.zeros((4, 7, E), np.float32)), "the mask is False everywhere"),
    (lambda: gm.Batch.from_events([gm.MultiModalEvent(1), gm.MultiModalEvent(2)]), "no event or row has a component"),
], ids=["mask-all-false", "embeddings-all-zero", "events-without-components"])
def test_losses_of_rows_holding_no_modality_are_refused_not_reported_as_0(batch, kind):
    """model.losses on a batch in which no row holds a modality (a mask False
    everywhere, recorded embeddings all zero, events without components)
    returned 0.0 for every objective, a perfect validation score for a mean
    over nothing, while train_step refused the same batch. Now losses
    refuses it too, naming the batch, and the model is left as it was."""
    model = small()
    model.backward(views(4))
    before = snapshot(model)
    with pytest.raises(gm.InvalidValueError, match=rf"^batch: no row holds a modality \({kind}\); expected at least one "
                                                   r"(present modality|component) to compute losses of$") as info:
        model.losses(batch())
    assert info.value.arg == "batch" and snapshot(model) == before
    with pytest.raises(gm.InvalidValueError, match=rf"^batch: no row holds a modality \({kind}\); .* to train on$"):
        model.train_step(batch())  # the training message as it was
    assert snapshot(model) == before
    mask = np.zeros((4, 7), bool)
    mask[0] = BOTH  # one row holding two modalities: losses as before
    assert model.losses(views(4), mask=mask)["cross_modal"] > 0


@pytest.mark.parametrize("empty_rows", [1024, 3000])
def test_validation_losses_pass_over_rows_holding_no_modality(empty_rows):
    """fit validated in batches of 1,024 rows and weighted each batch by all
    its rows, so a batch of rows holding no modality added 0.0 at full weight:
    the same 12 validation rows gave val_total 11.7 alone and 0.8 after 1,024
    empty rows (early stopping then watched a diluted number). Now each batch
    weighs by its rows that hold a modality, as the README says every
    objective passes over the others: the val_ losses are those of the 12 rows."""
    model = small()
    held = views(12, seed=1)
    padded = {k: np.concatenate([np.zeros((empty_rows, v.shape[1])), v]) for k, v in held.items()}
    padded_mask = np.concatenate([np.zeros((empty_rows, 7), bool), np.tile(BOTH, (12, 1))])
    twin = copy.deepcopy(model)
    plain = twin.fit(views(16), epochs=1, batch_size=16, validation=held, progress=False).epochs[0]
    padded_record = model.fit(views(16), epochs=1, batch_size=16, validation=padded, validation_mask=padded_mask,
                              progress=False).epochs[0]
    val = {k: v for k, v in plain.items() if k.startswith("val_")}
    assert val and val == {k: v for k, v in padded_record.items() if k.startswith("val_")}
    assert val["val_total"] == pytest.approx(model.losses(held)["total"], rel=1e-6)


def test_a_distributed_fit_still_takes_first_rows_holding_no_modality(monkeypatch):
    """A distributed fit checks its objectives on the losses of the data's
    first two rows before any worker starts; rows holding no modality there
    (which fit takes: every objective passes over them) must not be refused
    now that losses refuses a batch holding no modality."""
    model = small()
    mask = np.tile(BOTH, (6, 1))
    mask[:2] = False
    train = _ArrayDataset(model, views(6), mask, "data", for_training=True)

    class Reached(Exception):
        pass

    def cluster_check(*args, **kwargs):
        raise Reached  # the check after the losses: they passed

    monkeypatch.setattr(distributed, "_check_fits_cluster", cluster_check)
    with pytest.raises(Reached):
        distributed._RaySteps(model, train, None, None, num_workers=2, cpus_per_worker=1)


def unit_embeddings(rows: int) -> np.ndarray:
    emb = np.random.default_rng(2).normal(size=(rows, 7, E))
    emb[:, ~BOTH] = 0
    return (emb / np.maximum(np.linalg.norm(emb, axis=2, keepdims=True), 1e-12)).astype(np.float32)


@pytest.mark.parametrize("options, batch, weights, arg, why", [
    ({"neighborhood_neighbors": 0}, lambda: views(8), {"neighborhood": 1.0}, "weights",
     r"neighborhood has weight 1.0, but the model's neighborhood_neighbors is 0 \(no neighbours to keep"),
    ({"neighborhood_neighbors": 0}, lambda: views(8), {"contrastive": 1.0, "neighborhood": 0.5}, "weights",
     r"neighborhood has weight 0.5, but the model's neighborhood_neighbors is 0"),
    ({}, lambda: gm.Batch(embeddings=unit_embeddings(8)), {"contrastive": 1.0}, "batch",
     r"contrastive trains only the encoders .*which recorded embeddings do not reach, so (this step would train "
     r"nothing|its gradients would be 0)"),
    ({"encoder_objectives": ("binding",)}, lambda: views(8), {"contrastive": 1.0}, "weights",
     r"contrastive trains only the encoders .*encoder_objectives=\('binding',\) keeps its gradient from them, so "),
], ids=["neighborhood-without-neighbours", "neighborhood-beside-others", "contrastive-on-embeddings",
        "contrastive-kept-from-encoders"])
def test_train_step_and_backward_refuse_weights_that_train_nothing_as_fit_does(options, batch, weights, arg, why):
    """fit refuses objectives that train nothing in this model (a neighborhood
    weight with neighborhood_neighbors=0; only contrastive, with a fixed
    temperature, on recorded embeddings or kept from the encoders by
    encoder_objectives), but train_step took them: every gradient 0, an Adam
    step counted (step 1 -> 2, bias correction moved) and losses reported as
    if it had trained. Now train_step and backward refuse them by name and
    the model is left as it was."""
    model = gm.LearnableMultiModal(embed_dim=E, hidden_dim=16, seed=0, input_dims={"visual": 6, "linguistic": 5}, **options)
    model.train_step(views(8))
    model.zero_grad()
    before = snapshot(model)
    for call in (model.train_step, model.backward):
        with pytest.raises(gm.InvalidValueError, match=rf"^{arg}: {why}") as info:
            call(batch(), weights=weights)
        assert info.value.arg == arg and snapshot(model) == before
    assert model.losses(batch(), weights=weights)["total"] >= 0  # a preview trains nothing: allowed
    model.train_step(views(8), weights={"binding": 1.0})  # an objective that reaches a parameter trains
    assert model.optimizer_state()["step"] == before[1] + 1


def test_load_state_dict_leaves_adam_and_the_gradients_as_its_docstring_says():
    """Nothing said what load_state_dict does to Adam's state and the
    accumulated gradients (a PyTorch user assumes both are left alone, as a
    module's load leaves its optimizer and .grad). Its docstring now says so;
    this pins it, and that load_optimizer_state beside it resumes bit for bit."""
    source, target = small(), small()
    for _ in range(2):
        source.train_step(views(8))
    target.train_step(views(8, seed=3))
    target.backward(views(8, seed=4))
    adam, grads = target.optimizer_state(), target.gradients()
    target.load_state_dict(source.state_dict())
    after = target.optimizer_state()
    assert (after["step"], after["rng_counter"]) == (adam["step"], adam["rng_counter"])
    assert all(np.array_equal(after["exp_avg"][k], adam["exp_avg"][k]) for k in adam["exp_avg"])
    assert all(np.array_equal(g, grads[k]) for k, g in target.gradients().items()) and target.has_gradients()
    assert "Adam's state" in gm.LearnableMultiModal.load_state_dict.__doc__
    target.load_optimizer_state(source.optimizer_state())
    assert target.train_step(views(8, seed=5)) == source.train_step(views(8, seed=5))
    assert all(np.array_equal(v, source.state_dict()[k]) for k, v in target.state_dict().items())


@pytest.mark.parametrize("call", [
    lambda m: m.apply_gradients({k: (v > 0) if k == "binder.bias" else v for k, v in m.gradients().items()}),
    lambda m: m.load_state_dict({k: (v > 0) if k == "binder.bias" else v for k, v in m.state_dict().items()}),
    lambda m: m.load_optimizer_state({**m.optimizer_state(), "exp_avg_sq": {
        k: (v >= 0) if k == "binder.bias" else v for k, v in m.optimizer_state()["exp_avg_sq"].items()}}),
], ids=["apply_gradients", "load_state_dict", "load_optimizer_state"])
def test_boolean_gradients_weights_or_moments_are_refused(call):
    """A mask passed where a tensor belongs (grads = {k: g > 0}, a weight or
    moment of dtype bool) was applied as 1.0 and 0.0 without a word, while
    rewards refuse booleans. Now it is a TypeError naming the tensor, and the
    model is left as it was."""
    model = small()
    model.train_step(views(8))
    before = snapshot(model)
    with pytest.raises(TypeError, match=r"\['binder\.bias'\]: expected real numbers, got array of shape \(1,\) and "
                                        r"dtype bool; a bool is not taken as a number"):
        call(model)
    assert snapshot(model) == before
    model.apply_gradients({k: v.astype(np.float64) for k, v in model.gradients().items()})  # numbers: taken
    assert model.optimizer_state()["step"] == before[1] + 1


def test_boolean_fused_targets_are_refused_as_boolean_rewards_are():
    """Batch.fused of dtype bool (seed_consistency's targets) was read as 1.0
    and 0.0, while rewards of dtype bool are refused. Now both are."""
    model = small()
    emb = unit_embeddings(4)
    with pytest.raises(TypeError, match=r"^fused: expected real numbers, got array of shape \(4, 8\) and dtype bool"):
        model.losses(gm.Batch(embeddings=emb, fused=np.ones((4, E), bool)))
    assert model.losses(gm.Batch(embeddings=emb, fused=np.ones((4, E))))["seed_consistency"] >= 0


@pytest.mark.parametrize("make", [
    lambda: gm.Batch(inputs=views(8), rewards=np.full(8, 0.9)),
    lambda: gm.Batch(embeddings=unit_embeddings(8), rewards=np.zeros(8)),
], ids=["inputs", "embeddings"])
def test_rewards_without_fused_are_refused_not_ignored(make):
    """Rewards are read by seed_consistency alone, which needs the recorded
    fused embeddings; a batch with rewards but no fused trained and reported
    losses as if the rewards were not there (a reinforcement learner's
    weighting of its rows dropped without a word). Now losses, backward and
    train_step refuse it, naming rewards, and the model is left as it was."""
    model = small()
    before = snapshot(model)
    for call in (model.losses, model.backward, model.train_step):
        with pytest.raises(gm.InvalidValueError, match=r"^rewards: given without fused; only seed_consistency reads "
                                                       r"them .*expected Batch\.fused \[B, E\] beside them") as info:
            call(make())
        assert info.value.arg == "rewards" and snapshot(model) == before
    batch = make()
    fused = model.fuse(unit_embeddings(8))
    with_fused = gm.Batch(inputs=batch.inputs, embeddings=batch.embeddings, fused=fused, rewards=batch.rewards)
    assert "seed_consistency" in model.train_step(with_fused)
