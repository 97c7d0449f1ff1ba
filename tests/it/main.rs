//! Integration tests over real sockets: one binary, so linking stays fast. They need nothing
//! but a Rust toolchain: no outside program, no root. Tests that drive Alertmanager,
//! Prometheus, promtool, amtool, kubectl or Chromium, or mount a filesystem, are in
//! tests/external (`cargo test --features external-tests --test external`).

// Tests are not the relay's request path: they may use std locks.
#![allow(clippy::disallowed_types)]

#[path = "../support/mod.rs"]
mod support;

// Helpers only these tests use.
mod chat_apis;
mod connect_proxy;
mod credentials;
mod discord_api;
mod process;
mod tls_client;
mod vendor_apis;

mod browser;
mod check_config;
mod concurrency;
mod conditions;
mod connections;
mod console;
mod console_receivers;
mod delivery;
mod durability;
mod exposure;
mod fidelity;
mod grafana;
mod group_keys;
mod history;
mod hostile;
mod http_config;
mod inbound;
mod ingest;
mod matchers;
mod memory;
mod operator;
mod payload;
mod presets;
mod presets_more;
mod properties;
mod quiet_hours;
mod redirects;
mod reload;
mod replay;
mod route_test;
mod scaling;
mod secrets;
mod template_bombs;
mod templates;
mod tenants;
mod threads;
mod threads_apis;
mod tls_auth;
mod url_file;
mod url_templates;
mod vendor_answers;
