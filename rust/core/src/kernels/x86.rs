//! f32 kernels for x86-64 with AVX2 and FMA (chosen at run time): the GEMM
//! micro-kernel with its fused epilogue and a vector `exp`.
//!
//! GEMM: `C[i, j] (op)= Σ_k A(i, k) B(k, j)` for any strides of `A` (its
//! entries are broadcast from memory, so `A` is never packed: row-major
//! activations, transposed views and column strips all work in place) and
//! row-major `B` and `C` (unit column stride; `B`'s 16-wide column panels are
//! read straight from memory, which is cheap for the model's narrow `B`
//! matrices: weights `[in, out]` and embeddings `[rows, E]`). Tiles of 6 rows
//! × 16 columns keep 12 accumulators in registers; each entry's sum runs
//! over `k` in order (per K block), so a row's result does not depend on
//! which tile, chunk or thread computed it. Where the CPU has AVX-512F the
//! tiles run on zmm registers with the same sums in the same order, hence
//! the same bits: 6 rows × 32 columns (two panels, two zmm per row: 12
//! independent FMA chains, as the FMA latency × throughput needs), and
//! 6 × 16 (one zmm per row) for a last panel of 16 columns or fewer.

#![allow(clippy::too_many_arguments)]

use std::arch::x86_64::*;

/// Rows of the register tile: 6 rows × 16 columns (12 accumulators); a
/// product with a single row takes 1 row × 64 columns instead.
pub const MR: usize = 6;
/// Depth of one K block: a 6-row strip of `A` (and the `B` panel) stays in
/// L1 across the column panels.
pub const KC: usize = 256;

/// Whether this CPU has what the kernels need.
pub fn available() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
}

/// Whether this CPU also has AVX-512F (for the zmm tiles).
pub fn avx512_available() -> bool {
    available() && is_x86_feature_detected!("avx512f")
}

/// The epilogue of one GEMM, as raw parts.
#[derive(Clone, Copy)]
pub struct EpilogueF32 {
    pub alpha: f32,
    pub accumulate: bool,
    /// `n` entries, or null.
    pub bias: *const f32,
    pub leaky: bool,
    pub leaky_alpha: f32,
}

/// Lanes `< valid` set.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn lane_mask(valid: i32) -> __m256i {
    _mm256_cmpgt_epi32(_mm256_set1_epi32(valid), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
}

/// Lane masks for the first `valid` of 16 columns.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn masks(valid: usize) -> (__m256i, __m256i) {
    (lane_mask(valid as i32), lane_mask(valid as i32 - 8))
}

/// Where a tile's results go and what happens to them on the way.
struct Out<'a> {
    c: *mut f32,
    rsc: isize,
    /// Valid rows and columns of the tile.
    mr: usize,
    nr: usize,
    accumulate: bool,
    /// The bias entries of the tile's columns (or null).
    bias: *const f32,
    /// Whole epilogue (last K block) or only alpha and accumulation.
    last: bool,
    epi: &'a EpilogueF32,
}

/// Epilogue and store of one 8-lane vector of results at `dst`.
#[inline(always)]
unsafe fn store8<const FULL: bool>(mut x: __m256, dst: *mut f32, bias: *const f32, mask: __m256i, o: &Out) {
    // SAFETY: the caller (a tile, compiled with AVX2) passes `dst` (and a non-null `bias`) valid for the lanes `mask` selects, all 8 when FULL.
    unsafe {
        if o.epi.alpha != 1.0 {
            x = _mm256_mul_ps(x, _mm256_set1_ps(o.epi.alpha));
        }
        if o.accumulate {
            let old = if FULL { _mm256_loadu_ps(dst) } else { _mm256_maskload_ps(dst, mask) };
            x = _mm256_add_ps(x, old);
        }
        if o.last {
            if !bias.is_null() {
                let b = if FULL { _mm256_loadu_ps(bias) } else { _mm256_maskload_ps(bias, mask) };
                x = _mm256_add_ps(x, b);
            }
            if o.epi.leaky {
                // max(x, αx) is exactly leaky(x) for 0 < α < 1.
                x = _mm256_max_ps(x, _mm256_mul_ps(x, _mm256_set1_ps(o.epi.leaky_alpha)));
            }
        }
        if FULL {
            _mm256_storeu_ps(dst, x);
        } else {
            _mm256_maskstore_ps(dst, mask, x);
        }
    }
}

/// How a tile reads its 6 rows of `A` (the entries are broadcast one by one).
#[derive(Clone, Copy)]
enum Strip {
    /// Row-major rows (`csa = 1`): one pointer per row, each advancing by 1.
    Rows([*const f32; MR]),
    /// Column-major (`rsa = 1`): the 6 entries of one k step are adjacent;
    /// one pointer advancing by `csa`.
    Cols(*const f32, isize),
    /// Copied into an interleaved buffer (6 entries per k step).
    Packed(*const f32),
}

