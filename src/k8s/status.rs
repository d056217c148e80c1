//! The resource's status: computed from run reports by pure functions, so the controller and `run --policy-ref`
//! write the same thing, and written with one read-modify-write that never overwrites another writer's news.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Api;
use kube::api::{Patch, PatchParams};

use super::FIELD_MANAGER;
use super::conditions::{ConditionUpdate, merge_conditions};
use crate::policy::{
    LicenseCleanupPolicy, LicenseCleanupPolicyStatus, ReclaimedSeat, RunResult, RunStatus,
    RunSummary,
};
use crate::run::RunReport;

/// Seats listed in `status.lastRun.reclaimed`: enough to see who, bounded so the object stays small.
pub(crate) const RECLAIMED_LISTED: usize = 50;

pub(crate) fn run_status(report: &RunReport) -> RunStatus {
    RunStatus {
        header: report.header(Time),
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

pub(crate) fn summary(report: &RunReport) -> RunSummary {
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
pub(crate) fn after_run(
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
    // Notices change only when the run says so (a dry run or a failed run leaves them as they were).
    if let Some(notices) = &report.notices {
        status.notices = notices
            .iter()
            .map(crate::policy::PendingNotice::from)
            .collect();
    }
    status.pending_notices = (!status.notices.is_empty() || status.pending_notices.is_some())
        .then_some(status.notices.len() as u64);
    // So do the users moved to Analyzer it remembers.
    if let Some(moves) = &report.recent_moves {
        status.recent_moves = moves.iter().map(crate::policy::MovedUser::from).collect();
    }
    let ready = ConditionUpdate::after_run(report.result, report.dry_run, report.message.clone());
    let running = ConditionUpdate::idle(format!("run {} finished", report.id));
    status.conditions = merge_conditions(
        &previous.conditions,
        &[ready, running],
        report.completion_time,
        generation,
    );
    status
}

/// Read-modify-write of the status from the resource as it is now, with the resourceVersion as a
/// precondition: two writers (a reconcile and a run, say) never overwrite each other's news.
pub(crate) async fn update_status(
    api: &Api<LicenseCleanupPolicy>,
    name: &str,
    mut change: impl FnMut(&LicenseCleanupPolicy, &mut LicenseCleanupPolicyStatus),
) -> Result<LicenseCleanupPolicy, kube::Error> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let current = api.get(name).await?;
        let old = current.status.clone().unwrap_or_default();
        let mut new = old.clone();
        change(&current, &mut new);
        if new == old {
            return Ok(current);
        }
        let patch = serde_json::json!({
            "apiVersion": "licensing.reclaimer.dev/v1alpha1",
            "kind": "LicenseCleanupPolicy",
            "metadata": {"resourceVersion": current.metadata.resource_version},
            "status": new,
        });
        match api
            .patch_status(
                name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await
        {
            Ok(updated) => return Ok(updated),
            Err(kube::Error::Api(status)) if status.code == 409 && attempt < 8 => continue,
            Err(e) => return Err(e),
        }
    }
}

pub(super) fn time(t: jiff::Timestamp) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t)
}

#[cfg(test)]
mod tests {
    use crate::notice::{Notice, reclaim_after};
    use crate::policy::{LicenseCleanupPolicyStatus, PendingNotice};

    /// The most notices a status holds, with long user names, stay well inside one etcd object (1.5 MiB) beside
    /// everything else the status carries.
    #[test]
    fn the_most_notices_a_status_keeps_fit_in_an_object() {
        let warned = crate::testing::ts("2026-12-01T09:00:00Z");
        let notices: Vec<PendingNotice> = (0..crate::policy::MAX_RECLAIMS_PER_RUN)
            .map(|i| {
                PendingNotice::from(&Notice {
                    user: format!("CORPORATE-EMEA\\firstname.lastname{i:05}@example-company.com"),
                    access_type: crate::model::AccessType::Professional,
                    allocation_id: format!("0f2c6d8e-1a2b-4c3d-9e8f-{i:012}"),
                    last_used: "2026-01-31T19:44:28.951Z".into(),
                    warned_at: warned,
                    reclaim_after: reclaim_after(warned, 14),
                })
            })
            .collect();
        let status = LicenseCleanupPolicyStatus {
            notices,
            pending_notices: Some(2000),
            ..Default::default()
        };
        let bytes = serde_json::to_vec(&status).expect("json").len();
        assert!(bytes < 700 * 1024, "{bytes} bytes");
    }
}
