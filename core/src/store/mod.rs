//! The store: one redb file holding users, nodes, tokens and tasks.
//!
//! This is the only module that imports redb. Values are JSON documents keyed by string
//! so adding a field needs no migration (new fields are `#[serde(default)]`); changes that
//! do need one go through [`schema::migrate`], which runs at open inside one write
//! transaction and records the schema version. Every mutation is one write transaction:
//! it commits fully or not at all, so a kill -9 never leaves half a change.
//!
//! Methods are blocking; async callers run them on the blocking pool.

mod agents;
pub mod metrics_ring;
pub mod metrics_writer;
mod schema;
pub(crate) mod services;
mod tasks;
mod tokens;
mod users;

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use agents::AgentRecord;
pub use agents::PresenceUpdate;
pub use services::{Placement, Route, ServiceRecord, ServiceWriteError, Target};
pub use tasks::{TaskRecord, TaskStatus};
pub use tokens::{JoinTokenRecord, RefreshTokenRecord, RegisterOutcome, Rotation};
pub use users::UserRecord;

pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
pub(crate) const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
pub(crate) const AGENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("agents");
pub(crate) const AGENT_NAMES: TableDefinition<&str, &str> = TableDefinition::new("agent_names");
pub(crate) const REFRESH_TOKENS: TableDefinition<&str, &[u8]> =
    TableDefinition::new("refresh_tokens");
pub(crate) const JOIN_TOKENS: TableDefinition<&str, &[u8]> = TableDefinition::new("join_tokens");
pub(crate) const TASKS: TableDefinition<&str, &[u8]> = TableDefinition::new("tasks");
pub(crate) const SERVICES: TableDefinition<&str, &[u8]> = TableDefinition::new("services");
/// Domain → service ID: one service per domain, checked in the writing transaction.
pub(crate) const SERVICE_DOMAINS: TableDefinition<&str, &str> =
    TableDefinition::new("service_domains");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Db(#[from] redb::Error),
    #[error("store file {path} is in use by another process (is capstan-core running?)")]
    Locked { path: String },
    #[error(
        "store schema version {found} is newer than this binary supports ({supported}); upgrade capstan-core"
    )]
    TooNew { found: u64, supported: u64 },
    #[error("store: corrupt record in {table}: {detail}")]
    Corrupt { table: &'static str, detail: String },
    #[error("store: cannot create {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self { StoreError::Db(e.into()) }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

pub type Result<T> = std::result::Result<T, StoreError>;

/// The opened store. Cheap to share behind an `Arc`; redb serialises writers itself.
pub struct Store {
    db: Database,
}

impl Store {
    /// Opens (or creates) the store file, creating its directory, and migrates it.
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let db = match Database::create(path) {
            Ok(db) => db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                return Err(StoreError::Locked {
                    path: path.display().to_string(),
                });
            }
            Err(e) => return Err(e.into()),
        };
        let store = Store { db };
        schema::migrate(&store.db)?;
        Ok(store)
    }

    /// The schema version recorded in the file.
    pub fn schema_version(&self) -> Result<u64> {
        let tx = self.db.begin_read()?;
        schema::read_version(&tx)
    }

    /// A value from the `meta` table, creating it with `init` in the same transaction when
    /// absent (used for the JWT signing key: generated once, then stable across restarts).
    pub fn meta_get_or_init(&self, key: &str, init: impl FnOnce() -> Vec<u8>) -> Result<Vec<u8>> {
        {
            let tx = self.db.begin_read()?;
            let table = tx.open_table(META)?;
            if let Some(v) = table.get(key)? {
                return Ok(v.value().to_vec());
            }
        }
        let tx = self.db.begin_write()?;
        let value = {
            let mut table = tx.open_table(META)?;
            let existing = table.get(key)?.map(|v| v.value().to_vec());
            match existing {
                Some(v) => v,
                None => {
                    let v = init();
                    table.insert(key, v.as_slice())?;
                    v
                }
            }
        };
        tx.commit()?;
        Ok(value)
    }
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serialising our own plain structs to JSON cannot fail (no maps with non-string keys).
    serde_json::to_vec(value).unwrap_or_default()
}

pub(crate) fn decode<T: DeserializeOwned>(table: &'static str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        table,
        detail: e.to_string(),
    })
}

/// Reads every JSON record of a table.
pub(crate) fn read_all<T: DeserializeOwned>(
    db: &Database,
    def: TableDefinition<&str, &[u8]>,
    name: &'static str,
) -> Result<Vec<T>> {
    let tx = db.begin_read()?;
    let table = tx.open_table(def)?;
    let mut out = Vec::new();
    for row in table.iter()? {
        let (_, v) = row?;
        out.push(decode(name, v.value())?);
    }
    Ok(out)
}

/// Reads one JSON record.
pub(crate) fn read_one<T: DeserializeOwned>(
    db: &Database,
    def: TableDefinition<&str, &[u8]>,
    name: &'static str,
    key: &str,
) -> Result<Option<T>> {
    let tx = db.begin_read()?;
    let table = tx.open_table(def)?;
    match table.get(key)? {
        Some(v) => Ok(Some(decode(name, v.value())?)),
        None => Ok(None),
    }
}

#[cfg(test)]
pub(crate) fn temp() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("t.redb")).expect("open");
    (dir, store)
}
