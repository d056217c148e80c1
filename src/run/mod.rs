//! One run of a policy: read the site, decide, deallocate (unless dry run), and say what happened.
//!
//! The CLI's `run`, `demo`, the controller and `run --policy-ref` all call [`execute`]; what it returns is a
//! [`RunReport`](crate::report::RunReport), which the callers keep, then [`announce`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tracing::Instrument;

use crate::authoring;
use crate::brake::Brake;
use crate::credentials::Credentials;
use crate::model::{AccessType, UserIdentity};
use crate::notice::{Notice, Pending};
use crate::notify::Notifier;
use crate::plan::{self, Verdict};
use crate::policy::{RunResult, ValidPolicy};
use crate::qrs::{QrsClient, QrsError, RequestObserver, RetryPolicy};
use crate::report::run_id;
pub use crate::report::{
    DeletionPath, Delivery, Entry, Outcome, RecentMove, Returned, RunReport, by_access_type_key,
};
use assemble::{Finished, build_report};
use deallocate::deallocate_all;
use moves::move_all;
use notice::{NoticeContext, give_notice};
use read::{find_returns, read_site};

mod assemble;
mod bulk;
mod deallocate;
mod moves;
mod notice;
mod read;

/// What a run needs besides the policy.
pub struct RunContext<'a> {
    pub credentials: &'a Credentials,
    /// Force a dry run whatever the policy says (`run --dry-run`).
    pub force_dry_run: bool,
    pub now: Timestamp,
    pub observer: Option<Arc<dyn RequestObserver>>,
    /// Looked at just before each deallocation starts: pulled on shutdown or when the policy changed under the
    /// run (switched to dry run, suspended, deleted, edited), no new one starts and the ones in flight finish;
    /// paused (the run cannot tell whether its policy changed), deallocations wait.
    pub brake: Option<Brake>,
    /// Overrides the default retry policy (tests use short delays).
    pub retry: Option<RetryPolicy>,
    /// Seats earlier recorded runs reclaimed (cluster runs): a user who holds one again has returned.
    pub earlier_reclaims: Vec<EarlierReclaim>,
    /// Users earlier runs moved to Analyzer, as the policy remembers them (`status.recentMoves`): their Analyzer
    /// seats are not idle until the threshold has passed since the move. A caller that makes moves keeps the
    /// report's [`RunReport::recent_moves`] and gives them to the next run.
    pub recent_moves: Vec<RecentMove>,
    /// Notices and notifications (`spec.notice`, `spec.notify`): the channels, and the notices pending from earlier
    /// runs. Needed when the policy gives notice.
    pub notify: Option<NotifyContext<'a>>,
}

impl<'a> RunContext<'a> {
    /// The context of a run at `now` that the policy alone decides: no forced dry run, observer, brake, earlier
    /// reclaims or notifications, the policy's own retries. Callers set what they have on top.
    pub fn new(credentials: &'a Credentials, now: Timestamp) -> Self {
        RunContext {
            credentials,
            force_dry_run: false,
            now,
            observer: None,
            brake: None,
            retry: None,
            earlier_reclaims: Vec::new(),
            recent_moves: Vec::new(),
            notify: None,
        }
    }
}

/// The channels a run notifies through, and the notices earlier runs gave.
pub struct NotifyContext<'a> {
    pub notifier: &'a Notifier,
    pub pending: Pending,
}

/// A seat an earlier recorded run took from its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EarlierReclaim {
    pub user: UserIdentity,
    pub access_type: AccessType,
    /// When the run that took it started: an allocation created since is the user's again.
    pub at: Timestamp,
    /// That run's id.
    pub run: String,
}

/// What became of one decision's seat in this run.
#[derive(Debug, Clone)]
pub(crate) struct SeatOutcome {
    pub(crate) outcome: Outcome,
    /// What the report's reason adds for a notice: when the seat goes, or why its user was not warned.
    pub(crate) note: Option<String>,
    /// Why a deallocation or a notice failed.
    pub(crate) error: Option<String>,
    /// The Analyzer seat a move allocated (`restore` releases it).
    pub(crate) added: Option<AddedSeat>,
}

