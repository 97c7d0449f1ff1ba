//! Byte budgets: what amrelay holds in memory on its callers' behalf, counted and bounded.
//!
//! Two budgets exist per relay, both a [`Budget`]:
//!
//! - **the process budget** (`server.limits.max_memory_bytes`): bodies being read, each queued
//!   notification's encoded body and header (groupKey and id: a queued notification whose body
//!   stays on disk still holds them), bodies in delivery, memory-mode dead letters, dead-letter
//!   pages being served, and each threaded receiver's remembered groups. When it is spent, `/webhook` answers `503` with `Retry-After` before
//!   reading more (Alertmanager retries), so nothing already accepted is ever dropped to make
//!   room. What must be held anyway — a notification restored at start, a body read back from
//!   the spool for its delivery — is charged without refusal ([`Budget::charge`]): it can take
//!   `used` above `limit`, which then refuses new batches until it drains.
//! - **the spool's window** (`delivery.spool.memory_window_bytes`): bodies of spooled
//!   notifications kept in memory while they wait in a queue. A body that does not fit stays only
//!   on disk and is read back when its turn comes, so a spool larger than memory restores and
//!   drains within the pod's limit. Bodies in the window are charged to both budgets.
//!
//! A [`Charge`] gives its bytes back when dropped: whoever holds the bytes holds the charge.
//! Charging is a compare-and-swap on one atomic (no lock on the request path).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use metrics::Gauge;

use crate::metrics as m;

/// One byte budget: bytes in use against a limit (reloadable).
#[derive(Debug)]
pub struct Budget {
    used: AtomicU64,
    limit: AtomicU64,
    peak: AtomicU64,
    gauges: Gauges,
}

#[derive(Debug)]
struct Gauges {
    used: Gauge,
    limit: Gauge,
    peak: Gauge,
}

impl Budget {
    /// A budget exported as `metric{state="used"|"limit"|"peak"}`.
    pub fn new(metric: &'static str, limit: u64) -> Arc<Budget> {
        let gauges = Gauges {
            used: metrics::gauge!(metric, "state" => "used"),
            limit: metrics::gauge!(metric, "state" => "limit"),
            peak: metrics::gauge!(metric, "state" => "peak"),
        };
        gauges.used.set(0.0);
        gauges.limit.set(limit as f64);
        gauges.peak.set(0.0);
        Arc::new(Budget { used: AtomicU64::new(0), limit: AtomicU64::new(limit), peak: AtomicU64::new(0), gauges })
    }

    /// The process budget, `amrelay_memory_budget_bytes`.
    pub fn process() -> Arc<Budget> {
        Budget::new(m::MEMORY_BUDGET_BYTES, crate::config::DEFAULT_MAX_MEMORY_BYTES)
    }

    /// Applies a (re)loaded limit.
    pub fn set_limit(&self, limit: u64) {
        if self.limit.swap(limit, Ordering::Relaxed) != limit {
            self.gauges.limit.set(limit as f64);
        }
    }

    /// Bytes in use now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// The limit.
    pub fn limit(&self) -> u64 {
        self.limit.load(Ordering::Relaxed)
    }

    /// The most bytes in use at once since start.
    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }

    /// Takes `bytes` if they fit under the limit; `None` leaves the budget as it was.
    pub fn try_charge(self: &Arc<Self>, bytes: u64) -> Option<Charge> {
        let mut charge = Charge::none();
        charge.budget = Some(self.clone());
        charge.try_grow(bytes).then_some(charge)
    }

    /// Takes `bytes` even above the limit: for what is held anyway (see the module docs).
    pub fn charge(self: &Arc<Self>, bytes: u64) -> Charge {
        let used = self.used.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.added(bytes, used);
        Charge { budget: Some(self.clone()), bytes }
    }

    fn added(&self, bytes: u64, used: u64) {
        self.gauges.used.increment(bytes as f64);
        if self.peak.fetch_max(used, Ordering::Relaxed) < used {
            self.gauges.peak.set(used as f64);
        }
    }

    fn give_back(&self, bytes: u64) {
        if bytes > 0 {
            self.used.fetch_sub(bytes, Ordering::Relaxed);
            self.gauges.used.decrement(bytes as f64);
        }
    }
}

/// Bytes taken from a [`Budget`]; given back when dropped.
#[derive(Debug, Default)]
#[must_use = "a charge gives its bytes back when dropped"]
pub struct Charge {
    budget: Option<Arc<Budget>>,
    bytes: u64,
}

impl Charge {
    /// Nothing charged.
    pub fn none() -> Charge {
        Charge { budget: None, bytes: 0 }
    }

