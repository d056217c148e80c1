//! Qlik's contract: every request the client sends names a path, method and query parameters that Qlik's own
//! Repository API definition has (docs/qrs-openapi/repository-subset.json), and every property a `filter` names
//! exists on the entity that endpoint lists. The requests are those the bundled simulator saw during runs that
//! use every read and write the client has: idle, leaver and redundant reads, user records, returns, the
//! selections that delete seats in bulk (the per-seat DELETE is in moves.rs), a restore's allocations, right-sizing's reads of what users own, and the same through a
//! Qlik Proxy session.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use qlik_license_reclaimer::model::UserIdentity;
use qlik_license_reclaimer::policy;
use qlik_license_reclaimer::qrs::QrsClient;
use qlik_license_reclaimer::record::RunRecord;
use qlik_license_reclaimer::run::{self, EarlierReclaim, RunContext};
use qrs_simulator::{Listener, RecordedRequest, Simulator};
use serde_json::Value;

use crate::support::{
    self, credentials, known_site, known_site_behind_proxy, policy, proxy_policy,
};

static DEFINITION: LazyLock<Value> = LazyLock::new(|| {
    let text = include_str!("../../docs/qrs-openapi/repository-subset.json");
    serde_json::from_str(text).expect("the vendored definition is JSON")
});

/// QRS's cross-site request token: a query parameter of every request, which the definition leaves out.
const GLOBAL_PARAMETERS: [&str; 1] = ["xrfkey"];

/// The operators of QRS's filter language that follow a property.
const OPERATORS: [&str; 9] = ["eq", "ne", "gt", "ge", "lt", "le", "sw", "ew", "so"];

/// The path as the definition writes it: without the `/qrs` base (and the hub's virtual proxy before it), ids as
/// `{id}`.
fn template(path: &str) -> Option<String> {
    let (_, rest) = path.split_once("/qrs/")?;
    let segments: Vec<&str> = rest
        .split('/')
        .map(|s| if is_guid(s) { "{id}" } else { s })
        .collect();
    Some(format!("/{}", segments.join("/")))
}

fn is_guid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

/// The entity an endpoint lists: the item type of `GET <collection>/full`, where the collection is the path
/// without its selection and its last step (`/full`, `/count`, `/table`, `/many`, `/{id}`).
fn entity_of(template: &str) -> Option<String> {
    let mut base = template
        .strip_prefix("/selection/{id}")
        .or_else(|| template.strip_prefix("/selection"))
        .unwrap_or(template)
        .to_string();
    for suffix in ["/full", "/count", "/table", "/many", "/{id}"] {
        if let Some(stripped) = base.strip_suffix(suffix) {
            base = stripped.to_string();
            break;
        }
    }
    let item = &DEFINITION["paths"][format!("{base}/full")]["get"]["responses"]["200"]["schema"]["items"]
        ["$ref"];
    item.as_str()?
        .strip_prefix("#/definitions/")
        .map(str::to_string)
}

/// The property paths a filter names (`user.removedExternally`, `lastUsed`, ...), quoted values left out.
fn filter_properties(filter: &str) -> Vec<String> {
    // Quoted values may hold anything, operators included: blank them first ('' is a quote inside a value).
    let mut unquoted = String::with_capacity(filter.len());
    let mut in_quote = false;
    for c in filter.chars() {
        if c == '\'' {
            in_quote = !in_quote;
            unquoted.push(' ');
        } else {
            unquoted.push(if in_quote { ' ' } else { c });
        }
    }
    let words: Vec<&str> = unquoted
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .filter(|w| !w.is_empty())
        .collect();
    words
        .windows(2)
        .filter(|pair| OPERATORS.contains(&pair[1]))
        .map(|pair| pair[0].to_string())
        .collect()
}

