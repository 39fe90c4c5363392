//! Analytic gradients against finite differences in f64 on random
//! combinations of options (`gradients.rs` checks them mostly one at a time).
//!
//! Each draw is seeded and deterministic: a config (binder, heads, encoder
//! hidden layers and output width, shared head, skip path, input and hidden
//! dropout, learned temperatures, residual fusion, contrastive pair power
//! and input neighbours, fused_contrastive's neighbours in either space,
//! input distance, which objectives reach the encoders, weight decay and
//! clipping), an objective mix (zeros included), a batch of 1–6 events
//! (dense inputs with absent modalities, one-modality and all-absent rows;
//! pooled components with confidences; or recorded embeddings with garbage
//! in absent slots), input normalisers, weights moved off their
//! initialisation and a position of the draw counter. Every tensor's
//! analytic gradient from `backward` is compared with the numeric gradient
//! of [`intended_loss`]: the same losses built from the objectives' forward
//! functions, with the stop-gradients `backward` is documented to apply held
//! at their unperturbed values (docs/objectives.md, "Gradients" and
//! "Which objectives train the encoders").
//!
//! Points where the loss is not differentiable are avoided by construction,
//! not by tolerance: a draw with a LeakyReLU pre-activation within
//! [`KINK_MARGIN`] of 0, or a vector to be L2-normalised shorter than
//! [`NORM_MARGIN`] (near the norm's `ε` floor, where `v / max(‖v‖, ε)` is
//! not differentiable: e.g. an encoder input dropped whole at zero biases),
//! is redrawn (a step of the stencil moves either by far less). Neighbour
//! sets and draws are constants of the batch in both the analytic and the
//! reference gradient, so their ties cannot flip. Learned temperatures start
//! well inside their clamp range, or (on purpose) well beyond it, where they
//! get no gradient.
//!
//! Tolerance: [`TOL`] relative per tensor, as in `gradients.rs`, plus the
//! stencil's round-off for a tensor of `n` entries,
//! `ROUNDOFF · |L| · √n / h` (`|L|`: see [`round_off_scale`]), for tensors whose gradient is too small for a
//! relative comparison to mean anything (a missing or wrong term on a tensor
//! the loss reaches lands far above both).

use crate::common::gradcheck::{norm, numeric_gradient, rel_error, Lcg, H, TOL};
use grapheme_multimodal::nn::dropout::dropout_rng;
use grapheme_multimodal::nn::encoder::{pool_components, Dropping, EncoderTape, PoolTape};
use grapheme_multimodal::nn::ops::LEAKY_ALPHA;
use grapheme_multimodal::nn::BinderKind;
use grapheme_multimodal::objectives::fused_contrastive::{self, FusedNeighbors, FusedViews, NeighborSpace};
use grapheme_multimodal::objectives::input_neighbors::{input_neighbors, pooled_rows, InputDistance, RowInputs};
use grapheme_multimodal::objectives::{self, objective_rng, reconstruction, Neighbors, NUM_OBJECTIVES};
use grapheme_multimodal::{
    Config, EmbeddingSource, EncoderInput, LearnableMultiModal, Modality, ModalityInput, Normalizer, Objective, ObjectiveWeights, TrainBatch,
    NUM_MODALITIES,
};
use ndarray::{s, Array1, Array2, Array3, ArrayView2, ArrayView3};
use rand_core::Rng;

/// The closest a LeakyReLU pre-activation may come to its kink: 50 times
/// the stencil's widest step, 2h (a pre-activation moves by the step times
/// an input of order 1).
const KINK_MARGIN: f64 = 1e-4;

/// The shortest vector an L2 normalisation may see (its floor is 1e-8).
const NORM_MARGIN: f64 = 1e-3;

/// The largest power-mean factor `(L_k / M)^(p − 1)` of a contrastive pair
/// a draw may have (see `check_case`).
const MAX_AMPLIFICATION: f64 = 100.0;

/// Round-off of the stencil relative to the losses' magnitude: ≈ 13 ε,
/// several times the largest seen (the run prints the worst share of the
/// tolerance an error took).
const ROUNDOFF: f64 = 3e-15;

/// Draws in `cargo test` (about 6 s in its optimised test profile).
const QUICK_DRAWS: u64 = 60;

/// Draws of the long variant (`cargo test --release -- --ignored`);
/// `GRADIENT_COMBINATION_DRAWS` overrides.
const LONG_DRAWS: u64 = 2000;

fn uniform(rng: &mut Lcg) -> f64 {
    (rng.next() + 1.0) / 2.0
}

fn chance(rng: &mut Lcg, p: f64) -> bool {
    uniform(rng) < p
}

fn pick<T: Copy>(rng: &mut Lcg, options: &[T]) -> T {
    options[((uniform(rng) * options.len() as f64) as usize).min(options.len() - 1)]
}

/// One modality's components: `(x [N, d], rows [N], confidences [N])`.
type Components = (Array2<f64>, Vec<usize>, Option<Vec<f64>>);

/// Where the batch's embeddings come from, owned.
#[allow(clippy::large_enum_variant)] // one per draw: boxing buys nothing
enum Source {
    Dense { xs: [Array2<f64>; NUM_MODALITIES], mask: Array2<bool> },
    Components { batch: usize, parts: [Option<Components>; NUM_MODALITIES] },
    Recorded { emb: Array3<f64>, mask: Array2<bool> },
}

