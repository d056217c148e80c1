//! Property tests: random sites and policies against the promises the engine makes to an administrator, and
//! against a slow reference model written straight from the rules.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;
use proptest::sample::subsequence;

use super::plan::{base_spec, now};
use crate::model::{AccessType, Allocation, LastUse, UserDetails, UserIdentity};
use crate::plan::*;
use crate::policy::{AccessTypeRule, CustomPropertyMatch, LicenseCleanupPolicySpec};

const DIRECTORIES: [&str; 5] = ["CORP", "corp", "INTERNAL", "Ext", "ÆØÅ"];
const USERS: [&str; 8] = [
    "jdoe",
    "JDoe",
    "sa_api",
    "sa_repository",
    "alice",
    "bob",
    "carol",
    "bjørn",
];
const PATTERNS: [&str; 7] = [
    r"INTERNAL\sa_*",
    r"*\jdoe",
    r"CORP\*",
    r"corp\ALICE",
    r"*\b*",
    r"ext\*o*",
    r"æøå\BJØRN",
];
const TAGS: [&str; 3] = ["VIP", "board", "Finance"];
const ROLES: [&str; 2] = ["RootAdmin", "ContentAdmin"];
const PROPERTIES: [&str; 2] = ["LicenseCleanup", "Dept"];
const VALUES: [&str; 3] = ["Exempt", "exempt", "Finance"];

#[derive(Debug, Clone)]
struct Scenario {
    spec: LicenseCleanupPolicySpec,
    allocations: Vec<Allocation>,
    users: HashMap<String, UserDetails>,
    totals: BTreeMap<AccessType, u64>,
}

impl Scenario {
    fn rules(&self) -> Rules {
        match crate::policy::rules(&self.spec) {
            Ok(rules) => rules,
            Err(e) => panic!("generated an invalid spec: {e}"),
        }
    }

    fn decide(&self) -> Plan {
        decide(
            &self.rules(),
            &self.allocations,
            &self.users,
            &self.totals,
            now(),
        )
    }
}

fn guid(user: &UserIdentity) -> String {
    format!(
        "guid-{}-{}",
        user.directory.to_lowercase(),
        user.user_id.to_lowercase()
    )
}

/// An instant around `days` ago, often exactly on a day boundary, where off-by-one mistakes live.
fn instant() -> impl Strategy<Value = Timestamp> {
    (
        -3i64..45,
        prop_oneof![Just(0i64), Just(-1), Just(1), -86_399i64..86_400],
    )
        .prop_map(|(days, seconds)| now() - SignedDuration::from_secs(days * 86_400 + seconds))
}

fn last_use() -> impl Strategy<Value = LastUse> {
    prop_oneof![
        6 => instant().prop_map(LastUse::At),
        3 => Just(LastUse::Never),
        1 => Just(LastUse::Unknown("garbage".into())),
    ]
}

fn access_type() -> impl Strategy<Value = AccessType> {
    prop_oneof![
        4 => Just(AccessType::Professional),
        3 => Just(AccessType::Analyzer),
        3 => Just(AccessType::User),
        1 => Just(AccessType::Login),
    ]
}

fn allocation() -> impl Strategy<Value = Allocation> {
    (
        access_type(),
        0..DIRECTORIES.len(),
        0..USERS.len(),
        last_use(),
        proptest::option::weighted(0.9, instant()),
        proptest::bool::weighted(0.1),
        proptest::option::weighted(
            0.05,
            proptest::sample::select(&["lastUsed", "createdDate", "quarantined"][..]),
        ),
    )
        .prop_map(
            |(access_type, d, u, last_used, created, quarantined, incomplete)| {
                let user = UserIdentity::new(DIRECTORIES[d], USERS[u]);
                Allocation {
                    id: String::new(),
                    access_type,
                    user_id: guid(&user),
                    user_name: user.user_id.clone(),
                    user,
                    last_used,
                    created,
                    quarantined,
                    quarantine_end: None,
                    incomplete,
                    user_also_professional: false,
                }
            },
        )
}

fn names(pool: &'static [&'static str], max: usize) -> impl Strategy<Value = Vec<String>> {
    prop_oneof![
        2 => Just(Vec::new()),
        1 => subsequence(pool, 1..=max.min(pool.len())),
    ]
    .prop_map(|v| v.into_iter().map(str::to_string).collect())
}

