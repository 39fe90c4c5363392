"""Hostile use of the less-travelled public modules (evaluation, anchors,
datasets, plotting, averaging, stopping, uci): each mistake gets an error
naming the caller's argument, never a library's deep error or a silent
wrong answer."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import datasets, evaluation

pytest.importorskip("sklearn")


def _views(n=40, seed=0, labels=None):
    rng = np.random.default_rng(seed)
    return datasets.MultipleFeatures(
        {"a": rng.normal(size=(n, 5)).astype(np.float32), "b": rng.normal(size=(n, 4)).astype(np.float32)},
        np.arange(n) % 3 if labels is None else labels,
    )


# --- a missing scikit-learn says which pip install fixes it ------------------


def test_entry_points_without_sklearn_name_the_install():
    code = textwrap.dedent("""
        import sys
        sys.modules["sklearn"] = None
        import numpy as np
        from grapheme_multimodal import anchors, datasets, evaluation
        rng = np.random.default_rng(0)
        m = datasets.MultipleFeatures({"a": rng.normal(size=(20, 3)), "b": rng.normal(size=(20, 3))}, np.arange(20) % 2)
        class Embedder:
            def embed_views(self, views): return {k: np.asarray(x) + 1 for k, x in views.items()}
            def embed_fused(self, views): return sum(np.asarray(x) for x in views.values())
        calls = {
            "compute_anchors": lambda: evaluation.compute_anchors(m, m, multiview=()),
            "knn_anchors": lambda: anchors.knn_anchors(m, m),
            "evaluate_model": lambda: evaluation.evaluate_model(Embedder(), m, m),
            "nutrimouse_cv": lambda: evaluation.nutrimouse_cv(None, n_repeats=1),
        }
        for name, call in calls.items():
            try:
                call()
            except ModuleNotFoundError as err:
                print(name, err.name, "|", err)
            else:
                print(name, "no error")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 4, out.stdout
    for line in lines:
        name = line.split()[0]
        assert f"{name} needs scikit-learn: pip install 'grapheme-multimodal[sklearn]'" in line, line
        assert line.split()[1] == "sklearn", line


# --- pairwise / multi-view CCA retrieval name the caller's arguments ---------


def _std(n=30, seed=0):
    rng = np.random.default_rng(seed)
    return {"a": rng.normal(size=(n, 5)), "b": rng.normal(size=(n, 4))}


@pytest.mark.parametrize("method", ["pairwise", "MCCA"])
@pytest.mark.parametrize(
    "case, arg",
    [
        ("lists", "train_std"),
        ("test_rows", "test_std['b']"),
        ("train_rows", "train_std['b']"),
        ("labels", "labels"),
        ("keys", "test_std"),
        ("nan", "train_std['a']"),
        ("width", "test_std['b']"),
        ("n_components", "n_components"),
    ],
)
def test_cca_retrieval_refuses_by_the_callers_names(method, case, arg):
    if method != "pairwise":
        pytest.importorskip("cca_zoo")
    train, test, labels, k = _std(), _std(10, 1), np.arange(10) % 2, 2
    if case == "lists":
        train = [train["a"], train["b"]]
    elif case == "test_rows":
        test["b"] = test["b"][:8]
    elif case == "train_rows":
        train["b"] = train["b"][:20]
    elif case == "labels":
        labels = np.arange(30) % 2  # the training rows' labels, not the test rows'
    elif case == "keys":
        test = {"a": test["a"], "c": test["b"]}
    elif case == "nan":
        train["a"][3, 1] = np.nan
    elif case == "width":
        test["b"] = test["b"][:, :3]
    else:
        k = 0
    call = (lambda: evaluation.pairwise_cca_retrieval(train, test, labels, k)) if method == "pairwise" else (
        lambda: evaluation.multiview_cca_retrieval(method, train, test, labels, k))
    with pytest.raises((gm.GraphemeError, TypeError)) as info:
        call()
    assert str(info.value).startswith(arg), str(info.value)
    if isinstance(info.value, gm.GraphemeError):
        assert info.value.arg == arg


def test_cca_retrieval_valid_input_unchanged():
    train, test, labels = _std(), _std(10, 1), np.arange(10) % 2
    got = evaluation.pairwise_cca_retrieval(train, test, labels, 2)
    cca = evaluation.ExactCCA(2).fit(train["a"], train["b"])
    qa, qb = cca.transform(test["a"], test["b"])
    from grapheme_multimodal.metrics import cross_view_retrieval

    assert got == {"a->b": cross_view_retrieval(qa, qb, labels), "b->a": cross_view_retrieval(qb, qa, labels)}


