//! Turns a [`RawConfig`] into the runtime's [`ServerConfig`] and [`ReceiverConfig`]s, collecting
//! every problem instead of stopping at the first.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::issues::Issues;
use super::raw::RawConfig;
use super::receiver::{
    DEFAULT_ADAPTIVE_CONCURRENCY_CEILING, ReceiverDefaults, concurrency, positive, receivers, retry_policy,
};
use super::{Concurrency, DeliveryConfig, Issue, ReceiverConfig, RetryPolicy, ServerConfig};

/// Loopback: nothing is reachable from other hosts until the config says so.
const DEFAULT_LISTEN_ADDRESS: &str = "127.0.0.1:9098";
const DEFAULT_MAX_REQUEST_BYTES: u64 = 8 * 1024 * 1024;
const DEFAULT_QUEUE_CAPACITY: usize = 10_000;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_SPOOL_MAX_BYTES: u64 = 1024 * 1024 * 1024;
/// A quarter of the default `server.limits.max_memory_bytes`: the rest of the budget is left to
/// bodies being read and bodies in delivery.
pub const DEFAULT_SPOOL_MEMORY_WINDOW_BYTES: u64 = 32 * 1024 * 1024;
const DEFAULT_MAX_DEAD_LETTERS: usize = 1000;
/// Dead letters' body bytes kept at most (the oldest go first): an eighth of a GiB-sized spool,
/// and half the default byte budget when they are kept in memory.
pub const DEFAULT_MAX_DEAD_LETTER_BYTES: u64 = 64 * 1024 * 1024;

/// Validates the whole file.
pub fn validate(
    mut raw: RawConfig,
    base_dir: &Path,
    environment: &super::Environment,
    text: &str,
) -> Result<Validated, Vec<Issue>> {
    let mut issues = Issues::new(base_dir, text);

    let listen_address = match &raw.server.listen_address {
        Some(spanned) => {
            if !is_host_port(&spanned.value) {
                issues.add(
                    Some(&spanned.referenced),
                    "server.listen_address",
                    format!("{:?} is not host:port", spanned.value),
                );
            }
            spanned.value.clone()
        }
        None => DEFAULT_LISTEN_ADDRESS.into(),
    };
    let max_request_bytes = positive(
        &mut issues,
        raw.server.max_request_bytes.as_ref(),
        "server.max_request_bytes",
        DEFAULT_MAX_REQUEST_BYTES,
    );
    let mut inbound = super::security::inbound(&mut issues, &raw.server);
    if inbound.limits.max_memory_bytes < max_request_bytes {
        let at = raw.server.limits.as_ref().map(|l| &l.referenced);
        issues.add(
            at,
            "server.limits.max_memory_bytes",
            format!(
                "must be at least server.max_request_bytes ({max_request_bytes}): no batch could ever be read \
                 within the budget"
            ),
        );
    }

    let delivery = &raw.delivery;
    let queue_capacity =
        positive(&mut issues, delivery.queue_capacity.as_ref(), "delivery.queue_capacity", DEFAULT_QUEUE_CAPACITY);
    let ceiling = positive(
        &mut issues,
        delivery.adaptive_concurrency_ceiling.as_ref(),
        "delivery.adaptive_concurrency_ceiling",
        DEFAULT_ADAPTIVE_CONCURRENCY_CEILING,
    );
    let max_concurrency = match &delivery.max_concurrency {
        Some(v) => concurrency(&mut issues, Some(&v.referenced), "delivery.max_concurrency", v.value, ceiling),
        None => Concurrency::Adaptive { ceiling },
    };
    let timeout = match &delivery.timeout {
        Some(t) if t.value.0.is_zero() => {
            issues.add(Some(&t.referenced), "delivery.timeout", "must be greater than 0");
            DEFAULT_TIMEOUT
        }
        Some(t) => t.value.0,
        None => DEFAULT_TIMEOUT,
    };
    let retry = match &delivery.retry {
        Some(r) => retry_policy(&mut issues, &r.referenced, "delivery.retry", RetryPolicy::default(), &r.value),
        None => RetryPolicy::default(),
    };
    let process_delivery = delivery_config(&mut issues, delivery);
    let shared_templates = super::template::shared(&mut issues, &raw.templates);

    let tenancy = super::tenancy::tenancy(&mut issues, raw.tenancy.as_ref());
    let proxy = inbound.auth.proxy.is_some();
    let mut known: Vec<&str> = inbound.auth.basic_users.keys().map(String::as_str).collect();
    if inbound.auth.bearer.is_some() {
        known.push(&inbound.auth.bearer_user);
    }
    let access = super::access::access(&mut issues, raw.server.access.as_ref(), tenancy.is_some(), proxy, &known);
    if access.is_some() && !inbound.auth.is_enabled() {
        let at = raw.server.access.as_ref().map(|a| &a.referenced);
        issues.warn(
            at,
            "server.access",
            "has no effect: nobody signs in (set basic_auth_users, authorization or auth_proxy), so every caller is \
             anonymous and may do everything",
        );
    }
    inbound.auth.access = access;
    let tenant_label = tenancy.as_ref().map(|t| t.label.clone());
    let time_intervals = super::time_interval::parse(
        &mut issues,
        &[("time_intervals", &raw.time_intervals), ("mute_time_intervals", &raw.mute_time_intervals)],
    );
    let defaults = ReceiverDefaults::new(
        queue_capacity,
        max_concurrency,
        timeout,
        retry,
        shared_templates,
        time_intervals,
        tenant_label,
    );
    let receivers = receivers(&mut issues, &raw.receivers, &defaults, environment);
    let console = super::console_policy::policy(&mut issues, raw.console.as_ref());
    let history = super::history::history(&mut issues, raw.history.as_ref());
    let history_export = super::history::export(&mut issues, raw.history.as_mut(), &defaults, environment);
    if let Some(nats) = &raw.delivery.nats {
        super::mute::hold_needs_a_local_queue(&mut issues, &nats.referenced, &receivers);
    }

    if issues.list.is_empty() {
        let server = ServerConfig { listen_address, max_request_bytes: max_request_bytes as usize, inbound, tenancy };
        Ok(Validated {
            server,
            delivery: process_delivery,
            receivers,
            defaults,
            console,
            history,
            history_export,
            files: issues.files,
            warnings: issues.warnings,
        })
    } else {
        Err(issues.list)
    }
}

