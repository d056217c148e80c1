//! Deallocation: the plan's reclaims, longest idle first, in batches of one access type, each read again just
//! before its DELETEs, with the brake looked at before each one starts.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use futures::StreamExt;

use super::bulk::{BulkBatch, Tail, delete_batch};
use super::{Outcome, SeatOutcome, Stopped};
use crate::brake::{Brake, BrakeState};
use crate::model::{AccessType, Allocation};
use crate::plan::Plan;
use crate::qrs::{Deallocation, QrsClient, QrsError};
use crate::report::DeletionPath;

/// Seats of one access type deallocated together: one selection in bulk, or one re-read just before their
/// per-seat DELETEs. The brake is looked at between batches.
const RECHECK_BATCH: usize = crate::qrs::SEATS_PER_BATCH;

/// Deallocate the plan's reclaims with bounded concurrency, longest idle first, in batches of one access type.
/// Just before each batch, its seats are read again (one request for up to [`RECHECK_BATCH`]): a seat used since
/// the run read the site (its `lastUsed` moved) is kept. The brake is looked at as each DELETE is about to start:
/// once pulled, only the DELETEs in flight finish (at most `concurrency`); paused, the batch ends there and the
/// rest of it waits, to be read again once the brake is released (what was read before the pause may be stale).
/// Returns why the brake cut the run short, if it did.
pub(super) async fn deallocate_all(
    client: &QrsClient,
    plan: &Plan,
    reclaims: &[usize],
    how: How,
    brake: Option<&Brake>,
    outcomes: &mut [SeatOutcome],
) -> Deallocated {
    let released = Brake::released();
    let brake = brake.unwrap_or(&released);
    let mut done = Deallocated {
        stopped: None,
        path: None,
    };
    let mut bulk = how.bulk;
    let mut batches: VecDeque<Vec<usize>> = batches_by_type(plan, reclaims).into();
    // The last bulk batch's tail (its selection dropped, its seats read back), sent beside the next batch.
    let mut tail: Option<Tail<'_>> = None;
    let stopped = loop {
        let Some(batch) = batches.pop_front() else {
            // No batch left: the last tail's seats left unchanged go one by one here, in the loop, so that a pause
            // among them waits as any other batch does.
            let left = finish(tail.take(), outcomes).await;
            if left.is_empty() {
                break None;
            }
            if let Err(reason) =
                one_seat_a_request(client, plan, left, &how, brake, outcomes, &mut batches).await
            {
                break Some(reason);
            }
            continue;
        };
        if brake.current() != BrakeState::Released {
            // About to wait on the brake: the batch already sent is read back first, so that its seats have their
            // outcomes however long the wait. Those it left wait too, and go again, each type a batch of its own.
            let left = finish(tail.take(), outcomes).await;
            for group in by_type(plan, left).into_iter().rev() {
                batches.push_front(group);
            }
        }
        if let Err(reason) = brake.proceed().await {
            break Some(reason);
        }
        let mut one_by_one = if bulk {
            let (earlier, sent) = futures::join!(
                finish(tail.take(), outcomes),
                delete_batch(client, plan, &batch, brake, how.now)
            );
            let mut one_by_one = earlier;
            match sent {
                BulkBatch::Done {
                    one_by_one: more,
                    tail: next,
                } => {
                    done.path.get_or_insert(DeletionPath::Bulk);
                    one_by_one.extend(more);
                    tail = next;
                }
                BulkBatch::Unsupported(why) => {
                    tracing::info!("{why}");
                    bulk = false;
                    done.path = Some(DeletionPath::PerSeat);
                    one_by_one.extend(batch);
                }
                BulkBatch::Held(BrakeState::Stopped(reason)) => break Some(reason),
                // Paused (or released again meanwhile): the batch waits whole, and is read again.
                BulkBatch::Held(_) => batches.push_front(batch),
            }
            one_by_one
        } else {
            done.path.get_or_insert(DeletionPath::PerSeat);
            batch
        };
        if one_by_one.is_empty() {
            continue;
        }
        // Seats go one by one only once every tail is in: its seats may join them.
        one_by_one.extend(finish(tail.take(), outcomes).await);
        if let Err(reason) = one_seat_a_request(
            client,
            plan,
            one_by_one,
            &how,
            brake,
            outcomes,
            &mut batches,
        )
        .await
        {
            break Some(reason);
        }
    };
    // A stop leaves the last tail to read: the seats its DELETE took are reported (those it left are not tried).
    finish(tail.take(), outcomes).await;
    // A stop that came while the last seats were read again ended the run as surely as one seen between batches.
    done.stopped = stopped.or_else(|| brake.stopped()).map(Stopped);
    done
}

