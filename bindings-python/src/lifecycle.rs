//! Interpreter exit: the hook `trackcore/__init__.py` registers with `atexit`.
//!
//! Fork needs no hook: the core notices it is in a forked child on the next
//! call and starts a fresh pipeline there (see the core's `Tracker`).
//!
//! The registry's mutex is only taken by code that holds the GIL and never
//! releases it while holding the mutex, so no thread can hold it when another
//! thread (holding the GIL) calls `os.fork()`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use pyo3::prelude::*;

use crate::tracker::Inner;

static REGISTRY: Mutex<Vec<Weak<Inner>>> = Mutex::new(Vec::new());
static EXITING: AtomicBool = AtomicBool::new(false);

/// Whether the interpreter is past the exit hook: no more calls into Python
/// from trackcore's threads.
pub fn exiting() -> bool {
    EXITING.load(Ordering::Acquire)
}

/// Remember a new tracker for the exit hook.
pub fn register(inner: &Arc<Inner>) {
    let mut reg = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
    reg.retain(|w| w.strong_count() > 0);
    reg.push(Arc::downgrade(inner));
}

fn live() -> Vec<Arc<Inner>> {
    REGISTRY.lock().unwrap_or_else(|p| p.into_inner()).iter().filter_map(Weak::upgrade).collect()
}

/// `atexit`: flush and shut down every live tracker within its
/// `exit_timeout` (or at once when `flush_at_exit=False`), without the GIL.
#[pyfunction]
pub fn _at_exit(py: Python<'_>) {
    for t in live() {
        let timeout = if t.flush_at_exit { t.exit_timeout } else { Duration::ZERO };
        py.detach(|| t.core.shutdown(timeout));
    }
    EXITING.store(true, Ordering::Release);
}
