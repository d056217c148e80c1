//! Request handling for the three listeners: checks (xrfkey, identity, session), fault injection, QRS and QPS
//! endpoints, and recording.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Extension, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use serde::ser::Serializer as _;
use tokio::sync::Notify;
use uuid::Uuid;

use super::filter::{Filter, FilterError, OrderBy, Record};
use super::site::{
    AllocRec, AllocView, AllocationOut, IdCondensedOut, LastUsed, SimAccessType, SiteState,
    UserCondensedOut, UserOut, UserView, millis,
};
use super::{
    DeletionOutcome, Fault, Identity, Listener, RecordedArrival, RecordedDeletion, RecordedRequest,
    Shared, lock,
};

const XSRF_MESSAGE: &str = "XSRF prevention check failed. Possible XSRF discovered.";
const BODY_LIMIT: usize = 16 * 1024 * 1024;
/// A QPS ticket is valid for one minute.
const TICKET_LIFETIME: SignedDuration = SignedDuration::from_secs(60);

/// Per-connection context, inserted into every request by the connection's service.
#[derive(Clone)]
pub(crate) struct ConnCtx {
    pub(crate) listener: Listener,
    /// Notified by a [`Fault::Reset`]: the connection task then drops the connection without answering.
    pub(crate) abort: Arc<Notify>,
    /// Notified by the connection task once the connection is gone.
    pub(crate) closed: Arc<Notify>,
}

/// How long a reset request's handler waits for its connection to go before giving up. Over HTTP/2 each request
/// runs in its own task, which must not outlive the dropped connection for long.
const RESET_GRACE: Duration = Duration::from_secs(10);

/// Sessions and tickets of the simulated proxy.
#[derive(Default)]
pub(crate) struct ProxyState {
    sessions: HashMap<String, Session>,
    tickets: HashMap<String, Ticket>,
}

#[derive(Clone)]
struct Session {
    identity: Identity,
    attributes: serde_json::Value,
}

struct Ticket {
    identity: Identity,
    attributes: serde_json::Value,
    target_id: serde_json::Value,
    expires: Timestamp,
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

// ---------------------------------------------------------------------------------------------------------------
// Replies

struct Reply {
    status: StatusCode,
    content_type: Option<&'static str>,
    headers: Vec<(header::HeaderName, HeaderValue)>,
    body: Bytes,
}

impl Reply {
    fn bytes(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Reply {
        Reply {
            status,
            content_type: Some(content_type),
            headers: Vec::new(),
            body: Bytes::from(body),
        }
    }

    fn json(status: StatusCode, value: &impl Serialize) -> Reply {
        match serde_json::to_vec(value) {
            Ok(body) => Reply::bytes(status, "application/json; charset=utf-8", body),
            Err(e) => Reply::text(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("serialization failed: {e}"),
            ),
        }
    }

    fn ok(value: &impl Serialize) -> Reply {
        Reply::json(StatusCode::OK, value)
    }

    fn text(status: StatusCode, text: &str) -> Reply {
        Reply::bytes(
            status,
            "text/plain; charset=utf-8",
            text.as_bytes().to_vec(),
        )
    }

    /// The same answer with `field` set (or removed) in every object of its JSON.
    fn rewritten(self, field: &str, value: Option<&serde_json::Value>) -> Reply {
        let Ok(mut json) = serde_json::from_slice::<serde_json::Value>(&self.body) else {
            return self;
        };
        let path: Vec<&str> = field.split('.').collect();
        match &mut json {
            serde_json::Value::Array(items) => {
                for item in items {
                    rewrite_field(item, &path, value);
                }
            }
            object => rewrite_field(object, &path, value),
        }
        match serde_json::to_vec(&json) {
            Ok(body) => Reply {
                body: Bytes::from(body),
                ..self
            },
            Err(_) => self,
        }
    }

    fn empty(status: StatusCode) -> Reply {
        Reply {
            status,
            content_type: None,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    fn not_found() -> Reply {
        Reply::text(StatusCode::NOT_FOUND, "Not Found")
    }

    fn method_not_allowed() -> Reply {
        Reply::text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
    }

    fn bad_request(text: &str) -> Reply {
        Reply::text(StatusCode::BAD_REQUEST, text)
    }

    fn header(mut self, name: header::HeaderName, value: &str) -> Reply {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.push((name, v));
        }
        self
    }
}

impl From<FilterError> for Reply {
    fn from(e: FilterError) -> Reply {
        Reply::bad_request(&e.to_string())
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let mut response = Response::new(Body::from(self.body));
        *response.status_mut() = self.status;
        if let Some(ct) = self.content_type {
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
        }
        for (name, value) in self.headers {
            response.headers_mut().append(name, value);
        }
        response
    }
}

/// Serializes `items` as a JSON array without collecting them first.
fn json_array<T: Serialize>(items: impl IntoIterator<Item = T>) -> Reply {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::new(&mut out);
    match ser.collect_seq(items) {
        Ok(()) => Reply::bytes(StatusCode::OK, "application/json; charset=utf-8", out),
        Err(e) => Reply::text(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("serialization failed: {e}"),
        ),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Query strings

/// Decoded query parameters.
struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Parses a raw query. An empty parameter (a stray `&`) is QRS's `400 Missing parameter value(s)`.
    fn parse(raw: &str) -> Result<Query, Reply> {
        let mut pairs = Vec::new();
        if raw.is_empty() {
            return Ok(Query { pairs });
        }
        for part in raw.split('&') {
            if part.is_empty() {
                return Err(Reply::bad_request("Missing parameter value(s)"));
            }
            let (name, value) = part.split_once('=').unwrap_or((part, ""));
            pairs.push((decode(name), decode(value)));
        }
        Ok(Query { pairs })
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn flag(&self, name: &str) -> bool {
        self.get(name)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }
}

/// Form-style decoding: `+` is a space, `%XX` a byte (clients such as Qlik-Cli encode with `UrlEncode`).
fn decode(s: &str) -> String {
    let plus = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus)
        .decode_utf8_lossy()
        .into_owned()
}

/// Percent-decoding of a path segment (`+` stays a plus).
fn decode_segment(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

fn xrfkey_ok(query: &Query, headers: &HeaderMap) -> bool {
    let Some(in_query) = query.get("xrfkey") else {
        return false;
    };
    let Some(in_header) = headers.get("x-qlik-xrfkey").and_then(|v| v.to_str().ok()) else {
        return false;
    };
    in_query == in_header
        && in_query.len() == 16
        && in_query.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Parses `X-Qlik-User: UserDirectory=<dir>; UserId=<id>`; `None` when malformed.
pub(crate) fn parse_qlik_user(value: &str) -> Option<Identity> {
    let mut directory = None;
    let mut user_id = None;
    for part in value.split(';') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (k, v) = part.split_once('=')?;
        let v = percent_encoding::percent_decode_str(v.trim())
            .decode_utf8()
            .ok()?
            .into_owned();
        match k.trim().to_ascii_lowercase().as_str() {
            "userdirectory" => directory = Some(v),
            "userid" => user_id = Some(v),
            _ => {}
        }
    }
    match (directory, user_id) {
        (Some(d), Some(u)) if !d.trim().is_empty() && !u.trim().is_empty() => {
            Some(Identity::new(d, u))
        }
        _ => None,
    }
}

fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| k.trim() == name)
        .map(|(_, v)| v.trim())
}

// ---------------------------------------------------------------------------------------------------------------
// Entry point

async fn handle(
    State(shared): State<Arc<Shared>>,
    Extension(ctx): Extension<ConnCtx>,
    req: Request,
) -> Response {
    let at = shared.now();
    let (parts, body) = req.into_parts();
    let method = parts.method;
    let path = parts.uri.path().to_string();
    let raw_query = parts.uri.query().unwrap_or("").to_string();
    shared.record_arrival(RecordedArrival {
        at,
        listener: ctx.listener,
        method: method.to_string(),
        path: path.clone(),
    });

    let latency = shared.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }

    let recorded_query: Vec<(String, String)> = Query::parse(&raw_query)
        .map(|q| q.pairs)
        .unwrap_or_else(|_| {
            raw_query
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (decode(k), decode(v))
                })
                .collect()
        });
    let mut record = RecordedRequest {
        at,
        listener: ctx.listener,
        method: method.to_string(),
        path: path.clone(),
        query: recorded_query,
        status: 0,
        user: None,
        fault: None,
    };

