"""``grapheme-mm train`` and ``embed`` on events that lack a modality (s64).

Every missing value of a file was refused, so the command took only events
holding every modality, though the Python API takes the others (``fit``'s
``mask=``, ``MultimodalEmbedder``'s all-NaN rows). Now a row missing whole
(every CSV cell empty, ``NA``, ..., or NaN; every value of an ``.npy`` row
NaN) is the event lacking that modality, as ``MultimodalEmbedder`` reads an
all-NaN row; a row missing in part stays refused, saying so."""

import re

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal.cli import main

SMALL = ["--embed-dim", "8", "--hidden-dim", "8", "--heads", "2", "--encoder-hidden", "16", "--epochs", "2",
         "--batch-size", "8", "--seed", "5", "--validation-split", "0", "--no-progress"]
#: MultimodalEmbedder's parameters for the model SMALL trains
ESTIMATOR = dict(embed_dim=8, hidden_dim=8, num_heads=2, encoder_hidden=(16,), epochs=2, batch_size=8, random_state=5,
                 validation_fraction=0.0, patience=0)
ROWS = 24


def views(missing_visual=(3,), missing_auditory=(5, 7)):
    """Two views of ROWS events, NaN throughout in the rows that lack them."""
    rng = np.random.default_rng(0)
    visual, auditory = rng.normal(size=(ROWS, 3)), rng.normal(size=(ROWS, 2))
    visual[list(missing_visual)] = np.nan
    auditory[list(missing_auditory)] = np.nan
    return visual, auditory


