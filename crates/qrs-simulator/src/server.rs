//! Listeners: TCP on 127.0.0.1, TLS with rustls (ring provider, chosen explicitly rather than taken from a process
//! default), and HTTP/1.1 or HTTP/2 per connection.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::RootCertStore;
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use super::http::{ConnCtx, router};
use super::{Listener, Pki, Shared, SimulatorError};

/// A client that connects but never finishes the handshake is dropped after this long.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// TLS for a listener. With `require_client_cert`, the client must present a certificate chaining to the
/// simulator's root, as QRS on 4242 and QPS on 4243 demand; otherwise the handshake fails.
pub(crate) fn tls_config(
    pki: &Pki,
    require_client_cert: bool,
) -> Result<Arc<ServerConfig>, SimulatorError> {
    let tls_err = |e: &dyn std::fmt::Display| SimulatorError::Tls(e.to_string());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(&e))?;
    let builder = if require_client_cert {
        let mut roots = RootCertStore::empty();
        roots.add(pki.root_der.clone()).map_err(|e| tls_err(&e))?;
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| tls_err(&e))?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let mut config = builder
        .with_single_cert(vec![pki.server_der.clone()], pki.server_key())
        .map_err(|e| tls_err(&e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

pub(crate) async fn bind(kind: Listener, port: u16) -> Result<TcpListener, SimulatorError> {
    TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|source| SimulatorError::Bind {
            listener: kind,
            port,
            source,
        })
}

/// Accepts connections until `stop` changes or its sender goes away; open connections are then dropped.
pub(crate) fn spawn(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    kind: Listener,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let acceptor = TlsAcceptor::from(tls);
    let app = router(shared);
    tokio::spawn(async move {
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        break;
                    }
                }
                accepted = listener.accept() => match accepted {
                    Ok((tcp, _peer)) => {
                        connections.spawn(serve(tcp, acceptor.clone(), app.clone(), kind));
                    }
                    Err(e) => {
                        // Usually out of file descriptors: back off instead of spinning.
                        tracing::debug!(error = %e, ?kind, "simulator accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        connections.abort_all();
    })
}

async fn serve(tcp: TcpStream, acceptor: TlsAcceptor, app: axum::Router, kind: Listener) {
    let _ = tcp.set_nodelay(true);
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, ?kind, "simulator TLS handshake failed");
            return;
        }
        Err(_) => return,
    };
    let abort = Arc::new(Notify::new());
    let closed = Arc::new(Notify::new());
    let ctx = ConnCtx {
        listener: kind,
        abort: abort.clone(),
        closed: closed.clone(),
    };
    let service = app.map_request(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(ctx.clone());
        req
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    let connection = builder.serve_connection(TokioIo::new(tls), TowerToHyperService::new(service));
    tokio::select! {
        result = connection => {
            if let Err(e) = result {
                tracing::debug!(error = %e, ?kind, "simulator connection ended with an error");
            }
        }
        // A reset fault: drop the connection (and the TLS session) without a response or close_notify.
        () = abort.notified() => {}
    }
    closed.notify_waiters();
}
