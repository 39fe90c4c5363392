//! Near ties of a nearest-neighbour search decided in exact arithmetic: the
//! candidate gallery rows whose float64 scores lie within rounding of a
//! query's best (`cross_view_retrieval`'s exact-tie rule), ordered on the
//! rows' values as given, the lowest index on a tie.
//!
//! Every finite float64 is an integer significand times a power of two, so
//! each sum the order needs (`q.g`, `g.g`, `|g|^2 - 2 q.g`) is an integer
//! times the power of two of its smallest term: it is summed exactly in a
//! fixed-point accumulator of 64-bit limbs as wide as the terms' range of
//! exponents (a few limbs for timestamps beside small features; about 70
//! for 1e300 beside 1e-300). No crate for big integers: the sums only add
//! shifted 106-bit products, and the cosine comparison needs one product of
//! three such numbers a side, whose zero limbs (the long runs between the
//! huge and the tiny parts of a row) are skipped.
//!
//! A double-double pass first ([`Approx`]) decides every comparison whose
//! sign its rigorous error bound makes certain (rows a timestamp dominates
//! differ from the best in the 70th bit of the sums, which float64 rounds
//! away but 106 bits keep); only the others, exact ties and rows whose
//! differences lie below even that (1e300 beside 1e-300), are summed exactly.

/// `x = (-1)^neg * m * 2^e` for a finite float64 (`m < 2^53`; 0 for ±0).
#[derive(Debug, Clone, Copy)]
struct Parts {
    neg: bool,
    m: u64,
    e: i32,
}

fn parts(x: f64) -> Parts {
    let bits = x.to_bits();
    let neg = bits >> 63 == 1;
    let biased = ((bits >> 52) & 0x7ff) as i32;
    let frac = bits & ((1u64 << 52) - 1);
    if biased == 0 {
        Parts { neg, m: frac, e: -1074 } // subnormal (or zero)
    } else {
        Parts { neg, m: frac | (1u64 << 52), e: biased - 1075 }
    }
}

/// The smallest and largest exponent of the nonzero values of `xs`, `None` when all are zero.
fn exponent_range(xs: impl Iterator<Item = Parts>) -> Option<(i32, i32)> {
    xs.filter(|p| p.m != 0).fold(None, |r, p| match r {
        None => Some((p.e, p.e)),
        Some((lo, hi)) => Some((lo.min(p.e), hi.max(p.e))),
    })
}

/// `limbs += words` (`SUB`: `-=`), the carry (borrow) run on past the three words only as far as it goes.
fn propagate<const SUB: bool>(limbs: &mut [u64], words: [u64; 3]) {
    let mut carry = false;
    for (k, limb) in limbs.iter_mut().enumerate() {
        let w = if k < 3 { words[k] } else { 0 };
        if k >= 3 && !carry {
            break;
        }
        let step = |a: u64, b: u64| if SUB { a.overflowing_sub(b) } else { a.overflowing_add(b) };
        let (r, c1) = step(*limb, w);
        let (r, c2) = step(r, carry as u64);
        *limb = r;
        carry = c1 || c2;
    }
}

/// A fixed-point two's complement integer of `limbs.len()` 64-bit limbs
/// (least significant first), wide enough for every sum it is given.
#[derive(Debug, Clone)]
struct Fixed {
    limbs: Vec<u64>,
}

impl Fixed {
    fn zero(len: usize) -> Self {
        Fixed { limbs: vec![0; len] }
    }

    fn clear(&mut self) {
        self.limbs.fill(0);
    }

    /// Adds (or with `negative` subtracts) `v * 2^shift`; `shift / 64 + 3` limbs must fit.
    fn add(&mut self, v: u128, shift: usize, negative: bool) {
        if v == 0 {
            return;
        }
        let (at, bit) = (shift / 64, (shift % 64) as u32);
        let low = v << bit;
        let top = if bit == 0 { 0 } else { (v >> (128 - bit)) as u64 };
        let words = [low as u64, (low >> 64) as u64, top];
        let limbs = &mut self.limbs[at..];
        if negative {
            propagate::<true>(limbs, words);
        } else {
            propagate::<false>(limbs, words);
        }
    }

    fn is_negative(&self) -> bool {
        self.limbs.last().is_some_and(|&l| l >> 63 == 1)
    }

    /// The signed order of two integers of the same length.
    fn cmp_signed(&self, other: &Fixed) -> std::cmp::Ordering {
        let (a, b) = (self.is_negative(), other.is_negative());
        if a != b {
            return if a { std::cmp::Ordering::Less } else { std::cmp::Ordering::Greater };
        }
        cmp_unsigned(&self.limbs, &other.limbs) // two's complement of one sign orders as unsigned
    }
}

/// The order of two unsigned integers given as limbs, least significant first (any lengths).
fn cmp_unsigned(a: &[u64], b: &[u64]) -> std::cmp::Ordering {
    let (a, b) = (trimmed(a), trimmed(b));
    a.len().cmp(&b.len()).then_with(|| a.iter().rev().cmp(b.iter().rev()))
}

/// `a` without its most significant zero limbs.
fn trimmed(a: &[u64]) -> &[u64] {
    &a[..a.iter().rposition(|&l| l != 0).map_or(0, |p| p + 1)]
}

