//! `capstan-agent`: runs on every Docker host, beats to the core once a second and does
//! what the replies ask.

mod backoff;
mod client;
mod config;
mod credentials;
mod host;
mod runner;
mod tasks;
mod telemetry;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "capstan-agent",
    version,
    about = "Capstan agent: beats to the core and applies what it is told"
)]
struct Cli {
    /// Config file (TOML). Default: /etc/capstan/agent.toml when it exists. Environment
    /// (CORE_URL, AGENT_ID, AGENT_KEY, JOIN_TOKEN, …) and ./.env override it.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent (never exits on its own; retries while the core is away).
    Run,
    /// Print the effective configuration (key hidden) and exit.
    CheckConfig,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match config::AgentConfig::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("capstan-agent: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::CheckConfig => {
            let mut shown = config.clone();
            if !shown.agent_key.is_empty() {
                shown.agent_key = "<hidden>".into();
            }
            if !shown.join_token.is_empty() {
                shown.join_token = "<hidden>".into();
            }
            println!("{shown:#?}");
            ExitCode::SUCCESS
        }
        Command::Run => run(config),
    }
}

fn run(config: config::AgentConfig) -> ExitCode {
    telemetry::init(&config.log);
    if config.agent_id.is_empty()
        && config.join_token.is_empty()
        && !credentials::path(&config.state_dir).exists()
    {
        tracing::error!(
            "no credentials: set AGENT_ID and AGENT_KEY (shown when you add the node in the UI), or JOIN_TOKEN to register"
        );
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let runner = match runner::Runner::new(config) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("{e}");
                return ExitCode::FAILURE;
            }
        };
        tracing::info!(
            version = env!("CARGO_PKG_VERSION"),
            "capstan-agent starting"
        );
        tokio::select! {
            _ = runner.run() => ExitCode::SUCCESS,
            _ = shutdown_signal() => {
                tracing::info!("capstan-agent stopped");
                ExitCode::SUCCESS
            }
        }
    })
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term => {},
    }
}
