//! Regression harness for the hot kernels (`cargo bench -p
//! grapheme-multimodal-bench`; not part of the test run). Single-threaded
//! unless `GRAPHEME_MM_NUM_THREADS` says otherwise, so that numbers compare
//! across machines and runs:
//!
//! ```text
//! cargo bench -p grapheme-multimodal-bench -- --save-baseline before   # on the old code
//! cargo bench -p grapheme-multimodal-bench -- --baseline before        # on the new code
//! cargo bench -p grapheme-multimodal-bench -- linear                   # one group
//! ```
//!
//! Shapes are the default model's (E = 64, H = 128, 18 inputs per modality).
//! Groups: `linear` (one layer), `gemm_contrastive_1024` (the contrastive
//! objective's products for one pair), `forward` (encode, fuse, both at
//! B = 1, 64, 4096), `train_step` (default objectives + backward + Adam at
//! B = 1, 64, 1024), `featurise` (text → graph → 18 features).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use grapheme_multimodal::features::{fingerprint, text_fingerprint};
use grapheme_multimodal::kernels::{gemm, threads, Epilogue};
use grapheme_multimodal::nn::ops::linear_t;
use grapheme_multimodal::{Config, EncoderInput, Graph, LearnableMultiModal, ObjectiveWeights, TextUnit, TrainBatch};
use ndarray::{s, Array1, Array2, ArrayView2};
use std::hint::black_box;
use std::time::Duration;

fn lcg(seed: u64) -> impl FnMut() -> f32 {
    let mut state = seed;
    move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0) as f32
    }
}

fn matrix(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    Array2::from_shape_simple_fn((rows, cols), lcg(seed))
}

fn setup() {
    if std::env::var("GRAPHEME_MM_NUM_THREADS").is_err() {
        threads::set_num_threads(1).expect("1 thread");
    }
}

/// `x · Wᵀ + b` (then LeakyReLU) at the model's layer shapes, as the model
/// computes it: the weight transposed once (the model caches `Wᵀ`), the
/// bias and activation in the product's epilogue, a fresh output array.
/// Throughput in FLOPs.
fn bench_linear(c: &mut Criterion) {
    setup();
    let mut group = c.benchmark_group("linear");
    for &(name, fan_in, fan_out) in &[("encoder 18->64", 18, 64), ("fusion.0 448->64", 448, 64), ("fusion.1 64->128", 64, 128), ("fusion.2 128->64", 128, 64)] {
        let w = matrix(fan_out, fan_in, 1);
        let wt = w.t().as_standard_layout().into_owned();
        let b = Array1::from_shape_simple_fn(fan_out, lcg(2));
        let bias = b.as_slice().expect("contiguous");
        for &batch in &[1usize, 64, 4096] {
            let x = matrix(batch, fan_in, 3);
            group.throughput(Throughput::Elements((2 * batch * fan_in * fan_out) as u64));
            group.bench_with_input(BenchmarkId::new(name, batch), &batch, |bench, _| {
                bench.iter(|| {
                    let mut y = Array2::zeros((batch, fan_out));
                    linear_t(x.view(), wt.view(), Some(bias), true, y.view_mut());
                    black_box(y)
                })
            });
        }
    }
    group.finish();
}

