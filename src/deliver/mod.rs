//! Delivering one notification: attempts, backoff, and the dead letter when the budget is spent.
//!
//! The budget is `max_attempts` attempts within `max_elapsed` of acceptance. The target is loaded
//! afresh for every attempt, so a reload that fixes a URL or a token helps notifications already
//! retrying. This module knows nothing of queues: [`crate::queue`] decides when a notification is
//! delivered (per-groupKey order, concurrency) and calls [`deliver`].

mod attempt;
mod auth;
mod backoff;
mod client;
mod counts;
mod downstream;
mod failure;
mod guard;
pub mod history;
pub mod oauth2;
mod preset_answers;
mod ratelimit;
mod redirect;
mod render;
mod secrets;
mod thread_memory;
mod threaded;
mod verdict;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

pub use attempt::{IDEMPOTENCY_KEY, Target};
pub use auth::{Authorizer, Used};
pub use backoff::{delay, parse_retry_after};
pub use client::{HttpClient, USER_AGENT_VALUE};
pub use counts::{CountsView, DeliveryCounts};
pub use downstream::{DeliveryMetrics, DeliveryState, Downstream};
pub use failure::{Failure, FailureKind, status_class};
pub use ratelimit::RateLimiter;
pub use render::Prepared;
pub use thread_memory::{MAX_PAGE as THREADS_MAX_PAGE, ThreadEntry, ThreadMemory, ThreadPage};

use crate::history::{Outcome, Summary};
use crate::metrics as m;
use crate::spool::{Header, Stored, unix_ms};

/// Why a notification was given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLetterReason {
    /// The downstream answered a status that retrying cannot fix (4xx other than 408/429).
    NonRetryable,
    MaxAttempts,
    MaxElapsed,
    /// The receiver's template could not render it (fuel, a type error, the size limit).
    Template,
    /// Its receiver is no longer configured: restored after a restart without it, or taken from
    /// the shared queue by a replica whose config lacks it.
    ReceiverRemoved,
    /// A tenant's receiver reached for an address its outbound guard refuses (`tenancy:`).
    ForbiddenAddress,
}

impl DeadLetterReason {
    pub const ALL: [DeadLetterReason; 6] = [
        DeadLetterReason::NonRetryable,
        DeadLetterReason::MaxAttempts,
        DeadLetterReason::MaxElapsed,
        DeadLetterReason::Template,
        DeadLetterReason::ReceiverRemoved,
        DeadLetterReason::ForbiddenAddress,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterReason::NonRetryable => "non_retryable",
            DeadLetterReason::MaxAttempts => "max_attempts",
            DeadLetterReason::MaxElapsed => "max_elapsed",
            DeadLetterReason::Template => "template",
            DeadLetterReason::ReceiverRemoved => "receiver_removed",
            DeadLetterReason::ForbiddenAddress => "forbidden_address",
        }
    }
}

/// The dead letter of a notification whose receiver is gone, counted in
/// `amrelay_notifications_dead_lettered_total{reason="receiver_removed"}` like every other: the
/// one way the restore at start and the shared queue's consumer give such a notification up.
pub fn receiver_removed(receiver: &str) -> crate::spool::DeadInfo {
    let reason = DeadLetterReason::ReceiverRemoved.as_str();
    metrics::counter!(m::NOTIFICATIONS_DEAD_LETTERED, "receiver" => receiver.to_owned(), "reason" => reason)
        .increment(1);
    crate::spool::DeadInfo {
        receiver: receiver.to_owned(),
        reason: reason.into(),
        error: "receiver no longer in the config".into(),
        at_unix_ms: unix_ms(SystemTime::now()),
        // Unknown: a receiver of this name added later may send elsewhere.
        destination: None,
    }
}

/// One receiver's notification, as it is sent, retried, spooled and dead-lettered.
#[derive(Debug)]
pub struct Outbound {
    /// Stable across retries and restarts: sent as `Idempotency-Key`.
    pub id: String,
    /// Its place in the spool (assigned when it is accepted).
    pub seq: u64,
    pub group_key: Arc<str>,
    pub body: Bytes,
    pub alerts: usize,
    /// When it was accepted, for `max_elapsed` and the latency metric.
    pub accepted_at: Instant,
    pub accepted_unix_ms: u64,
    /// Attempts already made (before a restart).
    pub attempts: u32,
    /// The body is only in the spool file (`body` is empty): it is read back before delivery.
    pub on_disk: bool,
    /// Its alerts' facts for the history record, gathered when it was routed; `None` when history
    /// is off, and for a notification restored or replayed (its body is decoded then).
    pub summary: Option<Summary>,
}

