//! The command line's arguments, as clap reads them.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use super::render::Format;

/// Reclaims Qlik Sense Enterprise licences from users who no longer use them.
#[derive(Parser)]
#[command(name = "qlik-license-reclaimer", version, about)]
pub(crate) struct Cli {
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Human, global = true, env = "LOG_FORMAT")]
    pub(crate) log_format: LogFormat,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Run a policy once and exit (laptop or CronJob).
    Run(RunArgs),
    /// Give back the seats a run reclaimed: from its JSON report on a laptop, or from its LicenseCleanupRun in a
    /// cluster.
    Restore(RestoreArgs),
    /// Print the CustomResourceDefinitions (LicenseCleanupPolicy, LicenseCleanupRun) as YAML.
    Crd,
    /// Run the bundled QRS simulator until interrupted.
    Simulate(SimulateArgs),
    /// Start the simulator, run a dry-run policy against it and print the report.
    Demo(DemoArgs),
    /// Watch LicenseCleanupPolicy resources and run each on its schedule.
    Controller(ControllerArgs),
}

#[derive(clap::Args)]
pub(crate) struct ControllerArgs {
    /// Watch only these namespaces (repeat the flag, or separate with commas; default: all namespaces).
    #[arg(long, env = "WATCH_NAMESPACE", value_delimiter = ',')]
    pub(crate) namespace: Vec<String>,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub(crate) metrics_addr: std::net::SocketAddr,
    /// Run policies only while holding the leader Lease (for more than one replica).
    #[arg(long)]
    pub(crate) leader_elect: bool,
    /// Name of the leader Lease.
    #[arg(long, default_value = "qlik-license-reclaimer")]
    pub(crate) lease_name: String,
    /// Namespace of the leader Lease (default: the pod's namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub(crate) lease_namespace: String,
    /// This replica's identity in the Lease (default: the pod name).
    #[arg(long, env = "POD_NAME")]
    pub(crate) identity: Option<String>,
    /// Seconds the Lease is valid without renewal; a standby takes over within this time.
    #[arg(long, default_value_t = 15)]
    pub(crate) lease_duration_seconds: u64,
    /// Let policies set site.tls.insecureSkipVerify (otherwise such a policy is not Ready and nothing is sent).
    #[arg(long, env = "ALLOW_INSECURE_SKIP_VERIFY")]
    pub(crate) allow_insecure_skip_verify: bool,
    /// Policies run at once; the others wait their turn. Each run holds its site's inactive allocations in
    /// memory (a few hundred bytes each), so this bounds the controller's memory with many policies.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub(crate) max_concurrent_runs: u16,
}

#[derive(clap::Args)]
pub(crate) struct RunArgs {
    /// A LicenseCleanupPolicy manifest (YAML or JSON).
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "policy_ref",
        requires = "credentials"
    )]
    pub(crate) policy: Option<PathBuf>,
    /// A folder shaped like the policy's Secret: client.pem, client_key.pem, root.pem, optional xrfkey.
    #[arg(long, value_name = "DIR")]
    pub(crate) credentials: Option<PathBuf>,
    /// In a cluster (CronJob mode): run the resource NAMESPACE/NAME with its Secret, and write its status.
    #[arg(long, value_name = "NS/NAME", conflicts_with_all = ["policy", "credentials"])]
    pub(crate) policy_ref: Option<String>,
    /// Report only, whatever the policy says.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// With --policy-ref: run only if the policy's own schedule (or a new run-now annotation) makes a run due,
    /// as the controller would; otherwise exit 0. A CronJob that looks often then follows the policy's schedule.
    #[arg(long, requires = "policy_ref")]
    pub(crate) if_due: bool,
    /// Report format on stdout.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub(crate) output: Format,
    /// Let the policy set site.tls.insecureSkipVerify (otherwise such a policy is invalid and nothing is sent).
    #[arg(long, env = "ALLOW_INSECURE_SKIP_VERIFY")]
    pub(crate) allow_insecure_skip_verify: bool,
    /// With --policy: what runs keep between them, as a policy's status does in a cluster (the pending notices of
    /// spec.notice, the users spec.rightSize moved to Analyzer), read and written back. Needed when the policy
    /// gives notice, or moves seats and is not a dry run.
    #[arg(long, value_name = "FILE", conflicts_with = "policy_ref")]
    pub(crate) state: Option<PathBuf>,
    /// With --policy: a folder holding the Secrets (and ConfigMap) the policy's notifications name, one folder per
    /// name, one file per key, as Kubernetes mounts them: DIR/<name>/<key>.
    #[arg(long, value_name = "DIR", conflicts_with = "policy_ref")]
    pub(crate) secrets: Option<PathBuf>,
}

