//! Container logs by long-polling, end to end: real core, real agent, real containers.

use std::time::{Duration, Instant};

use capstan_e2e::docker::script;
use capstan_e2e::{Api, Core, free_port, start_agent, wait_for};
use serde_json::Value;

struct Setup {
    _tmp: tempfile::TempDir,
    _core: Core,
    _agent: capstan_e2e::Proc,
    api: Api,
    node: String,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().expect("tempdir");
    let core_dir = tmp.path().join("core");
    std::fs::create_dir_all(&core_dir).expect("mkdir");
    let core = Core::start(&core_dir, free_port(), &[]);
    let api = core.api();
    let (node, key) = api.create_node("logs-node");
    let agent = start_agent(
        &tmp.path().join("agent"),
        &[
            ("CORE_URL", core.url.as_str()),
            ("AGENT_ID", node.as_str()),
            ("AGENT_KEY", key.as_str()),
        ],
    );
    wait_for("node online", Duration::from_secs(15), || {
        (api.node_status(&node) == "online").then_some(())
    });
    Setup {
        _tmp: tmp,
        _core: core,
        _agent: agent,
        api,
        node,
    }
}

/// Polls from `cursor` until `done` says so or `timeout`; returns every line and the
/// total `skipped`.
fn collect(
    s: &Setup,
    source: &str,
    timeout: Duration,
    done: impl Fn(&[Value], u64) -> bool,
) -> (Vec<Value>, u64) {
    let mut lines: Vec<Value> = Vec::new();
    let mut skipped = 0;
    let mut cursor: Option<u64> = None;
    let start = Instant::now();
    while start.elapsed() < timeout {
        // The UI's way: a long-poll, answered as soon as lines after the cursor exist.
        let q = match cursor {
            Some(c) => format!("?cursor={c}&tail=0&wait=5"),
            None => "?tail=0".to_string(),
        };
        let (status, body) = s
            .api
            .get(&format!("/api/agents/{}/logs/{source}{q}", s.node));
        assert_eq!(status, 200, "{body}");
        lines.extend(body["lines"].as_array().cloned().unwrap_or_default());
        skipped += body["skipped"].as_u64().unwrap_or(0);
        cursor = body["cursor"].as_u64();
        if done(&lines, skipped) {
            break;
        }
        if cursor.is_none() {
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    (lines, skipped)
}

#[test]
fn every_line_exactly_once_in_order() {
    let s = setup();
    let name = format!("capstan-e2e-{}-counter", std::process::id());
    // Wait until the watch is on before counting, so every line is new (tail=0).
    let c = script(
        &name,
        "sleep 4; i=0; while [ $i -lt 300 ]; do if [ $((i % 10)) = 0 ]; then echo line-$i >&2; else echo line-$i; fi; i=$((i+1)); sleep 0.1; done; sleep 3600",
    );
    let (lines, skipped) = collect(&s, &c.name, Duration::from_secs(90), |l, _| {
        l.iter().any(|x| x["text"] == "line-299")
    });
    let texts: Vec<&str> = lines.iter().filter_map(|l| l["text"].as_str()).collect();
    let expected: Vec<String> = (0..300).map(|i| format!("line-{i}")).collect();
    assert_eq!(texts, expected, "every line once, in order");
    assert_eq!(skipped, 0);
    for (i, l) in lines.iter().enumerate() {
        let want = if i % 10 == 0 { "stderr" } else { "stdout" };
        assert_eq!(l["stream"], want, "{l}");
        assert!(l["ts"].as_str().is_some_and(|t| t.starts_with("20")), "{l}");
    }
    let seqs: Vec<u64> = lines.iter().filter_map(|l| l["seq"].as_u64()).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "consecutive sequence numbers"
    );
}

/// Bursts alternating stdout and stderr (Docker stamps the two streams separately, so
/// its order is not timestamp order), across a container restart (the follower ends
/// and resumes from Docker's `since`, replaying the boundary second): every line once.
#[test]
fn interleaved_bursts_across_a_restart_arrive_exactly_once() {
    const TOTAL: u64 = 9000;
    const HALF: u64 = TOTAL / 2;
    let s = setup();
    let name = format!("capstan-e2e-{}-interleaved", std::process::id());
    // First run: lines 0..4500, then exit 3 (the restart policy starts it again at once);
    // second run: lines 4500..9000. Bursts of 250 every 0.75 s stay under the rate cap
    // even when the lines written while the follower restarts come in one replay.
    let body = format!(
        "if [ -f /tmp/first-done ]; then i={HALF}; end={TOTAL}; else sleep 4; i=0; end={HALF}; fi; \
         while [ $i -lt $end ]; do j=0; while [ $j -lt 125 ]; do \
         echo line-$i; i=$((i+1)); echo line-$i >&2; i=$((i+1)); j=$((j+1)); done; sleep 0.75; done; \
         if [ ! -f /tmp/first-done ]; then echo > /tmp/first-done; exit 3; fi; sleep 3600"
    );
    capstan_e2e::docker::ensure_image();
    let c = capstan_e2e::docker::run(
        &name,
        &[
            "--restart".into(),
            "on-failure:1".into(),
            capstan_e2e::docker::IMAGE.into(),
            "sh".into(),
            "-c".into(),
            body,
        ],
    );
    let last = format!("line-{}", TOTAL - 1);
    let (lines, skipped) = collect(&s, &c.name, Duration::from_secs(120), |l, _| {
        l.iter().any(|x| x["text"] == last.as_str())
    });
    // Give a straggler (or a duplicate from a resume) the chance to arrive.
    let (more, more_skipped) = {
        std::thread::sleep(Duration::from_secs(3));
        let cursor = lines
            .last()
            .and_then(|l| l["seq"].as_u64())
            .map_or(0, |s| s + 1);
        let (status, body) = s.api.get(&format!(
            "/api/agents/{}/logs/{}?cursor={cursor}&tail=0",
            s.node, c.name
        ));
        assert_eq!(status, 200, "{body}");
        (
            body["lines"].as_array().cloned().unwrap_or_default(),
            body["skipped"].as_u64().unwrap_or(0),
        )
    };
    let lines: Vec<Value> = lines.into_iter().chain(more).collect();
    let mut count = vec![0u32; TOTAL as usize];
    let mut last_by_stream: std::collections::HashMap<String, u64> = Default::default();
    let mut disorder: Vec<(u64, u64)> = Vec::new();
    for l in &lines {
        let text = l["text"].as_str().unwrap_or("");
        let n: u64 = text
            .strip_prefix("line-")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected line {l}"));
        count[n as usize] += 1;
        let stream = l["stream"].as_str().unwrap_or("").to_string();
        let want = if n.is_multiple_of(2) {
            "stdout"
        } else {
            "stderr"
        };
        assert_eq!(stream, want, "{l}");
        // Each stream keeps its own order (Docker reads each pipe in order).
        if let Some(prev) = last_by_stream.insert(stream, n)
            && n < prev
        {
            disorder.push((prev, n));
        }
    }
    let missing: Vec<usize> = (0..count.len()).filter(|i| count[*i] == 0).collect();
    let doubled: Vec<usize> = (0..count.len()).filter(|i| count[*i] > 1).collect();
    assert!(
        missing.is_empty() && doubled.is_empty() && disorder.is_empty(),
        "{} lines missing (first {:?}), {} twice (first {:?}) of {TOTAL}; out of order on \
         their stream: {} (first {:?} as (before, after))",
        missing.len(),
        &missing[..missing.len().min(10)],
        doubled.len(),
        &doubled[..doubled.len().min(10)],
        disorder.len(),
        &disorder[..disorder.len().min(10)],
    );
    assert_eq!(skipped + more_skipped, 0, "nothing skipped");
    let restarts = capstan_e2e::docker::restart_count(&c.name);
    assert_eq!(
        restarts, 1,
        "the follower resumed across a container restart"
    );
    let seqs: Vec<u64> = lines.iter().filter_map(|l| l["seq"].as_u64()).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "consecutive sequence numbers"
    );
}

