//! QRS's answers: JSON, text and empty replies with the headers QRS sends.

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::ser::Serializer as _;

use crate::filter::FilterError;

pub(super) struct Reply {
    pub(super) status: StatusCode,
    content_type: Option<&'static str>,
    headers: Vec<(header::HeaderName, HeaderValue)>,
    body: Bytes,
}

impl Reply {
    pub(super) fn bytes(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Reply {
        Reply {
            status,
            content_type: Some(content_type),
            headers: Vec::new(),
            body: Bytes::from(body),
        }
    }

    pub(super) fn json(status: StatusCode, value: &impl Serialize) -> Reply {
        match serde_json::to_vec(value) {
            Ok(body) => Reply::bytes(status, "application/json; charset=utf-8", body),
            Err(e) => Reply::text(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("serialization failed: {e}"),
            ),
        }
    }

    pub(super) fn ok(value: &impl Serialize) -> Reply {
        Reply::json(StatusCode::OK, value)
    }

    pub(super) fn text(status: StatusCode, text: &str) -> Reply {
        Reply::bytes(
            status,
            "text/plain; charset=utf-8",
            text.as_bytes().to_vec(),
        )
    }

    /// The same answer with `field` set (or removed) in every object of its JSON.
    pub(super) fn rewritten(self, field: &str, value: Option<&serde_json::Value>) -> Reply {
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

    pub(super) fn empty(status: StatusCode) -> Reply {
        Reply {
            status,
            content_type: None,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    pub(super) fn not_found() -> Reply {
        Reply::text(StatusCode::NOT_FOUND, "Not Found")
    }

    pub(super) fn method_not_allowed() -> Reply {
        Reply::text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
    }

    pub(super) fn bad_request(text: &str) -> Reply {
        Reply::text(StatusCode::BAD_REQUEST, text)
    }

    pub(super) fn header(mut self, name: header::HeaderName, value: &str) -> Reply {
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
pub(super) fn json_array<T: Serialize>(items: impl IntoIterator<Item = T>) -> Reply {
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

pub(super) fn rewrite_field(
    object: &mut serde_json::Value,
    path: &[&str],
    value: Option<&serde_json::Value>,
) {
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
