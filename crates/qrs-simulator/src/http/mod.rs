//! Request handling for the three listeners: checks (xrfkey, identity, session), fault injection and recording
//! here; QRS collections in [`qrs`], QPS sessions and the hub in [`proxy`].

mod checks;
mod collections;
mod proxy;
mod qrs;
mod reply;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::Notify;

use crate::{Fault, Identity, Listener, RecordedArrival, RecordedRequest, Shared};

use self::checks::*;
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

/// How long a reset request's handler waits for its connection to go before giving up. Over HTTP/2 each request
/// runs in its own task, which must not outlive the dropped connection for long.
const RESET_GRACE: Duration = Duration::from_secs(10);

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
