//! What the controller and `run --policy-ref` both do with the Kubernetes API: read a policy's Secret, run it,
//! write its status with server-side apply, and tell the story in Events.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Api, Client, Resource};
use tokio::sync::watch;

use crate::credentials::{Credentials, CredentialsError};
use crate::metrics::Metrics;
use crate::plan::Rules;
use crate::policy::{ActiveRun, LicenseCleanupPolicy, LicenseCleanupPolicyStatus, RunResult};
use crate::policy::{InvalidPolicy, last_applied_unknown_field};
use crate::qrs::Connection;
use crate::run::{self, InvalidInput, Permissions, RunContext, RunReport};
use crate::schedule::Schedule;
use crate::status::{self, ConditionUpdate, READY, RUNNING};

/// Field manager of every write.
pub const FIELD_MANAGER: &str = "qlik-license-reclaimer";

/// Why a run could not start. Each maps to a `Ready=False` reason an administrator can act on.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    InvalidPolicy(String),
    #[error(
        "Secret {namespace}/{name} not found: create it from the QMC certificate export, for example `kubectl -n {namespace} create secret generic {name} --from-file=client.pem --from-file=client_key.pem --from-file=root.pem`"
    )]
    SecretNotFound { namespace: String, name: String },
    #[error("Secret {namespace}/{name} cannot be read: {detail}")]
    SecretUnreadable {
        namespace: String,
        name: String,
        detail: String,
    },
    #[error("{0}")]
    Api(String),
    #[error("Secret {namespace}/{name}: {source}")]
    SecretInvalid {
        namespace: String,
        name: String,
        #[source]
        source: CredentialsError,
    },
}

impl StartError {
    pub fn reason(&self) -> &'static str {
        match self {
            StartError::InvalidPolicy(_) => "InvalidPolicy",
            StartError::Api(_) => "ApiError",
            StartError::SecretNotFound { .. } => "SecretNotFound",
            StartError::SecretUnreadable { .. } => "SecretUnreadable",
            StartError::SecretInvalid { .. } => "SecretInvalid",
        }
    }
}

/// A policy resource checked as the program checks a manifest file: the spec, what the operator allows, and
/// the fields `kubectl apply` recorded but the API server dropped (a misspelt `exclude` would otherwise go
/// unnoticed: the API server prunes unknown fields and only warns).
pub fn validate(
    policy: &LicenseCleanupPolicy,
    permissions: &Permissions,
) -> Result<(Rules, Connection), InvalidPolicy> {
    if let Some(unknown) = last_applied_unknown_field(policy) {
        return Err(unknown);
    }
    run::validate(&policy.spec, permissions)
}

/// How often a run re-reads its policy while it may delete.
const POLICY_RECHECK: Duration = Duration::from_secs(2);
/// Failed re-reads in a row after which a run stops deleting: a policy it cannot see may have changed.
const POLICY_RECHECK_FAILURES: u32 = 3;
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

/// What a run's stop watch needs.
struct StopWatch {
    api: Api<LicenseCleanupPolicy>,
    name: String,
    generation: Option<i64>,
    hold_id: String,
    shutdown: Option<watch::Receiver<bool>>,
}

