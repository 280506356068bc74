//! `capstan-agent`: runs on every Docker host, beats to the core once a second and does
//! what the replies ask.

mod backoff;
mod client;
mod config;
mod credentials;
mod docker;
mod host;
mod logs;
mod metrics;
mod nginx;
mod runner;
mod state_lock;
mod tasks;
mod telemetry;
mod watch;

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
    /// Run the agent (never exits on its own; retries while the core is away). Exits 3
    /// at start when another agent holds the state dir.
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
    // Before anything touches the state dir or NGINX: one agent per state dir.
    let _state_lock = match state_lock::acquire(&config.state_dir) {
        Ok(l) => Some(l),
        Err(e @ state_lock::LockError::Held { .. }) => {
            tracing::error!("{e}");
            return ExitCode::from(3);
        }
        Err(e) => {
            // A read-only state dir worked before (ID/key from the environment, NGINX
            // elsewhere or off): keep it working, unguarded.
            tracing::warn!("{e}; running without guarding against a second agent");
            None
        }
    };
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
        let nginx = nginx_manager(&config);
        let runner = match runner::Runner::new(config, nginx) {
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

/// The NGINX manager, unless disabled or NGINX is not installed (then the node beats
/// without an NGINX report and the core sends it no proxy config).
fn nginx_manager(config: &config::AgentConfig) -> Option<nginx::NginxManager> {
    if !config.nginx {
        tracing::info!("NGINX management disabled (nginx = false)");
        return None;
    }
    let engine = if config.nginx_container.is_empty() {
        let Some(binary) = find_binary(&config.nginx_binary) else {
            tracing::warn!(binary = %config.nginx_binary.display(), "NGINX not found: the reverse proxy is not managed on this node");
            return None;
        };
        nginx::Engine::Process { binary }
    } else {
        tracing::info!(container = %config.nginx_container, "driving NGINX in its container through the Docker API");
        nginx::Engine::Container {
            docker: docker::DockerSource::new(&config.docker_socket),
            container: config.nginx_container.clone(),
        }
    };
    let dir = config.nginx_dir();
    let dir = std::path::absolute(&dir).unwrap_or(dir);
    let control = match nginx::NginxControl::new(engine, dir.clone()) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(dir = %dir.display(), error = %e, "cannot prepare the NGINX directory; NGINX is not managed");
            return None;
        }
    };
    let advertise = if config.advertise_address.is_empty() {
        primary_address()
    } else {
        config.advertise_address.clone()
    };
    let settings = nginx::Settings {
        listen: config.nginx_listen.clone(),
        http_port: config.nginx_http_port,
        https_port: config.nginx_https_port,
        advertise_address: advertise,
        // The module path is the router container's in the Docker deployment, which the
        // agent cannot check; on a host it is loaded only when installed.
        stream_module: (!config.nginx_container.is_empty() || config.nginx_stream_module.is_file())
            .then(|| config.nginx_stream_module.display().to_string()),
        run_dir: control.run_dir().display().to_string(),
        log_dir: control.log_dir().display().to_string(),
    };
    Some(nginx::NginxManager::new(settings, control))
}

fn find_binary(name: &std::path::Path) -> Option<PathBuf> {
    if name.components().count() > 1 {
        return name.is_file().then(|| name.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].iter().map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The address of the interface holding the default route: a UDP "connect" picks it
/// without sending a packet.
fn primary_address() -> String {
    std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| {
            s.connect("192.0.2.1:9")?;
            s.local_addr()
        })
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|_| "127.0.0.1".into())
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
