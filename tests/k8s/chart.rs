//! Packaging: the Helm chart (`charts/qlik-license-reclaimer`) and the plain manifests of `deploy/`.
//!
//! - helm is `helm.sh/helm/v3`'s `cmd/helm` from the Go module proxy, built once by `scripts/helm.sh` into
//!   `<target>/tools/` (`QLR_HELM` selects another helm binary). It lints and renders the chart with default values
//!   and with `ci/all-options-values.yaml`, and installs it on the test control plane, where the operator runs under
//!   the chart's ServiceAccount and RBAC.
//! - Before `helm install`, every rendered object goes through a server-side apply dry run with strict field
//!   validation, which refuses unknown fields (a plain create, as Helm's, drops them in silence).
//! - ServiceMonitor and PrometheusRule need the Prometheus Operator's CRDs, which are not part of a bare API server:
//!   the tests install small stand-ins with the real group, kinds and field names of what the chart sets, so those
//!   two objects are validated, installed and checked like the others.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DynamicObject, ListParams, Patch, PatchParams, ValidationDirective};
use kube::core::GroupVersionKind;
use kube::discovery::Scope;
use kube::runtime::wait::await_condition;
use kube::{Api, Client};
use libtest_mimic::Failed;
use qlik_license_reclaimer::policy::{LicenseCleanupPolicy, RunResult};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::control_plane::ControlPlane;
use crate::operator::{
    ControllerProcess, apply_crds, create_policy, ensure_installed, last_run_id, last_run_now,
    next_run, put_secret, run_now, wait_metrics_up,
};
use crate::support;
use crate::tools::{BINARY, describe, failed_saying, helm_binary, read, repo_path};
use crate::{TestResult, create_namespace, register, run};

/// The release name and namespace whose object names are those of `deploy/`.
const DEPLOY_NAME: &str = "qlik-license-reclaimer";

fn chart_dir() -> PathBuf {
    repo_path("charts/qlik-license-reclaimer")
}

