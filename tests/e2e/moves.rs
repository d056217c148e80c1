//! Moves to Analyzer made (`spec.rightSize`, not a dry run) against the simulator: the Analyzer seat first, the
//! Professional seat after; no free Analyzer seat, a failed deallocation and a stop in between leave the user
//! Professional; the next run finishes a move; restore undoes one. Every request is held to Qlik's definition.

use jiff::SignedDuration;
use qlik_license_reclaimer::brake::{Brake, BrakeState};
use qlik_license_reclaimer::policy::{
    LicenseCleanupPolicySpec, ProfessionalToAnalyzerSpec, RightSizeSpec, RunResult, validate,
};
use qlik_license_reclaimer::qrs::QrsClient;
use qlik_license_reclaimer::record::{RecordedAction, RunRecord};
use qlik_license_reclaimer::restore::{self, seats_of};
use qlik_license_reclaimer::run::{Outcome, RunReport};
use qrs_simulator::{Fault, FaultRule, NewUser, SimAccessType, Simulator, SimulatorConfig};
use uuid::Uuid;

use crate::support::{self, credentials, fast_retries, run_braked, run_policy};

/// A site of Professional users in use (last used 2 days ago) and what they own: `consumer` owns nothing, `both`
/// holds an Analyzer seat too (unused for a year), `author` changed a sheet last week, `stories` only writes
/// stories, `ondemand` owns an app generated last month; `idle` has not used their seat for 200 days.
struct Site {
    simulator: Simulator,
    users: [(&'static str, Uuid); 6],
}

impl Site {
    async fn new() -> Site {
        support::install_crypto();
        let simulator = support::start_simulator(SimulatorConfig {
            users: 0,
            ..Default::default()
        })
        .await;
        let seat = |user: &'static str, used: i64| {
            let id = support::add_seat(
                &simulator,
                NewUser::new("CORP", user),
                SimAccessType::Professional,
                used,
            );
            (user, id)
        };
        let users = [
            seat("consumer", 2),
            seat("both", 2),
            seat("author", 2),
            seat("stories", 2),
            seat("ondemand", 2),
            seat("idle", 200),
        ];
        let id = |name: &str| users.iter().find(|(n, _)| *n == name).expect("user").1;
        support::allocate_used(&simulator, id("both"), SimAccessType::Analyzer, 365);
        let site = simulator.site();
        // Room for ten more seats of each type.
        let mut totals = site.seat_totals();
        totals.analyzer = site.allocations(SimAccessType::Analyzer).len() as u32 + 10;
        totals.professional = site.allocations(SimAccessType::Professional).len() as u32 + 10;
        site.set_seat_totals(totals);
        let days = |d: i64| simulator.now() - SignedDuration::from_hours(24 * d);
        let app = site
            .add_app(id("author"), "Sales", days(400), days(300))
            .expect("app");
        site.add_app_object(app, id("author"), ("sheet", "Live"), (days(400), days(7)))
            .expect("sheet");
        site.add_app_object(
            app,
            id("stories"),
            ("story", "Quarter"),
            (days(20), days(3)),
        )
        .expect("story");
        site.add_app(id("ondemand"), "On-demand sales", days(30), days(30))
            .expect("on-demand app");
        Site { simulator, users }
    }

    fn id(&self, name: &str) -> Uuid {
        self.users.iter().find(|(n, _)| *n == name).expect("user").1
    }

    /// The access types `name` holds now, outside quarantine.
    fn holds(&self, name: &str) -> Vec<SimAccessType> {
        let user = self
            .simulator
            .site()
            .find_user("CORP", name)
            .unwrap_or_else(|| panic!("no user CORP\\{name}"));
        [SimAccessType::Professional, SimAccessType::Analyzer]
            .into_iter()
            .filter(|&t| {
                self.simulator
                    .site()
                    .allocations(t)
                    .iter()
                    .any(|a| a.user == Some(user) && !a.quarantined)
            })
            .collect()
    }

    /// An enforcing policy that moves after 90 days, manages Analyzer seats too and takes redundant ones (so that
    /// a rule could take the Analyzer seat a move needs), with the breaker out of the way.
    fn policy(&self) -> LicenseCleanupPolicySpec {
        let mut spec = support::policy(&self.simulator);
        spec.exclude = Default::default();
        spec.limits.max_reclaim_percent = 100;
        spec.redundant.analyzer_with_professional = true;
        spec.right_size = Some(RightSizeSpec {
            professional_to_analyzer: Some(ProfessionalToAnalyzerSpec { after_days: 90 }),
        });
        spec
    }

    async fn run(&self, spec: &LicenseCleanupPolicySpec) -> RunReport {
        run_policy(&self.simulator, spec, &credentials(&self.simulator)).await
    }
}

fn about<'a>(report: &'a RunReport, user: &str) -> &'a qlik_license_reclaimer::run::Entry {
    support::decision_about(report, &format!("CORP\\{user}"))
        .unwrap_or_else(|| panic!("no decision about {user}"))
}

