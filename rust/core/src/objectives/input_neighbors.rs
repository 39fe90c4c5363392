//! The rows of a batch nearest to each row by its encoder inputs: the extra
//! positives of `contrastive` when `config.contrastive_neighbors > 0`.
//!
//! The distance of rows `r` and `q` is, with `config.input_distance`
//! `columns` (the default), the mean squared difference per input column
//! over the modalities both have,
//! `d(r, q) = Σ_m ‖x_m(r) − x_m(q)‖² / Σ_m d_m` (`m` present in both), on the
//! inputs as the encoders read them (after the model's normalisation); for
//! rows with every modality it ranks as the Euclidean distance between the
//! concatenated inputs, so a modality of many columns outweighs one of few.
//! With `modalities`, every modality weighs the same: the mean over the
//! shared modalities of each one's mean squared difference per column,
//! `d(r, q) = (1/|M|) Σ_m ‖x_m(r) − x_m(q)‖² / d_m`. Rows sharing no
//! modality are never neighbours.
//! A modality given as several components per row (graphs) counts with the
//! weighted mean of its components, the row's pooled input.
//!
//! Why inputs, not embeddings: standardised raw views already hold the class
//! structure the contrastive objective erodes (it pulls apart every pair of
//! events, those of one class too); counting an event's input-space
//! neighbours as partial positives keeps it (docs/objectives.md).

use crate::error::{expected_names, Error, Result};
use crate::kernels::{self, Epilogue};
use crate::real::Real;
use ndarray::{Array1, Array2, ArrayView2, Axis, CowArray, Ix2};
use std::borrow::Cow;

/// One modality's inputs: the batch rows that have it and their (pooled,
/// normalised) input vectors, one row each (borrowed when already so).
pub struct RowInputs<'a, T: Clone> {
    pub rows: Cow<'a, [usize]>,
    pub x: CowArray<'a, T, Ix2>,
}

/// How the modalities' squared differences add up to a distance
/// (`config.input_distance`; see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InputDistance {
    /// Every input column weighs the same (the concatenated inputs' distance).
    #[default]
    Columns,
    /// Every modality weighs the same, whatever its number of columns.
    Modalities,
}

impl InputDistance {
    pub const ALL: [InputDistance; 2] = [InputDistance::Columns, InputDistance::Modalities];

    pub fn name(self) -> &'static str {
        match self {
            InputDistance::Columns => "columns",
            InputDistance::Modalities => "modalities",
        }
    }

    pub fn from_name(name: &str) -> Result<Self> {
        Self::ALL.iter().copied().find(|k| k.name() == name).ok_or_else(|| {
            Error::invalid(
                "input_distance",
                format!("unknown input distance {name:?}; expected {}", expected_names(Self::ALL.map(Self::name))),
            )
        })
    }
}

