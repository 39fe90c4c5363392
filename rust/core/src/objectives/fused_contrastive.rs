//! fused_contrastive: InfoNCE between the fused embeddings of two random
//! modality subsets ("views") of each event, against the other events of the
//! batch, with the event's nearest neighbours counted as positives too.
//!
//! Rows `R`: those with at least one modality present (`n = |R| ≥ 2`).
//!
//! - **Views.** For each row `r`, two subsets `A_r`, `B_r` of its present
//!   modalities, drawn independently: each present modality is kept with
//!   probability ½; a view left empty keeps one present modality drawn
//!   uniformly. `u_r = fuse(e(r) on A_r)`, `v_r = fuse(e(r) on B_r)` (the
//!   other slots zeroed, as for absent modalities).
//! - **Positives.** `P_r = {r} ∪ N_k(r)`, with `N_k(r)` the `k =
//!   config.fused_neighbors` other rows most similar to `r` by
//!   `sim(r, q) = mean over the modalities m present in both of e_m(r)·e_m(q)`
//!   (rows sharing no modality are never neighbours; ties go to the lower
//!   row). The neighbour sets are constants of the batch, like the draws.
//! - **Loss**, with `S_rq = u_r · v_q / τ` (`τ = config.temperature`):
//!
//! ```text
//! L = ½ [ (1/n) Σ_r −(1/|P_r|) Σ_{p∈P_r} log softmax_q(S_r·)_p
//!       + (1/n) Σ_q −(1/|P_q|) Σ_{p∈P_q} log softmax_r(S_·q)_p ]
//! ```
//!
//! With `k = 0` this is the symmetric InfoNCE of the contrastive objective,
//! between two views of one event. Trains the fusion network and, through
//! its input, the encoders: each event gets a fused embedding that tells it
//! apart from the other events, whichever subset of its modalities is
//! present, while events whose modalities look alike stay together.
//!
//! Why the neighbours: with `k = 0` the fusion network learns to tell every
//! event from every other one, similar ones included, and on real data
//! (UCI digits) that *lowers* the 5-NN class accuracy of the fused embedding
//! (see docs/objectives.md); counting the nearest events in the modality
//! embedding space as positives (as NNCLR does) keeps them together.

use super::{below, softmax_both_ways, GradSink};
use crate::modality::NUM_MODALITIES;
use crate::nn::FusionNetwork;
use crate::params::Params;
use crate::real::Real;
use ndarray::{s, Array2, ArrayView2, ArrayView3, Axis};
use rand_core::Rng;

/// What fused_contrastive compares: the rows it uses, the two views of each
/// (`views[v][[k, m]]`: modality `m` of row `rows[k]` is in view `v`), and
/// the positives of each row (`positives[k]`: indices into `rows`, `k` first).
#[derive(Debug, Clone, PartialEq)]
pub struct FusedViews {
    pub rows: Vec<usize>,
    pub views: [Array2<bool>; 2],
    pub positives: Vec<Vec<usize>>,
}

/// The rows (at least one modality present) and their two views, drawn from
/// `rng`: each present modality is kept with probability ½, and a view left
/// empty keeps one present modality drawn uniformly.
pub fn draw_views(mask: ArrayView2<bool>, rng: &mut impl Rng) -> (Vec<usize>, [Array2<bool>; 2]) {
    let rows: Vec<usize> = (0..mask.nrows()).filter(|&r| mask.row(r).iter().any(|&p| p)).collect();
    let empty = || Array2::from_elem((rows.len(), NUM_MODALITIES), false);
    let mut views = [empty(), empty()];
    for (k, &r) in rows.iter().enumerate() {
        let present: Vec<usize> = (0..NUM_MODALITIES).filter(|&m| mask[[r, m]]).collect();
        for view in views.iter_mut() {
            let mut any = false;
            for &m in &present {
                let kept = rng.next_u64() >> 63 == 1;
                view[[k, m]] = kept;
                any |= kept;
            }
            if !any {
                view[[k, present[below(rng, present.len())]]] = true;
            }
        }
    }
    (rows, views)
}

/// `P_k = [k] ++ the `neighbors` rows most similar to row `k`` (indices into
/// `rows`), by the mean over shared present modalities of the embeddings'
/// dot products; rows sharing no modality are never neighbours.
pub fn nearest_positives<T: Real>(emb: ArrayView3<T>, mask: ArrayView2<bool>, rows: &[usize], neighbors: usize) -> Vec<Vec<usize>> {
    let n = rows.len();
    if neighbors == 0 {
        return (0..n).map(|k| vec![k]).collect();
    }
    let mut dots = Array2::<T>::zeros((n, n));
    let mut shared = Array2::<T>::zeros((n, n));
    for m in 0..NUM_MODALITIES {
        let present: Vec<usize> = (0..n).filter(|&k| mask[[rows[k], m]]).collect();
        if present.len() < 2 {
            continue;
        }
        let x = emb.index_axis(Axis(1), m).select(Axis(0), &present.iter().map(|&k| rows[k]).collect::<Vec<_>>());
        let g = x.dot(&x.t());
        for (a, &ka) in present.iter().enumerate() {
            for (b, &kb) in present.iter().enumerate() {
                dots[[ka, kb]] += g[[a, b]];
                shared[[ka, kb]] += T::one();
            }
        }
    }
    (0..n)
        .map(|k| {
            let mut candidates: Vec<(T, usize)> = (0..n)
                .filter(|&q| q != k && shared[[k, q]] > T::zero())
                .map(|q| (dots[[k, q]] / shared[[k, q]], q))
                .collect();
            // Most similar first; equal similarity: lower row first.
            candidates.sort_by(|a, b| b.0.partial_cmp(&a.0).expect("finite similarities").then(a.1.cmp(&b.1)));
            std::iter::once(k).chain(candidates.into_iter().take(neighbors).map(|(_, q)| q)).collect()
        })
        .collect()
}

