//! The `amrelay` binary: parse flags, set up logging, run a subcommand or the relay until a
//! signal, drain. Running the relay has one error path: whatever fails is logged once, here, and
//! the exit code is 1. The subcommands answer as the tools they mirror do, on standard output
//! with their own exit codes: `check-config` prints every issue and exits 1 when a file is
//! invalid (as `amtool check-config`), `route-test` exits 1 when `--expect` differs and 2 on an
//! invalid config or payload, `send-test` exits 1 unless the destination took it (a 2xx its
//! body does not refuse), `history` exits 1 when the relay cannot answer.

use std::process::ExitCode;

use amrelay::app::{Options, Relay};
use amrelay::cli::{Cli, Command, RouteTestArgs, check_config, history, route_test, send_test};
use clap::Parser;
use tokio::signal::unix::{SignalKind, signal};

fn main() -> ExitCode {
    let cli = Cli::parse();
    amrelay::logging::init(cli.log_level, cli.log_format);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "amrelay failed");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let success = |ok: bool| if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE };
    match &cli.command {
        Some(Command::CheckConfig { files }) => Ok(success(check_config(files, cli.console_file.as_deref()))),
        Some(Command::History(args)) => {
            let base = args.url.clone().unwrap_or_else(|| amrelay::cli::relay_url(&cli.config_file));
            let runtime = tokio::runtime::Runtime::new()?;
            match runtime.block_on(history(&base, args)) {
                Ok(()) => Ok(ExitCode::SUCCESS),
                Err(e) => {
                    eprintln!("{e}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Some(Command::SendTest { receiver }) => {
            let runtime = tokio::runtime::Runtime::new()?;
            Ok(success(runtime.block_on(send_test(&cli.config_file, cli.console_file.as_deref(), receiver))))
        }
        Some(Command::RouteTest { payload, alerts, expect, json }) => {
            let args = RouteTestArgs {
                config_file: &cli.config_file,
                console_file: cli.console_file.as_deref(),
                payload: payload.as_deref(),
                alerts,
                expect: expect.as_deref(),
                json: *json,
            };
            Ok(ExitCode::from(route_test(&args)))
        }
        None => tokio::runtime::Runtime::new()?.block_on(serve(cli)),
    }
}

/// Runs the relay until SIGTERM or SIGINT; SIGHUP reloads the config.
async fn serve(cli: Cli) -> anyhow::Result<ExitCode> {
    let options = Options {
        listen_address: cli.listen_address,
        shutdown_timeout: cli.shutdown_timeout,
        watch_config: cli.watch_config,
        console_file: cli.console_file,
        ..Options::new(cli.config_file)
    };
    let relay = Relay::start(options).await?;
    let mut hangup = signal(SignalKind::hangup())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let reloads = relay.state().clone();
    let shutdown = async move {
        loop {
            tokio::select! {
                _ = hangup.recv() => {
                    // Errors are logged and counted by the reloader itself.
                    let _ = reloads.reload().await;
                }
                _ = terminate.recv() => break,
                _ = interrupt.recv() => break,
            }
        }
    };
    relay.run(shutdown).await;
    Ok(ExitCode::SUCCESS)
}
