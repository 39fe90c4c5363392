//! The speed work's guarantees: results do not depend on the number of
//! threads (work is split at boundaries fixed by the problem size, partial
//! sums combined in a fixed order), and reused buffers and caches (pooled
//! scratch, the transposed weights) never leak one call into the next.

use grapheme_multimodal::kernels::threads;
use grapheme_multimodal::{Config, EncoderInput, LearnableMultiModal, ObjectiveWeights, TrainBatch};
use ndarray::{Array2, ArrayView2};
use crate::common::THREADS;

fn inputs(batch: usize, seed: u64) -> [Array2<f32>; 7] {
    let mut state = seed;
    std::array::from_fn(|_| {
        Array2::from_shape_simple_fn((batch, 18), || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0) as f32
        })
    })
}

fn views(xs: &[Array2<f32>; 7]) -> [Option<ArrayView2<'_, f32>>; 7] {
    std::array::from_fn(|m| Some(xs[m].view()))
}

/// Rows with every modality, and rows with some absent (so the pooled /
/// gathered paths and the skipped zero blocks are exercised too).
fn mask(batch: usize, partial: bool) -> Array2<bool> {
    Array2::from_shape_fn((batch, 7), |(r, m)| !partial || (r * 7 + m * 3) % 5 != 0)
}

/// Everything a forward and two training steps produce, as bits.
fn run(threads_n: usize, batch: usize, partial: bool, pair_power: f64) -> Vec<Vec<u32>> {
    threads::set_num_threads(threads_n).unwrap();
    let xs = inputs(batch, 7);
    let mask = mask(batch, partial);
    let input = EncoderInput::dense(views(&xs), mask.view()).unwrap();
    let mut model = LearnableMultiModal::<f32>::new(Config { seed: 5, contrastive_pair_power: pair_power, ..Config::default() }).unwrap();
    let (emb, fused) = model.encode_and_fuse(&input).unwrap();
    let refused = model.fuse(emb.view(), mask.view()).unwrap();
    let batch_data = TrainBatch::inputs(input.clone());
    let mut out = vec![bits(emb.iter()), bits(fused.iter()), bits(refused.iter())];
    for _ in 0..2 {
        let (losses, _) = model.train_step(&batch_data, &ObjectiveWeights::default(), None).unwrap();
        out.push(bits(losses.values.iter().flatten()));
        out.push(bits(model.gradients().iter()));
        out.push(bits(model.params().iter()));
    }
    out
}

fn bits<'a>(values: impl Iterator<Item = &'a f32>) -> Vec<u32> {
    values.map(|v| v.to_bits()).collect()
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let _guard = THREADS.lock().unwrap_or_else(|e| e.into_inner());
    let before = threads::num_threads();
    // 300 rows: contrastive pairs take the large (per-thread rounds, row
    // blocks) path, products split across threads, the forward many chunks;
    // a contrastive power mean weights the pairs once all are in.
    for (batch, partial, p) in [(300, false, 1.0), (300, true, 1.0), (45, true, 1.0), (300, true, 0.5), (45, true, 0.0)] {
        let one = run(1, batch, partial, p);
        for n in [2, 3] {
            let many = run(n, batch, partial, p);
            assert_eq!(one.len(), many.len());
            for (k, (a, b)) in one.iter().zip(&many).enumerate() {
                assert!(a == b, "batch {batch} partial {partial}: output {k} differs between 1 and {n} threads");
            }
        }
    }
    threads::set_num_threads(before).unwrap();
}

#[test]
fn repeated_calls_and_weight_changes_leave_no_trace() {
    let _guard = THREADS.lock().unwrap_or_else(|e| e.into_inner());
    let xs = inputs(300, 11);
    let mask = mask(300, true);
    let input = EncoderInput::dense(views(&xs), mask.view()).unwrap();
    let mut model = LearnableMultiModal::<f32>::new(Config::default()).unwrap();
    let first = model.encode_and_fuse(&input).unwrap();
    let batch = TrainBatch::inputs(input.clone());
    let losses = model.losses(&batch, &ObjectiveWeights::default()).unwrap();
    // Pooled buffers are reused by the second call: same bits.
    assert_eq!(model.encode_and_fuse(&input).unwrap(), first);
    assert_eq!(model.losses(&batch, &ObjectiveWeights::default()).unwrap(), losses);
    // Changing a weight refreshes the cached transposes; changing it back
    // restores the original results exactly.
    let w = model.param("fusion.0.weight").unwrap().to_owned();
    let mut changed = w.clone();
    changed[[3, 5]] += 0.25;
    model.set_param("fusion.0.weight", changed.view()).unwrap();
    assert_ne!(model.encode_and_fuse(&input).unwrap().1, first.1);
    model.set_param("fusion.0.weight", w.view()).unwrap();
    assert_eq!(model.encode_and_fuse(&input).unwrap(), first);
    // The same through the flat buffer.
    let original = model.params()[0];
    model.params_mut()[0] += 1.0;
    assert_ne!(model.encode_and_fuse(&input).unwrap().0, first.0);
    model.params_mut()[0] = original;
    assert_eq!(model.encode_and_fuse(&input).unwrap(), first);
    // A step changes the weights; a clone taken before it still computes
    // the old results (its caches are its own).
    let twin = model.clone();
    model.train_step(&batch, &ObjectiveWeights::default(), None).unwrap();
    assert_ne!(model.encode_and_fuse(&input).unwrap().1, first.1);
    assert_eq!(twin.encode_and_fuse(&input).unwrap(), first);
}

#[test]
fn one_event_alone_equals_its_row_in_a_batch() {
    // The per-event path is a batch of one: each row's sums run in the same
    // order whatever tile or chunk holds it, so the bits agree.
    let xs = inputs(37, 3);
    let mask = mask(37, true);
    let model = LearnableMultiModal::<f32>::new(Config::default()).unwrap();
    let (emb, fused) = model.encode_and_fuse(&EncoderInput::dense(views(&xs), mask.view()).unwrap()).unwrap();
    for r in [0, 5, 6, 36] {
        let one: [Array2<f32>; 7] = std::array::from_fn(|m| xs[m].slice(ndarray::s![r..r + 1, ..]).to_owned());
        let row_mask = mask.slice(ndarray::s![r..r + 1, ..]).to_owned();
        let (e1, f1) = model.encode_and_fuse(&EncoderInput::dense(views(&one), row_mask.view()).unwrap()).unwrap();
        assert_eq!(e1.index_axis(ndarray::Axis(0), 0), emb.index_axis(ndarray::Axis(0), r), "row {r}");
        assert_eq!(f1.row(0), fused.row(r), "row {r}");
    }
}
