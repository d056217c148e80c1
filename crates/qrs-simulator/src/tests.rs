//! Tests against a running simulator over real TLS, with the same HTTP client stack the QRS client uses.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use reqwest::{Certificate, Client, Identity as TlsIdentity, StatusCode};
use serde_json::Value;

use super::*;

const KEY: &str = "AbCdEfGh12345678";
const HOST: &str = "qlikserver1";

fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A client that trusts the simulator's root, reaches `qlikserver1` at 127.0.0.1 and presents `identity`.
fn client_with(sim: &Simulator, identity: Option<&str>, http1: bool) -> Client {
    install_provider();
    let root =
        Certificate::from_pem(sim.pki().root_pem.as_bytes()).expect("root certificate parses");
    let mut builder = Client::builder()
        .tls_backend_rustls()
        .tls_certs_only([root])
        .resolve(HOST, SocketAddr::from(([127, 0, 0, 1], 0)))
        .timeout(Duration::from_secs(10));
    if let Some(pem) = identity {
        builder = builder.identity(TlsIdentity::from_pem(pem.as_bytes()).expect("identity parses"));
    }
    if http1 {
        builder = builder.http1_only();
    }
    builder.build().expect("client builds")
}

fn client(sim: &Simulator) -> Client {
    client_with(sim, Some(&sim.pki().client_identity_pem()), false)
}

/// `https://qlikserver1:<port><path>` for a listener URL like `https://127.0.0.1:<port>`.
fn at(base: &str, path: &str) -> String {
    format!("{}{path}", base.replace("127.0.0.1", HOST))
}

fn qrs(sim: &Simulator, path: &str) -> String {
    at(&sim.repository_url(), path)
}

async fn start(config: SimulatorConfig) -> Simulator {
    Simulator::start(config).await.expect("simulator starts")
}

async fn empty_site() -> Simulator {
    start(SimulatorConfig {
        client_key_format: KeyFormat::Sec1Ecdsa,
        ..SimulatorConfig::default()
    })
    .await
}

async fn get(client: &Client, url: &str, query: &[(&str, &str)]) -> (StatusCode, String) {
    let response = client
        .get(url)
        .query(&[("xrfkey", KEY)])
        .query(query)
        .header("X-Qlik-Xrfkey", KEY)
        .send()
        .await
        .expect("request completes");
    let status = response.status();
    (status, response.text().await.expect("body reads"))
}

async fn get_json(client: &Client, url: &str, query: &[(&str, &str)]) -> Value {
    let (status, body) = get(client, url, query).await;
    assert_eq!(status, StatusCode::OK, "{url}: {body}");
    serde_json::from_str(&body).expect("valid JSON")
}

async fn delete(client: &Client, url: &str) -> StatusCode {
    client
        .delete(url)
        .query(&[("xrfkey", KEY)])
        .header("X-Qlik-Xrfkey", KEY)
        .send()
        .await
        .expect("request completes")
        .status()
}

fn days_ago(sim: &Simulator, days: i64) -> Timestamp {
    sim.now() - SignedDuration::from_hours(24 * days)
}

#[tokio::test]
async fn xrfkey_must_be_in_query_and_header_equal_and_well_formed() {
    let sim = empty_site().await;
    let c = client(&sim);
    let url = qrs(&sim, "/qrs/about");
    let forbidden = "XSRF prevention check failed. Possible XSRF discovered.";

    let cases: [(Option<&str>, Option<&str>); 6] = [
        (None, None),
        (Some(KEY), None),
        (None, Some(KEY)),
        (Some(KEY), Some("AbCdEfGh12345679")),
        (Some("AbCdEfGh-2345678"), Some("AbCdEfGh-2345678")),
        (Some("short"), Some("short")),
    ];
    for (query, header) in cases {
        let mut req = c.get(&url);
        if let Some(q) = query {
            req = req.query(&[("xrfkey", q)]);
        }
        if let Some(h) = header {
            req = req.header("X-Qlik-Xrfkey", h);
        }
        let response = req.send().await.expect("request completes");
        assert_eq!(
            response.status(),
            StatusCode::FORBIDDEN,
            "{query:?} / {header:?}"
        );
        assert!(
            response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("text/plain"))
        );
        assert_eq!(response.text().await.expect("body"), forbidden);
    }

    // The parameter name is case-insensitive.
    let response = c
        .get(&url)
        .query(&[("Xrfkey", KEY)])
        .header("x-qlik-xrfkey", KEY)
        .send()
        .await
        .expect("request completes");
    assert_eq!(response.status(), StatusCode::OK);
    let about: Value = response.json().await.expect("json");
    assert_eq!(about["schemaPath"], "About");

    let statuses: Vec<u16> = sim.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [403, 403, 403, 403, 403, 403, 200]);
    assert_eq!(sim.requests()[6].query_param("XRFKEY"), Some(KEY));
}

#[tokio::test]
async fn handshake_needs_a_client_certificate_from_the_simulators_root() {
    let sim = empty_site().await;
    let url = qrs(&sim, "/qrs/about");

    let anonymous = client_with(&sim, None, false);
    assert!(
        get_result(&anonymous, &url).await.is_err(),
        "no client certificate"
    );

    let wrong = client_with(&sim, Some(&sim.pki().wrong_client_identity_pem()), false);
    assert!(
        get_result(&wrong, &url).await.is_err(),
        "client certificate from another CA"
    );

    assert!(
        sim.requests().is_empty(),
        "refused handshakes never reach the application"
    );
    let ok = client(&sim);
    assert_eq!(get(&ok, &url, &[]).await.0, StatusCode::OK);
}

async fn get_result(client: &Client, url: &str) -> Result<StatusCode, reqwest::Error> {
    client
        .get(url)
        .query(&[("xrfkey", KEY)])
        .header("X-Qlik-Xrfkey", KEY)
        .send()
        .await
        .map(|r| r.status())
}

#[tokio::test]
async fn every_client_key_format_works_for_a_handshake_over_http1_and_http2() {
    for format in [KeyFormat::Pkcs1Rsa, KeyFormat::Pkcs8, KeyFormat::Sec1Ecdsa] {
        let sim = start(SimulatorConfig {
            client_key_format: format,
            ..SimulatorConfig::default()
        })
        .await;
        let identity = sim.pki().client_identity_pem();
        for http1 in [false, true] {
            let c = client_with(&sim, Some(&identity), http1);
            let response = c
                .get(qrs(&sim, "/qrs/about"))
                .query(&[("xrfkey", KEY)])
                .header("X-Qlik-Xrfkey", KEY)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{format:?} http1={http1}: {e:?}"));
            assert_eq!(response.status(), StatusCode::OK);
            let want = if http1 {
                reqwest::Version::HTTP_11
            } else {
                reqwest::Version::HTTP_2
            };
            assert_eq!(response.version(), want);
        }
    }
}

