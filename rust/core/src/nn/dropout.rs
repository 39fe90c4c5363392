//! Inverted dropout for the encoders, in training only: each entry is kept
//! with probability `1 − p` and scaled by `1 / (1 − p)` (so inference,
//! which never drops, needs no rescaling), or zeroed.
//!
//! The masks come from a ChaCha8 stream fixed by `(seed, counter,
//! modality)` — the model's seed and its counter of gradient computations,
//! as for the objectives' draws (`objectives::objective_rng`), on streams of
//! their own — so training stays deterministic and a resumed run draws the
//! same masks. Within a modality's stream the masks are drawn in order: the
//! input's first, then each hidden layer's, row by row.

use crate::modality::Modality;
use crate::real::Real;
use ndarray::{Array2, ArrayViewMut2, Zip};
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

/// The dropout probabilities of the encoders (0 = none).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct DropoutRates {
    /// On each encoder's input (after standardisation).
    pub input: f64,
    /// On the output of each hidden layer of an encoder.
    pub hidden: f64,
}

impl DropoutRates {
    pub fn is_active(&self) -> bool {
        self.input > 0.0 || self.hidden > 0.0
    }
}

/// The stream of modality `modality`'s dropout masks at gradient
/// computation `counter` of a model seeded with `seed`.
pub fn dropout_rng(seed: u64, counter: u64, modality: Modality) -> ChaCha8Rng {
    // Keys 64.. stay clear of the objectives' (1..=NUM_OBJECTIVES).
    let key = seed.wrapping_add(0x9E37_79B9_7F4A_7C15u64.wrapping_mul(64 + modality.index() as u64));
    let mut rng = ChaCha8Rng::seed_from_u64(key);
    rng.set_stream(counter);
    rng
}

/// Drops entries of `x` in place with probability `p` (`0 < p < 1`),
/// scaling the kept ones by `1 / (1 − p)`; returns the multipliers (`0` or
/// `1 / (1 − p)`, same shape), which are the backward's: `dx = dy ⊙ mask`.
pub fn apply<T: Real>(mut x: ArrayViewMut2<T>, p: f64, rng: &mut impl Rng) -> Array2<T> {
    // Kept when a uniform 32-bit draw is at least p·2³².
    let threshold = (p * 4_294_967_296.0).round().min(u32::MAX as f64) as u32;
    let scale = T::c(1.0 / (1.0 - p));
    let mask = Array2::from_shape_simple_fn(x.dim(), || if rng.next_u32() >= threshold { scale } else { T::zero() });
    Zip::from(&mut x).and(&mask).for_each(|v, &m| *v *= m);
    mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_about_p_and_keeps_the_expectation() {
        let mut x = Array2::<f64>::ones((200, 100));
        let mut rng = dropout_rng(0, 3, Modality::Visual);
        let mask = apply(x.view_mut(), 0.3, &mut rng);
        let dropped = x.iter().filter(|&&v| v == 0.0).count() as f64 / 20_000.0;
        assert!((dropped - 0.3).abs() < 0.02, "{dropped}");
        assert!(x.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.7).abs() < 1e-12));
        assert_eq!(x, mask, "the input was ones");
        assert!((x.mean().unwrap() - 1.0).abs() < 0.03);
    }

    #[test]
    fn streams_are_fixed_by_seed_counter_and_modality() {
        let draw = |seed, counter, m| {
            let mut x = Array2::<f32>::ones((4, 8));
            apply(x.view_mut(), 0.5, &mut dropout_rng(seed, counter, m))
        };
        assert_eq!(draw(1, 2, Modality::Visual), draw(1, 2, Modality::Visual));
        assert_ne!(draw(1, 2, Modality::Visual), draw(1, 3, Modality::Visual));
        assert_ne!(draw(1, 2, Modality::Visual), draw(1, 2, Modality::Auditory));
        assert_ne!(draw(1, 2, Modality::Visual), draw(2, 2, Modality::Visual));
    }
}
