//! A policy checked once, completely, before anything touches the network, and turned into the program's own
//! values: the decision engine's [`Rules`], the QRS [`Connection`] and the [`Schedule`]. Every entry point (the
//! controller, `run --policy-ref`, `run --policy FILE`, `demo`) runs a [`ValidPolicy`] and nothing else.

use std::num::NonZeroU32;
use std::time::Duration;

use super::{
    AccessTypesSpec, CustomPropertyMatch, ExcludeSpec, LicenseCleanupPolicySpec, SiteSpec,
    UserStateName,
};
use crate::model::{AccessType, UserState};
use crate::plan::{Leavers, PropertyMatch, RuleSet, Rules, UserPattern};
use crate::qrs::{Connection, RetryPolicy, Route, ServerVerification};
use crate::schedule::{Schedule, ScheduleError};

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

/// What the operator, not the policy's author, decides. A policy is written by whoever may edit it in its
/// namespace; the operator's identity (its QPS session, its network position) is not theirs to lend out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Permissions {
    /// `site.tls.insecureSkipVerify` takes effect only when the operator was started with
    /// `--allow-insecure-skip-verify`; otherwise such a policy is invalid and nothing is sent.
    pub allow_insecure_skip_verify: bool,
}

/// A policy the program can run.
#[derive(Debug, Clone)]
pub struct ValidPolicy {
    pub rules: Rules,
    pub schedule: Schedule,
    pub connection: Connection,
    /// Report only (`spec.dryRun`).
    pub dry_run: bool,
    /// Deallocations at once (`spec.site.concurrency`).
    pub concurrency: u32,
    /// Deallocate through QRS selections (`spec.site.bulk`).
    pub bulk: bool,
    /// Who is told, and how (`spec.notify`), with the notice it gives before a reclaim.
    pub notify: Option<Notifications>,
}

/// A policy's notifications: the channels, and the notice before a reclaim, which lives here because it needs
/// them (a notice goes by e-mail to its user, so a policy without e-mail to users gives none).
#[derive(Debug, Clone)]
pub struct Notifications {
    /// The channels (`spec.notify`); the Secrets they name are read by each entry point.
    pub channels: super::NotifySpec,
    /// Days between a delivered notice and the reclaim (`spec.notice.days`), when the policy gives notice.
    pub notice_days: Option<NonZeroU32>,
}

impl ValidPolicy {
    /// Days between a delivered notice and the reclaim, when the policy gives notice.
    pub fn notice_days(&self) -> Option<NonZeroU32> {
        self.notify.as_ref().and_then(|n| n.notice_days)
    }
}

/// Checks a policy completely and turns it into a [`ValidPolicy`]: the schedule, the rules, the site, and what
/// the operator allows (`permissions`).
pub fn validate(
    spec: &LicenseCleanupPolicySpec,
    permissions: &Permissions,
) -> Result<ValidPolicy, InvalidPolicy> {
    let schedule = Schedule::parse(&spec.schedule, &spec.time_zone).map_err(|e| match e {
        ScheduleError::TimeZone(problem) => InvalidPolicy::new("spec.timeZone", problem),
        ScheduleError::Expression(problem) => InvalidPolicy::new("spec.schedule", problem),
    })?;
    let rules = rules(spec)?;
    check_site(&spec.site)?;
    if spec.site.tls.insecure_skip_verify && !permissions.allow_insecure_skip_verify {
        return Err(InvalidPolicy::new(
            "spec.site.tls.insecureSkipVerify",
            "is not allowed by this operator: without verification the client certificate's session could be \
             sent to anyone on the network path. Add Qlik's root.pem to the Secret (and tls.serverName if the \
             certificate names another host), or start the operator with --allow-insecure-skip-verify (chart \
             value allowInsecureSkipVerify)",
        ));
    }
    check_notify(spec)?;
    Ok(ValidPolicy {
        rules,
        schedule,
        connection: connection(&spec.site)?,
        dry_run: spec.dry_run,
        concurrency: spec.site.concurrency,
        bulk: spec.site.bulk,
        notify: spec.notify.clone().map(|channels| Notifications {
            channels,
            // `check_notify` refused notice without e-mail to users.
            notice_days: NonZeroU32::new(spec.notice.days),
        }),
    })
}

