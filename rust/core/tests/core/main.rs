//! The core's integration tests, as one test binary: one crate to compile
//! and link instead of eight (most of `cargo test`'s time was building each
//! file as a crate of its own, each instantiating the same library code).

mod common;

mod capacity;
mod fused_contrastive;
mod gradient_combinations;
mod gradients;
mod model;
mod threads;
mod training;
mod trust;
