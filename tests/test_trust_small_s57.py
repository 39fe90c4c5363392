"""Defects an audit (session 57) found and left, each met as a user meets
it; every test says what was seen before."""

from __future__ import annotations

import re

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal.stopping import fit_with_stopping

pd = pytest.importorskip("pandas")


def _model(**kwargs) -> gm.LearnableMultiModal:
    return gm.LearnableMultiModal(input_dims={"visual": 3, "auditory": 2}, embed_dim=8, hidden_dim=8, num_heads=2,
                                  seed=0, **kwargs)


def _weights(model: gm.LearnableMultiModal) -> dict:
    return {k: np.array(v, copy=True) for k, v in model.state_dict().items()}


# ------------------------------------------------------------------ 1. a frame with repeated column names
RNG = np.random.default_rng(0)
X = RNG.normal(size=(24, 3))
A = RNG.normal(size=(24, 2))
REPEATED = r"^{}: column names \['a'\] appear more than once \('a' at columns 0 and 2\); expected unique column names"


@pytest.mark.parametrize("call", ["fit_normalization", "encode", "encode_and_fuse", "hidden_features", "fit",
                                  "fit_validation", "fit_with_stopping"])
def test_a_frame_with_repeated_column_names_is_refused_naming_them_and_leaves_the_model_as_it_was(call) -> None:
    """Before: every call took it and fit learned its names as ('a', 'b',
    'a'): the same frame with its two a columns swapped later passed the
    check of a frame's names against the learned ones, read as other
    features without a word (the estimator refused it)."""
    frame = pd.DataFrame(X, columns=["a", "b", "a"])
    model = _model(encoder_hidden=(4,))
    before = _weights(model)
    name = "inputs['visual']"
    with pytest.raises(gm.InvalidValueError) as err:
        if call == "fit":
            name = "data['visual']"
            model.fit({"visual": frame, "auditory": A}, epochs=1, progress=False)
        elif call == "fit_validation":
            name = "validation['visual']"
            model.fit({"visual": X, "auditory": A}, validation={"visual": frame, "auditory": A}, epochs=1,
                      progress=False)
        elif call == "fit_with_stopping":
            fit_with_stopping(model, {"visual": frame, "auditory": A}, validation_fraction=0.25, patience=1,
                                 monitor="loss", epochs=1, progress=False)
        else:
            getattr(model, call)({"visual": frame})
    assert err.match(REPEATED.format(re.escape(name)))
    assert err.value.arg == name
    assert model.input_columns("visual") is None and model.epochs_trained == 0
    after = _weights(model)
    assert before.keys() == after.keys() and all(np.array_equal(before[k], after[k]) for k in before)


def test_the_estimator_says_where_the_repeated_names_are_as_the_model_does() -> None:
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    frame = pd.DataFrame(X, columns=["a", "b", "a"])
    with pytest.raises(gm.InvalidValueError, match=REPEATED.format(r"Xs\[1\]")):
        MultimodalEmbedder(embed_dim=8, hidden_dim=8, num_heads=2, epochs=1, random_state=0).fit([A, frame])


# ------------------------------------------------------------------ 2. NaN in an embedding slot the mask marks absent
def _records(e: int = 8, n: int = 3):
    emb = np.full((n, 7, e), 1 / np.sqrt(e), np.float32)  # unit vectors, as the model records them
    emb[0, 3] = np.nan  # auditory... slot 3, absent below
    emb[1, 5, 2] = np.inf
    mask = np.zeros((n, 7), bool)
    mask[:, 0] = mask[:, 1] = True
    return dict(embeddings=emb, mask=mask, fused=np.zeros((n, e)), pair_strengths=np.zeros((n, 7, 7)),
                rewards=np.array([0.5, -1.0, 2.0]))


