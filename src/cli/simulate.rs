//! `simulate`: the bundled QRS simulator on fixed ports until interrupted, with credentials written where a
//! `run --credentials` can read them.

use std::time::Duration;

use qrs_simulator::{ProxyConfig, Simulator, SimulatorConfig};

use super::CliError;
use super::args::SimulateArgs;
use crate::k8s::shutdown::Shutdown;
use crate::policy::RunResult;

pub(super) async fn run(args: SimulateArgs) -> Result<RunResult, CliError> {
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
    let shutdown = Shutdown::on_signals();
    let simulator = Simulator::start_on(config, args.port)
        .await
        .map_err(|e| CliError::Failed(format!("cannot start the simulator: {e}")))?;
    let out = args.credentials_out.display();
    simulator
        .write_credentials(&args.credentials_out)
        .map_err(|e| CliError::Failed(format!("cannot write credentials to {out}: {e}")))?;
    println!("QRS simulator: {} users (seed {})", args.users, args.seed);
    println!(
        "  repository (QRS, mutual TLS): {}",
        simulator.repository_url()
    );
    if let (Some(qps), Some(hub)) = (simulator.qps_url(), simulator.hub_url()) {
        println!("  proxy (QPS, mutual TLS):      {qps}");
        println!("  hub:                          {hub}");
    }
    println!("  credentials:                  {out}");
    println!(
        "  server certificate name:      {} (set spec.site.tls.serverName)",
        args.server_name
    );
    println!("Press Ctrl-C to stop.");
    shutdown.requested().await;
    simulator.shutdown().await;
    Ok(RunResult::Succeeded)
}