fn threshold() -> impl Strategy<Value = Option<AccessTypeRule>> {
    proptest::option::weighted(0.7, 7u32..20)
        .prop_map(|d| d.map(|inactive_days| AccessTypeRule { inactive_days }))
}

fn custom_properties() -> impl Strategy<Value = Vec<CustomPropertyMatch>> {
    prop_oneof![
        3 => Just(Vec::new()),
        1 => proptest::collection::vec(
            (proptest::sample::select(&PROPERTIES[..]), names(&VALUES, 2)),
            1..=2,
        )
        .prop_map(|v| {
            v.into_iter()
                .map(|(name, values)| CustomPropertyMatch { name: name.to_string(), values })
                .collect()
        }),
    ]
}

fn spec() -> impl Strategy<Value = LicenseCleanupPolicySpec> {
    (
        (threshold(), threshold(), threshold(), 1u32..20),
        (names(&DIRECTORIES, 2), names(&PATTERNS, 3)),
        (
            names(&PATTERNS, 3),
            names(&DIRECTORIES, 2),
            names(&TAGS, 2),
            names(&ROLES, 1),
            custom_properties(),
        ),
        (1u32..30, prop_oneof![1u32..=100, Just(100)]),
    )
        .prop_map(
            |((p, n, u, grace), (scope_dirs, scope_users), exclude, (cap, percent))| {
                let mut spec = base_spec();
                spec.access_types.professional = p;
                spec.access_types.analyzer = n;
                spec.access_types.user = u;
                if spec.access_types.professional.is_none()
                    && spec.access_types.analyzer.is_none()
                    && spec.access_types.user.is_none()
                {
                    spec.access_types.professional = Some(AccessTypeRule { inactive_days: 30 });
                }
                spec.never_used_grace_days = grace;
                spec.scope.user_directories = scope_dirs;
                spec.scope.users = scope_users;
                (
                    spec.exclude.users,
                    spec.exclude.user_directories,
                    spec.exclude.tags,
                    spec.exclude.roles,
                    spec.exclude.custom_properties,
                ) = exclude;
                spec.limits.max_reclaims_per_run = cap;
                spec.limits.max_reclaim_percent = percent;
                spec
            },
        )
}

/// A user state as QRS reports it: mostly not, sometimes so, now and then not at all.
fn state() -> impl Strategy<Value = Option<bool>> {
    prop_oneof![7 => Just(Some(false)), 2 => Just(Some(true)), 1 => Just(None)]
}

fn user_details(id: String) -> impl Strategy<Value = Option<UserDetails>> {
    proptest::option::weighted(
        0.9,
        (
            (state(), state(), state()),
            // A list QRS did not send is unknown, never "has none".
            proptest::option::weighted(0.9, names(&TAGS, 2)),
            proptest::option::weighted(0.9, names(&ROLES, 2)),
            proptest::option::weighted(
                0.9,
                proptest::collection::vec(
                    (
                        proptest::sample::select(&PROPERTIES[..]),
                        proptest::sample::select(&VALUES[..]),
                    ),
                    0..2,
                ),
            ),
        ),
    )
    .prop_map(move |d| {
        d.map(
            |((removed, blocked, inactive), tags, roles, properties)| UserDetails {
                id: id.clone(),
                removed_externally: removed,
                blocked,
                inactive,
                email: None,
                tags,
                roles,
                custom_properties: properties.map(|properties| {
                    properties
                        .into_iter()
                        .map(|(n, v)| (n.to_string(), v.to_string()))
                        .collect()
                }),
            },
        )
    })
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (spec(), proptest::collection::vec(allocation(), 0..60))
        .prop_flat_map(|(spec, mut allocations)| {
            for (i, a) in allocations.iter_mut().enumerate() {
                a.id = format!("alloc-{i:03}");
            }
            let ids: BTreeSet<String> = allocations.iter().map(|a| a.user_id.clone()).collect();
            let users: Vec<_> = ids.into_iter().map(user_details).collect();
            let totals = proptest::collection::vec(proptest::option::of(0u64..80), 4);
            (Just(spec), Just(allocations), users, totals)
        })
        .prop_map(|(spec, allocations, users, totals)| Scenario {
            spec,
            allocations,
            users: users
                .into_iter()
                .flatten()
                .map(|d| (d.id.clone(), d))
                .collect(),
            totals: AccessType::ALL
                .into_iter()
                .zip(totals)
                .filter_map(|(t, n)| n.map(|n| (t, n)))
                .collect(),
        })
}

