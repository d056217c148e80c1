//! `demo`: the first thing a newcomer runs. A simulated site, a sensible dry-run policy, and the report.

use std::fmt::Write as _;

use crate::credentials::Credentials;
use crate::policy::{
    self, AccessTypeRule, AccessTypesSpec, CustomPropertyMatch, ExcludeSpec,
    LicenseCleanupPolicySpec, LimitsSpec, Permissions, ProfessionalToAnalyzerSpec, QlikUserSpec,
    RedundantSpec, RightSizeSpec, ScopeSpec, SecretRef, SiteSpec, TlsSpec,
};
use crate::run::{self, RunContext, RunReport};
use qrs_simulator::{Simulator, SimulatorConfig};

pub struct DemoOptions {
    pub users: usize,
    pub seed: u64,
}

pub struct DemoOutcome {
    /// What the demo is, shown before the report.
    pub introduction: String,
    pub report: RunReport,
    /// Where to go from here, shown after the report.
    pub next_steps: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot start the QRS simulator: {0}")]
    Simulator(String),
    #[error("the demo's own policy or credentials are invalid: {0}")]
    Invalid(String),
}

/// The window the demo right-sizes with (`spec.rightSize.professionalToAnalyzer.afterDays`): a year, so that on
/// the smallest demo sites the moves and the idle seats together stay under the breaker, which counts both.
const DEMO_RIGHT_SIZE_DAYS: u32 = 365;

/// The policy the demo runs: what a careful administrator would start with.
pub fn demo_policy(repository_url: String, server_name: String) -> LicenseCleanupPolicySpec {
    LicenseCleanupPolicySpec {
        right_size: None,
        schedule: "0 3 * * *".into(),
        time_zone: "UTC".into(),
        suspend: false,
        dry_run: true,
        starting_deadline_seconds: 3600,
        site: SiteSpec {
            repository_url: Some(repository_url),
            proxy: None,
            user: QlikUserSpec::default(),
            credentials_secret_ref: SecretRef {
                name: "qlik-client-certificate".into(),
            },
            tls: TlsSpec {
                server_name: Some(server_name),
                insecure_skip_verify: false,
            },
            request_timeout_seconds: 30,
            concurrency: 4,
            bulk: true,
        },
        access_types: AccessTypesSpec {
            professional: Some(AccessTypeRule { inactive_days: 30 }),
            analyzer: Some(AccessTypeRule { inactive_days: 30 }),
            // Token user passes are few on the synthetic site; a handful of them would trip the breaker.
            user: None,
        },
        never_used_grace_days: 14,
        scope: ScopeSpec::default(),
        exclude: ExcludeSpec {
            users: vec!["INTERNAL\\sa_*".into()],
            user_directories: vec![],
            tags: vec!["VIP".into()],
            custom_properties: vec![CustomPropertyMatch {
                name: "LicenseCleanup".into(),
                values: vec!["Exempt".into()],
            }],
            roles: vec!["RootAdmin".into()],
            ..ExcludeSpec::default()
        },
        leavers: None,
        redundant: RedundantSpec::default(),
        limits: LimitsSpec::default(),
        notice: Default::default(),
        notify: None,
        history_limit: 10,
    }
}

pub async fn run(options: &DemoOptions) -> Result<DemoOutcome, DemoError> {
    let config = SimulatorConfig {
        seed: options.seed,
        users: options.users,
        ..SimulatorConfig::default()
    };
    let server_name = config.server_name.clone();
    let simulator = Simulator::start(config)
        .await
        .map_err(|e| DemoError::Simulator(e.to_string()))?;
    let entries = simulator.pki().secret_entries();
    let credentials =
        Credentials::from_entries(&entries).map_err(|e| DemoError::Invalid(e.to_string()))?;
    let mut spec = demo_policy(simulator.repository_url(), server_name);
    // The demo shows right-sizing too: which Professional users only consume and would move to Analyzer.
    spec.right_size = Some(RightSizeSpec {
        professional_to_analyzer: Some(ProfessionalToAnalyzerSpec {
            after_days: DEMO_RIGHT_SIZE_DAYS,
        }),
    });

    let policy = policy::validate(&spec, &Permissions::default())
        .map_err(|e| DemoError::Invalid(e.to_string()))?;
    let context = RunContext {
        force_dry_run: true,
        ..RunContext::new(&credentials, simulator.now())
    };
    let report = run::execute(&policy, context).await;
    let requests = simulator.requests().len();
    simulator.shutdown().await;

    Ok(DemoOutcome {
        introduction: introduction(options, &spec),
        report,
        next_steps: next_steps(requests),
    })
}

/// What the demo is, shown before the report.
fn introduction(options: &DemoOptions, spec: &LicenseCleanupPolicySpec) -> String {
    let mut introduction = String::new();
    let _ = writeln!(
        introduction,
        "qlik-license-reclaimer demo: a simulated Qlik Sense site ({} users, seed {}) checked by a dry-run policy.",
        options.users, options.seed
    );
    let _ = writeln!(
        introduction,
        "Policy: reclaim professional and analyzer seats unused for 30 days,"
    );
    let _ = writeln!(
        introduction,
        "and never-used ones after a 14-day grace; never INTERNAL\\sa_* accounts, VIP-tagged users, LicenseCleanup=Exempt"
    );
    let _ = writeln!(
        introduction,
        "or RootAdmins; at most {} seats a run; abort if over {}% of a type would go.",
        spec.limits.max_reclaims_per_run, spec.limits.max_reclaim_percent
    );
    let _ = writeln!(
        introduction,
        "Right-sizing: Professional users who authored no app, sheet or master item in {DEMO_RIGHT_SIZE_DAYS} days would move to Analyzer."
    );
    let _ = writeln!(introduction);

    introduction
}

/// Where to go from here, shown after the report: and what the run cost.
fn next_steps(requests: usize) -> String {
    let mut next_steps = String::new();
    let _ = writeln!(next_steps);
    let _ = writeln!(
        next_steps,
        "The run cost {requests} requests to QRS, however many users the site has (try --users 20000)."
    );
    let _ = writeln!(next_steps, "Next:");
    let _ = writeln!(
        next_steps,
        "  qlik-license-reclaimer demo --output json    every decision, machine-readable"
    );
    let _ = writeln!(
        next_steps,
        "  qlik-license-reclaimer demo --output csv     the same, for a spreadsheet"
    );
    let _ = writeln!(
        next_steps,
        "  qlik-license-reclaimer run --policy deploy/examples/policy.yaml --credentials DIR   against your site"
    );
    next_steps
}
