//! Per-modality encoder, and the confidence-weighted pooling of several
//! components of one modality in one event. Forward and backward side by
//! side.
//!
//! The original encoder is one layer, `l2norm(leaky(W_m x + b_m))`. With
//! `config.encoder_hidden` it has hidden layers before that one (LeakyReLU
//! after each, and dropout in training), and with `config.shared_head` the
//! projection head shared by all modalities follows it (see
//! [`super::head`]): the encoder's output layer is then linear and the
//! head's last layer gives the embedding. Either way the embedding is the
//! L2-normalised output of one stack of [`Dense`] layers.
//!
//! With `config.encoder_skip` a linear path runs from the encoder's input
//! (after its dropout) to its output layer, `S_m x` added to that layer's
//! (linear) output before the head: the views that are near-linear
//! functions of each other keep a path the hidden layer's dropout and
//! LeakyReLU cannot blur (docs/objectives.md).

use super::dense::Dense;
use super::dropout::{self, DropoutRates};
use super::head::ProjectionHead;
use super::ops::{l2_normalize_backward_inplace, l2_normalize_rows, linear_backward, NORM_EPS};
use crate::kernels::{self, Epilogue};
use crate::modality::Modality;
use crate::params::{Init, ParamId, ParamLayout, Params, ParamsMut};
use crate::real::Real;
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2};
use rand_core::Rng;

/// The encoder of one modality: every layer from its input to its
/// embedding, input side first — its own layers (`encoder.<modality>.weight
/// [E, d]` and `.bias [E]` for the original single layer,
/// `encoder.<modality>.<i>.weight` / `.bias` when there are several), then
/// the shared head's, the same tensors in every encoder.
#[derive(Debug, Clone)]
pub struct ModalityEncoder {
    pub modality: Modality,
    pub input_dim: usize,
    pub layers: Vec<Dense>,
    /// How many of `layers` are this encoder's own hidden layers (the
    /// first ones; dropout follows each in training).
    pub hidden: usize,
    /// `encoder.<modality>.skip.weight [output, d]`: the linear path from
    /// the input to the output of `layers[hidden]` (the encoder's own output
    /// layer, linear under a head), when `config.encoder_skip`.
    pub skip: Option<ParamId>,
}

/// What the encoder's backward needs: the output rows and their norms
/// before normalisation (the last layer's output has the sign of `out`),
/// and, with several layers, every layer's input.
#[derive(Debug, Clone)]
pub struct EncoderTape<T> {
    /// Unit-norm embeddings `[N, E]`.
    pub out: Array2<T>,
    /// The norm of each row of the last layer's output, `[N]`.
    pub norms: Array1<T>,
    /// The output of each layer but the last, after its dropout: the input
    /// of the next layer.
    pub activations: Vec<Array2<T>>,
    /// The dropout multipliers applied to each entry of `activations`
    /// (`None`: no dropout there).
    pub masks: Vec<Option<Array2<T>>>,
    /// The input after input dropout, when there was some.
    pub dropped_input: Option<Array2<T>>,
}

/// Dropout for one forward pass in training: the rates and the stream the
/// masks come from (see [`dropout`]).
pub struct Dropping<'a, R> {
    pub rates: DropoutRates,
    pub rng: &'a mut R,
}

impl ModalityEncoder {
    /// The original encoder: one layer, `encoder.<modality>.weight [E, d]`
    /// and `.bias [E]`, LeakyReLU.
    pub fn register(layout: &mut ParamLayout, modality: Modality, input_dim: usize, embed_dim: usize) -> Self {
        Self::register_layers(layout, modality, input_dim, &[], embed_dim, true)
    }

