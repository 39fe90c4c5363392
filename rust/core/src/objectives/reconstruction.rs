//! reconstruction: from each event's fused embedding, a linear decoder per
//! modality predicts the modality's standardised input (a multimodal
//! autoencoder's term, Ngiam et al. 2011, trained with the rest).
//!
//! Rows `R`: those with at least one modality present. `f_r = fuse(e(r))`,
//! the fused embedding of the whole event (as the model outputs it). For
//! every modality `m` with inputs, `x_m(r)` its input as the encoder reads
//! it (after the model's normalisation; a modality given as several
//! components per row, its rows' weighted mean) and `d_m` its width:
//!
//! ```text
//! L = (1/|P|) Σ_{(r, m) ∈ P} (1/d_m) ‖W_m (√E f_r) + b_m − x_m(r)‖²
//! ```
//!
//! over the present pairs `P`.
//!
//! The decoders read the fused embedding scaled by `√E`: a unit vector's
//! entries are then of order 1, as the standardised inputs' are, so the
//! weights a good reconstruction needs are of the size Adam's steps reach
//! in a run (read unscaled, they would need entries ~√E times larger,
//! hundreds of steps of `lr` each; the decoders lagged far behind a
//! least-squares refit in a first build, UCI split 0: MSE 0.46 against
//! 0.31). The scale is a constant: the same model as an unscaled decoder.
//!
//! With `config.reconstruction_subsets`, `f_r`
//! is instead the fused embedding of a random subset of the event's present
//! modalities (each kept with probability ½; one drawn uniformly when none
//! is), still predicting every present modality: the missing ones from the
//! others (Ngiam et al.'s training with a modality zeroed), so the fused
//! embeddings of a few views learn to carry what the others hold. The
//! subsets are drawn from the objective's random stream. The targets are
//! constants (the inputs);
//! the gradient reaches the decoders (`reconstruction.<modality>.weight
//! [d_m, E]`, `.bias [d_m]`, `config.reconstruction_decoders`), the fusion
//! network and, through its input, the encoders. 0 on recorded embeddings
//! (no inputs to reconstruct).
//!
//! Why: aligning the views (contrastive) keeps what they share and lets go
//! of what one view alone holds; a fused embedding that must predict every
//! view's input keeps each view's own detail (docs/objectives.md).

use super::input_neighbors::RowInputs;
use super::fused_contrastive::draw_subset;
use super::GradSink;
use crate::kernels::{self, Epilogue};
use crate::modality::{Modality, NUM_MODALITIES};
use crate::nn::ops::linear_backward;
use crate::nn::FusionNetwork;
use crate::params::{Init, ParamId, ParamLayout, Params};
use crate::real::Real;
use ndarray::{s, Array2, ArrayView2, ArrayView3, Axis};
use rand_core::Rng;

/// `reconstruction.<modality>.{weight, bias}`: one linear map per
/// modality, fused embedding `[E]` → input `[d_m]`.
#[derive(Debug, Clone)]
pub struct Decoders {
    /// `(weight [d_m, E], bias [d_m])`, modality order.
    pub layers: [(ParamId, ParamId); NUM_MODALITIES],
}

impl Decoders {
    pub fn register(layout: &mut ParamLayout, embed_dim: usize, input_dims: &[usize; NUM_MODALITIES]) -> Self {
        let layers = std::array::from_fn(|m| {
            let (name, d) = (Modality::ALL[m].name(), input_dims[m]);
            (
                layout.add(format!("reconstruction.{name}.weight"), &[d, embed_dim], Init::xavier(embed_dim, d)),
                layout.add(format!("reconstruction.{name}.bias"), &[d], Init::Zeros),
            )
        });
        Decoders { layers }
    }
}

/// The modalities each row's fused embedding reads with
/// `config.reconstruction_subsets`: of the present ones, each kept with
/// probability ½, one drawn uniformly when none is (rows with none present
/// keep none).
pub fn draw_subsets(mask: ArrayView2<bool>, rng: &mut impl Rng) -> Array2<bool> {
    let mut kept = Array2::from_elem(mask.dim(), false);
    for r in (0..mask.nrows()).filter(|&r| mask.row(r).iter().any(|&p| p)) {
        draw_subset(mask.row(r), rng, kept.row_mut(r));
    }
    kept
}

