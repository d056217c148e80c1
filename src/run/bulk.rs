//! Deallocation in bulk (`spec.site.bulk`): a batch of one access type goes through a QRS selection. The batch's
//! seats are selected by id, the selection's items deleted with the freshness condition in the same request (QRS
//! deletes a seat only if it is still unused since the run read it), the selection dropped, and the seats read back
//! to give each its exact outcome. A seat the DELETE left in place though unchanged is retried one by one.
//!
//! Dropping the selection and reading the seats back (a batch's tail) need not hold up the next batch: the run sends
//! them beside the next batch's selection and DELETE. Only one selection's DELETE is ever in flight, so the brake
//! lets at most one batch go once pulled, as before.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use jiff::Timestamp;

use super::deallocate::unchanged;
use super::{Outcome, SeatOutcome};
use crate::brake::{Brake, BrakeState};
use crate::model::{Allocation, LastUse};
use crate::plan::Plan;
use crate::qrs::{QrsClient, QrsError};

/// What became of a batch sent in bulk.
pub(super) enum BulkBatch<'a> {
    /// Sent through a selection, or not at all; these seats (plan indexes) are to be tried one by one: those bulk
    /// cannot judge, or the whole batch when the selection could not be made. `tail`, when the selection's DELETE
    /// was sent, drops the selection and reads the seats back: it must be awaited for their outcomes.
    Done {
        one_by_one: Vec<usize>,
        tail: Option<Tail<'a>>,
    },
    /// The site does not serve selections (404 or 405): nothing was deleted, and no batch goes in bulk any more.
    Unsupported(String),
    /// The brake held the batch before its DELETE: nothing was deleted.
    Held(BrakeState),
}

/// A batch's tail: its selection dropped and its seats read back, together.
pub(super) type Tail<'a> = Pin<Box<dyn Future<Output = ReadBack> + Send + 'a>>;

/// What reading a batch back found: each seat's outcome, and the seats the DELETE left unchanged, to be tried one
/// by one.
pub(super) struct ReadBack {
    pub(super) outcomes: Vec<(usize, SeatOutcome)>,
    pub(super) one_by_one: Vec<usize>,
}

/// Sends one batch (plan indexes of one access type, at most 50) through a selection, up to its DELETE; the rest is
/// the returned tail. `now` is when the run read the site: a seat last used after it (a clock QRS disagrees with) is
/// left to the one-by-one way.
pub(super) async fn delete_batch<'a>(
    client: &'a QrsClient,
    plan: &'a Plan,
    batch: &[usize],
    brake: &Brake,
    now: Timestamp,
) -> BulkBatch<'a> {
    let seat = |i: usize| &plan.decisions[i].allocation;
    // Only seats the run read as unused for a day at least (or never used): for them "unused since the read" is one
    // condition over the batch (see `freshness`), with a day's room for the clocks of a site's nodes. Seats used
    // more recently (a leaver's, a redundant one) or with an unreadable date go one by one.
    let recent = now
        .checked_sub(jiff::SignedDuration::from_hours(24))
        .unwrap_or(Timestamp::MIN);
    // A selection and its read-back name one access type: a seat of another (a batch is never made so) goes one by
    // one rather than be looked for where it is not, and reported gone.
    let Some(access_type) = batch.first().map(|&i| seat(i).access_type) else {
        return BulkBatch::Done {
            one_by_one: Vec::new(),
            tail: None,
        };
    };
    let (bulk, one_by_one): (Vec<usize>, Vec<usize>) = batch.iter().partition(|&&i| {
        seat(i).access_type == access_type
            && match seat(i).last_used {
                LastUse::At(t) => t <= recent,
                LastUse::Never => true,
                LastUse::Unknown(_) => false,
            }
    });
    if bulk.is_empty() {
        return BulkBatch::Done {
            one_by_one,
            tail: None,
        };
    }
    let ids: Vec<&str> = bulk.iter().map(|&i| seat(i).id.as_str()).collect();
    let fresh_filter = freshness(plan, &bulk);
    let selection = match client.select(access_type, &ids, &fresh_filter).await {
        Ok(selection) => selection,
        Err(QrsError::Status { status, .. })
            if status == reqwest::StatusCode::NOT_FOUND
                || status == reqwest::StatusCode::METHOD_NOT_ALLOWED =>
        {
            return BulkBatch::Unsupported(format!(
                "the site answered {status} to a selection: seats are deleted one by one"
            ));
        }
        Err(_) if brake.stopped().is_some() => return BulkBatch::Held(brake.current()),
        Err(e) => {
            tracing::warn!(access_type = %access_type, error = %e, "could not make a selection; deleting the batch one by one");
            return BulkBatch::Done {
                one_by_one: batch.to_vec(),
                tail: None,
            };
        }
    };
    // Nothing is deleted once the brake is pulled or paused: the selection goes, the batch stays whole.
    let state = brake.current();
    if state != BrakeState::Released {
        drop_selection(client, &selection).await;
        return BulkBatch::Held(state);
    }
    // The same condition again as QRS deletes: a use since the selection was made keeps the seat too.
    let deleted = client
        .delete_selected(&selection, access_type, &ids, &fresh_filter)
        .await;
    if let Err(e) = &deleted {
        tracing::warn!(access_type = %access_type, error = %e, "a selection's DELETE failed; reading its seats back");
    }
    let tail = async move {
        let ((), read) = futures::join!(
            drop_selection(client, &selection),
            read_back(client, plan, &bulk)
        );
        read
    };
    BulkBatch::Done {
        one_by_one,
        tail: Some(Box::pin(tail)),
    }
}

