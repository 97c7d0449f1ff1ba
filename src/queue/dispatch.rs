//! The dispatcher of one receiver: per-groupKey order with adaptive (or pinned) concurrency.
//!
//! Invariant: for one groupKey, at most one notification is in flight, and they leave in the
//! order they were accepted. An older notification is therefore never delivered after a newer
//! one. Nothing is superseded: Alertmanager forgets resolved alerts once a notification was
//! accepted, so an older notification may be the only one that reports a resolution.
//! The one exception is a receiver's own choice, `on_mute: hold` (see [`super::muting`]): a
//! muted notification waits for the end of its mute, and a newer one of its group supersedes it.
//! Different groups proceed independently, up to the [`Controller`]'s limit at once; the
//! dispatcher owns the controller and feeds it every attempt's RTT and outcome, which the workers
//! send back on a channel (delivery knows nothing of queues: it reports to an
//! [`AttemptObserver`]).
//!
//! It runs until its pipeline is dropped (a removed receiver) or shutdown drains it, and then
//! until everything it took is finished; at `stop` it starts nothing new and its workers return
//! after their current attempt.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::concurrency::{Controller, Signal};
use super::muting::{Held, Next};
use super::{QueueCounters, Queued};
use crate::deliver::{self, AttemptObserver, Downstream, Failure, FailureKind, Outbound};
use crate::memory::Charge;

/// The most notifications taken from the queue in one wake-up.
const RECEIVE_BATCH: usize = 256;
/// How often held notifications are checked for the end of their mute.
const HELD_RECHECK: Duration = Duration::from_secs(1);

/// What workers tell their dispatcher, in order: each attempt, then that they finished.
enum Event {
    /// One attempt ended at this instant, after this long, saying this about the downstream.
    Attempt(Instant, Duration, Signal),
    /// The worker of this group is gone (finished, stopped, or panicked).
    Done(Arc<str>),
    /// A muted notification to hold (`on_mute: hold`), sent before its `Done` (boxed: rare, and
    /// every event is as large as the largest).
    Held(Box<Queued>),
}

/// A worker's line to its dispatcher.
struct Feedback(mpsc::UnboundedSender<Event>);

impl AttemptObserver for Feedback {
    fn attempted(&self, rtt: Duration, failure: Option<&Failure>) {
        // Fails only once the dispatcher is gone, when nobody needs the report.
        let _ = self.0.send(Event::Attempt(Instant::now(), rtt, signal(failure)));
    }
}

/// Reports the end of a worker even when it panics, so its group is never stuck in flight.
struct DoneGuard {
    group: Option<Arc<str>>,
    events: mpsc::UnboundedSender<Event>,
}

impl Drop for DoneGuard {
    fn drop(&mut self) {
        if let Some(group) = self.group.take() {
            let _ = self.events.send(Event::Done(group));
        }
    }
}

/// Places an accepted notification: ready when its group is quiet, else behind its group.
fn take(groups: &mut HashMap<Arc<str>, VecDeque<Queued>>, ready: &mut VecDeque<Queued>, item: Queued) {
    match groups.get_mut(&item.outbound.group_key) {
        Some(waiting) => waiting.push_back(item),
        None => {
            groups.insert(item.outbound.group_key.clone(), VecDeque::new());
            ready.push_back(item);
        }
    }
}

