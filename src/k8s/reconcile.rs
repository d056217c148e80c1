//! One reconcile of one policy: check it, keep its metrics and status in step with its spec, and start a run when
//! one is due. Each step is a function of its own; the run is in [`super::policy_run`].

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};
use tokio::task::JoinHandle;

use super::conditions::{self, ConditionReason, ConditionType, ConditionUpdate, merge_conditions};
use super::events::publish;
use super::metrics::Metrics;
use super::policy_run::{self, PolicyRunContext, PolicyRunOutcome, Trigger};
use super::scheduling::{Due, due};
use super::status::update_status;
use crate::policy::Permissions;
use crate::policy::{LicenseCleanupPolicy, ValidPolicy};
use crate::shutdown::Shutdown;

/// Errors of one reconcile; retried with a short backoff.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReconcileError {
    #[error("cannot write status: {0}")]
    Status(#[source] kube::Error),
}

type PolicyKey = (String, String);

/// Shared by every reconcile and run task.
pub(crate) struct Context {
    pub(super) client: Client,
    pub(super) recorder: Recorder,
    pub(super) metrics: Arc<Metrics>,
    /// Runs in flight, by policy: never two of one policy at once.
    pub(super) running: Mutex<HashMap<PolicyKey, JoinHandle<()>>>,
    /// Missed runs already reported, so a skipped run is told once, not at every reconcile.
    pub(super) missed_reported: Mutex<HashSet<(PolicyKey, i64)>>,
    /// Becomes `true` on SIGTERM.
    pub(super) shutdown: Shutdown,
    /// The controllers' caches of policies, to tell which ones were deleted.
    pub(super) stores: Vec<Store<LicenseCleanupPolicy>>,
    pub(super) permissions: Permissions,
    /// One permit per run that may go on at once.
    pub(super) run_slots: Arc<tokio::sync::Semaphore>,
}

impl Context {
    /// Waits for the runs in flight to finish their deallocations and write their status.
    pub(super) async fn drain_runs(&self) {
        let handles: Vec<JoinHandle<()>> = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(_, h)| h)
            .collect();
        for handle in handles {
            let _ = handle.await;
        }
    }

    fn is_running(&self, key: &PolicyKey) -> bool {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.retain(|_, handle| !handle.is_finished());
        running.contains_key(key)
    }

    fn stopping(&self) -> bool {
        self.shutdown.is_requested()
    }

    /// Drop the metrics of deleted policies. Deletions do not reach `reconcile` (no finalizer: a policy must be
    /// deletable while the operator is down), so every reconcile tidies up against the caches.
    fn forget_deleted_policies(&self) {
        if self.stores.is_empty() {
            return;
        }
        self.metrics.retain_policies(|namespace, name| {
            let key = ObjectRef::new(name).within(namespace);
            self.stores.iter().any(|store| store.get(&key).is_some())
        });
    }
}

pub(super) async fn reconcile(
    policy: Arc<LicenseCleanupPolicy>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let key = (policy.namespace().unwrap_or_default(), policy.name_any());
    ctx.forget_deleted_policies();
    if policy.metadata.deletion_timestamp.is_some() {
        ctx.metrics.forget_policy(&key.0, &key.1);
        return Ok(Action::await_change());
    }
    let now = Timestamp::now();
    // A policy the API server accepted can still be wrong in ways CEL cannot see (a cron field out of range,
    // an unknown time zone): say so on the status and wait for a change.
    let schedule = match super::inputs::validate_resource(&policy, &ctx.permissions) {
        Ok(valid) => {
            register_metrics(&ctx, &key, &policy, &valid);
            valid.schedule
        }
        Err(invalid) => {
            mark_invalid(&ctx, &key, &policy, invalid.to_string(), now).await?;
            return Ok(Action::await_change());
        }
    };
    let next = (!policy.spec.suspend)
        .then(|| schedule.next_after(now))
        .flatten();
    ctx.metrics.set_next_run(&key.0, &key.1, next);
    let due = due(&policy, &schedule, now);
    // Another runner (a CronJob, a replica that lost leadership) holds the policy: come back when its hold runs
    // out, since a runner cut off from the API server cannot announce that it stopped.
    if matches!(due, Due::Run { .. })
        && let Some(wait) = held_elsewhere(&ctx, &key, &policy, now)
    {
        return Ok(Action::requeue(wait));
    }
    match due {
        Due::Run {
            scheduled_for,
            run_now,
        } if !ctx.stopping() && !ctx.is_running(&key) => {
            let trigger = match run_now {
                Some(value) => Trigger::RunNow(value),
                None => Trigger::Scheduled(scheduled_for),
            };
            start_run(&ctx, key, trigger);
            // The run's own status writes wake the next reconcile.
            return Ok(Action::await_change());
        }
        Due::SkipMissed { scheduled_for } => {
            report_missed(&ctx, &key, &policy, scheduled_for, next).await
        }
        _ => {}
    }
    keep_status_in_step(&ctx, &key, &policy, next, now).await?;
    Ok(match next {
        // Wake a moment after the instant so `previous_at_or_before` sees it.
        Some(next) => {
            let wait_ms = (next.as_millisecond() - now.as_millisecond()).max(0) as u64 + 50;
            Action::requeue(Duration::from_millis(wait_ms))
        }
        None => Action::await_change(),
    })
}