/// The method and path of each request that changed a seat, in order (selections' bookkeeping aside).
fn writes(simulator: &Simulator) -> Vec<(String, String)> {
    simulator
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" || r.method == "DELETE")
        .filter(|r| !r.path.ends_with("/table"))
        .filter(|r| {
            !r.path.contains("/qrs/selection/")
                || r.method == "DELETE" && r.path.contains("/license/")
        })
        .map(|r| (r.method, r.path))
        .collect()
}

#[tokio::test]
async fn consumers_move_to_analyzer_seat_first_and_authors_stay_professional() {
    let site = Site::new().await;
    let report = site.run(&site.policy()).await;
    assert_eq!(report.result, RunResult::Succeeded, "{}", report.message);

    let consumer = about(&report, "consumer");
    assert_eq!(consumer.outcome, Outcome::Moved, "{}", consumer.reason);
    assert!(consumer.analyzer_added);
    let added = consumer
        .analyzer_allocation_id
        .clone()
        .expect("QRS named the Analyzer seat it created");
    assert_eq!(site.holds("consumer"), [SimAccessType::Analyzer]);
    let both = about(&report, "both");
    assert_eq!(both.outcome, Outcome::Moved, "{}", both.reason);
    assert!(!both.analyzer_added, "she held an Analyzer seat already");
    assert!(both.reason.contains("already held an Analyzer seat"));
    assert_eq!(
        site.holds("both"),
        [SimAccessType::Analyzer],
        "her own Analyzer seat, unused for a year, was kept for her (move-target), not taken as idle or redundant"
    );
    assert_eq!(
        about(&report, "stories").outcome,
        Outcome::Moved,
        "stories are not authoring"
    );
    for author in ["author", "ondemand"] {
        assert_eq!(about(&report, author).reason_code, "authoring");
        assert_eq!(
            site.holds(author),
            [SimAccessType::Professional],
            "{author}"
        );
    }
    assert_eq!(about(&report, "idle").outcome, Outcome::Reclaimed);
    assert!(site.holds("idle").is_empty());
    // The known site's Professional users in use own nothing either: they move too.
    let moved = report
        .decisions
        .iter()
        .filter(|e| e.outcome == Outcome::Moved)
        .count();
    assert!(moved >= 3, "{moved}");
    assert_eq!(report.totals.moved, moved as u64);
    assert!(
        report
            .message
            .contains(&format!("moved {moved} Professional seats to Analyzer")),
        "{}",
        report.message
    );

    // For each user who had no Analyzer seat, the POST came before the Professional DELETE.
    let sent = writes(&site.simulator);
    let consumer_seat = site
        .simulator
        .site()
        .allocations(SimAccessType::Professional)
        .into_iter()
        .find(|a| a.user == Some(site.id("consumer")))
        .expect("the consumer's Professional seat is listed, in quarantine")
        .id;
    let post = sent
        .iter()
        .position(|(m, p)| m == "POST" && p.ends_with("/license/analyzeraccesstype/many"))
        .expect("the batch's Analyzer seats were allocated");
    let delete = sent
        .iter()
        .position(|(m, p)| m == "DELETE" && p.ends_with(&consumer_seat.to_string()))
        .expect("the consumer's Professional seat was deallocated");
    assert!(post < delete, "{sent:?}");

    // The record keeps what restore needs: the move, and the Analyzer seat it added.
    let record = RunRecord::of(&report);
    let moved = record
        .decisions
        .iter()
        .find(|d| d.user == "CORP\\consumer")
        .expect("on record");
    assert_eq!(moved.action, RecordedAction::Moved);
    assert!(moved.analyzer_added);
    assert_eq!(
        moved.analyzer_allocation_id.as_deref(),
        Some(added.as_str())
    );
}

