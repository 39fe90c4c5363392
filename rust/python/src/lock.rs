//! `_core.Gate`: the bookkeeping of the Python `ModelLock` (readers share, a
//! writer excludes everyone, an update excludes writers and other updates;
//! all re-entrant within a thread; see `_locking.py`).
//!
//! Why in Rust: Python may raise a pending Ctrl-C on entering any Python
//! function, so a lock whose `__enter__`/`__exit__` are Python code can be
//! left held (an interrupt on entering `__exit__`) or counted wrong (one
//! between two of its statements), and every other thread then waits
//! forever. Here entering and leaving are single calls into Rust that Python
//! cannot interrupt halfway: a guard's `__exit__` always completes, and an
//! interrupted wait in `__enter__` undoes what it did before raising.
//!
//! The state's mutex is held only for a few field updates, never while
//! waiting for the GIL or calling Python, so taking it with the GIL held
//! cannot deadlock. Waits run with the GIL released and wake every
//! [`TICK`] to run Python's signal handlers, so Ctrl-C stays able to
//! interrupt a thread waiting for the model.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, TryLockError};
use std::time::Duration;

/// How often a waiting thread takes the GIL back to run signal handlers.
const TICK: Duration = Duration::from_millis(20);

/// What a child process forked while other threads held the gate may do
/// with the model (`Gate::fork_state`).
const FORK_WHOLE: u8 = 0;
/// Other threads were reading: the model's own readers-writer lock (Rust)
/// may still count them, so a change would wait for them forever.
const FORK_READ_ONLY: u8 = 1;
/// Another thread was changing the model (or held the gate's mutex).
const FORK_REFUSED: u8 = 2;

const FORKED_MID_CHANGE: &str = "this process was forked while another thread was changing the model, so the model's \
     state here may be half-written; load it again (from a checkpoint) in this process, or fork before \
     training starts (multiprocessing: the 'spawn' or 'forkserver' start method)";

const FORKED_MID_READ: &str = "this process was forked while another thread was reading the model: it can be read \
     here but not changed (the other thread's hold on it was copied, the thread was not); load it again \
     (from a checkpoint) in this process to change it, or fork when no other thread uses the model \
     (multiprocessing: the 'spawn' or 'forkserver' start method)";

static NEXT_THREAD: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static THREAD: u64 = NEXT_THREAD.fetch_add(1, Ordering::Relaxed);
}

/// This OS thread's id (one per Python thread).
fn current_thread() -> u64 {
    THREAD.with(|id| *id)
}

#[derive(Default)]
struct State {
    /// Reading threads and their depth.
    readers: HashMap<u64, usize>,
    writer: Option<u64>,
    writer_depth: usize,
    /// Writers waiting for the readers to leave (new readers wait behind them).
    writers_waiting: usize,
    /// The thread running an update (`fit`) or a write, and its depth.
    updater: Option<u64>,
    update_depth: usize,
    /// Threads blocked in a wait (for tests that line threads up).
    waiting: usize,
}

impl State {
    /// In a child process just forked by thread `me`: the other threads'
    /// holds are gone with the threads. Returns what the child may do
    /// (`FORK_*`): a write in progress may have left the model half-written;
    /// reads leave it whole but may still be counted by the model's own
    /// lock; an update (`fit`) between its steps leaves it whole.
    fn keep_only(&mut self, me: u64) -> u8 {
        let other_writer = self.writer.is_some_and(|t| t != me);
        let other_readers = self.readers.keys().any(|&t| t != me);
        self.readers.retain(|&t, _| t == me);
        if self.updater.is_some_and(|t| t != me) {
            self.updater = None;
            self.update_depth = 0;
        }
        if other_writer {
            self.writer = None;
            self.writer_depth = 0;
        }
        // Only other threads wait (`me` is forking): none exist here.
        self.writers_waiting = 0;
        self.waiting = 0;
        if other_writer {
            FORK_REFUSED
        } else if other_readers {
            FORK_READ_ONLY
        } else {
            FORK_WHOLE
        }
    }

    fn take_update(&mut self, me: u64) {
        self.updater = Some(me);
        self.update_depth += 1;
    }

    fn give_update(&mut self) {
        self.update_depth -= 1;
        if self.update_depth == 0 {
            self.updater = None;
        }
    }
}

#[pyclass(name = "Gate", module = "grapheme_multimodal._core", frozen)]
pub struct Gate {
    state: Mutex<State>,
    changed: Condvar,
    /// `FORK_*`, set in a child process forked while other threads held the
    /// gate: refused, entering raises and leaving is a no-op (the state's
    /// mutex may be held by a thread the child does not have); read-only,
    /// entering to write or update raises.
    fork_state: AtomicU8,
}

