//! Outside programs (Alertmanager, Prometheus, promtool, amtool, kubectl): found on `PATH`,
//! started on free 127.0.0.1 ports ([`fixed_port`]), their output kept in log files, every wait
//! bounded by [`PROGRAM_WAIT`], and killed when dropped.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};

use crate::support::eventually::eventually;
use crate::support::{Reply, client};

/// Every wait on an outside program (start-up, a flush, a scrape) is bounded by this.
pub const PROGRAM_WAIT: Duration = Duration::from_secs(30);

/// The path of the first of `names` found on `PATH`; fails naming what installs it.
///
/// These tests are not skipped when a program is missing: `.ci/run` installs them, and a
/// developer is told how to.
pub fn program(names: &[&str], install: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in names {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "none of {names:?} is on PATH; this test runs the real program: {install} \
         (.ci/run installs it)"
    );
}

/// `program` for a binary of a Debian package.
pub fn debian_program(names: &[&str], package: &str) -> PathBuf {
    program(names, &format!("install the Debian package `{package}` (apt-get install {package})"))
}

/// A free port on 127.0.0.1 for a program that is told its port on its command line (and, for a
/// NATS node, keeps it across a restart: its peers and amrelay are given it). Free now, and
/// released before the program binds it, so it is chosen where nothing else takes it by chance:
/// a port from binding port 0 is in the kernel's ephemeral range, where any outgoing connection
/// on the machine may take it as its local port meanwhile (as happened to a nats-server in CI),
/// and another test of this process may be handed the same number; this one is below that
/// range, which only an explicit bind uses, and is never handed out twice by this process. Each
/// process starts at its own place in the range, so that test processes running side by side do
/// not walk the same ports.
pub fn fixed_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 10_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let high = ephemeral_range_start().max(LOW + 1_000);
    let seed =
        std::process::id().wrapping_mul(7_919) ^ std::time::SystemTime::UNIX_EPOCH.elapsed().unwrap().subsec_nanos();
    let _ = NEXT.compare_exchange(0, seed % (high - LOW) + 1, Ordering::Relaxed, Ordering::Relaxed);
    for _ in 0..(high - LOW) {
        let port = LOW + NEXT.fetch_add(1, Ordering::Relaxed) % (high - LOW);
        if std::net::TcpListener::bind(("127.0.0.1", port as u16)).is_ok() {
            return port as u16;
        }
    }
    panic!("no free port on 127.0.0.1 between {LOW} and {high}");
}

/// The first port of the kernel's ephemeral range (Linux: 32768 unless configured otherwise).
fn ephemeral_range_start() -> u32 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// Whether a program's log says it could not bind a port: another process took it first.
pub fn lost_its_port(log: &str) -> bool {
    log.contains("address already in use")
}

/// A child process, killed and reaped when dropped, its stdout and stderr in a log file.
pub struct ChildGuard {
    pub name: String,
    child: std::process::Child,
    log: PathBuf,
}

impl ChildGuard {
    /// Starts `command` with its output going to `log`.
    pub fn spawn(name: &str, command: &mut std::process::Command, log: PathBuf) -> ChildGuard {
        let out = std::fs::File::create(&log).unwrap();
        let child = command
            .stdin(std::process::Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        ChildGuard { name: name.to_owned(), child, log }
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Whether the program has exited.
    pub fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// The last lines the program printed.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Waits until `url` answers 200. Returns false if the program exited first.
    pub async fn wait_ready(&mut self, url: &str) -> bool {
        let what = format!("{} ready at {url}", self.name);
        eventually(&what, PROGRAM_WAIT, async || {
            if let Ok(Some(_)) = self.child.try_wait() {
                return Ok(false);
            }
            if try_get(url).await.is_some_and(|r| r.status == 200) {
                return Ok(true);
            }
            Err(format!("no 200 yet; its log:\n{}", self.log_tail()))
        })
        .await
    }
}

/// Waits for `child` to exit, at most `timeout`: its status, or `None` after killing it (a test
/// never leaves a program behind). A blocking wait, for callers off the runtime; polled every [`crate::support::eventually::POLL`], like every wait.
pub fn exit_within(child: &mut std::process::Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().ok().flatten() {
            return Some(status);
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(crate::support::eventually::POLL);
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a server program on a free 127.0.0.1 port and waits until `ready_path` answers 200.
/// `command` builds the command line for a port. Another process may take the port between
/// [`fixed_port`] and the program's bind (another test process binding it), so a program that
/// exits before it is ready is retried on another port.
pub async fn start_server(
    name: &str,
    dir: &Path,
    ready_path: &str,
    command: impl Fn(u16) -> std::process::Command,
) -> (ChildGuard, u16) {
    for attempt in 1..=3 {
        let port = fixed_port();
        let log = dir.join(format!("{name}-{attempt}.log"));
        let mut child = ChildGuard::spawn(name, &mut command(port), log);
        if child.wait_ready(&format!("http://127.0.0.1:{port}{ready_path}")).await {
            return (child, port);
        }
        eprintln!("{name} exited before it was ready (attempt {attempt}):\n{}", child.log_tail());
    }
    panic!("{name} did not start; see its logs above");
}

/// What a finished command printed.
#[derive(Debug)]
pub struct Finished {
    pub success: bool,
    /// stdout then stderr.
    pub output: String,
}

/// Runs `command` to its end (killed after `PROGRAM_WAIT`), with `stdin` as its input.
/// Blocking: from async code, call it in `spawn_blocking`.
pub fn run_program(command: &mut std::process::Command, stdin: Option<&Path>) -> Finished {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let input = match stdin {
        Some(file) => std::process::Stdio::from(std::fs::File::open(file).unwrap()),
        None => std::process::Stdio::null(),
    };
    let mut child = command
        .stdin(input)
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    let status = exit_within(&mut child, PROGRAM_WAIT)
        .unwrap_or_else(|| panic!("{command:?} did not finish within {PROGRAM_WAIT:?}"));
    let output = std::fs::read_to_string(&out).unwrap_or_default() + &std::fs::read_to_string(&err).unwrap_or_default();
    Finished { success: status.success(), output }
}

/// A GET that tolerates nothing listening yet: `None` instead of a panic.
pub async fn try_get(url: &str) -> Option<Reply> {
    let request = Request::get(url).body(Full::new(Bytes::new())).unwrap();
    let response = tokio::time::timeout(Duration::from_secs(2), client().request(request)).await.ok()?.ok()?;
    let (parts, body) = response.into_parts();
    let body = tokio::time::timeout(Duration::from_secs(2), body.collect()).await.ok()?.ok()?.to_bytes();
    Some(Reply { status: parts.status, headers: parts.headers, body })
}

/// Percent-encodes a query-string value.
pub fn url_encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// `time` as RFC 3339 in UTC, as Alertmanager's API takes it.
pub fn rfc3339(time: std::time::SystemTime) -> String {
    amrelay::rfc3339(time)
}
