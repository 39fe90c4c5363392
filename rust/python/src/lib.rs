//! `grapheme_multimodal._core`: the PyO3 bindings of the pure-Rust core.
//! Only conversion (numpy <-> ndarray), error mapping and GIL release live
//! here; the math is in the `grapheme-multimodal` crate.

mod convert;
mod errors;
mod graph;
mod guard;
mod lock;
mod model;

use pyo3::prelude::*;

/// Sets the number of threads the library computes with (≥ 1); returns the
/// number it will use (at most `max_threads()`).
#[pyfunction]
fn set_num_threads(n: i64) -> PyResult<usize> {
    let n = usize::try_from(n).map_err(|_| pyo3::exceptions::PyValueError::new_err(format!("n: got {n}; expected a positive number of threads")))?;
    grapheme_multimodal::kernels::threads::set_num_threads(n).map_err(errors::to_py)
}

/// The most threads the library computes with.
#[pyfunction]
fn max_threads() -> usize {
    grapheme_multimodal::kernels::threads::max_threads()
}

/// Which kernels run: `"avx512"` (AVX-512F GEMM tiles; `GRAPHEME_MM_NO_AVX512=1` keeps them on AVX2, same bits), `"avx2"` or `"portable"` (forced by `GRAPHEME_MM_PORTABLE=1`).
#[pyfunction]
fn kernel_path() -> &'static str {
    grapheme_multimodal::kernels::kernel_path()
}

/// The number of threads the library computes with.
#[pyfunction]
fn get_num_threads() -> usize {
    grapheme_multimodal::kernels::threads::num_threads()
}

/// The bytes this process may use at most, as the core checks sizes
/// against: the physical memory, or the cgroup's or the process's address-space
/// or data-size limit (`ulimit -v`, `ulimit -d`) when lower (Linux).
#[pyfunction]
fn memory_budget() -> usize {
    grapheme_multimodal::memory::budget()
}

/// A list or tuple of plain Python numbers as `numpy.asarray` reads it (a
/// copy numpy owns): all floats (exactly `float`, no subclass) as float64,
/// all ints (exactly `int`, no bool) within int64 as int64; `None` for
/// anything else (a mix, bools, subclasses, numpy scalars, rows, ints beyond
/// int64), which the caller reads as before. One pass over the items' types
/// and values: `numpy.asarray`, and the Python pass over the items' types that
/// refuses masked arrays among them, took ~20 and ~18 ns an item.
#[pyfunction]
fn plain_items<'py>(py: Python<'py>, x: &Bound<'py, PyAny>) -> Option<Bound<'py, PyAny>> {
    use pyo3::types::{PyFloat, PyInt, PyList, PyTuple};
    fn read<'py>(py: Python<'py>, items: impl ExactSizeIterator<Item = Bound<'py, PyAny>>) -> Option<Bound<'py, PyAny>> {
        use numpy::{PyArray1, PyArrayMethods};
        let mut items = items.peekable();
        // written in place into the array numpy owns: no second copy of a long list's values
        if items.peek().is_some_and(|first| first.is_exact_instance_of::<PyInt>()) {
            let array = PyArray1::<i64>::zeros(py, items.len(), false);
            for (slot, item) in array.readwrite().as_slice_mut().ok()?.iter_mut().zip(items) {
                *slot = item.cast_exact::<PyInt>().ok()?.extract::<i64>().ok()?;
            }
            Some(array.into_any())
        } else {
            let array = PyArray1::<f64>::zeros(py, items.len(), false);
            for (slot, item) in array.readwrite().as_slice_mut().ok()?.iter_mut().zip(items) {
                *slot = item.cast_exact::<PyFloat>().ok()?.value();
            }
            Some(array.into_any())
        }
    }
    if let Ok(list) = x.cast_exact::<PyList>() {
        read(py, list.iter())
    } else if let Ok(tuple) = x.cast_exact::<PyTuple>() {
        read(py, tuple.iter())
    } else {
        None
    }
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("NUM_MODALITIES", grapheme_multimodal::NUM_MODALITIES)?;
    m.add("FINGERPRINT_DIM", grapheme_multimodal::features::FINGERPRINT_DIM)?;
    m.add(
        "MODALITY_NAMES",
        grapheme_multimodal::Modality::ALL.iter().map(|m| m.name()).collect::<Vec<_>>(),
    )?;
    m.add(
        "OBJECTIVE_NAMES",
        grapheme_multimodal::Objective::ALL.iter().map(|o| o.name()).collect::<Vec<_>>(),
    )?;
    m.add_class::<graph::PyGraph>()?;
    m.add_class::<model::PyModel>()?;
    m.add_class::<lock::Gate>()?;
    m.add_class::<lock::GateGuard>()?;
    m.add_function(wrap_pyfunction!(graph::fingerprints, m)?)?;
    m.add_function(wrap_pyfunction!(graph::featurize, m)?)?;
    m.add_function(wrap_pyfunction!(set_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(get_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(max_threads, m)?)?;
    m.add_function(wrap_pyfunction!(kernel_path, m)?)?;
    m.add_function(wrap_pyfunction!(memory_budget, m)?)?;
    m.add_function(wrap_pyfunction!(plain_items, m)?)?;
    m.add("MIN_STD", grapheme_multimodal::model::MIN_STD)?;
    m.add("ADAM_BETA1", grapheme_multimodal::adam::BETA1)?;
    m.add("ADAM_BETA2", grapheme_multimodal::adam::BETA2)?;
    m.add("MAX_DIM", grapheme_multimodal::config::MAX_DIM)?;
    m.add("MAX_LAYERS", grapheme_multimodal::config::MAX_LAYERS)?;
    m.add("MAX_FUSION_RESIDUAL", grapheme_multimodal::config::MAX_FUSION_RESIDUAL)?;
    m.add("MAX_DROPOUT", grapheme_multimodal::config::MAX_DROPOUT)?;
    m.add("DROPOUT_BOUND_WHY", grapheme_multimodal::config::DROPOUT_BOUND_WHY)?;
    m.add("WL_DEFAULT_DIM", grapheme_multimodal::features::WL_DEFAULT_DIM)?;
    m.add("WL_DEFAULT_ITERATIONS", grapheme_multimodal::features::WL_DEFAULT_ITERATIONS)?;
    Ok(())
}
