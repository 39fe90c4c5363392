//! Cross-modal binder: how strongly two modality embeddings belong together.
//!
//! Two kinds (chosen by `Config::binder`):
//! - `additive` (the original): `strength(a, b) = sigmoid(w · [a; b] + c)`,
//!   `binder.weight [1, 2E]`. Additive in `a` and `b`: for a fixed `a` it
//!   ranks every `b` the same way, so it cannot learn *which* pairs belong.
//! - `bilinear`: `strength(a, b) = sigmoid(aᵀ W b + c)`, `binder.weight
//!   [E, E]`; `W = λI` already scores cosine similarity, so it can learn that
//!   matching embeddings belong together.
//!
//! Both have `binder.bias [1]`. Forward and backward side by side.

use super::ops::sigmoid;
use crate::kernels::{self, Epilogue};
use crate::error::{expected_names, Error, Result};
use crate::modality::NUM_MODALITIES;
use crate::params::{Init, ParamId, ParamLayout, Params, ParamsMut};
use crate::real::Real;
use ndarray::{s, Array1, Array2, Array3, ArrayView1, ArrayView2, ArrayView3, Axis, Zip};

/// Which binder formula a model uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BinderKind {
    /// `sigmoid(w · [a; b] + c)` — the original.
    #[default]
    Additive,
    /// `sigmoid(aᵀ W b + c)`.
    Bilinear,
}

impl BinderKind {
    pub const ALL: [BinderKind; 2] = [BinderKind::Additive, BinderKind::Bilinear];

    pub fn name(self) -> &'static str {
        match self {
            BinderKind::Additive => "additive",
            BinderKind::Bilinear => "bilinear",
        }
    }

    pub fn from_name(name: &str) -> Result<Self> {
        Self::ALL.iter().copied().find(|k| k.name() == name).ok_or_else(|| {
            Error::invalid(
                "binder_kind",
                format!("unknown binder kind {name:?}; expected {}", expected_names(Self::ALL.map(Self::name))),
            )
        })
    }
}

/// What every binder logit needs from one embedding (see
/// [`CrossModalBinder::factors`]).
#[derive(Debug, Clone)]
pub enum BinderFactors<T> {
    /// `w_a · x` and `w_b · x` per row.
    Additive { left: Vec<T>, right: Vec<T> },
    /// `x W` per row, `[N, E]`.
    Bilinear { xw: Array2<T> },
}

/// The strength of a binder logit: its sigmoid, or NaN when the logit is not
/// finite, which the model's callers refuse as an overflow. With finite
/// parameters and inputs, an infinite logit means that some partial sum
/// overflowed float32, and which infinity it became is not the sign of the
/// true logit (an additive logit of about +1e38 came out -inf), so the
/// sigmoid's 0 or 1 of it was a strength picked by the overflow, answered
/// without a word where the bilinear binder's NaN was refused.
#[inline]
fn strength<T: Real>(logit: T) -> T {
    if logit.is_finite() {
        sigmoid(logit)
    } else {
        T::nan()
    }
}

/// `binder.weight` (`[1, 2E]` additive, `[E, E]` bilinear), `binder.bias [1]`.
#[derive(Debug, Clone)]
pub struct CrossModalBinder {
    pub embed_dim: usize,
    pub kind: BinderKind,
    pub weight: ParamId,
    pub bias: ParamId,
}

impl CrossModalBinder {
    pub fn register(layout: &mut ParamLayout, embed_dim: usize, kind: BinderKind) -> Self {
        let e = embed_dim;
        let weight = match kind {
            BinderKind::Additive => layout.add("binder.weight", &[1, 2 * e], Init::xavier(2 * e, 1)),
            BinderKind::Bilinear => layout.add("binder.weight", &[e, e], Init::xavier(e, e)),
        };
        CrossModalBinder {
            embed_dim,
            kind,
            weight,
            bias: layout.add("binder.bias", &[1], Init::Zeros),
        }
    }

    /// Logit of each row pair: `a [N, E]`, `b [N, E]` → `[N]`.
    pub fn logits<T: Real>(&self, params: Params<T>, a: ArrayView2<T>, b: ArrayView2<T>) -> Array1<T> {
        let c = params.vector(self.bias)[0];
        match self.kind {
            BinderKind::Additive => {
                let (wa, wb) = self.additive_halves(params);
                a.dot(&wa) + b.dot(&wb) + c
            }
            BinderKind::Bilinear => {
                let aw = a.dot(&params.matrix(self.weight));
                Zip::from(aw.rows()).and(b.rows()).map_collect(|x, y| x.dot(&y) + c)
            }
        }
    }

