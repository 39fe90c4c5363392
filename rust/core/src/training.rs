//! Learning: objectives → gradients → Adam, on the model's own buffers.
//!
//! `losses` evaluates; `backward` evaluates and *accumulates* gradients
//! (`has_gradients()` is then true); `step` applies one Adam update from the
//! accumulated gradients (a no-op without any); `zero_grad` clears them;
//! `train_step` is `zero_grad → backward → step`. Each `backward` advances a
//! counter that, with `config.seed`, fixes the objectives' random draws, so
//! the training state is exactly: weights, gradients, Adam state, counter.
//!
//! Beside it, a record of which encoders were trained (`trained_rows`: per
//! modality, the input rows of the accepted updates; `has_trained`: whether
//! there was any accepted update), which changes no computation: a modality
//! no batch held keeps its random initial encoder.

use crate::adam::{global_norm, AdamSettings, OverflowCause, Refusal, StepReport, MAX_STEP};
use crate::batch::{input_arg, EncoderInput};
use crate::error::{fmt_value, Error, Result};
use crate::model::{LearnableMultiModal, ModalityTape};
use crate::modality::{Modality, NUM_MODALITIES};
use crate::objectives::input_neighbors::{input_neighbors, pooled_rows, RowInputs};
use crate::objectives::{self, objective_rng, GradSink, Losses, Neighbors, Objective, ObjectiveWeights, NUM_OBJECTIVES};
use crate::objectives::fused_contrastive::{FusedNeighbors, NeighborSpace};
use crate::real::Real;
use crate::validate::{all_finite, check_finite, check_shape};
use ndarray::{s, Array1, Array2, Array3, ArrayView1, ArrayView2, ArrayView3, CowArray, Ix3};

/// Where a batch's modality embeddings come from.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // one per batch: boxing buys nothing
pub enum EmbeddingSource<'a, T: Clone> {
    /// Encoded from inputs: the gradients reach the encoders.
    Inputs(EncoderInput<'a, T>),
    /// Given (e.g. recorded in an experience buffer): constants.
    Embeddings { emb: ArrayView3<'a, T>, mask: ArrayView2<'a, bool> },
}

/// One training batch.
#[derive(Debug, Clone)]
pub struct TrainBatch<'a, T: Clone> {
    pub source: EmbeddingSource<'a, T>,
    /// Recorded fused embeddings `[B, E]`, the targets of seed_consistency.
    pub fused: Option<ArrayView2<'a, T>>,
    /// Rewards `[B]` weighting seed_consistency by `1 − reward` (default 0).
    pub rewards: Option<ArrayView1<'a, T>>,
}

impl<'a, T: Real> TrainBatch<'a, T> {
    /// A batch of inputs only.
    pub fn inputs(input: EncoderInput<'a, T>) -> Self {
        TrainBatch {
            source: EmbeddingSource::Inputs(input),
            fused: None,
            rewards: None,
        }
    }

    pub fn batch_size(&self) -> usize {
        match &self.source {
            EmbeddingSource::Inputs(input) => input.batch_size,
            EmbeddingSource::Embeddings { emb, .. } => emb.shape()[0],
        }
    }
}

/// The objectives' random draws for one gradient computation.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectiveDraws {
    /// binding: `(i, j, shift)` per ordered modality pair with ≥ 2 shared rows.
    pub shifts: Vec<(usize, usize, usize)>,
    /// cross_modal: the rows it uses and the modality dropped in each.
    pub rows: Vec<usize>,
    pub dropped: Vec<usize>,
    /// fused_contrastive: its rows, their two views and positives.
    pub fused: objectives::fused_contrastive::FusedViews,
}

/// The readable and restorable training state (besides the weights).
#[derive(Debug, Clone, PartialEq)]
pub struct OptimizerState<T> {
    /// Adam's first and second moments, layout order.
    pub m: Vec<T>,
    pub v: Vec<T>,
    /// Adam updates so far.
    pub step: u64,
    /// Gradient computations so far (fixes the objectives' random draws).
    pub rng_counter: u64,
}

impl<T: Real> LearnableMultiModal<T> {
    /// The losses of `batch` under `weights`, without gradients; uses the
    /// random draws the next [`Self::backward`] will use. The encoders do
    /// not drop here (an evaluation, like PyTorch's `eval()` mode): with
    /// encoder dropout in the config, [`Self::training_losses`] gives the
    /// losses the next backward computes.
    pub fn losses(&self, batch: &TrainBatch<T>, weights: &ObjectiveWeights) -> Result<Losses<T>> {
        self.run_objectives(batch, weights, self.rng_counter, None, false)
    }

    /// The losses the next [`Self::backward`] computes on `batch`: its
    /// random draws and its dropout masks, without gradients.
    pub fn training_losses(&self, batch: &TrainBatch<T>, weights: &ObjectiveWeights) -> Result<Losses<T>> {
        self.run_objectives(batch, weights, self.rng_counter, None, true)
    }

