//! The library's worker threads: one rayon pool shared by the model's
//! kernels and the batched featurisers, sized by [`set_num_threads`].
//!
//! Results never depend on the thread count: work is split into tasks whose
//! boundaries depend only on the problem size (fixed row chunks, one task per
//! modality pair), each task writes its own output, and partial sums are
//! combined in task order.

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

static POOL: RwLock<Option<Arc<rayon::ThreadPool>>> = RwLock::new(None);
/// 0 = not chosen yet (the default applies on first use).
static NUM_THREADS: AtomicUsize = AtomicUsize::new(0);

/// The default: `GRAPHEME_MM_NUM_THREADS`, else `RAYON_NUM_THREADS`, else
/// the number of CPUs this process may use.
fn default_threads() -> usize {
    ["GRAPHEME_MM_NUM_THREADS", "RAYON_NUM_THREADS"]
        .iter()
        .find_map(|var| std::env::var(var).ok()?.trim().parse::<usize>().ok().filter(|&n| n > 0))
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The number of threads the library computes with.
pub fn num_threads() -> usize {
    match NUM_THREADS.load(Ordering::Acquire) {
        0 => {
            let n = default_threads();
            // Another thread may have set it meanwhile: keep theirs.
            let _ = NUM_THREADS.compare_exchange(0, n, Ordering::AcqRel, Ordering::Acquire);
            NUM_THREADS.load(Ordering::Acquire)
        }
        n => n,
    }
}

/// Sets the number of threads (≥ 1). Takes effect for calls that start
/// afterwards; calls already running finish on the old pool.
pub fn set_num_threads(n: usize) -> Result<()> {
    if n == 0 {
        return Err(Error::invalid("n", "got 0; expected a positive number of threads"));
    }
    let mut pool = POOL.write().unwrap_or_else(|e| e.into_inner());
    if NUM_THREADS.load(Ordering::Acquire) != n || pool.as_ref().is_some_and(|p| p.current_num_threads() != n) {
        *pool = None; // rebuilt lazily with the new size
    }
    NUM_THREADS.store(n, Ordering::Release);
    Ok(())
}

/// The pool, built on first use with [`num_threads`] workers; `None` when
/// no worker thread can be started (then everything runs on the caller's
/// thread).
pub fn pool() -> Option<Arc<rayon::ThreadPool>> {
    let n = num_threads();
    if let Some(p) = POOL.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
        if p.current_num_threads() == n {
            return Some(Arc::clone(p));
        }
    }
    let mut slot = POOL.write().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = slot.as_ref() {
        if p.current_num_threads() == n {
            return Some(Arc::clone(p));
        }
    }
    let built = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(|i| format!("grapheme-mm-{i}"))
        .build()
        .ok()
        .map(Arc::new);
    slot.clone_from(&built);
    built
}

/// Runs `f(task)` for every task in `0..tasks`, on the pool when there is
/// more than one task and more than one thread, else in order on this thread.
/// Each task must write only its own outputs.
pub fn for_each_task(tasks: usize, f: impl Fn(usize) + Sync + Send) {
    if tasks <= 1 || num_threads() <= 1 {
        (0..tasks).for_each(f);
        return;
    }
    use rayon::prelude::*;
    match pool() {
        Some(pool) => pool.install(|| (0..tasks).into_par_iter().with_max_len(1).for_each(f)),
        None => (0..tasks).for_each(f),
    }
}

/// Like [`for_each_task`] but collecting each task's result, in task order.
pub fn map_tasks<R: Send>(tasks: usize, f: impl Fn(usize) -> R + Sync + Send) -> Vec<R> {
    if tasks <= 1 || num_threads() <= 1 {
        return (0..tasks).map(f).collect();
    }
    use rayon::prelude::*;
    match pool() {
        Some(pool) => pool.install(|| (0..tasks).into_par_iter().with_max_len(1).map(f).collect()),
        None => (0..tasks).map(f).collect(),
    }
}

/// Runs `f(item)` for every item, on the pool when there are several items
/// and threads.
pub fn for_each_item<I: Send>(items: Vec<I>, f: impl Fn(I) + Sync + Send) {
    if items.len() <= 1 || num_threads() <= 1 {
        items.into_iter().for_each(f);
        return;
    }
    use rayon::prelude::*;
    match pool() {
        Some(pool) => pool.install(|| items.into_par_iter().with_max_len(1).for_each(f)),
        None => items.into_iter().for_each(f),
    }
}

/// Runs `f` inside the pool (so rayon parallel iterators in it use the
/// library's threads).
pub fn install<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    match pool() {
        Some(pool) => pool.install(f),
        None => f(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_run_once_each_and_results_keep_order() {
        let out = map_tasks(37, |t| t * t);
        assert_eq!(out, (0..37).map(|t| t * t).collect::<Vec<_>>());
        let hits: Vec<AtomicUsize> = (0..19).map(|_| AtomicUsize::new(0)).collect();
        for_each_task(19, |t| {
            hits[t].fetch_add(1, Ordering::Relaxed);
        });
        assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
        assert!(set_num_threads(0).is_err());
    }
}
