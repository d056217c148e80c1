//! The faults a test injects: a [`FaultRule`] selects requests, a [`Fault`] says what becomes of their answer
//! (`http/faults.rs` applies it).

use std::time::Duration;

/// Selects requests and says how to answer them instead of the normal handling.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRule {
    /// HTTP method to match (case-insensitive); `None` matches any.
    pub method: Option<String>,
    /// Substring the path must contain (case-insensitive); `None` matches any.
    pub path_contains: Option<String>,
    pub fault: Fault,
    /// How many matching requests to fault; `None` faults every one.
    pub times: Option<usize>,
}

impl FaultRule {
    /// Faults every request with `fault`.
    pub fn always(fault: Fault) -> FaultRule {
        FaultRule {
            method: None,
            path_contains: None,
            fault,
            times: None,
        }
    }

    /// Rewrites `field` in every answer (or every element of a list answer) to `value`; `None` removes it.
    pub fn rewrite(field: impl Into<String>, value: Option<serde_json::Value>) -> FaultRule {
        FaultRule::always(Fault::Rewrite {
            field: field.into(),
            value,
        })
    }

    /// Only requests with this method.
    pub fn method(mut self, method: impl Into<String>) -> FaultRule {
        self.method = Some(method.into());
        self
    }

    /// Only requests whose path contains `fragment`.
    pub fn path_contains(mut self, fragment: impl Into<String>) -> FaultRule {
        self.path_contains = Some(fragment.into());
        self
    }

    /// Only the next `n` matching requests.
    pub fn times(mut self, n: usize) -> FaultRule {
        self.times = Some(n);
        self
    }
}

/// An injected failure.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Answer with this status and a plain-text body.
    Status(u16),
    /// Close the connection without any response.
    Reset,
    /// Answer 200 with a truncated JSON body.
    MalformedJson,
    /// Wait this long, then answer normally.
    Delay(Duration),
    /// Answer with this status and an HTML error page that repeats the request: its URL with the query (and so
    /// the xrfkey) and its headers (the session cookie among them), as proxies and Qlik's own pages do.
    EchoRequest(u16),
    /// Answer normally, then rewrite the JSON: in every object of the answer (each element of a list, or the
    /// object itself) set `field` (a dotted path such as `user.id`) to `value`, or remove it when `None`.
    Rewrite {
        field: String,
        value: Option<serde_json::Value>,
    },
    /// Answer 200 with a JSON list of this many bytes, streamed: copies of a well-formed allocation, then one
    /// string that fills the rest when `one_huge_element` is set.
    Huge { bytes: u64, one_huge_element: bool },
    /// Handle the request, but stop after `deletions` deletions and answer `status`: a selection's DELETE that
    /// fails part-way (other requests are answered `status` without being handled).
    FailAfter { deletions: usize, status: u16 },
}
