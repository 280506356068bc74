//! `capstan-loadgen`: simulates N agents beating once a second against a running core,
//! to find how many nodes one core holds at 1 Hz (driven by `scripts/bench-ingest`).
//!
//! It creates the nodes through the admin API (`POST /api/agents`), then, for each step
//! of a ramp, every simulated agent posts a heartbeat with a realistic metrics sample
//! (host series plus containers, the same JSON shape as the real agent, built from
//! `capstan-proto` types) once a second, staggered evenly over the second, over a
//! bounded pool of HTTP/1.1 keep-alive connections. Per step it prints achieved beats/s
//! against wanted, latency percentiles, errors, and (given `--core-pid`) the core's CPU
//! and RSS over the same window, plus its own CPU so a saturated generator shows.
//!
//! The generator must stay cheap at thousands of beats/s on two shared cores, so each
//! node's body is serialized once into a template whose numbers sit in fixed-width
//! slots (JSON allows the padding spaces); a beat copies the template and overwrites
//! the slots. Latency is measured twice: from writing the request (service time) and
//! from the beat's scheduled instant (what a paced agent sees, including any wait for a
//! free connection), so a core that falls behind cannot hide behind the generator.

mod body;
mod client;
mod proc_stat;
mod sustain;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::Parser;
use tokio::sync::{Mutex as AsyncMutex, mpsc};

use crate::body::{Shape, Template};
use crate::client::{Conn, Endpoint};

/// Latency under which a step counts as holding (with all beats answered at 1 Hz).
const P99_GOAL_MS: f64 = 100.0;
/// A beat not answered within this is an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Simulated agents beating at 1 Hz against a running capstan-core"
)]
struct Args {
    /// Base URL of the core (plain HTTP).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Admin user that creates the nodes.
    #[arg(long, default_value = "admin")]
    username: String,
    /// Admin password.
    #[arg(long, env = "CAPSTAN_ADMIN_PASSWORD")]
    password: String,
    /// Simulated agents, one step per value: a ramp, e.g. 250,500,1000.
    #[arg(long, value_delimiter = ',', default_value = "100")]
    nodes: Vec<usize>,
    /// Seconds each step beats (the first `warmup` of them are not counted).
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Seconds at the start of each step left out of the figures.
    #[arg(long, default_value_t = 3)]
    warmup: u64,
    /// HTTP/1.1 keep-alive connections shared by all simulated agents.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Host series per beat.
    #[arg(long, default_value_t = 60)]
    host_series: usize,
    /// Containers per beat.
    #[arg(long, default_value_t = 10)]
    containers: usize,
    /// Series per container.
    #[arg(long, default_value_t = 8)]
    container_series: usize,
    /// PID of the core: its CPU and RSS are sampled over each step's window.
    #[arg(long)]
    core_pid: Option<u32>,
    /// Run every step even after one fails to hold.
    #[arg(long)]
    keep_going: bool,
    /// Also print one JSON object per step (for scripts).
    #[arg(long)]
    json: bool,
    /// Runtime threads of the generator (1 keeps it to at most one core).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Each simulated agent also holds a long-poll watch (`GET /api/agent/watch`, 25 s) on
    /// a connection of its own, as real agents do.
    #[arg(long)]
    watch: bool,
    /// Instead of the ramp: hold one step (`--nodes` names one count) this many seconds,
    /// printing a line every `--report-secs` and a flatness verdict at the end.
    #[arg(long)]
    sustain: Option<u64>,
    /// Seconds per line of a sustained run.
    #[arg(long, default_value_t = 10)]
    report_secs: u64,
    /// The core's data directory: its files' total size is printed (sustained run).
    #[arg(long)]
    store_dir: Option<std::path::PathBuf>,
}

/// One beat to send.
struct Job {
    node: usize,
    scheduled: Instant,
    unix_secs: u64,
}

