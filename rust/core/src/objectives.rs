//! The training objectives and their gradients.
//!
//! Every objective reads modality embeddings `emb [B, M, E]` (absent slots
//! zero) with their presence mask `[B, M]` and returns its loss; given a
//! [`GradSink`] it also accumulates `weight · ∂loss/∂θ` into the parameter
//! gradients and `weight · ∂loss/∂emb` into the embedding gradient (when the
//! embeddings came from the encoders and are therefore trainable).
//!
//! Notation: `e_m(r)` is modality `m`'s embedding in row (event) `r`;
//! `R_ij` the rows where modalities `i` and `j` are both present.
//!
//! - **seed_consistency** (the original's `compute_loss`, now differentiable):
//!   `L = (1/B) Σ_r (1 − reward_r) · (1/E) ‖fuse(e(r)) − f_r‖²`, with `f_r`
//!   the recorded fused embedding, over the `B` rows with at least one
//!   modality present. Trains the fusion network (and the encoders when the
//!   embeddings are encoded from inputs).
//! - **contrastive** (symmetric InfoNCE): for every modality pair `i < j` with
//!   `n = |R_ij| ≥ 2`, logits `S_rs = e_i(r) · e_j(s) / τ` over `r, s ∈ R_ij`;
//!   `L_ij = ½ [ (1/n) Σ_r −log softmax_s(S_r·)_r + (1/n) Σ_s −log softmax_r(S_·s)_s ]`;
//!   `L` = mean of `L_ij` over those pairs — with `config.contrastive_pair_power
//!   = p < 1` their power mean `(mean L_ij^p)^(1/p)` (`p = 0`: the geometric
//!   mean), see `power_mean`. Trains the encoders. With
//!   `config.contrastive_neighbors = k > 0` and encoded inputs, row `r`'s
//!   target is `1 − α` on itself and `α` (`config.contrastive_neighbor_weight`)
//!   shared by its `k` input-space neighbours among `R_ij` (see
//!   [`input_neighbors`]), for the row terms and, likewise, the column terms.
//! - **binding** (binary cross-entropy on binder logits `z = logit(a, b)`):
//!   for every ordered pair `i ≠ j` with `n = |R_ij| ≥ 2`, positives
//!   `(e_i(r_k), e_j(r_k))` and negatives `(e_i(r_k), e_j(r_{(k+s) mod n}))`
//!   with one random shift `s ∈ [1, n)` per pair (so the second side always
//!   comes from another event of the batch);
//!   `L = mean over all examples of softplus(−z)` (positives) / `softplus(z)`
//!   (negatives). Trains the binder and the encoders.
//! - **cross_modal**: in every row with at least two modalities present, one
//!   present modality `d` is dropped at random; `q = fuse(remainder)`,
//!   `p = q + attend(q, remainder)` (a residual connection, so the fused
//!   remainder itself is pulled towards the missing modality), and
//!   `L = mean_r (1 − cos(p_r, e_d(r)))`. The target `e_d(r)` is a constant
//!   (stop-gradient): pulling it towards the prediction would let every
//!   embedding collapse to one point, where the loss is trivially 0. Trains
//!   the attention (Q, K, V, O), the fusion network and, through the
//!   remainder, the encoders.
//!
//! - **fused_contrastive** (in [`fused_contrastive`]): symmetric InfoNCE
//!   between the fused embeddings of two random modality subsets of the same
//!   event, against the other events of the batch. Trains the fusion network
//!   and the encoders.
//! - **neighborhood** (in [`neighborhood`]): InfoNCE among one modality's
//!   embeddings of the batch, each row's positives its
//!   `config.neighborhood_neighbors` nearest rows by the inputs. Trains the
//!   encoders; 0 on recorded embeddings (no inputs to find neighbours by).
//! - **reconstruction** (in [`reconstruction`]): from each event's fused
//!   embedding, a linear decoder per modality (`config.reconstruction_decoders`)
//!   predicts the modality's standardised input; the mean squared error per
//!   input column, averaged over the present (row, modality) pairs. Trains
//!   the decoders, the fusion network and the encoders; 0 on recorded
//!   embeddings (no inputs to reconstruct).
//!
//! Random draws (negative shifts, dropped modalities, views) come from a ChaCha8
//! stream fixed by `(seed, counter, objective)` — see [`objective_rng`] — so
//! a checkpoint only has to store the counter.

use crate::error::{Error, Result};
use crate::kernels::{self, threads, Epilogue};
use crate::modality::NUM_MODALITIES;
use crate::nn::ops::{cosine_rows, NORM_EPS};
use crate::nn::{CrossModalBinder, FusionNetwork, LearnedTemperature, ModalityAttention};
use crate::params::{Params, ParamsMut};
use crate::real::Real;
use ndarray::{s, Array1, Array2, Array3, ArrayView1, ArrayView2, ArrayView3, ArrayViewMut2, Axis, CowArray};
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

pub mod fused_contrastive;
pub mod input_neighbors;
pub mod neighborhood;
pub mod reconstruction;
pub use fused_contrastive::fused_contrastive;
pub use neighborhood::neighborhood;
pub use reconstruction::reconstruction;

/// The objectives, in the order of [`ObjectiveWeights`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Objective {
    SeedConsistency = 0,
    Contrastive = 1,
    Binding = 2,
    CrossModal = 3,
    FusedContrastive = 4,
    Neighborhood = 5,
    Reconstruction = 6,
}

pub const NUM_OBJECTIVES: usize = 7;

impl Objective {
    pub const ALL: [Objective; NUM_OBJECTIVES] = [
        Objective::SeedConsistency,
        Objective::Contrastive,
        Objective::Binding,
        Objective::CrossModal,
        Objective::FusedContrastive,
        Objective::Neighborhood,
        Objective::Reconstruction,
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            Objective::SeedConsistency => "seed_consistency",
            Objective::Contrastive => "contrastive",
            Objective::Binding => "binding",
            Objective::CrossModal => "cross_modal",
            Objective::FusedContrastive => "fused_contrastive",
            Objective::Neighborhood => "neighborhood",
            Objective::Reconstruction => "reconstruction",
        }
    }
}

/// Weight of each objective in the total loss (0 = not computed).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ObjectiveWeights(pub [f64; NUM_OBJECTIVES]);

impl ObjectiveWeights {
    pub fn get(&self, o: Objective) -> f64 {
        self.0[o.index()]
    }

