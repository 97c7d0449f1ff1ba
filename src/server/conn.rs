//! What one inbound connection may cost: a slot under `max_connections` and under
//! `max_connections_per_client`, an idle timeout on its bytes, and a deadline on its requests —
//! the first must come within `header_read_timeout` of the accept, the next within
//! `idle_timeout` of the last one's end, whatever else the client sends (an HTTP/2 client
//! sending only PINGs moves bytes but makes no request).

use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use papaya::{Compute, Operation};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::metrics as m;

/// Open connections: in all, and per client address (a lock-free map, touched at accept and
/// close only).
#[derive(Debug, Default)]
pub struct Open {
    total: AtomicUsize,
    per_client: papaya::HashMap<IpAddr, usize>,
}

/// Why a connection was refused at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    MaxConnections,
    MaxConnectionsPerClient,
}

/// One open connection, counted until dropped.
#[derive(Debug)]
pub struct Slot {
    open: Arc<Open>,
    client: IpAddr,
}

impl Slot {
    /// Takes a slot if fewer than `max` connections are open, and fewer than `per_client` from
    /// `client`.
    pub fn take(open: &Arc<Open>, client: IpAddr, max: usize, per_client: usize) -> Result<Slot, Refusal> {
        if open.total.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1)).is_err() {
            return Err(Refusal::MaxConnections);
        }
        let counts = open.per_client.pin();
        let taken = counts.compute(client, |entry| match entry {
            Some((_, &n)) if n >= per_client => Operation::Abort(()),
            Some((_, &n)) => Operation::Insert(n + 1),
            None => Operation::Insert(1),
        });
        if matches!(taken, Compute::Aborted(())) {
            open.total.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::MaxConnectionsPerClient);
        }
        metrics::gauge!(m::CONNECTIONS_OPEN).increment(1.0);
        Ok(Slot { open: open.clone(), client })
    }
}

impl Open {
    fn release_client(&self, client: IpAddr) {
        self.per_client.pin().compute(client, |entry| match entry {
            Some((_, &n)) if n > 1 => Operation::Insert(n - 1),
            Some(_) => Operation::Remove,
            None => Operation::Abort(()),
        });
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        // A slot exists only once both counts were taken (see `take`).
        self.open.release_client(self.client);
        self.open.total.fetch_sub(1, Ordering::AcqRel);
        metrics::gauge!(m::CONNECTIONS_OPEN).decrement(1.0);
    }
}

/// Requests on one connection: how many began, how many are in flight, when the last ended.
#[derive(Debug)]
pub struct Activity {
    started: Instant,
    requests: AtomicU64,
    in_flight: AtomicUsize,
    /// Milliseconds after `started` when the last request ended.
    last_end_ms: AtomicU64,
    /// Told when a request ends: the deadline may then come sooner than the one being awaited.
    ended: tokio::sync::Notify,
}

impl Activity {
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            started: Instant::now(),
            requests: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            last_end_ms: AtomicU64::new(0),
            ended: tokio::sync::Notify::new(),
        })
    }

    /// Marks a request in flight until the returned guard is dropped.
    pub fn request(self: &Arc<Self>) -> RequestGuard {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        RequestGuard(self.clone())
    }

    /// Completes when the connection has gone without a request for too long: no first request
    /// within `first` of the accept, or none within `idle` of the last one's end. Never while a
    /// request is in flight.
    pub async fn expired(&self, first: Duration, idle: Duration) {
        loop {
            let deadline = if self.in_flight.load(Ordering::Relaxed) > 0 {
                Instant::now() + idle
            } else if self.requests.load(Ordering::Relaxed) == 0 {
                self.started + first
            } else {
                self.started + Duration::from_millis(self.last_end_ms.load(Ordering::Relaxed)) + idle
            };
            if deadline <= Instant::now() {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => {}
                () = self.ended.notified() => {}
            }
        }
    }
}

