//! Per-modality encoder: `l2norm(leaky(W_m x + b_m))`.

use super::ops::{l2_normalize_rows, leaky_relu_inplace, linear};
use crate::modality::Modality;
use crate::params::{Init, ParamId, ParamLayout, Params};
use crate::real::Real;
use ndarray::{Array2, ArrayView2, ArrayViewMut2};

/// The encoder of one modality: `W [E, d]`, `b [E]`.
#[derive(Debug, Clone)]
pub struct ModalityEncoder {
    pub modality: Modality,
    pub input_dim: usize,
    pub weight: ParamId,
    pub bias: ParamId,
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
        let mut z = linear(x, params.matrix(self.weight), Some(params.vector(self.bias)));
        leaky_relu_inplace(z.view_mut());
        l2_normalize_rows(z.view_mut());
        z
    }
}

/// Writes component embeddings `z [N, E]` into their event rows of `out
/// [B, E]`. An event with one component takes its embedding unchanged; an
/// event with several takes their mean weighted by `weights` (equal weights
/// when none are given or all are zero), re-normalised to unit length.
pub fn pool_components<T: Real>(z: ArrayView2<T>, rows: &[usize], weights: Option<&[T]>, mut out: ArrayViewMut2<T>) {
    let mut count = vec![0usize; out.nrows()];
    for &r in rows {
        count[r] += 1;
    }
    if rows.iter().all(|&r| count[r] == 1) {
        for (i, &r) in rows.iter().enumerate() {
            out.row_mut(r).assign(&z.row(i));
        }
        return;
    }
    let mut weight_sum = vec![T::zero(); out.nrows()];
    if let Some(w) = weights {
        for (&r, &wi) in rows.iter().zip(w) {
            weight_sum[r] += wi;
        }
    }
    let weight_of = |i: usize, r: usize| match weights {
        Some(w) if weight_sum[r] > T::zero() => w[i] / weight_sum[r],
        _ => T::one() / T::c(count[r] as f64),
    };
    for &r in rows {
        out.row_mut(r).fill(T::zero());
    }
    for (i, &r) in rows.iter().enumerate() {
        out.row_mut(r).scaled_add(weight_of(i, r), &z.row(i));
    }
    let pooled: Vec<usize> = (0..out.nrows()).filter(|&r| count[r] > 1).collect();
    for r in pooled {
        let mut row = out.row_mut(r);
        let norm = row.iter().map(|v| *v * *v).sum::<T>().sqrt().max(T::c(super::ops::NORM_EPS));
        row.mapv_inplace(|v| v / norm);
    }
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
