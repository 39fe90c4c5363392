"""Small defects the day's audits noted and left: a buffer's size beyond its
capacity named neither; flags of the command line that applied to no file
given; an empty list for a modality; bool scores in roc_auc; the
estimator's one-row warning; fit's NaN note for callers with no mask."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import metrics, training
from grapheme_multimodal.buffer import FILE_FORMAT as BUFFER_FORMAT
from grapheme_multimodal.checkpoint import FILE_FORMAT as CHECKPOINT_FORMAT
from grapheme_multimodal.cli import main
from grapheme_multimodal.io import read_tagged_safetensors, write_tagged_safetensors


def _recorded_model() -> gm.LearnableMultiModal:
    model = gm.LearnableMultiModal(input_dims={"visual": 5, "auditory": 3}, embed_dim=8, hidden_dim=8, num_heads=2, seed=0,
                                   buffer_size=10)
    rng = np.random.default_rng(0)
    model.record_batch({"visual": rng.normal(size=(4, 5)), "auditory": rng.normal(size=(4, 3))})
    return model


def _forged(path, fmt: str, change) -> None:
    tensors, meta = read_tagged_safetensors(path, fmt)
    change(meta)
    write_tagged_safetensors(path, tensors, fmt, meta)


# ------------------------------------------------------------------ 1. a buffer's size beyond its capacity
def test_a_buffer_size_beyond_its_capacity_names_the_field_and_the_capacity(tmp_path) -> None:
    """Was "size: expected an int in [0, capacity], got 20": neither which
    size (a checkpoint's config has sizes too) nor the capacity's value."""
    model = _recorded_model()
    path = tmp_path / "m.safetensors"
    model.save(path)
    _forged(path, CHECKPOINT_FORMAT, lambda meta: meta["experience"].update(size=20))
    with pytest.raises(gm.CheckpointError) as err:
        gm.LearnableMultiModal.load(path)
    assert str(err.value).endswith(
        "experience.size: expected the number of experiences the buffer holds, an int in [0, 10] "
        "(its experience.capacity), got 20")
    path = tmp_path / "b.safetensors"
    model.experience.save(path)
    _forged(path, BUFFER_FORMAT, lambda meta: meta.update(size=-1))
    for load in (gm.ExperienceBuffer.from_file, model.experience.load):
        with pytest.raises(gm.CheckpointError) as err:
            load(path)
        assert str(err.value).endswith(
            "size: expected the number of experiences the buffer holds, an int in [0, 10] (its capacity), got -1")
    assert len(model.experience) == 4  # the failed load left it as it was
    tensors, meta = model.experience.state()
    with pytest.raises(gm.InvalidValueError, match=r"size: expected the number of experiences the buffer holds, an int "
                                                   r"in \[0, 10\] \(its capacity\), got 11\)$"):
        gm.ExperienceBuffer.from_state(tensors, {**meta, "size": 11})


# ------------------------------------------------------------------ 2. flags that apply to no file given
@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "a.npy", rng.normal(size=(12, 5)).astype(np.float32))
    (tmp_path / "t.txt").write_text("".join(f"word{i} thing {i % 3}\n" for i in range(12)))
    return tmp_path


@pytest.mark.parametrize("flags, line", [
    (["--text-features", "fingerprint"],
     "--text-features: no modality file is .txt, so no text features are made; got --text-features fingerprint"),
    (["--text-features", "wl"], "--text-features: no modality file is .txt, so no text features are made; got --text-features wl"),
    (["--csv-header"], "--csv-header: no modality file is .csv, so it has no effect (it applies to .csv files only)"),
    (["--no-csv-header"], "--no-csv-header: no modality file is .csv, so it has no effect (it applies to .csv files only)"),
])
def test_a_flag_for_files_of_a_kind_not_given_is_refused_as_wl_dim_is(files, capsys, flags, line) -> None:
    """--text-features without a .txt file did nothing without a word, and
    --csv-header without a .csv file only warned, while --wl-dim without a
    .txt file is refused: one line, exit 2, nothing written."""
    out = files / "m.safetensors"
    code = main(["train", "-m", f"visual={files / 'a.npy'}", *flags, "-o", str(out), "--epochs", "1", "--no-progress"])
    assert (code, capsys.readouterr().err) == (2, f"grapheme-mm: error: {line}\n")
    assert not out.exists()


def test_text_features_with_a_text_file_is_taken(files, capsys) -> None:
    out = files / "m.safetensors"
    code = main(["train", "-m", f"visual={files / 'a.npy'}", "-m", f"linguistic={files / 't.txt'}", "--text-features",
                 "fingerprint", "-o", str(out), "--epochs", "1", "--embed-dim", "8", "--hidden-dim", "8", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    assert gm.LearnableMultiModal.load(out).config.graph_features[gm.Modality.LINGUISTIC.index].kind == "fingerprint"


# ------------------------------------------------------------------ 3. an empty list for a modality
def test_an_empty_list_for_a_modality_is_zero_rows() -> None:
    """``encode({"linguistic": []})`` (no graphs) was a ShapeError about
    shape (0,), while a (0, d) array and ``GraphFeaturizer()([])`` are zero rows."""
    model = gm.LearnableMultiModal(input_dims={"visual": 5, "linguistic": 18}, embed_dim=8, hidden_dim=8, num_heads=2, seed=0)
    for inputs in ({"linguistic": []}, {"linguistic": ()}, {"visual": []}, {"visual": np.zeros((0, 5)), "linguistic": []}):
        assert model.encode(inputs).shape == (0, 7, 8)
        emb, fused = model.encode_and_fuse(inputs)
        assert emb.shape == (0, 7, 8) and fused.shape == (0, 8)
    assert model.encode({"linguistic": []}, mask=np.zeros((0, 7), bool)).shape == (0, 7, 8)
    # beside rows of another modality: the row counts' error, as for a (0, d) array
    with pytest.raises(gm.ShapeError, match=r"different numbers of rows \[0, 3\]"):
        model.encode({"linguistic": [], "visual": np.zeros((3, 5))})


# ------------------------------------------------------------------ 4. bool scores in roc_auc
def test_roc_auc_takes_bool_scores_as_roc_auc_score_does() -> None:
    """Were refused ("expected real numbers, got dtype bool"), though the
    docstring says it equals roc_auc_score, which ranks True above False."""
    pos, neg = np.array([True, False, True]), np.array([False, False, True, True])
    # wins: each True positive beats 2 negatives and ties 2; the False one ties 2: (2*(2 + 1) + 1) / 12
    assert metrics.roc_auc(pos, neg) == pytest.approx(7 / 12)
    assert metrics.roc_auc(pos, neg) == metrics.roc_auc(pos.astype(int), neg.astype(float))
    assert metrics.roc_auc([True], [False]) == 1.0 and metrics.roc_auc(pos[::2], neg) == 0.75  # lists, strided
    with pytest.raises(TypeError, match=r"^positive_scores: expected real numbers, got complex dtype complex128$"):
        metrics.roc_auc(np.array([1j]), neg)


# ------------------------------------------------------------------ 5. the estimator's warnings
def test_the_estimators_one_row_warning_names_xs_at_the_callers_line() -> None:
    """Said "data: 1 row; ..." (fit's argument), from a line of stopping.py;
    a constant view was named inputs['auditory'], fit_with_stopping's name;
    and early stopping's warning said "of 1 rows"."""
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    small = dict(embed_dim=8, hidden_dim=8, num_heads=2, encoder_hidden=(8,), encoder_output_dim=8, epochs=1)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        MultimodalEmbedder(standardize=False, **small).fit([np.ones((1, 3)), np.zeros((1, 2))])
    one_row = [w for w in seen if "will train" in str(w.message)]
    assert len(one_row) == 1 and one_row[0].filename == __file__, [(w.filename, str(w.message)) for w in seen]
    assert str(one_row[0].message).startswith("Xs: 1 row; contrastive, binding, fused_contrastive tell the rows")
    skipped = [w for w in seen if issubclass(w.category, gm.EarlyStoppingSkippedWarning)]
    assert str(skipped[0].message).startswith("validation_fraction: 0.1 of 1 row holds out 0, leaving 1")
    rng = np.random.default_rng(0)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        MultimodalEmbedder(n_members=2, patience=0, **small).fit([rng.normal(size=(10, 3)), np.ones((10, 2))])
    constant = [w for w in seen if issubclass(w.category, gm.ConstantModalityWarning)]
    assert len(constant) == 1 and constant[0].filename == __file__  # once for both members
    assert str(constant[0].message).startswith("Xs[1]: holds the same values in every row holding it;")
    # model.fit itself: its own names, at the caller's line, as before
    model = gm.LearnableMultiModal(input_dims={"visual": 3, "auditory": 2}, embed_dim=8, hidden_dim=8, num_heads=2, seed=0)
    with pytest.warns(UserWarning, match=r"^data: 1 row; ") as seen:
        model.fit({"visual": np.ones((1, 3)), "auditory": np.zeros((1, 2))}, epochs=1, standardize=False, progress=False)
    assert all(w.filename == __file__ for w in seen)


# ------------------------------------------------------------------ 6. fit's NaN note for callers with no mask
def test_callers_without_a_mask_say_so_and_fit_adds_no_note_about_one() -> None:
    """uci.train removed training.MASK_NOTE from fit's message afterwards,
    by its text (which a wrapper rewording the message first would defeat);
    it now says, in a context, that it takes no mask, and the note is never
    added. Outside, fit's message is as before."""
    x = np.random.default_rng(0).normal(size=(6, 3))
    x[2, 1] = np.nan
    data = {"visual": x, "auditory": np.ones((6, 2))}
    model = gm.LearnableMultiModal(input_dims={"visual": 3, "auditory": 2}, embed_dim=8, hidden_dim=8, num_heads=2, seed=0)
    message = "data['visual']: row 2 holds NaN or inf; expected finite numbers"
    with pytest.raises(gm.NonFiniteError) as err:
        model.fit(data, epochs=1, progress=False)
    assert str(err.value) == message + training.MASK_NOTE
    with training.taking_no_mask():
        with pytest.raises(gm.NonFiniteError) as err:
            model.fit(data, epochs=1, progress=False)
        assert str(err.value) == message
        with pytest.raises(gm.NonFiniteError) as err:
            model.fit({"visual": np.ones((6, 3)), "auditory": np.ones((6, 2))}, validation=data, epochs=1, progress=False)
        assert str(err.value) == message.replace("data", "validation")
    with pytest.raises(gm.NonFiniteError) as err:  # the block's end puts the note back
        model.fit(data, epochs=1, progress=False)
    assert str(err.value).endswith(training.MASK_NOTE)
    settings = gm.uci.TrainingSettings(epochs=1, embed_dim=8, hidden_dim=8, encoder_hidden=(8,), batch_size=8)
    with pytest.raises(gm.NonFiniteError) as err:
        gm.uci.train(data, settings)
    assert str(err.value) == "inputs['visual']: row 2 holds NaN or inf; expected finite numbers"