    /// Only `o`, with weight 1.
    pub fn only(o: Objective) -> Self {
        let mut w = [0.0; NUM_OBJECTIVES];
        w[o.index()] = 1.0;
        ObjectiveWeights(w)
    }
}

impl Default for ObjectiveWeights {
    /// Contrastive, binding, cross-modal and fused contrastive with weight 1
    /// (seed consistency needs recorded fused embeddings, so it is opt-in;
    /// neighborhood and reconstruction are options, not the original's).
    fn default() -> Self {
        ObjectiveWeights([0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0])
    }
}

/// Per-objective losses (`None` where the weight was 0) and their weighted sum.
#[derive(Debug, Clone, PartialEq)]
pub struct Losses<T> {
    pub values: [Option<T>; NUM_OBJECTIVES],
    pub total: T,
}

impl<T: Copy> Losses<T> {
    pub fn get(&self, o: Objective) -> Option<T> {
        self.values[o.index()]
    }
}

/// Where an objective's gradients go.
pub struct GradSink<'a, 'l, T> {
    /// Parameter gradients (accumulated).
    pub params: &'a mut ParamsMut<'l, T>,
    /// Gradient on the embeddings `[B, M, E]`, when they are trainable.
    pub emb: Option<&'a mut Array3<T>>,
    /// The objective's weight: gradients are of `weight · loss`.
    pub weight: T,
    /// The objective's learned temperature, which receives `∂/∂ log τ`
    /// (contrastive objectives only; `None`: fixed).
    pub log_temperature: Option<LearnedTemperature>,
}

/// The random stream of `objective` at gradient computation `counter` of a
/// model seeded with `seed`. Independent streams per objective, so turning
/// one objective off does not change another's draws.
pub fn objective_rng(seed: u64, counter: u64, objective: Objective) -> ChaCha8Rng {
    let key = seed.wrapping_add(0x9E37_79B9_7F4A_7C15u64.wrapping_mul(objective.index() as u64 + 1));
    let mut rng = ChaCha8Rng::seed_from_u64(key);
    rng.set_stream(counter);
    rng
}

/// Refuses, before any work, a batch whose `[B, B]` contrastive logits
/// cannot fit in memory: the largest temporaries of a training step (each
/// contrastive pair computed at once holds one, up to one pair per thread,
/// and up to three when its logits span too widely for one shift; the same
/// for fused_contrastive; neighborhood holds two, one modality at a time).
/// Larger batches are refused rather than computed
/// in blocks: accumulate the gradients of smaller ones with `backward`.
pub fn check_batch_memory<T>(batch: usize, weights: &ObjectiveWeights) -> Result<()> {
    let uses = |o| weights.get(o) > 0.0;
    if !(uses(Objective::Contrastive) || uses(Objective::FusedContrastive) || uses(Objective::Neighborhood)) {
        return Ok(());
    }
    let pairs = NUM_MODALITIES * (NUM_MODALITIES - 1) / 2;
    let matrices = 3 * threads::num_threads().clamp(1, pairs);
    let what = format!("a batch of {batch} rows: the contrastive objectives' [B, B] logits (up to {matrices} such matrices at once)");
    let cells = batch.checked_mul(batch).and_then(|c| c.checked_mul(matrices)).unwrap_or(usize::MAX);
    crate::memory::check("batch_size", &what, cells, std::mem::size_of::<T>()).map(|_| ()).map_err(|e| match e {
        Error::TooLarge { arg, message } => Error::too_large(arg, format!("{message}; use smaller batches (e.g. accumulate their gradients with backward)")),
        e => e,
    })
}

/// A uniform integer in `0..n` (`n > 0`; the modulo bias is below 2⁻⁵⁰ here).
fn below(rng: &mut impl Rng, n: usize) -> usize {
    (rng.next_u64() % n as u64) as usize
}

/// Rows where modalities `i` and `j` are both present.
fn rows_with_both(mask: ArrayView2<bool>, i: usize, j: usize) -> Vec<usize> {
    (0..mask.nrows()).filter(|&r| mask[[r, i]] && mask[[r, j]]).collect()
}

/// `emb[r, m, :]` for each `(r, m)`, stacked `[N, E]`.
fn gather<T: Real>(emb: ArrayView3<T>, idx: &[(usize, usize)]) -> Array2<T> {
    let mut out = Array2::zeros((idx.len(), emb.len_of(Axis(2))));
    for (mut row, &(r, m)) in out.rows_mut().into_iter().zip(idx) {
        row.assign(&emb.slice(s![r, m, ..]));
    }
    out
}

/// Log-sum-exp of every row and every column of `x [n, n]`, and, when
/// `want_probs`, the softmax over each row `P` and over each column `Q`
/// (both `[n, n]`, indexed `[row, column]`), each row and column shifted by
/// its own maximum: for logits spanning too widely for [`shared_exp`]
/// (e.g. given, unnormalised embeddings).
#[allow(clippy::type_complexity)]
fn softmax_both_ways<T: Real>(x: ArrayView2<T>, want_probs: bool) -> (Array1<T>, Array1<T>, Option<(Array2<T>, Array2<T>)>) {
    let lse_rows = |x: ArrayView2<T>| -> Array1<T> {
        x.rows()
            .into_iter()
            .map(|row| {
                let m = row.iter().copied().fold(T::neg_infinity(), T::max);
                m + row.iter().map(|&v| (v - m).exp()).sum::<T>().ln()
            })
            .collect()
    };
    let row_lse = lse_rows(x);
    let col_lse = lse_rows(x.t());
    let probs = want_probs.then(|| {
        let p = Array2::from_shape_fn(x.dim(), |(r, s)| (x[[r, s]] - row_lse[r]).exp());
        let q = Array2::from_shape_fn(x.dim(), |(r, s)| (x[[r, s]] - col_lse[s]).exp());
        (p, q)
    });
    (row_lse, col_lse, probs)
}

/// Rows per block of the `[n, n]` passes of [`shared_exp`] and
/// [`scale_to_softmaxes`].
const SOFTMAX_BLOCK_ROWS: usize = 64;

