//! Adam over the flat parameter buffer: one vectorised loop for the whole
//! model, state held per scalar.
//!
//! With `g` the gradient (after optional global-norm clipping), step `t`
//! (1-based), learning rate `lr` and decoupled weight decay `λ` (AdamW):
//!
//! ```text
//! m ← β1 m + (1 − β1) g            v ← β2 v + (1 − β2) g²
//! p ← p (1 − lr λ)
//! p ← p − (lr / (1 − β1ᵗ)) · m / (√v / √(1 − β2ᵗ) + ε)
//! ```
//!
//! the formula and order of PyTorch's `AdamW` (its `Adam` when `λ = 0`).
//! Clipping: when `‖g‖₂ > c`, `g ← g · c / (‖g‖₂ + 1e-6)` (PyTorch's
//! `clip_grad_norm_`). The state (`m`, `v`, `t`) can be read and restored,
//! so a resumed run continues bit for bit.

use crate::error::{fmt_value, Error, Result};
use crate::real::Real;

/// β1, β2, ε of the GRAPHEME protocol.
pub const BETA1: f64 = 0.9;
pub const BETA2: f64 = 0.999;
pub const EPSILON: f64 = 1e-8;

/// Hyper-parameters of one update.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamSettings {
    pub learning_rate: f64,
    /// Decoupled weight decay `λ` (0 = plain Adam).
    pub weight_decay: f64,
    /// Global-norm clipping threshold `c` (`None` = no clipping).
    pub clip_norm: Option<f64>,
}

/// Adam's state: first and second moments per scalar and the step count.
#[derive(Debug, Clone, PartialEq)]
pub struct Adam<T> {
    pub m: Vec<T>,
    pub v: Vec<T>,
    pub step: u64,
    /// Where an update that might overflow writes the new weights and
    /// moments before it is accepted (swapped in when every value is
    /// finite): allocated on the first such update, never part of the state.
    staging: Staging<T>,
    /// An upper bound of `max |m|` (`None`: unknown, measured when needed).
    m_bound: Option<f64>,
    /// Updates since the bounds were last measured.
    since_measured: u32,
}

/// What [`Adam::update_tracked`] keeps between updates about the weights:
/// an upper bound of their largest magnitude (`None`: unknown, measured when
/// needed). Whoever changes the weights otherwise sets it to `None`.
pub type ParamsBound = Option<f64>;

/// Updates after which the tracked bounds are measured again (they only
/// grow, each step adding the largest step it could take).
const REMEASURE_EVERY: u32 = 1024;

/// The largest step count a state may hold (so the count never wraps and
/// fits every integer type a file may store it in).
pub const MAX_STEP: u64 = i64::MAX as u64;

/// Buffers for the weights and moments an update produces (a clone starts
/// empty; equality ignores them).
#[derive(Debug, Default)]
struct Staging<T> {
    p: Vec<T>,
    m: Vec<T>,
    v: Vec<T>,
}

impl<T> Clone for Staging<T> {
    fn clone(&self) -> Self {
        Staging { p: Vec::new(), m: Vec::new(), v: Vec::new() }
    }
}

impl<T> PartialEq for Staging<T> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// The largest magnitude in `x`, in f64 (NaN if any value is NaN).
fn max_abs<T: Real>(x: &[T]) -> f64 {
    x.iter().fold(0.0f64, |a, v| {
        let v = v.to_f64().unwrap_or(f64::NAN).abs();
        if v > a || v.is_nan() { v } else { a }
    })
}

/// What one update did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepReport {
    /// `‖g‖₂` before clipping.
    pub grad_norm: f64,
    /// Whether the gradient was scaled down.
    pub clipped: bool,
}

/// Why an update was refused (nothing was changed).
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// A gradient is NaN or infinite (at this flat index).
    NonFiniteGradient(usize),
    /// The learning rate (over Adam's bias correction) or the weight decay
    /// factor `1 − lr·λ` is not representable in `T`.
    Settings(Error),
    /// The update would make the weight or first moment at this flat index
    /// non-finite (the gradients are bounded, so the moments cannot overflow
    /// from a state this optimizer produced).
    Overflow { index: usize, cause: OverflowCause },
    /// The step count is at [`MAX_STEP`].
    StepLimit,
}

