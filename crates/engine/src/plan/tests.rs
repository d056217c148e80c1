//! Unit tests of the engine's own arithmetic: day counts and the breaker's message. The decision rules are
//! tested through a policy, as administrators write them, in the operator crate (`src/policy/tests`).

use jiff::{SignedDuration, Timestamp};

use super::decision::percent;
use super::*;
use crate::model::AccessType::{Professional, User};

fn now() -> Timestamp {
    Timestamp::from_second(1_780_315_200).unwrap_or(Timestamp::UNIX_EPOCH) // 2026-06-01T12:00:00Z
}

fn days_ago(days: i64) -> Timestamp {
    now() - SignedDuration::from_hours(24 * days)
}

#[test]
fn whole_days_round_down() {
    assert_eq!(rules::whole_days(days_ago(3), now()), 3);
    assert_eq!(
        rules::whole_days(days_ago(3) + SignedDuration::from_secs(1), now()),
        2
    );
    assert_eq!(
        rules::whole_days(now() + SignedDuration::from_nanos(1), now()),
        -1
    );
    assert_eq!(rules::whole_days(now(), now()), 0);
}

#[test]
fn breaker_message() {
    let trip = BreakerTrip {
        access_type: Professional,
        candidates: 812,
        allocated: 1000,
        limit_percent: 50,
    };
    assert_eq!(
        trip.to_string(),
        "professional: 812 of 1000 allocations (81%) are candidates, above the 50% limit; nothing was \
         deallocated. Check the thresholds and the site's lastUsed dates, or raise limits.maxReclaimPercent."
    );
    let trip = BreakerTrip {
        access_type: User,
        candidates: 3,
        allocated: 0,
        limit_percent: 50,
    };
    assert!(
        trip.to_string().starts_with(
            "user: 3 candidates, but the site reports no user allocations at all (above the 50% limit);"
        ),
        "{trip}"
    );
    assert_eq!(percent(1, 3, 33), "33.4%");
    assert_eq!(percent(2, 3, 50), "66%");
    assert_eq!(percent(1, 2, 40), "50%");
    assert_eq!(percent(50_001, 100_000, 50), "50.1%");
}

#[test]
fn breaker_percentages_are_whole_where_that_is_honest() {
    assert_eq!(percent(60, 100, 50), "60%");
    assert_eq!(percent(50, 100, 50), "50%", "an exact value stays whole");
    assert_eq!(percent(501, 1000, 50), "50.1%", "just above reads as above");
    assert_eq!(
        percent(1, 3, 33),
        "33.4%",
        "rounded up, never down to the limit"
    );
}