/// A window title ended by BEL (and one ended by ST) before the text: the log API
/// returns the text, without the escape sequence and without a replacement character
/// that would leave the sequence open (the viewer and the download then hid the rest).
#[test]
fn osc_titles_are_removed_and_the_rest_of_the_line_stays() {
    let s = setup();
    let name = format!("capstan-e2e-{}-osc", std::process::id());
    let c = script(
        &name,
        "sleep 4; i=0; while [ $i -lt 5 ]; do \
         printf '\\033]0;title %s\\007after the title %s\\n' $i $i; \
         printf 'x\\033]2;st\\033\\\\y %s \\033[31mred\\033[0m\\n' $i; \
         i=$((i+1)); sleep 0.2; done; sleep 3600",
    );
    let (lines, _) = collect(&s, &c.name, Duration::from_secs(60), |l, _| {
        l.iter().any(|x| x["text"] == "xy 4 \u{1b}[31mred\u{1b}[0m")
    });
    let texts: Vec<&str> = lines.iter().filter_map(|l| l["text"].as_str()).collect();
    let expected: Vec<String> = (0..5)
        .flat_map(|i| {
            [
                format!("after the title {i}"),
                format!("xy {i} \u{1b}[31mred\u{1b}[0m"),
            ]
        })
        .collect();
    assert_eq!(texts, expected);
}

