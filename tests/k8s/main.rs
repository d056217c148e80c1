//! Integration tests against a real Kubernetes control plane (etcd + kube-apiserver; see `control_plane.rs`).
//!
//! One control plane is started before the tests run and stopped after them, whatever their outcome. Tests
//! run in parallel against it, so each works in its own namespace and with its own user names.
//!
//! To add a test: write `fn name(cp: &ControlPlane) -> TestResult` (usually `run(cp, async { ... })`) and
//! add `name` to the `tests!` list below. `cargo test --test k8s -- NAME` runs the tests whose name
//! contains NAME; `KUBEBUILDER_ASSETS` selects prebuilt binaries (otherwise they are built once, see
//! `scripts/envtest-assets.sh`).

mod chart;
use chart::*;
mod control_plane;
mod operator;
use operator::*;
mod observability;
use observability::*;
#[allow(dead_code)]
#[path = "../e2e/support.rs"]
mod support;
mod trust;
use trust::*;

use std::future::Future;
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use kube::api::{ListParams, ObjectMeta, PostParams};
use kube::{Api, Client};
use libtest_mimic::{Arguments, Failed, Trial};

use control_plane::ControlPlane;

type TestResult = Result<(), Failed>;
type TestFn = fn(&ControlPlane) -> TestResult;

/// How long one test may take before it fails (tests are not otherwise interrupted).
const TEST_TIMEOUT: Duration = Duration::from_secs(120);

macro_rules! tests {
    ($($test:ident),* $(,)?) => {
        &[$((stringify!($test), $test as TestFn)),*]
    };
}

const TESTS: &[(&str, TestFn)] = tests![
    admin_lists_namespaces,
    user_without_rbac_is_forbidden_until_bound,
    client_certificate_carries_user_and_groups,
    kubeconfig_file_authenticates,
    crd_admission_accepts_valid_and_rejects_invalid,
    dry_run_on_run_now_writes_status_events_and_metrics,
    enforcing_deletes_exactly_the_planned_seats,
    secret_rotation_and_a_broken_secret,
    suspend_stops_runs_and_a_seconds_schedule_runs_on_time,
    sigterm_lets_in_flight_deallocations_finish,
    leader_election_fails_over,
    run_policy_ref_writes_status,
    a_switch_to_dry_run_mid_run_stops_its_deletions,
    run_policy_ref_honours_suspend_and_stops_on_sigterm,
    insecure_skip_verify_needs_the_operator_and_urls_are_origins,
    two_runners_never_run_a_policy_at_once,
    a_leader_cut_off_from_the_api_server_stops_before_another_takes_over,
    slow_clients_cannot_starve_the_probes,
    a_misspelt_field_kubectl_recorded_makes_the_policy_not_ready,
    two_hundred_policies_on_one_controller_all_run_within_memory,
    operator_rbac_is_least_privilege,
    a_missed_run_runs_once_on_start_within_its_deadline,
    a_schedule_or_time_zone_that_cannot_be_used_is_reported,
    a_controller_watches_exactly_the_namespaces_it_is_given,
    chart_readme_documents_every_value,
    deploy_is_in_step_with_the_chart,
    chart_lints_and_renders_every_option,
    chart_rbac_never_grants_secrets_cluster_wide,
    chart_installs_and_runs_a_policy_in_its_watch_namespace,
    chart_default_install_reads_secrets_only_in_listed_namespaces,
    chart_cronjob_mode_runs_a_policy_with_namespaced_rbac,
    the_binary_needs_no_os_time_zone_files,
    dashboard_has_every_panel_with_a_query,
    alerts_are_actionable_and_each_has_unit_tests,
    promtool_checks_and_unit_tests_the_alerts,
    dashboard_and_alerts_use_only_exported_metrics,
];

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let plane: Arc<OnceLock<Result<ControlPlane, String>>> = Arc::new(OnceLock::new());
    let trials: Vec<Trial> = TESTS
        .iter()
        .map(|&(name, test)| {
            let plane = Arc::clone(&plane);
            Trial::test(name, move || match plane.get() {
                Some(Ok(cp)) => test(cp),
                Some(Err(e)) => Err(format!(
                    "the control plane did not start: {} (details above)",
                    e.lines().next().unwrap_or_default()
                )
                .into()),
                None => Err("the control plane was not started".into()),
            })
        })
        .collect();

    // Start the plane (on this thread, which outlives it) unless no test will run.
    let any_test_runs = !args.list
        && trials
            .iter()
            .any(|t| !args.is_filtered_out(t) && !args.is_ignored(t));
    if any_test_runs {
        let started = Instant::now();
        let result = ControlPlane::start().map_err(|e| e.to_string());
        match &result {
            Ok(_) => eprintln!(
                "control plane: up in {:.1}s",
                started.elapsed().as_secs_f64()
            ),
            Err(e) => eprintln!("control plane: failed to start: {e}"),
        }
        let _ = plane.set(result);
    }

    let conclusion = libtest_mimic::run(&args, trials);
    // Every trial (and its handle on the plane) is gone now: stop the plane before exiting, since
    // `process::exit` would skip its destructor.
    if let Some(Ok(cp)) = Arc::into_inner(plane).and_then(OnceLock::into_inner) {
        cp.stop();
    }
    conclusion.exit_code()
}

