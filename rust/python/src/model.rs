//! `_core.Model`: the float32 model. Arrays arrive as float32 / bool numpy
//! arrays (the Python layer converts dtypes); C-contiguous inputs are read in
//! place. Every compute call releases the GIL.

use crate::errors::IntoPyResult;
use grapheme_multimodal::{Config, EncoderInput, LearnableMultiModal, NUM_MODALITIES};
use ndarray::{Array2, ArrayView2};
use numpy::{IntoPyArray, PyArray1, PyArray2, PyArray3, PyArrayDyn, PyReadonlyArray1, PyReadonlyArray2, PyReadonlyArray3, PyReadonlyArrayDyn};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

type Component<'py> = (PyReadonlyArray2<'py, f32>, Vec<usize>, Option<Vec<f32>>);

#[pyclass(name = "Model", module = "grapheme_multimodal._core")]
pub struct PyModel {
    inner: LearnableMultiModal<f32>,
}

fn seven<T>(items: Vec<T>, arg: &str) -> PyResult<[T; NUM_MODALITIES]> {
    let n = items.len();
    items
        .try_into()
        .map_err(|_| PyValueError::new_err(format!("{arg}: expected one entry per modality (7), got {n}")))
}

#[pymethods]
impl PyModel {
    #[new]
    #[pyo3(signature = (embed_dim, hidden_dim, learning_rate, num_heads, buffer_size, seed, input_dims))]
    fn new(
        embed_dim: usize,
        hidden_dim: usize,
        learning_rate: f64,
        num_heads: usize,
        buffer_size: usize,
        seed: u64,
        input_dims: Vec<usize>,
    ) -> PyResult<Self> {
        let config = Config {
            embed_dim,
            hidden_dim,
            learning_rate,
            num_heads,
            buffer_size,
            seed,
            input_dims: seven(input_dims, "input_dims")?,
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

    fn set_param(&mut self, name: &str, values: PyReadonlyArrayDyn<'_, f32>) -> PyResult<()> {
        self.inner.set_param(name, values.as_array()).py()
    }

    /// A copy of the flat parameter buffer.
    fn get_flat<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f32>> {
        self.inner.params().to_vec().into_pyarray(py)
    }

    fn encode<'py>(
        &self,
        py: Python<'py>,
        inputs: Vec<Option<PyReadonlyArray2<'py, f32>>>,
        mask: PyReadonlyArray2<'py, bool>,
    ) -> PyResult<Bound<'py, PyArray3<f32>>> {
        let inputs = seven(inputs, "inputs")?;
        let views: [Option<ArrayView2<f32>>; NUM_MODALITIES] = std::array::from_fn(|m| inputs[m].as_ref().map(|a| a.as_array()));
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
        let parts = seven(parts, "parts")?;
        let owned: [Option<(Array2<f32>, Vec<usize>, Option<Vec<f32>>)>; NUM_MODALITIES] =
            parts.map(|p| p.map(|(x, rows, w)| (x.as_array().to_owned(), rows, w)));
        let emb = py.detach(|| {
            let input = EncoderInput::components(batch_size, owned)?;
            self.inner.encode(&input)
        });
        Ok(emb.py()?.into_pyarray(py))
    }

    /// `(embeddings [B, M, E], fused [B, E])` in one call.
    fn encode_and_fuse<'py>(
        &self,
        py: Python<'py>,
        inputs: Vec<Option<PyReadonlyArray2<'py, f32>>>,
        mask: PyReadonlyArray2<'py, bool>,
    ) -> PyResult<(Bound<'py, PyArray3<f32>>, Bound<'py, PyArray2<f32>>)> {
        let inputs = seven(inputs, "inputs")?;
        let views: [Option<ArrayView2<f32>>; NUM_MODALITIES] = std::array::from_fn(|m| inputs[m].as_ref().map(|a| a.as_array()));
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

    /// Overwrites the flat parameter buffer (layout order, finite values).
    fn set_flat(&mut self, values: PyReadonlyArray1<'_, f32>) -> PyResult<()> {
        let values = values.as_array();
        let n = self.inner.num_parameters();
        if values.len() != n {
            return Err(PyValueError::new_err(format!("values: expected shape ({n},), got ({},)", values.len())));
        }
        if values.iter().any(|v| !v.is_finite()) {
            return Err(PyValueError::new_err("values: contains a non-finite value (NaN or inf); expected finite numbers"));
        }
        self.inner.params_mut().copy_from_slice(values.as_slice().unwrap_or(&values.to_vec()));
        Ok(())
    }
}
