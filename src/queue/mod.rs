//! Each receiver's delivery pipeline: a bounded queue, its dispatcher and its workers.
//!
//! A pipeline is created once per receiver name and survives reloads: a reload swaps its
//! [`Target`] (URL, auth, TLS, retry policy) and limits in place, so queued notifications are
//! delivered with the newest settings and their per-groupKey order is never broken by a second
//! queue for the same receiver. A removed receiver's pipeline is dropped by the snapshots that
//! held it; its dispatcher then drains what is queued and exits.
//!
//! **Acceptance is all-or-nothing.** The request path first [`Pipeline::reserve`]s a slot in every
//! receiver a batch goes to (a semaphore permit: lock-free, never waits); only when every
//! reservation succeeded are the notifications [`Pipeline::push`]ed. A failed reservation drops
//! the slots already taken, so a 503 leaves no trace at any receiver.

mod counts;
mod dispatch;

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use bytes::Bytes;
use metrics::{Counter, Gauge, Histogram};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};

use crate::config::ReceiverConfig;
use crate::deliver::Target;
use crate::metrics as m;
use crate::spool::{Spool, Stored};

pub use counts::{CountsView, DeliveryCounts};

/// A notification accepted for one receiver.
#[derive(Debug)]
pub struct Queued {
    /// Stable across retries and restarts: sent as `Idempotency-Key`.
    pub id: String,
    /// Its place in the spool.
    pub seq: u64,
    pub group_key: Arc<str>,
    pub body: Bytes,
    pub alerts: usize,
    /// When it was accepted, for `max_elapsed` and the latency metric.
    pub accepted_at: Instant,
    pub accepted_unix_ms: u64,
    /// Attempts already made (before a restart).
    pub attempts: u32,
    pub slot: Slot,
}

impl Queued {
    /// The spool header describing this notification.
    pub fn header(&self) -> crate::spool::Header {
        crate::spool::Header {
            group_key: self.group_key.to_string(),
            id: self.id.clone(),
            accepted_unix_ms: self.accepted_unix_ms,
            attempts: self.attempts,
            alerts: self.alerts,
            dead: None,
        }
    }
}

/// A reserved place in a receiver's queue; dropping it frees the place.
#[derive(Debug)]
pub struct Slot {
    /// `None` for restored notifications, which are taken even above capacity.
    _permit: Option<OwnedSemaphorePermit>,
    shared: Arc<Shared>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let depth = self.shared.depth.fetch_sub(1, Ordering::Relaxed) - 1;
        self.shared.metrics.depth.set(depth as f64);
    }
}

/// The last outcome of a receiver's deliveries, for the status API.
#[derive(Debug, Clone, Default)]
pub struct DeliveryState {
    pub last_success: Option<SystemTime>,
    pub last_error: Option<(SystemTime, String)>,
    /// Whether the last attempt failed: a change is logged once, not at every attempt.
    pub failing: bool,
}

impl DeliveryState {
    pub fn record_success(&mut self, receiver: &str) {
        self.last_success = Some(SystemTime::now());
        if std::mem::replace(&mut self.failing, false) {
            tracing::info!(receiver, "receiver recovered: deliveries succeed again");
        }
    }

    pub fn record_failure(&mut self, receiver: &str, error: String) {
        if !std::mem::replace(&mut self.failing, true) {
            tracing::warn!(receiver, error = %error, "receiver is failing: deliveries are being retried");
        }
        self.last_error = Some((SystemTime::now(), error));
    }
}

/// Metric handles of one receiver, registered once so the hot path does no lookups.
#[derive(Debug)]
pub struct ReceiverMetrics {
    pub matched: Counter,
    pub filtered: Counter,
    pub enqueued: Counter,
    pub delivered: Counter,
    /// `amrelay_delivery_attempts_total{outcome="2xx"}`, the common case, registered once.
    pub attempts_2xx: Counter,
    pub deduplicated: Counter,
    pub depth: Gauge,
    pub capacity: Gauge,
    pub attempt_duration: Histogram,
    pub latency: Histogram,
}

