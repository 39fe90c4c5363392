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
//!   config.fused_neighbors` other rows nearest to `r`, in the space
//!   `config.fused_neighbor_space` names: `embeddings` (the default) by
//!   `sim(r, q) = mean over the modalities m present in both of e_m(r)·e_m(q)`;
//!   `inputs` by the rows' encoder inputs, as `input_neighbors` ranks them
//!   (batches of recorded embeddings have no inputs: there the embeddings
//!   decide). Rows sharing no modality are never neighbours; ties go to the
//!   lower row. The neighbour sets are constants of the batch, like the draws.
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
//! embedding space as positives (as NNCLR does) keeps them together. The
//! nearest events by their standardised inputs are steadier positives: they
//! do not move as the embeddings train, and the raw views' neighbourhoods
//! are what a fused embedding should keep at least (docs/objectives.md).

use super::{below, scale_to_softmaxes, shared_exp, softmax_both_ways, GradSink};
use crate::error::{expected_names, Error, Result};
use crate::kernels::{self, threads, Epilogue};
use crate::modality::NUM_MODALITIES;
use crate::nn::FusionNetwork;
use crate::params::Params;
use crate::real::Real;
use ndarray::{s, Array2, ArrayView1, ArrayView2, ArrayView3, ArrayViewMut1, Axis};
use rand_core::Rng;

/// Where fused_contrastive looks for each event's nearest events
/// (`config.fused_neighbor_space`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NeighborSpace {
    /// By the modality embeddings (mean dot product over shared modalities).
    #[default]
    Embeddings,
    /// By the encoder inputs (mean squared difference per column over shared
    /// modalities; see `input_neighbors`).
    Inputs,
}

impl NeighborSpace {
    pub const ALL: [NeighborSpace; 2] = [NeighborSpace::Embeddings, NeighborSpace::Inputs];

    pub fn name(self) -> &'static str {
        match self {
            NeighborSpace::Embeddings => "embeddings",
            NeighborSpace::Inputs => "inputs",
        }
    }

    pub fn from_name(name: &str) -> Result<Self> {
        Self::ALL.iter().copied().find(|k| k.name() == name).ok_or_else(|| {
            Error::invalid(
                "fused_neighbor_space",
                format!("unknown neighbour space {name:?}; expected {}", expected_names(Self::ALL.map(Self::name))),
            )
        })
    }
}

/// The neighbours fused_contrastive counts as positives: the `k` nearest
/// by the embeddings, or given per batch row (nearest first; the inputs').
#[derive(Debug, Clone, Copy)]
pub enum FusedNeighbors<'a> {
    ByEmbeddings(usize),
    Given(&'a [Vec<usize>]),
}

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
        for view in views.iter_mut() {
            draw_subset(mask.row(r), rng, view.row_mut(k));
        }
    }
    (rows, views)
}

/// One random subset of a row's `present` modalities into `kept` (all
/// false on entry): each kept with probability ½, one drawn uniformly when
/// none is. fused_contrastive's views and reconstruction's subsets draw it
/// alike, from their own streams.
pub fn draw_subset(present: ArrayView1<bool>, rng: &mut impl Rng, mut kept: ArrayViewMut1<bool>) {
    let modalities = || (0..NUM_MODALITIES).filter(|&m| present[m]);
    let mut any = false;
    for m in modalities() {
        let keep = rng.next_u64() >> 63 == 1;
        kept[m] = keep;
        any |= keep;
    }
    if !any {
        let m = modalities().nth(below(rng, modalities().count())).expect("below count");
        kept[m] = true;
    }
}

