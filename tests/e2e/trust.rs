//! The two promises against a broken or hostile site: no seat taken on an answer that makes no sense, and no
//! secret repeated whatever Qlik sends back.

use qlik_license_reclaimer::credentials::Credentials;
use qlik_license_reclaimer::policy::RunResult;
use qlik_license_reclaimer::run::{Outcome, RunReport};
use qrs_simulator::SimAccessType::{Analyzer, Professional};
use qrs_simulator::{Fault, FaultRule};

use crate::support::*;

const XRFKEY: &str = "SeCrEtXrFkEy0123";

fn credentials_with_xrfkey(sim: &qrs_simulator::Simulator) -> Credentials {
    let mut entries = credential_entries(sim);
    entries.insert("xrfkey".into(), XRFKEY.as_bytes().to_vec());
    Credentials::from_entries(&entries).expect("valid")
}

/// No DELETE reached QRS (ending a proxy session is a DELETE on QPS, not a deallocation).
fn no_deletes(sim: &qrs_simulator::Simulator) -> bool {
    sim.qrs_delete_arrivals() == 0
}

/// Any 36-character GUID in `text` (a session id would be one).
fn guids(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars
        .windows(36)
        .map(|w| w.iter().collect::<String>())
        .filter(|w| {
            w.char_indices().all(|(i, c)| match i {
                8 | 13 | 18 | 23 => c == '-',
                _ => c.is_ascii_hexdigit(),
            })
        })
        .collect()
}

#[tokio::test]
async fn an_error_page_that_echoes_the_request_never_repeats_the_xrfkey() {
    let sim = known_site().await;
    sim.inject(
        FaultRule::always(Fault::EchoRequest(500))
            .method("GET")
            .path_contains("/full"),
    );
    let report = run_policy(&sim, &policy(&sim), &credentials_with_xrfkey(&sim)).await;
    assert_eq!(report.result, RunResult::Failed);
    assert!(report.message.contains("500"), "{}", report.message);
    let echoed = sim.requests().iter().any(|r| r.fault.is_some());
    assert!(echoed, "the echoing page was served");
    for text in [report.message.as_str(), &format!("{report:?}")] {
        assert!(!text.contains(XRFKEY), "{text}");
        assert!(
            !text.to_lowercase().contains(&XRFKEY.to_lowercase()),
            "{text}"
        );
    }
    assert!(report.message.contains("[redacted]"), "{}", report.message);
    assert!(no_deletes(&sim));
}

#[tokio::test]
async fn an_error_page_that_echoes_the_session_cookie_never_repeats_it() {
    let sim = known_site_behind_proxy("ops").await;
    sim.inject(
        FaultRule::always(Fault::EchoRequest(502))
            .method("GET")
            .path_contains("/qrs/"),
    );
    let report = run_policy(
        &sim,
        &proxy_policy(&sim, "ops"),
        &credentials_with_xrfkey(&sim),
    )
    .await;
    assert_eq!(report.result, RunResult::Failed);
    assert!(!report.message.contains(XRFKEY), "{}", report.message);
    assert!(
        guids(&report.message).is_empty(),
        "a session id in {}",
        report.message
    );
    assert!(no_deletes(&sim));
}

#[tokio::test]
async fn an_allocation_id_that_is_no_guid_fails_the_run_before_any_delete() {
    for bad in [
        "3f2c7d9e-1b4a-4c8e-9f00-2d5e6a7b8c0bz",
        "../professionalaccesstype",
        "",
    ] {
        let sim = known_site().await;
        sim.inject(
            FaultRule::rewrite("id", Some(bad.into()))
                .method("GET")
                .path_contains("professionalaccesstype/full"),
        );
        let report = run_policy(&sim, &policy(&sim), &credentials(&sim)).await;
        assert_eq!(report.result, RunResult::Failed, "{bad}");
        assert!(report.message.contains("not a GUID"), "{}", report.message);
        assert!(no_deletes(&sim), "{bad}");
    }
}