    let fault = shared.take_fault(method.as_str(), &path);
    if let Some(fault) = &fault {
        record.fault = Some(fault.clone());
        match fault {
            Fault::Delay(d) => tokio::time::sleep(*d).await,
            Fault::Reset => {
                shared.record_request(record);
                let closed = ctx.closed.notified();
                tokio::pin!(closed);
                closed.as_mut().enable();
                ctx.abort.notify_one();
                // The connection task drops the connection, so whatever this returns never goes out.
                let _ = tokio::time::timeout(RESET_GRACE, closed).await;
                return Reply::empty(StatusCode::INTERNAL_SERVER_ERROR).into_response();
            }
            Fault::Status(code) => {
                let status =
                    StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                let reason = status.canonical_reason().unwrap_or("Error");
                record.status = status.as_u16();
                shared.record_request(record);
                return Reply::text(
                    status,
                    &format!("{} {reason} (injected fault)", status.as_u16()),
                )
                .into_response();
            }
            Fault::EchoRequest(code) => {
                let status =
                    StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                record.status = status.as_u16();
                shared.record_request(record);
                let headers: String = parts
                    .headers
                    .iter()
                    .map(|(k, v)| format!("<li>{k}: {}</li>", v.to_str().unwrap_or("?")))
                    .collect();
                let page = format!(
                    "<html><body><h1>{} Error</h1><p>The request https://{}{path}?{raw_query} failed.</p><ul>{headers}</ul></body></html>",
                    status.as_u16(),
                    parts
                        .headers
                        .get(header::HOST)
                        .and_then(|h| h.to_str().ok())
                        .unwrap_or("qlik"),
                );
                return Reply::bytes(status, "text/html; charset=utf-8", page.into_bytes())
                    .into_response();
            }
            Fault::Huge {
                bytes,
                one_huge_element,
            } => {
                record.status = 200;
                shared.record_request(record);
                return huge_answer(*bytes, *one_huge_element);
            }
            Fault::Rewrite { .. } => {}
            Fault::MalformedJson => {
                record.status = 200;
                shared.record_request(record);
                return Reply::bytes(
                    StatusCode::OK,
                    "application/json; charset=utf-8",
                    br#"[{"id":"3f2c7d9e-1b4a-4c8e-9f00-2d5e6a7b8c9d","createdDate":"2024-01-0"#
                        .to_vec(),
                )
                .into_response();
            }
        }
    }

