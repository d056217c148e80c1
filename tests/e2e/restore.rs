//! `restore --report` from a laptop against the simulator: dry run first, the seats given back, and the reasons a
//! seat is skipped or fails.

use qrs_simulator::{SeatTotals, SimAccessType, Simulator};
use serde_json::Value;

use crate::support::*;

/// A site whose enforcing run reclaimed alice (Professional) and carol (Analyzer), with room on the licence, and
/// the run's JSON report, policy and credentials in a folder.
struct Reclaimed {
    sim: Simulator,
    dir: tempfile::TempDir,
}

impl Reclaimed {
    async fn new() -> Self {
        let sim = known_site().await;
        sim.site().set_seat_totals(SeatTotals {
            professional: 50,
            analyzer: 50,
            tokens: 0,
        });
        let dir = tempfile::tempdir().expect("tempdir");
        sim.write_credentials(&dir.path().join("creds"))
            .expect("credentials");
        let policy =
            qlik_license_reclaimer::policy::LicenseCleanupPolicy::new("test", policy(&sim));
        std::fs::write(
            dir.path().join("policy.yaml"),
            serde_yaml::to_string(&policy).expect("yaml"),
        )
        .expect("policy");
        let this = Self { sim, dir };
        let run = reclaimer(vec![
            "run".into(),
            "--policy".into(),
            this.path("policy.yaml"),
            "--credentials".into(),
            this.path("creds"),
            "--output".into(),
            "json".into(),
        ])
        .await;
        assert_eq!(run.code, 0, "{}", run.stderr);
        std::fs::write(this.dir.path().join("report.json"), &run.stdout).expect("report");
        assert_eq!(deleted(&this.sim), expected_reclaims());
        this
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    async fn restore(&self, extra: &[&str]) -> (Exited, Value) {
        let mut args = vec![
            "restore".to_string(),
            "--report".into(),
            self.path("report.json"),
            "--policy".into(),
            self.path("policy.yaml"),
            "--credentials".into(),
            self.path("creds"),
            "--output".into(),
            "json".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let out = reclaimer(args).await;
        let json = serde_json::from_str(&out.stdout).unwrap_or(Value::Null);
        (out, json)
    }

    fn holds(&self, user: &str, access_type: SimAccessType) -> bool {
        self.sim
            .site()
            .allocations(access_type)
            .iter()
            .any(|a| a.user_id == user)
    }
}

fn outcomes(json: &Value) -> Vec<(String, String)> {
    json["seats"]
        .as_array()
        .map(|seats| {
            seats
                .iter()
                .map(|s| {
                    (
                        s["user"].as_str().unwrap_or_default().to_string(),
                        s["outcome"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn pair(user: &str, outcome: &str) -> (String, String) {
    (user.to_string(), outcome.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_shows_what_would_come_back_then_the_seats_come_back_once() {
    let site = Reclaimed::new().await;
    let (dry, json) = site.restore(&["--dry-run"]).await;
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert_eq!(
        outcomes(&json),
        [
            pair("CORP\\alice", "WouldRestore"),
            pair("CORP\\carol", "WouldRestore")
        ]
    );
    assert!(
        !site.holds("alice", SimAccessType::Professional),
        "a dry run allocated a seat"
    );

    let (done, json) = site.restore(&[]).await;
    assert_eq!(done.code, 0, "{}", done.stderr);
    assert_eq!(
        outcomes(&json),
        [
            pair("CORP\\alice", "Restored"),
            pair("CORP\\carol", "Restored")
        ]
    );
    assert_eq!(json["restored"], 2);
    assert!(site.holds("alice", SimAccessType::Professional));
    assert!(site.holds("carol", SimAccessType::Analyzer));

    // Again: both hold their seat, nothing is allocated twice.
    let (again, json) = site.restore(&[]).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(
        outcomes(&json),
        [
            pair("CORP\\alice", "Skipped"),
            pair("CORP\\carol", "Skipped")
        ]
    );
    assert!(
        json["seats"][0]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("holds a professional seat again")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_users_and_quarantined_seats_are_skipped_and_a_full_licence_fails_per_user() {
    let site = Reclaimed::new().await;
    // Carol left the site; alice's seat came back in quarantine (reinstated in the QMC is the way).
    let carol = site.sim.site().find_user("CORP", "carol").expect("carol");
    site.sim.site().delete_user(carol).expect("deleted");
    let alice = site.sim.site().find_user("CORP", "alice").expect("alice");
    let now = site.sim.site().now();
    site.sim
        .site()
        .allocate(SimAccessType::Professional, alice, Some(now), now, true)
        .expect("quarantined seat");
    let (out, json) = site.restore(&[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        outcomes(&json),
        [
            pair("CORP\\alice", "Skipped"),
            pair("CORP\\carol", "Skipped")
        ]
    );
    let reasons: Vec<&str> = json["seats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["reason"].as_str().unwrap_or_default())
        .collect();
    assert!(reasons[0].contains("quarantine"), "{reasons:?}");
    assert!(reasons[1].contains("no longer exists"), "{reasons:?}");

    // No free seat: alice's restore fails, clearly, and the exit code says so.
    let fresh = Reclaimed::new().await;
    fresh.sim.site().set_seat_totals(SeatTotals::default());
    let (out, json) = fresh.restore(&["--user", "corp\\ALICE"]).await;
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(outcomes(&json), [pair("CORP\\alice", "Failed")]);
    let reason = json["seats"][0]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("no available"), "{reason}");
    assert!(reason.contains("free a professional seat"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_restores_nothing() {
    let site = Reclaimed::new().await;
    // A user the run did not reclaim.
    let (out, _) = site.restore(&["--user", "CORP\\bob"]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("did not reclaim"), "{}", out.stderr);
    // The report names the site that lost the seats; a policy that now names another site gives nothing there.
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(site.path("report.json")).expect("report"))
            .expect("json");
    assert_eq!(report["site"], site.sim.repository_url().as_str());
    let other = known_site().await;
    let moved = qlik_license_reclaimer::policy::LicenseCleanupPolicy::new("test", policy(&other));
    std::fs::write(
        site.dir.path().join("policy.yaml"),
        serde_yaml::to_string(&moved).expect("yaml"),
    )
    .expect("policy");
    let (out, _) = site.restore(&[]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("but its policy now names"),
        "{}",
        out.stderr
    );
    assert!(
        other.requests().is_empty(),
        "nothing may reach the other site"
    );
    // A file that is not a report.
    std::fs::write(
        site.dir.path().join("report.json"),
        "{\"not\": \"a report\"}",
    )
    .expect("write");
    let (out, _) = site.restore(&[]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("is not a run's JSON report"),
        "{}",
        out.stderr
    );
    assert!(!site.holds("alice", SimAccessType::Professional));
}
