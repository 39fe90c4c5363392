//! Model configuration with the original's defaults.

use crate::error::{Error, Result};
use crate::features::FINGERPRINT_DIM;
use crate::modality::NUM_MODALITIES;
use crate::nn::temperature::{MAX_TEMPERATURE, MIN_TEMPERATURE};
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
    // Optional capacity (the defaults give the original model; see
    // `validate_capacity` for the rules).
    /// Widths of each modality encoder's hidden layers, input side first
    /// (LeakyReLU after each); empty = the original one-layer encoder.
    pub encoder_hidden: Vec<usize>,
    /// Width of the encoders' output; `None` = `embed_dim`. It may differ
    /// from `embed_dim` only when a `shared_head` follows.
    pub encoder_output_dim: Option<usize>,
    /// Widths of the layers of a projection head shared by all modalities,
    /// applied to each encoder's output before the L2 normalisation
    /// (LeakyReLU between its layers, none after the last); the last width
    /// is `embed_dim`. Empty = no head.
    pub shared_head: Vec<usize>,
    /// Dropout probability on each encoder's input, in training only.
    pub encoder_input_dropout: f64,
    /// Dropout probability after each hidden encoder layer, in training only.
    pub encoder_hidden_dropout: f64,
    /// Learn the contrastive objectives' temperatures (each starts at
    /// `temperature` and stays in `[0.01, 1]`); `false` = fixed.
    pub learnable_temperature: bool,
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
            encoder_hidden: Vec::new(),
            encoder_output_dim: None,
            shared_head: Vec::new(),
            encoder_input_dropout: 0.0,
            encoder_hidden_dropout: 0.0,
            learnable_temperature: false,
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
        self.validate_capacity()
    }

    /// The width of the encoders' output.
    pub fn encoder_dim(&self) -> usize {
        self.encoder_output_dim.unwrap_or(self.embed_dim)
    }

    /// Checks the optional capacity fields.
    fn validate_capacity(&self) -> Result<()> {
        let widths = [("encoder_hidden", &self.encoder_hidden), ("shared_head", &self.shared_head)];
        for (name, list) in widths {
            if let Some(i) = list.iter().position(|&w| w == 0) {
                return Err(Error::invalid(format!("{name}[{i}]"), "got 0; expected a positive layer width"));
            }
        }
        if self.encoder_output_dim == Some(0) {
            return Err(Error::invalid("encoder_output_dim", "got 0; expected a positive integer or None"));
        }
        match self.shared_head.last() {
            None if self.encoder_dim() != self.embed_dim => {
                return Err(Error::invalid(
                    "encoder_output_dim",
                    format!(
                        "got {}, but without a shared_head the encoders output the embeddings, of embed_dim={}; \
                         expected None, {} or a shared_head",
                        self.encoder_dim(),
                        self.embed_dim,
                        self.embed_dim
                    ),
                ));
            }
            Some(&last) if last != self.embed_dim => {
                return Err(Error::invalid(
                    "shared_head",
                    format!(
                        "its last layer has width {last}, but it outputs the embeddings; expected the last width to be embed_dim={}",
                        self.embed_dim
                    ),
                ));
            }
            _ => {}
        }
        for (name, p) in [("encoder_input_dropout", self.encoder_input_dropout), ("encoder_hidden_dropout", self.encoder_hidden_dropout)] {
            if !(p.is_finite() && (0.0..1.0).contains(&p)) {
                return Err(Error::invalid(name, format!("got {p}; expected a probability in [0, 1)")));
            }
        }
        if self.encoder_hidden_dropout > 0.0 && self.encoder_hidden.is_empty() {
            return Err(Error::invalid(
                "encoder_hidden_dropout",
                format!("got {}, but encoder_hidden is empty (no hidden layer to drop from); expected 0 or some encoder_hidden", self.encoder_hidden_dropout),
            ));
        }
        let (lo, hi) = (MIN_TEMPERATURE, MAX_TEMPERATURE);
        if self.learnable_temperature && !(lo..=hi).contains(&self.temperature) {
            return Err(Error::invalid(
                "temperature",
                format!("got {}; a learnable temperature starts in [{lo}, {hi}] and stays there", self.temperature),
            ));
        }
        self.check_capacity_size()
    }

    /// The new layers' sizes must be countable: their products and sum fit
    /// in memory-sized integers (a config cannot ask for an impossible model).
    fn check_capacity_size(&self) -> Result<()> {
        let too_large = || Error::too_large("config", "the encoder and head layers hold more parameters than fit in memory; expected smaller widths");
        let mut total: usize = 0;
        let mut add_stack = |input: usize, widths: &mut dyn Iterator<Item = usize>| -> Result<()> {
            let mut fan_in = input;
            for w in widths {
                let layer = fan_in.checked_mul(w).and_then(|n| n.checked_add(w)).ok_or_else(too_large)?;
                total = total.checked_add(layer).ok_or_else(too_large)?;
                fan_in = w;
            }
            Ok(())
        };
        for &d in &self.input_dims {
            add_stack(d, &mut self.encoder_hidden.iter().copied().chain([self.encoder_dim()]))?;
        }
        add_stack(self.encoder_dim(), &mut self.shared_head.iter().copied())?;
        // Weights, gradients, two Adam moments and the transposes: 5 f32 each.
        if total.checked_mul(5 * std::mem::size_of::<f32>()).is_none_or(|bytes| bytes > isize::MAX as usize) {
            return Err(too_large());
        }
        Ok(())
    }
}