/// The decision engine's rules of a policy: thresholds, scope, exclusions and limits, checked. The API server
/// enforces most of this at admission; a manifest given to `run --policy FILE` never went through it.
pub fn rules(spec: &LicenseCleanupPolicySpec) -> Result<Rules, InvalidPolicy> {
    let inactive_days = inactive_days(&spec.access_types)?;
    check_range(
        "spec.neverUsedGraceDays",
        spec.never_used_grace_days,
        1,
        3650,
        "",
    )?;
    let limits = &spec.limits;
    check_range(
        "spec.limits.maxReclaimsPerRun",
        limits.max_reclaims_per_run,
        1,
        super::MAX_RECLAIMS_PER_RUN,
        ": a run's record lists every seat it reclaims, and must fit in one Kubernetes object",
    )?;
    check_range(
        "spec.limits.maxReclaimPercent",
        limits.max_reclaim_percent,
        1,
        100,
        "",
    )?;
    let (scope, exclude) = (&spec.scope, &spec.exclude);
    Ok(Rules::new(RuleSet {
        inactive_days,
        never_used_grace_days: spec.never_used_grace_days,
        scope_directories: names("spec.scope.userDirectories", &scope.user_directories)?,
        scope_users: patterns("spec.scope.users", &scope.users)?,
        exclude_directories: names("spec.exclude.userDirectories", &exclude.user_directories)?,
        exclude_users: patterns("spec.exclude.users", &exclude.users)?,
        exclude_tags: names("spec.exclude.tags", &exclude.tags)?,
        exclude_custom_properties: custom_properties(exclude)?,
        exclude_roles: names("spec.exclude.roles", &exclude.roles)?,
        exclude_user_states: exclude.user_states.iter().map(|&s| user_state(s)).collect(),
        leavers: leavers(spec)?,
        redundant_analyzer: redundant_analyzer(spec)?,
        right_size_after_days: right_size(spec)?,
        max_reclaims_per_run: limits.max_reclaims_per_run,
        max_reclaim_percent: limits.max_reclaim_percent,
    }))
}

fn inactive_days(access_types: &AccessTypesSpec) -> Result<Vec<(AccessType, u32)>, InvalidPolicy> {
    let configured = [
        (AccessType::Professional, &access_types.professional),
        (AccessType::Analyzer, &access_types.analyzer),
        (AccessType::User, &access_types.user),
    ];
    let mut days = Vec::new();
    for (access_type, rule) in configured {
        if let Some(rule) = rule {
            let field = format!("spec.accessTypes.{}.inactiveDays", access_type.key());
            check_range(
                &field,
                rule.inactive_days,
                7,
                3650,
                "; below 7 Qlik quarantines the seat instead of freeing it, and the user loses access meanwhile",
            )?;
            days.push((access_type, rule.inactive_days));
        }
    }
    if days.is_empty() {
        return Err(InvalidPolicy::new(
            "spec.accessTypes",
            "configure at least one of professional, analyzer or user, for example professional: {inactiveDays: 30}",
        ));
    }
    Ok(days)
}

fn user_state(name: UserStateName) -> UserState {
    match name {
        UserStateName::RemovedExternally => UserState::RemovedExternally,
        UserStateName::Blocked => UserState::Blocked,
        UserStateName::Inactive => UserState::Inactive,
    }
}

/// `spec.leavers` in the engine's terms. A state both a leaver's and protected by `exclude.userStates` is a
/// contradiction the administrator must resolve, not one the program guesses at.
fn leavers(spec: &LicenseCleanupPolicySpec) -> Result<Option<Leavers>, InvalidPolicy> {
    let Some(leavers) = &spec.leavers else {
        return Ok(None);
    };
    check_range("spec.leavers.afterDays", leavers.after_days, 0, 3650, "")?;
    let listed = [
        (leavers.removed_externally, UserState::RemovedExternally),
        (leavers.blocked, UserState::Blocked),
        (leavers.inactive, UserState::Inactive),
    ];
    let states: Vec<UserState> = listed
        .iter()
        .filter(|(on, _)| *on)
        .map(|&(_, s)| s)
        .collect();
    if states.is_empty() {
        return Err(InvalidPolicy::new(
            "spec.leavers",
            "names no state: set removedExternally, blocked or inactive to true, or remove leavers",
        ));
    }
    let excluded = spec.exclude.user_states.iter().map(|&s| user_state(s));
    if let Some(both) = excluded.into_iter().find(|s| states.contains(s)) {
        return Err(InvalidPolicy::new(
            "spec.exclude.userStates",
            format!(
                "{} is both a leaver state (spec.leavers.{}) and protected here; keep it in one of the two",
                both.key(),
                both.key()
            ),
        ));
    }
    Ok(Some(Leavers {
        states,
        after_days: leavers.after_days,
    }))
}

/// `spec.redundant.analyzerWithProfessional`, which only means something when Analyzer seats are managed.
fn redundant_analyzer(spec: &LicenseCleanupPolicySpec) -> Result<bool, InvalidPolicy> {
    let on = spec.redundant.analyzer_with_professional;
    if on && spec.access_types.analyzer.is_none() {
        return Err(InvalidPolicy::new(
            "spec.redundant.analyzerWithProfessional",
            "needs accessTypes.analyzer: an access type that is not configured is not touched",
        ));
    }
    Ok(on)
}

