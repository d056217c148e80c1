//! A faithful stand-in for the Qlik Sense Repository Service (QRS), the Qlik Proxy Service (QPS) session API and the
//! hub's `/qrs` pass-through, on loopback.
//!
//! It backs qlik-license-reclaimer's `demo` and `simulate` commands and is the test double of its QRS client; any
//! tool that talks to QRS can be tested against it. What it reproduces, and the choices it makes where Qlik's
//! behaviour is not documented, are described in the repository's `docs/qrs.md`:
//!
//! - **Transport.** HTTPS with HTTP/1.1 and HTTP/2. The repository listener (like port 4242) and the QPS listener
//!   (like 4243) require a client certificate chaining to the simulator's own root; without one the TLS handshake
//!   fails. The hub listener (like 443) needs none. The server certificate names only `server_name` (Qlik issues
//!   certificates for the short host name) unless `extra_sans` adds more.
//! - **Every QRS and QPS request** needs `xrfkey` in the query (name case-insensitive) and an equal
//!   `X-Qlik-Xrfkey` header of 16 characters of `[0-9A-Za-z]`; otherwise 403 `XSRF prevention check failed.
//!   Possible XSRF discovered.`. A query string with an empty parameter (a stray `&`) is 400
//!   `Missing parameter value(s)`.
//! - **Identity.** On the repository listener `X-Qlik-User: UserDirectory=<dir>; UserId=<id>` (spaces optional,
//!   key names case-insensitive, values URL-decoded). A missing header acts as
//!   [`SimulatorConfig::anonymous_user`]; a header that is present but does not name both a directory and a user
//!   is answered with **400** (QRS's own answer is not documented). On the hub, the session cookie must name a
//!   session created through QPS, otherwise **401**. Privileges are not enforced: every identity acts as an
//!   administrator, as a certificate-authenticated caller does on a real site.
//! - **Deallocation.** `DELETE /qrs/license/<type>accesstype/{id}` quarantines a seat used within the last 7 days
//!   (`quarantineEnd = lastUsed + 7d`, the row stays) and removes any other; an already-quarantined row answers 204
//!   and is left unchanged; an unknown id is 404. `loginaccesstype` rows are groups and a DELETE removes the group.
//!   Quarantined rows vanish when the simulated clock passes `quarantineEnd`.
//! - **Faults and latency** can be injected per request ([`FaultRule`]); every request and every deallocation is
//!   recorded for assertions.
//!
//! The code, by concern: the site's state ([`SiteHandle`] outside; `site.rs`, `records.rs` inside), how QRS renders
//! it (`views.rs`, `time.rs`), the filter language (`filter.rs`), the QRS routes (`http/qrs.rs`,
//! `http/collections.rs`), the checks every request passes (`http/checks.rs`), QPS and the hub (`http/proxy.rs`),
//! injected faults (`http/faults.rs`), the PKI (`pki.rs`), the TLS listeners (`server.rs`) and synthetic sites
//! (`synthetic.rs`).

mod filter;
mod handle;
mod http;
mod pki;
mod records;
mod server;
mod site;
mod synthetic;
mod time;
mod views;

#[cfg(test)]
mod tests;

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

pub use handle::{
    AllocationSnapshot, LoginGroupSnapshot, SiteHandle, SiteSummary, TypeSummary, UserSnapshot,
};
pub use pki::Pki;
pub use records::{NewUser, SeatTotals, SimAccessType, SiteError};

/// The sentinel QRS writes for a date that was never set (for example `lastUsed` of a never-used allocation).
pub const NEVER_USED_SENTINEL: &str = "1753-01-01T00:00:00.000Z";

/// Configuration of a simulated site.
#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    /// Seed of the synthetic site; the same seed gives the same site (relative to the start time).
    pub seed: u64,
    /// Number of synthetic users; 0 starts an empty site to be seeded through [`Simulator::site`].
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
}

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

/// Which listener received a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Listener {
    /// Direct QRS with a client certificate (like port 4242).
    Repository,
    /// The proxy service's API (like port 4243).
    Qps,
    /// The hub, where `/{prefix}/qrs/...` is reached with a session cookie (like port 443).
    Hub,
}

