//! Request handling for the three listeners: checks (xrfkey, identity, session), fault injection and recording
//! here; QRS collections in [`qrs`], QPS sessions and the hub in [`proxy`].

mod checks;
mod collections;
mod faults;
mod proxy;
mod qrs;
mod reply;
mod selections;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Extension, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::sync::Notify;

use crate::{Fault, Identity, Listener, RecordedArrival, RecordedRequest, Shared};

use self::checks::*;
use self::faults::answer_with_fault;
use self::proxy::*;
use self::qrs::*;
use self::reply::*;

pub(crate) use checks::parse_qlik_user;
pub(crate) use proxy::ProxyState;

const XSRF_MESSAGE: &str = "XSRF prevention check failed. Possible XSRF discovered.";
const BODY_LIMIT: usize = 16 * 1024 * 1024;

/// Per-connection context, inserted into every request by the connection's service.
#[derive(Clone)]
pub(crate) struct ConnCtx {
    pub(crate) listener: Listener,
    /// Notified by a [`Fault::Reset`]: the connection task then drops the connection without answering.
    pub(crate) abort: Arc<Notify>,
    /// Notified by the connection task once the connection is gone.
    pub(crate) closed: Arc<Notify>,
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
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

    // "GET /path?query HTTP/1.1": a proxy in front of the site refuses a longer line before QRS sees it.
    // The target in origin form (HTTP/2 requests carry scheme and authority apart).
    let target = parts.uri.path_and_query().map_or(1, |t| t.as_str().len());
    let request_line = method.as_str().len() + " ".len() + target + " HTTP/1.1".len();
    if request_line > shared.config.max_request_line {
        let reply = Reply::text(StatusCode::URI_TOO_LONG, "414 Request-URI Too Large");
        shared.record_request(RecordedRequest {
            at,
            listener: ctx.listener,
            method: method.to_string(),
            path,
            query: Vec::new(),
            status: reply.status.as_u16(),
            user: None,
            fault: None,
        });
        return reply.into_response();
    }

    let latency = shared.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }

    let mut record = RecordedRequest {
        at,
        listener: ctx.listener,
        method: method.to_string(),
        path: path.clone(),
        query: recorded_query(&raw_query),
        status: 0,
        user: None,
        fault: None,
    };

    let fault = shared.take_fault(method.as_str(), &path);
    if let Some(fault) = &fault {
        record.fault = Some(fault.clone());
        record = match answer_with_fault(fault, record, &shared, &ctx, &parts.headers, &raw_query)
            .await
        {
            Ok(record) => record,
            Err(answered) => return answered,
        };
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
        fail_after: match &fault {
            Some(Fault::FailAfter { deletions, status }) => Some((*deletions, *status)),
            _ => None,
        },
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

/// The query as recorded: parsed as QRS parses it, or split plainly when QRS would refuse it.
fn recorded_query(raw_query: &str) -> Vec<(String, String)> {
    Query::parse(raw_query)
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
        })
}

struct Incoming<'a> {
    method: &'a Method,
    path: &'a str,
    raw_query: &'a str,
    headers: &'a HeaderMap,
    body: &'a [u8],
    listener: Listener,
    /// [`Fault::FailAfter`]: how many deletions the handler may make, and the status it then answers.
    fail_after: Option<(usize, u16)>,
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
