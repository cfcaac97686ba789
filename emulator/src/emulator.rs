//! The in-process handle: start, inspect, steer, stop.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use crate::config::{ConfigUpdate, EmulatorConfig};
use crate::errors::ApiError;
use crate::gate::GateStatus;
use crate::inspect::RequestLog;
use crate::script::ScriptedResponse;
use crate::server::{self, lock, Shared};
use crate::state::{Contact, State, Stats, StoredEvent};

/// A running emulator on `127.0.0.1`, serving on its own tokio runtime
/// (2 worker threads), so it works from plain synchronous `#[test]`s.
///
/// All methods are thread-safe (`Emulator` is `Send + Sync`) and none does
/// I/O. All return quickly except the `wait_*` methods, which block the
/// calling thread until their condition holds or their timeout passes.
/// Dropping the handle stops the server.
///
/// ```no_run
/// use trackcore_emulator::{Emulator, EmulatorConfig, ScriptedResponse};
/// let emu = Emulator::start(EmulatorConfig::default()).expect("bind 127.0.0.1");
/// let url = format!("{}/events", emu.base_url()); // POST here with `Bearer test-token`
/// emu.script(vec![ScriptedResponse::status(503), ScriptedResponse::rate_limited(2)]);
/// assert_eq!(emu.events().len(), 0);
/// ```
pub struct Emulator {
    addr: SocketAddr,
    shared: Shared,
    shutdown: watch::Sender<bool>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl Emulator {
    /// Binds `127.0.0.1:config.port` and starts serving in the background.
    ///
    /// Returns once the socket is bound, so requests can be sent right away.
    /// Fails if the port is taken or the runtime cannot start.
    pub fn start(config: EmulatorConfig) -> std::io::Result<Emulator> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("trackcore-emulator")
            .enable_all()
            .build()?;
        let std_listener = std::net::TcpListener::bind(("127.0.0.1", config.port))?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let listener = {
            let _guard = runtime.enter();
            tokio::net::TcpListener::from_std(std_listener)?
        };
        let log = if config.log_requests { RequestLog::to_stdout() } else { None };
        let mut state = State::new(config);
        state.set_log(log);
        let shared: Shared = Arc::new(Mutex::new(state));
        let (shutdown, rx) = watch::channel(false);
        runtime.spawn(server::serve(listener, server::router(shared.clone()), rx));
        Ok(Emulator { addr, shared, shutdown, runtime: Some(runtime) })
    }

    /// The bound address (`127.0.0.1:PORT`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:PORT` (no trailing slash): the client's Intercom base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every stored event, in arrival order (duplicates and refused events excluded).
    pub fn events(&self) -> Vec<StoredEvent> {
        lock(&self.shared).events()
    }

    /// Counters since start or the last [`reset`](Self::reset).
    pub fn stats(&self) -> Stats {
        lock(&self.shared).stats(SystemTime::now())
    }

    /// Queues responses for the next `POST /events` requests (after any already queued).
    pub fn script(&self, responses: Vec<ScriptedResponse>) {
        lock(&self.shared).push_script(responses);
    }

    /// Drops all queued scripted responses.
    pub fn clear_script(&self) {
        lock(&self.shared).clear_script();
    }

    /// Back to the state at start: events, names, contacts, stats, script,
    /// rate-limit window, configuration and an open gate. Held requests are
    /// released (answered) first; nothing they store survives the reset.
    pub fn reset(&self) {
        lock(&self.shared).reset(SystemTime::now());
    }

    /// Closes the gate: from now on every `POST /events` (authenticated or
    /// not) is received but neither processed nor answered until released by
    /// [`release`](Self::release), [`open`](Self::open) or [`reset`](Self::reset).
    /// Same as `POST /__emulator/gate {"hold":true}`.
    pub fn hold(&self) {
        lock(&self.shared).set_hold(true, SystemTime::now());
    }

    /// Releases the `n` oldest held requests (fewer if fewer are held): they are
    /// processed as usual, in arrival order, and answered. The gate stays
    /// closed. Returns how many were released.
    pub fn release(&self, n: usize) -> usize {
        lock(&self.shared).release_held(n, SystemTime::now())
    }

    /// Opens the gate, releasing every held request in arrival order.
    /// Returns how many were released.
    pub fn open(&self) -> usize {
        let mut st = lock(&self.shared);
        let before = st.gate_status().released;
        let after = st.set_hold(false, SystemTime::now()).released;
        usize::try_from(after - before).unwrap_or(usize::MAX)
    }

