//! The `LicenseCleanupPolicy` custom resource (group `licensing.reclaimer.dev`, version `v1alpha1`).
//!
//! Doc comments on fields become `kubectl explain` text. Bounds and CEL rules are enforced by the API server
//! at admission; `crate::plan::Rules::from_spec` checks the same things again (and what CEL cannot, such as
//! whether a cron expression really parses) so that `run --policy FILE` fails just as clearly.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::SeatCounts;

/// Annotation whose every new value triggers one run now.
pub const RUN_NOW_ANNOTATION: &str = "licensing.reclaimer.dev/run-now";

/// A schedule on which inactive users' Qlik Sense licences are reclaimed from one site.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "licensing.reclaimer.dev",
    version = "v1alpha1",
    kind = "LicenseCleanupPolicy",
    plural = "licensecleanuppolicies",
    shortname = "lcp",
    category = "qlik",
    namespaced,
    status = "LicenseCleanupPolicyStatus",
    printcolumn = r#"{"name":"Schedule","type":"string","jsonPath":".spec.schedule"}"#,
    printcolumn = r#"{"name":"Dry Run","type":"boolean","jsonPath":".spec.dryRun"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Last Run","type":"string","jsonPath":".status.lastRun.result"}"#,
    printcolumn = r#"{"name":"Reclaimed","type":"integer","jsonPath":".status.lastRun.totals.reclaimed"}"#,
    printcolumn = r#"{"name":"Last Schedule","type":"date","jsonPath":".status.lastScheduleTime"}"#,
    printcolumn = r#"{"name":"Next Run","type":"string","jsonPath":".status.nextScheduleTime"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct LicenseCleanupPolicySpec {
    /// When to run: a 5-field cron expression (minute hour day-of-month month day-of-week), optionally with a
    /// leading seconds field, or one of @hourly, @daily, @weekly, @monthly, @yearly.
    #[x_kube(validation = Rule::new("self.matches('^(@(hourly|daily|midnight|weekly|monthly|yearly|annually)|\\\\S+(\\\\s+\\\\S+){4,5})$')").message("schedule must be a 5-field cron expression (optionally with a leading seconds field) or @hourly, @daily, @weekly, @monthly or @yearly"))]
    pub schedule: String,

    /// IANA time zone the schedule is read in, for example Europe/Oslo.
    #[serde(default = "default_time_zone")]
    #[schemars(length(min = 1, max = 64))]
    pub time_zone: String,

    /// Stop scheduling runs. A run in progress finishes.
    #[serde(default)]
    pub suspend: bool,

    /// Report only: nothing is deallocated. An administrator sets false to reclaim licences.
    #[serde(default = "default_true")]
    pub dry_run: bool,

    /// A run missed (for example while the controller was down) by more than this many seconds is skipped, not
    /// caught up. Only the most recent missed run is ever made up.
    #[serde(default = "default_starting_deadline")]
    #[schemars(range(min = 0, max = 604800))]
    pub starting_deadline_seconds: i64,

    /// The Qlik Sense site and how to reach its repository service.
    pub site: SiteSpec,

    /// Inactivity thresholds per access type. An access type that is absent is not touched.
    pub access_types: AccessTypesSpec,

    /// A never-used allocation counts as inactive once its createdDate is older than this many days.
    #[serde(default = "default_never_used_grace")]
    #[schemars(range(min = 1, max = 3650))]
    pub never_used_grace_days: u32,

    /// Only these users are considered. Empty means everyone.
    #[serde(default)]
    pub scope: ScopeSpec,

    /// Users who are never reclaimed.
    #[serde(default)]
    pub exclude: ExcludeSpec,

    /// Safety limits.
    #[serde(default)]
    pub limits: LimitsSpec,

    /// Runs kept in status.history.
    #[serde(default = "default_history_limit")]
    #[schemars(range(min = 0, max = 100))]
    pub history_limit: u32,
}

