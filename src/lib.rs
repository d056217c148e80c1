//! qlik-license-reclaimer: takes Qlik Sense Enterprise licences back from users who no longer use them.
//!
//! Layout: [`model`] and [`plan`] are the pure domain (no I/O); [`qrs`] talks to Qlik; [`policy`] is the edge
//! where the resource becomes the program's own values; [`run`] ties one run together for every entry point; the
//! Kubernetes side (`k8s`) and the command line ([`cli`]) call it. The QRS simulator is the `qrs-simulator` crate.
//!
//! Only what the tests and benchmarks use is public. The crate-private modules warn on a `pub` that reaches no
//! further than the crate (`unreachable_pub`), so their items say `pub(crate)`.

pub mod brake;
pub mod cli;
pub mod credentials;
pub mod demo;
pub mod files;
#[warn(unreachable_pub)]
pub(crate) mod k8s;
pub mod model;
pub mod notice;
pub mod notify;
pub mod plan;
pub mod policy;
pub mod qrs;
pub mod record;
pub mod report;
pub mod restore;
pub mod run;
#[warn(unreachable_pub)]
pub(crate) mod schedule;
#[warn(unreachable_pub)]
pub(crate) mod shutdown;

/// Helpers the unit tests of several modules share.
#[cfg(test)]
pub(crate) mod testing {
    /// An instant written as RFC 3339, for tests.
    pub(crate) fn ts(text: &str) -> jiff::Timestamp {
        text.parse().expect("a valid RFC 3339 instant")
    }
}