/// Runs `$step!(a0, …, a5)` for the `$len` k steps from `$start` of one K
/// range, with pointers to the strip's 6 entries of `A` at each step (the
/// walk shared by the AVX2 and AVX-512 6 × 16 tiles, so both read `A` the
/// same way); `$packed_offset` advances over a packed strip. Expands inside
/// the tiles' `unsafe` blocks (their SAFETY lines cover these pointers).
macro_rules! walk_strip {
    ($strip:expr, $start:expr, $len:expr, $packed_offset:ident, $step:ident) => {
        match $strip {
            Strip::Rows(rows) => {
                let [mut r0, mut r1, mut r2, mut r3, mut r4, mut r5] = rows.map(|r| r.add($start));
                for _ in 0..$len {
                    $step!(r0, r1, r2, r3, r4, r5);
                    r0 = r0.wrapping_add(1);
                    r1 = r1.wrapping_add(1);
                    r2 = r2.wrapping_add(1);
                    r3 = r3.wrapping_add(1);
                    r4 = r4.wrapping_add(1);
                    r5 = r5.wrapping_add(1);
                }
            }
            Strip::Cols(p, csa) => {
                let mut p = p.offset($start as isize * csa);
                for _ in 0..$len {
                    $step!(p, p.add(1), p.add(2), p.add(3), p.add(4), p.add(5));
                    p = p.wrapping_offset(csa);
                }
            }
            Strip::Packed(pa) => {
                let mut p = pa.add($packed_offset);
                for _ in 0..$len {
                    $step!(p, p.add(1), p.add(2), p.add(3), p.add(4), p.add(5));
                    p = p.wrapping_add(MR);
                }
                $packed_offset += $len * MR;
            }
        }
    };
}

/// The 6 × 16 tile: `b` points at `B(k0, j0)` (or its packed panel);
/// `ranges` are the k steps to run (offsets from `k0`); `LOAD_FULL` reads 16
/// values per k step of `B` unmasked (full or zero-padded panels), `FULL`
/// stores all 16 columns. Each entry is one running sum over k (FMA, in
/// order), so no tile shape, position or strip layout changes a result.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_6x16<const LOAD_FULL: bool, const FULL: bool>(ranges: &[(usize, usize)], strip: Strip, b: *const f32, rsb: isize, o: &Out) {
    // SAFETY: per `gemm`'s contract the strip's pointers address `mr` rows of A over the k ranges, `b` the panel's k rows (16 readable columns when LOAD_FULL, else `nr`), and `o.c` `mr` rows of `nr` writable columns; the loop only dereferences those (masked lanes are never read), and pointers that step past the end use wrapping arithmetic and are not dereferenced.
    unsafe {
        let (m0, m1) = masks(o.nr);
        let (mut c00, mut c01, mut c10, mut c11, mut c20, mut c21) =
            (_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps());
        let (mut c30, mut c31, mut c40, mut c41, mut c50, mut c51) =
            (_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps());
        let mut packed_offset = 0usize;
        for &(start, len) in ranges {
            let mut bp = b.offset(start as isize * rsb);
            macro_rules! step {
                ($a0:expr, $a1:expr, $a2:expr, $a3:expr, $a4:expr, $a5:expr) => {{
                    let (b0, b1) = if LOAD_FULL {
                        (_mm256_loadu_ps(bp), _mm256_loadu_ps(bp.add(8)))
                    } else {
                        // The masked lanes are not read; their addresses may lie
                        // past the matrix, hence wrapping arithmetic.
                        (_mm256_maskload_ps(bp, m0), _mm256_maskload_ps(bp.wrapping_add(8), m1))
                    };
                    let a = _mm256_broadcast_ss(&*$a0);
                    c00 = _mm256_fmadd_ps(a, b0, c00);
                    c01 = _mm256_fmadd_ps(a, b1, c01);
                    let a = _mm256_broadcast_ss(&*$a1);
                    c10 = _mm256_fmadd_ps(a, b0, c10);
                    c11 = _mm256_fmadd_ps(a, b1, c11);
                    let a = _mm256_broadcast_ss(&*$a2);
                    c20 = _mm256_fmadd_ps(a, b0, c20);
                    c21 = _mm256_fmadd_ps(a, b1, c21);
                    let a = _mm256_broadcast_ss(&*$a3);
                    c30 = _mm256_fmadd_ps(a, b0, c30);
                    c31 = _mm256_fmadd_ps(a, b1, c31);
                    let a = _mm256_broadcast_ss(&*$a4);
                    c40 = _mm256_fmadd_ps(a, b0, c40);
                    c41 = _mm256_fmadd_ps(a, b1, c41);
                    let a = _mm256_broadcast_ss(&*$a5);
                    c50 = _mm256_fmadd_ps(a, b0, c50);
                    c51 = _mm256_fmadd_ps(a, b1, c51);
                    bp = bp.wrapping_offset(rsb); // past the end after the last step
                }};
            }
            walk_strip!(strip, start, len, packed_offset, step);
        }
        let acc = [[c00, c01], [c10, c11], [c20, c21], [c30, c31], [c40, c41], [c50, c51]];
        for (i, row) in acc.iter().enumerate().take(o.mr) {
            let dst = o.c.offset(i as isize * o.rsc);
            store8::<FULL>(row[0], dst, o.bias, m0, o);
            if FULL || o.nr > 8 {
                store8::<FULL>(row[1], dst.add(8), if o.bias.is_null() { o.bias } else { o.bias.add(8) }, m1, o);
            }
        }
    }
}

