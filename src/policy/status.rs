//! What a `LicenseCleanupPolicy` reports: the last run, a bounded history, the hold of the run in progress.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::SeatCounts;

/// What the controller (or `run --policy-ref`) last observed and did.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct LicenseCleanupPolicyStatus {
    /// The spec generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready: the policy is valid and its last run did not fail. Running: a run is in progress.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// When the last run was started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<Time>,
    /// When a run last completed successfully.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_time: Option<Time>,
    /// When the next run is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_schedule_time: Option<Time>,
    /// The outcome of the last run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<RunStatus>,
    /// Compact summaries of recent runs, newest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<RunSummary>,
    /// The value of the licensing.reclaimer.dev/run-now annotation that the last triggered run answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_now: Option<String>,
    /// The run that holds the policy now. A policy runs at most once at a time, whichever runs it (the
    /// controller, another replica, a CronJob's `run --policy-ref`); a hold not renewed within
    /// `holdSeconds` is void, so a runner that crashed cannot keep it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_run: Option<ActiveRun>,
    /// Users warned (spec.notice) whose seats may go once their notice period has passed, if still unused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<PendingNotice>,
    /// How many notices are pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_notices: Option<u64>,
    /// Users moved to Analyzer (spec.rightSize) within the Analyzer threshold: their Analyzer seat is not idle
    /// before the threshold has passed since the move, however long ago they last used it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent_moves: Vec<MovedUser>,
}

/// A user moved to Analyzer, and when.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MovedUser {
    /// DIRECTORY\userId.
    pub user: String,
    pub at: Time,
}

impl From<&crate::report::RecentMove> for MovedUser {
    fn from(m: &crate::report::RecentMove) -> Self {
        MovedUser {
            user: m.user.to_string(),
            at: Time(m.at),
        }
    }
}

impl MovedUser {
    /// The move as a run takes it; `None` for a user name that is not `DIRECTORY\userId`.
    pub fn to_recent_move(&self) -> Option<crate::report::RecentMove> {
        Some(crate::report::RecentMove {
            user: crate::model::UserIdentity::parse(&self.user)?,
            at: self.at.0,
        })
    }
}

/// A notice delivered to a user (spec.notice).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PendingNotice {
    /// DIRECTORY\userId.
    pub user: String,
    pub access_type: String,
    pub allocation_id: String,
    /// The seat's last use when the user was warned (ISO 8601, or "never"); a different one cancels the notice.
    pub last_used: String,
    pub warned_at: Time,
    /// The seat may go from this instant, if still unused.
    pub reclaim_after: Time,
}

impl From<&crate::notice::Notice> for PendingNotice {
    fn from(n: &crate::notice::Notice) -> Self {
        PendingNotice {
            user: n.user.clone(),
            access_type: n.access_type.key().to_string(),
            allocation_id: n.allocation_id.clone(),
            last_used: n.last_used.clone(),
            warned_at: Time(n.warned_at),
            reclaim_after: Time(n.reclaim_after),
        }
    }
}

impl PendingNotice {
    /// The engine's notice; `None` for an access type the program does not know (a hand-edited status).
    pub fn to_notice(&self) -> Option<crate::notice::Notice> {
        Some(crate::notice::Notice {
            user: self.user.clone(),
            access_type: crate::model::AccessType::from_key(&self.access_type)?,
            allocation_id: self.allocation_id.clone(),
            last_used: self.last_used.clone(),
            warned_at: self.warned_at.0,
            reclaim_after: self.reclaim_after.0,
        })
    }
}

/// A run's hold on its policy, renewed while the run goes on.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ActiveRun {
    /// The run's id.
    pub id: String,
    /// Who runs it: the controller's pod, or `run --policy-ref`.
    pub holder: String,
    pub start_time: Time,
    /// Last renewal.
    pub renew_time: Time,
    /// The hold is void this long after its last renewal.
    pub hold_seconds: u32,
}

impl ActiveRun {
    /// Whether the hold still stands at `now`.
    pub fn holds_at(&self, now: jiff::Timestamp) -> bool {
        self.renew_time.0.as_second() + i64::from(self.hold_seconds) > now.as_second()
    }
}

