//! The optional capacity of the config (deeper encoders, a shared head,
//! encoder dropout, learned temperatures): the defaults add nothing, the
//! names and sizes are as documented, dropout acts in training only and is
//! fixed by (seed, counter), learned temperatures stay in range, and a
//! restored state continues bit for bit.

use crate::common;

use grapheme_multimodal::nn::temperature::{MAX_TEMPERATURE, MIN_TEMPERATURE};
use grapheme_multimodal::config::MAX_DROPOUT;
use grapheme_multimodal::{Config, EncoderInput, Error, LearnableMultiModal, ModalityInput, Objective, ObjectiveWeights, TrainBatch};
use ndarray::{Array2, ArrayView2};

const DIMS: [usize; 7] = [5, 9, 3, 18, 4, 6, 2];

fn inputs(batch: usize, seed: u64) -> [Array2<f32>; 7] {
    common::inputs(batch, seed, DIMS)
}

fn views(xs: &[Array2<f32>; 7]) -> [Option<ArrayView2<'_, f32>>; 7] {
    std::array::from_fn(|m| Some(xs[m].view()))
}

/// The probe's shape, small: two hidden layers, a 12-wide encoder output,
/// a two-layer head, dropout and learned temperatures.
fn deep() -> Config {
    Config {
        embed_dim: 8,
        hidden_dim: 16,
        num_heads: 2,
        input_dims: DIMS,
        learning_rate: 0.01,
        encoder_hidden: vec![16, 10],
        encoder_output_dim: Some(12),
        shared_head: vec![12, 8],
        encoder_input_dropout: 0.1,
        encoder_hidden_dropout: 0.3,
        learnable_temperature: true,
        temperature: 0.2,
        ..Config::default()
    }
}

#[test]
fn defaults_add_nothing() {
    let model = LearnableMultiModal::<f32>::new(Config::default()).unwrap();
    assert_eq!(model.num_parameters(), 70_337);
    assert!(model.head().is_none() && model.learned_temperature(Objective::Contrastive).is_none());
    assert!(model.encoders().iter().all(|e| e.layers.len() == 1 && e.layers[0].leaky));
    assert_eq!(model.temperature(Objective::Contrastive), 0.1);
    assert_eq!(model.fusion().residual, 0.0);
    // The residual path adds no parameters.
    let residual = LearnableMultiModal::<f32>::new(Config { fusion_residual: 2.0, ..Config::default() }).unwrap();
    assert_eq!(residual.num_parameters(), 70_337);
}

#[test]
fn names_shapes_and_counts() {
    let model = LearnableMultiModal::<f32>::new(deep()).unwrap();
    let specs = model.layout().specs();
    let shape = |name: &str| specs.iter().find(|s| s.name == name).map(|s| s.shape.clone());
    assert_eq!(shape("encoder.visual.0.weight"), Some(vec![16, 5]));
    assert_eq!(shape("encoder.visual.1.weight"), Some(vec![10, 16]));
    assert_eq!(shape("encoder.visual.2.weight"), Some(vec![12, 10]));
    assert_eq!(shape("encoder.visual.2.bias"), Some(vec![12]));
    assert_eq!(shape("head.0.weight"), Some(vec![12, 12]));
    assert_eq!(shape("head.1.weight"), Some(vec![8, 12]));
    assert_eq!(shape("contrastive.log_temperature"), Some(vec![1]));
    assert_eq!(shape("fused_contrastive.log_temperature"), Some(vec![1]));
    assert!(shape("encoder.visual.weight").is_none());
    // Order: encoders (modality by modality), head, fusion, binder, attention, temperatures.
    let first = |prefix: &str| specs.iter().position(|s| s.name.starts_with(prefix)).unwrap();
    assert!(first("encoder.action.") < first("head.") && first("head.") < first("fusion."));
    assert_eq!(specs.last().unwrap().name, "fused_contrastive.log_temperature");
    let encoders: usize = DIMS.iter().map(|&d| d * 16 + 16 + 16 * 10 + 10 + 10 * 12 + 12).sum();
    let head = 12 * 12 + 12 + 12 * 8 + 8;
    let original_rest = LearnableMultiModal::<f32>::new(Config { input_dims: DIMS, embed_dim: 8, hidden_dim: 16, num_heads: 2, ..Config::default() })
        .unwrap()
        .layout()
        .specs()
        .iter()
        .filter(|s| !s.name.starts_with("encoder."))
        .map(|s| s.len())
        .sum::<usize>();
    assert_eq!(model.num_parameters(), encoders + head + original_rest + 2);
    // The head is the tail of every encoder; its last layer is linear, as is
    // the encoders' output layer before it.
    let enc = &model.encoders()[0];
    assert_eq!(enc.layers.len(), 5);
    assert_eq!(enc.layers.iter().map(|l| l.leaky).collect::<Vec<_>>(), vec![true, true, false, true, false]);
    assert_eq!(enc.layers[3], model.head().unwrap().layers[0]);
    // Temperatures start at the configured value.
    assert!((model.temperature(Objective::FusedContrastive) - 0.2).abs() < 1e-6);
    // Without a head the encoders' last layer keeps the original LeakyReLU.
    let no_head = LearnableMultiModal::<f32>::new(Config { encoder_hidden: vec![7], ..Config::default() }).unwrap();
    assert!(no_head.encoders()[0].layers.iter().all(|l| l.leaky));
    assert_eq!(no_head.layout().specs()[0].name, "encoder.visual.0.weight");
}

