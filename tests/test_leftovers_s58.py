"""Defects found by earlier audits and left open (session 57's list), each
met as a user meets it; every test says what was seen before."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import grapheme_multimodal as gm


def _model(**dims: int) -> gm.LearnableMultiModal:
    return gm.LearnableMultiModal(input_dims=dims or {"visual": 3, "auditory": 2}, embed_dim=8, hidden_dim=8,
                                  num_heads=2, seed=0)


# ------------------------------------------------------------------ 1. float event ids past 2**53
@pytest.mark.parametrize("ids, shown, dtype, power", [
    (np.array([2.0**53, 2.0**53 + 2]), 2**53, "float64", "2\\*\\*53"),
    ([2**53 + 1, 1.0], 2**53, "float64", "2\\*\\*53"),  # an int beside a float: numpy made both float64
    (np.array([1, 2.0**24], np.float32), 2**24, "float32", "2\\*\\*24"),
    (np.array([3, -4096], np.float16), -4096, "float16", "2\\*\\*11"),
], ids=["float64", "int-beside-float", "float32", "float16"])
def test_float_event_ids_where_the_float_skips_integers_are_refused(ids, shown, dtype, power) -> None:
    """Before: ``event_ids=[2**53 + 1, 1.0]`` recorded event 2**53 (numpy
    read the list as float64, where 2**53 + 1 is 2**53), and float ids past
    2**53 were taken without a word: distinct ids could be one id, which
    ``update_priorities`` and the records pair by. Ids as int64 stay apart."""
    model = _model()
    x = {"visual": np.ones((2, 3), np.float32)}
    with pytest.raises(gm.InvalidValueError, match=rf"^event_ids: holds {shown} as {dtype}, at or past {power} in "
                                                   rf"magnitude, where {dtype} skips integers") as err:
        model.record_batch(x, event_ids=ids)
    assert err.value.arg == "event_ids" and len(model.experience) == 0
    model.record_batch(x, event_ids=[2.0**53 - 1, -(2.0**53 - 1)])  # below: every integer is a float64
    model.record_batch(x, event_ids=np.array([2**53 + 1, 2**62], np.int64))  # ints: exact at any size
    assert model.experience.batch().event_ids.tolist() == [2**53 - 1, -(2**53 - 1), 2**53 + 1, 2**62]


def test_an_experience_with_a_float_id_past_2_53_is_refused_naming_its_field() -> None:
    buffer = gm.ExperienceBuffer(4, embed_dim=4)
    experience = gm.Experience(np.zeros((7, 4)), np.ones(7, bool), np.zeros(4), np.zeros((7, 7)), 0.0, 2.0**60)
    with pytest.raises(gm.InvalidValueError, match=r"^experience\.event_id: holds 1152921504606846976 as float64"):
        buffer.append(experience)
    assert len(buffer) == 0


# ------------------------------------------------------------------ 2. roundoff past 2**52
def test_a_column_varying_within_float64_roundoff_past_2_52_is_said_as_possibly_roundoff() -> None:
    """Before: a float64 column of one value's roundoff past 2**52 (every
    float64 there is whole, so it reads as ids) was told "the model ... would
    learn the rounding, not the data", which is false of roundoff (float32
    makes it constant: nothing is lost). Values alone cannot tell it from ids
    ``2**53 + 2 * i``, which float32 does merge: both are still said, each
    reading named."""
    from grapheme_multimodal._validation import precision_lost

    n = 40
    rng = np.random.default_rng(0)
    roundoff = (2.0**52 * (1 + rng.integers(-3, 4, n) * np.finfo(np.float64).eps))[:, None]
    said = precision_lost(roundoff, roundoff.astype(np.float32))
    assert said is not None and "would learn the rounding, not the data" not in said
    assert "within float64's own roundoff at that size" in said and "if it is roundoff, nothing is lost" in said
    assert "if the values are distinct integers (ids)" in said
    ids = (2.0**53 + 2.0 * np.arange(n))[:, None]
    assert "within float64's own roundoff" in precision_lost(ids, ids.astype(np.float32))
    # a spread float64 resolves well: said as before
    far = (1e6 + 1e-3 * rng.normal(size=n))[:, None]
    said = precision_lost(far, far.astype(np.float32))
    assert said is not None and "would learn the rounding, not the data" in said and "roundoff at that size" not in said


# ------------------------------------------------------------------ 3. train --epochs 0
def test_train_with_no_epochs_says_the_model_saved_is_untrained(tmp_path, capsys) -> None:
    """Before: "trained on 40 rows x 1 modality for 0 epochs: no epochs run"
    of a model that learned nothing, not even its standardisation."""
    from grapheme_multimodal.cli import main

    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(40, 3)))
    out = tmp_path / "m.safetensors"
    assert main(["train", "-m", f"visual={tmp_path / 'x.npy'}", "--epochs", "0", "--no-progress", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "trained on" not in printed
    assert ("not trained (--epochs 0): read 40 rows x 1 modality; the model saved keeps its initial weights, without "
            "input standardisation") in printed
    model = gm.LearnableMultiModal.load(out)
    assert model.epochs_trained == 0 and model.normalization("visual") is None  # as fit(epochs=0) leaves it


# ------------------------------------------------------------------ 4. "(after a header)" with no header
@pytest.mark.parametrize("text, header, said", [
    ("1,2\n3,4\n# d\n5,6\n", False, "above the first row of numbers; expected numbers in every row below it: remove "
                                    "the line (a commented-out event? then leave that event out of every file), or "
                                    "move it to the top"),
    ("1,2\n3,4\n# d\n5,6\n", None, "above the first row of numbers; expected"),
    ("a,b\n1,2\n# d\n5,6\n", None, "above the first row of numbers (below the header); expected numbers in every row "
                                   "below it: remove the line (a commented-out event? then leave that event out of "
                                   "every file), or move it up, between the header and the first row"),
], ids=["no-header-said", "no-header-seen", "header"])
def test_a_comment_among_the_rows_is_said_of_a_header_only_when_there_is_one(tmp_path, text, header, said) -> None:
    """Before: "... read as one only above the first row of numbers (after a
    header) ..." with --no-csv-header and of a file without a header."""
    from grapheme_multimodal.files import read_numeric_csv

    path = tmp_path / "x.csv"
    path.write_text(text)
    with pytest.raises(gm.InvalidValueError, match=r"is a comment line \('# d'\), which is read as one only") as err:
        read_numeric_csv(path, header=header)
    assert said in str(err.value) and ("header" in str(err.value)) == (text[0] == "a")