#[tokio::test]
async fn a_user_record_without_roles_keeps_the_role_protected_seat() {
    let sim = known_site().await;
    sim.inject(FaultRule::rewrite("roles", None).path_contains("/qrs/user/full"));
    let report = run_policy(&sim, &policy(&sim), &credentials(&sim)).await;
    assert_eq!(report.result, RunResult::Succeeded, "{}", report.message);
    let heidi = decision_about(&report, "CORP\\heidi").expect("heidi decided");
    assert_eq!(heidi.outcome, Outcome::Kept);
    assert_eq!(heidi.reason_code, "unknown-data", "{}", heidi.reason);
    assert!(
        sim.deletions().iter().all(|d| d.user_id != "heidi"),
        "the RootAdmin kept the seat"
    );
}

#[tokio::test]
async fn a_missing_or_null_last_use_is_unknown_not_never() {
    for value in [None, Some(serde_json::Value::Null)] {
        let sim = known_site().await;
        sim.inject(FaultRule::rewrite("lastUsed", value.clone()).path_contains("accesstype/full"));
        let report = run_policy(&sim, &policy(&sim), &credentials(&sim)).await;
        assert_eq!(report.result, RunResult::Succeeded, "{}", report.message);
        assert_eq!(report.totals.reclaimed, 0, "{value:?}");
        assert!(
            report.totals.unknown >= 2,
            "counted as unknown: {:?}",
            report.totals
        );
        assert!(no_deletes(&sim), "{value:?}");
        assert!(
            report
                .decisions
                .iter()
                .filter(|e| e.reason_code == "unknown-data")
                .count()
                >= 2,
            "alice and carol are unknown, not reclaimed"
        );
    }
}

/// A run of the test policy on a known site whose professional listing is `bytes` of streamed JSON (see
/// [`Fault::Huge`]), after `prepare`: it fails with `expected` in its message and deletes nothing.
async fn a_huge_listing_fails(
    bytes: u64,
    one_huge_element: bool,
    prepare: impl FnOnce(&qrs_simulator::Simulator),
    expected: &str,
) {
    let sim = known_site().await;
    prepare(&sim);
    sim.inject(
        FaultRule::always(Fault::Huge {
            bytes,
            one_huge_element,
        })
        .method("GET")
        .path_contains("professionalaccesstype/full"),
    );
    let report = run_policy(&sim, &policy(&sim), &credentials(&sim)).await;
    assert_eq!(report.result, RunResult::Failed);
    assert!(report.message.contains(expected), "{}", report.message);
    assert!(no_deletes(&sim));
}

#[tokio::test]
async fn a_huge_answer_fails_clearly_and_deletes_nothing() {
    // Rows well beyond what the site counts: refused as soon as the count is passed.
    a_huge_listing_fails(64 * 1024 * 1024, false, |_| {}, "more than the site counts").await;
    // A site that counts a million: a run still reads no more than its memory allows, and says why.
    a_huge_listing_fails(
        64 * 1024 * 1024,
        false,
        |sim| {
            sim.inject(
                FaultRule::rewrite("value", Some(1_000_000.into()))
                    .path_contains("professionalaccesstype/count"),
            )
        },
        "more than 80000 allocations, more than a run reads",
    )
    .await;
    // One element the size of the answer.
    a_huge_listing_fails(16 * 1024 * 1024, true, |_| {}, "larger than").await;
}

/// A run on a known site whose allocation listings carry `field` rewritten to `value`.
async fn run_with_rewritten(field: &str, value: String) -> (qrs_simulator::Simulator, RunReport) {
    let sim = known_site().await;
    sim.inject(FaultRule::rewrite(field, Some(value.into())).path_contains("accesstype/full"));
    let report = run_policy(&sim, &policy(&sim), &credentials(&sim)).await;
    (sim, report)
}

