//! The `LicenseCleanupPolicy` custom resource (group `licensing.reclaimer.dev`, version `v1alpha1`): the edge
//! where Kubernetes' shapes meet the program's own.
//!
//! Doc comments on fields become `kubectl explain` text. Bounds and CEL rules are enforced by the API server at
//! admission; [`validate`] checks the same things again (and what CEL cannot, such as whether a cron expression
//! really parses) so that `run --policy FILE` fails just as clearly, and turns a spec into the one
//! [`ValidPolicy`] every entry point runs. [`status`] holds what the resource reports; [`fields`] refuses
//! misspelt fields.

pub mod fields;
pub mod status;
mod valid;

#[cfg(test)]
mod tests;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use fields::{check_known_fields, last_applied_unknown_field};
pub use status::{
    ActiveRun, LicenseCleanupPolicyStatus, MovedUser, PendingNotice, ReclaimedSeat, RunHeader,
    RunResult, RunStatus, RunSummary, TypeCounts,
};
pub use valid::{InvalidPolicy, Notifications, Permissions, ValidPolicy, rules, validate};

/// The largest `limits.maxReclaimsPerRun`: the record of a run lists every seat it decided to reclaim, and must fit
/// in one etcd object (see [`crate::record`]).
pub const MAX_RECLAIMS_PER_RUN: u32 = 2000;

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
    printcolumn = r#"{"name":"Moved","type":"integer","jsonPath":".status.lastRun.totals.moved"}"#,
    printcolumn = r#"{"name":"Pending","type":"integer","jsonPath":".status.pendingNotices"}"#,
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

    /// Users Qlik marks as gone (removed from the user directory, blocked in the QMC, optionally inactive): their
    /// seats go first, once unused for afterDays, ahead of the idle threshold. Scope, exclusions, quarantine, the
    /// cap, dry run and the breaker apply as to any seat. Absent: leavers are treated like everyone else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leavers: Option<LeaversSpec>,

    /// Seats a user does not need because they hold a better one.
    #[serde(default)]
    pub redundant: RedundantSpec,

    /// Seats larger than their users need: a Professional user who authored no app, sheet or master item in
    /// afterDays moves to Analyzer: an Analyzer seat first, then the Professional seat deallocated. Absent: no seat
    /// moves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub right_size: Option<RightSizeSpec>,

    /// Safety limits.
    #[serde(default)]
    pub limits: LimitsSpec,

    /// Warn each user before their seat goes: with days > 0, a seat is reclaimed only at a later run, if still
    /// unused that long after a notice that was delivered.
    #[serde(default)]
    pub notice: NoticeSpec,

    /// Who is told, and how: e-mail to warned users and to administrators, and chat webhooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<NotifySpec>,

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

    /// Deallocate through QRS selections, up to 50 seats a request, each deleted only if still unused since the
    /// run read it (checked by QRS in the same request). false, or a site that does not serve selections (404 or
    /// 405), deletes one seat a request.
    #[serde(default = "default_bulk")]
    pub bulk: bool,
}

fn default_bulk() -> bool {
    true
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
    /// Users in any of these QMC states are never reclaimed: removedExternally (removed from the user directory),
    /// blocked, inactive. A state QRS does not report for a user keeps the seat.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 3))]
    pub user_states: Vec<UserStateName>,
}

/// A state Qlik records on a user.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum UserStateName {
    /// Removed from the user directory (QMC "Removed externally").
    RemovedExternally,
    /// Blocked in the QMC (the QRS user field blacklisted).
    Blocked,
    /// Marked inactive in the QMC.
    Inactive,
}

/// Seats a user does not need because they hold a better one.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RedundantSpec {
    /// A user holding both keeps Professional; the Analyzer seat is reclaimed, whatever its last use (after the
    /// leavers, before idle seats). Needs accessTypes.analyzer. Scope, exclusions, quarantine, the cap, dry run and
    /// the breaker apply.
    #[serde(default)]
    pub analyzer_with_professional: bool,
}

/// Which seats move to a smaller access type.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RightSizeSpec {
    /// Professional seats of users who only consume move to Analyzer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub professional_to_analyzer: Option<ProfessionalToAnalyzerSpec>,
}