/// The `k` rows nearest to each of the `batch` rows by `distance` (see the
/// module documentation), nearest first, ties to the lower row; fewer where
/// fewer rows share a modality with it.
pub fn input_neighbors<T: Real>(inputs: &[RowInputs<'_, T>], batch: usize, k: usize, distance: InputDistance) -> Vec<Vec<usize>> {
    let k = k.min(batch.saturating_sub(1));
    if k == 0 {
        return vec![Vec::new(); batch];
    }
    let mut dist = Array2::<T>::zeros((batch, batch));
    let mut dims = Array2::<T>::zeros((batch, batch));
    let centred: Vec<Option<RowInputs<T>>> = inputs.iter().map(without_shared_offset).collect();
    let sides: Vec<&RowInputs<T>> =
        inputs.iter().zip(&centred).map(|(s, c)| c.as_ref().unwrap_or(s)).filter(|s| s.rows.len() >= 2).collect();
    let mut squares: Vec<Array1<T>> = sides.iter().map(|s| row_squares(s.x.view())).collect();
    let scale = rescaling(&sides, &squares);
    let scaled: Vec<Option<Array2<T>>> = sides.iter().map(|s| scale.map(|c| s.x.mapv(|v| v * c))).collect();
    if scale.is_some() {
        squares = scaled.iter().flatten().map(|x| row_squares(x.view())).collect();
    }
    if std::mem::size_of::<T>() < std::mem::size_of::<f64>() && lost_to_underflow(&sides, &squares) {
        // Modalities of far apart magnitudes (e.g. 1e30 beside 1): one scale
        // cannot keep both in float32, and the smaller one's squares were 0,
        // every distance between rows sharing only it a tie. float64 holds the
        // squares of any float32; only such batches take this path.
        let wide: Vec<RowInputs<f64>> = sides
            .iter()
            .map(|s| RowInputs { rows: s.rows.clone(), x: CowArray::from(s.x.mapv(|v| v.to_f64().unwrap_or(f64::NAN))) })
            .collect();
        return input_neighbors(&wide, batch, k, distance);
    }
    for ((side, sq), scaled) in sides.iter().zip(&squares).zip(&scaled) {
        let x = scaled.as_ref().map_or_else(|| side.x.view(), |x| x.view());
        let xt = x.t().as_standard_layout().into_owned();
        let mut gram = Array2::<T>::zeros((x.nrows(), x.nrows()));
        kernels::gemm(x, xt.view(), gram.view_mut(), Epilogue::store());
        let d = T::c(x.ncols() as f64);
        for (a, &ra) in side.rows.iter().enumerate() {
            for (b, &rb) in side.rows.iter().enumerate() {
                let squares = sq[a] + sq[b] - (gram[[a, b]] + gram[[a, b]]);
                match distance {
                    // sums of squares over sums of columns
                    InputDistance::Columns => {
                        dist[[ra, rb]] += squares;
                        dims[[ra, rb]] += d;
                    }
                    // each modality's mean square per column, averaged over the modalities
                    InputDistance::Modalities => {
                        dist[[ra, rb]] += squares / d;
                        dims[[ra, rb]] += T::one();
                    }
                }
            }
        }
    }
    (0..batch).map(|r| nearest(dist.row(r).into_iter().copied().zip(dims.row(r).iter().copied()), r, k)).collect()
}

/// How many times its rows' spread a modality's mean row may lie from 0
/// before the distances are computed on its rows less that mean
/// ([`without_shared_offset`]). Batches of standardised inputs lie far
/// below (their mean is about `1/√B` of their spread).
const OFFSET_OVER_SPREAD: f64 = 8.0;

/// `side` less its rows' mean (the column means, exact for a constant
/// column) when that mean lies more than [`OFFSET_OVER_SPREAD`] times farther
/// from 0 than the rows lie from it (root mean square); else `None`, and the
/// inputs are used as they are, bit for bit. No distance changes, but
/// distances computed as `‖a‖² + ‖b‖² − 2a·b` lose the rows' differences to
/// rounding when the rows share a large offset: in float32 a column of a
/// constant 1000 (a year, a price) beside standardised ones already changed
/// the neighbours found, and from 1e5 on every distance was rounding noise.
fn without_shared_offset<'a, T: Real>(side: &RowInputs<'a, T>) -> Option<RowInputs<'a, T>> {
    let x = side.x.view();
    let n = x.nrows();
    if n < 2 {
        return None;
    }
    let value = |v: &T| v.to_f64().unwrap_or(f64::NAN);
    let mean: Vec<f64> = x.columns().into_iter().map(|c| c.iter().map(value).sum::<f64>() / n as f64).collect();
    let spread: f64 = x.columns().into_iter().zip(&mean).map(|(c, m)| c.iter().map(|v| (value(v) - m).powi(2)).sum::<f64>()).sum::<f64>() / n as f64;
    let offset: f64 = mean.iter().map(|m| m * m).sum();
    if !offset.is_finite() || offset <= OFFSET_OVER_SPREAD * OFFSET_OVER_SPREAD * spread {
        return None;
    }
    // a constant column's mean of float32 copies is its value: its rows become 0 exactly
    let mean: Array1<T> = mean.into_iter().map(T::c).collect();
    Some(RowInputs { rows: Cow::Owned(side.rows.to_vec()), x: CowArray::from(&x - &mean) })
}

