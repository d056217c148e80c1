//! Right-sizing against the simulator: who owns which apps and authoring objects, batched by owner, and the moves
//! a dry run reports.

use jiff::SignedDuration;
use qlik_license_reclaimer::authoring::{self, Evidence, ObjectKind};
use qlik_license_reclaimer::model::Rule;
use qlik_license_reclaimer::policy::{self, ProfessionalToAnalyzerSpec, RightSizeSpec, RunResult};
use qlik_license_reclaimer::qrs::QrsClient;
use qlik_license_reclaimer::record::{RecordedAction, RunRecord};
use qlik_license_reclaimer::run::Outcome;
use qrs_simulator::{NewUser, SimAccessType, Simulator, SimulatorConfig};
use uuid::Uuid;

use crate::support::{self, credentials, policy};

/// An app "Sales" of `(owner, created, modified)` (days ago) holding `(owner, objectType, name, created,
/// modified)` objects.
fn app_with(
    simulator: &Simulator,
    (owner, created, modified): (Uuid, i64, i64),
    objects: &[(Uuid, &str, &str, i64, i64)],
) {
    let site = simulator.site();
    let days = |d: i64| simulator.now() - SignedDuration::from_hours(24 * d);
    let app = site
        .add_app(owner, "Sales", days(created), days(modified))
        .expect("app");
    for &(owner, object_type, name, created, modified) in objects {
        site.add_app_object(
            app,
            owner,
            (object_type, name),
            (days(created), days(modified)),
        )
        .expect("object");
    }
}

#[tokio::test]
async fn owned_by_reads_apps_and_authoring_objects_as_many_owners_a_request_as_fit() {
    support::install_crypto();
    let simulator = support::start_simulator(Default::default()).await;
    let site = simulator.site();
    let now = simulator.now();
    let user = |id: &str| site.add_user(NewUser::new("CORP", id)).expect("user");
    let [author, reader, story_teller, nobody] =
        ["author", "reader", "stories", "nobody"].map(user);
    app_with(
        &simulator,
        (author, 400, 10),
        &[
            (author, "sheet", "Q3 draft", 300, 5),
            (reader, "sheet", "Old view", 400, 200),
            (story_teller, "story", "Quarter", 3, 1),
            (story_teller, "bookmark", "Mine", 3, 1),
        ],
    );
    // More users who own nothing: three batches in all, the last one short.
    let per_read = qlik_license_reclaimer::qrs::ids_per_read("owner.id");
    let mut ids: Vec<String> = [author, reader, story_teller, nobody]
        .iter()
        .map(ToString::to_string)
        .collect();
    ids.extend((0..2 * per_read).map(|i| user(&format!("extra{i}")).to_string()));

    let spec = policy(&simulator);
    let valid = policy::validate(&spec, &Default::default()).expect("valid");
    let client = QrsClient::connect(&valid.connection, &credentials(&simulator), None)
        .await
        .expect("connects");
    let before = simulator.requests().len();
    let owned = client.owned_by(&ids).await.expect("read");
    client.close().await;
    let reads: Vec<String> = simulator.requests()[before..]
        .iter()
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(
        reads
            .iter()
            .filter(|p| p.ends_with("/qrs/app/full"))
            .count(),
        3,
        "one app read per {per_read} owners: {reads:?}"
    );
    assert_eq!(
        reads
            .iter()
            .filter(|p| p.ends_with("/qrs/app/object/full"))
            .count(),
        3
    );

    assert_eq!(owned.len(), ids.len(), "every user asked about has a list");
    let of = |id: uuid::Uuid| &owned[&id.to_string()];
    let kinds: Vec<ObjectKind> = of(author).iter().map(|o| o.kind.clone()).collect();
    assert_eq!(kinds.len(), 2);
    assert!(
        kinds.contains(&ObjectKind::App) && kinds.contains(&ObjectKind::Sheet),
        "{kinds:?}"
    );
    assert!(
        of(story_teller).is_empty(),
        "stories and bookmarks are not read: {:?}",
        of(story_teller)
    );
    assert!(of(nobody).is_empty());

    // As the rules read them, with a 90-day window.
    let judge = |id| authoring::judge(of(id), now, 90);
    assert!(matches!(judge(author), Evidence::Author(_)));
    let Evidence::Consumer { last: Some(last) } = judge(reader) else {
        panic!(
            "the reader authored nothing in 90 days: {:?}",
            judge(reader)
        );
    };
    assert_eq!(
        (last.kind, last.name.as_str()),
        (ObjectKind::Sheet, "Old view")
    );
    assert_eq!(judge(story_teller), Evidence::Consumer { last: None });
    assert_eq!(judge(nobody), Evidence::Consumer { last: None });
}

