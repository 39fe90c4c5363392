//! Shape and value checks shared by the model's entry points.

use crate::error::{fmt_shape, Error, Result};
use crate::real::Real;
use ndarray::{ArrayBase, Data, Dimension};

/// Checks `a`'s shape against `expected`, where `None` accepts any length.
pub fn check_shape<S: Data, D: Dimension>(arg: &str, a: &ArrayBase<S, D>, expected: &[Option<usize>]) -> Result<()> {
    let got = a.shape();
    let ok = got.len() == expected.len() && got.iter().zip(expected).all(|(g, e)| e.is_none_or(|e| e == *g));
    if ok {
        return Ok(());
    }
    let want: Vec<String> = expected
        .iter()
        .map(|e| e.map_or_else(|| "any".to_string(), |e| e.to_string()))
        .collect();
    let want = if want.len() == 1 {
        format!("({},)", want[0])
    } else {
        format!("({})", want.join(", "))
    };
    Err(Error::shape(arg, want, fmt_shape(got)))
}

/// Fails on the first NaN or infinity, naming its index.
pub fn check_finite<T: Real, S: Data<Elem = T>, D: Dimension>(arg: &str, a: &ArrayBase<S, D>) -> Result<()> {
    let fast = match a.as_slice_memory_order() {
        Some(s) => all_finite(s),
        None => a.iter().all(|v| v.is_finite()),
    };
    if fast {
        return Ok(());
    }
    match a.indexed_iter().find(|(_, v)| !v.is_finite()) {
        None => Ok(()),
        Some((idx, _)) => Err(Error::non_finite(arg, format!("index {idx:?}"))),
    }
}

/// Whether every value is finite: `v · 0` is 0 for finite `v` and NaN
/// otherwise, summed in 32 lanes (vectorisable, no branch per value; four
/// independent vector sums, where one waited on the latency of each add).
pub fn all_finite<T: Real>(values: &[T]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if values.len() >= 4096 && crate::kernels::x86_ok() {
        // SAFETY: AVX2 checked.
        return unsafe { all_finite_avx2(values) };
    }
    all_finite_pass(values)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn all_finite_avx2<T: Real>(values: &[T]) -> bool {
    all_finite_pass(values)
}

#[inline(always)]
fn all_finite_pass<T: Real>(values: &[T]) -> bool {
    const LANES: usize = 32;
    let mut acc = [T::zero(); LANES];
    let chunks = values.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for l in 0..LANES {
            acc[l] += c[l] * T::zero();
        }
    }
    tail.iter().all(|v| v.is_finite()) && acc.iter().all(|v| *v == T::zero())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_finite_finds_any_non_finite_value_at_any_position() {
        for len in [0, 1, 7, 8, 31, 32, 33, 64, 100, 4095, 4096, 4097, 4096 + 31, 5000] {
            let mut v: Vec<f32> = (0..len).map(|i| [f32::MAX, -f32::MAX, 1e-45, -0.0, 1.5][i % 5]).collect();
            assert!(all_finite(&v), "{len}");
            let w: Vec<f64> = v.iter().map(|&x| f64::from(x) * 1e200).collect();
            assert!(all_finite(&w), "{len}");
            for i in (0..len).filter(|i| i % 29 == 0 || *i + 1 == len || *i < 40) {
                for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                    let old = std::mem::replace(&mut v[i], bad);
                    assert!(!all_finite(&v), "{len} {i} {bad}");
                    let w: Vec<f64> = v.iter().map(|&x| f64::from(x)).collect();
                    assert!(!all_finite(&w), "{len} {i} {bad}");
                    v[i] = old;
                }
            }
        }
    }
}
