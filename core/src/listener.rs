//! The HTTP listener, shaped for hostile clients: anyone who can reach the port may open
//! connections and send nothing, half a request head, or a body one byte a minute.
//!
//! - A request head must arrive within `http_header_timeout_secs` (hyper's header read
//!   timeout; its clock starts when the connection is ready for a head, so it also bounds
//!   an idle keep-alive connection).
//! - A connection with no byte read or written for `http_idle_timeout_secs` is closed
//!   (a stalled body upload, a client that stops reading its response), whatever state
//!   its request is in.
//! - At most `http_max_connections` are open (lowered to fit the open-files limit). A
//!   new connection over the cap evicts the connection that has been quiet the longest
//!   among those with no request in progress (an idle keep-alive or a head that never
//!   completes) or a request stalled for a header timeout (a body that never comes), so
//!   a flood of half-open connections cannot lock out a fresh client; when every
//!   connection is busy the new one is closed at once.
//! - Accept errors never spin: a per-connection error is skipped, anything else (EMFILE)
//!   evicts an idle connection and pauses the loop briefly.
//!
//! axum's own `serve` has none of these knobs, so connections are driven by hyper's
//! HTTP/1 server directly (the core serves plain HTTP/1.1; TLS and HTTP/2 belong to the
//! reverse proxy in front of it).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

/// File descriptors kept free for everything that is not a client connection (the store,
/// log sockets, accepting the connection that triggers an eviction).
const RESERVED_FDS: u64 = 64;

/// How long connections may take to finish after shutdown starts.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Longest the accept loop waits for evicted connections to close before accepting more.
const SETTLE_MAX: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

impl Limits {
    /// The configured limits, with the connection cap lowered to fit the process's
    /// open-files limit.
    pub fn from_config(config: &crate::config::Config) -> Limits {
        let configured = config.http_max_connections;
        let max_connections = match nofile_limit() {
            Some((soft, _)) => {
                let fit =
                    usize::try_from(soft.saturating_sub(RESERVED_FDS).max(1)).unwrap_or(usize::MAX);
                if fit < configured {
                    tracing::warn!(
                        configured,
                        open_files_limit = soft,
                        effective = fit,
                        "http_max_connections lowered to fit the open-files limit"
                    );
                }
                configured.min(fit)
            }
            None => configured,
        };
        Limits {
            header_timeout: Duration::from_secs(config.http_header_timeout_secs),
            idle_timeout: Duration::from_secs(config.http_idle_timeout_secs),
            max_connections,
        }
    }
}

/// The soft and hard `RLIMIT_NOFILE`.
pub fn nofile_limit() -> Option<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass and reads nothing else.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    (rc == 0).then_some((lim.rlim_cur, lim.rlim_max))
}

/// Raises the soft open-files limit to the hard one (each connection is a descriptor; the
/// usual soft default of 1024 is far below what the hard limit allows) and logs the result.
pub fn raise_nofile_limit() {
    let Some((soft, hard)) = nofile_limit() else {
        tracing::warn!("cannot read the open-files limit (RLIMIT_NOFILE)");
        return;
    };
    if soft >= hard {
        tracing::info!(soft, hard, "open-files limit already at its hard limit");
        return;
    }
    let lim = libc::rlimit {
        rlim_cur: hard,
        rlim_max: hard,
    };
    // SAFETY: setrlimit only reads the struct we pass.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    if rc == 0 {
        tracing::info!(from = soft, to = hard, "raised the open-files limit");
    } else {
        let err = io::Error::last_os_error();
        tracing::warn!(soft, hard, error = %err, "cannot raise the open-files limit");
    }
}

/// What the accept loop and a connection's task share about that connection.
struct ConnShared {
    /// Milliseconds since `Registry::epoch` of the last byte read or written.
    last_io_ms: AtomicU64,
    /// Requests whose handler is running.
    busy: AtomicUsize,
    kill: tokio::sync::Notify,
}

struct Registry {
    epoch: Instant,
    conns: Mutex<HashMap<u64, Arc<ConnShared>>>,
    /// Sockets still open: an evicted connection leaves `conns` at once but holds its
    /// descriptor until its task has ended, so the accept loop counts these, not `conns`.
    open: AtomicUsize,
    /// Signalled whenever a connection's socket is closed.
    closed: tokio::sync::Notify,
}

/// Counts one open socket for as long as it lives; declared before the connection so it
/// drops after it (the socket is closed by then).
struct OpenSocket(Arc<Registry>);

impl Drop for OpenSocket {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
        self.0.closed.notify_waiters();
    }
}