    /// Strength of each row pair: `a [N, E]`, `b [N, E]` → `[N]` in [0, 1]
    /// (NaN where the logit overflowed: see [`strength`]).
    pub fn forward<T: Real>(&self, params: Params<T>, a: ArrayView2<T>, b: ArrayView2<T>) -> Array1<T> {
        self.logits(params, a, b).mapv(strength)
    }

    /// Backward of [`Self::logits`]: accumulates `dW`, `dc` from `d_logits
    /// [N]`; returns the gradients on `a` and `b`.
    pub fn backward<T: Real>(
        &self,
        params: Params<T>,
        a: ArrayView2<T>,
        b: ArrayView2<T>,
        d_logits: ArrayView1<T>,
        grads: &mut ParamsMut<T>,
    ) -> (Array2<T>, Array2<T>) {
        let e = self.embed_dim;
        let dz = d_logits.insert_axis(Axis(1)); // [N, 1]
        let (mut dw, mut dc) = grads.weight_and_bias(self.weight, self.bias);
        dc[0] += d_logits.sum();
        match self.kind {
            BinderKind::Additive => {
                // w · [a; b]: d wa = Σ dz a, d wb = Σ dz b.
                let mut row = dw.row_mut(0);
                row.slice_mut(s![..e]).scaled_add(T::one(), &a.t().dot(&d_logits));
                row.slice_mut(s![e..]).scaled_add(T::one(), &b.t().dot(&d_logits));
                let (wa, wb) = self.additive_halves(params);
                let n = d_logits.len();
                let da = Array2::from_shape_fn((n, e), |(r, k)| d_logits[r] * wa[k]);
                let db = Array2::from_shape_fn((n, e), |(r, k)| d_logits[r] * wb[k]);
                (da, db)
            }
            BinderKind::Bilinear => {
                // z = aᵀ W b: dW = Σ dz a bᵀ, da = dz W b, db = dz Wᵀ a.
                let w = params.matrix(self.weight);
                let dzb = &b * &dz; // [N, E]
                ndarray::linalg::general_mat_mul(T::one(), &a.t(), &dzb, T::one(), &mut dw);
                let da = dzb.dot(&w.t());
                let db = a.dot(&w) * dz;
                (da, db)
            }
        }
    }

    /// `S[b, i, j] = strength(e_i, e_j)` for every pair of modalities present
    /// in row `b`; 0 where either is absent. `emb [B, M, E]`, `mask [B, M]`.
    pub fn pair_strengths<T: Real>(&self, params: Params<T>, emb: ArrayView3<T>, mask: ArrayView2<bool>) -> Array3<T> {
        let batch = emb.len_of(Axis(0));
        let flat = emb.to_shape((batch * NUM_MODALITIES, self.embed_dim)).expect("[B, M, E] is reshapeable");
        let c = params.vector(self.bias)[0];
        // One product per embedding, computed once, however many pairs it is in.
        let factors = self.factors(params, flat.view());
        let mut out = Array3::zeros((batch, NUM_MODALITIES, NUM_MODALITIES));
        for r in 0..batch {
            for i in (0..NUM_MODALITIES).filter(|&i| mask[[r, i]]) {
                for j in (0..NUM_MODALITIES).filter(|&j| mask[[r, j]]) {
                    let logit = self.pair_logit(&factors, flat.view(), r * NUM_MODALITIES + i, r * NUM_MODALITIES + j, c);
                    out[[r, i, j]] = strength(logit);
                }
            }
        }
        out
    }

    /// What every logit needs from each row of `x [N, E]`, computed once per
    /// row however many pairs the row takes part in.
    pub fn factors<T: Real>(&self, params: Params<T>, x: ArrayView2<T>) -> BinderFactors<T> {
        match self.kind {
            BinderKind::Additive => {
                let (wa, wb) = self.additive_halves(params);
                let per_row = |w: ndarray::ArrayView1<T>| -> Vec<T> {
                    match w.as_slice() {
                        Some(w) => x.rows().into_iter().map(|r| r.as_slice().map_or_else(|| r.dot(&ndarray::ArrayView1::from(w)), |r| kernels::dot(r, w))).collect(),
                        None => x.dot(&w).to_vec(),
                    }
                };
                BinderFactors::Additive { left: per_row(wa), right: per_row(wb) }
            }
            BinderKind::Bilinear => {
                let mut xw = Array2::zeros(x.dim());
                kernels::gemm(x, params.matrix(self.weight), xw.view_mut(), Epilogue::store());
                BinderFactors::Bilinear { xw }
            }
        }
    }

