//! Model configuration with the original's defaults.

use crate::error::{fmt_value, Error, Result};
use crate::features::FINGERPRINT_DIM;
use crate::modality::NUM_MODALITIES;
use crate::objectives::NUM_OBJECTIVES;
use crate::nn::temperature::{MAX_TEMPERATURE, MIN_TEMPERATURE};
use crate::nn::BinderKind;
use crate::objectives::fused_contrastive::NeighborSpace;
use crate::objectives::input_neighbors::InputDistance;
use crate::real::Real;

/// The largest `embed_dim`, `hidden_dim` and input dimension accepted: far
/// beyond any memory (the size of the model is checked against memory
/// separately), small enough that no arithmetic on the sizes can overflow.
pub const MAX_DIM: usize = 1 << 32;

/// The most layers `encoder_hidden` or `shared_head` may list (far deeper
/// than any use; bounds the bookkeeping of the layout, which is allocated
/// before the model's size is checked against memory).
pub const MAX_LAYERS: usize = 256;

/// The largest `fusion_residual`: the fused embedding is then the views'
/// mean to within a millionth of the network's output (whose scale is that
/// of a unit vector's at initialisation), far beyond any use.
pub const MAX_FUSION_RESIDUAL: f64 = 1e6;

/// The largest encoder dropout probability, `1 − 2⁻⁹`. An entry is kept when
/// a 32-bit draw clears `round(p·2³²)`, so the keep probability realised is
/// `1 − p` only to within `2⁻³³`, while a kept entry is scaled by exactly
/// `1 / (1 − p)`. From a keep probability of `2⁻⁹` up, that error is at most
/// `2⁻²⁴` of it — float32's own rounding of the scale — and the scaled
/// mask's expectation stays 1; closer to 1 (`p = 1 − 1e-7`, or
/// `1 − 1e-16` with a scale of 9e15 kept at `2⁻³²`) it drifts, then breaks.
/// An encoder of 512 inputs then keeps one on average: beyond any use.
pub const MAX_DROPOUT: f64 = 1.0 - 1.0 / 512.0;

