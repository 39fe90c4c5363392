//! Fusion network: three LeakyReLU layers over the concatenated modality
//! embeddings (`[M·E] → E → H → E`), then L2 normalisation.

use super::ops::{l2_normalize_rows, leaky_relu_inplace, linear};
use crate::modality::NUM_MODALITIES;
use crate::params::{Init, ParamId, ParamLayout, Params};
use crate::real::Real;
use ndarray::{Array2, ArrayView2};

/// `fusion.{0,1,2}.{weight,bias}`.
#[derive(Debug, Clone)]
pub struct FusionNetwork {
    /// `(weight, bias)` of each layer, input side first.
    pub layers: [(ParamId, ParamId); 3],
}

impl FusionNetwork {
    pub fn register(layout: &mut ParamLayout, embed_dim: usize, hidden_dim: usize) -> Self {
        let dims = [
            (NUM_MODALITIES * embed_dim, embed_dim),
            (embed_dim, hidden_dim),
            (hidden_dim, embed_dim),
        ];
        let layers = std::array::from_fn(|i| {
            let (fan_in, fan_out) = dims[i];
            (
                layout.add(format!("fusion.{i}.weight"), &[fan_out, fan_in], Init::xavier(fan_in, fan_out)),
                layout.add(format!("fusion.{i}.bias"), &[fan_out], Init::Zeros),
            )
        });
        FusionNetwork { layers }
    }

    /// `x [B, M·E]` (absent modalities zero-filled) → unit-norm `[B, E]`.
    pub fn forward<T: Real>(&self, params: Params<T>, x: ArrayView2<T>) -> Array2<T> {
        let mut h = x.to_owned();
        for &(w, b) in &self.layers {
            h = linear(h.view(), params.matrix(w), Some(params.vector(b)));
            leaky_relu_inplace(h.view_mut());
        }
        l2_normalize_rows(h.view_mut());
        h
    }
}
