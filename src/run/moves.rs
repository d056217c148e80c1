//! Moves to Analyzer (`spec.rightSize`): for each Professional seat the plan moves, an Analyzer seat first (unless the
//! user holds one), then the Professional seat deallocated. A user is never left with neither: nothing is taken
//! before the Analyzer seat is there, and a move that cannot take the Professional seat leaves both, for the next
//! run to finish (the user then holds Analyzer already, and only loses Professional).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};

use super::deallocate::{Freshness, Held, batches_by_type, recheck, while_released};
use super::{AddedSeat, Outcome, SeatOutcome, Stopped};
use crate::brake::{Brake, BrakeState};
use crate::model::AccessType;
use crate::plan::Plan;
use crate::qrs::{Deallocation, QrsClient, QrsError, SeatAccess};

/// Makes the plan's moves (plan indexes, in reclaim order) in batches of at most [`crate::qrs::SEATS_PER_BATCH`], with
/// `concurrency` moves in flight. Each batch's Professional seats are read again (still held by the same user)
/// and so are the Analyzer seats their users hold, one request each. The brake is looked at before each batch, as
/// each move starts, and between a move's two steps: once it is pulled, no Professional seat is taken, and a move
/// whose Analyzer seat was added stays unfinished (the user holds both). Returns why the brake cut the run short.
pub(super) async fn move_all(
    client: &QrsClient,
    plan: &Plan,
    moves: &[usize],
    concurrency: u32,
    brake: Option<&Brake>,
    outcomes: &mut [SeatOutcome],
) -> Option<Stopped> {
    let released = Brake::released();
    let brake = brake.unwrap_or(&released);
    // Once QRS refuses an Analyzer seat, no other move asks for one: the licence has none free.
    let no_analyzer_seat = AtomicBool::new(false);
    let mut batches: VecDeque<Vec<usize>> = batches_by_type(plan, moves).into();
    while let Some(batch) = batches.pop_front() {
        if let Err(reason) = brake.proceed().await {
            return Some(Stopped(reason));
        }
        let to_move = recheck(client, plan, &batch, brake, Freshness::Held, outcomes).await;
        if to_move.is_empty() {
            continue;
        }
        let Some(holders) = analyzer_holders(client, plan, &to_move, outcomes).await else {
            continue;
        };
        // The Analyzer seats the batch needs, with one request; whoever it does not give one asks alone.
        let added = match brake.current() {
            BrakeState::Released if !no_analyzer_seat.load(Ordering::Relaxed) => {
                add_analyzer_seats(client, plan, &to_move, &holders).await
            }
            BrakeState::Released => HashMap::new(),
            BrakeState::Stopped(reason) => return Some(Stopped(reason)),
            BrakeState::Paused(_) => {
                batches.push_front(to_move);
                continue;
            }
        };
        let step = MoveStep {
            client,
            brake,
            no_analyzer_seat: &no_analyzer_seat,
        };
        let results = while_released(&to_move, brake, concurrency, |i| {
            let user = plan.decisions[i].allocation.user_id.to_ascii_lowercase();
            let has_analyzer = holders.with_access.contains(&user);
            let unclear = holders.unclear.contains(&user);
            let added = added.get(&user).cloned();
            async move {
                if unclear {
                    // Neither "holds" nor "does not": a POST could be refused or add a second seat, and taking
                    // Professional could leave the user a seat that gives no access.
                    let why = "not moved: QRS does not say whether the user's Analyzer seat gives access (quarantined or excess not sent)";
                    return SeatOutcome::failed(Outcome::Failed, why.into());
                }
                step.make(plan, i, has_analyzer, added).await
            }
        })
        .await;
        for (i, outcome) in results.done {
            outcomes[i] = outcome;
        }
        match held_back(plan, &to_move, results.held, &added, outcomes) {
            Held::Stopped(reason) => return Some(Stopped(reason)),
            Held::Paused(waiting) => batches.push_front(waiting),
            Held::No => {}
        }
    }
    None
}

/// What the brake held back of a batch's moves: a move whose Analyzer seat came with the batch (`added`) but that
/// did not start is unfinished (the user holds both); the others wait for the brake's release (returned as
/// paused), or for a later run.
fn held_back(
    plan: &Plan,
    batch: &[usize],
    held: Held,
    added: &HashMap<String, AddedSeat>,
    outcomes: &mut [SeatOutcome],
) -> Held {
    let added_for =
        |i: usize| added.get(&plan.decisions[i].allocation.user_id.to_ascii_lowercase());
    match held {
        Held::No => Held::No,
        Held::Paused(rest) => {
            let mut waiting = Vec::new();
            for i in rest {
                match added_for(i) {
                    Some(seat) => {
                        let why = "the brake held the move before the Professional seat went";
                        outcomes[i] = unfinished(Some(seat.clone()), why.into());
                    }
                    None => waiting.push(i),
                }
            }
            if waiting.is_empty() {
                Held::No
            } else {
                Held::Paused(waiting)
            }
        }
        Held::Stopped(reason) => {
            for &i in batch {
                if let Some(seat) = added_for(i)
                    && outcomes[i].outcome == Outcome::Deferred
                {
                    let why =
                        format!("the run was stopped before the Professional seat went ({reason})");
                    outcomes[i] = unfinished(Some(seat.clone()), why);
                }
            }
            Held::Stopped(reason)
        }
    }
}

