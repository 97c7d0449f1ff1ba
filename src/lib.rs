//! amrelay: a webhook relay for Prometheus Alertmanager.
#![forbid(unsafe_code)]

pub mod config;
pub mod rule;
pub mod tls;
pub mod payload;
