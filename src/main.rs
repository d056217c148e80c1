use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use kube::CustomResourceExt;
use qlik_license_reclaimer::cluster;
use qlik_license_reclaimer::credentials::Credentials;
use qlik_license_reclaimer::demo::{self, DemoOptions};
use qlik_license_reclaimer::policy::{LicenseCleanupPolicy, RunResult, check_known_fields};
use qlik_license_reclaimer::report::{self, Format};
use qlik_license_reclaimer::run::{self, Permissions, RunContext};
use qlik_license_reclaimer::schedule::Schedule;
use qrs_simulator::{ProxyConfig, Simulator, SimulatorConfig};

/// Exit codes of `run` (DESIGN.md section 4).
const EXIT_FAILED: u8 = 1;
const EXIT_INVALID: u8 = 2;
const EXIT_ABORTED: u8 = 3;

/// Reclaims Qlik Sense Enterprise licences from users who no longer use them.
#[derive(Parser)]
#[command(name = "qlik-license-reclaimer", version, about)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Human, global = true, env = "LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run a policy once and exit (laptop or CronJob).
    Run(RunArgs),
    /// Print the LicenseCleanupPolicy CustomResourceDefinition as YAML.
    Crd,
    /// Run the bundled QRS simulator until interrupted.
    Simulate(SimulateArgs),
    /// Start the simulator, run a dry-run policy against it and print the report.
    Demo(DemoArgs),
    /// Watch LicenseCleanupPolicy resources and run each on its schedule.
    Controller(ControllerArgs),
}

#[derive(clap::Args)]
struct ControllerArgs {
    /// Watch only these namespaces (repeat the flag, or separate with commas; default: all namespaces).
    #[arg(long, env = "WATCH_NAMESPACE", value_delimiter = ',')]
    namespace: Vec<String>,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:8080")]
    metrics_addr: std::net::SocketAddr,
    /// Run policies only while holding the leader Lease (for more than one replica).
    #[arg(long)]
    leader_elect: bool,
    /// Name of the leader Lease.
    #[arg(long, default_value = "qlik-license-reclaimer")]
    lease_name: String,
    /// Namespace of the leader Lease (default: the pod's namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// This replica's identity in the Lease (default: the pod name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Seconds the Lease is valid without renewal; a standby takes over within this time.
    #[arg(long, default_value_t = 15)]
    lease_duration_seconds: u64,
    /// Let policies set site.tls.insecureSkipVerify (otherwise such a policy is not Ready and nothing is sent).
    #[arg(long, env = "ALLOW_INSECURE_SKIP_VERIFY")]
    allow_insecure_skip_verify: bool,
    /// Policies run at once; the others wait their turn. Each run holds its site's inactive allocations in
    /// memory (a few hundred bytes each), so this bounds the controller's memory with many policies.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    max_concurrent_runs: u16,
}

#[derive(clap::Args)]
struct RunArgs {
    /// A LicenseCleanupPolicy manifest (YAML or JSON).
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "policy_ref",
        requires = "credentials"
    )]
    policy: Option<PathBuf>,
    /// A folder shaped like the policy's Secret: client.pem, client_key.pem, root.pem, optional xrfkey.
    #[arg(long, value_name = "DIR")]
    credentials: Option<PathBuf>,
    /// In a cluster (CronJob mode): run the resource NAMESPACE/NAME with its Secret, and write its status.
    #[arg(long, value_name = "NS/NAME", conflicts_with_all = ["policy", "credentials"])]
    policy_ref: Option<String>,
    /// Report only, whatever the policy says.
    #[arg(long)]
    dry_run: bool,
    /// With --policy-ref: run only if the policy's own schedule (or a new run-now annotation) makes a run due,
    /// as the controller would; otherwise exit 0. A CronJob that looks often then follows the policy's schedule.
    #[arg(long, requires = "policy_ref")]
    if_due: bool,
    /// Report format on stdout.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    output: Format,
    /// Let the policy set site.tls.insecureSkipVerify (otherwise such a policy is invalid and nothing is sent).
    #[arg(long, env = "ALLOW_INSECURE_SKIP_VERIFY")]
    allow_insecure_skip_verify: bool,
}