#[derive(clap::Args)]
pub(crate) struct RestoreArgs {
    /// The run's JSON report (`run --output json`).
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "run",
        requires_all = ["policy", "credentials"]
    )]
    pub(crate) report: Option<PathBuf>,
    /// The policy manifest the run ran: it names the site and how to reach it.
    #[arg(long, value_name = "FILE")]
    pub(crate) policy: Option<PathBuf>,
    /// A folder shaped like the policy's Secret: client.pem, client_key.pem, root.pem, optional xrfkey.
    #[arg(long, value_name = "DIR")]
    pub(crate) credentials: Option<PathBuf>,
    /// In a cluster: the LicenseCleanupRun NAMESPACE/NAME. Its policy and Secret are used, and the outcome is
    /// written to its status.restore.
    #[arg(long, value_name = "NS/NAME", conflicts_with_all = ["report", "policy", "credentials"])]
    pub(crate) run: Option<String>,
    /// Show what would be given back; allocate nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Only this user's seats, as DIRECTORY\userId (repeat the flag for more).
    #[arg(long, value_name = "DIR\\ID")]
    pub(crate) user: Vec<String>,
    /// Output format on stdout.
    #[arg(long, value_enum, default_value_t = RestoreFormat::Table)]
    pub(crate) output: RestoreFormat,
    /// Let the policy set site.tls.insecureSkipVerify (otherwise such a policy is invalid and nothing is sent).
    #[arg(long, env = "ALLOW_INSECURE_SKIP_VERIFY")]
    pub(crate) allow_insecure_skip_verify: bool,
}

/// Output formats of `restore`.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum RestoreFormat {
    Table,
    Json,
}

#[derive(clap::Args)]
pub(crate) struct SimulateArgs {
    /// Users on the synthetic site.
    #[arg(long, default_value_t = 500)]
    pub(crate) users: usize,
    /// Seed of the synthetic site.
    #[arg(long, default_value_t = 42)]
    pub(crate) seed: u64,
    /// Port of the repository listener (like 4242); 0 picks a free one.
    #[arg(long, default_value_t = 4242)]
    pub(crate) port: u16,
    /// Latency added to every request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub(crate) latency_ms: u64,
    /// Also start a proxy (QPS) and hub listener, with this virtual proxy prefix ("" for the default proxy).
    #[arg(long, value_name = "PREFIX")]
    pub(crate) proxy: Option<String>,
    /// Host name in the server certificate (set tls.serverName to it).
    #[arg(long, default_value = "qlikserver1")]
    pub(crate) server_name: String,
    /// Where to write client.pem, client_key.pem and root.pem.
    #[arg(long, default_value = "qrs-simulator-credentials")]
    pub(crate) credentials_out: PathBuf,
}

#[derive(clap::Args)]
pub(crate) struct DemoArgs {
    /// Users on the simulated site.
    #[arg(long, default_value_t = 200)]
    pub(crate) users: usize,
    /// Seed of the simulated site.
    #[arg(long, default_value_t = 42)]
    pub(crate) seed: u64,
    /// Report format on stdout.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub(crate) output: Format,
}
