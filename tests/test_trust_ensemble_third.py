"""A third hostile-use audit of the ensembles (uci.fit_ensemble,
evaluation.EnsembleEmbedder, save_ensemble, MultimodalEmbedder(n_members=K),
run_demo(members=K)): what an ensemble refuses is named as the caller named
it, by the member it is about, with the package's own exception classes."""

from __future__ import annotations

import re

import numpy as np
import pytest

pytest.importorskip("sklearn")

from grapheme_multimodal import LearnableMultiModal, evaluation, uci  # noqa: E402
from grapheme_multimodal.ensemble import save_ensemble  # noqa: E402
from grapheme_multimodal.exceptions import (  # noqa: E402
    InvalidTypeError, InvalidValueError, NonFiniteError, ShapeError, TooLargeError,
)
from grapheme_multimodal.sklearn import MultimodalEmbedder  # noqa: E402

TINY = uci.TrainingSettings(epochs=1, batch_size=32, embed_dim=8, hidden_dim=16, num_heads=2, encoder_hidden=(16,))


def _views(n: int = 48) -> dict:
    rng = np.random.default_rng(0)
    z = rng.normal(size=(n, 3))
    return {"a": (z @ rng.normal(size=(3, 5))).astype(np.float32),
            "b": (z @ rng.normal(size=(3, 4))).astype(np.float32)}


@pytest.fixture(scope="module")
def shallow() -> evaluation.ModelEmbedder:
    """A member with one hidden layer (16,)."""
    return uci.fit_views(_views(), 0, settings=TINY)


@pytest.fixture(scope="module")
def deep() -> evaluation.ModelEmbedder:
    """A member with two hidden layers (8, 7) and wider embeddings."""
    settings = uci.TrainingSettings(epochs=1, batch_size=32, embed_dim=16, hidden_dim=16, num_heads=2, encoder_hidden=(8, 7))
    return uci.fit_views(_views(), 1, settings=settings)


# --- fit_ensemble ---------------------------------------------------------------------------


def test_a_view_too_wide_for_memory_is_named_as_the_view_whatever_the_number_of_members():
    """Before: with members=2, "input_dims: embed_dim=8, ... a model of 328565046320
    parameters ... would need 10.8 TiB" (the model's argument, which fit_ensemble has
    not), where one member's ensemble named it "views"."""
    views = {"a": np.broadcast_to(np.float32(1), (40, 2**31)), "b": _views(40)["b"]}  # no memory: one value
    messages = []
    for members in (1, 2):
        with pytest.raises(TooLargeError) as info:
            uci.fit_ensemble(views, 0, members=members, settings=TINY)
        assert str(info.value).startswith("views: embed_dim=8, hidden_dim=16, input_dims up to 2147483648")
        assert info.value.arg == "views"
        messages.append(str(info.value))
    assert messages[0] == messages[1]


@pytest.mark.parametrize("call", [
    lambda n_jobs: uci.fit_ensemble(_views(), 0, members=2, settings=TINY, n_jobs=n_jobs),
    lambda n_jobs: MultimodalEmbedder(embed_dim=8, hidden_dim=16, num_heads=2, epochs=1, n_members=2,
                                      n_jobs=n_jobs).fit(list(_views().values())),
])
@pytest.mark.parametrize("n_jobs, shown", [("2", r"'2' \(str\)"), (1.0, r"1\.0 \(float\)"), (np.bool_(True), re.escape(f"{np.bool_(True)!r} ({type(np.bool_(True)).__name__})"))])
def test_n_jobs_of_a_wrong_type_is_the_packages_type_error_as_n_members_is(call, n_jobs, shown):
    """Before: a plain TypeError (no .arg; ``except InvalidValueError``, which catches
    a bad n_members, let it through), and numpy's True shown as "got bool"."""
    with pytest.raises(InvalidTypeError, match=rf"^n_jobs: expected None or an int \(1: one at a time, -1: one per "
                                               rf"CPU\), got {shown}$") as info:
        call(n_jobs)
    assert info.value.arg == "n_jobs" and isinstance(info.value, TypeError)


