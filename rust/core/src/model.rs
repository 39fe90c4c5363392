//! `LearnableMultiModal`: the encoders, fusion network, binder and attention
//! over one flat parameter buffer. Every entry point is batched; a single
//! event is a batch of one.

use crate::batch::{input_arg, EncoderInput, ModalityInput};
use crate::config::Config;
use crate::error::{fmt_value, Error, Result};
use crate::modality::{Modality, NUM_MODALITIES};
use crate::adam::{Adam, ParamsBound};
use crate::nn::dropout::{dropout_rng, DropoutRates};
use crate::nn::encoder::{pool_components, pool_components_backward, Dropping, EncoderTape, PoolTape};
use crate::nn::{AttentionOutput, CrossModalBinder, FusionNetwork, LearnedTemperature, ModalityAttention, ModalityEncoder, ProjectionHead};
use crate::objectives::reconstruction::Decoders;
use crate::objectives::Objective;
use crate::params::{assign, assign_all, ParamLayout, Params, ParamsMut};
use crate::real::Real;
use crate::validate::{all_finite, check_finite, check_shape};
use crate::kernels::threads;
use ndarray::{s, Array1, Array2, Array3, ArrayView1, ArrayView2, ArrayView3, ArrayViewD, ArrayViewMut1, ArrayViewMut2, ArrayViewMut3, Axis, CowArray, Ix3};
use crate::memory::try_zeros_array;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// The model. `T` is `f32` for users and `f64` for gradient checks.
///
/// Besides the weights it owns the training state: accumulated gradients
/// (same layout as the weights), Adam's moments and step count, and the
/// counter of gradient computations that fixes the objectives' random draws
/// (see `training.rs`).
#[derive(Debug, Clone)]
pub struct LearnableMultiModal<T> {
    pub(crate) config: Config,
    pub(crate) layout: ParamLayout,
    pub(crate) params: Vec<T>,
    pub(crate) encoders: Vec<ModalityEncoder>,
    pub(crate) fusion: FusionNetwork,
    pub(crate) binder: CrossModalBinder,
    pub(crate) attention: ModalityAttention,
    /// The projection head shared by the encoders (`config.shared_head`).
    pub(crate) head: Option<ProjectionHead>,
    /// The learned temperatures of contrastive and fused_contrastive
    /// (`config.learnable_temperature`), in that order.
    pub(crate) temperatures: Option<[LearnedTemperature; 2]>,
    /// The reconstruction objective's decoders (`config.reconstruction_decoders`).
    pub(crate) decoders: Option<Decoders>,
    pub(crate) grads: Vec<T>,
    pub(crate) has_grads: bool,
    pub(crate) adam: Adam<T>,
    /// A bound of the weights' largest magnitude kept by Adam's updates;
    /// `None` after any other change of the weights.
    pub(crate) params_bound: ParamsBound,
    pub(crate) rng_counter: u64,
    /// Per modality, the rows of input batches whose gradients reached the
    /// encoders in an accepted update (see `training.rs`); `None` when not
    /// known (a model restored from a file that predates the record).
    pub(crate) trained_rows: Option<[u64; NUM_MODALITIES]>,
    /// Whether the record holds an accepted update, whether or not it
    /// reached an encoder: with every row 0, a model that trained only what
    /// follows the encoders (recorded embeddings) rather than a fresh one.
    pub(crate) trained_any: bool,
    /// Those rows of the accumulated gradients (the `backward`s since the
    /// last `zero_grad`), added to `trained_rows` when `step` applies them.
    pub(crate) pending_rows: [u64; NUM_MODALITIES],
    /// Per-modality input standardisation `(x - mean) / std`, applied before
    /// the encoder (learned from training data, not trained by gradients).
    pub(crate) normalizers: Vec<Option<Normalizer<T>>>,
    /// Every weight matrix transposed (`Wᵀ`, what the products read row by
    /// row), made on first use after the weights change; thread-safe, so
    /// `&self` inference can fill it.
    pub(crate) transposed: OnceLock<Vec<T>>,
    /// The last transposes' buffer, kept for reuse when the weights change.
    pub(crate) spare_transposed: SpareBuffer<T>,
    /// Scratch for a `backward` that adds to existing gradients.
    pub(crate) grad_scratch: Vec<T>,
}

/// A buffer kept for reuse behind a lock (so `&self` methods can take it);
/// a clone starts empty.
#[derive(Debug, Default)]
pub(crate) struct SpareBuffer<T>(std::sync::Mutex<Vec<T>>);

impl<T> Clone for SpareBuffer<T> {
    fn clone(&self) -> Self {
        SpareBuffer(std::sync::Mutex::new(Vec::new()))
    }
}

impl<T> SpareBuffer<T> {
    fn take(&self) -> Vec<T> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn put(&mut self, v: Vec<T>) {
        *self.0.get_mut().unwrap_or_else(|e| e.into_inner()) = v;
    }
}

/// Buffers of one value per parameter a training model holds: weights,
/// their transposes, gradients, a scratch gradient, Adam's two moments and
/// its three staging buffers.
const STATE_BUFFERS: usize = 9;

/// Rows per task of the batched forward: small enough that a task's
/// activations stay in L2, large enough that a task outweighs its dispatch.
const FORWARD_CHUNK: usize = 96;

