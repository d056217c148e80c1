//! A run's report: everything it found and did, seat by seat, with the counts. A value of its own, so that what
//! tells of a run (the record, the notifications, the command line's output) reads it without reaching into the
//! run that produced it.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::model::{AccessType, Rule, SeatCounts, UserIdentity};
use crate::notice::Notice;
use crate::policy::{RunHeader, RunResult, TypeCounts};

/// A user an earlier recorded run reclaimed, who holds that access type again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Returned {
    pub user: UserIdentity,
    pub access_type: AccessType,
    /// The run that reclaimed the seat.
    pub reclaimed_by: String,
}

/// What happened to one allocation in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Deallocated.
    Reclaimed,
    /// Dry run: would have been deallocated.
    WouldReclaim,
    /// The seat was already gone when deleted (404); counts as reclaimed.
    AlreadyGone,
    /// The deallocation failed after retries.
    Failed,
    /// A candidate not deallocated: over the per-run cap, a tripped breaker, or shutdown.
    Deferred,
    /// Read again just before its deletion, the seat had been used since the run read the site: kept.
    UsedSinceRead,
    /// Not a candidate.
    Kept,
    /// A candidate whose user was warned now (`spec.notice`): reclaimed at a later run if still unused.
    Warned,
    /// Dry run: the user would be warned.
    WouldWarn,
    /// A candidate whose notice could not be delivered: warned again at the next run, not reclaimed meanwhile.
    NoticeFailed,
    /// A candidate warned earlier, within its notice period.
    NoticeGiven,
    /// A candidate whose user has no e-mail address in Qlik: never reclaimed without a notice.
    NoAddress,
    /// Dry run: a Professional seat whose user only consumes (`spec.rightSize`) would move to Analyzer.
    WouldMove,
    /// Moved to Analyzer: the user holds an Analyzer seat (allocated by the move, or held before) and the
    /// Professional seat was deallocated.
    Moved,
    /// A move not made: QRS has no Analyzer seat free. The user stays Professional.
    NoAnalyzerSeat,
    /// A move begun and not finished: the user holds an Analyzer seat and still the Professional one (its
    /// deallocation failed, or the run was stopped between). The next run finishes it.
    MoveUnfinished,
    /// Deleted in bulk, but the seats could not be read back: whether this one went is unknown. Counted as failed,
    /// and on record as possibly taken, so that a restore looks at it.
    Unconfirmed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Reclaimed => "reclaimed",
            Outcome::WouldReclaim => "would-reclaim",
            Outcome::AlreadyGone => "already-gone",
            Outcome::Failed => "failed",
            Outcome::Deferred => "deferred",
            Outcome::UsedSinceRead => "used-since-read",
            Outcome::Kept => "kept",
            Outcome::Warned => "warned",
            Outcome::WouldWarn => "would-warn",
            Outcome::NoticeFailed => "notice-failed",
            Outcome::NoticeGiven => "notice-given",
            Outcome::NoAddress => "no-address",
            Outcome::WouldMove => "would-move",
            Outcome::Moved => "moved",
            Outcome::NoAnalyzerSeat => "no-analyzer-seat",
            Outcome::MoveUnfinished => "move-unfinished",
            Outcome::Unconfirmed => "unconfirmed",
        }
    }

    /// An outcome of notice before reclaim.
    pub fn is_notice(self) -> bool {
        matches!(
            self,
            Outcome::Warned
                | Outcome::WouldWarn
                | Outcome::NoticeFailed
                | Outcome::NoticeGiven
                | Outcome::NoAddress
        )
    }

    pub(crate) fn counts_as_reclaimed(self) -> bool {
        matches!(
            self,
            Outcome::Reclaimed | Outcome::WouldReclaim | Outcome::AlreadyGone
        )
    }
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// DIRECTORY\userId.
    pub user: String,
    pub user_name: String,
    pub access_type: AccessType,
    pub allocation_id: String,
    /// The user's QRS id (a GUID).
    pub user_qrs_id: String,
    /// ISO 8601, "never", or the unreadable text QRS sent.
    pub last_used: String,
    /// Days since last use (or since allocation, for never-used seats).
    pub idle_days: Option<i64>,
    pub outcome: Outcome,
    /// Machine-readable reason code.
    pub reason_code: &'static str,
    /// The rule that takes the seat, when one does (the reason code says it too, for people and programs).
    #[serde(skip)]
    pub rule: Option<Rule>,
    /// Why, in a sentence.
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A move that allocated its user an Analyzer seat: `restore` releases it after giving Professional back.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub analyzer_added: bool,
    /// That Analyzer seat's QRS id, when QRS named it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analyzer_allocation_id: Option<String>,
}

