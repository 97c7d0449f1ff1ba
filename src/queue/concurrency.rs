//! Adaptive request concurrency: how many deliveries a receiver has in flight, following its
//! downstream (AIMD, after Vector's `adaptive_concurrency`).
//!
//! The controller watches each attempt's round-trip time (RTT) and outcome in windows about one
//! RTT long. At the end of a window:
//!
//! - **back-pressure** (429, 408, 5xx, a timeout or a transport error) cuts the limit in half;
//! - **rising latency** (the window's mean RTT above the long-run mean by more than
//!   [`RTT_DEVIATION_SCALE`] standard deviations, and more than [`RTT_TOLERANCE`]) cuts it by
//!   [`RTT_DECREASE_RATIO`];
//! - otherwise, if deliveries were waiting for a place (the limit was reached) and the RTT held
//!   (no more than the long-run mean, within [`RTT_TOLERANCE`]), the limit grows by one.
//!
//! The limit stays between 1 and the ceiling. A downstream that keeps up at a constant latency
//! therefore gets more requests until it stops keeping up; one that slows down or refuses gets
//! fewer, not a retry storm. The long-run RTT is an exponentially weighted mean and variance of
//! the windows' means (weight [`EWMA_ALPHA`]), so a lasting change of latency becomes the new
//! normal after a few windows.
//!
//! The controller is plain data, fed with explicit instants: the dispatcher owns it (no lock),
//! and the tests drive it with a simulated downstream.

use std::time::{Duration, Instant};

use crate::config::Concurrency;

/// Weight of the newest window in the long-run RTT (Vector's `ewma_alpha`).
pub const EWMA_ALPHA: f64 = 0.4;
/// How many standard deviations above the long-run mean count as rising latency (Vector's
/// `rtt_deviation_scale`).
pub const RTT_DEVIATION_SCALE: f64 = 2.5;
/// The cut on rising latency (Vector's `decrease_ratio`).
pub const RTT_DECREASE_RATIO: f64 = 0.9;
/// The cut on back-pressure: the downstream said so, or could not answer.
pub const BACK_PRESSURE_DECREASE_RATIO: f64 = 0.5;
/// Relative RTT noise that is neither rising nor falling latency: a downstream whose RTT varies
/// by a few percent (or by float rounding, in a steady simulation) holds steady.
pub const RTT_TOLERANCE: f64 = 0.05;
/// The limit an adaptive receiver starts with: a few requests at once, then what the downstream
/// shows it takes.
pub const INITIAL_LIMIT: usize = 4;

/// What one attempt says about the downstream's capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Answered (2xx, or a 4xx that is about the request, not about load).
    Answered,
    /// 429, 408, 5xx, a timeout or a transport error: fewer requests, now.
    BackPressure,
}

/// An exponentially weighted mean and variance.
#[derive(Debug, Clone, Copy, Default)]
struct Ewma {
    mean: f64,
    variance: f64,
    seeded: bool,
}

impl Ewma {
    fn update(&mut self, x: f64) {
        if !self.seeded {
            *self = Ewma { mean: x, variance: 0.0, seeded: true };
            return;
        }
        // West's incremental form: the variance of the same weighting as the mean.
        let diff = x - self.mean;
        let increment = EWMA_ALPHA * diff;
        self.mean += increment;
        self.variance = (1.0 - EWMA_ALPHA) * (self.variance + diff * increment);
    }

    fn deviation(&self) -> f64 {
        self.variance.sqrt()
    }
}

/// The current window's observations.
#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    rtt_sum: f64,
    samples: u32,
    back_pressure: bool,
    reached_limit: bool,
}

/// The AIMD controller of one receiver.
#[derive(Debug, Clone)]
pub struct Controller {
    mode: Concurrency,
    limit: usize,
    past_rtt: Ewma,
    window: Window,
}

impl Controller {
    pub fn new(mode: Concurrency, now: Instant) -> Controller {
        let limit = match mode {
            Concurrency::Fixed(n) => n.max(1),
            Concurrency::Adaptive { ceiling } => INITIAL_LIMIT.clamp(1, ceiling.max(1)),
        };
        Controller { mode, limit, past_rtt: Ewma::default(), window: Window::new(now) }
    }

