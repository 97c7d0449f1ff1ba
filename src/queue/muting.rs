//! Quiet hours and silences in the dispatcher: each notification is checked when its turn comes
//! (see [`crate::mute`] for why then), and with `on_mute: hold` the muted ones wait here.
//!
//! **Held notifications.** The dispatcher keeps at most one per group: the latest. A newer
//! notification of the group — arriving, or waiting behind the one being held — supersedes it
//! (it carries the group's current state), and the superseded one is finished in the spool and
//! counted. Every second while something is held, each is checked again; once its receiver is
//! no longer muted for it, it re-enters the queue in its group's order and is checked once more
//! when it leaves, so it goes with only the alerts not silenced by then. A held notification
//! stays in the spool until it is delivered or superseded: with a spool file, `kill -9` and a
//! restart restore it, and it is held again if the mute still holds (without a spool, as every
//! queued notification, it is lost with the process).

use std::collections::HashMap;
use std::sync::Arc;

use metrics::{Counter, Gauge};

use super::{QueueCounters, Queued};
use crate::config::mute::OnMute;
use crate::deliver::{Downstream, Outbound};
use crate::metrics as m;
use crate::mute::{Silences, Verdict};

/// What a worker does with a notification whose turn came.
pub(super) enum Next {
    Deliver(Outbound),
    /// Muted with `on_mute: hold`: back to the dispatcher.
    Hold(Outbound),
    /// Muted with `on_mute: drop`: finished, counted.
    Dropped,
}

/// Checks `outbound` against its receiver's quiet hours and the silences, now.
pub(super) fn check(
    downstream: &Downstream,
    counters: &QueueCounters,
    silences: &Silences,
    mut outbound: Outbound,
) -> Next {
    let mute = counters.mute.load();
    let now = jiff::Timestamp::now();
    if !mute.is_set() && !silences.any_active_for(&downstream.name, now) {
        return Next::Deliver(outbound);
    }
    match crate::mute::verdict(&mute, &silences.all(), &downstream.name, &outbound.body, now) {
        Verdict::Send => Next::Deliver(outbound),
        Verdict::SendFewer { body, alerts } => {
            outbound.body = body;
            outbound.alerts = alerts;
            // Fewer alerts than were routed: history reads the new body.
            outbound.summary = None;
            Next::Deliver(outbound)
        }
        Verdict::Muted(reason) => {
            metrics::counter!(m::NOTIFICATIONS_MUTED, "receiver" => downstream.name.to_string(), "reason" => reason.label())
                .increment(1);
            tracing::debug!(receiver = %downstream.name, group_key = %outbound.group_key, by = %reason,
                on_mute = mute.on_mute.as_str(), "notification muted");
            // A console receiver may ask to hold with JetStream, where the config file may not
            // (see `config::mute`): dropped, as Alertmanager would.
            match mute.on_mute {
                OnMute::Hold if downstream.spool.holds_locally() => Next::Hold(outbound),
                _ => {
                    downstream.spool.delivered(&downstream.name, outbound.seq);
                    record_muted(downstream, &outbound, reason.label());
                    Next::Dropped
                }
            }
        }
    }
}

/// The history record of a notification not sent because it was muted (`why`: `time_interval`,
/// `silence` or `superseded`).
fn record_muted(downstream: &Downstream, outbound: &Outbound, why: &'static str) {
    let ending =
        crate::deliver::history::Ending { attempts: outbound.attempts, reason: Some(why), ..Default::default() };
    let of = crate::deliver::history::Finished::outbound(outbound);
    crate::deliver::history::finished(downstream, of, crate::history::Outcome::Muted, ending);
}

/// The held notifications of one receiver: the latest of each group.
pub(super) struct Held {
    items: HashMap<Arc<str>, Queued>,
    gauge: Gauge,
    superseded: Counter,
}

impl Held {
    pub(super) fn new(receiver: &str) -> Held {
        let gauge = metrics::gauge!(m::NOTIFICATIONS_HELD, "receiver" => receiver.to_owned());
        gauge.set(0.0);
        let superseded = metrics::counter!(m::NOTIFICATIONS_HELD_SUPERSEDED, "receiver" => receiver.to_owned());
        Held { items: HashMap::new(), gauge, superseded }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Holds `item`, superseding an older one of its group.
    pub(super) fn hold(&mut self, downstream: &Downstream, item: Queued) {
        if let Some(older) = self.items.insert(item.outbound.group_key.clone(), item) {
            self.finish(downstream, older);
        }
        self.gauge.set(self.items.len() as f64);
    }

    /// A newer notification of `group` came: the held one, if any, is superseded.
    pub(super) fn supersede(&mut self, downstream: &Downstream, group: &str) {
        if let Some(older) = self.items.remove(group) {
            self.finish(downstream, older);
            self.gauge.set(self.items.len() as f64);
        }
    }

    /// Finishes a superseded notification: out of the spool, counted.
    pub(super) fn finish(&self, downstream: &Downstream, older: Queued) {
        self.superseded.increment(1);
        downstream.spool.delivered(&downstream.name, older.outbound.seq);
        record_muted(downstream, &older.outbound, "superseded");
        tracing::debug!(receiver = %downstream.name, group_key = %older.outbound.group_key,
            "held notification superseded by a newer one of its group");
    }

    /// Those no longer muted now (by the receiver's hours or for all their alerts).
    pub(super) fn release(
        &mut self,
        downstream: &Downstream,
        counters: &QueueCounters,
        silences: &Silences,
    ) -> Vec<Queued> {
        let mute = counters.mute.load();
        let now = jiff::Timestamp::now();
        let all = silences.all();
        let free: Vec<Arc<str>> = self
            .items
            .iter()
            .filter(|(_, item)| {
                mute.on_mute == OnMute::Drop
                    || !matches!(
                        crate::mute::verdict(&mute, &all, &downstream.name, &item.outbound.body, now),
                        Verdict::Muted(_)
                    )
            })
            .map(|(group, _)| group.clone())
            .collect();
        let released: Vec<Queued> = free.iter().filter_map(|group| self.items.remove(group)).collect();
        self.gauge.set(self.items.len() as f64);
        released
    }
}
