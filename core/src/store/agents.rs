//! Nodes (agents): identity, key hash and the last presence the core persisted.

use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use super::{AGENT_NAMES, AGENTS, Result, Store, TASKS, decode, encode, read_all, read_one};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentRecord {
    pub id: String,
    pub name: String,
    /// SHA-256 (hex) of the agent key. The key itself is never stored.
    pub key_hash: String,
    pub created_at_ms: i64,
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub os: Option<String>,
    #[serde(default)]
    pub uptime_secs: Option<u64>,
    #[serde(default)]
    pub last_seen_ms: Option<i64>,
    #[serde(default)]
    pub interval_ms: Option<u64>,
    #[serde(default)]
    pub applied_config_version: u64,
    #[serde(default)]
    pub desired_config_version: u64,
    /// Edge nodes route every service's domains to the nodes that carry it.
    #[serde(default)]
    pub edge: bool,
    /// The node's NGINX as last reported.
    #[serde(default)]
    pub nginx: Option<capstan_proto::NginxReport>,
}

/// What a beat tells us about a node; persisted in batches by the presence flusher.
#[derive(Debug, Clone, PartialEq)]
pub struct PresenceUpdate {
    pub last_seen_ms: i64,
    pub hostname: String,
    pub version: String,
    pub os: String,
    pub uptime_secs: u64,
    pub interval_ms: u64,
    pub applied_config_version: u64,
    pub nginx: Option<capstan_proto::NginxReport>,
}

impl Store {
    /// Inserts a new agent. Returns false (and changes nothing) when the name is taken.
    pub fn create_agent(&self, agent: &AgentRecord) -> Result<bool> {
        let tx = self.db()?.begin_write()?;
        let created = insert_agent(&tx, agent)?;
        tx.commit()?;
        Ok(created)
    }

    pub fn list_agents(&self) -> Result<Vec<AgentRecord>> {
        let mut all: Vec<AgentRecord> = read_all(&*self.db()?, AGENTS, "agents")?;
        all.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(all)
    }

    pub fn get_agent(&self, id: &str) -> Result<Option<AgentRecord>> {
        read_one(&*self.db()?, AGENTS, "agents", id)
    }

    /// Deletes the agent, its name index entry and its tasks. Returns whether it existed.
    pub fn delete_agent(&self, id: &str) -> Result<bool> {
        let tx = self.db()?.begin_write()?;
        let existed = {
            let mut agents = tx.open_table(AGENTS)?;
            let removed = agents.remove(id)?.map(|v| v.value().to_vec());
            match removed {
                Some(bytes) => {
                    let agent: AgentRecord = decode("agents", &bytes)?;
                    tx.open_table(AGENT_NAMES)?.remove(agent.name.as_str())?;
                    let mut tasks = tx.open_table(TASKS)?;
                    let prefix = format!("{id}/");
                    let keys: Vec<String> = tasks
                        .range(prefix.as_str()..)?
                        .map_while(|r| match r {
                            Ok((k, _)) if k.value().starts_with(&prefix) => {
                                Some(Ok(k.value().to_string()))
                            }
                            Ok(_) => None,
                            Err(e) => Some(Err(e)),
                        })
                        .collect::<std::result::Result<_, _>>()?;
                    for k in keys {
                        tasks.remove(k.as_str())?;
                    }
                    true
                }
                None => false,
            }
        };
        tx.commit()?;
        self.pending.forget(id);
        Ok(existed)
    }

    /// Replaces the key hash. Returns the updated record, or None for an unknown agent.
    pub fn set_agent_key(&self, id: &str, key_hash: &str) -> Result<Option<AgentRecord>> {
        self.update_agent(id, |a| a.key_hash = key_hash.to_string())
    }

    /// Marks a node as edge (or not). Returns the updated record.
    pub fn set_agent_edge(&self, id: &str, edge: bool) -> Result<Option<AgentRecord>> {
        self.update_agent(id, |a| a.edge = edge)
    }