    /// Deliveries allowed in flight now.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Applies a reloaded setting; returns whether the limit changed. An adaptive receiver keeps
    /// what it learned, within the new ceiling.
    pub fn configure(&mut self, mode: Concurrency) -> bool {
        if mode == self.mode {
            return false;
        }
        let before = self.limit;
        self.limit = match (self.mode, mode) {
            (_, Concurrency::Fixed(n)) => n.max(1),
            (Concurrency::Adaptive { .. }, Concurrency::Adaptive { ceiling }) => self.limit.clamp(1, ceiling.max(1)),
            (Concurrency::Fixed(_), Concurrency::Adaptive { ceiling }) => INITIAL_LIMIT.clamp(1, ceiling.max(1)),
        };
        self.mode = mode;
        self.limit != before
    }

    /// Notes that a delivery was ready but every place was taken: evidence that a higher limit
    /// would be used.
    pub fn reached_limit(&mut self) {
        self.window.reached_limit = true;
    }

    /// Records one attempt that ended at `now` after `rtt`; returns whether the limit changed.
    pub fn observe(&mut self, now: Instant, rtt: Duration, signal: Signal) -> bool {
        let Concurrency::Adaptive { ceiling } = self.mode else {
            return false;
        };
        self.window.rtt_sum += rtt.as_secs_f64();
        self.window.samples += 1;
        self.window.back_pressure |= signal == Signal::BackPressure;
        // A window lasts about one RTT, so that what was decided had time to show.
        let length = Duration::from_secs_f64(self.past_rtt.mean.max(0.0));
        if now.saturating_duration_since(self.window.started) < length && !self.window.back_pressure {
            return false;
        }
        let before = self.limit;
        let current = self.window.rtt_sum / f64::from(self.window.samples);
        let held = self.past_rtt.mean * (1.0 + RTT_TOLERANCE);
        let threshold = held + RTT_DEVIATION_SCALE * self.past_rtt.deviation();
        if self.window.back_pressure {
            self.limit = decrease(self.limit, BACK_PRESSURE_DECREASE_RATIO);
        } else if self.past_rtt.seeded && current > threshold {
            self.limit = decrease(self.limit, RTT_DECREASE_RATIO);
        } else if self.window.reached_limit && (!self.past_rtt.seeded || current <= held) {
            self.limit += 1;
        }
        self.limit = self.limit.clamp(1, ceiling.max(1));
        // Timeouts and refusals say nothing about the downstream's normal RTT.
        if !self.window.back_pressure {
            self.past_rtt.update(current);
        }
        self.window = Window::new(now);
        self.limit != before
    }
}

impl Window {
    fn new(now: Instant) -> Window {
        Window { started: now, rtt_sum: 0.0, samples: 0, back_pressure: false, reached_limit: false }
    }
}

