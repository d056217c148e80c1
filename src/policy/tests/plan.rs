//! Unit tests of the decision engine: one or more per reason, rule and boundary.

use std::collections::{BTreeMap, HashMap};

use jiff::{SignedDuration, Timestamp};

use crate::model::{AccessType, Allocation, LastUse, UserDetails, UserIdentity};
use crate::plan::*;
use crate::policy::{AccessTypeRule, CustomPropertyMatch, InvalidPolicy, LicenseCleanupPolicySpec};

use AccessType::{Analyzer, Login, Professional, User};

pub(super) fn now() -> Timestamp {
    Timestamp::from_second(1_780_315_200).unwrap_or(Timestamp::UNIX_EPOCH) // 2026-06-01T12:00:00Z
}

fn days_ago(days: i64) -> Timestamp {
    now() - SignedDuration::from_hours(24 * days)
}

pub(super) fn base_spec() -> LicenseCleanupPolicySpec {
    let yaml = r#"
schedule: "0 3 * * *"
site:
  repositoryUrl: https://qlik.example.com:4242
  credentialsSecretRef: {name: qlik-client-certificate}
accessTypes:
  professional: {inactiveDays: 30}
"#;
    match serde_yaml::from_str(yaml) {
        Ok(spec) => spec,
        Err(e) => panic!("base spec: {e}"),
    }
}

fn rules_with(edit: impl FnOnce(&mut LicenseCleanupPolicySpec)) -> Rules {
    let mut spec = base_spec();
    edit(&mut spec);
    match crate::policy::rules(&spec) {
        Ok(rules) => rules,
        Err(e) => panic!("rules: {e}"),
    }
}

fn rules() -> Rules {
    rules_with(|_| {})
}

fn invalid(edit: impl FnOnce(&mut LicenseCleanupPolicySpec)) -> InvalidPolicy {
    let mut spec = base_spec();
    edit(&mut spec);
    match crate::policy::rules(&spec) {
        Ok(_) => panic!("the spec should be rejected"),
        Err(e) => e,
    }
}

