//! What the engine decides: a plan of decisions, each with the action and the reason an administrator can check,
//! the counts per access type, and the breaker's verdict.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use jiff::Timestamp;
use serde::Serialize;

use crate::authoring::LastAuthored;
use crate::model::{AccessType, Allocation, LastUse, Rule, UserState};

/// What one run decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// One decision per allocation: candidates first in reclaim order (longest idle first), then the rest in
    /// the order given.
    pub decisions: Vec<Decision>,
    /// Set when the breaker tripped: the run must deallocate nothing.
    pub breaker: Option<BreakerTrip>,
    /// Counts per access type: every configured type, plus any other type seen.
    pub per_type: BTreeMap<AccessType, PlanCounts>,
}

impl Plan {
    pub fn is_aborted(&self) -> bool {
        self.breaker.is_some()
    }

    /// The seats to deallocate, in order. Empty when the breaker tripped.
    pub fn reclaims(&self) -> impl Iterator<Item = &Decision> {
        let live = !self.is_aborted();
        self.decisions
            .iter()
            .take_while(move |d| live && d.verdict == Verdict::Reclaim)
    }

    /// What would be reclaimed were it not for the breaker: the report of an aborted run shows these.
    pub fn planned_reclaims(&self) -> impl Iterator<Item = &Decision> {
        self.decisions
            .iter()
            .take_while(|d| d.verdict == Verdict::Reclaim)
    }

    /// Candidates, reclaimed or deferred, in reclaim order.
    pub fn candidates(&self) -> impl Iterator<Item = &Decision> {
        self.decisions
            .iter()
            .take_while(|d| d.verdict != Verdict::Keep)
    }

    /// The counts summed over all access types.
    pub fn totals(&self) -> PlanCounts {
        self.per_type
            .values()
            .fold(PlanCounts::default(), |sum, c| sum.add(c))
    }
}

/// Counts of one access type. `fetched = candidates + excluded + kept` and `candidates = reclaim + deferred`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PlanCounts {
    /// Allocations given to the engine.
    pub fetched: u64,
    /// Inactive, in scope and not excluded.
    pub candidates: u64,
    /// Candidates within `maxReclaimsPerRun` (counted even when the breaker tripped).
    pub reclaim: u64,
    /// Candidates beyond `maxReclaimsPerRun`.
    pub deferred: u64,
    /// Inactive, but kept by the scope or an exclusion.
    pub excluded: u64,
    /// Kept for any other reason: active, in grace, quarantined, unreadable, no user record, not managed.
    pub kept: u64,
}

impl PlanCounts {
    fn add(self, other: &PlanCounts) -> PlanCounts {
        PlanCounts {
            fetched: self.fetched + other.fetched,
            candidates: self.candidates + other.candidates,
            reclaim: self.reclaim + other.reclaim,
            deferred: self.deferred + other.deferred,
            excluded: self.excluded + other.excluded,
            kept: self.kept + other.kept,
        }
    }
}

/// Why a plan was aborted: the first access type (in `AccessType` order) whose candidates exceed
/// `maxReclaimPercent` of its allocations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BreakerTrip {
    pub access_type: AccessType,
    pub candidates: u64,
    /// All allocations of the type on the site.
    pub allocated: u64,
    pub limit_percent: u32,
}

impl fmt::Display for BreakerTrip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (t, candidates, limit) = (self.access_type, self.candidates, self.limit_percent);
        if self.allocated == 0 {
            write!(
                f,
                "{t}: {candidates} candidates, but the site reports no {t} allocations at all (above the {limit}% limit)"
            )?;
        } else {
            write!(
                f,
                "{t}: {candidates} of {} allocations ({}) are candidates, above the {limit}% limit",
                self.allocated,
                percent(candidates, self.allocated, limit)
            )?;
        }
        f.write_str(
            "; nothing was deallocated. Check the thresholds and the site's lastUsed dates, or raise \
             limits.maxReclaimPercent.",
        )
    }
}

/// `part` of `whole` as a percentage for a message about exceeding `limit`: whole numbers where that is honest,
/// one decimal rounded up just above the limit, so that 501 of 1000 never reads as "50%, above the 50% limit".
pub(super) fn percent(part: u64, whole: u64, limit: u32) -> String {
    let (part, whole) = (u128::from(part) * 100, u128::from(whole));
    let floor = part / whole;
    if part % whole == 0 || floor > u128::from(limit) {
        format!("{floor}%")
    } else {
        let tenths = (part * 10).div_ceil(whole);
        format!("{}.{}%", tenths / 10, tenths % 10)
    }
}