# --- EnsembleEmbedder -----------------------------------------------------------------------


def test_hidden_features_name_the_member_that_lacks_the_layer(shallow, deep):
    """Members of other depths: layer 1 is the deep member's second layer and no
    layer of the shallow one. Before: "layer: expected an index into
    config.encoder_hidden = (16,) (-1 to 0), got 1", of which of the K members unsaid."""
    views = _views()
    ensemble = evaluation.EnsembleEmbedder([deep, shallow])
    for layer in (1, -2):
        with pytest.raises(InvalidValueError, match=rf"^layer: members\[1\]: expected an index into config\.encoder_hidden "
                                                    rf"= \(16,\) \(-1 to 0\), got {layer}$") as info:
            ensemble.hidden_features(views, layer=layer)
        assert info.value.arg == "layer"
    with pytest.raises(InvalidValueError, match=r"^layer: members\[0\]: expected an index into config\.encoder_hidden "
                                                r"= \(8, 7\) \(-2 to 1\), got 2$"):
        ensemble.hidden_features(views, layer=2)
    with pytest.raises(InvalidTypeError, match=r"^layer: expected an integer index into config\.encoder_hidden, got '0'"):
        ensemble.hidden_features(views, layer="0")  # a wrong type: every member's refusal, as the model's
    # a layer every member has: each member's block of that layer, unit per row, / sqrt(2)
    for layer, widths in ((0, (8, 16)), (-1, (7, 16))):
        hidden = ensemble.hidden_features(views, layer=layer)
        assert hidden["a"].shape == (48, sum(widths))
        own = deep.hidden_features(views, layer=layer)["a"]
        expected = own / np.linalg.norm(own, axis=1, keepdims=True) / np.sqrt(2)
        np.testing.assert_allclose(hidden["a"][:, :widths[0]], expected, rtol=1e-5, atol=1e-7)


def test_an_ensemble_of_one_says_one_member(shallow):
    """Before: "EnsembleEmbedder(1 members, ...)" and "(1 members side by side)"."""
    one = evaluation.EnsembleEmbedder([shallow])
    assert repr(one) == "EnsembleEmbedder(1 member, views=['a', 'b'])"
    assert repr(evaluation.EnsembleEmbedder([shallow, shallow])).startswith("EnsembleEmbedder(2 members, ")
    emb = one.embed_views(_views())
    with pytest.raises(ShapeError, match=r"^a: expected the ensemble's embeddings \[N, 8\] \(1 member\), got shape \(8,\)$"):
        one.bind(emb["a"][0], emb["b"][0])


@pytest.mark.parametrize("call, arg, message", [
    (lambda m: evaluation.EnsembleEmbedder([m, object()]), "members[1]",
     r"^members\[1\]: expected a ModelEmbedder \(uci\.fit_views gives one\), got object$"),
    (lambda m: evaluation.EnsembleEmbedder({"a": m}), "members", r"^members: expected a sequence of ModelEmbedder, got dict$"),
    (lambda m: save_ensemble(m.model, "never.safetensors"), "models",
     r"^models: expected a sequence of LearnableMultiModal, got LearnableMultiModal; one model is saved with "
     r"model\.save\(path\), or as an ensemble of one: save_ensemble\(\[model\], path\)$"),
    (lambda m: save_ensemble([m.model, m], "never.safetensors"), "models[1]",
     r"^models\[1\]: expected a LearnableMultiModal, got ModelEmbedder; .*save_ensemble\(ensemble\.models, path\)$"),
])
def test_members_of_a_wrong_type_are_the_packages_type_error_naming_them(shallow, call, arg, message, tmp_path, monkeypatch):
    """Before: plain TypeErrors without .arg, where an empty list of members was already
    an InvalidValueError naming them."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidTypeError, match=message) as info:
        call(shallow)
    assert info.value.arg == arg and isinstance(info.value, TypeError)
    assert not (tmp_path / "never.safetensors").exists()


# --- run_demo(members=K) -----------------------------------------------------------------------


@pytest.mark.parametrize("settings, given", [({"epochs": 1}, "dict"), (None, "NoneType")])
def test_run_demo_refuses_settings_that_are_not_training_settings_before_any_work(settings, given, tmp_path, monkeypatch):
    """Before: AttributeError "'dict' object has no attribute 'seed'", read for the
    members' seeds."""
    from grapheme_multimodal import demo

    monkeypatch.setattr(demo, "load_multiple_features", lambda: pytest.fail("the data were loaded"))
    for members in (1, 2):
        with pytest.raises(InvalidTypeError, match=rf"^settings: expected a TrainingSettings, got {given}$") as info:
            demo.run_demo(tmp_path / "out", settings=settings, members=members)
        assert info.value.arg == "settings"
    assert not (tmp_path / "out").exists()


