//! amrelay: a webhook relay for Prometheus Alertmanager.
//!
//! Alertmanager posts a webhook batch; amrelay gives each downstream receiver only the alerts
//! its rules select, as a valid version "4" payload, with the receiver's auth and TLS, retried
//! until delivered. The modules, in the order a request flows through them:
//!
//! 1. `server` — the listener (plain or TLS, limits) and the routes. A request loads the
//!    current [`snapshot`] once, checks the sender's credentials against it, and hands that same
//!    snapshot to its handler; the webhook handler reads the body within `max_request_bytes`.
//! 2. [`payload`] — decodes the body in one pass, borrowing from it: each alert is kept as the
//!    bytes received and parsed only for `status`, `labels` and `annotations`.
//! 3. [`route`] — pure: evaluates each receiver's [`rule`] (label conditions and Alertmanager
//!    matchers, compiled and interned at load) and encodes each receiver's payload.
//! 4. `accept` — the one way into a queue, for new batches, replayed dead letters and restored
//!    notifications alike: reserve a place at every receiver, drop duplicates (`dedup`), write
//!    to the [`spool`] (group commit; or publish to JetStream), push; all receivers or none.
//! 5. [`queue`] — each receiver's bounded queue and dispatcher: per-groupKey order, bounded
//!    concurrency. When a notification's turn comes, [`mute`] says whether its receiver is in
//!    quiet hours (`time_intervals`) or its alerts are silenced: it is sent, sent with fewer
//!    alerts, dropped, or held (`on_mute: hold`) until the mute ends.
//! 6. [`deliver`] — one notification's attempts through the receiver's pooled client ([`tls`],
//!    `signing`, an authorizer per attempt), backoff and retries, and dead letters
//!    (`deadletters` lists and replays them). A receiver with a [`template`] (a `payload`,
//!    `body` or preset) has each notification rendered once, before its first attempt, and its
//!    attempts paced by its `rate_limit`.
//!
//! Beside the flow: `memory` (the byte budgets: what is held for callers, bounded), [`config`]
//! (parsing and validating the YAML file with every error's position, given its text, path and
//! environment; the files it names — secrets, PEM, templates — are read through one reader that
//! records them for the watcher and refuses what a console receiver may not read; the console
//! file of receivers edited in the console is validated by the same code), [`reload`] (config file
//! and console file → validated config → new snapshot, swapped atomically; the file watcher in
//! `watch`, SIGHUP and `/-/reload` all go through it), `editor` (the console in one
//! place: the console file as a document, the one table of its secret fields, its file I/O off
//! the runtime's threads, the config file's `enabled:` lines found at load), `redact` (URLs as amrelay shows
//! them), `metrics` (every metric name), `test_message` and `explain` (test messages and route explanations for
//! operators), [`app`] (build, run, drain), [`cli`] and [`logging`].
//!
//! Layers, lowest first. A module uses only modules of lower layers: `.ci/import-cycles.py`
//! reads this table and fails CI on an import that goes up or sideways, on a module missing from
//! it, and on files of one folder that import each other in a circle.
//!
//! | layer | modules | what they are |
//! |---|---|---|
//! | 1 | `fingerprint` `secret` `metrics` `redact` `verified_senders` `dedup` `logging` `rule` | leaves: hashes, secrets, metric names, redaction, caches, rules |
//! | 2 | `payload` `template` `url_template` `tls` | decoding, templates (of bodies, of URLs), TLS material |
//! | 3 | `config` | the config file, validated (given its text, path and environment) |
//! | 4 | `memory` `history` `signing` `editor` | byte budgets, notification history records and queries, signatures, the console (its file, secrets, I/O) |
//! | 5 | `spool` `mute` | the store: memory, the redb file or JetStream (`spool::nats`), one `enum Store`; quiet hours and silences |
//! | 6 | `deliver` | one notification's attempts |
//! | 7 | `queue` `test_message` `history_export` | each receiver's queue; test messages; posting history records out |
//! | 8 | `snapshot` | the config a request sees |
//! | 9 | `route` | rules → per-receiver payloads |
//! | 10 | `accept` `explain` `reload` | into the queues; route explanations; reloading |
//! | 11 | `deadletters` | dead letters |
//! | 12 | `server` | the listener and every endpoint |
//! | 13 | `watch` | the file watcher |
//! | 14 | `app` `cli` | build, run, drain; the command line |
//!
//! The request path takes no lock: `clippy.toml` bans `std::sync::Mutex` and `RwLock`, and the
//! few modules off the request path that use one say so with an explicit `allow`.
#![forbid(unsafe_code)]

mod accept;
pub mod app;
pub mod cli;
pub mod config;
mod deadletters;
mod dedup;
pub mod deliver;
mod editor;
mod explain;
mod fingerprint;
mod history;
mod history_export;
pub mod logging;
mod memory;
mod metrics;
pub mod mute;
pub mod payload;
pub mod queue;
mod redact;
pub mod reload;
pub mod route;
pub mod rule;
mod secret;
mod server;
mod signing;
pub mod snapshot;
pub mod spool;
pub mod template;
mod test_message;
pub mod tls;
mod url_template;
mod verified_senders;
mod watch;

// What tests, benches and the fuzzers use of the private modules.
pub use fingerprint::fnv1a;
pub use history::{Outcome as HistoryOutcome, Query as HistoryQuery, Record as HistoryRecord};
pub use memory::Budget;
pub use test_message::rfc3339;