impl Registry {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Waits (bounded) until at most `cap` sockets are open: evicted connections close on
    /// their own tasks, and accepting faster than they close would run out of descriptors.
    async fn settle(&self, cap: usize) {
        let deadline = tokio::time::Instant::now() + SETTLE_MAX;
        loop {
            let closed = self.closed.notified();
            if self.open.load(Ordering::Acquire) <= cap {
                return;
            }
            if tokio::time::timeout_at(deadline, closed).await.is_err() {
                return;
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<ConnShared>>> {
        match self.conns.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Makes room for one more connection: true when there is a free slot (after evicting
    /// the quietest evictable connection, if needed).
    fn make_room(&self, cap: usize, stalled_after: Duration) -> bool {
        let mut conns = self.lock();
        if conns.len() < cap {
            return true;
        }
        self.evict_quietest(&mut conns, stalled_after)
    }

    /// Closes the connection quiet the longest among those with no request in progress
    /// and those whose request has moved no byte for `stalled_after` (a body that does
    /// not come). A request being answered is never cut.
    fn evict_quietest(
        &self,
        conns: &mut HashMap<u64, Arc<ConnShared>>,
        stalled_after: Duration,
    ) -> bool {
        let now = self.now_ms();
        let stalled_ms = u64::try_from(stalled_after.as_millis()).unwrap_or(u64::MAX);
        let victim = conns
            .iter()
            .filter(|(_, c)| {
                c.busy.load(Ordering::Acquire) == 0
                    || now.saturating_sub(c.last_io_ms.load(Ordering::Relaxed)) >= stalled_ms
            })
            .min_by_key(|(_, c)| c.last_io_ms.load(Ordering::Relaxed))
            .map(|(id, _)| *id);
        match victim.and_then(|id| conns.remove(&id)) {
            Some(conn) => {
                conn.kill.notify_one();
                true
            }
            None => false,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets open connections
/// finish their requests (bounded by [`SHUTDOWN_GRACE`]).
pub async fn run(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let registry = Arc::new(Registry {
        epoch: Instant::now(),
        conns: Mutex::new(HashMap::new()),
        open: AtomicUsize::new(0),
        closed: tokio::sync::Notify::new(),
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut next_id: u64 = 0;
    let mut last_accept_warning: Option<Instant> = None;
    tracing::info!(
        max_connections = limits.max_connections,
        header_timeout_secs = limits.header_timeout.as_secs(),
        idle_timeout_secs = limits.idle_timeout.as_secs(),
        "HTTP listener limits"
    );
    loop {
        registry.settle(limits.max_connections).await;
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // Out of descriptors (EMFILE/ENFILE) or memory: free an idle connection and
                // pause, rather than retrying in a tight loop.
                let now = Instant::now();
                if last_accept_warning
                    .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(10))
                {
                    tracing::warn!(error = %e, "accept failed; closing an idle connection and pausing");
                    last_accept_warning = Some(now);
                }
                registry.evict_quietest(&mut registry.lock(), limits.header_timeout);
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if !registry.make_room(limits.max_connections, limits.header_timeout) {
            tracing::debug!(%peer, "connection cap reached and every connection busy; closing");
            drop(stream);
            continue;
        }
        registry.open.fetch_add(1, Ordering::AcqRel);
        let open = OpenSocket(registry.clone());
        let _ = stream.set_nodelay(true);
        next_id += 1;
        let id = next_id;
        let shared = Arc::new(ConnShared {
            last_io_ms: AtomicU64::new(registry.now_ms()),
            busy: AtomicUsize::new(0),
            kill: tokio::sync::Notify::new(),
        });
        registry.lock().insert(id, shared.clone());
        tokio::spawn(serve_connection(
            open,
            stream,
            peer,
            router.clone(),
            limits,
            registry.clone(),
            id,
            shared,
            stop_rx.clone(),
        ));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let deadline = Instant::now() + SHUTDOWN_GRACE;
    while !registry.lock().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn serve_connection(
    _open: OpenSocket,
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: Limits,
    registry: Arc<Registry>,
    id: u64,
    shared: Arc<ConnShared>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let io = TokioIo::new(Tracked {
        inner: stream,
        registry: registry.clone(),
        shared: shared.clone(),
    });
    let svc_shared = shared.clone();
    let service = tower::service_fn(move |mut req: axum::http::Request<Incoming>| {
        let router = router.clone();
        let busy = BusyGuard::new(svc_shared.clone());
        req.extensions_mut().insert(ConnectInfo(peer));
        async move {
            let response = router.oneshot(req).await;
            drop(busy);
            response
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let conn = builder.serve_connection(io, TowerToHyperService::new(service));
    let mut conn = std::pin::pin!(conn);
    let mut stopping = *stop.borrow();
    if stopping {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                break;
            }
            _ = shared.kill.notified() => {
                tracing::debug!(%peer, "connection evicted to make room");
                break;
            }
            _ = idle_expired(&registry, &shared, limits.idle_timeout) => {
                tracing::debug!(%peer, "connection idle timeout");
                break;
            }
            changed = stop.changed(), if !stopping => {
                if changed.is_err() || *stop.borrow() {
                    stopping = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
    registry.lock().remove(&id);
}

/// Resolves once no byte has moved on the connection for `idle`.
async fn idle_expired(registry: &Registry, shared: &ConnShared, idle: Duration) {
    let idle_ms = u64::try_from(idle.as_millis()).unwrap_or(u64::MAX);
    loop {
        let last = shared.last_io_ms.load(Ordering::Relaxed);
        let quiet = registry.now_ms().saturating_sub(last);
        // Busy or not: a handler waiting for a body that does not come is what this
        // catches, and no handler of ours works for a minute without I/O.
        if quiet >= idle_ms {
            return;
        }
        tokio::time::sleep(Duration::from_millis(
            idle_ms.saturating_sub(quiet).max(100),
        ))
        .await;
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Marks a request in progress, so eviction passes over its connection.
struct BusyGuard(Arc<ConnShared>);

impl BusyGuard {
    fn new(shared: Arc<ConnShared>) -> BusyGuard {
        shared.busy.fetch_add(1, Ordering::AcqRel);
        BusyGuard(shared)
    }
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A TCP stream that records when a byte last moved, for the idle timeout and eviction.
struct Tracked {
    inner: TcpStream,
    registry: Arc<Registry>,
    shared: Arc<ConnShared>,
}

impl Tracked {
    fn touch(&self) {
        self.shared
            .last_io_ms
            .store(self.registry.now_ms(), Ordering::Relaxed);
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(poll, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.touch();
        }
        poll
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            this.touch();
        }
        poll
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            this.touch();
        }
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