/// Adds `times * a * b` (unsigned) to `out`, product by product of the
/// nonzero limbs only: the integers of rows holding huge and tiny values
/// are long runs of zeros between a few limbs (1e300 beside 1e-300: about
/// 5 of 64). `out` must hold the sum. Nothing allocated: a list of `b`'s
/// nonzero limbs made at each call was most of the time of a comparison
/// of rows a timestamp dominates, where every comparison is exact.
fn mul_acc(a: &[u64], b: &[u64], times: u32, out: &mut [u64]) {
    for (i, &ai) in a.iter().enumerate() {
        if ai == 0 {
            continue;
        }
        for (j, &bj) in b.iter().enumerate() {
            if bj == 0 {
                continue;
            }
            let t = ai as u128 * bj as u128;
            for _ in 0..times {
                let (low, c1) = out[i + j].overflowing_add(t as u64);
                out[i + j] = low;
                // no overflow: (t >> 64) <= 2^64 - 2
                let (high, c2) = out[i + j + 1].overflowing_add((t >> 64) as u64 + c1 as u64);
                out[i + j + 1] = high;
                let mut carry = c2;
                let mut k = i + j + 2;
                while carry {
                    let (v, c) = out[k].overflowing_add(1);
                    out[k] = v;
                    carry = c;
                    k += 1;
                }
            }
        }
    }
}

/// `a * b` into `out` (unsigned; [`mul_acc`]).
#[cfg(test)]
fn mul_into(a: &[u64], b: &[u64], out: &mut Vec<u64>) {
    let (a, b) = (trimmed(a), trimmed(b));
    out.clear();
    out.resize(a.len() + b.len() + 1, 0);
    mul_acc(a, b, 1, out);
}

/// The exact sums of a cosine comparison for one gallery row: `q.g` as the
/// sums of its positive and of its negative products (each stays as sparse
/// as its terms: one signed sum of 1e300 and -1e-300 is 64 limbs of ones),
/// `|q.g|^2` as `pos^2 + neg^2` less `2 pos neg`, and `g.g`.
#[derive(Debug, Clone, Default)]
struct Cosine {
    sign: i32,
    squares: Vec<u64>,
    cross: Vec<u64>,
    s: Vec<u64>,
}

impl Cosine {
    /// Made in `self`'s buffers (no allocation once they are long enough: one per comparison was
    /// a good part of its time where every comparison is exact).
    fn fill_from_sums(&mut self, pos: &[u64], neg: &[u64], s: &[u64]) {
        let (pos, neg, s) = (trimmed(pos), trimmed(neg), trimmed(s));
        self.sign = match cmp_unsigned(pos, neg) {
            std::cmp::Ordering::Greater => 1,
            std::cmp::Ordering::Less => -1,
            std::cmp::Ordering::Equal => 0,
        };
        let len = 2 * pos.len().max(neg.len()) + 2;
        for buffer in [&mut self.squares, &mut self.cross] {
            buffer.clear();
            buffer.resize(len, 0);
        }
        mul_acc(pos, pos, 1, &mut self.squares);
        mul_acc(neg, neg, 1, &mut self.squares);
        mul_acc(pos, neg, 1, &mut self.cross);
        self.s.clear();
        self.s.extend_from_slice(s);
    }

    /// Whether `self`'s cosine is larger than `other`'s: `sign(p) p^2 s'` against `sign(p') p'^2 s`, with
    /// `p^2 s' - p'^2 s = (squares s' + 2 cross' s) - (2 cross s' + squares' s)`.
    fn beats(&self, other: &Cosine, buffers: &mut (Vec<u64>, Vec<u64>)) -> bool {
        if self.sign != other.sign {
            return self.sign > other.sign;
        }
        if self.sign == 0 {
            return false;
        }
        let len = (self.squares.len() + other.s.len()).max(other.squares.len() + self.s.len()) + 2;
        let (left, right) = buffers;
        for buffer in [&mut *left, &mut *right] {
            buffer.clear();
            buffer.resize(len, 0);
        }
        mul_acc(&self.squares, &other.s, 1, left);
        mul_acc(&other.cross, &self.s, 2, left);
        mul_acc(&self.cross, &other.s, 2, right);
        mul_acc(&other.squares, &self.s, 1, right);
        let order = cmp_unsigned(left, right);
        if self.sign > 0 { order.is_gt() } else { order.is_lt() }
    }
}

/// A sum's value `hi + lo` (a double-double) within `err` of the exact
/// sum, all of one row scaled by a power of two (which no order depends on).
#[derive(Debug, Clone, Copy)]
struct Approx {
    hi: f64,
    lo: f64,
    err: f64,
}

const U: f64 = f64::EPSILON / 2.0; // unit roundoff, 2^-53

/// Error-free sum: `a + b = s + t` exactly (Knuth's TwoSum; no overflow in the ranges used here).
#[inline(always)]
fn two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let bb = s - a;
    (s, (a - (s - bb)) + (b - bb))
}

/// Error-free product `a * b = p + e` (FMA), exact while `a * b` neither
/// overflows nor falls below 2^-969 (else `e` may be rounded: the bound's
/// absolute term covers it).
/// Without FMA (`FMA == false`, the portable path): Dekker's product on
/// Veltkamp's halves, exact on these scaled values (no overflow in the
/// split) under the same condition.
#[inline(always)]
fn two_product<const FMA: bool>(a: f64, b: f64) -> (f64, f64) {
    let p = a * b;
    if FMA {
        return (p, a.mul_add(b, -p));
    }
    const SPLIT: f64 = 134217729.0; // 2^27 + 1
    let split = |x: f64| {
        let c = SPLIT * x;
        let hi = c - (c - x);
        (hi, x - hi)
    };
    let ((ah, al), (bh, bl)) = (split(a), split(b));
    (p, al * bl - (((p - ah * bh) - al * bh) - ah * bl))
}

