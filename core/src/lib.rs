//! `capstan-core`: the control plane. `main.rs` only wires config → telemetry → state →
//! [`serve`]; everything here is testable in-process (`app(state).oneshot(..)`).

pub mod api;
pub mod auth;
pub mod clock;
pub mod config;
pub mod error;
pub mod extract;
pub mod fleet;
pub mod json_body;
pub mod listener;
pub mod liveness;
pub mod logs;
pub mod memory;
pub mod metrics;
pub mod presence;
pub mod routing;
pub mod store;
pub mod telemetry;
pub mod ui;
pub mod validate;
pub mod watch;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;

use crate::auth::jwt::JwtKeys;
use crate::auth::rate_limit::RateLimiter;
use crate::config::Config;
use crate::presence::Presence;
use crate::store::Store;

/// Everything a request handler may touch. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Arc<Store>,
    pub jwt: Arc<JwtKeys>,
    pub auth_limiter: Arc<RateLimiter>,
    pub presence: Arc<Presence>,
    pub fleet: Arc<fleet::Fleet>,
    /// Buffered metric points and each node's newest sample.
    pub metrics: Arc<metrics::MetricsHub>,
    pub desired: Arc<fleet::DesiredCache>,
    /// Live log watches and their buffered lines.
    pub logs: Arc<logs::LogHub>,
    /// Per-node change counters behind the agents' long-poll (`/api/agent/watch`).
    pub changes: Arc<watch::Changes>,
}

/// The admin account created on first start, with the password when it was generated
/// (so the caller can show it once).
pub struct Bootstrap {
    pub state: AppState,
    pub generated_admin_password: Option<String>,
}

const JWT_KEY: &str = "jwt_signing_key";

impl AppState {
    /// Opens the store and prepares state. On an empty store it creates user `admin` with
    /// `admin_password`, or a random password returned in [`Bootstrap`].
    pub fn open(config: Config, admin_password: Option<String>) -> anyhow::Result<Bootstrap> {
        // Holds the first admin password: owner only, like the store's own directory.
        store::secure_dir(&config.data_dir)?;
        let initial_password = config.data_dir.join("initial-admin-password");
        if initial_password.exists() {
            store::secure_file(&initial_password)?;
        }
        let store = Store::open_with_cache(
            &config.database_path(),
            config.store_cache_mb as usize * (1 << 20),
        )?;
        let secret =
            store.meta_get_or_init(JWT_KEY, || auth::secret::random_token(32).into_bytes())?;
        let mut generated = None;
        if store.user_count()? == 0 {
            let password = match admin_password {
                Some(p) => p,
                None => {
                    let p = auth::secret::random_token(12);
                    generated = Some(p.clone());
                    p
                }
            };
            anyhow::ensure!(
                password.len() >= auth::password::MIN_LEN,
                "CAPSTAN_ADMIN_PASSWORD must be at least {} characters",
                auth::password::MIN_LEN
            );
            let user = store::UserRecord {
                username: "admin".into(),
                password_hash: auth::password::hash(&password)?,
                created_at_ms: clock::now_ms(),
                token_generation: 0,
            };
            store.create_user(&user)?;
        }
        let presence = Presence::from_records(&store.list_agents()?);
        let fleet = fleet::Fleet::load(&store)?;
        let metrics_hub = metrics::MetricsHub::load(&store, config.max_series_per_node as usize)?;
        let state = AppState {
            fleet: Arc::new(fleet),
            auth_limiter: Arc::new(RateLimiter::new(
                config.login_burst,
                config.login_per_minute,
            )),
            config: Arc::new(config),
            store: Arc::new(store),
            jwt: Arc::new(JwtKeys::new(&secret)),
            presence: Arc::new(presence),
            metrics: Arc::new(metrics_hub),
            desired: Arc::new(fleet::DesiredCache::default()),
            logs: Arc::new(logs::LogHub::default()),
            changes: Arc::new(watch::Changes::default()),
        };
        Ok(Bootstrap {
            state,
            generated_admin_password: generated,
        })
    }

