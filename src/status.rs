//! The resource's status, computed from run reports: pure functions, so the controller and
//! `run --policy-ref` write the same thing.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::policy::{LicenseCleanupPolicyStatus, ReclaimedSeat, RunResult, RunStatus, RunSummary};
use crate::run::RunReport;

/// Seats listed in `status.lastRun.reclaimed`: enough to see who, bounded so the object stays small.
pub const RECLAIMED_LISTED: usize = 50;

pub const READY: &str = "Ready";
pub const RUNNING: &str = "Running";
/// False while the policy runs without verifying Qlik's certificate (`site.tls.insecureSkipVerify`, allowed by
/// the operator's `--allow-insecure-skip-verify`).
pub const TLS_VERIFIED: &str = "TLSVerified";

/// The TLSVerified condition for a policy that does or does not skip verification.
pub fn tls_verified(skips_verification: bool) -> ConditionUpdate {
    if skips_verification {
        ConditionUpdate::new(
            TLS_VERIFIED,
            false,
            "InsecureSkipVerify",
            "Qlik's server certificate is NOT verified (site.tls.insecureSkipVerify): anyone on the network path can impersonate the site; add root.pem and tls.serverName instead",
        )
    } else {
        ConditionUpdate::new(
            TLS_VERIFIED,
            true,
            "Verified",
            "Qlik's server certificate is verified against root.pem",
        )
    }
}

/// A condition as the program wants it now; [`merge_conditions`] keeps transition times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionUpdate {
    pub type_: &'static str,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

impl ConditionUpdate {
    pub fn new(
        type_: &'static str,
        status: bool,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            status,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// Replace or add conditions; `lastTransitionTime` moves only when the status (True/False) changes, as
/// metav1.Condition semantics require.
pub fn merge_conditions(
    existing: &[Condition],
    updates: &[ConditionUpdate],
    now: jiff::Timestamp,
    generation: Option<i64>,
) -> Vec<Condition> {
    let mut out: Vec<Condition> = existing.to_vec();
    for update in updates {
        let status = if update.status { "True" } else { "False" }.to_string();
        // Kubernetes requires a non-empty CamelCase reason and bounds the message.
        let reason = if update.reason.is_empty() {
            "Unknown".to_string()
        } else {
            update.reason.clone()
        };
        let message: String = update.message.chars().take(32_000).collect();
        match out.iter_mut().find(|c| c.type_ == update.type_) {
            Some(c) => {
                if c.status != status {
                    c.last_transition_time = Time(now);
                }
                c.status = status;
                c.reason = reason;
                c.message = message;
                c.observed_generation = generation;
            }
            None => out.push(Condition {
                type_: update.type_.to_string(),
                status,
                reason,
                message,
                last_transition_time: Time(now),
                observed_generation: generation,
            }),
        }
    }
    out
}

pub fn run_status(report: &RunReport) -> RunStatus {
    RunStatus {
        id: report.id.clone(),
        start_time: Time(report.start_time),
        completion_time: Time(report.completion_time),
        dry_run: report.dry_run,
        result: report.result,
        message: report.message.clone(),
        totals: report.totals,
        per_access_type: report
            .per_access_type
            .iter()
            .map(|(t, c)| (t.key().to_string(), *c))
            .collect(),
        seats: report
            .seats
            .iter()
            .map(|(t, s)| (t.key().to_string(), *s))
            .collect(),
        reclaimed: report
            .reclaimed()
            .take(RECLAIMED_LISTED)
            .map(|e| ReclaimedSeat {
                user: e.user.clone(),
                access_type: e.access_type.key().to_string(),
                last_used: e.last_used.clone(),
            })
            .collect(),
    }
}

pub fn summary(report: &RunReport) -> RunSummary {
    RunSummary {
        id: report.id.clone(),
        start_time: Time(report.start_time),
        completion_time: Time(report.completion_time),
        dry_run: report.dry_run,
        result: report.result,
        candidates: report.totals.candidates,
        reclaimed: report.totals.reclaimed,
        failed: report.totals.failed,
    }
}

/// The status after a run: the last run, history (newest first, bounded), times and conditions.
pub fn after_run(
    previous: &LicenseCleanupPolicyStatus,
    report: &RunReport,
    history_limit: u32,
    generation: Option<i64>,
    next_run: Option<jiff::Timestamp>,
) -> LicenseCleanupPolicyStatus {
    let mut status = previous.clone();
    status.observed_generation = generation;
    status.last_run = Some(run_status(report));
    status.history.insert(0, summary(report));
    status.history.truncate(history_limit as usize);
    if report.result == RunResult::Succeeded {
        status.last_successful_time = Some(Time(report.completion_time));
    }
    status.next_schedule_time = next_run.map(Time);
    let ready = match report.result {
        RunResult::Succeeded => ConditionUpdate::new(
            READY,
            true,
            if report.dry_run {
                "DryRunSucceeded"
            } else {
                "RunSucceeded"
            },
            report.message.clone(),
        ),
        RunResult::Aborted => {
            ConditionUpdate::new(READY, false, "RunAborted", report.message.clone())
        }
        RunResult::Failed => {
            ConditionUpdate::new(READY, false, "RunFailed", report.message.clone())
        }
    };
    let running = ConditionUpdate::new(
        RUNNING,
        false,
        "Idle",
        format!("run {} finished", report.id),
    );
    status.conditions = merge_conditions(
        &previous.conditions,
        &[ready, running],
        report.completion_time,
        generation,
    );
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn transition_time_moves_only_on_a_real_transition() {
        let t0 = ts("2026-01-01T00:00:00Z");
        let t1 = ts("2026-01-02T00:00:00Z");
        let t2 = ts("2026-01-03T00:00:00Z");
        let c = merge_conditions(
            &[],
            &[ConditionUpdate::new(READY, true, "Valid", "ok")],
            t0,
            Some(1),
        );
        assert_eq!(c[0].last_transition_time, Time(t0));
        let c = merge_conditions(
            &c,
            &[ConditionUpdate::new(READY, true, "RunSucceeded", "again")],
            t1,
            Some(2),
        );
        assert_eq!(
            c[0].last_transition_time,
            Time(t0),
            "same status keeps the time"
        );
        assert_eq!(c[0].reason, "RunSucceeded");
        assert_eq!(c[0].observed_generation, Some(2));
        let c = merge_conditions(
            &c,
            &[ConditionUpdate::new(READY, false, "RunFailed", "boom")],
            t2,
            Some(2),
        );
        assert_eq!(c[0].last_transition_time, Time(t2));
        assert_eq!(c.len(), 1);
    }
}
