"""Numerically hostile but legal input (session 59): values at the edges
of float32 must give a clear error naming the argument, or the right
answer; never a silent wrong one."""

import warnings

import numpy as np
import pytest

import grapheme_multimodal as gm

SMALL_MODEL = dict(embed_dim=8, hidden_dim=8, num_heads=2, seed=0)
DIMS = {"visual": 4, "auditory": 3}


def _state(model: gm.LearnableMultiModal) -> dict:
    return {k: v.copy() for k, v in model.state_dict().items()}


def _same_state(model: gm.LearnableMultiModal, before: dict) -> bool:
    after = model.state_dict()
    return after.keys() == before.keys() and all(np.array_equal(after[k], v) for k, v in before.items())


def _data_with_tiny_spread(n: int = 40) -> dict:
    rng = np.random.default_rng(0)
    data = {"visual": rng.normal(size=(n, 4)), "auditory": rng.normal(size=(n, 3))}
    data["visual"][:, 0] = rng.uniform(1.2e-38, 3e-38, size=n)  # normal float32 values, std ~5e-39
    return data


def test_a_column_varying_below_float32_s_smallest_std_is_refused_not_ignored() -> None:
    """A column of values 1.2e-38..3e-38 (each a normal float32) has a std
    of ~5e-39, below float32's smallest normal number: ``fit`` gave it the
    constant column's std 1, so it reached the model as a constant and the
    view trained without it, without a word (shuffling the column changed
    no embedding). Now refused, naming the column as each caller names the
    data, and the model is left as it was."""
    data = _data_with_tiny_spread()
    model = gm.LearnableMultiModal(input_dims=DIMS, **SMALL_MODEL)
    before = _state(model)
    with pytest.raises(gm.InvalidValueError, match=r"^data\['visual'\]: column 0's values vary, but by a standard "
                       r"deviation below float32's smallest normal number") as err:
        model.fit(data, epochs=1, progress=False)
    assert err.value.arg == "data['visual']"
    assert _same_state(model, before) and model.epochs_trained == 0 and model.normalization("visual") is None
    with pytest.raises(gm.InvalidValueError, match=r"^inputs\['visual'\]: column 0's values vary") as err:
        model.fit_normalization(data)
    assert err.value.arg == "inputs['visual']" and model.normalization("visual") is None


def test_the_estimator_names_the_view_of_a_column_varying_below_float32_s_smallest_std() -> None:
    """The same column in ``MultimodalEmbedder.fit``: its view was trained
    without it, without a word; now refused naming ``Xs[1]``."""
    pytest.importorskip("sklearn")
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    data = _data_with_tiny_spread()
    with pytest.raises(gm.InvalidValueError, match=r"^Xs\[1\]: column 0's values vary") as err:
        MultimodalEmbedder(epochs=1, patience=0, embed_dim=8, hidden_dim=8, num_heads=2).fit(
            [data["auditory"], data["visual"]])
    assert err.value.arg == "Xs[1]"


@pytest.mark.parametrize("value", [1.5e-38, 1e-25, 3e-20])
def test_a_constant_tiny_column_and_a_varying_1e_30_column_are_standardised_as_before(value: float) -> None:
    """Not refused: a column constant in float32 (its float64 std only the
    mean's rounding) gets std 1, and tiny values that vary by a normal std
    are standardised like any other column."""
    data = _data_with_tiny_spread()
    data["visual"][:, 0] = value
    model = gm.LearnableMultiModal(input_dims=DIMS, **SMALL_MODEL)
    model.fit_normalization(data)
    assert model.normalization("visual")[1][0] == 1.0
    data["visual"][:, 0] = np.random.default_rng(1).uniform(1e-30, 3e-30, size=len(data["visual"]))
    model.fit_normalization(data)
    std = model.normalization("visual")[1][0]
    assert 1e-31 < std < 1e-30
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the column's float64 precision: warned of elsewhere
        model.fit(data, epochs=1, progress=False)
    assert np.isfinite(model.encode(data)).all()


@pytest.mark.parametrize("split", [dict(validation_fraction=0.2), dict(validation_fraction=0.2, cv_folds=3),
                                   dict(validation_fraction=0.0)])
