//! The operator against the real API server: the generated CRD and `deploy/` RBAC installed, the controller
//! binary running under its ServiceAccount's identity, the QRS simulator standing in for Qlik.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::rbac::v1::RoleBinding;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DynamicObject, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client, ResourceExt};
use libtest_mimic::Failed;
use qlik_license_reclaimer::policy::{
    LicenseCleanupPolicy, LicenseCleanupPolicySpec, RunResult, RunStatus,
};
use qrs_simulator::Simulator;
use serde_json::json;

use crate::control_plane::ControlPlane;
use crate::support;
use crate::{TestResult, binding_for_user, create_namespace, register, run};

const OPERATOR_NAMESPACE: &str = "qlik-license-reclaimer";
pub const SERVICE_ACCOUNT_USER: &str =
    "system:serviceaccount:qlik-license-reclaimer:qlik-license-reclaimer";
pub const SERVICE_ACCOUNT_GROUPS: &[&str] = &[
    "system:serviceaccounts",
    "system:serviceaccounts:qlik-license-reclaimer",
];
const MANAGER: &str = "operator-tests";

fn repo_file(path: &str) -> String {
    let full = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// Apply every document of a manifest file with server-side apply, whatever its kind.
pub async fn apply_manifests(client: &Client, yaml: &str) -> Result<(), Failed> {
    let discovery = kube::Discovery::new(client.clone()).run().await?;
    for document in serde_yaml::Deserializer::from_str(yaml) {
        let value = <serde_json::Value as serde::Deserialize>::deserialize(document)?;
        if value.is_null() {
            continue;
        }
        let object: DynamicObject = serde_json::from_value(value.clone())?;
        let types = object
            .types
            .as_ref()
            .ok_or("a manifest without apiVersion/kind")?;
        let gvk = kube::core::GroupVersionKind::try_from(types)?;
        let (resource, capabilities) = discovery
            .resolve_gvk(&gvk)
            .ok_or_else(|| format!("unknown kind {gvk:?}"))?;
        let api: Api<DynamicObject> = match (capabilities.scope, object.namespace()) {
            (kube::discovery::Scope::Namespaced, Some(ns)) => {
                Api::namespaced_with(client.clone(), &ns, &resource)
            }
            (kube::discovery::Scope::Namespaced, None) => {
                Api::default_namespaced_with(client.clone(), &resource)
            }
            (kube::discovery::Scope::Cluster, _) => Api::all_with(client.clone(), &resource),
        };
        api.patch(
            &object.name_any(),
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&value),
        )
        .await?;
    }
    Ok(())
}

/// Applies the CustomResourceDefinitions of `yaml` ([`apply_manifests`]) and waits, up to 30 s each, until those
/// named `names` are established.
pub async fn apply_crds(client: &Client, yaml: &str, names: &[&str]) -> Result<(), Failed> {
    apply_manifests(client, yaml).await?;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for name in names {
        tokio::time::timeout(
            Duration::from_secs(30),
            await_condition(crds.clone(), name, conditions::is_crd_established()),
        )
        .await
        .map_err(|_| format!("CRD {name} not established"))??;
    }
    Ok(())
}

/// The CRD printed by the program, and deploy/'s namespace and RBAC, once for all tests.
pub fn ensure_installed(cp: &ControlPlane) -> TestResult {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            cp.block_on(async {
                let admin = cp.admin_client();
                let names = [
                    "licensecleanuppolicies.licensing.reclaimer.dev",
                    "licensecleanupruns.licensing.reclaimer.dev",
                ];
                apply_crds(&admin, &repo_file("deploy/crd.yaml"), &names)
                    .await
                    .map_err(|e| format!("CRD: {e:?}"))?;
                apply_manifests(&admin, &repo_file("deploy/namespace.yaml"))
                    .await
                    .map_err(|e| format!("{e:?}"))?;
                apply_manifests(&admin, &repo_file("deploy/rbac.yaml"))
                    .await
                    .map_err(|e| format!("{e:?}"))?;
                Ok(())
            })
        })
        .clone()
        .map_err(Failed::from)
}

/// The operator's ServiceAccount, as the API server sees it.
pub fn operator_client(cp: &ControlPlane) -> Client {
    cp.client_for(SERVICE_ACCOUNT_USER, SERVICE_ACCOUNT_GROUPS)
}

/// A namespace for one test, with a Secret of the simulator's certificate and the RoleBinding that lets the
/// operator read Secrets there (deploy/examples/policy-namespace-rbac.yaml, in that namespace).
pub async fn policy_namespace(
    cp: &ControlPlane,
    prefix: &str,
    sim: &Simulator,
) -> Result<String, Failed> {
    let admin = cp.admin_client();
    let namespace = create_namespace(&admin, prefix).await?;
    let binding = repo_file("deploy/examples/policy-namespace-rbac.yaml")
        .replace("namespace: qlik-ops", &format!("namespace: {namespace}"));
    apply_manifests(&admin, &binding).await?;
    put_secret(&admin, &namespace, support::credential_entries(sim)).await?;
    Ok(namespace)
}

/// The admin client, a simulator with the known site, and a namespace set up for it ([`policy_namespace`]).
pub async fn known_site_namespace(
    cp: &ControlPlane,
    prefix: &str,
) -> Result<(Client, Simulator, String), Failed> {
    let sim = support::known_site().await;
    let namespace = policy_namespace(cp, prefix, &sim).await?;
    Ok((cp.admin_client(), sim, namespace))
}

/// [`known_site_namespace`] with the enforcing test policy ([`support::policy`]) created there as "site".
pub async fn known_site_policy(
    cp: &ControlPlane,
    prefix: &str,
) -> Result<(Client, Simulator, String), Failed> {
    let (admin, sim, namespace) = known_site_namespace(cp, prefix).await?;
    create_policy(&admin, &namespace, "site", support::policy(&sim)).await?;
    Ok((admin, sim, namespace))
}

/// A kubeconfig in `dir` for the operator's ServiceAccount, as a CronJob's pod has; its path.
pub fn operator_kubeconfig(cp: &ControlPlane, dir: &tempfile::TempDir) -> Result<PathBuf, Failed> {
    let kubeconfig = dir.path().join("kubeconfig");
    cp.write_kubeconfig(&kubeconfig, SERVICE_ACCOUNT_USER, SERVICE_ACCOUNT_GROUPS)?;
    Ok(kubeconfig)
}

