//! Analytic gradients against central finite differences, in f64.
//!
//! Every objective × every parameter tensor, on batches with absent
//! modalities, all-absent rows, single-modality rows and multi-component
//! pooling, with 1, 2 and 4 heads and both binders; then each component's
//! backward on its own under a random linear probe loss (including the
//! attention's all-absent rows and the L2 norm's eps floor).
//!
//! Tolerance: per tensor, `‖g_analytic − g_numeric‖ / max(‖g_analytic‖,
//! ‖g_numeric‖) < 1e-5`, from a five-point stencil with step `h = 1e-6`.
//! Its truncation error is O(h⁴) (negligible); its round-off is about
//! `1.5 ε |L| √n / (h ‖g‖)` for a tensor of `n` entries — up to ~4e-6 for
//! the smallest gradients here (‖g‖ ≈ 2e-3, |L| ≈ 3, n = 64). A larger `h`
//! would let steps cross LeakyReLU kinks. The worst error seen is printed
//! with `--nocapture` (about 1e-6); a missing or wrong term lands near 1.

use crate::common::gradcheck::{norm, numeric_gradient, rel_error, Lcg, TOL};
use grapheme_multimodal::nn::encoder::{pool_components, pool_components_backward};
use grapheme_multimodal::nn::ops::{l2_normalize_backward_inplace, l2_normalize_rows, NORM_EPS};
use grapheme_multimodal::nn::{BinderKind, CrossModalBinder, FusionNetwork, ModalityAttention};
use grapheme_multimodal::objectives;
use grapheme_multimodal::objectives::fused_contrastive;
use grapheme_multimodal::params::ParamLayout;
use grapheme_multimodal::{
    Config, EmbeddingSource, EncoderInput, LearnableMultiModal, ModalityInput, Objective, ObjectiveWeights, TrainBatch, NUM_MODALITIES,
};
use ndarray::{Array1, Array2, Array3, ArrayView2};

const DIMS: [usize; 7] = [3, 5, 4, 18, 2, 6, 7];

fn config(heads: usize, binder: BinderKind) -> Config {
    Config {
        embed_dim: 8,
        hidden_dim: 12,
        num_heads: heads,
        input_dims: DIMS,
        binder,
        temperature: 0.5,
        seed: 3,
        ..Config::default()
    }
}

/// Rows: all 7 present; 2; none; 1; and mixes of 4–6.
fn mask() -> Array2<bool> {
    let rows: [[u8; 7]; 7] = [
        [1, 1, 1, 1, 1, 1, 1],
        [1, 1, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0, 0],
        [0, 0, 1, 0, 0, 0, 0],
        [1, 0, 1, 1, 0, 1, 0],
        [0, 1, 1, 1, 1, 0, 1],
        [1, 1, 1, 0, 1, 1, 1],
    ];
    Array2::from_shape_fn((7, 7), |(r, m)| rows[r][m] == 1)
}

fn dense_inputs(rng: &mut Lcg, batch: usize) -> [Array2<f64>; 7] {
    std::array::from_fn(|m| rng.array2(batch, DIMS[m]))
}

/// What the stop-gradient terms take from the unperturbed model: the same
/// at every parameter step, so drawn once per check, not at each of the
/// four loss evaluations per parameter (a quarter of these checks' CPU time).
struct Unperturbed {
    /// fused_contrastive's views and neighbour sets (chosen from the
    /// unperturbed embeddings), when it has neighbours and a weight.
    fused: Option<fused_contrastive::FusedViews>,
    /// cross_modal's draws and frozen targets, when weighted.
    cross: Option<CrossModalDraws>,
}

/// cross_modal's dropped rows and slots, their frozen targets and the batch's mask.
struct CrossModalDraws {
    rows: Vec<usize>,
    dropped: Vec<usize>,
    target: Array2<f64>,
    mask: Array2<bool>,
}

impl Unperturbed {
    fn of(model: &LearnableMultiModal<f64>, batch: &TrainBatch<f64>, weights: &ObjectiveWeights) -> Self {
        // Without neighbours, fused_contrastive's draws do not depend on the embeddings.
        let fused_needed = model.config().fused_neighbors > 0 && weights.get(Objective::FusedContrastive) > 0.0;
        let cross_needed = weights.get(Objective::CrossModal) > 0.0;
        if !fused_needed && !cross_needed {
            return Self { fused: None, cross: None };
        }
        let (emb0, mask) = embeddings(model, batch);
        let fused = fused_needed.then(|| {
            let mut rng = objectives::objective_rng(model.config().seed, 0, Objective::FusedContrastive);
            fused_contrastive::draw(emb0.view(), mask.view(), fused_contrastive::FusedNeighbors::ByEmbeddings(model.config().fused_neighbors), &mut rng)
        });
        let cross = cross_needed.then(|| {
            let mut rng = objectives::objective_rng(model.config().seed, 0, Objective::CrossModal);
            let (rows, dropped) = objectives::draw_dropped(mask.view(), &mut rng);
            let target = Array2::from_shape_fn((rows.len(), emb0.shape()[2]), |(k, i)| emb0[[rows[k], dropped[k], i]]);
            CrossModalDraws { rows, dropped, target, mask: mask.clone() }
        });
        Self { fused, cross }
    }
}

