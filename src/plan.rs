//! The decision engine: which allocations to reclaim, which to keep, and why.
//!
//! Pure: `(rules, allocations, user records, now) -> Plan`, no I/O. Taking a seat from someone who still uses it
//! is the worst thing this program can do, so every allocation gets a decision with a reason an administrator
//! can check, and anything the engine cannot be sure about (an unreadable date, a missing user record) is kept.
//!
//! For each allocation, in this order:
//! 1. login access passes are groups, not seats: kept;
//! 2. quarantined (Qlik already deallocated it): kept;
//! 3. an access type the policy does not configure: kept;
//! 4. last use: an unreadable date is kept; used within `inactiveDays` (or in the future) is active; a
//!    never-used allocation without `createdDate` is kept, one created within `neverUsedGraceDays` is in grace;
//! 5. scope (`scope.userDirectories`, then `scope.users`; both must admit the user when both are set);
//! 6. `exclude.userDirectories`, then `exclude.users`;
//! 7. when tags, custom properties or roles are excluded: the user's record (kept when QRS has none), then
//!    `exclude.tags`, `exclude.customProperties`, `exclude.roles`.
//!
//! What passes is a candidate. Candidates are ordered longest idle first across access types (idle since the
//! last use, or for a never-used allocation since its creation); the first `maxReclaimsPerRun` are reclaimed,
//! the rest deferred to the next run. If any access type's candidates exceed `maxReclaimPercent` of its
//! allocations on the site, the breaker trips and nothing is reclaimed.
//!
//! Boundaries: a day is 24 hours. An allocation last used exactly `inactiveDays` ago is inactive (the cutoff is
//! inclusive), as is a never-used one created exactly `neverUsedGraceDays` ago. Candidates at exactly
//! `maxReclaimPercent` do not trip the breaker; one more does.

mod pattern;
mod rules;

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use jiff::Timestamp;
use serde::Serialize;

use crate::model::{AccessType, Allocation, LastUse, UserDetails};

pub use pattern::UserPattern;
pub use rules::Rules;

use rules::{PropertyRule, whole_days};

