//! `run --policy FILE --credentials DIR`: one run of a policy manifest from a laptop, against a folder shaped like
//! the policy's Secret. The same promises as in the cluster: one run of a file at a time, and an edit to the file
//! (or SIGTERM, SIGINT) stops further deletions.

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::brake::{Brake, BrakeState};

use super::args::RunArgs;
use super::{CliError, notify_files, print_report};
use crate::credentials::Credentials;
use crate::notify::Notifier;
use crate::policy::{
    self, LicenseCleanupPolicy, Permissions, RunResult, ValidPolicy, check_known_fields,
};
use crate::run::{self, NotifyContext, RunContext};
use crate::shutdown::Shutdown;

/// How often `run --policy FILE` reads its file again while it may delete.
const POLICY_FILE_RECHECK: Duration = Duration::from_secs(2);

pub(super) async fn run(args: RunArgs) -> Result<RunResult, CliError> {
    let (Some(policy_path), Some(credentials_dir)) = (&args.policy, &args.credentials) else {
        return Err(CliError::Invalid(
            "run needs --policy FILE and --credentials DIR, or --policy-ref NS/NAME".into(),
        ));
    };
    let path = policy_path.display();
    let text = crate::files::read_text_at_most(policy_path, crate::files::SECRET_BYTES)
        .map_err(|e| CliError::Invalid(format!("cannot read the policy {path}: {e}")))?;
    let policy = parse_policy(&text)
        .map_err(|e| CliError::Invalid(format!("invalid policy {path}: {e}")))?;
    if policy.spec.suspend {
        eprintln!("the policy {path} is suspended (spec.suspend): nothing was done");
        return Ok(RunResult::Succeeded);
    }
    let credentials = Credentials::from_dir(credentials_dir).map_err(|e| {
        CliError::Invalid(format!(
            "invalid credentials in {}: {e}",
            credentials_dir.display()
        ))
    })?;
    let Some(_lock) = lock(policy_path)? else {
        eprintln!("another run of {path} is in progress: nothing was done");
        return Ok(RunResult::Succeeded);
    };
    let permissions = Permissions {
        allow_insecure_skip_verify: args.allow_insecure_skip_verify,
    };
    let valid = policy::validate(&policy.spec, &permissions)
        .map_err(|e| CliError::Invalid(format!("invalid policy: {e}")))?;
    let name = policy
        .metadata
        .name
        .clone()
        .unwrap_or_else(|| "policy".into());
    let state = state(&args, &valid)?;
    let notifier = notifier(&args, &valid, &name)?;
    let pending = state.pending();
    let ctx = RunContext {
        force_dry_run: args.dry_run,
        brake: Some(stop_on_signal_or_change(
            policy_path.clone(),
            text.into_bytes(),
        )),
        notify: notifier
            .as_ref()
            .map(|notifier| NotifyContext { notifier, pending }),
        recent_moves: state.recent_moves(),
        ..RunContext::new(&credentials, jiff::Timestamp::now())
    };
    let report = run::execute(&valid, ctx).await;
    print_report(&report, args.output);
    if let (Some(path), Some(kept)) = (&args.state, state.after(&report)) {
        notify_files::write_state(path, &kept)?;
    }
    // Once the report and the notices are kept: a channel that hangs cannot hold them back.
    if let Some(notifier) = &notifier {
        run::announce(notifier, &report, run::SUMMARY_DEADLINE).await;
    }
    if report.result != RunResult::Succeeded {
        tracing::error!(run = %report.id, result = report.result.as_str(), "{}", report.message);
    }
    Ok(report.result)
}

/// The policy's channels, from the Secrets in `--secrets DIR`, and the notices earlier runs gave, from
/// `--state FILE`: each required when the policy needs it.
fn notifier(args: &RunArgs, valid: &ValidPolicy, name: &str) -> Result<Option<Notifier>, CliError> {
    match (&valid.notify, &args.secrets) {
        (Some(notify), Some(dir)) => Ok(Some(notify_files::notifier(name, &notify.channels, dir)?)),
        (Some(_), None) => Err(CliError::Invalid(
            "the policy notifies (spec.notify): give --secrets DIR with the Secrets it names"
                .into(),
        )),
        (None, _) => Ok(None),
    }
}