#[tokio::test]
async fn restore_gives_professional_back_then_releases_only_the_analyzer_seat_the_move_added() {
    let site = Site::new().await;
    let spec = site.policy();
    let report = site.run(&spec).await;
    assert_eq!(about(&report, "consumer").outcome, Outcome::Moved);
    // The Professional seats of users who used them two days ago are in quarantine (LEF licences): a restore
    // would skip them. Seven days on, the quarantine is over.
    site.simulator
        .advance_clock(SignedDuration::from_hours(24 * 8));

    let record = RunRecord::of(&report);
    let only: Vec<String> = ["CORP\\consumer", "CORP\\both"].map(String::from).to_vec();
    let seats = seats_of(&record, &only).expect("seats of the moves");
    let valid = validate(&spec, &Default::default()).expect("valid");
    let client = QrsClient::connect(&valid.connection, &credentials(&site.simulator), None)
        .await
        .expect("connects");
    let status = restore::restore(&client, &seats, false, "test".into()).await;
    client.close().await;
    assert_eq!(status.restored, 2, "{status:?}");
    let consumer = status
        .seats
        .iter()
        .find(|s| s.user == "CORP\\consumer")
        .expect("consumer");
    assert!(
        consumer
            .reason
            .contains("released the Analyzer seat the move added"),
        "{}",
        consumer.reason
    );
    assert_eq!(site.holds("consumer"), [SimAccessType::Professional]);
    assert_eq!(
        site.holds("both"),
        [SimAccessType::Professional, SimAccessType::Analyzer],
        "the Analyzer seat she held before the move is hers"
    );

    // Every request of the moves and their restore is in Qlik's definition.
    crate::contract::assert_conforms(
        &crate::contract::qrs_requests(&site.simulator),
        &[
            ("POST", "/license/analyzeraccesstype/many"),
            ("GET", "/license/analyzeraccesstype/full"),
            ("DELETE", "/license/professionalaccesstype/{id}"),
            ("DELETE", "/license/analyzeraccesstype/{id}"),
            ("POST", "/license/professionalaccesstype/many"),
        ],
        &["user.id", "id", "owner.id"],
    );
}

#[tokio::test]
async fn without_a_free_analyzer_seat_nobody_moves_and_nothing_is_taken() {
    let site = Site::new().await;
    let mut totals = site.simulator.site().seat_totals();
    // Not one Analyzer seat free.
    totals.analyzer = site
        .simulator
        .site()
        .allocations(SimAccessType::Analyzer)
        .len() as u32;
    site.simulator.site().set_seat_totals(totals);
    let mut spec = site.policy();
    // One move at a time, so that the first refusal comes before any other request for a seat; and no Analyzer
    // seat reclaimed in the same run, which would free one.
    spec.site.concurrency = 1;
    spec.redundant.analyzer_with_professional = false;
    spec.access_types.analyzer = None;
    let report = site.run(&spec).await;
    for user in ["consumer", "stories"] {
        let e = about(&report, user);
        assert_eq!(e.outcome, Outcome::NoAnalyzerSeat, "{user}: {}", e.reason);
        assert!(
            e.reason.contains("no Analyzer seat is free"),
            "{}",
            e.reason
        );
        assert_eq!(site.holds(user), [SimAccessType::Professional], "{user}");
    }
    let posts = |ending: &str| {
        writes(&site.simulator)
            .iter()
            .filter(|(m, p)| m == "POST" && p.ends_with(ending))
            .count()
    };
    assert_eq!(
        posts("/analyzeraccesstype/many"),
        1,
        "the batch's seats together"
    );
    assert_eq!(
        posts("/qrs/license/analyzeraccesstype"),
        1,
        "then one alone; once QRS refused it, no other Analyzer seat is asked for"
    );
    assert_eq!(
        about(&report, "both").outcome,
        Outcome::Moved,
        "a user holding Analyzer needs no free seat"
    );
    crate::contract::assert_conforms(
        &crate::contract::qrs_requests(&site.simulator),
        &[
            ("POST", "/license/analyzeraccesstype/many"),
            ("POST", "/license/analyzeraccesstype"),
            ("GET", "/license/accesstypeoverview"),
        ],
        &["user.id"],
    );
    assert_eq!(report.totals.moved, 1);
}

