//! Undo: give back the seats a run reclaimed. `restore --report` works from a JSON report on a laptop; in the
//! cluster, `restore --run` and the `licensing.reclaimer.dev/restore` annotation work from a run's record. All three
//! call [`restore`].
//!
//! Each seat is looked at as QRS holds it now: a user who no longer exists, who holds that access type again, or
//! whose seat is in quarantine (to be reinstated in the QMC, which keeps the seat's history) is skipped with the
//! reason; a seat QRS refuses (no free seat on the licence) is a failure of that seat alone.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

use crate::model::{AccessType, UserIdentity};
use crate::policy::RunResult;
use std::collections::{HashMap, HashSet};

use crate::qrs::Deallocation;
use crate::qrs::{QrsClient, QrsError, SEATS_PER_BATCH};
use crate::record::{RecordedAction, RestoreOutcome, RestoreStatus, RestoredSeat, RunRecord};
use crate::run::AddedSeat;

/// A seat to give back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatToRestore {
    pub user: UserIdentity,
    /// The user's QRS id as the run recorded it; `None` in a record kept before ids were recorded (the user is then
    /// looked up by name).
    pub user_qrs_id: Option<String>,
    pub access_type: AccessType,
    /// For a move to Analyzer that allocated an Analyzer seat: that seat, released once the Professional seat is
    /// back (never before: the user is never left with neither).
    pub added_analyzer: Option<AddedSeat>,
}

/// Why a restore cannot start.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("run {run} was a dry run: it reclaimed nothing, so there is nothing to give back")]
    DryRun { run: String },
    #[error("--user {user}: run {run} did not reclaim a seat of that user")]
    NotReclaimed { user: String, run: String },
    #[error("--user {0}: not DIRECTORY\\userId")]
    NotAUser(String),
    #[error(
        "run {run}: the seat of {user} names an access type the program does not know ({access_type})"
    )]
    UnknownAccessType {
        run: String,
        user: String,
        access_type: String,
    },
    #[error(
        "run {run} reclaimed its seats on {was}, but its policy now names {now}: a restore gives seats back only on \
         the site that lost them (point the policy back at {was}, or give the seats in the QMC)"
    )]
    OtherSite {
        run: String,
        was: String,
        now: String,
    },
}

/// The seats go back only to the site that lost them: a policy edited, or deleted and created again, to name another
/// site would give that site's licences to users who happen to share a name there. A record kept before runs
/// recorded their site cannot be checked and is let through.
pub fn check_same_site(record: &RunRecord, site: &str) -> Result<(), RestoreError> {
    if record.site.is_empty() || crate::record::same_site(&record.site, site) {
        Ok(())
    } else {
        Err(RestoreError::OtherSite {
            run: record.header.id.clone(),
            was: record.site.clone(),
            now: site.to_string(),
        })
    }
}

/// The seats a run reclaimed, or those of the `only` users among them.
pub fn seats_of(record: &RunRecord, only: &[String]) -> Result<Vec<SeatToRestore>, RestoreError> {
    if record.header.dry_run {
        return Err(RestoreError::DryRun {
            run: record.header.id.clone(),
        });
    }
    let only = only
        .iter()
        .map(|u| UserIdentity::parse(u).ok_or_else(|| RestoreError::NotAUser(u.clone())))
        .collect::<Result<Vec<_>, _>>()?;
    let mut seats = Vec::new();
    for seat in record.decisions.iter().filter(|d| {
        matches!(
            d.action,
            RecordedAction::Reclaimed | RecordedAction::Moved | RecordedAction::MoveUnfinished
        )
    }) {
        let (Some(user), Some(access_type)) = (
            UserIdentity::parse(&seat.user),
            AccessType::from_key(&seat.access_type),
        ) else {
            return Err(RestoreError::UnknownAccessType {
                run: record.header.id.clone(),
                user: seat.user.clone(),
                access_type: seat.access_type.clone(),
            });
        };
        if only.is_empty() || only.contains(&user) {
            let added_analyzer = seat.analyzer_added.then(|| AddedSeat {
                id: seat.analyzer_allocation_id.clone(),
            });
            seats.push(SeatToRestore {
                user,
                // An id that is not a GUID (a hand-edited report) is not sent: the name is looked up instead.
                user_qrs_id: seat
                    .user_qrs_id
                    .clone()
                    .filter(|id| crate::qrs::is_guid(id)),
                access_type,
                added_analyzer,
            });
        }
    }
    if let Some(missing) = only.iter().find(|u| !seats.iter().any(|s| &s.user == *u)) {
        return Err(RestoreError::NotReclaimed {
            user: missing.to_string(),
            run: record.header.id.clone(),
        });
    }
    Ok(seats)
}

