//! A policy spec checked and compiled into what the decision engine reads.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};

use super::pattern::{FoldedMap, FoldedSet, PatternSet, UserPattern, fold};
use crate::model::AccessType;
use crate::policy::{InvalidPolicy, LicenseCleanupPolicySpec};

const SECONDS_PER_DAY: i64 = 86_400;

/// The access types a policy can manage, in `AccessType` order. Login passes are groups and never managed.
const MANAGED: [AccessType; 3] = [
    AccessType::Professional,
    AccessType::Analyzer,
    AccessType::User,
];

fn slot(access_type: AccessType) -> Option<usize> {
    MANAGED.iter().position(|&t| t == access_type)
}

/// `now` minus whole 24-hour days. A day is 24 hours: the policy's time zone only places the schedule, and
/// QRS dates are UTC instants.
pub(super) fn days_before(now: Timestamp, days: u32) -> Timestamp {
    now.checked_sub(SignedDuration::from_secs(i64::from(days) * SECONDS_PER_DAY))
        .unwrap_or(Timestamp::MIN)
}

/// Whole days from `since` to `now`, rounded down; negative when `since` is in the future.
pub(super) fn whole_days(since: Timestamp, now: Timestamp) -> i64 {
    let elapsed = now.duration_since(since);
    let mut seconds = elapsed.as_secs();
    if elapsed.subsec_nanos() < 0 {
        seconds -= 1;
    }
    seconds.div_euclid(SECONDS_PER_DAY)
}

/// A custom property exclusion.
#[derive(Debug, Clone)]
pub(super) struct PropertyRule {
    /// The policy's spelling, for reports.
    pub(super) name: Arc<str>,
    /// The policy listed no values: any value excludes.
    pub(super) any_value: bool,
    pub(super) values: FoldedSet,
}

/// Validated, pre-compiled rules from a policy spec.
#[derive(Debug, Clone)]
pub struct Rules {
    inactive_days: [Option<u32>; 3],
    never_used_grace_days: u32,
    pub(super) scope_directories: FoldedSet,
    pub(super) scope_users: PatternSet,
    pub(super) exclude_directories: FoldedSet,
    pub(super) exclude_users: PatternSet,
    pub(super) exclude_tags: FoldedSet,
    /// Keyed by the folded property name.
    pub(super) exclude_custom_properties: FoldedMap<PropertyRule>,
    pub(super) exclude_roles: FoldedSet,
    max_reclaims_per_run: u32,
    max_reclaim_percent: u32,
}

impl Rules {
    /// Checks what the engine relies on and compiles the patterns and name lists. The API server enforces most
    /// of this at admission; a manifest given to `run --policy FILE` never went through it.
    pub fn from_spec(spec: &LicenseCleanupPolicySpec) -> Result<Rules, InvalidPolicy> {
        let access_types = &spec.access_types;
        let configured = [
            &access_types.professional,
            &access_types.analyzer,
            &access_types.user,
        ];
        let mut inactive_days = [None; 3];
        for ((slot, rule), access_type) in inactive_days.iter_mut().zip(configured).zip(MANAGED) {
            if let Some(rule) = rule {
                let field = format!("spec.accessTypes.{}.inactiveDays", access_type.key());
                check_range(
                    &field,
                    rule.inactive_days,
                    7,
                    3650,
                    "; below 7 Qlik quarantines the seat instead of freeing it, and the user loses access meanwhile",
                )?;
                *slot = Some(rule.inactive_days);
            }
        }
        if inactive_days.iter().all(Option::is_none) {
            return Err(InvalidPolicy::new(
                "spec.accessTypes",
                "configure at least one of professional, analyzer or user, for example professional: {inactiveDays: 30}",
            ));
        }
        check_range(
            "spec.neverUsedGraceDays",
            spec.never_used_grace_days,
            1,
            3650,
            "",
        )?;

        let scope = &spec.scope;
        let exclude = &spec.exclude;
        let rules = Rules {
            inactive_days,
            never_used_grace_days: spec.never_used_grace_days,
            scope_directories: names("spec.scope.userDirectories", &scope.user_directories)?,
            scope_users: patterns("spec.scope.users", &scope.users)?,
            exclude_users: patterns("spec.exclude.users", &exclude.users)?,
            exclude_directories: names("spec.exclude.userDirectories", &exclude.user_directories)?,
            exclude_tags: names("spec.exclude.tags", &exclude.tags)?,
            exclude_custom_properties: custom_properties(exclude)?,
            exclude_roles: names("spec.exclude.roles", &exclude.roles)?,
            max_reclaims_per_run: spec.limits.max_reclaims_per_run,
            max_reclaim_percent: spec.limits.max_reclaim_percent,
        };
        check_range(
            "spec.limits.maxReclaimsPerRun",
            rules.max_reclaims_per_run,
            1,
            100_000,
            "",
        )?;
        check_range(
            "spec.limits.maxReclaimPercent",
            rules.max_reclaim_percent,
            1,
            100,
            "",
        )?;
        Ok(rules)
    }

