//! `_core.Model`: the float32 model. Arrays arrive as float32 / bool numpy
//! arrays (the Python layer converts dtypes); aligned C-contiguous inputs are
//! read in place, masks are read as bytes. Every call runs with the GIL
//! released behind the model's readers-writer lock (see `guard`), so one
//! model can be used from several threads.

use crate::convert::{component_inputs, contiguous, dense_views, named_arrays, seven, Component, F32Array1, F32Array2, F32Array3, F32ArrayDyn, Mask};
use crate::errors::{InvalidValueError, IntoPyResult, ShapeError};
use crate::guard::Shared;
use grapheme_multimodal::batch::Presence;
use grapheme_multimodal::objectives::{Losses, Objective, ObjectiveWeights, NUM_OBJECTIVES};
use grapheme_multimodal::training::{EmbeddingSource, OptimizerState, TrainBatch};
use crate::graph::PyGraph;
use grapheme_multimodal::features::FeatureKind;
use grapheme_multimodal::objectives::fused_contrastive::NeighborSpace;
use grapheme_multimodal::objectives::input_neighbors::InputDistance;
use grapheme_multimodal::{BinderKind, Config, EncoderInput, LearnableMultiModal, Modality, ModalityInput, Normalizer, NUM_MODALITIES};
use ndarray::Array2;
use numpy::{IntoPyArray, PyArray, PyArray1, ToPyArray, PyArray2, PyArray3, PyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// `frozen`: no per-object borrow flag (which made a second thread's call
/// fail with "Already borrowed"); the model's own lock orders the calls.
#[pyclass(name = "Model", module = "grapheme_multimodal._core", frozen)]
pub struct PyModel {
    model: Shared<LearnableMultiModal<f32>>,
    /// The model's config (it never changes), read without the lock.
    config: Config,
}

#[pymethods]
impl PyModel {
    #[new]
    #[pyo3(signature = (
        embed_dim, hidden_dim, learning_rate, num_heads, buffer_size, seed, input_dims,
        *, binder_kind="additive", temperature=0.1, weight_decay=0.0, grad_clip=None, fused_neighbors=2,
        fused_neighbor_space="embeddings", input_distance="columns",
        contrastive_neighbors=0, contrastive_neighbor_weight=0.2, neighborhood_neighbors=10, neighborhood_temperature=None,
        contrastive_pair_power=1.0,
        encoder_objectives=None,
        encoder_hidden=Vec::new(), encoder_output_dim=None, shared_head=Vec::new(),
        encoder_input_dropout=0.0, encoder_hidden_dropout=0.0, learnable_temperature=false,
        fusion_residual=0.0, encoder_skip=false, reconstruction_decoders=false, reconstruction_subsets=false
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        embed_dim: usize,
        hidden_dim: usize,
        learning_rate: f64,
        num_heads: usize,
        buffer_size: usize,
        seed: u64,
        input_dims: Vec<usize>,
        binder_kind: &str,
        temperature: f64,
        weight_decay: f64,
        grad_clip: Option<f64>,
        fused_neighbors: usize,
        fused_neighbor_space: &str,
        input_distance: &str,
        contrastive_neighbors: usize,
        contrastive_neighbor_weight: f64,
        neighborhood_neighbors: usize,
        neighborhood_temperature: Option<f64>,
        contrastive_pair_power: f64,
        encoder_objectives: Option<Vec<bool>>,
        encoder_hidden: Vec<usize>,
        encoder_output_dim: Option<usize>,
        shared_head: Vec<usize>,
        encoder_input_dropout: f64,
        encoder_hidden_dropout: f64,
        learnable_temperature: bool,
        fusion_residual: f64,
        encoder_skip: bool,
        reconstruction_decoders: bool,
        reconstruction_subsets: bool,
        py: Python<'_>,
    ) -> PyResult<Self> {
        let config = Config {
            embed_dim,
            hidden_dim,
            learning_rate,
            num_heads,
            buffer_size,
            seed,
            input_dims: seven(input_dims, "input_dims")?,
            binder: BinderKind::from_name(binder_kind).py()?,
            temperature,
            fused_neighbors,
            fused_neighbor_space: NeighborSpace::from_name(fused_neighbor_space).py()?,
            input_distance: InputDistance::from_name(input_distance).py()?,
            contrastive_neighbors,
            contrastive_neighbor_weight,
            neighborhood_neighbors,
            neighborhood_temperature,
            contrastive_pair_power,
            encoder_objectives: match encoder_objectives {
                None => [true; NUM_OBJECTIVES],
                Some(flags) => flags.try_into().map_err(|flags: Vec<bool>| {
                    PyValueError::new_err(format!("encoder_objectives: expected {NUM_OBJECTIVES} flags, got {}", flags.len()))
                })?,
            },
            weight_decay,
            grad_clip,
            encoder_hidden,
            encoder_output_dim,
            shared_head,
            encoder_input_dropout,
            encoder_hidden_dropout,
            encoder_skip,
            learnable_temperature,
            fusion_residual,
            reconstruction_decoders,
            reconstruction_subsets,
        };
        let model = crate::guard::detached(py, || LearnableMultiModal::new(config.clone()))?;
        Ok(PyModel { model: Shared::new(model), config })
    }

    #[getter]
    fn num_parameters(&self, py: Python<'_>) -> PyResult<usize> {
        self.model.read(py, |m| Ok(m.num_parameters()))
    }

    /// `[(name, shape)]` in layout order.
    fn param_specs(&self, py: Python<'_>) -> PyResult<Vec<(String, Vec<usize>)>> {
        self.model.read(py, |m| Ok(m.layout().specs().iter().map(|s| (s.name.clone(), s.shape.clone())).collect()))
    }

    fn get_param<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
        Ok(self.model.read(py, |m| Ok(m.param(name)?.to_owned()))?.into_pyarray(py))
    }

    /// A copy of every parameter, flat in layout order (`param_specs`), read in one call.
    fn get_params<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray1<f32>>> {
        Ok(self.model.read(py, |m| Ok(m.params().to_vec()))?.into_pyarray(py))
    }

    /// `(mean [d], std [d])` of modality `index`'s input standardisation, or None.
    fn get_normalization<'py>(
        &self,
        py: Python<'py>,
        index: usize,
    ) -> PyResult<Option<MeanStd<'py>>> {
        let m = Modality::from_index(index).py()?;
        let stats = self.model.read(py, |model| Ok(model.normalizer(m).map(|n| (n.mean.clone(), n.std.clone()))))?;
        Ok(stats.map(|(mean, std)| (mean.into_pyarray(py), std.into_pyarray(py))))
    }

    /// Sets (or with None clears) modality `index`'s input standardisation.
    #[pyo3(signature = (index, mean=None, std=None))]
    fn set_normalization(
        &self,
        py: Python<'_>,
        index: usize,
        mean: Option<F32Array1<'_>>,
        std: Option<F32Array1<'_>>,
    ) -> PyResult<()> {
        let m = Modality::from_index(index).py()?;
        let normalizer = match (mean, std) {
            (Some(mean), Some(std)) => Some(Normalizer {
                mean: mean.as_array().to_owned(),
                std: std.as_array().to_owned(),
            }),
            (None, None) => None,
            _ => return Err(PyValueError::new_err("normalization: give both mean and std, or neither")),
        };
        self.model.write(py, |model| model.set_normalizer(m, normalizer))
    }

    fn set_param(&self, py: Python<'_>, name: &str, values: F32ArrayDyn<'_>) -> PyResult<()> {
        let values = values.as_array();
        self.model.write(py, |m| m.set_param(name, values))
    }

    /// Sets every `(name, values)` of `tensors` (a list of pairs, `values`
    /// float32 arrays) in one call, all or nothing: each is checked (name,
    /// shape, finite values) before any is written.
    fn set_params(&self, py: Python<'_>, tensors: &Bound<'_, PyAny>) -> PyResult<()> {
        let tensors = named_arrays(tensors, "tensors")?;
        let views: Vec<(&str, _)> = tensors.iter().map(|(name, values)| (name.as_str(), values.as_array())).collect();
        self.model.write(py, |m| m.set_params(&views))
    }

    /// `[B, M, E]`; `masked=False`: the caller takes no mask (every row it
    /// is given is present), so messages say nothing of rows marked present.
    #[pyo3(signature = (inputs, mask, masked=true))]
    fn encode<'py>(
        &self,
        py: Python<'py>,
        inputs: Vec<Option<F32Array2<'py>>>,
        mask: Mask,
        masked: bool,
    ) -> PyResult<Bound<'py, PyArray3<f32>>> {
        let views = dense_views(&inputs)?;
        let mask = mask.0.view();
        let emb = self.model.read(py, |m| m.encode(&EncoderInput::dense(views, mask)?.with_presence(presence(masked))))?;
        Ok(emb.into_pyarray(py))
    }

    /// The encoders' hidden features `[B, M, H]` of hidden layer `layer`
    /// (`masked` as [`Self::encode`] takes it).
    #[pyo3(signature = (inputs, mask, layer, masked=true))]
    fn hidden_features<'py>(
        &self,
        py: Python<'py>,
        inputs: Vec<Option<F32Array2<'py>>>,
        mask: Mask,
        layer: usize,
        masked: bool,
    ) -> PyResult<Bound<'py, PyArray3<f32>>> {
        let views = dense_views(&inputs)?;
        let mask = mask.0.view();
        let features = self.model.read(py, |m| {
            let input = EncoderInput::dense(views, mask)?.with_presence(presence(masked));
            m.hidden_features(&input, layer)
        })?;
        Ok(features.into_pyarray(py))
    }

    /// Per-event form: for each modality `None` or `(x [N, d], rows [N], weights [N] | None)`.
    fn encode_components<'py>(
        &self,
        py: Python<'py>,
        batch_size: usize,
        parts: Vec<Option<Component<'py>>>,
    ) -> PyResult<Bound<'py, PyArray3<f32>>> {
        let parts = component_inputs(&parts, "parts")?;
        let emb = self.model.read(py, |m| m.encode(&EncoderInput::components(batch_size, parts)?))?;
        Ok(emb.into_pyarray(py))
    }

    /// One event in one call: `components` are `(modality index, item,
    /// confidence)` with `item` a `_core.Graph` (featurised with
    /// `featurizers[m] = (kind, dim, iterations)`) or a float vector;
    /// several components of a modality are pooled by confidence. Returns
    /// `(embeddings [1, M, E], mask [1, M], fused [E] or None when nothing is
    /// present)`. `event_id` only names the event in error messages.
    #[allow(clippy::type_complexity)]
    fn encode_event<'py>(
        &self,
        py: Python<'py>,
        event_id: Bound<'py, PyAny>,
        components: Vec<(usize, Bound<'py, PyAny>, f32)>,
        featurizers: Bound<'py, PyAny>,
    ) -> PyResult<(Bound<'py, PyArray3<f32>>, Bound<'py, PyArray2<bool>>, Option<Bound<'py, PyArray1<f32>>>)> {
        let dims = self.config.input_dims;
        let event = || event_id.str().map(|s| s.to_string()).unwrap_or_else(|_| "?".into());
        // Every modality's rows in one buffer at their final size, and the
        // confidences in another (modality after modality): two allocations
        // per call instead of three per modality. Grown by doubling, a large
        // event's copy took up to three times its size while it moved (the
        // Python preflight counts it once).
        let mut counts = [0usize; NUM_MODALITIES];
        for (m, _, _) in &components {
            if let Some(k) = counts.get_mut(*m) {
                *k += 1;
            }
        }
        let (mut value_start, mut weight_start) = ([0usize; NUM_MODALITIES], [0usize; NUM_MODALITIES]);
        let (mut values, mut given) = (0usize, 0usize);
        for m in 0..NUM_MODALITIES {
            (value_start[m], weight_start[m]) = (values, given);
            values = values.saturating_add(counts[m].saturating_mul(dims[m]));
            given += counts[m];
        }
        let mut rows = vec![0f32; values];
        let mut weights = vec![0f32; given];
        let mut filled = [0usize; NUM_MODALITIES];
        for (m, item, confidence) in &components {
            let m = *m;
            let Some(&dim) = dims.get(m) else {
                return Err(InvalidValueError::new_err((format!("event {}: modality index {m} is out of range; expected 0 to {}", event(), NUM_MODALITIES - 1), "event")));
            };
            let name = Modality::ALL[m].name();
            let start = value_start[m] + filled[m] * dim;
            let row = &mut rows[start..start + dim];
            if let Ok(graph) = item.cast::<PyGraph>() {
                let (kind, fdim, iterations): (pyo3::pybacked::PyBackedStr, Option<i64>, Option<i64>) = featurizers.get_item(m)?.extract()?;
                let kind = FeatureKind::parse(&kind, fdim, iterations).py()?;
                if kind.dim() != dim {
                    return Err(ShapeError::new_err((
                        format!(
                            "event {}: modality {name} takes {dim}-long feature vectors, but a ModalGraph ({} graph features) was given",
                            event(),
                            kind.dim()
                        ),
                        "event",
                    )));
                }
                kind.features_into("event", &graph.get().inner, row).py()?;
            } else {
                // Copied straight from the numpy array once its length is
                // checked: a huge wrong-length vector copied first aborted
                // the process when the copy did not fit.
                let copied = match item.extract::<F32Array1<'py>>() {
                    Ok(a) if a.as_array().len() == dim => {
                        row.iter_mut().zip(a.as_array().iter()).for_each(|(r, &v)| *r = v);
                        true
                    }
                    Ok(_) => false,
                    Err(_) => match item.extract::<crate::convert::Aligned<'py, f64, ndarray::IxDyn>>() {
                        Ok(a) if a.as_array().ndim() == 1 && a.as_array().len() == dim => {
                            row.iter_mut().zip(a.as_array().iter()).for_each(|(r, &v)| *r = v as f32);
                            true
                        }
                        _ => false,
                    },
                };
                if !copied {
                    let shape = item.getattr("shape").and_then(|s| s.str()).map(|s| s.to_string()).unwrap_or_else(|_| "?".into());
                    return Err(ShapeError::new_err((
                        format!("event {}: modality {name} takes {dim}-long feature vectors, got ModalFeatures of shape {shape}", event()),
                        "event",
                    )));
                }
            }
            weights[weight_start[m] + filled[m]] = *confidence;
            filled[m] += 1;
        }
        // Every component belongs to the batch's one row (0): borrowed from
        // these zeros when there are few.
        static ROW_ZERO: [usize; 64] = [0; 64];
        let (rows, weights) = (&rows, &weights);
        let parts: [Option<ModalityInput<f32>>; NUM_MODALITIES] = std::array::from_fn(|m| {
            let k = counts[m];
            (k > 0).then(|| {
                let (v, w) = (value_start[m], weight_start[m]);
                let x = ndarray::ArrayView2::from_shape((k, dims[m]), &rows[v..v + k * dims[m]]).expect("k rows of dim");
                let row_index = match ROW_ZERO.get(..k) {
                    Some(zeros) => zeros.into(),
                    None => vec![0; k].into(),
                };
                ModalityInput { x: x.into(), rows: row_index, weights: Some(weights[w..w + k].into()) }
            })
        });
        // What `EncoderInput::mask` gives for the batch's one row: a
        // modality is present when it has a component.
        let mask = Array2::from_shape_fn((1, NUM_MODALITIES), |(_, m)| counts[m] > 0);
        let (emb, fused) = self.model.read(py, |m| m.encode_and_fuse(&EncoderInput::components(1, parts)?))?;
        // Small arrays: numpy-owned copies are cheaper to make than views of
        // Rust buffers. Read-only: the model's per-event cache keeps them and
        // shares them between calls (made so here, setting the flag in Python
        // took a tenth of an uncached fuse_event's Python time).
        let any = mask.iter().any(|&p| p);
        let fused = any.then(|| read_only(fused.row(0).to_pyarray(py)));
        Ok((read_only(emb.to_pyarray(py)), read_only(mask.to_pyarray(py)), fused))
    }

    /// `(embeddings [B, M, E], fused [B, E])` in one call (`masked` as
    /// [`Self::encode`] takes it).
    #[pyo3(signature = (inputs, mask, masked=true))]
    fn encode_and_fuse<'py>(
        &self,
        py: Python<'py>,
        inputs: Vec<Option<F32Array2<'py>>>,
        mask: Mask,
        masked: bool,
    ) -> PyResult<EmbeddingsAndFused<'py>> {
        let views = dense_views(&inputs)?;
        let mask = mask.0.view();
        let (emb, fused) = self.model.read(py, |m| {
            let input = EncoderInput::dense(views, mask)?.with_presence(presence(masked));
            m.encode_and_fuse(&input)
        })?;
        Ok((emb.into_pyarray(py), fused.into_pyarray(py)))
    }

    fn fuse<'py>(
        &self,
        py: Python<'py>,
        embeddings: F32Array3<'py>,
        mask: Mask,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let (emb, mask) = (embeddings.as_array(), mask.0.view());
        Ok(self.model.read(py, |m| m.fuse(emb, mask))?.into_pyarray(py))
    }

    fn bind<'py>(
        &self,
        py: Python<'py>,
        a: F32Array2<'py>,
        b: F32Array2<'py>,
    ) -> PyResult<Bound<'py, PyArray1<f32>>> {
        let (a, b) = (a.as_array(), b.as_array());
        Ok(self.model.read(py, |m| m.bind(a, b))?.into_pyarray(py))
    }

    fn pair_strengths<'py>(
        &self,
        py: Python<'py>,
        embeddings: F32Array3<'py>,
        mask: Mask,
    ) -> PyResult<Bound<'py, PyArray3<f32>>> {
        let (emb, mask) = (embeddings.as_array(), mask.0.view());
        Ok(self.model.read(py, |m| m.pair_strengths(emb, mask))?.into_pyarray(py))
    }

    /// `(weights [B, M], attended [B, E], head_weights [B, heads, M])`.
    #[allow(clippy::type_complexity)]
    fn attend<'py>(
        &self,
        py: Python<'py>,
        query: F32Array2<'py>,
        embeddings: F32Array3<'py>,
        mask: Mask,
    ) -> PyResult<(Bound<'py, PyArray2<f32>>, Bound<'py, PyArray2<f32>>, Bound<'py, PyArray3<f32>>)> {
        let (q, emb, mask) = (query.as_array(), embeddings.as_array(), mask.0.view());
        let out = self.model.read(py, |m| m.attend(q, emb, mask))?;
        Ok((out.weights.into_pyarray(py), out.attended.into_pyarray(py), out.head_weights.into_pyarray(py)))
    }

    // ------------------------------------------------------------ learning

    /// Losses of `batch` without gradients (the draws of the next
    /// `backward`; with `training`, its encoder dropout too).
    #[pyo3(signature = (batch, weights, training=false))]
    fn losses(&self, py: Python<'_>, batch: PyBatch<'_>, weights: Vec<f64>, training: bool) -> PyResult<LossList> {
        let weights = objective_weights(weights)?;
        with_batch(batch, |make| {
            self.model.read(py, |m| {
                let batch = make()?;
                let losses = if training { m.training_losses(&batch, &weights) } else { m.losses(&batch, &weights) };
                losses.map(|l| loss_list(&l))
            })
        })
    }

    /// `[(objective, temperature)]` of the contrastive objectives: the
    /// learned values (clamped to their range) or the configured one.
    fn temperatures(&self, py: Python<'_>) -> PyResult<Vec<(String, f64)>> {
        self.model.read(py, |m| {
            Ok([Objective::Contrastive, Objective::FusedContrastive]
                .iter()
                .map(|&o| (o.name().to_string(), f64::from(m.temperature(o))))
                .collect())
        })
    }

    /// Losses of `batch`; their gradients are added to the accumulated ones.
    fn backward(&self, py: Python<'_>, batch: PyBatch<'_>, weights: Vec<f64>) -> PyResult<LossList> {
        let weights = objective_weights(weights)?;
        with_batch(batch, |make| self.model.write_with(py, make, |m, batch| m.backward(&batch, &weights).map(|l| loss_list(&l))))
    }

    /// `zero_grad → backward → step(lr)`; returns the losses and the
    /// gradient norm before clipping. All or nothing: a refused step leaves
    /// the model as it was.
    #[pyo3(signature = (batch, weights, lr=None))]
    fn train_step(&self, py: Python<'_>, batch: PyBatch<'_>, weights: Vec<f64>, lr: Option<f64>) -> PyResult<(LossList, f64)> {
        let weights = objective_weights(weights)?;
        with_batch(batch, |make| {
            self.model.write_with(py, make, |m, batch| m.train_step(&batch, &weights, lr).map(|(l, r)| (loss_list(&l), r.grad_norm)))
        })
    }

    fn zero_grad(&self, py: Python<'_>) -> PyResult<()> {
        self.model.write(py, |m| {
            m.zero_grad();
            Ok(())
        })
    }

    fn has_gradients(&self, py: Python<'_>) -> PyResult<bool> {
        self.model.read(py, |m| Ok(m.has_gradients()))
    }

    /// One Adam update from the accumulated gradients; False (and nothing
    /// changes) when there are none.
    #[pyo3(signature = (lr=None))]
    fn step(&self, py: Python<'_>, lr: Option<f64>) -> PyResult<bool> {
        Ok(self.model.write(py, |m| m.step(lr))?.is_some())
    }

    /// One Adam update from the flat gradient `grads` (layout order). The
    /// record of trained encoders notes, with `mask [B, 7]` (and `weights`),
    /// the rows of the batch the gradients came from (data-parallel
    /// workers' shares), as `train_step` does; without, one row for each
    /// encoder the gradients reach. All in one write: a refused update
    /// notes nothing.
    #[pyo3(signature = (grads, lr=None, mask=None, weights=None))]
    fn apply_gradients(
        &self,
        py: Python<'_>,
        grads: F32Array1<'_>,
        lr: Option<f64>,
        mask: Option<Mask>,
        weights: Option<Vec<f64>>,
    ) -> PyResult<f64> {
        let grads = grads.as_array();
        let batch = match (mask, weights) {
            (None, None) => None,
            (Some(mask), Some(weights)) => {
                let mask = mask.0;
                grapheme_multimodal::validate::check_shape("mask", &mask, &[None, Some(NUM_MODALITIES)]).py()?;
                Some((mask, objective_weights(weights)?))
            }
            _ => {
                let message = "mask: given without weights, or weights without mask; expected both or neither";
                return Err(InvalidValueError::new_err((message, "mask")));
            }
        };
        let report = self.model.write(py, |m| match &batch {
            Some((mask, weights)) => {
                let rows = m.encoder_rows_of(mask.view(), weights);
                m.apply_batch_gradients(&contiguous(grads), lr, rows)
            }
            None => m.apply_gradients(&contiguous(grads), lr),
        })?;
        Ok(report.grad_norm)
    }

    /// A copy of the accumulated gradients, flat in layout order.
    fn get_flat_grad<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray1<f32>>> {
        Ok(self.model.read(py, |m| Ok(m.gradients().to_vec()))?.into_pyarray(py))
    }

    /// Makes the flat `grads` (layout order) the accumulated gradients, of
    /// batches whose encoder rows are `pending_rows` (what `step` then
    /// records; None: not known, none).
    #[pyo3(signature = (grads, pending_rows=None))]
    fn set_flat_grad(&self, py: Python<'_>, grads: F32Array1<'_>, pending_rows: Option<[u64; NUM_MODALITIES]>) -> PyResult<()> {
        let grads = grads.as_array();
        self.model.write(py, |m| m.set_gradients_of_rows(&contiguous(grads), pending_rows.unwrap_or([0; NUM_MODALITIES])))
    }

    /// The encoder rows (per slot) of the accumulated gradients, which
    /// `step` adds to the record.
    fn pending_rows(&self, py: Python<'_>) -> PyResult<[u64; NUM_MODALITIES]> {
        self.model.read(py, |m| Ok(m.pending_rows()))
    }

    /// `(m, v, step, rng_counter)`: Adam's moments (flat, layout order), its
    /// step count, and the number of gradient computations so far.
    #[allow(clippy::type_complexity)]
    fn optimizer_state<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyArray1<f32>>, Bound<'py, PyArray1<f32>>, u64, u64)> {
        let s = self.model.read(py, |m| Ok(m.optimizer_state()))?;
        Ok((s.m.into_pyarray(py), s.v.into_pyarray(py), s.step, s.rng_counter))
    }

    fn set_optimizer_state(&self, py: Python<'_>, m: F32Array1<'_>, v: F32Array1<'_>, step: u64, rng_counter: u64) -> PyResult<()> {
        let state = OptimizerState {
            m: m.as_array().to_vec(),
            v: v.as_array().to_vec(),
            step,
            rng_counter,
        };
        self.model.write(py, |model| model.set_optimizer_state(state))
    }

    /// Per modality (slot order), the rows of input batches that trained its
    /// encoder; None when not known (a file that predates the record).
    fn trained_rows(&self, py: Python<'_>) -> PyResult<Option<[u64; NUM_MODALITIES]>> {
        self.model.read(py, |m| Ok(m.trained_rows()))
    }

    /// Whether the record holds an accepted update, encoders reached or not
    /// (None: the record is not known).
    fn has_trained(&self, py: Python<'_>) -> PyResult<Option<bool>> {
        self.model.read(py, |m| Ok(m.has_trained()))
    }

    /// Restores a record from `trained_rows` (None: not known) and
    /// `has_trained` (counts only beside rows that are all 0).
    #[pyo3(signature = (rows, trained=false))]
    fn set_trained_rows(&self, py: Python<'_>, rows: Option<[u64; NUM_MODALITIES]>, trained: bool) -> PyResult<()> {
        self.model.write(py, |m| {
            m.set_trained_rows(rows, trained);
            Ok(())
        })
    }

    fn reset_optimizer(&self, py: Python<'_>) -> PyResult<()> {
        self.model.write(py, |m| {
            m.reset_optimizer();
            Ok(())
        })
    }

    /// The next `backward`'s random draws on `batch`: `([(i, j, shift)] of
    /// binding, cross_modal rows, dropped modalities, fused_contrastive rows,
    /// its two views [n, M] and each row's positives)`.
    #[allow(clippy::type_complexity)]
    fn objective_draws<'py>(&self, py: Python<'py>, batch: PyBatch<'py>) -> PyResult<DrawsOut<'py>> {
        let d = with_batch(batch, |make| self.model.read(py, |m| m.objective_draws(&make()?)))?;
        let [v0, v1] = d.fused.views;
        Ok((d.shifts, d.rows, d.dropped, d.fused.rows, v0.into_pyarray(py), v1.into_pyarray(py), d.fused.positives))
    }
}

