//! How one allocation is judged, steps 1 to 7 of the engine: its dates, its user's identity, then its user's
//! record. What passes is a candidate; anything else is kept, with the reason.

use std::collections::HashMap;
use std::sync::Arc;

use jiff::Timestamp;

use super::decision::{Reason, ScopeRule};
use super::rules::{PropertyRule, Rules, whole_days};
use super::type_index;
use crate::authoring::{Evidence, LastAuthored};
use crate::model::{AccessType, Allocation, LastUse, Rule, UserDetails, UserState};

/// Instants shared by every allocation of one run.
pub(super) struct Clock {
    now: Timestamp,
    /// Indexed by `type_index`; `None` for access types the policy does not manage.
    cutoffs: [Option<Timestamp>; AccessType::ALL.len()],
    never_used_cutoff: Timestamp,
    leaver_cutoff: Option<Timestamp>,
    right_size_cutoff: Option<Timestamp>,
}

impl Clock {
    pub(super) fn new(rules: &Rules, now: Timestamp) -> Clock {
        Clock {
            now,
            cutoffs: AccessType::ALL.map(|t| rules.cutoff(t, now)),
            never_used_cutoff: rules.never_used_cutoff(now),
            leaver_cutoff: rules.leaver_cutoff(now),
            right_size_cutoff: rules.right_size_cutoff(now),
        }
    }

    /// Whether a use of `access_type` at `at` is recent enough that the idle rule would keep the seat: after the
    /// type's cutoff, and after the leavers' too when that rule is on. An access type the policy does not manage
    /// is never taken by the idle rule: any use counts as recent.
    pub(super) fn within_threshold(&self, access_type: AccessType, at: Timestamp) -> bool {
        let idle = self.cutoffs[super::type_index(access_type)].is_none_or(|cutoff| at > cutoff);
        let leaver = self.leaver_cutoff.is_none_or(|cutoff| at > cutoff);
        idle && leaver
    }
}

/// How an inactive allocation is inactive.
#[derive(Debug, Clone)]
pub(super) enum Idle {
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
    /// An Analyzer seat whose user keeps a Professional seat (`spec.redundant`), whatever its last use.
    Redundant { since: Timestamp },
    /// The user is a leaver (`spec.leavers`) and the seat has gone unused `leavers.afterDays`.
    Leaver {
        state: UserState,
        since: Timestamp,
        days: i64,
        after_days: u32,
        never_used: bool,
    },
    /// A Professional seat in use whose user authored nothing within the window (`spec.rightSize`): it moves to
    /// Analyzer. `since` is its last use.
    RightSize {
        since: Timestamp,
        last: Option<LastAuthored>,
        window_days: u32,
        now: Timestamp,
    },
}

impl Idle {
    pub(super) fn since(&self) -> Timestamp {
        match *self {
            Idle::Used { since, .. }
            | Idle::Leaver { since, .. }
            | Idle::Redundant { since }
            | Idle::RightSize { since, .. } => since,
            Idle::Never { created, .. } => created,
        }
    }

    /// Which rule took the seat, in reclaim order: leavers first, then redundant seats, then moves to Analyzer,
    /// then idle seats.
    pub(super) fn rule_order(&self) -> u8 {
        match self {
            Idle::Leaver { .. } => 0,
            Idle::Redundant { .. } => 1,
            Idle::RightSize { .. } => 2,
            Idle::Used { .. } | Idle::Never { .. } => 3,
        }
    }

    pub(super) fn reason(&self) -> Reason {
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
            Idle::Redundant { .. } => Reason::Redundant,
            Idle::RightSize {
                ref last,
                window_days,
                now,
                ..
            } => Reason::RightSize {
                last: last.clone(),
                window_days,
                now,
            },
            Idle::Leaver {
                state,
                days,
                after_days,
                never_used,
                ..
            } => Reason::Leaver {
                state,
                idle_days: days,
                after_days,
                never_used,
            },
        }
    }

    pub(super) fn over_cap(&self, limit: u32) -> Reason {
        match *self {
            Idle::Used { days, .. } => Reason::OverCap {
                limit,
                rule: Rule::Idle,
                idle_days: days,
                never_used: false,
            },
            Idle::Never { days, .. } => Reason::OverCap {
                limit,
                rule: Rule::Idle,
                idle_days: days,
                never_used: true,
            },
            Idle::Leaver {
                days, never_used, ..
            } => Reason::OverCap {
                limit,
                rule: Rule::Leaver,
                idle_days: days,
                never_used,
            },
            Idle::Redundant { .. } => Reason::OverCap {
                limit,
                rule: Rule::Redundant,
                idle_days: 0,
                never_used: false,
            },
            Idle::RightSize { since, now, .. } => Reason::OverCap {
                limit,
                rule: Rule::RightSize,
                idle_days: whole_days(since, now),
                never_used: false,
            },
        }
    }
}

