//! The brake on a fast site: an administrator's switch to dry run, suspend, edit or deletion of a policy stops its
//! run's deletions at once, in both cluster modes (the controller and `run --policy-ref`). Once the API server has
//! accepted the change, at most the DELETEs already in flight may still reach Qlik: none may *arrive* after the
//! change returned beyond `site.concurrency`.

use std::process::Stdio;
use std::time::Duration;

use kube::Api;
use libtest_mimic::Failed;
use qlik_license_reclaimer::policy::LicenseCleanupPolicy;
use qrs_simulator::{Simulator, SimulatorConfig};
use serde_json::json;

use crate::control_plane::ControlPlane;
use crate::operator::*;
use crate::trust::{every_delete_finished_and_counted, kept_record, policy_ref_command};
use crate::{TestResult, register, run, support};

/// Deletions at a time: the bound on DELETEs that may arrive after the change.
const CONCURRENCY: u32 = 8;

/// DELETEs that reach Qlik before the administrator acts: the run is well under way, in the middle of a batch (the
/// seats are read again 50 at a time just before deleting them).
const BEFORE_THE_CHANGE: usize = 120;

/// What the administrator does mid-run.
#[derive(Clone, Copy, Debug)]
enum Change {
    DryRun,
    Suspend,
    Edit,
    Delete,
}

impl Change {
    /// Words the run's record gives as the reason it stopped.
    fn reason(self) -> &'static str {
        match self {
            Change::DryRun => "switched to dry run",
            Change::Suspend => "suspended",
            Change::Edit => "changed since the run started",
            Change::Delete => "deleted",
        }
    }

    async fn apply(self, admin: &kube::Client, namespace: &str) -> Result<(), Failed> {
        match self {
            Change::DryRun => patch_spec(admin, namespace, "site", json!({"dryRun": true})).await,
            Change::Suspend => patch_spec(admin, namespace, "site", json!({"suspend": true})).await,
            // An edit that does not itself forbid deletions: only the new generation tells.
            Change::Edit => patch_spec(admin, namespace, "site", json!({"historyLimit": 7})).await,
            Change::Delete => {
                let policies: Api<LicenseCleanupPolicy> = Api::namespaced(admin.clone(), namespace);
                policies.delete("site", &Default::default()).await?;
                Ok(())
            }
        }
    }
}

/// Who runs the policy.
#[derive(Clone, Copy, Debug)]
enum Mode {
    Controller,
    PolicyRef,
}

/// A fast site: thousands of idle seats, a few milliseconds a request. The bound on DELETEs after the change
/// includes the time the API server takes to tell the watch (a few milliseconds, more on a loaded machine): at
/// 5 ms a request, measured on this suite's two cores, 0 to 7 arrived after the change; 8 ms leaves room for a
/// slower moment without loosening the bound.
async fn fast_site() -> Simulator {
    support::start_simulator(SimulatorConfig {
        users: 5000,
        seed: 23,
        latency: Duration::from_millis(8),
        ..Default::default()
    })
    .await
}

/// A policy that reclaims as many seats as it may, `CONCURRENCY` at a time, with no breaker.
fn fast_policy(sim: &Simulator) -> qlik_license_reclaimer::policy::LicenseCleanupPolicySpec {
    let mut spec = support::per_seat_policy(sim);
    spec.limits.max_reclaim_percent = 100;
    spec.limits.max_reclaims_per_run = 2000;
    spec.site.concurrency = CONCURRENCY;
    support::set_inactive_days(&mut spec, 30);
    spec
}

