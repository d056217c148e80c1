//! End-to-end tests: the QRS client, the run and the CLI against the bundled simulator, and the committed CRD.
//! One test binary, so the crate is linked once.

mod authoring;
mod bulk;
mod cli;
mod client;
mod contract;
mod crd;
mod layers;
mod moves;
mod notice;
mod restore;
mod seat_rules;
#[path = "../support/mod.rs"]
mod support;
mod trust;