    fn update_agent(
        &self,
        id: &str,
        change: impl FnOnce(&mut AgentRecord),
    ) -> Result<Option<AgentRecord>> {
        let tx = self.db()?.begin_write()?;
        let updated = {
            let mut agents = tx.open_table(AGENTS)?;
            let current = agents.get(id)?.map(|v| v.value().to_vec());
            match current {
                Some(bytes) => {
                    let mut agent: AgentRecord = decode("agents", &bytes)?;
                    change(&mut agent);
                    agents.insert(id, encode(&agent).as_slice())?;
                    Some(agent)
                }
                None => None,
            }
        };
        tx.commit()?;
        Ok(updated)
    }

    /// Writes many nodes' presence in one transaction (never one per beat: fsync-bound).
    /// Agents deleted meanwhile are skipped.
    pub fn apply_presence(&self, batch: &[(String, PresenceUpdate)]) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let tx = self.db()?.begin_write()?;
        {
            let mut agents = tx.open_table(AGENTS)?;
            for (id, p) in batch {
                let current = agents.get(id.as_str())?.map(|v| v.value().to_vec());
                let Some(bytes) = current else { continue };
                let mut agent: AgentRecord = decode("agents", &bytes)?;
                agent.last_seen_ms = Some(p.last_seen_ms);
                agent.hostname = Some(p.hostname.clone());
                agent.version = Some(p.version.clone());
                agent.os = Some(p.os.clone());
                agent.uptime_secs = Some(p.uptime_secs);
                agent.interval_ms = Some(p.interval_ms);
                agent.applied_config_version = p.applied_config_version;
                agent.nginx = p.nginx.clone();
                agents.insert(id.as_str(), encode(&agent).as_slice())?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

/// Inserts within an open transaction (shared with join-token registration).
pub(super) fn insert_agent(tx: &redb::WriteTransaction, agent: &AgentRecord) -> Result<bool> {
    let mut names = tx.open_table(AGENT_NAMES)?;
    if names.get(agent.name.as_str())?.is_some() {
        return Ok(false);
    }
    names.insert(agent.name.as_str(), agent.id.as_str())?;
    tx.open_table(AGENTS)?
        .insert(agent.id.as_str(), encode(agent).as_slice())?;
    Ok(true)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn agent(id: &str, name: &str) -> AgentRecord {
        AgentRecord {
            id: id.into(),
            name: name.into(),
            key_hash: "h".into(),
            created_at_ms: 1,
            hostname: None,
            version: None,
            os: None,
            uptime_secs: None,
            last_seen_ms: None,
            interval_ms: None,
            applied_config_version: 0,
            desired_config_version: 0,
            edge: false,
            nginx: None,
        }
    }

    #[test]
    fn names_are_unique_and_freed_on_delete() {
        let (_d, s) = crate::store::temp();
        assert!(s.create_agent(&agent("a", "web-1")).expect("create"));
        assert!(!s.create_agent(&agent("b", "web-1")).expect("create"));
        assert_eq!(s.list_agents().expect("list").len(), 1);
        assert!(s.delete_agent("a").expect("delete"));
        assert!(!s.delete_agent("a").expect("delete again"));
        assert!(
            s.create_agent(&agent("b", "web-1"))
                .expect("create after delete")
        );
    }

    #[test]
    fn presence_batch_skips_deleted_agents() {
        let (_d, s) = crate::store::temp();
        s.create_agent(&agent("a", "n1")).expect("create");
        let p = PresenceUpdate {
            last_seen_ms: 42,
            hostname: "h".into(),
            version: "1".into(),
            os: "linux".into(),
            uptime_secs: 5,
            interval_ms: 1000,
            applied_config_version: 0,
            nginx: None,
        };
        s.apply_presence(&[("a".into(), p.clone()), ("gone".into(), p)])
            .expect("apply");
        let a = s.get_agent("a").expect("get").expect("exists");
        assert_eq!(a.last_seen_ms, Some(42));
        assert!(s.get_agent("gone").expect("get").is_none());
    }
}