/// The contrastive objective's three products for one pair of modalities at
/// B = 1024: `S = A Bᵀ`, `dA = dS B`, `dB = dSᵀ A` (A, B: one modality's slots
/// of `[B, 7, E]`, i.e. strided rows).
fn bench_contrastive_gemms(c: &mut Criterion) {
    setup();
    let (n, e) = (1024, 64);
    let emb = matrix(n, 7 * e, 5);
    let a = emb.slice(s![.., ..e]);
    let b = emb.slice(s![.., e..2 * e]);
    let bt = b.t().as_standard_layout().into_owned();
    let d = matrix(n, n, 6);
    let mut group = c.benchmark_group("gemm_contrastive_1024");
    group.throughput(Throughput::Elements((2 * n * n * e) as u64));
    let mut s_out = Array2::zeros((n, n));
    group.bench_function("S = A Bt", |bench| bench.iter(|| gemm(a, bt.view(), s_out.view_mut(), Epilogue::scaled(10.0))));
    let mut da = Array2::zeros((n, e));
    group.bench_function("dA = dS B", |bench| bench.iter(|| gemm(d.view(), b, da.view_mut(), Epilogue::store())));
    group.bench_function("dB = dSt A", |bench| bench.iter(|| gemm(d.t(), a, da.view_mut(), Epilogue::store())));
    group.finish();
}

fn inputs(batch: usize) -> Vec<Array2<f32>> {
    (0..7).map(|m| matrix(batch, 18, 10 + m as u64)).collect()
}

fn views(xs: &[Array2<f32>]) -> [Option<ArrayView2<'_, f32>>; 7] {
    std::array::from_fn(|m| Some(xs[m].view()))
}

/// The batched forward: encoders, fusion, both.
fn bench_forward(c: &mut Criterion) {
    setup();
    let model = LearnableMultiModal::<f32>::new(Config::default()).expect("model");
    let mut group = c.benchmark_group("forward");
    for &batch in &[1usize, 64, 4096] {
        let xs = inputs(batch);
        let mask = Array2::from_elem((batch, 7), true);
        let input = EncoderInput::dense(views(&xs), mask.view()).expect("input");
        let emb = model.encode(&input).expect("encode");
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(BenchmarkId::new("encode", batch), &batch, |bench, _| bench.iter(|| black_box(model.encode(&input).expect("encode"))));
        group.bench_with_input(BenchmarkId::new("fuse", batch), &batch, |bench, _| {
            bench.iter(|| black_box(model.fuse(emb.view(), mask.view()).expect("fuse")))
        });
        group.bench_with_input(BenchmarkId::new("encode_and_fuse", batch), &batch, |bench, _| {
            bench.iter(|| black_box(model.encode_and_fuse(&input).expect("forward")))
        });
    }
    group.finish();
}

/// One training step with the default objectives (7 modalities present).
fn bench_training(c: &mut Criterion) {
    setup();
    let mut group = c.benchmark_group("train_step");
    for &batch in &[1usize, 64, 1024] {
        let mut model = LearnableMultiModal::<f32>::new(Config::default()).expect("model");
        let xs = inputs(batch);
        let mask = Array2::from_elem((batch, 7), true);
        let input = EncoderInput::dense(views(&xs), mask.view()).expect("input");
        let train = TrainBatch::inputs(input);
        group.throughput(Throughput::Elements(batch as u64));
        if batch >= 1024 {
            group.sample_size(10);
        }
        group.bench_with_input(BenchmarkId::from_parameter(batch), &batch, |bench, _| {
            bench.iter(|| black_box(model.train_step(&train, &ObjectiveWeights::default(), None).expect("step")))
        });
    }
    group.finish();
}

/// Text → graph → 18 features, and the closed form from the text.
fn bench_featurise(c: &mut Criterion) {
    let text: String = "the quick brown fox jumps over the lazy dog while a small child reaches for the red ball ".repeat(2);
    let mut group = c.benchmark_group("featurise");
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function("Graph::from_text", |bench| bench.iter(|| black_box(Graph::from_text(black_box(&text)))));
    let graph = Graph::from_text(&text);
    group.bench_function("fingerprint", |bench| bench.iter(|| black_box(fingerprint(black_box(&graph)))));
    group.bench_function("text_fingerprint", |bench| bench.iter(|| black_box(text_fingerprint(black_box(&text), TextUnit::Char))));
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(2));
    targets = bench_linear, bench_contrastive_gemms, bench_forward, bench_training, bench_featurise
}
criterion_main!(benches);