# --- ExactCCA pairs rows by position: frames in another order are refused ----


def test_exact_cca_refuses_frames_whose_rows_do_not_pair():
    pd = pytest.importorskip("pandas")
    x, y = _std()["a"], _std()["b"]
    shuffled = pd.DataFrame(y, index=np.arange(30)[::-1])  # the same samples, another order
    cca = evaluation.ExactCCA(2)
    with pytest.raises(gm.InvalidValueError) as info:
        cca.fit(pd.DataFrame(x), shuffled)
    assert info.value.arg == "Y" and "index" in str(info.value)
    assert not hasattr(cca, "x_weights_")  # nothing fitted
    # aligned frames, and frames reset to positions, fit as the arrays do
    aligned = evaluation.ExactCCA(2).fit(pd.DataFrame(x), pd.DataFrame(y)).correlations_
    assert np.allclose(aligned, evaluation.ExactCCA(2).fit(x, y).correlations_, rtol=1e-12, atol=0)


def test_cca_retrieval_refuses_frames_whose_rows_do_not_pair():
    pd = pytest.importorskip("pandas")
    train, test = _std(), _std(10, 1)
    test = {"a": pd.DataFrame(test["a"]), "b": pd.DataFrame(test["b"], index=np.arange(10)[::-1])}
    with pytest.raises(gm.InvalidValueError) as info:
        evaluation.pairwise_cca_retrieval(train, test, np.arange(10) % 2, 2)
    assert info.value.arg == "test_std['b']"


# --- uci.fit_views names the caller's views throughout its errors ------------


@pytest.mark.parametrize("where", ["views", "validation"])
def test_fit_views_frame_error_names_only_the_callers_views(where):
    pd = pytest.importorskip("pandas")
    from grapheme_multimodal import uci

    rng = np.random.default_rng(0)
    n = 40 if where == "views" else 10
    frames = {"a": pd.DataFrame(rng.normal(size=(n, 6))), "b": pd.DataFrame(rng.normal(size=(n, 5)), index=np.arange(n)[::-1])}
    views = frames if where == "views" else {"a": rng.normal(size=(40, 6)), "b": rng.normal(size=(40, 5))}
    settings = uci.TrainingSettings(epochs=1, embed_dim=16, hidden_dim=16, encoder_hidden=(8,), encoder_output_dim=8)
    with pytest.raises(gm.InvalidValueError) as info:
        uci.fit_views(views, settings=settings, validation=None if where == "views" else frames)
    message = str(info.value)
    assert info.value.arg == f"{where}['b']"
    # the model's modality slots were named beside the caller's views: "views['b']: ... not that of inputs['visual']"
    assert "visual" not in message and "auditory" not in message and "inputs[" not in message, message
    assert f"not that of {where}['a']" in message and f"{where}['b'].loc[{where}['a'].index]" in message, message


# --- WeightAverage averages the weights of one model only --------------------


def test_weight_average_refuses_weights_of_another_config():
    from grapheme_multimodal.averaging import WeightAverage

    average = WeightAverage.start(0.9).updated({"w": np.ones(3), "b": np.zeros(2)})
    with pytest.raises(gm.ShapeError) as info:  # was broadcast into the average without a word
        average.updated({"w": np.ones(1), "b": np.zeros(2)})
    assert info.value.arg == "weights['w']" and "(1,)" in str(info.value) and "(3,)" in str(info.value)
    with pytest.raises(gm.InvalidValueError) as info:  # was a bare KeyError 'v'
        average.updated({"v": np.ones(3), "b": np.zeros(2)})
    assert info.value.arg == "weights" and "'v'" in str(info.value)
    with pytest.raises(gm.InvalidValueError) as info:  # was an average of NaN from the second update on
        WeightAverage.start(float("nan"))
    assert info.value.arg == "decay"
    # the same weights average as before
    again = average.updated({"w": np.full(3, 2.0), "b": np.ones(2)})
    d = average.step_decay()
    assert np.array_equal(again.mean["w"], d * np.ones(3) + (1 - d) * np.full(3, 2.0))


# --- plot_history marks only an epoch that was -------------------------------


