//! Sizes that come from users (a config, a checkpoint, a batch) are checked
//! before anything is allocated: the byte count with checked arithmetic,
//! against the memory this machine has, and the allocation itself fallibly.
//! Any of these failing is [`Error::TooLarge`] naming what was too large,
//! never a "capacity overflow" panic or an aborting allocation failure.

use crate::error::{Error, Result};
use std::sync::OnceLock;

/// The bytes this process may use at most: the physical memory, or the
/// cgroup's limit or the process's address-space or data-size limit
/// (`ulimit -v`, `ulimit -d`, as batch schedulers set) when lower (Linux);
/// unknown elsewhere (then only the address space bounds it). Read once.
pub fn budget() -> usize {
    static BUDGET: OnceLock<usize> = OnceLock::new();
    *BUDGET.get_or_init(|| physical_memory().unwrap_or(isize::MAX as usize))
}

#[cfg(target_os = "linux")]
fn physical_memory() -> Option<usize> {
    let total = std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| {
        let line = s.lines().find(|l| l.starts_with("MemTotal:"))?;
        let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
        kib.checked_mul(1024)
    })?;
    let limit = ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok()?.trim().parse::<usize>().ok())
        .min();
    let total = limit.map_or(total, |l| l.min(total));
    // Under `ulimit -v` an allocation above the limit fails rather than being
    // overcommitted: numpy then raised a MemoryError naming no argument, and
    // Rust aborted the process. The soft limits bound what may be had.
    Some(rlimits().map_or(total, |l| l.min(total)))
}

/// The lower of the soft "Max address space" and "Max data size" limits of
/// this process, when either is set (`/proc/self/limits`, in bytes).
#[cfg(target_os = "linux")]
fn rlimits() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    limits
        .lines()
        .filter(|l| l.starts_with("Max address space") || l.starts_with("Max data size"))
        .filter_map(|l| l.split_whitespace().nth(3)?.parse::<usize>().ok()) // "unlimited" does not parse
        .min()
}

#[cfg(not(target_os = "linux"))]
fn physical_memory() -> Option<usize> {
    None
}

/// Human-readable bytes: `1.5 GiB`.
pub fn fmt_bytes(bytes: usize) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// `count × elem_bytes` when it fits in memory; else `TooLarge` on `arg`
/// saying that `what` (e.g. "the [B, B] logits") needs more than there is.
pub fn check(arg: &str, what: impl std::fmt::Display, count: usize, elem_bytes: usize) -> Result<usize> {
    let bytes = count.checked_mul(elem_bytes).filter(|&b| b <= isize::MAX as usize);
    match bytes {
        Some(b) if b <= budget() => Ok(b),
        Some(b) => Err(Error::too_large(
            arg,
            format!("{what} would need {} but this machine has {} of memory", fmt_bytes(b), fmt_bytes(budget())),
        )),
        None => Err(Error::too_large(arg, format!("{what} would need {count} × {elem_bytes} bytes, more than any address space holds"))),
    }
}