/// One random draw: everything that decides the gradient.
struct Case {
    config: Config,
    weights: ObjectiveWeights,
    source: Source,
    fused: Option<Array2<f64>>,
    rewards: Option<Array1<f64>>,
    normalizers: [Option<Normalizer<f64>>; NUM_MODALITIES],
    counter: u64,
    /// Noise on every weight, to leave the initialisation (every bias
    /// zero); the skip weights, which start at zero, get random values anyway.
    param_noise: f64,
    /// The learned contrastive temperature moved beyond its clamp, where it
    /// gets no gradient.
    temperature_beyond_clamp: bool,
    /// Seeds the skip weights and the noise.
    param_seed: u64,
}

impl Case {
    fn batch(&self) -> TrainBatch<'_, f64> {
        let source = match &self.source {
            Source::Dense { xs, mask } => EmbeddingSource::Inputs(EncoderInput::dense(std::array::from_fn(|m| Some(xs[m].view())), mask.view()).unwrap()),
            Source::Components { batch, parts } => {
                let parts = std::array::from_fn(|m| {
                    parts[m].as_ref().map(|(x, rows, w)| ModalityInput { x: x.view().into(), rows: rows.as_slice().into(), weights: w.as_deref().map(Into::into) })
                });
                EmbeddingSource::Inputs(EncoderInput::components(*batch, parts).unwrap())
            }
            Source::Recorded { emb, mask } => EmbeddingSource::Embeddings { emb: emb.view(), mask: mask.view() },
        };
        TrainBatch { source, fused: self.fused.as_ref().map(|f| f.view()), rewards: self.rewards.as_ref().map(|r| r.view()) }
    }

    fn source_kind(&self) -> &'static str {
        match self.source {
            Source::Dense { .. } => "dense",
            Source::Components { .. } => "components",
            Source::Recorded { .. } => "recorded",
        }
    }

    fn label(&self, draw: u64) -> String {
        let batch = self.batch();
        let mask = training_mask(&batch);
        let rows: Vec<String> = mask.rows().into_iter().map(|r| r.iter().map(|&p| if p { '1' } else { '0' }).collect()).collect();
        format!(
            "draw {draw}: {} batch of {} (mask {}), weights {:?}, counter {}, normalisers {:?}, noise {}, temperature beyond clamp {}\n config {:?}",
            self.source_kind(),
            batch.batch_size(),
            rows.join(" "),
            self.weights.0,
            self.counter,
            self.normalizers.iter().map(Option::is_some).collect::<Vec<_>>(),
            self.param_noise,
            self.temperature_beyond_clamp,
            self.config
        )
    }

    /// The model at the point where the gradients are compared.
    fn model(&self) -> LearnableMultiModal<f64> {
        let mut model = LearnableMultiModal::<f64>::new(self.config.clone()).unwrap();
        for (m, n) in self.normalizers.iter().enumerate() {
            model.set_normalizer(Modality::ALL[m], n.clone()).unwrap();
        }
        let mut state = model.optimizer_state();
        state.rng_counter = self.counter;
        model.set_optimizer_state(state).unwrap();
        let mut rng = Lcg(self.param_seed);
        let specs = model.layout().specs().to_vec();
        let params = model.params_mut();
        for spec in &specs {
            let is_skip = spec.name.ends_with(".skip.weight");
            for v in &mut params[spec.range()] {
                if is_skip {
                    *v = 0.3 * rng.next();
                }
                *v += self.param_noise * rng.next();
            }
            if self.temperature_beyond_clamp && spec.name == "contrastive.log_temperature" {
                params[spec.range()][0] = 0.005f64.ln();
            }
        }
        model
    }
}

fn training_mask(batch: &TrainBatch<f64>) -> Array2<bool> {
    match &batch.source {
        EmbeddingSource::Inputs(input) => input.mask(),
        EmbeddingSource::Embeddings { mask, .. } => mask.to_owned(),
    }
}

fn random_mask(rng: &mut Lcg, batch: usize) -> Array2<bool> {
    let density = pick(rng, &[0.3, 0.6, 0.9]);
    let mut mask = Array2::from_shape_simple_fn((batch, NUM_MODALITIES), || chance(rng, density));
    for mut row in mask.rows_mut() {
        if chance(rng, 0.15) {
            row.fill(false); // an all-absent row
        } else if chance(rng, 0.15) {
            row.fill(false); // a row with one modality
            row[pick(rng, &[0, 1, 2, 3, 4, 5, 6])] = true;
        }
    }
    mask
}