// ---- A reference model, written for clarity, not speed ----

fn glob(pattern: &[char], input: &[char]) -> bool {
    match pattern.split_first() {
        None => input.is_empty(),
        Some(('*', rest)) => (0..=input.len()).any(|k| glob(rest, &input[k..])),
        Some((c, rest)) => input.first() == Some(c) && glob(rest, &input[1..]),
    }
}

fn lower(s: &str) -> Vec<char> {
    s.to_lowercase().chars().collect()
}

fn pattern_matches(pattern: &str, user: &UserIdentity) -> bool {
    let Some((d, u)) = pattern.split_once('\\') else {
        return false;
    };
    glob(&lower(d), &lower(&user.directory)) && glob(&lower(u), &lower(&user.user_id))
}

fn eq_ci(a: &str, b: &str) -> bool {
    a.to_lowercase() == b.to_lowercase()
}

fn days(n: u32) -> SignedDuration {
    SignedDuration::from_hours(24 * i64::from(n))
}

fn threshold_of(spec: &LicenseCleanupPolicySpec, t: AccessType) -> Option<u32> {
    let rule = match t {
        AccessType::Professional => &spec.access_types.professional,
        AccessType::Analyzer => &spec.access_types.analyzer,
        AccessType::User => &spec.access_types.user,
        AccessType::Login => return None,
    };
    rule.as_ref().map(|r| r.inactive_days)
}

/// Whether the allocation is inactive by its dates alone.
fn inactive_by_dates(spec: &LicenseCleanupPolicySpec, a: &Allocation) -> bool {
    let Some(threshold) = threshold_of(spec, a.access_type) else {
        return false;
    };
    if a.quarantined || a.incomplete.is_some() {
        return false;
    }
    match (&a.last_used, a.created) {
        (LastUse::At(t), _) => now().duration_since(*t) >= days(threshold),
        (LastUse::Never, Some(c)) => now().duration_since(c) >= days(spec.never_used_grace_days),
        _ => false,
    }
}

/// Whether scope, `exclude.userDirectories` or `exclude.users` protects the user.
fn protected_by_identity(spec: &LicenseCleanupPolicySpec, a: &Allocation) -> bool {
    let scope = &spec.scope;
    let exclude = &spec.exclude;
    (!scope.user_directories.is_empty()
        && !scope
            .user_directories
            .iter()
            .any(|d| eq_ci(d, &a.user.directory)))
        || (!scope.users.is_empty() && !scope.users.iter().any(|p| pattern_matches(p, &a.user)))
        || exclude
            .user_directories
            .iter()
            .any(|d| eq_ci(d, &a.user.directory))
        || exclude.users.iter().any(|p| pattern_matches(p, &a.user))
}

/// Whether the user's record protects the user: `None` when a record is needed and missing.
fn protected_by_record(
    spec: &LicenseCleanupPolicySpec,
    a: &Allocation,
    users: &HashMap<String, UserDetails>,
) -> Option<bool> {
    let exclude = &spec.exclude;
    if exclude.tags.is_empty() && exclude.roles.is_empty() && exclude.custom_properties.is_empty() {
        return Some(false);
    }
    let record = users.get(&a.user_id)?;
    // A list an exclusion reads that QRS did not send: unknown, so protected like a missing record.
    if (!exclude.tags.is_empty() && record.tags.is_none())
        || (!exclude.roles.is_empty() && record.roles.is_none())
        || (!exclude.custom_properties.is_empty() && record.custom_properties.is_none())
    {
        return None;
    }
    Some(
        record
            .tags
            .iter()
            .flatten()
            .any(|t| exclude.tags.iter().any(|x| eq_ci(x, t)))
            || record
                .roles
                .iter()
                .flatten()
                .any(|r| exclude.roles.iter().any(|x| eq_ci(x, r)))
            || record
                .custom_properties
                .iter()
                .flatten()
                .any(|(name, value)| {
                    exclude.custom_properties.iter().any(|m| {
                        eq_ci(&m.name, name)
                            && (m.values.is_empty() || m.values.iter().any(|v| eq_ci(v, value)))
                    })
                }),
    )
}

