//! The learning API's semantics: gradients accumulate, `step` is Adam from
//! them, the random draws are fixed by (seed, counter), and a restored
//! optimizer state continues bit for bit.

use crate::common::inputs;

use grapheme_multimodal::{
    BinderKind, Config, EmbeddingSource, EncoderInput, LearnableMultiModal, Objective, ObjectiveWeights, TrainBatch,
};
use ndarray::{s, Array1, Array2, Array3, ArrayView2};

fn views(xs: &[Array2<f32>; 7]) -> [Option<ArrayView2<'_, f32>>; 7] {
    std::array::from_fn(|m| Some(xs[m].view()))
}

fn small(binder: BinderKind) -> Config {
    Config {
        embed_dim: 16,
        hidden_dim: 24,
        num_heads: 2,
        binder,
        learning_rate: 0.01,
        ..Config::default()
    }
}

fn full_mask(batch: usize) -> Array2<bool> {
    Array2::from_elem((batch, 7), true)
}

#[test]
fn gradients_accumulate_and_step_uses_them() {
    let mut model = LearnableMultiModal::<f64>::new(small(BinderKind::Additive).clone()).unwrap();
    let xs = inputs(8, 1, [18; 7]).map(|a| a.mapv(f64::from));
    let mask = full_mask(8);
    let batch = TrainBatch::inputs(EncoderInput::dense(std::array::from_fn(|m| Some(xs[m].view())), mask.view()).unwrap());
    let contrastive = ObjectiveWeights::only(Objective::Contrastive); // no random draws

    assert!(!model.has_gradients());
    let before = model.params().to_vec();
    assert!(model.step(None).unwrap().is_none(), "no gradients: step is a no-op");
    assert_eq!(model.params(), before.as_slice());

    model.backward(&batch, &contrastive).unwrap();
    assert!(model.has_gradients());
    let once = model.gradients().to_vec();
    assert!(once.iter().any(|&g| g != 0.0));
    model.backward(&batch, &contrastive).unwrap();
    for (a, b) in model.gradients().iter().zip(&once) {
        assert!((a - 2.0 * b).abs() <= 1e-12 * b.abs().max(1.0), "a second backward adds the same gradient");
    }
    let accumulated = model.gradients().to_vec();
    let report = model.step(None).unwrap().expect("gradients exist");
    assert!(report.grad_norm > 0.0 && !report.clipped);
    assert_ne!(model.params(), before.as_slice());
    assert_eq!(model.gradients(), accumulated.as_slice(), "step keeps the gradients (like PyTorch)");

    model.zero_grad();
    assert!(!model.has_gradients());
    assert!(model.gradients().iter().all(|&g| g == 0.0));
    let after = model.params().to_vec();
    assert!(model.step(None).unwrap().is_none());
    assert_eq!(model.params(), after.as_slice());
}

#[test]
fn one_default_step_changes_every_tensor_for_both_binders() {
    for binder in [BinderKind::Additive, BinderKind::Bilinear] {
        let mut model = LearnableMultiModal::<f32>::new(small(binder)).unwrap();
        let xs = inputs(16, 2, [18; 7]);
        let mask = full_mask(16);
        let batch = TrainBatch::inputs(EncoderInput::dense(views(&xs), mask.view()).unwrap());
        let before = model.params().to_vec();
        let (losses, _) = model.train_step(&batch, &ObjectiveWeights::default(), None).unwrap();
        assert!(losses.total.is_finite() && losses.total > 0.0);
        for spec in model.layout().specs() {
            let range = spec.range();
            let moved = model.params()[range.clone()].iter().zip(&before[range]).filter(|(a, b)| a != b).count();
            assert!(moved == spec.len(), "{binder:?}: {} moved {moved} of {} entries", spec.name, spec.len());
        }
    }
}