impl Outbound {
    /// A notification accepted now, not yet numbered by the spool.
    pub fn new(id: String, group_key: Arc<str>, body: Bytes, alerts: usize) -> Outbound {
        Outbound {
            id,
            seq: 0,
            group_key,
            body,
            alerts,
            accepted_at: Instant::now(),
            accepted_unix_ms: unix_ms(SystemTime::now()),
            attempts: 0,
            on_disk: false,
            summary: None,
        }
    }

    /// The same, with its alerts' facts for history (see [`Outbound::summary`]).
    pub fn with_summary(self, summary: Option<Summary>) -> Outbound {
        Outbound { summary, ..self }
    }

    /// A notification read back from the spool, with its age and the attempts already made. An
    /// empty body stayed on disk.
    pub fn restored(stored: Stored) -> Outbound {
        let age = Duration::from_millis(unix_ms(SystemTime::now()).saturating_sub(stored.header.accepted_unix_ms));
        let on_disk = stored.body.is_empty();
        Outbound {
            id: stored.header.id,
            seq: stored.seq,
            group_key: stored.header.group_key.into(),
            body: stored.body,
            alerts: stored.header.alerts,
            accepted_at: Instant::now().checked_sub(age).unwrap_or_else(Instant::now),
            accepted_unix_ms: stored.header.accepted_unix_ms,
            attempts: stored.header.attempts,
            on_disk,
            summary: None,
        }
    }

    /// A dead letter sent again: same id (so a downstream that got it can drop it), a fresh budget.
    pub fn replayed(stored: Stored) -> Outbound {
        Outbound::new(stored.header.id, stored.header.group_key.into(), stored.body, stored.header.alerts)
    }

    /// The spool header describing this notification.
    pub fn header(&self) -> Header {
        Header {
            group_key: self.group_key.to_string(),
            id: self.id.clone(),
            accepted_unix_ms: self.accepted_unix_ms,
            attempts: self.attempts,
            alerts: self.alerts,
            dead: None,
        }
    }
}

/// Told the outcome and round-trip time of every attempt: how the queue's adaptive concurrency
/// learns what the downstream takes, without delivery knowing of queues.
pub trait AttemptObserver: Send + Sync {
    /// One attempt took `rtt` and ended in `failure`, or in a 2xx when `None`.
    fn attempted(&self, rtt: Duration, failure: Option<&Failure>);
}

