//! Run records (`LicenseCleanupRun`) on the real API server: one per run, owned by the policy, bounded by its
//! history limit, within etcd's object size at the largest cap; returns found across runs.

use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use qlik_license_reclaimer::model::AccessType;
use qlik_license_reclaimer::policy::{
    LicenseCleanupPolicy, MAX_RECLAIMS_PER_RUN, RunResult, TypeCounts,
};
use qlik_license_reclaimer::record::{
    LicenseCleanupRun, LicenseCleanupRunSpec, POLICY_LABEL, RecordedAction, RunRecord,
};
use qlik_license_reclaimer::run::{Entry, Outcome, RunReport};
use qrs_simulator::SimAccessType;

use crate::control_plane::ControlPlane;
use crate::operator::{
    ControllerProcess, create_policy, ensure_installed, events_for, http_get, known_site_namespace,
    known_site_policy, last_run_id, next_run, run_as_operator, wait_metrics_up,
};
use crate::support;
use crate::{TestResult, register, run};

/// The policy's records, newest first.
pub(crate) async fn records(
    client: &Client,
    namespace: &str,
    policy: &str,
) -> Result<Vec<LicenseCleanupRun>, libtest_mimic::Failed> {
    let api: Api<LicenseCleanupRun> = Api::namespaced(client.clone(), namespace);
    let mut runs = api
        .list(&ListParams::default().labels(&format!("{POLICY_LABEL}={policy}")))
        .await?
        .items;
    runs.sort_by_key(|r| {
        std::cmp::Reverse(
            r.status
                .as_ref()
                .map(|s| s.header.start_time.0.as_millisecond()),
        )
    });
    Ok(runs)
}

/// Triggers a run with the run-now annotation and waits for it to finish; its id.
async fn run_once(
    client: &Client,
    namespace: &str,
    value: &str,
) -> Result<String, libtest_mimic::Failed> {
    let policy = next_run(client, namespace, "site", value, "a new run").await?;
    last_run_id(&policy).ok_or_else(|| "no run id".into())
}

fn every_run_keeps_a_record_owned_by_its_policy_within_the_history_limit(
    cp: &ControlPlane,
) -> TestResult {
    ensure_installed(cp)?;
    run(cp, async {
        let (admin, sim, namespace) = known_site_namespace(cp, "records").await?;
        let mut spec = support::policy(&sim);
        // More than one page of records (the operator reads them five at a time).
        spec.history_limit = 6;
        create_policy(&admin, &namespace, "site", spec).await?;
        let _controller = ControllerProcess::start(cp, &namespace, &[])?;
        let first = run_once(&admin, &namespace, "1").await?;
        let kept = records(&admin, &namespace, "site").await?;
        let [record] = kept.as_slice() else {
            return Err(format!("{} records after one run", kept.len()).into());
        };
        let policy: LicenseCleanupPolicy = Api::namespaced(admin.clone(), &namespace)
            .get("site")
            .await?;
        let owner = record.owner_references().first().cloned();
        if owner.as_ref().map(|o| (&o.kind, &o.uid))
            != Some((
                &"LicenseCleanupPolicy".to_string(),
                &policy.uid().unwrap_or_default(),
            ))
        {
            return Err(format!("owner: {owner:?}").into());
        }
        if record.spec.policy != "site" || record.spec.run_id != first {
            return Err(format!("spec: {:?}", record.spec).into());
        }
        let status = record.status.as_ref().ok_or("a record without status")?;
        let mut taken: Vec<(String, String)> = status
            .decisions
            .iter()
            .filter(|d| d.action == RecordedAction::Reclaimed)
            .map(|d| (d.user.clone(), d.access_type.clone()))
            .collect();
        taken.sort();
        let expected: Vec<(String, String)> = support::expected_reclaims()
            .into_iter()
            .map(|(user, t)| (user, sim_key(t).to_string()))
            .collect();
        if taken != expected
            || status.header.result != RunResult::Succeeded
            || status.header.dry_run
        {
            return Err(format!("record: {status:?}").into());
        }
        if status.kept.get("excluded").copied().unwrap_or_default() == 0 {
            return Err(format!("kept seats are not counted by reason: {:?}", status.kept).into());
        }

        // Six more runs: the first record goes, the history limit holds.
        let mut later = Vec::new();
        for value in 2..=7 {
            later.push(run_once(&admin, &namespace, &value.to_string()).await?);
        }
        later.reverse();
        let ids: Vec<String> = records(&admin, &namespace, "site")
            .await?
            .iter()
            .map(|r| r.spec.run_id.clone())
            .collect();
        if ids != later {
            return Err(format!("records kept: {ids:?}, expected {later:?}").into());
        }
        Ok(())
    })
}
register!(every_run_keeps_a_record_owned_by_its_policy_within_the_history_limit);