/// Absolute error a product or sum of these rows may lose below float64's
/// normal range, per term (generous: each of a product's two roundings there
/// is at most 2^-1075, and the scaled rows themselves lost at most that).
const TINY: f64 = 1e-300;

/// Double-double dot product of the scaled rows `x` and `y` (Ogita, Rump and
/// Oishi's Dot2, the result left unrounded) with a rigorous bound: the
/// unrounded Dot2 lies within `gamma(n)^2 |x|.|y|` of the exact value
/// (their Prop. 5.5 less the final rounding; `gamma(n) = n u / (1 - n u)`),
/// doubled here for the double-double's own last addition, plus an
/// absolute `TINY` per term for underflow.
#[inline(always)]
fn dot2<const FMA: bool>(x: &[f64], y: &[f64]) -> Approx {
    let (mut p, mut s, mut abs) = (0.0f64, 0.0f64, 0.0f64);
    for (&a, &b) in x.iter().zip(y) {
        let (h, r) = two_product::<FMA>(a, b);
        let (t, q) = two_sum(p, h);
        p = t;
        s += q + r;
        abs += (a * b).abs();
    }
    let (hi, lo) = two_sum(p, s);
    let n = 2.0 * x.len() as f64 + 2.0;
    let gamma = n * U / (1.0 - n * U);
    Approx { hi, lo, err: 2.0 * gamma * gamma * abs * (1.0 + 4.0 * U) + n * 4.0 * TINY }
}

/// Double-double product `(a.hi + a.lo) * (b.hi + b.lo)` with its error
/// bound: the inputs' errors carried (`|a||b.err| + |b||a.err| + a.err b.err`,
/// magnitudes rounded up by a relative 2^-50) plus the product's own
/// rounding, within `2^-100 |ab|` (the dropped `a.lo b.lo` and the
/// roundings of the cross terms, each below `2^-104 |ab|`).
#[inline(always)]
fn mul<const FMA: bool>(a: Approx, b: Approx) -> Approx {
    let (p, e) = two_product::<FMA>(a.hi, b.hi);
    let e = e + (a.hi * b.lo + a.lo * b.hi);
    let (hi, lo) = two_sum(p, e);
    let (ma, mb) = (a.hi.abs() + a.lo.abs(), b.hi.abs() + b.lo.abs());
    let carried = ma * b.err + mb * a.err + a.err * b.err;
    Approx { hi, lo, err: (carried + ma * mb * 2f64.powi(-100)) * (1.0 + 2f64.powi(-50)) + 4.0 * TINY }
}

/// The sign of `a - b` when the bounds make it certain, else `None`.
fn certain_sign(a: Approx, b: Approx) -> Option<i32> {
    let (s, t) = two_sum(a.hi, -b.hi);
    let d = s + (t + (a.lo - b.lo)); // within 2^-50 |d| + the tiny terms of the approximations
    let bound = (a.err + b.err) * (1.0 + 2f64.powi(-50)) + (a.lo.abs() + b.lo.abs() + t.abs()) * 2f64.powi(-50);
    if d.abs() > bound * 1.01 + 4.0 * TINY {
        Some(if d > 0.0 { 1 } else { -1 })
    } else {
        None
    }
}

/// Multiplication by `2^k` (`|k| <= 2046`) as two factors that are normal
/// numbers, so no intermediate overflows; exact unless the result falls
/// below float64's normal range (then within 2^-1074 of it).
#[derive(Debug, Clone, Copy)]
struct Scale(f64, f64);

impl Scale {
    fn new(k: i32) -> Self {
        let half = k / 2;
        Scale(2f64.powi(half), 2f64.powi(k - half))
    }

    #[inline(always)]
    fn apply(self, v: f64) -> f64 {
        v * self.0 * self.1
    }
}

/// What a search's near ties are decided on: the query and gallery rows
/// (row-major, `cols` columns, every value finite: others give some row,
/// never a panic) and, made once for each gallery row a decision reads,
/// its double-double approximations. Nothing is read of rows no decision
/// needs: a search makes one for each block of query rows with near ties.
pub struct Ties<'a> {
    query: &'a [f64],
    gallery: &'a [f64],
    /// The left operands of each gallery row's `g.g` against `gallery`'s: the gallery itself, or the
    /// rows of split values in the order that pairs with it ([`Ties::split`]).
    left: &'a [f64],
    cols: usize,
    cosine: bool,
    /// Whether the double-double pass runs first (else every comparison is exact: the tests' reference).
    filter: bool,
    /// Euclidean: the one power of two all rows are scaled by (their largest magnitude into [2^-4, 2^-3)).
    scale: Scale,
    /// Per gallery row, made when first read: the row scaled (cosine: by its own power of two), and its
    /// `g.g` approximated.
    scaled: Vec<f64>,
    squares: Vec<Approx>,
    ready: Vec<bool>,
    /// A gallery row of `left` scaled, for its `g.g`.
    scratch: Vec<f64>,
}

