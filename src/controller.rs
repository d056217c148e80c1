//! The controller: watches LicenseCleanupPolicy resources and runs each on its schedule.
//!
//! It knows Kubernetes and the schedule, not Qlik's JSON: runs go through [`crate::cluster::run_policy`].
//! Between runs nothing polls: each reconcile asks to be woken at the next scheduled instant, and watch events
//! (a changed spec, the run-now annotation, a finished run's status) wake it earlier.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cluster::{self, PolicyRun, PolicyRunOutcome, Trigger};
use crate::metrics::Metrics;
use crate::policy::{LicenseCleanupPolicy, RUN_NOW_ANNOTATION};
use crate::run::Permissions;
use crate::schedule::Schedule;
use crate::status::{self, ConditionUpdate, READY};

/// Command-line options of `controller`.
#[derive(Debug, Clone)]
pub struct ControllerOptions {
    /// Watch only these namespaces; all namespaces when empty.
    pub namespaces: Vec<String>,
    pub metrics_addr: SocketAddr,
    pub leader_elect: bool,
    pub lease_name: String,
    pub lease_namespace: String,
    /// This replica's name in the Lease.
    pub identity: String,
    /// Seconds a Lease is valid without renewal.
    pub lease_duration_seconds: u64,
    /// What policies may do (`--allow-insecure-skip-verify`).
    pub permissions: Permissions,
    /// Policies run at once; more wait their turn (each run holds its site's allocations in memory).
    pub max_concurrent_runs: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("cannot serve metrics on {addr}: {source}")]
    Metrics {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("leader election failed: {0}")]
    LeaderElection(String),
    #[error("lost the leader Lease; exiting so that another replica takes over cleanly")]
    LostLeadership,
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

/// Errors of one reconcile; retried with a short backoff.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("cannot write status: {0}")]
    Status(#[source] kube::Error),
}

type PolicyKey = (String, String);

/// Shared by every reconcile and run task.
pub struct Context {
    client: Client,
    recorder: Recorder,
    metrics: Arc<Metrics>,
    /// Runs in flight, by policy: never two of one policy at once.
    running: Mutex<HashMap<PolicyKey, JoinHandle<()>>>,
    /// Missed runs already reported, so a skipped run is told once, not at every reconcile.
    missed_reported: Mutex<HashSet<(PolicyKey, i64)>>,
    /// Becomes `true` on SIGTERM.
    stop: watch::Receiver<bool>,
    /// The controllers' caches of policies, to tell which ones were deleted.
    stores: Vec<Store<LicenseCleanupPolicy>>,
    permissions: Permissions,
    /// One permit per run that may go on at once.
    run_slots: Arc<tokio::sync::Semaphore>,
}

impl Context {
    fn is_running(&self, key: &PolicyKey) -> bool {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.retain(|_, handle| !handle.is_finished());
        running.contains_key(key)
    }

