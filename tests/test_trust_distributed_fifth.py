"""A fifth hostile-use audit of grapheme_multimodal.distributed: the
leftovers of the first four (test_trust_distributed*.py,
test_trust_ray_audit.py) — Arrow's view layouts, duplicate column names,
dictionary-encoded columns, an output asked for twice, rows null in every
column, decimal vectors. Each test says what a user saw before the fix."""

import decimal
import os

import numpy as np
import pytest

if os.environ.get("CI"):  # CI installs the test extra, Ray included: these tests must run there
    import ray
else:
    ray = pytest.importorskip("ray", reason='needs Ray: pip install -e ".[test]"')
import pyarrow as pa  # noqa: E402  (Ray Data's dependency)
import pyarrow.parquet as pq  # noqa: E402

import grapheme_multimodal as gm  # noqa: E402
from grapheme_multimodal import distributed  # noqa: E402
from test_fit import small_model  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.timeout(120), pytest.mark.usefixtures("ray_session")]

OPTIONS = dict(num_workers=1, epochs=1, progress=False)


def images(n=6, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 20)).astype(np.float32)


def dataset(column, n=6):
    """A dataset of ``id`` and ``col`` (the Arrow array ``column``)."""
    return ray.data.from_arrow(pa.table({"id": np.arange(n), "col": column}))


def ray_makes_blocks_of(column):
    """Skips the test where this Ray cannot make a dataset block of
    ``column`` at all: Ray 2.51 (with pyarrow 21) sizes a block by its
    table's ``nbytes``, which Arrow does not give for a view layout
    ("Extracting byte ranges not supported for type list_view<item:
    float>"), so the dataset fails in Ray's own ``from_arrow`` (or the
    user's map step that makes it) and never reaches the library."""
    from ray.data.block import BlockAccessor

    try:
        BlockAccessor.for_block(pa.table({"col": column})).size_bytes()
    except pa.ArrowException as err:
        pytest.skip(f"this Ray cannot make a block of Arrow {column.type} values ({err}): no such dataset reaches "
                    "the library")


def refused_by_both(error, match, ds, modality="visual"):
    """``embed_dataset`` and ``fit`` both refuse ``ds`` at the call with
    ``error`` matching ``match`` (fit's message led by ``data: ``), fit
    leaving the model as it was."""
    with pytest.raises(error, match=rf"^{match}"):
        distributed.embed_dataset(ds, small_model(), {modality: "col"}, num_actors=1)
    model = small_model()

    def call():
        with pytest.raises(error, match=rf"^data: {match}"):
            distributed.fit(model, ds, columns={modality: "col"}, **OPTIONS)
    unchanged_after(call, model)


def unchanged_after(call, model):
    """Runs ``call`` (expected to raise) and checks ``model``'s weights are as before it."""
    before = {k: v.tobytes() for k, v in model.state_dict().items()}
    call()
    assert {k: v.tobytes() for k, v in model.state_dict().items()} == before


# ------------------------------------------------------------------ Arrow's view layouts
@pytest.fixture
def ray_serialises_as_for_users(monkeypatch):
    """Ray's serialisation of an Arrow table with a view layout, in this
    process, as outside tests: it falls back to Arrow IPC (logging a
    warning) where under pytest it raises ('Unhandled Arrow array type'),
    which would stop ``ray.data.from_arrow`` before the library is called."""
    # Ray's private module: a Ray without it (a later release) is left as it is, and the tests say what it does
    arrow_serialization = pytest.importorskip("ray._private.arrow_serialization")
    monkeypatch.setattr(arrow_serialization, "is_in_test", lambda: False, raising=False)


VIEWS = [
    pytest.param(lambda x: pa.array([list(r) for r in x], pa.list_view(pa.float32())), "visual",
                 r"list_view<item: float>", r"list<item: float>", id="list_view"),
    pytest.param(lambda x: pa.array([list(r) for r in x], pa.large_list_view(pa.float64())), "visual",
                 r"large_list_view<item: double>", r"large_list<item: double>", id="large_list_view"),
    pytest.param(lambda x: pa.array(["0-1 1-2", "0-1", "2-3", "0-2", "1-3", "0-3"], pa.string_view()), "linguistic",
                 r"string_view", r"string", id="string_view"),
]


