//! Fusion network: three LeakyReLU layers over the concatenated modality
//! embeddings (`[M·E] → E → H → E`), then L2 normalisation. Forward and
//! backward side by side.
//!
//! With a residual weight `c > 0` (`config.fusion_residual`) the fused
//! embedding is `normalize(f(x) + c · mean of the present modality
//! embeddings)`: the network learns a correction to the views' average
//! instead of the whole embedding, so the fused space keeps the geometry
//! the views share (see docs/objectives.md). `c = 0` is the original.

use super::ops::{l2_normalize_backward_inplace, l2_normalize_rows, leaky_relu_backward_inplace, linear_backward, NORM_EPS};
use crate::kernels::{self, Epilogue, ZeroBlocks};
use crate::modality::NUM_MODALITIES;
use crate::params::{Init, ParamId, ParamLayout, Params, ParamsMut};
use crate::real::Real;
use ndarray::{s, Array1, Array2, ArrayView2, ArrayViewMut1, ArrayViewMut2, Zip};

/// `fusion.{0,1,2}.{weight,bias}`.
#[derive(Debug, Clone)]
pub struct FusionNetwork {
    /// `(weight, bias)` of each layer, input side first.
    pub layers: [(ParamId, ParamId); 3],
    /// The weight `c` of the residual path from the modality embeddings
    /// (0 = none, the original network).
    pub residual: f64,
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
    /// With a residual path: the third layer's activation before the
    /// residual is added (the LeakyReLU backward needs its signs) and the
    /// weight of each modality block in the residual, `[B, M]`.
    pub residual: Option<(Array2<T>, Array2<T>)>,
}

impl FusionNetwork {
    pub fn register(layout: &mut ParamLayout, embed_dim: usize, hidden_dim: usize, residual: f64) -> Self {
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
        FusionNetwork { layers, residual }
    }

    /// The weight of each modality block of each row in the residual
    /// (`[rows, M]`): `c / (modalities present in the row)` on the present
    /// blocks (all when `present` is `None`), 0 elsewhere and on rows with
    /// none present. `None` when there is no residual path.
    fn residual_weights<T: Real>(&self, rows: usize, present: Option<&[bool]>) -> Option<Array2<T>> {
        if self.residual == 0.0 {
            return None;
        }
        let mut weights = Array2::zeros((rows, NUM_MODALITIES));
        for (r, mut row) in weights.rows_mut().into_iter().enumerate() {
            let mask = present.map(|p| &p[r * NUM_MODALITIES..(r + 1) * NUM_MODALITIES]);
            let is_present = |m: usize| mask.is_none_or(|mask| mask[m]);
            let count = (0..NUM_MODALITIES).filter(|&m| is_present(m)).count();
            if count > 0 {
                let w = T::c(self.residual / count as f64);
                (0..NUM_MODALITIES).filter(|&m| is_present(m)).for_each(|m| row[m] = w);
            }
        }
        Some(weights)
    }

    /// `out[r] += Σ_m weights[r, m] · x[r, block m]`.
    fn add_residual<T: Real>(x: ArrayView2<T>, weights: &Array2<T>, mut out: ArrayViewMut2<T>) {
        let e = out.ncols();
        Zip::from(out.rows_mut()).and(x.rows()).and(weights.rows()).for_each(|mut out, x, w| {
            for (m, &w) in w.iter().enumerate().filter(|&(_, &w)| w != T::zero()) {
                out.scaled_add(w, &x.slice(s![m * e..(m + 1) * e]));
            }
        });
    }

    /// Layer `i` into `out`: `leaky(x · Wᵢᵀ + bᵢ)`. `present [rows × M]`
    /// (layer 0 only) marks the modality blocks of `x` that may be nonzero.
    fn layer_into<T: Real>(&self, params: Params<T>, i: usize, x: ArrayView2<T>, present: Option<&[bool]>, out: ArrayViewMut2<T>, serial: bool) {
        let (w, b) = self.layers[i];
        let wt = params.matrix_t(w);
        let epi = Epilogue::bias(params.slice(b), true);
        let zeros = present.map(|p| ZeroBlocks { len: x.ncols() / NUM_MODALITIES, present: p });
        if serial {
            kernels::gemm_serial(x, wt.view(), out, epi, zeros);
        } else {
            kernels::gemm_segments(x, wt.view(), out, epi, zeros);
        }
    }

    fn layer<T: Real>(&self, params: Params<T>, i: usize, x: ArrayView2<T>, present: Option<&[bool]>) -> Array2<T> {
        let mut h = Array2::zeros((x.nrows(), params.vector(self.layers[i].1).len()));
        self.layer_into(params, i, x, present, h.view_mut(), false);
        h
    }