    /// A charge of nothing yet, to [`Charge::try_grow`] as bytes arrive.
    pub fn empty(budget: &Arc<Budget>) -> Charge {
        Charge { budget: Some(budget.clone()), bytes: 0 }
    }

    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// `bytes` holding this charge until its last copy is dropped: an answer's body keeps its
    /// charge while hyper writes it out, not only while the handler builds it.
    pub fn hold_with(self, bytes: Bytes) -> Bytes {
        /// The owner of the answer's bytes.
        struct Charged {
            bytes: Bytes,
            _charge: Charge,
        }
        impl AsRef<[u8]> for Charged {
            fn as_ref(&self) -> &[u8] {
                &self.bytes
            }
        }
        Bytes::from_owner(Charged { bytes, _charge: self })
    }

    /// Makes the charge exactly `bytes`, above the limit if need be: for what is held anyway and
    /// changes size (a receiver's thread state).
    pub fn resize(&mut self, bytes: u64) {
        let Some(budget) = &self.budget else { return };
        if bytes > self.bytes {
            let more = bytes - self.bytes;
            let used = budget.used.fetch_add(more, Ordering::Relaxed) + more;
            budget.added(more, used);
        } else {
            budget.give_back(self.bytes - bytes);
        }
        self.bytes = bytes;
    }

    /// Gives back all but `bytes` of the charge (no-op if it holds no more).
    pub fn shrink_to(&mut self, bytes: u64) {
        if bytes < self.bytes {
            self.resize(bytes);
        }
    }

    /// Takes `more` bytes if they fit under the limit; false leaves the charge as it was.
    pub fn try_grow(&mut self, more: u64) -> bool {
        let Some(budget) = &self.budget else { return more == 0 };
        let limit = budget.limit.load(Ordering::Relaxed);
        let taken = budget.used.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
            used.checked_add(more).filter(|&total| total <= limit)
        });
        match taken {
            Ok(before) => {
                budget.added(more, before + more);
                self.bytes += more;
                true
            }
            Err(_) => false,
        }
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        if let Some(budget) = &self.budget {
            budget.give_back(self.bytes);
        }
    }
}

/// What a queued notification holds: its body's and header's share of the process budget and, for a spooled
/// body kept in memory, of the spool's window.
#[derive(Debug, Default)]
pub struct Held {
    pub budget: Charge,
    pub window: Charge,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_fit_under_the_limit_and_are_given_back_on_drop() {
        let budget = Budget::new("amrelay_test_budget_bytes", 100);
        let a = budget.try_charge(60).unwrap();
        assert!(budget.try_charge(41).is_none(), "61 + 41 > 100");
        let b = budget.try_charge(40).unwrap();
        assert_eq!(budget.used(), 100);
        drop(a);
        assert_eq!(budget.used(), 40);
        let mut growing = Charge::empty(&budget);
        assert!(growing.try_grow(30));
        assert!(!growing.try_grow(31));
        assert_eq!(growing.bytes(), 30);
        drop((b, growing));
        assert_eq!(budget.used(), 0);
        assert_eq!(budget.peak(), 100);
    }

    #[test]
    fn bytes_holding_a_charge_give_it_back_with_their_last_copy() {
        let budget = Budget::new("amrelay_test_budget_bytes", 100);
        let body = budget.try_charge(60).unwrap().hold_with(Bytes::from(vec![7u8; 60]));
        let copy = body.clone();
        assert_eq!(budget.used(), 60);
        drop(body);
        assert_eq!(budget.used(), 60, "a copy still holds it");
        assert_eq!(&copy[..], &[7u8; 60][..]);
        drop(copy);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn a_resized_charge_holds_exactly_its_new_size() {
        let budget = Budget::new("amrelay_test_budget_bytes", 10);
        let mut charge = Charge::empty(&budget);
        charge.resize(25);
        assert_eq!((budget.used(), charge.bytes()), (25, 25), "held anyway, above the limit");
        charge.shrink_to(30);
        assert_eq!(budget.used(), 25, "shrinking never grows");
        charge.shrink_to(4);
        assert_eq!(budget.used(), 4);
        drop(charge);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn forced_charges_may_exceed_the_limit_and_then_refuse_the_rest() {
        let budget = Budget::new("amrelay_test_budget_bytes", 10);
        let forced = budget.charge(25);
        assert_eq!(budget.used(), 25);
        assert!(budget.try_charge(1).is_none());
        drop(forced);
        assert!(budget.try_charge(10).is_some());
    }

    #[test]
    fn concurrent_charges_never_exceed_the_limit() {
        let budget = Budget::new("amrelay_test_budget_bytes", 1000);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                let budget = budget.clone();
                scope.spawn(move || {
                    for _ in 0..10_000 {
                        if let Some(charge) = budget.try_charge(7) {
                            assert!(budget.used() <= 1000);
                            drop(charge);
                        }
                    }
                });
            }
        });
        assert_eq!(budget.used(), 0);
        assert!(budget.peak() <= 1000);
    }
}