def test_ensemble_members_of_other_configs_save_and_embed_as_they_did(shallow, deep, tmp_path):
    """Members of other embedding widths and depths (the same inputs) are an
    ensemble, in a file too: saved and loaded, each member embeds bit for bit."""
    from grapheme_multimodal.ensemble import load_models

    save_ensemble([deep.model, shallow.model], tmp_path / "mixed.safetensors")
    back = load_models(tmp_path / "mixed.safetensors")
    assert [m.config.embed_dim for m in back] == [16, 8]
    inputs = {deep.modalities[v]: x for v, x in _views().items()}
    for model, member in zip(back, (deep, shallow)):
        np.testing.assert_array_equal(model.encode_and_fuse(inputs)[1], member.model.encode_and_fuse(inputs)[1])
    assert isinstance(back[0], LearnableMultiModal)


# --- parameters grown by too large a learning rate ---------------------------------------------


GROWN = (r"got 1e\+30; the visual encoder's parameters have grown to .* in magnitude, and a row of moderate values .* "
         r"overflows float32 in it; expected {} \(too large a learning rate grows the parameters\)$")


@pytest.mark.parametrize("members", [1, 2])
def test_fit_ensemble_blames_the_settings_learning_rate_for_parameters_grown_past_float32(members):
    """Before: NonFiniteError "parameters: the visual encoder's parameters have grown to
    1e+30 ... expected parameters of moderate size", no argument of fit_ensemble's or
    fit_views' (the estimator named its own learning_rate)."""
    settings = uci.TrainingSettings(epochs=5, batch_size=8, embed_dim=8, hidden_dim=16, num_heads=2,
                                    encoder_hidden=(16,), learning_rate=1e30)
    expected = GROWN.format(r"settings with a smaller learning_rate")
    with pytest.raises(NonFiniteError, match=r"^settings\.learning_rate: " + expected) as info:
        uci.fit_ensemble(_views(), 0, members=members, settings=settings)
    assert info.value.arg == "settings.learning_rate"
    with pytest.raises(NonFiniteError, match=r"^settings\.learning_rate: " + expected):
        uci.fit_views(_views(), 0, settings=settings)


@pytest.mark.parametrize("members", ["1", "2"])
def test_train_blames_lr_for_parameters_grown_past_float32(members, tmp_path, capsys):
    """Before: "grapheme-mm: error: parameters: the visual encoder's parameters have
    grown ...", which no flag sets."""
    from grapheme_multimodal.cli import main

    for name, x in _views(40).items():
        np.save(tmp_path / f"{name}.npy", x)
    out = tmp_path / "never.safetensors"
    code = main(["train", "-m", f"visual={tmp_path / 'a.npy'}", "-m", f"auditory={tmp_path / 'b.npy'}", "--epochs", "3",
                 "--batch-size", "8", "--embed-dim", "8", "--hidden-dim", "8", "--heads", "2", "--lr", "1e30",
                 "--no-progress", "--members", members, "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert re.match(r"^grapheme-mm: error: --lr: " + GROWN.format(r"a smaller --lr"), err.strip()), err
    assert not out.exists()