/// Draws the views from `rng` and finds the positives: everything
/// [`fused_contrastive_given`] needs besides the parameters.
pub fn draw<T: Real>(emb: ArrayView3<T>, mask: ArrayView2<bool>, neighbors: usize, rng: &mut impl Rng) -> FusedViews {
    let (rows, views) = draw_views(mask, rng);
    let positives = nearest_positives(emb, mask, &rows, neighbors);
    FusedViews { rows, views, positives }
}

/// fused_contrastive: see the module documentation. `emb` must have absent
/// slots zeroed.
#[allow(clippy::too_many_arguments)]
pub fn fused_contrastive<T: Real>(
    fusion: &FusionNetwork,
    params: Params<T>,
    emb: ArrayView3<T>,
    mask: ArrayView2<bool>,
    temperature: T,
    neighbors: usize,
    rng: &mut impl Rng,
    sink: Option<&mut GradSink<T>>,
) -> T {
    let drawn = draw(emb, mask, neighbors, rng);
    fused_contrastive_given(fusion, params, emb, &drawn, temperature, sink)
}

/// fused_contrastive with the views and positives given.
pub fn fused_contrastive_given<T: Real>(
    fusion: &FusionNetwork,
    params: Params<T>,
    emb: ArrayView3<T>,
    drawn: &FusedViews,
    temperature: T,
    sink: Option<&mut GradSink<T>>,
) -> T {
    let FusedViews { rows, views, positives } = drawn;
    let n = rows.len();
    if n < 2 {
        return T::zero();
    }
    let e = emb.len_of(Axis(2));
    // Both views in one fusion pass: rows 0..n are view 0, n..2n view 1.
    let mut x = Array2::zeros((2 * n, NUM_MODALITIES * e));
    for (vi, view) in views.iter().enumerate() {
        for (k, &r) in rows.iter().enumerate() {
            let mut dst = x.row_mut(vi * n + k);
            for m in (0..NUM_MODALITIES).filter(|&m| view[[k, m]]) {
                dst.slice_mut(s![m * e..(m + 1) * e]).assign(&emb.slice(s![r, m, ..]));
            }
        }
    }
    let tape = fusion.forward_train(params, x);
    let (u, v) = (tape.out.slice(s![..n, ..]), tape.out.slice(s![n.., ..]));
    let inv_tau = T::one() / temperature;
    let logits = u.dot(&v.t()) * inv_tau; // [n, n], row k: u_k against every v_q
    let (row_lse, col_lse, probs) = softmax_both_ways(logits.view(), sink.is_some());
    let mut loss = T::zero();
    for (k, pos) in positives.iter().enumerate() {
        let share = T::one() / T::c(pos.len() as f64);
        for &p in pos {
            // Row k's positives are columns p; column k's positives are rows p.
            loss += share * ((row_lse[k] - logits[[k, p]]) + (col_lse[k] - logits[[p, k]]));
        }
    }
    let nn = T::c(n as f64);
    let loss = T::c(0.5) * loss / nn;
    if let (Some(sink), Some((p, q))) = (sink, probs) {
        // d/dS of the row terms: (P − T)/n, of the column terms: (Q − Tᵀ)/n,
        // with T_kp = 1/|P_k| for p ∈ P_k (each row of T sums to 1).
        let c = sink.weight * T::c(0.5) / nn;
        let mut d_logits = (p + q) * c;
        for (k, pos) in positives.iter().enumerate() {
            let share = c / T::c(pos.len() as f64);
            for &pp in pos {
                d_logits[[k, pp]] -= share;
                d_logits[[pp, k]] -= share;
            }
        }
        let mut d_out = Array2::zeros((2 * n, e));
        d_out.slice_mut(s![..n, ..]).assign(&(d_logits.dot(&v) * inv_tau));
        d_out.slice_mut(s![n.., ..]).assign(&(d_logits.t().dot(&u) * inv_tau));
        let dx = fusion.backward(params, &tape, d_out, sink.params, sink.emb.is_some());
        if let (Some(d_emb), Some(dx)) = (sink.emb.as_deref_mut(), dx) {
            // Only the kept slots were read; the others were constant zeros.
            for (vi, view) in views.iter().enumerate() {
                for (k, &r) in rows.iter().enumerate() {
                    let src = dx.row(vi * n + k);
                    for m in (0..NUM_MODALITIES).filter(|&m| view[[k, m]]) {
                        let mut dst = d_emb.slice_mut(s![r, m, ..]);
                        dst += &src.slice(s![m * e..(m + 1) * e]);
                    }
                }
            }
        }
    }
    loss
}