/// What made a weight overflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverflowCause {
    /// `p · (1 − lr·λ)` overflows.
    WeightDecay,
    /// The first moment `β1 m + (1 − β1) g` overflows.
    Gradient,
    /// The step `lr · m̂ / (√v̂ + ε)` overflows the weight.
    LearningRate,
}

impl<T: Real> Adam<T> {
    /// Zero moments for `len` scalars, step 0.
    pub fn new(len: usize) -> Self {
        Adam {
            m: vec![T::zero(); len],
            v: vec![T::zero(); len],
            step: 0,
            staging: Staging::default(),
            m_bound: Some(0.0),
            since_measured: 0,
        }
    }

    /// [`Self::new`], allocated fallibly.
    pub fn try_new(len: usize) -> Result<Self> {
        let zeros = || crate::memory::try_zeros::<T>("config", "Adam's moments", len);
        Ok(Adam { m: zeros()?, v: zeros()?, step: 0, staging: Staging::default(), m_bound: Some(0.0), since_measured: 0 })
    }

    /// Back to the initial state.
    pub fn reset(&mut self) {
        self.m.fill(T::zero());
        self.v.fill(T::zero());
        self.step = 0;
        self.m_bound = Some(0.0);
    }

    /// Replaces the state after checking its length and values.
    pub fn set_state(&mut self, m: Vec<T>, v: Vec<T>, step: u64) -> Result<()> {
        let n = self.m.len();
        for (name, x) in [("m", &m), ("v", &v)] {
            if x.len() != n {
                return Err(Error::shape(format!("optimizer state {name}"), format!("({n},)"), format!("({},)", x.len())));
            }
            if let Some(i) = x.iter().position(|v| !v.is_finite()) {
                return Err(Error::non_finite(format!("optimizer state {name}"), format!("flat index {i}")));
            }
        }
        if let Some(i) = v.iter().position(|x| *x < T::zero()) {
            return Err(Error::invalid("optimizer state v", format!("flat index {i} is negative; second moments are >= 0")));
        }
        if step == 0 && (m.iter().chain(&v).any(|x| *x != T::zero())) {
            return Err(Error::invalid("optimizer state step", "is 0 but the moments are not all zero"));
        }
        if step > MAX_STEP {
            return Err(Error::invalid("optimizer state step", format!("got {step}; expected at most {MAX_STEP}")));
        }
        self.m = m;
        self.v = v;
        self.step = step;
        self.m_bound = None;
        Ok(())
    }

    /// One update of `params` from `grads` (same layout). The update is
    /// all or nothing: it is refused, changing nothing, when a gradient is
    /// not finite, when the settings are not representable in `T`, or when
    /// a new weight would not be finite. Each gradient is bounded at
    /// `±√T::MAX / 2` (9.2e18 in float32) first, so that `g²` and the
    /// moments cannot overflow for any finite gradient and finite state;
    /// below the bound the update is exactly PyTorch's.
    pub fn update(&mut self, params: &mut Vec<T>, grads: &[T], settings: &AdamSettings) -> std::result::Result<StepReport, Refusal> {
        self.update_tracked(params, grads, settings, &mut None)
    }

    /// [`Self::update`] with a bound of the weights' magnitude kept by the
    /// caller between updates (see [`ParamsBound`]). With the bounds, an
    /// update that cannot overflow any weight — nearly every one — runs in
    /// place at full speed; only one that might is staged in separate
    /// buffers and checked value by value before it is accepted.
    pub fn update_tracked(
        &mut self,
        params: &mut Vec<T>,
        grads: &[T],
        settings: &AdamSettings,
        params_bound: &mut ParamsBound,
    ) -> std::result::Result<StepReport, Refusal> {
        self.update_tracked_with_norm(params, grads, global_norm(grads), settings, params_bound)
    }

