"""How an epoch's rows are cut into batches: one rule (a last batch of one row
joins the one before), which fit's batches, its step check and progress bar,
and the distributed draw count all follow. Each test says what a user saw."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import grapheme_multimodal as gm
from grapheme_multimodal import distributed
from grapheme_multimodal.training import _batch_layout, _Dataset

DIMS = {"visual": 5, "auditory": 3}


def small(**overrides):
    return gm.LearnableMultiModal(**{"embed_dim": 8, "hidden_dim": 8, "num_heads": 2, "seed": 0, "input_dims": DIMS, **overrides})


def data(n, seed=0):
    rng = np.random.default_rng(seed)
    return {name: rng.normal(size=(n, d)) for name, d in DIMS.items()}


def reference_sizes(rows: int, batch_size: int) -> list:
    """The rule as written in the docs: batches of batch_size, the last
    smaller; a last batch of one row joins the one before."""
    sizes = [min(batch_size, rows - start) for start in range(0, rows, batch_size)]
    if len(sizes) > 1 and sizes[-1] == 1:
        tail = sizes.pop()
        sizes[-1] += tail
    return sizes


class _Rows(_Dataset):
    """A data set of ``n`` rows: all that cutting batches reads."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n


@settings(max_examples=300, deadline=None)
@given(rows=st.integers(0, 300), batch_size=st.integers(1, 64))
def test_every_reader_of_the_layout_cuts_the_rows_as_the_rule_says(rows, batch_size):
    full, last = _batch_layout(rows, batch_size)
    assert [batch_size] * full + ([last] if last else []) == reference_sizes(rows, batch_size)
    dataset = _Rows(rows)
    for rng in (np.random.default_rng(0), None):
        chunks = dataset.batches(batch_size, rng)
        assert [len(c) for c in chunks] == reference_sizes(rows, batch_size)
        assert sorted(np.concatenate([np.arange(0), *chunks]).tolist()) == list(range(rows))
        assert dataset.num_batches(batch_size) == len(chunks)


class _CountingBar:
    """tqdm's stand-in: records the total it was given and the steps counted."""

    bars: list = []

    def __init__(self, total, **_):
        self.total, self.n = total, 0
        _CountingBar.bars.append(self)

    def update(self, n=1):
        self.n += n

    def set_postfix(self, *args, **kwargs):
        pass

    def close(self):
        pass


@pytest.mark.parametrize("rows, batch_size", [(5, 1), (9, 4), (8, 4)])
def test_the_progress_bar_counts_the_steps_fit_takes(monkeypatch, rows, batch_size):
    """fit's progress bar was sized ceil(rows / batch_size) steps an epoch, one
    more than it took when a last row joined the batch before: a run ended
    with its bar at 4/5 steps, as if it had stopped early."""
    import tqdm

    monkeypatch.setattr(tqdm, "tqdm", _CountingBar)
    _CountingBar.bars = []
    model = small()
    with pytest.warns(UserWarning) if batch_size == 1 else _no_warning():
        model.fit(data(rows), epochs=2, batch_size=batch_size, progress=True)
    (bar,) = _CountingBar.bars
    assert bar.n == bar.total == model.optimizer_state()["step"] == 2 * len(reference_sizes(rows, batch_size))


class _no_warning:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_the_step_check_counts_joined_batches_once():
    """fit's check that Adam's step counter can count the run counted a last
    row that joins the batch before as a step of its own, so a fit that ends
    exactly at the counter's end was refused, naming one step too many."""
    model = small()
    model.load_optimizer_state({**model.optimizer_state(), "step": 2**63 - 1 - 4, "rng_counter": 2**63 - 1 - 4})
    model.fit(data(5), epochs=1, batch_size=4, progress=False, objectives={"contrastive": 1.0})  # batches: one of 5
    with pytest.raises(gm.InvalidValueError, match=r"^epochs: 4 epochs of 1 steps is 4 steps; expected at most 3 epochs"):
        model.fit(data(5), epochs=4, batch_size=4, progress=False)


def test_the_distributed_draw_count_counts_a_last_batch_of_batch_size_1_joined():
    """With batch_size=1 every batch is one row and the last joins the one
    before (5 rows: 4 steps), but the distributed draw count counted 5
    draws and refused a fit that fitted exactly."""
    model = small()
    model.load_optimizer_state({**model.optimizer_state(), "rng_counter": 2**63 - 1 - 4})
    distributed._check_draw_count(model, 1, 1, 5, 2)  # 1, 1, 1, 2 rows: one share each, 4 draws
    with pytest.raises(gm.InvalidValueError, match=r"^epochs: 1 epochs of 5 steps, .* draw 5 times"):
        distributed._check_draw_count(model, 1, 1, 6, 2)
