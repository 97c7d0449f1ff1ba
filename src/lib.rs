//! amrelay: a webhook relay for Prometheus Alertmanager.
#![forbid(unsafe_code)]

pub mod app;
pub mod cli;
pub mod config;
pub mod deadletters;
pub mod dedup;
pub mod deliver;
pub mod explain;
pub mod logging;
pub mod metrics;
pub mod payload;
pub mod queue;
pub mod route;
pub mod rule;
pub mod server;
pub mod signing;
pub mod snapshot;
pub mod spool;
pub mod testmsg;
pub mod tls;
pub mod watch;