    /// The losses of `batch`; their gradients are added to the accumulated
    /// ones. On error nothing changes.
    pub fn backward(&mut self, batch: &TrainBatch<T>, weights: &ObjectiveWeights) -> Result<Losses<T>> {
        let counter = self.next_counter()?;
        // Without gradients yet, the (all-zero) gradient buffer itself
        // receives them; else a scratch buffer, added on success.
        let accumulate = self.has_grads;
        let mut fresh = if accumulate { self.take_scratch() } else { std::mem::take(&mut self.grads) };
        let mut result = self.gradients_into(batch, weights, &mut fresh);
        if accumulate {
            if result.is_ok() {
                // The sums in the scratch buffer, kept only when all are finite: finite
                // gradients of many batches can add up past float32 (the step then
                // refused gradients that had become inf, and nothing undid them).
                for (f, g) in fresh.iter_mut().zip(&self.grads) {
                    *f += *g;
                }
                if let Some(i) = fresh.iter().position(|v| !v.is_finite()) {
                    result = Err(Error::overflow(
                        "gradients",
                        format!(
                            "adding this batch's gradients to those accumulated since zero_grad() overflows float32 at \
                             parameter {}; the accumulated gradients are kept as they were: call step() or zero_grad() \
                             before accumulating more, or use smaller objective weights",
                            self.param_name(i)
                        ),
                    ));
                } else {
                    std::mem::swap(&mut self.grads, &mut fresh);
                }
            }
            self.grad_scratch = fresh;
        } else {
            if result.is_err() {
                fresh.fill(T::zero()); // nothing changes: the gradients stay zero
            }
            self.grads = fresh;
        }
        let losses = result?;
        self.has_grads = true;
        self.rng_counter = counter;
        let rows = self.encoder_rows(batch, weights);
        add_rows(&mut self.pending_rows, rows);
        Ok(losses)
    }

    /// `zero_grad → backward → step(lr)`, all or nothing: when any part is
    /// refused (bad input, non-finite gradients, an update that would make a
    /// weight non-finite) the model is left exactly as it was, its
    /// accumulated gradients and random-draw counter included.
    pub fn train_step(&mut self, batch: &TrainBatch<T>, weights: &ObjectiveWeights, lr: Option<f64>) -> Result<(Losses<T>, StepReport)> {
        let settings = self.adam_settings(lr)?;
        let counter = self.next_counter()?;
        let mut fresh = self.take_scratch();
        // One pass over the gradients checks them and gives Adam their norm:
        // `global_norm` is finite exactly when every gradient is (squares
        // that overflow float32 are summed again in f64), so a non-finite
        // norm is `gradients_into`'s refusal, message and all.
        let result = match self.run_objectives(batch, weights, self.rng_counter, Some(&mut fresh), true) {
            Ok(losses) => match global_norm(&fresh) {
                norm if norm.is_finite() => match self.adam.update_tracked_with_norm(&mut self.params, &fresh, norm, &settings, &mut self.params_bound) {
                    Ok(report) => Ok((losses, report)),
                    Err(r) => Err(self.refusal_error(r, &settings, lr.is_some())),
                },
                _ => Err(self.non_finite_gradients(&fresh)),
            },
            Err(e) => Err(e),
        };
        if result.is_ok() {
            std::mem::swap(&mut self.grads, &mut fresh);
            self.has_grads = true;
            self.rng_counter = counter;
            self.after_update();
            let rows = self.encoder_rows(batch, weights);
            self.note_trained_rows(rows);
            self.pending_rows = [0; NUM_MODALITIES]; // the kept gradients are this batch's, counted
        }
        self.grad_scratch = fresh;
        result
    }

    /// Forgets what was derived from the old weights and keeps the learned
    /// temperatures in their range (after an accepted update; clamping only
    /// moves a value toward 0, so Adam's tracked bound of the weights holds).
    fn after_update(&mut self) {
        self.forget_transposes();
        self.clamp_temperatures();
    }

    /// The gradients of `batch` written into `out` (zero-filled, layout
    /// order), with the encoders' training dropout; an error when any is not
    /// finite.
    fn gradients_into(&self, batch: &TrainBatch<T>, weights: &ObjectiveWeights, out: &mut [T]) -> Result<Losses<T>> {
        let losses = self.run_objectives(batch, weights, self.rng_counter, Some(out), true)?;
        if all_finite(out) {
            return Ok(losses);
        }
        Err(self.non_finite_gradients(out))
    }

    /// The refusal of gradients `grads` of which one is not finite.
    fn non_finite_gradients(&self, grads: &[T]) -> Error {
        let i = grads.iter().position(|g| !g.is_finite()).unwrap_or(0);
        Error::non_finite("gradients", format!("parameter {} (the loss is ill-conditioned for this batch)", self.param_name(i)))
    }

    /// The scratch gradient buffer, zero-filled to the layout's length.
    fn take_scratch(&mut self) -> Vec<T> {
        let mut scratch = std::mem::take(&mut self.grad_scratch);
        scratch.clear();
        scratch.resize(self.layout.len(), T::zero());
        scratch
    }

    /// The counter after one more gradient computation.
    fn next_counter(&self) -> Result<u64> {
        self.rng_counter
            .checked_add(1)
            .ok_or_else(|| Error::invalid("optimizer state rng_counter", "is at its maximum; reset it to continue"))
    }

    /// The name of the tensor holding flat index `i`.
    fn param_name(&self, i: usize) -> &str {
        self.layout.specs().iter().find(|s| s.range().contains(&i)).map_or("?", |s| s.name.as_str())
    }