/// A stop for one run: `Some(why)` on shutdown, when the policy, re-read every [`POLICY_RECHECK`], was deleted,
/// suspended, switched to dry run or edited (a new generation) since the run started, or when the run lost its
/// hold on the policy (renewed every [`HOLD_RENEW`]). Abort the task when the run is done.
fn watch_for_stop(
    mut w: StopWatch,
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
                match w.shutdown.as_mut() {
                    Some(rx) => rx.wait_for(|stop| *stop).await.is_ok(),
                    None => std::future::pending().await,
                }
            };
            let reason = tokio::select! {
                signalled = shut_down => {
                    if !signalled {
                        // The sender is gone without a stop: nobody can ask for one any more.
                        w.shutdown = None;
                        continue;
                    }
                    Some("shutdown: SIGTERM or SIGINT".to_string())
                }
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

/// Read and parse the policy's credentials Secret (at every run, so a rotated certificate is used at once).
pub async fn load_credentials(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Credentials, StartError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = match secrets.get_opt(name).await {
        Ok(Some(secret)) => secret,
        Ok(None) => {
            return Err(StartError::SecretNotFound {
                namespace: namespace.into(),
                name: name.into(),
            });
        }
        Err(e) => {
            return Err(StartError::SecretUnreadable {
                namespace: namespace.into(),
                name: name.into(),
                detail: e.to_string(),
            });
        }
    };
    let mut entries: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (key, value) in secret.data.unwrap_or_default() {
        entries.insert(key, value.0);
    }
    for (key, value) in secret.string_data.unwrap_or_default() {
        entries.insert(key, value.into_bytes());
    }
    Credentials::from_entries(&entries).map_err(|source| StartError::SecretInvalid {
        namespace: namespace.into(),
        name: name.into(),
        source,
    })
}

pub fn recorder(client: &Client) -> Recorder {
    Recorder::new(
        client.clone(),
        Reporter {
            controller: FIELD_MANAGER.into(),
            instance: std::env::var("POD_NAME").ok(),
        },
    )
}

/// Publish an Event on the policy; a failure to do so is logged, never fatal.
pub async fn publish(
    recorder: &Recorder,
    policy: &LicenseCleanupPolicy,
    warning: bool,
    reason: &str,
    note: String,
) {
    let event = Event {
        type_: if warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: reason.into(),
        // The Events API bounds the note to 1 kB.
        note: Some(truncate(&note, 1000)),
        action: "Reclaim".into(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&event, &policy.object_ref(&())).await {
        tracing::warn!(error = %e, reason, "could not publish an Event");
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max.saturating_sub(3);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

/// The Event that tells one run's story: the counts, and who, for the first few seats.
pub fn run_event(report: &RunReport) -> (bool, &'static str, String) {
    let per_type = report
        .per_access_type
        .iter()
        .map(|(t, c)| {
            format!(
                "{t}: {} of {} candidates, {} excluded",
                c.reclaimed, c.candidates, c.excluded
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    let mut who: Vec<String> = report
        .reclaimed()
        .take(10)
        .map(|e| {
            format!(
                "{} ({}, {})",
                e.user,
                e.access_type,
                e.last_used.get(..10).unwrap_or(&e.last_used)
            )
        })
        .collect();
    let total = report.reclaimed().count();
    if total > who.len() {
        who.push(format!("and {} more", total - who.len()));
    }
    let mut note = format!("{}. {per_type}.", report.message);
    if !who.is_empty() {
        note.push_str(if report.dry_run {
            " Would reclaim: "
        } else {
            " Reclaimed: "
        });
        note.push_str(&who.join(", "));
    }
    let (warning, reason) = match (report.result, report.dry_run) {
        (RunResult::Succeeded, true) => (false, "DryRunCompleted"),
        (RunResult::Succeeded, false) => (false, "Reclaimed"),
        (RunResult::Aborted, _) => (true, "RunAborted"),
        (RunResult::Failed, _) => (true, "RunFailed"),
    };
    (warning, reason, note)
}

/// What a run answers; checked against the resource as it is now, so a reconcile working from a cache that
/// lags behind never runs the same instant (or the same run-now value) twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
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

/// What a policy run needs from its caller.
pub struct PolicyRun<'a> {
    pub client: &'a Client,
    pub recorder: &'a Recorder,
    pub metrics: Option<&'a Arc<Metrics>>,
    pub force_dry_run: bool,
    pub stop: Option<watch::Receiver<bool>>,
    pub trigger: Trigger,
    pub permissions: Permissions,
}

/// How a policy run ended.
pub enum PolicyRunOutcome {
    /// The run happened; its report.
    Ran(Box<RunReport>),
    /// Someone already answered this trigger; nothing was done.
    AlreadyAnswered,
    /// The policy is suspended (`spec.suspend`); nothing was done.
    Suspended,
    /// Another run holds the policy; nothing was done.
    Busy { holder: String },
}

/// Read-modify-write of the status from the resource as it is now, with the resourceVersion as a
/// precondition: two writers (a reconcile and a run, say) never overwrite each other's news.
pub async fn update_status(
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

/// Give the policy up, if this run still holds it.
fn release_hold(status: &mut LicenseCleanupPolicyStatus, hold_id: &str) {
    if status
        .active_run
        .as_ref()
        .is_some_and(|hold| hold.id == hold_id)
    {
        status.active_run = None;
    }
}

fn time(t: jiff::Timestamp) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t)
}

/// Run one policy from the cluster: mark it running, read its Secret, run, write status and Events.
/// Why a run could not start is written to the status and returned.
pub async fn run_policy(
    namespace: &str,
    name: &str,
    ctx: PolicyRun<'_>,
) -> Result<PolicyRunOutcome, StartError> {
    let api: Api<LicenseCleanupPolicy> = Api::namespaced(ctx.client.clone(), namespace);
    let started = jiff::Timestamp::now();
    let mut answered = false;
    let mut suspended = false;
    let mut busy = None;
    let hold_id = uuid::Uuid::new_v4().simple().to_string();
    let holder = holder_name();
    let marked = update_status(&api, name, |policy, status| {
        answered = ctx.trigger.already_answered(status);
        // Read fresh: a suspend wins over any trigger, `run --policy-ref` (a CronJob) included.
        suspended = policy.spec.suspend;
        // At most one run of a policy at a time, whoever runs it; a hold not renewed in time is void.
        busy = status
            .active_run
            .as_ref()
            .filter(|hold| hold.holds_at(started) && hold.id != hold_id)
            .map(|hold| hold.holder.clone());
        if answered || suspended || busy.is_some() {
            return;
        }
        status.active_run = Some(ActiveRun {
            id: hold_id.clone(),
            holder: holder.clone(),
            start_time: time(started),
            renew_time: time(started),
            hold_seconds: HOLD_SECONDS,
        });
        status.last_schedule_time = Some(time(match &ctx.trigger {
            Trigger::Scheduled(at) => *at,
            _ => started,
        }));
        if let Trigger::RunNow(value) = &ctx.trigger {
            status.last_run_now = Some(value.clone());
        }
        status.conditions = status::merge_conditions(
            &status.conditions,
            &[
                ConditionUpdate::new(RUNNING, true, "Running", "a run is in progress"),
                status::tls_verified(policy.spec.site.tls.insecure_skip_verify),
            ],
            started,
            policy.metadata.generation,
        );
    })
    .await;
    let policy = match marked {
        Ok(policy) => policy,
        Err(e) => {
            return Err(StartError::Api(format!(
                "cannot read or mark LicenseCleanupPolicy {namespace}/{name}: {e}"
            )));
        }
    };
    if answered {
        return Ok(PolicyRunOutcome::AlreadyAnswered);
    }
    if suspended {
        return Ok(PolicyRunOutcome::Suspended);
    }
    if let Some(holder) = busy {
        return Ok(PolicyRunOutcome::Busy { holder });
    }
    let spec = &policy.spec;
    let schedule = Schedule::parse(&spec.schedule, &spec.time_zone).ok();
    let next_run = || {
        schedule
            .as_ref()
            .filter(|_| !spec.suspend)
            .and_then(|s| s.next_after(jiff::Timestamp::now()))
    };

    // Events and metrics before the status: whoever sees the status finds them already there.
    let start_failed = |error: StartError| async {
        publish(
            ctx.recorder,
            &policy,
            true,
            error.reason(),
            error.to_string(),
        )
        .await;
        let next = next_run();
        let written = update_status(&api, name, |policy, status| {
            release_hold(status, &hold_id);
            status.observed_generation = policy.metadata.generation;
            status.next_schedule_time = next.map(time);
            status.conditions = status::merge_conditions(
                &status.conditions,
                &[
                    ConditionUpdate::new(READY, false, error.reason(), error.to_string()),
                    ConditionUpdate::new(RUNNING, false, "Idle", "the run could not start"),
                ],
                jiff::Timestamp::now(),
                policy.metadata.generation,
            );
        })
        .await;
        if let Err(e) = written {
            tracing::error!(policy = %name, error = %e, "could not write status");
        }
        if let Some(m) = ctx.metrics {
            m.set_policy_state(namespace, name, false, spec.dry_run);
        }
        error
    };

    if let Err(invalid) = validate(&policy, &ctx.permissions) {
        return Err(start_failed(StartError::InvalidPolicy(invalid.to_string())).await);
    }
    let credentials = match load_credentials(
        ctx.client,
        namespace,
        &spec.site.credentials_secret_ref.name,
    )
    .await
    {
        Ok(c) => c,
        Err(error) => return Err(start_failed(error).await),
    };

    let (stop, watching) = watch_for_stop(StopWatch {
        api: api.clone(),
        name: name.to_string(),
        generation: policy.metadata.generation,
        hold_id: hold_id.clone(),
        shutdown: ctx.stop.clone(),
    });
    let clock = Instant::now();
    let outcome = run::execute(
        spec,
        RunContext {
            credentials: &credentials,
            force_dry_run: ctx.force_dry_run,
            now: jiff::Timestamp::now(),
            observer: ctx.metrics.map(|m| m.qrs_observer(namespace, name)),
            stop: Some(stop),
            retry: None,
            permissions: ctx.permissions,
        },
    )
    .await;
    watching.abort();
    let report = match outcome {
        Ok(report) => report,
        Err(InvalidInput::Policy(e)) => {
            return Err(start_failed(StartError::InvalidPolicy(e.to_string())).await);
        }
        Err(InvalidInput::Credentials(source)) => {
            return Err(start_failed(StartError::SecretInvalid {
                namespace: namespace.to_string(),
                name: spec.site.credentials_secret_ref.name.clone(),
                source,
            })
            .await);
        }
    };
    let elapsed = clock.elapsed().as_secs_f64();
    tracing::info!(
        policy = %format!("{namespace}/{name}"),
        run = %report.id,
        result = report.result.as_str(),
        reclaimed = report.totals.reclaimed,
        candidates = report.totals.candidates,
        dry_run = report.dry_run,
        "{}",
        report.message
    );

    let next = next_run();
    // Metrics first: whoever sees the status can rely on the metrics including this run.
    if let Some(m) = ctx.metrics {
        m.record_run(namespace, name, &report, elapsed);
        m.set_policy_state(
            namespace,
            name,
            report.result != RunResult::Failed,
            report.dry_run,
        );
        m.set_next_run(namespace, name, next);
    }
    let (warning, reason, note) = run_event(&report);
    publish(ctx.recorder, &policy, warning, reason, note).await;
    let written = update_status(&api, name, |policy, status| {
        release_hold(status, &hold_id);
        *status = status::after_run(
            status,
            &report,
            spec.history_limit,
            policy.metadata.generation,
            next,
        );
    })
    .await;
    if let Err(e) = written {
        tracing::error!(policy = %name, error = %e, "could not write the run's status");
    }
    Ok(PolicyRunOutcome::Ran(Box::new(report)))
}