/// Where the Qlik Sense site is and how to authenticate.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("has(self.repositoryUrl) != has(self.proxy)").message("set exactly one of site.repositoryUrl (direct QRS with the client certificate) or site.proxy (a QPS session, then the hub)"))]
#[serde(rename_all = "camelCase")]
pub struct SiteSpec {
    /// Direct Qlik Repository Service URL, usually https://HOST:4242. Requests use the client certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(ORIGIN_RULE).message("site.repositoryUrl must be an origin: https://HOST[:PORT], no path, query or user"))]
    pub repository_url: Option<String>,

    /// Reach QRS through the Qlik Proxy: create a session on QPS with the certificate, then call the hub with the
    /// session cookie.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<ProxySpec>,

    /// The Qlik user the requests act as (X-Qlik-User, or the session's user).
    #[serde(default)]
    pub user: QlikUserSpec,

    /// The Secret (in the policy's namespace) with client.pem, client_key.pem, root.pem and optionally xrfkey.
    pub credentials_secret_ref: SecretRef,

    /// TLS settings for the connection to Qlik.
    #[serde(default)]
    pub tls: TlsSpec,

    /// Timeout of one request to Qlik, in seconds.
    #[serde(default = "default_request_timeout")]
    #[schemars(range(min = 1, max = 600))]
    pub request_timeout_seconds: u32,

    /// Deallocations sent in parallel.
    #[serde(default = "default_concurrency")]
    #[schemars(range(min = 1, max = 32))]
    pub concurrency: u32,
}

/// A URL that is an origin and nothing more: `https://HOST[:PORT]`, an optional final slash. The program
/// checks the same with a URL parser before any request.
const ORIGIN_RULE: &str = "self.matches('^https://[^/?#@[:space:]]+/?$')";

/// The Qlik Proxy Service session route.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProxySpec {
    /// Qlik Proxy Service API URL, usually https://HOST:4243 (an origin: no path, query or user).
    #[x_kube(validation = Rule::new(ORIGIN_RULE).message("site.proxy.qpsUrl must be an origin: https://HOST[:PORT], no path, query or user"))]
    pub qps_url: String,
    /// Hub URL the session cookie is used on, usually https://HOST (an origin: no path, query or user).
    #[x_kube(validation = Rule::new(ORIGIN_RULE).message("site.proxy.hubUrl must be an origin: https://HOST[:PORT], no path, query or user"))]
    pub hub_url: String,
    /// Virtual proxy prefix; empty for the default virtual proxy.
    #[serde(default)]
    #[schemars(regex(pattern = r"^[A-Za-z0-9_.~-]*$"))]
    pub virtual_proxy_prefix: String,
    /// Session cookie name of the virtual proxy. Default: X-Qlik-Session, plus "-<prefix>" when a prefix is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_cookie_name: Option<String>,
}

impl ProxySpec {
    /// The cookie name Qlik uses for this virtual proxy unless the administrator renamed it.
    pub fn effective_cookie_name(&self) -> String {
        match &self.session_cookie_name {
            Some(name) if !name.is_empty() => name.clone(),
            _ if self.virtual_proxy_prefix.is_empty() => "X-Qlik-Session".to_string(),
            _ => format!("X-Qlik-Session-{}", self.virtual_proxy_prefix),
        }
    }
}

/// A Qlik user, DIRECTORY\id.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct QlikUserSpec {
    /// User directory, for example INTERNAL.
    #[schemars(length(min = 1, max = 255))]
    pub directory: String,
    /// User id, for example sa_repository.
    #[schemars(length(min = 1, max = 255))]
    pub id: String,
}

impl Default for QlikUserSpec {
    fn default() -> Self {
        // The repository's own service account: what Qlik's tools use with the exported certificate.
        Self {
            directory: "INTERNAL".into(),
            id: "sa_repository".into(),
        }
    }
}