/// `f(first row, rows)` on each block of [`SOFTMAX_BLOCK_ROWS`] rows of `s`,
/// on the library's threads when `parallel`; the results in block order.
fn on_row_blocks<T: Real, R: Send>(s: &mut Array2<T>, parallel: bool, f: impl Fn(usize, ArrayViewMut2<T>) -> R + Sync + Send) -> Vec<R> {
    let mut out: Vec<Option<R>> = Vec::new();
    out.resize_with(s.nrows().div_ceil(SOFTMAX_BLOCK_ROWS), || None);
    let blocks: Vec<_> = s.axis_chunks_iter_mut(Axis(0), SOFTMAX_BLOCK_ROWS).zip(out.iter_mut()).enumerate().collect();
    let run = |(k, (block, slot)): (usize, (ArrayViewMut2<T>, &mut Option<R>))| *slot = Some(f(k * SOFTMAX_BLOCK_ROWS, block));
    if parallel {
        threads::for_each_item(blocks, run);
    } else {
        blocks.into_iter().for_each(run);
    }
    out.into_iter().map(|r| r.expect("every block ran")).collect()
}

/// The square logits `s [n, n]` turned into `exp(s − max)` in place, with
/// every row's and every column's sum: one exponential per logit, shared by
/// the row and the column softmax (see [`shared_exp`]).
struct SharedExp<T> {
    max: T,
    row_sums: Vec<T>,
    col_sums: Vec<T>,
}

/// [`SharedExp`] of `s`, in fixed row blocks (the same bits on one thread or
/// many). `None`, with `s` untouched, when the logits span 60 or more: one
/// shift for all would underflow to 0 in f32, so those take
/// [`softmax_both_ways`]. The logits of unit embeddings span at most `2/τ`.
fn shared_exp<T: Real>(s: &mut Array2<T>, parallel: bool) -> Option<SharedExp<T>> {
    let n = s.ncols();
    let spans = on_row_blocks(s, parallel, |_, block| block.iter().fold((T::neg_infinity(), T::infinity()), |(hi, lo), &v| (hi.max(v), lo.min(v))));
    let max = spans.iter().fold(T::neg_infinity(), |m, x| m.max(x.0));
    let min = spans.iter().fold(T::infinity(), |m, x| m.min(x.1));
    if max - min >= T::c(60.0) {
        return None;
    }
    let sums = on_row_blocks(s, parallel, |_, mut block| {
        let mut col = vec![T::zero(); n];
        let rows: Vec<T> = block
            .rows_mut()
            .into_iter()
            .map(|mut row| kernels::exp_row_col_sums(row.as_slice_mut().expect("standard layout"), max, &mut col))
            .collect();
        (rows, col)
    });
    let mut row_sums = Vec::with_capacity(n);
    let mut col_sums = vec![T::zero(); n];
    for (rows, col) in sums {
        row_sums.extend(rows);
        for (c, x) in col_sums.iter_mut().zip(col) {
            *c += x;
        }
    }
    Some(SharedExp { max, row_sums, col_sums })
}

/// `s ← g (P + Q)` from the exponentials [`shared_exp`] left in `s`: the
/// row softmaxes plus the column softmaxes, scaled by `g`.
fn scale_to_softmaxes<T: Real>(s: &mut Array2<T>, exp: &SharedExp<T>, g: T, parallel: bool) {
    let col_scale: Vec<T> = exp.col_sums.iter().map(|&c| g / c).collect();
    on_row_blocks(s, parallel, |r0, mut block| {
        for (mut row, &rs) in block.rows_mut().into_iter().zip(&exp.row_sums[r0..]) {
            let rs = g / rs;
            for (v, cs) in row.as_slice_mut().expect("standard layout").iter_mut().zip(&col_scale) {
                *v *= rs + *cs;
            }
        }
    });
}

/// seed_consistency: see the module documentation. `emb` must have absent
/// slots zeroed; `target [B, E]`, `rewards [B]`. Rows with no modality
/// present are skipped (there is nothing to fuse; the per-event API refuses
/// such events) and the mean runs over the others.
pub fn seed_consistency<T: Real>(
    fusion: &FusionNetwork,
    params: Params<T>,
    emb: ArrayView3<T>,
    mask: ArrayView2<bool>,
    target: ArrayView2<T>,
    rewards: ArrayView1<T>,
    sink: Option<&mut GradSink<T>>,
) -> T {
    let rows: Vec<usize> = (0..mask.nrows()).filter(|&r| mask.row(r).iter().any(|&p| p)).collect();
    if rows.is_empty() {
        return T::zero();
    }
    let (n, e) = (rows.len(), emb.len_of(Axis(2)));
    let x_dim = (n, NUM_MODALITIES, e);
    let x = emb.select(Axis(0), &rows).into_shape_with_order((n, NUM_MODALITIES * e)).expect("n·M·E values");
    let present = mask.select(Axis(0), &rows);
    let tape = fusion.forward_train_masked(params, x, present.as_slice());
    let diff = &tape.out - &target.select(Axis(0), &rows);
    let factor = rewards.select(Axis(0), &rows).mapv(|r| T::one() - r); // [n]
    let mse = diff.map_axis(Axis(1), |d| d.dot(&d)) / T::c(e as f64);
    let loss = (&mse * &factor).sum() / T::c(n as f64);
    if let Some(sink) = sink {
        let scale = sink.weight * T::c(2.0 / (e * n) as f64);
        let d_out = &diff * &(factor * scale).insert_axis(Axis(1));
        let dx = fusion.backward(params, &tape, d_out, sink.params, sink.emb.is_some());
        if let (Some(d_emb), Some(dx)) = (sink.emb.as_deref_mut(), dx) {
            let dx = dx.into_shape_with_order(x_dim).expect("n·M·E values");
            for (k, &r) in rows.iter().enumerate() {
                let mut dst = d_emb.index_axis_mut(Axis(0), r);
                dst += &dx.index_axis(Axis(0), k);
            }
        }
    }
    loss
}

/// Extra positives of `contrastive`: each batch row's neighbours (batch
/// rows, see [`input_neighbors`]) and the target mass `weight` they share.
#[derive(Debug, Clone, Copy)]
pub struct Neighbors<'a> {
    pub rows: &'a [Vec<usize>],
    pub weight: f64,
}

