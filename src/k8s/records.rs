//! The runs' records in the cluster: one `LicenseCleanupRun` per run, owned by its policy (deleting the policy
//! deletes its runs), labelled with its uid (and its name, when the name fits a label); `historyLimit` of them
//! kept. Earlier records are read back to find
//! users who returned: reclaimed by a run, and holding that access type again.
//!
//! A record may be a megabyte and a policy may keep a hundred: they are read a few at a time, and only what returns
//! and pruning need is kept of each ([`KeptRun`]), so that reading them never approaches the controller's memory.

use std::collections::{BTreeMap, HashSet};

use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource, ResourceExt};

use super::FIELD_MANAGER;
use crate::model::{AccessType, UserIdentity};
use crate::policy::LicenseCleanupPolicy;
use crate::record::{
    LicenseCleanupRun, LicenseCleanupRunSpec, POLICY_LABEL, POLICY_UID_LABEL, RestoreOutcome,
    RunRecord, is_label_value,
};
use crate::run::EarlierReclaim;

/// The records of one policy.
pub(crate) struct PolicyRecords {
    api: Api<LicenseCleanupRun>,
    policy: String,
    /// The policy's uid: its runs carry it as a label.
    uid: String,
}

impl PolicyRecords {
    pub(crate) fn new(client: &Client, namespace: &str, policy: &str, uid: &str) -> Self {
        Self {
            api: Api::namespaced(client.clone(), namespace),
            policy: policy.to_string(),
            uid: uid.to_string(),
        }
    }

    /// The policy's records, newest first, as much of each as returns and pruning need: those labelled with its
    /// uid, and those kept before runs carried the uid (labelled with its name only, which then fits a label).
    pub(crate) async fn list(&self) -> Result<Vec<KeptRun>, kube::Error> {
        let mut runs = self
            .list_labelled(&format!("{POLICY_UID_LABEL}={}", self.uid))
            .await?;
        if is_label_value(&self.policy) {
            let older = format!("{POLICY_LABEL}={},!{POLICY_UID_LABEL}", self.policy);
            runs.extend(self.list_labelled(&older).await?);
        }
        runs.sort_by_key(|r| std::cmp::Reverse(r.start));
        Ok(runs)
    }

    async fn list_labelled(&self, selector: &str) -> Result<Vec<KeptRun>, kube::Error> {
        let mut params = ListParams::default()
            .labels(selector)
            .limit(RECORDS_PER_PAGE);
        let mut runs = Vec::new();
        loop {
            let page = self.api.list(&params).await?;
            runs.extend(page.items.iter().map(KeptRun::of));
            match page.metadata.continue_ {
                Some(token) if !token.is_empty() => params = params.continue_token(&token),
                _ => break,
            }
        }
        Ok(runs)
    }

