//! Issue 11 in the core: no size, setting or finite input may crash the
//! process, poison the weights or give a non-finite answer; the portable and
//! AVX2 kernels agree; readers racing a trainer see whole calls only.

use grapheme_multimodal::adam::MAX_STEP;
use grapheme_multimodal::kernels::threads;
use grapheme_multimodal::objectives::check_batch_memory;
use grapheme_multimodal::{
    Config, EncoderInput, Error, Graph, LearnableMultiModal, Modality, ModalityInput, Normalizer, ObjectiveWeights, OptimizerState,
    TrainBatch,
};
use ndarray::{Array1, Array2, Array3, ArrayView2};
use std::sync::{Arc, RwLock};

fn small() -> Config {
    Config { embed_dim: 16, hidden_dim: 24, num_heads: 2, learning_rate: 0.01, input_dims: [8; 7], ..Config::default() }
}

/// Seven `[batch, d]` inputs in [-1, 1], different per `seed` and modality.
fn inputs(batch: usize, seed: u64, d: usize) -> [Array2<f32>; 7] {
    std::array::from_fn(|m| Array2::from_shape_fn((batch, d), |(r, c)| ((seed as f32 + 1.3) * ((m * batch + r) * d + c) as f32 * 0.37).sin()))
}

fn views(xs: &[Array2<f32>; 7]) -> [Option<ArrayView2<'_, f32>>; 7] {
    std::array::from_fn(|m| Some(xs[m].view()))
}

fn too_large(result: Result<impl std::fmt::Debug, Error>, arg: &str) {
    match result {
        Err(Error::TooLarge { arg: got, message }) => assert_eq!(got, arg, "{message}"),
        other => panic!("expected TooLarge on {arg}, got {other:?}"),
    }
}

/// Everything a refused call must leave as it was.
fn snapshot(m: &LearnableMultiModal<f32>) -> (Vec<f32>, Vec<f32>, bool, OptimizerState<f32>) {
    (m.params().to_vec(), m.gradients().to_vec(), m.has_gradients(), m.optimizer_state())
}

#[test]
fn sizes_beyond_memory_are_errors_not_aborts() {
    too_large(LearnableMultiModal::<f32>::new(Config { embed_dim: 1_000_000_000, num_heads: 1, ..Config::default() }), "embed_dim");
    too_large(LearnableMultiModal::<f32>::new(Config { hidden_dim: 1_000_000_000, ..Config::default() }), "hidden_dim");
    let mut dims = [18; 7];
    dims[0] = 1_000_000_000_000;
    too_large(LearnableMultiModal::<f32>::new(Config { input_dims: dims, ..Config::default() }), "input_dims");
    too_large(LearnableMultiModal::<f32>::new(Config { embed_dim: 1 << 40, num_heads: 1, ..Config::default() }), "embed_dim");
    too_large(Graph::from_edges(1_000_000_000_000, &[], None, None), "num_nodes");
    too_large(Graph::from_edges(usize::MAX, &[], None, None), "num_nodes");
    let empty: [Option<ModalityInput<f32>>; 7] = Default::default();
    too_large(EncoderInput::components(usize::MAX / 2, empty), "batch_size");
    let weights = ObjectiveWeights::default();
    too_large(check_batch_memory::<f32>(200_000, &weights), "batch_size");
    check_batch_memory::<f32>(1024, &weights).unwrap();
}