/// [`tile_6x16`] with AVX-512F: each row's 16 columns are one zmm register
/// (6 accumulators), the same k order and the same single FMA per entry and
/// k step, so every result is bit-identical to [`tile_6x16`]'s. The results
/// go through the same epilogue ([`store8`], on the two 8-lane halves).
#[inline]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn tile_6x16_avx512<const LOAD_FULL: bool, const FULL: bool>(ranges: &[(usize, usize)], strip: Strip, b: *const f32, rsb: isize, o: &Out) {
    // SAFETY: as for `tile_6x16`: per `gemm`'s contract the strip's pointers address `mr` rows of A over the k ranges, `b` the panel's k rows (16 readable columns when LOAD_FULL, else `nr`), and `o.c` `mr` rows of `nr` writable columns; masked lanes are neither read nor written (AVX-512 masked loads suppress faults on them), and pointers that step past the end use wrapping arithmetic and are not dereferenced.
    unsafe {
        let (m0, m1) = masks(o.nr);
        let kmask: __mmask16 = if o.nr >= 16 { 0xFFFF } else { ((1u32 << o.nr) - 1) as __mmask16 };
        let (mut c0, mut c1, mut c2, mut c3, mut c4, mut c5) =
            (_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps());
        let mut packed_offset = 0usize;
        for &(start, len) in ranges {
            let mut bp = b.offset(start as isize * rsb);
            macro_rules! step {
                ($a0:expr, $a1:expr, $a2:expr, $a3:expr, $a4:expr, $a5:expr) => {{
                    let bv = if LOAD_FULL { _mm512_loadu_ps(bp) } else { _mm512_maskz_loadu_ps(kmask, bp) };
                    c0 = _mm512_fmadd_ps(_mm512_set1_ps(*$a0), bv, c0);
                    c1 = _mm512_fmadd_ps(_mm512_set1_ps(*$a1), bv, c1);
                    c2 = _mm512_fmadd_ps(_mm512_set1_ps(*$a2), bv, c2);
                    c3 = _mm512_fmadd_ps(_mm512_set1_ps(*$a3), bv, c3);
                    c4 = _mm512_fmadd_ps(_mm512_set1_ps(*$a4), bv, c4);
                    c5 = _mm512_fmadd_ps(_mm512_set1_ps(*$a5), bv, c5);
                    bp = bp.wrapping_offset(rsb); // past the end after the last step
                }};
            }
            walk_strip!(strip, start, len, packed_offset, step);
        }
        for (i, row) in [c0, c1, c2, c3, c4, c5].into_iter().enumerate().take(o.mr) {
            let dst = o.c.offset(i as isize * o.rsc);
            let lo = _mm512_castps512_ps256(row);
            let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(row)));
            store8::<FULL>(lo, dst, o.bias, m0, o);
            if FULL || o.nr > 8 {
                store8::<FULL>(hi, dst.add(8), if o.bias.is_null() { o.bias } else { o.bias.add(8) }, m1, o);
            }
        }
    }
}