# ------------------------------------------------------------------ 5. epochs_trained counts the epochs run
def test_info_says_the_epochs_counted_were_run() -> None:
    """``epochs_trained`` counts every epoch fit ran, those early stopping
    rolled back included (it seeds the next epoch's shuffle: a fit after a
    roll-back draws new ones), as its docstring now says. Before: ``info``
    said "training: 5 epochs" of a model holding epoch 2's weights."""
    from grapheme_multimodal.cli import _model_lines

    rng = np.random.default_rng(0)
    model = _model()
    history = model.fit({"visual": rng.normal(size=(40, 3)), "auditory": rng.normal(size=(40, 2))}, epochs=5,
                        validation=({"visual": rng.normal(size=(8, 3)), "auditory": rng.normal(size=(8, 2))}),
                        early_stopping=1, progress=False, batch_size=40)
    assert model.epochs_trained == len(history.epochs) == len(model.history)
    assert f"training: {len(history.epochs)} epoch{'s' if len(history.epochs) > 1 else ''} run, " in "\n".join(
        _model_lines(model))


# ------------------------------------------------------------------ 7. pair strengths of absent slots
def test_pair_strengths_of_an_absent_modality_take_anything_as_its_embeddings_do() -> None:
    """Before: ``extend`` took NaN in an absent slot's embeddings (recorded
    as zeros) but refused NaN in its pair strengths: "pair_strengths: row 0
    holds NaN". The model records 0 for a pair with an absent modality."""
    buffer = gm.ExperienceBuffer(4, embed_dim=4)
    mask = np.zeros((1, 7), bool)
    mask[0, [0, 2]] = True
    embeddings = np.zeros((1, 7, 4))
    embeddings[0, 3] = np.nan
    pairs = np.ones((1, 7, 7))
    pairs[0, 3, 4] = pairs[0, 0, 3] = np.nan
    pairs[0, 5, 0] = 1e300  # beyond float32, in a pair with an absent modality
    buffer.extend(embeddings, mask, np.zeros((1, 4)), pairs, [0.0])
    stored = buffer.batch().pair_strengths[0]
    both = mask[0][:, None] & mask[0][None, :]
    assert (stored[~both] == 0).all() and (stored[both] == 1).all()
    pairs[0, 0, 2] = np.nan  # a pair of two present modalities: refused as before
    with pytest.raises(gm.NonFiniteError, match=r"^pair_strengths: row 0 holds NaN"):
        buffer.extend(embeddings, mask, np.zeros((1, 4)), pairs, [0.0])
    single = pairs[0].copy()
    single[0, 2] = 1.0
    buffer.append(gm.Experience(embeddings[0], mask[0], np.zeros(4), single, 0.0, 5))
    single[2, 0] = np.inf
    with pytest.raises(gm.NonFiniteError, match=r"^experience\.pair_strengths\[2, 0\]: holds inf"):
        buffer.append(gm.Experience(embeddings[0], mask[0], np.zeros(4), single, 0.0, 6))
    assert len(buffer) == 2
    reloaded = gm.ExperienceBuffer.from_state(*buffer.state())  # zeros: a file of them loads
    assert np.array_equal(reloaded.batch().pair_strengths, buffer.batch().pair_strengths)


