//! The components of the model. Each holds only the ids of its tensors
//! in the flat parameter buffer; the math takes the buffer as an argument.

pub mod attention;
pub mod binder;
pub mod dense;
pub mod dropout;
pub mod encoder;
pub mod fusion;
pub mod head;
pub mod ops;
pub mod temperature;

pub use attention::{AttentionOutput, ModalityAttention};
pub use binder::{BinderKind, CrossModalBinder};
pub use dense::Dense;
pub use dropout::DropoutRates;
pub use encoder::ModalityEncoder;
pub use fusion::FusionNetwork;
pub use head::ProjectionHead;
pub use temperature::LearnedTemperature;
