//! Forward behaviour of the whole model against the SPEC.

use grapheme_multimodal::batch::Presence;
use grapheme_multimodal::features::fingerprint;
use grapheme_multimodal::nn::ops::{l2_normalize_rows, leaky_relu, sigmoid};
use grapheme_multimodal::{Config, EncoderInput, Graph, LearnableMultiModal, ModalityInput, NUM_MODALITIES};
use ndarray::{array, s, Array1, Array2, Array3, ArrayView2, Axis};

fn model(config: Config) -> LearnableMultiModal<f64> {
    LearnableMultiModal::new(config).unwrap()
}

fn random_input(batch: usize, seed: u64, dims: [usize; 7]) -> ([Array2<f64>; 7], Array2<bool>) {
    // A tiny LCG keeps the test free of extra dependencies.
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut next = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((state >> 33) as f64 / (1u64 << 31) as f64) * 2.0 - 1.0
    };
    let xs = std::array::from_fn(|m| Array2::from_shape_simple_fn((batch, dims[m]), &mut next));
    let mask = Array2::from_shape_fn((batch, NUM_MODALITIES), |(b, m)| (b + m) % 3 != 0);
    (xs, mask)
}

fn views(xs: &[Array2<f64>; 7]) -> [Option<ArrayView2<'_, f64>>; 7] {
    std::array::from_fn(|m| Some(xs[m].view()))
}

#[test]
fn default_parameter_count_is_70337() {
    let m = model(Config::default());
    assert_eq!(m.num_parameters(), 70_337);
    let names: Vec<_> = m.layout().specs().iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names[0], "encoder.visual.weight");
    assert!(names.contains(&"fusion.2.bias") && names.contains(&"attention.o.weight"));
}

#[test]
fn same_seed_same_bits_other_seed_other_weights() {
    let a = LearnableMultiModal::<f32>::new(Config::default()).unwrap();
    let b = LearnableMultiModal::<f32>::new(Config::default()).unwrap();
    let c = LearnableMultiModal::<f32>::new(Config { seed: 1, ..Config::default() }).unwrap();
    assert_eq!(a.params(), b.params());
    assert_ne!(a.params(), c.params());
}

#[test]
fn encoder_matches_formula_and_absent_slots_are_zero() {
    let m = model(Config::default());
    let text = Graph::from_text("hello");
    let f = Array1::from(fingerprint(&text).map(f64::from).to_vec());
    let (xs, mask) = random_input(4, 3, [18; 7]);
    let mut xs = xs;
    xs[2].row_mut(2).assign(&f);
    let emb = m.encode(&EncoderInput::dense(views(&xs), mask.view()).unwrap()).unwrap();
    // Hand formula for the linguistic slot of row 2.
    let w = m.param("encoder.linguistic.weight").unwrap().into_dimensionality::<ndarray::Ix2>().unwrap();
    let mut z = w.dot(&f).mapv(leaky_relu).insert_axis(Axis(0));
    l2_normalize_rows(z.view_mut());
    assert!(mask[[2, 2]]);
    for (a, b) in emb.slice(s![2, 2, ..]).iter().zip(z.iter()) {
        assert!((a - b).abs() < 1e-12);
    }
    for ((b, mo), &present) in mask.indexed_iter() {
        let norm = emb.slice(s![b, mo, ..]).mapv(|v| v * v).sum().sqrt();
        assert!(if present { (norm - 1.0).abs() < 1e-12 } else { norm == 0.0 });
    }
}

#[test]
fn fusion_matches_formula_and_ignores_absent_slots() {
    let m = model(Config { embed_dim: 8, hidden_dim: 16, num_heads: 2, ..Config::default() });
    let (xs, mask) = random_input(5, 9, [18; 7]);
    let emb = m.encode(&EncoderInput::dense(views(&xs), mask.view()).unwrap()).unwrap();
    let fused = m.fuse(emb.view(), mask.view()).unwrap();
    let layer = |x: Array1<f64>, i: usize| {
        let w = m.param(&format!("fusion.{i}.weight")).unwrap().into_dimensionality::<ndarray::Ix2>().unwrap().to_owned();
        let b = m.param(&format!("fusion.{i}.bias")).unwrap().into_dimensionality::<ndarray::Ix1>().unwrap().to_owned();
        (w.dot(&x) + b).mapv(leaky_relu)
    };
    for r in 0..5 {
        let x = emb.slice(s![r, .., ..]).iter().copied().collect::<Array1<f64>>();
        let out = layer(layer(layer(x, 0), 1), 2);
        let out = &out / out.mapv(|v| v * v).sum().sqrt().max(1e-8);
        for (a, b) in fused.row(r).iter().zip(out.iter()) {
            assert!((a - b).abs() < 1e-12);
        }
    }
    // Garbage in absent slots must not change the result.
    let mut dirty = emb.clone();
    for ((b, mo), &present) in mask.indexed_iter() {
        if !present {
            dirty.slice_mut(s![b, mo, ..]).fill(123.0);
        }
    }
    assert_eq!(m.fuse(dirty.view(), mask.view()).unwrap(), fused);
}

