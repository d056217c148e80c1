//! The command line: `run`, `restore`, `controller`, `crd`, `simulate` and `demo`. Every command returns one error type
//! that knows its exit code, so `main` stays a single call.

mod args;
mod notify_files;
mod render;
mod restore;
mod run_file;
mod run_ref;
mod simulate;

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser;
use kube::CustomResourceExt;

use crate::demo::{self, DemoOptions};
use crate::k8s::controller::{self, ControllerOptions};
use crate::policy::Permissions;
use crate::policy::{LicenseCleanupPolicy, RunResult};
use crate::record::LicenseCleanupRun;
use crate::run::RunReport;
use args::{Cli, Command, ControllerArgs, DemoArgs, LogFormat};
use render::Format;

/// Exit codes of `run` and `demo` (docs/cli.md).
const EXIT_FAILED: u8 = 1;
const EXIT_INVALID: u8 = 2;
const EXIT_ABORTED: u8 = 3;

/// Why a command did not do its job.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// Bad input (a policy, credentials, arguments): nothing was done. Exit 2.
    #[error("{0}")]
    Invalid(String),
    /// The command could not do its job (the API server unreachable, a port taken). Exit 1.
    #[error("{0}")]
    Failed(String),
}

impl CliError {
    fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Invalid(_) => ExitCode::from(EXIT_INVALID),
            CliError::Failed(_) => ExitCode::from(EXIT_FAILED),
        }
    }
}

/// How a command that ran a policy ended; `Succeeded` too when there was nothing to do.
fn exit_code(result: RunResult) -> ExitCode {
    match result {
        RunResult::Succeeded => ExitCode::SUCCESS,
        RunResult::Failed => ExitCode::from(EXIT_FAILED),
        RunResult::Aborted => ExitCode::from(EXIT_ABORTED),
    }
}

/// The program.
pub async fn main() -> ExitCode {
    // reqwest and kube are built without a default TLS provider: install ring once, before any client exists.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let outcome = match cli.command {
        Command::Run(args) if args.policy_ref.is_some() => run_ref::run(args).await,
        Command::Run(args) => run_file::run(args).await,
        Command::Controller(args) => run_controller(args).await,
        Command::Restore(args) => restore::run(args).await,
        Command::Crd => print_crd(),
        Command::Simulate(args) => simulate::run(args).await,
        Command::Demo(args) => run_demo(args).await,
    };
    match outcome {
        Ok(result) => exit_code(result),
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: {e}");
            e.exit_code()
        }
    }
}

/// Writes `text` to stdout. A reader that went away (`simulate | head -1`) or a stdout that cannot be written is not
/// a reason to stop: `print!` would panic there and take a serving simulator down with it. Only a failure other than
/// a closed pipe is logged.
pub(crate) fn print_out(text: &str) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush())
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        tracing::warn!("could not write to stdout: {e}");
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,qlik_license_reclaimer=info"));
    // A log line stderr cannot take is dropped: by default the subscriber reports it with `eprintln!`, which panics
    // on a closed stderr (`controller 2>&1 | head`) wherever the log line was, mid-deletion included.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// The report on stdout, written as it is produced (a large site's JSON is never held whole).
fn print_report(report: &RunReport, format: Format) {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if let Err(e) = render::write(report, format, &mut out).and_then(|()| out.flush()) {
        tracing::error!("could not write the report: {e}");
    }
}

/// The CustomResourceDefinitions as `crd` prints them (and deploy/crd.yaml holds them): the policy, then its runs.
pub fn crds_yaml() -> Result<String, serde_yaml::Error> {
    let policy = serde_yaml::to_string(&LicenseCleanupPolicy::crd())?;
    let run = serde_yaml::to_string(&LicenseCleanupRun::crd())?;
    Ok(format!("{policy}---\n{run}"))
}

fn print_crd() -> Result<RunResult, CliError> {
    let yaml = crds_yaml().map_err(|e| CliError::Failed(e.to_string()))?;
    print_out(&yaml);
    Ok(RunResult::Succeeded)
}

async fn run_demo(args: DemoArgs) -> Result<RunResult, CliError> {
    let options = DemoOptions {
        users: args.users,
        seed: args.seed,
    };
    let outcome = demo::run(&options)
        .await
        .map_err(|e| CliError::Failed(e.to_string()))?;
    if args.output == Format::Table {
        print_out(&outcome.introduction);
    }
    print_out(&render::render(&outcome.report, args.output));
    if args.output == Format::Table {
        print_out(&outcome.next_steps);
    }
    Ok(outcome.report.result)
}

/// A resource named as `NAMESPACE/NAME` on the command line (`flag` says where, for the error).
fn namespaced_name<'a>(flag: &str, reference: &'a str) -> Result<(&'a str, &'a str), CliError> {
    reference
        .split_once('/')
        .filter(|(n, m)| !n.is_empty() && !m.is_empty())
        .ok_or_else(|| CliError::Invalid(format!("{flag} {reference:?} must be NAMESPACE/NAME")))
}

async fn kube_client() -> Result<kube::Client, CliError> {
    kube::Client::try_default()
        .await
        .map_err(|e| CliError::Failed(format!("cannot connect to the Kubernetes API: {e}")))
}

async fn run_controller(args: ControllerArgs) -> Result<RunResult, CliError> {
    let client = kube_client().await?;
    let identity = args.identity.unwrap_or_else(|| {
        std::env::var("HOSTNAME")
            .unwrap_or_else(|_| format!("qlik-license-reclaimer-{}", std::process::id()))
    });
    let options = ControllerOptions {
        namespaces: args
            .namespace
            .into_iter()
            .filter(|n| !n.trim().is_empty())
            .collect(),
        metrics_addr: args.metrics_addr,
        leader_elect: args.leader_elect,
        lease_name: args.lease_name,
        lease_namespace: args.lease_namespace,
        identity,
        lease_duration_seconds: args.lease_duration_seconds,
        permissions: Permissions {
            allow_insecure_skip_verify: args.allow_insecure_skip_verify,
        },
        max_concurrent_runs: usize::from(args.max_concurrent_runs),
    };
    controller::run(client, options).await.map_err(|e| {
        tracing::error!("{e}");
        CliError::Failed(e.to_string())
    })?;
    Ok(RunResult::Succeeded)
}
