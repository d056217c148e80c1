//! A finished run told as a report: each decision with its outcome, counts by access type, and the sentence that
//! says how the run ended.

use std::collections::BTreeMap;

use jiff::Timestamp;

use super::read::SiteRead;
use super::{Outcome, SeatOutcome, Stopped};
use crate::model::{AccessType, LastUse};
use crate::plan::{Decision, Plan, Reason, Rules, Verdict};
use crate::policy::{RunResult, TypeCounts};
use crate::report::{Entry, RunReport};

/// A run's decisions and what became of them, before they are told as a report.
pub(super) struct Finished {
    pub(super) id: String,
    pub(super) start: Timestamp,
    pub(super) dry_run: bool,
    pub(super) plan: Plan,
    pub(super) outcomes: Vec<SeatOutcome>,
    pub(super) site: SiteRead,
    pub(super) stopped: Option<Stopped>,
}

pub(super) fn build_report(run: Finished, rules: &Rules) -> RunReport {
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
            stopped.as_ref().map_or("shutdown", |s| s.0.as_str())
        )
    };
    let verdict_of_breaker = plan
        .breaker
        .as_ref()
        .map(|trip| format!("aborted before any deallocation: {trip}"));
    let mut decisions = Vec::with_capacity(plan.decisions.len());
    // The plan's allocations move into the report, so that a large site is not held twice.
    for (decision, seat) in plan.decisions.into_iter().zip(outcomes) {
        let outcome = seat.outcome;
        count(
            per_type.entry(decision.allocation.access_type).or_default(),
            &decision,
            outcome,
        );
        decisions.push(entry(decision, seat, start, &why_deferred));
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
        totals.moved += c.moved;
    }
    let (result, message) = verdict(verdict_of_breaker, &stopped, &totals, dry_run);
    // The site is set by `execute`, which knows the connection; returns, notices and deliveries by the run.
    RunReport {
        totals,
        per_access_type: per_type,
        seats: site.seats,
        decisions,
        ..RunReport::new(id, start, Timestamp::now(), dry_run, result, message)
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
    if matches!(
        outcome,
        Outcome::Failed | Outcome::MoveUnfinished | Outcome::Unconfirmed
    ) {
        counts.failed += 1;
    }
    if outcome == Outcome::UsedSinceRead {
        counts.used_since_read += 1;
    }
    if matches!(outcome, Outcome::WouldMove | Outcome::Moved) {
        counts.moved += 1;
    }
    if matches!(
        decision.reason,
        Reason::UnknownDate { .. } | Reason::NoCreatedDate | Reason::Incomplete { .. }
    ) {
        counts.unknown += 1;
    }
}

/// One decision as the report lists it.
fn entry(decision: Decision, seat: SeatOutcome, start: Timestamp, why_deferred: &str) -> Entry {
    let SeatOutcome {
        outcome,
        note,
        error,
        added,
    } = seat;
    let a = decision.allocation;
    let (last_used, idle_since) = match &a.last_used {
        LastUse::At(t) => (crate::qrs::wire::format_qrs_date(*t), Some(*t)),
        LastUse::Never => ("never".to_string(), a.created),
        LastUse::Unknown(raw) if raw.is_empty() => ("unknown".to_string(), None),
        LastUse::Unknown(raw) => (raw.clone(), None),
    };
    let reason = if outcome == Outcome::Deferred && decision.verdict == Verdict::Reclaim {
        let not = if decision.reason.candidate_rule() == Some(crate::model::Rule::RightSize) {
            "not moved"
        } else {
            "not deallocated"
        };
        format!("{}; {not}: {why_deferred}", decision.reason)
    } else if let Some(note) = &note {
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
        user_qrs_id: a.user_id,
        last_used,
        idle_days: idle_since.map(|t| (start.as_second() - t.as_second()).div_euclid(86_400)),
        outcome,
        reason_code: decision.reason.code(),
        rule: decision.reason.rule(),
        reason,
        error,
        analyzer_added: added.is_some(),
        analyzer_allocation_id: added.and_then(|a| a.id),
    }
}

/// The run's result and the sentence that says it.
fn verdict(
    aborted: Option<String>,
    stopped: &Option<Stopped>,
    totals: &TypeCounts,
    dry_run: bool,
) -> (RunResult, String) {
    if let Some(message) = aborted {
        return (RunResult::Aborted, message);
    }
    if let Some(Stopped(why)) = stopped {
        // Why it stopped comes first: it is what an administrator acts on (a changed policy, a shutdown).
        let failed = if totals.failed > 0 {
            format!(" ({} deallocations failed)", totals.failed)
        } else {
            String::new()
        };
        let moved = if totals.moved > 0 {
            format!(" and moving {} to Analyzer", totals.moved)
        } else {
            String::new()
        };
        let message = format!(
            "stopped ({why}) after reclaiming {} seats{moved}{failed}; no further seat was deallocated",
            totals.reclaimed
        );
        return (RunResult::Failed, message);
    }
    if totals.failed > 0 {
        let attempted = totals.failed + totals.reclaimed + totals.moved;
        let message = if totals.moved > 0 {
            format!(
                "{} of {attempted} deallocations and moves to Analyzer failed; the others were made",
                totals.failed
            )
        } else {
            format!(
                "{} of {attempted} deallocations failed; the others were reclaimed",
                totals.failed
            )
        };
        return (RunResult::Failed, message);
    }
    let message = if dry_run && totals.moved > 0 {
        let seats = if totals.moved == 1 { "seat" } else { "seats" };
        format!(
            "dry run: {} of {} candidate seats would be reclaimed and {} Professional {seats} would move to \
             Analyzer; nothing was deallocated",
            totals.reclaimed,
            totals.candidates.saturating_sub(totals.moved),
            totals.moved
        )
    } else if dry_run {
        format!(
            "dry run: {} of {} candidate seats would be reclaimed; nothing was deallocated",
            totals.reclaimed, totals.candidates
        )
    } else if totals.moved > 0 {
        let seats = if totals.moved == 1 { "seat" } else { "seats" };
        format!(
            "reclaimed {} of {} candidate seats and moved {} Professional {seats} to Analyzer",
            totals.reclaimed,
            totals.candidates.saturating_sub(totals.moved),
            totals.moved
        )
    } else {
        format!(
            "reclaimed {} of {} candidate seats",
            totals.reclaimed, totals.candidates
        )
    };
    (RunResult::Succeeded, message)
}
