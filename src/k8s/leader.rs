//! The leader Lease: with more than one replica, only the holder runs policies. A standby is healthy and ready
//! while it waits; the leader gives the Lease up when it stops, so a standby takes over at once.

use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::FIELD_MANAGER;
use super::controller::{ControllerError, ControllerOptions};
use super::shutdown::Shutdown;

/// The Lease, once held: `is_leader` turns false if it is lost.
pub(crate) struct Leadership {
    pub(crate) is_leader: watch::Receiver<bool>,
    task: JoinHandle<Result<LeaseManager, LeaseManagerError>>,
}

impl Leadership {
    /// Waits for the Lease. `Ok(None)` when the process was told to stop first.
    pub(crate) async fn acquire(
        client: &Client,
        options: &ControllerOptions,
        shutdown: &Shutdown,
    ) -> Result<Option<Leadership>, ControllerError> {
        let duration = options.lease_duration_seconds.max(2);
        let manager = LeaseManagerBuilder::new(client.clone(), &options.lease_name)
            .with_namespace(&options.lease_namespace)
            .with_identity(&options.identity)
            .with_duration(duration)
            .with_grace((duration / 3).max(1))
            .with_field_manager(FIELD_MANAGER)
            .build()
            .await
            .map_err(|e| ControllerError::LeaderElection(e.to_string()))?;
        let (mut is_leader, task) = manager.watch().await;
        tracing::info!(lease = %options.lease_name, identity = %options.identity, "waiting to become leader");
        let became_leader = tokio::select! {
            r = is_leader.wait_for(|l| *l) => r.is_ok(),
            () = shutdown.requested() => false,
        };
        let leadership = Leadership { is_leader, task };
        if became_leader {
            tracing::info!(identity = %options.identity, "became leader");
            return Ok(Some(leadership));
        }
        let stopping = shutdown.is_requested();
        leadership.release().await;
        if stopping {
            Ok(None)
        } else {
            Err(ControllerError::LeaderElection(
                "the lease task ended".into(),
            ))
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
