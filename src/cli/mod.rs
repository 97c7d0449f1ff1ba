//! The command line, in Prometheus' style: `--config.file`, `--web.listen-address`, `--log.level`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::config;

mod history;

use crate::logging::{Format, Level};
pub use history::{HistoryArgs, history};

/// A webhook relay for Prometheus Alertmanager.
#[derive(Debug, Parser)]
#[command(name = "amrelay", version, about)]
pub struct Cli {
    /// The configuration file.
    #[arg(long = "config.file", value_name = "FILE", default_value = "config/amrelay.yml", global = true)]
    pub config_file: PathBuf,

    /// The file of receivers managed in the console (same `receivers:` schema). Default:
    /// `console-receivers.yml` beside `delivery.spool.path`; without a spool, editing is off.
    /// `''` turns editing off. With `check-config`, this file is validated too.
    #[arg(long = "config.console-file", value_name = "FILE", global = true, value_parser = parse_console_file)]
    pub console_file: Option<PathBuf>,

    /// Address to listen on; overrides `server.listen_address` (default 127.0.0.1:9098).
    #[arg(long = "web.listen-address", value_name = "HOST:PORT")]
    pub listen_address: Option<String>,

    /// Only log messages with this severity or above.
    #[arg(long = "log.level", value_enum, default_value = "info", global = true)]
    pub log_level: Level,

    /// Output format of log messages.
    #[arg(long = "log.format", value_enum, default_value = "logfmt", global = true)]
    pub log_format: Format,