/// `(mean [d], std [d])` of an input standardisation.
type MeanStd<'py> = (Bound<'py, PyArray1<f32>>, Bound<'py, PyArray1<f32>>);

/// `(embeddings [B, M, E], fused [B, E])`.
type EmbeddingsAndFused<'py> = (Bound<'py, PyArray3<f32>>, Bound<'py, PyArray2<f32>>);

type DrawsOut<'py> = (
    Vec<(usize, usize, usize)>,
    Vec<usize>,
    Vec<usize>,
    Vec<usize>,
    Bound<'py, PyArray2<bool>>,
    Bound<'py, PyArray2<bool>>,
    Vec<Vec<usize>>,
);

/// A training batch as it arrives from Python: exactly one source of
/// modality embeddings (dense inputs + mask, per-event components, or
/// recorded embeddings + mask), optional seed_consistency targets and rewards.
#[derive(FromPyObject)]
pub struct PyBatch<'py> {
    inputs: Option<Vec<Option<F32Array2<'py>>>>,
    components: Option<(usize, Vec<Option<Component<'py>>>)>,
    embeddings: Option<F32Array3<'py>>,
    mask: Option<Mask>,
    fused: Option<F32Array2<'py>>,
    rewards: Option<F32Array1<'py>>,
}

/// `[(name, loss)]` for the computed objectives, then `("total", sum)`.
type LossList = Vec<(String, f64)>;