/// A multiplicative decrease that always lowers the limit by at least one, never below 1.
fn decrease(limit: usize, ratio: f64) -> usize {
    let cut = (limit as f64 * ratio).floor() as usize;
    cut.min(limit.saturating_sub(1)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CEILING: usize = 256;

    /// A simulated downstream with `capacity` workers and a service time per request: requests
    /// beyond its capacity wait, so their RTT grows with the concurrency it is offered, exactly
    /// what a saturated server does. Each step, the controller's whole limit is in flight (a
    /// queue that is never empty) and every request's RTT is observed.
    struct Simulated {
        now: Instant,
        controller: Controller,
    }

    impl Simulated {
        fn new() -> Simulated {
            let now = Instant::now();
            Simulated { now, controller: Controller::new(Concurrency::Adaptive { ceiling: CEILING }, now) }
        }

        /// One round: the limit's worth of requests sent at once, answered after `rtt(in_flight)`.
        fn round(&mut self, rtt: impl Fn(usize) -> Duration, signal: Signal) {
            let in_flight = self.controller.limit();
            let took = rtt(in_flight);
            self.controller.reached_limit();
            self.now += took;
            for _ in 0..in_flight {
                self.controller.observe(self.now, took, signal);
            }
        }

        fn rounds(&mut self, n: usize, rtt: impl Fn(usize) -> Duration + Copy, signal: Signal) -> usize {
            for _ in 0..n {
                self.round(rtt, signal);
            }
            self.controller.limit()
        }
    }

    fn steady(_: usize) -> Duration {
        Duration::from_millis(20)
    }

    /// A downstream serving 8 requests at a time, 10 ms each: beyond 8 in flight, RTT grows.
    fn saturating(in_flight: usize) -> Duration {
        Duration::from_millis(10 * in_flight.div_ceil(8) as u64)
    }

    #[test]
    fn steady_latency_lets_the_limit_rise_to_the_ceiling() {
        let mut sim = Simulated::new();
        let start = sim.controller.limit();
        let after = sim.rounds(50, steady, Signal::Answered);
        assert!(after > start + 20, "limit {start} → {after}");
        assert_eq!(sim.rounds(1000, steady, Signal::Answered), CEILING);
    }

    #[test]
    fn the_limit_rises_only_when_it_was_reached() {
        let now = Instant::now();
        let mut c = Controller::new(Concurrency::Adaptive { ceiling: CEILING }, now);
        for i in 1..200 {
            c.observe(now + Duration::from_millis(20 * i), Duration::from_millis(20), Signal::Answered);
        }
        assert_eq!(c.limit(), INITIAL_LIMIT);
    }

    #[test]
    fn rising_latency_makes_the_limit_fall() {
        let mut sim = Simulated::new();
        let high = sim.rounds(300, steady, Signal::Answered);
        assert_eq!(high, CEILING);
        // The downstream slows down, twice as slow every few rounds: every jump cuts the limit,
        // and the limit does not grow back while latency keeps rising.
        let mut ms = 20;
        let mut before = high;
        for _ in 0..6 {
            ms *= 2;
            let rtt = Duration::from_millis(ms);
            sim.round(move |_| rtt, Signal::Answered);
            let after = sim.rounds(4, move |_| rtt, Signal::Answered);
            assert!(after < before, "latency {ms} ms: limit {before} → {after}");
            before = after;
        }
        assert!(before < high * 3 / 4, "limit {high} → {before} while latency rose 64×");
    }

    #[test]
    fn a_saturated_downstream_is_not_offered_much_more_than_it_serves() {
        let mut sim = Simulated::new();
        let limit = sim.rounds(2000, saturating, Signal::Answered);
        // It serves 8 at once; far below the ceiling, around its capacity.
        assert!((4..=32).contains(&limit), "limit {limit}");
    }

    #[test]
    fn back_pressure_cuts_the_limit_at_once() {
        for why in ["429", "5xx", "timeout"] {
            let mut sim = Simulated::new();
            let high = sim.rounds(100, steady, Signal::Answered);
            // One refusal ends the window and halves the limit.
            let now = sim.now + Duration::from_millis(1);
            assert!(sim.controller.observe(now, Duration::from_millis(20), Signal::BackPressure), "{why}");
            assert_eq!(sim.controller.limit(), high / 2, "{why}");
            // A downstream that keeps refusing is sent one request at a time.
            assert_eq!(sim.rounds(20, steady, Signal::BackPressure), 1, "{why}");
            // And when it recovers, the limit grows again.
            assert!(sim.rounds(50, steady, Signal::Answered) > 10, "{why}");
        }
    }

    #[test]
    fn a_pinned_limit_never_moves() {
        let now = Instant::now();
        let mut c = Controller::new(Concurrency::Fixed(8), now);
        c.reached_limit();
        assert!(!c.observe(now + Duration::from_secs(1), Duration::from_secs(5), Signal::BackPressure));
        assert_eq!(c.limit(), 8);
    }

    #[test]
    fn reload_keeps_what_was_learned_within_the_new_ceiling() {
        let mut sim = Simulated::new();
        sim.rounds(100, steady, Signal::Answered);
        let learned = sim.controller.limit();
        assert!(learned > 16);
        assert!(!sim.controller.configure(Concurrency::Adaptive { ceiling: CEILING }));
        assert!(sim.controller.configure(Concurrency::Adaptive { ceiling: 16 }));
        assert_eq!(sim.controller.limit(), 16);
        assert!(sim.controller.configure(Concurrency::Fixed(3)));
        assert_eq!(sim.controller.limit(), 3);
    }

    #[test]
    fn decrease_always_lowers_and_never_below_one() {
        assert_eq!(decrease(1, 0.5), 1);
        assert_eq!(decrease(2, 0.9), 1);
        assert_eq!(decrease(5, 0.9), 4);
        assert_eq!(decrease(100, 0.9), 90);
        assert_eq!(decrease(100, 0.5), 50);
    }
}