/// `P_k = [k] ++ the `neighbors` rows most similar to row `k`` (indices into
/// `rows`), by the mean over shared present modalities of the embeddings'
/// dot products; rows sharing no modality are never neighbours.
pub fn nearest_positives<T: Real>(emb: ArrayView3<T>, mask: ArrayView2<bool>, rows: &[usize], neighbors: usize) -> Vec<Vec<usize>> {
    let n = rows.len();
    let neighbors = neighbors.min(n.saturating_sub(1)); // no more than the other rows
    if neighbors == 0 {
        return (0..n).map(|k| vec![k]).collect();
    }
    // Per modality: the rows that have it, their embeddings and transposes.
    struct Side<T> {
        /// Row index (into `rows`) → position among the rows with the modality.
        at: Vec<Option<usize>>,
        x: Array2<T>,
        xt: Array2<T>,
        all: bool,
    }
    let sides: Vec<Side<T>> = (0..NUM_MODALITIES)
        .filter_map(|m| {
            let present: Vec<usize> = (0..n).filter(|&k| mask[[rows[k], m]]).collect();
            if present.len() < 2 {
                return None;
            }
            let mut at = vec![None; n];
            for (a, &k) in present.iter().enumerate() {
                at[k] = Some(a);
            }
            let x = emb.index_axis(Axis(1), m).select(Axis(0), &present.iter().map(|&k| rows[k]).collect::<Vec<_>>());
            let xt = x.t().as_standard_layout().into_owned();
            Some(Side { at, x, xt, all: present.len() == n })
        })
        .collect();
    // Blocks of rows, one task each (one task, no pool, for small batches):
    // each block's similarity sums `[block, n]`, modality by modality in
    // order, then each row's `neighbors` best candidates by (similarity
    // descending, row ascending), as a full sort of the candidates would
    // rank them, kept in a short sorted list (one pass over the row).
    const ROWS_PER_TASK: usize = 128;
    let block = |t: usize| -> Vec<Vec<usize>> {
        let (k0, k1) = (t * ROWS_PER_TASK, ((t + 1) * ROWS_PER_TASK).min(n));
        let mut dots = Array2::<T>::zeros((k1 - k0, n));
        let mut shared = Array2::<T>::zeros((k1 - k0, n));
        for side in &sides {
            if side.all {
                // Every row has the modality: its products add straight in.
                kernels::gemm_serial(side.x.slice(s![k0..k1, ..]), side.xt.view(), dots.view_mut(), Epilogue::add(), None);
                shared += T::one();
                continue;
            }
            let mine: Vec<(usize, usize)> = (k0..k1).filter_map(|k| side.at[k].map(|a| (k, a))).collect();
            if mine.is_empty() {
                continue;
            }
            let x = side.x.select(Axis(0), &mine.iter().map(|&(_, a)| a).collect::<Vec<_>>());
            let mut g = Array2::zeros((mine.len(), side.xt.ncols()));
            kernels::gemm_serial(x.view(), side.xt.view(), g.view_mut(), Epilogue::store(), None);
            for (i, &(k, _)) in mine.iter().enumerate() {
                for (q, &b) in side.at.iter().enumerate() {
                    if let Some(b) = b {
                        dots[[k - k0, q]] += g[[i, b]];
                        shared[[k - k0, q]] += T::one();
                    }
                }
            }
        }
        let mut best: Vec<(T, usize)> = Vec::with_capacity(neighbors + 1);
        (k0..k1)
            .map(|k| {
                best.clear();
                let (dk, sk) = (dots.row(k - k0), shared.row(k - k0));
                for q in (0..n).filter(|&q| q != k && sk[q] > T::zero()) {
                    // NaN (from embeddings whose products overflow) ranks
                    // last: the loss of such a batch is refused anyway.
                    let sim = dk[q] / sk[q];
                    let sim = if sim.is_nan() { T::neg_infinity() } else { sim };
                    // Candidates come in row order, so a tie never displaces an earlier row.
                    if best.len() == neighbors && best.last().is_some_and(|&(worst, _)| sim <= worst) {
                        continue;
                    }
                    let at = best.iter().position(|&(other, _)| sim > other).unwrap_or(best.len());
                    best.insert(at, (sim, q));
                    best.truncate(neighbors);
                }
                std::iter::once(k).chain(best.iter().map(|&(_, q)| q)).collect()
            })
            .collect()
    };
    threads::map_tasks(n.div_ceil(ROWS_PER_TASK), block).into_iter().flatten().collect()
}

/// `P_k = [k] ++ row k's given neighbours` (indices into `rows`; `given`
/// is indexed by batch row, and neighbours outside `rows` are left out).
pub fn given_positives(rows: &[usize], given: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let mut at = vec![usize::MAX; given.len()];
    for (k, &r) in rows.iter().enumerate() {
        at[r] = k;
    }
    let index = |q: usize| at.get(q).copied().filter(|&p| p != usize::MAX);
    rows.iter().enumerate().map(|(k, &r)| std::iter::once(k).chain(given[r].iter().filter_map(|&q| index(q))).collect()).collect()
}