def test_an_absent_embedding_slot_may_hold_nan_and_is_recorded_as_zeros_read_back_everywhere(tmp_path) -> None:
    """Before: "embeddings: row 0 holds NaN" for a slot the mask marks
    absent, where inputs ignore their absent rows and the model's own calls
    on embeddings and a mask take anything there."""
    from grapheme_multimodal.buffer import ExperienceBuffer, Experience
    from grapheme_multimodal.batch import Batch

    given = _records()
    buffer = ExperienceBuffer(10, seed=0)
    buffer.extend(**given)
    kept = buffer.batch().embeddings
    assert np.isfinite(kept).all() and (kept[0, 3] == 0).all() and (kept[1, 5] == 0).all()
    np.testing.assert_array_equal(kept[:, :2], given["embeddings"][:, :2])
    assert np.isnan(given["embeddings"][0, 3]).all()  # the caller's array is not written to
    buffer.append(Experience(embeddings=given["embeddings"][0], mask=given["mask"][0], fused=np.zeros(8),
                             pair_strengths=np.zeros((7, 7)), reward=1.0))
    sample = buffer.sample(8, replace=True, prioritized=True)
    assert np.isfinite(sample.embeddings).all()
    buffer.update_priorities(sample.indices, np.ones(len(sample.indices)))
    buffer.save(tmp_path / "b.safetensors")
    again = ExperienceBuffer.from_file(tmp_path / "b.safetensors")
    np.testing.assert_array_equal(again.batch().embeddings, buffer.batch().embeddings)
    restored = ExperienceBuffer.from_state(*buffer.state())
    np.testing.assert_array_equal(restored.batch().embeddings, buffer.batch().embeddings)
    model = _model()
    losses = model.train_step(Batch.from_experiences(buffer.batch()))
    assert all(np.isfinite(v) for v in losses.values())


@pytest.mark.parametrize("where", ["extend", "append"])
def test_nan_in_a_present_embedding_slot_is_still_refused(where) -> None:
    from grapheme_multimodal.buffer import ExperienceBuffer, Experience

    given = _records()
    given["embeddings"][2, 1, 3] = np.nan  # slot 1 is present
    buffer = ExperienceBuffer(10, seed=0)
    if where == "extend":
        with pytest.raises(gm.NonFiniteError, match=r"^embeddings: row 2 holds NaN"):
            buffer.extend(**given)
    else:
        with pytest.raises(gm.NonFiniteError, match=r"^experience\.embeddings\[1, 3\]: holds NaN"):
            buffer.append(Experience(embeddings=given["embeddings"][2], mask=given["mask"][2], fused=np.zeros(8),
                                     pair_strengths=np.zeros((7, 7)), reward=1.0))
    assert len(buffer) == 0


# ------------------------------------------------------------------ 3. a generator state with an even increment
@pytest.mark.parametrize("state, inc", [(0, 0), (12345, 2**100)])
def test_a_buffer_state_with_an_even_pcg64_increment_is_refused(state, inc) -> None:
    """Before: taken; numpy keeps an even ``inc`` as given (every state it
    makes has an odd one), so the buffer drew a sequence no saved generator
    draws; from state 0 and inc 0 every draw is 0 and ``sample`` never
    returned (Lemire's rejection loop)."""
    from grapheme_multimodal.buffer import ExperienceBuffer

    buffer = ExperienceBuffer(10, seed=0)
    buffer.extend(**_records())
    tensors, meta = buffer.state()
    rng = dict(meta["rng_state"], state={"state": state, "inc": inc})
    with pytest.raises(gm.InvalidValueError, match=r"\(rng_state: inc is \d+, an even number; a PCG64 generator's "
                                                   r"increment is always odd") as err:
        ExperienceBuffer.from_state(tensors, dict(meta, rng_state=rng))
    assert f"e.g. inc {inc + 1})" in str(err.value)
    restored = ExperienceBuffer.from_state(tensors, dict(meta, rng_state=dict(rng, state={"state": state, "inc": inc + 1})))
    assert len(restored.sample(2).indices) == 2


