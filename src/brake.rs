//! The brake on a run's deallocations: whoever watches the run's policy (a watch on the resource in the cluster,
//! the file from a laptop) and the signals sets it; the run looks at it just before each DELETE starts.
//!
//! Three states, because "nothing changed" and "cannot tell" are different answers: a run whose watch on its
//! policy broke cannot know whether the administrator switched it to dry run meanwhile, so it starts no deletion
//! until the watch is back ([`BrakeState::Paused`]); a stop ([`BrakeState::Stopped`]) is for the rest of the run.

use std::sync::Arc;

use tokio::sync::{Notify, watch};

/// Whether a run may start a deallocation now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrakeState {
    /// Deallocations may start.
    Released,
    /// None may start until the brake is released or pulled: why (the policy's watch is being established).
    Paused(String),
    /// None may start again in this run: why (the policy changed, was deleted, the process was told to stop).
    Stopped(String),
}

/// The run's side of the brake: it reads the state, never sets it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Brake {
    state: watch::Receiver<BrakeState>,
    /// Told each time a run starts waiting on a paused brake.
    waiting: Arc<Notify>,
    /// The sender of a brake no one works ([`Brake::released`]), kept so that it never counts as dropped.
    _unworked: Option<Arc<watch::Sender<BrakeState>>>,
}

/// The watcher's side of the brake.
#[derive(Debug)]
pub struct BrakeLever {
    state: watch::Sender<BrakeState>,
    waiting: Arc<Notify>,
}

impl Brake {
    /// A brake and its lever, in the state given.
    pub fn new(initial: BrakeState) -> (BrakeLever, Brake) {
        let (state, receiver) = watch::channel(initial);
        let waiting = Arc::new(Notify::new());
        let lever = BrakeLever {
            state,
            waiting: Arc::clone(&waiting),
        };
        (
            lever,
            Brake {
                state: receiver,
                waiting,
                _unworked: None,
            },
        )
    }

    /// A brake no one pulls (`demo`, tests).
    pub fn released() -> Brake {
        let (lever, mut brake) = Brake::new(BrakeState::Released);
        brake._unworked = Some(Arc::new(lever.state));
        brake
    }

    /// The state now, without waiting. A lever dropped (the watch that worked it ended, or panicked) is a stop:
    /// no one is left to pull the brake.
    pub fn current(&self) -> BrakeState {
        let state = self.state.borrow().clone();
        Self::unless_abandoned(&self.state, state)
    }

    /// `state`, or a stop when the lever behind `receiver` is gone.
    fn unless_abandoned(receiver: &watch::Receiver<BrakeState>, state: BrakeState) -> BrakeState {
        match state {
            BrakeState::Released | BrakeState::Paused(_) if receiver.has_changed().is_err() => {
                BrakeState::Stopped(Self::ABANDONED.into())
            }
            state => state,
        }
    }

    /// Why a brake whose lever is gone stops the run.
    const ABANDONED: &'static str = "the watch on the run's policy ended";

    /// Why the run must start no more deallocations, once it must.
    pub fn stopped(&self) -> Option<String> {
        match self.current() {
            BrakeState::Stopped(why) => Some(why),
            BrakeState::Released | BrakeState::Paused(_) => None,
        }
    }

    /// Waits while the brake is paused; `Ok` when a deallocation may start now, `Err(why)` when none may. A
    /// lever dropped stops the run: no one is left to say the policy is unchanged.
    pub async fn proceed(&self) -> Result<(), String> {
        let mut receiver = self.state.clone();
        loop {
            // Marked seen as it is read, so that a change after this read wakes the wait below.
            let seen = receiver.borrow_and_update().clone();
            match Self::unless_abandoned(&receiver, seen) {
                BrakeState::Released => return Ok(()),
                BrakeState::Stopped(why) => return Err(why),
                BrakeState::Paused(why) => {
                    tracing::debug!(why = %why, "deallocations wait");
                    self.waiting.notify_one();
                }
            }
            // A change, or the lever dropped (then the next read says stopped).
            let _ = receiver.changed().await;
        }
    }
}

impl BrakeLever {
    /// Deallocations may start again, unless the brake was pulled: a stop is never taken back.
    pub fn release(&self) {
        self.state.send_if_modified(|state| match state {
            BrakeState::Paused(_) => {
                *state = BrakeState::Released;
                true
            }
            BrakeState::Released | BrakeState::Stopped(_) => false,
        });
    }

    /// No deallocation starts until [`release`](Self::release), unless the brake was pulled.
    pub fn pause(&self, why: impl Into<String>) {
        let why = why.into();
        self.state.send_if_modified(|state| match state {
            BrakeState::Released => {
                *state = BrakeState::Paused(why);
                true
            }
            BrakeState::Paused(_) | BrakeState::Stopped(_) => false,
        });
    }

    /// No deallocation starts again in this run. The first reason given is the one kept.
    pub fn stop(&self, why: impl Into<String>) {
        let why = why.into();
        self.state.send_if_modified(|state| match state {
            BrakeState::Stopped(_) => false,
            BrakeState::Released | BrakeState::Paused(_) => {
                *state = BrakeState::Stopped(why);
                true
            }
        });
    }

    /// Resolves once a run waits (or has waited, unseen) on the paused brake: a run that waits has finished the
    /// deletions it had in flight.
    pub async fn waited_on(&self) {
        self.waiting.notified().await;
    }

    /// Whether the brake was pulled.
    pub fn is_stopped(&self) -> bool {
        matches!(*self.state.borrow(), BrakeState::Stopped(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_paused_brake_holds_deallocations_until_released() {
        let (lever, brake) = Brake::new(BrakeState::Paused("watch starting".into()));
        let waiting = tokio::spawn({
            let brake = brake.clone();
            async move { brake.proceed().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "a paused brake lets nothing start");
        assert_eq!(brake.stopped(), None, "paused is not stopped");
        lever.release();
        assert_eq!(waiting.await.ok(), Some(Ok(())));
    }

    #[tokio::test]
    async fn a_stop_is_never_taken_back() {
        let (lever, brake) = Brake::new(BrakeState::Released);
        lever.stop("switched to dry run");
        lever.release();
        lever.pause("watch broke");
        lever.stop("a later reason");
        assert_eq!(brake.stopped().as_deref(), Some("switched to dry run"));
        assert_eq!(
            brake.proceed().await,
            Err("switched to dry run".to_string())
        );
    }

    #[tokio::test]
    async fn a_waiting_run_stops_when_the_brake_is_pulled_or_its_lever_dropped() {
        let (lever, brake) = Brake::new(BrakeState::Paused("watch broke".into()));
        let waiting = tokio::spawn({
            let brake = brake.clone();
            async move { brake.proceed().await }
        });
        lever.stop("the policy was deleted");
        assert_eq!(
            waiting.await.ok(),
            Some(Err("the policy was deleted".into()))
        );

        let (lever, brake) = Brake::new(BrakeState::Paused("watch broke".into()));
        drop(lever);
        assert!(
            brake.proceed().await.is_err(),
            "no one is left to release it"
        );
        // Released, then the watch behind it ends (its task panicked, say): no one could pull it any more.
        let (lever, brake) = Brake::new(BrakeState::Released);
        drop(lever);
        assert!(brake.stopped().is_some(), "a brake no one works is a stop");
        assert!(brake.proceed().await.is_err());
        assert!(Brake::released().proceed().await.is_ok());
        assert_eq!(Brake::released().current(), BrakeState::Released);
    }
}