/// The decision about one allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allocation: Allocation,
    pub verdict: Verdict,
    pub reason: Reason,
}

impl Decision {
    /// Since when the allocation has been idle: its last use, or its creation when never used.
    pub fn idle_since(&self) -> Option<Timestamp> {
        match self.allocation.last_used {
            LastUse::At(t) => Some(t),
            LastUse::Never => self.allocation.created,
            LastUse::Unknown(_) => None,
        }
    }
}

/// What the engine decided to do with an allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Deallocate it.
    Reclaim,
    /// A candidate cut by `maxReclaimsPerRun`; a later run takes it.
    Deferred,
    /// Leave it.
    Keep,
}

impl Verdict {
    /// Stable name for reports.
    pub fn code(self) -> &'static str {
        match self {
            Verdict::Reclaim => "reclaim",
            Verdict::Deferred => "deferred",
            Verdict::Keep => "keep",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Which scope list left a user out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScopeRule {
    UserDirectories,
    Users,
}

/// Why an allocation was decided the way it was. `Display` is a sentence for a Qlik administrator; `code` a
/// stable token for JSON and CSV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// Last used `idle_days` ago, at least `threshold` (`inactiveDays`).
    Inactive {
        idle_days: i64,
        threshold: u32,
    },
    /// Never used, created `allocated_days` ago, at least `grace` (`neverUsedGraceDays`).
    NeverUsed {
        allocated_days: i64,
        grace: u32,
    },
    /// The user is a leaver (`spec.leavers`): in `state`, and the seat unused for `idle_days` (since its creation when
    /// `never_used`), at least `after_days` (`leavers.afterDays`).
    Leaver {
        state: UserState,
        idle_days: i64,
        after_days: u32,
        never_used: bool,
    },
    /// An Analyzer seat whose user keeps a Professional seat (`spec.redundant.analyzerWithProfessional`).
    Redundant,
    /// A Professional seat in use whose user authored nothing (no app, sheet or master item made or changed) in
    /// `window_days` (`spec.rightSize.professionalToAnalyzer.afterDays`): it moves to Analyzer. `last` is what they
    /// last authored, before the window.
    RightSize {
        last: Option<LastAuthored>,
        window_days: u32,
        now: Timestamp,
    },
    /// A Professional seat right-sizing would move, but its user authored `last` within `window_days`.
    Authoring {
        last: LastAuthored,
        window_days: u32,
    },
    /// A Professional seat right-sizing would move, but what its user owns could not be read or placed.
    UnclearAuthoring {
        why: String,
    },
    /// An Analyzer seat whose user's Professional seat moves to Analyzer (`spec.rightSize`): it is the seat the
    /// user keeps, so no rule takes it in the same run.
    MoveTarget,
    /// An Analyzer seat whose user an earlier run moved to Analyzer at `at`: its idle clock starts at the move at
    /// the latest, and the threshold has not passed since.
    MovedRecently {
        at: Timestamp,
    },
    /// Used within `threshold` days (negative `idle_days`: a last use date in the future).
    Active {
        idle_days: i64,
        threshold: u32,
    },
    /// Never used, but created within `grace` days.
    NeverUsedGrace {
        allocated_days: i64,
        grace: u32,
    },
    /// Matched an `exclude.users` pattern (as the policy spells it).
    ExcludedUser {
        pattern: Arc<str>,
    },
    /// In an `exclude.userDirectories` directory.
    ExcludedDirectory {
        directory: Arc<str>,
    },
    ExcludedTag {
        tag: Arc<str>,
    },
    /// The user's custom property `name` has `value`.
    ExcludedCustomProperty {
        name: Arc<str>,
        value: Arc<str>,
    },
    ExcludedRole {
        role: Arc<str>,
    },
    /// The user is in a state `exclude.userStates` protects.
    ExcludedUserState {
        state: UserState,
    },
    /// Not admitted by the scope.
    OutOfScope {
        rule: ScopeRule,
    },
    /// Qlik already deallocated the seat and holds it in quarantine.
    Quarantined {
        until: Option<Timestamp>,
    },
    /// QRS sent a last use date that cannot be read (shortened for display).
    UnknownDate {
        raw: String,
    },
    /// Never used and QRS sent no creation date, so the grace cannot be judged.
    NoCreatedDate,
    /// QRS sent no usable value for a field the decision reads (an allocation's `lastUsed`, `createdDate` or
    /// `quarantined`; a user record's `tags`, `customProperties` or `roles` that an exclusion needs).
    Incomplete {
        field: &'static str,
    },
    /// Exclusions need the user's record and QRS has none.
    UserNotFound,
    /// A login access pass belongs to a group, not to one user.
    LoginGroup,
    /// The policy does not configure this access type.
    NotManaged {
        access_type: AccessType,
    },
    /// A candidate beyond `maxReclaimsPerRun`.
    OverCap {
        limit: u32,
        /// The rule that made the seat a candidate.
        rule: Rule,
        idle_days: i64,
        never_used: bool,
    },
}

impl Reason {
    /// The rule that made the seat a candidate, whether this run takes it or the cap defers it; `None` for a seat
    /// no rule would take.
    pub fn candidate_rule(&self) -> Option<Rule> {
        match self {
            Reason::OverCap { rule, .. } => Some(*rule),
            other => other.rule(),
        }
    }

