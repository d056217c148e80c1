//! A client of the Qlik Repository Service (QRS): reads allocations, users and seat counts, and deallocates.
//!
//! It knows HTTP and Qlik, not Kubernetes. Two ways in, as Qlik offers them:
//! - direct: mutual TLS to the repository (port 4242), acting as the `X-Qlik-User`;
//! - proxy: a session created on the Qlik Proxy Service (4243) with the certificate, then QRS through the hub
//!   with the session cookie (what the original deallocation script did).
//!
//! Every request carries the xrfkey both as a query parameter and as a header, as QRS requires.

mod allocate;
mod answer;
mod bulk;
mod connect;
mod ids;
pub use ids::{FILTER_BYTES, ids_per_read};
use ids::{guid_filter, require_guid};
mod owned;
mod scrub;
mod table;
mod tls;
mod transport;
#[warn(unreachable_pub)]
pub(crate) mod wire;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use rand::Rng;
use reqwest::{Method, StatusCode};

use crate::brake::Brake;
use crate::credentials::Xrfkey;
use crate::model::{AccessType, Allocation, SeatCounts, UserDetails, UserState};
pub use bulk::{Created, Selection};
pub(crate) use scrub::Scrubber;
pub use tls::ServerVerification;
pub use transport::finishing;
pub(crate) use wire::is_guid;
pub use wire::{Holder, SeatAccess};

/// Seats a run deletes, moves or gives back together: one selection, one `POST .../many`, one batch of moves. The
/// brake is looked at between batches, so this is also the most a switch to dry run can let go once a batch has
/// started. Reads of ids are not held to it: they carry [`ids_per_read`] ids a request.
pub const SEATS_PER_BATCH: usize = 50;

/// Inactive allocations a run reads at most, over all its access types. Through reading, deciding and the
/// report each costs about 1.4 KB at its peak (`cargo bench --bench memory`: 126 MiB for 90,000), so this many
/// stays inside the chart's 128 MiB memory limit; a site with more inactive seats at once is refused with a
/// message rather than reclaimed half-read.
pub const MAX_ALLOCATIONS_PER_RUN: usize = 80_000;

/// Why a listing may hold no more allocations than a run reads, for the message when it does.
const RUN_LIMIT_WHY: &str = ", more than a run reads (80,000 inactive allocations over all access types, for \
the operator's memory limit): raise inactiveDays or narrow spec.scope so that fewer are inactive at once";

/// Bytes of a list answer (allocations, users): QRS's `/full` rows are well under a kilobyte each.
const LIST_ANSWER_BYTES: u64 = 256 * 1024 * 1024;
/// Bytes of user names and ids (`name`, `userDirectory`, `userId`) a listing of allocations may hold for each
/// seat it may list, on average: about twice what real directories use. Each is bounded by Qlik (511 and 255
/// characters), but 80,000 seats at those limits would keep 350 MB; with this, the names and ids of a run's
/// [`MAX_ALLOCATIONS_PER_RUN`] seats keep at most 20 MB. A listing past it is refused, before any DELETE,
/// rather than read into the controller's memory.
const LISTING_TEXT_BYTES_PER_SEAT: usize = 256;
/// What any listing may hold of names and ids, however few seats it lists.
const LISTING_TEXT_BYTES_MIN: usize = 1024 * 1024;
/// Bytes of tags, custom properties, roles and e-mail a run keeps of each user it reads, on average: real
/// directories use well under a kilobyte. Each value is bounded by [`LIST_ELEMENT_BYTES`] alone, so without this a
/// hundred users of a megabyte each would fill the controller's memory.
const USER_DETAILS_BYTES_PER_USER: usize = 4096;
/// Bytes of one element of a list answer.
const LIST_ELEMENT_BYTES: usize = 1024 * 1024;
/// Bytes of a small answer (a count, the seat overview).
const SMALL_ANSWER_BYTES: u64 = 1024 * 1024;
/// Bytes of an error page read to explain a refusal; the rest is left unread.
const ERROR_PAGE_BYTES: usize = 8 * 1024;
/// Characters of Qlik's text repeated in a message.
const QLIK_TEXT_CHARS: usize = 200;