#[tokio::test]
async fn names_and_ids_longer_than_qlik_stores_fail_the_run_before_any_delete() {
    // At the limits of Qlik's Repository API (name 511, userId and userDirectory 255 characters) a run goes on.
    for (field, limit) in [("user.name", 511), ("user.userDirectory", 255)] {
        let (sim, report) = run_with_rewritten(field, "é".repeat(limit)).await;
        assert_eq!(
            report.result,
            RunResult::Succeeded,
            "{field}: {}",
            report.message
        );
        assert!(report.totals.reclaimed > 0, "{field}");
        assert!(!no_deletes(&sim));
    }
    // One character more is an answer no repository gives: the run fails, naming the field and the limit.
    for (field, limit) in [
        ("user.name", 511),
        ("user.userId", 255),
        ("user.userDirectory", 255),
    ] {
        let (sim, report) = run_with_rewritten(field, "é".repeat(limit + 1)).await;
        assert_eq!(report.result, RunResult::Failed, "{field}");
        let name = field.trim_start_matches("user.");
        assert!(
            report
                .message
                .contains(&format!("{name} is longer than {limit} characters")),
            "{}",
            report.message
        );
        assert!(no_deletes(&sim), "{field}");
    }
    // The answer the issue met: display names of 900 KB, each under the element limit.
    let (sim, report) = run_with_rewritten("user.name", "x".repeat(900 * 1024)).await;
    assert_eq!(report.result, RunResult::Failed);
    assert!(
        report.message.contains("name is longer than 511"),
        "{}",
        report.message
    );
    assert!(no_deletes(&sim));
}

#[tokio::test]
async fn a_listing_whose_names_at_the_limit_add_up_past_what_a_run_keeps_is_refused() {
    // 9,000 idle seats whose names are at Qlik's limit in four-byte characters: 18 MB of names, each allowed,
    // 2,000 bytes a seat where real directories use about a hundred.
    let sim = known_site().await;
    bulk_users(&sim, 9_000, &[Professional], 400);
    sim.inject(
        FaultRule::rewrite("user.name", Some("\u{1F600}".repeat(511).into()))
            .path_contains("accesstype/full"),
    );
    let report = run_policy(&sim, &policy(&sim), &credentials(&sim)).await;
    assert_eq!(report.result, RunResult::Failed);
    assert!(
        report
            .message
            .contains("names and ids in the answer take more than")
            && report.message.contains("(256 a seat)"),
        "{}",
        report.message
    );
    assert!(no_deletes(&sim));
}

#[tokio::test]
async fn a_seat_used_between_the_read_and_the_delete_is_kept() {
    let sim = known_site().await;
    // The listing goes through unchanged; the read just before the DELETE finds alice active again.
    sim.inject(
        FaultRule::always(Fault::Delay(std::time::Duration::ZERO))
            .method("GET")
            .path_contains("professionalaccesstype/full")
            .times(1),
    );
    sim.inject(
        FaultRule::rewrite("lastUsed", Some(sim.now().to_string().into()))
            .method("GET")
            .path_contains("professionalaccesstype/full"),
    );
    // One seat a request: the re-read before the DELETEs is what this test rewrites (bulk.rs moves the seat's
    // real last use instead, and QRS's own check in the DELETE keeps it).
    let report = run_policy(&sim, &per_seat_policy(&sim), &credentials(&sim)).await;
    let alice = decision_about(&report, "CORP\\alice").expect("alice decided");
    assert_eq!(alice.outcome, Outcome::UsedSinceRead, "{}", alice.reason);
    assert_eq!(report.totals.used_since_read, 1);
    let deleted: Vec<_> = sim.deletions().into_iter().map(|d| d.user_id).collect();
    assert_eq!(deleted, ["carol"], "alice kept her seat; carol's went");
    // One re-read per batch of up to 50 deletions of a type, with the ids in one filter.
    let rechecks: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| {
            r.query_param("filter")
                .is_some_and(|f| f.starts_with("id eq"))
                && r.path.contains("accesstype")
        })
        .collect();
    assert_eq!(rechecks.len(), 2, "one per access type with a reclaim");
}

