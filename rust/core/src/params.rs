//! All parameters of a model live in one flat buffer; a [`ParamLayout`] names
//! the tensors in it. One buffer keeps the optimiser a single vectorised loop
//! and gives gradients the same layout for free.

use crate::error::{fmt_shape, Error, Result};
use crate::real::Real;
use crate::validate::all_finite;
use ndarray::{ArrayView1, ArrayView2, ArrayViewD, ArrayViewMut1, ArrayViewMut2, CowArray, Ix2, IxDyn};
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use std::ops::Range;

/// Index of one tensor in a [`ParamLayout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ParamId(pub usize);

/// How a tensor is initialised.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    Zeros,
    /// Uniform in `(-s, s)` ("DynamicXavier": `s = sqrt(2 / (fan_in + fan_out))`).
    Uniform(f64),
    /// Every entry this value (draws nothing from the stream).
    Constant(f64),
}

impl Init {
    /// The GRAPHEME protocol's initialisation for a `[fan_out, fan_in]` weight.
    pub fn xavier(fan_in: usize, fan_out: usize) -> Self {
        Init::Uniform((2.0 / (fan_in + fan_out) as f64).sqrt())
    }
}

/// One named tensor in the flat buffer.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub offset: usize,
    pub init: Init,
}

impl ParamSpec {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn range(&self) -> Range<usize> {
        self.offset..self.offset + self.len()
    }
}

/// Names, shapes and offsets of every tensor of a model, in registration order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ParamLayout {
    specs: Vec<ParamSpec>,
    len: usize,
    /// A tensor's size or the total overflowed `usize` (see [`Self::checked_len`]).
    overflowed: bool,
}

impl ParamLayout {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a tensor; returns its id. Sizes are added with checked
    /// arithmetic: a layout whose total overflows is flagged (see
    /// [`Self::checked_len`]) and must not be used.
    pub fn add(&mut self, name: impl Into<String>, shape: &[usize], init: Init) -> ParamId {
        let size = crate::memory::product(shape);
        let end = size.and_then(|n| self.len.checked_add(n));
        let spec = ParamSpec {
            name: name.into(),
            shape: shape.to_vec(),
            offset: self.len,
            init,
        };
        match end {
            Some(end) => self.len = end,
            None => self.overflowed = true,
        }
        self.specs.push(spec);
        ParamId(self.specs.len() - 1)
    }

    /// Total number of scalars.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The total number of scalars, `None` when it overflowed `usize` (a
    /// config far beyond any memory).
    pub fn checked_len(&self) -> Option<usize> {
        (!self.overflowed).then_some(self.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn specs(&self) -> &[ParamSpec] {
        &self.specs
    }

    pub fn spec(&self, id: ParamId) -> &ParamSpec {
        &self.specs[id.0]
    }

    /// The tensor called `name`, or an error listing the known names.
    pub fn find(&self, name: &str) -> Result<ParamId> {
        self.specs
            .iter()
            .position(|s| s.name == name)
            .map(ParamId)
            .ok_or_else(|| {
                Error::invalid(
                    "name",
                    format!(
                        "no parameter called {name:?}; known parameters: {}",
                        self.specs.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                )
            })
    }

    /// A fresh buffer initialised from `seed`: the same seed gives the same
    /// bits on every platform (ChaCha8 stream, drawn in layout order).
    pub fn initialize<T: Real>(&self, seed: u64) -> Vec<T> {
        self.try_initialize(seed).expect("a layout that fits in memory")
    }

    /// [`Self::initialize`], allocated fallibly: `TooLarge` when the buffer
    /// cannot be had.
    pub fn try_initialize<T: Real>(&self, seed: u64) -> Result<Vec<T>> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let len = self.checked_len().ok_or_else(|| Error::too_large("config", "the number of parameters overflows"))?;
        let mut data = crate::memory::try_zeros::<T>("config", "the parameter buffer", len)?;
        for spec in &self.specs {
            match spec.init {
                Init::Uniform(s) => {
                    for v in &mut data[spec.range()] {
                        // 24 random bits, centred in their cell: strictly inside (0, 1).
                        let u = ((rng.next_u32() >> 8) as f64 + 0.5) / (1u64 << 24) as f64;
                        *v = T::c((2.0 * u - 1.0) * s);
                    }
                }
                Init::Constant(c) => data[spec.range()].fill(T::c(c)),
                Init::Zeros => {}
            }
        }
        Ok(data)
    }

    /// Read-only views of the tensors in `data`.
    pub fn view<'a, T>(&'a self, data: &'a [T]) -> Params<'a, T> {
        debug_assert_eq!(data.len(), self.len);
        Params { layout: self, data, transposed: None }
    }

    /// Like [`Self::view`], with the transposes of the matrices at hand
    /// (`transposed` as made by [`Self::transpose_matrices_into`] from `data`).
    pub fn view_with_transposes<'a, T>(&'a self, data: &'a [T], transposed: &'a [T]) -> Params<'a, T> {
        debug_assert_eq!(data.len(), self.len);
        debug_assert_eq!(transposed.len(), self.len);
        Params { layout: self, data, transposed: Some(transposed) }
    }