/// Give back `seats`, one access type at a time: their users by the ids the run recorded (or, in an older record,
/// found by name), the seats they hold read [`crate::qrs::ids_per_read`] users a request, and the seats to give
/// allocated with one `POST .../many` for each [`SEATS_PER_BATCH`] (QRS gives all or none: on a failure, one POST
/// each, so that one user without a free seat fails alone). In a dry run nothing is allocated: the outcome says what
/// would be. `answered` names what asked for the restore.
pub async fn restore(
    client: &QrsClient,
    seats: &[SeatToRestore],
    dry_run: bool,
    answered: String,
) -> RestoreStatus {
    let mut by_type: std::collections::BTreeMap<AccessType, Vec<usize>> = Default::default();
    for (i, seat) in seats.iter().enumerate() {
        by_type.entry(seat.access_type).or_default().push(i);
    }
    let mut restored: Vec<Option<RestoredSeat>> = vec![None; seats.len()];
    for (access_type, indexes) in by_type {
        let group: Vec<&SeatToRestore> = indexes.iter().map(|&i| &seats[i]).collect();
        let prepared = prepare(client, access_type, &group, dry_run).await;
        for i in indexes {
            let seat = &seats[i];
            let done = match &prepared {
                Ok(prepared) => restore_one(client, seat, prepared, dry_run).await,
                Err(e) => Err(e.to_string()),
            };
            let (outcome, reason) = done.unwrap_or_else(|e| (RestoreOutcome::Failed, e));
            tracing::info!(user = %seat.user, access_type = %seat.access_type, outcome = ?outcome, "{reason}");
            restored[i] = Some(RestoredSeat {
                user: seat.user.to_string(),
                access_type: seat.access_type.key().to_string(),
                outcome,
                reason,
            });
        }
    }
    status(restored.into_iter().flatten().collect(), dry_run, answered)
}

/// What QRS said of the users of one access type, read (and allocated) together.
struct Prepared {
    /// Users QRS knows, with their ids.
    ids: HashMap<UserIdentity, String>,
    /// Seats of the access type each holds, by user id (lower case).
    held: HashMap<String, Vec<crate::model::Allocation>>,
    /// What allocating each user a seat came to, by user id (lower case): `Err` says why not.
    given: HashMap<String, Result<(), String>>,
}

/// Finds the users, reads what they hold, and (unless dry run) allocates a seat to each who holds none.
async fn prepare(
    client: &QrsClient,
    access_type: AccessType,
    seats: &[&SeatToRestore],
    dry_run: bool,
) -> Result<Prepared, QrsError> {
    let mut ids = ids_of(client, seats, dry_run).await?;
    // One entry a user, whatever case their id was recorded or listed in: a user asked for twice could be given two.
    let mut known: Vec<String> = ids.values().map(|id| id.to_ascii_lowercase()).collect();
    known.sort_unstable();
    known.dedup();
    let known: Vec<&str> = known.iter().map(String::as_str).collect();
    // No request when no user is known: the ids are read in batches, and there is none.
    let held = by_holder(client.allocations_held_by(access_type, &known).await?);
    let to_give: Vec<&str> = known
        .into_iter()
        .filter(|id| !held.contains_key(&id.to_ascii_lowercase()))
        .collect();
    let mut given = HashMap::new();
    if !dry_run {
        for batch in to_give.chunks(SEATS_PER_BATCH) {
            let gone = give_batch(client, access_type, batch, &mut given).await;
            ids.retain(|_, id| !gone.contains(&id.to_ascii_lowercase()));
        }
    }
    Ok(Prepared { ids, held, given })
}

