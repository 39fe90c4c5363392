//! `_core.Model`: the float32 model. Arrays arrive as float32 / bool numpy
//! arrays (the Python layer converts dtypes); C-contiguous inputs are read in
//! place. Every compute call releases the GIL.

use crate::convert::{component_inputs, contiguous, dense_views, seven, Component};
use crate::errors::IntoPyResult;
use grapheme_multimodal::objectives::{Losses, Objective, ObjectiveWeights, NUM_OBJECTIVES};
use grapheme_multimodal::training::{EmbeddingSource, OptimizerState, TrainBatch};
use crate::graph::PyGraph;
use grapheme_multimodal::features::FeatureKind;
use grapheme_multimodal::{BinderKind, Config, EncoderInput, LearnableMultiModal, Modality, ModalityInput, Normalizer, NUM_MODALITIES};
use ndarray::Array2;
use numpy::{IntoPyArray, PyArray1, ToPyArray, PyArray2, PyArray3, PyArrayDyn, PyReadonlyArray1, PyReadonlyArray2, PyReadonlyArray3, PyReadonlyArrayDyn};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

#[pyclass(name = "Model", module = "grapheme_multimodal._core")]
pub struct PyModel {
    inner: LearnableMultiModal<f32>,
}

#[pymethods]
impl PyModel {
    #[new]
    #[pyo3(signature = (
        embed_dim, hidden_dim, learning_rate, num_heads, buffer_size, seed, input_dims,
        *, binder_kind="additive", temperature=0.1, weight_decay=0.0, grad_clip=None, fused_neighbors=2,
        encoder_hidden=Vec::new(), encoder_output_dim=None, shared_head=Vec::new(),
        encoder_input_dropout=0.0, encoder_hidden_dropout=0.0, learnable_temperature=false
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
        encoder_hidden: Vec<usize>,
        encoder_output_dim: Option<usize>,
        shared_head: Vec<usize>,
        encoder_input_dropout: f64,
        encoder_hidden_dropout: f64,
        learnable_temperature: bool,
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
            weight_decay,
            grad_clip,
            encoder_hidden,
            encoder_output_dim,
            shared_head,
            encoder_input_dropout,
            encoder_hidden_dropout,
            learnable_temperature,
        };
        Ok(PyModel {
            inner: LearnableMultiModal::new(config).py()?,
        })
    }

    #[getter]
    fn num_parameters(&self) -> usize {
        self.inner.num_parameters()
    }

    /// `[(name, shape)]` in layout order.
    fn param_specs(&self) -> Vec<(String, Vec<usize>)> {
        self.inner
            .layout()
            .specs()
            .iter()
            .map(|s| (s.name.clone(), s.shape.clone()))
            .collect()
    }

    fn get_param<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
        Ok(self.inner.param(name).py()?.to_owned().into_pyarray(py))
    }

    /// `(mean [d], std [d])` of modality `index`'s input standardisation, or None.
    fn get_normalization<'py>(
        &self,
        py: Python<'py>,
        index: usize,
    ) -> PyResult<Option<(Bound<'py, PyArray1<f32>>, Bound<'py, PyArray1<f32>>)>> {
        let m = Modality::from_index(index).py()?;
        Ok(self
            .inner
            .normalizer(m)
            .map(|n| (n.mean.clone().into_pyarray(py), n.std.clone().into_pyarray(py))))
    }

    /// Sets (or with None clears) modality `index`'s input standardisation.
    #[pyo3(signature = (index, mean=None, std=None))]
    fn set_normalization(
        &mut self,
        index: usize,
        mean: Option<PyReadonlyArray1<'_, f32>>,
        std: Option<PyReadonlyArray1<'_, f32>>,
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
        self.inner.set_normalizer(m, normalizer).py()
    }

    fn set_param(&mut self, name: &str, values: PyReadonlyArrayDyn<'_, f32>) -> PyResult<()> {
        self.inner.set_param(name, values.as_array()).py()
    }

    fn encode<'py>(
        &self,
        py: Python<'py>,
        inputs: Vec<Option<PyReadonlyArray2<'py, f32>>>,
        mask: PyReadonlyArray2<'py, bool>,
    ) -> PyResult<Bound<'py, PyArray3<f32>>> {
        let views = dense_views(&inputs)?;
        let mask = mask.as_array();
        let emb = py.detach(|| {
            let input = EncoderInput::dense(views, mask)?;
            self.inner.encode(&input)
        });
        Ok(emb.py()?.into_pyarray(py))
    }

    /// Per-event form: for each modality `None` or `(x [N, d], rows [N], weights [N] | None)`.
    fn encode_components<'py>(
        &self,
        py: Python<'py>,
        batch_size: usize,
        parts: Vec<Option<Component<'py>>>,
    ) -> PyResult<Bound<'py, PyArray3<f32>>> {
        let parts = component_inputs(&parts, "parts")?;
        let emb = py.detach(|| {
            let input = EncoderInput::components(batch_size, parts)?;
            self.inner.encode(&input)
        });
        Ok(emb.py()?.into_pyarray(py))
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
        let dims = self.inner.config().input_dims;
        let event = || event_id.str().map(|s| s.to_string()).unwrap_or_else(|_| "?".into());
        let mut rows: [Vec<f32>; NUM_MODALITIES] = Default::default();
        let mut weights: [Vec<f32>; NUM_MODALITIES] = Default::default();
        for (m, item, confidence) in &components {
            let m = *m;
            let Some(&dim) = dims.get(m) else {
                return Err(PyValueError::new_err(format!("event {}: modality index {m} is out of range; expected 0..{NUM_MODALITIES}", event())));
            };
            let name = Modality::ALL[m].name();
            let start = rows[m].len();
            if let Ok(graph) = item.cast::<PyGraph>() {
                let (kind, fdim, iterations): (pyo3::pybacked::PyBackedStr, Option<i64>, Option<i64>) = featurizers.get_item(m)?.extract()?;
                let kind = FeatureKind::parse(&kind, fdim, iterations).py()?;
                if kind.dim() != dim {
                    return Err(PyValueError::new_err(format!(
                        "event {}: modality {name} takes {dim}-long feature vectors, but a ModalGraph ({} graph features) was given",
                        event(),
                        kind.dim()
                    )));
                }
                rows[m].resize(start + dim, 0.0);
                kind.features_into(&graph.get().inner, &mut rows[m][start..]);
            } else {
                // Appended straight from the numpy array, then checked.
                let appended = match item.extract::<PyReadonlyArray1<'py, f32>>() {
                    Ok(a) => {
                        rows[m].extend(a.as_array().iter());
                        true
                    }
                    Err(_) => match item.extract::<PyReadonlyArrayDyn<'py, f64>>() {
                        Ok(a) if a.as_array().ndim() == 1 => {
                            rows[m].extend(a.as_array().iter().map(|&v| v as f32));
                            true
                        }
                        _ => false,
                    },
                };
                if !appended || rows[m].len() - start != dim {
                    let shape = item.getattr("shape").and_then(|s| s.str()).map(|s| s.to_string()).unwrap_or_else(|_| "?".into());
                    return Err(PyValueError::new_err(format!(
                        "event {}: modality {name} takes {dim}-long feature vectors, got ModalFeatures of shape {shape}",
                        event()
                    )));
                }
            }
            weights[m].push(*confidence);
        }
        let parts: [Option<ModalityInput<f32>>; NUM_MODALITIES] = std::array::from_fn(|m| {
            let k = weights[m].len();
            (k > 0).then(|| {
                let x = Array2::from_shape_vec((k, dims[m]), std::mem::take(&mut rows[m])).expect("k rows of dim");
                ModalityInput { x: x.into(), rows: vec![0; k].into(), weights: Some(std::mem::take(&mut weights[m]).into()) }
            })
        });
        let (emb, mask, fused) = py
            .detach(|| {
                let input = EncoderInput::components(1, parts)?;
                let mask = input.mask();
                let (emb, fused) = self.inner.encode_and_fuse(&input)?;
                Ok::<_, grapheme_multimodal::Error>((emb, mask, fused))
            })
            .py()?;
        // Small arrays: numpy-owned copies are cheaper to make than views of
        // Rust buffers.
        let any = mask.iter().any(|&p| p);
        let fused = any.then(|| fused.row(0).to_pyarray(py));
        Ok((emb.to_pyarray(py), mask.to_pyarray(py), fused))
    }

    /// `(embeddings [B, M, E], fused [B, E])` in one call.
    fn encode_and_fuse<'py>(
        &self,
        py: Python<'py>,
        inputs: Vec<Option<PyReadonlyArray2<'py, f32>>>,
        mask: PyReadonlyArray2<'py, bool>,
    ) -> PyResult<(Bound<'py, PyArray3<f32>>, Bound<'py, PyArray2<f32>>)> {
        let views = dense_views(&inputs)?;
        let mask = mask.as_array();
        let (emb, fused) = py
            .detach(|| {
                let input = EncoderInput::dense(views, mask)?;
                self.inner.encode_and_fuse(&input)
            })
            .py()?;
        Ok((emb.into_pyarray(py), fused.into_pyarray(py)))
    }

    fn fuse<'py>(
        &self,
        py: Python<'py>,
        embeddings: PyReadonlyArray3<'py, f32>,
        mask: PyReadonlyArray2<'py, bool>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let (emb, mask) = (embeddings.as_array(), mask.as_array());
        Ok(py.detach(|| self.inner.fuse(emb, mask)).py()?.into_pyarray(py))
    }

    fn bind<'py>(
        &self,
        py: Python<'py>,
        a: PyReadonlyArray2<'py, f32>,
        b: PyReadonlyArray2<'py, f32>,
    ) -> PyResult<Bound<'py, PyArray1<f32>>> {
        let (a, b) = (a.as_array(), b.as_array());
        Ok(py.detach(|| self.inner.bind(a, b)).py()?.into_pyarray(py))
    }

    fn pair_strengths<'py>(
        &self,
        py: Python<'py>,
        embeddings: PyReadonlyArray3<'py, f32>,
        mask: PyReadonlyArray2<'py, bool>,
    ) -> PyResult<Bound<'py, PyArray3<f32>>> {
        let (emb, mask) = (embeddings.as_array(), mask.as_array());
        Ok(py.detach(|| self.inner.pair_strengths(emb, mask)).py()?.into_pyarray(py))
    }

    /// `(weights [B, M], attended [B, E], head_weights [B, heads, M])`.
    #[allow(clippy::type_complexity)]
    fn attend<'py>(
        &self,
        py: Python<'py>,
        query: PyReadonlyArray2<'py, f32>,
        embeddings: PyReadonlyArray3<'py, f32>,
        mask: PyReadonlyArray2<'py, bool>,
    ) -> PyResult<(Bound<'py, PyArray2<f32>>, Bound<'py, PyArray2<f32>>, Bound<'py, PyArray3<f32>>)> {
        let (q, emb, mask) = (query.as_array(), embeddings.as_array(), mask.as_array());
        let out = py.detach(|| self.inner.attend(q, emb, mask)).py()?;
        Ok((out.weights.into_pyarray(py), out.attended.into_pyarray(py), out.head_weights.into_pyarray(py)))
    }

    // ------------------------------------------------------------ learning

    /// Losses of `batch` without gradients (the draws of the next
    /// `backward`; with `training`, its encoder dropout too).
    #[pyo3(signature = (batch, weights, training=false))]
    fn losses(&self, py: Python<'_>, batch: PyBatch<'_>, weights: Vec<f64>, training: bool) -> PyResult<LossList> {
        let weights = objective_weights(weights)?;
        let inner = &self.inner;
        with_batch(py, batch, |b| {
            let losses = if training { inner.training_losses(b, &weights) } else { inner.losses(b, &weights) };
            losses.map(|l| loss_list(&l))
        })
    }

    /// `[(objective, temperature)]` of the contrastive objectives: the
    /// learned values (clamped to their range) or the configured one.
    fn temperatures(&self) -> Vec<(String, f64)> {
        [Objective::Contrastive, Objective::FusedContrastive]
            .iter()
            .map(|&o| (o.name().to_string(), f64::from(self.inner.temperature(o))))
            .collect()
    }

    /// Losses of `batch`; their gradients are added to the accumulated ones.
    fn backward(&mut self, py: Python<'_>, batch: PyBatch<'_>, weights: Vec<f64>) -> PyResult<LossList> {
        let weights = objective_weights(weights)?;
        let inner = &mut self.inner;
        with_batch(py, batch, |b| inner.backward(b, &weights).map(|l| loss_list(&l)))
    }

    /// `zero_grad → backward → step(lr)`; returns the losses and the
    /// gradient norm before clipping.
    #[pyo3(signature = (batch, weights, lr=None))]
    fn train_step(&mut self, py: Python<'_>, batch: PyBatch<'_>, weights: Vec<f64>, lr: Option<f64>) -> PyResult<(LossList, f64)> {
        let weights = objective_weights(weights)?;
        let inner = &mut self.inner;
        with_batch(py, batch, |b| inner.train_step(b, &weights, lr).map(|(l, r)| (loss_list(&l), r.grad_norm)))
    }

    fn zero_grad(&mut self) {
        self.inner.zero_grad();
    }

    fn has_gradients(&self) -> bool {
        self.inner.has_gradients()
    }

    /// One Adam update from the accumulated gradients; False (and nothing
    /// changes) when there are none.
    #[pyo3(signature = (lr=None))]
    fn step(&mut self, py: Python<'_>, lr: Option<f64>) -> PyResult<bool> {
        let inner = &mut self.inner;
        Ok(py.detach(|| inner.step(lr)).py()?.is_some())
    }

    /// One Adam update from the flat gradient `grads` (layout order).
    #[pyo3(signature = (grads, lr=None))]
    fn apply_gradients(&mut self, py: Python<'_>, grads: PyReadonlyArray1<'_, f32>, lr: Option<f64>) -> PyResult<f64> {
        let grads = grads.as_array();
        let inner = &mut self.inner;
        let report = py.detach(|| inner.apply_gradients(&contiguous(grads), lr)).py()?;
        Ok(report.grad_norm)
    }

    /// A copy of the accumulated gradients, flat in layout order.
    fn get_flat_grad<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f32>> {
        self.inner.gradients().to_vec().into_pyarray(py)
    }

    /// `(m, v, step, rng_counter)`: Adam's moments (flat, layout order), its
    /// step count, and the number of gradient computations so far.
    #[allow(clippy::type_complexity)]
    fn optimizer_state<'py>(&self, py: Python<'py>) -> (Bound<'py, PyArray1<f32>>, Bound<'py, PyArray1<f32>>, u64, u64) {
        let s = self.inner.optimizer_state();
        (s.m.into_pyarray(py), s.v.into_pyarray(py), s.step, s.rng_counter)
    }

    fn set_optimizer_state(&mut self, m: PyReadonlyArray1<'_, f32>, v: PyReadonlyArray1<'_, f32>, step: u64, rng_counter: u64) -> PyResult<()> {
        let state = OptimizerState {
            m: m.as_array().to_vec(),
            v: v.as_array().to_vec(),
            step,
            rng_counter,
        };
        self.inner.set_optimizer_state(state).py()
    }

    fn reset_optimizer(&mut self) {
        self.inner.reset_optimizer();
    }

    /// The next `backward`'s random draws on `batch`: `([(i, j, shift)] of
    /// binding, cross_modal rows, dropped modalities, fused_contrastive rows,
    /// its two views [n, M] and each row's positives)`.
    #[allow(clippy::type_complexity)]
    fn objective_draws<'py>(&self, py: Python<'py>, batch: PyBatch<'py>) -> PyResult<DrawsOut<'py>> {
        let inner = &self.inner;
        let d = with_batch(py, batch, |b| inner.objective_draws(b))?;
        let [v0, v1] = d.fused.views;
        Ok((d.shifts, d.rows, d.dropped, d.fused.rows, v0.into_pyarray(py), v1.into_pyarray(py), d.fused.positives))
    }
}

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
    inputs: Option<Vec<Option<PyReadonlyArray2<'py, f32>>>>,
    components: Option<(usize, Vec<Option<Component<'py>>>)>,
    embeddings: Option<PyReadonlyArray3<'py, f32>>,
    mask: Option<PyReadonlyArray2<'py, bool>>,
    fused: Option<PyReadonlyArray2<'py, f32>>,
    rewards: Option<PyReadonlyArray1<'py, f32>>,
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

/// Runs `f` on the Rust batch built from `batch`, with the GIL released.
fn with_batch<R: Send>(
    py: Python<'_>,
    batch: PyBatch<'_>,
    f: impl FnOnce(&TrainBatch<f32>) -> grapheme_multimodal::Result<R> + Send,
) -> PyResult<R> {
    let sources = [batch.inputs.is_some(), batch.components.is_some(), batch.embeddings.is_some()];
    if sources.iter().filter(|&&s| s).count() != 1 {
        return Err(PyValueError::new_err(
            "batch: expected exactly one of inputs, components or embeddings as the source of modality embeddings",
        ));
    }
    let mask = batch.mask.as_ref().map(|m| m.as_array());
    let fused = batch.fused.as_ref().map(|a| a.as_array());
    let rewards = batch.rewards.as_ref().map(|a| a.as_array());
    let need_mask = || PyValueError::new_err("mask: required with inputs or embeddings; expected a bool array [B, 7]");
    if let Some(inputs) = &batch.inputs {
        let views = dense_views(inputs)?;
        let mask = mask.ok_or_else(need_mask)?;
        return py
            .detach(|| {
                let source = EmbeddingSource::Inputs(EncoderInput::dense(views, mask)?);
                f(&TrainBatch { source, fused, rewards })
            })
            .py();
    }
    if let Some((batch_size, parts)) = &batch.components {
        let parts = component_inputs(parts, "components")?;
        return py
            .detach(|| {
                let source = EmbeddingSource::Inputs(EncoderInput::components(*batch_size, parts)?);
                f(&TrainBatch { source, fused, rewards })
            })
            .py();
    }
    let emb = batch.embeddings.as_ref().expect("one source is present").as_array();
    let mask = mask.ok_or_else(need_mask)?;
    py.detach(|| {
        let source = EmbeddingSource::Embeddings { emb, mask };
        f(&TrainBatch { source, fused, rewards })
    })
    .py()
}

fn objective_weights(weights: Vec<f64>) -> PyResult<ObjectiveWeights> {
    let n = weights.len();
    let w: [f64; NUM_OBJECTIVES] = weights
        .try_into()
        .map_err(|_| PyValueError::new_err(format!("weights: expected {NUM_OBJECTIVES} values, got {n}")))?;
    Ok(ObjectiveWeights(w))
}
