"""A hostile second look at the code merged in session 56 (59bdcc8..main):
the per-event fast paths, cross-validation's handling of modality_dropout,
the precision check of integer columns. Each test is a defect met, and
says what was seen before."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal.types import ModalFeatures, ModalGraph, MultiModalEvent


# ------------------------------------------------------------------ fuse_event's lazy check of the components
class _SwapOnRead:
    """A graph stand-in whose ``_g`` sets ``event.components`` to a clean
    list when the model reads it: what another thread setting
    ``event.components`` at that moment does, made deterministic."""

    def __init__(self, event: MultiModalEvent, graph: gm.Graph, clean: list) -> None:
        self.event, self.graph, self.clean = event, graph, clean

    @property
    def _g(self):
        self.event.components = self.clean
        return self.graph._g


def test_fuse_event_checks_the_components_list_it_reads_not_the_one_the_event_holds_by_then() -> None:
    """Before: fuse_event read ``event.components`` once to iterate, and on
    its first component other than an exact ModalGraph checked
    ``event.components`` again: another thread that had set it to another
    list meanwhile got the clean list checked, and the junk of the list
    iterated read unchecked, "AttributeError: 'str' object has no attribute
    'features'", where the check (and 59bdcc8) said
    "event.components[1]: expected ModalGraph or ModalFeatures, got str"."""
    model = gm.LearnableMultiModal(input_dims={"visual": 4}, embed_dim=8, hidden_dim=16, seed=0)
    graph = gm.Graph.from_text("hello")
    event = MultiModalEvent(3)
    hooked = ModalGraph(graph, "linguistic")
    object.__setattr__(hooked, "graph", _SwapOnRead(event, graph, [ModalGraph(graph, "linguistic")]))
    event.components = [hooked, "junk"]
    with pytest.raises(TypeError, match=r"^event\.components\[1\]: expected ModalGraph or ModalFeatures, got str"):
        model.fuse_event(event)


# ------------------------------------------------------------------ cross-validation and modality_dropout
def test_cross_validation_refuses_an_idle_modality_dropout_before_any_fold_trains(monkeypatch) -> None:
    """Before (afb03b1): a fold no longer refuses modality_dropout on rows of
    one modality each, so data where no row at all holds two modalities
    trained every fold for every epoch (60 fits here: minutes on real data)
    before the final fit refused it as 59bdcc8's first fold had, at once."""
    from grapheme_multimodal import stopping

    n = 60
    rng = np.random.default_rng(0)
    mask = np.zeros((n, 7), bool)
    mask[: n // 2, 0] = mask[n // 2:, 1] = True
    model = gm.LearnableMultiModal(input_dims={"visual": 3, "auditory": 2}, embed_dim=8, hidden_dim=8, seed=0)
    fits = []
    real_fit = gm.LearnableMultiModal.fit

    def counted(self, *args, **kwargs):
        fits.append(kwargs.get("epochs"))
        return real_fit(self, *args, **kwargs)

    monkeypatch.setattr(gm.LearnableMultiModal, "fit", counted)
    with pytest.raises(gm.InvalidValueError, match=r"^modality_dropout: got 0\.3, but no row of data holds two "
                                                   r"modalities") as info:
        stopping.fit_with_stopping(
            model, {"visual": rng.normal(size=(n, 3)), "auditory": rng.normal(size=(n, 2))}, mask=mask,
            validation_fraction=0.2, patience=2, epochs=20, cv_folds=3, monitor="val_total",
            objectives={"neighborhood": 1.0}, modality_dropout=0.3, progress=False)
    assert info.value.arg == "modality_dropout"
    assert fits == [] and model.epochs_trained == 0


# ------------------------------------------------------------------ precision of integer columns past 2**53
@pytest.mark.parametrize("base", [2**60, -(2**62), 2**63 - 100])
def test_int64_ids_past_2_53_that_float32_makes_one_value_are_reported(base) -> None:
    """Before (f86afd0 said "integers now count any spread"): int64 ids
    ``2**60 + i``, exact as int64, were read as float64 by the check
    itself, one value there, their spread 0: trained on as a constant
    column without a word, as 59bdcc8 had."""
    rng = np.random.default_rng(0)
    n = 40
    x = np.stack([base + np.arange(n, dtype=np.int64), rng.integers(0, 100, n)], 1).astype(np.int64)
    model = gm.LearnableMultiModal(input_dims={"visual": 2}, embed_dim=8, hidden_dim=16, seed=0)
    with pytest.warns(gm.PrecisionLossWarning, match=r"^data\['visual'\]: column 0 varies more finely than float32 "
                                                     r"resolves: .* so in float32 the column is constant"):
        model.fit({"visual": x}, epochs=1, progress=False)


def test_int64_columns_past_2_53_float32_holds_exactly_are_not_reported() -> None:
    """The offset the check reads such columns by adds no rounding of its
    own: multiples of 2**37 near 2**60 (float32 numbers), a column of small
    ints beside them, and one spread over most of int64, are not reported."""
    from grapheme_multimodal._validation import precision_lost

    n = 40
    x = np.stack([2**60 + np.arange(n, dtype=np.int64) * 2**37, np.arange(n, dtype=np.int64),
                  np.array([-(2**62), 2**62, 0, 5] * (n // 4), dtype=np.int64)], 1)
    assert precision_lost(x, x.astype(np.float32)) is None
    present = np.ones(n, bool)
    present[0] = False
    x[0, 0] = -(2**62)  # an absent row far away: not read
    assert precision_lost(x, x.astype(np.float32), present) is None


# ------------------------------------------------------------------ a fold or slice holding out every row that differs
@pytest.mark.parametrize("n, arg", [(400, "validation_fraction"), (40, "cv_folds")])
def test_a_split_leaving_rows_all_alike_is_refused_by_name_not_as_the_data(n, arg) -> None:
    """Before: 400 rows alike but one, which the slice held out (or 40 and
    a fold), were refused as the caller's data, "data: all 360 rows hold
    the same visual values ... expected rows that differ" (fit's name, and
    false: the held-out row differs), as afb03b1 fixed for the objectives'
    rows; with folds, after the folds before it had trained. Data alike in
    every row keeps fit's refusal; standardize=False trains."""
    from grapheme_multimodal import stopping

    _, held = stopping.holdout_rows(n, 0.1, 0)
    x = np.ones((n, 3))
    x[held[0] if n == 400 else 0] = 5.0
    model = gm.LearnableMultiModal(input_dims={"visual": 3}, embed_dim=8, hidden_dim=8, seed=0)
    options = dict(epochs=2, monitor="val_total", progress=False, validation_fraction=0.1, patience=2)
    with pytest.raises(gm.InvalidValueError, match=r"rows to train on all alike|rows trained on all alike") as info:
        stopping.fit_with_stopping(model, {"visual": x}, **options)
    assert info.value.arg == arg and str(info.value).startswith(f"{arg}: "), str(info.value)
    assert model.epochs_trained == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert len(stopping.fit_with_stopping(model, {"visual": x}, standardize=False, **options).epochs) >= 1
    with pytest.raises(gm.InvalidValueError, match=r"^data: all \d+ rows hold the same visual values"):
        stopping.fit_with_stopping(gm.LearnableMultiModal(input_dims={"visual": 3}, embed_dim=8, hidden_dim=8, seed=0),
                                   {"visual": np.ones((n, 3))}, **options)


# ------------------------------------------------------------------ load_state_dict's remedy
def test_a_strict_load_lacking_several_standardisations_names_each_call_that_removes_them() -> None:
    """Before: "remove it first (model.set_normalization('visual'), and of
    each other)": one call named, the other modality left to guess."""
    rng = np.random.default_rng(0)
    model = gm.LearnableMultiModal(input_dims={"visual": 3, "auditory": 2}, embed_dim=8, hidden_dim=8, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit({"visual": rng.normal(size=(20, 3)), "auditory": rng.normal(size=(20, 2))}, epochs=1, progress=False)
    params = {k: v for k, v in model.state_dict().items() if not k.startswith("normalization.")}
    with pytest.raises(gm.InvalidValueError, match=r"remove it first \(model\.set_normalization\('visual'\); "
                                                   r"model\.set_normalization\('auditory'\)\) to load the dict as the "
                                                   r"whole state$"):
        model.load_state_dict(params)
    for m in ("visual", "auditory"):
        model.set_normalization(m)
    model.load_state_dict(params)  # the remedy works


def test_a_folds_refusal_of_rows_with_nothing_to_learn_says_the_reason_once() -> None:
    """Before: the reason was cut out of check_something_trains' message
    text (everything before "; expected"), and kept its ", so nothing would
    train": "among them, no row holds two modalities (cross_modal is 0 on
    them), so nothing would train; expected patience=0", of a model that
    trains (the fold only chooses the epoch count). The reason comes from
    objectives.nothing_trains, not from parsing a message."""
    from grapheme_multimodal import stopping

    n = 40
    rng = np.random.default_rng(0)
    mask = np.zeros((n, 7), bool)
    mask[: n // 2, 0] = mask[n // 2:, 1] = True
    mask[0, 1] = True  # the one row holding both
    model = gm.LearnableMultiModal(input_dims={"visual": 3, "auditory": 2}, embed_dim=8, hidden_dim=8, seed=0)
    with pytest.raises(gm.InvalidValueError, match=r"^cv_folds: fold \d of the \d cross-validation folds holds out \d+ "
                                                   r"rows that leave its \d+ rows to train on nothing to learn from: "
                                                   r"among them, no row holds two modalities \(cross_modal is 0 on "
                                                   r"them\); expected patience=0"):
        stopping.fit_with_stopping(
            model, {"visual": rng.normal(size=(n, 3)), "auditory": rng.normal(size=(n, 2))}, mask=mask,
            validation_fraction=0.2, patience=2, epochs=2, cv_folds=5, monitor="val_total",
            objectives={"cross_modal": 1.0}, progress=False)


def test_the_whole_number_look_of_the_precision_check_copies_only_the_columns_it_reads() -> None:
    """Before (f86afd0): with some rows absent, the look at whether a
    column far from zero holds whole numbers copied every present row of
    every column (``real[present][:, maybe]``) to read one column: the
    data's size again, at once, for a check meant to cost a pass."""
    import tracemalloc

    from grapheme_multimodal._validation import precision_lost

    n, d = 40_000, 300  # 96 MB of float64
    real = np.random.default_rng(0).normal(size=(n, d))
    real[:, 0] = 10.0**15 + np.arange(n) % 100  # whole numbers within float64 noise of their mean: read by that look
    arr = real.astype(np.float32)
    present = np.ones(n, bool)
    present[1] = False
    tracemalloc.start()
    try:
        lost = precision_lost(real, arr, present)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert lost is not None and lost.startswith("column 0 varies")
    assert peak < real.nbytes / 2, peak


def test_the_subnormal_column_check_reads_the_present_rows_in_place() -> None:
    """Before (10fd076): training data with some rows absent was copied
    whole (``arr[present]``) for two reductions, at every fit: the data's
    size again. The same refusals: a column subnormal in the present rows
    refused (absent rows' NaN unread), a zero one not."""
    import tracemalloc

    from grapheme_multimodal._validation import refuse_float32_underflow_columns

    arr = np.ones((100_000, 100), dtype=np.float32)  # 40 MB
    present = np.ones(len(arr), bool)
    present[::7] = False
    tracemalloc.start()
    try:
        refuse_float32_underflow_columns(arr, "data['visual']", present)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < arr.nbytes / 4, peak
    small = np.stack([np.full(4, 1e-40), np.zeros(4), np.arange(4.0)], 1).astype(np.float32)
    small[1, 0] = np.nan
    with pytest.raises(gm.InvalidValueError, match=r"^x: column 0's values are at most 1e-40 in magnitude"):
        refuse_float32_underflow_columns(small, "x", np.array([True, False, True, True]))
    refuse_float32_underflow_columns(small[:, 1:], "x", np.array([True, False, True, True]))
