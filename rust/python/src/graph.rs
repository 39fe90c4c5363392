//! `_core.Graph`: a Rust graph held by the Python `Graph` wrapper.

use crate::errors::IntoPyResult;
use grapheme_multimodal::features::{fingerprint, FINGERPRINT_DIM};
use grapheme_multimodal::Graph;
use ndarray::Array2;
use numpy::{IntoPyArray, PyArray1, PyArray2, PyReadonlyArray2};
use pyo3::prelude::*;

#[pyclass(name = "Graph", module = "grapheme_multimodal._core", frozen)]
pub struct PyGraph {
    pub inner: Graph,
}

#[pymethods]
impl PyGraph {
    #[staticmethod]
    fn from_text(text: &str) -> Self {
        PyGraph {
            inner: Graph::from_text(text),
        }
    }

    /// `edges` is `(m, 2)` int64 (the Python layer converts lists of pairs).
    #[staticmethod]
    #[pyo3(signature = (num_nodes, edges, activations=None, labels=None))]
    fn from_edges(
        num_nodes: usize,
        edges: PyReadonlyArray2<'_, i64>,
        activations: Option<Vec<f32>>,
        labels: Option<Vec<String>>,
    ) -> PyResult<Self> {
        let edges = edges.as_array();
        let pairs: Vec<[i64; 2]> = edges.rows().into_iter().map(|r| [r[0], r[1]]).collect();
        Ok(PyGraph {
            inner: Graph::from_edges(num_nodes, &pairs, activations, labels).py()?,
        })
    }

    #[getter]
    fn node_count(&self) -> usize {
        self.inner.node_count()
    }

    #[getter]
    fn edge_count(&self) -> usize {
        self.inner.edge_count()
    }

    fn to_text(&self) -> String {
        self.inner.to_text()
    }

    fn activations<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f32>> {
        self.inner.activations().to_vec().into_pyarray(py)
    }

    fn labels(&self) -> Vec<String> {
        self.inner.labels().to_vec()
    }

    /// `(m, 2)` int64.
    fn edges<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray2<i64>> {
        let flat: Vec<i64> = self.inner.edges().iter().flat_map(|&(s, t)| [s as i64, t as i64]).collect();
        Array2::from_shape_vec((self.inner.edge_count(), 2), flat)
            .expect("two ids per edge")
            .into_pyarray(py)
    }

    /// The 18 SPEC features.
    fn fingerprint<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f32>> {
        fingerprint(&self.inner).to_vec().into_pyarray(py)
    }
}

/// The 18 SPEC features of each graph, `[N, 18]` float32; GIL released.
#[pyfunction]
pub fn fingerprints<'py>(py: Python<'py>, graphs: Vec<PyRef<'py, PyGraph>>) -> Bound<'py, PyArray2<f32>> {
    let refs: Vec<&Graph> = graphs.iter().map(|g| &g.inner).collect();
    let out = py.detach(|| {
        let mut out = Array2::zeros((refs.len(), FINGERPRINT_DIM));
        for (mut row, g) in out.rows_mut().into_iter().zip(&refs) {
            row.assign(&ndarray::ArrayView1::from(&fingerprint(g)));
        }
        out
    });
    out.into_pyarray(py)
}
