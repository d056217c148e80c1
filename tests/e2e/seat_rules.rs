//! The rules beyond idleness, against the simulator: leavers (`spec.leavers`), protected user states
//! (`spec.exclude.userStates`) and redundant seats (`spec.redundant`).

use qlik_license_reclaimer::policy::{RunResult, UserStateName};
use qlik_license_reclaimer::run::Outcome;
use qrs_simulator::SimAccessType::{Analyzer, Professional};
use qrs_simulator::{NewUser, SimAccessType};

use crate::support::{
    add_seat, allocate_used, credentials, decision_about, dry_run_policy, known_site,
    removed_or_blocked_leavers, run_policy,
};

#[tokio::test]
async fn a_leavers_recent_seat_is_found_with_one_request_per_type_and_goes_first() {
    let sim = known_site().await;
    add_seat(
        &sim,
        NewUser::new("CORP", "gone").removed_externally(true),
        SimAccessType::Professional,
        3,
    );
    add_seat(
        &sim,
        NewUser::new("CORP", "barred").blacklisted(true),
        SimAccessType::Analyzer,
        1,
    );
    add_seat(
        &sim,
        NewUser::new("CORP", "resting").inactive(true),
        SimAccessType::Analyzer,
        3,
    );
    let mut spec = dry_run_policy(&sim);
    spec.limits.max_reclaim_percent = 100;
    spec.leavers = removed_or_blocked_leavers(2);
    sim.clear_records();
    let report = run_policy(&sim, &spec, &credentials(&sim)).await;
    assert_eq!(report.result, RunResult::Succeeded, "{}", report.message);

    let entry = |user: &str| decision_about(&report, user);
    let gone = entry("CORP\\gone").expect("the leaver's seat is listed");
    assert_eq!(
        (gone.outcome, gone.reason_code),
        (Outcome::WouldReclaim, "leaver")
    );
    assert!(
        gone.reason.contains("removed from the user directory"),
        "{}",
        gone.reason
    );
    let first = report
        .decisions
        .iter()
        .find(|e| e.outcome == Outcome::WouldReclaim)
        .expect("something would be reclaimed");
    assert_eq!(first.user, "CORP\\gone", "leavers come first");
    assert_eq!(
        (report.totals.leavers, report.totals.redundant),
        (1, 0),
        "counted by rule"
    );
    // Used a day ago: not yet two days, and the idle threshold is 30; inactive users are not leavers here.
    for quiet in ["CORP\\barred", "CORP\\resting"] {
        assert!(
            entry(quiet).is_none_or(|e| e.outcome == Outcome::Kept),
            "{quiet}"
        );
    }

    // One more list request per access type, whatever the number of leavers.
    let leaver_queries = sim
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/full"))
        .filter(|r| {
            r.query
                .iter()
                .any(|(k, v)| k == "filter" && v.contains("user.removedExternally eq true"))
        })
        .count();
    assert_eq!(leaver_queries, 2, "professional and analyzer");
}

#[tokio::test]
async fn a_protected_state_keeps_an_idle_seat() {
    let sim = known_site().await;
    let resting = NewUser::new("CORP", "resting").inactive(true);
    add_seat(&sim, resting, SimAccessType::Professional, 200);
    let mut spec = dry_run_policy(&sim);
    spec.limits.max_reclaim_percent = 100;
    spec.exclude.user_states = vec![UserStateName::Inactive];
    let report = run_policy(&sim, &spec, &credentials(&sim)).await;
    let resting = decision_about(&report, "CORP\\resting").expect("listed");
    assert_eq!(
        (resting.outcome, resting.reason_code),
        (Outcome::Kept, "excluded")
    );
    assert!(report.reclaimed().count() > 0, "others are still reclaimed");
}

