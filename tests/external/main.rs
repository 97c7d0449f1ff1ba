//! Integration tests that drive outside programs or need root: a real Alertmanager and
//! Prometheus around amrelay, promtool, amtool and kubectl on what deploy/ ships, the console
//! in headless Chromium, and a disk that fills up (a tmpfs mount). Built and run only with
//! `cargo test --features external-tests --test external`; `.ci/run` installs the Debian
//! packages first (prometheus, prometheus-alertmanager, chromium, chromium-driver, nats-server), and each
//! test fails naming the package it misses. Everything else is in tests/it, which runs on a
//! machine with only a Rust toolchain.

// Tests are not the relay's request path: they may use std locks.
#![allow(clippy::disallowed_types)]

// These tests use a part of the shared fixtures. The `it` target uses all of them and checks
// them for dead code; checking again here would only flag what `it` alone needs.
#[path = "../support/mod.rs"]
#[allow(dead_code)]
mod support;

// Helpers only these tests use.
mod browser;
mod nats_cluster;
mod programs;
mod traffic;

mod console;
mod console_form;
mod console_history;
mod console_tenants;
mod deploy_checks;
mod disk_full;
mod fidelity;
mod nats;
mod nats_history;
mod real_programs;