#[tokio::test]
async fn an_unreadable_date_is_repeated_only_scrubbed_and_short() {
    let sim = known_site().await;
    sim.inject(
        FaultRule::rewrite(
            "lastUsed",
            Some(
                format!(
                    "error: request ?xrfkey={XRFKEY} failed {}",
                    "x".repeat(5000)
                )
                .into(),
            ),
        )
        .path_contains("accesstype/full"),
    );
    let report = run_policy(&sim, &policy(&sim), &credentials_with_xrfkey(&sim)).await;
    assert_eq!(report.totals.reclaimed, 0);
    let json = serde_json::to_string(&report).expect("json");
    assert!(!json.contains(XRFKEY), "the key was repeated");
    for entry in &report.decisions {
        assert!(entry.last_used.chars().count() <= 65, "{}", entry.last_used);
    }
    assert!(no_deletes(&sim));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_run_retries_nothing() {
    use qlik_license_reclaimer::brake::{Brake, BrakeState};
    let sim = known_site().await;
    // Every DELETE is slow and fails: normally retried, but not once the run is stopping.
    sim.set_latency(std::time::Duration::from_millis(300));
    sim.inject(FaultRule::always(Fault::Status(503)).method("DELETE"));
    let mut spec = policy(&sim);
    spec.site.concurrency = 1;
    let (lever, brake) = Brake::new(BrakeState::Released);
    // Stop as soon as the first DELETE has reached QRS (it is then in flight for 300 ms, and fails).
    let watcher = async {
        while sim.qrs_delete_arrivals() == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        lever.stop("test stop");
    };
    let run = run_braked(&sim, &spec, brake, fast_retries());
    let (report, ()) = tokio::join!(run, watcher);
    assert_eq!(
        sim.qrs_delete_arrivals(),
        1,
        "the failed DELETE was not retried, and no other started"
    );
    assert!(report.message.contains("test stop"), "{}", report.message);
}

#[tokio::test]
async fn an_aborted_dry_run_reports_nothing_as_would_be_reclaimed() {
    let sim = known_site().await;
    let mut spec = dry_run_policy(&sim);
    // One professional candidate out of eight allocations is 12.5%.
    spec.limits.max_reclaim_percent = 10;
    let report = run_policy(&sim, &spec, &credentials(&sim)).await;
    assert_eq!(report.result, RunResult::Aborted, "{}", report.message);
    assert_eq!(
        report.totals.reclaimed, 0,
        "an aborted run reclaims nothing, not even on paper"
    );
    assert!(
        report
            .decisions
            .iter()
            .all(|e| e.outcome != Outcome::WouldReclaim),
        "nothing is reported as would-reclaim"
    );
    assert!(no_deletes(&sim));
}

/// A brake paused (the run cannot tell whether its policy changed: its watch is down) lets no deletion start; a
/// stop that comes while it is paused ends the run with none sent, and a release lets them go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_brake_starts_no_deletion_until_released() {
    use qlik_license_reclaimer::brake::{Brake, BrakeState};
    let sim = known_site().await;
    // One seat a request, so that DELETEs sent count seats reclaimed.
    let spec = per_seat_policy(&sim);
    // Paused, then stopped while the run waits: nothing is deleted.
    let (lever, brake) = Brake::new(BrakeState::Paused("watch down".into()));
    let stopper = async {
        lever.waited_on().await;
        assert_eq!(sim.qrs_delete_arrivals(), 0, "no DELETE while paused");
        lever.stop("the policy was switched to dry run");
    };
    let (report, ()) = tokio::join!(run_braked(&sim, &spec, brake, fast_retries()), stopper);
    assert!(no_deletes(&sim), "a stop while paused lets nothing through");
    assert!(
        report.message.contains("switched to dry run"),
        "{}",
        report.message
    );

    // Paused, then released: the run goes on and deletes.
    let (lever, brake) = Brake::new(BrakeState::Paused("watch down".into()));
    let releaser = async {
        lever.waited_on().await;
        assert_eq!(sim.qrs_delete_arrivals(), 0, "no DELETE while paused");
        lever.release();
    };
    let (report, ()) = tokio::join!(run_braked(&sim, &spec, brake, fast_retries()), releaser);
    assert!(report.totals.reclaimed > 0, "{}", report.message);
    assert_eq!(sim.qrs_delete_arrivals() as u64, report.totals.reclaimed);
}