/// The program with `args`, run to its end as the operator's ServiceAccount ([`operator_kubeconfig`]) off the
/// async runtime; its output.
pub async fn run_as_operator(
    cp: &ControlPlane,
    args: Vec<String>,
) -> Result<std::process::Output, Failed> {
    let dir = tempfile::tempdir()?;
    let kubeconfig = operator_kubeconfig(cp, &dir)?;
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_qlik-license-reclaimer"))
            .args(&args)
            .env("KUBECONFIG", &kubeconfig)
            .output()
    })
    .await??;
    Ok(output)
}

/// The admin client, a [`support::slow_site`] whose DELETEs each take `delete`, and a namespace set up for it
/// ([`policy_namespace`]).
pub async fn slow_site_namespace(
    cp: &ControlPlane,
    prefix: &str,
    delete: Duration,
) -> Result<(Client, Simulator, String), Failed> {
    let sim = support::slow_site(delete).await;
    let namespace = policy_namespace(cp, prefix, &sim).await?;
    Ok((cp.admin_client(), sim, namespace))
}

/// Applies the Secret `qlik` of the site's credentials, `entries`.
pub async fn put_secret(
    client: &Client,
    namespace: &str,
    entries: BTreeMap<String, Vec<u8>>,
) -> Result<(), Failed> {
    put_named_secret(client, namespace, "qlik", entries).await
}

/// Applies the Secret `name` with `entries` as its data.
pub async fn put_named_secret(
    client: &Client,
    namespace: &str,
    name: &str,
    entries: BTreeMap<String, Vec<u8>>,
) -> Result<(), Failed> {
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        data: Some(
            entries
                .into_iter()
                .map(|(k, v)| (k, ByteString(v)))
                .collect(),
        ),
        ..Secret::default()
    };
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    api.patch(
        name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&serde_json::to_value(&secret)?),
    )
    .await?;
    Ok(())
}

pub async fn create_policy(
    client: &Client,
    namespace: &str,
    name: &str,
    spec: LicenseCleanupPolicySpec,
) -> Result<(), Failed> {
    let api: Api<LicenseCleanupPolicy> = Api::namespaced(client.clone(), namespace);
    api.create(
        &PostParams::default(),
        &LicenseCleanupPolicy::new(name, spec),
    )
    .await?;
    Ok(())
}

