//! A small, exactly known site and the plumbing to run policies against it; a real SMTP server.

pub mod smtp;

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use qlik_license_reclaimer::credentials::Credentials;
use qlik_license_reclaimer::demo::demo_policy;
use qlik_license_reclaimer::policy::{
    self, EmailSpec, LeaversSpec, LicenseCleanupPolicySpec, NotifySpec, ProxySpec, SecretRef,
};
use qlik_license_reclaimer::qrs::RetryPolicy;
use qlik_license_reclaimer::run::{self, Entry, RunContext, RunReport};
use qrs_simulator::{
    Fault, FaultRule, KeyFormat, NewUser, ProxyConfig, SimAccessType, Simulator, SimulatorConfig,
};
use uuid::Uuid;

pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn days_ago(now: Timestamp, days: i64) -> Timestamp {
    now - SignedDuration::from_hours(24 * days)
}

/// The allocations of [`known_site`] the default test policy must reclaim, as (directory\user, type).
pub const EXPECTED_RECLAIMS: [(&str, SimAccessType); 2] = [
    ("CORP\\alice", SimAccessType::Professional),
    ("CORP\\carol", SimAccessType::Analyzer),
];

pub async fn start_simulator(config: SimulatorConfig) -> Simulator {
    install_crypto();
    let synthetic = config.users > 0;
    let simulator = Simulator::start(config).await.expect("simulator starts");
    if !synthetic {
        populate(&simulator);
    }
    simulator
}

pub async fn known_site() -> Simulator {
    start_simulator(SimulatorConfig::default()).await
}

pub async fn known_site_with_keys(format: KeyFormat) -> Simulator {
    start_simulator(SimulatorConfig {
        client_key_format: format,
        ..SimulatorConfig::default()
    })
    .await
}

pub async fn known_site_behind_proxy(prefix: &str) -> Simulator {
    start_simulator(SimulatorConfig {
        proxy: Some(ProxyConfig::new(prefix)),
        ..SimulatorConfig::default()
    })
    .await
}

/// A synthetic site of 400 users with many inactive seats, whose DELETEs each take `delete`, so that a run is
/// surely mid-way when something happens to it.
pub async fn slow_site(delete: Duration) -> Simulator {
    let simulator = start_simulator(SimulatorConfig {
        users: 400,
        seed: 11,
        ..SimulatorConfig::default()
    })
    .await;
    simulator.inject(FaultRule::always(Fault::Delay(delete)).method("DELETE"));
    simulator
}

/// Gives the user `id` a seat of `access_type`, allocated 400 days ago and last used `days` ago; the seat's id.
pub fn allocate_used(
    simulator: &Simulator,
    id: Uuid,
    access_type: SimAccessType,
    days: i64,
) -> Uuid {
    let now = simulator.now();
    let last_used = Some(days_ago(now, days));
    simulator
        .site()
        .allocate(access_type, id, last_used, days_ago(now, 400), false)
        .expect("allocated")
}

/// Adds `user` holding one seat of `access_type`, allocated 400 days ago and last used `days` ago; the user's id.
pub fn add_seat(
    simulator: &Simulator,
    user: NewUser,
    access_type: SimAccessType,
    days: i64,
) -> Uuid {
    let id = simulator.site().add_user(user).expect("user added");
    allocate_used(simulator, id, access_type, days);
    id
}

/// `directory\user` of the site logs in, and an access rule gives them a seat of `access_type` back.
pub fn log_in(simulator: &Simulator, directory: &str, user: &str, access_type: SimAccessType) {
    let id = simulator
        .site()
        .find_user(directory, user)
        .unwrap_or_else(|| panic!("no user {directory}\\{user}"));
    simulator.site().login(id, access_type).expect("login");
}