/// Each row's sum of squares.
fn row_squares<T: Real>(x: ArrayView2<T>) -> Array1<T> {
    x.rows().into_iter().map(|row| row.iter().fold(T::zero(), |acc, &v| acc + v * v)).collect()
}

/// `None` when the squared distances of these inputs fit `T` (every batch
/// of ordinary inputs: their squared row norms, already at hand, say so);
/// else the power of two that brings the largest input into [0.5, 1).
/// Squared, float32 inputs beyond about 1e19 overflow and those below about
/// 1e-19 underflow: every distance was then NaN or 0, a tie, and each row's
/// neighbours were just the lowest rows of the batch. Scaling by a power of
/// two is exact, so the order of the distances is kept; only such batches
/// take the extra pass over their inputs.
fn rescaling<T: Real>(sides: &[&RowInputs<T>], squares: &[Array1<T>]) -> Option<T> {
    let largest = squares.iter().flat_map(|s| s.iter()).fold(T::zero(), |m, &v| m.max(v));
    if largest <= T::max_value() / T::c(64.0) && largest >= T::min_positive_value().sqrt() {
        return None;
    }
    let max_abs = sides.iter().flat_map(|s| s.x.iter()).fold(T::zero(), |m, &v| m.max(v.abs()));
    if max_abs == T::zero() || !max_abs.is_finite() {
        return None;
    }
    let exponent = max_abs.to_f64()?.log2().floor().clamp(-126.0, 126.0) as i32;
    Some(T::c(2f64.powi(-exponent - 1)))
}

/// Whether a modality's squared row norms (after [`rescaling`]) sit where
/// float32 loses them: its largest below `2^20` times the smallest normal
/// number while it holds a value that is not 0. Ordinary batches (one
/// magnitude, standardised inputs, zero rows of a constant column) never
/// do; checked on the squares at hand, the values read only then.
fn lost_to_underflow<T: Real>(sides: &[&RowInputs<T>], squares: &[Array1<T>]) -> bool {
    let floor = T::min_positive_value() * T::c(1_048_576.0);
    sides.iter().zip(squares).any(|(side, sq)| {
        sq.iter().fold(T::zero(), |m, &v| m.max(v)) < floor && side.x.iter().any(|&v| v != T::zero())
    })
}

/// The `k` candidates `q ≠ r` with shared columns and the smallest mean
/// squared difference (NaN last), ties to the lower row.
fn nearest<T: Real>(row: impl Iterator<Item = (T, T)>, r: usize, k: usize) -> Vec<usize> {
    let mut best: Vec<(T, usize)> = Vec::with_capacity(k + 1);
    for (q, (dist, dims)) in row.enumerate() {
        if q == r || dims <= T::zero() {
            continue;
        }
        let d = dist / dims;
        let d = if d.is_nan() { T::infinity() } else { d };
        // Candidates come in row order, so a tie never displaces an earlier row.
        if best.len() == k && best.last().is_some_and(|&(worst, _)| d >= worst) {
            continue;
        }
        let at = best.iter().position(|&(other, _)| d < other).unwrap_or(best.len());
        best.insert(at, (d, q));
        best.truncate(k);
    }
    best.into_iter().map(|(_, q)| q).collect()
}

