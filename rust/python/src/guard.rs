//! How the bindings run Rust code: with the GIL released, panics caught,
//! and (for a model) behind a readers-writer lock.
//!
//! A `_core.Model` may be used from several Python threads at once: calls
//! that only read it (inference, losses) share it, calls that change it
//! (training, setting weights) wait for the others and run alone, so every
//! call sees the model as one whole call before or after another left it.
//! The lock is only ever taken with the GIL released, and released before
//! the GIL is taken back: a thread waiting for it never holds the GIL, so
//! the thread holding it can always finish (no GIL/lock deadlock).
//!
//! A panic is a bug, never the answer to bad input; should one happen it
//! becomes a `GraphemeError` saying so, instead of PyO3's
//! `PanicException` (which is not an `Exception`, so `except Exception`
//! would not catch it). A panic while a call changed the model leaves it in
//! an unknown state: every later call on it then fails with that message.

use crate::errors::to_py;
use pyo3::prelude::*;
use std::panic::AssertUnwindSafe;
use std::sync::RwLock;

pyo3::import_exception!(grapheme_multimodal.exceptions, GraphemeError);

/// Why a guarded call failed.
pub enum Failure {
    /// The core refused the input (the usual, typed error).
    Core(grapheme_multimodal::Error),
    /// A bug: the panic's message.
    Panic(String),
    /// An earlier call panicked while changing the model.
    Poisoned,
}

impl From<grapheme_multimodal::Error> for Failure {
    fn from(e: grapheme_multimodal::Error) -> Self {
        Failure::Core(e)
    }
}

impl From<Failure> for PyErr {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Core(e) => to_py(e),
            Failure::Panic(message) => GraphemeError::new_err((
                format!("internal error (a bug in grapheme-multimodal, please report it): {message}"),
                Option::<String>::None,
            )),
            Failure::Poisoned => GraphemeError::new_err((
                "this model was left in an unknown state by an internal error during an earlier call \
                 (a bug in grapheme-multimodal, please report it); load it again from a checkpoint"
                    .to_string(),
                Option::<String>::None,
            )),
        }
    }
}

/// Runs `f`, a panic inside it (or in the library's worker threads it
/// waits for) becoming [`Failure::Panic`].
pub fn catch<R>(f: impl FnOnce() -> Result<R, Failure>) -> Result<R, Failure> {
    match std::panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".to_string());
            Err(Failure::Panic(message))
        }
    }
}

/// `f` with the GIL released and panics caught.
pub fn detached<R: Send>(py: Python<'_>, f: impl FnOnce() -> grapheme_multimodal::Result<R> + Send) -> PyResult<R> {
    Ok(py.detach(|| catch(|| Ok(f()?)))?)
}

/// A value shared between Python threads behind a readers-writer lock.
pub struct Shared<M>(RwLock<M>);

impl<M: Send + Sync> Shared<M> {
    pub fn new(value: M) -> Self {
        Shared(RwLock::new(value))
    }

    /// `f` on the value, shared with other readers, GIL released.
    pub fn read<R: Send>(&self, py: Python<'_>, f: impl FnOnce(&M) -> grapheme_multimodal::Result<R> + Send) -> PyResult<R> {
        Ok(py.detach(|| {
            catch(|| {
                let guard = self.0.read().map_err(|_| Failure::Poisoned)?;
                Ok(f(&guard)?)
            })
        })?)
    }

    /// `f` on the value, alone, GIL released.
    pub fn write<R: Send>(&self, py: Python<'_>, f: impl FnOnce(&mut M) -> grapheme_multimodal::Result<R> + Send) -> PyResult<R> {
        self.write_with(py, || Ok(()), |value, ()| f(value))
    }

    /// `f(value, prepare())`, GIL released: `prepare` (e.g. checking and
    /// gathering a training batch) runs before the lock is taken, so
    /// readers wait only for `f`.
    pub fn write_with<P, R: Send>(
        &self,
        py: Python<'_>,
        prepare: impl FnOnce() -> grapheme_multimodal::Result<P> + Send,
        f: impl FnOnce(&mut M, P) -> grapheme_multimodal::Result<R> + Send,
    ) -> PyResult<R> {
        Ok(py.detach(|| {
            catch(|| {
                let prepared = prepare()?;
                let mut guard = self.0.write().map_err(|_| Failure::Poisoned)?;
                Ok(f(&mut guard, prepared)?)
            })
        })?)
    }
}