#[test]
fn a_finite_setting_cannot_poison_the_weights() {
    let err = LearnableMultiModal::<f32>::new(Config { learning_rate: 1e300, ..small() }).unwrap_err();
    assert_eq!(err.arg(), "learning_rate", "{err}");
    let err = LearnableMultiModal::<f32>::new(Config { weight_decay: 1e300, ..small() }).unwrap_err();
    assert_eq!(err.arg(), "weight_decay", "{err}");
    let err = LearnableMultiModal::<f32>::new(Config { temperature: 1e-300, ..small() }).unwrap_err();
    assert_eq!(err.arg(), "temperature", "{err}");

    let mut model = LearnableMultiModal::<f32>::new(small()).unwrap();
    let xs = inputs(16, 1, 8);
    let mask = Array2::from_elem((16, 7), true);
    let batch = TrainBatch::inputs(EncoderInput::dense(views(&xs), mask.view()).unwrap());
    let weights = ObjectiveWeights::default();
    model.train_step(&batch, &weights, None).unwrap();
    let before = snapshot(&model);
    let err = model.train_step(&batch, &weights, Some(1e300)).unwrap_err();
    assert_eq!(err.arg(), "lr", "{err}");
    assert_eq!(snapshot(&model), before, "a refused step changes nothing");
    let mut huge = ObjectiveWeights::default();
    huge.0[1] = 1e39; // beyond float32
    assert!(model.train_step(&batch, &huge, None).is_err());
    assert_eq!(snapshot(&model), before);

    // Gradients whose squares overflow float32: bounded inside Adam, so the
    // moments stay finite (the state loadable) and the step is about lr.
    let grads = vec![3e38f32; model.num_parameters()];
    let before = model.params().to_vec();
    model.apply_gradients(&grads, None).unwrap();
    let state = model.optimizer_state();
    assert!(state.v.iter().chain(&state.m).all(|v| v.is_finite()));
    let moved = model.params().iter().zip(&before).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(moved < 0.1, "a huge gradient moves a weight by about lr, not more: {moved}");
    model.set_optimizer_state(state.clone()).unwrap();

    // An update that would overflow a weight is refused whole, naming the cause.
    let mut model = LearnableMultiModal::<f32>::new(small()).unwrap();
    let big = Array1::from_elem(16, 3.3e38f32).into_dyn();
    model.set_param("encoder.visual.bias", big.view()).unwrap();
    let before = snapshot(&model);
    let grads = vec![-1.0f32; model.num_parameters()];
    let err = model.apply_gradients(&grads, Some(3e37)).unwrap_err();
    assert!(matches!(err, Error::Overflow { .. }) && err.arg() == "lr", "{err}");
    assert!(err.to_string().contains("encoder.visual.bias"), "{err}");
    assert_eq!(snapshot(&model), before);
}

#[test]
fn a_binder_logit_that_overflows_is_refused_not_saturated_to_the_wrong_strength() {
    // Additive binder weights 1 on four entries of `a` holding 2e38, 2e38, -3e38, -3e38: the
    // logit is -2e38 (strength 0), but a partial sum of the two positives overflows to +inf,
    // whose sigmoid answered 1 without a word. Placed at several strides, so that some
    // placement shares an accumulator in the portable and the AVX2 kernels alike.
    let config = Config { embed_dim: 64, num_heads: 4, ..Config::default() };
    let mut model = LearnableMultiModal::<f32>::new(config).unwrap();
    for step in [1usize, 2, 4, 8, 16] {
        let mut w = ndarray::Array2::<f32>::zeros((1, 128));
        let mut a = Array2::<f32>::zeros((1, 64));
        for (k, value) in [2e38f32, 2e38, -3e38, -3e38].into_iter().enumerate() {
            w[[0, k * step]] = 1.0;
            a[[0, k * step]] = value;
        }
        model.set_param("binder.weight", w.into_dyn().view()).unwrap();
        model.set_param("binder.bias", Array1::<f32>::zeros(1).into_dyn().view()).unwrap();
        let b = Array2::<f32>::zeros((1, 64));
        match model.bind(a.view(), b.view()) {
            Err(err) => assert!(matches!(err, Error::Overflow { .. }) && err.arg() == "a", "{err}"),
            Ok(s) => assert_eq!(s[0], 0.0, "stride {step}: the strength of a logit of -2e38"),
        }
        let mut emb = Array3::<f32>::zeros((1, 7, 64));
        emb.slice_mut(ndarray::s![0, 0, ..]).assign(&a.row(0));
        emb[[0, 1, 0]] = 1e-3;
        let mask = Array2::from_shape_fn((1, 7), |(_, m)| m < 2);
        match model.pair_strengths(emb.view(), mask.view()) {
            Err(err) => assert!(matches!(err, Error::Overflow { .. }) && err.arg() == "embeddings", "{err}"),
            Ok(s) => assert_eq!(s[[0, 0, 1]], 0.0, "stride {step}: the strength of a logit of -2e38"),
        }
    }
}

#[test]
fn the_step_counters_never_wrap() {
    let mut model = LearnableMultiModal::<f32>::new(small()).unwrap();
    let n = model.num_parameters();
    let state = |step, rng_counter| OptimizerState { m: vec![0.0; n], v: vec![1.0; n], step, rng_counter };
    assert!(model.set_optimizer_state(state(u64::MAX, 0)).is_err());
    assert!(model.set_optimizer_state(state(1, u64::MAX)).is_err());
    model.set_optimizer_state(state(MAX_STEP, 0)).unwrap();
    let before = snapshot(&model);
    let err = model.apply_gradients(&vec![0.1; n], None).unwrap_err();
    assert!(err.to_string().contains("maximum"), "{err}");
    assert_eq!(snapshot(&model), before);
}