/// The exact sums of one query row against gallery rows, at the fixed
/// point of the smallest term of its candidates, with limbs for the
/// largest term (106-bit significands, + 1 for `2 q.g`), the count of terms
/// and the sign. Made for a query row when its first comparison needs it.
struct ExactSums {
    q: Vec<Parts>,
    cosine: bool,
    /// Cosine: the fixed points of `q.g` and `g.g`; Euclidean: of `|g|^2 - 2 q.g` (the first).
    base: (i32, i32),
    pos: Fixed,
    neg: Fixed,
    s: Fixed,
}

impl ExactSums {
    fn new(query: &[f64], rows: impl Iterator<Item = f64>, cosine: bool) -> Self {
        let q: Vec<Parts> = query.iter().map(|&v| parts(v)).collect();
        let (q_lo, q_hi) = exponent_range(q.iter().copied()).unwrap_or((0, 0));
        let (g_lo, g_hi) = exponent_range(rows.map(parts)).unwrap_or((0, 0));
        let terms = (2 * q.len() + 1).next_power_of_two().trailing_zeros() as usize;
        let width = |lo: i32, hi: i32| {
            let top = (hi - lo).max(0) as usize;
            (top + 107 + terms + 2).div_ceil(64).max(top / 64 + 3) + 1
        };
        let (base, p_len, s_len) = if cosine {
            ((q_lo + g_lo, 2 * g_lo), width(q_lo + g_lo, q_hi + g_hi), width(2 * g_lo, 2 * g_hi))
        } else {
            let (lo, hi) = ((2 * g_lo).min(q_lo + g_lo + 1), (2 * g_hi).max(q_hi + g_hi + 1));
            ((lo, lo), width(lo, hi), 0)
        };
        ExactSums { q, cosine, base, pos: Fixed::zero(p_len), neg: Fixed::zero(p_len), s: Fixed::zero(s_len) }
    }

    /// Cosine: `q.g` and `g.g` of gallery row `g` ([`Cosine`]); `left`: the row's left operands of `g.g`.
    fn cosine(&mut self, g: &[f64], left: &[f64]) -> Cosine {
        let mut out = Cosine::default();
        self.cosine_into(g, left, &mut out);
        out
    }

    /// [`ExactSums::cosine`] into `out`'s buffers.
    fn cosine_into(&mut self, g: &[f64], left: &[f64], out: &mut Cosine) {
        debug_assert!(self.cosine);
        let (p_base, s_base) = self.base;
        self.pos.clear();
        self.neg.clear();
        self.s.clear();
        for ((a, &v), &l) in self.q.iter().zip(g).zip(left) {
            let b = parts(v);
            if b.m == 0 {
                continue;
            }
            let c = parts(l);
            if c.m != 0 {
                self.s.add(c.m as u128 * b.m as u128, (c.e + b.e - s_base) as usize, c.neg != b.neg);
            }
            if a.m != 0 {
                let sum = if a.neg != b.neg { &mut self.neg } else { &mut self.pos };
                sum.add(a.m as u128 * b.m as u128, (a.e + b.e - p_base) as usize, false);
            }
        }
        out.fill_from_sums(&self.pos.limbs, &self.neg.limbs, &self.s.limbs);
    }

    /// Euclidean: `|g|^2 - 2 q.g` of gallery row `g` (`left`: its left operands of `g.g`), into `key`
    /// (of [`ExactSums::key_len`] limbs).
    fn euclidean(&self, g: &[f64], left: &[f64], key: &mut Fixed) {
        debug_assert!(!self.cosine);
        let lo = self.base.0;
        key.clear();
        for ((a, &v), &l) in self.q.iter().zip(g).zip(left) {
            let b = parts(v);
            if b.m == 0 {
                continue;
            }
            let c = parts(l);
            if c.m != 0 {
                key.add(c.m as u128 * b.m as u128, (c.e + b.e - lo) as usize, c.neg != b.neg);
            }
            if a.m != 0 {
                key.add(a.m as u128 * b.m as u128, (a.e + b.e + 1 - lo) as usize, a.neg == b.neg);
            }
        }
    }

    fn key_len(&self) -> usize {
        self.pos.limbs.len()
    }
}

impl<'a> Ties<'a> {
    /// `cosine`: the largest cosine, ordered as `sign(p) p^2 / s` with `p = q.g` and `s = g.g`; else the
    /// smallest Euclidean distance, ordered as `|g|^2 - 2 q.g`. `top`: the largest magnitude of the query
    /// and gallery values (or near it: it only sets the Euclidean approximations' scale, and a poor one
    /// leaves more comparisons to the exact sums).
    pub fn new(query: &'a [f64], gallery: &'a [f64], cols: usize, cosine: bool, top: f64) -> Self {
        Self::split(query, gallery, gallery, cols, cosine, top)
    }

