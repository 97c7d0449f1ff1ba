//! The one way a test waits for something to happen: [`eventually`] asks again, every
//! [`POLL`], until the answer is yes or the timeout has passed. A failure then names what the
//! test waited for and what it saw last, instead of a bare "timed out"; and since there is one
//! loop, every wait is bounded the same way.

use std::fmt::Display;
use std::time::Duration;

use tokio::time::Instant;

/// How long [`eventually`] sleeps between two attempts: short, since what tests wait for
/// (a delivery, a reload, a metric) usually takes milliseconds.
pub const POLL: Duration = Duration::from_millis(20);

/// What one attempt of [`eventually`] may answer: `Some(value)` / `Ok(value)` when the wait is
/// over, `None` / `Err(what it saw)` to be asked again.
pub trait Attempt {
    type Value;
    fn into_result(self) -> Result<Self::Value, String>;
}

impl<T> Attempt for Option<T> {
    type Value = T;
    fn into_result(self) -> Result<T, String> {
        self.ok_or_else(|| "not yet".to_owned())
    }
}

impl<T, E: Display> Attempt for Result<T, E> {
    type Value = T;
    fn into_result(self) -> Result<T, String> {
        self.map_err(|e| e.to_string())
    }
}

/// Runs `attempt` until it succeeds and returns its value; panics once `timeout` has passed,
/// naming what it waited for (`what`) and the last failure. The attempt runs at least once,
/// even with a zero timeout, and is not cut off mid-way (the HTTP client bounds each request).
pub async fn eventually<R: Attempt>(what: &str, timeout: Duration, mut attempt: impl AsyncFnMut() -> R) -> R::Value {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match attempt().await.into_result() {
            Ok(value) => return value,
            Err(last) => last,
        };
        if Instant::now() >= deadline {
            panic!("waited {timeout:?} for {what}; last saw: {last}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// `Ok(())` if `done`, else `Err(seen())`: the answer of an attempt that checks a condition and
/// explains a failure (`|| ensure(n >= 9, || format!("{n} delivered"))`).
pub fn ensure(done: bool, seen: impl FnOnce() -> String) -> Result<(), String> {
    if done { Ok(()) } else { Err(seen()) }
}

#[tokio::test(start_paused = true)]
async fn eventually_returns_the_first_success() {
    let mut calls = 0;
    let value = eventually("the third call", Duration::from_secs(1), async || {
        calls += 1;
        (calls == 3).then_some(calls)
    })
    .await;
    assert_eq!(value, 3);
}

#[tokio::test(start_paused = true)]
#[should_panic(expected = "waited 1s for a miracle; last saw: 50 delivered")]
async fn eventually_names_what_it_waited_for_and_what_it_saw_last() {
    let mut n = 0;
    eventually("a miracle", Duration::from_secs(1), async || {
        n += 1;
        ensure(false, || format!("{} delivered", n.min(50)))
    })
    .await;
}