/// contrastive: see the module documentation.
///
/// Per pair `(i, j)`: the logits `S = A Bᵀ / τ` (`A`, `B` the two
/// modalities' rows, `[n, E]`), one exponential per logit shared by the row
/// and the column softmax, and the gradient `dS = c (P + Q − 2I)` turned into
/// `dA = dS B`, `dB = dSᵀ A` — every pass over `[n, n]` split into fixed row
/// blocks on the library's threads. Small pairs run in parallel instead, one
/// pair per task. Gradients are added to the embeddings in pair order, so
/// the result does not depend on the number of threads. A learned
/// temperature gets `∂/∂ log τ = −Σ_pairs ⟨A, dA⟩` (see
/// [`crate::nn::temperature`]), also summed in pair order. With
/// `pair_power < 1` the pairs are combined by their power mean: every
/// pair's results are kept until all are known, then each pair's gradients
/// are scaled by its `power_mean` factor.
pub fn contrastive<T: Real>(
    emb: ArrayView3<T>,
    mask: ArrayView2<bool>,
    temperature: T,
    neighbors: Option<Neighbors<'_>>,
    pair_power: f64,
    mut sink: Option<&mut GradSink<T>>,
) -> T {
    let pairs: Vec<(usize, usize, Vec<usize>)> = (0..NUM_MODALITIES)
        .flat_map(|i| (i + 1..NUM_MODALITIES).map(move |j| (i, j)))
        .map(|(i, j)| (i, j, rows_with_both(mask, i, j)))
        .filter(|(_, _, rows)| rows.len() >= 2)
        .collect();
    if pairs.is_empty() {
        return T::zero();
    }
    let inv_tau = T::one() / temperature;
    let per_pair = T::one() / T::c(pairs.len() as f64);
    // d total / dS of one pair's logits is `coef · (P + Q − 2I)`, `coef = w / (2 |pairs| n)`.
    let learned = sink.as_ref().and_then(|s| s.log_temperature);
    let weight = sink.as_ref().filter(|s| s.emb.is_some() || learned.is_some()).map(|s| s.weight * T::c(0.5) * per_pair);
    let batch = emb.len_of(Axis(0));
    let term = |(i, j, rows): &(usize, usize, Vec<usize>), inside: bool| {
        let side = |m: usize| -> CowArray<T, ndarray::Ix2> {
            let all = emb.index_axis(Axis(1), m);
            if rows.len() == batch {
                CowArray::from(all)
            } else {
                CowArray::from(all.select(Axis(0), rows))
            }
        };
        let a = side(*i);
        let targets = neighbors.map(|nb| input_neighbors::pair_targets(rows, nb.rows, batch, T::c(nb.weight)));
        let (loss, grads) = contrastive_pair(a.view(), side(*j).view(), inv_tau, weight, inside, targets.as_deref());
        let d_log_tau = match (&grads, learned) {
            (Some((da, _)), Some(_)) => -a.iter().zip(da.iter()).fold(T::zero(), |acc, (&x, &g)| acc + x * g),
            _ => T::zero(),
        };
        (loss, grads, d_log_tau)
    };
    let large = pairs.iter().any(|(_, _, rows)| rows.len() >= CONTRASTIVE_PARALLEL_ROWS);
    let mut total = T::zero();
    let mut d_log_tau = T::zero();
    // `factor`: the pair's power-mean weight (1 for the arithmetic mean).
    let mut add = |(i, j, rows): &(usize, usize, Vec<usize>), (loss, grads, d_tau): PairResult<T>, factor: T| {
        total += loss * per_pair;
        d_log_tau += d_tau * factor;
        if let (Some(sink), Some((mut da, mut db))) = (sink.as_deref_mut(), grads) {
            let Some(d_emb) = sink.emb.as_deref_mut() else { return };
            if factor != T::one() {
                da *= factor;
                db *= factor;
            }
            for (m, d) in [(*i, da), (*j, db)] {
                let mut dst = d_emb.index_axis_mut(Axis(1), m);
                if rows.len() == batch {
                    dst += &d;
                } else {
                    for (&r, src) in rows.iter().zip(d.rows()) {
                        let mut row = dst.row_mut(r);
                        row += &src;
                    }
                }
            }
        }
    };
    // One pair per thread at a time (a group of pairs per round, so only
    // that many [n, n] buffers and gradients are alive); a round with fewer
    // large pairs than threads splits each pair's passes into row blocks.
    // Pairs of a few dozen rows are not worth the pool at all.
    let tiny = pairs.iter().all(|(_, _, rows)| rows.len() < CONTRASTIVE_POOL_ROWS);
    let group = if large { threads::num_threads() } else { pairs.len() };
    let arithmetic = pair_power == 1.0;
    // The power mean needs every pair's loss before any gradient is added.
    let mut kept: Vec<PairResult<T>> = Vec::with_capacity(if arithmetic { 0 } else { pairs.len() });
    for round in pairs.chunks(group.max(1)) {
        let inside = large && round.len() < threads::num_threads();
        let results: Vec<PairResult<T>> = if inside {
            round.iter().map(|pair| term(pair, true)).collect()
        } else if tiny {
            round.iter().map(|pair| term(pair, false)).collect()
        } else {
            threads::map_tasks(round.len(), |p| term(&round[p], false))
        };
        if arithmetic {
            for (pair, result) in round.iter().zip(results) {
                add(pair, result, T::one());
            }
        } else {
            kept.extend(results);
        }
    }
    if !arithmetic {
        let losses: Vec<T> = kept.iter().map(|(loss, _, _)| *loss).collect();
        let (mean, factors) = power_mean(&losses, pair_power);
        for ((pair, result), factor) in pairs.iter().zip(kept).zip(factors) {
            add(pair, result, factor);
        }
        total = mean;
    }
    if let (Some(sink), Some(t)) = (sink, learned) {
        t.accumulate(sink.params, d_log_tau);
    }
    total
}

/// One pair's loss, gradients and `∂/∂ log τ` (already times the weight).
type PairResult<T> = (T, PairGradients<T>, T);

/// Pair powers below this take [`power_mean`]'s f64 path for small `p`.
const SMALL_PAIR_POWER: f64 = 1e-3;
/// Pair powers below this give the geometric mean (see [`power_mean`]).
const GEOMETRIC_PAIR_POWER: f64 = 1e-12;