    /// [`Ties::new`] of rows whose values are each given as a sum of parts,
    /// as integers beyond 2^53 (no float64) are, exactly, as `h + l` with `h`
    /// and `l` float64s of one sign: `query` holds each value's parts
    /// `[h, h, l, l]`, `gallery` `[h, l, h, l]` and `left` `[h, h, l, l]`,
    /// so that `q.g` is `query . gallery` and `g.g` is `left . gallery`
    /// row by row, every sum the order needs. Equal rows of `gallery` are
    /// equal rows of values. `Ties::new` is `left = gallery`.
    pub fn split(query: &'a [f64], gallery: &'a [f64], left: &'a [f64], cols: usize, cosine: bool, top: f64) -> Self {
        assert!(cols > 0 && query.len().is_multiple_of(cols) && gallery.len().is_multiple_of(cols), "Ties: rows of {cols}");
        assert!(left.len() == gallery.len(), "Ties: left operands of every gallery value");
        let rows = gallery.len() / cols;
        Ties {
            query,
            gallery,
            left,
            cols,
            cosine,
            filter: true,
            scale: Scale::new(-3 - top_exponent(top.abs())),
            scaled: vec![0.0; gallery.len()],
            squares: vec![Approx { hi: 0.0, lo: 0.0, err: 0.0 }; rows],
            ready: vec![false; rows],
            scratch: vec![0.0; cols],
        }
    }

    fn row(&self, j: usize) -> &'a [f64] {
        &self.gallery[j * self.cols..(j + 1) * self.cols]
    }

    fn left_row(&self, j: usize) -> &'a [f64] {
        &self.left[j * self.cols..(j + 1) * self.cols]
    }

    /// Gallery row `j`'s scaled values and `g.g` approximated, made at the first call.
    fn prepare<const FMA: bool>(&mut self, j: usize) {
        if self.ready[j] {
            return;
        }
        let (row, left, cols) = (self.row(j), self.left_row(j), self.cols);
        let out = &mut self.scaled[j * cols..(j + 1) * cols];
        let scale = if self.cosine { Scale::new(-3 - top_exponent(row.iter().fold(0.0f64, |m, v| m.max(v.abs())))) } else { self.scale };
        for (o, &v) in out.iter_mut().zip(row) {
            *o = scale.apply(v);
        }
        self.squares[j] = if std::ptr::eq(self.left, self.gallery) {
            dot2::<FMA>(out, out)
        } else {
            // the left operands hold the row's values too (split as `row`'s): the same scale
            for (o, &v) in self.scratch.iter_mut().zip(left) {
                *o = scale.apply(v);
            }
            dot2::<FMA>(&self.scratch, out)
        };
        self.ready[j] = true;
    }

    /// The candidate nearest query row `row` in exact arithmetic on the
    /// values, the first of `candidates` (ascending gallery rows, at least
    /// one) on a tie.
    pub fn nearest(&mut self, row: usize, candidates: &[usize]) -> usize {
        #[cfg(target_arch = "x86_64")]
        if crate::kernels::x86_ok() {
            // SAFETY: AVX2 and FMA checked (x86_ok).
            return unsafe { self.nearest_fma(row, candidates) };
        }
        #[cfg(target_arch = "aarch64")]
        return self.nearest_with::<true>(row, candidates); // FMA is part of aarch64
        #[allow(unreachable_code)]
        self.nearest_with::<false>(row, candidates)
    }

    /// [`Ties::nearest`] compiled with FMA, so `mul_add` is one instruction.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn nearest_fma(&mut self, row: usize, candidates: &[usize]) -> usize {
        self.nearest_with::<true>(row, candidates)
    }

    #[inline(always)]
    fn nearest_with<const FMA: bool>(&mut self, row: usize, candidates: &[usize]) -> usize {
        assert!(!candidates.is_empty(), "Ties::nearest: no candidates");
        let (cols, cosine, all, gallery) = (self.cols, self.cosine, self.query, self.gallery);
        let query = &all[row * cols..(row + 1) * cols];
        // the fixed point spans the exponents of the left operands of g.g too: split values' are the gallery's,
        // but other ones (a caller's) shifted terms below the fixed point or past its limbs, a panic
        let left = if std::ptr::eq(self.left, gallery) { &[][..] } else { self.left };
        let sums = || {
            let rows = |values: &'a [f64]| candidates.iter().flat_map(move |&j| values.get(j * cols..(j + 1) * cols).unwrap_or(&[]));
            ExactSums::new(query, rows(gallery).chain(rows(left)).copied(), cosine)
        };
        let mut exact: Option<ExactSums> = None; // made at the first comparison the approximations leave
        let mut best = candidates[0];
        if cosine {
            let q_scale = Scale::new(-3 - top_exponent(query.iter().fold(0.0f64, |m, v| m.max(v.abs()))));
            let q_scaled: Vec<f64> = query.iter().map(|&v| q_scale.apply(v)).collect();
            self.prepare::<FMA>(best);
            let mut best_p = dot2::<FMA>(&q_scaled, &self.scaled[best * cols..(best + 1) * cols]);
            let mut best_s = self.squares[best];
            let mut best_square = mul::<FMA>(best_p, best_p);
            let mut best_exact: Option<Cosine> = None; // made when a comparison needs it
            let mut mine = Cosine::default(); // each candidate's, in the same buffers
            let mut buffers = (Vec::new(), Vec::new());
            let zero = Approx { hi: 0.0, lo: 0.0, err: 0.0 };
            for &j in &candidates[1..] {
                let g = self.row(j);
                if g == self.row(best) {
                    continue; // a copy of the best: a tie, the lower index stays
                }
                self.prepare::<FMA>(j);
                let pj = dot2::<FMA>(&q_scaled, &self.scaled[j * cols..(j + 1) * cols]);
                let sj = self.squares[j];
                // sign(p_j) p_j^2 s_b against sign(p_b) p_b^2 s_j
                let decided = if !self.filter {
                    None
                } else {
                    match (certain_sign(pj, zero), certain_sign(best_p, zero)) {
                        (Some(a), Some(b)) if a != b => Some(a > b),
                        (Some(a), Some(_)) => {
                            let lhs = mul::<FMA>(mul::<FMA>(pj, pj), best_s);
                            let rhs = mul::<FMA>(best_square, sj);
                            certain_sign(lhs, rhs).map(|c| if a > 0 { c > 0 } else { c < 0 })
                        }
                        _ => None,
                    }
                };
                let better = match decided {
                    Some(better) => better,
                    None => {
                        let sums = exact.get_or_insert_with(sums);
                        let best_sums = best_exact.get_or_insert_with(|| sums.cosine(self.row(best), self.left_row(best)));
                        sums.cosine_into(g, self.left_row(j), &mut mine);
                        mine.beats(best_sums, &mut buffers)
                    }
                };
                if better {
                    best = j;
                    (best_p, best_s) = (pj, sj);
                    best_square = mul::<FMA>(pj, pj);
                    best_exact = None;
                }
            }
        } else {
            // approximated on the rows scaled by one power of two: g.g (made once a row) less 2 q.g
            let q2: Vec<f64> = query.iter().map(|&v| -2.0 * self.scale.apply(v)).collect();
            let approx = |this: &mut Self, j: usize| {
                this.prepare::<FMA>(j);
                add(this.squares[j], dot2::<FMA>(&q2, &this.scaled[j * cols..(j + 1) * cols]))
            };
            let mut best_key = approx(self, best);
            let mut best_exact: Option<Fixed> = None;
            let mut key = Fixed::zero(0);
            for &j in &candidates[1..] {
                let g = self.row(j);
                if g == self.row(best) {
                    continue;
                }
                let kj = approx(self, j);
                let better = match certain_sign(kj, best_key).filter(|_| self.filter) {
                    Some(c) => c < 0,
                    None => {
                        let sums = exact.get_or_insert_with(sums);
                        let best_key = best_exact.get_or_insert_with(|| {
                            let mut b = Fixed::zero(sums.key_len());
                            sums.euclidean(self.row(best), self.left_row(best), &mut b);
                            b
                        });
                        if key.limbs.len() != sums.key_len() {
                            key = Fixed::zero(sums.key_len());
                        }
                        sums.euclidean(g, self.left_row(j), &mut key);
                        key.cmp_signed(best_key).is_lt()
                    }
                };
                if better {
                    best = j;
                    best_key = kj;
                    best_exact = None;
                }
            }
        }
        best
    }
}

