use super::*;
use crate::policy::RUN_NOW_ANNOTATION;
use http::{Request, Response};
use kube::client::Body;
use serde_json::{Value, json};

type ApiHandle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

const POLICY_PATH: &str =
    "/apis/licensing.reclaimer.dev/v1alpha1/namespaces/ops/licensecleanuppolicies/site";

fn policy(
    change: impl FnOnce(&mut crate::policy::LicenseCleanupPolicySpec),
) -> LicenseCleanupPolicy {
    let mut spec =
        crate::demo::demo_policy("https://qlik.example.com:4242".into(), "qlikserver1".into());
    change(&mut spec);
    let mut policy = LicenseCleanupPolicy::new("site", spec);
    policy.metadata.namespace = Some("ops".into());
    policy.metadata.generation = Some(3);
    policy.metadata.resource_version = Some("41".into());
    policy.metadata.creation_timestamp = Some(Time(Timestamp::now()));
    policy
}

fn context(client: Client) -> Arc<Context> {
    Arc::new(Context {
        recorder: crate::k8s::events::recorder(&client),
        client,
        metrics: Arc::new(Metrics::new()),
        running: Mutex::new(HashMap::new()),
        missed_reported: Mutex::new(HashSet::new()),
        shutdown: Shutdown::new(),
        stores: Vec::new(),
        permissions: Permissions::default(),
        run_slots: Arc::new(tokio::sync::Semaphore::new(1)),
    })
}

fn json_response(value: &Value) -> Response<Body> {
    Response::builder()
        .body(Body::from(serde_json::to_vec(value).expect("JSON")))
        .expect("response")
}

/// Answer the next request, checking its method and path; returns its JSON body.
async fn expect(handle: &mut ApiHandle, method: &str, path: &str, answer: Value) -> Value {
    let (request, send) = handle
        .next_request()
        .await
        .expect("the reconciler made a request");
    assert_eq!(request.method().as_str(), method, "{}", request.uri());
    assert!(
        request.uri().path().starts_with(path),
        "{} {}",
        request.method(),
        request.uri()
    );
    let body = request.into_body().collect_bytes().await.expect("body");
    send.send_response(json_response(&answer));
    if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).expect("JSON request body")
    }
}

/// A reconcile context on a scripted API server, and the handle that scripts it.
fn scripted() -> (Arc<Context>, ApiHandle) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (context(Client::new(service, "default")), handle)
}

/// A reconcile without a run reads the policy's Secret first (its problems show before the first run): answer
/// with one that holds usable credentials.
async fn usable_secret_read(handle: &mut ApiHandle) {
    use base64::Engine as _;
    let (entries, _) = crate::testing::credential_entries();
    let data: serde_json::Map<String, Value> = entries
        .into_iter()
        .map(|(key, bytes)| {
            let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
            (key, Value::String(encoded))
        })
        .collect();
    let secret = serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "qlik-client-certificate", "namespace": "ops"},
        "data": data,
    });
    expect(
        handle,
        "GET",
        "/api/v1/namespaces/ops/secrets/qlik-client-certificate",
        secret,
    )
    .await;
}

/// How a reconcile writes the status: it reads the policy as it is now, then patches; the patch.
async fn status_write(handle: &mut ApiHandle, object: &Value) -> Value {
    expect(handle, "GET", POLICY_PATH, object.clone()).await;
    expect(
        handle,
        "PATCH",
        &format!("{POLICY_PATH}/status"),
        object.clone(),
    )
    .await
}

fn ready(status: &Value) -> (String, String, String) {
    let ready = status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .cloned()
        .unwrap_or_default();
    let field = |k: &str| ready[k].as_str().unwrap_or_default().to_string();
    (field("status"), field("reason"), field("message"))
}

#[tokio::test]
async fn an_unusable_time_zone_is_reported_once_and_waits_for_a_change() {
    let policy = policy(|s| s.time_zone = "Mars/Olympus_Mons".into());
    let (ctx, mut handle) = scripted();
    let object = serde_json::to_value(&policy).unwrap();
    let server = tokio::spawn(async move {
        // The Event first: whoever sees the status finds it already there.
        let event = expect(
            &mut handle,
            "POST",
            "/apis/events.k8s.io/v1/namespaces/ops/events",
            json!({}),
        )
        .await;
        assert_eq!(event["type"], "Warning");
        assert_eq!(event["reason"], "InvalidPolicy");
        let patch = status_write(&mut handle, &object).await;
        assert_eq!(
            patch["metadata"]["resourceVersion"], "41",
            "written with a precondition"
        );
        let (status, reason, message) = ready(&patch["status"]);
        assert_eq!(
            (status.as_str(), reason.as_str()),
            ("False", "InvalidPolicy")
        );
        assert!(message.contains("spec.timeZone"), "{message}");
        assert_eq!(patch["status"]["observedGeneration"], 3);
        handle
    });
    let action = reconcile(Arc::new(policy), ctx.clone())
        .await
        .expect("reconciled");
    assert_eq!(action, Action::await_change());
    let mut handle = server.await.expect("scripted API");
    // Nothing else was asked of the API server.
    drop(ctx);
    assert!(handle.next_request().await.is_none());
}

#[tokio::test]
async fn a_suspended_policy_is_ready_without_a_next_run_and_does_not_run() {
    let policy = policy(|s| s.suspend = true);
    let mut annotated = policy.clone();
    annotated
        .metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(RUN_NOW_ANNOTATION.into(), "now".into());
    let (ctx, mut handle) = scripted();
    let object = serde_json::to_value(&annotated).unwrap();
    let server = tokio::spawn(async move {
        usable_secret_read(&mut handle).await;
        let patch = status_write(&mut handle, &object).await;
        let (status, reason, message) = ready(&patch["status"]);
        assert_eq!(
            (status.as_str(), reason.as_str(), message.as_str()),
            ("True", "Scheduled", "valid; suspended")
        );
        assert!(patch["status"].get("nextScheduleTime").is_none());
        assert!(
            patch["status"].get("lastRunNow").is_none(),
            "run-now is not answered while suspended"
        );
        handle
    });
    let action = reconcile(Arc::new(annotated), ctx.clone())
        .await
        .expect("reconciled");
    assert_eq!(action, Action::await_change());
    let mut handle = server.await.expect("scripted API");
    assert!(
        !ctx.is_running(&("ops".into(), "site".into())),
        "no run was started"
    );
    drop(ctx);
    assert!(handle.next_request().await.is_none());
}

#[tokio::test]
async fn a_valid_policy_sleeps_until_its_next_instant() {
    let policy = policy(|s| s.schedule = "0 3 * * *".into());
    let (ctx, mut handle) = scripted();
    let object = serde_json::to_value(&policy).unwrap();
    let server = tokio::spawn(async move {
        usable_secret_read(&mut handle).await;
        let patch = status_write(&mut handle, &object).await;
        let next: Timestamp = patch["status"]["nextScheduleTime"]
            .as_str()
            .expect("next run")
            .parse()
            .unwrap();
        let at = next.to_zoned(jiff::tz::TimeZone::UTC);
        assert_eq!((at.hour(), at.minute()), (3, 0));
        handle
    });
    let action = reconcile(Arc::new(policy), ctx.clone())
        .await
        .expect("reconciled");
    let _ = server.await.expect("scripted API");
    // A requeue at the next instant, within a day: the controller sleeps rather than polls.
    assert_ne!(action, Action::await_change());
    let text = format!("{action:?}");
    assert!(text.contains("requeue_after: Some("), "{text}");
}