fn draw_case(rng: &mut Lcg) -> Case {
    let embed_dim: usize = pick(rng, &[4, 6]);
    let heads: Vec<usize> = (1..=embed_dim).filter(|&h| embed_dim.is_multiple_of(h)).collect();
    let encoder_hidden: Vec<usize> = (0..pick(rng, &[0, 0, 1, 2])).map(|_| pick(rng, &[3, 4, 5])).collect();
    let shared_head: Vec<usize> = match pick(rng, &[0, 0, 1, 2]) {
        0 => Vec::new(),
        1 => vec![embed_dim],
        _ => vec![pick(rng, &[3, 5]), embed_dim],
    };
    let encoder_output_dim = if shared_head.is_empty() || chance(rng, 0.5) { None } else { Some(pick(rng, &[3, 5])) };
    let encoder_skip = !encoder_hidden.is_empty() && !shared_head.is_empty() && chance(rng, 0.6);
    let fused_neighbors = pick(rng, &[0, 1, 2, 3, 9]);
    let config = Config {
        embed_dim,
        hidden_dim: pick(rng, &[3, 5]),
        num_heads: pick(rng, &heads),
        input_dims: std::array::from_fn(|_| pick(rng, &[1, 2, 3, 4])),
        binder: pick(rng, &[BinderKind::Additive, BinderKind::Bilinear]),
        // 0.012: logits of unit vectors span up to 167, past the contrastive
        // objectives' one-shift softmax (60); inside a learned one's clamp.
        temperature: pick(rng, &[0.012, 0.05, 0.1, 0.3, 0.7]),
        seed: (uniform(rng) * 1e6) as u64,
        fused_neighbors,
        fused_neighbor_space: pick(rng, &NeighborSpace::ALL),
        input_distance: pick(rng, &InputDistance::ALL),
        contrastive_neighbors: pick(rng, &[0, 0, 1, 2, 9]),
        contrastive_neighbor_weight: pick(rng, &[0.0, 0.2, 0.6]),
        neighborhood_neighbors: pick(rng, &[0, 1, 2, 9]),
        neighborhood_temperature: pick(rng, &[None, None, Some(0.05), Some(0.2)]),
        contrastive_pair_power: pick(rng, &[1.0, 1.0, 0.5, 0.3, 0.0, 1e-4, 1e-13]),
        encoder_objectives: std::array::from_fn(|_| chance(rng, 0.75)),
        weight_decay: pick(rng, &[0.0, 0.01]),
        grad_clip: pick(rng, &[None, Some(0.5)]),
        encoder_hidden: encoder_hidden.clone(),
        encoder_output_dim,
        shared_head,
        encoder_input_dropout: pick(rng, &[0.0, 0.0, 0.2, 0.4]),
        encoder_hidden_dropout: if encoder_hidden.is_empty() { 0.0 } else { pick(rng, &[0.0, 0.3]) },
        encoder_skip,
        learnable_temperature: chance(rng, 0.5),
        fusion_residual: pick(rng, &[0.0, 0.0, 0.5, 3.0]),
        reconstruction_decoders: chance(rng, 0.6),
        reconstruction_subsets: chance(rng, 0.5),
        ..Config::default()
    };
    let batch = pick(rng, &[1, 2, 3, 4, 5, 6]);
    let dims = config.input_dims;
    let source = match pick(rng, &[0, 0, 1, 2]) {
        0 => {
            let xs = std::array::from_fn(|m| rng.array2(batch, dims[m]) * 1.5);
            Source::Dense { xs, mask: random_mask(rng, batch) }
        }
        1 => {
            let parts = std::array::from_fn(|m| {
                if chance(rng, 0.3) {
                    return None;
                }
                let rows: Vec<usize> = (0..batch).flat_map(|r| std::iter::repeat_n(r, pick(rng, &[0, 1, 1, 2, 3]))).collect();
                if rows.is_empty() {
                    return None;
                }
                let x = rng.array2(rows.len(), dims[m]) * 1.5;
                // Confidences, some zero: an event whose are all zero takes the plain mean.
                let weights = chance(rng, 0.5).then(|| rows.iter().map(|_| if chance(rng, 0.25) { 0.0 } else { 0.1 + uniform(rng) }).collect());
                Some((x, rows, weights))
            });
            Source::Components { batch, parts }
        }
        _ => {
            let mask = random_mask(rng, batch);
            let mut emb = Array3::from_shape_simple_fn((batch, NUM_MODALITIES, embed_dim), || rng.next());
            for ((r, m), &p) in mask.indexed_iter() {
                if !p {
                    emb.slice_mut(s![r, m, ..]).fill(1e3); // never read
                }
            }
            Source::Recorded { emb, mask }
        }
    };
    let fused = chance(rng, 0.8).then(|| rng.array2(batch, embed_dim));
    let rewards = chance(rng, 0.5).then(|| Array1::from_shape_simple_fn(batch, || rng.next()));
    let mut weights = ObjectiveWeights(std::array::from_fn(|_| if chance(rng, 0.3) { 0.0 } else { 0.2 + 1.8 * uniform(rng) }));
    if fused.is_none() {
        weights.0[Objective::SeedConsistency.index()] = 0.0;
    }
    if !config.reconstruction_decoders {
        weights.0[Objective::Reconstruction.index()] = 0.0; // refused without decoders
    }
    let normalizers = std::array::from_fn(|m| {
        chance(rng, 0.3).then(|| Normalizer {
            mean: Array1::from_shape_simple_fn(dims[m], || 0.5 * rng.next()),
            std: Array1::from_shape_simple_fn(dims[m], || 0.5 + 1.5 * uniform(rng)),
        })
    });
    Case {
        weights,
        source,
        fused,
        rewards,
        normalizers,
        counter: pick(rng, &[0, 0, 1, 7]),
        param_noise: pick(rng, &[0.0, 0.05]),
        temperature_beyond_clamp: config.learnable_temperature && chance(rng, 0.2),
        param_seed: (uniform(rng) * 1e9) as u64,
        config,
    }
}

