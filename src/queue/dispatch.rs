//! The dispatcher of one receiver: per-groupKey order with bounded concurrency.
//!
//! Invariant: for one groupKey, at most one notification is in flight, and they leave in the
//! order they were accepted. An older notification is therefore never delivered after a newer
//! one. Nothing is superseded: Alertmanager forgets resolved alerts once a notification was
//! accepted, so an older notification may be the only one that reports a resolution.
//! Different groups proceed independently, up to `max_concurrency` at once.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::{Queued, Shared};
use crate::deliver;

/// Runs until the pipeline is dropped and everything queued is finished.
pub async fn run(mut rx: mpsc::UnboundedReceiver<Queued>, shared: Arc<Shared>) {
    let mut waiting: HashMap<Arc<str>, VecDeque<Queued>> = HashMap::new();
    let mut in_flight: HashSet<Arc<str>> = HashSet::new();
    let mut ready: VecDeque<Arc<str>> = VecDeque::new();
    let mut workers: JoinSet<()> = JoinSet::new();
    let mut worker_groups: HashMap<tokio::task::Id, Arc<str>> = HashMap::new();
    let mut open = true;
    let mut stop_signal = shared.stopping.clone();
    let mut stop_signal_alive = true;

    loop {
        let stopping = *shared.stopping.borrow();
        while !stopping && workers.len() < shared.max_concurrency.load(Ordering::Relaxed).max(1) {
            let Some(group) = ready.pop_front() else {
                break;
            };
            let Some(item) = waiting.get_mut(&group).and_then(VecDeque::pop_front) else {
                continue;
            };
            in_flight.insert(group.clone());
            let worker_shared = shared.clone();
            shared.in_flight.fetch_add(1, Ordering::Relaxed);
            let handle = workers.spawn(async move {
                deliver::deliver(&worker_shared, item).await;
                worker_shared.in_flight.fetch_sub(1, Ordering::Relaxed);
            });
            worker_groups.insert(handle.id(), group);
        }
        if (stopping || !open && ready.is_empty()) && workers.is_empty() {
            break;
        }
        tokio::select! {
            changed = stop_signal.changed(), if stop_signal_alive && !stopping => {
                stop_signal_alive = changed.is_ok();
            }
            item = rx.recv(), if open => match item {
                Some(item) => {
                    let group = item.group_key.clone();
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
                        tracing::error!(receiver = %shared.name, error = %e, "delivery worker failed");
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
    tracing::debug!(receiver = %shared.name, "pipeline drained and stopped");
}