/// `spec.rightSize.professionalToAnalyzer`: its window, on a policy whose Professional seats are managed (the idle
/// rule decides which are in use).
fn right_size(spec: &LicenseCleanupPolicySpec) -> Result<Option<u32>, InvalidPolicy> {
    let Some(move_down) = spec
        .right_size
        .as_ref()
        .and_then(|r| r.professional_to_analyzer.as_ref())
    else {
        return Ok(None);
    };
    let path = "spec.rightSize.professionalToAnalyzer";
    check_range(
        &format!("{path}.afterDays"),
        move_down.after_days,
        30,
        3650,
        "",
    )?;
    if spec.access_types.professional.is_none() {
        return Err(InvalidPolicy::new(
            path,
            "needs accessTypes.professional: the idle rule decides which Professional seats are in use",
        ));
    }
    Ok(Some(move_down.after_days))
}

/// Notices must be able to reach users; addresses must be addresses.
fn check_notify(spec: &LicenseCleanupPolicySpec) -> Result<(), InvalidPolicy> {
    check_range("spec.notice.days", spec.notice.days, 0, 365, "")?;
    let email = spec.notify.as_ref().and_then(|n| n.email.as_ref());
    if spec.notice.days > 0 && !email.is_some_and(|e| e.users) {
        return Err(InvalidPolicy::new(
            "spec.notice.days",
            "needs spec.notify.email with users: true: a seat is reclaimed only after a notice delivered to its user",
        ));
    }
    if let Some(email) = email {
        check_name(
            "spec.notify.email.smtpSecretRef.name",
            &email.smtp_secret_ref.name,
        )?;
        for (i, admin) in email.admins.iter().enumerate() {
            if admin.parse::<lettre::Address>().is_err() {
                return Err(InvalidPolicy::new(
                    format!("spec.notify.email.admins[{i}]"),
                    format!("{admin:?} is not an e-mail address"),
                ));
            }
        }
        if let Some(templates) = &email.templates
            && templates.config_map_ref.is_some() == templates.secret_ref.is_some()
        {
            return Err(InvalidPolicy::new(
                "spec.notify.email.templates",
                "set exactly one of configMapRef or secretRef",
            ));
        }
    }
    for (i, hook) in spec.notify.iter().flat_map(|n| &n.webhooks).enumerate() {
        check_name(
            &format!("spec.notify.webhooks[{i}].secretRef.name"),
            &hook.secret_ref.name,
        )?;
        check_name(
            &format!("spec.notify.webhooks[{i}].secretRef.key"),
            &hook.secret_ref.key,
        )?;
    }
    Ok(())
}

fn check_range(
    field: &str,
    value: u32,
    min: u32,
    max: u32,
    why: &str,
) -> Result<(), InvalidPolicy> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(InvalidPolicy::new(
            field,
            format!("must be between {min} and {max}, not {value}{why}"),
        ))
    }
}

/// An empty name, or one with surrounding spaces, would silently match nobody: for an exclusion that means
/// reclaiming a seat the administrator meant to protect.
fn check_name(field: &str, name: &str) -> Result<(), InvalidPolicy> {
    if name.is_empty() {
        return Err(InvalidPolicy::new(field, "must not be empty"));
    }
    if name.trim() != name {
        return Err(InvalidPolicy::new(
            field,
            format!(
                "\"{name}\" has leading or trailing spaces, so it would match nothing in Qlik; remove them"
            ),
        ));
    }
    Ok(())
}

fn names(field: &str, list: &[String]) -> Result<Vec<String>, InvalidPolicy> {
    for (i, name) in list.iter().enumerate() {
        check_name(&format!("{field}[{i}]"), name)?;
    }
    Ok(list.to_vec())
}

fn patterns(field: &str, list: &[String]) -> Result<Vec<UserPattern>, InvalidPolicy> {
    list.iter()
        .enumerate()
        .map(|(i, text)| {
            UserPattern::parse(text)
                .map_err(|problem| InvalidPolicy::new(format!("{field}[{i}]"), problem))
        })
        .collect()
}

fn custom_properties(exclude: &ExcludeSpec) -> Result<Vec<PropertyMatch>, InvalidPolicy> {
    let mut matches = Vec::with_capacity(exclude.custom_properties.len());
    for (i, CustomPropertyMatch { name, values }) in exclude.custom_properties.iter().enumerate() {
        let field = format!("spec.exclude.customProperties[{i}]");
        check_name(&format!("{field}.name"), name)?;
        for (j, value) in values.iter().enumerate() {
            if value.is_empty() {
                return Err(InvalidPolicy::new(
                    format!("{field}.values[{j}]"),
                    "must not be empty; leave values out to match any value",
                ));
            }
            check_name(&format!("{field}.values[{j}]"), value)?;
        }
        matches.push(PropertyMatch {
            name: name.clone(),
            values: values.clone(),
        });
    }
    Ok(matches)
}

