//! A NATS JetStream cluster of real `nats-server` processes on 127.0.0.1 (each with its own store
//! folder, killed with SIGKILL and restarted on the same client and route ports and store), and amrelay replicas
//! as real processes pointed at it, so that a replica can be killed with `kill -9`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::programs::{ChildGuard, debian_program, fixed_port, lost_its_port, try_get};
use crate::support::eventually::{ensure, eventually};
use crate::support::{Downstream, Reply, get, metric_in, post_json};

/// Every wait on the cluster (elections, take-overs, reconnects) is bounded by this.
pub const CLUSTER_WAIT: Duration = Duration::from_secs(60);

struct Node {
    name: String,
    /// The ports amrelay and the other nodes are given: kept across a restart, so they come from
    /// [`fixed_port`], which no outgoing connection can take while the node is down.
    client_port: u16,
    cluster_port: u16,
    /// Chosen by nats-server at each start (`-m -1`) and read back from its ports file: no one
    /// needs to know it in advance.
    monitor_port: Option<u16>,
    store: PathBuf,
    process: Option<ChildGuard>,
}

/// `nodes` nats-servers with JetStream, clustered when more than one.
pub struct NatsCluster {
    nodes: Vec<Node>,
    dir: tempfile::TempDir,
}

impl NatsCluster {
    /// The nodes, with their ports and stores, none running.
    fn unstarted(nodes: usize) -> NatsCluster {
        let dir = tempfile::tempdir().unwrap();
        let nodes = (0..nodes)
            .map(|i| Node {
                name: format!("n{i}"),
                client_port: fixed_port(),
                cluster_port: fixed_port(),
                monitor_port: None,
                store: dir.path().join(format!("n{i}")),
                process: None,
            })
            .collect();
        NatsCluster { nodes, dir }
    }

    /// A cluster of `nodes` of which only the first `running` are started, not waited for: a
    /// cluster still forming. [`NatsCluster::restart`] starts the others.
    pub fn start_partly(nodes: usize, running: usize) -> NatsCluster {
        debian_program(&["nats-server"], "nats-server");
        let mut cluster = Self::unstarted(nodes);
        for i in 0..running {
            cluster.restart(i);
        }
        cluster
    }

    /// Starts the nodes and waits until they are healthy. Should a port be taken by another
    /// process before a node binds it, the whole cluster starts again on other ports.
    pub async fn start(nodes: usize) -> NatsCluster {
        debian_program(&["nats-server"], "nats-server");
        for attempt in 1..=3 {
            let mut cluster = Self::unstarted(nodes);
            let started = (0..cluster.nodes.len()).try_for_each(|i| cluster.spawn(i));
            let healthy = match started {
                Ok(()) => cluster.wait_healthy_or_lost().await,
                Err(log) => Err(log),
            };
            match healthy {
                Ok(()) => return cluster,
                Err(log) => eprintln!("a nats-server lost its port (attempt {attempt}); starting again:\n{log}"),
            }
        }
        panic!("the NATS cluster did not start; see the logs above");
    }

    /// Starts node `i` and waits (bounded) until it has bound its ports, which it reports in its
    /// ports file. `Err(log)` when it exited because another process holds one of its ports.
    fn spawn(&mut self, i: usize) -> Result<(), String> {
        let routes: Vec<String> = self.nodes.iter().map(|n| format!("nats://127.0.0.1:{}", n.cluster_port)).collect();
        let clustered = self.nodes.len() > 1;
        let ports_dir = self.dir.path().join(format!("ports-{}", self.nodes[i].name));
        std::fs::create_dir_all(&ports_dir).unwrap();
        let node = &mut self.nodes[i];
        let mut command = std::process::Command::new(debian_program(&["nats-server"], "nats-server"));
        command
            .args(["-js", "-a", "127.0.0.1", "-n", &node.name])
            .args(["-p", &node.client_port.to_string(), "-m", "-1"])
            .arg("--ports_file_dir")
            .arg(&ports_dir)
            .arg("-sd")
            .arg(&node.store);
        if clustered {
            command
                .args(["--cluster_name", "amrelay-test"])
                .args(["--cluster", &format!("nats://127.0.0.1:{}", node.cluster_port)])
                .args(["--routes", &routes.join(",")]);
        }
        let log =
            self.dir.path().join(format!("{}-{}.log", node.name, std::time::UNIX_EPOCH.elapsed().unwrap().as_nanos()));
        let mut process = ChildGuard::spawn(&format!("nats-server {}", node.name), &mut command, log);
        let ports_file = ports_dir.join(format!("nats-server_{}.ports", process.id()));
        let deadline = Instant::now() + CLUSTER_WAIT;
        let monitor_port = loop {
            if let Some(port) = std::fs::read_to_string(&ports_file).ok().and_then(|text| monitor_port(&text)) {
                break port;
            }
            if process.exited() {
                let log = process.log_tail();
                assert!(lost_its_port(&log), "{} exited:\n{log}", process.name);
                return Err(log);
            }
            assert!(Instant::now() < deadline, "{} wrote no ports file:\n{}", process.name, process.log_tail());
            std::thread::sleep(Duration::from_millis(20));
        };
        node.monitor_port = Some(monitor_port);
        node.process = Some(process);
        Ok(())
    }