/// Two adjacent 16-column panels at once with AVX-512F: 6 rows × 32
/// columns, two zmm accumulators per row (12 independent FMA chains, enough
/// to cover the FMA latency at two FMAs per cycle, where [`tile_6x16_avx512`]'s
/// 6 are not). `b` points at the first panel's k row 0 and `next` is the
/// offset of the second panel from the first (16 in place, `kc × 16` packed).
/// Each entry is still one running FMA sum over k in the same order, and
/// goes through the same epilogue ([`store8`], on four 8-lane quarters),
/// so every result is bit-identical to [`tile_6x16`]'s. `nr` is 17..=32.
#[inline]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn tile_6x32_avx512<const LOAD_FULL: bool, const FULL: bool>(ranges: &[(usize, usize)], strip: Strip, b: *const f32, next: isize, rsb: isize, o: &Out) {
    // SAFETY: as for `tile_6x16`: per `gemm`'s contract the strip's pointers address `mr` rows of A over the k ranges, `b` and `b + next` the two panels' k rows (16 readable columns each when LOAD_FULL, else `nr` in all, the first panel's 16 then the second's), and `o.c` `mr` rows of `nr` writable columns; masked lanes are neither read nor written (AVX-512 masked loads suppress faults on them), and pointers that step past the end use wrapping arithmetic and are not dereferenced.
    unsafe {
        let (m0, m1) = masks(o.nr);
        let (m2, m3) = masks(o.nr.saturating_sub(16));
        let kmask: __mmask16 = if o.nr >= 32 { 0xFFFF } else { ((1u32 << (o.nr - 16)) - 1) as __mmask16 };
        let (mut c00, mut c01, mut c10, mut c11, mut c20, mut c21) =
            (_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps());
        let (mut c30, mut c31, mut c40, mut c41, mut c50, mut c51) =
            (_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps());
        let mut packed_offset = 0usize;
        for &(start, len) in ranges {
            let mut bp = b.offset(start as isize * rsb);
            macro_rules! step {
                ($a0:expr, $a1:expr, $a2:expr, $a3:expr, $a4:expr, $a5:expr) => {{
                    // The first panel is always full (nr > 16); the second's
                    // masked lanes are not read.
                    let b0 = _mm512_loadu_ps(bp);
                    let b1 = if LOAD_FULL { _mm512_loadu_ps(bp.wrapping_offset(next)) } else { _mm512_maskz_loadu_ps(kmask, bp.wrapping_offset(next)) };
                    // one row: its A value broadcast, one FMA into each panel's accumulator
                    macro_rules! row {
                        ($a:expr, $lo:ident, $hi:ident) => {{
                            let a = _mm512_set1_ps(*$a);
                            $lo = _mm512_fmadd_ps(a, b0, $lo);
                            $hi = _mm512_fmadd_ps(a, b1, $hi);
                        }};
                    }
                    row!($a0, c00, c01);
                    row!($a1, c10, c11);
                    row!($a2, c20, c21);
                    row!($a3, c30, c31);
                    row!($a4, c40, c41);
                    row!($a5, c50, c51);
                    bp = bp.wrapping_offset(rsb); // past the end after the last step
                }};
            }
            walk_strip!(strip, start, len, packed_offset, step);
        }
        let acc = [[c00, c01], [c10, c11], [c20, c21], [c30, c31], [c40, c41], [c50, c51]];
        let quarter_masks = [m0, m1, m2, m3];
        for (i, row) in acc.iter().enumerate().take(o.mr) {
            let dst = o.c.offset(i as isize * o.rsc);
            for (h, &x) in row.iter().enumerate() {
                let lo = _mm512_castps512_ps256(x);
                let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(x)));
                for (q, y) in [(2 * h, lo), (2 * h + 1, hi)] {
                    if FULL || o.nr > 8 * q {
                        let bias = if o.bias.is_null() { o.bias } else { o.bias.add(8 * q) };
                        store8::<FULL>(y, dst.add(8 * q), bias, quarter_masks[q], o);
                    }
                }
            }
        }
    }
}

/// The 1 × 64 tile (one row: eight independent sums per k step, so the FMA
/// latency is hidden without splitting any sum). `a` points at `A(i0, k0)`,
/// `csa` is its k-stride.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_1x64<const FULL: bool>(ranges: &[(usize, usize)], a: *const f32, csa: isize, b: *const f32, rsb: isize, o: &Out) {
    // SAFETY: per `gemm`'s contract `a` addresses one row of A over the k ranges (stride `csa`), `b` the k rows of B with `nr` readable columns (64 when FULL), `o.c` `nr` writable columns; masked lanes are never read, and pointers past the end use wrapping arithmetic.
    unsafe {
        let mk: [__m256i; 8] = std::array::from_fn(|v| lane_mask(o.nr as i32 - 8 * v as i32));
        let (mut c0, mut c1, mut c2, mut c3) = (_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps());
        let (mut c4, mut c5, mut c6, mut c7) = (_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps());
        for &(start, len) in ranges {
            let mut bp = b.offset(start as isize * rsb);
            let mut pa = a.offset(start as isize * csa);
            for _ in 0..len {
                let a = _mm256_broadcast_ss(&*pa);
                macro_rules! lane {
                    ($acc:ident, $v:expr) => {
                        // Masked lanes past `nr` are not read (their addresses
                        // may lie past the matrix: wrapping arithmetic).
                        let bv = if FULL { _mm256_loadu_ps(bp.wrapping_add(8 * $v)) } else { _mm256_maskload_ps(bp.wrapping_add(8 * $v), mk[$v]) };
                        $acc = _mm256_fmadd_ps(a, bv, $acc);
                    };
                }
                lane!(c0, 0);
                lane!(c1, 1);
                lane!(c2, 2);
                lane!(c3, 3);
                lane!(c4, 4);
                lane!(c5, 5);
                lane!(c6, 6);
                lane!(c7, 7);
                pa = pa.wrapping_offset(csa);
                bp = bp.wrapping_offset(rsb);
            }
        }
        for (v, x) in [c0, c1, c2, c3, c4, c5, c6, c7].into_iter().enumerate() {
            if !FULL && 8 * v >= o.nr {
                break;
            }
            let bias = if o.bias.is_null() { o.bias } else { o.bias.add(8 * v) };
            store8::<FULL>(x, o.c.add(8 * v), bias, mk[v], o);
        }
    }
}

/// A short list of `(start, len)` k ranges, on the stack when it fits.
struct Ranges {
    inline: [(usize, usize); 8],
    len: usize,
    spill: Vec<(usize, usize)>,
    spilled: bool,
}

impl Ranges {
    fn new(capacity: usize) -> Self {
        let spilled = capacity > 8;
        Ranges { inline: [(0, 0); 8], len: 0, spill: if spilled { Vec::with_capacity(capacity) } else { Vec::new() }, spilled }
    }

    fn clear(&mut self) {
        self.len = 0;
        self.spill.clear();
    }

    fn push(&mut self, r: (usize, usize)) {
        if self.spilled {
            self.spill.push(r);
        } else {
            self.inline[self.len] = r;
            self.len += 1;
        }
    }

