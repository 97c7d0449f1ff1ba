//! Each receiver's delivery pipeline: a bounded queue, its dispatcher and its workers.
//!
//! A pipeline is created once per receiver name and survives reloads: a reload swaps its
//! downstream's [`Target`] (URL, auth, TLS, retry policy) and its limits in place, so queued
//! notifications are delivered with the newest settings and their per-groupKey order is never
//! broken by a second queue for the same receiver. A removed receiver's pipeline is dropped by the
//! snapshots that held it; its dispatcher then drains what is queued and exits.
//!
//! **Acceptance is all-or-nothing** (see [`crate::accept`]): the request path first
//! [`Pipeline::reserve`]s a slot in every receiver a batch goes to (a semaphore permit:
//! lock-free, never waits); only when every reservation succeeded are the notifications
//! [`Pipeline::push`]ed. A failed reservation drops the slots already taken, so a 503 leaves no
//! trace at any receiver.
//!
//! **Pacing.** Once accepted, a batch's answer waits (at most [`PACE_MAX_WAIT`]) while a receiver
//! it went to holds more than a tenth of its `queue_capacity`. amrelay answers before it
//! delivers, so a sender that posts as fast as it is answered (Alertmanager flushing many groups,
//! a load generator) could otherwise outrun delivery on a busy CPU and keep a backlog — memory —
//! that only a full queue's 503 would stop. Waiting a little gives the CPU to delivery, so
//! acceptance settles at the pace of delivery, as a proxy's does; the wait is far below
//! Alertmanager's notification deadline (at least 10 s), and nothing is refused for it.

pub mod concurrency;
mod dispatch;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use metrics::{Counter, Gauge};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Concurrency, ReceiverConfig};
use crate::deliver::{Downstream, Outbound, Target};
use crate::memory::Budget;
use crate::metrics as m;
use crate::spool::Spool;

/// A notification accepted for one receiver, holding its place in the queue.
#[derive(Debug)]
pub struct Queued {
    pub outbound: Outbound,
    pub slot: Slot,
    /// The body's charges to the byte budgets, given back once it is finished.
    pub memory: crate::memory::Held,
}

/// A reserved place in a receiver's queue; dropping it frees the place.
#[derive(Debug)]
pub struct Slot {
    /// `None` for restored notifications, which are taken even above capacity.
    _permit: Option<OwnedSemaphorePermit>,
    counters: Arc<QueueCounters>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let counters = &self.counters;
        // SeqCst, with the waiter's side in `Pipeline::pace`: either it sees the new depth, or
        // this sees it waiting.
        let depth = counters.depth.fetch_sub(1, Ordering::SeqCst) - 1;
        counters.metrics.depth.set(depth as f64);
        if counters.pace_waiters.load(Ordering::SeqCst) > 0 && depth <= counters.pace_above.load(Ordering::Relaxed) {
            counters.paced.notify_waiters();
        }
    }
}

/// The longest a webhook answer waits for its receivers' queues (see the module docs).
pub const PACE_MAX_WAIT: Duration = Duration::from_millis(250);

/// The depth above which answers are paced: a tenth of the capacity.
fn pace_above(queue_capacity: usize) -> usize {
    queue_capacity.div_ceil(10)
}

/// Counts a pacing waiter while it waits.
struct PaceWaiter<'a>(&'a AtomicUsize);

impl Drop for PaceWaiter<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Acceptance metric handles of one receiver, registered once so the request path does no lookups.
#[derive(Debug)]
pub struct QueueMetrics {
    pub matched: Counter,
    pub filtered: Counter,
    pub enqueued: Counter,
    pub deduplicated: Counter,
    pub depth: Gauge,
    pub capacity: Gauge,
    /// Deliveries allowed in flight now: the adaptive limit, or the pinned number.
    pub concurrency: Gauge,
}

