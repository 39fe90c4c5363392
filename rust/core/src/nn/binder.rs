//! Cross-modal binder: `strength(a, b) = sigmoid(w · [a; b] + c)`.

use super::ops::sigmoid;
use crate::modality::NUM_MODALITIES;
use crate::params::{Init, ParamId, ParamLayout, Params};
use crate::real::Real;
use ndarray::{s, Array1, Array3, ArrayView2, ArrayView3, Axis};

/// `binder.weight [1, 2E]`, `binder.bias [1]`.
#[derive(Debug, Clone)]
pub struct CrossModalBinder {
    pub embed_dim: usize,
    pub weight: ParamId,
    pub bias: ParamId,
}

impl CrossModalBinder {
    pub fn register(layout: &mut ParamLayout, embed_dim: usize) -> Self {
        CrossModalBinder {
            embed_dim,
            weight: layout.add("binder.weight", &[1, 2 * embed_dim], Init::xavier(2 * embed_dim, 1)),
            bias: layout.add("binder.bias", &[1], Init::Zeros),
        }
    }

    /// Strength of each row pair: `a [B, E]`, `b [B, E]` → `[B]` in [0, 1].
    pub fn forward<T: Real>(&self, params: Params<T>, a: ArrayView2<T>, b: ArrayView2<T>) -> Array1<T> {
        let (wa, wb, c) = self.split(params);
        let logits = a.dot(&wa) + b.dot(&wb) + c;
        logits.mapv(sigmoid)
    }

    /// `S[b, i, j] = strength(e_i, e_j)` for every pair of modalities present
    /// in row `b`; 0 where either is absent. `emb [B, M, E]`, `mask [B, M]`.
    pub fn pair_strengths<T: Real>(&self, params: Params<T>, emb: ArrayView3<T>, mask: ArrayView2<bool>) -> Array3<T> {
        let (wa, wb, c) = self.split(params);
        // The binder is additive: precompute each side's contribution once.
        let batch = emb.len_of(Axis(0));
        let flat = emb.to_shape((batch * NUM_MODALITIES, self.embed_dim)).expect("[B, M, E] is reshapeable");
        let left = flat.dot(&wa).into_shape_with_order((batch, NUM_MODALITIES)).expect("B·M values"); // [B, M]
        let right = flat.dot(&wb).into_shape_with_order((batch, NUM_MODALITIES)).expect("B·M values");
        let mut out = Array3::zeros((batch, NUM_MODALITIES, NUM_MODALITIES));
        for r in 0..batch {
            for i in 0..NUM_MODALITIES {
                for j in 0..NUM_MODALITIES {
                    if mask[[r, i]] && mask[[r, j]] {
                        out[[r, i, j]] = sigmoid(left[[r, i]] + right[[r, j]] + c);
                    }
                }
            }
        }
        out
    }

    fn split<'a, T: Real>(&self, params: Params<'a, T>) -> (ndarray::ArrayView1<'a, T>, ndarray::ArrayView1<'a, T>, T) {
        let w = params.matrix(self.weight);
        let e = self.embed_dim;
        let row = w.index_axis_move(Axis(0), 0);
        (row.slice_move(s![..e]), row.slice_move(s![e..]), params.vector(self.bias)[0])
    }
}