/// Every rule of the default policy meets one user here; eight seats of each type keep the breaker quiet.
fn populate(simulator: &Simulator) {
    let site = simulator.site();
    let now = simulator.now();
    let old = days_ago(now, 400);
    let add = |user: NewUser,
               access_type,
               last_used: Option<Timestamp>,
               created: Timestamp,
               quarantined: bool| {
        let id = site.add_user(user).expect("user added");
        site.allocate(access_type, id, last_used, created, quarantined)
            .expect("allocated")
    };
    let used = |user, access_type, days| {
        add_seat(simulator, user, access_type, days);
    };
    use SimAccessType::{Analyzer, Professional};
    // Reclaimed: idle 90 days.
    let alice = NewUser::new("CORP", "alice")
        .name("Alice")
        .attribute("email", "alice@example.com");
    used(alice, Professional, 90);
    // Active.
    used(NewUser::new("CORP", "bob"), Professional, 3);
    // Reclaimed: never used, allocated 40 days ago.
    let carol = NewUser::new("CORP", "carol").attribute("email", "carol@example.com");
    add(carol, Analyzer, None, days_ago(now, 40), false);
    // Kept: never used, within the 14-day grace.
    let dave = NewUser::new("CORP", "dave");
    add(dave, Analyzer, None, days_ago(now, 5), false);
    // Kept: service accounts are excluded by pattern.
    used(NewUser::new("INTERNAL", "sa_scheduler"), Professional, 200);
    // Kept: tagged VIP.
    used(NewUser::new("CORP", "erin").tag("VIP"), Professional, 60);
    // Kept: exempt by custom property.
    let frank = NewUser::new("CORP", "frank").custom_property("LicenseCleanup", "Exempt");
    used(frank, Analyzer, 45);
    // Kept: already quarantined by Qlik.
    let grace = NewUser::new("CORP", "grace");
    add(grace, Professional, Some(days_ago(now, 100)), old, true);
    // Kept: a RootAdmin.
    used(
        NewUser::new("CORP", "heidi").role("RootAdmin"),
        Analyzer,
        70,
    );
    for i in 0..3 {
        used(NewUser::new("CORP", format!("pro{i}")), Professional, 1);
        used(NewUser::new("CORP", format!("ana{i}")), Analyzer, 2);
    }
}

pub fn credential_entries(simulator: &Simulator) -> BTreeMap<String, Vec<u8>> {
    simulator.pki().secret_entries()
}

pub fn credentials(simulator: &Simulator) -> Credentials {
    Credentials::from_entries(&credential_entries(simulator))
        .expect("simulator credentials are valid")
}

/// The test policy: 30 days for both seat types, 14 days of grace, the usual exclusions, enforcing.
pub fn policy(simulator: &Simulator) -> LicenseCleanupPolicySpec {
    // The demo's policy, enforcing, with exclusions spelled in another case (matching ignores case).
    let mut spec = demo_policy(
        simulator.repository_url(),
        simulator.pki().server_name.clone(),
    );
    spec.dry_run = false;
    spec.site.credentials_secret_ref.name = "qlik".into();
    spec.site.request_timeout_seconds = 10;
    spec.exclude.users = vec!["internal\\SA_*".into()];
    spec.exclude.tags = vec!["vip".into()];
    spec
}

/// [`policy`], deleting one seat a request (`site.bulk: false`): for tests that count or time single DELETEs.
pub fn per_seat_policy(simulator: &Simulator) -> LicenseCleanupPolicySpec {
    let mut spec = policy(simulator);
    spec.site.bulk = false;
    spec
}

/// [`policy`], reporting only.
pub fn dry_run_policy(simulator: &Simulator) -> LicenseCleanupPolicySpec {
    let mut spec = policy(simulator);
    spec.dry_run = true;
    spec
}

/// [`policy`] with 14 days' notice, mailing users and an administrator through the Secret `smtp`.
pub fn notice_policy(simulator: &Simulator) -> LicenseCleanupPolicySpec {
    let mut spec = policy(simulator);
    spec.notice.days = 14;
    spec.notify = Some(NotifySpec {
        email: Some(EmailSpec {
            smtp_secret_ref: SecretRef {
                name: "smtp".into(),
            },
            users: true,
            admins: vec!["qlik-admins@example.com".into()],
            templates: None,
        }),
        webhooks: Vec::new(),
    });
    spec
}

