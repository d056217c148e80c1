//! Restore in the cluster: `restore --run NS/NAME`, and the `licensing.reclaimer.dev/restore` annotation on a
//! `LicenseCleanupRun`, answered once per new value by the controller. Both read the run's record, its policy (for
//! the site) and the policy's Secret, give the seats back through [`crate::restore`], and write the outcome to the
//! run's `status.restore` with an Event on the run.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::Recorder;
use kube::{Api, Client, ResourceExt};

use super::conditions::ConditionReason;
use super::events::publish;
use super::inputs::{load_credentials, validate_resource};
use super::{FIELD_MANAGER, get_named};
use crate::policy::{LicenseCleanupPolicy, Permissions, RunResult};
use crate::qrs::QrsClient;
use crate::record::{LicenseCleanupRun, RESTORE_ANNOTATION, RestoreStatus};
use crate::restore::{self, SeatToRestore};

/// Why a restore could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RestoreStartError {
    /// The run, its record, its policy or the request is not usable as it is: nothing was asked of Qlik.
    #[error("{0}")]
    Invalid(String),
    /// The API server or Qlik could not be reached or refused.
    #[error("{0}")]
    Failed(String),
}

/// What a restore in the cluster needs from its caller.
pub(crate) struct RestoreContext<'a> {
    pub client: &'a Client,
    pub recorder: &'a Recorder,
    pub permissions: Permissions,
    pub dry_run: bool,
    /// Only these users' seats (`DIRECTORY\userId`); all the run took when empty.
    pub only: Vec<String>,
    /// The annotation value this restore answers; `None` for `restore --run`, which records the run's current value
    /// (or "cli") so that the controller does not answer that value again.
    pub answered: Option<String>,
}

/// Give back what the run `namespace/name` reclaimed; the outcome is written to its status and told in an Event
/// (not a dry run's: it only reports).
pub(crate) async fn restore_run(
    namespace: &str,
    name: &str,
    ctx: &RestoreContext<'_>,
) -> Result<RestoreStatus, RestoreStartError> {
    let runs: Api<LicenseCleanupRun> = Api::namespaced(ctx.client.clone(), namespace);
    let run = get_named(&runs, namespace, name)
        .await
        .map_err(RestoreStartError::Failed)?
        .ok_or_else(|| {
            RestoreStartError::Invalid(format!("LicenseCleanupRun {namespace}/{name} not found"))
        })?;
    let seats = seats_to_restore(&run, &ctx.only)?;
    let client = connect(ctx, namespace, &run).await?;
    let answered = ctx.answered.clone().unwrap_or_else(|| {
        run.annotations()
            .get(RESTORE_ANNOTATION)
            .cloned()
            .unwrap_or_else(|| "cli".into())
    });
    let outcome = restore::restore(&client, &seats, ctx.dry_run, answered).await;
    client.close().await;
    // A dry run answers nothing: were it kept, a restore annotation still pending would count as answered, and
    // the restore the administrator asked for would never happen.
    if !ctx.dry_run {
        write_outcome(&runs, &run, ctx.recorder, &outcome).await;
    }
    Ok(outcome)
}

fn seats_to_restore(
    run: &LicenseCleanupRun,
    only: &[String],
) -> Result<Vec<SeatToRestore>, RestoreStartError> {
    let record = run.status.as_ref().ok_or_else(|| {
        RestoreStartError::Invalid(format!(
            "LicenseCleanupRun {} has no record: it holds nothing to give back",
            run.name_any()
        ))
    })?;
    restore::seats_of(record, only).map_err(|e| RestoreStartError::Invalid(e.to_string()))
}

/// A client of the site the run's policy names, with the policy's Secret; the policy checked as a run checks it,
/// and its site the one the run took the seats from.
async fn connect(
    ctx: &RestoreContext<'_>,
    namespace: &str,
    run: &LicenseCleanupRun,
) -> Result<QrsClient, RestoreStartError> {
    let policy_name = &run.spec.policy;
    let policies: Api<LicenseCleanupPolicy> = Api::namespaced(ctx.client.clone(), namespace);
    let policy = get_named(&policies, namespace, policy_name)
        .await
        .map_err(RestoreStartError::Failed)?
        .ok_or_else(|| {
            RestoreStartError::Invalid(format!(
                "the run's LicenseCleanupPolicy {namespace}/{policy_name} no longer exists: it named the site"
            ))
        })?;
    let valid = validate_resource(&policy, &ctx.permissions)
        .map_err(|e| RestoreStartError::Invalid(format!("invalid policy: {e}")))?;
    if let Some(record) = &run.status {
        restore::check_same_site(record, valid.connection.route.site())
            .map_err(|e| RestoreStartError::Invalid(e.to_string()))?;
    }
    let secret = &policy.spec.site.credentials_secret_ref.name;
    let credentials = load_credentials(ctx.client, namespace, secret)
        .await
        .map_err(|e| RestoreStartError::Invalid(e.to_string()))?;
    QrsClient::connect(&valid.connection, &credentials, None)
        .await
        .map_err(|e| RestoreStartError::Failed(e.to_string()))
}