/// A pause mid-batch: the seats of the batch not yet deleted are read again once the brake is released (they may
/// have been used during the pause) before any of them is deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_pause_the_rest_of_a_batch_is_read_again_before_deleting() {
    use qlik_license_reclaimer::brake::{Brake, BrakeState};
    use std::time::Duration;
    // Many idle seats of each type, so that a batch holds dozens; one DELETE at a time, each slow.
    let sim = slow_site(Duration::from_millis(100)).await;
    let mut spec = per_seat_policy(&sim);
    spec.limits.max_reclaim_percent = 100;
    spec.limits.max_reclaims_per_run = 5;
    spec.site.concurrency = 1;
    let (lever, brake) = Brake::new(BrakeState::Released);
    let is_recheck = |r: &qrs_simulator::RecordedRequest| {
        r.method == "GET"
            && r.path.contains("accesstype")
            && r.query_param("filter")
                .is_some_and(|f| f.starts_with("id eq"))
    };
    let pauser = async {
        // The first DELETE is in flight (100 ms): the rest of its batch is still to go.
        while sim.qrs_delete_arrivals() == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        lever.pause("watch down");
        lever.waited_on().await;
        let before = sim.requests();
        let arrived = sim.qrs_delete_arrivals();
        lever.release();
        (before, arrived)
    };
    let (report, (before, arrived)) = tokio::time::timeout(Duration::from_secs(60), async {
        tokio::join!(run_braked(&sim, &spec, brake, fast_retries()), pauser)
    })
    .await
    .expect("the run ends");
    assert_eq!(arrived, 1, "only the DELETE in flight went while paused");
    let ids = |r: &qrs_simulator::RecordedRequest| -> Vec<String> {
        r.query_param("filter")
            .unwrap_or_default()
            .split(" or ")
            .map(|clause| clause.trim_start_matches("id eq ").to_string())
            .collect()
    };
    let rechecks: Vec<_> = before.iter().filter(|r| is_recheck(r)).collect();
    assert_eq!(rechecks.len(), 1, "one batch read before the pause");
    let batch = ids(rechecks[0]);
    assert!(
        batch.len() >= 2,
        "the first batch holds several seats: {batch:?}"
    );
    let after = &sim.requests()[before.len()..];
    let first = after.first().expect("requests after the release");
    assert!(
        is_recheck(first),
        "the first request after the pause reads the seats again: {} {} {:?}",
        first.method,
        first.path,
        first.query
    );
    let again = ids(first);
    assert_eq!(
        again.len(),
        batch.len() - 1,
        "the rest of the batch: {again:?} of {batch:?}"
    );
    assert!(
        again.iter().all(|id| batch.contains(id)),
        "{again:?} of {batch:?}"
    );
    assert_eq!(report.totals.reclaimed, 5, "{}", report.message);
    assert_eq!(sim.qrs_delete_arrivals(), 5);
}

/// A stop that comes while a failed DELETE waits to be tried again holds: the retry is not sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_during_a_retry_backoff_holds() {
    use qlik_license_reclaimer::brake::{Brake, BrakeState};
    use qlik_license_reclaimer::qrs::RetryPolicy;
    use std::time::Duration;
    let sim = known_site().await;
    sim.inject(FaultRule::always(Fault::Status(503)).method("DELETE"));
    let mut spec = policy(&sim);
    spec.site.concurrency = 1;
    let (lever, brake) = Brake::new(BrakeState::Released);
    // At least a second between attempts: the stop surely comes during the wait.
    let retry = RetryPolicy {
        attempts: 4,
        base_delay: Duration::from_secs(2),
        max_delay: Duration::from_secs(2),
    };
    let stopper = async {
        // The first DELETE has been answered 503: the client now waits before trying again.
        while !sim
            .requests()
            .iter()
            .any(|r| r.method == "DELETE" && r.status == 503)
        {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        lever.stop("test stop");
    };
    let (report, ()) = tokio::join!(run_braked(&sim, &spec, brake, retry), stopper);
    assert_eq!(
        sim.qrs_delete_arrivals(),
        1,
        "the retry after the stop was not sent"
    );
    assert!(report.message.contains("test stop"), "{}", report.message);
}

/// A stop before the run has read the site (SIGTERM while it starts, say): no request to Qlik starts after it, so a
/// run told to stop while it reads a large site ends within the requests in flight, not after thousands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_run_starts_no_request() {
    use qlik_license_reclaimer::brake::{Brake, BrakeState};
    let sim = known_site().await;
    let (_lever, brake) = Brake::new(BrakeState::Stopped("test stop".into()));
    let report = run_braked(&sim, &policy(&sim), brake, fast_retries()).await;
    assert!(sim.arrivals().is_empty(), "{:?}", sim.arrivals());
    assert_eq!(report.result, RunResult::Failed);
    assert!(report.message.contains("test stop"), "{}", report.message);
}