/// reconstruction: see the module documentation. `targets[m]`: modality
/// `m`'s rows and inputs (`None` where the batch has none); `fused_from
/// [B, M]`: the modalities each row's fused embedding reads (`mask` itself
/// for the whole event, or a subset of it); `emb` must have absent slots
/// zeroed.
#[allow(clippy::too_many_arguments)]
pub fn reconstruction<T: Real>(
    fusion: &FusionNetwork,
    decoders: &Decoders,
    params: Params<T>,
    emb: ArrayView3<T>,
    mask: ArrayView2<bool>,
    fused_from: ArrayView2<bool>,
    targets: &[Option<RowInputs<'_, T>>],
    sink: Option<&mut GradSink<T>>,
) -> T {
    let rows: Vec<usize> = (0..mask.nrows()).filter(|&r| fused_from.row(r).iter().any(|&p| p)).collect();
    // Batch row → its index among `rows`.
    let mut at = vec![usize::MAX; mask.nrows()];
    for (k, &r) in rows.iter().enumerate() {
        at[r] = k;
    }
    // Per modality: the fused rows it reconstructs (indices into `rows`) and
    // the targets' positions among its rows.
    let parts: Vec<(usize, Vec<usize>, Vec<usize>)> = (0..NUM_MODALITIES)
        .filter_map(|m| {
            let t = targets.get(m)?.as_ref()?;
            let (fused, own): (Vec<usize>, Vec<usize>) = t
                .rows
                .iter()
                .enumerate()
                .filter(|&(_, &r)| r < mask.nrows() && mask[[r, m]] && at[r] != usize::MAX)
                .map(|(i, &r)| (at[r], i))
                .unzip();
            (!fused.is_empty()).then_some((m, fused, own))
        })
        .collect();
    let count: usize = parts.iter().map(|(_, fused, _)| fused.len()).sum();
    if count == 0 {
        return T::zero();
    }
    let (n, e) = (rows.len(), emb.len_of(Axis(2)));
    let x_dim = (n, NUM_MODALITIES, e);
    let mut x = emb.select(Axis(0), &rows);
    let present = fused_from.select(Axis(0), &rows);
    // The slots a subset leaves out are zero (and skipped by the products).
    for ((k, m), &kept) in present.indexed_iter() {
        if !kept {
            x.slice_mut(s![k, m, ..]).fill(T::zero());
        }
    }
    let x = x.into_shape_with_order((n, NUM_MODALITIES * e)).expect("n·M·E values");
    let present = present.as_standard_layout();
    let tape = fusion.forward_train_masked(params, x, present.as_slice());
    let read_scale = T::c((e as f64).sqrt());
    let fused = &tape.out * read_scale;
    let inv_count = T::one() / T::c(count as f64);
    let mut loss = T::zero();
    let mut d_fused = sink.as_ref().map(|_| Array2::<T>::zeros((n, e)));
    let mut sink = sink;
    for (m, fused_rows, own) in &parts {
        let target = targets[*m].as_ref().expect("filtered above");
        let (w, b) = decoders.layers[*m];
        let d = params.vector(b).len();
        let f = fused.select(Axis(0), fused_rows);
        // diff = (√E f) Wᵀ + b − x
        let mut diff = Array2::<T>::zeros((f.nrows(), d));
        let wt = params.matrix_t(w);
        kernels::gemm(f.view(), wt.view(), diff.view_mut(), Epilogue::bias(params.slice(b), false));
        diff -= &target.x.select(Axis(0), own);
        let per_entry = inv_count / T::c(d as f64);
        // Row by row, each row's squares scaled by 1/(d_m |P|) before they are
        // added: the sum stays under the largest row's mean whenever each
        // row's own squares fit in float32 (summed over the batch first, rows
        // of 4e18 overflowed, and the refusal blamed the parameters).
        loss += diff.outer_iter().fold(T::zero(), |acc, row| acc + row.iter().fold(T::zero(), |sum, &v| sum + v * v) * per_entry);
        if let (Some(sink), Some(d_fused)) = (sink.as_deref_mut(), d_fused.as_mut()) {
            // ∂(weight · L)/∂diff = weight · 2 diff / (d_m |P|).
            diff *= sink.weight * T::c(2.0) * per_entry;
            let (dw, db) = sink.params.weight_and_bias(w, b);
            linear_backward(f.view(), diff.view(), dw, Some(db));
            let mut df = Array2::<T>::zeros((f.nrows(), e));
            kernels::gemm(diff.view(), params.matrix(w), df.view_mut(), Epilogue::scaled(read_scale));
            for (k, &q) in fused_rows.iter().enumerate() {
                let mut dst = d_fused.row_mut(q);
                dst += &df.row(k);
            }
        }
    }
    if let (Some(sink), Some(d_fused)) = (sink, d_fused) {
        let dx = fusion.backward(params, &tape, d_fused, sink.params, sink.emb.is_some());
        if let (Some(d_emb), Some(dx)) = (sink.emb.as_deref_mut(), dx) {
            // Only the slots read; the others were constant zeros.
            let dx = dx.into_shape_with_order(x_dim).expect("n·M·E values");
            for ((k, m), _) in present.indexed_iter().filter(|&(_, &kept)| kept) {
                let mut dst = d_emb.slice_mut(s![rows[k], m, ..]);
                dst += &dx.slice(s![k, m, ..]);
            }
        }
    }
    loss
}