#[derive(clap::Args)]
struct SimulateArgs {
    /// Users on the synthetic site.
    #[arg(long, default_value_t = 500)]
    users: usize,
    /// Seed of the synthetic site.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Port of the repository listener (like 4242); 0 picks a free one.
    #[arg(long, default_value_t = 4242)]
    port: u16,
    /// Latency added to every request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Also start a proxy (QPS) and hub listener, with this virtual proxy prefix ("" for the default proxy).
    #[arg(long, value_name = "PREFIX")]
    proxy: Option<String>,
    /// Host name in the server certificate (set tls.serverName to it).
    #[arg(long, default_value = "qlikserver1")]
    server_name: String,
    /// Where to write client.pem, client_key.pem and root.pem.
    #[arg(long, default_value = "qrs-simulator-credentials")]
    credentials_out: PathBuf,
}

#[derive(clap::Args)]
struct DemoArgs {
    /// Users on the simulated site.
    #[arg(long, default_value_t = 200)]
    users: usize,
    /// Seed of the simulated site.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Report format on stdout.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    output: Format,
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,qlik_license_reclaimer=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    // reqwest and kube are built without a default TLS provider: install ring once, before any client exists.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match cli.command {
        Command::Run(args) if args.policy_ref.is_some() => run_ref(args).await,
        Command::Run(args) => run_file(args).await,
        Command::Controller(args) => controller(args).await,
        Command::Crd => match serde_yaml::to_string(&LicenseCleanupPolicy::crd()) {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Simulate(args) => simulate(args).await,
        Command::Demo(args) => {
            let options = DemoOptions {
                users: args.users,
                seed: args.seed,
            };
            match demo::run(&options).await {
                Ok(outcome) => {
                    if args.output == Format::Table {
                        print!("{}", outcome.introduction);
                    }
                    print!("{}", report::render(&outcome.report, args.output));
                    if args.output == Format::Table {
                        print!("{}", outcome.next_steps);
                    }
                    exit_code(outcome.report.result)
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(EXIT_FAILED)
                }
            }
        }
    }
}

/// The report on stdout, written as it is produced (a large site's JSON is never held whole).
fn print_report(report: &run::RunReport, format: Format) {
    use std::io::Write as _;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if let Err(e) = report::write(report, format, &mut out).and_then(|()| out.flush()) {
        tracing::error!("could not write the report: {e}");
    }
}

fn exit_code(result: RunResult) -> ExitCode {
    match result {
        RunResult::Succeeded => ExitCode::SUCCESS,
        RunResult::Failed => ExitCode::from(EXIT_FAILED),
        RunResult::Aborted => ExitCode::from(EXIT_ABORTED),
    }
}

fn invalid(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(EXIT_INVALID)
}

async fn run_file(args: RunArgs) -> ExitCode {
    let (Some(policy_path), Some(credentials_dir)) = (&args.policy, &args.credentials) else {
        return invalid("run needs --policy FILE and --credentials DIR, or --policy-ref NS/NAME");
    };
    let text = match std::fs::read_to_string(policy_path) {
        Ok(text) => text,
        Err(e) => {
            return invalid(format_args!(
                "cannot read the policy {}: {e}",
                policy_path.display()
            ));
        }
    };
    let policy = match parse_policy(&text) {
        Ok(policy) => policy,
        Err(e) => {
            return invalid(format_args!(
                "invalid policy {}: {e}",
                policy_path.display()
            ));
        }
    };
    if policy.spec.suspend {
        eprintln!(
            "the policy {} is suspended (spec.suspend): nothing was done",
            policy_path.display()
        );
        return ExitCode::SUCCESS;
    }
    let credentials = match Credentials::from_dir(credentials_dir) {
        Ok(c) => c,
        Err(e) => {
            return invalid(format_args!(
                "invalid credentials in {}: {e}",
                credentials_dir.display()
            ));
        }
    };
    // One run of a policy file at a time on this machine: an advisory lock the system drops with the process,
    // so a crashed run cannot keep it.
    let lock = match std::fs::File::open(policy_path) {
        Ok(file) => file,
        Err(e) => return invalid(format_args!("cannot open {}: {e}", policy_path.display())),
    };
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            eprintln!(
                "another run of {} is in progress: nothing was done",
                policy_path.display()
            );
            return ExitCode::SUCCESS;
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return invalid(format_args!("cannot lock {}: {e}", policy_path.display()));
        }
    }
    let stop_rx = stop_on_signal_or_change(policy_path.clone(), text.into_bytes());
    let ctx = RunContext {
        credentials: &credentials,
        force_dry_run: args.dry_run,
        now: jiff::Timestamp::now(),
        observer: None,
        stop: Some(stop_rx),
        retry: None,
        permissions: Permissions {
            allow_insecure_skip_verify: args.allow_insecure_skip_verify,
        },
    };
    match run::execute(&policy.spec, ctx).await {
        Ok(report) => {
            print_report(&report, args.output);
            if report.result != RunResult::Succeeded {
                tracing::error!(run = %report.id, result = report.result.as_str(), "{}", report.message);
            }
            exit_code(report.result)
        }
        Err(e) => invalid(e),
    }
}

