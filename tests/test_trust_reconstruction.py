"""A hostile user's audit of the ``reconstruction`` objective and its options
(``reconstruction_decoders``, ``reconstruction_subsets``): what it turned
up, each test failing before its fix, and the awkward views that held
(last test). What else held (dtypes and layouts, rows with no modality,
forged decoder tensors, checkpoints with and without decoders, pickles,
sklearn clones, threads, Ray workers, the CLI's bad weights) the general
hostile-input, checkpoint and thread tests cover for every objective."""

from __future__ import annotations

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import uci
from grapheme_multimodal.exceptions import InvalidValueError

from conftest import cli_train_args, model_state as state, recorded_buffer as recorded, save_with_config_fields
from conftest import two_view_data as views, two_view_model as model

ONLY = {"reconstruction": 1.0}


def test_reconstruction_on_recorded_embeddings_is_explained():
    """Recorded embeddings hold no inputs to reconstruct: a fit of the
    objective alone ran its epochs on zero gradients and reported success;
    beside others it was 0 every epoch without a word; and a validation loss
    watched on them was 0 every epoch, so early stopping kept the first."""
    m = model(reconstruction_decoders=True)
    buffer = recorded(m, views())
    before = state(m)
    with pytest.raises(InvalidValueError, match=r"^data: recorded embeddings hold no inputs to reconstruct "
                                                r"\(reconstruction is 0 on them\), so nothing would train") as err:
        m.fit(buffer, epochs=1, batch_size=10, objectives=ONLY, progress=False)
    assert err.value.arg == "data" and state(m) == before
    # beside binding, which trains the binder on them (contrastive would train nothing there either:
    # test_trust_neighbors_hidden.py)
    with pytest.warns(UserWarning, match=r"^data: recorded embeddings hold no inputs to reconstruct \(reconstruction is 0 "
                                         r"on them\); only binding will train"):
        history = m.fit(buffer, epochs=1, batch_size=10, objectives={"binding": 1.0, **ONLY}, progress=False)
    assert history["reconstruction"] == [0.0] and history["binding"][0] > 0
    with pytest.raises(InvalidValueError, match=r"^validation: recorded embeddings hold no inputs to reconstruct .*"
                                                r"monitor 'val_reconstruction' would be 0 every epoch .*expected validation "
                                                r"data with inputs") as err:
        m.fit(views(), validation=buffer, epochs=2, batch_size=10, objectives={"contrastive": 1.0, **ONLY},
              monitor="val_reconstruction", early_stopping=1, progress=False)
    assert err.value.arg == "validation"
    # A buffer with the inputs reconstructs them.
    fresh = model(reconstruction_decoders=True)
    fresh.record_batch(views(), rewards=np.zeros(20))
    assert fresh.experience.batch().has_inputs.all()
    with_inputs = fresh.fit(fresh.experience, epochs=1, batch_size=10, objectives=ONLY, progress=False)
    assert with_inputs["reconstruction"][0] > 0


def test_rows_whose_squares_sum_past_float32_are_not_blamed_on_the_parameters():
    """Rows of 4e18 (encoded, unit vectors): each row's squared error fits in
    float32, the batch's sum did not, and the refusal said "the model's
    parameters overflow float32", which were the initial ones."""
    m = model(reconstruction_decoders=True)
    data = views(40)
    data["visual"][:] = 4e18
    loss = m.losses(data, weights=ONLY)["reconstruction"]
    assert np.isfinite(loss) and loss == pytest.approx(0.5 * 16e36, rel=1e-3)  # visual's 40 pairs of the 80, each ~(4e18)²
    assert np.isfinite(m.train_step(data, weights=ONLY)["reconstruction"])
    assert all(np.isfinite(v).all() for v in m.state_dict().values())
    # A row whose own squares leave float32 is still named (test_reconstruction.py).
    data["visual"][7] = 3e19
    with pytest.raises(gm.NonFiniteError, match=r"^inputs\['visual'\]: row 7: the reconstruction loss overflows"):
        m.losses(data, weights=ONLY)


def test_subsets_without_decoders_are_refused_and_old_files_load(tmp_path):
    """reconstruction_subsets shapes the reconstruction objective, which a
    model without decoders refuses: the flag was accepted and did nothing."""
    with pytest.raises(InvalidValueError, match=r"^reconstruction_subsets: got True, but reconstruction_decoders is "
                                                r"False .*expected False, or reconstruction_decoders=True") as err:
        model(reconstruction_subsets=True)
    assert err.value.arg == "reconstruction_subsets"
    assert model(reconstruction_subsets=True, reconstruction_decoders=True).config.reconstruction_subsets is True
    with pytest.raises(InvalidValueError, match="reconstruction_subsets"):
        model(reconstruction_decoders=True, reconstruction_subsets=True).config.replace(reconstruction_decoders=False)
    # The recipe's settings without the objective weighted make no decoders: asking for subsets is refused,
    # by the settings themselves (MultimodalEmbedder and grapheme-mm train have no reconstruction_decoders to set)
    with pytest.raises(InvalidValueError, match="^reconstruction_subsets: got True, but weights gives no reconstruction"):
        uci.TrainingSettings(reconstruction_subsets=True, weights={"contrastive": 1.0})
    # A file saved with the pair, before it was refused, loads: the same model, the flag off.
    m = model()
    m.train_step(views(), weights={"contrastive": 1.0})
    path = tmp_path / "m.safetensors"
    save_with_config_fields(m, path, reconstruction_subsets=True)
    loaded = gm.LearnableMultiModal.load(path)
    assert loaded.config == m.config and loaded.config.reconstruction_subsets is False
    assert all(v.tobytes() == m.state_dict()[k].tobytes() for k, v in loaded.state_dict().items())
    saved = {**m.config.to_dict(), "reconstruction_subsets": True}  # a config saved as a dict, read back
    assert gm.LearnableMultiModalConfig.from_dict(saved) == m.config


