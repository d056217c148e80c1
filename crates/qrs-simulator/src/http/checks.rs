//! Query strings and the checks every QRS and QPS request passes: the xrfkey pair, the `X-Qlik-User` identity,
//! the session cookie.

use axum::http::{HeaderMap, header};

use crate::Identity;

use super::reply::*;

/// Decoded query parameters.
pub(super) struct Query {
    pub(super) pairs: Vec<(String, String)>,
}

impl Query {
    /// Parses a raw query. An empty parameter (a stray `&`) is QRS's `400 Missing parameter value(s)`.
    pub(super) fn parse(raw: &str) -> Result<Query, Reply> {
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

    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(super) fn flag(&self, name: &str) -> bool {
        self.get(name)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }
}

/// Form-style decoding: `+` is a space, `%XX` a byte (clients such as Qlik-Cli encode with `UrlEncode`).
pub(super) fn decode(s: &str) -> String {
    let plus = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus)
        .decode_utf8_lossy()
        .into_owned()
}

/// Percent-decoding of a path segment (`+` stays a plus).
pub(super) fn decode_segment(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

pub(super) fn xrfkey_ok(query: &Query, headers: &HeaderMap) -> bool {
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

pub(super) fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| k.trim() == name)
        .map(|(_, v)| v.trim())
}