pub(super) enum Judgement {
    /// A candidate and, once sorted, its place in the reclaim order.
    Candidate(Idle, usize),
    Kept(Reason),
}

/// `redundant`: the seat is an Analyzer seat whose user keeps a Professional seat in this run (so taking it leaves
/// the user with access).
pub(super) fn evaluate(
    rules: &Rules,
    clock: &Clock,
    allocation: &Allocation,
    users: &HashMap<String, UserDetails>,
    authoring: &HashMap<String, Evidence>,
    redundant: bool,
) -> Judgement {
    if let Some(reason) = judge_seat(rules, allocation) {
        return Judgement::Kept(reason);
    }
    // A leaver's seat goes as a leaver's, and a redundant seat as such, whatever the idle threshold says.
    let rule = as_leaver(rules, clock, allocation, users).or_else(|| {
        redundant.then(|| Idle::Redundant {
            since: unused_since(allocation).map_or(clock.now, |(since, _)| since),
        })
    });
    let idle = match (rule, judge_idle(rules, clock, allocation)) {
        (Some(rule), _) => rule,
        (None, Ok(idle)) => idle,
        (None, Err(reason)) => {
            // A seat in use may still move to Analyzer: after the exclusions, its user's authoring decides.
            let Some(judged) = as_right_size(rules, clock, allocation, &reason, authoring) else {
                return Judgement::Kept(reason);
            };
            if let Some(reason) = judge_identity(rules, allocation)
                .or_else(|| judge_details(rules, allocation, users))
            {
                return Judgement::Kept(reason);
            }
            return match judged {
                Ok(idle) => Judgement::Candidate(idle, usize::MAX),
                Err(reason) => Judgement::Kept(reason),
            };
        }
    };
    if let Some(reason) = judge_identity(rules, allocation) {
        return Judgement::Kept(reason);
    }
    if let Some(reason) = judge_details(rules, allocation, users) {
        return Judgement::Kept(reason);
    }
    Judgement::Candidate(idle, usize::MAX)
}

/// Steps 1 to 5: the allocation itself, then its dates against the idle threshold.
pub(super) fn judge_dates(
    rules: &Rules,
    clock: &Clock,
    allocation: &Allocation,
) -> Result<Idle, Reason> {
    match judge_seat(rules, allocation) {
        Some(reason) => Err(reason),
        None => judge_idle(rules, clock, allocation),
    }
}

/// Steps 1 to 4: login groups, incomplete answers, quarantine, access types the policy leaves alone.
fn judge_seat(rules: &Rules, allocation: &Allocation) -> Option<Reason> {
    let access_type = allocation.access_type;
    if !access_type.is_per_user_seat() {
        return Some(Reason::LoginGroup);
    }
    if let Some(field) = allocation.incomplete {
        return Some(Reason::Incomplete { field });
    }
    if allocation.quarantined {
        return Some(Reason::Quarantined {
            until: allocation.quarantine_end,
        });
    }
    rules
        .inactive_days(access_type)
        .is_none()
        .then_some(Reason::NotManaged { access_type })
}

/// Since when the seat has gone unused: its last use, or its creation when never used; `None` when unknown.
fn unused_since(allocation: &Allocation) -> Option<(Timestamp, bool)> {
    match allocation.last_used {
        LastUse::At(since) => Some((since, false)),
        LastUse::Never => allocation.created.map(|created| (created, true)),
        LastUse::Unknown(_) => None,
    }
}

/// Whether a seat is a leaver's (`spec.leavers`) that has gone unused `leavers.afterDays`: the user's record says
/// they are in a leaver state (a state QRS did not send is not taken for one).
fn as_leaver(
    rules: &Rules,
    clock: &Clock,
    allocation: &Allocation,
    users: &HashMap<String, UserDetails>,
) -> Option<Idle> {
    let (leavers, cutoff) = (rules.leavers()?, clock.leaver_cutoff?);
    let details = users.get(&allocation.user_id)?;
    let state = *leavers
        .states
        .iter()
        .find(|&&state| details.in_state(state) == Some(true))?;
    let (since, never_used) = unused_since(allocation)?;
    (since <= cutoff).then(|| Idle::Leaver {
        state,
        since,
        days: whole_days(since, clock.now),
        after_days: leavers.after_days,
        never_used,
    })
}