/// The embeddings `[B, M, E]` (absent slots zero) the next `backward` of
/// `model` computes on `batch` — with its dropout masks — and, for encoded
/// inputs, each modality's encoder and pooling tapes.
fn training_embeddings(model: &LearnableMultiModal<f64>, batch: &TrainBatch<f64>, counter: u64) -> (Array3<f64>, Vec<Option<Tapes>>) {
    let e = model.embed_dim();
    match &batch.source {
        EmbeddingSource::Embeddings { emb, mask } => {
            let mut emb = emb.to_owned();
            for ((r, m), &p) in mask.indexed_iter() {
                if !p {
                    emb.slice_mut(s![r, m, ..]).fill(0.0);
                }
            }
            (emb, Vec::new())
        }
        EmbeddingSource::Inputs(input) => {
            let rates = model.dropout_rates();
            let mut emb = Array3::zeros((input.batch_size, NUM_MODALITIES, e));
            let mut tapes = Vec::new();
            for (m, part) in input.modalities.iter().enumerate() {
                let Some(part) = part else {
                    tapes.push(None);
                    continue;
                };
                let x = normalized(model, m, part.x.view());
                let encoder = &model.encoders()[m];
                let tape = if rates.is_active() {
                    let mut rng = dropout_rng(model.config().seed, counter, Modality::ALL[m]);
                    encoder.forward_train_dropping(model.view(), x.view(), Some(Dropping { rates, rng: &mut rng }))
                } else {
                    encoder.forward_train(model.view(), x.view())
                };
                let pool = pool_components(tape.out.view(), &part.rows, part.weights.as_deref(), emb.slice_mut(s![.., m, ..]));
                tapes.push(Some((tape, pool)));
            }
            (emb, tapes)
        }
    }
}

/// Modality `m`'s inputs as its encoder reads them: `(x − mean) / std`.
fn normalized(model: &LearnableMultiModal<f64>, m: usize, x: ArrayView2<f64>) -> Array2<f64> {
    let mut out = x.to_owned();
    if let Some(n) = model.normalizer(Modality::ALL[m]) {
        out -= &n.mean;
        out /= &n.std;
    }
    out
}

/// The `k` nearest rows of each row by the (normalised, pooled) inputs.
fn nearest_by_inputs(model: &LearnableMultiModal<f64>, batch: &TrainBatch<f64>, k: usize) -> Option<Vec<Vec<usize>>> {
    let EmbeddingSource::Inputs(input) = &batch.source else { return None };
    let normalized: Vec<Option<Array2<f64>>> = input.modalities.iter().enumerate().map(|(m, p)| p.as_ref().map(|p| normalized(model, m, p.x.view()))).collect();
    let sides: Vec<RowInputs<f64>> = input
        .modalities
        .iter()
        .zip(&normalized)
        .filter_map(|(part, x)| {
            let (part, x) = (part.as_ref()?, x.as_ref()?);
            Some(pooled_rows(x.view(), &part.rows, part.weights.as_deref(), input.batch_size))
        })
        .collect();
    Some(input_neighbors(&sides, input.batch_size, k, model.config().input_distance))
}

/// One modality's encoder and pooling tapes.
type Tapes = (EncoderTape<f64>, PoolTape<f64>);

/// What the intended loss holds at its unperturbed value: the embeddings
/// (for the objectives kept from the encoders, and cross_modal's targets),
/// the draws and the neighbour sets.
struct Frozen {
    emb: Array3<f64>,
    mask: Array2<bool>,
    contrastive_neighbors: Option<Vec<Vec<usize>>>,
    neighborhood_neighbors: Option<Vec<Vec<usize>>>,
    cross_rows: Vec<usize>,
    cross_dropped: Vec<usize>,
    cross_target: Array2<f64>,
    fused_drawn: FusedViews,
    tapes: Vec<Option<Tapes>>,
}

fn freeze(model: &LearnableMultiModal<f64>, case: &Case, batch: &TrainBatch<f64>) -> Frozen {
    let (config, counter) = (model.config(), case.counter);
    let (emb, tapes) = training_embeddings(model, batch, counter);
    let mask = training_mask(batch);
    let used = |o: Objective| case.weights.get(o) > 0.0;
    let contrastive_neighbors = (used(Objective::Contrastive) && config.contrastive_neighbors > 0)
        .then(|| nearest_by_inputs(model, batch, config.contrastive_neighbors))
        .flatten();
    let neighborhood_neighbors = (used(Objective::Neighborhood) && config.neighborhood_neighbors > 0)
        .then(|| nearest_by_inputs(model, batch, config.neighborhood_neighbors))
        .flatten();
    let (cross_rows, cross_dropped) = objectives::draw_dropped(mask.view(), &mut objective_rng(config.seed, counter, Objective::CrossModal));
    let cross_target = Array2::from_shape_fn((cross_rows.len(), model.embed_dim()), |(k, i)| emb[[cross_rows[k], cross_dropped[k], i]]);
    let k_fused = config.fused_neighbors;
    let given = (config.fused_neighbor_space == NeighborSpace::Inputs && k_fused > 0).then(|| nearest_by_inputs(model, batch, k_fused)).flatten();
    let neighbors = given.as_deref().map_or(FusedNeighbors::ByEmbeddings(k_fused), FusedNeighbors::Given);
    let fused_drawn = fused_contrastive::draw(emb.view(), mask.view(), neighbors, &mut objective_rng(config.seed, counter, Objective::FusedContrastive));
    Frozen { emb, mask, contrastive_neighbors, neighborhood_neighbors, cross_rows, cross_dropped, cross_target, fused_drawn, tapes }
}

