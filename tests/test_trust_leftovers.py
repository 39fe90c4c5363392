"""Defects earlier audits found and left open: what fit trains on when the
caller's arrays change under it, what fit(epochs=0) leaves, tiny float64
inputs recorded in an experience buffer, and module-level tables every
caller shares."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import anchors, uci
from grapheme_multimodal.buffer import Experience, ExperienceBuffer

N = 24


def _model() -> gm.LearnableMultiModal:
    return gm.LearnableMultiModal(embed_dim=8, hidden_dim=16, num_heads=2, seed=0, input_dims={"visual": 5, "auditory": 4})


def _data(dtype=np.float32) -> dict:
    rng = np.random.default_rng(0)
    return {"visual": rng.normal(size=(N, 5)).astype(dtype), "auditory": rng.normal(size=(N, 4)).astype(dtype)}


def _assert_same_weights(a: gm.LearnableMultiModal, b: gm.LearnableMultiModal) -> None:
    for name, value in b.state_dict().items():
        np.testing.assert_array_equal(a.state_dict()[name], value, err_msg=name)


# ------------------------------------------------ 1. what fit trains on
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fit_trains_on_the_data_it_was_given_when_the_caller_writes_it_meanwhile(dtype) -> None:
    """fit read float32 C-contiguous arrays (and a bool mask) in place every
    epoch, after checking them once: another thread writing them during fit
    changed what trained (float64 ones, cast to float32, did not). A metric,
    run in fit between epochs, stands in for that thread here."""
    data, mask = _data(dtype), np.ones((N, 7), bool)
    mask[:, 2:] = False

    def rewrite(_model) -> float:
        data["visual"][:] = 7.0  # finite: the core's check of every batch cannot see it
        data["auditory"][::2] *= -3.0
        mask[::3, 1] = False
        return 0.0

    twin = _model()
    twin.fit(_data(dtype), mask=mask.copy(), epochs=3, batch_size=8, progress=False)
    model = _model()
    model.fit(data, mask=mask, epochs=3, batch_size=8, metrics={"rewrite": rewrite}, progress=False)
    assert (data["visual"] == 7.0).all()  # the caller's arrays are theirs to write, and were written
    _assert_same_weights(model, twin)


def test_a_read_only_array_trains_in_place_as_a_writable_one(tmp_path) -> None:
    """A read-only array (a memory map opened for reading) is read in place,
    not copied: data larger than memory still trains; the same weights."""
    data = _data()
    path = tmp_path / "visual.npy"
    np.save(path, data["visual"])
    mapped = np.load(path, mmap_mode="r")
    assert not mapped.flags.writeable
    model, twin = _model(), _model()
    model.fit({"visual": mapped, "auditory": data["auditory"]}, epochs=2, batch_size=8, progress=False)
    twin.fit(data, epochs=2, batch_size=8, progress=False)
    _assert_same_weights(model, twin)


# ------------------------------------------------ 2. fit(epochs=0)
def test_fit_of_no_epochs_leaves_the_model_as_it_was_its_standardisation_too() -> None:
    """fit(epochs=0, standardize=True) learned every modality's input
    standardisation from data: no step ran, yet every later encode of the
    model changed. It checks its arguments and changes nothing."""
    model, untouched = _model(), _model()
    before = untouched.encode(_data())
    history = model.fit(_data(), epochs=0, standardize=True, progress=False)
    assert history.epochs == [] and model.epochs_trained == 0 and model.history == []
    assert all(model.normalization(m) is None for m in range(7))
    _assert_same_weights(model, untouched)
    np.testing.assert_array_equal(model.encode(_data()), before)
    with pytest.raises(gm.NonFiniteError):  # still checked
        model.fit({"visual": np.full((N, 5), np.nan, np.float32)}, epochs=0, progress=False)
    # and a later fit learns the standardisation as a fresh model's does
    model.fit(_data(), epochs=1, progress=False)
    untouched.fit(_data(), epochs=1, progress=False)
    _assert_same_weights(model, untouched)


def test_fit_of_no_epochs_does_not_refuse_rows_it_would_standardise_to_zero() -> None:
    """The refusal says standardisation would make every input 0 and nothing
    train; with no epochs no standardisation is learned, so it does not apply."""
    same = {"visual": np.ones((N, 5), np.float32), "auditory": np.ones((N, 4), np.float32)}
    with pytest.raises(gm.InvalidValueError, match="standardize=True learns"):
        _model().fit(same, epochs=1, progress=False)
    model = _model()
    assert model.fit(same, epochs=0, progress=False).epochs == []
    assert all(model.normalization(m) is None for m in range(7))


# ------------------------------------------------ 3. tiny float64 buffer inputs
def _extend(buf: ExperienceBuffer, n: int, visual: np.ndarray) -> None:
    mask = np.zeros((n, 7), bool)
    mask[:, 0] = True
    buf.extend(np.zeros((n, 7, 4)), mask, np.zeros((n, 4)), np.zeros((n, 7, 7)), np.zeros(n),
               inputs=[visual] + [None] * 6)


@pytest.mark.parametrize("scale", [1e-300, 1e-310])  # below float32's normal range; the second a float64 subnormal
def test_buffer_inputs_below_float32_s_range_are_refused_not_recorded_as_zeros(scale: float) -> None:
    """ExperienceBuffer.extend cast them to float32 zeros without a word,
    and fit on the buffer trained on those zeros, where encode and fit
    refuse the same rows given as arrays (ModalFeatures too, since df394e9)."""
    buf = ExperienceBuffer(10, input_dims=[3, 2, 2, 2, 2, 2, 2])
    column = np.c_[np.arange(1.0, 5.0), scale * np.arange(1.0, 5.0), np.arange(4.0)]  # column 1 all tiny
    with pytest.raises(gm.InvalidValueError, match=r"^inputs\['visual'\]: column 1's values are at most .* below "
                       r"float32's smallest normal") as err:
        _extend(buf, 4, column)
    assert err.value.arg == "inputs['visual']" and len(buf) == 0
    # one experience: its vector as ModalFeatures reads one
    vector = scale * np.arange(1.0, 4.0)
    experience = Experience(np.zeros((7, 4)), np.eye(7, dtype=bool)[0], np.zeros(4), np.zeros((7, 7)), 0.0,
                            inputs=[vector] + [None] * 6)
    with pytest.raises(gm.InvalidValueError, match=r"^experience\.inputs\[0\]: its values are at most") as err:
        buf.append(experience)
    assert err.value.arg == "experience.inputs[0]" and len(buf) == 0


def test_buffer_inputs_with_tiny_values_beside_ordinary_ones_are_recorded_as_before() -> None:
    buf = ExperienceBuffer(10, input_dims=[3, 2, 2, 2, 2, 2, 2])
    rows = np.c_[np.arange(1.0, 5.0), np.r_[1e-300, 0.0, 2.0, 3.0], np.arange(4.0)]
    _extend(buf, 4, rows)
    _extend(buf, 1, np.array([[1.0, 1e-300, 2.0]]))  # one row: a tiny entry beside ordinary ones
    absent = np.full((2, 3), 1e-300)  # rows the mask marks absent may hold anything
    mask = np.zeros((2, 7), bool)
    mask[:, 1] = True
    buf.extend(np.zeros((2, 7, 4)), mask, np.zeros((2, 4)), np.zeros((2, 7, 7)), np.zeros(2),
               inputs=[absent, np.ones((2, 2))] + [None] * 5)
    assert buf.batch().inputs[0][:5].tolist() == np.r_[rows, [[1.0, 1e-300, 2.0]]].astype(np.float32).tolist()


# ------------------------------------------------ 4, 5. tables every caller shares
def _tables() -> dict:
    from grapheme_multimodal import demo, evaluation

    return {
        "uci.VIEW_MODALITIES": uci.VIEW_MODALITIES,
        "anchors.SPEC_KNN_ACCURACY": anchors.SPEC_KNN_ACCURACY,
        "anchors.SPEC_CCA_PRECISION": anchors.SPEC_CCA_PRECISION,
        "evaluation.NUTRIMOUSE_ANCHORS": evaluation.NUTRIMOUSE_ANCHORS,
        "demo.DEMO_FILES": demo.DEMO_FILES,
    }


@pytest.mark.parametrize("name", sorted(_tables()))
def test_the_package_s_shared_tables_cannot_be_edited_under_every_caller(name: str) -> None:
    """Plain module dicts: a user's ``spec = anchors.SPEC_KNN_ACCURACY;
    spec["pix"] = 1`` changed the reference of every later comparison in the
    process, an edit of uci.VIEW_MODALITIES the slots the demo encodes its
    views in, of NUTRIMOUSE_ANCHORS what nutrimouse_cv ran under the anchors'
    names, of DEMO_FILES where run_demo wrote. Read-only now (as
    uci.RECIPE_OBJECTIVES); they read and copy as before."""
    table = _tables()[name]
    items = dict(table)
    key = next(iter(items))
    for edit in (lambda t: t.__setitem__(key, items[key]), lambda t: t.__delitem__(key), lambda t: t.update({}),
                 lambda t: t.pop(key), lambda t: t.clear(), lambda t: t.setdefault(key)):
        with pytest.raises((TypeError, AttributeError)):
            edit(table)
    assert dict(table) == items and table == items and len(table) == len(items)
    assert {**table, "extra": None}["extra"] is None  # copies still take them
    if name != "evaluation.NUTRIMOUSE_ANCHORS":  # its entries are closures, which never pickled
        assert pickle.loads(pickle.dumps(table)) == items and copy.deepcopy(table) == items