/// A reference to a Secret in the policy's namespace.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// TLS settings.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TlsSpec {
    /// Host name expected in Qlik's server certificate when it differs from the URL's host. Qlik often issues
    /// certificates for the short host name (qlikserver1) while clients use the full one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// Do not verify Qlik's server certificate at all. Dangerous: anyone on the path can read the
    /// certificate-authenticated session. Logged loudly at every run.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// Inactivity thresholds per access type.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[x_kube(validation = Rule::new("has(self.professional) || has(self.analyzer) || has(self.user)").message("configure at least one of accessTypes.professional, accessTypes.analyzer or accessTypes.user"))]
#[serde(rename_all = "camelCase")]
pub struct AccessTypesSpec {
    /// Professional access allocations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub professional: Option<AccessTypeRule>,
    /// Analyzer access allocations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analyzer: Option<AccessTypeRule>,
    /// Token-model user access passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<AccessTypeRule>,
}

/// When an allocation of one access type counts as inactive.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AccessTypeRule {
    /// Days since last use after which the allocation is reclaimed. At least 7: Qlik quarantines (rather than
    /// frees) a seat used in the last 7 days, and the user loses access meanwhile.
    #[schemars(range(min = 7, max = 3650))]
    pub inactive_days: u32,
}

/// Who is considered at all.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ScopeSpec {
    /// Only users of these user directories (case-insensitive).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub user_directories: Vec<String>,
    /// Only these users, as DIRECTORY\userId; '*' matches any run of characters; case-insensitive.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10000))]
    pub users: Vec<String>,
}

/// Users who are never reclaimed.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ExcludeSpec {
    /// DIRECTORY\userId patterns; '*' matches any run of characters; case-insensitive.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10000))]
    pub users: Vec<String>,
    /// Whole user directories (case-insensitive).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub user_directories: Vec<String>,
    /// Users carrying any of these QMC tags (case-insensitive).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub tags: Vec<String>,
    /// Users whose custom property has one of the values (names and values case-insensitive).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub custom_properties: Vec<CustomPropertyMatch>,
    /// Users holding any of these admin roles, for example RootAdmin (case-insensitive).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub roles: Vec<String>,
}

/// A custom property and the values that exclude a user.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CustomPropertyMatch {
    /// Custom property definition name.
    #[schemars(length(min = 1, max = 255))]
    pub name: String,
    /// Values that exclude the user; empty means any value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// Safety limits of one run.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LimitsSpec {
    /// At most this many seats are reclaimed in one run, longest idle first.
    #[serde(default = "default_max_reclaims")]
    #[schemars(range(min = 1, max = 100000))]
    pub max_reclaims_per_run: u32,
    /// If an access type's candidates exceed this percentage of all its allocations on the site, the run is
    /// aborted before anything is deallocated: such a number usually means a wrong threshold or a broken site.
    #[serde(default = "default_max_percent")]
    #[schemars(range(min = 1, max = 100))]
    pub max_reclaim_percent: u32,
}

impl Default for LimitsSpec {
    fn default() -> Self {
        Self {
            max_reclaims_per_run: default_max_reclaims(),
            max_reclaim_percent: default_max_percent(),
        }
    }
}

fn default_time_zone() -> String {
    "UTC".into()
}
fn default_true() -> bool {
    true
}
fn default_starting_deadline() -> i64 {
    3600
}
fn default_never_used_grace() -> u32 {
    14
}
fn default_history_limit() -> u32 {
    10
}
fn default_request_timeout() -> u32 {
    30
}
fn default_concurrency() -> u32 {
    4
}
fn default_max_reclaims() -> u32 {
    100
}
fn default_max_percent() -> u32 {
    50
}