@pytest.mark.usefixtures("ray_serialises_as_for_users")
@pytest.mark.parametrize("make, modality, layout, plain", VIEWS)
def test_an_arrow_view_layout_is_named_with_the_ordinary_type_to_cast_to(make, modality, layout, plain):
    """A list_view column of float vectors (or a string_view column of text
    for a modality that featurises graphs) was refused as "expected vectors
    of 20 numbers (or texts) per row, got list_view<item: float> values":
    vectors of numbers (or texts) were what it held. Now the message names
    the layout as what is not supported and the type to cast the column to."""
    column = make(images())
    ray_makes_blocks_of(column)
    ds = dataset(column)
    refused_by_both(TypeError, rf"column 'col' \({modality}\): holds Arrow {layout} values, and Arrow's view layouts "
                               rf"are not supported \(nor by Ray's serialisation of Arrow tables\); expected the same "
                               rf"values as {plain} \(cast the column to it where the dataset is made\)$", ds, modality)


@pytest.mark.usefixtures("ray_serialises_as_for_users")
def test_a_view_layout_of_values_no_layout_makes_usable_is_refused_for_the_values():
    """A string_view column for a numeric modality holds text, which the
    model cannot take in any layout: that is what is said, not the layout."""
    column = pa.array(["a", "b", "c", "d", "e", "f"], pa.string_view())
    ray_makes_blocks_of(column)
    ds = dataset(column)
    refused_by_both(gm.InvalidValueError, r"column 'col' \(visual\): holds text, but the model's visual encoder takes 20 "
                                          r"numeric features, not graphs$", ds)
    column = pa.array([[[1.0]] * 20] * 6, pa.list_(pa.list_view(pa.float32())))
    ray_makes_blocks_of(column)
    nested = dataset(column)
    refused_by_both(gm.ShapeError, r"column 'col' \(visual\): expected vectors of 20 numbers per row, got vectors of "
                                   r"vectors \(items of type list_view<item: float>\)$", nested)


def test_a_view_layout_is_named_where_the_dataset_runs_when_its_schema_was_not_known(quiet_ray_data):
    """Behind a map step whose output types Ray Data knows only by running
    it, the actors check each batch's types as embed_dataset checks a known
    schema."""
    def to_view(batch):
        return batch.set_column(1, "col", pa.array(batch.column("col").to_pylist(), pa.list_view(pa.float32())))

    ray_makes_blocks_of(pa.array([[1.0]], pa.list_view(pa.float32())))  # as the map step's output block

    ds = dataset(pa.array([list(r) for r in images()], pa.list_(pa.float32()))).map_batches(to_view, batch_format="pyarrow")
    assert ds.schema(fetch_if_missing=False) is None  # else this tests the call's check, not the actors'
    out = distributed.embed_dataset(ds, small_model(), {"visual": "col"}, num_actors=1)
    with pytest.raises(TypeError) as info:
        out.materialize()
    error = info.value.cause if hasattr(info.value, "cause") else info.value
    assert str(error).startswith("column 'col' (visual): holds Arrow list_view<item: float> values, and Arrow's view "
                                 "layouts are not supported"), str(error)
    del info, error


# ------------------------------------------------------------------ duplicate column names
def parquet_dataset(tmp_path, names):
    """``ray.data.read_parquet`` of a file whose columns are named ``names``
    (``id`` numbers, the others float vectors): Parquet, unlike Ray Data's
    in-memory blocks, holds two columns of one name."""
    x = images()
    arrays = [pa.array(np.arange(6)) if n == "id" else pa.array([list(r * (k + 1)) for r in x], pa.list_(pa.float32()))
              for k, n in enumerate(names)]
    path = tmp_path / "twice.parquet"
    pq.write_table(pa.Table.from_arrays(arrays, names=names), path)
    try:
        return ray.data.read_parquet(str(path))
    except pa.ArrowInvalid as err:
        if "duplicate field names" not in str(err):
            raise
        # Ray 2.51 (with pyarrow 21) lists the file through pyarrow's ParquetDataset, which refuses it
        pytest.skip(f"this Ray's read_parquet refuses a file with two columns of one name itself ({err}): no such "
                    "dataset reaches the library")


def test_embed_dataset_refuses_two_columns_of_one_name_at_the_call(tmp_path):
    """A Parquet file with two columns named 'id' (or 'img') gave a dataset
    that embed_dataset returned, and that failed where it ran, inside Ray
    (ArrowInvalid; a bare KeyError 'Field "id" exists 2 times in schema'
    where Ray makes a block of it). Now refused at the call, naming ds and
    the column: every column passes through to the output."""
    for names, twice in ((["id", "img", "id"], "id"), (["id", "img", "img"], "img")):
        ds = parquet_dataset(tmp_path, names)
        with pytest.raises(gm.InvalidValueError, match=rf"^ds: the dataset has 2 columns named '{twice}' \(its columns are "
                                                       rf"{names!r}\); embed_dataset passes every column through, and Ray "
                                                       r"Data cannot make a block with two columns of one name; expected "
                                                       r"each column name once \(rename one where the dataset is made\)$"
                           .replace("[", r"\[")) as info:
            distributed.embed_dataset(ds, small_model(), {"visual": "img"}, num_actors=1)
        assert info.value.arg == "ds"


