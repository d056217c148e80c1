//! The policy's conditions and the reasons behind them, as types: one place names every condition and every
//! reason, and one outcome has one name whether a condition or an Event tells it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::policy::RunResult;

/// The conditions a policy carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConditionType {
    /// The policy can run: valid, its Secret usable, its last run not failed or aborted.
    Ready,
    /// A run is in progress.
    Running,
    /// False while the policy runs without verifying Qlik's certificate (`site.tls.insecureSkipVerify`, allowed
    /// by the operator's `--allow-insecure-skip-verify`).
    TlsVerified,
    /// kstatus: the operator is working on the policy (a run is in progress). Derived from Running.
    Reconciling,
    /// kstatus: the policy cannot make progress until someone changes it or its Secret (it is invalid, or its
    /// Secret or notification settings are missing or unusable). Derived from Ready.
    Stalled,
}

impl ConditionType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ConditionType::Ready => "Ready",
            ConditionType::Running => "Running",
            ConditionType::TlsVerified => "TLSVerified",
            ConditionType::Reconciling => "Reconciling",
            ConditionType::Stalled => "Stalled",
        }
    }
}

/// Why a condition is what it is, or why an Event was published. Warnings are the reasons an administrator
/// should act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConditionReason {
    /// Ready: valid and waiting for its next run.
    Scheduled,
    /// Ready: the last run, a dry run, succeeded (also its Event).
    DryRunSucceeded,
    /// Ready: the last run succeeded and reclaimed what it decided to (also its Event).
    RunSucceeded,
    /// Not ready: the last run stopped before the end, for example at the breaker (also its Event).
    RunAborted,
    /// Not ready: the last run failed (also its Event).
    RunFailed,
    /// Not ready: the policy cannot be used as written.
    InvalidPolicy,
    /// Not ready: the policy's Secret does not exist.
    SecretNotFound,
    /// Not ready: the policy's Secret cannot be read.
    SecretUnreadable,
    /// Not ready: the policy's Secret does not hold usable credentials.
    SecretInvalid,
    /// Not ready: the API server refused or failed a request the run needed.
    ApiError,
    /// Not ready: the notification settings (spec.notify) cannot be used: a Secret, a key or a template.
    NotificationsInvalid,
    /// An Event: notices or summaries could not be delivered.
    NotificationFailed,
    /// Running: a run is in progress.
    Running,
    /// Not running.
    Idle,
    /// TLSVerified: Qlik's certificate is verified.
    Verified,
    /// Not TLSVerified: `site.tls.insecureSkipVerify` is set and allowed.
    InsecureSkipVerify,
    /// An Event: a scheduled run was missed by more than the starting deadline and is skipped.
    MissedRunSkipped,
    /// An Event: more than a fifth of the seats the kept runs reclaimed went back to their users.
    ManySeatsReturned,
    /// An Event: the run's record could not be kept.
    RecordNotKept,
    /// An Event on a run: its seats were given back (or, in dry run, would be).
    Restored,
    /// An Event on a run: the restore could not give back every seat.
    RestoreFailed,
}

impl ConditionReason {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ConditionReason::Scheduled => "Scheduled",
            ConditionReason::DryRunSucceeded => "DryRunSucceeded",
            ConditionReason::RunSucceeded => "RunSucceeded",
            ConditionReason::RunAborted => "RunAborted",
            ConditionReason::RunFailed => "RunFailed",
            ConditionReason::InvalidPolicy => "InvalidPolicy",
            ConditionReason::SecretNotFound => "SecretNotFound",
            ConditionReason::SecretUnreadable => "SecretUnreadable",
            ConditionReason::SecretInvalid => "SecretInvalid",
            ConditionReason::ApiError => "ApiError",
            ConditionReason::NotificationsInvalid => "NotificationsInvalid",
            ConditionReason::NotificationFailed => "NotificationFailed",
            ConditionReason::Running => "Running",
            ConditionReason::Idle => "Idle",
            ConditionReason::Verified => "Verified",
            ConditionReason::InsecureSkipVerify => "InsecureSkipVerify",
            ConditionReason::MissedRunSkipped => "MissedRunSkipped",
            ConditionReason::ManySeatsReturned => "ManySeatsReturned",
            ConditionReason::RecordNotKept => "RecordNotKept",
            ConditionReason::Restored => "Restored",
            ConditionReason::RestoreFailed => "RestoreFailed",
        }
    }

    /// Whether an Event with this reason is a Warning.
    pub(crate) fn is_warning(self) -> bool {
        !matches!(
            self,
            ConditionReason::Scheduled
                | ConditionReason::DryRunSucceeded
                | ConditionReason::RunSucceeded
                | ConditionReason::Restored
                | ConditionReason::Running
                | ConditionReason::Idle
                | ConditionReason::Verified
        )
    }

    /// The reasons a policy is not ready for until it, its Secret or its notification settings change, rather
    /// than until its next run: kstatus's Stalled. Not `SecretUnreadable`: an API server that failed a read may
    /// answer the next one.
    const NEED_A_CHANGE: [ConditionReason; 4] = [
        ConditionReason::InvalidPolicy,
        ConditionReason::SecretNotFound,
        ConditionReason::SecretInvalid,
        ConditionReason::NotificationsInvalid,
    ];

    /// How a finished run ended.
    pub(crate) fn of_run(result: RunResult, dry_run: bool) -> ConditionReason {
        match (result, dry_run) {
            (RunResult::Succeeded, true) => ConditionReason::DryRunSucceeded,
            (RunResult::Succeeded, false) => ConditionReason::RunSucceeded,
            (RunResult::Aborted, _) => ConditionReason::RunAborted,
            (RunResult::Failed, _) => ConditionReason::RunFailed,
        }
    }
}