/// The QRS ids of the seats' users: as the run recorded them, and, for a record kept before ids were recorded, found
/// by name (a user QRS no longer knows by that name is absent). A real restore learns that a recorded user is gone
/// only if QRS refuses their batch; a dry run, which allocates nothing, asks.
async fn ids_of(
    client: &QrsClient,
    seats: &[&SeatToRestore],
    dry_run: bool,
) -> Result<HashMap<UserIdentity, String>, QrsError> {
    let mut ids = HashMap::with_capacity(seats.len());
    let mut by_name = Vec::new();
    for seat in seats {
        match &seat.user_qrs_id {
            Some(id) => {
                ids.insert(seat.user.clone(), id.clone());
            }
            None => by_name.push(&seat.user),
        }
    }
    if dry_run && !ids.is_empty() {
        let recorded: Vec<&str> = ids.values().map(String::as_str).collect();
        let known = client.existing_users(&recorded).await?;
        ids.retain(|_, id| known.contains(&id.to_ascii_lowercase()));
    }
    if !by_name.is_empty() {
        ids.extend(client.user_ids(&by_name).await?);
    }
    Ok(ids)
}

/// Allocates a seat to each of these users (at most [`SEATS_PER_BATCH`]) with one `POST .../many`, and, when QRS
/// refuses it, one POST each; what became of each goes into `given`. Returns the users QRS no longer knows (lower
/// case): a recorded id whose user was deleted since.
async fn give_batch(
    client: &QrsClient,
    access_type: AccessType,
    batch: &[&str],
    given: &mut HashMap<String, Result<(), String>>,
) -> HashSet<String> {
    if client
        .allocate_many(access_type, batch)
        .await
        .is_ok_and(|created| created.len() == batch.len())
    {
        given.extend(batch.iter().map(|id| (id.to_ascii_lowercase(), Ok(()))));
        return HashSet::new();
    }
    // All or none was refused (or the answer was lost, or names fewer seats than asked): who QRS still knows, and
    // what it holds now, say who is gone and who has a seat after all; the others get one POST each.
    let read = async {
        let known = client.existing_users(batch).await?;
        let now_held = by_holder(client.allocations_held_by(access_type, batch).await?);
        Ok::<_, QrsError>((known, now_held))
    };
    let (known, now_held) = match read.await {
        Ok(read) => read,
        Err(e) => {
            let why = format!("not allocated: {e}");
            given.extend(
                batch
                    .iter()
                    .map(|id| (id.to_ascii_lowercase(), Err(why.clone()))),
            );
            return HashSet::new();
        }
    };
    let mut gone = HashSet::new();
    for id in batch {
        let key = id.to_ascii_lowercase();
        if !known.contains(&key) {
            gone.insert(key);
            continue;
        }
        let outcome = if now_held.contains_key(&key) {
            Ok(())
        } else {
            client
                .allocate(access_type, id)
                .await
                .map(|_| ())
                .map_err(|e| refusal(access_type, e))
        };
        given.insert(key, outcome);
    }
    gone
}

/// Seats by their holder's id, lower case.
fn by_holder(
    seats: Vec<crate::model::Allocation>,
) -> HashMap<String, Vec<crate::model::Allocation>> {
    let mut held: HashMap<String, Vec<crate::model::Allocation>> = HashMap::new();
    for seat in seats {
        held.entry(seat.user_id.to_ascii_lowercase())
            .or_default()
            .push(seat);
    }
    held
}

