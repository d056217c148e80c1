//! The promises in the cluster, in every mode: a run stops deleting when its policy changes under it, `run
//! --policy-ref` honours `suspend` and SIGTERM like the controller, and `insecureSkipVerify` needs the operator.

use std::process::{Command, Stdio};
use std::time::Duration;

use kube::Api;
use kube::api::{Patch, PatchParams};
use libtest_mimic::Failed;
use qlik_license_reclaimer::policy::LicenseCleanupPolicy;
use qlik_license_reclaimer::record::{LicenseCleanupRun, RunRecord};
use qrs_simulator::Simulator;
use serde_json::json;

use crate::control_plane::ControlPlane;
use crate::operator::*;
use crate::{TestResult, register, run, support};

/// An enforcing policy "site" on a [`slow_site`] in a fresh namespace, with no breaker and two deletions at a
/// time; `suspend` as given.
async fn slow_policy(
    cp: &ControlPlane,
    prefix: &str,
    suspend: bool,
) -> Result<(kube::Client, Simulator, String), Failed> {
    let (admin, sim, namespace) =
        slow_site_namespace(cp, prefix, Duration::from_millis(300)).await?;
    let mut spec = support::per_seat_policy(&sim);
    spec.limits.max_reclaim_percent = 100;
    spec.site.concurrency = 2;
    spec.suspend = suspend;
    create_policy(&admin, &namespace, "site", spec).await?;
    Ok((admin, sim, namespace))
}

/// DELETEs that reached the simulator, counted as they arrive: a client that dropped one mid-way would show
/// more arrivals than completed deletions.
fn qrs_deletes(sim: &Simulator) -> usize {
    sim.qrs_delete_arrivals()
}

/// A [`slow_policy`] in a fresh namespace, asked to run by a controller and seen mid-way: its first DELETE has
/// arrived.
async fn slow_run_under_way(
    cp: &ControlPlane,
    prefix: &str,
) -> Result<(kube::Client, Simulator, String, ControllerProcess), Failed> {
    let (admin, sim, namespace) = slow_policy(cp, prefix, false).await?;
    let controller = ControllerProcess::start(cp, &namespace, &[])?;
    run_now(&admin, &namespace, "site", "1").await?;
    first_delete(&sim, || controller.log()).await?;
    Ok((admin, sim, namespace, controller))
}

async fn first_delete(sim: &Simulator, log: impl Fn() -> String) -> Result<(), Failed> {
    let started = async {
        while qrs_deletes(sim) == 0 && sim.deletions().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), started)
        .await
        .map_err(|_| format!("no deletion started; log:\n{}", log()).into())
}

/// Every DELETE that reached QRS finished, and the run's status counts each of them.
fn every_delete_finished_and_recorded(
    sim: &Simulator,
    last: &qlik_license_reclaimer::policy::RunStatus,
) -> TestResult {
    every_delete_finished_and_counted(sim, last.header.totals.reclaimed, "in status")
}

/// Every DELETE that reached QRS finished, and `reclaimed` (a status's or a record's count, named by `place`) counts each.
pub(crate) fn every_delete_finished_and_counted(
    sim: &Simulator,
    reclaimed: u64,
    place: &str,
) -> TestResult {
    let sent = qrs_deletes(sim);
    if sent != sim.deletions().len() || sent as u64 != reclaimed {
        return Err(format!(
            "every DELETE sent must finish and be recorded: {sent} sent, {} done, {reclaimed} {place}",
            sim.deletions().len(),
        )
        .into());
    }
    Ok(())
}

