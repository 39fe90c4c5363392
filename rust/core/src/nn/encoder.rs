//! Per-modality encoder: `l2norm(leaky(W_m x + b_m))`, and the confidence-
//! weighted pooling of several components of one modality in one event.
//! Forward and backward side by side.

use super::ops::{l2_normalize_backward_inplace, l2_normalize_rows, leaky_relu, leaky_relu_backward_inplace, linear_backward, linear_t, NORM_EPS};
use crate::kernels;
use crate::modality::Modality;
use crate::params::{Init, ParamId, ParamLayout, Params, ParamsMut};
use crate::real::Real;
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2};

/// The encoder of one modality: `W [E, d]`, `b [E]`.
#[derive(Debug, Clone)]
pub struct ModalityEncoder {
    pub modality: Modality,
    pub input_dim: usize,
    pub weight: ParamId,
    pub bias: ParamId,
}

/// What the encoder's backward needs: the output rows and their norms
/// before normalisation (the LeakyReLU's output has the sign of `out`).
#[derive(Debug, Clone)]
pub struct EncoderTape<T> {
    /// Unit-norm embeddings `[N, E]`.
    pub out: Array2<T>,
    /// `||leaky(W x + b)||` of each row, `[N]`.
    pub norms: Array1<T>,
}

impl ModalityEncoder {
    /// Registers `encoder.<modality>.weight` and `.bias`.
    pub fn register(layout: &mut ParamLayout, modality: Modality, input_dim: usize, embed_dim: usize) -> Self {
        let prefix = format!("encoder.{}", modality.name());
        ModalityEncoder {
            modality,
            input_dim,
            weight: layout.add(
                format!("{prefix}.weight"),
                &[embed_dim, input_dim],
                Init::xavier(input_dim, embed_dim),
            ),
            bias: layout.add(format!("{prefix}.bias"), &[embed_dim], Init::Zeros),
        }
    }

    /// `x [N, d]` → unit-norm embeddings `[N, E]`.
    pub fn forward<T: Real>(&self, params: Params<T>, x: ArrayView2<T>) -> Array2<T> {
        self.forward_train(params, x).out
    }

    /// The forward pass keeping what the backward needs (no extra work: the
    /// norms are computed by the normalisation anyway).
    pub fn forward_train<T: Real>(&self, params: Params<T>, x: ArrayView2<T>) -> EncoderTape<T> {
        let mut out = Array2::zeros((x.nrows(), params.vector(self.bias).len()));
        linear_t(x, params.matrix_t(self.weight).view(), Some(params.slice(self.bias)), true, out.view_mut());
        let norms = l2_normalize_rows(out.view_mut());
        EncoderTape { out, norms }
    }

    /// The forward pass written into `out [N, E]` (any row stride, e.g. one
    /// modality's slots of `[B, M, E]`), the pre-normalisation norms into
    /// `norms [N]`; on the calling thread.
    pub fn forward_into<T: Real>(&self, params: Params<T>, x: ArrayView2<T>, mut out: ArrayViewMut2<T>, norms: ArrayViewMut1<T>) {
        let epi = kernels::Epilogue::bias(params.slice(self.bias), true);
        kernels::gemm_serial(x, params.matrix_t(self.weight).view(), out.view_mut(), epi, None);
        kernels::l2_normalize_rows_into(out, norms, T::c(NORM_EPS));
    }

    /// One row's embedding computed so that finite inputs cannot overflow:
    /// `l2norm(leaky(W x + b)) = l2norm(leaky(W (x/a) + b/a))` for any `a > 0`
    /// (LeakyReLU and the normalisation are positively homogeneous), with
    /// `a` the row's largest magnitude. For rows whose products overflow
    /// float32; false (and `out` unspecified) when the row is not finite.
    pub fn forward_row_scaled<T: Real>(&self, params: Params<T>, x: ArrayView1<T>, mut out: ArrayViewMut1<T>) -> bool {
        let a = x.iter().fold(T::zero(), |a, v| a.max(v.abs()));
        if !(a.is_finite() && a > T::zero() && x.iter().all(|v| v.is_finite())) {
            return false;
        }
        let xs = x.mapv(|v| v / a);
        let (w, b) = (params.matrix(self.weight), params.vector(self.bias));
        for ((o, w), &b) in out.iter_mut().zip(w.rows()).zip(b.iter()) {
            *o = leaky_relu(w.dot(&xs) + b / a);
        }
        let mut norm = [T::zero()];
        let row = out.view_mut().insert_axis(ndarray::Axis(0));
        kernels::l2_normalize_rows_into(row, ArrayViewMut1::from(&mut norm[..]), T::c(NORM_EPS));
        norm[0].is_finite()
    }

    /// Accumulates `dW`, `db` from `d_out [N, E]`, the gradient on the
    /// embeddings of `x [N, d]` (the inputs are data: no gradient for them).
    pub fn backward<T: Real>(&self, x: ArrayView2<T>, tape: &EncoderTape<T>, mut d_out: Array2<T>, grads: &mut ParamsMut<T>) {
        l2_normalize_backward_inplace(tape.out.view(), tape.norms.view(), d_out.view_mut());
        leaky_relu_backward_inplace(tape.out.view(), d_out.view_mut());
        let (dw, db) = grads.weight_and_bias(self.weight, self.bias);
        linear_backward(x, d_out.view(), dw, Some(db));
    }
}