/// Why QRS did not allocate a seat, for a person.
fn refusal(access_type: AccessType, error: QrsError) -> String {
    match error {
        QrsError::Status { status, detail, .. } if status == reqwest::StatusCode::BAD_REQUEST => {
            format!(
                "QRS refused the allocation ({detail}): free a {access_type} seat or add seats to the licence, then restore again"
            )
        }
        other => other.to_string(),
    }
}

async fn restore_one(
    client: &QrsClient,
    seat: &SeatToRestore,
    prepared: &Prepared,
    dry_run: bool,
) -> Result<(RestoreOutcome, String), String> {
    let Some(user_id) = prepared.ids.get(&seat.user) else {
        return Ok((
            RestoreOutcome::Skipped,
            "the user no longer exists in Qlik".into(),
        ));
    };
    let GivenBack {
        outcome,
        reason,
        holds,
    } = give_back(seat, user_id, prepared, dry_run);
    let Some(added) = &seat.added_analyzer else {
        return Ok((outcome, reason));
    };
    // The Analyzer seat a move added goes only once the user holds Professional again (given back now, or held
    // again already); a Professional seat in quarantine or refused leaves the user their Analyzer seat.
    // Held means a seat that gives access: one QRS lists as excess (beyond the licence) does not.
    let holds = holds
        && (dry_run
            || client
                .seats_held_by(seat.access_type, &[user_id.as_str()])
                .await
                .map_err(|e| format!("{reason}; could not read whether the seat gives access ({e}): the Analyzer seat the move added is kept"))?
                .iter()
                .any(|s| s.access == crate::qrs::SeatAccess::Gives));
    if !holds {
        return Ok((
            outcome,
            format!("{reason}; the Analyzer seat the move added is kept"),
        ));
    }
    // The Professional seat is back by now: a failure to release is said, not lost in an error.
    let released = release_added(client, added, user_id, dry_run)
        .await
        .unwrap_or_else(|e| Released {
            acted: false,
            what: format!(
                "the Analyzer seat the move added could not be released ({e}): release it in the QMC, or restore again"
            ),
        });
    let outcome = match outcome {
        // Professional held already and the Analyzer seat released now: this restore undid the move.
        RestoreOutcome::Skipped if released.acted && dry_run => RestoreOutcome::WouldRestore,
        RestoreOutcome::Skipped if released.acted => RestoreOutcome::Restored,
        other => other,
    };
    Ok((outcome, format!("{reason}; {}", released.what)))
}

/// What became of the Analyzer seat a move added.
struct Released {
    /// Whether this restore released it (or, in a dry run, would).
    acted: bool,
    what: String,
}

/// Releases the Analyzer seat a move added, by its id and only while its user holds it: never another Analyzer
/// seat, which the user may have held before the move.
async fn release_added(
    client: &QrsClient,
    added: &AddedSeat,
    user_id: &str,
    dry_run: bool,
) -> Result<Released, QrsError> {
    let Some(id) = &added.id else {
        return Ok(Released {
            acted: false,
            what: "the move's Analyzer seat was not named by QRS: release it in the QMC if it is not needed"
                .into(),
        });
    };
    let held = client
        .allocations_held_by(AccessType::Analyzer, &[user_id])
        .await?;
    if !held
        .iter()
        .any(|a| a.id.eq_ignore_ascii_case(id) && !a.quarantined)
    {
        return Ok(Released {
            acted: false,
            what: "the Analyzer seat the move added is gone already".into(),
        });
    }
    if dry_run {
        return Ok(Released {
            acted: true,
            what: "would release the Analyzer seat the move added".into(),
        });
    }
    Ok(match client.deallocate(AccessType::Analyzer, id).await? {
        Deallocation::Done => Released {
            acted: true,
            what: "released the Analyzer seat the move added".into(),
        },
        Deallocation::AlreadyGone => Released {
            acted: false,
            what: "the Analyzer seat the move added is gone already".into(),
        },
    })
}

