//! One run of a policy: read the site, decide, deallocate (unless dry run), and say what happened.
//!
//! The CLI's `run`, `demo`, the controller and `run --policy-ref` all call [`execute`]; what it returns is a
//! [`RunReport`](crate::report::RunReport), which the callers keep, then [`announce`].

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use tracing::Instrument;

use crate::brake::{Brake, BrakeState};
use crate::credentials::Credentials;
use crate::model::{AccessType, Allocation, LastUse, UserIdentity};
use crate::notice::Pending;
use crate::notify::Notifier;
use crate::plan::{self, Decision, Plan, Reason, Rules, Verdict};
use crate::policy::{RunResult, TypeCounts, ValidPolicy};
use crate::qrs::{Deallocation, QrsClient, QrsError, RequestObserver, RetryPolicy};
use crate::report::run_id;
pub use crate::report::{Delivery, Entry, Outcome, Returned, RunReport, by_access_type_key};
use notice::{NoticeRun, give_notice};
use read::{SiteRead, find_returns, read_site};

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
    /// Notices and notifications (`spec.notice`, `spec.notify`): the channels, and the notices pending from earlier
    /// runs. Needed when the policy gives notice.
    pub notify: Option<NotifyContext<'a>>,
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

/// Why a run must start no more deallocations; `None` while it may go on.
pub type StopReason = Option<String>;

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

