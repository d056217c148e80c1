//! `run --policy-ref NS/NAME` (CronJob mode): one run of a policy resource with its Secret, the status written as
//! the controller writes it. With `--if-due`, only when the policy's own schedule makes a run due.

use super::args::RunArgs;
use super::{CliError, kube_client, print_report};
use crate::k8s::events::recorder;
use crate::k8s::inputs::StartError;
use crate::k8s::policy_run::{self, PolicyRunContext, PolicyRunOutcome, Trigger};
use crate::k8s::scheduling::{Due, due};
use crate::policy::Permissions;
use crate::policy::{LicenseCleanupPolicy, RunResult};
use crate::schedule::Schedule;
use crate::shutdown::Shutdown;

pub(super) async fn run(args: RunArgs) -> Result<RunResult, CliError> {
    let reference = args.policy_ref.clone().unwrap_or_default();
    let (namespace, name) = super::namespaced_name("--policy-ref", &reference)?;
    let client = kube_client().await?;
    let api: kube::Api<LicenseCleanupPolicy> = kube::Api::namespaced(client.clone(), namespace);
    let policy = crate::k8s::get_named(&api, namespace, name)
        .await
        .map_err(CliError::Failed)?
        .ok_or_else(|| {
            CliError::Invalid(format!("LicenseCleanupPolicy {namespace}/{name} not found"))
        })?;
    let trigger = if args.if_due {
        match due_trigger(&policy) {
            Ok(trigger) => trigger,
            Err(why) => {
                eprintln!("LicenseCleanupPolicy {namespace}/{name}: {why}: nothing was done");
                return Ok(RunResult::Succeeded);
            }
        }
    } else {
        Trigger::Manual
    };
    let recorder = recorder(&client);
    let run = PolicyRunContext {
        client: &client,
        recorder: &recorder,
        metrics: None,
        force_dry_run: args.dry_run,
        shutdown: Some(Shutdown::on_signals()),
        trigger,
        permissions: Permissions {
            allow_insecure_skip_verify: args.allow_insecure_skip_verify,
        },
    };
    match policy_run::run_policy(namespace, name, run).await {
        Ok(PolicyRunOutcome::Ran(report)) => {
            print_report(&report, args.output);
            Ok(report.result)
        }
        Ok(PolicyRunOutcome::AlreadyAnswered) => Ok(RunResult::Succeeded),
        Ok(PolicyRunOutcome::Busy { holder }) => {
            eprintln!(
                "LicenseCleanupPolicy {namespace}/{name} is being run by {holder} (status.activeRun): nothing was done"
            );
            Ok(RunResult::Succeeded)
        }
        Ok(PolicyRunOutcome::Suspended) => {
            eprintln!(
                "LicenseCleanupPolicy {namespace}/{name} is suspended (spec.suspend): nothing was done"
            );
            Ok(RunResult::Succeeded)
        }
        Err(StartError::Api(message)) => Err(CliError::Failed(message)),
        Err(e) => Err(CliError::Invalid(e.to_string())),
    }
}

/// The trigger a due run answers (so that the controller and a CronJob never both run one instant), or why
/// nothing is due. A schedule that cannot be used is left for the run to report (Ready=False, exit 2).
fn due_trigger(policy: &LicenseCleanupPolicy) -> Result<Trigger, String> {
    let Ok(schedule) = Schedule::parse(&policy.spec.schedule, &policy.spec.time_zone) else {
        return Ok(Trigger::Manual);
    };
    let now = jiff::Timestamp::now();
    match due(policy, &schedule, now) {
        Due::Run {
            run_now: Some(value),
            ..
        } => Ok(Trigger::RunNow(value)),
        Due::Run { scheduled_for, .. } => Ok(Trigger::Scheduled(scheduled_for)),
        Due::SkipMissed { scheduled_for } => Err(format!(
            "the run due at {scheduled_for} was missed by more than startingDeadlineSeconds and is skipped"
        )),
        Due::Wait if policy.spec.suspend => Err("suspended (spec.suspend)".into()),
        Due::Wait => Err(match schedule.next_after(now) {
            Some(next) => format!("not due; next run at {next}"),
            None => "not due".into(),
        }),
    }
}
