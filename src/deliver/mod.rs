//! Delivering one notification: attempts, backoff, and the dead letter when the budget is spent.
//!
//! The budget is `max_attempts` attempts within `max_elapsed` of acceptance. The target is loaded
//! afresh for every attempt, so a reload that fixes a URL or a token helps notifications already
//! retrying.

mod attempt;
mod backoff;
mod client;

pub use attempt::{Failure, FailureKind, IDEMPOTENCY_KEY, Target, USER_AGENT_VALUE, status_class};
pub use backoff::{delay, parse_retry_after};
pub use client::HttpClient;

use crate::metrics as m;
use crate::queue::{Queued, Shared};

/// Why a notification was given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLetterReason {
    /// The downstream answered a status that retrying cannot fix (4xx other than 408/429).
    NonRetryable,
    MaxAttempts,
    MaxElapsed,
}

impl DeadLetterReason {
    pub const ALL: [DeadLetterReason; 3] =
        [DeadLetterReason::NonRetryable, DeadLetterReason::MaxAttempts, DeadLetterReason::MaxElapsed];

    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterReason::NonRetryable => "non_retryable",
            DeadLetterReason::MaxAttempts => "max_attempts",
            DeadLetterReason::MaxElapsed => "max_elapsed",
        }
    }
}

/// Delivers `item`, retrying as its receiver's policy allows. Consumes the item: its queue slot is
/// released when this returns. At shutdown it returns after the current attempt, leaving the
/// notification in the spool for the next start.
pub async fn deliver(shared: &Shared, item: Queued) {
    let mut attempt: u32 = item.attempts;
    let mut stopping = shared.stopping.clone();
    loop {
        if *stopping.borrow() {
            return;
        }
        attempt += 1;
        let target = shared.target.load_full();
        let (result, took) = attempt::timed(target.send(item.body.clone(), Some(&item.id))).await;
        shared.metrics.attempt_duration.record(took.as_secs_f64());
        let failure = match result {
            Ok(status) => {
                debug_assert_eq!(status_class(status), "2xx");
                shared.metrics.attempts_2xx.increment(1);
                shared.spool.delivered(&shared.name, item.seq, item.body.len());
                shared.metrics.delivered.increment(1);
                shared.counts.delivered();
                shared.metrics.latency.record(item.accepted_at.elapsed().as_secs_f64());
                shared.state.lock().expect("state lock").record_success(&shared.name);
                tracing::debug!(receiver = %shared.name, group_key = %item.group_key, attempt, alerts = item.alerts, "delivered");
                return;
            }
            Err(failure) => failure,
        };
        metrics::counter!(m::DELIVERY_ATTEMPTS, "receiver" => shared.name.to_string(), "outcome" => failure.outcome_label()).increment(1);
        shared.counts.failed_attempt();
        shared.state.lock().expect("state lock").record_failure(&shared.name, failure.to_string());

        let policy = target.retry;
        let wait = delay(&policy, attempt, failure.retry_after);
        let give_up = if !failure.is_retryable() {
            Some(DeadLetterReason::NonRetryable)
        } else if attempt >= policy.max_attempts {
            Some(DeadLetterReason::MaxAttempts)
        } else if item.accepted_at.elapsed() + wait > policy.max_elapsed {
            Some(DeadLetterReason::MaxElapsed)
        } else {
            None
        };
        if let Some(reason) = give_up {
            dead_letter(shared, item, attempt, reason, &failure);
            return;
        }
        shared.spool.attempted(&shared.name, item.seq, attempt);
        tracing::warn!(
            receiver = %shared.name, group_key = %item.group_key, attempt, error = %failure,
            retry_in = %crate::config::duration::format(wait), "delivery failed, will retry"
        );
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stopping.wait_for(|stop| *stop) => return,
        }
    }
}

fn dead_letter(shared: &Shared, item: Queued, attempts: u32, reason: DeadLetterReason, failure: &Failure) {
    shared.counts.dead_lettered();
    metrics::counter!(m::NOTIFICATIONS_DEAD_LETTERED, "receiver" => shared.name.to_string(), "reason" => reason.as_str()).increment(1);
    tracing::error!(
        receiver = %shared.name, group_key = %item.group_key, id = %item.id, alerts = item.alerts, attempts,
        reason = reason.as_str(), error = %failure, "notification dead-lettered"
    );
    let mut header = item.header();
    header.attempts = attempts;
    let info = crate::spool::DeadInfo {
        receiver: shared.name.to_string(),
        reason: reason.as_str().to_owned(),
        error: failure.to_string(),
        at_unix_ms: crate::spool::unix_ms(std::time::SystemTime::now()),
    };
    shared.spool.dead_letter(&shared.name, item.seq, header, item.body, info);
}
