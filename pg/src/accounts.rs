//! The accounts on PostgreSQL: [`AccountStore`] as `tandem_accounts::Accounts` keeps it on
//! SQLite, rule for rule (the same suite of cases runs against both: pg/tests/accounts.rs).
//!
//! SQLite takes every write transaction at once (`BEGIN IMMEDIATE`): writes happen one at a
//! time, so a check inside one (the last owner, an invite's uses, the first account) cannot
//! be passed by two at once. Here every process's account writes take one transaction
//! advisory lock for the same effect; account writes are rare (sign-up, sign-in, invites,
//! roles), and reads and the per-request touches never wait for it.
//!
//! The methods block (the trait's contract): each runs its queries on the server's runtime
//! and waits — call them on blocking threads (`spawn_blocking`), as the server does.

use std::collections::HashSet;

use tandem_accounts::db::{MAX_PENDING_INVITES, MAX_WORKSPACES_PER_USER, NOT_A_MEMBER};
use tandem_accounts::db::{MAX_SESSIONS_PER_USER, MAX_TOKENS_PER_USER, SESSION_IDLE_MS};
use tandem_accounts::{
    AccountStore, AccountsError, Credential, Invite, InviteCheck, Member, NewAccount, NewSession,
    Principal, Role, SessionInfo, TokenInfo, User, UserRecord, WorkspaceInfo,
};
use tokio::runtime::Handle;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{GenericClient, IsolationLevel, Row, Transaction};

use crate::{Database, PgError};
use tandem_accounts::store::TURN_WAIT;

/// The advisory lock account writes hold (two-key form, apart from the workspaces' locks).
const WRITES: (i32, i32) = (0x7a6d_6467, 2);
/// The first key of the accounts' quota turns (two-key form: this, and the account id's
/// `hashtext`; two accounts sharing a hash only take turns).
const QUOTA_TURNS: i32 = 0x7a6d_6468;
/// A session's or token's last use is written at most this often (as on SQLite).
const TOUCH_EVERY_MS: i64 = 60_000;
const MAX_USER_AGENT_CHARS: usize = 200;

/// The accounts in a PostgreSQL database (its schema current: [`Database::migrate`]).
#[derive(Clone)]
pub struct PgAccounts {
    db: Database,
    handle: Handle,
    /// This process's quota turns, taken before the database's (one connection per account
    /// and process waits for the database's lock, not one per push).
    turns: tandem_accounts::Turns,
}

impl std::fmt::Debug for PgAccounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgAccounts").field("db", &self.db).finish()
    }
}

fn pg(e: tokio_postgres::Error) -> AccountsError {
    AccountsError::Backend(crate::describe(&e))
}

fn pool(e: PgError) -> AccountsError {
    AccountsError::Backend(e.to_string())
}

fn forbidden() -> AccountsError {
    AccountsError::Forbidden(NOT_A_MEMBER.into())
}

fn role_of(text: &str) -> Result<Role, AccountsError> {
    text.parse()
        .map_err(|_| AccountsError::Corrupt(format!("role {text:?}")))
}

/// A pooled connection whose statements go through its statement cache: each is prepared
/// once per connection, and then a call is one round trip instead of two (prepare, then run).
/// Every request runs some of these (its credentials, the member check, the device's owner).
struct Cached<'a>(&'a deadpool_postgres::ClientWrapper);

