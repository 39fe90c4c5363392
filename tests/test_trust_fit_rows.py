"""A row that training refuses is named as the user's data numbers it.

The core names a row of the batch it was given ("inputs['visual']: row 2"),
and ``fit`` shuffles its data into batches: the reconstruction objective's
overflow reached the user as the batch's row (18, or 2 with batches of 8,
for the data's row 17), and fitting events or an experience buffer named a
batch row for the encoder's overflow too. And a modality given as several
components pooled their sum before dividing, so two components of 3e38
were reported as an input of "largest magnitude inf".
"""

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal.stopping import fit_with_stopping

ONLY = {"reconstruction": 1.0}
BAD_ROW = 17


def _model() -> gm.LearnableMultiModal:
    return gm.LearnableMultiModal(
        input_dims={"visual": 4, "linguistic": 3}, embed_dim=8, hidden_dim=8, num_heads=2,
        reconstruction_decoders=True, seed=0,
    )


def _arrays(n: int = 40) -> dict:
    rng = np.random.default_rng(0)
    data = {"visual": rng.normal(size=(n, 4)).astype(np.float32), "linguistic": rng.normal(size=(n, 3))}
    data["visual"][BAD_ROW] = 3e19  # its own squares leave float32; its encoding does not
    return data


def _state(model: gm.LearnableMultiModal) -> dict:
    return {k: v.copy() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("batch_size", [None, 8])
def test_fit_names_the_data_row_whose_reconstruction_overflows(batch_size):
    model = _model()
    options = {} if batch_size is None else {"batch_size": batch_size}
    before = _state(model)
    with pytest.raises(gm.NonFiniteError, match=rf"^data\['visual'\]: row {BAD_ROW}: the reconstruction loss overflows") as err:
        model.fit(_arrays(), epochs=1, objectives=ONLY, progress=False, standardize=False, **options)
    assert err.value.arg == "data['visual']"
    after = model.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before), "a failed fit leaves the model as it was"


@pytest.mark.parametrize("seed", [1, 2])  # slices that put row 17 elsewhere in its batch (seed 0 keeps it 17)
def test_fit_with_stopping_names_the_row_of_its_inputs(seed):
    with pytest.raises(gm.NonFiniteError, match=rf"^inputs\['visual'\]: row {BAD_ROW}: the reconstruction loss overflows"):
        fit_with_stopping(_model(), _arrays(), validation_fraction=0.25, patience=2, monitor="val_total", seed=seed,
                          min_validation_rows=2, epochs=1, objectives=ONLY, progress=False, standardize=False)


def _events(values: np.ndarray, components: int = 1) -> list:
    rng = np.random.default_rng(1)
    events = []
    for i in range(12):
        event = gm.MultiModalEvent(100 + i)  # ids that are not the list's indices
        event.add_component(gm.ModalFeatures(rng.normal(size=3), "linguistic"))
        row = values if i == 7 else rng.normal(size=4)
        for _ in range(components if i == 7 else 1):
            event.add_component(gm.ModalFeatures(row, "visual"))
        events.append(event)
    return events


def test_fit_on_events_names_the_event_not_the_batch_row():
    with pytest.raises(gm.NonFiniteError, match=r"^data\[7\]: event 107's visual input: the reconstruction loss overflows"):
        _model().fit(_events(np.full(4, 3e19)), epochs=1, objectives=ONLY, progress=False, standardize=False)


def test_components_whose_sum_leaves_float32_report_their_mean_not_inf():
    events = _events(np.full(4, 3e38), components=2)  # their mean is 3e38, their sum inf
    with pytest.raises(gm.NonFiniteError, match=r"largest magnitude 3\.000e38") as err:
        _model().losses(gm.Batch.from_events(events), weights=ONLY)
    assert "inf" not in str(err.value)


def test_fit_on_an_experience_buffer_names_the_experience():
    model = _model()
    data = _arrays()
    model.record_batch(data, rewards=np.zeros(len(data["visual"])))
    with pytest.raises(gm.NonFiniteError, match=rf"^data: experience {BAD_ROW}'s visual input: the reconstruction loss overflows"):
        model.fit(model.experience, epochs=1, objectives=ONLY, progress=False, batch_size=8, standardize=False)



@pytest.mark.ray
@pytest.mark.timeout(120)
@pytest.mark.parametrize("num_workers", [1, 2])
def test_distributed_fit_names_the_data_row_not_a_worker_share_row(ray_session, num_workers):
    """Each worker computes a share of the batch, and the core named the
    share's row: the second worker's row 3 reached the user as row 3."""
    from grapheme_multimodal import distributed

    with pytest.raises(gm.NonFiniteError, match=rf"^data\['visual'\]: row {BAD_ROW}: the reconstruction loss overflows"):
        # seed 2 puts row 17 in the second worker's share, as its row 3
        distributed.fit(_model(), _arrays(), num_workers=num_workers, epochs=1, batch_size=40, objectives=ONLY,
                        progress=False, standardize=False, seed=2)


def test_fit_with_stopping_given_validation_names_its_inputs_not_fits_data():
    """With ``validation`` given, the refusal named ``data['visual']``, fit's
    argument, not fit_with_stopping's ``inputs`` (as it does without)."""
    data = _arrays()
    data["visual"][BAD_ROW] = np.nan
    clean = {k: v[:8].copy() for k, v in _arrays().items()}
    clean["visual"][:] = 0.5
    with pytest.raises(gm.NonFiniteError, match=rf"^inputs\['visual'\]: .*row {BAD_ROW}") as err:
        fit_with_stopping(_model(), data, validation=clean, validation_fraction=0.1, patience=2, monitor="val_total",
                          seed=1, epochs=1, objectives=ONLY, progress=False, standardize=False)
    assert err.value.arg == "inputs['visual']"


def test_grapheme_mm_train_names_the_file_of_a_row_whose_reconstruction_overflows(tmp_path, capsys):
    """Training's refusal named inputs['visual'], an argument the user of the
    command never saw, where the checks on reading name the file."""
    from grapheme_multimodal.cli import main

    images = np.random.default_rng(0).normal(size=(60, 10)).astype(np.float32)
    images[57] = 3e19
    np.save(tmp_path / "images.npy", images)
    code = main(["train", "-m", f"visual={tmp_path / 'images.npy'}", "-o", str(tmp_path / "m.safetensors"),
                 "--epochs", "1", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith(f"grapheme-mm: error: visual ({tmp_path / 'images.npy'}): row 57: the reconstruction loss overflows"), err
    assert not (tmp_path / "m.safetensors").exists()