/// QRS user ids (GUIDs) whose records (tags, custom properties, roles) must be fetched: the users of
/// allocations that would be candidates judging by dates, quarantine, scope and identity exclusions alone.
/// Empty when the rules need no user records. Sorted and de-duplicated.
pub fn users_needing_details(
    rules: &Rules,
    allocations: &[Allocation],
    now: Timestamp,
) -> Vec<String> {
    if !rules.needs_user_details() {
        return Vec::new();
    }
    let clock = Clock::new(rules, now);
    let mut ids: Vec<String> = allocations
        .iter()
        .filter(|a| judge_dates(rules, &clock, a).is_ok() && judge_identity(rules, a).is_none())
        .map(|a| a.user_id.clone())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Decides every allocation. `allocated_totals[t]` is the number of allocations of type `t` on the whole site
/// (in scope or not) that the breaker divides by; a missing total counts the allocations given of that type.
pub fn decide(
    rules: &Rules,
    allocations: &[Allocation],
    users: &HashMap<String, UserDetails>,
    allocated_totals: &BTreeMap<AccessType, u64>,
    now: Timestamp,
) -> Plan {
    let ranking = rank(rules, allocations, users, now);
    assemble(
        rules,
        ranking,
        allocations.iter().cloned(),
        allocated_totals,
    )
}

/// [`decide`], taking the allocations by value so that they move into the decisions instead of being copied:
/// on a large site that halves the memory a run needs.
pub fn decide_owned(
    rules: &Rules,
    allocations: Vec<Allocation>,
    users: &HashMap<String, UserDetails>,
    allocated_totals: &BTreeMap<AccessType, u64>,
    now: Timestamp,
) -> Plan {
    let ranking = rank(rules, &allocations, users, now);
    assemble(rules, ranking, allocations.into_iter(), allocated_totals)
}

/// Every allocation judged, and the candidates in reclaim order.
struct Ranking {
    /// One per allocation, in the order given; candidates carry their rank.
    outcomes: Vec<Outcome>,
    candidates: usize,
    counts: [PlanCounts; AccessType::ALL.len()],
}

fn rank(
    rules: &Rules,
    allocations: &[Allocation],
    users: &HashMap<String, UserDetails>,
    now: Timestamp,
) -> Ranking {
    let clock = Clock::new(rules, now);
    let mut counts = [PlanCounts::default(); AccessType::ALL.len()];

    let mut outcomes = Vec::with_capacity(allocations.len());
    // The sort key carries the access type so that only exact ties reach the allocations' strings.
    let mut candidates: Vec<(Timestamp, usize, usize)> = Vec::new();
    for (index, allocation) in allocations.iter().enumerate() {
        let outcome = evaluate(rules, &clock, allocation, users);
        let counts = &mut counts[type_index(allocation.access_type)];
        counts.fetched += 1;
        match &outcome {
            Outcome::Candidate(idle, _) => {
                counts.candidates += 1;
                candidates.push((idle.since(), type_index(allocation.access_type), index));
            }
            Outcome::Kept(reason) if reason.is_exclusion() => counts.excluded += 1,
            Outcome::Kept(_) => counts.kept += 1,
        }
        outcomes.push(outcome);
    }

    candidates.sort_unstable_by(|&(since_a, type_a, a), &(since_b, type_b, b)| {
        (since_a, type_a)
            .cmp(&(since_b, type_b))
            .then_with(|| tie_break(&allocations[a], &allocations[b]))
            .then(a.cmp(&b))
    });
    let cap = cap(rules);
    for (rank, &(_, access_type, index)) in candidates.iter().enumerate() {
        let counts = &mut counts[access_type];
        if rank < cap {
            counts.reclaim += 1;
        } else {
            counts.deferred += 1;
        }
        if let Outcome::Candidate(_, place) = &mut outcomes[index] {
            *place = rank;
        }
    }
    Ranking {
        outcomes,
        candidates: candidates.len(),
        counts,
    }
}

fn cap(rules: &Rules) -> usize {
    usize::try_from(rules.max_reclaims_per_run()).unwrap_or(usize::MAX)
}

/// Builds the plan from the ranking and the allocations it judged, in the same order.
fn assemble(
    rules: &Rules,
    ranking: Ranking,
    allocations: impl Iterator<Item = Allocation>,
    allocated_totals: &BTreeMap<AccessType, u64>,
) -> Plan {
    let cap = cap(rules);
    // Kept decisions go straight into place in the order given; candidates wait in their rank's slot and are
    // then put in front in one move of the rest. Each decision is built once and moved at most twice.
    let mut ranked: Vec<Option<Decision>> = Vec::new();
    ranked.resize_with(ranking.candidates, || None);
    let mut decisions: Vec<Decision> = Vec::with_capacity(ranking.outcomes.len());
    for (allocation, outcome) in allocations.zip(ranking.outcomes) {
        match outcome {
            Outcome::Kept(reason) => decisions.push(Decision {
                allocation,
                action: Action::Keep,
                reason,
            }),
            Outcome::Candidate(idle, rank) => {
                let (action, reason) = if rank < cap {
                    (Action::Reclaim, idle.reason())
                } else {
                    (
                        Action::Deferred,
                        idle.over_cap(rules.max_reclaims_per_run()),
                    )
                };
                if let Some(slot) = ranked.get_mut(rank) {
                    *slot = Some(Decision {
                        allocation,
                        action,
                        reason,
                    });
                }
            }
        }
    }
    let ranked: Vec<Decision> = ranked.into_iter().flatten().collect();
    decisions.splice(0..0, ranked);

    let per_type: BTreeMap<AccessType, PlanCounts> = AccessType::ALL
        .into_iter()
        .zip(ranking.counts)
        .filter(|&(t, c)| c.fetched > 0 || rules.inactive_days(t).is_some())
        .collect();

    let breaker = per_type.iter().find_map(|(&access_type, counts)| {
        let allocated = allocated_totals
            .get(&access_type)
            .copied()
            .unwrap_or(counts.fetched);
        let over = u128::from(counts.candidates) * 100
            > u128::from(rules.max_reclaim_percent()) * u128::from(allocated);
        over.then_some(BreakerTrip {
            access_type,
            candidates: counts.candidates,
            allocated,
            limit_percent: rules.max_reclaim_percent(),
        })
    });

    Plan {
        decisions,
        breaker,
        per_type,
    }
}

fn type_index(access_type: AccessType) -> usize {
    match access_type {
        AccessType::Professional => 0,
        AccessType::Analyzer => 1,
        AccessType::User => 2,
        AccessType::Login => 3,
    }
}

/// Deterministic order among candidates of one access type idle since the same instant.
fn tie_break(a: &Allocation, b: &Allocation) -> Ordering {
    pattern::cmp_folded(&a.user.directory, &b.user.directory)
        .then_with(|| pattern::cmp_folded(&a.user.user_id, &b.user.user_id))
        .then_with(|| a.id.cmp(&b.id))
}

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
            .take_while(move |d| live && d.action == Action::Reclaim)
    }

    /// What would be reclaimed were it not for the breaker: the report of an aborted run shows these.
    pub fn planned_reclaims(&self) -> impl Iterator<Item = &Decision> {
        self.decisions
            .iter()
            .take_while(|d| d.action == Action::Reclaim)
    }

    /// Candidates, reclaimed or deferred, in reclaim order.
    pub fn candidates(&self) -> impl Iterator<Item = &Decision> {
        self.decisions
            .iter()
            .take_while(|d| d.action != Action::Keep)
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
fn percent(part: u64, whole: u64, limit: u32) -> String {
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
    pub action: Action,
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

/// What happens to an allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Deallocate it.
    Reclaim,
    /// A candidate cut by `maxReclaimsPerRun`; a later run takes it.
    Deferred,
    /// Leave it.
    Keep,
}

impl Action {
    /// Stable name for reports.
    pub fn code(self) -> &'static str {
        match self {
            Action::Reclaim => "reclaim",
            Action::Deferred => "deferred",
            Action::Keep => "keep",
        }
    }
}