    /// How long a shutdown waits for open requests and queued notifications.
    #[arg(long = "shutdown.timeout", value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// Watch the config file (and the files it names) and reload when they change.
    #[arg(long = "config.watch", value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    pub watch_config: bool,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands; without one, amrelay runs the relay.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate configuration files, like `amtool check-config`.
    CheckConfig {
        /// Files to check.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Send a test message to one receiver of --config.file, through its URL, auth and TLS,
    /// even when it is disabled. Exits 0 only on a 2xx answer.
    SendTest {
        /// The receiver's name.
        receiver: String,
    },
    /// Show which receivers of --config.file would get which alerts of a payload, and for each
    /// alert left out the first condition or matcher that rejected it. Sends nothing. Exits 0, or
    /// 1 when --expect is given and the receivers differ, 2 when the config or payload is invalid.
    RouteTest {
        /// A version "4" webhook payload file, or `-` for stdin.
        #[arg(value_name = "PAYLOAD", required_unless_present = "alerts", conflicts_with = "alerts")]
        payload: Option<PathBuf>,
        /// A firing alert given by its labels, `alertname=X,severity=critical`; repeatable.
        #[arg(long = "alert", value_name = "LABELS")]
        alerts: Vec<String>,
        /// The receivers that must get something, comma-separated (empty: none).
        #[arg(long, value_name = "R1,R2", value_delimiter = ',')]
        expect: Option<Vec<String>>,
        /// Print the explanation as JSON, as `POST /api/v1/route-test` answers it.
        #[arg(long)]
        json: bool,
    },
    /// List the notification history of a running relay (GET /api/v1/history): what was sent,
    /// to which receiver, when, and how it ended. Exits 1 when the relay cannot answer.
    History(Box<HistoryArgs>),
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    config::duration::parse(text)
}

/// `--config.console-file`: any path, and an empty value, which turns editing off. clap's own
/// path parser refuses an empty value, yet that is what `--config.console-file=''` hands over
/// after a shell removes the quotes (and what an empty string in a Kubernetes `args:` list is).
/// The quotes themselves (`''`, `""`: an `args:` item written `--config.console-file=''` keeps
/// them, as no shell is there to remove them) mean the same: no one names a file that way.
fn parse_console_file(text: &str) -> Result<PathBuf, String> {
    Ok(match text {
        "''" | "\"\"" => PathBuf::new(),
        path => PathBuf::from(path),
    })
}

/// `amrelay check-config`: prints a summary per file; returns whether all were valid. With a
/// `console_file`, it is validated against the first file, as the relay merges them.
pub fn check_config(files: &[PathBuf], console_file: Option<&std::path::Path>) -> bool {
    let mut all_valid = true;
    for (index, file) in files.iter().enumerate() {
        match config::load(file, &config::Environment::from_process()) {
            Ok(config) => {
                if index == 0
                    && let Some(console_file) = console_file.filter(|p| !p.as_os_str().is_empty())
                {
                    all_valid &= check_console(console_file, &config);
                }
                let enabled = config.receivers.iter().filter(|r| r.enabled).count();
                println!("Checking '{}'  SUCCESS", file.display());
                let mut warnings = config.warnings.clone();
                if let Some(exposure) = config::exposure_warning(&config.server.listen_address, &config.server.inbound)
                {
                    warnings.push(config::Issue {
                        position: None,
                        field: "server.listen_address".into(),
                        message: exposure,
                    });
                }
                if !warnings.is_empty() {
                    let warnings = config::ConfigError { file: file.clone(), issues: warnings };
                    for line in warnings.to_string().lines() {
                        println!("WARNING: {line}");
                    }
                }
                println!("Found:");
                println!(" - {} receivers ({enabled} enabled)", config.receivers.len());
                for receiver in &config.receivers {
                    let rule = &receiver.rule;
                    println!(
                        "   - {}: {} ({}{} conditions, {} matchers{}{})",
                        receiver.name,
                        crate::redact::url(&receiver.endpoint.url),
                        tenant_summary(receiver),
                        rule.conditions.len(),
                        rule.matchers.len(),
                        template_summary(&receiver.endpoint),
                        if receiver.enabled { "" } else { ", disabled" }
                    );
                }
            }
            Err(error) => {
                all_valid = false;
                println!("Checking '{}'  FAILED:", file.display());
                println!("{error}");
            }
        }
        println!();
    }
    all_valid
}

/// `tenant X, ` for a tenant receiver, nothing for a global one.
fn tenant_summary(receiver: &config::ReceiverConfig) -> String {
    receiver.tenant.as_deref().map(|t| format!("tenant {t}, ")).unwrap_or_default()
}

/// Validates the console file against the config it is merged with; prints as for a config file.
fn check_console(file: &std::path::Path, main: &config::Config) -> bool {
    let valid = match config::load_console(file, main) {
        Ok(console) => {
            let enabled = console.receivers.iter().filter(|r| r.enabled).count();
            println!("Checking '{}'  SUCCESS", file.display());
            let skipped = config::ConfigError { file: file.to_owned(), issues: console.conflicts.clone() };
            if !console.conflicts.is_empty() {
                for line in skipped.to_string().lines() {
                    println!("ERROR: {line}");
                }
            }
            println!("Found:");
            println!(" - {} console receivers ({enabled} enabled)", console.receivers.len());
            for receiver in &console.receivers {
                println!(
                    "   - {}: {} ({}{} conditions, {} matchers{})",
                    receiver.name,
                    crate::redact::url(&receiver.endpoint.url),
                    tenant_summary(receiver),
                    receiver.rule.conditions.len(),
                    receiver.rule.matchers.len(),
                    if receiver.enabled { "" } else { ", disabled" }
                );
            }
            console.conflicts.is_empty()
        }
        Err(error) => {
            println!("Checking '{}'  FAILED:", file.display());
            println!("{error}");
            false
        }
    };
    println!();
    valid
}

/// How a receiver's body is made and paced, for check-config: `, preset slack (application/json),
/// rate limit 1/s burst 3`.
fn template_summary(endpoint: &config::Endpoint) -> String {
    let mut out = String::new();
    if let Some(renderer) = &endpoint.template {
        let content_type = renderer.content_type().to_str().unwrap_or("");
        match renderer.preset() {
            Some(preset) => out.push_str(&format!(", preset {} ({content_type})", preset.name())),
            None => out.push_str(&format!(", template ({content_type})")),
        }
    }
    if let Some(limit) = endpoint.rate_limit {
        // Three decimals at most: a preset's 20 a minute is 0.333/s.
        let per_second = format!("{:.3}", limit.per_second);
        let per_second = per_second.trim_end_matches('0').trim_end_matches('.');
        out.push_str(&format!(", rate limit {per_second}/s burst {}", limit.burst));
    }
    out
}

/// The URL of the relay --config.file describes (its listen address, `https` with
/// `tls_server_config`); `http://127.0.0.1:9098` when the file cannot be read.
pub fn relay_url(config_file: &std::path::Path) -> String {
    match config::load(config_file, &config::Environment::from_process()) {
        Ok(config) => {
            let scheme = if config.server.inbound.tls.is_some() { "https" } else { "http" };
            let address = config.server.listen_address.replace("0.0.0.0", "127.0.0.1").replace("[::]", "[::1]");
            let address = if address.starts_with(':') { format!("127.0.0.1{address}") } else { address };
            format!("{scheme}://{address}")
        }
        Err(_) => "http://127.0.0.1:9098".into(),
    }
}

/// Loads the config file and, when `console_file` is given, adds the console file's receivers
/// as the relay does (a name in both: the config file's is used).
fn load_merged(
    config_file: &std::path::Path,
    console_file: Option<&std::path::Path>,
) -> Result<config::Config, String> {
    let mut config = config::load(config_file, &config::Environment::from_process()).map_err(|e| e.to_string())?;
    if let Some(console_file) = console_file.filter(|p| !p.as_os_str().is_empty()) {
        let console = config::load_console(console_file, &config).map_err(|e| e.to_string())?;
        for conflict in &console.conflicts {
            eprintln!("{}: {}: {}", console_file.display(), conflict.field, conflict.message);
        }
        config.receivers.extend(console.receivers);
    }
    Ok(config)
}

/// `amrelay send-test`: prints the outcome as JSON; returns whether the destination took it (a
/// 2xx that its body, for a destination that answers in the body, does not refuse).
/// With `console_file`, its receivers can be tested too.
pub async fn send_test(config_file: &std::path::Path, console_file: Option<&std::path::Path>, receiver: &str) -> bool {
    let config = match load_merged(config_file, console_file) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            return false;
        }
    };
    let Some(receiver_config) = config.receivers.iter().find(|r| r.name == receiver) else {
        eprintln!("{}: no receiver named {receiver:?}", config_file.display());
        return false;
    };
    let client_config = match crate::tls::ClientConfigs::new().get(&receiver_config.endpoint.tls.client) {
        Ok(client_config) => client_config,
        Err(e) => {
            eprintln!("{}: {}: {e}", config_file.display(), receiver_config.name);
            return false;
        }
    };
    let target = crate::deliver::Target::new(&receiver_config.endpoint, None, &client_config);
    let outcome = crate::test_message::send(&target, receiver).await;
    println!("{}", serde_json::to_string_pretty(&outcome).unwrap_or_default());
    outcome.delivered
}

