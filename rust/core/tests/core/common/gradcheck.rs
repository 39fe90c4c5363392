//! Finite-difference helpers shared by the gradient checks
//! (`gradients.rs`, `gradient_combinations.rs`); see `gradients.rs` for why
//! this step and tolerance.

use ndarray::Array2;

/// Step of the five-point stencil.
pub const H: f64 = 1e-6;
/// Per-tensor relative error `‖g_analytic − g_numeric‖ / max(‖·‖, ‖·‖)`.
pub const TOL: f64 = 1e-5;

/// A deterministic stream of numbers in (-1, 1) (no test dependency).
pub struct Lcg(pub u64);
impl Lcg {
    pub fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    }
    pub fn array2(&mut self, rows: usize, cols: usize) -> Array2<f64> {
        Array2::from_shape_simple_fn((rows, cols), || self.next())
    }
}

/// Numeric gradient of `loss` at `params`, entry by entry: the five-point
/// central stencil `(−f(x+2h) + 8f(x+h) − 8f(x−h) + f(x−2h)) / 12h`, whose
/// truncation error is O(h⁴) (the fused output's normalisation is strongly
/// curved at initialisation, where its pre-norm length is small).
pub fn numeric_gradient(params: &mut [f64], mut loss: impl FnMut(&[f64]) -> f64) -> Vec<f64> {
    (0..params.len())
        .map(|i| {
            let orig = params[i];
            let mut at = |k: f64| {
                params[i] = orig + k * H;
                loss(params)
            };
            let (p2, p1, m1, m2) = (at(2.0), at(1.0), at(-1.0), at(-2.0));
            params[i] = orig;
            (8.0 * (p1 - m1) - (p2 - m2)) / (12.0 * H)
        })
        .collect()
}

pub fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

pub fn rel_error(a: &[f64], n: &[f64]) -> f64 {
    let diff: Vec<f64> = a.iter().zip(n).map(|(a, n)| a - n).collect();
    let scale = norm(a).max(norm(n));
    if scale == 0.0 {
        0.0
    } else {
        norm(&diff) / scale
    }
}