/// What earlier runs kept, from `--state FILE`: required when the policy gives notice, and when it moves seats
/// to Analyzer for real (a moved user's Analyzer seat is judged from the move, which only the state remembers).
fn state(args: &RunArgs, valid: &ValidPolicy) -> Result<notify_files::State, CliError> {
    if let Some(path) = &args.state {
        return notify_files::read_state(path);
    }
    if valid.notice_days().is_some() {
        return Err(CliError::Invalid(
            "the policy gives notice (spec.notice.days): give --state FILE to keep the notices between runs".into(),
        ));
    }
    let moves = valid.rules.right_size_after_days().is_some() && !valid.dry_run && !args.dry_run;
    if moves {
        return Err(CliError::Invalid(
            "the policy moves seats to Analyzer (spec.rightSize) and is not a dry run: give --state FILE, where runs \
             remember whom they moved, so that a later run does not take a moved user's Analyzer seat as idle"
                .into(),
        ));
    }
    Ok(notify_files::State::default())
}

/// One run of a policy file at a time on this machine: an advisory lock the system drops with the process, so
/// a crashed run cannot keep it. `None` when another run holds it.
fn lock(policy_path: &Path) -> Result<Option<File>, CliError> {
    let path = policy_path.display();
    let file = File::open(policy_path)
        .map_err(|e| CliError::Invalid(format!("cannot open {path}: {e}")))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => Err(CliError::Invalid(format!("cannot lock {path}: {e}"))),
    }
}

/// The policy file again, bounded as the first read was (the file may have been replaced by anything).
async fn reread(path: &Path) -> std::io::Result<Vec<u8>> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        crate::files::read_at_most(&path, crate::files::SECRET_BYTES)
    })
    .await
    .map_err(std::io::Error::other)?
}

/// A stop for a run of a policy file: SIGTERM or SIGINT, or the file changed (or vanished) since the run read it.
/// The same promise as in the cluster: an administrator who edits the policy (to dry run, say) stops deletions.
fn stop_on_signal_or_change(path: PathBuf, read: Vec<u8>) -> Brake {
    let (lever, brake) = Brake::new(BrakeState::Released);
    let shutdown = Shutdown::on_signals();
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(POLICY_FILE_RECHECK);
        let reason = loop {
            tokio::select! {
                () = shutdown.requested() => break "shutdown: SIGTERM or SIGINT".to_string(),
                _ = ticker.tick() => match reread(&path).await {
                    Ok(now) if now == read => {}
                    Ok(_) => break format!("the policy file {} changed during the run; run it again to follow the new version", path.display()),
                    Err(e) => break format!("the policy file {} cannot be read again ({e})", path.display()),
                },
            }
        };
        tracing::warn!("{reason}: no further seat is deallocated in this run");
        lever.stop(reason);
    });
    brake
}

/// A manifest as `kubectl apply` would take it: apiVersion and kind must be ours, and no field unknown to the CRD.
pub(super) fn parse_policy(text: &str) -> Result<LicenseCleanupPolicy, String> {
    let value: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    let field = |name: &str| {
        value
            .get(name)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string()
    };
    let (api_version, kind) = (field("apiVersion"), field("kind"));
    if api_version != "licensing.reclaimer.dev/v1alpha1" || kind != "LicenseCleanupPolicy" {
        return Err(format!(
            "expected apiVersion licensing.reclaimer.dev/v1alpha1 and kind LicenseCleanupPolicy, found {api_version:?} and {kind:?}"
        ));
    }
    let json = serde_json::to_value(&value).map_err(|e| e.to_string())?;
    check_known_fields(&json).map_err(|e| e.to_string())?;
    // The field's path in the message: "expected u32" alone does not say which of a policy's numbers is wrong.
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let problem = e.into_inner();
        if path == "." {
            problem.to_string()
        } else {
            format!("{path}: {problem}")
        }
    })
}