#[test]
fn invalid_capacity_is_refused_by_name() {
    let arg = |c: Config| match LearnableMultiModal::<f32>::new(c) {
        Err(e) => e.arg().to_string(),
        Ok(_) => panic!("accepted"),
    };
    let base = Config::default();
    assert_eq!(arg(Config { encoder_hidden: vec![4, 0], ..base.clone() }), "encoder_hidden[1]");
    assert_eq!(arg(Config { shared_head: vec![0, 64], ..base.clone() }), "shared_head[0]");
    assert_eq!(arg(Config { shared_head: vec![32], ..base.clone() }), "shared_head");
    assert_eq!(arg(Config { encoder_output_dim: Some(32), ..base.clone() }), "encoder_output_dim");
    assert_eq!(arg(Config { encoder_output_dim: Some(0), shared_head: vec![64], ..base.clone() }), "encoder_output_dim");
    assert_eq!(arg(Config { encoder_input_dropout: 1.0, ..base.clone() }), "encoder_input_dropout");
    assert_eq!(arg(Config { encoder_input_dropout: f64::NAN, ..base.clone() }), "encoder_input_dropout");
    // just below 1: the draws no longer realise the keep probability the scale assumes
    for p in [1.0 - 1e-7, 0.999, f64::from_bits(1.0f64.to_bits() - 1)] {
        assert_eq!(arg(Config { encoder_input_dropout: p, ..base.clone() }), "encoder_input_dropout", "p={p}");
        let deep = Config { encoder_hidden: vec![8], encoder_hidden_dropout: p, ..base.clone() };
        assert_eq!(arg(deep), "encoder_hidden_dropout", "p={p}");
    }
    let at_bound = Config { encoder_hidden: vec![8], encoder_input_dropout: MAX_DROPOUT, encoder_hidden_dropout: MAX_DROPOUT, ..base.clone() };
    assert!(LearnableMultiModal::<f32>::new(at_bound).is_ok());
    assert_eq!(arg(Config { encoder_hidden_dropout: 0.5, ..base.clone() }), "encoder_hidden_dropout");
    assert_eq!(arg(Config { learnable_temperature: true, temperature: 2.0, ..base.clone() }), "temperature");
    for p in [-0.5, 1.5, f64::NAN, f64::NEG_INFINITY] {
        assert_eq!(arg(Config { contrastive_pair_power: p, ..base.clone() }), "contrastive_pair_power", "p={p}");
    }
    for c in [-0.5, f64::NAN, f64::INFINITY, 2e6] {
        assert_eq!(arg(Config { fusion_residual: c, ..base.clone() }), "fusion_residual", "c={c}");
    }
    assert_eq!(arg(Config { encoder_skip: true, ..base.clone() }), "encoder_skip");
    assert_eq!(arg(Config { encoder_skip: true, encoder_hidden: vec![8], ..base.clone() }), "encoder_skip", "no head");
    assert_eq!(arg(Config { encoder_skip: true, shared_head: vec![64], ..base.clone() }), "encoder_skip", "no hidden layer");
    let huge = Config { encoder_hidden: vec![usize::MAX / 4, 8], ..base.clone() };
    assert!(matches!(LearnableMultiModal::<f32>::new(huge), Err(Error::TooLarge { .. })));
    assert!(LearnableMultiModal::<f32>::new(Config { encoder_output_dim: Some(64), ..base }).is_ok(), "E itself is fine");
}