    let body = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => {
            let reply = Reply::bad_request("The request body could not be read");
            record.status = reply.status.as_u16();
            shared.record_request(record);
            return reply.into_response();
        }
    };

    let request = Incoming {
        method: &method,
        path: &path,
        raw_query: &raw_query,
        headers: &parts.headers,
        body: &body,
        listener: ctx.listener,
    };
    let (reply, user) = match ctx.listener {
        Listener::Repository => repository(&shared, &request),
        Listener::Qps => (qps(&shared, &request), None),
        Listener::Hub => hub(&shared, &request),
    };
    let reply = match &fault {
        Some(Fault::Rewrite { field, value }) => reply.rewritten(field, value.as_ref()),
        _ => reply,
    };
    record.status = reply.status.as_u16();
    record.user = user;
    shared.record_request(record);
    reply.into_response()
}

/// A 200 answer of `bytes` bytes of JSON list, produced as it is sent so that the simulator itself stays small.
fn huge_answer(bytes: u64, one_huge_element: bool) -> Response {
    const ELEMENT: &[u8] = br#"{"id":"3f2c7d9e-1b4a-4c8e-9f00-2d5e6a7b8c9d","createdDate":"2024-01-01T00:00:00.000Z","lastUsed":"2024-01-02T00:00:00.000Z","quarantined":false,"user":{"id":"5e0c2a1b-8d3f-4a6e-b7c9-0f1e2d3c4b5a","userId":"u","userDirectory":"D","name":"n"}},"#;
    const CHUNK: usize = 64 * 1024;
    let filler: Vec<u8> = if one_huge_element {
        vec![b'x'; CHUNK]
    } else {
        ELEMENT.repeat(CHUNK / ELEMENT.len())
    };
    let filler = Bytes::from(filler);
    let head = Bytes::from_static(if one_huge_element { b"[\"" } else { b"[" });
    let chunks = (bytes / filler.len() as u64).max(1);
    let body = futures::stream::iter(
        std::iter::once(head)
            .chain(std::iter::repeat_n(filler, chunks as usize))
            .map(Ok::<Bytes, std::io::Error>),
    );
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
        .body(axum::body::Body::from_stream(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

struct Incoming<'a> {
    method: &'a Method,
    path: &'a str,
    raw_query: &'a str,
    headers: &'a HeaderMap,
    body: &'a [u8],
    listener: Listener,
}

fn rewrite_field(object: &mut serde_json::Value, path: &[&str], value: Option<&serde_json::Value>) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut target = object;
    for parent in parents {
        match target.get_mut(*parent) {
            Some(next) => target = next,
            None => return,
        }
    }
    if let Some(map) = target.as_object_mut() {
        match value {
            Some(value) => {
                map.insert((*last).to_string(), value.clone());
            }
            None => {
                map.remove(*last);
            }
        }
    }
}

fn segments(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

fn repository(shared: &Shared, req: &Incoming<'_>) -> (Reply, Option<Identity>) {
    let query = match Query::parse(req.raw_query) {
        Ok(q) => q,
        Err(reply) => return (reply, None),
    };
    if !xrfkey_ok(&query, req.headers) {
        return (Reply::text(StatusCode::FORBIDDEN, XSRF_MESSAGE), None);
    }
    let identity = match req.headers.get("x-qlik-user") {
        None => Identity::new(
            shared.config.anonymous_user.0.clone(),
            shared.config.anonymous_user.1.clone(),
        ),
        Some(value) => match value.to_str().ok().and_then(parse_qlik_user) {
            Some(identity) => identity,
            None => {
                return (
                    Reply::bad_request(
                        "Invalid X-Qlik-User header: expected 'UserDirectory=<directory>; UserId=<id>'",
                    ),
                    None,
                );
            }
        },
    };
    let segs = segments(req.path);
    let reply = match segs.split_first() {
        Some((first, rest)) if first.eq_ignore_ascii_case("qrs") => {
            qrs(shared, req, &identity, rest, &query)
        }
        _ => Reply::not_found(),
    };
    (reply, Some(identity))
}

fn hub(shared: &Shared, req: &Incoming<'_>) -> (Reply, Option<Identity>) {
    let Some(proxy) = shared.config.proxy.as_ref() else {
        return (Reply::not_found(), None);
    };
    let segs = segments(req.path);
    let rest: &[&str] = if proxy.virtual_proxy_prefix.is_empty() {
        &segs
    } else {
        match segs.split_first() {
            Some((first, rest)) if first.eq_ignore_ascii_case(&proxy.virtual_proxy_prefix) => rest,
            _ => return (Reply::not_found(), None),
        }
    };
    let query = match Query::parse(req.raw_query) {
        Ok(q) => q,
        Err(reply) => return (reply, None),
    };
    let session = cookie(req.headers, &proxy.session_cookie_name)
        .and_then(|id| lock(&shared.proxy).sessions.get(id).cloned());
    match rest.split_first() {
        Some((first, _)) if first.eq_ignore_ascii_case("hub") => {
            hub_page(shared, proxy, &query, session)
        }
        Some((first, qrs_rest)) if first.eq_ignore_ascii_case("qrs") => {
            // The proxy turns away a request without a session before QRS sees it.
            let Some(session) = session else {
                return (Reply::text(StatusCode::UNAUTHORIZED, "Unauthorized"), None);
            };
            if !xrfkey_ok(&query, req.headers) {
                return (
                    Reply::text(StatusCode::FORBIDDEN, XSRF_MESSAGE),
                    Some(session.identity),
                );
            }
            let reply = qrs(shared, req, &session.identity, qrs_rest, &query);
            (reply, Some(session.identity))
        }
        _ => (Reply::not_found(), session.map(|s| s.identity)),
    }
}

/// `GET /{prefix}/hub/`: redeems a `qlikTicket` into a session cookie, or shows the hub to a session.
fn hub_page(
    shared: &Shared,
    proxy: &super::ProxyConfig,
    query: &Query,
    session: Option<Session>,
) -> (Reply, Option<Identity>) {
    let hub_path = if proxy.virtual_proxy_prefix.is_empty() {
        "/hub/".to_string()
    } else {
        format!("/{}/hub/", proxy.virtual_proxy_prefix)
    };
    if let Some(ticket) = query.get("qlikticket") {
        let now = shared.now();
        let mut state = lock(&shared.proxy);
        let Some(ticket) = state.tickets.remove(ticket) else {
            return (Reply::text(StatusCode::UNAUTHORIZED, "Unauthorized"), None);
        };
        if ticket.expires < now {
            return (Reply::text(StatusCode::UNAUTHORIZED, "Unauthorized"), None);
        }
        let _ = &ticket.target_id;
        let id = Uuid::new_v4().to_string();
        state.sessions.insert(
            id.clone(),
            Session {
                identity: ticket.identity.clone(),
                attributes: ticket.attributes,
            },
        );
        let cookie = format!(
            "{}={id}; Path=/; HttpOnly; Secure",
            proxy.session_cookie_name
        );
        let reply = Reply::empty(StatusCode::FOUND)
            .header(header::LOCATION, &hub_path)
            .header(header::SET_COOKIE, &cookie);
        return (reply, Some(ticket.identity));
    }
    match session {
        Some(s) => (
            Reply::bytes(
                StatusCode::OK,
                "text/html; charset=utf-8",
                b"<!doctype html><title>Qlik Sense hub</title>".to_vec(),
            ),
            Some(s.identity),
        ),
        None => (Reply::text(StatusCode::UNAUTHORIZED, "Unauthorized"), None),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// QPS

fn qps(shared: &Shared, req: &Incoming<'_>) -> Reply {
    let Some(proxy) = shared.config.proxy.as_ref() else {
        return Reply::not_found();
    };
    let query = match Query::parse(req.raw_query) {
        Ok(q) => q,
        Err(reply) => return reply,
    };
    if !xrfkey_ok(&query, req.headers) {
        return Reply::text(StatusCode::FORBIDDEN, XSRF_MESSAGE);
    }
    let segs = segments(req.path);
    let rest = match segs.split_first() {
        Some((first, rest)) if first.eq_ignore_ascii_case("qps") => rest,
        _ => return Reply::not_found(),
    };
    let rest: &[&str] = if proxy.virtual_proxy_prefix.is_empty() {
        rest
    } else {
        match rest.split_first() {
            Some((first, rest)) if first.eq_ignore_ascii_case(&proxy.virtual_proxy_prefix) => rest,
            _ => return Reply::not_found(),
        }
    };
    let lower: Vec<String> = rest.iter().map(|s| s.to_ascii_lowercase()).collect();
    let l: Vec<&str> = lower.iter().map(String::as_str).collect();
    let method = req.method;
    match l.as_slice() {
        ["session"] if method == Method::POST => create_session(shared, req.body),
        ["session", _] if method == Method::GET => {
            match lock(&shared.proxy).sessions.get(&decode_segment(rest[1])) {
                Some(s) => Reply::ok(&session_json(&decode_segment(rest[1]), s)),
                None => Reply::not_found(),
            }
        }
        ["session", _] if method == Method::DELETE => {
            match lock(&shared.proxy)
                .sessions
                .remove(&decode_segment(rest[1]))
            {
                Some(s) => Reply::ok(&session_json(&decode_segment(rest[1]), &s)),
                None => Reply::not_found(),
            }
        }
        ["ticket"] if method == Method::POST => create_ticket(shared, req.body),
        ["user", _, _] if method == Method::GET || method == Method::DELETE => {
            let who = Identity::new(decode_segment(rest[1]), decode_segment(rest[2]));
            let mut state = lock(&shared.proxy);
            let matching: Vec<String> = state
                .sessions
                .iter()
                .filter(|(_, s)| same_user(&s.identity, &who))
                .map(|(id, _)| id.clone())
                .collect();
            let mut out = Vec::new();
            for id in matching {
                let session = if method == Method::DELETE {
                    state.sessions.remove(&id)
                } else {
                    state.sessions.get(&id).cloned()
                };
                if let Some(s) = session {
                    out.push(session_json(&id, &s));
                }
            }
            Reply::ok(&out)
        }
        ["session"] | ["session", _] | ["ticket"] | ["user", _, _] => Reply::method_not_allowed(),
        _ => Reply::not_found(),
    }
}

fn same_user(a: &Identity, b: &Identity) -> bool {
    a.directory.eq_ignore_ascii_case(&b.directory) && a.user_id.eq_ignore_ascii_case(&b.user_id)
}

fn session_json(id: &str, s: &Session) -> serde_json::Value {
    serde_json::json!({
        "UserDirectory": s.identity.directory,
        "UserId": s.identity.user_id,
        "Attributes": s.attributes,
        "SessionId": id,
    })
}

/// Reads `UserDirectory`, `UserId` and `Attributes` (key names case-insensitive) from a QPS request body.
fn proxy_user(
    body: &[u8],
) -> Result<(Identity, serde_json::Map<String, serde_json::Value>), Reply> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| Reply::bad_request(&format!("Invalid request body: {e}")))?;
    let serde_json::Value::Object(map) = value else {
        return Err(Reply::bad_request(
            "Invalid request body: expected a JSON object",
        ));
    };
    let field = |name: &str| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let text = |name: &str| -> Result<String, Reply> {
        match field(name) {
            Some(serde_json::Value::String(s)) if !s.trim().is_empty() && !s.contains('\\') => {
                Ok(s)
            }
            _ => Err(Reply::bad_request(&format!("{name} is missing or invalid"))),
        }
    };
    let identity = Identity::new(text("UserDirectory")?, text("UserId")?);
    let mut rest = serde_json::Map::new();
    for name in ["Attributes", "SessionId", "TargetId"] {
        if let Some(v) = field(name) {
            rest.insert(name.to_string(), v);
        }
    }
    Ok((identity, rest))
}

fn create_session(shared: &Shared, body: &[u8]) -> Reply {
    let (identity, fields) = match proxy_user(body) {
        Ok(v) => v,
        Err(reply) => return reply,
    };
    let id = match fields.get("SessionId") {
        Some(serde_json::Value::String(s)) if !s.is_empty() => s.clone(),
        None | Some(serde_json::Value::Null) => Uuid::new_v4().to_string(),
        Some(_) => return Reply::bad_request("SessionId must be a string"),
    };
    let session = Session {
        identity,
        attributes: fields
            .get("Attributes")
            .cloned()
            .unwrap_or_else(|| serde_json::json!([])),
    };
    let json = session_json(&id, &session);
    lock(&shared.proxy).sessions.insert(id, session);
    Reply::json(StatusCode::CREATED, &json)
}

fn create_ticket(shared: &Shared, body: &[u8]) -> Reply {
    let (identity, fields) = match proxy_user(body) {
        Ok(v) => v,
        Err(reply) => return reply,
    };
    let ticket = Uuid::new_v4().simple().to_string();
    let attributes = fields
        .get("Attributes")
        .cloned()
        .unwrap_or_else(|| serde_json::json!([]));
    let target_id = fields
        .get("TargetId")
        .cloned()
        .unwrap_or(serde_json::Value::Null);
    let json = serde_json::json!({
        "UserDirectory": identity.directory,
        "UserId": identity.user_id,
        "Attributes": attributes,
        "Ticket": ticket,
        "TargetUri": serde_json::Value::Null,
        "TargetId": target_id,
    });
    let expires = super::site::shift(shared.now(), TICKET_LIFETIME);
    lock(&shared.proxy).tickets.insert(
        ticket,
        Ticket {
            identity,
            attributes,
            target_id,
            expires,
        },
    );
    Reply::json(StatusCode::CREATED, &json)
}

// ---------------------------------------------------------------------------------------------------------------
// QRS

fn about() -> serde_json::Value {
    serde_json::json!({
        "buildVersion": "34.25.2.0",
        "buildDate": "9/20/2013 10:09:00 AM",
        "databaseProvider": "Devart.Data.PostgreSql",
        "nodeType": 1,
        "sharedPersistence": true,
        "requiresBootstrap": false,
        "singleNodeOnly": false,
        "schemaPath": "About",
    })
}

fn qrs(
    shared: &Shared,
    req: &Incoming<'_>,
    identity: &Identity,
    segs: &[&str],
    query: &Query,
) -> Reply {
    let lower: Vec<String> = segs.iter().map(|s| s.to_ascii_lowercase()).collect();
    let l: Vec<&str> = lower.iter().map(String::as_str).collect();
    let method = req.method;
    let now = shared.now();
    let mut site = lock(&shared.site);
    site.expire(now);
    let get = method == Method::GET;
    match l.as_slice() {
        ["about"] if get => Reply::ok(&about()),
        ["license"] if get => Reply::ok(&site.license_json(now)),
        ["license", "accesstypeoverview"] if get => Reply::ok(&site.overview()),
        ["license", "accesstypeinfo"] if get => Reply::ok(&site.access_type_info()),
        ["about"]
        | ["license"]
        | ["license", "accesstypeoverview"]
        | ["license", "accesstypeinfo"] => Reply::method_not_allowed(),
        ["license", "loginaccessusage", rest @ ..] => {
            let p = query.flag("privileges");
            let rows: Vec<serde_json::Value> = site
                .login_usage()
                .map(|u| site.login_usage_json(u, p))
                .collect();
            json_collection(method, rest, &segs[2..], &rows, query, req.body)
        }
        ["license", kind, rest @ ..] => match SimAccessType::from_path_segment(kind) {
            Some(SimAccessType::Login) => {
                login_groups(shared, &mut site, req, identity, rest, &segs[2..], query)
            }
            Some(kind) => allocations(
                shared,
                &mut site,
                req,
                identity,
                kind,
                rest,
                &segs[2..],
                query,
                now,
            ),
            None => Reply::not_found(),
        },
        ["user", rest @ ..] => users(&mut site, req, identity, rest, &segs[1..], query, now),
        _ => Reply::not_found(),
    }
}

/// What a collection endpoint (`/x`, `/x/full`, `/x/count`, `/x/table`, `/x/{id}`) was asked for.
enum CollectionOp {
    Condensed,
    Full,
    Count,
    Table,
    One(Uuid),
}

fn collection_op(method: &Method, rest: &[&str], original: &[&str]) -> Result<CollectionOp, Reply> {
    let op = match rest {
        [] => CollectionOp::Condensed,
        ["full"] => CollectionOp::Full,
        ["count"] => CollectionOp::Count,
        ["table"] => CollectionOp::Table,
        [_] => match Uuid::try_parse(original.first().copied().unwrap_or_default()) {
            Ok(id) => CollectionOp::One(id),
            Err(_) => return Err(Reply::not_found()),
        },
        _ => return Err(Reply::not_found()),
    };
    let allowed = match op {
        CollectionOp::Table => method == Method::POST,
        _ => method == Method::GET,
    };
    if allowed {
        Ok(op)
    } else {
        Err(Reply::method_not_allowed())
    }
}

/// An entity type a collection endpoint serves.
trait Entity: Record + Copy {
    type Full: Serialize;
    type Condensed: Serialize;
    fn id(self) -> Uuid;
    fn full(self, privileges: bool) -> Self::Full;
    fn condensed(self, privileges: bool) -> Self::Condensed;
    /// The entity type name for a table response.
    fn table_type() -> &'static str;
}

impl<'a> Entity for AllocView<'a> {
    type Full = AllocationOut<'a>;
    type Condensed = IdCondensedOut;

    fn id(self) -> Uuid {
        self.a.id
    }

    fn full(self, privileges: bool) -> AllocationOut<'a> {
        AllocView::full(self, privileges)
    }

    fn condensed(self, privileges: bool) -> IdCondensedOut {
        AllocView::condensed(self, privileges)
    }

    fn table_type() -> &'static str {
        "LicenseAccessType"
    }
}