#[test]
fn binder_matches_formula_and_pairs_agree() {
    let m = model(Config::default());
    let (xs, mask) = random_input(3, 5, [18; 7]);
    let emb = m.encode(&EncoderInput::dense(views(&xs), mask.view()).unwrap()).unwrap();
    let w = m.param("binder.weight").unwrap().iter().copied().collect::<Vec<_>>();
    let a = emb.slice(s![.., 0, ..]).to_owned();
    let b = emb.slice(s![.., 1, ..]).to_owned();
    let strengths = m.bind(a.view(), b.view()).unwrap();
    for r in 0..3 {
        let logit: f64 = (0..64).map(|i| w[i] * a[[r, i]] + w[64 + i] * b[[r, i]]).sum();
        assert!((strengths[r] - sigmoid(logit)).abs() < 1e-12);
    }
    let pairs = m.pair_strengths(emb.view(), mask.view()).unwrap();
    for r in 0..3 {
        for i in 0..7 {
            for j in 0..7 {
                if mask[[r, i]] && mask[[r, j]] {
                    let s = m.bind(emb.slice(s![r..r + 1, i, ..]), emb.slice(s![r..r + 1, j, ..])).unwrap()[0];
                    assert!((pairs[[r, i, j]] - s).abs() < 1e-12);
                } else {
                    assert_eq!(pairs[[r, i, j]], 0.0);
                }
            }
        }
    }
}

/// The original single-head formula written out directly.
fn single_head_reference(m: &LearnableMultiModal<f64>, q: &Array1<f64>, emb: &Array2<f64>, present: &[bool]) -> (Vec<f64>, Array1<f64>) {
    let p = |n: &str| m.param(n).unwrap().into_dimensionality::<ndarray::Ix2>().unwrap().to_owned();
    let (wq, wk, wv, wo) = (p("attention.q.weight"), p("attention.k.weight"), p("attention.v.weight"), p("attention.o.weight"));
    let e = q.len() as f64;
    let qq = wq.dot(q);
    let scores: Vec<f64> = (0..7).map(|i| qq.dot(&wk.dot(&emb.row(i))) / e.sqrt()).collect();
    let max = (0..7).filter(|&i| present[i]).map(|i| scores[i]).fold(f64::NEG_INFINITY, f64::max);
    let exps: Vec<f64> = (0..7).map(|i| if present[i] { (scores[i] - max).exp() } else { 0.0 }).collect();
    let total: f64 = exps.iter().sum();
    let weights: Vec<f64> = exps.iter().map(|x| if total > 0.0 { x / total } else { 0.0 }).collect();
    let mut ctx = Array1::zeros(q.len());
    for (i, &w) in weights.iter().enumerate() {
        ctx.scaled_add(w, &wv.dot(&emb.row(i)));
    }
    (weights, wo.dot(&ctx))
}

#[test]
fn one_head_attention_is_the_original_formula() {
    let m = model(Config { num_heads: 1, ..Config::default() });
    let (xs, mut mask) = random_input(4, 11, [18; 7]);
    mask.row_mut(3).fill(false);
    let emb = m.encode(&EncoderInput::dense(views(&xs), mask.view()).unwrap()).unwrap();
    let query = Array2::from_shape_fn((4, 64), |(b, i)| ((b * 64 + i) as f64 * 0.37).sin());
    let out = m.attend(query.view(), emb.view(), mask.view()).unwrap();
    for r in 0..4 {
        let present: Vec<bool> = mask.row(r).to_vec();
        let (w, att) = single_head_reference(&m, &query.row(r).to_owned(), &emb.slice(s![r, .., ..]).to_owned(), &present);
        for (i, &w) in w.iter().enumerate() {
            assert!((out.weights[[r, i]] - w).abs() < 1e-12);
        }
        for (a, b) in out.attended.row(r).iter().zip(att.iter()) {
            assert!((a - b).abs() < 1e-12);
        }
    }
    assert!(out.weights.row(3).iter().all(|&w| w == 0.0));
    assert!(out.attended.row(3).iter().all(|&v| v == 0.0));
}

