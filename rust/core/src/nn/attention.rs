//! Multi-head attention over the modality embeddings of each event.
//!
//! `Q = Wq q`, `K_m = Wk e_m`, `V_m = Wv e_m`; head `h` uses columns
//! `h·d .. (h+1)·d` (`d = E / heads`): `score_{h,m} = Q_h · K_{m,h} / sqrt(d)`,
//! softmax over present modalities only, `ctx_h = Σ_m a_{h,m} V_{m,h}`,
//! `attend = Wo · concat_h ctx_h`. The reported weight of a modality is the
//! mean of its weight over heads. With one head this is exactly the original.

use super::ops::{linear_backward, masked_softmax_backward, masked_softmax_inplace};
use crate::kernels::{self, Epilogue};
use crate::modality::NUM_MODALITIES;
use crate::params::{Init, ParamId, ParamLayout, Params, ParamsMut};
use crate::real::Real;
use ndarray::{Array2, Array3, ArrayView2, ArrayView3, Axis};

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
        let q = project(query, params.matrix_t(self.q).view());
        let k = project(flat.view(), params.matrix_t(self.k).view());
        let v = project(flat.view(), params.matrix_t(self.v).view());
        let scale = self.scale::<T>();

        let mut head_weights = Array3::zeros((batch, heads, NUM_MODALITIES));
        let mut context = Array2::zeros((batch, e));
        let (qs, ks, vs) = (slice(&q), slice(&k), slice(&v));
        let weights = head_weights.as_slice_mut().expect("fresh array");
        let ctx = context.as_slice_mut().expect("fresh array");
        for b in 0..batch {
            let present = mask.row(b);
            for h in 0..heads {
                let qh = &qs[b * e + h * d..b * e + (h + 1) * d];
                let w = &mut weights[(b * heads + h) * NUM_MODALITIES..(b * heads + h + 1) * NUM_MODALITIES];
                for (m, wm) in w.iter_mut().enumerate() {
                    let key = &ks[(b * NUM_MODALITIES + m) * e + h * d..][..d];
                    *wm = kernels::dot(qh, key) * scale;
                }
                masked_softmax_inplace(ndarray::ArrayViewMut1::from(&mut *w), present);
                let out = &mut ctx[b * e + h * d..b * e + (h + 1) * d];
                for (m, &a) in w.iter().enumerate() {
                    if a != T::zero() {
                        let value = &vs[(b * NUM_MODALITIES + m) * e + h * d..][..d];
                        for (o, &x) in out.iter_mut().zip(value) {
                            *o += a * x;
                        }
                    }
                }
            }
        }
        let attended = project(context.view(), params.matrix_t(self.o).view());
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
        let mut d_context = Array2::zeros((batch, e));
        kernels::gemm(d_attended, params.matrix(self.o), d_context.view_mut(), Epilogue::store());

        let mut dq = Array2::zeros((batch, e));
        let mut dk = Array2::zeros((batch * NUM_MODALITIES, e));
        let mut dv = Array2::zeros((batch * NUM_MODALITIES, e));
        let (qs, ks, vs, dcs) = (slice(&tape.q), slice(&tape.k), slice(&tape.v), slice(&d_context));
        let all_weights = slice(&tape.head_weights);
        let (dqs, dks, dvs) = (slice_mut(&mut dq), slice_mut(&mut dk), slice_mut(&mut dv));
        let mut da = [T::zero(); NUM_MODALITIES];
        let mut ds = [T::zero(); NUM_MODALITIES];
        for b in 0..batch {
            for h in 0..heads {
                let a = &all_weights[(b * heads + h) * NUM_MODALITIES..(b * heads + h + 1) * NUM_MODALITIES];
                if a.iter().all(|&w| w == T::zero()) {
                    continue; // nothing present: the output did not depend on anything
                }
                let cols = h * d..(h + 1) * d;
                let dctx = &dcs[b * e..(b + 1) * e][cols.clone()];
                for m in 0..NUM_MODALITIES {
                    let row = (b * NUM_MODALITIES + m) * e;
                    da[m] = kernels::dot(dctx, &vs[row..row + e][cols.clone()]);
                    for (o, &x) in dvs[row..row + e][cols.clone()].iter_mut().zip(dctx) {
                        *o += a[m] * x;
                    }
                }
                // ds = a (da − a·da) · scale (0 for absent modalities, whose a is 0).
                masked_softmax_backward(a, &da, &mut ds);
                for d in &mut ds {
                    *d *= scale;
                }
                let qh = &qs[b * e..(b + 1) * e][cols.clone()];
                for (m, &dsm) in ds.iter().enumerate() {
                    if dsm == T::zero() {
                        continue;
                    }
                    let row = (b * NUM_MODALITIES + m) * e;
                    for (o, &x) in dqs[b * e..(b + 1) * e][cols.clone()].iter_mut().zip(&ks[row..row + e][cols.clone()]) {
                        *o += dsm * x;
                    }
                    for (o, &x) in dks[row..row + e][cols.clone()].iter_mut().zip(qh) {
                        *o += dsm * x;
                    }
                }
            }
        }
        let flat = emb.to_shape((batch * NUM_MODALITIES, e)).expect("[B, M, E] is reshapeable");
        linear_backward(query, dq.view(), grads.matrix(self.q), None);
        linear_backward(flat.view(), dk.view(), grads.matrix(self.k), None);
        linear_backward(flat.view(), dv.view(), grads.matrix(self.v), None);
        let mut d_query = Array2::zeros((batch, e));
        kernels::gemm(dq.view(), params.matrix(self.q), d_query.view_mut(), Epilogue::store());
        let mut d_flat = Array2::zeros((batch * NUM_MODALITIES, e));
        kernels::gemm(dk.view(), params.matrix(self.k), d_flat.view_mut(), Epilogue::store());
        kernels::gemm(dv.view(), params.matrix(self.v), d_flat.view_mut(), Epilogue::add());
        let d_emb = d_flat.into_shape_with_order((batch, NUM_MODALITIES, e)).expect("B·M·E values");
        (d_query, d_emb)
    }
}

/// `x · wt` into a fresh array (`wt` the transposed weight `[in, out]`).
fn project<T: Real>(x: ArrayView2<T>, wt: ArrayView2<T>) -> Array2<T> {
    let mut out = Array2::zeros((x.nrows(), wt.ncols()));
    kernels::gemm(x, wt, out.view_mut(), Epilogue::store());
    out
}

fn slice<T, D: ndarray::Dimension>(a: &ndarray::Array<T, D>) -> &[T] {
    a.as_slice().expect("standard layout")
}

fn slice_mut<T, D: ndarray::Dimension>(a: &mut ndarray::Array<T, D>) -> &mut [T] {
    a.as_slice_mut().expect("standard layout")
}
