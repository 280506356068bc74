//! Tasks queued for agents and their results. Keys are `<agent_id>/<task_id>` with
//! time-ordered task IDs, so one prefix range reads an agent's tasks in order.
//!
//! Every beat asks for its node's pending tasks, and nearly always there are none: a read
//! transaction on the blocking pool per beat (thousands a second) cost a thread hand-off
//! and allocations for an empty answer. The store therefore keeps every pending task in
//! memory ([`PendingIndex`]), loaded at open and changed only after the transaction that
//! changed the table committed, so it never shows a task the file does not hold (nor
//! misses one it does). It is bounded by what users queue (`noop`/`ping`, by hand).

use std::collections::HashMap;
use std::sync::Mutex;

use redb::{Database, ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};

use super::{Result, Store, TASKS, decode, encode};

/// Finished tasks kept per agent; older ones are pruned when a new task is queued.
const KEEP_FINISHED: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Pending,
    Done,
    Failed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskRecord {
    pub id: String,
    pub agent_id: String,
    pub kind: capstan_proto::TaskKind,
    pub payload: serde_json::Value,
    pub status: TaskStatus,
    pub created_at_ms: i64,
    #[serde(default)]
    pub finished_at_ms: Option<i64>,
    #[serde(default)]
    pub output: serde_json::Value,
    #[serde(default)]
    pub error: Option<String>,
}

fn key(agent_id: &str, task_id: &str) -> String {
    format!("{agent_id}/{task_id}")
}

/// The pending tasks of every node, oldest first, as committed in the tasks table.
#[derive(Debug, Default)]
pub(crate) struct PendingIndex(Mutex<HashMap<String, Vec<capstan_proto::Task>>>);

fn wire(t: &TaskRecord) -> capstan_proto::Task {
    capstan_proto::Task {
        id: t.id.clone(),
        kind: t.kind,
        payload: t.payload.clone(),
    }
}