    /// Logit of the pair of rows `(a, b)` of `x`, from its [`Self::factors`];
    /// `bias` is `binder.bias`.
    #[inline]
    pub fn pair_logit<T: Real>(&self, factors: &BinderFactors<T>, x: ArrayView2<T>, a: usize, b: usize, bias: T) -> T {
        match factors {
            BinderFactors::Additive { left, right } => left[a] + right[b] + bias,
            BinderFactors::Bilinear { xw } => match (xw.row(a).to_slice(), x.row(b).to_slice()) {
                (Some(p), Some(q)) => kernels::dot(p, q) + bias,
                _ => xw.row(a).dot(&x.row(b)) + bias,
            },
        }
    }

    /// Backward of [`Self::pair_logit`] over many pairs of rows of `x`:
    /// `pairs[k] = (a, b)` with gradient `d_logits[k]`. Accumulates `dW`,
    /// `dc`; returns the gradient on `x [N, E]`. Each row's share is summed
    /// first (additive: `Σ dz` per row; bilinear: `Σ dz · x_b` per row), so
    /// the cost is one pass over the pairs plus products of `[N, E]`.
    pub fn pairs_backward<T: Real>(
        &self,
        params: Params<T>,
        x: ArrayView2<T>,
        factors: &BinderFactors<T>,
        pairs: &[(usize, usize)],
        d_logits: &[T],
        grads: &mut ParamsMut<T>,
    ) -> Array2<T> {
        let (rows, e) = x.dim();
        let (mut dw, mut dc) = grads.weight_and_bias(self.weight, self.bias);
        dc[0] += d_logits.iter().copied().sum::<T>();
        match factors {
            BinderFactors::Additive { .. } => {
                // z = w_a · a + w_b · b + c: per row, the summed dz as `a` and as `b`.
                let mut d_left = Array1::zeros(rows);
                let mut d_right = Array1::zeros(rows);
                for (&(a, b), &dz) in pairs.iter().zip(d_logits) {
                    d_left[a] += dz;
                    d_right[b] += dz;
                }
                // dw_a = Σ_r d_left[r] x_r (and likewise dw_b): one pass over x.
                let (mut ga, mut gb) = (Array1::<T>::zeros(e), Array1::<T>::zeros(e));
                for ((r, &l), &rr) in x.rows().into_iter().zip(&d_left).zip(&d_right) {
                    ga.scaled_add(l, &r);
                    gb.scaled_add(rr, &r);
                }
                let mut row = dw.row_mut(0);
                row.slice_mut(s![..e]).scaled_add(T::one(), &ga);
                row.slice_mut(s![e..]).scaled_add(T::one(), &gb);
                let (wa, wb) = self.additive_halves(params);
                Array2::from_shape_fn((rows, e), |(r, k)| d_left[r] * wa[k] + d_right[r] * wb[k])
            }
            BinderFactors::Bilinear { xw } => {
                // z = aᵀ W b: u_a = Σ dz b (so da = W u_a, dW = Σ a u_aᵀ) and db = Σ dz (aᵀ W).
                let mut u = Array2::zeros((rows, e));
                let mut dx = Array2::zeros((rows, e));
                for (&(a, b), &dz) in pairs.iter().zip(d_logits) {
                    u.row_mut(a).scaled_add(dz, &x.row(b));
                    dx.row_mut(b).scaled_add(dz, &xw.row(a));
                }
                kernels::gemm_reduce_rows(x, u.view(), dw.view_mut());
                kernels::gemm(u.view(), params.matrix_t(self.weight).view(), dx.view_mut(), Epilogue::add());
                dx
            }
        }
    }

    /// The additive binder's `w` split into the halves applied to `a` and `b`.
    fn additive_halves<'a, T: Real>(&self, params: Params<'a, T>) -> (ArrayView1<'a, T>, ArrayView1<'a, T>) {
        let e = self.embed_dim;
        let row = params.matrix(self.weight).index_axis_move(Axis(0), 0);
        (row.slice_move(s![..e]), row.slice_move(s![e..]))
    }
}