#[test]
fn draws_are_fixed_by_seed_and_counter() {
    let config = small(BinderKind::Bilinear);
    let xs = inputs(12, 3, [18; 7]);
    let mut mask = full_mask(12);
    mask.slice_mut(s![..6, 3..]).fill(false);
    let batch = TrainBatch::inputs(EncoderInput::dense(views(&xs), mask.view()).unwrap());
    let weights = ObjectiveWeights::default();
    let mut a = LearnableMultiModal::<f32>::new(config.clone()).unwrap();
    let b = LearnableMultiModal::<f32>::new(config.clone()).unwrap();
    let predicted = a.losses(&batch, &weights).unwrap();
    assert_eq!(predicted, b.losses(&batch, &weights).unwrap(), "same seed, same counter, same losses");
    let got = a.backward(&batch, &weights).unwrap();
    assert_eq!(predicted, got, "losses() previews the draws of the next backward()");
    // The counter moved: the next draws differ (cross_modal drops other modalities).
    let next = a.losses(&batch, &weights).unwrap();
    assert_ne!(next.get(Objective::CrossModal), got.get(Objective::CrossModal));
    assert_ne!(next.get(Objective::FusedContrastive), got.get(Objective::FusedContrastive), "other views");
    // Another seed, other draws (weights copied so only the draws differ).
    let mut c = LearnableMultiModal::<f32>::new(Config { seed: 9, ..config }).unwrap();
    c.params_mut().copy_from_slice(b.params());
    assert_ne!(c.losses(&batch, &weights).unwrap().get(Objective::CrossModal), predicted.get(Objective::CrossModal));
}

#[test]
fn seed_consistency_is_the_original_compute_loss() {
    let model = LearnableMultiModal::<f64>::new(Config::default()).unwrap();
    let xs = inputs(5, 4, [18; 7]).map(|a| a.mapv(f64::from));
    let mut mask = full_mask(5);
    mask.slice_mut(s![1, 2..]).fill(false);
    let input = EncoderInput::dense(std::array::from_fn(|m| Some(xs[m].view())), mask.view()).unwrap();
    let emb = model.encode(&input).unwrap();
    let fused = model.fuse(emb.view(), mask.view()).unwrap();
    // Recorded fused embeddings from "earlier": perturbed copies.
    let recorded = fused.mapv(|v| v * 0.9 + 0.01);
    let rewards = Array1::from(vec![0.0, 0.5, 1.0, -0.5, 0.25]);
    let batch = TrainBatch {
        source: EmbeddingSource::Embeddings {
            emb: emb.view(),
            mask: mask.view(),
        },
        fused: Some(recorded.view()),
        rewards: Some(rewards.view()),
    };
    let got = model.losses(&batch, &ObjectiveWeights::only(Objective::SeedConsistency)).unwrap();
    let expected: f64 = (0..5)
        .map(|r| {
            let mse = (&fused.row(r) - &recorded.row(r)).mapv(|d| d * d).mean().unwrap();
            mse * (1.0 - rewards[r])
        })
        .sum::<f64>()
        / 5.0;
    let value = got.get(Objective::SeedConsistency).unwrap();
    assert!((value - expected).abs() < 1e-14, "{value} vs {expected}");
    assert_eq!(got.total, value);
}

#[test]
fn restored_optimizer_state_continues_bit_for_bit() {
    let config = Config {
        weight_decay: 0.01,
        grad_clip: Some(0.5),
        ..small(BinderKind::Bilinear)
    };
    let batches: Vec<[Array2<f32>; 7]> = (0..6).map(|i| inputs(10, 10 + i, [18; 7])).collect();
    let mut mask = full_mask(10);
    mask.slice_mut(s![..4, 4..]).fill(false);
    let weights = ObjectiveWeights::default();
    let train = |model: &mut LearnableMultiModal<f32>, xs: &[Array2<f32>; 7]| {
        let batch = TrainBatch::inputs(EncoderInput::dense(views(xs), mask.view()).unwrap());
        model.train_step(&batch, &weights, None).unwrap();
    };
    let mut straight = LearnableMultiModal::<f32>::new(config.clone()).unwrap();
    for xs in &batches[..3] {
        train(&mut straight, xs);
    }
    let (params, state) = (straight.params().to_vec(), straight.optimizer_state());
    assert_eq!(state.step, 3);
    assert_eq!(state.rng_counter, 3);
    for xs in &batches[3..] {
        train(&mut straight, xs);
    }
    let mut resumed = LearnableMultiModal::<f32>::new(config).unwrap();
    resumed.params_mut().copy_from_slice(&params);
    resumed.set_optimizer_state(state).unwrap();
    for xs in &batches[3..] {
        train(&mut resumed, xs);
    }
    assert_eq!(resumed.params(), straight.params());
    assert_eq!(resumed.optimizer_state(), straight.optimizer_state());
}