/// Why [`MAX_DROPOUT`] bounds the dropout, as its error says it.
pub const DROPOUT_BOUND_WHY: &str =
    "closer to 1, the random draws that keep entries no longer realise the keep probability that the kept entries are scaled by";

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
    /// Where those nearest events are found: by the modality embeddings
    /// (the default) or by the encoder inputs.
    pub fused_neighbor_space: NeighborSpace,
    /// How the inputs' distance weighs the modalities when neighbours are
    /// found by the inputs (`contrastive_neighbors`, `fused_neighbor_space`
    /// `inputs`): every column the same (the default) or every modality.
    pub input_distance: InputDistance,
    /// How many rows of the batch nearest to each row by their inputs the
    /// contrastive objective counts as extra positives (0 = none; see
    /// `objectives::input_neighbors`).
    pub contrastive_neighbors: usize,
    /// The target mass those neighbours share (the row itself keeps the
    /// rest), in `[0, 1)`.
    pub contrastive_neighbor_weight: f64,
    /// How many rows of the batch nearest to each row by their inputs are
    /// the neighborhood objective's positives among each modality's
    /// embeddings (0 = none: the objective is 0).
    pub neighborhood_neighbors: usize,
    /// The neighborhood objective's temperature, fixed; `None` = the
    /// contrastive objective's (learned by contrastive when that learns).
    pub neighborhood_temperature: Option<f64>,
    /// Order `p` of the power mean that combines the contrastive objective's
    /// view pairs, in `[0, 1]`: 1 = their arithmetic mean (the original),
    /// 0 = their geometric mean. Below 1 each pair's gradient is weighted by
    /// `(L_ij / L)^(p − 1)`, so pairs the model already matches well (low
    /// loss: views that determine each other) keep learning instead of being
    /// drowned by the pairs that share little.
    pub contrastive_pair_power: f64,
    /// Which objectives' gradients reach the encoders (and the shared head),
    /// in [`crate::objectives::Objective::ALL`] order; the others train only
    /// what lies downstream of the embeddings, as with recorded embeddings
    /// (a stop-gradient). All `true` = every objective trains them.
    pub encoder_objectives: [bool; NUM_OBJECTIVES],
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
    /// Dropout probability on each encoder's input, in training only, in
    /// `[0, MAX_DROPOUT]`.
    pub encoder_input_dropout: f64,
    /// Dropout probability after each hidden encoder layer, in training
    /// only, in `[0, MAX_DROPOUT]`.
    pub encoder_hidden_dropout: f64,
    /// A linear path from each encoder's input to its output layer
    /// (`encoder.<modality>.skip.weight`, zeros at first); needs
    /// `encoder_hidden` and a `shared_head`. `false` = none, the original.
    pub encoder_skip: bool,
    /// Learn the contrastive objectives' temperatures (each starts at
    /// `temperature` and stays in `[0.01, 1]`); `false` = fixed.
    pub learnable_temperature: bool,
    /// Weight `c` of the fusion network's residual path: the fused
    /// embedding is `normalize(fusion(x) + c · mean of the present modality
    /// embeddings)`, in `[0, MAX_FUSION_RESIDUAL]`; 0 = the original.
    pub fusion_residual: f64,
    /// A linear decoder per modality from the fused embedding to the
    /// modality's standardised input (`reconstruction.<modality>.weight
    /// [d_m, E]`, `.bias [d_m]`, after every other tensor), which the
    /// reconstruction objective trains; `false` = none, the original.
    pub reconstruction_decoders: bool,
    /// The reconstruction objective predicts every present modality from
    /// the fused embedding of a random subset of them (each kept with
    /// probability ½), not of the whole event; `false` = the whole event.
    pub reconstruction_subsets: bool,
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
            fused_neighbor_space: NeighborSpace::Embeddings,
            input_distance: InputDistance::Columns,
            contrastive_neighbors: 0,
            contrastive_neighbor_weight: 0.2,
            neighborhood_neighbors: 10,
            neighborhood_temperature: None,
            contrastive_pair_power: 1.0,
            encoder_objectives: [true; NUM_OBJECTIVES],
            weight_decay: 0.0,
            grad_clip: None,
            encoder_hidden: Vec::new(),
            encoder_output_dim: None,
            shared_head: Vec::new(),
            encoder_input_dropout: 0.0,
            encoder_hidden_dropout: 0.0,
            encoder_skip: false,
            learnable_temperature: false,
            fusion_residual: 0.0,
            reconstruction_decoders: false,
            reconstruction_subsets: false,
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
        let sizes = [("embed_dim", self.embed_dim), ("hidden_dim", self.hidden_dim), ("num_heads", self.num_heads)];
        let dims = self.input_dims.iter().map(|&d| ("input_dims", d));
        if let Some((name, v)) = sizes.into_iter().chain(dims).find(|&(_, v)| v > MAX_DIM) {
            return Err(Error::too_large(name, format!("got {v}; expected at most {MAX_DIM}")));
        }
        if !self.embed_dim.is_multiple_of(self.num_heads) {
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
                format!("got {}; expected a finite positive number", fmt_value(self.learning_rate)),
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
                format!("got {}; expected a finite positive number", fmt_value(self.temperature)),
            ));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(Error::invalid(
                "weight_decay",
                format!("got {}; expected a finite number >= 0", fmt_value(self.weight_decay)),
            ));
        }
        if let Some(t) = self.neighborhood_temperature {
            if !(t.is_finite() && t > 0.0) {
                return Err(Error::invalid(
                    "neighborhood_temperature",
                    format!("got {}; expected a finite positive number or None (contrastive's)", fmt_value(t)),
                ));
            }
        }
        if let Some(c) = self.grad_clip {
            if !(c.is_finite() && c > 0.0) {
                return Err(Error::invalid(
                    "grad_clip",
                    format!("got {c}; expected a finite positive number or None"),
                ));
            }
        }
        let w = self.contrastive_neighbor_weight;
        if !(w.is_finite() && (0.0..1.0).contains(&w)) {
            return Err(Error::invalid(
                "contrastive_neighbor_weight",
                format!("got {}; expected a fraction in [0, 1) (the target mass of the neighbours)", fmt_value(w)),
            ));
        }
        let p = self.contrastive_pair_power;
        if !(p.is_finite() && (0.0..=1.0).contains(&p)) {
            return Err(Error::invalid(
                "contrastive_pair_power",
                format!("got {}; expected a finite number in [0, 1] (1 = the arithmetic mean of the view pairs' losses, 0 = their geometric mean)", fmt_value(p)),
            ));
        }
        let c = self.fusion_residual;
        if !(c.is_finite() && (0.0..=MAX_FUSION_RESIDUAL).contains(&c)) {
            return Err(Error::invalid(
                "fusion_residual",
                format!("got {}; expected a finite number in [0, {MAX_FUSION_RESIDUAL:e}] (0 = no residual path)", fmt_value(c)),
            ));
        }
        if self.weight_decay * self.learning_rate >= 1.0 {
            return Err(weight_decay_error("learning_rate", self.learning_rate, self.weight_decay));
        }
        self.validate_capacity()
    }

    /// The width of the encoders' output.
    pub fn encoder_dim(&self) -> usize {
        self.encoder_output_dim.unwrap_or(self.embed_dim)
    }

    /// Checks the optional capacity fields. Widths are bounded as the other
    /// sizes (by [`MAX_DIM`]) and the layer counts by [`MAX_LAYERS`], so the
    /// layout's checked arithmetic and the model's memory check (in
    /// [`crate::LearnableMultiModal::new`]) see every size before anything
    /// is allocated.
    fn validate_capacity(&self) -> Result<()> {
        let widths = [("encoder_hidden", &self.encoder_hidden), ("shared_head", &self.shared_head)];
        for (name, list) in widths {
            if list.len() > MAX_LAYERS {
                return Err(Error::too_large(name, format!("got {} layers; expected at most {MAX_LAYERS}", list.len())));
            }
            if let Some(i) = list.iter().position(|&w| w == 0) {
                return Err(Error::invalid(format!("{name}[{i}]"), "got 0; expected a positive layer width"));
            }
            if let Some(i) = list.iter().position(|&w| w > MAX_DIM) {
                return Err(Error::too_large(format!("{name}[{i}]"), format!("got {}; expected at most {MAX_DIM}", list[i])));
            }
        }
        match self.encoder_output_dim {
            Some(0) => return Err(Error::invalid("encoder_output_dim", "got 0; expected a positive integer or None")),
            Some(d) if d > MAX_DIM => return Err(Error::too_large("encoder_output_dim", format!("got {d}; expected at most {MAX_DIM} or None"))),
            _ => {}
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
            if !(p.is_finite() && (0.0..=MAX_DROPOUT).contains(&p)) {
                return Err(Error::invalid(
                    name,
                    format!("got {}; expected a probability in [0, {MAX_DROPOUT}] (1 − 2⁻⁹: {DROPOUT_BOUND_WHY})", fmt_value(p)),
                ));
            }
        }
        if self.encoder_hidden_dropout > 0.0 && self.encoder_hidden.is_empty() {
            return Err(Error::invalid(
                "encoder_hidden_dropout",
                format!("got {}, but encoder_hidden is empty (no hidden layer to drop from); expected 0 or some encoder_hidden", self.encoder_hidden_dropout),
            ));
        }
        if self.encoder_skip && (self.encoder_hidden.is_empty() || self.shared_head.is_empty()) {
            let missing = if self.encoder_hidden.is_empty() { "encoder_hidden is empty (the encoder is one linear map already)" } else { "shared_head is empty (the skip joins the encoder's linear output layer, which only a head makes linear)" };
            return Err(Error::invalid("encoder_skip", format!("got true, but {missing}; expected false, or encoder_hidden and shared_head")));
        }
        let (lo, hi) = (MIN_TEMPERATURE, MAX_TEMPERATURE);
        if self.learnable_temperature && !(lo..=hi).contains(&self.temperature) {
            return Err(Error::invalid(
                "temperature",
                format!("got {}; a learnable temperature starts in [{lo}, {hi}] and stays there", self.temperature),
            ));
        }
        Ok(())
    }

    /// The size field that contributes most to the number of parameters
    /// (what an error about a model too large for memory names).
    pub fn largest_size_field(&self) -> &'static str {
        let widest = |list: &[usize]| list.iter().copied().max().unwrap_or(0);
        [
            ("embed_dim", self.embed_dim),
            ("hidden_dim", self.hidden_dim),
            ("input_dims", widest(&self.input_dims)),
            ("encoder_hidden", widest(&self.encoder_hidden)),
            ("encoder_output_dim", self.encoder_output_dim.unwrap_or(0)),
            ("shared_head", widest(&self.shared_head)),
        ]
        .into_iter()
        // the first of equally wide fields (max_by_key keeps the last): the recipe's head ends in
        // embed_dim, and a too-large embed_dim was blamed on a shared_head the user never set
        .rev()
        .max_by_key(|&(_, v)| v)
        .map_or("embed_dim", |(name, _)| name)
    }

    /// The size fields as a user set them (the optional ones when set), for
    /// messages about the size of the model.
    pub fn size_summary(&self) -> String {
        let mut sizes = format!(
            "embed_dim={}, hidden_dim={}, input_dims up to {}",
            self.embed_dim,
            self.hidden_dim,
            self.input_dims.iter().max().copied().unwrap_or(0)
        );
        let widest = |list: &[usize]| list.iter().copied().max().unwrap_or(0);
        if !self.encoder_hidden.is_empty() {
            sizes += &format!(", encoder_hidden of {} layers up to {}", self.encoder_hidden.len(), widest(&self.encoder_hidden));
        }
        if let Some(d) = self.encoder_output_dim {
            sizes += &format!(", encoder_output_dim={d}");
        }
        if !self.shared_head.is_empty() {
            sizes += &format!(", shared_head of {} layers up to {}", self.shared_head.len(), widest(&self.shared_head));
        }
        sizes
    }

    /// The checks that depend on the float type: the learning settings
    /// (see [`check_step_settings`]) and `1 / temperature` (and
    /// `1 / neighborhood_temperature`) representable in `T`.
    pub fn validate_for<T: Real>(&self) -> Result<()> {
        self.validate()?;
        check_step_settings::<T>("learning_rate", self.learning_rate, self.weight_decay)?;
        let temperatures = [("temperature", Some(self.temperature)), ("neighborhood_temperature", self.neighborhood_temperature)];
        for (name, tau) in temperatures {
            let Some(tau) = tau else { continue };
            if !T::c(1.0 / tau).is_finite() {
                return Err(Error::invalid(
                    name,
                    format!(
                        "got {}; the logits are scaled by 1 / {name}, which must be representable in the model's floats",
                        fmt_value(tau)
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// The largest step Adam takes is `lr / (1 − β1) = 10 lr` (its first
/// update): it must be representable in `T`. The decoupled decay factor
/// `1 − lr·weight_decay` must be positive (else every step zeroes or flips
/// every weight). `arg` names the learning rate as the caller knows it.
pub fn check_step_settings<T: Real>(arg: &str, lr: f64, weight_decay: f64) -> Result<()> {
    if !(lr.is_finite() && lr > 0.0) {
        return Err(Error::invalid(arg, format!("got {}; expected a finite positive number", fmt_value(lr))));
    }
    let largest_step = lr / (1.0 - crate::adam::BETA1);
    if !T::c(largest_step).is_finite() {
        return Err(Error::invalid(
            arg,
            format!(
                "got {}; Adam's first step lr / (1 − β1) = {largest_step:e} is beyond the model's float range (float32: at most 3.4e38)",
                fmt_value(lr)
            ),
        ));
    }
    if lr * weight_decay >= 1.0 {
        return Err(weight_decay_error(arg, lr, weight_decay));
    }
    Ok(())
}

fn weight_decay_error(lr_arg: &str, lr: f64, weight_decay: f64) -> Error {
    let effect = format!(
        "the decoupled decay multiplies every weight by 1 − {lr_arg}·weight_decay = {} each step (zeroing or flipping it); \
         expected {lr_arg} × weight_decay < 1",
        fmt_value(1.0 - lr * weight_decay)
    );
    if lr_arg == "lr" {
        // A step's own lr: the model's weight_decay was accepted with its learning_rate when it
        // was made, so the mistake is this call's (it named weight_decay, which the call never gave).
        return Error::invalid("lr", format!("got {} with the model's weight_decay={}: {effect}", fmt_value(lr), fmt_value(weight_decay)));
    }
    Error::invalid(
        "weight_decay",
        format!("got {} with {lr_arg}={}: {effect}", fmt_value(weight_decay), fmt_value(lr)),
    )
}
