//! The record of one run: what `kubectl get lcprun` shows, what `run --output json` prints, and what `restore`
//! reads back. In the cluster it is the status of a `LicenseCleanupRun` owned by its policy.
//!
//! A record lists every seat the run reclaimed, would have reclaimed or failed to reclaim; kept seats are counted
//! by reason. It must fit in one etcd object (1.5 MiB by default), so the listed seats are bounded twice: a run
//! decides at most [`crate::policy::MAX_RECLAIMS_PER_RUN`] seats, and the list stops at [`DECISION_BYTES`] (which
//! only unusually long user names reach; the rest are then counted in `decisionsOmitted`).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, MicroTime, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::policy::{RunHeader, RunResult};
use crate::report::{Entry, Outcome, RunReport};

/// Bytes of JSON the listed decisions of one record may take: with the counts, the returns and the restore's
/// outcome, a record stays well under etcd's 1.5 MiB.
pub const DECISION_BYTES: usize = 1024 * 1024;

/// Bytes of JSON the seats of a restore's outcome may take in a run's record: with [`DECISION_BYTES`] of decisions,
/// the record stays under etcd's 1.5 MiB.
pub const RESTORE_BYTES: usize = 256 * 1024;

/// Returned seats listed in one record; more are counted in `returned`.
pub const RETURNS_LISTED: usize = 500;

/// Characters of a failure's message kept in the record: 2,000 decisions with long names, each a seat a bulk DELETE
/// may have taken (recorded with its user's id and why it could not be read back), fit in [`DECISION_BYTES`].
const ERROR_CHARS: usize = 160;

/// Label naming the policy a run belongs to, on runs of policies whose name is a label value (at most 63
/// characters; a policy's name may have 253): for `kubectl get lcprun -l`.
pub const POLICY_LABEL: &str = "licensing.reclaimer.dev/policy";

/// Label holding the uid of the policy a run belongs to, on every run: a uid always fits in a label value, and a
/// policy created again under the same name is told apart. The operator finds a policy's runs by it.
pub const POLICY_UID_LABEL: &str = "licensing.reclaimer.dev/policy-uid";

/// The label selector of a policy's runs for `kubectl get lcprun -l`: by name when it fits a label, else by uid.
pub fn runs_selector(policy: &str, uid: &str) -> String {
    if is_label_value(policy) {
        format!("{POLICY_LABEL}={policy}")
    } else {
        format!("{POLICY_UID_LABEL}={uid}")
    }
}