/// What giving one seat back did.
struct GivenBack {
    outcome: RestoreOutcome,
    reason: String,
    /// Whether the user holds (or, in a dry run, would hold) that access type afterwards, outside quarantine.
    holds: bool,
}

/// The seat given back, as the batch's reads and allocations came out: skipped when the user holds it (or it is in
/// quarantine), given, would be given (dry run), or refused.
fn give_back(seat: &SeatToRestore, user_id: &str, prepared: &Prepared, dry_run: bool) -> GivenBack {
    let key = user_id.to_ascii_lowercase();
    let given = |outcome, holds, reason: String| GivenBack {
        outcome,
        reason,
        holds,
    };
    let held = prepared
        .held
        .get(&key)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if held.iter().any(|a| a.quarantined) {
        let reason = format!(
            "the {} seat is in quarantine: reinstate it in the QMC",
            seat.access_type
        );
        return given(RestoreOutcome::Skipped, false, reason);
    }
    if !held.is_empty() {
        let reason = format!("holds a {} seat again", seat.access_type);
        return given(RestoreOutcome::Skipped, true, reason);
    }
    if dry_run {
        let reason = format!("would be allocated a {} seat again", seat.access_type);
        return given(RestoreOutcome::WouldRestore, true, reason);
    }
    match prepared.given.get(&key) {
        Some(Ok(())) => given(
            RestoreOutcome::Restored,
            true,
            format!("allocated a {} seat again", seat.access_type),
        ),
        Some(Err(why)) => given(RestoreOutcome::Failed, false, why.clone()),
        None => given(
            RestoreOutcome::Failed,
            false,
            "not allocated: the run stopped before this seat".into(),
        ),
    }
}

/// The restore's outcome: counts, result and the sentence that says it.
fn status(seats: Vec<RestoredSeat>, dry_run: bool, answered: String) -> RestoreStatus {
    let count = |outcome| seats.iter().filter(|s| s.outcome == outcome).count() as u64;
    let given = count(RestoreOutcome::Restored) + count(RestoreOutcome::WouldRestore);
    let (skipped, failed) = (
        count(RestoreOutcome::Skipped),
        count(RestoreOutcome::Failed),
    );
    let message = if dry_run {
        format!(
            "dry run: {given} of {} seats would be given back, {skipped} skipped, {failed} could not be checked; nothing was allocated",
            seats.len()
        )
    } else {
        format!(
            "gave back {given} of {} seats, {skipped} skipped, {failed} failed",
            seats.len()
        )
    };
    RestoreStatus {
        answered,
        result: if failed == 0 {
            RunResult::Succeeded
        } else {
            RunResult::Failed
        },
        dry_run,
        time: MicroTime(Timestamp::now()),
        message,
        restored: given,
        skipped,
        failed,
        seats,
        seats_omitted: 0,
    }
}