/// The site: one route of https origins, sane limits, a user and a Secret.
fn check_site(site: &SiteSpec) -> Result<(), InvalidPolicy> {
    let check_url = |field: &str, url: &str| -> Result<(), InvalidPolicy> {
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| InvalidPolicy::new(field, format!("{url:?} is not a URL ({e})")))?;
        if parsed.scheme() != "https" {
            return Err(InvalidPolicy::new(
                field,
                format!("{url:?} must use https: Qlik's services only speak TLS"),
            ));
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(InvalidPolicy::new(field, format!("{url:?} has no host")));
        }
        // An origin and nothing else: a path, query or credentials would send the xrfkey, the certificate's
        // identity and every request somewhere the site's administrator did not choose.
        let origin_only = parsed.username().is_empty()
            && parsed.password().is_none()
            && parsed.path() == "/"
            && parsed.query().is_none()
            && parsed.fragment().is_none()
            && !url.trim_end_matches('/').ends_with('?')
            && !url.trim_end_matches('/').ends_with('#');
        if !origin_only {
            return Err(InvalidPolicy::new(
                field,
                format!(
                    "{url:?} must be an origin, https://HOST[:PORT] with no path, query or user (the product adds the Qlik paths itself)"
                ),
            ));
        }
        Ok(())
    };
    match (&site.repository_url, &site.proxy) {
        (Some(url), None) => check_url("spec.site.repositoryUrl", url)?,
        (None, Some(proxy)) => {
            check_url("spec.site.proxy.qpsUrl", &proxy.qps_url)?;
            check_url("spec.site.proxy.hubUrl", &proxy.hub_url)?;
        }
        (Some(_), Some(_)) => {
            return Err(InvalidPolicy::new(
                "spec.site",
                "set only one of repositoryUrl (direct QRS) or proxy (QPS session), not both",
            ));
        }
        (None, None) => {
            return Err(InvalidPolicy::new(
                "spec.site",
                "set repositoryUrl (direct QRS, usually https://HOST:4242) or proxy (QPS session)",
            ));
        }
    }
    if !(1..=32).contains(&site.concurrency) {
        return Err(InvalidPolicy::new(
            "spec.site.concurrency",
            "must be between 1 and 32",
        ));
    }
    if !(1..=600).contains(&site.request_timeout_seconds) {
        return Err(InvalidPolicy::new(
            "spec.site.requestTimeoutSeconds",
            "must be between 1 and 600",
        ));
    }
    if site.user.directory.trim().is_empty() || site.user.id.trim().is_empty() {
        return Err(InvalidPolicy::new(
            "spec.site.user",
            "directory and id must not be empty (for example INTERNAL and sa_repository)",
        ));
    }
    if site.credentials_secret_ref.name.trim().is_empty() {
        return Err(InvalidPolicy::new(
            "spec.site.credentialsSecretRef.name",
            "must name the Secret holding client.pem, client_key.pem and root.pem",
        ));
    }
    Ok(())
}

/// How to reach the site's QRS.
fn connection(site: &SiteSpec) -> Result<Connection, InvalidPolicy> {
    let route = match (&site.repository_url, &site.proxy) {
        (Some(url), None) => Route::Direct {
            repository_url: url.trim_end_matches('/').to_string(),
        },
        (None, Some(proxy)) => Route::Proxy {
            qps_url: proxy.qps_url.trim_end_matches('/').to_string(),
            hub_url: proxy.hub_url.trim_end_matches('/').to_string(),
            virtual_proxy_prefix: proxy.virtual_proxy_prefix.trim_matches('/').to_string(),
            session_cookie_name: proxy.effective_cookie_name(),
        },
        _ => {
            return Err(InvalidPolicy::new(
                "spec.site",
                "set exactly one of repositoryUrl or proxy",
            ));
        }
    };
    let verification = if site.tls.insecure_skip_verify {
        ServerVerification::Insecure
    } else if let Some(name) = site.tls.server_name.as_deref().filter(|n| !n.is_empty()) {
        ServerVerification::Name(name.to_string())
    } else {
        ServerVerification::UrlHost
    };
    Ok(Connection {
        route,
        user_directory: site.user.directory.clone(),
        user_id: site.user.id.clone(),
        verification,
        request_timeout: Duration::from_secs(u64::from(site.request_timeout_seconds.max(1))),
        retry: RetryPolicy::default(),
    })
}
