//! The store: one redb file holding users, nodes, tokens and tasks.
//!
//! This is the only module that imports redb. Values are JSON documents keyed by string
//! so adding a field needs no migration (new fields are `#[serde(default)]`); changes that
//! do need one go through [`schema::migrate`], which runs at open inside one write
//! transaction and records the schema version. Every mutation is one write transaction:
//! it commits fully or not at all, so a kill -9 never leaves half a change.
//!
//! Methods are blocking; async callers run them on the blocking pool.
//!
//! The file holds secrets (the JWT signing key, hashed credentials), so its directory is
//! kept 0700 and the file 0600 whatever the umask: checked, and fixed with a warning, at
//! every open. At open the whole file is checked (checksums of every committed page,
//! panics inside redb caught) and a damaged or empty file is refused with recovery steps,
//! never served or silently replaced by a fresh store with a new signing key.
//!
//! After a failed commit (a full disk) redb latches the I/O error and fails every later
//! operation ("Previous I/O error occurred") until the database is closed and opened
//! again. The store therefore keeps the handle behind a lock and [`Store::reopen`]s it
//! rather than shutting the process down: a restart by the supervisor would run the same
//! open, but would drop the in-memory state (presence, metrics buffers, log watches) and
//! depend on a supervisor being there at all, while reopening keeps serving reads of what
//! is in memory and heals as soon as space returns. redb's last committed state is
//! intact after a failed commit, so nothing acknowledged is lost by reopening.

mod agents;
pub mod metrics_ring;
pub mod metrics_writer;
mod schema;
pub(crate) mod services;
mod tasks;
mod tokens;
mod users;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

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
    /// The file failed the integrity check at open (or made redb panic).
    #[error(
        "store file {path} is damaged ({detail}); refusing to start. Recovery, with capstan-core stopped: \
         move the file aside (mv {path} {path}.damaged) and restore it from a backup, or move it \
         aside and start with an empty store (all nodes must then be added again)"
    )]
    Damaged { path: String, detail: String },
    /// A 0-byte file: redb would initialise a new, empty store in it.
    #[error(
        "store file {path} is empty (0 bytes); refusing to start rather than creating a new store \
         with a new signing key. Recovery: restore {path} from a backup, or delete it to start \
         with an empty store on purpose"
    )]
    Empty { path: String },
}

impl StoreError {
    /// An error that means the file cannot be written now (disk full, I/O failure, or redb's
    /// latched state after one): the store needs a reopen, the request may be retried.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Db(e) => match e {
                redb::Error::Io(_) | redb::Error::PreviousIo | redb::Error::DatabaseClosed => true,
                // A failed commit discards redb's allocator state; only a reopen rebuilds it.
                redb::Error::Corrupted(detail) => detail.contains("reopen"),
                _ => false,
            },
            _ => false,
        }
    }
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
    path: PathBuf,
    /// Replaced by [`Store::reopen`]; callers clone the `Arc` for one operation. `None`
    /// between closing the failed handle and a successful open.
    handle: RwLock<Option<Arc<Database>>>,
    /// Set when an operation failed with an I/O error; cleared once a reopened store
    /// commits a probe write. Readiness (`GET /api/ready`) reports it.
    unwritable: AtomicBool,
    last_error: Mutex<Option<String>>,
    /// redb's page cache (read cache and write buffer together), bytes.
    cache_bytes: usize,
    /// Every pending task by node, kept with each committed change of the tasks table, so
    /// a beat learns its tasks without a read transaction (see `tasks.rs`).
    pending: tasks::PendingIndex,
}

/// redb's page cache when the caller does not size it (tests, admin commands): the
/// core sizes it from `store_cache_mb`.
pub const DEFAULT_CACHE_BYTES: usize = 64 << 20;

/// Mode bits nobody but the owner may have on the data directory and the store file.
const GROUP_OTHER: u32 = 0o077;

/// Creates `dir` (0700) when missing; otherwise takes away group and other access, with a
/// warning, unless it is a shared sticky directory like `/tmp` (then only a warning).
pub fn secure_dir(dir: &Path) -> Result<()> {
    let io = |source| StoreError::Io {
        path: dir.display().to_string(),
        source,
    };
    if !dir.exists() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io)?;
        // `mode` is masked by the umask; this one is not.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
        return Ok(());
    }
    let mode = std::fs::metadata(dir).map_err(io)?.permissions().mode() & 0o7777;
    if mode & GROUP_OTHER == 0 {
        return Ok(());
    }
    if mode & 0o1000 != 0 {
        tracing::warn!(
            "data directory {} is shared (mode {mode:04o}, sticky); it is left as it is, but the store should live in a directory of its own",
            dir.display()
        );
        return Ok(());
    }
    match std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)) {
        Ok(()) => tracing::warn!(
            "data directory {} had mode {mode:04o}, readable by other users; set to 0700",
            dir.display()
        ),
        Err(e) => tracing::warn!(
            "data directory {} has mode {mode:04o}, readable by other users, and could not be set to 0700: {e}",
            dir.display()
        ),
    }
    Ok(())
}