/// Why a QRS request failed.
#[derive(Debug, thiserror::Error)]
pub enum QrsError {
    #[error("cannot set up the connection to Qlik: {0}")]
    Setup(String),
    #[error("{method} {endpoint}: cannot reach Qlik at {url}: {detail}")]
    Unreachable {
        method: Method,
        endpoint: String,
        url: String,
        detail: String,
    },
    #[error("{method} {endpoint}: Qlik refused the request ({status}): {detail}")]
    Refused {
        method: Method,
        endpoint: String,
        status: StatusCode,
        detail: String,
    },
    #[error("{method} {endpoint}: Qlik answered {status}: {detail}")]
    Status {
        method: Method,
        endpoint: String,
        status: StatusCode,
        detail: String,
    },
    #[error("{method} {endpoint}: the answer makes no sense: {detail}")]
    Nonsense {
        method: Method,
        endpoint: String,
        detail: String,
    },
    /// The run's brake was pulled: no request starts after it.
    #[error("{method} {endpoint}: not sent, the run was stopped ({reason})")]
    Stopped {
        method: Method,
        endpoint: String,
        reason: String,
    },
}

/// What a deallocation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deallocation {
    /// QRS deallocated the seat (204).
    Done,
    /// The seat was already gone (404): someone or something deallocated it meanwhile. Counts as done.
    AlreadyGone,
}

/// Retry policy for connection errors and 5xx answers on GET and DELETE (both idempotent here: a repeated
/// DELETE of a seat already gone answers 404, which counts as done).
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 4,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// Exponential backoff with full jitter, so that parallel deallocations do not retry in lock step.
    fn delay(&self, attempt: u32) -> Duration {
        let exp = self.base_delay.saturating_mul(1u32 << attempt.min(16));
        let cap = exp.min(self.max_delay);
        let millis = cap.as_millis().max(1) as u64;
        Duration::from_millis(rand::rng().random_range(millis / 2..=millis))
    }
}

/// One finished request, for metrics.
#[derive(Debug, Clone)]
pub struct FinishedRequest {
    pub method: Method,
    /// Endpoint with ids removed, for example `license/professionalaccesstype/{id}`.
    pub endpoint: String,
    /// HTTP status, or `None` when no answer came.
    pub status: Option<u16>,
    pub duration: Duration,
}

/// Receives every finished request (the controller turns them into metrics).
pub trait RequestObserver: Send + Sync {
    fn observe(&self, request: &FinishedRequest);
}

/// How to reach QRS.
#[derive(Debug, Clone)]
pub struct Connection {
    pub route: Route,
    /// `X-Qlik-User` (direct) or the session's user (proxy).
    pub user_directory: String,
    pub user_id: String,
    pub verification: ServerVerification,
    pub request_timeout: Duration,
    pub retry: RetryPolicy,
}

#[derive(Debug, Clone)]
pub enum Route {
    Direct {
        repository_url: String,
    },
    Proxy {
        qps_url: String,
        hub_url: String,
        virtual_proxy_prefix: String,
        session_cookie_name: String,
    },
}

impl Route {
    /// The site this route reaches, as the policy names it: the repository URL, or the hub's URL through the
    /// proxy. A run's record keeps it, so that a restore gives seats back on the site that lost them.
    pub fn site(&self) -> &str {
        match self {
            Route::Direct { repository_url } => repository_url,
            Route::Proxy { hub_url, .. } => hub_url,
        }
    }
}

