"""User code running inside the library's calls: numbers whose own methods
answer otherwise than their value, the ``fit`` that ``fit_with_stopping``
calls back, array-likes read more than once. The call either finishes as
for the plain value or raises a clear error naming the argument, and the
model is left as it was before the call."""

from __future__ import annotations

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal.stopping import fit_with_stopping

from test_trust_model import small_model, snapshot, synthetic


# ------------------------------------------------------- numbers read once
class _IntOtherwise(int):
    """An int whose conversions answer 0 and whose comparisons say it is
    never smaller: a check by one answer, a use by the other."""

    def __int__(self) -> int:
        return 0

    def __index__(self) -> int:
        return 0

    def __lt__(self, other: object) -> bool:
        return False

    def __le__(self, other: object) -> bool:
        return False


def test_an_int_subclass_is_taken_as_the_value_it_holds_in_fit() -> None:
    """Checked by its own ``<`` and then converted by its own ``__int__``:
    epochs of 3 trained 0 epochs without a word, batch_size 2 divided by
    zero (a bare ZeroDivisionError) and batch_size 0 passed the check."""
    data = synthetic(64)
    model = small_model()
    history = model.fit(data, epochs=_IntOtherwise(3), batch_size=_IntOtherwise(32), progress=False)
    assert len(history.epochs) == 3 and model.epochs_trained == 3
    twin = small_model()
    twin.fit(data, epochs=3, batch_size=32, progress=False)
    assert snapshot(model)[0] == snapshot(twin)[0]  # the same training as for the plain ints
    for name, value in (("batch_size", _IntOtherwise(0)), ("early_stopping", _IntOtherwise(0)), ("seed", _IntOtherwise(-1))):
        model = small_model()
        before = snapshot(model)
        with pytest.raises(gm.InvalidValueError, match=rf"^{name}: expected an int >= [01], got -?[01]$") as err:
            model.fit(data, epochs=1, validation=synthetic(20, seed=1), progress=False, **{name: value})
        assert err.value.arg == name and snapshot(model) == before


def test_an_int_subclass_is_taken_as_the_value_it_holds_for_sizes_and_seeds() -> None:
    """The model's sizes and seed, and an experience buffer's capacity:
    what was checked is what is used."""
    model = gm.LearnableMultiModal(embed_dim=_IntOtherwise(8), hidden_dim=_IntOtherwise(16), num_heads=2,
                                   seed=_IntOtherwise(5), input_dims={"visual": 10, "auditory": 6})
    assert (model.config.embed_dim, model.config.hidden_dim, model.config.seed) == (8, 16, 5)
    with pytest.raises(gm.InvalidValueError, match=r"^embed_dim: expected a positive int, got 0$"):
        gm.LearnableMultiModal(embed_dim=_IntOtherwise(0))
    with pytest.raises(gm.InvalidValueError, match=r"^seed: expected an int in \[0, 2\*\*64\), got -1$"):
        gm.LearnableMultiModal(seed=_IntOtherwise(-1))
    assert gm.ExperienceBuffer(_IntOtherwise(4)).capacity == 4
    with pytest.raises(gm.InvalidValueError, match=r"^capacity: expected a positive int, got 0$"):
        gm.ExperienceBuffer(_IntOtherwise(0))


# ------------------------------------------- the fit that fit_with_stopping calls
@pytest.mark.parametrize("fraction", [0.2, 0.5, 0.0], ids=["cross-validation", "slice", "none-held-out"])
@pytest.mark.parametrize("returned", [None, 3, {"epochs": []}])
def test_a_fit_that_returns_no_history_is_named_and_its_training_undone(fraction, returned) -> None:
    """``fit_with_stopping(fit=...)`` read ``history.epochs`` of what the
    caller's fit returned after the final fit had trained the model: an
    AttributeError on ``None``, the model left trained; on the other paths
    the value was returned as the History."""
    data = synthetic(64)
    model = small_model()
    before = snapshot(model)

    def fit(inputs, **options):
        model.fit(inputs, **options)  # trains, then forgets to return the History
        return returned

    with pytest.raises(TypeError, match=r"^fit: returned (NoneType|int|dict); expected the History of the fit it ran"):
        fit_with_stopping(model, data, validation_fraction=fraction, patience=1, monitor="val_total" if fraction else "loss",
                          epochs=2, progress=False, fit=fit)
    assert snapshot(model) == before