    /// `x [B, M·E]` (absent modalities zero-filled) → unit-norm `[B, E]`.
    /// Every modality counts as present in the residual.
    pub fn forward<T: Real>(&self, params: Params<T>, x: ArrayView2<T>) -> Array2<T> {
        let h1 = self.layer(params, 0, x, None);
        let h2 = self.layer(params, 1, h1.view(), None);
        let mut out = self.layer(params, 2, h2.view(), None);
        if let Some(weights) = self.residual_weights(x.nrows(), None) {
            Self::add_residual(x, &weights, out.view_mut());
        }
        l2_normalize_rows(out.view_mut());
        out
    }

    /// The forward pass of a few rows on the calling thread, into `out [N, E]`
    /// and the pre-normalisation norms into `norms [N]`. `present [N × M]`,
    /// when given, marks the modalities that may be nonzero in each row of
    /// `x` (the products of all-zero blocks are skipped: same result).
    pub fn forward_rows<T: Real>(&self, params: Params<T>, x: ArrayView2<T>, present: Option<&[bool]>, mut out: ArrayViewMut2<T>, norms: ArrayViewMut1<T>) {
        let rows = x.nrows();
        let (e, h) = (params.vector(self.layers[0].1).len(), params.vector(self.layers[1].1).len());
        let mut h1 = Array2::zeros((rows, e));
        let mut h2 = Array2::zeros((rows, h));
        self.layer_into(params, 0, x, present, h1.view_mut(), true);
        self.layer_into(params, 1, h1.view(), None, h2.view_mut(), true);
        self.layer_into(params, 2, h2.view(), None, out.view_mut(), true);
        if let Some(weights) = self.residual_weights(rows, present) {
            Self::add_residual(x, &weights, out.view_mut());
        }
        kernels::l2_normalize_rows_into(out, norms, T::c(NORM_EPS));
    }

    /// The forward pass keeping its activations for [`Self::backward`].
    pub fn forward_train<T: Real>(&self, params: Params<T>, x: Array2<T>) -> FusionTape<T> {
        self.forward_train_masked(params, x, None)
    }

    /// [`Self::forward_train`] with the modalities present in each row
    /// (`[B × M]`, row-major; absent blocks of `x` must be zero).
    pub fn forward_train_masked<T: Real>(&self, params: Params<T>, x: Array2<T>, present: Option<&[bool]>) -> FusionTape<T> {
        let h1 = self.layer(params, 0, x.view(), present);
        let h2 = self.layer(params, 1, h1.view(), None);
        let mut out = self.layer(params, 2, h2.view(), None);
        let residual = self.residual_weights(x.nrows(), present).map(|weights| {
            let activation = out.clone();
            Self::add_residual(x.view(), &weights, out.view_mut());
            (activation, weights)
        });
        let norms = l2_normalize_rows(out.view_mut());
        FusionTape {
            input: x,
            hidden: [h1, h2],
            out,
            norms,
            residual,
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
        // The gradient the residual passes on to the input blocks is
        // `d_out` itself: keep it (`[B, E]`) before the LeakyReLU backward
        // rescales `d_out` in place.
        let residual = tape.residual.as_ref().filter(|_| want_dx).map(|(_, weights)| (d_out.clone(), weights));
        // `d` is the gradient on a layer's output; walk the layers backwards.
        // The last layer's signs are those of its activation (the
        // normalisation keeps them; the residual does not).
        let mut d = d_out;
        let last = tape.residual.as_ref().map_or(&tape.out, |(activation, _)| activation);
        let activations = [&tape.hidden[0], &tape.hidden[1], last];
        for i in (0..3).rev() {
            leaky_relu_backward_inplace(activations[i].view(), d.view_mut());
            let input = if i == 0 { tape.input.view() } else { tape.hidden[i - 1].view() };
            let (w, b) = self.layers[i];
            let (dw, db) = grads.weight_and_bias(w, b);
            linear_backward(input, d.view(), dw, Some(db));
            if i == 0 && !want_dx {
                return None;
            }
            let wm = params.matrix(w);
            let mut dx = Array2::zeros((d.nrows(), wm.ncols()));
            kernels::gemm(d.view(), wm, dx.view_mut(), Epilogue::store());
            d = dx;
        }
        if let Some((d_out, weights)) = residual {
            Self::add_residual_backward(d_out.view(), weights, d.view_mut());
        }
        Some(d)
    }

    /// The residual's gradient on the input, added into `dx [B, M·E]`:
    /// `weights[r, m] · d[r]` into block `m` of row `r` (the transpose of
    /// [`Self::add_residual`]).
    fn add_residual_backward<T: Real>(d: ArrayView2<T>, weights: &Array2<T>, mut dx: ArrayViewMut2<T>) {
        let e = d.ncols();
        Zip::from(dx.rows_mut()).and(d.rows()).and(weights.rows()).for_each(|mut dx, d, w| {
            for (m, &w) in w.iter().enumerate().filter(|&(_, &w)| w != T::zero()) {
                dx.slice_mut(s![m * e..(m + 1) * e]).scaled_add(w, &d);
            }
        });
    }
}
