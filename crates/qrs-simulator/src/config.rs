//! How a simulated site is configured: seed and size, latency, certificate names and key format, the optional
//! proxy, the anonymous user and the ports, and the checks a configuration must pass before the simulator starts.

use std::time::Duration;

use crate::SimulatorError;

/// The sentinel QRS writes for a date that was never set (for example `lastUsed` of a never-used allocation).
pub const NEVER_USED_SENTINEL: &str = "1753-01-01T00:00:00.000Z";

/// Configuration of a simulated site.
#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    /// Seed of the synthetic site; the same seed gives the same site (relative to the start time).
    pub seed: u64,
    /// Number of synthetic users; 0 starts an empty site to be seeded through [`Simulator::site`](crate::Simulator::site).
    pub users: usize,
    /// Latency added to every request, on every listener.
    pub latency: Duration,
    /// DNS name in the server certificate. Qlik issues certificates for the short host name.
    pub server_name: String,
    /// Extra subject alternative names; a name that parses as an IP address becomes an IP SAN.
    pub extra_sans: Vec<String>,
    /// When set, a QPS listener (mutual TLS, like 4243) and a hub listener (server TLS only, like 443) also start.
    pub proxy: Option<ProxyConfig>,
    /// How the client key is written out.
    pub client_key_format: KeyFormat,
    /// The date QRS writes for "never": never-used `lastUsed`, unset `quarantineEnd`.
    pub never_used_sentinel: String,
    /// `(directory, user id)` acting on requests without `X-Qlik-User`.
    pub anonymous_user: (String, String),
    /// Port of the repository listener on 127.0.0.1; 0 picks a free one.
    pub repository_port: u16,
    /// Port of the QPS listener; 0 picks a free one.
    pub qps_port: u16,
    /// Port of the hub listener; 0 picks a free one.
    pub hub_port: u16,
    /// The longest request line (method, path with query, version) answered; a longer one gets 414. The default,
    /// 8,192 bytes, is what nginx and Apache allow by default in front of a site (HTTP.sys, QRS's own server, allows
    /// 16 KB), so that every test holds the client to the smallest common limit.
    pub max_request_line: usize,
}

/// See [`SimulatorConfig::max_request_line`].
pub const MAX_REQUEST_LINE: usize = 8_192;

impl Default for SimulatorConfig {
    fn default() -> Self {
        SimulatorConfig {
            seed: 1,
            users: 0,
            latency: Duration::ZERO,
            server_name: "qlikserver1".to_string(),
            extra_sans: Vec::new(),
            proxy: None,
            client_key_format: KeyFormat::Pkcs1Rsa,
            never_used_sentinel: NEVER_USED_SENTINEL.to_string(),
            anonymous_user: ("INTERNAL".to_string(), "sa_repository".to_string()),
            repository_port: 0,
            qps_port: 0,
            hub_port: 0,
            max_request_line: MAX_REQUEST_LINE,
        }
    }
}

/// A virtual proxy reached through QPS and the hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    /// Virtual proxy prefix; "" is the default proxy.
    pub virtual_proxy_prefix: String,
    /// Name of the session cookie; must be unique per virtual proxy.
    pub session_cookie_name: String,
}

impl ProxyConfig {
    /// A virtual proxy with Qlik's conventional cookie name: `X-Qlik-Session`, plus `-<prefix>` when there is one.
    pub fn new(virtual_proxy_prefix: impl Into<String>) -> ProxyConfig {
        let virtual_proxy_prefix = virtual_proxy_prefix.into().trim_matches('/').to_string();
        let session_cookie_name = if virtual_proxy_prefix.is_empty() {
            "X-Qlik-Session".to_string()
        } else {
            format!("X-Qlik-Session-{virtual_proxy_prefix}")
        };
        ProxyConfig {
            virtual_proxy_prefix,
            session_cookie_name,
        }
    }
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig::new("")
    }
}

/// How the client private key is encoded in `client_key.pem`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyFormat {
    /// RSA 2048 as PKCS#1 (`BEGIN RSA PRIVATE KEY`), what a QMC certificate export gives.
    #[default]
    Pkcs1Rsa,
    /// The same kind of RSA key as PKCS#8 (`BEGIN PRIVATE KEY`), as `openssl pkcs8 -topk8` writes it.
    Pkcs8,
    /// ECDSA P-256 as SEC1 (`BEGIN EC PRIVATE KEY`).
    Sec1Ecdsa,
}

pub(crate) fn validate(config: &SimulatorConfig) -> Result<(), SimulatorError> {
    if config.server_name.trim().is_empty() {
        return Err(SimulatorError::Config(
            "server_name must not be empty".into(),
        ));
    }
    if config.anonymous_user.0.is_empty() || config.anonymous_user.1.is_empty() {
        return Err(SimulatorError::Config(
            "anonymous_user needs a directory and a user id".into(),
        ));
    }
    if let Some(proxy) = &config.proxy {
        if proxy.session_cookie_name.is_empty()
            || !proxy
                .session_cookie_name
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
        {
            return Err(SimulatorError::Config(format!(
                "'{}' is not a valid cookie name",
                proxy.session_cookie_name
            )));
        }
        if proxy.virtual_proxy_prefix.contains('/') {
            return Err(SimulatorError::Config(
                "virtual_proxy_prefix must be a single path segment".into(),
            ));
        }
    }
    Ok(())
}
