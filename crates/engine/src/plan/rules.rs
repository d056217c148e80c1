//! The rules the decision engine reads, compiled from a [`RuleSet`] in the engine's own terms.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};

use super::pattern::{FoldedMap, FoldedSet, PatternSet, UserPattern, fold};
use crate::model::{AccessType, UserState};

const SECONDS_PER_DAY: i64 = 86_400;

/// The access types a policy can manage, in `AccessType` order. Login passes are groups and never managed.
const MANAGED: [AccessType; 3] = [
    AccessType::Professional,
    AccessType::Analyzer,
    AccessType::User,
];

fn slot(access_type: AccessType) -> Option<usize> {
    MANAGED.iter().position(|&t| t == access_type)
}

/// `now` minus whole 24-hour days. A day is 24 hours: the policy's time zone only places the schedule, and
/// QRS dates are UTC instants.
pub(super) fn days_before(now: Timestamp, days: u32) -> Timestamp {
    now.checked_sub(SignedDuration::from_secs(i64::from(days) * SECONDS_PER_DAY))
        .unwrap_or(Timestamp::MIN)
}

/// Whole days from `since` to `now`, rounded down; negative when `since` is in the future.
pub(super) fn whole_days(since: Timestamp, now: Timestamp) -> i64 {
    let elapsed = now.duration_since(since);
    let mut seconds = elapsed.as_secs();
    if elapsed.subsec_nanos() < 0 {
        seconds -= 1;
    }
    seconds.div_euclid(SECONDS_PER_DAY)
}

/// A custom property exclusion.
#[derive(Debug, Clone)]
pub(super) struct PropertyRule {
    /// The policy's spelling, for reports.
    pub(super) name: Arc<str>,
    /// The policy listed no values: any value excludes.
    pub(super) any_value: bool,
    pub(super) values: FoldedSet,
}

/// Validated, pre-compiled rules from a policy spec.
#[derive(Debug, Clone)]
pub struct Rules {
    inactive_days: [Option<u32>; 3],
    never_used_grace_days: u32,
    pub(super) scope_directories: FoldedSet,
    pub(super) scope_users: PatternSet,
    pub(super) exclude_directories: FoldedSet,
    pub(super) exclude_users: PatternSet,
    pub(super) exclude_tags: FoldedSet,
    /// Keyed by the folded property name.
    pub(super) exclude_custom_properties: FoldedMap<PropertyRule>,
    pub(super) exclude_roles: FoldedSet,
    pub(super) exclude_user_states: Vec<UserState>,
    pub(super) leavers: Option<Leavers>,
    redundant_analyzer: bool,
    right_size_after_days: Option<u32>,
    max_reclaims_per_run: u32,
    max_reclaim_percent: u32,
}

/// Users Qlik marks as gone lose their seats sooner than the idle threshold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leavers {
    /// The states that make a user a leaver; never empty.
    pub states: Vec<UserState>,
    /// A leaver's seat unused this many days (since its last use, or its creation when never used) is reclaimed.
    pub after_days: u32,
}

/// The rules in the engine's own terms. The edge (the operator's `policy::validate`) checks a policy and builds this; the engine
/// trusts it: thresholds in range, names that are not empty, patterns already parsed.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    /// Days without use after which a seat of an access type is inactive; a type not listed is left alone.
    pub inactive_days: Vec<(AccessType, u32)>,
    /// Days a never-used seat is left alone after its creation.
    pub never_used_grace_days: u32,
    /// Only users of these directories are considered, when any are listed.
    pub scope_directories: Vec<String>,
    /// Only users matching one of these patterns are considered, when any are listed.
    pub scope_users: Vec<UserPattern>,
    pub exclude_directories: Vec<String>,
    pub exclude_users: Vec<UserPattern>,
    pub exclude_tags: Vec<String>,
    pub exclude_custom_properties: Vec<PropertyMatch>,
    pub exclude_roles: Vec<String>,
    /// Users in any of these states are never reclaimed.
    pub exclude_user_states: Vec<UserState>,
    /// Leavers' seats go first and sooner; `None` leaves leavers to the idle threshold like anyone else.
    pub leavers: Option<Leavers>,
    /// A user holding both keeps Professional; the Analyzer seat is reclaimed, whatever its last use.
    pub redundant_analyzer: bool,
    /// A Professional seat at least this many days old, in use, whose user authored nothing in as many days,
    /// moves to Analyzer (`spec.rightSize.professionalToAnalyzer.afterDays`); `None`: no seat moves.
    pub right_size_after_days: Option<u32>,
    pub max_reclaims_per_run: u32,
    pub max_reclaim_percent: u32,
}

/// A custom property whose values exclude a user; no values means any value does.
#[derive(Debug, Clone, Default)]
pub struct PropertyMatch {
    pub name: String,
    pub values: Vec<String>,
}

