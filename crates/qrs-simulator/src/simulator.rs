//! A running simulator: starting it (certificates, site, listeners), reading what it recorded, steering its faults,
//! latency and clock, and stopping it.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use rustls::server::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::validate;
use crate::{
    FaultRule, Listener, Pki, RecordedArrival, RecordedDeletion, RecordedRequest, Shared,
    SimulatorConfig, SiteHandle, lock, server,
};

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
        let pki = generate_pki(&config).await?;
        let repository_tls = server::tls_config(&pki, true)?;
        let shared = Arc::new(Shared::new(config));

        let (stop, stop_rx) = watch::channel(false);
        let repository = server::bind(Listener::Repository, shared.config.repository_port).await?;
        let repository_addr = local_addr(&repository, Listener::Repository)?;
        let proxy = bind_proxy(&shared.config).await?;
        let qps_addr = proxy.as_ref().map(|p| p.qps_addr);
        let hub_addr = proxy.as_ref().map(|p| p.hub_addr);
        let mut tasks = vec![server::spawn(
            repository,
            repository_tls.clone(),
            Listener::Repository,
            shared.clone(),
            stop_rx.clone(),
        )];
        if let Some(proxy) = proxy {
            tasks.extend(serve_proxy(proxy, &pki, repository_tls, &shared, stop_rx)?);
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

/// Certificates are generated on a blocking thread: RSA key generation would stall the runtime's workers meanwhile.
async fn generate_pki(config: &SimulatorConfig) -> Result<Pki, SimulatorError> {
    let (server_name, sans, format) = (
        config.server_name.clone(),
        config.extra_sans.clone(),
        config.client_key_format,
    );
    tokio::task::spawn_blocking(move || Pki::generate(&server_name, &sans, format))
        .await
        .map_err(|e| SimulatorError::Pki(format!("certificate generation stopped: {e}")))?
}

/// The QPS and hub listeners, bound (like the repository's) before any listener serves, so that a taken port fails
/// the start with nothing running.
struct ProxyListeners {
    qps: TcpListener,
    hub: TcpListener,
    qps_addr: SocketAddr,
    hub_addr: SocketAddr,
}

async fn bind_proxy(config: &SimulatorConfig) -> Result<Option<ProxyListeners>, SimulatorError> {
    if config.proxy.is_none() {
        return Ok(None);
    }
    let qps = server::bind(Listener::Qps, config.qps_port).await?;
    let hub = server::bind(Listener::Hub, config.hub_port).await?;
    Ok(Some(ProxyListeners {
        qps_addr: local_addr(&qps, Listener::Qps)?,
        hub_addr: local_addr(&hub, Listener::Hub)?,
        qps,
        hub,
    }))
}

/// QPS demands the client certificate the repository does; the hub, which browsers reach, asks for none.
fn serve_proxy(
    listeners: ProxyListeners,
    pki: &Pki,
    client_cert_tls: Arc<ServerConfig>,
    shared: &Arc<Shared>,
    stop: watch::Receiver<bool>,
) -> Result<[JoinHandle<()>; 2], SimulatorError> {
    let hub_tls = server::tls_config(pki, false)?;
    Ok([
        server::spawn(
            listeners.qps,
            client_cert_tls,
            Listener::Qps,
            shared.clone(),
            stop.clone(),
        ),
        server::spawn(listeners.hub, hub_tls, Listener::Hub, shared.clone(), stop),
    ])
}

fn local_addr(listener: &TcpListener, kind: Listener) -> Result<SocketAddr, SimulatorError> {
    listener
        .local_addr()
        .map_err(|source| SimulatorError::Bind {
            listener: kind,
            port: 0,
            source,
        })
}
