//! Learnable multimodal fusion and cross-modal binding — the pure-Rust core
//! of `grapheme-multimodal`.
//!
//! Per-modality encoders turn each modality of an event (a graph, through its
//! 18 fingerprint features, or a feature vector) into a unit embedding; a
//! fusion network combines them; a binder scores how strongly two modalities
//! belong together; a multi-head attention weighs modalities for a query.
//! Every computation is batched: `x[m]: [B, d_m]`, presence mask `[B, 7]`.
//!
//! Learning: each component's backward sits beside its forward in `nn/`;
//! `objectives` holds the five losses, `adam` the optimiser over the flat
//! buffer, `training` the model's `backward` / `step` / `train_step`.

pub mod adam;
pub mod batch;
pub mod config;
pub mod error;
pub mod features;
pub mod graph;
pub mod kernels;
pub mod memory;
pub mod modality;
pub mod model;
pub mod nn;
pub mod objectives;
pub mod params;
pub mod real;
pub mod search;
pub mod ties;
pub mod training;
pub mod validate;

pub use batch::{EncoderInput, ModalityInput};
pub use config::Config;
pub use error::{Error, Result};
pub use graph::{Graph, TextUnit, ValueRange};
pub use modality::{Modality, NUM_MODALITIES};
pub use model::{LearnableMultiModal, Normalizer};
pub use nn::BinderKind;
pub use objectives::{Losses, Objective, ObjectiveWeights};
pub use training::{EmbeddingSource, ObjectiveDraws, OptimizerState, TrainBatch};
pub use real::Real;