#[test]
fn finite_inputs_give_finite_outputs_or_errors() {
    let mut model = LearnableMultiModal::<f32>::new(small()).unwrap();
    let mask = Array2::from_elem((2, 7), true);
    // Encoder inputs whose products overflow float32: the same unit
    // embeddings as the inputs scaled down (the encoder is homogeneous up to
    // its bias, which is negligible here).
    let huge: [Array2<f32>; 7] = std::array::from_fn(|_| Array2::from_elem((2, 8), 3e38));
    let unit: [Array2<f32>; 7] = std::array::from_fn(|_| Array2::from_elem((2, 8), 1e30));
    let emb = model.encode(&EncoderInput::dense(views(&huge), mask.view()).unwrap()).unwrap();
    let reference = model.encode(&EncoderInput::dense(views(&unit), mask.view()).unwrap()).unwrap();
    for (a, b) in emb.iter().zip(&reference) {
        assert!(a.is_finite() && (a - b).abs() < 1e-5, "{a} vs {b}");
    }
    for row in emb.rows() {
        assert!((row.dot(&row) - 1.0).abs() < 1e-5);
    }
    // Embeddings far from unit length: an error on fuse, never NaN.
    let big = Array3::from_elem((2, 7, 16), 3e38f32);
    let err = model.fuse(big.view(), mask.view()).unwrap_err();
    assert!(matches!(err, Error::Overflow { .. }) && err.arg() == "embeddings", "{err}");
    let query = Array2::from_elem((2, 16), 3e38f32);
    assert!(matches!(model.attend(query.view(), big.view(), mask.view()), Err(Error::Overflow { .. })));
    // Moderately large embeddings (squares overflow, values do not): unit rows.
    let fused = model.fuse(Array3::from_elem((2, 7, 16), 1e30f32).view(), mask.view()).unwrap();
    assert!(fused.rows().into_iter().all(|r| (r.dot(&r) - 1.0).abs() < 1e-5));
    // A standard deviation dividing by which overflows: refused.
    let tiny = Normalizer { mean: Array1::zeros(8), std: Array1::from_elem(8, 1e-44) };
    let err = model.set_normalizer(Modality::Visual, Some(tiny)).unwrap_err();
    assert_eq!(err.arg(), "normalization['visual'].std", "{err}");
    // Normalised inputs that overflow: an error naming the modality.
    let halves = Normalizer { mean: Array1::zeros(8), std: Array1::from_elem(8, 1e-3) };
    model.set_normalizer(Modality::Visual, Some(halves)).unwrap();
    let err = model.encode(&EncoderInput::dense(views(&huge), mask.view()).unwrap()).unwrap_err();
    assert_eq!(err.arg(), "inputs['visual']", "{err}");
}

/// Readers encode while a trainer trains, all on one model behind a
/// readers-writer lock (as the Python bindings share it): the trainer ends
/// where training alone ends, and every read equals the encoding at some
/// step (no read sees a half-applied update).
#[test]
fn readers_racing_a_trainer_see_whole_steps() {
    let steps = 12;
    let xs = inputs(32, 3, 8);
    let mask = Array2::from_elem((32, 7), true);
    let weights = ObjectiveWeights::default();
    let train = |model: &mut LearnableMultiModal<f32>| {
        let batch = TrainBatch::inputs(EncoderInput::dense(views(&xs), mask.view()).unwrap());
        model.train_step(&batch, &weights, None).unwrap();
    };
    let encode = |model: &LearnableMultiModal<f32>| model.encode(&EncoderInput::dense(views(&xs), mask.view()).unwrap()).unwrap();

    let mut alone = LearnableMultiModal::<f32>::new(small()).unwrap();
    let mut snapshots = vec![encode(&alone)];
    for _ in 0..steps {
        train(&mut alone);
        snapshots.push(encode(&alone));
    }

    let shared = Arc::new(RwLock::new(LearnableMultiModal::<f32>::new(small()).unwrap()));
    let seen = std::thread::scope(|scope| {
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let shared = Arc::clone(&shared);
                scope.spawn(move || (0..40).map(|_| encode(&shared.read().unwrap())).collect::<Vec<_>>())
            })
            .collect();
        for _ in 0..steps {
            train(&mut shared.write().unwrap());
            std::thread::yield_now();
        }
        readers.into_iter().flat_map(|r| r.join().unwrap()).collect::<Vec<_>>()
    });
    let model = shared.read().unwrap();
    assert_eq!(model.params(), alone.params(), "the trainer ends where training alone ends");
    assert_eq!(model.optimizer_state(), alone.optimizer_state());
    for emb in &seen {
        assert!(snapshots.contains(emb), "every read is the encoding at some step");
    }
}