/// The loss whose gradient `backward` computes, at `params`, objective by
/// objective: the objectives `config.encoder_objectives` keeps from the
/// encoders see the unperturbed embeddings (their gradient stops there),
/// cross_modal's targets are the unperturbed embeddings of the dropped
/// modalities, fused_contrastive's neighbour sets those of the unperturbed
/// batch; the random draws and dropout masks are those of `case.counter`.
fn intended_loss(model: &LearnableMultiModal<f64>, case: &Case, batch: &TrainBatch<f64>, frozen: &Frozen, params: &[f64]) -> [f64; NUM_OBJECTIVES] {
    let mut probe = model.clone();
    probe.params_mut().copy_from_slice(params);
    let config = model.config();
    let live = match batch.source {
        EmbeddingSource::Inputs(_) => training_embeddings(&probe, batch, case.counter).0,
        EmbeddingSource::Embeddings { .. } => frozen.emb.clone(),
    };
    let mask = frozen.mask.view();
    let zeros = Array1::zeros(batch.batch_size());
    let rewards = batch.rewards.unwrap_or(zeros.view());
    let mut losses = [0.0; NUM_OBJECTIVES];
    for o in Objective::ALL {
        if case.weights.get(o) <= 0.0 {
            continue;
        }
        let emb: ArrayView3<f64> = if config.encoder_objectives[o.index()] { live.view() } else { frozen.emb.view() };
        let params = probe.view();
        losses[o.index()] = match o {
            Objective::SeedConsistency => objectives::seed_consistency(probe.fusion(), params, emb, mask, batch.fused.unwrap(), rewards, None),
            Objective::Contrastive => {
                let neighbors = frozen.contrastive_neighbors.as_deref().map(|rows| Neighbors { rows, weight: config.contrastive_neighbor_weight });
                objectives::contrastive(emb, mask, probe.temperature(o), neighbors, config.contrastive_pair_power, None)
            }
            Objective::Binding => objectives::binding(probe.binder(), params, emb, mask, &mut objective_rng(config.seed, case.counter, o), None),
            Objective::CrossModal => objectives::cross_modal_given(
                probe.fusion(),
                probe.attention(),
                params,
                emb,
                mask,
                &frozen.cross_rows,
                &frozen.cross_dropped,
                frozen.cross_target.view(),
                None,
            ),
            Objective::FusedContrastive => fused_contrastive::fused_contrastive_given(probe.fusion(), params, emb, &frozen.fused_drawn, probe.temperature(o), None),
            // At its own temperature or contrastive's unperturbed one: a constant of this objective.
            Objective::Neighborhood => frozen.neighborhood_neighbors.as_deref().map_or(0.0, |nb| {
                let tau = model.config().neighborhood_temperature.unwrap_or_else(|| model.temperature(Objective::Contrastive));
                objectives::neighborhood(emb, mask, tau, nb, None)
            }),
            Objective::Reconstruction => reconstruction_reference(&probe, batch, emb, mask, &mut objective_rng(config.seed, case.counter, o)),
        };
    }
    losses
}

/// reconstruction written out: over the present (row, modality) pairs, the
/// mean squared error per column between the modality's decoder applied to
/// the row's fused embedding times √E and its input (normalised, components pooled);
/// 0 on recorded embeddings.
/// With `config.reconstruction_subsets`, the fused embedding reads each row's
/// subset drawn from `rng`.
fn reconstruction_reference(model: &LearnableMultiModal<f64>, batch: &TrainBatch<f64>, emb: ArrayView3<f64>, mask: ArrayView2<bool>, rng: &mut impl Rng) -> f64 {
    let (EmbeddingSource::Inputs(input), Some(decoders)) = (&batch.source, model.decoders()) else { return 0.0 };
    let fused_from = if model.config().reconstruction_subsets { reconstruction::draw_subsets(mask, rng) } else { mask.to_owned() };
    let fused = model.fuse(emb, fused_from.view()).unwrap() * (model.embed_dim() as f64).sqrt();
    let params = model.view();
    let (mut total, mut count) = (0.0, 0usize);
    for (m, part) in input.modalities.iter().enumerate() {
        let Some(part) = part else { continue };
        let x = normalized(model, m, part.x.view());
        let target = pooled_rows(x.view(), &part.rows, part.weights.as_deref(), input.batch_size);
        let (w, b) = (params.matrix(decoders.layers[m].0), params.vector(decoders.layers[m].1));
        for (i, &r) in target.rows.iter().enumerate().filter(|&(_, &r)| mask[[r, m]]) {
            let diff = w.dot(&fused.row(r)) + b - target.x.row(i);
            total += diff.dot(&diff) / diff.len() as f64;
            count += 1;
        }
    }
    if count == 0 { 0.0 } else { total / count as f64 }
}