/// Outcome of the beats of one step, filled by the connection workers.
#[derive(Default)]
struct StepStats {
    /// Service latency (request written → response read), µs, of counted beats.
    service_us: Vec<u32>,
    /// Latency from the scheduled instant, µs, of counted beats.
    sched_us: Vec<u32>,
    /// Successful beats completed inside the window.
    ok_in_window: u64,
    errors: u64,
    /// First few error messages, for the report.
    error_samples: VecDeque<String>,
}

struct Shared {
    endpoint: Endpoint,
    templates: std::sync::RwLock<Vec<Arc<Template>>>,
    stats: std::sync::Mutex<StepStats>,
    /// Measurement window of the current step.
    window: std::sync::Mutex<(Instant, Instant)>,
    /// Beats queued or in flight.
    outstanding: AtomicI64,
    /// Simulated agents holding a watch (`--watch`), and what their watches got.
    watchers: AtomicUsize,
    watch_answers: AtomicU64,
    watch_errors: AtomicU64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.nodes.is_empty() || args.nodes.contains(&0) {
        bail!("--nodes needs positive counts");
    }
    if args.warmup >= args.seconds {
        bail!("--warmup must be shorter than --seconds");
    }
    if let Some(secs) = args.sustain {
        if args.nodes.len() != 1 {
            bail!("--sustain holds one step: give --nodes one count");
        }
        if args.report_secs == 0 || secs < args.report_secs * 3 {
            bail!("--sustain must cover at least three --report-secs periods");
        }
    }
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()?
    };
    runtime.block_on(run(args))
}

async fn run(args: Args) -> Result<()> {
    let endpoint = Endpoint::parse(&args.url)?;
    let shape = Shape {
        host_series: args.host_series,
        containers: args.containers,
        container_series: args.container_series,
    };
    let shared = Arc::new(Shared {
        endpoint,
        templates: std::sync::RwLock::new(Vec::new()),
        stats: std::sync::Mutex::new(StepStats::default()),
        window: std::sync::Mutex::new((Instant::now(), Instant::now())),
        outstanding: AtomicI64::new(0),
        watchers: AtomicUsize::new(0),
        watch_answers: AtomicU64::new(0),
        watch_errors: AtomicU64::new(0),
    });

    // Connection workers pull beats from one queue, so a slow connection never holds
    // beats another could send. The queue is bounded: a beat that finds it full is an
    // error (the generator, or the core, is that far behind).
    let max_nodes = args.nodes.iter().copied().max().unwrap_or(1);
    let (tx, rx) = mpsc::channel::<Job>(max_nodes * 2);
    let rx = Arc::new(AsyncMutex::new(rx));
    let mut workers = Vec::new();
    for _ in 0..args.connections.max(1) {
        let rx = rx.clone();
        let shared = shared.clone();
        workers.push(tokio::spawn(worker(rx, shared)));
    }

    let sample = body::sample_json_len(&shape)?;
    println!(
        "capstan-loadgen: {} host series + {} containers x {} series per beat ({} bytes), {} connections, {} s per step ({} s warm-up)",
        args.host_series,
        args.containers,
        args.container_series,
        sample,
        args.connections,
        args.seconds,
        args.warmup
    );

    if let Some(secs) = args.sustain {
        let n = args.nodes[0];
        ensure_nodes(&shared, &args, &shape, n).await?;
        sustain::run(&shared, &tx, &args, n, secs).await?;
        drop(tx);
        for w in workers {
            w.abort();
        }
        return Ok(());
    }
    println!(
        "{:>6} {:>9} {:>9} {:>8} {:>8} {:>8} {:>11} {:>7} {:>9} {:>8} {:>8}  holds",
        "nodes",
        "wanted/s",
        "beats/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "p99* ms",
        "errors",
        "core CPU%",
        "core MB",
        "gen CPU%"
    );
    let mut best: Option<usize> = None;
    for &n in &args.nodes {
        ensure_nodes(&shared, &args, &shape, n).await?;
        if args.watch {
            ensure_watchers(&shared, n);
        }
        let row = run_step(&shared, &tx, &args, n).await?;
        let holds = row.holds();
        println!("{}", row.table_line());
        if args.watch {
            println!(
                "    watches held: {}, answered: {}, failed: {} (since start)",
                shared.watchers.load(Ordering::Relaxed),
                shared.watch_answers.load(Ordering::Relaxed),
                shared.watch_errors.load(Ordering::Relaxed)
            );
        }
        if args.json {
            println!("{}", row.json());
        }
        for e in &row.error_samples {
            println!("    error: {e}");
        }
        if holds {
            best = Some(n);
        } else if !args.keep_going {
            println!("    (stopping the ramp: this step does not hold)");
            break;
        }
    }
    println!("p99* = from the scheduled instant (includes waiting for a free connection)");
    println!("holds = no errors, beats/s >= 99 % of wanted, and p99* < {P99_GOAL_MS} ms");
    match best {
        Some(n) => println!("largest N holding 1 Hz with p99 < {P99_GOAL_MS} ms: {n}"),
        None => println!("largest N holding 1 Hz with p99 < {P99_GOAL_MS} ms: none of the steps"),
    }
    drop(tx);
    for w in workers {
        w.abort();
    }
    Ok(())
}

