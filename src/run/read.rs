//! Reading a site: the allocations a run decides on (inactive ones, leavers' seats, redundant seats), the seat
//! totals, and users who came back for a seat an earlier run took.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::{EarlierReclaim, Returned};
use crate::model::{AccessType, Allocation, SeatCounts, UserIdentity};
use crate::plan::Rules;
use crate::qrs::{Allocations, Holder, QrsClient, QrsError, SeatAccess};
use jiff::Timestamp;

pub(super) struct SiteRead {
    pub(super) allocations: Vec<Allocation>,
    pub(super) totals: BTreeMap<AccessType, u64>,
    pub(super) seats: BTreeMap<AccessType, SeatCounts>,
}

pub(super) async fn read_site(
    client: &QrsClient,
    rules: &Rules,
    now: Timestamp,
) -> Result<SiteRead, QrsError> {
    let mut allocations = Vec::new();
    let mut totals = BTreeMap::new();
    for access_type in rules.access_types() {
        let Some(cutoff) = rules.cutoff(access_type, now) else {
            continue;
        };
        let total = client.count(access_type).await?;
        // The breaker divides by this total: a list longer than the count would weaken it, so the client
        // refuses one as soon as it passes the count.
        // And no run reads more than its memory allows, over all its access types.
        let budget = crate::qrs::MAX_ALLOCATIONS_PER_RUN.saturating_sub(allocations.len());
        let inactive = client
            .allocations(access_type, &Allocations::UsedBy(cutoff), total, budget)
            .await?;
        totals.insert(access_type, total);
        if allocations.is_empty() {
            allocations = inactive;
        } else {
            allocations.extend(inactive);
        }
        // Leavers' seats used since the idle cutoff: one more request, for the seats the first one did not list.
        if let (Some(leavers), Some(leaver_cutoff)) = (rules.leavers(), rules.leaver_cutoff(now))
            && leaver_cutoff > cutoff
        {
            let budget = crate::qrs::MAX_ALLOCATIONS_PER_RUN.saturating_sub(allocations.len());
            let leavers = client
                .allocations(
                    access_type,
                    &Allocations::LeaversUsedBy(leaver_cutoff, &leavers.states),
                    total,
                    budget,
                )
                .await?;
            extend_unlisted(&mut allocations, access_type, leavers);
        }
        // Seats in use that right-sizing may move to Analyzer: one more request.
        if access_type == AccessType::Professional
            && let Some(created_by) = rules.right_size_cutoff(now)
        {
            let budget = crate::qrs::MAX_ALLOCATIONS_PER_RUN.saturating_sub(allocations.len());
            let in_use = client
                .allocations(
                    access_type,
                    &Allocations::InUse {
                        created_by,
                        used_after: cutoff,
                    },
                    total,
                    budget,
                )
                .await?;
            extend_unlisted(&mut allocations, access_type, in_use);
        }
    }
    if rules.redundant_analyzer() {
        add_redundant(client, &mut allocations, &totals).await?;
    }
    // The overview is marked experimental by Qlik and some releases lack it: seats are reported when
    // available, and a run does not fail without them.
    let seats = match client.seats().await {
        Ok(seats) => seats,
        Err(e) => {
            tracing::warn!(error = %e, "seat totals unavailable (accesstypeoverview)");
            BTreeMap::new()
        }
    };
    Ok(SiteRead {
        allocations,
        totals,
        seats,
    })
}

/// Adds the allocations of `access_type` in `more` that `allocations` does not list yet.
fn extend_unlisted(
    allocations: &mut Vec<Allocation>,
    access_type: AccessType,
    more: Vec<Allocation>,
) {
    let listed: HashSet<String> = allocations
        .iter()
        .filter(|a| a.access_type == access_type)
        .map(|a| a.id.to_ascii_lowercase())
        .collect();
    allocations.extend(
        more.into_iter()
            .filter(|a| !listed.contains(&a.id.to_ascii_lowercase())),
    );
}

/// Analyzer seats whose users hold a Professional seat too (`spec.redundant`): marked when listed already, and
/// read by id ([`crate::qrs::ids_per_read`] a request) when not, since a redundant seat goes whatever its last use. Who holds what comes
/// from QRS's table view: two ids a seat, two requests however large the site.
///
/// A Professional seat whose flags QRS did not send may or may not give access: the user's Analyzer seat is not
/// taken as redundant. Listed, it is judged as any idle seat; not listed, it is read and kept as unknown data, so
/// the report shows it.
async fn add_redundant(
    client: &QrsClient,
    allocations: &mut Vec<Allocation>,
    totals: &BTreeMap<AccessType, u64>,
) -> Result<(), QrsError> {
    let holders = async |access_type| -> Result<Vec<Holder>, QrsError> {
        let counted = match totals.get(&access_type) {
            Some(&n) => n,
            None => client.count(access_type).await?,
        };
        client.holders(access_type, counted).await
    };
    let professional = holders(AccessType::Professional).await?;
    let analyzer = holders(AccessType::Analyzer).await?;
    let Redundancy {
        mut redundant,
        mut unknown,
    } = redundancy(&professional, &analyzer);
    for allocation in allocations.iter_mut() {
        if allocation.access_type != AccessType::Analyzer {
            continue;
        }
        let Ok(id) = uuid::Uuid::try_parse(&allocation.id) else {
            continue;
        };
        if redundant.remove(&id) {
            allocation.user_also_professional = true;
        }
        unknown.remove(&id);
    }
    // No run reads more than its memory allows: the rest wait for the next run (the redundant seats first).
    let mut budget = crate::qrs::MAX_ALLOCATIONS_PER_RUN.saturating_sub(allocations.len());
    let mut fresh = read_by_id(client, redundant.iter(), &mut budget).await?;
    for allocation in &mut fresh {
        allocation.user_also_professional = true;
    }
    allocations.extend(fresh);
    let mut unsure = read_by_id(client, unknown.keys(), &mut budget).await?;
    for allocation in &mut unsure {
        let flag = uuid::Uuid::try_parse(&allocation.id)
            .ok()
            .and_then(|id| unknown.get(&id).copied());
        allocation.incomplete = Some(match flag {
            Some("quarantined") => "quarantined flag of the user's Professional seat",
            _ => "excess flag of the user's Professional seat",
        });
    }
    allocations.extend(unsure);
    Ok(())
}

