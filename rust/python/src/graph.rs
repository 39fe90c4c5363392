//! `_core.Graph`: a Rust graph held by the Python `Graph` wrapper, its
//! builders, and the batched featurisers.

use crate::convert::{contiguous, F32Array1, F32Array2, Floats, I64Array2};
use crate::errors::{to_py, IntoPyResult};
use crate::guard::detached;
use grapheme_multimodal::features::{featurize as featurize_graphs, featurize_items, FeatureKind, Featurizable};
use grapheme_multimodal::validate::check_shape;
use grapheme_multimodal::{Error, Graph, TextUnit, ValueRange};
use ndarray::Array2;
use numpy::{IntoPyArray, PyArray1, PyArray2};
use pyo3::exceptions::PyTypeError;
use pyo3::pybacked::PyBackedStr;
use pyo3::prelude::*;
use pyo3::types::PyString;

#[pyclass(name = "Graph", module = "grapheme_multimodal._core", frozen)]
pub struct PyGraph {
    pub inner: Graph,
}

fn value_range(range: Option<(f32, f32)>) -> PyResult<Option<ValueRange>> {
    range.map(|(low, high)| ValueRange::new(low, high)).transpose().py()
}

#[pymethods]
impl PyGraph {
    #[staticmethod]
    #[pyo3(signature = (text, unit="char"))]
    fn from_text(py: Python<'_>, text: &str, unit: &str) -> PyResult<Self> {
        let unit = TextUnit::parse(unit).py()?;
        Ok(PyGraph { inner: detached(py, || Graph::try_from_text_units(text, unit))? })
    }

    /// `image` is `[H, W]` float32; `value_range` maps onto [0, 1] (min-max when absent).
    #[staticmethod]
    #[pyo3(signature = (image, value_range=None))]
    fn from_image(py: Python<'_>, image: F32Array2<'_>, value_range: Option<(f32, f32)>) -> PyResult<Self> {
        let range = self::value_range(value_range)?;
        let view = image.as_array();
        Ok(PyGraph { inner: detached(py, || Graph::from_image(view, range))? })
    }

    /// Refuses an `[height, width]` image whose graph cannot fit in memory,
    /// before the Python layer copies it into float32.
    #[staticmethod]
    fn check_image_size(height: usize, width: usize) -> PyResult<()> {
        Graph::check_image_size(height, width).map(|_| ()).py()
    }

    /// Refuses a graph of `num_nodes` nodes and `num_edges` edges that cannot
    /// fit in memory, before the Python layer copies the edges into int64.
    #[staticmethod]
    fn check_edges_size(num_nodes: usize, num_edges: usize) -> PyResult<()> {
        Graph::check_edges_size(num_nodes, num_edges).py()
    }

    /// Refuses `n` values whose chain graph cannot fit in memory.
    #[staticmethod]
    fn check_sequence_size(n: usize) -> PyResult<()> {
        Graph::check_sequence_size(n).py()
    }

    /// `values` is `[n]` float32; `value_range` maps onto [0, 1] (min-max when absent).
    #[staticmethod]
    #[pyo3(signature = (values, value_range=None))]
    fn from_sequence(py: Python<'_>, values: F32Array1<'_>, value_range: Option<(f32, f32)>) -> PyResult<Self> {
        let range = self::value_range(value_range)?;
        let values = values.as_array();
        Ok(PyGraph { inner: detached(py, || Graph::from_sequence(&contiguous(values), range))? })
    }

    /// `edges` is `(m, 2)` int64 (the Python layer converts lists of pairs);
    /// `activations` a float32 array or a sequence of floats.
    #[staticmethod]
    #[pyo3(signature = (num_nodes, edges, activations=None, labels=None))]
    fn from_edges(
        py: Python<'_>,
        num_nodes: usize,
        edges: I64Array2<'_>,
        activations: Option<Floats<'_>>,
        labels: Option<Vec<String>>,
    ) -> PyResult<Self> {
        let edges = edges.as_array();
        // `(m, 2)` checked here too: `_core` may be called directly.
        check_shape("edges", &edges, &[None, Some(2)]).py()?;
        let activations = activations.as_ref().map(|a| a.as_slice());
        let inner = detached(py, || {
            // Checked and allocated fallibly: an edge array that is a broadcast view costs its caller nothing.
            Graph::check_edges_size(num_nodes, edges.nrows())?;
            let mut pairs: Vec<[i64; 2]> = grapheme_multimodal::memory::try_with_capacity("edges", "the edges", edges.nrows())?;
            pairs.extend(edges.rows().into_iter().map(|r| [r[0], r[1]]));
            Graph::from_edges(num_nodes, &pairs, activations.map(|a| a.into_owned()), labels)
        })?;
        Ok(PyGraph { inner })
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

    /// The features of `kind` ("fingerprint" or "wl"), `[dim]` float32; GIL released.
    #[pyo3(signature = (kind="fingerprint", dim=None, iterations=None))]
    fn features<'py>(
        &self,
        py: Python<'py>,
        kind: &str,
        dim: Option<i64>,
        iterations: Option<i64>,
    ) -> PyResult<Bound<'py, PyArray1<f32>>> {
        let kind = FeatureKind::parse(kind, dim, iterations).py()?;
        Ok(detached(py, || kind.features(&self.inner))?.into_pyarray(py))
    }
}

/// The 18 SPEC features of each graph, `[N, 18]` float32, rows in
/// parallel; GIL released.
#[pyfunction]
pub fn fingerprints<'py>(py: Python<'py>, graphs: Vec<PyRef<'py, PyGraph>>) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let refs: Vec<&Graph> = graphs.iter().map(|g| &g.inner).collect();
    Ok(detached(py, || featurize_graphs(&refs, &FeatureKind::Fingerprint))?.into_pyarray(py))
}

/// One item of `featurize`, held while the GIL is released.
enum Item<'py> {
    /// The text's UTF-8 (an error for lone surrogates, as `Graph.from_text`).
    Text(PyBackedStr),
    Graph(PyRef<'py, PyGraph>),
}

/// Features of each item (a `str`, built into a `unit` graph, or a
/// `_core.Graph`), `[N, dim]` float32, rows in parallel; GIL released.
#[pyfunction]
#[pyo3(signature = (items, kind="fingerprint", dim=None, iterations=None, unit="char"))]
pub fn featurize<'py>(
    py: Python<'py>,
    items: Vec<Bound<'py, PyAny>>,
    kind: &str,
    dim: Option<i64>,
    iterations: Option<i64>,
    unit: &str,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let kind = FeatureKind::parse(kind, dim, iterations).py()?;
    let unit = TextUnit::parse(unit).py()?;
    let held = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            if let Ok(s) = item.cast::<PyString>() {
                PyBackedStr::try_from(s.clone())
                    .map(Item::Text)
                    .map_err(|e| to_py(Error::invalid(format!("items[{i}]"), format!("{e}; expected text that UTF-8 can encode"))))
            } else if let Ok(g) = item.extract::<PyRef<'py, PyGraph>>() {
                Ok(Item::Graph(g))
            } else {
                Err(PyTypeError::new_err(format!(
                    "items[{i}]: expected str or Graph, got {}",
                    item.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into())
                )))
            }
        })
        .collect::<PyResult<Vec<Item<'py>>>>()?;
    let refs: Vec<Featurizable<'_>> = held
        .iter()
        .map(|item| match item {
            Item::Text(t) => Featurizable::Text(t),
            Item::Graph(g) => Featurizable::Graph(&g.inner),
        })
        .collect();
    Ok(detached(py, || featurize_items(&refs, unit, &kind))?.into_pyarray(py))
}
