//! A run's hold on its policy (`status.activeRun`: at most one run of a policy at a time, whoever runs it), taken
//! for a trigger that no one answered yet, and
//! the run's brake: a watch that stops its deletions as soon as the policy changes, when the hold is lost, or
//! when the process is told to stop.

use std::time::Duration;

use futures::StreamExt;
use kube::Api;
use kube::api::WatchEvent;

use super::conditions::{ConditionUpdate, merge_conditions};
use super::status::{time, update_status};
use crate::brake::{Brake, BrakeLever, BrakeState};
use crate::policy::{ActiveRun, LicenseCleanupPolicy, LicenseCleanupPolicyStatus};
use crate::shutdown::Shutdown;

/// How long a run waits for its watch on the policy to come back before it gives up deleting.
const WATCH_PATIENCE: Duration = Duration::from_secs(30);

/// The pause between attempts to watch the policy again, at first and at most.
const WATCH_RETRY: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));

/// The longest a read of the policy, or the opening of its watch, may take: a connection that went silent (a
/// network cut that closes nothing) must not keep the brake in any state for long.
const REQUEST_PATIENCE: Duration = Duration::from_secs(10);

/// The longest a watch may stay silent before it counts as broken. The run renews its hold in the policy's status
/// every [`HOLD_RENEW`], and the watch reports that write: a silent watch has lost the API server without a word.
const WATCH_SILENCE: Duration = Duration::from_secs(15);

/// How often a run checks whether its hold is due for renewal.
const HOLD_CHECK: Duration = Duration::from_secs(2);

/// A run's hold on its policy is void this long after its last renewal (then another runner may take it).
const HOLD_SECONDS: u32 = 30;

/// How often a run renews its hold.
const HOLD_RENEW: Duration = Duration::from_secs(10);

/// A run that could not renew its hold for this long starts no more deletions: well before the hold is void
/// and another runner (a new leader cut off from this one, a CronJob) could start deleting.
const HOLD_SAFE: Duration = Duration::from_secs(20);

/// Who runs a policy: the pod, or this process.
fn holder_name() -> String {
    std::env::var("POD_NAME")
        .ok()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| {
            let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
            format!("{host}/pid-{}", std::process::id())
        })
}

/// What a run answers; checked against the resource as it is now, so a reconcile working from a cache that
/// lags behind never runs the same instant (or the same run-now value) twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Trigger {
    /// `run --policy-ref`: always runs.
    Manual,
    /// A scheduled instant.
    Scheduled(jiff::Timestamp),
    /// A new value of the run-now annotation.
    RunNow(String),
}

impl Trigger {
    fn already_answered(&self, status: &LicenseCleanupPolicyStatus) -> bool {
        match self {
            Trigger::Manual => false,
            Trigger::Scheduled(at) => status
                .last_schedule_time
                .as_ref()
                .is_some_and(|t| t.0 >= *at),
            Trigger::RunNow(value) => status.last_run_now.as_deref() == Some(value.as_str()),
        }
    }
}

/// What taking the policy's hold found.
pub(super) enum Held {
    /// The hold is ours; the policy as it was when taken.
    Policy(Box<LicenseCleanupPolicy>),
    /// Someone already answered this trigger.
    AlreadyAnswered,
    /// The policy is suspended (`spec.suspend`).
    Suspended,
    /// Another run holds the policy.
    Busy { holder: String },
}

/// Takes the policy's hold and marks it running, unless the trigger was answered already, the policy is
/// suspended (read fresh: a suspend wins over any trigger, `run --policy-ref` included) or another run holds it.
/// At most one run of a policy at a time, whoever runs it; a hold not renewed in time is void.
pub(super) async fn take_hold(
    api: &Api<LicenseCleanupPolicy>,
    name: &str,
    trigger: &Trigger,
    hold_id: &str,
) -> Result<Held, kube::Error> {
    let started = jiff::Timestamp::now();
    let holder = holder_name();
    let mut not_run = None;
    let policy = update_status(api, name, |policy, status| {
        let busy = status
            .active_run
            .as_ref()
            .filter(|hold| hold.holds_at(started) && hold.id != hold_id)
            .map(|hold| hold.holder.clone());
        not_run = if trigger.already_answered(status) {
            Some(Held::AlreadyAnswered)
        } else if policy.spec.suspend {
            Some(Held::Suspended)
        } else {
            busy.map(|holder| Held::Busy { holder })
        };
        if not_run.is_some() {
            return;
        }
        status.active_run = Some(ActiveRun {
            id: hold_id.to_string(),
            holder: holder.clone(),
            start_time: time(started),
            renew_time: time(started),
            hold_seconds: HOLD_SECONDS,
        });
        status.last_schedule_time = Some(time(match trigger {
            Trigger::Scheduled(at) => *at,
            _ => started,
        }));
        if let Trigger::RunNow(value) = trigger {
            status.last_run_now = Some(value.clone());
        }
        let running = [
            ConditionUpdate::running(),
            ConditionUpdate::tls_verified(policy.spec.site.tls.insecure_skip_verify),
        ];
        status.conditions = merge_conditions(
            &status.conditions,
            &running,
            started,
            policy.metadata.generation,
        );
    })
    .await?;
    Ok(not_run.unwrap_or_else(|| Held::Policy(Box::new(policy))))
}