#[test]
fn apply_gradients_is_step_from_given_gradients() {
    let config = small(BinderKind::Additive);
    let xs = inputs(8, 5, [18; 7]);
    let mask = full_mask(8);
    let batch = TrainBatch::inputs(EncoderInput::dense(views(&xs), mask.view()).unwrap());
    let mut a = LearnableMultiModal::<f32>::new(config.clone()).unwrap();
    let mut b = LearnableMultiModal::<f32>::new(config).unwrap();
    a.backward(&batch, &ObjectiveWeights::default()).unwrap();
    let grads = a.gradients().to_vec();
    a.step(Some(0.05)).unwrap();
    b.apply_gradients(&grads, Some(0.05)).unwrap();
    assert_eq!(a.params(), b.params());
    assert!(!b.has_gradients(), "apply_gradients leaves the accumulated gradients alone");
    assert!(b.apply_gradients(&grads[1..], None).is_err());
    let mut bad = grads.clone();
    bad[3] = f32::NAN;
    let before = b.params().to_vec();
    assert!(b.apply_gradients(&bad, None).unwrap_err().to_string().contains("non-finite"));
    assert_eq!(b.params(), before.as_slice(), "a failed update changes nothing");
}

#[test]
fn set_gradients_makes_a_copy_step_as_its_original() {
    let config = small(BinderKind::Additive);
    let xs = inputs(8, 6, [18; 7]);
    let mask = full_mask(8);
    let batch = TrainBatch::inputs(EncoderInput::dense(views(&xs), mask.view()).unwrap());
    let mut original = LearnableMultiModal::<f32>::new(config.clone()).unwrap();
    original.backward(&batch, &ObjectiveWeights::default()).unwrap();
    let mut copy = LearnableMultiModal::<f32>::new(config).unwrap();
    copy.set_optimizer_state(original.optimizer_state()).unwrap();
    let grads = original.gradients().to_vec();
    assert!(copy.set_gradients(&grads[1..]).is_err());
    let mut bad = grads.clone();
    bad[2] = f32::INFINITY;
    assert!(copy.set_gradients(&bad).unwrap_err().to_string().contains("non-finite"));
    assert!(!copy.has_gradients() && copy.gradients().iter().all(|&g| g == 0.0), "a refused set changes nothing");
    assert!(copy.set_gradients_of_rows(&bad, [8; 7]).is_err());
    assert_eq!(copy.pending_rows(), [0; 7], "a refused set changes nothing");
    copy.set_gradients(&grads).unwrap();
    assert!(copy.has_gradients());
    assert_eq!(copy.pending_rows(), [0; 7], "of batches not known: step records no rows for them");
    copy.set_gradients_of_rows(&grads, original.pending_rows()).unwrap();
    assert_eq!(copy.pending_rows(), [8; 7]);
    original.step(None).unwrap();
    copy.step(None).unwrap();
    assert_eq!(copy.params(), original.params());
    assert_eq!(copy.optimizer_state(), original.optimizer_state());
    assert_eq!(copy.trained_rows(), original.trained_rows(), "and records what its original does");
}