/// The power mean of order `p ∈ [0, 1)` of the pair losses, `M = (mean
/// L_k^p)^(1/p)` (`p = 0`: `exp(mean log L_k)`, the geometric mean), and each
/// pair's factor `∂M/∂L_k · n = (L_k / M)^(p − 1)`: the pair gradients times
/// these (and the `1/n` the caller applies) are `∂M`. Losses are floored at
/// `1e-12` (an InfoNCE loss is positive; the floor keeps a pair matched to
/// float precision from taking an unbounded factor); a NaN or infinite loss
/// makes `M` NaN or infinite, which the training step refuses.
///
/// For small `p > 0` the direct formula fails in float32: `L^p` rounds to
/// 1 and `M` comes out as exactly 1 (for `p <= 1e-8`, and far off well
/// before). Below [`SMALL_PAIR_POWER`] `M` is computed in f64 as
/// `exp(ln_1p(mean expm1(p ln L)) / p)`, accurate down to `p → 0`; below
/// [`GEOMETRIC_PAIR_POWER`] it is the geometric mean, its limit (the
/// difference, about `p · Var(ln L) / 2` relative, is below f64 precision).
fn power_mean<T: Real>(losses: &[T], p: f64) -> (T, Vec<T>) {
    let floor = T::c(1e-12);
    let losses: Vec<T> = losses.iter().map(|&l| if l.is_nan() || l > floor { l } else { floor }).collect();
    let n = T::c(losses.len() as f64);
    let mean = if p == 0.0 {
        (losses.iter().fold(T::zero(), |acc, &l| acc + l.ln()) / n).exp()
    } else if p < SMALL_PAIR_POWER {
        let ln: Vec<f64> = losses.iter().map(|l| l.to_f64().unwrap_or(f64::NAN).ln()).collect();
        let count = ln.len() as f64;
        let log_mean = if p < GEOMETRIC_PAIR_POWER {
            ln.iter().sum::<f64>() / count
        } else {
            (ln.iter().map(|&l| (p * l).exp_m1()).sum::<f64>() / count).ln_1p() / p
        };
        T::c(log_mean.exp())
    } else {
        let p = T::c(p);
        (losses.iter().fold(T::zero(), |acc, &l| acc + l.powf(p)) / n).powf(T::one() / p)
    };
    let exponent = T::c(p - 1.0);
    let factors = losses.iter().map(|&l| (l / mean).powf(exponent)).collect();
    (mean, factors)
}

/// `(dA, dB)` of one pair of modalities, when gradients are wanted.
type PairGradients<T> = Option<(Array2<T>, Array2<T>)>;

/// Pairs with at least this many rows run one round of pairs per thread
/// at a time (small pairs all run at once).
const CONTRASTIVE_PARALLEL_ROWS: usize = 256;
/// Pairs all smaller than this run on the calling thread.
const CONTRASTIVE_POOL_ROWS: usize = 48;
/// Row `k`'s target distribution over the columns: `(column, mass)`, the
/// masses summing to 1 (the row itself first). `None`: row `k` on column
/// `k` alone, the plain InfoNCE.
type Targets<T> = [Vec<(usize, T)>];

/// `Σ_k Σ_(p, t) t · S[k, p]` (`by_row`) or `t · S[p, k]`: the targets' logits
/// of the row terms and of the column terms (column `k`'s targets are
/// row `k`'s, over the rows).
fn target_logits<T: Real>(s: ArrayView2<T>, targets: Option<&Targets<T>>, by_row: bool) -> T {
    match targets {
        None => s.diag().sum(),
        Some(targets) => targets.iter().enumerate().fold(T::zero(), |acc, (k, list)| {
            list.iter().fold(acc, |acc, &(p, t)| acc + t * if by_row { s[[k, p]] } else { s[[p, k]] })
        }),
    }
}

/// Subtracts `g` times the targets from `d/dS` twice, once as the row terms
/// read them (`T`) and once as the column terms do (`Tᵀ`).
fn subtract_targets<T: Real>(d: &mut Array2<T>, targets: Option<&Targets<T>>, g: T) {
    match targets {
        None => {
            for k in 0..d.nrows() {
                d[[k, k]] -= g + g;
            }
        }
        Some(targets) => {
            for (k, list) in targets.iter().enumerate() {
                for &(p, t) in list {
                    d[[k, p]] -= g * t;
                    d[[p, k]] -= g * t;
                }
            }
        }
    }
}

/// One pair's symmetric InfoNCE `½ (row term + column term)` of the logits
/// `S = a bᵀ / τ` (`a`, `b` `[n, E]`), each row and each column scored
/// against its `targets` (default: itself); with `weight` also `(dA, dB)`
/// of `2 · weight · loss` (`contrastive` passes half the pair's weight).
fn contrastive_pair<T: Real>(
    a: ArrayView2<T>,
    b: ArrayView2<T>,
    inv_tau: T,
    weight: Option<T>,
    parallel: bool,
    targets: Option<&Targets<T>>,
) -> (T, PairGradients<T>) {
    let gemm = |a: ArrayView2<T>, b: ArrayView2<T>, c: ndarray::ArrayViewMut2<T>, epi: Epilogue<T>| {
        if parallel {
            kernels::gemm(a, b, c, epi)
        } else {
            kernels::gemm_serial(a, b, c, epi, None)
        }
    };
    let n = a.nrows();
    let nn = T::c(n as f64);
    let bt = b.t().as_standard_layout().into_owned(); // [E, n]: the product reads it by rows
    // The [n, n] logits live in a pooled buffer: 4 MB a pair at n = 1024.
    let mut s = Array2::from_shape_vec((n, n), kernels::scratch::take(n * n)).expect("n² values");
    gemm(a, bt.view(), s.view_mut(), Epilogue::scaled(inv_tau));
    let (row_targets, col_targets) = (target_logits(s.view(), targets, true), target_logits(s.view(), targets, false));
    let Some(exp) = shared_exp(&mut s, parallel) else {
        let out = contrastive_pair_wide(s.view(), a, b, inv_tau, weight, targets);
        kernels::scratch::give(s.into_raw_vec_and_offset().0);
        return out;
    };
    // −Σ_p t_p log softmax_s(S_r·)_p = lse_r − Σ_p t_p S_rp (targets sum to 1),
    // and likewise per column.
    let row_lse: T = exp.row_sums.iter().map(|&x| exp.max + x.ln()).sum();
    let col_lse: T = exp.col_sums.iter().map(|&x| exp.max + x.ln()).sum();
    let loss = T::c(0.5) * ((row_lse - row_targets) / nn + (col_lse - col_targets) / nn);
    let Some(weight) = weight else {
        kernels::scratch::give(s.into_raw_vec_and_offset().0);
        return (loss, None);
    };
    // dS/τ = g (P + Q) − g (T + Tᵀ) with g = weight / (n τ) (T = I by default).
    let g = weight / nn * inv_tau;
    scale_to_softmaxes(&mut s, &exp, g, parallel);
    subtract_targets(&mut s, targets, g);
    let mut da = Array2::zeros(a.dim());
    let mut db = Array2::zeros(b.dim());
    gemm(s.view(), b, da.view_mut(), Epilogue::store());
    gemm(s.t(), a, db.view_mut(), Epilogue::store());
    kernels::scratch::give(s.into_raw_vec_and_offset().0);
    (loss, Some((da, db)))
}

