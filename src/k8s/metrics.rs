//! Prometheus metrics (docs/metrics.md). The chart's dashboard and alerts use exactly these names.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::model::{AccessType, Rule};
use crate::notify::Delivery;
use crate::qrs::{FinishedRequest, RequestObserver};
use crate::run::RunReport;

/// Metric name prefix.
pub(crate) const PREFIX: &str = "qlik_reclaimer";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct PolicyLabels {
    pub namespace: String,
    pub policy: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RunLabels {
    pub namespace: String,
    pub policy: String,
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct TypeLabels {
    pub namespace: String,
    pub policy: String,
    pub access_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ReclaimLabels {
    pub namespace: String,
    pub policy: String,
    pub access_type: String,
    /// "true" or "false".
    pub dry_run: String,
    /// The rule that took the seats: "idle", "leaver" or "redundant".
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct MoveLabels {
    pub namespace: String,
    pub policy: String,
    /// The access type the seat moved from: "professional".
    pub from: String,
    /// The access type the user holds after the move: "analyzer".
    pub to: String,
}

fn move_labels(namespace: &str, policy: &str) -> MoveLabels {
    MoveLabels {
        namespace: namespace.into(),
        policy: policy.into(),
        from: AccessType::Professional.key().into(),
        to: AccessType::Analyzer.key().into(),
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct NotificationLabels {
    pub namespace: String,
    pub policy: String,
    /// "email" or "webhook".
    pub channel: String,
    /// "delivered" or "failed".
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct SeatLabels {
    pub namespace: String,
    pub policy: String,
    pub access_type: String,
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    pub namespace: String,
    pub policy: String,
    pub method: String,
    pub endpoint: String,
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestDurationLabels {
    pub namespace: String,
    pub policy: String,
    pub method: String,
    pub endpoint: String,
}

type F64Gauge = Gauge<f64, AtomicU64>;

/// Every metric the operator exports.
pub(crate) struct Metrics {
    registry: Registry,
    pub runs: Family<RunLabels, Counter>,
    pub reclaimed: Family<ReclaimLabels, Counter>,
    pub moved: Family<MoveLabels, Counter>,
    pub reclaim_failures: Family<TypeLabels, Counter>,
    pub returned: Family<TypeLabels, Counter>,
    pub notifications: Family<NotificationLabels, Counter>,
    pub pending: Family<TypeLabels, Gauge>,
    pub candidates: Family<TypeLabels, Gauge>,
    pub excluded: Family<TypeLabels, Gauge>,
    pub unknown: Family<TypeLabels, Gauge>,
    pub tls_unverified: Family<PolicyLabels, Gauge>,
    pub allocations: Family<TypeLabels, Gauge>,
    pub seats: Family<SeatLabels, Gauge>,
    pub run_duration: Family<PolicyLabels, Histogram>,
    pub last_success: Family<PolicyLabels, F64Gauge>,
    pub last_run: Family<PolicyLabels, F64Gauge>,
    pub next_run: Family<PolicyLabels, F64Gauge>,
    pub policy_ready: Family<PolicyLabels, Gauge>,
    pub dry_run: Family<PolicyLabels, Gauge>,
    pub qrs_requests: Family<RequestLabels, Counter>,
    pub qrs_request_duration: Family<RequestDurationLabels, Histogram>,
    /// Policies with series, so that those of a deleted policy can be dropped.
    known: std::sync::Mutex<std::collections::BTreeSet<(String, String)>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn type_labels(namespace: &str, policy: &str, t: AccessType) -> TypeLabels {
    TypeLabels {
        namespace: namespace.into(),
        policy: policy.into(),
        access_type: t.key().into(),
    }
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix(PREFIX);
        // Runs take seconds to minutes; requests to Qlik milliseconds to a minute.
        let run_buckets: fn() -> Histogram = || Histogram::new(exponential_buckets(0.5, 2.0, 12));
        let request_buckets: fn() -> Histogram =
            || Histogram::new(exponential_buckets(0.005, 2.0, 14));
        // Each metric: its field, its name (after the prefix), its help text and its family.
        macro_rules! metrics {
            ($($field:ident: $name:literal, $help:literal, $family:expr;)*) => {
                $(let $field = $family; registry.register($name, $help, $field.clone());)*
                Self { registry, known: Default::default(), $($field),* }
            };
        }
        metrics! {
            runs: "runs", "Policy runs by result (Succeeded, Failed, Aborted)", Family::default();
            reclaimed: "reclaimed", "Seats reclaimed; dry_run=\"true\" counts seats a dry run would have reclaimed", Family::default();
            moved: "moved", "Professional seats moved to Analyzer (spec.rightSize): the Analyzer seat held and the Professional seat deallocated; dry runs are not counted", Family::default();
            reclaim_failures: "reclaim_failures", "Deallocations that failed after retries", Family::default();
            notifications: "notifications", "Notices and run summaries sent, by channel (email, webhook) and result (delivered, failed)", Family::default();
            pending: "pending", "Notices given (spec.notice) whose seats wait for the end of their notice period", Family::default();
            returned: "returned", "Users an earlier recorded run reclaimed who hold that access type again (a threshold too tight, or a licence rule handing seats back)", Family::default();
            candidates: "candidates", "Inactive, in-scope, not excluded allocations found by the last run", Family::default();
            excluded: "excluded", "Inactive allocations kept by an exclusion or the scope in the last run", Family::default();
            unknown: "unknown", "Allocations kept in the last run because QRS sent a field a decision reads as missing, null or unreadable", Family::default();
            tls_unverified: "policy_tls_unverified", "1 when the policy runs without verifying Qlik's certificate (site.tls.insecureSkipVerify, allowed by the operator)", Family::default();
            allocations: "allocations", "Allocations on the site at the last run", Family::default();
            seats: "seats", "Seats by state (total, allocated, available, quarantined) from the access type overview", Family::default();
            run_duration: "run_duration_seconds", "Duration of policy runs", Family::new_with_constructor(run_buckets);
            last_success: "last_success_timestamp_seconds", "Unix time the policy last completed a run successfully", Family::default();
            last_run: "last_run_timestamp_seconds", "Unix time the policy's last run completed, whatever its result", Family::default();
            next_run: "next_run_timestamp_seconds", "Unix time of the policy's next scheduled run", Family::default();
            policy_ready: "policy_ready", "1 when the policy is valid and its last run did not fail, else 0", Family::default();
            dry_run: "policy_dry_run", "1 when the policy only reports", Family::default();
            qrs_requests: "qrs_requests", "Requests to Qlik by method, endpoint and HTTP status (code=\"error\" when no answer came)", Family::default();
            qrs_request_duration: "qrs_request_duration_seconds", "Duration of requests to Qlik", Family::new_with_constructor(request_buckets);
        }
    }

    /// Prometheus text exposition.
    pub(crate) fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    /// Notifications of a run (its notices, then its summary), each counted by channel and result.
    pub(crate) fn count_deliveries(&self, namespace: &str, policy: &str, deliveries: &[Delivery]) {
        for delivery in deliveries {
            let result = if delivery.error.is_some() {
                "failed"
            } else {
                "delivered"
            };
            self.notifications
                .get_or_create(&NotificationLabels {
                    namespace: namespace.into(),
                    policy: policy.into(),
                    channel: delivery.channel.into(),
                    result: result.into(),
                })
                .inc();
        }
    }

    /// Record a finished run of `namespace/policy`.
    pub(crate) fn record_run(
        &self,
        namespace: &str,
        policy: &str,
        report: &RunReport,
        duration_seconds: f64,
    ) {
        let p = PolicyLabels {
            namespace: namespace.into(),
            policy: policy.into(),
        };
        self.runs
            .get_or_create(&RunLabels {
                namespace: namespace.into(),
                policy: policy.into(),
                result: report.result.as_str().into(),
            })
            .inc();
        self.run_duration
            .get_or_create(&p)
            .observe(duration_seconds);
        let completed = report.completion_time.as_millisecond() as f64 / 1000.0;
        self.last_run.get_or_create(&p).set(completed);
        if report.result == crate::policy::RunResult::Succeeded {
            self.last_success.get_or_create(&p).set(completed);
        }
        self.record_counts(namespace, policy, report);
        self.count_deliveries(namespace, policy, &report.deliveries);
        if let Some(notices) = &report.notices {
            self.set_pending(namespace, policy, notices.iter().map(|n| n.access_type));
        }
        for returned in &report.returns {
            self.returned
                .get_or_create(&type_labels(namespace, policy, returned.access_type))
                .inc();
        }
        self.record_seats(namespace, policy, report);
    }

    /// A run's counts by access type: seats reclaimed by rule and failures (counters), and what it found (gauges).
    fn record_counts(&self, namespace: &str, policy: &str, report: &RunReport) {
        for (t, counts) in &report.per_access_type {
            let labels = type_labels(namespace, policy, *t);
            for rule in Rule::RECLAIMING {
                let seats = match rule {
                    Rule::Idle => counts.idle(),
                    Rule::Leaver => counts.leavers,
                    Rule::Redundant => counts.redundant,
                    // Not a reclaiming rule: a move gives its user a smaller seat.
                    Rule::RightSize => continue,
                };
                self.reclaimed
                    .get_or_create(&ReclaimLabels {
                        namespace: namespace.into(),
                        policy: policy.into(),
                        access_type: t.key().into(),
                        dry_run: report.dry_run.to_string(),
                        reason: rule.key().into(),
                    })
                    .inc_by(seats);
            }
            self.reclaim_failures
                .get_or_create(&labels)
                .inc_by(counts.failed);
            if *t == AccessType::Professional && !report.dry_run && counts.moved > 0 {
                self.moved
                    .get_or_create(&move_labels(namespace, policy))
                    .inc_by(counts.moved);
            }
            // A failed run knows nothing new about the site: keep the last known gauges.
            if report.result != crate::policy::RunResult::Failed || counts.allocated > 0 {
                self.candidates
                    .get_or_create(&labels)
                    .set(counts.candidates as i64);
                self.excluded
                    .get_or_create(&labels)
                    .set(counts.excluded as i64);
                self.unknown
                    .get_or_create(&labels)
                    .set(counts.unknown as i64);
                self.allocations
                    .get_or_create(&labels)
                    .set(counts.allocated as i64);
            }
        }
    }

    /// The site's seats by state, from the access type overview the run read.
    fn record_seats(&self, namespace: &str, policy: &str, report: &RunReport) {
        for (t, seats) in &report.seats {
            for (state, value) in [
                ("total", seats.total),
                ("allocated", seats.allocated),
                ("available", seats.available),
                ("quarantined", seats.quarantined),
                ("excess", seats.excess),
            ] {
                self.seats
                    .get_or_create(&SeatLabels {
                        namespace: namespace.into(),
                        policy: policy.into(),
                        access_type: t.key().into(),
                        state: state.into(),
                    })
                    .set(value as i64);
            }
        }
    }

    /// Create a policy's counters at zero when it is first seen, so that `increase()` sees its first run, and
    /// restore the run-time gauges from its status after a restart or a change of leader.
    pub(crate) fn register_policy(
        &self,
        namespace: &str,
        policy: &str,
        access_types: &[AccessType],
        dry_run: bool,
        last_success: Option<jiff::Timestamp>,
        last_run: Option<jiff::Timestamp>,
    ) {
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((namespace.to_string(), policy.to_string()));
        for result in ["Succeeded", "Failed", "Aborted"] {
            let _ = self.runs.get_or_create(&RunLabels {
                namespace: namespace.into(),
                policy: policy.into(),
                result: result.into(),
            });
        }
        for t in access_types {
            for rule in Rule::RECLAIMING {
                let _ = self.reclaimed.get_or_create(&ReclaimLabels {
                    namespace: namespace.into(),
                    policy: policy.into(),
                    access_type: t.key().into(),
                    dry_run: dry_run.to_string(),
                    reason: rule.key().into(),
                });
            }
            let labels = type_labels(namespace, policy, *t);
            if *t == AccessType::Professional {
                let _ = self.moved.get_or_create(&move_labels(namespace, policy));
            }
            let _ = self.reclaim_failures.get_or_create(&labels);
            let _ = self.returned.get_or_create(&labels);
            let _ = self.pending.get_or_create(&labels);
        }
        for channel in ["email", "webhook"] {
            for result in ["delivered", "failed"] {
                let _ = self.notifications.get_or_create(&NotificationLabels {
                    namespace: namespace.into(),
                    policy: policy.into(),
                    channel: channel.into(),
                    result: result.into(),
                });
            }
        }
        let p = PolicyLabels {
            namespace: namespace.into(),
            policy: policy.into(),
        };
        let seconds = |t: jiff::Timestamp| t.as_millisecond() as f64 / 1000.0;
        if let Some(t) = last_success {
            self.last_success.get_or_create(&p).set(seconds(t));
        }
        if let Some(t) = last_run {
            self.last_run.get_or_create(&p).set(seconds(t));
        }
    }

    /// The pending notices per access type (every type the policy had before is set, to zero when none is left).
    pub(crate) fn set_pending(
        &self,
        namespace: &str,
        policy: &str,
        access_types: impl Iterator<Item = AccessType>,
    ) {
        let mut counts: std::collections::BTreeMap<AccessType, i64> =
            std::collections::BTreeMap::new();
        for t in access_types {
            *counts.entry(t).or_default() += 1;
        }
        for t in [
            AccessType::Professional,
            AccessType::Analyzer,
            AccessType::User,
        ] {
            let labels = type_labels(namespace, policy, t);
            match counts.get(&t) {
                Some(&n) => {
                    self.pending.get_or_create(&labels).set(n);
                }
                None => {
                    if let Some(g) = self.pending.get(&labels) {
                        g.set(0);
                    }
                }
            }
        }
    }

    pub(crate) fn set_next_run(&self, namespace: &str, policy: &str, at: Option<jiff::Timestamp>) {
        let p = PolicyLabels {
            namespace: namespace.into(),
            policy: policy.into(),
        };
        match at {
            Some(at) => {
                self.next_run
                    .get_or_create(&p)
                    .set(at.as_millisecond() as f64 / 1000.0);
            }
            None => {
                self.next_run.remove(&p);
            }
        }
    }

    pub(crate) fn set_policy_state(
        &self,
        namespace: &str,
        policy: &str,
        ready: bool,
        dry_run: bool,
    ) {
        let p = PolicyLabels {
            namespace: namespace.into(),
            policy: policy.into(),
        };
        self.policy_ready.get_or_create(&p).set(i64::from(ready));
        self.dry_run.get_or_create(&p).set(i64::from(dry_run));
    }

    /// Whether the policy runs without verifying Qlik's certificate.
    pub(crate) fn set_tls_unverified(&self, namespace: &str, policy: &str, unverified: bool) {
        let p = PolicyLabels {
            namespace: namespace.into(),
            policy: policy.into(),
        };
        self.tls_unverified
            .get_or_create(&p)
            .set(i64::from(unverified));
    }

    /// Forget a deleted policy's gauges so dashboards do not show it forever. Counters stay until restart, as
    /// Prometheus expects of counters.
    pub(crate) fn forget_policy(&self, namespace: &str, policy: &str) {
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(namespace.to_string(), policy.to_string()));
        let p = PolicyLabels {
            namespace: namespace.into(),
            policy: policy.into(),
        };
        self.next_run.remove(&p);
        self.policy_ready.remove(&p);
        self.dry_run.remove(&p);
        self.tls_unverified.remove(&p);
        for t in AccessType::ALL {
            let labels = type_labels(namespace, policy, t);
            self.candidates.remove(&labels);
            self.excluded.remove(&labels);
            self.unknown.remove(&labels);
            self.allocations.remove(&labels);
            self.pending.remove(&labels);
            for state in ["total", "allocated", "available", "quarantined", "excess"] {
                self.seats.remove(&SeatLabels {
                    namespace: namespace.into(),
                    policy: policy.into(),
                    access_type: t.key().into(),
                    state: state.into(),
                });
            }
        }
    }

    /// Forget every policy for which `exists` says no: a deleted policy's gauges must not linger (a
    /// `policy_ready` of 0 would keep an alert firing for a policy that is gone).
    pub(crate) fn retain_policies(&self, exists: impl Fn(&str, &str) -> bool) {
        let gone: Vec<(String, String)> = self
            .known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(ns, name)| !exists(ns, name))
            .cloned()
            .collect();
        for (ns, name) in gone {
            self.forget_policy(&ns, &name);
        }
    }

    /// An observer that counts one policy's requests to Qlik.
    pub(crate) fn qrs_observer(
        self: &Arc<Self>,
        namespace: &str,
        policy: &str,
    ) -> Arc<dyn RequestObserver> {
        Arc::new(PolicyRequestObserver {
            metrics: self.clone(),
            namespace: namespace.into(),
            policy: policy.into(),
        })
    }
}

struct PolicyRequestObserver {
    metrics: Arc<Metrics>,
    namespace: String,
    policy: String,
}

impl RequestObserver for PolicyRequestObserver {
    fn observe(&self, request: &FinishedRequest) {
        self.metrics
            .qrs_requests
            .get_or_create(&RequestLabels {
                namespace: self.namespace.clone(),
                policy: self.policy.clone(),
                method: request.method.to_string(),
                endpoint: request.endpoint.clone(),
                code: request
                    .status
                    .map_or_else(|| "error".to_string(), |s| s.to_string()),
            })
            .inc();
        self.metrics
            .qrs_request_duration
            .get_or_create(&RequestDurationLabels {
                namespace: self.namespace.clone(),
                policy: self.policy.clone(),
                method: request.method.to_string(),
                endpoint: request.endpoint.clone(),
            })
            .observe(request.duration.as_secs_f64());
    }
}

#[cfg(test)]
mod tests;