fn sim_key(t: SimAccessType) -> &'static str {
    match t {
        SimAccessType::Professional => AccessType::Professional.key(),
        SimAccessType::Analyzer => AccessType::Analyzer.key(),
        SimAccessType::User => AccessType::User.key(),
        SimAccessType::Login => AccessType::Login.key(),
    }
}

fn a_user_who_gets_the_seat_back_is_a_return_counted_once(cp: &ControlPlane) -> TestResult {
    ensure_installed(cp)?;
    run(cp, async {
        let (admin, sim, namespace) = known_site_policy(cp, "returns").await?;
        let controller = ControllerProcess::start(cp, &namespace, &[])?;
        wait_metrics_up(&controller).await?;
        let first = run_once(&admin, &namespace, "1").await?;
        // Alice logs in again: an access rule gives her a Professional seat back.
        let alice = sim.site().find_user("CORP", "alice").ok_or("no alice")?;
        sim.site()
            .login(alice, SimAccessType::Professional)
            .map_err(|e| format!("login: {e:?}"))?;
        run_once(&admin, &namespace, "2").await?;
        let kept = records(&admin, &namespace, "site").await?;
        let newest = kept
            .first()
            .and_then(|r| r.status.as_ref())
            .ok_or("no record")?;
        let returns: Vec<(&str, &str, &str)> = newest
            .returns
            .iter()
            .map(|r| {
                (
                    r.user.as_str(),
                    r.access_type.as_str(),
                    r.reclaimed_by.as_str(),
                )
            })
            .collect();
        if returns != [("CORP\\alice", "professional", first.as_str())] || newest.returned != 1 {
            return Err(format!("returns: {:?}", newest.returns).into());
        }
        // One return of two reclaims is more than a fifth: the administrator is told.
        let events = events_for(&admin, &namespace, "site").await?;
        if !events.iter().any(|e| {
            e.reason.as_deref() == Some("ManySeatsReturned")
                && e.type_.as_deref() == Some("Warning")
        }) {
            return Err("no ManySeatsReturned Warning".into());
        }
        // A third run finds nothing new: a return is counted once.
        run_once(&admin, &namespace, "3").await?;
        let kept = records(&admin, &namespace, "site").await?;
        let newest = kept
            .first()
            .and_then(|r| r.status.as_ref())
            .ok_or("no record")?;
        if newest.returned != 0 {
            return Err(format!("the return was counted again: {:?}", newest.returns).into());
        }
        let metrics = http_get(controller.metrics_port, "/metrics").await?;
        let line = format!(
            "qlik_reclaimer_returned_total{{namespace=\"{namespace}\",policy=\"site\",access_type=\"professional\"}} 1"
        );
        if !metrics.contains(&line) {
            return Err(format!("{line} not in the metrics").into());
        }
        Ok(())
    })
}
register!(a_user_who_gets_the_seat_back_is_a_return_counted_once);

/// `run --policy-ref --output json` prints the record it keeps in the cluster.
fn a_policy_ref_run_prints_the_record_it_keeps(cp: &ControlPlane) -> TestResult {
    ensure_installed(cp)?;
    run(cp, async {
        let (admin, _sim, namespace) = known_site_policy(cp, "refrecord").await?;
        let reference = format!("{namespace}/site");
        let args = ["run", "--policy-ref", &reference, "--output", "json"];
        let output = run_as_operator(cp, args.map(String::from).to_vec()).await?;
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).into_owned().into());
        }
        let printed: RunRecord = serde_json::from_slice(&output.stdout)?;
        let kept = records(&admin, &namespace, "site").await?;
        let stored = kept
            .first()
            .and_then(|r| r.status.clone())
            .ok_or("no record")?;
        if printed != stored || printed.decisions.len() != 2 {
            return Err(format!("printed {printed:?}\nstored {stored:?}").into());
        }
        Ok(())
    })
}
register!(a_policy_ref_run_prints_the_record_it_keeps);

