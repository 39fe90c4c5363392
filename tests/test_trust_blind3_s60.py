"""A hostile review (s60, blind) by a reinforcement-learning user who
records experience and trains from it, and a PyTorch user who writes the
training loop by hand. Each test says what the user saw before the fix."""

import warnings

import numpy as np
import pytest

import grapheme_multimodal as gm

from conftest import holding_embeddings

LINGUISTIC = gm.Modality.LINGUISTIC.index


def small_model(**overrides) -> gm.LearnableMultiModal:
    settings = dict(embed_dim=8, hidden_dim=16, seed=0, buffer_size=2)
    settings.update(overrides)
    return gm.LearnableMultiModal(**settings)


def two_views(rows: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {"visual": rng.normal(size=(rows, 18)), "linguistic": rng.normal(size=(rows, 18))}


def only_rows_without_a_modality(model: gm.LearnableMultiModal) -> None:
    """Records four rows, the last two (which the buffer of 2 keeps) holding
    no modality: a sensor that dropped out, as ``record_batch`` takes it."""
    mask = np.zeros((4, 7), dtype=bool)
    mask[:2, 0] = mask[:2, LINGUISTIC] = True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gm.UntrainedModalityWarning)
        model.record_batch(two_views(4), mask, 0.5)


def test_compute_loss_of_a_buffer_whose_experiences_hold_no_modality_is_0_as_for_an_empty_one():
    """``record_batch`` records a row that holds no modality, and
    ``seed_consistency`` passes over such rows. Once the ring held only
    such rows, ``compute_loss()`` (no arguments) raised ``InvalidValueError:
    batch: no row holds a modality``, naming an argument the caller never
    gave, where its docstring promises 0 for a buffer with nothing to
    compare: a monitoring loop that calls it after every record crashed.
    Now it is 0.0, as for an empty buffer, and the buffer is left as it was."""
    model = small_model()
    only_rows_without_a_modality(model)
    assert len(model.experience) == 2 and not model.experience.batch().mask.any()
    before = model.experience.state()
    assert model.compute_loss() == 0.0
    after = model.experience.state()
    assert after[1] == before[1]
    assert all(np.array_equal(before[0][k], after[0][k], equal_nan=True) for k in before[0])


def test_compute_loss_still_averages_over_the_experiences_that_hold_a_modality():
    """The fix above only covers a buffer in which no row holds a modality:
    one that holds some still gives their mean, the rows without any passed over."""
    model = small_model(buffer_size=4)
    only_rows_without_a_modality(model)  # two rows with two modalities, two with none
    present = model.experience.batch([0, 1])
    expected = model.losses(gm.Batch.from_experiences(present), weights={"seed_consistency": 1.0})["seed_consistency"]
    assert model.compute_loss() == pytest.approx(expected, rel=1e-6, abs=1e-12)


def buffer_with_one_stretched_embedding(stretched_row: int) -> gm.ExperienceBuffer:
    """Eight experiences of unit embeddings (embeddings only, as a buffer
    filled by ``extend`` from another source), one of them 3 long (as a file
    written before ``extend`` refused such embeddings holds them)."""
    rng = np.random.default_rng(1)
    rows = 8
    mask = np.zeros((rows, 7), dtype=bool)
    mask[:, :2] = True
    embeddings = rng.normal(size=(rows, 7, 8))
    embeddings /= np.linalg.norm(embeddings, axis=-1, keepdims=True)
    stretched = embeddings.copy()
    stretched[stretched_row, 1] *= 3.0
    fused = rng.normal(size=(rows, 8))
    fused /= np.linalg.norm(fused, axis=-1, keepdims=True)
    buffer = gm.ExperienceBuffer(rows, seed=0)
    buffer.extend(embeddings, mask, fused, np.full((rows, 7, 7), 0.5), np.zeros(rows))
    return holding_embeddings(buffer, stretched)