    /// Appends `[start, start + len)`, extending the last range when adjacent.
    fn push_merged(&mut self, start: usize, len: usize) {
        let last = if self.spilled { self.spill.last_mut() } else { self.inline[..self.len].last_mut() };
        match last {
            Some(r) if r.0 + r.1 == start => r.1 += len,
            _ => self.push((start, len)),
        }
    }

    fn as_slice(&self) -> &[(usize, usize)] {
        if self.spilled {
            &self.spill
        } else {
            &self.inline[..self.len]
        }
    }
}

/// Which k ranges of a row strip to run: all of them, or (with segments)
/// those where some row of the strip is nonzero.
pub struct Segments<'a> {
    /// Length of one segment of k (the last may be shorter).
    pub len: usize,
    /// `present[i * count + s]`: row `i` may be nonzero in segment `s`.
    pub present: &'a [bool],
    pub count: usize,
}

/// `C (op)= A · B` for `A [m, k]` at `a` with strides `(rsa, csa)`, `B [k, n]`
/// at `b` with row stride `rsb` (unit column stride), `C [m, n]` at `c` with
/// row stride `rsc` (unit column stride). Strips of 6 rows of `A` are read
/// in place when its rows or its columns are contiguous, else copied into a
/// small interleaved buffer; `B` is read in place. With `segments`, the k segments
/// where every row of a strip is zero are skipped (exactly: the skipped
/// products are all zero, and a running sum that starts at +0 is unchanged
/// by adding ±0).
///
/// # Safety
/// The pointers must address matrices of these shapes and strides; `C` must
/// not overlap `A`, `B` or the bias; AVX2 and FMA must be available, and
/// AVX-512F too when `wide` (the 6 × 16 tiles then run on zmm registers,
/// with bit-identical results).
#[target_feature(enable = "avx2,fma")]
pub unsafe fn gemm(
    m: usize,
    n: usize,
    k: usize,
    a: *const f32,
    rsa: isize,
    csa: isize,
    b: *const f32,
    rsb: isize,
    c: *mut f32,
    rsc: isize,
    epi: &EpilogueF32,
    segments: Option<&Segments>,
    wide: bool,
) {
    // SAFETY: the caller guarantees the pointers address matrices of these shapes and strides, `c` not overlapping the inputs (this function's contract); for k == 0 only entries `i < m`, `j < n` are touched.
    unsafe {
        if m == 0 || n == 0 {
            return;
        }
        if k == 0 {
            // The product is zero: only the epilogue remains.
            for i in 0..m {
                let row = c.offset(i as isize * rsc);
                for j in 0..n {
                    let mut x = if epi.accumulate { *row.add(j) } else { 0.0 };
                    if !epi.bias.is_null() {
                        x += *epi.bias.add(j);
                    }
                    if epi.leaky && x <= 0.0 {
                        x *= epi.leaky_alpha;
                    }
                    *row.add(j) = x;
                }
            }
            return;
        }
        thread_local! {
            static PACKED_B: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        // B is copied into 16-wide panels when several strips will read it (a
        // panel of one K block then sits contiguously in L1 whatever B's stride).
        let pack_b = m >= 4 * MR;
        let run = |packed_b: &mut Vec<f32>| gemm_blocks(m, n, k, a, rsa, csa, b, rsb, c, rsc, epi, segments, pack_b, packed_b, wide);
        if pack_b {
            PACKED_B.with(|cell| match cell.try_borrow_mut() {
                Ok(mut buf) => run(&mut buf),
                Err(_) => run(&mut Vec::new()),
            });
        } else {
            run(&mut Vec::new());
        }
    }
}

/// The K blocks, strips and panels of [`gemm`].
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
unsafe fn gemm_blocks(
    m: usize,
    n: usize,
    k: usize,
    a: *const f32,
    rsa: isize,
    csa: isize,
    b: *const f32,
    rsb: isize,
    c: *mut f32,
    rsc: isize,
    epi: &EpilogueF32,
    segments: Option<&Segments>,
    pack_b: bool,
    packed_b: &mut Vec<f32>,
    wide: bool,
) {
    // SAFETY: `gemm`'s contract holds for these pointers; strips, panels and K blocks stay within `m`, `n`, `k` (partial strips are packed, partial panels masked), and the packed buffers are sized before they are written (`reserve`, the MR × KC stack block).
    unsafe {
        const PANEL: usize = 16;
        // Written before it is read (only strips that need packing use it).
        let mut packed = std::mem::MaybeUninit::<[f32; KC * MR]>::uninit();
        let packed = packed.as_mut_ptr() as *mut f32;
        // Merged k ranges of a strip: at most one per segment (no allocation
        // for the usual few segments).
        let mut ranges = Ranges::new(segments.map_or(1, |seg| seg.count));
        let panels = n.div_ceil(PANEL);
        let mut k0 = 0;
        while k0 < k {
            let kc = KC.min(k - k0);
            let last = k0 + kc == k;
            let accumulate = epi.accumulate || k0 > 0;
            if pack_b {
                // [panel][k][16], zero-padded past n; every value written (no
                // clearing pass), 16 at a time.
                packed_b.clear();
                packed_b.reserve(panels * kc * PANEL);
                let dst0 = packed_b.as_mut_ptr();
                let (full, tail) = (n / PANEL, n % PANEL);
                let (t0, t1) = masks(tail);
                for kk in 0..kc {
                    let src = b.offset((k0 + kk) as isize * rsb);
                    for p in 0..full {
                        let (s, d) = (src.add(p * PANEL), dst0.add((p * kc + kk) * PANEL));
                        _mm256_storeu_ps(d, _mm256_loadu_ps(s));
                        _mm256_storeu_ps(d.add(8), _mm256_loadu_ps(s.add(8)));
                    }
                    if tail > 0 {
                        let (s, d) = (src.add(full * PANEL), dst0.add((full * kc + kk) * PANEL));
                        _mm256_storeu_ps(d, _mm256_maskload_ps(s, t0));
                        _mm256_storeu_ps(d.add(8), _mm256_maskload_ps(s.wrapping_add(8), t1));
                    }
                }
                // SAFETY: the loops above wrote all panels × kc × 16 values.
                packed_b.set_len(panels * kc * PANEL);
            }
            let mut i0 = 0;
            while i0 < m {
                let mr = MR.min(m - i0);
                ranges.clear();
                match segments {
                    None => ranges.push((0, kc)),
                    Some(seg) => {
                        for s in 0..seg.count {
                            let (lo, hi) = ((s * seg.len).max(k0), ((s + 1) * seg.len).min(k0 + kc));
                            if lo >= hi || !(0..mr).any(|i| seg.present[(i0 + i) * seg.count + s]) {
                                continue;
                            }
                            ranges.push_merged(lo - k0, hi - lo);
                        }
                    }
                }
                let base = a.offset(i0 as isize * rsa + k0 as isize * csa);
                let single = m == 1;
                // Rows past `mr` of a partial strip are packed as zeros (reading
                // them in place would read past the matrix); so are column-major
                // strips read by several panels (their k steps lie far apart).
                let strip = if single {
                    Strip::Packed(std::ptr::null())
                } else if csa == 1 && mr == MR {
                    Strip::Rows(std::array::from_fn(|i| base.offset(i as isize * rsa)))
                } else if rsa == 1 && mr == MR && n <= PANEL {
                    Strip::Cols(base, csa)
                } else {
                    let mut p = 0;
                    for &(start, len) in ranges.as_slice() {
                        for kk in start..start + len {
                            let col = base.offset(kk as isize * csa);
                            for i in 0..MR {
                                *packed.add(p + i) = if i < mr { *col.offset(i as isize * rsa) } else { 0.0 };
                            }
                            p += MR;
                        }
                    }
                    Strip::Packed(packed)
                };
                let bp = b.offset(k0 as isize * rsb);
                let mut j0 = 0;
                while j0 < n {
                    // AVX-512 takes two 16-column panels at once where more
                    // than one remains (the last, narrow one alone).
                    let panel = if single {
                        64
                    } else if wide && n - j0 > PANEL {
                        2 * PANEL
                    } else {
                        PANEL
                    };
                    let nr = panel.min(n - j0);
                    let o = Out {
                        c: c.offset(i0 as isize * rsc).add(j0),
                        rsc,
                        mr,
                        nr,
                        accumulate,
                        bias: if epi.bias.is_null() { epi.bias } else { epi.bias.add(j0) },
                        last,
                        epi,
                    };
                    if single {
                        if nr == panel {
                            tile_1x64::<true>(ranges.as_slice(), base, csa, bp.add(j0), rsb, &o);
                        } else {
                            tile_1x64::<false>(ranges.as_slice(), base, csa, bp.add(j0), rsb, &o);
                        }
                    } else {
                        // Packed panels are zero-padded: full-width loads, masked stores.
                        let (panel_b, rs) = if pack_b { (packed_b.as_ptr().add(j0 / PANEL * kc * PANEL), PANEL as isize) } else { (bp.add(j0), rsb) };
                        if panel == 2 * PANEL {
                            let next = if pack_b { (kc * PANEL) as isize } else { PANEL as isize };
                            match (pack_b || nr == panel, nr == panel) {
                                (true, true) => tile_6x32_avx512::<true, true>(ranges.as_slice(), strip, panel_b, next, rs, &o),
                                (true, false) => tile_6x32_avx512::<true, false>(ranges.as_slice(), strip, panel_b, next, rs, &o),
                                (false, _) => tile_6x32_avx512::<false, false>(ranges.as_slice(), strip, panel_b, next, rs, &o),
                            }
                        } else {
                            match (wide, pack_b || nr == PANEL, nr == PANEL) {
                                (true, true, true) => tile_6x16_avx512::<true, true>(ranges.as_slice(), strip, panel_b, rs, &o),
                                (true, true, false) => tile_6x16_avx512::<true, false>(ranges.as_slice(), strip, panel_b, rs, &o),
                                (true, false, _) => tile_6x16_avx512::<false, false>(ranges.as_slice(), strip, panel_b, rs, &o),
                                (false, true, true) => tile_6x16::<true, true>(ranges.as_slice(), strip, panel_b, rs, &o),
                                (false, true, false) => tile_6x16::<true, false>(ranges.as_slice(), strip, panel_b, rs, &o),
                                (false, false, _) => tile_6x16::<false, false>(ranges.as_slice(), strip, panel_b, rs, &o),
                            }
                        }
                    }
                    j0 += panel;
                }
                i0 += MR;
            }
            k0 += kc;
        }
    }
}

// ------------------------------------------------------------------ exp

/// `e^x` for 8 lanes: range reduction by `ln 2` (Cody–Waite split) and a
/// degree-6 polynomial (Cephes' `expf` coefficients), within 2 ulp of the
/// correctly rounded value on [-87.3, 88]; inputs are clamped to that range
/// (below it the result is ~1.2e-38 instead of a subnormal or 0), as the
/// portable path clamps them; NaN stays NaN.
///
/// # Safety
/// Register arithmetic only: safe to call from code compiled with AVX2 and
/// FMA; elsewhere the caller must check that the CPU has them.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub fn exp8(x: __m256) -> __m256 {
    use super::{EXP_HI, EXP_LO};
    // max/min return their second operand when either is NaN: with the
    // input second, NaN passes through the clamp (and stays NaN below), as
    // the portable path keeps it.
    let x = _mm256_min_ps(_mm256_set1_ps(EXP_HI), _mm256_max_ps(_mm256_set1_ps(EXP_LO), x));
    let fx = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(x, _mm256_set1_ps(std::f32::consts::LOG2_E)));
    let r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693_359_4), x);
    let r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.121_944_4e-4), r);
    let mut y = _mm256_set1_ps(1.987_569_1e-4);
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.398_199_9e-3));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.333_452e-3));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.166_579_6e-2));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.666_666_5e-1));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(0.5));
    let r2 = _mm256_mul_ps(r, r);
    y = _mm256_fmadd_ps(y, r2, _mm256_add_ps(r, _mm256_set1_ps(1.0)));
    // 2^fx through the exponent bits.
    let pow2 = _mm256_slli_epi32::<23>(_mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)));
    _mm256_mul_ps(y, _mm256_castsi256_ps(pow2))
}