#[test]
fn multi_head_weights_sum_to_one_over_present_modalities() {
    let m = model(Config::default());
    let (xs, mask) = random_input(6, 13, [18; 7]);
    let emb = m.encode(&EncoderInput::dense(views(&xs), mask.view()).unwrap()).unwrap();
    let query = emb.slice(s![.., 0, ..]).to_owned();
    let out = m.attend(query.view(), emb.view(), mask.view()).unwrap();
    assert_eq!(out.head_weights.dim(), (6, 4, 7));
    for r in 0..6 {
        let total: f64 = out.weights.row(r).sum();
        assert!((total - 1.0).abs() < 1e-12);
        for i in 0..7 {
            if !mask[[r, i]] {
                assert_eq!(out.weights[[r, i]], 0.0);
            }
        }
    }
}

#[test]
fn multi_head_with_distinct_heads_differs_from_averaging_one_head() {
    // Same weights, 1 vs 2 heads: the head split must change the weights.
    let one = model(Config { num_heads: 1, embed_dim: 8, hidden_dim: 8, ..Config::default() });
    let mut two = model(Config { num_heads: 2, embed_dim: 8, hidden_dim: 8, ..Config::default() });
    two.params_mut().copy_from_slice(one.params());
    let (xs, mask) = random_input(2, 17, [18; 7]);
    let emb = one.encode(&EncoderInput::dense(views(&xs), mask.view()).unwrap()).unwrap();
    let q = emb.slice(s![.., 1, ..]).to_owned();
    let a = one.attend(q.view(), emb.view(), mask.view()).unwrap();
    let b = two.attend(q.view(), emb.view(), mask.view()).unwrap();
    assert!((&a.weights - &b.weights).mapv(f64::abs).sum() > 1e-6);
}

#[test]
fn components_pool_and_dense_agree() {
    let m = model(Config::default());
    let (xs, mask) = random_input(3, 21, [18; 7]);
    let dense = m.encode(&EncoderInput::dense(views(&xs), mask.view()).unwrap()).unwrap();
    let parts = std::array::from_fn(|mo| {
        let rows: Vec<usize> = (0..3).filter(|&b| mask[[b, mo]]).collect();
        (!rows.is_empty()).then(|| ModalityInput { x: xs[mo].select(Axis(0), &rows).into(), rows: rows.into(), weights: None })
    });
    let comp = m.encode(&EncoderInput::components(3, parts).unwrap()).unwrap();
    assert_eq!(dense, comp);
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let m = model(Config::default());
    let (mut xs, mask) = random_input(2, 1, [18; 7]);
    xs[0] = Array2::zeros((2, 5));
    let err = m.encode(&EncoderInput::dense(views(&xs), mask.view()).unwrap()).unwrap_err().to_string();
    assert!(err.contains("visual") && err.contains("18") && err.contains("5"), "{err}");
    let (mut xs, mask) = random_input(2, 1, [18; 7]);
    xs[1][[1, 3]] = f64::NAN;
    assert!(mask[[1, 1]]);
    let err = m.encode(&EncoderInput::dense(views(&xs), mask.view()).unwrap()).unwrap_err().to_string();
    assert!(err.contains("row 1") && err.contains("auditory"), "{err}");
    assert!(err.contains("row 1 (a row marked present)"), "{err}");
    // A caller that takes no mask hears of no marks (the words were cut out of the message in Python).
    let unmarked = EncoderInput::dense(views(&xs), mask.view()).unwrap().with_presence(Presence::Unmarked);
    let err = m.encode(&unmarked).unwrap_err().to_string();
    assert_eq!(err, "inputs['auditory']: contains a non-finite value (NaN or inf) at row 1; expected finite numbers");
    let emb = Array3::<f64>::zeros((2, 6, 64));
    assert!(m.fuse(emb.view(), mask.view()).is_err());
    let q = array![[1.0f64]];
    let emb = Array3::<f64>::zeros((2, 7, 64));
    assert!(m.attend(q.view(), emb.view(), mask.view()).is_err());
    assert!(LearnableMultiModal::<f32>::new(Config { num_heads: 5, ..Config::default() }).is_err());
    assert!(LearnableMultiModal::<f32>::new(Config { embed_dim: 0, ..Config::default() }).is_err());
}