/// Draws the views from `rng` and finds the positives: everything
/// [`fused_contrastive_given`] needs besides the parameters.
pub fn draw<T: Real>(emb: ArrayView3<T>, mask: ArrayView2<bool>, neighbors: FusedNeighbors<'_>, rng: &mut impl Rng) -> FusedViews {
    let (rows, views) = draw_views(mask, rng);
    let positives = match neighbors {
        FusedNeighbors::ByEmbeddings(k) => nearest_positives(emb, mask, &rows, k),
        FusedNeighbors::Given(given) => given_positives(&rows, given),
    };
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
    neighbors: FusedNeighbors<'_>,
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
    // Both views in one fusion pass: rows 0..n are view 0, n..2n view 1;
    // the slots a view leaves out are zero (and skipped by the products).
    let mut x = Array2::zeros((2 * n, NUM_MODALITIES * e));
    let mut present = vec![false; 2 * n * NUM_MODALITIES];
    for (vi, view) in views.iter().enumerate() {
        for (k, &r) in rows.iter().enumerate() {
            let row = vi * n + k;
            let mut dst = x.row_mut(row);
            let dst = dst.as_slice_mut().expect("fresh array");
            for m in (0..NUM_MODALITIES).filter(|&m| view[[k, m]]) {
                present[row * NUM_MODALITIES + m] = true;
                let src = emb.slice(s![r, m, ..]);
                for (d, &v) in dst[m * e..(m + 1) * e].iter_mut().zip(src.iter()) {
                    *d = v;
                }
            }
        }
    }
    let tape = fusion.forward_train_masked(params, x, Some(&present));
    let (u, v) = (tape.out.slice(s![..n, ..]), tape.out.slice(s![n.., ..]));
    let inv_tau = T::one() / temperature;
    let vt = v.t().as_standard_layout().into_owned();
    // Row k: u_k against every v_q (a pooled [n, n] buffer, turned into
    // P + Q in place below).
    let mut logits = Array2::from_shape_vec((n, n), kernels::scratch::take::<T>(n * n)).expect("n² values");
    kernels::gemm(u, vt.view(), logits.view_mut(), Epilogue::scaled(inv_tau));
    // Row k's positives are columns p; column k's positives are rows p
    // (read before the softmax overwrites the logits; one flat list).
    let picked: Vec<(T, T)> = positives.iter().enumerate().flat_map(|(k, pos)| pos.iter().map(move |&p| (k, p))).map(|(k, p)| (logits[[k, p]], logits[[p, k]])).collect();
    // `c (P + Q)` (the row softmaxes plus the column softmaxes) is d/dS of
    // the terms without the positives' targets: in the logits' own buffer
    // when one shift suits all logits.
    let nn = T::c(n as f64);
    let c = sink.as_ref().map(|sink| sink.weight * T::c(0.5) / nn);
    let (row_lse, col_lse, d_logits) = match shared_exp(&mut logits, true) {
        Some(exp) => {
            let lse = |sums: &[T]| -> Vec<T> { sums.iter().map(|&x| exp.max + x.ln()).collect() };
            let (row_lse, col_lse) = (lse(&exp.row_sums), lse(&exp.col_sums));
            let d = match c {
                Some(c) => {
                    scale_to_softmaxes(&mut logits, &exp, c, true);
                    Some(logits)
                }
                None => {
                    kernels::scratch::give(logits.into_raw_vec_and_offset().0);
                    None
                }
            };
            (row_lse, col_lse, d)
        }
        None => {
            let (row_lse, col_lse, probs) = softmax_both_ways(logits.view(), c.is_some());
            kernels::scratch::give(logits.into_raw_vec_and_offset().0);
            (row_lse.to_vec(), col_lse.to_vec(), probs.zip(c).map(|((p, q), c)| (p + q) * c))
        }
    };
    let mut loss = T::zero();
    let mut picked = picked.into_iter();
    for (k, pos) in positives.iter().enumerate() {
        let share = T::one() / T::c(pos.len() as f64);
        for (to_column, to_row) in picked.by_ref().take(pos.len()) {
            loss += share * ((row_lse[k] - to_column) + (col_lse[k] - to_row));
        }
    }
    let loss = T::c(0.5) * loss / nn;
    if let (Some(sink), Some(mut d_logits), Some(c)) = (sink, d_logits, c) {
        // d/dS of the row terms: (P − T)/n, of the column terms: (Q − Tᵀ)/n,
        // with T_kp = 1/|P_k| for p ∈ P_k (each row of T sums to 1);
        // `d_logits` holds c (P + Q), c = weight / 2n.
        for (k, pos) in positives.iter().enumerate() {
            let share = c / T::c(pos.len() as f64);
            for &pp in pos {
                d_logits[[k, pp]] -= share;
                d_logits[[pp, k]] -= share;
            }
        }
        let mut d_out = Array2::zeros((2 * n, e));
        kernels::gemm(d_logits.view(), v, d_out.slice_mut(s![..n, ..]), Epilogue::scaled(inv_tau));
        kernels::gemm(d_logits.t(), u, d_out.slice_mut(s![n.., ..]), Epilogue::scaled(inv_tau));
        kernels::scratch::give(d_logits.into_raw_vec_and_offset().0);
        if let Some(t) = sink.log_temperature {
            // ∂L/∂ log τ = −⟨u, ∂L/∂u⟩ (see crate::nn::temperature).
            let d_u = d_out.slice(s![..n, ..]);
            t.accumulate(sink.params, -u.iter().zip(d_u.iter()).fold(T::zero(), |acc, (&x, &g)| acc + x * g));
        }
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