    fn stopping(&self) -> bool {
        *self.stop.borrow()
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

/// What should happen now for one policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Run now, answering this scheduled instant (or, for run-now, the current time) and annotation value.
    Run {
        scheduled_for: Timestamp,
        run_now: Option<String>,
    },
    /// A scheduled run was missed by more than the starting deadline: skip it.
    SkipMissed { scheduled_for: Timestamp },
    /// Nothing to do until the next instant (or a change).
    Wait,
}

/// What the policy's own schedule, suspend and run-now annotation ask for at `now`: the rule the controller
/// follows, and `run --policy-ref --if-due` too (a CronJob that looks often, so that the policy stays the source
/// of truth for when it runs).
pub fn due(policy: &LicenseCleanupPolicy, schedule: &Schedule, now: Timestamp) -> Decision {
    let status = policy.status.clone().unwrap_or_default();
    let reference = status
        .last_schedule_time
        .as_ref()
        .map(|t| t.0)
        .or_else(|| policy.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .unwrap_or(now);
    let annotation = policy
        .annotations()
        .get(RUN_NOW_ANNOTATION)
        .map(String::as_str);
    decide_run(
        schedule,
        now,
        reference,
        policy.spec.starting_deadline_seconds,
        policy.spec.suspend,
        annotation,
        status.last_run_now.as_deref(),
    )
}

/// The scheduling rule, pure so it can be tested without a cluster.
/// `reference` is the last scheduled instant that was acted on (or the policy's creation).
pub fn decide_run(
    schedule: &Schedule,
    now: Timestamp,
    reference: Timestamp,
    starting_deadline_seconds: i64,
    suspend: bool,
    run_now_annotation: Option<&str>,
    last_run_now: Option<&str>,
) -> Decision {
    if suspend {
        return Decision::Wait;
    }
    if let Some(value) = run_now_annotation.filter(|v| !v.is_empty() && Some(*v) != last_run_now) {
        return Decision::Run {
            scheduled_for: now,
            run_now: Some(value.to_string()),
        };
    }
    // Only the most recent missed instant counts: never a backlog.
    match schedule.previous_at_or_before(now) {
        Some(latest) if latest > reference => {
            let late = now.as_second() - latest.as_second();
            if late <= starting_deadline_seconds.max(0) {
                Decision::Run {
                    scheduled_for: latest,
                    run_now: None,
                }
            } else {
                Decision::SkipMissed {
                    scheduled_for: latest,
                }
            }
        }
        _ => Decision::Wait,
    }
}

async fn reconcile(
    policy: Arc<LicenseCleanupPolicy>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let namespace = policy.namespace().unwrap_or_default();
    let name = policy.name_any();
    let key = (namespace.clone(), name.clone());
    ctx.forget_deleted_policies();
    if policy.metadata.deletion_timestamp.is_some() {
        ctx.metrics.forget_policy(&namespace, &name);
        return Ok(Action::await_change());
    }
    let api: Api<LicenseCleanupPolicy> = Api::namespaced(ctx.client.clone(), &namespace);
    let status = policy.status.clone().unwrap_or_default();
    let now = Timestamp::now();

    // A policy the API server accepted can still be wrong in ways CEL cannot see (a cron field out of range,
    // an unknown time zone): say so on the status and wait for a change.
    let schedule = match cluster::validate(&policy, &ctx.permissions).and_then(|(rules, _)| {
        Schedule::parse(&policy.spec.schedule, &policy.spec.time_zone).map(|s| (s, rules))
    }) {
        Ok((schedule, rules)) => {
            ctx.metrics.set_tls_unverified(
                &namespace,
                &name,
                policy.spec.site.tls.insecure_skip_verify,
            );
            ctx.metrics.register_policy(
                &namespace,
                &name,
                &rules.access_types(),
                policy.spec.dry_run,
                status.last_successful_time.as_ref().map(|t| t.0),
                status.last_run.as_ref().map(|r| r.completion_time.0),
            );
            schedule
        }
        Err(invalid) => {
            let message = invalid.to_string();
            let mut newly_invalid = false;
            cluster::update_status(&api, &name, |fresh, status| {
                let before = status
                    .conditions
                    .iter()
                    .find(|c| c.type_ == READY)
                    .map(|c| (c.status.clone(), c.message.clone()));
                status.observed_generation = fresh.metadata.generation;
                status.next_schedule_time = None;
                status.conditions = status::merge_conditions(
                    &status.conditions,
                    &[ConditionUpdate::new(
                        READY,
                        false,
                        "InvalidPolicy",
                        message.clone(),
                    )],
                    now,
                    fresh.metadata.generation,
                );
                newly_invalid = before != Some(("False".to_string(), message.clone()));
            })
            .await
            .map_err(ReconcileError::Status)?;
            if newly_invalid {
                cluster::publish(&ctx.recorder, &policy, true, "InvalidPolicy", message).await;
            }
            ctx.metrics
                .set_policy_state(&namespace, &name, false, policy.spec.dry_run);
            ctx.metrics.set_next_run(&namespace, &name, None);
            return Ok(Action::await_change());
        }
    };

    let decision = due(&policy, &schedule, now);
    let next = if policy.spec.suspend {
        None
    } else {
        schedule.next_after(now)
    };
    ctx.metrics.set_next_run(&namespace, &name, next);

    // Another runner (a CronJob, a replica that lost leadership) holds the policy: come back when its hold
    // runs out, since a runner cut off from the API server cannot announce that it stopped.
    let held_elsewhere = status
        .active_run
        .as_ref()
        .filter(|hold| hold.holds_at(now) && !ctx.is_running(&key));
    if let (Decision::Run { .. }, Some(hold)) = (&decision, held_elsewhere) {
        let void_at = hold.renew_time.0.as_second() + i64::from(hold.hold_seconds);
        let wait = (void_at - now.as_second()).max(0) as u64 + 1;
        tracing::info!(policy = %name, holder = %hold.holder, wait_seconds = wait, "another run holds the policy; waiting");
        return Ok(Action::requeue(Duration::from_secs(wait)));
    }

    match decision {
        Decision::Run {
            scheduled_for,
            run_now,
        } if !ctx.stopping() && !ctx.is_running(&key) => {
            let trigger = match run_now {
                Some(value) => Trigger::RunNow(value),
                None => Trigger::Scheduled(scheduled_for),
            };
            let task_ctx = ctx.clone();
            let (task_namespace, task_name) = key.clone();
            let handle = tokio::spawn(async move {
                // Wait for a slot; the policy counts as running meanwhile, so it is not started twice.
                let Ok(_slot) = task_ctx.run_slots.clone().acquire_owned().await else {
                    return;
                };
                if task_ctx.stopping() {
                    return;
                }
                let result = cluster::run_policy(
                    &task_namespace,
                    &task_name,
                    PolicyRun {
                        client: &task_ctx.client,
                        recorder: &task_ctx.recorder,
                        metrics: Some(&task_ctx.metrics),
                        force_dry_run: false,
                        stop: Some(task_ctx.stop.clone()),
                        trigger,
                        permissions: task_ctx.permissions,
                    },
                )
                .await;
                match result {
                    Ok(PolicyRunOutcome::Ran(_)) => {}
                    Ok(PolicyRunOutcome::Busy { holder }) => {
                        tracing::info!(policy = %task_name, %holder, "another run holds the policy; not running");
                    }
                    Ok(PolicyRunOutcome::Suspended) => {
                        tracing::info!(policy = %task_name, "suspended; not running");
                    }
                    Ok(PolicyRunOutcome::AlreadyAnswered) => {
                        tracing::debug!(policy = %task_name, "trigger already answered; not running again");
                    }
                    Err(e) => {
                        tracing::warn!(policy = %task_name, error = %e, "run could not start")
                    }
                }
            });
            ctx.running
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key, handle);
            // The run's own status writes wake the next reconcile.
            return Ok(Action::await_change());
        }
        Decision::SkipMissed { scheduled_for } => {
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
                tracing::warn!(policy = %name, "{note}");
                cluster::publish(&ctx.recorder, &policy, true, "MissedRunSkipped", note).await;
            }
        }
        _ => {}
    }