#[test]
fn capacity_sizes_are_checked_before_anything_is_allocated() {
    let refused = |c: Config| match LearnableMultiModal::<f32>::new(c) {
        Err(e @ Error::TooLarge { .. }) => e.arg().to_string(),
        Err(e) => panic!("not TooLarge: {e}"),
        Ok(_) => panic!("accepted"),
    };
    let base = Config::default();
    // Each width within the bound, their product far beyond memory: the
    // model's memory check names the widest field.
    assert_eq!(refused(Config { encoder_hidden: vec![1 << 31, 1 << 31], ..base.clone() }), "encoder_hidden");
    assert_eq!(refused(Config { encoder_output_dim: Some(1 << 31), shared_head: vec![1 << 30, 64], ..base.clone() }), "encoder_output_dim");
    assert_eq!(refused(Config { shared_head: vec![1 << 32, 64], ..base.clone() }), "shared_head");
    assert_eq!(refused(Config { shared_head: vec![(1 << 32) + 1, 64], ..base.clone() }), "shared_head[0]");
    assert_eq!(refused(Config { encoder_output_dim: Some(usize::MAX), shared_head: vec![64], ..base.clone() }), "encoder_output_dim");
    assert_eq!(refused(Config { encoder_hidden: vec![1; 10_000], ..base }), "encoder_hidden");
}

#[test]
fn a_refused_update_leaves_the_learned_temperatures_as_they_were() {
    let mut model = LearnableMultiModal::<f32>::new(deep()).unwrap();
    // Set by hand beyond the range (it acts as its bound): only an accepted
    // update clamps it.
    model.set_param("contrastive.log_temperature", ndarray::arr1(&[5.0f32]).into_dyn().view()).unwrap();
    let before = model.params().to_vec();
    let mut grads = vec![0.0f32; model.num_parameters()];
    grads[0] = f32::NAN;
    assert!(matches!(model.apply_gradients(&grads, None), Err(Error::NonFinite { .. })));
    assert_eq!(model.params(), &before[..], "nothing changed");
    grads[0] = 0.0;
    model.apply_gradients(&grads, None).unwrap();
    assert_eq!(model.param("contrastive.log_temperature").unwrap()[[0]], 0.0, "clamped to log 1 by the accepted update");
    assert!(model.params().iter().all(|v| v.is_finite()));
}

#[test]
fn dropout_in_training_only_and_fixed_by_seed_and_counter() {
    let xs = inputs(12, 1);
    let mask = Array2::from_elem((12, 7), true);
    let batch = TrainBatch::inputs(EncoderInput::dense(views(&xs), mask.view()).unwrap());
    let weights = ObjectiveWeights::default();
    let model = LearnableMultiModal::<f32>::new(deep()).unwrap();
    let no_dropout = LearnableMultiModal::<f32>::new(Config { encoder_input_dropout: 0.0, encoder_hidden_dropout: 0.0, ..deep() }).unwrap();
    assert_eq!(model.params(), no_dropout.params(), "dropout adds no parameters and draws nothing at initialisation");
    // Inference and evaluation never drop.
    let input = EncoderInput::dense(views(&xs), mask.view()).unwrap();
    assert_eq!(model.encode(&input).unwrap(), no_dropout.encode(&input).unwrap());
    assert_eq!(model.losses(&batch, &weights).unwrap(), no_dropout.losses(&batch, &weights).unwrap());
    // Training does, and `training_losses` previews exactly what backward computes.
    let preview = model.training_losses(&batch, &weights).unwrap();
    assert_ne!(preview, model.losses(&batch, &weights).unwrap());
    let mut a = model.clone();
    assert_eq!(a.backward(&batch, &weights).unwrap(), preview);
    let mut b = model.clone();
    b.backward(&batch, &weights).unwrap();
    assert_eq!(a.gradients(), b.gradients(), "same seed and counter, same masks");
    // The counter moves the masks.
    let next = a.training_losses(&batch, &weights).unwrap();
    assert_ne!(next.get(Objective::Contrastive), preview.get(Objective::Contrastive));
}