fn threshold(days: u32) -> Option<AccessTypeRule> {
    Some(AccessTypeRule {
        inactive_days: days,
    })
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// An allocation of `access_type` to `directory\user`, last used 100 days ago, created a year ago.
fn alloc(id: &str, access_type: AccessType, directory: &str, user: &str) -> Allocation {
    Allocation {
        id: id.to_string(),
        access_type,
        user_id: guid(directory, user),
        user: UserIdentity::new(directory, user),
        user_name: user.to_string(),
        last_used: LastUse::At(days_ago(100)),
        created: Some(days_ago(365)),
        quarantined: false,
        quarantine_end: None,
        incomplete: None,
        user_also_professional: false,
    }
}

fn guid(directory: &str, user: &str) -> String {
    format!("guid-{}-{}", directory.to_lowercase(), user.to_lowercase())
}

fn used(mut a: Allocation, at: Timestamp) -> Allocation {
    a.last_used = LastUse::At(at);
    a
}

fn never(mut a: Allocation, created: Option<Timestamp>) -> Allocation {
    a.last_used = LastUse::Never;
    a.created = created;
    a
}

/// A user record as QRS sends it: every list present, empty.
fn details(directory: &str, user: &str) -> UserDetails {
    UserDetails {
        id: guid(directory, user),
        tags: Some(Vec::new()),
        custom_properties: Some(Vec::new()),
        roles: Some(Vec::new()),
        ..UserDetails::default()
    }
}

fn user_map(list: Vec<UserDetails>) -> HashMap<String, UserDetails> {
    list.into_iter().map(|d| (d.id.clone(), d)).collect()
}

fn decide_simple(rules: &Rules, allocations: &[Allocation]) -> Plan {
    decide(rules, allocations, &HashMap::new(), &BTreeMap::new(), now())
}

fn only(plan: &Plan, id: &str) -> Decision {
    match plan.decisions.iter().find(|d| d.allocation.id == id) {
        Some(d) => d.clone(),
        None => panic!("no decision for {id}"),
    }
}

/// The single decision about one allocation under `rules`.
fn decide_one(rules: &Rules, allocation: Allocation) -> Decision {
    let plan = decide_simple(rules, std::slice::from_ref(&allocation));
    only(&plan, &allocation.id)
}

fn assert_reason(decision: &Decision, verdict: Verdict, code: &str, text: &str) {
    assert_eq!(
        decision.verdict, verdict,
        "{}: {}",
        decision.allocation.id, decision.reason
    );
    assert_eq!(decision.reason.code(), code, "{}", decision.reason);
    assert_eq!(decision.reason.to_string(), text);
}

fn reclaim_ids(plan: &Plan) -> Vec<String> {
    plan.reclaims().map(|d| d.allocation.id.clone()).collect()
}

// ---- policy::rules: a spec checked and turned into the engine's rules ----

#[test]
fn default_spec_compiles() {
    let rules = rules();
    assert_eq!(rules.access_types(), vec![Professional]);
    assert_eq!(rules.max_reclaims_per_run(), 100);
    assert_eq!(rules.max_reclaim_percent(), 50);
    assert_eq!(rules.never_used_grace_days(), 14);
    assert!(!rules.needs_user_details());
}

#[test]
fn access_types_come_in_access_type_order() {
    let rules = rules_with(|s| {
        s.access_types.professional = None;
        s.access_types.user = threshold(60);
        s.access_types.analyzer = threshold(45);
    });
    assert_eq!(rules.access_types(), vec![Analyzer, User]);
    assert_eq!(rules.inactive_days(User), Some(60));
    assert_eq!(rules.inactive_days(Professional), None);
    assert_eq!(rules.inactive_days(Login), None);
}

#[test]
fn cutoff_is_now_minus_whole_days() {
    let rules = rules_with(|s| s.access_types.user = threshold(7));
    assert_eq!(rules.cutoff(Professional, now()), Some(days_ago(30)));
    assert_eq!(rules.cutoff(User, now()), Some(days_ago(7)));
    assert_eq!(rules.cutoff(Analyzer, now()), None);
    assert_eq!(rules.cutoff(Login, now()), None);
    assert_eq!(rules.never_used_cutoff(now()), days_ago(14));
    assert_eq!(
        rules.cutoff(Professional, Timestamp::MIN),
        Some(Timestamp::MIN)
    );
}

#[test]
fn at_least_one_access_type() {
    let e = invalid(|s| s.access_types.professional = None);
    assert_eq!(e.field, "spec.accessTypes");
    assert!(e.problem.contains("professional, analyzer or user"), "{e}");
}

#[test]
fn inactive_days_bounds_name_the_field() {
    let e = invalid(|s| s.access_types.professional = threshold(6));
    assert_eq!(e.field, "spec.accessTypes.professional.inactiveDays");
    assert!(e.problem.contains("between 7 and 3650, not 6"), "{e}");
    let e = invalid(|s| s.access_types.analyzer = threshold(3651));
    assert_eq!(e.field, "spec.accessTypes.analyzer.inactiveDays");
    let e = invalid(|s| s.access_types.user = threshold(0));
    assert_eq!(e.field, "spec.accessTypes.user.inactiveDays");
    rules_with(|s| {
        s.access_types.professional = threshold(7);
        s.access_types.analyzer = threshold(3650);
    });
}

#[test]
fn grace_and_limit_bounds_name_the_field() {
    assert_eq!(
        invalid(|s| s.never_used_grace_days = 0).field,
        "spec.neverUsedGraceDays"
    );
    assert_eq!(
        invalid(|s| s.never_used_grace_days = 3651).field,
        "spec.neverUsedGraceDays"
    );
    rules_with(|s| s.never_used_grace_days = 1);
    rules_with(|s| s.never_used_grace_days = 3650);
    assert_eq!(
        invalid(|s| s.limits.max_reclaims_per_run = 0).field,
        "spec.limits.maxReclaimsPerRun"
    );
    assert_eq!(
        invalid(|s| s.limits.max_reclaims_per_run = 2001).field,
        "spec.limits.maxReclaimsPerRun"
    );
    rules_with(|s| s.limits.max_reclaims_per_run = 2000);
    rules_with(|s| s.limits.max_reclaims_per_run = 1);
    assert_eq!(
        invalid(|s| s.limits.max_reclaim_percent = 0).field,
        "spec.limits.maxReclaimPercent"
    );
    let e = invalid(|s| s.limits.max_reclaim_percent = 101);
    assert_eq!(
        e.to_string(),
        "spec.limits.maxReclaimPercent: must be between 1 and 100, not 101"
    );
    rules_with(|s| s.limits.max_reclaim_percent = 100);
}

#[test]
fn user_patterns_are_checked_with_their_index() {
    let e = invalid(|s| s.exclude.users = strings(&[r"INTERNAL\sa_*", r"CORP\*", "jdoe"]));
    assert_eq!(e.field, "spec.exclude.users[2]");
    assert_eq!(
        e.problem,
        r#""jdoe" is not DIRECTORY\userId (for example CORP\jdoe; '*' is a wildcard)"#
    );
    let e = invalid(|s| s.scope.users = strings(&[r"CORP\\jdoe"]));
    assert_eq!(e.field, "spec.scope.users[0]");
    assert!(e.problem.contains("2 backslashes"), "{e}");
    let e = invalid(|s| s.scope.users = strings(&[r"CORP\jdoe", r"\jdoe"]));
    assert_eq!(e.field, "spec.scope.users[1]");
}

#[test]
fn empty_names_are_rejected_with_their_index() {
    let e = invalid(|s| s.scope.user_directories = strings(&["CORP", ""]));
    assert_eq!(e.field, "spec.scope.userDirectories[1]");
    assert_eq!(e.problem, "must not be empty");
    let e = invalid(|s| s.exclude.user_directories = strings(&[""]));
    assert_eq!(e.field, "spec.exclude.userDirectories[0]");
    let e = invalid(|s| s.exclude.tags = strings(&["VIP", "Board", ""]));
    assert_eq!(e.field, "spec.exclude.tags[2]");
    let e = invalid(|s| s.exclude.roles = strings(&[""]));
    assert_eq!(e.field, "spec.exclude.roles[0]");
    let e = invalid(|s| s.exclude.tags = strings(&["VIP "]));
    assert_eq!(e.field, "spec.exclude.tags[0]");
    assert!(e.problem.contains("leading or trailing spaces"), "{e}");
}

#[test]
fn custom_property_names_and_values_are_checked() {
    let e = invalid(|s| {
        s.exclude.custom_properties = vec![CustomPropertyMatch {
            name: String::new(),
            values: vec![],
        }]
    });
    assert_eq!(e.field, "spec.exclude.customProperties[0].name");
    let e = invalid(|s| {
        s.exclude.custom_properties = vec![
            CustomPropertyMatch {
                name: "LicenseCleanup".into(),
                values: vec![],
            },
            CustomPropertyMatch {
                name: "Dept".into(),
                values: strings(&["Finance", ""]),
            },
        ]
    });
    assert_eq!(e.field, "spec.exclude.customProperties[1].values[1]");
    assert!(
        e.problem.contains("leave values out to match any value"),
        "{e}"
    );
}

#[test]
fn user_details_are_needed_only_for_record_based_exclusions() {
    assert!(
        !rules_with(|s| {
            s.exclude.users = strings(&[r"CORP\*"]);
            s.exclude.user_directories = strings(&["INTERNAL"]);
            s.scope.user_directories = strings(&["CORP"]);
        })
        .needs_user_details()
    );
    assert!(rules_with(|s| s.exclude.tags = strings(&["VIP"])).needs_user_details());
    assert!(rules_with(|s| s.exclude.roles = strings(&["RootAdmin"])).needs_user_details());
    assert!(
        rules_with(|s| {
            s.exclude.custom_properties = vec![CustomPropertyMatch {
                name: "LicenseCleanup".into(),
                values: vec![],
            }]
        })
        .needs_user_details()
    );
}

// ---- Reasons ----

#[test]
fn inactive_is_reclaimed() {
    let d = decide_one(
        &rules(),
        used(alloc("a", Professional, "CORP", "jdoe"), days_ago(94)),
    );
    assert_reason(
        &d,
        Verdict::Reclaim,
        "inactive",
        "not used for 94 days (threshold 30)",
    );
}

#[test]
fn never_used_past_grace_is_reclaimed() {
    let d = decide_one(
        &rules(),
        never(alloc("a", Professional, "CORP", "jdoe"), Some(days_ago(40))),
    );
    assert_reason(
        &d,
        Verdict::Reclaim,
        "never-used",
        "never used; allocated 40 days ago (grace 14)",
    );
}

#[test]
fn recently_used_is_active() {
    let d = decide_one(
        &rules(),
        used(alloc("a", Professional, "CORP", "jdoe"), days_ago(3)),
    );
    assert_reason(
        &d,
        Verdict::Keep,
        "active",
        "used 3 days ago (threshold 30)",
    );
    let d = decide_one(
        &rules(),
        used(alloc("a", Professional, "CORP", "jdoe"), now()),
    );
    assert_reason(
        &d,
        Verdict::Keep,
        "active",
        "used less than a day ago (threshold 30)",
    );
    let d = decide_one(
        &rules(),
        used(alloc("a", Professional, "CORP", "jdoe"), days_ago(1)),
    );
    assert_reason(&d, Verdict::Keep, "active", "used 1 day ago (threshold 30)");
}

#[test]
fn future_last_use_is_active() {
    let d = decide_one(
        &rules(),
        used(alloc("a", Professional, "CORP", "jdoe"), days_ago(-2)),
    );
    assert_reason(
        &d,
        Verdict::Keep,
        "active",
        "last use date is in the future; treated as used (threshold 30)",
    );
    let soon = now() + SignedDuration::from_millis(1);
    let d = decide_one(
        &rules(),
        used(alloc("a", Professional, "CORP", "jdoe"), soon),
    );
    assert_eq!(d.reason.code(), "active");
}

#[test]
fn never_used_within_grace_is_kept() {
    let d = decide_one(
        &rules(),
        never(alloc("a", Professional, "CORP", "jdoe"), Some(days_ago(5))),
    );
    assert_reason(
        &d,
        Verdict::Keep,
        "never-used-grace",
        "never used; allocated 5 days ago, within the 14-day grace",
    );
    let d = decide_one(
        &rules(),
        never(alloc("a", Professional, "CORP", "jdoe"), Some(days_ago(-1))),
    );
    assert_reason(
        &d,
        Verdict::Keep,
        "never-used-grace",
        "never used; createdDate is in the future, treated as within the 14-day grace",
    );
}

#[test]
fn never_used_without_created_date_is_kept() {
    let d = decide_one(
        &rules(),
        never(alloc("a", Professional, "CORP", "jdoe"), None),
    );
    assert_reason(
        &d,
        Verdict::Keep,
        "unknown-date",
        "never used and no createdDate; kept",
    );
}

#[test]
fn unreadable_last_use_is_kept() {
    let mut a = alloc("a", Professional, "CORP", "jdoe");
    a.last_used = LastUse::Unknown("garbage".into());
    let d = decide_one(&rules(), a);
    assert_reason(
        &d,
        Verdict::Keep,
        "unknown-date",
        r#"last use date "garbage" cannot be read; kept"#,
    );

    let mut a = alloc("a", Professional, "CORP", "jdoe");
    a.last_used = LastUse::Unknown(format!("x\n{}", "y".repeat(500)));
    let text = decide_one(&rules(), a).reason.to_string();
    assert!(text.len() < 120 && !text.contains('\n'), "{text}");
}

#[test]
fn quarantined_is_kept() {
    let mut a = alloc("a", Professional, "CORP", "jdoe");
    a.quarantined = true;
    a.quarantine_end = Some(days_ago(-172));
    let d = decide_one(&rules(), a.clone());
    assert_reason(
        &d,
        Verdict::Keep,
        "quarantined",
        "quarantined until 2026-11-20",
    );
    a.quarantine_end = None;
    let d = decide_one(&rules(), a);
    assert_reason(
        &d,
        Verdict::Keep,
        "quarantined",
        "quarantined (Qlik already deallocated it)",
    );
}

#[test]
fn login_passes_are_never_deallocated() {
    let rules = rules_with(|s| s.access_types.user = threshold(30));
    let d = decide_one(
        &rules,
        never(alloc("a", Login, "CORP", "group"), Some(days_ago(900))),
    );
    assert_reason(
        &d,
        Verdict::Keep,
        "login-group",
        "login access passes are groups; never deallocated",
    );
}

#[test]
fn unconfigured_access_type_is_not_touched() {
    let d = decide_one(
        &rules(),
        used(alloc("a", Analyzer, "CORP", "jdoe"), days_ago(400)),
    );
    assert_reason(
        &d,
        Verdict::Keep,
        "not-managed",
        "accessTypes.analyzer is not configured; not touched",
    );
}

#[test]
fn thresholds_are_per_access_type() {
    let rules = rules_with(|s| {
        s.access_types.professional = threshold(90);
        s.access_types.analyzer = threshold(30);
    });
    let plan = decide_simple(
        &rules,
        &[
            used(alloc("p", Professional, "CORP", "a"), days_ago(60)),
            used(alloc("n", Analyzer, "CORP", "b"), days_ago(60)),
        ],
    );
    assert_eq!(
        only(&plan, "p").reason.to_string(),
        "used 60 days ago (threshold 90)"
    );
    assert_eq!(
        only(&plan, "n").reason.to_string(),
        "not used for 60 days (threshold 30)"
    );
}

// ---- Boundaries ----

#[test]
fn used_exactly_inactive_days_ago_is_inactive() {
    let a = used(alloc("a", Professional, "CORP", "jdoe"), days_ago(30));
    let d = decide_one(&rules(), a);
    assert_reason(
        &d,
        Verdict::Reclaim,
        "inactive",
        "not used for 30 days (threshold 30)",
    );
}

#[test]
fn used_a_second_inside_the_threshold_is_active() {
    let at = days_ago(30) + SignedDuration::from_secs(1);
    let d = decide_one(&rules(), used(alloc("a", Professional, "CORP", "jdoe"), at));
    assert_reason(
        &d,
        Verdict::Keep,
        "active",
        "used 29 days ago (threshold 30)",
    );
    let at = days_ago(30) + SignedDuration::from_nanos(1);
    let d = decide_one(&rules(), used(alloc("a", Professional, "CORP", "jdoe"), at));
    assert_eq!(d.reason.code(), "active");
    let at = days_ago(30) - SignedDuration::from_nanos(1);
    let d = decide_one(&rules(), used(alloc("a", Professional, "CORP", "jdoe"), at));
    assert_reason(
        &d,
        Verdict::Reclaim,
        "inactive",
        "not used for 30 days (threshold 30)",
    );
}

#[test]
fn never_used_grace_boundary() {
    let d = decide_one(
        &rules(),
        never(alloc("a", Professional, "CORP", "jdoe"), Some(days_ago(14))),
    );
    assert_reason(
        &d,
        Verdict::Reclaim,
        "never-used",
        "never used; allocated 14 days ago (grace 14)",
    );
    let created = days_ago(14) + SignedDuration::from_secs(1);
    let d = decide_one(
        &rules(),
        never(alloc("a", Professional, "CORP", "jdoe"), Some(created)),
    );
    assert_reason(
        &d,
        Verdict::Keep,
        "never-used-grace",
        "never used; allocated 13 days ago, within the 14-day grace",
    );
}

#[test]
fn minimum_grace_of_one_day() {
    let rules = rules_with(|s| s.never_used_grace_days = 1);
    let d = decide_one(
        &rules,
        never(alloc("a", Professional, "CORP", "jdoe"), Some(days_ago(1))),
    );
    assert_reason(
        &d,
        Verdict::Reclaim,
        "never-used",
        "never used; allocated 1 day ago (grace 1)",
    );
}

// ---- Evaluation order ----

#[test]
fn login_comes_before_quarantine_and_quarantine_before_dates() {
    let mut a = alloc("a", Login, "CORP", "jdoe");
    a.quarantined = true;
    assert_eq!(decide_one(&rules(), a).reason.code(), "login-group");
    let mut a = alloc("a", Professional, "CORP", "jdoe");
    a.quarantined = true;
    a.last_used = LastUse::Unknown("garbage".into());
    assert_eq!(decide_one(&rules(), a).reason.code(), "quarantined");
}

#[test]
fn dates_come_before_scope_and_exclusions() {
    let rules = rules_with(|s| {
        s.exclude.users = strings(&[r"CORP\jdoe"]);
        s.scope.user_directories = strings(&["EXT"]);
    });
    let plan = decide_simple(
        &rules,
        &[
            used(alloc("active", Professional, "CORP", "jdoe"), days_ago(1)),
            used(
                alloc("inactive", Professional, "CORP", "jdoe"),
                days_ago(100),
            ),
        ],
    );
    assert_eq!(only(&plan, "active").reason.code(), "active");
    assert_eq!(only(&plan, "inactive").reason.code(), "out-of-scope");
    let counts = plan.per_type[&Professional];
    assert_eq!((counts.excluded, counts.kept), (1, 1));
}

// ---- Scope ----

#[test]
fn scope_directories_admit_only_their_users() {
    let rules = rules_with(|s| s.scope.user_directories = strings(&["CORP"]));
    let plan = decide_simple(
        &rules,
        &[
            alloc("in", Professional, "corp", "a"),
            alloc("out", Professional, "EXT", "b"),
        ],
    );
    assert_eq!(only(&plan, "in").verdict, Verdict::Reclaim);
    assert_reason(
        &only(&plan, "out"),
        Verdict::Keep,
        "out-of-scope",
        "outside scope.userDirectories",
    );
}

#[test]
fn scope_users_is_a_predefined_list() {
    let rules = rules_with(|s| s.scope.users = strings(&[r"CORP\jdoe", r"EXT\contractor_*"]));
    let plan = decide_simple(
        &rules,
        &[
            alloc("listed", Professional, "Corp", "JDoe"),
            alloc("wild", Professional, "ext", "contractor_17"),
            alloc("other", Professional, "CORP", "alice"),
        ],
    );
    assert_eq!(only(&plan, "listed").verdict, Verdict::Reclaim);
    assert_eq!(only(&plan, "wild").verdict, Verdict::Reclaim);
    assert_reason(
        &only(&plan, "other"),
        Verdict::Keep,
        "out-of-scope",
        "outside scope.users",
    );
}

#[test]
fn scope_lists_both_have_to_admit() {
    let rules = rules_with(|s| {
        s.scope.user_directories = strings(&["CORP"]);
        s.scope.users = strings(&[r"*\jdoe"]);
    });
    let plan = decide_simple(
        &rules,
        &[
            alloc("both", Professional, "CORP", "jdoe"),
            alloc("dir-only", Professional, "CORP", "alice"),
            alloc("user-only", Professional, "EXT", "jdoe"),
        ],
    );
    assert_eq!(only(&plan, "both").verdict, Verdict::Reclaim);
    assert_eq!(
        only(&plan, "dir-only").reason.to_string(),
        "outside scope.users"
    );
    assert_eq!(
        only(&plan, "user-only").reason.to_string(),
        "outside scope.userDirectories"
    );
}

#[test]
fn large_scope_list_is_looked_up_not_scanned() {
    let list: Vec<String> = (0..10_000).map(|i| format!(r"CORP\user{i:05}")).collect();
    let rules = rules_with(|s| s.scope.users = list);
    let plan = decide_simple(
        &rules,
        &[
            alloc("in", Professional, "CORP", "USER09999"),
            alloc("out", Professional, "CORP", "user10000"),
        ],
    );
    assert_eq!(only(&plan, "in").verdict, Verdict::Reclaim);
    assert_eq!(only(&plan, "out").reason.code(), "out-of-scope");
}

// ---- Identity exclusions ----

#[test]
fn excluded_directory() {
    let rules = rules_with(|s| s.exclude.user_directories = strings(&["INTERNAL"]));
    let d = decide_one(&rules, alloc("a", Professional, "internal", "sa_scheduler"));
    assert_reason(
        &d,
        Verdict::Keep,
        "excluded",
        "excluded: user directory INTERNAL",
    );
}

#[test]
fn excluded_user_patterns() {
    let rules =
        rules_with(|s| s.exclude.users = strings(&[r"INTERNAL\sa_*", r"*\jdoe", r"BOARD\*"]));
    let plan = decide_simple(
        &rules,
        &[
            alloc("sa", Professional, "Internal", "SA_Repository"),
            alloc("jdoe", Professional, "EXT", "JDOE"),
            alloc("board", Professional, "board", "chair"),
            alloc("free", Professional, "CORP", "jdoe2"),
            alloc("free2", Professional, "INTERNAL", "xsa_1"),
        ],
    );
    assert_reason(
        &only(&plan, "sa"),
        Verdict::Keep,
        "excluded",
        r"excluded by exclude.users pattern INTERNAL\sa_*",
    );
    assert_eq!(
        only(&plan, "jdoe").reason.to_string(),
        r"excluded by exclude.users pattern *\jdoe"
    );
    assert_eq!(
        only(&plan, "board").reason.to_string(),
        r"excluded by exclude.users pattern BOARD\*"
    );
    assert_eq!(only(&plan, "free").verdict, Verdict::Reclaim);
    assert_eq!(only(&plan, "free2").verdict, Verdict::Reclaim);
    assert_eq!(plan.per_type[&Professional].excluded, 3);
}

#[test]
fn directory_exclusion_is_reported_before_user_patterns() {
    let rules = rules_with(|s| {
        s.exclude.users = strings(&[r"INTERNAL\*"]);
        s.exclude.user_directories = strings(&["Internal"]);
    });
    let d = decide_one(&rules, alloc("a", Professional, "INTERNAL", "sa_api"));
    assert_eq!(d.reason.to_string(), "excluded: user directory Internal");
}

// ---- Record-based exclusions ----

fn record_rules() -> Rules {
    rules_with(|s| {
        s.exclude.tags = strings(&["VIP"]);
        s.exclude.roles = strings(&["RootAdmin"]);
        s.exclude.custom_properties = vec![
            CustomPropertyMatch {
                name: "LicenseCleanup".into(),
                values: strings(&["Exempt", "Never"]),
            },
            CustomPropertyMatch {
                name: "Board".into(),
                values: vec![],
            },
        ];
    })
}

fn decide_with_users(rules: &Rules, allocations: &[Allocation], users: Vec<UserDetails>) -> Plan {
    decide(
        rules,
        allocations,
        &user_map(users),
        &BTreeMap::new(),
        now(),
    )
}

#[test]
fn excluded_tag() {
    let mut vip = details("CORP", "ceo");
    vip.tags = Some(strings(&["Finance", "vip"]));
    let plan = decide_with_users(
        &record_rules(),
        &[alloc("a", Professional, "CORP", "ceo")],
        vec![vip],
    );
    assert_reason(
        &only(&plan, "a"),
        Verdict::Keep,
        "excluded",
        "excluded: tag VIP",
    );
}

#[test]
fn excluded_role() {
    let mut admin = details("CORP", "admin");
    admin.roles = Some(strings(&["ContentAdmin", "rootadmin"]));
    let plan = decide_with_users(
        &record_rules(),
        &[alloc("a", Professional, "CORP", "admin")],
        vec![admin],
    );
    assert_reason(
        &only(&plan, "a"),
        Verdict::Keep,
        "excluded",
        "excluded: role RootAdmin",
    );
}

#[test]
fn excluded_custom_property_with_listed_values() {
    let mut exempt = details("CORP", "a");
    exempt.custom_properties = Some(vec![("licensecleanup".into(), "EXEMPT".into())]);
    let mut other_value = details("CORP", "b");
    other_value.custom_properties = Some(vec![("LicenseCleanup".into(), "Reclaim".into())]);
    let mut other_property = details("CORP", "c");
    other_property.custom_properties = Some(vec![("Department".into(), "Exempt".into())]);
    let plan = decide_with_users(
        &record_rules(),
        &[
            alloc("a", Professional, "CORP", "a"),
            alloc("b", Professional, "CORP", "b"),
            alloc("c", Professional, "CORP", "c"),
        ],
        vec![exempt, other_value, other_property],
    );
    assert_reason(
        &only(&plan, "a"),
        Verdict::Keep,
        "excluded",
        "excluded: custom property LicenseCleanup=Exempt",
    );
    assert_eq!(only(&plan, "b").verdict, Verdict::Reclaim);
    assert_eq!(only(&plan, "c").verdict, Verdict::Reclaim);
}

#[test]
fn excluded_custom_property_with_any_value() {
    let mut member = details("CORP", "a");
    member.custom_properties = Some(vec![
        ("Department".into(), "Sales".into()),
        ("BOARD".into(), "Chair".into()),
    ]);
    let plan = decide_with_users(
        &record_rules(),
        &[alloc("a", Professional, "CORP", "a")],
        vec![member],
    );
    assert_reason(
        &only(&plan, "a"),
        Verdict::Keep,
        "excluded",
        "excluded: custom property Board=Chair",
    );
}

#[test]
fn custom_property_entries_for_one_name_merge() {
    let rules = rules_with(|s| {
        s.exclude.custom_properties = vec![
            CustomPropertyMatch {
                name: "Dept".into(),
                values: strings(&["Finance"]),
            },
            CustomPropertyMatch {
                name: "DEPT".into(),
                values: strings(&["Legal"]),
            },
        ];
    });
    let mut legal = details("CORP", "a");
    legal.custom_properties = Some(vec![("dept".into(), "legal".into())]);
    let mut sales = details("CORP", "b");
    sales.custom_properties = Some(vec![("dept".into(), "sales".into())]);
    let plan = decide_with_users(
        &rules,
        &[
            alloc("a", Professional, "CORP", "a"),
            alloc("b", Professional, "CORP", "b"),
        ],
        vec![legal, sales],
    );
    assert_eq!(
        only(&plan, "a").reason.to_string(),
        "excluded: custom property Dept=Legal"
    );
    assert_eq!(only(&plan, "b").verdict, Verdict::Reclaim);
}

#[test]
fn a_list_missing_from_a_user_record_is_unknown_not_empty() {
    // A RootAdmin whose record came without `roles` must not lose the seat to a role exclusion.
    for (field, clear) in [
        (
            "roles",
            (|d: &mut UserDetails| d.roles = None) as fn(&mut UserDetails),
        ),
        ("tags", |d: &mut UserDetails| d.tags = None),
        ("customProperties", |d: &mut UserDetails| {
            d.custom_properties = None
        }),
    ] {
        let mut admin = details("CORP", "admin");
        clear(&mut admin);
        let plan = decide_with_users(
            &record_rules(),
            &[alloc("a", Professional, "CORP", "admin")],
            vec![admin],
        );
        let decision = only(&plan, "a");
        assert_eq!(decision.verdict, Verdict::Keep, "{field}");
        assert_eq!(decision.reason, Reason::Incomplete { field }, "{field}");
        assert_eq!(decision.reason.code(), "unknown-data");
    }
    // A list no rule reads may be missing.
    let mut user = details("CORP", "plain");
    user.roles = None;
    let plan = decide_with_users(
        &rules_with(|s| s.exclude.tags = strings(&["VIP"])),
        &[alloc("a", Professional, "CORP", "plain")],
        vec![user],
    );
    assert_eq!(only(&plan, "a").verdict, Verdict::Reclaim);
}

#[test]
fn an_allocation_missing_a_decision_field_is_kept() {
    for field in ["lastUsed", "createdDate", "quarantined"] {
        let mut a = alloc("a", Professional, "CORP", "jdoe");
        a.incomplete = Some(field);
        let plan = decide(&rules(), &[a], &HashMap::new(), &BTreeMap::new(), now());
        let decision = only(&plan, "a");
        assert_eq!(decision.verdict, Verdict::Keep, "{field}");
        assert_eq!(
            decision.reason.to_string(),
            format!("QRS sent no usable {field}; kept (a missing value is never read as none)")
        );
    }
}

#[test]
fn missing_user_record_is_kept_when_records_are_needed() {
    let plan = decide_with_users(
        &record_rules(),
        &[
            alloc("a", Professional, "CORP", "ghost"),
            alloc("b", Professional, "CORP", "known"),
        ],
        vec![details("CORP", "known")],
    );
    assert_reason(
        &only(&plan, "a"),
        Verdict::Keep,
        "user-not-found",
        "user record not found in QRS; kept",
    );
    assert_eq!(only(&plan, "b").verdict, Verdict::Reclaim);
    let counts = plan.per_type[&Professional];
    assert_eq!((counts.kept, counts.excluded, counts.reclaim), (1, 0, 1));
}

#[test]
fn user_records_are_ignored_when_not_needed() {
    let mut vip = details("CORP", "a");
    vip.tags = Some(strings(&["VIP"]));
    let rules = rules_with(|s| s.limits.max_reclaim_percent = 100);
    let plan = decide_with_users(
        &rules,
        &[
            alloc("a", Professional, "CORP", "a"),
            alloc("b", Professional, "CORP", "b"),
        ],
        vec![vip],
    );
    assert_eq!(reclaim_ids(&plan).len(), 2);
}

#[test]
fn users_needing_details_are_the_would_be_candidates() {
    let rules = rules_with(|s| {
        s.exclude.tags = strings(&["VIP"]);
        s.exclude.users = strings(&[r"INTERNAL\*"]);
        s.scope.user_directories = strings(&["CORP", "INTERNAL"]);
        s.access_types.user = threshold(30);
    });
    let mut quarantined = alloc("q", Professional, "CORP", "q");
    quarantined.quarantined = true;
    let allocations = [
        alloc("z1", Professional, "CORP", "zed"),
        alloc("z2", User, "CORP", "ZED"),
        alloc("a", Professional, "CORP", "amy"),
        used(alloc("active", Professional, "CORP", "busy"), days_ago(2)),
        alloc("internal", Professional, "INTERNAL", "sa_api"),
        alloc("ext", Professional, "EXT", "x"),
        alloc("login", Login, "CORP", "login"),
        alloc("analyzer", Analyzer, "CORP", "an"),
        never(alloc("new", Professional, "CORP", "new"), Some(days_ago(1))),
        quarantined,
    ];
    assert_eq!(
        users_needing_details(&rules, &allocations, now()),
        vec![guid("CORP", "amy"), guid("CORP", "zed")]
    );
    assert!(users_needing_details(&self::rules(), &allocations, now()).is_empty());
}

// ---- Ordering and the cap ----

#[test]
fn candidates_are_ordered_longest_idle_first_across_types() {
    let rules = rules_with(|s| {
        s.access_types.analyzer = threshold(30);
        s.access_types.user = threshold(30);
        s.limits.max_reclaim_percent = 100;
    });
    let allocations = [
        used(alloc("p-60", Professional, "CORP", "a"), days_ago(60)),
        never(alloc("u-never-200", User, "CORP", "b"), Some(days_ago(200))),
        used(alloc("n-90", Analyzer, "CORP", "c"), days_ago(90)),
        used(alloc("active", Analyzer, "CORP", "d"), days_ago(1)),
        used(alloc("p-400", Professional, "CORP", "e"), days_ago(400)),
    ];
    let plan = decide_simple(&rules, &allocations);
    let order: Vec<&str> = plan
        .decisions
        .iter()
        .map(|d| d.allocation.id.as_str())
        .collect();
    assert_eq!(order, ["p-400", "u-never-200", "n-90", "p-60", "active"]);
    assert_eq!(reclaim_ids(&plan), ["p-400", "u-never-200", "n-90", "p-60"]);
}

#[test]
fn ties_are_broken_by_type_then_user_then_id() {
    let rules = rules_with(|s| {
        s.access_types.analyzer = threshold(30);
        s.limits.max_reclaim_percent = 100;
    });
    let at = days_ago(50);
    let allocations = [
        used(alloc("3", Analyzer, "CORP", "a"), at),
        used(alloc("2", Professional, "CORP", "b"), at),
        used(alloc("1", Professional, "corp", "B"), at),
        used(alloc("0", Professional, "CORP", "a"), at),
        never(alloc("4", Professional, "AAA", "z"), Some(at)),
    ];
    let plan = decide_simple(&rules, &allocations);
    assert_eq!(reclaim_ids(&plan), ["4", "0", "1", "2", "3"]);
}

#[test]
fn cap_defers_the_rest_to_the_next_run() {
    let rules = rules_with(|s| {
        s.limits.max_reclaims_per_run = 2;
        s.limits.max_reclaim_percent = 100;
        s.access_types.user = threshold(30);
    });
    let allocations = [
        used(alloc("p-40", Professional, "CORP", "a"), days_ago(40)),
        used(alloc("u-80", User, "CORP", "b"), days_ago(80)),
        never(
            alloc("p-never-60", Professional, "CORP", "c"),
            Some(days_ago(60)),
        ),
        used(alloc("u-70", User, "CORP", "d"), days_ago(70)),
    ];
    let plan = decide_simple(&rules, &allocations);
    assert_eq!(reclaim_ids(&plan), ["u-80", "u-70"]);
    assert_reason(
        &only(&plan, "p-never-60"),
        Verdict::Deferred,
        "over-cap",
        "over limits.maxReclaimsPerRun (2); left for the next run (never used, allocated 60 days ago)",
    );
    assert_reason(
        &only(&plan, "p-40"),
        Verdict::Deferred,
        "over-cap",
        "over limits.maxReclaimsPerRun (2); left for the next run (not used for 40 days)",
    );
    let deferred: Vec<&str> = plan
        .candidates()
        .filter(|d| d.verdict == Verdict::Deferred)
        .map(|d| d.allocation.id.as_str())
        .collect();
    assert_eq!(deferred, ["p-never-60", "p-40"]);
    assert_eq!(
        plan.per_type[&Professional],
        PlanCounts {
            fetched: 2,
            candidates: 2,
            reclaim: 0,
            deferred: 2,
            excluded: 0,
            kept: 0
        }
    );
    assert_eq!(plan.per_type[&User].reclaim, 2);
    assert_eq!(plan.totals().candidates, 4);
}

// ---- Breaker ----

fn breaker_site(candidates: usize, active: usize) -> Vec<Allocation> {
    let mut allocations = Vec::new();
    for i in 0..candidates {
        allocations.push(alloc(
            &format!("c{i}"),
            Professional,
            "CORP",
            &format!("c{i}"),
        ));
    }
    for i in 0..active {
        allocations.push(used(
            alloc(&format!("k{i}"), Professional, "CORP", &format!("k{i}")),
            days_ago(1),
        ));
    }
    allocations
}

#[test]
fn breaker_allows_exactly_the_limit() {
    let plan = decide_simple(&rules(), &breaker_site(5, 5));
    assert!(!plan.is_aborted());
    assert_eq!(plan.reclaims().count(), 5);
}

#[test]
fn breaker_trips_just_above_the_limit() {
    let plan = decide_simple(&rules(), &breaker_site(6, 5));
    assert!(plan.is_aborted());
    assert_eq!(plan.reclaims().count(), 0);
    assert_eq!(plan.planned_reclaims().count(), 6);
    assert_eq!(
        plan.breaker,
        Some(BreakerTrip {
            access_type: Professional,
            candidates: 6,
            allocated: 11,
            limit_percent: 50
        })
    );
    // Decisions stay as computed, for the report.
    assert_eq!(plan.per_type[&Professional].reclaim, 6);
    assert_eq!(plan.decisions[0].verdict, Verdict::Reclaim);
}

#[test]
fn breaker_divides_by_the_site_total() {
    let totals = BTreeMap::from([(Professional, 1000)]);
    let plan = decide(
        &rules(),
        &breaker_site(500, 0),
        &HashMap::new(),
        &totals,
        now(),
    );
    assert!(!plan.is_aborted(), "500 of 1000 is exactly 50%");
    let plan = decide(
        &rules(),
        &breaker_site(501, 0),
        &HashMap::new(),
        &totals,
        now(),
    );
    assert_eq!(
        plan.breaker.map(|b| b.to_string()).as_deref(),
        Some(
            "professional: 501 of 1000 allocations (50.1%) are candidates, above the 50% limit; nothing was \
             deallocated. Check the thresholds and the site's lastUsed dates, or raise limits.maxReclaimPercent."
        )
    );
}

#[test]
fn breaker_counts_candidates_before_the_cap() {
    let rules = rules_with(|s| s.limits.max_reclaims_per_run = 1);
    let plan = decide_simple(&rules, &breaker_site(6, 5));
    assert!(plan.is_aborted());
    assert_eq!(plan.breaker.as_ref().map(|b| b.candidates), Some(6));
}

#[test]
fn breaker_ignores_excluded_and_kept() {
    let rules = rules_with(|s| s.exclude.users = strings(&[r"CORP\c*"]));
    let plan = decide_simple(&rules, &breaker_site(10, 1));
    assert!(!plan.is_aborted());
    assert_eq!(plan.per_type[&Professional].excluded, 10);
}

#[test]
fn breaker_reports_the_first_tripping_type() {
    let rules = rules_with(|s| {
        s.access_types.analyzer = threshold(30);
        s.access_types.user = threshold(30);
    });
    let allocations = [
        alloc("u", User, "CORP", "u"),
        alloc("n", Analyzer, "CORP", "n"),
        alloc("p", Professional, "CORP", "p"),
    ];
    let totals = BTreeMap::from([(Professional, 100), (Analyzer, 1), (User, 1)]);
    let plan = decide(&rules, &allocations, &HashMap::new(), &totals, now());
    assert_eq!(plan.breaker.map(|b| b.access_type), Some(Analyzer));
}

#[test]
fn missing_total_counts_the_allocations_given() {
    let totals = BTreeMap::from([(Analyzer, 0)]);
    let plan = decide(
        &rules(),
        &breaker_site(1, 1),
        &HashMap::new(),
        &totals,
        now(),
    );
    assert!(!plan.is_aborted());
    let plan = decide(
        &rules(),
        &breaker_site(2, 1),
        &HashMap::new(),
        &totals,
        now(),
    );
    assert!(plan.is_aborted());
}

#[test]
fn zero_allocated_total_with_candidates_trips() {
    let totals = BTreeMap::from([(Professional, 0)]);
    let plan = decide(
        &rules(),
        &breaker_site(1, 0),
        &HashMap::new(),
        &totals,
        now(),
    );
    assert!(plan.is_aborted());
}

// ---- The plan ----

#[test]
fn every_configured_type_has_counts() {
    let rules = rules_with(|s| s.access_types.user = threshold(30));
    let plan = decide_simple(&rules, &[alloc("l", Login, "CORP", "g")]);
    let types: Vec<AccessType> = plan.per_type.keys().copied().collect();
    assert_eq!(types, [Professional, User, Login]);
    assert_eq!(plan.per_type[&Login].kept, 1);
    assert_eq!(plan.per_type[&User], PlanCounts::default());
}

#[test]
fn empty_site() {
    let plan = decide_simple(&rules(), &[]);
    assert!(plan.decisions.is_empty());
    assert!(!plan.is_aborted());
    assert_eq!(plan.reclaims().count(), 0);
}

#[test]
fn decide_owned_is_decide() {
    let rules = rules_with(|s| s.limits.max_reclaims_per_run = 3);
    let site = breaker_site(4, 6);
    let a = decide_simple(&rules, &site);
    let (users, authoring, moved) = (HashMap::new(), HashMap::new(), HashMap::new());
    let known = Known {
        users: &users,
        authoring: &authoring,
        moved: &moved,
    };
    let b = decide_owned(&rules, site, &known, &BTreeMap::new(), now());
    assert_eq!(a, b);
}

#[test]
fn non_candidates_keep_their_input_order() {
    let allocations = [
        used(alloc("k1", Professional, "CORP", "a"), days_ago(1)),
        alloc("c1", Professional, "CORP", "b"),
        used(alloc("k2", Professional, "CORP", "c"), days_ago(2)),
        used(alloc("c2", Professional, "CORP", "d"), days_ago(300)),
        used(alloc("k3", Professional, "CORP", "e"), days_ago(3)),
    ];
    let rules = rules_with(|s| s.limits.max_reclaim_percent = 100);
    let plan = decide_simple(&rules, &allocations);
    let order: Vec<&str> = plan
        .decisions
        .iter()
        .map(|d| d.allocation.id.as_str())
        .collect();
    assert_eq!(order, ["c2", "c1", "k1", "k2", "k3"]);
}

#[test]
fn verdict_codes() {
    assert_eq!(Verdict::Reclaim.to_string(), "reclaim");
    assert_eq!(Verdict::Deferred.code(), "deferred");
    assert_eq!(Verdict::Keep.code(), "keep");
}

#[test]
fn idle_since_of_decisions() {
    let plan = decide_simple(
        &rules(),
        &[
            used(alloc("u", Professional, "CORP", "a"), days_ago(40)),
            never(alloc("n", Professional, "CORP", "b"), Some(days_ago(50))),
        ],
    );
    assert_eq!(only(&plan, "u").idle_since(), Some(days_ago(40)));
    assert_eq!(only(&plan, "n").idle_since(), Some(days_ago(50)));
}

#[test]
fn a_seat_allocated_hours_ago_is_in_grace_not_in_the_future() {
    let hours_ago = now() - SignedDuration::from_hours(3);
    let a = never(alloc("a", Professional, "CORP", "new"), Some(hours_ago));
    let plan = decide(&rules(), &[a], &HashMap::new(), &BTreeMap::new(), now());
    assert_eq!(
        only(&plan, "a").reason.to_string(),
        "never used; allocated less than a day ago, within the 14-day grace"
    );
}

// ---- leavers (spec.leavers) and exclude.userStates ----

fn leaver_rules(edit: impl FnOnce(&mut LicenseCleanupPolicySpec)) -> Rules {
    rules_with(|s| {
        s.leavers = Some(crate::policy::LeaversSpec {
            removed_externally: true,
            blocked: true,
            inactive: false,
            after_days: 2,
        });
        edit(s);
    })
}

/// A user record that says the user is removed from the directory, blocked and inactive as given.
fn in_states(
    directory: &str,
    user: &str,
    removed: bool,
    blocked: bool,
    inactive: bool,
) -> UserDetails {
    UserDetails {
        removed_externally: Some(removed),
        blocked: Some(blocked),
        inactive: Some(inactive),
        ..details(directory, user)
    }
}

#[test]
fn a_leaver_loses_a_recently_used_seat_before_anyone_idle() {
    let rules = leaver_rules(|s| {
        s.limits.max_reclaims_per_run = 1;
        s.limits.max_reclaim_percent = 100;
    });
    let gone = used(alloc("gone", Professional, "CORP", "gone"), days_ago(3));
    let idle = used(alloc("idle", Professional, "CORP", "idle"), days_ago(200));
    let users = vec![
        in_states("CORP", "gone", true, false, false),
        in_states("CORP", "idle", false, false, false),
    ];
    let plan = decide_with_users(&rules, &[idle, gone], users);
    assert_eq!(reclaim_ids(&plan), ["gone"], "leavers first under the cap");
    let gone = only(&plan, "gone").reason;
    assert_eq!(gone.code(), "leaver");
    let why = "removed from the user directory; not used for 3 days (leavers.afterDays 2)";
    assert_eq!(gone.to_string(), why);
    assert_eq!(only(&plan, "idle").verdict, Verdict::Deferred);
}

#[test]
fn a_leaver_used_inside_after_days_or_in_an_unreported_state_is_judged_like_anyone() {
    let rules = leaver_rules(|_| {});
    let recent = used(alloc("recent", Professional, "CORP", "recent"), days_ago(1));
    let unknown = used(
        alloc("unknown", Professional, "CORP", "unknown"),
        days_ago(3),
    );
    let inactive_only = used(
        alloc("inactive", Professional, "CORP", "inactive"),
        days_ago(3),
    );
    let users = vec![
        in_states("CORP", "recent", true, true, true),
        details("CORP", "unknown"),
        in_states("CORP", "inactive", false, false, true),
    ];
    let plan = decide_with_users(&rules, &[recent, unknown, inactive_only], users);
    for id in ["recent", "unknown", "inactive"] {
        assert_eq!(only(&plan, id).reason.code(), "active", "{id}");
    }
}

#[test]
fn a_leaver_keeps_the_seat_when_excluded_quarantined_or_out_of_scope() {
    let rules = leaver_rules(|s| {
        s.exclude.tags = strings(&["VIP"]);
        s.scope.user_directories = strings(&["CORP"]);
    });
    let vip = used(alloc("vip", Professional, "CORP", "vip"), days_ago(5));
    let mut quarantined = used(alloc("q", Professional, "CORP", "q"), days_ago(5));
    quarantined.quarantined = true;
    let elsewhere = used(alloc("ext", Professional, "EXTERNAL", "ext"), days_ago(5));
    let mut vip_record = in_states("CORP", "vip", false, true, false);
    vip_record.tags = Some(strings(&["VIP"]));
    let users = vec![
        vip_record,
        in_states("CORP", "q", true, false, false),
        in_states("EXTERNAL", "ext", true, false, false),
    ];
    let plan = decide_with_users(&rules, &[vip, quarantined, elsewhere], users);
    assert!(reclaim_ids(&plan).is_empty(), "{:?}", plan.decisions);
    assert_eq!(only(&plan, "vip").reason.code(), "excluded");
    assert_eq!(only(&plan, "q").reason.code(), "quarantined");
    assert_eq!(only(&plan, "ext").reason.code(), "out-of-scope");
}

#[test]
fn leavers_count_toward_the_breaker() {
    // A directory sync gone wrong marks everyone removed: the run must stop, not empty the site.
    let rules = leaver_rules(|s| s.limits.max_reclaim_percent = 50);
    let seats: Vec<Allocation> = ["a", "b", "c"]
        .iter()
        .map(|u| used(alloc(u, Professional, "CORP", u), days_ago(4)))
        .collect();
    let users = ["a", "b", "c"]
        .iter()
        .map(|u| in_states("CORP", u, true, false, false))
        .collect();
    let plan = decide_with_users(&rules, &seats, users);
    assert!(plan.is_aborted(), "{:?}", plan.totals());
    assert!(plan.reclaims().next().is_none());
}

#[test]
fn a_protected_state_keeps_the_seat_and_an_unreported_one_keeps_it_too() {
    use crate::policy::UserStateName;
    let rules = rules_with(|s| {
        s.exclude.user_states = vec![UserStateName::Inactive];
        s.limits.max_reclaim_percent = 100;
    });
    let inactive = alloc("inactive", Professional, "CORP", "inactive");
    let active_user = alloc("fine", Professional, "CORP", "fine");
    let unreported = alloc("unknown", Professional, "CORP", "unknown");
    let users = vec![
        in_states("CORP", "inactive", false, false, true),
        in_states("CORP", "fine", false, false, false),
        details("CORP", "unknown"),
    ];
    let plan = decide_with_users(&rules, &[inactive, active_user, unreported], users);
    let protected = only(&plan, "inactive");
    assert_eq!(
        (protected.verdict, protected.reason.code()),
        (Verdict::Keep, "excluded")
    );
    let why = "excluded: inactive in the QMC (exclude.userStates inactive)";
    assert_eq!(protected.reason.to_string(), why);
    assert_eq!(only(&plan, "fine").verdict, Verdict::Reclaim);
    assert_eq!(only(&plan, "unknown").reason.code(), "unknown-data");
}

#[test]
fn leavers_need_records_of_recently_used_seats_and_the_policy_checks_their_states() {
    let rules = leaver_rules(|_| {});
    assert!(rules.needs_user_details());
    let recent = used(alloc("r", Professional, "CORP", "r"), days_ago(3));
    let too_recent = used(alloc("t", Professional, "CORP", "t"), days_ago(1));
    let ids = users_needing_details(&rules, &[recent, too_recent], now());
    assert_eq!(ids, [guid("CORP", "r")]);

    let both = invalid(|s| {
        s.leavers = Some(crate::policy::LeaversSpec {
            removed_externally: true,
            blocked: false,
            inactive: false,
            after_days: 0,
        });
        s.exclude.user_states = vec![crate::policy::UserStateName::RemovedExternally];
    });
    assert_eq!(both.field, "spec.exclude.userStates");
    let none = invalid(|s| {
        s.leavers = Some(crate::policy::LeaversSpec {
            removed_externally: false,
            blocked: false,
            inactive: false,
            after_days: 0,
        });
    });
    assert_eq!(none.field, "spec.leavers");
}

// ---- redundant seats (spec.redundant.analyzerWithProfessional) ----

fn redundant_rules(edit: impl FnOnce(&mut LicenseCleanupPolicySpec)) -> Rules {
    rules_with(|s| {
        s.access_types.analyzer = threshold(30);
        s.redundant.analyzer_with_professional = true;
        s.limits.max_reclaim_percent = 100;
        edit(s);
    })
}

/// An Analyzer seat of a user who holds Professional too, used `days` ago.
fn redundant_seat(id: &str, user: &str, days: i64) -> Allocation {
    let mut a = used(alloc(id, Analyzer, "CORP", user), days_ago(days));
    a.user_also_professional = true;
    a
}

#[test]
fn a_redundant_analyzer_seat_goes_whatever_its_last_use_after_leavers_and_before_idle_seats() {
    let rules = redundant_rules(|s| s.limits.max_reclaims_per_run = 1);
    let both = redundant_seat("both", "both", 1);
    let idle = used(alloc("idle", Professional, "CORP", "idle"), days_ago(300));
    let plan = decide_simple(&rules, &[idle, both]);
    assert_eq!(reclaim_ids(&plan), ["both"]);
    assert_reason(
        &only(&plan, "both"),
        Verdict::Reclaim,
        "redundant",
        "holds a Professional seat too; the Analyzer seat is redundant",
    );
    assert_eq!(only(&plan, "idle").verdict, Verdict::Deferred);
    // Without the rule the same seat is simply in use.
    let plain = decide_simple(
        &rules_with(|s| s.access_types.analyzer = threshold(30)),
        &[redundant_seat("both", "both", 1)],
    );
    assert_eq!(only(&plain, "both").reason.code(), "active");
}

#[test]
fn a_user_whose_professional_seat_goes_keeps_the_analyzer_seat() {
    let rules = redundant_rules(|_| {});
    let professional = used(alloc("pro", Professional, "CORP", "both"), days_ago(300));
    let analyzer = redundant_seat("analyzer", "both", 1);
    let plan = decide_simple(&rules, &[analyzer, professional]);
    assert_eq!(reclaim_ids(&plan), ["pro"]);
    assert_eq!(only(&plan, "analyzer").reason.code(), "active");
}

#[test]
fn a_redundant_seat_obeys_exclusions_and_quarantine_and_needs_analyzer_managed() {
    let rules = redundant_rules(|s| s.exclude.users = strings(&["CORP\\vip"]));
    let vip = redundant_seat("vip", "vip", 1);
    let mut quarantined = redundant_seat("q", "q", 1);
    quarantined.quarantined = true;
    let plan = decide_simple(&rules, &[vip, quarantined]);
    assert!(reclaim_ids(&plan).is_empty());
    assert_eq!(only(&plan, "vip").reason.code(), "excluded");
    assert_eq!(only(&plan, "q").reason.code(), "quarantined");

    let unmanaged = invalid(|s| s.redundant.analyzer_with_professional = true);
    assert_eq!(unmanaged.field, "spec.redundant.analyzerWithProfessional");
}

// ---- Right-sizing (spec.rightSize.professionalToAnalyzer) ----

mod right_size {
    use super::*;
    use crate::authoring::{Evidence, LastAuthored, ObjectKind};
    use crate::model::Rule;
    use crate::policy::{ProfessionalToAnalyzerSpec, RightSizeSpec};

    fn moving(after_days: u32) -> Option<RightSizeSpec> {
        Some(RightSizeSpec {
            professional_to_analyzer: Some(ProfessionalToAnalyzerSpec { after_days }),
        })
    }

    fn rules_90() -> Rules {
        rules_with(|s| s.right_size = moving(90))
    }

    /// A Professional seat used 3 days ago, allocated a year ago.
    fn in_use(id: &str, user: &str) -> Allocation {
        used(alloc(id, Professional, "CORP", user), days_ago(3))
    }

    fn sheet(name: &str, days: i64) -> LastAuthored {
        LastAuthored {
            kind: ObjectKind::Sheet,
            name: name.into(),
            at: days_ago(days),
        }
    }

    fn with_evidence(
        rules: &Rules,
        allocations: Vec<Allocation>,
        evidence: &[(&str, Evidence)],
    ) -> Plan {
        with_moves(rules, allocations, evidence, &HashMap::new())
    }

    /// The plan with what users authored and whom earlier runs moved.
    fn with_moves(
        rules: &Rules,
        allocations: Vec<Allocation>,
        evidence: &[(&str, Evidence)],
        moved: &HashMap<UserIdentity, Timestamp>,
    ) -> Plan {
        let authoring: HashMap<String, Evidence> = evidence
            .iter()
            .map(|(user, e)| (guid("CORP", user), e.clone()))
            .collect();
        let users = HashMap::new();
        let known = Known {
            users: &users,
            authoring: &authoring,
            moved,
        };
        decide_owned(rules, allocations, &known, &BTreeMap::new(), now())
    }

    #[test]
    fn a_consumer_in_use_moves_and_an_author_stays() {
        let plan = with_evidence(
            &rules_90(),
            vec![in_use("c", "consumer"), in_use("a", "author")],
            &[
                (
                    "consumer",
                    Evidence::Consumer {
                        last: Some(sheet("Q3 draft", 214)),
                    },
                ),
                ("author", Evidence::Author(sheet("Live", 10))),
            ],
        );
        let consumer = only(&plan, "c");
        assert_eq!(consumer.verdict, Verdict::Reclaim);
        assert_eq!(consumer.reason.rule(), Some(Rule::RightSize));
        assert_eq!(consumer.reason.code(), "right-size");
        assert_eq!(
            consumer.reason.to_string(),
            "authored nothing for 214 days; last: sheet \"Q3 draft\" 2025-10-30"
        );
        let author = only(&plan, "a");
        assert_eq!(author.verdict, Verdict::Keep);
        assert_eq!(author.reason.code(), "authoring");
        assert!(
            author.reason.to_string().contains("\"Live\""),
            "{}",
            author.reason
        );
    }

    #[test]
    fn what_was_not_read_or_is_unclear_keeps_the_seat() {
        let plan = with_evidence(
            &rules_90(),
            vec![in_use("u", "unclear"), in_use("m", "missing")],
            &[("unclear", Evidence::Unclear("an undated sheet".into()))],
        );
        for id in ["u", "m"] {
            let d = only(&plan, id);
            assert_eq!(
                (d.verdict, d.reason.code()),
                (Verdict::Keep, "unknown-data"),
                "{id}: {}",
                d.reason
            );
        }
    }

    #[test]
    fn only_old_professional_seats_in_use_move_and_idle_ones_stay_the_idle_rules() {
        let consumer = Evidence::Consumer { last: None };
        let mut young = in_use("young", "young");
        young.created = Some(days_ago(89));
        let mut at_the_edge = in_use("edge", "edge");
        at_the_edge.created = Some(days_ago(90));
        let idle = alloc("idle", Professional, "CORP", "idle");
        let analyzer = used(alloc("an", Analyzer, "CORP", "an"), days_ago(3));
        let rules = rules_with(|s| {
            s.right_size = moving(90);
            s.access_types.analyzer = threshold(30);
        });
        let plan = with_evidence(
            &rules,
            vec![young, at_the_edge, idle, analyzer],
            &[
                ("young", consumer.clone()),
                ("edge", consumer.clone()),
                ("idle", consumer.clone()),
                ("an", consumer),
            ],
        );
        assert_eq!(
            only(&plan, "young").reason.code(),
            "active",
            "allocated 89 days ago: too young"
        );
        assert_eq!(
            only(&plan, "edge").reason.code(),
            "right-size",
            "allocated exactly 90 days ago"
        );
        assert_eq!(
            only(&plan, "idle").reason.code(),
            "inactive",
            "an idle seat is reclaimed, not moved"
        );
        assert_eq!(
            only(&plan, "an").reason.code(),
            "active",
            "only Professional seats move"
        );
    }

    #[test]
    fn exclusions_and_scope_apply_to_moves() {
        let rules = rules_with(|s| {
            s.right_size = moving(90);
            s.exclude.users = strings(&[r"CORP\vip*"]);
        });
        let plan = with_evidence(
            &rules,
            vec![in_use("v", "vip1")],
            &[("vip1", Evidence::Consumer { last: None })],
        );
        assert_eq!(only(&plan, "v").reason.code(), "excluded");
    }

    #[test]
    fn the_analyzer_seat_of_a_user_who_moves_is_kept_even_when_idle() {
        let rules = rules_with(|s| {
            s.right_size = moving(90);
            s.access_types.analyzer = threshold(30);
            s.redundant.analyzer_with_professional = true;
        });
        // The mover's Analyzer seat has not been used for a year (they used Professional): alone, the idle
        // rule (and the redundant rule) would take it, and the move would leave the user with neither.
        let mut analyzer = alloc("an", Analyzer, "CORP", "mover");
        analyzer.user_also_professional = true;
        let plan = with_evidence(
            &rules,
            vec![in_use("pro", "mover"), analyzer],
            &[("mover", Evidence::Consumer { last: None })],
        );
        assert_eq!(only(&plan, "pro").reason.code(), "right-size");
        let kept = only(&plan, "an");
        assert_eq!(
            (kept.verdict, kept.reason.code()),
            (Verdict::Keep, "move-target")
        );
    }

    #[test]
    fn a_moved_users_analyzer_seat_is_idle_only_once_the_threshold_has_passed_since_the_move() {
        let rules = rules_with(|s| {
            s.right_size = moving(90);
            s.access_types.analyzer = threshold(30);
        });
        // Both held an Analyzer seat unused for a year while they used Professional; one was moved 10 days
        // ago, the other 40 days ago (past the 30-day threshold: the seat is judged by its own use again).
        let seat = |id: &str, user: &str| used(alloc(id, Analyzer, "CORP", user), days_ago(365));
        let moved: HashMap<UserIdentity, Timestamp> = [("recent", 10), ("earlier", 40)]
            .into_iter()
            .map(|(user, days)| (UserIdentity::new("CORP", user), days_ago(days)))
            .collect();
        let plan = with_moves(
            &rules,
            vec![seat("r", "recent"), seat("e", "earlier")],
            &[],
            &moved,
        );
        let recent = only(&plan, "r");
        assert_eq!(
            (recent.verdict, recent.reason.code()),
            (Verdict::Keep, "moved-recently"),
            "{}",
            recent.reason
        );
        assert_eq!(only(&plan, "e").reason.code(), "inactive");
    }

    #[test]
    fn moves_come_before_idle_seats_under_the_cap() {
        let rules = rules_with(|s| {
            s.right_size = moving(90);
            s.limits.max_reclaims_per_run = 1;
        });
        let plan = with_evidence(
            &rules,
            vec![
                alloc("idle", Professional, "CORP", "idle"),
                in_use("move", "mover"),
            ],
            &[("mover", Evidence::Consumer { last: None })],
        );
        assert_eq!(
            only(&plan, "move").verdict,
            Verdict::Reclaim,
            "the move goes first"
        );
        assert_eq!(only(&plan, "idle").verdict, Verdict::Deferred);
        assert_eq!(plan.decisions[0].allocation.id, "move");
    }

    #[test]
    fn moves_count_towards_the_breaker() {
        let rules = rules_with(|s| {
            s.right_size = moving(90);
            s.limits.max_reclaim_percent = 50;
        });
        let consumer = |u: &str| (u.to_string(), Evidence::Consumer { last: None });
        let users = ["m1", "m2", "m3"];
        let evidence: Vec<(String, Evidence)> = users.iter().map(|u| consumer(u)).collect();
        let evidence: Vec<(&str, Evidence)> = evidence
            .iter()
            .map(|(u, e)| (u.as_str(), e.clone()))
            .collect();
        let plan = with_evidence(
            &rules,
            users
                .iter()
                .map(|u| in_use(u, u))
                .chain([in_use("keep", "keeper")])
                .collect(),
            &evidence,
        );
        assert!(
            plan.is_aborted(),
            "3 of 4 Professional allocations would move: above 50%"
        );
    }

    #[test]
    fn without_evidence_the_plain_engine_moves_nothing() {
        let plan = decide_simple(&rules_90(), &[in_use("c", "consumer")]);
        assert_eq!(only(&plan, "c").verdict, Verdict::Keep);
        assert_eq!(only(&plan, "c").reason.code(), "unknown-data");
        let off = decide_simple(&rules(), &[in_use("c", "consumer")]);
        assert_eq!(
            off.decisions[0].reason.code(),
            "active",
            "no rightSize: an active seat"
        );
    }

    #[test]
    fn right_sizing_is_validated() {
        assert!(
            invalid(|s| s.right_size = moving(29))
                .to_string()
                .contains("afterDays")
        );
        assert!(
            invalid(|s| s.right_size = moving(3651))
                .to_string()
                .contains("afterDays")
        );
        let e = invalid(|s| {
            s.right_size = moving(90);
            s.access_types.professional = None;
            s.access_types.analyzer = threshold(30);
        });
        assert!(e.to_string().contains("accessTypes.professional"), "{e}");
        rules_with(|s| {
            s.right_size = moving(90);
            s.dry_run = false;
        });
        // An empty rightSize moves nothing and is valid.
        rules_with(|s| s.right_size = Some(RightSizeSpec::default()));
    }
}
