//! Runs tasks from heartbeat replies. Delivery is at-least-once (a task repeats in every
//! reply until its result is acknowledged), so the executor remembers recent task IDs and
//! runs each at most once; results wait in `outbox` until a beat carrying them succeeds.

use std::collections::{HashSet, VecDeque};

use capstan_proto::{Task, TaskKind, TaskResult};

/// Task IDs remembered to drop duplicates; far more than can be pending at once.
const REMEMBER: usize = 4096;

#[derive(Default)]
pub struct Executor {
    seen: HashSet<String>,
    order: VecDeque<String>,
    outbox: Vec<TaskResult>,
}

impl Executor {
    /// Runs the tasks not run before; their results join the outbox.
    pub fn run(&mut self, tasks: &[Task]) {
        for task in tasks {
            if self.seen.contains(&task.id) {
                continue;
            }
            self.remember(&task.id);
            let result = execute(task);
            tracing::info!(task.id = %task.id, task.kind = task.kind.as_str(), ok = result.ok, "task finished");
            self.outbox.push(result);
        }
    }

    /// Results to send with the next beat.
    pub fn pending_results(&self) -> Vec<TaskResult> {
        self.outbox.clone()
    }

    /// Drops results the core acknowledged (the beat that carried them got a 200).
    pub fn acknowledge(&mut self, sent: &[TaskResult]) {
        self.outbox
            .retain(|r| !sent.iter().any(|s| s.task_id == r.task_id));
    }

    fn remember(&mut self, id: &str) {
        self.seen.insert(id.to_string());
        self.order.push_back(id.to_string());
        while self.order.len() > REMEMBER {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
    }
}

fn execute(task: &Task) -> TaskResult {
    match task.kind {
        TaskKind::Noop => TaskResult {
            task_id: task.id.clone(),
            ok: true,
            output: serde_json::Value::Null,
            error: None,
        },
        TaskKind::Ping => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0);
            TaskResult {
                task_id: task.id.clone(),
                ok: true,
                output: serde_json::json!({
                    "pong": true,
                    "agent_time_ms": now,
                    "agent_version": env!("CARGO_PKG_VERSION"),
                    "echo": task.payload,
                }),
                error: None,
            }
        }
        // Desired state never comes as a task: `update_nginx` and `get_logs` from an old
        // core (or anyone else) land here, unsupported, like any type from the future.
        TaskKind::Unknown => TaskResult {
            task_id: task.id.clone(),
            ok: false,
            output: serde_json::Value::Null,
            error: Some(format!(
                "task type not supported by capstan-agent {}",
                env!("CARGO_PKG_VERSION")
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: &str, kind: TaskKind) -> Task {
        Task {
            id: id.into(),
            kind,
            payload: serde_json::json!({"x": 1}),
        }
    }

    #[test]
    fn runs_once_and_keeps_results_until_acknowledged() {
        let mut ex = Executor::default();
        ex.run(&[task("1", TaskKind::Ping), task("2", TaskKind::Unknown)]);
        ex.run(&[task("1", TaskKind::Ping)]);
        let results = ex.pending_results();
        assert_eq!(results.len(), 2, "duplicate delivery ignored");
        assert!(results[0].ok);
        assert_eq!(results[0].output["echo"]["x"], 1);
        assert!(!results[1].ok);
        ex.acknowledge(&results[..1]);
        assert_eq!(ex.pending_results().len(), 1);
    }

    #[test]
    fn desired_state_sent_as_a_task_is_not_applied() {
        let task: Task = serde_json::from_value(serde_json::json!({
            "id": "nginx-1",
            "type": "update_nginx",
            "payload": {"services": [{"name": "../../../../tmp/x/demo.service.d/override"}]},
        }))
        .expect("parses");
        assert_eq!(task.kind, TaskKind::Unknown);
        let mut ex = Executor::default();
        ex.run(&[task]);
        let results = ex.pending_results();
        assert!(!results[0].ok);
        assert!(
            results[0]
                .error
                .as_deref()
                .is_some_and(|e| e.contains("not supported"))
        );
    }
}
