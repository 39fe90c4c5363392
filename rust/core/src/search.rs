//! Each row's best and runner-up score of a score matrix, in one pass: what
//! a nearest-neighbour search needs to find each query's nearest gallery row
//! and to tell whether another lies within rounding of it (the metrics'
//! exact-tie rule). numpy took two passes (`argmax`, then `max` with the
//! best masked), the second slower than the first.

/// Per row of a score matrix: the column of its best score (the first of
/// equal ones, as numpy's `argmax` / `argmin`), that score, and the best of
/// the other columns (the runner-up: an equal best is one, so a tie shows;
/// the worst value, -inf or +inf, for a one-column row).
#[derive(Debug, Clone, PartialEq)]
pub struct BestTwo {
    pub found: Vec<i64>,
    pub best: Vec<f64>,
    pub runner_up: Vec<f64>,
}

/// [`BestTwo`] of each row of the row-major `scores` (`cols` columns, at
/// least one): the largest scores, or with `largest == false` the smallest.
/// NaN is passed over (the searches give finite scores; a row of NaN only
/// gives column 0, NaN, and the worst value).
pub fn best_two(scores: &[f64], cols: usize, largest: bool) -> BestTwo {
    assert!(cols > 0 && scores.len().is_multiple_of(cols), "best_two: {} scores in rows of {cols}", scores.len());
    let rows = scores.len() / cols;
    let mut out = BestTwo { found: Vec::with_capacity(rows), best: Vec::with_capacity(rows), runner_up: Vec::with_capacity(rows) };
    for row in scores.chunks_exact(cols) {
        let (found, best, runner_up) = if largest { row_best_two::<true>(row) } else { row_best_two::<false>(row) };
        out.found.push(found as i64);
        out.best.push(best);
        out.runner_up.push(runner_up);
    }
    out
}

fn row_best_two<const LARGEST: bool>(row: &[f64]) -> (usize, f64, f64) {
    #[cfg(target_arch = "x86_64")]
    if row.len() >= 8 * AVX2_LANES && crate::kernels::x86_ok() {
        // SAFETY: AVX2 checked.
        return unsafe { row_best_two_avx2::<LARGEST>(row) };
    }
    row_pass::<LARGEST>(row)
}

/// Whether `a` is better than `b`; a comparison with NaN never is (NaN is passed over).
#[inline(always)]
fn beats<const LARGEST: bool>(a: f64, b: f64) -> bool {
    if LARGEST {
        a > b
    } else {
        a < b
    }
}

/// `x` seen by a lane holding `(best, second)`: the lane's new pair. NaN
/// changes neither.
#[inline(always)]
fn step<const LARGEST: bool>(best: f64, second: f64, x: f64) -> (f64, f64) {
    let up = beats::<LARGEST>(x, best);
    let lesser = if up { best } else { x };
    (if up { x } else { best }, if beats::<LARGEST>(lesser, second) { lesser } else { second })
}

/// The lanes' `(best, second)` pairs (each lane saw every `lanes`-th value
/// of a row) as the row's `(best, runner_up)`: the best of the lanes' bests,
/// and the best of every other lane's best and every lane's second.
#[inline(always)]
fn merged<const LARGEST: bool>(best: &[f64], second: &[f64]) -> (f64, f64) {
    let worst = if LARGEST { f64::NEG_INFINITY } else { f64::INFINITY };
    let mut w = 0;
    for l in 1..best.len() {
        if beats::<LARGEST>(best[l], best[w]) {
            w = l;
        }
    }
    let mut runner_up = worst;
    for l in 0..best.len() {
        for v in [second[l], if l == w { worst } else { best[l] }] {
            if beats::<LARGEST>(v, runner_up) {
                runner_up = v;
            }
        }
    }
    (best[w], runner_up)
}

/// The first column of `row` holding `target` (equal values: -0.0 is 0.0,
/// as numpy's argmax has it), 0 when none does (every value NaN).
#[inline(always)]
fn first_of(row: &[f64], target: f64) -> usize {
    row.iter().position(|&v| v == target).unwrap_or(0)
}

const LANES: usize = 8;