impl Rules {
    /// Compiles the rules: name lists into case-insensitive sets, custom properties by name.
    pub fn new(set: RuleSet) -> Rules {
        let mut inactive_days = [None; 3];
        for (access_type, days) in set.inactive_days {
            if let Some(i) = slot(access_type) {
                inactive_days[i] = Some(days);
            }
        }
        Rules {
            inactive_days,
            never_used_grace_days: set.never_used_grace_days,
            scope_directories: folded(&set.scope_directories),
            scope_users: set.scope_users.into_iter().collect(),
            exclude_directories: folded(&set.exclude_directories),
            exclude_users: set.exclude_users.into_iter().collect(),
            exclude_tags: folded(&set.exclude_tags),
            exclude_custom_properties: custom_properties(&set.exclude_custom_properties),
            exclude_roles: folded(&set.exclude_roles),
            exclude_user_states: set.exclude_user_states,
            leavers: set.leavers.filter(|l| !l.states.is_empty()),
            redundant_analyzer: set.redundant_analyzer,
            right_size_after_days: set.right_size_after_days,
            max_reclaims_per_run: set.max_reclaims_per_run,
            max_reclaim_percent: set.max_reclaim_percent,
        }
    }

    /// The configured access types (professional, analyzer, user), in `AccessType` order.
    pub fn access_types(&self) -> Vec<AccessType> {
        MANAGED
            .iter()
            .zip(self.inactive_days)
            .filter(|(_, days)| days.is_some())
            .map(|(&t, _)| t)
            .collect()
    }

    /// `inactiveDays` of an access type; `None` when the policy does not manage it.
    pub fn inactive_days(&self, access_type: AccessType) -> Option<u32> {
        slot(access_type).and_then(|i| self.inactive_days[i])
    }

    pub fn never_used_grace_days(&self) -> u32 {
        self.never_used_grace_days
    }

    /// `now` minus `inactiveDays` (24-hour days); `None` when the access type is not configured. An allocation
    /// last used at or before the cutoff is inactive, so an allocation used exactly `inactiveDays` ago is
    /// inactive, one used a second later is not. QRS can be asked for `lastUsed le '<cutoff>'`, which also
    /// returns never-used allocations (their sentinel date is in 1753).
    pub fn cutoff(&self, access_type: AccessType, now: Timestamp) -> Option<Timestamp> {
        self.inactive_days(access_type)
            .map(|days| days_before(now, days))
    }

    /// A never-used allocation created at or before this instant is inactive.
    pub fn never_used_cutoff(&self, now: Timestamp) -> Timestamp {
        days_before(now, self.never_used_grace_days)
    }

    /// Whether any rule reads user records (exclusions by tag, custom property, role or state; leavers) from QRS.
    pub fn needs_user_details(&self) -> bool {
        self.exclusions_need_details() || self.leavers.is_some()
    }

    /// Whether an exclusion reads user records: then a seat whose user has no record is kept.
    pub(super) fn exclusions_need_details(&self) -> bool {
        !self.exclude_tags.is_empty()
            || !self.exclude_custom_properties.is_empty()
            || !self.exclude_roles.is_empty()
            || !self.exclude_user_states.is_empty()
    }

    /// Whether an Analyzer seat of a user who holds a Professional seat too is reclaimed (`spec.redundant`).
    pub fn redundant_analyzer(&self) -> bool {
        self.redundant_analyzer
    }

    /// Right-sizing's window (`spec.rightSize.professionalToAnalyzer.afterDays`), if the policy moves seats.
    pub fn right_size_after_days(&self) -> Option<u32> {
        self.right_size_after_days
    }

    /// A Professional seat created at or before this instant is old enough to move to Analyzer; `None` when no
    /// seat moves.
    pub fn right_size_cutoff(&self, now: Timestamp) -> Option<Timestamp> {
        self.right_size_after_days
            .map(|days| days_before(now, days))
    }

    /// The leaver rule, if the policy has one.
    pub fn leavers(&self) -> Option<&Leavers> {
        self.leavers.as_ref()
    }

    /// A leaver's seat last used (or, never used, created) at or before this instant is reclaimed.
    pub fn leaver_cutoff(&self, now: Timestamp) -> Option<Timestamp> {
        self.leavers
            .as_ref()
            .map(|l| days_before(now, l.after_days))
    }

    pub fn max_reclaims_per_run(&self) -> u32 {
        self.max_reclaims_per_run
    }

    pub fn max_reclaim_percent(&self) -> u32 {
        self.max_reclaim_percent
    }
}

fn folded(names: &[String]) -> FoldedSet {
    let mut set = FoldedSet::default();
    for name in names {
        set.insert(name);
    }
    set
}

fn custom_properties(properties: &[PropertyMatch]) -> FoldedMap<PropertyRule> {
    let mut rules = FoldedMap::<PropertyRule>::default();
    for property in properties {
        let rule = rules
            .entry(fold(&property.name).into_boxed_str())
            .or_insert_with(|| PropertyRule {
                name: Arc::from(property.name.as_str()),
                any_value: false,
                values: FoldedSet::default(),
            });
        // Two entries for one property merge; "any value" in either wins, being the wider exclusion.
        rule.any_value |= property.values.is_empty();
        for value in &property.values {
            rule.values.insert(value);
        }
    }
    rules
}