/// The validated parts of a config file.
pub struct Validated {
    pub server: ServerConfig,
    pub delivery: DeliveryConfig,
    pub receivers: Vec<ReceiverConfig>,
    pub defaults: ReceiverDefaults,
    pub console: super::ConsolePolicy,
    pub history: super::HistoryConfig,
    pub history_export: Option<super::history::HistoryExport>,
    pub files: Vec<PathBuf>,
    pub warnings: Vec<Issue>,
}

fn delivery_config(issues: &mut Issues, raw: &super::raw::RawDelivery) -> DeliveryConfig {
    let spool = raw.spool.as_ref().and_then(|spanned| {
        let (at, spool) = (&spanned.referenced, &spanned.value);
        let Some(path) = spool.path.as_deref().filter(|p| !p.is_empty()) else {
            issues.add(Some(at), "delivery.spool.path", "is required when delivery.spool is set");
            return None;
        };
        let max_bytes = spool.max_bytes.unwrap_or(DEFAULT_SPOOL_MAX_BYTES);
        if max_bytes == 0 {
            issues.add(Some(at), "delivery.spool.max_bytes", "must be greater than 0");
        }
        let memory_window_bytes = spool.memory_window_bytes.unwrap_or(DEFAULT_SPOOL_MEMORY_WINDOW_BYTES);
        if memory_window_bytes == 0 {
            issues.add(Some(at), "delivery.spool.memory_window_bytes", "must be greater than 0");
        }
        Some(super::SpoolConfig {
            path: issues.resolve(path),
            max_bytes,
            memory_window_bytes,
            group_commit: spool.group_commit.unwrap_or(true),
        })
    });
    let nats = raw.nats.as_ref().and_then(|nats| super::nats::nats_config(issues, nats));
    if let (Some(_), Some(nats)) = (&raw.spool, &raw.nats) {
        issues.add(
            Some(&nats.referenced),
            "delivery.nats",
            "delivery.nats and delivery.spool are mutually exclusive: JetStream is the durable queue",
        );
    }
    let dedup_window = raw.dedup_window.as_ref().map(|d| d.value.0).filter(|d| !d.is_zero());
    let max_dead_letters =
        positive(issues, raw.max_dead_letters.as_ref(), "delivery.max_dead_letters", DEFAULT_MAX_DEAD_LETTERS);
    let max_dead_letter_bytes = positive(
        issues,
        raw.max_dead_letter_bytes.as_ref(),
        "delivery.max_dead_letter_bytes",
        DEFAULT_MAX_DEAD_LETTER_BYTES,
    );
    let dedup_key = raw.dedup_key_file.as_ref().and_then(|file| {
        let field = "delivery.dedup_key_file";
        let key = issues.read_secret(&file.referenced, field, &file.value)?;
        if key.expose().len() < 16 {
            issues.add(
                Some(&file.referenced),
                field,
                "the key must be at least 16 characters (e.g. `openssl rand -hex 32`)",
            );
            return None;
        }
        Some(key)
    });
    DeliveryConfig { spool, nats, dedup_window, dedup_key, max_dead_letters, max_dead_letter_bytes }
}