/// `e` with `top` in `[2^(e-1), 2^e)` for a finite `top > 0` (-1074 for 0, whose scaling does not matter).
fn top_exponent(top: f64) -> i32 {
    let t = parts(top);
    t.e + 64 - t.m.leading_zeros() as i32
}

/// The candidate (one of `candidates`, indices of rows of the row-major
/// `gallery` of `cols` columns) nearest `query` in exact arithmetic on the
/// values: the largest cosine (`cosine`), ordered as `sign(p) p^2 / s` with
/// `p = q.g` and `s = g.g`, or the smallest Euclidean distance, ordered as
/// `|g|^2 - 2 q.g`; the first of the candidates on a tie. Every value
/// finite; `candidates` non-empty, ascending and within the gallery.
pub fn exact_nearest(query: &[f64], gallery: &[f64], cols: usize, candidates: &[usize], cosine: bool) -> usize {
    assert!(query.len() == cols, "exact_nearest: a query row of {cols}");
    let top = query.iter().chain(gallery).fold(0.0f64, |m, v| m.max(v.abs()));
    Ties::new(query, gallery, cols, cosine, top).nearest(0, candidates)
}

/// For each `(row, threshold)` of a block of a search: the gallery row
/// nearest query row `start + row` among those whose score in row `row`
/// of the block's `scores` (one per gallery row) is at least `threshold`
/// (`cosine`) or at most it, in exact arithmetic ([`Ties::nearest`]), or
/// `None` where no score is. `top`: as for [`Ties::new`]; `left`: for rows
/// of split values, as for [`Ties::split`] (`None`: the gallery).
#[allow(clippy::too_many_arguments)]
pub fn settle_rows(
    query: &[f64],
    gallery: &[f64],
    left: Option<&[f64]>,
    cols: usize,
    cosine: bool,
    top: f64,
    scores: &[f64],
    start: usize,
    rows: &[usize],
    thresholds: &[f64],
) -> Vec<Option<usize>> {
    let mut ties = Ties::split(query, gallery, left.unwrap_or(gallery), cols, cosine, top);
    let m = gallery.len() / cols;
    assert!(scores.len().is_multiple_of(m.max(1)) && rows.len() == thresholds.len(), "settle_rows: shapes");
    let mut candidates = Vec::with_capacity(m);
    rows.iter()
        .zip(thresholds)
        .map(|(&r, &t)| {
            let row = &scores[r * m..(r + 1) * m];
            candidates.clear();
            candidates.extend((0..m).filter(|&j| if cosine { row[j] >= t } else { row[j] <= t }));
            (!candidates.is_empty()).then(|| ties.nearest(start + r, &candidates))
        })
        .collect()
}

