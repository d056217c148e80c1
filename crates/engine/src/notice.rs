//! Notice before reclaim (`spec.notice`): of the seats a run would reclaim, which may go now (warned long enough
//! ago, and unused since), which wait for their notice period, and which users must be warned first. Pure: the run
//! delivers the notices and keeps the pending ones.

use std::collections::HashMap;

use jiff::{SignedDuration, Timestamp};

use crate::model::AccessType;

/// A notice delivered to a user: their seat may go once `reclaim_after` has passed, if still unused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// DIRECTORY\userId.
    pub user: String,
    pub access_type: AccessType,
    /// The allocation warned about, as QRS listed it.
    pub allocation_id: String,
    /// Its last use when warned (ISO 8601 or "never"): a different one now means the user logged in since.
    pub last_used: String,
    pub warned_at: Timestamp,
    pub reclaim_after: Timestamp,
}

/// What to do with a seat the run would reclaim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Warned long enough ago and unused since: reclaim it.
    Reclaim,
    /// Warned, within the notice period: keep it until `reclaim_after`.
    Wait(Timestamp),
    /// Not warned yet (or used since the warning, which cancels it): warn now.
    Warn,
}

/// The pending notices, by allocation id (ids compared as QRS compares GUIDs, ignoring case).
#[derive(Debug, Clone, Default)]
pub struct Pending {
    by_allocation: HashMap<String, Notice>,
}

impl Pending {
    pub fn new(notices: impl IntoIterator<Item = Notice>) -> Self {
        Self {
            by_allocation: notices
                .into_iter()
                .map(|n| (n.allocation_id.to_ascii_lowercase(), n))
                .collect(),
        }
    }

    /// The step for a seat about to be reclaimed, last used `last_used` (as [`Notice::last_used`] writes it).
    pub fn step(&self, allocation_id: &str, last_used: &str, now: Timestamp) -> Step {
        match self.get(allocation_id) {
            Some(notice) if notice.last_used == last_used => {
                if now >= notice.reclaim_after {
                    Step::Reclaim
                } else {
                    Step::Wait(notice.reclaim_after)
                }
            }
            _ => Step::Warn,
        }
    }

    pub fn get(&self, allocation_id: &str) -> Option<&Notice> {
        self.by_allocation.get(&allocation_id.to_ascii_lowercase())
    }

    pub fn len(&self) -> usize {
        self.by_allocation.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_allocation.is_empty()
    }
}

/// When a seat warned at `warned_at` may go.
pub fn reclaim_after(warned_at: Timestamp, days: u32) -> Timestamp {
    warned_at
        .checked_add(SignedDuration::from_hours(24 * i64::from(days)))
        .unwrap_or(Timestamp::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::ts;

    fn notice(id: &str, last_used: &str, warned: &str, days: u32) -> Notice {
        let warned_at = ts(warned);
        Notice {
            user: "CORP\\ann".into(),
            access_type: AccessType::Professional,
            allocation_id: id.into(),
            last_used: last_used.into(),
            warned_at,
            reclaim_after: reclaim_after(warned_at, days),
        }
    }

    #[test]
    fn a_seat_goes_only_after_its_notice_period_and_only_if_unused_since() {
        let id = "0F2C6D8E-1A2B-4C3D-9E8F-0123456789AB";
        let pending = Pending::new([notice(
            id,
            "2026-01-01T00:00:00.000Z",
            "2026-11-01T00:00:00Z",
            14,
        )]);
        let lower = id.to_ascii_lowercase();
        // Inside the period: wait.
        assert_eq!(
            pending.step(
                &lower,
                "2026-01-01T00:00:00.000Z",
                ts("2026-11-10T00:00:00Z")
            ),
            Step::Wait(ts("2026-11-15T00:00:00Z"))
        );
        // After it: reclaim.
        assert_eq!(
            pending.step(
                &lower,
                "2026-01-01T00:00:00.000Z",
                ts("2026-11-15T00:00:00Z")
            ),
            Step::Reclaim
        );
        // A login since the notice cancels it: warn again, whenever.
        assert_eq!(
            pending.step(
                &lower,
                "2026-11-05T08:00:00.000Z",
                ts("2026-12-01T00:00:00Z")
            ),
            Step::Warn
        );
        // Never warned: warn.
        assert_eq!(
            pending.step(
                "1f2c6d8e-1a2b-4c3d-9e8f-0123456789ab",
                "never",
                ts("2026-12-01T00:00:00Z")
            ),
            Step::Warn
        );
    }
}
