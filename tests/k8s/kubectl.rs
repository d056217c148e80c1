//! What an administrator reads, read with the real `kubectl` (built with the control plane by
//! `scripts/envtest-assets.sh`, or `KUBECTL`): `kubectl get` columns, `kubectl describe` telling the last runs
//! through Events, `kubectl explain` documenting each field, and `kubectl apply --validate=strict` refusing a
//! misspelt one.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use libtest_mimic::Failed;

use crate::control_plane::{ControlPlane, assets_dir};
use crate::operator::{
    ControllerProcess, condition, ensure_installed, known_site_policy, next_run, wait_for_condition,
};
use crate::tools::{describe, failed_saying};
use crate::{TestResult, register, run, support};

/// kubectl: `KUBECTL`, or the one beside the control plane's binaries.
fn kubectl_binary() -> Result<PathBuf, Failed> {
    if let Some(path) = std::env::var_os("KUBECTL").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let path = assets_dir()?.join("kubectl");
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{} not found: set KUBECTL to a kubectl binary",
            path.display()
        )
        .into())
    }
}

/// kubectl as the cluster's administrator; its output, which must be a success.
fn kubectl(kubeconfig: &Path, args: &[&str]) -> Result<Output, Failed> {
    let output = Command::new(kubectl_binary()?)
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .args(args)
        .output()?;
    Ok(output)
}

