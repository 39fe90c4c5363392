//! A learned temperature for a contrastive objective (optional,
//! `config.learnable_temperature`): `<objective>.log_temperature [1]`,
//! `θ = log τ`, initialised at `log config.temperature` and trained by Adam
//! with the rest. As in CLIP, `τ` is kept in `[0.01, 1]` (logit scales 1 to
//! 100): the stored `θ` is clamped after every update, and the forward
//! reads `τ = exp(clamp(θ))`, so a value set by hand outside the range acts
//! as its bound and gets no gradient (as `torch.clamp`'s backward).
//!
//! Gradient: the logits `S = A Bᵀ / τ` give `∂L/∂θ = −Σ (∂L/∂S) ⊙ S =
//! −⟨A, ∂L/∂A⟩` (Frobenius), which the objectives take from the gradient
//! on their embeddings at no extra cost.

use crate::params::{Init, ParamId, ParamLayout, Params, ParamsMut};
use crate::real::Real;

/// The smallest and largest temperature a learned one may take.
pub const MIN_TEMPERATURE: f64 = 0.01;
pub const MAX_TEMPERATURE: f64 = 1.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LearnedTemperature {
    pub log_temperature: ParamId,
}

impl LearnedTemperature {
    /// Registers `<objective>.log_temperature`, initialised at `log initial`.
    pub fn register(layout: &mut ParamLayout, objective: &str, initial: f64) -> Self {
        let id = layout.add(format!("{objective}.log_temperature"), &[1], Init::Constant(initial.ln()));
        LearnedTemperature { log_temperature: id }
    }

    fn bounds<T: Real>() -> (T, T) {
        (T::c(MIN_TEMPERATURE.ln()), T::c(MAX_TEMPERATURE.ln()))
    }

    /// `τ = exp(clamp(θ))`, and whether `θ` is within the bounds (where the
    /// gradient flows).
    pub fn value<T: Real>(&self, params: Params<T>) -> (T, bool) {
        let theta = params.slice(self.log_temperature)[0];
        let (lo, hi) = Self::bounds::<T>();
        (theta.max(lo).min(hi).exp(), lo <= theta && theta <= hi)
    }

    /// Adds `g` to `∂L/∂θ`.
    pub fn accumulate<T: Real>(&self, grads: &mut ParamsMut<T>, g: T) {
        grads.vector(self.log_temperature)[0] += g;
    }

    /// Clamps the stored `θ` into the bounds (after an update).
    pub fn clamp_stored<T: Real>(&self, layout: &ParamLayout, params: &mut [T]) {
        let (lo, hi) = Self::bounds::<T>();
        let i = layout.spec(self.log_temperature).offset;
        params[i] = params[i].max(lo).min(hi);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_at_the_configured_value_and_clamps() {
        let mut layout = ParamLayout::new();
        let t = LearnedTemperature::register(&mut layout, "contrastive", 0.07);
        let mut data: Vec<f64> = layout.initialize(0);
        let (tau, inside) = t.value(layout.view(&data));
        assert!((tau - 0.07).abs() < 1e-15 && inside);
        data[0] = -10.0;
        let (tau, inside) = t.value(layout.view(&data));
        assert!((tau - 0.01).abs() < 1e-15 && !inside);
        t.clamp_stored(&layout, &mut data);
        assert!((data[0] - 0.01f64.ln()).abs() < 1e-15);
        assert!(t.value(layout.view(&data)).1, "the bound itself passes the gradient");
        data[0] = 3.0;
        assert_eq!(t.value(layout.view(&data)).0, 1.0);
    }
}
