"""A model fitted on data frames remembers each modality's column names, and
refuses the same names in another order later (session 53).

The model reads a modality's columns by position: fitted on a frame of columns
['a', 'b', 'c'], it embedded the same frame with its columns reordered
(``df[['c', 'a', 'b']]``, a join, a CSV written by another tool) as other
features, without a word, where scikit-learn refuses it ("The feature names
should match those that were passed during fit"). Renamed columns and numpy
arrays are not checked."""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

import grapheme_multimodal as gm

pd = pytest.importorskip("pandas")

DIMS = (3, 2, 18, 32, 32, 16, 8)
SMALL = dict(input_dims=DIMS, embed_dim=8, hidden_dim=8, num_heads=2, seed=0)


def _frames(n: int = 40):
    rng = np.random.default_rng(0)
    visual = pd.DataFrame(rng.normal(size=(n, 3)) * [1.0, 10.0, 100.0], columns=["a", "b", "c"])
    auditory = pd.DataFrame(rng.normal(size=(n, 2)), columns=["x", "y"])
    return visual, auditory


def _fitted(**options):
    visual, auditory = _frames()
    model = gm.LearnableMultiModal(**SMALL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit({"visual": visual, "auditory": auditory}, epochs=1, progress=False, **options)
    return model, visual, auditory


def _refused(call, arg: str, expected: str):
    with pytest.raises(gm.InvalidValueError) as info:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            call()
    assert info.value.arg == arg
    text = str(info.value)
    assert "another order" in text and expected in text, text
    return info.value


# -- every call that reads a modality from a frame --------------------------------------------------------------------
def test_fit_remembers_each_modality_s_column_names():
    model, _, _ = _fitted()
    assert model.input_columns("visual") == ("a", "b", "c")
    assert model.input_columns(gm.Modality.AUDITORY) == ("x", "y")
    assert model.input_columns("linguistic") is None  # not given


@pytest.mark.parametrize("call, arg", [
    (lambda m, v, a: m.encode({"visual": v[["c", "a", "b"]]}), "inputs['visual']"),
    (lambda m, v, a: m.encode_and_fuse({"visual": v, "auditory": a[["y", "x"]]}), "inputs['auditory']"),
    (lambda m, v, a: m.encode([v[["b", "a", "c"]], None, None, None, None, None, None]), "inputs['visual']"),
    (lambda m, v, a: m.record_batch({"visual": v[["c", "b", "a"]]}), "inputs['visual']"),
    (lambda m, v, a: m.train_step({"visual": v[["c", "b", "a"]], "auditory": a}), "inputs['visual']"),
    (lambda m, v, a: m.fit({"visual": v[["c", "a", "b"]], "auditory": a}, epochs=1, progress=False), "data['visual']"),
    (lambda m, v, a: m.fit({"visual": v.to_numpy(), "auditory": a.to_numpy()}, validation={"visual": v[["c", "a", "b"]]},
                           epochs=1, progress=False), "validation['visual']"),
    (lambda m, v, a: m.fit_normalization({"visual": v[["c", "a", "b"]]}), "inputs['visual']"),
])
def test_a_fitted_model_refuses_its_columns_in_another_order(call, arg):
    model, visual, auditory = _fitted()
    state, history, norm = model.state_dict(), list(model.history), model.normalization("visual")
    expected = "['a', 'b', 'c']" if "visual" in arg else "['x', 'y']"
    _refused(lambda: call(model, visual, auditory), arg, expected)
    # refused before anything changed
    assert all(np.array_equal(v, model.state_dict()[k]) for k, v in state.items())
    assert model.history == history and np.array_equal(model.normalization("visual")[0], norm[0])
    assert model.num_experiences() == 0


def test_the_message_says_the_order_expected():
    model, visual, _ = _fitted()
    err = _refused(lambda: model.encode({"visual": visual[["c", "a", "b"]]}), "inputs['visual']", "['a', 'b', 'c']")
    assert "inputs['visual'][['a', 'b', 'c']]" in str(err)  # what to write instead


def test_the_same_order_renamed_columns_and_arrays_are_read_as_before():
    model, visual, auditory = _fitted()
    expected = model.encode({"visual": visual.to_numpy()})
    assert np.array_equal(model.encode({"visual": visual}), expected)
    # other names (renamed columns) are not refused: a user who renames columns keeps working code
    assert np.array_equal(model.encode({"visual": visual.rename(columns={"a": "A"})}), expected)
    assert np.array_equal(model.encode({"visual": visual.set_axis([0, 1, 2], axis=1)}), expected)  # unnamed: positions
    # and the frame in the right order after a refusal
    assert np.array_equal(model.encode({"visual": visual[["c", "a", "b"]][["a", "b", "c"]]}), expected)


def test_fit_normalization_remembers_the_names_it_learned_from():
    visual, _ = _frames()
    model = gm.LearnableMultiModal(**SMALL)
    model.fit_normalization({"visual": visual})
    assert model.input_columns("visual") == ("a", "b", "c")
    _refused(lambda: model.encode({"visual": visual[["b", "c", "a"]]}), "inputs['visual']", "['a', 'b', 'c']")


def test_the_first_frame_s_names_are_kept():
    model, visual, _ = _fitted()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit({"visual": visual.rename(columns={"a": "A"})}, epochs=1, progress=False)
    assert model.input_columns("visual") == ("a", "b", "c")


def test_nothing_is_remembered_from_arrays_or_a_fit_that_trains_nothing_or_fails():
    visual, auditory = _frames()
    model = gm.LearnableMultiModal(**SMALL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit({"visual": visual.to_numpy()}, epochs=1, progress=False)
        assert model.input_columns("visual") is None
        model.fit({"auditory": auditory}, epochs=0, progress=False)
        assert model.input_columns("auditory") is None

        def boom(_model):
            raise RuntimeError("metric failed")

        with pytest.raises(RuntimeError, match="metric failed"):
            model.fit({"auditory": auditory}, validation={"auditory": auditory}, metrics={"boom": boom}, epochs=1,
                      progress=False)
    assert model.input_columns("auditory") is None  # the failed fit's undo put the record back too


def test_early_stopping_on_a_held_out_slice_remembers_the_frames_names():
    from grapheme_multimodal.stopping import fit_with_stopping

    visual, auditory = _frames(60)
    model = gm.LearnableMultiModal(**SMALL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit_with_stopping(model, {"visual": visual, "auditory": auditory}, validation_fraction=0.25, patience=2, monitor="val_total",
                          epochs=2, cv_folds=0, progress=False)
    assert model.input_columns("visual") == ("a", "b", "c") and model.input_columns("auditory") == ("x", "y")


def test_polars_frames_are_checked_too():
    pl = pytest.importorskip("polars")
    visual, auditory = _frames()
    model = gm.LearnableMultiModal(**SMALL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit({"visual": pl.from_pandas(visual), "auditory": pl.from_pandas(auditory)}, epochs=1, progress=False)
    assert model.input_columns("visual") == ("a", "b", "c")
    _refused(lambda: model.encode({"visual": pl.from_pandas(visual).select(["c", "a", "b"])}), "inputs['visual']",
             "['a', 'b', 'c']")


# -- the names survive what the fitted state survives -----------------------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda m, tmp: pickle.loads(pickle.dumps(m)),
    lambda m, tmp: copy.copy(m),
    lambda m, tmp: copy.deepcopy(m),
    lambda m, tmp: (m.save(tmp / "m.safetensors"), gm.LearnableMultiModal.load(tmp / "m.safetensors"))[1],
    lambda m, tmp: (gm.save_ensemble([m, m], tmp / "e.safetensors"), gm.load_ensemble(tmp / "e.safetensors")[1])[1],
], ids=["pickle", "copy", "deepcopy", "checkpoint", "ensemble"])
def test_the_names_are_kept_by_copies_and_files(make, tmp_path):
    model, visual, _ = _fitted()
    other = make(model, tmp_path)
    assert other.input_columns("visual") == ("a", "b", "c") and other.input_columns("auditory") == ("x", "y")
    _refused(lambda: other.encode({"visual": visual[["c", "a", "b"]]}), "inputs['visual']", "['a', 'b', 'c']")


def test_a_model_in_use_replaced_by_setstate_takes_the_state_s_names():
    model, visual, _ = _fitted()
    fresh = gm.LearnableMultiModal(**SMALL)
    fresh.__setstate__(model.__getstate__())
    assert fresh.input_columns("visual") == ("a", "b", "c")
    model.__setstate__(gm.LearnableMultiModal(**SMALL).__getstate__())
    assert model.input_columns("visual") is None
    model.encode({"visual": visual[["c", "a", "b"]]})  # none known: not checked


def test_a_checkpoint_without_names_is_written_and_read_as_before(tmp_path):
    from grapheme_multimodal.checkpoint import checkpoint_state

    visual, _ = _frames()
    model = gm.LearnableMultiModal(**SMALL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit({"visual": visual.to_numpy()}, epochs=1, progress=False)
    assert "input_columns" not in checkpoint_state(model)[1]  # no new key: an older version reads the file
    model.save(tmp_path / "m.safetensors")
    loaded = gm.LearnableMultiModal.load(tmp_path / "m.safetensors")
    assert all(loaded.input_columns(m) is None for m in gm.Modality)


@pytest.mark.parametrize("columns", [
    ["a", "b", "c"], {"visual": ["a", "b"]}, {"visual": ["a", "b", 3]}, {"sound": ["a", "b", "c"]}, {"visual": "abc"},
])
def test_a_file_with_bad_names_is_a_checkpoint_error(columns, tmp_path):
    from grapheme_multimodal.checkpoint import FILE_FORMAT, checkpoint_state
    from grapheme_multimodal.io import write_tagged_safetensors

    model, _, _ = _fitted()
    tensors, meta = checkpoint_state(model)
    meta["input_columns"] = columns
    write_tagged_safetensors(tmp_path / "bad.safetensors", tensors, FILE_FORMAT, meta)
    with pytest.raises(gm.CheckpointError, match="input_columns"):
        gm.LearnableMultiModal.load(tmp_path / "bad.safetensors")


# -- scikit-learn's estimator: its own feature-name checks -------------------------------------------------------------
_ESTIMATOR_OPTIONS = dict(epochs=1, embed_dim=8, hidden_dim=8, num_heads=2, encoder_hidden=(8,))


def _fitted_estimator(views, **options):
    """A small MultimodalEmbedder fitted on ``views`` (its warnings of tiny data silenced)."""
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return MultimodalEmbedder(**_ESTIMATOR_OPTIONS, **options).fit(views)


def test_the_estimator_refuses_reordered_views_as_scikit_learn_does():
    pytest.importorskip("sklearn")
    visual, auditory = _frames(30)
    one, several = _fitted_estimator(visual), _fitted_estimator([visual, auditory])
    assert list(one.feature_names_in_) == ["a", "b", "c"]  # scikit-learn's validate_data
    for est in (one, pickle.loads(pickle.dumps(one))):
        with pytest.raises(ValueError, match="same order"):
            est.transform(visual[["c", "a", "b"]])
    for est in (several, pickle.loads(pickle.dumps(several))):
        with pytest.raises(gm.InvalidValueError, match=r"Xs\[0\]: columns \['b', 'a', 'c'\]"):
            est.transform([visual[["b", "a", "c"]], auditory])


# -- the command line: a CSV file's header ------------------------------------------------------------------------------
def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "grapheme_multimodal", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_train_keeps_a_csv_header_and_embed_refuses_it_reordered(tmp_path):
    visual, auditory = _frames()
    visual.to_csv(tmp_path / "v.csv", index=False)
    visual[["c", "a", "b"]].to_csv(tmp_path / "v_reordered.csv", index=False)
    visual.to_csv(tmp_path / "v_bare.csv", index=False, header=False)
    auditory.to_csv(tmp_path / "a.csv", index=False)
    trained = _cli("train", "--modality", "visual=v.csv", "--modality", "auditory=a.csv", "--epochs", "1",
                   "--embed-dim", "8", "--hidden-dim", "8", "--heads", "2", "--no-progress", "--output", "m.safetensors",
                   cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert gm.LearnableMultiModal.load(tmp_path / "m.safetensors").input_columns("visual") == ("a", "b", "c")
    info = _cli("info", "m.safetensors", cwd=tmp_path)
    assert info.returncode == 0 and "columns a,b,c" in info.stdout, info.stdout
    for ok in ("v.csv", "v_bare.csv"):  # the header it trained on, or none
        done = _cli("embed", "m.safetensors", "--modality", f"visual={ok}", "--output", "e.npy", "--overwrite", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    refused = _cli("embed", "m.safetensors", "--modality", "visual=v_reordered.csv", "--output", "r.npy", cwd=tmp_path)
    assert refused.returncode == 2 and not (tmp_path / "r.npy").exists()
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "another order (c,a,b)" in lines[0] and lines[0].endswith("trained on: a,b,c"), lines


# -- the Ray distributed fit: fit's own loop, so the same record ------------------------------------------------------
@pytest.mark.ray
@pytest.mark.timeout(180)
def test_the_distributed_fit_remembers_the_names(ray_session):
    from grapheme_multimodal import distributed

    visual, auditory = _frames()
    model = gm.LearnableMultiModal(**SMALL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        distributed.fit(model, {"visual": visual, "auditory": auditory}, num_workers=1, epochs=1, progress=False)
    assert model.input_columns("visual") == ("a", "b", "c") and model.input_columns("auditory") == ("x", "y")
    _refused(lambda: distributed.fit(model, {"visual": visual[["c", "a", "b"]]}, num_workers=1, epochs=1, progress=False),
             "data['visual']", "['a', 'b', 'c']")


def test_the_recipe_s_views_and_cross_validation_remember_the_names():
    from grapheme_multimodal import uci
    from grapheme_multimodal.stopping import fit_with_stopping

    visual, auditory = _frames()
    settings = uci.TrainingSettings(epochs=2, embed_dim=8, hidden_dim=8, num_heads=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        embedder = uci.fit_views({"one": visual, "two": auditory}, settings=settings)
        # the folds train copies; the final fit takes the frames themselves
        model = gm.LearnableMultiModal(**SMALL)
        fit_with_stopping(model, {"visual": visual, "auditory": auditory}, validation_fraction=0.1, min_validation_rows=10,
                          cv_folds=3, patience=1, monitor="val_total", epochs=2, progress=False)
    assert model.input_columns("visual") == ("a", "b", "c")
    # named as the embedder's caller names the view
    _refused(lambda: embedder.embed_fused({"one": visual[["c", "a", "b"]], "two": auditory}), "views['one']",
             "views['one'][['a', 'b', 'c']]")


def test_the_estimator_s_models_keep_the_views_names(tmp_path):
    pytest.importorskip("sklearn")
    visual, auditory = _frames(30)
    one = _fitted_estimator(visual)
    several = _fitted_estimator([visual, auditory], n_members=2, modalities=["auditory", "visual"])
    bare = _fitted_estimator(visual.to_numpy())
    assert one.model_.input_columns("visual") == ("a", "b", "c")
    assert all(m.input_columns("auditory") == ("a", "b", "c") and m.input_columns("visual") == ("x", "y")
               for m in several.models_)
    assert bare.model_.input_columns("visual") is None
    one.model_.save(tmp_path / "m.safetensors")  # the model used alone, as grapheme-mm embed uses it
    alone = gm.LearnableMultiModal.load(tmp_path / "m.safetensors")
    _refused(lambda: alone.encode({"visual": visual[["c", "a", "b"]]}), "inputs['visual']", "['a', 'b', 'c']")