/// How a run ended.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunResult {
    /// The run completed; in dry run, it reported what it would reclaim.
    Succeeded,
    /// The run could not complete (unreachable site, authentication, nonsensical answers, failed seats).
    Failed,
    /// A safety limit stopped the run before anything was deallocated.
    Aborted,
}

impl RunResult {
    pub fn as_str(self) -> &'static str {
        match self {
            RunResult::Succeeded => "Succeeded",
            RunResult::Failed => "Failed",
            RunResult::Aborted => "Aborted",
        }
    }
}

/// What every account of a run begins with: who it was, how it ended, and its counts. The policy's
/// `status.lastRun` and the run's record (`LicenseCleanupRun` status, `run --output json`) both carry it, filled from
/// the report by one function (`RunReport::header`). `When` is the instants' precision: seconds in the status,
/// microseconds in the record (records are ordered by their start).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RunHeader<When> {
    /// Run identifier, also in logs and Events.
    pub id: String,
    pub start_time: When,
    pub completion_time: When,
    /// Whether this run only reported.
    pub dry_run: bool,
    pub result: RunResult,
    /// What happened, in a sentence.
    pub message: String,
    /// Totals over all access types.
    pub totals: TypeCounts,
    /// Counts per access type (professional, analyzer, user).
    #[serde(default)]
    pub per_access_type: BTreeMap<String, TypeCounts>,
    /// Seats per access type from the site's access type overview.
    #[serde(default)]
    pub seats: BTreeMap<String, SeatCounts>,
    /// Which way seats were deleted: Bulk (QRS selections, up to 50 a request) or PerSeat (one a request);
    /// absent when none was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletions: Option<crate::report::DeletionPath>,
}

/// The last run in detail.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RunStatus {
    #[serde(flatten)]
    pub header: RunHeader<Time>,
    /// The first 50 seats reclaimed (or, in dry run, that would be).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reclaimed: Vec<ReclaimedSeat>,
}

/// Counters of one access type in one run.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TypeCounts {
    /// Allocations of this type QRS lists (its `count`), those in quarantine included: the site's seat overview
    /// (`seats`) counts those as quarantined, not allocated. The breaker's percentages are of this number.
    pub allocated: u64,
    /// Inactive (or, with spec.rightSize, moving to Analyzer), in scope, not excluded.
    pub candidates: u64,
    /// Deallocated (or, in dry run, that would be).
    pub reclaimed: u64,
    /// Deallocations that failed.
    pub failed: u64,
    /// Inactive but kept by an exclusion or the scope.
    pub excluded: u64,
    /// Kept because QRS sent a field a decision reads as missing, null or unreadable.
    #[serde(default)]
    pub unknown: u64,
    /// Candidates kept because, read again just before the deletion, the seat had been used since.
    #[serde(default)]
    pub used_since_read: u64,
    /// Of `reclaimed`, the seats of leavers (spec.leavers).
    #[serde(default)]
    pub leavers: u64,
    /// Of `reclaimed`, the redundant seats (spec.redundant); the rest were idle.
    #[serde(default)]
    pub redundant: u64,
    /// Professional seats moved to Analyzer (spec.rightSize), or in a dry run that would move; not counted as
    /// reclaimed.
    #[serde(default)]
    pub moved: u64,
}

impl TypeCounts {
    /// Of `reclaimed`, the seats taken because they were idle.
    pub fn idle(&self) -> u64 {
        self.reclaimed.saturating_sub(self.leavers + self.redundant)
    }
}

/// One reclaimed seat.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ReclaimedSeat {
    /// DIRECTORY\userId.
    pub user: String,
    pub access_type: String,
    /// Last use, or "never".
    pub last_used: String,
}

/// A compact summary of one run.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    pub id: String,
    pub start_time: Time,
    pub completion_time: Time,
    pub dry_run: bool,
    pub result: RunResult,
    pub candidates: u64,
    pub reclaimed: u64,
    pub failed: u64,
}
