//! Element-wise and row-wise operations shared by the components.

use crate::real::Real;
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2, Axis};

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

/// `x · wᵀ + b` for `x [N, in]`, `w [out, in]`, `b [out]` → `[N, out]`.
pub fn linear<T: Real>(x: ArrayView2<T>, w: ArrayView2<T>, b: Option<ArrayView1<T>>) -> Array2<T> {
    let mut y = x.dot(&w.t());
    if let Some(b) = b {
        y += &b;
    }
    y
}

/// LeakyReLU applied in place.
pub fn leaky_relu_inplace<T: Real>(mut a: ArrayViewMut2<T>) {
    a.mapv_inplace(leaky_relu);
}

/// Divides every row by `max(||row||, eps)`; returns the row norms (before
/// the floor), which the backward pass needs.
pub fn l2_normalize_rows<T: Real>(mut a: ArrayViewMut2<T>) -> Array1<T> {
    let eps = T::c(NORM_EPS);
    let mut norms = Array1::zeros(a.nrows());
    for (mut row, norm) in a.axis_iter_mut(Axis(0)).zip(norms.iter_mut()) {
        *norm = row.iter().map(|v| *v * *v).sum::<T>().sqrt();
        let denom = norm.max(eps);
        row.mapv_inplace(|v| v / denom);
    }
    norms
}

/// Softmax over the entries where `present` is true; the others get 0.
/// With nothing present every weight is 0 (never NaN).
pub fn masked_softmax_inplace<T: Real>(mut scores: ArrayViewMut1<T>, present: ArrayView1<bool>) {
    let max = scores
        .iter()
        .zip(present.iter())
        .filter(|(_, &p)| p)
        .map(|(s, _)| *s)
        .fold(T::neg_infinity(), T::max);
    if max == T::neg_infinity() {
        scores.fill(T::zero());
        return;
    }
    let mut total = T::zero();
    for (s, &p) in scores.iter_mut().zip(present.iter()) {
        *s = if p { (*s - max).exp() } else { T::zero() };
        total += *s;
    }
    scores.mapv_inplace(|s| s / total);
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

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
        let b = array![0.0, 1.0, -1.0];
        assert_eq!(linear(x.view(), w.view(), Some(b.view())), array![[1.0, -0.5, 7.0]]);
    }
}