/// An Analyzer seat a move allocated to its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddedSeat {
    /// Its QRS id, when QRS's answer named it.
    pub id: Option<String>,
}

impl SeatOutcome {
    pub(crate) fn of(outcome: Outcome) -> Self {
        SeatOutcome {
            outcome,
            note: None,
            error: None,
            added: None,
        }
    }

    /// A notice's outcome, with what the reason adds.
    pub(crate) fn noted(outcome: Outcome, note: String) -> Self {
        SeatOutcome {
            note: Some(note),
            ..Self::of(outcome)
        }
    }

    /// A failure, with why.
    pub(crate) fn failed(outcome: Outcome, error: String) -> Self {
        SeatOutcome {
            error: Some(error),
            ..Self::of(outcome)
        }
    }

    /// A notice not delivered: the seat is kept, and the reason says why, as the error does.
    pub(crate) fn notice_failed(why: String) -> Self {
        SeatOutcome {
            note: Some(why.clone()),
            error: Some(why),
            ..Self::of(Outcome::NoticeFailed)
        }
    }
}

/// Why the brake ended a run's deallocations before all of them were tried.
#[derive(Debug, Clone)]
pub(crate) struct Stopped(pub(crate) String);

/// Run a policy once. The policy was checked before ([`crate::policy::validate`]); whatever happens now
/// (a site that cannot be reached included) is a report whose `result` says how it ended.
pub async fn execute(policy: &ValidPolicy, ctx: RunContext<'_>) -> RunReport {
    let mut connection = policy.connection.clone();
    if let Some(retry) = &ctx.retry {
        connection.retry = retry.clone();
    }
    let id = run_id(ctx.now);
    let dry_run = policy.dry_run || ctx.force_dry_run;
    // Every log line of the run, the deallocations' included, carries the run id.
    let span = tracing::info_span!("run", run = %id, dry_run);
    async {
        let client =
            match QrsClient::connect(&connection, ctx.credentials, ctx.observer.clone()).await {
                Ok(mut client) => {
                    if let Some(brake) = &ctx.brake {
                        client.obey(brake.clone());
                    }
                    client
                }
                Err(e) => {
                    let mut report = RunReport::failed(id, ctx.now, dry_run, e.to_string());
                    report.site = connection.route.site().to_string();
                    return report;
                }
            };
        let outcome = run_with_client(&client, policy, &ctx, id.clone(), dry_run).await;
        client.close().await;
        let mut report = match outcome {
            Ok(report) => report,
            Err(e) => RunReport::failed(id, ctx.now, dry_run, e.to_string()),
        };
        report.site = connection.route.site().to_string();
        report
    }
    .instrument(span)
    .await
}

/// The most a run's summary may take, every channel together: it is sent after the run's record is safe, and a
/// controller told to stop must be gone within its grace period (60 s in the chart) even if a webhook accepts the
/// connection and never answers.
pub const SUMMARY_DEADLINE: Duration = Duration::from_secs(20);

/// The administrators and webhooks hear of a run that reclaims, moves, warns, fails or aborts (a dry run only when it
/// fails or aborts: a dry run's findings are in its report), within `deadline`. Call it once the run's outcome is
/// kept (status, record, report printed): a channel that hangs must not hold the record back. Returns how each
/// delivery went; a channel the deadline cut off is a failed delivery.
pub async fn announce(
    notifier: &Notifier,
    report: &RunReport,
    deadline: Duration,
) -> Vec<Delivery> {
    let warned = report
        .decisions
        .iter()
        .any(|e| e.outcome == Outcome::Warned);
    let newsworthy = report.result != RunResult::Succeeded
        || (!report.dry_run && (report.totals.reclaimed > 0 || report.totals.moved > 0 || warned));
    if !newsworthy {
        return Vec::new();
    }
    let summary = crate::notify::summary_vars(notifier.policy(), report);
    let record = crate::record::RunRecord::of(report);
    let deadline = tokio::time::Instant::now() + deadline;
    let deliveries = notifier.summary(&summary, &record, deadline).await;
    for d in deliveries.iter().filter(|d| d.error.is_some()) {
        tracing::warn!(
            run = %report.id,
            channel = d.channel,
            error = d.error.as_deref().unwrap_or_default(),
            "the run's summary was not delivered"
        );
    }
    deliveries
}

