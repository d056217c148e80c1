//! The decision engine of qlik-license-reclaimer: pure functions of values, no I/O.
//!
//! [`model`] is the vocabulary (allocations, users, access types, the rule that takes a seat); [`plan`] decides
//! which seats to reclaim and why; [`authoring`] judges whether a Professional user authored anything lately
//! (right-sizing's evidence); [`notice`] decides who is told first and when; [`schedule`] says when a policy runs
//! next. Everything else (Qlik, Kubernetes, files, e-mail) lives in the `qlik-license-reclaimer` crate and
//! calls in here; nothing here calls out. The crate's dependency list keeps that true: no Kubernetes client, no
//! HTTP, no async runtime.

pub mod authoring;
pub mod model;
pub mod notice;
pub mod plan;
pub mod schedule;

/// Helpers the unit tests of several modules share.
#[cfg(test)]
pub(crate) mod testing {
    /// An instant written as RFC 3339, for tests.
    pub(crate) fn ts(text: &str) -> jiff::Timestamp {
        text.parse().expect("a valid RFC 3339 instant")
    }
}
