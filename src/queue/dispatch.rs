//! The dispatcher of one receiver: per-groupKey order with bounded concurrency.
//!
//! Invariant: for one groupKey, at most one notification is in flight, and they leave in the
//! order they were accepted. An older notification is therefore never delivered after a newer
//! one. Nothing is superseded: Alertmanager forgets resolved alerts once a notification was
//! accepted, so an older notification may be the only one that reports a resolution.
//! Different groups proceed independently, up to `max_concurrency` at once.
//!
//! It runs until its pipeline is dropped (a removed receiver) or shutdown drains it, and then
//! until everything it took is finished; at `stop` it starts nothing new and its workers return
//! after their current attempt.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{QueueCounters, Queued};
use crate::deliver::{self, Downstream};

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

    loop {
        let stopping = stop.is_cancelled();
        while !stopping && workers.len() < counters.max_concurrency.load(Ordering::Relaxed).max(1) {
            let Some(group) = ready.pop_front() else {
                break;
            };
            let Some(item) = waiting.get_mut(&group).and_then(VecDeque::pop_front) else {
                continue;
            };
            in_flight.insert(group.clone());
            let downstream = downstream.clone();
            let handle = workers.spawn(async move {
                let Queued { outbound, slot } = item;
                deliver::deliver(&downstream, outbound).await;
                // The place in the queue is freed only once the notification is finished.
                drop(slot);
            });
            worker_groups.insert(handle.id(), group);
        }
        if (stopping || !open && ready.is_empty()) && workers.is_empty() {
            break;
        }
        tokio::select! {
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