    /// An encoder with hidden layers of widths `hidden` (LeakyReLU after
    /// each) and an output layer of width `output_dim`, LeakyReLU after it
    /// when `output_leaky`. A single layer keeps the original names; several
    /// are numbered from the input side.
    pub fn register_layers(
        layout: &mut ParamLayout,
        modality: Modality,
        input_dim: usize,
        hidden: &[usize],
        output_dim: usize,
        output_leaky: bool,
    ) -> Self {
        let prefix = format!("encoder.{}", modality.name());
        let widths: Vec<usize> = hidden.iter().copied().chain([output_dim]).collect();
        let mut fan_in = input_dim;
        let layers = widths
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                let name = if widths.len() == 1 { prefix.clone() } else { format!("{prefix}.{i}") };
                let layer = Dense::register(layout, &name, fan_in, w, i < hidden.len() || output_leaky);
                fan_in = w;
                layer
            })
            .collect();
        ModalityEncoder { modality, input_dim, layers, hidden: hidden.len(), skip: None }
    }

    /// Registers the linear skip path, `encoder.<modality>.skip.weight
    /// [output_dim, d]`, initialised at zero (so the encoder starts as the one
    /// without it, and no other tensor's initial values change). Call after
    /// [`Self::register_layers`] with hidden layers, before the head is
    /// attached; the config allows it only with a shared head, so the layer
    /// it adds to is linear.
    pub fn register_skip(&mut self, layout: &mut ParamLayout, output_dim: usize) {
        debug_assert!(self.hidden > 0 && self.hidden + 1 == self.layers.len(), "a skip joins the encoder's own output layer");
        let name = format!("encoder.{}.skip.weight", self.modality.name());
        self.skip = Some(layout.add(name, &[output_dim, self.input_dim], Init::Zeros));
    }

    /// Adds the skip path's `x Sᵀ` to `out` (the output of `layers[hidden]`).
    fn add_skip<T: Real>(&self, params: Params<T>, x: ArrayView2<T>, out: ArrayViewMut2<T>, serial: bool) {
        let Some(skip) = self.skip else { return };
        let st = params.matrix_t(skip);
        if serial {
            kernels::gemm_serial(x, st.view(), out, Epilogue::add(), None);
        } else {
            kernels::gemm(x, st.view(), out, Epilogue::add());
        }
    }

    /// Appends the shared head's layers (the embedding is then theirs).
    pub fn attach_head(&mut self, head: &ProjectionHead) {
        self.layers.extend(head.layers.iter().copied());
    }

    /// `x [N, d]` → unit-norm embeddings `[N, E]`.
    pub fn forward<T: Real>(&self, params: Params<T>, x: ArrayView2<T>) -> Array2<T> {
        self.forward_train(params, x).out
    }

    /// The forward pass keeping what the backward needs (no extra work: the
    /// norms are computed by the normalisation anyway).
    pub fn forward_train<T: Real>(&self, params: Params<T>, x: ArrayView2<T>) -> EncoderTape<T> {
        self.forward_train_dropping::<T, rand_chacha::ChaCha8Rng>(params, x, None)
    }

    /// [`Self::forward_train`] with dropout when `dropping` is given (in
    /// training): on the input, then after each hidden layer.
    pub fn forward_train_dropping<T: Real, R: Rng>(&self, params: Params<T>, x: ArrayView2<T>, mut dropping: Option<Dropping<R>>) -> EncoderTape<T> {
        let dropped_input = match dropping.as_mut() {
            Some(d) if d.rates.input > 0.0 => {
                let mut dropped = x.to_owned();
                dropout::apply(dropped.view_mut(), d.rates.input, d.rng);
                Some(dropped)
            }
            _ => None,
        };
        let last = self.layers.len() - 1;
        let mut activations: Vec<Array2<T>> = Vec::with_capacity(last);
        let mut masks = Vec::with_capacity(last);
        let mut out = None;
        for (i, layer) in self.layers.iter().enumerate() {
            let input = match i {
                0 => dropped_input.as_ref().map_or(x, |d| d.view()),
                _ => activations[i - 1].view(),
            };
            let mut y: Array2<T> = layer.forward(params, input);
            if i == self.hidden {
                self.add_skip(params, dropped_input.as_ref().map_or(x, |d| d.view()), y.view_mut(), false);
            }
            if i == last {
                out = Some(y);
                break;
            }
            let mask = match dropping.as_mut() {
                Some(d) if i < self.hidden && d.rates.hidden > 0.0 => Some(dropout::apply(y.view_mut(), d.rates.hidden, d.rng)),
                _ => None,
            };
            activations.push(y);
            masks.push(mask);
        }
        let mut out = out.expect("an encoder has at least one layer");
        let norms = l2_normalize_rows(out.view_mut());
        EncoderTape { out, norms, activations, masks, dropped_input }
    }

    /// The output of hidden layer `layer` (0: the first) for `x [N, d]`,
    /// after its LeakyReLU and without dropout: the features before the
    /// layers that map into the aligned embedding space. `None` when the
    /// encoder has no such hidden layer.
    pub fn hidden_forward<T: Real>(&self, params: Params<T>, x: ArrayView2<T>, layer: usize) -> Option<Array2<T>> {
        if layer >= self.hidden {
            return None;
        }
        let mut h = self.layers[0].forward(params, x);
        for dense in &self.layers[1..=layer] {
            h = dense.forward(params, h.view());
        }
        Some(h)
    }

    /// The forward pass written into `out [N, E]` (any row stride, e.g. one
    /// modality's slots of `[B, M, E]`), the pre-normalisation norms into
    /// `norms [N]`; on the calling thread.
    pub fn forward_into<T: Real>(&self, params: Params<T>, x: ArrayView2<T>, mut out: ArrayViewMut2<T>, norms: ArrayViewMut1<T>) {
        let (last, rest) = self.layers.split_last().expect("an encoder has at least one layer");
        let mut h: Option<Array2<T>> = None;
        for (i, layer) in rest.iter().enumerate() {
            let input = h.as_ref().map_or(x, |h| h.view());
            let mut next = Array2::zeros((x.nrows(), layer.out_dim(params)));
            layer.forward_serial_into(params, input, next.view_mut());
            if i == self.hidden {
                self.add_skip(params, x, next.view_mut(), true);
            }
            h = Some(next);
        }
        last.forward_serial_into(params, h.as_ref().map_or(x, |h| h.view()), out.view_mut());
        kernels::l2_normalize_rows_into(out, norms, T::c(NORM_EPS));
    }

    /// One row's embedding computed so that finite inputs cannot overflow:
    /// every layer is positively homogeneous once its bias is scaled too
    /// (`act(W (h/a) + b/a) = act(W h + b)/a` for LeakyReLU or no
    /// activation), and so is the normalisation, so scaling the input by
    /// `1/a`, `a` the row's largest magnitude, and every bias by `1/a` gives
    /// the same embedding (the skip path, linear and without a bias, scales
    /// alike). For rows whose products overflow float32; false
    /// (and `out` unspecified) when the row or its result is not finite.
    pub fn forward_row_scaled<T: Real>(&self, params: Params<T>, x: ArrayView1<T>, mut out: ArrayViewMut1<T>) -> bool {
        let a = x.iter().fold(T::zero(), |a, v| a.max(v.abs()));
        if !(a.is_finite() && a > T::zero() && x.iter().all(|v| v.is_finite())) {
            return false;
        }
        let scaled = x.mapv(|v| v / a);
        let mut h = scaled.clone();
        for (i, layer) in self.layers.iter().enumerate() {
            h = layer.forward_row_bias_scaled(params, h.view(), a);
            if let (Some(skip), true) = (self.skip, i == self.hidden) {
                h += &params.matrix(skip).dot(&scaled);
            }
        }
        out.assign(&h);
        let mut norm = [T::zero()];
        let row = out.view_mut().insert_axis(ndarray::Axis(0));
        kernels::l2_normalize_rows_into(row, ArrayViewMut1::from(&mut norm[..]), T::c(NORM_EPS));
        norm[0].is_finite()
    }

    /// Accumulates every layer's `dW`, `db` from `d_out [N, E]`, the
    /// gradient on the embeddings of `x [N, d]` (the inputs are data: no
    /// gradient for them).
    pub fn backward<T: Real>(&self, params: Params<T>, x: ArrayView2<T>, tape: &EncoderTape<T>, mut d_out: Array2<T>, grads: &mut ParamsMut<T>) {
        l2_normalize_backward_inplace(tape.out.view(), tape.norms.view(), d_out.view_mut());
        let mut d = d_out;
        for (i, layer) in self.layers.iter().enumerate().rev() {
            let y = if i + 1 == self.layers.len() { tape.out.view() } else { tape.activations[i].view() };
            let dropped = tape.dropped_input.as_ref().map_or(x, |d| d.view());
            if let (Some(skip), true) = (self.skip, i == self.hidden) {
                // The layer it joins is linear: `d` is also the gradient on `x Sᵀ`.
                linear_backward(dropped, d.view(), grads.matrix(skip), None);
            }
            let input = match i {
                0 => dropped,
                _ => tape.activations[i - 1].view(),
            };
            let Some(mut dx) = layer.backward(params, input, y, d.view_mut(), grads, i > 0) else { break };
            if let Some(mask) = &tape.masks[i - 1] {
                dx *= mask;
            }
            d = dx;
        }
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
