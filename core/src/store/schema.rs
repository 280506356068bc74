//! Schema versioning. The version lives in `meta["schema_version"]`; migrations run in
//! order at open, each in the same write transaction as the version bump, so an
//! interrupted upgrade leaves the file at the old version, never in between.

use redb::{Database, ReadTransaction, ReadableDatabase, TableDefinition, WriteTransaction};

use super::{
    AGENT_NAMES, AGENTS, JOIN_TOKENS, META, REFRESH_TOKENS, Result, SERVICE_DOMAINS, SERVICES,
    StoreError, TASKS, USERS,
};

/// The version this binary writes.
pub const CURRENT: u64 = 4;
pub(super) const KEY: &str = "schema_version";

/// Migration `n` upgrades a store from version `n` to `n + 1`; index 0 creates a fresh one.
const MIGRATIONS: &[fn(&WriteTransaction) -> Result<()>] =
    &[create_v1, add_services_v2, add_metrics_v3, metric_frames_v4];

fn create_v1(tx: &WriteTransaction) -> Result<()> {
    // Opening a table in a write transaction creates it; creating all of them up front lets
    // readers open any table without handling "table does not exist".
    tx.open_table(USERS)?;
    tx.open_table(AGENTS)?;
    tx.open_table(AGENT_NAMES)?;
    tx.open_table(REFRESH_TOKENS)?;
    tx.open_table(JOIN_TOKENS)?;
    tx.open_table(TASKS)?;
    Ok(())
}

/// v2: reverse-proxy services and their domain index.
fn add_services_v2(tx: &WriteTransaction) -> Result<()> {
    tx.open_table(SERVICES)?;
    tx.open_table(SERVICE_DOMAINS)?;
    Ok(())
}

/// v3's metric tables: one row per series and bucket (replaced in v4).
type V3Row = (u64, f64, f64, f64, u32);
const V3_RINGS: TableDefinition<(&str, u32), V3Row> = TableDefinition::new("metric_rings");
const V3_SERIES: TableDefinition<&str, u64> = TableDefinition::new("metric_series");

/// v3: metric rings and their series index.
fn add_metrics_v3(tx: &WriteTransaction) -> Result<()> {
    tx.open_table(V3_RINGS)?;
    tx.open_table(V3_SERIES)?;
    Ok(())
}

/// v4: node frames and series blocks (`metrics_ring`). v3's rows cost one write per
/// series and second and grew for 13 months; their history (pre-release) is dropped.
fn metric_frames_v4(tx: &WriteTransaction) -> Result<()> {
    tx.delete_table(V3_RINGS)?;
    tx.delete_table(V3_SERIES)?;
    use super::metrics_ring as m;
    tx.open_table(m::METRIC_NODES)?;
    tx.open_table(m::METRIC_SERIES)?;
    tx.open_table(m::METRIC_FRAMES)?;
    tx.open_table(m::METRIC_BLOCKS)?;
    tx.open_table(m::METRIC_LOG)?;
    tx.open_table(m::METRIC_STATE)?;
    Ok(())
}

pub fn read_version(tx: &ReadTransaction) -> Result<u64> {
    let table = match tx.open_table(META) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    let version = table
        .get(KEY)?
        .map(|v| decode_version(v.value()))
        .transpose()?;
    Ok(version.unwrap_or(0))
}

fn decode_version(bytes: &[u8]) -> Result<u64> {
    let arr: [u8; 8] = bytes.try_into().map_err(|_| StoreError::Corrupt {
        table: "meta",
        detail: "schema_version is not 8 bytes".into(),
    })?;
    Ok(u64::from_be_bytes(arr))
}

pub fn migrate(db: &Database) -> Result<()> {
    let found = {
        let tx = db.begin_read()?;
        read_version(&tx)?
    };
    if found > CURRENT {
        return Err(StoreError::TooNew {
            found,
            supported: CURRENT,
        });
    }
    for version in found..CURRENT {
        let tx = db.begin_write()?;
        let idx = usize::try_from(version).unwrap_or(usize::MAX);
        if let Some(step) = MIGRATIONS.get(idx) {
            step(&tx)?;
        }
        {
            let mut meta = tx.open_table(META)?;
            let next = (version + 1).to_be_bytes();
            meta.insert(KEY, next.as_slice())?;
        }
        tx.commit()?;
        tracing::info!(from = version, to = version + 1, "store migrated");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn fresh_store_is_at_current_version_and_reopens() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.redb");
        {
            let s = Store::open(&path).expect("open");
            assert_eq!(s.schema_version().expect("version"), CURRENT);
        }
        let s = Store::open(&path).expect("reopen");
        assert_eq!(s.schema_version().expect("version"), CURRENT);
    }

    #[test]
    fn newer_store_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.redb");
        {
            let db = Database::create(&path).expect("create");
            let tx = db.begin_write().expect("tx");
            {
                let mut meta = tx.open_table(META).expect("meta");
                meta.insert(KEY, (CURRENT + 1).to_be_bytes().as_slice())
                    .expect("insert");
            }
            tx.commit().expect("commit");
        }
        match Store::open(&path) {
            Err(StoreError::TooNew { found, .. }) => assert_eq!(found, CURRENT + 1),
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("newer store must be refused"),
        }
    }
}
