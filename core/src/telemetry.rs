//! Logging setup shared by every command: journald when running under systemd, stderr
//! otherwise, filtered by `RUST_LOG` or the configured filter.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Installs the global subscriber. Journald is used only when systemd gave us a journal
/// stream (`JOURNAL_STREAM`) and its socket answers; a missing socket falls back to stderr
/// instead of failing start-up.
pub fn init(default_filter: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(default_filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    if std::env::var_os("JOURNAL_STREAM").is_some()
        && let Ok(journald) = tracing_journald::layer()
    {
        let _ = registry.with(journald).try_init();
        return;
    }
    let _ = registry
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .try_init();
}