    /// Stores every 2-D tensor `[rows, cols]` of `data` transposed (`[cols,
    /// rows]`, row-major) at its own offset of `out`, a buffer that may be
    /// reused (resized to the layout; its other entries are left as they
    /// are). Products `x · Wᵀ` read `Wᵀ` row by row.
    pub fn transpose_matrices_into<T: Copy + Default + 'static>(&self, data: &[T], out: &mut Vec<T>) {
        out.resize(self.len, T::default());
        for spec in self.specs.iter().filter(|s| s.shape.len() == 2) {
            let (rows, cols) = (spec.shape[0], spec.shape[1]);
            transpose(&data[spec.range()], rows, cols, &mut out[spec.range()]);
        }
    }

    /// Writable views of the tensors in `data` (e.g. a gradient buffer).
    pub fn view_mut<'a, T>(&'a self, data: &'a mut [T]) -> ParamsMut<'a, T> {
        debug_assert_eq!(data.len(), self.len);
        ParamsMut { layout: self, data }
    }
}

/// A flat buffer seen through its layout (with the transposes of its
/// matrices when the model keeps them).
#[derive(Clone, Copy)]
pub struct Params<'a, T> {
    layout: &'a ParamLayout,
    data: &'a [T],
    transposed: Option<&'a [T]>,
}

/// `dst [cols, rows] = srcᵀ` for a row-major `src [rows, cols]`, in 8 × 8
/// blocks (both sides stay in cache lines).
pub fn transpose<T: Copy + 'static>(src: &[T], rows: usize, cols: usize, dst: &mut [T]) {
    #[cfg(target_arch = "x86_64")]
    if let (Some(s), Some(d)) = (crate::kernels::as_f32(src), crate::kernels::as_f32_mut(dst)) {
        if crate::kernels::x86_ok() {
            // SAFETY: AVX2 checked; the lengths are checked inside.
            unsafe { crate::kernels::x86::transpose(s, rows, cols, d) };
            return;
        }
    }
    const B: usize = 8;
    assert!(src.len() >= rows * cols && dst.len() >= rows * cols, "transpose: buffers too short");
    for r0 in (0..rows).step_by(B) {
        let r1 = (r0 + B).min(rows);
        for c0 in (0..cols).step_by(B) {
            let c1 = (c0 + B).min(cols);
            for r in r0..r1 {
                let row = &src[r * cols + c0..r * cols + c1];
                for (c, &v) in (c0..c1).zip(row) {
                    // SAFETY: c < cols and r < rows, so c * rows + r < rows * cols <= dst.len().
                    unsafe { *dst.get_unchecked_mut(c * rows + r) = v };
                }
            }
        }
    }
}

impl<'a, T> Params<'a, T> {
    pub fn vector(&self, id: ParamId) -> ArrayView1<'a, T> {
        let spec = self.layout.spec(id);
        ArrayView1::from(&self.data[spec.range()])
    }

    /// A 2-D tensor, `[rows, cols]` row-major.
    pub fn matrix(&self, id: ParamId) -> ArrayView2<'a, T> {
        let spec = self.layout.spec(id);
        debug_assert_eq!(spec.shape.len(), 2);
        ArrayView2::from_shape((spec.shape[0], spec.shape[1]), &self.data[spec.range()])
            .expect("layout shapes match their ranges")
    }

    /// `Wᵀ` of a 2-D tensor `W [rows, cols]`: `[cols, rows]` row-major,
    /// borrowed from the model's cache when there is one, else computed.
    pub fn matrix_t(&self, id: ParamId) -> CowArray<'a, T, Ix2>
    where
        T: Copy + Default + 'static,
    {
        let spec = self.layout.spec(id);
        let (rows, cols) = (spec.shape[0], spec.shape[1]);
        match self.transposed {
            Some(t) => CowArray::from(
                ArrayView2::from_shape((cols, rows), &t[spec.range()]).expect("layout shapes match their ranges"),
            ),
            None => {
                let mut out = vec![T::default(); rows * cols];
                transpose(&self.data[spec.range()], rows, cols, &mut out);
                CowArray::from(ndarray::Array2::from_shape_vec((cols, rows), out).expect("rows × cols values"))
            }
        }
    }

    /// The bias vector `id` as a slice.
    pub fn slice(&self, id: ParamId) -> &'a [T] {
        &self.data[self.layout.spec(id).range()]
    }

    pub fn tensor(&self, id: ParamId) -> ArrayViewD<'a, T> {
        let spec = self.layout.spec(id);
        ArrayViewD::from_shape(IxDyn(&spec.shape), &self.data[spec.range()])
            .expect("layout shapes match their ranges")
    }
}

