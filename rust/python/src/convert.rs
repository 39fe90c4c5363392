//! numpy -> Rust conversions shared by the bindings: per-modality lists,
//! dense input views, per-event components, contiguous slices.

use grapheme_multimodal::batch::input_arg;
use crate::errors::to_py;
use grapheme_multimodal::{Error, ModalityInput, NUM_MODALITIES};
use ndarray::{Array2, ArrayView, ArrayView1, ArrayView2, CowArray, Dimension, Ix1, Ix2, Ix3, IxDyn};
use numpy::{Element, PyArray, PyArray2, PyArrayMethods, PyReadonlyArray, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use std::borrow::Cow;

/// A numpy array of `T` read in place when its data is aligned for `T`,
/// else copied (by numpy, into an aligned array) first: Rust may only read
/// aligned values, while numpy allows arrays at any byte offset (e.g. views
/// of a buffer at an odd offset).
pub struct Aligned<'py, T: Element, D: Dimension>(PyReadonlyArray<'py, T, D>);

pub type F32Array1<'py> = Aligned<'py, f32, Ix1>;
pub type F32Array2<'py> = Aligned<'py, f32, Ix2>;
pub type F32Array3<'py> = Aligned<'py, f32, Ix3>;
pub type F32ArrayDyn<'py> = Aligned<'py, f32, IxDyn>;
pub type F64Array1<'py> = Aligned<'py, f64, Ix1>;
pub type F64Array2<'py> = Aligned<'py, f64, Ix2>;
pub type I64Array1<'py> = Aligned<'py, i64, Ix1>;
pub type I64Array2<'py> = Aligned<'py, i64, Ix2>;

impl<T: Element, D: Dimension> Aligned<'_, T, D> {
    pub fn as_array(&self) -> ArrayView<'_, T, D> {
        self.0.as_array()
    }
}

impl<'a, 'py, T: Element + 'a, D: Dimension + 'a> FromPyObject<'a, 'py> for Aligned<'py, T, D> {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        let array = obj.cast::<PyArray<T, D>>()?.to_owned();
        let array = if array.is_aligned() { array } else { array.call_method0("copy")?.cast_into::<PyArray<T, D>>()? };
        Ok(Aligned(array.try_readonly()?))
    }
}

/// A bool array (`[B, 7]` presence mask) read as bytes, any nonzero byte
/// counting as true: numpy bool arrays can hold other bytes than 0 and 1
/// (e.g. `(x & 6).view(bool)`), which Rust must never read as `bool`. Always
/// a small copy (one byte per entry).
pub struct Mask(pub Array2<bool>);

impl<'a, 'py> FromPyObject<'a, 'py> for Mask {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        let array = obj.cast::<PyArray2<bool>>()?;
        let _no_rust_writer = array.try_readonly()?;
        let bytes = array.as_raw_array().cast::<u8>();
        // SAFETY: numpy keeps the data readable for the array's shape and
        // strides while we hold the array (the read-only borrow excludes
        // writers from Rust); `u8` has the size and alignment of numpy's
        // bool, and every byte is a valid `u8` (never read as `bool`).
        let bytes = unsafe { bytes.deref_into_view() };
        Ok(Mask(bytes.mapv(|b| b != 0)))
    }
}

/// One modality's components as they arrive: `(x [N, d], rows [N], weights [N] | None)`.
pub type Component<'py> = (F32Array2<'py>, RowIndices<'py>, Option<Floats<'py>>);

/// Row indices: an int64 array (read without Python objects) or any sequence of ints.
#[derive(FromPyObject)]
pub enum RowIndices<'py> {
    Array(I64Array1<'py>),
    Sequence(Vec<usize>),
}

/// Floats: a float32 array (read in place) or any sequence of floats.
#[derive(FromPyObject)]
pub enum Floats<'py> {
    Array(F32Array1<'py>),
    Sequence(Vec<f32>),
}

impl Floats<'_> {
    /// The values as a slice: in place when contiguous, else copied.
    pub fn as_slice(&self) -> Cow<'_, [f32]> {
        match self {
            Floats::Array(a) => contiguous(a.as_array()),
            Floats::Sequence(v) => Cow::Borrowed(v),
        }
    }
}

