//! Refresh tokens (rotating, one use each) and join tokens (self-registration of agents).
//! Only SHA-256 hashes of the secrets are stored.

use redb::{ReadableDatabase, ReadableTable, Table};
use serde::{Deserialize, Serialize};

use super::agents::insert_agent;
use super::{AgentRecord, JOIN_TOKENS, REFRESH_TOKENS, Result, Store, decode, encode, read_all};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefreshTokenRecord {
    pub username: String,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinTokenRecord {
    pub id: String,
    pub secret_hash: String,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    pub max_uses: u32,
    pub uses: u32,
}

/// Why a registration with a join token did not create an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterOutcome {
    Created,
    /// Unknown, expired, used up or wrong secret: one answer for all, to leak nothing.
    InvalidToken,
    NameTaken,
}

impl Store {
    pub fn insert_refresh(&self, hash: &str, record: &RefreshTokenRecord) -> Result<()> {
        let tx = self.db()?.begin_write()?;
        {
            let mut table = tx.open_table(REFRESH_TOKENS)?;
            table.insert(hash, encode(record).as_slice())?;
            // Expired tokens are dropped here, on the (rare) login path, so the table
            // stays bounded by the live sessions.
            prune_expired(&mut table, record.created_at_ms)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Removes and returns the token: a refresh token works exactly once.
    pub fn take_refresh(&self, hash: &str) -> Result<Option<RefreshTokenRecord>> {
        let tx = self.db()?.begin_write()?;
        let taken = {
            let mut table = tx.open_table(REFRESH_TOKENS)?;
            let removed = table.remove(hash)?.map(|v| v.value().to_vec());
            removed
                .map(|b| decode::<RefreshTokenRecord>("refresh_tokens", &b))
                .transpose()?
        };
        tx.commit()?;
        Ok(taken)
    }

    pub fn create_join_token(&self, record: &JoinTokenRecord) -> Result<()> {
        let tx = self.db()?.begin_write()?;
        tx.open_table(JOIN_TOKENS)?
            .insert(record.id.as_str(), encode(record).as_slice())?;
        tx.commit()?;
        Ok(())
    }

    pub fn list_join_tokens(&self) -> Result<Vec<JoinTokenRecord>> {
        let mut all: Vec<JoinTokenRecord> = read_all(&*self.db()?, JOIN_TOKENS, "join_tokens")?;
        all.sort_by_key(|t| t.created_at_ms);
        Ok(all)
    }

    pub fn delete_join_token(&self, id: &str) -> Result<bool> {
        let tx = self.db()?.begin_write()?;
        let existed = tx.open_table(JOIN_TOKENS)?.remove(id)?.is_some();
        tx.commit()?;
        Ok(existed)
    }

    /// Checks the join token and creates the agent in one transaction, so a token with
    /// one use left can never register two agents.
    pub fn register_with_join_token(
        &self,
        token_id: &str,
        secret_hash: &str,
        now_ms: i64,
        agent: &AgentRecord,
    ) -> Result<RegisterOutcome> {
        let tx = self.db()?.begin_write()?;
        let outcome = {
            let mut tokens = tx.open_table(JOIN_TOKENS)?;
            let current = tokens.get(token_id)?.map(|v| v.value().to_vec());
            let record = current
                .map(|b| decode::<JoinTokenRecord>("join_tokens", &b))
                .transpose()?;
            match record {
                Some(mut t)
                    if crate::auth::secret::hashes_equal(&t.secret_hash, secret_hash)
                        && t.expires_at_ms > now_ms
                        && t.uses < t.max_uses =>
                {
                    if insert_agent(&tx, agent)? {
                        t.uses += 1;
                        tokens.insert(token_id, encode(&t).as_slice())?;
                        RegisterOutcome::Created
                    } else {
                        RegisterOutcome::NameTaken
                    }
                }
                _ => RegisterOutcome::InvalidToken,
            }
        };
        if outcome == RegisterOutcome::Created {
            tx.commit()?;
        } else {
            tx.abort()?;
        }
        Ok(outcome)
    }
}

fn prune_expired(table: &mut Table<&str, &[u8]>, now_ms: i64) -> Result<()> {
    let mut expired = Vec::new();
    for row in table.iter()? {
        let (k, v) = row?;
        let rec: RefreshTokenRecord = decode("refresh_tokens", v.value())?;
        if rec.expires_at_ms <= now_ms {
            expired.push(k.value().to_string());
        }
    }
    for k in expired {
        table.remove(k.as_str())?;
    }
    Ok(())
}

pub(super) fn delete_refresh_for_user(
    table: &mut Table<&str, &[u8]>,
    username: &str,
) -> Result<()> {
    let mut mine = Vec::new();
    for row in table.iter()? {
        let (k, v) = row?;
        let rec: RefreshTokenRecord = decode("refresh_tokens", v.value())?;
        if rec.username == username {
            mine.push(k.value().to_string());
        }
    }
    for k in mine {
        table.remove(k.as_str())?;
    }
    Ok(())
}

/// Kept for callers that only need to read (tests, diagnostics).
#[allow(dead_code)]
fn count_refresh(store: &Store) -> Result<u64> {
    let tx = store.db()?.begin_read()?;
    let table = tx.open_table(REFRESH_TOKENS)?;
    Ok(redb::ReadableTableMetadata::len(&table)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_token_is_single_use_and_expired_ones_are_pruned() {
        let (_d, s) = crate::store::temp();
        let old = RefreshTokenRecord {
            username: "admin".into(),
            created_at_ms: 0,
            expires_at_ms: 10,
        };
        s.insert_refresh("old", &old).expect("insert");
        let new = RefreshTokenRecord {
            username: "admin".into(),
            created_at_ms: 100,
            expires_at_ms: 1000,
        };
        s.insert_refresh("new", &new).expect("insert");
        assert_eq!(count_refresh(&s).expect("count"), 1, "expired one pruned");
        assert!(s.take_refresh("new").expect("take").is_some());
        assert!(s.take_refresh("new").expect("take again").is_none());
    }

    #[test]
    fn join_token_uses_are_bounded() {
        let (_d, s) = crate::store::temp();
        s.create_join_token(&JoinTokenRecord {
            id: "j".into(),
            secret_hash: "aa".into(),
            created_at_ms: 0,
            expires_at_ms: 1000,
            max_uses: 1,
            uses: 0,
        })
        .expect("create");
        let a = crate::store::agents::tests::agent("a1", "n1");
        let b = crate::store::agents::tests::agent("a2", "n2");
        assert_eq!(
            s.register_with_join_token("j", "bb", 5, &a).expect("reg"),
            RegisterOutcome::InvalidToken
        );
        assert_eq!(
            s.register_with_join_token("j", "aa", 5000, &a)
                .expect("reg"),
            RegisterOutcome::InvalidToken,
            "expired"
        );
        assert_eq!(
            s.register_with_join_token("j", "aa", 5, &a).expect("reg"),
            RegisterOutcome::Created
        );
        assert_eq!(
            s.register_with_join_token("j", "aa", 5, &b).expect("reg"),
            RegisterOutcome::InvalidToken,
            "used up"
        );
        assert!(s.get_agent("a2").expect("get").is_none());
    }
}