/// A writable flat buffer seen through its layout.
pub struct ParamsMut<'a, T> {
    layout: &'a ParamLayout,
    data: &'a mut [T],
}

impl<T> ParamsMut<'_, T> {
    pub fn vector(&mut self, id: ParamId) -> ArrayViewMut1<'_, T> {
        let range = self.layout.spec(id).range();
        ArrayViewMut1::from(&mut self.data[range])
    }

    pub fn matrix(&mut self, id: ParamId) -> ArrayViewMut2<'_, T> {
        let spec = self.layout.spec(id);
        let (shape, range) = ((spec.shape[0], spec.shape[1]), spec.range());
        ArrayViewMut2::from_shape(shape, &mut self.data[range]).expect("layout shapes match their ranges")
    }
}

impl<T> ParamsMut<'_, T> {
    /// Writable views of a weight matrix and a bias vector at once (two
    /// distinct tensors, so the borrows do not overlap).
    pub fn weight_and_bias(&mut self, weight: ParamId, bias: ParamId) -> (ArrayViewMut2<'_, T>, ArrayViewMut1<'_, T>) {
        let (ws, bs) = (self.layout.spec(weight), self.layout.spec(bias));
        assert!(ws.range().end <= bs.offset || bs.range().end <= ws.offset, "weight and bias must be distinct tensors");
        let shape = (ws.shape[0], ws.shape[1]);
        let (wr, br) = (ws.range(), bs.range());
        let (w, b) = if wr.start < br.start {
            let (lo, hi) = self.data.split_at_mut(br.start);
            (&mut lo[wr], &mut hi[..br.len()])
        } else {
            let (lo, hi) = self.data.split_at_mut(wr.start);
            let len = wr.len();
            (&mut hi[..len], &mut lo[br])
        };
        (
            ArrayViewMut2::from_shape(shape, w).expect("layout shapes match their ranges"),
            ArrayViewMut1::from(b),
        )
    }

}

/// Copies `values` into tensor `name` of `data` after checking shape and finiteness.
pub fn assign<T: Real>(layout: &ParamLayout, data: &mut [T], name: &str, values: ArrayViewD<T>) -> Result<()> {
    let id = checked(layout, name, &values)?;
    write(layout, data, id, &values);
    Ok(())
}

/// Copies each `(name, values)` of `tensors` into `data`, all or nothing:
/// every name, shape and value is checked (as [`assign`] checks them)
/// before the first is written, so an error leaves `data` as it was.
pub fn assign_all<T: Real>(layout: &ParamLayout, data: &mut [T], tensors: &[(&str, ArrayViewD<T>)]) -> Result<()> {
    let ids = tensors.iter().map(|(name, values)| checked(layout, name, values)).collect::<Result<Vec<_>>>()?;
    for (id, (_, values)) in ids.into_iter().zip(tensors) {
        write(layout, data, id, values);
    }
    Ok(())
}

/// The tensor `values` may be written to: `name`'s, when the shape matches
/// and every value is finite.
fn checked<T: Real>(layout: &ParamLayout, name: &str, values: &ArrayViewD<T>) -> Result<ParamId> {
    let id = layout.find(name)?;
    let spec = layout.spec(id);
    if values.shape() != spec.shape.as_slice() {
        return Err(Error::shape(name, fmt_shape(&spec.shape), fmt_shape(values.shape())));
    }
    // a C-contiguous array (every one the package passes) is checked as a slice: a walk of a
    // dynamic-rank view took ~5 ns a value, most of a weight restore's time
    if values.as_slice().is_some_and(all_finite) {
        return Ok(id);
    }
    match values.iter().position(|v| !v.is_finite()) {
        Some(i) => Err(Error::non_finite(name, format!("flat index {i}"))),
        None => Ok(id),
    }
}