/// The same model computed here and in a child process on the portable
/// kernels (`GRAPHEME_MM_PORTABLE=1`): the same answers (up to the rounding
/// of a different summation order), NaN handling included.
#[test]
fn portable_and_avx2_kernels_agree() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args(["--exact", "trust::portable_child_prints_outputs", "--nocapture", "--test-threads=1"])
        .env(grapheme_multimodal::kernels::PORTABLE_ENV, "1")
        .env(CHILD, "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = |tag: &str| -> (String, Vec<f64>) {
        let line = text
            .lines()
            .find_map(|l| l.find(tag).map(|i| &l[i + tag.len()..]))
            .unwrap_or_else(|| panic!("child printed no {tag}: {}", &text[..text.len().min(2000)]));
        let (path, values) = line.split_once(' ').unwrap();
        (path.to_string(), values.split(',').map(|v| v.parse().unwrap()).collect())
    };
    let ((path, child), (_, child_params)) = (line("OUTPUTS "), line("PARAMS "));
    assert_eq!(path, "portable", "the switch forces the portable kernels");
    let (here, params) = outputs();
    assert_eq!(child.len(), here.len());
    for (i, (a, b)) in here.iter().zip(&child).enumerate() {
        let same = (a.is_nan() && b.is_nan()) || (a - b).abs() <= 2e-4 * a.abs().max(1.0);
        assert!(same, "output {i}: {a} here ({}) vs {b} portable", grapheme_multimodal::kernels::kernel_path());
    }
    // After training steps the weights agree as a whole (Adam's first steps
    // are ±lr, so a near-zero gradient's rounding may flip a single one).
    let diff: f64 = params.iter().zip(&child_params).map(|(a, b)| (a - b).powi(2)).sum::<f64>().sqrt();
    let norm: f64 = params.iter().map(|a| a * a).sum::<f64>().sqrt();
    assert!(diff <= 1e-2 * norm, "weights after training differ by {diff} (norm {norm})");
}

const CHILD: &str = "GM_TRUST_PORTABLE_CHILD";

#[test]
fn portable_child_prints_outputs() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let join = |v: &[f64]| v.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(",");
    let (outputs, params) = outputs();
    let path = grapheme_multimodal::kernels::kernel_path();
    println!("\nOUTPUTS {path} {}", join(&outputs));
    println!("PARAMS {path} {}", join(&params));
}

/// Embeddings, fused embeddings, the losses of three training steps and the
/// softmax exponentials of NaN, ±inf and huge logits; then the weights after
/// those steps.
fn outputs() -> (Vec<f64>, Vec<f64>) {
    let _guard = crate::common::THREADS.lock().unwrap_or_else(|e| e.into_inner());
    let before = threads::num_threads();
    threads::set_num_threads(1).unwrap();
    let out = outputs_on_one_thread();
    threads::set_num_threads(before).unwrap();
    out
}

fn outputs_on_one_thread() -> (Vec<f64>, Vec<f64>) {
    let mut model = LearnableMultiModal::<f32>::new(small()).unwrap();
    let xs = inputs(64, 5, 8);
    let mask = Array2::from_elem((64, 7), true);
    let input = EncoderInput::dense(views(&xs), mask.view()).unwrap();
    let (emb, fused) = model.encode_and_fuse(&input).unwrap();
    let mut out: Vec<f64> = emb.iter().chain(fused.iter()).map(|&v| v as f64).collect();
    let batch = TrainBatch::inputs(input);
    for _ in 0..3 {
        let (losses, _) = model.train_step(&batch, &ObjectiveWeights::default(), None).unwrap();
        out.push(losses.total as f64);
    }
    let mut row = vec![f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 100.0, -100.0, -3.0, 0.0, -90.0, 1.0];
    let mut cols = vec![0.0f32; row.len()];
    grapheme_multimodal::kernels::exp_row_col_sums(&mut row, 0.0, &mut cols);
    out.extend(row.iter().map(|&v| v as f64));
    (out, model.params().iter().map(|&v| v as f64).collect())
}
