//! Deallocation in bulk against the simulator: each seat's exact outcome (gone, in quarantine, used since the
//! read, left by a DELETE that failed part-way and then deleted alone), the freshness condition inside the DELETE,
//! the fallback to one seat a request, and the brake between batches.

use std::time::Duration;

use qlik_license_reclaimer::brake::{Brake, BrakeState};
use qlik_license_reclaimer::policy::RunResult;
use qlik_license_reclaimer::run::{DeletionPath, Outcome, RunReport};
use qrs_simulator::{Fault, FaultRule, NewUser, SimAccessType, Simulator, SimulatorConfig};

use crate::support::*;

fn outcome_of(report: &RunReport, user: &str) -> Outcome {
    decision_about(report, user)
        .unwrap_or_else(|| panic!("no decision about {user}"))
        .outcome
}

/// The requests of one kind the simulator answered.
fn sent(sim: &Simulator, method: &str, path_part: &str) -> Vec<qrs_simulator::RecordedRequest> {
    sim.requests()
        .into_iter()
        .filter(|r| r.method == method && r.path.contains(path_part))
        .collect()
}

#[tokio::test]
async fn the_known_site_goes_in_one_selection_a_type_with_the_freshness_check_in_the_delete() {
    let sim = known_site().await;
    let report = run_policy(&sim, &policy(&sim), &credentials(&sim)).await;
    assert_eq!(report.result, RunResult::Succeeded, "{}", report.message);
    assert_eq!(report.deletions, Some(DeletionPath::Bulk));
    assert_eq!(deleted(&sim), expected_reclaims());
    for user in ["CORP\\alice", "CORP\\carol"] {
        assert_eq!(outcome_of(&report, user), Outcome::Reclaimed, "{user}");
    }
    let deletes = sent(&sim, "DELETE", "/qrs/selection/");
    let item_deletes: Vec<_> = deletes
        .iter()
        .filter(|r| r.path.contains("/license/"))
        .collect();
    assert_eq!(item_deletes.len(), 2, "one a type: {deletes:?}");
    for r in &item_deletes {
        let filter = r.query_param("filter").unwrap_or_default();
        // The latest last use the run read, or (carol's seat was never used) below any real date.
        let bound = filter.contains("lastUsed le '20") || filter.contains("lastUsed lt '1900");
        assert!(
            bound && filter.contains("quarantined eq false"),
            "the DELETE carries the freshness condition: {filter}"
        );
    }
    assert_eq!(deletes.len(), 4, "each selection dropped: {deletes:?}");
    assert!(
        sent(&sim, "DELETE", "/qrs/license/").is_empty(),
        "no seat deleted alone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seat_used_while_its_selection_is_deleted_is_kept_by_qrs_itself() {
    let sim = known_site().await;
    // The selection's DELETE of Professional seats waits 300 ms before QRS handles it; meanwhile alice logs in.
    sim.inject(
        FaultRule::always(Fault::Delay(Duration::from_millis(300)))
            .method("DELETE")
            .path_contains("/license/professionalaccesstype"),
    );
    let login = async {
        while !sim.arrivals().iter().any(|a| {
            a.method == "DELETE"
                && a.path.contains("/qrs/selection/")
                && a.path.ends_with("/license/professionalaccesstype")
        }) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        log_in(&sim, "CORP", "alice", SimAccessType::Professional);
    };
    let (spec, creds) = (policy(&sim), credentials(&sim));
    let (report, ()) = tokio::join!(run_policy(&sim, &spec, &creds), login);
    assert_eq!(outcome_of(&report, "CORP\\alice"), Outcome::UsedSinceRead);
    assert_eq!(report.totals.used_since_read, 1);
    let holds_alice = sim
        .site()
        .allocations(SimAccessType::Professional)
        .iter()
        .any(|a| a.user_id == "alice" && !a.quarantined);
    assert!(
        holds_alice,
        "QRS kept alice's seat: it was used before the DELETE ran"
    );
    assert_eq!(
        deleted(&sim),
        [("CORP\\carol".to_string(), SimAccessType::Analyzer)]
    );
}

/// A synthetic site with many idle seats of each type, and 50 seats in a batch.
async fn big_site() -> Simulator {
    start_simulator(SimulatorConfig {
        users: 400,
        seed: 11,
        ..SimulatorConfig::default()
    })
    .await
}

fn open_policy(sim: &Simulator) -> qlik_license_reclaimer::policy::LicenseCleanupPolicySpec {
    let mut spec = policy(sim);
    spec.limits.max_reclaim_percent = 100;
    spec
}

#[tokio::test]
async fn a_selection_delete_that_fails_part_way_leaves_the_rest_to_one_by_one_deletes() {
    let sim = big_site().await;
    sim.inject(
        // Every attempt (the DELETE is retried) fails after three deletions.
        FaultRule::always(Fault::FailAfter {
            deletions: 3,
            status: 500,
        })
        .method("DELETE")
        .path_contains("/license/professionalaccesstype")
        .times(4),
    );
    let report = run_policy(&sim, &open_policy(&sim), &credentials(&sim)).await;
    assert_eq!(report.result, RunResult::Succeeded, "{}", report.message);
    let professional_reclaimed = report
        .decisions
        .iter()
        .filter(|e| e.access_type == qlik_license_reclaimer::model::AccessType::Professional)
        .filter(|e| e.outcome == Outcome::Reclaimed)
        .count();
    let alone = sent(&sim, "DELETE", "/qrs/license/professionalaccesstype/").len();
    assert!(
        alone > 0,
        "the seats the failed DELETE left were deleted alone"
    );
    assert!(
        professional_reclaimed > alone,
        "{professional_reclaimed} reclaimed, {alone} of them alone: those before each failure went in bulk"
    );
    // Every seat the report calls reclaimed is gone (or in quarantine), and the others are still held.
    let professional_left: Vec<String> = sim
        .site()
        .allocations(SimAccessType::Professional)
        .iter()
        .filter(|a| !a.quarantined)
        .map(|a| a.id.to_string())
        .collect();
    for e in report
        .decisions
        .iter()
        .filter(|e| e.outcome == Outcome::Reclaimed)
    {
        assert!(!professional_left.contains(&e.allocation_id), "{}", e.user);
    }
}

#[tokio::test]
async fn a_site_without_selections_gets_one_seat_a_request() {
    for status in [404, 405] {
        let sim = known_site().await;
        sim.inject(
            FaultRule::always(Fault::Status(status))
                .method("POST")
                .path_contains("/qrs/selection/"),
        );
        let report = run_policy(&sim, &policy(&sim), &credentials(&sim)).await;
        assert_eq!(report.result, RunResult::Succeeded, "{}", report.message);
        assert_eq!(report.deletions, Some(DeletionPath::PerSeat), "{status}");
        assert_eq!(deleted(&sim), expected_reclaims(), "{status}");
        assert_eq!(
            sent(&sim, "POST", "/qrs/selection/").len(),
            1,
            "{status}: after the first refusal, no other selection is asked for"
        );
    }
    // The policy may say so itself.
    let sim = known_site().await;
    let report = run_policy(&sim, &per_seat_policy(&sim), &credentials(&sim)).await;
    assert_eq!(report.deletions, Some(DeletionPath::PerSeat));
    assert!(sent(&sim, "POST", "/qrs/selection/").is_empty());
    assert_eq!(deleted(&sim), expected_reclaims());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_lets_the_batch_in_flight_finish_and_starts_no_other() {
    let sim = big_site().await;
    // Each selection's DELETE takes 300 ms; the run is stopped as soon as the first one arrives.
    sim.inject(
        FaultRule::always(Fault::Delay(Duration::from_millis(300)))
            .method("DELETE")
            .path_contains("/license/"),
    );
    let (lever, brake) = Brake::new(BrakeState::Released);
    let stopper = async {
        while !sim
            .arrivals()
            .iter()
            .any(|a| a.method == "DELETE" && a.path.contains("/qrs/selection/"))
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        lever.stop("the policy was switched to dry run");
    };
    let spec = open_policy(&sim);
    let (report, ()) = tokio::join!(run_braked(&sim, &spec, brake, fast_retries()), stopper);
    assert!(
        report.message.contains("switched to dry run"),
        "{}",
        report.message
    );
    assert_eq!(
        sent(&sim, "POST", "/qrs/selection/").len(),
        1,
        "no other batch began"
    );
    let gone = sim.deletions().len();
    assert!(gone > 0 && gone <= 50, "one batch at most: {gone}");
    assert_eq!(
        gone as u64, report.totals.reclaimed,
        "the batch in flight was read back: every seat it deleted is in the report"
    );
    assert!(report.totals.candidates > report.totals.reclaimed);
}

#[tokio::test]
async fn a_leavers_seat_used_this_week_goes_to_quarantine_and_is_reclaimed() {
    let sim = known_site().await;
    let zed = sim
        .site()
        .add_user(NewUser::new("CORP", "zed").removed_externally(true))
        .expect("user");
    allocate_used(&sim, zed, SimAccessType::Professional, 2);
    let mut spec = policy(&sim);
    spec.leavers = removed_or_blocked_leavers(0);
    spec.limits.max_reclaim_percent = 100;
    let report = run_policy(&sim, &spec, &credentials(&sim)).await;
    assert_eq!(outcome_of(&report, "CORP\\zed"), Outcome::Reclaimed);
    let row = sim
        .site()
        .allocations(SimAccessType::Professional)
        .into_iter()
        .find(|a| a.user == Some(zed))
        .expect("QRS keeps the row in quarantine");
    assert!(row.quarantined);
}

/// A restore gives seats back 50 at a time with one `POST .../many`; QRS gives all or none, so when the licence has
/// room for only one of them, each is asked for alone and only the first is given: the others fail, each saying why.
#[tokio::test]
async fn a_restore_allocates_in_bulk_and_one_refusal_fails_alone() {
    use qlik_license_reclaimer::record::{RestoreOutcome, RunRecord};
    let sim = known_site().await;
    // Two Professional seats idle: alice (the known site's) and zoe.
    let zoe = sim
        .site()
        .add_user(NewUser::new("CORP", "zoe"))
        .expect("user");
    allocate_used(&sim, zoe, SimAccessType::Professional, 200);
    let mut spec = per_seat_policy(&sim);
    spec.limits.max_reclaim_percent = 100;
    let report = run_policy(&sim, &spec, &credentials(&sim)).await;
    let record = RunRecord::of(&report);
    let seats = qlik_license_reclaimer::restore::seats_of(&record, &[]).expect("seats");
    let professional = seats
        .iter()
        .filter(|s| s.access_type == qlik_license_reclaimer::model::AccessType::Professional)
        .count();
    assert!(professional >= 2, "{seats:?}");

    // Room for exactly one more Professional seat.
    let mut totals = sim.site().seat_totals();
    totals.professional = sim.site().allocations(SimAccessType::Professional).len() as u32 + 1;
    totals.analyzer = sim.site().allocations(SimAccessType::Analyzer).len() as u32 + 10;
    sim.site().set_seat_totals(totals);
    sim.clear_records();
    let valid =
        qlik_license_reclaimer::policy::validate(&spec, &Default::default()).expect("valid");
    let client = qlik_license_reclaimer::qrs::QrsClient::connect(
        &valid.connection,
        &credentials(&sim),
        None,
    )
    .await
    .expect("connects");
    let status =
        qlik_license_reclaimer::restore::restore(&client, &seats, false, "test".into()).await;
    client.close().await;
    let of_type = |t: &str, outcome| {
        status
            .seats
            .iter()
            .filter(|s| s.access_type == t && s.outcome == outcome)
            .count()
    };
    assert_eq!(
        of_type("professional", RestoreOutcome::Restored),
        1,
        "{status:?}"
    );
    assert_eq!(
        of_type("professional", RestoreOutcome::Failed),
        professional - 1,
        "{status:?}"
    );
    assert!(
        status
            .seats
            .iter()
            .filter(|s| s.outcome == RestoreOutcome::Failed)
            .all(|s| s.reason.contains("QRS refused the allocation")),
        "{status:?}"
    );
    // The other types' seats went back with one POST of their batch.
    assert_eq!(of_type("analyzer", RestoreOutcome::Failed), 0, "{status:?}");
    let many = sent(&sim, "POST", "/many").len();
    let one = sim
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("accesstype"))
        .count();
    assert!(many >= 1, "the seats went in bulk first");
    assert_eq!(
        one, professional,
        "then one POST per Professional seat, after the refusal"
    );
}

/// The seats a bulk DELETE may have taken are never lost from the record: when they cannot be read back, none is
/// tried again, each is reported unconfirmed (the run failed), and the record lists it as taken, for a restore to
/// look at.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seats_a_bulk_delete_may_have_taken_stay_on_record_when_they_cannot_be_read_back() {
    use qlik_license_reclaimer::record::{RecordedAction, RunRecord};
    let sim = known_site().await;
    sim.inject(
        FaultRule::always(Fault::Delay(Duration::from_millis(300)))
            .method("DELETE")
            .path_contains("/license/professionalaccesstype"),
    );
    // Once the selection's DELETE has arrived, every read of Professional seats fails.
    let breaker =
        async {
            while !sim.arrivals().iter().any(|a| {
                a.method == "DELETE" && a.path.ends_with("/license/professionalaccesstype")
            }) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            sim.inject(
                FaultRule::always(Fault::Status(503))
                    .method("GET")
                    .path_contains("professionalaccesstype/full"),
            );
        };
    let (spec, creds) = (policy(&sim), credentials(&sim));
    let (report, ()) = tokio::join!(run_policy(&sim, &spec, &creds), breaker);
    assert_eq!(outcome_of(&report, "CORP\\alice"), Outcome::Unconfirmed);
    assert_eq!(report.result, RunResult::Failed, "{}", report.message);
    assert!(
        sent(&sim, "DELETE", "/qrs/license/professionalaccesstype/").is_empty(),
        "not tried again alone"
    );
    assert!(
        deleted(&sim).contains(&("CORP\\alice".to_string(), SimAccessType::Professional)),
        "QRS did delete it"
    );
    let record = RunRecord::of(&report);
    let alice = record
        .decisions
        .iter()
        .find(|d| d.user == "CORP\\alice")
        .expect("alice is on record");
    assert_eq!(alice.action, RecordedAction::Reclaimed);
    assert!(
        alice
            .error
            .as_deref()
            .is_some_and(|e| e.contains("could not be read back")),
        "{alice:?}"
    );
}

