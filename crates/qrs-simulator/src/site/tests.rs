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
        s.insert_allocation(AllocRec {
            id,
            kind: SimAccessType::Professional,
            user: Some(u),
            deleted_user: None,
            created: ts("2024-01-01T00:00:00Z"),
            modified: ts("2024-01-01T00:00:00Z"),
            modified_by: String::new(),
            last_used: last,
            excess: false,
            quarantined: false,
            quarantine_end: None,
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
    assert_eq!(
        s.deallocate(SimAccessType::Professional, old, now, "X\\y")
            .map(|r| r.0),
        Some(DeletionOutcome::Removed)
    );
    assert!(
        s.deallocate(SimAccessType::Analyzer, never, now, "X\\y")
            .is_none(),
        "wrong type is not found"
    );
    assert_eq!(
        s.deallocate(SimAccessType::Professional, never, now, "X\\y")
            .map(|r| r.0),
        Some(DeletionOutcome::Removed)
    );
    assert!(
        s.deallocate(SimAccessType::Professional, old, now, "X\\y")
            .is_none()
    );

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
        id,
        kind: SimAccessType::Analyzer,
        user: Some(u),
        deleted_user: None,
        created: now,
        modified: now,
        modified_by: String::new(),
        last_used: LastUsed::At(ts("2025-03-09T12:00:00Z")),
        excess: false,
        quarantined: false,
        quarantine_end: None,
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
