"""A hostile check of the code that landed in s64 (events lacking a modality
in ``grapheme-mm train``/``embed``, ``.parquet`` input, ``view_sizes``).
Each test says what a user saw before the fix."""

import re

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal.files import read_modality_file
from test_cli_missing_s64 import SMALL, run, views


def write_parquet(path, columns):
    """``columns`` (name → values, NaN written as null) as a Parquet file, the
    names as given (repeated ones too, as Arrow writes them)."""
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    arrays = [pa.array(np.asarray(x, np.float64), mask=np.isnan(np.asarray(x, np.float64))) for _, x in columns]
    pq.write_table(pa.Table.from_arrays(arrays, names=[name for name, _ in columns]), path)
    return path


# ------------------------------------------------------------- .parquet: its names are in its schema
def test_embed_names_a_parquet_files_schema_not_a_header_when_its_columns_are_not_the_trained_ones(tmp_path, capsys):
    """Was "auditory: the header of a.parquet names the columns the
    checkpoint was trained on in another order": a Parquet file has no
    header row, and the user looked for one. The three refusals (another
    order, a column beside them, names at other positions) name its schema;
    a CSV file's stays its header."""
    visual, auditory = views()
    np.save(tmp_path / "v.npy", visual)
    write_parquet(tmp_path / "a.parquet", [("p", auditory[:, 0]), ("q", auditory[:, 1])])
    files = ["-m", f"visual={tmp_path / 'v.npy'}", "-m", f"auditory={tmp_path / 'a.parquet'}"]
    code, _, err = run(capsys, "train", *files, *SMALL, "-o", tmp_path / "m.safetensors")
    assert code == 0, err
    refused = {
        "swapped": ([("q", auditory[:, 1]), ("p", auditory[:, 0])], "names the columns the checkpoint was trained on in "
                    "another order (q,p)"),
        "extra": ([("p", auditory[:, 0]), ("q", auditory[:, 1]), ("r", auditory[:, 1])],
                  "names the columns the checkpoint was trained on (p,q) and r beside them"),
        "moved": ([("q", auditory[:, 0]), ("x", auditory[:, 1])], "(q,x) names columns the checkpoint was trained on at "
                  "other positions"),
    }
    for name, (columns, said) in refused.items():
        path = write_parquet(tmp_path / f"{name}.parquet", columns)
        code, _, err = run(capsys, "embed", tmp_path / "m.safetensors", "-m", f"visual={tmp_path / 'v.npy'}",
                           "-m", f"auditory={path}", "-o", tmp_path / "f.npy")
        assert code == 2 and not (tmp_path / "f.npy").exists(), name
        assert err.startswith(f"grapheme-mm: error: auditory: the schema of {path} {said}"), err
        assert "header" not in err, err
    (tmp_path / "a.csv").write_text("q,p\n" + "\n".join(f"{b!r},{a!r}" for a, b in auditory.tolist()) + "\n")
    code, _, err = run(capsys, "embed", tmp_path / "m.safetensors", "-m", f"visual={tmp_path / 'v.npy'}",
                       "-m", f"auditory={tmp_path / 'a.csv'}", "-o", tmp_path / "f.npy")
    assert code == 2 and f"auditory: the header of {tmp_path / 'a.csv'} names the columns" in err, err