/// A restore of many seats reads their users' seats as many users a request as fit and gives them back 50 a
/// `POST .../many`, by the ids the run recorded: no user is looked up by name, and a user deleted since is skipped
/// (a dry run says so too) while the others get their seats.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_of_many_seats_goes_by_recorded_ids_in_few_requests() {
    use qlik_license_reclaimer::qrs::{SEATS_PER_BATCH, ids_per_read};
    use qlik_license_reclaimer::record::{RestoreOutcome, RunRecord};
    let sim = known_site().await;
    let users = 2 * ids_per_read("user.id") + 7;
    for i in 0..users {
        add_seat(
            &sim,
            NewUser::new("CORP", format!("idle{i:03}")),
            SimAccessType::Professional,
            200,
        );
    }
    let mut spec = policy(&sim);
    spec.limits.max_reclaim_percent = 100;
    spec.limits.max_reclaims_per_run = 2_000;
    let report = run_policy(&sim, &spec, &credentials(&sim)).await;
    assert_eq!(report.result, RunResult::Succeeded, "{}", report.message);
    let record = RunRecord::of(&report);
    let seats = qlik_license_reclaimer::restore::seats_of(&record, &[]).expect("seats");
    let professional: Vec<_> = seats
        .iter()
        .filter(|s| s.access_type == qlik_license_reclaimer::model::AccessType::Professional)
        .collect();
    assert!(professional.len() > users, "{}", professional.len());
    assert!(
        seats.iter().all(|s| s.user_qrs_id.is_some()),
        "the record keeps every user's id"
    );
    sim.site().set_seat_totals(qrs_simulator::SeatTotals {
        professional: 1_000,
        analyzer: 1_000,
        tokens: 0,
    });
    let gone = sim.site().find_user("CORP", "idle000").expect("idle000");
    sim.site().delete_user(gone).expect("deleted");

    let valid =
        qlik_license_reclaimer::policy::validate(&spec, &Default::default()).expect("valid");
    let client = qlik_license_reclaimer::qrs::QrsClient::connect(
        &valid.connection,
        &credentials(&sim),
        None,
    )
    .await
    .expect("connects");
    let said = |status: &qlik_license_reclaimer::record::RestoreStatus| {
        status
            .seats
            .iter()
            .find(|s| s.user == "CORP\\idle000")
            .map(|s| (s.outcome, s.reason.clone()))
            .expect("idle000's seat")
    };
    let preview =
        qlik_license_reclaimer::restore::restore(&client, &seats, true, "test".into()).await;
    let (outcome, reason) = said(&preview);
    assert_eq!(outcome, RestoreOutcome::Skipped, "{reason}");
    assert!(reason.contains("no longer exists"), "{reason}");

    sim.clear_records();
    let status =
        qlik_license_reclaimer::restore::restore(&client, &seats, false, "test".into()).await;
    client.close().await;
    let (outcome, reason) = said(&status);
    assert_eq!(outcome, RestoreOutcome::Skipped, "{reason}");
    assert!(reason.contains("no longer exists"), "{reason}");
    assert_eq!(
        status.restored,
        seats.len() as u64 - 1,
        "{}",
        status.message
    );
    assert!(sim.requests().iter().all(|r| r.status != 414));
    assert!(
        !sim.requests()
            .iter()
            .any(|r| r.query.iter().any(|(_, v)| v.contains("userDirectory eq"))),
        "no user was looked up by name"
    );
    // The Professional seats: their holders read in three requests, given in batches of 50; the batch with the
    // deleted user was refused whole and asked again one POST a user.
    let held_reads = sent(&sim, "GET", "/license/professionalaccesstype/full").len();
    let many = sent(&sim, "POST", "/license/professionalaccesstype/many").len();
    let batches = professional.len().div_ceil(SEATS_PER_BATCH);
    assert_eq!(many, batches, "one POST .../many a batch");
    // 3 reads of holders, and one more for the refused batch.
    assert_eq!(
        held_reads,
        professional.len().div_ceil(ids_per_read("user.id")) + 1
    );
    let one_by_one = sent(&sim, "POST", "/license/professionalaccesstype")
        .iter()
        .filter(|r| r.path.ends_with("accesstype"))
        .count();
    assert_eq!(
        one_by_one,
        SEATS_PER_BATCH - 1,
        "the refused batch, less the deleted user"
    );
}

