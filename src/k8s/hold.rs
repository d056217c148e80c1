//! A run's hold on its policy (`status.activeRun`: at most one run of a policy at a time, whoever runs it) and
//! the watch that stops a run's deletions when the policy changes, the hold is lost, or the process is told to stop.

use std::time::Duration;

use kube::Api;
use tokio::sync::watch;

use super::shutdown::Shutdown;
use super::status::{time, update_status};
use crate::policy::{LicenseCleanupPolicy, LicenseCleanupPolicyStatus};
use crate::run;

/// How often a run re-reads its policy while it may delete.
const POLICY_RECHECK: Duration = Duration::from_secs(2);

/// Failed re-reads in a row after which a run stops deleting: a policy it cannot see may have changed.
const POLICY_RECHECK_FAILURES: u32 = 3;

/// A run's hold on its policy is void this long after its last renewal (then another runner may take it).
pub(super) const HOLD_SECONDS: u32 = 30;

/// How often a run renews its hold.
const HOLD_RENEW: Duration = Duration::from_secs(10);

/// A run that could not renew its hold for this long starts no more deletions: well before the hold is void
/// and another runner (a new leader cut off from this one, a CronJob) could start deleting.
const HOLD_SAFE: Duration = Duration::from_secs(20);

/// Who runs a policy: the pod, or this process.
pub(super) fn holder_name() -> String {
    std::env::var("POD_NAME")
        .ok()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| {
            let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
            format!("{host}/pid-{}", std::process::id())
        })
}

/// What a run's stop watch needs.
pub(super) struct StopWatch {
    pub(super) api: Api<LicenseCleanupPolicy>,
    pub(super) name: String,
    /// The policy's uid when the run started: a policy deleted and created again under the same name starts at
    /// generation 1 again, so only the uid tells it apart.
    pub(super) uid: Option<String>,
    pub(super) generation: Option<i64>,
    pub(super) hold_id: String,
    pub(super) shutdown: Option<Shutdown>,
}

/// A stop for one run: `Some(why)` on shutdown, when the policy, re-read every [`POLICY_RECHECK`], was deleted
/// (or deleted and created again), suspended, switched to dry run or edited (a new generation) since the run started, or when the run lost its
/// hold on the policy (renewed every [`HOLD_RENEW`]). Abort the task when the run is done.
pub(super) fn watch_for_stop(
    w: StopWatch,
) -> (
    watch::Receiver<run::StopReason>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = watch::channel(None);
    let task = tokio::spawn(async move {
        let mut ticker = tokio::time::interval(POLICY_RECHECK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failures = 0;
        let mut renewed = tokio::time::Instant::now();
        loop {
            let shut_down = async {
                match w.shutdown.as_ref() {
                    Some(shutdown) => shutdown.requested().await,
                    None => std::future::pending().await,
                }
            };
            let reason = tokio::select! {
                () = shut_down => Some("shutdown: SIGTERM or SIGINT".to_string()),
                _ = ticker.tick() => {
                    let mut reason = policy_changed(&w, &mut failures).await;
                    if reason.is_none() && renewed.elapsed() >= HOLD_RENEW {
                        match renew_hold(&w).await {
                            Ok(true) => renewed = tokio::time::Instant::now(),
                            Ok(false) => reason = Some("another runner took the policy over".to_string()),
                            Err(e) => tracing::warn!(policy = %w.name, error = %e, "could not renew the run's hold on the policy"),
                        }
                    }
                    if reason.is_none() && renewed.elapsed() >= HOLD_SAFE {
                        reason = Some(format!(
                            "the run could not renew its hold on the policy for {}s (is the API server reachable?)",
                            HOLD_SAFE.as_secs()
                        ));
                    }
                    reason
                }
            };
            if let Some(reason) = reason {
                tracing::warn!(policy = %w.name, "{reason}: no further seat is deallocated in this run");
                let _ = tx.send(Some(reason));
                return;
            }
        }
    });
    (rx, task)
}

/// Why the policy as it is now forbids further deletions, if it does.
async fn policy_changed(w: &StopWatch, failures: &mut u32) -> Option<String> {
    match w.api.get_opt(&w.name).await {
        Ok(None) => Some("the policy was deleted".to_string()),
        Ok(Some(p)) if p.metadata.deletion_timestamp.is_some() => {
            Some("the policy is being deleted".to_string())
        }
        Ok(Some(p)) if p.metadata.uid != w.uid => Some(
            "the policy was deleted and created again; the next run follows the new one"
                .to_string(),
        ),
        Ok(Some(p)) if p.spec.suspend => Some("the policy was suspended".to_string()),
        Ok(Some(p)) if p.spec.dry_run => Some("the policy was switched to dry run".to_string()),
        Ok(Some(p)) if p.metadata.generation != w.generation => Some(
            "the policy was changed since the run started; the next run follows the new spec"
                .to_string(),
        ),
        Ok(Some(_)) => {
            *failures = 0;
            None
        }
        Err(e) => {
            *failures += 1;
            tracing::warn!(policy = %w.name, error = %e, failures = *failures, "could not re-read the policy during a run");
            (*failures >= POLICY_RECHECK_FAILURES)
                .then(|| "the policy could not be read again during the run".to_string())
        }
    }
}

/// Renew the run's hold; `Ok(false)` when another run holds the policy now.
async fn renew_hold(w: &StopWatch) -> Result<bool, kube::Error> {
    let mut ours = false;
    update_status(&w.api, &w.name, |_, status| {
        ours = false;
        if let Some(hold) = status.active_run.as_mut()
            && hold.id == w.hold_id
        {
            hold.renew_time = time(jiff::Timestamp::now());
            ours = true;
        }
    })
    .await?;
    Ok(ours)
}

/// Give the policy up, if this run still holds it.
pub(super) fn release_hold(status: &mut LicenseCleanupPolicyStatus, hold_id: &str) {
    if status
        .active_run
        .as_ref()
        .is_some_and(|hold| hold.id == hold_id)
    {
        status.active_run = None;
    }
}