impl<'a> Entity for UserView<'a> {
    type Full = UserOut<'a>;
    type Condensed = UserCondensedOut<'a>;

    fn id(self) -> Uuid {
        self.u.id
    }

    fn full(self, privileges: bool) -> UserOut<'a> {
        UserView::full(self, privileges)
    }

    fn condensed(self, privileges: bool) -> UserCondensedOut<'a> {
        UserView::condensed(self, privileges)
    }

    fn table_type() -> &'static str {
        "User"
    }
}

/// A row already rendered as JSON (login access groups and usage: few rows).
#[derive(Clone, Copy)]
struct JsonRow<'a>(&'a serde_json::Value);

impl Record for JsonRow<'_> {
    fn known_path(_path: &[String]) -> bool {
        true
    }

    fn visit(&self, path: &[String], f: &mut dyn FnMut(super::filter::Val<'_>) -> bool) -> bool {
        self.0.visit(path, f)
    }
}

impl<'a> Entity for JsonRow<'a> {
    type Full = &'a serde_json::Value;
    type Condensed = serde_json::Value;

    fn id(self) -> Uuid {
        self.0
            .get("id")
            .and_then(|v| v.as_str())
            .and_then(|s| Uuid::try_parse(s).ok())
            .unwrap_or_default()
    }

