//! Notice before reclaim against the simulator and a real SMTP server (aiosmtpd): the first run warns, the next
//! waits, after the notice period idle seats go and returning users stay; a failed delivery delays the reclaim;
//! STARTTLS with a test certificate; webhooks. The clock is injected: a run's `now` is set, nothing sleeps.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use jiff::{SignedDuration, Timestamp};
use qlik_license_reclaimer::notice::{Notice, Pending};
use qlik_license_reclaimer::notify::{Notifier, SecretEntries};
use qlik_license_reclaimer::policy::{
    self, LicenseCleanupPolicySpec, NotifySpec, SecretKeyRef, WebhookFormat, WebhookSpec,
};
use qlik_license_reclaimer::run::{self, NotifyContext, Outcome, RunContext, RunReport};
use qrs_simulator::{NewUser, SimAccessType, Simulator};

use crate::support::smtp::{SmtpOptions, SmtpServer};
use crate::support::*;

const SMTP_PASSWORD: &str = "smtp-pa55word-do-not-print";
const WEBHOOK_TOKEN: &str = "T0KEN-in-the-webhook-url";

fn days(n: i64) -> SignedDuration {
    SignedDuration::from_hours(24 * n)
}

fn smtp_secret(pairs: &[(&str, &str)]) -> SecretEntries {
    let entries = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect();
    BTreeMap::from([("smtp".to_string(), entries)])
}

fn plain_smtp(port: u16) -> SecretEntries {
    smtp_secret(&[
        ("host", "127.0.0.1"),
        ("port", &port.to_string()),
        ("from", "Qlik licences <qlik@example.com>"),
        ("tls", "none"),
    ])
}

/// The channels `spec` names, from `secrets` and the default templates.
fn notifier_for(spec: &LicenseCleanupPolicySpec, secrets: &SecretEntries) -> Notifier {
    Notifier::new(
        "site",
        spec.notify.as_ref().expect("the policy notifies"),
        secrets,
        &BTreeMap::new(),
    )
    .expect("notifier")
}

/// One run at `now` with these notices pending; the report.
async fn run_at(
    sim: &Simulator,
    spec: &LicenseCleanupPolicySpec,
    notifier: &Notifier,
    pending: &[Notice],
    now: Timestamp,
) -> RunReport {
    let policy = policy::validate(spec, &Default::default()).expect("a valid policy");
    let credentials = credentials(sim);
    let context = RunContext {
        notify: Some(NotifyContext {
            notifier,
            pending: Pending::new(pending.iter().cloned()),
        }),
        ..run_context(&credentials, now)
    };
    let mut report = run::execute(&policy, context).await;
    // The summary goes once the run's outcome is kept, as every caller sends it.
    let summary = run::announce(notifier, &report, run::SUMMARY_DEADLINE).await;
    report.deliveries.extend(summary);
    report
}

/// One run now, with no notices pending, through the channels `spec` names with `secrets`; the report.
async fn run_now(
    sim: &Simulator,
    spec: &LicenseCleanupPolicySpec,
    secrets: &SecretEntries,
) -> RunReport {
    run_at(sim, spec, &notifier_for(spec, secrets), &[], sim.now()).await
}