/// A user as QRS knows the caller: `UserDirectory` and `UserId`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    pub directory: String,
    pub user_id: String,
}

impl Identity {
    pub fn new(directory: impl Into<String>, user_id: impl Into<String>) -> Identity {
        Identity {
            directory: directory.into(),
            user_id: user_id.into(),
        }
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}\\{}", self.directory, self.user_id)
    }
}

/// A request the simulator answered (or dropped, for [`Fault::Reset`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// Simulated time at which the request arrived.
    pub at: Timestamp,
    pub listener: Listener,
    pub method: String,
    /// The path as sent, without the query.
    pub path: String,
    /// Decoded query parameters in order (`+` read as a space).
    pub query: Vec<(String, String)>,
    /// Response status; 0 when the connection was reset without a response.
    pub status: u16,
    /// Who the request acted as: `X-Qlik-User` (or the anonymous user) on the repository, the session's user on the
    /// hub, none on QPS or when the request was refused before identification.
    pub user: Option<Identity>,
    /// The injected fault that answered the request, if any.
    pub fault: Option<Fault>,
}

impl RecordedRequest {
    /// The first query parameter called `name` (case-insensitive).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A request as it arrived, recorded before anything else happens to it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedArrival {
    pub at: Timestamp,
    pub listener: Listener,
    pub method: String,
    pub path: String,
}

/// What a successful DELETE did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeletionOutcome {
    /// The row is gone and the seat is free.
    Removed,
    /// Used within 7 days: the row stays, quarantined until `lastUsed + 7d`.
    Quarantined,
    /// The row was already quarantined and was left unchanged.
    AlreadyQuarantined,
}

/// A DELETE that QRS answered with 204.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedDeletion {
    pub at: Timestamp,
    pub listener: Listener,
    pub access_type: SimAccessType,
    /// The allocation (or, for login access, the group) deleted.
    pub allocation_id: Uuid,
    /// The user holding the allocation; none for a login access group or a deleted user.
    pub user: Option<Uuid>,
    /// The holder's directory and user id (for a deleted user, the remembered ones; empty for a group).
    pub user_directory: String,
    pub user_id: String,
    pub outcome: DeletionOutcome,
    /// Who asked.
    pub requested_by: Option<Identity>,
}

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
}

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimulatorError {
    #[error("could not create the simulator's certificates: {0}")]
    Pki(String),
    #[error("could not configure TLS: {0}")]
    Tls(String),
    #[error("could not listen on 127.0.0.1:{port} for the {listener:?} listener: {source}")]
    Bind {
        listener: Listener,
        port: u16,
        #[source]
        source: io::Error,
    },
    #[error("invalid simulator configuration: {0}")]
    Config(String),
}

/// State shared by the listeners, the site handle and the [`Simulator`].
pub(crate) struct Shared {
    pub(crate) config: SimulatorConfig,
    clock_offset: Mutex<SignedDuration>,
    latency: Mutex<Duration>,
    faults: Mutex<Vec<FaultRule>>,
    pub(crate) site: Mutex<site::SiteState>,
    pub(crate) proxy: Mutex<http::ProxyState>,
    requests: Mutex<Vec<RecordedRequest>>,
    arrivals: Mutex<Vec<RecordedArrival>>,
    deletions: Mutex<Vec<RecordedDeletion>>,
}