    /// Waits until every running node says JetStream is healthy; `Err(log)` when one exited
    /// because another process took a port of its.
    async fn wait_healthy_or_lost(&mut self) -> Result<(), String> {
        for node in self.nodes.iter_mut() {
            let (Some(process), Some(monitor_port)) = (node.process.as_mut(), node.monitor_port) else { continue };
            let url = format!("http://127.0.0.1:{monitor_port}/healthz");
            let what = format!("{} healthy", node.name);
            // Ok(Ok(())): healthy; Ok(Err(log)): exited (a port taken); Err: ask again.
            let exited = eventually(&what, CLUSTER_WAIT, async || {
                if try_get(&url).await.is_some_and(|r| r.status == 200) {
                    return Ok(Ok(()));
                }
                if process.exited() {
                    return Ok(Err(process.log_tail()));
                }
                Err(process.log_tail())
            })
            .await;
            if let Err(log) = exited {
                assert!(lost_its_port(&log), "{} exited:\n{log}", node.name);
                return Err(log);
            }
        }
        Ok(())
    }

    /// Client URLs of every node.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| format!("nats://127.0.0.1:{}", n.client_port)).collect()
    }

    /// `kill -9` of node `i`.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].process = None;
        self.nodes[i].monitor_port = None;
    }

    /// Starts node `i` again on its client and route ports and its store.
    pub fn restart(&mut self, i: usize) {
        if let Err(log) = self.spawn(i) {
            panic!("nats-server n{i} cannot have its ports back:\n{log}");
        }
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
        Self::spawn_together(config, 1).pop().unwrap()
    }

    /// `count` replicas spawned at one instant, as a rollout starts them; returns once every one
    /// has started (is ready), or fails when one exits or takes longer than [`CLUSTER_WAIT`].
    pub fn spawn_together(config: &Path, count: usize) -> Vec<Replica> {
        let starting: Vec<_> = (0..count)
            .map(|_| {
                let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_amrelay"));
                command.arg(format!("--config.file={}", config.display())).arg("--web.listen-address=127.0.0.1:0");
                crate::support::binary::spawn_amrelay(command)
            })
            .collect();
        let deadline = Instant::now() + CLUSTER_WAIT;
        starting
            .into_iter()
            .map(|starting| {
                let (child, addr, log) = starting.wait(deadline.saturating_duration_since(Instant::now()));
                Replica::from_parts(child, addr, log)
            })
            .collect()
    }

    /// A replica from a binary started with [`crate::support::binary::spawn_amrelay`].
    pub fn from_parts(
        child: std::process::Child,
        addr: std::net::SocketAddr,
        log: crate::support::binary::Log,
    ) -> Replica {
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
        eventually("the batch accepted", CLUSTER_WAIT, async || {
            let reply = self.post(body).await;
            if reply.status == 200 { Ok(reply) } else { Err(format!("{} {}", reply.status, reply.text())) }
        })
        .await
    }

    /// Waits until `/-/ready` answers `status`.
    pub async fn wait_ready(&self, status: u16) {
        eventually(&format!("/-/ready answering {status}"), CLUSTER_WAIT, async || {
            let now = get(&self.url("/-/ready")).await.status;
            ensure(now == status, || format!("{now}; the log:\n{}", self.log_text()))
        })
        .await;
    }

    /// Waits until the series (e.g. `amrelay_nats_pending_notifications`) reads `value`.
    pub async fn wait_metric(&self, series: &str, value: f64) {
        eventually(&format!("{series} reading {value}"), CLUSTER_WAIT, async || {
            let scrape = get(&self.url("/metrics")).await.text();
            ensure(metric_in(&scrape, series) == Some(value), || scrape)
        })
        .await;
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// SIGTERM, then waits (bounded) for the process to exit after its drain.
    pub fn terminate(&mut self) {
        let _ = std::process::Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        if crate::programs::exit_within(&mut self.child, CLUSTER_WAIT).is_none() {
            panic!("amrelay did not exit after SIGTERM:\n{}", self.log_text());
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

/// The monitoring port in a nats-server ports file: `{"monitoring":["http://127.0.0.1:PORT"],…}`.
fn monitor_port(ports_file: &str) -> Option<u16> {
    let ports: serde_json::Value = serde_json::from_str(ports_file).ok()?;
    ports["monitoring"][0].as_str()?.rsplit(':').next()?.parse().ok()
}

/// Waits until `downstream` has `count` successful deliveries; returns them.
pub async fn wait_delivered(downstream: &Downstream, count: usize) -> Vec<crate::support::Received> {
    eventually(&format!("{count} notifications delivered"), CLUSTER_WAIT, async || {
        let delivered = downstream.delivered();
        if delivered.len() >= count { Ok(delivered) } else { Err(format!("{} delivered", delivered.len())) }
    })
    .await
}