/// The per-row targets of one pair of modalities: for position `k` of
/// `rows` (batch rows with both modalities), `(1 − α)` on itself and `α`
/// shared evenly by its neighbours among `rows`; all on itself when it has
/// none there. `neighbors` is indexed by batch row.
pub fn pair_targets<T: Real>(rows: &[usize], neighbors: &[Vec<usize>], batch: usize, alpha: T) -> Vec<Vec<(usize, T)>> {
    let mut at = vec![usize::MAX; batch];
    for (k, &r) in rows.iter().enumerate() {
        at[r] = k;
    }
    rows.iter()
        .enumerate()
        .map(|(k, &r)| {
            let found: Vec<usize> = neighbors[r].iter().map(|&q| at[q]).filter(|&p| p != usize::MAX).collect();
            if found.is_empty() {
                return vec![(k, T::one())];
            }
            let share = alpha / T::c(found.len() as f64);
            std::iter::once((k, T::one() - alpha)).chain(found.into_iter().map(|p| (p, share))).collect()
        })
        .collect()
}

/// Each row's pooled input `[B_m, d]` of a modality given as components
/// `x [N, d]` of batch rows `rows` with pooling `weights` (equal when
/// `None`): the rows that have it, and their (weighted) mean component.
/// One unweighted component per row (dense inputs) is borrowed as it is.
pub fn pooled_rows<'a, T: Real>(x: ArrayView2<'a, T>, rows: &'a [usize], weights: Option<&[T]>, batch: usize) -> RowInputs<'a, T> {
    if weights.is_none() && rows.windows(2).all(|w| w[0] < w[1]) {
        return RowInputs { rows: Cow::Borrowed(rows), x: CowArray::from(x) };
    }
    let mut sums = Array2::<T>::zeros((batch, x.ncols()));
    let mut total = vec![T::zero(); batch];
    for (i, (&r, comp)) in rows.iter().zip(x.axis_iter(Axis(0))).enumerate() {
        let w = weights.map_or(T::one(), |w| w[i]);
        sums.row_mut(r).scaled_add(w, &comp);
        total[r] += w;
    }
    let present: Vec<usize> = (0..batch).filter(|&r| total[r] > T::zero()).collect();
    let mut out = sums.select(Axis(0), &present);
    for (mut row, &r) in out.rows_mut().into_iter().zip(&present) {
        row.mapv_inplace(|v| v / total[r]);
    }
    // A row whose weighted sum left float32 while its mean would not (two
    // components of 3e38): its mean again, each weight divided by the total
    // first. Only such rows, so every other row keeps its bits (the sum then
    // the division, as before); else the mean was inf and the reconstruction
    // refusal reported a largest input of inf, which the user never gave.
    let at: Vec<usize> = {
        let mut at = vec![usize::MAX; batch];
        present.iter().enumerate().for_each(|(k, &r)| at[r] = k);
        at
    };
    let overflowed: Vec<usize> = (0..out.nrows()).filter(|&k| out.row(k).iter().any(|v| !v.is_finite())).collect();
    for &k in &overflowed {
        out.row_mut(k).fill(T::zero());
    }
    if !overflowed.is_empty() {
        for (i, (&r, comp)) in rows.iter().zip(x.axis_iter(Axis(0))).enumerate() {
            let k = at[r];
            if overflowed.binary_search(&k).is_ok() {
                let w = weights.map_or(T::one(), |w| w[i]) / total[r];
                out.row_mut(k).scaled_add(w, &comp);
            }
        }
    }
    RowInputs { rows: Cow::Owned(present), x: CowArray::from(out) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn a_row_whose_components_sum_past_float32_pools_to_their_mean() {
        // Row 0: two components of 3e38 (their sum is inf in f32, their mean is not); row 1: 1 and 3.
        let x = array![[3e38f32, 1.0], [3e38, 1.0], [1.0, 2.0], [3.0, 4.0]];
        let pooled = pooled_rows(x.view(), &[0, 0, 1, 1], Some(&[1.0, 1.0, 1.0, 1.0]), 2);
        assert_eq!(&*pooled.rows, &[0, 1]);
        assert_eq!(pooled.x.row(0).to_vec(), vec![3e38f32, 1.0]);
        assert_eq!(pooled.x.row(1).to_vec(), vec![2.0f32, 3.0]); // the sum, then the division, as before
    }

    #[test]
    fn modalities_weigh_the_same_whatever_their_columns() {
        // A has 4 columns, B one; row 3 has B only.
        let a = RowInputs { rows: vec![0, 1, 2].into(), x: array![[0.0f64, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]].into() };
        let b = RowInputs { rows: vec![0, 1, 2, 3].into(), x: array![[0.0f64], [0.0], [1.5], [1.2]].into() };
        let sides = || [RowInputs { rows: a.rows.clone(), x: a.x.clone() }, RowInputs { rows: b.rows.clone(), x: b.x.clone() }];
        // Columns: row 1 (4 + 0) / 5 = 0.8, row 2 (0 + 2.25) / 5 = 0.45, row 3 1.44 / 1.
        assert_eq!(input_neighbors(&sides(), 4, 3, InputDistance::Columns)[0], vec![2, 1, 3]);
        // Modalities: row 1 (4/4 + 0) / 2 = 0.5, row 2 (0 + 2.25/1) / 2 = 1.125, row 3 1.44 / 1.
        assert_eq!(input_neighbors(&sides(), 4, 3, InputDistance::Modalities)[0], vec![1, 2, 3]);
        assert_eq!(input_neighbors(&sides(), 4, 3, InputDistance::Modalities)[3], vec![2, 0, 1]); // B alone: 0.09, 1.44, 1.44
        assert_eq!(InputDistance::from_name("modalities").unwrap(), InputDistance::Modalities);
        assert!(InputDistance::from_name("rows").unwrap_err().to_string().contains("\"columns\" or \"modalities\""));
    }

    #[test]
    fn nearest_rows_by_mean_squared_difference_over_shared_modalities() {
        // Rows 0..4 on a line in modality A; row 3 lacks A, shares B with row 0 only.
        let a = RowInputs { rows: vec![0, 1, 2, 4].into(), x: array![[0.0f64, 0.0], [1.0, 0.0], [3.0, 0.0], [1.5, 0.0]].into() };
        let b = RowInputs { rows: vec![0, 3].into(), x: array![[0.0f64], [5.0]].into() };
        let got = input_neighbors(&[a, b], 5, 2, InputDistance::Columns);
        assert_eq!(got[0], vec![1, 4]); // row 3: (25 / 1) far away; row 1 (1/2) before row 4 (2.25/2)
        assert_eq!(got[1], vec![4, 0]);
        assert_eq!(got[3], vec![0]); // the only row it shares a modality with
        assert_eq!(got[2], vec![4, 1]);
    }

    #[test]
    fn huge_or_tiny_float32_inputs_find_the_same_neighbours() {
        // Squared in float32, 1e25 overflowed (NaN distances) and 1e-25
        // underflowed (zero distances): every row got rows 0 and 1, the lowest.
        for scale in [1.0f32, 1e25, 1e-25, 1e37, 1e-36] {
            let a = RowInputs { rows: vec![0, 1, 2, 4].into(), x: array![[0.0f32, 0.0], [1.0, 0.0], [3.0, 0.0], [1.25, 0.0]].mapv(|v| v * scale).into() };
            let b = RowInputs { rows: vec![0, 3].into(), x: array![[0.0f32], [5.0]].mapv(|v| v * scale).into() };
            let got = input_neighbors(&[a, b], 5, 2, InputDistance::Columns);
            assert_eq!(got, vec![vec![1, 4], vec![4, 0], vec![4, 1], vec![0], vec![1, 0]], "scale {scale}");
        }
    }

    #[test]
    fn modalities_of_far_apart_magnitudes_find_the_same_neighbours() {
        // A at 1e30 (rows 0..3), B at 1 (rows 2..5): one scale put B's squares
        // at 1e-60, zero in float32, and rows 4 and 5, sharing only B, got the
        // lowest rows as neighbours, ties.
        let make = |sa: f32, sb: f32| {
            let a = RowInputs { rows: vec![0, 1, 2, 3].into(), x: array![[0.0f32], [1.0], [3.0], [1.25]].mapv(|v| v * sa).into() };
            let b = RowInputs { rows: vec![2, 3, 4, 5].into(), x: array![[0.0f32], [4.0], [3.5], [0.5]].mapv(|v| v * sb).into() };
            input_neighbors(&[a, b], 6, 2, InputDistance::Modalities)
        };
        let plain = make(1.0, 1.0);
        assert_eq!(plain[4], vec![3, 5]);
        assert_eq!(plain[5], vec![2, 4]);
        for (sa, sb) in [(1e30f32, 1.0f32), (1.0, 1e-30), (1e30, 1e-30), (3e38, 1e-38)] {
            let got = make(sa, sb);
            assert_eq!(got[4], plain[4], "{sa} {sb}");
            assert_eq!(got[5], plain[5], "{sa} {sb}");
        }
    }

    #[test]
    fn rows_that_share_a_large_offset_find_the_neighbours_of_their_differences() {
        // A column of 1e5 (or a constant one of 1000) beside values near 1: in float32
        // ‖a‖² + ‖b‖² − 2a·b lost the differences to rounding, and rows got ties.
        let base = array![[0.0f32, 0.0], [1.0, 0.0], [3.0, 0.0], [1.25, 0.0], [0.0, 2.5]];
        let plain = input_neighbors(&[RowInputs { rows: vec![0, 1, 2, 3, 4].into(), x: base.clone().into() }], 5, 2, InputDistance::Columns);
        assert_eq!(plain, vec![vec![1, 3], vec![3, 0], vec![3, 1], vec![1, 0], vec![0, 1]]);
        for (offset, column) in [(1000.0f32, 2), (1e5, 0), (3e7, 1), (1e30, 2)] {
            let mut x = ndarray::Array2::<f32>::zeros((5, 3));
            x.slice_mut(ndarray::s![.., ..2]).assign(&base);
            x.column_mut(column).mapv_inplace(|v| v + offset);
            let got = input_neighbors(&[RowInputs { rows: vec![0, 1, 2, 3, 4].into(), x: x.into() }], 5, 2, InputDistance::Columns);
            assert_eq!(got, plain, "offset {offset} in column {column}");
        }
    }

    #[test]
    fn ties_go_to_the_lower_row_and_targets_sum_to_one() {
        let a = RowInputs { rows: vec![0, 1, 2].into(), x: array![[0.0f64], [1.0], [-1.0]].into() };
        let got = input_neighbors(&[a], 3, 1, InputDistance::Columns);
        assert_eq!(got, vec![vec![1], vec![0], vec![0]]);
        let t = pair_targets(&[0, 2], &got, 3, 0.25f64);
        assert_eq!(t, vec![vec![(0, 1.0)], vec![(1, 0.75), (0, 0.25)]]); // row 0's neighbour (1) is not in the pair
    }

    #[test]
    fn pooled_rows_average_components_with_their_weights() {
        let x = array![[1.0f64, 0.0], [3.0, 2.0], [5.0, 5.0]];
        let p = pooled_rows(x.view(), &[0, 0, 2], Some(&[1.0, 3.0, 2.0]), 3);
        assert_eq!(&*p.rows, &[0, 2]);
        assert_eq!(p.x, array![[2.5, 1.5], [5.0, 5.0]]);
        let dense = pooled_rows(x.view(), &[0, 1, 2], None, 3);
        assert!(matches!(dense.rows, Cow::Borrowed(_)) && dense.x.is_view() && dense.x == x, "dense rows are borrowed");
    }
}
