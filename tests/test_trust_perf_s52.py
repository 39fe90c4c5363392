"""Speed of the weight restores that ``fit`` makes (the fold and best-epoch
swaps, the weight average, its undo), undone without dropping a check. No
test times anything; each pins what made the code slow, or that the faster
code gives what the slower one gave:

1. the core checked and copied a tensor by walking a dynamic-rank view
   (~5 ns a value: a quarter of ``uci.fit_views`` on small data); a
   C-contiguous tensor is now checked and copied as a slice, and a strided
   one still in its logical order;
2. all the tensors of a load go into the core in one call
   (``_core.Model.set_params``), all or nothing: every name, shape and
   value is checked before the first is written, and a bad entry raises
   what ``set_param`` raises for it (a wrong dtype now names the entry);
3. ``state_dict`` reads every tensor in one call (``get_params``, flat,
   split into the tensors), where a call per tensor took twice the time.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import two_view_data, two_view_model
from grapheme_multimodal.exceptions import InvalidValueError, NonFiniteError, ShapeError


def _bits(core) -> dict:
    """Every tensor of ``core``, as the bits of its float32 values."""
    return {name: core.get_param(name).view(np.uint32).copy() for name, _ in core.param_specs()}


def _awkward_tensors(core) -> list:
    """``(name, values)`` for every tensor: random values with -0.0, the
    smallest subnormal and values near float32's largest among them, and
    every third tensor of two or more dimensions a strided view (transposed
    twice, or reversed), as the core may be handed."""
    rng = np.random.default_rng(7)
    out = []
    for i, (name, shape) in enumerate(core.param_specs()):
        values = rng.normal(size=shape).astype(np.float32)
        flat = values.reshape(-1)
        flat[0] = -0.0
        if flat.size > 2:
            flat[1], flat[2] = np.float32(1e-45), np.float32(-3.4e38)
        if i % 3 == 0 and values.ndim >= 2:
            values = np.asfortranarray(values) if i % 2 else values[::-1][::-1]
            if i % 2:
                assert not values.flags.c_contiguous
        out.append((name, values))
    return out


# ------------------------------------------------------------ 1. and 2. the batched write
def test_one_batched_write_equals_a_write_per_tensor_bit_for_bit() -> None:
    batched, single = two_view_model(), two_view_model()
    tensors = _awkward_tensors(batched._core)
    batched._core.set_params(tensors)
    for name, values in tensors:
        single._core.set_param(name, values)
    got, expected = _bits(batched._core), _bits(single._core)
    assert got.keys() == expected.keys()
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
        np.testing.assert_array_equal(got[name], dict(tensors)[name].view(np.uint32).reshape(got[name].shape), err_msg=name)


def test_a_strided_tensor_is_read_in_its_logical_order_and_a_nan_in_it_named_there() -> None:
    model = two_view_model()
    core = model._core
    name, shape = next((n, s) for n, s in core.param_specs() if len(s) == 2 and s[0] != s[1])
    values = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    core.set_param(name, np.asfortranarray(values))
    np.testing.assert_array_equal(core.get_param(name), values)
    core.set_params([(name, (values.T + 1).T)])  # a transposed view of [s1, s0]
    np.testing.assert_array_equal(core.get_param(name), values + 1)
    bad = np.asfortranarray(values)
    bad[1, 0] = np.nan  # logical (C-order) flat index shape[1]; in memory the second value
    for write in (lambda: core.set_param(name, bad), lambda: core.set_params([(name, bad)])):
        with pytest.raises(NonFiniteError, match=f"flat index {shape[1]};"):
            write()
    np.testing.assert_array_equal(core.get_param(name), values + 1)


def _bad_entry(kind: str, name: str, values: np.ndarray):
    """``(name, values)`` made bad in the way ``kind`` says."""
    if kind == "unknown name":
        return "encoder.nowhere.weight", values
    if kind == "wrong shape":
        return name, values.reshape(-1)[:-1]
    if kind == "NaN":
        bad = values.copy()
        bad.reshape(-1)[-1] = np.nan
        return name, bad
    if kind == "inf":
        bad = values.copy()
        bad.reshape(-1)[0] = -np.inf
        return name, bad
    assert kind == "wrong dtype"
    return name, values.astype(np.float64)


@pytest.mark.parametrize("kind", ["unknown name", "wrong shape", "NaN", "inf", "wrong dtype"])
@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_a_bad_entry_anywhere_refuses_the_whole_batch_as_set_param_refuses_it(kind, where) -> None:
    model = two_view_model()
    core = model._core
    before = _bits(core)
    tensors = _awkward_tensors(core)
    at = {"first": 0, "middle": len(tensors) // 2, "last": len(tensors) - 1}[where]
    tensors[at] = _bad_entry(kind, *tensors[at])
    with pytest.raises(Exception) as alone:
        core.set_param(*tensors[at])
    with pytest.raises(type(alone.value)) as batched:
        core.set_params(tensors)
    if kind == "wrong dtype":
        # set_param's TypeError said "'ndarray' object is not an instance of 'ndarray'"
        assert isinstance(batched.value, TypeError)
        message = str(batched.value)
        assert f"tensors[{at}]" in message and tensors[at][0] in message and "float32" in message and "float64" in message
    else:
        assert isinstance(batched.value, {"unknown name": InvalidValueError, "wrong shape": ShapeError}.get(kind, NonFiniteError))
        assert str(batched.value) == str(alone.value) and batched.value.arg == alone.value.arg
        assert tensors[at][0] in str(batched.value)
    after = _bits(core)
    assert all(np.array_equal(after[n], before[n]) for n in before), "a refused batch wrote nothing"


@pytest.mark.parametrize(
    "tensors, message",
    [
        ({"binder.bias": np.zeros(1, np.float32)}, "tensors: expected a list of (name, float32 array) pairs, got dict"),
        (None, "tensors: expected a list of (name, float32 array) pairs, got NoneType"),
        ([("binder.bias",)], "tensors[0]: expected a (name, float32 array) pair, got tuple"),
        (["binder.bias"], "tensors[0]: expected a (name, float32 array) pair, got str"),
        ([(1, np.zeros(1, np.float32))], "tensors[0]: expected a (name, float32 array) pair, got tuple"),
        ([("binder.bias", [0.0])], 'tensors[0] ("binder.bias"): expected a float32 numpy array, got list'),
    ],
)
def test_a_batch_of_another_form_is_a_type_error_naming_the_argument(tensors, message) -> None:
    model = two_view_model()
    before = _bits(model._core)
    with pytest.raises(TypeError) as err:
        model._core.set_params(tensors)
    assert str(err.value) == message
    after = _bits(model._core)
    assert all(np.array_equal(after[n], before[n]) for n in before)


class _CountingCore:
    """The model's core, counting the calls of each method."""

    def __init__(self, core) -> None:
        self._core, self.calls = core, {}

    def __getattr__(self, name: str):
        attr = getattr(self._core, name)
        if not callable(attr):
            return attr

        def counted(*args, **kwargs):
            self.calls[name] = self.calls.get(name, 0) + 1
            return attr(*args, **kwargs)

        return counted


