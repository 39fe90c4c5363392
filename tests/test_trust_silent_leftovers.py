"""Leftovers of an audit: a silent acceptance where its siblings refuse, and
an error named by an argument the caller never passed. Each test says what
a user saw before the fix (the one that pins training's own use of
fit_normalization passed before too: it keeps the fix from breaking fit)."""

import gc
import logging
import os

import numpy as np
import pytest

import grapheme_multimodal as gm
from test_fit import small_model
from test_fit import synthetic as views


def _bytes_of(model):
    state = {k: v.tobytes() for k, v in model.state_dict().items()}
    norms = [None if s is None else (s[0].tobytes(), s[1].tobytes()) for s in map(model.normalization, range(7))]
    return state, norms


# ---------------------------------------------- fit_normalization's mask
def test_fit_normalization_refuses_a_mask_marking_a_modality_it_has_no_array_for():
    """A mask marking 'auditory' present in row 2, beside inputs holding only
    'visual': fit_normalization learned visual's statistics and passed over
    auditory without a word (it went on unstandardised), where encode and
    fit refuse the same mask. Now refused in encode's words, the model unchanged."""
    x = views(8)["visual"]
    mask = np.zeros((8, 7), bool)
    mask[:, 0] = True
    mask[2, 1] = True
    model = small_model()
    model.set_normalization("linguistic", np.zeros(18), np.ones(18))  # a standardisation the refusal must keep
    before = _bytes_of(model)
    with pytest.raises(gm.InvalidValueError) as refused:
        model.fit_normalization({"visual": x}, mask)
    assert str(refused.value) == "mask: marks modality 'auditory' present in row 2 but no input array was given for it"
    assert refused.value.arg == "mask"
    with pytest.raises(gm.InvalidValueError) as encoded:  # the same words as encode's refusal of the same mask
        model.encode({"visual": x}, mask)
    assert (str(encoded.value), encoded.value.arg) == (str(refused.value), refused.value.arg)
    assert _bytes_of(model) == before  # visual's statistics were not learned either
    meant = np.zeros_like(mask)
    meant[:, 0] = mask[:, 0]
    model.fit_normalization({"visual": x}, meant)  # the mask it meant: learned
    assert model.normalization("visual") is not None and model.normalization("auditory") is None


def _standardised_like_fit(data, mask, skip):
    """A model standardised by the public fit_normalization as fit's own
    call learns it: each modality not in ``skip`` from its rows ``mask`` marks."""
    model = small_model()
    given = {m: x for m, x in data.items() if m not in skip}
    only = mask & np.isin(np.arange(7), [gm.Modality.parse(m).index for m in given])
    model.fit_normalization(given, only)
    return model


def test_fit_learns_the_standardisation_it_lacks_from_the_whole_mask_bit_for_bit():
    """fit learns the statistics of the modalities not yet standardised with
    the data's whole mask beside only their arrays (the others None, though
    the mask marks them present): the public refusal must not reach it
    (a first attempt broke resumed training in test_checkpoint.py), and the
    statistics are those of the rows the mask marks, bit for bit."""
    data = {m: x for m, x in views(64, seed=3).items() if m in ("visual", "auditory")}
    mask = np.zeros((64, 7), bool)
    mask[:, :2] = np.random.default_rng(3).random((64, 2)) < 0.7
    mask[~mask.any(axis=1), 0] = True
    model = small_model()
    model.set_normalization("visual", np.full(20, 0.5), np.full(20, 2.0))  # fit passes visual as None: already set
    model.fit(data, mask=mask, epochs=1, batch_size=16, progress=False)
    expected = _standardised_like_fit(data, mask, skip=("visual",))
    got, want = model.normalization("auditory"), expected.normalization("auditory")
    assert got[0].tobytes() == want[0].tobytes() and got[1].tobytes() == want[1].tobytes()
    assert model.normalization("visual")[0].tobytes() == np.full(20, 0.5, np.float32).tobytes()  # kept

    fresh = small_model()  # and from nothing: both learned as the public call learns them
    fresh.fit(data, mask=mask, epochs=1, batch_size=16, progress=False)
    expected = _standardised_like_fit(data, mask, skip=())
    for m in ("visual", "auditory"):
        assert all(a.tobytes() == b.tobytes() for a, b in zip(fresh.normalization(m), expected.normalization(m))), m


def test_fit_on_an_experience_buffer_learns_the_standardisation_it_lacks():
    """Training on recorded experience passes the buffer's whole mask beside
    only the inputs still to standardise, as fit on arrays does."""
    data = {m: x for m, x in views(32, seed=5).items() if m in ("visual", "auditory")}
    recorder = small_model()
    recorder.record_batch(data, rewards=np.linspace(0, 1, 32))
    assert recorder.experience.batch().has_inputs.all()  # the inputs are recorded: fit standardises from them
    model = small_model()
    model.set_normalization("visual", np.zeros(20), np.ones(20))
    model.fit(recorder.experience, epochs=1, batch_size=16, progress=False)
    expected = small_model()
    expected.fit_normalization({"auditory": data["auditory"]})
    assert all(a.tobytes() == b.tobytes() for a, b in zip(model.normalization("auditory"), expected.normalization("auditory")))


# ------------------------------------------------------------------ Ray
def _ray():
    if not os.environ.get("CI"):  # CI installs the test extra, Ray included: these tests must run there
        pytest.importorskip("ray", reason='needs Ray: pip install -e ".[test]"')
    import pyarrow as pa
    import ray

    from grapheme_multimodal import distributed
    return ray, pa, distributed