def test_an_ensemble_trained_on_two_orders_of_a_parquet_files_columns_says_no_order_suits_every_member(tmp_path, capsys):
    """The note of an ensemble whose members were trained on the columns in
    two orders (a file saved before save_ensemble refused such members)
    said "no header suits every member; a file without one" of a Parquet
    file, which has no header."""
    from grapheme_multimodal.checkpoint import checkpoint_state
    from grapheme_multimodal.ensemble import ENSEMBLE_FORMAT
    from grapheme_multimodal.io import write_tagged_safetensors

    visual, auditory = views()
    np.save(tmp_path / "v.npy", visual)
    tensors, metas = {}, []
    for j, columns in enumerate(([("p", auditory[:, 0]), ("q", auditory[:, 1])],
                                 [("q", auditory[:, 1]), ("p", auditory[:, 0])])):
        path = write_parquet(tmp_path / f"a{j}.parquet", columns)
        code, _, err = run(capsys, "train", "-m", f"visual={tmp_path / 'v.npy'}", "-m", f"auditory={path}", *SMALL,
                           "-o", tmp_path / f"m{j}.safetensors")
        assert code == 0, err
        state, meta = checkpoint_state(gm.LearnableMultiModal.load(tmp_path / f"m{j}.safetensors"), False)
        tensors.update({f"member/{j}/{k}": v for k, v in state.items()})
        metas.append(meta)
    write_tagged_safetensors(tmp_path / "e.gme", tensors, ENSEMBLE_FORMAT,
                             {"library_version": metas[0]["library_version"], "members": metas})
    code, _, err = run(capsys, "embed", tmp_path / "e.gme", "-m", f"visual={tmp_path / 'v.npy'}",
                       "-m", f"auditory={tmp_path / 'a0.parquet'}", "-o", tmp_path / "f.npy")
    assert code == 2 and f"the schema of {tmp_path / 'a0.parquet'} names the columns member 1" in err, err
    assert "(member 0 was trained on them in the order p,q: no column order suits every member; a file without column " \
           "names is read by position)" in err, err


def test_a_parquet_file_whose_columns_share_a_name_is_read_with_the_warning_a_csv_header_gets(tmp_path):
    """Was "a.parquet: not a readable .parquet file (Multiple matches for
    FieldRef.Name(a) in a: double / a: double / __fragment_index: int32 /
    ..."), six lines of Arrow's dataset scanner naming its own columns: the
    file was readable (Arrow, pandas and polars write such files). Read now,
    the repetition warned of, as a CSV header's."""
    path = write_parquet(tmp_path / "a.parquet", [("a", [1.0, 2.5, np.nan]), ("a", [3.0, 1.0, np.nan]),
                                                   ("b", [0.5, 0.25, np.nan])])
    read = read_modality_file("auditory", path)
    assert read.columns == ("a", "a", "b")
    assert read.present.tolist() == [True, True, False]
    np.testing.assert_array_equal(read.values[:2], [[1.0, 3.0, 0.5], [2.5, 1.0, 0.25]])
    assert read.warnings == (
        f"auditory ({path}): the schema repeats a name ('a' for columns 0 and 1), so those columns are told apart by "
        "position only: embed, which checks a header's names against the order the checkpoint was trained on, cannot "
        "see them swapped; give each column a name of its own",)


# ------------------------------------------------------------- rows missing whole
@pytest.mark.parametrize("missing", [0, 1, 3])
def test_an_id_column_is_warned_of_when_a_row_among_the_first_is_missing_whole(tmp_path, missing):
    """An id column (1001, 1002, ...) exported beside the features is warned
    of; a row missing whole among the first two (NaN in the id column too,
    as pandas writes an event without the modality) made the step from the
    first row to the second NaN, and the warning was never said: the model
    trained on the event numbers as a feature without a word. The row
    numbers of the rows present are counted, so ids that skip the missing
    row are still ids; a column whose values do not follow the row numbers
    is no id."""
    rows = np.column_stack([1001 + np.arange(6.0), np.linspace(0.1, 0.9, 6)])
    rows[missing] = np.nan
    (tmp_path / "a.csv").write_text("id,x\n" + "\n".join(",".join("" if np.isnan(v) else repr(float(v)) for v in row)
                                                        for row in rows) + "\n")
    np.save(tmp_path / "a.npy", rows)
    for name, shown in (("a.csv", "0 ('id')"), ("a.npy", "0")):
        read = read_modality_file("auditory", tmp_path / name)
        assert read.present.tolist() == [i != missing for i in range(6)]
        assert read.warnings == (
            f"auditory ({tmp_path / name}): column {shown} of 2 holds consecutive integers row by row "
            f"({1001 + (missing == 0)} to 1006), as an id or a row index does, and is read as a feature; if it "
            "is an id, leave it out of the file (row i of every file is event i already)",), name
    shuffled = rows.copy()
    shuffled[[2, 4], 0] = shuffled[[4, 2], 0]  # present rows out of order: no id
    np.save(tmp_path / "b.npy", shuffled)
    assert read_modality_file("auditory", tmp_path / "b.npy").warnings == ()