impl fmt::Display for Action {
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
        idle_days: i64,
        never_used: bool,
    },
}

impl Reason {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Reason::Inactive { .. } => "inactive",
            Reason::NeverUsed { .. } => "never-used",
            Reason::Active { .. } => "active",
            Reason::NeverUsedGrace { .. } => "never-used-grace",
            Reason::ExcludedUser { .. }
            | Reason::ExcludedDirectory { .. }
            | Reason::ExcludedTag { .. }
            | Reason::ExcludedCustomProperty { .. }
            | Reason::ExcludedRole { .. } => "excluded",
            Reason::OutOfScope { .. } => "out-of-scope",
            Reason::Quarantined { .. } => "quarantined",
            Reason::UnknownDate { .. } | Reason::NoCreatedDate => "unknown-date",
            Reason::Incomplete { .. } => "unknown-data",
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
                | Reason::OutOfScope { .. }
        )
    }
}

/// "less than a day ago", "1 day ago", "12 days ago".
struct Ago(i64);

impl fmt::Display for Ago {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            i64::MIN..=0 => f.write_str("less than a day ago"),
            1 => f.write_str("1 day ago"),
            days => write!(f, "{days} days ago"),
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Inactive {
                idle_days,
                threshold,
            } => write!(f, "not used for {idle_days} days (threshold {threshold})"),
            Reason::NeverUsed {
                allocated_days,
                grace,
            } => write!(
                f,
                "never used; allocated {} (grace {grace})",
                Ago(*allocated_days)
            ),
            Reason::Active {
                idle_days,
                threshold,
            } if *idle_days < 0 => write!(
                f,
                "last use date is in the future; treated as used (threshold {threshold})"
            ),
            Reason::Active {
                idle_days,
                threshold,
            } => write!(f, "used {} (threshold {threshold})", Ago(*idle_days)),
            Reason::NeverUsedGrace {
                allocated_days,
                grace,
            } if *allocated_days < 0 => write!(
                f,
                "never used; createdDate is in the future, treated as within the {grace}-day grace"
            ),
            Reason::NeverUsedGrace {
                allocated_days,
                grace,
            } => write!(
                f,
                "never used; allocated {}, within the {grace}-day grace",
                Ago(*allocated_days)
            ),
            Reason::ExcludedUser { pattern } => {
                write!(f, "excluded by exclude.users pattern {pattern}")
            }
            Reason::ExcludedDirectory { directory } => {
                write!(f, "excluded: user directory {directory}")
            }
            Reason::ExcludedTag { tag } => write!(f, "excluded: tag {tag}"),
            Reason::ExcludedCustomProperty { name, value } => {
                write!(f, "excluded: custom property {name}={value}")
            }
            Reason::ExcludedRole { role } => write!(f, "excluded: role {role}"),
            Reason::OutOfScope {
                rule: ScopeRule::UserDirectories,
            } => f.write_str("outside scope.userDirectories"),
            Reason::OutOfScope {
                rule: ScopeRule::Users,
            } => f.write_str("outside scope.users"),
            Reason::Quarantined { until: Some(until) } => {
                write!(f, "quarantined until {}", until.strftime("%Y-%m-%d"))
            }
            Reason::Quarantined { until: None } => {
                f.write_str("quarantined (Qlik already deallocated it)")
            }
            Reason::UnknownDate { raw } => {
                write!(f, "last use date {raw:?} cannot be read; kept")
            }
            Reason::NoCreatedDate => f.write_str("never used and no createdDate; kept"),
            Reason::Incomplete { field } => write!(
                f,
                "QRS sent no usable {field}; kept (a missing value is never read as none)"
            ),
            Reason::UserNotFound => f.write_str("user record not found in QRS; kept"),
            Reason::LoginGroup => f.write_str("login access passes are groups; never deallocated"),
            Reason::NotManaged { access_type } => write!(
                f,
                "accessTypes.{} is not configured; not touched",
                access_type.key()
            ),
            Reason::OverCap {
                limit,
                idle_days,
                never_used,
            } => {
                write!(
                    f,
                    "over limits.maxReclaimsPerRun ({limit}); left for the next run"
                )?;
                if *never_used {
                    write!(f, " (never used, allocated {})", Ago(*idle_days))
                } else {
                    write!(f, " (not used for {idle_days} days)")
                }
            }
        }
    }
}

