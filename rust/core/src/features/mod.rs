//! Turning graphs into fixed-length feature vectors.

pub mod fingerprint;

pub use fingerprint::{fingerprint, FINGERPRINT_DIM};
