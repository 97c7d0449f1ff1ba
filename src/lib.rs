//! amrelay: a webhook relay for Prometheus Alertmanager.
//!
//! Alertmanager posts a webhook batch; amrelay gives each downstream receiver only the alerts
//! its rules select, as a valid version "4" payload, with the receiver's auth and TLS, retried
//! until delivered. The modules, in the order a request flows through them:
//!
//! 1. [`server`] — the listener (plain or TLS, limits, sender auth) and the routes; the webhook
//!    handler reads the body within `max_request_bytes`.
//! 2. [`payload`] — decodes the body in one pass, borrowing from it: each alert is kept as the
//!    bytes received and parsed only for `status`, `labels` and `annotations`.
//! 3. [`snapshot`] — the current config, swapped atomically by every reload (file watcher in
//!    [`watch`], SIGHUP, `/-/reload`); a request loads it once and finishes on it.
//! 4. [`route`] — evaluates each receiver's [`rule`] (label conditions and Alertmanager
//!    matchers, compiled and interned at load) and encodes each receiver's payload; then accepts
//!    the batch into every receiver's queue, or into none.
//! 5. [`spool`] — with a spool, the batch is on disk (group commit) before the 200; [`dedup`]
//!    drops HA duplicates.
//! 6. [`queue`] — each receiver's bounded queue and dispatcher: per-groupKey order, bounded
//!    concurrency.
//! 7. [`deliver`] — one attempt through the receiver's pooled client ([`tls`], [`signing`]),
//!    backoff and retries, and dead letters ([`deadletters`] lists and replays them).
//!
//! Beside the flow: [`config`] (the YAML file, validated completely with every error's
//! position), [`metrics`] (every metric name), [`testmsg`] and [`explain`] (test messages and
//! route explanations for operators), [`app`] (build, run, drain), [`cli`] and [`logging`].
#![forbid(unsafe_code)]

pub mod app;
pub mod cli;
pub mod config;
pub mod deadletters;
pub mod dedup;
pub mod deliver;
pub mod explain;
pub mod fingerprint;
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