/// Instants shared by every allocation of one run.
struct Clock {
    now: Timestamp,
    /// Indexed by `type_index`; `None` for access types the policy does not manage.
    cutoffs: [Option<Timestamp>; AccessType::ALL.len()],
    never_used_cutoff: Timestamp,
}

impl Clock {
    fn new(rules: &Rules, now: Timestamp) -> Clock {
        Clock {
            now,
            cutoffs: AccessType::ALL.map(|t| rules.cutoff(t, now)),
            never_used_cutoff: rules.never_used_cutoff(now),
        }
    }
}

/// How an inactive allocation is inactive.
#[derive(Debug, Clone, Copy)]
enum Idle {
    Used {
        since: Timestamp,
        days: i64,
        threshold: u32,
    },
    Never {
        created: Timestamp,
        days: i64,
        grace: u32,
    },
}

impl Idle {
    fn since(&self) -> Timestamp {
        match *self {
            Idle::Used { since, .. } => since,
            Idle::Never { created, .. } => created,
        }
    }

    fn reason(&self) -> Reason {
        match *self {
            Idle::Used {
                days, threshold, ..
            } => Reason::Inactive {
                idle_days: days,
                threshold,
            },
            Idle::Never { days, grace, .. } => Reason::NeverUsed {
                allocated_days: days,
                grace,
            },
        }
    }

    fn over_cap(&self, limit: u32) -> Reason {
        match *self {
            Idle::Used { days, .. } => Reason::OverCap {
                limit,
                idle_days: days,
                never_used: false,
            },
            Idle::Never { days, .. } => Reason::OverCap {
                limit,
                idle_days: days,
                never_used: true,
            },
        }
    }
}

enum Outcome {
    /// A candidate and, once sorted, its place in the reclaim order.
    Candidate(Idle, usize),
    Kept(Reason),
}

fn evaluate(
    rules: &Rules,
    clock: &Clock,
    allocation: &Allocation,
    users: &HashMap<String, UserDetails>,
) -> Outcome {
    let idle = match judge_dates(rules, clock, allocation) {
        Ok(idle) => idle,
        Err(reason) => return Outcome::Kept(reason),
    };
    if let Some(reason) = judge_identity(rules, allocation) {
        return Outcome::Kept(reason);
    }
    if let Some(reason) = judge_details(rules, allocation, users) {
        return Outcome::Kept(reason);
    }
    Outcome::Candidate(idle, usize::MAX)
}

/// Steps 1 to 4: the allocation itself.
fn judge_dates(rules: &Rules, clock: &Clock, allocation: &Allocation) -> Result<Idle, Reason> {
    let access_type = allocation.access_type;
    if !access_type.is_per_user_seat() {
        return Err(Reason::LoginGroup);
    }
    if let Some(field) = allocation.incomplete {
        return Err(Reason::Incomplete { field });
    }
    if allocation.quarantined {
        return Err(Reason::Quarantined {
            until: allocation.quarantine_end,
        });
    }
    let (Some(threshold), Some(cutoff)) = (
        rules.inactive_days(access_type),
        clock.cutoffs[type_index(access_type)],
    ) else {
        return Err(Reason::NotManaged { access_type });
    };
    match &allocation.last_used {
        LastUse::Unknown(raw) => Err(Reason::UnknownDate { raw: shorten(raw) }),
        &LastUse::At(since) => {
            let days = whole_days(since, clock.now);
            if since > cutoff {
                Err(Reason::Active {
                    idle_days: days,
                    threshold,
                })
            } else {
                Ok(Idle::Used {
                    since,
                    days,
                    threshold,
                })
            }
        }
        LastUse::Never => {
            let Some(created) = allocation.created else {
                return Err(Reason::NoCreatedDate);
            };
            let days = whole_days(created, clock.now);
            let grace = rules.never_used_grace_days();
            if created > clock.never_used_cutoff {
                Err(Reason::NeverUsedGrace {
                    allocated_days: days,
                    grace,
                })
            } else {
                Ok(Idle::Never {
                    created,
                    days,
                    grace,
                })
            }
        }
    }
}

