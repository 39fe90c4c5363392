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
/// all ints (exactly `int`, no bool) within int64 as int64 — or a list or
/// tuple of such rows (lists or tuples of one length, at least one value,
/// all floats or all ints) as a 2-D array; `None` for anything else (a mix,
/// bools, subclasses, numpy scalars, rows of other lengths or deeper, ints
/// beyond int64), which the caller reads as before. One pass over the items'
/// types and values: `numpy.asarray`, and the Python pass over the items'
/// types that refuses masked arrays among them, took ~20 and ~18 ns an item
/// (a list of rows: ~28 ns a value, most of a small retrieval's time).
#[pyfunction]
fn plain_items<'py>(py: Python<'py>, x: &Bound<'py, PyAny>) -> Option<Bound<'py, PyAny>> {
    use numpy::{Element, PyArrayMethods};
    use pyo3::types::{PyFloat, PyInt, PyList, PyTuple};

    /// `f(i, item)` for each item of the exact list or tuple `x` (None for anything else, or when `f` fails).
    fn each<'py>(x: &Bound<'py, PyAny>, mut f: impl FnMut(usize, Bound<'py, PyAny>) -> Option<()>) -> Option<()> {
        if let Ok(list) = x.cast_exact::<PyList>() {
            list.iter().enumerate().try_for_each(|(i, item)| f(i, item))
        } else {
            x.cast_exact::<PyTuple>().ok()?.iter().enumerate().try_for_each(|(i, item)| f(i, item))
        }
    }
    /// The length of the exact list or tuple `x`, and its first item.
    fn head<'py>(x: &Bound<'py, PyAny>) -> Option<(usize, Option<Bound<'py, PyAny>>)> {
        if let Ok(list) = x.cast_exact::<PyList>() {
            Some((list.len(), list.get_item(0).ok()))
        } else {
            let tuple = x.cast_exact::<PyTuple>().ok()?;
            Some((tuple.len(), tuple.get_item(0).ok()))
        }
    }
    /// The values of `x` (a list or tuple of `slots.len()` items) read into `slots` by `read`.
    fn fill<'py, T>(x: &Bound<'py, PyAny>, slots: &mut [T], read: fn(&Bound<'py, PyAny>) -> Option<T>) -> Option<()> {
        if head(x)?.0 != slots.len() {
            return None;
        }
        // written in place into the array numpy owns: no second copy of a long list's values
        each(x, |i, item| {
            *slots.get_mut(i)? = read(&item)?;
            Some(())
        })
    }
    fn int<'py>(item: &Bound<'py, PyAny>) -> Option<i64> {
        item.cast_exact::<PyInt>().ok()?.extract::<i64>().ok()
    }
    fn float<'py>(item: &Bound<'py, PyAny>) -> Option<f64> {
        Some(item.cast_exact::<PyFloat>().ok()?.value())
    }
    /// A C-ordered array of zeros of shape `dims`, or None (numpy's error cleared) where numpy cannot make it: rows
    /// repeated by reference (`[row] * n`) ask for far more values than the list holds, and `PyArray::zeros` panics
    /// on numpy's MemoryError (a PanicException, which `except Exception` misses); the caller's numpy path then
    /// raises numpy's own error, as before `plain_items`.
    fn zeros<'py, T: Element, D: numpy::ndarray::Dimension>(py: Python<'py>, dims: &mut [numpy::npyffi::npy_intp]) -> Option<Bound<'py, numpy::PyArray<T, D>>> {
        use numpy::PyArrayDescrMethods;
        if dims.iter().any(|&n| n < 0) {
            return None;
        }
        // SAFETY: the GIL is held (`py`); PyArray_Zeros takes the descriptor's reference that
        // into_dtype_ptr hands over and returns a new reference or NULL with an error set, which
        // from_owned_ptr_or_opt takes either way; the array it makes has dtype T and dims.len() == D's rank.
        unsafe {
            let ptr = numpy::PY_ARRAY_API.PyArray_Zeros(py, dims.len() as std::os::raw::c_int, dims.as_mut_ptr(), T::get_dtype(py).into_dtype_ptr(), 0);
            match Bound::from_owned_ptr_or_opt(py, ptr) {
                Some(array) => Some(array.cast_into_unchecked()),
                None => {
                    drop(PyErr::take(py));
                    None
                }
            }
        }
    }
    fn vector<'py, T: Element + Default + Clone>(py: Python<'py>, x: &Bound<'py, PyAny>, n: usize, read: fn(&Bound<'py, PyAny>) -> Option<T>) -> Option<Bound<'py, PyAny>> {
        let array = zeros::<T, numpy::Ix1>(py, &mut [n as numpy::npyffi::npy_intp])?;
        fill(x, array.readwrite().as_slice_mut().ok()?, read)?;
        Some(array.into_any())
    }
    fn matrix<'py, T: Element + Default + Clone>(py: Python<'py>, x: &Bound<'py, PyAny>, n: usize, d: usize, read: fn(&Bound<'py, PyAny>) -> Option<T>) -> Option<Bound<'py, PyAny>> {
        let array = zeros::<T, numpy::Ix2>(py, &mut [n as numpy::npyffi::npy_intp, d as numpy::npyffi::npy_intp])?;
        {
            let mut values = array.readwrite();
            let mut rows = values.as_slice_mut().ok()?.chunks_exact_mut(d);
            each(x, |_, row| fill(&row, rows.next()?, read))?;
        }
        Some(array.into_any())
    }

    let (n, first) = head(x)?;
    let Some(first) = first else {
        return vector::<f64>(py, x, 0, float); // numpy reads [] as float64
    };
    if first.is_exact_instance_of::<PyInt>() {
        return vector(py, x, n, int);
    }
    if first.is_exact_instance_of::<PyFloat>() {
        return vector(py, x, n, float);
    }
    // rows
    let (d, value) = head(&first)?;
    let value = value?; // numpy reads [[]] as float64 of shape (1, 0): left to it
    if value.is_exact_instance_of::<PyInt>() {
        matrix(py, x, n, d, int)
    } else {
        matrix(py, x, n, d, float)
    }
}