/// Whether `value` may be a label value: at most 63 characters of `[A-Za-z0-9_.-]`, alphanumeric at both ends.
pub fn is_label_value(value: &str) -> bool {
    value.is_empty()
        || (value.len() <= 63
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && value.starts_with(|c: char| c.is_ascii_alphanumeric())
            && value.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

/// Annotation whose every new value on a `LicenseCleanupRun` gives back the seats that run reclaimed.
pub const RESTORE_ANNOTATION: &str = "licensing.reclaimer.dev/restore";

/// One run of a LicenseCleanupPolicy: what it reclaimed (or would have, in dry run), what failed, and what it kept.
#[derive(CustomResource, JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "licensing.reclaimer.dev",
    version = "v1alpha1",
    kind = "LicenseCleanupRun",
    plural = "licensecleanupruns",
    shortname = "lcprun",
    category = "qlik",
    namespaced,
    status = "RunRecord",
    printcolumn = r#"{"name":"Policy","type":"string","jsonPath":".spec.policy"}"#,
    printcolumn = r#"{"name":"Result","type":"string","jsonPath":".status.result"}"#,
    printcolumn = r#"{"name":"Dry Run","type":"boolean","jsonPath":".status.dryRun"}"#,
    printcolumn = r#"{"name":"Reclaimed","type":"integer","jsonPath":".status.totals.reclaimed"}"#,
    printcolumn = r#"{"name":"Moved","type":"integer","jsonPath":".status.totals.moved"}"#,
    printcolumn = r#"{"name":"Failed","type":"integer","jsonPath":".status.totals.failed"}"#,
    printcolumn = r#"{"name":"Returned","type":"integer","jsonPath":".status.returned"}"#,
    printcolumn = r#"{"name":"Restore","type":"string","jsonPath":".status.restore.result"}"#,
    printcolumn = r#"{"name":"Message","type":"string","priority":1,"jsonPath":".status.message"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct LicenseCleanupRunSpec {
    /// The LicenseCleanupPolicy that ran (also the run's owner: deleting the policy deletes its runs).
    pub policy: String,
    /// The run's id, as in the policy's status, the logs and the Events.
    pub run_id: String,
}

/// Everything one run did, as kept in the cluster and printed by `run --output json`.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    #[serde(flatten)]
    pub header: RunHeader<MicroTime>,
    /// Ready=True: a record is written once its run is finished (kstatus's conditions, which `kubectl wait`, Argo
    /// CD and Flux read). The same in the cluster, in `run --output json` and in the JSON webhook.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The Qlik site the run worked on: the policy's repositoryUrl, or the hub's URL through the proxy. A restore
    /// refuses to give seats back on another site.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub site: String,
    /// Every seat reclaimed, that would be reclaimed (dry run) or whose deallocation failed, in reclaim order.
    #[serde(default)]
    pub decisions: Vec<RecordedDecision>,
    /// Decisions not listed because the record would outgrow one Kubernetes object (very long user names).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub decisions_omitted: u64,
    /// Seats the run read and kept, counted by reason (excluded, quarantined, deferred, unknown-data, ...).
    /// Seats used within their threshold are not read at all; they are counted as active.
    #[serde(default)]
    pub kept: BTreeMap<String, u64>,
    /// Users an earlier recorded run reclaimed who hold that access type again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub returns: Vec<ReturnedSeat>,
    /// How many such users this run found (the list above stops at 500).
    #[serde(default)]
    pub returned: u64,
    /// The outcome of the last restore of this run's seats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<RestoreStatus>,
}

/// Whether two site URLs (a record's `site`, a policy's) name the same site: origins compared without a final
/// slash and without regard to case.
pub fn same_site(a: &str, b: &str) -> bool {
    a.trim_end_matches('/')
        .eq_ignore_ascii_case(b.trim_end_matches('/'))
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One seat a run reclaimed, would have reclaimed, or failed to.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RecordedDecision {
    /// DIRECTORY\userId.
    pub user: String,
    /// professional, analyzer or user.
    pub access_type: String,
    /// The allocation's QRS id.
    pub allocation_id: String,
    /// The user's QRS id: `restore` gives the seat back to this user (not to whoever bears the name by then),
    /// without looking the name up. Absent from records kept before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_qrs_id: Option<String>,
    /// ISO 8601, or "never".
    pub last_used: String,
    pub action: RecordedAction,
    /// The rule that took the seat, in a sentence.
    pub reason: String,
    /// The rule, as a token: idle, leaver or redundant.
    pub rule: Rule,
    /// Why the deallocation failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A move (Moved, MoveUnfinished) that allocated its user an Analyzer seat: restore releases it once the
    /// Professional seat is back.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub analyzer_added: bool,
    /// That Analyzer seat's QRS id, when QRS named it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analyzer_allocation_id: Option<String>,
}

/// What became of a seat a run decided to reclaim.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordedAction {
    /// Deallocated (or already gone when deleted).
    Reclaimed,
    /// A dry run: it would have been deallocated.
    WouldReclaim,
    /// The deallocation failed.
    Failed,
    /// A dry run: the Professional seat would move to Analyzer (`spec.rightSize`).
    WouldMove,
    /// The Professional seat moved to Analyzer: the user holds Analyzer, the Professional seat was deallocated.
    Moved,
    /// A move begun and not finished: the user holds Analyzer and still Professional; the next run finishes it.
    MoveUnfinished,
}