    // Keep the status in step with the spec without a run: the next instant, the generation, and Ready once a
    // previously invalid policy is fixed.
    let updated = cluster::update_status(&api, &name, |fresh, status| {
        status.observed_generation = fresh.metadata.generation;
        status.next_schedule_time = next.map(Time);
        status.conditions = status::merge_conditions(
            &status.conditions,
            &[status::tls_verified(
                fresh.spec.site.tls.insecure_skip_verify,
            )],
            now,
            fresh.metadata.generation,
        );
        let was_invalid = status
            .conditions
            .iter()
            .find(|c| c.type_ == READY)
            .is_none_or(|c| c.reason == "InvalidPolicy");
        if was_invalid {
            let message = match next {
                Some(n) => format!("valid; next run at {n}"),
                None => "valid; suspended".to_string(),
            };
            status.conditions = status::merge_conditions(
                &status.conditions,
                &[ConditionUpdate::new(READY, true, "Scheduled", message)],
                now,
                fresh.metadata.generation,
            );
        }
    })
    .await
    .map_err(ReconcileError::Status)?;
    let ready = updated
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == READY))
        .is_some_and(|c| c.status == "True");
    ctx.metrics
        .set_policy_state(&namespace, &name, ready, policy.spec.dry_run);

    Ok(match next {
        // Wake a moment after the instant so `previous_at_or_before` sees it.
        Some(next) => {
            let wait_ms = (next.as_millisecond() - now.as_millisecond()).max(0) as u64 + 50;
            Action::requeue(Duration::from_millis(wait_ms))
        }
        None => Action::await_change(),
    })
}

