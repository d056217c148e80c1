//! Right-sizing's evidence read from the simulator: who owns which apps and authoring objects, batched by owner.

use jiff::SignedDuration;
use qlik_license_reclaimer::authoring::{self, Evidence, ObjectKind};
use qlik_license_reclaimer::policy;
use qlik_license_reclaimer::qrs::QrsClient;
use qrs_simulator::NewUser;

use crate::support::{self, credentials, policy};

#[tokio::test]
async fn owned_by_reads_apps_and_authoring_objects_fifty_owners_a_request() {
    support::install_crypto();
    let simulator = support::start_simulator(Default::default()).await;
    let site = simulator.site();
    let now = simulator.now();
    let days = |d: i64| now - SignedDuration::from_hours(24 * d);
    let user = |id: &str| site.add_user(NewUser::new("CORP", id)).expect("user");
    let (author, reader, story_teller, nobody) = (
        user("author"),
        user("reader"),
        user("stories"),
        user("nobody"),
    );
    let app = site
        .add_app(author, "Sales", days(400), days(10))
        .expect("app");
    site.add_app_object(app, author, ("sheet", "Q3 draft"), (days(300), days(5)))
        .expect("sheet");
    site.add_app_object(app, reader, ("sheet", "Old view"), (days(400), days(200)))
        .expect("sheet");
    site.add_app_object(app, story_teller, ("story", "Quarter"), (days(3), days(1)))
        .expect("story");
    site.add_app_object(app, story_teller, ("bookmark", "Mine"), (days(3), days(1)))
        .expect("bookmark");
    // 120 more users who own nothing: three batches in all.
    let mut ids: Vec<String> = [author, reader, story_teller, nobody]
        .iter()
        .map(ToString::to_string)
        .collect();
    ids.extend((0..120).map(|i| user(&format!("extra{i}")).to_string()));

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
        "one app read per 50 owners: {reads:?}"
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