/// Copies `values` (checked: [`checked`]) into tensor `id` of `data`.
fn write<T: Real>(layout: &ParamLayout, data: &mut [T], id: ParamId, values: &ArrayViewD<T>) {
    let dst = &mut data[layout.spec(id).range()];
    match values.as_slice() {
        Some(src) => dst.copy_from_slice(src),
        None => dst.iter_mut().zip(values.iter()).for_each(|(d, s)| *d = *s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> ParamLayout {
        let mut l = ParamLayout::new();
        l.add("a.weight", &[3, 4], Init::xavier(4, 3));
        l.add("a.bias", &[3], Init::Zeros);
        l
    }

    #[test]
    fn offsets_and_views() {
        let l = layout();
        assert_eq!(l.len(), 15);
        let data: Vec<f32> = (0..15).map(|i| i as f32).collect();
        let p = l.view(&data);
        assert_eq!(p.matrix(ParamId(0))[[1, 2]], 6.0);
        assert_eq!(p.vector(ParamId(1)).to_vec(), vec![12.0, 13.0, 14.0]);
        assert!(l.find("nope").unwrap_err().to_string().contains("a.weight"));
    }

    #[test]
    fn transposes_are_cached_or_computed_alike() {
        let mut l = layout();
        l.add("b.weight", &[13, 9], Init::xavier(9, 13));
        let data: Vec<f32> = l.initialize(3);
        let mut t = Vec::new();
        l.transpose_matrices_into(&data, &mut t);
        for id in [ParamId(0), ParamId(2)] {
            let direct = l.view(&data).matrix(id).t().to_owned();
            assert_eq!(l.view(&data).matrix_t(id), direct);
            assert_eq!(l.view_with_transposes(&data, &t).matrix_t(id), direct);
        }
    }

    #[test]
    fn initialisation_is_seeded_and_bounded() {
        let l = layout();
        let a: Vec<f32> = l.initialize(7);
        assert_eq!(a, l.initialize::<f32>(7));
        assert_ne!(a, l.initialize::<f32>(8));
        let s = (2.0f32 / 7.0).sqrt();
        assert!(a[..12].iter().all(|v| v.abs() < s));
        assert!(a[..12].iter().any(|v| *v != 0.0));
        assert!(a[12..].iter().all(|v| *v == 0.0));
    }

    #[test]
    fn assign_checks_shape_and_values() {
        let l = layout();
        let mut data = vec![0.0f64; l.len()];
        let ok = ndarray::Array1::from(vec![1.0, 2.0, 3.0]).into_dyn();
        assign(&l, &mut data, "a.bias", ok.view()).unwrap();
        assert_eq!(&data[12..], &[1.0, 2.0, 3.0]);
        let bad = ndarray::Array1::from(vec![1.0, 2.0]).into_dyn();
        assert!(assign(&l, &mut data, "a.bias", bad.view()).is_err());
        let nan = ndarray::Array1::from(vec![1.0, f64::NAN, 3.0]).into_dyn();
        assert!(assign(&l, &mut data, "a.bias", nan.view()).is_err());
    }

    #[test]
    fn assign_reads_strided_views_in_logical_order() {
        let l = layout();
        let mut data = vec![0.0f64; l.len()];
        let m = ndarray::Array2::from_shape_fn((4, 3), |(i, j)| (10 * i + j) as f64);
        assign(&l, &mut data, "a.weight", m.t().into_dyn()).unwrap();
        assert_eq!(&data[..12], m.t().iter().copied().collect::<Vec<_>>().as_slice());
        let mut nan = m.clone();
        nan[[1, 2]] = f64::NAN;
        let err = assign(&l, &mut data, "a.weight", nan.t().into_dyn()).unwrap_err();
        assert!(err.to_string().contains("flat index 9"), "{err}"); // [2, 1] of the transposed [3, 4] view
    }

    #[test]
    fn assign_all_checks_every_tensor_before_writing_any() {
        let l = layout();
        let mut data = vec![0.0f64; l.len()];
        let w = ndarray::Array2::<f64>::ones((3, 4)).into_dyn();
        let b = ndarray::Array1::from(vec![1.0, 2.0, 3.0]).into_dyn();
        let short = ndarray::Array1::from(vec![1.0, 2.0]).into_dyn();
        let nan = ndarray::Array1::from(vec![1.0, f64::NAN, 3.0]).into_dyn();
        for bad in [("a.bias", short.view()), ("a.bias", nan.view()), ("a.other", b.view())] {
            assert!(assign_all(&l, &mut data, &[("a.weight", w.view()), bad]).is_err());
            assert!(data.iter().all(|&v| v == 0.0), "a refused batch wrote {data:?}");
        }
        assign_all(&l, &mut data, &[("a.weight", w.view()), ("a.bias", b.view())]).unwrap();
        assert_eq!(&data[..12], &[1.0; 12]);
        assert_eq!(&data[12..], &[1.0, 2.0, 3.0]);
    }
}
