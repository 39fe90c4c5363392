//! The four components of the model. Each holds only the ids of its tensors
//! in the flat parameter buffer; the math takes the buffer as an argument.

pub mod attention;
pub mod binder;
pub mod encoder;
pub mod fusion;
pub mod ops;

pub use attention::{AttentionOutput, ModalityAttention};
pub use binder::{BinderKind, CrossModalBinder};
pub use encoder::ModalityEncoder;
pub use fusion::FusionNetwork;
