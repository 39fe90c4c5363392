"""Small defects left open by the earlier audits: a :KEY suffix on a file
that is not .npz, an empty extra argument on the command line, fit's doubled
prefix for a misnamed dataset column, knn_accuracy's wording of a bad k, and
ExactCCA's rounding of integers beyond 2**53. Each test says what a user saw
before the fix."""

from __future__ import annotations

import numpy as np
import pytest

import grapheme_multimodal as gm
from test_trust_cli import argparse_error, one_line_error


# ------------------------------------------------ 1. a :KEY suffix on a file that is not .npz
@pytest.mark.parametrize("suffix", [".npy", ".csv", ".txt"])
def test_a_key_on_a_file_that_is_not_npz_is_said_to_be_for_npz_only(tmp_path, capsys, suffix) -> None:
    # was "linguistic: file not found: a.npy:x", of an a.npy that was there
    path = tmp_path / f"a{suffix}"
    if suffix == ".npy":
        np.save(path, np.ones((4, 3)))
    else:
        path.write_text("1,2\n3,4\n")
    spec = f"linguistic={path}:x"
    line = one_line_error(capsys, ["train", "-m", spec, "--no-progress"])
    assert line.startswith(f"grapheme-mm: error: --modality: {spec}: "), line
    assert "':x'" in line and ".npz file only" in line and f"expected linguistic={path}" in line, line
    assert "not found" not in line, line


def test_a_key_on_a_missing_file_names_the_file_that_is_missing(tmp_path, capsys) -> None:
    spec = f"visual={tmp_path / 'b.npy'}:x"
    line = one_line_error(capsys, ["train", "-m", spec, "--no-progress"])
    assert line.startswith(f"grapheme-mm: error: --modality: {spec}: file not found: {tmp_path / 'b.npy'} "), line
    assert ".npz files" in line, line


def test_a_file_whose_name_holds_the_colon_is_taken_as_named(tmp_path) -> None:
    from grapheme_multimodal.files import parse_modality_spec, read_modality_file

    np.save(tmp_path / "a.npy", np.ones((4, 3)))
    (tmp_path / "a.npy:x").write_bytes((tmp_path / "a.npy").read_bytes())  # a file named so, beside a.npy
    modality, path, key = parse_modality_spec(f"visual={tmp_path / 'a.npy:x'}")
    assert (path, key) == (tmp_path / "a.npy:x", None)
    with pytest.raises(gm.InvalidValueError, match=r"has an unsupported type '\.npy:x'"):  # its own suffix, as before
        read_modality_file(modality, path, key)
    # a name that is no data file's before the colon is "file not found" as before
    with pytest.raises(FileNotFoundError, match="file not found"):
        read_modality_file(*parse_modality_spec(f"visual={tmp_path / 'notes:x'}"))


# ------------------------------------------------ 2. an empty extra argument
@pytest.mark.parametrize(
    "argv, shown",
    [
        (["train", "", "-m", "visual=a.npy"], "''"),
        (["info", "x.safetensors", ""], "''"),
        (["info", "x.safetensors", " "], "' '"),
        (["info", "x.safetensors", "a  b"], "'a  b'"),  # was "a b": two arguments, to the eye
        (["info", "x.safetensors", "a\nb"], r"'a\nb'"),
        (["info", "x.safetensors", "--bogus", ""], "--bogus ''"),  # plain ones as typed, as before
    ],
)
def test_an_empty_extra_argument_is_shown(capsys, argv, shown) -> None:
    # was "grapheme-mm: error: unrecognized arguments:; see grapheme-mm --help": nothing named
    line = argparse_error(capsys, argv)
    # the subcommand's help, which lists its flags (test_trust_cli_third)
    assert line == f"grapheme-mm: error: unrecognized arguments: {shown}; see grapheme-mm {argv[0]} --help", line


# ------------------------------------------------ 3. distributed.fit: a misnamed column, one prefix
@pytest.mark.ray
@pytest.mark.timeout(120)
@pytest.mark.usefixtures("ray_session")
@pytest.mark.parametrize("which", ["data", "validation"])
def test_fit_names_a_misnamed_column_with_one_prefix(which) -> None:
    # was "data: columns: the dataset has no column ['img']; ...": two prefixes, and the dataset called "the dataset"
    import pyarrow as pa
    import ray

    from grapheme_multimodal import distributed

    rng = np.random.default_rng(0)
    right = ray.data.from_arrow(pa.table({"image": pa.array(list(rng.normal(size=(16, 4)).astype(np.float32)),
                                                            type=pa.list_(pa.float32()))}))
    wrong = ray.data.from_arrow(pa.table({"picture": pa.array(list(rng.normal(size=(16, 4)).astype(np.float32)),
                                                              type=pa.list_(pa.float32()))}))
    model = gm.LearnableMultiModal(input_dims={"visual": 4}, embed_dim=8, hidden_dim=8, num_heads=2, seed=0)
    data, validation = (wrong, right) if which == "data" else (right, wrong)
    with pytest.raises(gm.InvalidValueError) as info:
        distributed.fit(model, data, validation=validation, columns={"visual": "image"}, num_workers=1, epochs=1,
                        progress=False)
    assert str(info.value) == f"columns: {which} has no column ['image']; its columns are ['picture']"
    assert info.value.arg == "columns"