/// Whatever QRS sent goes into reports and logs: keep it short.
fn shorten(raw: &str) -> String {
    const MAX_CHARS: usize = 64;
    match raw.char_indices().nth(MAX_CHARS) {
        Some((end, _)) => format!("{}…", &raw[..end]),
        None => raw.to_string(),
    }
}

/// Steps 5 and 6: scope and identity exclusions, which need nothing beyond the allocation.
fn judge_identity(rules: &Rules, allocation: &Allocation) -> Option<Reason> {
    let user = &allocation.user;
    if !rules.scope_directories.is_empty() && rules.scope_directories.get(&user.directory).is_none()
    {
        return Some(Reason::OutOfScope {
            rule: ScopeRule::UserDirectories,
        });
    }
    if !rules.scope_users.is_empty() && rules.scope_users.first_match(user).is_none() {
        return Some(Reason::OutOfScope {
            rule: ScopeRule::Users,
        });
    }
    if let Some(directory) = rules.exclude_directories.get(&user.directory) {
        return Some(Reason::ExcludedDirectory {
            directory: Arc::clone(directory),
        });
    }
    if let Some(pattern) = rules.exclude_users.first_match(user) {
        return Some(Reason::ExcludedUser {
            pattern: Arc::clone(pattern.shared_text()),
        });
    }
    None
}

/// Step 7: exclusions read from the user's QRS record.
fn judge_details(
    rules: &Rules,
    allocation: &Allocation,
    users: &HashMap<String, UserDetails>,
) -> Option<Reason> {
    if !rules.needs_user_details() {
        return None;
    }
    let Some(details) = users.get(&allocation.user_id) else {
        return Some(Reason::UserNotFound);
    };
    // A list the rules read that QRS did not send is unknown: the user may well hold the excluded role.
    let tags = match needed(&details.tags, !rules.exclude_tags.is_empty(), "tags") {
        Ok(tags) => tags,
        Err(reason) => return Some(reason),
    };
    let properties = match needed(
        &details.custom_properties,
        !rules.exclude_custom_properties.is_empty(),
        "customProperties",
    ) {
        Ok(properties) => properties,
        Err(reason) => return Some(reason),
    };
    let roles = match needed(&details.roles, !rules.exclude_roles.is_empty(), "roles") {
        Ok(roles) => roles,
        Err(reason) => return Some(reason),
    };
    if let Some(tag) = tags.iter().find_map(|t| rules.exclude_tags.get(t)) {
        return Some(Reason::ExcludedTag {
            tag: Arc::clone(tag),
        });
    }
    if !rules.exclude_custom_properties.is_empty() {
        for (name, value) in properties {
            if let Some(reason) = property_exclusion(rules, name, value) {
                return Some(reason);
            }
        }
    }
    if let Some(role) = roles.iter().find_map(|r| rules.exclude_roles.get(r)) {
        return Some(Reason::ExcludedRole {
            role: Arc::clone(role),
        });
    }
    None
}

/// A user record's list as an exclusion reads it: `Err` when the rules need it and QRS did not send it.
fn needed<'a, T>(
    list: &'a Option<Vec<T>>,
    rules_read_it: bool,
    field: &'static str,
) -> Result<&'a [T], Reason> {
    match list {
        Some(list) => Ok(list),
        None if rules_read_it => Err(Reason::Incomplete { field }),
        None => Ok(&[]),
    }
}

fn property_exclusion(rules: &Rules, name: &str, value: &str) -> Option<Reason> {
    let rule: &PropertyRule =
        pattern::with_folded(&[name], |key| rules.exclude_custom_properties.get(key))?;
    let value = match rule.values.get(value) {
        Some(listed) => Arc::clone(listed),
        None if rule.any_value => Arc::from(value),
        None => return None,
    };
    Some(Reason::ExcludedCustomProperty {
        name: Arc::clone(&rule.name),
        value,
    })
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