/// Starts a watch loop for each of the first `n` simulated agents that has none yet.
fn ensure_watchers(shared: &Arc<Shared>, n: usize) {
    let have = shared.watchers.load(Ordering::Relaxed);
    let templates: Vec<Arc<Template>> = shared
        .templates
        .read()
        .map(|t| {
            t.iter()
                .skip(have)
                .take(n.saturating_sub(have))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    for t in templates {
        shared.watchers.fetch_add(1, Ordering::Relaxed);
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut conn = Conn::new(shared.endpoint.clone());
            let mut since: Option<(u64, String)> = None;
            loop {
                let query = match &since {
                    Some((c, b)) => format!("timeout=25&since={c}&boot={b}"),
                    None => "timeout=25".to_string(),
                };
                let answer = conn
                    .watch(&t.id, &t.key, &query)
                    .await
                    .ok()
                    .filter(|(status, _)| *status == 200)
                    .and_then(|(_, body)| {
                        serde_json::from_slice::<capstan_proto::WatchResponse>(&body).ok()
                    });
                match answer {
                    Some(w) => {
                        shared.watch_answers.fetch_add(1, Ordering::Relaxed);
                        since = Some((w.counter, w.boot));
                    }
                    None => {
                        shared.watch_errors.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
    }
}

/// Creates nodes until there are `n`, each with its body template.
async fn ensure_nodes(shared: &Arc<Shared>, args: &Args, shape: &Shape, n: usize) -> Result<()> {
    let have = shared.templates.read().map(|t| t.len()).unwrap_or(0);
    if have >= n {
        return Ok(());
    }
    let started = Instant::now();
    let mut conn = Conn::new(shared.endpoint.clone());
    let token = client::login(&mut conn, &args.username, &args.password).await?;
    // A few creations in flight: each is one write transaction on the core.
    let parallel = 8usize;
    let mut tasks = Vec::new();
    for lane in 0..parallel {
        let endpoint = shared.endpoint.clone();
        let token = token.clone();
        let shape = shape.clone();
        let indices: Vec<usize> = (have..n).filter(|i| i % parallel == lane).collect();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::new(endpoint);
            let mut made = Vec::with_capacity(indices.len());
            for i in indices {
                let name = format!("loadgen-{i:05}");
                let (id, key) = client::create_node(&mut conn, &token, &name).await?;
                made.push((i, Template::build(&shape, i, &name, id, key)?));
            }
            anyhow::Ok(made)
        }));
    }
    let mut made = Vec::new();
    for t in tasks {
        made.extend(t.await.context("node creation task")??);
    }
    made.sort_by_key(|(i, _)| *i);
    let mut templates = shared
        .templates
        .write()
        .map_err(|_| anyhow::anyhow!("template lock poisoned"))?;
    templates.extend(made.into_iter().map(|(_, t)| Arc::new(t)));
    println!(
        "    (created nodes {have}..{n} in {:.1} s)",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

struct Row {
    nodes: usize,
    window_secs: f64,
    achieved: f64,
    p50: f64,
    p95: f64,
    p99: f64,
    p99_sched: f64,
    errors: u64,
    counted: usize,
    core_cpu: Option<f64>,
    core_rss_mb: Option<f64>,
    gen_cpu: f64,
    error_samples: Vec<String>,
}

impl Row {
    fn holds(&self) -> bool {
        self.errors == 0
            && self.achieved >= self.nodes as f64 * 0.99
            && self.p99_sched < P99_GOAL_MS
    }

    fn table_line(&self) -> String {
        let opt = |v: Option<f64>, prec: usize| {
            v.map(|v| format!("{v:.prec$}"))
                .unwrap_or_else(|| "-".into())
        };
        format!(
            "{:>6} {:>9} {:>9.1} {:>8.1} {:>8.1} {:>8.1} {:>11.1} {:>7} {:>9} {:>8} {:>8.1}  {}",
            self.nodes,
            self.nodes,
            self.achieved,
            self.p50,
            self.p95,
            self.p99,
            self.p99_sched,
            self.errors,
            opt(self.core_cpu, 1),
            opt(self.core_rss_mb, 1),
            self.gen_cpu,
            if self.holds() { "yes" } else { "NO" }
        )
    }

    fn json(&self) -> String {
        serde_json::json!({
            "nodes": self.nodes,
            "wanted_per_s": self.nodes,
            "achieved_per_s": self.achieved,
            "window_s": self.window_secs,
            "beats_counted": self.counted,
            "p50_ms": self.p50,
            "p95_ms": self.p95,
            "p99_ms": self.p99,
            "p99_from_schedule_ms": self.p99_sched,
            "errors": self.errors,
            "core_cpu_pct": self.core_cpu,
            "core_rss_mb": self.core_rss_mb,
            "generator_cpu_pct": self.gen_cpu,
            "holds": self.holds(),
        })
        .to_string()
    }
}

async fn run_step(
    shared: &Arc<Shared>,
    tx: &mpsc::Sender<Job>,
    args: &Args,
    n: usize,
) -> Result<Row> {
    let start = Instant::now() + Duration::from_millis(200);
    let window_start = start + Duration::from_secs(args.warmup);
    let window_end = start + Duration::from_secs(args.seconds);
    if let Ok(mut w) = shared.window.lock() {
        *w = (window_start, window_end);
    }
    if let Ok(mut s) = shared.stats.lock() {
        *s = StepStats::default();
    }
    let unix0 = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut core0 = None;
    let mut gen0 = None;
    let mut dropped = 0u64;
    for sec in 0..args.seconds {
        if sec == args.warmup {
            tokio::time::sleep_until(window_start.into()).await;
            core0 = args.core_pid.and_then(proc_stat::cpu_secs);
            gen0 = proc_stat::self_cpu_secs();
        }
        dropped += schedule_second(start, sec, n, unix0, tx, shared).await;
    }
    tokio::time::sleep_until(window_end.into()).await;
    let core1 = args.core_pid.and_then(proc_stat::cpu_secs);
    let gen1 = proc_stat::self_cpu_secs();
    let core_rss_mb = args.core_pid.and_then(proc_stat::rss_mb);
    let window_secs = (window_end - window_start).as_secs_f64();
    // Let the stragglers finish (bounded), so the next step starts from an idle core.
    let drain_until = Instant::now() + REQUEST_TIMEOUT + Duration::from_secs(1);
    while shared.outstanding.load(Ordering::Relaxed) > 0 && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stuck = shared.outstanding.load(Ordering::Relaxed).max(0) as u64;
    let mut stats = shared
        .stats
        .lock()
        .map(|mut s| std::mem::take(&mut *s))
        .map_err(|_| anyhow::anyhow!("stats lock poisoned"))?;
    stats.service_us.sort_unstable();
    stats.sched_us.sort_unstable();
    let pct = |v: &[u32], q: f64| -> f64 {
        if v.is_empty() {
            return f64::NAN;
        }
        let idx = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
        f64::from(v[idx]) / 1000.0
    };
    let rate = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => Some((b - a) * 100.0 / window_secs),
        _ => None,
    };
    let mut error_samples: Vec<String> = stats.error_samples.into_iter().collect();
    if dropped > 0 {
        error_samples.push(format!("{dropped} beats found the generator's queue full"));
    }
    if stuck > 0 {
        error_samples.push(format!("{stuck} beats still unanswered after the step"));
    }
    Ok(Row {
        nodes: n,
        window_secs,
        achieved: stats.ok_in_window as f64 / window_secs,
        p50: pct(&stats.service_us, 0.50),
        p95: pct(&stats.service_us, 0.95),
        p99: pct(&stats.service_us, 0.99),
        p99_sched: pct(&stats.sched_us, 0.99),
        errors: stats.errors + dropped + stuck,
        counted: stats.sched_us.len(),
        core_cpu: rate(core0, core1),
        core_rss_mb,
        gen_cpu: rate(gen0, gen1).unwrap_or(f64::NAN),
        error_samples,
    })
}

async fn worker(rx: Arc<AsyncMutex<mpsc::Receiver<Job>>>, shared: Arc<Shared>) {
    let mut conn = Conn::new(shared.endpoint.clone());
    let mut buf = Vec::new();
    loop {
        let job = { rx.lock().await.recv().await };
        let Some(job) = job else { break };
        let template = shared
            .templates
            .read()
            .ok()
            .and_then(|t| t.get(job.node).cloned());
        let Some(template) = template else {
            shared.outstanding.fetch_sub(1, Ordering::Relaxed);
            continue;
        };
        template.render(&mut buf, job.unix_secs);
        let body = bytes::Bytes::copy_from_slice(&buf);
        let sent = Instant::now();
        let result = tokio::time::timeout(
            REQUEST_TIMEOUT,
            conn.post_beat(&template.id, &template.key, body),
        )
        .await;
        let done = Instant::now();
        let error = match result {
            Ok(Ok((200, _))) => None,
            Ok(Ok((status, text))) => Some(format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&text[..text.len().min(200)])
            )),
            Ok(Err(e)) => Some(format!("{e:#}")),
            Err(_) => {
                conn.reset();
                Some(format!("no answer within {REQUEST_TIMEOUT:?}"))
            }
        };
        let (window_start, window_end) = shared.window.lock().map(|w| *w).unwrap_or((done, done));
        if let Ok(mut s) = shared.stats.lock() {
            let counted = job.scheduled >= window_start && job.scheduled < window_end;
            match error {
                None => {
                    if done >= window_start && done < window_end {
                        s.ok_in_window += 1;
                    }
                    if counted {
                        s.service_us.push(micros(done - sent));
                        s.sched_us
                            .push(micros(done.saturating_duration_since(job.scheduled)));
                    }
                }
                Some(e) => {
                    s.errors += 1;
                    if s.error_samples.len() < 3 {
                        s.error_samples.push_back(e);
                    }
                }
            }
        }
        shared.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// Queues second `sec` of the run: each of the `n` nodes' beats at its own instant, spread
/// evenly over the second from `start`. Returns the beats dropped because every
/// connection was still busy (the queue was full).
pub(crate) async fn schedule_second(
    start: Instant,
    sec: u64,
    n: usize,
    unix0: u64,
    tx: &mpsc::Sender<Job>,
    shared: &Shared,
) -> u64 {
    let mut dropped = 0;
    for i in 0..n {
        let at = start
            + Duration::from_secs(sec)
            + Duration::from_nanos(1_000_000_000 * i as u64 / n as u64);
        if at > Instant::now() + Duration::from_micros(500) {
            tokio::time::sleep_until(at.into()).await;
        }
        let job = Job {
            node: i,
            scheduled: at,
            unix_secs: unix0 + sec + 1,
        };
        shared.outstanding.fetch_add(1, Ordering::Relaxed);
        if tx.try_send(job).is_err() {
            shared.outstanding.fetch_sub(1, Ordering::Relaxed);
            dropped += 1;
        }
    }
    dropped
}