    fn full(self, _privileges: bool) -> &'a serde_json::Value {
        self.0
    }

    fn condensed(self, _privileges: bool) -> serde_json::Value {
        let mut out = serde_json::Map::new();
        for key in ["id", "name", "privileges"] {
            if let Some(v) = self.0.get(key) {
                out.insert(key.to_string(), v.clone());
            }
        }
        serde_json::Value::Object(out)
    }

    fn table_type() -> &'static str {
        "Entity"
    }
}

/// Serves a read-only collection endpoint over `rows`.
fn serve_collection<E: Entity>(
    op: CollectionOp,
    rows: Vec<E>,
    query: &Query,
    body: &[u8],
) -> Reply {
    let privileges = query.flag("privileges");
    let filter = match Filter::parse::<E>(query.get("filter").unwrap_or("")) {
        Ok(f) => f,
        Err(e) => return e.into(),
    };
    let keep = |r: &E| filter.as_ref().is_none_or(|f| f.matches(r));
    match op {
        CollectionOp::One(id) => match rows.into_iter().find(|r| r.id() == id) {
            Some(r) => Reply::ok(&r.full(privileges)),
            None => Reply::not_found(),
        },
        CollectionOp::Count => {
            Reply::ok(&serde_json::json!({ "value": rows.iter().filter(|r| keep(r)).count() }))
        }
        CollectionOp::Condensed | CollectionOp::Full => {
            let mut selected: Vec<E> = rows.into_iter().filter(|r| keep(r)).collect();
            match OrderBy::parse::<E>(query.get("orderby").unwrap_or("")) {
                Ok(Some(order)) => order.sort(&mut selected),
                Ok(None) => {}
                Err(e) => return e.into(),
            }
            if matches!(op, CollectionOp::Full) {
                json_array(selected.into_iter().map(|r| r.full(privileges)))
            } else {
                json_array(selected.into_iter().map(|r| r.condensed(privileges)))
            }
        }
        CollectionOp::Table => {
            let selected: Vec<E> = rows.into_iter().filter(|r| keep(r)).collect();
            table(selected, query, body, privileges)
        }
    }
}