fn error_policy(
    policy: Arc<LicenseCleanupPolicy>,
    error: &ReconcileError,
    _ctx: Arc<Context>,
) -> Action {
    tracing::warn!(policy = %policy.name_any(), error = %error, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(5))
}

/// Connections `/metrics`, `/healthz` and `/readyz` serve at once.
const METRICS_MAX_CONNECTIONS: usize = 32;
/// A client must send its request headers within this time.
const METRICS_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(3);
/// A connection is closed after this long, whatever it does.
const METRICS_CONNECTION_LIFETIME: Duration = Duration::from_secs(30);

/// Serve `/metrics`, `/healthz` and `/readyz`.
async fn serve_metrics(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    mut stop: watch::Receiver<bool>,
) -> Result<JoinHandle<()>, ControllerError> {
    use axum::http::{StatusCode, header};
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ControllerError::Metrics { addr, source })?;
    tracing::info!(addr = %listener.local_addr().unwrap_or(addr), "serving /metrics, /healthz and /readyz");
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    (
                        [(
                            header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        metrics.encode(),
                    )
                }
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let ready = ready.clone();
                async move {
                    if ready.load(Ordering::Relaxed) {
                        (StatusCode::OK, "ready")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "starting")
                    }
                }
            }),
        );
    Ok(tokio::spawn(async move {
        // Probes must answer whatever other clients do: each connection gets its headers read within a few
        // seconds and lives a bounded time, and at most a few dozen are served at once (more are closed at once
        // rather than queued behind slow ones).
        let slots = Arc::new(tokio::sync::Semaphore::new(METRICS_MAX_CONNECTIONS));
        loop {
            let accepted = tokio::select! {
                _ = stop.wait_for(|s| *s) => break,
                accepted = listener.accept() => accepted,
            };
            let Ok((stream, _)) = accepted else {
                continue;
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                drop(stream);
                continue;
            };
            let service = hyper_util::service::TowerToHyperService::new(app.clone());
            tokio::spawn(async move {
                let _slot = slot;
                let connection = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(METRICS_HEADER_READ_TIMEOUT)
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                let _ = tokio::time::timeout(METRICS_CONNECTION_LIFETIME, connection).await;
            });
        }
    }))
}