/// One pass in [`LANES`] lanes (selects only: vectorisable), [`merged`],
/// then the best's column (keeping each lane's column in the pass left the
/// compiler a scalar branch per lane in this crate: half the speed).
#[inline(always)]
fn row_pass<const LARGEST: bool>(row: &[f64]) -> (usize, f64, f64) {
    let worst = if LARGEST { f64::NEG_INFINITY } else { f64::INFINITY };
    let mut best = [worst; LANES];
    let mut second = [worst; LANES];
    let chunks = row.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        let chunk: &[f64; LANES] = chunk.try_into().expect("chunks_exact");
        for l in 0..LANES {
            (best[l], second[l]) = step::<LARGEST>(best[l], second[l], chunk[l]);
        }
    }
    for (l, &x) in tail.iter().enumerate() {
        (best[l], second[l]) = step::<LARGEST>(best[l], second[l], x);
    }
    let (target, runner_up) = merged::<LARGEST>(&best, &second);
    let found = first_of(row, target);
    (found, row[found], runner_up)
}

/// Values a 256-bit register holds.
#[cfg(target_arch = "x86_64")]
const AVX2_LANES: usize = 4;

/// [`row_pass`] in two AVX2 registers (8 lanes), each lane also keeping the
/// block its best came from (the first of equal ones), so no search for
/// the best's column follows: the merge takes the smallest column among
/// equal bests. Written with intrinsics: the compiler's vectorisation of
/// the same loop was left a scalar branch per lane.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn row_best_two_avx2<const LARGEST: bool>(row: &[f64]) -> (usize, f64, f64) {
    use std::arch::x86_64::*;
    const K: usize = 2;
    const WIDTH: usize = K * AVX2_LANES;
    let worst = if LARGEST { f64::NEG_INFINITY } else { f64::INFINITY };
    let mut best = [_mm256_set1_pd(worst); K];
    let mut second = best;
    let mut at = [_mm256_setzero_pd(); K];
    let mut block_index = _mm256_setzero_pd(); // exact: rows are far shorter than 2**53 blocks
    let one = _mm256_set1_pd(1.0);
    let blocks = row.chunks_exact(WIDTH);
    let tail = blocks.remainder();
    for block in blocks {
        for k in 0..K {
            // SAFETY: block holds K * AVX2_LANES values; the load is unaligned.
            let x = unsafe { _mm256_loadu_pd(block.as_ptr().add(k * AVX2_LANES)) };
            // up: x beats the lane's best (false for NaN: an ordered comparison). maxpd/minpd(a, b) give b
            // when either is NaN: a NaN x keeps the best (b), and is itself the "lesser" (b = x), which
            // the runner-up's maxpd passes over
            let b = best[k];
            if LARGEST {
                let up = _mm256_cmp_pd::<_CMP_GT_OQ>(x, b);
                second[k] = _mm256_max_pd(_mm256_min_pd(b, x), second[k]);
                best[k] = _mm256_max_pd(x, b);
                at[k] = _mm256_blendv_pd(at[k], block_index, up);
            } else {
                let up = _mm256_cmp_pd::<_CMP_LT_OQ>(x, b);
                second[k] = _mm256_min_pd(_mm256_max_pd(b, x), second[k]);
                best[k] = _mm256_min_pd(x, b);
                at[k] = _mm256_blendv_pd(at[k], block_index, up);
            }
        }
        block_index = _mm256_add_pd(block_index, one);
    }
    let (mut lanes_best, mut lanes_second, mut lanes_at) = ([worst; WIDTH], [worst; WIDTH], [0.0; WIDTH]);
    for k in 0..K {
        // SAFETY: each store writes AVX2_LANES values inside the arrays (unaligned).
        unsafe {
            _mm256_storeu_pd(lanes_best.as_mut_ptr().add(k * AVX2_LANES), best[k]);
            _mm256_storeu_pd(lanes_second.as_mut_ptr().add(k * AVX2_LANES), second[k]);
            _mm256_storeu_pd(lanes_at.as_mut_ptr().add(k * AVX2_LANES), at[k]);
        }
    }
    let full = (row.len() / WIDTH) as f64;
    for (l, &x) in tail.iter().enumerate() {
        if beats::<LARGEST>(x, lanes_best[l]) {
            lanes_at[l] = full;
        }
        (lanes_best[l], lanes_second[l]) = step::<LARGEST>(lanes_best[l], lanes_second[l], x);
    }
    let (target, runner_up) = merged::<LARGEST>(&lanes_best, &lanes_second);
    // the smallest column of the lanes whose best is the target; a lane kept its start (-inf or +inf at
    // block 0) when no value beat it, which names the right column unless NaN came first: then a search
    let column = |l: usize| lanes_at[l] as usize * WIDTH + l;
    let found = (0..WIDTH.min(row.len())).filter(|&l| lanes_best[l] == target).map(column).min().unwrap_or(0);
    let found = if row[found] == target { found } else { first_of(row, target) };
    (found, row[found], runner_up)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// numpy's two passes, by the definition: the first best, then the best of the rest (NaN passed over).
    fn reference(row: &[f64], largest: bool) -> (usize, f64, f64) {
        let better = |a: f64, b: f64| if largest { a > b } else { a < b };
        let worst = if largest { f64::NEG_INFINITY } else { f64::INFINITY };
        let start = row.iter().position(|v| !v.is_nan()).unwrap_or(0);
        let found = (start..row.len()).fold(start, |f, j| if better(row[j], row[f]) { j } else { f });
        let runner_up = (0..row.len()).filter(|&j| j != found).map(|j| row[j]).fold(worst, |r, v| if better(v, r) { v } else { r });
        (found, row[found], runner_up)
    }

    fn check(row: &[f64]) {
        for largest in [true, false] {
            let got = best_two(row, row.len(), largest);
            let want = reference(row, largest);
            let same = |a: f64, b: f64| a == b || (a.is_nan() && b.is_nan());
            assert!(
                got.found[0] as usize == want.0 && same(got.best[0], want.1) && same(got.runner_up[0], want.2),
                "{row:?} largest={largest}: {got:?}, expected {want:?}"
            );
        }
    }

    #[test]
    fn matches_the_two_passes_on_every_length_and_tie() {
        let mut state = 7u64;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 33) % 5) as f64 - 2.0 // few values: many ties, in every lane and the tail
        };
        for len in 1..150 {
            for _ in 0..20 {
                let row: Vec<f64> = (0..len).map(|_| next()).collect();
                check(&row);
            }
        }
    }

    #[test]
    fn nan_is_passed_over() {
        let mut state = 3u64;
        for len in 1..100 {
            let row: Vec<f64> = (0..len)
                .map(|_| {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    if (state >> 60) < 4 { f64::NAN } else { ((state >> 33) % 7) as f64 }
                })
                .collect();
            check(&row);
        }
        check(&[f64::NAN; 40]);
        let mut worst_after_nan = [f64::NAN; 40];
        worst_after_nan[24] = f64::NEG_INFINITY; // lane 0, after a NaN in it
        worst_after_nan[25] = f64::INFINITY;
        check(&worst_after_nan);
    }

    #[test]
    fn the_first_of_equal_bests_is_found_and_the_other_is_the_runner_up() {
        let mut row = vec![0.0; 100];
        row[70] = 3.0;
        row[13] = 3.0; // another lane, earlier
        row[5] = 3.0; // same lane as 13, earlier
        check(&row);
        let got = best_two(&row, 100, true);
        assert_eq!((got.found[0], got.best[0], got.runner_up[0]), (5, 3.0, 3.0));
        let one = best_two(&[4.0, -1.0], 1, true);
        assert_eq!(one, BestTwo { found: vec![0, 0], best: vec![4.0, -1.0], runner_up: vec![f64::NEG_INFINITY; 2] });
    }

    #[test]
    fn signed_zeros_tie_and_the_first_is_kept_as_it_is() {
        let row = [-0.0, 0.0, -1.0];
        let got = best_two(&row, 3, true);
        assert_eq!(got.found, vec![0]);
        assert!(got.best[0] == 0.0 && got.best[0].is_sign_negative());
        assert_eq!(got.runner_up[0], 0.0);
    }
}