pub use crate::model::Rule;

/// A user reclaimed by an earlier run who holds that access type again.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ReturnedSeat {
    /// DIRECTORY\userId.
    pub user: String,
    pub access_type: String,
    /// The run that reclaimed the seat.
    pub reclaimed_by: String,
}

/// What a restore gave back.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RestoreStatus {
    /// The value of the restore annotation this restore answered (for `restore --run`, the value the run carried
    /// then, or "cli").
    pub answered: String,
    pub result: RunResult,
    /// Whether this restore only reported what it would give back.
    pub dry_run: bool,
    pub time: MicroTime,
    /// What happened, in a sentence.
    pub message: String,
    /// Seats given back (or, in dry run, that would be).
    pub restored: u64,
    /// Seats not given back, for the reason listed.
    pub skipped: u64,
    /// Seats QRS refused to allocate (no free seat, for example).
    pub failed: u64,
    /// Every seat and what became of it; in a run's record, as many as fit in [`RESTORE_BYTES`], those that failed
    /// first.
    #[serde(default)]
    pub seats: Vec<RestoredSeat>,
    /// Seats a run's record leaves out of `seats` (counted above all the same).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub seats_omitted: u64,
}

impl RestoreStatus {
    /// This outcome as a run's record keeps it: the seats listed within [`RESTORE_BYTES`], those that failed first,
    /// then those skipped (what an administrator acts on), the others counted in `seats_omitted`.
    pub fn bounded(&self) -> RestoreStatus {
        let rank = |s: &RestoredSeat| match s.outcome {
            RestoreOutcome::Failed => 0,
            RestoreOutcome::Skipped => 1,
            RestoreOutcome::Restored | RestoreOutcome::WouldRestore => 2,
        };
        let mut order: Vec<&RestoredSeat> = self.seats.iter().collect();
        order.sort_by_key(|s| rank(s));
        let (mut bytes, mut seats, mut omitted) = (0, Vec::new(), self.seats_omitted);
        for seat in order {
            let size = serde_json::to_vec(seat).map_or(usize::MAX, |json| json.len() + 1);
            if bytes + size > RESTORE_BYTES {
                omitted += 1;
                continue;
            }
            bytes += size;
            seats.push(seat.clone());
        }
        RestoreStatus {
            seats,
            seats_omitted: omitted,
            ..self.clone()
        }
    }
}

/// One seat of a restore.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RestoredSeat {
    /// DIRECTORY\userId.
    pub user: String,
    pub access_type: String,
    pub outcome: RestoreOutcome,
    /// Why, in a sentence.
    pub reason: String,
}

/// What a restore did with one seat.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestoreOutcome {
    /// Allocated again.
    Restored,
    /// A dry run: it would be allocated again.
    WouldRestore,
    /// Not allocated, for the reason given (holds it again, no longer exists, quarantined).
    Skipped,
    /// QRS refused the allocation.
    Failed,
}

impl RunRecord {
    /// The record of a finished run.
    pub fn of(report: &RunReport) -> Self {
        let mut decisions = Vec::new();
        let mut bytes = 0;
        let mut omitted = 0;
        let mut kept: BTreeMap<String, u64> = BTreeMap::new();
        for entry in &report.decisions {
            let Some(decision) = recorded(entry) else {
                let reason = match entry.outcome {
                    Outcome::Kept => entry.reason_code,
                    other => other.as_str(),
                };
                *kept.entry(reason.to_string()).or_default() += 1;
                continue;
            };
            let size = serde_json::to_vec(&decision).map_or(usize::MAX, |json| json.len() + 1);
            if bytes + size > DECISION_BYTES {
                omitted += 1;
                continue;
            }
            bytes += size;
            decisions.push(decision);
        }
        let read = report.decisions.len() as u64;
        let active = report.totals.allocated.saturating_sub(read);
        if active > 0 {
            *kept.entry("active".into()).or_default() += active;
        }
        RunRecord {
            header: report.header(MicroTime),
            conditions: vec![finished(report)],
            site: report.site.clone(),
            decisions,
            decisions_omitted: omitted,
            kept,
            returns: report
                .returns
                .iter()
                .take(RETURNS_LISTED)
                .map(|r| ReturnedSeat {
                    user: r.user.to_string(),
                    access_type: r.access_type.key().to_string(),
                    reclaimed_by: r.reclaimed_by.clone(),
                })
                .collect(),
            returned: report.returns.len() as u64,
            restore: None,
        }
    }

