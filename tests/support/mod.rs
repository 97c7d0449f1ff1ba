//! Fixtures shared by both integration-test targets: `it` (runs anywhere a Rust toolchain
//! does) and `external` (drives outside programs). One concept per file. `it` uses every item
//! here and checks them for dead code; helpers that only one target uses live in that target
//! (tests/it: the binary as a process, credentials, a TLS client; tests/external: outside
//! programs, a browser, a relay after traffic).
//!
//! - [`eventually`]: the one wait loop: polls a condition until it holds or a timeout passes;
//! - [`relay`]: a relay inside the test process on 127.0.0.1:0, and its metrics;
//! - [`binary`]: the real binary as a child process, its log lines and its address;
//! - [`client`]: a small HTTP client that reads whole answers;
//! - [`payloads`]: webhook payloads as Alertmanager sends them;
//! - [`downstream`]: recording downstream receivers that fail on demand;
//! - [`pki`]: a CA with server and client certificates, generated per test;
//! - [`spool`]: configs and batches for the spool's durability tests;
//! - [`token_endpoint`]: a local OAuth2 token endpoint that records and answers as scripted.
//! - [`capacity`]: a downstream of limited capacity that counts the concurrency it is offered;
//! - [`serve`]: a local server for fakes of outside APIs (Discord, Slack, Telegram, OAuth2).

use std::time::Duration;

pub mod binary;
pub mod capacity;
pub mod client;
pub mod downstream;
pub mod eventually;
pub mod payloads;
pub mod pki;
pub mod relay;
pub mod serve;
pub mod spool;
pub mod token_endpoint;

pub use client::*;
pub use downstream::*;
pub use payloads::*;
pub use pki::*;
pub use relay::*;
pub use spool::*;

/// Every wait in the tests is bounded by this.
pub const WAIT: Duration = Duration::from_secs(10);