/// Whether a seat the idle rule keeps as in use (`kept`) moves to Analyzer (`spec.rightSize`): a Professional seat
/// created at least the window ago. `None` when right-sizing does not apply to it; otherwise its user's authoring
/// decides: nothing within the window moves it, anything else (authoring, or nothing read) keeps it.
fn as_right_size(
    rules: &Rules,
    clock: &Clock,
    allocation: &Allocation,
    kept: &Reason,
    authoring: &HashMap<String, Evidence>,
) -> Option<Result<Idle, Reason>> {
    let window_days = rules.right_size_after_days()?;
    let cutoff = clock.right_size_cutoff?;
    if allocation.access_type != AccessType::Professional
        || !matches!(kept, Reason::Active { .. })
        || allocation.created.is_none_or(|created| created > cutoff)
    {
        return None;
    }
    let since = match allocation.last_used {
        LastUse::At(since) => since,
        _ => return None,
    };
    Some(
        match authoring.get(&allocation.user_id.to_ascii_lowercase()) {
            None => Err(Reason::UnclearAuthoring {
                why: "what the user owns was not read".into(),
            }),
            Some(Evidence::Consumer { last }) => Ok(Idle::RightSize {
                since,
                last: last.clone(),
                window_days,
                now: clock.now,
            }),
            Some(Evidence::Author(last)) => Err(Reason::Authoring {
                last: last.clone(),
                window_days,
            }),
            Some(Evidence::Unclear(why)) => Err(Reason::UnclearAuthoring { why: why.clone() }),
        },
    )
}

/// Whether a seat could move to Analyzer judging by the seat alone (its user's authoring decides): the users
/// whose authoring a run reads.
pub(super) fn could_right_size(rules: &Rules, clock: &Clock, allocation: &Allocation) -> bool {
    let Some(cutoff) = clock.right_size_cutoff else {
        return false;
    };
    allocation.access_type == AccessType::Professional
        && judge_seat(rules, allocation).is_none()
        && allocation.created.is_some_and(|created| created <= cutoff)
        && matches!(
            judge_idle(rules, clock, allocation),
            Err(Reason::Active { .. })
        )
        && judge_identity(rules, allocation).is_none()
}

/// Whether a seat could be a leaver's judging by its dates alone (its user's record decides).
pub(super) fn could_be_leaver(rules: &Rules, clock: &Clock, allocation: &Allocation) -> bool {
    let Some(cutoff) = clock.leaver_cutoff else {
        return false;
    };
    judge_seat(rules, allocation).is_none()
        && unused_since(allocation).is_some_and(|(since, _)| since <= cutoff)
}

/// Whether a seat could be taken as redundant (`spec.redundant`): an Analyzer seat of a user who holds
/// Professional too, past steps 1 to 4. Its user's record still decides the exclusions.
pub(super) fn could_be_redundant(rules: &Rules, allocation: &Allocation) -> bool {
    rules.redundant_analyzer()
        && allocation.access_type == AccessType::Analyzer
        && allocation.user_also_professional
        && judge_seat(rules, allocation).is_none()
}

/// Step 5: the seat's dates against the idle threshold.
fn judge_idle(rules: &Rules, clock: &Clock, allocation: &Allocation) -> Result<Idle, Reason> {
    let access_type = allocation.access_type;
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
pub(super) fn shorten(raw: &str) -> String {
    const MAX_CHARS: usize = 64;
    match raw.char_indices().nth(MAX_CHARS) {
        Some((end, _)) => format!("{}…", &raw[..end]),
        None => raw.to_string(),
    }
}

/// Steps 5 and 6: scope and identity exclusions, which need nothing beyond the allocation.
pub(super) fn judge_identity(rules: &Rules, allocation: &Allocation) -> Option<Reason> {
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
pub(super) fn judge_details(
    rules: &Rules,
    allocation: &Allocation,
    users: &HashMap<String, UserDetails>,
) -> Option<Reason> {
    if !rules.exclusions_need_details() {
        return None;
    }
    let Some(details) = users.get(&allocation.user_id) else {
        return Some(Reason::UserNotFound);
    };
    // A state QRS did not send is unknown: the user may well be one the policy protects.
    for &state in &rules.exclude_user_states {
        match details.in_state(state) {
            Some(true) => return Some(Reason::ExcludedUserState { state }),
            Some(false) => {}
            None => {
                return Some(Reason::Incomplete {
                    field: state.qrs_field(),
                });
            }
        }
    }
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
pub(super) fn needed<'a, T>(
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

pub(super) fn property_exclusion(rules: &Rules, name: &str, value: &str) -> Option<Reason> {
    let rule: &PropertyRule =
        super::pattern::with_folded(&[name], |key| rules.exclude_custom_properties.get(key))?;
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