#[tokio::test]
async fn a_failed_deallocation_after_the_analyzer_seat_leaves_both_and_the_next_run_finishes_the_move()
 {
    let site = Site::new().await;
    let spec = site.policy();
    let consumer_seat = site
        .simulator
        .site()
        .allocations(SimAccessType::Professional)
        .into_iter()
        .find(|a| a.user == Some(site.id("consumer")))
        .expect("seat")
        .id;
    site.simulator.inject(
        FaultRule::always(Fault::Status(500))
            .method("DELETE")
            .path_contains(consumer_seat.to_string()),
    );
    let first = site.run(&spec).await;
    let e = about(&first, "consumer");
    assert_eq!(e.outcome, Outcome::MoveUnfinished, "{}", e.reason);
    assert!(e.analyzer_added);
    assert!(
        e.reason.contains("the next run finishes the move"),
        "{}",
        e.reason
    );
    assert_eq!(first.result, RunResult::Failed, "{}", first.message);
    assert_eq!(
        site.holds("consumer"),
        [SimAccessType::Professional, SimAccessType::Analyzer],
        "never neither: the user holds both"
    );
    assert_eq!(
        RunRecord::of(&first)
            .decisions
            .iter()
            .find(|d| d.user == "CORP\\consumer")
            .map(|d| d.action),
        Some(RecordedAction::MoveUnfinished)
    );

    site.simulator.clear_faults();
    let second = site.run(&spec).await;
    let e = about(&second, "consumer");
    assert_eq!(e.outcome, Outcome::Moved, "{}", e.reason);
    assert!(
        !e.analyzer_added,
        "the Analyzer seat of the first run is used"
    );
    assert_eq!(site.holds("consumer"), [SimAccessType::Analyzer]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_between_the_analyzer_seat_and_the_deallocation_takes_nothing() {
    let site = Site::new().await;
    let mut spec = site.policy();
    spec.site.concurrency = 1;
    // Only moves that need an Analyzer seat: the idle seat and the user holding Analyzer are out of the way.
    spec.exclude.users = vec!["CORP\\idle".into(), "CORP\\both".into()];
    site.simulator.inject(
        FaultRule::always(Fault::Delay(std::time::Duration::from_millis(300)))
            .method("POST")
            .path_contains("analyzeraccesstype"),
    );
    let (lever, brake) = Brake::new(BrakeState::Released);
    // Stop as soon as the batch's Analyzer POST has reached QRS: it is then in flight for 300 ms, and succeeds.
    let watcher =
        async {
            while !site.simulator.arrivals().iter().any(|a| {
                a.method == "POST" && a.path.ends_with("/qrs/license/analyzeraccesstype/many")
            }) {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            lever.stop("switched to dry run");
        };
    let (report, ()) = tokio::join!(
        run_braked(&site.simulator, &spec, brake, fast_retries()),
        watcher
    );
    let unfinished: Vec<&str> = report
        .decisions
        .iter()
        .filter(|e| e.outcome == Outcome::MoveUnfinished)
        .map(|e| e.user.as_str())
        .collect();
    assert!(
        !unfinished.is_empty(),
        "{}: {:?}",
        report.message,
        report.decisions
    );
    // The idle seats went before the moves began; no seat of a move was taken.
    let movers: Vec<&str> = report
        .decisions
        .iter()
        .filter(|e| e.reason_code == "right-size")
        .map(|e| e.user.as_str())
        .collect();
    assert!(!movers.is_empty());
    for (user, _) in support::deleted(&site.simulator) {
        assert!(
            !movers.contains(&user.as_str()),
            "{user}'s Professional seat was taken after the stop"
        );
    }
    assert!(
        report.message.contains("switched to dry run"),
        "{}",
        report.message
    );
    for user in unfinished {
        let user = user.trim_start_matches("CORP\\");
        assert_eq!(
            site.holds(user),
            [SimAccessType::Professional, SimAccessType::Analyzer],
            "{user} holds both: the Analyzer seat came, the Professional seat stayed"
        );
    }
}

/// The same through the command line: `run --policy` moves and prints the record, and `restore --report` on that
/// record undoes a move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_moves_and_restores_from_its_report() {
    let site = Site::new().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = |name: &str| dir.path().join(name).display().to_string();
    site.simulator
        .write_credentials(&dir.path().join("creds"))
        .expect("credentials");
    let policy = qlik_license_reclaimer::policy::LicenseCleanupPolicy::new("movers", site.policy());
    std::fs::write(
        dir.path().join("policy.yaml"),
        serde_yaml::to_string(&policy).expect("yaml"),
    )
    .expect("policy");
    let files = ["--policy", "policy.yaml", "--credentials", "creds"].map(|a| {
        if a.starts_with("--") {
            a.to_string()
        } else {
            path(a)
        }
    });
    let mut args = vec!["run".to_string()];
    args.extend(files.iter().cloned());
    args.extend(["--output".into(), "json".into()]);
    // Moves need somewhere to remember whom they moved.
    let refused = support::reclaimer(args.clone()).await;
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("--state FILE"),
        "{}",
        refused.stderr
    );
    assert!(support::deleted(&site.simulator).is_empty());
    args.extend(["--state".into(), path("state.json")]);
    let run = support::reclaimer(args).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("state.json")).expect("the state is written"),
    )
    .expect("json");
    assert!(
        state["recentMoves"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["user"] == "CORP\\consumer")),
        "{state}"
    );
    let record: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    let consumer = record["decisions"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["user"] == "CORP\\consumer"))
        .expect("the consumer is on record");
    assert_eq!(consumer["action"], "Moved");
    assert_eq!(consumer["analyzerAdded"], true);
    assert_eq!(site.holds("consumer"), [SimAccessType::Analyzer]);
    std::fs::write(dir.path().join("report.json"), &run.stdout).expect("report");

    site.simulator
        .advance_clock(SignedDuration::from_hours(24 * 8));
    let mut args = vec![
        "restore".to_string(),
        "--report".into(),
        path("report.json"),
        "--user".into(),
        "CORP\\consumer".into(),
    ];
    args.extend(files.iter().cloned());
    let restored = support::reclaimer(args).await;
    assert_eq!(restored.code, 0, "{}\n{}", restored.stdout, restored.stderr);
    assert!(
        restored
            .stdout
            .contains("released the Analyzer seat the move added"),
        "{}",
        restored.stdout
    );
    assert_eq!(site.holds("consumer"), [SimAccessType::Professional]);
}