/// Resolves when SIGTERM or SIGINT arrives. Every mode stops the same way on either: the controller, and
/// `run` (a CronJob's pod is sent SIGTERM when its deadline passes or it is deleted).
pub async fn termination() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Run the controller until SIGTERM.
pub async fn run(client: Client, options: ControllerOptions) -> Result<(), ControllerError> {
    let metrics = Arc::new(Metrics::new());
    let ready = Arc::new(AtomicBool::new(false));
    let (stop_tx, stop_rx) = watch::channel(false);
    let server = serve_metrics(
        options.metrics_addr,
        metrics.clone(),
        ready.clone(),
        stop_rx.clone(),
    )
    .await?;

    tokio::spawn({
        let stop_tx = stop_tx.clone();
        async move {
            termination().await;
            tracing::info!(
                "termination requested: no new runs; letting deallocations in flight finish"
            );
            let _ = stop_tx.send(true);
        }
    });

    // With leader election, a standby replica waits here: healthy and ready, running nothing.
    type LeaseTask =
        JoinHandle<Result<kube_lease_manager::LeaseManager, kube_lease_manager::LeaseManagerError>>;
    let mut leadership: Option<(watch::Receiver<bool>, LeaseTask)> = None;
    if options.leader_elect {
        ready.store(true, Ordering::Relaxed);
        let duration = options.lease_duration_seconds.max(2);
        let manager =
            kube_lease_manager::LeaseManagerBuilder::new(client.clone(), &options.lease_name)
                .with_namespace(&options.lease_namespace)
                .with_identity(&options.identity)
                .with_duration(duration)
                .with_grace((duration / 3).max(1))
                .with_field_manager(cluster::FIELD_MANAGER)
                .build()
                .await
                .map_err(|e| ControllerError::LeaderElection(e.to_string()))?;
        let (mut is_leader, task) = manager.watch().await;
        tracing::info!(lease = %options.lease_name, identity = %options.identity, "waiting to become leader");
        let mut stop_wait = stop_rx.clone();
        let became_leader = tokio::select! {
            r = is_leader.wait_for(|l| *l) => r.is_ok(),
            _ = stop_wait.wait_for(|s| *s) => false,
        };
        if !became_leader {
            let stopping = *stop_rx.borrow();
            drop(is_leader);
            if let Ok(Ok(manager)) = task.await {
                let _ = manager.release().await;
            }
            if !stopping {
                return Err(ControllerError::LeaderElection(
                    "the lease task ended".into(),
                ));
            }
            let _ = server.await;
            return Ok(());
        }
        tracing::info!(identity = %options.identity, "became leader");
        leadership = Some((is_leader, task));
    }

    // One watch per namespace when namespaces are listed, so that the operator needs no cluster-wide read.
    let apis: Vec<Api<LicenseCleanupPolicy>> = if options.namespaces.is_empty() {
        vec![Api::all(client.clone())]
    } else {
        options
            .namespaces
            .iter()
            .map(|ns| Api::namespaced(client.clone(), ns))
            .collect()
    };

    let mut lost = false;
    let shutdown = || {
        let mut stop = stop_rx.clone();
        let mut leader = leadership.as_ref().map(|(rx, _)| rx.clone());
        async move {
            match leader.as_mut() {
                Some(leader) => {
                    tokio::select! {
                        _ = stop.wait_for(|s| *s) => {}
                        _ = leader.wait_for(|l| !*l) => {}
                    }
                }
                None => {
                    let _ = stop.wait_for(|s| *s).await;
                }
            }
        }
    };
    ready.store(true, Ordering::Relaxed);
    let watched = if options.namespaces.is_empty() {
        "<all>".to_string()
    } else {
        options.namespaces.join(",")
    };
    tracing::info!(namespaces = %watched, "controller started");
    let controllers: Vec<Controller<LicenseCleanupPolicy>> = apis
        .into_iter()
        .map(|api| Controller::new(api, watcher::Config::default()))
        .collect();
    let ctx = Arc::new(Context {
        client: client.clone(),
        recorder: cluster::recorder(&client),
        metrics: metrics.clone(),
        running: Mutex::new(HashMap::new()),
        missed_reported: Mutex::new(HashSet::new()),
        stop: stop_rx.clone(),
        stores: controllers.iter().map(Controller::store).collect(),
        permissions: options.permissions,
        run_slots: Arc::new(tokio::sync::Semaphore::new(
            options.max_concurrent_runs.max(1),
        )),
    });
    let controllers = controllers.into_iter().map(|controller| {
        controller
            .graceful_shutdown_on(shutdown())
            .run(reconcile, error_policy, ctx.clone())
            .for_each(|result| async move {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "reconcile error");
                }
            })
    });
    futures::future::join_all(controllers).await;

    if let Some((leader, _)) = &leadership
        && !*leader.borrow()
        && !*stop_rx.borrow()
    {
        lost = true;
        let _ = stop_tx.send(true);
    }
    // Let the runs in flight finish their deallocations and write their status.
    let handles: Vec<JoinHandle<()>> = ctx
        .running
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .drain()
        .map(|(_, h)| h)
        .collect();
    for handle in handles {
        let _ = handle.await;
    }
    if let Some((is_leader, task)) = leadership {
        // Dropping the last receiver ends the lease task, which hands back the manager to release the Lease, so
        // a standby takes over at once rather than after the lease duration.
        drop(is_leader);
        if let Ok(Ok(manager)) = task.await {
            let _ = manager.release().await;
        }
    }
    let _ = stop_tx.send(true);
    let _ = server.await;
    if lost {
        return Err(ControllerError::LostLeadership);
    }
    tracing::info!("controller stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_due_instant_runs_and_a_late_one_is_skipped() {
        let s = Schedule::parse("0 3 * * *", "UTC").unwrap();
        let created = ts("2026-11-20T12:00:00Z");
        // 03:00 passed 10 minutes ago: within the hour's deadline.
        let now = ts("2026-11-21T03:10:00Z");
        assert_eq!(
            decide_run(&s, now, created, 3600, false, None, None),
            Decision::Run {
                scheduled_for: ts("2026-11-21T03:00:00Z"),
                run_now: None
            }
        );
        // Three days of downtime: only the most recent instant is considered, and it is too late.
        let now = ts("2026-11-23T05:00:00Z");
        assert_eq!(
            decide_run(&s, now, created, 3600, false, None, None),
            Decision::SkipMissed {
                scheduled_for: ts("2026-11-23T03:00:00Z")
            }
        );
        // Already answered: wait.
        assert_eq!(
            decide_run(&s, now, ts("2026-11-23T03:00:00Z"), 3600, false, None, None),
            Decision::Wait
        );
    }

    #[test]
    fn run_now_runs_once_per_value_and_suspend_wins() {
        let s = Schedule::parse("0 3 * * *", "UTC").unwrap();
        let now = ts("2026-11-21T12:00:00Z");
        let reference = ts("2026-11-21T03:00:00Z");
        assert!(matches!(
            decide_run(&s, now, reference, 3600, false, Some("1"), None),
            Decision::Run { run_now: Some(v), .. } if v == "1"
        ));
        assert_eq!(
            decide_run(&s, now, reference, 3600, false, Some("1"), Some("1")),
            Decision::Wait
        );
        assert_eq!(
            decide_run(&s, now, reference, 3600, true, Some("2"), Some("1")),
            Decision::Wait
        );
    }
}