# ------------------------------------------------------------------ 4. the CLI's integer flags say "int"
@pytest.mark.parametrize("argv, said", [
    (["demo", "--epochs", "0"], "--epochs: expected a positive int, got 0"),
    (["train", "--batch-size", "0"], "--batch-size: expected a positive int, got 0"),
    (["train", "--embed-dim", "-1"], "--embed-dim: expected a positive int, got -1"),
    (["train", "--hidden-dim", "0"], "--hidden-dim: expected a positive int, got 0"),
    (["train", "--heads", "0"], "--heads: expected a positive int, got 0"),
    (["train", "--workers", "0"], "--workers: expected a positive int, got 0"),
    (["train", "--encoder-hidden", "8,0"], "--encoder-hidden: expected a positive int, got 0"),
    (["train", "--cv-folds", "-3"], "--cv-folds: expected an int >= 0, got -3"),
    (["train", "--min-validation-rows", "-1"], "--min-validation-rows: expected an int >= 0, got -1"),
    (["train", "--early-stopping", "-1"], "--early-stopping: expected an int >= 0 (a patience in epochs; 0: off), got -1"),
    (["train", "--epochs", "-1"], "--epochs: expected an int >= 0, got -1"),
    (["train", "--members", "0"], "--members: expected a positive int, got 0"),
])
def test_the_clis_integer_flags_say_int_as_members_does(argv, said, tmp_path, capsys) -> None:
    """Before: "--epochs 0: expected a positive number" (as if 0.5 were
    taken) beside "--members: expected a positive int", and "a number >= 0"
    for --cv-folds and --min-validation-rows."""
    from grapheme_multimodal import cli

    np.save(tmp_path / "v.npy", RNG.normal(size=(12, 3)).astype(np.float32))
    extra = (["-m", f"visual={tmp_path / 'v.npy'}", "-o", str(tmp_path / "m.safetensors")] if argv[0] == "train"
             else ["--out", str(tmp_path / "demo")])
    assert cli.main([*argv, *extra, "--no-progress"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1] == f"grapheme-mm: error: {said}"


# ------------------------------------------------------------------ 5. the estimator's partial views
FAST = dict(embed_dim=8, hidden_dim=8, num_heads=2, epochs=1, random_state=0, verbose=False)


def test_several_views_one_of_mixed_column_names_is_refused_as_scikit_learn_refuses_one_view() -> None:
    """Before: one view of columns ['a', 1, 'c'] got scikit-learn's
    TypeError, but as one of several views it was taken and its names not
    kept: the same frame with its columns reordered later gave other
    embeddings without a word."""
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    mixed = pd.DataFrame(X, columns=["a", 1, "c"])
    with pytest.raises(TypeError, match=r"^Xs\[0\]: column names of types \['int', 'str'\]; .* "
                                        r"Xs\[0\]\.columns = Xs\[0\]\.columns\.astype\(str\)$"):
        MultimodalEmbedder(**FAST).fit([mixed, A])
    with pytest.raises(TypeError, match="Feature names are only supported if all input features have string names"):
        MultimodalEmbedder(**FAST).fit(mixed)  # scikit-learn's own, for one view
    fitted = MultimodalEmbedder(**FAST).fit([X, A])
    with pytest.raises(TypeError, match=r"^Xs\[0\]: column names of types"):
        fitted.transform([mixed, A])
    numpy_str = pd.DataFrame(X, columns=list(np.array(["a", "b", "c"])))  # np.str_ names are str
    assert MultimodalEmbedder(**FAST).fit([numpy_str, A]).transform([numpy_str, A]).shape == (24, 8)


def test_one_view_fitted_says_view_not_views() -> None:
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    with pytest.raises(gm.ShapeError, match=r"^Xs: expected 1 view with \[3\] columns \(as in fit\), got \[3, 2\]$"):
        MultimodalEmbedder(**FAST).fit(X).transform([X, A])


def test_several_views_input_features_are_checked_against_the_names_seen_in_fit() -> None:
    """Before: fitted on frames of columns a, b, c and x, y,
    get_feature_names_out(['q', 'b', 'c', 'x', 'y']) was taken, where one
    view's feature_names_in_ are checked (as scikit-learn's own transformers
    check them)."""
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    fitted = MultimodalEmbedder(**FAST).fit([pd.DataFrame(X, columns=list("abc")), pd.DataFrame(A, columns=["x", "y"])])
    assert len(fitted.get_feature_names_out(["a", "b", "c", "x", "y"])) == 8
    with pytest.raises(gm.InvalidValueError, match=r"^input_features: names \['y', 'x'\] for the columns of Xs\[1\] "
                                                   r"\(at 3 to 4\); expected None or the names seen in fit, in that "
                                                   r"order: \['x', 'y'\]$"):
        fitted.get_feature_names_out(["a", "b", "c", "y", "x"])
    half = MultimodalEmbedder(**FAST).fit([X, pd.DataFrame(A, columns=["x", "y"])])  # names for one view only
    assert len(half.get_feature_names_out(["p", "q", "r", "x", "y"])) == 8
    with pytest.raises(gm.InvalidValueError, match=r"for the columns of Xs\[1\]"):
        half.get_feature_names_out(["p", "q", "r", "x", "z"])
