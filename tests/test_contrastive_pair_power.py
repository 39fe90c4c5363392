"""``contrastive_pair_power``: the contrastive loss is the power mean of
order ``p`` of its view pairs' InfoNCE losses (1 = their arithmetic mean, the
original; 0 = their geometric mean). The default 1 is the plain loss, bit for
bit; other orders match a NumPy reference of the loss, train reproducibly,
resume exactly and are carried by checkpoints. The gradient (each pair's
weighted by ``(L_pair / L)^(p - 1)``) is checked against finite differences
in ``rust/core/tests/core/gradients.rs``."""

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal.exceptions import InvalidValueError

from conftest import (
    assert_resumes_exactly,
    save_with_config_fields,
    save_without_config_fields,
    small_model,
    two_cluster_views,
)

DIMS = {"visual": 6, "auditory": 9, "linguistic": 4, "abstract": 5}
ONLY = {"contrastive": 1.0}


def model(**changes):
    return small_model(DIMS, **changes)


def batch(n=32, seed=0):
    data = two_cluster_views(DIMS, n, seed)
    mask = np.zeros((n, 7), dtype=bool)
    slots = [gm.Modality.parse(m).index for m in DIMS]
    mask[:, slots] = np.random.default_rng(seed).random((n, len(slots))) < 0.8
    return data, mask


def pair_losses(emb, mask, tau):
    """Each modality pair's symmetric InfoNCE over the rows holding both, in float64."""
    losses = []
    for i in range(7):
        for j in range(i + 1, 7):
            rows = mask[:, i] & mask[:, j]
            if rows.sum() < 2:
                continue
            s = emb[rows, i].astype(np.float64) @ emb[rows, j].astype(np.float64).T / tau
            row = np.log(np.exp(s - s.max(1, keepdims=True)).sum(1)) + s.max(1) - np.diag(s)
            col = np.log(np.exp(s - s.max(0, keepdims=True)).sum(0)) + s.max(0) - np.diag(s)
            losses.append(0.5 * (row.mean() + col.mean()))
    return np.array(losses)


def power_mean(losses, p):
    return np.exp(np.log(losses).mean()) if p == 0 else (losses**p).mean() ** (1 / p)


@pytest.mark.parametrize("p", [1.0, 0.5, 0.0])
def test_the_loss_is_the_power_mean_of_the_pair_losses(p):
    m = model(contrastive_pair_power=p)
    data, mask = batch()
    losses = pair_losses(m.encode(data, mask), mask, tau=0.2)
    assert len(losses) == 6 and losses.std() > 0.01  # the pairs differ, so the means do
    got = m.losses(data, mask, weights=ONLY)["contrastive"]
    assert got == pytest.approx(power_mean(losses, p), rel=1e-5)


def test_an_order_next_to_one_trains_as_the_arithmetic_mean():
    # p = 1 adds each pair's gradient as it comes; any other order keeps
    # them all and weights them: next to 1 the two paths agree.
    assert gm.LearnableMultiModalConfig().contrastive_pair_power == 1.0
    data, mask = batch()
    a, b = model(learnable_temperature=True), model(learnable_temperature=True, contrastive_pair_power=1 - 1e-7)
    kwargs = dict(epochs=2, batch_size=16, progress=False)
    a.fit(data, mask=mask, **kwargs)
    b.fit(data, mask=mask, **kwargs)
    for name, value in a.state_dict().items():
        np.testing.assert_allclose(b.state_dict()[name], value, atol=2e-5, err_msg=name)


def test_a_lower_order_trains_differently_and_reproducibly(tmp_path):
    data, mask = batch(48)
    kwargs = dict(epochs=2, batch_size=16, progress=False, objectives={"contrastive": 1.0, "binding": 1.0})
    make = lambda: model(contrastive_pair_power=0.5, learnable_temperature=True)  # noqa: E731
    a, b, plain = make(), make(), model(learnable_temperature=True)
    for m in (a, b, plain):
        m.fit(data, mask=mask, **kwargs)
    for name, value in a.state_dict().items():
        assert value.tobytes() == b.state_dict()[name].tobytes(), name
    assert not np.array_equal(a.state_dict()["encoder.visual.weight"], plain.state_dict()["encoder.visual.weight"])
    assert_resumes_exactly(make, data, tmp_path, epochs=2, batch_size=16, progress=False)


def test_checkpoints_carry_it_and_old_files_load_as_the_arithmetic_mean(tmp_path):
    m = model(contrastive_pair_power=0.25)
    m.save(tmp_path / "m.safetensors")
    assert gm.LearnableMultiModal.load(tmp_path / "m.safetensors").config.contrastive_pair_power == 0.25
    old = tmp_path / "old.safetensors"
    save_without_config_fields(m, old, "contrastive_pair_power")
    assert gm.LearnableMultiModal.load(old).config.contrastive_pair_power == 1.0


@pytest.mark.parametrize("value", [-0.1, 1.5, float("nan"), float("-inf"), "0.5", True, None])
def test_bad_values_name_the_argument(value):
    with pytest.raises((InvalidValueError, TypeError), match="contrastive_pair_power"):
        model(contrastive_pair_power=value)


@pytest.mark.parametrize("value", [-0.1, 1.5, float("nan"), float("-inf")])
def test_the_core_refuses_bad_values_by_itself(value):
    with pytest.raises(InvalidValueError) as err:
        gm._core.Model(8, 16, 1e-3, 2, 10, 0, [6] * 7, contrastive_pair_power=value)
    assert err.value.arg == "contrastive_pair_power"


def test_a_forged_checkpoint_with_a_bad_order_is_a_clean_error(tmp_path):
    path = tmp_path / "m.safetensors"
    save_with_config_fields(model(), path, contrastive_pair_power=2)
    with pytest.raises(gm.CheckpointError, match="contrastive_pair_power"):
        gm.LearnableMultiModal.load(path)
