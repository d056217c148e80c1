//! Faults injected into answers ([`crate::FaultRule`]): statuses, resets, delays, error pages that echo the
//! request, malformed and huge JSON, rewritten fields.

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::ConnCtx;
use super::reply::Reply;
use crate::{Fault, RecordedRequest, Shared};

/// How long a reset request's handler waits for its connection to go before giving up. Over HTTP/2 each request
/// runs in its own task, which must not outlive the dropped connection for long.
const RESET_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Applies a fault. `Err` holds the answer when the fault answers in place of the site (the request is then
/// recorded); `Ok` hands the record back when the site still answers (after a delay, or to be rewritten).
pub(super) async fn answer_with_fault(
    fault: &Fault,
    mut record: RecordedRequest,
    shared: &Shared,
    ctx: &ConnCtx,
    headers: &HeaderMap,
    raw_query: &str,
) -> Result<RecordedRequest, Response> {
    let reply = match fault {
        Fault::Delay(d) => {
            tokio::time::sleep(*d).await;
            return Ok(record);
        }
        // The handler stops part-way (only a selection's DELETE deletes several items; others are not handled).
        Fault::FailAfter { .. } => return Ok(record),
        Fault::Rewrite { .. } => return Ok(record),
        Fault::Reset => return Err(reset(record, shared, ctx).await),
        Fault::Status(code) => status_page(status_of(*code)),
        Fault::EchoRequest(code) => echo_page(status_of(*code), &record.path, raw_query, headers),
        Fault::Huge {
            bytes,
            one_huge_element,
        } => {
            record.status = 200;
            shared.record_request(record);
            return Err(huge_answer(*bytes, *one_huge_element));
        }
        Fault::MalformedJson => malformed_json(),
    };
    record.status = reply.status.as_u16();
    shared.record_request(record);
    Err(reply.into_response())
}

fn status_of(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// Records the request (with no status: nothing is sent) and has the connection task drop the connection.
async fn reset(record: RecordedRequest, shared: &Shared, ctx: &ConnCtx) -> Response {
    shared.record_request(record);
    let closed = ctx.closed.notified();
    tokio::pin!(closed);
    // The close is announced only to waiters already registered, so this one registers before the abort goes out.
    closed.as_mut().enable();
    ctx.abort.notify_one();
    // The connection task drops the connection, so whatever this returns never goes out.
    let _ = tokio::time::timeout(RESET_GRACE, closed).await;
    Reply::empty(StatusCode::INTERNAL_SERVER_ERROR).into_response()
}

fn status_page(status: StatusCode) -> Reply {
    let reason = status.canonical_reason().unwrap_or("Error");
    Reply::text(
        status,
        &format!("{} {reason} (injected fault)", status.as_u16()),
    )
}

/// An error page that repeats the request, its query and headers included, as some proxies' pages do.
fn echo_page(status: StatusCode, path: &str, raw_query: &str, headers: &HeaderMap) -> Reply {
    let listed: String = headers
        .iter()
        .map(|(k, v)| format!("<li>{k}: {}</li>", v.to_str().unwrap_or("?")))
        .collect();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("qlik");
    let page = format!(
        "<html><body><h1>{} Error</h1><p>The request https://{host}{path}?{raw_query} failed.</p><ul>{listed}</ul></body></html>",
        status.as_u16(),
    );
    Reply::bytes(status, "text/html; charset=utf-8", page.into_bytes())
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

/// A 200 answer whose JSON breaks off inside the first element, as a connection cut mid-answer leaves it.
fn malformed_json() -> Reply {
    Reply::bytes(
        StatusCode::OK,
        "application/json; charset=utf-8",
        r#"[{"id":"3f2c7d9e-1b4a-4c8e-9f00-2d5e6a7b8c9d","createdDate":"2024-01-0"#
            .as_bytes()
            .to_vec(),
    )
}