def test_fit_refuses_a_column_it_reads_given_twice_and_reads_past_one_it_does_not(tmp_path):
    """fit failed inside Ray's read (RayTaskError(ArrowInvalid), many lines
    of retry advice) on a dataset with two columns named 'img' that it was
    to read: which holds the vectors is ambiguous. Refused at the call,
    naming data (or validation), the model unchanged. Two columns named 'id',
    which fit does not read, are no obstacle: it trains as before."""
    ds = parquet_dataset(tmp_path, ["id", "img", "img"])
    model = small_model()

    def call():
        with pytest.raises(gm.InvalidValueError, match=r"^data: the dataset has 2 columns named 'img' \(its columns are "
                                                       r"\['id', 'img', 'img'\]\); columns reads 'img' for visual, and "
                                                       r"which of them holds the vectors is ambiguous; expected each column "
                                                       r"name once") as info:
            distributed.fit(model, ds, columns={"visual": "img"}, **OPTIONS)
        assert info.value.arg == "data"
    unchanged_after(call, model)
    good = ray.data.from_arrow(pa.table({"img": pa.array([list(r) for r in images()], pa.list_(pa.float32()))}))
    with pytest.raises(gm.InvalidValueError, match=r"^validation: the dataset has 2 columns named 'img'") as info:
        distributed.fit(small_model(), good, validation=ds, columns={"visual": "img"}, **OPTIONS)
    assert info.value.arg == "validation"

    trained, reference = small_model(), small_model()
    distributed.fit(trained, parquet_dataset(tmp_path, ["id", "img", "id"]), columns={"visual": "img"}, **OPTIONS)
    distributed.fit(reference, {"visual": images()}, **OPTIONS)
    # the file's 'img' holds the images times 2 (parquet_dataset): the same standardised inputs, so the same weights
    # bit for bit, under a standardisation (the state dict's normalization.*) twice the reference's
    for name, value in reference.state_dict().items():
        if not name.startswith("normalization."):
            assert value.tobytes() == trained.state_dict()[name].tobytes(), name
    np.testing.assert_array_equal(trained.normalization("visual")[1], 2 * reference.normalization("visual")[1])


# ------------------------------------------------------------------ dictionary-encoded columns
DICTIONARIES = [
    pytest.param(pa.array([1.0, 2.0, 1.0, 3.0, 2.0, 1.0]), gm.ShapeError,
                 r"expected vectors of 20 numbers \(or texts\) per row, got one double per row", id="numbers"),
    pytest.param(pa.array([b"a", b"b", b"a", b"c", b"b", b"a"]), TypeError,
                 r"expected vectors of 20 numbers \(or texts\) per row, got binary values", id="bytes"),
    pytest.param(pa.array(["a", "b", "a", "c", "b", "a"]), gm.InvalidValueError,
                 r"holds text, but the model's visual encoder takes 20 numeric features", id="text"),
]


@pytest.mark.parametrize("values, error, match", DICTIONARIES)
def test_a_dictionary_encoded_column_is_checked_by_its_value_type_at_the_call(values, error, match):
    """A dictionary-encoded column was checked only by its rows: embed_dataset
    returned a dataset that failed where it ran (its actors started), and fit
    refused it only after reading every row, a dictionary of numbers as
    "got float64 (6,)". Now its dictionary's value type is checked where the
    schema says it, as an unencoded column's type."""
    refused_by_both(error, rf"column 'col' \(visual\): {match}", dataset(values.dictionary_encode()))


def test_a_dictionary_encoded_column_of_vectors_still_embeds_and_trains():
    x = images()
    column = pa.DictionaryArray.from_arrays(pa.array([0, 1, 2, 3, 4, 5], pa.int32()),
                                            pa.array([list(r) for r in x], pa.list_(pa.float32())))
    model = small_model()
    _, expected = model.encode_and_fuse({"visual": x})
    rows = distributed.embed_dataset(dataset(column), model, {"visual": "col"}, num_actors=1).take_all()
    assert np.stack([r["fused"] for r in sorted(rows, key=lambda r: r["id"])]).tobytes() == expected.tobytes()
    trained, reference = small_model(), small_model()
    distributed.fit(trained, dataset(column), columns={"visual": "col"}, **OPTIONS)
    distributed.fit(reference, {"visual": x}, **OPTIONS)
    for name, value in reference.state_dict().items():
        assert value.tobytes() == trained.state_dict()[name].tobytes(), name


