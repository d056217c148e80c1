//! `restore`: give back the seats a run reclaimed, from its JSON report on a laptop (`--report FILE --policy FILE
//! --credentials DIR`) or from its `LicenseCleanupRun` in a cluster (`--run NS/NAME`). Exit codes as `run`.

use super::args::{RestoreArgs, RestoreFormat};
use super::run_file::parse_policy;
use super::{CliError, kube_client};
use crate::credentials::Credentials;
use crate::k8s::events::recorder;
use crate::k8s::restore::{RestoreContext, RestoreStartError, restore_run};
use crate::policy::{self, Permissions, RunResult};
use crate::qrs::QrsClient;
use crate::record::{RestoreStatus, RunRecord};
use crate::restore;

pub(super) async fn run(args: RestoreArgs) -> Result<RunResult, CliError> {
    let outcome = match &args.run {
        Some(reference) => from_cluster(reference, &args).await?,
        None => from_report(&args).await?,
    };
    match args.output {
        RestoreFormat::Table => super::print_out(&restore::table(&outcome)),
        RestoreFormat::Json => {
            let json = serde_json::to_string_pretty(&outcome)
                .map_err(|e| CliError::Failed(e.to_string()))?;
            super::print_out(&format!("{json}\n"));
        }
    }
    Ok(outcome.result)
}

async fn from_report(args: &RestoreArgs) -> Result<RestoreStatus, CliError> {
    let (Some(report), Some(policy_path), Some(credentials_dir)) =
        (&args.report, &args.policy, &args.credentials)
    else {
        return Err(CliError::Invalid(
            "restore needs --report FILE --policy FILE --credentials DIR, or --run NS/NAME".into(),
        ));
    };
    let text = crate::files::read_at_most(report, crate::files::REPORT_BYTES).map_err(|e| {
        CliError::Invalid(format!("cannot read the report {}: {e}", report.display()))
    })?;
    let record: RunRecord = serde_json::from_slice(&text).map_err(|e| {
        CliError::Invalid(format!(
            "{} is not a run's JSON report (`run --output json`): {e}",
            report.display()
        ))
    })?;
    let seats =
        restore::seats_of(&record, &args.user).map_err(|e| CliError::Invalid(e.to_string()))?;
    let path = policy_path.display();
    let manifest = crate::files::read_text_at_most(policy_path, crate::files::SECRET_BYTES)
        .map_err(|e| CliError::Invalid(format!("cannot read the policy {path}: {e}")))?;
    let policy = parse_policy(&manifest)
        .map_err(|e| CliError::Invalid(format!("invalid policy {path}: {e}")))?;
    let permissions = Permissions {
        allow_insecure_skip_verify: args.allow_insecure_skip_verify,
    };
    let valid = policy::validate(&policy.spec, &permissions)
        .map_err(|e| CliError::Invalid(format!("invalid policy: {e}")))?;
    restore::check_same_site(&record, valid.connection.route.site())
        .map_err(|e| CliError::Invalid(e.to_string()))?;
    let credentials = Credentials::from_dir(credentials_dir).map_err(|e| {
        CliError::Invalid(format!(
            "invalid credentials in {}: {e}",
            credentials_dir.display()
        ))
    })?;
    let client = QrsClient::connect(&valid.connection, &credentials, None)
        .await
        .map_err(|e| CliError::Failed(e.to_string()))?;
    let outcome = restore::restore(&client, &seats, args.dry_run, "cli".into()).await;
    client.close().await;
    Ok(outcome)
}

async fn from_cluster(reference: &str, args: &RestoreArgs) -> Result<RestoreStatus, CliError> {
    let (namespace, name) = super::namespaced_name("--run", reference)?;
    let client = kube_client().await?;
    let recorder = recorder(&client);
    let request = RestoreContext {
        client: &client,
        recorder: &recorder,
        permissions: Permissions {
            allow_insecure_skip_verify: args.allow_insecure_skip_verify,
        },
        dry_run: args.dry_run,
        only: args.user.clone(),
        answered: None,
    };
    restore_run(namespace, name, &request)
        .await
        .map_err(|e| match e {
            RestoreStartError::Invalid(m) => CliError::Invalid(m),
            RestoreStartError::Failed(m) => CliError::Failed(m),
        })
}
