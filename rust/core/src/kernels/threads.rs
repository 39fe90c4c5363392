//! The library's worker threads: one rayon pool shared by the model's
//! kernels and the batched featurisers, sized by [`set_num_threads`].
//!
//! Results never depend on the thread count: work is split into tasks whose
//! boundaries depend only on the problem size (fixed row chunks, one task per
//! modality pair), each task writes its own output, and partial sums are
//! combined in task order.

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// The helper pool and the process that started its threads: a child made
/// by `fork()` has none of them (only the forking thread is copied), so it
/// must build its own rather than wait on threads that do not exist.
static POOL: RwLock<Option<(u32, Arc<rayon::ThreadPool>)>> = RwLock::new(None);
/// 0 = not chosen yet (the default applies on first use).
static NUM_THREADS: AtomicUsize = AtomicUsize::new(0);

/// How many threads per CPU the library will use at most.
pub const MAX_THREADS_PER_CPU: usize = 4;

/// The number of CPUs this process may use.
fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The most threads the library computes with: [`MAX_THREADS_PER_CPU`] per
/// CPU this process may use. More only adds waiting (thousands of threads
/// made one batched forward take seconds); larger requests are clamped.
pub fn max_threads() -> usize {
    cpus().saturating_mul(MAX_THREADS_PER_CPU)
}

/// The default: `GRAPHEME_MM_NUM_THREADS`, else `RAYON_NUM_THREADS`, else
/// the number of CPUs this process may use (at most [`max_threads`]).
fn default_threads() -> usize {
    ["GRAPHEME_MM_NUM_THREADS", "RAYON_NUM_THREADS"]
        .iter()
        .find_map(|var| std::env::var(var).ok()?.trim().parse::<usize>().ok().filter(|&n| n > 0))
        .unwrap_or_else(cpus)
        .min(max_threads())
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

/// Sets the number of threads (≥ 1), the calling thread included, clamped
/// to [`max_threads`]; returns the number set. Takes effect for calls that
/// start afterwards; calls already running finish on the old pool.
pub fn set_num_threads(n: usize) -> Result<usize> {
    if n == 0 {
        return Err(Error::invalid("n", "got 0; expected a positive number of threads"));
    }
    let n = n.min(max_threads());
    let mut pool = POOL.write().unwrap_or_else(|e| e.into_inner());
    if pool.as_ref().is_some_and(|(_, p)| p.current_num_threads() != n - 1) {
        // Rebuilt lazily with the new size.
        retire(&mut pool);
    }
    NUM_THREADS.store(n, Ordering::Release);
    Ok(n)
}

/// The pool of helper threads: `num_threads() − 1` workers, since the
/// calling thread always works too (on a machine with few cores, a caller
/// blocked while `n` workers run, and `n` idle workers spinning while the
/// caller runs serial code, both cost a core). `None` with one thread, or
/// when no worker thread can be started (then everything runs on the
/// caller's thread).
pub fn pool() -> Option<Arc<rayon::ThreadPool>> {
    let helpers = num_threads() - 1;
    if helpers == 0 {
        return None;
    }
    let pid = std::process::id();
    let usable = |(owner, p): &(u32, Arc<rayon::ThreadPool>)| (*owner == pid && p.current_num_threads() == helpers).then(|| Arc::clone(p));
    if let Some(p) = POOL.read().unwrap_or_else(|e| e.into_inner()).as_ref().and_then(usable) {
        return Some(p);
    }
    let mut slot = POOL.write().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = slot.as_ref().and_then(usable) {
        return Some(p);
    }
    retire(&mut slot);
    let built = rayon::ThreadPoolBuilder::new()
        .num_threads(helpers)
        .thread_name(|i| format!("grapheme-mm-{i}"))
        .build()
        .ok()
        .map(Arc::new);
    *slot = built.clone().map(|p| (pid, p));
    built
}

/// Empties the pool's slot. A pool inherited through fork() is forgotten,
/// not dropped: its threads live only in the parent, and dropping it would
/// signal threads that do not exist here.
fn retire(slot: &mut Option<(u32, Arc<rayon::ThreadPool>)>) {
    if let Some((owner, old)) = slot.take() {
        if owner != std::process::id() {
            std::mem::forget(old);
        }
    }
}

/// Runs `f(task)` for every task in `0..tasks`: the calling thread and the
/// pool's helpers claim tasks one at a time from a shared counter until
/// none is left (so a thread that is descheduled holds up at most one
/// task). In order on this thread when there is one task or one thread.
/// Each task must write only its own outputs.
pub fn for_each_task(tasks: usize, f: impl Fn(usize) + Sync + Send) {
    let pool = if tasks > 1 { pool() } else { None };
    let Some(pool) = pool else {
        (0..tasks).for_each(f);
        return;
    };
    let next = AtomicUsize::new(0);
    let work = || loop {
        let t = next.fetch_add(1, Ordering::Relaxed);
        if t >= tasks {
            break;
        }
        f(t);
    };
    let helpers = pool.current_num_threads().min(tasks - 1);
    pool.in_place_scope(|scope| {
        for _ in 0..helpers {
            scope.spawn(|_| work());
        }
        work();
    });
}

/// Like [`for_each_task`] but collecting each task's result, in task order.
pub fn map_tasks<R: Send>(tasks: usize, f: impl Fn(usize) -> R + Sync + Send) -> Vec<R> {
    if tasks <= 1 || num_threads() <= 1 {
        return (0..tasks).map(f).collect();
    }
    let slots: Vec<Mutex<Option<R>>> = (0..tasks).map(|_| Mutex::new(None)).collect();
    for_each_task(tasks, |t| {
        let r = f(t);
        *slots[t].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
    });
    slots
        .into_iter()
        .map(|s| s.into_inner().unwrap_or_else(|e| e.into_inner()).expect("every task ran"))
        .collect()
}

/// Like [`for_each_item`] but collecting each item's result, in item order.
pub fn map_items<I: Send, R: Send>(items: Vec<I>, f: impl Fn(I) -> R + Sync + Send) -> Vec<R> {
    let mut results: Vec<Option<R>> = Vec::new();
    results.resize_with(items.len(), || None);
    let tasks: Vec<(I, &mut Option<R>)> = items.into_iter().zip(results.iter_mut()).collect();
    for_each_item(tasks, |(item, slot)| *slot = Some(f(item)));
    results.into_iter().map(|r| r.expect("every item ran")).collect()
}

/// Runs `f(item)` for every item (see [`for_each_task`]).
pub fn for_each_item<I: Send>(items: Vec<I>, f: impl Fn(I) + Sync + Send) {
    if items.len() <= 1 || num_threads() <= 1 {
        items.into_iter().for_each(f);
        return;
    }
    let slots: Vec<Mutex<Option<I>>> = items.into_iter().map(|i| Mutex::new(Some(i))).collect();
    for_each_task(slots.len(), |t| {
        let item = slots[t].lock().unwrap_or_else(|e| e.into_inner()).take().expect("each item is taken once");
        f(item);
    });
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
