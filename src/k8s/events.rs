//! The Events that tell a policy's story in `kubectl describe`: each run, and why one could not start.

use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource};

use super::FIELD_MANAGER;
use super::conditions::ConditionReason;
use crate::run::RunReport;

pub(crate) fn recorder(client: &Client) -> Recorder {
    Recorder::new(
        client.clone(),
        Reporter {
            controller: FIELD_MANAGER.into(),
            instance: std::env::var("POD_NAME").ok(),
        },
    )
}

/// Publish an Event on a policy or a run; a failure to do so is logged, never fatal.
pub(crate) async fn publish<K: Resource<DynamicType = ()>>(
    recorder: &Recorder,
    object: &K,
    reason: ConditionReason,
    note: String,
) {
    let event = Event {
        type_: if reason.is_warning() {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: reason.as_str().into(),
        // The Events API bounds the note to 1 kB.
        note: Some(truncate(&note, 1000)),
        action: if matches!(
            reason,
            ConditionReason::Restored | ConditionReason::RestoreFailed
        ) {
            "Restore".into()
        } else {
            "Reclaim".into()
        },
        secondary: None,
    };
    if let Err(e) = recorder.publish(&event, &object.object_ref(&())).await {
        tracing::warn!(error = %e, reason = reason.as_str(), "could not publish an Event");
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max.saturating_sub(3);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

/// The Event that tells one run's story: the counts, and who, for the first few seats.
pub(crate) fn run_event(report: &RunReport) -> (ConditionReason, String) {
    let per_type = report
        .per_access_type
        .iter()
        .map(|(t, c)| {
            format!(
                "{t}: {} of {} candidates, {} excluded",
                c.reclaimed, c.candidates, c.excluded
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    let mut who: Vec<String> = report
        .reclaimed()
        .take(10)
        .map(|e| {
            format!(
                "{} ({}, {})",
                e.user,
                e.access_type,
                e.last_used.get(..10).unwrap_or(&e.last_used)
            )
        })
        .collect();
    let total = report.reclaimed().count();
    if total > who.len() {
        who.push(format!("and {} more", total - who.len()));
    }
    let mut note = format!("{}. {per_type}.", report.message);
    if !who.is_empty() {
        note.push_str(if report.dry_run {
            " Would reclaim: "
        } else {
            " Reclaimed: "
        });
        note.push_str(&who.join(", "));
    }
    (ConditionReason::of_run(report.result, report.dry_run), note)
}