/// The loss whose gradient `backward` computes, evaluated at `params`.
///
/// cross_modal's target is a stop-gradient: its analytic gradient is that of
/// the loss with the targets frozen at their values under the unperturbed
/// parameters, so that term is evaluated with the draws and targets of the
/// unperturbed model (`frozen`) and everything else under `params`. Likewise
/// fused_contrastive's neighbour sets are constants of the batch (chosen
/// from the unperturbed embeddings).
fn semi_gradient_loss(
    model: &LearnableMultiModal<f64>,
    batch: &TrainBatch<f64>,
    weights: &ObjectiveWeights,
    frozen: &Unperturbed,
    probe: &mut LearnableMultiModal<f64>,
    params: &[f64],
) -> f64 {
    // `probe`: a clone of `model` reused across evaluations (a clone at each
    // was a tenth of these checks' CPU time); every parameter is set here,
    // and nothing else of it changes.
    probe.params_mut().copy_from_slice(params);
    let w_cross = weights.get(Objective::CrossModal);
    let w_fused = if frozen.fused.is_some() { weights.get(Objective::FusedContrastive) } else { 0.0 };
    let w_neighborhood = weights.get(Objective::Neighborhood);
    let mut rest = *weights;
    rest.0[Objective::CrossModal.index()] = 0.0;
    rest.0[Objective::Neighborhood.index()] = 0.0;
    if w_fused > 0.0 {
        rest.0[Objective::FusedContrastive.index()] = 0.0;
    }
    // With the dropout masks of the next backward (the model's, if any).
    let mut total = probe.training_losses(batch, &rest).unwrap().total;
    // The perturbed embeddings, computed once for both stop-gradient terms.
    let emb = (w_fused > 0.0 || w_cross > 0.0).then(|| embeddings(probe, batch).0);
    if let (Some(drawn), Some(emb)) = (&frozen.fused, &emb) {
        let tau = probe.temperature(Objective::FusedContrastive);
        total += w_fused * fused_contrastive::fused_contrastive_given(probe.fusion(), probe.view(), emb.view(), drawn, tau, None);
    }
    // Before neighborhood's term, which changes the probe's temperature.
    let cross = match (&frozen.cross, &emb) {
        (Some(CrossModalDraws { rows, dropped, target, mask }), Some(emb)) => Some(objectives::cross_modal_given(
            probe.fusion(), probe.attention(), probe.view(), emb.view(), mask.view(), rows, dropped, target.view(), None,
        )),
        _ => None,
    };
    if w_neighborhood > 0.0 {
        // At contrastive's temperature as it was: a constant of neighborhood's.
        if let Some(spec) = model.layout().specs().iter().find(|s| s.name == "contrastive.log_temperature") {
            probe.params_mut()[spec.range()].copy_from_slice(&model.params()[spec.range()]);
        }
        total += w_neighborhood * probe.training_losses(batch, &ObjectiveWeights::only(Objective::Neighborhood)).unwrap().total;
    }
    if let Some(cross) = cross {
        total += w_cross * cross;
    }
    total
}

/// The embeddings (absent slots zero) and mask a batch presents to the objectives.
fn embeddings(model: &LearnableMultiModal<f64>, batch: &TrainBatch<f64>) -> (Array3<f64>, Array2<bool>) {
    match &batch.source {
        EmbeddingSource::Inputs(input) => (model.encode(input).unwrap(), input.mask()),
        EmbeddingSource::Embeddings { emb, mask } => {
            let mut e = emb.to_owned();
            for ((r, m), &p) in mask.indexed_iter() {
                if !p {
                    e.slice_mut(ndarray::s![r, m, ..]).fill(0.0);
                }
            }
            (e, mask.to_owned())
        }
    }
}

/// Checks every tensor; returns the worst relative error. `expect_nonzero`
/// decides, per tensor name, whether the objective must reach it; tensors it
/// must not reach have exactly zero gradient (analytic and numeric).
fn check_model(
    model: &LearnableMultiModal<f64>,
    batch: &TrainBatch<f64>,
    weights: &ObjectiveWeights,
    label: &str,
    expect_nonzero: impl Fn(&str) -> bool,
) -> f64 {
    let mut trained = model.clone();
    let losses = trained.backward(batch, weights).unwrap();
    let analytic = trained.gradients().to_vec();
    assert!(analytic.iter().all(|g| g.is_finite()), "{label}: non-finite gradient");
    let frozen = Unperturbed::of(model, batch, weights);
    let mut probe = model.clone();
    let at_start = semi_gradient_loss(model, batch, weights, &frozen, &mut probe, model.params());
    assert!((losses.total - at_start).abs() < 1e-12, "{label}: the reference loss differs from the model's");
    let mut params = model.params().to_vec();
    let numeric = numeric_gradient(&mut params, |p| semi_gradient_loss(model, batch, weights, &frozen, &mut probe, p));
    let mut worst: f64 = 0.0;
    for spec in model.layout().specs() {
        let (a, n) = (&analytic[spec.range()], &numeric[spec.range()]);
        let err = rel_error(a, n);
        assert!(err < TOL, "{label}: {}: relative error {err:.3e}\n analytic {a:?}\n numeric  {n:?}", spec.name);
        if expect_nonzero(&spec.name) {
            assert!(norm(a) > 1e-8, "{label}: {} gets no gradient", spec.name);
        } else {
            assert!(a.iter().all(|&g| g == 0.0), "{label}: {} should get no gradient", spec.name);
            assert!(norm(n) < 1e-7, "{label}: {} changes the loss numerically", spec.name);
        }
        worst = worst.max(err);
    }
    worst
}

fn views(xs: &[Array2<f64>; 7]) -> [Option<ArrayView2<'_, f64>>; 7] {
    std::array::from_fn(|m| Some(xs[m].view()))
}

fn is_encoder(name: &str) -> bool {
    name.starts_with("encoder.")
}

// One test per head/binder configuration, not one loop over them: finite
// differences over every tensor take tens of seconds per configuration, and
// the test harness runs separate tests on separate threads.
#[test]
fn every_objective_every_tensor_dense_batches_one_head_additive() {
    every_objective_every_tensor_dense_batches(1, BinderKind::Additive);
}

#[test]
fn every_objective_every_tensor_dense_batches_two_heads_bilinear() {
    every_objective_every_tensor_dense_batches(2, BinderKind::Bilinear);
}

#[test]
fn every_objective_every_tensor_dense_batches_four_heads_additive() {
    every_objective_every_tensor_dense_batches(4, BinderKind::Additive);
}

#[test]
fn every_objective_every_tensor_dense_batches_four_heads_bilinear() {
    every_objective_every_tensor_dense_batches(4, BinderKind::Bilinear);
}