#[test]
fn bad_training_input_is_an_error_and_changes_nothing() {
    let mut model = LearnableMultiModal::<f32>::new(small(BinderKind::Additive)).unwrap();
    let xs = inputs(4, 6, [18; 7]);
    let mask = full_mask(4);
    let make = || TrainBatch::inputs(EncoderInput::dense(views(&xs), mask.view()).unwrap());
    let err = model.backward(&make(), &ObjectiveWeights::only(Objective::SeedConsistency)).unwrap_err().to_string();
    assert!(err.contains("fused") && err.contains("seed_consistency"), "{err}");
    let err = model.backward(&make(), &ObjectiveWeights([0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 0.0])).unwrap_err().to_string();
    assert!(err.contains("contrastive") && err.contains(">= 0"), "{err}");
    let fused = Array2::<f32>::zeros((3, 16));
    let batch = TrainBatch {
        fused: Some(fused.view()),
        ..make()
    };
    let err = model.backward(&batch, &ObjectiveWeights::only(Objective::SeedConsistency)).unwrap_err().to_string();
    assert!(err.contains("fused") && err.contains("(4, 16)") && err.contains("(3, 16)"), "{err}");
    let rewards = Array1::from(vec![0.0f32, f32::NAN, 0.0, 0.0]);
    let fused = Array2::<f32>::zeros((4, 16));
    let batch = TrainBatch {
        fused: Some(fused.view()),
        rewards: Some(rewards.view()),
        ..make()
    };
    let err = model.backward(&batch, &ObjectiveWeights::only(Objective::SeedConsistency)).unwrap_err().to_string();
    assert!(err.contains("rewards") && err.contains("non-finite"), "{err}");
    let emb = Array3::<f32>::zeros((4, 7, 15));
    let batch = TrainBatch {
        source: EmbeddingSource::Embeddings {
            emb: emb.view(),
            mask: mask.view(),
        },
        fused: None,
        rewards: None,
    };
    assert!(model.backward(&batch, &ObjectiveWeights::default()).is_err());
    assert!(!model.has_gradients(), "failed calls accumulate nothing");
    assert_eq!(model.optimizer_state().rng_counter, 0, "failed calls draw nothing");
    assert!(model.train_step(&make(), &ObjectiveWeights::default(), Some(0.0)).is_err());
    assert!(model.train_step(&make(), &ObjectiveWeights::default(), Some(f64::NAN)).is_err());
    assert!(!model.has_gradients());
    for bad in [
        Config { temperature: 0.0, ..Config::default() },
        Config { weight_decay: -1.0, ..Config::default() },
        Config { grad_clip: Some(0.0), ..Config::default() },
        Config { grad_clip: Some(f64::INFINITY), ..Config::default() },
    ] {
        assert!(LearnableMultiModal::<f32>::new(bad).is_err());
    }
}

#[test]
fn degenerate_batches_give_zero_losses_not_nan() {
    // One modality only: no pairs, nothing to drop. fused_contrastive still
    // tells the events' (single-modality) fused embeddings apart.
    let mut model = LearnableMultiModal::<f32>::new(small(BinderKind::Bilinear)).unwrap();
    let xs = inputs(3, 7, [18; 7]);
    let mut mask = Array2::from_elem((3, 7), false);
    mask.column_mut(2).fill(true);
    let batch = TrainBatch::inputs(EncoderInput::dense(views(&xs), mask.view()).unwrap());
    let mut pairwise = ObjectiveWeights::default();
    pairwise.0[Objective::FusedContrastive.index()] = 0.0;
    let losses = model.backward(&batch, &pairwise).unwrap();
    assert_eq!(losses.total, 0.0);
    assert!(model.gradients().iter().all(|&g| g == 0.0));
    model.zero_grad();
    let fused = model.backward(&batch, &ObjectiveWeights::only(Objective::FusedContrastive)).unwrap();
    assert!(fused.total.is_finite() && fused.total > 0.0);
    for spec in model.layout().specs() {
        let reached = model.gradients()[spec.range()].iter().any(|&g| g != 0.0);
        let expected = spec.name.starts_with("fusion.") || spec.name.starts_with("encoder.linguistic.");
        assert_eq!(reached, expected, "{}", spec.name);
    }
    // A single row: no other event to contrast with.
    let mask = Array2::from_elem((1, 7), true);
    let one = inputs(1, 8, [18; 7]);
    let batch = TrainBatch::inputs(EncoderInput::dense(views(&one), mask.view()).unwrap());
    assert_eq!(model.losses(&batch, &ObjectiveWeights::only(Objective::FusedContrastive)).unwrap().total, 0.0);
    let mask = Array2::from_elem((0, 7), false);
    let empty: [Option<ArrayView2<f32>>; 7] = Default::default();
    let batch = TrainBatch::inputs(EncoderInput::dense(empty, mask.view()).unwrap());
    assert_eq!(model.backward(&batch, &ObjectiveWeights::default()).unwrap().total, 0.0);
}