/// The known site plus a consumer (stories only), an author (a sheet changed last week), a user whose object type
/// the rules do not know, and an idle user, under a dry-run policy that right-sizes after 90 days.
#[tokio::test]
async fn a_dry_run_reports_the_moves_right_sizing_would_make_and_deletes_nothing() {
    support::install_crypto();
    let simulator = support::start_simulator(SimulatorConfig {
        users: 0,
        ..Default::default()
    })
    .await;
    let seat = |user: &str, used: i64| {
        support::add_seat(
            &simulator,
            NewUser::new("CORP", user),
            SimAccessType::Professional,
            used,
        )
    };
    // Professional users and how many days ago they last used their seat.
    let [consumer, author, odd, _idle] =
        [("consumer", 2), ("author", 2), ("odd", 2), ("idle", 200)]
            .map(|(user, used)| seat(user, used));
    app_with(
        &simulator,
        (author, 400, 300),
        &[
            (consumer, "story", "Quarter", 3, 1),
            (author, "sheet", "Live", 400, 7),
            (odd, "widget", "Thing", 400, 400),
        ],
    );

    let mut spec = support::dry_run_policy(&simulator);
    spec.exclude = Default::default();
    // Two of four Professional seats are candidates (a move and an idle seat): the breaker is not what is tested.
    spec.limits.max_reclaim_percent = 100;
    spec.right_size = Some(RightSizeSpec {
        professional_to_analyzer: Some(ProfessionalToAnalyzerSpec { after_days: 90 }),
    });
    let report = support::run_policy(&simulator, &spec, &credentials(&simulator)).await;
    assert_eq!(report.result, RunResult::Succeeded, "{}", report.message);
    let about =
        |user: &str| support::decision_about(&report, user).unwrap_or_else(|| panic!("no {user}"));
    let moved = about("CORP\\consumer");
    assert_eq!(moved.outcome, Outcome::WouldMove);
    assert_eq!(moved.reason_code, "right-size");
    assert!(
        moved.reason.contains("owns no app, sheet or master item"),
        "{}",
        moved.reason
    );
    assert_eq!(about("CORP\\author").reason_code, "authoring");
    assert_eq!(about("CORP\\author").outcome, Outcome::Kept);
    assert_eq!(about("CORP\\odd").reason_code, "unknown-data");
    assert_eq!(
        about("CORP\\idle").outcome,
        Outcome::WouldReclaim,
        "an idle seat is the idle rule's"
    );
    // The known site's Professional users in use own nothing either: they would move too, and are counted.
    let moves: Vec<&str> = report
        .decisions
        .iter()
        .filter(|e| e.outcome == Outcome::WouldMove)
        .map(|e| e.user.as_str())
        .collect();
    assert!(moves.contains(&"CORP\\consumer"), "{moves:?}");
    assert_eq!(report.totals.moved, moves.len() as u64);
    assert!(
        report.reclaimed().all(|e| e.reason_code != "right-size"),
        "a move is not counted as a reclaim"
    );
    assert!(
        support::deleted(&simulator).is_empty(),
        "a dry run deletes nothing"
    );

    // The record lists the move as such.
    let record = RunRecord::of(&report);
    let listed = record
        .decisions
        .iter()
        .find(|d| d.user == "CORP\\consumer")
        .expect("the move is on record");
    assert_eq!(listed.action, RecordedAction::WouldMove);
    assert_eq!(listed.rule, Rule::RightSize);
    assert_eq!(record.reclaimed().count(), 0);
}