fn every_objective_every_tensor_dense_batches(heads: usize, binder: BinderKind) {
    let mut worst: f64 = 0.0;
    let model = LearnableMultiModal::<f64>::new(config(heads, binder)).unwrap();
    let mut rng = Lcg(heads as u64 * 7 + binder as u64);
    let xs = dense_inputs(&mut rng, 7);
    let mask = mask();
    let fused = rng.array2(7, 8);
    let rewards = Array1::from(vec![0.0, 0.5, -0.3, 0.9, 0.2, 1.0, 0.1]);
    let input = EncoderInput::dense(views(&xs), mask.view()).unwrap();
    let batch = TrainBatch {
        source: EmbeddingSource::Inputs(input),
        fused: Some(fused.view()),
        rewards: Some(rewards.view()),
    };
    let label = format!("heads={heads} binder={binder:?}");
    worst = worst.max(check_model(&model, &batch, &ObjectiveWeights::only(Objective::SeedConsistency), &format!("{label} seed"), |n| {
        n.starts_with("fusion.") || is_encoder(n)
    }));
    worst = worst.max(check_model(&model, &batch, &ObjectiveWeights::only(Objective::Contrastive), &format!("{label} contrastive"), is_encoder));
    worst = worst.max(check_model(&model, &batch, &ObjectiveWeights::only(Objective::Binding), &format!("{label} binding"), |n| {
        n.starts_with("binder.") || is_encoder(n)
    }));
    worst = worst.max(check_model(&model, &batch, &ObjectiveWeights::only(Objective::CrossModal), &format!("{label} cross_modal"), |n| {
        !n.starts_with("binder.")
    }));
    // fused_contrastive with the default 2 neighbours, none, and more than the batch has.
    for k in [2, 0, 9] {
        let model = LearnableMultiModal::<f64>::new(Config { fused_neighbors: k, ..config(heads, binder) }).unwrap();
        let only = ObjectiveWeights::only(Objective::FusedContrastive);
        worst = worst.max(check_model(&model, &batch, &only, &format!("{label} fused_contrastive k={k}"), |n| {
            n.starts_with("fusion.") || is_encoder(n)
        }));
    }
    // neighborhood with 3 neighbours, none, and more than the batch has
    // (the inputs' neighbours; only the encoders learn from it).
    for k in [3, 0, 9] {
        let model = LearnableMultiModal::<f64>::new(Config { neighborhood_neighbors: k, ..config(heads, binder) }).unwrap();
        let only = ObjectiveWeights::only(Objective::Neighborhood);
        worst = worst.max(check_model(&model, &batch, &only, &format!("{label} neighborhood k={k}"), |n| k > 0 && is_encoder(n)));
    }
    // ... at a fixed temperature of its own.
    let model = LearnableMultiModal::<f64>::new(Config { neighborhood_neighbors: 3, neighborhood_temperature: Some(0.3), ..config(heads, binder) }).unwrap();
    let only = ObjectiveWeights::only(Objective::Neighborhood);
    worst = worst.max(check_model(&model, &batch, &only, &format!("{label} neighborhood tau=0.3"), is_encoder));
    // The full mix, with uneven weights.
    let mix = ObjectiveWeights([0.7, 1.3, 0.4, 2.0, 0.9, 0.8, 0.0]);
    worst = worst.max(check_model(&model, &batch, &mix, &format!("{label} mix"), |_| true));
    // reconstruction: the decoders, the fusion network and the encoders
    // learn from it; then every objective together.
    let model = LearnableMultiModal::<f64>::new(Config { reconstruction_decoders: true, neighborhood_neighbors: 3, ..config(heads, binder) }).unwrap();
    let only = ObjectiveWeights::only(Objective::Reconstruction);
    worst = worst.max(check_model(&model, &batch, &only, &format!("{label} reconstruction"), |n| {
        n.starts_with("fusion.") || n.starts_with("reconstruction.") || is_encoder(n)
    }));
    let mix = ObjectiveWeights([0.7, 1.3, 0.4, 2.0, 0.9, 0.8, 0.6]);
    worst = worst.max(check_model(&model, &batch, &mix, &format!("{label} mix with reconstruction"), |_| true));
    // ... from the fused embeddings of random subsets of the modalities.
    // The encoders of the modalities no row keeps learn nothing from it.
    let model = LearnableMultiModal::<f64>::new(Config { reconstruction_decoders: true, reconstruction_subsets: true, ..config(heads, binder) }).unwrap();
    let kept = objectives::reconstruction::draw_subsets(mask.view(), &mut objectives::objective_rng(model.config().seed, 0, Objective::Reconstruction));
    let read = |n: &str| (0..NUM_MODALITIES).any(|m| n.starts_with(&format!("encoder.{}.", grapheme_multimodal::Modality::ALL[m].name())) && kept.column(m).iter().any(|&k| k));
    assert!(kept.iter().zip(mask.iter()).any(|(&k, &p)| p && !k), "some present modality is left out");
    worst = worst.max(check_model(&model, &batch, &only, &format!("{label} reconstruction from subsets"), |n| {
        n.starts_with("fusion.") || n.starts_with("reconstruction.") || read(n)
    }));
    println!("worst relative error (dense, heads={heads} binder={binder:?}): {worst:.3e}");
}

#[test]
fn recorded_embeddings_train_only_the_downstream_components() {
    // Embeddings given as data (the original's experience form): no encoder gradient.
    let model = LearnableMultiModal::<f64>::new(config(2, BinderKind::Bilinear)).unwrap();
    let mut rng = Lcg(99);
    let mask = mask();
    let mut emb = Array3::from_shape_simple_fn((7, 7, 8), || rng.next());
    // Garbage in absent slots must be ignored.
    for ((r, m), &p) in mask.indexed_iter() {
        if !p {
            emb.slice_mut(ndarray::s![r, m, ..]).fill(1e3);
        }
    }
    let fused = rng.array2(7, 8);
    let rewards = Array1::from(vec![0.1; 7]);
    let batch = TrainBatch {
        source: EmbeddingSource::Embeddings {
            emb: emb.view(),
            mask: mask.view(),
        },
        fused: Some(fused.view()),
        rewards: Some(rewards.view()),
    };
    let mut worst: f64 = 0.0;
    worst = worst.max(check_model(&model, &batch, &ObjectiveWeights::only(Objective::SeedConsistency), "seed", |n| n.starts_with("fusion.")));
    worst = worst.max(check_model(&model, &batch, &ObjectiveWeights::only(Objective::Contrastive), "contrastive", |_| false));
    worst = worst.max(check_model(&model, &batch, &ObjectiveWeights::only(Objective::Binding), "binding", |n| n.starts_with("binder.")));
    worst = worst.max(check_model(&model, &batch, &ObjectiveWeights::only(Objective::CrossModal), "cross_modal", |n| {
        n.starts_with("fusion.") || n.starts_with("attention.")
    }));
    worst = worst.max(check_model(&model, &batch, &ObjectiveWeights::only(Objective::FusedContrastive), "fused_contrastive", |n| {
        n.starts_with("fusion.")
    }));
    println!("worst relative error (recorded embeddings): {worst:.3e}");
}