/// [`contrastive_pair`] when the logits `s` span 60 or more (e.g. given,
/// unnormalised embeddings): separately shifted row and column softmaxes.
fn contrastive_pair_wide<T: Real>(
    s: ArrayView2<T>,
    a: ArrayView2<T>,
    b: ArrayView2<T>,
    inv_tau: T,
    weight: Option<T>,
    targets: Option<&Targets<T>>,
) -> (T, PairGradients<T>) {
    let n = s.nrows();
    let nn = T::c(n as f64);
    let (row_lse, col_lse, probs) = softmax_both_ways(s, weight.is_some());
    let (row_targets, col_targets) = (target_logits(s, targets, true), target_logits(s, targets, false));
    let loss = T::c(0.5) * ((row_lse.sum() - row_targets) / nn + (col_lse.sum() - col_targets) / nn);
    let (Some(weight), Some((p, q))) = (weight, probs) else { return (loss, None) };
    let g = weight / nn * inv_tau;
    let mut d = (p + q) * g;
    subtract_targets(&mut d, targets, g);
    let mut da = Array2::zeros(a.dim());
    let mut db = Array2::zeros(b.dim());
    kernels::gemm(d.view(), b, da.view_mut(), Epilogue::store());
    kernels::gemm(d.t(), a, db.view_mut(), Epilogue::store());
    (loss, Some((da, db)))
}

/// binding: see the module documentation.
pub fn binding<T: Real>(
    binder: &CrossModalBinder,
    params: Params<T>,
    emb: ArrayView3<T>,
    mask: ArrayView2<bool>,
    rng: &mut impl Rng,
    sink: Option<&mut GradSink<T>>,
) -> T {
    // Examples as pairs of rows of `emb` seen as [B·M, E]: each positive
    // (label 1) followed by its negative (label 0).
    let mut pairs = Vec::new();
    for (i, j, rows, shift) in draw_shifts(mask, rng) {
        let n = rows.len();
        for (k, &r) in rows.iter().enumerate() {
            pairs.push((r * NUM_MODALITIES + i, r * NUM_MODALITIES + j));
            pairs.push((r * NUM_MODALITIES + i, rows[(k + shift) % n] * NUM_MODALITIES + j));
        }
    }
    if pairs.is_empty() {
        return T::zero();
    }
    let (batch, e) = (emb.len_of(Axis(0)), emb.len_of(Axis(2)));
    let x = emb.to_shape((batch * NUM_MODALITIES, e)).expect("[B, M, E] is reshapeable");
    let factors = binder.factors(params, x.view());
    let c = params.vector(binder.bias)[0];
    let z: Vec<T> = pairs.iter().map(|&(a, b)| binder.pair_logit(&factors, x.view(), a, b, c)).collect();
    let count = T::c(pairs.len() as f64);
    let positive = |k: usize| k.is_multiple_of(2);
    // softplus(±z) and σ(z) share one exponential, e^{−|z|} (the same
    // operations as `softplus` and `sigmoid`, so the same values).
    let decay: Vec<T> = z.iter().map(|&z| (-z.abs()).exp()).collect();
    let softplus_of = |x: T, e: T| x.max(T::zero()) + e.ln_1p();
    let loss = z
        .iter()
        .zip(&decay)
        .enumerate()
        .fold(T::zero(), |acc, (k, (&z, &e))| acc + if positive(k) { softplus_of(-z, e) } else { softplus_of(z, e) })
        / count;
    if let Some(sink) = sink {
        let scale = sink.weight / count;
        let sigmoid_of = |z: T, e: T| if z >= T::zero() { T::one() / (T::one() + e) } else { e / (T::one() + e) };
        let dz: Vec<T> = z
            .iter()
            .zip(&decay)
            .enumerate()
            .map(|(k, (&z, &e))| (sigmoid_of(z, e) - if positive(k) { T::one() } else { T::zero() }) * scale)
            .collect();
        let dx = binder.pairs_backward(params, x.view(), &factors, &pairs, &dz, sink.params);
        if let Some(d_emb) = sink.emb.as_deref_mut() {
            *d_emb += &dx.into_shape_with_order((batch, NUM_MODALITIES, e)).expect("B·M·E values");
        }
    }
    loss
}

/// binding's draws: for every ordered modality pair `(i, j)`, `i ≠ j`, with
/// at least two rows having both (in that order: `i` outer, `j` inner), the
/// rows `R_ij` and the shift `s ∈ [1, n)` of its negatives.
pub fn draw_shifts(mask: ArrayView2<bool>, rng: &mut impl Rng) -> Vec<(usize, usize, Vec<usize>, usize)> {
    let mut out = Vec::new();
    for i in 0..NUM_MODALITIES {
        for j in (0..NUM_MODALITIES).filter(|&j| j != i) {
            let rows = rows_with_both(mask, i, j);
            let n = rows.len();
            if n < 2 {
                continue;
            }
            let shift = 1 + below(rng, n - 1);
            out.push((i, j, rows, shift));
        }
    }
    out
}

/// The rows cross_modal uses (at least two modalities present) and the
/// modality dropped in each, drawn uniformly among the present ones.
pub fn draw_dropped(mask: ArrayView2<bool>, rng: &mut impl Rng) -> (Vec<usize>, Vec<usize>) {
    let rows: Vec<usize> = (0..mask.nrows()).filter(|&r| mask.row(r).iter().filter(|&&p| p).count() >= 2).collect();
    let dropped = rows
        .iter()
        .map(|&r| {
            let mut present = (0..NUM_MODALITIES).filter(|&m| mask[[r, m]]);
            let count = present.clone().count();
            present.nth(below(rng, count)).expect("below count")
        })
        .collect();
    (rows, dropped)
}

