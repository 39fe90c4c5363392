"""A newcomer's first hour from the README: what confused, misled or went
unexplained, each pinned.

- Feature rows of their own width given to a model made without
  ``input_dims`` were refused as "expected shape (any, 18), got (n, 4)",
  naming neither where the 18 came from nor the ``input_dims`` that fixes it.
- ``{"image": x}`` or ``-m image=...`` was refused with the seven names and
  no word of which one an image goes in as; ``grapheme-mm train --help``
  said ``NAME=PATH`` without naming one.
- A mask of one column per view given (``[B, 3]``) was refused as
  "expected shape (B, 7)" with no word of what the 7 columns are, and a
  mask keyed by modality like the inputs (``{"auditory": rows}``) as a
  mapping whose order "is not the rows' order".
- ``ModalGraph("a red ball", ...)`` (or a feature vector there) was refused
  as "expected Graph, got str" with no word of ``Graph.from_text`` or
  ``ModalFeatures``.
- The README said ``cross_val_score`` and ``GridSearchCV`` "split one view
  only", leaving a user with several views at scikit-learn's "inconsistent
  numbers of samples" and no way through; it now gives one, run here as
  the README words it.
- A frame (or a CSV file given to ``grapheme-mm embed``) holding the
  columns the model learned plus one more was refused by its width alone,
  "expected shape (any, 4), got (n, 5)" (the CLI: "a checkpoint from a
  different config?"), though its names said which column was new.
- ``fit(..., validation=(inputs, mask))``, Keras' ``validation_data``
  habit, was refused as "a sequence of 7 arrays ... got a tuple of 2" with
  no word of ``validation_mask``.
- ``model.fit(x, patience=5)`` / ``verbose=0`` / ``learning_rate=`` /
  ``validation_split=`` and ``model.fit(X, y)``, as Keras and scikit-learn
  take them, got Python's bare "unexpected keyword argument" or "takes 2
  positional arguments", with no word of this fit's way to the same.
- ``MultimodalEmbedder().fit([view_a.tolist(), view_b.tolist()])`` said
  "several views are a list of arrays", to a user who gave a list, without
  the conversion to make.
- A ``.npy`` file with a row of NaN (a missing view, as MultimodalEmbedder
  takes one) was refused by ``grapheme-mm`` as "holds nan; expected finite
  numbers", with no way on, where a CSV file's NaN got one.
- A row of NaN throughout, how MultimodalEmbedder (and scikit-learn's
  habit) marks a missing view, given to ``model.fit`` was refused as "holds
  NaN or inf ... (rows the mask marks absent may hold anything)", naming
  neither the mask's column nor that the row must be marked.
- One sample as a 1-D array (``model.encode({"visual": x})``,
  ``model.bind(a, b)``), as a newcomer embeds a single row, was refused as
  "expected 2-D input (any, 4), got shape (4,)" without the reshape.
- ``model.fit(model.experience.sample(n))`` said "got ExperienceBatch", not
  that fit takes the buffer and a sample trains through ``train_step``.
- ``model.fit(X)`` / ``model.encode(X)`` of one array or frame, as
  scikit-learn and PyTorch take one, was refused without a word of how to
  name its modality.
- ``from grapheme_multimodal import MultimodalEmbedder`` (and
  ``gm.MultimodalEmbedder``), the estimator the README shows, said "cannot
  import name": it is reached from the package now, imported when first
  asked for, and without scikit-learn the attribute error names the extra.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import grapheme_multimodal as gm


def _rows(n: int, d: int) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(n, d))


def test_feature_rows_without_input_dims_name_the_input_dims_to_give() -> None:
    model = gm.LearnableMultiModal(seed=0, input_dims={"tactile": 5})
    before = model.state_dict()
    data = {"visual": _rows(12, 40), "auditory": _rows(12, 18), "linguistic": _rows(12, 7)}
    with pytest.raises(gm.ShapeError, match=re.escape(
            "data['visual']: expected shape (any, 18), got (12, 40); a modality takes its graph features unless "
            "input_dims gives it another width: for these feature rows, make the model with "
            "input_dims={'visual': 40, 'linguistic': 7, 'tactile': 5}")) as info:
        model.fit(data, epochs=1, progress=False)
    assert info.value.arg == "data['visual']"
    assert all(np.array_equal(before[k], v) for k, v in model.state_dict().items())
    # the input_dims it names is one that fits
    gm.LearnableMultiModal(seed=0, input_dims={"visual": 40, "linguistic": 7, "tactile": 5}).fit(
        data, epochs=1, progress=False)


def test_a_width_refused_after_training_adds_no_input_dims_advice() -> None:
    """A trained modality's width is the model's: the rows are what is wrong, not the model."""
    model = gm.LearnableMultiModal(seed=0)
    model.fit({"visual": _rows(12, 18), "auditory": _rows(12, 18)}, epochs=1, progress=False)
    with pytest.raises(gm.ShapeError) as info:
        model.encode({"visual": _rows(3, 4)})
    assert str(info.value) == "inputs['visual']: expected shape (any, 18), got (3, 4)"


_SEVEN = "expected one of visual, auditory, linguistic, tactile, proprioceptive, action, abstract"


@pytest.mark.parametrize("name, modality", [("image", "visual"), ("Audio", "auditory"), ("text", "linguistic")])
def test_a_modality_named_by_its_kind_of_data_says_which_modality_takes_it(name, modality) -> None:
    model = gm.LearnableMultiModal(seed=0, input_dims={modality: 4})
    with pytest.raises(gm.InvalidValueError, match=re.escape(
            f"inputs: unknown modality {name!r}; {_SEVEN}; for {name.lower()} data, use {modality!r}")):
        model.encode({name: _rows(2, 4)})


def test_an_unknown_name_of_no_kind_gets_the_names_only() -> None:
    with pytest.raises(gm.InvalidValueError) as info:
        gm.Modality.parse("smell", "inputs")
    assert str(info.value) == f"inputs: unknown modality 'smell'; {_SEVEN}"


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(Path(gm.__file__).resolve().parent.parent), "PATH": "/usr/bin:/bin",
           "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, "-m", "grapheme_multimodal", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


def test_train_help_and_error_name_the_modalities(tmp_path) -> None:
    out = _cli("train", "--help", cwd=tmp_path).stdout
    flat = " ".join(out.split())
    assert "NAME is one of " + ", ".join(str(m) for m in gm.Modality) in flat
    assert "images: visual" in flat
    np.save(tmp_path / "img.npy", _rows(20, 4))
    proc = _cli("train", "-m", "image=img.npy", "--no-progress", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == f"grapheme-mm: error: --modality: unknown modality 'image'; {_SEVEN}; for image data, use 'visual'\n"


_COLUMNS = ("one column per modality, all 7 in slot order (visual, auditory, linguistic, tactile, proprioceptive, "
            "action, abstract), whichever are given: True where the row holds that modality")


def _three_views(n: int = 10):
    model = gm.LearnableMultiModal(seed=0, input_dims={"visual": 4, "auditory": 3, "linguistic": 2})
    return model, {"visual": _rows(n, 4), "auditory": _rows(n, 3), "linguistic": _rows(n, 2)}


def test_a_mask_of_one_column_per_view_says_what_its_columns_are() -> None:
    model, data = _three_views()
    with pytest.raises(gm.ShapeError) as info:
        model.fit(data, mask=np.ones((10, 3), bool), epochs=1, progress=False)
    assert str(info.value) == f"mask: expected shape (B, 7), got (10, 3); {_COLUMNS}"
    assert model.history == [] and not model.trained_modalities
    # a wrong row count with the right columns says nothing of columns
    with pytest.raises(gm.ShapeError) as info:
        model.encode(data, mask=np.ones((9, 7), bool))
    assert "9" in str(info.value) and "one column per modality" not in str(info.value)


def test_a_mask_keyed_by_modality_says_how_to_lay_it_out() -> None:
    model, data = _three_views()
    present = np.arange(10) >= 3
    with pytest.raises(TypeError) as info:
        model.fit(data, mask={"auditory": present}, epochs=1, progress=False)
    assert model.history == []
    assert str(info.value) == (
        f"mask: got a dict keyed by modality; expected one [B, 7] array; {_COLUMNS} (from this dict: m = "
        "np.zeros((B, 7), bool), then m[:, k] = its rows for each modality's slot k (auditory: 1), and True "
        "throughout the column of any other modality given)")
    # what it says to build is taken
    m = np.zeros((10, 7), bool)
    m[:, 1] = present
    m[:, [0, 2]] = True
    model.fit(data, mask=m, epochs=1, progress=False)
    assert model.trained_modalities[gm.Modality.AUDITORY] == 7


def test_a_mask_dict_keyed_otherwise_keeps_its_refusal() -> None:
    model, data = _three_views()
    with pytest.raises(TypeError, match=r"^mask: got a dict; expected an array or a list: pass a list or array in row order"):
        model.encode(data, mask={0: [True] * 7})


@pytest.mark.parametrize("value, remedy", [
    ("a red ball", "str; make one of a text with gm.Graph.from_text(text)"),
    (np.ones(3), "array of shape (3,) and dtype float64; a feature vector is a component as "
                 "gm.ModalFeatures(features, modality)"),
    (5, "int"),
])
def test_a_modal_graph_of_text_or_features_names_the_way_in(value, remedy) -> None:
    with pytest.raises(TypeError) as info:
        gm.ModalGraph(value, "linguistic")
    assert str(info.value) == f"graph: expected Graph, got {remedy}"
    # each way in it names is taken
    gm.ModalGraph(gm.Graph.from_text("a red ball"), "linguistic")
    gm.ModalFeatures(np.ones(3), "visual")


def _readme() -> str:
    return (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def test_the_readme_s_way_to_cross_validate_several_views_runs_as_written() -> None:
    pytest.importorskip("sklearn")
    from sklearn.model_selection import cross_val_score
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline

    from grapheme_multimodal.sklearn import MultimodalEmbedder

    flat = " ".join(_readme().split())
    assert '"Found input variables with inconsistent numbers of samples"' in flat
    written = re.search(r"one array and say their widths, `(MultimodalEmbedder\(view_sizes=\[32, 32\]\))` "
                        r"for views of columns 0–31 and 32–63", flat)
    assert written, "the README's estimator that takes the views side by side"
    rng = np.random.default_rng(0)
    Xs = [rng.normal(size=(60, 32)), rng.normal(size=(60, 32))]
    y = np.arange(60) % 2
    small = dict(epochs=1, embed_dim=8, hidden_dim=8, num_heads=2, encoder_hidden=(8,), encoder_output_dim=8,
                 validation_fraction=0)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):  # what the README quotes
        cross_val_score(make_pipeline(MultimodalEmbedder(**small), KNeighborsClassifier(3)), Xs, y, cv=2)
    embedder = eval(written.group(1), {"MultimodalEmbedder": MultimodalEmbedder}).set_params(**small)
    pipe = make_pipeline(embedder, KNeighborsClassifier(3))
    scores = cross_val_score(pipe, np.hstack(Xs), y, cv=2, error_score="raise")
    assert scores.shape == (2,)
    # the views side by side are the views themselves: the same embedding as fitting the list
    alone = MultimodalEmbedder(**small).fit(Xs).transform(Xs)
    assert np.array_equal(pipe.fit(np.hstack(Xs), y)[:-1].transform(np.hstack(Xs)), alone)
    # "no StandardScaler is needed before it: standardize=True scales each view"
    assert "(no `StandardScaler` is needed before it: `standardize=True` scales each view; a column whose spread" in flat
    assert MultimodalEmbedder().standardize is True
    rescaled = MultimodalEmbedder(**small).fit_transform([x * 100 + 3 for x in Xs])
    np.testing.assert_allclose(rescaled, alone, atol=1e-5)


def _frame(n: int, names: str):
    pd = pytest.importorskip("pandas")
    return pd.DataFrame(np.random.default_rng(1).normal(size=(n, len(names))), columns=list(names))


def test_a_frame_with_a_column_beyond_those_learned_names_it() -> None:
    learned = _frame(12, "abcd")
    model = gm.LearnableMultiModal(seed=0, input_dims={"visual": 4, "auditory": 2})
    model.fit({"visual": learned, "auditory": _rows(12, 2)}, epochs=1, progress=False)
    wider = learned.assign(label=1.0)
    expected = ("inputs['visual']: its columns ['a', 'b', 'c', 'd', 'label'] hold those the model was fitted on "
                "(['a', 'b', 'c', 'd']) and ['label'] beside them; expected only the fitted columns, in their order: "
                "inputs['visual'][['a', 'b', 'c', 'd']]")
    with pytest.raises(gm.InvalidValueError) as info:
        model.encode({"visual": wider})
    assert str(info.value) == expected
    # what it says to pass is what the model learned
    assert np.array_equal(model.encode({"visual": wider[["a", "b", "c", "d"]]}), model.encode({"visual": learned}))
    before = model.state_dict()
    with pytest.raises(gm.InvalidValueError, match=re.escape("data['visual']: its columns ['a', 'b', 'c', 'd', 'label'] hold")):
        model.fit({"visual": wider, "auditory": _rows(12, 2)}, epochs=1, progress=False)
    assert all(np.array_equal(before[k], v) for k, v in model.state_dict().items())


def test_embed_names_a_csv_column_beyond_those_trained_on(tmp_path, monkeypatch, capsys) -> None:
    from grapheme_multimodal.cli import main

    monkeypatch.chdir(tmp_path)  # the files named as a user names them, relative
    _frame(30, "abc").to_csv("a.csv", index=False)
    np.save("b.npy", _rows(30, 3))
    tiny = ["--epochs", "1", "--embed-dim", "8", "--hidden-dim", "8", "--no-progress"]
    assert main(["train", "-m", "visual=a.csv", "-m", "auditory=b.npy", "-o", "m.safetensors", *tiny]) == 0
    _frame(30, "abc").assign(new=_rows(30, 1)[:, 0]).to_csv("wide.csv", index=False)
    capsys.readouterr()
    assert main(["embed", "m.safetensors", "-m", "visual=wide.csv", "-o", "f.npy"]) == 2
    assert capsys.readouterr().err == (
        "grapheme-mm: error: visual: the header of wide.csv names the columns the checkpoint was trained on (a,b,c) "
        "and new beside them; expected only the columns it was trained on, in that order: a,b,c\n")
    assert not (tmp_path / "f.npy").exists()

def test_validation_given_with_its_mask_as_a_pair_names_validation_mask() -> None:
    model, data = _three_views()
    held, mask = {k: v[:4] for k, v in data.items()}, np.zeros((4, 7), bool)
    mask[:, :3] = True
    with pytest.raises(TypeError) as info:
        model.fit(data, validation=(held, mask), epochs=1, progress=False)
    assert str(info.value) == (
        "validation: expected a mapping modality -> array or a sequence of 7 arrays/None, got a tuple of 2; its mask "
        "goes in beside it: fit(..., validation=inputs, validation_mask=mask)")
    assert model.history == []
    history = model.fit(data, validation=held, validation_mask=mask, epochs=1, progress=False)
    assert "val_total" in history.epochs[0]


@pytest.mark.parametrize("option, hint", [
    ("patience", "early stopping's patience is early_stopping=k (epochs without improvement)"),
    ("verbose", "the progress bar is progress=True or False"),
    ("learning_rate", "the learning rate of this call is lr= (the model's own is its config's learning_rate)"),
    ("validation_split", "hold rows out yourself and pass them as validation= "
                         "(grapheme_multimodal.stopping.fit_with_stopping holds out a fraction for you)"),
])
def test_another_library_s_fit_option_names_this_fit_s_way(option, hint) -> None:
    model, data = _three_views()
    with pytest.raises(TypeError) as info:
        model.fit(data, epochs=1, progress=False, **{option: 1})
    assert str(info.value) == f"fit() got an unexpected keyword argument {option!r}; {hint}"
    assert model.history == []


def test_fit_with_labels_says_it_learns_without_them() -> None:
    model, data = _three_views()
    with pytest.raises(TypeError) as info:
        model.fit(data, np.arange(10) % 2)
    assert str(info.value) == (
        "LearnableMultiModal.fit() takes 2 positional arguments but 3 were given: fit(data) learns without labels, "
        "and takes its options by keyword, e.g. fit(data, epochs=10, batch_size=64)")
    with pytest.raises(TypeError, match=r"^fit\(\) got an unexpected keyword argument 'shuffle'$"):  # no hint to give
        model.fit(data, shuffle=True)
    assert model.history == []


def test_views_as_nested_lists_name_the_conversion_to_arrays() -> None:
    pytest.importorskip("sklearn")
    import warnings

    from grapheme_multimodal.sklearn import MultimodalEmbedder

    Xs = [_rows(40, 4).tolist(), _rows(40, 3).tolist()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy 1's VisibleDeprecationWarning of the ragged probe
        with pytest.raises(gm.InvalidValueError, match=re.escape(
                "; several views go in as a list of arrays, [np.asarray(view) for view in Xs], one view as rows of "
                "one length")):
            MultimodalEmbedder(epochs=1).fit(Xs)
    small = dict(epochs=1, embed_dim=8, hidden_dim=8, num_heads=2, encoder_hidden=(8,), encoder_output_dim=8,
                 validation_fraction=0)
    assert MultimodalEmbedder(**small).fit_transform([np.asarray(view) for view in Xs]).shape == (40, 8)


def test_nan_in_an_npy_file_says_what_to_do_with_a_missing_value(tmp_path, monkeypatch, capsys) -> None:
    from grapheme_multimodal.cli import main

    monkeypatch.chdir(tmp_path)
    views = _rows(20, 3)
    views[4, 0] = np.nan  # part of a row: a row of NaN throughout is the event lacking the view (s64)
    np.save("a.npy", views)
    np.save("b.npy", _rows(20, 2))
    assert main(["train", "-m", "visual=a.npy", "-m", "auditory=b.npy", "--epochs", "1", "--no-progress"]) == 2
    assert capsys.readouterr().err == (
        "grapheme-mm: error: visual (a.npy): row 4 holds nan (column 0 of 3); expected finite numbers; NaN is a missing "
        "value, taken only as a whole row: fill the row's missing values, or make every value of the row NaN (a row of "
        "NaN marks the event as lacking this modality, as an all-NaN row of a MultimodalEmbedder view does)\n")
    views[4] = np.inf  # no missing value: nothing to add
    np.save("a.npy", views)
    assert main(["train", "-m", "visual=a.npy", "-m", "auditory=b.npy", "--epochs", "1", "--no-progress"]) == 2
    assert capsys.readouterr().err.endswith("row 4 holds inf (column 0 of 3); expected finite numbers\n")
    assert not (tmp_path / "model.safetensors").exists()


_NAMED = "; one modality's rows go in named by it, e.g. {'visual': x}, several in one dict"


def test_one_array_or_frame_given_for_all_inputs_says_how_to_name_its_modality() -> None:
    model, data = _three_views()
    with pytest.raises(TypeError) as info:
        model.fit(data["visual"], epochs=1, progress=False)
    assert str(info.value) == (
        f"data: expected per-modality arrays, a list of MultiModalEvent or an ExperienceBuffer, got ndarray{_NAMED}")
    expected = "inputs: expected a mapping modality -> array or a sequence of 7 arrays/None, got {}{}"
    with pytest.raises(TypeError) as info:
        model.encode(data["visual"])
    assert str(info.value) == expected.format("array of shape (10, 4) and dtype float64", _NAMED)
    with pytest.raises(TypeError) as info:
        model.encode(_frame(10, "abcd"))
    assert str(info.value) == expected.format("DataFrame", _NAMED)
    with pytest.raises(TypeError) as info:  # nothing of rows: no hint
        model.encode(5)
    assert str(info.value) == "inputs: expected a mapping modality -> array or a sequence of 7 arrays/None, got int"
    assert model.encode({"visual": data["visual"]}).shape == (10, 7, 64)


def test_the_estimator_is_reached_from_the_package() -> None:
    pytest.importorskip("sklearn")
    from grapheme_multimodal import MultimodalEmbedder
    from grapheme_multimodal.sklearn import MultimodalEmbedder as where_it_lives

    assert MultimodalEmbedder is where_it_lives and gm.MultimodalEmbedder is where_it_lives
    assert not hasattr(gm, "NoSuchThing")


def test_without_scikit_learn_the_estimator_s_attribute_error_names_the_extra() -> None:
    script = ("import sys; sys.modules['sklearn'] = None\n"
              "import grapheme_multimodal as gm\n"
              "assert not hasattr(gm, 'MultimodalEmbedder')\n"
              "try:\n    gm.MultimodalEmbedder\nexcept AttributeError as e:\n    print(e)\n")
    env = {"PYTHONPATH": str(Path(gm.__file__).resolve().parent.parent), "PATH": "/usr/bin:/bin",
           "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ("module 'grapheme_multimodal' has no attribute 'MultimodalEmbedder': grapheme_multimodal.sklearn "
                           "needs scikit-learn: pip install 'grapheme-multimodal[sklearn]'\n")


@pytest.mark.parametrize("value, remedy", [
    ("a red ball", "str; give a text as ModalGraph(gm.Graph.from_text(text), modality)"),
    (np.ones(3), "array of shape (3,) and dtype float64; give a feature vector as ModalFeatures(features, modality)"),
    (5, "int"),
])
def test_add_component_of_a_text_or_features_names_the_component_to_make(value, remedy) -> None:
    event = gm.MultiModalEvent(0)
    with pytest.raises(TypeError) as info:
        event.add_component(value)
    assert str(info.value) == f"component: expected ModalGraph or ModalFeatures, got {remedy}"
    assert event.components == []


def test_a_row_of_nan_given_to_fit_says_how_the_mask_marks_it_missing() -> None:
    model, data = _three_views()
    data["auditory"][3] = np.nan
    with pytest.raises(gm.NonFiniteError) as info:
        model.fit(data, epochs=1, progress=False)
    assert str(info.value) == (
        "data['auditory']: row 3 holds NaN or inf; expected finite numbers; a row of NaN throughout is a missing "
        "auditory input only where mask says so: False at mask[3, 1] marks it absent (rows marked absent may hold "
        "anything)")
    held = {k: v.copy() for k, v in data.items()}
    with pytest.raises(gm.NonFiniteError, match=re.escape("False at validation_mask[3, 1] marks it absent")):
        model.fit({k: np.nan_to_num(v) for k, v in data.items()}, validation=held, epochs=1, progress=False)
    assert model.history == []
    mask = np.zeros((10, 7), bool)
    mask[:, :3] = True
    mask[3, 1] = False  # as the message says
    model.fit(data, mask=mask, epochs=1, progress=False)
    assert model.trained_modalities[gm.Modality.AUDITORY] == 9


def test_one_sample_as_a_1d_array_names_the_reshape() -> None:
    model = gm.LearnableMultiModal(seed=0, input_dims={"visual": 4, "auditory": 1})
    cases = [
        (lambda: model.encode({"visual": np.ones(4)}),
         "inputs['visual']: expected 2-D input (any, 4), got shape (4,); one row goes in as x[None, :] (x.reshape(1, -1))"),
        (lambda: model.encode({"auditory": np.ones(9)}),
         "inputs['auditory']: expected 2-D input (any, 1), got shape (9,); one value per row goes in as x[:, None] "
         "(x.reshape(-1, 1))"),
        (lambda: model.bind(np.ones(64), np.ones(64)),
         "a: expected 2-D input (any, 64), got shape (64,); one row goes in as x[None, :] (x.reshape(1, -1))"),
        (lambda: model.encode({"visual": np.ones(5)}), "inputs['visual']: expected 2-D input (any, 4), got shape (5,)"),
    ]
    for call, message in cases:
        with pytest.raises(gm.ShapeError) as info:
            call()
        assert str(info.value) == message
    # the reshapes it names are taken
    assert model.encode({"visual": np.ones(4)[None, :]}).shape == (1, 7, 64)
    assert model.encode({"auditory": np.ones(9)[:, None]}).shape == (9, 7, 64)


def test_fit_of_a_buffer_sample_says_what_takes_it() -> None:
    model = gm.LearnableMultiModal(seed=0, input_dims={"visual": 3})
    model.record_batch({"visual": _rows(20, 3), "linguistic": _rows(20, 18)}, rewards=np.ones(20))
    sample = model.experience.sample(5)
    with pytest.raises(TypeError) as info:
        model.fit(sample, epochs=1, progress=False)
    assert str(info.value) == (
        "data: expected per-modality arrays, a list of MultiModalEvent or an ExperienceBuffer, got ExperienceBatch; "
        "fit takes the buffer itself (model.experience), and one sample of it trains one step as "
        "model.train_step(gm.Batch.from_experiences(sample))")
    assert model.history == []
    assert np.isfinite(model.train_step(gm.Batch.from_experiences(sample))["total"])
    assert len(model.fit(model.experience, epochs=1, progress=False).epochs) == 1