/// Delivers `item`, retrying as its receiver's policy allows, until it is delivered or
/// dead-lettered, telling `observer` of every attempt. At shutdown it returns after the current
/// attempt, leaving the notification in the spool for the next start.
pub async fn deliver(downstream: &Downstream, item: Outbound, observer: &dyn AttemptObserver) {
    let mut attempt: u32 = item.attempts;
    // Rendered once, with the template current at the first attempt, and kept for the retries.
    let mut prepared: Option<Prepared> = None;
    loop {
        if downstream.stop.is_cancelled() {
            return;
        }
        let target = downstream.target.load_full();
        let ready = match prepared.take() {
            Some(ready) => ready,
            None => match Prepared::render(&target, &item.body).await {
                Ok(ready) => ready,
                Err(e) => {
                    let failure = Failure::new(FailureKind::Other, format!("template: {e}"));
                    dead_letter(downstream, item, attempt, DeadLetterReason::Template, &failure);
                    return;
                }
            },
        };
        if let Some(bucket) = &target.rate_limit {
            let wait = bucket.reserve();
            if !wait.is_zero() {
                metrics::histogram!(m::RATE_LIMIT_WAIT, "receiver" => downstream.name.to_string())
                    .record(wait.as_secs_f64());
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = downstream.stop.cancelled() => return,
                }
            }
        }
        attempt += 1;
        let url = ready.url(&target);
        let (result, took) = match target.thread {
            Some(spec) => {
                // Boxed, as below: the client's future is large, and held inline it would make
                // every notification's delivery state as large.
                let send = Box::pin(threaded::send(
                    downstream,
                    &target,
                    spec,
                    url,
                    ready.content_type.clone(),
                    ready.attempt_body(&target),
                    &item,
                ));
                attempt::timed(send).await
            }
            None => {
                let body = ready.attempt_body(&target);
                let send = Box::pin(target.send_judged(url, ready.content_type.clone(), body, Some(&item.id)));
                let (result, took) = attempt::timed(send).await;
                (result.map(|status| (status, "")), took)
            }
        };
        prepared = Some(ready);
        downstream.metrics.attempt_duration.record(took.as_secs_f64());
        observer.attempted(took, result.as_ref().err());
        let failure = match result {
            Ok((status, thread)) => {
                debug_assert_eq!(status_class(status), "2xx");
                downstream.metrics.attempts_2xx.increment(1);
                downstream.spool.delivered(&downstream.name, item.seq);
                let ending = history::Ending {
                    attempts: attempt,
                    http_status: Some(status.as_u16()),
                    thread: Some(thread).filter(|t| !t.is_empty()),
                    ..Default::default()
                };
                history::finished(downstream, history::Finished::outbound(&item), Outcome::Delivered, ending);
                downstream.metrics.delivered.increment(1);
                downstream.counts.delivered();
                downstream.metrics.latency.record(item.accepted_at.elapsed().as_secs_f64());
                downstream.record_success();
                tracing::debug!(receiver = %downstream.name, group_key = %item.group_key, attempt, alerts = item.alerts, "delivered");
                return;
            }
            Err(failure) => failure,
        };
        metrics::counter!(m::DELIVERY_ATTEMPTS, "receiver" => downstream.name.to_string(), "outcome" => failure.outcome_label()).increment(1);
        downstream.counts.failed_attempt();
        downstream.record_failure(failure.to_string());

        let policy = target.retry;
        let wait = delay(&policy, attempt, failure.retry_after);
        let give_up = if failure.kind == FailureKind::ForbiddenAddress {
            Some(DeadLetterReason::ForbiddenAddress)
        } else if !failure.is_retryable() {
            Some(DeadLetterReason::NonRetryable)
        } else if attempt >= policy.max_attempts {
            Some(DeadLetterReason::MaxAttempts)
        } else if item.accepted_at.elapsed() + wait > policy.max_elapsed {
            Some(DeadLetterReason::MaxElapsed)
        } else {
            None
        };
        if let Some(reason) = give_up {
            dead_letter(downstream, item, attempt, reason, &failure);
            return;
        }
        downstream.spool.attempted(&downstream.name, item.seq, attempt);
        tracing::warn!(
            receiver = %downstream.name, group_key = %item.group_key, attempt, error = %failure,
            retry_in = %crate::config::duration::format(wait), "delivery failed, will retry"
        );
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = downstream.stop.cancelled() => return,
        }
    }
}

/// The receiver's destination identity now (see [`crate::spool::Spool::destination_identity`]):
/// its resolved URL and its preset, hashed with the spool's key; `None` with the shared queue.
pub fn destination_identity(downstream: &Downstream) -> Option<String> {
    let target = downstream.target.load();
    let preset = target.template.as_ref().and_then(|t| t.preset()).map_or("", |p| p.template_name());
    downstream.spool.destination_identity(&target.url.to_string(), preset)
}

fn dead_letter(downstream: &Downstream, item: Outbound, attempts: u32, reason: DeadLetterReason, failure: &Failure) {
    downstream.counts.dead_lettered();
    metrics::counter!(m::NOTIFICATIONS_DEAD_LETTERED, "receiver" => downstream.name.to_string(), "reason" => reason.as_str()).increment(1);
    tracing::error!(
        receiver = %downstream.name, group_key = %item.group_key, id = %item.id, alerts = item.alerts, attempts,
        reason = reason.as_str(), error = %failure, "notification dead-lettered"
    );
    let mut header = item.header();
    header.attempts = attempts;
    let ending = history::Ending {
        attempts,
        reason: Some(reason.as_str()),
        http_status: match failure.kind {
            FailureKind::Status(status) | FailureKind::Refused { status, .. } => Some(status.as_u16()),
            _ => None,
        },
        error: Some(failure.to_string()),
        thread: None,
    };
    history::finished(downstream, history::Finished::outbound(&item), Outcome::DeadLettered, ending);
    let info = crate::spool::DeadInfo {
        receiver: downstream.name.to_string(),
        reason: reason.as_str().to_owned(),
        error: failure.to_string(),
        at_unix_ms: unix_ms(SystemTime::now()),
        destination: destination_identity(downstream),
    };
    downstream.spool.dead_letter(&downstream.name, item.seq, header, item.body, info);
}