#[derive(serde::Deserialize)]
struct TableDefinition {
    #[serde(rename = "type", alias = "Type", default)]
    kind: Option<String>,
    #[serde(alias = "Columns", default)]
    columns: Vec<TableColumn>,
}

#[derive(serde::Deserialize)]
struct TableColumn {
    #[serde(alias = "Name", default)]
    name: String,
    #[serde(rename = "columnType", alias = "ColumnType", default)]
    column_type: Option<String>,
    #[serde(alias = "Definition", default)]
    definition: Option<String>,
}

/// `POST .../table`: columns of type `Property` are read from the entity by their dotted `definition`;
/// `Function` and `List` columns are answered with null. `take=0` (or no `take`) means all rows.
fn table<E: Entity>(mut rows: Vec<E>, query: &Query, body: &[u8], privileges: bool) -> Reply {
    let def: TableDefinition = match serde_json::from_slice(body) {
        Ok(d) => d,
        Err(e) => return Reply::bad_request(&format!("Invalid table definition: {e}")),
    };
    let paths: Vec<Option<Vec<String>>> = def
        .columns
        .iter()
        .map(|c| {
            let is_property = c
                .column_type
                .as_deref()
                .is_none_or(|t| t.eq_ignore_ascii_case("property"));
            let definition = c.definition.as_deref().unwrap_or(&c.name);
            is_property.then(|| definition.split('.').map(str::to_ascii_lowercase).collect())
        })
        .collect();
    let number = |name: &str| -> Result<usize, Reply> {
        match query.get(name) {
            None | Some("") => Ok(0),
            Some(v) => v.parse::<usize>().map_err(|_| {
                Reply::bad_request(&format!("Invalid value for parameter {name}: '{v}'"))
            }),
        }
    };
    let (skip, take) = match (number("skip"), number("take")) {
        (Ok(s), Ok(t)) => (s, t),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    if let Some(column) = query.get("sortcolumn").filter(|c| !c.is_empty()) {
        let ascending = query
            .get("orderascending")
            .is_none_or(|v| !v.eq_ignore_ascii_case("false"));
        let path = def
            .columns
            .iter()
            .zip(&paths)
            .find(|(c, _)| c.name.eq_ignore_ascii_case(column))
            .and_then(|(_, p)| p.clone())
            .unwrap_or_else(|| column.split('.').map(str::to_ascii_lowercase).collect());
        if !E::known_path(&path) {
            return Reply::bad_request(&format!("Unknown sort column '{column}'"));
        }
        OrderBy::single(path, ascending).sort(&mut rows);
    }
    let page = rows
        .into_iter()
        .skip(skip)
        .take(if take == 0 { usize::MAX } else { take });
    let mut table_rows = Vec::new();
    for row in page {
        let value = match serde_json::to_value(row.full(privileges)) {
            Ok(v) => v,
            Err(e) => {
                return Reply::text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format!("serialization failed: {e}"),
                );
            }
        };
        let cells: Vec<serde_json::Value> = paths
            .iter()
            .map(|p| {
                p.as_ref()
                    .map_or(serde_json::Value::Null, |p| json_at(&value, p))
            })
            .collect();
        table_rows.push(cells);
    }
    Reply::ok(&serde_json::json!({
        "id": Uuid::new_v4(),
        "type": def.kind.unwrap_or_else(|| E::table_type().to_string()),
        "columnNames": def.columns.iter().map(|c| c.name.clone()).collect::<Vec<_>>(),
        "rows": table_rows,
    }))
}

