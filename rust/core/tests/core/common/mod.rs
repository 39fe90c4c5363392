//! Helpers shared by the integration tests.

use ndarray::Array2;
use std::sync::Mutex;

/// The tests share one process: those that change the global thread count
/// take this lock, one at a time.
pub static THREADS: Mutex<()> = Mutex::new(());

/// Seeded inputs in (-1, 1): one `[batch, dims[m]]` array per modality
/// (xorshift, no test dependency).
pub fn inputs(batch: usize, seed: u64, dims: [usize; 7]) -> [Array2<f32>; 7] {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    };
    std::array::from_fn(|m| Array2::from_shape_simple_fn((batch, dims[m]), &mut next))
}

pub mod gradcheck;