/// The record of a run at the largest cap, every deletion failed with a long message and every name long, is
/// accepted by the API server and etcd whole.
fn a_record_at_the_largest_cap_fits_in_etcd(cp: &ControlPlane) -> TestResult {
    ensure_installed(cp)?;
    run(cp, async {
        let admin = cp.admin_client();
        let namespace = crate::create_namespace(&admin, "bigrecord").await?;
        let cap = MAX_RECLAIMS_PER_RUN as usize;
        let decisions = (0..cap)
            .map(|i| Entry {
                user: format!("CORPORATE-EMEA\\firstname.lastname{i:05}@example-company.com"),
                user_name: "Firstname Lastname".into(),
                access_type: AccessType::Professional,
                allocation_id: format!("0f2c6d8e-1a2b-4c3d-9e8f-{i:012}"),
                user_qrs_id: format!("5d2a7c1e-9b3f-4e6a-8c0d-{i:012}"),
                last_used: "2026-01-31T19:44:28.951Z".into(),
                idle_days: Some(304),
                // Seats a bulk DELETE may have taken, recorded with their user's id too (the largest kind).
                outcome: if i == 0 {
                    Outcome::Failed
                } else {
                    Outcome::Unconfirmed
                },
                reason_code: "inactive",
                rule: Some(qlik_license_reclaimer::model::Rule::Idle),
                reason: "not used for 304 days (threshold 90)".into(),
                error: Some(format!("QRS answered 500: {}", "x".repeat(400))),
                analyzer_added: false,
                analyzer_allocation_id: None,
            })
            .collect();
        let now = jiff::Timestamp::now();
        let report = RunReport {
            site: "https://qlik.example:4242".into(),
            totals: TypeCounts {
                allocated: cap as u64,
                failed: cap as u64,
                ..Default::default()
            },
            decisions,
            ..RunReport::new(
                "20261201T090000Z-big001".into(),
                now,
                now,
                false,
                RunResult::Failed,
                format!("{cap} of {cap} deallocations failed"),
            )
        };
        let record = RunRecord::of(&report);
        let api: Api<LicenseCleanupRun> = Api::namespaced(admin.clone(), &namespace);
        let run = LicenseCleanupRun::new(
            "big",
            LicenseCleanupRunSpec {
                policy: "site".into(),
                run_id: record.header.id.clone(),
            },
        );
        api.create(&PostParams::default(), &run).await?;
        let patch = serde_json::json!({
            "apiVersion": "licensing.reclaimer.dev/v1alpha1",
            "kind": "LicenseCleanupRun",
            "status": record,
        });
        api.patch_status(
            "big",
            &PatchParams::apply("records-test"),
            &Patch::Apply(&patch),
        )
        .await?;
        let stored = api.get("big").await?.status.ok_or("no status")?;
        if stored.decisions.len() != cap || stored.decisions_omitted != 0 {
            return Err(format!("{} decisions stored", stored.decisions.len()).into());
        }
        Ok(())
    })
}
register!(a_record_at_the_largest_cap_fits_in_etcd);

/// Waits (event-driven, bounded) until the run satisfies `condition`.
pub(crate) async fn wait_for_run(
    client: &Client,
    namespace: &str,
    name: &str,
    what: &str,
    condition: impl Fn(&LicenseCleanupRun) -> bool,
) -> Result<LicenseCleanupRun, libtest_mimic::Failed> {
    let api: Api<LicenseCleanupRun> = Api::namespaced(client.clone(), namespace);
    let found = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        kube::runtime::wait::await_condition(
            api.clone(),
            name,
            move |r: Option<&LicenseCleanupRun>| r.is_some_and(&condition),
        ),
    )
    .await;
    match found {
        Ok(Ok(Some(run))) => Ok(run),
        _ => {
            let now = api
                .get(name)
                .await
                .ok()
                .and_then(|r| r.status)
                .and_then(|s| s.restore);
            Err(format!("timed out waiting for {what}; restore: {now:?}").into())
        }
    }
}

/// `restore --run NS/NAME` with `extra` arguments, as the operator's ServiceAccount (what an administrator's
/// kubeconfig would do with the operator's rights).
async fn restore_run_as_operator(
    cp: &ControlPlane,
    reference: &str,
    extra: &[&str],
) -> Result<std::process::Output, libtest_mimic::Failed> {
    let mut args = vec!["restore".to_string(), "--run".into(), reference.to_string()];
    args.extend(extra.iter().map(|a| a.to_string()));
    run_as_operator(cp, args).await
}

