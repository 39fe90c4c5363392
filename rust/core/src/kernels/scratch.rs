//! Reusable buffers for large temporaries (e.g. the `[B, B]` logits of the
//! contrastive objective): taken from and given back to a small pool per
//! thread, so a training loop stops mapping fresh pages on every step.

use std::any::Any;
use std::cell::RefCell;

/// Buffers kept per thread (the largest ones win when the pool is full).
const KEEP: usize = 8;

thread_local! {
    /// `(bytes, Box<Vec<T>>)` of each pooled buffer.
    static POOL: RefCell<Vec<(usize, Box<dyn Any>)>> = const { RefCell::new(Vec::new()) };
}

/// A zero-filled `Vec<T>` of `len`, reusing a pooled buffer when one is
/// large enough.
pub fn take<T: Copy + Default + 'static>(len: usize) -> Vec<T> {
    let reused = POOL.with(|pool| {
        let mut pool = pool.try_borrow_mut().ok()?;
        // The smallest buffer of this type that fits.
        let best = pool
            .iter()
            .enumerate()
            .filter_map(|(i, (_, b))| b.downcast_ref::<Vec<T>>().map(|v| (i, v.capacity())))
            .filter(|&(_, cap)| cap >= len)
            .min_by_key(|&(_, cap)| cap)?
            .0;
        pool.swap_remove(best).1.downcast::<Vec<T>>().ok().map(|b| *b)
    });
    let mut v = reused.unwrap_or_default();
    v.clear();
    v.resize(len, T::default());
    v
}

/// Returns a buffer to this thread's pool.
pub fn give<T: 'static>(v: Vec<T>) {
    if v.capacity() == 0 {
        return;
    }
    POOL.with(|pool| {
        let Ok(mut pool) = pool.try_borrow_mut() else { return };
        pool.push((v.capacity() * std::mem::size_of::<T>(), Box::new(v)));
        if pool.len() > KEEP {
            let smallest = pool.iter().enumerate().min_by_key(|(_, (bytes, _))| *bytes).map(|(i, _)| i).expect("non-empty");
            pool.swap_remove(smallest);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_zeroed_and_reused() {
        let mut v: Vec<f32> = take(1000);
        assert!(v.iter().all(|&x| x == 0.0));
        v.fill(3.0);
        let ptr = v.as_ptr();
        give(v);
        let w: Vec<f32> = take(500);
        assert_eq!(w.as_ptr(), ptr, "the pooled buffer is reused");
        assert_eq!(w.len(), 500);
        assert!(w.iter().all(|&x| x == 0.0), "and zeroed");
        let other: Vec<f64> = take(10);
        assert!(other.iter().all(|&x| x == 0.0));
        give(w);
        give(other);
    }
}