impl QueueMetrics {
    fn new(name: &str) -> Self {
        let labels = [("receiver", name.to_owned())];
        QueueMetrics {
            matched: metrics::counter!(m::ALERTS_MATCHED, &labels),
            filtered: metrics::counter!(m::ALERTS_FILTERED, &labels),
            enqueued: metrics::counter!(m::NOTIFICATIONS_ENQUEUED, &labels),
            deduplicated: metrics::counter!(m::NOTIFICATIONS_DEDUPLICATED, &labels),
            depth: metrics::gauge!(m::QUEUE_DEPTH, &labels),
            capacity: metrics::gauge!(m::QUEUE_CAPACITY, &labels),
            concurrency: metrics::gauge!(m::DELIVERY_CONCURRENCY, &labels),
        }
    }
}

/// What the request path, the dispatcher and the slots count together.
#[derive(Debug)]
pub struct QueueCounters {
    pub metrics: QueueMetrics,
    /// Notifications accepted and not yet finished.
    depth: AtomicUsize,
    /// `max_concurrency` as configured, reloadable: the pinned number, or 0 for adaptive.
    pinned: AtomicUsize,
    /// `adaptive_concurrency_ceiling`, reloadable.
    ceiling: AtomicUsize,
    /// Answers wait while `depth` is above this ([`pace_above`] of the capacity).
    pace_above: AtomicUsize,
    /// Answers waiting now; a finished notification wakes them only when there are some.
    pace_waiters: AtomicUsize,
    paced: Notify,
}

impl QueueCounters {
    fn set_concurrency(&self, mode: Concurrency) {
        let (pinned, ceiling) = match mode {
            Concurrency::Fixed(n) => (n, 0),
            Concurrency::Adaptive { ceiling } => (0, ceiling),
        };
        self.ceiling.store(ceiling, Ordering::Relaxed);
        self.pinned.store(pinned, Ordering::Relaxed);
    }

    /// The concurrency setting the dispatcher follows.
    fn concurrency(&self) -> Concurrency {
        match self.pinned.load(Ordering::Relaxed) {
            0 => Concurrency::Adaptive { ceiling: self.ceiling.load(Ordering::Relaxed) },
            n => Concurrency::Fixed(n),
        }
    }
}

/// A receiver's queue: held by config snapshots; its dispatcher runs until the last one is gone.
#[derive(Debug)]
pub struct Pipeline {
    downstream: Arc<Downstream>,
    counters: Arc<QueueCounters>,
    permits: Arc<Semaphore>,
    capacity: AtomicUsize,
    tx: mpsc::UnboundedSender<Queued>,
}

/// What every pipeline of a process shares: the spool, the memory budget, the shutdown signals,
/// the task tracker.
#[derive(Debug, Clone)]
pub struct Shared {
    pub spool: Arc<Spool>,
    /// The process byte budget, `server.limits.max_memory_bytes` (see [`crate::memory`]).
    pub budget: Arc<Budget>,
    /// Cancelled first at shutdown (memory mode): dispatchers take nothing new and exit once their
    /// queue is empty.
    pub drain: CancellationToken,
    /// Cancelled when deliveries must stop after their current attempt.
    pub stop: CancellationToken,
    /// Every dispatcher, so that shutdown can wait for them all.
    pub tracker: TaskTracker,
}

impl Shared {
    pub fn new(spool: Arc<Spool>, budget: Arc<Budget>) -> Shared {
        Shared {
            spool,
            budget,
            drain: CancellationToken::new(),
            stop: CancellationToken::new(),
            tracker: TaskTracker::new(),
        }
    }
}