/// The value at a lower-cased dotted path (keys matched case-insensitively); arrays map over their elements.
fn json_at(value: &serde_json::Value, path: &[String]) -> serde_json::Value {
    use serde_json::Value;
    match (value, path.split_first()) {
        (v, None) => v.clone(),
        (Value::Array(items), Some(_)) => {
            Value::Array(items.iter().map(|i| json_at(i, path)).collect())
        }
        (Value::Object(map), Some((head, rest))) => map
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(head))
            .map_or(Value::Null, |(_, v)| json_at(v, rest)),
        _ => Value::Null,
    }
}

fn json_collection(
    method: &Method,
    rest: &[&str],
    original: &[&str],
    rows: &[serde_json::Value],
    query: &Query,
    body: &[u8],
) -> Reply {
    let op = match collection_op(method, rest, original) {
        Ok(op) => op,
        Err(reply) => return reply,
    };
    serve_collection(op, rows.iter().map(JsonRow).collect(), query, body)
}

fn login_groups(
    shared: &Shared,
    site: &mut SiteState,
    req: &Incoming<'_>,
    identity: &Identity,
    rest: &[&str],
    original: &[&str],
    query: &Query,
) -> Reply {
    if req.method == Method::DELETE {
        let id = match delete_target(rest, original) {
            Ok(id) => id,
            Err(reply) => return reply,
        };
        // A login access type is a group: deleting it removes the whole group and its passes.
        return match site.delete_login_group(id) {
            Some(_) => {
                shared.record_deletion(RecordedDeletion {
                    at: shared.now(),
                    listener: req.listener,
                    access_type: SimAccessType::Login,
                    allocation_id: id,
                    user: None,
                    user_directory: String::new(),
                    user_id: String::new(),
                    outcome: DeletionOutcome::Removed,
                    requested_by: Some(identity.clone()),
                });
                Reply::empty(StatusCode::NO_CONTENT)
            }
            None => Reply::not_found(),
        };
    }
    let op = match collection_op(req.method, rest, original) {
        Ok(op) => op,
        Err(reply) => return reply,
    };
    let p = query.flag("privileges");
    let rows: Vec<serde_json::Value> = site
        .login_groups()
        .map(|g| site.login_group_json(g, p))
        .collect();
    serve_collection(op, rows.iter().map(JsonRow).collect(), query, req.body)
}

#[allow(clippy::too_many_arguments)]
fn allocations(
    shared: &Shared,
    site: &mut SiteState,
    req: &Incoming<'_>,
    identity: &Identity,
    kind: SimAccessType,
    rest: &[&str],
    original: &[&str],
    query: &Query,
    now: Timestamp,
) -> Reply {
    if req.method == Method::DELETE {
        let id = match delete_target(rest, original) {
            Ok(id) => id,
            Err(reply) => return reply,
        };
        let by = identity.to_string();
        return match site.deallocate(kind, id, now, &by) {
            Some((outcome, rec)) => {
                let user = rec.user.and_then(|u| site.user(u));
                let (user_directory, user_id) = match (user, &rec.deleted_user) {
                    (Some(u), _) => (u.user_directory.clone(), u.user_id.clone()),
                    (None, Some((d, i))) => (d.clone(), i.clone()),
                    (None, None) => (String::new(), String::new()),
                };
                shared.record_deletion(RecordedDeletion {
                    at: now,
                    listener: req.listener,
                    access_type: kind,
                    allocation_id: id,
                    user: rec.user,
                    user_directory,
                    user_id,
                    outcome,
                    requested_by: Some(identity.clone()),
                });
                Reply::empty(StatusCode::NO_CONTENT)
            }
            None => Reply::not_found(),
        };
    }
    if req.method == Method::POST && rest.is_empty() {
        return create_allocation(
            site,
            kind,
            req.body,
            identity,
            now,
            query.flag("privileges"),
        );
    }
    let op = match collection_op(req.method, rest, original) {
        Ok(op) => op,
        Err(reply) => return reply,
    };
    let site: &SiteState = site;
    let rows: Vec<AllocView<'_>> = site.allocations(kind).map(|a| site.alloc_view(a)).collect();
    serve_collection(op, rows, query, req.body)
}