def test_a_fit_that_returns_its_history_is_what_fit_with_stopping_returns() -> None:
    data = synthetic(64)
    model = small_model()
    history = fit_with_stopping(model, data, validation_fraction=0.2, patience=1, monitor="val_total", epochs=2,
                                progress=False, fit=lambda inputs, **options: model.fit(inputs, **options))
    assert isinstance(history, gm.History) and history.cv_curve is not None and model.epochs_trained == len(history.epochs)


# ------------------------------------------------ inputs read once, then sliced
class _ReadsOtherwise:
    """An array-like whose ``__array__`` gives ``rows`` up to its ``good``-th
    read and ``later(rows)`` after."""

    def __init__(self, rows: np.ndarray, good: int, later) -> None:
        self.rows, self.good, self.later, self.reads = rows, good, later, 0

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        self.reads += 1
        rows = self.rows if self.reads <= self.good else self.later(self.rows)
        return rows if dtype is None else rows.astype(dtype)

    def __len__(self) -> int:
        return len(self.rows)


def _with_nan(rows: np.ndarray) -> np.ndarray:
    rows = rows.copy()
    rows[5, 0] = np.nan
    return rows


@pytest.mark.parametrize("fraction", [0.2, 0.5], ids=["cross-validation", "slice"])
@pytest.mark.parametrize("later", [lambda rows: rows[:-10], _with_nan, lambda rows: np.hstack([rows, rows])],
                         ids=["fewer-rows", "nan", "wider"])
def test_fit_with_stopping_trains_on_the_inputs_it_checked(fraction, later) -> None:
    """The rows were read to count them, again to check them, and again for
    each slice, fold and the final fit: rows that changed between reads
    were an IndexError, a NaN named as row 3 of ``data`` (or ``validation``),
    arguments the caller never gave, or the wrong width blamed on them. Read
    once after the count, they train as the same rows given as an array."""
    data = synthetic(64)
    options = dict(validation_fraction=fraction, patience=1, monitor="val_total", epochs=2, progress=False)
    model, twin = small_model(), small_model()
    hostile = {"visual": _ReadsOtherwise(data["visual"], 2, later), "auditory": data["auditory"]}
    history = fit_with_stopping(model, hostile, **options)
    assert hostile["visual"].reads == 2  # counted, then read once
    expected = fit_with_stopping(twin, data, **options)
    assert history.epochs == [{**e, "seconds": h["seconds"]} for e, h in zip(expected.epochs, history.epochs)]
    assert snapshot(model)[:3] == snapshot(twin)[:3]


def test_inputs_whose_rows_change_between_the_count_and_the_read_are_refused() -> None:
    data = synthetic(64)
    model = small_model()
    before = snapshot(model)
    hostile = {"visual": _ReadsOtherwise(data["visual"], 1, lambda rows: rows[:-10]), "auditory": data["auditory"]}
    with pytest.raises(gm.ShapeError, match=r"^inputs: 64 rows when first read and 54 when read again") as err:
        fit_with_stopping(model, hostile, validation_fraction=0.2, patience=1, monitor="val_total", epochs=2, progress=False)
    assert err.value.arg == "inputs" and snapshot(model) == before


# ------------------------------------------------ a caller's bind working in place
def test_a_bind_that_works_in_place_changes_neither_the_embeddings_nor_the_score() -> None:
    """binder_auc handed the caller's own arrays to ``bind``: one that
    scaled its arguments in place doubled the caller's embeddings on every
    call, and the negative pairs (scored after the positives) were scored on
    other values than the positives."""
    from grapheme_multimodal import evaluation

    rng = np.random.default_rng(0)
    views = {v: rng.normal(size=(30, 4)) for v in ("a", "b", "c")}
    kept = {v: x.copy() for v, x in views.items()}

    def in_place(a, b):
        a -= 1.0  # as a centring or a normalisation in place would
        b *= 3.0
        return (a * b).sum(axis=1)

    def pure(a, b):
        return ((a - 1.0) * (b * 3.0)).sum(axis=1)

    assert evaluation.binder_auc(in_place, views) == evaluation.binder_auc(pure, views)
    for v, x in views.items():
        np.testing.assert_array_equal(x, kept[v], err_msg=v)
