use super::*;
use crate::model::{AccessType, UserIdentity};
use crate::policy::TypeCounts;
use crate::report::Returned;

/// etcd's default limit on one request, and so on one object.
const ETCD_OBJECT_BYTES: usize = 1536 * 1024;

fn entry(user: &str, outcome: Outcome, reason_code: &'static str) -> Entry {
    Entry {
        reason_code,
        // The rule the plan gives the reason of this code.
        rule: match reason_code {
            "inactive" | "never-used" => Some(crate::model::Rule::Idle),
            "leaver" => Some(crate::model::Rule::Leaver),
            "redundant" => Some(crate::model::Rule::Redundant),
            _ => None,
        },
        error: (outcome == Outcome::Failed).then(|| "QRS answered 500".to_string()),
        ..crate::testing::entry(user, outcome)
    }
}

fn report(decisions: Vec<Entry>, allocated: u64) -> RunReport {
    let totals = TypeCounts {
        allocated,
        ..Default::default()
    };
    crate::testing::succeeded_report("reclaimed", totals, decisions)
}

#[test]
fn lists_what_was_taken_and_counts_what_was_kept_by_reason() {
    let record = RunRecord::of(&report(
        vec![
            entry("CORP\\gone", Outcome::Reclaimed, "leaver"),
            entry("CORP\\both", Outcome::AlreadyGone, "redundant"),
            entry("CORP\\idle", Outcome::Failed, "inactive"),
            entry("CORP\\later", Outcome::Deferred, "inactive"),
            entry("CORP\\back", Outcome::UsedSinceRead, "inactive"),
            entry("CORP\\vip", Outcome::Kept, "excluded"),
            entry("CORP\\vip2", Outcome::Kept, "excluded"),
        ],
        20,
    ));
    let listed: Vec<(&str, RecordedAction, Rule)> = record
        .decisions
        .iter()
        .map(|d| (d.user.as_str(), d.action, d.rule))
        .collect();
    assert_eq!(
        listed,
        [
            ("CORP\\gone", RecordedAction::Reclaimed, Rule::Leaver),
            ("CORP\\both", RecordedAction::Reclaimed, Rule::Redundant),
            ("CORP\\idle", RecordedAction::Failed, Rule::Idle),
        ]
    );
    assert!(record.decisions[1].reason.contains("already deallocated"));
    assert_eq!(
        record.decisions[2].error.as_deref(),
        Some("QRS answered 500")
    );
    let kept: Vec<(&str, u64)> = record.kept.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    // 20 allocated, 7 read: the 13 not read were used within their threshold.
    assert_eq!(
        kept,
        [
            ("active", 13),
            ("deferred", 1),
            ("excluded", 2),
            ("used-since-read", 1)
        ]
    );
    assert_eq!(record.reclaimed().count(), 2);
    assert_eq!(record.decisions_omitted, 0);
}

#[test]
fn a_dry_run_records_what_it_would_have_taken() {
    let mut dry = report(
        vec![entry("CORP\\a", Outcome::WouldReclaim, "never-used")],
        1,
    );
    dry.dry_run = true;
    let record = RunRecord::of(&dry);
    assert!(record.header.dry_run);
    assert_eq!(record.decisions[0].action, RecordedAction::WouldReclaim);
    assert_eq!(record.reclaimed().count(), 0, "a dry run took nothing");
    let json = serde_json::to_value(&record).expect("json");
    assert_eq!(json["decisions"][0]["action"], "WouldReclaim");
    assert_eq!(json["decisions"][0]["accessType"], "professional");
    assert_eq!(json["decisions"][0]["rule"], "idle");
}

#[test]
fn returns_are_listed_up_to_a_bound_and_counted_in_full() {
    let mut r = report(Vec::new(), 0);
    r.returns = (0..RETURNS_LISTED + 7)
        .map(|i| Returned {
            user: UserIdentity::new("CORP", format!("u{i}")),
            access_type: AccessType::Analyzer,
            reclaimed_by: "earlier".into(),
        })
        .collect();
    let record = RunRecord::of(&r);
    assert_eq!(record.returns.len(), RETURNS_LISTED);
    assert_eq!(record.returned, RETURNS_LISTED as u64 + 7);
    assert_eq!(record.returns[0].user, "CORP\\u0");
    assert_eq!(record.returns[0].access_type, "analyzer");
}

