//! Integration tests over real sockets: one binary, so linking stays fast.

mod check_config;
mod conditions;
mod delivery;
mod durability;
mod ingest;
mod operator;
mod payload;
mod reload;
mod support;
mod tls_auth;
