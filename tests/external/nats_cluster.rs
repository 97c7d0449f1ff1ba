//! A NATS JetStream cluster of real `nats-server` processes on 127.0.0.1 (each with its own store
//! folder, killed with SIGKILL and restarted on the same ports and store), and amrelay replicas
//! as real processes pointed at it, so that a replica can be killed with `kill -9`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::programs::{ChildGuard, debian_program, free_port, try_get};
use crate::support::{Downstream, Reply, get, metric_in, post_json};

/// Every wait on the cluster (elections, take-overs, reconnects) is bounded by this.
pub const CLUSTER_WAIT: Duration = Duration::from_secs(60);

struct Node {
    name: String,
    client_port: u16,
    cluster_port: u16,
    monitor_port: u16,
    store: PathBuf,
    process: Option<ChildGuard>,
}

/// `nodes` nats-servers with JetStream, clustered when more than one.
pub struct NatsCluster {
    nodes: Vec<Node>,
    dir: tempfile::TempDir,
}

impl NatsCluster {
    pub async fn start(nodes: usize) -> NatsCluster {
        debian_program(&["nats-server"], "nats-server");
        let dir = tempfile::tempdir().unwrap();
        let nodes = (0..nodes)
            .map(|i| Node {
                name: format!("n{i}"),
                client_port: free_port(),
                cluster_port: free_port(),
                monitor_port: free_port(),
                store: dir.path().join(format!("n{i}")),
                process: None,
            })
            .collect();
        let mut cluster = NatsCluster { nodes, dir };
        for i in 0..cluster.nodes.len() {
            cluster.spawn(i);
        }
        cluster.wait_healthy().await;
        cluster
    }

    fn spawn(&mut self, i: usize) {
        let routes: Vec<String> = self.nodes.iter().map(|n| format!("nats://127.0.0.1:{}", n.cluster_port)).collect();
        let clustered = self.nodes.len() > 1;
        let node = &mut self.nodes[i];
        let mut command = std::process::Command::new(debian_program(&["nats-server"], "nats-server"));
        command
            .args(["-js", "-a", "127.0.0.1", "-n", &node.name])
            .args(["-p", &node.client_port.to_string(), "-m", &node.monitor_port.to_string()])
            .arg("-sd")
            .arg(&node.store);
        if clustered {
            command
                .args(["--cluster_name", "amrelay-test"])
                .args(["--cluster", &format!("nats://127.0.0.1:{}", node.cluster_port)])
                .args(["--routes", &routes.join(",")]);
        }
        let log = self.dir.path().join(format!("{}-{}.log", node.name, Instant::now().elapsed().as_nanos()));
        node.process = Some(ChildGuard::spawn(&format!("nats-server {}", node.name), &mut command, log));
    }

    /// Waits until every running node says JetStream is healthy.
    pub async fn wait_healthy(&mut self) {
        let deadline = Instant::now() + CLUSTER_WAIT;
        for node in self.nodes.iter().filter(|n| n.process.is_some()) {
            let url = format!("http://127.0.0.1:{}/healthz", node.monitor_port);
            loop {
                if try_get(&url).await.is_some_and(|r| r.status == 200) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{} not healthy within {CLUSTER_WAIT:?}:\n{}",
                    node.name,
                    node.process.as_ref().unwrap().log_tail()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// Client URLs of every node.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| format!("nats://127.0.0.1:{}", n.client_port)).collect()
    }

    /// `kill -9` of node `i`.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].process = None;
    }

    /// Starts node `i` again on its ports and store.
    pub fn restart(&mut self, i: usize) {
        self.spawn(i);
    }
}

/// An amrelay replica as a child process.
pub struct Replica {
    child: std::process::Child,
    pub addr: std::net::SocketAddr,
    pub log: crate::support::binary::Log,
}

impl Replica {
    pub fn spawn(config: &Path) -> Replica {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_amrelay"));
        command.arg(format!("--config.file={}", config.display())).arg("--web.listen-address=127.0.0.1:0");
        let (child, addr, log) = crate::support::binary::start_amrelay(command, CLUSTER_WAIT);
        Replica { child, addr, log }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn post(&self, body: &str) -> Reply {
        post_json(&self.url("/webhook"), body.to_owned()).await
    }

    /// Posts until answered 200, as Alertmanager retries; fails after [`CLUSTER_WAIT`].
    pub async fn post_until_accepted(&self, body: &str) -> Reply {
        let deadline = Instant::now() + CLUSTER_WAIT;
        loop {
            let reply = self.post(body).await;
            if reply.status == 200 {
                return reply;
            }
            assert!(
                Instant::now() < deadline,
                "not accepted within {CLUSTER_WAIT:?}: {} {}",
                reply.status,
                reply.text()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until `/-/ready` answers `status`.
    pub async fn wait_ready(&self, status: u16) {
        let deadline = Instant::now() + CLUSTER_WAIT;
        while get(&self.url("/-/ready")).await.status != status {
            assert!(Instant::now() < deadline, "/-/ready never answered {status}:\n{}", self.log_text());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the series (e.g. `amrelay_nats_pending_notifications`) reads `value`.
    pub async fn wait_metric(&self, series: &str, value: f64) {
        let deadline = Instant::now() + CLUSTER_WAIT;
        loop {
            let scrape = get(&self.url("/metrics")).await.text();
            if metric_in(&scrape, series) == Some(value) {
                return;
            }
            assert!(Instant::now() < deadline, "{series} never read {value}:\n{scrape}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// SIGTERM, then waits (bounded) for the process to exit after its drain.
    pub fn terminate(&mut self) {
        let _ = std::process::Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + CLUSTER_WAIT;
        while self.child.try_wait().ok().flatten().is_none() {
            assert!(Instant::now() < deadline, "amrelay did not exit after SIGTERM:\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `kill -9`.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits until `downstream` has `count` successful deliveries; returns them.
pub async fn wait_delivered(downstream: &Downstream, count: usize) -> Vec<crate::support::Received> {
    let deadline = Instant::now() + CLUSTER_WAIT;
    loop {
        let delivered = downstream.delivered();
        if delivered.len() >= count {
            return delivered;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {count} notifications delivered within {CLUSTER_WAIT:?}",
            delivered.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