/// The record of the namespace's one run, once the run has kept it (it does so as the run ends). No garbage
/// collector runs beside this API server, so the record of a deleted policy stays for the test to read.
pub(crate) async fn kept_record(
    admin: &kube::Client,
    namespace: &str,
    log: impl Fn() -> String,
) -> Result<RunRecord, Failed> {
    let runs: Api<LicenseCleanupRun> = Api::namespaced(admin.clone(), namespace);
    let kept = async {
        loop {
            let items = runs.list(&Default::default()).await?.items;
            if let Some(status) = items.into_iter().next().and_then(|r| r.status) {
                return Ok::<_, kube::Error>(status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    Ok(tokio::time::timeout(Duration::from_secs(60), kept)
        .await
        .map_err(|_| format!("the run kept no record; log:\n{}", log()))??)
}

fn last_run_message(p: &LicenseCleanupPolicy) -> Option<String> {
    p.status
        .as_ref()
        .and_then(|s| s.last_run.as_ref())
        .map(|r| r.header.message.clone())
}

fn a_switch_to_dry_run_mid_run_stops_its_deletions(cp: &ControlPlane) -> TestResult {
    ensure_installed(cp)?;
    run(cp, async {
        let (admin, sim, namespace, _controller) = slow_run_under_way(cp, "midrun").await?;
        patch_spec(&admin, &namespace, "site", json!({"dryRun": true})).await?;
        let policy = wait_for(&admin, &namespace, "site", "the run to end", |p| {
            last_run_message(p).is_some()
        })
        .await?;
        let message = last_run_message(&policy).unwrap_or_default();
        if !message.contains("switched to dry run") {
            return Err(format!("the status should say why the run stopped: {message}").into());
        }
        let last = policy
            .status
            .and_then(|s| s.last_run)
            .ok_or("no last run")?;
        let sent = qrs_deletes(&sim);
        // The run re-reads the policy every 2 s: 2 slots of 300 ms deletions get at most a few dozen through.
        if last.header.totals.reclaimed >= last.header.totals.candidates.min(100) || sent > 40 {
            return Err(
                format!("deletions went on after the switch: {sent} sent, {last:?}").into(),
            );
        }
        every_delete_finished_and_recorded(&sim, &last)
    })
}
register!(a_switch_to_dry_run_mid_run_stops_its_deletions);

/// `kubectl delete lcp` in a hurry, mid-run: no further seat is deallocated, the DELETEs already sent finish and
/// the run's record counts them, and the deleted policy's gauges do not come back when the run ends (a
/// `policy_ready` of 0 would keep an alert firing for a policy that is gone).
fn a_policy_deleted_mid_run_stops_its_deletions(cp: &ControlPlane) -> TestResult {
    ensure_installed(cp)?;
    run(cp, async {
        let (admin, sim, namespace, controller) = slow_run_under_way(cp, "gone").await?;
        let policies: Api<LicenseCleanupPolicy> = Api::namespaced(admin.clone(), &namespace);
        policies.delete("site", &Default::default()).await?;

        let record = kept_record(&admin, &namespace, || controller.log()).await?;
        let sent = qrs_deletes(&sim);
        if !record.header.message.contains("the policy was deleted") || sent > 40 {
            return Err(format!(
                "deletions went on after the policy was deleted: {sent} sent; {}",
                record.header.message
            )
            .into());
        }
        every_delete_finished_and_counted(&sim, record.header.totals.reclaimed, "in the record")?;

        // The run ends its bookkeeping just after the record: its gauges must be gone then, and stay gone.
        let gauges_left = || async {
            let metrics = http_get(controller.metrics_port, "/metrics").await?;
            let left: Vec<String> = metrics
                .lines()
                .filter(|l| {
                    !l.starts_with('#') && l.contains(&format!("namespace=\"{namespace}\""))
                })
                .filter(|l| {
                    [
                        "qlik_reclaimer_policy_ready",
                        "qlik_reclaimer_policy_dry_run",
                        "qlik_reclaimer_seats{",
                        "qlik_reclaimer_next_run",
                    ]
                    .iter()
                    .any(|gauge| l.starts_with(gauge))
                })
                .map(str::to_string)
                .collect();
            Ok::<_, Failed>(left)
        };
        let gone = async {
            while !controller
                .log()
                .contains("the policy was deleted during the run")
                || !gauges_left().await?.is_empty()
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok::<_, Failed>(())
        };
        if tokio::time::timeout(Duration::from_secs(20), gone)
            .await
            .is_err()
        {
            return Err(format!(
                "the deleted policy's gauges are still exported: {:#?}",
                gauges_left().await?
            )
            .into());
        }
        Ok(())
    })
}
register!(a_policy_deleted_mid_run_stops_its_deletions);

/// Deleted and created again under the same name, mid-run: the new policy starts at generation 1 as the old one
/// did, so only its uid tells it apart. The run stops as for an edit, and its outcome is not written into the new
/// policy's status.
fn a_policy_created_again_mid_run_stops_its_deletions(cp: &ControlPlane) -> TestResult {
    ensure_installed(cp)?;
    run(cp, async {
        let (admin, sim, namespace, controller) = slow_run_under_way(cp, "again").await?;
        let policies: Api<LicenseCleanupPolicy> = Api::namespaced(admin.clone(), &namespace);
        let spec = policies.get("site").await?.spec;
        policies.delete("site", &Default::default()).await?;
        create_policy(&admin, &namespace, "site", spec).await?;

        let record = kept_record(&admin, &namespace, || controller.log()).await?;
        let sent = qrs_deletes(&sim);
        // The watch reports the deletion first ("the policy was deleted"); a poll would have seen the new policy
        // ("deleted and created again"): either way the run stopped for the deletion.
        if !record.header.message.contains("deleted") || sent > 40 {
            return Err(format!(
                "deletions went on under a policy created again: {sent} sent; {}",
                record.header.message
            )
            .into());
        }
        every_delete_finished_and_counted(&sim, record.header.totals.reclaimed, "in the record")?;
        let new = policies.get("site").await?;
        if let Some(last) = new.status.and_then(|s| s.last_run) {
            return Err(
                format!("the new policy's status holds the old policy's run: {last:?}").into(),
            );
        }
        Ok(())
    })
}
register!(a_policy_created_again_mid_run_stops_its_deletions);

/// `run --policy-ref` as a CronJob's pod runs it, as the operator's ServiceAccount.
pub(crate) fn policy_ref_command(
    cp: &ControlPlane,
    reference: &str,
    dir: &tempfile::TempDir,
) -> Result<Command, Failed> {
    let kubeconfig = operator_kubeconfig(cp, dir)?;
    let mut command = Command::new(env!("CARGO_BIN_EXE_qlik-license-reclaimer"));
    command
        .args(["run", "--policy-ref", reference, "--output", "json"])
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "info,kube=warn");
    Ok(command)
}

fn run_policy_ref_honours_suspend_and_stops_on_sigterm(cp: &ControlPlane) -> TestResult {
    ensure_installed(cp)?;
    run(cp, async {
        let (admin, sim, namespace) = slow_policy(cp, "cronsig", true).await?;
        let dir = tempfile::tempdir()?;
        let reference = format!("{namespace}/site");

        // Suspended: nothing at all reaches Qlik.
        let mut command = policy_ref_command(cp, &reference, &dir)?;
        let output = tokio::task::spawn_blocking(move || command.output()).await??;
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        if output.status.code() != Some(0) || !stderr.contains("suspended") {
            return Err(format!(
                "a suspended policy: exit {:?}, {stderr}",
                output.status.code()
            )
            .into());
        }
        if !sim.requests().is_empty() {
            return Err("a suspended policy's run sent requests to Qlik".into());
        }

        // Resumed, then SIGTERM mid-run: in-flight deletions finish, the status records them.
        patch_spec(&admin, &namespace, "site", json!({"suspend": false})).await?;
        let mut command = policy_ref_command(cp, &reference, &dir)?;
        let child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let pid = child.id();
        first_delete(&sim, String::new).await?;
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(pid as i32, libc::SIGTERM);
        }
        let output = tokio::task::spawn_blocking(move || child.wait_with_output()).await??;
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        if output.status.code() != Some(1) {
            return Err(format!(
                "a stopped run exits 1 (it did not finish), got {:?}: {stderr}",
                output.status.code()
            )
            .into());
        }
        let api: Api<LicenseCleanupPolicy> = Api::namespaced(admin.clone(), &namespace);
        let policy = api.get("site").await?;
        let message = last_run_message(&policy).unwrap_or_default();
        if !message.contains("SIGTERM") {
            return Err(
                format!("the status should say the run was stopped: {message}; {stderr}").into(),
            );
        }
        if condition(&policy, "Running").is_some_and(|(status, _)| status == "True") {
            return Err("Running stays True after the run stopped".into());
        }
        let last = policy
            .status
            .and_then(|s| s.last_run)
            .ok_or("no last run")?;
        if qrs_deletes(&sim) == 0 {
            return Err("the run was stopped before any deletion".into());
        }
        every_delete_finished_and_recorded(&sim, &last)
    })
}
register!(run_policy_ref_honours_suspend_and_stops_on_sigterm);

fn insecure_skip_verify_needs_the_operator_and_urls_are_origins(cp: &ControlPlane) -> TestResult {
    ensure_installed(cp)?;
    run(cp, async {
        let (admin, sim, namespace) = known_site_namespace(cp, "insecure").await?;
        let api: Api<LicenseCleanupPolicy> = Api::namespaced(admin.clone(), &namespace);

        // Admission refuses a URL with a path or query.
        let mut spec = support::policy(&sim);
        spec.site.repository_url = Some(format!("{}/elsewhere?x=1", sim.repository_url()));
        let refused = api
            .create(
                &Default::default(),
                &LicenseCleanupPolicy::new("path", spec),
            )
            .await;
        match refused {
            Err(kube::Error::Api(e)) if e.message.contains("origin") => {}
            other => return Err(format!("a URL with a path was not refused: {other:?}").into()),
        }

        let mut spec = support::policy(&sim);
        spec.site.tls.insecure_skip_verify = true;
        create_policy(&admin, &namespace, "site", spec).await?;
        let controller = ControllerProcess::start(cp, &namespace, &[])?;
        run_now(&admin, &namespace, "site", "1").await?;
        let policy = wait_for(&admin, &namespace, "site", "Ready=False", |p| {
            ready_message(p).contains("insecureSkipVerify")
        })
        .await?;
        if condition(&policy, "Ready").is_none_or(|(status, _)| status != "False") {
            return Err(format!("expected Ready=False: {:?}", policy.status).into());
        }
        if !sim.requests().is_empty() {
            return Err(format!(
                "requests were sent without the operator's consent; log:\n{}",
                controller.log()
            )
            .into());
        }

        // With the operator's consent it runs, and says so in a condition and a metric.
        drop(controller);
        let controller =
            ControllerProcess::start(cp, &namespace, &["--allow-insecure-skip-verify"])?;
        wait_metrics_up(&controller).await?;
        run_now(&admin, &namespace, "site", "2").await?;
        let policy = wait_for(
            &admin,
            &namespace,
            "site",
            "a run without verification",
            |p| {
                p.status.as_ref().is_some_and(|s| s.last_run.is_some())
                    && condition(p, "TLSVerified").is_some_and(|(status, _)| status == "False")
            },
        )
        .await?;
        if condition(&policy, "Ready").is_none_or(|(status, _)| status != "True") {
            return Err(format!("allowed, the policy runs: {:?}", policy.status).into());
        }
        let metrics = controller.metrics().await?;
        let line = format!(
            "qlik_reclaimer_policy_tls_unverified{{namespace=\"{namespace}\",policy=\"site\"}} 1"
        );
        if !metrics.contains(&line) {
            return Err(format!("no {line} in /metrics").into());
        }
        Ok(())
    })
}
register!(insecure_skip_verify_needs_the_operator_and_urls_are_origins);

fn two_runners_never_run_a_policy_at_once(cp: &ControlPlane) -> TestResult {
    ensure_installed(cp)?;
    run(cp, async {
        let (admin, sim, namespace) = slow_policy(cp, "twice", false).await?;
        let api: Api<LicenseCleanupPolicy> = Api::namespaced(admin.clone(), &namespace);
        let dir = tempfile::tempdir()?;
        let reference = format!("{namespace}/site");
        let counts = |sim: &Simulator| {
            sim.requests()
                .iter()
                .filter(|r| r.path.ends_with("/count"))
                .count()
        };

        // The controller runs it; a CronJob's run meanwhile finds it held and does nothing.
        let mut controller = ControllerProcess::start(cp, &namespace, &[])?;
        run_now(&admin, &namespace, "site", "1").await?;
        first_delete(&sim, || controller.log()).await?;
        let held = api.get("site").await?;
        let holder = held
            .status
            .as_ref()
            .and_then(|s| s.active_run.as_ref())
            .map(|h| h.holder.clone())
            .ok_or("a running policy shows its hold in status.activeRun")?;
        let counted = counts(&sim);
        let mut command = policy_ref_command(cp, &reference, &dir)?;
        let output = tokio::task::spawn_blocking(move || command.output()).await??;
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        if output.status.code() != Some(0) || !stderr.contains("is being run by") {
            return Err(
                format!("a second runner: exit {:?}, {stderr}", output.status.code()).into(),
            );
        }
        if counts(&sim) != counted {
            return Err("the second runner read the site".into());
        }
        let code = controller.terminate().await?;
        if code != 0 {
            return Err(format!("controller exit {code}; log:\n{}", controller.log()).into());
        }
        let after = api.get("site").await?;
        if after
            .status
            .as_ref()
            .and_then(|s| s.active_run.as_ref())
            .is_some()
        {
            return Err(format!("the run of {holder} did not give the policy up").into());
        }

        // A runner that crashed holds the policy only until its hold runs out.
        let hold = |renewed: jiff::Timestamp| {
            json!({"status": {"activeRun": {
                "id": "crashed", "holder": "a-pod-that-died", "startTime": renewed.to_string(),
                "renewTime": renewed.to_string(), "holdSeconds": 30}}})
        };
        let now = jiff::Timestamp::now();
        api.patch_status("site", &PatchParams::default(), &Patch::Merge(&hold(now)))
            .await?;
        let mut command = policy_ref_command(cp, &reference, &dir)?;
        command.arg("--dry-run");
        let output = tokio::task::spawn_blocking(move || command.output()).await??;
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        if !stderr.contains("a-pod-that-died") {
            return Err(format!("a fresh hold must be honoured: {stderr}").into());
        }
        let stale = now - jiff::SignedDuration::from_secs(120);
        api.patch_status("site", &PatchParams::default(), &Patch::Merge(&hold(stale)))
            .await?;
        let mut command = policy_ref_command(cp, &reference, &dir)?;
        command.arg("--dry-run");
        let output = tokio::task::spawn_blocking(move || command.output()).await??;
        if output.status.code() != Some(0) || output.stdout.is_empty() {
            return Err(format!(
                "a void hold must not block: exit {:?}, {}",
                output.status.code(),
                String::from_utf8_lossy(&output.stderr)
            )
            .into());
        }
        Ok(())
    })
}
register!(two_runners_never_run_a_policy_at_once);

/// A TCP forwarder to the API server that can be cut: what sits behind it loses the API server while Qlik stays
/// reachable (a network partition, or an API server overloaded for that replica).
pub(crate) struct Partition {
    pub(crate) url: String,
    cut: tokio::sync::watch::Sender<bool>,
}

impl Partition {
    pub(crate) async fn start(api_server: &str) -> Result<Self, Failed> {
        let upstream = api_server.trim_start_matches("https://").to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("https://{}", listener.local_addr()?);
        let (cut, cut_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if *cut_rx.borrow() {
                    continue;
                }
                let upstream = upstream.clone();
                let mut cut_rx = cut_rx.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut_rx.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Ok(Self { url, cut })
    }

    pub(crate) fn cut(&self) {
        let _ = self.cut.send(true);
    }
}

fn a_leader_cut_off_from_the_api_server_stops_before_another_takes_over(
    cp: &ControlPlane,
) -> TestResult {
    ensure_installed(cp)?;
    run(cp, async {
        // 60 deletions one at a time, 200 ms each: replica-a is still deleting when it notices the cut.
        let (admin, sim, namespace) =
            slow_site_namespace(cp, "partition", Duration::from_millis(200)).await?;
        let mut spec = support::per_seat_policy(&sim);
        spec.limits.max_reclaim_percent = 100;
        spec.limits.max_reclaims_per_run = 60;
        spec.site.concurrency = 1;
        create_policy(&admin, &namespace, "site", spec).await?;
        let lease_name = format!("lease-{namespace}");
        let args = |identity: &str| {
            vec![
                "controller".to_string(),
                "--namespace".into(),
                namespace.clone(),
                "--leader-elect".into(),
                "--lease-name".into(),
                lease_name.clone(),
                "--lease-namespace".into(),
                "qlik-license-reclaimer".into(),
                "--identity".into(),
                identity.into(),
                "--lease-duration-seconds".into(),
                "3".into(),
            ]
        };
        // A replica of the controller, reaching the API server through `through` when given.
        let replica = |identity: &str, through: Option<&str>| {
            let args = args(identity);
            ControllerProcess::start_through(
                cp,
                through,
                SERVICE_ACCOUNT_USER,
                SERVICE_ACCOUNT_GROUPS,
                &args.iter().map(String::as_str).collect::<Vec<_>>(),
                &[("POD_NAME", identity)],
            )
        };
        let partition = Partition::start(cp.server_url()).await?;
        let a = replica("replica-a", Some(&partition.url))?;
        wait_metrics_up(&a).await?;
        run_now(&admin, &namespace, "site", "1").await?;
        first_delete(&sim, || a.log()).await?;

        // The leader loses the API server mid-run; a standby takes the Lease and is asked to run the policy.
        partition.cut();
        let b = replica("replica-b", None)?;
        wait_metrics_up(&b).await?;
        run_now(&admin, &namespace, "site", "2").await?;
        wait_for(&admin, &namespace, "site", "a run by the new leader", |p| {
            p.status.as_ref().is_some_and(|s| {
                s.last_run_now.as_deref() == Some("2")
                    && s.active_run.is_none()
                    && s.last_run.is_some()
            })
        })
        .await
        .map_err(|e| format!("{e:?}; replica-b log:\n{}", b.log()))?;

        // No overlap: at no instant were two DELETEs in flight (each run deletes one at a time).
        let done: std::collections::HashMap<String, jiff::Timestamp> = sim
            .deletions()
            .into_iter()
            .map(|d| (d.allocation_id.to_string(), d.at))
            .collect();
        let mut edges: Vec<(jiff::Timestamp, i32)> = Vec::new();
        for arrival in sim.arrivals() {
            if arrival.method != "DELETE" || !arrival.path.contains("/qrs/") {
                continue;
            }
            let id = arrival
                .path
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_string();
            let end = done
                .get(&id)
                .copied()
                .ok_or("a DELETE that never completed")?;
            edges.push((arrival.at, 1));
            edges.push((end, -1));
        }
        edges.sort();
        let (mut in_flight, mut most) = (0, 0);
        for (_, change) in edges {
            in_flight += change;
            most = most.max(in_flight);
        }
        if most > 1 {
            return Err(format!(
                "the two replicas deleted at the same time ({most} DELETEs in flight); replica-a log:\n{}",
                a.log()
            )
            .into());
        }
        if !a.log().contains("no further seat is deallocated") {
            return Err(format!("replica-a did not stop; log:\n{}", a.log()).into());
        }
        Ok(())
    })
}
register!(a_leader_cut_off_from_the_api_server_stops_before_another_takes_over);

fn slow_clients_cannot_starve_the_probes(cp: &ControlPlane) -> TestResult {
    ensure_installed(cp)?;
    run(cp, async {
        let (_admin, _sim, namespace) = known_site_namespace(cp, "probes").await?;
        let controller = ControllerProcess::start(cp, &namespace, &[])?;
        wait_metrics_up(&controller).await?;
        // Far more idle connections than the server serves at once, none of them sending a request.
        let mut idle = Vec::new();
        for _ in 0..100 {
            idle.push(
                tokio::net::TcpStream::connect(("127.0.0.1", controller.metrics_port)).await?,
            );
        }
        // The probe answers within a few seconds (the kubelet retries, as this loop does).
        let probe = async {
            loop {
                if http_get(controller.metrics_port, "/healthz").await.is_ok() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), probe)
            .await
            .map_err(|_| "/healthz did not answer within 10 s behind 100 idle connections")?;
        // And the idle connections are closed by the server, not held forever.
        for mut stream in idle {
            use tokio::io::AsyncReadExt;
            let mut buf = [0u8; 64];
            let closed = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await;
            match closed {
                Ok(Ok(_)) | Ok(Err(_)) => {}
                Err(_) => return Err("an idle connection was still open after 10 s".into()),
            }
        }
        Ok(())
    })
}
register!(slow_clients_cannot_starve_the_probes);

fn two_hundred_policies_on_one_controller_all_run_within_memory(cp: &ControlPlane) -> TestResult {
    ensure_installed(cp)?;
    run(cp, async {
        let (admin, sim, namespace) = known_site_namespace(cp, "many").await?;
        const POLICIES: usize = 200;
        let spec = support::dry_run_policy(&sim);
        for i in 0..POLICIES {
            create_policy(&admin, &namespace, &format!("p{i:03}"), spec.clone()).await?;
        }
        let controller = ControllerProcess::start(cp, &namespace, &[])?;
        wait_metrics_up(&controller).await?;
        for i in 0..POLICIES {
            run_now(&admin, &namespace, &format!("p{i:03}"), "1").await?;
        }
        let api: Api<LicenseCleanupPolicy> = Api::namespaced(admin.clone(), &namespace);
        let all_ran = async {
            loop {
                let list = api.list(&Default::default()).await?;
                let done = list
                    .items
                    .iter()
                    .filter(|p| {
                        p.status.as_ref().is_some_and(|s| {
                            s.last_run_now.as_deref() == Some("1")
                                && s.last_run.is_some()
                                && s.active_run.is_none()
                        })
                    })
                    .count();
                if done == POLICIES {
                    return Ok::<_, Failed>(());
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(100), all_ran)
            .await
            .map_err(|_| {
                format!(
                    "not every policy ran; log tail:\n{}",
                    tail(&controller.log())
                )
            })??;
        // Peak resident memory of the controller over the whole test, against the chart's 128 MiB limit.
        let status = std::fs::read_to_string(format!("/proc/{}/status", controller.pid()))?;
        let peak_kib: u64 = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .ok_or("no VmHWM")?;
        eprintln!(
            "200 policies: controller peak resident memory {} MiB",
            peak_kib / 1024
        );
        if peak_kib > 128 * 1024 {
            return Err(
                format!("peak resident memory {peak_kib} KiB exceeds the chart's 128 MiB").into(),
            );
        }
        Ok(())
    })
}
register!(two_hundred_policies_on_one_controller_all_run_within_memory);

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

fn a_misspelt_field_kubectl_recorded_makes_the_policy_not_ready(cp: &ControlPlane) -> TestResult {
    ensure_installed(cp)?;
    run(cp, async {
        let (admin, sim, namespace) = known_site_namespace(cp, "typo").await?;
        // What `kubectl apply` records of a manifest with `exlcude:`; the API server itself dropped the field.
        let spec = support::policy(&sim);
        let mut manifest = serde_json::to_value(LicenseCleanupPolicy::new("site", spec.clone()))?;
        let exclude = manifest["spec"]["exclude"].take();
        manifest["spec"]
            .as_object_mut()
            .ok_or("spec is an object")?
            .insert("exlcude".into(), exclude);
        let mut policy = LicenseCleanupPolicy::new("site", spec);
        policy.metadata.annotations = Some(
            [(
                "kubectl.kubernetes.io/last-applied-configuration".to_string(),
                manifest.to_string(),
            )]
            .into(),
        );
        let api: Api<LicenseCleanupPolicy> = Api::namespaced(admin.clone(), &namespace);
        api.create(&Default::default(), &policy).await?;
        let controller = ControllerProcess::start(cp, &namespace, &[])?;
        run_now(&admin, &namespace, "site", "1").await?;
        wait_for(
            &admin,
            &namespace,
            "site",
            "Ready=False for the typo",
            |p| ready_message(p).contains("did you mean \"exclude\""),
        )
        .await
        .map_err(|e| format!("{e:?}; log:\n{}", controller.log()))?;
        if !sim.requests().is_empty() {
            return Err("a policy with a misspelt field reached Qlik".into());
        }
        Ok(())
    })
}
register!(a_misspelt_field_kubectl_recorded_makes_the_policy_not_ready);