/// The policy's metrics exist from its first reconcile, before any run.
fn register_metrics(
    ctx: &Context,
    (namespace, name): &PolicyKey,
    policy: &LicenseCleanupPolicy,
    valid: &ValidPolicy,
) {
    let status = policy.status.clone().unwrap_or_default();
    let tls_unverified = policy.spec.site.tls.insecure_skip_verify;
    ctx.metrics
        .set_tls_unverified(namespace, name, tls_unverified);
    ctx.metrics.register_policy(
        namespace,
        name,
        &valid.rules.access_types(),
        policy.spec.dry_run,
        status.last_successful_time.as_ref().map(|t| t.0),
        status.last_run.as_ref().map(|r| r.header.completion_time.0),
    );
    // Pending notices live in the status: after a restart or a change of leader the gauge says them again.
    if policy.spec.notice.days > 0 || !status.notices.is_empty() {
        let types = status
            .notices
            .iter()
            .filter_map(|n| crate::model::AccessType::from_key(&n.access_type));
        ctx.metrics.set_pending(namespace, name, types);
    }
}

/// Ready=False with the reason, and a Warning Event the first time this message is seen. The Event goes first, as
/// a run's do: whoever sees the status finds the Event already there.
async fn mark_invalid(
    ctx: &Context,
    (namespace, name): &PolicyKey,
    policy: &LicenseCleanupPolicy,
    message: String,
    now: Timestamp,
) -> Result<(), ReconcileError> {
    let reported = policy.status.as_ref().and_then(|s| {
        conditions::find(&s.conditions, ConditionType::Ready)
            .map(|c| (c.status.as_str(), c.message.as_str()))
    });
    if reported != Some(("False", message.as_str())) {
        publish(
            &ctx.recorder,
            policy,
            ConditionReason::InvalidPolicy,
            message.clone(),
        )
        .await;
    }
    let api: Api<LicenseCleanupPolicy> = Api::namespaced(ctx.client.clone(), namespace);
    update_status(&api, name, |fresh, status| {
        status.observed_generation = fresh.metadata.generation;
        status.next_schedule_time = None;
        let invalid = ConditionUpdate::not_ready(ConditionReason::InvalidPolicy, message.clone());
        status.conditions = merge_conditions(
            &status.conditions,
            &[invalid],
            now,
            fresh.metadata.generation,
        );
    })
    .await
    .map_err(ReconcileError::Status)?;
    ctx.metrics
        .set_policy_state(namespace, name, false, policy.spec.dry_run);
    ctx.metrics.set_next_run(namespace, name, None);
    Ok(())
}

/// How long until another runner's hold on the policy is void, if one holds it.
fn held_elsewhere(
    ctx: &Context,
    key: &PolicyKey,
    policy: &LicenseCleanupPolicy,
    now: Timestamp,
) -> Option<Duration> {
    let hold = policy.status.as_ref()?.active_run.as_ref()?;
    if !hold.holds_at(now) || ctx.is_running(key) {
        return None;
    }
    let void_at = hold.renew_time.0.as_second() + i64::from(hold.hold_seconds);
    let wait = (void_at - now.as_second()).max(0) as u64 + 1;
    tracing::info!(policy = %key.1, holder = %hold.holder, wait_seconds = wait, "another run holds the policy; waiting");
    Some(Duration::from_secs(wait))
}

/// Starts the policy's run in a task of its own; it waits for one of the `--max-concurrent-runs` slots.
fn start_run(ctx: &Arc<Context>, key: PolicyKey, trigger: Trigger) {
    let task_ctx = ctx.clone();
    let (namespace, name) = key.clone();
    let handle = tokio::spawn(async move {
        // Wait for a slot; the policy counts as running meanwhile, so it is not started twice.
        let Ok(_slot) = task_ctx.run_slots.clone().acquire_owned().await else {
            return;
        };
        if task_ctx.stopping() {
            return;
        }
        let run = PolicyRunContext {
            client: &task_ctx.client,
            recorder: &task_ctx.recorder,
            metrics: Some(&task_ctx.metrics),
            force_dry_run: false,
            shutdown: Some(task_ctx.shutdown.clone()),
            trigger,
            permissions: task_ctx.permissions,
        };
        match policy_run::run_policy(&namespace, &name, run).await {
            Ok(PolicyRunOutcome::Ran(_)) => {}
            Ok(PolicyRunOutcome::Busy { holder }) => {
                tracing::info!(policy = %name, %holder, "another run holds the policy; not running");
            }
            Ok(PolicyRunOutcome::Suspended) => {
                tracing::info!(policy = %name, "suspended; not running")
            }
            Ok(PolicyRunOutcome::AlreadyAnswered) => {
                tracing::debug!(policy = %name, "trigger already answered; not running again");
            }
            Err(e) => tracing::warn!(policy = %name, error = %e, "run could not start"),
        }
    });
    ctx.running
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, handle);
}