/// Whether `path` (`user.removedExternally`) names a property of `entity`, walking references; a condensed
/// reference stands for its full entity, as QRS's filters walk the entity model.
fn has_property(entity: &str, path: &str) -> Result<(), String> {
    let mut current = entity.to_string();
    let steps: Vec<&str> = path.split('.').collect();
    for (i, step) in steps.iter().enumerate() {
        let property = &DEFINITION["definitions"][&current]["properties"][*step];
        if property.is_null() {
            return Err(format!("{current} has no property {step:?} (in {path:?})"));
        }
        if i + 1 == steps.len() {
            return Ok(());
        }
        let reference = property["$ref"]
            .as_str()
            .or_else(|| property["items"]["$ref"].as_str())
            .ok_or_else(|| format!("{current}.{step} is not an entity (in {path:?})"))?;
        let name = reference.trim_start_matches("#/definitions/");
        current = name.strip_suffix("Condensed").unwrap_or(name).to_string();
    }
    Ok(())
}

/// Every way `request` departs from the definition.
fn departures(request: &RecordedRequest) -> Vec<String> {
    let what = format!("{} {}", request.method, request.path);
    let Some(template) = template(&request.path) else {
        return vec![format!("{what}: not a QRS path")];
    };
    let operation = &DEFINITION["paths"][&template][request.method.to_ascii_lowercase()];
    if operation.is_null() {
        return vec![format!(
            "{what}: the definition has no {} {template}",
            request.method
        )];
    }
    let defined: BTreeSet<&str> = operation["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["in"] == "query")
        .filter_map(|p| p["name"].as_str())
        .chain(GLOBAL_PARAMETERS)
        .collect();
    let mut found = Vec::new();
    for (name, value) in &request.query {
        if !defined.contains(name.as_str()) {
            found.push(format!(
                "{what}: {template} has no query parameter {name:?}"
            ));
        }
        if name == "filter" {
            let Some(entity) = entity_of(&template) else {
                found.push(format!("{what}: no entity lists behind {template}"));
                continue;
            };
            for property in filter_properties(value) {
                if let Err(e) = has_property(&entity, &property) {
                    found.push(format!("{what}: filter {value:?}: {e}"));
                }
            }
        }
    }
    found
}

/// The requests QRS saw, on the repository and on the hub (the proxy's own API is not QRS).
pub(crate) fn qrs_requests(simulator: &Simulator) -> Vec<RecordedRequest> {
    simulator
        .requests()
        .into_iter()
        .filter(|r| r.listener != Listener::Qps)
        .collect()
}

pub(crate) fn assert_conforms(
    requests: &[RecordedRequest],
    must_include: &[(&str, &str)],
    filtered_on: &[&str],
) {
    let departures: Vec<String> = requests.iter().flat_map(departures).collect();
    assert!(departures.is_empty(), "{}", departures.join("\n"));
    let properties: BTreeSet<String> = requests
        .iter()
        .filter_map(|r| r.query_param("filter"))
        .flat_map(filter_properties)
        .collect();
    for property in filtered_on {
        assert!(
            properties.contains(*property),
            "no filter named {property}, so it was not checked: {properties:?}"
        );
    }
    let seen: BTreeSet<(String, String)> = requests
        .iter()
        .filter_map(|r| Some((r.method.clone(), template(&r.path)?)))
        .collect();
    for (method, path) in must_include {
        assert!(
            seen.contains(&(method.to_string(), path.to_string())),
            "the runs sent no {method} {path}, so the test did not hold it to the definition: {seen:?}"
        );
    }
}

#[test]
fn the_checks_find_what_the_definition_lacks() {
    // A check that passes everything would prove nothing: each kind of departure is found.
    let request = |method: &str, path: &str, query: &[(&str, &str)]| RecordedRequest {
        method: method.into(),
        path: path.into(),
        query: query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        at: jiff::Timestamp::UNIX_EPOCH,
        listener: Listener::Repository,
        status: 200,
        user: None,
        fault: None,
    };
    let ok = request(
        "GET",
        "/qrs/license/professionalaccesstype/full",
        &[
            ("xrfkey", "0123456789abcdef"),
            (
                "filter",
                "user.removedExternally eq true and lastUsed le '2026-01-01T00:00:00.000Z'",
            ),
        ],
    );
    assert_eq!(departures(&ok), Vec::<String>::new());
    let bad = [
        request("PATCH", "/qrs/license/professionalaccesstype/full", &[]),
        request("GET", "/qrs/license/professionalaccesstype/everything", &[]),
        request(
            "GET",
            "/qrs/license/professionalaccesstype/full",
            &[("top", "5")],
        ),
        // UserCondensed has no removedExternally; the User entity a filter walks does. A property no entity has:
        request(
            "GET",
            "/qrs/license/professionalaccesstype/full",
            &[("filter", "user.removedExternaly eq true")],
        ),
        request(
            "GET",
            "/qrs/user/full",
            &[("filter", "lastSeen le 'x eq y'")],
        ),
    ];
    for request in &bad {
        assert!(
            !departures(request).is_empty(),
            "{} {} {:?} passed",
            request.method,
            request.path,
            request.query
        );
    }
    assert_eq!(
        filter_properties("name eq 'a eq b' or (id ne 'it''s')"),
        ["name", "id"]
    );
}

#[tokio::test]
async fn every_request_of_a_run_and_a_restore_is_in_qliks_definition() {
    support::install_crypto();
    let simulator = known_site().await;
    let creds = credentials(&simulator);
    let mut spec = policy(&simulator);
    spec.leavers = support::removed_or_blocked_leavers(10);
    spec.redundant.analyzer_with_professional = true;
    let first = support::run_policy(&simulator, &spec, &creds).await;
    assert!(first.totals.reclaimed > 0, "{}", first.message);

    // A second run that knows what the first took looks for returns; then the first run's seats go back.
    let earlier: Vec<EarlierReclaim> = first
        .reclaimed()
        .filter_map(|e| {
            Some(EarlierReclaim {
                user: UserIdentity::parse(&e.user)?,
                access_type: e.access_type,
                at: first.start_time,
                run: first.id.clone(),
            })
        })
        .collect();
    let valid = policy::validate(&spec, &Default::default()).expect("a valid policy");
    let context = RunContext {
        earlier_reclaims: earlier,
        ..support::run_context(&creds, simulator.now())
    };
    run::execute(&valid, context).await;
    let mut seats =
        qlik_license_reclaimer::restore::seats_of(&RunRecord::of(&first), &[]).expect("seats");
    // One seat as a record kept before users' ids were recorded gives it: its user is looked up by name.
    seats[0].user_qrs_id = None;
    let client = QrsClient::connect(&valid.connection, &creds, None)
        .await
        .expect("connects");
    qlik_license_reclaimer::restore::restore(&client, &seats, false, "test".into()).await;
    // Right-sizing's evidence: what the site's users own.
    let users: Vec<String> = simulator
        .site()
        .users()
        .iter()
        .map(|u| u.id.to_string())
        .collect();
    client.owned_by(&users).await.expect("owned read");
    client.close().await;

    assert_conforms(
        &qrs_requests(&simulator),
        &[
            ("GET", "/license/professionalaccesstype/count"),
            ("GET", "/license/professionalaccesstype/full"),
            ("POST", "/license/professionalaccesstype/table"),
            ("GET", "/user/full"),
            ("POST", "/selection/license/professionalaccesstype"),
            ("DELETE", "/selection/{id}/license/professionalaccesstype"),
            ("DELETE", "/selection/{id}"),
            ("POST", "/license/professionalaccesstype/many"),
            ("GET", "/license/accesstypeoverview"),
            ("GET", "/app/full"),
            ("GET", "/app/object/full"),
        ],
        &[
            "lastUsed",
            "createdDate",
            "id",
            "user.id",
            "user.removedExternally",
            "userDirectory",
            "userId",
            "owner.id",
            "objectType",
            "quarantined",
        ],
    );
}

#[tokio::test]
async fn every_request_through_a_proxy_session_is_in_qliks_definition() {
    support::install_crypto();
    let simulator = known_site_behind_proxy("ops").await;
    let report = support::run_policy(
        &simulator,
        &proxy_policy(&simulator, "ops"),
        &credentials(&simulator),
    )
    .await;
    assert!(report.totals.candidates > 0, "{}", report.message);
    assert_conforms(
        &qrs_requests(&simulator),
        &[("GET", "/license/professionalaccesstype/full")],
        &["lastUsed"],
    );
}