def test_plot_history_refuses_an_epoch_that_never_was(tmp_path):
    pytest.importorskip("matplotlib")
    from grapheme_multimodal.plotting import plot_history

    epochs = [{"epoch": 1, "loss": 1.0, "val_total": 1.1}, {"epoch": 2, "loss": 0.5, "val_total": 0.9}]
    path = tmp_path / "curves.png"
    with pytest.raises(gm.InvalidValueError) as info:  # a line far right of the curves, the axis stretched to it
        plot_history(epochs, path, best_epoch=500)
    assert info.value.arg == "best_epoch" and "500" in str(info.value) and "from 1 to 2" in str(info.value)
    for bad in ("a", float("nan"), True):  # drawn as a category, dropped, or as epoch 1
        with pytest.raises((gm.InvalidValueError, TypeError), match=r"^epochs\[1\]\['epoch'\]: "):
            plot_history([epochs[0], {**epochs[1], "epoch": bad}], path)
    assert not path.exists()
    plot_history(epochs, path, best_epoch=2)
    assert path.read_bytes().startswith(b"\x89PNG")


# --- evaluate_model checks its seed before measuring anything ----------------


class _Projection:
    """A ViewEmbedder of fixed random projections (no binder)."""

    def __init__(self, train):
        rng = np.random.default_rng(1)
        self.p = {v: rng.normal(size=(x.shape[1], 4)) for v, x in train.views.items()}

    def embed_views(self, views):
        return {v: np.asarray(x, float) @ self.p[v] for v, x in views.items()}

    def embed_fused(self, views):
        return sum(np.asarray(x, float) @ self.p[v] for v, x in views.items())


@pytest.mark.parametrize("seed, error", [(-1, gm.InvalidValueError), (1.5, TypeError), ("0", TypeError), (True, TypeError)])
def test_evaluate_model_refuses_a_bad_seed_with_or_without_a_binder(seed, error):
    train, test = datasets.train_test_split(_views(60))
    with pytest.raises(error, match=r"^seed: expected an int") as info:  # was accepted (and unused) without a binder
        evaluation.evaluate_model(_Projection(train), train, test, seed=seed, two_views=False)
    assert getattr(info.value, "arg", "seed") == "seed"  # a wrong type is a TypeError, which carries no arg


def test_mean_retrieval_names_an_unknown_metric():
    train, test = datasets.train_test_split(_views(60))
    scores = evaluation.evaluate_model(_Projection(train), train, test, two_views=False)
    with pytest.raises(gm.InvalidValueError) as info:  # was a bare KeyError 'precision'
        scores.mean_retrieval("precision")
    assert info.value.arg == "metric" and "class_precision_at_1" in str(info.value)
    expected = np.mean([r["instance_recall_at_1"] for r in scores.retrieval.values()])
    assert scores.mean_retrieval("instance_recall_at_1") == float(expected)


# --- fit_with_stopping names a fit that is not callable ----------------------


def test_fit_with_stopping_refuses_a_fit_that_is_not_callable():
    from grapheme_multimodal.stopping import fit_with_stopping

    rng = np.random.default_rng(0)
    model = gm.LearnableMultiModal(embed_dim=16, hidden_dim=16, input_dims={"visual": 6, "auditory": 5}, seed=0)
    before = model.state_dict()
    inputs = {"visual": rng.normal(size=(40, 6)), "auditory": rng.normal(size=(40, 5))}
    with pytest.raises(TypeError, match=r"^fit: expected None or a callable"):  # was "'str' object is not callable"
        fit_with_stopping(model, inputs, validation_fraction=0.1, patience=2, monitor="val_total", epochs=1, fit="ray")
    assert all(np.array_equal(before[k], v) for k, v in model.state_dict().items())


# --- CCA of a view constant in training is refused, not scored ---------------


def test_exact_cca_refuses_a_constant_view():
    x, y = _std()["a"], _std()["b"]
    cca = evaluation.ExactCCA(2)
    for constant, arg in (((np.full_like(x, 0.1), y)), "X"), (((x, np.full_like(y, 0.1))), "Y"):
        # 0.1: its mean is not exactly 0.1, and the centred rounding was fitted as if it were data
        with pytest.raises(gm.InvalidValueError) as info:  # were weights of ~1e157 and scores of ~1e157
            cca.fit(*constant)
        assert info.value.arg == arg and "every column is constant" in str(info.value)
    assert not hasattr(cca, "x_weights_")