/// The reconciler against a scripted API server (tower-test): fast checks of what it reads and writes.
#[cfg(test)]
mod api_tests {
    use super::*;
    use http::{Request, Response};
    use kube::client::Body;
    use serde_json::{Value, json};

    type ApiHandle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

    const POLICY_PATH: &str =
        "/apis/licensing.reclaimer.dev/v1alpha1/namespaces/ops/licensecleanuppolicies/site";

    fn policy(
        change: impl FnOnce(&mut crate::policy::LicenseCleanupPolicySpec),
    ) -> LicenseCleanupPolicy {
        let mut spec =
            crate::demo::demo_policy("https://qlik.example.com:4242".into(), "qlikserver1".into());
        change(&mut spec);
        let mut policy = LicenseCleanupPolicy::new("site", spec);
        policy.metadata.namespace = Some("ops".into());
        policy.metadata.generation = Some(3);
        policy.metadata.resource_version = Some("41".into());
        policy.metadata.creation_timestamp = Some(Time(Timestamp::now()));
        policy
    }

    fn context(client: Client) -> Arc<Context> {
        let (_stop_tx, stop) = watch::channel(false);
        Arc::new(Context {
            recorder: cluster::recorder(&client),
            client,
            metrics: Arc::new(Metrics::new()),
            running: Mutex::new(HashMap::new()),
            missed_reported: Mutex::new(HashSet::new()),
            stop,
            stores: Vec::new(),
            permissions: Permissions::default(),
            run_slots: Arc::new(tokio::sync::Semaphore::new(1)),
        })
    }

    fn json_response(value: &Value) -> Response<Body> {
        Response::builder()
            .body(Body::from(serde_json::to_vec(value).expect("JSON")))
            .expect("response")
    }

