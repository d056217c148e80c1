//! The run and its QRS client against the simulator: both ways in, key formats, TLS failures, faults.

use std::collections::BTreeMap;

use qlik_license_reclaimer::credentials::{self, Credentials};
use qlik_license_reclaimer::policy::{self, Permissions, RunResult};
use qlik_license_reclaimer::qrs::ids_per_read;
use qlik_license_reclaimer::run::{self, Outcome};
use qrs_simulator::{Fault, FaultRule, KeyFormat, Listener, SimAccessType};

use crate::support::*;

#[tokio::test]
async fn direct_mode_reclaims_exactly_the_inactive_seats() {
    let sim = known_site().await;
    let report = run_policy(&sim, &policy(&sim), &credentials(&sim)).await;
    assert_eq!(report.result, RunResult::Succeeded, "{}", report.message);
    assert_eq!(deleted(&sim), expected_reclaims());
    assert_eq!(report.totals.reclaimed, 2);
    // Longest idle first: alice (90 days since use) before carol (never used, allocated 40 days ago).
    let order: Vec<_> = report.reclaimed().map(|e| e.user.as_str()).collect();
    assert_eq!(order, ["CORP\\alice", "CORP\\carol"]);

    let requests = sim.requests();
    // Every request carried X-Qlik-User as configured, and QRS was asked to filter by lastUsed.
    assert!(requests.iter().all(|r| {
        r.user
            .as_ref()
            .is_some_and(|u| u.to_string() == "INTERNAL\\sa_repository")
    }));
    let full: Vec<_> = requests
        .iter()
        .filter(|r| r.path.ends_with("/full") && r.path.contains("accesstype"))
        .collect();
    let (listings, rechecks): (Vec<&&_>, Vec<&&_>) = full.iter().partition(|r| {
        r.query_param("filter")
            .is_some_and(|f| f.starts_with("lastUsed le '"))
    });
    assert_eq!(listings.len(), 2, "one filtered read per access type");
    // And one read again, by id, just before the deletions of each type.
    assert_eq!(rechecks.len(), 2);
    assert!(rechecks.iter().all(|r| {
        r.query_param("filter")
            .is_some_and(|f| f.starts_with("id eq "))
    }));
    // User data in one batch, not one request per user.
    let user_reads = requests
        .iter()
        .filter(|r| r.path.contains("/qrs/user"))
        .count();
    assert_eq!(user_reads, 1);
    // One xrfkey per client, the same in query and header (the simulator refuses anything else).
    let keys: std::collections::HashSet<_> = requests
        .iter()
        .filter_map(|r| r.query_param("xrfkey"))
        .collect();
    assert_eq!(keys.len(), 1);
    let kept: BTreeMap<_, _> = report
        .decisions
        .iter()
        .filter(|e| e.outcome == Outcome::Kept)
        .map(|e| (e.user.as_str(), e.reason_code))
        .collect();
    assert_eq!(kept.get("CORP\\dave"), Some(&"never-used-grace"));
    assert_eq!(kept.get("INTERNAL\\sa_scheduler"), Some(&"excluded"));
    assert_eq!(kept.get("CORP\\erin"), Some(&"excluded"));
    assert_eq!(kept.get("CORP\\frank"), Some(&"excluded"));
    assert_eq!(kept.get("CORP\\heidi"), Some(&"excluded"));
    assert_eq!(kept.get("CORP\\grace"), Some(&"quarantined"));
}

#[tokio::test]
async fn dry_run_reports_and_deletes_nothing() {
    let sim = known_site().await;
    let spec = dry_run_policy(&sim);
    let report = run_policy(&sim, &spec, &credentials(&sim)).await;
    assert_eq!(report.result, RunResult::Succeeded);
    assert!(sim.deletions().is_empty());
    assert!(sim.requests().iter().all(|r| r.method != "DELETE"));
    assert_eq!(
        report
            .reclaimed()
            .filter(|e| e.outcome == Outcome::WouldReclaim)
            .count(),
        2
    );
}