/// A connected QRS client. Cheap to share by reference across concurrent deallocations.
pub struct QrsClient {
    http: reqwest::Client,
    /// Base for QRS paths: the repository URL, or the hub URL plus the virtual proxy prefix.
    qrs_base: String,
    xrfkey: Xrfkey,
    /// `X-Qlik-User` header (direct) or `Cookie` header (proxy).
    auth_header: (&'static str, String),
    retry: RetryPolicy,
    observer: Option<Arc<dyn RequestObserver>>,
    session: Option<ProxySession>,
    /// Removes the xrfkey and the session id from whatever Qlik's answers repeat.
    scrubber: Scrubber,
    /// Once it holds a reason, no request is retried: a stopping run lets the attempts in flight finish but
    /// starts no new one, so that shutdown takes at most one request timeout.
    brake: Option<Brake>,
}

/// Which allocations of one access type a run reads, each one QRS filter.
pub enum Allocations<'a> {
    /// Last used at or before the instant (never-used ones included: their sentinel date is older than any
    /// cutoff): what may be inactive.
    UsedBy(Timestamp),
    /// Of users in any of these states (leavers), last used at or before the instant. QRS's filter reaches the
    /// allocation's user, so this is one request however many leavers there are.
    LeaversUsedBy(Timestamp, &'a [UserState]),
    /// Created at or after the instant: the seats given since.
    CreatedSince(Timestamp),
    /// In use (last used after the second instant) and allocated at or before the first: the seats right-sizing
    /// may move.
    InUse {
        created_by: Timestamp,
        used_after: Timestamp,
    },
}

impl Allocations<'_> {
    fn filter(&self) -> String {
        let date = |t: &Timestamp| wire::format_qrs_date(*t);
        match self {
            Allocations::UsedBy(cutoff) => format!("lastUsed le '{}'", date(cutoff)),
            Allocations::LeaversUsedBy(cutoff, states) => {
                let states: Vec<String> = states
                    .iter()
                    .map(|s| format!("user.{} eq true", s.qrs_field()))
                    .collect();
                format!(
                    "lastUsed le '{}' and ({})",
                    date(cutoff),
                    states.join(" or ")
                )
            }
            Allocations::CreatedSince(since) => format!("createdDate ge '{}'", date(since)),
            Allocations::InUse {
                created_by,
                used_after,
            } => format!(
                "createdDate le '{}' and lastUsed gt '{}'",
                date(created_by),
                date(used_after)
            ),
        }
    }
}

struct ProxySession {
    qps_session_url: String,
}

impl QrsClient {
    /// Allocations of one access type that `which` selects: QRS filters, so only those cross the wire. `counted`
    /// is what the site counts of this type (a list longer than that makes no sense); `budget` is how many more
    /// allocations the run may read (see [`MAX_ALLOCATIONS_PER_RUN`]).
    pub async fn allocations(
        &self,
        access_type: AccessType,
        which: &Allocations<'_>,
        counted: u64,
        budget: usize,
    ) -> Result<Vec<Allocation>, QrsError> {
        self.allocations_where(access_type, which.filter(), counted, budget)
            .await
    }

    async fn allocations_where(
        &self,
        access_type: AccessType,
        filter: String,
        counted: u64,
        budget: usize,
    ) -> Result<Vec<Allocation>, QrsError> {
        let endpoint = format!("license/{}/full", access_type.qrs_entity());
        let counted = usize::try_from(counted).unwrap_or(usize::MAX);
        let (rows, rows_why) = if budget < counted {
            (budget, RUN_LIMIT_WHY)
        } else {
            (counted, ", more than the site counts")
        };
        let text = TextBudget::for_seats(rows);
        let allocations = self
            .allocation_list(access_type, filter, (rows, rows_why), text)
            .await?;
        let mut seen = HashSet::with_capacity(allocations.len());
        for allocation in &allocations {
            if !seen.insert(allocation.id.to_ascii_lowercase()) {
                return Err(QrsError::Nonsense {
                    method: Method::GET,
                    endpoint,
                    detail: format!("allocation {} is listed twice", allocation.id),
                });
            }
        }
        Ok(allocations)
    }

