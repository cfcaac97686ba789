//! Knowing that this process is a `fork()` of the one that built a pipeline.
//!
//! After `fork()` only the forking thread exists in the child: the parent's
//! dispatcher, senders and reporter are gone, and any lock they held stays
//! held. A pipeline records the fork generation it was built in; the child
//! handler registered with `pthread_atfork` bumps the generation (one atomic
//! add, async-signal-safe), so the next call on a tracker sees a pipeline from
//! another process — one relaxed load on the hot path — and builds a fresh one
//! instead of touching the parent's. The process id is checked too, on the
//! calls that are not hot, in case a fork bypassed the handlers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;

static GENERATION: AtomicU64 = AtomicU64::new(0);
static INSTALL: Once = Once::new();

#[cfg(unix)]
extern "C" fn in_child() {
    GENERATION.fetch_add(1, Ordering::SeqCst);
}

/// Register the fork handler (once per process; children inherit it).
pub(crate) fn install() {
    INSTALL.call_once(|| {
        #[cfg(unix)]
        // SAFETY: `in_child` only does an atomic add, which is async-signal-safe
        // and so allowed in a child of a multi-threaded process.
        unsafe {
            libc::pthread_atfork(None, None, Some(in_child));
        }
    });
}

/// The current fork generation: 0 in the process that first built a tracker,
/// one more in each child forked since.
#[inline]
pub(crate) fn generation() -> u64 {
    GENERATION.load(Ordering::Relaxed)
}

/// Where a pipeline was built: compared with the current process on every call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Origin {
    generation: u64,
    pid: u32,
}

impl Origin {
    pub fn here() -> Origin {
        Origin { generation: generation(), pid: std::process::id() }
    }
    /// The cheap check for the hot path.
    #[inline]
    pub fn is_current(&self) -> bool {
        self.generation == generation()
    }
    /// The thorough check: also catches a fork that ran no handlers (and
    /// then moves the generation on, as the handler would have).
    pub fn is_current_process(&self) -> bool {
        if !self.is_current() {
            return false;
        }
        if self.pid != std::process::id() {
            GENERATION.fetch_add(1, Ordering::SeqCst);
            return false;
        }
        true
    }
}