/// A Warning Event, once per missed instant, for a run missed by more than the starting deadline.
async fn report_missed(
    ctx: &Context,
    key: &PolicyKey,
    policy: &LicenseCleanupPolicy,
    scheduled_for: Timestamp,
    next: Option<Timestamp>,
) {
    let first_time = ctx
        .missed_reported
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert((key.clone(), scheduled_for.as_second()));
    if first_time {
        let note = format!(
            "the run scheduled for {scheduled_for} was missed by more than startingDeadlineSeconds ({}s) and is skipped; next run at {}",
            policy.spec.starting_deadline_seconds,
            next.map_or_else(|| "never".to_string(), |n| n.to_string())
        );
        tracing::warn!(policy = %key.1, "{note}");
        publish(
            &ctx.recorder,
            policy,
            ConditionReason::MissedRunSkipped,
            note,
        )
        .await;
    }
}

/// Keeps the status in step with the spec without a run: the next instant, the generation, TLSVerified, and
/// Ready once a previously invalid policy is fixed.
async fn keep_status_in_step(
    ctx: &Context,
    (namespace, name): &PolicyKey,
    policy: &LicenseCleanupPolicy,
    next: Option<Timestamp>,
    now: Timestamp,
) -> Result<(), ReconcileError> {
    // A Secret that is missing or unusable shows before the first run, not at it: Ready=False and Stalled=True
    // (kstatus), so Argo CD and Flux do not call the policy healthy meanwhile. Its content is not kept here.
    // Not while a run holds the policy: it has its credentials, and its own outcome says how it went.
    let secret = &policy.spec.site.credentials_secret_ref.name;
    let secret_problem = if ctx.is_running(&(namespace.clone(), name.clone())) {
        None
    } else {
        super::inputs::load_credentials(&ctx.client, namespace, secret)
            .await
            .err()
    };
    let api: Api<LicenseCleanupPolicy> = Api::namespaced(ctx.client.clone(), namespace);
    let updated = update_status(&api, name, |fresh, status| {
        let generation = fresh.metadata.generation;
        status.observed_generation = generation;
        status.next_schedule_time = next.map(Time);
        let tls = ConditionUpdate::tls_verified(fresh.spec.site.tls.insecure_skip_verify);
        status.conditions = merge_conditions(&status.conditions, &[tls], now, generation);
        if let Some(problem) = &secret_problem {
            let not_ready = ConditionUpdate::not_ready(problem.reason(), problem.to_string());
            status.conditions = merge_conditions(&status.conditions, &[not_ready], now, generation);
            return;
        }
        // Not ready for a reason this reconcile just ruled out (the policy is valid, its Secret usable): ready.
        let was_invalid =
            conditions::find(&status.conditions, ConditionType::Ready).is_none_or(|c| {
                [
                    ConditionReason::InvalidPolicy,
                    ConditionReason::SecretNotFound,
                    ConditionReason::SecretUnreadable,
                    ConditionReason::SecretInvalid,
                ]
                .iter()
                .any(|r| c.reason == r.as_str())
            });
        if was_invalid {
            let message = match next {
                Some(n) => format!("valid; next run at {n}"),
                None => "valid; suspended".to_string(),
            };
            let ready = ConditionUpdate::ready(ConditionReason::Scheduled, message);
            status.conditions = merge_conditions(&status.conditions, &[ready], now, generation);
        }
    })
    .await
    .map_err(ReconcileError::Status)?;
    let ready = updated
        .status
        .as_ref()
        .is_some_and(|s| conditions::is_true(&s.conditions, ConditionType::Ready));
    ctx.metrics
        .set_policy_state(namespace, name, ready, policy.spec.dry_run);
    Ok(())
}

pub(super) fn error_policy(
    policy: Arc<LicenseCleanupPolicy>,
    error: &ReconcileError,
    _ctx: Arc<Context>,
) -> Action {
    tracing::warn!(policy = %policy.name_any(), error = %error, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(5))
}

/// The reconciler against a scripted API server (tower-test): fast checks of what it reads and writes.
#[cfg(test)]
mod api_tests;