    /// The error of an update Adam refused (the model is unchanged).
    fn refusal_error(&self, refusal: Refusal, settings: &AdamSettings, lr_given: bool) -> Error {
        let lr_arg = if lr_given { "lr" } else { "learning_rate" };
        match refusal {
            Refusal::NonFiniteGradient(i) => Error::non_finite("gradients", format!("parameter {}", self.param_name(i))),
            Refusal::Settings(e) => e,
            Refusal::StepLimit => Error::invalid(
                "optimizer state step",
                format!("reached its maximum {MAX_STEP}; reset_optimizer() to continue"),
            ),
            Refusal::Overflow { index, cause } => {
                let name = self.param_name(index);
                let (arg, why) = match cause {
                    OverflowCause::WeightDecay => {
                        ("weight_decay", format!("{} × the weight overflows", fmt_value(1.0 - settings.learning_rate * settings.weight_decay)))
                    }
                    OverflowCause::Gradient => ("gradients", "the gradient is too large for Adam's first moment".to_string()),
                    OverflowCause::LearningRate => (lr_arg, format!("a step of {} is too large for it", fmt_value(settings.learning_rate))),
                };
                Error::overflow(
                    arg,
                    format!("the update would make parameter {name} non-finite ({why}); the step was refused and the model is unchanged"),
                )
            }
        }
    }

    /// Clears the accumulated gradients.
    pub fn zero_grad(&mut self) {
        self.grads.fill(T::zero());
        self.has_grads = false;
        self.pending_rows = [0; NUM_MODALITIES];
    }

    /// Per modality, how many rows of input batches trained its encoder:
    /// rows where it was present, summed over the accepted updates
    /// (`train_step`, or `step` after `backward`) whose weighted objectives
    /// reach the encoders; [`Self::apply_gradients`], which does not see the
    /// batch, adds one row (a lower bound) to each modality whose encoder
    /// it gives a nonzero gradient. Recorded embeddings train no encoder and
    /// count nothing (but the update counts in [`Self::has_trained`]).
    /// `None` when not known (see [`Self::set_trained_rows`]).
    pub fn trained_rows(&self) -> Option<[u64; NUM_MODALITIES]> {
        self.trained_rows
    }

    /// Whether the record holds an accepted update, whether or not it
    /// reached an encoder (`None` when the record is not known): `Some(true)`
    /// with every row 0 is a model that trained only what follows the
    /// encoders (on recorded embeddings, or with `config.encoder_objectives`
    /// leaving its objectives out), whose encoders are all as initialised.
    pub fn has_trained(&self) -> Option<bool> {
        self.trained_rows.map(|rows| self.trained_any || rows.iter().any(|&n| n > 0))
    }

    /// Restores a record from [`Self::trained_rows`] and [`Self::has_trained`]
    /// (a checkpoint's; `trained` counts only beside rows that are all 0);
    /// `None`: not known, as for a file that predates the record, or weights
    /// loaded from elsewhere, and it stays unknown as training goes on.
    pub fn set_trained_rows(&mut self, rows: Option<[u64; NUM_MODALITIES]>, trained: bool) {
        self.trained_rows = rows;
        self.trained_any = rows.is_some() && trained;
    }

    /// Adds the rows (per modality, saturating) of one accepted update to
    /// the record.
    pub fn note_trained_rows(&mut self, rows: [u64; NUM_MODALITIES]) {
        if let Some(trained) = self.trained_rows.as_mut() {
            add_rows(trained, rows);
            self.trained_any = true;
        }
    }

    /// The rows per modality a batch with presence `mask` trains the
    /// encoders on under `weights`: its present rows when a weighted
    /// objective reaches the encoders (`config.encoder_objectives`), else
    /// none. For an update of gradients computed elsewhere (data-parallel
    /// workers), with [`Self::note_trained_rows`].
    pub fn encoder_rows_of(&self, mask: ArrayView2<bool>, weights: &ObjectiveWeights) -> [u64; NUM_MODALITIES] {
        let mut rows = [0; NUM_MODALITIES];
        if self.reaches_encoders(weights) {
            for (count, column) in rows.iter_mut().zip(mask.columns()) {
                *count = column.iter().filter(|&&present| present).count() as u64;
            }
        }
        rows
    }

    /// Whether an objective `weights` weighs sends its gradient to the
    /// encoders (`config.encoder_objectives`).
    fn reaches_encoders(&self, weights: &ObjectiveWeights) -> bool {
        Objective::ALL.iter().any(|&o| weights.get(o) > 0.0 && self.config.encoder_objectives[o.index()])
    }

    /// [`Self::encoder_rows_of`] of a batch: none for recorded embeddings.
    fn encoder_rows(&self, batch: &TrainBatch<T>, weights: &ObjectiveWeights) -> [u64; NUM_MODALITIES] {
        match &batch.source {
            EmbeddingSource::Inputs(input) => self.encoder_rows_of(input.mask().view(), weights),
            EmbeddingSource::Embeddings { .. } => [0; NUM_MODALITIES],
        }
    }

    /// Whether gradients were accumulated since the last [`Self::zero_grad`].
    pub fn has_gradients(&self) -> bool {
        self.has_grads
    }