/// `POST /qrs/license/<type>accesstype` with `{"user": {"id": ...}}`: allocates a seat, as QMC's "Allocate" does.
fn create_allocation(
    site: &mut SiteState,
    kind: SimAccessType,
    body: &[u8],
    identity: &Identity,
    now: Timestamp,
    privileges: bool,
) -> Reply {
    let value: serde_json::Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return Reply::bad_request(&format!("Invalid request body: {e}")),
    };
    let Some(user) = value
        .get("user")
        .and_then(|u| u.get("id"))
        .and_then(|id| id.as_str())
        .and_then(|id| Uuid::try_parse(id).ok())
    else {
        return Reply::bad_request("user.id is missing or not a GUID");
    };
    if site.user(user).is_none() {
        return Reply::bad_request("The user does not exist");
    }
    if site.allocations(kind).any(|a| a.user == Some(user)) {
        return Reply::bad_request("The user already has this access type");
    }
    let id = site.new_id();
    let inserted = site.insert_allocation(AllocRec {
        id,
        kind,
        user: Some(user),
        deleted_user: None,
        created: now,
        modified: now,
        modified_by: identity.to_string(),
        last_used: LastUsed::Never,
        excess: false,
        quarantined: false,
        quarantine_end: None,
    });
    if let Err(e) = inserted {
        return Reply::bad_request(&e.to_string());
    }
    match site.allocation(id) {
        Some(a) => Reply::json(StatusCode::CREATED, &site.alloc_view(a).full(privileges)),
        None => Reply::text(StatusCode::INTERNAL_SERVER_ERROR, "allocation vanished"),
    }
}

/// The id of `DELETE .../{id}`: a DELETE on the collection is not allowed, anything else is not found.
fn delete_target(rest: &[&str], original: &[&str]) -> Result<Uuid, Reply> {
    let [_] = rest else {
        return Err(if rest.is_empty() {
            Reply::method_not_allowed()
        } else {
            Reply::not_found()
        });
    };
    Uuid::try_parse(original.first().copied().unwrap_or_default()).map_err(|_| Reply::not_found())
}

fn users(
    site: &mut SiteState,
    req: &Incoming<'_>,
    identity: &Identity,
    rest: &[&str],
    original: &[&str],
    query: &Query,
    now: Timestamp,
) -> Reply {
    if req.method == Method::DELETE {
        let id = match delete_target(rest, original) {
            Ok(id) => id,
            Err(reply) => return reply,
        };
        return match site.delete_user(id, millis(now), &identity.to_string()) {
            Ok(()) => Reply::empty(StatusCode::NO_CONTENT),
            Err(_) => Reply::not_found(),
        };
    }
    let op = match collection_op(req.method, rest, original) {
        Ok(op) => op,
        Err(reply) => return reply,
    };
    let site: &SiteState = site;
    let rows: Vec<UserView<'_>> = site.users().map(|u| site.user_view(u)).collect();
    serve_collection(op, rows, query, req.body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qlik_user_header_variants() {
        let want = Some(Identity::new("INTERNAL", "sa_repository"));
        assert_eq!(
            parse_qlik_user("UserDirectory=INTERNAL; UserId=sa_repository"),
            want
        );
        assert_eq!(
            parse_qlik_user("UserDirectory=INTERNAL;UserId=sa_repository"),
            want
        );
        assert_eq!(
            parse_qlik_user("userdirectory = INTERNAL ; USERID = sa_repository ;"),
            want
        );
        assert_eq!(
            parse_qlik_user("UserDirectory=CORP%20EU; UserId=j%C3%B8rn"),
            Some(Identity::new("CORP EU", "jørn"))
        );
        assert_eq!(parse_qlik_user("UserDirectory=INTERNAL"), None);
        assert_eq!(parse_qlik_user("INTERNAL\\sa_repository"), None);
        assert_eq!(parse_qlik_user("UserDirectory=; UserId=x"), None);
    }

    #[test]
    fn query_decoding_and_stray_ampersand() {
        let q = Query::parse("Xrfkey=abc&filter=name+eq+%27a%2Bb%27")
            .unwrap_or_else(|_| panic!("parses"));
        assert_eq!(q.get("xrfkey"), Some("abc"));
        assert_eq!(q.get("FILTER"), Some("name eq 'a+b'"));
        assert!(Query::parse("xrfkey=abc&&filter=x").is_err());
        assert!(Query::parse("").is_ok());
    }

    #[test]
    fn json_path_extraction() {
        let v =
            serde_json::json!({"User": {"userId": "a"}, "tags": [{"name": "x"}, {"name": "y"}]});
        assert_eq!(json_at(&v, &["user".into(), "userid".into()]), "a");
        assert_eq!(
            json_at(&v, &["tags".into(), "name".into()]),
            serde_json::json!(["x", "y"])
        );
        assert_eq!(json_at(&v, &["missing".into()]), serde_json::Value::Null);
    }
}