    /// [`Self::update_tracked`] given `grad_norm`, [`global_norm`]`(grads)`
    /// (a caller that computed it already, e.g. to check the gradients,
    /// saves a pass over them).
    pub(crate) fn update_tracked_with_norm(
        &mut self,
        params: &mut Vec<T>,
        grads: &[T],
        grad_norm: f64,
        settings: &AdamSettings,
        params_bound: &mut ParamsBound,
    ) -> std::result::Result<StepReport, Refusal> {
        assert!(params.len() == grads.len() && params.len() == self.m.len(), "Adam: buffer lengths differ");
        if !grad_norm.is_finite() {
            let i = grads.iter().position(|g| !g.is_finite()).unwrap_or(0);
            return Err(Refusal::NonFiniteGradient(i));
        }
        let step = self.step.checked_add(1).filter(|&s| s <= MAX_STEP).ok_or(Refusal::StepLimit)?;
        let clip = match settings.clip_norm {
            Some(c) if grad_norm > c => Some(T::c(c / (grad_norm + 1e-6))),
            _ => None,
        };
        let moments = Moments::new(settings, step, clip).map_err(Refusal::Settings)?;
        // The largest gradient after clipping and bounding: at most ‖g‖₂.
        let g_max = (grad_norm * clip.map_or(1.0, |s| s.to_f64().unwrap_or(1.0))).min(moments.g_max.to_f64().unwrap_or(f64::MAX));
        if self.since_measured >= REMEASURE_EVERY {
            (*params_bound, self.m_bound, self.since_measured) = (None, None, 0);
        }
        let mut bounds = self.safe_bounds(params, *params_bound, g_max, &moments);
        if bounds.is_none() && (params_bound.is_some() || self.m_bound.is_some()) {
            // The tracked bounds may just be loose: measure them.
            (*params_bound, self.m_bound) = (None, None);
            bounds = self.safe_bounds(params, None, g_max, &moments);
        }
        let report = StepReport { grad_norm, clipped: clip.is_some() };
        if let Some((p_bound, m_bound)) = bounds {
            self.update_in_place(params, grads, &moments);
            (*params_bound, self.m_bound) = (Some(p_bound), Some(m_bound));
            self.since_measured += 1;
        } else {
            self.update_staged(params, grads, &moments)?;
            (*params_bound, self.m_bound) = (None, None);
        }
        self.step = step;
        Ok(report)
    }

    /// Bounds of `max |p|` and `max |m|` after this update when no weight can
    /// overflow in it (then it may run in place, unchecked); `None` when one
    /// might. Each new weight is `p·decay − s·m/(√v/c + ε)` with
    /// `|m/(√v/c + ε)| ≤ |m|/ε`, and `|m| ≤ β1 M + (1 − β1) g_max`; the f32
    /// products (`s·m` first) are covered by the same bound. Unknown bounds
    /// are measured (a pass over the weights or moments).
    fn safe_bounds(&self, params: &[T], p_bound: ParamsBound, g_max: f64, c: &Moments<T>) -> Option<(f64, f64)> {
        let f = |x: T| x.to_f64().unwrap_or(f64::NAN);
        let p = p_bound.unwrap_or_else(|| max_abs(params));
        let m = self.m_bound.unwrap_or_else(|| max_abs(&self.m));
        let m_new = (f(c.b1) * m + f(c.one_b1) * g_max) * (1.0 + 1e-6);
        let decay = if c.decays { f(c.decay).abs() } else { 1.0 };
        let p_new = (p * decay + f(c.step_size) * m_new / f(c.eps)) * (1.0 + 1e-6);
        // A margin of 2 covers the rounding of every f32 operation.
        (p_new.is_finite() && 2.0 * p_new < f(T::max_value())).then_some((p_new, m_new))
    }

    /// The update in place, in fixed chunks (one task each: the update is
    /// element-wise, so the split changes nothing but where each chunk's
    /// state is cached).
    fn update_in_place(&mut self, params: &mut [T], grads: &[T], c: &Moments<T>) {
        let chunks: Vec<_> = params
            .chunks_mut(ADAM_CHUNK)
            .zip(self.m.chunks_mut(ADAM_CHUNK))
            .zip(self.v.chunks_mut(ADAM_CHUNK))
            .zip(grads.chunks(ADAM_CHUNK))
            .collect();
        crate::kernels::threads::for_each_item(chunks, |(((p, m), v), g)| {
            // 8 lanes where AVX2 is available: the same IEEE operations, so
            // the same bits as the portable pass.
            #[cfg(target_arch = "x86_64")]
            if crate::kernels::x86_ok() {
                // SAFETY: AVX2 and FMA checked.
                unsafe { adam_pass_in_place_avx2(p, m, v, g, c) };
                return;
            }
            adam_pass_in_place(p, m, v, g, c);
        });
    }