/// Takes away group and other access from a file holding secrets, with a warning.
pub fn secure_file(path: &Path) -> Result<()> {
    let io = |source| StoreError::Io {
        path: path.display().to_string(),
        source,
    };
    let mode = std::fs::metadata(path).map_err(io)?.permissions().mode() & 0o7777;
    if mode & GROUP_OTHER != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        tracing::warn!(
            "{} had mode {mode:04o}, readable by other users; set to 0600",
            path.display()
        );
    }
    Ok(())
}

/// A panic's message, for the damaged-file error.
fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "redb panicked".to_string())
}

/// Opens an existing file with the full integrity check, turning corruption and redb
/// panics into [`StoreError::Damaged`].
fn open_checked(path: &Path, cache_bytes: usize) -> Result<Database> {
    let damaged = |detail: String| StoreError::Damaged {
        path: path.display().to_string(),
        detail,
    };
    let opened = std::panic::catch_unwind(|| {
        let db = Database::builder()
            .set_check_integrity_on_open(true)
            .set_cache_size(cache_bytes)
            .open(path)?;
        // Walks every table too: a page whose checksum holds but whose content makes
        // redb panic (as a tail overwritten by hand did) is caught here, not at a login.
        walk(&db)?;
        Ok::<_, StoreError>(db)
    });
    match opened {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(StoreError::Db(redb::Error::DatabaseAlreadyOpen))) => Err(StoreError::Locked {
            path: path.display().to_string(),
        }),
        // Damage, not a failure to read the file (nor a file needing a newer redb):
        // redb reports a wrong header as invalid data.
        Ok(Err(StoreError::Db(e)))
            if match &e {
                redb::Error::Io(io) => matches!(
                    io.kind(),
                    std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof
                ),
                redb::Error::UpgradeRequired(_) | redb::Error::WouldBlock => false,
                _ => true,
            } =>
        {
            Err(damaged(e.to_string()))
        }
        Ok(Err(e)) => Err(e),
        Err(panic) => Err(damaged(format!(
            "redb panicked reading it: {}",
            panic_text(&*panic)
        ))),
    }
}

/// Reads every row of every table once.
fn walk(db: &Database) -> Result<()> {
    let tx = db.begin_read()?;
    for def in [
        META,
        USERS,
        AGENTS,
        REFRESH_TOKENS,
        JOIN_TOKENS,
        TASKS,
        SERVICES,
    ] {
        if let Ok(t) = tx.open_table(def) {
            for row in t.iter()? {
                row?;
            }
        }
    }
    Ok(())
}

/// Creates a new store file with mode 0600 (redb would create it with the umask's
/// mode): initialised under a temporary name and renamed, so a crash half way never
/// leaves an empty file behind.
fn create_new(path: &Path) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| StoreError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".creating");
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    drop(Database::builder().create_with_backend(redb::backends::FileBackend::new(file)?)?);
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(())
}

impl Store {
    /// Opens (or creates) the store file, creating its directory, and migrates it. The
    /// directory is made 0700 and the file 0600; an existing file is integrity-checked,
    /// and an empty or damaged one refused.
    pub fn open(path: &Path) -> Result<Store> {
        Store::open_with_cache(path, DEFAULT_CACHE_BYTES)
    }

