//! Setting up a QRS client: TLS with the policy's certificate, the identity QRS acts as (the `X-Qlik-User`
//! header, or a Qlik Proxy session as the original script used), and ending that session.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;

use super::{
    Connection, ProxySession, QrsClient, QrsError, RequestObserver, Route, Scrubber,
    ServerVerification, tls,
};
use crate::brake::Brake;
use crate::credentials::Credentials;

impl QrsClient {
    /// Build the client; in proxy mode, also create the QPS session.
    pub async fn connect(
        connection: &Connection,
        credentials: &Credentials,
        observer: Option<Arc<dyn RequestObserver>>,
    ) -> Result<Self, QrsError> {
        let http = http_client(connection, credentials)?;
        let xrfkey = credentials.xrfkey_or_random();

        match &connection.route {
            Route::Direct { repository_url } => {
                let header = format!(
                    "UserDirectory={}; UserId={}",
                    encode(&connection.user_directory),
                    encode(&connection.user_id)
                );
                Ok(Self {
                    http,
                    qrs_base: repository_url.clone(),
                    scrubber: Scrubber::new([xrfkey.as_str()]),
                    xrfkey,
                    auth_header: ("X-Qlik-User", header),
                    retry: connection.retry.clone(),
                    observer,
                    session: None,
                    brake: None,
                })
            }
            Route::Proxy {
                qps_url,
                hub_url,
                virtual_proxy_prefix,
                session_cookie_name,
            } => {
                let prefix = if virtual_proxy_prefix.is_empty() {
                    String::new()
                } else {
                    format!("/{virtual_proxy_prefix}")
                };
                let session_id = uuid::Uuid::new_v4().to_string();
                let mut client = Self {
                    http,
                    qrs_base: format!("{hub_url}{prefix}"),
                    scrubber: Scrubber::new([xrfkey.as_str(), session_id.as_str()]),
                    xrfkey,
                    auth_header: ("Cookie", format!("{session_cookie_name}={session_id}")),
                    retry: connection.retry.clone(),
                    observer,
                    session: None,
                    brake: None,
                };
                let create_url = format!("{qps_url}/qps{prefix}/session");
                client
                    .open_proxy_session(connection, create_url, session_id)
                    .await?;
                Ok(client)
            }
        }
    }

    /// Ask QPS for the session whose cookie this client already sends, so that every later request acts as
    /// the policy's user; `close` ends it.
    async fn open_proxy_session(
        &mut self,
        connection: &Connection,
        create_url: String,
        session_id: String,
    ) -> Result<(), QrsError> {
        let body = serde_json::json!({
            "UserDirectory": connection.user_directory,
            "UserId": connection.user_id,
            "Attributes": [],
            "SessionId": session_id,
        });
        let response = self
            .send(
                Method::POST,
                &create_url,
                "qps/session",
                &[],
                Some(&body),
                false,
            )
            .await?;
        self.check_status(Method::POST, "qps/session", response)
            .await?;
        self.session = Some(ProxySession {
            qps_session_url: format!("{create_url}/{session_id}"),
        });
        Ok(())
    }

    /// Start no request once the brake is pulled, and retry none while it is paused (see
    /// [`RunContext::brake`](crate::run::RunContext)).
    pub fn obey(&mut self, brake: Brake) {
        self.brake = Some(brake);
    }

    /// End the proxy session, if any. Best effort: a session left behind expires on its own.
    pub async fn close(mut self) {
        // Ending the session is owed to Qlik even when the run was stopped.
        self.brake = None;
        if let Some(session) = &self.session
            && let Err(e) = self
                .send(
                    Method::DELETE,
                    &session.qps_session_url,
                    "qps/session/{id}",
                    &[],
                    None,
                    false,
                )
                .await
        {
            tracing::debug!(error = %e, "could not end the Qlik proxy session");
        }
    }
}

/// The HTTPS client every request of the run goes through, trusting Qlik's server as the policy says and
/// presenting the policy's client certificate.
fn http_client(
    connection: &Connection,
    credentials: &Credentials,
) -> Result<reqwest::Client, QrsError> {
    if connection.verification == ServerVerification::Insecure {
        tracing::warn!(
            "tls.insecureSkipVerify is set: Qlik's server certificate is NOT verified; anyone on the network path can impersonate the site and read this certificate-authenticated session"
        );
    }
    let tls = tls::client_config(credentials, &connection.verification).map_err(QrsError::Setup)?;
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(connection.request_timeout)
        .connect_timeout(connection.request_timeout.min(Duration::from_secs(10)))
        .pool_max_idle_per_host(64)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!(
            "qlik-license-reclaimer/",
            env!("CARGO_PKG_VERSION")
        ))
        .build()
        .map_err(|e| QrsError::Setup(format!("HTTP client: {e}")))
}

/// Characters left as they are in `X-Qlik-User` values: the unreserved set of RFC 3986.
const USER_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encode a value for the `X-Qlik-User` header, as QPS expects (UTF-8, URL-encoded).
pub(super) fn encode(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, USER_VALUE).to_string()
}
