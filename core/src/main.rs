//! `capstan-core` entry point: parse flags, load config, start logging, open the store,
//! serve. All behaviour lives in the library so tests can drive it in-process.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use capstan_core::config::Config;
use capstan_core::{AppState, auth, store, telemetry};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "capstan-core",
    version,
    about = "Capstan core: control plane, API and web UI for a fleet of Docker hosts"
)]
struct Cli {
    /// Config file (TOML). Default: /etc/capstan/core.toml when it exists.
    #[arg(long, global = true, env = "CAPSTAN_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: HTTP API, agent endpoints and web UI.
    Serve,
    /// Administrative tasks on the store (run while the core is stopped).
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Print the effective configuration (after file and environment) and exit.
    CheckConfig,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Set a new password for a user, ending all of its sessions. Prints the password when
    /// it was generated.
    ResetPassword {
        #[arg(long, default_value = "admin")]
        username: String,
        /// The new password; read from CAPSTAN_NEW_PASSWORD, or generated when absent.
        #[arg(long, env = "CAPSTAN_NEW_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("capstan-core: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(&config.log);
    let result = match cli.command {
        Command::Serve => run_serve(config),
        Command::Admin {
            command: AdminCommand::ResetPassword { username, password },
        } => reset_password(&config, &username, password),
        Command::CheckConfig => {
            println!("{config:#?}");
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("capstan-core: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_serve(config: Config) -> anyhow::Result<()> {
    // Before the runtime starts: every connection is a descriptor.
    capstan_core::listener::raise_nofile_limit();
    // Before any thread starts: threads pick their malloc arena on first use.
    let arenas = capstan_core::memory::bound_arenas(config.malloc_arena_max);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let admin_password = std::env::var("CAPSTAN_ADMIN_PASSWORD")
            .ok()
            .filter(|p| !p.is_empty());
        let data_dir = config.data_dir.clone();
        let listen = config.listen;
        let boot = tokio::task::spawn_blocking(move || AppState::open(config, admin_password))
            .await??;
        if let Some(password) = &boot.generated_admin_password {
            write_initial_password(&data_dir, password);
            // In the message text, not only as fields: journald shows fields only with
            // `-o verbose`, and this line is what the install instructions point to.
            tracing::warn!(
                "first start: created user admin with password {password} (shown once; also in {}/initial-admin-password)",
                data_dir.display()
            );
        }
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        tracing::info!(
            malloc_arenas = ?arenas,
            "capstan-core {} listening on http://{listen}",
            env!("CARGO_PKG_VERSION")
        );
        capstan_core::serve(boot.state, listener, shutdown_signal()).await?;
        tracing::info!("capstan-core stopped");
        Ok(())
    })
}

/// Keeps the generated first password where an installer can point the user (mode 0600).
/// Removed by `admin reset-password`.
fn write_initial_password(data_dir: &std::path::Path, password: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = data_dir.join("initial-admin-password");
    let result = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut f| {
            // An existing file keeps its mode through `open`: set it.
            f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
            writeln!(f, "{password}")
        });
    if let Err(e) = result {
        tracing::warn!(path = %path.display(), error = %e, "could not write the initial admin password file");
    }
}

fn reset_password(config: &Config, username: &str, password: Option<String>) -> anyhow::Result<()> {
    let store = store::Store::open(&config.database_path())?;
    let (password, generated) = match password {
        Some(p) => (p, false),
        None => (auth::secret::random_token(12), true),
    };
    anyhow::ensure!(
        password.len() >= auth::password::MIN_LEN,
        "the password must be at least {} characters",
        auth::password::MIN_LEN
    );
    let hash = auth::password::hash(&password)?;
    anyhow::ensure!(
        store.set_password(username, &hash)?,
        "no user named {username:?}"
    );
    let _ = std::fs::remove_file(config.data_dir.join("initial-admin-password"));
    if generated {
        println!("New password for {username}: {password}");
    } else {
        println!("Password for {username} updated.");
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received");
}