fn weighted_total(weights: &ObjectiveWeights, losses: &[f64; NUM_OBJECTIVES]) -> f64 {
    Objective::ALL.iter().map(|&o| if weights.get(o) > 0.0 { weights.get(o) * losses[o.index()] } else { 0.0 }).sum()
}

/// The smallest `|pre-activation|` of the LeakyReLU units in `values`
/// (LeakyReLU outputs, times `scale` per row when given, times dropout
/// `multipliers` when given; dropped entries do not matter).
fn leaky_margin(values: ArrayView2<f64>, row_scale: Option<&Array1<f64>>, multipliers: Option<&Array2<f64>>) -> f64 {
    let mut margin = f64::INFINITY;
    for ((r, c), &v) in values.indexed_iter() {
        let mut out = v * row_scale.map_or(1.0, |s| s[r]);
        if let Some(mult) = multipliers {
            if mult[[r, c]] == 0.0 {
                continue;
            }
            out /= mult[[r, c]];
        }
        margin = margin.min(if out >= 0.0 { out } else { out.abs() / LEAKY_ALPHA });
    }
    margin
}

/// Whether the unperturbed forward passes come within [`KINK_MARGIN`] of a
/// LeakyReLU kink or within [`NORM_MARGIN`] of the L2 norm's floor: the
/// encoders (their own layers and the head's), their pooling, and every
/// fusion pass the objectives make (seed_consistency's rows, cross_modal's
/// remainders, fused_contrastive's two views, reconstruction's rows or subsets).
fn near_a_singularity(model: &LearnableMultiModal<f64>, case: &Case, frozen: &Frozen) -> bool {
    let mut margin = f64::INFINITY;
    let mut shortest = f64::INFINITY;
    for (m, tapes) in frozen.tapes.iter().enumerate() {
        let Some((tape, pool)) = tapes else { continue };
        shortest = tape.norms.iter().chain(pool.pooled.iter().map(|(_, n)| n)).fold(shortest, |a, &n| a.min(n));
        let layers = &model.encoders()[m].layers;
        for (i, _) in layers.iter().enumerate().filter(|(_, l)| l.leaky) {
            margin = margin.min(if i + 1 == layers.len() {
                leaky_margin(tape.out.view(), Some(&tape.norms), None)
            } else {
                leaky_margin(tape.activations[i].view(), None, tape.masks[i].as_ref())
            });
        }
    }
    let e = model.embed_dim();
    let used = |o: Objective| case.weights.get(o) > 0.0;
    // Each fusion pass: (batch row, modalities it reads).
    let mut passes: Vec<(usize, Vec<bool>)> = Vec::new();
    if used(Objective::SeedConsistency) {
        passes.extend(frozen.mask.rows().into_iter().enumerate().filter(|(_, r)| r.iter().any(|&p| p)).map(|(r, row)| (r, row.to_vec())));
    }
    if used(Objective::CrossModal) {
        for (&r, &d) in frozen.cross_rows.iter().zip(&frozen.cross_dropped) {
            let mut present = frozen.mask.row(r).to_vec();
            present[d] = false;
            passes.push((r, present));
        }
    }
    if used(Objective::FusedContrastive) && frozen.fused_drawn.rows.len() >= 2 {
        for view in &frozen.fused_drawn.views {
            passes.extend(frozen.fused_drawn.rows.iter().enumerate().map(|(k, &r)| (r, view.row(k).to_vec())));
        }
    }
    if used(Objective::Reconstruction) && case.source_kind() != "recorded" {
        let config = model.config();
        let fused_from = if config.reconstruction_subsets {
            reconstruction::draw_subsets(frozen.mask.view(), &mut objective_rng(config.seed, case.counter, Objective::Reconstruction))
        } else {
            frozen.mask.clone()
        };
        passes.extend(fused_from.rows().into_iter().enumerate().filter(|(_, r)| r.iter().any(|&p| p)).map(|(r, row)| (r, row.to_vec())));
    }
    if passes.is_empty() {
        return margin < KINK_MARGIN || shortest < NORM_MARGIN;
    }
    let mut x = Array2::zeros((passes.len(), NUM_MODALITIES * e));
    for (k, (r, present)) in passes.iter().enumerate() {
        for m in (0..NUM_MODALITIES).filter(|&m| present[m]) {
            x.slice_mut(s![k, m * e..(m + 1) * e]).assign(&frozen.emb.slice(s![*r, m, ..]));
        }
    }
    let present: Vec<bool> = passes.iter().flat_map(|(_, p)| p.iter().copied()).collect();
    let tape = model.fusion().forward_train_masked(model.view(), x, Some(&present));
    margin = margin.min(leaky_margin(tape.hidden[0].view(), None, None)).min(leaky_margin(tape.hidden[1].view(), None, None));
    margin = margin.min(match &tape.residual {
        Some((activation, _)) => leaky_margin(activation.view(), None, None),
        None => leaky_margin(tape.out.view(), Some(&tape.norms), None),
    });
    shortest = tape.norms.iter().fold(shortest, |a, &n| a.min(n));
    margin < KINK_MARGIN || shortest < NORM_MARGIN
}

