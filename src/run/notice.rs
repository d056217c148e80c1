//! Notice before reclaim within a run: of the seats the plan would reclaim, those warned long enough ago go; the
//! others wait, or their users are warned now. A seat is never reclaimed without a delivered notice: a notice that
//! fails, or a user without an e-mail address, keeps the seat.

use jiff::Timestamp;

use super::{Outcome, SeatOutcome};
use crate::brake::Brake;
use crate::model::Rule;
use crate::notice::{Notice, Pending, Step, reclaim_after};
use crate::notify::Delivery;
use crate::notify::templates::{NoticeVars, UserVars};
use crate::plan::{Plan, Reason, Verdict};
use crate::qrs::{QrsClient, QrsError};

/// Consecutive failed notices after which the others of the run are not tried: the mail server is down.
const FAILURES_BEFORE_GIVING_UP: usize = 3;

/// What notice decided: the seats that may be deleted now, and the notices pending after the run (those carried
/// over and those delivered now; the caller drops the ones whose seat is deleted).
pub(super) struct Noticed {
    pub reclaims: Vec<usize>,
    pub pending: Vec<(usize, Notice)>,
    pub deliveries: Vec<Delivery>,
}

/// What notice needs of the run.
pub(super) struct NoticeContext<'a> {
    pub notify: &'a super::NotifyContext<'a>,
    pub days: u32,
    pub now: Timestamp,
    pub dry_run: bool,
    /// Looked at before each notice: a stopped run warns no one more, and a paused one waits (a notice sent under a
    /// policy the administrator just changed would promise what the new one may not do).
    pub brake: Option<&'a Brake>,
}

/// The last use as a notice records it: ISO 8601 as QRS wrote it, or "never".
pub(super) fn last_used_text(last_used: &crate::model::LastUse) -> String {
    match last_used {
        crate::model::LastUse::At(t) => crate::qrs::wire::format_qrs_date(*t),
        crate::model::LastUse::Never => "never".into(),
        crate::model::LastUse::Unknown(raw) => raw.clone(),
    }
}

/// What a notice of a move records in place of the seat's last use: a move's seat is in use, and what cancels
/// the notice is authoring (the next run judges it again), not a login.
const MOVE_NOTICE_KEY: &str = "in use";

/// What a pending notice is compared with to tell whether it still holds: the seat's last use, or for a move the
/// fixed [`MOVE_NOTICE_KEY`].
fn notice_key(decision: &crate::plan::Decision) -> String {
    if super::is_move(decision) {
        MOVE_NOTICE_KEY.to_string()
    } else {
        last_used_text(&decision.allocation.last_used)
    }
}

/// What happens after the notice, for the report: "reclaimed from DAY if still unused", or for a move "moves to
/// Analyzer from DAY unless they author".
fn after_notice(decision: &crate::plan::Decision, after: Timestamp) -> String {
    if super::is_move(decision) {
        format!("moves to Analyzer from {} unless they author", day(after))
    } else {
        format!("reclaimed from {} if still unused", day(after))
    }
}

/// Sorts the plan's reclaims into due, waiting and to warn, warns (unless dry run), and sets the outcomes of the
/// seats that are not deleted now.
pub(super) async fn give_notice(
    client: &QrsClient,
    plan: &Plan,
    run: &NoticeContext<'_>,
    outcomes: &mut [SeatOutcome],
) -> Result<Noticed, QrsError> {
    let pending: &Pending = &run.notify.pending;
    let mut noticed = Noticed {
        reclaims: Vec::new(),
        pending: Vec::new(),
        deliveries: Vec::new(),
    };
    let mut to_warn = Vec::new();
    for (i, decision) in plan.decisions.iter().enumerate() {
        let a = &decision.allocation;
        let last_used = notice_key(decision);
        match decision.verdict {
            Verdict::Reclaim => match pending.step(&a.id, &last_used, run.now) {
                Step::Reclaim => {
                    noticed.reclaims.push(i);
                    carry(&mut noticed, pending, i, &a.id);
                }
                Step::Wait(after) => {
                    outcomes[i] = SeatOutcome::noted(
                        Outcome::NoticeGiven,
                        format!("notice given; {}", after_notice(decision, after)),
                    );
                    carry(&mut noticed, pending, i, &a.id);
                }
                Step::Warn => to_warn.push(i),
            },
            // Over the cap this run: a notice already given still holds.
            Verdict::Deferred => {
                if pending.step(&a.id, &last_used, run.now) != Step::Warn {
                    carry(&mut noticed, pending, i, &a.id);
                }
            }
            Verdict::Keep => {}
        }
    }
    if run.dry_run {
        for &i in &to_warn {
            let then = if super::is_move(&plan.decisions[i]) {
                "moves to Analyzer"
            } else {
                "reclaimed"
            };
            outcomes[i] = SeatOutcome::noted(
                Outcome::WouldWarn,
                format!(
                    "would be warned; {then} {} days after the notice unless {}",
                    run.days,
                    if then == "reclaimed" {
                        "used"
                    } else {
                        "they author"
                    }
                ),
            );
        }
        return Ok(noticed);
    }
    warn(client, plan, run, &to_warn, outcomes, &mut noticed).await?;
    Ok(noticed)
}

