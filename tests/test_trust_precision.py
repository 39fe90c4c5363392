"""float64 training inputs whose variation float32 cannot hold are flagged.

The model computes in float32. A float64 column such as ``1e6 + 1e-3 * x``
or Unix timestamps a few minutes apart (float32's spacing at 1.7e9 is 128)
becomes constant, or mostly rounding noise, in the cast; standardisation
then gives it std 1 (or standardises the noise) and its information is gone.
Every training entry point (``fit``, ``fit_normalization``, the estimator,
``uci.fit_views``, ``grapheme-mm train``) says so with one
:class:`~grapheme_multimodal.PrecisionLossWarning` per modality, naming the
caller's argument, the columns, their magnitude and spread and what float32
keeps; ordinary data, float32, integers and constant columns do not warn.
Nothing changes otherwise: the check only reads."""

import warnings

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import uci
from grapheme_multimodal.cli import main
from grapheme_multimodal.sklearn import MultimodalEmbedder

N = 24
SMALL = dict(embed_dim=8, hidden_dim=16, num_heads=2, seed=0)


def model():
    return gm.LearnableMultiModal(input_dims={"visual": 3, "auditory": 2}, **SMALL)


def data(visual_column=None, column=1, n=N, seed=0):
    """Two ordinary float64 modalities; column ``column`` of visual replaced."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 2))
    visual = z @ rng.normal(size=(2, 3)) + 0.1 * rng.normal(size=(n, 3))
    auditory = z @ rng.normal(size=(2, 2)) + 0.1 * rng.normal(size=(n, 2))
    if visual_column is not None:
        visual[:, column] = visual_column
    return {"visual": visual, "auditory": auditory}


def offset(n=N, seed=1):
    x = np.random.default_rng(seed).normal(size=n)
    return 1e6 + 1e-3 * (x - x.mean()) / x.std()  # std 1e-3 exactly


def timestamps(n=N, seed=2):
    """Unix seconds within ten minutes: float32 keeps multiples of 128."""
    return 1.7e9 + np.random.default_rng(seed).uniform(0, 600, size=n)


def precision_warnings(record):
    return [w for w in record if issubclass(w.category, gm.PrecisionLossWarning)]


def fit(m, inputs, **options):
    return m.fit(inputs, epochs=1, batch_size=N, progress=False, **options)


def test_the_warning_is_a_user_warning_exported_beside_the_others():
    assert issubclass(gm.PrecisionLossWarning, UserWarning)
    assert gm.exceptions.PrecisionLossWarning is gm.PrecisionLossWarning
    assert "PrecisionLossWarning" in gm.__all__ and "PrecisionLossWarning" in gm.exceptions.__all__


def test_fit_warns_once_naming_the_modality_the_column_and_what_float32_keeps():
    with pytest.warns(gm.PrecisionLossWarning) as record:
        fit(model(), data(offset()))
    found = precision_warnings(record)
    assert len(found) == 1, [str(w.message) for w in found]
    message = str(found[0].message)
    assert message.startswith("data['visual']: column 1 "), message
    assert "around 1.0e+06" in message and "varying by 1.0e-03" in message, message
    assert "6.2e-02" in message  # float32's spacing at 1e6
    assert "constant" in message  # what float32 keeps of it
    assert "subtract the column's mean (or rescale) before passing it" in message and "float32" in message
    assert found[0].filename == __file__  # at the user's line


def test_fit_warns_for_timestamps_and_says_how_much_is_rounding():
    with pytest.warns(gm.PrecisionLossWarning, match=r"^data\['visual'\]: column 1 .*around 1\.7e\+09") as record:
        fit(model(), data(timestamps()))
    message = str(precision_warnings(record)[0].message)
    assert "1.3e+02" in message  # float32's spacing at 1.7e9: 128
    assert "% of that spread" in message, message


def test_fit_normalization_warns_and_learns_what_it_learned_before():
    inputs = data(offset())
    with pytest.warns(gm.PrecisionLossWarning, match=r"^inputs\['visual'\]: column 1 "):
        m = model()
        m.fit_normalization(inputs)
    # only a check: the statistics are those of the float32 rows, as before
    mean, std = m.normalization("visual")
    rows = inputs["visual"].astype(np.float32)
    assert np.array_equal(mean, rows.mean(axis=0, dtype=np.float64).astype(np.float32))
    assert std[1] == 1.0  # the column is constant in float32: what the warning is about


def test_several_columns_are_listed_the_first_few_and_counted():
    rng = np.random.default_rng(3)
    wide = gm.LearnableMultiModal(input_dims={"visual": 9, "auditory": 2}, **SMALL)
    visual = 1e6 + 1e-3 * rng.normal(size=(N, 9))
    visual[:, 0] = rng.normal(size=N)
    with pytest.warns(gm.PrecisionLossWarning) as record:
        wide.fit_normalization({"visual": visual, "auditory": rng.normal(size=(N, 2))})
    found = precision_warnings(record)
    assert len(found) == 1
    assert str(found[0].message).startswith("inputs['visual']: columns 1, 2, 3, 4, 5, ... (8 of 9) "), str(found[0].message)


def test_each_modality_warns_once():
    inputs = data(offset())
    inputs["auditory"][:, 0] = timestamps()
    with pytest.warns(gm.PrecisionLossWarning) as record:
        fit(model(), inputs)
    names = sorted(str(w.message).split(":")[0] for w in precision_warnings(record))
    assert names == ["data['auditory']", "data['visual']"]


def test_the_estimator_names_the_view():
    Xs = [data(offset(40), n=40)["visual"], data(n=40)["auditory"]]
    est = MultimodalEmbedder(embed_dim=8, hidden_dim=16, num_heads=2, epochs=1, encoder_hidden=(8,), encoder_output_dim=8)
    with pytest.warns(gm.PrecisionLossWarning) as record:
        est.fit(Xs)  # 40 rows: cross-validation folds, then a final fit
    found = precision_warnings(record)
    assert len(found) == 1, [str(w.message) for w in found]
    assert str(found[0].message).startswith("Xs[0]: column 1 "), str(found[0].message)


def test_uci_fit_views_names_the_view_once_through_its_folds():
    views = {"fou": data(offset(40), n=40)["visual"], "kar": data(n=40)["auditory"]}
    settings = uci.TrainingSettings(epochs=1, embed_dim=8, hidden_dim=16, num_heads=2, encoder_hidden=(8,),
                                    encoder_output_dim=8)
    with pytest.warns(gm.PrecisionLossWarning) as record:
        uci.fit_views(views, settings=settings)
    found = precision_warnings(record)
    assert len(found) == 1, [str(w.message) for w in found]
    assert str(found[0].message).startswith("views['fou']: column 1 "), str(found[0].message)


def test_fit_with_stopping_names_its_inputs_once():
    from grapheme_multimodal.stopping import fit_with_stopping

    inputs = data(offset(40), n=40)
    with pytest.warns(gm.PrecisionLossWarning) as record:
        fit_with_stopping(model(), inputs, validation_fraction=0.25, patience=1, monitor="val_total", epochs=2,
                          batch_size=40, progress=False)
    found = precision_warnings(record)
    assert len(found) == 1 and str(found[0].message).startswith("inputs['visual']: column 1 "), [str(w.message) for w in found]


def test_cli_train_says_so_on_one_line(tmp_path, capsys):
    inputs = data(offset(40), n=40)
    files = []
    for name, x in inputs.items():
        np.save(tmp_path / f"{name}.npy", x)
        files += ["-m", f"{name}={tmp_path / f'{name}.npy'}"]
    code = main(["train", *files, "--epochs", "1", "--batch-size", "20", "--embed-dim", "8", "--hidden-dim", "8",
                 "--heads", "2", "--no-progress", "-o", str(tmp_path / "m.safetensors")])
    err = capsys.readouterr().err
    assert code == 0
    lines = [line for line in err.splitlines() if "float32" in line]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"grapheme-mm: warning: visual ({tmp_path / 'visual.npy'}): column 1 "), lines[0]


def test_int64_timestamps_warn_too():
    seconds = (1_700_000_000 + np.random.default_rng(4).integers(0, 600, size=N)).astype(np.int64)
    inputs = data()
    inputs["visual"] = np.stack([seconds, seconds % 7, seconds % 5], axis=1)  # int64, as pandas' datetimes give
    with pytest.warns(gm.PrecisionLossWarning, match=r"^inputs\['visual'\]: column 0 "):
        model().fit_normalization(inputs)


@pytest.mark.parametrize(
    "column",
    [
        pytest.param(lambda: 50 + 100 * np.random.default_rng(5).normal(size=N), id="ordinary float64"),
        pytest.param(lambda: 1e6 + 10 * np.random.default_rng(5).normal(size=N), id="offset float32 resolves"),
        pytest.param(lambda: 1.7e9 + np.random.default_rng(5).uniform(0, 3e7, size=N), id="timestamps over a year"),
        pytest.param(lambda: np.full(N, 1e6), id="constant in float64 too"),
        pytest.param(lambda: np.where(np.arange(N) % 2, 0.1 + 0.2, 0.3), id="float64 rounding noise"),
    ],
)
def test_data_float32_holds_does_not_warn(column):
    inputs = data(column())
    with warnings.catch_warnings():
        warnings.simplefilter("error", gm.PrecisionLossWarning)
        model().fit_normalization(inputs)
        fit(model(), inputs)


def test_integer_data_does_not_warn():
    rng = np.random.default_rng(6)
    inputs = {"visual": rng.integers(0, 1000, size=(N, 3)), "auditory": rng.integers(-5, 5, size=(N, 2))}
    with warnings.catch_warnings():
        warnings.simplefilter("error", gm.PrecisionLossWarning)
        model().fit_normalization(inputs)
        fit(model(), inputs)


def test_float32_data_does_not_warn():
    inputs = {k: v.astype(np.float32) for k, v in data(offset()).items()}  # the user's own cast: nothing to compare
    with warnings.catch_warnings():
        warnings.simplefilter("error", gm.PrecisionLossWarning)
        fit(model(), inputs)


def test_rows_marked_absent_are_not_read():
    inputs = data()
    mask = np.zeros((N, 7), bool)
    mask[:, [0, 1]] = True
    mask[:4, 0] = False
    inputs["visual"][:4, 1] = 1e6  # absent rows may hold anything
    with warnings.catch_warnings():
        warnings.simplefilter("error", gm.PrecisionLossWarning)
        model().fit_normalization(inputs, mask)
    inputs["visual"][4:, 1] = offset(N - 4)
    with pytest.warns(gm.PrecisionLossWarning, match=r"^inputs\['visual'\]: column 1 "):
        model().fit_normalization(inputs, mask)


def test_embedding_and_validation_do_not_check():
    """Only training data: encode is a hot path, and validation rows are
    evaluated, not learned from."""
    m = model()
    fit(m, data())
    with warnings.catch_warnings():
        warnings.simplefilter("error", gm.PrecisionLossWarning)
        m.encode(data(offset()))
        fit(m, data(), validation=data(offset()))


def test_training_is_unchanged_by_the_check():
    """The same weights as training on the float32 cast the user could have made."""
    inputs = data(timestamps())
    with pytest.warns(gm.PrecisionLossWarning):
        a = model()
        fit(a, inputs)
    b = model()
    fit(b, {k: v.astype(np.float32) for k, v in inputs.items()})
    assert all(np.array_equal(x, b.state_dict()[k]) for k, x in a.state_dict().items())