/// How many draws exercised each option (the quick run asserts every one).
#[derive(Default, Debug)]
struct Coverage {
    checked: u64,
    redrawn: u64,
    dropout: u64,
    skip: u64,
    head: u64,
    deep: u64,
    residual: u64,
    pair_power: u64,
    contrastive_neighbors: u64,
    fused_by_inputs: u64,
    kept_from_encoders: u64,
    learned_temperature: u64,
    beyond_clamp: u64,
    components: u64,
    reconstruction: u64,
    reconstruction_subsets: u64,
    recorded: u64,
    all_absent_row: u64,
    one_modality_row: u64,
    counter: u64,
}

impl Coverage {
    fn note(&mut self, case: &Case, mask: &Array2<bool>) {
        let c = &case.config;
        let used = |o: Objective| case.weights.get(o) > 0.0;
        self.checked += 1;
        self.dropout += u64::from(c.encoder_input_dropout > 0.0 || c.encoder_hidden_dropout > 0.0);
        self.skip += u64::from(c.encoder_skip);
        self.head += u64::from(!c.shared_head.is_empty());
        self.deep += u64::from(!c.encoder_hidden.is_empty());
        self.residual += u64::from(c.fusion_residual > 0.0 && (used(Objective::SeedConsistency) || used(Objective::CrossModal) || used(Objective::FusedContrastive)));
        self.pair_power += u64::from(c.contrastive_pair_power < 1.0 && used(Objective::Contrastive));
        self.contrastive_neighbors += u64::from(c.contrastive_neighbors > 0 && used(Objective::Contrastive) && case.source_kind() != "recorded");
        self.fused_by_inputs += u64::from(c.fused_neighbor_space == NeighborSpace::Inputs && c.fused_neighbors > 0 && used(Objective::FusedContrastive));
        self.kept_from_encoders += u64::from(Objective::ALL.iter().any(|&o| used(o) && !c.encoder_objectives[o.index()]) && case.source_kind() != "recorded");
        self.learned_temperature += u64::from(c.learnable_temperature);
        self.beyond_clamp += u64::from(case.temperature_beyond_clamp);
        self.components += u64::from(case.source_kind() == "components");
        let reconstructs = case.weights.get(Objective::Reconstruction) > 0.0 && case.source_kind() != "recorded";
        self.reconstruction += u64::from(reconstructs);
        self.reconstruction_subsets += u64::from(reconstructs && case.config.reconstruction_subsets);
        self.recorded += u64::from(case.source_kind() == "recorded");
        self.all_absent_row += u64::from(mask.rows().into_iter().any(|r| r.iter().all(|&p| !p)));
        self.one_modality_row += u64::from(mask.rows().into_iter().any(|r| r.iter().filter(|&&p| p).count() == 1));
        self.counter += u64::from(case.counter > 0);
    }
}

/// The size of the values whose round-off the weighted loss carries: each
/// loss, or for the contrastive objectives the logits (up to `‖e‖² / τ`:
/// their losses are differences of log-sum-exps of the logits, which at a
/// small temperature are far larger than the losses) — for contrastive
/// times `amplification`, the largest power-mean factor of its pairs.
fn round_off_scale(model: &LearnableMultiModal<f64>, case: &Case, frozen: &Frozen, losses: &[f64; NUM_OBJECTIVES], amplification: f64) -> f64 {
    let longest = frozen.emb.outer_iter().flat_map(|row| row.outer_iter().map(|e| e.dot(&e)).collect::<Vec<_>>()).fold(1.0, f64::max);
    let scale: f64 = Objective::ALL
        .iter()
        .map(|&o| {
            let logits = match o {
                Objective::Contrastive => longest / model.temperature(o) * amplification,
                Objective::FusedContrastive => 1.0 / model.temperature(o), // fused embeddings are unit vectors
                Objective::Neighborhood => longest / model.temperature(Objective::Contrastive),
                _ => 0.0,
            };
            case.weights.get(o) * losses[o.index()].abs().max(logits)
        })
        .sum();
    scale.max(1.0)
}

/// The largest power-mean factor `(L_k / M)^(p − 1)` of the contrastive
/// pairs (1 for the arithmetic mean), `M` the contrastive loss: each pair's
/// loss is the objective on a mask with only its two modalities.
fn pair_power_amplification(model: &LearnableMultiModal<f64>, frozen: &Frozen, mean: f64) -> f64 {
    let config = model.config();
    let p = config.contrastive_pair_power;
    if p == 1.0 {
        return 1.0;
    }
    let tau = model.temperature(Objective::Contrastive);
    let neighbors = frozen.contrastive_neighbors.as_deref().map(|rows| Neighbors { rows, weight: config.contrastive_neighbor_weight });
    let mut largest: f64 = 1.0;
    for i in 0..NUM_MODALITIES {
        for j in i + 1..NUM_MODALITIES {
            let pair_mask = Array2::from_shape_fn(frozen.mask.dim(), |(r, m)| (m == i || m == j) && frozen.mask[[r, m]]);
            if pair_mask.rows().into_iter().filter(|row| row[i] && row[j]).count() < 2 {
                continue;
            }
            let loss = objectives::contrastive(frozen.emb.view(), pair_mask.view(), tau, neighbors, 1.0, None).max(1e-12);
            largest = largest.max((loss / mean.max(1e-12)).powf(p - 1.0));
        }
    }
    largest
}