/// One modality's components: `(x [N, d], rows [N], confidences [N])`.
type Component = (Array2<f64>, Vec<usize>, Option<Vec<f64>>);

#[test]
fn multi_component_pooling_gradients() {
    // Several components of one modality per event, confidence-weighted (with
    // an all-zero-confidence event falling back to the plain mean).
    let model = LearnableMultiModal::<f64>::new(config(2, BinderKind::Additive)).unwrap();
    let mut rng = Lcg(5);
    let parts: [Option<Component>; 7] = std::array::from_fn(|m| match m {
        0 => Some((rng.array2(6, DIMS[0]), vec![0, 0, 1, 2, 2, 2], Some(vec![0.9, 0.3, 1.0, 0.0, 0.0, 0.0]))),
        1 => Some((rng.array2(4, DIMS[1]), vec![0, 1, 1, 3], None)),
        2 => Some((rng.array2(3, DIMS[2]), vec![1, 2, 3], Some(vec![0.5, 1.0, 0.2]))),
        3 => Some((rng.array2(5, DIMS[3]), vec![0, 0, 0, 2, 3], Some(vec![1.0, 2.0, 0.5, 1.0, 1.0]))),
        _ => None,
    });
    let parts = parts.map(|p| p.map(|(x, rows, w)| ModalityInput { x: x.into(), rows: rows.into(), weights: w.map(Into::into) }));
    let input = EncoderInput::components(4, parts).unwrap();
    let fused = rng.array2(4, 8);
    let batch = TrainBatch {
        source: EmbeddingSource::Inputs(input),
        fused: Some(fused.view()),
        rewards: None,
    };
    let mut worst: f64 = 0.0;
    let used = |n: &str| ["visual", "auditory", "linguistic", "tactile"].iter().any(|m| n.starts_with(&format!("encoder.{m}.")));
    worst = worst.max(check_model(&model, &batch, &ObjectiveWeights::only(Objective::SeedConsistency), "seed", |n| {
        n.starts_with("fusion.") || used(n)
    }));
    worst = worst.max(check_model(&model, &batch, &ObjectiveWeights::only(Objective::Contrastive), "contrastive", used));
    worst = worst.max(check_model(&model, &batch, &ObjectiveWeights::only(Objective::Binding), "binding", |n| n.starts_with("binder.") || used(n)));
    worst = worst.max(check_model(&model, &batch, &ObjectiveWeights::only(Objective::CrossModal), "cross_modal", |n| {
        !n.starts_with("binder.") && (!n.starts_with("encoder.") || used(n))
    }));
    worst = worst.max(check_model(&model, &batch, &ObjectiveWeights::only(Objective::FusedContrastive), "fused_contrastive", |n| {
        n.starts_with("fusion.") || used(n)
    }));
    println!("worst relative error (pooling): {worst:.3e}");
}

// ------------------------------------------------------------ components

/// A random linear probe `L = Σ c ⊙ y` and its gradient `c`.
fn probe(rng: &mut Lcg, shape: (usize, usize)) -> Array2<f64> {
    rng.array2(shape.0, shape.1)
}

#[test]
fn attention_backward_with_absent_and_all_absent_rows() {
    for heads in [1, 2, 4] {
        let mut layout = ParamLayout::new();
        let att = ModalityAttention::register(&mut layout, 8, heads);
        let params: Vec<f64> = layout.initialize(11);
        let mut rng = Lcg(heads as u64);
        let batch = 7;
        let query = rng.array2(batch, 8);
        let mask = mask(); // includes an all-absent row and a one-modality row
        let mut emb = Array3::from_shape_simple_fn((batch, 7, 8), || rng.next());
        for ((r, m), &p) in mask.indexed_iter() {
            if !p {
                emb.slice_mut(ndarray::s![r, m, ..]).fill(0.0);
            }
        }
        let c = probe(&mut rng, (batch, 8));
        let loss = |p: &[f64], q: &Array2<f64>, e: &Array3<f64>| -> f64 {
            let out = att.forward(layout.view(p), q.view(), e.view(), mask.view());
            assert!(out.attended.iter().all(|v| v.is_finite()));
            (&out.attended * &c).sum()
        };
        let mut grads = vec![0.0; layout.len()];
        let tape = att.forward_train(layout.view(&params), query.view(), emb.view(), mask.view());
        let (dq, de) = att.backward(layout.view(&params), query.view(), emb.view(), &tape, c.view(), &mut layout.view_mut(&mut grads));
        assert!(dq.iter().chain(de.iter()).all(|v| v.is_finite()), "no NaN");
        assert!(dq.row(2).iter().all(|&v| v == 0.0), "an all-absent row has no query gradient");
        for ((r, m), &p) in mask.indexed_iter() {
            if !p {
                assert!(de.slice(ndarray::s![r, m, ..]).iter().all(|&v| v == 0.0), "absent slot ({r}, {m}) got a gradient");
            }
        }
        let numeric = numeric_gradient(&mut params.clone(), |p| loss(p, &query, &emb));
        for spec in layout.specs() {
            let err = rel_error(&grads[spec.range()], &numeric[spec.range()]);
            assert!(err < TOL, "heads={heads} {}: {err:.3e}", spec.name);
        }
        let nq = numeric_gradient(&mut query.iter().copied().collect::<Vec<_>>(), |v| {
            loss(&params, &Array2::from_shape_vec((batch, 8), v.to_vec()).unwrap(), &emb)
        });
        assert!(rel_error(&dq.iter().copied().collect::<Vec<_>>(), &nq) < TOL, "heads={heads} d_query");
        let ne = numeric_gradient(&mut emb.iter().copied().collect::<Vec<_>>(), |v| {
            loss(&params, &query, &Array3::from_shape_vec((batch, 7, 8), v.to_vec()).unwrap())
        });
        assert!(rel_error(&de.iter().copied().collect::<Vec<_>>(), &ne) < TOL, "heads={heads} d_emb");
    }
}

