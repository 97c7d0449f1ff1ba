//! The real `amrelay` binary as a child process: started, its log lines collected by a reader
//! thread, and its listener's address read from the "amrelay started" line.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The log lines of a running binary, shared with the thread that reads them.
pub type Log = Arc<Mutex<Vec<String>>>;

/// Spawns `command` (an `amrelay` invocation with `--web.listen-address=127.0.0.1:0`) and waits
/// up to `wait` for its listener.
pub fn start_amrelay(command: Command, wait: Duration) -> (Child, SocketAddr, Log) {
    spawn_amrelay(command).wait(wait)
}

/// A binary spawned and not yet started: several can be spawned at one instant, then waited for.
pub struct Starting {
    /// Taken by [`Starting::wait`]; killed when dropped before (a test that fails meanwhile).
    child: Option<Child>,
    /// The log lines so far (the reader thread adds to them).
    pub log: Log,
    address: std::sync::mpsc::Receiver<String>,
}

/// Spawns `command` without waiting (see [`start_amrelay`]).
pub fn spawn_amrelay(mut command: Command) -> Starting {
    use std::io::BufRead;
    let mut child = command.stderr(Stdio::piped()).stdout(Stdio::null()).spawn().expect("amrelay binary starts");
    let stderr = child.stderr.take().unwrap();
    let log: Log = Arc::new(Mutex::new(Vec::new()));
    let (tx, address) = std::sync::mpsc::channel();
    let lines = log.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(address) = line.contains("amrelay started").then(|| log_field(&line, "address")).flatten() {
                let _ = tx.send(address);
            }
            lines.lock().unwrap().push(line);
        }
    });
    Starting { child: Some(child), log, address }
}

impl Starting {
    /// Waits up to `wait` for the "amrelay started" line.
    pub fn wait(mut self, wait: Duration) -> (Child, SocketAddr, Log) {
        let addr = self
            .address
            .recv_timeout(wait)
            .unwrap_or_else(|_| panic!("amrelay did not start: {:#?}", self.log.lock().unwrap()));
        (self.child.take().unwrap(), addr.parse().unwrap(), self.log.clone())
    }
}

impl Drop for Starting {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The value of `key=` in a logfmt line.
pub fn log_field(line: &str, key: &str) -> Option<String> {
    let start = line.find(&format!(" {key}="))? + key.len() + 2;
    Some(line[start..].split(' ').next()?.trim_matches('"').to_owned())
}