#[test]
fn bilinear_binder_shapes_and_pairs() {
    let model = LearnableMultiModal::<f64>::new(Config { binder: BinderKind::Bilinear, ..Config::default() }).unwrap();
    assert_eq!(model.num_parameters(), 70_337 - 129 + 64 * 64 + 1);
    assert_eq!(model.param("binder.weight").unwrap().shape(), &[64, 64]);
    let xs = inputs(3, 8, [18; 7]).map(|a| a.mapv(f64::from));
    let mask = full_mask(3);
    let emb = model.encode(&EncoderInput::dense(std::array::from_fn(|m| Some(xs[m].view())), mask.view()).unwrap()).unwrap();
    let pairs = model.pair_strengths(emb.view(), mask.view()).unwrap();
    let w = model.param("binder.weight").unwrap().into_dimensionality::<ndarray::Ix2>().unwrap().to_owned();
    for r in 0..3 {
        for (i, j) in [(0, 1), (4, 2), (6, 6)] {
            let (a, b) = (emb.slice(s![r, i, ..]), emb.slice(s![r, j, ..]));
            let wb: Array1<f64> = w.dot(&b);
            let logit: f64 = a.iter().zip(wb.iter()).map(|(x, y)| x * y).sum();
            let expected = 1.0 / (1.0 + (-logit).exp());
            assert!((pairs[[r, i, j]] - expected).abs() < 1e-12);
            let single = model.bind(emb.slice(s![r..r + 1, i, ..]), emb.slice(s![r..r + 1, j, ..])).unwrap()[0];
            assert!((single - expected).abs() < 1e-12);
        }
    }
}

#[test]
fn a_normalizer_is_the_same_as_feeding_standardised_inputs() {
    use grapheme_multimodal::{Modality, Normalizer};
    let config = small(BinderKind::Bilinear);
    let xs = inputs(12, 9, [18; 7]).map(|a| a.mapv(|v| f64::from(v) * 3.0 + 1.5));
    let mask = Array2::from_shape_fn((12, 7), |(b, m)| (b + 2 * m) % 4 != 0);
    let mean = Array1::from_shape_fn(18, |i| 1.5 + 0.01 * i as f64);
    let std = Array1::from_shape_fn(18, |i| 3.0 - 0.05 * i as f64);
    let standardised: [Array2<f64>; 7] =
        std::array::from_fn(|m| if m == 2 { (&xs[m] - &mean) / &std } else { xs[m].clone() });

    let mut with = LearnableMultiModal::<f64>::new(config.clone()).unwrap();
    with.set_normalizer(Modality::Linguistic, Some(Normalizer { mean: mean.clone(), std: std.clone() })).unwrap();
    let mut without = LearnableMultiModal::<f64>::new(config).unwrap();
    let weights = ObjectiveWeights::default();
    let raw = TrainBatch::inputs(EncoderInput::dense(std::array::from_fn(|m| Some(xs[m].view())), mask.view()).unwrap());
    let pre = TrainBatch::inputs(
        EncoderInput::dense(std::array::from_fn(|m| Some(standardised[m].view())), mask.view()).unwrap(),
    );
    let a = with.backward(&raw, &weights).unwrap();
    let b = without.backward(&pre, &weights).unwrap();
    assert_eq!(a.total, b.total);
    assert_eq!(with.gradients(), without.gradients(), "gradients flow through the standardisation unchanged");
    let (ea, eb) = match (&raw.source, &pre.source) {
        (EmbeddingSource::Inputs(r), EmbeddingSource::Inputs(p)) => (with.encode(r).unwrap(), without.encode(p).unwrap()),
        _ => unreachable!(),
    };
    assert_eq!(ea, eb);

    let bad = Normalizer { mean: mean.clone(), std: Array1::zeros(18) };
    assert!(with.set_normalizer(Modality::Visual, Some(bad)).unwrap_err().to_string().contains("std"));
    let short = Normalizer { mean: Array1::zeros(3), std: Array1::ones(3) };
    assert!(with.set_normalizer(Modality::Visual, Some(short)).is_err());
    with.set_normalizer(Modality::Linguistic, None).unwrap();
    assert!(with.normalizer(Modality::Linguistic).is_none());
}