/// Checks one draw; returns the worst share of its tolerance a tensor's
/// error took, or `None` when the draw sits too close to a point where the
/// loss is not differentiable (and must be redrawn).
fn check_case(case: &Case, draw: u64) -> Option<f64> {
    let model = case.model();
    let batch = case.batch();
    let frozen = freeze(&model, case, &batch);
    if near_a_singularity(&model, case, &frozen) {
        return None;
    }
    let label = || case.label(draw);
    let mut trained = model.clone();
    let losses = trained.backward(&batch, &case.weights).unwrap_or_else(|e| panic!("{}: backward failed: {e}", label()));
    let analytic = trained.gradients().to_vec();
    assert!(analytic.iter().all(|g| g.is_finite()), "{}: non-finite gradient", label());
    let at_start = intended_loss(&model, case, &batch, &frozen, model.params());
    for o in Objective::ALL.into_iter().filter(|&o| case.weights.get(o) > 0.0) {
        let (got, want) = (losses.get(o).unwrap(), at_start[o.index()]);
        assert!((got - want).abs() <= 1e-12 * want.abs().max(1.0), "{}: {} is {got}, the reference {want}", label(), o.name());
    }
    // The power mean amplifies a nearly matched pair's round-off as it does
    // its gradient; past MAX_AMPLIFICATION (toward the 1e-12 floor of the
    // pair losses, a kink) the loss is too ill-conditioned to compare.
    let amplification = if case.weights.get(Objective::Contrastive) > 0.0 {
        pair_power_amplification(&model, &frozen, at_start[Objective::Contrastive.index()])
    } else {
        1.0
    };
    if amplification > MAX_AMPLIFICATION {
        return None;
    }
    let magnitude = round_off_scale(&model, case, &frozen, &at_start, amplification);
    let mut params = model.params().to_vec();
    let numeric = numeric_gradient(&mut params, |p| weighted_total(&case.weights, &intended_loss(&model, case, &batch, &frozen, p)));
    let mut worst: f64 = 0.0;
    for spec in model.layout().specs() {
        let (a, n) = (&analytic[spec.range()], &numeric[spec.range()]);
        let diff: Vec<f64> = a.iter().zip(n).map(|(a, n)| a - n).collect();
        let scale = norm(a).max(norm(n));
        let floor = ROUNDOFF * magnitude * (a.len() as f64).sqrt() / H;
        let err = norm(&diff);
        let allowed = TOL * scale + floor;
        assert!(
            err <= allowed,
            "{}\n tensor {}: error {err:.3e} (relative {:.3e}, round-off floor {floor:.1e})\n analytic {a:?}\n numeric  {n:?}",
            label(),
            spec.name,
            rel_error(a, n)
        );
        if allowed > 0.0 {
            worst = worst.max(err / allowed);
        }
    }
    Some(worst)
}

fn run_draws(seed: u64, draws: u64) -> Coverage {
    let mut rng = Lcg(seed);
    let mut coverage = Coverage::default();
    let mut worst: f64 = 0.0;
    for draw in 0..draws {
        loop {
            let case = draw_case(&mut rng);
            match check_case(&case, draw) {
                Some(err) => {
                    worst = worst.max(err);
                    coverage.note(&case, &training_mask(&case.batch()));
                    break;
                }
                None => coverage.redrawn += 1,
            }
        }
    }
    // A share near 1 would mean the tolerance is about to mask errors.
    println!("{draws} random option combinations: the worst error took {worst:.3} of its tolerance; {coverage:?}");
    coverage
}

#[test]
fn random_option_combinations() {
    let c = run_draws(2026, QUICK_DRAWS);
    let exercised = [
        ("dropout", c.dropout),
        ("skip", c.skip),
        ("head", c.head),
        ("deep encoders", c.deep),
        ("residual fusion", c.residual),
        ("pair power", c.pair_power),
        ("contrastive neighbours", c.contrastive_neighbors),
        ("fused neighbours by inputs", c.fused_by_inputs),
        ("objectives kept from the encoders", c.kept_from_encoders),
        ("learned temperature", c.learned_temperature),
        ("temperature beyond its clamp", c.beyond_clamp),
        ("components", c.components),
        ("reconstruction", c.reconstruction),
        ("reconstruction from subsets", c.reconstruction_subsets),
        ("recorded embeddings", c.recorded),
        ("all-absent rows", c.all_absent_row),
        ("one-modality rows", c.one_modality_row),
        ("a later draw counter", c.counter),
    ];
    for (what, count) in exercised {
        assert!(count > 0, "no draw exercised {what}: {c:?}");
    }
}

/// The same with many more draws: `cargo test --release --test
/// core gradient_combinations -- --ignored --nocapture`.
#[test]
#[ignore]
fn random_option_combinations_long() {
    let draws = std::env::var("GRADIENT_COMBINATION_DRAWS").ok().and_then(|v| v.parse().ok()).unwrap_or(LONG_DRAWS);
    run_draws(7, draws);
}