    /// The accumulated gradients, layout order.
    pub fn gradients(&self) -> &[T] {
        &self.grads
    }

    /// Makes `grads` (layout order, finite) the accumulated gradients, as a
    /// copy of a model holds its original's (`has_gradients()` is then
    /// true), of batches not known here: `step` records no rows for them
    /// ([`Self::set_gradients_of_rows`] says whose they are). On error
    /// nothing changes.
    pub fn set_gradients(&mut self, grads: &[T]) -> Result<()> {
        self.set_gradients_of_rows(grads, [0; NUM_MODALITIES])
    }

    /// The encoder rows of the accumulated gradients (their `backward`s'
    /// batches since the last `zero_grad`), which `step` adds to the record.
    pub fn pending_rows(&self) -> [u64; NUM_MODALITIES] {
        self.pending_rows
    }

    /// [`Self::set_gradients`] with `rows`, the [`Self::pending_rows`] of the
    /// model the gradients were read from, so that a copy (or a model put
    /// back as it was) records what its original's `step` would.
    pub fn set_gradients_of_rows(&mut self, grads: &[T], rows: [u64; NUM_MODALITIES]) -> Result<()> {
        let n = self.layout.len();
        if grads.len() != n {
            return Err(Error::shape("gradients", format!("({n},)"), format!("({},)", grads.len())));
        }
        if let Some(i) = grads.iter().position(|g| !g.is_finite()) {
            return Err(Error::non_finite("gradients", format!("flat index {i} (parameter {})", self.param_name(i))));
        }
        self.grads.copy_from_slice(grads);
        self.has_grads = true;
        self.pending_rows = rows;
        Ok(())
    }

    /// One Adam update from the accumulated gradients (which are kept);
    /// `None` (and nothing changes) when there are none. A refused update
    /// changes nothing.
    pub fn step(&mut self, lr: Option<f64>) -> Result<Option<StepReport>> {
        let settings = self.adam_settings(lr)?;
        if !self.has_grads {
            return Ok(None);
        }
        let report = self.adam.update_tracked(&mut self.params, &self.grads, &settings, &mut self.params_bound).map_err(|r| self.refusal_error(r, &settings, lr.is_some()))?;
        self.after_update();
        let rows = std::mem::replace(&mut self.pending_rows, [0; NUM_MODALITIES]);
        self.note_trained_rows(rows);
        Ok(Some(report))
    }

    /// One Adam update from `grads` (layout order), e.g. gradients averaged
    /// over workers; the accumulated gradients are left as they are. A
    /// refused update changes nothing. The record of trained encoders gains
    /// one row for each modality whose encoder's own tensors get a nonzero
    /// gradient (the batch is not seen: at least one of its rows made that
    /// gradient); [`Self::apply_batch_gradients`] notes a known batch's rows.
    pub fn apply_gradients(&mut self, grads: &[T], lr: Option<f64>) -> Result<StepReport> {
        let report = self.update_from(grads, lr)?;
        let rows = self.encoder_rows_of_gradients(grads);
        self.note_trained_rows(rows);
        Ok(report)
    }

    /// [`Self::apply_gradients`] of the gradients of a batch whose encoder
    /// rows are `rows` ([`Self::encoder_rows_of`] of its mask: data-parallel
    /// workers' shares), noted in the record instead, as `train_step` notes
    /// its own batch's.
    pub fn apply_batch_gradients(&mut self, grads: &[T], lr: Option<f64>, rows: [u64; NUM_MODALITIES]) -> Result<StepReport> {
        let report = self.update_from(grads, lr)?;
        self.note_trained_rows(rows);
        Ok(report)
    }

    /// One row per modality whose encoder's own tensors (`encoder.<modality>.*`,
    /// not the shared head) have a nonzero entry in `grads` (layout order).
    fn encoder_rows_of_gradients(&self, grads: &[T]) -> [u64; NUM_MODALITIES] {
        Modality::ALL.map(|m| {
            let prefix = format!("encoder.{}.", m.name());
            let mut own = self.layout.specs().iter().filter(|s| s.name.starts_with(&prefix));
            u64::from(own.any(|s| grads[s.range()].iter().any(|g| *g != T::zero())))
        })
    }

    /// The Adam update of [`Self::apply_gradients`], the record untouched.
    fn update_from(&mut self, grads: &[T], lr: Option<f64>) -> Result<StepReport> {
        let settings = self.adam_settings(lr)?;
        let n = self.layout.len();
        if grads.len() != n {
            return Err(Error::shape("grads", format!("({n},)"), format!("({},)", grads.len())));
        }
        let report = self.adam.update_tracked(&mut self.params, grads, &settings, &mut self.params_bound).map_err(|r| match r {
            Refusal::NonFiniteGradient(i) => Error::non_finite("grads", format!("flat index {i} (parameter {})", self.param_name(i))),
            r => self.refusal_error(r, &settings, lr.is_some()),
        })?;
        self.after_update();
        Ok(report)
    }

    pub fn optimizer_state(&self) -> OptimizerState<T> {
        OptimizerState {
            m: self.adam.m.clone(),
            v: self.adam.v.clone(),
            step: self.adam.step,
            rng_counter: self.rng_counter,
        }
    }