/// Rows per task of the batched forward for a batch of `batch` rows: at
/// most [`FORWARD_CHUNK`], at least two tasks per thread when the batch
/// allows (a multiple of the kernels' 6-row tiles).
fn forward_chunk(batch: usize) -> usize {
    let per_task = batch.div_ceil(2 * threads::num_threads()).div_ceil(6) * 6;
    per_task.clamp(6, FORWARD_CHUNK)
}

/// The smallest input standard deviation a normalisation may hold: the
/// smallest normal float32 (a smaller one is a subnormal, without full
/// precision). An absolute floor only: a column of tiny but varying values
/// (std 1e-30) is standardised like any other, as scikit-learn's
/// `StandardScaler` does; `fit_normalization` gives a constant column
/// (std 0) std 1. Inputs that the division then takes beyond float32 are
/// refused where they overflow, as other huge inputs.
pub const MIN_STD: f64 = f32::MIN_POSITIVE as f64;

/// The slot of [`FirstOverflow`] that stands for the fused embedding.
const FUSED_SLOT: usize = NUM_MODALITIES;

/// The first `(row, slot)` (slot: a modality, or [`FUSED_SLOT`]) whose
/// result was not finite, noted by any number of tasks at once.
struct FirstOverflow(AtomicUsize);

impl FirstOverflow {
    fn new() -> Self {
        FirstOverflow(AtomicUsize::new(usize::MAX))
    }

    /// Notes the first `(row, norm)` whose norm is not finite: a row whose
    /// values overflowed (or the l2 normalisation's NaN for it).
    fn check_norms<T: Real>(&self, norms: impl Iterator<Item = (usize, T)>, slot: usize) {
        if let Some((row, _)) = norms.filter(|(_, n)| !n.is_finite()).min_by_key(|&(r, _)| r) {
            self.note(row, slot);
        }
    }

    fn note(&self, row: usize, slot: usize) {
        self.0.fetch_min(row.saturating_mul(FUSED_SLOT + 1).saturating_add(slot), Ordering::Relaxed);
    }

    fn first(&self) -> Option<(usize, usize)> {
        let key = self.0.load(Ordering::Relaxed);
        (key != usize::MAX).then_some((key / (FUSED_SLOT + 1), key % (FUSED_SLOT + 1)))
    }
}

/// The largest magnitude of `values` (the inputs are finite).
fn largest_magnitude<'v, T: Real + 'v>(values: impl IntoIterator<Item = &'v T>) -> f64 {
    values.into_iter().map(|v| v.to_f64().map_or(f64::INFINITY, f64::abs)).fold(0.0, f64::max)
}

/// `(x - mean) / std` per input column.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalizer<T> {
    pub mean: Array1<T>,
    pub std: Array1<T>,
}

impl<T: Real> Normalizer<T> {
    pub(crate) fn apply(&self, x: ArrayView2<T>) -> Array2<T> {
        let mut out = x.to_owned();
        out -= &self.mean;
        out /= &self.std;
        // Only where `x - mean` itself left T's range (a column spanning
        // more than float32's largest magnitude, e.g. values of ±2e38,
        // whose standardised values are moderate): such rows were refused
        // as overflowing the encoder. Every other value keeps its bits.
        if !out.iter().all(|v| v.is_finite()) {
            for (mut row, x) in out.rows_mut().into_iter().zip(x.rows()) {
                for (j, (v, &given)) in row.iter_mut().zip(x.iter()).enumerate() {
                    if !v.is_finite() {
                        *v = self.value_wide(given, j);
                    }
                }
            }
        }
        out
    }

    /// `(x - mean[j]) / std[j]` of one value of column `j`, as [`Self::apply`] computes it.
    pub(crate) fn value(&self, x: T, j: usize) -> T {
        let v = (x - self.mean[j]) / self.std[j];
        if v.is_finite() {
            v
        } else {
            self.value_wide(x, j)
        }
    }

    /// `(x - mean[j]) / std[j]` computed in f64, rounded to T: not finite
    /// only when the standardised value itself is beyond T.
    fn value_wide(&self, x: T, j: usize) -> T {
        let wide = |v: T| v.to_f64().unwrap_or(f64::NAN);
        T::c((wide(x) - wide(self.mean[j])) / wide(self.std[j]))
    }
}

/// Embeddings `[B, M, E]` and, per modality, what the backward needs.
pub(crate) type EncodedWithTapes<T> = (Array3<T>, Vec<Option<ModalityTape<T>>>);

/// What the encoders' backward needs for one modality.
pub(crate) struct ModalityTape<T> {
    pub encoder: EncoderTape<T>,
    pub pool: PoolTape<T>,
    /// The standardised inputs, when the modality has a normaliser.
    pub normalized: Option<Array2<T>>,
}

