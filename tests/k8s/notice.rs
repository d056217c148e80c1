//! Notice before reclaim on the real API server: the notices live in the policy's status, survive a controller
//! restart, show in `kubectl get lcp`'s column and the pending gauge, and the seat goes only once its notice
//! period has passed (the clock is moved by writing the status, as time would; nothing sleeps).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Api;
use kube::api::{Patch, PatchParams};
use qlik_license_reclaimer::policy::{LicenseCleanupPolicy, NotifySpec};
use qrs_simulator::SimAccessType;

use crate::control_plane::ControlPlane;
use crate::operator::{
    ControllerProcess, create_policy, ensure_installed, http_get, known_site_namespace, next_run,
    put_named_secret, run_now, wait_metrics_up,
};
use crate::support;
use crate::support::smtp::{SmtpOptions, SmtpServer};
use crate::{TestResult, register, run};

fn pending_notices(p: &LicenseCleanupPolicy) -> Option<u64> {
    p.status.as_ref().and_then(|s| s.pending_notices)
}

/// A real SMTP server, and the Secret `smtp` in `namespace` that names it (plain text, no login), as
/// `support::notice_policy` expects.
pub(crate) async fn smtp_server_and_secret(
    admin: &kube::Client,
    namespace: &str,
) -> Result<SmtpServer, libtest_mimic::Failed> {
    let smtp = tokio::task::spawn_blocking(|| SmtpServer::start(SmtpOptions::default())).await?;
    let entries = [
        ("host", "127.0.0.1".to_string()),
        ("port", smtp.port.to_string()),
        ("from", "qlik@example.com".to_string()),
        ("tls", "none".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.into_bytes()))
    .collect();
    put_named_secret(admin, namespace, "smtp", entries).await?;
    Ok(smtp)
}

/// The notices of `policy` (named "site"), `days` older: as if that long had passed since they were given.
pub(crate) async fn age_notices(
    api: &Api<LicenseCleanupPolicy>,
    policy: &LicenseCleanupPolicy,
    days: i64,
) -> TestResult {
    let mut notices = policy.status.clone().unwrap_or_default().notices;
    let by = jiff::SignedDuration::from_hours(24 * days);
    for n in &mut notices {
        n.warned_at = Time(n.warned_at.0 - by);
        n.reclaim_after = Time(n.reclaim_after.0 - by);
    }
    api.patch_status(
        "site",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"status": {"notices": notices}})),
    )
    .await?;
    Ok(())
}

fn notices_survive_a_restart_and_the_seat_goes_after_its_notice(cp: &ControlPlane) -> TestResult {
    ensure_installed(cp)?;
    run(cp, async {
        let (admin, sim, namespace) = known_site_namespace(cp, "notice").await?;
        let smtp = smtp_server_and_secret(&admin, &namespace).await?;
        let spec = support::notice_policy(&sim);
        create_policy(&admin, &namespace, "site", spec).await?;
        let mut controller = ControllerProcess::start(cp, &namespace, &[])?;

        // The first run warns alice and carol and deletes nothing.
        let policy = next_run(&admin, &namespace, "site", "1", "the first run").await?;
        if pending_notices(&policy) != Some(2) || !sim.deletions().is_empty() {
            return Err(format!("after the first run: {:?}", policy.status).into());
        }
        // The summary goes after the status is written (a mail server that hangs cannot hold the record back).
        let summarised = async {
            while smtp.to("qlik-admins@example.com").is_empty() {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(30), summarised).await;
        if smtp.to("alice@example.com").len() != 1 || smtp.to("qlik-admins@example.com").len() != 1
        {
            return Err(format!("mails: {:?}", smtp.messages()).into());
        }

        // A new controller: the notices are read back from the status.
        controller.kill();
        let controller = ControllerProcess::start(cp, &namespace, &[])?;
        wait_metrics_up(&controller).await?;

        // Within the notice period: nothing new is sent, nothing deleted.
        let mails = smtp.messages().len();
        let policy = next_run(&admin, &namespace, "site", "2", "the second run").await?;
        if smtp.messages().len() != mails
            || !sim.deletions().is_empty()
            || pending_notices(&policy) != Some(2)
        {
            return Err(format!("within the notice period: {:?}", policy.status).into());
        }
        let metrics = http_get(controller.metrics_port, "/metrics").await?;
        let gauge = format!(
            "qlik_reclaimer_pending{{namespace=\"{namespace}\",policy=\"site\",access_type=\"professional\"}} 1"
        );
        if !metrics.contains(&gauge) {
            return Err(format!("{gauge} not in the metrics").into());
        }

        // Fifteen days pass for the notices; carol logs in meanwhile. Alice's seat goes, carol's stays.
        let api: Api<LicenseCleanupPolicy> = Api::namespaced(admin.clone(), &namespace);
        age_notices(&api, &policy, 15).await?;
        let carol = sim.site().find_user("CORP", "carol").ok_or("carol")?;
        sim.site()
            .login(carol, SimAccessType::Analyzer)
            .map_err(|e| format!("{e:?}"))?;
        let policy = next_run(&admin, &namespace, "site", "3", "the third run").await?;
        if support::deleted(&sim) != [("CORP\\alice".to_string(), SimAccessType::Professional)] {
            return Err(format!("deleted {:?}", support::deleted(&sim)).into());
        }
        if pending_notices(&policy) != Some(0) {
            return Err(format!("notices after the reclaim: {:?}", policy.status).into());
        }
        Ok(())
    })
}
register!(notices_survive_a_restart_and_the_seat_goes_after_its_notice);

/// A webhook endpoint that takes connections and never answers: each connection is held open until the end.
struct HangingEndpoint {
    url: String,
}

impl HangingEndpoint {
    fn start() -> Result<Self, libtest_mimic::Failed> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let url = format!("http://{}/hook", listener.local_addr()?);
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming().flatten() {
                held.push(stream);
            }
        });
        Ok(Self { url })
    }
}