/// When a Professional seat moves to Analyzer.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProfessionalToAnalyzerSpec {
    /// A Professional seat at least this many days old, in use, whose user authored nothing (no app, sheet or
    /// master item created or modified) in this many days, moves to Analyzer. Stories, bookmarks and snapshots
    /// are not authoring; anything that cannot be read keeps the seat. Needs accessTypes.professional (idle seats
    /// are the idle rule's). Scope, exclusions, the cap and the breaker apply.
    #[schemars(range(min = 30, max = 3650))]
    pub after_days: u32,
}

/// Which users count as leavers, and when their seats go.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LeaversSpec {
    /// Users removed from the user directory (QMC "Removed externally") are leavers.
    #[serde(default = "default_true")]
    pub removed_externally: bool,
    /// Users blocked in the QMC are leavers.
    #[serde(default = "default_true")]
    pub blocked: bool,
    /// Users marked inactive in the QMC are leavers.
    #[serde(default)]
    pub inactive: bool,
    /// A leaver's seat unused this many days (since its last use, or its creation when never used) is reclaimed.
    #[serde(default)]
    #[schemars(range(min = 0, max = 3650))]
    pub after_days: u32,
}

/// Notice before reclaim.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct NoticeSpec {
    /// Days between a delivered notice and the reclaim (0: no notice). A login since the notice cancels it; a
    /// notice that could not be delivered is sent again at the next run, and the seat is not reclaimed meanwhile.
    /// Needs notify.email with users: true.
    #[serde(default)]
    #[schemars(range(min = 0, max = 365))]
    pub days: u32,
}

/// Notifications.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct NotifySpec {
    /// E-mail over SMTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailSpec>,
    /// Chat or HTTP endpoints told of each run that warns, reclaims, fails or aborts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub webhooks: Vec<WebhookSpec>,
}

/// E-mail over SMTP.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EmailSpec {
    /// The Secret (in the policy's namespace) with the SMTP settings: host, port, from, tls (starttls, tls or none),
    /// and optionally username, password, and ca.pem (a CA to trust besides the public ones). A username with tls
    /// none is refused (the password would cross the network in clear text) unless allowPlaintextAuth is "true".
    pub smtp_secret_ref: SecretRef,
    /// Mail each warned user at the address of their QRS user attribute "email". Users without one are reported,
    /// never guessed.
    #[serde(default = "default_true")]
    pub users: bool,
    /// Addresses that get one summary of each run that warns, reclaims, fails or aborts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub admins: Vec<String>,
    /// Templates that replace the defaults: keys notice.subject, notice.txt, notice.html, summary.subject,
    /// summary.txt, summary.html (any subset) in a ConfigMap or a Secret of the policy's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub templates: Option<TemplatesRef>,
}

/// Where templates are kept: exactly one of a ConfigMap or a Secret.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("has(self.configMapRef) != has(self.secretRef)").message("set exactly one of notify.email.templates.configMapRef or secretRef"))]
#[serde(rename_all = "camelCase")]
pub struct TemplatesRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<SecretRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretRef>,
}

/// One webhook.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WebhookSpec {
    /// The Secret key holding the URL: webhook URLs carry their token.
    pub secret_ref: SecretKeyRef,
    /// slack, teams (an Adaptive Card) or json (the run's record).
    pub format: WebhookFormat,
}

/// A key of a Secret in the policy's namespace.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// What a webhook receives.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum WebhookFormat {
    /// A Slack incoming webhook message (also what Mattermost and Rocket.Chat take).
    Slack,
    /// A Microsoft Teams message with an Adaptive Card (Workflows or incoming webhook).
    Teams,
    /// The run's record as JSON.
    Json,
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
    /// At most this many seats are reclaimed in one run, in order: leavers, redundant seats, then longest idle
    /// first. At most 2000, so that the run's record (LicenseCleanupRun) lists every one within etcd's object size.
    #[serde(default = "default_max_reclaims")]
    #[schemars(range(min = 1, max = 2000))]
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