fn the_restore_annotation_gives_a_runs_seats_back_once(cp: &ControlPlane) -> TestResult {
    ensure_installed(cp)?;
    run(cp, async {
        let (admin, sim, namespace) = known_site_namespace(cp, "restore").await?;
        sim.site().set_seat_totals(qrs_simulator::SeatTotals {
            professional: 50,
            analyzer: 50,
            tokens: 0,
        });
        create_policy(&admin, &namespace, "site", support::policy(&sim)).await?;
        let controller = ControllerProcess::start(cp, &namespace, &[])?;
        run_once(&admin, &namespace, "1").await?;
        let record = records(&admin, &namespace, "site")
            .await?
            .into_iter()
            .next()
            .ok_or("no record")?;
        let name = record.name_any();
        let api: Api<LicenseCleanupRun> = Api::namespaced(admin.clone(), &namespace);
        let annotate = serde_json::json!({"metadata": {"annotations": {"licensing.reclaimer.dev/restore": "please"}}});
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&annotate))
            .await?;
        let restored = wait_for_run(&admin, &namespace, &name, "the restore", |r| {
            r.status
                .as_ref()
                .and_then(|s| s.restore.as_ref())
                .is_some_and(|r| r.answered == "please")
        })
        .await?;
        let outcome = restored
            .status
            .and_then(|s| s.restore)
            .ok_or("no restore")?;
        if outcome.result != RunResult::Succeeded || outcome.restored != 2 || outcome.dry_run {
            return Err(format!("restore: {outcome:?}").into());
        }
        let holds = |user: &str, t| sim.site().allocations(t).iter().any(|a| a.user_id == user);
        if !holds("alice", SimAccessType::Professional) || !holds("carol", SimAccessType::Analyzer)
        {
            return Err("the seats are not back on the site".into());
        }
        let events = events_for(&admin, &namespace, &name).await?;
        if !events
            .iter()
            .any(|e| e.reason.as_deref() == Some("Restored"))
        {
            return Err("no Restored Event on the run".into());
        }

        // The next run: seats given back are not returns.
        run_once(&admin, &namespace, "2").await?;
        let newest = records(&admin, &namespace, "site").await?;
        let newest = newest
            .first()
            .and_then(|r| r.status.as_ref())
            .ok_or("no record")?;
        if newest.returned != 0 {
            return Err(format!("restored seats counted as returns: {:?}", newest.returns).into());
        }

        // `restore --run --dry-run` as an administrator would, while a new restore value waits for a controller:
        // both hold their seat again, and the dry run answers nothing, so the value is still answered afterwards.
        drop(controller);
        let annotate = serde_json::json!({"metadata": {"annotations": {"licensing.reclaimer.dev/restore": "again"}}});
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&annotate))
            .await?;
        let reference = format!("{namespace}/{name}");
        let output =
            restore_run_as_operator(cp, &reference, &["--dry-run", "--output", "json"]).await?;
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).into_owned().into());
        }
        let printed: serde_json::Value = serde_json::from_slice(&output.stdout)?;
        if printed["skipped"] != 2 || printed["dryRun"] != true {
            return Err(format!("restore --run: {printed}").into());
        }
        let stored = api
            .get(&name)
            .await?
            .status
            .and_then(|s| s.restore)
            .ok_or("no restore")?;
        if stored.dry_run || stored.answered != "please" || stored.restored != 2 {
            return Err(format!("a dry run left its mark on status.restore: {stored:?}").into());
        }
        let _controller = ControllerProcess::start(cp, &namespace, &[])?;
        wait_for_run(&admin, &namespace, &name, "the pending restore", |r| {
            r.status
                .as_ref()
                .and_then(|s| s.restore.as_ref())
                .is_some_and(|r| r.answered == "again" && !r.dry_run)
        })
        .await?;

        // The policy now names another site: the run's seats are not given there.
        let recorded = api
            .get(&name)
            .await?
            .status
            .map(|s| s.site)
            .unwrap_or_default();
        if recorded != sim.repository_url() {
            return Err(format!("the record names the site {recorded:?}").into());
        }
        crate::operator::patch_spec(
            &admin,
            &namespace,
            "site",
            serde_json::json!({"site": {"repositoryUrl": "https://127.0.0.1:1"}}),
        )
        .await?;
        let output = restore_run_as_operator(cp, &reference, &[]).await?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        if output.status.code() != Some(2) || !stderr.contains("but its policy now names") {
            return Err(format!("a restore onto another site: {output:?}").into());
        }
        Ok(())
    })
}
register!(the_restore_annotation_gives_a_runs_seats_back_once);

