//! Core errors become the Python classes of `grapheme_multimodal.exceptions`
//! (all `ValueError` subclasses), carrying the core's message and the name of
//! the argument as `err.arg`.

use pyo3::PyErr;

pyo3::import_exception!(grapheme_multimodal.exceptions, ShapeError);
pyo3::import_exception!(grapheme_multimodal.exceptions, NonFiniteError);
pyo3::import_exception!(grapheme_multimodal.exceptions, InvalidValueError);
pyo3::import_exception!(grapheme_multimodal.exceptions, TooLargeError);

pub fn to_py(err: grapheme_multimodal::Error) -> PyErr {
    use grapheme_multimodal::Error;
    let args = (err.to_string(), err.arg().to_string());
    match err {
        Error::Shape { .. } => ShapeError::new_err(args),
        Error::NonFinite { .. } | Error::Overflow { .. } => NonFiniteError::new_err(args),
        Error::Invalid { .. } => InvalidValueError::new_err(args),
        Error::TooLarge { .. } => TooLargeError::new_err(args),
    }
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