@pytest.mark.ray
@pytest.mark.timeout(120)
@pytest.mark.usefixtures("ray_session")
def test_fit_refuses_a_bad_columns_mapping_with_one_prefix() -> None:
    # was "data: columns: unknown modality ..." and "data: columns['visual']: expected a column name (str), ..."
    import pyarrow as pa
    import ray

    from grapheme_multimodal import distributed

    ds = ray.data.from_arrow(pa.table({"image": pa.array([[0.0, 1.0]] * 4, type=pa.list_(pa.float32()))}))
    model = gm.LearnableMultiModal(input_dims={"visual": 2}, embed_dim=8, hidden_dim=8, num_heads=2, seed=0)
    with pytest.raises(gm.InvalidValueError, match=r"^columns: ") as info:
        distributed.fit(model, ds, columns={"sight": "image"}, num_workers=1, epochs=1, progress=False)
    assert info.value.arg == "columns"
    with pytest.raises(TypeError, match=r"^columns\['visual'\]: expected a column name \(str\), got int"):
        distributed.fit(model, ds, columns={"visual": 3}, num_workers=1, epochs=1, progress=False)


# ------------------------------------------------ 4. knn_accuracy: k in the package's wording
@pytest.mark.parametrize("k, shown", [(0, "0"), (5, "5"), (2.5, "2.5 (float)"), ("3", "'3' (str)"), (True, "True (bool)"),
                                      (None, "None")])
def test_knn_accuracy_words_a_bad_k_as_the_other_checks(k, shown) -> None:
    # was "k must be an integer in [1, 4] (train rows), got 5": not "NAME: expected ..., got ...".
    # A wrong type is a TypeError, as the package's other int arguments; an int out of range an InvalidValueError.
    from grapheme_multimodal.metrics import knn_accuracy

    x, y = np.arange(8.0).reshape(4, 2), np.array([0, 1, 0, 1])
    with pytest.raises(gm.InvalidValueError if type(k) is int else TypeError) as info:
        knn_accuracy(x, y, x, y, k=k)
    assert str(info.value) == f"k: expected an int in [1, 4] (the number of train rows), got {shown}"
    assert getattr(info.value, "arg", "k") == "k"


# ------------------------------------------------ 5. ExactCCA: integers beyond 2**53
def _latent_views(n: int = 200):
    rng = np.random.default_rng(0)
    z = rng.integers(0, 1000, size=(n, 2))
    return z, rng.normal(size=(n, 2)) + z


@pytest.mark.parametrize(
    "shift",
    [
        lambda z: z + np.int64(2**61),  # nanosecond timestamps are near 2**61
        lambda z: z + np.int64(-(2**63)),  # int64's smallest
        lambda z: z.astype(np.uint64) + np.uint64(2**63),  # beyond int64
        lambda z: (z - 500) * np.int64(2**52) + z,  # both signs, 62 bits of each value to keep
    ],
    ids=["2**61", "-2**63", "uint64 2**63", "both signs"],
)
def test_exact_cca_of_integers_beyond_2_to_53_is_that_of_the_integers(shift) -> None:
    # consistent with the metrics (_exact_integer_columns): cast first, the integers rounded to float64's
    # spacing there (512 at 2**61), rows a few units apart became one, and the correlations were
    # [0.91, 0.40] for views correlated [1.00, 1.00]
    from grapheme_multimodal.evaluation import ExactCCA

    z, y = _latent_views()
    x = shift(z)
    assert x.dtype.kind in "iu" and np.abs(x.astype(np.float64)).max() > 2**53
    reference = ExactCCA(2).fit(z, y)
    cca = ExactCCA(2).fit(x, y)
    np.testing.assert_allclose(cca.correlations_, reference.correlations_, rtol=1e-12)
    np.testing.assert_allclose(cca.transform(x), reference.transform(z), atol=1e-9)
    exact_mean = np.array([float(sum(int(v) for v in column) / len(column)) for column in x.T])
    np.testing.assert_allclose(cca.x_mean_, exact_mean, rtol=0, atol=1e-12 * np.abs(x.astype(np.float64)).max())


def test_exact_cca_transform_shifts_rows_beyond_the_fit_s_range_alike() -> None:
    from grapheme_multimodal.evaluation import ExactCCA

    z, y = _latent_views()
    base = np.int64(2**61)
    cca, reference = ExactCCA(2).fit(z + base, y), ExactCCA(2).fit(z, y)
    other = z[:20] - 700  # below every row fit saw: a negative difference from its offset
    expected = reference.transform(other)
    np.testing.assert_allclose(cca.transform(other + base), expected, atol=1e-9)  # int64
    np.testing.assert_allclose(cca.transform((other + base).astype(np.uint64)), expected, atol=1e-9)  # another dtype
    # rows given as floats are rounded already; they are shifted as close as float64 allows
    np.testing.assert_allclose(cca.transform((other + base).astype(np.float64)), expected, atol=1.0)
    # small integers and floats are cast as before: the same bits
    assert reference.transform(z).tobytes() == ExactCCA(2).fit(z.astype(np.float64), y).transform(z).tobytes()
