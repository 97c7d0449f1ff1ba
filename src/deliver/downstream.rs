//! A receiver's downstream as delivery sees it: where to send (the reloadable [`Target`]), what
//! happened so far (metrics, counts, last outcome), and where accepted notifications are kept.
//!
//! The queue holds one of these per receiver name and hands it every notification to deliver; a
//! reload swaps the target in place, so notifications already queued or retrying use the newest
//! URL, auth and TLS.
#![allow(clippy::disallowed_types)] // `state` is written per attempt, read by the status API: off the request path.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use metrics::{Counter, Histogram};
use tokio_util::sync::CancellationToken;

use super::{DeadLetterReason, DeliveryCounts, Target};
use crate::memory::Budget;
use crate::metrics as m;
use crate::spool::Spool;

/// The last outcome of a receiver's deliveries, for the status API.
#[derive(Debug, Clone, Default)]
pub struct DeliveryState {
    pub last_success: Option<SystemTime>,
    pub last_error: Option<(SystemTime, String)>,
    /// Whether the last attempt failed: a change is logged once, not at every attempt.
    pub failing: bool,
}

impl DeliveryState {
    fn record_success(&mut self, receiver: &str) {
        self.last_success = Some(SystemTime::now());
        if std::mem::replace(&mut self.failing, false) {
            tracing::info!(receiver, "receiver recovered: deliveries succeed again");
        }
    }

    fn record_failure(&mut self, receiver: &str, error: String) {
        if !std::mem::replace(&mut self.failing, true) {
            tracing::warn!(receiver, error = %error, "receiver is failing: deliveries are being retried");
        }
        self.last_error = Some((SystemTime::now(), error));
    }
}

/// Delivery metric handles of one receiver, registered once so an attempt does no lookups.
#[derive(Debug)]
pub struct DeliveryMetrics {
    pub delivered: Counter,
    /// `amrelay_delivery_attempts_total{outcome="2xx"}`, the common case, registered once.
    pub attempts_2xx: Counter,
    pub attempt_duration: Histogram,
    pub latency: Histogram,
}

impl DeliveryMetrics {
    fn new(name: &str) -> Self {
        let labels = [("receiver", name.to_owned())];
        // Dead-letter series exist from the start at 0, so that `increase()` sees the first one.
        for reason in DeadLetterReason::ALL {
            metrics::counter!(m::NOTIFICATIONS_DEAD_LETTERED, "receiver" => name.to_owned(), "reason" => reason.as_str()).increment(0);
        }
        DeliveryMetrics {
            delivered: metrics::counter!(m::NOTIFICATIONS_DELIVERED, &labels),
            attempts_2xx: metrics::counter!(m::DELIVERY_ATTEMPTS, "receiver" => name.to_owned(), "outcome" => "2xx"),
            attempt_duration: metrics::histogram!(m::DELIVERY_ATTEMPT_DURATION, &labels),
            latency: metrics::histogram!(m::DELIVERY_LATENCY, &labels),
        }
    }
}

/// One receiver's downstream: shared by its queue's workers, the status API and test messages.
#[derive(Debug)]
pub struct Downstream {
    pub name: Arc<str>,
    pub target: ArcSwap<Target>,
    pub metrics: DeliveryMetrics,
    /// Delivered, failed and dead-lettered counts for the status API.
    pub counts: DeliveryCounts,
    state: Mutex<DeliveryState>,
    /// Where accepted notifications are kept until delivered or dead-lettered.
    pub spool: Arc<Spool>,
    /// The process byte budget (`server.limits.max_memory_bytes`): bodies read back from the
    /// spool and thread state are charged to it.
    pub budget: Arc<Budget>,
    /// Cancelled at shutdown: deliveries stop after their current attempt.
    pub stop: CancellationToken,
    /// Each alert group's message, for `thread:`.
    pub threads: super::ThreadMemory,
}

impl Downstream {
    pub fn new(
        name: &str,
        target: Target,
        spool: Arc<Spool>,
        budget: Arc<Budget>,
        stop: CancellationToken,
    ) -> Downstream {
        Downstream {
            name: name.into(),
            target: ArcSwap::from_pointee(target),
            metrics: DeliveryMetrics::new(name),
            counts: DeliveryCounts::default(),
            state: Mutex::new(DeliveryState::default()),
            spool,
            threads: super::ThreadMemory::new(budget.clone()),
            budget,
            stop,
        }
    }

    /// The last outcome, for the status API.
    pub fn state(&self) -> DeliveryState {
        self.state.lock().expect("delivery state lock").clone()
    }

    pub(super) fn record_success(&self) {
        self.state.lock().expect("delivery state lock").record_success(&self.name);
    }

    pub(super) fn record_failure(&self, error: String) {
        self.state.lock().expect("delivery state lock").record_failure(&self.name, error);
    }
}
