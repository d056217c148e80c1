use jiff::Timestamp;

use super::*;
use crate::NEVER_USED_SENTINEL;

fn ts(s: &str) -> Timestamp {
    s.parse().expect("valid timestamp")
}

#[test]
fn deallocation_quarantines_recent_and_removes_old() {
    let now = ts("2025-03-10T12:00:00Z");
    let mut s = SiteState::new(7, NEVER_USED_SENTINEL, now);
    let u = s.add_user(&NewUser::new("CORP", "a"), now).expect("user");
    let mk = |s: &mut SiteState, last: LastUsed| {
        let id = s.new_id();
        let created = ts("2024-01-01T00:00:00Z");
        s.insert_allocation(AllocRec {
            last_used: last,
            ..AllocRec::new(id, SimAccessType::Professional, u, created, "")
        })
        .expect("allocation")
    };
    let recent = mk(&mut s, LastUsed::At(ts("2025-03-05T08:00:00Z")));
    let old = mk(&mut s, LastUsed::At(ts("2025-02-01T00:00:00Z")));
    let never = mk(&mut s, LastUsed::Never);

    let (outcome, rec) = s
        .deallocate(SimAccessType::Professional, recent, now, "X\\y")
        .expect("found");
    assert_eq!(outcome, DeletionOutcome::Quarantined);
    assert_eq!(rec.quarantine_end, Some(ts("2025-03-12T08:00:00Z")));
    let (outcome, _) = s
        .deallocate(SimAccessType::Professional, recent, now, "X\\y")
        .expect("found");
    assert_eq!(outcome, DeletionOutcome::AlreadyQuarantined);
    let mut outcome = |kind, id| s.deallocate(kind, id, now, "X\\y").map(|r| r.0);
    assert_eq!(
        outcome(SimAccessType::Professional, old),
        Some(DeletionOutcome::Removed)
    );
    assert_eq!(
        outcome(SimAccessType::Analyzer, never),
        None,
        "wrong type is not found"
    );
    assert_eq!(
        outcome(SimAccessType::Professional, never),
        Some(DeletionOutcome::Removed)
    );
    assert_eq!(outcome(SimAccessType::Professional, old), None, "gone");

    s.expire(ts("2025-03-12T07:59:59Z"));
    assert!(s.allocation(recent).is_some());
    s.expire(ts("2025-03-12T08:00:00Z"));
    assert!(s.allocation(recent).is_none());
}

#[test]
fn deleted_user_keeps_quarantined_row_until_it_ends() {
    let now = ts("2025-03-10T12:00:00Z");
    let mut s = SiteState::new(7, NEVER_USED_SENTINEL, now);
    let u = s
        .add_user(&NewUser::new("CORP", "gone"), now)
        .expect("user");
    let id = s.new_id();
    s.insert_allocation(AllocRec {
        last_used: LastUsed::At(ts("2025-03-09T12:00:00Z")),
        ..AllocRec::new(id, SimAccessType::Analyzer, u, now, "")
    })
    .expect("allocation");
    s.delete_user(u, now, "INTERNAL\\sa_repository")
        .expect("deleted");
    let a = s.allocation(id).expect("row stays");
    assert!(a.quarantined);
    assert_eq!(
        a.deleted_user,
        Some(("CORP".to_string(), "gone".to_string()))
    );
    let json = serde_json::to_value(s.alloc_view(a).full(false)).expect("json");
    assert_eq!(json["deletedUserId"], "gone");
    assert_eq!(json["user"], serde_json::Value::Null);
    s.expire(ts("2025-03-16T12:00:00Z"));
    assert!(s.allocation(id).is_none());
}
