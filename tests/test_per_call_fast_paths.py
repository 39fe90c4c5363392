"""The per-call fast paths of one-event and one-row calls against the
general paths they stand in for: the same results, the same errors, and
nothing remembered between calls that a change of the input would make
wrong (``prepare_inputs``' ready inputs, ``train_step`` on plain inputs,
the one-row check of the objectives, the per-event cache key, the
untrained-modality warning)."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal.exceptions import InvalidValueError, NonFiniteError, ShapeError
from grapheme_multimodal.learning import _CoreBatch, _check_rows_to_learn_from
from grapheme_multimodal.objectives import OBJECTIVES, ONE_ROW_REMEDY, split_by_rows, zero_on_one_row

NAMES = [str(m) for m in gm.Modality]


@pytest.fixture(scope="module")
def model() -> gm.LearnableMultiModal:
    return gm.LearnableMultiModal(seed=0)


def _inputs(rows: int, present, seed: int = 0, dim: int = 18):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((rows, dim), dtype=np.float32) if m in present else None for m in range(7)]


def _general(model, inputs):
    """prepare_inputs through the general path: a dict is never a ready input."""
    return model.prepare_inputs({m: a for m, a in enumerate(inputs) if a is not None})


def _outcome(call):
    try:
        return "ok", call()
    except Exception as exc:  # noqa: BLE001 - the exception itself is compared
        return type(exc), str(exc)


def _assert_same_outcome(got, want) -> None:
    """Two :func:`_outcome` of ``prepare_inputs``: the same arrays (the same
    objects) and mask, or the same exception and message."""
    assert got[0] == want[0]
    if got[0] == "ok":
        assert all(a is b for a, b in zip(got[1][0], want[1][0]))
        np.testing.assert_array_equal(got[1][1], want[1][1])
    else:
        assert got[1] == want[1]


@pytest.mark.parametrize("rows", [0, 1, 3])
@pytest.mark.parametrize("present", [range(7), (0, 2, 6), (4,)])
@pytest.mark.parametrize("container", [list, tuple])
def test_ready_inputs_are_what_the_general_path_returns(model, rows, present, container):
    inputs = container(_inputs(rows, present, seed=rows))
    assert model._ready_inputs(inputs) is not None  # the fast path is the one taken
    arrays, mask = model.prepare_inputs(inputs)
    general_arrays, general_mask = _general(model, inputs)
    assert type(arrays) is list and len(arrays) == 7
    assert all(a is b for a, b in zip(arrays, general_arrays))  # passed on as they are, as the general path does
    assert mask.dtype == general_mask.dtype == np.bool_ and mask.flags.c_contiguous and mask.flags.writeable
    np.testing.assert_array_equal(mask, general_mask)


def test_ready_mask_is_a_new_array_each_call(model):
    inputs = _inputs(1, (0, 2, 6))
    _, first = model.prepare_inputs(inputs)
    first[:] = ~first  # the caller's to change: the next call's mask must not see it
    _, second = model.prepare_inputs(inputs)
    np.testing.assert_array_equal(second, [[m in (0, 2, 6) for m in range(7)]])
    assert second is not first


class _Subclass(np.ndarray):
    pass


def _not_ready_cases():
    plain = _inputs(2, (0, 2))
    fortran = np.asfortranarray(np.arange(36, dtype=np.float32).reshape(2, 18))
    misaligned = np.frombuffer(bytearray(2 * 18 * 4 + 1), dtype=np.float32, count=36, offset=1).reshape(2, 18)
    masked = np.ma.masked_array(np.zeros((2, 18), np.float32), mask=np.zeros((2, 18), bool))
    masked.mask[0, 3] = True
    subclass = np.zeros((2, 18), np.float32).view(_Subclass)
    return {
        "float64": [plain[0].astype(np.float64), None, plain[2], None, None, None, None],
        "int": [np.ones((2, 18), np.int64), None, None, None, None, None, None],
        "big-endian float32": [plain[0].astype(">f4"), None, None, None, None, None, None],
        "fortran order": [fortran, None, plain[2], None, None, None, None],
        "misaligned": [misaligned, None, None, None, None, None, None],
        "masked entries": [masked, None, None, None, None, None, None],
        "a nested list": [plain[0].tolist(), None, None, None, None, None, None],
        "wrong width": [np.zeros((2, 17), np.float32), None, None, None, None, None, None],
        "1-D": [np.zeros(18, np.float32), None, None, None, None, None, None],
        "rows differ": [plain[0], None, np.zeros((3, 18), np.float32), None, None, None, None],
        "nothing given": [None] * 7,
        "an ndarray subclass": [subclass, None, None, None, None, None, None],
    }


@pytest.mark.parametrize("case", sorted(_not_ready_cases()))
def test_inputs_that_are_not_ready_get_the_general_paths_result(model, case):
    inputs = _not_ready_cases()[case]
    assert model._ready_inputs(inputs) is None
    got = _outcome(lambda: model.prepare_inputs(inputs))
    want = _outcome(lambda: _general(model, inputs)) if case != "nothing given" else (InvalidValueError, None)
    assert got[0] == want[0]
    if got[0] == "ok":
        for a, b in zip(got[1][0], want[1][0]):
            assert (a is None) == (b is None)
            if a is not None:
                assert a.dtype == np.float32 and a.flags.c_contiguous and a.flags.aligned
                np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(got[1][1], want[1][1])
    elif want[1] is not None:
        assert got[1] == want[1]  # the same message, naming the same argument


def _general_mapping(model, mapping, mask=None):
    """prepare_inputs of ``mapping`` through the general path (a dict subclass is never ready)."""

    class Mapping(dict):
        pass

    return model.prepare_inputs(Mapping(mapping), mask)


@pytest.mark.parametrize("keys", ["modality", "name", "index", "mixed"])
@pytest.mark.parametrize("present", [range(7), (0, 2, 6), (5,)])
def test_ready_dicts_are_what_the_general_path_returns(model, keys, present):
    arrays = _inputs(2, present, seed=len(present))
    key_of = {
        "modality": lambda m: gm.Modality(m),
        "name": lambda m: NAMES[m],
        "index": lambda m: m,
        "mixed": lambda m: (gm.Modality(m), NAMES[m], m)[m % 3],
    }[keys]
    mapping = {key_of(m): arrays[m] for m in reversed(present)}  # any order
    assert model._ready_inputs(mapping) is not None
    got_arrays, got_mask = model.prepare_inputs(mapping)
    want_arrays, want_mask = _general_mapping(model, mapping)
    assert all(a is b for a, b in zip(got_arrays, want_arrays)) and all(a is b for a, b in zip(got_arrays, arrays))
    np.testing.assert_array_equal(got_mask, want_mask)
    mask = np.ones((2, 7), bool)
    assert model.prepare_inputs(mapping, mask)[1] is mask


@pytest.mark.parametrize("case", [
    "upper-case name", "unknown name", "numpy int key", "bool key", "index 7", "index -1",
    "a name and an index of one slot", "a name and its modality", "a None value", "float key",
])
def test_dicts_that_are_not_ready_get_the_general_paths_result(model, case):
    x = np.zeros((2, 18), np.float32)
    mapping = {
        "upper-case name": {"VISUAL": x},
        "unknown name": {"smell": x},
        "numpy int key": {np.int64(2): x},
        "bool key": {True: x},
        "index 7": {7: x},
        "index -1": {-1: x},
        "a name and an index of one slot": {"visual": x, 0: x},
        "a name and its modality": {gm.Modality.LINGUISTIC: x, "linguistic": x},
        "a None value": {"visual": None},
        "float key": {1.0: x},
    }[case]
    assert model._ready_inputs(mapping) is None
    got = _outcome(lambda: model.prepare_inputs(mapping))
    want = _outcome(lambda: _general_mapping(model, mapping))
    _assert_same_outcome(got, want)


def _general_masked(model, inputs, mask):
    return model.prepare_inputs({m: a for m, a in enumerate(inputs) if a is not None}, mask)


@pytest.mark.parametrize("rows", [0, 1, 3])
def test_ready_inputs_with_a_mask_are_what_the_general_path_returns(model, rows):
    inputs = _inputs(rows, (0, 2, 6), seed=rows)
    mask = np.random.default_rng(rows).random((rows, 7)) < 0.5
    assert model._ready_inputs(inputs, mask) is not None
    arrays, got_mask = model.prepare_inputs(inputs, mask)
    general_arrays, general_mask = _general_masked(model, inputs, mask)
    assert all(a is b for a, b in zip(arrays, general_arrays))
    assert got_mask is mask and general_mask is mask  # a ready mask is passed on as it is, by both paths


def _not_ready_masks(rows: int):
    ones = np.ones((rows, 7), bool)
    masked = np.ma.masked_array(ones, mask=np.zeros((rows, 7), bool))
    masked.mask[0, 1] = True
    return {
        "0/1 ints": ones.astype(np.int8),
        "2 and 0": ones.astype(np.int8) * 2,
        "fortran order": np.asfortranarray(np.ones((rows, 7), bool)),
        "a list": ones.tolist(),
        "masked entries": masked,
        "too few rows": np.ones((rows - 1, 7), bool),
        "6 columns": np.ones((rows, 6), bool),
        "1-D": np.ones(7, bool),
    }


@pytest.mark.parametrize("case", sorted(_not_ready_masks(3)))
def test_masks_that_are_not_ready_get_the_general_paths_result(model, case):
    inputs = _inputs(3, (0, 2))
    mask = _not_ready_masks(3)[case]
    assert model._ready_inputs(inputs, mask) is None
    got = _outcome(lambda: model.prepare_inputs(inputs, mask))
    want = _outcome(lambda: _general_masked(model, inputs, mask))
    _assert_same_outcome(got, want)


def test_a_mask_marking_a_missing_modality_is_refused_as_before(model):
    inputs = _inputs(2, (0,))
    mask = np.zeros((2, 7), bool)
    mask[:, [0, 4]] = True  # tactile marked present, not given
    assert model._ready_inputs(inputs, mask) is not None
    got = _outcome(lambda: model.encode(inputs, mask))
    assert got[0] != "ok"
    assert got == _outcome(lambda: model.encode({0: inputs[0]}, mask))


def test_sequences_that_are_not_seven_plain_entries_take_the_general_path(model):
    six = _inputs(1, range(6))[:6]
    assert model._ready_inputs(six) is None
    with pytest.raises(TypeError, match=r"inputs: expected a mapping modality -> array or a sequence of 7"):
        model.prepare_inputs(six)

    class Inputs(list):
        pass

    arrays, mask = model.prepare_inputs(Inputs(_inputs(1, (1,))))  # a list subclass: the general path takes it
    assert mask.tolist() == [[m == 1 for m in range(7)]]


def test_a_nan_written_after_a_call_is_still_refused(model):
    xs = _inputs(1, range(7), seed=3)
    trained = gm.LearnableMultiModal(seed=0)
    trained.train_step(xs)
    model.encode(xs)
    xs[2][0, 5] = np.nan
    before = {k: v.copy() for k, v in trained.state_dict().items()}
    with pytest.raises(NonFiniteError, match=r"inputs\['linguistic'\]"):
        trained.train_step(xs)
    with pytest.raises(NonFiniteError, match=r"inputs\['linguistic'\]"):
        model.encode(xs)
    after = trained.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)  # the refused step changed nothing


def test_train_step_on_plain_inputs_is_the_step_on_their_batch():
    xs = _inputs(1, range(7), seed=4)
    plain, batched = gm.LearnableMultiModal(seed=0), gm.LearnableMultiModal(seed=0)
    for _ in range(3):
        assert plain.train_step(xs) == batched.train_step(gm.Batch(inputs=xs))
    a, b = plain.state_dict(), batched.state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)  # bit-identical weights
    masked = gm.LearnableMultiModal(seed=0)
    mask = np.ones((1, 7), bool)
    assert masked.train_step(xs, mask) == gm.LearnableMultiModal(seed=0).train_step(gm.Batch(inputs=xs, mask=mask))


def test_train_step_refusals_are_unchanged():
    model = gm.LearnableMultiModal(seed=0)
    with pytest.raises(InvalidValueError, match=r"Batch: expected exactly one of inputs, events, components or embeddings"):
        model.train_step(None)
    with pytest.raises(InvalidValueError, match=r"mask: give it inside the Batch"):
        model.train_step(gm.Batch(inputs=_inputs(2, range(7))), np.ones((2, 7), bool))
    with pytest.raises(InvalidValueError, match=r"weights: every weight is 0"):
        model.train_step(_inputs(2, range(7)), weights={"contrastive": 0.0})
    with pytest.raises(InvalidValueError, match=r"batch: 1 row; contrastive tell the rows of a batch apart"):
        model.train_step(_inputs(1, range(7)), weights={"contrastive": 1.0})
    with pytest.raises(InvalidValueError, match=r"batch: no rows"):
        model.train_step(_inputs(0, range(7)))
    assert not model.has_gradients()


@pytest.mark.parametrize("rows", [0, 1, 2])
def test_one_row_check_agrees_with_the_split_for_every_mix(rows):
    core = _CoreBatch()
    core.mask = np.ones((rows, 7), bool)
    for on in itertools.product((0.0, 1.0), repeat=len(OBJECTIVES)):
        weights = list(on)
        if rows == 0:
            want = "batch: no rows; expected at least one row to train on"
        else:
            comparing, learning = split_by_rows(dict(zip(OBJECTIVES, weights)))
            refused = rows == 1 and comparing and not learning
            want = f"{zero_on_one_row('batch', comparing)}, so this step would train nothing; {ONE_ROW_REMEDY}" if refused else None
            if rows == 2 and comparing == ["neighborhood"] and not learning:  # a softmax over the one other row: 1
                want = ("batch: no three rows hold the same modality (neighborhood is 0 on them), so this step would train "
                        "nothing; expected data they learn from, or another objective (fused_contrastive learns from rows "
                        "of one modality, neighborhood and reconstruction from inputs)")
        got = _outcome(lambda: _check_rows_to_learn_from(core, weights))
        assert got == ((InvalidValueError, want) if want else ("ok", None)), weights


def _event(features: dict, id: int = 7) -> gm.MultiModalEvent:
    return gm.MultiModalEvent(id, [gm.ModalFeatures(v, m) for m, v in features.items()])


def test_encode_event_is_each_present_row_of_the_embeddings(model):
    rng = np.random.default_rng(5)
    event = _event({m: rng.standard_normal(18) for m in (1, 3, 6)})
    emb, mask = model._encoded(event)
    got = model.encode_event(event)
    assert list(got) == [gm.Modality(m) for m in (1, 3, 6)]
    for m in gm.Modality:
        assert (m in got) == bool(mask[0, m.index])
        if m in got:
            assert got[m].shape == (model.config.embed_dim,) and got[m].flags.owndata
            np.testing.assert_array_equal(got[m], emb[0, m.index])
    got[gm.Modality(1)][:] = 0  # a copy: the cache is not changed through it
    np.testing.assert_array_equal(model.encode_event(event)[gm.Modality(1)], emb[0, 1])


def test_event_components_are_still_checked(model):
    event = _event({0: np.ones(18)})
    event.components.append("not a component")
    with pytest.raises(TypeError, match=r"^event.components\[1\]: expected ModalGraph or ModalFeatures, got str$"):
        model.fuse_event(event)
    event.components = ("a", "tuple")
    with pytest.raises(TypeError, match=r"^event.components: expected a list of ModalGraph or ModalFeatures, got tuple$"):
        model.fuse_event(event)
    with pytest.raises(TypeError, match=r"^event: expected MultiModalEvent, got dict$"):
        model.fuse_event({})
    with pytest.raises(InvalidValueError, match=r"has no components"):
        model.fuse_event(gm.MultiModalEvent(3))


def test_component_subclasses_are_read_as_their_kind(model):
    class Features(gm.ModalFeatures):
        pass

    class Graphed(gm.ModalGraph):
        pass

    graph = gm.Graph.from_text("a red ball under the table")
    plain = gm.MultiModalEvent(1, [gm.ModalFeatures(np.ones(18), 0), gm.ModalGraph(graph, 2)])
    subclassed = gm.MultiModalEvent(1, [Features(np.ones(18), 0), Graphed(graph, 2)])
    np.testing.assert_array_equal(model.fuse_event(subclassed), model.fuse_event(plain))


def test_cached_event_sees_changes_made_in_place(model):
    features = np.linspace(-1, 1, 18)
    event = _event({0: features, 2: features[::-1]})
    first = model.fuse_event(event)
    np.testing.assert_array_equal(model.fuse_event(event), first)  # the cache hit
    event.components[0].features[3] = 5.0  # in place: the key holds the bytes
    changed = model.fuse_event(event)
    np.testing.assert_array_equal(changed, gm.LearnableMultiModal(seed=0).fuse_event(event))
    assert not np.array_equal(changed, first)
    event.components[1].confidence = 0.25
    event.components[1].modality = gm.Modality.TACTILE
    np.testing.assert_array_equal(model.fuse_event(event), gm.LearnableMultiModal(seed=0).fuse_event(event))
    event.components[0].features[0] = np.nan
    with pytest.raises(NonFiniteError):
        model.fuse_event(event)


def test_a_cached_event_is_recomputed_after_a_step_and_still_warns():
    model = gm.LearnableMultiModal(seed=0)
    event = _event({0: np.ones(18), 2: np.ones(18)})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an untrained model warns of nothing
        before = model.fuse_event(event)
        model.fuse_event(event)
    assert len(model._cache) == 1
    model.train_step(_inputs(2, (0, 1)))  # linguistic never present
    assert len(model._cache) == 0
    for _ in range(2):  # the miss, then the hit
        with pytest.warns(gm.UntrainedModalityWarning, match="modality 'linguistic' was never present"):
            after = model.fuse_event(event)
    assert not np.array_equal(before, after)
    model.train_step(_inputs(2, (0, 2, 6)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every modality of the event trained now
        model.fuse_event(event)
        model.fuse_event(event)


def test_data_frames_beside_arrays_are_still_paired_by_index(model):
    pd = pytest.importorskip("pandas")
    rows = np.zeros((3, 18), np.float32)
    visual = pd.DataFrame(rows, index=[0, 1, 2])
    linguistic = pd.DataFrame(rows, index=[2, 1, 0])
    with pytest.raises(InvalidValueError, match=r"inputs\['linguistic'\]: its index is not that of inputs\['visual'\]"):
        model.prepare_inputs([visual, rows, linguistic, None, None, None, None])


@pytest.mark.parametrize("rows", [[7], [5, 2, 9], []])
def test_fit_batches_are_the_rows_fancy_indexing_picks(model, rows):
    from grapheme_multimodal.training import _ArrayDataset

    rng = np.random.default_rng(6)
    data = {m: rng.standard_normal((12, 18)).astype(np.float32) for m in (0, 3, 5)}
    mask = rng.random((12, 7)) < 0.7
    dataset = _ArrayDataset(model, data, mask, "data")
    rows = np.array(rows, dtype=np.int64)
    keep = rng.random((len(rows), 7)) < 0.5
    for kept in (None, keep):
        batch = dataset.batch(rows, kept)
        want_mask = mask[rows] if kept is None else mask[rows] & kept
        np.testing.assert_array_equal(batch.mask, want_mask)
        assert batch.mask.flags.c_contiguous and batch.mask.dtype == np.bool_
        for m in range(7):
            if m in data:
                got = batch.inputs[m]
                assert got.dtype == np.float32 and got.flags.c_contiguous and got.shape == (len(rows), 18)
                np.testing.assert_array_equal(got, data[m][rows])
            else:
                assert batch.inputs[m] is None
    np.testing.assert_array_equal(dataset.mask_of(rows), mask[rows])