fn loss_list(losses: &Losses<f32>) -> LossList {
    let mut out: LossList = Objective::ALL
        .iter()
        .filter_map(|&o| losses.get(o).map(|v| (o.name().to_string(), f64::from(v))))
        .collect();
    out.push(("total".to_string(), f64::from(losses.total)));
    out
}

/// Makes the Rust batch, with the GIL released (training: before the model's write lock is taken).
type BatchMaker<'a> = Box<dyn FnOnce() -> grapheme_multimodal::Result<TrainBatch<'a, f32>> + Send + 'a>;

/// Runs `run` with the maker of the Rust batch built from `batch`.
fn with_batch<R>(batch: PyBatch<'_>, run: impl FnOnce(BatchMaker<'_>) -> PyResult<R>) -> PyResult<R> {
    let sources = [batch.inputs.is_some(), batch.components.is_some(), batch.embeddings.is_some()];
    if sources.iter().filter(|&&s| s).count() != 1 {
        return Err(PyValueError::new_err(
            "batch: expected exactly one of inputs, components or embeddings as the source of modality embeddings",
        ));
    }
    let mask = batch.mask.as_ref().map(|m| m.0.view());
    let fused = batch.fused.as_ref().map(|a| a.as_array());
    let rewards = batch.rewards.as_ref().map(|a| a.as_array());
    let need_mask = || PyValueError::new_err("mask: required with inputs or embeddings; expected a bool array [B, 7]");
    if let Some(inputs) = &batch.inputs {
        let views = dense_views(inputs)?;
        let mask = mask.ok_or_else(need_mask)?;
        return run(Box::new(move || {
            let source = EmbeddingSource::Inputs(EncoderInput::dense(views, mask)?);
            Ok(TrainBatch { source, fused, rewards })
        }));
    }
    if let Some((batch_size, parts)) = &batch.components {
        let parts = component_inputs(parts, "components")?;
        let batch_size = *batch_size;
        return run(Box::new(move || {
            let source = EmbeddingSource::Inputs(EncoderInput::components(batch_size, parts)?);
            Ok(TrainBatch { source, fused, rewards })
        }));
    }
    let emb = batch.embeddings.as_ref().expect("one source is present").as_array();
    let mask = mask.ok_or_else(need_mask)?;
    run(Box::new(move || Ok(TrainBatch { source: EmbeddingSource::Embeddings { emb, mask }, fused, rewards })))
}