fn carry(noticed: &mut Noticed, pending: &Pending, i: usize, allocation_id: &str) {
    if let Some(notice) = pending.get(allocation_id) {
        noticed.pending.push((i, notice.clone()));
    }
}

fn day(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d").to_string()
}

/// Mail each user to warn at their QRS `email` attribute, one after the other.
async fn warn(
    client: &QrsClient,
    plan: &Plan,
    run: &NoticeContext<'_>,
    to_warn: &[usize],
    outcomes: &mut [SeatOutcome],
    noticed: &mut Noticed,
) -> Result<(), QrsError> {
    if to_warn.is_empty() {
        return Ok(());
    }
    let mut ids: Vec<String> = to_warn
        .iter()
        .map(|&i| plan.decisions[i].allocation.user_id.clone())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let users = client.users(&ids).await?;
    let notifier = run.notify.notifier;
    let after = reclaim_after(run.now, run.days);
    let mut failures_in_a_row = 0;
    for &i in to_warn {
        let a = &plan.decisions[i].allocation;
        let proceed = match run.brake {
            Some(brake) => brake.proceed().await,
            None => Ok(()),
        };
        if let Err(why) = proceed {
            outcomes[i] =
                SeatOutcome::notice_failed(format!("not sent: the run was stopped ({why})"));
            continue;
        }
        let Some(email) = users.get(&a.user_id).and_then(|u| u.email.clone()) else {
            outcomes[i] = SeatOutcome::noted(
                Outcome::NoAddress,
                "not warned: Qlik has no e-mail address for this user (user attribute email)"
                    .into(),
            );
            continue;
        };
        if failures_in_a_row >= FAILURES_BEFORE_GIVING_UP {
            outcomes[i] = SeatOutcome::notice_failed(format!(
                "not sent: the previous {FAILURES_BEFORE_GIVING_UP} notices failed"
            ));
            continue;
        }
        let context = notice_vars(&plan.decisions[i], email.clone(), after, notifier);
        match notifier.notice(&email, &context).await {
            Ok(()) => {
                failures_in_a_row = 0;
                tracing::info!(user = %a.user, access_type = %a.access_type, "notice delivered");
                outcomes[i] = SeatOutcome::noted(
                    Outcome::Warned,
                    format!("warned; {}", after_notice(&plan.decisions[i], after)),
                );
                noticed.deliveries.push(Delivery {
                    channel: "email",
                    error: None,
                });
                noticed
                    .pending
                    .push((i, notice_of(&plan.decisions[i], run.now, after)));
            }
            Err(e) => {
                failures_in_a_row += 1;
                tracing::warn!(user = %a.user, error = %e, "notice not delivered; the seat is kept");
                noticed.deliveries.push(Delivery {
                    channel: "email",
                    error: Some(e.to_string()),
                });
                outcomes[i] = SeatOutcome::notice_failed(format!("notice not delivered: {e}"));
            }
        }
    }
    Ok(())
}

/// What the notice template of one seat is given.
fn notice_vars(
    decision: &crate::plan::Decision,
    email: String,
    after: Timestamp,
    notifier: &crate::notify::Notifier,
) -> NoticeVars {
    let (a, reason) = (&decision.allocation, &decision.reason);
    // Only a seat a rule takes is warned of.
    let rule = reason.rule().unwrap_or(Rule::Idle);
    let user_state = match reason {
        Reason::Leaver { state, .. } => state.describe().to_string(),
        _ => String::new(),
    };
    NoticeVars {
        user: UserVars {
            name: a.user_name.clone(),
            id: a.user.to_string(),
            email,
        },
        rule,
        user_state,
        access_type: a.access_type.key().to_string(),
        last_used: match &a.last_used {
            crate::model::LastUse::At(t) => day(*t),
            _ => "never".into(),
        },
        idle_days: None,
        reclaim_after: day(after),
        policy: notifier.policy().to_string(),
        contact: notifier.contact(),
    }
}

/// The notice a run keeps of a warning delivered now.
fn notice_of(decision: &crate::plan::Decision, now: Timestamp, after: Timestamp) -> Notice {
    let a = &decision.allocation;
    Notice {
        user: a.user.to_string(),
        access_type: a.access_type,
        allocation_id: a.id.clone(),
        last_used: notice_key(decision),
        warned_at: now,
        reclaim_after: after,
    }
}