def test_fit_on_a_buffer_of_a_non_unit_embedding_names_data_and_that_experience():
    """A buffer loaded from an older file may hold any finite vectors (its files all load); training on
    them is refused. ``fit(buffer)`` refused the batch after shuffling it:
    "embeddings: row 0's auditory embedding ... has norm 3", naming an
    argument fit has not and the row of a shuffled batch, while the
    stretched vector was experience 5 (the user looked at the wrong one).
    Now it names ``data`` and experience 5, before any step, and the model
    is as it was."""
    model = small_model()
    before = model.state_dict()
    with pytest.raises(gm.InvalidValueError, match=r"^data: experience 5's auditory embedding has norm 3 ") as err:
        model.fit(buffer_with_one_stretched_embedding(5), epochs=2, batch_size=4, progress=False)
    assert err.value.arg == "data"
    assert model.epochs_trained == 0
    assert all(np.array_equal(before[k], v) for k, v in model.state_dict().items())


def test_fit_validated_on_such_a_buffer_names_validation():
    """The same buffer as ``validation``: refused naming ``validation`` (not
    ``embeddings``) and its experience 5."""
    model = small_model()
    with pytest.raises(gm.InvalidValueError, match=r"^validation: experience 5's auditory embedding has norm 3 "):
        model.fit(two_views(8), validation=buffer_with_one_stretched_embedding(5), epochs=1, progress=False)
    assert model.epochs_trained == 0


def test_compute_loss_of_such_a_buffer_names_the_experience_buffer():
    """``compute_loss()`` takes no argument: its refusal named ``embeddings``.
    Now it names ``experience`` (``model.experience``) and the experience."""
    model = small_model()
    model.experience = buffer_with_one_stretched_embedding(6)
    with pytest.raises(gm.InvalidValueError, match=r"^experience: experience 6's auditory embedding has norm 3 ") as err:
        model.compute_loss()
    assert err.value.arg == "experience"


def test_an_optimizer_state_saved_with_np_savez_loads_as_it_was_saved(tmp_path):
    """A state flattened for ``np.savez`` (or safetensors) gives back ``step``
    and ``rng_counter`` as 0-d integer arrays: ``load_optimizer_state`` refused
    them ("state['step']: expected an int ..., got array of shape ()"), so a
    state saved that way did not load. Taken as the ints they hold now, the
    model continuing bit for bit as from the state itself; a 0-d float or
    bool array is still refused."""
    x = {"visual": np.random.default_rng(0).normal(size=(16, 6)).astype(np.float32)}
    model = gm.LearnableMultiModal(embed_dim=8, hidden_dim=8, num_heads=2, seed=0, input_dims={"visual": 6})
    model.fit(x, epochs=2, batch_size=8, progress=False)
    state = model.optimizer_state()
    # the counts through an .npz, as a state flattened for np.savez (or safetensors) gives them back
    np.savez(tmp_path / "counts.npz", step=state["step"], rng_counter=state["rng_counter"])
    with np.load(tmp_path / "counts.npz") as saved:
        state = {**state, "step": saved["step"], "rng_counter": saved["rng_counter"]}
    assert state["step"].shape == () and state["step"].dtype.kind == "i"
    twin = gm.LearnableMultiModal(embed_dim=8, hidden_dim=8, num_heads=2, seed=0, input_dims={"visual": 6})
    twin.load_state_dict(model.state_dict())
    twin.load_optimizer_state(state)
    assert twin.optimizer_state()["step"] == model.optimizer_state()["step"]
    for m in (model, twin):
        m.train_step({"visual": x["visual"][:8]})
    assert all(a.tobytes() == b.tobytes() for a, b in zip(model.state_dict().values(), twin.state_dict().values()))
    for bad in (np.array(2.0), np.array(True)):
        with pytest.raises((TypeError, ValueError), match=r"^state\['step'\]"):
            twin.load_optimizer_state({**state, "step": bad})