/// How [`pool_components`] combined the components, for its backward.
#[derive(Debug, Clone)]
pub struct PoolTape<T> {
    /// Each component's share of its row's mean (1 for a lone component).
    pub coeffs: Vec<T>,
    /// The rows that pooled several components, and the norm of their mean.
    pub pooled: Vec<(usize, T)>,
}

/// Writes component embeddings `z [N, E]` into their event rows of `out
/// [B, E]`. An event with one component takes its embedding unchanged; an
/// event with several takes their mean weighted by `weights` (equal weights
/// when none are given or all are zero), re-normalised to unit length:
/// `out_r = l2norm(Σ_i c_i z_i)` with `c_i = w_i / Σ_{rows[k]=r} w_k`.
pub fn pool_components<T: Real>(z: ArrayView2<T>, rows: &[usize], weights: Option<&[T]>, mut out: ArrayViewMut2<T>) -> PoolTape<T> {
    let mut count = vec![0usize; out.nrows()];
    for &r in rows {
        count[r] += 1;
    }
    if rows.iter().all(|&r| count[r] == 1) {
        for (i, &r) in rows.iter().enumerate() {
            out.row_mut(r).assign(&z.row(i));
        }
        return PoolTape {
            coeffs: vec![T::one(); rows.len()],
            pooled: Vec::new(),
        };
    }
    let mut weight_sum = vec![T::zero(); out.nrows()];
    if let Some(w) = weights {
        for (&r, &wi) in rows.iter().zip(w) {
            weight_sum[r] += wi;
        }
    }
    let coeffs: Vec<T> = rows
        .iter()
        .enumerate()
        .map(|(i, &r)| match weights {
            Some(w) if weight_sum[r] > T::zero() => w[i] / weight_sum[r],
            _ => T::one() / T::c(count[r] as f64),
        })
        .collect();
    for &r in rows {
        out.row_mut(r).fill(T::zero());
    }
    for ((i, &r), &c) in rows.iter().enumerate().zip(&coeffs) {
        out.row_mut(r).scaled_add(c, &z.row(i));
    }
    let mut pooled = Vec::new();
    for r in (0..out.nrows()).filter(|&r| count[r] > 1) {
        let mut row = out.row_mut(r);
        let norm = row.iter().map(|v| *v * *v).sum::<T>().sqrt();
        let denom = norm.max(T::c(NORM_EPS));
        row.mapv_inplace(|v| v / denom);
        pooled.push((r, norm));
    }
    PoolTape { coeffs, pooled }
}

/// Backward of [`pool_components`]: from `d_out [B, E]` (the gradient on its
/// output rows) and `out [B, E]` (its output), the gradient on `z [N, E]`.
pub fn pool_components_backward<T: Real>(tape: &PoolTape<T>, rows: &[usize], out: ArrayView2<T>, d_out: ArrayView2<T>) -> Array2<T> {
    let mut d_mean = d_out.to_owned();
    if !tape.pooled.is_empty() {
        let idx: Vec<usize> = tape.pooled.iter().map(|p| p.0).collect();
        let y = out.select(ndarray::Axis(0), &idx);
        let norms: Array1<T> = tape.pooled.iter().map(|p| p.1).collect();
        let mut d = d_out.select(ndarray::Axis(0), &idx);
        l2_normalize_backward_inplace(y.view(), norms.view(), d.view_mut());
        for (k, &r) in idx.iter().enumerate() {
            d_mean.row_mut(r).assign(&d.row(k));
        }
    }
    let mut dz = Array2::zeros((rows.len(), d_out.ncols()));
    for ((mut row, &r), &c) in dz.rows_mut().into_iter().zip(rows).zip(&tape.coeffs) {
        row.scaled_add(c, &d_mean.row(r));
    }
    dz
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn hand_computed_two_dim_case() {
        let mut layout = ParamLayout::new();
        let enc = ModalityEncoder::register(&mut layout, Modality::Visual, 2, 2);
        // W = [[1, 2], [-3, 1]], b = [0, 1]
        let data = vec![1.0f64, 2.0, -3.0, 1.0, 0.0, 1.0];
        let out = enc.forward(layout.view(&data), array![[1.0, 1.0]].view());
        // z = [3, -1] -> leaky [3, -0.01] -> / sqrt(9.0001)
        let n = (9.0001f64).sqrt();
        assert!((out[[0, 0]] - 3.0 / n).abs() < 1e-12);
        assert!((out[[0, 1]] + 0.01 / n).abs() < 1e-12);
    }

    #[test]
    fn pooling_is_a_weighted_renormalised_mean() {
        let z = array![[1.0f64, 0.0], [0.0, 1.0], [0.6, 0.8]];
        let mut out = Array2::zeros((2, 2));
        pool_components(z.view(), &[0, 0, 1], Some(&[3.0, 1.0, 0.5]), out.view_mut());
        let n = (0.75f64 * 0.75 + 0.25 * 0.25).sqrt();
        assert!((out[[0, 0]] - 0.75 / n).abs() < 1e-12 && (out[[0, 1]] - 0.25 / n).abs() < 1e-12);
        assert_eq!(out.row(1).to_vec(), vec![0.6, 0.8], "a single component is kept as is");
        // All-zero confidences fall back to the plain mean.
        pool_components(z.view(), &[0, 0, 1], Some(&[0.0, 0.0, 0.0]), out.view_mut());
        assert!((out[[0, 0]] - out[[0, 1]]).abs() < 1e-12);
    }
}
