"""A trained model asked to encode a modality no training batch held warns
(UntrainedModalityWarning): that encoder has its random initial weights.
The record (model.trained_modalities) counts the rows of accepted steps,
survives checkpoints and copies, and is unknown (no warning) for files
written before it existed."""

import copy
import pickle
import warnings

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal.checkpoint import FILE_FORMAT
from grapheme_multimodal.io import read_tagged_safetensors, write_tagged_safetensors

from conftest import assert_resumes_exactly
from record_fixtures import DIMS, N, make, views


def linguistic(n: int = 4) -> np.ndarray:
    return np.random.default_rng(9).normal(size=(n, DIMS["linguistic"])).astype(np.float32)


@pytest.fixture
def trained() -> gm.LearnableMultiModal:
    model = make()
    model.fit(views(), epochs=2, batch_size=8)
    return model


def assert_silent(call) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", gm.UntrainedModalityWarning)
        call()


def test_a_fresh_model_never_warns_and_records_nothing():
    model = make()
    assert model.trained_modalities == {}
    assert_silent(lambda: model.encode({"linguistic": linguistic(), "visual": views(4)["visual"]}))


def test_fit_records_rows_and_warns_only_for_the_untrained_modality(trained):
    assert trained.trained_modalities == {gm.Modality.VISUAL: 2 * N, gm.Modality.AUDITORY: 2 * N}
    assert_silent(lambda: trained.encode(views(4)))
    with pytest.warns(gm.UntrainedModalityWarning) as caught:
        trained.encode({"linguistic": linguistic(), "visual": views(4)["visual"]})
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "modality 'linguistic' was never present in a training batch (trained: visual, auditory)" in message
    assert "initial random weights" in message
    assert caught[0].filename == __file__  # at the caller's line, past the lock's wrapper


@pytest.mark.parametrize("call", [
    lambda m, x: m.encode_and_fuse(x),
    lambda m, x: m.hidden_features(x),
    lambda m, x: m.encoder.encode("linguistic", x["linguistic"]),
    lambda m, x: m.record_batch(x),
    lambda m, x: m.fuse_event(gm.MultiModalEvent(7, [gm.ModalFeatures(x["linguistic"][0], gm.Modality.LINGUISTIC)])),
    lambda m, x: m.encode_event(gm.MultiModalEvent(8, [gm.ModalFeatures(x["linguistic"][0], gm.Modality.LINGUISTIC)])),
])
def test_every_encoding_path_warns(trained, call):
    with pytest.warns(gm.UntrainedModalityWarning, match="'linguistic'"):
        call(trained, {"linguistic": linguistic()})


def test_a_masked_out_modality_does_not_warn(trained):
    x = {**views(4), "linguistic": linguistic()}
    mask = np.zeros((4, 7), bool)
    mask[:, :2] = True
    assert_silent(lambda: trained.encode(x, mask))


def test_train_step_backward_step_and_recorded_embeddings(trained):
    model = make()
    x = views(6)
    mask = np.ones((6, 7), bool)
    mask[:, 2:] = False
    mask[:2, 1] = False
    model.train_step(x, mask)
    assert model.trained_modalities == {gm.Modality.VISUAL: 6, gm.Modality.AUDITORY: 4}
    # backward alone trains nothing; its rows count when step applies them, once
    model.backward({"linguistic": linguistic(4), "visual": views(4)["visual"]})
    assert gm.Modality.LINGUISTIC not in model.trained_modalities
    model.zero_grad()  # discards them
    assert not model.step() and gm.Modality.LINGUISTIC not in model.trained_modalities
    model.backward({"linguistic": linguistic(4), "visual": views(4)["visual"]})
    model.step()
    model.step()
    assert model.trained_modalities == {gm.Modality.VISUAL: 10, gm.Modality.AUDITORY: 4, gm.Modality.LINGUISTIC: 4}
    # recorded embeddings train no encoder
    fresh = make()
    emb = trained.encode(views(6))
    fresh.train_step(gm.Batch(embeddings=emb))
    assert fresh.trained_modalities == {}


def test_a_refused_step_records_nothing():
    model = make()
    model.train_step(views(6))
    before = model.trained_modalities
    bad = {"linguistic": np.full((4, DIMS["linguistic"]), np.nan, np.float32), "visual": views(4)["visual"]}
    with pytest.raises(gm.NonFiniteError):
        model.train_step(bad)
    with pytest.raises(gm.InvalidValueError):
        model.train_step({"linguistic": linguistic(4)}, weights={"contrastive": 0.0, "binding": 0.0, "cross_modal": 0.0})
    with pytest.raises(gm.NonFiniteError):
        model.backward(bad)
    model.step()
    assert model.trained_modalities == before


def test_objectives_kept_from_the_encoders_train_none():
    model = make(encoder_objectives=("fused_contrastive",))
    model.train_step(views(6), weights={"contrastive": 1.0, "binding": 1.0})  # the binder trains, no encoder
    assert model.trained_modalities == {}
    model.train_step(views(6), weights={"fused_contrastive": 1.0})
    assert set(model.trained_modalities) == {gm.Modality.VISUAL, gm.Modality.AUDITORY}


def test_the_record_survives_save_load_pickle_and_copies(trained, tmp_path):
    path = tmp_path / "m.safetensors"
    trained.save(path)
    for other in (gm.LearnableMultiModal.load(path), pickle.loads(pickle.dumps(trained)), copy.deepcopy(trained)):
        assert other.trained_modalities == trained.trained_modalities
        with pytest.warns(gm.UntrainedModalityWarning, match="'linguistic'"):
            other.encode({"linguistic": linguistic()})
    _, meta = read_tagged_safetensors(path, FILE_FORMAT)
    assert meta["trained_rows"] == {str(m): 2 * N if m.index < 2 else 0 for m in gm.Modality}