#[tokio::test]
async fn proxy_session_mode_goes_through_the_hub() {
    let sim = known_site_behind_proxy("ops").await;
    let report = run_policy(&sim, &proxy_policy(&sim, "ops"), &credentials(&sim)).await;
    assert_eq!(report.result, RunResult::Succeeded, "{}", report.message);
    assert_eq!(deleted(&sim), expected_reclaims());
    let requests = sim.requests();
    assert!(requests.iter().any(|r| r.listener == Listener::Qps
        && r.method == "POST"
        && r.path == "/qps/ops/session"));
    let qrs: Vec<_> = requests
        .iter()
        .filter(|r| r.path.contains("/qrs/"))
        .collect();
    assert!(!qrs.is_empty());
    assert!(
        qrs.iter()
            .all(|r| r.listener == Listener::Hub && r.path.starts_with("/ops/qrs/"))
    );
    assert!(sim.deletions().iter().all(|d| d.listener == Listener::Hub));
}

#[tokio::test]
async fn every_private_key_format_works() {
    for format in [KeyFormat::Pkcs1Rsa, KeyFormat::Pkcs8, KeyFormat::Sec1Ecdsa] {
        let sim = known_site_with_keys(format).await;
        let spec = dry_run_policy(&sim);
        let report = run_policy(&sim, &spec, &credentials(&sim)).await;
        assert_eq!(
            report.result,
            RunResult::Succeeded,
            "{format:?}: {}",
            report.message
        );
    }
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused_and_nothing_is_deleted() {
    let sim = known_site().await;
    let pki = sim.pki();
    let entries = BTreeMap::from([
        (
            credentials::CLIENT_CERT_KEY.to_string(),
            pki.wrong_client_pem.as_bytes().to_vec(),
        ),
        (
            credentials::CLIENT_KEY_KEY.to_string(),
            pki.wrong_client_key_pem.as_bytes().to_vec(),
        ),
        (
            credentials::ROOT_CERT_KEY.to_string(),
            pki.root_pem.as_bytes().to_vec(),
        ),
    ]);
    let creds = Credentials::from_entries(&entries).expect("well-formed, just not trusted");
    let report = run_policy(&sim, &policy(&sim), &creds).await;
    assert_eq!(report.result, RunResult::Failed);
    assert!(
        report.message.contains("cannot reach Qlik"),
        "{}",
        report.message
    );
    assert!(sim.deletions().is_empty());
}

#[tokio::test]
async fn the_server_name_must_match_unless_configured() {
    let sim = known_site().await;
    let mut spec = policy(&sim);
    spec.site.tls.server_name = None;
    let report = run_policy(&sim, &spec, &credentials(&sim)).await;
    assert_eq!(report.result, RunResult::Failed);
    assert!(
        report.message.to_lowercase().contains("certificate"),
        "{}",
        report.message
    );

    // Skipping verification is refused unless the operator allows it, before any request.
    spec.site.tls.insecure_skip_verify = true;
    spec.dry_run = true;
    sim.clear_records();
    let run = |allow: bool| {
        let creds = credentials(&sim);
        let spec = spec.clone();
        let now = sim.now();
        async move {
            let permissions = Permissions {
                allow_insecure_skip_verify: allow,
            };
            let policy = policy::validate(&spec, &permissions)?;
            let context = run_context(&creds, now);
            Ok::<_, policy::InvalidPolicy>(run::execute(&policy, context).await)
        }
    };
    let refused = run(false).await.expect_err("not allowed");
    assert!(
        refused.to_string().contains("insecureSkipVerify"),
        "{refused}"
    );
    assert!(sim.requests().is_empty(), "nothing was sent");
    let report = run(true).await.expect("allowed");
    assert_eq!(report.result, RunResult::Succeeded, "{}", report.message);
}

#[tokio::test]
async fn the_secret_xrfkey_is_sent_and_a_refused_one_fails_the_run() {
    let sim = known_site().await;
    let mut entries = credential_entries(&sim);
    entries.insert(
        credentials::XRFKEY_KEY.to_string(),
        b"ABCDEFGHIJ123456\n".to_vec(),
    );
    let creds = Credentials::from_entries(&entries).unwrap();
    let spec = dry_run_policy(&sim);
    let report = run_policy(&sim, &spec, &creds).await;
    assert_eq!(report.result, RunResult::Succeeded);
    assert!(
        sim.requests()
            .iter()
            .all(|r| r.query_param("xrfkey") == Some("ABCDEFGHIJ123456"))
    );

    // QRS answers a bad xrfkey with 403 and this body.
    sim.inject(FaultRule::always(Fault::Status(403)).method("GET"));
    let report = run_policy(&sim, &policy(&sim), &creds).await;
    assert_eq!(report.result, RunResult::Failed);
    assert!(report.message.contains("403"), "{}", report.message);
    assert!(sim.deletions().is_empty());
}

#[tokio::test]
async fn server_errors_and_resets_are_retried() {
    let sim = known_site().await;
    sim.inject(
        FaultRule::always(Fault::Status(503))
            .method("GET")
            .path_contains("/full")
            .times(2),
    );
    sim.inject(FaultRule::always(Fault::Reset).method("DELETE").times(1));
    sim.inject(
        FaultRule::always(Fault::Status(500))
            .method("DELETE")
            .times(1),
    );
    let report = run_policy(&sim, &policy(&sim), &credentials(&sim)).await;
    assert_eq!(report.result, RunResult::Succeeded, "{}", report.message);
    assert_eq!(deleted(&sim), expected_reclaims());
    let faulted = sim.requests().iter().filter(|r| r.fault.is_some()).count();
    assert_eq!(faulted, 4, "every injected fault was met and retried past");
}

#[tokio::test]
async fn persistent_server_errors_fail_the_run_without_deleting() {
    let sim = known_site().await;
    sim.inject(FaultRule::always(Fault::Status(500)).path_contains("analyzeraccesstype"));
    let report = run_policy(&sim, &policy(&sim), &credentials(&sim)).await;
    assert_eq!(report.result, RunResult::Failed);
    assert!(report.message.contains("500"), "{}", report.message);
    assert!(sim.deletions().is_empty());
}

#[tokio::test]
async fn malformed_json_fails_the_run_and_deletes_nothing() {
    let sim = known_site().await;
    sim.inject(
        FaultRule::always(Fault::MalformedJson)
            .method("GET")
            .path_contains("/user/full"),
    );
    let report = run_policy(&sim, &policy(&sim), &credentials(&sim)).await;
    assert_eq!(report.result, RunResult::Failed);
    assert!(
        report.message.contains("makes no sense"),
        "{}",
        report.message
    );
    assert!(sim.deletions().is_empty());
    assert!(sim.requests().iter().all(|r| r.method != "DELETE"));
}

#[tokio::test]
async fn a_seat_already_gone_counts_as_reclaimed_and_one_failure_spares_the_rest() {
    let sim = known_site().await;
    sim.inject(
        FaultRule::always(Fault::Status(404))
            .method("DELETE")
            .path_contains("professionalaccesstype")
            .times(1),
    );
    // One seat a request: what a single DELETE's 404 and 400 mean (bulk.rs has the selections' failures).
    let report = run_policy(&sim, &per_seat_policy(&sim), &credentials(&sim)).await;
    assert_eq!(report.result, RunResult::Succeeded, "{}", report.message);
    let alice = decision_about(&report, "CORP\\alice").unwrap();
    assert_eq!(alice.outcome, Outcome::AlreadyGone);

    let sim = known_site().await;
    sim.inject(
        FaultRule::always(Fault::Status(400))
            .method("DELETE")
            .path_contains("professionalaccesstype"),
    );
    let report = run_policy(&sim, &per_seat_policy(&sim), &credentials(&sim)).await;
    assert_eq!(report.result, RunResult::Failed);
    assert_eq!(report.totals.failed, 1);
    // No retry on a 4xx, and carol's analyzer seat was still reclaimed.
    let deletes = sim
        .requests()
        .iter()
        .filter(|r| r.method == "DELETE" && r.path.contains("professional"))
        .count();
    assert_eq!(deletes, 1);
    assert_eq!(
        deleted(&sim),
        vec![("CORP\\carol".to_string(), SimAccessType::Analyzer)]
    );
}

#[tokio::test]
async fn the_cap_takes_the_longest_idle_and_the_breaker_aborts_before_any_delete() {
    let sim = known_site().await;
    let mut spec = policy(&sim);
    spec.limits.max_reclaims_per_run = 1;
    let report = run_policy(&sim, &spec, &credentials(&sim)).await;
    assert_eq!(report.result, RunResult::Succeeded);
    assert_eq!(
        deleted(&sim),
        vec![("CORP\\alice".to_string(), SimAccessType::Professional)]
    );
    let carol = decision_about(&report, "CORP\\carol").unwrap();
    assert_eq!(carol.outcome, Outcome::Deferred);

    let sim = known_site().await;
    let mut spec = policy(&sim);
    // One professional candidate out of eight allocations is 12.5%.
    spec.limits.max_reclaim_percent = 10;
    let report = run_policy(&sim, &spec, &credentials(&sim)).await;
    assert_eq!(report.result, RunResult::Aborted);
    assert!(
        report.message.contains("professional"),
        "{}",
        report.message
    );
    assert_eq!(sim.qrs_delete_arrivals(), 0, "no DELETE reached QRS");
}

#[tokio::test]
async fn users_are_fetched_in_batches() {
    let sim = start_simulator(qrs_simulator::SimulatorConfig {
        users: 1_000,
        seed: 7,
        ..Default::default()
    })
    .await;
    let mut spec = dry_run_policy(&sim);
    spec.limits.max_reclaim_percent = 100;
    let report = run_policy(&sim, &spec, &credentials(&sim)).await;
    assert_eq!(report.result, RunResult::Succeeded, "{}", report.message);
    let candidates = report.totals.candidates + report.totals.excluded;
    let user_reads = sim
        .requests()
        .iter()
        .filter(|r| r.path.contains("/qrs/user"))
        .count() as u64;
    let per_read = ids_per_read("id") as u64;
    assert!(
        candidates > per_read,
        "the site should need more than one batch"
    );
    assert!(
        user_reads <= candidates.div_ceil(per_read) + 1,
        "{user_reads} user requests"
    );
    // Each read carried as many ids as fit, and the simulator (which refuses a request line over 8 KB, as a proxy
    // in front of a site does) answered every one.
    assert!(
        sim.requests().iter().all(|r| r.status != 414),
        "a request line was too long"
    );
    // A handful of list calls, whatever the site's size.
    assert!(
        sim.requests().len() as u64 <= 8 + user_reads,
        "{} requests",
        sim.requests().len()
    );
}

#[tokio::test]
async fn a_request_that_times_out_is_retried() {
    let slow_count = || {
        FaultRule::always(Fault::Delay(std::time::Duration::from_millis(1500)))
            .method("GET")
            .path_contains("/count")
    };
    // Every count slower than the timeout: the run fails, saying so.
    let sim = known_site().await;
    sim.inject(slow_count());
    let mut spec = policy(&sim);
    spec.site.request_timeout_seconds = 1;
    let report = run_policy(&sim, &spec, &credentials(&sim)).await;
    assert_eq!(report.result, RunResult::Failed);
    assert!(report.message.contains("timed out"), "{}", report.message);
    assert!(sim.deletions().is_empty());

    // Only the first one slow: the retry gets through and the run succeeds.
    let sim = known_site().await;
    sim.inject(slow_count().times(1));
    let mut spec = policy(&sim);
    spec.site.request_timeout_seconds = 1;
    let report = run_policy(&sim, &spec, &credentials(&sim)).await;
    assert_eq!(report.result, RunResult::Succeeded, "{}", report.message);
    assert_eq!(deleted(&sim), expected_reclaims());
}