/// The administrators and webhooks hear of a run that reclaims, warns, fails or aborts (a dry run only when it
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
        || (!report.dry_run && (report.totals.reclaimed > 0 || warned));
    if !newsworthy {
        return Vec::new();
    }
    let summary = crate::notify::summary_context(notifier.policy(), report);
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
    let user_ids = plan::users_needing_details(rules, &site.allocations, now);
    let users = if user_ids.is_empty() {
        Default::default()
    } else {
        client.users(&user_ids).await?
    };
    // The plan takes the allocations over: a big site is not held in memory twice.
    let allocations = std::mem::take(&mut site.allocations);
    let plan = plan::decide_owned(rules, allocations, &users, &site.totals, now);
    // User records are needed for the decisions only; on a large site they are tens of megabytes.
    drop(users);

    let mut outcomes: Vec<(Outcome, Option<String>)> = plan
        .decisions
        .iter()
        .map(|d| match d.verdict {
            Verdict::Reclaim if plan.is_aborted() => (Outcome::Deferred, None),
            Verdict::Reclaim if dry_run => (Outcome::WouldReclaim, None),
            Verdict::Reclaim => (Outcome::Deferred, None),
            Verdict::Deferred => (Outcome::Deferred, None),
            Verdict::Keep => (Outcome::Kept, None),
        })
        .collect();

    // With notice, only seats warned long enough ago go; the others wait or are warned now.
    let mut reclaims: Vec<usize> = plan
        .decisions
        .iter()
        .enumerate()
        .filter(|(_, d)| d.verdict == Verdict::Reclaim)
        .map(|(i, _)| i)
        .collect();
    let mut noticed = None;
    if policy.notice_days > 0 && !plan.is_aborted() {
        let Some(notify) = &ctx.notify else {
            return Err(QrsError::Setup(
                "the policy gives notice (spec.notice.days) but its notification settings were not given".into(),
            ));
        };
        let run = NoticeRun {
            notify,
            days: policy.notice_days,
            now,
            dry_run,
            brake: ctx.brake.as_ref(),
        };
        let given = give_notice(client, &plan, &run, &mut outcomes).await?;
        reclaims = given.reclaims.clone();
        noticed = Some(given);
    }

    let mut stopped = None;
    if !dry_run && !plan.is_aborted() {
        stopped = deallocate_all(
            client,
            &plan,
            &reclaims,
            policy.concurrency,
            ctx.brake.as_ref(),
            &mut outcomes,
        )
        .await;
    }
    // The notices to keep: all of them but those of seats now gone.
    let (notices, deliveries) = match noticed {
        Some(given) if !dry_run => (
            Some(
                given
                    .pending
                    .into_iter()
                    .filter(|(i, _)| !outcomes[*i].0.counts_as_reclaimed())
                    .map(|(_, notice)| notice)
                    .take(crate::policy::MAX_RECLAIMS_PER_RUN as usize)
                    .collect(),
            ),
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
    Ok(report)
}

/// Deallocations re-checked with one request: the size of a QRS `id eq ... or ...` filter that stays well under
/// URL length limits.
const RECHECK_BATCH: usize = crate::qrs::USER_BATCH;

/// Deallocate the plan's reclaims with bounded concurrency, longest idle first, in batches of one access type.
/// Just before each batch, its seats are read again (one request for up to [`RECHECK_BATCH`]): a seat used since
/// the run read the site (its `lastUsed` moved) is kept. The brake is looked at as each DELETE is about to start:
/// once pulled, only the DELETEs in flight finish (at most `concurrency`); paused, the batch ends there and the
/// rest of it waits, to be read again once the brake is released (what was read before the pause may be stale).
/// Returns why the brake cut the run short, if it did.
async fn deallocate_all(
    client: &QrsClient,
    plan: &Plan,
    reclaims: &[usize],
    concurrency: u32,
    brake: Option<&Brake>,
    outcomes: &mut [(Outcome, Option<String>)],
) -> StopReason {
    let released = Brake::released();
    let brake = brake.unwrap_or(&released);
    let mut batches: VecDeque<Vec<usize>> = batches_by_type(plan, reclaims).into();
    while let Some(batch) = batches.pop_front() {
        if let Err(reason) = brake.proceed().await {
            return Some(reason);
        }
        let to_delete = recheck(client, plan, &batch, brake, outcomes).await;
        // What the brake said when it ended the batch early, if it did.
        let mut held = None;
        let results: Vec<(usize, Result<Deallocation, QrsError>)> =
            futures::stream::iter(to_delete.iter().copied())
                // Checked as each deallocation is about to start, so a stop lets the ones in flight finish and
                // starts no other.
                .take_while(|_| {
                    let state = brake.current();
                    let go = state == BrakeState::Released;
                    if !go && held.is_none() {
                        held = Some(state);
                    }
                    futures::future::ready(go)
                })
                .map(|i| {
                    let allocation = &plan.decisions[i].allocation;
                    async move {
                        (
                            i,
                            client
                                .deallocate(allocation.access_type, &allocation.id)
                                .await,
                        )
                    }
                })
                .buffer_unordered(concurrency.clamp(1, 32) as usize)
                .collect()
                .await;
        let started: HashSet<usize> = results.iter().map(|(i, _)| *i).collect();
        for (i, result) in results {
            outcomes[i] = deallocation_outcome(&plan.decisions[i].allocation, result);
        }
        match held {
            Some(BrakeState::Stopped(reason)) => return Some(reason),
            Some(BrakeState::Paused(_)) => {
                let rest: Vec<usize> = to_delete
                    .into_iter()
                    .filter(|i| !started.contains(i))
                    .collect();
                if !rest.is_empty() {
                    batches.push_front(rest);
                }
            }
            Some(BrakeState::Released) | None => {}
        }
    }
    None
}

/// Reads a batch of one access type again, with one request, just before deleting it. Returns the seats still
/// to delete; the others get their outcome: gone already, used since the run read the site, or not readable.
async fn recheck(
    client: &QrsClient,
    plan: &Plan,
    batch: &[usize],
    brake: &Brake,
    outcomes: &mut [(Outcome, Option<String>)],
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
                outcomes[i] = (Outcome::Failed, Some(why.clone()));
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
        match fresh.get(&read.id.to_ascii_lowercase()) {
            None => {
                // Gone since the read: someone (or something) deallocated it; nothing to delete.
                tracing::info!(user = %read.user, access_type = %read.access_type, allocation = %read.id, "already deallocated");
                outcomes[i] = (Outcome::AlreadyGone, None);
            }
            Some(now) if unchanged(read, now) => to_delete.push(i),
            Some(_) => {
                tracing::info!(user = %read.user, access_type = %read.access_type, allocation = %read.id, "used since the run read the site; kept");
                outcomes[i] = (Outcome::UsedSinceRead, None);
            }
        }
    }
    to_delete
}

