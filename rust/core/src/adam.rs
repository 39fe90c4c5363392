//! Adam over the flat parameter buffer: one vectorised loop for the whole
//! model, state held per scalar.
//!
//! With `g` the gradient (after optional global-norm clipping), step `t`
//! (1-based), learning rate `lr` and decoupled weight decay `λ` (AdamW):
//!
//! ```text
//! m ← β1 m + (1 − β1) g            v ← β2 v + (1 − β2) g²
//! p ← p (1 − lr λ)
//! p ← p − (lr / (1 − β1ᵗ)) · m / (√v / √(1 − β2ᵗ) + ε)
//! ```
//!
//! the formula and order of PyTorch's `AdamW` (its `Adam` when `λ = 0`).
//! Clipping: when `‖g‖₂ > c`, `g ← g · c / (‖g‖₂ + 1e-6)` (PyTorch's
//! `clip_grad_norm_`). The state (`m`, `v`, `t`) can be read and restored,
//! so a resumed run continues bit for bit.

use crate::error::{Error, Result};
use crate::real::Real;

/// β1, β2, ε of the GRAPHEME protocol.
pub const BETA1: f64 = 0.9;
pub const BETA2: f64 = 0.999;
pub const EPSILON: f64 = 1e-8;

/// Hyper-parameters of one update.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamSettings {
    pub learning_rate: f64,
    /// Decoupled weight decay `λ` (0 = plain Adam).
    pub weight_decay: f64,
    /// Global-norm clipping threshold `c` (`None` = no clipping).
    pub clip_norm: Option<f64>,
}

/// Adam's state: first and second moments per scalar and the step count.
#[derive(Debug, Clone, PartialEq)]
pub struct Adam<T> {
    pub m: Vec<T>,
    pub v: Vec<T>,
    pub step: u64,
}

/// What one update did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepReport {
    /// `‖g‖₂` before clipping.
    pub grad_norm: f64,
    /// Whether the gradient was scaled down.
    pub clipped: bool,
}

impl<T: Real> Adam<T> {
    /// Zero moments for `len` scalars, step 0.
    pub fn new(len: usize) -> Self {
        Adam {
            m: vec![T::zero(); len],
            v: vec![T::zero(); len],
            step: 0,
        }
    }

    /// Back to the initial state.
    pub fn reset(&mut self) {
        self.m.fill(T::zero());
        self.v.fill(T::zero());
        self.step = 0;
    }

    /// Replaces the state after checking its length and values.
    pub fn set_state(&mut self, m: Vec<T>, v: Vec<T>, step: u64) -> Result<()> {
        let n = self.m.len();
        for (name, x) in [("m", &m), ("v", &v)] {
            if x.len() != n {
                return Err(Error::shape(format!("optimizer state {name}"), format!("({n},)"), format!("({},)", x.len())));
            }
            if let Some(i) = x.iter().position(|v| !v.is_finite()) {
                return Err(Error::non_finite(format!("optimizer state {name}"), format!("flat index {i}")));
            }
        }
        if let Some(i) = v.iter().position(|x| *x < T::zero()) {
            return Err(Error::invalid("optimizer state v", format!("flat index {i} is negative; second moments are >= 0")));
        }
        if step == 0 && (m.iter().chain(&v).any(|x| *x != T::zero())) {
            return Err(Error::invalid("optimizer state step", "is 0 but the moments are not all zero"));
        }
        self.m = m;
        self.v = v;
        self.step = step;
        Ok(())
    }

    /// One update of `params` from `grads` (same layout). A non-finite
    /// gradient is an error and changes nothing.
    pub fn update(&mut self, params: &mut [T], grads: &[T], settings: &AdamSettings) -> Result<StepReport> {
        debug_assert_eq!(params.len(), grads.len());
        debug_assert_eq!(params.len(), self.m.len());
        let grad_norm = global_norm(grads);
        if !grad_norm.is_finite() {
            let i = grads.iter().position(|g| !g.is_finite()).unwrap_or(0);
            return Err(Error::non_finite("gradients", format!("flat index {i}")));
        }
        let clip = match settings.clip_norm {
            Some(c) if grad_norm > c => Some(T::c(c / (grad_norm + 1e-6))),
            _ => None,
        };
        self.step += 1;
        let t = self.step as f64;
        let lr = settings.learning_rate;
        let bias1 = 1.0 - BETA1.powf(t);
        let bias2_sqrt = (1.0 - BETA2.powf(t)).sqrt();
        let step_size = T::c(lr / bias1);
        let (b1, b2, eps) = (T::c(BETA1), T::c(BETA2), T::c(EPSILON));
        let (one_b1, one_b2) = (T::c(1.0 - BETA1), T::c(1.0 - BETA2));
        let bias2_sqrt = T::c(bias2_sqrt);
        let decay = T::c(1.0 - lr * settings.weight_decay);
        let decays = settings.weight_decay != 0.0;
        let scale = clip.unwrap_or(T::one());
        let clips = clip.is_some();
        // One branch-free pass per setting (vectorised by the compiler).
        let n = params.len();
        let (p, m, v, g) = (&mut params[..n], &mut self.m[..n], &mut self.v[..n], &grads[..n]);
        for i in 0..n {
            let gi = if clips { g[i] * scale } else { g[i] };
            m[i] = b1 * m[i] + one_b1 * gi;
            v[i] = b2 * v[i] + one_b2 * gi * gi;
            let pi = if decays { p[i] * decay } else { p[i] };
            p[i] = pi - step_size * m[i] / (v[i].sqrt() / bias2_sqrt + eps);
        }
        Ok(StepReport {
            grad_norm,
            clipped: clip.is_some(),
        })
    }
}

