//! What the simulator records for assertions: each request as it arrived and as it was answered, and each
//! deletion QRS answered with 204, with the listener and the identity they name.

use jiff::Timestamp;
use uuid::Uuid;

use crate::{Fault, SimAccessType};

/// Which listener received a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Listener {
    /// Direct QRS with a client certificate (like port 4242).
    Repository,
    /// The proxy service's API (like port 4243).
    Qps,
    /// The hub, where `/{prefix}/qrs/...` is reached with a session cookie (like port 443).
    Hub,
}

/// A user as QRS knows the caller: `UserDirectory` and `UserId`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    pub directory: String,
    pub user_id: String,
}

impl Identity {
    pub fn new(directory: impl Into<String>, user_id: impl Into<String>) -> Identity {
        Identity {
            directory: directory.into(),
            user_id: user_id.into(),
        }
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}\\{}", self.directory, self.user_id)
    }
}

/// A request the simulator answered (or dropped, for [`Fault::Reset`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// Simulated time at which the request arrived.
    pub at: Timestamp,
    pub listener: Listener,
    pub method: String,
    /// The path as sent, without the query.
    pub path: String,
    /// Decoded query parameters in order (`+` read as a space).
    pub query: Vec<(String, String)>,
    /// Response status; 0 when the connection was reset without a response.
    pub status: u16,
    /// Who the request acted as: `X-Qlik-User` (or the anonymous user) on the repository, the session's user on the
    /// hub, none on QPS or when the request was refused before identification.
    pub user: Option<Identity>,
    /// The injected fault that answered the request, if any.
    pub fault: Option<Fault>,
}

impl RecordedRequest {
    /// The first query parameter called `name` (case-insensitive).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A request as it arrived, recorded before anything else happens to it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedArrival {
    pub at: Timestamp,
    pub listener: Listener,
    pub method: String,
    pub path: String,
}

/// What a successful DELETE did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeletionOutcome {
    /// The row is gone and the seat is free.
    Removed,
    /// Used within 7 days: the row stays, quarantined until `lastUsed + 7d`.
    Quarantined,
    /// The row was already quarantined and was left unchanged.
    AlreadyQuarantined,
}

/// A DELETE that QRS answered with 204.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedDeletion {
    pub at: Timestamp,
    pub listener: Listener,
    pub access_type: SimAccessType,
    /// The allocation (or, for login access, the group) deleted.
    pub allocation_id: Uuid,
    /// The user holding the allocation; none for a login access group or a deleted user.
    pub user: Option<Uuid>,
    /// The holder's directory and user id (for a deleted user, the remembered ones; empty for a group).
    pub user_directory: String,
    pub user_id: String,
    pub outcome: DeletionOutcome,
    /// Who asked.
    pub requested_by: Option<Identity>,
}
