//! Monitoring end to end: the real agent beating to the real core, host figures charted,
//! and a real container's figures appearing within seconds and going when it is removed.

use std::time::Duration;

use capstan_e2e::docker::Container;
use capstan_e2e::{Core, free_port, start_agent, wait_for};
use serde_json::Value;

fn containers(latest: &Value) -> Vec<Value> {
    latest["sample"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn host_and_container_metrics_flow_from_agent_to_charts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let core_dir = dir.path().join("core");
    std::fs::create_dir_all(&core_dir).expect("core dir");
    let core = Core::start(&core_dir, free_port(), &[]);
    let api = core.api();
    let (id, key) = api.create_node("metrics-node");
    let _agent = start_agent(
        &dir.path().join("agent"),
        &[
            ("CORE_URL", core.url.as_str()),
            ("AGENT_ID", id.as_str()),
            ("AGENT_KEY", key.as_str()),
        ],
    );

    // Host series reach the 1 s ring (the flusher writes once a second).
    let chart = wait_for("cpu and memory history", Duration::from_secs(20), || {
        let (status, body) = api.get(&format!(
            "/api/agents/{id}/metrics?range=1h&series=cpu.busy,mem.used"
        ));
        assert_eq!(status, 200, "{body}");
        let filled = |name: &str| {
            body["series"][name]["avg"]
                .as_array()
                .map_or(0, |a| a.iter().filter(|v| !v.is_null()).count())
        };
        (filled("cpu.busy") >= 2 && filled("mem.used") >= 2).then_some(body)
    });
    let mem = chart["series"]["mem.used"]["avg"]
        .as_array()
        .expect("avg")
        .iter()
        .filter_map(Value::as_f64)
        .next_back()
        .expect("a value");
    assert!(mem > 1e6, "memory used {mem}");

    let name = format!("capstan-metrics-{}", std::process::id());
    let container = Container::web(&name, "hello", &[]);
    let seen = wait_for(
        "the container in the live sample",
        Duration::from_secs(20),
        || {
            let (_, latest) = api.get(&format!("/api/agents/{id}/metrics/latest"));
            containers(&latest)
                .into_iter()
                .find(|c| c["name"] == name.as_str() && c["values"]["cpu.pct"].is_number())
        },
    );
    assert_eq!(seen["state"], "running");
    assert!(
        seen["values"]["mem.used"].as_f64().expect("mem") > 0.0,
        "{seen}"
    );
    wait_for("the container's history", Duration::from_secs(10), || {
        let (status, body) = api.get(&format!(
            "/api/agents/{id}/containers/{name}/metrics?range=1h&series=cpu.pct"
        ));
        assert_eq!(status, 200, "{body}");
        body["series"]["cpu.pct"]["avg"]
            .as_array()
            .and_then(|a| a.iter().find(|v| !v.is_null()).cloned())
    });

    drop(container);
    wait_for(
        "the removed container to leave the sample",
        Duration::from_secs(20),
        || {
            let (_, latest) = api.get(&format!("/api/agents/{id}/metrics/latest"));
            (!containers(&latest)
                .iter()
                .any(|c| c["name"] == name.as_str()))
            .then_some(())
        },
    );
}
