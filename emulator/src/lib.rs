//! A local emulator of Intercom's Data Events API (`POST /events`), for the
//! trackcore SDK's tests (Rust in-process, other languages via the binary) and
//! for developers who want to try events without an Intercom workspace.
//!
//! It follows Intercom's documented behaviour — bearer auth, validation,
//! `202` with an empty body, de-duplication on (contact, name, `created_at`),
//! the 10-metadata-key cap, the 120-event-name cap, unknown-contact 404s and
//! 10-second rate-limit windows with `X-RateLimit-*` headers — and adds fault
//! injection (latency, random 5xx, dropped connections, scripted responses)
//! plus `/__emulator/*` endpoints to inspect what it received, and a live
//! inspector page at `/` (one HTML file in the binary) that shows every
//! request, why a refused one was refused, per-contact timelines and the
//! rate-limit and event-name gauges. Tests
//! synchronise with the client through a gate that holds `POST /events`
//! responses until released ([`Emulator::hold`], [`Emulator::wait_held`],
//! [`Emulator::release`]) and through [`Emulator::wait_events`], not sleeps.
//!
//! It shares no code with the SDK on purpose: it is the reference the SDK is
//! tested against. See `emulator/README.md` for the HTTP surface.
//!
//! ```no_run
//! use trackcore_emulator::{Emulator, EmulatorConfig};
//! let emu = Emulator::start(EmulatorConfig {
//!     tokens: vec!["secret".into()],
//!     rate_limit_per_minute: 1000, // 167 per 10-second window
//!     ..Default::default()
//! })
//! .expect("bind 127.0.0.1");
//! println!("point the client at {}", emu.base_url());
//! // ... run the client ...
//! let stored = emu.events();
//! let stats = emu.stats();
//! # let _ = (stored, stats);
//! ```

mod config;
mod emulator;
mod errors;
mod gate;
mod inspect;
mod ratelimit;
mod script;
mod server;
mod state;
mod validate;

pub use config::{ConfigUpdate, EmulatorConfig, DEFAULT_MAX_EVENT_NAMES, DEFAULT_RATE_LIMIT_PER_MINUTE, DEFAULT_TOKEN};
pub use emulator::Emulator;
pub use errors::ApiError;
pub use gate::GateStatus;
pub use inspect::{MAX_BODY_CHARS, MAX_RECORDS};
pub use ratelimit::{window_allowance, WindowCount, WINDOW_SECS};
pub use script::ScriptedResponse;
pub use state::{Contact, Stats, StoredEvent, WindowStats};
pub use validate::MAX_METADATA_KEYS;

/// The Intercom error codes the emulator answers with.
pub mod codes {
    pub use crate::errors::{
        CONFLICT, EVENT_NAME_LIMIT_REACHED, NOT_FOUND, PARAMETER_INVALID, PARAMETER_NOT_FOUND,
        RATE_LIMIT_EXCEEDED, SERVER_ERROR, SERVICE_UNAVAILABLE, UNAUTHORIZED,
    };
}