    /// Answer the next request, checking its method and path; returns its JSON body.
    async fn expect(handle: &mut ApiHandle, method: &str, path: &str, answer: Value) -> Value {
        let (request, send) = handle
            .next_request()
            .await
            .expect("the reconciler made a request");
        assert_eq!(request.method().as_str(), method, "{}", request.uri());
        assert!(
            request.uri().path().starts_with(path),
            "{} {}",
            request.method(),
            request.uri()
        );
        let body = request.into_body().collect_bytes().await.expect("body");
        send.send_response(json_response(&answer));
        if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body).expect("JSON request body")
        }
    }

    fn ready(status: &Value) -> (String, String, String) {
        let ready = status["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
            .cloned()
            .unwrap_or_default();
        let field = |k: &str| ready[k].as_str().unwrap_or_default().to_string();
        (field("status"), field("reason"), field("message"))
    }

    #[tokio::test]
    async fn an_unusable_time_zone_is_reported_once_and_waits_for_a_change() {
        let policy = policy(|s| s.time_zone = "Mars/Olympus_Mons".into());
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let ctx = context(Client::new(service, "default"));
        let object = serde_json::to_value(&policy).unwrap();
        let server = tokio::spawn(async move {
            expect(&mut handle, "GET", POLICY_PATH, object.clone()).await;
            let patch = expect(
                &mut handle,
                "PATCH",
                &format!("{POLICY_PATH}/status"),
                object.clone(),
            )
            .await;
            assert_eq!(
                patch["metadata"]["resourceVersion"], "41",
                "written with a precondition"
            );
            let (status, reason, message) = ready(&patch["status"]);
            assert_eq!(
                (status.as_str(), reason.as_str()),
                ("False", "InvalidPolicy")
            );
            assert!(message.contains("spec.timeZone"), "{message}");
            assert_eq!(patch["status"]["observedGeneration"], 3);
            let event = expect(
                &mut handle,
                "POST",
                "/apis/events.k8s.io/v1/namespaces/ops/events",
                json!({}),
            )
            .await;
            assert_eq!(event["type"], "Warning");
            assert_eq!(event["reason"], "InvalidPolicy");
            handle
        });
        let action = reconcile(Arc::new(policy), ctx.clone())
            .await
            .expect("reconciled");
        assert_eq!(action, Action::await_change());
        let mut handle = server.await.expect("scripted API");
        // Nothing else was asked of the API server.
        drop(ctx);
        assert!(handle.next_request().await.is_none());
    }

    #[tokio::test]
    async fn a_suspended_policy_is_ready_without_a_next_run_and_does_not_run() {
        let policy = policy(|s| s.suspend = true);
        let mut annotated = policy.clone();
        annotated
            .metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(RUN_NOW_ANNOTATION.into(), "now".into());
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let ctx = context(Client::new(service, "default"));
        let object = serde_json::to_value(&annotated).unwrap();
        let server = tokio::spawn(async move {
            expect(&mut handle, "GET", POLICY_PATH, object.clone()).await;
            let patch = expect(
                &mut handle,
                "PATCH",
                &format!("{POLICY_PATH}/status"),
                object.clone(),
            )
            .await;
            let (status, reason, message) = ready(&patch["status"]);
            assert_eq!(
                (status.as_str(), reason.as_str(), message.as_str()),
                ("True", "Scheduled", "valid; suspended")
            );
            assert!(patch["status"].get("nextScheduleTime").is_none());
            assert!(
                patch["status"].get("lastRunNow").is_none(),
                "run-now is not answered while suspended"
            );
            handle
        });
        let action = reconcile(Arc::new(annotated), ctx.clone())
            .await
            .expect("reconciled");
        assert_eq!(action, Action::await_change());
        let mut handle = server.await.expect("scripted API");
        assert!(
            !ctx.is_running(&("ops".into(), "site".into())),
            "no run was started"
        );
        drop(ctx);
        assert!(handle.next_request().await.is_none());
    }

    #[tokio::test]
    async fn a_valid_policy_sleeps_until_its_next_instant() {
        let policy = policy(|s| s.schedule = "0 3 * * *".into());
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let ctx = context(Client::new(service, "default"));
        let object = serde_json::to_value(&policy).unwrap();
        let server = tokio::spawn(async move {
            expect(&mut handle, "GET", POLICY_PATH, object.clone()).await;
            let patch = expect(
                &mut handle,
                "PATCH",
                &format!("{POLICY_PATH}/status"),
                object.clone(),
            )
            .await;
            let next: Timestamp = patch["status"]["nextScheduleTime"]
                .as_str()
                .expect("next run")
                .parse()
                .unwrap();
            let at = next.to_zoned(jiff::tz::TimeZone::UTC);
            assert_eq!((at.hour(), at.minute()), (3, 0));
            handle
        });
        let action = reconcile(Arc::new(policy), ctx.clone())
            .await
            .expect("reconciled");
        let _ = server.await.expect("scripted API");
        // A requeue at the next instant, within a day: the controller sleeps rather than polls.
        assert_ne!(action, Action::await_change());
        let text = format!("{action:?}");
        assert!(text.contains("requeue_after: Some("), "{text}");
    }
}