impl Pipeline {
    /// Creates the pipeline for `config` and spawns its dispatcher on the current tokio runtime.
    pub fn start(config: &ReceiverConfig, target: Target, shared: &Shared) -> Arc<Pipeline> {
        let downstream = Arc::new(Downstream::new(
            &config.name,
            target,
            shared.spool.clone(),
            shared.budget.clone(),
            shared.stop.clone(),
        ));
        let counters = Arc::new(QueueCounters {
            metrics: QueueMetrics::new(&config.name),
            depth: AtomicUsize::new(0),
            pinned: AtomicUsize::new(0),
            ceiling: AtomicUsize::new(0),
            pace_above: AtomicUsize::new(pace_above(config.queue_capacity)),
            pace_waiters: AtomicUsize::new(0),
            paced: Notify::new(),
        });
        counters.set_concurrency(config.max_concurrency);
        counters.metrics.capacity.set(config.queue_capacity as f64);
        counters.metrics.depth.set(0.0);
        let (tx, rx) = mpsc::unbounded_channel();
        shared.tracker.spawn(dispatch::run(rx, downstream.clone(), counters.clone(), shared.drain.clone()));
        Arc::new(Pipeline {
            downstream,
            counters,
            permits: Arc::new(Semaphore::new(config.queue_capacity)),
            capacity: AtomicUsize::new(config.queue_capacity),
            tx,
        })
    }

    /// Applies a reloaded receiver config: new target, concurrency and capacity. Queued
    /// notifications stay and use the new target; an adaptive limit keeps what it learned.
    pub fn update(&self, config: &ReceiverConfig, target: Target) {
        self.downstream.target.store(Arc::new(target));
        self.counters.set_concurrency(config.max_concurrency);
        self.counters.pace_above.store(pace_above(config.queue_capacity), Ordering::Relaxed);
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
        self.counters.metrics.capacity.set(config.queue_capacity as f64);
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
        let depth = self.counters.depth.fetch_add(1, Ordering::SeqCst) + 1;
        self.counters.metrics.depth.set(depth as f64);
        Slot { _permit: permit, counters: self.counters.clone() }
    }

    /// Queues a notification whose slot was reserved (and which the spool holds).
    pub fn push(&self, item: Queued) {
        self.counters.metrics.enqueued.increment(1);
        if let Err(mpsc::error::SendError(item)) = self.tx.send(item) {
            // Only after shutdown began (the dispatcher stopped taking work); otherwise a bug.
            tracing::error!(receiver = %self.downstream.name, group_key = %item.outbound.group_key,
                "the dispatcher is gone; the notification stays in the spool, if any, for the next start");
        }
    }

    /// Whether this receiver's queue holds more than a tenth of its capacity: answers wait for it
    /// (see the module docs).
    pub fn is_backlogged(&self) -> bool {
        self.counters.depth.load(Ordering::SeqCst) > self.counters.pace_above.load(Ordering::Relaxed)
    }

    /// Waits until this receiver's queue is at or below a tenth of its capacity, or `deadline`
    /// (see the module docs); returns at once, `false`, when it already is.
    pub async fn pace(&self, deadline: tokio::time::Instant) -> bool {
        let counters = &self.counters;
        if !self.is_backlogged() {
            return false;
        }
        counters.pace_waiters.fetch_add(1, Ordering::SeqCst);
        let _waiter = PaceWaiter(&counters.pace_waiters);
        loop {
            let notified = counters.paced.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !self.is_backlogged() || tokio::time::timeout_at(deadline, notified).await.is_err() {
                return true;
            }
        }
    }

    /// The receiver's downstream: target, delivery counts, last outcome.
    pub fn downstream(&self) -> &Arc<Downstream> {
        &self.downstream
    }

    /// Acceptance metrics (matched, filtered, deduplicated, …).
    pub fn metrics(&self) -> &QueueMetrics {
        &self.counters.metrics
    }

    /// Notifications accepted and not yet finished.
    pub fn depth(&self) -> usize {
        self.counters.depth.load(Ordering::Relaxed)
    }
}

/// A process-unique, restart-unique notification id: random prefix, then a counter.
pub fn next_id() -> String {
    static PREFIX: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(|| fastrand::u64(..));
    format!("{prefix:016x}{:016x}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Counts queued notifications across pipelines, for shutdown.
pub fn total_depth<'a>(pipelines: impl IntoIterator<Item = &'a Arc<Pipeline>>) -> usize {
    pipelines.into_iter().map(|p| p.depth()).sum()
}
