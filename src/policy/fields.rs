//! Fields a manifest has but the resource does not: a misspelt `exclude` would otherwise run with no exclusions.

use super::{InvalidPolicy, LicenseCleanupPolicy};

/// Refuses fields the resource does not have, naming the nearest one it does: `exlcude:` for `exclude:` would
/// otherwise run with no exclusions at all. The API server drops unknown fields (and `kubectl` warns or, with
/// `--validate=strict`, refuses); a manifest given to `run --policy FILE` never went through it, and the
/// controller reads what `kubectl apply` recorded of the manifest (see [`last_applied_unknown_field`]).
pub fn check_known_fields(manifest: &serde_json::Value) -> Result<(), InvalidPolicy> {
    use kube::CustomResourceExt as _;
    let crd = LicenseCleanupPolicy::crd();
    let Some(schema) = crd
        .spec
        .versions
        .first()
        .and_then(|v| v.schema.as_ref())
        .and_then(|s| s.open_api_v3_schema.as_ref())
    else {
        return Ok(());
    };
    check_against(manifest, schema, "")
}

/// What `kubectl apply` recorded of the manifest (`kubectl.kubernetes.io/last-applied-configuration`), checked
/// with [`check_known_fields`]: the API server pruned the misspelt field, but the record still holds it.
pub fn last_applied_unknown_field(policy: &LicenseCleanupPolicy) -> Option<InvalidPolicy> {
    let recorded = policy
        .metadata
        .annotations
        .as_ref()?
        .get("kubectl.kubernetes.io/last-applied-configuration")?;
    let manifest: serde_json::Value = serde_json::from_str(recorded).ok()?;
    check_known_fields(&manifest).err()
}

fn check_against(
    value: &serde_json::Value,
    schema: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps,
    path: &str,
) -> Result<(), InvalidPolicy> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaPropsOrArray;
    if schema.x_kubernetes_preserve_unknown_fields == Some(true) {
        return Ok(());
    }
    match value {
        serde_json::Value::Object(map) => {
            let Some(properties) = &schema.properties else {
                // A map (additionalProperties) or free-form object, such as metadata.
                return Ok(());
            };
            for (key, child) in map {
                let field = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                // The generated schema leaves out the fields every object has.
                if path.is_empty() && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                match properties.get(key) {
                    Some(child_schema) => check_against(child, child_schema, &field)?,
                    None => return Err(unknown_field(&field, key, properties.keys())),
                }
            }
            Ok(())
        }
        serde_json::Value::Array(items) => {
            let Some(JSONSchemaPropsOrArray::Schema(item_schema)) = &schema.items else {
                return Ok(());
            };
            for (i, item) in items.iter().enumerate() {
                check_against(item, item_schema, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn unknown_field<'a>(
    field: &str,
    key: &str,
    known: impl Iterator<Item = &'a String>,
) -> InvalidPolicy {
    let known: Vec<&String> = known.collect();
    let nearest = known
        .iter()
        .map(|k| {
            (
                strsim::damerau_levenshtein(&key.to_lowercase(), &k.to_lowercase()),
                *k,
            )
        })
        .min();
    let hint = match nearest {
        Some((distance, name)) if distance <= key.len().max(3) / 2 => {
            format!("; did you mean {name:?}?")
        }
        _ => format!(
            "; known fields here: {}",
            known
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    InvalidPolicy::new(
        field,
        format!(
            "unknown field {key:?}{hint} (a misspelt field would be ignored, and with it whatever it promised)"
        ),
    )
}
