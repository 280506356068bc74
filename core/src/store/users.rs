//! Users of the web UI and API. Passwords are stored only as argon2id PHC strings.

use redb::{ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};

use super::{REFRESH_TOKENS, Result, Store, USERS, decode, encode, read_one};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserRecord {
    pub username: String,
    /// argon2id PHC string.
    pub password_hash: String,
    pub created_at_ms: i64,
    /// Bumped on every password change; access tokens carry it, so a reset revokes them.
    #[serde(default)]
    pub token_generation: u64,
}

impl Store {
    pub fn user_count(&self) -> Result<u64> {
        let tx = self.db()?.begin_read()?;
        let table = tx.open_table(USERS)?;
        Ok(redb::ReadableTableMetadata::len(&table)?)
    }

    pub fn get_user(&self, username: &str) -> Result<Option<UserRecord>> {
        read_one(&*self.db()?, USERS, "users", username)
    }

    /// Creates the user unless one with that name exists. Returns whether it was created.
    pub fn create_user(&self, user: &UserRecord) -> Result<bool> {
        let tx = self.db()?.begin_write()?;
        let created = {
            let mut table = tx.open_table(USERS)?;
            if table.get(user.username.as_str())?.is_some() {
                false
            } else {
                table.insert(user.username.as_str(), encode(user).as_slice())?;
                true
            }
        };
        tx.commit()?;
        Ok(created)
    }

    /// Sets a new password hash, bumps the token generation (revoking access tokens) and
    /// deletes the user's refresh tokens, all in one transaction. Returns false when the
    /// user does not exist.
    pub fn set_password(&self, username: &str, password_hash: &str) -> Result<bool> {
        let tx = self.db()?.begin_write()?;
        let found = {
            let mut users = tx.open_table(USERS)?;
            let current: Option<UserRecord> = match users.get(username)? {
                Some(v) => Some(decode("users", v.value())?),
                None => None,
            };
            match current {
                Some(mut user) => {
                    user.password_hash = password_hash.to_string();
                    user.token_generation += 1;
                    users.insert(username, encode(&user).as_slice())?;
                    true
                }
                None => false,
            }
        };
        if found {
            super::tokens::delete_refresh_for_user(&mut tx.open_table(REFRESH_TOKENS)?, username)?;
        }
        tx.commit()?;
        Ok(found)
    }
}