/// Everything a run found and did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunReport {
    pub id: String,
    /// The site the run worked on ([`crate::qrs::Route::site`]).
    pub site: String,
    pub start_time: Timestamp,
    pub completion_time: Timestamp,
    pub dry_run: bool,
    pub result: RunResult,
    pub message: String,
    /// Over all access types.
    pub totals: TypeCounts,
    pub per_access_type: BTreeMap<AccessType, TypeCounts>,
    pub seats: BTreeMap<AccessType, SeatCounts>,
    /// Candidates first in reclaim order, then what was kept.
    pub decisions: Vec<Entry>,
    /// Users earlier recorded runs reclaimed who hold that access type again.
    pub returns: Vec<Returned>,
    /// Which way seats were deleted; absent when none was tried.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deletions: Option<DeletionPath>,
    /// The notices pending after the run (`spec.notice`), to keep for the next one; `None` when they are unchanged
    /// (no notice, a dry run, a run that failed or was aborted).
    #[serde(skip)]
    pub notices: Option<Vec<Notice>>,
    /// Notices and summaries sent, and how each went.
    #[serde(skip)]
    pub deliveries: Vec<Delivery>,
    /// The users moved to Analyzer whom the policy remembers after the run (earlier moves still within their
    /// window, and this run's), to give the next run; `None` when the run changed nothing (a dry run, a run that
    /// failed or was aborted before its moves).
    #[serde(skip)]
    pub recent_moves: Option<Vec<RecentMove>>,
}

/// Which way a run deleted seats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum DeletionPath {
    /// Through QRS selections, up to 50 seats a request, each deleted only if unused since the run read it.
    Bulk,
    /// One DELETE a seat (`spec.site.bulk: false`, or a site that does not serve selections).
    PerSeat,
}

/// A user a run moved to Analyzer, and when. Until the Analyzer threshold has passed since, their Analyzer seat is
/// not idle: the move counts as their last use of Qlik.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentMove {
    pub user: UserIdentity,
    pub at: Timestamp,
}

/// A map by access type as the resources keep it: by the type's key (`professional`, ...), each value converted.
pub fn by_access_type_key<V: Copy, W: From<V>>(
    map: &BTreeMap<AccessType, V>,
) -> BTreeMap<String, W> {
    map.iter()
        .map(|(t, v)| (t.key().to_string(), W::from(*v)))
        .collect()
}

impl RunReport {
    /// The header of this run, as the policy's status and the run's record begin; `when` gives its instants their
    /// precision.
    pub fn header<When>(&self, when: impl Fn(Timestamp) -> When) -> RunHeader<When> {
        RunHeader {
            id: self.id.clone(),
            start_time: when(self.start_time),
            completion_time: when(self.completion_time),
            dry_run: self.dry_run,
            result: self.result,
            message: self.message.clone(),
            totals: self.totals,
            per_access_type: by_access_type_key(&self.per_access_type),
            seats: by_access_type_key(&self.seats),
            deletions: self.deletions,
        }
    }

    /// Entries that were (or, in dry run, would be) reclaimed.
    pub fn reclaimed(&self) -> impl Iterator<Item = &Entry> {
        self.decisions
            .iter()
            .filter(|e| e.outcome.counts_as_reclaimed())
    }

    pub(crate) fn failed(id: String, start: Timestamp, dry_run: bool, message: String) -> Self {
        Self::new(
            id,
            start,
            Timestamp::now(),
            dry_run,
            RunResult::Failed,
            message,
        )
    }

    /// A report of how a run ended, with nothing yet in its counts and lists and no site.
    pub fn new(
        id: String,
        start_time: Timestamp,
        completion_time: Timestamp,
        dry_run: bool,
        result: RunResult,
        message: String,
    ) -> Self {
        Self {
            id,
            site: String::new(),
            start_time,
            completion_time,
            dry_run,
            result,
            message,
            totals: TypeCounts::default(),
            per_access_type: BTreeMap::new(),
            seats: BTreeMap::new(),
            decisions: Vec::new(),
            returns: Vec::new(),
            deletions: None,
            notices: None,
            deliveries: Vec::new(),
            recent_moves: None,
        }
    }
}

/// A delivery and how it went, for metrics and Events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// "email" or "webhook".
    pub channel: &'static str,
    /// `None` when delivered; why not otherwise.
    pub error: Option<String>,
}

/// A run's id: its start to the second, and six random characters (two runs may start in the same second).
pub fn run_id(now: Timestamp) -> String {
    let suffix: String = uuid::Uuid::new_v4()
        .simple()
        .to_string()
        .chars()
        .take(6)
        .collect();
    format!("{}-{suffix}", now.strftime("%Y%m%dT%H%M%SZ"))
}