# ------------------------------------------------------------- view_sizes
def test_view_sizes_given_an_arrays_rows_as_a_list_says_to_stack_them_as_rows_not_hstack():
    """``list(X)`` (a 2-D array's rows, as iterating it gives) with
    ``view_sizes`` was "got a list of 40 views ...: give one array (e.g.
    np.hstack(Xs))": 1-D arrays are no views, and np.hstack made the rows
    one row of every value, which fit then refused as 1-D. It says which
    they are taken for and the call for each, in fit and in transform.
    ``[X]`` was "a list of 1 views"."""
    pytest.importorskip("sklearn")
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    X = np.random.default_rng(0).normal(size=(12, 5))
    said = (r"^Xs: got a list of 12 1-D arrays, {}view_sizes=\[2, 3\]; expected one 2-D array of 5 columns, the views "
            r"side by side: np\.asarray\(Xs\) if they are its rows, np\.column_stack\(Xs\) if each is a column, or drop "
            r"view_sizes{}$")
    estimator = MultimodalEmbedder(view_sizes=[2, 3], embed_dim=4, hidden_dim=4, num_heads=1, epochs=1,
                                   validation_fraction=0.0, patience=0)
    with pytest.raises(gm.InvalidValueError, match=said.format("", "")):
        estimator.fit(list(X))
    assert not hasattr(estimator, "model_")
    estimator.fit(np.asarray(list(X)))
    before = estimator.transform(X)
    with pytest.raises(gm.InvalidValueError, match=said.format("fitted with ", " and fit again")):
        estimator.transform(list(X))
    np.testing.assert_array_equal(estimator.transform(X), before)
    # a list of [n, d] views is still said to be views ("a list of 1 views" of [X])
    for views, count in (([X[:, :2], X[:, 2:]], "2 views"), ([X], "1 view")):
        with pytest.raises(gm.InvalidValueError, match=rf"got a list of {count}, fitted with view_sizes=\[2, 3\]; .*"
                                                       r"give one array \(e\.g\. np\.hstack\(Xs\)\)"):
            estimator.transform(views)


# ------------------------------------------------------------- train --workers: the mask goes to Ray too
@pytest.mark.ray
@pytest.mark.timeout(120)
def test_train_on_ray_with_one_worker_trains_the_model_of_train_in_process_on_events_lacking_a_modality(
        tmp_path, ray_session, capsys):
    """``distributed.fit`` with one worker is ``model.fit`` bit for bit: so
    is ``train --workers 1`` on files with rows missing whole (and an event
    missing from every file), the mask reaching the workers. Pinned here:
    only ``embed --ray`` was checked on such files."""
    from test_cli_missing_s64 import same_weights, write_csv

    visual, auditory = views(missing_visual=(3, 11), missing_auditory=(5, 11))
    np.save(tmp_path / "v.npy", visual)
    write_csv(tmp_path / "a.csv", auditory)
    files = ["-m", f"visual={tmp_path / 'v.npy'}", "-m", f"auditory={tmp_path / 'a.csv'}"]
    for name, extra in (("local", ()), ("ray", ("--workers", "1"))):
        code, _, err = run(capsys, "train", *files, *SMALL, *extra, "-o", tmp_path / f"{name}.safetensors")
        assert code == 0, err
    local, remote = (gm.LearnableMultiModal.load(tmp_path / f"{name}.safetensors") for name in ("local", "ray"))
    assert same_weights(local, remote)
    mean, _ = remote.normalization("auditory")  # learned from the rows that hold it
    np.testing.assert_allclose(mean, np.nanmean(auditory.astype(np.float32), axis=0), rtol=1e-5)