    /// Keep the run's record: created owned by the policy, then its status written (the API server ignores a
    /// status sent with the object).
    pub(crate) async fn create(
        &self,
        policy: &LicenseCleanupPolicy,
        record: &RunRecord,
    ) -> Result<LicenseCleanupRun, kube::Error> {
        let mut run = LicenseCleanupRun::new(
            &record_name(&self.policy, &record.header.id),
            LicenseCleanupRunSpec {
                policy: self.policy.clone(),
                run_id: record.header.id.clone(),
            },
        );
        run.metadata.namespace = policy.namespace();
        let mut labels = BTreeMap::from([(POLICY_UID_LABEL.to_string(), self.uid.clone())]);
        // A name too long for a label is in the spec (`spec.policy`) and the owner reference.
        if is_label_value(&self.policy) {
            labels.insert(POLICY_LABEL.to_string(), self.policy.clone());
        }
        run.metadata.labels = Some(labels);
        run.metadata.owner_references = policy.controller_owner_ref(&()).map(|o| vec![o]);
        let created = self.api.create(&PostParams::default(), &run).await?;
        let patch = serde_json::json!({
            "apiVersion": "licensing.reclaimer.dev/v1alpha1",
            "kind": "LicenseCleanupRun",
            "status": record,
        });
        self.api
            .patch_status(
                &created.name_any(),
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await
    }

    /// Delete the oldest records beyond `limit`. `runs` newest first, as [`PolicyRecords::list`] gives them.
    pub(crate) async fn prune(&self, runs: &[KeptRun], limit: u32) {
        for old in runs.iter().skip(limit as usize) {
            let name = &old.name;
            match self.api.delete(name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => {
                    tracing::warn!(policy = %self.policy, run = %name, error = %e, "could not delete an old run record");
                }
            }
        }
    }
}

/// Records read per request: a record may be a megabyte.
const RECORDS_PER_PAGE: u32 = 5;

/// What is kept of a record once read: who it reclaimed, found back or gave back, and its counts.
#[derive(Debug, Clone)]
pub(crate) struct KeptRun {
    name: String,
    /// The site the run worked on (empty in records kept before runs recorded it).
    site: String,
    /// When the run started (its creation when the record has no status).
    start: jiff::Timestamp,
    id: String,
    /// Seats taken from their users, as (user, access type).
    reclaimed: Vec<(String, String)>,
    /// Users found back by this run, and seats given back by a restore, as (user folded, access type).
    returns: HashSet<(String, String)>,
    restored: HashSet<(String, String)>,
    /// Counts over the whole run (the lists above stop where the record's lists stop).
    returned_count: u64,
    reclaimed_count: u64,
}

/// A seat's key: users compared as QRS compares them, ignoring case.
fn key(user: &str, access_type: &str) -> (String, String) {
    (user.to_lowercase(), access_type.to_string())
}

impl KeptRun {
    pub(crate) fn of(run: &LicenseCleanupRun) -> Self {
        let created = run.metadata.creation_timestamp.as_ref().map(|t| t.0);
        let record = run.status.as_ref();
        Self {
            name: run.name_any(),
            site: record.map(|r| r.site.clone()).unwrap_or_default(),
            start: record
                .map(|r| r.header.start_time.0)
                .or(created)
                .unwrap_or(jiff::Timestamp::UNIX_EPOCH),
            id: record.map(|r| r.header.id.clone()).unwrap_or_default(),
            reclaimed: record
                .map(|r| {
                    r.reclaimed()
                        .map(|d| (d.user.clone(), d.access_type.clone()))
                        .collect()
                })
                .unwrap_or_default(),
            returns: record
                .map(|r| {
                    r.returns
                        .iter()
                        .map(|s| key(&s.user, &s.access_type))
                        .collect()
                })
                .unwrap_or_default(),
            restored: record
                .and_then(|r| r.restore.as_ref())
                .map(|r| {
                    r.seats
                        .iter()
                        .filter(|s| s.outcome == RestoreOutcome::Restored)
                        .map(|s| key(&s.user, &s.access_type))
                        .collect()
                })
                .unwrap_or_default(),
            returned_count: record.map_or(0, |r| r.returned),
            reclaimed_count: record
                .filter(|r| !r.header.dry_run)
                .map_or(0, |r| r.header.totals.reclaimed),
        }
    }
}

/// `<policy>-<run id>`, lower case, within the 253 characters of an object name.
pub(crate) fn record_name(policy: &str, run_id: &str) -> String {
    let suffix = run_id.to_ascii_lowercase();
    let room = 253 - suffix.len() - 1;
    let prefix: String = policy.chars().take(room).collect();
    format!("{}-{suffix}", prefix.trim_end_matches(['-', '.']))
}

/// The seats earlier runs reclaimed whose users have not been found back yet: not listed as returned by a later
/// record, not given back by a restore. `runs` newest first.
pub(crate) fn earlier_reclaims(runs: &[KeptRun], site: &str) -> Vec<EarlierReclaim> {
    let mut settled: HashSet<(String, String)> = HashSet::new();
    let mut earlier = Vec::new();
    // A run on another site (the policy was repointed) took seats from other people, whatever their names.
    for run in runs
        .iter()
        .filter(|r| r.site.is_empty() || crate::record::same_site(&r.site, site))
    {
        for (user, access_type) in &run.reclaimed {
            let k = key(user, access_type);
            if settled.contains(&k) || run.restored.contains(&k) {
                continue;
            }
            let (Some(user), Some(access_type)) =
                (UserIdentity::parse(user), AccessType::from_key(access_type))
            else {
                continue;
            };
            earlier.push(EarlierReclaim {
                user,
                access_type,
                at: run.start,
                run: run.id.clone(),
            });
        }
        settled.extend(run.returns.iter().cloned());
    }
    earlier
}

/// Returns and reclaims over the kept records, when returns exceed a fifth of the reclaims: the threshold is
/// likely too tight, or a licence rule hands seats back.
pub(crate) fn too_many_returns(runs: &[KeptRun]) -> Option<(u64, u64)> {
    let returned: u64 = runs.iter().map(|r| r.returned_count).sum();
    let reclaimed: u64 = runs.iter().map(|r| r.reclaimed_count).sum();
    (returned > 0 && returned * 5 > reclaimed).then_some((returned, reclaimed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{RunHeader, RunResult, TypeCounts};
    use crate::record::{RecordedAction, RecordedDecision, ReturnedSeat, Rule};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

    const SITE: &str = "https://qlik.example:4242";

    #[test]
    fn a_run_on_another_site_took_no_seat_from_this_one() {
        let mut elsewhere = record("r1", "2026-01-01T00:00:00Z", &["CORP\\ann"], &[]);
        if let Some(status) = elsewhere.status.as_mut() {
            status.site = "https://other.example:4242".into();
        }
        let older = {
            let mut run = record("r0", "2025-12-01T00:00:00Z", &["CORP\\bob"], &[]);
            if let Some(status) = run.status.as_mut() {
                status.site = String::new();
            }
            run
        };
        let same = record("r2", "2026-01-02T00:00:00Z", &["CORP\\cid"], &[]);
        let runs: Vec<KeptRun> = [same, elsewhere, older].iter().map(KeptRun::of).collect();
        let users: Vec<String> = earlier_reclaims(&runs, "HTTPS://qlik.example:4242/")
            .into_iter()
            .map(|e| e.user.to_string())
            .collect();
        // Ann's seat was taken on another site; Bob's record predates sites and counts.
        assert_eq!(users, ["CORP\\cid", "CORP\\bob"]);
    }

    fn record(id: &str, start: &str, reclaimed: &[&str], returns: &[&str]) -> LicenseCleanupRun {
        let mut run = LicenseCleanupRun::new(
            &record_name("site", id),
            LicenseCleanupRunSpec {
                policy: "site".into(),
                run_id: id.into(),
            },
        );
        let start = MicroTime(crate::testing::ts(start));
        run.status = Some(RunRecord {
            site: SITE.into(),
            conditions: Vec::new(),
            header: RunHeader {
                id: id.into(),
                result: RunResult::Succeeded,
                dry_run: false,
                start_time: start.clone(),
                completion_time: start,
                message: String::new(),
                totals: TypeCounts {
                    reclaimed: reclaimed.len() as u64,
                    ..Default::default()
                },
                per_access_type: Default::default(),
                seats: Default::default(),
                deletions: None,
            },
            decisions: reclaimed
                .iter()
                .map(|user| RecordedDecision {
                    user: user.to_string(),
                    access_type: "professional".into(),
                    allocation_id: "0f2c6d8e-1a2b-4c3d-9e8f-0123456789ab".into(),
                    user_qrs_id: None,
                    last_used: "never".into(),
                    action: RecordedAction::Reclaimed,
                    reason: String::new(),
                    rule: Rule::Idle,
                    error: None,
                    analyzer_added: false,
                    analyzer_allocation_id: None,
                })
                .collect(),
            decisions_omitted: 0,
            kept: Default::default(),
            returns: returns
                .iter()
                .map(|user| ReturnedSeat {
                    user: user.to_string(),
                    access_type: "professional".into(),
                    reclaimed_by: "older".into(),
                })
                .collect(),
            returned: returns.len() as u64,
            restore: None,
        });
        run
    }

    #[test]
    fn a_return_is_counted_once_and_a_second_reclaim_starts_afresh() {
        let runs = [
            record("r3", "2026-03-01T00:00:00Z", &["CORP\\ann"], &[]),
            record(
                "r2",
                "2026-02-01T00:00:00Z",
                &[],
                &["corp\\ANN", "CORP\\bob"],
            ),
            record(
                "r1",
                "2026-01-01T00:00:00Z",
                &["CORP\\ann", "CORP\\bob", "CORP\\cid"],
                &[],
            ),
        ];
        let runs: Vec<KeptRun> = runs.iter().map(KeptRun::of).collect();
        let earlier: Vec<(String, String)> = earlier_reclaims(&runs, SITE)
            .into_iter()
            .map(|e| (e.user.to_string(), e.run))
            .collect();
        // Ann returned (r2) and was reclaimed again (r3); Bob returned; Cid is still away.
        assert_eq!(
            earlier,
            [
                ("CORP\\ann".to_string(), "r3".to_string()),
                ("CORP\\cid".to_string(), "r1".to_string())
            ]
        );
    }

    #[test]
    fn restored_seats_are_not_returns() {
        let mut run = record(
            "r1",
            "2026-01-01T00:00:00Z",
            &["CORP\\ann", "CORP\\bob"],
            &[],
        );
        if let Some(status) = run.status.as_mut() {
            status.restore = Some(crate::record::RestoreStatus {
                answered: "1".into(),
                result: RunResult::Succeeded,
                dry_run: false,
                time: status.header.start_time.clone(),
                message: String::new(),
                restored: 1,
                skipped: 0,
                failed: 0,
                seats: vec![crate::record::RestoredSeat {
                    user: "CORP\\ann".into(),
                    access_type: "professional".into(),
                    outcome: RestoreOutcome::Restored,
                    reason: String::new(),
                }],
                seats_omitted: 0,
            });
        }
        let users: Vec<String> = earlier_reclaims(&[KeptRun::of(&run)], SITE)
            .into_iter()
            .map(|e| e.user.to_string())
            .collect();
        assert_eq!(users, ["CORP\\bob"]);
    }

    #[test]
    fn more_returns_than_a_fifth_of_the_reclaims_are_too_many() {
        let quiet = [
            record("r2", "2026-02-01T00:00:00Z", &[], &["CORP\\a"]),
            record(
                "r1",
                "2026-01-01T00:00:00Z",
                &["CORP\\a", "CORP\\b", "CORP\\c", "CORP\\d", "CORP\\e"],
                &[],
            ),
        ];
        let quiet: Vec<KeptRun> = quiet.iter().map(KeptRun::of).collect();
        assert_eq!(
            too_many_returns(&quiet),
            None,
            "1 of 5 is a fifth, not more"
        );
        let busy = [
            record("r2", "2026-02-01T00:00:00Z", &[], &["CORP\\a", "CORP\\b"]),
            record(
                "r1",
                "2026-01-01T00:00:00Z",
                &["CORP\\a", "CORP\\b", "CORP\\c", "CORP\\d", "CORP\\e"],
                &[],
            ),
        ];
        let busy: Vec<KeptRun> = busy.iter().map(KeptRun::of).collect();
        assert_eq!(too_many_returns(&busy), Some((2, 5)));
    }

    #[test]
    fn record_names_are_object_names() {
        assert_eq!(
            record_name("site", "20261201T090000Z-ab12cd"),
            "site-20261201t090000z-ab12cd"
        );
        let long = "p".repeat(300);
        assert_eq!(record_name(&long, "20261201T090000Z-ab12cd").len(), 253);
    }
}
