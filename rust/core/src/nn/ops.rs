//! Element-wise and row-wise operations shared by the components.

use crate::kernels::{self, Epilogue};
use crate::real::Real;
use ndarray::{Array1, ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2, Axis, Zip};

/// Negative slope of LeakyReLU everywhere in the model (GRAPHEME protocol).
pub const LEAKY_ALPHA: f64 = 0.01;
/// Floor of the norm in `l2norm(v) = v / max(||v||, eps)`.
pub const NORM_EPS: f64 = 1e-8;

#[inline]
pub fn leaky_relu<T: Real>(x: T) -> T {
    if x > T::zero() {
        x
    } else {
        x * T::c(LEAKY_ALPHA)
    }
}

/// Numerically stable logistic function.
#[inline]
pub fn sigmoid<T: Real>(x: T) -> T {
    if x >= T::zero() {
        T::one() / (T::one() + (-x).exp())
    } else {
        let e = x.exp();
        e / (T::one() + e)
    }
}

/// `out = x · wt + b` (then LeakyReLU when `leaky`) for `x [N, in]`, the
/// transposed weight `wt [in, out]` (row-major: the fast path) and `b [out]`.
pub fn linear_t<T: Real>(x: ArrayView2<T>, wt: ArrayView2<T>, b: Option<&[T]>, leaky: bool, out: ArrayViewMut2<T>) {
    let epi = match b {
        Some(b) => Epilogue::bias(b, leaky),
        None => Epilogue { leaky, ..Epilogue::store() },
    };
    kernels::gemm(x, wt, out, epi);
}

/// Divides every row by `max(||row||, eps)`; returns the row norms (before
/// the floor), which the backward pass needs.
pub fn l2_normalize_rows<T: Real>(a: ArrayViewMut2<T>) -> Array1<T> {
    let mut norms = Array1::zeros(a.nrows());
    kernels::l2_normalize_rows_into(a, norms.view_mut(), T::c(NORM_EPS));
    norms
}

/// Softmax over the entries where `present` is true; the others get 0.
/// With nothing present every weight is 0; a NaN score of a present entry
/// (an overflow upstream) makes every weight NaN, so it cannot pass for a
/// row with nothing present.
pub fn masked_softmax_inplace<T: Real>(mut scores: ArrayViewMut1<T>, present: ArrayView1<bool>) {
    if !present.iter().any(|&p| p) {
        scores.fill(T::zero());
        return;
    }
    let max = scores
        .iter()
        .zip(present.iter())
        .filter(|(_, &p)| p)
        .map(|(s, _)| *s)
        .fold(T::neg_infinity(), |m, s| if m.is_nan() || s.is_nan() { T::nan() } else { m.max(s) });
    // Infinite scores (an overflow upstream) have no softmax: NaN.
    let max = if max.is_finite() { max } else { T::nan() };
    let mut total = T::zero();
    for (s, &p) in scores.iter_mut().zip(present.iter()) {
        *s = if p { (*s - max).exp() } else { T::zero() };
        total += *s;
    }
    scores.mapv_inplace(|s| s / total);
}

// ---------------------------------------------------------------- backward
//
// Each backward takes the gradient of the loss with respect to the forward's
// output (`dy`) and returns (or writes) the gradient with respect to its
// input; parameter gradients are *accumulated* (`+=`) into their buffers.

/// Backward of [`linear_t`] for its parameters: `dW += dyᵀ x`, `db += Σ_rows dy`.
/// (The input's gradient, when needed, is `dy W`.)
/// Both are sums over the batch, taken in fixed row blocks (see
/// [`kernels::gemm_reduce_rows`]).
pub fn linear_backward<T: Real>(x: ArrayView2<T>, dy: ArrayView2<T>, dw: ArrayViewMut2<T>, db: Option<ArrayViewMut1<T>>) {
    kernels::gemm_reduce_rows(dy, x, dw);
    if let Some(db) = db {
        kernels::column_sums(dy, db);
    }
}

/// Backward of LeakyReLU, in place on `dy`, from the activation's *output*
/// `y`: LeakyReLU keeps the sign, so `y > 0` exactly where its input was.
/// Scaling `y` by a positive factor (as L2 normalisation does) keeps this true.
pub fn leaky_relu_backward_inplace<T: Real>(y: ArrayView2<T>, mut dy: ArrayViewMut2<T>) {
    let alpha = T::c(LEAKY_ALPHA);
    if let (Some(ys), Some(ds)) = (y.as_slice(), dy.as_slice_mut()) {
        // Branch-free (a select per value), so it vectorises.
        for (d, &y) in ds.iter_mut().zip(ys) {
            *d = if y > T::zero() { *d } else { *d * alpha };
        }
        return;
    }
    Zip::from(&mut dy).and(&y).for_each(|d, &y| {
        if y <= T::zero() {
            *d *= alpha;
        }
    });
}