impl Gate {
    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding it; should something, the counts are still whole.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits (GIL released, signal handlers run every tick) until
    /// `blocked` is false, then runs `enter` under the state's mutex. When a
    /// signal handler raises (Ctrl-C), `undo` runs under the mutex, waiters
    /// are woken, and the exception is returned.
    fn wait_then(
        &self,
        py: Python<'_>,
        blocked: impl Fn(&State) -> bool + Sync,
        enter: impl Fn(&mut State) + Sync,
        undo: impl Fn(&mut State),
    ) -> PyResult<()> {
        // Counted for the whole wait, not per tick: a count that dropped
        // between ticks let tests that line threads up miss it.
        self.state().waiting += 1;
        loop {
            let entered = py.detach(|| {
                let mut state = self.state();
                let mut ticks = 0;
                while blocked(&state) && ticks < 5 {
                    state = self.changed.wait_timeout(state, TICK).unwrap_or_else(|p| p.into_inner()).0;
                    ticks += 1;
                }
                let free = !blocked(&state);
                if free {
                    enter(&mut state);
                    state.waiting -= 1;
                }
                free
            });
            if entered {
                return Ok(());
            }
            if let Err(interrupt) = py.check_signals() {
                let mut state = self.state();
                undo(&mut state);
                state.waiting -= 1;
                drop(state);
                self.changed.notify_all();
                return Err(interrupt);
            }
        }
    }

    fn refused_after_fork(&self) -> bool {
        self.fork_state.load(Ordering::Relaxed) == FORK_REFUSED
    }

    fn check_fork(&self, changing: bool) -> PyResult<()> {
        match self.fork_state.load(Ordering::Relaxed) {
            FORK_REFUSED => Err(PyRuntimeError::new_err(FORKED_MID_CHANGE)),
            FORK_READ_ONLY if changing => Err(PyRuntimeError::new_err(FORKED_MID_READ)),
            _ => Ok(()),
        }
    }

    fn enter_read(&self, py: Python<'_>) -> PyResult<()> {
        self.check_fork(false)?;
        let me = current_thread();
        {
            let mut state = self.state();
            let nested = state.writer == Some(me) || state.readers.contains_key(&me);
            if nested || (state.writer.is_none() && state.writers_waiting == 0) {
                *state.readers.entry(me).or_insert(0) += 1;
                return Ok(());
            }
        }
        self.wait_then(
            py,
            |s| s.writer.is_some() || s.writers_waiting > 0,
            |s| *s.readers.entry(me).or_insert(0) += 1,
            |_| {},
        )
    }

    fn exit_read(&self) -> PyResult<()> {
        if self.refused_after_fork() {
            return Ok(()); // the state's mutex may be held by a thread that is not here
        }
        let me = current_thread();
        let mut state = self.state();
        let depth = state.readers.get_mut(&me).ok_or_else(|| PyRuntimeError::new_err("this thread is not reading the model"))?;
        *depth -= 1;
        if *depth == 0 {
            state.readers.remove(&me);
            if state.writers_waiting > 0 {
                self.changed.notify_all();
            }
        }
        Ok(())
    }

    fn enter_write(&self, py: Python<'_>) -> PyResult<()> {
        self.check_fork(true)?;
        let me = current_thread();
        {
            let mut state = self.state();
            if state.writer == Some(me) {
                state.writer_depth += 1;
                return Ok(());
            }
            if state.readers.contains_key(&me) {
                return Err(PyRuntimeError::new_err("a thread that is reading the model cannot start to change it"));
            }
            if state.updater.is_none() || state.updater == Some(me) {
                state.take_update(me);
                state.writers_waiting += 1;
            } else {
                drop(state);
                // Another thread's update or write: wait for the update slot first.
                self.wait_then(
                    py,
                    |s| s.updater.is_some_and(|t| t != me),
                    |s| {
                        s.take_update(me);
                        s.writers_waiting += 1;
                    },
                    |_| {},
                )?;
            }
        }
        let enter = |s: &mut State| {
            s.writers_waiting -= 1;
            s.writer = Some(me);
            s.writer_depth = 1;
        };
        {
            let mut state = self.state();
            if state.readers.is_empty() {
                enter(&mut state);
                return Ok(());
            }
        }
        self.wait_then(py, |s| !s.readers.is_empty(), enter, |s| {
            // Interrupted: give up the place in the queue, so the readers behind it get in.
            s.writers_waiting -= 1;
            s.give_update();
        })
    }