    /// The gate: closed or not, requests held now, released and gone so far.
    pub fn gate(&self) -> GateStatus {
        lock(&self.shared).gate_status()
    }

    /// Blocks until at least `n` requests are held at once; `false` if that
    /// has not happened within `timeout`. The way to know that the client has
    /// sent its request(s), without sleeping.
    pub fn wait_held(&self, n: usize, timeout: Duration) -> bool {
        self.wait_gate(timeout, move |g| g.held >= n)
    }

    /// Blocks until `ready` holds for the gate's status (checked on every gate
    /// change); `false` if it has not within `timeout`.
    /// E.g. `emu.wait_gate(t, |g| g.gone >= 1)`: a held client has disconnected.
    pub fn wait_gate(&self, timeout: Duration, ready: impl Fn(&GateStatus) -> bool + Send + Sync + 'static) -> bool {
        self.wait_until(timeout, move |st| ready(&st.gate_status()))
    }

    /// Blocks until at least `n` events are stored (see [`events`](Self::events));
    /// `false` if fewer are stored when `timeout` passes.
    pub fn wait_events(&self, n: usize, timeout: Duration) -> bool {
        self.wait_until(timeout, move |st| st.stored_count() >= n)
    }

    /// Runs the wait on the emulator's own runtime and blocks on its answer,
    /// so it works from plain threads and (blocking one worker) from async code.
    fn wait_until(&self, timeout: Duration, ready: impl Fn(&State) -> bool + Send + Sync + 'static) -> bool {
        let Some(rt) = self.runtime.as_ref() else { return false };
        let shared = self.shared.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        rt.spawn(async move {
            let _ = tx.send(server::wait_until(&shared, timeout, ready).await);
        });
        rx.recv().unwrap_or(false)
    }

    /// The configuration in force now.
    pub fn config(&self) -> EmulatorConfig {
        lock(&self.shared).config.clone()
    }

    /// Changes the given runtime settings (the same as `POST /__emulator/config`).
    pub fn update_config(&self, update: ConfigUpdate) {
        update.apply(&mut lock(&self.shared).config);
    }

    /// Delay before each API response: `base` plus a uniform random `0..=jitter`.
    pub fn set_latency(&self, base: Duration, jitter: Duration) {
        self.update_config(ConfigUpdate {
            latency_ms: Some(u64::try_from(base.as_millis()).unwrap_or(u64::MAX)),
            latency_jitter_ms: Some(u64::try_from(jitter.as_millis()).unwrap_or(u64::MAX)),
            ..Default::default()
        });
    }

    /// Calls per minute (0 = unlimited), enforced as `ceil(n/6)` per 10-second window.
    pub fn set_rate_limit_per_minute(&self, per_minute: u32) {
        self.update_config(ConfigUpdate { rate_limit_per_minute: Some(per_minute), ..Default::default() });
    }

    /// Whether events for unknown contacts get 404 `User Not Found`.
    pub fn set_require_known_users(&self, on: bool) {
        self.update_config(ConfigUpdate { require_known_users: Some(on), ..Default::default() });
    }

    /// Probabilities of a random 5xx and of a dropped connection per `POST /events`.
    pub fn set_faults(&self, error_rate: f64, drop_rate: f64) {
        self.update_config(ConfigUpdate {
            error_rate: Some(error_rate),
            drop_rate: Some(drop_rate),
            ..Default::default()
        });
    }

    /// Registers a user contact, as `POST /contacts` does.
    /// Fails (409 `conflict`) if the external id or email is already known.
    pub fn add_contact(&self, external_id: Option<&str>, email: Option<&str>) -> Result<Contact, ApiError> {
        lock(&self.shared).create_contact(external_id.map(str::to_string), email.map(str::to_string), "user")
    }

    /// Every known contact.
    pub fn contacts(&self) -> Vec<Contact> {
        lock(&self.shared).contacts()
    }

    /// Stops serving and waits (up to 1 s) for the worker threads. Same as dropping.
    pub fn stop(self) {}
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(rt) = self.runtime.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                // Blocking is not allowed inside an async context.
                rt.shutdown_background();
            } else {
                rt.shutdown_timeout(Duration::from_secs(1));
            }
        }
    }
}