/// Sets the idle threshold of every seat type `spec` manages to `days`.
pub fn set_inactive_days(spec: &mut LicenseCleanupPolicySpec, days: u32) {
    for rule in [
        &mut spec.access_types.professional,
        &mut spec.access_types.analyzer,
    ]
    .into_iter()
    .flatten()
    {
        rule.inactive_days = days;
    }
}

/// `spec.leavers` for users removed from the directory or blocked (not merely inactive), `after_days` after their
/// last use.
pub fn removed_or_blocked_leavers(after_days: u32) -> Option<LeaversSpec> {
    Some(LeaversSpec {
        removed_externally: true,
        blocked: true,
        inactive: false,
        after_days,
    })
}

pub fn proxy_policy(simulator: &Simulator, prefix: &str) -> LicenseCleanupPolicySpec {
    let mut spec = policy(simulator);
    spec.site.repository_url = None;
    spec.site.proxy = Some(ProxySpec {
        qps_url: simulator.qps_url().expect("proxy listeners"),
        hub_url: simulator.hub_url().expect("proxy listeners"),
        virtual_proxy_prefix: prefix.into(),
        session_cookie_name: None,
    });
    spec
}

pub fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        attempts: 4,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
    }
}

pub async fn run_policy(
    simulator: &Simulator,
    spec: &LicenseCleanupPolicySpec,
    credentials: &Credentials,
) -> RunReport {
    run_policy_with(simulator, spec, credentials, None, fast_retries()).await
}

/// One run of `spec` on the simulator with the site's credentials, a brake the test works, and `retry`.
pub async fn run_braked(
    simulator: &Simulator,
    spec: &LicenseCleanupPolicySpec,
    brake: qlik_license_reclaimer::brake::Brake,
    retry: RetryPolicy,
) -> RunReport {
    let credentials = credentials(simulator);
    run_policy_with(simulator, spec, &credentials, Some(brake), retry).await
}

async fn run_policy_with(
    simulator: &Simulator,
    spec: &LicenseCleanupPolicySpec,
    credentials: &Credentials,
    brake: Option<qlik_license_reclaimer::brake::Brake>,
    retry: RetryPolicy,
) -> RunReport {
    let policy = policy::validate(spec, &Default::default()).expect("a valid policy");
    let context = RunContext {
        brake,
        retry: Some(retry),
        ..run_context(credentials, simulator.now())
    };
    run::execute(&policy, context).await
}

/// The context of a run at `now` with `credentials` and [`fast_retries`]: no observer, brake, earlier reclaims
/// or notices.
pub fn run_context(credentials: &Credentials, now: Timestamp) -> RunContext<'_> {
    RunContext {
        retry: Some(fast_retries()),
        ..RunContext::new(credentials, now)
    }
}

/// What `report` says of the seat of `user` (`DIRECTORY\user`), if it lists one.
pub fn decision_about<'a>(report: &'a RunReport, user: &str) -> Option<&'a Entry> {
    report.decisions.iter().find(|e| e.user == user)
}

/// `(DIRECTORY\user, type)` of every deletion the simulator recorded, sorted.
pub fn deleted(simulator: &Simulator) -> Vec<(String, SimAccessType)> {
    let mut out: Vec<_> = simulator
        .deletions()
        .into_iter()
        .map(|d| {
            (
                format!("{}\\{}", d.user_directory, d.user_id),
                d.access_type,
            )
        })
        .collect();
    out.sort();
    out
}

pub fn expected_reclaims() -> Vec<(String, SimAccessType)> {
    let mut out: Vec<_> = EXPECTED_RECLAIMS
        .iter()
        .map(|(u, t)| (u.to_string(), *t))
        .collect();
    out.sort();
    out
}

/// How a run of the binary ended.
pub struct Exited {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Run the binary with `args` off the async runtime, so that a simulator in this process keeps serving.
pub async fn reclaimer(args: Vec<String>) -> Exited {
    tokio::task::spawn_blocking(move || {
        let output = assert_cmd::Command::cargo_bin("qlik-license-reclaimer")
            .expect("binary built")
            .args(&args)
            .env("RUST_LOG", "warn")
            .output()
            .expect("binary runs");
        Exited {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    })
    .await
    .expect("join")
}