/// Backward of [`l2_normalize_rows`], in place on `dy`, from the normalised
/// rows `y` and the norms it returned: with `n = ||v||`,
/// `dv = (dy - y (y·dy)) / n` when `n > eps`, and `dv = dy / eps` on the floor
/// (there `y = v / eps` is linear in `v`).
pub fn l2_normalize_backward_inplace<T: Real>(y: ArrayView2<T>, norms: ArrayView1<T>, mut dy: ArrayViewMut2<T>) {
    let eps = T::c(NORM_EPS);
    for ((mut d, y), &n) in dy.axis_iter_mut(Axis(0)).zip(y.axis_iter(Axis(0))).zip(norms.iter()) {
        if n > eps {
            let proj = match (y.as_slice(), d.as_slice()) {
                (Some(ys), Some(ds)) => kernels::dot(ys, ds),
                _ => y.dot(&d),
            };
            Zip::from(&mut d).and(&y).for_each(|d, &y| *d = (*d - y * proj) / n);
        } else {
            d.mapv_inplace(|d| d / eps);
        }
    }
}

/// Backward of [`masked_softmax_inplace`] for one row: `a` the weights it
/// produced, `da` the gradient on them; writes the gradient on the scores,
/// `ds_m = a_m (da_m - Σ_k a_k da_k)`, into `ds` (0 for absent entries and
/// for rows with nothing present, whose weights are all 0).
#[inline]
pub fn masked_softmax_backward<T: Real>(a: &[T], da: &[T], ds: &mut [T]) {
    let mean: T = a.iter().zip(da).map(|(&w, &g)| w * g).sum();
    for ((d, &w), &g) in ds.iter_mut().zip(a).zip(da) {
        *d = w * (g - mean);
    }
}

/// Cosine similarity of each row pair with both norms floored at `eps`;
/// returns `(cos [N], ||p|| [N], ||t|| [N])`.
pub fn cosine_rows<T: Real>(p: ArrayView2<T>, t: ArrayView2<T>) -> (Array1<T>, Array1<T>, Array1<T>) {
    let eps = T::c(NORM_EPS);
    let np: Array1<T> = p.rows().into_iter().map(|r| r.dot(&r).sqrt()).collect();
    let nt: Array1<T> = t.rows().into_iter().map(|r| r.dot(&r).sqrt()).collect();
    let cos = Zip::from(p.rows())
        .and(t.rows())
        .and(&np)
        .and(&nt)
        .map_collect(|p, t, &a, &b| p.dot(&t) / (a.max(eps) * b.max(eps)));
    (cos, np, nt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{array, Array2};

    #[test]
    fn leaky_and_sigmoid() {
        assert_eq!(leaky_relu(2.0f64), 2.0);
        assert_eq!(leaky_relu(-2.0f64), -0.02);
        assert!((sigmoid(0.0f64) - 0.5).abs() < 1e-15);
        assert!(sigmoid(-1000.0f64) >= 0.0 && sigmoid(1000.0f64) <= 1.0);
        assert!((sigmoid(-3.0f64) + sigmoid(3.0) - 1.0).abs() < 1e-15);
    }

    #[test]
    fn l2_normalisation_and_zero_rows() {
        let mut a = array![[3.0f64, 4.0], [0.0, 0.0]];
        let norms = l2_normalize_rows(a.view_mut());
        assert_eq!(norms.to_vec(), vec![5.0, 0.0]);
        assert_eq!(a, array![[0.6, 0.8], [0.0, 0.0]]);
    }

    #[test]
    fn masked_softmax() {
        let mut s = array![1.0f64, 2.0, 3.0];
        masked_softmax_inplace(s.view_mut(), array![true, false, true].view());
        let e = 1.0f64.exp() + 3.0f64.exp();
        assert!((s[0] - 1.0f64.exp() / e).abs() < 1e-15);
        assert_eq!(s[1], 0.0);
        assert!((s.sum() - 1.0).abs() < 1e-15);
        let mut none = array![1.0f64, 2.0];
        masked_softmax_inplace(none.view_mut(), array![false, false].view());
        assert_eq!(none.to_vec(), vec![0.0, 0.0]);
    }

    #[test]
    fn linear_matches_hand_computation() {
        let x = array![[1.0f64, 2.0]];
        let w = array![[1.0, 0.0], [0.5, -1.0], [2.0, 3.0]];
        let b = [0.0, 1.0, -1.0];
        let mut y = Array2::zeros((1, 3));
        linear_t(x.view(), w.t().as_standard_layout().view(), Some(&b), false, y.view_mut());
        assert_eq!(y, array![[1.0, -0.5, 7.0]]);
    }
}