/// The restore as a table for people.
pub fn table(status: &RestoreStatus) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let width = |f: fn(&RestoredSeat) -> &str, title: &str| {
        status
            .seats
            .iter()
            .map(|s| f(s).chars().count())
            .chain([title.len()])
            .max()
            .unwrap_or(0)
    };
    let (user_w, type_w) = (
        width(|s| &s.user, "USER"),
        width(|s| &s.access_type, "ACCESS TYPE"),
    );
    if !status.seats.is_empty() {
        let _ = writeln!(
            out,
            "  {:user_w$}  {:type_w$}  {:12}  REASON",
            "USER", "ACCESS TYPE", "OUTCOME"
        );
        for s in &status.seats {
            let _ = writeln!(
                out,
                "  {:user_w$}  {:type_w$}  {:12}  {}",
                s.user,
                s.access_type,
                format!("{:?}", s.outcome),
                s.reason
            );
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(
        out,
        "Result: {}: {}",
        status.result.as_str(),
        status.message
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{RunHeader, TypeCounts};
    use crate::record::{RecordedAction, RecordedDecision, Rule};

    #[test]
    fn seats_go_back_only_to_the_site_that_lost_them() {
        let record = record(false);
        assert!(check_same_site(&record, "https://qlik.example:4242").is_ok());
        assert!(check_same_site(&record, "HTTPS://Qlik.Example:4242/").is_ok());
        let err = check_same_site(&record, "https://other.example:4242").unwrap_err();
        assert!(
            err.to_string()
                .contains("policy now names https://other.example:4242"),
            "{err}"
        );
        // A record kept before runs recorded their site cannot be checked.
        let older = RunRecord {
            site: String::new(),
            ..record
        };
        assert!(check_same_site(&older, "https://other.example:4242").is_ok());
    }

    fn record(dry_run: bool) -> RunRecord {
        let decision = |user: &str, access_type: &str, action| RecordedDecision {
            user: user.into(),
            access_type: access_type.into(),
            allocation_id: "0f2c6d8e-1a2b-4c3d-9e8f-0123456789ab".into(),
            user_qrs_id: None,
            last_used: "never".into(),
            action,
            reason: String::new(),
            rule: Rule::Idle,
            error: None,
            analyzer_added: false,
            analyzer_allocation_id: None,
        };
        let at = MicroTime(crate::testing::ts("2026-12-01T09:00:00Z"));
        RunRecord {
            site: "https://qlik.example:4242".to_string(),
            conditions: Vec::new(),
            header: RunHeader {
                id: "r1".into(),
                result: RunResult::Succeeded,
                dry_run,
                start_time: at.clone(),
                completion_time: at,
                message: String::new(),
                totals: TypeCounts::default(),
                per_access_type: Default::default(),
                seats: Default::default(),
                deletions: None,
            },
            decisions: vec![
                decision("CORP\\alice", "professional", RecordedAction::Reclaimed),
                decision("CORP\\bob", "analyzer", RecordedAction::Failed),
                decision("CORP\\carol", "analyzer", RecordedAction::Reclaimed),
            ],
            decisions_omitted: 0,
            kept: Default::default(),
            returns: Vec::new(),
            returned: 0,
            restore: None,
        }
    }

    #[test]
    fn only_seats_the_run_took_are_given_back() {
        let seats = seats_of(&record(false), &[]).expect("seats");
        let users: Vec<String> = seats.iter().map(|s| s.user.to_string()).collect();
        assert_eq!(
            users,
            ["CORP\\alice", "CORP\\carol"],
            "a failed deletion took nothing"
        );
        let only = seats_of(&record(false), &["corp\\CAROL".into()]).expect("seats");
        assert_eq!(only.len(), 1);
        assert_eq!(only[0].access_type, AccessType::Analyzer);
    }

    #[test]
    fn a_user_the_run_did_not_take_or_a_dry_run_is_refused() {
        let e = seats_of(&record(false), &["CORP\\bob".into()]).expect_err("bob kept his seat");
        assert!(e.to_string().contains("did not reclaim"), "{e}");
        let e = seats_of(&record(false), &["bob".into()]).expect_err("not a user");
        assert!(e.to_string().contains("DIRECTORY\\userId"), "{e}");
        let e = seats_of(&record(true), &[]).expect_err("a dry run took nothing");
        assert!(e.to_string().contains("dry run"), "{e}");
    }

    #[test]
    fn the_outcome_counts_and_fails_on_any_failed_seat() {
        let seat = |outcome| RestoredSeat {
            user: "CORP\\a".into(),
            access_type: "professional".into(),
            outcome,
            reason: String::new(),
        };
        let ok = status(
            vec![
                seat(RestoreOutcome::Restored),
                seat(RestoreOutcome::Skipped),
            ],
            false,
            "cli".into(),
        );
        assert_eq!(
            (ok.result, ok.restored, ok.skipped, ok.failed),
            (RunResult::Succeeded, 1, 1, 0)
        );
        let failed = status(vec![seat(RestoreOutcome::Failed)], false, "cli".into());
        assert_eq!(failed.result, RunResult::Failed);
        assert!(table(&failed).contains("Result: Failed"));
    }
}
