"""Leftovers of earlier sessions, each closed the way a user would expect:

1. a prioritised sample's importance weights are never 0: priorities that
   span many orders of magnitude (or a huge ``alpha * beta``) rounded the
   likelier experiences' weights to 0 in float32, so a batch of them had a
   weighted-mean loss of 0 / 0; they are now computed in float64 and a weight
   below float32's smallest normal is raised to it.

Each test failed before its fix."""

from __future__ import annotations

import decimal

import numpy as np
import pytest

from grapheme_multimodal.buffer import ExperienceBuffer

TINY32 = float(np.finfo(np.float32).tiny)


def _buffer(priorities) -> ExperienceBuffer:
    rng = np.random.default_rng(3)
    n, e = len(priorities), 8
    buffer = ExperienceBuffer(n, seed=0)
    buffer.extend(rng.normal(size=(n, 7, e)), np.ones((n, 7), bool), rng.normal(size=(n, e)),
                  rng.uniform(size=(n, 7, 7)), np.linspace(-1, 1, n))
    buffer.update_priorities(np.arange(n), priorities)
    return buffer


def _reference(priorities, pos, alpha: float, beta: float) -> np.ndarray:
    """w_i = (N P(i))^-beta / max_j (N P(j))^-beta = (p_i / p_min)^-(alpha beta), to 40 digits
    (Decimal: no overflow or underflow at any alpha, beta), then raised to float32's smallest normal."""
    ctx = decimal.Context(prec=40, Emin=-10**9, Emax=10**9)
    ab = ctx.multiply(decimal.Decimal(alpha), decimal.Decimal(beta))
    low = min(decimal.Decimal(float(p)) for p in priorities)
    out = []
    for i in pos:
        ratio = ctx.divide(decimal.Decimal(float(priorities[i])), low)
        w = ctx.exp(ctx.minus(ctx.multiply(ab, ctx.ln(ratio))))
        out.append(max(float(w), TINY32))
    return np.array(out)


PRIORITIES = np.logspace(-300, 308, 12)


@pytest.mark.parametrize("alpha, beta", [
    (0.6, 0.4), (1.0, 1.0), (1e-3, 1e-3), (1e-300, 1e-300), (1e300, 1e300), (0.6, 1e300),
    (1e308, 1e-308), (1e-308, 1e308), (0.05, 0.05),
])
def test_importance_weights_of_priorities_spanning_the_float64_range_are_never_0(alpha, beta) -> None:
    buffer = _buffer(PRIORITIES)
    s = buffer.sample(40, prioritized=True, alpha=alpha, beta=beta, replace=True)
    w = s.weights
    assert w.dtype == np.float32
    # was all 0 at (0.6, 0.4): the likelier experiences (p ~ 1e308) weigh (1e608)^-0.24 = 1e-146
    assert np.isfinite(w).all() and (w > 0).all() and (w <= 1).all(), w
    ref = _reference(PRIORITIES, s.indices, alpha, beta)
    np.testing.assert_allclose(w, ref, rtol=2 * np.finfo(np.float32).eps, atol=0)
    # a weighted mean over the batch is defined (it was 0 / 0 = nan)
    loss = np.ones(len(w), np.float32)
    assert np.isfinite((w * loss).sum() / w.sum())


def test_importance_weights_that_float32_holds_are_the_float64_formula_rounded() -> None:
    pri = np.geomspace(1e-3, 1e3, 10)
    s = _buffer(pri).sample(30, prioritized=True, alpha=0.7, beta=0.5, replace=True)
    n = len(pri)
    probs = pri ** 0.7 / (pri ** 0.7).sum()
    direct = (n * probs) ** -0.5 / ((n * probs) ** -0.5).max()  # the PER formula as written, float64
    np.testing.assert_allclose(s.weights, direct[s.indices], rtol=2 * np.finfo(np.float32).eps, atol=0)
    assert s.weights.max() <= 1 and (s.weights[s.indices == 0] == 1).all()


@pytest.mark.parametrize("alpha, beta, expected", [(1e308, 1e-308, 0.1), (1e308, 5e-309, 0.1 ** 0.5)])
def test_importance_weight_with_a_huge_alpha_and_a_tiny_beta_uses_their_product(alpha, beta, expected) -> None:
    # alpha * log(10 / 1) overflows to inf though alpha * beta * log(10) is log(10): the weight was 0
    pri = np.array([1.0, 10.0, 1.0, 10.0])
    s = _buffer(pri).sample(4, prioritized=True, alpha=alpha, beta=beta, replace=True)
    assert (pri[s.indices] == 10).all()  # alpha that large draws the largest priority only
    np.testing.assert_allclose(s.weights, _reference(pri, s.indices, alpha, beta), rtol=2 * np.finfo(np.float32).eps)
    np.testing.assert_allclose(s.weights, expected, rtol=1e-6)