async fn run_with_client(
    client: &QrsClient,
    policy: &ValidPolicy,
    ctx: &RunContext<'_>,
    id: String,
    dry_run: bool,
) -> Result<RunReport, QrsError> {
    let (now, rules) = (ctx.now, &policy.rules);
    let mut site = read_site(client, rules, now).await?;
    let returns = find_returns(client, &ctx.earlier_reclaims, &site.totals).await?;
    let remembered = remembered_moves(policy, &ctx.recent_moves, now);
    let moved: HashMap<UserIdentity, Timestamp> =
        remembered.iter().map(|m| (m.user.clone(), m.at)).collect();
    let plan = decide(client, rules, &mut site, &moved, now).await?;
    let mut outcomes = first_outcomes(&plan, dry_run);

    let (reclaims, noticed) =
        notice_first(client, policy, ctx, &plan, dry_run, &mut outcomes).await?;

    let (stopped, deletion_path) = if !dry_run && !plan.is_aborted() {
        let taking = Taking {
            client,
            plan: &plan,
            policy,
            brake: ctx.brake.as_ref(),
            now,
        };
        taking
            .take(&reclaims, remembered.len(), &mut outcomes)
            .await
    } else {
        (None, None)
    };
    let recent_moves = (!dry_run && !plan.is_aborted())
        .then(|| moves_to_remember(remembered, &plan, &outcomes, now));
    let (notices, deliveries) = match noticed {
        Some(given) if !dry_run => (
            Some(kept_notices(given.pending, &outcomes)),
            given.deliveries,
        ),
        _ => (None, Vec::new()),
    };

    let finished = Finished {
        id,
        start: ctx.now,
        dry_run,
        plan,
        outcomes,
        site,
        stopped,
    };
    let mut report = build_report(finished, rules);
    report.returns = returns;
    report.notices = notices;
    report.deliveries = deliveries;
    report.recent_moves = recent_moves;
    report.deletions = deletion_path;
    Ok(report)
}

/// The plan's reclaims that may go now: with notice (`spec.notice`), only seats warned long enough ago; the others
/// wait or are warned now, and what notice did comes back too.
async fn notice_first(
    client: &QrsClient,
    policy: &ValidPolicy,
    ctx: &RunContext<'_>,
    plan: &plan::Plan,
    dry_run: bool,
    outcomes: &mut [SeatOutcome],
) -> Result<(Vec<usize>, Option<notice::Noticed>), QrsError> {
    let reclaims: Vec<usize> = plan
        .decisions
        .iter()
        .enumerate()
        .filter(|(_, d)| d.verdict == Verdict::Reclaim)
        .map(|(i, _)| i)
        .collect();
    let Some(days) = policy.notice_days().filter(|_| !plan.is_aborted()) else {
        return Ok((reclaims, None));
    };
    let Some(notify) = &ctx.notify else {
        return Err(QrsError::Setup(
            "the policy gives notice (spec.notice.days) but its notification settings were not given".into(),
        ));
    };
    let run = NoticeContext {
        notify,
        days: days.get(),
        now: ctx.now,
        dry_run,
        brake: ctx.brake.as_ref(),
    };
    let given = give_notice(client, plan, &run, outcomes).await?;
    Ok((given.reclaims.clone(), Some(given)))
}

/// What taking the seats needs of the run.
struct Taking<'a> {
    client: &'a QrsClient,
    plan: &'a plan::Plan,
    policy: &'a ValidPolicy,
    brake: Option<&'a Brake>,
    now: Timestamp,
}