/// Merges `spec` into the policy's spec, as `kubectl patch --type merge` would.
pub async fn patch_spec(
    client: &Client,
    namespace: &str,
    name: &str,
    spec: serde_json::Value,
) -> Result<(), Failed> {
    let api: Api<LicenseCleanupPolicy> = Api::namespaced(client.clone(), namespace);
    let patch = json!({ "spec": spec });
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

pub async fn run_now(
    client: &Client,
    namespace: &str,
    name: &str,
    value: &str,
) -> Result<(), Failed> {
    let api: Api<LicenseCleanupPolicy> = Api::namespaced(client.clone(), namespace);
    let patch = json!({"metadata": {"annotations": {"licensing.reclaimer.dev/run-now": value}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// Wait (event-driven, bounded) until the policy satisfies `condition`; returns it.
pub async fn wait_for(
    client: &Client,
    namespace: &str,
    name: &str,
    what: &str,
    condition: impl Fn(&LicenseCleanupPolicy) -> bool,
) -> Result<LicenseCleanupPolicy, Failed> {
    let api: Api<LicenseCleanupPolicy> = Api::namespaced(client.clone(), namespace);
    let found = tokio::time::timeout(
        Duration::from_secs(60),
        await_condition(
            api.clone(),
            name,
            move |p: Option<&LicenseCleanupPolicy>| p.is_some_and(&condition),
        ),
    )
    .await;
    match found {
        Ok(Ok(Some(policy))) => Ok(policy),
        Ok(Ok(None)) => Err(format!("{namespace}/{name} vanished while waiting for {what}").into()),
        Ok(Err(e)) => Err(format!("watch failed while waiting for {what}: {e}").into()),
        Err(_) => {
            let now = api.get(name).await.ok().and_then(|p| p.status);
            Err(format!("timed out waiting for {what}; status: {now:?}").into())
        }
    }
}

/// Asks for a run of the policy `name` with the run-now annotation `value`, and waits (as [`wait_for`], for
/// `what`) until its status shows a run other than the one it showed before; the policy then.
pub async fn next_run(
    client: &Client,
    namespace: &str,
    name: &str,
    value: &str,
    what: &str,
) -> Result<LicenseCleanupPolicy, Failed> {
    let api: Api<LicenseCleanupPolicy> = Api::namespaced(client.clone(), namespace);
    let before = last_run_id(&api.get(name).await?);
    run_now(client, namespace, name, value).await?;
    wait_for(client, namespace, name, what, |p| {
        last_run_id(p).is_some() && last_run_id(p) != before
    })
    .await
}

/// The run the policy `name` shows as its last in its status now, if any.
pub async fn last_run_now(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Option<RunStatus>, Failed> {
    let api: Api<LicenseCleanupPolicy> = Api::namespaced(client.clone(), namespace);
    Ok(api.get(name).await?.status.and_then(|s| s.last_run))
}

pub fn last_run_id(p: &LicenseCleanupPolicy) -> Option<String> {
    p.status
        .as_ref()
        .and_then(|s| s.last_run.as_ref())
        .map(|r| r.header.id.clone())
}

/// The Ready condition's message, or "".
pub fn ready_message(p: &LicenseCleanupPolicy) -> String {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

pub fn condition(p: &LicenseCleanupPolicy, type_: &str) -> Option<(String, String)> {
    p.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

/// Creates the policy `name`, a dry run of the known site ([`support::dry_run_policy`]), naming the Secret `secret`
/// for its credentials, which the test has not created (yet).
pub async fn create_policy_without_its_secret(
    client: &Client,
    namespace: &str,
    (name, secret): (&str, &str),
    sim: &Simulator,
) -> Result<(), Failed> {
    let mut spec = support::dry_run_policy(sim);
    spec.site.credentials_secret_ref.name = secret.into();
    create_policy(client, namespace, name, spec).await
}

/// Waits (as [`wait_for`]) until the policy `name`'s condition `type_` has this status and reason; the policy then.
pub async fn wait_for_condition(
    client: &Client,
    namespace: &str,
    name: &str,
    type_: &str,
    (status, reason): (&str, &str),
) -> Result<LicenseCleanupPolicy, Failed> {
    let what = format!("{type_}={status} ({reason})");
    let wanted = Some((status.to_string(), reason.to_string()));
    wait_for(client, namespace, name, &what, |p| {
        condition(p, type_) == wanted
    })
    .await
}

/// The controller binary, run as the operator's ServiceAccount, logging to a file shown on failure.
pub struct ControllerProcess {
    child: Option<Child>,
    pub metrics_port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl ControllerProcess {
    pub fn start(cp: &ControlPlane, namespace: &str, extra: &[&str]) -> Result<Self, Failed> {
        let mut args = vec!["controller", "--namespace", namespace];
        args.extend_from_slice(extra);
        Self::start_as(cp, SERVICE_ACCOUNT_USER, SERVICE_ACCOUNT_GROUPS, &args, &[])
    }

    /// The binary with exactly `args` (from `controller` on) plus a free loopback `--metrics-addr`, as `user`
    /// in `groups`, with `env` added (a Deployment's `POD_NAMESPACE`, say).
    pub fn start_as(
        cp: &ControlPlane,
        user: &str,
        groups: &[&str],
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Self, Failed> {
        Self::start_through(cp, None, user, groups, args, env)
    }

    /// [`ControllerProcess::start_as`], reaching the API server at `server` (a proxy, say) when given.
    pub fn start_through(
        cp: &ControlPlane,
        server: Option<&str>,
        user: &str,
        groups: &[&str],
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Self, Failed> {
        let dir = tempfile::tempdir()?;
        let kubeconfig = dir.path().join("kubeconfig");
        let mut config = cp.kubeconfig(user, groups)?;
        if let Some(server) = server {
            for cluster in &mut config.clusters {
                if let Some(c) = cluster.cluster.as_mut() {
                    c.server = Some(server.to_string());
                }
            }
        }
        std::fs::write(&kubeconfig, serde_yaml::to_string(&config)?)?;
        let metrics_port = free_port()?;
        let log = dir.path().join("controller.log");
        let stderr = std::fs::File::create(&log)?;
        // QLR_CONTROLLER_BIN runs another build (say, the release binary) through the same tests, to measure it.
        let binary = std::env::var_os("QLR_CONTROLLER_BIN")
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_qlik-license-reclaimer").into());
        let child = Command::new(binary)
            .args(args)
            .args(["--metrics-addr", &format!("127.0.0.1:{metrics_port}")])
            .envs(env.iter().copied())
            .env("KUBECONFIG", &kubeconfig)
            .env("RUST_LOG", "info,kube=warn")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()?;
        Ok(Self {
            child: Some(child),
            metrics_port,
            log,
            _dir: dir,
        })
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// SIGTERM, then wait for the exit status.
    pub async fn terminate(&mut self) -> Result<i32, Failed> {
        let mut child = self.child.take().ok_or("already stopped")?;
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let status = tokio::task::spawn_blocking(move || child.wait()).await??;
        Ok(status.code().unwrap_or(-1))
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub async fn metrics(&self) -> Result<String, Failed> {
        http_get(self.metrics_port, "/metrics").await
    }
}

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("controller log:\n{}", self.log());
        }
    }
}

fn free_port() -> Result<u16, Failed> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A plain HTTP GET on loopback (the metrics endpoint).
pub async fn http_get(port: u16, path: &str) -> Result<String, Failed> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    if !response.starts_with("HTTP/1.1 200") {
        return Err(format!(
            "GET {path}: {}",
            response.lines().next().unwrap_or_default()
        )
        .into());
    }
    Ok(response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default())
}

/// Wait until the metrics endpoint answers (the process has started).
pub async fn wait_metrics_up(controller: &ControllerProcess) -> Result<(), Failed> {
    for _ in 0..200 {
        if http_get(controller.metrics_port, "/readyz").await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!("controller did not start; log:\n{}", controller.log()).into())
}

pub async fn events_for(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Vec<Event>, Failed> {
    let api: Api<Event> = Api::namespaced(client.clone(), namespace);
    let all = api.list(&ListParams::default()).await?;
    Ok(all
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .collect())
}

// ---------------------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------------------

fn crd_admission_accepts_valid_and_rejects_invalid(cp: &ControlPlane) -> TestResult {
    ensure_installed(cp)?;
    run(cp, async {
        let admin = cp.admin_client();
        let namespace = create_namespace(&admin, "admission").await?;
        let api: Api<LicenseCleanupPolicy> = Api::namespaced(admin.clone(), &namespace);
        let valid = json!({
            "apiVersion": "licensing.reclaimer.dev/v1alpha1", "kind": "LicenseCleanupPolicy",
            "metadata": {"name": "ok"},
            "spec": {"schedule": "0 3 * * *", "site": {"repositoryUrl": "https://qlik:4242",
                     "credentialsSecretRef": {"name": "qlik"}},
                     "accessTypes": {"professional": {"inactiveDays": 30}}}
        });
        let created = api
            .create(
                &PostParams::default(),
                &serde_json::from_value(valid.clone())?,
            )
            .await?;
        // Defaults are filled in by the API server: dry run first.
        if !created.spec.dry_run
            || created.spec.limits.max_reclaim_percent != 50
            || created.spec.site.concurrency != 4
        {
            return Err(format!("defaults not applied: {:?}", created.spec).into());
        }

        let cases: Vec<(&str, serde_json::Value, &str)> = vec![
            (
                "both-routes",
                json!({"site": {"repositoryUrl": "https://q:4242", "proxy": {"qpsUrl": "https://q:4243", "hubUrl": "https://q"}, "credentialsSecretRef": {"name": "qlik"}}}),
                "exactly one of site.repositoryUrl",
            ),
            (
                "no-route",
                json!({"site": {"credentialsSecretRef": {"name": "qlik"}}}),
                "exactly one of site.repositoryUrl",
            ),
            (
                "too-parallel",
                json!({"site": {"repositoryUrl": "https://q:4242", "credentialsSecretRef": {"name": "qlik"}, "concurrency": 64}}),
                "concurrency",
            ),
            (
                "quarantine-days",
                json!({"accessTypes": {"analyzer": {"inactiveDays": 3}}}),
                "inactiveDays",
            ),
            (
                "bad-schedule",
                json!({"schedule": "every day"}),
                "schedule must be",
            ),
            (
                "no-types",
                json!({"accessTypes": {}}),
                "at least one of accessTypes",
            ),
            (
                "http",
                json!({"site": {"repositoryUrl": "http://q:4242", "credentialsSecretRef": {"name": "qlik"}}}),
                "https",
            ),
            (
                "percent",
                json!({"limits": {"maxReclaimPercent": 150}}),
                "maxReclaimPercent",
            ),
        ];
        for (name, change, expected) in cases {
            let mut object = valid.clone();
            object["metadata"]["name"] = json!(name);
            for (k, v) in change.as_object().ok_or("object")? {
                object["spec"][k] = v.clone();
            }
            let dynamic: DynamicObject = serde_json::from_value(object)?;
            let raw: Api<DynamicObject> = Api::namespaced_with(
                admin.clone(),
                &namespace,
                &kube::core::ApiResource::erase::<LicenseCleanupPolicy>(&()),
            );
            match raw.create(&PostParams::default(), &dynamic).await {
                Err(kube::Error::Api(status)) if status.code == 422 => {
                    if !status.message.contains(expected) {
                        return Err(format!(
                            "{name}: rejected, but the message lacks {expected:?}: {}",
                            status.message
                        )
                        .into());
                    }
                }
                other => return Err(format!("{name}: expected 422, got {other:?}").into()),
            }
        }
        Ok(())
    })
}
register!(crd_admission_accepts_valid_and_rejects_invalid);

fn dry_run_on_run_now_writes_status_events_and_metrics(cp: &ControlPlane) -> TestResult {
    ensure_installed(cp)?;
    run(cp, async {
        let (admin, sim, namespace) = known_site_namespace(cp, "dry-run").await?;
        let mut spec = support::dry_run_policy(&sim);
        spec.history_limit = 2;
        create_policy(&admin, &namespace, "site", spec).await?;
        let controller = ControllerProcess::start(cp, &namespace, &[])?;

        // Before any run: valid, scheduled, with the next instant in status.
        let policy = wait_for(&admin, &namespace, "site", "Ready=True", |p| {
            condition(p, "Ready").is_some_and(|(s, _)| s == "True")
                && p.status
                    .as_ref()
                    .is_some_and(|s| s.next_schedule_time.is_some())
        })
        .await?;
        if last_run_id(&policy).is_some() {
            return Err("ran before its schedule or a run-now".into());
        }

        let policy = next_run(&admin, &namespace, "site", "1", "a run").await?;
        let status = policy.status.clone().ok_or("no status")?;
        let last = status.last_run.clone().ok_or("no lastRun")?;
        if last.header.result != RunResult::Succeeded
            || !last.header.dry_run
            || last.header.totals.reclaimed != 2
        {
            return Err(format!("unexpected lastRun: {last:?}\n{}", controller.log()).into());
        }
        let users: Vec<_> = last.reclaimed.iter().map(|r| r.user.as_str()).collect();
        if users != ["CORP\\alice", "CORP\\carol"] {
            return Err(format!("lastRun.reclaimed: {users:?}").into());
        }
        if !sim.deletions().is_empty() {
            return Err("a dry run deleted seats".into());
        }
        if status.last_run_now.as_deref() != Some("1")
            || status.last_schedule_time.is_none()
            || status.last_successful_time.is_none()
        {
            return Err(format!("status times or run-now not recorded: {status:?}").into());
        }
        if status.history.len() != 1
            || last
                .header
                .per_access_type
                .get("professional")
                .map(|c| c.allocated)
                != Some(8)
        {
            return Err(format!("history or counts: {status:?}").into());
        }
        if condition(&policy, "Ready") != Some(("True".into(), "DryRunSucceeded".into())) {
            return Err(format!("Ready: {:?}", condition(&policy, "Ready")).into());
        }

        // The same annotation value does not run again; a new one does, and history stays bounded.
        let mut policy = policy;
        for value in ["2", "3"] {
            policy = next_run(&admin, &namespace, "site", value, "another run").await?;
        }
        let history = policy.status.map(|s| s.history.len()).unwrap_or_default();
        if history != 2 {
            return Err(format!("history should hold historyLimit=2 runs, holds {history}").into());
        }

        let events = events_for(&admin, &namespace, "site").await?;
        let reasons: Vec<_> = events
            .iter()
            .map(|e| e.reason.clone().unwrap_or_default())
            .collect();
        let note = events
            .iter()
            .find(|e| e.reason.as_deref() == Some("DryRunSucceeded"))
            .and_then(|e| e.note.clone())
            .ok_or_else(|| format!("no DryRunSucceeded event among {reasons:?}"))?;
        if !note.contains("CORP\\alice") {
            return Err(format!("the Event should name who would be reclaimed: {note}").into());
        }

        let metrics = controller.metrics().await?;
        for expected in [
            format!(
                "qlik_reclaimer_runs_total{{namespace=\"{namespace}\",policy=\"site\",result=\"Succeeded\"}} 3"
            ),
            format!(
                "qlik_reclaimer_reclaimed_total{{namespace=\"{namespace}\",policy=\"site\",access_type=\"professional\",dry_run=\"true\",reason=\"idle\"}} 3"
            ),
            format!(
                "qlik_reclaimer_candidates{{namespace=\"{namespace}\",policy=\"site\",access_type=\"analyzer\"}} 1"
            ),
            "qlik_reclaimer_next_run_timestamp_seconds{".to_string(),
            "qlik_reclaimer_last_success_timestamp_seconds{".to_string(),
            "qlik_reclaimer_qrs_requests_total{".to_string(),
            "qlik_reclaimer_run_duration_seconds_bucket{".to_string(),
        ] {
            if !metrics.contains(&expected) {
                return Err(format!("metrics lack {expected}:\n{metrics}").into());
            }
        }
        http_get(controller.metrics_port, "/healthz").await?;
        // For the record (targets are checked by benchmarks, not here): resident memory after three runs.
        let proc_status = std::fs::read_to_string(format!("/proc/{}/status", controller.pid()));
        if let Some(rss) = proc_status
            .ok()
            .as_deref()
            .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")))
        {
            eprintln!("controller after three runs: {rss}");
        }
        Ok(())
    })
}
register!(dry_run_on_run_now_writes_status_events_and_metrics);

fn enforcing_deletes_exactly_the_planned_seats(cp: &ControlPlane) -> TestResult {
    ensure_installed(cp)?;
    run(cp, async {
        let (admin, sim, namespace) = known_site_policy(cp, "enforce").await?;
        let _controller = ControllerProcess::start(cp, &namespace, &[])?;
        let policy = next_run(&admin, &namespace, "site", "go", "a run").await?;
        let last = policy.status.and_then(|s| s.last_run).ok_or("no lastRun")?;
        if last.header.result != RunResult::Succeeded
            || last.header.dry_run
            || last.header.totals.reclaimed != 2
        {
            return Err(format!("unexpected lastRun: {last:?}").into());
        }
        if support::deleted(&sim) != support::expected_reclaims() {
            return Err(format!("deleted {:?}", support::deleted(&sim)).into());
        }
        let events = events_for(&admin, &namespace, "site").await?;
        if !events
            .iter()
            .any(|e| e.reason.as_deref() == Some("RunSucceeded"))
        {
            return Err("no RunSucceeded event".into());
        }
        Ok(())
    })
}
register!(enforcing_deletes_exactly_the_planned_seats);

fn secret_rotation_and_a_broken_secret(cp: &ControlPlane) -> TestResult {
    ensure_installed(cp)?;
    run(cp, async {
        let (admin, sim, namespace) = known_site_namespace(cp, "secret").await?;
        let spec = support::dry_run_policy(&sim);
        create_policy(&admin, &namespace, "site", spec.clone()).await?;
        // A second policy whose Secret is missing must not stop the first.
        let mut orphan = spec.clone();
        orphan.site.credentials_secret_ref.name = "missing".into();
        create_policy(&admin, &namespace, "orphan", orphan).await?;
        let _controller = ControllerProcess::start(cp, &namespace, &[])?;

        run_now(&admin, &namespace, "orphan", "1").await?;
        let orphan = wait_for_condition(
            &admin,
            &namespace,
            "orphan",
            "Ready",
            ("False", "SecretNotFound"),
        )
        .await?;
        let message = ready_message(&orphan);
        if !message.contains("kubectl") || !message.contains("missing") {
            return Err(format!("the message should say how to fix it: {message}").into());
        }
        let warnings = events_for(&admin, &namespace, "orphan").await?;
        if !warnings.iter().any(|e| {
            e.type_.as_deref() == Some("Warning") && e.reason.as_deref() == Some("SecretNotFound")
        }) {
            return Err("no Warning event for the missing Secret".into());
        }

        // Rotation between two runs of the running controller: each run uses the Secret as it is then.
        let keys_sent = |sim: &Simulator| {
            sim.requests()
                .iter()
                .filter_map(|r| r.query_param("xrfkey").map(str::to_string))
                .collect::<std::collections::BTreeSet<_>>()
        };
        // Run now and wait for that run's own outcome.
        let run_and_wait = |value: &'static str| {
            let admin = admin.clone();
            let namespace = namespace.clone();
            async move {
                let before = Api::<LicenseCleanupPolicy>::namespaced(admin.clone(), &namespace)
                    .get("site")
                    .await?;
                let previous = last_run_id(&before);
                run_now(&admin, &namespace, "site", value).await?;
                wait_for(&admin, &namespace, "site", "the run's outcome", move |p| {
                    last_run_id(p).is_some()
                        && last_run_id(p) != previous
                        && p.status
                            .as_ref()
                            .is_some_and(|s| s.last_run_now.as_deref() == Some(value))
                })
                .await
            }
        };
        let mut entries = support::credential_entries(&sim);
        entries.insert("xrfkey".into(), b"FirstKey00000001".to_vec());
        put_secret(&admin, &namespace, entries).await?;
        sim.clear_records();
        run_and_wait("0").await?;
        if keys_sent(&sim) != ["FirstKey00000001".to_string()].into() {
            return Err(format!("the first run sent {:?}", keys_sent(&sim)).into());
        }
        let mut entries = support::credential_entries(&sim);
        entries.insert("xrfkey".into(), b"Rotated000000001".to_vec());
        put_secret(&admin, &namespace, entries).await?;
        sim.clear_records();
        run_and_wait("1").await?;
        if keys_sent(&sim) != ["Rotated000000001".to_string()].into() {
            return Err(format!(
                "the rotated xrfkey was not used alone: {:?}",
                keys_sent(&sim)
            )
            .into());
        }

        // The client certificate rotated to one Qlik does not trust: the next run presents it (and fails the
        // handshake); the broken and fixed Secrets below show the way back. No restart in between.
        let mut entries = support::credential_entries(&sim);
        entries.insert(
            "client.pem".into(),
            sim.pki().wrong_client_pem.clone().into_bytes(),
        );
        entries.insert(
            "client_key.pem".into(),
            sim.pki().wrong_client_key_pem.clone().into_bytes(),
        );
        put_secret(&admin, &namespace, entries).await?;
        let refused = run_and_wait("1b").await?;
        let last = refused
            .status
            .and_then(|s| s.last_run)
            .ok_or("no last run")?;
        if last.header.result != RunResult::Failed {
            return Err(
                format!("a certificate Qlik does not trust must fail the run: {last:?}").into(),
            );
        }

        // A broken key in the Secret: Ready=False with the key named, and nothing sent.
        let mut broken = support::credential_entries(&sim);
        broken.insert(
            "client_key.pem".into(),
            b"-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n".to_vec(),
        );
        put_secret(&admin, &namespace, broken).await?;
        sim.clear_records();
        run_now(&admin, &namespace, "site", "2").await?;
        let site = wait_for(
            &admin,
            &namespace,
            "site",
            "Ready=False SecretInvalid",
            |p| condition(p, "Ready") == Some(("False".into(), "SecretInvalid".into())),
        )
        .await?;
        let message = ready_message(&site);
        if !message.contains("client_key.pem") {
            return Err(format!("the message should name the key: {message}").into());
        }
        if !sim.requests().is_empty() {
            return Err("a broken Secret must not reach Qlik".into());
        }

        // Fixed again: the next run succeeds.
        put_secret(&admin, &namespace, support::credential_entries(&sim)).await?;
        run_now(&admin, &namespace, "site", "3").await?;
        wait_for(&admin, &namespace, "site", "Ready=True again", |p| {
            condition(p, "Ready").is_some_and(|(s, _)| s == "True")
                && p.status
                    .as_ref()
                    .is_some_and(|s| s.last_run_now.as_deref() == Some("3"))
        })
        .await?;
        Ok(())
    })
}
register!(secret_rotation_and_a_broken_secret);

fn suspend_stops_runs_and_a_seconds_schedule_runs_on_time(cp: &ControlPlane) -> TestResult {
    ensure_installed(cp)?;
    run(cp, async {
        let (admin, sim, namespace) = known_site_namespace(cp, "schedule").await?;
        let mut spec = support::dry_run_policy(&sim);
        spec.schedule = "*/2 * * * * *".into();
        spec.history_limit = 10;
        create_policy(&admin, &namespace, "site", spec).await?;
        let _controller = ControllerProcess::start(cp, &namespace, &[])?;
        // Every two seconds: two runs arrive on their own.
        wait_for(&admin, &namespace, "site", "two scheduled runs", |p| {
            p.status.as_ref().is_some_and(|s| s.history.len() >= 2)
        })
        .await?;

        let api: Api<LicenseCleanupPolicy> = Api::namespaced(admin.clone(), &namespace);
        let patch = json!({"spec": {"suspend": true}, "metadata": {"annotations": {"licensing.reclaimer.dev/run-now": "while-suspended"}}});
        let patched = api
            .patch("site", &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        let generation = patched.metadata.generation;
        // Once the controller has seen the suspended generation and any run in flight has ended, nothing more runs.
        let seen = wait_for(
            &admin,
            &namespace,
            "site",
            "the suspended generation observed",
            |p| {
                p.status.as_ref().is_some_and(|s| {
                    s.observed_generation == generation && s.next_schedule_time.is_none()
                }) && condition(p, "Running").is_none_or(|(s, _)| s == "False")
            },
        )
        .await?;
        let runs = seen
            .status
            .as_ref()
            .map(|s| s.history.len())
            .unwrap_or_default();
        let before = last_run_id(&seen);
        // A new generation (a label-free spec change) forces a reconcile; it must still not run.
        let patch = json!({"spec": {"historyLimit": 9}});
        let patched = api
            .patch("site", &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        let generation = patched.metadata.generation;
        let after = wait_for(
            &admin,
            &namespace,
            "site",
            "the next generation observed",
            |p| {
                p.status
                    .as_ref()
                    .is_some_and(|s| s.observed_generation == generation)
            },
        )
        .await?;
        if last_run_id(&after) != before
            || after.status.as_ref().map(|s| s.history.len()) != Some(runs)
        {
            return Err("a suspended policy ran".into());
        }
        if after
            .status
            .as_ref()
            .and_then(|s| s.last_run_now.as_deref())
            == Some("while-suspended")
        {
            return Err("run-now must not run a suspended policy".into());
        }
        Ok(())
    })
}
register!(suspend_stops_runs_and_a_seconds_schedule_runs_on_time);

fn sigterm_lets_in_flight_deallocations_finish(cp: &ControlPlane) -> TestResult {
    ensure_installed(cp)?;
    run(cp, async {
        // Slow deletions, so that the run is surely in the middle of them when SIGTERM arrives.
        let (admin, sim, namespace) =
            slow_site_namespace(cp, "sigterm", Duration::from_millis(300)).await?;
        let mut spec = support::per_seat_policy(&sim);
        spec.limits.max_reclaim_percent = 100;
        spec.site.concurrency = 2;
        create_policy(&admin, &namespace, "site", spec).await?;
        let mut controller = ControllerProcess::start(cp, &namespace, &[])?;
        run_now(&admin, &namespace, "site", "1").await?;
        // Wait for the first deletion to be under way.
        let started = async {
            loop {
                if sim.requests().iter().any(|r| r.method == "DELETE")
                    || !sim.deletions().is_empty()
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(60), started)
            .await
            .map_err(|_| format!("no deletion started; log:\n{}", controller.log()))?;
        let code = controller.terminate().await?;
        if code != 0 {
            return Err(format!("exit code {code}; log:\n{}", controller.log()).into());
        }
        let last = last_run_now(&admin, &namespace, "site")
            .await?
            .ok_or("the stopped run left no status")?;
        // Counted as they arrive: a DELETE the controller dropped mid-way would be here and not among the
        // deletions.
        let deletes = sim.qrs_delete_arrivals() as u64;
        if last.header.totals.reclaimed == 0
            || last.header.totals.reclaimed >= last.header.totals.candidates.min(100)
        {
            return Err(format!("expected a partial run, got {last:?}").into());
        }
        if deletes != sim.deletions().len() as u64 || deletes != last.header.totals.reclaimed {
            return Err(format!("every DELETE started must finish and be recorded: {deletes} sent, {} done, {} in status", sim.deletions().len(), last.header.totals.reclaimed).into());
        }
        if !last.header.message.contains("stopped") {
            return Err(format!(
                "the status should say the run was stopped: {}",
                last.header.message
            )
            .into());
        }
        Ok(())
    })
}
register!(sigterm_lets_in_flight_deallocations_finish);

fn leader_election_fails_over(cp: &ControlPlane) -> TestResult {
    ensure_installed(cp)?;
    run(cp, async {
        let (admin, sim, namespace) = known_site_namespace(cp, "leader").await?;
        let spec = support::dry_run_policy(&sim);
        create_policy(&admin, &namespace, "site", spec).await?;
        let lease_name = format!("lease-{namespace}");
        let args = |identity: &'static str| {
            vec![
                "--leader-elect".to_string(),
                "--lease-name".into(),
                lease_name.clone(),
                "--lease-namespace".into(),
                OPERATOR_NAMESPACE.into(),
                "--identity".into(),
                identity.into(),
                "--lease-duration-seconds".into(),
                "3".into(),
            ]
        };
        let a_args = args("replica-a");
        let b_args = args("replica-b");
        let mut a = ControllerProcess::start(
            cp,
            &namespace,
            &a_args.iter().map(String::as_str).collect::<Vec<_>>(),
        )?;
        wait_metrics_up(&a).await?;
        let leases: Api<Lease> = Api::namespaced(admin.clone(), OPERATOR_NAMESPACE);
        let holder = |l: Option<&Lease>| {
            l.and_then(|l| l.spec.as_ref())
                .and_then(|s| s.holder_identity.clone())
                .unwrap_or_default()
        };
        tokio::time::timeout(
            Duration::from_secs(30),
            await_condition(leases.clone(), &lease_name, move |l: Option<&Lease>| {
                holder(l) == "replica-a"
            }),
        )
        .await
        .map_err(|_| format!("replica-a never became leader; log:\n{}", a.log()))??;
        let b = ControllerProcess::start(
            cp,
            &namespace,
            &b_args.iter().map(String::as_str).collect::<Vec<_>>(),
        )?;
        wait_metrics_up(&b).await?;

        // Every run reads each configured access type's count once: the number of runs that reached Qlik.
        let runs_seen = |sim: &Simulator| {
            sim.requests()
                .iter()
                .filter(|r| r.path.ends_with("/count"))
                .count()
                / 2
        };
        run_now(&admin, &namespace, "site", "1").await?;
        wait_for(&admin, &namespace, "site", "a run by the leader", |p| {
            last_run_id(p).is_some() && condition(p, "Running").is_some_and(|(s, _)| s == "False")
        })
        .await?;
        if b.log().contains("became leader") {
            return Err("the standby ran as leader while the leader lived".into());
        }
        if runs_seen(&sim) != 1 {
            return Err(format!(
                "one run-now value must reach Qlik once, not {} times; standby log:\n{}",
                runs_seen(&sim),
                b.log()
            )
            .into());
        }
        // Asked of the standby itself: it sent nothing to Qlik (its request counter has no series at all).
        let standby_silent = |metrics: &str| {
            !metrics
                .lines()
                .any(|l| l.starts_with("qlik_reclaimer_qrs_requests_total{"))
        };
        if standby_silent(&a.metrics().await?) {
            return Err("the leader's request counter is not where this test looks for it".into());
        }
        if !standby_silent(&b.metrics().await?) {
            return Err(
                format!("the standby sent requests to Qlik:\n{}", b.metrics().await?).into(),
            );
        }

        // A scheduled instant, a few seconds ahead (once a year): one run with two replicas, by the leader only.
        let at = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(6);
        let at = at.round(jiff::Unit::Second)?;
        let utc = at.to_zoned(jiff::tz::TimeZone::UTC);
        let once = format!(
            "{} {} {} {} {} *",
            utc.second(),
            utc.minute(),
            utc.hour(),
            utc.day(),
            utc.month()
        );
        patch_spec(
            &admin,
            &namespace,
            "site",
            serde_json::json!({"schedule": once, "timeZone": "UTC"}),
        )
        .await?;
        wait_for(&admin, &namespace, "site", "the scheduled run", |p| {
            p.status.as_ref().is_some_and(|s| {
                s.last_schedule_time.as_ref().is_some_and(|t| t.0 >= at) && s.active_run.is_none()
            }) && condition(p, "Running").is_some_and(|(s, _)| s == "False")
        })
        .await?;
        if runs_seen(&sim) != 2 || !standby_silent(&b.metrics().await?) {
            return Err(format!(
                "a scheduled instant must reach Qlik once, from the leader: {} runs in all; standby log:\n{}",
                runs_seen(&sim),
                b.log()
            )
            .into());
        }

        // The leader dies without releasing: the standby takes over within the lease duration.
        let killed_pid = a.pid();
        a.kill();
        tokio::time::timeout(
            Duration::from_secs(20),
            await_condition(leases.clone(), &lease_name, move |l: Option<&Lease>| {
                holder(l) == "replica-b"
            }),
        )
        .await
        .map_err(|_| {
            format!(
                "replica-b did not take over from {killed_pid}; log:\n{}",
                b.log()
            )
        })??;
        run_now(&admin, &namespace, "site", "2").await?;
        wait_for(&admin, &namespace, "site", "a run by the new leader", |p| {
            p.status
                .as_ref()
                .is_some_and(|s| s.last_run_now.as_deref() == Some("2") && s.last_run.is_some())
                && condition(p, "Running").is_some_and(|(s, _)| s == "False")
        })
        .await?;
        if runs_seen(&sim) != 3 {
            return Err(format!(
                "two run-now values and one scheduled instant, {} runs reached Qlik",
                runs_seen(&sim)
            )
            .into());
        }

        // SIGTERM releases the Lease at once, so that a standby need not wait out its duration.
        let mut b = b;
        let code = b.terminate().await?;
        if code != 0 {
            return Err(format!("replica-b exit {code}; log:\n{}", b.log()).into());
        }
        let lease = leases.get(&lease_name).await?;
        if holder(Some(&lease)) == "replica-b" {
            return Err(format!("replica-b still holds the Lease after SIGTERM: {lease:?}").into());
        }
        Ok(())
    })
}
register!(leader_election_fails_over);

fn run_policy_ref_writes_status(cp: &ControlPlane) -> TestResult {
    ensure_installed(cp)?;
    run(cp, async {
        let (admin, sim, namespace) = known_site_policy(cp, "cronjob").await?;
        let reference = format!("{namespace}/site");
        let args = [
            "run",
            "--policy-ref",
            &reference,
            "--dry-run",
            "--output",
            "json",
        ];
        let output = run_as_operator(cp, args.map(String::from).to_vec()).await?;
        if !output.status.success() {
            return Err(format!(
                "exit {:?}: {}",
                output.status.code(),
                String::from_utf8_lossy(&output.stderr)
            )
            .into());
        }
        let report: serde_json::Value = serde_json::from_slice(&output.stdout)?;
        if report["result"] != "Succeeded" || report["dryRun"] != true {
            return Err(format!("report: {report}").into());
        }
        if !sim.deletions().is_empty() {
            return Err("--dry-run deleted seats".into());
        }
        let last = last_run_now(&admin, &namespace, "site")
            .await?
            .ok_or("no status written")?;
        if last.header.result != RunResult::Succeeded || !last.header.dry_run {
            return Err(format!("status: {last:?}").into());
        }

        // A reference to nothing is invalid input.
        let missing = format!("{namespace}/nothing");
        let args = ["run", "--policy-ref", &missing];
        let output = run_as_operator(cp, args.map(String::from).to_vec()).await?;
        if output.status.code() != Some(2) {
            return Err(format!(
                "a missing policy should exit 2, got {:?}",
                output.status.code()
            )
            .into());
        }
        Ok(())
    })
}
register!(run_policy_ref_writes_status);

fn operator_rbac_is_least_privilege(cp: &ControlPlane) -> TestResult {
    ensure_installed(cp)?;
    run(cp, async {
        let admin = cp.admin_client();
        let operator = operator_client(cp);
        let namespace = create_namespace(&admin, "rbac").await?;
        // Without the per-namespace RoleBinding, Secrets there are out of reach.
        let secrets: Api<Secret> = Api::namespaced(operator.clone(), &namespace);
        match secrets.get("anything").await {
            Err(kube::Error::Api(s)) if s.code == 403 => {}
            other => return Err(format!("expected 403 reading a Secret, got {other:?}").into()),
        }
        match secrets.list(&ListParams::default()).await {
            Err(kube::Error::Api(s)) if s.code == 403 => {}
            other => return Err(format!("expected 403 listing Secrets, got {other:?}").into()),
        }
        // Policies may be read, not written or deleted.
        let policies: Api<LicenseCleanupPolicy> = Api::namespaced(operator.clone(), &namespace);
        policies.list(&ListParams::default()).await?;
        match policies.delete("anything", &Default::default()).await {
            Err(kube::Error::Api(s)) if s.code == 403 => {}
            other => return Err(format!("expected 403 deleting a policy, got {other:?}").into()),
        }
        let bindings: Api<RoleBinding> = Api::namespaced(operator, &namespace);
        let binding = binding_for_user(
            "escalate",
            ("ClusterRole", "cluster-admin"),
            SERVICE_ACCOUNT_USER,
        );
        match bindings.create(&PostParams::default(), &binding).await {
            Err(kube::Error::Api(s)) if s.code == 403 => Ok(()),
            other => Err(format!("expected 403 creating a RoleBinding, got {other:?}").into()),
        }
    })
}
register!(operator_rbac_is_least_privilege);

fn a_missed_run_runs_once_on_start_within_its_deadline(cp: &ControlPlane) -> TestResult {
    ensure_installed(cp)?;
    run(cp, async {
        let (admin, sim, namespace) = known_site_namespace(cp, "missed").await?;
        // One instant, three seconds from now, while no controller runs.
        let instant = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(3);
        let utc = instant.to_zoned(jiff::tz::TimeZone::UTC);
        let schedule = format!("{} {} {} * * *", utc.second(), utc.minute(), utc.hour());
        let mut spec = support::dry_run_policy(&sim);
        spec.schedule = schedule.clone();
        create_policy(&admin, &namespace, "within", spec.clone()).await?;
        spec.starting_deadline_seconds = 0;
        create_policy(&admin, &namespace, "too-late", spec).await?;
        // The controller is down while the instant passes (waiting for the clock is the scenario itself).
        let wait = (instant + jiff::SignedDuration::from_millis(1500))
            .duration_since(jiff::Timestamp::now());
        tokio::time::sleep(Duration::try_from(wait).unwrap_or_default()).await;

        let _controller = ControllerProcess::start(cp, &namespace, &[])?;
        let within = wait_for(&admin, &namespace, "within", "the missed run", |p| {
            last_run_id(p).is_some()
        })
        .await?;
        let status = within.status.ok_or("no status")?;
        let scheduled = status.last_schedule_time.map(|t| t.0.as_second());
        if scheduled != Some(instant.as_second()) {
            return Err(format!(
                "lastScheduleTime {scheduled:?}, expected the missed instant {}",
                instant.as_second()
            )
            .into());
        }
        if status.history.len() != 1 {
            return Err(format!(
                "exactly one catch-up run expected, got {}",
                status.history.len()
            )
            .into());
        }

        // Past its deadline: skipped, told once as a Warning, and nothing ran.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let events = events_for(&admin, &namespace, "too-late").await?;
            if events.iter().any(|e| {
                e.reason.as_deref() == Some("MissedRunSkipped")
                    && e.type_.as_deref() == Some("Warning")
            }) {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                return Err("no MissedRunSkipped event".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let late: LicenseCleanupPolicy = Api::namespaced(admin.clone(), &namespace)
            .get("too-late")
            .await?;
        if last_run_id(&late).is_some() {
            return Err("a run missed beyond startingDeadlineSeconds must not run".into());
        }
        Ok(())
    })
}
register!(a_missed_run_runs_once_on_start_within_its_deadline);

fn a_schedule_or_time_zone_that_cannot_be_used_is_reported(cp: &ControlPlane) -> TestResult {
    ensure_installed(cp)?;
    run(cp, async {
        let (admin, sim, namespace) = known_site_namespace(cp, "invalid").await?;
        let spec = support::dry_run_policy(&sim);
        // Both pass the API server's pattern checks; only the program can tell.
        let mut bad_hour = spec.clone();
        bad_hour.schedule = "0 25 * * *".into();
        create_policy(&admin, &namespace, "bad-hour", bad_hour).await?;
        let mut bad_zone = spec.clone();
        bad_zone.time_zone = "Mars/Olympus_Mons".into();
        create_policy(&admin, &namespace, "bad-zone", bad_zone).await?;
        create_policy(&admin, &namespace, "good", spec).await?;
        let _controller = ControllerProcess::start(cp, &namespace, &[])?;

        for (name, field) in [("bad-hour", "spec.schedule"), ("bad-zone", "spec.timeZone")] {
            let policy = wait_for(&admin, &namespace, name, "Ready=False InvalidPolicy", |p| {
                condition(p, "Ready") == Some(("False".into(), "InvalidPolicy".into()))
            })
            .await?;
            let message = ready_message(&policy);
            if !message.contains(field) {
                return Err(format!("{name}: the message should name {field}: {message}").into());
            }
            let events = events_for(&admin, &namespace, name).await?;
            if !events.iter().any(|e| {
                e.reason.as_deref() == Some("InvalidPolicy")
                    && e.type_.as_deref() == Some("Warning")
            }) {
                return Err(format!("{name}: no Warning event").into());
            }
        }
        // The valid policy beside them is unaffected.
        let good = next_run(&admin, &namespace, "good", "1", "a run").await?;
        if good
            .status
            .and_then(|s| s.last_run)
            .map(|r| r.header.result)
            != Some(RunResult::Succeeded)
        {
            return Err("the valid policy's run did not succeed".into());
        }
        Ok(())
    })
}
register!(a_schedule_or_time_zone_that_cannot_be_used_is_reported);

fn a_controller_watches_exactly_the_namespaces_it_is_given(cp: &ControlPlane) -> TestResult {
    ensure_installed(cp)?;
    run(cp, async {
        let admin = cp.admin_client();
        let sim = support::known_site().await;
        let spec = support::dry_run_policy(&sim);
        let mut namespaces = Vec::new();
        for prefix in ["watched-a", "watched-b", "unwatched"] {
            let namespace = policy_namespace(cp, prefix, &sim).await?;
            create_policy(&admin, &namespace, "site", spec.clone()).await?;
            namespaces.push(namespace);
        }
        let (a, b, other) = (&namespaces[0], &namespaces[1], &namespaces[2]);
        let controller = ControllerProcess::start_as(
            cp,
            SERVICE_ACCOUNT_USER,
            SERVICE_ACCOUNT_GROUPS,
            &["controller", "--namespace", a, "--namespace", b],
            &[],
        )?;
        for namespace in [a, b, other] {
            run_now(&admin, namespace, "site", "1").await?;
        }
        for namespace in [a, b] {
            wait_for(&admin, namespace, "site", "a run", |p| {
                last_run_id(p).is_some()
            })
            .await
            .map_err(|e| format!("{e:?}; log:\n{}", controller.log()))?;
        }
        let unwatched: LicenseCleanupPolicy =
            Api::namespaced(admin.clone(), other).get("site").await?;
        if unwatched.status.is_some() {
            return Err(format!(
                "a policy outside the given namespaces was touched: {:?}",
                unwatched.status
            )
            .into());
        }

        // A deleted policy's series go away (a stale policy_ready would keep alerting), at the next reconcile.
        let policies: Api<LicenseCleanupPolicy> = Api::namespaced(admin.clone(), a);
        policies.delete("site", &Default::default()).await?;
        run_now(&admin, b, "site", "2").await?;
        let series = format!("qlik_reclaimer_policy_ready{{namespace=\"{a}\"");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while controller.metrics().await?.contains(&series) {
            if tokio::time::Instant::now() > deadline {
                return Err("the deleted policy's metrics stayed".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    })
}
register!(a_controller_watches_exactly_the_namespaces_it_is_given);