/// `items` as one entry per modality.
pub fn seven<T>(items: Vec<T>, arg: &str) -> PyResult<[T; NUM_MODALITIES]> {
    let n = items.len();
    items
        .try_into()
        .map_err(|_| PyValueError::new_err(format!("{arg}: expected one entry per modality (7), got {n}")))
}

/// Views of the dense inputs `[B, d_m]` (read in place).
pub fn dense_views<'a>(inputs: &'a [Option<F32Array2<'_>>]) -> PyResult<[Option<ArrayView2<'a, f32>>; NUM_MODALITIES]> {
    seven(inputs.iter().map(|a| a.as_ref().map(|a| a.as_array())).collect(), "inputs")
}

/// Per-modality components as the core takes them, reading the numpy data
/// in place when it is already in the core's form (C-contiguous float32,
/// contiguous weights); only the rest is copied. The core checks the rest.
pub fn component_inputs<'a>(parts: &'a [Option<Component<'_>>], arg: &str) -> PyResult<[Option<ModalityInput<'a, f32>>; NUM_MODALITIES]> {
    let parts = seven(parts.iter().collect(), arg)?;
    let mut inputs: [Option<ModalityInput<'a, f32>>; NUM_MODALITIES] = Default::default();
    for (m, (slot, part)) in inputs.iter_mut().zip(parts).enumerate() {
        let Some((x, rows, weights)) = part else { continue };
        let x = x.as_array();
        let x = if x.is_standard_layout() { CowArray::from(x) } else { CowArray::from(x.as_standard_layout().into_owned()) };
        let rows = match rows {
            RowIndices::Sequence(rows) => Cow::Borrowed(rows.as_slice()),
            RowIndices::Array(rows) => Cow::Owned(
                rows.as_array()
                    .iter()
                    .map(|&r| usize::try_from(r).map_err(|_| to_py(Error::invalid(input_arg(m), format!("row index {r} is negative; expected indices into the batch")))))
                    .collect::<PyResult<_>>()?,
            ),
        };
        let weights = weights.as_ref().map(Floats::as_slice);
        *slot = Some(ModalityInput { x, rows, weights });
    }
    Ok(inputs)
}

/// `a` as a slice: in place when contiguous, else copied.
pub fn contiguous<'a, T: Clone>(a: ArrayView1<'a, T>) -> Cow<'a, [T]> {
    match a.to_slice() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(a.to_vec()),
    }
}

/// `(name, values)` pairs from a list or tuple of them, `values` float32
/// arrays (read in place, as [`Aligned`]); a bad entry is named
/// (`arg[i]`), as a wrong dtype was not ("'ndarray' object is not an
/// instance of 'ndarray'").
pub fn named_arrays<'py>(obj: &Bound<'py, PyAny>, arg: &str) -> PyResult<Vec<(String, F32ArrayDyn<'py>)>> {
    let type_name = |o: &Bound<'py, PyAny>| o.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into());
    if !(obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>()) {
        return Err(PyTypeError::new_err(format!("{arg}: expected a list of (name, float32 array) pairs, got {}", type_name(obj))));
    }
    obj.try_iter()?
        .enumerate()
        .map(|(i, item)| {
            let item = item?;
            let (name, values) = item.extract::<(String, Bound<'py, PyAny>)>().map_err(|_| {
                PyTypeError::new_err(format!("{arg}[{i}]: expected a (name, float32 array) pair, got {}", type_name(&item)))
            })?;
            let array = values.extract::<F32ArrayDyn<'py>>().map_err(|_| {
                let got = match values.cast::<PyUntypedArray>() {
                    Ok(array) => format!("an array of {}", array.dtype()),
                    Err(_) => type_name(&values),
                };
                PyTypeError::new_err(format!("{arg}[{i}] ({name:?}): expected a float32 numpy array, got {got}"))
            })?;
            Ok((name, array))
        })
        .collect()
}
