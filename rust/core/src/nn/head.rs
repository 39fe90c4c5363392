//! The projection head shared by all modalities (optional,
//! `config.shared_head`): a stack of fully connected layers between each
//! encoder's output and the L2 normalisation, the same tensors for every
//! modality, so the modalities are scored in one space that one map makes.
//!
//! `head.{i}.weight [w_i, w_{i-1}]`, `head.{i}.bias [w_i]`, with `w_{-1}`
//! the encoders' output width and the last width `E`. LeakyReLU between
//! the layers; the last layer is linear (no activation before the L2
//! normalisation), as in SimCLR's and CLIP's projection heads: the
//! embeddings can then point anywhere on the sphere, where a final
//! LeakyReLU would confine them near one orthant (cosines mostly ≥ 0).
//!
//! The head runs as the tail of every encoder (see
//! [`super::ModalityEncoder`]), so its forward and backward are the
//! encoders' layer by layer; its gradients add up over the modalities.

use super::dense::Dense;
use crate::params::ParamLayout;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectionHead {
    /// Input side first; the last outputs `E`.
    pub layers: Vec<Dense>,
}

impl ProjectionHead {
    /// Registers `head.{i}.weight` and `.bias` for layers of widths `widths`
    /// (the last is `E`) over inputs of width `input_dim`.
    pub fn register(layout: &mut ParamLayout, input_dim: usize, widths: &[usize]) -> Self {
        let mut fan_in = input_dim;
        let layers = widths
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                let layer = Dense::register(layout, &format!("head.{i}"), fan_in, w, i + 1 < widths.len());
                fan_in = w;
                layer
            })
            .collect();
        ProjectionHead { layers }
    }
}