/// How often `run --policy FILE` reads its file again while it may delete.
const POLICY_FILE_RECHECK: Duration = Duration::from_secs(2);

/// A stop for a run of a policy file: SIGTERM or SIGINT, or the file changed (or vanished) since the run read it.
/// The same promise as in the cluster: an administrator who edits the policy (to dry run, say) stops deletions.
fn stop_on_signal_or_change(
    path: PathBuf,
    read: Vec<u8>,
) -> tokio::sync::watch::Receiver<run::StopReason> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(None);
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(POLICY_FILE_RECHECK);
        let terminated = qlik_license_reclaimer::controller::termination();
        tokio::pin!(terminated);
        let reason = loop {
            tokio::select! {
                _ = &mut terminated => {
                    break "shutdown: SIGTERM or SIGINT".to_string();
                }
                _ = ticker.tick() => match tokio::fs::read(&path).await {
                    Ok(now) if now == read => {}
                    Ok(_) => break format!("the policy file {} changed during the run; run it again to follow the new version", path.display()),
                    Err(e) => break format!("the policy file {} cannot be read again ({e})", path.display()),
                },
            }
        };
        tracing::warn!("{reason}: no further seat is deallocated in this run");
        let _ = stop_tx.send(Some(reason));
    });
    stop_rx
}

/// A manifest as `kubectl apply` would take it: apiVersion and kind must be ours.
fn parse_policy(text: &str) -> Result<LicenseCleanupPolicy, String> {
    let value: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    let api_version = value
        .get("apiVersion")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    let kind = value
        .get("kind")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    if api_version != "licensing.reclaimer.dev/v1alpha1" || kind != "LicenseCleanupPolicy" {
        return Err(format!(
            "expected apiVersion licensing.reclaimer.dev/v1alpha1 and kind LicenseCleanupPolicy, found {api_version:?} and {kind:?}"
        ));
    }
    let json = serde_json::to_value(&value).map_err(|e| e.to_string())?;
    check_known_fields(&json).map_err(|e| e.to_string())?;
    serde_yaml::from_value(value).map_err(|e| e.to_string())
}

async fn simulate(args: SimulateArgs) -> ExitCode {
    let mut config = SimulatorConfig {
        seed: args.seed,
        users: args.users,
        latency: Duration::from_millis(args.latency_ms),
        server_name: args.server_name.clone(),
        ..SimulatorConfig::default()
    };
    if let Some(prefix) = &args.proxy {
        config.proxy = Some(ProxyConfig::new(prefix.clone()));
    }
    let simulator = match Simulator::start_on(config, args.port).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot start the simulator: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = simulator.write_credentials(&args.credentials_out) {
        eprintln!(
            "error: cannot write credentials to {}: {e}",
            args.credentials_out.display()
        );
        return ExitCode::FAILURE;
    }
    println!("QRS simulator: {} users (seed {})", args.users, args.seed);
    println!(
        "  repository (QRS, mutual TLS): {}",
        simulator.repository_url()
    );
    if let (Some(qps), Some(hub)) = (simulator.qps_url(), simulator.hub_url()) {
        println!("  proxy (QPS, mutual TLS):      {qps}");
        println!("  hub:                          {hub}");
    }
    println!(
        "  credentials:                  {}",
        args.credentials_out.display()
    );
    println!(
        "  server certificate name:      {} (set spec.site.tls.serverName)",
        args.server_name
    );
    println!("Press Ctrl-C to stop.");
    let _ = tokio::signal::ctrl_c().await;
    simulator.shutdown().await;
    ExitCode::SUCCESS
}

async fn kube_client() -> Result<kube::Client, ExitCode> {
    kube::Client::try_default().await.map_err(|e| {
        eprintln!("error: cannot connect to the Kubernetes API: {e}");
        ExitCode::from(EXIT_FAILED)
    })
}