    fn exit_write(&self) -> PyResult<()> {
        if self.refused_after_fork() {
            return Ok(()); // the state's mutex may be held by a thread that is not here
        }
        let me = current_thread();
        let mut state = self.state();
        if state.writer != Some(me) {
            return Err(PyRuntimeError::new_err("this thread is not changing the model"));
        }
        state.writer_depth -= 1;
        if state.writer_depth == 0 {
            state.writer = None;
            state.give_update();
            self.changed.notify_all();
        }
        Ok(())
    }

    fn enter_update(&self, py: Python<'_>) -> PyResult<()> {
        self.check_fork(true)?;
        let me = current_thread();
        {
            let mut state = self.state();
            if state.updater.is_none() || state.updater == Some(me) {
                state.take_update(me);
                return Ok(());
            }
        }
        self.wait_then(py, |s| s.updater.is_some_and(|t| t != me), |s| s.take_update(me), |_| {})
    }

    fn exit_update(&self) -> PyResult<()> {
        if self.refused_after_fork() {
            return Ok(()); // the state's mutex may be held by a thread that is not here
        }
        let me = current_thread();
        let mut state = self.state();
        if state.updater != Some(me) {
            return Err(PyRuntimeError::new_err("this thread is not updating the model"));
        }
        state.give_update();
        if state.updater.is_none() {
            self.changed.notify_all();
        }
        Ok(())
    }
}

#[pymethods]
impl Gate {
    #[new]
    fn new() -> Self {
        Gate { state: Mutex::new(State::default()), changed: Condvar::new(), fork_state: AtomicU8::new(FORK_WHOLE) }
    }

    /// Called in a child process right after `fork()` (`os.register_at_fork`),
    /// by the thread that forked, the only one the child has. The holds of
    /// the parent's other threads are dropped (they would wait forever
    /// otherwise). If one of them was writing, or held the state's mutex (a
    /// few instructions of bookkeeping), the model may be half-written or
    /// the mutex never released: entering then raises `RuntimeError`. If
    /// others were reading, the model is whole but its own lock may count
    /// them: reading works, changing it raises.
    fn after_fork_in_child(&self) {
        let me = current_thread();
        let fork_state = match self.state.try_lock() {
            Ok(mut state) => state.keep_only(me),
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner().keep_only(me),
            Err(TryLockError::WouldBlock) => FORK_REFUSED,
        };
        // The worst of this fork and any before it (a child of a refused child stays refused).
        self.fork_state.fetch_max(fork_state, Ordering::Relaxed);
    }

    /// Writers waiting for readers to leave.
    #[getter]
    fn writers_waiting(&self) -> usize {
        self.state().writers_waiting
    }

    /// Threads blocked waiting for the lock.
    #[getter]
    fn waiting(&self) -> usize {
        self.state().waiting
    }

    /// Whether any thread reads, writes or updates (for tests).
    #[getter]
    fn busy(&self) -> bool {
        let state = self.state();
        !state.readers.is_empty() || state.writer.is_some() || state.updater.is_some() || state.writers_waiting > 0
    }
}

/// Which side of the gate a guard takes.
#[derive(Clone, Copy)]
enum Side {
    Read,
    Write,
    Update,
}

/// `with guard:` — enters its side of the gate, leaves it on the way out.
#[pyclass(name = "GateGuard", module = "grapheme_multimodal._core", frozen)]
pub struct GateGuard {
    gate: Py<Gate>,
    side: Side,
}

impl GateGuard {
    fn of(gate: Py<Gate>, side: Side) -> Self {
        GateGuard { gate, side }
    }
}

#[pymethods]
impl GateGuard {
    /// The guards of `gate`: `(reading, writing, updating)`.
    #[staticmethod]
    fn sides(py: Python<'_>, gate: Py<Gate>) -> (GateGuard, GateGuard, GateGuard) {
        (
            GateGuard::of(gate.clone_ref(py), Side::Read),
            GateGuard::of(gate.clone_ref(py), Side::Write),
            GateGuard::of(gate, Side::Update),
        )
    }

    fn __enter__(&self, py: Python<'_>) -> PyResult<()> {
        let gate = self.gate.get();
        match self.side {
            Side::Read => gate.enter_read(py),
            Side::Write => gate.enter_write(py),
            Side::Update => gate.enter_update(py),
        }
    }

    fn __exit__(&self, _kind: &Bound<'_, PyAny>, _value: &Bound<'_, PyAny>, _traceback: &Bound<'_, PyAny>) -> PyResult<bool> {
        let gate = self.gate.get();
        match self.side {
            Side::Read => gate.exit_read(),
            Side::Write => gate.exit_write(),
            Side::Update => gate.exit_update(),
        }?;
        Ok(false)
    }
}