/// A condition as the program wants it now; [`merge_conditions`] keeps transition times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConditionUpdate {
    pub(crate) type_: ConditionType,
    pub(crate) status: bool,
    pub(crate) reason: ConditionReason,
    pub(crate) message: String,
}

impl ConditionUpdate {
    pub(crate) fn ready(reason: ConditionReason, message: impl Into<String>) -> Self {
        Self::new(ConditionType::Ready, true, reason, message)
    }

    pub(crate) fn not_ready(reason: ConditionReason, message: impl Into<String>) -> Self {
        Self::new(ConditionType::Ready, false, reason, message)
    }

    /// Ready as a finished run leaves it.
    pub(crate) fn after_run(result: RunResult, dry_run: bool, message: impl Into<String>) -> Self {
        let reason = ConditionReason::of_run(result, dry_run);
        Self::new(
            ConditionType::Ready,
            result == RunResult::Succeeded,
            reason,
            message,
        )
    }

    pub(crate) fn running() -> Self {
        Self::new(
            ConditionType::Running,
            true,
            ConditionReason::Running,
            "a run is in progress",
        )
    }

    pub(crate) fn idle(message: impl Into<String>) -> Self {
        Self::new(
            ConditionType::Running,
            false,
            ConditionReason::Idle,
            message,
        )
    }

    /// TLSVerified for a policy that does or does not skip verification.
    pub(crate) fn tls_verified(skips_verification: bool) -> Self {
        if skips_verification {
            Self::new(
                ConditionType::TlsVerified,
                false,
                ConditionReason::InsecureSkipVerify,
                "Qlik's server certificate is NOT verified (site.tls.insecureSkipVerify): anyone on the network path can impersonate the site; add root.pem and tls.serverName instead",
            )
        } else {
            Self::new(
                ConditionType::TlsVerified,
                true,
                ConditionReason::Verified,
                "Qlik's server certificate is verified against root.pem",
            )
        }
    }

    fn new(
        type_: ConditionType,
        status: bool,
        reason: ConditionReason,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            status,
            reason,
            message: message.into(),
        }
    }
}

/// The condition of this type, if the policy has it.
pub(crate) fn find(conditions: &[Condition], type_: ConditionType) -> Option<&Condition> {
    conditions.iter().find(|c| c.type_ == type_.as_str())
}

/// Whether the condition of this type is True.
pub(crate) fn is_true(conditions: &[Condition], type_: ConditionType) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == "True")
}

/// Replace or add conditions; `lastTransitionTime` moves only when the status (True/False) changes, as
/// metav1.Condition semantics require.
pub(crate) fn merge_conditions(
    existing: &[Condition],
    updates: &[ConditionUpdate],
    now: jiff::Timestamp,
    generation: Option<i64>,
) -> Vec<Condition> {
    let mut out: Vec<Condition> = existing.to_vec();
    for update in updates {
        let wanted = (
            update.status,
            update.reason.as_str(),
            update.message.as_str(),
        );
        set(&mut out, update.type_, wanted, now, generation);
    }
    for (type_, status, reason, message) in kstatus(&out) {
        set(
            &mut out,
            type_,
            (status, &reason, &message),
            now,
            generation,
        );
    }
    out
}

/// Sets the condition `type_` to `(status, reason, message)`, moving its transition time only when its status
/// changes.
fn set(
    conditions: &mut Vec<Condition>,
    type_: ConditionType,
    (status, reason, message): (bool, &str, &str),
    now: jiff::Timestamp,
    generation: Option<i64>,
) {
    let status = if status { "True" } else { "False" }.to_string();
    // Kubernetes bounds the message to 32768 bytes: cut at a character boundary below that.
    let mut cut = message.len().min(32_000);
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    let message = message[..cut].to_string();
    match conditions.iter_mut().find(|c| c.type_ == type_.as_str()) {
        Some(c) => {
            if c.status != status {
                c.last_transition_time = Time(now);
            }
            c.status = status;
            c.reason = reason.to_string();
            c.message = message;
            c.observed_generation = generation;
        }
        None => conditions.push(Condition {
            type_: type_.as_str().to_string(),
            status,
            reason: reason.to_string(),
            message,
            last_transition_time: Time(now),
            observed_generation: generation,
        }),
    }
}