/// CronJob mode: one run of a policy resource, status written like the controller does.
async fn run_ref(args: RunArgs) -> ExitCode {
    let reference = args.policy_ref.unwrap_or_default();
    let Some((namespace, name)) = reference
        .split_once('/')
        .filter(|(n, m)| !n.is_empty() && !m.is_empty())
    else {
        return invalid(format_args!(
            "--policy-ref {reference:?} must be NAMESPACE/NAME"
        ));
    };
    let client = match kube_client().await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let api: kube::Api<LicenseCleanupPolicy> = kube::Api::namespaced(client.clone(), namespace);
    let policy = match api.get_opt(name).await {
        Ok(Some(policy)) => policy,
        Ok(None) => {
            return invalid(format_args!(
                "LicenseCleanupPolicy {namespace}/{name} not found"
            ));
        }
        Err(e) => {
            eprintln!("error: cannot read LicenseCleanupPolicy {namespace}/{name}: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let trigger = if args.if_due {
        match due_trigger(&policy) {
            Ok(trigger) => trigger,
            Err(why) => {
                eprintln!("LicenseCleanupPolicy {namespace}/{name}: {why}: nothing was done");
                return ExitCode::SUCCESS;
            }
        }
    } else {
        cluster::Trigger::Manual
    };
    // SIGTERM (a Job past its deadline, or deleted) and SIGINT alike: no new deletions, in-flight ones finish,
    // the status records what was done.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        qlik_license_reclaimer::controller::termination().await;
        let _ = stop_tx.send(true);
    });
    let recorder = cluster::recorder(&client);
    let outcome = cluster::run_policy(
        namespace,
        name,
        cluster::PolicyRun {
            client: &client,
            recorder: &recorder,
            metrics: None,
            force_dry_run: args.dry_run,
            stop: Some(stop_rx),
            trigger,
            permissions: Permissions {
                allow_insecure_skip_verify: args.allow_insecure_skip_verify,
            },
        },
    )
    .await;
    match outcome {
        Ok(cluster::PolicyRunOutcome::Ran(report)) => {
            print_report(&report, args.output);
            exit_code(report.result)
        }
        Ok(cluster::PolicyRunOutcome::AlreadyAnswered) => ExitCode::SUCCESS,
        Ok(cluster::PolicyRunOutcome::Busy { holder }) => {
            eprintln!(
                "LicenseCleanupPolicy {namespace}/{name} is being run by {holder} (status.activeRun): nothing was done"
            );
            ExitCode::SUCCESS
        }
        Ok(cluster::PolicyRunOutcome::Suspended) => {
            eprintln!(
                "LicenseCleanupPolicy {namespace}/{name} is suspended (spec.suspend): nothing was done"
            );
            ExitCode::SUCCESS
        }
        Err(cluster::StartError::Api(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(EXIT_FAILED)
        }
        Err(e) => invalid(e),
    }
}

/// The trigger a due run answers (so that the controller and a CronJob never both run one instant), or why
/// nothing is due. A schedule that cannot be used is left for the run to report (Ready=False, exit 2).
fn due_trigger(policy: &LicenseCleanupPolicy) -> Result<cluster::Trigger, String> {
    use qlik_license_reclaimer::controller::{Decision, due};
    let Ok(schedule) = Schedule::parse(&policy.spec.schedule, &policy.spec.time_zone) else {
        return Ok(cluster::Trigger::Manual);
    };
    let now = jiff::Timestamp::now();
    match due(policy, &schedule, now) {
        Decision::Run {
            run_now: Some(value),
            ..
        } => Ok(cluster::Trigger::RunNow(value)),
        Decision::Run { scheduled_for, .. } => Ok(cluster::Trigger::Scheduled(scheduled_for)),
        Decision::SkipMissed { scheduled_for } => Err(format!(
            "the run due at {scheduled_for} was missed by more than startingDeadlineSeconds and is skipped"
        )),
        Decision::Wait if policy.spec.suspend => Err("suspended (spec.suspend)".into()),
        Decision::Wait => Err(match schedule.next_after(now) {
            Some(next) => format!("not due; next run at {next}"),
            None => "not due".into(),
        }),
    }
}

async fn controller(args: ControllerArgs) -> ExitCode {
    let client = match kube_client().await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let identity = args.identity.unwrap_or_else(|| {
        std::env::var("HOSTNAME")
            .unwrap_or_else(|_| format!("qlik-license-reclaimer-{}", std::process::id()))
    });
    let options = qlik_license_reclaimer::controller::ControllerOptions {
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
    match qlik_license_reclaimer::controller::run(client, options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