impl ReceiverMetrics {
    fn new(name: &str) -> Self {
        let label = ("receiver", name.to_owned());
        let labels = [label];
        // Dead-letter series exist from the start at 0, so that `increase()` sees the first one.
        for reason in crate::deliver::DeadLetterReason::ALL {
            metrics::counter!(m::NOTIFICATIONS_DEAD_LETTERED, "receiver" => name.to_owned(), "reason" => reason.as_str()).increment(0);
        }
        ReceiverMetrics {
            matched: metrics::counter!(m::ALERTS_MATCHED, &labels),
            filtered: metrics::counter!(m::ALERTS_FILTERED, &labels),
            enqueued: metrics::counter!(m::NOTIFICATIONS_ENQUEUED, &labels),
            delivered: metrics::counter!(m::NOTIFICATIONS_DELIVERED, &labels),
            deduplicated: metrics::counter!(m::NOTIFICATIONS_DEDUPLICATED, &labels),
            attempts_2xx: metrics::counter!(m::DELIVERY_ATTEMPTS, "receiver" => name.to_owned(), "outcome" => "2xx"),
            depth: metrics::gauge!(m::QUEUE_DEPTH, &labels),
            capacity: metrics::gauge!(m::QUEUE_CAPACITY, &labels),
            attempt_duration: metrics::histogram!(m::DELIVERY_ATTEMPT_DURATION, &labels),
            latency: metrics::histogram!(m::DELIVERY_LATENCY, &labels),
        }
    }
}

/// What a pipeline's dispatcher and workers share with the request path and the reloader.
#[derive(Debug)]
pub struct Shared {
    pub name: Arc<str>,
    pub target: ArcSwap<Target>,
    pub max_concurrency: AtomicUsize,
    pub depth: AtomicUsize,
    pub metrics: ReceiverMetrics,
    /// Delivered, failed and dead-lettered counts for the status API.
    pub counts: DeliveryCounts,
    pub state: Mutex<DeliveryState>,
    pub spool: Arc<Spool>,
    /// Set at shutdown: workers stop after their current attempt.
    pub stopping: watch::Receiver<bool>,
    /// Deliveries in progress (an attempt or a backoff wait).
    pub in_flight: AtomicUsize,
}

/// A receiver's queue: held by config snapshots; its dispatcher runs until the last one is gone.
#[derive(Debug)]
pub struct Pipeline {
    shared: Arc<Shared>,
    permits: Arc<Semaphore>,
    capacity: AtomicUsize,
    tx: mpsc::UnboundedSender<Queued>,
}

impl Pipeline {
    /// Creates the pipeline for `config` and spawns its dispatcher on the current runtime.
    pub fn start(
        config: &ReceiverConfig,
        client_config: &rustls::ClientConfig,
        spool: Arc<Spool>,
        stopping: watch::Receiver<bool>,
    ) -> Arc<Pipeline> {
        let shared = Arc::new(Shared {
            name: config.name.as_str().into(),
            target: ArcSwap::from_pointee(Target::new(&config.endpoint, None, client_config)),
            max_concurrency: AtomicUsize::new(config.max_concurrency),
            depth: AtomicUsize::new(0),
            metrics: ReceiverMetrics::new(&config.name),
            counts: DeliveryCounts::default(),
            state: Mutex::new(DeliveryState::default()),
            spool,
            stopping,
            in_flight: AtomicUsize::new(0),
        });
        shared.metrics.capacity.set(config.queue_capacity as f64);
        shared.metrics.depth.set(0.0);
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(dispatch::run(rx, shared.clone()));
        Arc::new(Pipeline {
            shared,
            permits: Arc::new(Semaphore::new(config.queue_capacity)),
            capacity: AtomicUsize::new(config.queue_capacity),
            tx,
        })
    }