/// SIGTERM mid-run with two webhooks that never answer: the run's status and record are kept first (every seat
/// it took is listed, so it can be restored), and the controller is gone well within the chart's 60 s grace.
fn sigterm_with_hanging_webhooks_keeps_the_record_and_exits_in_time(
    cp: &ControlPlane,
) -> TestResult {
    use crate::operator::slow_site_namespace;
    use qlik_license_reclaimer::policy::{SecretKeyRef, WebhookFormat, WebhookSpec};
    use std::time::{Duration, Instant};
    ensure_installed(cp)?;
    run(cp, async {
        let (admin, sim, namespace) =
            slow_site_namespace(cp, "hanghook", Duration::from_millis(300)).await?;
        let hooks = [HangingEndpoint::start()?, HangingEndpoint::start()?];
        let data = hooks
            .iter()
            .enumerate()
            .map(|(i, h)| (format!("url{i}"), h.url.clone().into_bytes()))
            .collect();
        put_named_secret(&admin, &namespace, "hooks", data).await?;
        let mut spec = support::per_seat_policy(&sim);
        spec.limits.max_reclaim_percent = 100;
        spec.site.concurrency = 2;
        spec.notify = Some(NotifySpec {
            email: None,
            webhooks: (0..hooks.len())
                .map(|i| WebhookSpec {
                    secret_ref: SecretKeyRef {
                        name: "hooks".into(),
                        key: format!("url{i}"),
                    },
                    format: if i == 0 {
                        WebhookFormat::Slack
                    } else {
                        WebhookFormat::Json
                    },
                })
                .collect(),
        });
        create_policy(&admin, &namespace, "site", spec).await?;
        let mut controller = ControllerProcess::start(cp, &namespace, &[])?;
        run_now(&admin, &namespace, "site", "1").await?;
        let under_way = async {
            while sim.qrs_delete_arrivals() < 2 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(60), under_way)
            .await
            .map_err(|_| format!("no deletion started; log:\n{}", controller.log()))?;
        let runs: Api<qlik_license_reclaimer::record::LicenseCleanupRun> =
            Api::namespaced(admin.clone(), &namespace);
        let signalled = Instant::now();
        // The record must be there while the webhooks still hang, not only once they gave up.
        let recorded = async {
            loop {
                let items = runs.list(&Default::default()).await?.items;
                if let Some(status) = items.into_iter().find_map(|r| r.status) {
                    return Ok::<_, kube::Error>((status, signalled.elapsed()));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        let recorded = tokio::time::timeout(Duration::from_secs(90), recorded);
        let (code, recorded) = tokio::join!(controller.terminate(), recorded);
        let took = signalled.elapsed();
        let code = code?;
        eprintln!("SIGTERM to exit with two hanging webhooks: {took:?}");
        if code != 0 || took >= Duration::from_secs(60) {
            return Err(format!(
                "exit {code} after {took:?} (the grace period is 60 s); log:\n{}",
                controller.log()
            )
            .into());
        }
        let (record, kept_after) = recorded
            .map_err(|_| format!("no run record was kept; log:\n{}", controller.log()))??;
        eprintln!("the record was kept {kept_after:?} after SIGTERM");
        if kept_after + Duration::from_secs(5) > took {
            return Err(format!(
                "the record was kept {kept_after:?} after SIGTERM, the process ended after {took:?}: the record waited for the webhooks"
            )
            .into());
        }
        let deleted = sim.deletions().len() as u64;
        let listed = record
            .decisions
            .iter()
            .filter(|d| d.action == qlik_license_reclaimer::record::RecordedAction::Reclaimed)
            .count() as u64;
        if deleted == 0 || record.header.totals.reclaimed != deleted || listed != deleted {
            return Err(format!(
                "the record must list every seat taken: {deleted} deleted, {} counted, {listed} listed",
                record.header.totals.reclaimed
            )
            .into());
        }
        Ok(())
    })
}
register!(sigterm_with_hanging_webhooks_keeps_the_record_and_exits_in_time);
