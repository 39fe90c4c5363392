//! The hot kernels: matrix products with fused epilogues, batch reductions,
//! the exponential passes of the contrastive objective, and the library's
//! threads.
//!
//! Every function is generic over [`Real`]; `f32` takes hand-written AVX2 +
//! FMA code when the CPU has it (checked at run time; the GEMM's tiles on
//! AVX-512F where available, 6 × 32 and 6 × 16, bit-identical), everything else
//! (`f64`, other CPUs, unusual strides) takes portable code (matrixmultiply
//! through ndarray). Results are deterministic and do not depend on the
//! number of threads (see [`threads`]).

pub mod scratch;
pub mod threads;
#[cfg(target_arch = "x86_64")]
pub mod x86;

use crate::nn::ops::LEAKY_ALPHA;
use crate::real::Real;
use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView2, ArrayViewMut1, ArrayViewMut2, Axis};
use std::any::TypeId;

/// What happens to each entry of a product `p = a · b` before it is stored:
/// `c = leaky?(alpha · p + [c] + [bias])`.
#[derive(Clone, Copy)]
pub struct Epilogue<'a, T> {
    pub alpha: T,
    /// Add to what `c` holds (else overwrite it).
    pub accumulate: bool,
    /// One entry per column of `c`.
    pub bias: Option<&'a [T]>,
    pub leaky: bool,
}

impl<'a, T: Real> Epilogue<'a, T> {
    /// `c = a · b`.
    pub fn store() -> Self {
        Epilogue { alpha: T::one(), accumulate: false, bias: None, leaky: false }
    }

    /// `c += a · b`.
    pub fn add() -> Self {
        Epilogue { accumulate: true, ..Self::store() }
    }

    /// `c = alpha · a · b`.
    pub fn scaled(alpha: T) -> Self {
        Epilogue { alpha, ..Self::store() }
    }

    /// `c = a · b + bias`, then LeakyReLU when `leaky`.
    pub fn bias(bias: &'a [T], leaky: bool) -> Self {
        Epilogue { bias: Some(bias), leaky, ..Self::store() }
    }
}

fn is_f32<T: 'static>() -> bool {
    TypeId::of::<T>() == TypeId::of::<f32>()
}

/// Work (multiply-adds) below which a product is not split across threads:
/// about 0.2 ms on one core, well above what waking the pool costs.
const PARALLEL_MIN_MACS: usize = 1 << 24;

/// `c = epilogue(a · b)` for `a [m, k]`, `b [k, n]`, `c [m, n]` (any
/// strides; `b` and `c` row-major take the fast path). Large products are
/// split by rows across the library's threads (rows are independent, so the
/// result is the same whatever the split).
pub fn gemm<T: Real>(a: ArrayView2<T>, b: ArrayView2<T>, c: ArrayViewMut2<T>, epi: Epilogue<T>) {
    gemm_segments(a, b, c, epi, None);
}

/// Zero blocks of `a`: `a`'s columns in segments of `len`; row `i` of `a` is
/// all zero in segment `s` unless `present[i * count + s]` (`count` =
/// `ceil(k / len)`). E.g. the fusion input `[B, M·E]` of modalities absent
/// from a row.
#[derive(Clone, Copy)]
pub struct ZeroBlocks<'a> {
    pub len: usize,
    pub present: &'a [bool],
}

/// [`gemm`] skipping the products of zero blocks of `a` (exactly: the
/// result is the same as without the skipping, bit for bit).
pub fn gemm_segments<T: Real>(a: ArrayView2<T>, b: ArrayView2<T>, mut c: ArrayViewMut2<T>, epi: Epilogue<T>, zeros: Option<ZeroBlocks>) {
    let (m, k) = a.dim();
    let n = b.ncols();
    assert_eq!(b.nrows(), k, "gemm: inner dimensions differ");
    assert_eq!(c.dim(), (m, n), "gemm: output shape");
    if let Some(bias) = epi.bias {
        assert_eq!(bias.len(), n, "gemm: bias length");
    }
    let count = zeros.map_or(0, |z| k.div_ceil(z.len.max(1)));
    if let Some(z) = zeros {
        assert!(z.len > 0 && z.present.len() == m * count, "gemm: zero-block map shape");
    }
    let tasks = if m * n * k >= PARALLEL_MIN_MACS { threads::num_threads().min(m / 48).max(1) } else { 1 };
    if tasks <= 1 {
        gemm_serial(a, b, c, epi, zeros);
        return;
    }
    let rows = m.div_ceil(tasks);
    let parts: Vec<_> = a.axis_chunks_iter(Axis(0), rows).zip(c.axis_chunks_iter_mut(Axis(0), rows)).enumerate().collect();
    threads::for_each_item(parts, |(t, (a, c))| {
        let z = zeros.map(|z| ZeroBlocks { len: z.len, present: &z.present[t * rows * count..(t * rows + a.nrows()) * count] });
        gemm_serial(a, b, c, epi, z)
    });
}