/// The outcome in the run's `status.restore` and an Event on the run. Failures to write are logged: the seats
/// were given back either way.
async fn write_outcome(
    runs: &Api<LicenseCleanupRun>,
    run: &LicenseCleanupRun,
    recorder: &Recorder,
    outcome: &RestoreStatus,
) {
    let reason = if outcome.result == RunResult::Succeeded {
        ConditionReason::Restored
    } else {
        ConditionReason::RestoreFailed
    };
    publish(recorder, run, reason, outcome.message.clone()).await;
    let patch = serde_json::json!({"status": {"restore": outcome.bounded()}});
    if let Err(e) = runs
        .patch_status(
            &run.name_any(),
            &PatchParams::apply(FIELD_MANAGER),
            &Patch::Merge(&patch),
        )
        .await
    {
        tracing::error!(run = %run.name_any(), error = %e, "could not write the restore's outcome");
    }
}

/// What the controller's restore watch shares.
pub(crate) struct RestoreWatchContext {
    pub client: Client,
    pub recorder: Recorder,
    pub permissions: Permissions,
}

/// Errors of one restore reconcile; retried.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RestoreReconcileError {
    #[error("cannot read the run: {0}")]
    Read(#[source] kube::Error),
}

/// Answers a new value of the restore annotation on a run, once: the value is recorded in `status.restore.answered`
/// whatever the outcome, so a failed restore is not retried until an administrator sets a new value.
pub(crate) async fn reconcile_restore(
    run: Arc<LicenseCleanupRun>,
    ctx: Arc<RestoreWatchContext>,
) -> Result<Action, RestoreReconcileError> {
    let (Some(namespace), name) = (run.namespace(), run.name_any()) else {
        return Ok(Action::await_change());
    };
    // The run as it is now: a cache that lags behind must not answer one value twice.
    let runs: Api<LicenseCleanupRun> = Api::namespaced(ctx.client.clone(), &namespace);
    let Some(run) = runs
        .get_opt(&name)
        .await
        .map_err(RestoreReconcileError::Read)?
    else {
        return Ok(Action::await_change());
    };
    let Some(value) = run.annotations().get(RESTORE_ANNOTATION).cloned() else {
        return Ok(Action::await_change());
    };
    let answered = run.status.as_ref().and_then(|s| s.restore.as_ref());
    if answered.is_some_and(|r| r.answered == value) {
        return Ok(Action::await_change());
    }
    tracing::info!(run = %format!("{namespace}/{name}"), "restore asked for by annotation");
    let request = RestoreContext {
        client: &ctx.client,
        recorder: &ctx.recorder,
        permissions: ctx.permissions,
        dry_run: false,
        only: Vec::new(),
        answered: Some(value.clone()),
    };
    if let Err(e) = restore_run(&namespace, &name, &request).await {
        tracing::warn!(run = %format!("{namespace}/{name}"), error = %e, "the restore could not start");
        let outcome = RestoreStatus {
            answered: value,
            result: RunResult::Failed,
            dry_run: false,
            time: MicroTime(Timestamp::now()),
            message: format!("nothing was given back: {e}"),
            restored: 0,
            skipped: 0,
            failed: 0,
            seats: Vec::new(),
            seats_omitted: 0,
        };
        write_outcome(&runs, &run, &ctx.recorder, &outcome).await;
    }
    Ok(Action::await_change())
}

pub(crate) fn restore_error_policy(
    run: Arc<LicenseCleanupRun>,
    error: &RestoreReconcileError,
    _ctx: Arc<RestoreWatchContext>,
) -> Action {
    tracing::warn!(run = %run.name_any(), error = %error, "restore reconcile failed; retrying");
    Action::requeue(Duration::from_secs(10))
}