/// A policy's name may have 253 characters, a label value only 63: a policy with a long name keeps its run
/// records all the same (labelled by its uid, named in the spec), and they are pruned to its history limit.
fn a_policy_with_a_long_name_keeps_its_records(cp: &ControlPlane) -> TestResult {
    use qlik_license_reclaimer::record::POLICY_UID_LABEL;
    ensure_installed(cp)?;
    run(cp, async {
        let (admin, sim, namespace) = known_site_namespace(cp, "longname").await?;
        let name = format!("site-{}", "a".repeat(200));
        let mut spec = support::dry_run_policy(&sim);
        spec.history_limit = 1;
        create_policy(&admin, &namespace, &name, spec).await?;
        let policies: Api<LicenseCleanupPolicy> = Api::namespaced(admin.clone(), &namespace);
        let uid = policies.get(&name).await?.uid().unwrap_or_default();
        let controller = ControllerProcess::start(cp, &namespace, &[])?;
        let mut last = None;
        for value in ["1", "2"] {
            let policy = next_run(&admin, &namespace, &name, value, "a new run").await?;
            last = last_run_id(&policy);
        }
        let api: Api<LicenseCleanupRun> = Api::namespaced(admin.clone(), &namespace);
        let selector = format!("{POLICY_UID_LABEL}={uid}");
        // The second run prunes the first record just after writing its own.
        let pruned = async {
            loop {
                let kept = api
                    .list(&ListParams::default().labels(&selector))
                    .await?
                    .items;
                if kept.len() == 1 && kept[0].spec.run_id == last.clone().unwrap_or_default() {
                    return Ok::<_, kube::Error>(kept);
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        };
        let kept = tokio::time::timeout(std::time::Duration::from_secs(30), pruned)
            .await
            .map_err(|_| {
                format!(
                    "the runs of a long-named policy were not kept and pruned to one; log:\n{}",
                    controller.log()
                )
            })??;
        if kept[0].spec.policy != name || kept[0].status.is_none() {
            return Err(format!(
                "the record names its policy and holds the run: {:?}",
                kept[0].spec
            )
            .into());
        }
        if kept[0].labels().contains_key(POLICY_LABEL) {
            return Err("a name too long for a label is not put in one".into());
        }
        Ok(())
    })
}
register!(a_policy_with_a_long_name_keeps_its_records);

/// An aborted run (the breaker) and a failed one (the site cannot be reached) are on record too: each with its
/// result and the message that says why, and nothing listed as reclaimed.
fn aborted_and_failed_runs_are_on_record(cp: &ControlPlane) -> TestResult {
    ensure_installed(cp)?;
    run(cp, async {
        let (admin, sim, namespace) = known_site_namespace(cp, "abortrec").await?;
        let mut spec = support::policy(&sim);
        // Professional: 5 of 8 allocations are candidates, well above 10%.
        spec.limits.max_reclaim_percent = 10;
        create_policy(&admin, &namespace, "site", spec).await?;
        let _controller = ControllerProcess::start(cp, &namespace, &[])?;
        let aborted = run_once(&admin, &namespace, "1").await?;
        let closed = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        crate::operator::patch_spec(
            &admin,
            &namespace,
            "site",
            serde_json::json!({"site": {"repositoryUrl": format!("https://127.0.0.1:{closed}")}}),
        )
        .await?;
        let failed = run_once(&admin, &namespace, "2").await?;
        let kept = records(&admin, &namespace, "site").await?;
        let find = |id: &str| {
            kept.iter()
                .filter_map(|r| r.status.as_ref())
                .find(|s| s.header.id == id)
                .cloned()
                .ok_or_else(|| format!("no record of run {id}: {} kept", kept.len()))
        };
        let (aborted, failed) = (find(&aborted)?, find(&failed)?);
        if aborted.header.result != RunResult::Aborted
            || !aborted.header.message.contains("aborted")
            || !aborted.decisions.is_empty()
        {
            return Err(format!("the aborted run's record: {aborted:?}").into());
        }
        if failed.header.result != RunResult::Failed
            || failed.header.message.is_empty()
            || !failed.decisions.is_empty()
            || failed.site != format!("https://127.0.0.1:{closed}")
        {
            return Err(format!("the failed run's record: {failed:?}").into());
        }
        if !sim.deletions().is_empty() {
            return Err("neither run deleted anything".into());
        }
        Ok(())
    })
}
register!(aborted_and_failed_runs_are_on_record);