fn outcome_of(report: &RunReport, user: &str) -> Vec<Outcome> {
    report
        .decisions
        .iter()
        .filter(|e| e.user == user)
        .map(|e| e.outcome)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warn_first_wait_then_reclaim_the_idle_and_spare_those_who_came_back() {
    let sim = known_site().await;
    // Ivan is idle too, but Qlik has no e-mail address for him: never warned, never reclaimed.
    add_seat(
        &sim,
        NewUser::new("CORP", "ivan"),
        SimAccessType::Professional,
        100,
    );
    let now = sim.now();
    let smtp = SmtpServer::start(SmtpOptions::default());
    let spec = notice_policy(&sim);
    let notifier = notifier_for(&spec, &plain_smtp(smtp.port));

    // 1. Everyone idle is warned; nothing is deleted.
    let first = run_at(&sim, &spec, &notifier, &[], now).await;
    assert!(sim.deletions().is_empty(), "{}", first.message);
    assert_eq!(outcome_of(&first, "CORP\\alice"), [Outcome::Warned]);
    assert_eq!(outcome_of(&first, "CORP\\carol"), [Outcome::Warned]);
    assert_eq!(outcome_of(&first, "CORP\\ivan"), [Outcome::NoAddress]);
    let to_alice = smtp.to("alice@example.com");
    assert_eq!(to_alice.len(), 1);
    let text = to_alice[0].text();
    let reclaim_day = (now + days(14)).strftime("%Y-%m-%d").to_string();
    assert!(text.contains("Hello Alice"), "{text}");
    assert!(text.contains(&reclaim_day), "{text}");
    assert!(text.contains("log in to Qlik Sense"), "{text}");
    assert!(
        text.contains("qlik-admins@example.com"),
        "whom to ask: {text}"
    );
    assert_eq!(
        smtp.to("qlik-admins@example.com").len(),
        1,
        "one summary per run that warns"
    );
    let pending = first.notices.clone().expect("notices to keep");
    assert_eq!(pending.len(), 2);

    // 2. Three days later: nothing new is sent, nothing is deleted.
    let mails = smtp.messages().len();
    let second = run_at(&sim, &spec, &notifier, &pending, now + days(3)).await;
    assert!(sim.deletions().is_empty());
    assert_eq!(outcome_of(&second, "CORP\\alice"), [Outcome::NoticeGiven]);
    assert_eq!(
        smtp.messages().len(),
        mails,
        "no second notice, no summary of a quiet run"
    );
    let pending = second.notices.clone().expect("notices kept");
    assert_eq!(pending.len(), 2);

    // 3. Carol logs in; after the notice period alice's seat goes, carol's stays, ivan's stays.
    log_in(&sim, "CORP", "carol", SimAccessType::Analyzer);
    let third = run_at(&sim, &spec, &notifier, &pending, now + days(15)).await;
    assert_eq!(
        deleted(&sim),
        [("CORP\\alice".to_string(), SimAccessType::Professional)],
        "{}",
        third.message
    );
    assert_eq!(outcome_of(&third, "CORP\\ivan"), [Outcome::NoAddress]);
    assert_eq!(
        third.notices.as_deref().map(<[Notice]>::len),
        Some(0),
        "alice went, carol's notice ended with her login"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notice_that_cannot_be_delivered_keeps_the_seat_and_is_sent_again() {
    let sim = known_site().await;
    let now = sim.now();
    let spec = notice_policy(&sim);
    // Nothing listens on this port: the mail server is down.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let down = notifier_for(&spec, &plain_smtp(closed));
    let first = run_at(&sim, &spec, &down, &[], now).await;
    assert_eq!(outcome_of(&first, "CORP\\alice"), [Outcome::NoticeFailed]);
    assert!(first.deliveries.iter().any(|d| d.error.is_some()));
    assert_eq!(first.notices.as_deref().map(<[Notice]>::len), Some(0));

    // Long after: still no notice delivered, so still no reclaim.
    let later = run_at(&sim, &spec, &down, &[], now + days(20)).await;
    assert!(sim.deletions().is_empty(), "{}", later.message);
    assert_eq!(outcome_of(&later, "CORP\\alice"), [Outcome::NoticeFailed]);

    // The server is back: the users are warned (again), still nothing is deleted.
    let smtp = SmtpServer::start(SmtpOptions::default());
    let up = notifier_for(&spec, &plain_smtp(smtp.port));
    let back = run_at(&sim, &spec, &up, &[], now + days(21)).await;
    assert_eq!(outcome_of(&back, "CORP\\alice"), [Outcome::Warned]);
    assert!(sim.deletions().is_empty());
    assert_eq!(smtp.to("alice@example.com").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_with_a_test_certificate_and_authentication() {
    let sim = known_site().await;
    let pki = TestPki::new();
    let smtp = SmtpServer::start(SmtpOptions {
        tls: Some((&pki.cert, &pki.key)),
        auth: Some(("robot", SMTP_PASSWORD)),
        ..SmtpOptions::default()
    });
    let mut spec = notice_policy(&sim);
    spec.dry_run = false;
    let secret = |ca: &str| {
        smtp_secret(&[
            ("host", "localhost"),
            ("port", &smtp.port.to_string()),
            ("from", "qlik@example.com"),
            ("tls", "starttls"),
            ("username", "robot"),
            ("password", SMTP_PASSWORD),
            ("ca.pem", ca),
        ])
    };
    let report = run_now(&sim, &spec, &secret(&pki.ca_pem)).await;
    assert_eq!(
        outcome_of(&report, "CORP\\alice"),
        [Outcome::Warned],
        "{:?}",
        report.deliveries
    );
    let mail = smtp.to("alice@example.com");
    assert_eq!(mail.len(), 1);
    assert!(mail[0].tls && mail[0].authenticated, "{:?}", mail[0]);

    // A server the CA does not vouch for gets nothing, and the password is in no message.
    let other = TestPki::new();
    let distrusting = notifier_for(&spec, &secret(&other.ca_pem));
    let delivered = smtp.messages().len();
    let refused = run_at(&sim, &spec, &distrusting, &[], sim.now()).await;
    assert_eq!(outcome_of(&refused, "CORP\\carol"), [Outcome::NoticeFailed]);
    assert_eq!(smtp.messages().len(), delivered);
    let everything = format!("{:?}{:?}", refused.decisions, refused.deliveries);
    assert!(!everything.contains(SMTP_PASSWORD));

    // TLS from the first byte (tls: tls), as on port 465.
    let smtps = SmtpServer::start(SmtpOptions {
        tls: Some((&pki.cert, &pki.key)),
        implicit_tls: true,
        ..SmtpOptions::default()
    });
    let implicit = smtp_secret(&[
        ("host", "localhost"),
        ("port", &smtps.port.to_string()),
        ("from", "qlik@example.com"),
        ("tls", "tls"),
        ("ca.pem", &pki.ca_pem),
    ]);
    let report = run_now(&sim, &spec, &implicit).await;
    assert_eq!(
        outcome_of(&report, "CORP\\alice"),
        [Outcome::Warned],
        "{:?}",
        report.deliveries
    );
    assert_eq!(smtps.to("alice@example.com").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_says_who_would_be_warned_and_sends_nothing() {
    let sim = known_site().await;
    let smtp = SmtpServer::start(SmtpOptions::default());
    let mut spec = notice_policy(&sim);
    spec.dry_run = true;
    let report = run_now(&sim, &spec, &plain_smtp(smtp.port)).await;
    assert_eq!(outcome_of(&report, "CORP\\alice"), [Outcome::WouldWarn]);
    assert!(smtp.messages().is_empty());
    assert!(
        report.notices.is_none(),
        "a dry run leaves the notices as they were"
    );
    assert!(sim.deletions().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_render_the_users_data_and_webhooks_hear_of_the_run() {
    use axum::{Router, http::StatusCode};
    let sim = known_site().await;
    let smtp = SmtpServer::start(SmtpOptions::default());
    // A receiver: the Slack hook answers 200, the broken one 500 every time.
    let received: Received = Arc::default();
    let app = Router::new()
        .route("/slack/{token}", recording_hook("slack", StatusCode::OK))
        .route(
            "/broken/{token}",
            recording_hook("broken", StatusCode::INTERNAL_SERVER_ERROR),
        )
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut spec = notice_policy(&sim);
    let notify = spec.notify.as_mut().unwrap();
    notify.webhooks = vec![
        WebhookSpec {
            secret_ref: SecretKeyRef {
                name: "hooks".into(),
                key: "slack".into(),
            },
            format: WebhookFormat::Slack,
        },
        WebhookSpec {
            secret_ref: SecretKeyRef {
                name: "hooks".into(),
                key: "broken".into(),
            },
            format: WebhookFormat::Json,
        },
    ];
    let mut secrets = plain_smtp(smtp.port);
    secrets.insert(
        "hooks".into(),
        BTreeMap::from([
            (
                "slack".to_string(),
                format!("http://{address}/slack/{WEBHOOK_TOKEN}").into_bytes(),
            ),
            (
                "broken".to_string(),
                format!("http://{address}/broken/{WEBHOOK_TOKEN}").into_bytes(),
            ),
        ]),
    );
    let templates = BTreeMap::from([(
        "notice.txt".to_string(),
        "Dear {{ user.name }} ({{ user.id }}): your {{ access_type }} seat, unused since {{ last_used }}, goes on {{ reclaim_after }}.".to_string(),
    )]);
    let notifier = Notifier::new("site", spec.notify.as_ref().unwrap(), &secrets, &templates)
        .expect("notifier")
        .with_webhook_backoff(std::time::Duration::from_millis(5));
    let now = sim.now();
    let report = run_at(&sim, &spec, &notifier, &[], now).await;
    let mail = smtp.to("alice@example.com");
    let expected = format!(
        "Dear Alice (CORP\\alice): your professional seat, unused since {}, goes on {}.",
        (now - days(90)).strftime("%Y-%m-%d"),
        (now + days(14)).strftime("%Y-%m-%d")
    );
    assert!(mail[0].text().contains(&expected), "{}", mail[0].text());

    let seen = received.lock().unwrap().clone();
    let slack: Vec<_> = seen.iter().filter(|(k, _)| k == "slack").collect();
    assert_eq!(slack.len(), 1);
    let text = slack[0].1["text"].as_str().unwrap_or_default();
    assert!(text.contains("2 warned"), "{text}");
    // The broken hook was tried three times, then reported; the run went on.
    assert_eq!(seen.iter().filter(|(k, _)| k == "broken").count(), 3);
    let failed: Vec<_> = report
        .deliveries
        .iter()
        .filter(|d| d.error.is_some())
        .collect();
    assert_eq!(failed.len(), 1, "{:?}", report.deliveries);
    assert!(
        failed[0]
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("500")
    );
    let everything = format!(
        "{:?}{:?}{}",
        report.deliveries, report.decisions, report.message
    );
    assert!(
        !everything.contains(WEBHOOK_TOKEN),
        "the webhook URL leaked: {everything}"
    );
}

/// A server that echoes the AUTH line in its refusal: its reply is repeated (in the report, the deliveries, and so
/// the log, the Event and the summary) without the user, the password or their base64 forms. And a password in clear
/// text is refused unless the Secret says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_smtp_reply_that_echoes_the_credentials_is_repeated_without_them() {
    use base64::Engine as _;
    const USER: &str = "qlik-robot";
    let sim = known_site().await;
    let smtp = SmtpServer::start(SmtpOptions {
        auth: Some((USER, SMTP_PASSWORD)),
        echo_auth: true,
        ..SmtpOptions::default()
    });
    let spec = notice_policy(&sim);
    let secret = |allow: &[(&'static str, &'static str)]| {
        let port = smtp.port.to_string();
        let mut pairs = vec![
            ("host", "127.0.0.1"),
            ("port", port.as_str()),
            ("from", "qlik@example.com"),
            ("tls", "none"),
            ("username", USER),
            ("password", SMTP_PASSWORD),
        ];
        pairs.extend_from_slice(allow);
        smtp_secret(&pairs)
    };
    let notify = spec.notify.as_ref().unwrap();
    let Err(refused) = Notifier::new("site", notify, &secret(&[]), &BTreeMap::new()) else {
        panic!("a password in clear text was accepted")
    };
    let refused = refused.to_string();
    assert!(
        refused.contains("clear text") && refused.contains("allowPlaintextAuth"),
        "{refused}"
    );

    let notifier = Notifier::new(
        "site",
        notify,
        &secret(&[("allowPlaintextAuth", "true")]),
        &BTreeMap::new(),
    )
    .expect("notifier");
    let report = run_at(&sim, &spec, &notifier, &[], sim.now()).await;
    assert_eq!(outcome_of(&report, "CORP\\alice"), [Outcome::NoticeFailed]);
    let errors: Vec<&str> = report
        .deliveries
        .iter()
        .filter_map(|d| d.error.as_deref())
        .collect();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("535") && e.contains("[redacted]")),
        "the server's refusal is repeated, scrubbed: {errors:?}"
    );
    let b64 = |text: &str| {
        base64::engine::general_purpose::STANDARD
            .encode(text)
            .trim_end_matches('=')
            .to_string()
    };
    let everything = format!(
        "{:?}{:?}{}",
        report.deliveries, report.decisions, report.message
    );
    for secret in [
        USER.to_string(),
        SMTP_PASSWORD.to_string(),
        b64(&format!("\0{USER}\0{SMTP_PASSWORD}")),
        b64(USER),
        b64(SMTP_PASSWORD),
    ] {
        assert!(!everything.contains(&secret), "{secret} in {everything}");
    }
    assert!(
        errors.iter().all(|e| e.chars().count() <= 210),
        "cut short: {errors:?}"
    );
}

/// Each user is told what keeps their seat under the rule that takes it: a login for an idle seat; nothing a
/// user does for a leaver's seat or a redundant Analyzer seat, and their notices never say that any use cancels it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_rule_gets_a_notice_that_says_what_keeps_the_seat() {
    let sim = known_site().await;
    // A leaver: blocked, used ten days ago (well within the idle threshold).
    let leo = NewUser::new("CORP", "leo")
        .blacklisted(true)
        .attribute("email", "leo@example.com");
    add_seat(&sim, leo, SimAccessType::Professional, 10);
    // Both seats, both used yesterday: the Analyzer seat is redundant.
    let rita = NewUser::new("CORP", "rita").attribute("email", "rita@example.com");
    let rita = add_seat(&sim, rita, SimAccessType::Professional, 1);
    allocate_used(&sim, rita, SimAccessType::Analyzer, 1);
    let mut spec = notice_policy(&sim);
    spec.limits.max_reclaim_percent = 100;
    spec.leavers = removed_or_blocked_leavers(0);
    spec.redundant.analyzer_with_professional = true;
    let smtp = SmtpServer::start(SmtpOptions::default());
    let report = run_now(&sim, &spec, &plain_smtp(smtp.port)).await;
    for user in ["CORP\\leo", "CORP\\rita", "CORP\\alice"] {
        assert!(
            outcome_of(&report, user).contains(&Outcome::Warned),
            "{user}: {:?}",
            report.decisions
        );
    }
    let mail = |to: &str| {
        let mails = smtp.to(to);
        assert_eq!(mails.len(), 1, "{to}");
        mails[0].text()
    };
    let idle = mail("alice@example.com");
    assert!(idle.contains("any use cancels this notice"), "{idle}");
    let leaver = mail("leo@example.com");
    assert!(leaver.contains("account is blocked in the QMC"), "{leaver}");
    let redundant = mail("rita@example.com");
    assert!(
        redundant.contains("you keep your professional access"),
        "{redundant}"
    );
    assert!(
        redundant.contains("analyzer access will be taken back"),
        "{redundant}"
    );
    for text in [&leaver, &redundant] {
        assert!(!text.contains("cancels"), "{text}");
        assert!(!text.contains("log in to Qlik Sense before then"), "{text}");
    }
    assert!(sim.deletions().is_empty(), "a notice comes first");
}

/// A site's template that builds past its limit for one user fails that user's notice, with the limit named; the
/// other users are warned and the run goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_past_its_limit_fails_that_notice_and_the_run_goes_on() {
    let sim = known_site().await;
    let spec = notice_policy(&sim);
    let smtp = SmtpServer::start(SmtpOptions::default());
    let templates = BTreeMap::from([(
        "notice.txt".to_string(),
        r#"{% if user.id == "CORP\\alice" %}{{ range(100000)|join("y" * 1000) }}{% endif %}Dear {{ user.name }}"#
            .to_string(),
    )]);
    let notifier = Notifier::new(
        "site",
        spec.notify.as_ref().unwrap(),
        &plain_smtp(smtp.port),
        &templates,
    )
    .expect("the template is accepted");
    let report = run_at(&sim, &spec, &notifier, &[], sim.now()).await;
    assert_eq!(outcome_of(&report, "CORP\\alice"), [Outcome::NoticeFailed]);
    let alice = decision_about(&report, "CORP\\alice").expect("alice decided");
    assert!(
        alice.reason.contains("notice.txt") && alice.reason.contains("4 MiB"),
        "{}",
        alice.reason
    );
    assert!(smtp.to("alice@example.com").is_empty());
    let warned: Vec<_> = report
        .decisions
        .iter()
        .filter(|e| e.outcome == Outcome::Warned)
        .collect();
    assert!(!warned.is_empty(), "{}", report.message);
    assert!(sim.deletions().is_empty());
}

/// What the webhook receiver got: which hook, and the body.
type Received = Arc<Mutex<Vec<(String, serde_json::Value)>>>;

/// A webhook endpoint that keeps each JSON body it is sent, under `name`, and answers `status`.
fn recording_hook(
    name: &'static str,
    status: axum::http::StatusCode,
) -> axum::routing::MethodRouter<Received> {
    use axum::{Json, extract::State};
    axum::routing::post(
        move |State(seen): State<Received>, Json(body): Json<serde_json::Value>| async move {
            seen.lock().unwrap().push((name.into(), body));
            status
        },
    )
}

/// A CA and a server certificate for localhost, as PEM files.
struct TestPki {
    _dir: tempfile::TempDir,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
    ca_pem: String,
}

impl TestPki {
    fn new() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).expect("CA");
        let key = KeyPair::generate().expect("server key");
        let params = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
        let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
        let cert = params.signed_by(&key, &issuer).expect("server certificate");
        let dir = tempfile::tempdir().expect("dir");
        let cert_path = dir.path().join("server.pem");
        let key_path = dir.path().join("server.key");
        std::fs::write(&cert_path, cert.pem()).expect("write");
        std::fs::write(&key_path, key.serialize_pem()).expect("write");
        TestPki {
            _dir: dir,
            cert: cert_path,
            key: key_path,
            ca_pem: ca.pem(),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_a_laptop_the_notices_are_kept_in_a_state_file() {
    let sim = known_site().await;
    let smtp = SmtpServer::start(SmtpOptions::default());
    let dir = tempfile::tempdir().expect("dir");
    sim.write_credentials(&dir.path().join("creds"))
        .expect("credentials");
    let spec = notice_policy(&sim);
    let manifest =
        serde_yaml::to_string(&policy::LicenseCleanupPolicy::new("site", spec)).expect("yaml");
    std::fs::write(dir.path().join("policy.yaml"), manifest).expect("policy");
    let smtp_dir = dir.path().join("secrets/smtp");
    std::fs::create_dir_all(&smtp_dir).expect("secrets");
    for (key, value) in [
        ("host", "127.0.0.1".to_string()),
        ("port", smtp.port.to_string()),
        ("from", "qlik@example.com".to_string()),
        ("tls", "none".to_string()),
    ] {
        std::fs::write(smtp_dir.join(key), value).expect("key");
    }
    let path = |p: &str| dir.path().join(p).display().to_string();
    let run = |extra: Vec<String>| {
        let mut args = vec![
            "run".to_string(),
            "--policy".into(),
            path("policy.yaml"),
            "--credentials".into(),
            path("creds"),
        ];
        args.extend(extra);
        tokio::task::spawn_blocking(move || {
            assert_cmd::Command::cargo_bin("qlik-license-reclaimer")
                .expect("binary")
                .args(&args)
                .env("RUST_LOG", "warn")
                .output()
                .expect("runs")
        })
    };
    // Without a state file the notices would be lost: refused before anything is sent.
    let out = run(vec!["--secrets".into(), path("secrets")])
        .await
        .expect("join");
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(smtp.messages().is_empty());

    let args = vec![
        "--secrets".into(),
        path("secrets"),
        "--state".into(),
        path("notices.json"),
    ];
    let out = run(args.clone()).await.expect("join");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("notices.json")).expect("state"))
            .expect("JSON");
    assert_eq!(
        state["notices"].as_array().map(Vec::len),
        Some(2),
        "{state}"
    );
    assert_eq!(smtp.to("alice@example.com").len(), 1);
    assert!(sim.deletions().is_empty());
    // The next run reads them back: no second notice.
    let out = run(args).await.expect("join");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(smtp.to("alice@example.com").len(), 1);
}

/// A run that fails before it reaches Qlik (the proxy refuses the session) is still summarised to the
/// administrators: a failure is the first thing they need to hear of.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_fails_before_reaching_qlik_is_summarised() {
    use qrs_simulator::{Fault, FaultRule};
    let sim = known_site_behind_proxy("ops").await;
    sim.inject(FaultRule::always(Fault::Status(403)).path_contains("/qps/"));
    let smtp = SmtpServer::start(SmtpOptions::default());
    let mut spec = notice_policy(&sim);
    let proxied = proxy_policy(&sim, "ops");
    spec.site = proxied.site;
    let report = run_now(&sim, &spec, &plain_smtp(smtp.port)).await;
    assert_eq!(
        report.result,
        qlik_license_reclaimer::policy::RunResult::Failed,
        "{}",
        report.message
    );
    let summaries = smtp.to("qlik-admins@example.com");
    assert_eq!(summaries.len(), 1, "{:?}", report.deliveries);
    assert!(sim.deletions().is_empty());
}

/// A login cancels a notice, even when the user is idle past the threshold again by the time the notice period
/// ends: the notice she was sent spoke of a seat unused since a date that is no longer true, so she is warned
/// anew, and her seat stays for a new notice period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_cancels_the_notice_even_when_idle_again() {
    let sim = known_site().await;
    let now = sim.now();
    let smtp = SmtpServer::start(SmtpOptions::default());
    let mut spec = notice_policy(&sim);
    spec.limits.max_reclaim_percent = 100;
    // The shortest threshold: by the end of the notice period, a login at its start is idle again.
    set_inactive_days(&mut spec, 7);
    let notifier = notifier_for(&spec, &plain_smtp(smtp.port));
    let first = run_at(&sim, &spec, &notifier, &[], now).await;
    assert_eq!(outcome_of(&first, "CORP\\carol"), [Outcome::Warned]);
    let pending = first.notices.clone().expect("notices to keep");

    // Carol logs in the day she is warned, then not again: 15 days later she is 15 days idle (threshold 7).
    log_in(&sim, "CORP", "carol", SimAccessType::Analyzer);
    let later = run_at(&sim, &spec, &notifier, &pending, now + days(15)).await;
    assert_eq!(
        outcome_of(&later, "CORP\\carol"),
        [Outcome::Warned],
        "the login cancelled her notice: warned anew, not reclaimed; {}",
        later.message
    );
    assert!(
        !deleted(&sim).iter().any(|(user, _)| user == "CORP\\carol"),
        "her seat stays"
    );
    assert_eq!(smtp.to("carol@example.com").len(), 2, "a second notice");
}

/// A webhook that cannot be reached at all (connection refused) is reported without its URL: the token in it is
/// in no delivery error, report or message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_that_refuses_the_connection_is_reported_without_its_url() {
    let sim = known_site().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let mut spec = policy(&sim);
    spec.limits.max_reclaim_percent = 100;
    spec.notify = Some(NotifySpec {
        email: None,
        webhooks: vec![WebhookSpec {
            secret_ref: SecretKeyRef {
                name: "hooks".into(),
                key: "url".into(),
            },
            format: WebhookFormat::Slack,
        }],
    });
    let secrets = BTreeMap::from([(
        "hooks".to_string(),
        BTreeMap::from([(
            "url".to_string(),
            format!("http://127.0.0.1:{closed}/services/{WEBHOOK_TOKEN}").into_bytes(),
        )]),
    )]);
    let notifier =
        notifier_for(&spec, &secrets).with_webhook_backoff(std::time::Duration::from_millis(5));
    let report = run_at(&sim, &spec, &notifier, &[], sim.now()).await;
    let failed: Vec<&str> = report
        .deliveries
        .iter()
        .filter_map(|d| d.error.as_deref())
        .collect();
    assert_eq!(failed.len(), 1, "{:?}", report.deliveries);
    let everything = format!(
        "{:?}{:?}{}",
        report.deliveries, report.decisions, report.message
    );
    assert!(
        !everything.contains(WEBHOOK_TOKEN) && !everything.contains("/services/"),
        "the webhook URL leaked: {everything}"
    );
}
