//! Argo CD's health checks and actions for both kinds (deploy/argocd/, in Argo CD's resource-customization
//! layout), run with a real Lua 5.4 (Debian's, `scripts/lua.sh`) as Argo CD runs them: on their own testdata, and
//! on objects the real API server returned while the operator worked: Healthy, Progressing, Degraded and
//! Suspended each reached. Flux's CEL health checks (deploy/flux/) are evaluated on the same objects.

use std::path::{Path, PathBuf};
use std::process::Command;

use kube::Api;
use libtest_mimic::Failed;
use qlik_license_reclaimer::policy::LicenseCleanupPolicy;
use qlik_license_reclaimer::record::LicenseCleanupRun;
use serde_json::Value;

use crate::control_plane::ControlPlane;
use crate::flux::{FluxHealth, expected_for_argo_testdata, flux_health};
use crate::operator::{
    ControllerProcess, create_policy, create_policy_without_its_secret, ensure_installed,
    known_site_namespace, last_run_id, wait_for, wait_for_condition,
};
use crate::tools::{describe, lua_binary};
use crate::{TestResult, register, run, support};

fn kind_dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/argocd/licensing.reclaimer.dev")
        .join(kind)
}

/// `value` as a Lua expression: tables for objects and arrays, strings escaped byte by byte.
fn lua_literal(value: &Value) -> String {
    match value {
        Value::Null => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => {
            let mut out = String::from("\"");
            for byte in s.bytes() {
                match byte {
                    b'"' | b'\\' => {
                        out.push('\\');
                        out.push(byte as char);
                    }
                    0x20..=0x7e => out.push(byte as char),
                    _ => out.push_str(&format!("\\{byte:03}")),
                }
            }
            out.push('"');
            out
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(lua_literal).collect();
            format!("{{{}}}", items.join(", "))
        }
        Value::Object(map) => {
            let fields: Vec<String> = map
                .iter()
                .map(|(k, v)| {
                    format!(
                        "[{}] = {}",
                        lua_literal(&Value::String(k.clone())),
                        lua_literal(v)
                    )
                })
                .collect();
            format!("{{{}}}", fields.join(", "))
        }
    }
}

/// Runs `script` (a chunk that reads the global `obj`, as Argo CD's are) on `object`, then `then` (Lua that
/// prints what the test reads from the chunk's result, `result`); what it printed.
fn run_lua(script: &Path, object: &Value, then: &str) -> Result<String, Failed> {
    let dir = tempfile::tempdir()?;
    let program = dir.path().join("check.lua");
    std::fs::write(
        &program,
        format!(
            "obj = {}\nlocal result = dofile({})\n{then}\n",
            lua_literal(object),
            lua_literal(&Value::String(script.display().to_string()))
        ),
    )?;
    let output = Command::new(lua_binary()?).arg(&program).output()?;
    if !output.status.success() {
        return Err(format!("lua {}: {}", script.display(), describe(&output)).into());
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .trim_end()
        .to_string())
}

/// What `kind`'s health check says of `object`: its status and message.
fn health(kind: &str, object: &Value) -> Result<(String, String), Failed> {
    let out = run_lua(
        &kind_dir(kind).join("health.lua"),
        object,
        "print(result.status)\nprint(result.message or \"\")",
    )?;
    let (status, message) = out.split_once('\n').unwrap_or((&out, ""));
    Ok((status.to_string(), message.to_string()))
}

fn health_is(kind: &str, object: &Value, expected: &str) -> TestResult {
    let (status, message) = health(kind, object)?;
    if status != expected {
        return Err(
            format!("{kind}: {status} ({message}), expected {expected}, for {object}").into(),
        );
    }
    // Flux, on the same object: Healthy and Suspended are current, a stalled policy failed, Progressing waits.
    let flux = flux_health(kind, object)?;
    let expected_flux = match expected {
        "Healthy" | "Suspended" => FluxHealth::Current,
        "Progressing" => FluxHealth::InProgress,
        _ => FluxHealth::Failed,
    };
    if flux != expected_flux {
        return Err(
            format!("Flux on {kind}: {flux:?}, expected {expected_flux:?}, for {object}").into(),
        );
    }
    Ok(())
}

/// The annotation `key` of the object the action `name` returns, and whether discovery enables the action.
fn action(kind: &str, name: &str, object: &Value, key: &str) -> Result<(String, bool), Failed> {
    let actions = kind_dir(kind).join("actions");
    let annotation = run_lua(
        &actions.join(name).join("action.lua"),
        object,
        &format!(
            "print(result.metadata.annotations[{}])",
            lua_literal(&Value::String(key.into()))
        ),
    )?;
    let disabled = run_lua(
        &actions.join("discovery.lua"),
        object,
        &format!(
            "print(result[{}].disabled)",
            lua_literal(&Value::String(name.into()))
        ),
    )?;
    Ok((annotation, disabled != "true"))
}