/// Analyzer allocations read by id, in id order, at most `budget` of them (which they use up).
async fn read_by_id(
    client: &QrsClient,
    ids: impl Iterator<Item = &uuid::Uuid>,
    budget: &mut usize,
) -> Result<Vec<Allocation>, QrsError> {
    let mut ids: Vec<String> = ids.map(|id| id.hyphenated().to_string()).collect();
    ids.sort_unstable();
    ids.truncate(*budget);
    *budget -= ids.len();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    client.allocations_by_id(AccessType::Analyzer, &ids).await
}

/// Analyzer allocations by what their users' Professional seats tell.
#[derive(Debug, Default, PartialEq, Eq)]
struct Redundancy {
    /// The user holds a Professional seat that gives access.
    redundant: HashSet<uuid::Uuid>,
    /// No Professional seat of the user is known to give access, and one has a flag QRS did not send (named).
    unknown: HashMap<uuid::Uuid, &'static str>,
}

fn redundancy(professional: &[Holder], analyzer: &[Holder]) -> Redundancy {
    let mut giving = HashSet::new();
    let mut unsure = HashMap::new();
    for holder in professional {
        match holder.access {
            SeatAccess::Gives => drop(giving.insert(holder.user)),
            // A quarantined or excess seat leaves its user without access.
            SeatAccess::Denied => {}
            SeatAccess::Unknown(flag) => drop(unsure.insert(holder.user, flag)),
        }
    }
    let mut found = Redundancy::default();
    for holder in analyzer {
        if giving.contains(&holder.user) {
            found.redundant.insert(holder.allocation);
        } else if let Some(&flag) = unsure.get(&holder.user) {
            found.unknown.insert(holder.allocation, flag);
        }
    }
    found
}
/// Users earlier runs reclaimed who hold that access type again: per access type, one request for the allocations
/// created since the oldest of those reclaims, matched by user.
pub(super) async fn find_returns(
    client: &QrsClient,
    earlier: &[EarlierReclaim],
    totals: &BTreeMap<AccessType, u64>,
) -> Result<Vec<Returned>, QrsError> {
    let mut by_type: BTreeMap<AccessType, HashMap<&UserIdentity, &EarlierReclaim>> =
        BTreeMap::new();
    for reclaim in earlier {
        let users = by_type.entry(reclaim.access_type).or_default();
        // A user reclaimed twice returned after the later reclaim, if at all.
        let later = users
            .get(&reclaim.user)
            .is_none_or(|seen| seen.at < reclaim.at);
        if later {
            users.insert(&reclaim.user, reclaim);
        }
    }
    let mut returns = Vec::new();
    for (access_type, users) in by_type {
        let Some(since) = users.values().map(|r| r.at).min() else {
            continue;
        };
        let counted = match totals.get(&access_type) {
            Some(&n) => n,
            None => client.count(access_type).await?,
        };
        let budget = crate::qrs::MAX_ALLOCATIONS_PER_RUN;
        let fresh = client
            .allocations(
                access_type,
                &Allocations::CreatedSince(since),
                counted,
                budget,
            )
            .await?;
        let mut found: Vec<Returned> = fresh
            .iter()
            .filter_map(|a| {
                let reclaim = users.get(&a.user)?;
                let created = a.created?;
                (created >= reclaim.at).then(|| Returned {
                    user: reclaim.user.clone(),
                    access_type,
                    reclaimed_by: reclaim.run.clone(),
                })
            })
            .collect();
        found.sort_by(|a, b| a.user.cmp(&b.user));
        found.dedup_by(|a, b| a.user == b.user);
        returns.extend(found);
    }
    Ok(returns)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(allocation: u128, user: u128, access: SeatAccess) -> Holder {
        Holder {
            allocation: uuid::Uuid::from_u128(allocation),
            user: uuid::Uuid::from_u128(user),
            access,
        }
    }

    #[test]
    fn an_analyzer_seat_is_redundant_only_beside_a_professional_seat_known_to_give_access() {
        let professional = [
            holder(1, 10, SeatAccess::Gives),
            holder(2, 20, SeatAccess::Denied),
            holder(3, 30, SeatAccess::Unknown("excess")),
            holder(4, 40, SeatAccess::Unknown("quarantined")),
            // Two Professional seats, one known to give access: the unknown one changes nothing.
            holder(5, 50, SeatAccess::Unknown("excess")),
            holder(6, 50, SeatAccess::Gives),
        ];
        let analyzer = [
            holder(101, 10, SeatAccess::Gives),
            holder(102, 20, SeatAccess::Gives),
            holder(103, 30, SeatAccess::Gives),
            holder(104, 40, SeatAccess::Gives),
            holder(105, 50, SeatAccess::Gives),
            holder(106, 60, SeatAccess::Gives),
        ];
        let found = redundancy(&professional, &analyzer);
        let id = uuid::Uuid::from_u128;
        assert_eq!(found.redundant, HashSet::from([id(101), id(105)]));
        assert_eq!(
            found.unknown,
            HashMap::from([(id(103), "excess"), (id(104), "quarantined")]),
            "a Professional seat with a missing flag makes its user's Analyzer seat unknown, never redundant"
        );
    }
}
