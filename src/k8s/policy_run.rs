//! One run of a policy from the cluster, shared by the controller and `run --policy-ref`: take the policy's hold
//! (`hold.rs`), read what it needs (`inputs.rs`), run, and write status, Events, the record and metrics, then
//! send the summary.

use std::sync::Arc;
use std::time::Instant;

use kube::runtime::events::Recorder;
use kube::{Api, Client};

use super::conditions::{ConditionReason, ConditionUpdate, merge_conditions};
use super::events::{publish, run_event};
pub(crate) use super::hold::Trigger;
use super::hold::{Held, StopWatch, release_hold, take_hold, watch_for_stop};
use super::inputs::{StartError, load_credentials, load_notifier, validate_resource};
use super::metrics::Metrics;
use super::records::{PolicyRecords, earlier_reclaims, too_many_returns};
use super::status::{self, time, update_status};
use crate::brake::Brake;
use crate::credentials::Credentials;
use crate::notice::Pending;
use crate::notify::Delivery;
use crate::policy::{LicenseCleanupPolicy, RunResult};
use crate::policy::{Permissions, ValidPolicy};
use crate::record::{RunRecord, runs_selector};
use crate::run::{self, EarlierReclaim, NotifyContext, RunContext, RunReport};
use crate::schedule::Schedule;
use crate::shutdown::Shutdown;

/// What a policy run needs from its caller.
pub(crate) struct PolicyRunContext<'a> {
    pub client: &'a Client,
    pub recorder: &'a Recorder,
    pub metrics: Option<&'a Arc<Metrics>>,
    pub force_dry_run: bool,
    pub shutdown: Option<Shutdown>,
    pub trigger: Trigger,
    pub permissions: Permissions,
}

/// How a policy run ended.
pub(crate) enum PolicyRunOutcome {
    /// The run happened; its report.
    Ran(Box<RunReport>),
    /// Someone already answered this trigger; nothing was done.
    AlreadyAnswered,
    /// The policy is suspended (`spec.suspend`); nothing was done.
    Suspended,
    /// Another run holds the policy; nothing was done.
    Busy { holder: String },
}

/// Run one policy from the cluster: take its hold, read its Secret, run, write status, Events and metrics.
/// Why a run could not start is written to the status and returned.
pub(crate) async fn run_policy(
    namespace: &str,
    name: &str,
    ctx: PolicyRunContext<'_>,
) -> Result<PolicyRunOutcome, StartError> {
    let api: Api<LicenseCleanupPolicy> = Api::namespaced(ctx.client.clone(), namespace);
    let hold_id = uuid::Uuid::new_v4().simple().to_string();
    // Taken no later than the hold's `renewTime`: the hold's safety margin counts from here.
    let held_since = tokio::time::Instant::now();
    let policy = match take_hold(&api, name, &ctx.trigger, &hold_id).await {
        Ok(Held::Policy(policy)) => policy,
        Ok(Held::AlreadyAnswered) => return Ok(PolicyRunOutcome::AlreadyAnswered),
        Ok(Held::Suspended) => return Ok(PolicyRunOutcome::Suspended),
        Ok(Held::Busy { holder }) => return Ok(PolicyRunOutcome::Busy { holder }),
        Err(e) => {
            return Err(StartError::Api(format!(
                "cannot read or mark LicenseCleanupPolicy {namespace}/{name}: {e}"
            )));
        }
    };
    let run = HeldRun {
        ctx: &ctx,
        api,
        namespace,
        name,
        hold_id,
        policy: *policy,
    };
    let (valid, credentials) = match run.check_and_read_secret().await {
        Ok(checked) => checked,
        Err(error) => return Err(run.start_failed(error).await),
    };
    let notifier = match &valid.notify {
        Some(notify) => match load_notifier(ctx.client, namespace, name, &notify.channels).await {
            Ok(notifier) => Some(notifier),
            Err(error) => return Err(run.start_failed(error).await),
        },
        None => None,
    };
    let pending = run.pending_notices();
    let (brake, watching) = run.watch_for_stop(held_since);
    let clock = Instant::now();
    let uid = run.policy.metadata.uid.clone().unwrap_or_default();
    let records = PolicyRecords::new(ctx.client, namespace, name, &uid);
    let earlier = run.earlier_reclaims(&records, &valid).await;
    let context = RunContext {
        force_dry_run: ctx.force_dry_run,
        observer: ctx.metrics.map(|m| m.qrs_observer(namespace, name)),
        brake: Some(brake),
        earlier_reclaims: earlier,
        recent_moves: run.recent_moves(),
        notify: notifier
            .as_ref()
            .map(|notifier| NotifyContext { notifier, pending }),
        ..RunContext::new(&credentials, jiff::Timestamp::now())
    };
    let mut report = run::execute(&valid, context).await;
    watching.abort();
    run.keep_outcome(&report, clock.elapsed().as_secs_f64(), &records)
        .await;
    // Only once status, Event and record are kept: a webhook that never answers cannot hold them back.
    if let Some(notifier) = &notifier {
        let summary = run::announce(notifier, &report, run::SUMMARY_DEADLINE).await;
        run.summary_sent(&report, &summary).await;
        report.deliveries.extend(summary);
    }
    Ok(PolicyRunOutcome::Ran(Box::new(report)))
}

