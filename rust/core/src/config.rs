//! Model configuration with the original's defaults.

use crate::error::{Error, Result};
use crate::features::FINGERPRINT_DIM;
use crate::modality::NUM_MODALITIES;
use crate::nn::BinderKind;

/// Hyper-parameters of [`crate::LearnableMultiModal`].
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `E`: size of every modality embedding and of the fused embedding.
    pub embed_dim: usize,
    /// `H`: width of the fusion network's middle layer.
    pub hidden_dim: usize,
    /// Adam's default step size.
    pub learning_rate: f64,
    /// Attention heads; `embed_dim` must be divisible by it.
    pub num_heads: usize,
    /// Capacity of the experience buffer.
    pub buffer_size: usize,
    /// Seeds the initialisation (same seed, same weights, bit for bit).
    pub seed: u64,
    /// Input length of each modality's encoder, in modality order
    /// (18 = the graph fingerprint).
    pub input_dims: [usize; NUM_MODALITIES],
    /// Which binder formula: the original additive one or a bilinear one
    /// that can learn which pairs belong together.
    pub binder: BinderKind,
    /// Temperature `τ` of the contrastive objectives' logits `cos / τ`.
    pub temperature: f64,
    /// How many nearest events of the batch fused_contrastive counts as
    /// positives besides the event itself (0 = the event only).
    pub fused_neighbors: usize,
    /// Decoupled (AdamW) weight decay `λ`; 0 = plain Adam.
    pub weight_decay: f64,
    /// Global-norm gradient clipping threshold; `None` = no clipping.
    pub grad_clip: Option<f64>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            embed_dim: 64,
            hidden_dim: 128,
            learning_rate: 0.001,
            num_heads: 4,
            buffer_size: 1000,
            seed: 0,
            input_dims: [FINGERPRINT_DIM; NUM_MODALITIES],
            binder: BinderKind::Additive,
            temperature: 0.1,
            fused_neighbors: 2,
            weight_decay: 0.0,
            grad_clip: None,
        }
    }
}

impl Config {
    /// Checks every field; the message names the field and the allowed values.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("embed_dim", self.embed_dim),
            ("hidden_dim", self.hidden_dim),
            ("num_heads", self.num_heads),
            ("buffer_size", self.buffer_size),
        ];
        for (name, v) in positive {
            if v == 0 {
                return Err(Error::invalid(name, "got 0; expected a positive integer"));
            }
        }
        if self.embed_dim % self.num_heads != 0 {
            return Err(Error::invalid(
                "num_heads",
                format!(
                    "embed_dim={} is not divisible by num_heads={}; expected a divisor of embed_dim",
                    self.embed_dim, self.num_heads
                ),
            ));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(Error::invalid(
                "learning_rate",
                format!("got {}; expected a finite positive number", self.learning_rate),
            ));
        }
        if let Some(m) = self.input_dims.iter().position(|&d| d == 0) {
            return Err(Error::invalid(
                "input_dims",
                format!("modality {m} has input dimension 0; expected a positive integer"),
            ));
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(Error::invalid(
                "temperature",
                format!("got {}; expected a finite positive number", self.temperature),
            ));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(Error::invalid(
                "weight_decay",
                format!("got {}; expected a finite number >= 0", self.weight_decay),
            ));
        }
        if let Some(c) = self.grad_clip {
            if !(c.is_finite() && c > 0.0) {
                return Err(Error::invalid(
                    "grad_clip",
                    format!("got {c}; expected a finite positive number or None"),
                ));
            }
        }
        Ok(())
    }
}
