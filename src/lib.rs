//! qlik-license-reclaimer: takes Qlik Sense Enterprise licences back from users who no longer use them.
//!
//! Layout: [`model`] and [`plan`] are the pure domain (no I/O); [`qrs`] talks to Qlik; [`run`] ties one run
//! together for every entry point; [`simulator`] is the bundled stand-in for a Qlik site.

pub mod cli;
pub mod credentials;
pub mod demo;
pub(crate) mod k8s;
pub mod model;
pub mod plan;
pub mod policy;
pub mod qrs;
pub(crate) mod report;
pub mod run;
pub(crate) mod schedule;