# ------------------------------------------------------------------ outputs
@pytest.mark.parametrize("outputs, twice", [(("fused", "fused"), "'fused'"),
                                            (("fused", "bindings", "embeddings", "bindings", "fused"), "'fused', 'bindings'")])
def test_an_output_asked_for_twice_is_refused_naming_outputs(outputs, twice):
    """outputs=("fused", "fused") was accepted, the second silently
    dropped: a slip for another output (("fused", "embeddings")) gave one
    column without a word."""
    ds = dataset(pa.array([list(r) for r in images()], pa.list_(pa.float32())))
    with pytest.raises(gm.InvalidValueError, match=rf"^outputs: {twice} given more than once in "
                                                   rf"{str(outputs).replace('(', '[(]').replace(')', '[)]')}; expected "
                                                   r"each of \['fused', 'embeddings', 'bindings', 'hidden_features'\] "
                                                   r"at most once$") as info:
        distributed.embed_dataset(ds, small_model(), {"visual": "col"}, outputs=outputs)
    assert info.value.arg == "outputs"


# ------------------------------------------------------------------ rows null in every column
def test_fit_trains_on_rows_null_in_every_column_as_model_fit_on_rows_of_no_modality():
    """Where embed_dataset refuses a row null in every column (nothing to
    embed), fit takes it, as model.fit takes a row whose mask is False
    throughout and MultimodalEmbedder fits on a row NaN in every view: the
    in-memory paths are matched, bit for bit, rather than the embedding."""
    x = images(8)
    absent = [1, 4, 5]
    rows = [None if i in absent else list(map(float, r)) for i, r in enumerate(x)]
    ds = ray.data.from_arrow(pa.table({"id": np.arange(8), "img": pa.array(rows, pa.list_(pa.float32()))}))
    mask = np.zeros((8, 7), bool)
    mask[:, 0] = True
    mask[absent, 0] = False
    arrays = {"visual": np.where(mask[:, :1], x, 0)}
    options = dict(epochs=1, batch_size=8, progress=False)
    for workers in (1, 2):
        trained, reference = small_model(), small_model()
        distributed.fit(trained, ds, num_workers=workers, columns={"visual": "img"}, **options)
        if workers == 1:  # distributed.fit with one worker is model.fit
            reference.fit(arrays, mask=mask, **options)
        else:
            distributed.fit(reference, arrays, mask=mask, num_workers=workers, **options)
        for name, value in reference.state_dict().items():
            assert value.tobytes() == trained.state_dict()[name].tobytes(), (workers, name)


# ------------------------------------------------------------------ decimals
def decimal_rows(x):
    return [[decimal.Decimal(f"{v:.3f}") for v in r] for r in x]


def test_decimal_vectors_are_refused_as_model_fit_refuses_numbers_stored_as_objects():
    """A list<decimal128> column was cast to float32 and trained on (and
    embedded), where model.fit refuses the same numbers as Decimal objects
    ("numbers stored as Python objects"). Now refused at the call, naming
    the column and the cast to make."""
    x = images()
    with pytest.raises(TypeError, match=r"numbers stored as Python objects"):  # the in-memory path, for comparison
        small_model().fit({"visual": np.array(decimal_rows(x), dtype=object)}, epochs=1, progress=False)
    ds = dataset(pa.array(decimal_rows(x), pa.list_(pa.decimal128(10, 3))))
    refused_by_both(TypeError, r"column 'col' \(visual\): expected vectors of 20 floats or integers per row, got vectors of "
                               r"decimal128\(10, 3\) items \(decimals reach numpy as Python Decimal objects, which "
                               r"model\.fit refuses as numbers stored as Python objects\); cast the column to a list of "
                               r"float64 \(or float32\) where the dataset is made$", ds)


def test_decimal_objects_in_a_pandas_block_are_refused_where_the_rows_are_read():
    """A pandas block's lists of Decimal objects (a schema of Python objects,
    known only by the rows) were cast to float32 as they were read."""
    import pandas as pd

    ds = ray.data.from_pandas(pd.DataFrame({"col": decimal_rows(images())}))
    model = small_model()

    def call():
        with pytest.raises(TypeError, match=r"^data: column 'col' \(visual\): expected vectors of real numbers, got entries of "
                                            r"type Decimal; Decimal objects are refused as model\.fit refuses numbers stored "
                                            r"as Python objects: cast the column to float64 \(or float32\)"):
            distributed.fit(model, ds, columns={"visual": "col"}, **OPTIONS)
    unchanged_after(call, model)