/// What `amrelay route-test` reads and checks.
#[derive(Debug)]
pub struct RouteTestArgs<'a> {
    pub config_file: &'a std::path::Path,
    /// `--config.console-file`: its receivers are routed too.
    pub console_file: Option<&'a std::path::Path>,
    pub payload: Option<&'a std::path::Path>,
    pub alerts: &'a [String],
    pub expect: Option<&'a [String]>,
    pub json: bool,
}

/// `amrelay route-test`: prints the explanation; returns the exit status (0 ok, 1 the receivers
/// differ from `--expect`, 2 an invalid config or payload).
pub fn route_test(args: &RouteTestArgs<'_>) -> u8 {
    let mut config = match load_merged(args.config_file, args.console_file) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    // As a snapshot does: rules read labels through one index, which decoding resolves.
    let mut index = crate::rule::LabelIndex::default();
    for receiver in &mut config.receivers {
        receiver.rule.intern(&mut index);
    }
    let body = match args.payload {
        Some(path) if path.as_os_str() == "-" => {
            let mut body = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut body)
                .map(|_| body)
                .map_err(|e| format!("stdin: {e}"))
        }
        Some(path) => std::fs::read(path).map_err(|e| format!("{}: {e}", path.display())),
        None => crate::explain::payload_from_labels(args.alerts).map(String::into_bytes),
    };
    let body = match body {
        Ok(body) => body,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    let notification = match crate::payload::decode_with(&body, &index) {
        Ok(notification) => notification,
        Err(e) => {
            eprintln!("invalid payload: {e}");
            return 2;
        }
    };
    let explanation = crate::explain::explain(&config.receivers, &notification);
    // The relay's silences, when it keeps them next to its spool file.
    let silences = config.delivery.spool.as_ref().and_then(|s| crate::mute::Silences::open(&s.path).ok());
    let (now, all) = (jiff::Timestamp::now(), silences.map(|s| s.all()).unwrap_or_default());
    let muted: Vec<_> = (config.receivers.iter().zip(&explanation.receivers))
        .filter_map(|(r, route)| crate::mute::muted_view(&r.name, &r.mute, &all, &notification, &route.alerts, now))
        .collect();
    if args.json {
        let mut data = serde_json::to_value(&explanation).unwrap_or_default();
        data["muted"] = serde_json::json!(muted);
        println!("{}", serde_json::to_string_pretty(&data).unwrap_or_default());
    } else {
        print!("{}{}", explanation.to_text(), crate::mute::muted_text(&muted));
    }
    let Some(expect) = args.expect else { return 0 };
    let mut expected: Vec<&str> = expect.iter().map(|s| s.trim()).filter(|s| !s.is_empty()).collect();
    let mut got: Vec<&str> = explanation.receiving.iter().map(String::as_str).collect();
    expected.sort_unstable();
    expected.dedup();
    got.sort_unstable();
    if expected == got {
        return 0;
    }
    let list = |names: &[&str]| if names.is_empty() { "(none)".to_owned() } else { names.join(",") };
    eprintln!("route-test FAILED: expected receivers {}, got {}", list(&expected), list(&got));
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn console_file(args: &[&str]) -> Option<PathBuf> {
        Cli::try_parse_from(["amrelay"].iter().chain(args)).unwrap().console_file
    }

    /// Regression: an empty `--config.console-file` was refused ("a value is required").
    #[test]
    fn an_empty_console_file_flag_is_accepted_in_every_spelling() {
        for args in [
            &["--config.console-file="][..],
            &["--config.console-file", ""],
            &["--config.console-file=''"],
            &["--config.console-file", "\"\""],
            &["check-config", "--config.console-file=", "a.yml"],
        ] {
            assert_eq!(console_file(args), Some(PathBuf::new()), "{args:?}");
        }
        assert_eq!(console_file(&["--config.console-file=c.yml"]), Some(PathBuf::from("c.yml")));
        assert_eq!(console_file(&[]), None);
    }
}