/// Reconciling and Stalled as kstatus (Flux, `kubectl wait`, Argo CD) reads them, derived from Running and Ready so
/// that every writer of the status keeps them in step: each with its status, reason (the one it follows) and
/// message.
fn kstatus(conditions: &[Condition]) -> Vec<(ConditionType, bool, String, String)> {
    let mut derived = Vec::new();
    if let Some(running) = find(conditions, ConditionType::Running) {
        derived.push((
            ConditionType::Reconciling,
            running.status == "True",
            running.reason.clone(),
            running.message.clone(),
        ));
    }
    if let Some(ready) = find(conditions, ConditionType::Ready) {
        let stalled = ready.status == "False"
            && ConditionReason::NEED_A_CHANGE
                .iter()
                .any(|r| r.as_str() == ready.reason);
        let message = if stalled {
            format!("waiting for a change: {}", ready.message)
        } else {
            "not stalled: the policy runs on its schedule".to_string()
        };
        derived.push((
            ConditionType::Stalled,
            stalled,
            ready.reason.clone(),
            message,
        ));
    }
    derived
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::ts;

    #[test]
    fn transition_time_moves_only_on_a_real_transition() {
        let t0 = ts("2026-01-01T00:00:00Z");
        let t1 = ts("2026-01-02T00:00:00Z");
        let t2 = ts("2026-01-03T00:00:00Z");
        let c = merge_conditions(
            &[],
            &[ConditionUpdate::ready(ConditionReason::Scheduled, "ok")],
            t0,
            Some(1),
        );
        assert_eq!(c[0].last_transition_time, Time(t0));
        let again = ConditionUpdate::after_run(RunResult::Succeeded, false, "again");
        let c = merge_conditions(&c, &[again], t1, Some(2));
        assert_eq!(
            c[0].last_transition_time,
            Time(t0),
            "same status keeps the time"
        );
        assert_eq!(c[0].reason, "RunSucceeded");
        assert_eq!(c[0].observed_generation, Some(2));
        let failed = ConditionUpdate::after_run(RunResult::Failed, false, "boom");
        let c = merge_conditions(&c, &[failed], t2, Some(2));
        assert_eq!(c[0].last_transition_time, Time(t2));
        assert_eq!(
            (c[0].status.as_str(), c[0].reason.as_str()),
            ("False", "RunFailed")
        );
        // Ready and, derived from it for kstatus, Stalled: False, since a failed run waits for the next one.
        assert_eq!(c.len(), 2);
        let stalled = find(&c, ConditionType::Stalled).expect("Stalled is derived");
        assert_eq!(
            (stalled.status.as_str(), stalled.reason.as_str()),
            ("False", "RunFailed")
        );
    }

    #[test]
    fn reconciling_and_stalled_follow_running_and_ready_for_kstatus() {
        let t = ts("2026-01-01T00:00:00Z");
        let get = |c: &[Condition], type_| {
            let c = find(c, type_).expect("present");
            (c.status.clone(), c.reason.clone(), c.observed_generation)
        };
        let c = merge_conditions(&[], &[ConditionUpdate::running()], t, Some(4));
        assert_eq!(
            get(&c, ConditionType::Reconciling),
            ("True".into(), "Running".into(), Some(4))
        );
        let c = merge_conditions(&c, &[ConditionUpdate::idle("done")], t, Some(4));
        assert_eq!(get(&c, ConditionType::Reconciling).0, "False");
        for (reason, stalled) in [
            (ConditionReason::InvalidPolicy, "True"),
            (ConditionReason::SecretNotFound, "True"),
            (ConditionReason::NotificationsInvalid, "True"),
            (ConditionReason::RunFailed, "False"),
            (ConditionReason::ApiError, "False"),
        ] {
            let c = merge_conditions(&c, &[ConditionUpdate::not_ready(reason, "x")], t, Some(5));
            assert_eq!(
                get(&c, ConditionType::Stalled),
                (stalled.into(), reason.as_str().into(), Some(5)),
                "{reason:?}"
            );
        }
        let c = merge_conditions(
            &c,
            &[ConditionUpdate::ready(ConditionReason::Scheduled, "ok")],
            t,
            Some(5),
        );
        assert_eq!(get(&c, ConditionType::Stalled).0, "False");
        assert_eq!(c.len(), 4, "Running, Reconciling, Ready, Stalled: {c:?}");
    }

    #[test]
    fn a_run_and_its_event_share_one_reason() {
        for (result, dry_run, reason, warning) in [
            (RunResult::Succeeded, true, "DryRunSucceeded", false),
            (RunResult::Succeeded, false, "RunSucceeded", false),
            (RunResult::Aborted, false, "RunAborted", true),
            (RunResult::Failed, true, "RunFailed", true),
        ] {
            let condition = ConditionUpdate::after_run(result, dry_run, "m");
            assert_eq!(condition.reason.as_str(), reason);
            assert_eq!(
                ConditionReason::of_run(result, dry_run).is_warning(),
                warning
            );
        }
    }
}
