//! Integration tests over real sockets: one binary, so linking stays fast.

mod check_config;
mod conditions;
mod console;
mod delivery;
mod deploy_checks;
mod durability;
mod ingest;
mod operator;
mod payload;
mod real_programs;
mod reload;
mod route_test;
mod scaling;
mod support;
mod tls_auth;