/// `(found, best, runner_up)` of each row of the float64 `scores [n, m]`
/// (m >= 1): the column of its largest score (with `largest=False`, its
/// smallest; the first of equal ones, as numpy's argmax), that score, and
/// the best of the other columns, in one pass with the GIL released (see
/// `grapheme_multimodal::search`).
#[pyfunction]
#[allow(clippy::type_complexity)]
fn best_two<'py>(
    py: Python<'py>,
    scores: convert::F64Array2<'py>,
    largest: bool,
) -> PyResult<(Bound<'py, numpy::PyArray1<i64>>, Bound<'py, numpy::PyArray1<f64>>, Bound<'py, numpy::PyArray1<f64>>)> {
    use numpy::IntoPyArray;
    let scores = scores.as_array();
    let cols = scores.ncols();
    if cols == 0 {
        return Err(pyo3::exceptions::PyValueError::new_err("scores: expected at least one column, got none"));
    }
    let scores = scores.as_standard_layout();
    let flat = scores.as_slice().expect("standard layout");
    let found = guard::detached(py, || Ok(grapheme_multimodal::search::best_two(flat, cols, largest)))?;
    Ok((found.found.into_pyarray(py), found.best.into_pyarray(py), found.runner_up.into_pyarray(py)))
}

/// The candidate (one of `candidates`, ascending indices of gallery rows)
/// nearest query row `row`, decided in exact arithmetic on the float64
/// values, the lowest index on a tie: the largest cosine (`cosine=True`) or
/// the smallest Euclidean distance, with the GIL released (see
/// `grapheme_multimodal::ties`). `query [n, d]` and `gallery [m, d]`
/// finite; candidates non-empty and within the gallery.
#[pyfunction]
fn exact_nearest(
    py: Python<'_>,
    query: convert::F64Array2<'_>,
    row: usize,
    gallery: convert::F64Array2<'_>,
    candidates: convert::I64Array1<'_>,
    cosine: bool,
) -> PyResult<i64> {
    use pyo3::exceptions::PyValueError;
    let (query, gallery, candidates) = (query.as_array(), gallery.as_array(), candidates.as_array());
    let cols = gallery.ncols();
    if cols == 0 || query.ncols() != cols || row >= query.nrows() {
        return Err(PyValueError::new_err(format!(
            "exact_nearest: expected query row {row} of a query with the gallery's {cols} columns (at least one), got \
             shape {:?}", query.shape())));
    }
    let rows = gallery.nrows();
    let candidates: Vec<usize> = candidates.iter().map(|&j| usize::try_from(j).ok().filter(|&j| j < rows)).collect::<Option<_>>()
        .filter(|c: &Vec<usize>| !c.is_empty())
        .ok_or_else(|| PyValueError::new_err(format!("candidates: expected gallery rows (0 to {rows}, at least one)")))?;
    let query = query.row(row).to_vec();
    if query.iter().chain(candidates.iter().flat_map(|&j| gallery.row(j))).any(|v| !v.is_finite()) {
        return Err(PyValueError::new_err("exact_nearest: expected finite values"));
    }
    let gallery = gallery.as_standard_layout();
    let flat = gallery.as_slice().expect("standard layout");
    let found = guard::detached(py, || Ok(grapheme_multimodal::ties::exact_nearest(&query, flat, cols, &candidates, cosine)))?;
    Ok(found as i64)
}

