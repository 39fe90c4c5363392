//! Fusion network: three LeakyReLU layers over the concatenated modality
//! embeddings (`[M·E] → E → H → E`), then L2 normalisation. Forward and
//! backward side by side.

use super::ops::{l2_normalize_backward_inplace, l2_normalize_rows, leaky_relu_backward_inplace, leaky_relu_inplace, linear, linear_backward};
use crate::modality::NUM_MODALITIES;
use crate::params::{Init, ParamId, ParamLayout, Params, ParamsMut};
use crate::real::Real;
use ndarray::{Array1, Array2, ArrayView2};

/// `fusion.{0,1,2}.{weight,bias}`.
#[derive(Debug, Clone)]
pub struct FusionNetwork {
    /// `(weight, bias)` of each layer, input side first.
    pub layers: [(ParamId, ParamId); 3],
}

/// The activations the fusion backward needs.
#[derive(Debug, Clone)]
pub struct FusionTape<T> {
    /// The input `x [B, M·E]`.
    pub input: Array2<T>,
    /// Outputs of the first two layers, `h1 [B, E]`, `h2 [B, H]`.
    pub hidden: [Array2<T>; 2],
    /// Unit-norm output `[B, E]`.
    pub out: Array2<T>,
    /// Norms of the third layer's output before normalisation, `[B]`.
    pub norms: Array1<T>,
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

    fn layer<T: Real>(&self, params: Params<T>, i: usize, x: ArrayView2<T>) -> Array2<T> {
        let (w, b) = self.layers[i];
        let mut h = linear(x, params.matrix(w), Some(params.vector(b)));
        leaky_relu_inplace(h.view_mut());
        h
    }

    /// `x [B, M·E]` (absent modalities zero-filled) → unit-norm `[B, E]`.
    pub fn forward<T: Real>(&self, params: Params<T>, x: ArrayView2<T>) -> Array2<T> {
        let h1 = self.layer(params, 0, x);
        let h2 = self.layer(params, 1, h1.view());
        let mut out = self.layer(params, 2, h2.view());
        l2_normalize_rows(out.view_mut());
        out
    }

    /// The forward pass keeping its activations for [`Self::backward`].
    pub fn forward_train<T: Real>(&self, params: Params<T>, x: Array2<T>) -> FusionTape<T> {
        let h1 = self.layer(params, 0, x.view());
        let h2 = self.layer(params, 1, h1.view());
        let mut out = self.layer(params, 2, h2.view());
        let norms = l2_normalize_rows(out.view_mut());
        FusionTape {
            input: x,
            hidden: [h1, h2],
            out,
            norms,
        }
    }

    /// Accumulates the gradients of all six tensors from `d_out [B, E]`;
    /// returns the gradient on the input `[B, M·E]` when `want_dx`.
    pub fn backward<T: Real>(
        &self,
        params: Params<T>,
        tape: &FusionTape<T>,
        mut d_out: Array2<T>,
        grads: &mut ParamsMut<T>,
        want_dx: bool,
    ) -> Option<Array2<T>> {
        l2_normalize_backward_inplace(tape.out.view(), tape.norms.view(), d_out.view_mut());
        // `d` is the gradient on a layer's output; walk the layers backwards.
        let mut d = d_out;
        let activations = [&tape.hidden[0], &tape.hidden[1], &tape.out];
        for i in (0..3).rev() {
            leaky_relu_backward_inplace(activations[i].view(), d.view_mut());
            let input = if i == 0 { tape.input.view() } else { tape.hidden[i - 1].view() };
            let (w, b) = self.layers[i];
            let (dw, db) = grads.weight_and_bias(w, b);
            linear_backward(input, d.view(), dw, Some(db));
            if i == 0 && !want_dx {
                return None;
            }
            d = d.dot(&params.matrix(w));
        }
        Some(d)
    }
}