/// Reads back a body that stayed on disk, charging it to the process budget for its delivery. A
/// body that cannot be read is not delivered now: it stays pending in the spool for the next
/// start (logged), rather than being sent empty or dropped.
async fn read_back(downstream: &Downstream, mut outbound: Outbound) -> Option<(Outbound, Charge)> {
    if !outbound.on_disk {
        return Some((outbound, Charge::none()));
    }
    match downstream.spool.load(&downstream.name, outbound.seq).await {
        Ok(body) => {
            let charge = downstream.budget.charge(body.len() as u64);
            outbound.body = body;
            outbound.on_disk = false;
            Some((outbound, charge))
        }
        Err(error) => {
            tracing::error!(receiver = %downstream.name, group_key = %outbound.group_key, seq = outbound.seq,
                error = %error, "cannot read a queued notification back from the spool; it stays there for the next start");
            None
        }
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
///
/// `groups` holds every group with a notification in flight or ready: its key is present while
/// one of its notifications is ready or in flight, and its value holds the ones waiting behind
/// it. `ready` holds the next notification of groups with none in flight, in arrival order. A
/// notification of a quiet group (the common case) therefore costs one map insert and removal.
pub async fn run(
    mut rx: mpsc::UnboundedReceiver<Queued>,
    downstream: Arc<Downstream>,
    counters: Arc<QueueCounters>,
    silences: Arc<crate::mute::Silences>,
    drain: CancellationToken,
) {
    let mut held = Held::new(&downstream.name);
    let mut recheck = tokio::time::interval(HELD_RECHECK);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut groups: HashMap<Arc<str>, VecDeque<Queued>> = HashMap::new();
    let mut ready: VecDeque<Queued> = VecDeque::new();
    let mut running: usize = 0;
    let mut open = true;
    let stop = downstream.stop.clone();
    let (events_tx, mut events) = mpsc::unbounded_channel::<Event>();
    let observer: Arc<Feedback> = Arc::new(Feedback(events_tx.clone()));
    let mut controller = Controller::new(counters.concurrency(), Instant::now());
    counters.metrics.concurrency.set(controller.limit() as f64);

    loop {
        if controller.configure(counters.concurrency()) {
            counters.metrics.concurrency.set(controller.limit() as f64);
        }
        let stopping = stop.is_cancelled();
        while !stopping && !ready.is_empty() {
            if running >= controller.limit() {
                controller.reached_limit();
                break;
            }
            let Some(Queued { outbound, slot, mut memory }) = ready.pop_front() else { break };
            running += 1;
            // The window bounds bodies waiting in queues; in delivery, the process budget counts it.
            memory.window = Charge::none();
            let guard = DoneGuard { group: Some(outbound.group_key.clone()), events: events_tx.clone() };
            let (downstream, observer) = (downstream.clone(), observer.clone());
            let (counters, silences, events) = (counters.clone(), silences.clone(), events_tx.clone());
            // Boxed: the worker's state (delivery's, with the HTTP client's futures inside) is
            // many kilobytes, and a task moves its future several times as it is spawned and
            // finished; boxed, those moves copy a pointer (callgrind: ~60,000 instructions per
            // notification went to copying it).
            tokio::spawn(Box::pin(async move {
                let _guard = guard;
                if let Some((outbound, loaded)) = read_back(&downstream, outbound).await {
                    match super::muting::check(&downstream, &counters, &silences, outbound) {
                        Next::Deliver(outbound) => deliver::deliver(&downstream, outbound, &*observer).await,
                        Next::Hold(outbound) => {
                            // Its place in the queue stays taken while it is held, and a body
                            // read back from the spool stays charged to the process budget.
                            let mut memory = memory;
                            memory.window = loaded;
                            let _ = events.send(Event::Held(Box::new(Queued { outbound, slot, memory })));
                            return;
                        }
                        Next::Dropped => {}
                    }
                }
                // The place in the queue is freed only once the notification is finished.
                drop((slot, memory));
            }));
        }
        if (stopping || !open && ready.is_empty()) && running == 0 {
            break;
        }
        tokio::select! {
            Some(event) = events.recv() => {
                let mut changed = false;
                let mut next = Some(event);
                // Everything already reported, in one wake-up.
                while let Some(event) = next {
                    match event {
                        Event::Attempt(at, rtt, signal) => changed |= controller.observe(at, rtt, signal),
                        Event::Held(item) => match groups.get(&item.outbound.group_key) {
                            // A newer one of its group waits: it carries the current state.
                            Some(waiting) if !waiting.is_empty() => held.finish(&downstream, *item),
                            _ => held.hold(&downstream, *item),
                        },
                        Event::Done(group) => {
                            running -= 1;
                            match groups.get_mut(&group).and_then(VecDeque::pop_front) {
                                Some(item) => ready.push_back(item),
                                None => {
                                    groups.remove(&group);
                                }
                            }
                        }
                    }
                    next = events.try_recv().ok();
                }
                if changed {
                    counters.metrics.concurrency.set(controller.limit() as f64);
                }
            }
            () = stop.cancelled(), if !stopping => {}
            _ = recheck.tick(), if !held.is_empty() => {
                for item in held.release(&downstream, &counters, &silences) {
                    take(&mut groups, &mut ready, item);
                }
            }
            // Shutdown without a spool: take what was sent, nothing more, then finish it.
            () = drain.cancelled(), if open && !rx.is_closed() => rx.close(),
            item = rx.recv(), if open => match item {
                None => open = false,
                Some(item) => {
                    held.supersede(&downstream, &item.outbound.group_key);
                    take(&mut groups, &mut ready, item);
                    // Everything already queued, in one wake-up (bounded, so that reports are
                    // not kept waiting); a closed queue is seen by the next `recv`.
                    for _ in 1..RECEIVE_BATCH {
                        let Ok(item) = rx.try_recv() else { break };
                        held.supersede(&downstream, &item.outbound.group_key);
                        take(&mut groups, &mut ready, item);
                    }
                }
            },
        }
    }
    tracing::debug!(receiver = %downstream.name, "pipeline drained and stopped");
}

#[cfg(test)]
mod tests {
    use http::StatusCode;

    use super::*;

    fn failure(kind: FailureKind) -> Failure {
        Failure::new(kind, "")
    }

    #[test]
    fn refusals_timeouts_and_transport_errors_are_back_pressure() {
        assert_eq!(signal(None), Signal::Answered);
        for code in [408, 429, 500, 502, 503, 504] {
            let status = FailureKind::Status(StatusCode::from_u16(code).unwrap());
            assert_eq!(signal(Some(&failure(status))), Signal::BackPressure, "{code}");
        }
        for kind in [FailureKind::Timeout, FailureKind::Connect, FailureKind::Dns, FailureKind::Tls] {
            assert_eq!(signal(Some(&failure(kind))), Signal::BackPressure, "{kind:?}");
        }
        // About the request or the credentials, not the downstream's load.
        for kind in [
            FailureKind::Status(StatusCode::BAD_REQUEST),
            FailureKind::Status(StatusCode::NOT_FOUND),
            FailureKind::Auth,
        ] {
            assert_eq!(signal(Some(&failure(kind))), Signal::Answered, "{kind:?}");
        }
    }
}
