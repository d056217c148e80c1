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

mod decision;
mod judge;
mod pattern;
mod rules;
mod sentence;

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet};

use jiff::Timestamp;

use crate::authoring::Evidence;
use crate::model::{AccessType, Allocation, UserDetails, UserIdentity};

pub use decision::{BreakerTrip, Decision, Plan, PlanCounts, Reason, ScopeRule, Verdict};
pub use pattern::UserPattern;
pub use rules::{Leavers, PropertyMatch, RuleSet, Rules};

use judge::{
    Clock, Idle, Judgement, could_be_leaver, could_be_redundant, could_right_size, evaluate,
    judge_dates, judge_identity,
};

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
    user_ids_of(allocations, |a| {
        ((judge_dates(rules, &clock, a).is_ok()
            || could_be_leaver(rules, &clock, a)
            || could_be_redundant(rules, a))
            && judge_identity(rules, a).is_none())
            || could_right_size(rules, &clock, a)
    })
}

/// The users of the allocations `wanted` keeps, sorted and de-duplicated.
fn user_ids_of(allocations: &[Allocation], wanted: impl Fn(&Allocation) -> bool) -> Vec<String> {
    let mut ids: Vec<String> = allocations
        .iter()
        .filter(|a| wanted(a))
        .map(|a| a.user_id.clone())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// The users whose authoring (what they own, `QrsClient::owned_by`) decides whether their Professional seat moves
/// to Analyzer (`spec.rightSize`): the users of seats in use, old enough, past the identity exclusions. Empty when
/// no seat moves. Sorted and de-duplicated.
pub fn users_needing_authoring(
    rules: &Rules,
    allocations: &[Allocation],
    now: Timestamp,
) -> Vec<String> {
    if rules.right_size_after_days().is_none() {
        return Vec::new();
    }
    let clock = Clock::new(rules, now);
    user_ids_of(allocations, |a| could_right_size(rules, &clock, a))
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
    let (authoring, moved) = (HashMap::new(), HashMap::new());
    let known = Known {
        users,
        authoring: &authoring,
        moved: &moved,
    };
    let ranking = rank(rules, allocations, &known, now);
    assemble(
        rules,
        ranking,
        allocations.iter().cloned(),
        allocated_totals,
    )
}

/// What a run knows of its users besides their seats, for the rules that need it.
#[derive(Debug, Clone, Copy)]
pub struct Known<'a> {
    /// User records (tags, custom properties, roles, states), keyed by lower-cased QRS id.
    pub users: &'a HashMap<String, UserDetails>,
    /// What the users of seats in use authored (right-sizing), keyed by lower-cased QRS id: a seat right-sizing
    /// would move whose user is missing here is kept.
    pub authoring: &'a HashMap<String, Evidence>,
    /// Users earlier runs moved to Analyzer, and when: the move is their last use of Qlik as far as their
    /// Analyzer seat's idle clock is concerned.
    pub moved: &'a HashMap<UserIdentity, Timestamp>,
}

/// [`decide`], taking the allocations by value so that they move into the decisions instead of being copied (on a
/// large site that halves the memory a run needs), with what else the run knows of the users.
pub fn decide_owned(
    rules: &Rules,
    allocations: Vec<Allocation>,
    known: &Known<'_>,
    allocated_totals: &BTreeMap<AccessType, u64>,
    now: Timestamp,
) -> Plan {
    let ranking = rank(rules, &allocations, known, now);
    assemble(rules, ranking, allocations.into_iter(), allocated_totals)
}