/// Awaits a bulk batch's tail, if there is one, and gives its seats their outcomes; returns the seats to be tried
/// one by one.
async fn finish(tail: Option<Tail<'_>>, outcomes: &mut [SeatOutcome]) -> Vec<usize> {
    let Some(tail) = tail else {
        return Vec::new();
    };
    let read = tail.await;
    for (i, outcome) in read.outcomes {
        outcomes[i] = outcome;
    }
    read.one_by_one
}

/// Deletes `seats` (plan indexes, of one batch or of two in a row, so possibly of two access types) one seat a
/// request, each batch of one type read again first. What a pause held back goes to the front of `batches`; a stop
/// is the `Err`, with its reason.
async fn one_seat_a_request(
    client: &QrsClient,
    plan: &Plan,
    seats: Vec<usize>,
    how: &How,
    brake: &Brake,
    outcomes: &mut [SeatOutcome],
    batches: &mut VecDeque<Vec<usize>>,
) -> Result<(), String> {
    // What a pause held back, batch by batch: a batch is of one access type wherever it goes next.
    let mut held: Vec<Vec<usize>> = Vec::new();
    for batch in by_type(plan, seats) {
        if !held.is_empty() {
            // Paused already: the rest waits too.
            held.push(batch);
            continue;
        }
        match one_batch_a_seat_a_request(client, plan, &batch, how, brake, outcomes).await {
            Held::Stopped(reason) => return Err(reason),
            Held::Paused(rest) => held.push(rest),
            Held::No => {}
        }
    }
    for batch in held.into_iter().rev() {
        batches.push_front(batch);
    }
    Ok(())
}

/// `seats` (plan indexes) as batches of one access type each, at most [`RECHECK_BATCH`], in the order their types
/// first appear.
fn by_type(plan: &Plan, seats: Vec<usize>) -> Vec<Vec<usize>> {
    let mut by_type: Vec<(AccessType, Vec<usize>)> = Vec::new();
    for i in seats {
        let access_type = plan.decisions[i].allocation.access_type;
        match by_type.iter_mut().find(|(t, _)| *t == access_type) {
            Some((_, of_type)) => of_type.push(i),
            None => by_type.push((access_type, vec![i])),
        }
    }
    by_type
        .iter()
        .flat_map(|(_, of_type)| of_type.chunks(RECHECK_BATCH).map(<[usize]>::to_vec))
        .collect()
}

/// Deletes `batch` (plan indexes of one access type, at most [`RECHECK_BATCH`]) one seat a request, read again
/// first; what the brake held back.
async fn one_batch_a_seat_a_request(
    client: &QrsClient,
    plan: &Plan,
    batch: &[usize],
    how: &How,
    brake: &Brake,
    outcomes: &mut [SeatOutcome],
) -> Held {
    let to_delete = recheck(client, plan, batch, brake, Freshness::Unused, outcomes).await;
    // What the brake said when it ended the batch early, if it did.
    let results = while_released(&to_delete, brake, how.concurrency, |i| {
        let allocation = &plan.decisions[i].allocation;
        async move {
            client
                .deallocate(allocation.access_type, &allocation.id)
                .await
        }
    })
    .await;
    for (i, result) in results.done {
        outcomes[i] = deallocation_outcome(&plan.decisions[i].allocation, result);
    }
    results.held
}

/// What a batch's steps came to: each started one's result, and what the brake held back.
pub(super) struct Started<T> {
    pub(super) done: Vec<(usize, T)>,
    pub(super) held: Held,
}

