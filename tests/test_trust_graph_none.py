"""``None`` in a list of graphs is a row absent from that modality.

A modality given as one :class:`Graph` per row refused ``None`` ("a row
absent from this modality (False in mask=) still takes a Graph, which is not
read: e.g. Graph.from_text('')"), where pandas and PyTorch users write
``None`` for a missing view. It is now taken as that spelling: the row is
absent (False in the mask made without ``mask=``), and every result of the
rows present, trained weights included, is the placeholder-and-mask
spelling's, bit for bit. A ``None`` row that ``mask=`` marks present is a
contradiction, refused naming the row; calls that have no absent rows
(``fingerprints``, ``featurize``) still refuse ``None``, naming its index.
"""

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import InvalidValueError, ShapeError
from grapheme_multimodal.stopping import fit_with_stopping

N = 24
VIS, LING, TACT = gm.Modality.VISUAL.index, gm.Modality.LINGUISTIC.index, gm.Modality.TACTILE.index
WORDS = ["cat", "dog", "bird", "fish", "horse", "mouse", "eel", "owl"]
#: what the placeholder spelling puts in an absent row: features far from the zeros a None row gets,
#: so that a result reading an absent row would differ between the two spellings
PLACEHOLDER = "a placeholder that is never read"


def _model(**options) -> gm.LearnableMultiModal:
    return gm.LearnableMultiModal(
        input_dims={"visual": 4}, graph_features={"linguistic": gm.GraphFeaturizer("wl", dim=16), "tactile": "fingerprint"},
        embed_dim=8, hidden_dim=8, num_heads=2, seed=0, **options,
    )


def _spellings(n: int = N):
    """The same data twice: with None for the absent graph rows and no mask;
    with a placeholder graph there and the mask saying False."""
    rng = np.random.default_rng(0)
    visual = rng.normal(size=(n, 4)).astype(np.float32)
    ling_absent = np.arange(n) % 3 == 0
    tact_absent = np.arange(n) % 4 == 1
    ling = [None if ling_absent[i] else gm.Graph.from_text(WORDS[i % len(WORDS)] * (1 + i % 3)) for i in range(n)]
    tact = [None if tact_absent[i] else gm.Graph.from_sequence(rng.normal(size=3 + i % 5)) for i in range(n)]
    with_none = {"visual": visual, "linguistic": ling, "tactile": tact}
    mask = np.zeros((n, 7), bool)
    mask[:, VIS] = True
    mask[:, LING] = ~ling_absent
    mask[:, TACT] = ~tact_absent
    placeholder = gm.Graph.from_text(PLACEHOLDER)
    with_placeholders = {
        "visual": visual,
        "linguistic": [placeholder if g is None else g for g in ling],
        "tactile": [placeholder if g is None else g for g in tact],
    }
    return with_none, with_placeholders, mask


def _same_state(a: gm.LearnableMultiModal, b: gm.LearnableMultiModal) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        np.testing.assert_array_equal(sa[k], sb[k], err_msg=k)


def _snapshot(model: gm.LearnableMultiModal):
    return {k: v.copy() for k, v in model.state_dict().items()}, model.epochs_trained, len(model.history), len(model.experience)


def _unchanged(model: gm.LearnableMultiModal, before) -> None:
    state, epochs, history, experience = before
    now = model.state_dict()
    assert now.keys() == state.keys() and all(np.array_equal(state[k], now[k]) for k in state)
    assert (model.epochs_trained, len(model.history), len(model.experience)) == (epochs, history, experience)


# -- the two spellings give the same results ---------------------------------------------------


def test_prepare_inputs_makes_a_none_row_absent_without_a_mask() -> None:
    model = _model()
    with_none, with_placeholders, mask = _spellings()
    arrays, got = model.prepare_inputs(with_none)
    np.testing.assert_array_equal(got, mask)
    ref, _ = model.prepare_inputs(with_placeholders, mask)
    for m in (VIS, LING, TACT):  # present rows featurised as before; absent ones hold zeros
        np.testing.assert_array_equal(arrays[m][mask[:, m]], ref[m][mask[:, m]])
        np.testing.assert_array_equal(arrays[m][~mask[:, m]], 0.0)
    assert arrays[LING].dtype == np.float32 and arrays[LING].shape == (N, 16)
    # a tuple is a list of graphs too
    _, from_tuple = model.prepare_inputs({k: tuple(v) if isinstance(v, list) else v for k, v in with_none.items()})
    np.testing.assert_array_equal(from_tuple, mask)


