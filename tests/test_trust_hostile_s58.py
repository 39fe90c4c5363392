"""Hostile audit (s58) of the newer API: ensembles (save / load / embed),
hidden features, the reconstruction decoders, weight averaging and resume.
Each test pins a defect found and fixed: it failed before its fix."""

import warnings

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import CheckpointError, LearnableMultiModal
from grapheme_multimodal.checkpoint import checkpoint_state
from grapheme_multimodal.cli import main
from grapheme_multimodal.ensemble import ENSEMBLE_FORMAT, save_ensemble
from grapheme_multimodal.io import write_tagged_safetensors

DIMS = {"visual": 5, "auditory": 3}


def _data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 3))
    return {m: (z @ rng.normal(size=(3, d))).astype(np.float32) for m, d in DIMS.items()}


def _model(seed=0, **options):
    options = {"embed_dim": 8, "hidden_dim": 8, "num_heads": 2, "encoder_hidden": (6,), **options}
    model = LearnableMultiModal(input_dims=DIMS, seed=seed, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(_data(), epochs=1, batch_size=16, progress=False)
    return model


@pytest.fixture(scope="module")
def pair():
    return [_model(0), _model(1)]


def test_an_ensemble_of_one_gives_its_members_hidden_features(tmp_path, capsys):
    """EnsembleEmbedder of one member L2-normalised its hidden features, while
    ``grapheme-mm embed --hidden-features`` of an ensemble file of that one
    member wrote them raw (its member's bits), though the README says the two
    are the same; embed_views and embed_fused of an ensemble of one were the
    member's bits already."""
    from grapheme_multimodal.evaluation import EnsembleEmbedder, ModelEmbedder

    model = _model(0)
    member = ModelEmbedder(model, {"v": "visual", "a": "auditory"})
    views = {"v": _data()["visual"], "a": _data()["auditory"]}
    alone, one = member.hidden_features(views), EnsembleEmbedder([member]).hidden_features(views)
    for v in views:
        np.testing.assert_array_equal(one[v], alone[v])
    # and the command line's embedding of an ensemble file of that member: the same features
    save_ensemble([model], tmp_path / "one.gme")
    np.save(tmp_path / "v.npy", views["v"])
    code = main(["embed", str(tmp_path / "one.gme"), "-m", f"visual={tmp_path / 'v.npy'}",
                 "-o", str(tmp_path / "e.npy"), "--hidden-features", str(tmp_path / "h.npy")])
    assert code == 0, capsys.readouterr().err
    np.testing.assert_array_equal(np.load(tmp_path / "h.npy")[:, 0], one["v"])


def test_a_members_missing_tensor_is_named(pair, tmp_path):
    """One member's tensor left out of an ensemble file was refused as a
    forged list of members ("2 members listed, but the tensors of members[0]
    to members[1] alone take 302,016 bytes, more than ..."), with nothing said
    of which tensor is missing."""
    tensors, metas = {}, []
    for j, model in enumerate(pair):
        state, meta = checkpoint_state(model, False)
        tensors.update({f"member/{j}/{k}": v for k, v in state.items()})
        metas.append(meta)
    gone = "member/1/param/encoder.auditory.0.weight"
    assert gone in tensors
    del tensors[gone]
    path = tmp_path / "e.gme"
    write_tagged_safetensors(path, tensors, ENSEMBLE_FORMAT, {"library_version": metas[0]["library_version"], "members": metas})
    with pytest.raises(CheckpointError, match="missing tensors \\['member/1/param/encoder.auditory.0.weight'\\]"):
        gm.load_ensemble(path)


def test_loading_an_ensemble_reads_its_tensors_once_not_once_per_member(tmp_path, monkeypatch):
    """Each member's tensors were picked out of all the file's (and the bytes
    the header declares for it summed over all its names) once per member:
    O(K²) in the members, 400 small members took 3.3 s to load (1,000, by the square,
    about 20 s); now 0.8 s (1,000: 2.1 s, measured)."""
    from grapheme_multimodal import ensemble

    passes = []

    class Counted(dict):
        def items(self):
            passes.append("items")
            return super().items()

        def __iter__(self):
            passes.append("iter")
            return super().__iter__()

    read = ensemble.read_tagged_safetensors

    def counted_read(*args, **kwargs):
        tensors, meta = read(*args, **kwargs)
        return Counted(tensors), meta

    monkeypatch.setattr(ensemble, "read_tagged_safetensors", counted_read)
    small = LearnableMultiModal(input_dims={"visual": 2, "auditory": 2}, embed_dim=4, hidden_dim=4, num_heads=1)
    save_ensemble([small] * 40, tmp_path / "e.gme")
    models = gm.load_ensemble(tmp_path / "e.gme")
    assert len(models) == 40 and len(passes) <= 2, passes
    for name, value in small.state_dict().items():
        np.testing.assert_array_equal(models[-1].state_dict()[name], value)


def test_the_declared_bytes_of_a_prefix_are_those_of_the_names_it_begins():
    from grapheme_multimodal.io import _DeclaredBytes

    rng = np.random.default_rng(0)
    parts = ["a", "/", "member/1/", "member/10/", "\U0010ffff", "z", "é"]
    for _ in range(300):
        sizes = {"".join(rng.choice(parts, size=rng.integers(0, 4))): int(rng.integers(0, 99))
                 for _ in range(rng.integers(0, 12))}
        declared = _DeclaredBytes(sizes)
        for prefix in ["", "a", "member/1/", "member/1", "\U0010ffff", "a\U0010ffff", "zz", *sizes]:
            assert declared.of(prefix) == sum(v for k, v in sizes.items() if k.startswith(prefix)), (sizes, prefix)


def test_a_std_lost_in_float32_is_named_by_the_value_given():
    """A float64 std of 1e-300 is 0 as float32: the refusal said "got 0 at
    index 1" (set_normalization) or "column 1 is 0.0" (load_state_dict), a
    value the caller never gave. The model is left as it was."""
    model = LearnableMultiModal(input_dims={"visual": 3})
    model.set_normalization("visual", [0.0, 0.0, 0.0], [1.0, 2.0, 3.0])
    with pytest.raises(gm.InvalidValueError, match=r"normalization\['visual'\]\.std: got 1e-300 at index 1, which is "
                                                   r"0\.0 as float32; expected finite numbers >= 1\.175e-38") as info:
        model.set_normalization("visual", np.zeros(3), np.array([1.0, 1e-300, 1.0]))
    assert info.value.arg == "normalization['visual'].std"
    state = model.state_dict()
    state["normalization.visual.std"] = np.array([1.0, 1e-300, 1.0])
    with pytest.raises(gm.InvalidValueError, match=r"state_dict\['normalization\.visual\.std'\]: got 1e-300 at index 1"):
        model.load_state_dict(state)
    np.testing.assert_array_equal(model.normalization("visual")[1], [1.0, 2.0, 3.0])
    # a float32 std too small as given is still the core's refusal, by its own value
    with pytest.raises(gm.InvalidValueError, match=r"std: got 1\.401298464324817e-45 at index 0; expected"):
        model.set_normalization("visual", np.zeros(3), np.full(3, 1e-45, np.float32))


def _header_too_large(monkeypatch):
    """safetensors refusing the header, as it refuses one past 100,000,000
    bytes (an ensemble of ~6,600 small members, a history of 3.4 million
    epochs): made so here, where such a file would take seconds and GBs."""
    import safetensors.numpy
    from safetensors import SafetensorError

    def save(*args, **kwargs):
        raise SafetensorError("Error while serializing: header too large")

    monkeypatch.setattr(safetensors.numpy, "save", save)


def test_a_header_safetensors_cannot_hold_is_refused_by_name(pair, tmp_path, monkeypatch, capsys):
    """A save whose header would pass safetensors' 100 MB raised its bare
    ``SafetensorError: Error while serializing: header too large``, naming
    neither what was too large nor what to do (grapheme-mm train --members
    K said it after all its training). The previous file is kept."""
    save_ensemble(pair, tmp_path / "e.gme")
    pair[0].save(tmp_path / "m.gmm")
    _header_too_large(monkeypatch)
    with pytest.raises(gm.InvalidValueError, match=r"^models: 2 members make a header of more than the 100,000,000 "
                                                   r"bytes a safetensors file may hold .*; nothing was written to .*; "
                                                   r"expected fewer members in one file") as info:
        save_ensemble(pair, tmp_path / "e.gme")
    assert info.value.arg == "models"
    long = _model(2)
    long.history = long.history * 3000  # the largest entry of the model's metadata: its history's fault
    with pytest.raises(gm.InvalidValueError, match=r"^model\.history: 3,000 epoch records, [\d,]+ bytes of the file's "
                                                   r"header, would take it past the 100,000,000 bytes .*; nothing was "
                                                   r"written to .*; expected fewer records") as info:
        long.save(tmp_path / "m.gmm")
    assert info.value.arg == "model.history"
    # and grapheme-mm train names --members, its own word for them
    np.save(tmp_path / "v.npy", _data()["visual"])
    np.save(tmp_path / "a.npy", _data()["auditory"])
    capsys.readouterr()
    code = main(["train", "-m", f"visual={tmp_path / 'v.npy'}", "-m", f"auditory={tmp_path / 'a.npy'}", "--members", "2",
                 "--epochs", "1", "--embed-dim", "8", "--hidden-dim", "8", "--heads", "2", "--encoder-hidden", "8",
                 "--encoder-output-dim", "8", "--no-progress", "-o", str(tmp_path / "e.gme"), "--overwrite"])
    assert code == 2 and "grapheme-mm: error: --members: 2 members make a header of" in capsys.readouterr().err
    monkeypatch.undo()
    assert len(gm.load_ensemble(tmp_path / "e.gme")) == 2 and gm.LearnableMultiModal.load(tmp_path / "m.gmm").epochs_trained == 1


def test_members_fitted_on_columns_in_other_orders(tmp_path, capsys):
    """save_ensemble took members fitted on a modality's columns in other
    orders, and grapheme-mm embed then refused every header of that file,
    each order by one member or the other ("expected ... w,y,x", then given
    that, "expected ... x,y,w"), naming neither. save_ensemble refuses such
    members now; a file saved before still loads, and embed names the
    member and says no header suits them all."""
    pd = pytest.importorskip("pandas")
    data = _data()
    visual = pd.DataFrame(data["visual"][:, :3], columns=["x", "y", "w"])
    members = []
    for seed, order in ((0, ["x", "y", "w"]), (1, ["w", "y", "x"])):
        model = LearnableMultiModal(input_dims={"visual": 3, "auditory": 3}, embed_dim=8, hidden_dim=8, num_heads=2, seed=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit({"visual": visual[order], "auditory": data["auditory"]}, epochs=1, progress=False)
        members.append(model)
    path = tmp_path / "e.gme"
    with pytest.raises(gm.InvalidValueError, match=r"^models\[1\]: was fitted on the visual columns \['w', 'y', 'x'\], "
                                                   r"those of models\[0\] \(\['x', 'y', 'w'\]\) in another order") as info:
        save_ensemble(members, path)
    assert info.value.arg == "models[1]" and not path.exists()
    # members[0]'s columns not known (fitted on arrays): members[1] and [2] are compared with each other
    bare = LearnableMultiModal(input_dims={"visual": 3, "auditory": 3}, embed_dim=8, hidden_dim=8, num_heads=2)
    with pytest.raises(gm.InvalidValueError, match=r"^models\[2\]: was fitted on the visual columns \['w', 'y', 'x'\], "
                                                   r"those of models\[1\] \(\['x', 'y', 'w'\]\) in another order"):
        save_ensemble([bare, *members], path)
    # a file saved before the check: it loads, and embed says which member and why no header suits
    tensors, metas = {}, []
    for j, model in enumerate(members):
        state, meta = checkpoint_state(model, False)
        tensors.update({f"member/{j}/{k}": v for k, v in state.items()})
        metas.append(meta)
    write_tagged_safetensors(path, tensors, ENSEMBLE_FORMAT, {"library_version": metas[0]["library_version"], "members": metas})
    assert len(gm.load_ensemble(path)) == 2
    visual.to_csv(tmp_path / "v.csv", index=False)
    capsys.readouterr()
    assert main(["embed", str(path), "-m", f"visual={tmp_path / 'v.csv'}", "-o", str(tmp_path / "o.npy")]) == 2
    err = capsys.readouterr().err
    assert "names the columns member 1 of the ensemble of 2 was trained on in another order (x,y,w)" in err, err
    assert "(member 0 was trained on them in the order x,y,w: no header suits every member" in err, err


def test_an_ensemble_embedder_refuses_members_fitted_on_other_column_orders():
    """EnsembleEmbedder took them, and then refused every data frame of the
    view, each column order by one member or the other."""
    pd = pytest.importorskip("pandas")
    from grapheme_multimodal.evaluation import EnsembleEmbedder, ModelEmbedder

    visual = pd.DataFrame(_data()["visual"][:, :3], columns=["x", "y", "w"])
    members = []
    for seed, order in ((0, ["x", "y", "w"]), (1, ["w", "y", "x"])):
        model = LearnableMultiModal(input_dims={"visual": 3, "auditory": 3}, embed_dim=8, hidden_dim=8, num_heads=2, seed=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit({"visual": visual[order], "auditory": _data()["auditory"]}, epochs=1, progress=False)
        members.append(ModelEmbedder(model, {"v": "visual", "a": "auditory"}))
    with pytest.raises(gm.InvalidValueError, match=r"^members\[1\]: was fitted on view 'v''s columns \['w', 'y', 'x'\], "
                                                   r"those of members\[0\] \(\['x', 'y', 'w'\]\) in another order") as info:
        EnsembleEmbedder(members)
    assert info.value.arg == "members[1]"
    assert len(EnsembleEmbedder([members[0], members[0]])) == 2
    bare = LearnableMultiModal(input_dims={"visual": 3, "auditory": 3}, embed_dim=8, hidden_dim=8, num_heads=2)
    with pytest.raises(gm.InvalidValueError, match=r"^members\[2\]: was fitted on view 'v''s columns .* those of "
                                                   r"members\[1\] "):
        EnsembleEmbedder([ModelEmbedder(bare, {"v": "visual", "a": "auditory"}), *members])


def test_stopping_on_a_validation_given_says_patience_not_early_stopping():
    """fit_with_stopping (and uci.fit_views / fit_ensemble) on validation
    rows that leave the monitored loss 0 every epoch said "expected ...,
    or early_stopping=None": an argument they refuse (patience sets it)."""
    from grapheme_multimodal.stopping import fit_with_stopping

    model = LearnableMultiModal(input_dims=DIMS, embed_dim=8, hidden_dim=8, num_heads=2)
    before = {k: v.copy() for k, v in model.state_dict().items()}
    with pytest.raises(gm.InvalidValueError, match=r"^validation: .*would be 0 every epoch \(early stopping would keep "
                                                   r"the first epoch\); expected .*, or patience=0 \(no early stopping\)$"):
        fit_with_stopping(model, _data(), validation={"visual": _data(seed=1)["visual"]}, validation_fraction=0.1,
                          patience=3, monitor="val_contrastive", epochs=2, progress=False)
    assert all(np.array_equal(v, before[k]) for k, v in model.state_dict().items())
    history = fit_with_stopping(model, _data(), validation={"visual": _data(seed=1)["visual"]}, validation_fraction=0.1,
                                patience=0, monitor="val_contrastive", epochs=1, progress=False)
    assert len(history.epochs) == 1


def test_a_members_warning_reaches_a_caller_in_the_repl():
    """A warning of a member trained on a thread (n_jobs > 1) is said at the
    user's line through warnings.warn_explicit, which was given the module's
    globals: their loader, for the REPL's or ``python -c``'s ``__main__``
    (BuiltinImporter), raised ``ImportError: '__main__' is not a built-in
    module``, and the fit failed with it (MultimodalEmbedder(n_jobs=3).fit of
    a constant view, typed in the REPL)."""
    import functools
    import importlib.machinery

    from grapheme_multimodal import _caller_warnings, _parallel

    repl = {"__name__": "__main__", "__loader__": importlib.machinery.BuiltinImporter,
            "run_tasks": _parallel.run_tasks,
            "tasks": [functools.partial(_caller_warnings.warn_at_caller, "a member's warning", UserWarning)] * 2}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exec(compile("\n\nrun_tasks(tasks, 2)\n", "<stdin>", "exec"), repl)
    assert [(str(w.message), w.filename, w.lineno) for w in caught] == [("a member's warning", "<stdin>", 3)] * 2