/// Locks a mutex; a panic in another holder does not make the simulator's bookkeeping unusable.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn now(&self) -> Timestamp {
        let offset = *lock(&self.clock_offset);
        time::shift(Timestamp::now(), offset)
    }

    pub(crate) fn latency(&self) -> Duration {
        *lock(&self.latency)
    }

    /// The first rule matching the request, consuming one of its uses.
    pub(crate) fn take_fault(&self, method: &str, path: &str) -> Option<Fault> {
        let mut faults = lock(&self.faults);
        let index = faults.iter().position(|rule| {
            rule.method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
                && rule
                    .path_contains
                    .as_deref()
                    .is_none_or(|p| path.to_ascii_lowercase().contains(&p.to_ascii_lowercase()))
                && rule.times != Some(0)
        })?;
        let rule = &mut faults[index];
        let fault = rule.fault.clone();
        if let Some(n) = rule.times.as_mut() {
            *n -= 1;
            if *n == 0 {
                faults.remove(index);
            }
        }
        Some(fault)
    }

    pub(crate) fn record_arrival(&self, arrival: RecordedArrival) {
        lock(&self.arrivals).push(arrival);
    }

    pub(crate) fn record_request(&self, request: RecordedRequest) {
        lock(&self.requests).push(request);
    }

    pub(crate) fn record_deletion(&self, deletion: RecordedDeletion) {
        lock(&self.deletions).push(deletion);
    }
}

/// A running simulator. It stops when dropped or on [`Simulator::shutdown`].
pub struct Simulator {
    shared: Arc<Shared>,
    pki: Pki,
    repository_addr: SocketAddr,
    qps_addr: Option<SocketAddr>,
    hub_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("repository_addr", &self.repository_addr)
            .field("qps_addr", &self.qps_addr)
            .field("hub_addr", &self.hub_addr)
            .finish_non_exhaustive()
    }
}

impl Simulator {
    /// Generates the PKI and the site, binds the listeners on 127.0.0.1 (free ports unless the config fixes them)
    /// and starts serving.
    pub async fn start(config: SimulatorConfig) -> Result<Simulator, SimulatorError> {
        validate(&config)?;
        let pki = {
            let (server_name, sans, format) = (
                config.server_name.clone(),
                config.extra_sans.clone(),
                config.client_key_format,
            );
            tokio::task::spawn_blocking(move || Pki::generate(&server_name, &sans, format))
                .await
                .map_err(|e| {
                    SimulatorError::Pki(format!("certificate generation stopped: {e}"))
                })??
        };
        let repository_tls = server::tls_config(&pki, true)?;

        let start = Timestamp::now();
        let mut state = site::SiteState::new(config.seed, &config.never_used_sentinel, start);
        if config.users > 0 {
            synthetic::generate(&mut state, config.seed, config.users, start);
        }
        let shared = Arc::new(Shared {
            clock_offset: Mutex::new(SignedDuration::ZERO),
            latency: Mutex::new(config.latency),
            faults: Mutex::new(Vec::new()),
            site: Mutex::new(state),
            proxy: Mutex::new(http::ProxyState::default()),
            requests: Mutex::new(Vec::new()),
            arrivals: Mutex::new(Vec::new()),
            deletions: Mutex::new(Vec::new()),
            config,
        });

        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        let repository = server::bind(Listener::Repository, shared.config.repository_port).await?;
        let repository_addr = local_addr(&repository, Listener::Repository)?;
        let mut qps_addr = None;
        let mut hub_addr = None;
        let mut proxy_listeners = None;
        if shared.config.proxy.is_some() {
            let qps = server::bind(Listener::Qps, shared.config.qps_port).await?;
            let hub = server::bind(Listener::Hub, shared.config.hub_port).await?;
            qps_addr = Some(local_addr(&qps, Listener::Qps)?);
            hub_addr = Some(local_addr(&hub, Listener::Hub)?);
            proxy_listeners = Some((qps, hub));
        }
        tasks.push(server::spawn(
            repository,
            repository_tls.clone(),
            Listener::Repository,
            shared.clone(),
            stop_rx.clone(),
        ));
        if let Some((qps, hub)) = proxy_listeners {
            let hub_tls = server::tls_config(&pki, false)?;
            tasks.push(server::spawn(
                qps,
                repository_tls,
                Listener::Qps,
                shared.clone(),
                stop_rx.clone(),
            ));
            tasks.push(server::spawn(
                hub,
                hub_tls,
                Listener::Hub,
                shared.clone(),
                stop_rx,
            ));
        }
        Ok(Simulator {
            shared,
            pki,
            repository_addr,
            qps_addr,
            hub_addr,
            stop,
            tasks,
        })
    }