/// `out[i] = exp(x[i] - shift)` for a slice (tails through a padded lane
/// buffer, so every element takes the same arithmetic); returns the sum of
/// the outputs in 8 interleaved partial sums added pairwise at the end.
///
/// # Safety
/// AVX2 and FMA must be available.
#[target_feature(enable = "avx2,fma")]
#[cfg(test)]
pub unsafe fn exp_shifted_sum(x: &[f32], shift: f32, out: &mut [f32]) -> f32 {
    // SAFETY: `x` and `out` have the same length (asserted); every 8-lane load and store is at an offset `8c` with `8c + 8 <= len`.
    unsafe {
        assert_eq!(x.len(), out.len(), "exp_shifted_sum: slices of different lengths");
        let s = _mm256_set1_ps(shift);
        let mut sum = _mm256_setzero_ps();
        let chunks = x.len() / 8;
        for c in 0..chunks {
            let v = exp8(_mm256_sub_ps(_mm256_loadu_ps(x.as_ptr().add(8 * c)), s));
            _mm256_storeu_ps(out.as_mut_ptr().add(8 * c), v);
            sum = _mm256_add_ps(sum, v);
        }
        let tail = x.len() - 8 * chunks;
        if tail > 0 {
            let mut buf = [0.0f32; 8];
            buf[..tail].copy_from_slice(&x[8 * chunks..]);
            let v = exp8(_mm256_sub_ps(_mm256_loadu_ps(buf.as_ptr()), s));
            _mm256_storeu_ps(buf.as_mut_ptr(), v);
            out[8 * chunks..].copy_from_slice(&buf[..tail]);
            let (keep, _) = masks(tail);
            sum = _mm256_add_ps(sum, _mm256_and_ps(v, _mm256_castsi256_ps(keep)));
        }
        hsum(sum)
    }
}

