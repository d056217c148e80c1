//! The transport under every QRS call: the xrfkey and the identity on each request, retries of connection errors
//! and 5xx (none once the run's brake is pulled), status codes turned into errors that say what to fix, and
//! answers read within their bounds. Everything Qlik's text repeats is scrubbed first.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;

use super::answer::{self, ListLimits, ReadError, error_chain};
use super::{
    ERROR_PAGE_BYTES, FinishedRequest, LIST_ANSWER_BYTES, LIST_ELEMENT_BYTES, QLIK_TEXT_CHARS,
    QrsClient, QrsError, SMALL_ANSWER_BYTES,
};
use crate::brake::Brake;

tokio::task_local! {
    /// Set while a step in flight is finished: its requests start even once the brake is pulled.
    static FINISHING: bool;
}

/// Runs `step` as the end of something already under way that a stop must not cut short (reading back what a bulk
/// DELETE in flight did, so that every seat it took is reported): its requests start, and are retried, even once the
/// run's brake is pulled or paused.
pub async fn finishing<F: std::future::Future>(step: F) -> F::Output {
    FINISHING.scope(true, step).await
}

impl QrsClient {
    /// GET a QRS endpoint, with retries; a success answer, still unread, and its URL for messages.
    pub(super) async fn get_ok(
        &self,
        endpoint: &str,
        query: &[(&str, String)],
    ) -> Result<(String, reqwest::Response), QrsError> {
        let url = format!("{}/qrs/{endpoint}", self.qrs_base);
        let response = self
            .send(Method::GET, &url, endpoint, query, None, true)
            .await?;
        let response = self.check_status(Method::GET, endpoint, response).await?;
        Ok((url, response))
    }

    pub(super) async fn get_json<T: DeserializeOwned>(
        &self,
        endpoint: &str,
        query: &[(&str, String)],
    ) -> Result<T, QrsError> {
        let (url, response) = self.get_ok(endpoint, query).await?;
        let body = answer::read_capped(response, SMALL_ANSWER_BYTES)
            .await
            .map_err(|e| self.read_error(endpoint, &url, e))?;
        serde_json::from_slice(&body).map_err(|e| QrsError::Nonsense {
            method: Method::GET,
            endpoint: endpoint.to_string(),
            detail: format!("invalid JSON ({e})"),
        })
    }

    /// A JSON list of at most `rows` elements, parsed as it arrives and converted element by element.
    pub(super) async fn get_list<T: DeserializeOwned, U: Send + 'static>(
        &self,
        endpoint: &str,
        query: &[(&str, String)],
        (rows, rows_why): (usize, &'static str),
        what: &'static str,
        convert: impl answer::Convert<T, U>,
    ) -> Result<Vec<U>, QrsError> {
        let (url, response) = self.get_ok(endpoint, query).await?;
        let limits = ListLimits {
            bytes: LIST_ANSWER_BYTES,
            element_bytes: LIST_ELEMENT_BYTES,
            rows,
            rows_why,
        };
        answer::read_list(response, limits, what, convert)
            .await
            .map_err(|e| self.read_error(endpoint, &url, e))
    }

    pub(super) fn read_error(&self, endpoint: &str, url: &str, error: ReadError) -> QrsError {
        match error {
            ReadError::Transport(detail) => QrsError::Unreachable {
                method: Method::GET,
                endpoint: endpoint.to_string(),
                url: strip_query(url),
                detail: format!(
                    "the answer was cut off: {}",
                    self.scrubber.scrub(&detail, QLIK_TEXT_CHARS)
                ),
            },
            other => QrsError::Nonsense {
                method: Method::GET,
                endpoint: endpoint.to_string(),
                detail: self.scrubber.scrub(&other.to_string(), QLIK_TEXT_CHARS),
            },
        }
    }

