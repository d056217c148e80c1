//! The leader Lease: with more than one replica, only the holder runs policies. A standby is healthy and ready
//! while it waits; the leader gives the Lease up when it stops, so a standby takes over at once.

use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::FIELD_MANAGER;
use crate::shutdown::Shutdown;

/// Which Lease, and who this replica is in it.
pub(crate) struct Lease<'a> {
    pub(crate) name: &'a str,
    pub(crate) namespace: &'a str,
    pub(crate) identity: &'a str,
    /// Seconds the Lease is valid without renewal.
    pub(crate) duration_seconds: u64,
}

/// The Lease, once held: `is_leader` turns false if it is lost.
pub(crate) struct Leadership {
    pub(crate) is_leader: watch::Receiver<bool>,
    task: JoinHandle<Result<LeaseManager, LeaseManagerError>>,
}

impl Leadership {
    /// Waits for the Lease. `Ok(None)` when the process was told to stop first.
    pub(crate) async fn acquire(
        client: &Client,
        lease: &Lease<'_>,
        shutdown: &Shutdown,
    ) -> Result<Option<Leadership>, String> {
        let duration = lease.duration_seconds.max(2);
        let manager = LeaseManagerBuilder::new(client.clone(), lease.name)
            .with_namespace(lease.namespace)
            .with_identity(lease.identity)
            .with_duration(duration)
            .with_grace((duration / 3).max(1))
            .with_field_manager(FIELD_MANAGER)
            .build()
            .await
            .map_err(|e| e.to_string())?;
        let (mut is_leader, task) = manager.watch().await;
        tracing::info!(lease = %lease.name, identity = %lease.identity, "waiting to become leader");
        let became_leader = tokio::select! {
            r = is_leader.wait_for(|l| *l) => r.is_ok(),
            () = shutdown.requested() => false,
        };
        let leadership = Leadership { is_leader, task };
        if became_leader {
            tracing::info!(identity = %lease.identity, "became leader");
            return Ok(Some(leadership));
        }
        let stopping = shutdown.is_requested();
        leadership.release().await;
        if stopping {
            Ok(None)
        } else {
            Err("the lease task ended".to_string())
        }
    }

    pub(crate) fn lost(&self) -> bool {
        !*self.is_leader.borrow()
    }

    /// Gives the Lease up. Dropping the last receiver ends the lease task, which hands back the manager to release
    /// the Lease, so a standby takes over at once rather than after the lease duration.
    pub(crate) async fn release(self) {
        drop(self.is_leader);
        if let Ok(Ok(manager)) = self.task.await {
            let _ = manager.release().await;
        }
    }
}
