//! numpy -> Rust conversions shared by the bindings: per-modality lists,
//! dense input views, per-event components, contiguous slices.

use grapheme_multimodal::NUM_MODALITIES;
use ndarray::{Array2, ArrayView1, ArrayView2};
use numpy::PyReadonlyArray2;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use std::borrow::Cow;

/// One modality's components as they arrive: `(x [N, d], rows [N], weights [N] | None)`.
pub type Component<'py> = (PyReadonlyArray2<'py, f32>, Vec<usize>, Option<Vec<f32>>);
/// The same, owned (what `EncoderInput::components` takes).
pub type OwnedComponent = (Array2<f32>, Vec<usize>, Option<Vec<f32>>);

/// `items` as one entry per modality.
pub fn seven<T>(items: Vec<T>, arg: &str) -> PyResult<[T; NUM_MODALITIES]> {
    let n = items.len();
    items
        .try_into()
        .map_err(|_| PyValueError::new_err(format!("{arg}: expected one entry per modality (7), got {n}")))
}

/// Views of the dense inputs `[B, d_m]` (read in place).
pub fn dense_views<'a>(inputs: &'a [Option<PyReadonlyArray2<'_, f32>>]) -> PyResult<[Option<ArrayView2<'a, f32>>; NUM_MODALITIES]> {
    seven(inputs.iter().map(|a| a.as_ref().map(|a| a.as_array())).collect(), "inputs")
}

/// Owned copies of per-modality components (`EncoderInput::components` owns its arrays).
pub fn owned_components(parts: Vec<Option<Component<'_>>>, arg: &str) -> PyResult<[Option<OwnedComponent>; NUM_MODALITIES]> {
    seven(parts, arg).map(|parts| parts.map(|p| p.map(|(x, rows, w)| (x.as_array().to_owned(), rows, w))))
}

/// `a` as a slice: in place when contiguous, else copied.
pub fn contiguous<'a, T: Clone>(a: ArrayView1<'a, T>) -> Cow<'a, [T]> {
    match a.to_slice() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(a.to_vec()),
    }
}