def test_compute_anchors_refuses_a_training_view_constant_test_view_varying():
    rng = np.random.default_rng(0)
    train = datasets.MultipleFeatures({"a": rng.normal(size=(40, 4)), "b": np.ones((40, 3))}, np.arange(40) % 2)
    test = datasets.MultipleFeatures({"a": rng.normal(size=(20, 4)), "b": rng.normal(size=(20, 3))}, np.arange(20) % 2)
    with pytest.raises(gm.InvalidValueError) as info:  # was a class precision@1 of 0.7 from a constant view
        evaluation.compute_anchors(train, test, multiview=[])
    assert info.value.arg == "train.views['b']" and "every column is constant" in str(info.value)
    with pytest.raises(gm.InvalidValueError) as info:
        evaluation.pairwise_cca_retrieval({"a": train.views["a"], "b": train.views["b"]}, test.views, test.labels)
    assert info.value.arg == "train_std['b']"


# --- the SPEC anchors and standardize raise the package's own errors ---------


@pytest.mark.parametrize("query, gallery, k, arg", [
    ("a", "z", 2, "gallery_view"),
    (["a"], "b", 2, "query_view"),
    ("a", "a", 2, "gallery_view"),
    ("a", "b", 5, "n_components"),
])
def test_cca_anchor_errors_are_the_packages(query, gallery, k, arg):
    from grapheme_multimodal import anchors

    train, test = datasets.train_test_split(_views(60))
    with pytest.raises(gm.InvalidValueError) as info:  # were plain ValueErrors, which no `except gm.GraphemeError` caught
        anchors.cca_anchor(train, test, query, gallery, k)
    assert info.value.arg == arg and str(info.value).startswith(arg)


def test_standardize_other_views_error_is_the_packages():
    with pytest.raises(gm.InvalidValueError) as info:
        datasets.standardize({"a": np.ones((3, 2))}, {"b": np.ones((3, 2))})
    assert info.value.arg == "others[0]"


def test_plot_attention_shape_error_is_the_packages(tmp_path):
    from grapheme_multimodal.plotting import plot_attention

    with pytest.raises(gm.ShapeError) as info:  # a plain ValueError without .arg
        plot_attention(np.ones((3, 7)), ["a", "b"], tmp_path / "a.png")
    assert info.value.arg == "weights"


# --- the demo names its own arguments before any work ------------------------


@pytest.mark.parametrize("out_dir", [None, 3, ""])
def test_demo_files_names_out_dir(out_dir):
    pytest.importorskip("matplotlib")
    from grapheme_multimodal import demo

    with pytest.raises((TypeError, gm.InvalidValueError), match=r"^out_dir: "):  # was pathlib's words, naming no argument
        demo.demo_files(out_dir)


def test_run_demo_names_a_log_that_is_not_callable(tmp_path):
    pytest.importorskip("matplotlib")
    from grapheme_multimodal import demo

    with pytest.raises(TypeError, match=r"^log: expected a callable"):  # was "'NoneType' object is not callable"
        demo.run_demo(tmp_path / "out", log=None)
    assert not (tmp_path / "out").exists()  # refused before anything was made


def test_resume_with_a_bad_decay_leaves_the_models_average():
    from grapheme_multimodal.averaging import resume

    rng = np.random.default_rng(0)
    model = gm.LearnableMultiModal(embed_dim=16, hidden_dim=16, input_dims={"visual": 6, "auditory": 5}, seed=0)
    x = {"visual": rng.normal(size=(16, 6)), "auditory": rng.normal(size=(16, 5))}
    model.fit(x, epochs=2, ema_decay=0.9, progress=False)
    applied = model._weight_average
    assert applied is not None
    with pytest.raises(gm.InvalidValueError) as info:
        resume(model, float("nan"))  # the applied average was dropped before the decay was refused
    assert info.value.arg == "decay"
    assert model._weight_average is applied


@pytest.mark.parametrize("pairs", [evaluation.ordered_pairs, evaluation.unordered_pairs])
def test_view_pairs_refuse_one_string_of_names(pairs):
    with pytest.raises(TypeError, match=r"^names: expected view names"):  # "fou" gave the pairs of 'f', 'o' and 'u'
        pairs("fou")
    assert pairs(["fou", "pix"]) and pairs(iter(["fou", "pix"]))


def test_plot_history_refuses_a_record_key_that_is_not_a_name(tmp_path):
    pytest.importorskip("matplotlib")
    from grapheme_multimodal.plotting import plot_history

    path = tmp_path / "curves.png"
    for records in (
        [{"epoch": 1, "loss": 1.0, 3: 0.5}],  # was "'int' object has no attribute 'startswith'"
        [{"epoch": 1, "loss": 1.0}, {"epoch": 2, "loss": 0.5, None: 1.0}],
    ):
        with pytest.raises(TypeError, match=r"^epochs\[\d\]: expected str keys .*got the key (3|None)"):
            plot_history(records, path)
    assert not path.exists()