/// What the brake held back of a batch.
pub(super) enum Held {
    /// Nothing: every step started.
    No,
    /// The run stops, for this reason; the steps not started are not tried.
    Stopped(String),
    /// Paused: these steps (plan indexes) did not start, and wait whole for the brake's release.
    Paused(Vec<usize>),
}

/// Runs `step` for each of `batch` (plan indexes), `concurrency` at once, starting each only while the brake is
/// released: once it is pulled or paused, the steps in flight finish and no other starts.
pub(super) async fn while_released<T, F, Fut>(
    batch: &[usize],
    brake: &Brake,
    concurrency: u32,
    step: F,
) -> Started<T>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let mut held = None;
    let done: Vec<(usize, T)> = futures::stream::iter(batch.iter().copied())
        // Checked as each step is about to start, so a stop lets the ones in flight finish and starts no other.
        .take_while(|_| {
            let state = brake.current();
            let go = state == BrakeState::Released;
            if !go && held.is_none() {
                held = Some(state);
            }
            futures::future::ready(go)
        })
        .map(|i| {
            let running = step(i);
            async move { (i, running.await) }
        })
        .buffer_unordered(concurrency.clamp(1, 32) as usize)
        .collect()
        .await;
    let held = match held {
        Some(BrakeState::Stopped(reason)) => Held::Stopped(reason),
        Some(BrakeState::Paused(_)) => {
            let started: HashSet<usize> = done.iter().map(|(i, _)| *i).collect();
            let rest: Vec<usize> = batch
                .iter()
                .copied()
                .filter(|i| !started.contains(i))
                .collect();
            if rest.is_empty() {
                Held::No
            } else {
                Held::Paused(rest)
            }
        }
        Some(BrakeState::Released) | None => Held::No,
    };
    Started { done, held }
}

/// How a run deallocates.
#[derive(Debug, Clone, Copy)]
pub(super) struct How {
    /// DELETEs in flight at once, one seat a request.
    pub(super) concurrency: u32,
    /// Through selections first (`spec.site.bulk`).
    pub(super) bulk: bool,
    /// When the run read the site.
    pub(super) now: jiff::Timestamp,
}

/// What the deallocations came to: why the brake cut them short, if it did, and which way seats were deleted.
pub(super) struct Deallocated {
    pub(super) stopped: Option<Stopped>,
    /// `None` when no batch was sent.
    pub(super) path: Option<DeletionPath>,
}

/// What a seat read again must still be for the run to go on with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Freshness {
    /// Unused since the run read it (a reclaim: any use since keeps the seat).
    Unused,
    /// Held as it was, by the same user, in use or not (a move: the seat is in use, authoring decided).
    Held,
}

/// Reads a batch of one access type again, with one request, just before deleting it. Returns the seats still
/// to delete; the others get their outcome: gone already, used (or changed) since the run read the site, or not
/// readable.
pub(super) async fn recheck(
    client: &QrsClient,
    plan: &Plan,
    batch: &[usize],
    brake: &Brake,
    freshness: Freshness,
    outcomes: &mut [SeatOutcome],
) -> Vec<usize> {
    let access_type = plan.decisions[batch[0]].allocation.access_type;
    let ids: Vec<&str> = batch
        .iter()
        .map(|&i| plan.decisions[i].allocation.id.as_str())
        .collect();
    let fresh = match client.allocations_by_id(access_type, &ids).await {
        Ok(fresh) => fresh,
        // A stop cut the read short (no retry starts after it): the seats were never tried, they are deferred.
        Err(_) if brake.stopped().is_some() => return Vec::new(),
        Err(e) => {
            tracing::warn!(access_type = %access_type, error = %e, "could not read the seats again before deleting; not deleting them");
            let why = format!("not deleted: the seat could not be read again just before ({e})");
            for &i in batch {
                outcomes[i] = SeatOutcome::failed(Outcome::Failed, why.clone());
            }
            return Vec::new();
        }
    };
    let fresh: HashMap<String, Allocation> = fresh
        .into_iter()
        .map(|a| (a.id.to_ascii_lowercase(), a))
        .collect();
    let mut to_delete = Vec::with_capacity(batch.len());
    for &i in batch {
        let read = &plan.decisions[i].allocation;
        match (fresh.get(&read.id.to_ascii_lowercase()), freshness) {
            (None, Freshness::Held) => {
                // A move begins by giving the user an Analyzer seat: not to a user whose Professional seat went.
                outcomes[i] = SeatOutcome::noted(
                    Outcome::Kept,
                    "not moved: the Professional seat was gone when the move began".into(),
                );
            }
            (None, Freshness::Unused) => {
                // Gone since the read: someone (or something) deallocated it; nothing to delete.
                tracing::info!(user = %read.user, access_type = %read.access_type, allocation = %read.id, "already deallocated");
                outcomes[i] = SeatOutcome::of(Outcome::AlreadyGone);
            }
            (Some(now), Freshness::Unused) if unchanged(read, now) => to_delete.push(i),
            (Some(now), Freshness::Held) if same_holder(read, now) => to_delete.push(i),
            (Some(_), Freshness::Held) => {
                outcomes[i] = SeatOutcome::noted(
                    Outcome::Kept,
                    "not moved: the seat changed (holder, creation or quarantine) since the run read it".into(),
                );
            }
            (Some(_), Freshness::Unused) => {
                tracing::info!(user = %read.user, access_type = %read.access_type, allocation = %read.id, "used since the run read the site; kept");
                outcomes[i] = SeatOutcome::of(Outcome::UsedSinceRead);
            }
        }
    }
    to_delete
}

