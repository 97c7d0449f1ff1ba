//! Integration tests over real sockets: one binary, so linking stays fast.

mod check_config;
mod conditions;
mod delivery;
mod deploy_checks;
mod ingest;
mod payload;
mod real_programs;
mod support;
mod tls_auth;
