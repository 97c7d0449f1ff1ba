//! Integration tests over real sockets: one binary, so linking stays fast.

mod check_config;
mod conditions;
mod console;
mod delivery;
mod deploy_checks;
mod durability;
mod hostile;
mod inbound;
mod ingest;
mod operator;
mod payload;
mod properties;
mod real_programs;
mod reload;
mod route_test;
mod scaling;
mod secrets;
mod support;
mod tls_auth;