/// What the controller (or `run --policy-ref`) last observed and did.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct LicenseCleanupPolicyStatus {
    /// The spec generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready: the policy is valid and its last run did not fail. Running: a run is in progress.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// When the last run was started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<Time>,
    /// When a run last completed successfully.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_time: Option<Time>,
    /// When the next run is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_schedule_time: Option<Time>,
    /// The outcome of the last run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<RunStatus>,
    /// Compact summaries of recent runs, newest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<RunSummary>,
    /// The value of the licensing.reclaimer.dev/run-now annotation that the last triggered run answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_now: Option<String>,
    /// The run that holds the policy now. A policy runs at most once at a time, whichever runs it (the
    /// controller, another replica, a CronJob's `run --policy-ref`); a hold not renewed within
    /// `holdSeconds` is void, so a runner that crashed cannot keep it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_run: Option<ActiveRun>,
}

/// A run's hold on its policy, renewed while the run goes on.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ActiveRun {
    /// The run's id.
    pub id: String,
    /// Who runs it: the controller's pod, or `run --policy-ref`.
    pub holder: String,
    pub start_time: Time,
    /// Last renewal.
    pub renew_time: Time,
    /// The hold is void this long after its last renewal.
    pub hold_seconds: u32,
}

impl ActiveRun {
    /// Whether the hold still stands at `now`.
    pub fn holds_at(&self, now: jiff::Timestamp) -> bool {
        self.renew_time.0.as_second() + i64::from(self.hold_seconds) > now.as_second()
    }
}

/// How a run ended.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunResult {
    /// The run completed; in dry run, it reported what it would reclaim.
    Succeeded,
    /// The run could not complete (unreachable site, authentication, nonsensical answers, failed seats).
    Failed,
    /// A safety limit stopped the run before anything was deallocated.
    Aborted,
}

impl RunResult {
    pub fn as_str(self) -> &'static str {
        match self {
            RunResult::Succeeded => "Succeeded",
            RunResult::Failed => "Failed",
            RunResult::Aborted => "Aborted",
        }
    }
}

/// The last run in detail.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RunStatus {
    /// Run identifier, also in logs and Events.
    pub id: String,
    pub start_time: Time,
    pub completion_time: Time,
    /// Whether this run only reported.
    pub dry_run: bool,
    pub result: RunResult,
    /// What happened, in a sentence.
    pub message: String,
    /// Totals over all access types.
    pub totals: TypeCounts,
    /// Counts per access type (professional, analyzer, user).
    #[serde(default)]
    pub per_access_type: BTreeMap<String, TypeCounts>,
    /// Seats per access type from the site's access type overview.
    #[serde(default)]
    pub seats: BTreeMap<String, SeatCounts>,
    /// The first 50 seats reclaimed (or, in dry run, that would be).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reclaimed: Vec<ReclaimedSeat>,
}

/// Counters of one access type in one run.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TypeCounts {
    /// Allocations of this type on the site.
    pub allocated: u64,
    /// Inactive, in scope, not excluded.
    pub candidates: u64,
    /// Deallocated (or, in dry run, that would be).
    pub reclaimed: u64,
    /// Deallocations that failed.
    pub failed: u64,
    /// Inactive but kept by an exclusion or the scope.
    pub excluded: u64,
    /// Kept because QRS sent a field a decision reads as missing, null or unreadable.
    #[serde(default)]
    pub unknown: u64,
    /// Candidates kept because, read again just before the deletion, the seat had been used since.
    #[serde(default)]
    pub used_since_read: u64,
}

/// One reclaimed seat.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ReclaimedSeat {
    /// DIRECTORY\userId.
    pub user: String,
    pub access_type: String,
    /// Last use, or "never".
    pub last_used: String,
}

/// A compact summary of one run.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    pub id: String,
    pub start_time: Time,
    pub completion_time: Time,
    pub dry_run: bool,
    pub result: RunResult,
    pub candidates: u64,
    pub reclaimed: u64,
    pub failed: u64,
}

/// A policy that cannot be run, with the field at fault and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct InvalidPolicy {
    /// Path of the field, for example `spec.exclude.users[2]`.
    pub field: String,
    /// What is wrong and, where it helps, what would be right.
    pub problem: String,
}

impl InvalidPolicy {
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

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
