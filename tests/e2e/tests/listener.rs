//! The HTTP listener under hostile clients, against the real binary started with a low
//! open-files limit (`ulimit -n 1024`, soft and hard, as in the original report).

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use capstan_e2e::{ADMIN_PASSWORD, Proc, bin, free_port, wait_for};

const HEADER_TIMEOUT_SECS: u64 = 3;
const IDLE_TIMEOUT_SECS: u64 = 4;

fn start_core_with_1024_files(dir: &std::path::Path, port: u16) -> Proc {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("ulimit -n 1024 && exec \"$0\" serve")
        .arg(bin("capstan-core"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("CAPSTAN_LISTEN", format!("127.0.0.1:{port}"))
        .env("CAPSTAN_DATA_DIR", dir)
        .env("CAPSTAN_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env(
            "CAPSTAN_HTTP_HEADER_TIMEOUT_SECS",
            HEADER_TIMEOUT_SECS.to_string(),
        )
        .env(
            "CAPSTAN_HTTP_IDLE_TIMEOUT_SECS",
            IDLE_TIMEOUT_SECS.to_string(),
        )
        // A watch is held for less than the idle timeout (the config refuses otherwise).
        .env(
            "CAPSTAN_WATCH_TIMEOUT_SECS",
            (IDLE_TIMEOUT_SECS - 1).to_string(),
        )
        .env("RUST_LOG", "info");
    Proc::spawn(cmd, dir.join("core.log"))
}

/// One `GET /api/ping` on a fresh connection; the time to a 200, or why not.
fn ping(port: u16) -> Result<Duration, String> {
    let start = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    s.write_all(b"GET /api/ping HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer)
        .map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&answer);
    if text.starts_with("HTTP/1.1 200") {
        Ok(start.elapsed())
    } else {
        Err(format!("answer: {text:?}"))
    }
}

/// True once the server has closed `s` (EOF or reset), reading without blocking.
fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}

/// The test itself holds 1,100+ sockets: lift its own soft open-files limit to the hard one.
fn raise_own_open_files_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain libc calls on a struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
    }
    assert!(
        lim.rlim_cur >= 1_500,
        "this test needs 1,500 open files (hard limit {})",
        lim.rlim_max
    );
}

#[test]
fn half_open_connections_neither_starve_a_fresh_client_nor_stay_open() {
    raise_own_open_files_limit();
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut core = start_core_with_1024_files(dir.path(), port);
    wait_for("core to answer /api/ping", Duration::from_secs(20), || {
        ping(port).ok()
    });

    // 1,100 clients each send half a request head and then nothing: more than the
    // core's descriptors allow.
    let mut hostile = Vec::new();
    for _ in 0..1_100 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.write_all(b"GET /api/ping HTTP/1.1\r\nHost: t\r\n")
            .expect("half a head");
        hostile.push(s);
    }
    let opened = Instant::now();

    // A fresh client is answered at once, again and again, while they hang on.
    for attempt in 0..5 {
        let took = ping(port).unwrap_or_else(|e| {
            panic!(
                "ping {attempt} failed under 1,100 half-open connections: {e}\n{}",
                core.output()
            )
        });
        assert!(
            took < Duration::from_secs(2),
            "ping {attempt} took {took:?}"
        );
        println!("ping {attempt} under 1,100 half-open connections: {took:?}");
    }
    assert!(
        opened.elapsed() < Duration::from_secs(HEADER_TIMEOUT_SECS),
        "pings checked before the header timeout could have helped"
    );

    // Every half-open connection is closed by the header timeout (or earlier, evicted).
    for s in &hostile {
        s.set_nonblocking(true).expect("nonblocking");
    }
    let deadline = opened + Duration::from_secs(HEADER_TIMEOUT_SECS + 3);
    let mut open: Vec<TcpStream> = hostile;
    while !open.is_empty() && Instant::now() < deadline {
        open.retain_mut(|s| !closed_by_server(s));
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        open.is_empty(),
        "{} of 1,100 half-open connections still open {:?} after they opened",
        open.len(),
        opened.elapsed()
    );
    println!(
        "all 1,100 half-open connections closed {:?} after opening",
        opened.elapsed()
    );

    // A request whose body never comes is closed by the idle timeout.
    let mut stalled = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stalled
        .write_all(
            b"POST /api/auth/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"user",
        )
        .expect("partial body");
    stalled.set_nonblocking(true).expect("nonblocking");
    let sent = Instant::now();
    wait_for(
        "the stalled upload to be closed",
        Duration::from_secs(IDLE_TIMEOUT_SECS + 3),
        || closed_by_server(&mut stalled).then_some(()),
    );
    assert!(
        sent.elapsed() >= Duration::from_secs(IDLE_TIMEOUT_SECS - 1),
        "closed before the idle timeout: {:?}",
        sent.elapsed()
    );
    ping(port).expect("still serving");

    let log = core.output();
    assert!(
        log.contains("lowered to fit the open-files limit"),
        "the cap follows the descriptor limit:\n{log}"
    );
    assert!(!log.contains("Too many open files"), "{log}");
    core.terminate();
}

#[test]
fn the_soft_open_files_limit_is_raised_to_the_hard_one_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("ulimit -Sn 512 && echo \"hard=$(ulimit -Hn)\" && exec \"$0\" serve")
        .arg(bin("capstan-core"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("CAPSTAN_LISTEN", format!("127.0.0.1:{port}"))
        .env("CAPSTAN_DATA_DIR", dir.path())
        .env("CAPSTAN_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("RUST_LOG", "info");
    let mut core = Proc::spawn(cmd, dir.path().join("core.log"));
    wait_for("core to answer /api/ping", Duration::from_secs(20), || {
        ping(port).ok()
    });
    let log = without_ansi(&core.output());
    let hard = log
        .lines()
        .find_map(|l| l.strip_prefix("hard="))
        .expect("hard limit echoed")
        .trim()
        .to_string();
    if hard == "512" {
        assert!(log.contains("already at its hard limit"), "{log}");
    } else {
        let limit = if hard == "unlimited" {
            ""
        } else {
            hard.as_str()
        };
        let raised = log
            .lines()
            .find(|l| l.contains("raised the open-files limit"))
            .unwrap_or_else(|| panic!("no raise logged:\n{log}"));
        assert!(raised.contains("from=512"), "{raised}");
        assert!(raised.contains(&format!("to={limit}")), "{raised}");
    }
    core.terminate();
}

/// The log without terminal colour codes (`ESC [ … m`).
fn without_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
