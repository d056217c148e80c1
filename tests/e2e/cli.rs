//! The command line, as a person or a CronJob runs it, against the simulator.

use std::path::Path;

use qrs_simulator::Simulator;
use serde_json::Value;

use crate::support::*;

fn manifest(spec: &qlik_license_reclaimer::policy::LicenseCleanupPolicySpec) -> String {
    let policy = qlik_license_reclaimer::policy::LicenseCleanupPolicy::new("test", spec.clone());
    serde_yaml::to_string(&policy).unwrap()
}

struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new(sim: &Simulator, policy_yaml: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        sim.write_credentials(&dir.path().join("creds")).unwrap();
        std::fs::write(dir.path().join("policy.yaml"), policy_yaml).unwrap();
        Self { dir }
    }
    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
    fn args(&self, extra: &[&str]) -> Vec<String> {
        let mut args = vec![
            "run".to_string(),
            "--policy".into(),
            self.path("policy.yaml"),
            "--credentials".into(),
            self.path("creds"),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }
}

fn json(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_lists_candidates_with_reasons_and_deletes_nothing() {
    let sim = known_site().await;
    let spec = dry_run_policy(&sim);
    let files = Files::new(&sim, &manifest(&spec));
    let out = reclaimer(files.args(&["--output", "json"])).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report = json(&out.stdout);
    assert_eq!(report["result"], "Succeeded");
    assert_eq!(report["dryRun"], true);
    // The JSON report is the run's record: the seats it would take, the kept ones counted by reason.
    let would: Vec<_> = report["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["action"] == "WouldReclaim")
        .collect();
    assert_eq!(would.len(), 2);
    assert_eq!(report["decisions"].as_array().unwrap().len(), 2);
    assert_eq!(report["kept"]["excluded"], 4, "{report}");
    for d in &would {
        for field in [
            "user",
            "accessType",
            "allocationId",
            "lastUsed",
            "reason",
            "rule",
        ] {
            assert!(d[field].is_string(), "{field} missing in {d}");
        }
    }
    assert_eq!(would[0]["user"], "CORP\\alice");
    assert_eq!(would[0]["reason"], "not used for 90 days (threshold 30)");
    assert_eq!(would[1]["lastUsed"], "never");
    assert!(sim.deletions().is_empty());

    let table = reclaimer(files.args(&[])).await;
    assert_eq!(table.code, 0);
    assert!(
        table.stdout.contains("Would reclaim (2)"),
        "{}",
        table.stdout
    );
    assert!(
        table.stdout.to_lowercase().contains("excluded: tag vip"),
        "{}",
        table.stdout
    );
    assert!(sim.deletions().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_flag_overrides_an_enforcing_policy() {
    let sim = known_site().await;
    let files = Files::new(&sim, &manifest(&policy(&sim)));
    let out = reclaimer(files.args(&["--dry-run", "--output", "csv"])).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(sim.deletions().is_empty());
    let mut lines = out.stdout.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("user,user_name,access_type,allocation_id,last_used")
    );
    let would = out
        .stdout
        .lines()
        .filter(|l| l.contains(",would-reclaim,"))
        .count();
    assert_eq!(would, 2, "{}", out.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforcing_deletes_exactly_the_expected_seats() {
    let sim = known_site().await;
    let files = Files::new(&sim, &manifest(&policy(&sim)));
    let out = reclaimer(files.args(&["--output", "json"])).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(deleted(&sim), expected_reclaims());
    let report = json(&out.stdout);
    assert_eq!(report["totals"]["reclaimed"], 2);
    // The seats are gone from the site.
    let remaining = sim
        .site()
        .allocations(qrs_simulator::SimAccessType::Professional);
    assert!(remaining.iter().all(|a| a.user_id != "alice"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_exits_3_and_the_cap_holds() {
    let sim = known_site().await;
    let mut spec = policy(&sim);
    spec.limits.max_reclaim_percent = 10;
    let files = Files::new(&sim, &manifest(&spec));
    let out = reclaimer(files.args(&[])).await;
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("Result: Aborted"), "{}", out.stdout);
    assert_eq!(sim.qrs_delete_arrivals(), 0, "no DELETE reached QRS");

    let mut spec = policy(&sim);
    spec.limits.max_reclaims_per_run = 1;
    let files = Files::new(&sim, &manifest(&spec));
    let out = reclaimer(files.args(&[])).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(sim.deletions().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_input_exits_2_before_any_request() {
    let sim = known_site().await;
    let good = manifest(&policy(&sim));

    let cases: Vec<(String, &str)> = vec![
        (
            good.replace("inactiveDays: 30", "inactiveDays: 3"),
            "spec.accessTypes",
        ),
        (
            good.replace("internal\\SA_*", "sa_nobackslash"),
            "spec.exclude.users[0]",
        ),
        (
            good.replace("schedule: 0 3 * * *", "schedule: every day"),
            "spec.schedule",
        ),
        (
            good.replace("kind: LicenseCleanupPolicy", "kind: Deployment"),
            "kind",
        ),
        ("spec: [unclosed".to_string(), "invalid policy"),
        // A typo must not drop a promise: the exclusions would silently be gone.
        (
            good.replace("  exclude:", "  exlcude:"),
            "spec.exlcude: unknown field \"exlcude\"; did you mean \"exclude\"?",
        ),
        (
            good.replace("    tags:", "    tag:"),
            "spec.exclude.tag: unknown field \"tag\"; did you mean \"tags\"?",
        ),
        (
            good.replace("  dryRun: false", "  dryrun: false"),
            "did you mean \"dryRun\"?",
        ),
        // A value of the wrong type names its field, not only the type it should have been.
        (
            good.replace("inactiveDays: 30", "inactiveDays: -30"),
            "spec.accessTypes.professional.inactiveDays: invalid value: integer `-30`, expected u32",
        ),
        (
            good.replace("  dryRun: false", "  dryRun: \"false\""),
            "spec.dryRun: invalid type: string \"false\", expected a boolean",
        ),
        // Policy URLs are origins: a path or query would send requests (and the xrfkey) elsewhere.
        (
            good.replace(
                &sim.repository_url(),
                &format!("{}/evil?x=1", sim.repository_url()),
            ),
            "spec.site.repositoryUrl",
        ),
        (
            good.replace(
                &sim.repository_url(),
                &format!(
                    "https://user@{}",
                    sim.repository_url().trim_start_matches("https://")
                ),
            ),
            "must be an origin",
        ),
        // Skipping verification is the operator's decision, not the policy author's.
        (
            good.replace("insecureSkipVerify: false", "insecureSkipVerify: true"),
            "spec.site.tls.insecureSkipVerify: is not allowed",
        ),
    ];
    for (yaml, expected) in cases {
        assert_ne!(yaml, good, "the case must change the policy ({expected})");
        let files = Files::new(&sim, &yaml);
        let out = reclaimer(files.args(&[])).await;
        assert_eq!(out.code, 2, "{expected}: {}", out.stderr);
        assert!(
            out.stderr.contains(expected),
            "expected {expected:?} in: {}",
            out.stderr
        );
    }

    // A key whose line breaks were lost is diagnosed, and not one 16-character run of it is repeated.
    let files = Files::new(&sim, &good);
    let key_path = Path::new(&files.path("creds")).join("client_key.pem");
    let key = std::fs::read_to_string(&key_path).unwrap();
    std::fs::write(&key_path, key.replace('\n', "")).unwrap();
    let out = reclaimer(files.args(&[])).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("lost its line breaks"),
        "{}",
        out.stderr
    );
    let body: Vec<char> = key
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<String>()
        .chars()
        .collect();
    for run in body.windows(16) {
        let run: String = run.iter().collect();
        assert!(!out.stderr.contains(&run), "the key leaked: {}", out.stderr);
    }

    // Broken credentials name the file.
    let files = Files::new(&sim, &good);
    std::fs::write(
        Path::new(&files.path("creds")).join("client_key.pem"),
        "not a key",
    )
    .unwrap();
    let out = reclaimer(files.args(&[])).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("client_key.pem"), "{}", out.stderr);

    let files = Files::new(&sim, &good);
    std::fs::write(Path::new(&files.path("creds")).join("xrfkey"), "short").unwrap();
    let out = reclaimer(files.args(&[])).await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("xrfkey"), "{}", out.stderr);

    let files = Files::new(&sim, &good);
    std::fs::remove_file(Path::new(&files.path("creds")).join("root.pem")).unwrap();
    let out = reclaimer(files.args(&[])).await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("root.pem is missing"), "{}", out.stderr);

    // A wrong path, to a file with no end, is refused after a Secret's worth of bytes instead of filling memory:
    // as a certificate, as the policy.
    let files = Files::new(&sim, &good);
    let cert = Path::new(&files.path("creds")).join("client.pem");
    std::fs::remove_file(&cert).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &cert).unwrap();
    let out = reclaimer(files.args(&[])).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("client.pem: holds more than 1048576 bytes"),
        "{}",
        out.stderr
    );
    let files = Files::new(&sim, &good);
    let policy_file = files.path("policy.yaml");
    std::fs::remove_file(&policy_file).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &policy_file).unwrap();
    let out = reclaimer(files.args(&[])).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("holds more than"), "{}", out.stderr);

    assert!(
        sim.requests().is_empty(),
        "invalid input must not reach Qlik"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_exit_1() {
    // Unreachable: a port nothing listens on.
    let sim = known_site().await;
    let mut spec = policy(&sim);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    spec.site.repository_url = Some(format!("https://127.0.0.1:{port}"));
    spec.site.request_timeout_seconds = 2;
    let files = Files::new(&sim, &manifest(&spec));
    let xrfkey = "SecretXrfKey0001";
    std::fs::write(Path::new(&files.path("creds")).join("xrfkey"), xrfkey).unwrap();
    let out = reclaimer(files.args(&[])).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stdout.contains("cannot reach Qlik"), "{}", out.stdout);
    assert!(
        !out.stdout.contains(xrfkey) && !out.stderr.contains(xrfkey),
        "the Secret's xrfkey leaked into the output"
    );

    // TLS: the wrong client certificate.
    let spec = policy(&sim);
    let files = Files::new(&sim, &manifest(&spec));
    let pki = sim.pki();
    std::fs::write(
        Path::new(&files.path("creds")).join("client.pem"),
        &pki.wrong_client_pem,
    )
    .unwrap();
    std::fs::write(
        Path::new(&files.path("creds")).join("client_key.pem"),
        &pki.wrong_client_key_pem,
    )
    .unwrap();
    let out = reclaimer(files.args(&[])).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(sim.deletions().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_runs_with_no_arguments() {
    let out = reclaimer(vec!["demo".into()]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("DRY RUN"));
    assert!(out.stdout.contains("Would reclaim ("), "{}", out.stdout);
    assert!(out.stdout.contains("Kept ("), "{}", out.stdout);
    assert!(out.stdout.contains("Result: Succeeded"), "{}", out.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_serves_a_site_that_run_can_use() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("creds");
    let mut child =
        std::process::Command::new(assert_cmd::cargo::cargo_bin("qlik-license-reclaimer"))
            .args([
                "simulate",
                "--port",
                "0",
                "--users",
                "300",
                "--seed",
                "5",
                "--credentials-out",
            ])
            .arg(&creds)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
    // The simulator prints its address once it listens. Its stdout is read to the end, on a thread of its own, for
    // as long as it runs: the test never closes the pipe while the simulator may still write to it.
    let stdout = child.stdout.take().unwrap();
    let (found, url) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut found = Some(found);
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some((_, u)) = line.split_once("repository (QRS, mutual TLS): ")
                && let Some(found) = found.take()
            {
                let _ = found.send(u.trim().to_string());
            }
        }
    });
    let url = tokio::task::spawn_blocking(move || {
        url.recv_timeout(std::time::Duration::from_secs(120)).ok()
    })
    .await
    .unwrap();
    let url = url.expect("the simulator printed its URL");
    let out = run_against_simulate(dir.path(), &url, &creds).await;
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report = json(&out.stdout);
    assert_eq!(report["dryRun"], true, "dry run is the default");
    assert!(
        report["totals"]["candidates"].as_u64().unwrap() > 0,
        "{}",
        out.stdout
    );
}

/// `run --output json` of a dry-run policy on the site `simulate` serves at `url`.
async fn run_against_simulate(dir: &Path, url: &str, creds: &Path) -> Exited {
    let policy = format!(
        "apiVersion: licensing.reclaimer.dev/v1alpha1\nkind: LicenseCleanupPolicy\nmetadata: {{name: sim}}\nspec:\n  schedule: '@daily'\n  site:\n    repositoryUrl: {url}\n    credentialsSecretRef: {{name: x}}\n    tls: {{serverName: qlikserver1}}\n  accessTypes:\n    professional: {{inactiveDays: 30}}\n    analyzer: {{inactiveDays: 30}}\n"
    );
    std::fs::write(dir.join("policy.yaml"), policy).unwrap();
    reclaimer(vec![
        "run".into(),
        "--policy".into(),
        dir.join("policy.yaml").display().to_string(),
        "--credentials".into(),
        creds.display().to_string(),
        "--output".into(),
        "json".into(),
    ])
    .await
}

/// `simulate | head -1` at its worst: the reader is gone before the simulator writes its first line, so every line
/// it prints meets a closed pipe. It serves all the same, until stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_keeps_serving_when_its_stdout_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("creds");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut child =
        std::process::Command::new(assert_cmd::cargo::cargo_bin("qlik-license-reclaimer"))
            .args(["simulate", "--port", &port.to_string(), "--users", "300"])
            .arg("--credentials-out")
            .arg(&creds)
            .stdout(writer)
            .stderr(std::process::Stdio::null())
            // A panic's backtrace would keep a dying simulator serving for a while.
            .env("RUST_BACKTRACE", "0")
            .spawn()
            .unwrap();
    // The credentials are written once the simulator listens, just before it prints.
    let key = creds.join("client_key.pem");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !std::fs::read_to_string(&key).is_ok_and(|k| k.trim_end().ends_with("-----")) {
        assert!(std::time::Instant::now() < deadline, "no credentials");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the simulator stopped before it wrote its credentials"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // It has printed by now (or died printing): it goes on serving.
    let printed = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while std::time::Instant::now() < printed {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the simulator died when its stdout was closed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let url = format!("https://127.0.0.1:{port}");
    let out = run_against_simulate(dir.path(), &url, &creds).await;
    let status = child.try_wait().unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        status, None,
        "the simulator died when its stdout was closed"
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        json(&out.stdout)["totals"]["candidates"]
            .as_u64()
            .unwrap_or_default()
            > 0
    );
}

/// An enforcing policy file on a site with many inactive seats whose DELETEs are slow.
async fn slow_site_files() -> (Simulator, Files) {
    let sim = slow_site(std::time::Duration::from_millis(300)).await;
    let mut spec = per_seat_policy(&sim);
    spec.limits.max_reclaim_percent = 100;
    spec.site.concurrency = 2;
    let files = Files::new(&sim, &manifest(&spec));
    (sim, files)
}

/// DELETEs as they arrive (a DELETE dropped mid-way would be counted here and missing from the deletions).
fn qrs_deletes(sim: &Simulator) -> usize {
    sim.qrs_delete_arrivals()
}

/// Start `run` with a JSON report, and wait for its first DELETE.
async fn start_and_wait_for_a_delete(sim: &Simulator, files: &Files) -> std::process::Child {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_qlik-license-reclaimer"))
        .args(files.args(&["--output", "json"]))
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("binary runs");
    let started = async {
        while qrs_deletes(sim) == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(60), started)
        .await
        .expect("a deletion started");
    child
}

async fn finish(child: std::process::Child) -> Exited {
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("wait");
    Exited {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A stopped run: exit 1, every DELETE sent finished and is in the report, fewer than all candidates.
fn assert_stopped(sim: &Simulator, out: &Exited, why: &str) {
    assert_eq!(out.code, 1, "{}", out.stderr);
    let report = json(&out.stdout);
    let message = report["message"].as_str().unwrap_or_default();
    assert!(message.contains(why), "{message}");
    let reclaimed = report["totals"]["reclaimed"].as_u64().unwrap_or_default();
    let sent = qrs_deletes(sim);
    assert!(
        sent > 0 && sent < 100,
        "{sent} DELETEs: the run did not stop"
    );
    assert_eq!(sent, sim.deletions().len(), "every DELETE sent finished");
    assert_eq!(sent as u64, reclaimed, "and is in the report");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_file_run_stops_on_sigterm_sigint_and_when_the_file_changes() {
    let (sim, files) = slow_site_files().await;
    let child = start_and_wait_for_a_delete(&sim, &files).await;
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    assert_stopped(&sim, &finish(child).await, "SIGTERM");

    // Ctrl-C at a terminal: the same stop.
    let (sim, files) = slow_site_files().await;
    let child = start_and_wait_for_a_delete(&sim, &files).await;
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    assert_stopped(&sim, &finish(child).await, "SIGINT");

    let (sim, files) = slow_site_files().await;
    let child = start_and_wait_for_a_delete(&sim, &files).await;
    let path = files.path("policy.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("dryRun: false", "dryRun: true")).unwrap();
    assert_stopped(&sim, &finish(child).await, "changed during the run");
}

/// Seats on the site, of every per-user type, outside quarantine.
fn seats_held(sim: &Simulator) -> usize {
    use qrs_simulator::SimAccessType::{Analyzer, Professional, User};
    [Professional, Analyzer, User]
        .into_iter()
        .map(|t| sim.site().allocations(t).len())
        .sum()
}

/// In bulk too (the default): SIGTERM while a selection's DELETE is in flight lets that batch finish and be read
/// back, so every seat it took is in the report, and no other batch starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_run_stopped_by_sigterm_finishes_the_batch_in_flight_and_starts_no_other() {
    let sim = slow_site(std::time::Duration::from_millis(300)).await;
    let mut spec = policy(&sim);
    spec.limits.max_reclaim_percent = 100;
    let files = Files::new(&sim, &manifest(&spec));
    let before = seats_held(&sim);
    let child = start_and_wait_for_a_delete(&sim, &files).await;
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let out = finish(child).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    let report = json(&out.stdout);
    let message = report["message"].as_str().unwrap_or_default();
    assert!(message.contains("SIGTERM"), "{message}");
    assert_eq!(report["deletions"], "Bulk", "{report}");
    let selections = sim
        .arrivals()
        .iter()
        .filter(|a| a.method == "POST" && a.path.contains("/qrs/selection/"))
        .count();
    assert_eq!(selections, 1, "no other batch began");
    let gone = before - seats_held(&sim);
    assert!(gone > 0 && gone <= 50, "one batch at most: {gone}");
    let reclaimed = report["totals"]["reclaimed"].as_u64().unwrap_or_default();
    assert_eq!(
        reclaimed, gone as u64,
        "every seat the batch took is in the report"
    );
    let candidates = report["totals"]["candidates"].as_u64().unwrap_or_default();
    assert!(candidates > reclaimed, "{candidates} candidates");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_file_runs_once_at_a_time_and_not_when_suspended() {
    let sim = known_site().await;
    let files = Files::new(&sim, &manifest(&policy(&sim)));
    let held = std::fs::File::open(files.path("policy.yaml")).unwrap();
    held.try_lock().expect("the test holds the lock");
    let out = reclaimer(files.args(&[])).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("another run"), "{}", out.stderr);
    drop(held);

    let mut spec = policy(&sim);
    spec.suspend = true;
    let files = Files::new(&sim, &manifest(&spec));
    let out = reclaimer(files.args(&[])).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("suspended"), "{}", out.stderr);
    assert!(sim.requests().is_empty(), "neither run reached Qlik");
}
