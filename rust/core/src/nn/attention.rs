//! Multi-head attention over the modality embeddings of each event.
//!
//! `Q = Wq q`, `K_m = Wk e_m`, `V_m = Wv e_m`; head `h` uses columns
//! `h·d .. (h+1)·d` (`d = E / heads`): `score_{h,m} = Q_h · K_{m,h} / sqrt(d)`,
//! softmax over present modalities only, `ctx_h = Σ_m a_{h,m} V_{m,h}`,
//! `attend = Wo · concat_h ctx_h`. The reported weight of a modality is the
//! mean of its weight over heads. With one head this is exactly the original.

use super::ops::{linear_backward, masked_softmax_backward, masked_softmax_inplace};
use crate::modality::NUM_MODALITIES;
use crate::params::{Init, ParamId, ParamLayout, Params, ParamsMut};
use crate::real::Real;
use ndarray::{s, Array1, Array2, Array3, ArrayView2, ArrayView3, Axis};

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

/// The activations the attention backward needs.
#[derive(Debug, Clone)]
pub struct AttentionTape<T> {
    /// Projections `Q [B, E]`, `K [B·M, E]`, `V [B·M, E]`.
    pub q: Array2<T>,
    pub k: Array2<T>,
    pub v: Array2<T>,
    /// Softmax weights `[B, heads, M]`.
    pub head_weights: Array3<T>,
    /// `concat_h ctx_h`, `[B, E]`.
    pub context: Array2<T>,
    /// `Wo · context`, `[B, E]`.
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

    fn scale<T: Real>(&self) -> T {
        T::one() / T::c(self.head_dim() as f64).sqrt()
    }

    /// `query [B, E]`, `emb [B, M, E]`, `mask [B, M]`.
    pub fn forward<T: Real>(
        &self,
        params: Params<T>,
        query: ArrayView2<T>,
        emb: ArrayView3<T>,
        mask: ArrayView2<bool>,
    ) -> AttentionOutput<T> {
        let tape = self.forward_train(params, query, emb, mask);
        let weights = tape.head_weights.sum_axis(Axis(1)) / T::c(self.num_heads as f64);
        AttentionOutput {
            head_weights: tape.head_weights,
            weights,
            attended: tape.attended,
        }
    }

    /// The forward pass keeping its activations for [`Self::backward`]
    /// (the same work as the forward: nothing is recomputed or copied).
    pub fn forward_train<T: Real>(
        &self,
        params: Params<T>,
        query: ArrayView2<T>,
        emb: ArrayView3<T>,
        mask: ArrayView2<bool>,
    ) -> AttentionTape<T> {
        let (batch, e, heads, d) = (query.nrows(), self.embed_dim, self.num_heads, self.head_dim());
        let flat = emb.to_shape((batch * NUM_MODALITIES, e)).expect("[B, M, E] is reshapeable");
        let q = query.dot(&params.matrix(self.q).t()); // [B, E]
        let k = flat.dot(&params.matrix(self.k).t()); // [B·M, E]
        let v = flat.dot(&params.matrix(self.v).t());
        let scale = self.scale::<T>();

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
        let attended = context.dot(&params.matrix(self.o).t());
        AttentionTape {
            q,
            k,
            v,
            head_weights,
            context,
            attended,
        }
    }

    /// Accumulates the gradients of `Wq, Wk, Wv, Wo` from `d_attended [B, E]`;
    /// returns the gradients on `query [B, E]` and on `emb [B, M, E]` (zero
    /// for absent modalities and for rows with none present).
    pub fn backward<T: Real>(
        &self,
        params: Params<T>,
        query: ArrayView2<T>,
        emb: ArrayView3<T>,
        tape: &AttentionTape<T>,
        d_attended: ArrayView2<T>,
        grads: &mut ParamsMut<T>,
    ) -> (Array2<T>, Array3<T>) {
        let (batch, e, heads, d) = (query.nrows(), self.embed_dim, self.num_heads, self.head_dim());
        let scale = self.scale::<T>();
        linear_backward(tape.context.view(), d_attended, grads.matrix(self.o), None);
        let d_context = d_attended.dot(&params.matrix(self.o)); // [B, E]

        let mut dq = Array2::zeros((batch, e));
        let mut dk = Array2::zeros((batch * NUM_MODALITIES, e));
        let mut dv = Array2::zeros((batch * NUM_MODALITIES, e));
        let mut da = Array1::zeros(NUM_MODALITIES);
        for b in 0..batch {
            let rows = b * NUM_MODALITIES..(b + 1) * NUM_MODALITIES;
            for h in 0..heads {
                let cols = h * d..(h + 1) * d;
                let a = tape.head_weights.slice(s![b, h, ..]);
                if a.iter().all(|&w| w == T::zero()) {
                    continue; // nothing present: the output did not depend on anything
                }
                let dctx = d_context.slice(s![b, cols.clone()]);
                let values = tape.v.slice(s![rows.clone(), cols.clone()]);
                let mut dvals = dv.slice_mut(s![rows.clone(), cols.clone()]);
                for m in 0..NUM_MODALITIES {
                    da[m] = dctx.dot(&values.row(m));
                    dvals.row_mut(m).scaled_add(a[m], &dctx);
                }
                let ds = masked_softmax_backward(a, da.view()) * scale;
                let keys = tape.k.slice(s![rows.clone(), cols.clone()]);
                let qh = tape.q.slice(s![b, cols.clone()]);
                let mut dqh = dq.slice_mut(s![b, cols.clone()]);
                let mut dkeys = dk.slice_mut(s![rows.clone(), cols.clone()]);
                for m in 0..NUM_MODALITIES {
                    if ds[m] != T::zero() {
                        dqh.scaled_add(ds[m], &keys.row(m));
                        dkeys.row_mut(m).scaled_add(ds[m], &qh);
                    }
                }
            }
        }
        let flat = emb.to_shape((batch * NUM_MODALITIES, e)).expect("[B, M, E] is reshapeable");
        linear_backward(query, dq.view(), grads.matrix(self.q), None);
        linear_backward(flat.view(), dk.view(), grads.matrix(self.k), None);
        linear_backward(flat.view(), dv.view(), grads.matrix(self.v), None);
        let d_query = dq.dot(&params.matrix(self.q));
        let d_flat = dk.dot(&params.matrix(self.k)) + dv.dot(&params.matrix(self.v));
        let d_emb = d_flat.into_shape_with_order((batch, NUM_MODALITIES, e)).expect("B·M·E values");
        (d_query, d_emb)
    }
}