/// cross_modal: see the module documentation.
pub fn cross_modal<T: Real>(
    fusion: &FusionNetwork,
    attention: &ModalityAttention,
    params: Params<T>,
    emb: ArrayView3<T>,
    mask: ArrayView2<bool>,
    rng: &mut impl Rng,
    sink: Option<&mut GradSink<T>>,
) -> T {
    let (rows, dropped) = draw_dropped(mask, rng);
    let target_idx: Vec<(usize, usize)> = rows.iter().zip(&dropped).map(|(&r, &d)| (r, d)).collect();
    let target = gather(emb, &target_idx);
    cross_modal_given(fusion, attention, params, emb, mask, &rows, &dropped, target.view(), sink)
}

/// cross_modal with the draws and the targets `[n, E]` given; the targets
/// are constants here (the stop-gradient), whatever they were computed from.
#[allow(clippy::too_many_arguments)]
pub fn cross_modal_given<T: Real>(
    fusion: &FusionNetwork,
    attention: &ModalityAttention,
    params: Params<T>,
    emb: ArrayView3<T>,
    mask: ArrayView2<bool>,
    rows: &[usize],
    dropped: &[usize],
    target: ArrayView2<T>,
    sink: Option<&mut GradSink<T>>,
) -> T {
    if rows.is_empty() {
        return T::zero();
    }
    let n = rows.len();
    let (m, e) = (NUM_MODALITIES, emb.len_of(Axis(2)));
    let mut rest = emb.select(Axis(0), rows); // [n, M, E]
    let mut rest_mask = mask.select(Axis(0), rows);
    for (k, &d) in dropped.iter().enumerate() {
        rest.slice_mut(s![k, d, ..]).fill(T::zero());
        rest_mask[[k, d]] = false;
    }
    let present = rest_mask.as_standard_layout().into_owned();
    // The fusion tape keeps the remainder (its input) as [n, M·E]: no copy.
    let rest = rest.into_shape_with_order((n, m * e)).expect("n·M·E values");
    let fused = fusion.forward_train_masked(params, rest, present.as_slice());
    let rest = fused.input.view().into_shape_with_order((n, m, e)).expect("n·M·E values");
    let query = fused.out.view();
    let att = attention.forward_train(params, query, rest, rest_mask.view());
    let pred = &query + &att.attended;
    let nn = T::c(n as f64);
    let scale = sink.as_ref().map_or(T::zero(), |s| s.weight) / nn;
    let (loss_sum, d_pred) = cosine_distance(pred.view(), target, scale);
    let loss = loss_sum / nn;
    if let Some(sink) = sink {
        let (d_query_att, d_rest_att) = attention.backward(params, query, rest, &att, d_pred.view(), sink.params);
        let d_query = d_pred + d_query_att;
        let dx = fusion.backward(params, &fused, d_query, sink.params, sink.emb.is_some());
        if let (Some(d_emb), Some(dx)) = (sink.emb.as_deref_mut(), dx) {
            let d_rest = dx.into_shape_with_order((n, m, e)).expect("n·M·E values") + d_rest_att;
            for (k, &r) in rows.iter().enumerate() {
                let mut dst = d_emb.index_axis_mut(Axis(0), r);
                let src = d_rest.index_axis(Axis(0), k);
                for slot in (0..m).filter(|&slot| rest_mask[[k, slot]]) {
                    let mut d = dst.index_axis_mut(Axis(0), slot);
                    d += &src.index_axis(Axis(0), slot);
                }
            }
        }
    }
    loss
}