/// `‖g‖₂` accumulated in f64, in 8 interleaved partial sums (vectorisable;
/// the order is fixed, so the value is too).
pub fn global_norm<T: Real>(grads: &[T]) -> f64 {
    let mut acc = [0.0f64; 8];
    let chunks = grads.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for l in 0..8 {
            let x = c[l].to_f64().unwrap_or(f64::NAN);
            acc[l] += x * x;
        }
    }
    for (l, g) in tail.iter().enumerate() {
        let x = g.to_f64().unwrap_or(f64::NAN);
        acc[l] += x * x;
    }
    (((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(lr: f64) -> AdamSettings {
        AdamSettings {
            learning_rate: lr,
            weight_decay: 0.0,
            clip_norm: None,
        }
    }

    #[test]
    fn two_steps_by_hand() {
        let mut adam = Adam::<f64>::new(2);
        let mut p = vec![1.0, -2.0];
        adam.update(&mut p, &[0.5, -0.1], &settings(0.1)).unwrap();
        // t=1: m = 0.1 g, v = 0.001 g²; m̂ = g, v̂ = g² → step = lr·sign(g) (up to ε).
        let expect0 = 1.0 - 0.1 * 0.5 / (0.5 + 1e-8);
        let expect1 = -2.0 + 0.1 * 0.1 / (0.1 + 1e-8);
        assert!((p[0] - expect0).abs() < 1e-15 && (p[1] - expect1).abs() < 1e-15, "{p:?}");
        adam.update(&mut p, &[0.2, 0.3], &settings(0.1)).unwrap();
        // t=2, first scalar: m = 0.9·0.05 + 0.1·0.2 = 0.065, v = 0.999·0.00025 + 0.001·0.04 = 0.00028975.
        let (m, v) = (0.065f64, 0.00028975f64);
        let expect = expect0 - (0.1 / (1.0 - 0.81)) * m / (v.sqrt() / (1.0 - 0.998001f64).sqrt() + 1e-8);
        assert!((p[0] - expect).abs() < 1e-14, "{} vs {}", p[0], expect);
        assert_eq!(adam.step, 2);
        assert!((adam.m[0] - m).abs() < 1e-15 && (adam.v[0] - v).abs() < 1e-15);
    }

    #[test]
    fn weight_decay_is_decoupled_and_clipping_bounds_the_norm() {
        let mut adam = Adam::<f64>::new(1);
        let mut p = vec![2.0];
        let s = AdamSettings {
            learning_rate: 0.1,
            weight_decay: 0.5,
            clip_norm: None,
        };
        adam.update(&mut p, &[0.0], &s).unwrap();
        // Zero gradient: only the decay acts, p·(1 − lr·λ).
        assert!((p[0] - 2.0 * 0.95).abs() < 1e-15);

        let mut adam = Adam::<f64>::new(2);
        let mut p = vec![0.0, 0.0];
        let s = AdamSettings {
            learning_rate: 0.1,
            weight_decay: 0.0,
            clip_norm: Some(1.0),
        };
        let report = adam.update(&mut p, &[3.0, 4.0], &s).unwrap();
        assert_eq!(report.grad_norm, 5.0);
        assert!(report.clipped);
        // The moments saw the clipped gradient g·1/(5+1e-6).
        assert!((adam.m[0] - 0.1 * 3.0 / (5.0 + 1e-6)).abs() < 1e-15);
    }

    #[test]
    fn state_round_trip_and_validation() {
        let mut a = Adam::<f32>::new(3);
        let mut p = vec![0.1f32, 0.2, 0.3];
        a.update(&mut p, &[1.0, -1.0, 0.5], &settings(0.01)).unwrap();
        let mut b = Adam::<f32>::new(3);
        b.set_state(a.m.clone(), a.v.clone(), a.step).unwrap();
        let mut q = p.clone();
        a.update(&mut p, &[0.3, 0.3, 0.3], &settings(0.01)).unwrap();
        b.update(&mut q, &[0.3, 0.3, 0.3], &settings(0.01)).unwrap();
        assert!(b.update(&mut q, &[f32::NAN, 0.0, 0.0], &settings(0.01)).is_err());
        assert_eq!(b.step, 2, "a failed update changes nothing");
        assert_eq!(p, q);
        assert!(b.set_state(vec![0.0; 2], vec![0.0; 3], 1).is_err());
        assert!(b.set_state(vec![0.0; 3], vec![-1.0, 0.0, 0.0], 1).is_err());
        assert!(b.set_state(vec![f32::NAN, 0.0, 0.0], vec![0.0; 3], 1).is_err());
        assert!(b.set_state(vec![1.0, 0.0, 0.0], vec![0.0; 3], 0).is_err());
    }
}