def test_settings_that_weigh_reconstruction_without_decoders_are_refused_by_their_name():
    """TrainingSettings(reconstruction_decoders=False) with the recipe's
    objectives (which weigh reconstruction) was accepted, and train refused
    it naming fit's `objectives`, an argument these settings do not have."""
    with pytest.raises(InvalidValueError, match=r"^reconstruction_decoders: got False, but the recipe's objectives "
                                                r"\(weights=None\) give reconstruction weight 1\.0") as err:
        uci.TrainingSettings(reconstruction_decoders=False)
    assert err.value.arg == "reconstruction_decoders"
    with pytest.raises(InvalidValueError, match=r"^reconstruction_decoders: got False, but weights gives reconstruction "
                                                r"weight 0\.5.*expected None or True, or weights with reconstruction 0"):
        uci.TrainingSettings(reconstruction_decoders=False, weights={"contrastive": 1.0, "reconstruction": 0.5})
    plain = uci.TrainingSettings(reconstruction_decoders=False, weights={"contrastive": 1.0, "reconstruction": 0.0})
    assert plain.model_options()["reconstruction_decoders"] is False


def test_weights_beyond_float32_are_named_by_the_caller_s_argument(tmp_path, capsys):
    """A weight of 1e39 is finite in Python and refused by the core, which
    named its own argument `weights`: fit's is `objectives`, the CLI's
    `--objectives`, the estimator's `objectives`."""
    from grapheme_multimodal.cli import main
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    m = model(reconstruction_decoders=True)
    before = state(m)
    with pytest.raises(InvalidValueError, match=r"^objectives\['reconstruction'\]: expected a finite number >= 0 that "
                                                r"float32 holds, got 1e\+39") as err:
        m.fit(views(), epochs=1, objectives={"contrastive": 1.0, "reconstruction": 1e39}, progress=False)
    assert err.value.arg == "objectives" and state(m) == before
    with pytest.raises(InvalidValueError, match=r"^weights\['reconstruction'\]: .*float32 holds"):
        m.train_step(views(), weights={"reconstruction": 1e39})
    assert state(m) == before
    with pytest.raises(InvalidValueError, match=r"^weights\['reconstruction'\]: .*float32 holds"):
        uci.TrainingSettings(weights={"reconstruction": 1e39})
    with pytest.raises(InvalidValueError, match=r"^objectives\['reconstruction'\]: .*float32 holds"):
        MultimodalEmbedder(embed_dim=8, epochs=1, objectives={"reconstruction": 1e39}).fit(list(views(40).values()))
    argv = cli_train_args(tmp_path, views(40), tmp_path / "m.safetensors")
    assert main(argv + ["--objectives", "contrastive=1,reconstruction=1e39"]) == 2
    err = capsys.readouterr().err
    assert "--objectives['reconstruction']: expected a finite number >= 0 that float32 holds" in err, err
    assert not (tmp_path / "m.safetensors").exists()
    # The largest float32 is taken.
    assert uci.TrainingSettings(weights={"reconstruction": float(np.finfo(np.float32).max)}).objectives["reconstruction"] > 0


def _one_modality(data):
    return {"visual": data["visual"]}, None


def _width_one(data):
    return {"visual": data["visual"][:, :1], "auditory": data["auditory"][:, :1]}, None


def _constant_columns(data):
    data["visual"][:, 2] = 5.0  # one column, and a whole view: zero std after standardisation
    data["auditory"][:] = 3.0
    return data, None


def _huge_and_tiny(data):
    data["visual"] *= 1e30
    data["auditory"] *= 1e-30
    return data, None


def _a_modality_in_no_row(data):
    mask = np.zeros((len(data["visual"]), 7), bool)
    mask[:, 0] = True
    return data, mask


@pytest.mark.parametrize("shape", [_one_modality, _width_one, _constant_columns, _huge_and_tiny, _a_modality_in_no_row])
def test_awkward_views_train_to_finite_losses(shape):
    """Inputs a hostile user tries, held before this audit: fit (which
    standardises) trains the decoders on them to finite losses and weights."""
    data, mask = shape(views(24))
    m = gm.LearnableMultiModal(embed_dim=8, hidden_dim=16, num_heads=2, seed=3, reconstruction_decoders=True,
                               reconstruction_subsets=True, input_dims={v: x.shape[1] for v, x in data.items()})
    history = m.fit(data, mask=mask, epochs=2, batch_size=12, objectives={"fused_contrastive": 1.0, **ONLY}, progress=False)
    assert all(np.isfinite(r["reconstruction"]) and r["reconstruction"] > 0 for r in history.epochs)
    assert all(np.isfinite(v).all() for v in m.state_dict().values())
    batch = data if mask is None else gm.Batch(inputs=data, mask=mask)
    assert np.isfinite(m.losses(batch, weights=ONLY)["reconstruction"])