/// For each of a search block's near rows `rows` (rows of `scores [b, m]`,
/// the block of query rows from `start`): the gallery row nearest query
/// row `start + row` among those whose score is at least the row's
/// threshold (`cosine=True`; at most it for Euclidean), decided in exact
/// arithmetic on the float64 values, the lowest index on a tie; -1 where
/// no score is. GIL released (see `grapheme_multimodal::ties`). `top`: the
/// largest magnitude of the query and gallery values (the scale of the
/// Euclidean approximations). The values must be finite (the metrics
/// refuse others first; not checked here, where a check of every value
/// at each block of a search cost more than the block's decisions): others
/// give some row, never a panic. `left`: for rows of integers beyond 2^53
/// split into float64 parts (query `[h, h, l, l]` and gallery `[h, l, h, l]`
/// per value), the gallery as `[h, h, l, l]`, the left operands of `g.g`
/// (see `Ties::split`).
#[pyfunction]
#[pyo3(signature = (query, gallery, top, scores, start, rows, thresholds, cosine, left=None))]
#[allow(clippy::too_many_arguments)]
fn exact_nearest_rows<'py>(
    py: Python<'py>,
    query: convert::F64Array2<'py>,
    gallery: convert::F64Array2<'py>,
    top: f64,
    scores: convert::F64Array2<'py>,
    start: usize,
    rows: convert::I64Array1<'py>,
    thresholds: convert::F64Array1<'py>,
    cosine: bool,
    left: Option<convert::F64Array2<'py>>,
) -> PyResult<Bound<'py, numpy::PyArray1<i64>>> {
    use numpy::IntoPyArray;
    use pyo3::exceptions::PyValueError;
    let (query, gallery, scores) = (query.as_array(), gallery.as_array(), scores.as_array());
    let (thresholds, rows) = (thresholds.as_array(), rows.as_array());
    let (n, m, cols) = (query.nrows(), gallery.nrows(), gallery.ncols());
    // checked: a start near usize::MAX wrapped past the check (rows beyond the query, a panic in the core)
    let past_query = start.checked_add(scores.nrows()).is_none_or(|end| end > n);
    if cols == 0 || query.ncols() != cols || scores.ncols() != m || past_query || rows.len() != thresholds.len() {
        return Err(PyValueError::new_err(format!(
            "exact_nearest_rows: expected a query [n, d] and gallery [m, d] (d >= 1), scores [b, m] of query rows from \
             start, and a threshold per row; got query {:?}, gallery {:?}, scores {:?}, start {start}, {} rows, {} thresholds",
            query.shape(), gallery.shape(), scores.shape(), rows.len(), thresholds.len())));
    }
    let b = scores.nrows();
    let rows: Vec<usize> = rows.iter().map(|&r| usize::try_from(r).ok().filter(|&r| r < b)).collect::<Option<_>>()
        .ok_or_else(|| PyValueError::new_err(format!("rows: expected rows of the block (0 to {b})")))?;
    let left = left.as_ref().map(|l| l.as_array());
    if left.as_ref().is_some_and(|l| l.shape() != gallery.shape()) {
        return Err(PyValueError::new_err(format!(
            "exact_nearest_rows: expected left of the gallery's shape {:?}, got {:?}",
            gallery.shape(), left.as_ref().map(|l| l.shape().to_vec()))));
    }
    let (query, gallery, scores) = (query.as_standard_layout(), gallery.as_standard_layout(), scores.as_standard_layout());
    let left = left.as_ref().map(|l| l.as_standard_layout());
    let (q, g, s) = (query.as_slice().expect("standard"), gallery.as_slice().expect("standard"), scores.as_slice().expect("standard"));
    let l = left.as_ref().map(|l| l.as_slice().expect("standard"));
    let thresholds = thresholds.to_vec();
    let found = guard::detached(py, || {
        Ok(grapheme_multimodal::ties::settle_rows(q, g, l, cols, cosine, top, s, start, &rows, &thresholds))
    })?;
    Ok(found.into_iter().map(|f| f.map_or(-1, |f| f as i64)).collect::<Vec<i64>>().into_pyarray(py))
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
    m.add_function(wrap_pyfunction!(best_two, m)?)?;
    m.add_function(wrap_pyfunction!(exact_nearest, m)?)?;
    m.add_function(wrap_pyfunction!(exact_nearest_rows, m)?)?;
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