/// Every non-empty document of a YAML stream, as JSON values.
fn yaml_docs(text: &str) -> Result<Vec<Value>, Failed> {
    let mut docs = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        let value = Value::deserialize(document)?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

/// Runs helm with its home, cache and configuration in a fresh temporary directory (nothing of the user's).
fn helm(args: &[&str]) -> Result<Output, Failed> {
    let bin = helm_binary()?;
    let home = tempfile::tempdir()?;
    let output = Command::new(&bin)
        .args(args)
        .env("HOME", home.path())
        .env("HELM_CACHE_HOME", home.path().join("cache"))
        .env("HELM_CONFIG_HOME", home.path().join("config"))
        .env("HELM_DATA_HOME", home.path().join("data"))
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running {}: {e}", bin.display()))?;
    Ok(output)
}

/// helm's stdout, or an error with its stderr.
fn helm_ok(args: &[&str]) -> Result<String, Failed> {
    let output = helm(args)?;
    if !output.status.success() {
        return Err(format!(
            "helm {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(String::from_utf8(output.stdout)?)
}

/// The arguments of `helm template|install RELEASE CHART -n NAMESPACE -f FILE... --set SET...`.
fn chart_args(
    command: &str,
    release: &str,
    namespace: &str,
    files: &[&Path],
    sets: &[&str],
) -> Vec<String> {
    let mut args = vec![
        command.to_string(),
        release.to_string(),
        chart_dir().display().to_string(),
        "--namespace".into(),
        namespace.into(),
    ];
    for file in files {
        args.extend(["--values".into(), file.display().to_string()]);
    }
    for set in sets {
        args.extend(["--set".into(), set.to_string()]);
    }
    args
}

/// The chart rendered by `helm template`, one JSON value per object.
fn template(
    release: &str,
    namespace: &str,
    files: &[&Path],
    sets: &[&str],
) -> Result<Vec<Value>, Failed> {
    let args = chart_args("template", release, namespace, files, sets);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    yaml_docs(&helm_ok(&args)?)
}

/// `helm template` must refuse these values; returns what it said.
fn template_refuses(sets: &[&str]) -> Result<String, Failed> {
    let args = chart_args("template", "r", "ops", &[], sets);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = helm(&args)?;
    if output.status.success() {
        return Err(format!("helm template accepted {sets:?}").into());
    }
    Ok(String::from_utf8_lossy(&output.stderr).into_owned())
}

fn all_options_values() -> PathBuf {
    chart_dir().join("ci/all-options-values.yaml")
}

// ---------------------------------------------------------------------------------------------------------
// Looking into rendered objects
// ---------------------------------------------------------------------------------------------------------

fn kind_of(object: &Value) -> &str {
    object["kind"].as_str().unwrap_or_default()
}

fn name_of(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}

fn namespace_of(object: &Value) -> &str {
    object["metadata"]["namespace"].as_str().unwrap_or_default()
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| kind_of(d) == kind).collect()
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> Result<&'a Value, Failed> {
    docs.iter()
        .find(|d| kind_of(d) == kind && name_of(d) == name)
        .ok_or_else(|| format!("no {kind} {name} among {:?}", keys(docs)).into())
}

fn only<'a>(docs: &'a [Value], kind: &str) -> Result<&'a Value, Failed> {
    match of_kind(docs, kind).as_slice() {
        [one] => Ok(one),
        other => Err(format!("expected one {kind}, found {}", other.len()).into()),
    }
}

/// (kind, namespace, name) of every object.
fn keys(docs: &[Value]) -> BTreeSet<(String, String, String)> {
    docs.iter()
        .map(|d| {
            (
                kind_of(d).to_string(),
                namespace_of(d).to_string(),
                name_of(d).to_string(),
            )
        })
        .collect()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| v.as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn pod_spec(workload: &Value) -> &Value {
    match kind_of(workload) {
        "CronJob" => &workload["spec"]["jobTemplate"]["spec"]["template"]["spec"],
        _ => &workload["spec"]["template"]["spec"],
    }
}

fn container(workload: &Value) -> &Value {
    &pod_spec(workload)["containers"][0]
}

fn args(workload: &Value) -> Vec<String> {
    strings(&container(workload)["args"])
}

/// The value after `flag` in `args`.
fn flag_value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

/// Where the rendered RBAC lets anyone read Secrets: checks that Secrets are granted `get` only, and only by
/// RoleBindings (a namespace each), never by a ClusterRoleBinding; returns those namespaces.
fn secret_namespaces(docs: &[Value]) -> Result<BTreeSet<String>, Failed> {
    let mut secret_roles = BTreeSet::new();
    for role in docs
        .iter()
        .filter(|d| matches!(kind_of(d), "ClusterRole" | "Role"))
    {
        for rule in role["rules"].as_array().into_iter().flatten() {
            let resources = strings(&rule["resources"]);
            let verbs = strings(&rule["verbs"]);
            if resources.iter().any(|r| r == "*") || verbs.iter().any(|v| v == "*") {
                return Err(
                    format!("{} {} has a wildcard rule", kind_of(role), name_of(role)).into(),
                );
            }
            if resources.iter().any(|r| r == "secrets") {
                if verbs != ["get"] {
                    return Err(format!("Secrets granted {verbs:?}, not just get").into());
                }
                secret_roles.insert((kind_of(role).to_string(), name_of(role).to_string()));
            }
        }
    }
    let mut namespaces = BTreeSet::new();
    for binding in docs
        .iter()
        .filter(|d| matches!(kind_of(d), "ClusterRoleBinding" | "RoleBinding"))
    {
        let role_ref = (
            binding["roleRef"]["kind"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            binding["roleRef"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
        if !secret_roles.contains(&role_ref) {
            continue;
        }
        if kind_of(binding) == "ClusterRoleBinding" {
            return Err(format!(
                "ClusterRoleBinding {} makes Secrets readable cluster-wide",
                name_of(binding)
            )
            .into());
        }
        namespaces.insert(namespace_of(binding).to_string());
    }
    Ok(namespaces)
}

/// Every pod the chart runs meets the restricted Pod Security Standard.
fn check_restricted_pods(docs: &[Value]) -> TestResult {
    for workload in docs
        .iter()
        .filter(|d| matches!(kind_of(d), "Deployment" | "CronJob"))
    {
        let pod = pod_spec(workload);
        let security = &pod["securityContext"];
        let container_security = &container(workload)["securityContext"];
        let ok = security["runAsNonRoot"] == true
            && security["runAsUser"] == 65532
            && security["seccompProfile"]["type"] == "RuntimeDefault"
            && container_security["allowPrivilegeEscalation"] == false
            && container_security["readOnlyRootFilesystem"] == true
            && container_security["capabilities"]["drop"] == json!(["ALL"]);
        if !ok {
            return Err(format!(
                "{} {} is not restricted: pod {security}, container {container_security}",
                kind_of(workload),
                name_of(workload)
            )
            .into());
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------
// Tests without the control plane
// ---------------------------------------------------------------------------------------------------------

/// Key paths of `values` down to its settings: into an object only where the schema closes it
/// (additionalProperties: false), the chart's own structure. A free-form map (resources, annotations, the example
/// policy's spec) is one setting.
fn value_paths(
    values: &Value,
    schema: &Value,
    root: &Value,
    prefix: &str,
    out: &mut Vec<String>,
) -> TestResult {
    let schema = match schema["$ref"].as_str() {
        Some(reference) => reference
            .strip_prefix("#/")
            .map(|p| p.split('/').fold(root, |node, part| &node[part]))
            .ok_or_else(|| format!("unsupported $ref {reference}"))?,
        None => schema,
    };
    let Some(map) = values.as_object() else {
        return Ok(());
    };
    for (key, value) in map {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        let sub = &schema["properties"][key];
        if sub.is_null() {
            return Err(
                format!("values.yaml has {path}, which values.schema.json does not know").into(),
            );
        }
        if sub["additionalProperties"] == false && value.is_object() {
            value_paths(value, sub, root, &path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

fn chart_readme_documents_every_value(_: &ControlPlane) -> TestResult {
    let dir = chart_dir();
    let values: Value = serde_yaml::from_str(&read(&dir.join("values.yaml"))?)?;
    let schema: Value = serde_json::from_str(&read(&dir.join("values.schema.json"))?)?;
    if schema["additionalProperties"] != false {
        return Err("values.schema.json must refuse unknown top-level keys".into());
    }
    let readme = read(&dir.join("README.md"))?;
    let mut paths = Vec::new();
    value_paths(&values, &schema, &schema, "", &mut paths)?;
    if paths.len() < 50 {
        return Err(format!("only {} value keys found: {paths:?}", paths.len()).into());
    }
    let missing: Vec<_> = paths
        .iter()
        .filter(|p| !readme.contains(&format!("`{p}`")))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "charts/qlik-license-reclaimer/README.md does not document {missing:?}"
        )
        .into());
    }
    Ok(())
}
register!(chart_readme_documents_every_value);

fn deploy_is_in_step_with_the_chart(_: &ControlPlane) -> TestResult {
    // The CRD: the chart's copy is deploy/'s, byte for byte; rendered, only the metadata gains labels and keep.
    let deploy_crd = read(&repo_path("deploy/crd.yaml"))?;
    if read(&chart_dir().join("files/crd.yaml"))? != deploy_crd {
        return Err(
            "charts/qlik-license-reclaimer/files/crd.yaml differs from deploy/crd.yaml: copy it"
                .into(),
        );
    }
    let chart_yaml: Value = serde_yaml::from_str(&read(&chart_dir().join("Chart.yaml"))?)?;
    if chart_yaml["appVersion"] != env!("CARGO_PKG_VERSION") || chart_yaml["apiVersion"] != "v2" {
        return Err(format!(
            "Chart.yaml: apiVersion {}, appVersion {} (Cargo.toml: {})",
            chart_yaml["apiVersion"],
            chart_yaml["appVersion"],
            env!("CARGO_PKG_VERSION")
        )
        .into());
    }

    let kustomization: Value =
        serde_yaml::from_str(&read(&repo_path("deploy/kustomization.yaml"))?)?;
    let mut deploy = Vec::new();
    for file in strings(&kustomization["resources"]) {
        deploy.extend(yaml_docs(&read(&repo_path(&format!("deploy/{file}")))?)?);
    }
    let chart = template(DEPLOY_NAME, DEPLOY_NAME, &[], &[])?;
    let chart_leader = template(DEPLOY_NAME, DEPLOY_NAME, &[], &["controller.replicas=2"])?;

    for name in [
        "licensecleanuppolicies.licensing.reclaimer.dev",
        "licensecleanupruns.licensing.reclaimer.dev",
    ] {
        let mut crd = find(&chart, "CustomResourceDefinition", name)?.clone();
        if crd["metadata"]["annotations"]["helm.sh/resource-policy"] != "keep" {
            return Err(
                format!("the chart's CRD {name} lacks helm.sh/resource-policy: keep").into(),
            );
        }
        let metadata = crd["metadata"]
            .as_object_mut()
            .ok_or("CRD without metadata")?;
        metadata.remove("labels");
        metadata.remove("annotations");
        if &crd != find(&deploy, "CustomResourceDefinition", name)? {
            return Err(format!("the chart's CRD {name} differs from deploy/crd.yaml").into());
        }
    }

    // The same objects by name: deploy/ also has the namespace, and the leader election Role that the chart
    // renders only with more than one replica.
    let leader = format!("{DEPLOY_NAME}-leader-election");
    let deploy_keys = keys(&deploy);
    let expected: BTreeSet<_> = deploy_keys
        .iter()
        .filter(|(kind, _, name)| kind != "Namespace" && *name != leader)
        .cloned()
        .collect();
    if keys(&chart) != expected {
        return Err(format!(
            "objects differ.\nchart:   {:?}\ndeploy/: {expected:?}",
            keys(&chart)
        )
        .into());
    }
    let with_leader: BTreeSet<_> = deploy_keys
        .iter()
        .filter(|(kind, _, _)| kind != "Namespace")
        .cloned()
        .collect();
    // With more than one replica the chart adds a PodDisruptionBudget, which deploy/ (one replica) must not have:
    // it would keep that one pod from ever being drained.
    let mut leader_keys = keys(&chart_leader);
    let budget = (
        "PodDisruptionBudget".to_string(),
        DEPLOY_NAME.to_string(),
        DEPLOY_NAME.to_string(),
    );
    if !leader_keys.remove(&budget) || leader_keys != with_leader {
        return Err(format!(
            "objects differ with 2 replicas (a PodDisruptionBudget besides deploy/'s).\nchart:   {:?}\ndeploy/: {with_leader:?}",
            keys(&chart_leader)
        )
        .into());
    }

    // RBAC: the same rules, references and subjects.
    for object in deploy.iter().filter(|d| {
        matches!(
            kind_of(d),
            "ClusterRole" | "Role" | "ClusterRoleBinding" | "RoleBinding"
        )
    }) {
        let rendered = find(&chart_leader, kind_of(object), name_of(object))?;
        for field in ["rules", "roleRef", "subjects"] {
            if object[field] != rendered[field] {
                return Err(format!(
                    "{} {}: {field} differ.\nchart:   {}\ndeploy/: {}",
                    kind_of(object),
                    name_of(object),
                    rendered[field],
                    object[field]
                )
                .into());
            }
        }
    }
    // The per-namespace Secret binding of deploy/examples is the chart's for secretNamespaces={qlik-ops}.
    let example = yaml_docs(&read(&repo_path(
        "deploy/examples/policy-namespace-rbac.yaml",
    ))?)?;
    let example = example.first().ok_or("empty policy-namespace-rbac.yaml")?;
    let rendered = template(
        DEPLOY_NAME,
        DEPLOY_NAME,
        &[],
        &["secretNamespaces={qlik-ops}"],
    )?;
    let binding = find(&rendered, "RoleBinding", name_of(example))?;
    if namespace_of(binding) != namespace_of(example)
        || binding["roleRef"] != example["roleRef"]
        || binding["subjects"] != example["subjects"]
    {
        return Err(format!("deploy/examples/policy-namespace-rbac.yaml {example} differs from the chart's {binding}").into());
    }

    // The Deployment: what runs, as whom, how it is probed and confined.
    let ours = find(&chart, "Deployment", DEPLOY_NAME)?;
    let theirs = find(&deploy, "Deployment", DEPLOY_NAME)?;
    for field in ["replicas", "strategy"] {
        if ours["spec"][field] != theirs["spec"][field] {
            return Err(format!(
                "Deployment spec.{field}: chart {} vs deploy/ {}",
                ours["spec"][field], theirs["spec"][field]
            )
            .into());
        }
    }
    for field in [
        "serviceAccountName",
        "terminationGracePeriodSeconds",
        "securityContext",
    ] {
        if pod_spec(ours)[field] != pod_spec(theirs)[field] {
            return Err(format!(
                "Deployment pod {field}: chart {} vs deploy/ {}",
                pod_spec(ours)[field],
                pod_spec(theirs)[field]
            )
            .into());
        }
    }
    for field in [
        "name",
        "image",
        "args",
        "env",
        "ports",
        "livenessProbe",
        "readinessProbe",
        "resources",
        "securityContext",
    ] {
        if container(ours)[field] != container(theirs)[field] {
            return Err(format!(
                "Deployment container {field}: chart {} vs deploy/ {}",
                container(ours)[field],
                container(theirs)[field]
            )
            .into());
        }
    }
    // The metrics Service: same ports; each selects its own Deployment's pods.
    let service = format!("{DEPLOY_NAME}-metrics");
    let (our_service, their_service) = (
        find(&chart, "Service", &service)?,
        find(&deploy, "Service", &service)?,
    );
    if our_service["spec"]["ports"] != their_service["spec"]["ports"] {
        return Err("metrics Service ports differ".into());
    }
    for (svc, deployment) in [(our_service, ours), (their_service, theirs)] {
        let labels = &deployment["spec"]["template"]["metadata"]["labels"];
        let selects = svc["spec"]["selector"]
            .as_object()
            .is_some_and(|s| !s.is_empty() && s.iter().all(|(k, v)| &labels[k] == v));
        if !selects {
            return Err(format!(
                "Service selector {} does not select pods labelled {labels}",
                svc["spec"]["selector"]
            )
            .into());
        }
    }
    Ok(())
}
register!(deploy_is_in_step_with_the_chart);

fn chart_lints_and_renders_every_option(_: &ControlPlane) -> TestResult {
    let chart = chart_dir().display().to_string();
    let all_options = all_options_values();
    let all_options_arg = all_options.display().to_string();
    helm_ok(&["lint", "--strict", &chart])?;
    helm_ok(&["lint", "--strict", &chart, "--values", &all_options_arg])?;

    let default = template("r", "ops", &[], &[])?;
    check_restricted_pods(&default)?;
    let docs = template("r", "ops", &[&all_options], &[])?;
    check_restricted_pods(&docs)?;
    if secret_namespaces(&docs)? != BTreeSet::from(["qlik-ops".to_string()]) {
        return Err(format!(
            "all options: Secrets readable in {:?}",
            secret_namespaces(&docs)?
        )
        .into());
    }

    let deployment = only(&docs, "Deployment")?;
    let controller_args = args(deployment);
    for (flag, value) in [
        ("--namespace", "qlik-ops"),
        ("--lease-name", "r-qlik-license-reclaimer"),
        ("--lease-duration-seconds", "20"),
        ("--metrics-addr", "0.0.0.0:9090"),
        ("--log-format", "human"),
    ] {
        if flag_value(&controller_args, flag) != Some(value) {
            return Err(format!("controller args {controller_args:?} lack {flag} {value}").into());
        }
    }
    if !controller_args.iter().any(|a| a == "--leader-elect")
        || !deployment["spec"]["strategy"].is_null()
    {
        return Err("two replicas need --leader-elect and a rolling update".into());
    }
    let image = container(deployment)["image"].as_str().unwrap_or_default();
    if !image.starts_with("registry.example.com/qlik/qlik-license-reclaimer@sha256:") {
        return Err(format!("a digest is pulled by digest, not tag: {image}").into());
    }
    let lease_role = find(&docs, "Role", "r-qlik-license-reclaimer-leader-election")?;
    if strings(&lease_role["rules"][0]["resources"]) != ["leases"]
        || namespace_of(lease_role) != "ops"
    {
        return Err(format!("leader election Role: {lease_role}").into());
    }

    // CronJob mode: one CronJob per policy, never two runs at once, per-policy overrides.
    let cronjobs = of_kind(&docs, "CronJob");
    if cronjobs.len() != 2 {
        return Err(format!("expected 2 CronJobs, found {}", cronjobs.len()).into());
    }
    for cronjob in &cronjobs {
        if cronjob["spec"]["concurrencyPolicy"] != "Forbid" || name_of(cronjob).len() > 52 {
            return Err(format!("CronJob {}: {}", name_of(cronjob), cronjob["spec"]).into());
        }
        if pod_spec(cronjob)["serviceAccountName"] != pod_spec(deployment)["serviceAccountName"] {
            return Err("the CronJobs run as another ServiceAccount".into());
        }
    }
    let test_site = find(
        &docs,
        "CronJob",
        "r-qlik-license-reclaimer-qlik-ops-test-site",
    )?;
    let test_args = args(test_site);
    if flag_value(&test_args, "--policy-ref") != Some("qlik-ops/test-site")
        || !test_args.iter().any(|a| a == "--dry-run")
        || test_args[0] != "run"
        || test_site["spec"]["schedule"] != "30 4 * * 1-5"
        || test_site["spec"]["suspend"] != true
    {
        return Err(format!(
            "CronJob test-site: args {test_args:?}, spec {}",
            test_site["spec"]
        )
        .into());
    }
    let prod_site = find(
        &docs,
        "CronJob",
        "r-qlik-license-reclaimer-qlik-ops-prod-site",
    )?;
    if args(prod_site).iter().any(|a| a == "--dry-run")
        || prod_site["spec"]["timeZone"] != "Europe/Oslo"
        || prod_site["spec"]["schedule"] != "0 3 * * *"
    {
        return Err(format!("CronJob prod-site: {}", prod_site["spec"]).into());
    }

    // Monitoring: the ServiceMonitor selects the metrics Service; rules and dashboard are the chart's files.
    let monitor = only(&docs, "ServiceMonitor")?;
    let service = only(&docs, "Service")?;
    let service_labels = &service["metadata"]["labels"];
    let selected = monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .is_some_and(|s| s.iter().all(|(k, v)| &service_labels[k] == v));
    if !selected
        || monitor["spec"]["endpoints"][0]["port"] != "metrics"
        || monitor["metadata"]["labels"]["release"] != "kube-prometheus-stack"
    {
        return Err(format!("ServiceMonitor {monitor} does not scrape Service {service}").into());
    }
    let alerts: Value = serde_yaml::from_str(&read(&chart_dir().join("files/alerts.yaml"))?)?;
    let rule = only(&docs, "PrometheusRule")?;
    if rule["spec"]["groups"] != alerts["groups"] {
        return Err("the PrometheusRule's groups are not those of files/alerts.yaml".into());
    }
    let dashboard = only(&docs, "ConfigMap")?;
    let json_text = read(&chart_dir().join("dashboards/qlik-license-reclaimer.json"))?;
    if dashboard["metadata"]["labels"]["grafana_dashboard"] != "1"
        || dashboard["data"]["qlik-license-reclaimer.json"].as_str() != Some(json_text.trim_end())
    {
        return Err(
            "the dashboard ConfigMap does not hold dashboards/qlik-license-reclaimer.json".into(),
        );
    }
    serde_json::from_str::<Value>(&json_text)
        .map_err(|e| format!("the dashboard is not JSON: {e}"))?;

    // The example policy: a hook (its CRD may be installed by the same release), with its Secret.
    let policy = only(&docs, "LicenseCleanupPolicy")?;
    if namespace_of(policy) != "qlik-ops"
        || policy["spec"]["site"]["credentialsSecretRef"]["name"] != "qlik-client-certificate"
        || policy["spec"]["dryRun"] != true
        || !policy["metadata"]["annotations"]["helm.sh/hook"]
            .as_str()
            .is_some_and(|h| h.contains("post-install"))
    {
        return Err(format!("example policy: {policy}").into());
    }
    serde_json::from_value::<LicenseCleanupPolicy>(policy.clone())
        .map_err(|e| format!("the example policy is not a LicenseCleanupPolicy: {e}"))?;

    check_network_policy(&docs, deployment)?;
    check_disruption_budget(&docs, deployment)?;
    check_artifact_hub()?;

    // The schema catches typos, and impossible combinations are refused with a message saying what to change.
    for (sets, expected) in [
        (vec!["controler.replicas=2"], "controler"),
        (vec!["controller.replicaz=2"], "replicaz"),
        (
            vec!["cronjob.enabled=true", "cronjob.policies[0].ref=no-slash"],
            "ref",
        ),
        (
            vec!["watchNamespaces={a}", "secretNamespaces={b}"],
            "secretNamespaces",
        ),
        (vec!["cronjob.enabled=true"], "cronjob.policies"),
        (vec!["networkPolicy.enabeld=true"], "enabeld"),
        (vec!["networkPolicy.qlik.cidrs={qlik.example.com}"], "cidrs"),
        (vec!["networkPolicy.qlik.ports={0}"], "ports"),
        (
            vec![
                "watchNamespaces={a}",
                "examplePolicy.enabled=true",
                "examplePolicy.namespace=b",
            ],
            "examplePolicy.namespace",
        ),
    ] {
        let message = template_refuses(&sets)?;
        if !message.contains(expected) {
            return Err(
                format!("refusing {sets:?}, helm should mention {expected}: {message}").into(),
            );
        }
    }
    Ok(())
}
register!(chart_lints_and_renders_every_option);

/// Whether `selector` (matchLabels) selects a pod with these labels.
fn selects(selector: &Value, labels: &Value) -> bool {
    selector["matchLabels"]
        .as_object()
        .is_some_and(|m| !m.is_empty() && m.iter().all(|(k, v)| &labels[k] == v))
}

/// The ports of an egress or ingress rule, as `(port, protocol)`.
fn rule_ports(rule: &Value) -> Vec<(u64, String)> {
    rule["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p["port"].as_u64().unwrap_or_default(),
                p["protocol"].as_str().unwrap_or("TCP").to_string(),
            )
        })
        .collect()
}

/// ci/all-options-values.yaml's NetworkPolicy: it selects the controller's and the CronJobs' pods, lets the
/// monitoring namespace reach the metrics port and nothing else in, and lets out DNS, the API server, the Qlik
/// sites (to their CIDR only), SMTP, webhooks and the extra rule, each on its ports; the default renders none.
fn check_network_policy(docs: &[Value], deployment: &Value) -> TestResult {
    if !of_kind(&template("r", "ops", &[], &[])?, "NetworkPolicy").is_empty() {
        return Err("the default install renders a NetworkPolicy".into());
    }
    let policy = only(docs, "NetworkPolicy")?;
    let spec = &policy["spec"];
    if strings(&spec["policyTypes"]) != ["Ingress", "Egress"] {
        return Err(format!("policy types: {}", spec["policyTypes"]).into());
    }
    let cronjob = of_kind(docs, "CronJob")
        .first()
        .copied()
        .ok_or("no CronJob")?;
    let cron_pod = &cronjob["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"];
    let controller_pod = &deployment["spec"]["template"]["metadata"]["labels"];
    if !selects(&spec["podSelector"], controller_pod) || !selects(&spec["podSelector"], cron_pod) {
        return Err(format!("the NetworkPolicy's pods: {}", spec["podSelector"]).into());
    }
    let ingress = spec["ingress"].as_array().ok_or("no ingress")?;
    if ingress.len() != 1
        || rule_ports(&ingress[0]) != [(9090, "TCP".into())]
        || ingress[0]["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
            != "monitoring"
    {
        return Err(format!("ingress: {}", spec["ingress"]).into());
    }
    let egress = spec["egress"].as_array().ok_or("no egress")?;
    let rule_with = |port: u64| {
        egress
            .iter()
            .find(|r| rule_ports(r).iter().any(|(p, _)| *p == port))
    };
    let dns = rule_with(53).ok_or("no DNS rule")?;
    if !rule_ports(dns).contains(&(53, "UDP".into())) {
        return Err(format!("DNS needs UDP: {dns}").into());
    }
    let qlik = rule_with(4242).ok_or("no rule for QRS")?;
    if qlik["to"] != json!([{"ipBlock": {"cidr": "10.20.0.0/24"}}])
        || rule_ports(qlik).iter().map(|(p, _)| *p).collect::<Vec<_>>() != [4242, 4243]
    {
        return Err(format!("the Qlik rule: {qlik}").into());
    }
    let api = rule_with(6443).ok_or("no rule for the API server")?;
    if api["to"].as_array().map(Vec::len) != Some(2) {
        return Err(format!("the API server rule: {api}").into());
    }
    for port in [587, 3128] {
        rule_with(port).ok_or(format!("no rule for port {port}"))?;
    }
    if egress.len() != 6 {
        return Err(format!("expected 6 egress rules: {}", spec["egress"]).into());
    }
    Ok(())
}

/// A PodDisruptionBudget keeps one controller pod when there are two or more, and none is rendered for one (it
/// would block every node drain).
fn check_disruption_budget(docs: &[Value], deployment: &Value) -> TestResult {
    let budget = only(docs, "PodDisruptionBudget")?;
    if budget["spec"]["minAvailable"] != 1
        || !selects(
            &budget["spec"]["selector"],
            &deployment["spec"]["template"]["metadata"]["labels"],
        )
    {
        return Err(format!("PodDisruptionBudget: {budget}").into());
    }
    if !of_kind(&template("r", "ops", &[], &[])?, "PodDisruptionBudget").is_empty() {
        return Err("one replica renders a PodDisruptionBudget".into());
    }
    let two = template("r", "ops", &[], &["controller.replicas=2"])?;
    if of_kind(&two, "PodDisruptionBudget").len() != 1 {
        return Err("two replicas by default render no PodDisruptionBudget".into());
    }
    let off = template(
        "r",
        "ops",
        &[],
        &["controller.replicas=2", "podDisruptionBudget.enabled=false"],
    )?;
    if !of_kind(&off, "PodDisruptionBudget").is_empty() {
        return Err("podDisruptionBudget.enabled=false still renders one".into());
    }
    Ok(())
}

/// Artifact Hub's annotations list both CustomResourceDefinitions as the chart installs them, and the image a
/// default install pulls.
fn check_artifact_hub() -> TestResult {
    let chart: Value = serde_yaml::from_str(&read(&chart_dir().join("Chart.yaml"))?)?;
    let annotations = &chart["annotations"];
    let listed: Vec<Value> = serde_yaml::from_str(
        annotations["artifacthub.io/crds"]
            .as_str()
            .ok_or("no crds")?,
    )?;
    let crds = yaml_docs(&read(&chart_dir().join("files/crd.yaml"))?)?;
    let names: BTreeSet<String> = crds.iter().map(|c| name_of(c).to_string()).collect();
    let listed_names: BTreeSet<String> = listed
        .iter()
        .map(|c| c["name"].as_str().unwrap_or_default().to_string())
        .collect();
    if names.len() != 2 || listed_names != names {
        return Err(format!(
            "artifacthub.io/crds lists {listed_names:?}; the chart installs {names:?}"
        )
        .into());
    }
    for crd in &crds {
        let kind = &crd["spec"]["names"]["kind"];
        if !listed
            .iter()
            .any(|e| &e["kind"] == kind && e["version"] == "v1alpha1")
        {
            return Err(format!("artifacthub.io/crds lacks {kind} v1alpha1: {listed:?}").into());
        }
    }
    let images: Vec<Value> = serde_yaml::from_str(
        annotations["artifacthub.io/images"]
            .as_str()
            .ok_or("no images")?,
    )?;
    let values: Value = serde_yaml::from_str(&read(&chart_dir().join("values.yaml"))?)?;
    let expected = format!(
        "{}:{}",
        values["image"]["repository"].as_str().unwrap_or_default(),
        chart["appVersion"].as_str().unwrap_or_default()
    );
    if images.len() != 1 || images[0]["image"] != expected.as_str() {
        return Err(format!("artifacthub.io/images: {images:?}, expected {expected}").into());
    }
    // The platforms scripts/build-image-index.sh builds (and scripts/release-check.sh checks).
    if images[0]["platforms"] != serde_json::json!(["linux/amd64", "linux/arm64"]) {
        return Err(format!(
            "artifacthub.io/images lists platforms {}",
            images[0]["platforms"]
        )
        .into());
    }
    let changes: Vec<Value> = serde_yaml::from_str(
        annotations["artifacthub.io/changes"]
            .as_str()
            .ok_or("no changes")?,
    )?;
    if changes.is_empty()
        || changes
            .iter()
            .any(|c| c["kind"].is_null() || c["description"].is_null())
    {
        return Err(format!("artifacthub.io/changes: {changes:?}").into());
    }
    Ok(())
}

fn chart_rbac_never_grants_secrets_cluster_wide(_: &ControlPlane) -> TestResult {
    let set = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<BTreeSet<_>>();
    struct Case {
        sets: &'static [&'static str],
        secrets: &'static [&'static str],
        /// Namespaces of the RoleBindings to the policies ClusterRole; None: a ClusterRoleBinding.
        policies: Option<&'static [&'static str]>,
        namespace_flag: Option<&'static str>,
        leader: bool,
        controller: bool,
    }
    let cases = [
        Case {
            sets: &[],
            secrets: &[],
            policies: None,
            namespace_flag: None,
            leader: false,
            controller: true,
        },
        Case {
            sets: &["secretNamespaces={a,b}"],
            secrets: &["a", "b"],
            policies: None,
            namespace_flag: None,
            leader: false,
            controller: true,
        },
        Case {
            sets: &["watchNamespaces={a}"],
            secrets: &["a"],
            policies: Some(&["a"]),
            namespace_flag: Some("a"),
            leader: false,
            controller: true,
        },
        Case {
            sets: &["watchNamespaces={a,b}"],
            secrets: &["a", "b"],
            policies: Some(&["a", "b"]),
            namespace_flag: Some("a"),
            leader: false,
            controller: true,
        },
        Case {
            sets: &["controller.replicas=3", "secretNamespaces={a}"],
            secrets: &["a"],
            policies: None,
            namespace_flag: None,
            leader: true,
            controller: true,
        },
        Case {
            sets: &["examplePolicy.enabled=true", "secretNamespaces={a}"],
            secrets: &["a", "ops"],
            policies: None,
            namespace_flag: None,
            leader: false,
            controller: true,
        },
        Case {
            sets: &["watchNamespaces={a}", "examplePolicy.enabled=true"],
            secrets: &["a"],
            policies: Some(&["a"]),
            namespace_flag: Some("a"),
            leader: false,
            controller: true,
        },
        Case {
            sets: &[
                "controller.enabled=false",
                "cronjob.enabled=true",
                "cronjob.policies[0].ref=a/x",
                "cronjob.policies[1].ref=b/y",
            ],
            secrets: &["a", "b"],
            policies: Some(&["a", "b"]),
            namespace_flag: None,
            leader: false,
            controller: false,
        },
        Case {
            sets: &[
                "watchNamespaces={a}",
                "cronjob.enabled=true",
                "cronjob.policies[0].ref=c/z",
            ],
            secrets: &["a", "c"],
            policies: Some(&["a", "c"]),
            namespace_flag: Some("a"),
            leader: false,
            controller: true,
        },
    ];
    for case in &cases {
        let docs = template("r", "ops", &[], case.sets)?;
        let context = |what: &str| format!("with {:?}: {what}", case.sets);
        check_restricted_pods(&docs)?;
        let secrets = secret_namespaces(&docs)?;
        if secrets != set(case.secrets) {
            return Err(context(&format!(
                "Secrets readable in {secrets:?}, expected {:?}",
                case.secrets
            ))
            .into());
        }
        let cluster_binding = of_kind(&docs, "ClusterRoleBinding");
        let policy_bindings: BTreeSet<String> = of_kind(&docs, "RoleBinding")
            .into_iter()
            .filter(|b| b["roleRef"]["name"] == "r-qlik-license-reclaimer")
            .map(|b| namespace_of(b).to_string())
            .collect();
        match case.policies {
            None if cluster_binding.len() != 1 || !policy_bindings.is_empty() => {
                return Err(context("expected one ClusterRoleBinding for policies").into());
            }
            Some(namespaces)
                if !cluster_binding.is_empty() || policy_bindings != set(namespaces) =>
            {
                return Err(context(&format!("policies bound in {policy_bindings:?}, expected {namespaces:?} and no ClusterRoleBinding")).into());
            }
            _ => {}
        }
        let lease_role = docs
            .iter()
            .any(|d| kind_of(d) == "Role" && name_of(d).ends_with("-leader-election"));
        if lease_role != case.leader {
            return Err(context(&format!("leader election Role present: {lease_role}")).into());
        }
        let deployments = of_kind(&docs, "Deployment");
        if deployments.len() != usize::from(case.controller)
            || of_kind(&docs, "Service").len() != usize::from(case.controller)
        {
            return Err(
                context("a controller Deployment and Service iff controller.enabled").into(),
            );
        }
        if let Some(deployment) = deployments.first() {
            let controller_args = args(deployment);
            if flag_value(&controller_args, "--namespace") != case.namespace_flag
                || controller_args.iter().any(|a| a == "--leader-elect") != case.leader
            {
                return Err(context(&format!("controller args {controller_args:?}")).into());
            }
            let recreate = deployment["spec"]["strategy"]["type"] == "Recreate";
            if recreate == case.leader {
                return Err(context("one replica updates by Recreate, several roll").into());
            }
        }
    }
    // Without rbac.create the chart makes no RBAC at all.
    let docs = template(
        "r",
        "ops",
        &[],
        &["rbac.create=false", "secretNamespaces={a}"],
    )?;
    if docs.iter().any(|d| {
        d["apiVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("rbac.authorization.k8s.io"))
    }) {
        return Err("rbac.create=false still renders RBAC".into());
    }
    Ok(())
}
register!(chart_rbac_never_grants_secrets_cluster_wide);

// ---------------------------------------------------------------------------------------------------------
// On the control plane
// ---------------------------------------------------------------------------------------------------------

/// Stand-ins for the Prometheus Operator's CRDs: its group, kinds and the fields the chart sets, with the real
/// field names; anything else is an unknown field, which `helm install` rejects.
const MONITORING_CRDS: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: servicemonitors.monitoring.coreos.com}
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {kind: ServiceMonitor, listKind: ServiceMonitorList, plural: servicemonitors, singular: servicemonitor}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          required: [spec]
          properties:
            spec:
              type: object
              required: [selector, endpoints]
              properties:
                jobLabel: {type: string}
                namespaceSelector:
                  type: object
                  properties:
                    any: {type: boolean}
                    matchNames: {type: array, items: {type: string}}
                selector:
                  type: object
                  properties:
                    matchLabels: {type: object, additionalProperties: {type: string}}
                    matchExpressions: {type: array, items: {type: object, x-kubernetes-preserve-unknown-fields: true}}
                endpoints:
                  type: array
                  items:
                    type: object
                    properties:
                      port: {type: string}
                      path: {type: string}
                      scheme: {type: string}
                      interval: {type: string, pattern: '^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$'}
                      scrapeTimeout: {type: string, pattern: '^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$'}
                      relabelings: {type: array, items: {type: object, x-kubernetes-preserve-unknown-fields: true}}
                      metricRelabelings: {type: array, items: {type: object, x-kubernetes-preserve-unknown-fields: true}}
                      honorLabels: {type: boolean}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: prometheusrules.monitoring.coreos.com}
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {kind: PrometheusRule, listKind: PrometheusRuleList, plural: prometheusrules, singular: prometheusrule}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          required: [spec]
          properties:
            spec:
              type: object
              properties:
                groups:
                  type: array
                  items:
                    type: object
                    required: [name]
                    properties:
                      name: {type: string, minLength: 1}
                      interval: {type: string}
                      query_offset: {type: string}
                      limit: {type: integer}
                      partial_response_strategy: {type: string}
                      labels: {type: object, additionalProperties: {type: string}}
                      rules:
                        type: array
                        items:
                          type: object
                          required: [expr]
                          properties:
                            alert: {type: string}
                            record: {type: string}
                            expr: {x-kubernetes-int-or-string: true}
                            for: {type: string}
                            keep_firing_for: {type: string, minLength: 1}
                            labels: {type: object, additionalProperties: {type: string}}
                            annotations: {type: object, additionalProperties: {type: string}}
"#;

async fn install_monitoring_crds(admin: &Client) -> TestResult {
    static INSTALLED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    INSTALLED
        .get_or_try_init(|| async {
            let names = [
                "servicemonitors.monitoring.coreos.com",
                "prometheusrules.monitoring.coreos.com",
            ];
            apply_crds(admin, MONITORING_CRDS, &names).await
        })
        .await?;
    Ok(())
}

/// Every rendered object as a server-side apply dry run with strict field validation: the API server checks it
/// against its schema (built-in kinds, the CRD, the monitoring stand-ins) and refuses unknown fields, which a
/// plain create would drop in silence. Nothing is stored.
async fn validate_strictly(client: &Client, docs: &[Value]) -> TestResult {
    let discovery = kube::Discovery::new(client.clone()).run().await?;
    for doc in docs {
        let object: DynamicObject = serde_json::from_value(doc.clone())?;
        let types = object
            .types
            .as_ref()
            .ok_or("an object without apiVersion/kind")?;
        let gvk = GroupVersionKind::try_from(types)?;
        let (resource, capabilities) = discovery
            .resolve_gvk(&gvk)
            .ok_or_else(|| format!("the API server does not know {gvk:?}"))?;
        let api: Api<DynamicObject> = match capabilities.scope {
            Scope::Namespaced => Api::namespaced_with(client.clone(), namespace_of(doc), &resource),
            Scope::Cluster => Api::all_with(client.clone(), &resource),
        };
        let mut params = PatchParams::apply("chart-tests").force().dry_run();
        params.field_validation = Some(ValidationDirective::Strict);
        api.patch(name_of(doc), &params, &Patch::Apply(doc))
            .await
            .map_err(|e| {
                format!(
                    "{} {}/{}: {e}",
                    kind_of(doc),
                    namespace_of(doc),
                    name_of(doc)
                )
            })?;
    }
    Ok(())
}

/// A ServiceAccount as the API server sees it: user name and groups.
struct Identity {
    user: String,
    groups: Vec<String>,
}

impl Identity {
    fn service_account(namespace: &str, name: &str) -> Self {
        Self {
            user: format!("system:serviceaccount:{namespace}:{name}"),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
            ],
        }
    }

    fn groups(&self) -> Vec<&str> {
        self.groups.iter().map(String::as_str).collect()
    }

    fn client(&self, cp: &ControlPlane) -> Client {
        cp.client_for(&self.user, &self.groups())
    }
}

/// `helm install` on the control plane as its administrator; returns helm's output (the notes).
async fn helm_install(
    cp: &ControlPlane,
    release: &str,
    namespace: &str,
    files: &[&Path],
    sets: &[&str],
) -> Result<String, Failed> {
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig");
    cp.write_kubeconfig(&kubeconfig, "admin", &["system:masters"])?;
    let mut args = chart_args("install", release, namespace, files, sets);
    args.extend(["--kubeconfig".into(), kubeconfig.display().to_string()]);
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        helm_ok(&args)
    })
    .await?
}

/// `helm template` off the runtime's threads.
async fn template_async(
    release: &str,
    namespace: &str,
    files: Vec<PathBuf>,
    sets: Vec<String>,
) -> Result<Vec<Value>, Failed> {
    let (release, namespace) = (release.to_string(), namespace.to_string());
    tokio::task::spawn_blocking(move || {
        let files: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
        let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
        template(&release, &namespace, &files, &sets)
    })
    .await?
}

/// Runs the binary once, as `identity`, with `args` (a CronJob's, say).
async fn run_binary_as(
    cp: &ControlPlane,
    identity: &Identity,
    args: Vec<String>,
) -> Result<Output, Failed> {
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig");
    cp.write_kubeconfig(&kubeconfig, &identity.user, &identity.groups())?;
    Ok(tokio::task::spawn_blocking(move || {
        Command::new(BINARY)
            .args(&args)
            .env("KUBECONFIG", &kubeconfig)
            .env("POD_NAME", "run-job")
            .stdin(Stdio::null())
            .output()
    })
    .await??)
}

/// The API call must be refused with 403.
fn forbidden<T: std::fmt::Debug>(what: &str, result: Result<T, kube::Error>) -> TestResult {
    match result {
        Err(kube::Error::Api(status)) if status.code == 403 => Ok(()),
        other => Err(format!("{what}: expected 403 Forbidden, got {other:?}").into()),
    }
}

/// Everything the all-options values switch on, installed with `helm install`: the controller (two replicas, so
/// leader election; one watch namespace) runs under the chart's ServiceAccount with the Deployment's arguments and
/// runs the example policy on run-now; the CronJob's command runs it too; the ServiceAccount reaches nothing else.
fn chart_installs_and_runs_a_policy_in_its_watch_namespace(cp: &ControlPlane) -> TestResult {
    ensure_installed(cp)?;
    helm_binary()?;
    run(cp, async {
        let admin = cp.admin_client();
        install_monitoring_crds(&admin).await?;
        let release = create_namespace(&admin, "chart").await?;
        let watched = create_namespace(&admin, "chart-watched").await?;
        let other = create_namespace(&admin, "chart-other").await?;
        let sim = support::known_site().await;
        put_secret(&admin, &watched, support::credential_entries(&sim)).await?;
        put_secret(&admin, &other, support::credential_entries(&sim)).await?;

        // ci/all-options-values.yaml in these namespaces, the example policy aimed at the simulator. The CRD is
        // installed already (by deploy/crd.yaml, not by a Helm release, so Helm would refuse to adopt it).
        let mut values: Value =
            serde_yaml::from_str(&read(&all_options_values())?.replace("qlik-ops", &watched))?;
        let mut spec = serde_json::to_value(support::policy(&sim))?;
        spec["dryRun"] = json!(true);
        spec["site"]
            .as_object_mut()
            .ok_or("site")?
            .remove("credentialsSecretRef");
        values["examplePolicy"]["spec"] = spec;
        values["examplePolicy"]["secretName"] = json!("qlik");
        values["crds"]["enabled"] = json!(false);
        let dir = tempfile::tempdir()?;
        let values_file = dir.path().join("values.yaml");
        std::fs::write(&values_file, serde_yaml::to_string(&values)?)?;

        let docs = template_async(&release, &release, vec![values_file.clone()], vec![]).await?;
        // Every object (the CRD too) passes the API server's strict validation before Helm creates them.
        let with_crd = vec!["crds.enabled=true".to_string()];
        validate_strictly(
            &admin,
            &template_async(&release, &release, vec![values_file.clone()], with_crd).await?,
        )
        .await?;
        let notes = helm_install(cp, &release, &release, &[&values_file], &[]).await?;
        for expected in [
            format!(
                "kubectl -n {watched} create secret generic qlik --from-file=client.pem --from-file=client_key.pem --from-file=root.pem"
            ),
            "kubectl get lcp -A".to_string(),
            "dry run".to_string(),
        ] {
            if !notes.contains(&expected) {
                return Err(format!("the notes lack {expected:?}:\n{notes}").into());
            }
        }

        let account = only(&docs, "ServiceAccount")?;
        let identity = Identity::service_account(&release, name_of(account));
        let deployment = only(&docs, "Deployment")?;
        let mut controller_args = args(deployment);
        let at = controller_args
            .iter()
            .position(|a| a == "--metrics-addr")
            .ok_or("no --metrics-addr")?;
        controller_args.drain(at..at + 2);
        let lease_name = flag_value(&controller_args, "--lease-name")
            .ok_or("no --lease-name")?
            .to_string();
        let controller_args: Vec<&str> = controller_args.iter().map(String::as_str).collect();
        let controller = ControllerProcess::start_as(
            cp,
            &identity.user,
            &identity.groups(),
            &controller_args,
            &[("POD_NAMESPACE", &release), ("POD_NAME", "controller-0")],
        )?;
        wait_metrics_up(&controller).await?;
        let leases: Api<Lease> = Api::namespaced(admin.clone(), &release);
        tokio::time::timeout(
            Duration::from_secs(30),
            await_condition(leases, &lease_name, |l: Option<&Lease>| {
                l.and_then(|l| l.spec.as_ref())
                    .and_then(|s| s.holder_identity.as_deref())
                    == Some("controller-0")
            }),
        )
        .await
        .map_err(|_| {
            format!(
                "the controller never held Lease {lease_name}; log:\n{}",
                controller.log()
            )
        })??;

        // The example policy (a post-install hook) runs on run-now.
        let what = "a run of the example policy";
        let policy = next_run(&admin, &watched, "prod-site", "1", what)
            .await
            .map_err(|e| format!("{e:?}; log:\n{}", controller.log()))?;
        let last = policy
            .status
            .and_then(|s| s.last_run)
            .ok_or("no last run")?;
        if last.header.result != RunResult::Succeeded
            || !last.header.dry_run
            || last.header.totals.reclaimed == 0
        {
            return Err(format!(
                "the example policy's run: {last:?}; log:\n{}",
                controller.log()
            )
            .into());
        }
        if !sim.deletions().is_empty() {
            return Err("a dry run deleted seats".into());
        }

        // The CronJob's command, under the same identity.
        let reference = format!("{watched}/prod-site");
        let cronjob = of_kind(&docs, "CronJob")
            .into_iter()
            .find(|c| {
                c["metadata"]["annotations"]["licensing.reclaimer.dev/policy"] == reference.as_str()
            })
            .ok_or("no CronJob for the example policy")?;
        let output = run_binary_as(cp, &identity, args(cronjob)).await?;
        if !output.status.success() {
            return Err(format!("the CronJob's run failed: {}", describe(&output)).into());
        }
        let after: LicenseCleanupPolicy = Api::namespaced(admin.clone(), &watched)
            .get("prod-site")
            .await?;
        if last_run_id(&after) == Some(last.header.id.clone()) {
            return Err("the CronJob's run wrote no status".into());
        }

        // Nothing beyond the watch namespace (and the Lease).
        let operator = identity.client(cp);
        Api::<Secret>::namespaced(operator.clone(), &watched)
            .get("qlik")
            .await?;
        forbidden(
            "reading a Secret outside the watch namespace",
            Api::<Secret>::namespaced(operator.clone(), &other)
                .get("qlik")
                .await,
        )?;
        forbidden(
            "listing Secrets",
            Api::<Secret>::namespaced(operator.clone(), &watched)
                .list(&ListParams::default())
                .await,
        )?;
        forbidden(
            "listing policies of another namespace",
            Api::<LicenseCleanupPolicy>::namespaced(operator.clone(), &other)
                .list(&ListParams::default())
                .await,
        )?;
        forbidden(
            "listing policies cluster-wide",
            Api::<LicenseCleanupPolicy>::all(operator)
                .list(&ListParams::default())
                .await,
        )?;
        Ok(())
    })
}
register!(chart_installs_and_runs_a_policy_in_its_watch_namespace);

/// The default values (all namespaces) with one Secret namespace: policies everywhere are visible, Secrets only
/// there; a run of a policy there succeeds, one elsewhere cannot read its Secret.
fn chart_default_install_reads_secrets_only_in_listed_namespaces(cp: &ControlPlane) -> TestResult {
    ensure_installed(cp)?;
    helm_binary()?;
    run(cp, async {
        let admin = cp.admin_client();
        let release = create_namespace(&admin, "chart-default").await?;
        let listed = create_namespace(&admin, "chart-listed").await?;
        let unlisted = create_namespace(&admin, "chart-unlisted").await?;
        let sim = support::known_site().await;
        let spec = support::dry_run_policy(&sim);
        for namespace in [&listed, &unlisted] {
            put_secret(&admin, namespace, support::credential_entries(&sim)).await?;
            create_policy(&admin, namespace, "site", spec.clone()).await?;
        }

        // Every object of the default rendering, the CRD included, passes the API server's strict validation.
        validate_strictly(
            &admin,
            &template_async(&release, &release, vec![], vec![]).await?,
        )
        .await?;

        let secret_namespaces = format!("secretNamespaces={{{listed}}}");
        helm_install(
            cp,
            &release,
            &release,
            &[],
            &["crds.enabled=false", &secret_namespaces],
        )
        .await?;
        let identity =
            Identity::service_account(&release, &format!("{release}-qlik-license-reclaimer"));
        let operator = identity.client(cp);

        Api::<LicenseCleanupPolicy>::all(operator.clone())
            .list(&ListParams::default())
            .await?;
        Api::<Secret>::namespaced(operator.clone(), &listed)
            .get("qlik")
            .await?;
        forbidden(
            "reading a Secret in an unlisted namespace",
            Api::<Secret>::namespaced(operator.clone(), &unlisted)
                .get("qlik")
                .await,
        )?;
        forbidden(
            "listing Secrets cluster-wide",
            Api::<Secret>::all(operator.clone())
                .list(&ListParams::default())
                .await,
        )?;
        forbidden(
            "a Lease without leader election",
            Api::<Lease>::namespaced(operator, &release)
                .get("anything")
                .await,
        )?;

        let ok = run_binary_as(
            cp,
            &identity,
            vec![
                "run".into(),
                "--policy-ref".into(),
                format!("{listed}/site"),
            ],
        )
        .await?;
        if !ok.status.success() {
            return Err(format!("a run in the listed namespace failed: {}", describe(&ok)).into());
        }
        let denied = run_binary_as(
            cp,
            &identity,
            vec![
                "run".into(),
                "--policy-ref".into(),
                format!("{unlisted}/site"),
            ],
        )
        .await?;
        failed_saying(
            &denied,
            "cannot be read",
            "a run in an unlisted namespace must fail on its Secret",
        )
    })
}
register!(chart_default_install_reads_secrets_only_in_listed_namespaces);

/// CronJob mode without the controller: every permission is a RoleBinding in the policy's namespace, and the
/// CronJob's command runs the policy with them.
fn chart_cronjob_mode_runs_a_policy_with_namespaced_rbac(cp: &ControlPlane) -> TestResult {
    ensure_installed(cp)?;
    helm_binary()?;
    run(cp, async {
        let admin = cp.admin_client();
        let release = create_namespace(&admin, "chart-cron").await?;
        let policies = create_namespace(&admin, "chart-cron-policies").await?;
        let other = create_namespace(&admin, "chart-cron-other").await?;
        let sim = support::known_site().await;
        put_secret(&admin, &policies, support::credential_entries(&sim)).await?;
        let spec = support::dry_run_policy(&sim);
        create_policy(&admin, &policies, "site", spec).await?;

        let sets = vec![
            "crds.enabled=false".to_string(),
            "controller.enabled=false".into(),
            "cronjob.enabled=true".into(),
            format!("cronjob.policies[0].ref={policies}/site"),
        ];
        let docs = template_async(&release, &release, vec![], sets.clone()).await?;
        if !of_kind(&docs, "Deployment").is_empty()
            || !of_kind(&docs, "ClusterRoleBinding").is_empty()
        {
            return Err(
                "CronJob mode without the controller needs no Deployment and no ClusterRoleBinding"
                    .into(),
            );
        }
        let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
        let notes = helm_install(cp, &release, &release, &[], &sets).await?;
        let create_job = format!("kubectl -n {release} create job --from=cronjob/");
        if !notes.contains(&create_job)
            || !notes.contains("describe lcp site")
            || !notes.contains("licensing.reclaimer.dev/run-now")
        {
            return Err(format!(
                "the notes should tell how to follow and run {policies}/site:\n{notes}"
            )
            .into());
        }

        let identity = Identity::service_account(&release, name_of(only(&docs, "ServiceAccount")?));
        let cronjob_args = args(only(&docs, "CronJob")?);
        if !cronjob_args.iter().any(|a| a == "--if-due") {
            return Err(format!(
                "the CronJob should follow the policy's schedule: {cronjob_args:?}"
            )
            .into());
        }
        // Not due (the policy's schedule is at 03:00): the CronJob's look changes nothing.
        let output = run_binary_as(cp, &identity, cronjob_args.clone()).await?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        let untouched: LicenseCleanupPolicy = Api::namespaced(admin.clone(), &policies)
            .get("site")
            .await?;
        if !output.status.success()
            || !stderr.contains("not due")
            || untouched
                .status
                .as_ref()
                .and_then(|s| s.last_run.as_ref())
                .is_some()
        {
            return Err(
                format!("a CronJob look when nothing is due: {}", describe(&output)).into(),
            );
        }
        // A run-now value makes it due, as it would for the controller.
        run_now(&admin, &policies, "site", "1").await?;
        let output = run_binary_as(cp, &identity, cronjob_args).await?;
        if !output.status.success() {
            return Err(format!("the CronJob's run failed: {}", describe(&output)).into());
        }
        let result = last_run_now(&admin, &policies, "site")
            .await?
            .map(|r| r.header.result);
        if result != Some(RunResult::Succeeded) {
            return Err(format!("status after the CronJob's run: {result:?}").into());
        }
        let operator = identity.client(cp);
        forbidden(
            "listing policies cluster-wide",
            Api::<LicenseCleanupPolicy>::all(operator.clone())
                .list(&ListParams::default())
                .await,
        )?;
        forbidden(
            "listing policies of another namespace",
            Api::<LicenseCleanupPolicy>::namespaced(operator, &other)
                .list(&ListParams::default())
                .await,
        )?;
        Ok(())
    })
}
register!(chart_cronjob_mode_runs_a_policy_with_namespaced_rbac);