#[tokio::test]
async fn server_certificate_names_the_short_host_only_unless_told_otherwise() {
    let sim = empty_site().await;
    let c = client(&sim);
    // By IP, hostname verification fails: the certificate names qlikserver1 only.
    let by_ip = format!("{}/qrs/about", sim.repository_url());
    assert!(get_result(&c, &by_ip).await.is_err());

    let sim = start(SimulatorConfig {
        client_key_format: KeyFormat::Sec1Ecdsa,
        extra_sans: vec!["127.0.0.1".into(), "localhost".into()],
        ..SimulatorConfig::default()
    })
    .await;
    let c = client(&sim);
    let by_ip = format!("{}/qrs/about", sim.repository_url());
    assert_eq!(get_result(&c, &by_ip).await.ok(), Some(StatusCode::OK));
}

#[tokio::test]
async fn credentials_written_like_a_qmc_export_are_usable() {
    let sim = start(SimulatorConfig::default()).await;
    let dir = tempfile::tempdir().expect("temp dir");
    sim.write_credentials(dir.path()).expect("written");
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).expect("file exists");
    let key = read("client_key.pem");
    assert!(key.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    let identity = format!("{}{}", read("client.pem"), key);
    assert_eq!(read("root.pem"), sim.pki().root_pem);
    let c = client_with(&sim, Some(&identity), false);
    assert_eq!(
        get(&c, &qrs(&sim, "/qrs/about"), &[]).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn x_qlik_user_sets_the_identity() {
    let sim = empty_site().await;
    let c = client(&sim);
    let url = qrs(&sim, "/qrs/about");
    let send = |header: Option<&'static str>| {
        let mut req = c
            .get(&url)
            .query(&[("xrfkey", KEY)])
            .header("X-Qlik-Xrfkey", KEY);
        if let Some(h) = header {
            req = req.header("X-Qlik-User", h);
        }
        req.send()
    };
    assert_eq!(send(None).await.expect("sent").status(), StatusCode::OK);
    assert_eq!(
        send(Some("UserDirectory=CORP;UserId=sa_api"))
            .await
            .expect("sent")
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        send(Some("userdirectory=CORP%20EU; userid=j%C3%B8rn"))
            .await
            .expect("sent")
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        send(Some("CORP\\sa_api")).await.expect("sent").status(),
        StatusCode::BAD_REQUEST
    );

    let users: Vec<Option<Identity>> = sim.requests().into_iter().map(|r| r.user).collect();
    assert_eq!(
        users,
        [
            Some(Identity::new("INTERNAL", "sa_repository")),
            Some(Identity::new("CORP", "sa_api")),
            Some(Identity::new("CORP EU", "jørn")),
            None,
        ]
    );
}

#[tokio::test]
async fn delete_quarantines_recent_use_removes_the_rest_and_404s_unknown_ids() {
    let sim = empty_site().await;
    let site = sim.site();
    let user = |id: &str| site.add_user(NewUser::new("CORP", id)).expect("user added");
    let (a, b, c_, d) = (user("recent"), user("old"), user("never"), user("already"));
    let created = days_ago(&sim, 300);
    let recent = site
        .allocate(
            SimAccessType::Professional,
            a,
            Some(days_ago(&sim, 2)),
            created,
            false,
        )
        .expect("allocated");
    let old = site
        .allocate(
            SimAccessType::Professional,
            b,
            Some(days_ago(&sim, 40)),
            created,
            false,
        )
        .expect("allocated");
    let never = site
        .allocate(SimAccessType::Analyzer, c_, None, created, false)
        .expect("allocated");
    let already = site
        .allocate(
            SimAccessType::User,
            d,
            Some(days_ago(&sim, 1)),
            created,
            true,
        )
        .expect("allocated");

    let c = client(&sim);
    let url = |kind: &str, id: uuid::Uuid| qrs(&sim, &format!("/qrs/license/{kind}/{id}"));
    assert_eq!(
        delete(&c, &url("professionalaccesstype", recent)).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        delete(&c, &url("professionalaccesstype", old)).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        delete(&c, &url("analyzeraccesstype", never)).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        delete(&c, &url("useraccesstype", already)).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        delete(&c, &url("professionalaccesstype", recent)).await,
        StatusCode::NO_CONTENT
    );
    // Gone, unknown, or the right id under the wrong type: 404.
    assert_eq!(
        delete(&c, &url("professionalaccesstype", old)).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        delete(&c, &url("analyzeraccesstype", recent)).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        delete(&c, &url("professionalaccesstype", uuid::Uuid::new_v4())).await,
        StatusCode::NOT_FOUND
    );

    let outcomes: Vec<(uuid::Uuid, DeletionOutcome, String)> = sim
        .deletions()
        .into_iter()
        .map(|d| (d.allocation_id, d.outcome, d.user_id))
        .collect();
    assert_eq!(
        outcomes,
        [
            (recent, DeletionOutcome::Quarantined, "recent".to_string()),
            (old, DeletionOutcome::Removed, "old".to_string()),
            (never, DeletionOutcome::Removed, "never".to_string()),
            (
                already,
                DeletionOutcome::AlreadyQuarantined,
                "already".to_string()
            ),
            (
                recent,
                DeletionOutcome::AlreadyQuarantined,
                "recent".to_string()
            ),
        ]
    );

    let remaining = site.allocations(SimAccessType::Professional);
    assert_eq!(remaining.len(), 1);
    assert!(remaining[0].quarantined);
    let row = get_json(&c, &url("professionalaccesstype", recent), &[]).await;
    assert_eq!(row["quarantined"], true);
    let end: Timestamp = row["quarantineEnd"]
        .as_str()
        .expect("string")
        .parse()
        .expect("date");
    let last: Timestamp = row["lastUsed"]
        .as_str()
        .expect("string")
        .parse()
        .expect("date");
    assert_eq!(end, last + SignedDuration::from_hours(7 * 24));
    assert!(site.allocations(SimAccessType::Analyzer).is_empty());

    // The quarantine runs out five days later and the row vanishes.
    sim.advance_clock(SignedDuration::from_hours(24 * 5) + SignedDuration::from_mins(1));
    assert!(site.allocations(SimAccessType::Professional).is_empty());
    assert_eq!(
        get(&c, &url("professionalaccesstype", recent), &[]).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn login_access_delete_removes_the_whole_group() {
    let sim = empty_site().await;
    let site = sim.site();
    let u = site.add_user(NewUser::new("CORP", "x")).expect("user");
    let group = site.add_login_group("Occasional", 2);
    site.add_login_usage(group, u, days_ago(&sim, 1), days_ago(&sim, 1))
        .expect("usage");
    let c = client(&sim);
    let groups = get_json(&c, &qrs(&sim, "/qrs/license/loginaccesstype/full"), &[]).await;
    assert_eq!(groups[0]["assignedTokens"], 2);
    assert_eq!(groups[0]["usedAccessTypes"], 1);
    assert_eq!(groups[0]["remainingAccessTypes"], 19);
    let usage = get_json(&c, &qrs(&sim, "/qrs/license/loginaccessusage/full"), &[]).await;
    assert_eq!(usage[0]["user"]["userId"], "x");
    assert_eq!(
        delete(
            &c,
            &qrs(&sim, &format!("/qrs/license/loginaccesstype/{group}"))
        )
        .await,
        StatusCode::NO_CONTENT
    );
    assert!(site.login_groups().is_empty());
    assert_eq!(sim.deletions()[0].access_type, SimAccessType::Login);
}

#[tokio::test]
async fn entities_have_qrs_fields_sentinels_and_privileges() {
    let sim = empty_site().await;
    let site = sim.site();
    let u = site
        .add_user(
            NewUser::new("CORP", "jdoe")
                .name("Jane Doe")
                .tag("VIP")
                .custom_property("LicenseCleanup", "Exempt")
                .role("RootAdmin"),
        )
        .expect("user");
    let created: Timestamp = "2024-01-31T19:44:28.951Z".parse().expect("date");
    let never = site
        .allocate(SimAccessType::Analyzer, u, None, created, false)
        .expect("allocated");
    let c = client(&sim);

    let row = get_json(
        &c,
        &qrs(&sim, &format!("/qrs/license/analyzeraccesstype/{never}")),
        &[],
    )
    .await;
    assert_eq!(row["lastUsed"], "1753-01-01T00:00:00.000Z");
    assert_eq!(row["quarantineEnd"], "1753-01-01T00:00:00.000Z");
    assert_eq!(row["createdDate"], "2024-01-31T19:44:28.951Z");
    assert_eq!(row["schemaPath"], "License.AnalyzerAccessType");
    assert_eq!(row["privileges"], Value::Null);
    assert_eq!(row["excess"], false);
    assert_eq!(row["deletedUserId"], Value::Null);
    assert_eq!(row["user"]["userDirectory"], "CORP");
    assert_eq!(
        row["user"]["userDirectoryConnectorName"],
        "ActiveDirectory - CORP"
    );
    assert_eq!(row["user"]["name"], "Jane Doe");

    let with_privileges = get_json(
        &c,
        &qrs(&sim, &format!("/qrs/license/analyzeraccesstype/{never}")),
        &[("privileges", "true")],
    )
    .await;
    assert!(with_privileges["privileges"].is_array());

    let condensed = get_json(&c, &qrs(&sim, "/qrs/license/analyzeraccesstype"), &[]).await;
    assert_eq!(
        condensed,
        serde_json::json!([{ "id": never.to_string(), "privileges": null }])
    );

    let user = get_json(&c, &qrs(&sim, &format!("/qrs/user/{u}")), &[]).await;
    for field in [
        "id",
        "userId",
        "userDirectory",
        "userDirectoryConnectorName",
        "name",
        "roles",
        "tags",
        "customProperties",
        "attributes",
        "inactive",
        "removedExternally",
        "blacklisted",
        "deleteProhibited",
        "createdDate",
        "modifiedDate",
        "schemaPath",
    ] {
        assert!(user.get(field).is_some(), "user.{field}");
    }
    assert_eq!(user["tags"][0]["name"], "VIP");
    assert_eq!(
        user["customProperties"][0]["definition"]["name"],
        "LicenseCleanup"
    );
    assert_eq!(user["customProperties"][0]["value"], "Exempt");
    assert_eq!(user["roles"][0], "RootAdmin");

    // A lastUsed that is not a date is sent as stored.
    site.set_raw_last_used(never, "not-a-date").expect("set");
    let row = get_json(
        &c,
        &qrs(&sim, &format!("/qrs/license/analyzeraccesstype/{never}")),
        &[],
    )
    .await;
    assert_eq!(row["lastUsed"], "not-a-date");

    // User passes have no `excess`.
    let pass = site
        .allocate(
            SimAccessType::User,
            u,
            Some(days_ago(&sim, 3)),
            created,
            false,
        )
        .expect("allocated");
    let row = get_json(
        &c,
        &qrs(&sim, &format!("/qrs/license/useraccesstype/{pass}")),
        &[],
    )
    .await;
    assert!(row.get("excess").is_none());

    assert_eq!(
        get(&c, &qrs(&sim, "/qrs/nothing/here"), &[]).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(
            &c,
            &qrs(&sim, "/qrs/license/analyzeraccesstype/not-a-guid"),
            &[]
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn count_filtered_full_orderby_and_bad_filters() {
    let sim = start(SimulatorConfig {
        users: 400,
        seed: 11,
        client_key_format: KeyFormat::Sec1Ecdsa,
        ..SimulatorConfig::default()
    })
    .await;
    let c = client(&sim);
    let base = qrs(&sim, "/qrs/license/professionalaccesstype");
    let site = sim.site();
    let all = site.allocations(SimAccessType::Professional);

    let total = get_json(&c, &format!("{base}/count"), &[]).await;
    assert_eq!(total["value"].as_u64(), Some(all.len() as u64));

    let cutoff = days_ago(&sim, 30);
    let cutoff_text = format!("lastUsed le '{}'", crate::time::format_ts(cutoff));
    let want = all
        .iter()
        .filter(|a| {
            a.last_used_text.starts_with("1753") || a.last_used.is_some_and(|t| t <= cutoff)
        })
        .count();
    let count = get_json(&c, &format!("{base}/count"), &[("filter", &cutoff_text)]).await;
    assert_eq!(count["value"].as_u64(), Some(want as u64));
    let full = get_json(&c, &format!("{base}/full"), &[("filter", &cutoff_text)]).await;
    assert_eq!(full.as_array().map(Vec::len), Some(want));

    let external = get_json(
        &c,
        &format!("{base}/full"),
        &[
            (
                "filter",
                "user.userDirectory eq 'external' and quarantined eq false",
            ),
            ("orderby", "lastUsed desc"),
        ],
    )
    .await;
    let rows = external.as_array().expect("array");
    assert!(!rows.is_empty());
    assert!(
        rows.iter()
            .all(|r| r["user"]["userDirectory"] == "EXTERNAL")
    );
    let dates: Vec<&str> = rows.iter().filter_map(|r| r["lastUsed"].as_str()).collect();
    let mut sorted = dates.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(dates, sorted);

    for bad in [
        "lastUsed le '2024-01-01",
        "user.userId gt 'abc'",
        "nosuchfield eq 1",
    ] {
        let (status, body) = get(&c, &format!("{base}/full"), &[("filter", bad)]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(body.starts_with("Cannot parse the expression: "), "{body}");
    }

    // Users carrying exclusion markers are found through nested paths.
    let vip = get_json(
        &c,
        &qrs(&sim, "/qrs/user/full"),
        &[("filter", "tags.name eq 'VIP'")],
    )
    .await;
    let want_vip = site
        .users()
        .iter()
        .filter(|u| u.tags.iter().any(|t| t == "VIP"))
        .count();
    assert_eq!(vip.as_array().map(Vec::len), Some(want_vip));
    let exempt = get_json(
        &c,
        &qrs(&sim, "/qrs/user/count"),
        &[(
            "filter",
            "customProperties.definition.name eq 'LicenseCleanup' and customProperties.value eq 'Exempt'",
        )],
    )
    .await;
    let want_exempt = site
        .users()
        .iter()
        .filter(|u| {
            u.custom_properties
                .iter()
                .any(|(n, v)| n == "LicenseCleanup" && v == "Exempt")
        })
        .count();
    assert_eq!(exempt["value"].as_u64(), Some(want_exempt as u64));
}

#[tokio::test]
async fn users_are_looked_up_in_batches_of_ids() {
    let sim = start(SimulatorConfig {
        users: 3000,
        seed: 5,
        client_key_format: KeyFormat::Sec1Ecdsa,
        ..SimulatorConfig::default()
    })
    .await;
    let c = client(&sim);
    let users = sim.site().users();
    let wanted: Vec<String> = users
        .iter()
        .step_by(50)
        .take(60)
        .map(|u| u.id.to_string())
        .collect();
    let filter = wanted
        .iter()
        .map(|id| format!("id eq {id}"))
        .collect::<Vec<_>>()
        .join(" or ");
    let started = Instant::now();
    let found = get_json(&c, &qrs(&sim, "/qrs/user/full"), &[("filter", &filter)]).await;
    let elapsed = started.elapsed();
    let mut ids: Vec<String> = found
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|u| u["id"].as_str().map(str::to_string))
        .collect();
    ids.sort();
    let mut want = wanted.clone();
    want.sort();
    assert_eq!(ids, want);
    // Generous bound: a regression to per-row parsing or JSON rendering of every user would show up here.
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
}

/// A request line over `max_request_line` (8 KB by default, a proxy's usual limit) is refused with 414 before QRS
/// looks at it, and recorded; one at the limit is answered.
#[tokio::test]
async fn a_request_line_over_the_limit_gets_414() {
    let sim = empty_site().await;
    let c = client(&sim);
    let url = qrs(&sim, "/qrs/user/full");
    // "GET /qrs/user/full?xrfkey=...&filter=name+eq+'xx...x' HTTP/1.1": each x is one byte of the line.
    let filter = |n: usize| format!("name eq '{}'", "x".repeat(n));
    let line = |n: usize| {
        let request = c
            .get(&url)
            .query(&[("xrfkey", KEY), ("filter", &filter(n))])
            .build()
            .expect("a request");
        let target = request.url().path().len() + request.url().query().map_or(0, |q| 1 + q.len());
        "GET ".len() + target + " HTTP/1.1".len()
    };
    let fits = crate::MAX_REQUEST_LINE - line(0);
    assert_eq!(line(fits), crate::MAX_REQUEST_LINE);
    let (status, body) = get(&c, &url, &[("filter", &filter(fits))]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = get(&c, &url, &[("filter", &filter(fits + 1))]).await;
    assert_eq!(status, StatusCode::URI_TOO_LONG);
    assert_eq!(
        sim.requests().last().map(|r| r.status),
        Some(StatusCode::URI_TOO_LONG.as_u16())
    );
}

#[tokio::test]
async fn table_endpoint_pages_and_sorts() {
    let sim = empty_site().await;
    let site = sim.site();
    for (i, name) in ["carol", "alice", "bob"].into_iter().enumerate() {
        let u = site.add_user(NewUser::new("CORP", name)).expect("user");
        site.allocate(
            SimAccessType::Professional,
            u,
            Some(days_ago(&sim, 10 + i as i64)),
            days_ago(&sim, 100),
            false,
        )
        .expect("allocated");
    }
    let c = client(&sim);
    let body = serde_json::json!({
        "type": "License.ProfessionalAccessType",
        "columns": [
            {"name": "id", "columnType": "Property", "definition": "id"},
            {"name": "userId", "columnType": "Property", "definition": "user.userId"},
            {"name": "lastUsed", "columnType": "Property", "definition": "lastUsed"},
            {"name": "fn", "columnType": "Function", "definition": "Count(x)"}
        ]
    });
    let table = |skip: &'static str, take: &'static str| {
        c.post(qrs(&sim, "/qrs/license/professionalaccesstype/table"))
            .query(&[
                ("xrfkey", KEY),
                ("skip", skip),
                ("take", take),
                ("sortColumn", "userId"),
                ("orderAscending", "true"),
            ])
            .header("X-Qlik-Xrfkey", KEY)
            .json(&body)
            .send()
    };
    let all: Value = table("0", "0")
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(
        all["columnNames"],
        serde_json::json!(["id", "userId", "lastUsed", "fn"])
    );
    let users: Vec<&str> = all["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|r| r[1].as_str())
        .collect();
    assert_eq!(users, ["alice", "bob", "carol"]);
    assert_eq!(all["rows"][0][3], Value::Null);
    let page: Value = table("1", "1")
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(page["rows"].as_array().map(Vec::len), Some(1));
    assert_eq!(page["rows"][0][1], "bob");
    assert_eq!(
        table("x", "1").await.expect("sent").status(),
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn overview_is_computed_from_the_site() {
    let sim = empty_site().await;
    let site = sim.site();
    site.set_seat_totals(SeatTotals {
        professional: 10,
        analyzer: 20,
        tokens: 30,
    });
    let u = site.add_user(NewUser::new("CORP", "a")).expect("user");
    let v = site.add_user(NewUser::new("CORP", "b")).expect("user");
    site.allocate(
        SimAccessType::Professional,
        u,
        Some(days_ago(&sim, 1)),
        days_ago(&sim, 9),
        false,
    )
    .expect("allocated");
    site.allocate(
        SimAccessType::Professional,
        v,
        Some(days_ago(&sim, 1)),
        days_ago(&sim, 9),
        true,
    )
    .expect("allocated");
    site.allocate(SimAccessType::Analyzer, u, None, days_ago(&sim, 9), false)
        .expect("allocated");
    site.allocate(
        SimAccessType::User,
        v,
        Some(days_ago(&sim, 3)),
        days_ago(&sim, 9),
        false,
    )
    .expect("allocated");
    let c = client(&sim);
    let o = get_json(&c, &qrs(&sim, "/qrs/license/accesstypeoverview"), &[]).await;
    let p = &o["professionalAccess"];
    assert_eq!(
        (
            &p["total"],
            &p["allocated"],
            &p["quarantined"],
            &p["available"],
            &p["used"]
        ),
        (
            &serde_json::json!(10),
            &serde_json::json!(1),
            &serde_json::json!(1),
            &serde_json::json!(8),
            &serde_json::json!(1)
        )
    );
    assert_eq!(o["analyzerAccess"]["allocated"], 1);
    assert_eq!(o["analyzerAccess"]["used"], 0);
    assert_eq!(o["userAccess"]["allocatedTokens"], 1);
    assert_eq!(o["totalTokens"], 30);
    assert_eq!(o["availableTokens"], 29);
    assert_eq!(o["tokensEnabled"], true);
    assert!(o["professionalAccess"]["schemaPath"].is_string());
    let license = get_json(&c, &qrs(&sim, "/qrs/license"), &[]).await;
    assert!(
        license["keyDetails"]
            .as_str()
            .is_some_and(|k| k.contains("Valid To:"))
    );
    assert_eq!(license["isExpired"], false);
    let info = get_json(&c, &qrs(&sim, "/qrs/license/accesstypeinfo"), &[]).await;
    assert_eq!(info["userAccessType"]["allocatedTokens"], 1);
}

#[tokio::test]
async fn proxy_session_then_hub_with_cookie() {
    let sim = start(SimulatorConfig {
        client_key_format: KeyFormat::Sec1Ecdsa,
        proxy: Some(ProxyConfig::new("ops")),
        ..SimulatorConfig::default()
    })
    .await;
    assert_eq!(
        sim.config()
            .proxy
            .as_ref()
            .map(|p| p.session_cookie_name.as_str()),
        Some("X-Qlik-Session-ops")
    );
    let qps = sim.qps_url().expect("qps listener");
    let hub = sim.hub_url().expect("hub listener");
    let c = client(&sim);

    let created = c
        .post(at(&qps, "/qps/ops/session"))
        .query(&[("xrfkey", KEY)])
        .header("X-Qlik-Xrfkey", KEY)
        .json(&serde_json::json!({
            "UserDirectory": "CORP", "UserId": "svc_reclaimer",
            "Attributes": [{"group": "ops"}], "SessionId": "abc-123"
        }))
        .send()
        .await
        .expect("sent");
    assert_eq!(created.status(), StatusCode::CREATED);
    let echoed: Value = created.json().await.expect("json");
    assert_eq!(echoed["SessionId"], "abc-123");
    assert_eq!(echoed["UserId"], "svc_reclaimer");
    assert_eq!(echoed["Attributes"][0]["group"], "ops");

    // The hub needs no client certificate.
    let browser = client_with(&sim, None, false);
    let about = at(&hub, "/ops/qrs/about");
    let with_cookie = |cookie: &'static str| {
        browser
            .get(&about)
            .query(&[("xrfkey", KEY)])
            .header("X-Qlik-Xrfkey", KEY)
            .header("Cookie", cookie)
            .send()
    };
    assert_eq!(
        with_cookie("X-Qlik-Session-ops=abc-123")
            .await
            .expect("sent")
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        with_cookie("X-Qlik-Session=abc-123")
            .await
            .expect("sent")
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        with_cookie("X-Qlik-Session-ops=nope")
            .await
            .expect("sent")
            .status(),
        StatusCode::UNAUTHORIZED
    );
    // The hub path carries the prefix.
    let unprefixed = browser
        .get(at(&hub, "/qrs/about"))
        .query(&[("xrfkey", KEY)])
        .header("X-Qlik-Xrfkey", KEY)
        .header("Cookie", "X-Qlik-Session-ops=abc-123")
        .send()
        .await
        .expect("sent");
    assert_eq!(unprefixed.status(), StatusCode::NOT_FOUND);

    let hub_requests: Vec<RecordedRequest> = sim
        .requests()
        .into_iter()
        .filter(|r| r.listener == Listener::Hub)
        .collect();
    assert_eq!(
        hub_requests[0].user,
        Some(Identity::new("CORP", "svc_reclaimer"))
    );
    assert_eq!(hub_requests[0].status, 200);

    let session = at(&qps, "/qps/ops/session/abc-123");
    assert_eq!(get(&c, &session, &[]).await.0, StatusCode::OK);
    assert_eq!(delete(&c, &session).await, StatusCode::OK);
    assert_eq!(get(&c, &session, &[]).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        with_cookie("X-Qlik-Session-ops=abc-123")
            .await
            .expect("sent")
            .status(),
        StatusCode::UNAUTHORIZED
    );

    // QPS wants the client certificate, like 4243.
    assert!(get_result(&browser, &session).await.is_err());
}

#[tokio::test]
async fn qps_ticket_redeemed_on_the_hub_sets_the_session_cookie() {
    let sim = start(SimulatorConfig {
        client_key_format: KeyFormat::Sec1Ecdsa,
        proxy: Some(ProxyConfig::new("")),
        ..SimulatorConfig::default()
    })
    .await;
    let c = client(&sim);
    let ticket: Value = c
        .post(at(&sim.qps_url().expect("qps"), "/qps/ticket"))
        .query(&[("xrfkey", KEY)])
        .header("X-Qlik-Xrfkey", KEY)
        .json(&serde_json::json!({"UserDirectory": "CORP", "UserId": "jdoe"}))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    let ticket = ticket["Ticket"].as_str().expect("ticket").to_string();
    install_provider();
    let browser = Client::builder()
        .tls_backend_rustls()
        .tls_certs_only([Certificate::from_pem(sim.pki().root_pem.as_bytes()).expect("root")])
        .resolve(HOST, SocketAddr::from(([127, 0, 0, 1], 0)))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let hub = sim.hub_url().expect("hub");
    let redeemed = browser
        .get(at(&hub, "/hub/"))
        .query(&[("qlikTicket", ticket.as_str())])
        .send()
        .await
        .expect("sent");
    assert_eq!(redeemed.status(), StatusCode::FOUND);
    let cookie = redeemed
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("cookie")
        .to_string();
    assert!(cookie.starts_with("X-Qlik-Session="));
    let response = browser
        .get(at(&hub, "/qrs/about"))
        .query(&[("xrfkey", KEY)])
        .header("X-Qlik-Xrfkey", KEY)
        .header("Cookie", cookie)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn injected_faults_status_malformed_json_reset_and_delay() {
    let sim = empty_site().await;
    let url = qrs(&sim, "/qrs/license/professionalaccesstype/full");
    let c = client(&sim);

    sim.inject(
        FaultRule::always(Fault::Status(503))
            .path_contains("accesstype/full")
            .times(2),
    );
    assert_eq!(get(&c, &url, &[]).await.0, StatusCode::SERVICE_UNAVAILABLE);
    let (status, body) = get(&c, &url, &[]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("503"));
    assert_eq!(
        get(&c, &url, &[]).await.0,
        StatusCode::OK,
        "used up after two"
    );

    sim.inject(
        FaultRule::always(Fault::MalformedJson)
            .method("GET")
            .times(1),
    );
    let (status, body) = get(&c, &url, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(serde_json::from_str::<Value>(&body).is_err());

    // Only DELETEs are reset; a GET on the same path goes through.
    sim.inject(FaultRule::always(Fault::Reset).method("DELETE").times(1));
    assert_eq!(get(&c, &url, &[]).await.0, StatusCode::OK);
    let fresh = client(&sim);
    let target = qrs(
        &sim,
        &format!(
            "/qrs/license/professionalaccesstype/{}",
            uuid::Uuid::new_v4()
        ),
    );
    let reset = fresh
        .delete(&target)
        .query(&[("xrfkey", KEY)])
        .header("X-Qlik-Xrfkey", KEY)
        .send()
        .await;
    let err = reset.expect_err("the connection is dropped without a response");
    assert!(err.is_request() || err.is_connect(), "{err:?}");
    assert_eq!(
        delete(&fresh, &target).await,
        StatusCode::NOT_FOUND,
        "the next request works"
    );
    // The same over HTTP/1.1, where the request is served inside the connection's own task.
    sim.inject(FaultRule::always(Fault::Reset).times(1));
    let http1 = client_with(&sim, Some(&sim.pki().client_identity_pem()), true);
    let err = get_result(&http1, &url).await.expect_err("dropped");
    assert!(err.is_request() || err.is_connect(), "{err:?}");
    assert_eq!(get_result(&http1, &url).await.ok(), Some(StatusCode::OK));

    sim.inject(FaultRule::always(Fault::Delay(Duration::from_millis(300))).times(1));
    let started = Instant::now();
    assert_eq!(get(&c, &url, &[]).await.0, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(300));

    sim.set_latency(Duration::from_millis(150));
    let started = Instant::now();
    assert_eq!(get(&c, &url, &[]).await.0, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(150));
    sim.set_latency(Duration::ZERO);

    sim.inject(FaultRule::always(Fault::Status(500)));
    assert_eq!(
        get(&c, &url, &[]).await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    sim.clear_faults();
    assert_eq!(get(&c, &url, &[]).await.0, StatusCode::OK);

    let faults: Vec<Option<Fault>> = sim.requests().into_iter().map(|r| r.fault).collect();
    assert_eq!(
        faults
            .iter()
            .filter(|f| matches!(f, Some(Fault::Reset)))
            .count(),
        2
    );
    let reset_record = sim
        .requests()
        .into_iter()
        .find(|r| r.fault == Some(Fault::Reset))
        .expect("recorded");
    assert_eq!(
        (reset_record.method.as_str(), reset_record.status),
        ("DELETE", 0)
    );
}

#[tokio::test]
async fn fixed_port_and_shutdown() {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("probe binds");
    let port = probe.local_addr().expect("addr").port();
    drop(probe);
    let sim = Simulator::start_on(
        SimulatorConfig {
            client_key_format: KeyFormat::Sec1Ecdsa,
            ..SimulatorConfig::default()
        },
        port,
    )
    .await
    .expect("starts on the port");
    assert_eq!(sim.repository_url(), format!("https://127.0.0.1:{port}"));
    assert!(
        Simulator::start_on(SimulatorConfig::default(), port)
            .await
            .is_err(),
        "port taken"
    );
    sim.shutdown().await;
    // The port is free again.
    let again = std::net::TcpListener::bind(("127.0.0.1", port));
    assert!(again.is_ok());
}

#[tokio::test]
async fn login_reallocation_and_deleted_users() {
    let sim = empty_site().await;
    let site = sim.site();
    let u = site.add_user(NewUser::new("CORP", "back")).expect("user");
    let seat = site
        .login(u, SimAccessType::Professional)
        .expect("login")
        .expect("allocated by rule");
    let snapshot = site.allocation(seat).expect("exists");
    assert!(snapshot.last_used.is_some());
    site.delete_user(u).expect("deleted");
    let row = site.allocation(seat).expect("quarantined row stays");
    assert!(row.quarantined);
    assert_eq!(row.user, None);
    assert_eq!(
        (row.user_directory.as_str(), row.user_id.as_str()),
        ("CORP", "back")
    );
    let c = client(&sim);
    let json = get_json(
        &c,
        &qrs(&sim, &format!("/qrs/license/professionalaccesstype/{seat}")),
        &[],
    )
    .await;
    assert_eq!(json["deletedUserDirectory"], "CORP");
    assert_eq!(json["user"], Value::Null);
    sim.advance_clock(SignedDuration::from_hours(24 * 8));
    assert!(site.allocation(seat).is_none());
}

#[tokio::test]
async fn a_seeded_quarantine_that_would_already_have_ended_lasts_a_week_from_now() {
    let sim = empty_site().await;
    let site = sim.site();
    let u = site.add_user(NewUser::new("CORP", "grace")).expect("user");
    let old = days_ago(&sim, 100);
    let id = site
        .allocate(
            SimAccessType::Professional,
            u,
            Some(old),
            days_ago(&sim, 400),
            true,
        )
        .expect("allocated");
    let row = site.allocation(id).expect("still there");
    assert!(row.quarantined);
    assert!(
        row.quarantine_end
            .is_some_and(|end| end > sim.now() + SignedDuration::from_hours(24 * 6))
    );
    sim.advance_clock(SignedDuration::from_hours(24 * 7 + 1));
    assert!(site.allocation(id).is_none());
}

#[tokio::test]
async fn allocating_a_seat_needs_a_user_without_one_and_a_free_seat() {
    let sim = empty_site().await;
    let site = sim.site();
    let mut seats = site.seat_totals();
    seats.professional = 1;
    site.set_seat_totals(seats);
    let first = site.add_user(NewUser::new("CORP", "first")).expect("user");
    let second = site.add_user(NewUser::new("CORP", "second")).expect("user");
    let c = client(&sim);
    let url = qrs(&sim, "/qrs/license/professionalaccesstype");
    let allocate = |user: uuid::Uuid| {
        let (c, url) = (c.clone(), url.clone());
        async move {
            let body = serde_json::json!({"user": {"id": user}});
            let request = c
                .post(format!("{url}?xrfkey={KEY}"))
                .header("X-Qlik-Xrfkey", KEY);
            let response = request.json(&body).send().await.expect("answered");
            let status = response.status();
            (status, response.text().await.unwrap_or_default())
        }
    };
    let (status, body) = allocate(first).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(body.contains(&first.to_string()), "{body}");
    let (status, body) = allocate(first).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "already allocated: {body}");
    let (status, body) = allocate(second).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "no free seat: {body}");
    assert!(body.contains("BrokenRules"), "{body}");
    let (status, _) = allocate(uuid::Uuid::new_v4()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "no such user");
    assert_eq!(site.allocations(SimAccessType::Professional).len(), 1);
}

#[tokio::test]
async fn apps_and_app_objects_are_served_with_owners_and_dates_and_filtered_by_them() {
    let sim = empty_site().await;
    let site = sim.site();
    let author = site.add_user(NewUser::new("CORP", "author")).expect("user");
    let reader = site.add_user(NewUser::new("CORP", "reader")).expect("user");
    let (old, recent) = (days_ago(&sim, 400), days_ago(&sim, 10));
    let app = site.add_app(author, "Sales", old, recent).expect("app");
    site.add_app_object(app, author, ("sheet", "Q3 draft"), (old, recent))
        .expect("sheet");
    site.add_app_object(app, reader, ("story", "Told"), (recent, recent))
        .expect("story");
    site.add_app_object(app, reader, ("bookmark", "Mine"), (old, old))
        .expect("bookmark");
    assert!(matches!(
        site.add_app(uuid::Uuid::nil(), "x", old, old),
        Err(SiteError::UnknownUser(_))
    ));
    assert!(matches!(
        site.add_app_object(uuid::Uuid::nil(), author, ("sheet", "x"), (old, old)),
        Err(SiteError::UnknownApp(_))
    ));

    let c = client(&sim);
    let apps = get_json(
        &c,
        &qrs(&sim, "/qrs/app/full"),
        &[("filter", &format!("owner.id eq {author}"))],
    )
    .await;
    assert_eq!(apps.as_array().map(Vec::len), Some(1), "{apps}");
    assert_eq!(apps[0]["name"], "Sales");
    assert_eq!(apps[0]["owner"]["userId"], "author");
    assert_eq!(apps[0]["schemaPath"], "App");
    assert!(
        apps[0]["modifiedDate"]
            .as_str()
            .is_some_and(|d| d.ends_with('Z')),
        "{apps}"
    );
    let none = get_json(
        &c,
        &qrs(&sim, "/qrs/app/full"),
        &[("filter", &format!("owner.id eq {reader}"))],
    )
    .await;
    assert_eq!(none, serde_json::json!([]));

    // The reader's objects, most recent first; the stories and bookmarks carry their type and app.
    let objects = get_json(
        &c,
        &qrs(&sim, "/qrs/app/object/full"),
        &[
            ("filter", &format!("owner.id eq {reader}")),
            ("orderby", "modifiedDate desc"),
        ],
    )
    .await;
    let types: Vec<&str> = objects
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["objectType"].as_str())
        .collect();
    assert_eq!(types, ["story", "bookmark"], "{objects}");
    assert_eq!(objects[0]["app"]["name"], "Sales");
    assert_eq!(objects[0]["schemaPath"], "App.Object");

    // Type and date filters, and counts.
    let cutoff = crate::time::format_ts(days_ago(&sim, 90));
    let recent_sheets = format!(
        "(owner.id eq {author} or owner.id eq {reader}) and objectType eq 'sheet' and modifiedDate ge '{cutoff}'"
    );
    let count = get_json(
        &c,
        &qrs(&sim, "/qrs/app/object/count"),
        &[("filter", &recent_sheets)],
    )
    .await;
    assert_eq!(count["value"], 1, "{count}");
    let by_directory = get_json(
        &c,
        &qrs(&sim, "/qrs/app/object/count"),
        &[(
            "filter",
            "owner.userDirectory eq 'corp' and owner.userId eq 'READER'",
        )],
    )
    .await;
    assert_eq!(by_directory["value"], 2, "{by_directory}");
    let (status, body) = get(
        &c,
        &qrs(&sim, "/qrs/app/object/full"),
        &[("filter", "ownr.id eq 1")],
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "an unknown property is refused as QRS does: {body}"
    );
    assert_eq!(
        get_json(&c, &qrs(&sim, "/qrs/app/count"), &[]).await["value"],
        1
    );
}

/// Qlik's own Repository API definition, the part the client uses (vendored in the repository's docs).
const DEFINITION: &str = include_str!("../../../docs/qrs-openapi/repository-subset.json");

/// The properties of `value` that the definition's `entity` does not define, as dotted paths under `path`; a
/// nested object or list is checked against the entity its property refers to.
fn undefined(definitions: &Value, entity: &str, value: &Value, path: &str, out: &mut Vec<String>) {
    let Some(object) = value.as_object() else {
        return;
    };
    let properties = &definitions[entity]["properties"];
    if !properties.is_object() {
        out.push(format!("{path}: the definition has no entity {entity}"));
        return;
    }
    for (key, inner) in object {
        let here = format!("{path}.{key}");
        let property = &properties[key];
        if property.is_null() {
            out.push(format!("{here} (not a property of {entity})"));
            continue;
        }
        let referred = |p: &Value| {
            p["$ref"]
                .as_str()
                .and_then(|r| r.strip_prefix("#/definitions/"))
                .map(str::to_string)
        };
        match inner {
            Value::Object(_) => {
                if let Some(nested) = referred(property) {
                    undefined(definitions, &nested, inner, &here, out);
                }
            }
            Value::Array(items) => {
                if let Some(nested) = referred(&property["items"]) {
                    for item in items {
                        undefined(definitions, &nested, item, &here, out);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Every answer the client reads carries only what Qlik's definition defines for its entity: the simulator
/// cannot teach the client a field a real site never sends.
#[tokio::test]
async fn answers_carry_only_properties_qliks_definition_defines() {
    let definitions: Value = serde_json::from_str(DEFINITION).expect("the definition is JSON");
    let definitions = &definitions["definitions"];
    let sim = start(SimulatorConfig {
        users: 60,
        ..SimulatorConfig::default()
    })
    .await;
    let c = client(&sim);
    let mut found = Vec::new();
    let mut check = |entity: &str, answer: &Value, path: &str| {
        let items: Vec<&Value> = match answer {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        assert!(!items.is_empty(), "{path}: nothing to check");
        for item in items {
            undefined(definitions, entity, item, path, &mut found);
        }
    };
    for (path, entity) in [
        (
            "/qrs/license/professionalaccesstype/full",
            "LicenseProfessionalAccessType",
        ),
        (
            "/qrs/license/analyzeraccesstype/full",
            "LicenseAnalyzerAccessType",
        ),
        ("/qrs/license/useraccesstype/full", "LicenseUserAccessType"),
        (
            "/qrs/license/loginaccesstype/full",
            "LicenseLoginAccessType",
        ),
        ("/qrs/license/accesstypeoverview", "AccessTypeOverview"),
        ("/qrs/user/full", "User"),
        ("/qrs/app/full", "App"),
        ("/qrs/app/object/full", "AppObject"),
    ] {
        let answer = get_json(&c, &qrs(&sim, path), &[]).await;
        check(entity, &answer, path);
        if answer.is_array() {
            let privileged = get_json(&c, &qrs(&sim, path), &[("privileges", "true")]).await;
            check(entity, &privileged, path);
        }
    }
    // A seat allocated: the 201 answer is the entity.
    let user = sim
        .site()
        .add_user(crate::NewUser::new("CORP", "newcomer"))
        .expect("user");
    let mut totals = sim.site().seat_totals();
    totals.analyzer += 1;
    sim.site().set_seat_totals(totals);
    let created = c
        .post(qrs(&sim, "/qrs/license/analyzeraccesstype"))
        .query(&[("xrfkey", KEY)])
        .header("X-Qlik-Xrfkey", KEY)
        .json(&serde_json::json!({"user": {"id": user.to_string()}}))
        .send()
        .await
        .expect("answered");
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.expect("JSON");
    check(
        "LicenseAnalyzerAccessType",
        &created,
        "POST /qrs/license/analyzeraccesstype",
    );
    assert!(found.is_empty(), "{}", found.join("\n"));

    // The check itself finds what the definition lacks, nested too.
    let mut caught = Vec::new();
    let odd = serde_json::json!({"id": "x", "lastUsedd": "2026", "user": {"id": "y", "mail": "z"}});
    undefined(
        definitions,
        "LicenseProfessionalAccessType",
        &odd,
        "odd",
        &mut caught,
    );
    assert_eq!(caught.len(), 2, "{caught:?}");
}

/// Sends `method` to `url` with the xrfkey, `query` and a JSON `body`; the status and the body as JSON (null when
/// empty).
async fn send(
    client: &Client,
    method: reqwest::Method,
    url: &str,
    query: &[(&str, &str)],
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = client
        .request(method, url)
        .query(&[("xrfkey", KEY)])
        .query(query)
        .header("X-Qlik-Xrfkey", KEY);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("answered");
    let status = response.status();
    let text = response.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Three Professional seats, unused for 100, 200 and 300 days; their ids.
fn three_seats(sim: &Simulator) -> [uuid::Uuid; 3] {
    let now = sim.now();
    let days = |d: i64| now - jiff::SignedDuration::from_hours(24 * d);
    [100, 200, 300].map(|d| {
        let user = sim
            .site()
            .add_user(crate::NewUser::new("CORP", format!("u{d}")))
            .expect("user");
        sim.site()
            .allocate(
                SimAccessType::Professional,
                user,
                Some(days(d)),
                days(400),
                false,
            )
            .expect("seat")
    })
}

#[tokio::test]
async fn a_selection_deletes_what_its_filter_matches_at_the_moment_of_deletion() {
    let sim = empty_site().await;
    let c = client(&sim);
    let [recent, older, oldest] = three_seats(&sim);
    let ids = format!("id eq {recent} or id eq {older} or id eq {oldest}");
    let (status, selection) = send(
        &c,
        reqwest::Method::POST,
        &qrs(&sim, "/qrs/selection/license/professionalaccesstype"),
        &[("filter", &ids)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{selection}");
    assert_eq!(selection["items"].as_array().map(Vec::len), Some(3));
    let id = selection["id"].as_str().expect("an id").to_string();
    let items = qrs(
        &sim,
        &format!("/qrs/selection/{id}/license/professionalaccesstype"),
    );
    let (count, _) = get(&c, &format!("{items}/count"), &[]).await;
    assert_eq!(count, StatusCode::OK);

    // Only seats unused for 150 days or more go; the middle one is used between the selection and the delete.
    let cutoff = crate::time::format_ts(sim.now() - jiff::SignedDuration::from_hours(24 * 150));
    let owner = sim
        .site()
        .allocation(older)
        .and_then(|a| a.user)
        .expect("user");
    sim.site()
        .login(owner, SimAccessType::Professional)
        .expect("logs in");
    let filter = format!("lastUsed le '{cutoff}'");
    let (status, _) = send(
        &c,
        reqwest::Method::DELETE,
        &items,
        &[("filter", &filter)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(
        sim.site().allocation(oldest).is_none(),
        "unused 300 days: gone"
    );
    assert!(
        sim.site().allocation(recent).is_some(),
        "used 100 days ago: kept"
    );
    assert!(
        sim.site().allocation(older).is_some_and(|a| !a.quarantined),
        "used just before the delete: kept"
    );

    // Dropped, the selection is gone.
    let one = qrs(&sim, &format!("/qrs/selection/{id}"));
    assert_eq!(delete(&c, &one).await, StatusCode::NO_CONTENT);
    assert_eq!(delete(&c, &one).await, StatusCode::NOT_FOUND);
    assert_eq!(
        send(&c, reqwest::Method::DELETE, &items, &[], None).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_selection_delete_can_fail_part_way() {
    let sim = empty_site().await;
    let c = client(&sim);
    let seats = three_seats(&sim);
    let ids = seats
        .iter()
        .map(|s| format!("id eq {s}"))
        .collect::<Vec<_>>()
        .join(" or ");
    let (_, selection) = send(
        &c,
        reqwest::Method::POST,
        &qrs(&sim, "/qrs/selection/license/professionalaccesstype"),
        &[("filter", &ids)],
        None,
    )
    .await;
    let id = selection["id"].as_str().expect("id");
    sim.inject(
        crate::FaultRule::always(crate::Fault::FailAfter {
            deletions: 1,
            status: 500,
        })
        .method("DELETE")
        .times(1),
    );
    let items = qrs(
        &sim,
        &format!("/qrs/selection/{id}/license/professionalaccesstype"),
    );
    let (status, _) = send(&c, reqwest::Method::DELETE, &items, &[], None).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let left = seats
        .iter()
        .filter(|s| sim.site().allocation(**s).is_some())
        .count();
    assert_eq!(left, 2, "one deleted before the failure");
}

#[tokio::test]
async fn many_allocates_every_user_or_none() {
    let sim = empty_site().await;
    let c = client(&sim);
    let users: Vec<uuid::Uuid> = (0..3)
        .map(|i| {
            sim.site()
                .add_user(crate::NewUser::new("CORP", format!("n{i}")))
                .expect("user")
        })
        .collect();
    let body = |users: &[uuid::Uuid]| {
        Value::Array(
            users
                .iter()
                .map(|u| serde_json::json!({"user": {"id": u.to_string()}}))
                .collect(),
        )
    };
    let many = qrs(&sim, "/qrs/license/analyzeraccesstype/many");
    let mut totals = sim.site().seat_totals();
    totals.analyzer = sim.site().allocations(SimAccessType::Analyzer).len() as u32 + 2;
    sim.site().set_seat_totals(totals);
    let (status, refused) = send(&c, reqwest::Method::POST, &many, &[], Some(body(&users))).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "two free seats for three users"
    );
    assert!(refused["BrokenRules"].is_array(), "{refused}");
    assert!(
        sim.site()
            .allocations(SimAccessType::Analyzer)
            .iter()
            .all(|a| a.user.is_none_or(|u| !users.contains(&u))),
        "none allocated"
    );
    let (status, created) = send(
        &c,
        reqwest::Method::POST,
        &many,
        &[],
        Some(body(&users[..2])),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created.as_array().map(Vec::len), Some(2));
}
