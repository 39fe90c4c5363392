//! Core errors become Python `ValueError`s carrying the core's message.

use pyo3::exceptions::PyValueError;
use pyo3::PyErr;

pub fn to_py(err: grapheme_multimodal::Error) -> PyErr {
    PyValueError::new_err(err.to_string())
}

/// `result.map_err(to_py)` shortened.
pub trait IntoPyResult<T> {
    fn py(self) -> pyo3::PyResult<T>;
}

impl<T> IntoPyResult<T> for grapheme_multimodal::Result<T> {
    fn py(self) -> pyo3::PyResult<T> {
        self.map_err(to_py)
    }
}
