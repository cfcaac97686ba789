//! How an event is sent: the [`Transport`] seam.
//!
//! Sender threads call [`Transport::send`] with one body and hand the
//! [`Response`] back to the scheduler, which decides what it means for the
//! event (settle, retry, pause) and tells the rate limiter what it said.
//! `delivery::Http` posts to Intercom; [`MemoryTransport`] records bodies and
//! answers like an accepting Intercom, so memory mode runs the whole pipeline
//! (de-duplication, flush, stats) and differs from production only here.

use std::sync::{Arc, Mutex};

pub(crate) use crate::delivery::Outcome;
use crate::ratelimit::RateLimitInfo;

/// What one attempt to send an event came to.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Response {
    pub outcome: Outcome,
    /// The response's rate-limit headers, for the limiter (none from a
    /// transport error).
    pub rate: Option<RateLimitInfo>,
}

/// Sends one event body; called concurrently from the sender threads.
/// Blocking is expected (bounded by the request timeout); panicking is caught.
pub(crate) trait Transport: Send + Sync {
    fn send(&self, body: &[u8]) -> Response;
    /// Create a contact (`POST /contacts` with `body`). A contact that exists
    /// already (409 `conflict`) is [`Outcome::Delivered`] too: either way it
    /// exists now.
    fn create_contact(&self, body: &[u8]) -> Response;
}

/// One request for a sender thread; its outcome comes back with the same
/// kind and number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Request {
    /// `POST /events` for the event `seq`.
    Event(u64),
    /// `POST /contacts` for the held contact `id` (`unknown_contact="create"`).
    Contact(u64),
}

impl Request {
    /// Carry the request out on `transport`.
    pub fn perform(self, transport: &dyn Transport, body: &[u8]) -> Response {
        match self {
            Request::Event(_) => transport.send(body),
            Request::Contact(_) => transport.create_contact(body),
        }
    }
}

/// The bodies a memory-mode tracker recorded, oldest first; shared between
/// the tracker (which reads them) and its transport (which appends).
pub(crate) type Recorded = Arc<Mutex<Vec<Arc<[u8]>>>>;

/// Records every body and answers `202 Accepted`.
pub(crate) struct MemoryTransport {
    pub recorded: Recorded,
}

impl Transport for MemoryTransport {
    fn send(&self, body: &[u8]) -> Response {
        self.recorded.lock().unwrap_or_else(|p| p.into_inner()).push(Arc::from(body));
        Response { outcome: Outcome::Delivered, rate: None }
    }

    /// Memory mode never answers 404, so this is not reached; it answers
    /// like an Intercom that created the contact.
    fn create_contact(&self, _body: &[u8]) -> Response {
        Response { outcome: Outcome::Delivered, rate: None }
    }
}