    /// The update written to the staging buffers, checked, and swapped in
    /// when every new weight is finite; else refused, nothing changed.
    fn update_staged(&mut self, params: &mut Vec<T>, grads: &[T], c: &Moments<T>) -> std::result::Result<(), Refusal> {
        let n = params.len();
        let staging = &mut self.staging;
        for buf in [&mut staging.p, &mut staging.m, &mut staging.v] {
            if buf.len() != n {
                *buf = crate::memory::try_zeros("params", "Adam's staging buffers", n).map_err(Refusal::Settings)?;
            }
        }
        let chunks: Vec<_> = (params.chunks(ADAM_CHUNK).zip(self.m.chunks(ADAM_CHUNK)).zip(self.v.chunks(ADAM_CHUNK)).zip(grads.chunks(ADAM_CHUNK)))
            .zip(staging.p.chunks_mut(ADAM_CHUNK).zip(staging.m.chunks_mut(ADAM_CHUNK)).zip(staging.v.chunks_mut(ADAM_CHUNK)))
            .collect();
        let finite = crate::kernels::threads::map_items(chunks, |((((p, m), v), g), ((np, nm), nv))| {
            adam_pass_staged(Old { p, m, v, g }, New { p: np, m: nm, v: nv }, c)
        });
        if finite.iter().any(|ok| !ok) {
            return Err(self.diagnose(params, grads, c));
        }
        std::mem::swap(params, &mut self.staging.p);
        std::mem::swap(&mut self.m, &mut self.staging.m);
        std::mem::swap(&mut self.v, &mut self.staging.v);
        Ok(())
    }

    /// The first index whose new weight or moment is not finite, and why
    /// (the staging buffers hold the refused update).
    fn diagnose(&self, params: &[T], grads: &[T], c: &Moments<T>) -> Refusal {
        let s = &self.staging;
        let index = (0..params.len()).find(|&i| !(s.p[i].is_finite() && s.m[i].is_finite() && s.v[i].is_finite())).unwrap_or(0);
        let g = if c.clips { grads[index] * c.scale } else { grads[index] };
        let cause = if !(s.m[index].is_finite() && s.v[index].is_finite() && g.is_finite()) {
            OverflowCause::Gradient
        } else if c.decays && !(params[index] * c.decay).is_finite() {
            OverflowCause::WeightDecay
        } else {
            OverflowCause::LearningRate
        };
        Refusal::Overflow { index, cause }
    }
}

/// Scalars per task of the update. Large models are split across threads
/// (each core's share of the weights and moments then stays in its own
/// cache); the default model (70 k scalars) runs in one task on the calling
/// thread: waking the pool for it costs more than it saves, and idle
/// workers that spin afterwards slow the serial work of the next step.
const ADAM_CHUNK: usize = 1 << 18;

/// The constants of one Adam update.
struct Moments<T> {
    b1: T,
    b2: T,
    one_b1: T,
    one_b2: T,
    step_size: T,
    bias2_sqrt: T,
    eps: T,
    /// `1 − lr λ` (used when `decays`).
    decay: T,
    decays: bool,
    /// The clipping factor (used when `clips`).
    scale: T,
    clips: bool,
    /// The bound of each gradient's magnitude: `g²` stays below `T::MAX / 4`,
    /// so neither moment can overflow.
    g_max: T,
}