#[test]
fn a_burst_is_capped_with_a_skipped_count() {
    let s = setup();
    let name = format!("capstan-e2e-{}-burst", std::process::id());
    let c = script(
        &name,
        "sleep 4; i=0; while [ $i -lt 20000 ]; do echo burst-$i; i=$((i+1)); done; echo burst-end; sleep 3600",
    );
    let (lines, skipped) = collect(&s, &c.name, Duration::from_secs(60), |l, skipped| {
        // burst-end itself may be among the skipped lines: stop when all are accounted for.
        let burst = l
            .iter()
            .filter(|x| x["text"].as_str().is_some_and(|t| t.starts_with("burst-")))
            .count() as u64;
        burst + skipped >= 20_001
    });
    let burst = lines
        .iter()
        .filter(|l| l["text"].as_str().is_some_and(|t| t.starts_with("burst-")))
        .count() as u64;
    assert!(
        skipped > 0,
        "a 20,000-line burst exceeds the per-source rate"
    );
    assert!(burst < 20_001, "{burst}");
    assert_eq!(
        burst + skipped,
        20_001,
        "every line is either delivered or counted"
    );
    // Delivered lines are still in order.
    let nums: Vec<u64> = lines
        .iter()
        .filter_map(|l| l["text"].as_str()?.strip_prefix("burst-")?.parse().ok())
        .collect();
    assert!(nums.windows(2).all(|w| w[1] > w[0]));
}

#[test]
fn bad_input_and_unknown_sources() {
    let s = setup();
    let (status, body) = s.api.get("/api/agents/nope/logs/web");
    assert_eq!(status, 404, "{body}");
    let (status, body) = s.api.get(&format!(
        "/api/agents/{}/logs/no-such-container-xyz",
        s.node
    ));
    assert_eq!(status, 404, "unknown container: {body}");
    assert_eq!(body["error"]["code"], "container_not_found");
    let (status, body) = s
        .api
        .get(&format!("/api/agents/{}/logs/web?cursor=abc", s.node));
    assert_eq!(status, 400);
    assert_eq!(body["error"]["field"], "cursor");
    let (status, body) = s
        .api
        .get(&format!("/api/agents/{}/logs/web?cursor=99999", s.node));
    assert_eq!(status, 400);
    assert_eq!(body["error"]["field"], "cursor");
    let (status, _) = s.api.get(&format!("/api/agents/{}/logs/a;b", s.node));
    assert_eq!(status, 404);
}
