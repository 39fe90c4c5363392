//! neighborhood: each modality's embeddings keep the events' neighbourhood
//! by their inputs.
//!
//! For every modality `m` with at least two rows `R_m` in the batch:
//! logits `S_rs = e_m(r) · e_m(s) / τ` over `r ≠ s ∈ R_m` (a row is never
//! its own candidate), and row `r`'s target uniform over its input-space
//! neighbours (the batch rows nearest by all their inputs, see
//! [`super::input_neighbors`]; `config.neighborhood_neighbors` of them) that
//! have `m`:
//! `L_m = (1/|R'_m|) Σ_{r ∈ R'_m} [ log Σ_{s ≠ r} exp S_rs − (1/|N_r|) Σ_{q ∈ N_r} S_rq ]`
//! over the rows `R'_m` with at least one such neighbour, and `L` the mean
//! of `L_m` over the modalities that have such rows. `τ` is
//! `config.neighborhood_temperature`, fixed, or by default the contrastive
//! objective's, a constant here (a learned one is learned by `contrastive`:
//! a learned temperature of its own would change the parameter layout of
//! every model that learns temperatures). A softer `τ` than contrastive's
//! learned ≈ 0.04 asks less of each view's neighbourhood, and so costs the
//! alignment less (docs/objectives.md).
//!
//! Why: the contrastive objective aligns the views, and what a view's
//! embedding keeps is what the views share; the strongest views for k-NN
//! (UCI's pixel averages) lose most of their own neighbourhood, and a
//! fusion of aligned embeddings cannot give it back (docs/objectives.md).
//! Neighbours by all the inputs, not by the modality's own: with its own, a
//! weak view's embedding (UCI's Karhunen–Loève coefficients) kept its
//! weaker neighbourhood instead of the one the alignment gave it.
//! It changes no cross-view target, so retrieval keeps the instance
//! positives that `contrastive_neighbors` softens.

use super::GradSink;
use crate::kernels::{self, Epilogue};
use crate::modality::NUM_MODALITIES;
use crate::real::Real;
use ndarray::{Array2, ArrayView2, ArrayView3, Axis};

/// One modality's term: the modality, its batch rows, `L_m` and `∂L_m/∂a`.
type ModalityTerm<T> = (usize, Vec<usize>, T, Option<Array2<T>>);

/// neighborhood: see the module documentation. `neighbors[r]`: batch row
/// `r`'s input-space neighbours (batch rows, nearest first).
pub fn neighborhood<T: Real>(
    emb: ArrayView3<T>,
    mask: ArrayView2<bool>,
    temperature: T,
    neighbors: &[Vec<usize>],
    sink: Option<&mut GradSink<T>>,
) -> T {
    let batch = emb.len_of(Axis(0));
    let inv_tau = T::one() / temperature;
    let want_grads = sink.as_ref().is_some_and(|s| s.emb.is_some());
    let mut terms: Vec<ModalityTerm<T>> = Vec::new();
    for m in 0..NUM_MODALITIES {
        let rows: Vec<usize> = (0..batch).filter(|&r| mask[[r, m]]).collect();
        if rows.len() < 2 {
            continue;
        }
        let mut at = vec![usize::MAX; batch];
        for (k, &r) in rows.iter().enumerate() {
            at[r] = k;
        }
        let targets: Vec<Vec<usize>> =
            rows.iter().map(|&r| neighbors[r].iter().map(|&q| at[q]).filter(|&p| p != usize::MAX).collect()).collect();
        if targets.iter().all(Vec::is_empty) {
            continue;
        }
        let a = emb.index_axis(Axis(1), m).select(Axis(0), &rows);
        let (loss, da) = modality_term(a.view(), &targets, inv_tau, want_grads);
        terms.push((m, rows, loss, da));
    }
    if terms.is_empty() {
        return T::zero();
    }
    let per_modality = T::one() / T::c(terms.len() as f64);
    let loss = terms.iter().fold(T::zero(), |acc, t| acc + t.2) * per_modality;
    if let Some(sink) = sink {
        let scale = sink.weight * per_modality;
        let Some(d_emb) = sink.emb.as_deref_mut() else { return loss };
        for (m, rows, _, da) in terms {
            let da = da.expect("gradients were asked for");
            let mut dst = d_emb.index_axis_mut(Axis(1), m);
            for (&r, src) in rows.iter().zip(da.rows()) {
                dst.row_mut(r).scaled_add(scale, &src);
            }
        }
    }
    loss
}

/// One modality's `L_m` of its rows `a [n, E]` and, when `grads`,
/// `∂L_m/∂a`. `targets[k]`: row `k`'s neighbours (positions in `a`).
fn modality_term<T: Real>(a: ArrayView2<T>, targets: &[Vec<usize>], inv_tau: T, grads: bool) -> (T, Option<Array2<T>>) {
    let n = a.nrows();
    let at = a.t().as_standard_layout().into_owned();
    // The [n, n] logits live in a pooled buffer, as contrastive's do.
    let mut s = Array2::from_shape_vec((n, n), kernels::scratch::take(n * n)).expect("n² values");
    kernels::gemm(a, at.view(), s.view_mut(), Epilogue::scaled(inv_tau));
    let scored = targets.iter().filter(|t| !t.is_empty()).count();
    let count = T::c(scored as f64);
    let mut loss = T::zero();
    // Row by row, `s` becomes `∂L_m/∂S · count`: softmax minus target (0 on
    // the diagonal and on rows without neighbours).
    for (k, (mut row, target)) in s.rows_mut().into_iter().zip(targets).enumerate() {
        if target.is_empty() {
            row.fill(T::zero());
            continue;
        }
        let share = T::one() / T::c(target.len() as f64);
        let targets_logit = target.iter().fold(T::zero(), |acc, &q| acc + row[q]) * share;
        // One exponential per logit: the row becomes its softmax (the event itself 0).
        row[k] = T::neg_infinity();
        let max = row.fold(T::neg_infinity(), |mx, &v| mx.max(v));
        row.mapv_inplace(|v| (v - max).exp());
        let sum = row.sum();
        loss += max + sum.ln() - targets_logit;
        if grads {
            row /= sum;
            for &q in target {
                row[q] -= share;
            }
        }
    }
    let loss = loss / count;
    let da = grads.then(|| {
        // S = A Aᵀ / τ: ∂L/∂A = (G A + Gᵀ A) / τ with G = ∂L/∂S, two products
        // into one result (no [n, n] sum of G and its transpose).
        let scale = inv_tau / count;
        let mut da = Array2::<T>::zeros(a.dim());
        kernels::gemm(s.view(), a, da.view_mut(), Epilogue::scaled(scale));
        kernels::gemm(s.t(), a, da.view_mut(), Epilogue { alpha: scale, ..Epilogue::add() });
        da
    });
    kernels::scratch::give(s.into_raw_vec_and_offset().0);
    (loss, da)
}