impl<T: Real> Moments<T> {
    /// The constants of update number `step` (1-based); an error naming the
    /// setting when one is not representable in `T`.
    fn new(settings: &AdamSettings, step: u64, clip: Option<T>) -> Result<Self> {
        let t = step as f64;
        let lr = settings.learning_rate;
        let bias1 = 1.0 - BETA1.powf(t);
        let step_size = T::c(lr / bias1);
        if !step_size.is_finite() {
            return Err(Error::invalid(
                "lr",
                format!("got {}; the step lr / (1 − β1ᵗ) = {:e} is beyond the model's float range", fmt_value(lr), lr / bias1),
            ));
        }
        let decay = T::c(1.0 - lr * settings.weight_decay);
        if !decay.is_finite() {
            return Err(Error::invalid(
                "weight_decay",
                format!(
                    "got {} with lr={}; the decay factor 1 − lr·weight_decay is beyond the model's float range",
                    fmt_value(settings.weight_decay),
                    fmt_value(lr)
                ),
            ));
        }
        Ok(Moments {
            b1: T::c(BETA1),
            b2: T::c(BETA2),
            one_b1: T::c(1.0 - BETA1),
            one_b2: T::c(1.0 - BETA2),
            step_size,
            bias2_sqrt: T::c((1.0 - BETA2.powf(t)).sqrt()),
            eps: T::c(EPSILON),
            decay,
            decays: settings.weight_decay != 0.0,
            scale: clip.unwrap_or(T::one()),
            clips: clip.is_some(),
            g_max: T::max_value().sqrt() * T::c(0.5),
        })
    }
}

/// The state an update reads: one chunk of the weights, moments and gradients.
struct Old<'a, T> {
    p: &'a [T],
    m: &'a [T],
    v: &'a [T],
    g: &'a [T],
}

/// Where an update writes the same chunk's new weights and moments.
struct New<'a, T> {
    p: &'a mut [T],
    m: &'a mut [T],
    v: &'a mut [T],
}

/// Adam for one scalar: `(p, m, v)` new from old and the gradient `g`
/// (clipped, then bounded); the formula and order of PyTorch's AdamW.
#[inline(always)]
fn adam_scalar<T: Real>(p: T, m: T, v: T, g: T, c: &Moments<T>) -> (T, T, T) {
    let g = if c.clips { g * c.scale } else { g };
    let g = if g > c.g_max { c.g_max } else { g };
    let g = if g < -c.g_max { -c.g_max } else { g };
    let m = c.b1 * m + c.one_b1 * g;
    let v = c.b2 * v + c.one_b2 * g * g;
    let q = if c.decays { p * c.decay } else { p };
    (q - c.step_size * m / (v.sqrt() / c.bias2_sqrt + c.eps), m, v)
}

/// One pass of Adam over a chunk, in place (a branch-free loop per
/// setting, vectorised by the compiler).
#[inline(always)]
fn adam_pass_in_place<T: Real>(p: &mut [T], m: &mut [T], v: &mut [T], g: &[T], c: &Moments<T>) {
    let n = p.len();
    assert!(m.len() == n && v.len() == n && g.len() == n, "Adam: buffer lengths differ");
    for (((p, m), v), &g) in p.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(g) {
        (*p, *m, *v) = adam_scalar(*p, *m, *v, g, c);
    }
}

/// [`adam_pass_in_place`] compiled for AVX2.
///
/// # Safety
/// AVX2 and FMA must be available.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn adam_pass_in_place_avx2<T: Real>(p: &mut [T], m: &mut [T], v: &mut [T], g: &[T], c: &Moments<T>) {
    adam_pass_in_place(p, m, v, g, c)
}

/// One pass of Adam over a chunk into `new` (the same arithmetic: the same
/// bits); whether every new weight and moment is finite.
fn adam_pass_staged<T: Real>(old: Old<T>, new: New<T>, c: &Moments<T>) -> bool {
    let n = old.p.len();
    assert!(
        [old.m.len(), old.v.len(), old.g.len(), new.p.len(), new.m.len(), new.v.len()].iter().all(|&l| l == n),
        "Adam: buffer lengths differ"
    );
    let mut finite = true;
    let olds = old.p.iter().zip(old.m).zip(old.v).zip(old.g);
    let news = new.p.iter_mut().zip(new.m.iter_mut()).zip(new.v.iter_mut());
    for ((((&p, &m), &v), &g), ((p_new, m_new), v_new)) in olds.zip(news) {
        let (p, m, v) = adam_scalar(p, m, v, g, c);
        finite &= p.is_finite() & m.is_finite() & v.is_finite();
        (*p_new, *m_new, *v_new) = (p, m, v);
    }
    finite
}