def test_fit_with_stopping_names_its_own_argument_for_a_column_varying_below_float32_s_smallest_std(split) -> None:
    """Refused by the fit of a held-out slice or of a fold, the column was
    named ``data['visual']``, an argument fit_with_stopping has not; now
    ``inputs['visual']`` whichever way it splits."""
    from grapheme_multimodal.stopping import fit_with_stopping

    model = gm.LearnableMultiModal(input_dims=DIMS, **SMALL_MODEL)
    with pytest.raises(gm.InvalidValueError, match=r"^inputs\['visual'\]: column 0's values vary") as err:
        fit_with_stopping(model, _data_with_tiny_spread(), epochs=2, patience=1, monitor="val_total", progress=False,
                          **split)
    assert err.value.arg == "inputs['visual']" and model.epochs_trained == 0


def test_the_command_line_names_the_file_of_a_column_varying_below_float32_s_smallest_std(tmp_path, capsys,
                                                                                           monkeypatch) -> None:
    """``grapheme-mm train`` trained on, ignoring the column without a word;
    now it refuses it by the modality's file."""
    from grapheme_multimodal.cli import main

    monkeypatch.chdir(tmp_path)
    data = _data_with_tiny_spread()
    np.savetxt("v.csv", data["visual"], delimiter=",")
    np.savetxt("a.csv", data["auditory"], delimiter=",")
    argv = ["train", "-m", "visual=v.csv", "-m", "auditory=a.csv", "--epochs", "2", "--embed-dim", "8", "--hidden-dim",
            "8", "--heads", "2", "--no-progress", "-o", "m.safetensors"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("grapheme-mm: error: visual (v.csv): column 0's values vary, but by a standard deviation "
                          "below float32's smallest normal number"), err
    assert not (tmp_path / "m.safetensors").exists()


def test_embed_names_the_file_and_its_row_of_a_row_that_overflows_the_encoder(tmp_path, capsys, monkeypatch) -> None:
    """``grapheme-mm embed --batch-size 2`` of a CSV whose row 3 overflows
    float32 in the encoder said "inputs['visual']: row 1 overflows ...":
    the row numbered within its chunk of 2 rows (so also past 65,536 rows
    without the flag), under a Python argument the user never saw. Now the
    file and the row of it, as reading names a row it refuses; nothing is
    written."""
    from grapheme_multimodal.cli import main

    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    np.savetxt("v.csv", rng.normal(size=(40, 3)), delimiter=",")
    np.savetxt("a.csv", rng.normal(size=(40, 2)), delimiter=",")
    assert main(["train", "-m", "visual=v.csv", "-m", "auditory=a.csv", "--epochs", "1", "--embed-dim", "8",
                 "--hidden-dim", "8", "--heads", "2", "--no-progress", "-o", "m.safetensors"]) == 0
    hostile = rng.normal(size=(6, 3))
    hostile[3, 1] = 3e38  # float32 holds it; standardised and through the encoder it overflows
    np.savetxt("hv.csv", hostile, delimiter=",")
    np.savetxt("ha.csv", rng.normal(size=(6, 2)), delimiter=",")
    capsys.readouterr()
    for chunk in (["--batch-size", "2"], []):
        assert main(["embed", "m.safetensors", "-m", "visual=hv.csv", "-m", "auditory=ha.csv", "-o", "e.npy",
                     *chunk]) == 2
        err = capsys.readouterr().err
        assert err.startswith("grapheme-mm: error: visual (hv.csv): row 3 overflows float32 in the encoder"), err
        assert not (tmp_path / "e.npy").exists()


def test_transform_names_the_caller_s_row_of_a_row_that_overflows_past_one_call_s_rows() -> None:
    """``MultimodalEmbedder.transform`` of 70,000 rows (more than the
    65,536 of one model call) whose row 66,000 overflows float32 in the
    encoder said "Xs[0]: row 464 ...": the row's place in its chunk. Now the
    caller's row."""
    pytest.importorskip("sklearn")
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    rng = np.random.default_rng(0)
    est = MultimodalEmbedder(epochs=1, patience=0, embed_dim=8, hidden_dim=8, num_heads=2, encoder_hidden=(),
                             encoder_output_dim=None).fit([rng.normal(size=(40, 3)), rng.normal(size=(40, 2))])
    n = 70_000
    first = rng.normal(size=(n, 3)).astype(np.float32)
    first[66_000, 1] = 3e38
    with pytest.raises(gm.NonFiniteError, match=r"^Xs\[0\]: row 66000 overflows float32 in the encoder") as err:
        est.transform([first, np.zeros((n, 2), np.float32)])
    assert err.value.arg == "Xs[0]"


def _long_double_levels(step: str, count: int) -> np.ndarray:
    one, d = np.longdouble(1), np.longdouble(step)
    return np.array([one + i * d for i in range(count)])


@pytest.mark.skipif(np.finfo(np.longdouble).eps >= 1e-18, reason="long double is float64 on this platform")
def test_a_long_double_sequence_whose_levels_float64_merges_keeps_its_levels() -> None:
    """``Graph.from_sequence`` of long doubles 1, 1 + 1e-18, 1 + 2e-18
    (distinct in long double, one float64): their spread was taken in
    float64 (0), so they were not shifted to start at 0 before the float32
    cast, which made them one value, and every activation was 0, as for a
    constant sequence. Now 0, 0.5, 1; so does ``from_image`` keep them."""
    from grapheme_multimodal.graph import Graph

    np.testing.assert_allclose(Graph.from_sequence(_long_double_levels("1e-18", 3)).activations, [0.0, 0.5, 1.0])
    image = Graph.from_image(_long_double_levels("1e-18", 4).reshape(2, 2)).activations
    assert image[0] == 0.0 and image[-1] == 1.0 and np.all(np.diff(image) > 0)
    np.testing.assert_array_equal(Graph.from_sequence(np.array([1.0, 1.0, 1.0])).activations, 0.0)  # constant: 0


@pytest.mark.skipif(np.finfo(np.longdouble).tiny >= np.longdouble("1e-4000"),
                    reason="long double is float64 on this platform")
def test_long_double_values_below_float32_s_range_are_shown_as_given() -> None:
    """Long doubles of about 1e-4000 were refused as "its values are at most
    0 in magnitude": float() of them is 0, a value the caller never gave.
    Now their own digits."""
    from grapheme_multimodal.graph import Graph

    tiny = np.array([[1, 2], [3, 4]], np.longdouble) * np.longdouble("1e-4000")
    with pytest.raises(gm.InvalidValueError, match=r"^image: its values are at most 4e-4000 in magnitude, below "
                       r"float32's smallest normal number") as err:
        Graph.from_image(tiny)
    assert err.value.arg == "image"


@pytest.mark.ray
@pytest.mark.timeout(120)
@pytest.mark.usefixtures("ray_session")
def test_embed_dataset_names_a_row_that_overflows_the_encoder_by_its_batch_and_other_columns(monkeypatch) -> None:
    """A row whose encoding overflows float32 was named "column 'img'
    (visual): row 9 overflows float32 in the encoder": its place in its
    batch of 16, which Ray Data does not number, so the user looked at the
    dataset's row 9 for its row 57. Now said as a row holding NaN is: the
    row of a batch, identified by its other columns."""
    import gc
    import logging

    pytest.importorskip("ray", reason='needs Ray: pip install -e ".[test]"')
    import pyarrow as pa
    import ray.data

    from grapheme_multimodal import distributed
    from grapheme_multimodal.cli import _RAY_DATA_ERROR_LOGGERS

    for name in _RAY_DATA_ERROR_LOGGERS:  # pytest keeps their records, whose tracebacks would keep the pool alive
        monkeypatch.setattr(logging.getLogger(name), "disabled", True)
    model = gm.LearnableMultiModal(input_dims={"visual": 20}, **SMALL_MODEL)
    model.set_normalization("visual", np.zeros(20), np.full(20, 1e-10))
    img = np.random.default_rng(0).standard_normal((100, 20)).astype(np.float32)
    img[57, 4] = 1e30  # float32 holds it; standardised (1e40) it overflows
    ds = ray.data.from_arrow(pa.table({"id": np.arange(100), "img": pa.array(list(img), type=pa.list_(pa.float32()))}))
    out = distributed.embed_dataset(ds, model, {"visual": "img"}, batch_size=16, num_actors=1)
    with pytest.raises(gm.NonFiniteError) as info:
        out.materialize()
    error = info.value.cause if hasattr(info.value, "cause") else info.value
    assert str(error).startswith("column 'img' (visual): a row of a batch of 16 (its row 9; Ray Data does not number "
                                 "the dataset's rows), whose other columns are {'id': 57}, overflows float32 in the "
                                 "encoder"), str(error)
    assert error.arg == "img"
    del info, error
    gc.collect()  # a failed Ray Data run frees its actor pool when its reference cycles are collected


def test_exact_cca_with_a_ridge_that_underflows_warns_of_nothing() -> None:
    """``ExactCCA(reg=5e-324)`` (a positive reg, as checked) of a view with
    a duplicated column: the ridge of its null direction underflowed to 0
    and numpy's "divide by zero encountered in divide" RuntimeWarning
    leaked (an error under ``-W error``), though that direction is zeroed.
    Now silent, with the scores as before."""
    from grapheme_multimodal.evaluation import ExactCCA

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(30, 5)), rng.normal(size=(30, 4))
    doubled = np.c_[x, x]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = ExactCCA(2, reg=5e-324).fit(doubled, y).transform(doubled, y)
    assert all(np.isfinite(s).all() for s in scores)
    plain = ExactCCA(2, reg=1e-300).fit(doubled, y).transform(doubled, y)
    for got, want in zip(scores, plain):
        np.testing.assert_allclose(got, want, rtol=1e-9)


