//! `trackcore.Tracker`: the core's `Tracker` with Python keyword options,
//! exceptions, and the GIL released whenever the call may wait.

use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList, PyTuple};
use trackcore::{Config, Error, ErrorCallback, Event, FailedEvent, OptionValue, Overflow, Tracker};

use crate::convert;
use crate::errors::{self, to_py_err};
use crate::lifecycle;

/// State shared with the exit hook. The core tracker is used through `&self`
/// from any thread; this binding holds no lock of its own.
pub struct Inner {
    pub core: Tracker,
    block: bool,
    memory: bool,
    default_timeout: Duration,
    pub flush_at_exit: bool,
    pub exit_timeout: Duration,
}

/// Sends events to Intercom's Data Events API in the background.
///
/// `access_token` defaults to $INTERCOM_ACCESS_TOKEN; `region` is "us", "eu"
/// or "au". Every other keyword is a core option with the core's default (see
/// `trackcore.options()`). `on_error(event, error)` is called on trackcore's
/// reporter thread for every undeliverable event. At interpreter exit the
/// tracker flushes for at most `exit_timeout` seconds (default: `drop_timeout`)
/// unless `flush_at_exit=False`. Thread-safe and fork-safe: share one per process
/// (a forked child starts a fresh pipeline on its first call and never resends
/// the parent's events).
/// Raises `ConfigError` for an unknown or invalid option or a missing token.
#[pyclass(module = "trackcore", name = "Tracker", frozen, weakref, subclass)]
pub struct PyTracker {
    inner: Arc<Inner>,
}

static REPORT: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static JSON_LOADS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn seconds(py: Python<'_>, v: Option<f64>, default: Duration) -> PyResult<Duration> {
    match v {
        None => Ok(default),
        Some(s) if s.is_finite() && (0.0..=1e9).contains(&s) => Ok(Duration::from_secs_f64(s)),
        Some(s) => Err(to_py_err(
            py,
            &Error::InvalidConfig { option: "timeout".into(), reason: format!("{s} is not a duration in seconds") },
        )),
    }
}

/// Wrap the Python `on_error` (or none) into the core's callback: every
/// delivery failure is logged to the `trackcore` logger and passed to the
/// callback with the GIL held, on trackcore's reporter thread.
fn error_callback(on_error: Option<Py<PyAny>>) -> ErrorCallback {
    Arc::new(move |event: &FailedEvent, err: &Error| {
        if lifecycle::exiting() {
            return;
        }
        Python::attach(|py| {
            let result = (|| -> PyResult<()> {
                let report = REPORT.import(py, "trackcore._errors", "_report")?;
                let exc = errors::instance(py, err)?;
                report.call1((on_error.as_ref().map(|c| c.bind(py)), event.body_json(), exc))?;
                Ok(())
            })();
            if let Err(e) = result {
                e.write_unraisable(py, None);
            }
        })
    })
}