fn is_host_port(text: &str) -> bool {
    text.rsplit_once(':').is_some_and(|(host, port)| port.parse::<u16>().is_ok() && !host.contains(char::is_whitespace))
}

#[cfg(test)]
mod concurrency_tests {
    use std::path::Path;

    use crate::config::{Concurrency, Environment, from_str};

    fn parse(text: &str) -> Result<Vec<Concurrency>, String> {
        from_str(text, Path::new("/nonexistent/amrelay.yml"), &Environment::empty())
            .map(|c| c.receivers.iter().map(|r| r.max_concurrency).collect())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn adaptive_is_the_default_and_a_number_pins_it() {
        let receivers = "receivers:\n  - {name: a, url: http://127.0.0.1:1/}\n  - {name: b, url: http://127.0.0.1:1/, max_concurrency: 3}\n  - {name: c, url: http://127.0.0.1:1/, adaptive_concurrency_ceiling: 32}\n";
        assert_eq!(
            parse(receivers).unwrap(),
            [Concurrency::Adaptive { ceiling: 256 }, Concurrency::Fixed(3), Concurrency::Adaptive { ceiling: 32 }]
        );
        let pinned = format!("delivery: {{max_concurrency: 8}}\n{receivers}");
        assert_eq!(
            parse(&pinned).unwrap(),
            // A ceiling bounds the adaptive limit only; a pinned number stays pinned.
            [Concurrency::Fixed(8), Concurrency::Fixed(3), Concurrency::Fixed(8)]
        );
        let ceiling = format!("delivery: {{max_concurrency: adaptive, adaptive_concurrency_ceiling: 64}}\n{receivers}");
        assert_eq!(
            parse(&ceiling).unwrap(),
            [Concurrency::Adaptive { ceiling: 64 }, Concurrency::Fixed(3), Concurrency::Adaptive { ceiling: 32 }]
        );
    }

    #[test]
    fn a_bad_max_concurrency_is_an_error_naming_the_field() {
        for (text, field) in [
            ("delivery: {max_concurrency: 0}\nreceivers: []\n", "delivery.max_concurrency"),
            ("delivery: {max_concurrency: fast}\nreceivers: []\n", "adaptive"),
            ("delivery: {adaptive_concurrency_ceiling: 0}\nreceivers: []\n", "delivery.adaptive_concurrency_ceiling"),
            (
                "receivers:\n  - {name: a, url: http://127.0.0.1:1/, max_concurrency: 0}\n",
                "receivers[0].max_concurrency",
            ),
        ] {
            let error = parse(text).unwrap_err();
            assert!(error.contains(field), "{text}: {error}");
        }
    }
}