/// What a run's stop watch needs.
pub(super) struct StopWatch {
    pub(super) api: Api<LicenseCleanupPolicy>,
    pub(super) name: String,
    /// The policy's uid when the run started: a policy deleted and created again under the same name starts at
    /// generation 1 again, so only the uid tells it apart.
    pub(super) uid: Option<String>,
    pub(super) generation: Option<i64>,
    /// Whether the run is a dry run (the policy's, or forced): such a run stops only when the policy goes.
    pub(super) dry_run: bool,
    pub(super) hold_id: String,
    /// When the hold was taken (or last renewed): the hold's safety margin counts from there.
    pub(super) held_since: tokio::time::Instant,
    pub(super) shutdown: Option<Shutdown>,
}

/// The brake of one run. The policy is watched (a watch on the one object, not a poll): the brake is pulled as
/// soon as the API server reports it deleted (or deleted and created again), suspended, switched to dry run or
/// edited (a new generation) since the run started. It is also pulled on shutdown and when the run loses its hold
/// on the policy (renewed every [`HOLD_RENEW`]). While the watch is not established (at the start, and whenever it
/// breaks), the brake is paused: no deletion starts while a change could go unseen. Abort the task when the run
/// is done.
pub(super) fn watch_for_stop(w: StopWatch) -> (Brake, tokio::task::JoinHandle<()>) {
    let (lever, brake) = Brake::new(BrakeState::Paused(
        "the watch on the policy is being established".into(),
    ));
    let task = tokio::spawn(async move {
        let shut_down = async {
            match w.shutdown.as_ref() {
                Some(shutdown) => shutdown.requested().await,
                None => std::future::pending().await,
            }
        };
        let reason = tokio::select! {
            () = shut_down => "shutdown: SIGTERM or SIGINT".to_string(),
            reason = follow_policy(&w, &lever) => reason,
            reason = keep_hold(&w) => reason,
        };
        tracing::warn!(policy = %w.name, "{reason}: no further seat is deallocated in this run");
        lever.stop(reason);
    });
    (brake, task)
}

/// Follows the policy until it forbids further deletions, and says why. Each (re)connection opens the watch from
/// the version of a first read, then reads the policy again: a change before that second read is in it, and any
/// after it comes as an event. Only then is the brake released.
async fn follow_policy(w: &StopWatch, lever: &BrakeLever) -> String {
    let selector = format!("metadata.name={}", w.name);
    let mut broken_since: Option<(tokio::time::Instant, String)> = None;
    let mut retry = WATCH_RETRY.0;
    loop {
        if let Some((since, why)) = &broken_since {
            if since.elapsed() >= WATCH_PATIENCE {
                return format!(
                    "the policy could not be watched for {}s ({why})",
                    WATCH_PATIENCE.as_secs()
                );
            }
            tokio::time::sleep(retry).await;
            retry = (retry * 2).clamp(WATCH_RETRY.0, WATCH_RETRY.1);
        }
        let version = match read_policy(w).await {
            Ok(Ok(version)) => version,
            Ok(Err(reason)) => return reason,
            Err(e) => {
                broken_since.get_or_insert_with(|| (tokio::time::Instant::now(), e.clone()));
                tracing::warn!(policy = %w.name, error = %e, "could not read the policy during a run; deletions wait");
                continue;
            }
        };
        let params = kube::api::WatchParams::default().fields(&selector);
        let events = match tokio::time::timeout(REQUEST_PATIENCE, w.api.watch(&params, &version))
            .await
        {
            Ok(Ok(events)) => events,
            failed => {
                let e = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => format!("no answer within {}s", REQUEST_PATIENCE.as_secs()),
                };
                broken_since.get_or_insert_with(|| (tokio::time::Instant::now(), e.clone()));
                tracing::warn!(policy = %w.name, error = %e, "could not watch the policy during a run; deletions wait");
                continue;
            }
        };
        // The watch is open: whatever changes after `version` comes as an event. Read once more, so that a change
        // that landed between the first read and the watch is seen before anything is released.
        match read_policy(w).await {
            Ok(Ok(_)) => lever.release(),
            Ok(Err(reason)) => return reason,
            Err(e) => {
                broken_since.get_or_insert_with(|| (tokio::time::Instant::now(), e.clone()));
                continue;
            }
        }
        let why = match follow_events(w, events).await {
            WatchEnd::Forbidden(reason) => return reason,
            WatchEnd::Broken(why) => why,
        };
        // Until the watch is back, a change could go unseen.
        lever.pause(format!("the watch on the policy broke: {why}"));
        tracing::debug!(policy = %w.name, why = %why, "watching the policy again; deletions wait");
        broken_since = Some((tokio::time::Instant::now(), why));
        // A watch the server ended on time comes back at once; only failures wait.
        retry = Duration::ZERO;
    }
}

