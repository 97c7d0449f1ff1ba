//! The dispatcher of one receiver: per-groupKey order with adaptive (or pinned) concurrency.
//!
//! Invariant: for one groupKey, at most one notification is in flight, and they leave in the
//! order they were accepted. An older notification is therefore never delivered after a newer
//! one. Nothing is superseded: Alertmanager forgets resolved alerts once a notification was
//! accepted, so an older notification may be the only one that reports a resolution.
//! Different groups proceed independently, up to the [`Controller`]'s limit at once; the
//! dispatcher owns the controller and feeds it every attempt's RTT and outcome, which the workers
//! send back on a channel (delivery knows nothing of queues: it reports to an
//! [`AttemptObserver`]).
//!
//! It runs until its pipeline is dropped (a removed receiver) or shutdown drains it, and then
//! until everything it took is finished; at `stop` it starts nothing new and its workers return
//! after their current attempt.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::concurrency::{Controller, Signal};
use super::{QueueCounters, Queued};
use crate::deliver::{self, AttemptObserver, Downstream, Failure, FailureKind};

/// One attempt's report: when it ended, how long it took, what it says.
type Report = (Instant, Duration, Signal);

/// Sends each attempt's report to the dispatcher.
struct Feedback(mpsc::UnboundedSender<Report>);

impl AttemptObserver for Feedback {
    fn attempted(&self, rtt: Duration, failure: Option<&Failure>) {
        // Fails only once the dispatcher is gone, when nobody needs the report.
        let _ = self.0.send((Instant::now(), rtt, signal(failure)));
    }
}

/// What an attempt's outcome says about the downstream's load: refusals (429, 408, 5xx),
/// timeouts and transport errors are back-pressure; a 2xx, or a 4xx about the request itself, is
/// an answer. An authorizer's failure never reached the downstream and is an answer too.
pub fn signal(failure: Option<&Failure>) -> Signal {
    match failure {
        None => Signal::Answered,
        Some(f) if f.kind == FailureKind::Auth => Signal::Answered,
        Some(f) if f.is_retryable() => Signal::BackPressure,
        Some(_) => Signal::Answered,
    }
}

/// Runs until the pipeline is dropped or drained and everything queued is finished.
pub async fn run(
    mut rx: mpsc::UnboundedReceiver<Queued>,
    downstream: Arc<Downstream>,
    counters: Arc<QueueCounters>,
    drain: CancellationToken,
) {
    let mut waiting: HashMap<Arc<str>, VecDeque<Queued>> = HashMap::new();
    let mut in_flight: HashSet<Arc<str>> = HashSet::new();
    let mut ready: VecDeque<Arc<str>> = VecDeque::new();
    let mut workers: JoinSet<()> = JoinSet::new();
    let mut worker_groups: HashMap<tokio::task::Id, Arc<str>> = HashMap::new();
    let mut open = true;
    let stop = downstream.stop.clone();
    let (feedback_tx, mut feedback) = mpsc::unbounded_channel::<Report>();
    let observer: Arc<Feedback> = Arc::new(Feedback(feedback_tx));
    let mut controller = Controller::new(counters.concurrency(), Instant::now());
    counters.metrics.concurrency.set(controller.limit() as f64);

    loop {
        if controller.configure(counters.concurrency()) {
            counters.metrics.concurrency.set(controller.limit() as f64);
        }
        let stopping = stop.is_cancelled();
        while !stopping && !ready.is_empty() {
            if workers.len() >= controller.limit() {
                controller.reached_limit();
                break;
            }
            let Some(group) = ready.pop_front() else {
                break;
            };
            let Some(item) = waiting.get_mut(&group).and_then(VecDeque::pop_front) else {
                continue;
            };
            in_flight.insert(group.clone());
            let downstream = downstream.clone();
            let observer = observer.clone();
            let handle = workers.spawn(async move {
                let Queued { outbound, slot } = item;
                deliver::deliver(&downstream, outbound, &*observer).await;
                // The place in the queue is freed only once the notification is finished.
                drop(slot);
            });
            worker_groups.insert(handle.id(), group);
        }
        if (stopping || !open && ready.is_empty()) && workers.is_empty() {
            break;
        }
        tokio::select! {
            // Reports first: a worker's report is sent before it finishes, so the limit is
            // up to date when its place is given to the next notification.
            biased;
            Some((at, rtt, signal)) = feedback.recv() => {
                let mut changed = controller.observe(at, rtt, signal);
                while let Ok((at, rtt, signal)) = feedback.try_recv() {
                    changed |= controller.observe(at, rtt, signal);
                }
                if changed {
                    counters.metrics.concurrency.set(controller.limit() as f64);
                }
            }
            () = stop.cancelled(), if !stopping => {}
            // Shutdown without a spool: take what was sent, nothing more, then finish it.
            () = drain.cancelled(), if open && !rx.is_closed() => rx.close(),
            item = rx.recv(), if open => match item {
                Some(item) => {
                    let group = item.outbound.group_key.clone();
                    let queue = waiting.entry(group.clone()).or_default();
                    queue.push_back(item);
                    if queue.len() == 1 && !in_flight.contains(&group) {
                        ready.push_back(group);
                    }
                }
                None => open = false,
            },
            Some(done) = workers.join_next_with_id() => {
                let id = match done {
                    Ok((id, ())) => id,
                    Err(e) => {
                        tracing::error!(receiver = %downstream.name, error = %e, "delivery worker failed");
                        e.id()
                    }
                };
                let Some(group) = worker_groups.remove(&id) else { continue };
                in_flight.remove(&group);
                match waiting.get(&group) {
                    Some(queue) if !queue.is_empty() => ready.push_back(group),
                    _ => {
                        waiting.remove(&group);
                    }
                }
            }
        }
    }
    tracing::debug!(receiver = %downstream.name, "pipeline drained and stopped");
}
