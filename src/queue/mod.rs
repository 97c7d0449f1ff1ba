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

mod dispatch;

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Instant, SystemTime};

use arc_swap::ArcSwap;
use bytes::Bytes;
use metrics::{Counter, Gauge, Histogram};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use crate::config::ReceiverConfig;
use crate::deliver::Target;
use crate::metrics as m;

/// A notification accepted for one receiver.
#[derive(Debug)]
pub struct Queued {
    /// Stable across retries: sent as `Idempotency-Key`.
    pub id: String,
    pub group_key: Arc<str>,
    pub body: Bytes,
    pub alerts: usize,
    pub accepted_at: Instant,
    pub slot: Slot,
}

/// A reserved place in a receiver's queue; dropping it frees the place.
#[derive(Debug)]
pub struct Slot {
    _permit: OwnedSemaphorePermit,
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
    pub depth: Gauge,
    pub capacity: Gauge,
    pub attempt_duration: Histogram,
    pub latency: Histogram,
}

impl ReceiverMetrics {
    fn new(name: &str) -> Self {
        let label = ("receiver", name.to_owned());
        let labels = [label];
        ReceiverMetrics {
            matched: metrics::counter!(m::ALERTS_MATCHED, &labels),
            filtered: metrics::counter!(m::ALERTS_FILTERED, &labels),
            enqueued: metrics::counter!(m::NOTIFICATIONS_ENQUEUED, &labels),
            delivered: metrics::counter!(m::NOTIFICATIONS_DELIVERED, &labels),
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
    pub state: Mutex<DeliveryState>,
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
    pub fn start(config: &ReceiverConfig) -> Arc<Pipeline> {
        let shared = Arc::new(Shared {
            name: config.name.as_str().into(),
            target: ArcSwap::from_pointee(Target::new(&config.endpoint, None)),
            max_concurrency: AtomicUsize::new(config.max_concurrency),
            depth: AtomicUsize::new(0),
            metrics: ReceiverMetrics::new(&config.name),
            state: Mutex::new(DeliveryState::default()),
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
    pub fn update(&self, config: &ReceiverConfig) {
        let previous = self.shared.target.load();
        self.shared.target.store(Arc::new(Target::new(&config.endpoint, Some(&previous))));
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
        let depth = self.shared.depth.fetch_add(1, Ordering::Relaxed) + 1;
        self.shared.metrics.depth.set(depth as f64);
        Some(Slot { _permit: permit, shared: self.shared.clone() })
    }

    /// Queues a notification whose slot was reserved.
    pub fn push(&self, group_key: Arc<str>, body: Bytes, alerts: usize, slot: Slot) {
        let item = Queued { id: next_id(), group_key, body, alerts, accepted_at: Instant::now(), slot };
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
fn next_id() -> String {
    static PREFIX: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(|| fastrand::u64(..));
    format!("{prefix:016x}{:016x}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Counts queued notifications across pipelines, for shutdown.
pub fn total_depth<'a>(pipelines: impl IntoIterator<Item = &'a Arc<Pipeline>>) -> usize {
    pipelines.into_iter().map(|p| p.depth()).sum()
}
