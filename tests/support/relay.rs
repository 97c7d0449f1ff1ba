//! A relay running inside the test process, on an ephemeral port, and reading its metrics:
//! most tests need nothing more than this to drive amrelay end to end over real sockets.

use std::net::SocketAddr;
use std::time::Duration;

use amrelay::app::{Options, Relay};
use bytes::Bytes;

use super::WAIT;
use super::client::{Reply, get, post_json};
use super::eventually::{ensure, eventually};

/// A relay running in this process on 127.0.0.1:0, with its config in a temporary folder.
pub struct TestRelay {
    /// Running until dropped; tests take it to shut it down.
    pub relay: Option<Relay>,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
}

impl TestRelay {
    /// Writes `yaml` as the config file and starts a relay on it.
    pub async fn start(yaml: &str) -> TestRelay {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, yaml).await
    }

    /// Like `start`, in a folder that already holds other files (secrets, certificates).
    pub async fn start_in(dir: tempfile::TempDir, yaml: &str) -> TestRelay {
        Self::start_listening(dir, yaml, "127.0.0.1:0").await
    }

    /// Like `start_in`, listening on `address` (say `0.0.0.0:0`, which tests still reach over
    /// 127.0.0.1).
    pub async fn start_listening(dir: tempfile::TempDir, yaml: &str, address: &str) -> TestRelay {
        let config_file = dir.path().join("amrelay.yml");
        std::fs::write(&config_file, yaml).unwrap();
        let options = Options {
            listen_address: Some(address.into()),
            shutdown_timeout: Duration::from_secs(5),
            ..Options::new(config_file)
        };
        let relay = Relay::start(options).await.expect("relay starts");
        let bound = relay.local_addr();
        let addr = std::net::SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), bound.port());
        TestRelay { relay: Some(relay), addr, dir }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn post(&self, path: &str, body: impl Into<Bytes>) -> Reply {
        post_json(&self.url(path), body).await
    }

    /// The value of one metric series, `name{labels}`, in this process's scrape.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        metric_in(&get(&self.url("/metrics")).await.text(), series)
    }

    /// Waits until a metric reaches `value`.
    pub async fn wait_metric(&self, series: &str, value: f64) {
        wait_for_metric(&self.url("/metrics"), series, value, String::new).await;
    }
}

/// Waits until `series` in the scrape at `url` reaches `value`; `context` explains a failure.
pub async fn wait_for_metric(url: &str, series: &str, value: f64, context: impl Fn() -> String) {
    eventually(&format!("{series} to be {value}"), WAIT, async || {
        let current = metric_in(&get(url).await.text(), series);
        ensure(current == Some(value), || format!("{series} is {current:?}\n{}", context()))
    })
    .await;
}

/// The value of one series in a scrape.
pub fn metric_in(scrape: &str, series: &str) -> Option<f64> {
    scrape.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok()).flatten()
    })
}