fn argo_health_checks_pass_their_own_tests(_: &ControlPlane) -> TestResult {
    for kind in ["LicenseCleanupPolicy", "LicenseCleanupRun"] {
        let tests: Value = serde_yaml::from_str(&std::fs::read_to_string(
            kind_dir(kind).join("health_test.yaml"),
        )?)?;
        let cases = tests["tests"].as_array().ok_or("no tests")?;
        for case in cases {
            let input = case["inputPath"].as_str().ok_or("inputPath")?;
            let object: Value =
                serde_yaml::from_str(&std::fs::read_to_string(kind_dir(kind).join(input))?)?;
            let got = health(kind, &object)?;
            let expected = (
                case["healthStatus"]["status"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                case["healthStatus"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            );
            if got != expected {
                return Err(
                    format!("{kind} {input}: {got:?}, health_test.yaml says {expected:?}").into(),
                );
            }
            let file = input.rsplit('/').next().unwrap_or(input);
            let flux = flux_health(kind, &object)?;
            if flux != expected_for_argo_testdata(kind, file) {
                return Err(format!("Flux on {kind} {input}: {flux:?}").into());
            }
        }
    }
    Ok(())
}
register!(argo_health_checks_pass_their_own_tests);

fn argo_health_and_actions_on_what_the_api_server_returns(cp: &ControlPlane) -> TestResult {
    ensure_installed(cp)?;
    run(cp, async {
        let (admin, sim, namespace) = known_site_namespace(cp, "argocd").await?;
        let policies: Api<LicenseCleanupPolicy> = Api::namespaced(admin.clone(), &namespace);
        let as_json = |p: &LicenseCleanupPolicy| serde_json::to_value(p);

        // Before the operator looks at it: Progressing.
        create_policy(&admin, &namespace, "site", support::dry_run_policy(&sim)).await?;
        health_is(
            "LicenseCleanupPolicy",
            &as_json(&policies.get("site").await?)?,
            "Progressing",
        )?;
        let mut suspended = support::dry_run_policy(&sim);
        suspended.suspend = true;
        create_policy(&admin, &namespace, "paused", suspended).await?;
        create_policy_without_its_secret(&admin, &namespace, ("broken", "missing"), &sim).await?;

        let _controller = ControllerProcess::start(cp, &namespace, &[])?;
        let stalled = wait_for_condition(
            &admin,
            &namespace,
            "broken",
            "Stalled",
            ("True", "SecretNotFound"),
        )
        .await?;
        health_is("LicenseCleanupPolicy", &as_json(&stalled)?, "Degraded")?;
        let paused = wait_for(&admin, &namespace, "paused", "looked at", |p| {
            p.status.as_ref().is_some_and(|s| !s.conditions.is_empty())
        })
        .await?;
        health_is("LicenseCleanupPolicy", &as_json(&paused)?, "Suspended")?;

        // The run-now action, applied as Argo CD applies it: the operator runs the policy, which is then Healthy.
        let site = as_json(&policies.get("site").await?)?;
        let (value, enabled) = action(
            "LicenseCleanupPolicy",
            "run-now",
            &site,
            "licensing.reclaimer.dev/run-now",
        )?;
        if value.is_empty() || !enabled {
            return Err(format!("run-now: annotation {value:?}, enabled {enabled}").into());
        }
        crate::operator::run_now(&admin, &namespace, "site", &value).await?;
        let ran = wait_for(&admin, &namespace, "site", "a run", |p| {
            last_run_id(p).is_some()
        })
        .await?;
        health_is("LicenseCleanupPolicy", &as_json(&ran)?, "Healthy")?;
        let (_, enabled) = action(
            "LicenseCleanupPolicy",
            "run-now",
            &as_json(&paused)?,
            "licensing.reclaimer.dev/run-now",
        )?;
        if enabled {
            return Err("run-now is offered on a suspended policy".into());
        }

        // The run's record: Healthy; a dry run offers no restore.
        let runs: Api<LicenseCleanupRun> = Api::namespaced(admin.clone(), &namespace);
        let record = runs
            .list(&Default::default())
            .await?
            .items
            .into_iter()
            .next()
            .ok_or("no record")?;
        let record = serde_json::to_value(&record)?;
        health_is("LicenseCleanupRun", &record, "Healthy")?;
        let (value, enabled) = action(
            "LicenseCleanupRun",
            "restore",
            &record,
            "licensing.reclaimer.dev/restore",
        )?;
        if value.is_empty() || enabled {
            return Err(format!(
                "restore on a dry run's record: annotation {value:?}, enabled {enabled}"
            )
            .into());
        }
        Ok(())
    })
}
register!(argo_health_and_actions_on_what_the_api_server_returns);