#[test]
fn fusion_and_binder_input_gradients() {
    let mut layout = ParamLayout::new();
    let fusion = FusionNetwork::register(&mut layout, 4, 6, 0.0);
    let additive = CrossModalBinder::register(&mut layout, 4, BinderKind::Additive);
    let mut layout2 = ParamLayout::new();
    let bilinear = CrossModalBinder::register(&mut layout2, 4, BinderKind::Bilinear);
    let params: Vec<f64> = layout.initialize(1);
    let params2: Vec<f64> = layout2.initialize(2);
    let mut rng = Lcg(17);
    let x = rng.array2(5, NUM_MODALITIES * 4);
    let c = probe(&mut rng, (5, 4));
    let tape = fusion.forward_train(layout.view(&params), x.clone());
    let mut grads = vec![0.0; layout.len()];
    let dx = fusion.backward(layout.view(&params), &tape, c.clone(), &mut layout.view_mut(&mut grads), true).unwrap();
    let nx = numeric_gradient(&mut x.as_slice().unwrap().to_vec(), |v| {
        let x = Array2::from_shape_vec(x.dim(), v.to_vec()).unwrap();
        (&fusion.forward(layout.view(&params), x.view()) * &c).sum()
    });
    assert!(rel_error(&dx.iter().copied().collect::<Vec<_>>(), &nx) < TOL);

    for (binder, layout, params) in [(&additive, &layout, &params), (&bilinear, &layout2, &params2)] {
        let a = rng.array2(6, 4);
        let b = rng.array2(6, 4);
        let dz = Array1::from_shape_simple_fn(6, || rng.next());
        let mut g = vec![0.0; layout.len()];
        let (da, db) = binder.backward(layout.view(params), a.view(), b.view(), dz.view(), &mut layout.view_mut(&mut g));
        let f = |a: &Array2<f64>, b: &Array2<f64>, p: &[f64]| (binder.logits(layout.view(p), a.view(), b.view()) * &dz).sum();
        let na = numeric_gradient(&mut a.as_slice().unwrap().to_vec(), |v| f(&Array2::from_shape_vec((6, 4), v.to_vec()).unwrap(), &b, params));
        let nb = numeric_gradient(&mut b.as_slice().unwrap().to_vec(), |v| f(&a, &Array2::from_shape_vec((6, 4), v.to_vec()).unwrap(), params));
        let np = numeric_gradient(&mut params.clone(), |p| f(&a, &b, p));
        let (w, bias) = (binder.weight, binder.bias);
        let (wr, br) = (layout.spec(w).range(), layout.spec(bias).range());
        assert!(rel_error(&da.iter().copied().collect::<Vec<_>>(), &na) < TOL, "{:?} da", binder.kind);
        assert!(rel_error(&db.iter().copied().collect::<Vec<_>>(), &nb) < TOL, "{:?} db", binder.kind);
        assert!(rel_error(&g[wr.clone()], &np[wr]) < TOL, "{:?} dW", binder.kind);
        assert!(rel_error(&g[br.clone()], &np[br]) < TOL, "{:?} dc", binder.kind);
    }
}

#[test]
fn pooling_and_norm_floor_backward() {
    // Pooling: weighted mean then renormalise; row 1 has a lone component.
    let mut rng = Lcg(23);
    let z = rng.array2(5, 3);
    let rows = [0, 0, 1, 2, 2];
    let weights = [0.2, 0.7, 1.0, 0.0, 0.0];
    let c = probe(&mut rng, (3, 3));
    let pooled = |z: &Array2<f64>| {
        let mut out = Array2::zeros((3, 3));
        pool_components(z.view(), &rows, Some(&weights), out.view_mut());
        out
    };
    let mut out = Array2::zeros((3, 3));
    let tape = pool_components(z.view(), &rows, Some(&weights), out.view_mut());
    let dz = pool_components_backward(&tape, &rows, out.view(), c.view());
    let nz = numeric_gradient(&mut z.as_slice().unwrap().to_vec(), |v| (&pooled(&Array2::from_shape_vec((5, 3), v.to_vec()).unwrap()) * &c).sum());
    assert!(rel_error(&dz.iter().copied().collect::<Vec<_>>(), &nz) < TOL);

    // The eps floor: a vector shorter than eps is divided by eps (linear).
    let v = Array2::from_shape_vec((2, 3), vec![1e-10, -2e-10, 5e-11, 3.0, 4.0, 0.0]).unwrap();
    let c = probe(&mut rng, (2, 3));
    let mut y = v.clone();
    let norms = l2_normalize_rows(y.view_mut());
    assert!(norms[0] < NORM_EPS);
    let mut dv = c.clone();
    l2_normalize_backward_inplace(y.view(), norms.view(), dv.view_mut());
    let f = |v: &[f64]| {
        let mut y = Array2::from_shape_vec((2, 3), v.to_vec()).unwrap();
        l2_normalize_rows(y.view_mut());
        (&y * &c).sum()
    };
    // A step far below the floor keeps the first row on it.
    let mut flat = v.as_slice().unwrap().to_vec();
    let numeric: Vec<f64> = (0..6)
        .map(|i| {
            let h = if i < 3 { 1e-13 } else { 1e-6 };
            let o = flat[i];
            flat[i] = o + h;
            let up = f(&flat);
            flat[i] = o - h;
            let down = f(&flat);
            flat[i] = o;
            (up - down) / (2.0 * h)
        })
        .collect();
    assert!(rel_error(&dv.as_slice().unwrap()[..3], &numeric[..3]) < 1e-5, "{dv:?} vs {numeric:?}");
    assert!(rel_error(&dv.as_slice().unwrap()[3..], &numeric[3..]) < TOL);
    for (a, b) in dv.row(0).iter().zip(c.row(0)) {
        assert!((a - b / NORM_EPS).abs() <= 1e-9 * (b / NORM_EPS).abs());
    }
}