    /// The seats this run took from their users (not a dry run's, not the failed ones), Professional seats moved
    /// to Analyzer among them: a user who holds that seat again has returned.
    pub fn reclaimed(&self) -> impl Iterator<Item = &RecordedDecision> {
        self.decisions
            .iter()
            .filter(|d| matches!(d.action, RecordedAction::Reclaimed | RecordedAction::Moved))
    }
}

/// Ready, as a finished run's record always is.
fn finished(report: &RunReport) -> Condition {
    Condition {
        type_: "Ready".into(),
        status: "True".into(),
        reason: "Finished".into(),
        message: format!("the run finished: {}", report.result.as_str()),
        last_transition_time: Time(report.completion_time),
        observed_generation: Some(1),
    }
}

/// A report's entry as the record lists it; `None` for a seat that was kept.
fn recorded(entry: &Entry) -> Option<RecordedDecision> {
    let action = match entry.outcome {
        // A seat whose bulk DELETE could not be read back may be gone: on record as taken, with the error, so that a
        // restore looks at it (one its user still holds is skipped).
        Outcome::Reclaimed | Outcome::AlreadyGone | Outcome::Unconfirmed => {
            RecordedAction::Reclaimed
        }
        Outcome::WouldReclaim => RecordedAction::WouldReclaim,
        Outcome::Failed => RecordedAction::Failed,
        Outcome::WouldMove => RecordedAction::WouldMove,
        Outcome::Moved => RecordedAction::Moved,
        Outcome::MoveUnfinished => RecordedAction::MoveUnfinished,
        Outcome::NoAnalyzerSeat
        | Outcome::Deferred
        | Outcome::UsedSinceRead
        | Outcome::Kept
        | Outcome::Warned
        | Outcome::WouldWarn
        | Outcome::NoticeFailed
        | Outcome::NoticeGiven
        | Outcome::NoAddress => return None,
    };
    // A seat reclaimed, moved, or that would be or failed to be, was taken by a rule.
    let rule = entry.rule.unwrap_or(Rule::Idle);
    let mut reason = entry.reason.clone();
    if entry.outcome == Outcome::AlreadyGone {
        reason.push_str("; already deallocated when deleted");
    }
    Some(RecordedDecision {
        user: entry.user.clone(),
        access_type: entry.access_type.key().to_string(),
        allocation_id: entry.allocation_id.clone(),
        // Only for seats restore gives back: a failed one keeps the room for its error.
        user_qrs_id: matches!(
            action,
            RecordedAction::Reclaimed | RecordedAction::Moved | RecordedAction::MoveUnfinished
        )
        .then(|| entry.user_qrs_id.clone())
        .filter(|id| !id.is_empty()),
        last_used: entry.last_used.clone(),
        action,
        reason,
        rule,
        // Scrubbed already; cut so that a run whose every deletion failed still fits in its record.
        error: entry.error.as_deref().map(|e| cut(e, ERROR_CHARS)),
        analyzer_added: entry.analyzer_added,
        analyzer_allocation_id: entry.analyzer_allocation_id.clone(),
    })
}

fn cut(text: &str, chars: usize) -> String {
    match text.char_indices().nth(chars) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests;