/// [`gemm_segments`] on the calling thread.
pub fn gemm_serial<T: Real>(a: ArrayView2<T>, b: ArrayView2<T>, mut c: ArrayViewMut2<T>, epi: Epilogue<T>, zeros: Option<ZeroBlocks>) {
    if a.ncols() == 1 && epi.alpha == T::one() && epi.bias.is_none() && !epi.leaky {
        // A rank-1 update (e.g. a weight gradient from one row): `c (+)= a b`
        // row by row — the same roundings as the tiles (one product, then
        // one addition), without their per-tile overhead.
        #[cfg(target_arch = "x86_64")]
        if x86_ok() {
            // SAFETY: AVX2 checked.
            unsafe { rank1_avx2(a, b, c, epi.accumulate) };
            return;
        }
        rank1(a, b, c, epi.accumulate);
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if is_f32::<T>() && gemm_f32_x86(a, b, c.view_mut(), &epi, zeros) {
        return;
    }
    let _ = zeros; // the portable path multiplies the zeros too (same result)
    let beta = if epi.accumulate { T::one() } else { T::zero() };
    general_mat_mul(epi.alpha, &a, &b, beta, &mut c);
    if epi.bias.is_some() || epi.leaky {
        let alpha = T::c(LEAKY_ALPHA);
        for mut row in c.rows_mut() {
            for (j, x) in row.iter_mut().enumerate() {
                if let Some(bias) = epi.bias {
                    *x += bias[j];
                }
                if epi.leaky && *x <= T::zero() {
                    *x *= alpha;
                }
            }
        }
    }
}

/// `c (+)= a[:, 0] ⊗ b[0, :]`.
#[inline(always)]
fn rank1<T: Real>(a: ArrayView2<T>, b: ArrayView2<T>, mut c: ArrayViewMut2<T>, accumulate: bool) {
    let b = b.row(0);
    for (mut row, &x) in c.rows_mut().into_iter().zip(a.column(0)) {
        match (row.as_slice_mut(), b.as_slice()) {
            (Some(r), Some(bs)) if accumulate => r.iter_mut().zip(bs).for_each(|(c, &y)| *c += x * y),
            (Some(r), Some(bs)) => r.iter_mut().zip(bs).for_each(|(c, &y)| *c = x * y),
            _ if accumulate => row.zip_mut_with(&b, |c, &y| *c += x * y),
            _ => row.zip_mut_with(&b, |c, &y| *c = x * y),
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn rank1_avx2<T: Real>(a: ArrayView2<T>, b: ArrayView2<T>, c: ArrayViewMut2<T>, accumulate: bool) {
    rank1(a, b, c, accumulate)
}

/// The AVX2 path when it applies (f32, unit column strides of `b` and `c`).
#[cfg(target_arch = "x86_64")]
fn gemm_f32_x86<T: Real>(a: ArrayView2<T>, b: ArrayView2<T>, mut c: ArrayViewMut2<T>, epi: &Epilogue<T>, zeros: Option<ZeroBlocks>) -> bool {
    let (m, k) = a.dim();
    let n = b.ncols();
    let unit = |stride: isize, len: usize| stride == 1 || len <= 1;
    if !x86_ok() || !unit(b.strides()[1], n) || !unit(c.strides()[1], n) {
        return false;
    }
    let f = |v: T| v.to_f32().expect("f32");
    let raw = x86::EpilogueF32 {
        alpha: f(epi.alpha),
        accumulate: epi.accumulate,
        bias: epi.bias.map_or(std::ptr::null(), |b| b.as_ptr() as *const f32),
        leaky: epi.leaky,
        leaky_alpha: LEAKY_ALPHA as f32,
    };
    let segments = zeros.map(|z| x86::Segments { len: z.len, present: z.present, count: k.div_ceil(z.len) });
    let (sa, sb, rsc) = (a.strides(), b.strides(), c.strides()[0]);
    // SAFETY: T is f32 (checked by the caller); the views give valid
    // pointers and strides for these shapes; `c` is a mutable borrow, so it
    // overlaps neither `a`, `b` nor the bias.
    unsafe {
        x86::gemm(
            m,
            n,
            k,
            a.as_ptr() as *const f32,
            sa[0],
            sa[1],
            b.as_ptr() as *const f32,
            sb[0],
            c.as_mut_ptr() as *mut f32,
            rsc,
            &raw,
            segments.as_ref(),
            x86_avx512_ok(),
        );
    }
    true
}

/// Rows per task of a reduction over the batch ([`gemm_reduce_rows`],
/// [`column_sums`]): fixed, so the summation order depends only on the
/// batch size.
pub const REDUCE_ROWS: usize = 512;

/// `c += aᵀ · b` for `a [r, m]`, `b [r, n]`: a sum over the `r` rows (the
/// batch), e.g. a weight gradient `dW += dyᵀ x`. Rows are taken in fixed
/// blocks of [`REDUCE_ROWS`]; the blocks' partial products are computed in
/// parallel and added to `c` in block order.
pub fn gemm_reduce_rows<T: Real>(a: ArrayView2<T>, b: ArrayView2<T>, mut c: ArrayViewMut2<T>) {
    let r = a.nrows();
    assert_eq!(b.nrows(), r, "gemm_reduce_rows: row counts differ");
    if r <= REDUCE_ROWS {
        gemm_serial(a.t(), b, c, Epilogue::add(), None);
        return;
    }
    let blocks = r.div_ceil(REDUCE_ROWS);
    let partials = threads::map_tasks(blocks, |t| {
        let rows = t * REDUCE_ROWS..((t + 1) * REDUCE_ROWS).min(r);
        let mut p = Array2::zeros(c.dim());
        gemm_serial(a.slice(ndarray::s![rows.clone(), ..]).t(), b.slice(ndarray::s![rows, ..]), p.view_mut(), Epilogue::store(), None);
        p
    });
    for p in &partials {
        c += p;
    }
}

/// `out += Σ_rows x[row, :]` in the same fixed blocks as [`gemm_reduce_rows`].
pub fn column_sums<T: Real>(x: ArrayView2<T>, mut out: ArrayViewMut1<T>) {
    let mut partial = ndarray::Array1::<T>::zeros(x.ncols());
    for block in x.axis_chunks_iter(Axis(0), REDUCE_ROWS) {
        partial.fill(T::zero());
        for row in block.rows() {
            partial += &row;
        }
        out += &partial;
    }
}

/// Sum of squares of a slice, in 8 interleaved partial sums (vectorisable;
/// always inlined, so callers compiled for AVX2 get 8-wide code).
#[inline(always)]
pub fn sum_squares<T: Real>(x: &[T]) -> T {
    let mut acc = [T::zero(); 8];
    let chunks = x.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for l in 0..8 {
            acc[l] += c[l] * c[l];
        }
    }
    for (l, v) in tail.iter().enumerate() {
        acc[l] += *v * *v;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

/// Dot product in 8 interleaved partial sums.
#[inline(always)]
pub fn dot<T: Real>(x: &[T], y: &[T]) -> T {
    debug_assert_eq!(x.len(), y.len());
    let mut acc = [T::zero(); 8];
    let n8 = x.len() / 8 * 8;
    for (cx, cy) in x[..n8].chunks_exact(8).zip(y[..n8].chunks_exact(8)) {
        for l in 0..8 {
            acc[l] += cx[l] * cy[l];
        }
    }
    for (l, (a, b)) in x[n8..].iter().zip(&y[n8..]).enumerate() {
        acc[l] += *a * *b;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

/// Divides each row of `x` by `max(‖row‖, eps)` (a true division, as the
/// references do), writing the norms before the floor to `norms`. A row of
/// finite values whose sum of squares overflows is normalised through its
/// largest magnitude instead (its norm is then reported as `T::MAX` when it
/// exceeds it); a row holding NaN or infinity gets a NaN or infinite norm.
pub fn l2_normalize_rows_into<T: Real>(x: ArrayViewMut2<T>, norms: ArrayViewMut1<T>, eps: T) {
    #[cfg(target_arch = "x86_64")]
    if x86_ok() {
        // SAFETY: AVX2 checked.
        unsafe { l2_normalize_avx2(x, norms, eps) };
        return;
    }
    l2_normalize_pass(x, norms, eps);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn l2_normalize_avx2<T: Real>(x: ArrayViewMut2<T>, norms: ArrayViewMut1<T>, eps: T) {
    l2_normalize_pass(x, norms, eps)
}

#[inline(always)]
fn l2_normalize_pass<T: Real>(mut x: ArrayViewMut2<T>, mut norms: ArrayViewMut1<T>, eps: T) {
    for (mut row, norm) in x.rows_mut().into_iter().zip(norms.iter_mut()) {
        match row.as_slice_mut() {
            Some(s) => {
                let n = sum_squares(s).sqrt();
                if !n.is_finite() {
                    *norm = l2_normalize_scaled(ArrayViewMut1::from(s), eps);
                    continue;
                }
                *norm = n;
                let d = n.max(eps);
                s.iter_mut().for_each(|v| *v /= d);
            }
            None => {
                let n = row.iter().map(|v| *v * *v).sum::<T>().sqrt();
                if !n.is_finite() {
                    *norm = l2_normalize_scaled(row, eps);
                    continue;
                }
                *norm = n;
                let d = n.max(eps);
                row.mapv_inplace(|v| v / d);
            }
        }
    }
}

/// The rare path of [`l2_normalize_rows_into`]: a row whose squares
/// overflow, divided by its largest magnitude `a` first (`v/‖v‖ =
/// (v/a)/‖v/a‖`). Returns the norm, capped at `T::MAX`; NaN (and the row
/// left as it is) when the row holds NaN or infinity.
#[cold]
fn l2_normalize_scaled<T: Real>(mut row: ArrayViewMut1<T>, eps: T) -> T {
    let a = row.iter().fold(T::zero(), |a, v| a.max(v.abs()));
    if !(a.is_finite() && row.iter().all(|v| v.is_finite())) {
        return T::nan();
    }
    let scaled = row.iter().map(|v| (*v / a) * (*v / a)).fold(T::zero(), |s, x| s + x).sqrt();
    let norm = a * scaled;
    let norm = if norm.is_finite() { norm } else { T::max_value() };
    let d = if norm > eps { scaled } else { eps / a };
    row.mapv_inplace(|v| v / a / d);
    norm
}

/// `exp(x − shift)` of a slice into `out`; returns the sum of the outputs.
#[cfg(test)]
pub(crate) fn exp_shifted_sum<T: Real>(x: &[T], shift: T, out: &mut [T]) -> T {
    assert_eq!(x.len(), out.len(), "exp_shifted_sum: slices of different lengths");
    #[cfg(target_arch = "x86_64")]
    if let (true, Some(x), Some(out)) = (x86_ok(), as_f32(x), as_f32_mut(out)) {
        // SAFETY: AVX2/FMA checked; the lengths are equal (asserted above).
        return T::c(unsafe { x86::exp_shifted_sum(x, shift.to_f32().expect("f32"), out) } as f64);
    }
    let mut sum = T::zero();
    for (o, v) in out.iter_mut().zip(x) {
        *o = exp_portable(*v - shift);
        sum += *o;
    }
    sum
}

/// `row ← exp(row − shift)` in place, each output added to `col_sums`
/// (same length); returns the row's sum. NaN stays NaN on every path.
pub fn exp_row_col_sums<T: Real>(row: &mut [T], shift: T, col_sums: &mut [T]) -> T {
    assert_eq!(row.len(), col_sums.len(), "exp_row_col_sums: slices of different lengths");
    #[cfg(target_arch = "x86_64")]
    if let (true, Some(row), Some(col_sums)) = (x86_ok(), as_f32_mut(row), as_f32_mut(col_sums)) {
        // SAFETY: AVX2/FMA checked; the lengths are equal (asserted above).
        return T::c(unsafe { x86::exp_row_col_sums(row, shift.to_f32().expect("f32"), col_sums) } as f64);
    }
    let mut sum = T::zero();
    for (v, c) in row.iter_mut().zip(col_sums.iter_mut()) {
        *v = exp_portable(*v - shift);
        *c += *v;
        sum += *v;
    }
    sum
}

/// `exp` of a slice in place.
#[cfg(test)]
pub(crate) fn exp_inplace<T: Real>(x: &mut [T]) {
    #[cfg(target_arch = "x86_64")]
    if let (true, Some(x)) = (x86_ok(), as_f32_mut(x)) {
        // SAFETY: AVX2/FMA checked.
        unsafe { x86::exp_inplace(x) };
        return;
    }
    for v in x {
        *v = exp_portable(*v);
    }
}

/// `e^x` off the AVX2 path. For `f32` the input is first clamped to
/// [`EXP_LO`, `EXP_HI`] as the AVX2 kernel clamps it, so both paths agree on
/// every input: NaN stays NaN, `±inf` and values beyond the range saturate
/// alike, and in range the results differ by at most 2 ulp (the kernel's
/// polynomial against the system's `expf`). `f64` takes the system's `exp`.
#[inline(always)]
fn exp_portable<T: Real>(x: T) -> T {
    match x.to_f32() {
        Some(v) if is_f32::<T>() => T::c(v.clamp(EXP_LO, EXP_HI).exp() as f64),
        _ => x.exp(),
    }
}

/// The input range of the f32 `exp` (within 2 ulp there); inputs beyond it
/// saturate at its ends: `e^88 ≈ 1.65e38`, `e^-87.34 ≈ 1.2e-38` (the
/// smallest normal float). The softmax inputs it serves are `≤ 0`.
pub const EXP_LO: f32 = -87.33654;
pub const EXP_HI: f32 = 88.0;

/// `x` as `&[f32]` when `T` is `f32`.
pub fn as_f32<T: 'static>(x: &[T]) -> Option<&[f32]> {
    // SAFETY: same type, checked by its TypeId.
    is_f32::<T>().then(|| unsafe { std::slice::from_raw_parts(x.as_ptr() as *const f32, x.len()) })
}

/// `x` as `&mut [f32]` when `T` is `f32`.
pub fn as_f32_mut<T: 'static>(x: &mut [T]) -> Option<&mut [f32]> {
    // SAFETY: same type, checked by its TypeId.
    is_f32::<T>().then(|| unsafe { std::slice::from_raw_parts_mut(x.as_mut_ptr() as *mut f32, x.len()) })
}

/// The environment variable that, set to `1` (or `true`, `yes`, `on`),
/// makes the library use its portable kernels even where AVX2 is
/// available (read once, at the first computation).
pub const PORTABLE_ENV: &str = "GRAPHEME_MM_PORTABLE";

/// Whether the environment variable `name` is set to `1`, `true`, `yes` or `on`.
fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
}

/// Whether [`PORTABLE_ENV`] asks for the portable kernels.
pub fn portable_forced() -> bool {
    use std::sync::OnceLock;
    static FORCED: OnceLock<bool> = OnceLock::new();
    *FORCED.get_or_init(|| env_flag(PORTABLE_ENV))
}

/// Whether the AVX2 + FMA kernels run here: the CPU has them and
/// [`PORTABLE_ENV`] does not ask for the portable ones.
#[cfg(target_arch = "x86_64")]
pub fn x86_ok() -> bool {
    use std::sync::OnceLock;
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| x86::available() && !portable_forced())
}

/// The environment variable that, set to `1` (or `true`, `yes`, `on`),
/// keeps the matrix tiles on AVX2 even where AVX-512F is available (read
/// once, at the first computation). The results are the same bits either way.
pub const NO_AVX512_ENV: &str = "GRAPHEME_MM_NO_AVX512";

/// Whether [`NO_AVX512_ENV`] asks to leave AVX-512 unused.
pub fn no_avx512_forced() -> bool {
    use std::sync::OnceLock;
    static FORCED: OnceLock<bool> = OnceLock::new();
    *FORCED.get_or_init(|| env_flag(NO_AVX512_ENV))
}

/// Whether the GEMM's tiles run on AVX-512F (6 × 32 and 6 × 16 on zmm
/// registers; the same sums in the same order as the AVX2 tiles, so the
/// same bits): the AVX2 kernels run, the CPU has AVX-512F, and
/// [`NO_AVX512_ENV`] does not say no.
#[cfg(target_arch = "x86_64")]
pub fn x86_avx512_ok() -> bool {
    use std::sync::OnceLock;
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| x86_ok() && x86::avx512_available() && !no_avx512_forced())
}

/// Which kernels run here: `"avx512"` (the AVX2 kernels with the GEMM's
/// tiles on AVX-512F), `"avx2"` or `"portable"`.
pub fn kernel_path() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    if x86_avx512_ok() {
        return "avx512";
    }
    #[cfg(target_arch = "x86_64")]
    if x86_ok() {
        return "avx2";
    }
    "portable"
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{s, Array1};

    fn lcg(seed: u64) -> impl FnMut() -> f64 {
        let mut state = seed;
        move || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        }
    }

    /// The f32 fast path against an f64 reference, over shapes with every
    /// kind of remainder (rows mod 6, columns mod 16, K blocks), strided and
    /// transposed `a`, and every epilogue.
    #[test]
    fn gemm_f32_matches_f64_reference() {
        let mut next = lcg(1);
        for &(m, k, n) in &[(1, 1, 1), (7, 18, 64), (13, 300, 17), (6, 16, 16), (64, 448, 64), (5, 3, 130), (33, 520, 40), (2, 0, 5)] {
            let a64 = Array2::from_shape_simple_fn((m, k), &mut next);
            let at64 = Array2::from_shape_simple_fn((k, m), &mut next); // used transposed
            let b64 = Array2::from_shape_simple_fn((k, n), &mut next);
            let c064 = Array2::from_shape_simple_fn((m, n), &mut next);
            let bias64 = Array1::from_shape_simple_fn(n, &mut next);
            let (a, at, b, c0, bias) = (a64.mapv(|v| v as f32), at64.mapv(|v| v as f32), b64.mapv(|v| v as f32), c064.mapv(|v| v as f32), bias64.mapv(|v| v as f32));
            for (label, lhs32, lhs64) in [("rows", a.view(), a64.view()), ("transposed", at.t(), at64.t())] {
                for mode in 0..4 {
                    let (e32, e64) = match mode {
                        0 => (Epilogue::store(), Epilogue::store()),
                        1 => (Epilogue::add(), Epilogue::add()),
                        2 => (Epilogue::scaled(0.5f32), Epilogue::scaled(0.5f64)),
                        _ => (Epilogue::bias(bias.as_slice().unwrap(), true), Epilogue::bias(bias64.as_slice().unwrap(), true)),
                    };
                    let mut c32 = c0.clone();
                    gemm(lhs32, b.view(), c32.view_mut(), e32);
                    let mut c64 = c064.clone();
                    gemm(lhs64, b64.view(), c64.view_mut(), e64);
                    let tol = 1e-5 * (k as f64).sqrt().max(1.0) * 4.0;
                    for (x, y) in c32.iter().zip(c64.iter()) {
                        assert!((*x as f64 - y).abs() <= tol, "{label} mode {mode} ({m},{k},{n}): {x} vs {y}");
                    }
                }
            }
        }
    }

    /// The AVX-512 tiles (6 × 32 and 6 × 16) against the AVX2 tiles, bit
    /// for bit, and both against the portable path within float tolerance:
    /// every kind of remainder (rows mod 6, columns mod 16 and mod 32, K
    /// blocks of 256), row-major, column-major and strided (packed) `a`,
    /// packed and in-place `b`, a strided `c` (whose columns past `n` stay
    /// untouched), zero-block skipping, and every epilogue.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn gemm_avx512_tiles_match_avx2_bit_for_bit() {
        if !x86::avx512_available() {
            eprintln!("skipped: this CPU has no AVX-512F");
            return;
        }
        let mut next = lcg(7);
        let mut checked = 0;
        // Columns: 16 (one 6 × 16 tile), 17..=32 (one 6 × 32, masked or
        // full), 32 + 1..=16 (a 6 × 32 then a narrow 6 × 16), …; rows < 24
        // read `b` in place, ≥ 24 pack it.
        let shapes = [
            (1, 1, 1),
            (2, 5, 3),
            (6, 16, 16),
            (7, 18, 64),
            (13, 300, 17),
            (5, 3, 130),
            (24, 257, 31),
            (25, 33, 16),
            (33, 520, 40),
            (64, 448, 64),
            (97, 64, 200),
            (130, 1, 9),
            (8, 0, 5),
            (6, 20, 32),
            (12, 40, 33),
            (11, 9, 47),
            (18, 70, 48),
            (23, 260, 95),
            (24, 31, 32),
            (30, 70, 33),
            (26, 16, 48),
            (50, 300, 100),
            (41, 12, 127),
            (36, 5, 129),
        ];
        for &(m, k, n) in &shapes {
            let a = Array2::from_shape_simple_fn((m, k), || next() as f32);
            let at = Array2::from_shape_simple_fn((k, m), || next() as f32); // column-major view
            let wide_a = Array2::from_shape_simple_fn((m, 2 * k + 1), || next() as f32); // strided rows and columns
            let b = Array2::from_shape_simple_fn((k, n), || next() as f32);
            let wide_b = Array2::from_shape_simple_fn((k, n + 5), || next() as f32); // row stride > n
            let c_wide = Array2::from_shape_simple_fn((m, n + 3), || next() as f32);
            let bias: Vec<f32> = (0..n).map(|_| next() as f32).collect();
            let strided = wide_a.slice(s![.., ..2 * k;2]);
            let seg = 16;
            let count = k.div_ceil(seg);
            let present: Vec<bool> = (0..m * count).map(|i| (i * 5 + i / count.max(1)) % 3 != 0).collect();
            for (label, lhs) in [("rows", a.view()), ("cols", at.t()), ("strided", strided)] {
                for (blabel, rhs) in [("b", b.view()), ("b-strided", wide_b.slice(s![.., ..n]))] {
                    for mode in 0..5 {
                        // `c` with row stride n + 3 on odd modes.
                        let rsc = n + 3 * (mode % 2);
                        let c0 = c_wide.slice(s![.., ..rsc]).to_owned();
                        let epi = match mode {
                            0 => Epilogue::store(),
                            1 => Epilogue::add(),
                            2 => Epilogue::scaled(0.5f32),
                            3 => Epilogue::bias(&bias, true),
                            _ => Epilogue::bias(&bias, false),
                        };
                        for zeros in [false, true] {
                            let raw = x86::EpilogueF32 {
                                alpha: epi.alpha,
                                accumulate: epi.accumulate,
                                bias: epi.bias.map_or(std::ptr::null(), |b| b.as_ptr()),
                                leaky: epi.leaky,
                                leaky_alpha: LEAKY_ALPHA as f32,
                            };
                            let run = |wide: bool, out: &mut Array2<f32>| {
                                let (sa, sb) = (lhs.strides(), rhs.strides());
                                // SAFETY: AVX2, FMA and AVX-512F checked above; the views give
                                // valid pointers and strides for these shapes, `out` is owned.
                                unsafe {
                                    x86::gemm(m, n, k, lhs.as_ptr(), sa[0], sa[1], rhs.as_ptr(), sb[0], out.as_mut_ptr(), rsc as isize, &raw, None, wide)
                                };
                            };
                            // Zero blocks are only skipped where `a` is zero there.
                            let lhs_owned = if zeros && k > 0 {
                                let mut z = lhs.to_owned();
                                for i in 0..m {
                                    for s_ in 0..count {
                                        if !present[i * count + s_] {
                                            z.slice_mut(s![i, s_ * seg..((s_ + 1) * seg).min(k)]).fill(0.0);
                                        }
                                    }
                                }
                                Some(z)
                            } else {
                                None
                            };
                            if zeros && k > 0 {
                                // On the zeroed copy, skipping its zero blocks.
                                let z = lhs_owned.as_ref().unwrap();
                                let raw_run = |wide: bool, out: &mut Array2<f32>| {
                                    let segments = x86::Segments { len: seg, present: &present, count };
                                    let sb = rhs.strides();
                                    // SAFETY: as above, on the owned row-major copy `z`.
                                    unsafe { x86::gemm(m, n, k, z.as_ptr(), k as isize, 1, rhs.as_ptr(), sb[0], out.as_mut_ptr(), rsc as isize, &raw, Some(&segments), wide) };
                                };
                                let (mut w, mut v) = (c0.clone(), c0.clone());
                                raw_run(true, &mut w);
                                raw_run(false, &mut v);
                                assert!(w.iter().zip(v.iter()).all(|(x, y)| x.to_bits() == y.to_bits()), "zero blocks {label}/{blabel} mode {mode} ({m},{k},{n})");
                                assert_eq!(w.slice(s![.., n..]), c0.slice(s![.., n..]), "zero blocks {label}/{blabel} mode {mode} ({m},{k},{n}): wrote past n");
                                checked += 1;
                                continue;
                            }
                            let (mut w, mut v) = (c0.clone(), c0.clone());
                            run(true, &mut w);
                            run(false, &mut v);
                            assert!(w.iter().zip(v.iter()).all(|(x, y)| x.to_bits() == y.to_bits()), "{label}/{blabel} mode {mode} ({m},{k},{n}): AVX-512 and AVX2 differ");
                            assert_eq!(w.slice(s![.., n..]), c0.slice(s![.., n..]), "{label}/{blabel} mode {mode} ({m},{k},{n}): wrote past n");
                            // And both against the portable product (matrixmultiply), within rounding.
                            let w = w.slice(s![.., ..n]);
                            let mut p = c0.slice(s![.., ..n]).to_owned();
                            let beta = if epi.accumulate { 1.0 } else { 0.0 };
                            general_mat_mul(epi.alpha, &lhs, &rhs, beta, &mut p);
                            for mut row in p.rows_mut() {
                                for (j, x) in row.iter_mut().enumerate() {
                                    if let Some(bias) = epi.bias {
                                        *x += bias[j];
                                    }
                                    if epi.leaky && *x <= 0.0 {
                                        *x *= LEAKY_ALPHA as f32;
                                    }
                                }
                            }
                            let tol = 1e-5 * (k as f32).sqrt().max(1.0) * 4.0;
                            for (x, y) in w.iter().zip(p.iter()) {
                                assert!((x - y).abs() <= tol, "{label}/{blabel} mode {mode} ({m},{k},{n}): {x} vs portable {y}");
                            }
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(checked, shapes.len() * 3 * 2 * 5 * 2);
    }

    #[test]
    fn gemm_handles_strided_outputs_and_is_split_invariant() {
        // Writing into a column strip of a wider matrix (unit column stride,
        // row stride > n): the rest of the matrix is untouched.
        let mut next = lcg(2);
        let a = Array2::from_shape_simple_fn((300, 96), || next() as f32);
        let b = Array2::from_shape_simple_fn((96, 64), || next() as f32);
        let mut wide = Array2::<f32>::from_elem((300, 7 * 64), 9.0);
        gemm(a.view(), b.view(), wide.slice_mut(s![.., 128..192]), Epilogue::store());
        assert!(wide.slice(s![.., ..128]).iter().all(|&v| v == 9.0));
        assert!(wide.slice(s![.., 192..]).iter().all(|&v| v == 9.0));
        // Row by row (one row per call) gives the same bits as the whole.
        for r in [0, 5, 6, 299] {
            let mut one = Array2::<f32>::zeros((1, 64));
            gemm(a.slice(s![r..r + 1, ..]), b.view(), one.view_mut(), Epilogue::store());
            assert_eq!(one.row(0), wide.slice(s![r, 128..192]));
        }
    }

    #[test]
    fn skipping_zero_blocks_is_exact() {
        let mut next = lcg(4);
        let (m, seg, count, n) = (37, 64, 7, 64);
        let present: Vec<bool> = (0..m * count).map(|i| (i * 7 + i / count) % 3 != 0).collect();
        let mut a = Array2::from_shape_simple_fn((m, seg * count), || next() as f32);
        for i in 0..m {
            for s_ in 0..count {
                if !present[i * count + s_] {
                    a.slice_mut(s![i, s_ * seg..(s_ + 1) * seg]).fill(0.0);
                }
            }
        }
        let b = Array2::from_shape_simple_fn((seg * count, n), || next() as f32);
        let bias: Vec<f32> = (0..n).map(|_| next() as f32).collect();
        let mut full = Array2::zeros((m, n));
        gemm(a.view(), b.view(), full.view_mut(), Epilogue::bias(&bias, true));
        let mut skipped = Array2::zeros((m, n));
        gemm_segments(a.view(), b.view(), skipped.view_mut(), Epilogue::bias(&bias, true), Some(ZeroBlocks { len: seg, present: &present }));
        assert_eq!(full, skipped);
    }

    #[test]
    fn reductions_over_rows() {
        let mut next = lcg(3);
        let a = Array2::from_shape_simple_fn((1500, 10), &mut next);
        let b = Array2::from_shape_simple_fn((1500, 7), &mut next);
        let mut c = Array2::from_elem((10, 7), 1.0);
        gemm_reduce_rows(a.view(), b.view(), c.view_mut());
        let expect = a.t().dot(&b) + 1.0;
        assert!((&c - &expect).iter().all(|d| d.abs() < 1e-10));
        let mut sums = Array1::from_elem(7, 2.0);
        column_sums(b.view(), sums.view_mut());
        assert!((&sums - &(b.sum_axis(Axis(0)) + 2.0)).iter().all(|d| d.abs() < 1e-10));
    }

    #[test]
    fn exp_kernels_match_libm() {
        let xs: Vec<f32> = (0..203).map(|i| -84.0 + i as f32 * 0.85).collect();
        let mut out = vec![0.0f32; xs.len()];
        let sum = exp_shifted_sum(&xs, 1.5, &mut out);
        let mut total = 0.0f64;
        for (x, y) in xs.iter().zip(&out) {
            let want = ((*x - 1.5) as f64).exp();
            assert!(((*y as f64) - want).abs() <= 3e-7 * want, "exp({x} - 1.5) = {y}, want {want}");
            total += *y as f64;
        }
        assert!((sum as f64 - total).abs() <= 1e-6 * total);
        let mut row = xs.clone();
        let mut cols = vec![1.0f32; xs.len()];
        let s = exp_row_col_sums(&mut row, 1.5, &mut cols);
        assert_eq!(row, out, "both passes compute the same exponentials");
        assert_eq!(s, sum);
        assert!(cols.iter().zip(&out).all(|(c, o)| *c == 1.0 + *o));
        let mut inplace: Vec<f32> = xs.iter().map(|x| x - 1.5).collect();
        exp_inplace(&mut inplace);
        assert_eq!(inplace, out);
    }

    /// Both `exp` paths give the same answer for every input: NaN stays NaN,
    /// infinities and values beyond the range saturate alike, and in range
    /// they agree within 2 ulp.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn exp_paths_agree_on_every_input() {
        if !x86::available() {
            return;
        }
        let mut xs = vec![f32::NAN, -f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 88.0, 88.7, 89.0, 1e30, -87.3, -87.4, -104.0, -1e30, 0.0, -0.0, f32::MIN_POSITIVE];
        xs.extend((0..2000).map(|i| -100.0 + i as f32 * 0.0951));
        for chunk in xs.chunks(8) {
            let mut lanes = [0.0f32; 8];
            lanes[..chunk.len()].copy_from_slice(chunk);
            let mut avx = [0.0f32; 8];
            // SAFETY: AVX2 and FMA are available (checked above); `lanes` and
            // `avx` hold 8 floats each.
            unsafe { std::arch::x86_64::_mm256_storeu_ps(avx.as_mut_ptr(), x86::exp8(std::arch::x86_64::_mm256_loadu_ps(lanes.as_ptr()))) };
            for (&x, &a) in chunk.iter().zip(&avx) {
                let p = exp_portable(x);
                let same = (p.is_nan() && a.is_nan()) || (p - a).abs() <= 3e-7 * p.abs();
                assert!(same, "exp({x}): AVX2 {a}, portable {p}");
            }
        }
    }

    #[test]
    fn rows_whose_squares_overflow_are_normalised() {
        let mut m = Array2::from_shape_vec((3, 2), vec![3e30f32, 4e30, 3e38, 3e38, f32::NAN, 1.0]).unwrap();
        let mut norms = Array1::zeros(3);
        l2_normalize_rows_into(m.view_mut(), norms.view_mut(), 1e-8);
        assert!((m[[0, 0]] - 0.6).abs() < 1e-6 && (m[[0, 1]] - 0.8).abs() < 1e-6, "{m}");
        assert!((norms[0] / 5e30 - 1.0).abs() < 1e-6);
        assert!((m[[1, 0]] - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
        assert_eq!(norms[1], f32::MAX, "a norm beyond float32 is reported as its largest value");
        assert!(norms[2].is_nan(), "a row holding NaN keeps a NaN norm");
    }

    #[test]
    #[should_panic(expected = "different lengths")]
    fn exp_row_col_sums_checks_lengths() {
        exp_row_col_sums(&mut [0.0f32; 16], 0.0, &mut [0.0f32; 9]);
    }

    #[test]
    fn sums_and_norms() {
        let x: Vec<f64> = (0..21).map(|i| i as f64 - 10.0).collect();
        assert_eq!(sum_squares(&x), x.iter().map(|v| v * v).sum::<f64>());
        assert_eq!(dot(&x, &x), sum_squares(&x));
        let mut m = Array2::from_shape_vec((2, 2), vec![3.0f64, 4.0, 0.0, 0.0]).unwrap();
        let mut norms = Array1::zeros(2);
        l2_normalize_rows_into(m.view_mut(), norms.view_mut(), 1e-8);
        assert_eq!(norms.to_vec(), vec![5.0, 0.0]);
        assert_eq!(m.row(0).to_vec(), vec![0.6, 0.8]);
    }
}