/// How the core words rows of a caller that does (`masked`) or does not take a mask.
fn presence(masked: bool) -> Presence {
    if masked {
        Presence::Marked
    } else {
        Presence::Unmarked
    }
}

fn objective_weights(weights: Vec<f64>) -> PyResult<ObjectiveWeights> {
    let n = weights.len();
    let w: [f64; NUM_OBJECTIVES] = weights
        .try_into()
        .map_err(|_| PyValueError::new_err(format!("weights: expected {NUM_OBJECTIVES} values, got {n}")))?;
    Ok(ObjectiveWeights(w))
}

/// `array` made read-only: numpy's `PyArray_CLEARFLAGS(array, NPY_ARRAY_WRITEABLE)`,
/// as rust-numpy's `PyReadwriteArray::make_nonwriteable` does it, without
/// the borrow that method needs first.
fn read_only<'py, T, D>(array: Bound<'py, PyArray<T, D>>) -> Bound<'py, PyArray<T, D>> {
    // SAFETY: `array` is a fresh array this call made and owns: no borrow of
    // it exists, from Rust or from Python; the GIL is held.
    unsafe {
        (*numpy::npyffi::_PyArray_GET_ITEM_DATA(array.as_array_ptr())).flags &= !numpy::npyffi::NPY_ARRAY_WRITEABLE;
    }
    array
}
