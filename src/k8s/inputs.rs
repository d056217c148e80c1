//! What a run reads from the cluster before it starts: the policy checked as a manifest is, its credentials
//! Secret, and its notification settings (Secrets and a template ConfigMap), each failure a reason an
//! administrator can act on.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{Api, Client};

use super::conditions::ConditionReason;
use crate::credentials::{Credentials, CredentialsError};
use crate::notify::{self, Notifier, SecretEntries, TemplateSource};
use crate::policy::{
    InvalidPolicy, LicenseCleanupPolicy, Permissions, ValidPolicy, last_applied_unknown_field,
};

/// Why a run could not start. Each maps to a `Ready=False` reason an administrator can act on.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StartError {
    #[error("{0}")]
    InvalidPolicy(String),
    #[error(
        "Secret {namespace}/{name} not found: create it from the QMC certificate export, for example `kubectl -n {namespace} create secret generic {name} --from-file=client.pem --from-file=client_key.pem --from-file=root.pem`"
    )]
    SecretNotFound { namespace: String, name: String },
    #[error("Secret {namespace}/{name} cannot be read: {detail}")]
    SecretUnreadable {
        namespace: String,
        name: String,
        detail: String,
    },
    #[error("{0}")]
    Api(String),
    #[error("notifications (spec.notify): {0}")]
    Notifications(String),
    #[error("Secret {namespace}/{name}: {source}")]
    SecretInvalid {
        namespace: String,
        name: String,
        #[source]
        source: CredentialsError,
    },
}

impl StartError {
    pub(crate) fn reason(&self) -> ConditionReason {
        match self {
            StartError::InvalidPolicy(_) => ConditionReason::InvalidPolicy,
            StartError::Api(_) => ConditionReason::ApiError,
            StartError::SecretNotFound { .. } => ConditionReason::SecretNotFound,
            StartError::SecretUnreadable { .. } => ConditionReason::SecretUnreadable,
            StartError::SecretInvalid { .. } => ConditionReason::SecretInvalid,
            StartError::Notifications(_) => ConditionReason::NotificationsInvalid,
        }
    }
}

/// A policy resource checked as the program checks a manifest file: the spec, what the operator allows, and
/// the fields `kubectl apply` recorded but the API server dropped (a misspelt `exclude` would otherwise go
/// unnoticed: the API server prunes unknown fields and only warns).
pub(crate) fn validate_resource(
    policy: &LicenseCleanupPolicy,
    permissions: &Permissions,
) -> Result<ValidPolicy, InvalidPolicy> {
    if let Some(unknown) = last_applied_unknown_field(policy) {
        return Err(unknown);
    }
    crate::policy::validate(&policy.spec, permissions)
}

/// Read and parse the policy's credentials Secret (at every run, so a rotated certificate is used at once).
pub(crate) async fn load_credentials(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Credentials, StartError> {
    let entries = read_secret(client, namespace, name).await?;
    Credentials::from_entries(&entries).map_err(|source| StartError::SecretInvalid {
        namespace: namespace.into(),
        name: name.into(),
        source,
    })
}

/// A Secret's entries, `data` and `stringData` alike.
pub(crate) async fn read_secret(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<BTreeMap<String, Vec<u8>>, StartError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = match secrets.get_opt(name).await {
        Ok(Some(secret)) => secret,
        Ok(None) => {
            return Err(StartError::SecretNotFound {
                namespace: namespace.into(),
                name: name.into(),
            });
        }
        Err(e) => {
            return Err(StartError::SecretUnreadable {
                namespace: namespace.into(),
                name: name.into(),
                detail: e.to_string(),
            });
        }
    };
    let mut entries: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (key, value) in secret.data.unwrap_or_default() {
        entries.insert(key, value.0);
    }
    for (key, value) in secret.string_data.unwrap_or_default() {
        entries.insert(key, value.into_bytes());
    }
    Ok(entries)
}

/// The policy's notification channels, from the Secrets (and template ConfigMap) it names, read at every run.
pub(super) async fn load_notifier(
    client: &Client,
    namespace: &str,
    policy: &str,
    spec: &crate::policy::NotifySpec,
) -> Result<Notifier, StartError> {
    // A notification Secret that is missing or unreadable is the notification settings' problem, not the
    // credentials': its reason must not be cleared by a check of the credentials Secret alone.
    let notification_secret =
        |e: StartError| StartError::Notifications(format!("spec.notify: {e}"));
    let mut secrets = SecretEntries::new();
    for name in notify::secret_names(spec) {
        let entries = read_secret(client, namespace, &name)
            .await
            .map_err(notification_secret)?;
        secrets.insert(name, entries);
    }
    let templates = match notify::template_source(spec) {
        Some(TemplateSource::Secret(name)) => notify::template_texts(
            &read_secret(client, namespace, &name)
                .await
                .map_err(notification_secret)?,
        ),
        Some(TemplateSource::ConfigMap(name)) => {
            let maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
            let map = maps.get_opt(&name).await.map_err(|e| {
                StartError::Notifications(format!(
                    "ConfigMap {namespace}/{name} cannot be read: {e}"
                ))
            })?;
            let map = map.ok_or_else(|| {
                StartError::Notifications(format!(
                    "ConfigMap {namespace}/{name} (spec.notify.email.templates) not found"
                ))
            })?;
            map.data.unwrap_or_default().into_iter().collect()
        }
        None => BTreeMap::new(),
    };
    Notifier::new(policy, spec, &secrets, &templates)
        .map_err(|e| StartError::Notifications(e.to_string()))
}