/// A user moved to Analyzer keeps their Analyzer seat in later runs until its threshold has passed since the move,
/// however long ago they last used that seat (they used Professional meanwhile): the policy remembers the move.
#[tokio::test]
async fn a_later_run_does_not_take_the_analyzer_seat_of_a_user_it_moved() {
    let site = Site::new().await;
    let spec = site.policy();
    let first = site.run(&spec).await;
    assert_eq!(about(&first, "both").outcome, Outcome::Moved);
    let remembered = first
        .recent_moves
        .clone()
        .expect("a run that moved remembers");
    assert!(
        remembered
            .iter()
            .any(|m| m.user.to_string() == "CORP\\both"),
        "{remembered:?}"
    );
    let analyzer_seat_of_both = |report: &RunReport| {
        report
            .decisions
            .iter()
            .find(|e| {
                e.user == "CORP\\both"
                    && e.access_type == qlik_license_reclaimer::model::AccessType::Analyzer
            })
            .map(|e| (e.outcome, e.reason_code))
    };

    // Without the memory, her Analyzer seat, unused for a year, looks idle.
    let mut dry = spec.clone();
    dry.dry_run = true;
    let forgetful = site.run(&dry).await;
    assert_eq!(
        analyzer_seat_of_both(&forgetful),
        Some((Outcome::WouldReclaim, "inactive"))
    );

    // With it, the next enforcing run keeps it.
    let valid = validate(&spec, &Default::default()).expect("valid");
    let creds = credentials(&site.simulator);
    let context = qlik_license_reclaimer::run::RunContext {
        recent_moves: remembered,
        ..support::run_context(&creds, site.simulator.now())
    };
    let second = qlik_license_reclaimer::run::execute(&valid, context).await;
    assert_eq!(
        analyzer_seat_of_both(&second),
        Some((Outcome::Kept, "moved-recently"))
    );
    assert_eq!(site.holds("both"), [SimAccessType::Analyzer]);
    assert!(
        second
            .recent_moves
            .as_ref()
            .is_some_and(|m| m.iter().any(|m| m.user.to_string() == "CORP\\both")),
        "the move is still remembered"
    );
}