#[test]
fn trained_rows_count_the_rows_of_accepted_updates_that_reach_the_encoders() {
    let mut model = LearnableMultiModal::<f32>::new(small(BinderKind::Additive)).unwrap();
    assert_eq!(model.trained_rows(), Some([0; 7]));
    let xs = inputs(8, 3, [18; 7]);
    let mut mask = Array2::from_elem((8, 7), false);
    mask.slice_mut(s![.., 0]).fill(true);
    mask.slice_mut(s![2.., 1]).fill(true);
    let batch = TrainBatch::inputs(EncoderInput::dense(views(&xs), mask.view()).unwrap());
    let weights = ObjectiveWeights::default();
    model.train_step(&batch, &weights, None).unwrap();
    assert_eq!(model.trained_rows(), Some([8, 6, 0, 0, 0, 0, 0]));

    // backward's rows count when step applies them, once; zero_grad forgets them
    model.backward(&batch, &weights).unwrap();
    model.zero_grad();
    assert!(model.step(None).unwrap().is_none());
    model.backward(&batch, &weights).unwrap();
    assert_eq!(model.trained_rows(), Some([8, 6, 0, 0, 0, 0, 0]));
    model.step(None).unwrap();
    model.step(None).unwrap();
    assert_eq!(model.trained_rows(), Some([16, 12, 0, 0, 0, 0, 0]));

    // a refused step counts nothing
    let mut bad = xs.clone();
    bad[0][[1, 0]] = f32::NAN;
    let refused = TrainBatch::inputs(EncoderInput::dense(views(&bad), mask.view()).unwrap());
    assert!(model.train_step(&refused, &weights, None).is_err());
    assert!(model.train_step(&batch, &weights, Some(f64::NAN)).is_err());
    assert_eq!(model.trained_rows(), Some([16, 12, 0, 0, 0, 0, 0]));

    // recorded embeddings train no encoder
    let emb = model.encode(&EncoderInput::dense(views(&xs), mask.view()).unwrap()).unwrap();
    let recorded = TrainBatch { source: EmbeddingSource::Embeddings { emb: emb.view(), mask: mask.view() }, fused: None, rewards: None };
    model.train_step(&recorded, &weights, None).unwrap();
    assert_eq!(model.trained_rows(), Some([16, 12, 0, 0, 0, 0, 0]));

    // unknown stays unknown; a record is restored as given
    model.set_trained_rows(None, true);
    model.train_step(&batch, &weights, None).unwrap();
    assert_eq!((model.trained_rows(), model.has_trained()), (None, None));
    model.set_trained_rows(Some([1, 2, 3, 4, 5, 6, u64::MAX]), false);
    model.note_trained_rows([1; 7]);
    assert_eq!(model.trained_rows(), Some([2, 3, 4, 5, 6, 7, u64::MAX]));
}