/// Reads a batch back after its selection's DELETE and gives each seat its outcome; the seats the DELETE left
/// unchanged are to be tried one by one. Read (and retried) even if the run was stopped meanwhile, so that every
/// seat the DELETE took is reported; whatever the DELETE answered (it may have deleted some before failing), the
/// seats read back say what it did.
async fn read_back(client: &QrsClient, plan: &Plan, bulk: &[usize]) -> ReadBack {
    let mut read = ReadBack {
        outcomes: Vec::with_capacity(bulk.len()),
        one_by_one: Vec::new(),
    };
    let seat = |i: usize| &plan.decisions[i].allocation;
    let access_type = seat(bulk[0]).access_type;
    let ids: Vec<&str> = bulk.iter().map(|&i| seat(i).id.as_str()).collect();
    let fresh = match crate::qrs::finishing(client.allocations_by_id(access_type, &ids)).await {
        Ok(fresh) => fresh,
        Err(e) => {
            // Whether each seat went is unknown: none is tried again, and each is on record as possibly taken, so
            // that a restore looks at it (and skips it if its user still holds it).
            tracing::warn!(access_type = %access_type, error = %e, "could not read the seats back after a selection's DELETE");
            let why = format!(
                "deleted in bulk, but the seats could not be read back ({e}): whether this one went is unknown; QRS or the QMC tells"
            );
            for &i in bulk {
                read.outcomes
                    .push((i, SeatOutcome::failed(Outcome::Unconfirmed, why.clone())));
            }
            return read;
        }
    };
    let fresh: HashMap<String, Allocation> = fresh
        .into_iter()
        .map(|a| (a.id.to_ascii_lowercase(), a))
        .collect();
    for &i in bulk {
        let seen = seat(i);
        match fresh.get(&seen.id.to_ascii_lowercase()) {
            None => {
                tracing::info!(user = %seen.user, access_type = %seen.access_type, allocation = %seen.id, "deallocated in bulk");
                read.outcomes.push((i, SeatOutcome::of(Outcome::Reclaimed)));
            }
            // Deleted while in use within 7 days: QRS keeps the row in quarantine, and the seat frees at its end.
            Some(now) if now.quarantined && !seen.quarantined => {
                tracing::info!(user = %seen.user, access_type = %seen.access_type, allocation = %seen.id, "deallocated in bulk; in quarantine");
                read.outcomes.push((i, SeatOutcome::of(Outcome::Reclaimed)));
            }
            Some(now) if unchanged(seen, now) => read.one_by_one.push(i),
            Some(_) => {
                tracing::info!(user = %seen.user, access_type = %seen.access_type, allocation = %seen.id, "used since the run read the site; kept");
                read.outcomes
                    .push((i, SeatOutcome::of(Outcome::UsedSinceRead)));
            }
        }
    }
    read
}

/// The condition a seat must meet to be selected, and again to be deleted: unused since the run read it, and not
/// in quarantine. A use after the read carries a later date than any last use the run read (QRS dates both, and
/// the batch's seats were all unused for a day when read, room for the clocks of a site's nodes), so the latest
/// last use of the batch bounds them all; never-used seats carry a sentinel date in 1753, below any real one.
fn freshness(plan: &Plan, batch: &[usize]) -> String {
    let latest = batch
        .iter()
        .filter_map(|&i| match plan.decisions[i].allocation.last_used {
            LastUse::At(t) => Some(t),
            LastUse::Never | LastUse::Unknown(_) => None,
        })
        .max();
    let bound = match latest {
        Some(t) => format!("lastUsed le '{}'", crate::qrs::wire::format_qrs_date(t)),
        None => "lastUsed lt '1900-01-01T00:00:00.000Z'".to_string(),
    };
    format!("{bound} and quarantined eq false")
}

/// Drops a selection; one that cannot be dropped expires on its own, so a failure is only logged.
async fn drop_selection(client: &QrsClient, selection: &crate::qrs::Selection) {
    if let Err(e) = client.drop_selection(selection).await {
        tracing::warn!(selection = %selection.id, error = %e, "could not drop a selection; QRS drops it in time");
    }
}