#[test]
fn contrastive_with_widely_spread_logits() {
    // τ = 0.01 spreads the logits of unit embeddings over up to 2/τ = 200,
    // beyond the one-exponential fast path of the two-way softmax.
    let model = LearnableMultiModal::<f64>::new(Config { temperature: 0.01, ..config(2, BinderKind::Additive) }).unwrap();
    let mut rng = Lcg(31);
    let xs = dense_inputs(&mut rng, 7);
    let mask = mask();
    let input = EncoderInput::dense(views(&xs), mask.view()).unwrap();
    let emb = model.encode(&input).unwrap();
    let spans: Vec<f64> = (0..7)
        .flat_map(|i| (i + 1..7).map(move |j| (i, j)))
        .map(|(i, j)| {
            let rows: Vec<usize> = (0..7).filter(|&r| mask[[r, i]] && mask[[r, j]]).collect();
            let dots: Vec<f64> = rows
                .iter()
                .flat_map(|&r| rows.iter().map(move |&s| (r, s)))
                .map(|(r, s)| (0..8).map(|k| emb[[r, i, k]] * emb[[s, j, k]]).sum::<f64>() / 0.01)
                .collect();
            dots.iter().cloned().fold(f64::MIN, f64::max) - dots.iter().cloned().fold(f64::MAX, f64::min)
        })
        .collect();
    assert!(spans.iter().any(|&s| s >= 60.0), "the wide-span path is exercised: {spans:?}");
    assert!(spans.iter().any(|&s| s < 60.0), "and the fast path: {spans:?}");
    let batch = TrainBatch::inputs(input);
    let worst = check_model(&model, &batch, &ObjectiveWeights::only(Objective::Contrastive), "contrastive τ=0.01", is_encoder);
    println!("worst relative error (wide logits): {worst:.3e}");
}

// ------------------------------------------------ optional capacity

/// The gradient-check config with deep encoders, a shared head and learned
/// temperatures (and dropout when `dropout`).
fn deep_config(hidden: &[usize], output_dim: Option<usize>, head: &[usize], dropout: bool) -> Config {
    Config {
        encoder_hidden: hidden.to_vec(),
        encoder_output_dim: output_dim,
        shared_head: head.to_vec(),
        encoder_input_dropout: if dropout { 0.2 } else { 0.0 },
        encoder_hidden_dropout: if dropout && !hidden.is_empty() { 0.3 } else { 0.0 },
        learnable_temperature: true,
        ..config(2, BinderKind::Bilinear)
    }
}

fn dense_batch<'a>(xs: &'a [Array2<f64>; 7], mask: &'a Array2<bool>, fused: &'a Array2<f64>) -> TrainBatch<'a, f64> {
    TrainBatch {
        source: EmbeddingSource::Inputs(EncoderInput::dense(views(xs), mask.view()).unwrap()),
        fused: Some(fused.view()),
        rewards: None,
    }
}

fn is_embedding_path(name: &str) -> bool {
    name.starts_with("encoder.") || name.starts_with("head.")
}

#[test]
fn deep_encoders_shared_head_and_learned_temperatures() {
    // Contrastive, which reaches every encoder and head tensor and its
    // temperature, on every shape; fused_contrastive (the other
    // temperature, through the fusion network) on the probe's. The other
    // objectives reach the encoders through the same embedding gradient
    // (the dropout test below runs them on a deep model with a head).
    let mut worst: f64 = 0.0;
    let shapes: [(&[usize], Option<usize>, &[usize]); 4] = [
        (&[6, 5], Some(7), &[9, 8]), // the probe's shape, small
        (&[], None, &[8]),           // one-layer encoders, one-layer head
        (&[6], None, &[]),           // hidden layers, no head
        (&[4], Some(3), &[8]),       // a narrow encoder output widened by the head
    ];
    for (k, (hidden, output_dim, head)) in shapes.into_iter().enumerate() {
        let model = LearnableMultiModal::<f64>::new(deep_config(hidden, output_dim, head, false)).unwrap();
        let names: Vec<&str> = model.layout().specs().iter().map(|s| s.name.as_str()).collect();
        assert!(names.contains(&"contrastive.log_temperature") && names.contains(&"fused_contrastive.log_temperature"));
        // (Seeds whose batches put no pre-activation within the stencil of
        // a LeakyReLU kink: at Lcg(43) one sits within 1e-6 of 0 in the
        // first shape, and the numeric gradient only agrees for h ≤ 1e-7.)
        let mut rng = Lcg(59 + hidden.len() as u64);
        let (xs, mask, fused) = (dense_inputs(&mut rng, 7), mask(), rng.array2(7, 8));
        let batch = dense_batch(&xs, &mask, &fused);
        let label = format!("hidden={hidden:?} out={output_dim:?} head={head:?}");
        let contrastive = ObjectiveWeights::only(Objective::Contrastive);
        worst = worst.max(check_model(&model, &batch, &contrastive, &format!("{label} contrastive"), |n| {
            is_embedding_path(n) || n == "contrastive.log_temperature"
        }));
        if k > 0 {
            continue;
        }
        worst = worst.max(check_model(&model, &batch, &ObjectiveWeights::only(Objective::FusedContrastive), &format!("{label} fused"), |n| {
            n.starts_with("fusion.") || is_embedding_path(n) || n == "fused_contrastive.log_temperature"
        }));
    }
    println!("worst relative error (deep encoders, head, temperatures): {worst:.3e}");
}

#[test]
fn encoder_skip_gradients() {
    // The skip weights start at zero; set them to random values so the
    // path also carries gradient into everything after it. With dropout:
    // the skip reads the dropped input, as the hidden layer does.
    let config = Config { encoder_skip: true, fused_neighbors: 0, ..deep_config(&[6, 5], Some(7), &[9, 8], true) };
    let mut model = LearnableMultiModal::<f64>::new(config).unwrap();
    let mut rng = Lcg(61);
    let skips: Vec<_> = model.layout().specs().iter().filter(|s| s.name.ends_with(".skip.weight")).map(|s| s.range()).collect();
    assert_eq!(skips.len(), 7, "one skip per modality");
    for range in skips {
        for v in &mut model.params_mut()[range] {
            *v = 0.3 * rng.next();
        }
    }
    let (xs, mask, fused) = (dense_inputs(&mut rng, 7), mask(), rng.array2(7, 8));
    let batch = dense_batch(&xs, &mask, &fused);
    let mix = ObjectiveWeights([0.7, 1.3, 0.4, 0.0, 0.9, 0.8, 0.0]);
    let worst = check_model(&model, &batch, &mix, "encoder skip", |n| !n.starts_with("attention."));
    println!("worst relative error (encoder skip): {worst:.3e}");
}