impl Taking<'_> {
    /// Deallocates the reclaims that are not moves, then makes the moves (as many as the policy can remember beside
    /// `remembered`): deallocations first, since an Analyzer seat they free (outside quarantine) is one a move can
    /// have. Why the brake cut it short, if it did, and which way seats were deleted.
    async fn take(
        &self,
        reclaims: &[usize],
        remembered: usize,
        outcomes: &mut [SeatOutcome],
    ) -> (Option<Stopped>, Option<crate::report::DeletionPath>) {
        let (moves, deletions): (Vec<usize>, Vec<usize>) = reclaims
            .iter()
            .partition(|&&i| is_move(&self.plan.decisions[i]));
        let how = deallocate::How {
            concurrency: self.policy.concurrency,
            bulk: self.policy.bulk,
            now: self.now,
        };
        let done = deallocate_all(
            self.client,
            self.plan,
            &deletions,
            how,
            self.brake,
            outcomes,
        )
        .await;
        if done.stopped.is_some() {
            return (done.stopped, done.path);
        }
        let moves = within_memory(self.plan, moves, remembered, outcomes);
        let concurrency = self.policy.concurrency;
        let stopped = move_all(
            self.client,
            self.plan,
            &moves,
            concurrency,
            self.brake,
            outcomes,
        )
        .await;
        (stopped, done.path)
    }
}

/// The most users moved to Analyzer a policy remembers: a run makes no move that would forget one.
pub const MAX_RECENT_MOVES: usize = crate::policy::MAX_RECLAIMS_PER_RUN as usize;

/// The moves to remember, from those the policy remembered: each for as long as it can keep an Analyzer seat from
/// the idle rule (the Analyzer threshold; right-sizing's window when Analyzer seats are not managed), the newest
/// move of a user only.
fn remembered_moves(
    policy: &ValidPolicy,
    earlier: &[RecentMove],
    now: Timestamp,
) -> Vec<RecentMove> {
    let days = policy
        .rules
        .inactive_days(AccessType::Analyzer)
        .or(policy.rules.right_size_after_days())
        .unwrap_or(0);
    let since = now
        .checked_sub(jiff::SignedDuration::from_hours(24 * i64::from(days)))
        .unwrap_or(Timestamp::MIN);
    let mut newest: HashMap<&UserIdentity, Timestamp> = HashMap::new();
    for m in earlier.iter().filter(|m| m.at > since) {
        let at = newest.entry(&m.user).or_insert(m.at);
        *at = (*at).max(m.at);
    }
    let mut kept: Vec<RecentMove> = newest
        .into_iter()
        .map(|(user, at)| RecentMove {
            user: user.clone(),
            at,
        })
        .collect();
    kept.sort_by_key(|m| std::cmp::Reverse(m.at));
    kept.truncate(MAX_RECENT_MOVES);
    kept
}

/// The moves this run may make: one per user, and no more than the policy can remember beside the `remembered`
/// ones. The others wait for a later run, saying why.
fn within_memory(
    plan: &plan::Plan,
    moves: Vec<usize>,
    remembered: usize,
    outcomes: &mut [SeatOutcome],
) -> Vec<usize> {
    let room = MAX_RECENT_MOVES.saturating_sub(remembered);
    let mut users = std::collections::HashSet::new();
    let mut kept = Vec::with_capacity(moves.len().min(room));
    for i in moves {
        let user = &plan.decisions[i].allocation.user;
        if !users.insert(user.clone()) {
            outcomes[i] = SeatOutcome::noted(
                Outcome::Kept,
                "not moved: another Professional seat of this user moves in this run".into(),
            );
        } else if kept.len() >= room {
            outcomes[i] = SeatOutcome::noted(
                Outcome::Deferred,
                format!("not moved: the policy remembers at most {MAX_RECENT_MOVES} recent moves"),
            );
        } else {
            kept.push(i);
        }
    }
    kept
}