    /// Restores a state from [`Self::optimizer_state`] (checked first).
    pub fn set_optimizer_state(&mut self, state: OptimizerState<T>) -> Result<()> {
        if state.rng_counter > MAX_STEP {
            return Err(Error::invalid("optimizer state rng_counter", format!("got {}; expected at most {MAX_STEP}", state.rng_counter)));
        }
        self.adam.set_state(state.m, state.v, state.step)?;
        self.rng_counter = state.rng_counter;
        Ok(())
    }

    /// Forgets Adam's moments and step count (the counter is kept).
    pub fn reset_optimizer(&mut self) {
        self.adam.reset();
    }

    /// The random draws the next [`Self::backward`] makes on `batch` (for
    /// reference implementations that must reproduce a step exactly);
    /// fused_contrastive's positives follow from the batch's embeddings.
    pub fn objective_draws(&self, batch: &TrainBatch<T>) -> Result<ObjectiveDraws> {
        let (emb, mask) = match &batch.source {
            // The embeddings the next backward sees: with its dropout, if any.
            EmbeddingSource::Inputs(input) if self.dropout_rates().is_active() => {
                (CowArray::from(self.encode_train(input, Some(self.rng_counter))?.0), input.mask())
            }
            EmbeddingSource::Inputs(input) => (CowArray::from(self.encode(input)?), input.mask()),
            EmbeddingSource::Embeddings { emb, mask } => (self.check_embeddings(emb.view(), mask.view())?, mask.to_owned()),
        };
        let (seed, counter) = (self.config.seed, self.rng_counter);
        let mask = mask.view();
        let shifts = objectives::draw_shifts(mask, &mut objective_rng(seed, counter, Objective::Binding))
            .into_iter()
            .map(|(i, j, _, shift)| (i, j, shift))
            .collect();
        let (rows, dropped) = objectives::draw_dropped(mask, &mut objective_rng(seed, counter, Objective::CrossModal));
        let given = match &batch.source {
            EmbeddingSource::Inputs(input) if self.config.fused_neighbor_space == NeighborSpace::Inputs => {
                // The inputs as the encoders read them (checked by the encode above).
                let normalized: Vec<Option<Array2<T>>> = (input.modalities.iter().zip(&self.normalizers))
                    .map(|(part, n)| Some(n.as_ref()?.apply(part.as_ref()?.x.view())))
                    .collect();
                Some(self.input_neighbors(input, &normalized.iter().map(Option::as_ref).collect::<Vec<_>>(), self.config.fused_neighbors))
            }
            _ => None,
        };
        let fused = objectives::fused_contrastive::draw(
            emb.view(),
            mask,
            self.fused_neighbors(given.as_deref()),
            &mut objective_rng(seed, counter, Objective::FusedContrastive),
        );
        Ok(ObjectiveDraws { shifts, rows, dropped, fused })
    }

    /// The `k` rows of the batch nearest to each row by its inputs, as the
    /// encoders read them (normalised; components pooled): the contrastive
    /// objective's extra positives (`config.contrastive_neighbors`).
    /// `normalized[m]`: modality `m`'s inputs after the model's
    /// normalisation, `None` where it has none (the inputs as given).
    fn input_neighbors(&self, input: &EncoderInput<T>, normalized: &[Option<&Array2<T>>], k: usize) -> Vec<Vec<usize>> {
        let sides: Vec<RowInputs<T>> = input
            .modalities
            .iter()
            .zip(normalized)
            .filter_map(|(part, normalized)| {
                let part = part.as_ref()?;
                let x = normalized.map_or_else(|| part.x.view(), |x| x.view());
                Some(pooled_rows(x, &part.rows, part.weights.as_deref(), input.batch_size))
            })
            .collect();
        input_neighbors(&sides, input.batch_size, k, self.config.input_distance)
    }

    /// The reconstruction objective's targets: per modality, the batch rows
    /// that have it and their inputs as the encoders read them (normalised;
    /// components pooled).
    fn reconstruction_targets<'i>(&self, input: &'i EncoderInput<T>, tapes: &'i [Option<ModalityTape<T>>]) -> Vec<Option<RowInputs<'i, T>>> {
        input
            .modalities
            .iter()
            .zip(tapes)
            .map(|(part, tape)| {
                let part = part.as_ref()?;
                let x = tape.as_ref().and_then(|t| t.normalized.as_ref()).map_or_else(|| part.x.view(), |x| x.view());
                Some(pooled_rows(x, &part.rows, part.weights.as_deref(), input.batch_size))
            })
            .collect()
    }