/// Runs a test's async body on the shared runtime, failing it after [`TEST_TIMEOUT`].
fn run(cp: &ControlPlane, body: impl Future<Output = TestResult>) -> TestResult {
    cp.block_on(async {
        tokio::time::timeout(TEST_TIMEOUT, body)
            .await
            .unwrap_or_else(|_| Err(format!("timed out after {TEST_TIMEOUT:?}").into()))
    })
}

/// A new namespace with a server-generated name starting with `prefix`.
async fn create_namespace(client: &Client, prefix: &str) -> Result<String, Failed> {
    let namespace = Namespace {
        metadata: ObjectMeta {
            generate_name: Some(format!("{prefix}-")),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    let created = Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await?;
    created
        .metadata
        .name
        .ok_or_else(|| "created namespace has no name".into())
}

/// The user name and groups the apiserver sees for `client`.
async fn whoami(client: &Client) -> Result<(String, Vec<String>), Failed> {
    let review = Api::<SelfSubjectReview>::all(client.clone())
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await?;
    let user = review
        .status
        .and_then(|s| s.user_info)
        .ok_or("SelfSubjectReview without userInfo")?;
    Ok((
        user.username.unwrap_or_default(),
        user.groups.unwrap_or_default(),
    ))
}

fn admin_lists_namespaces(cp: &ControlPlane) -> TestResult {
    run(cp, async {
        let namespaces = Api::<Namespace>::all(cp.admin_client())
            .list(&ListParams::default())
            .await?;
        let names: Vec<_> = namespaces
            .iter()
            .filter_map(|n| n.metadata.name.as_deref())
            .collect();
        if !names.contains(&"default") {
            return Err(format!("no default namespace among {names:?}").into());
        }
        Ok(())
    })
}

fn user_without_rbac_is_forbidden_until_bound(cp: &ControlPlane) -> TestResult {
    run(cp, async {
        let admin = cp.admin_client();
        let namespace = create_namespace(&admin, "rbac-smoke").await?;
        let user = format!("reader-{namespace}");
        let secrets = Api::<Secret>::namespaced(cp.client_for(&user, &[]), &namespace);

        match secrets.list(&ListParams::default()).await {
            Err(kube::Error::Api(status)) if status.code == 403 => {}
            other => return Err(format!("expected 403 Forbidden, got {other:?}").into()),
        }

        let role = Role {
            metadata: ObjectMeta {
                name: Some("secret-reader".into()),
                ..ObjectMeta::default()
            },
            rules: Some(vec![PolicyRule {
                api_groups: Some(vec![String::new()]),
                resources: Some(vec!["secrets".into()]),
                verbs: vec!["get".into(), "list".into()],
                ..PolicyRule::default()
            }]),
        };
        Api::<Role>::namespaced(admin.clone(), &namespace)
            .create(&PostParams::default(), &role)
            .await?;
        let binding = RoleBinding {
            metadata: ObjectMeta {
                name: Some("secret-reader".into()),
                ..ObjectMeta::default()
            },
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".into(),
                kind: "Role".into(),
                name: "secret-reader".into(),
            },
            subjects: Some(vec![Subject {
                api_group: Some("rbac.authorization.k8s.io".into()),
                kind: "User".into(),
                name: user.clone(),
                ..Subject::default()
            }]),
        };
        Api::<RoleBinding>::namespaced(admin, &namespace)
            .create(&PostParams::default(), &binding)
            .await?;

        // The RBAC authorizer reads roles and bindings from an informer cache: allow it to catch up.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match secrets.list(&ListParams::default()).await {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(status))
                    if status.code == 403 && Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(format!("listing secrets after the RoleBinding: {e}").into()),
            }
        }
    })
}

fn client_certificate_carries_user_and_groups(cp: &ControlPlane) -> TestResult {
    run(cp, async {
        let (user, groups) = whoami(&cp.client_for("jane", &["team-a", "team-b"])).await?;
        if user != "jane" {
            return Err(format!("user {user:?}, expected \"jane\"").into());
        }
        for group in ["team-a", "team-b", "system:authenticated"] {
            if !groups.iter().any(|g| g == group) {
                return Err(format!("groups {groups:?} lack {group:?}").into());
            }
        }
        let (admin, admin_groups) = whoami(&cp.admin_client()).await?;
        if admin != "admin" || !admin_groups.iter().any(|g| g == "system:masters") {
            return Err(format!("admin client is {admin:?} in {admin_groups:?}").into());
        }
        Ok(())
    })
}

fn kubeconfig_file_authenticates(cp: &ControlPlane) -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("kubeconfig");
    cp.write_kubeconfig(&path, "operator", &["operators"])?;
    run(cp, async {
        let kubeconfig = kube::config::Kubeconfig::read_from(&path)?;
        let config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await?;
        let (user, groups) = whoami(&Client::try_from(config)?).await?;
        if user != "operator" || !groups.iter().any(|g| g == "operators") {
            return Err(format!("kubeconfig authenticates as {user:?} in {groups:?}").into());
        }
        Ok(())
    })
}
