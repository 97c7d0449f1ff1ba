//! The real `amrelay` binary as a child process: for what only a process shows (signals,
//! exit codes, command-line flags, environment variables, log lines). Every log line of every
//! run is checked for leaked secrets.

use std::net::SocketAddr;
use std::path::Path;

use crate::credentials::{all_process_logs, assert_no_secret_in};
use crate::support::binary::{Log, start_amrelay};
use crate::support::eventually::eventually;
use crate::support::{WAIT, wait_for_metric};

/// `amrelay` running as a child process on an ephemeral port; killed when dropped.
pub struct RelayProcess {
    pub child: std::process::Child,
    pub addr: SocketAddr,
    /// Every log line so far (stderr), shared with the reader thread.
    pub log: Log,
}

impl RelayProcess {
    /// Starts `amrelay --config.file config` with `args`, and waits for its listener.
    pub fn spawn(config: &Path, args: &[&str]) -> RelayProcess {
        Self::spawn_with_env(config, args, &[])
    }

    /// Like `spawn`, with extra environment variables.
    pub fn spawn_with_env(config: &Path, args: &[&str], env: &[(&str, &str)]) -> RelayProcess {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_amrelay"));
        command
            .envs(env.iter().copied())
            .arg(format!("--config.file={}", config.display()))
            .arg("--web.listen-address=127.0.0.1:0")
            .args(args);
        let (child, addr, log) = start_amrelay(command, WAIT);
        all_process_logs().lock().unwrap().push(log.clone());
        RelayProcess { child, addr, log }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Sends a Unix signal to the process.
    pub fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit; returns its exit code. Async, so that servers on the
    /// test's runtime (downstreams) keep answering meanwhile.
    pub async fn wait_exit(&mut self) -> Option<i32> {
        let status = eventually("amrelay to exit", WAIT, async || match self.child.try_wait().unwrap() {
            Some(status) => Ok(status),
            None => Err(format!("still running:\n{}", self.logs())),
        })
        .await;
        status.code()
    }

    pub fn logs(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Waits until a metric reaches `value`.
    pub async fn wait_metric(&self, series: &str, value: f64) {
        wait_for_metric(&self.url("/metrics"), series, value, || self.logs()).await;
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Every binary run of the suite is checked: no secret a test uses may reach a log line.
        if !std::thread::panicking() {
            assert_no_secret_in(&self.logs());
        }
    }
}

/// Runs `amrelay check-config FILE` with `env`; returns (success, stdout).
pub fn check_config_with_env(file: &Path, env: &[(&str, &str)]) -> (bool, String) {
    check_config_with(file, env, &[])
}

/// Runs `amrelay check-config FLAGS… FILE` with `env`; returns (success, stdout).
pub fn check_config_with(file: &Path, env: &[(&str, &str)], flags: &[&str]) -> (bool, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_amrelay"))
        .envs(env.iter().copied())
        .arg("check-config")
        .args(flags)
        .arg(file)
        .output()
        .unwrap();
    (output.status.success(), String::from_utf8_lossy(&output.stdout).into_owned())
}