def _without_record(model, path) -> None:
    """``model`` saved as a version from before the record wrote it."""
    model.save(path)
    tensors, meta = read_tagged_safetensors(path, FILE_FORMAT)
    meta.pop("trained_rows", None)
    write_tagged_safetensors(path, tensors, FILE_FORMAT, meta)


def test_an_old_checkpoint_of_a_trained_model_loads_with_nothing_known(trained, tmp_path):
    path = tmp_path / "old.safetensors"
    _without_record(trained, path)
    old = gm.LearnableMultiModal.load(path)
    assert old.trained_modalities is None
    assert_silent(lambda: old.encode({"linguistic": linguistic()}))
    old.fit(views(), epochs=1, batch_size=8)  # what it trained on before is not known: stays unknown
    assert old.trained_modalities is None
    assert_silent(lambda: old.encode({"linguistic": linguistic()}))
    again = tmp_path / "again.safetensors"
    old.save(again)
    assert "trained_rows" not in read_tagged_safetensors(again, FILE_FORMAT)[1]
    assert gm.LearnableMultiModal.load(again).trained_modalities is None


def test_an_old_checkpoint_of_an_untrained_model_records_from_there(tmp_path):
    path = tmp_path / "old.safetensors"
    _without_record(make(), path)
    old = gm.LearnableMultiModal.load(path)
    assert old.trained_modalities == {}
    old.train_step(views(6))
    with pytest.warns(gm.UntrainedModalityWarning):
        old.encode({"linguistic": linguistic()})


@pytest.mark.parametrize("forged", [[1, 2], {"visual": -1}, {str(m): "3" for m in gm.Modality}, {str(m): True for m in gm.Modality}])
def test_a_forged_record_is_refused(trained, tmp_path, forged):
    path = tmp_path / "forged.safetensors"
    trained.save(path)
    tensors, meta = read_tagged_safetensors(path, FILE_FORMAT)
    meta["trained_rows"] = forged
    write_tagged_safetensors(path, tensors, FILE_FORMAT, meta)
    with pytest.raises(gm.CheckpointError, match="trained_rows"):
        gm.LearnableMultiModal.load(path)


def test_training_resumes_exactly_and_the_record_with_it(tmp_path):
    twice = assert_resumes_exactly(make, views(), tmp_path, epochs=1, batch_size=8)
    assert twice.trained_modalities == {gm.Modality.VISUAL: 2 * N, gm.Modality.AUDITORY: 2 * N}
    resumed = gm.LearnableMultiModal.load(tmp_path / "resume.safetensors")
    resumed.fit(views(), epochs=1, batch_size=8)
    assert resumed.trained_modalities == twice.trained_modalities


def test_a_failed_fit_leaves_the_record_as_it_was():
    model = make()
    model.train_step(views(6))
    before = model.trained_modalities

    def failing(_model):
        raise RuntimeError("metric failed")

    with pytest.raises(RuntimeError, match="metric failed"):
        model.fit({**views(), "linguistic": linguistic(N)}, epochs=1, batch_size=8, metrics={"bad": failing})
    assert model.trained_modalities == before


def test_the_estimator_trains_every_view_and_does_not_warn():
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    rng = np.random.default_rng(0)
    Xs = [rng.normal(size=(40, 5)), rng.normal(size=(40, 4))]
    est = MultimodalEmbedder(embed_dim=8, hidden_dim=16, num_heads=2, epochs=1, random_state=0, verbose=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", gm.UntrainedModalityWarning)
        est.fit(Xs).transform(Xs)
    assert set(est.model_.trained_modalities) == set(est.modalities_)


def test_cli_embed_prints_the_warning_once_and_succeeds(trained, tmp_path, capsys):
    from grapheme_multimodal.cli import main

    ckpt = tmp_path / "m.safetensors"
    trained.save(ckpt)
    np.save(tmp_path / "text.npy", linguistic(10))
    np.save(tmp_path / "img.npy", views(10)["visual"])
    code = main(["embed", str(ckpt), "-m", f"linguistic={tmp_path / 'text.npy'}", "-m", f"visual={tmp_path / 'img.npy'}",
                 "-o", str(tmp_path / "f.npy"), "--batch-size", "3"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert out.err.count("UntrainedModality") == 0
    assert out.err.count("grapheme-mm: warning: modality 'linguistic' was never present in a training batch") == 1
    assert np.load(tmp_path / "f.npy").shape == (10, 8)
    assert main(["info", str(ckpt)]) == 0
    info = capsys.readouterr().out
    assert f"{2 * N} rows seen in training, summed over epochs" in info and "never trained" in info


def test_a_model_that_never_trained_saves_no_record(tmp_path):
    """Its file is as an older version wrote it (which refuses unknown keys), and loads back with none trained."""
    path = tmp_path / "fresh.safetensors"
    make().save(path)
    assert "trained_rows" not in read_tagged_safetensors(path, FILE_FORMAT)[1]
    assert gm.LearnableMultiModal.load(path).trained_modalities == {}
    model = make()
    model.train_step(gm.Batch(embeddings=make().encode(views(6))))  # trained, but no encoder: said
    model.save(path)
    assert read_tagged_safetensors(path, FILE_FORMAT)[1]["trained_rows"] == {str(m): 0 for m in gm.Modality}
    assert gm.LearnableMultiModal.load(path).trained_modalities == {}
