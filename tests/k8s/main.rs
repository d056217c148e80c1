//! Integration tests against a real Kubernetes control plane (etcd + kube-apiserver; see `control_plane.rs`).
//!
//! One control plane is started before the tests run and stopped after them, whatever their outcome. Tests
//! run in parallel against it, so each works in its own namespace and with its own user names.
//!
//! To add a test: write `fn name(cp: &ControlPlane) -> TestResult` (usually `run(cp, async { ... })`) in the
//! file of its subject and `register!(name);` after it. `cargo test --test k8s -- NAME` runs the tests whose name
//! contains NAME; `KUBEBUILDER_ASSETS` selects prebuilt binaries (otherwise they are built once, see
//! `scripts/envtest-assets.sh`).

mod argocd;
mod brake;
mod chart;
mod control_plane;
mod flux;
mod image;
mod kubectl;
mod moves;
mod notice;
mod observability;
mod operator;
mod prometheus;
mod records;
mod release_binary;
#[allow(dead_code)]
#[path = "../support/mod.rs"]
mod support;
mod tools;
mod trust;

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

/// A test against the shared control plane. Each registers itself next to its definition with [`register!`].
struct K8sTest {
    name: &'static str,
    run: TestFn,
}

inventory::collect!(K8sTest);

/// Registers test functions `fn(&ControlPlane) -> TestResult`, by their names.
macro_rules! register {
    ($($test:ident),* $(,)?) => {
        $(inventory::submit! { $crate::K8sTest { name: stringify!($test), run: $test } })*
    };
}
pub(crate) use register;

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let plane: Arc<OnceLock<Result<ControlPlane, String>>> = Arc::new(OnceLock::new());
    let mut tests: Vec<&K8sTest> = inventory::iter::<K8sTest>.into_iter().collect();
    tests.sort_by_key(|t| t.name);
    let trials: Vec<Trial> = tests
        .into_iter()
        .map(|&K8sTest { name, run: test }| {
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

/// A RoleBinding named `name` granting `role` (kind and name) to the user `user`.
fn binding_for_user(name: &str, (kind, role): (&str, &str), user: &str) -> RoleBinding {
    RoleBinding {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: kind.into(),
            name: role.into(),
        },
        subjects: Some(vec![Subject {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "User".into(),
            name: user.into(),
            ..Subject::default()
        }]),
    }
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
register!(admin_lists_namespaces);

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
        let binding = binding_for_user("secret-reader", ("Role", "secret-reader"), &user);
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
register!(user_without_rbac_is_forbidden_until_bound);

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
register!(client_certificate_carries_user_and_groups);

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
register!(kubeconfig_file_authenticates);