#[pymethods]
impl PyTracker {
    #[new]
    #[pyo3(signature = (access_token=None, region=None, *, on_error=None, flush_at_exit=true, exit_timeout=None, **options))]
    fn new(
        py: Python<'_>,
        access_token: Option<&Bound<'_, PyAny>>,
        region: Option<&Bound<'_, PyAny>>,
        on_error: Option<Py<PyAny>>,
        flush_at_exit: bool,
        exit_timeout: Option<f64>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let mut config = Config::default();
        let (major, minor): (u8, u8) = (py.version_info().major, py.version_info().minor);
        let set = |config: &mut Config, name: &str, v: &Bound<'_, PyAny>| -> PyResult<()> {
            let value = convert::option_value(v)
                .map_err(|reason| to_py_err(py, &Error::InvalidConfig { option: name.to_string(), reason }))?;
            config.set(name, value).map_err(|e| to_py_err(py, &e))
        };
        config
            .set("user_agent_suffix", OptionValue::Str(format!("python/{major}.{minor}")))
            .map_err(|e| to_py_err(py, &e))?;
        if let Some(t) = access_token {
            set(&mut config, "access_token", t)?;
        }
        if let Some(r) = region {
            set(&mut config, "region", r)?;
        }
        if let Some(opts) = options {
            for (k, v) in opts.iter() {
                let name: String = k.extract()?;
                set(&mut config, &name, &v)?;
            }
        }
        if let Some(cb) = &on_error {
            if !cb.bind(py).is_callable() {
                return Err(to_py_err(
                    py,
                    &Error::InvalidConfig { option: "on_error".into(), reason: "must be callable".into() },
                ));
            }
        }
        config.on_error = Some(error_callback(on_error));
        let exit_timeout = seconds(py, exit_timeout, config.drop_timeout)?;
        let block = config.overflow == Overflow::Block;
        let memory = config.memory;
        let default_timeout = config.drop_timeout;
        let tracker = Tracker::new(config).map_err(|e| to_py_err(py, &e))?;
        let inner = Arc::new(Inner {
            core: tracker,
            block,
            memory,
            default_timeout,
            flush_at_exit,
            exit_timeout,
        });
        lifecycle::register(&inner);
        Ok(PyTracker { inner })
    }

    /// Validate one event against Intercom's rules and queue it for delivery.
    ///
    /// One of `user_id` (str or int), `id`, `email` is required; `created_at`
    /// is Unix seconds or an aware datetime (default: now); `metadata` a dict
    /// of at most 10 values. Raises `InvalidEventError` / `InvalidTypeError`
    /// for invalid input and `TrackerClosedError` after `shutdown()`. Never
    /// waits on the network; under `overflow="block"` it may wait up to
    /// `block_timeout` for room, without holding the GIL.
    #[allow(clippy::too_many_arguments)] // the Python signature: one parameter per keyword
    #[pyo3(signature = (event_name, *, user_id=None, id=None, email=None, created_at=None, metadata=None))]
    fn track(
        &self,
        py: Python<'_>,
        event_name: &Bound<'_, PyAny>,
        user_id: Option<&Bound<'_, PyAny>>,
        id: Option<&Bound<'_, PyAny>>,
        email: Option<&Bound<'_, PyAny>>,
        created_at: Option<&Bound<'_, PyAny>>,
        metadata: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let event = Event {
            event_name: convert::event_name(py, event_name)?,
            user_id: convert::identifier(py, "user_id", user_id, true)?,
            id: convert::identifier(py, "id", id, false)?,
            email: convert::identifier(py, "email", email, false)?,
            created_at: convert::created_at(py, created_at)?,
            metadata: convert::metadata(py, metadata)?,
        };
        let tracker = &self.inner.core;
        let result = if self.inner.block {
            // Only `overflow="block"` can wait inside track(): release the GIL then.
            lifecycle::without_gil(py, || tracker.track(event))
        } else {
            tracker.track(event)
        };
        result.map_err(|e| to_py_err(py, &e))
    }

    /// Wait until every event tracked before this call is settled or
    /// `timeout` seconds pass; `True` if all settled. Releases the GIL.
    #[pyo3(signature = (timeout=None))]
    fn flush(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let timeout = seconds(py, timeout, self.inner.default_timeout)?;
        let inner = &self.inner;
        Ok(lifecycle::without_gil(py, || inner.core.flush(timeout)))
    }

    /// Wait until every event tracked before this call is written to the
    /// spool (`spool_dir`) and synced to disk, or `timeout` seconds pass;
    /// `True` once it is (at once without a spool). Releases the GIL.
    #[pyo3(signature = (timeout=None))]
    fn sync(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let timeout = seconds(py, timeout, self.inner.default_timeout)?;
        let inner = &self.inner;
        Ok(lifecycle::without_gil(py, || inner.core.sync(timeout)))
    }

    /// Flush for at most `timeout` seconds, then stop the background threads.
    /// Later `track()` calls raise `TrackerClosedError`. Releases the GIL.
    #[pyo3(signature = (timeout=None))]
    fn shutdown(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let timeout = seconds(py, timeout, self.inner.default_timeout)?;
        let inner = &self.inner;
        Ok(lifecycle::without_gil(py, || inner.core.shutdown(timeout)))
    }

    /// The counters as a dict of ints (`auth_paused` is a bool).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let stats = self.inner.core.stats();
        let d = PyDict::new(py);
        for (name, value) in stats.fields() {
            if name == "auth_paused" {
                d.set_item(name, value != 0)?;
            } else {
                d.set_item(name, value)?;
            }
        }
        Ok(d)
    }

    /// In memory mode, the events recorded so far as dicts (oldest first),
    /// once events tracked before the call have passed through the pipeline
    /// (de-duplication included). Releases the GIL while it waits.
    fn recorded<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let inner = &self.inner;
        let bodies = lifecycle::without_gil(py, || inner.core.recorded_json());
        let loads = JSON_LOADS.import(py, "json", "loads")?;
        let list = PyList::empty(py);
        for b in bodies {
            list.append(loads.call1((b,))?)?;
        }
        Ok(list)
    }

    /// In memory mode, forget the recorded events.
    fn clear_recorded(&self) {
        self.inner.core.clear_recorded();
    }

    /// Whether this tracker records events instead of sending them.
    #[getter]
    fn memory(&self) -> bool {
        self.inner.memory
    }

    /// Return the tracker itself.
    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// Shut down (bounded by `drop_timeout`); exceptions propagate.
    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.shutdown(py, None)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        let c = self.inner.core.config();
        if c.memory {
            "<trackcore.Tracker memory>".to_string()
        } else {
            format!("<trackcore.Tracker {}>", c.events_url())
        }
    }
}

impl Drop for PyTracker {
    /// The core shuts down on drop and may call `on_error` meanwhile, which
    /// needs the GIL: release it while that happens.
    fn drop(&mut self) {
        if Arc::strong_count(&self.inner) == 1 && !lifecycle::exiting() {
            let inner = &self.inner;
            // The core's own drop then finds the tracker closed and returns at once.
            Python::attach(|py| py.detach(|| inner.core.shutdown(inner.default_timeout)));
        }
    }
}
