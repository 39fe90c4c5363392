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