#[test]
fn an_update_that_reaches_no_encoder_is_recorded_as_training() {
    // A model trained only on recorded embeddings: every row 0, yet trained
    // (its encoders are as initialised, the rest is not): not a fresh model.
    let mut model = LearnableMultiModal::<f32>::new(small(BinderKind::Additive)).unwrap();
    assert_eq!(model.has_trained(), Some(false));
    let xs = inputs(8, 3, [18; 7]);
    let mask = full_mask(8);
    let emb = model.encode(&EncoderInput::dense(views(&xs), mask.view()).unwrap()).unwrap();
    let recorded = TrainBatch { source: EmbeddingSource::Embeddings { emb: emb.view(), mask: mask.view() }, fused: None, rewards: None };
    let weights = ObjectiveWeights::default();
    model.backward(&recorded, &weights).unwrap();
    assert_eq!(model.has_trained(), Some(false), "a gradient computed is no update");
    model.zero_grad();
    assert!(model.train_step(&recorded, &weights, Some(f64::NAN)).is_err());
    assert_eq!(model.has_trained(), Some(false), "nor is a refused one");
    model.train_step(&recorded, &weights, None).unwrap();
    assert_eq!((model.trained_rows(), model.has_trained()), (Some([0; 7]), Some(true)));

    // restored as given: `trained` beside rows that are all 0, implied by any row
    model.set_trained_rows(Some([0; 7]), false);
    assert_eq!(model.has_trained(), Some(false));
    model.set_trained_rows(Some([0, 3, 0, 0, 0, 0, 0]), false);
    assert_eq!(model.has_trained(), Some(true));
}

#[test]
fn apply_gradients_records_a_row_for_each_encoder_it_reaches() {
    let mut config = small(BinderKind::Additive);
    config.encoder_hidden = vec![8];
    config.shared_head = vec![16];
    config.encoder_output_dim = Some(12);
    config.encoder_skip = true;
    let mut model = LearnableMultiModal::<f32>::new(config).unwrap();
    let n = model.num_parameters();
    let range = |name: &str| model.layout().spec(model.layout().find(name).unwrap()).range();
    let (fusion, head, skip) = (range("fusion.0.weight"), range("head.0.weight"), range("encoder.auditory.skip.weight"));
    let (visual, abstract_) = (range("encoder.visual.0.bias"), range("encoder.abstract.1.weight"));

    // beyond the encoders' own tensors (fusion, the shared head): an update, no encoder row
    let mut grads = vec![0.0f32; n];
    grads[fusion.start] = 0.5;
    grads[head.start] = -0.5;
    model.apply_gradients(&grads, None).unwrap();
    assert_eq!((model.trained_rows(), model.has_trained()), (Some([0; 7]), Some(true)));

    // one row (a lower bound: the batch is not seen) per encoder reached, by any of its tensors
    grads[visual.end - 1] = 1e-30;
    grads[skip.start] = 0.25;
    grads[abstract_.start] = -2.0;
    model.apply_gradients(&grads, None).unwrap();
    model.apply_gradients(&grads, None).unwrap();
    assert_eq!(model.trained_rows(), Some([2, 2, 0, 0, 0, 0, 2]));

    // a refused update notes nothing; a batch's own rows are noted as given
    grads[0] = f32::NAN;
    assert!(model.apply_gradients(&grads, None).is_err());
    assert!(model.apply_batch_gradients(&grads, None, [5; 7]).is_err());
    assert_eq!(model.trained_rows(), Some([2, 2, 0, 0, 0, 0, 2]));
    grads[0] = 0.0;
    model.apply_batch_gradients(&grads, None, [5, 0, 1, 0, 0, 0, 0]).unwrap();
    assert_eq!(model.trained_rows(), Some([7, 2, 1, 0, 0, 0, 2]));
}