/// What the users of these moves hold of Analyzer now: the users (QRS ids, lower case) with a seat that gives
/// access, and those whose seat QRS describes too little to tell (they are not moved). A seat quarantined or
/// excess (beyond the licence: the proxy denies its user) gives no access. `None` when it cannot be read: the moves
/// are not made, and say why.
async fn analyzer_holders(
    client: &QrsClient,
    plan: &Plan,
    batch: &[usize],
    outcomes: &mut [SeatOutcome],
) -> Option<Holders> {
    let users: Vec<&str> = batch
        .iter()
        .map(|&i| plan.decisions[i].allocation.user_id.as_str())
        .collect();
    match client.seats_held_by(AccessType::Analyzer, &users).await {
        Ok(seats) => {
            let mut holders = Holders::default();
            for seat in seats {
                let user = seat.user.to_string();
                match seat.access {
                    SeatAccess::Gives => holders.with_access.insert(user),
                    SeatAccess::Unknown(_) => holders.unclear.insert(user),
                    SeatAccess::Denied => false,
                };
            }
            Some(holders)
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not read which users hold Analyzer; not moving them");
            let why = format!("not moved: could not read which users hold an Analyzer seat ({e})");
            for &i in batch {
                outcomes[i] = SeatOutcome::failed(Outcome::Failed, why.clone());
            }
            None
        }
    }
}

/// Who of a batch's users holds Analyzer, by QRS user id in lower case.
#[derive(Default)]
struct Holders {
    with_access: HashSet<String>,
    unclear: HashSet<String>,
}

/// Allocates an Analyzer seat to each user of these moves who holds none (nor one QRS describes too little to
/// tell), with one `POST .../many`: the seats QRS made, by user id (lower case). QRS makes all or none; on a
/// refusal nobody has one, and each move asks for its own seat (so one refusal fails alone).
async fn add_analyzer_seats(
    client: &QrsClient,
    plan: &Plan,
    batch: &[usize],
    holders: &Holders,
) -> HashMap<String, AddedSeat> {
    let mut users: Vec<&str> = batch
        .iter()
        .map(|&i| plan.decisions[i].allocation.user_id.as_str())
        .filter(|u| {
            let u = u.to_ascii_lowercase();
            !holders.with_access.contains(&u) && !holders.unclear.contains(&u)
        })
        .collect();
    users.sort_unstable();
    users.dedup();
    if users.is_empty() {
        return HashMap::new();
    }
    let added: HashMap<String, AddedSeat> = match client
        .allocate_many(AccessType::Analyzer, &users)
        .await
    {
        Ok(created) => created
            .into_iter()
            .filter_map(|c| {
                Some((
                    c.user?.to_ascii_lowercase(),
                    AddedSeat {
                        id: Some(c.allocation),
                    },
                ))
            })
            .collect(),
        Err(e) => {
            tracing::info!(error = %e, "QRS did not allocate the batch's Analyzer seats together; reading what it holds");
            HashMap::new()
        }
    };
    if added.len() == users.len() {
        return added;
    }
    // Refused, or an answer lost or incomplete: what QRS holds now says who has a seat after all (those are the
    // seats this run added: the users held none a moment ago); the others ask alone.
    match client.seats_held_by(AccessType::Analyzer, &users).await {
        Ok(seats) => seats
            .into_iter()
            .filter(|s| s.access == SeatAccess::Gives)
            .map(|s| {
                (
                    s.user.to_string(),
                    AddedSeat {
                        id: Some(s.allocation.to_string()),
                    },
                )
            })
            .collect(),
        Err(_) => added,
    }
}

/// What one move needs besides its seat.
#[derive(Clone, Copy)]
struct MoveStep<'a> {
    client: &'a QrsClient,
    brake: &'a Brake,
    no_analyzer_seat: &'a AtomicBool,
}

