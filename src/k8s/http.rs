//! The controller's HTTP endpoints: `/metrics`, `/healthz` and `/readyz`, hardened against slow or many clients.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::task::JoinHandle;

use super::metrics::Metrics;
use crate::shutdown::Shutdown;

/// Connections `/metrics`, `/healthz` and `/readyz` serve at once.
const METRICS_MAX_CONNECTIONS: usize = 32;

/// A client must send its request headers within this time.
const METRICS_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(3);

/// A connection is closed after this long, whatever it does.
const METRICS_CONNECTION_LIFETIME: Duration = Duration::from_secs(30);

/// Serve `/metrics`, `/healthz` and `/readyz`.
pub(super) async fn serve_metrics(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    shutdown: Shutdown,
) -> std::io::Result<JoinHandle<()>> {
    use axum::http::{StatusCode, header};
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr().unwrap_or(addr), "serving /metrics, /healthz and /readyz");
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    (
                        [(
                            header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        metrics.encode(),
                    )
                }
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let ready = ready.clone();
                async move {
                    if ready.load(Ordering::Relaxed) {
                        (StatusCode::OK, "ready")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "starting")
                    }
                }
            }),
        );
    Ok(tokio::spawn(async move {
        // Probes must answer whatever other clients do: each connection gets its headers read within a few
        // seconds and lives a bounded time, and at most a few dozen are served at once (more are closed at once
        // rather than queued behind slow ones).
        let slots = Arc::new(tokio::sync::Semaphore::new(METRICS_MAX_CONNECTIONS));
        loop {
            let accepted = tokio::select! {
                _ = shutdown.requested() => break,
                accepted = listener.accept() => accepted,
            };
            let Ok((stream, _)) = accepted else {
                continue;
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                drop(stream);
                continue;
            };
            let service = hyper_util::service::TowerToHyperService::new(app.clone());
            tokio::spawn(async move {
                let _slot = slot;
                let connection = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(METRICS_HEADER_READ_TIMEOUT)
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                let _ = tokio::time::timeout(METRICS_CONNECTION_LIFETIME, connection).await;
            });
        }
    }))
}
