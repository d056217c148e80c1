//! Flux's health checks for both kinds (deploy/flux/health-check-exprs.yaml), evaluated with a CEL interpreter as
//! kustomize-controller evaluates them: on the object itself, `inProgress`, then `failed`, then `current`; an
//! expression that cannot be evaluated (a field not there yet) leaves the object in progress, as Flux waits on it.

use std::path::Path;

use libtest_mimic::Failed;
use serde_json::Value;

/// What Flux makes of an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FluxHealth {
    InProgress,
    Failed,
    Current,
}

/// Flux's verdict on `object` of `kind` by the committed expressions.
pub fn flux_health(kind: &str, object: &Value) -> Result<FluxHealth, Failed> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/flux/health-check-exprs.yaml");
    let entries: Value = serde_yaml::from_str(&std::fs::read_to_string(path)?)?;
    let entry = entries
        .as_array()
        .and_then(|e| e.iter().find(|e| e["kind"] == kind))
        .ok_or_else(|| format!("no Flux health check for {kind}"))?;
    let mut context = cel::Context::default();
    if let Some(fields) = object.as_object() {
        for (name, value) in fields {
            context
                .add_variable(name.as_str(), value.clone())
                .map_err(|e| format!("{name}: {e}"))?;
        }
    }
    for (field, verdict) in [
        ("inProgress", FluxHealth::InProgress),
        ("failed", FluxHealth::Failed),
        ("current", FluxHealth::Current),
    ] {
        let source = entry[field]
            .as_str()
            .ok_or_else(|| format!("{kind}: no {field}"))?;
        let program = cel::Program::compile(source)
            .map_err(|e| format!("{kind}.{field} does not compile: {e}"))?;
        match program.execute(&context) {
            Ok(cel::Value::Bool(true)) => return Ok(verdict),
            Ok(cel::Value::Bool(false)) => {}
            Ok(other) => return Err(format!("{kind}.{field} gave {other:?}, not a bool").into()),
            // A field the expression reads is not there: Flux waits.
            Err(_) => return Ok(FluxHealth::InProgress),
        }
    }
    Ok(FluxHealth::InProgress)
}

/// The verdict Flux reaches for each of Argo CD's testdata objects (deploy/argocd/), by the file's name.
pub fn expected_for_argo_testdata(kind: &str, file: &str) -> FluxHealth {
    match (kind, file) {
        (_, f) if f.starts_with("healthy") || f.starts_with("suspended") => FluxHealth::Current,
        ("LicenseCleanupPolicy", "degraded-stalled.yaml") => FluxHealth::Failed,
        // Not stalled: the next run may succeed. kstatus reads it as in progress too.
        ("LicenseCleanupPolicy", "degraded-run-failed.yaml") => FluxHealth::InProgress,
        (_, f) if f.starts_with("degraded") => FluxHealth::Failed,
        _ => FluxHealth::InProgress,
    }
}