    /// Like [`Simulator::start`] with the repository listener on a fixed port (the `simulate --port` option).
    pub async fn start_on(
        mut config: SimulatorConfig,
        repository_port: u16,
    ) -> Result<Simulator, SimulatorError> {
        config.repository_port = repository_port;
        Simulator::start(config).await
    }

    /// The configuration the simulator runs with.
    pub fn config(&self) -> &SimulatorConfig {
        &self.shared.config
    }

    /// `https://127.0.0.1:PORT` of the repository listener (direct QRS, like `:4242`).
    pub fn repository_url(&self) -> String {
        format!("https://{}", self.repository_addr)
    }

    pub fn repository_addr(&self) -> SocketAddr {
        self.repository_addr
    }

    /// `https://127.0.0.1:PORT` of the QPS listener, when a proxy is configured.
    pub fn qps_url(&self) -> Option<String> {
        self.qps_addr.map(|a| format!("https://{a}"))
    }

    pub fn qps_addr(&self) -> Option<SocketAddr> {
        self.qps_addr
    }

    /// `https://127.0.0.1:PORT` of the hub listener, when a proxy is configured.
    pub fn hub_url(&self) -> Option<String> {
        self.hub_addr.map(|a| format!("https://{a}"))
    }

    pub fn hub_addr(&self) -> Option<SocketAddr> {
        self.hub_addr
    }

    /// The certificates: root, client (in the configured key format) and an unrelated "wrong" client.
    pub fn pki(&self) -> &Pki {
        &self.pki
    }

    /// Writes `client.pem`, `client_key.pem` and `root.pem` into `dir`, like a QMC export or a mounted Secret.
    pub fn write_credentials(&self, dir: &Path) -> io::Result<()> {
        self.pki.write_credentials(dir)
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// Every request as it arrived, before any latency, fault or handling: a request the client gave up on
    /// (a connection dropped mid-way) is here but not in [`Simulator::requests`].
    pub fn arrivals(&self) -> Vec<RecordedArrival> {
        lock(&self.shared.arrivals).clone()
    }

    /// DELETEs on QRS (`/qrs/` paths, not the end of a QPS session) that arrived so far, answered or not.
    pub fn qrs_delete_arrivals(&self) -> usize {
        lock(&self.shared.arrivals)
            .iter()
            .filter(|a| a.method == "DELETE" && a.path.contains("/qrs/"))
            .count()
    }

    /// Every DELETE answered with 204 so far.
    pub fn deletions(&self) -> Vec<RecordedDeletion> {
        lock(&self.shared.deletions).clone()
    }

    /// Forgets the recorded requests and deletions.
    pub fn clear_records(&self) {
        lock(&self.shared.requests).clear();
        lock(&self.shared.arrivals).clear();
        lock(&self.shared.deletions).clear();
    }

    /// Adds a fault rule; rules are tried in the order they were added.
    pub fn inject(&self, rule: FaultRule) {
        lock(&self.shared.faults).push(rule);
    }

    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// Changes the latency added to every request.
    pub fn set_latency(&self, latency: Duration) {
        *lock(&self.shared.latency) = latency;
    }

    /// Reads and changes the site's data.
    pub fn site(&self) -> SiteHandle {
        SiteHandle::new(self.shared.clone())
    }

    /// Moves the simulated clock; quarantines that end before the new time expire.
    pub fn advance_clock(&self, by: SignedDuration) {
        let mut offset = lock(&self.shared.clock_offset);
        *offset = offset.saturating_add(by);
    }

    /// The simulated time: the real time plus every [`Simulator::advance_clock`].
    pub fn now(&self) -> Timestamp {
        self.shared.now()
    }

    /// Stops accepting connections, closes open ones and waits for the listeners to end.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn local_addr(
    listener: &tokio::net::TcpListener,
    kind: Listener,
) -> Result<SocketAddr, SimulatorError> {
    listener
        .local_addr()
        .map_err(|source| SimulatorError::Bind {
            listener: kind,
            port: 0,
            source,
        })
}

fn validate(config: &SimulatorConfig) -> Result<(), SimulatorError> {
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