pub(crate) fn stdout_of(kubeconfig: &Path, args: &[&str]) -> Result<String, Failed> {
    let output = kubectl(kubeconfig, args)?;
    if !output.status.success() {
        return Err(format!("kubectl {}: {}", args.join(" "), describe(&output)).into());
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The words of a table's header line, and the line of the row whose first cell is `name`.
pub(crate) fn table_row<'a>(table: &'a str, name: &str) -> Result<(&'a str, &'a str), Failed> {
    let header = table.lines().next().ok_or("no output")?;
    let row = table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .ok_or_else(|| format!("no row {name}:\n{table}"))?;
    Ok((header, row))
}

fn kubectl_tells_an_administrator_the_story(cp: &ControlPlane) -> TestResult {
    ensure_installed(cp)?;
    run(cp, async {
        let (admin, sim, namespace) = known_site_policy(cp, "kubectl").await?;
        let _controller = ControllerProcess::start(cp, &namespace, &[])?;
        next_run(&admin, &namespace, "site", "1", "a run").await?;
        let dir = tempfile::tempdir()?;
        let kubeconfig = dir.path().join("kubeconfig");
        cp.write_kubeconfig(&kubeconfig, "admin", &["system:masters"])?;
        let kubeconfig = kubeconfig.as_path();

        // kubectl get lcp: the columns, and this policy's row.
        let table = stdout_of(kubeconfig, &["get", "lcp", "-n", &namespace])?;
        let (header, row) = table_row(&table, "site")?;
        for column in [
            "SCHEDULE",
            "DRY RUN",
            "READY",
            "LAST RUN",
            "RECLAIMED",
            "MOVED",
            "PENDING",
            "NEXT RUN",
            "AGE",
        ] {
            if !header.contains(column) {
                return Err(format!("kubectl get lcp has no {column} column:\n{table}").into());
            }
        }
        for cell in ["false", "True", "Succeeded", "2"] {
            if !row.split_whitespace().any(|c| c == cell) {
                return Err(
                    format!("kubectl get lcp: {cell} missing from the row:\n{table}").into(),
                );
            }
        }

        // kubectl get lcprun: the run's record.
        let runs = stdout_of(kubeconfig, &["get", "lcprun", "-n", &namespace])?;
        let header = runs.lines().next().unwrap_or_default();
        for column in ["POLICY", "RESULT", "RECLAIMED", "FAILED", "RETURNED"] {
            if !header.contains(column) {
                return Err(format!("kubectl get lcprun has no {column} column:\n{runs}").into());
            }
        }
        if !runs
            .lines()
            .skip(1)
            .any(|l| l.contains("site") && l.contains("Succeeded"))
        {
            return Err(format!("kubectl get lcprun shows no run of site:\n{runs}").into());
        }

        // kubectl describe lcp: the story of the last run, through its Events.
        let described = stdout_of(kubeconfig, &["describe", "lcp", "-n", &namespace, "site"])?;
        let events = described.split("Events:").nth(1).unwrap_or_default();
        if !events.contains("RunSucceeded") || !events.contains("reclaimed 2") {
            return Err(format!("kubectl describe lcp tells no run:\n{described}").into());
        }

        // kubectl explain: every field of spec.exclude documented.
        let explained = stdout_of(
            kubeconfig,
            &["explain", "licensecleanuppolicy.spec.exclude"],
        )?;
        for field in [
            "users",
            "userDirectories",
            "tags",
            "customProperties",
            "roles",
            "userStates",
        ] {
            let documented = explained
                .lines()
                .skip_while(|l| l.split_whitespace().next() != Some(field))
                .nth(1)
                .is_some_and(|description| !description.trim().is_empty());
            if !documented {
                return Err(format!("kubectl explain documents no {field}:\n{explained}").into());
            }
        }

        // kubectl apply --validate=strict refuses a misspelt field.
        let manifest = dir.path().join("typo.yaml");
        let mut policy =
            serde_json::to_value(qlik_license_reclaimer::policy::LicenseCleanupPolicy::new(
                "typo",
                support::policy(&sim),
            ))?;
        policy["metadata"]["namespace"] = namespace.clone().into();
        policy["spec"]["exlcude"] = serde_json::json!({"users": ["CORP\\ceo"]});
        std::fs::write(&manifest, serde_yaml::to_string(&policy)?)?;
        let manifest = manifest.display().to_string();
        let applied = kubectl(kubeconfig, &["apply", "--validate=strict", "-f", &manifest])?;
        failed_saying(
            &applied,
            "exlcude",
            "kubectl apply --validate=strict took a misspelt field",
        )
    })
}
register!(kubectl_tells_an_administrator_the_story);

/// kstatus, as `kubectl wait`, Flux and Argo CD read it: a policy whose Secret is missing is Ready=False and
/// Stalled=True before any run, and Ready once the Secret is there; `kubectl wait --for=condition=Ready` returns
/// for the policy and for a run's record; every condition carries the generation it was written for.
fn kstatus_conditions_are_what_kubectl_wait_reads(cp: &ControlPlane) -> TestResult {
    ensure_installed(cp)?;
    run(cp, async {
        let (admin, sim, namespace) = crate::operator::known_site_namespace(cp, "kstatus").await?;
        crate::operator::create_policy_without_its_secret(
            &admin,
            &namespace,
            ("site", "not-yet"),
            &sim,
        )
        .await?;
        let _controller = ControllerProcess::start(cp, &namespace, &[])?;
        let waiting = wait_for_condition(
            &admin,
            &namespace,
            "site",
            "Ready",
            ("False", "SecretNotFound"),
        )
        .await?;
        if condition(&waiting, "Stalled") != Some(("True".into(), "SecretNotFound".into())) {
            return Err(format!("a missing Secret stalls the policy: {:?}", waiting.status).into());
        }
        if crate::operator::last_run_id(&waiting).is_some() {
            return Err("the policy ran without its Secret".into());
        }
        let generation = waiting.metadata.generation;
        let conditions = waiting
            .status
            .as_ref()
            .map(|s| s.conditions.clone())
            .unwrap_or_default();
        if conditions
            .iter()
            .any(|c| c.observed_generation != generation)
        {
            return Err(format!(
                "conditions without the generation {generation:?}: {conditions:?}"
            )
            .into());
        }

        // The Secret arrives; a touch of the policy (as GitOps tools re-apply) is looked at again: Ready.
        crate::operator::put_named_secret(
            &admin,
            &namespace,
            "not-yet",
            support::credential_entries(&sim),
        )
        .await?;
        crate::operator::run_now(&admin, &namespace, "site", "1").await?;
        let dir = tempfile::tempdir()?;
        let kubeconfig = dir.path().join("kubeconfig");
        cp.write_kubeconfig(&kubeconfig, "admin", &["system:masters"])?;
        let kubeconfig = kubeconfig.as_path();
        stdout_of(
            kubeconfig,
            &[
                "wait",
                "--for=condition=Ready",
                "lcp/site",
                "-n",
                &namespace,
                "--timeout=60s",
            ],
        )?;
        let ready = crate::operator::wait_for(&admin, &namespace, "site", "a run", |p| {
            crate::operator::last_run_id(p).is_some()
        })
        .await?;
        for (type_, expected) in [
            ("Stalled", "False"),
            ("Reconciling", "False"),
            ("Ready", "True"),
        ] {
            if condition(&ready, type_).map(|c| c.0).as_deref() != Some(expected) {
                return Err(format!("{type_} should be {expected}: {:?}", ready.status).into());
            }
        }
        // The run's record: Ready once written.
        stdout_of(
            kubeconfig,
            &[
                "wait",
                "--for=condition=Ready",
                "lcprun",
                "--all",
                "-n",
                &namespace,
                "--timeout=60s",
            ],
        )?;
        let records = stdout_of(
            kubeconfig,
            &["get", "lcprun", "-n", &namespace, "-o", "name"],
        )?;
        if records.lines().count() != 1 {
            return Err(format!("expected one record: {records}").into());
        }
        Ok(())
    })
}
register!(kstatus_conditions_are_what_kubectl_wait_reads);
