//! Moves to Analyzer (`spec.rightSize`) made by the controller on the real API server: the user is warned first in
//! the move's own words, the move is made once the notice period is over, and it shows in the record, the
//! policy's status, `kubectl get`'s column and `qlik_reclaimer_moved_total`; the restore annotation undoes it.

use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use qlik_license_reclaimer::policy::{
    LicenseCleanupPolicy, ProfessionalToAnalyzerSpec, RightSizeSpec, RunResult,
};
use qlik_license_reclaimer::record::{LicenseCleanupRun, RecordedAction};
use qrs_simulator::{NewUser, SeatTotals, SimAccessType};

use crate::control_plane::ControlPlane;
use crate::operator::{
    ControllerProcess, create_policy, ensure_installed, http_get, known_site_namespace, next_run,
    wait_metrics_up,
};
use crate::records::{records, wait_for_run};
use crate::support;
use crate::{TestResult, register, run};

fn a_move_is_noticed_made_recorded_counted_and_restored(cp: &ControlPlane) -> TestResult {
    ensure_installed(cp)?;
    run(cp, async {
        let (admin, sim, namespace) = known_site_namespace(cp, "moves").await?;
        sim.site().set_seat_totals(SeatTotals {
            professional: 50,
            analyzer: 50,
            tokens: 0,
        });
        // Dora uses her Professional seat every day and has never authored anything.
        let dora = support::add_seat(
            &sim,
            NewUser::new("CORP", "dora").attribute("email", "dora@example.com"),
            SimAccessType::Professional,
            1,
        );
        let smtp = crate::notice::smtp_server_and_secret(&admin, &namespace).await?;
        let mut spec = support::notice_policy(&sim);
        spec.limits.max_reclaim_percent = 100;
        spec.right_size = Some(RightSizeSpec {
            professional_to_analyzer: Some(ProfessionalToAnalyzerSpec { after_days: 90 }),
        });
        create_policy(&admin, &namespace, "site", spec).await?;
        let controller = ControllerProcess::start(cp, &namespace, &[])?;
        wait_metrics_up(&controller).await?;

        // The first run warns Dora of the move, in the move's words, and moves nothing.
        let policy = next_run(&admin, &namespace, "site", "1", "the first run").await?;
        let mails = smtp.to("dora@example.com");
        let [mail] = mails.as_slice() else {
            return Err(format!("mails to dora: {mails:?}").into());
        };
        if !mail.text().contains("your access changes to analyzer") {
            return Err(format!("the notice of a move: {}", mail.text()).into());
        }
        if !sim.deletions().iter().all(|d| d.user != Some(dora)) {
            return Err("dora's seat was taken before her notice period ended".into());
        }

        // Fifteen days pass for the notices: the move is made.
        let api: Api<LicenseCleanupPolicy> = Api::namespaced(admin.clone(), &namespace);
        crate::notice::age_notices(&api, &policy, 15).await?;
        let policy = next_run(&admin, &namespace, "site", "2", "the second run").await?;
        let holds = |t| {
            sim.site()
                .allocations(t)
                .iter()
                .any(|a| a.user == Some(dora) && !a.quarantined)
        };
        if holds(SimAccessType::Professional) || !holds(SimAccessType::Analyzer) {
            return Err("dora did not move to Analyzer".into());
        }
        let moved = policy
            .status
            .as_ref()
            .and_then(|s| s.last_run.as_ref())
            .map(|r| r.header.totals.moved)
            .unwrap_or_default();
        if moved == 0 {
            return Err(format!("status.lastRun counts no move: {:?}", policy.status).into());
        }
        // The policy remembers whom it moved: a later run judges their Analyzer seat from the move.
        if !policy
            .status
            .as_ref()
            .is_some_and(|s| s.recent_moves.iter().any(|m| m.user == "CORP\\dora"))
        {
            return Err(format!("status.recentMoves lacks dora: {:?}", policy.status).into());
        }
        let record = records(&admin, &namespace, "site")
            .await?
            .into_iter()
            .next()
            .ok_or("no record")?;
        let decision = record
            .status
            .as_ref()
            .and_then(|s| s.decisions.iter().find(|d| d.user == "CORP\\dora"))
            .ok_or("dora's move is not on record")?;
        if decision.action != RecordedAction::Moved || !decision.analyzer_added {
            return Err(format!("dora's record: {decision:?}").into());
        }
        let metrics = http_get(controller.metrics_port, "/metrics").await?;
        let counted = format!(
            "qlik_reclaimer_moved_total{{namespace=\"{namespace}\",policy=\"site\",from=\"professional\",to=\"analyzer\"}} {moved}"
        );
        if !metrics.contains(&counted) {
            return Err(format!("{counted} not in the metrics").into());
        }
        let dir = tempfile::tempdir()?;
        let kubeconfig = dir.path().join("kubeconfig");
        cp.write_kubeconfig(&kubeconfig, "admin", &["system:masters"])?;
        let table = crate::kubectl::stdout_of(&kubeconfig, &["get", "lcp", "-n", &namespace])?;
        let (header, row) = crate::kubectl::table_row(&table, "site")?;
        // kubectl aligns its columns: the cell starts where its title does.
        let at = header
            .find(" MOVED ")
            .map(|i| i + 1)
            .ok_or_else(|| format!("no MOVED column:\n{table}"))?;
        let cell = row.get(at..).and_then(|r| r.split_whitespace().next());
        if cell != Some(moved.to_string().as_str()) {
            return Err(format!("kubectl get lcp, {moved} moved:\n{table}").into());
        }

        // The restore annotation on the run: Dora holds Professional again, and the Analyzer seat goes. Her
        // Professional seat was in quarantine (used the day before the move); eight days on it is free again.
        sim.advance_clock(jiff::SignedDuration::from_hours(24 * 8));
        let runs: Api<LicenseCleanupRun> = Api::namespaced(admin.clone(), &namespace);
        let name = record.name_any();
        let annotate = serde_json::json!({"metadata": {"annotations": {"licensing.reclaimer.dev/restore": "undo"}}});
        runs.patch(&name, &PatchParams::default(), &Patch::Merge(&annotate))
            .await?;
        let restored = wait_for_run(&admin, &namespace, &name, "the restore", |r| {
            r.status
                .as_ref()
                .and_then(|s| s.restore.as_ref())
                .is_some_and(|r| r.answered == "undo")
        })
        .await?;
        let outcome = restored
            .status
            .and_then(|s| s.restore)
            .ok_or("no restore")?;
        let dora_restored = outcome
            .seats
            .iter()
            .find(|s| s.user == "CORP\\dora")
            .ok_or("dora is not in the restore")?;
        if !dora_restored
            .reason
            .contains("released the Analyzer seat the move added")
            || outcome.result != RunResult::Succeeded
        {
            return Err(format!("restore: {outcome:?}").into());
        }
        if !holds(SimAccessType::Professional) || holds(SimAccessType::Analyzer) {
            return Err("dora's move was not undone".into());
        }
        Ok(())
    })
}
register!(a_move_is_noticed_made_recorded_counted_and_restored);