    /// The rule that takes the seat for this reason; `None` for a reason that keeps it.
    pub fn rule(&self) -> Option<Rule> {
        match self {
            Reason::Inactive { .. } | Reason::NeverUsed { .. } => Some(Rule::Idle),
            Reason::Leaver { .. } => Some(Rule::Leaver),
            Reason::Redundant => Some(Rule::Redundant),
            Reason::RightSize { .. } => Some(Rule::RightSize),
            Reason::Active { .. }
            | Reason::NeverUsedGrace { .. }
            | Reason::Authoring { .. }
            | Reason::UnclearAuthoring { .. }
            | Reason::MoveTarget
            | Reason::MovedRecently { .. }
            | Reason::ExcludedUser { .. }
            | Reason::ExcludedDirectory { .. }
            | Reason::ExcludedTag { .. }
            | Reason::ExcludedCustomProperty { .. }
            | Reason::ExcludedRole { .. }
            | Reason::ExcludedUserState { .. }
            | Reason::OutOfScope { .. }
            | Reason::Quarantined { .. }
            | Reason::UnknownDate { .. }
            | Reason::NoCreatedDate
            | Reason::Incomplete { .. }
            | Reason::UserNotFound
            | Reason::LoginGroup
            | Reason::NotManaged { .. }
            | Reason::OverCap { .. } => None,
        }
    }

    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Reason::Inactive { .. } => "inactive",
            Reason::NeverUsed { .. } => "never-used",
            Reason::Leaver { .. } => "leaver",
            Reason::Redundant => "redundant",
            Reason::RightSize { .. } => "right-size",
            Reason::Authoring { .. } => "authoring",
            Reason::MoveTarget => "move-target",
            Reason::MovedRecently { .. } => "moved-recently",
            Reason::Active { .. } => "active",
            Reason::NeverUsedGrace { .. } => "never-used-grace",
            Reason::ExcludedUser { .. }
            | Reason::ExcludedDirectory { .. }
            | Reason::ExcludedTag { .. }
            | Reason::ExcludedCustomProperty { .. }
            | Reason::ExcludedRole { .. }
            | Reason::ExcludedUserState { .. } => "excluded",
            Reason::OutOfScope { .. } => "out-of-scope",
            Reason::Quarantined { .. } => "quarantined",
            Reason::UnknownDate { .. } | Reason::NoCreatedDate => "unknown-date",
            Reason::Incomplete { .. } | Reason::UnclearAuthoring { .. } => "unknown-data",
            Reason::UserNotFound => "user-not-found",
            Reason::LoginGroup => "login-group",
            Reason::NotManaged { .. } => "not-managed",
            Reason::OverCap { .. } => "over-cap",
        }
    }

    /// Whether an inactive allocation was kept by the scope or an exclusion (`PlanCounts::excluded`).
    pub fn is_exclusion(&self) -> bool {
        matches!(
            self,
            Reason::ExcludedUser { .. }
                | Reason::ExcludedDirectory { .. }
                | Reason::ExcludedTag { .. }
                | Reason::ExcludedCustomProperty { .. }
                | Reason::ExcludedRole { .. }
                | Reason::ExcludedUserState { .. }
                | Reason::OutOfScope { .. }
        )
    }
}