#[test]
fn encoder_dropout_gradients() {
    // The masks of gradient computation 0, the same in the loss evaluated
    // for the numeric gradient (`training_losses`). cross_modal's
    // stop-gradient targets would need the dropped embeddings; its path
    // into the encoders is the one every other objective takes.
    let mut worst: f64 = 0.0;
    for (hidden, head) in [(&[6usize, 5][..], &[8usize][..]), (&[], &[])] {
        let config = Config { fused_neighbors: 0, ..deep_config(hidden, None, head, true) };
        let model = LearnableMultiModal::<f64>::new(config).unwrap();
        let mut rng = Lcg(43);
        let (xs, mask, fused) = (dense_inputs(&mut rng, 7), mask(), rng.array2(7, 8));
        let batch = dense_batch(&xs, &mask, &fused);
        let without_dropout = model.losses(&batch, &ObjectiveWeights::only(Objective::Contrastive)).unwrap().total;
        let with_dropout = model.training_losses(&batch, &ObjectiveWeights::only(Objective::Contrastive)).unwrap().total;
        assert!((with_dropout - without_dropout).abs() > 1e-6, "hidden={hidden:?}: dropout changes the training loss");
        let label = format!("dropout hidden={hidden:?}");
        worst = if hidden.is_empty() {
            let contrastive = ObjectiveWeights::only(Objective::Contrastive);
            worst.max(check_model(&model, &batch, &contrastive, &label, |n| is_encoder(n) || n == "contrastive.log_temperature"))
        } else {
            let mix = ObjectiveWeights([0.7, 1.3, 0.4, 0.0, 0.9, 0.8, 0.0]);
            worst.max(check_model(&model, &batch, &mix, &label, |n| !n.starts_with("attention.")))
        };
    }
    println!("worst relative error (dropout): {worst:.3e}");
}

#[test]
fn deep_encoders_pool_components() {
    let model = LearnableMultiModal::<f64>::new(deep_config(&[5], Some(6), &[7, 8], true)).unwrap();
    let mut rng = Lcg(47);
    let parts: [Option<Component>; 7] = std::array::from_fn(|m| match m {
        0 => Some((rng.array2(6, DIMS[0]), vec![0, 0, 1, 2, 2, 2], Some(vec![0.9, 0.3, 1.0, 0.0, 0.0, 0.0]))),
        2 => Some((rng.array2(4, DIMS[2]), vec![0, 1, 2, 3], None)),
        3 => Some((rng.array2(5, DIMS[3]), vec![0, 0, 1, 2, 3], Some(vec![1.0, 2.0, 0.5, 1.0, 1.0]))),
        _ => None,
    });
    let parts = parts.map(|p| p.map(|(x, rows, w)| ModalityInput { x: x.into(), rows: rows.into(), weights: w.map(Into::into) }));
    let batch = TrainBatch::inputs(EncoderInput::components(4, parts).unwrap());
    let used = |n: &str| n.starts_with("head.") || ["visual", "linguistic", "tactile"].iter().any(|m| n.starts_with(&format!("encoder.{m}.")));
    let worst = check_model(&model, &batch, &ObjectiveWeights::only(Objective::Contrastive), "pooled contrastive", |n| {
        used(n) || n == "contrastive.log_temperature"
    });
    println!("worst relative error (deep pooling): {worst:.3e}");
}

#[test]
fn learned_temperature_with_recorded_embeddings() {
    // Given embeddings are constants, but the temperatures still learn.
    let model = LearnableMultiModal::<f64>::new(deep_config(&[], None, &[], false)).unwrap();
    let mut rng = Lcg(53);
    let mask = mask();
    let emb = Array3::from_shape_simple_fn((7, 7, 8), || rng.next());
    let batch = TrainBatch { source: EmbeddingSource::Embeddings { emb: emb.view(), mask: mask.view() }, fused: None, rewards: None };
    let mut worst = check_model(&model, &batch, &ObjectiveWeights::only(Objective::Contrastive), "recorded contrastive", |n| {
        n == "contrastive.log_temperature"
    });
    worst = worst.max(check_model(&model, &batch, &ObjectiveWeights::only(Objective::FusedContrastive), "recorded fused", |n| {
        n.starts_with("fusion.") || n == "fused_contrastive.log_temperature"
    }));
    println!("worst relative error (recorded, temperatures): {worst:.3e}");
}


#[test]
fn contrastive_with_input_neighbours() {
    // The neighbours are constants of the batch (they come from the
    // inputs, which no parameter changes), so the plain loss is the
    // reference; with absent modalities (the mask) some rows share fewer
    // modalities, and k = 9 asks for more rows than the batch has.
    let mut worst: f64 = 0.0;
    for (k, weight) in [(1, 0.3), (3, 0.5), (9, 0.2)] {
        let config = Config { contrastive_neighbors: k, contrastive_neighbor_weight: weight, ..deep_config(&[6], Some(7), &[8], false) };
        let model = LearnableMultiModal::<f64>::new(config).unwrap();
        let mut rng = Lcg(71 + k as u64);
        let (xs, mask, fused) = (dense_inputs(&mut rng, 7), mask(), rng.array2(7, 8));
        let batch = dense_batch(&xs, &mask, &fused);
        let contrastive = ObjectiveWeights::only(Objective::Contrastive);
        worst = worst.max(check_model(&model, &batch, &contrastive, &format!("neighbours k={k}"), |n| {
            is_embedding_path(n) || n == "contrastive.log_temperature"
        }));
        let plain = LearnableMultiModal::<f64>::new(deep_config(&[6], Some(7), &[8], false)).unwrap();
        let (with, without) = (model.losses(&batch, &contrastive).unwrap().total, plain.losses(&batch, &contrastive).unwrap().total);
        assert!((with - without).abs() > 1e-6, "k={k}: the neighbours change the loss ({with} vs {without})");
    }
    println!("worst relative error (contrastive with input neighbours): {worst:.3e}");
}

// The loss is the power mean of order p of the pair losses; its gradient
// weights each pair by (L_ij / L)^(p - 1). Checked on the original encoders,
// on deep encoders with a learned temperature (whose gradient takes the same
// factors), with input neighbours, and in the full mix: two tests, so the
// test harness's threads share the finite differences.
#[test]
fn contrastive_as_a_power_mean_of_its_pairs_original_encoders() {
    contrastive_as_a_power_mean_of_its_pairs([(0.0, config(2, BinderKind::Bilinear)), (0.5, config(4, BinderKind::Additive))]);
}

#[test]
fn contrastive_as_a_power_mean_of_its_pairs_deep_encoders() {
    let deep = deep_config(&[6], Some(7), &[8], false);
    contrastive_as_a_power_mean_of_its_pairs([(0.0, deep.clone()), (0.3, Config { contrastive_neighbors: 2, ..deep })]);
}