/// What one DELETE did, logged.
fn deallocation_outcome(
    allocation: &Allocation,
    result: Result<Deallocation, QrsError>,
) -> SeatOutcome {
    let (user, access_type, id) = (&allocation.user, allocation.access_type, &allocation.id);
    match result {
        Ok(Deallocation::Done) => {
            tracing::info!(user = %user, access_type = %access_type, allocation = %id, "deallocated");
            SeatOutcome::of(Outcome::Reclaimed)
        }
        Ok(Deallocation::AlreadyGone) => {
            tracing::info!(user = %user, access_type = %access_type, allocation = %id, "already deallocated");
            SeatOutcome::of(Outcome::AlreadyGone)
        }
        Err(e) => {
            tracing::warn!(user = %user, access_type = %access_type, allocation = %id, error = %e, "deallocation failed");
            SeatOutcome::failed(Outcome::Failed, e.to_string())
        }
    }
}

/// Whether a seat read again is the seat the plan decided on: same holder, same last use and creation, not
/// quarantined meanwhile, nothing unknown.
pub(super) fn unchanged(read: &Allocation, now: &Allocation) -> bool {
    now.last_used == read.last_used
        && now.created == read.created
        && !now.quarantined
        && now.incomplete.is_none()
        && now.user == read.user
}

/// Whether a seat read again is still the seat the plan decided to move: same holder and creation, not
/// quarantined, nothing unknown. Its last use may have moved: the seat is in use.
fn same_holder(read: &Allocation, now: &Allocation) -> bool {
    now.created == read.created
        && !now.quarantined
        && now.incomplete.is_none()
        && now.user == read.user
}

/// The reclaims (plan indexes, in reclaim order) cut into batches of one access type and at most
/// [`RECHECK_BATCH`], ordered by their first (longest idle) seat.
pub(super) fn batches_by_type(plan: &Plan, reclaims: &[usize]) -> Vec<Vec<usize>> {
    let mut by_type: BTreeMap<AccessType, Vec<usize>> = BTreeMap::new();
    for &i in reclaims {
        by_type
            .entry(plan.decisions[i].allocation.access_type)
            .or_default()
            .push(i);
    }
    let mut batches: Vec<Vec<usize>> = by_type
        .into_values()
        .flat_map(|list| {
            list.chunks(RECHECK_BATCH)
                .map(<[usize]>::to_vec)
                .collect::<Vec<_>>()
        })
        .collect();
    // Batches start at distinct reclaims, in reclaim order.
    let position: HashMap<usize, usize> =
        reclaims.iter().enumerate().map(|(p, &i)| (i, p)).collect();
    batches.sort_by_key(|batch| position.get(&batch[0]).copied().unwrap_or(usize::MAX));
    batches
}