/// `a + b` of two approximations, with the bound of both and of the addition's rounding.
fn add(a: Approx, b: Approx) -> Approx {
    let (s, t) = two_sum(a.hi, b.hi);
    let low = a.lo + b.lo;
    let (hi, lo) = two_sum(s, t + low);
    let rounding = (t.abs() + 2.0 * low.abs()) * U * (1.0 + 4.0 * U);
    Approx { hi, lo, err: (a.err + b.err + rounding) * (1.0 + 2f64.powi(-50)) + 2.0 * TINY }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            self.0 >> 33
        }

        fn small(&mut self, k: u64) -> f64 {
            (self.next() % (2 * k + 1)) as f64 - k as f64
        }
    }

    /// Rows of `n` by `cols` in several regimes where near ties abound: a
    /// dominating first column (timestamps, or 1e300 beside 1e-300), a grid
    /// of 0.1, copies and multiples of rows, negative values, subnormals.
    fn rows(rng: &mut Rng, regime: u64, n: usize, cols: usize) -> Vec<f64> {
        let mut out = Vec::with_capacity(n * cols);
        for _ in 0..n {
            for c in 0..cols {
                let v = match (regime, c) {
                    (0, 0) => 1.7e9 + rng.small(1) * 1.7,
                    (0, _) | (1, _) => rng.small(3) * 0.1,
                    (2, 0) => 1e300 + rng.small(1) * 1e291,
                    (2, _) => rng.small(3) * 1e-300,
                    (3, 0) => 1e300,
                    (3, _) => rng.small(3) * 1e-300,
                    (4, _) => rng.small(2) * 5e-324,
                    (5, 0) => 2f64.powi(100) * (1.0 + rng.small(1) * 2f64.powi(-40)),
                    _ => rng.small(3) * 0.3,
                };
                out.push(v);
            }
        }
        for r in 1..n {
            if rng.next().is_multiple_of(4) {
                let from = (rng.next() as usize) % r;
                let factor = [1.0, 2.0, 3.0, -1.0][(rng.next() % 4) as usize];
                for c in 0..cols {
                    out[r * cols + c] = out[from * cols + c] * factor;
                }
            }
        }
        out
    }

    #[test]
    fn the_filter_decides_as_the_exact_sums_do() {
        let mut rng = Rng(11);
        for regime in 0..7 {
            for cols in 1..5 {
                for _ in 0..30 {
                    let n = 2 + (rng.next() % 30) as usize;
                    let gallery = rows(&mut rng, regime, n, cols);
                    let queries = rows(&mut rng, regime, 4, cols);
                    let candidates: Vec<usize> = (0..n).collect();
                    for query in queries.chunks_exact(cols) {
                        for cosine in [true, false] {
                            if cosine && (query.iter().all(|&v| v == 0.0) || gallery.iter().all(|&v| v == 0.0)) {
                                continue;
                            }
                            let top = query.iter().chain(&gallery).fold(0.0f64, |m, v| m.max(v.abs()));
                            let mut ties = Ties::new(query, &gallery, cols, cosine, top);
                            let fast = ties.nearest_with::<true>(0, &candidates);
                            let portable = ties.nearest_with::<false>(0, &candidates);
                            ties.filter = false;
                            let exact = ties.nearest_with::<false>(0, &candidates);
                            assert_eq!((fast, portable), (exact, exact), "regime {regime} cosine {cosine} query {query:?} gallery {gallery:?}");
                        }
                    }
                }
            }
        }
    }

    /// Integer-valued rows split as the metrics split integers beyond 2^53:
    /// `(query [h, h, l, l], gallery [h, l, h, l], left [h, h, l, l])`.
    fn split(query: &[f64], gallery: &[f64]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let parts = |v: f64| {
            let magnitude = v.abs() as u64;
            let low = magnitude & 2047;
            let (h, l) = ((magnitude - low) as f64, low as f64);
            if v < 0.0 { (-h, -l) } else { (h, l) }
        };
        let form = |rows: &[f64], order: [usize; 4]| -> Vec<f64> {
            rows.iter().flat_map(|&v| { let (h, l) = parts(v); order.map(|k| [h, l][k]) }).collect()
        };
        (form(query, [0, 0, 1, 1]), form(gallery, [0, 1, 0, 1]), form(gallery, [0, 0, 1, 1]))
    }

    #[test]
    fn rows_of_split_integers_order_as_their_values() {
        let mut rng = Rng(5);
        for cols in 1..4 {
            for _ in 0..60 {
                let n = 2 + (rng.next() % 20) as usize;
                let mut int_rows = |count: usize| -> Vec<f64> {
                    (0..count * cols)
                        .map(|k| if k % cols == 0 { 2f64.powi(52) + rng.small(2) } else { rng.small(3000) })
                        .collect()
                };
                let gallery = int_rows(n);
                let queries = int_rows(3);
                let candidates: Vec<usize> = (0..n).collect();
                for query in queries.chunks_exact(cols) {
                    let (q, g, left) = split(query, &gallery);
                    for cosine in [true, false] {
                        let top = 2f64.powi(53);
                        let plain = Ties::new(query, &gallery, cols, cosine, top).nearest_with::<true>(0, &candidates);
                        let mut ties = Ties::split(&q, &g, &left, 4 * cols, cosine, top);
                        let fast = ties.nearest_with::<true>(0, &candidates);
                        ties.filter = false;
                        let exact = ties.nearest_with::<false>(0, &candidates);
                        assert_eq!((fast, exact), (plain, plain), "cosine {cosine} query {query:?} gallery {gallery:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_block_s_rows_take_the_candidates_their_scores_name() {
        let gallery = [1.0, 0.0, 0.0, 1.0, 2.0, 0.0];
        let query = [1.0, 0.0, 0.0, 1.0];
        // row 0: rows 1 and 2 within the threshold (row 0 left out); row 1: none
        let scores = [0.9, 1.0, 1.0, 5.0, 5.0, 5.0];
        let got = settle_rows(&query, &gallery, None, 2, true, 2.0, &scores, 0, &[0, 1], &[0.95, 6.0]);
        assert_eq!(got, vec![Some(2), None]);
        let got = settle_rows(&query, &gallery, None, 2, false, 2.0, &scores, 1, &[0], &[1.0]);
        assert_eq!(got, vec![Some(1)]); // query row 1, [0, 1], among all three: itself
    }

    #[test]
    fn left_operands_of_other_magnitudes_give_a_row_never_a_panic() {
        // a caller's left operands (not the gallery's values split) outside the gallery's exponents: shifted
        // below the fixed point or past its limbs, they panicked
        let (query, gallery) = ([1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 2.0, 2.0, 3.0, 3.0]);
        let scores = [1.0; 6];
        for value in [1e-300, 1e300, 5e-324, f64::NAN, f64::INFINITY, -1.0] {
            let left = [value; 6];
            for cosine in [true, false] {
                let threshold = if cosine { 0.0 } else { 9.0 };
                let got = settle_rows(&query, &gallery, Some(&left), 2, cosine, 3.0, &scores, 0, &[0, 1], &[threshold; 2]);
                assert!(got.iter().all(|f| f.is_some_and(|f| f < 3)), "{value} {cosine}: {got:?}");
            }
        }
    }

    #[test]
    fn ties_go_to_the_lowest_candidate() {
        // one direction, other lengths: cosine ties; exactly as far on a grid of 0.1: Euclidean ties
        let gallery = [3.0, 3.0, 1.0, 1.0, -1.0, -1.0];
        assert_eq!(exact_nearest(&[1.0, 1.0], &gallery, 2, &[0, 1, 2], true), 0);
        assert_eq!(exact_nearest(&[1.0, 1.0], &gallery, 2, &[1, 2], true), 1);
        assert_eq!(exact_nearest(&[-1.0, -1.0], &gallery, 2, &[0, 1, 2], true), 2);
        let gallery = [-0.4, 0.2, 0.4, -0.2];
        assert_eq!(exact_nearest(&[-0.1, -0.2], &gallery, 2, &[0, 1], false), 0);
        assert_eq!(exact_nearest(&[-0.1, -0.2], &gallery, 2, &[1, 0], false), 1);
    }

    #[test]
    fn differences_below_float64s_reach_are_found() {
        // 1e300 beside 1e-300: the cosines differ in about the 4000th bit
        let gallery = [1e300, 2e-300, 1e300, 1e-300, 1e300, 0.0];
        assert_eq!(exact_nearest(&[1e300, 1e-300], &gallery, 2, &[0, 1, 2], true), 1);
        assert_eq!(exact_nearest(&[1e300, -1e-300], &gallery, 2, &[0, 1, 2], true), 2);
        assert_eq!(exact_nearest(&[1e300, 1e-300], &gallery, 2, &[0, 1, 2], false), 1);
        // the key |g|^2 - 2 q.g crosses zero and both signs compare
        let gallery = [0.0, 0.0, 1.0, 0.0, 2.0, 0.0];
        assert_eq!(exact_nearest(&[0.9, 0.0], &gallery, 2, &[0, 1, 2], false), 1);
        assert_eq!(exact_nearest(&[-0.9, 0.0], &gallery, 2, &[0, 1, 2], false), 0);
        // negative cosines: the least negative
        let gallery = [-1.0, 0.0, -1.0, 1e-20];
        assert_eq!(exact_nearest(&[1.0, 1e-20], &gallery, 2, &[0, 1], true), 1);
    }

    #[test]
    fn big_products_skip_zero_limbs_and_carry() {
        let a = [u64::MAX, 0, 0, u64::MAX];
        let mut out = Vec::new();
        mul_into(&a, &a, &mut out);
        // (2^256 - 2^192 + 2^64 - 1)... checked against the dense schoolbook product
        let mut dense = vec![0u64; 8];
        for i in 0..4 {
            let mut carry = 0u128;
            for j in 0..4 {
                let t = a[i] as u128 * a[j] as u128 + dense[i + j] as u128 + carry;
                dense[i + j] = t as u64;
                carry = t >> 64;
            }
            dense[i + 4] = carry as u64;
        }
        dense.push(0); // mul_into's room for a carry
        assert_eq!(out, dense);
        let mut f = Fixed::zero(4);
        f.add(u128::MAX, 60, false);
        f.add(u128::MAX, 60, true);
        assert!(f.limbs.iter().all(|&l| l == 0));
        f.add(1, 0, true);
        assert!(f.is_negative() && f.limbs.iter().all(|&l| l == u64::MAX));
        assert!(f.cmp_signed(&Fixed::zero(4)).is_lt());
    }
}