/// The moves to remember after the run: the earlier ones, and the users this run moved.
fn moves_to_remember(
    mut remembered: Vec<RecentMove>,
    plan: &plan::Plan,
    outcomes: &[SeatOutcome],
    now: Timestamp,
) -> Vec<RecentMove> {
    for (decision, seat) in plan.decisions.iter().zip(outcomes) {
        if seat.outcome == Outcome::Moved {
            remembered.retain(|m| m.user != decision.allocation.user);
            remembered.push(RecentMove {
                user: decision.allocation.user.clone(),
                at: now,
            });
        }
    }
    remembered
}

/// Reads the user records the rules need and decides every allocation the run read. The plan takes the
/// allocations over from `site`, so a big site is not held in memory twice.
async fn decide(
    client: &QrsClient,
    rules: &plan::Rules,
    site: &mut read::SiteRead,
    moved: &HashMap<UserIdentity, Timestamp>,
    now: Timestamp,
) -> Result<plan::Plan, QrsError> {
    let user_ids = plan::users_needing_details(rules, &site.allocations, now);
    let users = if user_ids.is_empty() {
        Default::default()
    } else {
        client.users(&user_ids).await?
    };
    let authoring = read_authoring(client, rules, &site.allocations, now).await?;
    let allocations = std::mem::take(&mut site.allocations);
    let known = plan::Known {
        users: &users,
        authoring: &authoring,
        moved,
    };
    // The user records are dropped on return: on a large site they are tens of megabytes.
    Ok(plan::decide_owned(
        rules,
        allocations,
        &known,
        &site.totals,
        now,
    ))
}

/// What the users of seats right-sizing may move authored (`spec.rightSize`), judged: read about 115 owners a request,
/// and only when the policy moves seats.
async fn read_authoring(
    client: &QrsClient,
    rules: &plan::Rules,
    allocations: &[crate::model::Allocation],
    now: Timestamp,
) -> Result<HashMap<String, authoring::Evidence>, QrsError> {
    let Some(window_days) = rules.right_size_after_days() else {
        return Ok(HashMap::new());
    };
    let ids = plan::users_needing_authoring(rules, allocations, now);
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let owned = client.owned_by(&ids).await?;
    Ok(owned
        .into_iter()
        .map(|(user, objects)| (user, authoring::judge(&objects, now, window_days)))
        .collect())
}

/// Whether a decision moves (or, deferred by the cap, would move) a Professional seat to Analyzer rather than
/// taking it (`spec.rightSize`).
pub(crate) fn is_move(decision: &plan::Decision) -> bool {
    decision.reason.candidate_rule() == Some(crate::model::Rule::RightSize)
}

/// Each decision's outcome before notice and deallocation: what a dry run or an aborted run reports as it is.
fn first_outcomes(plan: &plan::Plan, dry_run: bool) -> Vec<SeatOutcome> {
    plan.decisions
        .iter()
        .map(|d| {
            SeatOutcome::of(match d.verdict {
                Verdict::Reclaim if plan.is_aborted() => Outcome::Deferred,
                Verdict::Reclaim if dry_run && is_move(d) => Outcome::WouldMove,
                Verdict::Reclaim if dry_run => Outcome::WouldReclaim,
                Verdict::Reclaim => Outcome::Deferred,
                Verdict::Deferred => Outcome::Deferred,
                Verdict::Keep => Outcome::Kept,
            })
        })
        .collect()
}

/// The notices to keep after the run: all of them but those of seats now gone.
fn kept_notices(pending: Vec<(usize, Notice)>, outcomes: &[SeatOutcome]) -> Vec<Notice> {
    pending
        .into_iter()
        .filter(|(i, _)| {
            let outcome = outcomes[*i].outcome;
            !outcome.counts_as_reclaimed() && outcome != Outcome::Moved
        })
        .map(|(_, notice)| notice)
        .take(crate::policy::MAX_RECLAIMS_PER_RUN as usize)
        .collect()
}
