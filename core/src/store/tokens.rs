//! Refresh tokens (rotating, one use each) and join tokens (self-registration of agents).
//! Only SHA-256 hashes of the secrets are stored.
//!
//! Every refresh token belongs to a *family*: the chain of rotations that started at one
//! login. A rotated token is kept, marked used, until it expires, so that presenting it
//! again is recognised as reuse (someone holds a copy: the thief or the victim) and ends
//! the whole family, the token that rotation issued included.

use redb::{ReadableDatabase, ReadableTable, Table};
use serde::{Deserialize, Serialize};

use super::agents::insert_agent;
use super::{AgentRecord, JOIN_TOKENS, REFRESH_TOKENS, Result, Store, decode, encode, read_all};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefreshTokenRecord {
    pub username: String,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    /// The login this token descends from. Empty in tokens stored before families
    /// existed: such a token is its own family (keyed by its hash).
    #[serde(default)]
    pub family: String,
    /// When the token was rotated; a used token only serves to detect reuse.
    #[serde(default)]
    pub used_at_ms: Option<i64>,
}

/// What presenting a refresh token led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// The token was live: it is now used, and its successor is stored.
    Rotated { username: String },
    /// The token had already been rotated: its whole family is revoked.
    Reused { username: String },
    /// Unknown or expired.
    Invalid,
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

    /// Presents the refresh token `hash` once, in one transaction: a live token is marked
    /// used and `next_hash` is stored in its family (expiring `ttl_ms` after `now_ms`);
    /// a used one revokes its family.
    pub fn rotate_refresh(
        &self,
        hash: &str,
        next_hash: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<Rotation> {
        let tx = self.db()?.begin_write()?;
        let outcome = {
            let mut table = tx.open_table(REFRESH_TOKENS)?;
            let current = table.get(hash)?.map(|v| v.value().to_vec());
            let record = current
                .map(|b| decode::<RefreshTokenRecord>("refresh_tokens", &b))
                .transpose()?;
            match record {
                None => Rotation::Invalid,
                Some(rec) if rec.used_at_ms.is_some() => {
                    let family = family_of(hash, &rec);
                    delete_family(&mut table, &family)?;
                    Rotation::Reused {
                        username: rec.username,
                    }
                }
                Some(rec) if rec.expires_at_ms <= now_ms => {
                    table.remove(hash)?;
                    Rotation::Invalid
                }
                Some(mut rec) => {
                    let family = family_of(hash, &rec);
                    rec.family = family.clone();
                    rec.used_at_ms = Some(now_ms);
                    table.insert(hash, encode(&rec).as_slice())?;
                    let next = RefreshTokenRecord {
                        username: rec.username.clone(),
                        created_at_ms: now_ms,
                        expires_at_ms: now_ms.saturating_add(ttl_ms),
                        family,
                        used_at_ms: None,
                    };
                    table.insert(next_hash, encode(&next).as_slice())?;
                    Rotation::Rotated {
                        username: rec.username,
                    }
                }
            }
        };
        // Invalid changed nothing worth a commit (an expired token's removal can wait for
        // the next prune).
        if outcome == Rotation::Invalid {
            tx.abort()?;
        } else {
            tx.commit()?;
        }
        Ok(outcome)
    }

    /// Ends the session `hash` belongs to (its whole family). False when unknown.
    pub fn revoke_refresh_family(&self, hash: &str) -> Result<bool> {
        let tx = self.db()?.begin_write()?;
        let found = {
            let mut table = tx.open_table(REFRESH_TOKENS)?;
            let current = table.get(hash)?.map(|v| v.value().to_vec());
            match current {
                Some(b) => {
                    let rec: RefreshTokenRecord = decode("refresh_tokens", &b)?;
                    delete_family(&mut table, &family_of(hash, &rec))?;
                    true
                }
                None => false,
            }
        };
        tx.commit()?;
        Ok(found)
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

fn family_of(hash: &str, rec: &RefreshTokenRecord) -> String {
    if rec.family.is_empty() {
        hash.to_string()
    } else {
        rec.family.clone()
    }
}

fn delete_family(table: &mut Table<&str, &[u8]>, family: &str) -> Result<()> {
    let mut members = Vec::new();
    for row in table.iter()? {
        let (k, v) = row?;
        let rec: RefreshTokenRecord = decode("refresh_tokens", v.value())?;
        if family_of(k.value(), &rec) == family {
            members.push(k.value().to_string());
        }
    }
    for k in members {
        table.remove(k.as_str())?;
    }
    Ok(())
}

/// Drops expired tokens, and used tokens whose family has no live token left (the session
/// ended: nothing is left for a reuse to revoke).
fn prune_expired(table: &mut Table<&str, &[u8]>, now_ms: i64) -> Result<()> {
    let mut dead = Vec::new();
    let mut used = Vec::new();
    let mut live_families = std::collections::HashSet::new();
    for row in table.iter()? {
        let (k, v) = row?;
        let rec: RefreshTokenRecord = decode("refresh_tokens", v.value())?;
        let key = k.value().to_string();
        if rec.expires_at_ms <= now_ms {
            dead.push(key);
        } else if rec.used_at_ms.is_some() {
            used.push((key, family_of(k.value(), &rec)));
        } else {
            live_families.insert(family_of(k.value(), &rec));
        }
    }
    dead.extend(
        used.into_iter()
            .filter(|(_, family)| !live_families.contains(family))
            .map(|(k, _)| k),
    );
    for k in dead {
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

    fn record(created: i64, expires: i64) -> RefreshTokenRecord {
        RefreshTokenRecord {
            username: "admin".into(),
            created_at_ms: created,
            expires_at_ms: expires,
            family: String::new(),
            used_at_ms: None,
        }
    }

    #[test]
    fn refresh_token_is_single_use_and_expired_ones_are_pruned() {
        let (_d, s) = crate::store::temp();
        s.insert_refresh("old", &record(0, 10)).expect("insert");
        s.insert_refresh("new", &record(100, 1000)).expect("insert");
        assert_eq!(count_refresh(&s).expect("count"), 1, "expired one pruned");
        let rotated = s.rotate_refresh("new", "next", 200, 1000).expect("rotate");
        assert_eq!(
            rotated,
            Rotation::Rotated {
                username: "admin".into()
            }
        );
        assert_eq!(
            s.rotate_refresh("unknown", "x", 200, 1000).expect("rotate"),
            Rotation::Invalid
        );
    }

    #[test]
    fn reuse_revokes_the_whole_family() {
        let (_d, s) = crate::store::temp();
        s.insert_refresh("a", &record(0, 10_000)).expect("insert");
        s.insert_refresh("other", &record(0, 10_000))
            .expect("insert");
        assert!(matches!(
            s.rotate_refresh("a", "b", 10, 10_000).expect("rotate"),
            Rotation::Rotated { .. }
        ));
        assert!(matches!(
            s.rotate_refresh("b", "c", 20, 10_000).expect("rotate"),
            Rotation::Rotated { .. }
        ));
        // "a" again: reuse. Every token of the family goes, the live "c" included.
        assert!(matches!(
            s.rotate_refresh("a", "x", 30, 10_000).expect("rotate"),
            Rotation::Reused { .. }
        ));
        assert_eq!(
            s.rotate_refresh("c", "d", 40, 10_000).expect("rotate"),
            Rotation::Invalid
        );
        assert!(
            matches!(
                s.rotate_refresh("other", "o2", 40, 10_000).expect("rotate"),
                Rotation::Rotated { .. }
            ),
            "another session is untouched"
        );
    }

    #[test]
    fn used_tokens_of_ended_sessions_are_pruned() {
        let (_d, s) = crate::store::temp();
        s.insert_refresh("a", &record(0, 10_000)).expect("insert");
        s.rotate_refresh("a", "b", 10, 10_000).expect("rotate");
        assert_eq!(count_refresh(&s).expect("count"), 2, "used token kept");
        assert!(s.revoke_refresh_family("b").expect("revoke"));
        assert_eq!(count_refresh(&s).expect("count"), 0);
        s.insert_refresh("c", &record(0, 10_000)).expect("insert");
        s.rotate_refresh("c", "d", 10, 10_000).expect("rotate");
        s.insert_refresh("e", &record(20, 10_000)).expect("insert");
        assert_eq!(
            count_refresh(&s).expect("count"),
            3,
            "live family keeps its used token"
        );
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
