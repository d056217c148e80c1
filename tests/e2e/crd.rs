//! The committed CRD is what the program prints.

use kube::CustomResourceExt;
use qlik_license_reclaimer::policy::LicenseCleanupPolicy;

const COMMITTED: &str = include_str!("../../deploy/crd.yaml");

#[test]
fn committed_crd_matches_the_code() {
    let generated = qlik_license_reclaimer::cli::crds_yaml().unwrap();
    assert!(
        generated == COMMITTED,
        "deploy/crd.yaml is out of date: run `cargo run -- crd > deploy/crd.yaml`"
    );
}

/// The names of a CRD version's additionalPrinterColumns.
fn printer_columns(version: &serde_json::Value) -> Vec<String> {
    version["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn crd_carries_names_validation_and_columns() {
    let crd = serde_json::to_value(LicenseCleanupPolicy::crd()).unwrap();
    assert_eq!(crd["spec"]["group"], "licensing.reclaimer.dev");
    assert_eq!(crd["spec"]["names"]["shortNames"][0], "lcp");
    assert_eq!(crd["spec"]["names"]["categories"][0], "qlik");
    let version = &crd["spec"]["versions"][0];
    assert_eq!(version["name"], "v1alpha1");
    assert!(version["subresources"]["status"].is_object());
    let columns = printer_columns(version);
    for c in [
        "Schedule",
        "Dry Run",
        "Ready",
        "Last Run",
        "Reclaimed",
        "Moved",
        "Next Run",
    ] {
        assert!(
            columns.iter().any(|x| x == c),
            "printer column {c} missing: {columns:?}"
        );
    }
    let spec = &version["schema"]["openAPIV3Schema"]["properties"]["spec"];
    assert_eq!(spec["properties"]["dryRun"]["default"], true);
    assert_eq!(
        spec["properties"]["site"]["properties"]["concurrency"]["maximum"],
        32.0
    );
    let text = serde_json::to_string(spec).unwrap();
    assert!(text.contains("has(self.repositoryUrl) != has(self.proxy)"));
    assert!(
        spec["required"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "schedule")
    );
}

#[test]
fn the_example_policy_is_valid_and_starts_in_dry_run() {
    let text = include_str!("../../deploy/examples/policy.yaml");
    let policy: LicenseCleanupPolicy = serde_yaml::from_str(text).expect("the example parses");
    qlik_license_reclaimer::policy::validate(&policy.spec, &Default::default())
        .expect("the example is a valid policy");
    assert!(
        policy.spec.dry_run,
        "the example must not reclaim before an administrator says so"
    );
}

#[test]
fn the_run_crd_tells_the_story_in_its_columns() {
    use qlik_license_reclaimer::record::LicenseCleanupRun;
    let crd = serde_json::to_value(LicenseCleanupRun::crd()).unwrap();
    assert_eq!(crd["spec"]["names"]["plural"], "licensecleanupruns");
    assert_eq!(crd["spec"]["names"]["shortNames"][0], "lcprun");
    assert_eq!(crd["spec"]["names"]["categories"][0], "qlik");
    let version = &crd["spec"]["versions"][0];
    assert!(version["subresources"]["status"].is_object());
    let columns = printer_columns(version);
    for c in [
        "Policy",
        "Result",
        "Dry Run",
        "Reclaimed",
        "Moved",
        "Failed",
        "Returned",
        "Restore",
    ] {
        assert!(columns.iter().any(|x| x == c), "{c} missing: {columns:?}");
    }
    let decision = &version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]["decisions"]
        ["items"]["properties"];
    for field in [
        "user",
        "accessType",
        "allocationId",
        "lastUsed",
        "action",
        "reason",
    ] {
        assert!(decision[field].is_object(), "decisions[].{field} missing");
    }
}
