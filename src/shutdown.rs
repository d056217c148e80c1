//! The one way every mode stops. SIGTERM (a pod being stopped, a CronJob's Job past its deadline) and SIGINT alike
//! ask for a [`Shutdown`]: no new runs or deletions, the deletions in flight finish, the status records what was
//! done. The controller, `run --policy-ref` and `run --policy FILE` all hand the same value to their tasks.

use std::sync::Arc;

use tokio::sync::watch;

/// A stop that every task of the process can see. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Shutdown {
    sender: Arc<watch::Sender<bool>>,
    receiver: watch::Receiver<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// A stop that only [`Shutdown::request`] asks for.
    pub(crate) fn new() -> Shutdown {
        let (sender, receiver) = watch::channel(false);
        Shutdown {
            sender: Arc::new(sender),
            receiver,
        }
    }

    /// A stop asked for by SIGTERM or SIGINT.
    pub(crate) fn on_signals() -> Shutdown {
        let shutdown = Shutdown::new();
        let requester = shutdown.clone();
        tokio::spawn(async move {
            termination().await;
            tracing::info!(
                "termination requested: no new runs or deletions; letting those in flight finish"
            );
            requester.request();
        });
        shutdown
    }

    pub(crate) fn request(&self) {
        self.sender.send_replace(true);
    }

    pub(crate) fn is_requested(&self) -> bool {
        *self.receiver.borrow()
    }

    /// Resolves once a stop is asked for.
    pub(crate) async fn requested(&self) {
        let mut receiver = self.receiver.clone();
        // The sender lives as long as any clone of this value, so the wait ends only on a request.
        let _ = receiver.wait_for(|stop| *stop).await;
    }
}

/// Resolves when SIGTERM or SIGINT arrives.
async fn termination() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