def test_a_load_writes_every_tensor_in_one_call_and_state_dict_reads_them_in_one() -> None:
    model, other = two_view_model(), two_view_model(seed=11)
    target = other.state_dict()
    model._core = spy = _CountingCore(model._core)
    try:
        model.load_state_dict(target)
        assert spy.calls.get("set_params") == 1 and "set_param" not in spy.calls
        spy.calls.clear()
        got = model.state_dict()
        assert spy.calls.get("get_params") == 1 and "get_param" not in spy.calls
    finally:
        model._core = spy._core
    assert list(got) == [name for name, _ in model._core.param_specs()]
    for name, values in got.items():
        assert values.dtype == np.float32 and values.shape == tuple(model.parameter_shapes()[name])
        np.testing.assert_array_equal(values.view(np.uint32), model._core.get_param(name).view(np.uint32))
        np.testing.assert_array_equal(values, target[name])


def test_state_dict_is_a_copy_each_time() -> None:
    """Its tensors are views of one flat read: writing into one changes
    neither the model, nor another tensor, nor a second state_dict."""
    model = two_view_model()
    first, second = model.state_dict(), model.state_dict()
    kept = {name: values.copy() for name, values in second.items()}
    for values in first.values():
        values[...] = 5.0
    for name, values in model.state_dict().items():
        np.testing.assert_array_equal(values, kept[name])
        np.testing.assert_array_equal(second[name], kept[name])
    assert all((values == 5.0).all() for values in first.values())


def test_a_fit_with_averaging_and_stopping_is_the_same_with_one_write_per_restore(monkeypatch) -> None:
    """Every restore of a cross-validated fit with averaging (the folds'
    swaps, the best epoch, the average and its undo) goes through the one
    write, and gives what a write per tensor gave: the weights, Adam's
    state, the average and the history, bit for bit."""
    from grapheme_multimodal.model import LearnableMultiModal
    from grapheme_multimodal.stopping import fit_with_stopping

    data = two_view_data(24)  # fewer than min_validation_rows: 3-fold cross-validation chooses the epochs
    kw = dict(validation_fraction=0.1, patience=2, monitor="val_contrastive", seed=4, cv_folds=3, epochs=6,
              batch_size=8, ema_decay=0.5, progress=False)
    writes = []
    real = LearnableMultiModal._set_params

    def counted(self, staged) -> None:
        writes.append(len(staged))
        real(self, staged)

    monkeypatch.setattr(LearnableMultiModal, "_set_params", counted)
    batched = two_view_model()
    fit_with_stopping(batched, data, **kw)
    assert len(writes) > 10  # the restores this pins

    def per_tensor(self, staged) -> None:
        for name, values in staged.items():
            self._core.set_param(name, values)

    monkeypatch.setattr(LearnableMultiModal, "_set_params", per_tensor)
    single = two_view_model()
    fit_with_stopping(single, data, **kw)
    for a, b in ((batched.state_dict(), single.state_dict()),
                 (batched.optimizer_state()["exp_avg"], single.optimizer_state()["exp_avg"]),
                 (batched.weight_average.mean, single.weight_average.mean),
                 (batched.weight_average.trained, single.weight_average.trained)):
        assert a.keys() == b.keys()
        for name in a:
            np.testing.assert_array_equal(np.asarray(a[name]).view(np.uint8), np.asarray(b[name]).view(np.uint8))
    untimed = lambda history: [{k: v for k, v in record.items() if k != "seconds"} for record in history]  # noqa: E731
    assert untimed(batched.history) == untimed(single.history) and batched.epochs_trained == single.epochs_trained
