//! How one allocation is judged, steps 1 to 7 of the engine: its dates, its user's identity, then its user's
//! record. What passes is a candidate; anything else is kept, with the reason.

use std::collections::HashMap;
use std::sync::Arc;

use jiff::Timestamp;

use super::decision::{Reason, ScopeRule};
use super::rules::{PropertyRule, Rules, whole_days};
use super::type_index;
use crate::model::{AccessType, Allocation, LastUse, UserDetails};

/// Instants shared by every allocation of one run.
pub(super) struct Clock {
    now: Timestamp,
    /// Indexed by `type_index`; `None` for access types the policy does not manage.
    cutoffs: [Option<Timestamp>; AccessType::ALL.len()],
    never_used_cutoff: Timestamp,
}

impl Clock {
    pub(super) fn new(rules: &Rules, now: Timestamp) -> Clock {
        Clock {
            now,
            cutoffs: AccessType::ALL.map(|t| rules.cutoff(t, now)),
            never_used_cutoff: rules.never_used_cutoff(now),
        }
    }
}

/// How an inactive allocation is inactive.
#[derive(Debug, Clone, Copy)]
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
}

impl Idle {
    pub(super) fn since(&self) -> Timestamp {
        match *self {
            Idle::Used { since, .. } => since,
            Idle::Never { created, .. } => created,
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
        }
    }

    pub(super) fn over_cap(&self, limit: u32) -> Reason {
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

pub(super) enum Judgement {
    /// A candidate and, once sorted, its place in the reclaim order.
    Candidate(Idle, usize),
    Kept(Reason),
}

pub(super) fn evaluate(
    rules: &Rules,
    clock: &Clock,
    allocation: &Allocation,
    users: &HashMap<String, UserDetails>,
) -> Judgement {
    let idle = match judge_dates(rules, clock, allocation) {
        Ok(idle) => idle,
        Err(reason) => return Judgement::Kept(reason),
    };
    if let Some(reason) = judge_identity(rules, allocation) {
        return Judgement::Kept(reason);
    }
    if let Some(reason) = judge_details(rules, allocation, users) {
        return Judgement::Kept(reason);
    }
    Judgement::Candidate(idle, usize::MAX)
}

/// Steps 1 to 4: the allocation itself.
pub(super) fn judge_dates(
    rules: &Rules,
    clock: &Clock,
    allocation: &Allocation,
) -> Result<Idle, Reason> {
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