    /// Rebuilds the fleet snapshot after a write (on the blocking pool).
    pub async fn refresh_fleet(&self) -> Result<(), error::ApiError> {
        let fleet = self.fleet.clone();
        self.blocking(move |s| Ok(fleet.reload(s)?)).await?;
        // Any node's desired state may differ now: held watches check theirs.
        self.changes.fleet_changed();
        Ok(())
    }

    /// Runs blocking store work off the async workers.
    pub async fn blocking<T, F>(&self, f: F) -> Result<T, error::ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, error::ApiError> + Send + 'static,
    {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            let r = f(&store);
            // Any handler seeing an I/O class store error starts the reopen loop.
            if let Err(error::ApiError::StoreUnavailable(detail)) = &r {
                store.mark_unwritable(detail);
            }
            r
        })
        .await
        .map_err(error::ApiError::internal)?
    }
}

/// The whole HTTP surface: API, agent endpoints, embedded UI.
pub fn app(state: AppState) -> Router {
    let api = api::router(state.clone());
    let router = Router::new()
        .merge(api)
        .fallback(ui::serve_asset)
        // Agents gzip large beats (a backlog after an outage). Body limits apply to the
        // decompressed bytes: extractors count what they read after this layer.
        .layer(tower_http::decompression::RequestDecompressionLayer::new());
    with_security_headers(router).layer(api::trace_layer())
}

/// The policy every response carries. The SPA loads only its own script and stylesheet
/// files (no inline script, no inline `style` attribute: React and uPlot set styles
/// through the DOM, which CSP does not restrict) and talks only to its own origin; no
/// page may frame it.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Security headers on every response (API, UI and errors alike), unless a handler set
/// its own.
fn with_security_headers(router: Router) -> Router {
    use axum::http::HeaderValue;
    use axum::http::header;
    use tower_http::set_header::SetResponseHeaderLayer as Set;
    router
        .layer(Set::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        .layer(Set::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(Set::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(Set::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(Set::if_not_present(
            axum::http::HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ))
}

/// Serves until `shutdown` resolves, then flushes presence and returns.
pub async fn serve(
    state: AppState,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let metrics_flusher = tokio::spawn(metrics::flush_loop(state.clone(), stop_rx.clone()));
    let flusher = tokio::spawn(flush_presence(state.clone(), stop_rx.clone()));
    let store_doctor = tokio::spawn(reopen_store(state.clone(), stop_rx));
    let limits = listener::Limits::from_config(&state.config);
    let router = app(state);
    listener::run(listener, router, limits, shutdown).await?;
    let _ = stop_tx.send(true);
    flusher.await?;
    metrics_flusher.await?;
    store_doctor.await?;
    Ok(())
}

/// While the store cannot write (see `store/mod.rs` for why it is reopened rather than
/// the process restarted), reopens it once a second until a probe write commits.
async fn reopen_store(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => break,
        }
        if state.store.unwritable().is_none() {
            // Paths that do not go through `AppState::blocking` may have met a latched
            // error without saying so: one read a second finds out.
            let store = state.store.clone();
            let _ = tokio::task::spawn_blocking(move || store.check_latched()).await;
            if state.store.unwritable().is_none() {
                continue;
            }
        }
        let store = state.store.clone();
        match tokio::task::spawn_blocking(move || store.reopen()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::debug!(error = %e, "store still cannot write"),
            Err(e) => tracing::error!(error = %e, "store reopen task failed"),
        }
    }
}

/// Persists presence in batches; see `presence.rs` for why.
async fn flush_presence(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    let every = Duration::from_secs(state.config.presence_flush_secs);
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            _ = ticker.tick() => false,
            _ = state.presence.urgent() => false,
            _ = stop.changed() => true,
        };
        let batch = state.presence.take_dirty();
        if !batch.is_empty() {
            let store = state.store.clone();
            let attempt = batch.clone();
            let result = tokio::task::spawn_blocking(move || {
                let r = store.apply_presence(&attempt);
                store.note(&r);
                r
            })
            .await;
            match result {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "persisting node presence failed; will retry");
                    state.presence.restore_dirty(batch);
                }
                Err(e) => {
                    tracing::error!(error = %e, "presence flush task failed; will retry");
                    state.presence.restore_dirty(batch);
                }
            }
        }
        if stopping {
            break;
        }
    }
}