/// `‖g‖₂` (NaN or infinite when a gradient is); the order of the sums is
/// fixed, so the value is too.
pub fn global_norm<T: Real>(grads: &[T]) -> f64 {
    #[cfg(target_arch = "x86_64")]
    let norm = if crate::kernels::x86_ok() {
        // SAFETY: AVX2 and FMA checked.
        unsafe { global_norm_avx2(grads) }
    } else {
        global_norm_pass(grads)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let norm = global_norm_pass(grads);
    if norm.is_finite() || !grads.iter().all(|g| g.is_finite()) {
        return norm;
    }
    // Finite values whose squares overflow `T` within a block: in f64.
    grads.iter().map(|g| g.to_f64().unwrap_or(f64::NAN).powi(2)).sum::<f64>().sqrt()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn global_norm_avx2<T: Real>(grads: &[T]) -> f64 {
    global_norm_pass(grads)
}

/// Squares summed in `T`, 8 lanes, over blocks of 256 values; the blocks'
/// sums added in f64 (so the rounding of `T` only acts within a block).
#[inline(always)]
fn global_norm_pass<T: Real>(grads: &[T]) -> f64 {
    let mut total = 0.0f64;
    for block in grads.chunks(256) {
        total += crate::kernels::sum_squares(block).to_f64().unwrap_or(f64::NAN);
    }
    total.sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(lr: f64) -> AdamSettings {
        AdamSettings {
            learning_rate: lr,
            weight_decay: 0.0,
            clip_norm: None,
        }
    }

    #[test]
    fn two_steps_by_hand() {
        let mut adam = Adam::<f64>::new(2);
        let mut p = vec![1.0, -2.0];
        adam.update(&mut p, &[0.5, -0.1], &settings(0.1)).unwrap();
        // t=1: m = 0.1 g, v = 0.001 g²; m̂ = g, v̂ = g² → step = lr·sign(g) (up to ε).
        let expect0 = 1.0 - 0.1 * 0.5 / (0.5 + 1e-8);
        let expect1 = -2.0 + 0.1 * 0.1 / (0.1 + 1e-8);
        assert!((p[0] - expect0).abs() < 1e-15 && (p[1] - expect1).abs() < 1e-15, "{p:?}");
        adam.update(&mut p, &[0.2, 0.3], &settings(0.1)).unwrap();
        // t=2, first scalar: m = 0.9·0.05 + 0.1·0.2 = 0.065, v = 0.999·0.00025 + 0.001·0.04 = 0.00028975.
        let (m, v) = (0.065f64, 0.00028975f64);
        let expect = expect0 - (0.1 / (1.0 - 0.81)) * m / (v.sqrt() / (1.0 - 0.998001f64).sqrt() + 1e-8);
        assert!((p[0] - expect).abs() < 1e-14, "{} vs {}", p[0], expect);
        assert_eq!(adam.step, 2);
        assert!((adam.m[0] - m).abs() < 1e-15 && (adam.v[0] - v).abs() < 1e-15);
    }

    #[test]
    fn weight_decay_is_decoupled_and_clipping_bounds_the_norm() {
        let mut adam = Adam::<f64>::new(1);
        let mut p = vec![2.0];
        let s = AdamSettings {
            learning_rate: 0.1,
            weight_decay: 0.5,
            clip_norm: None,
        };
        adam.update(&mut p, &[0.0], &s).unwrap();
        // Zero gradient: only the decay acts, p·(1 − lr·λ).
        assert!((p[0] - 2.0 * 0.95).abs() < 1e-15);

        let mut adam = Adam::<f64>::new(2);
        let mut p = vec![0.0, 0.0];
        let s = AdamSettings {
            learning_rate: 0.1,
            weight_decay: 0.0,
            clip_norm: Some(1.0),
        };
        let report = adam.update(&mut p, &[3.0, 4.0], &s).unwrap();
        assert_eq!(report.grad_norm, 5.0);
        assert!(report.clipped);
        // The moments saw the clipped gradient g·1/(5+1e-6).
        assert!((adam.m[0] - 0.1 * 3.0 / (5.0 + 1e-6)).abs() < 1e-15);
    }

    #[test]
    fn the_norm_survives_squares_beyond_f32() {
        let g = vec![3e20f32, 4e20];
        assert!((global_norm(&g) / 5e20 - 1.0).abs() < 1e-6);
        assert!(global_norm(&[1.0f32, f32::NAN]).is_nan());
        let many: Vec<f32> = (0..1000).map(|i| (i % 7) as f32 - 3.0).collect();
        let exact = many.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
        assert!((global_norm(&many) - exact).abs() < 1e-9 * exact);
    }

    /// The in-place pass (taken when no weight can overflow) and the staged,
    /// checked one compute the same bits; huge gradients are bounded alike.
    #[test]
    fn in_place_and_staged_passes_agree() {
        let n = 1000;
        let val = |i: usize, s: f32| ((i as f32) * s).sin();
        let (p, m, v): (Vec<f32>, Vec<f32>, Vec<f32>) = ((0..n).map(|i| val(i, 0.3)).collect(), (0..n).map(|i| val(i, 0.7) * 0.1).collect(), (0..n).map(|i| val(i, 0.9).abs() * 0.01).collect());
        let g: Vec<f32> = (0..n).map(|i| if i % 97 == 0 { 3e38 } else { val(i, 1.3) }).collect();
        let settings = AdamSettings { learning_rate: 0.01, weight_decay: 0.1, clip_norm: None };
        let c = Moments::new(&settings, 3, None).unwrap();
        let (mut p1, mut m1, mut v1) = (p.clone(), m.clone(), v.clone());
        adam_pass_in_place(&mut p1, &mut m1, &mut v1, &g, &c);
        let (mut p2, mut m2, mut v2) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        let finite = adam_pass_staged(Old { p: &p, m: &m, v: &v, g: &g }, New { p: &mut p2, m: &mut m2, v: &mut v2 }, &c);
        assert!(finite);
        assert_eq!((p1, m1, v1), (p2, m2, v2));
    }

    #[test]
    fn tracked_bounds_take_the_fast_path_and_stay_exact() {
        let mut a = Adam::<f32>::new(3);
        let mut b = Adam::<f32>::new(3);
        let (mut p, mut q) = (vec![0.5f32, -1.0, 2.0], vec![0.5f32, -1.0, 2.0]);
        let mut bound = None;
        for k in 0..5 {
            let g = [0.1 * k as f32, -0.2, 1e-3];
            a.update_tracked(&mut p, &g, &settings(0.01), &mut bound).unwrap();
            b.update(&mut q, &g, &settings(0.01)).unwrap();
            assert!(bound.is_some_and(|b| b >= 2.0), "the bound is kept and covers the weights");
        }
        assert_eq!(p, q, "tracked or not, the same bits");
        // A loose bound is measured again rather than refusing a safe step.
        let mut loose = Some(3e38);
        a.update_tracked(&mut p, &[0.1, 0.1, 0.1], &settings(0.01), &mut loose).unwrap();
        assert!(loose.unwrap() < 1e30);
    }

    #[test]
    fn state_round_trip_and_validation() {
        let mut a = Adam::<f32>::new(3);
        let mut p = vec![0.1f32, 0.2, 0.3];
        a.update(&mut p, &[1.0, -1.0, 0.5], &settings(0.01)).unwrap();
        let mut b = Adam::<f32>::new(3);
        b.set_state(a.m.clone(), a.v.clone(), a.step).unwrap();
        let mut q = p.clone();
        a.update(&mut p, &[0.3, 0.3, 0.3], &settings(0.01)).unwrap();
        b.update(&mut q, &[0.3, 0.3, 0.3], &settings(0.01)).unwrap();
        assert!(b.update(&mut q, &[f32::NAN, 0.0, 0.0], &settings(0.01)).is_err());
        assert_eq!(b.step, 2, "a failed update changes nothing");
        assert_eq!(p, q);
        assert!(b.set_state(vec![0.0; 2], vec![0.0; 3], 1).is_err());
        assert!(b.set_state(vec![0.0; 3], vec![-1.0, 0.0, 0.0], 1).is_err());
        assert!(b.set_state(vec![f32::NAN, 0.0, 0.0], vec![0.0; 3], 1).is_err());
        assert!(b.set_state(vec![1.0, 0.0, 0.0], vec![0.0; 3], 0).is_err());
    }
}