/// Seats a bulk DELETE left unchanged (here: every one of the first batch, Analyzer seats, its DELETE failing) go one
/// by one beside the seats of the next batch that bulk cannot judge (the Professional seat of a leaver used today):
/// each is read again and deleted on its own access type's endpoint, and no seat is reported gone that QRS still
/// holds.
#[tokio::test]
async fn seats_left_to_one_by_one_from_two_batches_of_two_types_are_each_read_on_their_own_type() {
    let sim = known_site().await;
    // Leavers go first, longest idle first: zara's Analyzer seat (the first batch, with carol's), then pete's
    // Professional seat, used today, which bulk leaves to one by one.
    let leaver = |name: &str| NewUser::new("CORP", name).removed_externally(true);
    let zara = add_seat(&sim, leaver("zara"), SimAccessType::Analyzer, 3);
    let pete = add_seat(&sim, leaver("pete"), SimAccessType::Professional, 0);
    sim.inject(
        // The first batch's DELETE (and its retries) deletes nothing.
        FaultRule::always(Fault::FailAfter {
            deletions: 0,
            status: 500,
        })
        .method("DELETE")
        .path_contains("/selection/")
        .times(4),
    );
    let mut spec = open_policy(&sim);
    spec.leavers = removed_or_blocked_leavers(0);
    let report = run_policy(&sim, &spec, &credentials(&sim)).await;
    assert_eq!(report.deletions, Some(DeletionPath::Bulk));
    let sent_alone = sent(&sim, "DELETE", "/qrs/license/analyzeraccesstype/").len();
    assert!(sent_alone >= 1, "the first batch's seats went one by one");
    for (user, id, access_type) in [
        ("CORP\\zara", zara, SimAccessType::Analyzer),
        ("CORP\\pete", pete, SimAccessType::Professional),
    ] {
        assert_eq!(outcome_of(&report, user), Outcome::Reclaimed, "{user}");
        let row = sim
            .site()
            .allocations(access_type)
            .into_iter()
            .find(|a| a.user == Some(id))
            .expect("QRS keeps the row in quarantine");
        assert!(row.quarantined, "{user}'s seat was deleted");
    }
    // Whatever the report calls gone is gone, or in quarantine, on the site.
    let held: Vec<String> = [SimAccessType::Professional, SimAccessType::Analyzer]
        .into_iter()
        .flat_map(|t| sim.site().allocations(t))
        .filter(|a| !a.quarantined)
        .map(|a| a.id.to_string())
        .collect();
    for e in &report.decisions {
        if matches!(e.outcome, Outcome::Reclaimed | Outcome::AlreadyGone) {
            assert!(!held.contains(&e.allocation_id), "{} is still held", e.user);
        }
    }
}

