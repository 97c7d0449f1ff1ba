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
pub fn start_amrelay(mut command: Command, wait: Duration) -> (Child, SocketAddr, Log) {
    use std::io::BufRead;
    let mut child = command.stderr(Stdio::piped()).stdout(Stdio::null()).spawn().expect("amrelay binary starts");
    let stderr = child.stderr.take().unwrap();
    let log: Log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let lines = log.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(address) = line.contains("amrelay started").then(|| log_field(&line, "address")).flatten() {
                let _ = tx.send(address);
            }
            lines.lock().unwrap().push(line);
        }
    });
    let addr = rx.recv_timeout(wait).unwrap_or_else(|_| panic!("amrelay did not start: {:#?}", log.lock().unwrap()));
    (child, addr.parse().unwrap(), log)
}

/// The value of `key=` in a logfmt line.
pub fn log_field(line: &str, key: &str) -> Option<String> {
    let start = line.find(&format!(" {key}="))? + key.len() + 2;
    Some(line[start..].split(' ').next()?.trim_matches('"').to_owned())
}
