//! Whether a run is due: the policy's schedule, its starting deadline, `suspend` and the run-now annotation. Pure,
//! so that the controller and `run --policy-ref --if-due` follow one rule and it is tested without a cluster.

use jiff::Timestamp;
use kube::ResourceExt;

use crate::policy::{LicenseCleanupPolicy, RUN_NOW_ANNOTATION};
use crate::schedule::Schedule;

/// What should happen now for one policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Due {
    /// Run now, answering this scheduled instant (or, for run-now, the current time) and annotation value.
    Run {
        scheduled_for: Timestamp,
        run_now: Option<String>,
    },
    /// A scheduled run was missed by more than the starting deadline: skip it.
    SkipMissed { scheduled_for: Timestamp },
    /// Nothing to do until the next instant (or a change).
    Wait,
}

/// What the policy's own schedule, suspend and run-now annotation ask for at `now`: the rule the controller
/// follows, and `run --policy-ref --if-due` too (a CronJob that looks often, so that the policy stays the source
/// of truth for when it runs).
pub(crate) fn due(policy: &LicenseCleanupPolicy, schedule: &Schedule, now: Timestamp) -> Due {
    let status = policy.status.clone().unwrap_or_default();
    let reference = status
        .last_schedule_time
        .as_ref()
        .map(|t| t.0)
        .or_else(|| policy.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .unwrap_or(now);
    let annotation = policy
        .annotations()
        .get(RUN_NOW_ANNOTATION)
        .map(String::as_str);
    decide_run(
        schedule,
        now,
        reference,
        policy.spec.starting_deadline_seconds,
        policy.spec.suspend,
        annotation,
        status.last_run_now.as_deref(),
    )
}

/// The scheduling rule, pure so it can be tested without a cluster.
/// `reference` is the last scheduled instant that was acted on (or the policy's creation).
pub(crate) fn decide_run(
    schedule: &Schedule,
    now: Timestamp,
    reference: Timestamp,
    starting_deadline_seconds: i64,
    suspend: bool,
    run_now_annotation: Option<&str>,
    last_run_now: Option<&str>,
) -> Due {
    if suspend {
        return Due::Wait;
    }
    if let Some(value) = run_now_annotation.filter(|v| !v.is_empty() && Some(*v) != last_run_now) {
        return Due::Run {
            scheduled_for: now,
            run_now: Some(value.to_string()),
        };
    }
    // Only the most recent missed instant counts: never a backlog.
    match schedule.previous_at_or_before(now) {
        Some(latest) if latest > reference => {
            let late = now.as_second() - latest.as_second();
            if late <= starting_deadline_seconds.max(0) {
                Due::Run {
                    scheduled_for: latest,
                    run_now: None,
                }
            } else {
                Due::SkipMissed {
                    scheduled_for: latest,
                }
            }
        }
        _ => Due::Wait,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::ts;

    /// Every day at 03:00 UTC.
    fn daily_at_three() -> Schedule {
        Schedule::parse("0 3 * * *", "UTC").expect("a valid schedule")
    }

    #[test]
    fn a_due_instant_runs_and_a_late_one_is_skipped() {
        let s = daily_at_three();
        let created = ts("2026-11-20T12:00:00Z");
        // 03:00 passed 10 minutes ago: within the hour's deadline.
        let now = ts("2026-11-21T03:10:00Z");
        assert_eq!(
            decide_run(&s, now, created, 3600, false, None, None),
            Due::Run {
                scheduled_for: ts("2026-11-21T03:00:00Z"),
                run_now: None
            }
        );
        // Three days of downtime: only the most recent instant is considered, and it is too late.
        let now = ts("2026-11-23T05:00:00Z");
        assert_eq!(
            decide_run(&s, now, created, 3600, false, None, None),
            Due::SkipMissed {
                scheduled_for: ts("2026-11-23T03:00:00Z")
            }
        );
        // Already answered: wait.
        assert_eq!(
            decide_run(&s, now, ts("2026-11-23T03:00:00Z"), 3600, false, None, None),
            Due::Wait
        );
    }

    #[test]
    fn run_now_runs_once_per_value_and_suspend_wins() {
        let s = daily_at_three();
        let now = ts("2026-11-21T12:00:00Z");
        let reference = ts("2026-11-21T03:00:00Z");
        assert!(matches!(
            decide_run(&s, now, reference, 3600, false, Some("1"), None),
            Due::Run { run_now: Some(v), .. } if v == "1"
        ));
        assert_eq!(
            decide_run(&s, now, reference, 3600, false, Some("1"), Some("1")),
            Due::Wait
        );
        assert_eq!(
            decide_run(&s, now, reference, 3600, true, Some("2"), Some("1")),
            Due::Wait
        );
    }
}