/// A request in flight on a connection.
#[derive(Debug)]
pub struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let activity = &self.0;
        let now = activity.started.elapsed().as_millis() as u64;
        activity.last_end_ms.fetch_max(now, Ordering::Relaxed);
        activity.in_flight.fetch_sub(1, Ordering::Relaxed);
        activity.ended.notify_one();
    }
}

/// Closes a connection (with `TimedOut`) once no byte has moved in either direction for
/// `timeout`: keep-alive connections nobody uses, and clients that stall mid-request.
#[derive(Debug)]
pub struct IdleTimeout<S> {
    inner: S,
    timeout: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl<S> IdleTimeout<S> {
    /// A write that moved bytes keeps the connection alive; one stuck past the timeout ends it.
    fn after_write(&mut self, cx: &mut Context<'_>, written: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        match written {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    self.active();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(timed_out())),
            other => other,
        }
    }

    pub fn new(inner: S, timeout: Duration) -> Self {
        IdleTimeout { inner, timeout, deadline: Box::pin(tokio::time::sleep(timeout)) }
    }

    fn active(&mut self) {
        let next = Instant::now() + self.timeout;
        self.deadline.as_mut().reset(next);
    }

    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.deadline.as_mut().poll(cx).is_ready()
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "connection idle for too long")
}

impl<S: AsyncRead + Unpin> AsyncRead for IdleTimeout<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    self.active();
                }
                Poll::Ready(result)
            }
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(timed_out())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for IdleTimeout<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write(cx, data);
        self.after_write(cx, written)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.after_write(cx, written)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn slots_are_bounded_and_returned() {
        let open = Arc::new(Open::default());
        let (a, b): (IpAddr, IpAddr) = ("127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap());
        let first = Slot::take(&open, a, 1, 1).unwrap();
        assert_eq!(Slot::take(&open, b, 1, 1).unwrap_err(), Refusal::MaxConnections);
        drop(first);
        assert!(Slot::take(&open, a, 1, 1).is_ok());
        assert!(open.per_client.pin().is_empty(), "a closed client's count is removed");
    }

    #[tokio::test]
    async fn one_client_cannot_take_every_slot() {
        let open = Arc::new(Open::default());
        let (greedy, other): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let held: Vec<_> = (0..2).map(|_| Slot::take(&open, greedy, 4, 2).unwrap()).collect();
        assert_eq!(Slot::take(&open, greedy, 4, 2).unwrap_err(), Refusal::MaxConnectionsPerClient);
        assert!(Slot::take(&open, other, 4, 2).is_ok(), "others still get in");
        drop(held);
        assert!(Slot::take(&open, greedy, 4, 2).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_without_requests_expires() {
        let (first, idle) = (Duration::from_secs(10), Duration::from_secs(120));
        // No first request: expires after `first`.
        let silent = Activity::new();
        let started = Instant::now();
        silent.expired(first, idle).await;
        assert_eq!(started.elapsed(), first);
        // A request in flight holds it open; its end starts the idle period.
        let busy = Activity::new();
        let guard = busy.request();
        let done = tokio::time::timeout(Duration::from_secs(300), busy.expired(first, idle)).await;
        assert!(done.is_err(), "never while a request is in flight");
        let ended = Instant::now();
        drop(guard);
        busy.expired(first, idle).await;
        assert!(ended.elapsed() >= idle && ended.elapsed() < idle + Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_stream_times_out_and_activity_keeps_it_open() {
        let (client, server) = tokio::io::duplex(64);
        let mut server = IdleTimeout::new(server, Duration::from_secs(5));
        let mut client = client;
        let mut byte = [0u8; 1];
        tokio::time::sleep(Duration::from_secs(4)).await;
        client.write_all(b"x").await.unwrap();
        server.read_exact(&mut byte).await.unwrap();
        tokio::time::sleep(Duration::from_secs(4)).await;
        client.write_all(b"y").await.unwrap();
        server.read_exact(&mut byte).await.unwrap();
        let error = server.read_exact(&mut byte).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }
}