/// `Σ_rows (1 − cos(p_r, t_r))` and its gradient on `p` times `scale`:
/// `d(1 − cos)/dp = −(t / (max(‖p‖, ε) max(‖t‖, ε)) − cos · p / ‖p‖²)` (the
/// second term vanishes on the norm floor, where `p / ε` is linear in `p`).
fn cosine_distance<T: Real>(p: ArrayView2<T>, t: ArrayView2<T>, scale: T) -> (T, Array2<T>) {
    let (cos, np, nt) = cosine_rows(p, t);
    let eps = T::c(NORM_EPS);
    let mut d_p = Array2::zeros(p.dim());
    for k in 0..p.nrows() {
        let (pn, tn) = (np[k], nt[k].max(eps));
        let mut d = d_p.row_mut(k);
        d.scaled_add(-scale / (pn.max(eps) * tn), &t.row(k));
        if pn > eps {
            d.scaled_add(scale * cos[k] / (pn * pn), &p.row(k));
        }
    }
    (cos.mapv(|c| T::one() - c).sum(), d_p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit_rows(n: usize, e: usize, seed: u64) -> Array2<f64> {
        let mut state = seed;
        let mut x = Array2::from_shape_simple_fn((n, e), || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        });
        for mut row in x.rows_mut() {
            let norm = row.dot(&row).sqrt();
            row /= norm;
        }
        x
    }

    #[test]
    fn power_mean_of_pair_losses() {
        let losses = [0.5, 2.0, 8.0];
        let (m, f) = power_mean(&losses, 0.0);
        assert!((m - 2.0f64).abs() < 1e-12, "geometric mean {m}");
        assert!(f.iter().zip(&losses).all(|(f, l)| (f - m / l).abs() < 1e-12), "factors M / L: {f:?}");
        let (half, f) = power_mean(&losses, 0.5);
        let want = ((0.5f64.sqrt() + 2.0f64.sqrt() + 8.0f64.sqrt()) / 3.0).powi(2);
        assert!((half - want).abs() < 1e-12 && (m..10.0 / 3.0).contains(&half), "{half} between the geometric and arithmetic means");
        // The factors are n ∂M/∂L_k (finite differences).
        for k in 0..3 {
            let shifted = |d: f64| {
                let mut l = losses;
                l[k] += d;
                power_mean(&l, 0.5).0
            };
            let numeric = 3.0 * (shifted(1e-6) - shifted(-1e-6)) / 2e-6;
            assert!((numeric - f[k]).abs() < 1e-6, "pair {k}: {numeric} vs {}", f[k]);
        }
        // Near p = 0 the power mean tends to the geometric mean.
        assert!((power_mean(&losses, 1e-9).0 - 2.0f64).abs() < 1e-6);
        // In float32 too, for every small p (the direct formula gave exactly 1
        // from p = 1e-8 down): as the f64 formula (the geometric mean at the
        // smallest p, where f64's own L^p rounds to 1 as well).
        let losses32 = [0.5f32, 2.0, 8.0];
        for p in [1e-45, 1e-30, 1e-12, 1e-9, 1e-7, 1e-5, 1e-4, 9.99e-4] {
            let want = if p < 1e-9 { 2.0 } else { ((0.5f64.powf(p) + 2.0f64.powf(p) + 8.0f64.powf(p)) / 3.0).powf(1.0 / p) };
            let got = power_mean(&losses32, p).0;
            assert!((f64::from(got) - want).abs() < 1e-5 * want, "p = {p}: {got}, expected {want}");
        }
        let (_, f) = power_mean(&losses32, 1e-9);
        assert!(f.iter().zip(&losses32).all(|(f, l)| (f - 2.0 / l).abs() < 1e-5), "factors M / L: {f:?}");
        let big = [f32::INFINITY, 1.0];
        assert!(!power_mean(&big, 1e-5).0.is_finite() && power_mean(&[f32::NAN, 1.0], 1e-5).0.is_nan());
        // A pair at zero loss takes the floor; a NaN or infinite one is not hidden.
        let (m, f) = power_mean(&[0.0f64, 1.0], 0.5);
        assert!(m.is_finite() && f.iter().all(|f| f.is_finite()));
        assert!(power_mean(&[f64::NAN, 1.0], 0.5).0.is_nan() && power_mean(&[f64::NAN, 1.0], 0.0).0.is_nan());
        assert!(!power_mean(&[f64::INFINITY, 1.0], 0.5).0.is_finite());
        assert!(!power_mean(&[f32::INFINITY, 1.0], 0.0).0.is_finite());
    }

    /// The one-exponential pass over row blocks (serial or on the pool)
    /// against the separately shifted row and column softmaxes, on a pair
    /// large enough for several row blocks.
    #[test]
    fn contrastive_pair_paths_agree() {
        let (a, b) = (unit_rows(300, 16, 1), unit_rows(300, 16, 2));
        let inv_tau = 1.0 / 0.2;
        let (serial_loss, serial) = contrastive_pair(a.view(), b.view(), inv_tau, Some(0.7), false, None);
        let (parallel_loss, parallel) = contrastive_pair(a.view(), b.view(), inv_tau, Some(0.7), true, None);
        assert_eq!(serial_loss, parallel_loss);
        assert_eq!(serial, parallel, "row blocks give the same bits on one thread or many");
        let mut s = Array2::zeros((300, 300));
        kernels::gemm(a.view(), b.t(), s.view_mut(), Epilogue::scaled(inv_tau));
        let (wide_loss, wide) = contrastive_pair_wide(s.view(), a.view(), b.view(), inv_tau, Some(0.7), None);
        assert!((serial_loss - wide_loss).abs() < 1e-12 * wide_loss.abs(), "{serial_loss} vs {wide_loss}");
        let ((da, db), (wa, wb)) = (serial.unwrap(), wide.unwrap());
        let scale = wa.iter().chain(wb.iter()).fold(0.0f64, |m, v| m.max(v.abs()));
        assert!((&da - &wa).iter().chain((&db - &wb).iter()).all(|d| d.abs() < 1e-12 * scale));
        let (loss_only, none) = contrastive_pair(a.view(), b.view(), inv_tau, None, false, None);
        assert_eq!(loss_only, serial_loss);
        assert!(none.is_none());
    }

    /// Soft targets: the identity targets give the plain loss, the fast and
    /// the wide path agree, and the gradient matches finite differences.
    #[test]
    fn contrastive_pair_with_targets() {
        let (n, inv_tau) = (40, 1.0 / 0.3);
        let (a, b) = (unit_rows(n, 8, 3), unit_rows(n, 8, 4));
        let identity: Vec<Vec<(usize, f64)>> = (0..n).map(|k| vec![(k, 1.0)]).collect();
        let plain = contrastive_pair(a.view(), b.view(), inv_tau, Some(1.0), false, None);
        let same = contrastive_pair(a.view(), b.view(), inv_tau, Some(1.0), false, Some(&identity));
        let close = |x: &Array2<f64>, y: &Array2<f64>| (x - y).iter().all(|d| d.abs() < 1e-14);
        let ((pa, pb), (sa, sb)) = (plain.1.unwrap(), same.1.unwrap());
        assert!((plain.0 - same.0).abs() < 1e-12 && close(&pa, &sa) && close(&pb, &sb));
        // Row k: 0.8 on itself, 0.2 shared by the next two rows (asymmetric on purpose).
        let targets: Vec<Vec<(usize, f64)>> = (0..n).map(|k| vec![(k, 0.8), ((k + 1) % n, 0.1), ((k + 2) % n, 0.1)]).collect();
        let (loss, grads) = contrastive_pair(a.view(), b.view(), inv_tau, Some(0.5), false, Some(&targets));
        let (da, db) = grads.unwrap();
        let mut s = Array2::zeros((n, n));
        kernels::gemm(a.view(), b.t(), s.view_mut(), Epilogue::scaled(inv_tau));
        let (wide_loss, wide) = contrastive_pair_wide(s.view(), a.view(), b.view(), inv_tau, Some(0.5), Some(&targets));
        assert!((loss - wide_loss).abs() < 1e-12 * loss.abs());
        let (wa, wb) = wide.unwrap();
        assert!((&da - &wa).iter().chain((&db - &wb).iter()).all(|d| d.abs() < 1e-12));
        let h = 1e-6;
        let loss_at = |a: &Array2<f64>, b: &Array2<f64>| contrastive_pair(a.view(), b.view(), inv_tau, None, false, Some(&targets)).0;
        for (i, j) in [(0, 0), (7, 3), (39, 7)] {
            for (side, analytic) in [(0, da[[i, j]]), (1, db[[i, j]])] {
                let shifted = |delta: f64| {
                    let (mut a2, mut b2) = (a.clone(), b.clone());
                    if side == 0 { a2[[i, j]] += delta } else { b2[[i, j]] += delta }
                    loss_at(&a2, &b2)
                };
                let numeric = (shifted(h) - shifted(-h)) / (2.0 * h);
                assert!((numeric - analytic).abs() < 1e-7, "side {side} ({i}, {j}): {numeric} vs {analytic}");
            }
        }
    }
}