    /// Applies a reloaded receiver config: new target (keeping the connection pool when TLS is
    /// unchanged), concurrency and capacity. Queued notifications stay and use the new target.
    pub fn update(&self, config: &ReceiverConfig, client_config: &rustls::ClientConfig) {
        let previous = self.shared.target.load();
        self.shared.target.store(Arc::new(Target::new(&config.endpoint, Some(&previous), client_config)));
        self.shared.max_concurrency.store(config.max_concurrency, Ordering::Relaxed);
        let old = self.capacity.swap(config.queue_capacity, Ordering::Relaxed);
        if config.queue_capacity > old {
            self.permits.add_permits(config.queue_capacity - old);
        } else if config.queue_capacity < old {
            // Free places are removed now; places in use shrink the queue as they are released.
            let missing = old - config.queue_capacity - self.permits.forget_permits(old - config.queue_capacity);
            if missing > 0 {
                let permits = self.permits.clone();
                tokio::spawn(async move {
                    if let Ok(p) = permits.acquire_many_owned(missing as u32).await {
                        p.forget();
                    }
                });
            }
        }
        self.shared.metrics.capacity.set(config.queue_capacity as f64);
    }

    /// Reserves a place for one notification; `None` when the queue is full.
    pub fn reserve(&self) -> Option<Slot> {
        let permit = self.permits.clone().try_acquire_owned().ok()?;
        Some(self.slot(Some(permit)))
    }

    /// A place for a restored notification: taken even when the queue is over capacity, since
    /// the notification was accepted before the restart.
    pub fn reserve_restored(&self) -> Slot {
        let permit = self.permits.clone().try_acquire_owned().ok();
        self.slot(permit)
    }

    fn slot(&self, permit: Option<OwnedSemaphorePermit>) -> Slot {
        let depth = self.shared.depth.fetch_add(1, Ordering::Relaxed) + 1;
        self.shared.metrics.depth.set(depth as f64);
        Slot { _permit: permit, shared: self.shared.clone() }
    }

    /// Queues a notification whose slot was reserved (and which the spool holds).
    pub fn push(&self, item: Queued) {
        self.shared.metrics.enqueued.increment(1);
        if let Err(mpsc::error::SendError(item)) = self.tx.send(item) {
            // Only possible if the dispatcher died, which is a bug: say so loudly.
            tracing::error!(receiver = %self.shared.name, group_key = %item.group_key, "dispatcher is gone; notification lost");
        }
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Notifications accepted and not yet finished.
    pub fn depth(&self) -> usize {
        self.shared.depth.load(Ordering::Relaxed)
    }
}

/// A process-unique, restart-unique notification id: random prefix, then a counter.
pub fn next_id() -> String {
    static PREFIX: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(|| fastrand::u64(..));
    format!("{prefix:016x}{:016x}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Turns a notification read back from the spool into a queue item.
pub fn restored_item(stored: Stored, slot: Slot) -> Queued {
    let now_ms = crate::spool::unix_ms(SystemTime::now());
    let age = Duration::from_millis(now_ms.saturating_sub(stored.header.accepted_unix_ms));
    Queued {
        id: stored.header.id,
        seq: stored.seq,
        group_key: stored.header.group_key.into(),
        body: stored.body,
        alerts: stored.header.alerts,
        accepted_at: Instant::now().checked_sub(age).unwrap_or_else(Instant::now),
        accepted_unix_ms: stored.header.accepted_unix_ms,
        attempts: stored.header.attempts,
        slot,
    }
}

/// Counts queued notifications across pipelines, for shutdown.
pub fn total_depth<'a>(pipelines: impl IntoIterator<Item = &'a Arc<Pipeline>>) -> usize {
    pipelines.into_iter().map(|p| p.depth()).sum()
}

/// Deliveries in progress across pipelines, for shutdown.
pub fn total_in_flight<'a>(pipelines: impl IntoIterator<Item = &'a Arc<Pipeline>>) -> usize {
    pipelines.into_iter().map(|p| p.shared.in_flight.load(Ordering::Relaxed)).sum()
}