/// A run that holds its policy.
struct HeldRun<'a> {
    ctx: &'a PolicyRunContext<'a>,
    api: Api<LicenseCleanupPolicy>,
    namespace: &'a str,
    name: &'a str,
    hold_id: String,
    policy: LicenseCleanupPolicy,
}

/// What became of the policy while it ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// It is still there (edited or not).
    Kept,
    /// Deleted, or being deleted.
    Deleted,
    /// Deleted and created again under the same name: another policy, with its own status and gauges.
    Replaced,
}

impl HeldRun<'_> {
    /// The notices earlier runs gave, as the status keeps them.
    fn pending_notices(&self) -> Pending {
        Pending::new(
            self.policy
                .status
                .iter()
                .flat_map(|s| &s.notices)
                .filter_map(|n| n.to_notice()),
        )
    }

    /// The users earlier runs moved to Analyzer, as the status keeps them.
    fn recent_moves(&self) -> Vec<run::RecentMove> {
        self.policy
            .status
            .iter()
            .flat_map(|s| &s.recent_moves)
            .filter_map(|m| m.to_recent_move())
            .collect()
    }

    /// The brake of this run, worked by a watch on its policy (`k8s/hold.rs`), and the task that watches.
    fn watch_for_stop(
        &self,
        held_since: tokio::time::Instant,
    ) -> (Brake, tokio::task::JoinHandle<()>) {
        watch_for_stop(StopWatch {
            api: self.api.clone(),
            name: self.name.to_string(),
            uid: self.policy.metadata.uid.clone(),
            generation: self.policy.metadata.generation,
            dry_run: self.policy.spec.dry_run || self.ctx.force_dry_run,
            hold_id: self.hold_id.clone(),
            held_since,
            shutdown: self.ctx.shutdown.clone(),
        })
    }

    /// The seats earlier recorded runs took on this site. Without the records the run goes on, and finds no
    /// returns this time.
    async fn earlier_reclaims(
        &self,
        records: &PolicyRecords,
        valid: &ValidPolicy,
    ) -> Vec<EarlierReclaim> {
        match records.list().await {
            Ok(runs) => earlier_reclaims(&runs, valid.connection.route.site()),
            Err(e) => {
                tracing::warn!(policy = %format!("{}/{}", self.namespace, self.name), error = %e, "could not read the policy's run records; returns are not looked for this run");
                Vec::new()
            }
        }
    }

    /// What became of the policy during the run. A policy that cannot be read counts as kept: its status write
    /// will say what is wrong.
    async fn fate(&self) -> Fate {
        match self.api.get_opt(self.name).await {
            Ok(None) => Fate::Deleted,
            Ok(Some(p)) if p.metadata.deletion_timestamp.is_some() => Fate::Deleted,
            Ok(Some(p)) if p.metadata.uid != self.policy.metadata.uid => Fate::Replaced,
            Ok(Some(_)) | Err(_) => Fate::Kept,
        }
    }

    /// The policy checked as the controller checks it (once per run, as it is now), and its Secret read (at
    /// every run, so a rotated certificate is used at once).
    async fn check_and_read_secret(&self) -> Result<(ValidPolicy, Credentials), StartError> {
        let valid = validate_resource(&self.policy, &self.ctx.permissions)
            .map_err(|invalid| StartError::InvalidPolicy(invalid.to_string()))?;
        let secret = &self.policy.spec.site.credentials_secret_ref.name;
        let credentials = load_credentials(self.ctx.client, self.namespace, secret).await?;
        Ok((valid, credentials))
    }

    /// The next scheduled instant, as of now. A schedule that cannot be read has none.
    fn next_run(&self) -> Option<jiff::Timestamp> {
        let spec = &self.policy.spec;
        let schedule = Schedule::parse(&spec.schedule, &spec.time_zone).ok()?;
        (!spec.suspend)
            .then(|| schedule.next_after(jiff::Timestamp::now()))
            .flatten()
    }

    /// The run's record kept as a LicenseCleanupRun, the oldest beyond `historyLimit` deleted, and a Warning when
    /// the kept runs' returns exceed a fifth of their reclaims. A record that cannot be kept is an Event, not a
    /// failed run: the seats are reclaimed either way.
    async fn keep_record(&self, report: &RunReport, records: &PolicyRecords, history_limit: u32) {
        if history_limit > 0
            && let Err(e) = records.create(&self.policy, &RunRecord::of(report)).await
        {
            tracing::error!(policy = %self.name, run = %report.id, error = %e, "could not keep the run's record");
            let note = format!("the record of run {} could not be kept: {e}", report.id);
            publish(
                self.ctx.recorder,
                &self.policy,
                ConditionReason::RecordNotKept,
                note,
            )
            .await;
        }
        let runs = match records.list().await {
            Ok(runs) => runs,
            Err(e) => {
                tracing::warn!(policy = %self.name, error = %e, "could not list the run records");
                return;
            }
        };
        records.prune(&runs, history_limit).await;
        let kept = &runs[..runs.len().min(history_limit as usize)];
        if !report.returns.is_empty()
            && let Some((returned, reclaimed)) = too_many_returns(kept)
        {
            let note = format!(
                "{returned} users got back a seat the last {} runs reclaimed from them ({reclaimed} reclaimed): the inactivity threshold may be too short, or a licence rule hands seats back; see the runs' returns (kubectl get lcprun -l {})",
                kept.len(),
                runs_selector(
                    self.name,
                    self.policy.metadata.uid.as_deref().unwrap_or_default()
                )
            );
            publish(
                self.ctx.recorder,
                &self.policy,
                ConditionReason::ManySeatsReturned,
                note,
            )
            .await;
        }
    }

    /// Why the run could not start: an Event, Ready=False with the reason, the hold given up. Events and metrics
    /// go before the status: whoever sees the status finds them already there.
    async fn start_failed(&self, error: StartError) -> StartError {
        publish(
            self.ctx.recorder,
            &self.policy,
            error.reason(),
            error.to_string(),
        )
        .await;
        let next = self.next_run();
        let written = update_status(&self.api, self.name, |policy, status| {
            release_hold(status, &self.hold_id);
            status.observed_generation = policy.metadata.generation;
            status.next_schedule_time = next.map(time);
            let updates = [
                ConditionUpdate::not_ready(error.reason(), error.to_string()),
                ConditionUpdate::idle("the run could not start"),
            ];
            let now = jiff::Timestamp::now();
            status.conditions = merge_conditions(
                &status.conditions,
                &updates,
                now,
                policy.metadata.generation,
            );
        })
        .await;
        if let Err(e) = written {
            tracing::error!(policy = %self.name, error = %e, "could not write status");
        }
        if let Some(m) = self.ctx.metrics {
            m.set_policy_state(self.namespace, self.name, false, self.policy.spec.dry_run);
        }
        error
    }

    /// The run's summary, sent after its record: counted, and an Event when some channel did not take it.
    async fn summary_sent(&self, report: &RunReport, deliveries: &[Delivery]) {
        if let Some(m) = self.ctx.metrics {
            m.count_deliveries(self.namespace, self.name, deliveries);
        }
        self.undelivered(report, deliveries, "summaries", "the run's record is kept")
            .await;
    }

    /// A `NotificationFailed` Event when some of `deliveries` (the run's notices, or its summary) failed.
    async fn undelivered(
        &self,
        report: &RunReport,
        deliveries: &[Delivery],
        what: &str,
        consequence: &str,
    ) {
        let failed: Vec<&str> = deliveries
            .iter()
            .filter_map(|d| d.error.as_deref())
            .collect();
        if let Some(first) = failed.first() {
            let note = format!(
                "{} of {} {what} of run {} were not delivered ({consequence}). First: {first}",
                failed.len(),
                deliveries.len(),
                report.id
            );
            publish(
                self.ctx.recorder,
                &self.policy,
                ConditionReason::NotificationFailed,
                note,
            )
            .await;
        }
    }

    /// The finished run in the log, the metrics, an Event and the status (in that order: whoever sees the status
    /// can rely on the rest including this run), and the hold given up.
    async fn keep_outcome(&self, report: &RunReport, elapsed: f64, records: &PolicyRecords) {
        let (namespace, name) = (self.namespace, self.name);
        tracing::info!(
            policy = %format!("{namespace}/{name}"),
            run = %report.id,
            result = report.result.as_str(),
            reclaimed = report.totals.reclaimed,
            candidates = report.totals.candidates,
            dry_run = report.dry_run,
            "{}",
            report.message
        );
        let next = self.next_run();
        let fate = self.fate().await;
        if let Some(m) = self.ctx.metrics {
            m.record_run(namespace, name, report, elapsed);
            // The gauges describe the policy as it is: a replacement sets its own at its reconcile.
            if fate == Fate::Kept {
                let ready = report.result != RunResult::Failed;
                m.set_policy_state(namespace, name, ready, report.dry_run);
                m.set_next_run(namespace, name, next);
            }
        }
        let (reason, note) = run_event(report);
        publish(self.ctx.recorder, &self.policy, reason, note).await;
        self.undelivered(
            report,
            &report.deliveries,
            "notices",
            "the run went on; a seat whose notice failed is kept and warned again next run",
        )
        .await;
        let history_limit = self.policy.spec.history_limit;
        self.keep_record(report, records, history_limit).await;
        let ours = self.policy.metadata.uid.clone();
        let written = update_status(&self.api, name, |policy, status| {
            // A policy created again under this name is another policy: this run is not its history.
            if fate == Fate::Replaced || policy.metadata.uid != ours {
                return;
            }
            release_hold(status, &self.hold_id);
            *status = status::after_run(
                status,
                report,
                history_limit,
                policy.metadata.generation,
                next,
            );
        })
        .await;
        let deleted = fate == Fate::Deleted
            || matches!(&written, Err(kube::Error::Api(status)) if status.code == 404);
        if deleted {
            // The reconciler forgot the policy's series when it went; this run's end must not bring them back (a
            // `policy_ready` of 0 would keep an alert firing for a policy that no longer exists).
            if let Some(m) = self.ctx.metrics {
                m.forget_policy(namespace, name);
            }
            tracing::info!(policy = %format!("{namespace}/{name}"), run = %report.id, "the policy was deleted during the run; its metrics are gone with it");
        } else if let Err(e) = written {
            tracing::error!(policy = %name, error = %e, "could not write the run's status");
        }
    }
}