def test_train_refusing_validation_folds_that_cannot_be_measured_names_its_flag_not_fits_patience(tmp_path, capsys):
    """Events lacking a modality make validation folds where no two rows hold
    the same pair of modalities (a modality in one row), which early
    stopping cannot measure: train, with its default stopping, said
    "expected ... or patience=0 (no early stopping)", an argument of
    fit_with_stopping the user never typed. It names --early-stopping 0,
    and that flag trains."""
    visual, auditory = views(missing_visual=(), missing_auditory=range(1, 24))
    np.save(tmp_path / "v.npy", visual)
    np.save(tmp_path / "a.npy", auditory)
    files = ["-m", f"visual={tmp_path / 'v.npy'}", "-m", f"auditory={tmp_path / 'a.npy'}"]
    stopping = [arg for arg in SMALL if arg not in ("--validation-split", "0")]
    code, _, err = run(capsys, "train", *files, *stopping, "-o", tmp_path / "m.safetensors")
    assert code == 2 and not (tmp_path / "m.safetensors").exists()
    assert "no two rows hold the same pair of modalities" in err and "patience" not in err, err
    assert err.endswith("; expected at least 2 rows holding the same two modalities among them, or --early-stopping 0 "
                        "(no early stopping)\n"), err
    code, _, err = run(capsys, "train", *files, *stopping, "--early-stopping", "0", "-o", tmp_path / "m.safetensors")
    assert code == 0, err


def test_a_cross_validation_fold_holding_a_modality_in_one_row_is_refused_by_the_folds_name(tmp_path, capsys):
    """A fold whose held-out rows hold a modality in one row only (events
    lacking every modality elsewhere) was refused by that fold's fit, after
    the folds before it had trained, as "validation: only 1 row holds a
    modality; ...": fit's argument, which neither train (--cv-folds) nor
    MultimodalEmbedder (cv_folds) has. Refused before any training, naming
    the fold and the folds' setting, the model untouched."""
    pytest.importorskip("sklearn")
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    rng = np.random.default_rng(0)
    visual, auditory = rng.normal(size=(40, 3)), rng.normal(size=(40, 2))
    empty = np.ones(40, bool)
    empty[[3, 7, 11, 15, 16, 21, 22, 32, 36, 39]] = False  # fold 3 of 4 (seed 1) holds out one of these only
    visual[empty], auditory[empty] = np.nan, np.nan
    said = (r"cv_folds: fold 3 of the 4 cross-validation folds holds out 10 rows: only 1 row holds a modality; .* so "
            r"monitor 'val_contrastive' would be 0 every epoch; expected at least 2 rows holding a modality among them: "
            r"fewer folds, or fewer rows without any modality$")
    estimator = MultimodalEmbedder(embed_dim=8, hidden_dim=8, num_heads=2, encoder_hidden=(16,), epochs=2, batch_size=8,
                                   random_state=1, cv_folds=4, patience=1)
    with pytest.raises(gm.InvalidValueError, match="^" + said) as err:
        estimator.fit([visual, auditory])
    assert err.value.arg == "cv_folds" and not hasattr(estimator, "model_")
    np.save(tmp_path / "v.npy", visual)
    np.save(tmp_path / "a.npy", auditory)
    small = [arg for arg in SMALL if arg not in ("--validation-split", "0")]
    code, _, err = run(capsys, "train", "-m", f"visual={tmp_path / 'v.npy'}", "-m", f"auditory={tmp_path / 'a.npy'}",
                       *small, "--seed", "1", "--cv-folds", "4", "--early-stopping", "1", "-o", tmp_path / "m.safetensors")
    assert code == 2 and not (tmp_path / "m.safetensors").exists()
    assert re.match("^grapheme-mm: error: --" + said.replace("cv_folds", "cv-folds", 1), err), err