@pytest.mark.parametrize("given_mask", [False, True])
def test_encode_calls_give_the_placeholder_spellings_results_bit_for_bit(given_mask) -> None:
    model = _model(encoder_hidden=(8,))
    model.fit(_spellings()[1], mask=_spellings()[2], epochs=1, batch_size=8, progress=False, seed=0)
    with_none, with_placeholders, mask = _spellings()
    kwargs = {"mask": mask} if given_mask else {}
    np.testing.assert_array_equal(model.encode(with_none, **kwargs), model.encode(with_placeholders, mask))
    for a, b in zip(model.encode_and_fuse(with_none, **kwargs), model.encode_and_fuse(with_placeholders, mask)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(model.hidden_features(with_none, **kwargs), model.hidden_features(with_placeholders, mask))
    np.testing.assert_array_equal(model.encode(with_none)[~mask], 0.0)  # absent: zeros, as the mask gives


@pytest.mark.parametrize("batch", [False, True])
def test_train_step_trains_as_the_placeholder_spelling_does(batch) -> None:
    with_none, with_placeholders, mask = _spellings()
    a, b = _model(), _model()
    if batch:
        losses_a = a.train_step(gm.Batch(inputs=with_none))
        losses_b = b.train_step(gm.Batch(inputs=with_placeholders, mask=mask))
    else:
        assert a.losses(with_none) == b.losses(with_placeholders, mask)
        losses_a = a.train_step(with_none)
        losses_b = b.train_step(with_placeholders, mask)
    assert losses_a == losses_b
    _same_state(a, b)
    # with the mask given too, None under False is fine
    assert a.train_step(with_none, mask) == b.train_step(with_placeholders, mask)
    _same_state(a, b)


def test_fit_trains_the_same_weights_with_none_rows() -> None:
    with_none, with_placeholders, mask = _spellings()
    val_none, val_placeholders, val_mask = _spellings(12)
    a, b = _model(), _model()
    options = dict(epochs=2, batch_size=8, progress=False, seed=3, modality_dropout=0.2)
    history_a = a.fit(with_none, validation=val_none, **options)
    history_b = b.fit(with_placeholders, mask=mask, validation=val_placeholders, validation_mask=val_mask, **options)
    _same_state(a, b)
    assert history_a["val_total"] == history_b["val_total"] and history_a["loss"] == history_b["loss"]
    a.fit(with_none, mask=mask, **options)  # the mask given beside the None rows
    b.fit(with_placeholders, mask=mask, **options)
    _same_state(a, b)


def test_fit_with_stopping_splits_none_rows_as_placeholder_rows() -> None:
    with_none, with_placeholders, mask = _spellings()
    a, b = _model(), _model()
    options = dict(epochs=2, batch_size=8, progress=False, seed=1, validation_fraction=0.25, patience=1, monitor="val_total")
    fit_with_stopping(a, with_none, **options)
    fit_with_stopping(b, with_placeholders, mask=mask, **options)
    _same_state(a, b)


def test_fit_normalization_and_record_batch_read_the_present_rows_only() -> None:
    with_none, with_placeholders, mask = _spellings()
    a, b = _model(), _model()
    a.fit_normalization(with_none)
    b.fit_normalization(with_placeholders, mask)
    _same_state(a, b)
    np.testing.assert_array_equal(a.encode(with_none), b.encode(with_placeholders, mask))
    a.record_batch(with_none, rewards=0.5)
    b.record_batch(with_placeholders, mask, rewards=0.5)
    ea, eb = list(a.experience), list(b.experience)
    assert len(ea) == len(eb) == N
    for x, y in zip(ea, eb):
        np.testing.assert_array_equal(x.mask, y.mask)
        np.testing.assert_array_equal(x.embeddings, y.embeddings)
        np.testing.assert_array_equal(x.fused, y.fused)
        for m, (u, v) in enumerate(zip(x.inputs, y.inputs)):  # the inputs kept: the same where present
            if x.mask[m]:
                np.testing.assert_array_equal(u, v)


def test_every_row_none_is_as_a_mask_false_everywhere() -> None:
    model = _model()
    placeholders = [gm.Graph.from_text(PLACEHOLDER)] * 3
    visual = np.ones((3, 4), np.float32)
    mask = np.zeros((3, 7), bool)
    mask[:, VIS] = True
    np.testing.assert_array_equal(
        model.encode({"visual": visual, "linguistic": [None] * 3}), model.encode({"visual": visual, "linguistic": placeholders}, mask)
    )
    _, got = model.prepare_inputs({"visual": visual, "linguistic": [None] * 3})
    np.testing.assert_array_equal(got, mask)
    # no row present at all: the call does what it does for a mask False everywhere
    none_mask = np.zeros((3, 7), bool)
    np.testing.assert_array_equal(model.encode({"linguistic": [None] * 3}), model.encode({"linguistic": placeholders}, none_mask))
    np.testing.assert_array_equal(model.encode({"linguistic": [None] * 3}, none_mask), model.encode({"linguistic": placeholders}, none_mask))
    fit = lambda x, m=None: model.fit(x, mask=m, epochs=1, progress=False)  # noqa: E731
    for call, arg in ((model.fit_normalization, "inputs"), (fit, "data")):
        before = _snapshot(model)
        with pytest.raises(InvalidValueError, match=r"^mask: .*False everywhere"):
            call({"linguistic": placeholders}, none_mask)
        with pytest.raises(InvalidValueError, match=rf"^{arg}: .*every row of every list of graphs is None") as err:
            call({"linguistic": [None] * 3})
        assert err.value.arg == arg  # not "mask", which the call was not given
        _unchanged(model, before)


def test_a_list_of_none_only_takes_any_width() -> None:
    # it holds no graph: nothing says the modality's features are graphs' (visual takes 4 numbers)
    model = _model()
    x = {"visual": [None, None], "linguistic": [gm.Graph.from_text("a"), gm.Graph.from_text("b")]}
    arrays, mask = model.prepare_inputs(x)
    assert arrays[VIS].shape == (2, 4) and not mask[:, VIS].any() and mask[:, LING].all()
    # a graph beside the None rows still says graphs: refused as a graph list is for that modality
    with pytest.raises(ShapeError, match=r"^inputs\['visual'\]: got graphs \(18 fingerprint features each\) but modality visual takes 4"):
        model.encode({"visual": [None, gm.Graph.from_text("a")]})


# -- refusals ------------------------------------------------------------------------------


def test_a_none_row_the_mask_marks_present_is_refused_naming_it() -> None:
    with_none, _, mask = _spellings()
    bad = mask.copy()
    bad[3, LING] = True  # row 3 holds None (3 % 3 == 0)
    model = _model()
    before = _snapshot(model)
    message = r"\['linguistic'\]\[3\]: None marks row 3 absent from modality linguistic, but mask\[3, 2\] is True"
    fit = lambda x, m: model.fit(x, mask=m, epochs=1, progress=False)  # noqa: E731
    stopping = lambda x, m: fit_with_stopping(  # noqa: E731
        model, x, mask=m, epochs=1, progress=False, validation_fraction=0.25, patience=1, monitor="val_total")
    batch = lambda x, m: model.train_step(gm.Batch(inputs=x, mask=m))  # noqa: E731
    for call, arg in ((model.encode, "inputs"), (model.encode_and_fuse, "inputs"), (model.losses, "inputs"),
                      (model.train_step, "inputs"), (model.backward, "inputs"), (model.fit_normalization, "inputs"),
                      (model.record_batch, "inputs"), (fit, "data"), (stopping, "inputs"), (batch, "inputs")):
        with pytest.raises(InvalidValueError, match=rf"^{arg}{message}") as err:
            call(with_none, bad)
        assert err.value.arg == f"{arg}['linguistic']"
        _unchanged(model, before)
    # fit's validation names its own arguments
    with pytest.raises(InvalidValueError, match=r"^validation\['linguistic'\]\[3\]: .*but validation_mask\[3, 2\] is True"):
        model.fit(with_none, validation=with_none, validation_mask=bad, epochs=1, progress=False)
    _unchanged(model, before)


def test_a_mask_of_other_rows_is_still_a_shape_error() -> None:
    with_none, _, mask = _spellings()
    with pytest.raises(ShapeError, match=r"expected 23 rows"):
        _model().encode(with_none, mask[:-1])


def test_a_stray_item_beside_none_rows_is_named() -> None:
    model = _model()
    with pytest.raises(TypeError, match=r"^inputs\['linguistic'\]\[2\]: expected Graph or None .*got str"):
        model.encode({"linguistic": [gm.Graph.from_text("a"), None, "b"]})


@pytest.mark.parametrize("call, name, expected", [
    (gm.fingerprints, "graphs", "Graph"),
    (gm.featurize, "items", "str or Graph"),
    (gm.GraphFeaturizer("wl", dim=8), "items", "str or Graph"),
])
def test_calls_without_absent_rows_refuse_none_naming_its_index(call, name, expected) -> None:
    with pytest.raises(TypeError, match=rf"^{name}\[1\]: expected {expected}, got None; .* takes one in every row .*leave the row out"):
        call([gm.Graph.from_text("a"), None])


@pytest.mark.ray
@pytest.mark.timeout(180)
@pytest.mark.usefixtures("ray_session")
def test_distributed_fit_trains_the_same_weights_with_none_rows() -> None:
    pytest.importorskip("ray", reason='needs Ray: pip install -e ".[test]"')
    from grapheme_multimodal import distributed

    with_none, with_placeholders, mask = _spellings()
    a, b = _model(), _model()
    options = dict(num_workers=2, epochs=1, batch_size=8, progress=False, seed=2)
    distributed.fit(a, with_none, **options)
    distributed.fit(b, with_placeholders, mask=mask, **options)
    _same_state(a, b)
    bad = mask.copy()
    bad[0, LING] = True
    before = _snapshot(a)
    with pytest.raises(InvalidValueError, match=r"^data\['linguistic'\]\[0\]: None marks row 0 absent"):
        distributed.fit(a, with_none, mask=bad, **options)
    _unchanged(a, before)