    /// As [`Store::open`], with redb's page cache held to `cache_bytes` (redb's own
    /// default, 1 GiB, would otherwise fill with the metrics blocks a flush touches and
    /// stay resident).
    pub fn open_with_cache(path: &Path, cache_bytes: usize) -> Result<Store> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        secure_dir(dir)?;
        match std::fs::metadata(path) {
            Ok(m) if m.len() == 0 => {
                return Err(StoreError::Empty {
                    path: path.display().to_string(),
                });
            }
            Ok(_) => secure_file(path)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_new(path)?,
            Err(source) => {
                return Err(StoreError::Io {
                    path: path.display().to_string(),
                    source,
                });
            }
        }
        let db = open_checked(path, cache_bytes)?;
        schema::migrate(&db)?;
        let pending = tasks::PendingIndex::load(&db)?;
        Ok(Store {
            path: path.to_path_buf(),
            handle: RwLock::new(Some(Arc::new(db))),
            unwritable: AtomicBool::new(false),
            last_error: Mutex::new(None),
            cache_bytes,
            pending,
        })
    }

    /// The page cache size the database was opened with, bytes.
    pub fn cache_bytes(&self) -> usize {
        self.cache_bytes
    }

    /// Bytes redb's page cache holds now (read cache plus write buffer).
    pub fn cache_used_bytes(&self) -> Result<usize> {
        Ok(self.db()?.cache_stats().used_bytes())
    }

    /// The current database handle (replaced by a reopen); while a reopen has not
    /// succeeded, an I/O class error (answered 503, not 500).
    fn db(&self) -> Result<Arc<Database>> {
        self.handle
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or(StoreError::Db(redb::Error::DatabaseClosed))
    }

    /// Records the outcome of an operation: an I/O class error marks the store
    /// unwritable until [`Store::reopen`] succeeds.
    pub fn note<T>(&self, result: &Result<T>) {
        if let Err(e) = result
            && e.is_unavailable()
        {
            if !self.unwritable.swap(true, Ordering::AcqRel) {
                tracing::error!(error = %e, "the store cannot write; reopening it until it can");
            }
            *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
        }
    }

    /// Marks the store unwritable (an API path saw an I/O class error).
    pub fn mark_unwritable(&self, detail: &str) {
        if !self.unwritable.swap(true, Ordering::AcqRel) {
            tracing::error!(error = %detail, "the store cannot write; reopening it until it can");
        }
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(detail.to_string());
    }

    /// `None` when the store can write, else the last error.
    pub fn unwritable(&self) -> Option<String> {
        if !self.unwritable.load(Ordering::Acquire) {
            return None;
        }
        Some(
            self.last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
                .unwrap_or_else(|| "store unavailable".into()),
        )
    }

    /// Closes and opens the file again (clearing redb's latched I/O error), then commits
    /// a probe write; the store counts as writable again only when that succeeds. Waits
    /// (bounded) for operations on the old handle to finish: redb holds a lock on the
    /// file while any handle to it lives.
    pub fn reopen(&self) -> Result<()> {
        let mut guard = self.handle.write().unwrap_or_else(|e| e.into_inner());
        // Operations clone the handle for their duration; wait for them to drop it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while guard.as_ref().is_some_and(|db| Arc::strong_count(db) > 1)
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // The old handle goes first: it holds the file lock. A failed (latched) handle
        // is never restored; until an open succeeds, operations get `DatabaseClosed`.
        drop(guard.take());
        match open_checked(&self.path, self.cache_bytes) {
            Ok(db) => *guard = Some(Arc::new(db)),
            Err(e) => {
                drop(guard);
                self.note(&Err::<(), _>(StoreError::Db(redb::Error::PreviousIo)));
                return Err(e);
            }
        }
        drop(guard);
        let probe = self.probe();
        self.note(&probe);
        probe?;
        self.unwritable.store(false, Ordering::Release);
        tracing::info!("the store writes again");
        Ok(())
    }

    /// Bytes of the file's pages in use, and of the data in them (the rest is redb's
    /// B-tree slack and free pages). The file itself is larger: redb doubles it when it
    /// needs room (by 4 GiB regions past 4 GiB).
    pub fn space(&self) -> Result<(u64, u64)> {
        let tx = self.db()?.begin_write()?;
        let stats = tx.stats()?;
        tx.abort()?;
        Ok((
            stats.allocated_pages() * stats.page_size() as u64,
            stats.stored_bytes() + stats.metadata_bytes(),
        ))
    }

    /// A read on the current handle, noted: redb fails reads too once it has latched an
    /// I/O error, so this finds a failure on any path (even one that did not report it)
    /// without writing.
    pub fn check_latched(&self) {
        let read = (|| -> Result<()> {
            let tx = self.db()?.begin_read()?;
            let meta = tx.open_table(META)?;
            meta.get(schema::KEY)?;
            Ok(())
        })();
        self.note(&read);
    }

    /// One small committed write (the readiness probe after a reopen).
    fn probe(&self) -> Result<()> {
        let tx = self.db()?.begin_write()?;
        {
            let mut meta = tx.open_table(META)?;
            meta.insert("probe_ms", crate::clock::now_ms().to_be_bytes().as_slice())?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The schema version recorded in the file.
    pub fn schema_version(&self) -> Result<u64> {
        let tx = self.db()?.begin_read()?;
        schema::read_version(&tx)
    }

    /// A value from the `meta` table, creating it with `init` in the same transaction when
    /// absent (used for the JWT signing key: generated once, then stable across restarts).
    pub fn meta_get_or_init(&self, key: &str, init: impl FnOnce() -> Vec<u8>) -> Result<Vec<u8>> {
        {
            let tx = self.db()?.begin_read()?;
            let table = tx.open_table(META)?;
            if let Some(v) = table.get(key)? {
                return Ok(v.value().to_vec());
            }
        }
        let tx = self.db()?.begin_write()?;
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