/// Whether anything (scope, an exclusion, a missing record) keeps the user's seat.
fn protected(
    spec: &LicenseCleanupPolicySpec,
    a: &Allocation,
    users: &HashMap<String, UserDetails>,
) -> bool {
    protected_by_identity(spec, a) || protected_by_record(spec, a, users) != Some(false)
}

fn reference_candidates(s: &Scenario) -> BTreeSet<String> {
    s.allocations
        .iter()
        .filter(|a| inactive_by_dates(&s.spec, a) && !protected(&s.spec, a, &s.users))
        .map(|a| a.id.clone())
        .collect()
}

fn ids<'a>(decisions: impl Iterator<Item = &'a Decision>) -> BTreeSet<String> {
    decisions.map(|d| d.allocation.id.clone()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn plan_keeps_every_promise(s in scenario()) {
        let plan = s.decide();
        let spec = &s.spec;
        let cap = spec.limits.max_reclaims_per_run as usize;

        // Every allocation is decided exactly once.
        let mut decided: Vec<&str> = plan.decisions.iter().map(|d| d.allocation.id.as_str()).collect();
        decided.sort_unstable();
        let mut given: Vec<&str> = s.allocations.iter().map(|a| a.id.as_str()).collect();
        given.sort_unstable();
        prop_assert_eq!(decided, given);

        for d in plan.decisions.iter().filter(|d| d.verdict != Verdict::Keep) {
            let a = &d.allocation;
            prop_assert!(!protected(spec, a, &s.users), "{} of {} is protected but {}", a.id, a.user, d.reason);
            prop_assert!(!a.quarantined, "{} is quarantined", a.id);
            prop_assert!(a.incomplete.is_none(), "{} is incomplete", a.id);
            prop_assert!(a.access_type != AccessType::Login, "{} is a login pass", a.id);
            let threshold = threshold_of(spec, a.access_type);
            prop_assert!(threshold.is_some(), "{} is of an unmanaged type", a.id);
            match (&a.last_used, a.created) {
                (LastUse::At(t), _) => prop_assert!(
                    now().duration_since(*t) >= days(threshold.unwrap_or(u32::MAX)),
                    "{} was used within its threshold: {}", a.id, d.reason
                ),
                (LastUse::Never, Some(c)) => prop_assert!(
                    now().duration_since(c) >= days(spec.never_used_grace_days),
                    "{} is within the never-used grace: {}", a.id, d.reason
                ),
                (last, created) => prop_assert!(false, "{} is a candidate with {:?} / {:?}", a.id, last, created),
            }
        }

        // The totals are the sums of the per-type counts, and every allocation is counted once.
        let totals = plan.totals();
        let sum = |field: fn(&PlanCounts) -> u64| plan.per_type.values().map(field).sum::<u64>();
        prop_assert_eq!(totals.fetched, sum(|c| c.fetched));
        prop_assert_eq!(totals.candidates, sum(|c| c.candidates));
        prop_assert_eq!(totals.reclaim, sum(|c| c.reclaim));
        prop_assert_eq!(totals.deferred, sum(|c| c.deferred));
        prop_assert_eq!(totals.excluded, sum(|c| c.excluded));
        prop_assert_eq!(totals.kept, sum(|c| c.kept));
        prop_assert_eq!(totals.fetched, plan.decisions.len() as u64);

        prop_assert!(plan.reclaims().count() <= cap);
        if plan.is_aborted() {
            prop_assert_eq!(plan.reclaims().count(), 0);
        }

        let since: Vec<Timestamp> = plan.reclaims().filter_map(Decision::idle_since).collect();
        prop_assert_eq!(since.len(), plan.reclaims().count());
        prop_assert!(since.windows(2).all(|w| w[0] <= w[1]), "reclaims out of order: {:?}", since);

        // Candidates come first, the reclaimed ones before the deferred ones.
        let verdicts: Vec<Verdict> = plan.decisions.iter().map(|d| d.verdict).collect();
        let first_deferred = verdicts.iter().position(|&a| a != Verdict::Reclaim).unwrap_or(verdicts.len());
        let first_kept = verdicts.iter().position(|&a| a == Verdict::Keep).unwrap_or(verdicts.len());
        prop_assert!(verdicts[..first_deferred].iter().all(|&a| a == Verdict::Reclaim));
        prop_assert!(verdicts[first_deferred..first_kept].iter().all(|&a| a == Verdict::Deferred));
        prop_assert!(verdicts[first_kept..].iter().all(|&a| a == Verdict::Keep));

        for (t, c) in &plan.per_type {
            prop_assert_eq!(c.fetched, c.candidates + c.excluded + c.kept, "{}", t);
            prop_assert_eq!(c.candidates, c.reclaim + c.deferred, "{}", t);
            let fetched = s.allocations.iter().filter(|a| a.access_type == *t).count() as u64;
            prop_assert_eq!(c.fetched, fetched);
        }
    }

    #[test]
    fn plan_matches_the_reference_model(s in scenario()) {
        let plan = s.decide();
        let expected = reference_candidates(&s);
        prop_assert_eq!(ids(plan.candidates()), expected.clone());

        let cap = s.spec.limits.max_reclaims_per_run as usize;
        prop_assert_eq!(plan.planned_reclaims().count(), expected.len().min(cap));

        let percent = u128::from(s.spec.limits.max_reclaim_percent);
        let trips: Vec<AccessType> = AccessType::ALL
            .into_iter()
            .filter(|t| {
                let candidates = s.allocations.iter().filter(|a| a.access_type == *t && expected.contains(&a.id)).count();
                let fetched = s.allocations.iter().filter(|a| a.access_type == *t).count() as u64;
                let total = s.totals.get(t).copied().unwrap_or(fetched);
                candidates as u128 * 100 > percent * u128::from(total)
            })
            .collect();
        prop_assert_eq!(plan.breaker.as_ref().map(|b| b.access_type), trips.first().copied());

        // Inactive but kept by scope or an exclusion is what `excluded` counts; a missing record is not one.
        for t in AccessType::ALL {
            let excluded = s.allocations.iter()
                .filter(|a| a.access_type == t && inactive_by_dates(&s.spec, a))
                .filter(|a| protected_by_identity(&s.spec, a) || protected_by_record(&s.spec, a, &s.users) == Some(true))
                .count() as u64;
            let counted = plan.per_type.get(&t).map_or(0, |c| c.excluded);
            prop_assert_eq!(counted, excluded, "{}", t);
        }
    }

    #[test]
    fn same_site_in_any_order_gives_the_same_plan(
        (s, shuffled) in scenario().prop_flat_map(|s| {
            let allocations = s.allocations.clone();
            (Just(s), Just(allocations).prop_shuffle())
        })
    ) {
        let plan = s.decide();
        let mut other = s.clone();
        other.allocations = shuffled;
        let other_plan = other.decide();
        let reclaim_order = |p: &Plan| p.planned_reclaims().map(|d| d.allocation.id.clone()).collect::<Vec<_>>();
        prop_assert_eq!(reclaim_order(&plan), reclaim_order(&other_plan));
        prop_assert_eq!(ids(plan.reclaims()), ids(other_plan.reclaims()));
        prop_assert_eq!(ids(plan.candidates()), ids(other_plan.candidates()));
        prop_assert_eq!(&plan.breaker, &other_plan.breaker);
        prop_assert_eq!(&plan.per_type, &other_plan.per_type);
    }

    #[test]
    fn details_are_asked_for_every_would_be_candidate(s in scenario()) {
        let rules = s.rules();
        let asked = users_needing_details(&rules, &s.allocations, now());
        if !rules.needs_user_details() {
            prop_assert!(asked.is_empty());
            return Ok(());
        }
        prop_assert!(asked.windows(2).all(|w| w[0] < w[1]), "not sorted and unique: {:?}", asked);
        // Every candidate's user was asked for, and nobody whose allocations are all kept by dates or identity.
        let plan = s.decide();
        for d in plan.candidates() {
            prop_assert!(asked.binary_search(&d.allocation.user_id).is_ok());
        }
        for id in &asked {
            prop_assert!(s.allocations.iter().any(|a| &a.user_id == id
                && inactive_by_dates(&s.spec, a)
                && !protected_by_identity(&s.spec, a)));
        }
    }
}

/// A scenario with leavers: the same random site and policy, plus `spec.leavers` with some states and afterDays.
fn leaver_scenario() -> impl Strategy<Value = Scenario> {
    (scenario(), any::<(bool, bool, bool)>(), 0u32..10).prop_map(
        |(mut s, (removed, blocked, inactive), after)| {
            s.spec.leavers = Some(crate::policy::LeaversSpec {
                removed_externally: removed || !(blocked || inactive),
                blocked,
                inactive,
                after_days: after,
            });
            s
        },
    )
}

/// The reasons that keep a seat whoever its user is: a leaver's seat must be kept for them too.
const KEPT_WHOEVER: [&str; 8] = [
    "excluded",
    "out-of-scope",
    "quarantined",
    "unknown-data",
    "unknown-date",
    "login-group",
    "not-managed",
    "user-not-found",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn leavers_never_override_an_exclusion_quarantine_or_the_limits(s in leaver_scenario()) {
        let with = s.decide();
        let mut without = s.clone();
        without.spec.leavers = None;
        let without = without.decide();
        let leavers = s.spec.leavers.clone().unwrap_or_else(|| unreachable!());

        for kept in without.decisions.iter().filter(|d| KEPT_WHOEVER.contains(&d.reason.code())) {
            let same = with.decisions.iter().find(|d| d.allocation.id == kept.allocation.id);
            prop_assert!(
                same.is_some_and(|d| d.verdict == Verdict::Keep),
                "{} was kept ({}) without leavers but not with them", kept.allocation.id, kept.reason
            );
        }
        prop_assert!(with.reclaims().count() <= s.spec.limits.max_reclaims_per_run as usize);
        if with.is_aborted() {
            prop_assert_eq!(with.reclaims().count(), 0);
        }
        // The breaker counts leavers: a type with more candidates than without leavers can only trip it sooner.
        for (t, c) in &with.per_type {
            let before = without.per_type.get(t).map_or(0, |c| c.candidates);
            prop_assert!(c.candidates >= before, "{}: {} candidates with leavers, {} without", t, c.candidates, before);
        }
        if without.is_aborted() {
            prop_assert!(with.is_aborted(), "leavers turned an aborted run into one that deletes");
        }

        // Leavers first: no idle seat is reclaimed while a leaver's seat is deferred, and every leaver's seat
        // taken is one whose record says a leaver state and that has gone unused afterDays.
        let leaver = |d: &&Decision| d.reason.code() == "leaver";
        let deferred_leavers = with.decisions.iter().filter(|d| d.verdict == Verdict::Deferred).any(|d| {
            s.users.get(&d.allocation.user_id).is_some_and(|u| leaver_states(&leavers).iter().any(|&st| u.in_state(st) == Some(true)))
                && d.idle_since().is_some_and(|t| now().duration_since(t) >= days(leavers.after_days))
        });
        if deferred_leavers {
            prop_assert!(with.reclaims().all(|d| leaver(&d)), "an idle seat went before a leaver's");
        }
        for d in with.reclaims().filter(leaver) {
            let user = s.users.get(&d.allocation.user_id);
            prop_assert!(
                user.is_some_and(|u| leaver_states(&leavers).iter().any(|&st| u.in_state(st) == Some(true))),
                "{} taken as a leaver's without a leaver state", d.allocation.id
            );
            prop_assert!(
                d.idle_since().is_some_and(|t| now().duration_since(t) >= days(leavers.after_days)),
                "{} taken as a leaver's inside afterDays", d.allocation.id
            );
        }
    }
}

fn leaver_states(leavers: &crate::policy::LeaversSpec) -> Vec<crate::model::UserState> {
    use crate::model::UserState;
    [
        (leavers.removed_externally, UserState::RemovedExternally),
        (leavers.blocked, UserState::Blocked),
        (leavers.inactive, UserState::Inactive),
    ]
    .into_iter()
    .filter_map(|(on, state)| on.then_some(state))
    .collect()
}
