//! qlik-license-reclaimer: takes Qlik Sense Enterprise licences back from users who no longer use them.

pub mod credentials;
pub mod model;
pub mod policy;
pub mod qrs;
pub mod schedule;
pub mod simulator;