    /// fused_contrastive's neighbours: the inputs' when found (`given`:
    /// the config asks for them and the batch has inputs), else the embeddings'.
    fn fused_neighbors<'a>(&self, given: Option<&'a [Vec<usize>]>) -> FusedNeighbors<'a> {
        given.map_or(FusedNeighbors::ByEmbeddings(self.config.fused_neighbors), FusedNeighbors::Given)
    }

    fn adam_settings(&self, lr: Option<f64>) -> Result<AdamSettings> {
        let (learning_rate, arg) = match lr {
            Some(lr) => (lr, "lr"),
            None => (self.config.learning_rate, "learning_rate"),
        };
        crate::config::check_step_settings::<T>(arg, learning_rate, self.config.weight_decay)?;
        Ok(AdamSettings {
            learning_rate,
            weight_decay: self.config.weight_decay,
            clip_norm: self.config.grad_clip,
        })
    }

    /// Every objective with a positive weight on `batch`, with the random
    /// draws of gradient computation `counter` (and its encoder dropout
    /// when `train`); gradients go to `grads`.
    fn run_objectives(&self, batch: &TrainBatch<T>, weights: &ObjectiveWeights, counter: u64, grads: Option<&mut [T]>, train: bool) -> Result<Losses<T>> {
        for o in Objective::ALL {
            let w = weights.get(o);
            if !(w.is_finite() && w >= 0.0 && T::c(w).is_finite()) {
                return Err(Error::invalid("weights", format!("{}: got {w}; expected a finite number >= 0 that float32 holds", o.name())));
            }
        }
        if weights.get(Objective::Reconstruction) > 0.0 && self.decoders.is_none() {
            return Err(Error::invalid(
                "weights",
                "reconstruction: the model has no decoders to reconstruct the inputs with; \
                 expected weight 0, or a model made with reconstruction_decoders=True",
            ));
        }
        let batch_size = batch.batch_size();
        objectives::check_batch_memory::<T>(batch_size, weights)?;
        let e = self.embed_dim();
        let uses_seed = weights.get(Objective::SeedConsistency) > 0.0;
        if let Some(f) = batch.fused {
            check_shape("fused", &f, &[Some(batch_size), Some(e)])?;
            check_finite("fused", &f)?;
        } else if uses_seed {
            return Err(Error::invalid(
                "fused",
                "seed_consistency needs the recorded fused embeddings [B, E] of the batch; pass them or give seed_consistency weight 0",
            ));
        }
        let rewards = match batch.rewards {
            Some(r) => {
                check_shape("rewards", &r, &[Some(batch_size)])?;
                check_finite("rewards", &r)?;
                CowArray::from(r)
            }
            None => CowArray::from(Array1::zeros(batch_size)),
        };

        // Embeddings (encoded, with tapes, or given) and the presence mask.
        let (emb, mask, encoded): (CowArray<T, Ix3>, _, _) = match &batch.source {
            EmbeddingSource::Inputs(input) => {
                let (emb, tapes) = self.encode_train(input, train.then_some(counter))?;
                (CowArray::from(emb), input.mask(), Some((input, tapes)))
            }
            EmbeddingSource::Embeddings { emb, mask } => (self.check_embeddings(emb.view(), mask.view())?, mask.to_owned(), None),
        };
        let (emb, mask) = (emb.view(), mask.view());
        // The inputs' nearest rows: the contrastive objective's extra
        // positives, neighborhood's and, when the config says so,
        // fused_contrastive's (one search for all: each list is nearest
        // first, so a shorter request is a prefix of the longest).
        let wanted = |o: Objective, k: usize| if weights.get(o) > 0.0 { k } else { 0 };
        let k_contrastive = wanted(Objective::Contrastive, self.config.contrastive_neighbors);
        let k_fused = match self.config.fused_neighbor_space {
            NeighborSpace::Inputs => wanted(Objective::FusedContrastive, self.config.fused_neighbors),
            NeighborSpace::Embeddings => 0,
        };
        let k_neighborhood = wanted(Objective::Neighborhood, self.config.neighborhood_neighbors);
        let k_most = k_contrastive.max(k_fused).max(k_neighborhood);
        let nearest = match &encoded {
            Some((input, tapes)) if k_most > 0 => {
                // The normalised inputs are the encoder tapes' (normalised once).
                let normalized: Vec<Option<&Array2<T>>> = tapes.iter().map(|t| t.as_ref().and_then(|t| t.normalized.as_ref())).collect();
                Some(self.input_neighbors(input, &normalized, k_most))
            }
            _ => None,
        };
        let prefix = |k: usize| -> Option<Vec<Vec<usize>>> {
            let nearest = nearest.as_ref().filter(|_| k > 0)?;
            Some(nearest.iter().map(|row| row[..k.min(row.len())].to_vec()).collect())
        };
        let (neighbors, fused_given, neighborhood) = (prefix(k_contrastive), prefix(k_fused), prefix(k_neighborhood));

        let mut grads = grads.map(|g| self.layout.view_mut(g));
        let reaches_encoders = self.reaches_encoders(weights);
        let mut d_emb = match (&grads, &encoded) {
            (Some(_), Some(_)) if reaches_encoders => Some(Array3::zeros((batch_size, NUM_MODALITIES, e))),
            _ => None,
        };
        let params = self.view();
        let mut values = [None; NUM_OBJECTIVES];
        let mut total = T::zero();
        for o in Objective::ALL {
            let w = weights.get(o);
            if w <= 0.0 {
                continue;
            }
            // A learned temperature gets its gradient unless it sits beyond its clamp.
            let learned = self.learned_temperature(o).filter(|t| t.value(params).1);
            // An objective kept from the encoders trains as on recorded embeddings.
            let to_encoders = self.config.encoder_objectives[o.index()];
            let mut sink = grads.as_mut().map(|g| GradSink {
                params: g,
                emb: d_emb.as_mut().filter(|_| to_encoders),
                weight: T::c(w),
                log_temperature: learned,
            });
            let sink = sink.as_mut();
            let mut rng = objective_rng(self.config.seed, counter, o);
            let loss = match o {
                Objective::SeedConsistency => {
                    let target = batch.fused.expect("checked above");
                    objectives::seed_consistency(&self.fusion, params, emb, mask, target, rewards.view(), sink)
                }
                Objective::Contrastive => {
                    let neighbors = neighbors.as_deref().map(|rows| Neighbors { rows, weight: self.config.contrastive_neighbor_weight });
                    objectives::contrastive(emb, mask, self.temperature(o), neighbors, self.config.contrastive_pair_power, sink)
                }
                Objective::Binding => objectives::binding(&self.binder, params, emb, mask, &mut rng, sink),
                Objective::CrossModal => objectives::cross_modal(&self.fusion, &self.attention, params, emb, mask, &mut rng, sink),
                Objective::Neighborhood => match &neighborhood {
                    // At its own fixed temperature, or contrastive's (learned by contrastive alone).
                    Some(nb) => {
                        let tau = self.config.neighborhood_temperature.map_or_else(|| self.temperature(Objective::Contrastive), T::c);
                        objectives::neighborhood(emb, mask, tau, nb, sink)
                    }
                    // neighborhood_neighbors = 0, or recorded embeddings: no
                    // inputs to find neighbours by, no encoders to train.
                    None => T::zero(),
                },
                Objective::Reconstruction => match (&encoded, &self.decoders) {
                    (Some((input, tapes)), Some(decoders)) => {
                        let targets = self.reconstruction_targets(input, tapes);
                        // The whole event reads the mask itself; only subsets are drawn (and owned).
                        let subsets = self.config.reconstruction_subsets.then(|| objectives::reconstruction::draw_subsets(mask, &mut rng));
                        let fused_from = subsets.as_ref().map_or(mask, |s| s.view());
                        let loss = objectives::reconstruction(&self.fusion, decoders, params, emb, mask, fused_from, &targets, sink);
                        if let Some(err) = (!loss.is_finite()).then(|| reconstruction_overflow(&targets)).flatten() {
                            return Err(err);
                        }
                        loss
                    }
                    // Recorded embeddings: no inputs to reconstruct.
                    _ => T::zero(),
                },
                Objective::FusedContrastive => {
                    let tau = self.temperature(o);
                    objectives::fused_contrastive(&self.fusion, params, emb, mask, tau, self.fused_neighbors(fused_given.as_deref()), &mut rng, sink)
                }
            };
            if !loss.is_finite() {
                return Err(self
                    .temperature_overflow(o, emb, mask)
                    .unwrap_or_else(|| self.loss_overflow(o, encoded.as_ref().map(|(input, _)| *input), emb, mask, batch.fused, rewards.view())));
            }
            values[o.index()] = Some(loss);
            total += T::c(w) * loss;
        }
        if !total.is_finite() {
            return Err(Error::overflow("weights", "the weighted sum of the losses overflows; expected smaller objective weights"));
        }
        if let (Some(g), Some(d_emb), Some((input, tapes))) = (grads.as_mut(), d_emb.as_ref(), encoded.as_ref()) {
            self.encode_backward(input, tapes, emb, d_emb, g);
        }
        Ok(Losses { values, total })
    }

    /// The temperature to blame for a not-finite loss of `o` when it is
    /// one that divides its logits by a temperature (`contrastive`,
    /// `fused_contrastive`, `neighborhood`: `S = e·e' / τ`) and the
    /// embeddings cannot be: every present one finite and of at most unit
    /// length (the model's own are unit vectors, as its fused embeddings),
    /// so that each row's term is at most `2/τ + ln B` and the batch's sums
    /// of them (a few per row: both directions, several pairs) a small
    /// multiple of `B` times that. Past float32 those sums overflow through
    /// `τ` alone (e.g. `neighborhood_temperature=1e-38`, whose reciprocal
    /// float32 holds), and the parameters, which were the initial ones, were
    /// blamed. `None` otherwise ([`Self::loss_overflow`] decides).
    fn temperature_overflow(&self, o: Objective, emb: ArrayView3<T>, mask: ArrayView2<bool>) -> Option<Error> {
        let (name, tau) = match o {
            Objective::Contrastive | Objective::FusedContrastive if self.learned_temperature(o).is_none() => {
                ("temperature", self.config.temperature)
            }
            Objective::Neighborhood => match self.config.neighborhood_temperature {
                Some(tau) => ("neighborhood_temperature", tau),
                None if self.learned_temperature(Objective::Contrastive).is_none() => ("temperature", self.config.temperature),
                None => return None,
            },
            _ => return None,
        };
        let mut longest = 0.0f64;
        for ((row, m), &present) in mask.indexed_iter() {
            if present {
                let squares = emb.slice(s![row, m, ..]).iter().try_fold(0.0f64, |sum, v| v.to_f64().map(|v| sum + v * v))?;
                if !squares.is_finite() {
                    return None; // an embedding that overflowed: loss_overflow names its row
                }
                longest = longest.max(squares);
            }
        }
        let rows = emb.shape()[0] as f64;
        let bound = 4.0 * rows * (2.0 / tau + rows.max(1.0).ln());
        let largest = T::max_value().to_f64()?;
        if longest > 1.0 + 1e-3 || bound <= largest {
            return None;
        }
        Some(Error::overflow(
            name,
            format!(
                "got {}; the {} loss of this batch is not finite: its logits reach 1 / {name} = {:.3e} on unit embeddings, \
                 and its {} rows' sum overflows float32; expected a larger {name} (about {:.1e} or more for batches of this size)",
                fmt_value(tau),
                o.name(),
                1.0 / tau,
                emb.shape()[0],
                8.0 * rows / largest,
            ),
        ))
    }

    /// The error for a loss that is not finite, naming what to blame. An
    /// input row whose encoding overflowed (a present slot of the encoded
    /// `emb` not finite), as the inference forward names it; else, of the
    /// batch's given values that enter the loss, the largest in magnitude
    /// (the model's embeddings and fused embeddings are unit vectors,
    /// rewards are moderate), unless the parameters the loss reads are
    /// larger still (then those); with none (encoded embeddings, which are
    /// unit vectors, and no seed_consistency targets) the parameters.
    fn loss_overflow(
        &self,
        o: Objective,
        encoded: Option<&EncoderInput<T>>,
        emb: ArrayView3<T>,
        mask: ArrayView2<bool>,
        fused: Option<ArrayView2<T>>,
        rewards: ArrayView1<T>,
    ) -> Error {
        fn max_abs<'v, T: Real + 'v>(values: impl Iterator<Item = &'v T>) -> f64 {
            values.fold(0.0, |most, v| most.max(v.to_f64().map_or(f64::INFINITY, f64::abs)))
        }
        if let Some(input) = encoded {
            // Encoding a huge (finite) input overflowed: the loss was then blamed on the parameters.
            let first_overflow = mask
                .indexed_iter()
                .find(|&((row, m), &present)| present && !emb.slice(s![row, m, ..]).iter().all(|v| v.is_finite()));
            if let Some(((row, m), _)) = first_overflow {
                let part = input.modalities[m].as_ref().expect("only a given modality overflows");
                return self
                    .standardisation_overflow(m, part, row, "the encoder")
                    .unwrap_or_else(|| Self::row_overflow(m, row, "the encoder"));
            }
        }
        let mut given: Vec<(&str, f64)> = Vec::new();
        if encoded.is_none() {
            given.push(("embeddings", max_abs(emb.iter())));
        }
        if o == Objective::SeedConsistency {
            given.extend(fused.map(|f| ("fused", max_abs(f.iter()))));
            given.push(("rewards", max_abs(rewards.iter())));
        }
        // The first of the largest: ties blame the embeddings, then the targets.
        // The parameters the objective's loss reads besides the batch's values: when they are the larger,
        // they overflowed (a huge learning rate grows them), and the batch's values (zeros, or unit vectors)
        // were blamed.
        let (component, prefixes): (&str, &[&str]) = match o {
            Objective::SeedConsistency | Objective::FusedContrastive => ("fusion network", &["fusion."]),
            Objective::Binding => ("binder", &["binder."]),
            Objective::CrossModal => ("attention", &["attention."]),
            _ => ("model", &[""]),
        };
        match given.iter().copied().reduce(|a, b| if b.1 > a.1 { b } else { a }) {
            Some((arg, value)) => self.grown_parameters(component, prefixes, value).unwrap_or_else(|| Error::overflow(
                arg,
                format!(
                    "the {} loss of this batch is not finite: it overflows float32 on the batch's {arg} (largest magnitude {value:.3e}); \
                     expected values of moderate size (the model's own embeddings and fused embeddings are unit vectors)",
                    o.name()
                ),
            )),
            None => Error::overflow(
                "parameters",
                format!(
                    "the {} loss of this batch is not finite: the model's parameters overflow float32 on its embeddings, \
                     which are unit vectors; expected parameters of moderate size (too large a learning rate grows them)",
                    o.name()
                ),
            ),
        }
    }
}

