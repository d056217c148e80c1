//! The Qlik Proxy Service's session and ticket API, and the hub that redeems them.

use std::collections::HashMap;

use axum::http::{Method, StatusCode, header};
use jiff::{SignedDuration, Timestamp};
use uuid::Uuid;

use crate::{Identity, Shared, lock};

use super::checks::*;
use super::reply::*;
use super::*;

/// A QPS ticket is valid for one minute.
const TICKET_LIFETIME: SignedDuration = SignedDuration::from_secs(60);

/// Sessions and tickets of the simulated proxy.
#[derive(Default)]
pub(crate) struct ProxyState {
    sessions: HashMap<String, Session>,
    tickets: HashMap<String, Ticket>,
}

#[derive(Clone)]
pub(super) struct Session {
    identity: Identity,
    attributes: serde_json::Value,
}

pub(super) struct Ticket {
    identity: Identity,
    attributes: serde_json::Value,
    target_id: serde_json::Value,
    expires: Timestamp,
}

pub(super) fn hub(shared: &Shared, req: &Incoming<'_>) -> (Reply, Option<Identity>) {
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
pub(super) fn hub_page(
    shared: &Shared,
    proxy: &crate::ProxyConfig,
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

pub(super) fn qps(shared: &Shared, req: &Incoming<'_>) -> Reply {
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

pub(super) fn same_user(a: &Identity, b: &Identity) -> bool {
    a.directory.eq_ignore_ascii_case(&b.directory) && a.user_id.eq_ignore_ascii_case(&b.user_id)
}

pub(super) fn session_json(id: &str, s: &Session) -> serde_json::Value {
    serde_json::json!({
        "UserDirectory": s.identity.directory,
        "UserId": s.identity.user_id,
        "Attributes": s.attributes,
        "SessionId": id,
    })
}

/// Reads `UserDirectory`, `UserId` and `Attributes` (key names case-insensitive) from a QPS request body.
pub(super) fn proxy_user(
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

pub(super) fn create_session(shared: &Shared, body: &[u8]) -> Reply {
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

pub(super) fn create_ticket(shared: &Shared, body: &[u8]) -> Reply {
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
    let expires = crate::time::shift(shared.now(), TICKET_LIFETIME);
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