    /// These allocations of one access type as QRS holds them now ([`ids_per_read`] ids a request, GUIDs
    /// as QRS listed them). Allocations gone since are absent from the answer.
    pub async fn allocations_by_id(
        &self,
        access_type: AccessType,
        ids: &[&str],
    ) -> Result<Vec<Allocation>, QrsError> {
        let endpoint = format!("license/{}/full", access_type.qrs_entity());
        let mut fresh = Vec::with_capacity(ids.len());
        // One budget over every batch: tens of thousands of seats read by id (the Analyzer seats of Professional
        // holders) keep no more names than a listing of as many would.
        let text = TextBudget::for_seats(ids.len());
        for batch in ids.chunks(ids_per_read("id")) {
            let filter = guid_filter(&endpoint, "id", batch)?;
            let rows = (batch.len(), ", more than were asked for");
            fresh.extend(
                self.allocation_list(access_type, filter, rows, text.clone())
                    .await?,
            );
        }
        Ok(fresh)
    }

    /// One `/full` list of allocations of `access_type` that `filter` selects, at most `rows` of them, their
    /// Qlik text scrubbed and their names kept within `text`.
    async fn allocation_list(
        &self,
        access_type: AccessType,
        filter: String,
        rows: (usize, &'static str),
        text: TextBudget,
    ) -> Result<Vec<Allocation>, QrsError> {
        let endpoint = format!("license/{}/full", access_type.qrs_entity());
        let scrubber = self.scrubber.clone();
        self.get_list(
            &endpoint,
            &[("filter", filter)],
            rows,
            "allocations",
            move |row: wire::AllocationJson| {
                let allocation = scrubbed(row.into_allocation(access_type), &scrubber)?;
                text.keep(&allocation)?;
                Ok(allocation)
            },
        )
        .await
    }

    /// Number of allocations of one access type on the whole site.
    pub async fn count(&self, access_type: AccessType) -> Result<u64, QrsError> {
        let endpoint = format!("license/{}/count", access_type.qrs_entity());
        let count: wire::CountJson = self.get_json(&endpoint, &[]).await?;
        Ok(count.value)
    }

    /// Seat counters per access type, from the access type overview. User access passes report tokens:
    /// allocated tokens as both total and allocated.
    pub async fn seats(&self) -> Result<BTreeMap<AccessType, SeatCounts>, QrsError> {
        let overview: wire::OverviewJson = self.get_json("license/accesstypeoverview", &[]).await?;
        let mut seats = BTreeMap::new();
        if let Some(p) = overview.professional_access {
            seats.insert(AccessType::Professional, p.into());
        }
        if let Some(a) = overview.analyzer_access {
            seats.insert(AccessType::Analyzer, a.into());
        }
        if let Some(u) = overview.user_access {
            seats.insert(
                AccessType::User,
                SeatCounts {
                    total: u.allocated_tokens,
                    allocated: u.used_tokens,
                    available: u.allocated_tokens.saturating_sub(u.used_tokens),
                    quarantined: u.quarantined_tokens,
                    excess: 0,
                },
            );
        }
        Ok(seats)
    }

    /// Tags, custom properties and roles of these users (QRS user ids, GUIDs as QRS listed them), fetched in
    /// batches of [`ids_per_read`]. Users QRS does not know are absent from the map.
    pub async fn users(&self, ids: &[String]) -> Result<HashMap<String, UserDetails>, QrsError> {
        let mut users = HashMap::with_capacity(ids.len());
        // One budget over every batch: a run keeps the users' records until it has decided.
        let used = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let limit = ids
            .len()
            .saturating_mul(USER_DETAILS_BYTES_PER_USER)
            .max(LISTING_TEXT_BYTES_MIN);
        for batch in ids.chunks(ids_per_read("id")) {
            let filter = guid_filter("user/full", "id", batch)?;
            let used = Arc::clone(&used);
            let rows = self
                .get_list(
                    "user/full",
                    &[("filter", filter)],
                    (batch.len(), ", more than were asked for"),
                    "users",
                    move |row: wire::UserJson| {
                        let details = row.into_details()?;
                        let kept = details.kept_bytes();
                        let total =
                            used.fetch_add(kept, std::sync::atomic::Ordering::Relaxed) + kept;
                        if total > limit {
                            return Err(format!(
                                "the users' tags, custom properties, roles and e-mail addresses take more than \
                                 {limit} bytes ({USER_DETAILS_BYTES_PER_USER} a user), more than a run keeps"
                            ));
                        }
                        Ok(details)
                    },
                )
                .await?;
            for details in rows {
                users.insert(details.id.clone(), details);
            }
        }
        Ok(users)
    }

    /// Deallocate one seat.
    pub async fn deallocate(
        &self,
        access_type: AccessType,
        id: &str,
    ) -> Result<Deallocation, QrsError> {
        if !access_type.is_per_user_seat() {
            // A DELETE on a login access type removes a whole group of passes.
            return Err(QrsError::Setup(format!(
                "refusing to delete {} {id}: login access passes are groups",
                access_type.qrs_entity()
            )));
        }
        let endpoint = format!("license/{}/{{id}}", access_type.qrs_entity());
        require_guid(Method::DELETE, &endpoint, id, || {
            "the allocation id is not a GUID; nothing was deleted".into()
        })?;
        let url = format!(
            "{}/qrs/license/{}/{id}",
            self.qrs_base,
            access_type.qrs_entity(),
        );
        let response = self
            .send(Method::DELETE, &url, &endpoint, &[], None, true)
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(Deallocation::AlreadyGone);
        }
        self.check_status(Method::DELETE, &endpoint, response)
            .await?;
        Ok(Deallocation::Done)
    }
}

