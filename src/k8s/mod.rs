//! The Kubernetes side: everything that knows the API server. It turns resources into runs and runs back into
//! status, Events and metrics; the run itself ([`crate::run`]) knows nothing of Kubernetes.
//!
//! - [`controller`]: wiring of the controller process (HTTP endpoints, leader election, watches, shutdown).
//! - [`reconcile`]: one reconcile of one policy, delegating to the files below.
//! - [`scheduling`]: whether a run is due (the schedule, suspend, the run-now annotation).
//! - [`policy_run`]: one run of a policy from the cluster, shared by the controller and `run --policy-ref`.
//! - [`inputs`]: what a run reads before it starts (the policy checked, its Secret, its notification settings).
//! - [`hold`]: a run's hold on its policy (at most one run at a time) and the watch that works its brake.
//! - [`status`]: the status subresource; [`conditions`]: its conditions, with their reasons as types.
//! - [`events`]: the Events that tell each run's story.
//! - [`metrics`], [`http`]: the Prometheus metrics and the endpoints that serve them.
//! - [`leader`]: the leader Lease.

pub(crate) mod conditions;
pub(crate) mod controller;
pub(crate) mod events;
pub(crate) mod hold;
pub(crate) mod http;
pub(crate) mod inputs;
pub(crate) mod leader;
pub(crate) mod metrics;
pub(crate) mod policy_run;
pub(crate) mod reconcile;
pub(crate) mod records;
pub(crate) mod restore;
pub(crate) mod scheduling;
pub(crate) mod status;

/// Field manager of every write.
pub(crate) const FIELD_MANAGER: &str = "qlik-license-reclaimer";

/// The object `namespace/name` of `api`'s kind; `None` when it does not exist. The error names what could not be
/// read, with the API server's reason.
pub(crate) async fn get_named<K>(
    api: &kube::Api<K>,
    namespace: &str,
    name: &str,
) -> Result<Option<K>, String>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.get_opt(name)
        .await
        .map_err(|e| format!("cannot read {} {namespace}/{name}: {e}", K::kind(&())))
}