#[test]
fn learned_temperatures_train_and_stay_in_range() {
    let xs = inputs(16, 2);
    let mask = Array2::from_elem((16, 7), true);
    let batch = TrainBatch::inputs(EncoderInput::dense(views(&xs), mask.view()).unwrap());
    let mut model = LearnableMultiModal::<f32>::new(deep()).unwrap();
    let start = model.temperature(Objective::Contrastive);
    for _ in 0..5 {
        model.train_step(&batch, &ObjectiveWeights::default(), Some(0.5)).unwrap();
    }
    let tau = model.temperature(Objective::Contrastive);
    assert_ne!(tau, start, "the temperature learns");
    // A huge step pushes θ far; the stored value is clamped after the update.
    for _ in 0..40 {
        model.train_step(&batch, &ObjectiveWeights::only(Objective::Contrastive), Some(5.0)).unwrap();
    }
    let theta = model.param("contrastive.log_temperature").unwrap()[[0]];
    assert!((MIN_TEMPERATURE.ln() as f32..=MAX_TEMPERATURE.ln() as f32).contains(&theta), "{theta}");
    // A value set by hand outside the range acts as its bound.
    model.set_param("contrastive.log_temperature", ndarray::arr1(&[-20.0f32]).into_dyn().view()).unwrap();
    assert!((model.temperature(Objective::Contrastive) - MIN_TEMPERATURE as f32).abs() < 1e-6);
    model.zero_grad();
    model.backward(&batch, &ObjectiveWeights::only(Objective::Contrastive)).unwrap();
    let id = model.learned_temperature(Objective::Contrastive).unwrap().log_temperature;
    assert_eq!(model.gradients()[model.layout().spec(id).range()], [0.0], "no gradient beyond the clamp");
}

#[test]
fn restored_state_continues_bit_for_bit() {
    let batches: Vec<[Array2<f32>; 7]> = (0..6).map(|i| inputs(10, 10 + i)).collect();
    let mask = Array2::from_elem((10, 7), true);
    let weights = ObjectiveWeights::default();
    let run = |model: &mut LearnableMultiModal<f32>, range: std::ops::Range<usize>| {
        for xs in &batches[range] {
            let batch = TrainBatch::inputs(EncoderInput::dense(views(xs), mask.view()).unwrap());
            model.train_step(&batch, &weights, None).unwrap();
        }
    };
    let mut straight = LearnableMultiModal::<f32>::new(deep()).unwrap();
    run(&mut straight, 0..6);
    let mut first = LearnableMultiModal::<f32>::new(deep()).unwrap();
    run(&mut first, 0..3);
    let mut resumed = LearnableMultiModal::<f32>::new(deep()).unwrap();
    resumed.params_mut().copy_from_slice(first.params());
    resumed.set_optimizer_state(first.optimizer_state()).unwrap();
    run(&mut resumed, 3..6);
    assert_eq!(straight.params(), resumed.params());
    assert_eq!(straight.optimizer_state(), resumed.optimizer_state());
}

#[test]
fn hidden_features_are_the_encoders_own_layers_without_dropout() {
    let xs = inputs(6, 4);
    let mut mask = Array2::from_elem((6, 7), true);
    mask[[2, 1]] = false;
    let model = LearnableMultiModal::<f32>::new(deep()).unwrap();
    let no_dropout = LearnableMultiModal::<f32>::new(Config { encoder_input_dropout: 0.0, encoder_hidden_dropout: 0.0, ..deep() }).unwrap();
    let input = EncoderInput::dense(views(&xs), mask.view()).unwrap();
    for (layer, width) in [(0, 16), (1, 10)] {
        let features = model.hidden_features(&input, layer).unwrap();
        assert_eq!(features.dim(), (6, 7, width));
        assert_eq!(features, no_dropout.hidden_features(&input, layer).unwrap(), "inference never drops");
        assert!(features.slice(ndarray::s![2, 1, ..]).iter().all(|&v| v == 0.0), "absent: zeros");
        assert!(features.iter().all(|v| v.is_finite()) && features.iter().any(|&v| v != 0.0));
    }
    let arg = |r: Result<_, Error>| r.unwrap_err().arg().to_string();
    assert_eq!(arg(model.hidden_features(&input, 2)), "layer");
    // in words: Rust's "in 0..2" read as if layer 2 were one
    let message = model.hidden_features(&input, 2).unwrap_err().to_string();
    assert!(message.contains("expected a hidden layer 0 to 1 (config.encoder_hidden = [16, 10])"), "{message}");
    let original = LearnableMultiModal::<f32>::new(Config::default()).unwrap();
    let (xs, mask) = (common::inputs(3, 1, [18; 7]), Array2::from_elem((3, 7), true));
    let input = EncoderInput::dense(views(&xs), mask.view()).unwrap();
    assert_eq!(arg(original.hidden_features(&input, 0)), "layer");
    // several components of one event have no pooling rule here
    let x = Array2::<f32>::zeros((2, DIMS[0]));
    let mut parts: [Option<ModalityInput<f32>>; 7] = Default::default();
    parts[0] = Some(ModalityInput { x: x.view().into(), rows: vec![0, 0].into(), weights: None });
    let components = EncoderInput::components(1, parts).unwrap();
    assert_eq!(arg(model.hidden_features(&components, 0)), "inputs['visual']");
}