/// Seats read by id (the Analyzer seats of users who also hold Professional) keep no more names and ids than a
/// listing of as many may: thousands of them with names at Qlik's limit fail the run before any DELETE instead of
/// filling the controller's memory.
#[tokio::test]
async fn seats_read_by_id_keep_no_more_names_than_a_listing() {
    let sim = known_site().await;
    bulk_users(&sim, 2_000, &[Professional, Analyzer], 1);
    // Every Analyzer row names its user at Qlik's limit, in four-byte characters: 2 KB a seat.
    sim.inject(
        FaultRule::rewrite("user.name", Some("\u{1F600}".repeat(511).into()))
            .path_contains("analyzeraccesstype/full"),
    );
    let mut spec = policy(&sim);
    spec.redundant.analyzer_with_professional = true;
    spec.limits.max_reclaim_percent = 100;
    let report = run_policy(&sim, &spec, &credentials(&sim)).await;
    assert_eq!(report.result, RunResult::Failed, "{}", report.message);
    assert!(
        report
            .message
            .contains("names and ids in the answer take more than"),
        "{}",
        report.message
    );
    assert!(no_deletes(&sim));
}

/// The users' records a run reads (tags, custom properties, roles, e-mail) share one budget: a site whose users
/// each carry half a megabyte of tags fails the run before any DELETE instead of filling the controller's memory.
#[tokio::test]
async fn users_with_huge_records_fail_the_run_before_any_delete() {
    let sim = known_site().await;
    bulk_users(&sim, 100, &[Professional], 400);
    let tag = serde_json::json!([{
        "id": "0f2a6f5e-0000-4000-8000-000000000001",
        "name": "x".repeat(500 * 1024),
    }]);
    sim.inject(FaultRule::rewrite("tags", Some(tag)).path_contains("user/full"));
    let mut spec = policy(&sim);
    spec.limits.max_reclaim_percent = 100;
    let report = run_policy(&sim, &spec, &credentials(&sim)).await;
    assert_eq!(report.result, RunResult::Failed, "{}", report.message);
    assert!(
        report.message.contains("more than a run keeps"),
        "{}",
        report.message
    );
    assert!(no_deletes(&sim));
}

/// A page of QRS's table view is counted before it is parsed: one row of 400,000 cells (under a megabyte of
/// text, but 13 MB once parsed) is refused for its size, before any value is built, and nothing is deleted.
#[tokio::test]
async fn a_table_page_with_more_values_than_its_rows_can_hold_is_refused_unparsed() {
    let sim = known_site().await;
    let row: Vec<serde_json::Value> = vec![serde_json::Value::from(0); 400_000];
    sim.inject(
        FaultRule::rewrite("rows", Some(serde_json::json!([row])))
            .path_contains("accesstype/table"),
    );
    let mut spec = policy(&sim);
    spec.redundant.analyzer_with_professional = true;
    let report = run_policy(&sim, &spec, &credentials(&sim)).await;
    assert_eq!(report.result, RunResult::Failed, "{}", report.message);
    assert!(
        report.message.contains("a page holds more values than"),
        "{}",
        report.message
    );
    assert!(no_deletes(&sim));
}

/// `n` users of directory BULK, each holding a seat of every type in `kinds`, last used `days_ago`.
fn bulk_users(
    sim: &qrs_simulator::Simulator,
    n: usize,
    kinds: &[qrs_simulator::SimAccessType],
    days_ago: i64,
) {
    let site = sim.site();
    let at = sim.now() - jiff::SignedDuration::from_hours(24 * days_ago);
    for i in 0..n {
        let user = site
            .add_user(qrs_simulator::NewUser::new("BULK", format!("u{i}")))
            .expect("user added");
        for &kind in kinds {
            site.allocate(kind, user, Some(at), at, false)
                .expect("allocated");
        }
    }
}
