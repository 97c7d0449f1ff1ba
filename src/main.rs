//! The `amrelay` binary: parse flags, set up logging, run until a signal, drain.

use std::process::ExitCode;

use amrelay::app::{Options, Relay};
use amrelay::cli::{Cli, Command, RouteTestArgs, check_config, route_test, send_test};
use clap::Parser;
use tokio::signal::unix::{SignalKind, signal};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Some(Command::CheckConfig { files }) => {
            return if check_config(files) { ExitCode::SUCCESS } else { ExitCode::FAILURE };
        }
        Some(Command::SendTest { receiver }) => {
            let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
            return if runtime.block_on(send_test(&cli.config_file, receiver)) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            };
        }
        Some(Command::RouteTest { payload, alerts, expect, json }) => {
            let args = RouteTestArgs {
                config_file: &cli.config_file,
                payload: payload.as_deref(),
                alerts,
                expect: expect.as_deref(),
                json: *json,
            };
            return ExitCode::from(route_test(&args));
        }
        None => {}
    }
    amrelay::logging::init(cli.log_level, cli.log_format);
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "amrelay failed");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let options = Options {
        listen_address: cli.listen_address,
        shutdown_timeout: cli.shutdown_timeout,
        watch_config: cli.watch_config,
        ..Options::new(cli.config_file)
    };
    let relay = Relay::start(options).await?;
    let mut hangup = signal(SignalKind::hangup())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    loop {
        tokio::select! {
            _ = hangup.recv() => {
                let state = relay.state().clone();
                // Errors are logged and counted by the reloader itself.
                let _ = tokio::task::spawn_blocking(move || state.reloader.reload()).await;
            }
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    tracing::info!("shutdown requested; draining");
    relay.shutdown().await;
    Ok(())
}