/// A pause that comes while a selection's DELETE is in flight does not hold back that batch's read-back: its seats
/// have their outcomes while the run waits (a process that died then would lose none of them), and no other
/// batch starts until the brake lets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_reads_the_batch_in_flight_back_before_it_waits() {
    let sim = big_site().await;
    sim.inject(
        FaultRule::always(Fault::Delay(Duration::from_millis(300)))
            .method("DELETE")
            .path_contains("/license/"),
    );
    let (lever, brake) = Brake::new(BrakeState::Released);
    let deletes = |sim: &Simulator| {
        sim.arrivals()
            .iter()
            .position(|a| a.method == "DELETE" && a.path.contains("/qrs/selection/"))
    };
    let pauser = async {
        while deletes(&sim).is_none() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        lever.pause("the policy watch is not established");
        // The batch's seats are read back while the run waits on the brake.
        let read_back = async {
            loop {
                let arrivals = sim.arrivals();
                let after = deletes(&sim).unwrap_or(usize::MAX);
                if arrivals.iter().skip(after).any(|a| {
                    a.method == "GET"
                        && a.path.starts_with("/qrs/license/")
                        && a.path.ends_with("/full")
                }) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        let read = tokio::time::timeout(Duration::from_secs(10), read_back).await;
        let selections = sent(&sim, "POST", "/qrs/selection/").len();
        lever.stop("stopped by the test");
        (read.is_ok(), selections)
    };
    let spec = open_policy(&sim);
    let (report, (read_while_paused, selections)) =
        tokio::join!(run_braked(&sim, &spec, brake, fast_retries()), pauser);
    assert!(
        read_while_paused,
        "the batch was not read back while the run waited"
    );
    assert_eq!(selections, 1, "no other batch began while paused");
    assert_eq!(
        sim.deletions().len() as u64,
        report.totals.reclaimed,
        "every seat the batch deleted is in the report"
    );
}