#[tokio::test]
async fn a_redundant_analyzer_seat_goes_unless_the_professional_seat_goes() {
    let sim = known_site().await;
    // Uses both seats: keeps Professional, loses the Analyzer seat it does not need.
    let both = add_seat(&sim, NewUser::new("CORP", "both"), Professional, 1);
    allocate_used(&sim, both, Analyzer, 1);
    // Loses an idle Professional seat, so keeps the Analyzer seat it uses.
    let idle = add_seat(&sim, NewUser::new("CORP", "idlepro"), Professional, 120);
    allocate_used(&sim, idle, Analyzer, 1);

    // Its Professional seat is in quarantine (deallocated, no access meanwhile): the Analyzer seat is all it has.
    let parked = sim
        .site()
        .add_user(NewUser::new("CORP", "parked"))
        .expect("user");
    let now = sim.now();
    let ago = |days: i64| now - jiff::SignedDuration::from_hours(24 * days);
    sim.site()
        .allocate(Professional, parked, Some(ago(2)), ago(400), true)
        .expect("seat");
    allocate_used(&sim, parked, Analyzer, 1);

    let mut spec = dry_run_policy(&sim);
    spec.limits.max_reclaim_percent = 100;
    spec.redundant.analyzer_with_professional = true;
    sim.clear_records();
    let report = run_policy(&sim, &spec, &credentials(&sim)).await;
    assert_eq!(report.result, RunResult::Succeeded, "{}", report.message);
    let decision = |user: &str, access_type: &str| {
        report
            .decisions
            .iter()
            .find(|e| e.user == user && e.access_type.key() == access_type)
            .map(|e| (e.outcome, e.reason_code))
    };
    assert_eq!(
        decision("CORP\\both", "analyzer"),
        Some((Outcome::WouldReclaim, "redundant"))
    );
    assert_eq!(
        (report.totals.leavers, report.totals.redundant),
        (0, 1),
        "counted by rule"
    );
    assert!(
        decision("CORP\\parked", "analyzer").is_none_or(|(outcome, _)| outcome == Outcome::Kept),
        "a quarantined Professional seat gives no access: the Analyzer seat stays"
    );
    assert_eq!(
        decision("CORP\\both", "professional"),
        None,
        "in use: not even listed"
    );
    assert_eq!(
        decision("CORP\\idlepro", "professional"),
        Some((Outcome::WouldReclaim, "inactive"))
    );
    assert!(
        decision("CORP\\idlepro", "analyzer").is_none_or(|(outcome, _)| outcome == Outcome::Kept),
        "the Analyzer seat of a user losing Professional stays"
    );
    let tables = sim
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/table"))
        .count();
    assert_eq!(
        tables, 2,
        "who holds Professional and Analyzer seats: two table reads"
    );
}

/// A Professional seat whose `excess` QRS leaves empty may be beyond the licence (no access) or not: its user's
/// Analyzer seat is not taken as redundant, and the report shows it kept for data QRS did not send.
#[tokio::test]
async fn an_analyzer_seat_beside_a_professional_seat_of_unknown_excess_stays_and_is_reported() {
    let sim = known_site().await;
    let mut professional = Vec::new();
    for name in ["unsure", "both"] {
        let user = sim
            .site()
            .add_user(NewUser::new("CORP", name))
            .expect("user");
        professional.push(allocate_used(&sim, user, Professional, 1));
        allocate_used(&sim, user, Analyzer, 1);
    }
    sim.site().omit_excess(professional[0]).expect("seat");

    let mut spec = dry_run_policy(&sim);
    spec.limits.max_reclaim_percent = 100;
    spec.redundant.analyzer_with_professional = true;
    let report = run_policy(&sim, &spec, &credentials(&sim)).await;
    assert_eq!(report.result, RunResult::Succeeded, "{}", report.message);
    let analyzer = |user: &str| {
        report
            .decisions
            .iter()
            .find(|e| e.user == user && e.access_type.key() == "analyzer")
            .map(|e| (e.outcome, e.reason_code, e.reason.clone()))
    };
    let Some((outcome, code, reason)) = analyzer("CORP\\unsure") else {
        panic!("the seat is not in the report")
    };
    assert_eq!((outcome, code), (Outcome::Kept, "unknown-data"), "{reason}");
    assert!(reason.contains("excess"), "{reason}");
    assert!(
        report.totals.unknown >= 1,
        "counted as unknown: {:?}",
        report.totals
    );
    assert_eq!(
        analyzer("CORP\\both").map(|(outcome, code, _)| (outcome, code)),
        Some((Outcome::WouldReclaim, "redundant")),
        "beside a Professional seat that says it gives access, the Analyzer seat is still redundant"
    );
}

#[tokio::test]
async fn seats_allocated_beyond_the_licence_are_reported_as_excess() {
    let sim = known_site().await;
    let site = sim.site();
    let all = site.allocations(SimAccessType::Professional);
    let held = all.iter().filter(|a| !a.quarantined).count() as u64;
    // A quarantined seat still takes a licence until its quarantine ends.
    let quarantined = all.len() as u64 - held;
    // The licence shrank to one Professional seat.
    let mut seats = site.seat_totals();
    seats.professional = 1;
    site.set_seat_totals(seats);
    let report = run_policy(&sim, &dry_run_policy(&sim), &credentials(&sim)).await;
    let professional = report
        .seats
        .get(&qlik_license_reclaimer::model::AccessType::Professional)
        .expect("seat counts");
    assert!(held > 1, "the known site holds several Professional seats");
    assert_eq!(professional.total, 1);
    // Exactly the seats beyond the licence: every seat that takes a licence but the one the licence grants.
    assert!(
        quarantined > 0,
        "the known site has a quarantined Professional seat"
    );
    assert_eq!(
        professional.excess,
        held + quarantined - 1,
        "{professional:?}, {held} held, {quarantined} quarantined"
    );
    assert_eq!(professional.allocated, held);
    assert_eq!(professional.quarantined, quarantined);
}