/// The input row a not-finite reconstruction loss overflowed on: the first
/// whose input (after the model's normalization) leaves float32 when
/// squared. The encoders can read such a row (their output is a unit
/// vector), so the loss was blamed on the parameters, which were fine.
fn reconstruction_overflow<T: Real>(targets: &[Option<RowInputs<T>>]) -> Option<Error> {
    for (m, target) in targets.iter().enumerate() {
        let Some(target) = target else { continue };
        for (i, row) in target.x.outer_iter().enumerate() {
            if !row.iter().fold(T::zero(), |sum, &v| sum + v * v).is_finite() {
                let largest = row.iter().fold(0.0f64, |most, v| most.max(v.to_f64().map_or(f64::INFINITY, f64::abs)));
                return Some(Error::overflow(
                    input_arg(m),
                    format!(
                        "row {}: the reconstruction loss overflows float32 on it (largest magnitude {largest:.3e} after the \
                         model's normalization, if any); expected values of moderate size",
                        target.rows[i]
                    ),
                ));
            }
        }
    }
    None
}

/// `total += rows`, per modality, saturating.
fn add_rows(total: &mut [u64; NUM_MODALITIES], rows: [u64; NUM_MODALITIES]) {
    for (t, r) in total.iter_mut().zip(rows) {
        *t = t.saturating_add(r);
    }
}
