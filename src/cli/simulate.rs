//! `simulate`: the bundled QRS simulator on fixed ports until interrupted, with credentials written where a
//! `run --credentials` can read them.

use std::time::Duration;

use qrs_simulator::{ProxyConfig, Simulator, SimulatorConfig};

use super::CliError;
use super::args::SimulateArgs;
use crate::policy::RunResult;
use crate::shutdown::Shutdown;

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
    // Written with `print_out`: a closed stdout (`simulate | head -1`, or a reader that took the URL and left) must
    // not stop the simulator that a run is about to use.
    let mut banner = format!(
        "QRS simulator: {} users (seed {})\n  repository (QRS, mutual TLS): {}\n",
        args.users,
        args.seed,
        simulator.repository_url()
    );
    if let (Some(qps), Some(hub)) = (simulator.qps_url(), simulator.hub_url()) {
        banner.push_str(&format!("  proxy (QPS, mutual TLS):      {qps}\n"));
        banner.push_str(&format!("  hub:                          {hub}\n"));
    }
    banner.push_str(&format!("  credentials:                  {out}\n"));
    banner.push_str(&format!(
        "  server certificate name:      {} (set spec.site.tls.serverName)\n",
        args.server_name
    ));
    banner.push_str("Press Ctrl-C to stop.\n");
    super::print_out(&banner);
    shutdown.requested().await;
    simulator.shutdown().await;
    Ok(RunResult::Succeeded)
}