fn contrastive_as_a_power_mean_of_its_pairs(cases: [(f64, Config); 2]) {
    let mut worst: f64 = 0.0;
    for (p, base) in cases {
        let model = LearnableMultiModal::<f64>::new(Config { contrastive_pair_power: p, ..base.clone() }).unwrap();
        let arithmetic = LearnableMultiModal::<f64>::new(base).unwrap();
        let mut rng = Lcg(53);
        let (xs, mask, fused) = (dense_inputs(&mut rng, 7), mask(), rng.array2(7, 8));
        let batch = dense_batch(&xs, &mask, &fused);
        let contrastive = ObjectiveWeights::only(Objective::Contrastive);
        let label = format!("pair power p={p}");
        worst = worst.max(check_model(&model, &batch, &contrastive, &label, |n| {
            is_encoder(n) || n.starts_with("head.") || n == "contrastive.log_temperature"
        }));
        let mix = ObjectiveWeights([0.7, 1.3, 0.4, 2.0, 0.9, 0.8, 0.0]);
        worst = worst.max(check_model(&model, &batch, &mix, &format!("{label} mix"), |_| true));
        // A power mean below 1 is below the arithmetic mean (the pairs differ).
        let (power, plain) = (model.losses(&batch, &contrastive).unwrap().total, arithmetic.losses(&batch, &contrastive).unwrap().total);
        assert!(power < plain - 1e-6, "{label}: {power} is not below the arithmetic mean {plain}");
    }
    println!("worst relative error (contrastive pair power): {worst:.3e}");
}

// ------------------------------------------------ residual fusion

#[test]
fn residual_fusion_input_gradients() {
    // Rows with all modalities, a few, one and none present: the residual's
    // weight is c / (present count), and absent blocks get none of it.
    let mut layout = ParamLayout::new();
    let fusion = FusionNetwork::register(&mut layout, 4, 6, 1.5);
    let params: Vec<f64> = layout.initialize(5);
    let mask = mask();
    let present = mask.as_slice().unwrap();
    let mut rng = Lcg(23);
    let mut x = rng.array2(7, NUM_MODALITIES * 4);
    for ((r, m), _) in mask.indexed_iter().filter(|&(_, &p)| !p) {
        x.slice_mut(ndarray::s![r, m * 4..(m + 1) * 4]).fill(0.0);
    }
    let mut c = probe(&mut rng, (7, 4));
    // The row with nothing present sits on the LeakyReLU kinks (its layer
    // inputs are the zero-initialised biases): leave it out of the loss.
    c.row_mut(2).fill(0.0);
    let forward = |x: &Array2<f64>, p: &[f64]| {
        let (mut out, mut norms) = (Array2::zeros((7, 4)), Array1::zeros(7));
        fusion.forward_rows(layout.view(p), x.view(), Some(present), out.view_mut(), norms.view_mut());
        out
    };
    let tape = fusion.forward_train_masked(layout.view(&params), x.clone(), Some(present));
    assert!((&tape.out - &forward(&x, &params)).iter().all(|d| d.abs() < 1e-12), "forward_rows and forward_train_masked agree");
    let mut grads = vec![0.0; layout.len()];
    let dx = fusion.backward(layout.view(&params), &tape, c.clone(), &mut layout.view_mut(&mut grads), true).unwrap();
    let nx = numeric_gradient(&mut x.as_slice().unwrap().to_vec(), |v| (&forward(&Array2::from_shape_vec(x.dim(), v.to_vec()).unwrap(), &params) * &c).sum());
    // Absent blocks are zero by contract and their products are skipped,
    // so only the present blocks have a numeric gradient to compare with.
    let on_present = |g: &[f64]| -> Vec<f64> {
        g.chunks(4).enumerate().filter(|&(i, _)| present[i]).flat_map(|(_, b)| b.to_vec()).collect()
    };
    assert!(rel_error(&on_present(dx.as_slice().unwrap()), &on_present(&nx)) < TOL, "d_x");
    let np = numeric_gradient(&mut params.clone(), |p| (&forward(&x, p) * &c).sum());
    assert!(rel_error(&grads, &np) < TOL, "d_params");
    // The residual moved the output: the same weights without it differ.
    let mut plain_layout = ParamLayout::new();
    let plain = FusionNetwork::register(&mut plain_layout, 4, 6, 0.0);
    let without = plain.forward_train_masked(plain_layout.view(&params), x.clone(), Some(present));
    assert!((&tape.out - &without.out).iter().any(|d| d.abs() > 1e-3));
    // The row with nothing present has no residual: it is the plain output.
    assert!((&tape.out.row(2) - &without.out.row(2)).iter().all(|d| d.abs() < 1e-15));
}

#[test]
fn every_objective_with_a_residual_fusion() {
    let mut worst: f64 = 0.0;
    for (c, base) in [(0.5, config(2, BinderKind::Bilinear)), (3.0, deep_config(&[6], Some(7), &[8], false))] {
        let model = LearnableMultiModal::<f64>::new(Config { fusion_residual: c, fused_neighbors: 3, reconstruction_decoders: true, ..base }).unwrap();
        let mut rng = Lcg(91);
        let (xs, mask, fused) = (dense_inputs(&mut rng, 7), mask(), rng.array2(7, 8));
        let batch = dense_batch(&xs, &mask, &fused);
        for objective in [Objective::SeedConsistency, Objective::FusedContrastive, Objective::CrossModal, Objective::Reconstruction] {
            let reaches = |n: &str| match objective {
                Objective::SeedConsistency => n.starts_with("fusion.") || is_embedding_path(n),
                Objective::Reconstruction => n.starts_with("fusion.") || n.starts_with("reconstruction.") || is_embedding_path(n),
                Objective::FusedContrastive => n.starts_with("fusion.") || is_embedding_path(n) || n == "fused_contrastive.log_temperature",
                _ => !n.starts_with("binder.") && !n.ends_with("log_temperature") && !n.starts_with("reconstruction."),
            };
            worst = worst.max(check_model(&model, &batch, &ObjectiveWeights::only(objective), &format!("c={c} {objective:?}"), reaches));
        }
        let mix = ObjectiveWeights([0.7, 1.3, 0.4, 2.0, 0.9, 0.8, 0.6]);
        worst = worst.max(check_model(&model, &batch, &mix, &format!("c={c} mix"), |_| true));
    }
    println!("worst relative error (residual fusion): {worst:.3e}");
}