impl MoveStep<'_> {
    /// One move: the Analyzer seat (unless held, or `added` with the batch), then the Professional seat, the brake
    /// looked at in between.
    async fn make(
        self,
        plan: &Plan,
        i: usize,
        has_analyzer: bool,
        added: Option<AddedSeat>,
    ) -> SeatOutcome {
        let allocation = &plan.decisions[i].allocation;
        let (user, id) = (&allocation.user, &allocation.id);
        let added = match added {
            Some(added) => Some(added),
            None if has_analyzer => None,
            None => match self.add_analyzer(&allocation.user_id).await {
                Ok(added) => Some(added),
                Err(outcome) => return outcome,
            },
        };
        if let BrakeState::Stopped(why) | BrakeState::Paused(why) = self.brake.current() {
            tracing::info!(user = %user, allocation = %id, analyzer_added = added.is_some(), "the run was stopped before the Professional seat went");
            return unfinished(
                added,
                format!("the run was stopped before the Professional seat went ({why})"),
            );
        }
        match self.client.deallocate(AccessType::Professional, id).await {
            Ok(Deallocation::Done | Deallocation::AlreadyGone) => {
                tracing::info!(user = %user, allocation = %id, analyzer_added = added.is_some(), "moved to Analyzer");
                let note = if added.is_some() {
                    "moved: Analyzer seat allocated, Professional seat deallocated"
                } else {
                    "moved: already held an Analyzer seat; Professional seat deallocated"
                };
                SeatOutcome {
                    added,
                    ..SeatOutcome::noted(Outcome::Moved, note.into())
                }
            }
            Err(e) => {
                tracing::warn!(user = %user, allocation = %id, error = %e, "Professional seat not deallocated after the Analyzer seat");
                unfinished(
                    added,
                    format!("the Professional seat could not be deallocated ({e})"),
                )
            }
        }
    }

    /// Allocates the user an Analyzer seat; the outcome of a move that cannot begin otherwise.
    async fn add_analyzer(self, user_id: &str) -> Result<AddedSeat, SeatOutcome> {
        if self.no_analyzer_seat.load(Ordering::Relaxed) {
            return Err(no_analyzer_seat(
                "QRS refused an earlier Analyzer seat in this run",
            ));
        }
        match self.client.allocate(AccessType::Analyzer, user_id).await {
            Ok(Some(id)) => Ok(AddedSeat { id: Some(id) }),
            // An answer that names no seat is not taken for one: the seat must be listed before Professional goes.
            Ok(None) => self.listed_analyzer_seat(user_id).await,
            // QRS answers 400 with the broken rule when the licence has no Analyzer seat free, and for other
            // reasons (a user QRS will not give one): the seat overview tells which.
            Err(QrsError::Status { status, detail, .. })
                if status == reqwest::StatusCode::BAD_REQUEST =>
            {
                let free = match self.client.seats().await {
                    Ok(seats) => seats.get(&AccessType::Analyzer).map(|s| s.available),
                    Err(_) => None,
                };
                if free.is_none_or(|n| n == 0) {
                    self.no_analyzer_seat.store(true, Ordering::Relaxed);
                    Err(no_analyzer_seat(&format!("QRS refused it: {detail}")))
                } else {
                    Err(SeatOutcome::failed(
                        Outcome::Failed,
                        format!(
                            "not moved: QRS refused this user an Analyzer seat ({detail}); still Professional"
                        ),
                    ))
                }
            }
            // A stop cut the request short: the move was not begun, it waits for a later run.
            Err(_) if self.brake.stopped().is_some() => Err(SeatOutcome::of(Outcome::Deferred)),
            Err(e) => Err(SeatOutcome::failed(
                Outcome::Failed,
                format!(
                    "not moved: the Analyzer seat could not be allocated ({e}); still Professional"
                ),
            )),
        }
    }

    /// The Analyzer seat QRS lists for the user after a POST whose answer named none.
    async fn listed_analyzer_seat(self, user_id: &str) -> Result<AddedSeat, SeatOutcome> {
        let not_moved = |why: String| {
            SeatOutcome::failed(
                Outcome::Failed,
                format!(
                    "not moved: {why}; still Professional (an Analyzer seat may have been added)"
                ),
            )
        };
        let seats = self
            .client
            .seats_held_by(AccessType::Analyzer, &[user_id])
            .await
            .map_err(|e| {
                not_moved(format!(
                    "QRS named no Analyzer seat, and it could not be read ({e})"
                ))
            })?;
        seats
            .iter()
            .find(|s| s.access == SeatAccess::Gives)
            .map(|s| AddedSeat {
                id: Some(s.allocation.to_string()),
            })
            .ok_or_else(|| {
                not_moved(
                    "QRS answered the allocation, but lists no Analyzer seat that gives access"
                        .into(),
                )
            })
    }
}

fn no_analyzer_seat(why: &str) -> SeatOutcome {
    SeatOutcome::noted(
        Outcome::NoAnalyzerSeat,
        format!("not moved: no Analyzer seat is free ({why}); still Professional"),
    )
}

/// A move whose Analyzer step is done (or was not needed) and whose Professional seat is still held.
fn unfinished(added: Option<AddedSeat>, why: String) -> SeatOutcome {
    let error = format!("{why}; the user holds both seats until the next run finishes the move");
    SeatOutcome {
        added,
        note: Some(error.clone()),
        ..SeatOutcome::failed(Outcome::MoveUnfinished, error)
    }
}