/// `exp(x - shift)` of one slice in place, adding each output to `col_sums`
/// (same length) and returning their sum: one row of a matrix whose row and
/// column sums are both wanted.
///
/// # Safety
/// AVX2 and FMA must be available.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn exp_row_col_sums(row: &mut [f32], shift: f32, col_sums: &mut [f32]) -> f32 {
    // SAFETY: `row` and `col_sums` have the same length (asserted); every 8-lane load and store is at an offset `8c` with `8c + 8 <= len`.
    unsafe {
        assert_eq!(row.len(), col_sums.len(), "exp_row_col_sums: slices of different lengths");
        let s = _mm256_set1_ps(shift);
        let mut sum = _mm256_setzero_ps();
        let chunks = row.len() / 8;
        for c in 0..chunks {
            let p = row.as_mut_ptr().add(8 * c);
            let v = exp8(_mm256_sub_ps(_mm256_loadu_ps(p), s));
            _mm256_storeu_ps(p, v);
            let cs = col_sums.as_mut_ptr().add(8 * c);
            _mm256_storeu_ps(cs, _mm256_add_ps(_mm256_loadu_ps(cs), v));
            sum = _mm256_add_ps(sum, v);
        }
        let tail = row.len() - 8 * chunks;
        if tail > 0 {
            let mut buf = [0.0f32; 8];
            buf[..tail].copy_from_slice(&row[8 * chunks..]);
            let v = exp8(_mm256_sub_ps(_mm256_loadu_ps(buf.as_ptr()), s));
            _mm256_storeu_ps(buf.as_mut_ptr(), v);
            row[8 * chunks..].copy_from_slice(&buf[..tail]);
            for (c, e) in col_sums[8 * chunks..].iter_mut().zip(&buf[..tail]) {
                *c += *e;
            }
            let (keep, _) = masks(tail);
            sum = _mm256_add_ps(sum, _mm256_and_ps(v, _mm256_castsi256_ps(keep)));
        }
        hsum(sum)
    }
}