def _recorded_batch(rewards: np.ndarray, e: int = 4) -> gm.Batch:
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(len(rewards), 7, e))
    emb /= np.linalg.norm(emb, axis=2, keepdims=True)
    return gm.Batch(embeddings=emb, mask=np.ones((len(rewards), 7), bool), fused=emb[:, 0], rewards=rewards)


def test_rewards_that_overflow_the_gradients_are_named_and_the_model_is_left_as_it_was() -> None:
    """A recorded batch with a reward of 3e38 (float32 holds it): its
    seed_consistency loss is finite, but ``train_step`` and ``backward``
    refused it as "gradients: contains a non-finite value ... (the loss is
    ill-conditioned for this batch)", an argument nobody passed. Now the
    rewards are named (the same batch with rewards in [0, 1] trains), and
    the model, its accumulated gradients and its draw counter are as they
    were."""
    rewards = np.array([3e38, -3e38, 0.0, 1.0, 0.5, 0.2])
    model = gm.LearnableMultiModal(embed_dim=4, hidden_dim=8, num_heads=2, seed=0)
    moderate = _recorded_batch(np.clip(rewards, 0, 1))
    model.backward(moderate)  # gradients accumulated before: kept
    grads, optimizer, before = model.gradients(), model.optimizer_state(), _state(model)
    for call in (lambda: model.backward(_recorded_batch(rewards)), lambda: model.train_step(_recorded_batch(rewards))):
        with pytest.raises(gm.NonFiniteError, match=r"^rewards: the gradients of this batch are not finite: "
                           r"seed_consistency scales each row's term by \(1 - reward\)") as err:
            call()
        assert err.value.arg == "rewards"
        assert _same_state(model, before) and model.has_gradients()
        assert all(np.array_equal(g, grads[k]) for k, g in model.gradients().items())
        after = model.optimizer_state()
        assert after["step"] == optimizer["step"] and after["rng_counter"] == optimizer["rng_counter"]
    model.train_step(moderate)  # the rewards alone were the cause


def test_fit_on_a_buffer_of_overflowing_rewards_names_them_and_trains_nothing() -> None:
    """``fit`` on an experience buffer holding a reward of 3e38 stopped with
    "gradients: ... (the loss is ill-conditioned for this batch)"; now it
    names the rewards, and the model is as it was."""
    rewards = np.array([3e38, -3e38, 0.0, 1.0, 2.0, 3.0])
    batch = _recorded_batch(rewards)
    buffer = gm.ExperienceBuffer(100, embed_dim=4, seed=0)
    buffer.extend(batch.embeddings, batch.mask, batch.fused, np.zeros((len(rewards), 7, 7)), rewards)
    model = gm.LearnableMultiModal(embed_dim=4, hidden_dim=8, num_heads=2, seed=0)
    before = _state(model)
    with pytest.raises(gm.NonFiniteError, match=r"^rewards: the gradients of this batch are not finite") as err:
        model.fit(buffer, epochs=2, progress=False)
    assert err.value.arg == "rewards"
    assert _same_state(model, before) and model.epochs_trained == 0 and not model.has_gradients()
