//! A faithful stand-in for the Qlik Sense Repository Service (QRS), the Qlik Proxy Service (QPS) session API and the
//! hub's `/qrs` pass-through, on loopback.
//!
//! It backs qlik-license-reclaimer's `demo` and `simulate` commands and is the test double of its QRS client; any
//! tool that talks to QRS can be tested against it. What it reproduces, and the choices it makes where Qlik's
//! behaviour is not documented, are described in the repository's `docs/qrs.md`:
//!
//! - **Transport.** HTTPS with HTTP/1.1 and HTTP/2. The repository listener (like port 4242) and the QPS listener
//!   (like 4243) require a client certificate chaining to the simulator's own root; without one the TLS handshake
//!   fails. The hub listener (like 443) needs none. The server certificate names only `server_name` (Qlik issues
//!   certificates for the short host name) unless `extra_sans` adds more.
//! - **Every QRS and QPS request** needs `xrfkey` in the query (name case-insensitive) and an equal
//!   `X-Qlik-Xrfkey` header of 16 characters of `[0-9A-Za-z]`; otherwise 403 `XSRF prevention check failed.
//!   Possible XSRF discovered.`. A query string with an empty parameter (a stray `&`) is 400
//!   `Missing parameter value(s)`.
//! - **Identity.** On the repository listener `X-Qlik-User: UserDirectory=<dir>; UserId=<id>` (spaces optional,
//!   key names case-insensitive, values URL-decoded). A missing header acts as
//!   [`SimulatorConfig::anonymous_user`]; a header that is present but does not name both a directory and a user
//!   is answered with **400** (QRS's own answer is not documented). On the hub, the session cookie must name a
//!   session created through QPS, otherwise **401**. Privileges are not enforced: every identity acts as an
//!   administrator, as a certificate-authenticated caller does on a real site.
//! - **Deallocation.** `DELETE /qrs/license/<type>accesstype/{id}` quarantines a seat used within the last 7 days
//!   (`quarantineEnd = lastUsed + 7d`, the row stays) and removes any other; an already-quarantined row answers 204
//!   and is left unchanged; an unknown id is 404. `loginaccesstype` rows are groups and a DELETE removes the group.
//!   Quarantined rows vanish when the simulated clock passes `quarantineEnd`.
//! - **Faults and latency** can be injected per request ([`FaultRule`]); every request and every deallocation is
//!   recorded for assertions.
//!
//! The code, by concern: starting and steering a simulator ([`Simulator`] in `simulator.rs`, its configuration in
//! `config.rs`, the state its parts share in `shared.rs`, what it records in `recorded.rs`, the faults a test
//! injects in `fault.rs`), the site's state ([`SiteHandle`] outside; `site.rs`, `records.rs` inside), how QRS
//! renders it (`views.rs` and `views/`, `time.rs`), the filter language (`filter.rs` and `filter/`), the QRS routes
//! (`http/qrs.rs`, `http/collections.rs`), the checks every request passes (`http/checks.rs`), QPS and the hub
//! (`http/proxy.rs`), how injected faults answer (`http/faults.rs`), the PKI (`pki.rs`), the TLS listeners
//! (`server.rs`) and synthetic sites (`synthetic.rs`).

mod config;
mod fault;
mod filter;
mod handle;
mod http;
mod pki;
mod recorded;
mod records;
mod server;
mod shared;
mod simulator;
mod site;
mod synthetic;
mod time;
mod views;

#[cfg(test)]
mod tests;

use std::sync::{Mutex, MutexGuard, PoisonError};

pub use config::{KeyFormat, MAX_REQUEST_LINE, NEVER_USED_SENTINEL, ProxyConfig, SimulatorConfig};
pub use fault::{Fault, FaultRule};
pub use handle::{
    AllocationSnapshot, LoginGroupSnapshot, SiteHandle, SiteSummary, TypeSummary, UserSnapshot,
};
pub use pki::Pki;
pub use recorded::{
    DeletionOutcome, Identity, Listener, RecordedArrival, RecordedDeletion, RecordedRequest,
};
pub use records::{NewUser, SeatTotals, SimAccessType, SiteError};
pub(crate) use shared::Shared;
pub use simulator::{Simulator, SimulatorError};

/// Locks a mutex; a panic in another holder does not make the simulator's bookkeeping unusable.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
