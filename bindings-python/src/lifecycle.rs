//! Interpreter exit and `os.fork()`: the hooks `trackcore/__init__.py`
//! registers with `atexit` and `os.register_at_fork`.
//!
//! Before a fork every live tracker's lock is taken (so no other thread is in
//! the middle of using it); the parent then just releases it, the child gives
//! each tracker a fresh pipeline of its own (the core's `reinit_after_fork`,
//! which abandons the parent's queue instead of resending it) and releases it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use parking_lot::lock_api::RawRwLock as _;
use pyo3::prelude::*;

use crate::tracker::Inner;

static REGISTRY: Mutex<Vec<Weak<Inner>>> = Mutex::new(Vec::new());
static FORK_HELD: Mutex<Vec<Arc<Inner>>> = Mutex::new(Vec::new());
static EXITING: AtomicBool = AtomicBool::new(false);

/// Whether the interpreter is past the exit hook: no more calls into Python
/// from trackcore's threads.
pub fn exiting() -> bool {
    EXITING.load(Ordering::Acquire)
}

/// Remember a new tracker for the exit and fork hooks.
pub fn register(inner: &Arc<Inner>) {
    let mut reg = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
    reg.retain(|w| w.strong_count() > 0);
    reg.push(Arc::downgrade(inner));
}

fn live() -> Vec<Arc<Inner>> {
    REGISTRY.lock().unwrap_or_else(|p| p.into_inner()).iter().filter_map(Weak::upgrade).collect()
}

/// `os.register_at_fork(before=...)`. Runs with the GIL held, so no thread
/// is inside a non-blocking `track()`; waits for flushes under way.
#[pyfunction]
pub fn _before_fork() {
    let trackers = live();
    for t in &trackers {
        // SAFETY: released by `_after_fork_parent` / `_after_fork_child`,
        // which `os.register_at_fork` always runs after this hook.
        unsafe { t.core.raw().lock_exclusive() };
    }
    *FORK_HELD.lock().unwrap_or_else(|p| p.into_inner()) = trackers;
}

/// `os.register_at_fork(after_in_parent=...)`: release the locks.
#[pyfunction]
pub fn _after_fork_parent() {
    let held = std::mem::take(&mut *FORK_HELD.lock().unwrap_or_else(|p| p.into_inner()));
    for t in held {
        // SAFETY: locked exclusively by `_before_fork` on this thread.
        unsafe { t.core.force_unlock_write() };
    }
}

/// `os.register_at_fork(after_in_child=...)`: a fresh pipeline per tracker.
#[pyfunction]
pub fn _after_fork_child(py: Python<'_>) {
    let held = std::mem::take(&mut *FORK_HELD.lock().unwrap_or_else(|p| p.into_inner()));
    for t in held {
        // SAFETY: we hold the exclusive lock taken in `_before_fork` (copied
        // into this process with it), so no other reference to the data exists.
        let result = unsafe { (*t.core.data_ptr()).reinit_after_fork() };
        unsafe { t.core.force_unlock_write() };
        if let Err(e) = result {
            let msg = format!("trackcore: could not restart the tracker after fork [{}]: {e}", e.code());
            let _ = py.import("warnings").and_then(|w| w.call_method1("warn", (msg,)));
        }
    }
}

/// `atexit`: flush and shut down every live tracker within its
/// `exit_timeout` (or at once when `flush_at_exit=False`), without the GIL.
#[pyfunction]
pub fn _at_exit(py: Python<'_>) {
    for t in live() {
        let timeout = if t.flush_at_exit { t.exit_timeout } else { Duration::ZERO };
        py.detach(|| t.core.write().shutdown(timeout));
    }
    EXITING.store(true, Ordering::Release);
}