def _vectors(pa, rows):
    return pa.array([None if r is None else list(r) for r in rows], type=pa.list_(pa.float64()))


@pytest.mark.ray
@pytest.mark.timeout(120)
@pytest.mark.usefixtures("ray_session")
def test_embed_dataset_refuses_a_row_null_in_every_column(monkeypatch):
    """A row with every modality column null was embedded as the fusion of
    nothing: one constant vector for every such row, unlike any row's, where
    MultimodalEmbedder.transform refuses a row with no view. Now the actor
    refuses it, naming the row by its other columns."""
    ray, pa, distributed = _ray()
    from grapheme_multimodal.cli import _RAY_DATA_ERROR_LOGGERS

    data = views(8, seed=7)
    img = [data["visual"][i] if i != 5 else None for i in range(8)]
    snd = [data["auditory"][i] if i not in (3, 5) else None for i in range(8)]  # row 3 still has img: embedded
    ds = ray.data.from_arrow(pa.table({"id": np.arange(8), "img": _vectors(pa, img), "snd": _vectors(pa, snd)}))
    for name in _RAY_DATA_ERROR_LOGGERS:  # pytest keeps their records, whose tracebacks would keep the failed pool alive
        monkeypatch.setattr(logging.getLogger(name), "disabled", True)
    out = distributed.embed_dataset(ds, small_model(), {"visual": "img", "auditory": "snd"}, batch_size=4, num_actors=1)
    with pytest.raises(gm.InvalidValueError) as info:
        out.materialize()
    error = info.value.cause if hasattr(info.value, "cause") else info.value
    text = str(error)
    assert text.startswith("ds: a row of a batch of 4 (its row 1; Ray Data does not number the dataset's rows), "
                           "whose other columns are {'id': 5}, is null in every column of columns ['img', 'snd'] "
                           "(no modality present); expected at least one of them non-null per row to embed"), text
    assert error.arg == "ds"
    del info, error
    gc.collect()  # a failed Ray Data run frees its actor pool when its reference cycles are collected

    kept = ray.data.from_arrow(pa.table({"id": np.arange(8), "img": _vectors(pa, data["visual"]), "snd": _vectors(pa, snd)}))
    rows = distributed.embed_dataset(kept, small_model(), {"visual": "img", "auditory": "snd"}, batch_size=4,
                                     num_actors=1).take_all()
    assert len(rows) == 8  # a row some column holds is embedded as before


@pytest.mark.ray
@pytest.mark.timeout(120)
@pytest.mark.usefixtures("ray_session")
def test_distributed_fit_names_the_column_the_model_refuses_not_data_visual():
    """A float64 column of values below float32's range was refused by the
    model as "data['visual']: column 0's values are at most ...": a modality
    slot of model.fit's, where the user gave a dataset's column 'img' (as
    embed_dataset's errors name it). Now named by the column, after the
    dataset (data and validation share columns=), with err.arg the column."""
    ray, pa, distributed = _ray()
    tiny = views(40)["visual"].astype(np.float64) * 1e-45
    fine = views(40, seed=1)["visual"].astype(np.float64)

    def dataset(x):
        return ray.data.from_arrow(pa.table({"id": np.arange(len(x)), "img": _vectors(pa, x)}))

    model = small_model()
    before = _bytes_of(model)
    with pytest.raises(gm.InvalidValueError) as info:
        distributed.fit(model, dataset(tiny), num_workers=1, columns={"visual": "img"}, epochs=1, progress=False)
    assert str(info.value).startswith("data: column 'img' (visual): column 0's values are at most "), str(info.value)
    assert "below float32's smallest normal number" in str(info.value) and "data['visual']" not in str(info.value)
    assert info.value.arg == "img"
    assert _bytes_of(model) == before
    with pytest.raises(gm.InvalidValueError) as info:
        distributed.fit(model, dataset(fine), validation=dataset(tiny), num_workers=1, columns={"visual": "img"},
                        epochs=1, progress=False)
    assert str(info.value).startswith("validation: column 'img' (visual): column 0's values are at most "), str(info.value)
    assert info.value.arg == "img"
    with pytest.raises(gm.InvalidValueError) as info:  # arrays keep model.fit's names: the caller gave data['visual']
        distributed.fit(model, {"visual": tiny}, num_workers=1, epochs=1, progress=False)
    assert str(info.value).startswith("data['visual']: column 0's values") and info.value.arg == "data['visual']"
    assert _bytes_of(model) == before


@pytest.mark.ray
@pytest.mark.timeout(120)
@pytest.mark.usefixtures("ray_session")
def test_distributed_fit_warns_of_lost_precision_by_the_column():
    """A float64 column whose variation float32 cannot hold was warned of as
    "data['visual']: columns 0, 1, ..."; now as the column, like its errors."""
    ray, pa, distributed = _ray()
    x = 1e6 + 1e-3 * views(16, seed=2)["visual"].astype(np.float64)
    ds = ray.data.from_arrow(pa.table({"img": _vectors(pa, x)}))
    with pytest.warns(gm.PrecisionLossWarning, match=r"^data: column 'img' \(visual\): columns 0, 1, ") as caught:
        distributed.fit(small_model(), ds, num_workers=1, columns={"visual": "img"}, epochs=1, batch_size=16, progress=False)
    assert not [w for w in caught if "data['visual']" in str(w.message)]