/// How a watch on the policy ended.
enum WatchEnd {
    /// The policy now forbids deletions: why.
    Forbidden(String),
    /// The watch broke or fell silent: why. It is opened again.
    Broken(String),
}

/// Reads the watch's events until the policy forbids deletions or the watch breaks. Silence counts as a break:
/// a network cut that closes nothing must not leave the brake released.
async fn follow_events(
    w: &StopWatch,
    events: impl futures::Stream<Item = Result<WatchEvent<LicenseCleanupPolicy>, kube::Error>>,
) -> WatchEnd {
    let mut events = std::pin::pin!(events);
    loop {
        let Ok(next) = tokio::time::timeout(WATCH_SILENCE, events.next()).await else {
            return WatchEnd::Broken(format!(
                "no word from the API server for {}s",
                WATCH_SILENCE.as_secs()
            ));
        };
        match next {
            Some(Ok(WatchEvent::Added(policy) | WatchEvent::Modified(policy))) => {
                if let Some(reason) = forbids_deletions(w, &policy) {
                    return WatchEnd::Forbidden(reason);
                }
            }
            Some(Ok(WatchEvent::Deleted(_))) => {
                return WatchEnd::Forbidden("the policy was deleted".into());
            }
            Some(Ok(WatchEvent::Bookmark(_))) => {}
            Some(Ok(WatchEvent::Error(status))) => return WatchEnd::Broken(status.message.clone()),
            Some(Err(e)) => return WatchEnd::Broken(e.to_string()),
            None => return WatchEnd::Broken("the API server ended the watch".into()),
        }
    }
}

/// The policy read as it is now: `Ok(Ok(version))` when it allows deletions, `Ok(Err(why))` when it forbids them,
/// `Err` when it cannot be read (in time).
async fn read_policy(w: &StopWatch) -> Result<Result<String, String>, String> {
    match tokio::time::timeout(REQUEST_PATIENCE, w.api.get_opt(&w.name)).await {
        Ok(Ok(None)) => Ok(Err("the policy was deleted".into())),
        Ok(Ok(Some(policy))) => Ok(match forbids_deletions(w, &policy) {
            Some(reason) => Err(reason),
            None => Ok(policy.metadata.resource_version.unwrap_or_default()),
        }),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {}s", REQUEST_PATIENCE.as_secs())),
    }
}

/// Keeps the run's hold on its policy; returns why the run must stop deleting when it cannot. A renewal that
/// hangs counts as failed once the hold's safety margin is spent.
async fn keep_hold(w: &StopWatch) -> String {
    let mut renewed = w.held_since;
    loop {
        tokio::time::sleep(HOLD_CHECK).await;
        if renewed.elapsed() >= HOLD_RENEW {
            match tokio::time::timeout_at(renewed + HOLD_SAFE, renew_hold(w)).await {
                Ok(Ok(true)) => renewed = tokio::time::Instant::now(),
                Ok(Ok(false)) => return "another runner took the policy over".to_string(),
                Ok(Err(e)) => {
                    tracing::warn!(policy = %w.name, error = %e, "could not renew the run's hold on the policy")
                }
                Err(_) => {
                    tracing::warn!(policy = %w.name, "renewing the run's hold on the policy took too long")
                }
            }
        }
        if renewed.elapsed() >= HOLD_SAFE {
            return format!(
                "the run could not renew its hold on the policy for {}s (is the API server reachable?)",
                HOLD_SAFE.as_secs()
            );
        }
    }
}

/// Why the policy as it is now forbids further deletions, if it does.
fn forbids_deletions(w: &StopWatch, p: &LicenseCleanupPolicy) -> Option<String> {
    if p.metadata.deletion_timestamp.is_some() {
        Some("the policy is being deleted".to_string())
    } else if p.metadata.uid != w.uid {
        Some(
            "the policy was deleted and created again; the next run follows the new one"
                .to_string(),
        )
    } else if w.dry_run {
        // A dry run deletes nothing: an edit or a suspend leaves it to finish its report (the next run follows).
        None
    } else if p.spec.suspend {
        Some("the policy was suspended".to_string())
    } else if p.spec.dry_run {
        Some("the policy was switched to dry run".to_string())
    } else if p.metadata.generation != w.generation {
        Some(
            "the policy was changed since the run started; the next run follows the new spec"
                .to_string(),
        )
    } else {
        None
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
