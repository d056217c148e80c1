use kube::CustomResourceExt;
fn main() {
    println!("{}", serde_yaml::to_string(&qlik_license_reclaimer::policy::LicenseCleanupPolicy::crd()).unwrap());
}