/// What one DELETE did, logged.
fn deallocation_outcome(
    allocation: &Allocation,
    result: Result<Deallocation, QrsError>,
) -> (Outcome, Option<String>) {
    let (user, access_type, id) = (&allocation.user, allocation.access_type, &allocation.id);
    match result {
        Ok(Deallocation::Done) => {
            tracing::info!(user = %user, access_type = %access_type, allocation = %id, "deallocated");
            (Outcome::Reclaimed, None)
        }
        Ok(Deallocation::AlreadyGone) => {
            tracing::info!(user = %user, access_type = %access_type, allocation = %id, "already deallocated");
            (Outcome::AlreadyGone, None)
        }
        Err(e) => {
            tracing::warn!(user = %user, access_type = %access_type, allocation = %id, error = %e, "deallocation failed");
            (Outcome::Failed, Some(e.to_string()))
        }
    }
}

/// Whether a seat read again is the seat the plan decided on: same holder, same last use and creation, not
/// quarantined meanwhile, nothing unknown.
fn unchanged(read: &Allocation, now: &Allocation) -> bool {
    now.last_used == read.last_used
        && now.created == read.created
        && !now.quarantined
        && now.incomplete.is_none()
        && now.user == read.user
}

/// The reclaims (plan indexes, in reclaim order) cut into batches of one access type and at most
/// [`RECHECK_BATCH`], ordered by their first (longest idle) seat.
fn batches_by_type(plan: &Plan, reclaims: &[usize]) -> Vec<Vec<usize>> {
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

/// A run's decisions and what became of them, before they are told as a report.
struct Finished {
    id: String,
    start: Timestamp,
    dry_run: bool,
    plan: Plan,
    outcomes: Vec<(Outcome, Option<String>)>,
    site: SiteRead,
    stopped: StopReason,
}

fn build_report(run: Finished, rules: &Rules) -> RunReport {
    let Finished {
        id,
        start,
        dry_run,
        plan,
        outcomes,
        site,
        stopped,
    } = run;
    let mut per_type: BTreeMap<AccessType, TypeCounts> = BTreeMap::new();
    for access_type in rules.access_types() {
        let counts = per_type.entry(access_type).or_default();
        counts.allocated = site.totals.get(&access_type).copied().unwrap_or_default();
        if let Some(pc) = plan.per_type.get(&access_type) {
            counts.candidates = pc.candidates;
            counts.excluded = pc.excluded;
        }
    }
    let why_deferred = if plan.is_aborted() {
        "the run was aborted by the breaker".to_string()
    } else {
        format!(
            "the run was stopped ({})",
            stopped.as_deref().unwrap_or("shutdown")
        )
    };
    let verdict_of_breaker = plan
        .breaker
        .as_ref()
        .map(|trip| format!("aborted before any deallocation: {trip}"));
    let mut decisions = Vec::with_capacity(plan.decisions.len());
    // The plan's allocations move into the report, so that a large site is not held twice.
    for (decision, (outcome, error)) in plan.decisions.into_iter().zip(outcomes) {
        count(
            per_type.entry(decision.allocation.access_type).or_default(),
            &decision,
            outcome,
        );
        decisions.push(entry(decision, outcome, error, start, &why_deferred));
    }
    let mut totals = TypeCounts::default();
    for c in per_type.values() {
        totals.allocated += c.allocated;
        totals.candidates += c.candidates;
        totals.reclaimed += c.reclaimed;
        totals.failed += c.failed;
        totals.excluded += c.excluded;
        totals.unknown += c.unknown;
        totals.used_since_read += c.used_since_read;
        totals.leavers += c.leavers;
        totals.redundant += c.redundant;
    }
    let (result, message) = verdict(verdict_of_breaker, &stopped, &totals, dry_run);
    RunReport {
        id,
        // Set by `execute`, which knows the connection.
        site: String::new(),
        start_time: start,
        completion_time: Timestamp::now(),
        dry_run,
        result,
        message,
        totals,
        per_access_type: per_type,
        seats: site.seats,
        decisions,
        returns: Vec::new(),
        notices: None,
        deliveries: Vec::new(),
    }
}

/// Adds one decision and its outcome to its access type's counts.
fn count(counts: &mut TypeCounts, decision: &Decision, outcome: Outcome) {
    if outcome.counts_as_reclaimed() {
        counts.reclaimed += 1;
        match decision.reason {
            Reason::Leaver { .. } => counts.leavers += 1,
            Reason::Redundant => counts.redundant += 1,
            _ => {}
        }
    }
    if outcome == Outcome::Failed {
        counts.failed += 1;
    }
    if outcome == Outcome::UsedSinceRead {
        counts.used_since_read += 1;
    }
    if matches!(
        decision.reason,
        Reason::UnknownDate { .. } | Reason::NoCreatedDate | Reason::Incomplete { .. }
    ) {
        counts.unknown += 1;
    }
}

/// One decision as the report lists it.
fn entry(
    decision: Decision,
    outcome: Outcome,
    error: Option<String>,
    start: Timestamp,
    why_deferred: &str,
) -> Entry {
    let a = decision.allocation;
    let (last_used, idle_since) = match &a.last_used {
        LastUse::At(t) => (crate::qrs::wire::format_qrs_date(*t), Some(*t)),
        LastUse::Never => ("never".to_string(), a.created),
        LastUse::Unknown(raw) if raw.is_empty() => ("unknown".to_string(), None),
        LastUse::Unknown(raw) => (raw.clone(), None),
    };
    let reason = if outcome == Outcome::Deferred && decision.verdict == Verdict::Reclaim {
        format!("{}; not deallocated: {why_deferred}", decision.reason)
    } else if let (true, Some(note)) = (outcome.is_notice(), &error) {
        format!("{}; {note}", decision.reason)
    } else if outcome == Outcome::UsedSinceRead {
        format!(
            "{}; not deallocated: read again just before, the seat had been used since the run read the site",
            decision.reason
        )
    } else {
        decision.reason.to_string()
    };
    Entry {
        user: a.user.to_string(),
        user_name: a.user_name,
        access_type: a.access_type,
        allocation_id: a.id,
        last_used,
        idle_days: idle_since.map(|t| (start.as_second() - t.as_second()).div_euclid(86_400)),
        outcome,
        reason_code: decision.reason.code(),
        reason,
        // A notice's note is in the reason; only a notice that failed has an error.
        error: error.filter(|_| !outcome.is_notice() || outcome == Outcome::NoticeFailed),
    }
}

/// The run's result and the sentence that says it.
fn verdict(
    aborted: Option<String>,
    stopped: &StopReason,
    totals: &TypeCounts,
    dry_run: bool,
) -> (RunResult, String) {
    if let Some(message) = aborted {
        return (RunResult::Aborted, message);
    }
    if let Some(why) = stopped {
        // Why it stopped comes first: it is what an administrator acts on (a changed policy, a shutdown).
        let failed = if totals.failed > 0 {
            format!(" ({} deallocations failed)", totals.failed)
        } else {
            String::new()
        };
        let message = format!(
            "stopped ({why}) after reclaiming {} seats{failed}; no further seat was deallocated",
            totals.reclaimed
        );
        return (RunResult::Failed, message);
    }
    if totals.failed > 0 {
        let attempted = totals.failed + totals.reclaimed;
        let message = format!(
            "{} of {attempted} deallocations failed; the others were reclaimed",
            totals.failed
        );
        return (RunResult::Failed, message);
    }
    let message = if dry_run {
        format!(
            "dry run: {} of {} candidate seats would be reclaimed; nothing was deallocated",
            totals.reclaimed, totals.candidates
        )
    } else {
        format!(
            "reclaimed {} of {} candidate seats",
            totals.reclaimed, totals.candidates
        )
    };
    (RunResult::Succeeded, message)
}
