//! The state the listeners, the site handle and the [`Simulator`](crate::Simulator) share: the configuration, the
//! simulated clock and latency, the injected faults, the site, the proxy's sessions and what was recorded.

use std::sync::Mutex;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::{
    Fault, FaultRule, RecordedArrival, RecordedDeletion, RecordedRequest, SimulatorConfig, http,
    lock, site, synthetic, time,
};

/// State shared by the listeners, the site handle and the [`Simulator`](crate::Simulator).
pub(crate) struct Shared {
    pub(crate) config: SimulatorConfig,
    pub(crate) clock_offset: Mutex<SignedDuration>,
    pub(crate) latency: Mutex<Duration>,
    pub(crate) faults: Mutex<Vec<FaultRule>>,
    pub(crate) site: Mutex<site::SiteState>,
    pub(crate) proxy: Mutex<http::ProxyState>,
    pub(crate) requests: Mutex<Vec<RecordedRequest>>,
    pub(crate) arrivals: Mutex<Vec<RecordedArrival>>,
    pub(crate) deletions: Mutex<Vec<RecordedDeletion>>,
}

impl Shared {
    /// A fresh simulator's state as of now: the site empty, or holding the seed's synthetic users.
    pub(crate) fn new(config: SimulatorConfig) -> Shared {
        let start = Timestamp::now();
        let mut state = site::SiteState::new(config.seed, &config.never_used_sentinel, start);
        if config.users > 0 {
            synthetic::generate(&mut state, config.seed, config.users, start);
        }
        Shared {
            clock_offset: Mutex::new(SignedDuration::ZERO),
            latency: Mutex::new(config.latency),
            faults: Mutex::new(Vec::new()),
            site: Mutex::new(state),
            proxy: Mutex::new(http::ProxyState::default()),
            requests: Mutex::new(Vec::new()),
            arrivals: Mutex::new(Vec::new()),
            deletions: Mutex::new(Vec::new()),
            config,
        }
    }

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