/// The sum of 8 lanes, pairwise.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn hsum(v: __m256) -> f32 {
    let lo = _mm256_castps256_ps128(v);
    let hi = _mm256_extractf128_ps::<1>(v);
    let s = _mm_add_ps(lo, hi);
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps::<1>(s, s));
    _mm_cvtss_f32(s)
}

/// `exp(x)` of a slice, in place (same arithmetic as [`exp8`] for every element).
///
/// # Safety
/// AVX2 and FMA must be available.
#[cfg(test)]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn exp_inplace(x: &mut [f32]) {
    // SAFETY: every 8-lane load and store is at an offset `8c` with `8c + 8 <= x.len()`; the tail goes through a local buffer.
    unsafe {
        let chunks = x.len() / 8;
        for c in 0..chunks {
            let p = x.as_mut_ptr().add(8 * c);
            _mm256_storeu_ps(p, exp8(_mm256_loadu_ps(p)));
        }
        let tail = x.len() - 8 * chunks;
        if tail > 0 {
            let mut buf = [0.0f32; 8];
            buf[..tail].copy_from_slice(&x[8 * chunks..]);
            _mm256_storeu_ps(buf.as_mut_ptr(), exp8(_mm256_loadu_ps(buf.as_ptr())));
            x[8 * chunks..].copy_from_slice(&buf[..tail]);
        }
    }
}

// ------------------------------------------------------- transpose, Adam

/// `dst [cols, rows] = srcᵀ` for a row-major `src [rows, cols]`: 8 × 8
/// blocks transposed in registers, the ragged edges element by element.
///
/// # Safety
/// `src` and `dst` must hold `rows * cols` values; AVX2 must be available.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn transpose(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    // SAFETY: both slices hold `rows * cols` values (asserted); 8 × 8 blocks read rows `r0..r0 + 8 <= rows` at columns `c0..c0 + 8 <= cols` and write their transposes likewise; the edges index below `rows * cols`.
    unsafe {
        assert!(src.len() >= rows * cols && dst.len() >= rows * cols, "transpose: buffers too short");
        let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
        let (r8, c8) = (rows / 8 * 8, cols / 8 * 8);
        for r0 in (0..r8).step_by(8) {
            for c0 in (0..c8).step_by(8) {
                let l: [__m256; 8] = std::array::from_fn(|i| _mm256_loadu_ps(s.add((r0 + i) * cols + c0)));
                // Interleave pairs, then quads, then halves: the classic 8 × 8 network.
                let t0 = _mm256_unpacklo_ps(l[0], l[1]);
                let t1 = _mm256_unpackhi_ps(l[0], l[1]);
                let t2 = _mm256_unpacklo_ps(l[2], l[3]);
                let t3 = _mm256_unpackhi_ps(l[2], l[3]);
                let t4 = _mm256_unpacklo_ps(l[4], l[5]);
                let t5 = _mm256_unpackhi_ps(l[4], l[5]);
                let t6 = _mm256_unpacklo_ps(l[6], l[7]);
                let t7 = _mm256_unpackhi_ps(l[6], l[7]);
                let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
                let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
                let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
                let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
                let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
                let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
                let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
                let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
                let out = [
                    _mm256_permute2f128_ps::<0x20>(u0, u4),
                    _mm256_permute2f128_ps::<0x20>(u1, u5),
                    _mm256_permute2f128_ps::<0x20>(u2, u6),
                    _mm256_permute2f128_ps::<0x20>(u3, u7),
                    _mm256_permute2f128_ps::<0x31>(u0, u4),
                    _mm256_permute2f128_ps::<0x31>(u1, u5),
                    _mm256_permute2f128_ps::<0x31>(u2, u6),
                    _mm256_permute2f128_ps::<0x31>(u3, u7),
                ];
                for (j, v) in out.iter().enumerate() {
                    _mm256_storeu_ps(d.add((c0 + j) * rows + r0), *v);
                }
            }
        }
        // Ragged edges: the last cols % 8 columns of every row, the last rows % 8 rows.
        for r in 0..rows {
            let first = if r < r8 { c8 } else { 0 };
            for c in first..cols {
                *d.add(c * rows + r) = *s.add(r * cols + c);
            }
        }
    }
}