    /// Turn a non-success answer into an error that says what to fix. Qlik's text is repeated only scrubbed
    /// of the secrets this client sent, and cut short: error pages often echo the request.
    pub(super) async fn check_status(
        &self,
        method: Method,
        endpoint: &str,
        response: reqwest::Response,
    ) -> Result<reqwest::Response, QrsError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = answer::read_prefix(response, ERROR_PAGE_BYTES).await;
        let body = String::from_utf8_lossy(&body);
        let snippet = self.scrubber.scrub(body.trim(), QLIK_TEXT_CHARS);
        let endpoint = endpoint.to_string();
        Err(match status {
            StatusCode::FORBIDDEN if body.contains("XSRF") => QrsError::Refused {
                method,
                endpoint,
                status,
                detail: format!(
                    "{snippet} (the xrfkey was rejected: check the Secret's xrfkey, 16 of [0-9A-Za-z])"
                ),
            },
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::FOUND => {
                QrsError::Refused {
                    method,
                    endpoint,
                    status,
                    detail: format!(
                        "{} (check that the certificate is the site's exported client certificate and that site.user may administer licences)",
                        if snippet.is_empty() {
                            "no details"
                        } else {
                            &snippet
                        }
                    ),
                }
            }
            _ => QrsError::Status {
                method,
                endpoint,
                status,
                detail: if snippet.is_empty() {
                    "no details".into()
                } else {
                    snippet
                },
            },
        })
    }

    /// Send with the xrfkey and the identity, retrying connection errors and 5xx when `retry` is set.
    pub(super) async fn send(
        &self,
        method: Method,
        url: &str,
        endpoint: &str,
        query: &[(&str, String)],
        body: Option<&serde_json::Value>,
        retry: bool,
    ) -> Result<reqwest::Response, QrsError> {
        let attempts = if retry { self.retry.attempts.max(1) } else { 1 };
        let mut attempt = 0;
        // Once the run's brake is pulled no request starts (the ones in flight finish): a run told to stop while
        // it reads a large site ends within one request, not after thousands. What finishes a step in flight is
        // the exception ([`finishing`]).
        let finishing = FINISHING.try_with(|f| *f).unwrap_or(false);
        if let Some(reason) = self.brake.as_ref().and_then(Brake::stopped)
            && !finishing
        {
            return Err(QrsError::Stopped {
                method,
                endpoint: endpoint.to_string(),
                reason,
            });
        }
        loop {
            let started = Instant::now();
            let mut request = self
                .http
                .request(method.clone(), url)
                .query(query)
                .query(&[("xrfkey", self.xrfkey.as_str())])
                .header("X-Qlik-Xrfkey", self.xrfkey.as_str())
                .header(self.auth_header.0, &self.auth_header.1);
            if let Some(body) = body {
                request = request.json(body);
            }
            let outcome = request.send().await;
            let status = outcome.as_ref().ok().map(|r| r.status().as_u16());
            self.observe(&method, endpoint, status, started.elapsed());
            attempt += 1;
            let retryable = match &outcome {
                Ok(response) => response.status().is_server_error(),
                Err(_) => true,
            };
            let unreachable = |e: reqwest::Error| QrsError::Unreachable {
                method: method.clone(),
                endpoint: endpoint.to_string(),
                url: strip_query(url),
                // The URL carries the xrfkey, which may come from the Secret: never repeat it.
                detail: self
                    .scrubber
                    .scrub(&error_chain(&e.without_url()), QLIK_TEXT_CHARS),
            };
            let stopped = self.brake.as_ref().is_some_and(|b| b.stopped().is_some());
            if !retryable || attempt >= attempts || (stopped && !finishing) {
                return outcome.map_err(unreachable);
            }
            let delay = self.retry.delay(attempt - 1);
            tracing::debug!(%method, endpoint, attempt, ?status, ?delay, "retrying QRS request");
            tokio::time::sleep(delay).await;
            // A retry is a new attempt: the brake is looked at as it is about to start (a stop during the backoff
            // holds), and it waits while the brake is paused, like any deallocation. What finishes a step in
            // flight is retried all the same.
            if let Some(brake) = &self.brake
                && !finishing
                && brake.proceed().await.is_err()
            {
                return outcome.map_err(unreachable);
            }
        }
    }

    pub(super) fn observe(
        &self,
        method: &Method,
        endpoint: &str,
        status: Option<u16>,
        duration: Duration,
    ) {
        if let Some(observer) = &self.observer {
            observer.observe(&FinishedRequest {
                method: method.clone(),
                endpoint: endpoint.to_string(),
                status,
                duration,
            });
        }
    }
}

pub(super) fn strip_query(url: &str) -> String {
    url.split('?').next().unwrap_or(url).to_string()
}