# ------------------------------------------------------------------ 8. column names not all str
def test_frames_of_int_names_are_read_by_position_and_pyarrow_str_names_are_learned() -> None:
    """Int names are not learned (documented: scikit-learn keeps
    ``feature_names_in_`` only for str names), so a reordered frame of them
    is read by position; names in a pyarrow-backed string index are str."""
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    rng = np.random.default_rng(0)
    for names, learned in [([0, 1, 2], None), (pd.Index(["a", "b", "c"], dtype="string[pyarrow]"), ("a", "b", "c"))]:
        model = _model(visual=3)
        frame = pd.DataFrame(rng.normal(size=(20, 3)), columns=names)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit_normalization({"visual": frame})
        assert model.input_columns("visual") == learned
        reordered = frame[frame.columns[::-1]]
        if learned is None:
            model.encode({"visual": reordered})
        else:
            with pytest.raises(gm.InvalidValueError, match=r"^inputs\['visual'\]: its columns \['c', 'b', 'a'\]"):
                model.encode({"visual": reordered})


# ------------------------------------------------------------------ hostile pass: datasets and evaluation
def test_binder_auc_names_the_view_holding_nan_not_the_binds_argument() -> None:
    """Before: "a: contains a non-finite value (NaN or inf) at index (0, 0)",
    model.bind's own argument, of ``view_embeddings['visual']``."""
    from grapheme_multimodal.evaluation import binder_auc

    model = _model()
    views = {"visual": np.ones((3, 8)), "auditory": np.ones((3, 8))}
    views["auditory"][2, 1] = np.nan
    with pytest.raises(gm.NonFiniteError, match=r"^view_embeddings\['auditory'\]: row 2 holds NaN; expected finite") as err:
        binder_auc(model.bind, views)
    assert err.value.arg == "view_embeddings['auditory']"


def test_evaluate_model_on_an_empty_test_split_says_0_rows() -> None:
    """Before: "test: has 0 row; expected at least 2"."""
    from grapheme_multimodal.datasets import MultipleFeatures
    from grapheme_multimodal.evaluation import evaluate_model

    rng = np.random.default_rng(0)
    train = MultipleFeatures({"fou": rng.normal(size=(8, 3)), "kar": rng.normal(size=(8, 2))}, np.arange(8) % 2)
    test = MultipleFeatures({"fou": np.zeros((0, 3)), "kar": np.zeros((0, 2))}, np.zeros(0))
    with pytest.raises(gm.ShapeError, match=r"^test: has 0 rows; expected at least 2"):
        evaluate_model(object(), train, test)