/// Starts a run in `mode`, makes `change` once `BEFORE_THE_CHANGE` DELETEs have arrived, and checks that at most
/// `CONCURRENCY` arrived after the change returned, that every DELETE sent is on record, and the record's reason.
fn the_brake_holds(cp: &ControlPlane, mode: Mode, change: Change, prefix: &str) -> TestResult {
    ensure_installed(cp)?;
    run(cp, async {
        let admin = cp.admin_client();
        let sim = fast_site().await;
        let namespace = policy_namespace(cp, prefix, &sim).await?;
        create_policy(&admin, &namespace, "site", fast_policy(&sim)).await?;
        let dir = tempfile::tempdir()?;
        let (controller, mut runner) = match mode {
            Mode::Controller => {
                let controller = ControllerProcess::start(cp, &namespace, &[])?;
                run_now(&admin, &namespace, "site", "1").await?;
                (Some(controller), None)
            }
            Mode::PolicyRef => {
                let mut command = policy_ref_command(cp, &format!("{namespace}/site"), &dir)?;
                let child = command
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()?;
                (None, Some(child))
            }
        };
        let log = || controller.as_ref().map(|c| c.log()).unwrap_or_default();
        let under_way = async {
            while sim.qrs_delete_arrivals() < BEFORE_THE_CHANGE {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(60), under_way)
            .await
            .map_err(|_| format!("the run never got under way; log:\n{}", log()))?;
        change.apply(&admin, &namespace).await?;
        let at_change = sim.qrs_delete_arrivals();

        if let Some(child) = runner.take() {
            let output = tokio::task::spawn_blocking(move || child.wait_with_output()).await??;
            if output.status.code() != Some(1) {
                return Err(format!(
                    "a run stopped by its policy exits 1, got {:?}: {}",
                    output.status.code(),
                    String::from_utf8_lossy(&output.stderr)
                )
                .into());
            }
        }
        let record = kept_record(&admin, &namespace, log).await?;
        let after = sim.qrs_delete_arrivals() - at_change;
        if after > CONCURRENCY as usize {
            return Err(format!(
                "{change:?} ({mode:?}): {after} DELETEs arrived after the change was accepted ({at_change} before); at most {CONCURRENCY} (those in flight) may; {}",
                record.header.message
            )
            .into());
        }
        if !record.header.message.contains(change.reason()) {
            return Err(format!(
                "the record should say why the run stopped ({}): {}",
                change.reason(),
                record.header.message
            )
            .into());
        }
        eprintln!(
            "{change:?} ({mode:?}): {at_change} DELETEs before the change returned, {after} after"
        );
        every_delete_finished_and_counted(&sim, record.header.totals.reclaimed, "in the record")
    })
}

/// Defines and registers a test of [`the_brake_holds`] for each `name: mode, change, namespace prefix`.
macro_rules! the_brake_holds_in {
    ($($name:ident: $mode:ident, $change:ident, $prefix:literal;)*) => {
        $(
            fn $name(cp: &ControlPlane) -> TestResult {
                the_brake_holds(cp, Mode::$mode, Change::$change, $prefix)
            }
        )*
        register!($($name),*);
    };
}

the_brake_holds_in! {
    the_brake_holds_on_a_switch_to_dry_run: Controller, DryRun, "brake-dry";
    the_brake_holds_on_a_suspend: Controller, Suspend, "brake-sus";
    the_brake_holds_on_an_edit: Controller, Edit, "brake-edit";
    the_brake_holds_on_a_deletion: Controller, Delete, "brake-del";
    the_brake_holds_on_a_switch_to_dry_run_from_policy_ref: PolicyRef, DryRun, "brake-ref-dry";
    the_brake_holds_on_a_suspend_from_policy_ref: PolicyRef, Suspend, "brake-ref-sus";
    the_brake_holds_on_an_edit_from_policy_ref: PolicyRef, Edit, "brake-ref-edit";
    the_brake_holds_on_a_deletion_from_policy_ref: PolicyRef, Delete, "brake-ref-del";
}

/// The controller loses the API server mid-run (its connections cut, Qlik still reachable): its watch on the
/// policy breaks, and with it no change could be seen, so no deletion starts after the cut beyond those in flight.
/// The run stops once it cannot renew its hold.
fn a_watch_that_breaks_pauses_deletions(cp: &ControlPlane) -> TestResult {
    use crate::trust::Partition;
    ensure_installed(cp)?;
    run(cp, async {
        let admin = cp.admin_client();
        let sim = fast_site().await;
        let namespace = policy_namespace(cp, "brake-cut", &sim).await?;
        create_policy(&admin, &namespace, "site", fast_policy(&sim)).await?;
        let partition = Partition::start(cp.server_url()).await?;
        let args = ["controller", "--namespace", namespace.as_str()];
        let controller = ControllerProcess::start_through(
            cp,
            Some(&partition.url),
            SERVICE_ACCOUNT_USER,
            SERVICE_ACCOUNT_GROUPS,
            &args,
            &[],
        )?;
        run_now(&admin, &namespace, "site", "1").await?;
        let under_way = async {
            while sim.qrs_delete_arrivals() < BEFORE_THE_CHANGE {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(60), under_way)
            .await
            .map_err(|_| format!("the run never got under way; log:\n{}", controller.log()))?;
        partition.cut();
        let at_cut = sim.qrs_delete_arrivals();
        let stopped = async {
            while !controller.log().contains("no further seat is deallocated") {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(60), stopped)
            .await
            .map_err(|_| format!("the run did not stop; log:\n{}", controller.log()))?;
        let after = sim.qrs_delete_arrivals() - at_cut;
        eprintln!("watch cut: {at_cut} DELETEs before, {after} after");
        if after > CONCURRENCY as usize {
            return Err(format!(
                "{after} DELETEs arrived after the run lost its watch ({at_cut} before); at most {CONCURRENCY} (those in flight) may; log:\n{}",
                controller.log()
            )
            .into());
        }
        Ok(())
    })
}
register!(a_watch_that_breaks_pauses_deletions);