impl<T: Real> LearnableMultiModal<T> {
    /// Builds the model and initialises its weights from `config.seed`.
    ///
    /// The config is checked first, then the size of the model against the
    /// memory it needs (weights, their transposes, gradients, Adam's moments
    /// and staging buffers: `TooLarge` naming the size that dominates),
    /// before anything large is allocated.
    pub fn new(config: Config) -> Result<Self> {
        config.validate_for::<T>()?;
        let (e, h) = (config.embed_dim, config.hidden_dim);
        let mut layout = ParamLayout::new();
        let with_head = !config.shared_head.is_empty();
        let mut encoders: Vec<ModalityEncoder> = Modality::ALL
            .iter()
            .map(|&m| {
                let d = config.input_dims[m.index()];
                let mut encoder = ModalityEncoder::register_layers(&mut layout, m, d, &config.encoder_hidden, config.encoder_dim(), !with_head);
                if config.encoder_skip {
                    encoder.register_skip(&mut layout, config.encoder_dim());
                }
                encoder
            })
            .collect();
        let head = with_head.then(|| ProjectionHead::register(&mut layout, config.encoder_dim(), &config.shared_head));
        if let Some(head) = &head {
            encoders.iter_mut().for_each(|enc| enc.attach_head(head));
        }
        let fusion = FusionNetwork::register(&mut layout, e, h, config.fusion_residual);
        let binder = CrossModalBinder::register(&mut layout, e, config.binder);
        let attention = ModalityAttention::register(&mut layout, e, config.num_heads);
        let temperatures = config.learnable_temperature.then(|| {
            [Objective::Contrastive, Objective::FusedContrastive].map(|o| LearnedTemperature::register(&mut layout, o.name(), config.temperature))
        });
        // Last, so the other tensors keep their offsets and initial values.
        let decoders = config.reconstruction_decoders.then(|| Decoders::register(&mut layout, e, &config.input_dims));
        let arg = config.largest_size_field();
        let sizes = config.size_summary();
        let n = layout
            .checked_len()
            .ok_or_else(|| Error::too_large(arg, format!("{sizes}: the number of parameters overflows")))?;
        crate::memory::check(arg, format_args!("{sizes}: a model of {n} parameters (its weights and training state)"), n, STATE_BUFFERS * std::mem::size_of::<T>())?;
        let params = layout.try_initialize(config.seed)?;
        Ok(LearnableMultiModal {
            config,
            layout,
            params,
            encoders,
            fusion,
            binder,
            attention,
            head,
            temperatures,
            decoders,
            grads: crate::memory::try_zeros(arg, "the gradient buffer", n)?,
            has_grads: false,
            adam: Adam::try_new(n)?,
            params_bound: None,
            rng_counter: 0,
            trained_rows: Some([0; NUM_MODALITIES]),
            trained_any: false,
            pending_rows: [0; NUM_MODALITIES],
            normalizers: vec![None; NUM_MODALITIES],
            transposed: OnceLock::new(),
            spare_transposed: SpareBuffer::default(),
            grad_scratch: Vec::new(),
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn layout(&self) -> &ParamLayout {
        &self.layout
    }

    /// The flat parameter buffer, in layout order.
    pub fn params(&self) -> &[T] {
        &self.params
    }

    pub fn params_mut(&mut self) -> &mut [T] {
        self.params_changed();
        &mut self.params
    }

    /// Forgets what was derived from the weights (call after changing them
    /// other than by Adam): the transposes and Adam's tracked bound of the
    /// weights, which its unchecked in-place update relies on.
    pub(crate) fn params_changed(&mut self) {
        self.forget_transposes();
        self.params_bound = None;
    }

    /// Forgets the transposed weights only: after an Adam update, which
    /// keeps its own bound of the weights up to date.
    pub(crate) fn forget_transposes(&mut self) {
        if let Some(old) = self.transposed.take() {
            self.spare_transposed.put(old);
        }
    }

    pub fn num_parameters(&self) -> usize {
        self.layout.len()
    }

    pub fn embed_dim(&self) -> usize {
        self.config.embed_dim
    }

    pub fn encoders(&self) -> &[ModalityEncoder] {
        &self.encoders
    }

    pub fn fusion(&self) -> &FusionNetwork {
        &self.fusion
    }

    pub fn binder(&self) -> &CrossModalBinder {
        &self.binder
    }

    pub fn attention(&self) -> &ModalityAttention {
        &self.attention
    }

    /// The projection head shared by the encoders, if the config has one.
    pub fn head(&self) -> Option<&ProjectionHead> {
        self.head.as_ref()
    }

    /// The reconstruction objective's decoders, if the config has them.
    pub fn decoders(&self) -> Option<&Decoders> {
        self.decoders.as_ref()
    }

    /// The learned temperature of `objective` (contrastive or
    /// fused_contrastive), when temperatures are learned.
    pub fn learned_temperature(&self, objective: Objective) -> Option<LearnedTemperature> {
        match objective {
            Objective::Contrastive => self.temperatures.map(|t| t[0]),
            Objective::FusedContrastive => self.temperatures.map(|t| t[1]),
            _ => None,
        }
    }

    /// The temperature `objective` uses now: the learned one (clamped to
    /// its range) or `config.temperature`.
    pub fn temperature(&self, objective: Objective) -> T {
        match self.learned_temperature(objective) {
            Some(t) => t.value(self.view()).0,
            None => T::c(self.config.temperature),
        }
    }

    /// Keeps the learned temperatures in their range (after an update).
    pub(crate) fn clamp_temperatures(&mut self) {
        for t in self.temperatures.iter().flatten() {
            t.clamp_stored(&self.layout, &mut self.params);
        }
    }

    /// The encoders' dropout rates (used in training only).
    pub fn dropout_rates(&self) -> DropoutRates {
        DropoutRates { input: self.config.encoder_input_dropout, hidden: self.config.encoder_hidden_dropout }
    }

    /// The tensor called `name`.
    pub fn param(&self, name: &str) -> Result<ArrayViewD<'_, T>> {
        Ok(self.view().tensor(self.layout.find(name)?))
    }

    /// Overwrites tensor `name`; its shape must match and values be finite.
    pub fn set_param(&mut self, name: &str, values: ArrayViewD<T>) -> Result<()> {
        self.params_changed();
        assign(&self.layout, &mut self.params, name, values)
    }

    /// Overwrites each `(name, values)` of `tensors`, all or nothing: every
    /// one is checked as [`set_param`](Self::set_param) checks it before
    /// any is written.
    pub fn set_params(&mut self, tensors: &[(&str, ArrayViewD<T>)]) -> Result<()> {
        self.params_changed();
        assign_all(&self.layout, &mut self.params, tensors)
    }

    /// The input standardisation of modality `m`, if any.
    pub fn normalizer(&self, m: Modality) -> Option<&Normalizer<T>> {
        self.normalizers[m.index()].as_ref()
    }

    /// Sets (or with `None` removes) modality `m`'s input standardisation:
    /// `mean` and `std` are `[d_m]`, finite, `std >= MIN_STD`.
    pub fn set_normalizer(&mut self, m: Modality, normalizer: Option<Normalizer<T>>) -> Result<()> {
        if let Some(n) = &normalizer {
            let d = self.config.input_dims[m.index()];
            let arg = format!("normalization['{}']", m.name());
            check_shape(&format!("{arg}.mean"), &n.mean, &[Some(d)])?;
            check_shape(&format!("{arg}.std"), &n.std, &[Some(d)])?;
            check_finite(&format!("{arg}.mean"), &n.mean)?;
            let min = T::c(MIN_STD);
            if let Some((i, v)) = n.std.iter().enumerate().find(|(_, v)| !(v.is_finite() && **v >= min)) {
                return Err(Error::invalid(
                    format!("{arg}.std"),
                    format!(
                        "got {} at index {i}; expected finite numbers >= {MIN_STD:.3e} (the smallest normal float32; \
                         a constant column's std is taken as 1, as fit_normalization and scikit-learn's StandardScaler do)",
                        fmt_value(v.to_f64().unwrap_or(f64::NAN))
                    ),
                ));
            }
        }
        self.normalizers[m.index()] = normalizer;
        Ok(())
    }

    /// The parameters seen through their layout (with the transposed
    /// weights, made here if the weights changed since they were last made).
    pub fn view(&self) -> Params<'_, T> {
        let t = self.transposed.get_or_init(|| {
            let mut buf = self.spare_transposed.take();
            self.layout.transpose_matrices_into(&self.params, &mut buf);
            buf
        });
        self.layout.view_with_transposes(&self.params, t)
    }

    /// The error for a row of values at most `largest_input` in magnitude
    /// that overflowed float32 in `component` (the parameters named with one
    /// of `prefixes`), when those parameters are the larger: too large a
    /// learning rate grows them until rows of moderate values (unit
    /// embeddings, standardised inputs) overflow, and the caller's row was
    /// blamed. `None` when the row is at least as large: the row is to blame.
    pub(crate) fn grown_parameters(&self, component: &str, prefixes: &[&str], largest_input: f64) -> Option<Error> {
        let specs = self.layout.specs().iter().filter(|s| prefixes.iter().any(|p| s.name.starts_with(p)));
        let largest = largest_magnitude(specs.flat_map(|s| &self.params[s.range()]));
        (largest > largest_input).then(|| {
            Error::overflow(
                "parameters",
                format!(
                    "the {component}'s parameters have grown to {largest:.3e} in magnitude, and a row of moderate values \
                     (at most {largest_input:.3e}) overflows float32 in it; expected parameters of moderate size \
                     (too large a learning rate grows them)"
                ),
            )
        })
    }

    /// The error of event `row` of modality `m`'s inputs `part` overflowing
    /// float32 at `place` in its encoder ("the encoder", a hidden layer)
    /// when the row's values, finite (checked on entry), leave float32 once
    /// standardised: the standardisation is to blame, not the encoder. The
    /// message starts as the encoder's own: callers renumber "row r
    /// overflows float32 in the encoder".
    pub(crate) fn standardisation_overflow(&self, m: usize, part: &ModalityInput<T>, row: usize, place: &str) -> Option<Error> {
        let normalizer = self.normalizers[m].as_ref()?;
        let mut components = part.x.rows().into_iter().zip(part.rows.iter()).filter(|&(_, &r)| r == row);
        let overflowed = components.any(|(x, _)| x.iter().enumerate().any(|(j, &v)| !normalizer.value(v, j).is_finite()));
        overflowed.then(|| {
            Error::overflow(input_arg(m), format!(
                "row {row} overflows float32 in {place}: its values are finite, but not once standardised by the \
                 model's normalization ((x - mean) / std, with the mean and std that fit or set_normalization gave \
                 this modality: a std below 1 scales values up); expected values whose standardised value is within \
                 float32's range (3.4e38)"
            ))
        })
    }

    /// The error of event `row` of modality `m`'s inputs `part` overflowing
    /// float32 at `place` in its encoder ("the encoder", a hidden layer):
    /// blaming the standardisation when the row's standardised values left
    /// float32, else the row, unless the encoder's parameters (and the
    /// shared head's, `with_head`) are larger than the row's values after
    /// the model's normalization.
    fn encoder_overflow(&self, m: usize, part: &ModalityInput<T>, row: usize, with_head: bool, place: &str) -> Error {
        let components = part.x.rows().into_iter().zip(part.rows.iter()).filter(|&(_, &r)| r == row);
        let normalized = components.flat_map(|(x, _)| {
            x.into_iter().enumerate().map(|(j, &v)| match &self.normalizers[m] {
                Some(n) => n.value(v, j),
                None => v,
            })
        });
        let largest_input = normalized.map(|v| v.to_f64().map_or(f64::INFINITY, f64::abs)).fold(0.0, f64::max);
        if let Some(err) = largest_input.is_infinite().then(|| self.standardisation_overflow(m, part, row, place)).flatten() {
            return err;
        }
        let encoder = format!("encoder.{}.", Modality::ALL[m].name());
        let prefixes: &[&str] = if with_head { &[&encoder, "head."] } else { &[&encoder] };
        self.grown_parameters(&format!("{} encoder", Modality::ALL[m].name()), prefixes, largest_input)
            .unwrap_or_else(|| Self::row_overflow(m, row, place))
    }

    /// The error of event `row` of modality `m` overflowing float32 at
    /// `place` in its encoder, blamed on the row's values (no standardisation
    /// or grown parameter to blame).
    pub(crate) fn row_overflow(m: usize, row: usize, place: &str) -> Error {
        Error::overflow(
            input_arg(m),
            format!("row {row} overflows float32 in {place} (after the model's normalization, if any); expected values of moderate size"),
        )
    }

    /// The error of row `row` of `arg` overflowing float32 in the fusion
    /// network (`emb`: the row's embeddings `[M, E]`, the network's input).
    fn fusion_overflow(&self, arg: &str, row: usize, emb: ArrayView2<T>) -> Error {
        self.grown_parameters("fusion network", &["fusion."], largest_magnitude(emb)).unwrap_or_else(|| {
            Error::overflow(
                arg,
                format!("row {row} overflows float32 in the fusion network; modality embeddings are unit vectors (from encode), expected values of moderate size"),
            )
        })
    }

    /// Modality embeddings `[B, M, E]`: unit rows where present, zeros where absent.
    pub fn encode(&self, input: &EncoderInput<T>) -> Result<Array3<T>> {
        Ok(self.forward(input, false)?.0)
    }

    /// The encoders' own hidden features `[B, M, H]`: the output of hidden
    /// layer `layer` (0: the first of `config.encoder_hidden`, whose width
    /// is `H`) after its LeakyReLU, without dropout, for every present row;
    /// zeros where a modality is absent. One row per event and modality
    /// (dense inputs): features have no pooling rule for several
    /// components of one event.
    pub fn hidden_features(&self, input: &EncoderInput<T>, layer: usize) -> Result<Array3<T>> {
        let widths = &self.config.encoder_hidden;
        let Some(&width) = widths.get(layer) else {
            let expected = match widths.len() {
                0 => "none: this model's encoders have no hidden layers (config.encoder_hidden is empty)".to_string(),
                n => format!("a hidden layer 0 to {} (config.encoder_hidden = {widths:?})", n - 1),
            };
            return Err(Error::invalid("layer", format!("got {layer}; expected {expected}")));
        };
        for (m, part) in input.modalities.iter().enumerate() {
            if let Some(part) = part {
                self.check_input(input, m, part)?;
                if part.rows.windows(2).any(|w| w[0] >= w[1]) {
                    return Err(Error::invalid(input_arg(m), "several rows for one event; expected one row per event (dense inputs)"));
                }
            }
        }
        let params = self.view();
        let mut out = try_zeros_array("inputs", "the hidden features [B, 7, H]", (input.batch_size, NUM_MODALITIES, width))?;
        for (m, part) in input.modalities.iter().enumerate() {
            let Some(part) = part else { continue };
            let normalized = self.normalizers[m].as_ref().map(|n| n.apply(part.x.view()));
            let x = normalized.as_ref().map_or_else(|| part.x.view(), |x| x.view());
            let h = self.encoders[m].hidden_forward(params, x, layer).expect("every encoder has config.encoder_hidden's layers");
            for (row, &r) in h.rows().into_iter().zip(part.rows.iter()) {
                if !row.iter().all(|v| v.is_finite()) {
                    return Err(self.encoder_overflow(m, part, r, false, &format!("the encoder's hidden layer {layer}")));
                }
                out.slice_mut(s![r, m, ..]).assign(&row);
            }
        }
        Ok(out)
    }

    /// Checks one modality's inputs (`part`, of `input`): shape and finite values.
    fn check_input(&self, input: &EncoderInput<T>, m: usize, part: &crate::batch::ModalityInput<T>) -> Result<()> {
        let d = self.config.input_dims[m];
        if part.x.ncols() != d {
            check_shape(&input_arg(m), &part.x, &[None, Some(d)])?;
        }
        if let Err(Error::NonFinite { .. }) = check_finite("", &part.x) {
            let bad = part.x.rows().into_iter().position(|r| r.iter().any(|v| !v.is_finite()));
            let row = bad.map_or(0, |i| part.rows[i]);
            return Err(Error::non_finite(input_arg(m), input.present_row(row)));
        }
        Ok(())
    }

    /// The inference forward: embeddings `[B, M, E]` and, with `fuse`, the
    /// fused `[B, E]`. Modalities given one row per event in batch order are
    /// encoded straight into their slots, chunk by chunk, each chunk fused
    /// while it is in cache; the others (several components per event, or
    /// rows missing) are encoded and pooled first. Chunks run on the
    /// library's threads; every row's result is the same whatever the
    /// chunking.
    fn forward(&self, input: &EncoderInput<T>, fuse: bool) -> Result<(Array3<T>, Option<Array2<T>>)> {
        for (m, part) in input.modalities.iter().enumerate() {
            if let Some(part) = part {
                self.check_input(input, m, part)?;
            }
        }
        let (batch, e) = (input.batch_size, self.embed_dim());
        let params = self.view();
        let mut emb = try_zeros_array("inputs", "the embeddings [B, 7, E]", (batch, NUM_MODALITIES, e))?;
        let overflow = FirstOverflow::new();
        let direct: [bool; NUM_MODALITIES] = std::array::from_fn(|m| {
            input.modalities[m].as_ref().is_some_and(|p| p.rows.len() == batch && p.rows.iter().enumerate().all(|(i, &r)| i == r))
        });
        for (m, part) in input.modalities.iter().enumerate() {
            let Some(part) = part.as_ref().filter(|_| !direct[m]) else { continue };
            let normalized = self.normalizers[m].as_ref().map(|n| n.apply(part.x.view()));
            let x = normalized.as_ref().map_or_else(|| part.x.view(), |x| x.view());
            let mut z = self.encoders[m].forward_train(params, x);
            if let Some(i) = self.rescue_encoder_rows(m, params, x, z.out.view_mut(), z.norms.view()) {
                overflow.note(part.rows[i], m);
            }
            pool_components(z.out.view(), &part.rows, part.weights.as_deref(), emb.slice_mut(s![.., m, ..]));
        }
        let mask = input.mask();
        let mask = mask.as_standard_layout();
        let present = mask.as_slice().expect("standard layout");
        let mut fused = fuse.then(|| try_zeros_array("inputs", "the fused embeddings [B, E]", (batch, e))).transpose()?;
        let chunk = forward_chunk(batch);
        let run_chunk = |(t, (mut emb, fused)): (usize, (ArrayViewMut3<T>, Option<ArrayViewMut2<T>>))| {
            let (r0, rows) = (t * chunk, emb.len_of(Axis(0)));
            // A chunk has at most FORWARD_CHUNK rows: their norms on the stack.
            let mut norms = [T::zero(); FORWARD_CHUNK];
            let mut norms = ArrayViewMut1::from(&mut norms[..rows]);
            for (m, part) in input.modalities.iter().enumerate() {
                let Some(part) = part.as_ref().filter(|_| direct[m]) else { continue };
                let x = part.x.slice(s![r0..r0 + rows, ..]);
                let normalized = self.normalizers[m].as_ref().map(|n| n.apply(x));
                let x = normalized.as_ref().map_or(x, |x| x.view());
                let mut out = emb.index_axis_mut(Axis(1), m);
                self.encoders[m].forward_into(params, x, out.view_mut(), norms.view_mut());
                // One pass over the norms first: a rescue is for overflowed rows only.
                if !norms.iter().all(|n| n.is_finite()) {
                    if let Some(i) = self.rescue_encoder_rows(m, params, x, out, norms.view()) {
                        overflow.note(r0 + i, m);
                    }
                }
            }
            if let Some(mut fused) = fused {
                let x = emb.view().into_shape_with_order((rows, NUM_MODALITIES * e)).expect("chunks of a fresh array are contiguous");
                let present = &present[r0 * NUM_MODALITIES..(r0 + rows) * NUM_MODALITIES];
                self.fusion.forward_rows(params, x, Some(present), fused.view_mut(), norms.view_mut());
                overflow.check_norms(norms.iter().enumerate().map(|(i, n)| (r0 + i, *n)), FUSED_SLOT);
            }
        };
        if (1..=chunk).contains(&batch) {
            // One chunk (a single event, a small batch): run here, without
            // the list of tasks.
            run_chunk((0, (emb.view_mut(), fused.as_mut().map(|f| f.view_mut()))));
        } else {
            let emb_chunks = emb.axis_chunks_iter_mut(Axis(0), chunk);
            let tasks: Vec<_> = match fused.as_mut() {
                Some(f) => emb_chunks.zip(f.axis_chunks_iter_mut(Axis(0), chunk).map(Some)).enumerate().collect(),
                None => emb_chunks.zip(std::iter::repeat_with(|| None)).enumerate().collect(),
            };
            threads::for_each_item(tasks, run_chunk);
        }
        match overflow.first() {
            None => Ok((emb, fused)),
            Some((row, FUSED_SLOT)) => Err(self.fusion_overflow("inputs", row, emb.slice(s![row, .., ..]))),
            Some((row, m)) => {
                let part = input.modalities[m].as_ref().expect("only a given modality overflows");
                Err(self.encoder_overflow(m, part, row, true, "the encoder"))
            }
        }
    }

    /// Recomputes the rows of encoder `m`'s output `out` whose `norms` show
    /// that their products overflowed float32, with the inputs scaled down
    /// (exactly the same embedding); returns the first row that is still not
    /// finite (its input overflowed already, e.g. in the normalisation).
    fn rescue_encoder_rows(&self, m: usize, params: Params<T>, x: ArrayView2<T>, mut out: ArrayViewMut2<T>, norms: ArrayView1<T>) -> Option<usize> {
        let mut failed = None;
        for i in (0..norms.len()).filter(|&i| !norms[i].is_finite()) {
            if !self.encoders[m].forward_row_scaled(params, x.row(i), out.row_mut(i)) && failed.is_none() {
                failed = Some(i);
            }
        }
        failed
    }

    /// [`Self::encode`] keeping, per modality, what the backward needs (the
    /// same work: the tapes hold arrays the forward computes anyway). With
    /// `dropout_counter`, the encoders drop as in training, with the masks
    /// of gradient computation `dropout_counter` (when the config has any
    /// dropout).
    pub(crate) fn encode_train(&self, input: &EncoderInput<T>, dropout_counter: Option<u64>) -> Result<EncodedWithTapes<T>> {
        let rates = self.dropout_rates();
        let dropout_counter = dropout_counter.filter(|_| rates.is_active());
        let mut emb = try_zeros_array("inputs", "the embeddings [B, 7, E]", (input.batch_size, NUM_MODALITIES, self.embed_dim()))?;
        let mut tapes = Vec::with_capacity(NUM_MODALITIES);
        for (m, slot) in input.modalities.iter().enumerate() {
            let Some(part) = slot else {
                tapes.push(None);
                continue;
            };
            self.check_input(input, m, part)?;
            let normalized = self.normalizers[m].as_ref().map(|n| n.apply(part.x.view()));
            let x = normalized.as_ref().map_or_else(|| part.x.view(), |x| x.view());
            let encoder = match dropout_counter {
                Some(counter) => {
                    let mut rng = dropout_rng(self.config.seed, counter, Modality::ALL[m]);
                    self.encoders[m].forward_train_dropping(self.view(), x, Some(Dropping { rates, rng: &mut rng }))
                }
                None => self.encoders[m].forward_train(self.view(), x),
            };
            let pool = pool_components(encoder.out.view(), &part.rows, part.weights.as_deref(), emb.slice_mut(s![.., m, ..]));
            tapes.push(Some(ModalityTape { encoder, pool, normalized }));
        }
        Ok((emb, tapes))
    }

    /// Accumulates the encoders' gradients from `d_emb [B, M, E]`, the
    /// gradient on the embeddings `emb` that [`Self::encode_train`] returned.
    pub(crate) fn encode_backward(
        &self,
        input: &EncoderInput<T>,
        tapes: &[Option<ModalityTape<T>>],
        emb: ArrayView3<T>,
        d_emb: &Array3<T>,
        grads: &mut ParamsMut<T>,
    ) {
        for (m, (slot, tape)) in input.modalities.iter().zip(tapes).enumerate() {
            let (Some(part), Some(tape)) = (slot, tape) else { continue };
            let dz = pool_components_backward(&tape.pool, &part.rows, emb.slice(s![.., m, ..]), d_emb.slice(s![.., m, ..]));
            let x = tape.normalized.as_ref().map_or_else(|| part.x.view(), |x| x.view());
            self.encoders[m].backward(self.view(), x, &tape.encoder, dz, grads);
        }
    }

    /// Fused embeddings `[B, E]` (unit rows) of `emb [B, M, E]`; modalities
    /// absent in `mask [B, M]` count as zeros whatever `emb` holds there.
    pub fn fuse(&self, emb: ArrayView3<T>, mask: ArrayView2<bool>) -> Result<Array2<T>> {
        let emb = self.check_embeddings(emb, mask)?;
        let (batch, e) = (emb.shape()[0], self.embed_dim());
        let x = emb.to_shape((batch, NUM_MODALITIES * e)).expect("[B, M, E] is reshapeable");
        let mask = mask.as_standard_layout();
        let present = mask.as_slice().expect("standard layout");
        let params = self.view();
        let mut fused = try_zeros_array("embeddings", "the fused embeddings [B, E]", (batch, e))?;
        let chunk = forward_chunk(batch);
        let tasks: Vec<_> = x.axis_chunks_iter(Axis(0), chunk).zip(fused.axis_chunks_iter_mut(Axis(0), chunk)).enumerate().collect();
        let overflow = FirstOverflow::new();
        threads::for_each_item(tasks, |(t, (x, out))| {
            let rows = x.nrows();
            let mut norms = Array1::zeros(rows);
            let present = &present[t * chunk * NUM_MODALITIES..(t * chunk + rows) * NUM_MODALITIES];
            self.fusion.forward_rows(params, x, Some(present), out, norms.view_mut());
            overflow.check_norms(norms.iter().enumerate().map(|(i, n)| (t * chunk + i, *n)), FUSED_SLOT);
        });
        match overflow.first() {
            None => Ok(fused),
            Some((row, _)) => Err(self.fusion_overflow("embeddings", row, emb.slice(s![row, .., ..]))),
        }
    }

    /// Encodes then fuses: `(embeddings [B, M, E], fused [B, E])`.
    pub fn encode_and_fuse(&self, input: &EncoderInput<T>) -> Result<(Array3<T>, Array2<T>)> {
        let (emb, fused) = self.forward(input, true)?;
        Ok((emb, fused.expect("asked for the fused embeddings")))
    }

    /// Binding strength of each row pair: `a [B, E]`, `b [B, E]` → `[B]` in [0, 1].
    pub fn bind(&self, a: ArrayView2<T>, b: ArrayView2<T>) -> Result<Array1<T>> {
        let e = Some(self.embed_dim());
        check_shape("a", &a, &[None, e])?;
        check_shape("b", &b, &[Some(a.nrows()), e])?;
        check_finite("a", &a)?;
        check_finite("b", &b)?;
        let strengths = self.binder.forward(self.view(), a, b);
        match strengths.iter().position(|v| !v.is_finite()) {
            None => Ok(strengths),
            Some(row) => {
                let largest_input = largest_magnitude(a.row(row)).max(largest_magnitude(b.row(row)));
                Err(self.grown_parameters("binder", &["binder."], largest_input).unwrap_or_else(|| {
                    Error::overflow("a", format!("row {row}: the binder overflows float32 on this pair; embeddings are unit vectors (from encode), expected values of moderate size"))
                }))
            }
        }
    }

    /// `S[b, i, j] = strength(e_i, e_j)` for modalities present in row `b`, else 0.
    pub fn pair_strengths(&self, emb: ArrayView3<T>, mask: ArrayView2<bool>) -> Result<Array3<T>> {
        let emb = self.check_embeddings(emb, mask)?;
        let strengths = self.binder.pair_strengths(self.view(), emb.view(), mask);
        match strengths.indexed_iter().find(|(_, v)| !v.is_finite()) {
            None => Ok(strengths),
            Some(((row, ..), _)) => Err(self.grown_parameters("binder", &["binder."], largest_magnitude(emb.slice(s![row, .., ..]))).unwrap_or_else(|| {
                Error::overflow("embeddings", format!("row {row}: the binder overflows float32 on this row; embeddings are unit vectors (from encode), expected values of moderate size"))
            })),
        }
    }

    /// Attention of `query [B, E]` over the present modalities of `emb [B, M, E]`.
    pub fn attend(&self, query: ArrayView2<T>, emb: ArrayView3<T>, mask: ArrayView2<bool>) -> Result<AttentionOutput<T>> {
        let emb = self.check_embeddings(emb, mask)?;
        check_shape("query", &query, &[Some(emb.shape()[0]), Some(self.embed_dim())])?;
        check_finite("query", &query)?;
        let out = self.attention.forward(self.view(), query, emb.view(), mask);
        let finite = |a: ArrayView1<T>| a.iter().all(|v| v.is_finite());
        let row = (0..out.weights.nrows()).find(|&b| !(finite(out.weights.row(b)) && finite(out.attended.row(b))));
        match row {
            None => Ok(out),
            Some(row) => {
                let largest_input = largest_magnitude(query.row(row)).max(largest_magnitude(emb.slice(s![row, .., ..])));
                Err(self.grown_parameters("attention", &["attention."], largest_input).unwrap_or_else(|| {
                    Error::overflow(
                        "query",
                        format!("row {row}: the attention overflows float32 on this row's query and embeddings; expected values of moderate size (embeddings are unit vectors from encode)"),
                    )
                }))
            }
        }
    }

    /// Validates `emb [B, M, E]` against `mask [B, M]` and zeroes absent slots
    /// (copying only when some slot is absent).
    pub(crate) fn check_embeddings<'a>(&self, emb: ArrayView3<'a, T>, mask: ArrayView2<bool>) -> Result<CowArray<'a, T, Ix3>> {
        check_shape("embeddings", &emb, &[None, Some(NUM_MODALITIES), Some(self.embed_dim())])?;
        check_shape("mask", &mask, &[Some(emb.shape()[0]), Some(NUM_MODALITIES)])?;
        let all_present_finite = match emb.as_slice() {
            Some(values) if mask.iter().all(|&p| p) => all_finite(values),
            _ => false,
        };
        if !all_present_finite {
            for ((b, m), &present) in mask.indexed_iter() {
                if present {
                    check_finite("embeddings", &emb.slice(s![b, m, ..]))
                        .map_err(|_| Error::non_finite("embeddings", format!("row {b}, modality '{}'", Modality::ALL[m].name())))?;
                }
            }
        }
        if mask.iter().all(|&p| p) {
            return Ok(CowArray::from(emb));
        }
        let mut owned = emb.to_owned();
        for ((b, m), &present) in mask.indexed_iter() {
            if !present {
                owned.slice_mut(s![b, m, ..]).fill(T::zero());
            }
        }
        Ok(CowArray::from(owned))
    }
}