/// Every allocation judged, in the order given. Professional seats are judged first: an Analyzer seat is redundant
/// (`spec.redundant`) only while its user keeps their Professional seat, so not when that seat is a candidate.
fn judge_all(
    rules: &Rules,
    clock: &Clock,
    allocations: &[Allocation],
    known: &Known<'_>,
) -> Vec<Judgement> {
    let (users, authoring) = (known.users, known.authoring);
    let professional = |a: &&Allocation| a.access_type == AccessType::Professional;
    // One buffer, filled in two passes (a placeholder first): a large site is not judged into two.
    let mut judged: Vec<Judgement> = (0..allocations.len())
        .map(|_| Judgement::Kept(Reason::LoginGroup))
        .collect();
    let mut losing_professional: HashSet<&str> = HashSet::new();
    let mut moving: HashSet<&str> = HashSet::new();
    for (index, allocation) in allocations
        .iter()
        .enumerate()
        .filter(|(_, a)| professional(a))
    {
        let judgement = evaluate(rules, clock, allocation, users, authoring, false);
        if let Judgement::Candidate(idle, _) = &judgement {
            losing_professional.insert(allocation.user_id.as_str());
            if matches!(idle, Idle::RightSize { .. }) {
                moving.insert(allocation.user_id.as_str());
            }
        }
        judged[index] = judgement;
    }
    for (index, allocation) in allocations
        .iter()
        .enumerate()
        .filter(|(_, a)| !professional(a))
    {
        // A user moving to Analyzer keeps the Analyzer seat they hold, whatever it looks like: were an idle rule to
        // take it in the same run, the move would leave them with neither seat.
        if allocation.access_type == AccessType::Analyzer
            && moving.contains(allocation.user_id.as_str())
        {
            judged[index] = Judgement::Kept(Reason::MoveTarget);
            continue;
        }
        // A user moved to Analyzer by an earlier run used Qlik at the move at the latest: their Analyzer seat
        // (one held before the move, unused while they used Professional, or one the move added, never used yet)
        // is not idle before the access type's threshold has passed since.
        if allocation.access_type == AccessType::Analyzer
            && let Some(&at) = known.moved.get(&allocation.user)
            && clock.within_threshold(AccessType::Analyzer, at)
        {
            judged[index] = Judgement::Kept(Reason::MovedRecently { at });
            continue;
        }
        let redundant = rules.redundant_analyzer()
            && allocation.access_type == AccessType::Analyzer
            && allocation.user_also_professional
            && !losing_professional.contains(allocation.user_id.as_str());
        judged[index] = evaluate(rules, clock, allocation, users, authoring, redundant);
    }
    judged
}

/// Every allocation judged, and the candidates in reclaim order.
struct Ranking {
    /// One per allocation, in the order given; candidates carry their rank.
    outcomes: Vec<Judgement>,
    candidates: usize,
    counts: [PlanCounts; AccessType::ALL.len()],
}

fn rank(rules: &Rules, allocations: &[Allocation], known: &Known<'_>, now: Timestamp) -> Ranking {
    let clock = Clock::new(rules, now);
    let mut counts = [PlanCounts::default(); AccessType::ALL.len()];

    let mut outcomes = judge_all(rules, &clock, allocations, known);
    // Leavers first, then redundant seats, then moves to Analyzer, then idle seats, each longest idle first. The sort key carries the
    // access type so that only exact ties reach the allocations' strings.
    let mut candidates: Vec<(u8, Timestamp, usize, usize)> = Vec::new();
    for (index, (allocation, outcome)) in allocations.iter().zip(&outcomes).enumerate() {
        let counts = &mut counts[type_index(allocation.access_type)];
        counts.fetched += 1;
        match &outcome {
            Judgement::Candidate(idle, _) => {
                counts.candidates += 1;
                let key = (idle.rule_order(), idle.since());
                candidates.push((key.0, key.1, type_index(allocation.access_type), index));
            }
            Judgement::Kept(reason) if reason.is_exclusion() => counts.excluded += 1,
            Judgement::Kept(_) => counts.kept += 1,
        }
    }

    candidates.sort_unstable_by(
        |&(rule_a, since_a, type_a, a), &(rule_b, since_b, type_b, b)| {
            (rule_a, since_a, type_a)
                .cmp(&(rule_b, since_b, type_b))
                .then_with(|| tie_break(&allocations[a], &allocations[b]))
                .then(a.cmp(&b))
        },
    );
    let cap = cap(rules);
    for (rank, &(_, _, access_type, index)) in candidates.iter().enumerate() {
        let counts = &mut counts[access_type];
        if rank < cap {
            counts.reclaim += 1;
        } else {
            counts.deferred += 1;
        }
        if let Judgement::Candidate(_, place) = &mut outcomes[index] {
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
            Judgement::Kept(reason) => decisions.push(Decision {
                allocation,
                verdict: Verdict::Keep,
                reason,
            }),
            Judgement::Candidate(idle, rank) => {
                let (verdict, reason) = if rank < cap {
                    (Verdict::Reclaim, idle.reason())
                } else {
                    (
                        Verdict::Deferred,
                        idle.over_cap(rules.max_reclaims_per_run()),
                    )
                };
                if let Some(slot) = ranked.get_mut(rank) {
                    *slot = Some(Decision {
                        allocation,
                        verdict,
                        reason,
                    });
                }
            }
        }
    }
    // `filter_map` (unlike `flatten`) collects in place: `Option<Decision>` is as large as a `Decision`, so the
    // ranked slots become the ranked decisions without a second buffer the size of the candidates.
    #[allow(clippy::filter_map_identity)]
    let ranked: Vec<Decision> = ranked.into_iter().filter_map(|slot| slot).collect();
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

pub(super) fn type_index(access_type: AccessType) -> usize {
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

#[cfg(test)]
mod tests;