/// An allocation whose unreadable `lastUsed` text is repeated in reports only scrubbed and cut short, like any
/// other text Qlik sends.
fn scrubbed(
    allocation: Result<Allocation, String>,
    scrubber: &Scrubber,
) -> Result<Allocation, String> {
    allocation.map(|mut allocation| {
        if let crate::model::LastUse::Unknown(raw) = &mut allocation.last_used {
            *raw = scrubber.scrub(raw, 64);
        }
        allocation
    })
}

/// The users' names and ids a read of allocations may keep: [`LISTING_TEXT_BYTES_PER_SEAT`] for each seat it may
/// hold, at least [`LISTING_TEXT_BYTES_MIN`]. Shared by the batches of one read.
#[derive(Clone)]
struct TextBudget {
    used: Arc<std::sync::atomic::AtomicUsize>,
    limit: usize,
}

impl TextBudget {
    fn for_seats(seats: usize) -> Self {
        Self {
            used: Arc::default(),
            limit: seats
                .saturating_mul(LISTING_TEXT_BYTES_PER_SEAT)
                .max(LISTING_TEXT_BYTES_MIN),
        }
    }

    /// Counts what `allocation` keeps; an error once the read keeps more than a run may.
    fn keep(&self, allocation: &Allocation) -> Result<(), String> {
        let kept = allocation.user_name.len()
            + allocation.user.directory.len()
            + allocation.user.user_id.len();
        let total = self
            .used
            .fetch_add(kept, std::sync::atomic::Ordering::Relaxed)
            + kept;
        if total > self.limit {
            return Err(format!(
                "the users' names and ids in the answer take more than {} bytes ({LISTING_TEXT_BYTES_PER_SEAT} a \
                 seat), more than a run keeps",
                self.limit
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::connect::encode;
    use super::*;

    #[test]
    fn retry_delays_grow_and_stay_capped() {
        let policy = RetryPolicy {
            attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(300),
        };
        for _ in 0..50 {
            let first = policy.delay(0);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
            let late = policy.delay(10);
            assert!(late >= Duration::from_millis(150) && late <= Duration::from_millis(300));
        }
    }

    #[test]
    fn user_header_values_are_percent_encoded() {
        assert_eq!(encode("sa_api"), "sa_api");
        assert_eq!(encode("a b;c"), "a%20b%3Bc");
        assert_eq!(encode("Jörg"), "J%C3%B6rg");
    }

    #[test]
    fn filters_take_only_guids() {
        let good = "3f2c7d9e-1b4a-4c8e-9f00-2d5e6a7b8c9d".to_string();
        assert_eq!(
            guid_filter("user/full", "id", std::slice::from_ref(&good)).unwrap(),
            format!("id eq {good}")
        );
        assert!(guid_filter("user/full", "id", &[good, "0a1b-2C3d' or 1 eq 1".into()]).is_err());
    }
}