def write_csv(path, rows, header=None):
    """``rows`` as CSV text, a row of NaN as pandas' ``to_csv`` writes it: empty cells."""
    lines = [] if header is None else [header]
    lines += [",".join("" if np.isnan(v) else repr(float(v)) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def mask_of(visual, auditory):
    mask = np.zeros((len(visual), 7), bool)
    mask[:, gm.Modality.VISUAL.index] = ~np.isnan(visual).all(axis=1)
    mask[:, gm.Modality.AUDITORY.index] = ~np.isnan(auditory).all(axis=1)
    return mask


def same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(sa[k].tobytes() == sb[k].tobytes() for k in sa)


# ------------------------------------------------------------- rows missing whole: trained on and embedded
def test_a_csv_row_of_empty_cells_trains_and_embeds_as_the_model_does_with_the_mask_false_there(tmp_path, capsys):
    """Was: "row 5 (line 7) has an empty cell (column 0 of 2), a missing value
    ...; fill the missing values, or leave those events out of every file"."""
    visual, auditory = views()
    np.save(tmp_path / "v.npy", visual)
    write_csv(tmp_path / "a.csv", auditory, header="pitch,loudness")
    files = ["-m", f"visual={tmp_path / 'v.npy'}", "-m", f"auditory={tmp_path / 'a.csv'}"]
    code, out, err = run(capsys, "train", *files, *SMALL, "-o", tmp_path / "m.safetensors")
    assert code == 0, err
    assert f"trained on {ROWS} rows x 2 modalities" in out
    code, _, err = run(capsys, "embed", tmp_path / "m.safetensors", *files, "-o", tmp_path / "f.npy",
                       "--bindings", tmp_path / "s.npy", "--hidden-features", tmp_path / "h.npy")
    assert code == 0, err
    model = gm.LearnableMultiModal.load(tmp_path / "m.safetensors")
    mask = mask_of(visual, auditory)
    inputs = {"visual": visual.astype(np.float32), "auditory": auditory.astype(np.float32)}
    emb, fused = model.encode_and_fuse(inputs, mask)
    np.testing.assert_array_equal(np.load(tmp_path / "f.npy"), fused)
    np.testing.assert_array_equal(np.load(tmp_path / "s.npy"), model.pair_strengths(emb, mask))
    np.testing.assert_array_equal(np.load(tmp_path / "h.npy"), model.hidden_features(inputs, mask))
    audio = gm.Modality.AUDITORY.index
    strengths = np.load(tmp_path / "s.npy")[5]  # the event lacks the auditory view: no pair with it
    assert not strengths[audio].any() and not strengths[:, audio].any() and strengths.any()
    # the standardisation is learned from the rows that hold the modality
    mean, _ = model.normalization("auditory")
    np.testing.assert_allclose(mean, np.nanmean(auditory.astype(np.float32), axis=0), rtol=1e-5)


def test_npy_rows_of_nan_give_the_model_and_embeddings_of_multimodal_embedder(tmp_path, capsys):
    """`grapheme-mm train` and `MultimodalEmbedder` with the same settings
    train the same model bit for bit, on events that hold every view (as
    before) and on events that lack one; `embed` writes `transform`'s
    embeddings. A CSV of the NaN rows as `np.savetxt` writes them (`nan`)
    reads as the `.npy` does."""
    pytest.importorskip("sklearn")  # the estimator's extra
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    for missing in (((), ()), ((3,), (5, 7))):
        visual, auditory = views(*missing)
        np.save(tmp_path / "v.npy", visual)
        np.savetxt(tmp_path / "a.csv", auditory, delimiter=",")
        files = ["-m", f"visual={tmp_path / 'v.npy'}", "-m", f"auditory={tmp_path / 'a.csv'}"]
        code, _, err = run(capsys, "train", *files, *SMALL, "-o", tmp_path / "m.safetensors", "--overwrite")
        assert code == 0, err
        estimator = MultimodalEmbedder(modalities=["visual", "auditory"], **ESTIMATOR).fit([visual, auditory])
        assert same_weights(gm.LearnableMultiModal.load(tmp_path / "m.safetensors"), estimator.model_), missing
        code, _, err = run(capsys, "embed", tmp_path / "m.safetensors", *files, "-o", tmp_path / "f.npy", "--overwrite")
        assert code == 0, err
        np.testing.assert_array_equal(np.load(tmp_path / "f.npy"), estimator.transform([visual, auditory]))


def test_every_way_a_csv_says_a_row_is_missing_marks_the_event_missing(tmp_path):
    """What pandas' read_csv reads as NaN: empty cells, NA, N/A, #N/A, NULL, nan, mixed."""
    from grapheme_multimodal.files import read_modality_file

    for row in (",", "NA,N/A", "#N/A,NULL", "nan,nan", " ,nan", '"",NA'):
        path = tmp_path / "a.csv"
        path.write_text(f"x,y\n1,2\n{row}\n3,4\n")
        read = read_modality_file("auditory", path)
        assert read.present.tolist() == [True, False, True], row
        assert np.isnan(read.values[1]).all() and read.values[[0, 2]].tolist() == [[1, 2], [3, 4]], row
        assert read.columns == ("x", "y")
    path.write_text("x,y\n1,2\n3,4\n")
    assert read_modality_file("auditory", path).present is None  # every row present: no mask, as before


# ------------------------------------------------------------- rows missing in part: still refused
@pytest.mark.parametrize("text, said", [
    ("1,2\n1,\n3,4\n", r"row 1 \(line 2\) has an empty cell \(column 1 of 2\), a missing value .*beside numbers"),
    ("1,2\nNA,4\n3,4\n", r"row 1 \(line 2\) has the cell 'NA' \(column 0 of 2\), a missing value .*beside numbers"),
    ("1,2\n1,nan\n3,4\n", r"row 1 \(line 2\) has the value 'nan' \(column 1 of 2\), not a number \(NaN\).*beside numbers"),
])
def test_a_csv_row_missing_in_part_is_refused_saying_a_row_missing_whole_is_taken(tmp_path, capsys, text, said):
    (tmp_path / "a.csv").write_text(text)
    np.save(tmp_path / "v.npy", np.ones((3, 2)))
    code, _, err = run(capsys, "train", "-m", f"visual={tmp_path / 'v.npy'}", "-m", f"auditory={tmp_path / 'a.csv'}",
                       *SMALL, "-o", tmp_path / "m.safetensors")
    assert code == 2 and not (tmp_path / "m.safetensors").exists()
    assert err.count("\n") == 1 and re.search(said, err), err
    assert err.rstrip().endswith("fill the row's missing values, or empty every cell of it (a row whose every cell is "
                                 "missing marks the event as lacking this modality)")


def test_an_npy_row_nan_in_part_is_refused_saying_a_row_of_nan_is_taken(tmp_path, capsys):
    visual, auditory = views()
    visual[9, 1] = np.nan
    np.save(tmp_path / "v.npy", visual)
    np.save(tmp_path / "a.npy", auditory)
    code, _, err = run(capsys, "train", "-m", f"visual={tmp_path / 'v.npy'}", "-m", f"auditory={tmp_path / 'a.npy'}",
                       *SMALL, "-o", tmp_path / "m.safetensors")
    assert code == 2 and err == (
        f"grapheme-mm: error: visual ({tmp_path / 'v.npy'}): row 9 holds nan (column 1 of 3); expected finite numbers; "
        "NaN is a missing value, taken only as a whole row: fill the row's missing values, or make every value of the "
        "row NaN (a row of NaN marks the event as lacking this modality, as an all-NaN row of a MultimodalEmbedder "
        "view does)\n")


@pytest.mark.parametrize("text, said", [("1,2\ninf,inf\n3,4\n", "'inf' (column 0 of 2), infinite"),
                                        ("1,2\n1e400,1e400\n3,4\n", "'1e400' (column 0 of 2), too large for float32")])
def test_a_row_of_infinities_is_no_missing_row(tmp_path, text, said):
    from grapheme_multimodal.files import read_modality_file

    path = tmp_path / "a.csv"
    path.write_text(text)
    with pytest.raises(gm.NonFiniteError, match=rf"row 1 \(line 2\) has the value {re.escape(said)}"):
        read_modality_file("auditory", path)
    np.save(tmp_path / "a.npy", np.array([[1.0, 2.0], [np.inf, np.inf]]))
    with pytest.raises(gm.NonFiniteError, match=r"row 1 holds inf \(column 0 of 2\); expected finite numbers$"):
        read_modality_file("auditory", tmp_path / "a.npy")


# ------------------------------------------------------------- a file missing throughout, an event with nothing
@pytest.mark.parametrize("name, content", [("a.csv", "x,y\n" + ",\n" * ROWS), ("a.npy", np.full((ROWS, 2), np.nan))])
def test_a_file_whose_every_row_is_missing_is_refused_naming_it(tmp_path, capsys, name, content):
    visual, _ = views()
    np.save(tmp_path / "v.npy", visual)
    missing = tmp_path / name
    missing.write_text(content) if isinstance(content, str) else np.save(missing, content)
    gm.LearnableMultiModal(input_dims={"visual": 3, "auditory": 2}, embed_dim=8, hidden_dim=8, num_heads=2,
                           seed=0).save(tmp_path / "m.safetensors")
    files = ["-m", f"visual={tmp_path / 'v.npy'}", "-m", f"auditory={missing}"]
    for argv in (["train", *files, *SMALL, "-o", tmp_path / "new.safetensors"],
                 ["embed", tmp_path / "m.safetensors", *files, "-o", tmp_path / "f.npy"]):
        code, _, err = run(capsys, *argv)
        assert code == 2 and err == (
            f"grapheme-mm: error: auditory ({missing}): every row is missing (NaN or empty throughout), so the "
            "modality is missing from every event; expected at least one row of numbers (leave the file out: a "
            "modality with no data cannot be trained or embedded)\n"), argv
    assert not (tmp_path / "new.safetensors").exists() and not (tmp_path / "f.npy").exists()


def test_an_event_missing_from_every_file_is_trained_on_as_fit_does_and_refused_by_embed(tmp_path, capsys):
    """``fit`` passes over a row with no modality (and MultimodalEmbedder.fit
    takes it: the same model); its embedding would be the one vector every
    such row gets, so ``embed`` refuses it by its row, as
    ``MultimodalEmbedder.transform`` and ``embed_dataset`` do."""
    pytest.importorskip("sklearn")
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    visual, auditory = views(missing_visual=(3, 11), missing_auditory=(5, 11))
    np.save(tmp_path / "v.npy", visual)
    write_csv(tmp_path / "a.csv", auditory)
    files = ["-m", f"visual={tmp_path / 'v.npy'}", "-m", f"auditory={tmp_path / 'a.csv'}"]
    code, _, err = run(capsys, "train", *files, *SMALL, "-o", tmp_path / "m.safetensors")
    assert code == 0, err
    estimator = MultimodalEmbedder(modalities=["visual", "auditory"], **ESTIMATOR).fit([visual, auditory])
    assert same_weights(gm.LearnableMultiModal.load(tmp_path / "m.safetensors"), estimator.model_)
    code, _, err = run(capsys, "embed", tmp_path / "m.safetensors", *files, "-o", tmp_path / "f.npy")
    assert code == 2 and not (tmp_path / "f.npy").exists()
    assert err == (
        f"grapheme-mm: error: files: row 11 is missing in every modality file (visual={tmp_path / 'v.npy'}, "
        f"auditory={tmp_path / 'a.csv'}), so that event holds no modality and has no embedding of its own (each such "
        "event's would be the same vector); expected at least one modality per event: leave the event out of every "
        "file\n")


def test_an_untrained_modality_with_missing_rows_is_embedded_with_its_warning(tmp_path, capsys):
    """A checkpoint trained on visual alone, embedding visual and auditory
    where some events lack one: the untrained encoder's warning, as before,
    and the model's embeddings with the mask False where rows are missing."""
    visual, auditory = views()
    np.save(tmp_path / "only.npy", np.nan_to_num(visual, nan=0.5))
    np.save(tmp_path / "v.npy", visual)
    np.save(tmp_path / "a.npy", auditory)
    gm.LearnableMultiModal(input_dims={"visual": 3, "auditory": 2}, embed_dim=8, hidden_dim=8, num_heads=2,
                           seed=0).save(tmp_path / "base.safetensors")
    model = gm.LearnableMultiModal.load(tmp_path / "base.safetensors")
    model.fit({"visual": np.nan_to_num(visual, nan=0.5)}, epochs=1, progress=False)
    model.save(tmp_path / "m.safetensors")
    code, _, err = run(capsys, "embed", tmp_path / "m.safetensors", "-m", f"visual={tmp_path / 'v.npy'}",
                       "-m", f"auditory={tmp_path / 'a.npy'}", "-o", tmp_path / "f.npy")
    assert code == 0, err
    assert "modality 'auditory' was never present in a training batch" in err
    mask = mask_of(visual, auditory)
    with pytest.warns(gm.UntrainedModalityWarning):
        _, fused = model.encode_and_fuse({"visual": visual.astype(np.float32), "auditory": auditory.astype(np.float32)}, mask)
    np.testing.assert_array_equal(np.load(tmp_path / "f.npy"), fused)


# ------------------------------------------------------------- embed --ray
@pytest.mark.ray
@pytest.mark.timeout(120)
def test_embed_on_ray_writes_what_embed_writes_for_events_that_lack_a_modality(tmp_path, ray_session, capsys):
    """A modality's rows missing whole go to Ray as nulls (its absent rows),
    not as NaN, which the actors refuse."""
    visual, auditory = views()
    np.save(tmp_path / "v.npy", visual)
    write_csv(tmp_path / "a.csv", auditory)
    files = ["-m", f"visual={tmp_path / 'v.npy'}", "-m", f"auditory={tmp_path / 'a.csv'}"]
    assert run(capsys, "train", *files, *SMALL, "-o", tmp_path / "m.safetensors")[0] == 0
    outputs = {}
    for how, extra in (("local", ()), ("ray", ("--ray", "--batch-size", "7", "--workers", "1"))):
        code, _, err = run(capsys, "embed", tmp_path / "m.safetensors", *files, *extra, "-o", tmp_path / f"{how}.npy",
                           "--bindings", tmp_path / f"{how}-s.npy", "--hidden-features", tmp_path / f"{how}-h.npy")
        assert code == 0, err
        outputs[how] = [np.load(tmp_path / f"{how}{part}.npy") for part in ("", "-s", "-h")]
    for local, remote in zip(outputs["local"], outputs["ray"]):
        np.testing.assert_array_equal(remote, local)


# ------------------------------------------------------------- .parquet files
def test_a_parquet_file_trains_and_embeds_as_its_numbers_do_keeping_its_column_names(tmp_path, capsys):
    """A Parquet file (pandas' ``to_parquet``, Arrow's ``write_table``) was
    "an unsupported type '.parquet'". Now its numeric columns are read as a
    CSV file's, its column names kept as a CSV header's (``embed`` refuses
    them reordered), a row null throughout is the event lacking the modality."""
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    visual, auditory = views()
    np.save(tmp_path / "v.npy", visual)
    np.save(tmp_path / "a.npy", auditory)
    nulls = np.isnan(auditory[:, 0])
    table = pa.table({"pitch": pa.array(auditory[:, 0], mask=nulls), "loudness": pa.array(auditory[:, 1], mask=nulls)})
    pq.write_table(table, tmp_path / "a.parquet")
    models = {}
    for name in ("a.npy", "a.parquet"):
        files = ["-m", f"visual={tmp_path / 'v.npy'}", "-m", f"auditory={tmp_path / name}"]
        code, _, err = run(capsys, "train", *files, *SMALL, "-o", tmp_path / f"{name}.safetensors")
        assert code == 0, err
        models[name] = gm.LearnableMultiModal.load(tmp_path / f"{name}.safetensors")
        code, _, err = run(capsys, "embed", tmp_path / f"{name}.safetensors", *files, "-o", tmp_path / f"{name}-f.npy")
        assert code == 0, err
    assert same_weights(models["a.npy"], models["a.parquet"])
    np.testing.assert_array_equal(np.load(tmp_path / "a.parquet-f.npy"), np.load(tmp_path / "a.npy-f.npy"))
    assert models["a.parquet"].input_columns("auditory") == ("pitch", "loudness")
    pq.write_table(table.select(["loudness", "pitch"]), tmp_path / "swapped.parquet")
    code, _, err = run(capsys, "embed", tmp_path / "a.parquet.safetensors", "-m", f"visual={tmp_path / 'v.npy'}",
                       "-m", f"auditory={tmp_path / 'swapped.parquet'}", "-o", tmp_path / "g.npy")
    assert code == 2 and "names the columns the checkpoint was trained on in another order" in err


def test_a_parquet_files_nulls_beside_numbers_and_other_columns_are_refused_by_name(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq
    from grapheme_multimodal.files import read_modality_file

    path = tmp_path / "a.parquet"
    pq.write_table(pa.table({"x": [1.0, 2.0, 3.0], "y": pa.array([1, None, 3], pa.int32())}), path)
    with pytest.raises(gm.InvalidValueError, match=r"a\.parquet: row 1 has a null \(a missing value\) in column 'y' "
                                                   r"\(1 of 2\), beside numbers; .*a row null throughout marks the event"):
        read_modality_file("auditory", path)
    pq.write_table(pa.table({"x": [1.0, 2.0], "label": ["cat", "dog"]}), path)
    with pytest.raises(gm.InvalidValueError, match=r"column 'label' holds string values; expected numeric columns only"):
        read_modality_file("auditory", path)
    pq.write_table(pa.table({"x": pa.array([None, None], pa.float64())}), path)
    with pytest.raises(gm.InvalidValueError, match=r"every row is missing"):
        read_modality_file("auditory", path)


def test_a_pandas_row_index_written_to_parquet_is_not_read_as_a_feature(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    from grapheme_multimodal.files import read_modality_file

    frame = pd.DataFrame({"x": [1.0, 2.0, 4.0], "y": [3.0, 1.0, 2.0]}, index=[1001, 1002, 1003])
    frame.to_parquet(tmp_path / "a.parquet")
    read = read_modality_file("auditory", tmp_path / "a.parquet")
    assert read.columns == ("x", "y") and read.values.tolist() == frame.to_numpy().tolist()


def test_a_parquet_file_without_pyarrow_says_what_to_install(tmp_path, capsys, monkeypatch):
    import sys

    (tmp_path / "a.parquet").write_bytes(b"PAR1")
    np.save(tmp_path / "v.npy", np.ones((4, 2)))
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)  # as where pyarrow is not installed
    code, _, err = run(capsys, "train", "-m", f"visual={tmp_path / 'v.npy'}", "-m", f"auditory={tmp_path / 'a.parquet'}",
                       *SMALL, "-o", tmp_path / "m.safetensors")
    assert code == 2 and err == (f"grapheme-mm: error: auditory ({tmp_path / 'a.parquet'}): reading a .parquet file "
                                 "needs pyarrow: pip install pyarrow\n")