/// The largest run the policy allows, with long (but real-world) names and a failure message on every seat, fits in
/// one etcd object with every seat listed.
#[test]
fn the_largest_allowed_run_fits_in_one_object_with_every_seat_listed() {
    let cap = crate::policy::MAX_RECLAIMS_PER_RUN as usize;
    let decisions = (0..cap)
        .map(|i| {
            // Seats a bulk DELETE may have taken (recorded as taken, with their user's id and why they could not
            // be read back: the largest kind), and a failed one.
            let outcome = if i == 0 {
                Outcome::Failed
            } else {
                Outcome::Unconfirmed
            };
            let mut e = entry(
                &format!("CORPORATE-EMEA\\firstname.lastname{i:05}@example-company.com"),
                outcome,
                "inactive",
            );
            // Longer than a record keeps.
            e.error = Some(format!("QRS answered 500 on DELETE: {}", "x".repeat(400)));
            e
        })
        .collect();
    let record = RunRecord::of(&report(decisions, cap as u64));
    assert_eq!(record.decisions.len(), cap);
    assert_eq!(record.decisions_omitted, 0);
    let with_ids = record.decisions.iter().filter(|d| d.user_qrs_id.is_some());
    assert_eq!(
        with_ids.count(),
        cap - 1,
        "the seats restore looks at carry their user's id"
    );
    let error = record.decisions[0].error.as_deref().unwrap_or_default();
    assert_eq!(error.chars().count(), ERROR_CHARS + 3, "{error}");
    let bytes = serde_json::to_vec(&record).expect("json").len();
    assert!(bytes < ETCD_OBJECT_BYTES - 256 * 1024, "{bytes} bytes");
}

/// Names at QRS's limits (255 characters each part) cannot all be listed: the list stops within the budget and
/// says how many it left out.
#[test]
fn names_at_their_limits_are_omitted_beyond_the_budget_and_counted() {
    let cap = crate::policy::MAX_RECLAIMS_PER_RUN as usize;
    let long = "x".repeat(255);
    let decisions = (0..cap)
        .map(|i| {
            entry(
                &format!("{long}\\{long}{i}"),
                Outcome::Reclaimed,
                "inactive",
            )
        })
        .collect();
    let record = RunRecord::of(&report(decisions, cap as u64));
    assert!(record.decisions_omitted > 0);
    assert_eq!(
        record.decisions.len() as u64 + record.decisions_omitted,
        cap as u64
    );
    let bytes = serde_json::to_vec(&record).expect("json").len();
    assert!(bytes <= DECISION_BYTES + 64 * 1024, "{bytes} bytes");
    assert!(bytes < ETCD_OBJECT_BYTES);
}

/// A restore of the largest run, every seat refused with a long reason, still leaves the record within one etcd
/// object: the failed seats are listed first, and those left out are counted.
#[test]
fn a_restore_of_the_largest_run_is_listed_within_its_budget() {
    use crate::record::{RestoreOutcome, RestoreStatus, RestoredSeat};
    let cap = crate::policy::MAX_RECLAIMS_PER_RUN as usize;
    let seat = |i: usize, outcome| RestoredSeat {
        user: format!("CORPORATE-EMEA\\firstname.lastname{i:05}@example-company.com"),
        access_type: "professional".into(),
        outcome,
        reason: format!(
            "QRS refused the allocation ({}): free a professional seat",
            "x".repeat(200)
        ),
    };
    let seats: Vec<RestoredSeat> = (0..cap)
        .map(|i| {
            seat(
                i,
                if i < 10 {
                    RestoreOutcome::Restored
                } else {
                    RestoreOutcome::Failed
                },
            )
        })
        .collect();
    let status = RestoreStatus {
        answered: "1".into(),
        result: RunResult::Failed,
        dry_run: false,
        time: k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(jiff::Timestamp::now()),
        message: String::new(),
        restored: 10,
        skipped: 0,
        failed: cap as u64 - 10,
        seats,
        seats_omitted: 0,
    };
    let bounded = status.bounded();
    assert!(bounded.seats_omitted > 0);
    assert_eq!(
        bounded.seats.len() as u64 + bounded.seats_omitted,
        cap as u64
    );
    assert!(
        bounded
            .seats
            .iter()
            .all(|s| s.outcome == RestoreOutcome::Failed),
        "failed seats first"
    );
    let bytes = serde_json::to_vec(&bounded.seats).expect("json").len();
    assert!(bytes <= RESTORE_BYTES, "{bytes} bytes");
    // With the largest decisions, the whole record fits in one object.
    assert!(DECISION_BYTES + bytes + 64 * 1024 < ETCD_OBJECT_BYTES);
    // Listed whole when it fits.
    let small = RestoreStatus {
        seats: status.seats[..5].to_vec(),
        ..status.clone()
    };
    assert_eq!(small.bounded(), small);
}