    /// The configured access types (professional, analyzer, user), in `AccessType` order.
    pub fn access_types(&self) -> Vec<AccessType> {
        MANAGED
            .iter()
            .zip(self.inactive_days)
            .filter(|(_, days)| days.is_some())
            .map(|(&t, _)| t)
            .collect()
    }

    /// `inactiveDays` of an access type; `None` when the policy does not manage it.
    pub fn inactive_days(&self, access_type: AccessType) -> Option<u32> {
        slot(access_type).and_then(|i| self.inactive_days[i])
    }

    pub fn never_used_grace_days(&self) -> u32 {
        self.never_used_grace_days
    }

    /// `now` minus `inactiveDays` (24-hour days); `None` when the access type is not configured. An allocation
    /// last used at or before the cutoff is inactive, so an allocation used exactly `inactiveDays` ago is
    /// inactive, one used a second later is not. QRS can be asked for `lastUsed le '<cutoff>'`, which also
    /// returns never-used allocations (their sentinel date is in 1753).
    pub fn cutoff(&self, access_type: AccessType, now: Timestamp) -> Option<Timestamp> {
        self.inactive_days(access_type)
            .map(|days| days_before(now, days))
    }

    /// A never-used allocation created at or before this instant is inactive.
    pub fn never_used_cutoff(&self, now: Timestamp) -> Timestamp {
        days_before(now, self.never_used_grace_days)
    }

    /// Whether exclusions need user records (tags, custom properties, roles) from QRS.
    pub fn needs_user_details(&self) -> bool {
        !self.exclude_tags.is_empty()
            || !self.exclude_custom_properties.is_empty()
            || !self.exclude_roles.is_empty()
    }

    pub fn max_reclaims_per_run(&self) -> u32 {
        self.max_reclaims_per_run
    }

    pub fn max_reclaim_percent(&self) -> u32 {
        self.max_reclaim_percent
    }
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

fn names(field: &str, list: &[String]) -> Result<FoldedSet, InvalidPolicy> {
    let mut set = FoldedSet::default();
    for (i, name) in list.iter().enumerate() {
        check_name(&format!("{field}[{i}]"), name)?;
        set.insert(name);
    }
    Ok(set)
}

fn patterns(field: &str, list: &[String]) -> Result<PatternSet, InvalidPolicy> {
    let mut set = PatternSet::default();
    for (i, text) in list.iter().enumerate() {
        let pattern = UserPattern::parse(text)
            .map_err(|problem| InvalidPolicy::new(format!("{field}[{i}]"), problem))?;
        set.push(pattern);
    }
    Ok(set)
}

fn custom_properties(
    exclude: &crate::policy::ExcludeSpec,
) -> Result<FoldedMap<PropertyRule>, InvalidPolicy> {
    let mut rules = FoldedMap::<PropertyRule>::default();
    for (i, property) in exclude.custom_properties.iter().enumerate() {
        let field = format!("spec.exclude.customProperties[{i}]");
        check_name(&format!("{field}.name"), &property.name)?;
        for (j, value) in property.values.iter().enumerate() {
            if value.is_empty() {
                return Err(InvalidPolicy::new(
                    format!("{field}.values[{j}]"),
                    "must not be empty; leave values out to match any value",
                ));
            }
            check_name(&format!("{field}.values[{j}]"), value)?;
        }
        let rule = rules
            .entry(fold(&property.name).into_boxed_str())
            .or_insert_with(|| PropertyRule {
                name: Arc::from(property.name.as_str()),
                any_value: false,
                values: FoldedSet::default(),
            });
        // Two entries for one property merge; "any value" in either wins, being the wider exclusion.
        rule.any_value |= property.values.is_empty();
        for value in &property.values {
            rule.values.insert(value);
        }
    }
    Ok(rules)
}