impl PendingIndex {
    pub(crate) fn load(db: &Database) -> Result<PendingIndex> {
        let tx = db.begin_read()?;
        let table = tx.open_table(TASKS)?;
        let mut by_node: HashMap<String, Vec<capstan_proto::Task>> = HashMap::new();
        for row in table.iter()? {
            let (_, v) = row?;
            let t: TaskRecord = decode("tasks", v.value())?;
            if t.status == TaskStatus::Pending {
                by_node
                    .entry(t.agent_id.clone())
                    .or_default()
                    .push(wire(&t));
            }
        }
        Ok(PendingIndex(Mutex::new(by_node)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<capstan_proto::Task>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn add(&self, t: &TaskRecord) {
        let mut map = self.lock();
        let list = map.entry(t.agent_id.clone()).or_default();
        // Task IDs are time-ordered: keep the table's order.
        let at = list.partition_point(|x| x.id < t.id);
        list.insert(at, wire(t));
    }

    fn finish(&self, agent_id: &str, task_ids: &[&str]) {
        let mut map = self.lock();
        if let Some(list) = map.get_mut(agent_id) {
            list.retain(|t| !task_ids.contains(&t.id.as_str()));
            if list.is_empty() {
                map.remove(agent_id);
            }
        }
    }

    pub(crate) fn forget(&self, agent_id: &str) {
        self.lock().remove(agent_id);
    }

    fn of(&self, agent_id: &str) -> Vec<capstan_proto::Task> {
        self.lock().get(agent_id).cloned().unwrap_or_default()
    }
}

impl Store {
    pub fn create_task(&self, task: &TaskRecord) -> Result<()> {
        let tx = self.db()?.begin_write()?;
        {
            let mut table = tx.open_table(TASKS)?;
            table.insert(
                key(&task.agent_id, &task.id).as_str(),
                encode(task).as_slice(),
            )?;
            let finished: Vec<String> = scan(&table, &task.agent_id)?
                .into_iter()
                .filter(|t| t.status != TaskStatus::Pending)
                .map(|t| t.id)
                .collect();
            let excess = finished.len().saturating_sub(KEEP_FINISHED);
            for id in finished.iter().take(excess) {
                table.remove(key(&task.agent_id, id).as_str())?;
            }
        }
        tx.commit()?;
        if task.status == TaskStatus::Pending {
            self.pending.add(task);
        }
        Ok(())
    }

    /// A node's pending tasks, oldest first, from memory: no read transaction, so a beat
    /// may ask from an async worker.
    pub fn pending_for(&self, agent_id: &str) -> Vec<capstan_proto::Task> {
        self.pending.of(agent_id)
    }

    /// All of an agent's tasks, oldest first.
    pub fn list_tasks(&self, agent_id: &str) -> Result<Vec<TaskRecord>> {
        let tx = self.db()?.begin_read()?;
        let table = tx.open_table(TASKS)?;
        scan(&table, agent_id)
    }

    pub fn pending_tasks(&self, agent_id: &str) -> Result<Vec<TaskRecord>> {
        Ok(self
            .list_tasks(agent_id)?
            .into_iter()
            .filter(|t| t.status == TaskStatus::Pending)
            .collect())
    }

    /// Records results in one transaction. Results for unknown or already finished tasks
    /// are ignored: the agent may resend a result whose acknowledgement it never got.
    pub fn record_results(
        &self,
        agent_id: &str,
        results: &[capstan_proto::TaskResult],
        now_ms: i64,
    ) -> Result<usize> {
        if results.is_empty() {
            return Ok(0);
        }
        let tx = self.db()?.begin_write()?;
        let mut applied = 0;
        let mut finished: Vec<&str> = Vec::new();
        {
            let mut table = tx.open_table(TASKS)?;
            for r in results {
                let k = key(agent_id, &r.task_id);
                let current = table.get(k.as_str())?.map(|v| v.value().to_vec());
                let Some(bytes) = current else { continue };
                let mut task: TaskRecord = decode("tasks", &bytes)?;
                if task.status != TaskStatus::Pending {
                    continue;
                }
                task.status = if r.ok {
                    TaskStatus::Done
                } else {
                    TaskStatus::Failed
                };
                task.finished_at_ms = Some(now_ms);
                task.output = r.output.clone();
                task.error = r.error.clone();
                table.insert(k.as_str(), encode(&task).as_slice())?;
                finished.push(&r.task_id);
                applied += 1;
            }
        }
        tx.commit()?;
        if !finished.is_empty() {
            self.pending.finish(agent_id, &finished);
        }
        Ok(applied)
    }
}

fn scan(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    agent_id: &str,
) -> Result<Vec<TaskRecord>> {
    let prefix = format!("{agent_id}/");
    let mut out = Vec::new();
    for row in table.range(prefix.as_str()..)? {
        let (k, v) = row?;
        if !k.value().starts_with(&prefix) {
            break;
        }
        out.push(decode("tasks", v.value())?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use capstan_proto::{TaskKind, TaskResult};

    fn task(agent: &str, id: &str) -> TaskRecord {
        TaskRecord {
            id: id.into(),
            agent_id: agent.into(),
            kind: TaskKind::Ping,
            payload: serde_json::Value::Null,
            status: TaskStatus::Pending,
            created_at_ms: 0,
            finished_at_ms: None,
            output: serde_json::Value::Null,
            error: None,
        }
    }

    #[test]
    fn results_finish_pending_tasks_once_and_prefixes_do_not_bleed() {
        let (_d, s) = crate::store::temp();
        s.create_task(&task("a", "001")).expect("create");
        s.create_task(&task("ab", "002")).expect("create");
        assert_eq!(s.pending_tasks("a").expect("pending").len(), 1);
        let r = TaskResult {
            task_id: "001".into(),
            ok: true,
            output: serde_json::json!({"pong": true}),
            error: None,
        };
        assert_eq!(
            s.record_results("a", std::slice::from_ref(&r), 9)
                .expect("record"),
            1
        );
        assert_eq!(s.record_results("a", &[r], 10).expect("record again"), 0);
        let all = s.list_tasks("a").expect("list");
        assert_eq!(all[0].status, TaskStatus::Done);
        assert_eq!(all[0].finished_at_ms, Some(9));
        assert_eq!(s.pending_tasks("ab").expect("pending").len(), 1);
    }

    /// Beats read pending tasks from memory: the index must say what the table says after
    /// every kind of change, and again after the file is opened anew.
    #[test]
    fn the_pending_index_follows_the_table() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.redb");
        let ids = |v: Vec<capstan_proto::Task>| v.into_iter().map(|t| t.id).collect::<Vec<_>>();
        let table = |s: &Store, a: &str| {
            s.pending_tasks(a)
                .expect("pending")
                .into_iter()
                .map(|t| t.id)
                .collect::<Vec<_>>()
        };
        {
            let s = Store::open(&path).expect("open");
            s.create_task(&task("a", "002")).expect("create");
            s.create_task(&task("a", "001")).expect("create");
            s.create_task(&task("b", "003")).expect("create");
            let mut done = task("a", "000");
            done.status = TaskStatus::Done;
            s.create_task(&done).expect("create finished");
            assert_eq!(ids(s.pending_for("a")), vec!["001", "002"]);
            assert_eq!(ids(s.pending_for("a")), table(&s, "a"));
            let r = TaskResult {
                task_id: "001".into(),
                ok: false,
                output: serde_json::Value::Null,
                error: Some("x".into()),
            };
            s.record_results("a", &[r], 5).expect("record");
            assert_eq!(ids(s.pending_for("a")), vec!["002"]);
            assert_eq!(ids(s.pending_for("a")), table(&s, "a"));
            // A result naming another node's task changes nothing anywhere.
            let stray = TaskResult {
                task_id: "003".into(),
                ok: true,
                output: serde_json::Value::Null,
                error: None,
            };
            s.record_results("a", &[stray], 6).expect("record");
            assert_eq!(ids(s.pending_for("b")), vec!["003"]);
        }
        let s = Store::open(&path).expect("reopen");
        assert_eq!(ids(s.pending_for("a")), vec!["002"]);
        assert_eq!(ids(s.pending_for("b")), vec!["003"]);
        assert!(s.pending_for("c").is_empty());
    }

    #[test]
    fn finished_tasks_are_pruned_to_a_bound() {
        let (_d, s) = crate::store::temp();
        for i in 0..(KEEP_FINISHED + 20) {
            let mut t = task("a", &format!("{i:05}"));
            t.status = TaskStatus::Done;
            s.create_task(&t).expect("create");
        }
        s.create_task(&task("a", "99999")).expect("create pending");
        let all = s.list_tasks("a").expect("list");
        assert_eq!(all.len(), KEEP_FINISHED + 1);
        assert_eq!(all.last().map(|t| t.status), Some(TaskStatus::Pending));
    }
}
