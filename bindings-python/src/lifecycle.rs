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

/// How long exit waits, beyond `exit_timeout`, for an `on_error` call that was
/// already running when the bound passed (none starts after it).
const CALLBACK_GRACE_AT_EXIT: Duration = Duration::from_secs(2);

static REGISTRY: Mutex<Vec<Weak<Inner>>> = Mutex::new(Vec::new());
static EXITING: AtomicBool = AtomicBool::new(false);
/// Set when the exit hook starts: only daemon threads are left then (CPython
/// joins the others first), and none of them may take the GIL again.
static AT_EXIT: AtomicBool = AtomicBool::new(false);

/// Whether the interpreter is past the exit hook: no more calls into Python
/// from trackcore's threads.
pub fn exiting() -> bool {
    EXITING.load(Ordering::Acquire)
}

/// Run `f` without the GIL. A daemon thread that comes back once the exit
/// hook has started must not take the GIL again: if the interpreter is
/// finalizing by the time it gets it, CPython ends the thread with
/// `pthread_exit`, which unwinds through Rust frames and aborts the process.
/// It parks for good instead, as CPython 3.14 itself does with such threads;
/// the process is about to end.
pub fn without_gil<T: Send>(py: Python<'_>, f: impl FnOnce() -> T + Send) -> T {
    py.detach(|| {
        let result = f();
        while AT_EXIT.load(Ordering::Acquire) {
            std::thread::park();
        }
        result
    })
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
    AT_EXIT.store(true, Ordering::Release);
    for t in live() {
        let timeout = if t.flush_at_exit { t.exit_timeout } else { Duration::ZERO };
        py.detach(|| {
            t.core.shutdown(timeout);
            // The interpreter cannot finalize under a callback still running
            // in Python: give one that outlived the bound a moment to return.
            t.core.wait_for_callbacks(CALLBACK_GRACE_AT_EXIT);
        });
    }
    EXITING.store(true, Ordering::Release);
}
