//! The controller process: watches LicenseCleanupPolicy resources and runs each on its schedule.
//!
//! It knows Kubernetes and the schedule, not Qlik's JSON: runs go through [`super::policy_run::run_policy`].
//! Between runs nothing polls: each reconcile asks to be woken at the next scheduled instant, and watch events
//! (a changed spec, the run-now annotation, a finished run's status) wake it earlier.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use kube::runtime::{Controller, watcher};
use kube::{Api, Client};

use super::events::recorder;
use super::http::serve_metrics;
use super::leader::{Leadership, Lease};
use super::metrics::Metrics;
use super::reconcile::{Context, error_policy, reconcile};
use super::restore::{RestoreWatchContext, reconcile_restore, restore_error_policy};
use crate::policy::LicenseCleanupPolicy;
use crate::policy::Permissions;
use crate::record::LicenseCleanupRun;
use crate::shutdown::Shutdown;

/// Command-line options of `controller`.
#[derive(Debug, Clone)]
pub(crate) struct ControllerOptions {
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
pub(crate) enum ControllerError {
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

/// Run the controller until SIGTERM or SIGINT, or until it loses the leader Lease.
pub(crate) async fn run(client: Client, options: ControllerOptions) -> Result<(), ControllerError> {
    let metrics = Arc::new(Metrics::new());
    let ready = Arc::new(AtomicBool::new(false));
    let shutdown = Shutdown::on_signals();
    let addr = options.metrics_addr;
    let server = serve_metrics(addr, metrics.clone(), ready.clone(), shutdown.clone())
        .await
        .map_err(|source| ControllerError::Metrics { addr, source })?;

    // With leader election, a standby replica waits here: healthy and ready, running nothing.
    let mut leadership = None;
    if options.leader_elect {
        ready.store(true, Ordering::Relaxed);
        let lease = Lease {
            name: &options.lease_name,
            namespace: &options.lease_namespace,
            identity: &options.identity,
            duration_seconds: options.lease_duration_seconds,
        };
        leadership = Leadership::acquire(&client, &lease, &shutdown)
            .await
            .map_err(ControllerError::LeaderElection)?;
        if leadership.is_none() {
            let _ = server.await;
            return Ok(());
        }
    }

    ready.store(true, Ordering::Relaxed);
    let ctx = watch_policies(&client, &options, metrics, &shutdown, leadership.as_ref()).await;
    let lost = leadership.as_ref().is_some_and(|l| l.lost()) && !shutdown.is_requested();
    // Losing the Lease stops the runs in flight as a signal would: another replica is about to run policies.
    shutdown.request();
    ctx.drain_runs().await;
    if let Some(leadership) = leadership {
        leadership.release().await;
    }
    let _ = server.await;
    if lost {
        return Err(ControllerError::LostLeadership);
    }
    tracing::info!("controller stopped");
    Ok(())
}

/// Reconciles policies until a stop is asked for or the Lease is lost. One watch per namespace when namespaces
/// are listed, so that the operator needs no cluster-wide read.
async fn watch_policies(
    client: &Client,
    options: &ControllerOptions,
    metrics: Arc<Metrics>,
    shutdown: &Shutdown,
    leadership: Option<&Leadership>,
) -> Arc<Context> {
    let apis: Vec<Api<LicenseCleanupPolicy>> = watched_apis(client, &options.namespaces);
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
        recorder: recorder(client),
        metrics,
        running: Mutex::new(HashMap::new()),
        missed_reported: Mutex::new(HashSet::new()),
        shutdown: shutdown.clone(),
        stores: controllers.iter().map(Controller::store).collect(),
        permissions: options.permissions,
        run_slots: Arc::new(tokio::sync::Semaphore::new(
            options.max_concurrent_runs.max(1),
        )),
    });
    let stop_watching = || {
        let shutdown = shutdown.clone();
        let leader = leadership.map(|l| l.is_leader.clone());
        async move {
            match leader {
                Some(mut leader) => tokio::select! {
                    _ = shutdown.requested() => {}
                    _ = leader.wait_for(|l| !*l) => {}
                },
                None => shutdown.requested().await,
            }
        }
    };
    let controllers = controllers.into_iter().map(|controller| {
        controller
            .graceful_shutdown_on(stop_watching())
            .run(reconcile, error_policy, ctx.clone())
            .for_each(|result| async move {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "reconcile error");
                }
            })
    });
    // Runs are watched for the restore annotation, in the same namespaces.
    let restore_ctx = Arc::new(RestoreWatchContext {
        client: client.clone(),
        recorder: recorder(client),
        permissions: options.permissions,
    });
    let run_apis: Vec<Api<LicenseCleanupRun>> = watched_apis(client, &options.namespaces);
    let restores = run_apis.into_iter().map(|api| {
        Controller::new(api, watcher::Config::default())
            .graceful_shutdown_on(stop_watching())
            .run(reconcile_restore, restore_error_policy, restore_ctx.clone())
            .for_each(|result| async move {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "restore reconcile error");
                }
            })
    });
    futures::future::join(
        futures::future::join_all(controllers),
        futures::future::join_all(restores),
    )
    .await;
    ctx
}

/// One API per watched namespace, or one over all namespaces.
fn watched_apis<K>(client: &Client, namespaces: &[String]) -> Vec<Api<K>>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>,
    <K as kube::Resource>::DynamicType: Default,
{
    if namespaces.is_empty() {
        vec![Api::all(client.clone())]
    } else {
        namespaces
            .iter()
            .map(|ns| Api::namespaced(client.clone(), ns))
            .collect()
    }
}
