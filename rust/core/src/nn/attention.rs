//! Multi-head attention over the modality embeddings of each event.
//!
//! `Q = Wq q`, `K_m = Wk e_m`, `V_m = Wv e_m`; head `h` uses columns
//! `h·d .. (h+1)·d` (`d = E / heads`): `score_{h,m} = Q_h · K_{m,h} / sqrt(d)`,
//! softmax over present modalities only, `ctx_h = Σ_m a_{h,m} V_{m,h}`,
//! `attend = Wo · concat_h ctx_h`. The reported weight of a modality is the
//! mean of its weight over heads. With one head this is exactly the original.

use super::ops::masked_softmax_inplace;
use crate::modality::NUM_MODALITIES;
use crate::params::{Init, ParamId, ParamLayout, Params};
use crate::real::Real;
use ndarray::{s, Array2, Array3, ArrayView2, ArrayView3, Axis};

/// `attention.{q,k,v,o}.weight`, each `[E, E]`, no biases.
#[derive(Debug, Clone)]
pub struct ModalityAttention {
    pub embed_dim: usize,
    pub num_heads: usize,
    pub q: ParamId,
    pub k: ParamId,
    pub v: ParamId,
    pub o: ParamId,
}

/// Result of one attention pass over a batch.
#[derive(Debug, Clone)]
pub struct AttentionOutput<T> {
    /// Per-head weights `[B, heads, M]`; each head sums to 1 over present modalities.
    pub head_weights: Array3<T>,
    /// Mean over heads, `[B, M]`.
    pub weights: Array2<T>,
    /// `[B, E]`.
    pub attended: Array2<T>,
}

impl ModalityAttention {
    pub fn register(layout: &mut ParamLayout, embed_dim: usize, num_heads: usize) -> Self {
        let mut add = |n: &str| {
            layout.add(format!("attention.{n}.weight"), &[embed_dim, embed_dim], Init::xavier(embed_dim, embed_dim))
        };
        ModalityAttention {
            embed_dim,
            num_heads,
            q: add("q"),
            k: add("k"),
            v: add("v"),
            o: add("o"),
        }
    }

    pub fn head_dim(&self) -> usize {
        self.embed_dim / self.num_heads
    }

    /// `query [B, E]`, `emb [B, M, E]`, `mask [B, M]`.
    pub fn forward<T: Real>(
        &self,
        params: Params<T>,
        query: ArrayView2<T>,
        emb: ArrayView3<T>,
        mask: ArrayView2<bool>,
    ) -> AttentionOutput<T> {
        let (batch, e, heads, d) = (query.nrows(), self.embed_dim, self.num_heads, self.head_dim());
        let flat = emb.to_shape((batch * NUM_MODALITIES, e)).expect("[B, M, E] is reshapeable");
        let q = query.dot(&params.matrix(self.q).t()); // [B, E]
        let k = flat.dot(&params.matrix(self.k).t()); // [B·M, E]
        let v = flat.dot(&params.matrix(self.v).t());
        let scale = T::one() / T::c(d as f64).sqrt();

        let mut head_weights = Array3::zeros((batch, heads, NUM_MODALITIES));
        let mut context = Array2::zeros((batch, e));
        for b in 0..batch {
            let present = mask.row(b);
            let keys = k.slice(s![b * NUM_MODALITIES..(b + 1) * NUM_MODALITIES, ..]);
            let values = v.slice(s![b * NUM_MODALITIES..(b + 1) * NUM_MODALITIES, ..]);
            for h in 0..heads {
                let qh = q.slice(s![b, h * d..(h + 1) * d]);
                let mut scores = head_weights.slice_mut(s![b, h, ..]);
                for m in 0..NUM_MODALITIES {
                    scores[m] = qh.dot(&keys.slice(s![m, h * d..(h + 1) * d])) * scale;
                }
                masked_softmax_inplace(scores.view_mut(), present);
                let mut ctx = context.slice_mut(s![b, h * d..(h + 1) * d]);
                for m in 0..NUM_MODALITIES {
                    let a = scores[m];
                    if a != T::zero() {
                        ctx.scaled_add(a, &values.slice(s![m, h * d..(h + 1) * d]));
                    }
                }
            }
        }
        let weights = head_weights.sum_axis(Axis(1)) / T::c(heads as f64);
        let attended = context.dot(&params.matrix(self.o).t());
        AttentionOutput {
            head_weights,
            weights,
            attended,
        }
    }
}