/// The product of `dims` with checked arithmetic (`None` on overflow).
pub fn product(dims: &[usize]) -> Option<usize> {
    dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

/// A `Vec` of `len` copies of `value`, allocated fallibly after [`check`].
pub fn try_vec<T: Clone>(arg: &str, what: &str, len: usize, value: T) -> Result<Vec<T>> {
    let mut v = try_with_capacity(arg, what, len)?;
    v.resize(len, value);
    Ok(v)
}

/// An empty `Vec` with room for `capacity` values, checked against the
/// memory budget and allocated fallibly (for buffers filled by `extend`).
pub fn try_with_capacity<T>(arg: &str, what: &str, capacity: usize) -> Result<Vec<T>> {
    check(arg, what, capacity, std::mem::size_of::<T>().max(1))?;
    let mut v = Vec::new();
    v.try_reserve_exact(capacity).map_err(|_| refused(arg, what, capacity, std::mem::size_of::<T>()))?;
    Ok(v)
}

/// Types whose all-zero bit pattern is the value zero (so a zeroed
/// allocation is a valid, zero-filled buffer of them).
///
/// # Safety
/// Implement only for types for which every byte being 0 is a valid value.
pub unsafe trait Zeroable: Copy {}
// SAFETY: 0.0 is all zero bits in IEEE 754.
unsafe impl Zeroable for f32 {}
// SAFETY: as for f32.
unsafe impl Zeroable for f64 {}
// SAFETY: `false` is the byte 0.
unsafe impl Zeroable for bool {}
// SAFETY: integers are plain bits.
unsafe impl Zeroable for usize {}
// SAFETY: integers are plain bits.
unsafe impl Zeroable for u64 {}

/// `len` zeros, allocated fallibly after [`check`]: one zeroed allocation
/// (`calloc`), so untouched pages cost nothing, as `vec![0.0; len]`.
pub fn try_zeros<T: Zeroable>(arg: &str, what: &str, len: usize) -> Result<Vec<T>> {
    let size = std::mem::size_of::<T>();
    check(arg, what, len, size.max(1))?;
    if len == 0 || size == 0 {
        return Ok(Vec::new());
    }
    let layout = std::alloc::Layout::array::<T>(len).map_err(|_| refused(arg, what, len, size))?;
    // SAFETY: the layout has a nonzero size (len > 0, size > 0).
    let ptr = unsafe { std::alloc::alloc_zeroed(layout) } as *mut T;
    if ptr.is_null() {
        return Err(refused(arg, what, len, size));
    }
    // SAFETY: `ptr` was allocated by the global allocator with the layout of
    // `[T; len]`, so capacity `len` matches; all `len` values are zero bits,
    // which `Zeroable` makes valid values of `T`.
    Ok(unsafe { Vec::from_raw_parts(ptr, len, len) })
}

fn refused(arg: &str, what: &str, len: usize, size: usize) -> Error {
    let bytes = len.saturating_mul(size);
    Error::too_large(arg, format!("{what} needs {}, which could not be allocated", fmt_bytes(bytes)))
}

/// An `ndarray` of zeros of `shape`, allocated fallibly.
pub fn try_zeros_array<T: Zeroable, Sh: ndarray::ShapeBuilder>(arg: &str, what: &str, shape: Sh) -> Result<ndarray::Array<T, Sh::Dim>> {
    use ndarray::Dimension;
    let shape = shape.into_shape_with_order();
    let len = shape.raw_dim().size_checked().ok_or_else(|| {
        Error::too_large(arg, format!("{what} of shape {:?} has more values than any address space holds", shape.raw_dim().slice()))
    })?;
    let data = try_zeros(arg, what, len)?;
    Ok(ndarray::Array::from_shape_vec(shape, data).expect("the shape's product is the data's length"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_beyond_memory_are_refused_before_allocating() {
        assert!(budget() > 0);
        let err = check("n", "the buffer", usize::MAX, 4).unwrap_err();
        assert!(matches!(err, Error::TooLarge { .. }) && err.to_string().contains("address space"), "{err}");
        let err = try_zeros::<f32>("n", "the buffer", 1 << 60).unwrap_err();
        assert!(err.to_string().starts_with("n: the buffer would need"), "{err}");
        assert!(try_vec("n", "labels", 1usize << 59, String::new()).is_err());
        let a: ndarray::Array2<f32> = try_zeros_array("x", "the output", (3, 4)).unwrap();
        assert_eq!(a, ndarray::Array2::zeros((3, 4)));
        assert!(try_zeros_array::<f32, _>("x", "the output", (usize::MAX, 2)).is_err());
        assert_eq!(fmt_bytes(1536), "1.5 KiB");
        assert_eq!(product(&[usize::MAX, 2]), None);
    }
}