impl Cached<'_> {
    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        let statement = self.0.prepare_cached(sql).await?;
        self.0.query(&statement, params).await
    }

    async fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, tokio_postgres::Error> {
        let statement = self.0.prepare_cached(sql).await?;
        self.0.query_opt(&statement, params).await
    }

    async fn query_one(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, tokio_postgres::Error> {
        let statement = self.0.prepare_cached(sql).await?;
        self.0.query_one(&statement, params).await
    }

    async fn execute(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, tokio_postgres::Error> {
        let statement = self.0.prepare_cached(sql).await?;
        self.0.execute(&statement, params).await
    }

    /// The connection itself (for the helpers shared with transactions).
    fn raw(&self) -> &tokio_postgres::Client {
        self.0
    }
}

impl PgAccounts {
    /// The accounts in `db`, their queries run on `handle`'s runtime.
    pub fn new(db: Database, handle: Handle) -> Self {
        // Half the pool at most waits in (or holds) quota turns: the pushes made in them
        // need connections too.
        let turns = tandem_accounts::Turns::at_most(db.max_size() / 2);
        Self { db, handle, turns }
    }

    /// Runs `work` to its end (on a blocking thread: see the module's note).
    fn run<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, AccountsError>>,
    ) -> Result<T, AccountsError> {
        self.handle.block_on(work)
    }

    /// Runs `f` on a connection, its statements through the connection's statement cache.
    fn read<T>(
        &self,
        f: impl AsyncFnOnce(&Cached<'_>) -> Result<T, AccountsError>,
    ) -> Result<T, AccountsError> {
        self.run(async {
            let client = self.db.client().await.map_err(pool)?;
            f(&Cached(&client)).await
        })
    }

    /// Runs `f` in one write transaction, holding the account writes' lock.
    fn write<T>(
        &self,
        f: impl AsyncFnOnce(&Transaction<'_>) -> Result<T, AccountsError>,
    ) -> Result<T, AccountsError> {
        self.run(async {
            let mut client = self.db.client().await.map_err(pool)?;
            // READ COMMITTED whatever the database's default: each statement after the lock
            // sees what the writer before committed. A lock held too long is given up.
            let tx = client
                .build_transaction()
                .isolation_level(IsolationLevel::ReadCommitted)
                .start()
                .await
                .map_err(pg)?;
            tx.batch_execute("SET LOCAL lock_timeout = '5s'")
                .await
                .map_err(pg)?;
            tx.execute(
                "SELECT pg_advisory_xact_lock($1, $2)",
                &[&WRITES.0, &WRITES.1],
            )
            .await
            .map_err(pg)?;
            let out = f(&*tx).await?;
            tx.commit().await.map_err(pg)?;
            Ok(out)
        })
    }
}

impl AccountStore for PgAccounts {
    fn revocations(&self) -> Result<i64, AccountsError> {
        self.read(async |c| {
            Ok(
                c.query_one("SELECT count FROM revocations WHERE id = 1", &[])
                    .await
                    .map_err(pg)?
                    .get(0),
            )
        })
    }

    fn sweep(&self, now: i64) -> Result<usize, AccountsError> {
        self.write(async |tx| {
            let idle = now - SESSION_IDLE_MS;
            let mut n = tx
                .execute("DELETE FROM sessions WHERE last_used_at <= $1", &[&idle])
                .await
                .map_err(pg)?;
            n += tx
                .execute(
                    "DELETE FROM tokens WHERE expires_at IS NOT NULL AND expires_at <= $1",
                    &[&now],
                )
                .await
                .map_err(pg)?;
            let month_ago = now - 30 * 24 * 60 * 60 * 1_000;
            tx.execute(
                "DELETE FROM invite_claims WHERE invite_id IN (SELECT invite_id FROM invites \
                 WHERE coalesce(revoked_at, expires_at) <= $1 AND expires_at <= $2)",
                &[&month_ago, &now],
            )
            .await
            .map_err(pg)?;
            n += tx
                .execute(
                    "DELETE FROM invites WHERE coalesce(revoked_at, expires_at) <= $1 AND expires_at <= $2",
                    &[&month_ago, &now],
                )
                .await
                .map_err(pg)?;
            Ok(n as usize)
        })
    }

    fn user_count(&self) -> Result<i64, AccountsError> {
        self.read(async |c| {
            Ok(c.query_one("SELECT count(*) FROM users", &[])
                .await
                .map_err(pg)?
                .get(0))
        })
    }

    fn create_account(&self, new: &NewAccount<'_>) -> Result<UserRecord, AccountsError> {
        tandem_accounts::names::username(new.username)?;
        self.write(async |tx| {
            let first: bool = tx
                .query_one("SELECT count(*) = 0 FROM users", &[])
                .await
                .map_err(pg)?
                .get(0);
            if new.must_be_first && !first {
                return Err(AccountsError::NotFirst);
            }
            let invite = match new.invite {
                Some(digest) => Some(
                    usable_invite(tx, digest, new.now)
                        .await?
                        .ok_or(AccountsError::InviteGone)?,
                ),
                None => None,
            };
            let taken: bool = tx
                .query_one(
                    "SELECT count(*) > 0 FROM users WHERE lower(username COLLATE \"C\") = lower($1::text COLLATE \"C\")",
                    &[&new.username],
                )
                .await
                .map_err(pg)?
                .get(0);
            if taken {
                return Err(AccountsError::UsernameTaken);
            }
            tx.execute(
                "INSERT INTO users (user_id, username, password_hash, is_admin, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
                &[&new.user_id, &new.username, &new.password_hash, &first, &new.now],
            )
            .await
            .map_err(|e| {
                if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
                    AccountsError::UsernameTaken
                } else {
                    pg(e)
                }
            })?;
            if let Some(invite_id) = invite {
                tx.execute(
                    "INSERT INTO invite_claims (invite_id, user_id, claimed_at) VALUES ($1, $2, $3)",
                    &[&invite_id, &new.user_id, &new.now],
                )
                .await
                .map_err(pg)?;
            }
            insert_workspace(tx, new.workspace_id, new.workspace_name, new.user_id, new.now)
                .await?;
            tx.execute(
                "UPDATE workspaces SET needs_inbox = true WHERE workspace_id = $1",
                &[&new.workspace_id],
            )
            .await
            .map_err(pg)?;
            if first {
                for ws in new.adopt {
                    if !workspace_exists(tx, ws).await? {
                        insert_workspace(tx, ws, "Workspace", new.user_id, new.now).await?;
                    }
                }
            }
            Ok(UserRecord {
                user: User {
                    user_id: new.user_id.to_string(),
                    username: new.username.to_string(),
                },
                password_hash: new.password_hash.to_string(),
                is_admin: first,
                disabled: false,
                deleted: false,
                created_at: new.now,
            })
        })
    }

    fn inbox_pending(&self, user_id: &str) -> Result<Vec<String>, AccountsError> {
        self.read(async |c| {
            let rows = c
                .query(
                    "SELECT workspace_id FROM workspaces WHERE created_by = $1 AND needs_inbox \
                     AND deleted_at IS NULL ORDER BY created_at, workspace_id",
                    &[&user_id],
                )
                .await
                .map_err(pg)?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    fn inbox_written(&self, workspace_id: &str) -> Result<(), AccountsError> {
        self.read(async |c| {
            c.execute(
                "UPDATE workspaces SET needs_inbox = false WHERE workspace_id = $1",
                &[&workspace_id],
            )
            .await
            .map_err(pg)?;
            Ok(())
        })
    }

    fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>, AccountsError> {
        self.read(async |c| {
            let row = c
                .query_opt(
                    &format!("SELECT {USER} FROM users WHERE lower(username COLLATE \"C\") = lower($1::text COLLATE \"C\")"),
                    &[&username],
                )
                .await
                .map_err(pg)?;
            Ok(row.as_ref().map(user_of))
        })
    }

    fn user_by_id(&self, user_id: &str) -> Result<Option<UserRecord>, AccountsError> {
        self.read(async |c| {
            let row = c
                .query_opt(
                    &format!("SELECT {USER} FROM users WHERE user_id = $1"),
                    &[&user_id],
                )
                .await
                .map_err(pg)?;
            Ok(row.as_ref().map(user_of))
        })
    }

    fn users(&self) -> Result<Vec<UserRecord>, AccountsError> {
        self.read(async |c| {
            let rows = c
                .query(
                    &format!("SELECT {USER} FROM users ORDER BY created_at, lower(username COLLATE \"C\")"),
                    &[],
                )
                .await
                .map_err(pg)?;
            Ok(rows.iter().map(user_of).collect())
        })
    }

    fn user_ids(&self) -> Result<HashSet<String>, AccountsError> {
        self.read(async |c| {
            let rows = c
                .query("SELECT user_id FROM users", &[])
                .await
                .map_err(pg)?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    fn usernames(&self, ids: &[String]) -> Result<Vec<User>, AccountsError> {
        self.read(async |c| {
            let rows = c
                .query(
                    "SELECT user_id, username FROM users WHERE user_id = ANY($1)",
                    &[&ids],
                )
                .await
                .map_err(pg)?;
            let names: std::collections::HashMap<String, String> =
                rows.iter().map(|r| (r.get(0), r.get(1))).collect();
            // In the order asked, as SQLite answers.
            Ok(ids
                .iter()
                .filter_map(|id| {
                    names.get(id).map(|username| User {
                        user_id: id.clone(),
                        username: username.clone(),
                    })
                })
                .collect())
        })
    }

    fn set_password(&self, user_id: &str, hash: &str) -> Result<(), AccountsError> {
        self.write(async |tx| {
            let n = tx
                .execute(
                    "UPDATE users SET password_hash = $2 WHERE user_id = $1 AND NOT deleted",
                    &[&user_id, &hash],
                )
                .await
                .map_err(pg)?;
            if n == 0 {
                return Err(AccountsError::NoSuchUser(user_id.to_string()));
            }
            end_credentials(tx, user_id).await
        })
    }

    fn change_password(
        &self,
        user_id: &str,
        hash: &str,
        keep_session: Option<&str>,
    ) -> Result<(), AccountsError> {
        self.write(async |tx| {
            tx.execute(
                "UPDATE users SET password_hash = $2 WHERE user_id = $1",
                &[&user_id, &hash],
            )
            .await
            .map_err(pg)?;
            tx.execute(
                "DELETE FROM sessions WHERE user_id = $1 AND session_id IS DISTINCT FROM $2",
                &[&user_id, &keep_session],
            )
            .await
            .map_err(pg)?;
            tx.execute("DELETE FROM tokens WHERE user_id = $1", &[&user_id])
                .await
                .map_err(pg)?;
            revoked(tx).await
        })
    }

    fn set_disabled(&self, username: &str, disabled: bool) -> Result<User, AccountsError> {
        self.write(async |tx| {
            let row = tx
                .query_opt(
                    "SELECT user_id, username FROM users WHERE lower(username COLLATE \"C\") = lower($1::text COLLATE \"C\") \
                     AND NOT deleted",
                    &[&username],
                )
                .await
                .map_err(pg)?
                .ok_or_else(|| AccountsError::NoSuchUser(username.to_string()))?;
            let user = User {
                user_id: row.get(0),
                username: row.get(1),
            };
            tx.execute(
                "UPDATE users SET disabled = $2 WHERE user_id = $1",
                &[&user.user_id, &disabled],
            )
            .await
            .map_err(pg)?;
            if disabled {
                end_credentials(tx, &user.user_id).await?;
            }
            revoked(tx).await?;
            Ok(user)
        })
    }

    fn delete_user(&self, user_id: &str, now: i64) -> Result<(), AccountsError> {
        self.write(async |tx| {
            let rows = tx
                .query(
                    "SELECT workspace_id, role FROM members WHERE user_id = $1",
                    &[&user_id],
                )
                .await
                .map_err(pg)?;
            for row in &rows {
                let (ws, role): (String, String) = (row.get(0), row.get(1));
                let others: i64 = tx
                    .query_one(
                        "SELECT count(*) FROM members WHERE workspace_id = $1 AND user_id != $2",
                        &[&ws, &user_id],
                    )
                    .await
                    .map_err(pg)?
                    .get(0);
                if others == 0 {
                    delete_workspace_rows(tx, &ws, now).await?;
                } else if role == "owner" && owners(tx, &ws).await? == 1 {
                    return Err(AccountsError::LastOwner);
                }
            }
            tx.execute("DELETE FROM members WHERE user_id = $1", &[&user_id])
                .await
                .map_err(pg)?;
            revoke_invites_by(tx, user_id, None).await?;
            end_credentials(tx, user_id).await?;
            tx.execute(
                "UPDATE users SET deleted = true, password_hash = '!' WHERE user_id = $1",
                &[&user_id],
            )
            .await
            .map_err(pg)?;
            Ok(())
        })
    }

    fn create_session(
        &self,
        user_id: &str,
        session: &NewSession<'_>,
        replaces: Option<&str>,
        now: i64,
    ) -> Result<(), AccountsError> {
        self.write(async |tx| {
            if let Some(old) = replaces {
                revoking(tx, "DELETE FROM sessions WHERE session_hash = $1", &[&old]).await?;
            }
            let agent: String = session
                .user_agent
                .chars()
                .take(MAX_USER_AGENT_CHARS)
                .collect();
            tx.execute(
                "INSERT INTO sessions (session_hash, session_id, user_id, created_at, \
                 last_used_at, user_agent) VALUES ($1, $2, $3, $4, $4, $5)",
                &[&session.digest, &session.session_id, &user_id, &now, &agent],
            )
            .await
            .map_err(pg)?;
            // An account keeps its newest sessions only (rule 22).
            revoking(
                tx,
                "DELETE FROM sessions WHERE user_id = $1 AND session_hash NOT IN \
                 (SELECT session_hash FROM sessions WHERE user_id = $1 \
                  ORDER BY last_used_at DESC, created_at DESC LIMIT $2)",
                &[&user_id, &MAX_SESSIONS_PER_USER],
            )
            .await?;
            Ok(())
        })
    }

    fn session(&self, digest: &str, now: i64) -> Result<Option<(Principal, bool)>, AccountsError> {
        self.read(async |c| {
            let row = c
                .query_opt(
                    "SELECT u.user_id, u.username, u.is_admin, s.session_id, s.last_used_at \
                     FROM sessions s JOIN users u ON u.user_id = s.user_id \
                     WHERE s.session_hash = $1 AND NOT u.disabled AND NOT u.deleted \
                     AND s.last_used_at > $2",
                    &[&digest, &(now - SESSION_IDLE_MS)],
                )
                .await
                .map_err(pg)?;
            let Some(row) = row else {
                return Ok(None);
            };
            let principal = Principal {
                user: User {
                    user_id: row.get(0),
                    username: row.get(1),
                },
                is_admin: row.get(2),
                credential: Credential::Session {
                    session_id: row.get(3),
                },
            };
            let last_used: i64 = row.get(4);
            let touch = now - last_used >= TOUCH_EVERY_MS;
            if touch {
                c.execute(
                    "UPDATE sessions SET last_used_at = $2 WHERE session_hash = $1",
                    &[&digest, &now],
                )
                .await
                .map_err(pg)?;
            }
            Ok(Some((principal, touch)))
        })
    }

    fn end_session(&self, digest: &str) -> Result<bool, AccountsError> {
        self.write(async |tx| {
            let sql = "DELETE FROM sessions WHERE session_hash = $1";
            Ok(revoking(tx, sql, &[&digest]).await? > 0)
        })
    }

    fn end_session_by_id(&self, user_id: &str, session_id: &str) -> Result<bool, AccountsError> {
        self.write(async |tx| {
            let sql = "DELETE FROM sessions WHERE user_id = $1 AND session_id = $2";
            Ok(revoking(tx, sql, &[&user_id, &session_id]).await? > 0)
        })
    }

    fn end_sessions(&self, user_id: &str) -> Result<usize, AccountsError> {
        self.write(async |tx| {
            let sql = "DELETE FROM sessions WHERE user_id = $1";
            Ok(revoking(tx, sql, &[&user_id]).await? as usize)
        })
    }

    fn sessions(&self, user_id: &str, now: i64) -> Result<Vec<SessionInfo>, AccountsError> {
        self.read(async |c| {
            let rows = c
                .query(
                    "SELECT session_id, created_at, last_used_at, user_agent FROM sessions \
                     WHERE user_id = $1 AND last_used_at > $2 ORDER BY last_used_at DESC",
                    &[&user_id, &(now - SESSION_IDLE_MS)],
                )
                .await
                .map_err(pg)?;
            Ok(rows
                .iter()
                .map(|r| SessionInfo {
                    session_id: r.get(0),
                    created_at: r.get(1),
                    last_used_at: r.get(2),
                    user_agent: r.get(3),
                })
                .collect())
        })
    }

    fn end_all_credentials(&self) -> Result<(), AccountsError> {
        self.write(async |tx| {
            tx.execute("DELETE FROM sessions", &[]).await.map_err(pg)?;
            tx.execute("DELETE FROM tokens", &[]).await.map_err(pg)?;
            revoked(tx).await
        })
    }

    fn create_token(
        &self,
        user_id: &str,
        token_id: &str,
        digest: &str,
        name: &str,
        expires_at: Option<i64>,
        now: i64,
    ) -> Result<(), AccountsError> {
        let name = tandem_accounts::names::display_name(
            name,
            tandem_accounts::names::MAX_TOKEN_NAME_CHARS,
        )?;
        self.write(async |tx| {
            let n: i64 = tx
                .query_one(
                    "SELECT count(*) FROM tokens WHERE user_id = $1",
                    &[&user_id],
                )
                .await
                .map_err(pg)?
                .get(0);
            if n >= MAX_TOKENS_PER_USER {
                return Err(AccountsError::TooMany(format!(
                    "an account has at most {MAX_TOKENS_PER_USER} tokens: delete one first"
                )));
            }
            tx.execute(
                "INSERT INTO tokens (token_id, token_hash, user_id, name, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[&token_id, &digest, &user_id, &name, &now, &expires_at],
            )
            .await
            .map_err(pg)?;
            Ok(())
        })
    }

    fn token(&self, digest: &str, now: i64) -> Result<Option<Principal>, AccountsError> {
        self.read(async |c| {
            let row = c
                .query_opt(
                    "SELECT u.user_id, u.username, u.is_admin, t.token_id, t.last_used_at \
                     FROM tokens t JOIN users u ON u.user_id = t.user_id \
                     WHERE t.token_hash = $1 AND NOT u.disabled AND NOT u.deleted \
                     AND (t.expires_at IS NULL OR t.expires_at > $2)",
                    &[&digest, &now],
                )
                .await
                .map_err(pg)?;
            let Some(row) = row else {
                return Ok(None);
            };
            let principal = Principal {
                user: User {
                    user_id: row.get(0),
                    username: row.get(1),
                },
                is_admin: row.get(2),
                credential: Credential::Token {
                    token_id: row.get(3),
                },
            };
            let last_used: Option<i64> = row.get(4);
            if last_used.is_none_or(|t| now - t >= TOUCH_EVERY_MS) {
                c.execute(
                    "UPDATE tokens SET last_used_at = $2 WHERE token_hash = $1",
                    &[&digest, &now],
                )
                .await
                .map_err(pg)?;
            }
            Ok(Some(principal))
        })
    }

    fn tokens(&self, user_id: &str) -> Result<Vec<TokenInfo>, AccountsError> {
        self.read(async |c| {
            let rows = c
                .query(
                    "SELECT token_id, name, created_at, expires_at, last_used_at FROM tokens \
                     WHERE user_id = $1 ORDER BY created_at",
                    &[&user_id],
                )
                .await
                .map_err(pg)?;
            Ok(rows
                .iter()
                .map(|r| TokenInfo {
                    token_id: r.get(0),
                    name: r.get(1),
                    created_at: r.get(2),
                    expires_at: r.get(3),
                    last_used_at: r.get(4),
                })
                .collect())
        })
    }

    fn delete_token(&self, user_id: &str, token_id: &str) -> Result<bool, AccountsError> {
        self.write(async |tx| {
            let sql = "DELETE FROM tokens WHERE user_id = $1 AND token_id = $2";
            Ok(revoking(tx, sql, &[&user_id, &token_id]).await? > 0)
        })
    }

    fn still_valid(&self, principal: &Principal, now: i64) -> Result<bool, AccountsError> {
        self.read(async |c| {
            let row = match &principal.credential {
                Credential::Session { session_id } => c
                    .query_one(
                        "SELECT count(*) > 0 FROM sessions s JOIN users u ON u.user_id = s.user_id \
                         WHERE s.session_id = $1 AND NOT u.disabled AND NOT u.deleted \
                         AND s.last_used_at > $2",
                        &[session_id, &(now - SESSION_IDLE_MS)],
                    )
                    .await,
                Credential::Token { token_id } => c
                    .query_one(
                        "SELECT count(*) > 0 FROM tokens t JOIN users u ON u.user_id = t.user_id \
                         WHERE t.token_id = $1 AND NOT u.disabled AND NOT u.deleted \
                         AND (t.expires_at IS NULL OR t.expires_at > $2)",
                        &[token_id, &now],
                    )
                    .await,
            };
            Ok(row.map_err(pg)?.get(0))
        })
    }

    fn workspace_ids(&self) -> Result<HashSet<String>, AccountsError> {
        self.read(async |c| {
            let rows = c
                .query("SELECT workspace_id FROM workspaces", &[])
                .await
                .map_err(pg)?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    fn create_workspace(
        &self,
        user_id: &str,
        workspace_id: &str,
        name: &str,
        in_log: bool,
        now: i64,
    ) -> Result<(WorkspaceInfo, bool), AccountsError> {
        let name = tandem_accounts::names::display_name(
            name,
            tandem_accounts::names::MAX_WORKSPACE_NAME_CHARS,
        )?;
        self.write(async |tx| {
            let existing = tx
                .query_opt(
                    "SELECT name, deleted_at FROM workspaces WHERE workspace_id = $1",
                    &[&workspace_id],
                )
                .await
                .map_err(pg)?;
            if let Some(row) = existing {
                let (existing_name, deleted): (String, Option<i64>) = (row.get(0), row.get(1));
                let role = role_in(tx, user_id, workspace_id).await?;
                return match (deleted, role) {
                    (None, Some(Role::Owner)) => Ok((
                        WorkspaceInfo {
                            workspace_id: workspace_id.to_string(),
                            name: existing_name,
                            role: Role::Owner,
                        },
                        false,
                    )),
                    _ => Err(AccountsError::Forbidden(
                        "this workspace id is taken".into(),
                    )),
                };
            }
            if in_log {
                return Err(AccountsError::Forbidden(
                    "this workspace id is taken".into(),
                ));
            }
            let made: i64 = tx
                .query_one(
                    "SELECT count(*) FROM workspaces WHERE created_by = $1",
                    &[&user_id],
                )
                .await
                .map_err(pg)?
                .get(0);
            if made >= MAX_WORKSPACES_PER_USER {
                return Err(AccountsError::TooMany(format!(
                    "an account makes at most {MAX_WORKSPACES_PER_USER} workspaces"
                )));
            }
            insert_workspace(tx, workspace_id, &name, user_id, now).await?;
            Ok((
                WorkspaceInfo {
                    workspace_id: workspace_id.to_string(),
                    name: name.clone(),
                    role: Role::Owner,
                },
                true,
            ))
        })
    }

    fn workspaces_of(&self, user_id: &str) -> Result<Vec<WorkspaceInfo>, AccountsError> {
        self.read(async |c| {
            let rows = c
                .query(
                    "SELECT w.workspace_id, w.name, m.role FROM members m \
                     JOIN workspaces w ON w.workspace_id = m.workspace_id \
                     WHERE m.user_id = $1 AND w.deleted_at IS NULL ORDER BY m.joined_at, w.name COLLATE \"C\"",
                    &[&user_id],
                )
                .await
                .map_err(pg)?;
            rows.iter()
                .map(|r| {
                    Ok(WorkspaceInfo {
                        workspace_id: r.get(0),
                        name: r.get(1),
                        role: role_of(r.get(2))?,
                    })
                })
                .collect()
        })
    }

    fn role(&self, user_id: &str, workspace_id: &str) -> Result<Role, AccountsError> {
        // Every request into a workspace asks this: through the statement cache.
        self.read(async |c| {
            c.query_opt(ROLE, &[&user_id, &workspace_id])
                .await
                .map_err(pg)?
                .map(|r| role_of(r.get(0)))
                .transpose()
        })?
        .ok_or_else(forbidden)
    }

    fn workspace(&self, user_id: &str, workspace_id: &str) -> Result<WorkspaceInfo, AccountsError> {
        self.read(async |c| {
            let row = c
                .query_opt(
                    "SELECT w.name, m.role FROM members m JOIN workspaces w \
                     ON w.workspace_id = m.workspace_id \
                     WHERE m.user_id = $1 AND m.workspace_id = $2 AND w.deleted_at IS NULL",
                    &[&user_id, &workspace_id],
                )
                .await
                .map_err(pg)?
                .ok_or_else(forbidden)?;
            Ok(WorkspaceInfo {
                workspace_id: workspace_id.to_string(),
                name: row.get(0),
                role: role_of(row.get(1))?,
            })
        })
    }

    fn rename_workspace(
        &self,
        user_id: &str,
        workspace_id: &str,
        name: &str,
    ) -> Result<WorkspaceInfo, AccountsError> {
        let name = tandem_accounts::names::display_name(
            name,
            tandem_accounts::names::MAX_WORKSPACE_NAME_CHARS,
        )?;
        self.write(async |tx| {
            owner_only(tx, user_id, workspace_id).await?;
            tx.execute(
                "UPDATE workspaces SET name = $2 WHERE workspace_id = $1",
                &[&workspace_id, &name],
            )
            .await
            .map_err(pg)?;
            Ok(WorkspaceInfo {
                workspace_id: workspace_id.to_string(),
                name: name.clone(),
                role: Role::Owner,
            })
        })
    }

    fn delete_workspace(
        &self,
        user_id: &str,
        workspace_id: &str,
        now: i64,
    ) -> Result<Vec<String>, AccountsError> {
        self.write(async |tx| {
            owner_only(tx, user_id, workspace_id).await?;
            let rows = tx
                .query(
                    "SELECT user_id FROM members WHERE workspace_id = $1 ORDER BY user_id",
                    &[&workspace_id],
                )
                .await
                .map_err(pg)?;
            let members = rows.iter().map(|r| r.get(0)).collect();
            delete_workspace_rows(tx, workspace_id, now).await?;
            Ok(members)
        })
    }

    fn members(&self, user_id: &str, workspace_id: &str) -> Result<Vec<Member>, AccountsError> {
        self.read(async |c| {
            role_in(c.raw(), user_id, workspace_id)
                .await?
                .ok_or_else(forbidden)?;
            let rows = c
                .query(
                    "SELECT m.user_id, u.username, m.role FROM members m \
                     JOIN users u ON u.user_id = m.user_id \
                     WHERE m.workspace_id = $1 ORDER BY m.joined_at, lower(u.username COLLATE \"C\")",
                    &[&workspace_id],
                )
                .await
                .map_err(pg)?;
            rows.iter()
                .map(|r| {
                    Ok(Member {
                        user_id: r.get(0),
                        username: r.get(1),
                        role: role_of(r.get(2))?,
                    })
                })
                .collect()
        })
    }

    fn set_role(
        &self,
        actor: &str,
        workspace_id: &str,
        target: &str,
        role: Role,
    ) -> Result<(), AccountsError> {
        self.write(async |tx| {
            owner_only(tx, actor, workspace_id).await?;
            let current = role_in(tx, target, workspace_id)
                .await?
                .ok_or(AccountsError::NotFound)?;
            if current == Role::Owner && role != Role::Owner && owners(tx, workspace_id).await? == 1
            {
                return Err(AccountsError::LastOwner);
            }
            tx.execute(
                "UPDATE members SET role = $3 WHERE workspace_id = $1 AND user_id = $2",
                &[&workspace_id, &target, &role.as_str()],
            )
            .await
            .map_err(pg)?;
            if current == Role::Owner && role != Role::Owner {
                revoke_invites_by(tx, target, Some(workspace_id)).await?;
            }
            Ok(())
        })
    }

    fn remove_member(
        &self,
        actor: &str,
        workspace_id: &str,
        target: &str,
    ) -> Result<(), AccountsError> {
        self.write(async |tx| {
            let actor_role = role_in(tx, actor, workspace_id)
                .await?
                .ok_or_else(forbidden)?;
            if actor != target && actor_role != Role::Owner {
                return Err(AccountsError::Forbidden(
                    "only an owner removes other members".into(),
                ));
            }
            let role = role_in(tx, target, workspace_id)
                .await?
                .ok_or(AccountsError::NotFound)?;
            if role == Role::Owner && owners(tx, workspace_id).await? == 1 {
                return Err(AccountsError::LastOwner);
            }
            tx.execute(
                "DELETE FROM members WHERE workspace_id = $1 AND user_id = $2",
                &[&workspace_id, &target],
            )
            .await
            .map_err(pg)?;
            revoke_invites_by(tx, target, Some(workspace_id)).await?;
            revoked(tx).await
        })
    }

    fn create_invite(
        &self,
        actor: &str,
        workspace_id: &str,
        invite_id: &str,
        digest: &str,
        role: Role,
        max_uses: i64,
        expires_at: i64,
        now: i64,
    ) -> Result<(), AccountsError> {
        self.write(async |tx| {
            owner_only(tx, actor, workspace_id).await?;
            let pending: i64 = tx
                .query_one(
                    "SELECT count(*) FROM invites WHERE workspace_id = $1 AND revoked_at IS NULL \
                     AND expires_at > $2",
                    &[&workspace_id, &now],
                )
                .await
                .map_err(pg)?
                .get(0);
            if pending >= MAX_PENDING_INVITES {
                return Err(AccountsError::TooMany(format!(
                    "a workspace has at most {MAX_PENDING_INVITES} pending invites: revoke one first"
                )));
            }
            tx.execute(
                "INSERT INTO invites (invite_id, token_hash, workspace_id, role, max_uses, \
                 expires_at, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[
                    &invite_id,
                    &digest,
                    &workspace_id,
                    &role.as_str(),
                    &max_uses,
                    &expires_at,
                    &actor,
                    &now,
                ],
            )
            .await
            .map_err(pg)?;
            Ok(())
        })
    }

    fn invites(
        &self,
        actor: &str,
        workspace_id: &str,
        now: i64,
    ) -> Result<Vec<Invite>, AccountsError> {
        self.read(async |c| {
            owner_only(c.raw(), actor, workspace_id).await?;
            let rows = c
                .query(
                    "SELECT i.invite_id, i.role, i.max_uses, \
                     (SELECT count(*) FROM invite_claims c WHERE c.invite_id = i.invite_id) AS uses, \
                     i.expires_at, i.created_at FROM invites i \
                     WHERE i.workspace_id = $1 AND i.revoked_at IS NULL AND i.expires_at > $2 \
                     AND (SELECT count(*) FROM invite_claims c WHERE c.invite_id = i.invite_id) \
                         < i.max_uses \
                     ORDER BY i.created_at",
                    &[&workspace_id, &now],
                )
                .await
                .map_err(pg)?;
            rows.iter()
                .map(|r| {
                    Ok(Invite {
                        invite_id: r.get(0),
                        role: role_of(r.get(1))?,
                        max_uses: r.get(2),
                        uses: r.get(3),
                        expires_at: r.get(4),
                        created_at: r.get(5),
                    })
                })
                .collect()
        })
    }

    fn revoke_invite(
        &self,
        actor: &str,
        workspace_id: &str,
        id_or_digest: &str,
        now: i64,
    ) -> Result<(), AccountsError> {
        self.write(async |tx| {
            owner_only(tx, actor, workspace_id).await?;
            let n = tx
                .execute(
                    "UPDATE invites SET revoked_at = coalesce(revoked_at, $3) \
                     WHERE workspace_id = $1 AND (invite_id = $2 OR token_hash = $2)",
                    &[&workspace_id, &id_or_digest, &now],
                )
                .await
                .map_err(pg)?;
            if n == 0 {
                return Err(AccountsError::NotFound);
            }
            Ok(())
        })
    }

    fn check_invite(&self, digest: &str, now: i64) -> Result<InviteCheck, AccountsError> {
        self.read(async |c| {
            let Some(invite_id) = usable_invite(c.raw(), digest, now).await? else {
                return Ok(InviteCheck::Gone);
            };
            let row = c
                .query_one(
                    "SELECT i.workspace_id, w.name, i.role, u.username FROM invites i \
                     JOIN workspaces w ON w.workspace_id = i.workspace_id \
                     JOIN users u ON u.user_id = i.created_by WHERE i.invite_id = $1",
                    &[&invite_id],
                )
                .await
                .map_err(pg)?;
            Ok(InviteCheck::Valid {
                invite_id,
                workspace_id: row.get(0),
                workspace_name: row.get(1),
                role: role_of(row.get(2))?,
                invited_by: row.get(3),
            })
        })
    }

    fn accept_invite(
        &self,
        user_id: &str,
        digest: &str,
        now: i64,
    ) -> Result<(String, Role), AccountsError> {
        self.write(async |tx| {
            let found = tx
                .query_opt(
                    "SELECT i.invite_id, i.workspace_id, i.role, i.max_uses \
                     FROM invites i JOIN workspaces w ON w.workspace_id = i.workspace_id \
                     WHERE i.token_hash = $1 AND i.revoked_at IS NULL AND w.deleted_at IS NULL \
                     AND i.expires_at > $2 \
                     AND EXISTS (SELECT 1 FROM members m WHERE m.workspace_id = i.workspace_id \
                                 AND m.user_id = i.created_by AND m.role = 'owner')",
                    &[&digest, &now],
                )
                .await
                .map_err(pg)?;
            let Some(row) = found else {
                return Err(AccountsError::InviteGone);
            };
            let (invite_id, ws, role, max_uses): (String, String, String, i64) =
                (row.get(0), row.get(1), row.get(2), row.get(3));
            if let Some(current) = role_in(tx, user_id, &ws).await? {
                return Ok((ws, current));
            }
            let claim: Option<bool> = tx
                .query_opt(
                    "SELECT joined FROM invite_claims WHERE invite_id = $1 AND user_id = $2",
                    &[&invite_id, &user_id],
                )
                .await
                .map_err(pg)?
                .map(|r| r.get(0));
            match claim {
                Some(false) => {
                    tx.execute(
                        "UPDATE invite_claims SET joined = true WHERE invite_id = $1 AND user_id = $2",
                        &[&invite_id, &user_id],
                    )
                    .await
                    .map_err(pg)?;
                }
                Some(true) => return Err(AccountsError::InviteGone),
                None => {
                    let uses: i64 = tx
                        .query_one(
                            "SELECT count(*) FROM invite_claims WHERE invite_id = $1",
                            &[&invite_id],
                        )
                        .await
                        .map_err(pg)?
                        .get(0);
                    if uses >= max_uses {
                        return Err(AccountsError::InviteGone);
                    }
                    tx.execute(
                        "INSERT INTO invite_claims (invite_id, user_id, claimed_at, joined) \
                         VALUES ($1, $2, $3, true)",
                        &[&invite_id, &user_id, &now],
                    )
                    .await
                    .map_err(pg)?;
                }
            }
            tx.execute(
                "INSERT INTO members (workspace_id, user_id, role, joined_at) VALUES ($1, $2, $3, $4)",
                &[&ws, &user_id, &role, &now],
            )
            .await
            .map_err(pg)?;
            let role = role_of(&role)?;
            Ok((ws, role))
        })
    }

    fn bind_device(&self, device_id: &str, user_id: &str, now: i64) -> Result<(), AccountsError> {
        let owner = self.device_owner(device_id)?;
        let other = || {
            Err(AccountsError::Forbidden(format!(
                "device {device_id} belongs to another account; a device id is minted per account"
            )))
        };
        match owner {
            Some(owner) if owner == user_id => Ok(()),
            Some(_) => other(),
            None => {
                let owner: String = self.read(async |c| {
                    c.execute(
                        "INSERT INTO devices (device_id, user_id, bound_at) VALUES ($1, $2, $3) \
                         ON CONFLICT (device_id) DO NOTHING",
                        &[&device_id, &user_id, &now],
                    )
                    .await
                    .map_err(pg)?;
                    Ok(c.query_one(
                        "SELECT user_id FROM devices WHERE device_id = $1",
                        &[&device_id],
                    )
                    .await
                    .map_err(pg)?
                    .get(0))
                })?;
                if owner == user_id {
                    Ok(())
                } else {
                    other()
                }
            }
        }
    }

    fn device_owner(&self, device_id: &str) -> Result<Option<String>, AccountsError> {
        self.read(async |c| {
            Ok(c.query_opt(
                "SELECT user_id FROM devices WHERE device_id = $1",
                &[&device_id],
            )
            .await
            .map_err(pg)?
            .map(|r| r.get(0)))
        })
    }

    /// This process's turn, then the database's: a transaction on a connection of its own
    /// holding the account's advisory lock (every process's pushes of the account wait for it)
    /// until the turn is dropped. The whole wait (both turns and a pooled connection) is
    /// bounded by [`TURN_WAIT`].
    fn quota_turn(&self, user_id: &str) -> Result<tandem_accounts::QuotaTurn, AccountsError> {
        let deadline = std::time::Instant::now() + TURN_WAIT;
        let left = || {
            deadline
                .saturating_duration_since(std::time::Instant::now())
                .max(std::time::Duration::from_millis(1))
        };
        let here = self.turns.take(user_id, TURN_WAIT)?;
        let held = self.run(async {
            let client = match tokio::time::timeout(left(), self.db.client()).await {
                Ok(Ok(client)) => client,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "no connection for a quota turn");
                    return Err(tandem_accounts::turns::busy(TURN_WAIT));
                }
                Err(_) => return Err(tandem_accounts::turns::busy(TURN_WAIT)),
            };
            let locked = async {
                client
                    .batch_execute(&format!(
                        "BEGIN; SET LOCAL lock_timeout = '{}ms'",
                        left().as_millis()
                    ))
                    .await?;
                client
                    .execute(
                        "SELECT pg_advisory_xact_lock($1, hashtext($2))",
                        &[&QUOTA_TURNS, &user_id],
                    )
                    .await
            }
            .await;
            match locked {
                Ok(_) => Ok(client),
                Err(e) => {
                    end_turn(client).await;
                    if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) {
                        Err(tandem_accounts::turns::busy(TURN_WAIT))
                    } else {
                        Err(pg(e))
                    }
                }
            }
        })?;
        let there = DatabaseTurn {
            client: Some(held),
            handle: self.handle.clone(),
        };
        // Dropped in this order: the database's turn, then this process's.
        Ok(Box::new((there, here)))
    }

    fn usage(&self, user_id: &str, day: i64) -> Result<(i64, i64), AccountsError> {
        self.read(async |c| {
            let row = c
                .query_one(
                    "SELECT coalesce(sum(CASE WHEN day = $2 THEN events END), 0)::int8, \
                     coalesce(sum(bytes), 0)::int8 FROM usage WHERE user_id = $1",
                    &[&user_id, &day],
                )
                .await
                .map_err(pg)?;
            Ok((row.get(0), row.get(1)))
        })
    }

    fn add_usage(
        &self,
        user_id: &str,
        day: i64,
        events: i64,
        bytes: i64,
    ) -> Result<(), AccountsError> {
        self.read(async |c| {
            c.execute(
                "INSERT INTO usage (user_id, day, events, bytes) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (user_id, day) DO UPDATE \
                 SET events = usage.events + $3, bytes = usage.bytes + $4",
                &[&user_id, &day, &events, &bytes],
            )
            .await
            .map_err(pg)?;
            Ok(())
        })
    }

    fn adopt(&self, owner: &str, workspaces: &[String], now: i64) -> Result<usize, AccountsError> {
        self.write(async |tx| {
            let mut adopted = 0;
            for ws in workspaces {
                if !workspace_exists(tx, ws).await? {
                    insert_workspace(tx, ws, "Workspace", owner, now).await?;
                    adopted += 1;
                }
            }
            Ok(adopted)
        })
    }
}

/// An account's quota turn in the database: the transaction holding its advisory lock, ended
/// when dropped (on a blocking thread, as every accounts call is).
struct DatabaseTurn {
    client: Option<deadpool_postgres::Object>,
    handle: Handle,
}

impl Drop for DatabaseTurn {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            self.handle.block_on(end_turn(client));
        }
    }
}

/// Ends a turn's transaction (giving its lock back). A connection where that fails, or that
/// does not answer within [`TURN_WAIT`], might still hold the lock: it is closed (which
/// gives the lock back) rather than given back to the pool.
async fn end_turn(client: deadpool_postgres::Object) {
    let ended = tokio::time::timeout(TURN_WAIT, client.batch_execute("ROLLBACK")).await;
    if let Err(why) = ended
        .map_err(|_| "no answer".to_string())
        .and_then(|r| r.map_err(|e| e.to_string()))
    {
        tracing::warn!(error = %why, "cannot end a quota turn; closing its connection");
        drop(deadpool_postgres::Object::take(client));
    }
}

/// A user row's columns, in the order [`user_of`] reads them.
const USER: &str = "user_id, username, password_hash, is_admin, disabled, deleted, created_at";

fn user_of(r: &Row) -> UserRecord {
    UserRecord {
        user: User {
            user_id: r.get(0),
            username: r.get(1),
        },
        password_hash: r.get(2),
        is_admin: r.get(3),
        disabled: r.get(4),
        deleted: r.get(5),
        created_at: r.get(6),
    }
}

async fn workspace_exists(
    c: &impl GenericClient,
    workspace_id: &str,
) -> Result<bool, AccountsError> {
    Ok(c.query_one(
        "SELECT count(*) > 0 FROM workspaces WHERE workspace_id = $1",
        &[&workspace_id],
    )
    .await
    .map_err(pg)?
    .get(0))
}

async fn insert_workspace(
    c: &impl GenericClient,
    workspace_id: &str,
    name: &str,
    owner: &str,
    now: i64,
) -> Result<(), AccountsError> {
    c.execute(
        "INSERT INTO workspaces (workspace_id, name, created_by, created_at) VALUES ($1, $2, $3, $4)",
        &[&workspace_id, &name, &owner, &now],
    )
    .await
    .map_err(pg)?;
    c.execute(
        "INSERT INTO members (workspace_id, user_id, role, joined_at) VALUES ($1, $2, 'owner', $3)",
        &[&workspace_id, &owner, &now],
    )
    .await
    .map_err(pg)?;
    Ok(())
}

/// A member's role in a live workspace, while the account is active.
const ROLE: &str = "SELECT m.role FROM members m JOIN workspaces w \
                    ON w.workspace_id = m.workspace_id JOIN users u ON u.user_id = m.user_id \
                    WHERE m.user_id = $1 AND m.workspace_id = $2 AND w.deleted_at IS NULL \
                    AND NOT u.disabled AND NOT u.deleted";

async fn role_in(
    c: &impl GenericClient,
    user_id: &str,
    workspace_id: &str,
) -> Result<Option<Role>, AccountsError> {
    let row = c
        .query_opt(ROLE, &[&user_id, &workspace_id])
        .await
        .map_err(pg)?;
    row.map(|r| role_of(r.get(0))).transpose()
}

async fn owner_only(
    c: &impl GenericClient,
    user_id: &str,
    workspace_id: &str,
) -> Result<(), AccountsError> {
    match role_in(c, user_id, workspace_id).await? {
        Some(Role::Owner) => Ok(()),
        Some(_) => Err(AccountsError::Forbidden(
            "only an owner of this workspace may do that".into(),
        )),
        None => Err(forbidden()),
    }
}

async fn owners(c: &impl GenericClient, workspace_id: &str) -> Result<i64, AccountsError> {
    Ok(c.query_one(
        "SELECT count(*) FROM members WHERE workspace_id = $1 AND role = 'owner'",
        &[&workspace_id],
    )
    .await
    .map_err(pg)?
    .get(0))
}

async fn delete_workspace_rows(
    c: &impl GenericClient,
    workspace_id: &str,
    now: i64,
) -> Result<(), AccountsError> {
    c.execute(
        "UPDATE workspaces SET deleted_at = coalesce(deleted_at, $2) WHERE workspace_id = $1",
        &[&workspace_id, &now],
    )
    .await
    .map_err(pg)?;
    c.execute(
        "DELETE FROM members WHERE workspace_id = $1",
        &[&workspace_id],
    )
    .await
    .map_err(pg)?;
    c.execute(
        "UPDATE invites SET revoked_at = coalesce(revoked_at, $2) WHERE workspace_id = $1",
        &[&workspace_id, &now],
    )
    .await
    .map_err(pg)?;
    revoked(c).await
}

async fn revoke_invites_by(
    c: &impl GenericClient,
    user_id: &str,
    workspace_id: Option<&str>,
) -> Result<(), AccountsError> {
    c.execute(
        "UPDATE invites SET revoked_at = coalesce(revoked_at, created_at) \
         WHERE created_by = $1 AND ($2::text IS NULL OR workspace_id = $2)",
        &[&user_id, &workspace_id],
    )
    .await
    .map_err(pg)?;
    Ok(())
}

async fn end_credentials(c: &impl GenericClient, user_id: &str) -> Result<(), AccountsError> {
    c.execute("DELETE FROM sessions WHERE user_id = $1", &[&user_id])
        .await
        .map_err(pg)?;
    c.execute("DELETE FROM tokens WHERE user_id = $1", &[&user_id])
        .await
        .map_err(pg)?;
    revoked(c).await
}

/// Runs `sql`, which takes access away, and notes the revocation when it changed a row; how
/// many it changed.
async fn revoking(
    c: &impl GenericClient,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<u64, AccountsError> {
    let n = c.execute(sql, params).await.map_err(pg)?;
    if n > 0 {
        revoked(c).await?;
    }
    Ok(n)
}

/// Notes, in the caller's transaction, that access was taken away (sockets are re-checked).
async fn revoked(c: &impl GenericClient) -> Result<(), AccountsError> {
    c.execute("UPDATE revocations SET count = count + 1 WHERE id = 1", &[])
        .await
        .map_err(pg)?;
    Ok(())
}

async fn usable_invite(
    c: &impl GenericClient,
    digest: &str,
    now: i64,
) -> Result<Option<String>, AccountsError> {
    Ok(c.query_opt(
        "SELECT i.invite_id FROM invites i JOIN workspaces w ON w.workspace_id = i.workspace_id \
         WHERE i.token_hash = $1 AND i.revoked_at IS NULL AND i.expires_at > $2 \
         AND w.deleted_at IS NULL \
         AND EXISTS (SELECT 1 FROM members m WHERE m.workspace_id = i.workspace_id \
                     AND m.user_id = i.created_by AND m.role = 'owner') \
         AND (SELECT count(*) FROM invite_claims c WHERE c.invite_id = i.invite_id) < i.max_uses",
        &[&digest, &now],
    )
    .await
    .map_err(pg)?
    .map(|r| r.get(0)))
}
